//! netheal's own parts fail while it heals, on the real control plane: an agent killed with
//! SIGKILL between receiving an order and answering it; the leading operator killed with a
//! second replica standing by; kube-apiserver restarted and etcd stopped for 30 s; a node cut
//! off from the API server for 60 s. Each ends with the fault fixed exactly once, every order
//! answered exactly once, and the limits kept. Each prints its figures as `figure:` lines.

use netheal_crds::{Action, Check, Mode, NetworkHealthPolicy, NodeNetworkReport, Outcome};
use netheal_e2e::cluster::PodOptions;
use netheal_e2e::harness::expect::{action_records, nodes_in_flight};
use netheal_e2e::harness::policies::{POLICY, scenario_policy};
use netheal_e2e::harness::{Check as Wait, Harness, HarnessOptions, api, read_sysctl, wait_for};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const REJECT_ALL: &str = "-A INPUT -j REJECT --reject-with icmp-host-prohibited";

/// One pod on each of `node1..=nodeN` (a fault's symptom is probed between pods).
async fn pods_on(h: &Harness, nodes: usize) {
    for i in 1..=nodes {
        h.add_pod(&format!("node{i}"), PodOptions::bridge())
            .await
            .expect("a pod");
    }
}

fn figure(name: &str, value: f64, unit: &str) {
    println!("figure: fault.{name} {value:.2} {unit}");
}

/// Every order id answered at most once in every report, and every action recorded at most
/// once (by id) in the policy: nothing was applied or answered twice.
fn assert_nothing_twice(policy: &NetworkHealthPolicy, reports: &[NodeNetworkReport]) {
    for r in reports {
        let mut seen = BTreeSet::new();
        for result in r.status.iter().flat_map(|s| s.results.iter()) {
            assert!(
                seen.insert(result.id.clone()),
                "order {} answered twice on {:?}",
                result.id,
                r.metadata.name
            );
        }
    }
    let mut seen = BTreeSet::new();
    for a in policy.status.iter().flat_map(|s| s.actions.iter()) {
        if a.outcome != Outcome::Skipped {
            assert!(
                seen.insert((a.node.clone(), a.id.clone())),
                "action {} on {} recorded twice",
                a.id,
                a.node
            );
        }
    }
}

/// The applied (not dry-run) records of `action` on `node`.
fn applied(policy: &NetworkHealthPolicy, node: &str, action: Action) -> usize {
    action_records(policy, node, action)
        .into_iter()
        .filter(|a| a.outcome == Outcome::Applied && !a.dry_run)
        .count()
}

async fn exec_in_node(h: &Harness, node: &'static str, program: &'static str, rule: &'static str) {
    h.with_cluster(move |c| {
        let args: Vec<&str> = rule.split(' ').collect();
        Ok(c.node(node)?.netns.exec(program, &args)?)
    })
    .await
    .expect("the rule is added");
}

async fn has_rule(
    h: &Harness,
    node: &'static str,
    program: &'static str,
    rule: &'static str,
) -> bool {
    h.with_cluster(move |c| {
        let out = c.node(node)?.netns.exec(program, &[])?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.trim() == rule))
    })
    .await
    .expect("iptables-save in the node")
}

/// Hold the xtables lock at `path` (as kube-proxy does while it writes) until dropped.
fn hold_lock(path: &std::path::Path) -> nix::fcntl::Flock<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .expect("the lock file opens");
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).expect("the lock is held")
}

