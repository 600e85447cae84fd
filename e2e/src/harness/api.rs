//! Calls the scenarios make against the API: install the CRDs, apply and patch policies, read
//! reports and policy status, list Events.

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use netheal_crds::{Mode, NetworkHealthPolicy, NetworkHealthPolicySpec, NodeNetworkReport};
use serde_json::{Value, json};
use std::path::Path;

/// An API call of the harness failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The API server answered with an error (or could not be reached).
    #[error("{what}: {source}")]
    Kube {
        /// What was being done.
        what: String,
        /// The client's error.
        source: kube::Error,
    },
    /// A manifest could not be read or parsed.
    #[error("{path}: {message}")]
    Manifest {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> ApiError {
    let what = what.into();
    move |source| ApiError::Kube { what, source }
}

/// Create every CRD in `dir/*.yaml` (skipping `kustomization.yaml`). Returns their names.
pub async fn apply_crds(client: &Client, dir: &Path) -> Result<Vec<String>, ApiError> {
    let manifest = |message: String| ApiError::Manifest {
        path: dir.display().to_string(),
        message,
    };
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| manifest(e.to_string()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yaml")
                && p.file_name().is_some_and(|n| n != "kustomization.yaml")
        })
        .collect();
    files.sort();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|e| ApiError::Manifest {
            path: file.display().to_string(),
            message: e.to_string(),
        })?;
        let crd: CustomResourceDefinition =
            serde_yaml::from_str(&text).map_err(|e| ApiError::Manifest {
                path: file.display().to_string(),
                message: e.to_string(),
            })?;
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.create(&PostParams::default(), &crd)
            .await
            .map_err(kube_err(format!("create CRD {name}")))?;
        names.push(name);
    }
    Ok(names)
}

/// Create a policy named `name` with `spec`.
pub async fn create_policy(
    client: &Client,
    name: &str,
    spec: NetworkHealthPolicySpec,
) -> Result<NetworkHealthPolicy, ApiError> {
    let policy = NetworkHealthPolicy::new(name, spec);
    Api::<NetworkHealthPolicy>::all(client.clone())
        .create(&PostParams::default(), &policy)
        .await
        .map_err(kube_err(format!("create policy {name}")))
}

/// Merge-patch the spec of policy `name` (`{"remediation": {...}}`…).
pub async fn patch_policy_spec(
    client: &Client,
    name: &str,
    spec_patch: Value,
) -> Result<NetworkHealthPolicy, ApiError> {
    Api::<NetworkHealthPolicy>::all(client.clone())
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": spec_patch })),
        )
        .await
        .map_err(kube_err(format!("patch policy {name}")))
}

/// Switch policy `name` to `mode`.
pub async fn set_mode(
    client: &Client,
    name: &str,
    mode: Mode,
) -> Result<NetworkHealthPolicy, ApiError> {
    let mode = match mode {
        Mode::DryRun => "DryRun",
        Mode::Enforce => "Enforce",
    };
    patch_policy_spec(client, name, json!({ "mode": mode })).await
}

/// Read policy `name`.
pub async fn policy(client: &Client, name: &str) -> Result<NetworkHealthPolicy, ApiError> {
    Api::<NetworkHealthPolicy>::all(client.clone())
        .get(name)
        .await
        .map_err(kube_err(format!("get policy {name}")))
}

/// Read the report of node `node`, `None` while it does not exist.
pub async fn report(client: &Client, node: &str) -> Result<Option<NodeNetworkReport>, ApiError> {
    Api::<NodeNetworkReport>::all(client.clone())
        .get_opt(node)
        .await
        .map_err(kube_err(format!("get report {node}")))
}

/// Every report.
pub async fn reports(client: &Client) -> Result<Vec<NodeNetworkReport>, ApiError> {
    Ok(Api::<NodeNetworkReport>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(kube_err("list reports"))?
        .items)
}

/// Every `events.k8s.io/v1` Event, in every namespace.
pub async fn events(client: &Client) -> Result<Vec<Event>, ApiError> {
    Ok(Api::<Event>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(kube_err("list events"))?
        .items)
}

/// Create Node `node`.
pub async fn create_node(client: &Client, node: &Node) -> Result<Node, ApiError> {
    let name = node.metadata.name.clone().unwrap_or_default();
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), node)
        .await
        .map_err(kube_err(format!("create node {name}")))
}

