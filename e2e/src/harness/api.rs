//! Calls the scenarios make against the API: install the CRDs, apply and patch policies, read
//! reports and policy status, list Events.

use k8s_openapi::api::apps::v1::{DaemonSet, ReplicaSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use netheal_crds::{Mode, NetworkHealthPolicy, NetworkHealthPolicySpec, NodeNetworkReport};
use serde_json::{Value, json};

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

/// Create Node `node`, then write its status (an API server ignores `status` on create), as
/// a kubelet registers its node.
pub async fn create_node(client: &Client, node: &Node) -> Result<Node, ApiError> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let api = Api::<Node>::all(client.clone());
    let mut body = node.clone();
    body.metadata.uid = None;
    let status = body.status.take();
    api.create(&PostParams::default(), &body)
        .await
        .map_err(kube_err(format!("create node {name}")))?;
    api.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .map_err(kube_err(format!("status of node {name}")))
}

/// Merge-patch Node `name`.
pub async fn patch_node(client: &Client, name: &str, patch: Value) -> Result<Node, ApiError> {
    Api::<Node>::all(client.clone())
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(kube_err(format!("patch node {name}")))
}

/// Create `pod` (its status is the kubelet emulation's to write).
pub async fn create_pod(client: &Client, pod: &Pod) -> Result<Pod, ApiError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    Api::<Pod>::namespaced(client.clone(), &namespace)
        .create(&PostParams::default(), pod)
        .await
        .map_err(kube_err(format!("create pod {namespace}/{name}")))
}

/// Read pod `namespace/name`, `None` when it does not exist.
pub async fn pod(client: &Client, namespace: &str, name: &str) -> Result<Option<Pod>, ApiError> {
    Api::<Pod>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(kube_err(format!("get pod {namespace}/{name}")))
}

/// The pods of `namespace` that match label `selector`.
pub async fn pods_selected(
    client: &Client,
    namespace: &str,
    selector: &str,
) -> Result<Vec<Pod>, ApiError> {
    Ok(Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(kube_err(format!("list pods {selector} in {namespace}")))?
        .items)
}

/// Create ReplicaSet `rs`.
pub async fn create_replicaset(client: &Client, rs: &ReplicaSet) -> Result<(), ApiError> {
    let namespace = rs.metadata.namespace.clone().unwrap_or_default();
    let name = rs.metadata.name.clone().unwrap_or_default();
    Api::<ReplicaSet>::namespaced(client.clone(), &namespace)
        .create(&PostParams::default(), rs)
        .await
        .map_err(kube_err(format!("create ReplicaSet {namespace}/{name}")))?;
    Ok(())
}

/// Create the CNI agent DaemonSet (`kube-system/<agent>`: canal or calico-node).
pub async fn create_cni_daemonset(client: &Client, agent: &str) -> Result<(), ApiError> {
    let ds = super::objects::cni_daemonset(agent).map_err(|e| ApiError::Manifest {
        path: format!("DaemonSet {agent}"),
        message: e.to_string(),
    })?;
    Api::<DaemonSet>::namespaced(client.clone(), super::objects::AGENT_NAMESPACE)
        .create(&PostParams::default(), &ds)
        .await
        .map_err(kube_err(&format!("create DaemonSet {agent}")))?;
    Ok(())
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