/// The agent is killed (SIGKILL) while it executes an order: its `iptables-legacy-restore`
/// waits for the xtables lock, which the test holds. Restarted, it executes the order once and
/// answers it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_between_order_and_answer_applies_it_once_after_restart() {
    let lock = std::env::temp_dir().join(format!("netheal-f1-xtables-{}.lock", std::process::id()));
    let mut opts = HarnessOptions::new("f1", 2);
    opts.agent_env = vec![("XTABLES_LOCKFILE".into(), lock.display().to_string())];
    let mut h = Harness::start(opts).await.unwrap();
    h.create_policy(POLICY, scenario_policy(Mode::DryRun))
        .await
        .unwrap();
    // A legacy-backend REJECT: the backend whose restore takes the xtables lock.
    exec_in_node(&h, "node2", "iptables-legacy", REJECT_ALL).await;
    h.expect_proposed(POLICY, "node2", Check::RejectRule, Action::RemoveRejectRule)
        .await
        .unwrap();

    let held = hold_lock(&lock);
    h.set_mode(POLICY, Mode::Enforce).await.unwrap();
    let started = Instant::now();
    wait_for(
        "node2's agent to run iptables-legacy-restore (waiting for the lock)",
        Duration::from_secs(60),
        || {
            let children = h.agent_children("node2");
            async move {
                if children.iter().any(|c| c.starts_with("iptables-legac")) {
                    Wait::Done(())
                } else {
                    Wait::NotYet(format!("{children:?}"))
                }
            }
        },
    )
    .await
    .unwrap();
    let report = h.report("node2").await.unwrap().unwrap();
    let order = report
        .spec
        .remediations
        .iter()
        .find(|o| o.action == Action::RemoveRejectRule)
        .cloned()
        .expect("the order the agent is executing");
    h.kill_agent("node2");
    drop(held);
    let report = h.report("node2").await.unwrap().unwrap();
    assert!(
        report
            .status
            .iter()
            .flat_map(|s| s.results.iter())
            .all(|r| r.id != order.id),
        "killed before it answered"
    );
    assert!(has_rule(&h, "node2", "iptables-legacy-save", REJECT_ALL).await);

    let restarted = Instant::now();
    h.start_agent("node2").await.unwrap();
    h.expect_applied(POLICY, "node2", Action::RemoveRejectRule, |_| true)
        .await
        .unwrap();
    figure(
        "agent_sigkill.restart_to_applied",
        restarted.elapsed().as_secs_f64(),
        "s",
    );
    figure(
        "agent_sigkill.fault_to_applied",
        started.elapsed().as_secs_f64(),
        "s",
    );
    h.expect_finding_cleared("node2", Check::RejectRule)
        .await
        .unwrap();
    assert!(!has_rule(&h, "node2", "iptables-legacy-save", REJECT_ALL).await);
    let policy = h.policy(POLICY).await.unwrap();
    let report = h.report("node2").await.unwrap().unwrap();
    assert_eq!(applied(&policy, "node2", Action::RemoveRejectRule), 1);
    let answers: Vec<_> = report
        .status
        .iter()
        .flat_map(|s| s.results.iter())
        .filter(|r| r.id == order.id)
        .collect();
    assert_eq!(answers.len(), 1, "answered exactly once: {answers:?}");
    assert_eq!(answers[0].outcome, Outcome::Applied, "{answers:?}");
    assert_nothing_twice(&policy, &[report]);
    let _ = std::fs::remove_file(&lock);
}

/// What the sampler saw in the reports: the most nodes with an order in flight at once, and
/// every order id per (node, finding).
#[derive(Clone, Debug, Default)]
struct Samples {
    max_in_flight: usize,
    orders: BTreeMap<String, BTreeSet<String>>,
}

