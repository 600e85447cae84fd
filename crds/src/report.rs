//! `NodeNetworkReport` (short name `nnr`): one per node, named after it. node-fixer writes the
//! status (findings, results); the operator writes the spec (approved remediation orders).

use crate::details::Details;
use crate::vocabulary::{Action, Check, Outcome};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The most findings one report carries; the rest are counted in `findingsTruncated`.
pub const MAX_REPORT_FINDINGS: usize = 500;
/// The most remediation results one report keeps, newest kept.
pub const MAX_REPORT_RESULTS: usize = 100;
/// The most orders the operator puts in one report's spec at once.
pub const MAX_REPORT_ORDERS: usize = 100;
/// The most findings whose fix history one report keeps (the most recently acted on).
pub const MAX_HISTORY_FINDINGS: usize = 64;
/// The most past actions kept per finding: enough for the largest flap limit
/// (`spec.remediation.flapLimit.fixes` ≤ 20) plus the latest action that changed nothing.
pub const MAX_HISTORY_ACTIONS: usize = 21;

/// The orders the operator approved for this node.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "netheal.io",
    version = "v1alpha1",
    kind = "NodeNetworkReport",
    plural = "nodenetworkreports",
    singular = "nodenetworkreport",
    shortname = "nnr",
    status = "NodeNetworkReportStatus",
    printcolumn = r#"{"name":"Findings","type":"integer","jsonPath":".status.openFindings"}"#,
    printcolumn = r#"{"name":"Orders","type":"integer","jsonPath":".status.pendingOrders","priority":1}"#,
    printcolumn = r#"{"name":"Last Scan","type":"date","jsonPath":".status.lastScanTime"}"#,
    printcolumn = r#"{"name":"Agent","type":"string","jsonPath":".status.agentVersion"}"#,
    printcolumn = r#"{"name":"Backend","type":"string","jsonPath":".status.iptablesBackend","priority":1}"#,
    printcolumn = r#"{"name":"Scan ms","type":"integer","jsonPath":".status.lastScanDurationMs","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    category = "netheal"
)]
#[serde(rename_all = "camelCase")]
pub struct NodeNetworkReportSpec {
    /// Approved orders for node-fixer, written by the operator only. Each is executed once
    /// and answered in `status.results`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub remediations: Vec<RemediationOrder>,
    /// What the safety limits remember of this node, written by the operator only: per
    /// finding, the actions that ran, so that cooldowns and flap limits hold across operator
    /// restarts and leader changes whatever the length of the policies' `status.actions`.
    /// Bounded: the 64 findings most recently acted on, 21 actions each, none older than 8 days.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub history: Vec<FindingHistory>,
}

/// The past actions on one finding of a node.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FindingHistory {
    /// The finding (`finding_id(check, target)`).
    #[schemars(length(max = 64))]
    pub finding_id: String,
    /// The fix.
    pub action: Action,
    /// The policy that approved the latest action.
    #[schemars(length(max = 253))]
    pub policy: String,
    /// Newest last: every action that changed something (`Applied`), the newest 20, and the
    /// latest one that did not (`NoChange`, `Failed`).
    #[schemars(length(max = 21))]
    pub actions: Vec<PastAction>,
}

/// One past action in a [`FindingHistory`].
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PastAction {
    /// The action id (the order id for node-local actions).
    #[schemars(length(max = 64))]
    pub id: String,
    /// When it ran.
    pub time: Time,
    /// How it ended.
    pub outcome: Outcome,
}

/// One approved, node-local fix.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RemediationOrder {
    /// Unique id of this order; results refer to it.
    #[schemars(length(min = 1, max = 64))]
    pub id: String,
    /// The fix to apply.
    #[x_kube(validation = Rule::new("self == 'SetSysctl' || self == 'DeleteNeighbour' || self == 'RemoveRejectRule'").message("spec.remediations[].action must be a node-local action: SetSysctl, DeleteNeighbour or RemoveRejectRule"))]
    pub action: Action,
    /// The finding this order answers.
    pub finding_id: String,
    /// The check that raised the finding.
    pub check: Check,
    /// The object to change, as the finding named it.
    pub target: String,
    /// The structured target and values (e.g. `netns`, `key`, `value`, `ip`, `interface`,
    /// `chain`, `rule`), copied from the finding's `details`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
    /// The policy that approved it.
    pub policy: String,
    /// Stop right before the write and report what would change.
    #[serde(default)]
    pub dry_run: bool,
    /// When the operator approved it.
    pub approved_at: Time,
}

/// What node-fixer found on this node and what it did.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeNetworkReportStatus {
    /// node-fixer's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    /// The iptables backend the host's rules live in (`nft` or `legacy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iptables_backend: Option<String>,
    /// When the last full scan finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scan_time: Option<Time>,
    /// How long the last full scan took, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scan_duration_ms: Option<u64>,
    /// The number of open findings (a printer column).
    #[serde(default)]
    pub open_findings: u32,
    /// Orders received and not yet answered (a printer column).
    #[serde(default)]
    pub pending_orders: u32,
    /// The open findings. A finding that is no longer observed is removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
    /// How many findings did not fit in `findings`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub findings_truncated: u64,
    /// Answers to the orders in `spec.remediations`, newest `MAX_REPORT_RESULTS` kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<RemediationResult>,
    /// A scan that could not complete (a probe failed); findings may be partial.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One place where the node breaks a policy's invariant.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// Stable hash of (check, target): repeated scans of the same fault share it.
    pub id: String,
    /// The check that found it.
    pub check: Check,
    /// The object at fault, human-readable and stable (e.g.
    /// `net.ipv4.conf.all.arp_ignore`, `netns cni-1 net.ipv4.conf.all.arp_ignore`,
    /// `neigh 10.244.1.0 dev flannel.1`, `filter INPUT -j REJECT --reject-with icmp-host-prohibited`).
    pub target: String,
    /// What was observed.
    pub observed: String,
    /// What the policy wants.
    pub desired: String,
    /// The fix, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// The structured target, passed on as an order's `parameters`.
    #[serde(default, skip_serializing_if = "Details::is_empty")]
    #[schemars(with = "BTreeMap<String, String>")]
    pub details: Details,
    /// The policy whose check raised it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// A sentence for the person reading the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// First scan that saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<Time>,
    /// Latest scan that saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Time>,
}

/// node-fixer's answer to one order.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RemediationResult {
    /// The order's id.
    pub id: String,
    /// The action executed.
    pub action: Action,
    /// The object changed.
    pub target: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The state before (a deleted neighbour or rule in full).
    #[serde(default)]
    pub before: String,
    /// The state after.
    #[serde(default)]
    pub after: String,
    /// True when nothing was written (dry-run).
    #[serde(default)]
    pub dry_run: bool,
    /// When it was executed.
    pub time: Time,
    /// Details, an error message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
