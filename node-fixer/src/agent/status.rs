//! Building the report's status from a scan (pure), and deciding whether it is worth a write.
//!
//! A healthy node must not churn its report: `lastSeen`, `lastScanTime` and
//! `lastScanDurationMs` change on every scan, so they are "volatile": a status that differs
//! from the last written one only in volatile fields is written at most once per refresh
//! interval (a heartbeat that tells the operator the agent is alive).

use super::policy_select::Effective;
use crate::checks::Findings;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use netheal_crds::bounded::{keep_first, truncate_oldest};
use netheal_crds::report::{MAX_REPORT_FINDINGS, MAX_REPORT_RESULTS};
use netheal_crds::{
    Finding, NodeNetworkReportStatus, RemediationOrder, RemediationResult, finding_id,
};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// The most error lines one report carries.
pub const MAX_REPORT_ERRORS: usize = 20;

/// The agent's version, reported in `status.agentVersion`.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// `now`, truncated to whole seconds (the API's `Time` precision), so that a status read back
/// from the API compares equal to the one built in memory.
pub fn now_seconds(now: jiff::Timestamp) -> Time {
    Time(jiff::Timestamp::from_second(now.as_second()).unwrap_or(now))
}

/// One scan, as the status needs it.
#[derive(Clone, Debug, Default)]
pub struct ScanFacts {
    /// The engine's findings (policy, firstSeen, lastSeen unset).
    pub findings: Findings,
    /// `nft` or `legacy`.
    pub iptables_backend: Option<String>,
    /// Probe errors, policy errors, "no policy selects this node".
    pub errors: Vec<String>,
    /// How long the scan took.
    pub duration: Duration,
}

/// Give every finding its id (when the engine left it empty), owning policy, firstSeen (kept
/// from `previous` for the same id) and lastSeen (`now`). Findings not in `current` are gone.
pub fn merge_findings(
    previous: &[Finding],
    current: impl IntoIterator<Item = Finding>,
    effective: Option<&Effective>,
    now: &Time,
) -> Vec<Finding> {
    let first_seen: BTreeMap<&str, &Time> = previous
        .iter()
        .filter_map(|f| Some((f.id.as_str(), f.first_seen.as_ref()?)))
        .collect();
    let mut seen = HashSet::new();
    current
        .into_iter()
        .filter_map(|mut f| {
            if f.id.is_empty() {
                f.id = finding_id(f.check, &f.target);
            }
            if !seen.insert(f.id.clone()) {
                return None;
            }
            f.policy = effective.and_then(|e| e.owner(f.check)).map(str::to_string);
            f.first_seen = Some(
                first_seen
                    .get(f.id.as_str())
                    .map_or(now.clone(), |t| (*t).clone()),
            );
            f.last_seen = Some(now.clone());
            Some(f)
        })
        .collect()
}

/// Merge the results already recorded with new ones, bounded to `MAX_REPORT_RESULTS`. When
/// results must go, those answering orders no longer in the spec go first (oldest first), so
/// that the answer to every order still in the spec survives and no order runs twice.
pub fn merge_results(
    recorded: &[RemediationResult],
    new: &[RemediationResult],
    orders: &[RemediationOrder],
) -> Vec<RemediationResult> {
    let mut all: Vec<RemediationResult> = recorded.to_vec();
    for r in new {
        all.retain(|x| x.id != r.id);
        all.push(r.clone());
    }
    if all.len() > MAX_REPORT_RESULTS {
        let live: HashSet<&str> = orders.iter().map(|o| o.id.as_str()).collect();
        let mut excess = all.len() - MAX_REPORT_RESULTS;
        let mut keep = Vec::with_capacity(all.len());
        for r in all {
            if excess > 0 && !live.contains(r.id.as_str()) {
                excess -= 1;
            } else {
                keep.push(r);
            }
        }
        all = keep;
        let mut dropped = 0;
        truncate_oldest(&mut all, &mut dropped, MAX_REPORT_RESULTS);
    }
    all
}

