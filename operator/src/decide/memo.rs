//! What one pass keeps for the next, so that a change on one node costs that node's decisions,
//! not the cluster's. Kept per node: its findings' dispositions, as long as nothing outside
//! the node entered them, that is while
//! - the node is quiet: no order out, no answer or action in the ledger, not in flight (so no
//!   cooldown, flapping window or "fixed, waiting for the next scan" depends on the time);
//! - every finding was decided by the node's own gates (report-only, paused, not approved,
//!   DryRun), never by a cluster-wide one (the in-flight limit, one CNI restart at a time) nor
//!   approved;
//! - no duplicate pod IP is on the node (decided after every node, against the pod list);
//! - the policies are the same (any change of any policy decides every node again), the
//!   Node's labels and pause are the same, and its report is the same object (the store
//!   replaces a report's `Arc` on every change, and the memo holds the old one, so the
//!   pointer cannot be reused).
//!
//! The kept nodes are also counted: per policy, the sum of what they add to its counters
//! ([`Totals`]). A pass over the same nodes under the same policies (a *delta*) then visits only
//! the nodes whose kept decisions no longer hold, takes their part out of the sums, decides them
//! and adds back what is kept; the others cost a pointer comparison. Any other pass (a *walk*)
//! visits every node by name and counts from zero.
//!
//! The duplicate pod IPs are kept while the pod list is the same objects in the same order.
//! The memo is an optimisation only: [`super::decide`] with an empty memo decides everything,
//! and a decision with the memo equals the one without (tested, for deltas and walks).

use super::disposition::Why;
use super::duplicates::{self, DuplicateGroup};
use crate::model::{NodeInfo, SlimPod};
use netheal_crds::{Check, NetworkHealthPolicy, NodeNetworkReport};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The decisions a pass may reuse.
pub struct Memo {
    /// The policies the kept decisions were made under: name and spec, serialized.
    policies: Vec<(String, String)>,
    /// Per node, by its place in the pass's order (by name): the decisions kept for it.
    slots: Vec<Option<NodeMemo>>,
    /// Per place: where the report of the node there was in the last pass's list (a hint,
    /// checked by name).
    report_hints: Vec<Option<usize>>,
    /// How many slots hold decisions.
    kept: usize,
    /// Per policy (by its place in the sorted policies): what the kept nodes add up to.
    totals: Vec<Totals>,
    /// The slots and totals are the ones a whole pass left.
    complete: bool,
    /// The last pass was a delta.
    delta: bool,
    /// While a walk runs: the last pass's kept nodes in reverse order (the walk visits the
    /// nodes by name and takes from the end).
    previous: Vec<NodeMemo>,
    /// The order of the last pass's nodes by name (indices into its node list), and their
    /// versions in that list.
    order: Vec<usize>,
    versions: Vec<u64>,
    /// The pod list the duplicate groups were found in.
    pods: Vec<Arc<SlimPod>>,
    groups: Arc<[DuplicateGroup]>,
}

/// One node's kept decisions.
pub(super) struct NodeMemo {
    /// The Node they were decided for.
    pub(super) node: NodeInfo,
    /// The report they were decided from.
    pub(super) report: Arc<NodeNetworkReport>,
    /// Where it was in the pass's list of reports.
    pub(super) report_at: usize,
    /// Whether that report has a status (the node's agent reports).
    pub(super) reporting: bool,
    /// The policies selecting the node (indices into the sorted policies), evaluated without
    /// a selector error.
    pub(super) sel: Vec<usize>,
    /// The decisions.
    pub(super) decided: NodeDecisions,
}

impl NodeMemo {
    /// Whether these decisions still hold for `node` with `report` (the caller knows whether
    /// the node is quiet).
    pub(super) fn holds_for(
        &self,
        node: &NodeInfo,
        report: Option<&Arc<NodeNetworkReport>>,
    ) -> bool {
        report.is_some_and(|r| Arc::ptr_eq(r, &self.report)) && self.node.same_as(node)
    }
}

