//! What one pass keeps for the next, so that a change on one node costs that node's decisions,
//! not the cluster's. Kept per node: its findings' dispositions, as long as nothing outside
//! the node entered them, that is while
//! - the node is quiet: no order out, no answer or action in the ledger, not in flight (so no
//!   cooldown, flapping window or "fixed, waiting for the next scan" depends on the time);
//! - every finding was decided by the node's own gates (report-only, paused, not approved,
//!   DryRun), never by a cluster-wide one (the in-flight limit, one CNI restart at a time) nor
//!   approved;
//! - the policies are the same (any change of any policy decides every node again), the
//!   Node's labels and pause are the same, and its report is the same object (the store
//!   replaces a report's `Arc` on every change, and the memo holds the old one, so the
//!   pointer cannot be reused).
//!
//! The duplicate pod IPs are kept while the pod list is the same objects in the same order.
//! The memo is an optimisation only: [`super::decide`] with an empty memo decides everything,
//! and a decision with the memo equals the one without (tested).

use super::disposition::Why;
use super::duplicates::{self, DuplicateGroup};
use crate::model::{NodeInfo, SlimPod};
use netheal_crds::{Check, NetworkHealthPolicy, NodeNetworkReport};
use std::sync::Arc;

/// The decisions a pass may reuse.
pub struct Memo {
    /// The policies the kept decisions were made under: name and spec, serialized.
    policies: Vec<(String, String)>,
    /// Per quiet node, kept by this pass, in the pass's order (by name).
    nodes: Vec<NodeMemo>,
    /// Per quiet node, kept by the last pass, in reverse order (while a pass runs: the pass
    /// walks the nodes by name and takes from the end).
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
            nodes: Vec::new(),
            previous: Vec::new(),
            order: Vec::new(),
            versions: Vec::new(),
            pods: Vec::new(),
            groups: Arc::new([]),
        }
    }
}

impl Memo {
    /// Start a pass under the policies `sorted`: the last pass's nodes become reusable,
    /// unless the policies differ from the ones they were decided under.
    pub(super) fn begin(&mut self, sorted: &[Arc<NetworkHealthPolicy>]) {
        let capacity = self.nodes.len();
        self.previous = std::mem::replace(&mut self.nodes, Vec::with_capacity(capacity));
        self.previous.reverse();
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
        if key != self.policies {
            self.previous.clear();
            self.policies = key;
        }
    }

    /// The last pass's decisions of `node`, when they may be reused for `report`. The pass
    /// asks for its nodes by name, in order.
    pub(super) fn take(
        &mut self,
        node: &NodeInfo,
        report: Option<&Arc<NodeNetworkReport>>,
    ) -> Option<NodeMemo> {
        self.skip_to(node);
        if self.previous.last()?.node.name != node.name {
            return None;
        }
        let kept = self.previous.pop()?;
        let same_report = report.is_some_and(|r| Arc::ptr_eq(r, &kept.report));
        (same_report && kept.node.same_as(node)).then_some(kept)
    }

    /// Where in `reports` the report of `node` is, when it is still the object the last pass
    /// kept for it at the same place.
    pub(super) fn kept_report(
        &mut self,
        node: &NodeInfo,
        reports: &[Arc<NodeNetworkReport>],
    ) -> Option<usize> {
        self.skip_to(node);
        let kept = self.previous.last().filter(|k| k.node.name == node.name)?;
        reports
            .get(kept.report_at)
            .filter(|r| Arc::ptr_eq(r, &kept.report))
            .map(|_| kept.report_at)
    }

    /// Drop the kept nodes before `node` (the pass has passed them).
    fn skip_to(&mut self, node: &NodeInfo) {
        while self
            .previous
            .last()
            .is_some_and(|kept| kept.node.name < node.name)
        {
            self.previous.pop();
        }
    }

    /// Keep this pass's decisions of a quiet node for the next pass (in the pass's order).
    pub(super) fn keep(&mut self, kept: NodeMemo) {
        self.nodes.push(kept);
    }

    /// End the pass: what was not reused is dropped.
    pub(super) fn end(&mut self) {
        self.previous.clear();
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
        self.nodes.len()
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