/// The orders in `orders` without an answer in `results`.
pub fn pending_orders(orders: &[RemediationOrder], results: &[RemediationResult]) -> u32 {
    let answered: HashSet<&str> = results.iter().map(|r| r.id.as_str()).collect();
    let n = orders
        .iter()
        .filter(|o| !answered.contains(o.id.as_str()))
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Build the whole status.
pub fn build_status(
    previous_findings: &[Finding],
    scan: ScanFacts,
    effective: Option<&Effective>,
    results: Vec<RemediationResult>,
    orders: &[RemediationOrder],
    now: &Time,
) -> NodeNetworkReportStatus {
    // Only the findings the report keeps are built (the engine's ids are unique).
    let observed = scan.findings.len();
    let kept = scan
        .findings
        .iter()
        .take(MAX_REPORT_FINDINGS)
        .map(Cow::into_owned);
    let findings = merge_findings(previous_findings, kept, effective, now);
    let findings_truncated = u64::try_from(observed.saturating_sub(findings.len())).unwrap_or(0);
    let mut errors = scan.errors;
    errors.dedup();
    keep_first(&mut errors, MAX_REPORT_ERRORS);
    let open = findings.len() as u64 + findings_truncated;
    NodeNetworkReportStatus {
        agent_version: Some(AGENT_VERSION.to_string()),
        iptables_backend: scan.iptables_backend,
        last_scan_time: Some(now.clone()),
        last_scan_duration_ms: Some(u64::try_from(scan.duration.as_millis()).unwrap_or(u64::MAX)),
        open_findings: u32::try_from(open).unwrap_or(u32::MAX),
        pending_orders: pending_orders(orders, &results),
        findings,
        findings_truncated,
        results,
        errors,
    }
}

/// The status with its volatile fields blanked: two statuses with equal material parts differ
/// only in when they were observed.
fn material(status: &NodeNetworkReportStatus) -> NodeNetworkReportStatus {
    let mut s = status.clone();
    s.last_scan_time = None;
    s.last_scan_duration_ms = None;
    for f in &mut s.findings {
        f.last_seen = None;
    }
    s
}

/// Whether `new` differs from `written` in anything but the volatile fields.
pub fn materially_changed(
    written: &NodeNetworkReportStatus,
    new: &NodeNetworkReportStatus,
) -> bool {
    material(written) != material(new)
}

/// Why a status is (or is not) written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteDecision {
    /// Nothing was ever written by this process.
    FirstWrite,
    /// Something the operator cares about changed.
    Changed,
    /// A finding that a written result fixed is seen again after the fix: the operator waits
    /// for that observation before it decides again (or declares the finding flapping).
    Reobserved,
    /// Only volatile fields changed, and the last write is older than the refresh interval.
    Heartbeat,
    /// Nothing worth a write.
    Skip,
}

impl WriteDecision {
    /// True unless `Skip`.
    pub fn writes(self) -> bool {
        self != WriteDecision::Skip
    }
}

/// True when a finding that `written` shows as fixed (a result for its target, not a dry run,
/// at or after the finding's written `lastSeen`) is in `new` with a `lastSeen` after the fix.
/// Without that write the operator would wait for the next heartbeat to learn that the fix did
/// not hold.
fn reobserved_after_fix(written: &NodeNetworkReportStatus, new: &NodeNetworkReportStatus) -> bool {
    new.findings.iter().any(|finding| {
        let Some(seen_now) = finding.last_seen.as_ref() else {
            return false;
        };
        let seen_before = written
            .findings
            .iter()
            .find(|w| w.id == finding.id)
            .and_then(|w| w.last_seen.as_ref());
        written.results.iter().any(|result| {
            !result.dry_run
                && result.target == finding.target
                && seen_before.is_none_or(|before| result.time.0 >= before.0)
                && seen_now.0 > result.time.0
        })
    })
}

/// Decide whether to write `new`, given what was last written and how long ago.
pub fn decide_write(
    written: Option<&NodeNetworkReportStatus>,
    since_last_write: Option<Duration>,
    new: &NodeNetworkReportStatus,
    refresh: Duration,
) -> WriteDecision {
    match (written, since_last_write) {
        (Some(w), Some(age)) => {
            if materially_changed(w, new) {
                WriteDecision::Changed
            } else if reobserved_after_fix(w, new) {
                WriteDecision::Reobserved
            } else if age >= refresh {
                WriteDecision::Heartbeat
            } else {
                WriteDecision::Skip
            }
        }
        _ => WriteDecision::FirstWrite,
    }
}

