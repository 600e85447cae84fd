//! The assertions every healing scenario makes, as waits with deadlines: a finding in the
//! node's report, the proposed action in the policy status, the action record with before and
//! after, the Event, the finding cleared.

use super::{Harness, HarnessError};
use k8s_openapi::api::events::v1::Event;
use netheal_crds::{Action, ActionRecord, Check, Finding, Outcome, PolicyFinding};
use std::time::Duration;

/// How long a scenario waits for something the agent reports (a scan, a fix).
pub const REPORT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a scenario waits for the whole loop: finding → order → fix → report → status.
pub const HEAL_TIMEOUT: Duration = Duration::from_secs(45);

/// The findings of `check` in `node`'s report.
pub fn findings_of(report: &netheal_crds::NodeNetworkReport, check: Check) -> Vec<&Finding> {
    report
        .status
        .iter()
        .flat_map(|s| s.findings.iter())
        .filter(|f| f.check == check)
        .collect()
}

/// The policy status findings of `check` on `node`.
pub fn policy_findings<'a>(
    policy: &'a netheal_crds::NetworkHealthPolicy,
    node: &str,
    check: Check,
) -> Vec<&'a PolicyFinding> {
    policy
        .status
        .iter()
        .flat_map(|s| s.findings.iter())
        .filter(|f| f.node == node && f.check == check)
        .collect()
}

/// The action records of `action` on `node` (dry-run or not).
pub fn action_records<'a>(
    policy: &'a netheal_crds::NetworkHealthPolicy,
    node: &str,
    action: Action,
) -> Vec<&'a ActionRecord> {
    policy
        .status
        .iter()
        .flat_map(|s| s.actions.iter())
        .filter(|a| a.node == node && a.action == action)
        .collect()
}

/// True when an Event has `reason` and concerns Node `node`.
pub fn is_event_for_node(event: &Event, reason: &str, node: &str) -> bool {
    event.reason.as_deref() == Some(reason)
        && event
            .regarding
            .as_ref()
            .is_some_and(|r| r.kind.as_deref() == Some("Node") && r.name.as_deref() == Some(node))
}

impl Harness {
    /// Wait for `node`'s report to carry a finding of `check` matching `pred`.
    pub async fn expect_finding(
        &self,
        node: &str,
        check: Check,
        pred: impl Fn(&Finding) -> bool,
    ) -> Result<Finding, HarnessError> {
        self.wait_report(
            node,
            &format!("a {check} finding in the report of {node}"),
            REPORT_TIMEOUT,
            |r| findings_of(r, check).into_iter().find(|f| pred(f)).cloned(),
        )
        .await
    }

    /// Wait until `node`'s report has no finding of `check` any more.
    pub async fn expect_finding_cleared(
        &self,
        node: &str,
        check: Check,
    ) -> Result<(), HarnessError> {
        self.wait_report(
            node,
            &format!("the {check} findings of {node} to clear"),
            HEAL_TIMEOUT,
            |r| findings_of(r, check).is_empty().then_some(()),
        )
        .await
    }

    /// Wait until policy `policy` proposes `action` for a `check` finding on `node`.
    pub async fn expect_proposed(
        &self,
        policy: &str,
        node: &str,
        check: Check,
        action: Action,
    ) -> Result<PolicyFinding, HarnessError> {
        self.wait_policy(
            policy,
            &format!("{policy} to propose {action} for {check} on {node}"),
            REPORT_TIMEOUT,
            |p| {
                policy_findings(p, node, check)
                    .into_iter()
                    .find(|f| f.proposed_action == Some(action))
                    .cloned()
            },
        )
        .await
    }

