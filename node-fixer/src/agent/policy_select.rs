//! Which policy applies to this node (pure).
//!
//! Every `NetworkHealthPolicy` whose `nodeSelector` selects this node's labels applies. The
//! checks are additive: a check runs when at least one applying policy enables it, and when
//! several do, the policy with the lexically first name configures it and owns its findings
//! (`Finding.policy`). The remediation settings (e.g. `persistSysctls`) used for an order come
//! from the policy that approved the order.

use netheal_crds::selector::selects;
use netheal_crds::{Check, Checks, NetworkHealthPolicy, NetworkHealthPolicySpec};
use std::collections::BTreeMap;

/// A policy reduced to what the agent needs: its name and spec.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedPolicy {
    /// `metadata.name`.
    pub name: String,
    /// The spec.
    pub spec: NetworkHealthPolicySpec,
}

impl NamedPolicy {
    /// From an API object; `None` when it has no name (never the case for stored objects).
    pub fn from_object(policy: &NetworkHealthPolicy) -> Option<Self> {
        Some(Self {
            name: policy.metadata.name.clone()?,
            spec: policy.spec.clone(),
        })
    }
}

/// The checks grouped as a policy configures them (one spec field each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum CheckGroup {
    ArpIgnore,
    IpForward,
    StaleNeighbours,
    RejectRules,
    Overlay,
    DuplicatePodIps,
    ProxyArp,
    Masquerade,
    RpFilter,
    Mtu,
}

const GROUPS: [CheckGroup; 10] = [
    CheckGroup::ArpIgnore,
    CheckGroup::IpForward,
    CheckGroup::StaleNeighbours,
    CheckGroup::RejectRules,
    CheckGroup::Overlay,
    CheckGroup::DuplicatePodIps,
    CheckGroup::ProxyArp,
    CheckGroup::Masquerade,
    CheckGroup::RpFilter,
    CheckGroup::Mtu,
];

impl CheckGroup {
    fn enabled(self, c: &Checks) -> bool {
        match self {
            CheckGroup::ArpIgnore => c.arp_ignore.enabled,
            CheckGroup::IpForward => c.ip_forward.enabled,
            CheckGroup::StaleNeighbours => c.stale_neighbours.enabled,
            CheckGroup::RejectRules => c.reject_rules.enabled,
            CheckGroup::Overlay => c.overlay.enabled,
            CheckGroup::DuplicatePodIps => c.duplicate_pod_ips.enabled,
            CheckGroup::ProxyArp => c.proxy_arp.enabled,
            CheckGroup::Masquerade => c.masquerade.enabled,
            CheckGroup::RpFilter => c.rp_filter.enabled,
            CheckGroup::Mtu => c.mtu.enabled,
        }
    }

    /// Copy this group's configuration from `from` into `into`.
    fn copy(self, from: &Checks, into: &mut Checks) {
        match self {
            CheckGroup::ArpIgnore => into.arp_ignore = from.arp_ignore.clone(),
            CheckGroup::IpForward => into.ip_forward = from.ip_forward.clone(),
            CheckGroup::StaleNeighbours => into.stale_neighbours = from.stale_neighbours.clone(),
            CheckGroup::RejectRules => into.reject_rules = from.reject_rules.clone(),
            CheckGroup::Overlay => into.overlay = from.overlay.clone(),
            CheckGroup::DuplicatePodIps => into.duplicate_pod_ips = from.duplicate_pod_ips.clone(),
            CheckGroup::ProxyArp => into.proxy_arp = from.proxy_arp.clone(),
            CheckGroup::Masquerade => into.masquerade = from.masquerade.clone(),
            CheckGroup::RpFilter => into.rp_filter = from.rp_filter.clone(),
            CheckGroup::Mtu => into.mtu = from.mtu.clone(),
        }
    }

    fn disable(self, into: &mut Checks) {
        match self {
            CheckGroup::ArpIgnore => into.arp_ignore.enabled = false,
            CheckGroup::IpForward => into.ip_forward.enabled = false,
            CheckGroup::StaleNeighbours => into.stale_neighbours.enabled = false,
            CheckGroup::RejectRules => into.reject_rules.enabled = false,
            CheckGroup::Overlay => into.overlay.enabled = false,
            CheckGroup::DuplicatePodIps => into.duplicate_pod_ips.enabled = false,
            CheckGroup::ProxyArp => into.proxy_arp.enabled = false,
            CheckGroup::Masquerade => into.masquerade.enabled = false,
            CheckGroup::RpFilter => into.rp_filter.enabled = false,
            CheckGroup::Mtu => into.mtu.enabled = false,
        }
    }

    fn of(check: Check) -> Option<Self> {
        Some(match check {
            Check::ArpIgnore => CheckGroup::ArpIgnore,
            Check::IpForward => CheckGroup::IpForward,
            Check::StaleNeighbour => CheckGroup::StaleNeighbours,
            Check::RejectRule => CheckGroup::RejectRules,
            Check::VtepMissing | Check::PeerRouteMissing => CheckGroup::Overlay,
            Check::DuplicatePodIp => CheckGroup::DuplicatePodIps,
            Check::ProxyArpOff => CheckGroup::ProxyArp,
            Check::Masquerade => CheckGroup::Masquerade,
            Check::RpFilter => CheckGroup::RpFilter,
            Check::Mtu => CheckGroup::Mtu,
            Check::BridgeSubnetMismatch | Check::TunnelOffload | Check::ServiceVipMissing => {
                return None;
            }
        })
    }
}