/// The JSON merge patch that replaces the whole status: every status field is present (absent
/// ones as `null`, so a merge patch removes what a previous write set).
pub fn status_patch_body(status: &NodeNetworkReportStatus) -> serde_json::Value {
    const FIELDS: [&str; 10] = [
        "agentVersion",
        "iptablesBackend",
        "lastScanTime",
        "lastScanDurationMs",
        "openFindings",
        "pendingOrders",
        "findings",
        "findingsTruncated",
        "results",
        "errors",
    ];
    let mut value = serde_json::to_value(status).unwrap_or_else(|_| serde_json::json!({}));
    if let Some(map) = value.as_object_mut() {
        for field in FIELDS {
            map.entry(field).or_insert(serde_json::Value::Null);
        }
    }
    serde_json::json!({ "status": value })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::policy_select::{NamedPolicy, select};
    use netheal_crds::{Action, Check, NetworkHealthPolicySpec, Outcome};

    fn t(s: i64) -> Time {
        Time(jiff::Timestamp::from_second(1_800_000_000 + s).unwrap())
    }

    fn finding(check: Check, target: &str) -> Finding {
        Finding {
            id: finding_id(check, target),
            check,
            target: target.into(),
            observed: "2".into(),
            desired: "0".into(),
            action: check.remedy(),
            details: Default::default(),
            policy: None,
            message: None,
            first_seen: None,
            last_seen: None,
        }
    }

    fn result(id: &str) -> RemediationResult {
        RemediationResult {
            id: id.into(),
            action: Action::SetSysctl,
            target: "net.ipv4.ip_forward".into(),
            outcome: Outcome::Applied,
            before: "0".into(),
            after: "1".into(),
            dry_run: false,
            time: t(0),
            message: None,
        }
    }

    fn order(id: &str) -> RemediationOrder {
        RemediationOrder {
            id: id.into(),
            action: Action::SetSysctl,
            finding_id: "f".into(),
            check: Check::IpForward,
            target: "net.ipv4.ip_forward".into(),
            parameters: Default::default(),
            policy: "p".into(),
            dry_run: false,
            approved_at: t(0),
        }
    }

    fn effective() -> Effective {
        let p = NamedPolicy {
            name: "default".into(),
            spec: NetworkHealthPolicySpec::default(),
        };
        select(&[p], &Default::default()).effective.unwrap()
    }

    #[test]
    fn first_seen_is_kept_across_scans_and_last_seen_moves() {
        let eff = effective();
        let first = merge_findings(
            &[],
            vec![finding(Check::IpForward, "net.ipv4.ip_forward")],
            Some(&eff),
            &t(0),
        );
        assert_eq!(first[0].first_seen, Some(t(0)));
        assert_eq!(first[0].policy.as_deref(), Some("default"));
        let second = merge_findings(
            &first,
            vec![finding(Check::IpForward, "net.ipv4.ip_forward")],
            Some(&eff),
            &t(10),
        );
        assert_eq!(second[0].first_seen, Some(t(0)));
        assert_eq!(second[0].last_seen, Some(t(10)));
    }

    #[test]
    fn a_finding_no_longer_observed_is_cleared_and_returns_with_a_new_first_seen() {
        let eff = effective();
        let a = finding(Check::IpForward, "net.ipv4.ip_forward");
        let b = finding(Check::ArpIgnore, "net.ipv4.conf.all.arp_ignore");
        let first = merge_findings(&[], vec![a.clone(), b.clone()], Some(&eff), &t(0));
        let second = merge_findings(&first, vec![b.clone()], Some(&eff), &t(5));
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].check, Check::ArpIgnore);
        let third = merge_findings(&second, vec![a, b], Some(&eff), &t(9));
        assert_eq!(third[0].first_seen, Some(t(9)));
        assert_eq!(third[1].first_seen, Some(t(0)));
    }

    #[test]
    fn missing_ids_are_computed_and_duplicates_dropped() {
        let mut f = finding(Check::RejectRule, "filter INPUT -j REJECT");
        f.id.clear();
        let out = merge_findings(&[], vec![f.clone(), f], None, &t(0));
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].id,
            finding_id(Check::RejectRule, "filter INPUT -j REJECT")
        );
        assert_eq!(out[0].policy, None);
    }

    #[test]
    fn findings_are_bounded_and_the_rest_counted() {
        let many: Vec<Finding> = (0..MAX_REPORT_FINDINGS + 7)
            .map(|i| {
                finding(
                    Check::StaleNeighbour,
                    &format!("neigh 10.0.{}.{} dev cali1", i / 250, i % 250),
                )
            })
            .collect();
        let facts = ScanFacts {
            findings: many.into(),
            ..Default::default()
        };
        let s = build_status(&[], facts, Some(&effective()), vec![], &[], &t(0));
        assert_eq!(s.findings.len(), MAX_REPORT_FINDINGS);
        assert_eq!(s.findings_truncated, 7);
        assert_eq!(s.open_findings as usize, MAX_REPORT_FINDINGS + 7);
        assert_eq!(s.agent_version.as_deref(), Some(AGENT_VERSION));
    }

    #[test]
    fn results_are_bounded_keeping_answers_to_live_orders() {
        let recorded: Vec<_> = (0..MAX_REPORT_RESULTS)
            .map(|i| result(&format!("o{i}")))
            .collect();
        // o0 is the oldest result but its order is still in the spec: it must survive.
        let orders = [order("o0"), order("new")];
        let merged = merge_results(&recorded, &[result("new")], &orders);
        assert_eq!(merged.len(), MAX_REPORT_RESULTS);
        assert!(merged.iter().any(|r| r.id == "o0"));
        assert!(!merged.iter().any(|r| r.id == "o1"));
        assert_eq!(merged.last().unwrap().id, "new");
        // Without live orders, the oldest goes.
        let merged = merge_results(&recorded, &[result("new")], &[]);
        assert!(!merged.iter().any(|r| r.id == "o0"));
        assert_eq!(merged.len(), MAX_REPORT_RESULTS);
    }

    #[test]
    fn pending_orders_counts_unanswered_ones() {
        assert_eq!(pending_orders(&[order("a"), order("b")], &[result("a")]), 1);
        assert_eq!(pending_orders(&[], &[result("a")]), 0);
    }

    #[test]
    fn a_finding_seen_again_after_its_fix_is_written_once() {
        let eff = effective();
        // The status of a scan at `at` that still sees the finding, after `previous`, with
        // the answer `answer` recorded.
        let scan = |previous: &[Finding], answer: &RemediationResult, at: i64| {
            let facts = ScanFacts {
                findings: vec![finding(Check::IpForward, "net.ipv4.ip_forward")].into(),
                ..Default::default()
            };
            build_status(
                previous,
                facts,
                Some(&eff),
                vec![answer.clone()],
                &[],
                &t(at),
            )
        };
        // Whether `new` is written 5 s after `written`.
        let decide = |written: &NodeNetworkReportStatus, new: &NodeNetworkReportStatus| {
            decide_write(
                Some(written),
                Some(Duration::from_secs(5)),
                new,
                Duration::from_secs(300),
            )
        };
        // Written at t=10: the finding (seen at 10) and the answer to its fix, applied at 10.
        let mut fixed = result("o1");
        fixed.time = t(10);
        let written = scan(&[], &fixed, 10);
        // Something undid the fix: the scan at t=15 sees the finding again.
        let again = scan(&written.findings, &fixed, 15);
        assert!(!materially_changed(&written, &again));
        assert_eq!(decide(&written, &again), WriteDecision::Reobserved);
        // Once that is written, later scans are heartbeats again.
        let later = scan(&again.findings, &fixed, 20);
        assert_eq!(decide(&again, &later), WriteDecision::Skip);
        // A dry run changed nothing: no such write.
        let mut dry = fixed;
        dry.dry_run = true;
        let written = scan(&[], &dry, 10);
        let again = scan(&written.findings, &dry, 15);
        assert_eq!(decide(&written, &again), WriteDecision::Skip);
    }

    #[test]
    fn only_volatile_changes_are_not_written_until_the_refresh_interval() {
        let eff = effective();
        let facts = |d| ScanFacts {
            findings: vec![finding(Check::IpForward, "net.ipv4.ip_forward")].into(),
            iptables_backend: Some("nft".into()),
            errors: vec![],
            duration: Duration::from_millis(d),
        };
        let refresh = Duration::from_secs(300);
        let a = build_status(&[], facts(3), Some(&eff), vec![], &[], &t(0));
        assert_eq!(
            decide_write(None, None, &a, refresh),
            WriteDecision::FirstWrite
        );
        let b = build_status(&a.findings, facts(9), Some(&eff), vec![], &[], &t(5));
        assert_ne!(a, b, "volatile fields moved");
        assert_eq!(
            decide_write(Some(&a), Some(Duration::from_secs(5)), &b, refresh),
            WriteDecision::Skip
        );
        assert_eq!(
            decide_write(Some(&a), Some(refresh), &b, refresh),
            WriteDecision::Heartbeat
        );
        // A cleared finding is a change.
        let healthy = ScanFacts {
            findings: Findings::default(),
            ..facts(1)
        };
        let c = build_status(&b.findings, healthy, Some(&eff), vec![], &[], &t(6));
        assert_eq!(
            decide_write(Some(&a), Some(Duration::from_secs(6)), &c, refresh),
            WriteDecision::Changed
        );
        // A new result is a change.
        let d = build_status(
            &a.findings,
            facts(3),
            Some(&eff),
            vec![result("x")],
            &[order("x")],
            &t(7),
        );
        assert!(materially_changed(&a, &d));
        assert_eq!(d.pending_orders, 0);
    }

    #[test]
    fn the_patch_body_names_every_field_so_a_merge_patch_clears_what_is_gone() {
        let s = build_status(&[], ScanFacts::default(), None, vec![], &[], &t(0));
        let body = status_patch_body(&s);
        let status = &body["status"];
        assert_eq!(status["agentVersion"], AGENT_VERSION);
        assert!(status["iptablesBackend"].is_null());
        assert!(status["findings"].is_null());
        assert!(status.as_object().unwrap().contains_key("findings"));
        assert_eq!(status["openFindings"], 0);
        assert_eq!(status["lastScanTime"], "2027-01-15T08:00:00Z");
    }
}
