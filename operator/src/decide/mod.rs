//! The decision engine: pure. From the policies, reports, nodes, pods, the ledger of past
//! actions and `now`, compute the orders each report's spec must carry, the cluster actions to
//! take, the action records to write, and each policy's findings with the reason each one is
//! or is not acted on. No API access; every safety limit lives here.

pub mod cluster_actions;
pub mod disposition;
pub mod duplicates;
pub mod flapping;
pub mod memo;
pub mod node_view;
pub mod orders;
pub mod ownership;
pub mod summary;

#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;

use crate::ledger::{Entry, Ledger};
use crate::model::{NodeInfo, SlimPod};
use cluster_actions::{ClusterAction, PodRef};
use disposition::Why;
use duplicates::DuplicateGroup;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use memo::{Memo, NodeDecisions, NodeMemo};
use netheal_crds::report::MAX_REPORT_ORDERS;
use netheal_crds::{
    Action, Check, Finding, Mode, NetworkHealthPolicy, NodeNetworkReport, PolicyFinding,
    RemediationOrder,
};
use node_view::NodeView;
use orders::{Recorded, Withdraw};
use ownership::{Policies, name};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use summary::{Flap, PolicyOutcome};

/// A hash map with foldhash's fast hasher: the per-pass maps over every node are keyed by
/// names from the API, not by anything an attacker picks to collide.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
/// A hash set with foldhash's fast hasher.
type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;

/// The reports by node name (unique, as a store lists them), indexed on the first lookup: a
/// pass that finds every node's report where the memo saw it hashes no name.
struct ReportsByName<'a> {
    reports: &'a [Arc<NodeNetworkReport>],
    by_name: std::cell::OnceCell<FastMap<&'a str, usize>>,
}

impl<'a> ReportsByName<'a> {
    fn new(reports: &'a [Arc<NodeNetworkReport>]) -> Self {
        Self {
            reports,
            by_name: std::cell::OnceCell::new(),
        }
    }

    /// Where the report of `node` is in the list.
    fn index(&self, node: &str) -> Option<usize> {
        self.by_name
            .get_or_init(|| {
                let mut map =
                    FastMap::with_capacity_and_hasher(self.reports.len(), Default::default());
                map.extend(
                    self.reports
                        .iter()
                        .enumerate()
                        .filter_map(|(i, r)| Some((r.metadata.name.as_deref()?, i))),
                );
                map
            })
            .get(node)
            .copied()
    }
}

/// Everything a decision is computed from.
pub struct Inputs<'a> {
    /// Every policy.
    pub policies: &'a [Arc<NetworkHealthPolicy>],
    /// Every report (named after its node).
    pub reports: &'a [Arc<NodeNetworkReport>],
    /// Every node.
    pub nodes: &'a [NodeInfo],
    /// Every pod (slim).
    pub pods: &'a [Arc<SlimPod>],
    /// Past actions and orders out.
    pub ledger: &'a Ledger,
    /// The time of the decision (whole seconds).
    pub now: Timestamp,
    /// Also build [`Decision::node_views`] (for reports written per node).
    pub node_views: bool,
}

/// What one pass decided.
#[derive(Debug, Default)]
pub struct Decision {
    /// The `spec.remediations` each node's report must carry (every node with orders out
    /// before or after this pass).
    pub orders: BTreeMap<String, Vec<RemediationOrder>>,
    /// Orders approved in this pass, as `(node, order id)`.
    pub approved: Vec<(String, String)>,
    /// Answers and withdrawals to record in the policies' status.
    pub recorded: Vec<Recorded>,
    /// Orders withdrawn in this pass, per node (the ledger keeps them for late answers).
    pub withdrawn: BTreeMap<String, Vec<RemediationOrder>>,
    /// When the pass decided.
    pub time: Timestamp,
    /// Cluster actions to take now.
    pub cluster_actions: Vec<ClusterAction>,
    /// Per policy: findings, dispositions, counters.
    pub policies: BTreeMap<String, PolicyOutcome>,
    /// Nodes with an action in flight after this pass.
    pub nodes_in_flight: BTreeSet<String>,
    /// Per node: its policies and every finding on it (only when [`Inputs::node_views`]).
    pub node_views: BTreeMap<String, NodeView>,
    /// Nodes whose findings' decisions were reused from the memo.
    pub reused_nodes: usize,
}

