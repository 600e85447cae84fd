//! netheal's images (`make images`) run with exactly the privileges their manifests grant.
//!
//! - The node-fixer image is node1's agent: the DaemonSet's Pod on node1, as the real DaemonSet
//!   controller made it, run by podman in node1's network namespace with the Pod's
//!   securityContext, mounts and environment translated field by field
//!   (`netheal_e2e::container::translate`), its pod-bound ServiceAccount token mounted where the
//!   Pod's token volume goes, and the in-cluster address of the real API server. The operator
//!   image runs as its Deployment's Pod (uid 65532, read-only root, no capabilities). Together
//!   they heal every node-local seed fault of node1.
//! - The node-fixer image's `fix` with one of the DaemonSet's capabilities withheld fails on the
//!   fix that needs it, says why, and leaves the value as it was.

#![allow(clippy::unwrap_used)]

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Pod;
use netheal_crds::{Action, Check, Mode};
use netheal_e2e::cluster::{Cluster, PodOptions, PodStyle, faults};
use netheal_e2e::container::{self, translate};
use netheal_e2e::harness::policies::{POLICY, scenario_policy};
use netheal_e2e::harness::{Harness, HarnessOptions, bins, read_sysctl};
use netheal_e2e::procfs;
use std::time::Duration;

/// The capability names, by bit (linux/capability.h).
const CAPABILITIES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// What the kernel says the container's process has: its effective capabilities, uid and
/// `NoNewPrivs`, from `/proc/<pid>/status`.
fn process_status(inspect: &serde_json::Value) -> (Vec<&'static str>, String, String) {
    let pid = inspect["State"]["Pid"].as_u64().unwrap().to_string();
    let field = |name: &str| procfs::status_field(&pid, name).unwrap_or_default();
    let eff = u64::from_str_radix(&field("CapEff"), 16).unwrap();
    let caps = (0..CAPABILITIES.len())
        .filter(|bit| eff & (1 << bit) != 0)
        .map(|bit| CAPABILITIES[bit])
        .collect();
    let uid = field("Uid")
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    (caps, uid, field("NoNewPrivs"))
}

