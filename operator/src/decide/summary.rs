//! What one pass concluded about one policy: its open findings with their dispositions, the
//! node counters, and what is flapping. The status builder turns it into `status`.

use netheal_crds::policy::MAX_POLICY_FINDINGS;
use netheal_crds::{Check, PolicyFinding};
use std::collections::BTreeMap;

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
    /// The first [`MAX_POLICY_FINDINGS`] findings this policy owns, by node, each with its
    /// disposition (the status keeps no more; the rest are only counted).
    pub findings: Vec<PolicyFinding>,
    /// Every finding this policy owns.
    pub total_findings: u32,
    /// Open findings per check (for metrics).
    pub open_by_check: BTreeMap<Check, u32>,
    /// Flapping findings.
    pub flapping: Vec<Flap>,
}

impl PolicyOutcome {
    /// True when the next finding would still be kept in full.
    pub fn keeps_more(&self) -> bool {
        self.findings.len() < MAX_POLICY_FINDINGS
    }

    /// Count a finding this policy owns on `node`, keeping it in full while there is room
    /// (`finding` is only built then).
    pub fn count_finding(&mut self, check: Check, finding: impl FnOnce() -> PolicyFinding) {
        self.count_findings(&[(check, 1)]);
        if self.keeps_more() {
            self.findings.push(finding());
        }
    }

    /// Count findings per check this policy owns, without keeping any.
    pub fn count_findings(&mut self, by_check: &[(Check, u32)]) {
        for &(check, n) in by_check {
            *self.open_by_check.entry(check).or_default() += n;
            self.total_findings = self.total_findings.saturating_add(n);
        }
    }

    /// Count a node this policy selects: whether node-fixer reports from it, and whether
    /// any finding this policy owns is on it.
    pub fn count_node(&mut self, reporting: bool, has_findings: bool) {
        self.nodes_selected = self.nodes_selected.saturating_add(1);
        if reporting {
            self.nodes_reporting = self.nodes_reporting.saturating_add(1);
            if !has_findings {
                self.nodes_healthy = self.nodes_healthy.saturating_add(1);
            }
        }
    }

    /// Count a finding this policy owns.
    pub fn add_finding(&mut self, finding: PolicyFinding) {
        self.count_finding(finding.check, || finding);
    }

    /// Finish the counters once every finding is in.
    pub fn finish(&mut self) {
        // Stable and adaptive: the findings arrive node by node, so this is nearly linear.
        self.findings.sort_by(|a, b| a.node.cmp(&b.node));
        self.flapping.sort();
    }

    /// Open findings owned by this policy.
    pub fn open_findings(&self) -> u32 {
        self.total_findings
    }
}