/// One finding to decide about.
struct Work<'a> {
    node: &'a NodeInfo,
    finding: &'a Finding,
    report: Option<&'a NodeNetworkReport>,
    duplicate: Option<&'a DuplicateGroup>,
}

/// The running state of a pass.
struct Pass<'a> {
    inputs: &'a Inputs<'a>,
    ledger: Cow<'a, Ledger>,
    in_flight: BTreeSet<String>,
    open_orders: BTreeMap<String, Vec<RemediationOrder>>,
    cni_busy: Option<String>,
    cni_this_pass: Option<(String, String)>,
    decision: Decision,
}

/// Decide everything. Deterministic for the same inputs.
pub fn decide(inputs: &Inputs<'_>) -> Decision {
    decide_with(inputs, &mut Memo::default())
}

/// Decide, reusing the decisions `memo` kept from the last pass where nothing they depend on
/// changed, and keep this pass's for the next. The same decision as [`decide`].
pub fn decide_with(inputs: &Inputs<'_>, memo: &mut Memo) -> Decision {
    let now = inputs.now;
    let mut policies = Policies::new(inputs.policies);
    let by_name: BTreeMap<&str, &NetworkHealthPolicy> = policies
        .sorted
        .iter()
        .map(|p| (name(p), p.as_ref()))
        .collect();
    // By name: the nodes sorted (the order kept from the last pass while it still holds), the
    // reports indexed when one is not where the memo saw it.
    let sorted_nodes = memo.sorted_nodes(inputs.nodes);
    let place = |name: &str| {
        sorted_nodes
            .binary_search_by(|n| n.name.as_str().cmp(name))
            .ok()
    };
    let node_named = |name: &str| -> Option<&NodeInfo> { place(name).map(|i| sorted_nodes[i]) };
    let reports = ReportsByName::new(inputs.reports);

    let mut pass = Pass {
        inputs,
        ledger: Cow::Borrowed(inputs.ledger),
        in_flight: BTreeSet::new(),
        open_orders: BTreeMap::new(),
        cni_busy: None,
        cni_this_pass: None,
        decision: Decision {
            time: now,
            ..Decision::default()
        },
    };
    for policy in &policies.sorted {
        pass.decision.policies.insert(
            name(policy).to_string(),
            PolicyOutcome {
                generation: policy.metadata.generation,
                paused: policy.spec.paused,
                ..Default::default()
            },
        );
    }

    // A quiet node unchanged since the last pass keeps that pass's decisions and counts (see
    // `memo`); a delta visits only the nodes where that may not hold.
    let delta = memo.begin(&policies.sorted, sorted_nodes.len(), !inputs.node_views);
    let unchanged = delta.then(|| memo.look(&sorted_nodes, inputs.reports));
    // The report of a node: where it was in the last pass, else by name.
    let report_of = |memo: &Memo, node: &str| -> Option<usize> {
        place(node)
            .and_then(|at| memo.report_at(at, node, inputs.reports))
            .or_else(|| reports.index(node))
    };

    // 1. The orders out: answered, withdrawn or still open.
    let mut order_nodes: BTreeSet<&str> = inputs.ledger.pending_nodes().map(|(n, _)| n).collect();
    order_nodes.extend(
        inputs
            .reports
            .iter()
            .enumerate()
            .filter(|(i, _)| !unchanged.as_ref().is_some_and(|u| u.kept_reports[*i]))
            .filter(|(_, r)| !r.spec.remediations.is_empty())
            .filter_map(|(_, r)| r.metadata.name.as_deref()),
    );
    order_nodes.extend(inputs.ledger.withdrawn_nodes());
    for node in order_nodes {
        let info = node_named(node);
        let report = report_of(&*memo, node)
            .and_then(|i| inputs.reports.get(i))
            .map(|r| r.as_ref());
        let withdraw = |order: &RemediationOrder| match (info, by_name.get(order.policy.as_str())) {
            (None, _) => Some(Withdraw::NodeDeleted),
            _ if report.is_none() => Some(Withdraw::ReportMissing),
            (_, None) => Some(Withdraw::PolicyDeleted),
            (_, Some(p)) if p.spec.paused => Some(Withdraw::PolicyPaused),
            (_, Some(p)) if p.spec.mode != Mode::Enforce => Some(Withdraw::PolicyDryRun),
            (_, Some(p)) if !p.spec.remediation.actions.contains(&order.action) => {
                Some(Withdraw::ActionNotApproved)
            }
            (Some(n), _) if n.paused => Some(Withdraw::NodePaused),
            _ => None,
        };
        let settled = orders::settle(node, inputs.ledger, report, now, withdraw);
        pass.decision.recorded.extend(settled.recorded);
        if !settled.withdrawn.is_empty() {
            pass.decision
                .withdrawn
                .insert(node.to_string(), settled.withdrawn);
        }
        if !settled.open.is_empty() {
            pass.in_flight.insert(node.to_string());
        }
        pass.open_orders.insert(node.to_string(), settled.open);
    }

    // The answers read in this pass count for the limits at once.
    if !pass.decision.recorded.is_empty() {
        let mut ledger = inputs.ledger.clone();
        for recorded in &pass.decision.recorded {
            ledger.push(Entry::from_record(&recorded.policy, &recorded.record));
        }
        pass.ledger = Cow::Owned(ledger);
    }

    // 2. A CNI agent restart still waiting for its new pod (the agents are looked up only
    //    when the ledger holds a restart).
    let agent_pods = if pass
        .ledger
        .entries()
        .iter()
        .any(|e| e.action == Action::RestartCniPod)
    {
        cluster_actions::agent_pods_by_node(inputs.pods, inputs.policies)
    } else {
        HashMap::new()
    };
    if let Some((node, _)) = cluster_actions::cni_restart_in_flight(
        &pass.ledger,
        &by_name,
        &agent_pods,
        |n| node_named(n).is_some(),
        now,
    ) {
        pass.in_flight.insert(node.clone());
        pass.cni_busy = Some(node);
    }

    // 3. Each node's findings, decided in node order with their owning policy (in a delta,
    //    only the nodes whose kept decisions may not hold).
    let groups = memo.duplicates(inputs.pods);
    let duplicate_nodes: FastSet<&str> = groups.iter().map(|g| g.node.as_str()).collect();
    let visit: Vec<usize> = if let Some(unchanged) = unchanged {
        let mut visit = unchanged.changed;
        visit.extend(pass.unquiet_nodes().filter_map(place));
        visit.extend(duplicate_nodes.iter().filter_map(|n| place(n)));
        visit.sort_unstable();
        visit.dedup();
        let visited_kept = visit.iter().filter(|&&at| memo.slot(at).is_some()).count();
        pass.decision.reused_nodes = memo.kept_nodes() - visited_kept;
        visit
    } else {
        (0..sorted_nodes.len()).collect()
    };
    // The policies selecting each node with a duplicate pod IP (decided in step 4).
    let mut selecting: HashMap<&str, Vec<usize>> = HashMap::new();
    // The decisions of the visited nodes not kept, by place (listed below).
    let mut unkept: Vec<(usize, Option<usize>, NodeDecisions)> = Vec::new();
    for at in visit {
        let node = sorted_nodes[at];
        let previous = if delta {
            memo.untally(at)
        } else {
            memo.take_previous(&node.name)
        }
        .filter(|kept| kept.node.name == node.name);
        let report_at = report_of(&*memo, &node.name);
        memo.hint_report(at, report_at);
        let report = report_at.and_then(|i| inputs.reports.get(i));
        let quiet = pass.quiet(&node.name);
        let duplicate = duplicate_nodes.contains(node.name.as_str());
        // The selecting policies and the decisions, and the Node to keep them under for the
        // next pass.
        let reusable = previous.filter(|kept| quiet && kept.holds_for(node, report));
        let (sel, decided, reporting, keep_as) = match reusable {
            Some(kept) => {
                pass.decision.reused_nodes += 1;
                (kept.sel, kept.decided, kept.reporting, Some(kept.node))
            }
            None => {
                let (sel, clean) = policies.selecting(&node.labels);
                let report = report.map(AsRef::as_ref);
                let (decided, local) = pass.decide_node(&policies, node, &sel, report);
                let reporting = report.is_some_and(|r| r.status.is_some());
                (
                    sel,
                    decided,
                    reporting,
                    (quiet && local && clean).then(|| (*node).clone()),
                )
            }
        };
        if inputs.node_views {
            pass.view_node(&policies, node, report.map(AsRef::as_ref), &sel, &decided);
        }
        if duplicate {
            selecting.insert(node.name.as_str(), sel.clone());
        }
        match (keep_as, report, report_at) {
            (Some(kept_node), Some(report), Some(report_at)) if !duplicate => memo.keep(
                at,
                NodeMemo {
                    node: kept_node,
                    report: Arc::clone(report),
                    report_at,
                    reporting,
                    sel,
                    decided,
                },
            ),
            _ => {
                // A duplicate pod IP found on the node (decided below) counts against the
                // policy that will own it.
                let duplicate_owner = duplicate
                    .then(|| policies.owner(&sel, Check::DuplicatePodIp, None))
                    .flatten();
                pass.count_node(&policies, &sel, reporting, &decided, duplicate_owner);
                if !decided.items.is_empty() {
                    unkept.push((at, report_at, decided));
                }
            }
        }
    }
    memo.end();
    for (policy, totals) in policies.sorted.iter().zip(memo.totals()) {
        if let Some(outcome) = pass.decision.policies.get_mut(name(policy)) {
            add_totals(outcome, totals);
        }
    }
    pass.list_findings(&policies, &sorted_nodes, memo, &unkept);

    // 4. The duplicate pod IPs, after every node's own findings.
    for group in groups.iter() {
        let Some(node) = node_named(&group.node) else {
            continue;
        };
        let sel = selecting.get(group.node.as_str()).map(Vec::as_slice);
        let Some(owner) = policies.owner(sel.unwrap_or_default(), Check::DuplicatePodIp, None)
        else {
            continue;
        };
        let item = Work {
            node,
            finding: &group.finding,
            report: report_of(&*memo, &group.node)
                .and_then(|i| inputs.reports.get(i))
                .map(|r| r.as_ref()),
            duplicate: Some(group),
        };
        let policy = &policies.sorted[owner];
        let (why, _) = pass.dispose(policy, &item);
        let finding = || policy_finding(node, &group.finding, &why);
        if let Some(view) = pass.decision.node_views.get_mut(&node.name) {
            view.findings.push((name(policy).to_string(), finding()));
        }
        if let Some(outcome) = pass.decision.policies.get_mut(name(policy)) {
            outcome.count_finding(group.finding.check, finding);
        }
    }

    for (policy, error) in &policies.selector_errors {
        if let Some(outcome) = pass.decision.policies.get_mut(policy) {
            outcome.selector_error = Some(error.clone());
        }
    }
    for outcome in pass.decision.policies.values_mut() {
        outcome.finish();
    }
    pass.decision.orders = pass.open_orders;
    pass.decision.nodes_in_flight = pass.in_flight;
    pass.decision
}