    /// Wait until policy `policy` records `action` applied (not dry-run) on `node` and
    /// matching `pred`; returns every such record.
    pub async fn expect_applied(
        &self,
        policy: &str,
        node: &str,
        action: Action,
        pred: impl Fn(&ActionRecord) -> bool,
    ) -> Result<Vec<ActionRecord>, HarnessError> {
        self.wait_policy(
            policy,
            &format!("{policy} to record {action} applied on {node}"),
            HEAL_TIMEOUT,
            |p| {
                let applied: Vec<ActionRecord> = action_records(p, node, action)
                    .into_iter()
                    .filter(|a| a.outcome == Outcome::Applied && !a.dry_run && pred(a))
                    .cloned()
                    .collect();
                (!applied.is_empty()).then_some(applied)
            },
        )
        .await
    }

    /// Wait for an Event with `reason` about Node `node`.
    pub async fn expect_event(&self, reason: &str, node: &str) -> Result<Event, HarnessError> {
        let what = format!("an Event {reason} about Node {node}");
        Ok(super::wait_for(&what, REPORT_TIMEOUT, || async {
            match self.events().await {
                Ok(events) => match events.iter().find(|e| is_event_for_node(e, reason, node)) {
                    Some(e) => super::Check::Done(e.clone()),
                    None => super::Check::NotYet(format!(
                        "events: {:?}",
                        events
                            .iter()
                            .map(|e| (
                                e.reason.clone(),
                                e.regarding.as_ref().and_then(|r| r.name.clone())
                            ))
                            .collect::<Vec<_>>()
                    )),
                },
                Err(e) => super::Check::NotYet(e.to_string()),
            }
        })
        .await?)
    }

    /// Non-dry-run records of `action` on `node` in policy `policy` right now.
    pub async fn applied_now(
        &self,
        policy: &str,
        node: &str,
        action: Action,
    ) -> Result<Vec<ActionRecord>, HarnessError> {
        let p = self.policy(policy).await?;
        Ok(action_records(&p, node, action)
            .into_iter()
            .filter(|a| !a.dry_run && a.outcome == Outcome::Applied)
            .cloned()
            .collect())
    }
}

/// The nodes with an order in flight: an order in the report's `spec.remediations` that its
/// `status.results` does not answer yet.
pub fn nodes_in_flight(reports: &[netheal_crds::NodeNetworkReport]) -> Vec<String> {
    reports
        .iter()
        .filter(|r| {
            let answered: Vec<&str> = r
                .status
                .iter()
                .flat_map(|s| s.results.iter())
                .map(|res| res.id.as_str())
                .collect();
            r.spec
                .remediations
                .iter()
                .any(|o| !answered.contains(&o.id.as_str()))
        })
        .filter_map(|r| r.metadata.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use netheal_crds::{
        NodeNetworkReport, NodeNetworkReportSpec, NodeNetworkReportStatus, RemediationOrder,
        RemediationResult,
    };

    fn order(id: &str) -> RemediationOrder {
        RemediationOrder {
            id: id.into(),
            action: Action::SetSysctl,
            finding_id: "f".into(),
            check: Check::IpForward,
            target: "net.ipv4.ip_forward".into(),
            parameters: Default::default(),
            policy: "p".into(),
            dry_run: false,
            approved_at: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
        }
    }

    fn result(id: &str) -> RemediationResult {
        RemediationResult {
            id: id.into(),
            action: Action::SetSysctl,
            target: "net.ipv4.ip_forward".into(),
            outcome: Outcome::Applied,
            before: "0".into(),
            after: "1".into(),
            dry_run: false,
            time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            message: None,
        }
    }

    fn report(name: &str, orders: &[&str], results: &[&str]) -> NodeNetworkReport {
        let mut r = NodeNetworkReport::new(
            name,
            NodeNetworkReportSpec {
                remediations: orders.iter().map(|o| order(o)).collect(),
                ..Default::default()
            },
        );
        r.status = Some(NodeNetworkReportStatus {
            results: results.iter().map(|o| result(o)).collect(),
            ..Default::default()
        });
        r
    }

    #[test]
    fn only_unanswered_orders_are_in_flight() {
        let reports = [
            report("n1", &["a"], &["a"]),
            report("n2", &["b", "c"], &["b"]),
            report("n3", &[], &[]),
        ];
        assert_eq!(nodes_in_flight(&reports), vec!["n2".to_string()]);
    }
}
