//! The record of past actions the safety limits are computed from: what was done, where and
//! when, and which orders are out and not yet answered. It lives in memory and is rebuilt at
//! start from the reports' `spec.history` (bounded per node and finding, durable: what the
//! cooldowns and flap limits need), the policies' `status.actions` (the newest records) and the
//! reports' `spec.remediations`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use netheal_crds::report::{MAX_HISTORY_ACTIONS, MAX_HISTORY_FINDINGS};
use netheal_crds::{
    Action, ActionRecord, Check, FindingHistory, NetworkHealthPolicy, NodeNetworkReport, Outcome,
    PastAction, RemediationOrder, finding_id,
};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Records older than this are forgotten (the longest flap window the schema allows is a week).
pub const RETENTION: SignedDuration = SignedDuration::from_hours(24 * 8);

/// How long a withdrawn order is remembered, so that an answer node-fixer wrote before it saw
/// the withdrawal (it had already applied the order) is still recorded.
pub const LATE_ANSWER_WINDOW: SignedDuration = SignedDuration::from_mins(10);

/// One action taken (or attempted) on a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The action id (the order id for node-local actions).
    pub id: String,
    /// The policy that approved it.
    pub policy: String,
    /// The node it concerns.
    pub node: String,
    /// What was done.
    pub action: Action,
    /// The finding it answered: `finding_id(check, target)`.
    pub finding_id: String,
    /// When.
    pub time: Timestamp,
    /// How it ended.
    pub outcome: Outcome,
    /// Nothing was written.
    pub dry_run: bool,
}

impl Entry {
    /// The ledger entry for an action record of `policy`.
    pub fn from_record(policy: &str, record: &ActionRecord) -> Self {
        let check = record
            .check
            .or_else(|| first_check_fixed_by(record.action))
            .unwrap_or(netheal_crds::Check::ArpIgnore);
        Self {
            id: record.id.clone(),
            policy: policy.to_string(),
            node: record.node.clone(),
            action: record.action,
            finding_id: finding_id(check, &record.target),
            time: record.time.0,
            outcome: record.outcome,
            dry_run: record.dry_run,
        }
    }

    /// True when the action changed something on the node.
    pub fn changed_something(&self) -> bool {
        self.outcome == Outcome::Applied && !self.dry_run
    }

    /// True when the action ran (successfully or not), which starts a cooldown.
    pub fn ran(&self) -> bool {
        !self.dry_run && matches!(self.outcome, Outcome::Applied | Outcome::Failed)
    }
}

fn first_check_fixed_by(action: Action) -> Option<Check> {
    Check::ALL.into_iter().find(|c| c.remedy() == Some(action))
}

