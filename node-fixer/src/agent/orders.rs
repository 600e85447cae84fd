//! Which approved orders to execute (pure). Each order runs at most once: an order whose id
//! already has an answer (in the report's `status.results` read from the API, or in this
//! process's memory) is never executed again.

use super::policy_select::NamedPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use netheal_crds::{NetworkHealthPolicySpec, Outcome, RemediationOrder, RemediationResult};
use std::collections::HashSet;

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
/// - `open_findings`: the finding ids of the latest scan: an order for a finding that is gone
///   is answered `NoChange` without running;
/// - `applying`: the policies that select this node: an order from a policy that no longer
///   exists or no longer selects this node is `Skipped`, as is a cluster-level action.
pub fn plan(
    orders: &[RemediationOrder],
    answered: &HashSet<String>,
    open_findings: &HashSet<String>,
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
            if !open_findings.contains(&o.finding_id) {
                return Plan::Answer(answer(
                    o,
                    Outcome::NoChange,
                    format!(
                        "finding {} is no longer observed: nothing to fix",
                        o.finding_id
                    ),
                    now,
                ));
            }
            Plan::Execute {
                order: o.clone(),
                policy: Box::new(policy.spec.clone()),
            }
        })
        .collect()
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

    #[test]
    fn answered_orders_are_never_planned_again() {
        let orders = [
            order("o1", Action::SetSysctl, "f1", "p"),
            order("o2", Action::SetSysctl, "f1", "p"),
        ];
        let plans = plan(&orders, &set(&["o1"]), &set(&["f1"]), &policies(), &t());
        assert_eq!(plans.len(), 1);
        let Plan::Execute { order, .. } = &plans[0] else {
            panic!("{plans:?}")
        };
        assert_eq!(order.id, "o2");
        assert!(
            plan(
                &orders,
                &set(&["o1", "o2"]),
                &set(&["f1"]),
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
            plan(&orders, &set(&[]), &set(&["f1"]), &policies(), &t()).len(),
            1
        );
    }

    #[test]
    fn an_order_for_a_gone_finding_is_answered_no_change() {
        let orders = [order("o1", Action::SetSysctl, "gone", "p")];
        let plans = plan(&orders, &set(&[]), &set(&["f1"]), &policies(), &t());
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
        let plans = plan(&orders, &set(&[]), &set(&["f1"]), &policies(), &t());
        for p in &plans {
            let Plan::Answer(r) = p else {
                panic!("{plans:?}")
            };
            assert_eq!(r.outcome, Outcome::Skipped);
        }
        assert_eq!(plans.len(), 2);
    }
}
