//! The decision engine's tests: every safety limit, both modes, ownership, cluster actions.

use super::testkit::*;
use super::*;
use crate::ledger::Entry;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use netheal_crds::{Outcome, RemediationResult};

struct World {
    policies: Vec<Arc<NetworkHealthPolicy>>,
    reports: Vec<Arc<NodeNetworkReport>>,
    nodes: Vec<NodeInfo>,
    pods: Vec<Arc<SlimPod>>,
    ledger: Ledger,
}

impl World {
    fn new() -> Self {
        Self {
            policies: vec![policy("p")],
            reports: vec![],
            nodes: vec![],
            pods: vec![],
            ledger: Ledger::new(),
        }
    }

    /// A node with a report holding `findings`, scanned at t=100.
    fn with_node(mut self, name: &str, findings: Vec<Finding>) -> Self {
        self.nodes.push(node(name));
        self.reports.push(report(name, 100, findings));
        self
    }

    fn policy(&mut self) -> &mut NetworkHealthPolicy {
        Arc::make_mut(&mut self.policies[0])
    }

    fn decide(&self, now: i64) -> Decision {
        decide(&Inputs {
            policies: &self.policies,
            reports: &self.reports,
            nodes: &self.nodes,
            pods: &self.pods,
            ledger: &self.ledger,
            now: at(now),
            node_views: true,
        })
    }

    /// Decide, then fold the decision into the ledger as the operator does.
    fn step(&mut self, now: i64) -> Decision {
        let d = self.decide(now);
        self.ledger.apply(&d);
        d
    }

    fn report_mut(&mut self, node: &str) -> &mut NodeNetworkReport {
        let r = self
            .reports
            .iter_mut()
            .find(|r| r.metadata.name.as_deref() == Some(node))
            .unwrap();
        Arc::make_mut(r)
    }

    /// node-fixer answers every order in the report's spec with `outcome` at `time`.
    fn answer_all(&mut self, node: &str, orders: &[RemediationOrder], outcome: Outcome, time: i64) {
        let r = self.report_mut(node);
        r.spec.remediations = orders.to_vec();
        let status = r.status.get_or_insert_with(Default::default);
        for o in orders {
            status.results.push(RemediationResult {
                id: o.id.clone(),
                action: o.action,
                target: o.target.clone(),
                outcome,
                before: "2".into(),
                after: "0".into(),
                dry_run: false,
                time: Time(at(time)),
                message: None,
            });
        }
    }

    /// node-fixer rescans at `time` and still sees `findings`.
    fn rescan(&mut self, node: &str, time: i64, findings: Vec<Finding>) {
        let status = self
            .report_mut(node)
            .status
            .get_or_insert_with(Default::default);
        status.last_scan_time = Some(Time(at(time)));
        status.findings = findings;
    }
}

/// One finding of each kind the property tests draw from.
fn sample_findings() -> [Finding; 6] {
    [
        finding(Check::ArpIgnore, "net.ipv4.conf.all.arp_ignore"),
        finding(Check::IpForward, "net.ipv4.ip_forward"),
        finding(Check::StaleNeighbour, "neigh 10.244.1.0 dev flannel.1"),
        finding(Check::RejectRule, "filter INPUT -j REJECT"),
        finding(Check::VtepMissing, "neigh 10.244.9.0 dev flannel.1"),
        finding(Check::ProxyArpOff, "net.ipv4.conf.cali1.proxy_arp"),
    ]
}

fn arp(target: &str) -> Finding {
    finding(Check::ArpIgnore, target)
}

fn disposition<'a>(d: &'a Decision, policy: &str, node: &str) -> Vec<&'a str> {
    d.policies[policy]
        .findings
        .iter()
        .filter(|f| f.node == node)
        .map(|f| f.disposition.as_deref().unwrap_or_default())
        .collect()
}

#[test]
fn an_approved_finding_becomes_an_order_with_the_details_as_parameters() {
    let f = arp("net.ipv4.conf.all.arp_ignore");
    let w = World::new().with_node("n1", vec![f.clone()]);
    let d = w.decide(1000);
    let orders = &d.orders["n1"];
    assert_eq!(orders.len(), 1);
    let o = &orders[0];
    assert_eq!(o.id, format!("{}-1000", f.id));
    assert_eq!(o.action, Action::SetSysctl);
    assert_eq!(o.finding_id, f.id);
    assert_eq!(o.parameters, f.details);
    assert_eq!(o.policy, "p");
    assert!(!o.dry_run);
    assert_eq!(o.approved_at, Time(at(1000)));
    assert_eq!(d.approved, vec![("n1".to_string(), o.id.clone())]);
    assert_eq!(
        disposition(&d, "p", "n1"),
        vec![format!("approved: order {}", o.id).as_str()]
    );
    assert!(d.nodes_in_flight.contains("n1"));
    let outcome = &d.policies["p"];
    assert_eq!(
        (
            outcome.nodes_selected,
            outcome.nodes_reporting,
            outcome.nodes_healthy
        ),
        (1, 1, 0)
    );
    assert_eq!(outcome.open_findings(), 1);
}

#[test]
fn all_findings_of_one_node_are_batched_in_one_pass() {
    let w = World::new().with_node(
        "n1",
        vec![
            arp("net.ipv4.conf.all.arp_ignore"),
            arp("net.ipv4.conf.flannel/1.arp_ignore"),
            finding(Check::StaleNeighbour, "neigh 10.244.1.0 dev flannel.1"),
        ],
    );
    let d = w.decide(1000);
    assert_eq!(d.orders["n1"].len(), 3);
    let ids: BTreeSet<_> = d.orders["n1"].iter().map(|o| &o.id).collect();
    assert_eq!(ids.len(), 3, "order ids are unique");
}

#[test]
fn only_approved_actions_in_enforce_mode_are_ordered() {
    let mut w = World::new().with_node(
        "n1",
        vec![
            arp("net.ipv4.conf.all.arp_ignore"),
            finding(Check::RejectRule, "filter INPUT -j REJECT"),
            finding(Check::ProxyArpOff, "net.ipv4.conf.cali1.proxy_arp"),
        ],
    );
    w.policy().spec.remediation.actions = vec![Action::SetSysctl];
    let d = w.decide(1000);
    assert_eq!(d.orders["n1"].len(), 1);
    let mut got = disposition(&d, "p", "n1");
    got.sort();
    assert!(got[0].starts_with("approved: order"));
    assert_eq!(
        got[1],
        "not approved: RemoveRejectRule is not in spec.remediation.actions"
    );
    assert_eq!(got[2], "report-only: no automatic fix for ProxyArpOff");
}

