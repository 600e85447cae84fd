//! A Pod's container, as the manifests declare it, turned into `podman run` flags, field by
//! field: what a kubelet with a CRI runtime would give the container. Pure: the caller supplies
//! the things a kubelet would make (the ServiceAccount token folder, the network namespace) and
//! the host paths the test redirects.
//!
//! Every field that affects privileges or mounts is either translated or refused with an error
//! naming it, so a manifest change the translation does not know cannot pass unnoticed.
//! Not translated, on purpose: probes, ports (the container shares a network namespace, so its
//! ports are that namespace's), resources (this machine's cgroup mode does not let podman set
//! limits), scheduling fields.

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod, PodSecurityContext, Volume};
use std::collections::BTreeMap;

/// The manifest asks for something this translation does not do.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TranslateError {
    /// A field is missing or has a value the translation refuses.
    #[error("{field}: {why}")]
    Field {
        /// The field's path in the Pod (`spec.containers[node-fixer].securityContext…`).
        field: String,
        /// Why.
        why: String,
    },
}

fn field(field: impl Into<String>, why: impl Into<String>) -> TranslateError {
    TranslateError::Field {
        field: field.into(),
        why: why.into(),
    }
}

/// What the caller provides besides the Pod.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The container's name in the Pod.
    pub container: String,
    /// The network namespace the container joins (`/var/run/netns/<name>`): the node's for a
    /// `hostNetwork` Pod, the Pod's own otherwise.
    pub netns_path: String,
    /// Host folder holding `token`, `ca.crt` and `namespace`, mounted where the Pod's
    /// ServiceAccount token volume goes.
    pub service_account_dir: Option<String>,
    /// `hostPath` paths redirected to test folders (`/etc/sysctl.d` → a folder of the test).
    pub host_paths: BTreeMap<String, String>,
    /// Container arguments `--flag=value` replaced by the value given for `--flag`.
    pub arg_overrides: BTreeMap<String, String>,
    /// Environment variables set besides the manifest's (`KUBERNETES_SERVICE_HOST`…).
    pub extra_env: Vec<(String, String)>,
    /// Capabilities removed from what the manifest adds (to show each one is needed).
    pub without_capabilities: Vec<String>,
}

/// The flags for `podman run` (before the image) and the container's arguments (after it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    /// Flags.
    pub flags: Vec<String>,
    /// The container's arguments, `$(VAR)` expanded.
    pub args: Vec<String>,
    /// The manifest's image.
    pub image: String,
}

/// Translate `pod`'s container `ctx.container`.
pub fn run_spec(pod: &Pod, ctx: &Context) -> Result<RunSpec, TranslateError> {
    let spec = pod
        .spec
        .as_ref()
        .ok_or_else(|| field("spec", "the Pod has no spec"))?;
    let name = &ctx.container;
    let container = spec
        .containers
        .iter()
        .find(|c| &c.name == name)
        .ok_or_else(|| field("spec.containers", format!("no container {name}")))?;
    let at = format!("spec.containers[{name}]");
    let mut flags = vec![format!("--network=ns:{}", ctx.netns_path)];
    if spec.host_pid == Some(true) || spec.host_ipc == Some(true) {
        return Err(field("spec.hostPID/hostIPC", "not translated"));
    }
    flags.extend(security_flags(
        container,
        spec.security_context.as_ref(),
        &at,
        ctx,
    )?);
    let volumes = spec.volumes.as_deref().unwrap_or_default();
    for mount in container.volume_mounts.as_deref().unwrap_or_default() {
        let volume = volumes
            .iter()
            .find(|v| v.name == mount.name)
            .ok_or_else(|| {
                field(
                    format!("{at}.volumeMounts[{}]", mount.name),
                    "no such volume",
                )
            })?;
        flags.push(mount_flag(
            volume,
            &mount.mount_path,
            mount.read_only == Some(true),
            mount.mount_propagation.as_deref(),
            ctx,
        )?);
    }
    let env = environment(pod, container, &at)?;
    for (key, value) in env.iter().chain(ctx.extra_env.iter()) {
        flags.push(format!("--env={key}={value}"));
    }
    if container.command.is_some() {
        return Err(field(
            format!("{at}.command"),
            "not translated (the image's entrypoint runs)",
        ));
    }
    let args = container
        .args
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|a| override_arg(&expand(a, &env), &ctx.arg_overrides))
        .collect();
    let image = container
        .image
        .clone()
        .ok_or_else(|| field(format!("{at}.image"), "missing"))?;
    Ok(RunSpec { flags, args, image })
}