/// Past actions and the orders still out.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    entries: Vec<Entry>,
    ids: HashSet<(String, String)>,
    by_node: HashMap<String, Vec<usize>>,
    pending: BTreeMap<String, Vec<RemediationOrder>>,
    /// Orders withdrawn within [`LATE_ANSWER_WINDOW`], with the time of the withdrawal.
    withdrawn: BTreeMap<String, Vec<(RemediationOrder, Timestamp)>>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuild from what the API holds: every policy's `status.actions`, every report's
    /// `spec.history` and its `spec.remediations` (orders out and not yet answered).
    pub fn rebuild<'a>(
        policies: impl IntoIterator<Item = &'a NetworkHealthPolicy>,
        reports: impl IntoIterator<Item = &'a NodeNetworkReport>,
    ) -> Self {
        let mut ledger = Self::new();
        for policy in policies {
            let name = policy.metadata.name.as_deref().unwrap_or_default();
            for record in policy.status.iter().flat_map(|s| s.actions.iter()) {
                ledger.push(Entry::from_record(name, record));
            }
        }
        for report in reports {
            let node = report.metadata.name.clone().unwrap_or_default();
            for history in &report.spec.history {
                for past in &history.actions {
                    // An id already recorded from a status is the same action.
                    ledger.push(Entry {
                        id: past.id.clone(),
                        policy: history.policy.clone(),
                        node: node.clone(),
                        action: history.action,
                        finding_id: history.finding_id.clone(),
                        time: past.time.0,
                        outcome: past.outcome,
                        dry_run: false,
                    });
                }
            }
            let out = report.spec.remediations.clone();
            if !out.is_empty() {
                ledger.pending.insert(node, out);
            }
        }
        ledger
    }

    /// Add one entry (ignored when `(node, id)` is already recorded, except for the late
    /// answer to a withdrawn order: a `Skipped` entry may be followed by one that is not).
    pub fn push(&mut self, entry: Entry) {
        if !self.ids.insert((entry.node.clone(), entry.id.clone()))
            && (entry.outcome == Outcome::Skipped || self.answered(&entry.node, &entry.id))
        {
            return;
        }
        self.by_node
            .entry(entry.node.clone())
            .or_default()
            .push(self.entries.len());
        self.entries.push(entry);
    }

    /// True when the action `(node, id)` is recorded.
    pub fn has(&self, node: &str, id: &str) -> bool {
        self.ids.contains(&(node.to_string(), id.to_string()))
    }

    /// True when `(node, id)` has an entry other than a withdrawal (`Skipped`).
    pub fn answered(&self, node: &str, id: &str) -> bool {
        self.for_node(node)
            .any(|e| e.id == id && e.outcome != Outcome::Skipped)
    }

    /// The orders withdrawn on `node` within [`LATE_ANSWER_WINDOW`].
    pub fn withdrawn(&self, node: &str) -> impl Iterator<Item = &RemediationOrder> {
        self.withdrawn
            .get(node)
            .into_iter()
            .flatten()
            .map(|(order, _)| order)
    }

    /// Every node with orders withdrawn within [`LATE_ANSWER_WINDOW`].
    pub fn withdrawn_nodes(&self) -> impl Iterator<Item = &str> {
        self.withdrawn.keys().map(String::as_str)
    }

    /// The entries about `node`, oldest first.
    pub fn for_node(&self, node: &str) -> impl Iterator<Item = &Entry> {
        self.by_node
            .get(node)
            .into_iter()
            .flatten()
            .filter_map(|&i| self.entries.get(i))
    }

    /// Every node with an entry.
    pub fn nodes(&self) -> impl Iterator<Item = &str> {
        self.by_node.keys().map(String::as_str)
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The orders out on `node`.
    pub fn pending(&self, node: &str) -> &[RemediationOrder] {
        self.pending
            .get(node)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Every node with orders out.
    pub fn pending_nodes(&self) -> impl Iterator<Item = (&str, &[RemediationOrder])> {
        self.pending.iter().map(|(n, o)| (n.as_str(), o.as_slice()))
    }

    /// Replace the orders out on `node`.
    pub fn set_pending(&mut self, node: &str, orders: Vec<RemediationOrder>) {
        if orders.is_empty() {
            self.pending.remove(node);
        } else {
            self.pending.insert(node.to_string(), orders);
        }
    }

    /// The latest run of `action` on `node`.
    pub fn last_run(&self, node: &str, action: Action) -> Option<&Entry> {
        self.for_node(node)
            .filter(|e| e.action == action && e.ran())
            .max_by_key(|e| e.time)
    }

    /// The latest action that answered `finding` on `node`.
    pub fn last_for_finding(&self, node: &str, finding: &str) -> Option<&Entry> {
        self.for_node(node)
            .filter(|e| e.finding_id == finding && !e.dry_run && e.outcome != Outcome::Skipped)
            .max_by_key(|e| e.time)
    }

    /// How many times `finding` was fixed on `node` since `since`.
    pub fn fixes_since(&self, node: &str, finding: &str, since: Timestamp) -> usize {
        self.for_node(node)
            .filter(|e| e.finding_id == finding && e.changed_something() && e.time >= since)
            .count()
    }

    /// A ledger of `node`'s entries only (to compute its history with one more entry).
    pub fn clone_node(&self, node: &str) -> Self {
        let mut out = Self::new();
        for e in self.for_node(node) {
            out.push(e.clone());
        }
        out
    }

    /// What `node`'s report keeps in `spec.history`: per finding, the actions that ran or
    /// answered it (not dry runs, not withdrawals): every `Applied` one, the newest
    /// [`MAX_HISTORY_ACTIONS`] - 1, and the latest other one; the
    /// [`MAX_HISTORY_FINDINGS`] findings most recently acted on; oldest action first.
    pub fn history(&self, node: &str) -> Vec<FindingHistory> {
        let mut by_finding: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
        for e in self
            .for_node(node)
            .filter(|e| !e.dry_run && e.outcome != Outcome::Skipped)
        {
            by_finding.entry(e.finding_id.as_str()).or_default().push(e);
        }
        let mut out: Vec<(Timestamp, FindingHistory)> = by_finding
            .into_iter()
            .filter_map(|(finding, mut entries)| {
                entries.sort_by_key(|e| (e.time, e.id.clone()));
                let latest = *entries.last()?;
                let applied: Vec<&Entry> = entries
                    .iter()
                    .copied()
                    .filter(|e| e.outcome == Outcome::Applied)
                    .collect();
                let mut kept: Vec<&Entry> =
                    applied[applied.len().saturating_sub(MAX_HISTORY_ACTIONS - 1)..].to_vec();
                if let Some(other) = entries.iter().rev().find(|e| e.outcome != Outcome::Applied) {
                    kept.push(other);
                }
                kept.sort_by_key(|e| (e.time, e.id.clone()));
                Some((
                    latest.time,
                    FindingHistory {
                        finding_id: finding.to_string(),
                        action: latest.action,
                        policy: latest.policy.clone(),
                        actions: kept
                            .into_iter()
                            .map(|e| PastAction {
                                id: e.id.clone(),
                                // Whole seconds, as the API gives times back: what was written
                                // compares equal to what is read.
                                time: Time(
                                    Timestamp::from_second(e.time.as_second()).unwrap_or(e.time),
                                ),
                                outcome: e.outcome,
                            })
                            .collect(),
                    },
                ))
            })
            .collect();
        out.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then_with(|| a.1.finding_id.cmp(&b.1.finding_id))
        });
        out.truncate(MAX_HISTORY_FINDINGS);
        out.sort_by(|a, b| a.1.finding_id.cmp(&b.1.finding_id));
        out.into_iter().map(|(_, h)| h).collect()
    }

    /// Fold a decision in: its records become entries, its orders are the orders out, its
    /// withdrawals are remembered for late answers.
    pub fn apply(&mut self, decision: &crate::decide::Decision) {
        for recorded in &decision.recorded {
            self.push(Entry::from_record(&recorded.policy, &recorded.record));
            if recorded.record.outcome != Outcome::Skipped
                && let Some(list) = self.withdrawn.get_mut(&recorded.record.node)
            {
                list.retain(|(order, _)| order.id != recorded.record.id);
                if list.is_empty() {
                    self.withdrawn.remove(&recorded.record.node);
                }
            }
        }
        for (node, orders) in &decision.withdrawn {
            let list = self.withdrawn.entry(node.clone()).or_default();
            for order in orders {
                if !list.iter().any(|(o, _)| o.id == order.id) {
                    list.push((order.clone(), decision.time));
                }
            }
        }
        for (node, orders) in &decision.orders {
            self.set_pending(node, orders.clone());
        }
    }

    /// Forget entries older than [`RETENTION`] and withdrawals older than
    /// [`LATE_ANSWER_WINDOW`].
    pub fn prune(&mut self, now: Timestamp) {
        if let Ok(cutoff) = now.checked_sub(LATE_ANSWER_WINDOW) {
            self.withdrawn.retain(|_, list| {
                list.retain(|(_, at)| *at >= cutoff);
                !list.is_empty()
            });
        }
        let Ok(cutoff) = now.checked_sub(RETENTION) else {
            return;
        };
        if self.entries.iter().all(|e| e.time >= cutoff) {
            return;
        }
        let kept: Vec<Entry> = std::mem::take(&mut self.entries)
            .into_iter()
            .filter(|e| e.time >= cutoff)
            .collect();
        self.ids.clear();
        self.by_node.clear();
        for entry in kept {
            self.push(entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn entry(id: &str, node: &str, action: Action, secs: i64, outcome: Outcome) -> Entry {
        Entry {
            id: id.into(),
            policy: "p".into(),
            node: node.into(),
            action,
            finding_id: "f1".into(),
            time: Timestamp::from_second(secs).unwrap(),
            outcome,
            dry_run: false,
        }
    }

    #[test]
    fn a_withdrawal_may_be_followed_by_its_late_answer_once() {
        let mut ledger = Ledger::new();
        ledger.push(entry("a", "n1", Action::SetSysctl, 10, Outcome::Skipped));
        assert!(!ledger.answered("n1", "a"));
        ledger.push(entry("a", "n1", Action::SetSysctl, 11, Outcome::Skipped));
        assert_eq!(ledger.entries().len(), 1);
        ledger.push(entry("a", "n1", Action::SetSysctl, 12, Outcome::Applied));
        assert!(ledger.answered("n1", "a"));
        ledger.push(entry("a", "n1", Action::SetSysctl, 13, Outcome::Applied));
        assert_eq!(ledger.entries().len(), 2);
        assert_eq!(
            ledger.last_run("n1", Action::SetSysctl).unwrap().time,
            Timestamp::from_second(12).unwrap()
        );
    }

    fn order_y2() -> RemediationOrder {
        RemediationOrder {
            id: "y-2".into(),
            action: Action::SetSysctl,
            finding_id: "y".into(),
            check: Check::ArpIgnore,
            target: "t".into(),
            parameters: Default::default(),
            policy: "p".into(),
            dry_run: false,
            approved_at: Time(Timestamp::from_second(200).unwrap()),
        }
    }

    #[test]
    fn withdrawals_are_remembered_for_the_late_answer_window_only() {
        let order = order_y2();
        let withdrawn_at = Timestamp::from_second(1_000).unwrap();
        let mut ledger = Ledger::new();
        ledger.apply(&crate::decide::Decision {
            withdrawn: BTreeMap::from([("n1".to_string(), vec![order])]),
            time: withdrawn_at,
            ..Default::default()
        });
        assert_eq!(ledger.withdrawn("n1").count(), 1);
        ledger.prune(withdrawn_at.checked_add(LATE_ANSWER_WINDOW).unwrap());
        assert_eq!(
            ledger.withdrawn_nodes().count(),
            1,
            "still inside the window"
        );
        ledger.prune(
            withdrawn_at
                .checked_add(LATE_ANSWER_WINDOW + SignedDuration::from_secs(1))
                .unwrap(),
        );
        assert_eq!(ledger.withdrawn_nodes().count(), 0);
    }

    #[test]
    fn duplicates_are_ignored_and_queries_are_per_node() {
        let mut ledger = Ledger::new();
        ledger.push(entry("a", "n1", Action::SetSysctl, 10, Outcome::Applied));
        ledger.push(entry("a", "n1", Action::SetSysctl, 99, Outcome::Applied));
        ledger.push(entry("b", "n1", Action::SetSysctl, 20, Outcome::NoChange));
        ledger.push(entry("a", "n2", Action::SetSysctl, 30, Outcome::Failed));
        assert_eq!(ledger.entries().len(), 3);
        assert_eq!(
            ledger.last_run("n1", Action::SetSysctl).unwrap().time,
            Timestamp::from_second(10).unwrap()
        );
        assert!(ledger.last_run("n1", Action::DeleteNeighbour).is_none());
        assert_eq!(
            ledger.fixes_since("n1", "f1", Timestamp::from_second(0).unwrap()),
            1
        );
        assert_eq!(
            ledger.fixes_since("n2", "f1", Timestamp::from_second(0).unwrap()),
            0
        );
    }

    #[test]
    fn prune_forgets_old_entries() {
        let mut ledger = Ledger::new();
        ledger.push(entry("old", "n1", Action::SetSysctl, 0, Outcome::Applied));
        ledger.push(entry(
            "new",
            "n1",
            Action::SetSysctl,
            RETENTION.as_secs() + 10,
            Outcome::Applied,
        ));
        ledger.prune(Timestamp::from_second(RETENTION.as_secs() + 20).unwrap());
        assert!(!ledger.has("n1", "old"));
        assert!(ledger.has("n1", "new"));
        assert_eq!(ledger.for_node("n1").count(), 1);
    }

    #[test]
    fn a_history_survives_a_truncated_status_and_keeps_the_flap_count() {
        // Five fixes of f1 on n1 over a week, a NoChange, and a dry run; the status (the
        // truncated log) kept only the newest.
        let target = "net.ipv4.ip_forward";
        let f1 = finding_id(Check::IpForward, target);
        let on_f1 = |mut e: Entry| {
            e.finding_id = f1.clone();
            e
        };
        let mut ledger = Ledger::new();
        for (i, day) in [0, 1, 2, 3, 4].into_iter().enumerate() {
            ledger.push(on_f1(entry(
                &format!("fix-{i}"),
                "n1",
                Action::SetSysctl,
                day * 86_400,
                Outcome::Applied,
            )));
        }
        ledger.push(on_f1(entry(
            "same",
            "n1",
            Action::SetSysctl,
            5 * 86_400,
            Outcome::NoChange,
        )));
        let mut dry = on_f1(entry(
            "dry",
            "n1",
            Action::SetSysctl,
            6 * 86_400,
            Outcome::Applied,
        ));
        dry.dry_run = true;
        ledger.push(dry);
        let history = ledger.history("n1");
        assert_eq!(history.len(), 1);
        let ids: Vec<&str> = history[0].actions.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["fix-0", "fix-1", "fix-2", "fix-3", "fix-4", "same"]);

        let mut report = NodeNetworkReport::new("n1", Default::default());
        report.spec.history = history;
        let mut policy = NetworkHealthPolicy::new("p", Default::default());
        policy.status = Some(netheal_crds::NetworkHealthPolicyStatus {
            actions: vec![ActionRecord {
                id: "fix-4".into(),
                time: Time(Timestamp::from_second(4 * 86_400).unwrap()),
                node: "n1".into(),
                action: Action::SetSysctl,
                check: Some(Check::IpForward),
                target: target.into(),
                before: String::new(),
                after: String::new(),
                outcome: Outcome::Applied,
                dry_run: false,
                message: None,
            }],
            actions_truncated: 4,
            ..Default::default()
        });
        let rebuilt = Ledger::rebuild([&policy], [&report]);
        let since = Timestamp::from_second(0).unwrap();
        assert_eq!(
            rebuilt.fixes_since("n1", &f1, since),
            5,
            "every fix counted once, though the status kept one"
        );
        assert_eq!(
            rebuilt.last_for_finding("n1", &f1).map(|e| e.id.as_str()),
            Some("same")
        );
        assert_eq!(
            rebuilt
                .last_run("n1", Action::SetSysctl)
                .map(|e| e.id.as_str()),
            Some("fix-4")
        );
        assert_eq!(rebuilt.history("n1"), ledger.history("n1"), "stable");
    }

    #[test]
    fn a_history_is_bounded_per_finding_and_per_node() {
        let mut ledger = Ledger::new();
        for i in 0..40 {
            ledger.push(entry(
                &format!("a{i}"),
                "n1",
                Action::SetSysctl,
                i,
                Outcome::Applied,
            ));
        }
        ledger.push(entry("f", "n1", Action::SetSysctl, 50, Outcome::Failed));
        let h = ledger.history("n1");
        assert_eq!(h[0].actions.len(), MAX_HISTORY_ACTIONS);
        assert_eq!(h[0].actions[0].id, "a20", "the newest 20 fixes");
        assert_eq!(h[0].actions.last().map(|a| a.id.as_str()), Some("f"));
        for i in 0..100 {
            let mut e = entry(
                &format!("g{i}"),
                "n2",
                Action::SetSysctl,
                i,
                Outcome::Applied,
            );
            e.finding_id = format!("finding-{i:03}");
            ledger.push(e);
        }
        let h = ledger.history("n2");
        assert_eq!(h.len(), MAX_HISTORY_FINDINGS);
        assert_eq!(h[0].finding_id, "finding-036", "the most recently acted on");
    }

    #[test]
    fn rebuild_reads_status_actions_and_unanswered_orders() {
        let record = ActionRecord {
            id: "x-1".into(),
            time: Time(Timestamp::from_second(100).unwrap()),
            node: "n1".into(),
            action: Action::SetSysctl,
            check: Some(Check::IpForward),
            target: "net.ipv4.ip_forward".into(),
            before: "0".into(),
            after: "1".into(),
            outcome: Outcome::Applied,
            dry_run: false,
            message: None,
        };
        let mut policy = NetworkHealthPolicy::new("p", Default::default());
        policy.status = Some(netheal_crds::NetworkHealthPolicyStatus {
            actions: vec![record],
            ..Default::default()
        });
        let mut report = NodeNetworkReport::new("n1", Default::default());
        report.spec.remediations.push(order_y2());
        let ledger = Ledger::rebuild([&policy], [&report]);
        assert!(ledger.has("n1", "x-1"));
        assert_eq!(
            ledger.entries()[0].finding_id,
            finding_id(Check::IpForward, "net.ipv4.ip_forward")
        );
        assert_eq!(ledger.pending("n1").len(), 1);
        assert_eq!(ledger.pending("n2").len(), 0);
    }
}
