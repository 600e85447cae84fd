//! `RejectRule`: REJECT rules in the policy's filter chains that neither Kubernetes nor the CNI
//! owns and that drop the cluster's own traffic (see [`super::reject_scope`]).

use super::reject_scope::{ClusterNetwork, Scope, scope};
use super::{Input, finding};
use crate::probe::iptables::{arg_value, split_args};
use crate::snapshot::{IpFamily, Iptables, Rule};
use netheal_crds::{Check, Finding, RejectRulesCheck, RejectScope};
use std::collections::BTreeSet;

/// Chains owned by kube-proxy, Calico and flannel: never candidates.
pub fn is_owned_chain(chain: &str) -> bool {
    chain.starts_with("KUBE-") || chain.starts_with("cali-") || chain.starts_with("FLANNEL-")
}

/// Whether a rule carries a comment of kube-proxy, Calico or flannel.
pub fn has_owned_comment(args: &[String]) -> bool {
    args.windows(2)
        .filter(|w| w[0] == "--comment")
        .any(|w| is_owned_comment(&w[1]))
}

/// Whether a rule comment is one kube-proxy, Calico or flannel writes.
pub fn is_owned_comment(comment: &str) -> bool {
    let c = comment.to_ascii_lowercase();
    c.contains("kube")
        || c.contains("cali:")
        || c.contains("flannel")
        || c.ends_with("has no endpoints")
}

/// The filter chains `policy` searches in `rules`: its `chains`, and with `followJumps` every
/// chain reachable from them by `-j`/`-g` (a target that names a chain holding rules), never
/// entering a chain Kubernetes or the CNI owns.
pub fn searched_chains(rules: &[Rule], policy: &RejectRulesCheck) -> BTreeSet<String> {
    let mut searched: BTreeSet<String> = policy
        .chains
        .iter()
        .filter(|c| !is_owned_chain(c))
        .cloned()
        .collect();
    if !policy.follow_jumps {
        return searched;
    }
    let filter: Vec<&Rule> = rules.iter().filter(|r| r.table == "filter").collect();
    let with_rules: BTreeSet<&str> = filter.iter().map(|r| r.chain.as_str()).collect();
    let mut todo: Vec<String> = searched.iter().cloned().collect();
    while let Some(chain) = todo.pop() {
        for rule in filter.iter().filter(|r| r.chain == chain) {
            let args = split_args(&rule.spec);
            let Some(target) = arg_value(&args, "-j").or_else(|| arg_value(&args, "-g")) else {
                continue;
            };
            if with_rules.contains(target)
                && !is_owned_chain(target)
                && searched.insert(target.to_string())
            {
                todo.push(target.to_string());
            }
        }
    }
    searched
}

/// Whether `rule` is an unowned REJECT rule in the chains searched (see [`searched_chains`]).
pub fn is_unowned_reject(rule: &Rule, searched: &BTreeSet<String>) -> bool {
    if rule.table != "filter" || is_owned_chain(&rule.chain) || !searched.contains(&rule.chain) {
        return false;
    }
    let args = split_args(&rule.spec);
    arg_value(&args, "-j") == Some("REJECT") && !has_owned_comment(&args)
}

/// Why a rule is (or is not) removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Remove it: it drops this cluster traffic (empty under `AllUnowned` for a rule that drops
    /// none of it).
    Remove(Vec<String>),
    /// Keep it, for this reason.
    Keep(String),
}

/// The verdict on `rule` under `policy`, `searched` being the chains searched.
pub fn verdict(
    rule: &Rule,
    searched: &BTreeSet<String>,
    policy: &RejectRulesCheck,
    net: &ClusterNetwork,
) -> Verdict {
    if !is_unowned_reject(rule, searched) {
        return Verdict::Keep(
            "it is not a REJECT rule this policy may remove (owned by Kubernetes or the CNI, or not in the chains spec.checks.rejectRules searches)".to_string(),
        );
    }
    scope_verdict(scope(&split_args(&rule.spec), net), policy)
}

