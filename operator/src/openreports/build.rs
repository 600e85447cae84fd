//! Pure: the OpenReports `ClusterReport` of one node from the pass's view of it. One result per
//! policy selecting the node and check: `fail` (an open finding: the message names the targets
//! and the proposed or applied action), `pass`, `skip` (the check is disabled in the policy),
//! `error` (node-fixer has not reported, or its scan of that area failed).
//! A result keeps its timestamp while its outcome stays, so an unchanged node is an unchanged
//! report and costs no write.

use crate::decide::node_view::NodeView;
use crate::ledger::Ledger;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use netheal_crds::openreports::{
    ClusterReport, Outcome, ReportResult, ResultTime, SOURCE, ScopeRef, Severity, Summary,
};
use netheal_crds::{Check, NetworkHealthPolicy, PolicyFinding};
use std::collections::BTreeMap;

/// The label every report netheal writes carries (`app.kubernetes.io/managed-by`).
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "netheal");
/// The label naming the report's node.
pub const NODE_LABEL: &str = "netheal.io/node";
/// Results of one report at most (every check of four policies; a node selected by more
/// policies keeps the first four by name and says so in the last result).
pub const MAX_RESULTS: usize = 4 * Check::ALL.len();
/// Targets named in a `fail` result's message; the rest are counted.
pub const MAX_TARGETS_NAMED: usize = 3;
/// Finding ids listed in a result's `findingIds` property.
pub const MAX_FINDING_IDS: usize = 10;
/// The category of every result.
pub const CATEGORY: &str = "Node networking";

/// The name of `node`'s report.
pub fn report_name(node: &str) -> String {
    format!("netheal-{node}")
}

/// How bad a failing check is: what stops pod traffic is high (a node that forwards nothing is
/// critical); what degrades it or is only reported is medium or low.
pub fn severity(check: Check) -> Severity {
    match check {
        Check::IpForward => Severity::Critical,
        Check::ArpIgnore
        | Check::StaleNeighbour
        | Check::VtepMissing
        | Check::PeerRouteMissing
        | Check::RejectRule
        | Check::DuplicatePodIp
        | Check::ServiceVipMissing => Severity::High,
        Check::ProxyArpOff
        | Check::Masquerade
        | Check::BridgeSubnetMismatch
        | Check::Mtu
        | Check::TunnelOffload => Severity::Medium,
        Check::RpFilter => Severity::Low,
    }
}

/// The checks a scan error of one probe leaves unevaluated, by the error's prefix; `None`: the
/// error is not one probe's and concerns every node-local check.
fn checks_of_probe(error: &str) -> Option<&'static [Check]> {
    const PROBES: [(&str, &[Check]); 7] = [
        (
            "iptables:",
            &[
                Check::RejectRule,
                Check::Masquerade,
                Check::ServiceVipMissing,
            ],
        ),
        ("ip6tables:", &[Check::RejectRule]),
        ("kube-proxy:", &[Check::ServiceVipMissing]),
        ("nftables:", &[Check::RejectRule]),
        ("flannel:", &[Check::BridgeSubnetMismatch]),
        ("ethtool:", &[Check::TunnelOffload]),
        ("kernel:", &[Check::TunnelOffload]),
    ];
    PROBES
        .iter()
        .find(|(prefix, _)| error.starts_with(prefix))
        .map(|(_, checks)| *checks)
}

/// The scan error that leaves `check` unevaluated on the node, if any: the error of one probe
/// (`iptables:`, `nftables:`, `kube-proxy:`, `flannel:`, `ethtool:`, `kernel:`) concerns the checks that read it only;
/// any other scan error every node-local check.
fn scan_error(view: &NodeView, check: Check) -> Option<&str> {
    if check == Check::DuplicatePodIp {
        return None;
    }
    view.scan_errors
        .iter()
        .find(|e| checks_of_probe(e).is_none_or(|checks| checks.contains(&check)))
        .map(String::as_str)
}

/// What a node's report is built from, besides its view.
pub struct Facts<'a> {
    /// Policies by name.
    pub policies: &'a BTreeMap<&'a str, &'a NetworkHealthPolicy>,
    /// Past actions.
    pub ledger: &'a Ledger,
    /// The results the node's report holds now (to keep timestamps and the last action).
    pub previous: &'a [ReportResult],
    /// Now (whole seconds).
    pub now: Timestamp,
}