fn security_flags(
    container: &Container,
    pod: Option<&PodSecurityContext>,
    at: &str,
    ctx: &Context,
) -> Result<Vec<String>, TranslateError> {
    let sc = container.security_context.clone().unwrap_or_default();
    let at = format!("{at}.securityContext");
    if sc.privileged == Some(true) {
        return Err(field(
            format!("{at}.privileged"),
            "netheal never runs privileged",
        ));
    }
    let mut flags = Vec::new();
    let caps = sc.capabilities.unwrap_or_default();
    let drops = caps.drop.unwrap_or_default();
    if !drops.iter().any(|d| d == "ALL") {
        return Err(field(
            format!("{at}.capabilities.drop"),
            "must drop ALL (the runtime's default set is not translated)",
        ));
    }
    flags.push("--cap-drop=all".to_string());
    for cap in caps.add.unwrap_or_default() {
        if !ctx.without_capabilities.contains(&cap) {
            flags.push(format!("--cap-add={cap}"));
        }
    }
    if sc.read_only_root_filesystem == Some(true) {
        // Kubernetes adds no tmpfs to a read-only root; podman does unless told not to.
        flags.push("--read-only".to_string());
        flags.push("--read-only-tmpfs=false".to_string());
    }
    if sc.allow_privilege_escalation == Some(false) {
        flags.push("--security-opt=no-new-privileges".to_string());
    }
    let user = sc.run_as_user.or_else(|| pod.and_then(|p| p.run_as_user));
    let group = sc.run_as_group.or_else(|| pod.and_then(|p| p.run_as_group));
    let non_root = sc
        .run_as_non_root
        .or_else(|| pod.and_then(|p| p.run_as_non_root));
    if non_root == Some(true) && user.is_none_or(|u| u == 0) {
        return Err(field(
            format!("{at}.runAsNonRoot"),
            "set, but no non-zero runAsUser to check it against",
        ));
    }
    match (user, group) {
        (Some(u), Some(g)) => flags.push(format!("--user={u}:{g}")),
        (Some(u), None) => flags.push(format!("--user={u}")),
        (None, _) => {}
    }
    let seccomp = sc
        .seccomp_profile
        .or_else(|| pod.and_then(|p| p.seccomp_profile.clone()));
    match seccomp.as_ref().map(|s| s.type_.as_str()) {
        // podman's default seccomp profile is the runtime default.
        Some("RuntimeDefault") => {}
        other => {
            return Err(field(
                format!("{at}.seccompProfile"),
                format!("{other:?} is not translated (only RuntimeDefault)"),
            ));
        }
    }
    Ok(flags)
}

fn mount_flag(
    volume: &Volume,
    mount_path: &str,
    read_only: bool,
    propagation: Option<&str>,
    ctx: &Context,
) -> Result<String, TranslateError> {
    let at = format!("spec.volumes[{}]", volume.name);
    let mut options = Vec::new();
    if read_only {
        options.push("ro");
    }
    match propagation {
        None | Some("None") => {}
        Some("HostToContainer") => options.push("rslave"),
        Some("Bidirectional") => options.push("rshared"),
        Some(other) => {
            return Err(field(
                format!("{at}.mountPropagation"),
                format!("unknown {other}"),
            ));
        }
    }
    let suffix = if options.is_empty() {
        String::new()
    } else {
        format!(":{}", options.join(","))
    };
    if let Some(host) = &volume.host_path {
        let source = ctx
            .host_paths
            .get(&host.path)
            .cloned()
            .unwrap_or_else(|| host.path.clone());
        return Ok(format!("--volume={source}:{mount_path}{suffix}"));
    }
    if let Some(empty) = &volume.empty_dir {
        let size = empty
            .size_limit
            .as_ref()
            .map(|q| format!(",size={}", tmpfs_size(&q.0)))
            .unwrap_or_default();
        return Ok(format!("--tmpfs={mount_path}:rw{size}"));
    }
    if volume.projected.is_some() {
        let dir = ctx.service_account_dir.as_ref().ok_or_else(|| {
            field(
                &at,
                "a projected volume, and no ServiceAccount folder was given",
            )
        })?;
        return Ok(format!("--volume={dir}:{mount_path}:ro"));
    }
    Err(field(
        at,
        "only hostPath, emptyDir and the ServiceAccount token volume are translated",
    ))
}

/// A Kubernetes quantity (`16Mi`, `1Gi`, `512Ki`, plain bytes) as a tmpfs size.
fn tmpfs_size(quantity: &str) -> String {
    for (suffix, unit) in [("Ki", "k"), ("Mi", "m"), ("Gi", "g")] {
        if let Some(n) = quantity.strip_suffix(suffix) {
            return format!("{n}{unit}");
        }
    }
    quantity.to_string()
}

fn environment(
    pod: &Pod,
    container: &Container,
    at: &str,
) -> Result<Vec<(String, String)>, TranslateError> {
    let mut env = Vec::new();
    for var in container.env.as_deref().unwrap_or_default() {
        env.push((var.name.clone(), env_value(pod, var, at)?));
    }
    Ok(env)
}

fn env_value(pod: &Pod, var: &EnvVar, at: &str) -> Result<String, TranslateError> {
    if let Some(value) = &var.value {
        return Ok(value.clone());
    }
    let path = var
        .value_from
        .as_ref()
        .and_then(|f| f.field_ref.as_ref())
        .map(|f| f.field_path.as_str())
        .ok_or_else(|| {
            field(
                format!("{at}.env[{}]", var.name),
                "only value and fieldRef are translated",
            )
        })?;
    let value = match path {
        "spec.nodeName" => pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        "metadata.name" => pod.metadata.name.clone(),
        "metadata.namespace" => pod.metadata.namespace.clone(),
        "status.podIP" => pod.status.as_ref().and_then(|s| s.pod_ip.clone()),
        other => {
            return Err(field(
                format!("{at}.env[{}].valueFrom.fieldRef", var.name),
                format!("{other} is not translated"),
            ));
        }
    };
    value.ok_or_else(|| {
        field(
            format!("{at}.env[{}]", var.name),
            format!("the Pod has no {path}"),
        )
    })
}