#[test]
fn dry_run_proposes_the_same_action_and_orders_nothing() {
    let mut w = World::new().with_node("n1", vec![arp("net.ipv4.conf.all.arp_ignore")]);
    w.policy().spec.mode = Mode::DryRun;
    let d = w.decide(1000);
    assert!(d.orders.get("n1").is_none_or(Vec::is_empty));
    assert!(d.cluster_actions.is_empty());
    assert!(d.nodes_in_flight.is_empty());
    let f = &d.policies["p"].findings[0];
    assert_eq!(f.proposed_action, Some(Action::SetSysctl));
    assert_eq!(f.disposition.as_deref(), Some("dry-run: would SetSysctl"));
}

#[test]
fn a_paused_policy_or_node_gets_no_orders() {
    let mut w = World::new().with_node("n1", vec![arp("net.ipv4.conf.all.arp_ignore")]);
    w.policy().spec.paused = true;
    let d = w.decide(1000);
    assert!(d.orders.is_empty());
    assert_eq!(
        disposition(&d, "p", "n1"),
        vec!["paused: the policy is paused"]
    );
    assert!(d.policies["p"].paused);

    let mut w = World::new().with_node("n1", vec![arp("net.ipv4.conf.all.arp_ignore")]);
    w.nodes[0].paused = true;
    let d = w.decide(1000);
    assert!(d.orders.is_empty());
    assert_eq!(
        disposition(&d, "p", "n1"),
        vec!["node paused: the Node is annotated netheal.io/paused=true"]
    );
}

#[test]
fn pausing_withdraws_the_orders_still_out() {
    let mut w = World::new().with_node("n1", vec![arp("net.ipv4.conf.all.arp_ignore")]);
    let d = w.step(1000);
    assert_eq!(w.ledger.pending("n1").len(), 1);
    let id = d.orders["n1"][0].id.clone();
    w.nodes[0].paused = true;
    let d = w.step(1001);
    assert_eq!(d.orders["n1"], vec![]);
    assert_eq!(d.recorded.len(), 1);
    assert_eq!(d.recorded[0].record.id, id);
    assert_eq!(d.recorded[0].record.outcome, Outcome::Skipped);
    assert!(d.nodes_in_flight.is_empty());
}

#[test]
fn at_most_max_concurrent_nodes_are_in_flight() {
    let mut w = World::new();
    for n in ["n1", "n2", "n3"] {
        w = w.with_node(n, vec![arp("net.ipv4.conf.all.arp_ignore")]);
    }
    w.policy().spec.remediation.max_concurrent_nodes = 2;
    let d = w.step(1000);
    assert_eq!(d.nodes_in_flight.len(), 2);
    assert_eq!(d.orders.values().filter(|o| !o.is_empty()).count(), 2);
    assert_eq!(
        disposition(&d, "p", "n3"),
        vec!["concurrency limit: 2 of 2 nodes in flight"]
    );
    // While n1 and n2 have orders out, n3 keeps waiting.
    let d = w.step(1010);
    assert!(d.orders.get("n3").is_none_or(Vec::is_empty));
    assert_eq!(
        disposition(&d, "p", "n1")[0],
        format!(
            "in flight: order {} is waiting for node-fixer",
            d.orders["n1"][0].id
        )
    );
    // n1 answers: its slot frees and n3 goes.
    let orders = d.orders["n1"].clone();
    w.answer_all("n1", &orders, Outcome::Applied, 1015);
    let d = w.step(1020);
    assert_eq!(d.recorded.len(), 1);
    assert_eq!(d.recorded[0].record.outcome, Outcome::Applied);
    assert_eq!(d.recorded[0].record.check, Some(Check::ArpIgnore));
    assert_eq!(d.orders["n1"], vec![], "answered orders leave the spec");
    assert_eq!(d.orders["n3"].len(), 1);
    assert_eq!(
        d.nodes_in_flight,
        BTreeSet::from(["n2".to_string(), "n3".to_string()])
    );
}

#[test]
fn cooldown_applies_per_node_and_action_kind_after_a_fix() {
    let f = arp("net.ipv4.conf.all.arp_ignore");
    let mut w = World::new().with_node("n1", vec![f.clone()]);
    let d = w.step(1000);
    let orders = d.orders["n1"].clone();
    w.answer_all("n1", &orders, Outcome::Applied, 1005);
    w.step(1006);
    // The fault comes back at the next scan, inside the 60 s cooldown.
    w.rescan("n1", 1010, vec![f.clone()]);
    let d = w.step(1020);
    assert_eq!(
        disposition(&d, "p", "n1"),
        vec!["cooldown until 1970-01-01T00:17:45Z"]
    );
    assert_eq!(d.orders["n1"], vec![]);
    // Another action kind on the same node is not cooled down.
    let neigh = finding(Check::StaleNeighbour, "neigh 10.244.1.0 dev flannel.1");
    w.rescan("n1", 1030, vec![f.clone(), neigh]);
    let d = w.step(1031);
    assert_eq!(d.orders["n1"].len(), 1);
    assert_eq!(d.orders["n1"][0].action, Action::DeleteNeighbour);
    // After the cooldown the sysctl is fixed again.
    let d = w.decide(1066);
    assert!(d.orders["n1"].iter().any(|o| o.action == Action::SetSysctl));
}

#[test]
fn a_fixed_finding_is_not_ordered_again_before_the_next_scan() {
    let f = arp("net.ipv4.conf.all.arp_ignore");
    let mut w = World::new().with_node("n1", vec![f.clone()]);
    w.policy().spec.remediation.cooldown_seconds = 0;
    let d = w.step(1000);
    let orders = d.orders["n1"].clone();
    w.answer_all("n1", &orders, Outcome::Applied, 1005);
    // The report still lists the finding from the scan at t=100.
    let d = w.step(1006);
    assert_eq!(d.orders["n1"], vec![]);
    assert!(disposition(&d, "p", "n1")[0].contains("waiting for the next scan"));
}

#[test]
fn flapping_findings_are_no_longer_fixed_and_named() {
    let f = arp("net.ipv4.conf.all.arp_ignore");
    let mut w = World::new().with_node("n1", vec![f.clone()]);
    w.policy().spec.remediation.cooldown_seconds = 0;
    w.policy().spec.remediation.flap_limit.fixes = 2;
    let mut t = 1000;
    for _ in 0..2 {
        let d = w.step(t);
        let orders = d.orders["n1"].clone();
        assert_eq!(orders.len(), 1, "fixed while under the limit");
        w.answer_all("n1", &orders, Outcome::Applied, t + 1);
        w.rescan("n1", t + 2, vec![f.clone()]);
        t += 10;
    }
    let d = w.step(t);
    assert_eq!(d.orders["n1"], vec![]);
    assert!(disposition(&d, "p", "n1")[0].starts_with("flapping: fixed 2 times"));
    assert_eq!(
        d.policies["p"].flapping,
        vec![Flap {
            node: "n1".into(),
            check: Check::ArpIgnore,
            target: f.target.clone(),
            fixes: 2
        }]
    );
    // Outside the window it is fixed again.
    let d = w.decide(t + 3600);
    assert_eq!(d.orders["n1"].len(), 1);
}