/// Merge-patch Node `name`.
pub async fn patch_node(client: &Client, name: &str, patch: Value) -> Result<Node, ApiError> {
    Api::<Node>::all(client.clone())
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(kube_err(format!("patch node {name}")))
}

/// Create `pod` and, when `status` is given, write it through `/status` (what the kubelet
/// does once the pod runs; the API server sets a new pod's status to Pending).
pub async fn create_pod(
    client: &Client,
    pod: &Pod,
    status: Option<Value>,
) -> Result<Pod, ApiError> {
    let mut pod = pod.clone();
    adopt(client, &mut pod).await?;
    let pod = &pod;
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let created = api
        .create(&PostParams::default(), pod)
        .await
        .map_err(kube_err(format!("create pod {namespace}/{name}")))?;
    match status {
        Some(status) => set_pod_status(client, &namespace, &name, status).await,
        None => Ok(created),
    }
}

/// Merge-patch the status of pod `namespace/name`.
pub async fn set_pod_status(
    client: &Client,
    namespace: &str,
    name: &str,
    status: Value,
) -> Result<Pod, ApiError> {
    Api::<Pod>::namespaced(client.clone(), namespace)
        .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .map_err(kube_err(format!("patch status of pod {namespace}/{name}")))
}

/// Every pod in every namespace.
pub async fn pods(client: &Client) -> Result<Vec<Pod>, ApiError> {
    Ok(Api::<Pod>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(kube_err("list pods"))?
        .items)
}

/// Make sure namespace `name` exists.
pub async fn ensure_namespace(client: &Client, name: &str) -> Result<(), ApiError> {
    use k8s_openapi::api::core::v1::Namespace;
    let api: Api<Namespace> = Api::all(client.clone());
    if api
        .get_opt(name)
        .await
        .map_err(kube_err(format!("get namespace {name}")))?
        .is_some()
    {
        return Ok(());
    }
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name}})).map_err(|e| {
            ApiError::Manifest {
                path: "namespace".into(),
                message: e.to_string(),
            }
        })?;
    api.create(&PostParams::default(), &ns)
        .await
        .map_err(kube_err(format!("create namespace {name}")))?;
    Ok(())
}

/// The uid of the controller `kind` (`DaemonSet` or `ReplicaSet`) `namespace/name`, created
/// first when it does not exist (a minimal object: the API server's garbage collector deletes
/// pods whose owner does not exist, as a real one does).
pub async fn ensure_owner(
    client: &Client,
    kind: &str,
    namespace: &str,
    name: &str,
    labels: &std::collections::BTreeMap<String, String>,
) -> Result<String, ApiError> {
    use k8s_openapi::api::apps::v1::{DaemonSet, ReplicaSet};
    let body = json!({
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]},
            },
        },
    });
    let manifest = |e: serde_json::Error| ApiError::Manifest {
        path: format!("{kind} {namespace}/{name}"),
        message: e.to_string(),
    };
    let what = format!("{kind} {namespace}/{name}");
    let uid = match kind {
        "DaemonSet" => {
            let api: Api<DaemonSet> = Api::namespaced(client.clone(), namespace);
            match api.get_opt(name).await.map_err(kube_err(what.clone()))? {
                Some(o) => o.metadata.uid,
                None => {
                    let obj: DaemonSet = serde_json::from_value(body).map_err(manifest)?;
                    api.create(&PostParams::default(), &obj)
                        .await
                        .map_err(kube_err(format!("create {what}")))?
                        .metadata
                        .uid
                }
            }
        }
        _ => {
            let api: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
            match api.get_opt(name).await.map_err(kube_err(what.clone()))? {
                Some(o) => o.metadata.uid,
                None => {
                    let obj: ReplicaSet = serde_json::from_value(body).map_err(manifest)?;
                    api.create(&PostParams::default(), &obj)
                        .await
                        .map_err(kube_err(format!("create {what}")))?
                        .metadata
                        .uid
                }
            }
        }
    };
    uid.ok_or_else(|| ApiError::Manifest {
        path: what,
        message: "the API server returned no uid".into(),
    })
}

/// Point `pod`'s controller owner references at the real owner objects (created when
/// missing), keeping everything else.
pub async fn adopt(client: &Client, pod: &mut Pod) -> Result<(), ApiError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    for owner in pod.metadata.owner_references.iter_mut().flatten() {
        if owner.kind == "DaemonSet" || owner.kind == "ReplicaSet" {
            owner.uid = ensure_owner(client, &owner.kind, &namespace, &owner.name, &labels).await?;
        }
    }
    Ok(())
}