/// The policy this node runs under for one scan.
#[derive(Clone, Debug, PartialEq)]
pub struct Effective {
    /// The merged spec: each check configured by its winning policy; the rest of the spec
    /// (mode, remediation) from the lexically first applying policy.
    pub spec: NetworkHealthPolicySpec,
    /// The names of the applying policies, sorted.
    pub applying: Vec<String>,
    owners: BTreeMap<CheckGroup, String>,
}

impl Effective {
    /// The policy that owns findings of `check` (`None` when no applying policy enables it).
    pub fn owner(&self, check: Check) -> Option<&str> {
        CheckGroup::of(check)
            .and_then(|g| self.owners.get(&g))
            .map(String::as_str)
    }
}

/// The outcome of selecting policies for a node.
#[derive(Clone, Debug, PartialEq)]
pub struct Selection {
    /// `None` when no policy selects this node: nothing is checked.
    pub effective: Option<Effective>,
    /// Policies that could not be evaluated (bad selector), as messages naming the policy.
    pub errors: Vec<String>,
}

/// Select the policies that apply to a node with `labels` and merge them.
pub fn select(policies: &[NamedPolicy], labels: &BTreeMap<String, String>) -> Selection {
    let mut errors = Vec::new();
    let mut applying: Vec<&NamedPolicy> = Vec::new();
    for p in policies {
        match selects(p.spec.node_selector.as_ref(), labels) {
            Ok(true) => applying.push(p),
            Ok(false) => {}
            Err(e) => errors.push(format!("NetworkHealthPolicy {}: spec.{e}", p.name)),
        }
    }
    applying.sort_by(|a, b| a.name.cmp(&b.name));
    let Some(first) = applying.first() else {
        return Selection {
            effective: None,
            errors,
        };
    };
    let mut spec = first.spec.clone();
    let mut owners = BTreeMap::new();
    for group in GROUPS {
        match applying.iter().find(|p| group.enabled(&p.spec.checks)) {
            Some(winner) => {
                group.copy(&winner.spec.checks, &mut spec.checks);
                owners.insert(group, winner.name.clone());
            }
            None => group.disable(&mut spec.checks),
        }
    }
    Selection {
        effective: Some(Effective {
            spec,
            applying: applying.iter().map(|p| p.name.clone()).collect(),
            owners,
        }),
        errors,
    }
}

/// The message put in the report's `errors` when no policy selects the node.
pub fn no_policy_message(node: &str) -> String {
    format!("no NetworkHealthPolicy selects node {node}: nothing is checked")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn policy(name: &str, selector: Option<&[(&str, &str)]>) -> NamedPolicy {
        NamedPolicy {
            name: name.into(),
            spec: NetworkHealthPolicySpec {
                node_selector: selector.map(|s| LabelSelector {
                    match_labels: Some(labels(s)),
                    match_expressions: None,
                }),
                ..Default::default()
            },
        }
    }

    #[test]
    fn no_policy_selecting_the_node_means_nothing_is_checked() {
        let policies = [policy("edge", Some(&[("pool", "edge")]))];
        let sel = select(&policies, &labels(&[("pool", "core")]));
        assert_eq!(sel.effective, None);
        assert!(sel.errors.is_empty());
        assert!(no_policy_message("n1").contains("n1"));
        assert_eq!(select(&[], &labels(&[])).effective, None);
    }

    #[test]
    fn lexically_first_policy_wins_a_check_both_configure() {
        let mut b = policy("b-strict", None);
        b.spec.checks.arp_ignore.desired = 1;
        let mut a = policy("a-base", None);
        a.spec.checks.arp_ignore.desired = 2;
        a.spec.checks.reject_rules.enabled = false;
        b.spec.checks.reject_rules.chains = vec!["FORWARD".into()];
        // Order of the input must not matter.
        let sel = select(&[b, a], &labels(&[]));
        let eff = sel.effective.unwrap();
        assert_eq!(eff.applying, ["a-base", "b-strict"]);
        assert_eq!(eff.spec.checks.arp_ignore.desired, 2);
        assert_eq!(eff.owner(Check::ArpIgnore), Some("a-base"));
        // a-base switches RejectRule off, b-strict enables it: b-strict configures it.
        assert!(eff.spec.checks.reject_rules.enabled);
        assert_eq!(eff.spec.checks.reject_rules.chains, ["FORWARD"]);
        assert_eq!(eff.owner(Check::RejectRule), Some("b-strict"));
        assert_eq!(eff.owner(Check::StaleNeighbour), Some("a-base"));
    }

    #[test]
    fn a_check_no_applying_policy_enables_is_off_and_unowned() {
        let mut a = policy("a", None);
        a.spec.checks.ip_forward.enabled = false;
        let mut other = policy("b-elsewhere", Some(&[("pool", "edge")]));
        other.spec.checks.ip_forward.enabled = true;
        let eff = select(&[a, other], &labels(&[])).effective.unwrap();
        assert!(!eff.spec.checks.ip_forward.enabled);
        assert_eq!(eff.owner(Check::IpForward), None);
        assert_eq!(eff.applying, ["a"]);
        assert_eq!(eff.owner(Check::TunnelOffload), None);
    }

    #[test]
    fn a_policy_with_a_bad_selector_is_skipped_with_an_error_naming_it() {
        let mut bad = policy("broken", None);
        bad.spec.node_selector = Some(LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "zone".into(),
                operator: "Near".into(),
                values: None,
            }]),
        });
        let good = policy("fine", None);
        let sel = select(&[bad, good], &labels(&[]));
        assert_eq!(sel.effective.unwrap().applying, ["fine"]);
        assert_eq!(sel.errors.len(), 1);
        assert!(sel.errors[0].contains("broken"), "{}", sel.errors[0]);
        assert!(sel.errors[0].contains("matchExpressions[0]"));
    }
}