/// What a delta learns from the kept decisions before it decides anything.
pub(super) struct Unchanged {
    /// The places (in the pass's order) whose kept decisions may no longer hold: nothing
    /// kept, another Node, or another object where its report was.
    pub(super) changed: Vec<usize>,
    /// Per report (by its place in the list): whether it is the very object a kept node was
    /// decided from. Such a report carries no order: a node whose report carries one is never
    /// quiet (the order is open, in the ledger, or recorded in the same pass).
    pub(super) kept_reports: Vec<bool>,
}

/// What the kept nodes add to one policy's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Totals {
    /// Kept nodes the policy selects.
    pub(super) selected: u32,
    /// Of those, with a report status.
    pub(super) reporting: u32,
    /// Of those, without a finding the policy owns.
    pub(super) healthy: u32,
    /// Findings the policy owns on them, per check (a check may be at 0).
    pub(super) by_check: BTreeMap<Check, u32>,
}

/// Add (or take out) what one kept node adds to its policies' counters.
fn tally(totals: &mut [Totals], kept: &NodeMemo, add: bool) {
    let step = |n: &mut u32, by: u32| {
        *n = if add {
            n.wrapping_add(by)
        } else {
            n.wrapping_sub(by)
        }
    };
    for &i in &kept.sel {
        let Some(t) = totals.get_mut(i) else { continue };
        step(&mut t.selected, 1);
        if kept.reporting {
            step(&mut t.reporting, 1);
            if !kept.decided.counts.iter().any(|(owner, _)| *owner == i) {
                step(&mut t.healthy, 1);
            }
        }
    }
    for (owner, by_check) in &kept.decided.counts {
        let Some(t) = totals.get_mut(*owner) else {
            continue;
        };
        for &(check, n) in by_check {
            step(t.by_check.entry(check).or_default(), n);
        }
    }
}

/// A node's decided findings, in the order decided.
#[derive(Default)]
pub(super) struct NodeDecisions {
    /// `(owner, index of the finding in the report, disposition)`.
    pub(super) items: Vec<(usize, usize, Why)>,
    /// Per owner: the open findings per check.
    pub(super) counts: Vec<(usize, Vec<(Check, u32)>)>,
}

impl NodeDecisions {
    /// Add the disposition of finding `index` (of `check`), owned by policy `owner`.
    pub(super) fn push(&mut self, owner: usize, check: Check, index: usize, why: Why) {
        self.items.push((owner, index, why));
        let at = match self.counts.iter().position(|(o, _)| *o == owner) {
            Some(at) => at,
            None => {
                self.counts.push((owner, Vec::new()));
                self.counts.len() - 1
            }
        };
        let by_check = &mut self.counts[at].1;
        match by_check.iter_mut().find(|(c, _)| *c == check) {
            Some((_, n)) => *n += 1,
            None => by_check.push((check, 1)),
        }
    }
}

impl Default for Memo {
    fn default() -> Self {
        Self {
            policies: Vec::new(),
            slots: Vec::new(),
            report_hints: Vec::new(),
            kept: 0,
            totals: Vec::new(),
            complete: false,
            delta: false,
            previous: Vec::new(),
            order: Vec::new(),
            versions: Vec::new(),
            pods: Vec::new(),
            groups: Arc::new([]),
        }
    }
}

impl Memo {
    /// Start a pass under the policies `sorted` over `nodes` nodes. True when it may be a
    /// delta (`wanted`, the same policies and as many nodes as the last whole pass); else a
    /// walk starts, which may reuse the last pass's nodes by name while the policies are the
    /// same.
    pub(super) fn begin(
        &mut self,
        sorted: &[Arc<NetworkHealthPolicy>],
        nodes: usize,
        wanted: bool,
    ) -> bool {
        let key: Vec<(String, String)> = sorted
            .iter()
            .map(|p| {
                (
                    super::ownership::name(p).to_string(),
                    serde_json::to_string(&(&p.spec, p.metadata.deletion_timestamp.is_some()))
                        .unwrap_or_default(),
                )
            })
            .collect();
        let same_policies = key == self.policies;
        self.delta = wanted
            && same_policies
            && self.complete
            && self.slots.len() == nodes
            && self.totals.len() == sorted.len();
        self.complete = false;
        if self.delta {
            return true;
        }
        self.previous = if same_policies {
            self.slots.drain(..).flatten().rev().collect()
        } else {
            Vec::new()
        };
        self.policies = key;
        self.slots.clear();
        self.slots.resize_with(nodes, || None);
        self.report_hints.resize(nodes, None);
        self.kept = 0;
        self.totals = vec![Totals::default(); sorted.len()];
        false
    }

