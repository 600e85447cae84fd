//! The API writes: a report's `spec` (`remediations` and `history`, a JSON merge patch of the
//! fields that changed), a policy's `status` (one merge patch per policy), and the cluster
//! actions (delete a CNI agent pod, evict a pod through the Eviction API).

use crate::decide::cluster_actions::ClusterAction;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use netheal_crds::{
    Action, ActionRecord, NetworkHealthPolicy, NetworkHealthPolicyStatus, NodeNetworkReport,
    NodeNetworkReportSpec, Outcome,
};
use serde_json::{Value, json};

/// The field manager netheal writes as.
pub const FIELD_MANAGER: &str = "netheal-operator";

fn params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

/// The merge patch that sets the fields of a report's spec that differ between `have` and
/// `want`; `None` when none does.
pub fn spec_patch(have: &NodeNetworkReportSpec, want: &NodeNetworkReportSpec) -> Option<Value> {
    let mut spec = serde_json::Map::new();
    if have.remediations != want.remediations {
        spec.insert("remediations".into(), json!(want.remediations));
    }
    if have.history != want.history {
        spec.insert("history".into(), json!(want.history));
    }
    (!spec.is_empty()).then(|| json!({ "spec": spec }))
}

/// Merge-patch the spec of the report of `node`.
pub async fn patch_report_spec(
    client: &Client,
    node: &str,
    patch: Value,
) -> Result<NodeNetworkReport, kube::Error> {
    Api::<NodeNetworkReport>::all(client.clone())
        .patch(node, &params(), &Patch::Merge(patch))
        .await
}

/// The merge patch that sets a policy's whole status: fields the new status leaves out are
/// nulled, so that a merge patch removes them instead of keeping the old values. A status that
/// cannot be serialised is an error, never an empty status (whose patch would null the action
/// history the ledger is rebuilt from).
pub fn status_patch(status: &NetworkHealthPolicyStatus) -> Result<Value, serde_json::Error> {
    let mut value = serde_json::to_value(status)?;
    if let Value::Object(map) = &mut value {
        for key in [
            "observedGeneration",
            "conditions",
            "findings",
            "findingsTruncated",
            "actions",
            "actionsTruncated",
        ] {
            map.entry(key).or_insert(Value::Null);
        }
    }
    Ok(json!({ "status": value }))
}

/// Write a policy's status.
pub async fn patch_status(
    client: &Client,
    policy: &str,
    status: &NetworkHealthPolicyStatus,
) -> Result<NetworkHealthPolicy, kube::Error> {
    Api::<NetworkHealthPolicy>::all(client.clone())
        .patch_status(
            policy,
            &params(),
            &Patch::Merge(status_patch(status).map_err(kube::Error::SerdeError)?),
        )
        .await
}

fn api_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// The Eviction body. Built here rather than with `Api::evict`, whose body spells the field
/// `delete_options` (the API server expects `deleteOptions`, so the uid precondition would be
/// lost).
pub fn eviction(namespace: &str, name: &str, delete: &DeleteParams) -> Value {
    json!({
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": { "name": name, "namespace": namespace },
        "deleteOptions": delete,
    })
}

async fn evict(
    pods: &Api<Pod>,
    namespace: &str,
    name: &str,
    delete: &DeleteParams,
) -> Result<Value, kube::Error> {
    pods.create_subresource(
        "eviction",
        name,
        &PostParams::default(),
        &eviction(namespace, name, delete),
    )
    .await
}

/// The record of a cluster action whose call got no answer in time: `Failed`, since nothing
/// is known (the next pass sees whether the pod went), which starts its cooldown.
pub fn unanswered(
    action: &ClusterAction,
    now: Timestamp,
    after: std::time::Duration,
) -> ActionRecord {
    record_of(
        action,
        now,
        (
            Outcome::Failed,
            format!("pod {}", action.pod),
            String::new(),
        ),
        format!(
            "no answer from the API server within {after:?}; the outcome is unknown until the next pass"
        ),
    )
}

/// The record of `action` at `now`: `(outcome, before, after)` and its message.
fn record_of(
    action: &ClusterAction,
    now: Timestamp,
    (outcome, before, after): (Outcome, String, String),
    message: String,
) -> ActionRecord {
    ActionRecord {
        id: action.id.clone(),
        time: Time(now),
        node: action.node.clone(),
        action: action.action,
        check: Some(action.check),
        target: action.target.clone(),
        before,
        after,
        outcome,
        dry_run: false,
        message: Some(message),
    }
}

/// Take one cluster action and return its record. Never fails: an API error is a `Failed`
/// record (a PodDisruptionBudget refusal, HTTP 429, is retried after the cooldown).
pub async fn execute(client: &Client, action: &ClusterAction, now: Timestamp) -> ActionRecord {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &action.pod.namespace);
    let delete = DeleteParams {
        preconditions: action.pod.uid.clone().map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..Default::default()
    };
    let before = format!(
        "pod {} uid {}",
        action.pod,
        action.pod.uid.as_deref().unwrap_or("?")
    );
    let (outcome, after, message) = match action.action {
        Action::RestartCniPod => match pods.delete(&action.pod.name, &delete).await {
            Ok(_) => (
                Outcome::Applied,
                "deleted; its DaemonSet creates a new agent pod".to_string(),
                None,
            ),
            Err(err) if api_code(&err) == Some(404) => (
                Outcome::NoChange,
                "already gone".to_string(),
                Some(err.to_string()),
            ),
            Err(err) => (Outcome::Failed, String::new(), Some(err.to_string())),
        },
        Action::RecreatePod => {
            match evict(&pods, &action.pod.namespace, &action.pod.name, &delete).await {
                Ok(_) => (
                    Outcome::Applied,
                    "evicted; its controller creates a new pod".to_string(),
                    None,
                ),
                Err(err) if api_code(&err) == Some(404) => (
                    Outcome::NoChange,
                    "already gone".to_string(),
                    Some(err.to_string()),
                ),
                Err(err) if api_code(&err) == Some(429) => (
                    Outcome::Failed,
                    String::new(),
                    Some(format!(
                        "eviction refused by a PodDisruptionBudget; retried after the cooldown: {err}"
                    )),
                ),
                Err(err) => (Outcome::Failed, String::new(), Some(err.to_string())),
            }
        }
        other => (
            Outcome::Skipped,
            String::new(),
            Some(format!("{other} is not a cluster action")),
        ),
    };
    record_of(
        action,
        now,
        (outcome, before, after),
        message.unwrap_or_else(|| action.note.clone()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_patch_sets_every_field_and_nulls_the_ones_left_out() {
        let status = NetworkHealthPolicyStatus {
            observed_generation: Some(3),
            ..NetworkHealthPolicyStatus::default()
        };
        let patch = status_patch(&status).expect("a status serialises");
        let fields = patch["status"].as_object().expect("an object");
        assert_eq!(fields["observedGeneration"], 3);
        for key in ["conditions", "findings", "actions", "actionsTruncated"] {
            assert!(
                fields.contains_key(key),
                "{key} must be in the patch: {patch}"
            );
        }
    }
}
