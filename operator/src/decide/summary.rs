//! What one pass concluded about one policy: its open findings with their dispositions, the
//! node counters, and what is flapping. The status builder turns it into `status`.

use netheal_crds::{Check, PolicyFinding};
use std::collections::{BTreeMap, BTreeSet};

/// A flapping finding: a fixed finding that keeps coming back.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Flap {
    /// The node.
    pub node: String,
    /// The check.
    pub check: Check,
    /// The finding's target.
    pub target: String,
    /// Fixes within the window.
    pub fixes: usize,
}

/// One policy's view of the cluster in this pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyOutcome {
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// The policy is paused.
    pub paused: bool,
    /// The policy's selector could not be evaluated.
    pub selector_error: Option<String>,
    /// Nodes the selector matches.
    pub nodes_selected: u32,
    /// Selected nodes with a report status.
    pub nodes_reporting: u32,
    /// Reporting nodes without findings owned by this policy.
    pub nodes_healthy: u32,
    /// The findings this policy owns, sorted by node then id, each with its disposition.
    pub findings: Vec<PolicyFinding>,
    /// Open findings per check (for metrics).
    pub open_by_check: BTreeMap<Check, u32>,
    /// Flapping findings.
    pub flapping: Vec<Flap>,
    /// Nodes with findings (internal, for the healthy count).
    pub(crate) unhealthy: BTreeSet<String>,
    /// Reporting selected nodes (internal, for the healthy count).
    pub(crate) reporting: BTreeSet<String>,
}

impl PolicyOutcome {
    /// Count a finding this policy owns.
    pub fn add_finding(&mut self, finding: PolicyFinding) {
        *self.open_by_check.entry(finding.check).or_default() += 1;
        self.unhealthy.insert(finding.node.clone());
        self.findings.push(finding);
    }

    /// Finish the counters once every finding is in.
    pub fn finish(&mut self) {
        self.nodes_reporting = count(self.reporting.len());
        self.nodes_healthy = count(self.reporting.difference(&self.unhealthy).count());
        self.findings
            .sort_by(|a, b| (&a.node, &a.id).cmp(&(&b.node, &b.id)));
        self.flapping.sort();
    }

    /// Open findings owned by this policy.
    pub fn open_findings(&self) -> u32 {
        count(self.findings.len())
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