    /// In a delta: which kept decisions may no longer hold (see [`Unchanged`]).
    pub(super) fn look(
        &self,
        nodes: &[&NodeInfo],
        reports: &[Arc<NodeNetworkReport>],
    ) -> Unchanged {
        let mut look = Unchanged {
            changed: Vec::new(),
            kept_reports: vec![false; reports.len()],
        };
        for (at, (slot, node)) in self.slots.iter().zip(nodes).enumerate() {
            let holds = slot.as_ref().is_some_and(|kept| {
                kept.node.same_as(node)
                    && reports
                        .get(kept.report_at)
                        .is_some_and(|r| Arc::ptr_eq(r, &kept.report))
            });
            match slot {
                Some(kept) if holds => look.kept_reports[kept.report_at] = true,
                _ => look.changed.push(at),
            }
        }
        look
    }

    /// Where the report of `node`, at `at` in the pass's order, is in `reports`, when it is
    /// where it was in the last pass (the store lists its objects in the same places while
    /// none is added or removed, and replaces a changed one in place).
    pub(super) fn report_at(
        &self,
        at: usize,
        node: &str,
        reports: &[Arc<NodeNetworkReport>],
    ) -> Option<usize> {
        let i = (*self.report_hints.get(at)?)?;
        (reports.get(i)?.metadata.name.as_deref() == Some(node)).then_some(i)
    }

    /// Remember where the report of the node at `at` is.
    pub(super) fn hint_report(&mut self, at: usize, report_at: Option<usize>) {
        if let Some(hint) = self.report_hints.get_mut(at) {
            *hint = report_at;
        }
    }

    /// In a delta: take the decisions kept at `at` out of the counts (to decide it again).
    pub(super) fn untally(&mut self, at: usize) -> Option<NodeMemo> {
        let kept = self.slots.get_mut(at)?.take()?;
        self.kept -= 1;
        tally(&mut self.totals, &kept, false);
        Some(kept)
    }

    /// In a walk: the last pass's decisions of the node named `node`. The walk asks for its
    /// nodes by name, in order.
    pub(super) fn take_previous(&mut self, node: &str) -> Option<NodeMemo> {
        while self
            .previous
            .last()
            .is_some_and(|kept| kept.node.name.as_str() < node)
        {
            self.previous.pop();
        }
        if self.previous.last()?.node.name != node {
            return None;
        }
        self.previous.pop()
    }

    /// Keep this pass's decisions of a quiet node at `at` for the next pass, and count them.
    pub(super) fn keep(&mut self, at: usize, kept: NodeMemo) {
        let Some(slot) = self.slots.get_mut(at) else {
            return;
        };
        if let Some(old) = slot.replace(kept) {
            tally(&mut self.totals, &old, false);
        } else {
            self.kept += 1;
        }
        if let Some(kept) = slot.as_ref() {
            tally(&mut self.totals, kept, true);
        }
    }

    /// End the pass: what was not reused is dropped.
    pub(super) fn end(&mut self) {
        self.previous.clear();
        self.complete = true;
    }

    /// The decisions kept at `at`.
    pub(super) fn slot(&self, at: usize) -> Option<&NodeMemo> {
        self.slots.get(at).and_then(Option::as_ref)
    }

    /// Per policy: what the kept nodes add up to.
    pub(super) fn totals(&self) -> &[Totals] {
        &self.totals
    }

    /// Whether the last pass was a delta.
    pub fn last_was_delta(&self) -> bool {
        self.delta
    }