/// The verdict on an unowned rule in a searched chain whose scope is `scope`.
pub fn scope_verdict(scope: Scope, policy: &RejectRulesCheck) -> Verdict {
    let all = policy.scope == RejectScope::AllUnowned;
    match scope {
        Scope::Drops(drops) => Verdict::Remove(drops),
        _ if all => Verdict::Remove(Vec::new()),
        Scope::Narrow => Verdict::Keep(
            "it drops none of the cluster's traffic (spec.checks.rejectRules.scope ClusterTraffic)"
                .to_string(),
        ),
        Scope::Opaque(m) => Verdict::Keep(format!(
            "its match {m} cannot be checked against the cluster's traffic (spec.checks.rejectRules.scope ClusterTraffic)"
        )),
    }
}

impl Verdict {
    /// The cluster traffic a rule to remove drops; `None` for a rule to keep.
    pub fn removed(self) -> Option<Vec<String>> {
        match self {
            Verdict::Remove(drops) => Some(drops),
            Verdict::Keep(_) => None,
        }
    }
}

/// What a rule to remove does, for its finding's message.
pub fn what_it_drops(drops: &[String]) -> String {
    if drops.is_empty() {
        "matches traffic of its own (none of the cluster's; flagged by spec.checks.rejectRules.scope AllUnowned)".to_string()
    } else {
        format!("drops the cluster's traffic: {}", drops.join("; "))
    }
}

/// Findings on the host namespace: iptables rules of the backend in use, its ip6tables rules
/// on a cluster with IPv6 pod ranges, then the rules of nftables' own tables
/// ([`super::reject_nft`]).
pub fn check(input: &Input<'_>) -> Vec<Finding> {
    let host = &input.snapshot.host;
    let net = ClusterNetwork::from_facts(input.cluster, &host.links, &host.routes);
    let mut out = Vec::new();
    if let Some(ipt) = &host.iptables {
        out.extend(iptables_findings(ipt, input, &net));
    }
    let net6 = ClusterNetwork::of_family(
        IpFamily::V6,
        input.cluster,
        &host.links,
        &host.routes,
        &host.routes6,
    );
    // A single-stack IPv4 cluster has no IPv6 traffic of its own to lose.
    if let Some(ipt) = &host.ip6tables
        && !net6.pod_cidrs.is_empty()
    {
        out.extend(iptables_findings(ipt, input, &net6));
    }
    if let Some(nft) = &host.nftables {
        out.extend(super::reject_nft::findings(
            nft,
            &input.policy.checks.reject_rules,
            &[net, net6],
        ));
    }
    out
}

/// The target of a finding about `rule` of `family`: `filter CHAIN SPEC` (IPv4, as always),
/// `ip6 filter CHAIN SPEC` (IPv6: the same text may be a rule of both).
pub fn target(family: IpFamily, rule: &Rule) -> String {
    match family {
        IpFamily::V4 => format!("filter {} {}", rule.chain, rule.spec),
        IpFamily::V6 => format!("ip6 filter {} {}", rule.chain, rule.spec),
    }
}

/// The rules of `ipt` in `net`'s family that drop the cluster's traffic.
fn iptables_findings(ipt: &Iptables, input: &Input<'_>, net: &ClusterNetwork) -> Vec<Finding> {
    let policy = &input.policy.checks.reject_rules;
    let family = net.family;
    let tool = format!("{}-{}", family.tool(), ipt.backend.as_str());
    let searched = searched_chains(&ipt.rules, policy);
    ipt.rules
        .iter()
        .filter_map(|r| Some((r, verdict(r, &searched, policy, net).removed()?)))
        .map(|(r, drops)| {
            let what = what_it_drops(&drops);
            let mut fields = vec![
                ("netns", String::new()),
                ("table", "filter".to_string()),
                ("chain", r.chain.clone()),
                ("rule", r.spec.clone()),
                ("backend", ipt.backend.as_str().to_string()),
                ("drops", drops.join("; ")),
            ];
            let message = match family {
                IpFamily::V4 => format!(
                    "REJECT rule in {} ({} backend) {what}",
                    r.chain,
                    ipt.backend.as_str()
                ),
                IpFamily::V6 => {
                    fields.push(("family", family.as_str().to_string()));
                    format!(
                        "ip6tables REJECT rule in {} ({} backend) {what}",
                        r.chain,
                        ipt.backend.as_str()
                    )
                }
            };
            finding(
                Check::RejectRule,
                target(family, r),
                format!("present ({tool})"),
                "absent".to_string(),
                message,
                fields
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            )
        })
        .collect()
}