/// The results for `node`.
pub fn results(node: &str, view: &NodeView, facts: &Facts<'_>) -> Vec<ReportResult> {
    let mut by_key: BTreeMap<(&str, Check), Vec<&PolicyFinding>> = BTreeMap::new();
    for (policy, finding) in &view.findings {
        by_key
            .entry((policy.as_str(), finding.check))
            .or_default()
            .push(finding);
    }
    let previous: BTreeMap<(&str, &str), &ReportResult> = facts
        .previous
        .iter()
        .filter_map(|r| Some(((r.policy.as_str(), r.rule.as_deref()?), r)))
        .collect();
    let mut out = Vec::new();
    for name in &view.policies {
        if out.len() + Check::ALL.len() > MAX_RESULTS {
            break;
        }
        let Some(policy) = facts.policies.get(name.as_str()) else {
            continue;
        };
        for check in Check::ALL {
            let findings = by_key
                .get(&(name.as_str(), check))
                .map(Vec::as_slice)
                .unwrap_or_default();
            let before = previous.get(&(name.as_str(), check.as_str())).copied();
            out.push(result(node, view, policy, check, findings, before, facts));
        }
    }
    out
}

fn result(
    node: &str,
    view: &NodeView,
    policy: &NetworkHealthPolicy,
    check: Check,
    findings: &[&PolicyFinding],
    before: Option<&ReportResult>,
    facts: &Facts<'_>,
) -> ReportResult {
    let name = policy.metadata.name.clone().unwrap_or_default();
    let mut properties = BTreeMap::new();
    properties.insert("mode".to_string(), format!("{:?}", policy.spec.mode));
    let (outcome, message) = if !policy.spec.checks.is_enabled(check) {
        (
            Outcome::Skip,
            format!("{check} is disabled in policy {name}"),
        )
    } else if !findings.is_empty() {
        fail(node, findings, facts, &mut properties)
    } else if !view.reporting && check != Check::DuplicatePodIp {
        (
            Outcome::Error,
            format!("node-fixer has not reported from node {node}"),
        )
    } else if let Some(error) = scan_error(view, check) {
        (Outcome::Error, format!("scan incomplete: {error}"))
    } else {
        // A check that passes after a fix keeps naming the fix.
        if let Some(last) = before.and_then(|b| b.properties.get("lastAction")) {
            properties.insert("lastAction".to_string(), last.clone());
        }
        if before.is_some_and(|b| b.result == Some(Outcome::Fail))
            && let Some(ids) = before.and_then(|b| b.properties.get("findingIds"))
            && let Some(last) = last_action(facts.ledger, node, ids.split(','))
        {
            properties.insert("lastAction".to_string(), last);
        }
        (Outcome::Pass, format!("no {check} finding on node {node}"))
    };
    let timestamp = match before {
        Some(b) if b.result == Some(outcome) && b.timestamp.is_some() => b.timestamp,
        _ => Some(ResultTime {
            seconds: facts.now.as_second(),
            nanos: 0,
        }),
    };
    ReportResult {
        policy: name,
        rule: Some(check.as_str().to_string()),
        result: Some(outcome),
        severity: Some(severity(check)),
        category: Some(CATEGORY.to_string()),
        source: Some(SOURCE.to_string()),
        message: Some(message),
        scored: Some(true),
        timestamp,
        properties,
    }
}

/// A failing check: its message names the targets and what is done about them.
fn fail(
    node: &str,
    findings: &[&PolicyFinding],
    facts: &Facts<'_>,
    properties: &mut BTreeMap<String, String>,
) -> (Outcome, String) {
    let mut parts: Vec<String> = findings
        .iter()
        .take(MAX_TARGETS_NAMED)
        .map(|f| {
            let action = f
                .proposed_action
                .map(|a| format!(" [{a}]"))
                .unwrap_or_default();
            let disposition = f.disposition.as_deref().unwrap_or("open");
            format!(
                "{}: {} (want {}){action}: {disposition}",
                f.target, f.observed, f.desired
            )
        })
        .collect();
    if findings.len() > MAX_TARGETS_NAMED {
        parts.push(format!("and {} more", findings.len() - MAX_TARGETS_NAMED));
    }
    let ids: Vec<&str> = findings
        .iter()
        .take(MAX_FINDING_IDS)
        .map(|f| f.id.as_str())
        .collect();
    properties.insert("findingIds".to_string(), ids.join(","));
    properties.insert("findings".to_string(), findings.len().to_string());
    if let Some(action) = findings.iter().find_map(|f| f.proposed_action) {
        properties.insert("action".to_string(), action.to_string());
    }
    if let Some(last) = last_action(facts.ledger, node, findings.iter().map(|f| f.id.as_str())) {
        properties.insert("lastAction".to_string(), last);
    }
    (Outcome::Fail, parts.join("; "))
}

