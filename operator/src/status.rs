//! Building a policy's `status` from one pass (pure): the findings with their dispositions,
//! the bounded action list, the counters and the conditions. The caller compares the result
//! with what the API holds and writes only when something changed.

use crate::decide::summary::PolicyOutcome;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use netheal_crds::bounded::{append_bounded, keep_first};
use netheal_crds::conditions::{ConditionUpdate, set_condition, types};
use netheal_crds::policy::{MAX_POLICY_ACTIONS, MAX_POLICY_FINDINGS};
use netheal_crds::{ActionRecord, NetworkHealthPolicyStatus, Outcome, PolicySummary};

/// The new status: `base` (what was last written) with `outcome` and the new `records`.
pub fn build(
    base: Option<&NetworkHealthPolicyStatus>,
    outcome: &PolicyOutcome,
    records: &[ActionRecord],
    now: &Time,
) -> NetworkHealthPolicyStatus {
    let base = base.cloned().unwrap_or_default();
    let mut findings = outcome.findings.clone();
    let kept_cut = keep_first(&mut findings, MAX_POLICY_FINDINGS);
    let findings_truncated = u64::from(outcome.open_findings())
        .saturating_sub(findings.len() as u64)
        .max(kept_cut);
    let mut actions = base.actions;
    let mut actions_truncated = base.actions_truncated;
    append_bounded(
        &mut actions,
        &mut actions_truncated,
        records.iter().cloned(),
        MAX_POLICY_ACTIONS,
    );
    let applied = records
        .iter()
        .filter(|r| r.outcome == Outcome::Applied && !r.dry_run)
        .count() as u64;
    let failed = records
        .iter()
        .filter(|r| r.outcome == Outcome::Failed)
        .count() as u64;
    let summary = PolicySummary {
        nodes_selected: outcome.nodes_selected,
        nodes_reporting: outcome.nodes_reporting,
        nodes_healthy: outcome.nodes_healthy,
        open_findings: outcome.open_findings(),
        actions_applied: base.summary.actions_applied.saturating_add(applied),
        actions_failed: base.summary.actions_failed.saturating_add(failed),
    };
    let mut conditions = base.conditions;
    for update in conditions_for(outcome) {
        set_condition(&mut conditions, update, outcome.generation, now);
    }
    NetworkHealthPolicyStatus {
        observed_generation: outcome.generation,
        conditions,
        summary,
        findings,
        findings_truncated,
        actions,
        actions_truncated,
    }
}