#[test]
fn failed_fixes_do_not_count_as_flapping_but_start_a_cooldown() {
    let f = arp("net.ipv4.conf.all.arp_ignore");
    let mut w = World::new().with_node("n1", vec![f.clone()]);
    w.policy().spec.remediation.flap_limit.fixes = 1;
    let d = w.step(1000);
    let orders = d.orders["n1"].clone();
    w.answer_all("n1", &orders, Outcome::Failed, 1001);
    w.rescan("n1", 1002, vec![f.clone()]);
    let d = w.step(1003);
    assert!(disposition(&d, "p", "n1")[0].starts_with("cooldown until"));
    assert!(d.policies["p"].flapping.is_empty());
}

#[test]
fn a_node_without_history_is_treated_at_once() {
    // Another node was fixed a second ago: the cooldown is per node, so the new node goes now.
    let mut w = World::new().with_node("old", vec![]);
    w.policy().spec.remediation.max_concurrent_nodes = 5;
    w.ledger.push(Entry {
        id: "x-1".into(),
        policy: "p".into(),
        node: "old".into(),
        action: Action::SetSysctl,
        finding_id: "x".into(),
        time: at(999),
        outcome: Outcome::Applied,
        dry_run: false,
    });
    let w = w.with_node("new", vec![arp("net.ipv4.conf.all.arp_ignore")]);
    let d = w.decide(1000);
    assert_eq!(d.orders["new"].len(), 1);
}

#[test]
fn a_node_deleted_mid_action_frees_its_slot_and_is_recorded() {
    let mut w = World::new()
        .with_node("n1", vec![arp("net.ipv4.conf.all.arp_ignore")])
        .with_node("n2", vec![arp("net.ipv4.conf.all.arp_ignore")]);
    let d = w.step(1000);
    assert_eq!(d.orders["n1"].len(), 1);
    assert!(d.orders.get("n2").is_none_or(Vec::is_empty));
    // n1 goes away (its report with it) before node-fixer answers.
    w.nodes.retain(|n| n.name != "n1");
    w.reports
        .retain(|r| r.metadata.name.as_deref() != Some("n1"));
    let d = w.step(1001);
    assert_eq!(d.recorded.len(), 1);
    assert_eq!(d.recorded[0].record.node, "n1");
    assert_eq!(d.recorded[0].record.outcome, Outcome::Skipped);
    assert!(
        d.recorded[0]
            .record
            .message
            .as_deref()
            .unwrap()
            .contains("deleted")
    );
    assert_eq!(d.orders["n2"].len(), 1);
    assert_eq!(w.ledger.pending("n1").len(), 0);
}

#[test]
fn the_lexically_first_enabling_policy_owns_a_nodes_findings() {
    let mut w = World::new().with_node("n1", vec![arp("net.ipv4.conf.all.arp_ignore")]);
    let mut zeta = policy("zeta");
    Arc::make_mut(&mut zeta).spec.mode = Mode::DryRun;
    let mut alpha = policy("alpha");
    Arc::make_mut(&mut alpha).spec.mode = Mode::DryRun;
    Arc::make_mut(&mut alpha).spec.checks.arp_ignore.enabled = false;
    w.policies.push(zeta);
    w.policies.push(alpha);
    let d = w.decide(1000);
    // alpha does not enable ArpIgnore; "p" comes before "zeta".
    assert_eq!(d.policies["p"].findings.len(), 1);
    assert!(d.policies["zeta"].findings.is_empty());
    assert!(d.policies["alpha"].findings.is_empty());
    assert_eq!(d.policies["zeta"].nodes_selected, 1);
    assert_eq!(d.policies["zeta"].nodes_healthy, 1);
    // The policy named in the finding wins when it selects the node and enables the check.
    let mut f = arp("net.ipv4.conf.all.arp_ignore");
    f.policy = Some("zeta".into());
    w.report_mut("n1").status.as_mut().unwrap().findings = vec![f];
    let d = w.decide(1000);
    assert_eq!(
        disposition(&d, "zeta", "n1"),
        vec!["dry-run: would SetSysctl"]
    );
    assert!(d.policies["p"].findings.is_empty());
}

#[test]
fn a_node_outside_the_selector_is_ignored() {
    let mut w = World::new().with_node("n1", vec![arp("net.ipv4.conf.all.arp_ignore")]);
    w.policy().spec.node_selector = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
            match_labels: Some(BTreeMap::from([("pool".into(), "edge".into())])),
            ..Default::default()
        },
    );
    let d = w.decide(1000);
    assert!(d.orders.is_empty());
    assert_eq!(d.policies["p"].nodes_selected, 0);
    w.nodes[0].labels.insert("pool".into(), "edge".into());
    assert_eq!(w.decide(1000).orders["n1"].len(), 1);
}

fn overlay_world() -> World {
    let mut w = World::new()
        .with_node(
            "n1",
            vec![finding(
                Check::VtepMissing,
                "neigh 10.244.3.0 dev flannel.1",
            )],
        )
        .with_node(
            "n2",
            vec![finding(Check::PeerRouteMissing, "route 10.244.3.0/24")],
        )
        .with_node("n3", vec![]);
    w.policy().spec.remediation.max_concurrent_nodes = 5;
    w.policy().spec.remediation.cooldown_seconds = 0;
    w.pods = vec![
        agent("canal-a", "n1", 10, true),
        agent("canal-b", "n2", 10, true),
        agent("canal-c", "n3", 10, true),
    ];
    w
}

fn apply_cluster_actions(w: &mut World, d: &Decision, now: i64) {
    for a in &d.cluster_actions {
        w.ledger.push(Entry {
            id: a.id.clone(),
            policy: a.policy.clone(),
            node: a.node.clone(),
            action: a.action,
            finding_id: a.finding_id.clone(),
            time: at(now),
            outcome: Outcome::Applied,
            dry_run: false,
        });
    }
}

