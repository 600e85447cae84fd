//! Node-local orders: which orders are still out, which were answered (and become action
//! records), and new orders built from findings.

use crate::ledger::Ledger;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use netheal_crds::{
    ActionRecord, Finding, NodeNetworkReport, Outcome, RemediationOrder, RemediationResult,
};
use std::collections::{BTreeMap, HashMap, HashSet};

/// An action record to append to a policy's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The policy whose status gets it.
    pub policy: String,
    /// The record.
    pub record: ActionRecord,
}

/// Why an order still out is withdrawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Withdraw {
    /// The Node is gone.
    NodeDeleted,
    /// The approving policy is gone.
    PolicyDeleted,
    /// The approving policy is paused.
    PolicyPaused,
    /// The approving policy was switched to `DryRun`.
    PolicyDryRun,
    /// The approving policy no longer lists the order's action.
    ActionNotApproved,
    /// The Node is annotated paused.
    NodePaused,
    /// The node's report is gone (node-fixer recreates it and scans again).
    ReportMissing,
}

impl Withdraw {
    fn message(self) -> &'static str {
        match self {
            Withdraw::NodeDeleted => "withdrawn: the node was deleted before node-fixer answered",
            Withdraw::PolicyDeleted => "withdrawn: the policy was deleted",
            Withdraw::PolicyPaused => "withdrawn: the policy is paused",
            Withdraw::PolicyDryRun => "withdrawn: the policy was switched to DryRun",
            Withdraw::ActionNotApproved => "withdrawn: the policy no longer approves this action",
            Withdraw::NodePaused => "withdrawn: the node is paused",
            Withdraw::ReportMissing => "withdrawn: the node's report was deleted",
        }
    }
}

/// The orders on one node after reading the report's answers.
#[derive(Debug, Default)]
pub struct Settled {
    /// Orders still out (unanswered).
    pub open: Vec<RemediationOrder>,
    /// Answers and withdrawals to record.
    pub recorded: Vec<Recorded>,
    /// The orders withdrawn now (remembered for a late answer).
    pub withdrawn: Vec<RemediationOrder>,
}

/// Settle the orders out on `node`: the union of the ledger's and the report's, each either
/// answered (recorded), withdrawn (recorded as `Skipped`), already recorded (dropped), or
/// still open. `withdraw` says whether an unanswered order must be withdrawn. An answer to an
/// order withdrawn earlier (node-fixer applied it before it saw the withdrawal) is recorded
/// too: the action happened.
pub fn settle(
    node: &str,
    ledger: &Ledger,
    report: Option<&NodeNetworkReport>,
    now: Timestamp,
    withdraw: impl Fn(&RemediationOrder) -> Option<Withdraw>,
) -> Settled {
    let mut seen = HashSet::new();
    let orders = ledger
        .pending(node)
        .iter()
        .chain(report.iter().flat_map(|r| r.spec.remediations.iter()))
        .filter(|o| seen.insert(o.id.as_str()));
    let results: HashMap<&str, &RemediationResult> = report
        .and_then(|r| r.status.as_ref())
        .into_iter()
        .flat_map(|s| s.results.iter())
        .map(|r| (r.id.as_str(), r))
        .collect();
    let mut settled = Settled::default();
    for order in orders {
        if let Some(result) = results.get(order.id.as_str()) {
            if !ledger.has(node, &order.id) {
                settled.recorded.push(Recorded {
                    policy: order.policy.clone(),
                    record: answered(node, order, result),
                });
            }
        } else if ledger.has(node, &order.id) {
            // Recorded before (e.g. withdrawn): nothing more to do.
        } else if let Some(why) = withdraw(order) {
            settled.recorded.push(Recorded {
                policy: order.policy.clone(),
                record: withdrawn(node, order, why, now),
            });
            settled.withdrawn.push(order.clone());
        } else {
            settled.open.push(order.clone());
        }
    }
    for order in ledger.withdrawn(node) {
        if let Some(result) = results.get(order.id.as_str())
            && !ledger.answered(node, &order.id)
            && !settled.recorded.iter().any(|r| r.record.id == order.id)
        {
            let mut record = answered(node, order, result);
            record.message = Some(match record.message {
                Some(m) => format!("answered after the order was withdrawn: {m}"),
                None => "answered after the order was withdrawn".to_string(),
            });
            settled.recorded.push(Recorded {
                policy: order.policy.clone(),
                record,
            });
        }
    }
    settled
}

fn answered(node: &str, order: &RemediationOrder, result: &RemediationResult) -> ActionRecord {
    ActionRecord {
        id: order.id.clone(),
        time: result.time.clone(),
        node: node.to_string(),
        action: order.action,
        check: Some(order.check),
        target: order.target.clone(),
        before: result.before.clone(),
        after: result.after.clone(),
        outcome: result.outcome,
        dry_run: result.dry_run || order.dry_run,
        message: result.message.clone(),
    }
}

fn withdrawn(node: &str, order: &RemediationOrder, why: Withdraw, now: Timestamp) -> ActionRecord {
    ActionRecord {
        id: order.id.clone(),
        time: Time(now),
        node: node.to_string(),
        action: order.action,
        check: Some(order.check),
        target: order.target.clone(),
        before: String::new(),
        after: String::new(),
        outcome: Outcome::Skipped,
        dry_run: order.dry_run,
        message: Some(why.message().to_string()),
    }
}

/// The id of an order or cluster action approved at `now` for `finding`: unique per node
/// (one approval per finding per second at most) and stable within a pass.
pub fn action_id(finding_id: &str, now: Timestamp) -> String {
    format!("{finding_id}-{}", now.as_second())
}

/// A new order for `finding`, approved by `policy` at `now`. Its parameters are the
/// finding's details, verbatim.
pub fn new_order(finding: &Finding, policy: &str, now: Timestamp) -> Option<RemediationOrder> {
    let action = finding.action.or_else(|| finding.check.remedy())?;
    action.is_node_local().then(|| RemediationOrder {
        id: action_id(&finding.id, now),
        action,
        finding_id: finding.id.clone(),
        check: finding.check,
        target: finding.target.clone(),
        parameters: finding.details.to_map(),
        policy: policy.to_string(),
        dry_run: false,
        approved_at: Time(now),
    })
}

/// The finding ids with an order out, per node.
pub fn open_findings(open: &BTreeMap<String, Vec<RemediationOrder>>) -> HashSet<(&str, &str)> {
    open.iter()
        .flat_map(|(node, orders)| {
            orders
                .iter()
                .map(move |o| (node.as_str(), o.finding_id.as_str()))
        })
        .collect()
}