/// The `backend` of a finding (and order) about a rule of nftables' own tables, beside
/// iptables' `nft` and `legacy`.
pub const NFTABLES_BACKEND: &str = "nftables";

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(chain: &str, spec: &str) -> Rule {
        Rule {
            table: "filter".into(),
            chain: chain.into(),
            spec: spec.into(),
        }
    }

    fn set(chains: &[&str]) -> BTreeSet<String> {
        chains.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn jumps_are_followed_only_when_asked_and_never_into_owned_chains() {
        let rules = vec![
            rule("INPUT", "-j INPUT_direct"),
            rule("INPUT", "-j KUBE-FIREWALL"),
            rule("INPUT_direct", "-p tcp -j IN_public"),
            rule("IN_public", "-j REJECT --reject-with icmp-host-prohibited"),
            rule("IN_public", "-j INPUT_direct"),
            rule("KUBE-FIREWALL", "-j KUBE-INNER"),
            rule("KUBE-INNER", "-j REJECT"),
            rule("FORWARD", "-g FWD_zones"),
            rule("FWD_zones", "-j REJECT"),
            rule("FORWARD", "-j NOT_A_CHAIN"),
            rule("OTHER", "-j REJECT"),
        ];
        let mut policy = RejectRulesCheck::default();
        assert_eq!(searched_chains(&rules, &policy), set(&["FORWARD", "INPUT"]));
        policy.follow_jumps = true;
        assert_eq!(
            searched_chains(&rules, &policy),
            set(&["FORWARD", "FWD_zones", "INPUT", "INPUT_direct", "IN_public"])
        );
        // A listed owned chain is not searched either.
        policy.chains = vec!["KUBE-FIREWALL".into()];
        assert!(searched_chains(&rules, &policy).is_empty());
    }

    #[test]
    fn only_rejects_dropping_cluster_traffic_are_removed_unless_the_scope_is_all_unowned() {
        let chains = set(&["INPUT"]);
        let net = ClusterNetwork::default();
        let mut policy = RejectRulesCheck::default();
        let smtp = rule("INPUT", "-p tcp -m tcp --dport 25 -j REJECT");
        let all = rule("INPUT", "-j REJECT --reject-with icmp-host-prohibited");
        assert!(
            matches!(verdict(&all, &chains, &policy, &net), Verdict::Remove(d) if !d.is_empty())
        );
        assert!(
            matches!(verdict(&smtp, &chains, &policy, &net), Verdict::Keep(why) if why.contains("none of the cluster's traffic"))
        );
        policy.scope = RejectScope::AllUnowned;
        assert_eq!(
            verdict(&smtp, &chains, &policy, &net),
            Verdict::Remove(Vec::new())
        );
        let owned = rule("KUBE-SERVICES", "-j REJECT");
        assert!(matches!(
            verdict(&owned, &chains, &policy, &net),
            Verdict::Keep(_)
        ));
    }

    #[test]
    fn only_unowned_rejects_in_listed_chains_are_candidates() {
        let chains = set(&["INPUT", "FORWARD"]);
        let is_candidate = is_unowned_reject;
        assert!(is_candidate(
            &rule("INPUT", "-j REJECT --reject-with icmp-host-prohibited"),
            &chains
        ));
        assert!(is_candidate(&rule("FORWARD", "-p tcp -j REJECT"), &chains));
        assert!(!is_candidate(&rule("INPUT", "-j ACCEPT"), &chains));
        assert!(!is_candidate(&rule("OUTPUT", "-j REJECT"), &chains));
        assert!(!is_candidate(
            &rule("KUBE-SERVICES", "-j REJECT"),
            &set(&["KUBE-SERVICES"])
        ));
        assert!(!is_candidate(
            &rule(
                "INPUT",
                "-m comment --comment \"default/svc:port has no endpoints\" -j REJECT"
            ),
            &chains
        ));
        assert!(!is_candidate(
            &rule("FORWARD", "-m comment --comment \"cali:abc\" -j REJECT"),
            &chains
        ));
        assert!(!is_candidate(
            &rule(
                "FORWARD",
                "-m comment --comment \"kubernetes forwarding rules\" -j REJECT"
            ),
            &chains
        ));
    }
}