#[test]
fn only_a_cni_agent_pod_a_daemonset_controls_is_ever_deleted() {
    for owner in [None, Some("ReplicaSet")] {
        let mut w = overlay_world();
        for p in &mut w.pods {
            let m = Arc::make_mut(p);
            match owner {
                None => m.metadata.owner_references = None,
                Some(kind) => {
                    if let Some(o) = m.metadata.owner_references.as_mut() {
                        o[0].kind = kind.into();
                    }
                }
            }
        }
        let d = w.step(1000);
        assert!(
            d.cluster_actions.is_empty(),
            "{owner:?}: {:?}",
            d.cluster_actions
        );
        assert!(
            disposition(&d, "p", "n1")[0].contains("no CNI agent pod owned by a DaemonSet"),
            "{owner:?}: {:?}",
            disposition(&d, "p", "n1")
        );
    }
}

#[test]
fn cni_agents_restart_one_node_at_a_time_gated_on_the_new_pod_being_ready() {
    let mut w = overlay_world();
    let d = w.step(1000);
    assert_eq!(d.cluster_actions.len(), 1);
    let a = &d.cluster_actions[0];
    assert_eq!(a.action, Action::RestartCniPod);
    assert_eq!(a.node, "n1");
    assert_eq!(a.pod.to_string(), "kube-system/canal-a");
    assert_eq!(a.pod.uid.as_deref(), Some("uid-kube-system-canal-a"));
    assert!(disposition(&d, "p", "n2")[0].contains("n1 goes first"));
    apply_cluster_actions(&mut w, &d, 1000);

    // The old pod is gone, the new one is not Ready yet: n2 waits.
    w.pods.retain(|p| p.key() != "kube-system/canal-a");
    w.pods.push(agent("canal-a2", "n1", 1002, false));
    w.rescan("n1", 1003, vec![]);
    let d = w.step(1004);
    assert!(d.cluster_actions.is_empty());
    assert_eq!(
        disposition(&d, "p", "n2"),
        vec!["waiting: RestartCniPod on node n1 until its new CNI agent pod is Ready"]
    );
    assert!(d.nodes_in_flight.contains("n1"));

    // Ready: n2 goes.
    w.pods.retain(|p| p.key() != "kube-system/canal-a2");
    w.pods.push(agent("canal-a2", "n1", 1002, true));
    let d = w.step(1005);
    assert_eq!(d.cluster_actions.len(), 1);
    assert_eq!(d.cluster_actions[0].node, "n2");
    assert_eq!(d.cluster_actions[0].pod.name, "canal-b");
}

#[test]
fn several_overlay_findings_on_one_node_restart_its_agent_once() {
    let mut w = overlay_world();
    w.report_mut("n1").status.as_mut().unwrap().findings = vec![
        finding(Check::VtepMissing, "neigh 10.244.3.0 dev flannel.1"),
        finding(Check::VtepMissing, "fdb aa:bb dev flannel.1 dst 172.18.0.4"),
    ];
    let d = w.decide(1000);
    assert_eq!(d.cluster_actions.len(), 1);
    let got = disposition(&d, "p", "n1");
    assert!(got.iter().any(|s| s.starts_with("approved: RestartCniPod")));
    assert!(
        got.iter()
            .any(|s| s.starts_with("in flight: RestartCniPod"))
    );
}

#[test]
fn no_agent_pod_means_no_restart() {
    let mut w = overlay_world();
    w.pods.clear();
    let d = w.decide(1000);
    assert!(d.cluster_actions.is_empty());
    assert!(disposition(&d, "p", "n1")[0].starts_with("no CNI agent pod"));
}

#[test]
fn a_cni_restart_on_a_deleted_node_does_not_block_the_next() {
    let mut w = overlay_world();
    let d = w.step(1000);
    apply_cluster_actions(&mut w, &d, 1000);
    w.nodes.retain(|n| n.name != "n1");
    w.reports
        .retain(|r| r.metadata.name.as_deref() != Some("n1"));
    let d = w.step(1001);
    assert_eq!(d.cluster_actions.len(), 1);
    assert_eq!(d.cluster_actions[0].node, "n2");
}

fn duplicate_world() -> World {
    let mut w = World::new().with_node("n1", vec![]);
    w.pods = vec![
        pod("default", "web-1", "n1", "10.244.1.5", 100),
        pod("default", "web-2", "n1", "10.244.1.5", 50),
        pod("default", "web-3", "n1", "10.244.1.5", 200),
        pod("default", "other", "n1", "10.244.1.6", 1),
    ];
    w
}

#[test]
fn duplicate_ips_evict_controller_owned_pods_and_keep_the_oldest() {
    let w = duplicate_world();
    let d = w.decide(1000);
    let evicted: Vec<String> = d
        .cluster_actions
        .iter()
        .map(|a| a.pod.to_string())
        .collect();
    assert_eq!(evicted, vec!["default/web-1", "default/web-3"]);
    assert!(
        d.cluster_actions
            .iter()
            .all(|a| a.action == Action::RecreatePod)
    );
    assert!(
        d.cluster_actions
            .iter()
            .all(|a| a.target == "pod-ip 10.244.1.5")
    );
    assert_ne!(d.cluster_actions[0].id, d.cluster_actions[1].id);
    let f = &d.policies["p"].findings[0];
    assert_eq!(f.check, Check::DuplicatePodIp);
    assert_eq!(f.node, "n1");
    assert!(
        f.disposition
            .as_deref()
            .unwrap()
            .contains("keep default/web-2")
    );
}

#[test]
fn dual_stack_duplicates_are_one_finding_evicting_each_copy_once() {
    let mut w = duplicate_world();
    for (p, v6) in w
        .pods
        .iter_mut()
        .zip(["fd00::5", "fd00::5", "fd00::5", "fd00::6"])
    {
        Arc::make_mut(p).status.pod_ips.push(v6.parse().unwrap());
    }
    let d = w.decide(1000);
    let evicted: Vec<String> = d
        .cluster_actions
        .iter()
        .map(|a| a.pod.to_string())
        .collect();
    assert_eq!(evicted, vec!["default/web-1", "default/web-3"]);
    assert!(
        d.cluster_actions[0]
            .note
            .contains("also holds 10.244.1.5 and fd00::5; keep default/web-2"),
        "{}",
        d.cluster_actions[0].note
    );
    let findings = &d.policies["p"].findings;
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].target, "pod-ip 10.244.1.5");
}