/// `$(NAME)` replaced by the variable's value, as the kubelet expands arguments.
fn expand(arg: &str, env: &[(String, String)]) -> String {
    let mut out = arg.to_string();
    for (key, value) in env {
        out = out.replace(&format!("$({key})"), value);
    }
    out
}

fn override_arg(arg: &str, overrides: &BTreeMap<String, String>) -> String {
    match arg.split_once('=') {
        Some((flag, _)) => match overrides.get(flag) {
            Some(value) => format!("{flag}={value}"),
            None => arg.to_string(),
        },
        None => arg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn daemonset_pod() -> Pod {
        let root = crate::harness::bins::workspace_root();
        let text = std::fs::read_to_string(root.join("config/node-fixer/daemonset.yaml")).unwrap();
        let ds: k8s_openapi::api::apps::v1::DaemonSet = serde_yaml::from_str(&text).unwrap();
        let template = ds.spec.unwrap().template;
        let mut spec = template.spec.unwrap();
        spec.node_name = Some("node1".into());
        Pod {
            metadata: template.metadata.unwrap_or_default(),
            spec: Some(spec),
            status: None,
        }
    }

    fn context() -> Context {
        Context {
            container: "node-fixer".into(),
            netns_path: "/var/run/netns/n1".into(),
            host_paths: [("/etc/sysctl.d".to_string(), "/tmp/t/sysctl.d".to_string())].into(),
            arg_overrides: [(
                "--pod-netns".to_string(),
                "/var/run/netns/cni-x-*".to_string(),
            )]
            .into(),
            ..Context::default()
        }
    }

    #[test]
    fn the_daemonset_is_translated_flag_by_flag() {
        let spec = run_spec(&daemonset_pod(), &context()).unwrap();
        let has = |f: &str| spec.flags.iter().any(|x| x == f);
        assert!(has("--network=ns:/var/run/netns/n1"));
        assert!(has("--cap-drop=all"));
        for cap in ["NET_ADMIN", "NET_RAW", "SYS_ADMIN"] {
            assert!(has(&format!("--cap-add={cap}")), "{cap}: {:?}", spec.flags);
        }
        assert_eq!(
            spec.flags
                .iter()
                .filter(|f| f.starts_with("--cap-add"))
                .count(),
            3
        );
        assert!(has("--read-only") && has("--read-only-tmpfs=false"));
        assert!(has("--user=0"));
        assert!(has("--volume=/proc/sys/net:/host/proc/sys/net"));
        assert!(has("--volume=/var/run/netns:/var/run/netns:ro,rslave"));
        assert!(has("--volume=/run/xtables.lock:/run/xtables.lock"));
        assert!(has("--volume=/tmp/t/sysctl.d:/host/etc/sysctl.d"));
        assert!(has("--tmpfs=/tmp:rw,size=16m"));
        assert!(has("--env=NODE_NAME=node1"));
        assert!(has("--env=NETHEAL_PROC_SYS=/host/proc/sys"));
        assert!(spec.args.contains(&"--node-name=node1".to_string()));
        assert!(
            spec.args
                .contains(&"--pod-netns=/var/run/netns/cni-x-*".to_string())
        );
    }

    #[test]
    fn a_capability_can_be_withheld() {
        let mut ctx = context();
        ctx.without_capabilities = vec!["SYS_ADMIN".into()];
        let spec = run_spec(&daemonset_pod(), &ctx).unwrap();
        assert!(!spec.flags.iter().any(|f| f == "--cap-add=SYS_ADMIN"));
        assert!(spec.flags.iter().any(|f| f == "--cap-add=NET_ADMIN"));
    }

    #[test]
    fn privileges_the_translation_does_not_know_are_refused_by_name() {
        let mut pod = daemonset_pod();
        let spec = pod.spec.as_mut().unwrap();
        spec.containers[0]
            .security_context
            .as_mut()
            .unwrap()
            .privileged = Some(true);
        let err = run_spec(&pod, &context()).unwrap_err();
        assert!(
            err.to_string().contains("securityContext.privileged"),
            "{err}"
        );

        let mut pod = daemonset_pod();
        let spec = pod.spec.as_mut().unwrap();
        spec.volumes.as_mut().unwrap()[0].host_path = None;
        let err = run_spec(&pod, &context()).unwrap_err();
        assert!(
            err.to_string().contains("spec.volumes[host-proc-sys-net]"),
            "{err}"
        );
    }

    #[test]
    fn quantities_become_tmpfs_sizes() {
        assert_eq!(tmpfs_size("16Mi"), "16m");
        assert_eq!(tmpfs_size("1Gi"), "1g");
        assert_eq!(tmpfs_size("4096"), "4096");
    }
}
