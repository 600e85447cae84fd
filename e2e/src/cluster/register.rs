//! Writing the cluster's Node and Pod objects into an API server: create, or merge-patch when
//! the object exists; then merge-patch the status subresource (an API server ignores `status`
//! on create for most kinds). Pods are written without owner references: the garbage
//! collector deletes a pod whose owner does not exist, and the owners here are only names (the
//! e2e harness gives a controller-owned pod a real ReplicaSet instead).

use std::fmt::Debug;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Cluster, ClusterError};

fn api_error(what: String) -> impl FnOnce(kube::Error) -> ClusterError {
    move |source| ClusterError::Api {
        what,
        source: Box::new(source),
    }
}

fn is_conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 409 || s.is_already_exists())
}

fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.is_not_found())
}

/// Create `obj`, or merge-patch it when it exists; then merge-patch its status.
pub async fn upsert<K>(api: &Api<K>, obj: &K) -> Result<(), ClusterError>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    let name = obj.name_any();
    let kind = K::kind(&Default::default()).to_string();
    let mut body = serde_json::to_value(obj).map_err(|source| ClusterError::Parse {
        what: format!("{kind} {name}"),
        source,
    })?;
    let status = body
        .as_object_mut()
        .and_then(|o| o.remove("status"))
        .filter(|s| !s.is_null());
    match api.create(&PostParams::default(), obj).await {
        Ok(_) => {}
        Err(err) if is_conflict(&err) => {
            if let Some(meta) = body.get_mut("metadata").and_then(|m| m.as_object_mut()) {
                meta.remove("uid");
            }
            if kind == "Pod" {
                // A pod's spec is immutable once created (the API server refuses the patch).
                if let Some(o) = body.as_object_mut() {
                    o.remove("spec");
                }
            }
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&body))
                .await
                .map_err(api_error(format!("patch {kind} {name}")))?;
        }
        Err(err) => return Err(api_error(format!("create {kind} {name}"))(err)),
    }
    if let Some(status) = status {
        let patch = serde_json::json!({ "status": status });
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(api_error(format!("patch status of {kind} {name}")))?;
    }
    Ok(())
}

impl Cluster {
    /// Create or update every Node and Pod object of the cluster (see `node_objects` and
    /// `pod_objects`). Call again after a change (a node joined, a VTEP MAC changed, pods were
    /// added) to bring the API up to date.
    pub async fn register(&self, client: &Client) -> Result<(), ClusterError> {
        let nodes: Api<Node> = Api::all(client.clone());
        for node in self.node_objects() {
            upsert(&nodes, &node).await?;
        }
        for mut pod in self.pod_objects() {
            pod.metadata.owner_references = None;
            let ns = pod.namespace().unwrap_or_else(|| "default".into());
            let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
            upsert(&pods, &pod).await?;
        }
        Ok(())
    }
}

/// Delete a Node object and its CNI agent pod (after `Cluster::remove_node`; the pod at once,
/// grace period 0, as no kubelet is left to finish it). Objects that are already gone are fine.
pub async fn unregister_node(client: &Client, node: &str) -> Result<(), ClusterError> {
    let nodes: Api<Node> = Api::all(client.clone());
    match nodes.delete(node, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(err) if is_not_found(&err) => {}
        Err(err) => return Err(api_error(format!("delete Node {node}"))(err)),
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), "kube-system");
    for daemonset in [
        super::objects::CNI_DAEMONSET,
        super::objects::CALICO_DAEMONSET,
    ] {
        let agent = format!("{daemonset}-{node}");
        match pods
            .delete(&agent, &DeleteParams::default().grace_period(0))
            .await
        {
            Ok(_) => {}
            Err(err) if is_not_found(&err) => {}
            Err(err) => return Err(api_error(format!("delete Pod kube-system/{agent}"))(err)),
        }
    }
    Ok(())
}