/// `Ready`, `Degraded`, `Flapping`, `Paused` for one pass.
pub fn conditions_for(outcome: &PolicyOutcome) -> Vec<ConditionUpdate<'static>> {
    let open = outcome.open_findings();
    let silent = outcome
        .nodes_selected
        .saturating_sub(outcome.nodes_reporting);
    let ready = match (&outcome.selector_error, open, silent) {
        (Some(err), _, _) => (
            false,
            "InvalidSelector",
            format!("spec.nodeSelector: {err}"),
        ),
        (None, 0, 0) => (
            true,
            "AllHealthy",
            format!(
                "{} selected nodes report no open finding",
                outcome.nodes_selected
            ),
        ),
        (None, 0, _) => (
            false,
            "NodesNotReporting",
            format!(
                "{silent} of {} selected nodes have no report yet",
                outcome.nodes_selected
            ),
        ),
        (None, _, _) => (
            false,
            "OpenFindings",
            format!(
                "{open} open findings on {} nodes",
                outcome
                    .nodes_reporting
                    .saturating_sub(outcome.nodes_healthy)
            ),
        ),
    };
    let degraded = match (&outcome.selector_error, open) {
        (Some(err), _) => (true, "InvalidSelector", format!("spec.nodeSelector: {err}")),
        (None, 0) => (false, "NoOpenFindings", "no open finding".to_string()),
        (None, _) => (true, "OpenFindings", format!("{open} open findings")),
    };
    let flapping = if outcome.flapping.is_empty() {
        (
            false,
            "NotFlapping",
            "no finding keeps coming back".to_string(),
        )
    } else {
        let names: Vec<String> = outcome
            .flapping
            .iter()
            .map(|f| {
                format!(
                    "node {} check {} ({}; fixed {} times)",
                    f.node, f.check, f.target, f.fixes
                )
            })
            .collect();
        (
            true,
            "FindingFlapping",
            format!(
                "not fixed any more, something else writes them: {}",
                names.join("; ")
            ),
        )
    };
    let paused = if outcome.paused {
        (true, "PolicyPaused", "spec.paused is true".to_string())
    } else {
        (false, "Active", "spec.paused is false".to_string())
    };
    [
        (types::READY, ready),
        (types::DEGRADED, degraded),
        (types::FLAPPING, flapping),
        (types::PAUSED, paused),
    ]
    .into_iter()
    .map(|(type_, (status, reason, message))| ConditionUpdate {
        type_,
        status,
        reason,
        message,
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::summary::Flap;
    use k8s_openapi::jiff::Timestamp;
    use netheal_crds::conditions::{find_condition, is_condition_true};
    use netheal_crds::{Action, Check, PolicyFinding};

    fn t(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    fn record(id: usize, outcome: Outcome) -> ActionRecord {
        ActionRecord {
            id: format!("a-{id}"),
            time: t(id as i64),
            node: "n1".into(),
            action: Action::SetSysctl,
            check: Some(Check::IpForward),
            target: "net.ipv4.ip_forward".into(),
            before: "0".into(),
            after: "1".into(),
            outcome,
            dry_run: false,
            message: None,
        }
    }

    fn finding(n: usize) -> PolicyFinding {
        PolicyFinding {
            id: format!("f{n:04}"),
            node: "n1".into(),
            check: Check::ArpIgnore,
            target: "t".into(),
            observed: "2".into(),
            desired: "0".into(),
            proposed_action: Some(Action::SetSysctl),
            disposition: Some("dry-run: would SetSysctl".into()),
        }
    }

    #[test]
    fn actions_are_bounded_newest_kept_and_counted() {
        let outcome = PolicyOutcome {
            generation: Some(4),
            nodes_selected: 2,
            ..Default::default()
        };
        let first: Vec<_> = (0..MAX_POLICY_ACTIONS)
            .map(|i| record(i, Outcome::Applied))
            .collect();
        let s1 = build(None, &outcome, &first, &t(1));
        assert_eq!(s1.actions.len(), MAX_POLICY_ACTIONS);
        assert_eq!(s1.summary.actions_applied, MAX_POLICY_ACTIONS as u64);
        let more = vec![
            record(1000, Outcome::Failed),
            record(1001, Outcome::NoChange),
        ];
        let s2 = build(Some(&s1), &outcome, &more, &t(2));
        assert_eq!(s2.actions.len(), MAX_POLICY_ACTIONS);
        assert_eq!(s2.actions_truncated, 2);
        assert_eq!(s2.actions.last().unwrap().id, "a-1001");
        assert_eq!(s2.actions[0].id, "a-2");
        assert_eq!(s2.summary.actions_failed, 1);
        assert_eq!(s2.summary.actions_applied, MAX_POLICY_ACTIONS as u64);
        assert_eq!(s2.observed_generation, Some(4));
    }

    #[test]
    fn findings_are_bounded() {
        let mut outcome = PolicyOutcome::default();
        for n in 0..MAX_POLICY_FINDINGS + 7 {
            outcome.add_finding(finding(n));
        }
        let s = build(None, &outcome, &[], &t(1));
        assert_eq!(s.findings.len(), MAX_POLICY_FINDINGS);
        assert_eq!(s.findings_truncated, 7);
        assert_eq!(s.summary.open_findings, (MAX_POLICY_FINDINGS + 7) as u32);
    }

    #[test]
    fn conditions_follow_the_outcome_and_a_rebuild_with_nothing_new_is_equal() {
        let mut outcome = PolicyOutcome {
            generation: Some(1),
            ..Default::default()
        };
        outcome.count_node(true, false);
        outcome.finish();
        let s = build(None, &outcome, &[], &t(1));
        assert!(is_condition_true(&s.conditions, types::READY));
        assert!(!is_condition_true(&s.conditions, types::DEGRADED));
        assert!(!is_condition_true(&s.conditions, types::FLAPPING));
        assert!(!is_condition_true(&s.conditions, types::PAUSED));
        // Nothing new: the same status (so no write).
        assert_eq!(build(Some(&s), &outcome, &[], &t(50)), s);

        // n1 now has a finding: it is no longer healthy.
        outcome.add_finding(finding(1));
        outcome.nodes_healthy = 0;
        outcome.flapping.push(Flap {
            node: "n1".into(),
            check: Check::IpForward,
            target: "net.ipv4.ip_forward".into(),
            fixes: 3,
        });
        outcome.paused = true;
        outcome.finish();
        let s2 = build(Some(&s), &outcome, &[], &t(60));
        assert!(!is_condition_true(&s2.conditions, types::READY));
        assert!(is_condition_true(&s2.conditions, types::DEGRADED));
        assert!(is_condition_true(&s2.conditions, types::PAUSED));
        let flapping = find_condition(&s2.conditions, types::FLAPPING).unwrap();
        assert_eq!(flapping.status, "True");
        assert!(flapping.message.contains("node n1 check IpForward"));
        assert_eq!(flapping.last_transition_time, t(60));
        assert_eq!(s2.summary.nodes_healthy, 0);
    }

    #[test]
    fn silent_nodes_and_bad_selectors_are_not_ready() {
        let outcome = PolicyOutcome {
            nodes_selected: 3,
            ..Default::default()
        };
        let s = build(None, &outcome, &[], &t(1));
        let ready = find_condition(&s.conditions, types::READY).unwrap();
        assert_eq!(ready.reason, "NodesNotReporting");
        let outcome = PolicyOutcome {
            selector_error: Some("bad operator".into()),
            ..Default::default()
        };
        let s = build(None, &outcome, &[], &t(1));
        assert!(is_condition_true(&s.conditions, types::DEGRADED));
        assert_eq!(
            find_condition(&s.conditions, types::READY).unwrap().reason,
            "InvalidSelector"
        );
    }
}
