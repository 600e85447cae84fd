//! `RejectRule`: REJECT rules in the policy's filter chains that neither Kubernetes nor the CNI
//! owns.

use super::{Input, details, finding};
use crate::probe::iptables::{arg_value, split_args};
use crate::snapshot::Rule;
use netheal_crds::{Check, Finding};

/// Chains owned by kube-proxy, Calico and flannel: never candidates.
pub fn is_owned_chain(chain: &str) -> bool {
    chain.starts_with("KUBE-") || chain.starts_with("cali-") || chain.starts_with("FLANNEL-")
}

/// Whether a rule carries a comment of kube-proxy, Calico or flannel.
pub fn has_owned_comment(args: &[String]) -> bool {
    args.windows(2).filter(|w| w[0] == "--comment").any(|w| {
        let c = w[1].to_ascii_lowercase();
        c.contains("kube")
            || c.contains("cali:")
            || c.contains("flannel")
            || c.ends_with("has no endpoints")
    })
}

/// Whether `rule` is a candidate for removal under `chains`.
pub fn is_candidate(rule: &Rule, chains: &[String]) -> bool {
    if rule.table != "filter" || is_owned_chain(&rule.chain) || !chains.contains(&rule.chain) {
        return false;
    }
    let args = split_args(&rule.spec);
    arg_value(&args, "-j") == Some("REJECT") && !has_owned_comment(&args)
}

/// Findings on the host namespace.
pub fn check(input: &Input<'_>) -> Vec<Finding> {
    let Some(ipt) = &input.snapshot.host.iptables else {
        return Vec::new();
    };
    let chains = &input.policy.checks.reject_rules.chains;
    ipt.rules
        .iter()
        .filter(|r| is_candidate(r, chains))
        .map(|r| {
            finding(
                Check::RejectRule,
                format!("filter {} {}", r.chain, r.spec),
                format!("present (iptables-{})", ipt.backend.as_str()),
                "absent".to_string(),
                format!(
                    "REJECT rule in {} ({} backend) drops overlay and pod traffic",
                    r.chain,
                    ipt.backend.as_str()
                ),
                details([
                    ("netns", String::new()),
                    ("table", "filter".to_string()),
                    ("chain", r.chain.clone()),
                    ("rule", r.spec.clone()),
                    ("backend", ipt.backend.as_str().to_string()),
                ]),
            )
        })
        .collect()
}

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

    #[test]
    fn only_unowned_rejects_in_listed_chains_are_candidates() {
        let chains = vec!["INPUT".to_string(), "FORWARD".to_string()];
        assert!(is_candidate(
            &rule("INPUT", "-j REJECT --reject-with icmp-host-prohibited"),
            &chains
        ));
        assert!(is_candidate(&rule("FORWARD", "-p tcp -j REJECT"), &chains));
        assert!(!is_candidate(&rule("INPUT", "-j ACCEPT"), &chains));
        assert!(!is_candidate(&rule("OUTPUT", "-j REJECT"), &chains));
        assert!(!is_candidate(
            &rule("KUBE-SERVICES", "-j REJECT"),
            &["KUBE-SERVICES".to_string()]
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
