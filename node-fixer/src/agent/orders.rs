//! Which approved orders to execute (pure). Each order runs at most once: an order whose id
//! already has an answer (in the report's `status.results` read from the API, or in this
//! process's memory) is never executed again.
//!
//! An order is an approval of one finding this node observed, not a command: what runs is
//! rebuilt from the node's own current finding with that id, and an order whose check, target,
//! action or parameters differ from it is refused (`Skipped`, saying what differs). The report an
//! order was derived from may have been written by anyone allowed to write reports.

use super::policy_select::NamedPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use netheal_crds::{
    Finding, NetworkHealthPolicySpec, Outcome, RemediationOrder, RemediationResult,
};
use std::collections::{HashMap, HashSet};

/// What to do with one unanswered order.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// Run it through the engine with this policy spec.
    Execute {
        /// The order.
        order: RemediationOrder,
        /// The spec of the policy that approved it (interface patterns, persistSysctls).
        policy: Box<NetworkHealthPolicySpec>,
    },
    /// Answer it without touching the kernel.
    Answer(RemediationResult),
}

/// The result of an order answered without executing it.
pub fn answer(
    order: &RemediationOrder,
    outcome: Outcome,
    message: String,
    now: &Time,
) -> RemediationResult {
    RemediationResult {
        id: order.id.clone(),
        action: order.action,
        target: order.target.clone(),
        outcome,
        before: String::new(),
        after: String::new(),
        dry_run: order.dry_run,
        time: now.clone(),
        message: Some(message),
    }
}

/// Plan the orders of `spec.remediations` that have no answer yet.
///
/// - `answered`: ids with a result (from the API and from memory);
/// - `open_findings`: the findings of the latest scan, by id: an order for a finding that is
///   gone is answered `NoChange` without running; one that differs from the finding is
///   `Skipped`; otherwise the order is rebuilt from the finding;
/// - `applying`: the policies that select this node: an order from a policy that no longer
///   exists or no longer selects this node is `Skipped`, as is a cluster-level action.
pub fn plan(
    orders: &[RemediationOrder],
    answered: &HashSet<String>,
    open_findings: &HashMap<String, &Finding>,
    applying: &[NamedPolicy],
    now: &Time,
) -> Vec<Plan> {
    let mut planned = HashSet::new();
    orders
        .iter()
        .filter(|o| !answered.contains(&o.id) && planned.insert(o.id.clone()))
        .map(|o| {
            if !o.action.is_node_local() {
                return Plan::Answer(answer(
                    o,
                    Outcome::Skipped,
                    format!(
                        "{} is a cluster action: the operator applies it, not node-fixer",
                        o.action
                    ),
                    now,
                ));
            }
            let Some(policy) = applying.iter().find(|p| p.name == o.policy) else {
                return Plan::Answer(answer(
                    o,
                    Outcome::Skipped,
                    format!(
                        "policy {} does not exist or no longer selects this node",
                        o.policy
                    ),
                    now,
                ));
            };
            let Some(finding) = open_findings.get(&o.finding_id) else {
                return Plan::Answer(answer(
                    o,
                    Outcome::NoChange,
                    format!(
                        "finding {} is no longer observed: nothing to fix",
                        o.finding_id
                    ),
                    now,
                ));
            };
            if let Some(differs) = difference(o, finding) {
                return Plan::Answer(answer(
                    o,
                    Outcome::Skipped,
                    format!(
                        "refused: the order differs from finding {} as this node observes it: {differs}",
                        o.finding_id
                    ),
                    now,
                ));
            }
            Plan::Execute {
                order: RemediationOrder {
                    check: finding.check,
                    target: finding.target.clone(),
                    parameters: finding.details.to_map(),
                    ..o.clone()
                },
                policy: Box::new(policy.spec.clone()),
            }
        })
        .collect()
}