#[test]
fn a_duplicate_on_another_node_is_evicted_only_when_that_node_passes_the_gates() {
    // web-3 holds the same IP on n2.
    let cross = || {
        let mut w = duplicate_world().with_node("n2", vec![]);
        w.pods[2] = pod("default", "web-3", "n2", "10.244.1.5", 200);
        w.policy().spec.remediation.max_concurrent_nodes = 2;
        w
    };
    let evicted = |d: &Decision| -> Vec<(String, String)> {
        d.cluster_actions
            .iter()
            .map(|a| (a.pod.to_string(), a.node.clone()))
            .collect()
    };

    let d = cross().decide(1000);
    assert_eq!(
        evicted(&d),
        [
            ("default/web-1".to_string(), "n1".to_string()),
            ("default/web-3".to_string(), "n2".to_string())
        ]
    );
    assert_eq!(
        d.nodes_in_flight.iter().cloned().collect::<Vec<_>>(),
        ["n1", "n2"]
    );

    // web-3 waits for n2, web-1 on n1 is evicted; the disposition says why.
    let waits = |w: World, why: &str| {
        let d = w.decide(1000);
        assert_eq!(
            evicted(&d),
            [("default/web-1".to_string(), "n1".to_string())]
        );
        let got = &disposition(&d, "p", "n1")[0];
        assert!(got.contains(why), "{got}");
    };
    let mut paused = cross();
    paused.nodes[1].paused = true;
    waits(paused, "default/web-3 on node n2: the node is paused");
    let mut one_node = cross();
    one_node.policy().spec.remediation.max_concurrent_nodes = 1;
    waits(
        one_node,
        "on node n2: 1 nodes in flight, maxConcurrentNodes 1",
    );
}

#[test]
fn bare_pods_are_reported_never_evicted() {
    let mut w = duplicate_world();
    for p in &mut w.pods {
        Arc::make_mut(p).metadata.owner_references = None;
    }
    let d = w.decide(1000);
    assert!(d.cluster_actions.is_empty());
    let disp = disposition(&d, "p", "n1");
    assert!(disp[0].starts_with("report-only: default/web-1, default/web-3 has no controller"));

    // Mixed: only the owned one is evicted.
    let mut w = duplicate_world();
    Arc::make_mut(&mut w.pods[0]).metadata.owner_references = None;
    let d = w.decide(1000);
    let evicted: Vec<String> = d
        .cluster_actions
        .iter()
        .map(|a| a.pod.to_string())
        .collect();
    assert_eq!(evicted, vec!["default/web-3"]);
    assert!(disposition(&d, "p", "n1")[0].contains("default/web-1 has no controller"));
}

#[test]
fn a_refused_eviction_is_retried_after_the_cooldown() {
    let mut w = duplicate_world();
    w.policy().spec.remediation.cooldown_seconds = 30;
    let d = w.step(1000);
    assert_eq!(d.cluster_actions.len(), 2);
    // The PodDisruptionBudget refused both evictions: recorded as Failed (429).
    for a in &d.cluster_actions {
        w.ledger.push(Entry {
            id: a.id.clone(),
            policy: a.policy.clone(),
            node: a.node.clone(),
            action: a.action,
            finding_id: a.finding_id.clone(),
            time: at(1000),
            outcome: Outcome::Failed,
            dry_run: false,
        });
    }
    let d = w.step(1010);
    assert!(d.cluster_actions.is_empty());
    assert!(disposition(&d, "p", "n1")[0].starts_with("cooldown until"));
    let d = w.step(1031);
    assert_eq!(d.cluster_actions.len(), 2, "retried");
}

#[test]
fn dry_run_duplicates_are_proposed_only() {
    let mut w = duplicate_world();
    w.policy().spec.mode = Mode::DryRun;
    let d = w.decide(1000);
    assert!(d.cluster_actions.is_empty());
    assert_eq!(
        disposition(&d, "p", "n1"),
        vec!["dry-run: would RecreatePod"]
    );
}

#[test]
fn orders_of_a_deleted_policy_are_withdrawn() {
    let mut w = World::new().with_node("n1", vec![arp("net.ipv4.conf.all.arp_ignore")]);
    w.step(1000);
    w.policies[0] = policy("q");
    let d = w.step(1001);
    assert_eq!(d.recorded.len(), 1);
    assert_eq!(d.recorded[0].policy, "p");
    assert!(
        d.recorded[0]
            .record
            .message
            .as_deref()
            .unwrap()
            .contains("policy was deleted")
    );
    // "q" (also Enforce) takes the finding over.
    assert_eq!(d.orders["n1"].len(), 1);
    assert_eq!(d.orders["n1"][0].policy, "q");
}

/// The message of the one record `d` holds for an order withdrawn on n1.
fn withdrawal(d: &Decision) -> String {
    assert_eq!(d.recorded.len(), 1, "{:?}", d.recorded);
    assert_eq!(d.recorded[0].record.outcome, Outcome::Skipped);
    d.recorded[0].record.message.clone().unwrap_or_default()
}

#[test]
fn orders_out_are_withdrawn_when_the_policy_goes_to_dry_run() {
    let mut w = World::new().with_node("n1", vec![arp("net.ipv4.conf.all.arp_ignore")]);
    let d = w.step(1000);
    assert_eq!(d.orders["n1"].len(), 1);
    w.policy().spec.mode = Mode::DryRun;
    let d = w.step(1001);
    assert!(withdrawal(&d).contains("switched to DryRun"));
    assert_eq!(
        d.orders["n1"],
        vec![],
        "nothing is left for node-fixer to run"
    );
    assert_eq!(disposition(&d, "p", "n1"), vec!["dry-run: would SetSysctl"]);
}

#[test]
fn an_answer_written_after_the_withdrawal_is_still_recorded_once() {
    let mut w = World::new().with_node("n1", vec![arp("net.ipv4.conf.all.arp_ignore")]);
    let d = w.step(1000);
    let orders = d.orders["n1"].clone();
    assert_eq!(orders.len(), 1);
    w.policy().spec.mode = Mode::DryRun;
    let d = w.step(1001);
    assert!(withdrawal(&d).contains("switched to DryRun"));
    // node-fixer had applied the order before it saw the withdrawal.
    w.answer_all("n1", &orders, Outcome::Applied, 1001);
    let d = w.step(1002);
    assert_eq!(d.recorded.len(), 1, "{:?}", d.recorded);
    let late = &d.recorded[0].record;
    assert_eq!(late.id, orders[0].id);
    assert_eq!(late.outcome, Outcome::Applied);
    assert_eq!((late.before.as_str(), late.after.as_str()), ("2", "0"));
    assert!(
        late.message
            .as_deref()
            .unwrap()
            .starts_with("answered after the order was withdrawn")
    );
    assert_eq!(
        d.orders["n1"],
        vec![],
        "the withdrawn order stays out of the spec"
    );
    // Recorded once.
    let d = w.step(1003);
    assert!(d.recorded.is_empty(), "{:?}", d.recorded);
    assert!(w.ledger.answered("n1", &orders[0].id));
}

