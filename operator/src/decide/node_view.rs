//! What one pass concluded about one node, for reports written per node (OpenReports): the
//! policies selecting it, whether node-fixer reports from it, and every finding on it with its
//! owning policy and disposition. Built only when asked for ([`super::Inputs::node_views`]):
//! unlike a policy's status it is not truncated, so it costs one entry per finding.

use netheal_crds::PolicyFinding;

/// One node's view.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeView {
    /// Names of the policies selecting the node, sorted.
    pub policies: Vec<String>,
    /// node-fixer has written a report status for the node.
    pub reporting: bool,
    /// The scan errors node-fixer reported (a probe that failed; findings may be partial).
    pub scan_errors: Vec<String>,
    /// Every finding on the node owned by a policy, as `(policy, finding)`, in the order
    /// decided.
    pub findings: Vec<(String, PolicyFinding)>,
}