/// The latest action on any of `findings` on `node`: `<id> <action> <outcome> at <time>`.
fn last_action<'a>(
    ledger: &Ledger,
    node: &str,
    findings: impl Iterator<Item = &'a str>,
) -> Option<String> {
    let last = findings
        .filter_map(|id| ledger.last_for_finding(node, id))
        .max_by_key(|e| e.time)?;
    Some(format!(
        "{} {} {} at {}",
        last.id, last.action, last.outcome, last.time
    ))
}

/// The whole report of `node` (uid `uid`) with `results`: named [`report_name`], labelled,
/// owned by the Node (so it goes when the Node goes), scoped to it.
pub fn report(node: &str, uid: &str, results: Vec<ReportResult>) -> ClusterReport {
    let labels = BTreeMap::from([
        (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
        (NODE_LABEL.to_string(), node.to_string()),
    ]);
    ClusterReport {
        metadata: ObjectMeta {
            name: Some(report_name(node)),
            labels: Some(labels),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: node.to_string(),
                uid: uid.to_string(),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        },
        scope: Some(ScopeRef {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.to_string()),
            uid: Some(uid.to_string()),
        }),
        source: Some(SOURCE.to_string()),
        summary: Some(Summary::of(&results)),
        results,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::testkit::policy;
    use crate::ledger::Entry;
    use netheal_crds::{Action, Outcome as ActionOutcome, finding_id};
    use std::sync::Arc;

    fn finding(check: Check, target: &str) -> PolicyFinding {
        PolicyFinding {
            id: finding_id(check, target),
            node: "node1".into(),
            check,
            target: target.into(),
            observed: "0".into(),
            desired: "1".into(),
            proposed_action: check.remedy(),
            disposition: Some("approved: order o-1".into()),
        }
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).expect("valid")
    }

    fn build(
        view: &NodeView,
        policies: &[Arc<NetworkHealthPolicy>],
        ledger: &Ledger,
        previous: &[ReportResult],
        now: i64,
    ) -> Vec<ReportResult> {
        let by_name: BTreeMap<&str, &NetworkHealthPolicy> = policies
            .iter()
            .map(|p| (p.metadata.name.as_deref().unwrap_or_default(), p.as_ref()))
            .collect();
        results(
            "node1",
            view,
            &Facts {
                policies: &by_name,
                ledger,
                previous,
                now: at(now),
            },
        )
    }

    fn outcome(results: &[ReportResult], check: Check) -> Option<Outcome> {
        outcome_of(results, check).result
    }

    fn outcome_of(results: &[ReportResult], check: Check) -> &ReportResult {
        results
            .iter()
            .find(|r| r.rule.as_deref() == Some(check.as_str()))
            .expect("a result for every check")
    }

    #[test]
    fn one_result_per_check_fail_pass_skip_and_a_heal_keeps_naming_its_fix() {
        let mut p = policy("baseline");
        Arc::make_mut(&mut p).spec.checks.masquerade.enabled = false;
        let policies = vec![p];
        let ip_forward = finding(Check::IpForward, "net.ipv4.ip_forward");
        let mut view = NodeView {
            policies: vec!["baseline".into()],
            reporting: true,
            scan_errors: Vec::new(),
            findings: vec![("baseline".into(), ip_forward.clone())],
        };
        let mut ledger = Ledger::new();
        let failing = build(&view, &policies, &ledger, &[], 100);
        assert_eq!(failing.len(), Check::ALL.len());
        let r = outcome_of(&failing, Check::IpForward);
        assert_eq!(r.result, Some(Outcome::Fail));
        assert_eq!(r.severity, Some(Severity::Critical));
        let message = r.message.as_deref().unwrap_or_default();
        assert!(message.contains("net.ipv4.ip_forward"), "{message}");
        assert!(message.contains("[SetSysctl]"), "{message}");
        assert!(message.contains("approved: order o-1"), "{message}");
        assert_eq!(r.properties["findingIds"], ip_forward.id);
        assert_eq!(r.properties["action"], "SetSysctl");
        assert_eq!(outcome(&failing, Check::ArpIgnore), Some(Outcome::Pass));
        assert_eq!(outcome(&failing, Check::Masquerade), Some(Outcome::Skip));
        // Every check of the vocabulary is detected: none is skipped unless switched off.
        assert_eq!(
            outcome(&failing, Check::ServiceVipMissing),
            Some(Outcome::Pass)
        );
        assert_eq!(Summary::of(&failing).fail, 1);

        // Fixed: the finding is gone, the fix is in the ledger.
        ledger.push(Entry {
            id: "o-1".into(),
            policy: "baseline".into(),
            node: "node1".into(),
            action: Action::SetSysctl,
            finding_id: ip_forward.id.clone(),
            time: at(105),
            outcome: ActionOutcome::Applied,
            dry_run: false,
        });
        view.findings.clear();
        let healed = build(&view, &policies, &ledger, &failing, 110);
        let r = outcome_of(&healed, Check::IpForward);
        assert_eq!(r.result, Some(Outcome::Pass));
        assert_eq!(r.timestamp.map(|t| t.seconds), Some(110));
        assert!(
            r.properties["lastAction"].starts_with("o-1 SetSysctl Applied"),
            "{:?}",
            r.properties
        );
        // Unchanged: the same results, timestamps kept, so no write.
        let again = build(&view, &policies, &ledger, &healed, 200);
        assert_eq!(again, healed);
        assert_eq!(
            outcome_of(&again, Check::ArpIgnore)
                .timestamp
                .map(|t| t.seconds),
            Some(100)
        );
    }

    #[test]
    fn no_report_or_a_failed_scan_is_an_error_never_a_pass() {
        let policies = vec![policy("baseline")];
        let mut view = NodeView {
            policies: vec!["baseline".into()],
            ..NodeView::default()
        };
        let ledger = Ledger::new();
        let silent = build(&view, &policies, &ledger, &[], 1);
        assert_eq!(outcome(&silent, Check::IpForward), Some(Outcome::Error));
        // Duplicate pod IPs are the operator's own check: known without the node.
        assert_eq!(outcome(&silent, Check::DuplicatePodIp), Some(Outcome::Pass));
        view.reporting = true;
        view.scan_errors = vec!["iptables: iptables-legacy-save failed".into()];
        let partial = build(&view, &policies, &ledger, &[], 1);
        assert_eq!(outcome(&partial, Check::RejectRule), Some(Outcome::Error));
        assert_eq!(outcome(&partial, Check::IpForward), Some(Outcome::Pass));
        // One probe's error leaves its own checks unevaluated, no other.
        for (error, broken, kept) in [
            (
                "nftables: nft -j list tables failed",
                Check::RejectRule,
                Check::Masquerade,
            ),
            (
                "ip6tables: ip6tables-nft-save failed",
                Check::RejectRule,
                Check::ServiceVipMissing,
            ),
            (
                "flannel: /run/flannel/subnet.env: no FLANNEL_SUBNET",
                Check::BridgeSubnetMismatch,
                Check::Mtu,
            ),
            (
                "ethtool: flannel.1: Operation not supported",
                Check::TunnelOffload,
                Check::RejectRule,
            ),
        ] {
            view.scan_errors = vec![error.into()];
            let partial = build(&view, &policies, &ledger, &[], 1);
            assert_eq!(outcome(&partial, broken), Some(Outcome::Error), "{error}");
            assert_eq!(outcome(&partial, kept), Some(Outcome::Pass), "{error}");
        }
        view.scan_errors = vec!["netlink: link dump failed".into()];
        let blind = build(&view, &policies, &ledger, &[], 1);
        assert_eq!(outcome(&blind, Check::IpForward), Some(Outcome::Error));
        assert_eq!(outcome(&blind, Check::TunnelOffload), Some(Outcome::Error));
    }

    #[test]
    fn results_are_bounded_and_name_the_policy() {
        let names: Vec<String> = (0..10).map(|i| format!("p{i}")).collect();
        let policies: Vec<_> = names.iter().map(|n| policy(n)).collect();
        let view = NodeView {
            policies: names.clone(),
            reporting: true,
            ..NodeView::default()
        };
        let results = build(&view, &policies, &Ledger::new(), &[], 1);
        assert_eq!(results.len(), MAX_RESULTS);
        assert_eq!(results[0].policy, "p0");
        let findings: Vec<_> = (0..20)
            .map(|i| {
                (
                    "p0".to_string(),
                    finding(Check::RejectRule, &format!("rule {i}")),
                )
            })
            .collect();
        let view = NodeView {
            policies: vec!["p0".into()],
            reporting: true,
            scan_errors: Vec::new(),
            findings,
        };
        let results = build(&view, &policies, &Ledger::new(), &[], 1);
        let r = outcome_of(&results, Check::RejectRule);
        assert!(
            r.message
                .as_deref()
                .is_some_and(|m| m.contains("and 17 more"))
        );
        assert_eq!(
            r.properties["findingIds"].split(',').count(),
            MAX_FINDING_IDS
        );
        assert_eq!(r.properties["findings"], "20");
    }

    #[test]
    fn the_report_is_owned_by_and_scoped_to_its_node() {
        let r = report("node1", "uid-1", Vec::new());
        assert_eq!(r.metadata.name.as_deref(), Some("netheal-node1"));
        let owner = &r.metadata.owner_references.as_ref().expect("owned")[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Node", "uid-1"));
        let scope = r.scope.as_ref().expect("scoped");
        assert_eq!(scope.name.as_deref(), Some("node1"));
        assert_eq!(r.summary, Some(Summary::default()));
    }
}