/// Add what the kept nodes add up to (see [`memo::Totals`]) to a policy's counters.
fn add_totals(outcome: &mut PolicyOutcome, totals: &memo::Totals) {
    outcome.nodes_selected = outcome.nodes_selected.saturating_add(totals.selected);
    outcome.nodes_reporting = outcome.nodes_reporting.saturating_add(totals.reporting);
    outcome.nodes_healthy = outcome.nodes_healthy.saturating_add(totals.healthy);
    let by_check: Vec<(Check, u32)> = totals
        .by_check
        .iter()
        .filter(|&(_, &n)| n > 0)
        .map(|(&check, &n)| (check, n))
        .collect();
    outcome.count_findings(&by_check);
}

/// A finding as a policy's status lists it, with its disposition.
fn policy_finding(node: &NodeInfo, finding: &Finding, why: &Why) -> PolicyFinding {
    PolicyFinding {
        id: finding.id.clone(),
        node: node.name.clone(),
        check: finding.check,
        target: finding.target.clone(),
        observed: finding.observed.clone(),
        desired: finding.desired.clone(),
        proposed_action: finding.action.or_else(|| finding.check.remedy()),
        disposition: Some(why.to_string()),
    }
}

impl Pass<'_> {
    /// True when nothing about `node` depends on the time or on other nodes: no order out,
    /// nothing in the ledger, not in flight.
    fn quiet(&self, node: &str) -> bool {
        !self.in_flight.contains(node)
            && self.open_orders.get(node).is_none_or(Vec::is_empty)
            && self.ledger.pending(node).is_empty()
            && self.ledger.for_node(node).next().is_none()
            && self.ledger.withdrawn(node).next().is_none()
    }

    /// Decide every finding of `node`'s report that a policy owns. The flag is true when
    /// each was decided by the node's own gates alone (see [`memo`]).
    fn decide_node(
        &mut self,
        policies: &Policies,
        node: &NodeInfo,
        sel: &[usize],
        report: Option<&NodeNetworkReport>,
    ) -> (NodeDecisions, bool) {
        let mut decided = NodeDecisions::default();
        let mut local = true;
        let findings = report
            .and_then(|r| r.status.as_ref())
            .map(|s| s.findings.as_slice())
            .unwrap_or_default();
        for (index, finding) in findings.iter().enumerate() {
            let Some(owner) = policies.owner(sel, finding.check, finding.policy.as_deref()) else {
                continue;
            };
            let item = Work {
                node,
                finding,
                report,
                duplicate: None,
            };
            let (why, by_node_alone) = self.dispose(&policies.sorted[owner], &item);
            local &= by_node_alone;
            decided.push(owner, finding.check, index, why);
        }
        (decided, local)
    }

    /// Every node with something that depends on the time or on other nodes (see
    /// [`Pass::quiet`]).
    fn unquiet_nodes(&self) -> impl Iterator<Item = &str> {
        self.in_flight
            .iter()
            .map(String::as_str)
            .chain(self.open_orders.keys().map(String::as_str))
            .chain(self.ledger.pending_nodes().map(|(node, _)| node))
            .chain(self.ledger.nodes())
            .chain(self.ledger.withdrawn_nodes())
    }

    /// The view of `node`: its policies and every finding decided on it.
    fn view_node(
        &mut self,
        policies: &Policies,
        node: &NodeInfo,
        report: Option<&NodeNetworkReport>,
        sel: &[usize],
        decided: &NodeDecisions,
    ) {
        let status = report.and_then(|r| r.status.as_ref());
        let findings = status.map(|s| s.findings.as_slice()).unwrap_or_default();
        let view = NodeView {
            policies: sel
                .iter()
                .map(|&i| name(&policies.sorted[i]).to_string())
                .collect(),
            reporting: status.is_some(),
            scan_errors: status.map(|s| s.errors.clone()).unwrap_or_default(),
            findings: decided
                .items
                .iter()
                .filter_map(|(owner, index, why)| {
                    let finding = findings.get(*index)?;
                    let policy = name(&policies.sorted[*owner]).to_string();
                    Some((policy, policy_finding(node, finding, why)))
                })
                .collect(),
        };
        self.decision.node_views.insert(node.name.clone(), view);
    }

    /// Count a node that is not kept into its policies' counters: the node for each selecting
    /// policy, its findings for each owner.
    fn count_node(
        &mut self,
        policies: &Policies,
        sel: &[usize],
        reporting: bool,
        decided: &NodeDecisions,
        duplicate_owner: Option<usize>,
    ) {
        for &i in sel {
            let has_findings =
                duplicate_owner == Some(i) || decided.counts.iter().any(|(owner, _)| *owner == i);
            if let Some(outcome) = self.decision.policies.get_mut(name(&policies.sorted[i])) {
                outcome.count_node(reporting, has_findings);
            }
        }
        for (owner, by_check) in &decided.counts {
            if let Some(outcome) = self
                .decision
                .policies
                .get_mut(name(&policies.sorted[*owner]))
            {
                outcome.count_findings(by_check);
            }
        }
    }

    /// List each policy's first findings in node order (the status keeps
    /// [`netheal_crds::policy::MAX_POLICY_FINDINGS`]), from the kept decisions and the
    /// `unkept` ones (by place), stopping once every policy has all it keeps.
    fn list_findings(
        &mut self,
        policies: &Policies,
        nodes: &[&NodeInfo],
        memo: &Memo,
        unkept: &[(usize, Option<usize>, NodeDecisions)],
    ) {
        let mut wanted: usize = self
            .decision
            .policies
            .values()
            .map(|o| (o.total_findings as usize).min(netheal_crds::policy::MAX_POLICY_FINDINGS))
            .sum();
        let mut unkept = unkept.iter().peekable();
        for (at, node) in nodes.iter().enumerate() {
            if wanted == 0 {
                break;
            }
            let (report, decided) = match memo.slot(at) {
                Some(kept) => (Some(kept.report.as_ref()), &kept.decided),
                None => match unkept.next_if(|(place, _, _)| *place == at) {
                    Some((_, report_at, decided)) => (
                        report_at
                            .and_then(|i| self.inputs.reports.get(i))
                            .map(AsRef::as_ref),
                        decided,
                    ),
                    None => continue,
                },
            };
            let findings = report
                .and_then(|r| r.status.as_ref())
                .map(|s| s.findings.as_slice())
                .unwrap_or_default();
            for (owner, _) in &decided.counts {
                let Some(outcome) = self
                    .decision
                    .policies
                    .get_mut(name(&policies.sorted[*owner]))
                else {
                    continue;
                };
                for (_, index, why) in decided.items.iter().filter(|(o, _, _)| o == owner) {
                    if !outcome.keeps_more() {
                        break;
                    }
                    if let Some(finding) = findings.get(*index) {
                        outcome.findings.push(policy_finding(node, finding, why));
                        wanted = wanted.saturating_sub(1);
                    }
                }
            }
        }
    }

    /// The disposition of one finding; approves it (an order or a cluster action) when every
    /// limit allows. The flag is true when the node's own gates decided it, without a
    /// cluster-wide limit.
    fn dispose(&mut self, policy: &NetworkHealthPolicy, item: &Work<'_>) -> (Why, bool) {
        let action = match self.gate(policy, item) {
            Ok(action) => action,
            Err(why) => return (why, true),
        };
        match self.cluster_gate(policy, item, action) {
            Ok(()) => (Why::Text(self.approve(policy, item, action)), false),
            Err(why) => (why, false),
        }
    }

    /// The checks of the node itself every action goes through, in order. `Ok(action)` when
    /// it may proceed to the cluster-wide ones.
    fn gate(&mut self, policy: &NetworkHealthPolicy, item: &Work<'_>) -> Result<Action, Why> {
        let finding = item.finding;
        let node = item.node.name.as_str();
        let ledger: &Ledger = &self.ledger;
        let now = self.inputs.now;
        let remediation = &policy.spec.remediation;
        let Some(action) = finding.action.or_else(|| finding.check.remedy()) else {
            return Err(Why::ReportOnly(finding.check));
        };
        if policy.spec.paused {
            return Err(Why::PolicyPaused);
        }
        if item.node.paused {
            return Err(Why::NodePaused);
        }
        if !remediation.approves(action) {
            return Err(Why::NotApproved(action));
        }
        if let Some(order) = self
            .open_orders
            .get(node)
            .and_then(|o| o.iter().find(|o| o.finding_id == finding.id))
        {
            return Err(Why::Text(format!(
                "in flight: order {} is waiting for node-fixer",
                order.id
            )));
        }
        if let Some(fixes) =
            flapping::flapping(ledger, node, &finding.id, &remediation.flap_limit, now)
        {
            if let Some(outcome) = self.decision.policies.get_mut(name(policy)) {
                outcome.flapping.push(Flap {
                    node: node.to_string(),
                    check: finding.check,
                    target: finding.target.clone(),
                    fixes,
                });
            }
            return Err(format!(
                "flapping: fixed {fixes} times in the last {}s and back again; not fixed any more (something else writes it)",
                remediation.flap_limit.window_seconds
            )
            .into());
        }
        let seen = finding.last_seen.as_ref().map(|t| t.0).or_else(|| {
            item.report
                .and_then(|r| r.status.as_ref())
                .and_then(|s| s.last_scan_time.as_ref())
                .map(|t| t.0)
        });
        if let (Some(last), Some(seen)) = (ledger.last_for_finding(node, &finding.id), seen)
            && last.time >= seen
            && item.duplicate.is_none()
        {
            return Err(format!(
                "fixed at {} by {}; waiting for the next scan",
                last.time, last.id
            )
            .into());
        }
        if let Some(last) = ledger.last_run(node, action) {
            let until = last
                .time
                .checked_add(SignedDuration::from_secs(i64::from(
                    remediation.cooldown_seconds,
                )))
                .unwrap_or(Timestamp::MAX);
            if now < until {
                return Err(Why::Cooldown(until));
            }
        }
        if policy.spec.mode == Mode::DryRun {
            return Err(Why::DryRun(action));
        }
        Ok(action)
    }

    /// The cluster-wide limits: one CNI agent restart at a time, `maxConcurrentNodes`.
    fn cluster_gate(
        &self,
        policy: &NetworkHealthPolicy,
        item: &Work<'_>,
        action: Action,
    ) -> Result<(), Why> {
        let node = item.node.name.as_str();
        let remediation = &policy.spec.remediation;
        if action == Action::RestartCniPod {
            self.cni_gate(node)?;
        }
        let max = remediation.max_concurrent_nodes as usize;
        if self.over_node_limit(node, max) {
            return Err(Why::Concurrency {
                in_flight: self.in_flight.len(),
                max,
            });
        }
        Ok(())
    }

    /// One CNI agent restart at a time, cluster-wide.
    fn cni_gate(&self, node: &str) -> Result<(), String> {
        if let Some(busy) = &self.cni_busy {
            return Err(if busy == node {
                "in flight: waiting for the new CNI agent pod on this node to be Ready".into()
            } else {
                format!(
                    "waiting: RestartCniPod on node {busy} until its new CNI agent pod is Ready"
                )
            });
        }
        match &self.cni_this_pass {
            Some((busy, id)) if busy == node => {
                Err(format!("in flight: RestartCniPod {id} on this node"))
            }
            Some((busy, _)) => Err(format!(
                "waiting: RestartCniPod on node {busy} goes first (one node at a time)"
            )),
            None => Ok(()),
        }
    }

    fn approve(&mut self, policy: &NetworkHealthPolicy, item: &Work<'_>, action: Action) -> String {
        let node = item.node.name.as_str();
        let now = self.inputs.now;
        let finding = item.finding;
        let policy_name = name(policy);
        match action {
            Action::RestartCniPod => {
                let selector = &policy.spec.checks.overlay.agent_selector;
                let agents: Vec<&SlimPod> = self
                    .inputs
                    .pods
                    .iter()
                    .filter(|p| p.spec.host_network == Some(true) && p.node() == Some(node))
                    .map(Arc::as_ref)
                    .collect();
                let Some(pod) = cluster_actions::agent_pod(&agents, selector) else {
                    return format!(
                        "no CNI agent pod owned by a DaemonSet in namespace {} with labels {:?} on this node",
                        selector.namespace, selector.labels
                    );
                };
                let id = orders::action_id(&finding.id, now);
                let pod = PodRef::of(pod);
                let disposition = format!("approved: RestartCniPod {id}: delete {pod}");
                self.decision.cluster_actions.push(ClusterAction {
                    id: id.clone(),
                    policy: policy_name.to_string(),
                    node: node.to_string(),
                    action,
                    check: finding.check,
                    finding_id: finding.id.clone(),
                    target: finding.target.clone(),
                    note: format!("restart the CNI agent: {}", finding.target),
                    pod,
                });
                self.cni_this_pass = Some((node.to_string(), id));
                self.in_flight.insert(node.to_string());
                disposition
            }
            Action::RecreatePod => self.approve_recreate(policy, item),
            _ => {
                let open = self.open_orders.entry(node.to_string()).or_default();
                if open.len() >= MAX_REPORT_ORDERS {
                    return format!("queued: {MAX_REPORT_ORDERS} orders already out on this node");
                }
                let Some(mut order) = orders::new_order(finding, policy_name, now) else {
                    return format!("report-only: {action} is not a node-local action");
                };
                // Answered and back within the same second: never reuse a recorded id.
                let base = order.id.clone();
                let mut n = 1;
                while self.ledger.has(node, &order.id) || open.iter().any(|o| o.id == order.id) {
                    order.id = format!("{base}-{n}");
                    n += 1;
                }
                let disposition = format!("approved: order {}", order.id);
                self.decision
                    .approved
                    .push((node.to_string(), order.id.clone()));
                open.push(order);
                self.in_flight.insert(node.to_string());
                disposition
            }
        }
    }

    fn approve_recreate(&mut self, policy: &NetworkHealthPolicy, item: &Work<'_>) -> String {
        let max = policy.spec.remediation.max_concurrent_nodes as usize;
        let policy = name(policy);
        let Some(group) = item.duplicate else {
            return "report-only: RecreatePod needs the pods' list".into();
        };
        let Some(keep) = duplicates::keeper(group, item.report) else {
            return "report-only: no pod to keep".into();
        };
        let keep_key = keep.key();
        let victims: Vec<&Arc<SlimPod>> =
            group.pods.iter().filter(|p| p.key() != keep_key).collect();
        let (owned, bare): (Vec<_>, Vec<_>) =
            victims.into_iter().partition(|p| p.controller().is_some());
        let bare: Vec<String> = bare.iter().map(|p| p.key()).collect();
        if owned.is_empty() {
            return format!(
                "report-only: {} has no controller; a bare pod is never deleted (keep {keep_key})",
                bare.join(", ")
            );
        }
        let base = orders::action_id(&item.finding.id, self.inputs.now);
        let mut evicted = Vec::new();
        let mut waiting = Vec::new();
        for (i, pod) in owned.iter().enumerate() {
            // Every node an eviction touches passes the node gates, not only the finding's.
            let node = pod.node().unwrap_or(item.node.name.as_str()).to_string();
            if let Err(why) = self.victim_node_gate(&node, max) {
                waiting.push(format!("{} on node {node}: {why}", pod.key()));
                continue;
            }
            let pod = PodRef::of(pod);
            evicted.push(pod.to_string());
            self.decision.cluster_actions.push(ClusterAction {
                id: format!("{base}-{i}"),
                policy: policy.to_string(),
                node: node.clone(),
                action: Action::RecreatePod,
                check: item.finding.check,
                finding_id: item.finding.id.clone(),
                target: item.finding.target.clone(),
                note: format!(
                    "{} also holds {}; keep {keep_key}",
                    pod,
                    group.ips.join(" and ")
                ),
                pod,
            });
            self.in_flight.insert(node);
        }
        if evicted.is_empty() {
            return format!("waiting: {} (keep {keep_key})", waiting.join("; "));
        }
        let mut disposition = format!(
            "approved: RecreatePod: evict {} (keep {keep_key})",
            evicted.join(", ")
        );
        if !bare.is_empty() {
            disposition.push_str(&format!(
                "; {} has no controller and is only reported",
                bare.join(", ")
            ));
        }
        if !waiting.is_empty() {
            disposition.push_str(&format!("; waiting: {}", waiting.join("; ")));
        }
        disposition
    }

    /// The node gates for a pod evicted on `node` (which may differ from the finding's node):
    /// the node is known and not paused, and the in-flight limit admits it.
    fn victim_node_gate(&self, node: &str, max: usize) -> Result<(), String> {
        match self.inputs.nodes.iter().find(|n| n.name == node) {
            None => return Err("the node is unknown".into()),
            Some(n) if n.paused => return Err("the node is paused".into()),
            Some(_) => {}
        }
        if self.over_node_limit(node, max) {
            return Err(format!(
                "{} nodes in flight, maxConcurrentNodes {max}",
                self.in_flight.len()
            ));
        }
        Ok(())
    }

    /// True when `node` is not in flight yet and `max` nodes already are.
    fn over_node_limit(&self, node: &str, max: usize) -> bool {
        !self.in_flight.contains(node) && self.in_flight.len() >= max
    }
}