#[test]
fn orders_out_are_withdrawn_when_their_action_is_no_longer_approved() {
    let mut w = World::new().with_node("n1", vec![arp("net.ipv4.conf.all.arp_ignore")]);
    let d = w.step(1000);
    assert_eq!(d.orders["n1"].len(), 1);
    w.policy()
        .spec
        .remediation
        .actions
        .retain(|a| *a != Action::SetSysctl);
    let d = w.step(1001);
    assert!(withdrawal(&d).contains("no longer approves"));
    assert_eq!(d.orders["n1"], vec![]);
}

#[test]
fn answers_recorded_before_a_restart_are_not_recorded_twice() {
    let mut w = World::new().with_node("n1", vec![arp("net.ipv4.conf.all.arp_ignore")]);
    let d = w.step(1000);
    let orders = d.orders["n1"].clone();
    w.answer_all("n1", &orders, Outcome::Applied, 1001);
    let d = w.step(1002);
    assert_eq!(d.recorded.len(), 1);
    // The spec still lists the order (the patch was lost): nothing is recorded again.
    w.report_mut("n1").spec.remediations = orders;
    let d = w.step(1003);
    assert!(d.recorded.is_empty());
    assert_eq!(d.orders["n1"], vec![]);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn never_more_nodes_in_flight_than_allowed(
            max in 1u32..4,
            findings in proptest::collection::vec(0usize..6, 0..8),
            paused in proptest::collection::vec(any::<bool>(), 8),
            steps in 1usize..5,
            answer in any::<bool>(),
        ) {
            let mut w = World::new();
            w.policy().spec.remediation.max_concurrent_nodes = max;
            w.policy().spec.remediation.cooldown_seconds = 0;
            let checks = sample_findings();
            for (i, &k) in findings.iter().enumerate() {
                let name = format!("n{i}");
                w = w.with_node(&name, vec![checks[k].clone()]);
                w.nodes[i].paused = paused[i];
                w.pods.push(agent(&format!("canal-{i}"), &name, 1, true));
            }
            let mut t = 1000;
            for _ in 0..steps {
                let d = w.step(t);
                prop_assert!(d.nodes_in_flight.len() <= max as usize);
                let with_orders = d.orders.values().filter(|o| !o.is_empty()).count();
                prop_assert!(with_orders <= max as usize);
                for a in &d.cluster_actions {
                    prop_assert!(!w.nodes.iter().any(|n| n.name == a.node && n.paused));
                }
                prop_assert!(d.cluster_actions.iter().filter(|a| a.action == Action::RestartCniPod).count() <= 1);
                apply_cluster_actions(&mut w, &d, t);
                if answer {
                    for (node, orders) in d.orders.clone() {
                        w.answer_all(&node, &orders, Outcome::Applied, t);
                    }
                }
                t += 5;
            }
        }
    }
}

#[test]
fn a_node_joins_and_the_peers_overlay_gaps_about_it_are_treated_at_once() {
    // seed-003: n3 joins; n1 and n2 lost their VTEP entry for it. Neither has any history:
    // the first peer's CNI agent restarts at once, the next one after it is Ready again.
    let gap = || {
        vec![finding(
            Check::VtepMissing,
            "neigh 10.244.3.0 dev flannel.1",
        )]
    };
    let mut w = World::new().with_node("n1", gap()).with_node("n2", gap());
    w.policy().spec.remediation.max_concurrent_nodes = 3;
    w.pods = vec![
        agent("canal-1", "n1", 10, true),
        agent("canal-2", "n2", 10, true),
    ];
    let w = w.with_node("n3", vec![arp("net.ipv4.conf.all.arp_ignore")]);
    let d = w.decide(5000);
    assert_eq!(d.cluster_actions.len(), 1);
    assert_eq!(d.cluster_actions[0].node, "n1");
    assert_eq!(d.cluster_actions[0].action, Action::RestartCniPod);
    // The new node's own finding goes at once too (no cooldown without history).
    assert_eq!(d.orders["n3"].len(), 1);
    assert!(disposition(&d, "p", "n2")[0].contains("n1 goes first"));
}

#[test]
fn an_order_id_is_never_reused_within_one_second() {
    let f = arp("net.ipv4.conf.all.arp_ignore");
    let mut w = World::new().with_node("n1", vec![f.clone()]);
    w.policy().spec.remediation.cooldown_seconds = 0;
    let d = w.step(1000);
    let first = d.orders["n1"][0].id.clone();
    let orders = d.orders["n1"].clone();
    w.answer_all("n1", &orders, Outcome::NoChange, 1000);
    w.rescan("n1", 1000, vec![]);
    w.step(1000);
    // Back in the same second, seen by a scan after the answer.
    let mut again = f.clone();
    again.last_seen = Some(Time(at(1001)));
    w.rescan("n1", 1001, vec![again]);
    let d = w.step(1000);
    assert_eq!(d.orders["n1"].len(), 1);
    assert_eq!(d.orders["n1"][0].id, format!("{first}-1"));
}

/// Decide with `memo` and without; the two must agree in everything but the reuse count.
/// Without node views the memo may decide by delta.
fn decide_both(w: &World, now: i64, memo: &mut Memo, node_views: bool) -> Decision {
    let inputs = Inputs {
        policies: &w.policies,
        reports: &w.reports,
        nodes: &w.nodes,
        pods: &w.pods,
        ledger: &w.ledger,
        now: at(now),
        node_views,
    };
    let full = decide(&inputs);
    let mut with_memo = decide_with(&inputs, memo);
    assert_eq!(full.reused_nodes, 0);
    let reused = std::mem::take(&mut with_memo.reused_nodes);
    assert_eq!(
        format!("{with_memo:?}"),
        format!("{full:?}"),
        "at t={now}, {reused} nodes reused, delta: {}",
        memo.last_was_delta()
    );
    with_memo.reused_nodes = reused;
    with_memo
}

#[test]
fn decisions_with_the_memo_equal_full_decisions_pass_after_pass() {
    memo_scenario(true);
}

#[test]
fn delta_decisions_equal_full_decisions_pass_after_pass() {
    memo_scenario(false);
}

