//! The agent's Kubernetes API calls: thin wrappers, no decisions.
//!
//! The report's status is written with a JSON merge patch on the `/status` subresource that
//! carries every status field ([`status_patch_body`]). When the report does not exist yet (404)
//! it is created first, with an empty spec and an owner reference to this node's Node (so the
//! report goes when the node goes), then patched.

use super::status::status_patch_body;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use netheal_crds::{
    NetworkHealthPolicy, NodeNetworkReport, NodeNetworkReportSpec, NodeNetworkReportStatus,
};

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "netheal-node-fixer";

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The report does not exist and cannot be created yet: the Node is not known.
    #[error(
        "NodeNetworkReport {0} does not exist and Node {0} is not known yet: waiting for the Node"
    )]
    NodeUnknown(String),
    /// The API request failed.
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
}

/// The report object created when absent: named after the node, empty spec, owned by the Node.
pub fn new_report(node: &str, node_uid: &str) -> NodeNetworkReport {
    let mut report = NodeNetworkReport::new(node, NodeNetworkReportSpec::default());
    report.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: node.into(),
        uid: node_uid.into(),
        ..Default::default()
    }]);
    report
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Write `status` into this node's report, creating the report first when it is absent.
/// `node_uid` is the Node's uid when the Node is known.
pub async fn write_status(
    client: &Client,
    node: &str,
    node_uid: Option<&str>,
    status: &NodeNetworkReportStatus,
) -> Result<(), WriteError> {
    let api: Api<NodeNetworkReport> = Api::all(client.clone());
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let body = status_patch_body(status);
    match api.patch_status(node, &params, &Patch::Merge(&body)).await {
        Ok(_) => return Ok(()),
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(e.into()),
    }
    let Some(uid) = node_uid else {
        return Err(WriteError::NodeUnknown(node.to_string()));
    };
    let post = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match api.create(&post, &new_report(node, uid)).await {
        Ok(_) => {}
        // Someone (a previous attempt) created it in between: patch it.
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    api.patch_status(node, &params, &Patch::Merge(&body))
        .await?;
    Ok(())
}

/// Drop what the agent never reads from a Node (a large cluster's nodes are many).
pub fn slim_node(mut node: Node) -> Node {
    node.managed_fields_mut().clear();
    if let Some(status) = node.status.as_mut() {
        status.images = None;
        status.volumes_attached = None;
        status.volumes_in_use = None;
    }
    node
}

/// The API handles the agent watches.
pub fn apis(client: &Client) -> (Api<NetworkHealthPolicy>, Api<Node>, Api<NodeNetworkReport>) {
    (
        Api::all(client.clone()),
        Api::all(client.clone()),
        Api::all(client.clone()),
    )
}