    /// The duplicate pod IPs among `pods`: the kept groups when the list is the same objects.
    pub(super) fn duplicates(&mut self, pods: &[Arc<SlimPod>]) -> Arc<[DuplicateGroup]> {
        let same = self.pods.len() == pods.len()
            && self.pods.iter().zip(pods).all(|(a, b)| Arc::ptr_eq(a, b));
        if !same {
            self.groups = duplicates::detect(pods).into();
            self.pods = pods.to_vec();
        }
        Arc::clone(&self.groups)
    }

    /// `nodes` by name. The last pass's order is kept when it still sorts them (the store
    /// lists them in the same order while none is added or removed): one comparison per node
    /// instead of a sort. Strictly increasing names over as many indices as nodes can only be
    /// the sorted order.
    pub(super) fn sorted_nodes<'a>(&mut self, nodes: &'a [NodeInfo]) -> Vec<&'a NodeInfo> {
        // The same infos in the same places (by version, no name read) are still sorted.
        let same_infos = self.versions.len() == nodes.len()
            && nodes
                .iter()
                .zip(&self.versions)
                .all(|(n, &v)| v != 0 && n.version == v);
        let still_sorted = same_infos
            || (self.order.len() == nodes.len()
                && self.order.iter().all(|&i| i < nodes.len())
                && self
                    .order
                    .windows(2)
                    .all(|w| nodes[w[0]].name < nodes[w[1]].name));
        if !still_sorted {
            self.order = (0..nodes.len()).collect();
            self.order
                .sort_by(|&a, &b| nodes[a].name.cmp(&nodes[b].name));
        }
        self.versions.clear();
        self.versions.extend(nodes.iter().map(|n| n.version));
        self.order.iter().map(|&i| &nodes[i]).collect()
    }

    /// How many nodes' decisions are kept.
    pub fn kept_nodes(&self) -> usize {
        self.kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::testkit::node;

    fn names(nodes: &[&NodeInfo]) -> Vec<String> {
        nodes.iter().map(|n| n.name.clone()).collect()
    }

    #[test]
    fn the_node_order_is_kept_only_while_it_still_sorts_the_nodes() {
        let mut memo = Memo::default();
        let first = vec![node("b"), node("c"), node("a")];
        assert_eq!(names(&memo.sorted_nodes(&first)), ["a", "b", "c"]);
        assert_eq!(memo.order, [2, 0, 1]);
        // The same list: the kept order.
        assert_eq!(names(&memo.sorted_nodes(&first)), ["a", "b", "c"]);
        // As many nodes, other names: sorted again.
        let renamed = vec![node("b"), node("c"), node("0")];
        assert_eq!(names(&memo.sorted_nodes(&renamed)), ["0", "b", "c"]);
        let shuffled = vec![node("c"), node("0"), node("b")];
        assert_eq!(names(&memo.sorted_nodes(&shuffled)), ["0", "b", "c"]);
        // One more node, one less.
        let more = vec![node("c"), node("0"), node("b"), node("a")];
        assert_eq!(names(&memo.sorted_nodes(&more)), ["0", "a", "b", "c"]);
        assert_eq!(names(&memo.sorted_nodes(&first[..2])), ["b", "c"]);
        assert!(memo.sorted_nodes(&[]).is_empty());
        // Infos read by NodeInfos: the same versions in the same places keep the order without
        // reading a name; a new reading at one place is checked by name again.
        let versioned = |names: &[(&str, u64)]| -> Vec<NodeInfo> {
            names
                .iter()
                .map(|&(n, version)| NodeInfo { version, ..node(n) })
                .collect()
        };
        let read = versioned(&[("b", 1), ("c", 2), ("a", 3)]);
        assert_eq!(names(&memo.sorted_nodes(&read)), ["a", "b", "c"]);
        assert_eq!(names(&memo.sorted_nodes(&read)), ["a", "b", "c"]);
        let reread = versioned(&[("d", 4), ("c", 2), ("a", 3)]);
        assert_eq!(names(&memo.sorted_nodes(&reread)), ["a", "c", "d"]);
    }
}