/// The same changes, pass after pass, decided with a memo and without (with node views, every
/// pass walks the nodes; without, a pass over the same nodes and policies is a delta).
fn memo_scenario(node_views: bool) {
    let mut w = World::new()
        .with_node("n1", vec![arp("net.ipv4.conf.all.arp_ignore")])
        .with_node(
            "n2",
            vec![
                finding(Check::ProxyArpOff, "net.ipv4.conf.eth0.proxy_arp"),
                arp("net.ipv4.conf.eth0.arp_ignore"),
            ],
        )
        .with_node("n3", vec![arp("net.ipv4.conf.all.arp_ignore")])
        .with_node(
            "n4",
            vec![finding(Check::ProxyArpOff, "net.ipv4.conf.eth1.proxy_arp")],
        );
    w.nodes[2].paused = true;
    let decide_both = |w: &World, now: i64, memo: &mut Memo| {
        let d = decide_both(w, now, memo, node_views);
        // Only the first pass and the ones after a change of policy walk without node views.
        if node_views || now == 200 || now == 4003 || now == 4005 || now == 4007 || now == 4010 {
            assert!(!memo.last_was_delta(), "at t={now}");
        } else {
            assert!(memo.last_was_delta(), "at t={now}");
        }
        d
    };
    let mut memo = Memo::default();

    // n1 is approved (one node at a time), n2 waits for the limit: neither is kept. n3 is
    // paused and n4 report-only: kept, and reused while nothing changes.
    let d = decide_both(&w, 200, &mut memo);
    assert_eq!(d.reused_nodes, 0);
    w.ledger.apply(&d);
    let orders = d.orders["n1"].clone();
    assert_eq!(memo.kept_nodes(), 2);
    let d = decide_both(&w, 201, &mut memo);
    assert_eq!(d.reused_nodes, 2);
    w.ledger.apply(&d);

    // A changed report and a resumed node are decided again.
    w.rescan(
        "n4",
        202,
        vec![finding(Check::ProxyArpOff, "net.ipv4.conf.eth2.proxy_arp")],
    );
    w.nodes[2].paused = false;
    let d = decide_both(&w, 202, &mut memo);
    assert_eq!(d.reused_nodes, 0);
    assert!(
        disposition(&d, "p", "n4")
            .iter()
            .all(|s| s.starts_with("report-only"))
    );
    w.ledger.apply(&d);

    // n1's order is answered: it leaves flight, the next node is approved; n1 stays out of
    // the memo while its fix is in the ledger.
    w.answer_all("n1", &orders, Outcome::Applied, 203);
    w.rescan("n1", 204, Vec::new());
    let d = decide_both(&w, 205, &mut memo);
    w.ledger.apply(&d);
    for now in [206, 300, 4000] {
        let d = decide_both(&w, now, &mut memo);
        w.ledger.apply(&d);
    }

    // Duplicate pod IPs, then the same pods again.
    w.pods = vec![
        pod("default", "a", "n4", "10.0.0.9", 1),
        pod("default", "b", "n4", "10.0.0.9", 2),
    ];
    for now in [4001, 4002] {
        let d = decide_both(&w, now, &mut memo);
        w.ledger.apply(&d);
    }

    // A policy change decides every node again; under DryRun every quiet node is kept but
    // n4, which holds a duplicate pod IP (decided against the pods in every pass).
    w.policy().spec.mode = Mode::DryRun;
    let d = decide_both(&w, 4003, &mut memo);
    assert_eq!(d.reused_nodes, 0);
    w.ledger.apply(&d);
    let d = decide_both(&w, 4004, &mut memo);
    assert_eq!(d.reused_nodes, 1, "n3 reused");
    // A label that the policy's selector no longer matches.
    w.policy().spec.node_selector = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
            match_labels: Some(BTreeMap::from([("pool".into(), "a".into())])),
            ..Default::default()
        },
    );
    w.nodes[3].labels.insert("pool".into(), "a".into());
    for now in [4005, 4006] {
        let d = decide_both(&w, now, &mut memo);
        w.ledger.apply(&d);
    }
    // A selector that cannot be evaluated on the labelled node (`In` without values): the
    // error is reported in every pass, so that node's selection is never kept.
    w.policy().spec.node_selector = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
            match_labels: Some(BTreeMap::from([("pool".into(), "a".into())])),
            match_expressions: Some(vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement {
                    key: "zone".into(),
                    operator: "In".into(),
                    values: Some(Vec::new()),
                },
            ]),
        },
    );
    for now in [4007, 4008, 4009] {
        let d = decide_both(&w, now, &mut memo);
        assert!(d.policies["p"].selector_error.is_some(), "at t={now}");
        w.ledger.apply(&d);
    }
    // The same reports listed in another order: each node still finds its own.
    w.policy().spec.node_selector = None;
    decide_both(&w, 4010, &mut memo);
    w.reports.reverse();
    let d = decide_both(&w, 4011, &mut memo);
    assert_eq!(d.reused_nodes, 1, "n3 reused");
}

#[test]
fn a_delta_lists_a_policys_first_findings_in_node_order_as_a_full_pass_does() {
    // 30 nodes of 10 findings each under DryRun: the status keeps the first 200, by node.
    let many = |node: usize, round: usize| -> Vec<Finding> {
        (0..10)
            .map(|i| arp(&format!("net.ipv4.conf.veth{node}x{i}x{round}.arp_ignore")))
            .collect()
    };
    let mut w = World::new();
    w.policy().spec.mode = Mode::DryRun;
    for n in 0..30 {
        w = w.with_node(&format!("n{n:02}"), many(n, 0));
    }
    let mut memo = Memo::default();
    decide_both(&w, 1000, &mut memo, false);
    // One node changes at a time: before the cut, at it, after it; one loses its findings.
    for (round, node) in [(1, 3), (2, 19), (3, 20), (4, 25), (5, 0)] {
        let findings = if round == 5 {
            Vec::new()
        } else {
            many(node, round)
        };
        w.rescan(&format!("n{node:02}"), 1000 + round as i64, findings);
        let d = decide_both(&w, 1000 + round as i64, &mut memo, false);
        assert!(memo.last_was_delta(), "round {round}");
        assert_eq!(d.reused_nodes, 29, "round {round}");
        let outcome = &d.policies["p"];
        assert_eq!(outcome.findings.len(), 200);
        assert_eq!(outcome.total_findings, if round == 5 { 290 } else { 300 });
    }
}

mod memo_properties {
    use super::*;
    use proptest::prelude::*;

    /// One change to the world between two passes.
    #[derive(Clone, Debug)]
    enum Change {
        Rescan(usize, Vec<usize>),
        TogglePause(usize),
        TogglePool(usize),
        DuplicateIp(usize),
        ClearPods,
        AnswerOrders,
        ToggleMode,
        ReverseReports,
        Unreport(usize),
        RemoveNode(usize),
        AddNode(Vec<usize>),
        Later(i64),
    }