/// `podman inspect` of a container the harness started (`podman run` creates it shortly after).
async fn inspect(name: &str) -> serde_json::Value {
    let mut last = String::new();
    for _ in 0..100 {
        match container::inspect(name) {
            Ok(v) if v["State"]["Running"] == true => return v,
            Ok(v) => last = format!("{}", v["State"]),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("container {name} is not running: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_images_heal_every_node_local_fault_with_the_manifests_privileges() {
    let mut opts = HarnessOptions::new("i1", 2);
    opts.agent_containers = vec!["node1".into()];
    opts.operator_container = true;
    let h = Harness::start(opts).await.unwrap();

    // The containers run with what the manifests say, and nothing more: the kernel's view of
    // their processes.
    let agent = inspect(&h.container_name("agent-node1")).await;
    let (caps, uid, _) = process_status(&agent);
    assert_eq!(caps, ["NET_ADMIN", "NET_RAW", "SYS_ADMIN"]);
    assert_eq!(uid, "0");
    assert_eq!(agent["HostConfig"]["Privileged"], false);
    assert_eq!(agent["HostConfig"]["ReadonlyRootfs"], true);
    let operator = inspect(&h.container_name("operator")).await;
    let (caps, uid, no_new_privs) = process_status(&operator);
    assert!(caps.is_empty(), "{caps:?}");
    assert_eq!(uid, "65532");
    assert_eq!(no_new_privs, "1", "allowPrivilegeEscalation: false");
    assert_eq!(operator["HostConfig"]["ReadonlyRootfs"], true);

    let a = h.add_pod("node1", PodOptions::bridge()).await.unwrap();
    let b = h.add_pod("node2", PodOptions::bridge()).await.unwrap();
    h.create_policy(POLICY, scenario_policy(Mode::Enforce))
        .await
        .unwrap();

    // Every node-local seed fault on node1 at once. node1's agent reaches the API server on
    // node1's loopback (through the harness's relay), so the host firewall keeps accepting
    // loopback before its catch-all REJECT, as RHEL's default ruleset does
    // (`-A INPUT -i lo -j ACCEPT`); netheal must leave that rule alone.
    let lo_rule = ["-I", "INPUT", "1", "-i", "lo", "-j", "ACCEPT"];
    h.with_cluster(move |c| {
        c.node("node1")?.netns.exec("iptables", &lo_rule)?;
        Ok(())
    })
    .await
    .unwrap();
    h.with_cluster(|c| c.inject_ip_forward_off("node1"))
        .await
        .unwrap();
    h.with_cluster(|c| c.inject_reject_rules("node1"))
        .await
        .unwrap();
    h.with_cluster(|c| c.inject_arp_ignore("node1", PodStyle::Calico))
        .await
        .unwrap();
    h.register_new_pods().await.unwrap();
    let joined = h
        .with_cluster(|c| Ok(c.pods().last().map(|p| p.netns.name().to_string())))
        .await
        .unwrap()
        .unwrap();
    h.with_cluster(|c| c.inject_vtep_mac_change("node2"))
        .await
        .unwrap();
    h.sync_node_object("node2").await.unwrap();
    let vtep = h
        .with_cluster(|c| Ok(c.node("node2")?.vtep_ip))
        .await
        .unwrap();

    let node_ns = h.node_netns("node1");
    let pod_target = format!("netns {joined} net.ipv4.conf.all.arp_ignore");
    for (action, target) in [
        (Action::SetSysctl, "net.ipv4.ip_forward".to_string()),
        (
            Action::SetSysctl,
            "net.ipv4.conf.all.arp_ignore".to_string(),
        ),
        (Action::SetSysctl, pod_target.clone()),
        (
            Action::RemoveRejectRule,
            "filter INPUT -j REJECT --reject-with icmp-host-prohibited".to_string(),
        ),
        (
            Action::RemoveRejectRule,
            "filter FORWARD -j REJECT --reject-with icmp-host-prohibited".to_string(),
        ),
        (
            Action::DeleteNeighbour,
            format!("neigh {vtep} dev flannel.1"),
        ),
    ] {
        let t = target.clone();
        h.expect_applied(POLICY, "node1", action, move |r| r.target == t)
            .await
            .unwrap_or_else(|e| panic!("{action:?} {target}: {e}\n{}", h.log_files()));
    }
    h.wait_ping(&a.netns, b.ip, true, Duration::from_secs(60))
        .await
        .unwrap();
    for check in [
        Check::IpForward,
        Check::RejectRule,
        Check::ArpIgnore,
        Check::StaleNeighbour,
    ] {
        h.expect_finding_cleared("node1", check).await.unwrap();
    }
    assert_eq!(read_sysctl(&node_ns, "net/ipv4/ip_forward").unwrap(), "1");
    for ns in [&node_ns, &joined] {
        assert_eq!(
            read_sysctl(ns, "net/ipv4/conf/all/arp_ignore").unwrap(),
            "0",
            "{ns}"
        );
    }
    let save = h.with_cluster(|c| c.iptables_save("node1")).await.unwrap();
    assert!(!save.contains("icmp-host-prohibited"), "{save}");
    assert!(save.contains("-A INPUT -i lo -j ACCEPT"), "{save}");
    // The sysctl drop-in went where the DaemonSet mounts /etc/sysctl.d (redirected here).
    let dropin = h.log_dir().join("sysctl.d/node1/90-netheal.conf");
    let text = std::fs::read_to_string(&dropin).unwrap_or_default();
    assert!(
        text.contains("net.ipv4.conf.all.arp_ignore = 0")
            && text.contains("net.ipv4.ip_forward = 1"),
        "{}: {text}",
        dropin.display()
    );
}

/// The DaemonSet's Pod as the manifest declares it, bound to `node`.
fn daemonset_pod(node: &str) -> Pod {
    let path = bins::workspace_root().join("config/node-fixer/daemonset.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let ds: DaemonSet = serde_yaml::from_str(&text).unwrap();
    let template = ds.spec.unwrap().template;
    let mut spec = template.spec.unwrap();
    spec.node_name = Some(node.into());
    Pod {
        metadata: template.metadata.unwrap_or_default(),
        spec: Some(spec),
        status: None,
    }
}

/// `node-fixer fix --output json` in the image, in `node`'s namespace, with the DaemonSet's
/// privileges less `without`: (exit success, the JSON report, stderr).
fn fix_in_container(
    cluster: &Cluster,
    node: &str,
    without: &[&str],
    sysctl_dir: &str,
) -> (bool, serde_json::Value, String) {
    let netns = cluster.node(node).unwrap().netns.name().to_string();
    // flannel's lease folder of the test (the host's /run/flannel is not the test's).
    let flannel = format!("{sysctl_dir}/flannel");
    std::fs::create_dir_all(&flannel).unwrap();
    let ctx = translate::Context {
        container: "node-fixer".into(),
        netns_path: format!("/var/run/netns/{netns}"),
        host_paths: [
            ("/etc/sysctl.d".to_string(), sysctl_dir.to_string()),
            ("/run/flannel".to_string(), flannel),
        ]
        .into(),
        without_capabilities: without.iter().map(|c| c.to_string()).collect(),
        ..translate::Context::default()
    };
    let spec = translate::run_spec(&daemonset_pod(node), &ctx).unwrap();
    let name = format!("netheal-e2e-{}-fix", cluster.name());
    container::remove(&name);
    let pods = format!("--pod-netns=/var/run/netns/cni-{}-{node}-*", cluster.name());
    let args: Vec<String> = vec![
        "fix".into(),
        pods,
        format!("--node-name={node}"),
        "--sysctl-dir=/host/etc/sysctl.d".into(),
        "--output=json".into(),
    ];
    let all = container::run_command(&name, &spec.flags, &container::image("node-fixer"), &args);
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let out = container::podman(&refs).unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (
        out.status.success(),
        report,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn each_capability_the_daemonset_grants_is_needed_and_its_absence_is_a_clear_error() {
    container::require_image(&container::image("node-fixer")).unwrap();
    let prefix = std::env::var("NETHEAL_E2E_PREFIX").unwrap_or_default();
    let mut cluster = Cluster::new(&format!("{prefix}i2")).unwrap();
    cluster.add_node("node1").unwrap();
    let node_ns = cluster.node("node1").unwrap().netns.name().to_string();
    let dir = tempfile::tempdir().unwrap();
    let sysctl_dir = dir.path().display().to_string();

    // Without NET_ADMIN, ip_forward cannot be written: the fix fails, says so, and the value
    // stays what it was.
    cluster
        .node("node1")
        .unwrap()
        .netns
        .set_sysctl("net/ipv4/ip_forward", "0")
        .unwrap();
    let (ok, report, stderr) = fix_in_container(&cluster, "node1", &["NET_ADMIN"], &sysctl_dir);
    let text = format!("{report}\n{stderr}");
    eprintln!("without NET_ADMIN: {text}");
    assert!(!ok, "a failed fix must fail the command: {text}");
    assert!(
        text.contains("ip_forward") && text.contains("ermission denied")
            || text.contains("not permitted"),
        "the error names the key and the reason: {text}"
    );
    assert_eq!(read_sysctl(&node_ns, "net/ipv4/ip_forward").unwrap(), "0");

    // Without SYS_ADMIN, the agent cannot enter a pod's namespace: the pod's arp_ignore fix
    // fails, says so, and the pod keeps its value; the node's own fixes still apply.
    cluster.add_pod("node1", PodOptions::calico()).unwrap();
    let mut calico = PodOptions::calico();
    calico.app = "joined".into();
    for scope in ["all", "default"] {
        let key = format!("net/ipv4/conf/{scope}/arp_ignore");
        cluster
            .node("node1")
            .unwrap()
            .netns
            .set_sysctl(&key, "2")
            .unwrap();
    }
    let pod_ns = cluster
        .add_pod("node1", calico)
        .unwrap()
        .netns
        .name()
        .to_string();
    assert_eq!(
        read_sysctl(&pod_ns, "net/ipv4/conf/all/arp_ignore").unwrap(),
        "2"
    );
    let (ok, report, stderr) = fix_in_container(&cluster, "node1", &["SYS_ADMIN"], &sysctl_dir);
    let text = format!("{report}\n{stderr}");
    eprintln!("without SYS_ADMIN: {text}");
    assert!(!ok, "{text}");
    assert!(
        text.contains(&pod_ns),
        "the error names the pod namespace: {text}"
    );
    assert_eq!(
        read_sysctl(&pod_ns, "net/ipv4/conf/all/arp_ignore").unwrap(),
        "2"
    );
    assert_eq!(read_sysctl(&node_ns, "net/ipv4/ip_forward").unwrap(), "1");

    // Without NET_RAW, iptables-legacy (which opens a raw socket) cannot read or change the
    // rules: the REJECT rule stays and the error says why.
    let rule = faults::split_rule(faults::REJECT_RULES[0]);
    let rule: Vec<&str> = rule.iter().map(String::as_str).collect();
    let legacy = cluster.node("node1").unwrap();
    legacy.netns.exec("iptables-legacy", &rule).unwrap();
    let (ok, report, stderr) = fix_in_container(&cluster, "node1", &["NET_RAW"], &sysctl_dir);
    let text = format!("{report}\n{stderr}");
    eprintln!("without NET_RAW: {text}");
    assert!(!ok, "{text}");
    assert!(
        text.contains("iptables-legacy"),
        "the error names the program: {text}"
    );
    let save = |c: &Cluster| {
        let out = c
            .node("node1")
            .unwrap()
            .netns
            .exec("iptables-legacy-save", &[])
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert!(save(&cluster).contains("icmp-host-prohibited"));

    // With every capability the manifest grants, everything is fixed.
    let (ok, report, stderr) = fix_in_container(&cluster, "node1", &[], &sysctl_dir);
    assert!(ok, "{report}\n{stderr}");
    assert_eq!(
        read_sysctl(&pod_ns, "net/ipv4/conf/all/arp_ignore").unwrap(),
        "0"
    );
    assert_eq!(
        read_sysctl(&node_ns, "net/ipv4/conf/all/arp_ignore").unwrap(),
        "0"
    );
    assert!(
        !save(&cluster).contains("icmp-host-prohibited"),
        "{}",
        save(&cluster)
    );
}

/// Copy `path` out of `image` (without running it) into a string.
fn file_in_image(image: &str, path: &str) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("netheal-e2e-files-{}", std::process::id());
    container::remove(&name);
    container::podman_ok(&["create", "--name", &name, image]).unwrap();
    let dest = dir.path().join("file");
    let copied = container::podman(&["cp", &format!("{name}:{path}"), &dest.display().to_string()])
        .unwrap()
        .status
        .success();
    container::remove(&name);
    copied.then(|| std::fs::read_to_string(&dest).unwrap())
}

#[test]
fn the_images_hold_only_what_their_binary_needs() {
    let operator = container::image("operator");
    let node_fixer = container::image("node-fixer");
    container::require_image(&operator).unwrap();
    container::require_image(&node_fixer).unwrap();
    for image in [&operator, &node_fixer] {
        assert!(
            file_in_image(image, "/bin/sh").is_none(),
            "{image} has a shell"
        );
        assert!(
            file_in_image(image, "/usr/bin/dpkg").is_none(),
            "{image} has dpkg"
        );
    }
    assert_eq!(
        file_in_image(&operator, "/etc/netheal-image-packages").unwrap(),
        "gcc-12-base\nlibc6\nlibgcc-s1\n"
    );
    let packages = file_in_image(&node_fixer, "/etc/netheal-image-packages").unwrap();
    assert_eq!(
        packages.lines().collect::<Vec<_>>(),
        [
            "gcc-12-base",
            "iptables",
            "libbsd0",
            "libc6",
            "libedit2",
            "libgcc-s1",
            "libgmp10",
            "libip4tc2",
            "libip6tc2",
            "libjansson4",
            "libmd0",
            "libmnl0",
            "libnetfilter-conntrack3",
            "libnfnetlink0",
            "libnftables1",
            "libnftnl11",
            "libtinfo6",
            "libxtables12",
            "netbase",
            "nftables",
        ]
    );
    assert!(
        file_in_image(&operator, "/etc/passwd")
            .unwrap()
            .contains(":65532:65532:")
    );
    let out = container::podman_ok(&[
        "image",
        "inspect",
        "--format",
        "{{.Config.User}}",
        &operator,
    ])
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "65532:65532");
}
