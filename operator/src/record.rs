//! Recording an action besides the policy status: a Kubernetes Event on the policy and on the
//! Node, a metric, and a structured log line.

use crate::context::Context;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use netheal_crds::{ActionRecord, NetworkHealthPolicy, Outcome};

/// The reference to a Node in Events.
pub fn node_ref(name: &str, uid: Option<String>) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: Some(name.into()),
        uid,
        ..Default::default()
    }
}

/// The Event for one action.
pub fn event_for(record: &ActionRecord) -> Event {
    let type_ = if record.outcome == Outcome::Failed {
        EventType::Warning
    } else {
        EventType::Normal
    };
    let mut note = format!(
        "{} {} on node {}: {}",
        record.action, record.outcome, record.node, record.target
    );
    if !record.before.is_empty() || !record.after.is_empty() {
        note.push_str(&format!(" ({} -> {})", record.before, record.after));
    }
    if let Some(message) = &record.message {
        note.push_str(": ");
        note.push_str(message);
    }
    // At most 1 kB, cut on a character boundary (targets and messages come from outside).
    let mut end = note.len().min(1000);
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    note.truncate(end);
    Event {
        type_,
        reason: record.action.as_str().into(),
        note: Some(note),
        action: record.action.as_str().into(),
        secondary: None,
    }
}

/// The Warning Event for a finding that keeps coming back.
pub fn flapping_event(node: &str, check: &str, target: &str, fixes: usize) -> Event {
    Event {
        type_: EventType::Warning,
        reason: "Flapping".into(),
        note: Some(format!(
            "{check} {target} on node {node} came back after {fixes} fixes; not fixed any more: something else writes it"
        )),
        action: "StopFixing".into(),
        secondary: None,
    }
}

/// Publish `event` on the policy and on the Node. Failures are logged, never fatal.
pub async fn publish(
    ctx: &Context,
    policy: Option<&NetworkHealthPolicy>,
    node: &str,
    event: &Event,
) {
    let node_uid = ctx
        .stores
        .nodes
        .get(&ObjectRef::new(node))
        .and_then(|n| n.metadata.uid.clone());
    let mut refs = vec![node_ref(node, node_uid)];
    if let Some(policy) = policy {
        refs.push(policy.object_ref(&()));
    }
    for reference in refs {
        let what = format!("{} Event", event.reason);
        if let Err(err) = ctx
            .write(what, ctx.recorder.publish(event, &reference))
            .await
        {
            tracing::warn!(error = %err, reason = %event.reason, kind = ?reference.kind, "could not publish an Event");
        }
    }
}

/// Record one action: metric, log line, Events.
pub async fn action(
    ctx: &Context,
    policy_name: &str,
    policy: Option<&NetworkHealthPolicy>,
    record: &ActionRecord,
) {
    ctx.metrics
        .action(policy_name, record.action.as_str(), record.outcome.as_str());
    tracing::info!(
        policy = policy_name,
        node = %record.node,
        action = %record.action,
        check = record.check.map(|c| c.as_str()),
        target = %record.target,
        outcome = %record.outcome,
        before = %record.before,
        after = %record.after,
        dry_run = record.dry_run,
        id = %record.id,
        message = record.message.as_deref(),
        "action recorded"
    );
    publish(ctx, policy, &record.node, &event_for(record)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;
    use netheal_crds::{Action, Check};

    #[test]
    fn failed_actions_are_warnings_named_after_the_action() {
        let mut record = ActionRecord {
            id: "a".into(),
            time: Time(Timestamp::UNIX_EPOCH),
            node: "n1".into(),
            action: Action::SetSysctl,
            check: Some(Check::IpForward),
            target: "net.ipv4.ip_forward".into(),
            before: "0".into(),
            after: "1".into(),
            outcome: Outcome::Applied,
            dry_run: false,
            message: None,
        };
        let ev = event_for(&record);
        assert_eq!(ev.type_, EventType::Normal);
        assert_eq!(ev.reason, "SetSysctl");
        assert_eq!(
            ev.note.as_deref(),
            Some("SetSysctl Applied on node n1: net.ipv4.ip_forward (0 -> 1)")
        );
        record.outcome = Outcome::Failed;
        assert_eq!(event_for(&record).type_, EventType::Warning);
        record.message = Some("é".repeat(800));
        assert!(event_for(&record).note.unwrap().len() <= 1000);
        assert_eq!(flapping_event("n1", "IpForward", "t", 3).reason, "Flapping");
    }
}