/// Two operator replicas; the leader is killed (SIGKILL) right after it issued an order. The
/// standby takes over within the lease time, issues no order twice, keeps one node in flight
/// at most, and keeps the cooldown of a fix the dead leader recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_killed_mid_pass_hands_over_with_every_limit_kept() {
    const COOLDOWN: u32 = 40;
    let mut h = Harness::start(HarnessOptions::new("f2", 3)).await.unwrap();
    pods_on(&h, 3).await;
    h.start_standby_operator().await.unwrap();
    let mut spec = scenario_policy(Mode::Enforce);
    spec.remediation.cooldown_seconds = COOLDOWN;
    spec.remediation.max_concurrent_nodes = 1;
    h.create_policy(POLICY, spec).await.unwrap();

    // A fix recorded by the first leader.
    h.with_cluster(|c| c.inject_ip_forward_off("node1"))
        .await
        .unwrap();
    let first = h
        .expect_applied(POLICY, "node1", Action::SetSysctl, |_| true)
        .await
        .unwrap();
    let first_fix = first[0].time.0;
    let leader = h.lease_holder().await.unwrap().expect("a leader");

    // Sample every report continuously: nodes in flight, and every order id per finding.
    let samples: Arc<Mutex<Samples>> = Arc::default();
    let sampler = {
        let (client, samples) = (h.client().clone(), samples.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(reports) = api::reports(&client).await {
                    let mut s = samples.lock().unwrap();
                    s.max_in_flight = s.max_in_flight.max(nodes_in_flight(&reports).len());
                    for r in &reports {
                        for o in &r.spec.remediations {
                            s.orders
                                .entry(format!("{:?}/{}", r.metadata.name, o.finding_id))
                                .or_default()
                                .insert(o.id.clone());
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    for node in ["node2", "node3"] {
        h.with_cluster(move |c| c.inject_ip_forward_off(node))
            .await
            .unwrap();
    }
    wait_for(
        "an order for node2 or node3",
        Duration::from_secs(60),
        || {
            let samples = samples.clone();
            async move {
                let s = samples.lock().unwrap();
                if s.orders
                    .keys()
                    .any(|k| k.contains("node2") || k.contains("node3"))
                {
                    Wait::Done(())
                } else {
                    Wait::NotYet(format!("{:?}", s.orders))
                }
            }
        },
    )
    .await
    .unwrap();
    let killed = h.kill_leader().await.unwrap();
    assert_eq!(killed, leader);
    let killed_at = Instant::now();
    // node1 breaks again at once: inside the cooldown the dead leader started.
    h.with_cluster(|c| c.inject_ip_forward_off("node1"))
        .await
        .unwrap();
    let new_leader = wait_for("a new leader", Duration::from_secs(40), || async {
        match h.lease_holder().await {
            Ok(Some(holder)) if holder != leader => Wait::Done(holder),
            other => Wait::NotYet(format!("{other:?}")),
        }
    })
    .await
    .unwrap();
    let takeover = killed_at.elapsed();
    figure("leader_kill.takeover", takeover.as_secs_f64(), "s");
    assert!(
        takeover < Duration::from_secs(25),
        "within the lease time: {takeover:?}"
    );
    assert_ne!(new_leader, leader);

    for node in ["node2", "node3"] {
        h.expect_applied(POLICY, node, Action::SetSysctl, |_| true)
            .await
            .unwrap();
    }
    figure(
        "leader_kill.kill_to_all_healed",
        killed_at.elapsed().as_secs_f64(),
        "s",
    );
    // node1 is fixed again only once its cooldown is over.
    let second = h
        .expect_applied(POLICY, "node1", Action::SetSysctl, |a| a.time.0 > first_fix)
        .await
        .unwrap();
    let gap = second[0].time.0.duration_since(first_fix).as_secs();
    figure("leader_kill.node1_refix_after", gap as f64, "s");
    assert!(
        gap >= i64::from(COOLDOWN),
        "the cooldown of the dead leader's fix holds: fixed again after {gap}s"
    );
    sampler.abort();
    let Samples {
        max_in_flight,
        orders,
    } = samples.lock().unwrap().clone();
    assert!(
        max_in_flight <= 1,
        "maxConcurrentNodes 1 held: {max_in_flight} in flight"
    );
    for (finding, ids) in &orders {
        assert!(
            ids.len() <= 2,
            "{finding}: orders {ids:?} (node1 is fixed twice, the others once)"
        );
        if !finding.contains("node1") {
            assert_eq!(ids.len(), 1, "{finding}: one order, not reissued: {ids:?}");
        }
    }
    let policy = h.policy(POLICY).await.unwrap();
    for node in ["node2", "node3"] {
        assert_eq!(applied(&policy, node, Action::SetSysctl), 1, "{node}");
    }
    assert_eq!(applied(&policy, "node1", Action::SetSysctl), 2);
    assert_nothing_twice(&policy, &api::reports(h.client()).await.unwrap());
}

/// kube-apiserver restarted (SIGKILL, started again) right after a fault, then etcd stopped
/// for 30 s right after another: the agents and the operator reconnect, each fault is fixed
/// once, and a third fault after both is healed as fast as ever (the watches are live).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_restart_and_etcd_stop_during_healing_lose_nothing() {
    let mut h = Harness::start(HarnessOptions::new("f3", 2)).await.unwrap();
    pods_on(&h, 2).await;
    h.create_policy(POLICY, scenario_policy(Mode::Enforce))
        .await
        .unwrap();

    h.with_cluster(|c| c.inject_ip_forward_off("node1"))
        .await
        .unwrap();
    let fault = Instant::now();
    let down = h.restart_apiserver().await.unwrap();
    figure("apiserver_restart.unavailable", down.as_secs_f64(), "s");
    h.expect_applied(POLICY, "node1", Action::SetSysctl, |_| true)
        .await
        .unwrap();
    figure(
        "apiserver_restart.fault_to_applied",
        fault.elapsed().as_secs_f64(),
        "s",
    );
    assert_eq!(
        read_sysctl(&h.node_netns("node1"), "net/ipv4/ip_forward").unwrap(),
        "1"
    );

    h.with_cluster(|c| c.inject_reject_rules("node2"))
        .await
        .unwrap();
    h.controlplane_mut().pause_etcd(true).unwrap();
    let stopped = Instant::now();
    tokio::time::sleep(Duration::from_secs(30)).await;
    h.controlplane_mut().pause_etcd(false).unwrap();
    h.expect_applied(POLICY, "node2", Action::RemoveRejectRule, |_| true)
        .await
        .unwrap();
    figure(
        "etcd_stop.resume_to_applied",
        stopped.elapsed().as_secs_f64() - 30.0,
        "s",
    );
    h.expect_finding_cleared("node2", Check::RejectRule)
        .await
        .unwrap();

    // Both reconnected: a new fault is healed in the usual time.
    h.with_cluster(|c| c.inject_ip_forward_off("node2"))
        .await
        .unwrap();
    let again = Instant::now();
    h.expect_applied(POLICY, "node2", Action::SetSysctl, |_| true)
        .await
        .unwrap();
    figure(
        "after_outages.fault_to_applied",
        again.elapsed().as_secs_f64(),
        "s",
    );
    let policy = h.policy(POLICY).await.unwrap();
    assert_eq!(applied(&policy, "node1", Action::SetSysctl), 1);
    assert_eq!(
        applied(&policy, "node2", Action::RemoveRejectRule),
        2,
        "INPUT and FORWARD"
    );
    assert_eq!(applied(&policy, "node2", Action::SetSysctl), 1);
    assert_nothing_twice(&policy, &api::reports(h.client()).await.unwrap());
    assert!(h.dead_processes().is_empty(), "{:?}", h.dead_processes());
}

/// One node cut off from the API server for 60 s: it keeps scanning (the fault it saw during
/// the cut is in its report with that time), applies no fix without a live order, and once it
/// is back the fault is reported and fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_for_60s_fixes_nothing_then_catches_up() {
    let mut opts = HarnessOptions::new("f4", 2);
    opts.relayed_agents = vec!["node2".into()];
    let h = Harness::start(opts).await.unwrap();
    pods_on(&h, 2).await;
    h.create_policy(POLICY, scenario_policy(Mode::Enforce))
        .await
        .unwrap();
    h.wait_report(
        "node2",
        "node2's first report",
        Duration::from_secs(30),
        |r| r.status.as_ref()?.last_scan_time.clone(),
    )
    .await
    .unwrap();

    h.cut_agent("node2", true).unwrap();
    let cut = Instant::now();
    let cut_at = k8s_openapi::jiff::Timestamp::now();
    h.with_cluster(|c| c.inject_ip_forward_off("node2"))
        .await
        .unwrap();
    let netns = h.node_netns("node2");
    while cut.elapsed() < Duration::from_secs(60) {
        assert_eq!(
            read_sysctl(&netns, "net/ipv4/ip_forward").unwrap(),
            "0",
            "no fix without a live order ({:?} into the cut)",
            cut.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let report = h.report("node2").await.unwrap().unwrap();
    assert!(
        netheal_e2e::harness::expect::findings_of(&report, Check::IpForward).is_empty(),
        "the API server has not heard of the fault yet"
    );
    h.cut_agent("node2", false).unwrap();
    let back = Instant::now();
    let finding = h
        .wait_report(
            "node2",
            "the fault in node2's report",
            Duration::from_secs(60),
            |r| {
                netheal_e2e::harness::expect::findings_of(r, Check::IpForward)
                    .first()
                    .map(|f| (*f).clone())
            },
        )
        .await
        .unwrap();
    figure(
        "node_cut.reconnect_to_reported",
        back.elapsed().as_secs_f64(),
        "s",
    );
    let first_seen = finding.first_seen.expect("firstSeen").0;
    assert!(
        first_seen.as_second() >= cut_at.as_second()
            && first_seen.as_second() - cut_at.as_second() < 55,
        "seen during the cut (cut at {cut_at}, first seen {first_seen}): it kept scanning"
    );
    // The agent's watches come back on their own backoff (client-go's: up to 30 s after a
    // long outage), and so do its orders.
    h.wait_policy(
        POLICY,
        "the fix on node2 after the reconnection",
        Duration::from_secs(90),
        |p| (applied(p, "node2", Action::SetSysctl) > 0).then_some(()),
    )
    .await
    .unwrap();
    figure(
        "node_cut.reconnect_to_applied",
        back.elapsed().as_secs_f64(),
        "s",
    );
    assert_eq!(read_sysctl(&netns, "net/ipv4/ip_forward").unwrap(), "1");
    let policy = h.policy(POLICY).await.unwrap();
    assert_eq!(applied(&policy, "node2", Action::SetSysctl), 1);
    assert_nothing_twice(&policy, &api::reports(h.client()).await.unwrap());
}