    fn change() -> impl Strategy<Value = Change> {
        let findings = || proptest::collection::vec(0usize..6, 0..4);
        prop_oneof![
            (0usize..12, findings()).prop_map(|(n, f)| Change::Rescan(n, f)),
            (0usize..12).prop_map(Change::TogglePause),
            (0usize..12).prop_map(Change::TogglePool),
            (0usize..12).prop_map(Change::DuplicateIp),
            Just(Change::ClearPods),
            Just(Change::AnswerOrders),
            Just(Change::ToggleMode),
            Just(Change::ReverseReports),
            (0usize..12).prop_map(Change::Unreport),
            (0usize..12).prop_map(Change::RemoveNode),
            findings().prop_map(Change::AddNode),
            (1i64..4000).prop_map(Change::Later),
        ]
    }

    fn checks(kinds: &[usize]) -> Vec<Finding> {
        let all = sample_findings();
        let mut out: Vec<Finding> = kinds.iter().map(|&k| all[k].clone()).collect();
        out.dedup_by(|a, b| a.id == b.id);
        out
    }

    /// The policies' counters as the node views (built apart from them) add up: selected,
    /// reporting, healthy, and the findings per check.
    fn counters_from_views(
        d: &Decision,
    ) -> BTreeMap<String, (u32, u32, u32, BTreeMap<Check, u32>)> {
        let mut out: BTreeMap<String, (u32, u32, u32, BTreeMap<Check, u32>)> = d
            .policies
            .keys()
            .map(|p| (p.clone(), Default::default()))
            .collect();
        for view in d.node_views.values() {
            for policy in &view.policies {
                let c = out.entry(policy.clone()).or_default();
                c.0 += 1;
                if view.reporting {
                    c.1 += 1;
                    if !view.findings.iter().any(|(owner, _)| owner == policy) {
                        c.2 += 1;
                    }
                }
            }
            for (owner, finding) in &view.findings {
                *out.entry(owner.clone())
                    .or_default()
                    .3
                    .entry(finding.check)
                    .or_default() += 1;
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]
        #[test]
        fn decisions_with_the_memo_equal_full_passes_whatever_changes(
            start in proptest::collection::vec(proptest::collection::vec(0usize..6, 0..4), 1..8),
            changes in proptest::collection::vec((change(), any::<bool>()), 1..12),
        ) {
            // Two policies: "a" enforces on the nodes labelled pool=a, "b" only reports on
            // every node (it owns what "a" does not select).
            let mut w = World::new();
            w.policies = vec![policy("a"), policy("b")];
            Arc::make_mut(&mut w.policies[0]).spec.node_selector = Some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
                    match_labels: Some(BTreeMap::from([("pool".into(), "a".into())])),
                    ..Default::default()
                },
            );
            Arc::make_mut(&mut w.policies[0]).spec.remediation.max_concurrent_nodes = 2;
            Arc::make_mut(&mut w.policies[1]).spec.mode = Mode::DryRun;
            let mut next = 0;
            for kinds in &start {
                w = w.with_node(&format!("n{next:02}"), checks(kinds));
                if next % 2 == 0 {
                    w.nodes[next].labels.insert("pool".into(), "a".into());
                }
                // A paused node of pool a is kept with findings only "a" owns, and counts as
                // healthy for "b".
                w.nodes[next].paused = next % 4 == 0;
                next += 1;
            }
            let mut memo = Memo::default();
            let mut t = 1000;
            let d = decide_both(&w, t, &mut memo, false);
            w.ledger.apply(&d);
            for (change, views) in changes {
                let name = |i: usize, w: &World| w.nodes.get(i % w.nodes.len().max(1)).map(|n| n.name.clone());
                match change {
                    Change::Rescan(i, kinds) => {
                        if let Some(n) = name(i, &w) {
                            w.rescan(&n, t, checks(&kinds));
                        }
                    }
                    Change::TogglePause(i) => {
                        let len = w.nodes.len().max(1);
                        if let Some(n) = w.nodes.get_mut(i % len) {
                            n.paused = !n.paused;
                        }
                    }
                    Change::TogglePool(i) => {
                        let len = w.nodes.len().max(1);
                        if let Some(n) = w.nodes.get_mut(i % len)
                            && n.labels.remove("pool").is_none()
                        {
                            n.labels.insert("pool".into(), "a".into());
                        }
                    }
                    Change::DuplicateIp(i) => {
                        if let Some(n) = name(i, &w) {
                            let ip = format!("10.0.{i}.9");
                            w.pods.push(pod("default", &format!("{n}-x"), &n, &ip, 1));
                            w.pods.push(pod("default", &format!("{n}-y"), &n, &ip, 2));
                        }
                    }
                    Change::ClearPods => w.pods.clear(),
                    Change::AnswerOrders => {
                        let out: Vec<(String, Vec<RemediationOrder>)> = w
                            .ledger
                            .pending_nodes()
                            .map(|(n, o)| (n.to_string(), o.to_vec()))
                            .collect();
                        for (n, orders) in out {
                            if w.reports.iter().any(|r| r.metadata.name.as_deref() == Some(n.as_str())) {
                                w.answer_all(&n, &orders, Outcome::Applied, t);
                            }
                        }
                    }
                    Change::ToggleMode => {
                        let b = Arc::make_mut(&mut w.policies[1]);
                        b.spec.mode = if b.spec.mode == Mode::DryRun { Mode::Enforce } else { Mode::DryRun };
                    }
                    Change::ReverseReports => w.reports.reverse(),
                    Change::Unreport(i) => {
                        if let Some(n) = name(i, &w) {
                            w.report_mut(&n).status = None;
                        }
                    }
                    Change::RemoveNode(i) => {
                        if let Some(n) = name(i, &w) {
                            w.nodes.retain(|x| x.name != n);
                            w.reports.retain(|r| r.metadata.name.as_deref() != Some(n.as_str()));
                        }
                    }
                    Change::AddNode(kinds) => {
                        w = w.with_node(&format!("n{next:02}"), checks(&kinds));
                        next += 1;
                    }
                    Change::Later(by) => t += by,
                }
                t += 1;
                // The counters (kept nodes' sums and the others') against the node views.
                let viewed = decide(&Inputs {
                    policies: &w.policies,
                    reports: &w.reports,
                    nodes: &w.nodes,
                    pods: &w.pods,
                    ledger: &w.ledger,
                    now: at(t),
                    node_views: true,
                });
                let counted: BTreeMap<String, (u32, u32, u32, BTreeMap<Check, u32>)> = viewed
                    .policies
                    .iter()
                    .map(|(p, o)| {
                        (p.clone(), (o.nodes_selected, o.nodes_reporting, o.nodes_healthy, o.open_by_check.clone()))
                    })
                    .collect();
                prop_assert_eq!(counted, counters_from_views(&viewed));
                let d = decide_both(&w, t, &mut memo, views);
                w.ledger.apply(&d);
                apply_cluster_actions(&mut w, &d, t);
            }
        }
    }
}