/// What differs between an order and the node's own finding, if anything.
fn difference(order: &RemediationOrder, finding: &Finding) -> Option<String> {
    let action = finding.action.or_else(|| finding.check.remedy());
    if order.check != finding.check {
        return Some(format!(
            "check {} (observed {})",
            order.check, finding.check
        ));
    }
    if order.target != finding.target {
        return Some(format!(
            "target {:?} (observed {:?})",
            order.target, finding.target
        ));
    }
    if action != Some(order.action) {
        let observed = action.map_or_else(|| "none".to_string(), |a| a.to_string());
        return Some(format!("action {} (observed {observed})", order.action));
    }
    if order.parameters != finding.details {
        let keys: Vec<&str> = order
            .parameters
            .iter()
            .filter(|(k, v)| finding.details.get(k) != Some(v))
            .map(|(k, _)| k.as_str())
            .chain(
                finding
                    .details
                    .keys()
                    .filter(|k| !order.parameters.contains_key(*k))
                    .map(String::as_str),
            )
            .collect();
        return Some(format!("parameters {}", keys.join(", ")));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use netheal_crds::{Action, Check};

    fn t() -> Time {
        Time(jiff::Timestamp::from_second(1_800_000_000).unwrap())
    }

    fn order(id: &str, action: Action, finding: &str, policy: &str) -> RemediationOrder {
        RemediationOrder {
            id: id.into(),
            action,
            finding_id: finding.into(),
            check: Check::IpForward,
            target: "net.ipv4.ip_forward".into(),
            parameters: Default::default(),
            policy: policy.into(),
            dry_run: true,
            approved_at: t(),
        }
    }

    fn policies() -> Vec<NamedPolicy> {
        vec![NamedPolicy {
            name: "p".into(),
            spec: Default::default(),
        }]
    }

    fn set(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    /// The finding `id` the test orders are for: ip_forward off, fixed by SetSysctl.
    fn finding(id: &str) -> Finding {
        let mut f = crate::checks::finding(
            Check::IpForward,
            "net.ipv4.ip_forward".into(),
            "0".into(),
            "1".into(),
            "IPv4 forwarding is off".into(),
            Default::default(),
        );
        f.id = id.into();
        f
    }

    fn open(findings: &[Finding]) -> HashMap<String, &Finding> {
        findings.iter().map(|f| (f.id.clone(), f)).collect()
    }

    /// Plan `orders`, none answered, with finding f1 open and policy p applying.
    fn plan_new(orders: &[RemediationOrder]) -> Vec<Plan> {
        plan(
            orders,
            &set(&[]),
            &open(&[finding("f1")]),
            &policies(),
            &t(),
        )
    }

    #[test]
    fn an_order_that_differs_from_the_nodes_own_finding_is_refused() {
        let mut observed = finding("f1");
        observed
            .details
            .insert("sysctl".into(), "net/ipv4/ip_forward".into());
        observed.details.insert("value".into(), "1".into());
        let honest = {
            let mut o = order("o0", Action::SetSysctl, "f1", "p");
            o.parameters = observed.details.to_map();
            o
        };
        let mut forged_key = honest.clone();
        forged_key.id = "o1".into();
        forged_key
            .parameters
            .insert("sysctl".into(), "kernel/panic".into());
        let mut forged_target = honest.clone();
        forged_target.id = "o2".into();
        forged_target.target = "net.ipv4.conf.all.arp_ignore".into();
        let mut forged_action = honest.clone();
        forged_action.id = "o3".into();
        forged_action.action = Action::DeleteNeighbour;
        let orders = [honest, forged_key, forged_target, forged_action];
        let plans = plan(
            &orders,
            &set(&[]),
            &open(&[observed.clone()]),
            &policies(),
            &t(),
        );
        let Plan::Execute { order, .. } = &plans[0] else {
            panic!("{plans:?}")
        };
        assert_eq!(
            order.parameters, observed.details,
            "rebuilt from the finding"
        );
        for (plan, what) in plans[1..]
            .iter()
            .zip(["parameters sysctl", "target", "action"])
        {
            let Plan::Answer(r) = plan else {
                panic!("{plans:?}")
            };
            assert_eq!(r.outcome, Outcome::Skipped);
            let message = r.message.as_deref().unwrap_or_default();
            assert!(
                message.starts_with("refused:") && message.contains(what),
                "{message}"
            );
        }
    }

    #[test]
    fn answered_orders_are_never_planned_again() {
        let orders = [
            order("o1", Action::SetSysctl, "f1", "p"),
            order("o2", Action::SetSysctl, "f1", "p"),
        ];
        let plans = plan(
            &orders,
            &set(&["o1"]),
            &open(&[finding("f1")]),
            &policies(),
            &t(),
        );
        assert_eq!(plans.len(), 1);
        let Plan::Execute { order, .. } = &plans[0] else {
            panic!("{plans:?}")
        };
        assert_eq!(order.id, "o2");
        assert!(
            plan(
                &orders,
                &set(&["o1", "o2"]),
                &open(&[finding("f1")]),
                &policies(),
                &t()
            )
            .is_empty()
        );
    }

    #[test]
    fn a_duplicated_order_id_runs_once() {
        let orders = [
            order("o1", Action::SetSysctl, "f1", "p"),
            order("o1", Action::SetSysctl, "f1", "p"),
        ];
        assert_eq!(
            plan(
                &orders,
                &set(&[]),
                &open(&[finding("f1")]),
                &policies(),
                &t()
            )
            .len(),
            1
        );
    }

    #[test]
    fn an_order_for_a_gone_finding_is_answered_no_change() {
        let orders = [order("o1", Action::SetSysctl, "gone", "p")];
        let plans = plan_new(&orders);
        let Plan::Answer(r) = &plans[0] else {
            panic!("{plans:?}")
        };
        assert_eq!(r.outcome, Outcome::NoChange);
        assert_eq!(r.id, "o1");
        assert!(r.dry_run);
        assert!(r.message.as_deref().unwrap().contains("gone"));
    }

    #[test]
    fn unknown_policies_and_cluster_actions_are_skipped() {
        let orders = [
            order("o1", Action::SetSysctl, "f1", "other"),
            order("o2", Action::RestartCniPod, "f1", "p"),
        ];
        let plans = plan_new(&orders);
        for p in &plans {
            let Plan::Answer(r) = p else {
                panic!("{plans:?}")
            };
            assert_eq!(r.outcome, Outcome::Skipped);
        }
        assert_eq!(plans.len(), 2);
    }
}
