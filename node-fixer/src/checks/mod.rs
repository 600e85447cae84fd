//! Checks: pure functions from a [`Snapshot`], the policy and the cluster facts to findings.
//! No I/O here.

pub mod arp_ignore;
pub mod bridge_subnet;
pub mod calico_blocks;
pub mod findings;
pub mod ip_forward;
pub mod mtu;
pub mod neighbours;
pub mod overlay;
pub mod peers;
pub mod reject;
pub mod reject_nft;
pub mod reject_scope;
pub mod report_only;
pub mod service_vip;
pub mod tunnel_offload;

use crate::engine::ClusterFacts;
use crate::snapshot::Snapshot;
pub use findings::Findings;
use netheal_crds::patterns::InterfacePatterns;
use netheal_crds::{Check, Cni, Details, Finding, NetworkHealthPolicySpec, finding_id};

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
    details: Details,
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
pub fn details<const N: usize>(pairs: [(&str, String); N]) -> Details {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Compile a policy's interface patterns; a bad glob (already refused by validation) matches
/// nothing.
pub fn patterns(field: &str, list: &[String]) -> InterfacePatterns {
    InterfacePatterns::new(field, list).unwrap_or_default()
}

/// Run every enabled check and return the findings sorted by (check, target).
pub fn run_all(input: &Input<'_>) -> Findings {
    let checks = &input.policy.checks;
    let mut out = Vec::new();
    let mut pending = Vec::new();
    if checks.is_enabled(Check::ArpIgnore) {
        out.extend(arp_ignore::check(input));
    }
    if checks.is_enabled(Check::IpForward) {
        out.extend(ip_forward::check(input));
    }
    if checks.is_enabled(Check::StaleNeighbour) {
        let (built, stale) = neighbours::check(input);
        out.extend(built);
        pending = stale;
    }
    if checks.is_enabled(Check::VtepMissing) {
        out.extend(overlay::check(input));
        out.extend(calico_blocks::check(input));
    }
    if checks.is_enabled(Check::RejectRule) {
        out.extend(reject::check(input));
    }
    out.extend(report_only::check(input));
    if checks.is_enabled(Check::Mtu) {
        out.extend(mtu::check(input));
    }
    if checks.is_enabled(Check::BridgeSubnetMismatch)
        && matches!(checks.overlay.cni, Cni::Flannel | Cni::Canal)
    {
        out.extend(bridge_subnet::check(input));
    }
    if checks.is_enabled(Check::TunnelOffload) {
        out.extend(tunnel_offload::check(input));
    }
    if checks.is_enabled(Check::ServiceVipMissing) {
        out.extend(service_vip::check(input));
    }
    Findings::new(out, pending)
}

#[cfg(test)]
mod tests;
