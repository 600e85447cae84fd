//! Checks: pure functions from a [`Snapshot`], the policy and the cluster facts to findings.
//! No I/O here.

pub mod arp_ignore;
pub mod ip_forward;
pub mod mtu;
pub mod neighbours;
pub mod overlay;
pub mod peers;
pub mod reject;
pub mod reject_scope;
pub mod report_only;

use crate::engine::ClusterFacts;
use crate::snapshot::Snapshot;
use netheal_crds::patterns::InterfacePatterns;
use netheal_crds::{Check, Finding, NetworkHealthPolicySpec, finding_id};
use std::collections::BTreeMap;

/// Everything a check reads.
pub struct Input<'a> {
    /// The kernel state.
    pub snapshot: &'a Snapshot,
    /// The policy.
    pub policy: &'a NetworkHealthPolicySpec,
    /// The cluster's nodes.
    pub cluster: &'a ClusterFacts,
}

/// Build a finding with its stable id and the check's remedy.
pub fn finding(
    check: Check,
    target: String,
    observed: String,
    desired: String,
    message: String,
    details: BTreeMap<String, String>,
) -> Finding {
    Finding {
        id: finding_id(check, &target),
        check,
        target,
        observed,
        desired,
        action: check.remedy(),
        details,
        policy: None,
        message: Some(message),
        first_seen: None,
        last_seen: None,
    }
}

/// A details map from pairs.
pub fn details<const N: usize>(pairs: [(&str, String); N]) -> BTreeMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Compile a policy's interface patterns; a bad glob (already refused by validation) matches
/// nothing.
pub fn patterns(field: &str, list: &[String]) -> InterfacePatterns {
    InterfacePatterns::new(field, list).unwrap_or_default()
}

/// Run every enabled check and return the findings sorted by (check, target).
pub fn run_all(input: &Input<'_>) -> Vec<Finding> {
    let checks = &input.policy.checks;
    let mut out = Vec::new();
    if checks.is_enabled(Check::ArpIgnore) {
        add(&mut out, arp_ignore::check(input));
    }
    if checks.is_enabled(Check::IpForward) {
        add(&mut out, ip_forward::check(input));
    }
    if checks.is_enabled(Check::StaleNeighbour) {
        add(&mut out, neighbours::check(input));
    }
    if checks.is_enabled(Check::VtepMissing) {
        add(&mut out, overlay::check(input));
    }
    if checks.is_enabled(Check::RejectRule) {
        add(&mut out, reject::check(input));
    }
    add(&mut out, report_only::check(input));
    if checks.is_enabled(Check::Mtu) {
        add(&mut out, mtu::check(input));
    }
    // Equal (check, target) means equal id: the unstable sort (no buffer) is enough for dedup.
    out.sort_unstable_by(|a, b| (a.check, &a.target).cmp(&(b.check, &b.target)));
    out.dedup_by(|a, b| a.id == b.id);
    out.shrink_to_fit();
    out
}

/// Move `more` into `out` by copying the shorter list into the longer one: 100k stale
/// neighbours are never held twice.
fn add(out: &mut Vec<Finding>, mut more: Vec<Finding>) {
    if more.len() > out.len() {
        std::mem::swap(out, &mut more);
    }
    out.append(&mut more);
}

#[cfg(test)]
mod tests;
