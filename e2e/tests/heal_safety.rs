//! Safety before speed: a fix that someone keeps undoing ends in `Flapping` after
//! `flapLimit.fixes` fixes and netheal stops fighting; `maxConcurrentNodes: 1` never has two
//! nodes with an order in flight; a paused Node is left alone. (kube-proxy's REJECT rules
//! surviving is asserted in `heal_reject`.)

use netheal_crds::conditions::types::FLAPPING;
use netheal_crds::{Action, Check, Mode};
use netheal_e2e::cluster::PodOptions;
use netheal_e2e::harness::expect::{action_records, nodes_in_flight};
use netheal_e2e::harness::policies::{POLICY, scenario_policy};
use netheal_e2e::harness::writer::CompetingWriter;
use netheal_e2e::harness::{Harness, HarnessOptions, api, ping, read_sysctl};
use std::collections::BTreeMap;
use std::time::Duration;

/// Applied (not dry-run) IpForward fixes on `node`, by target. `net.ipv4.ip_forward` and
/// `net.ipv4.conf.all.forwarding` are one kernel variable and one finding, with one flap count.
fn applied_ip_forward_fixes(
    p: &netheal_crds::NetworkHealthPolicy,
    node: &str,
) -> BTreeMap<String, usize> {
    let mut by_target = BTreeMap::new();
    for r in action_records(p, node, Action::SetSysctl) {
        if r.check == Some(Check::IpForward)
            && !r.dry_run
            && r.outcome == netheal_crds::Outcome::Applied
        {
            *by_target.entry(r.target.clone()).or_insert(0) += 1;
        }
    }
    by_target
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_competing_writer_ends_in_flapping_and_netheal_stops_fighting() {
    let h = Harness::start(HarnessOptions::new("h8", 2)).await.unwrap();
    h.add_pod("node1", PodOptions::bridge()).await.unwrap();
    h.add_pod("node2", PodOptions::bridge()).await.unwrap();
    let mut spec = scenario_policy(Mode::Enforce);
    spec.remediation.flap_limit.fixes = 3;
    let limit = spec.remediation.flap_limit.fixes as usize;
    h.create_policy(POLICY, spec).await.unwrap();

    // It writes the switch's other name: netheal still sees one finding and one flap count.
    let writer = CompetingWriter::start(
        &h.node_netns("node2"),
        "net/ipv4/conf/all/forwarding",
        "0",
        Duration::from_secs(1),
    );
    let condition = h
        .wait_policy(
            POLICY,
            "a Flapping condition",
            Duration::from_secs(90),
            |p| {
                p.status
                    .as_ref()?
                    .conditions
                    .iter()
                    .find(|c| c.type_ == FLAPPING && c.status == "True")
                    .cloned()
            },
        )
        .await
        .unwrap();
    assert!(!condition.message.is_empty());
    let fixes = applied_ip_forward_fixes(&h.policy(POLICY).await.unwrap(), "node2");
    let flapping: Vec<&String> = fixes.keys().collect();
    assert_eq!(
        flapping,
        ["net.ipv4.ip_forward"],
        "one switch, one target: {fixes:?}"
    );
    assert!(
        condition.message.contains("net.ipv4.ip_forward"),
        "the condition names the fixed target: {}",
        condition.message
    );
    let total: usize = fixes.values().sum();
    assert!(
        (1..=limit).contains(&total),
        "{total} IpForward fixes recorded in all; the limit is {limit}"
    );
    // netheal stopped fighting over what is flapping: the writer keeps writing, no new fix of
    // a flapping target is recorded.
    let writes_before = writer.writes();
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        writer.writes() > writes_before,
        "the competing writer still runs"
    );
    let later = applied_ip_forward_fixes(&h.policy(POLICY).await.unwrap(), "node2");
    for target in flapping {
        assert_eq!(
            later.get(target),
            fixes.get(target),
            "no fix of {target} after Flapping"
        );
    }
    assert_eq!(
        read_sysctl(&h.node_netns("node2"), "net/ipv4/ip_forward").unwrap(),
        "0"
    );
    h.expect_finding("node2", Check::IpForward, |_| true)
        .await
        .unwrap();
    h.expect_event("Flapping", "node2").await.unwrap();
    drop(writer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrent_nodes_one_never_has_two_nodes_in_flight() {
    let h = Harness::start(HarnessOptions::new("h9", 3)).await.unwrap();
    let mut pods = Vec::new();
    for node in ["node1", "node2", "node3"] {
        pods.push(h.add_pod(node, PodOptions::bridge()).await.unwrap());
    }
    for node in ["node1", "node2", "node3"] {
        h.with_cluster(move |c| c.inject_reject_rules(node))
            .await
            .unwrap();
    }
    let mut spec = scenario_policy(Mode::Enforce);
    spec.remediation.max_concurrent_nodes = 1;
    h.create_policy(POLICY, spec).await.unwrap();

    // Sample every report continuously while the three nodes are healed.
    let client = h.client().clone();
    let stop = tokio_util::sync::CancellationToken::new();
    let sampler = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut worst: Vec<String> = Vec::new();
            let mut ever = std::collections::BTreeSet::new();
            let mut samples = 0u64;
            while !stop.is_cancelled() {
                if let Ok(reports) = api::reports(&client).await {
                    samples += 1;
                    let in_flight = nodes_in_flight(&reports);
                    ever.extend(in_flight.iter().cloned());
                    if in_flight.len() > worst.len() {
                        worst = in_flight;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (worst, ever, samples)
        }
    });
    for (i, from) in pods.iter().enumerate() {
        let to = &pods[(i + 1) % pods.len()];
        h.wait_ping(&from.netns, to.ip, true, Duration::from_secs(90))
            .await
            .unwrap();
    }
    for node in ["node1", "node2", "node3"] {
        h.expect_finding_cleared(node, Check::RejectRule)
            .await
            .unwrap();
        h.expect_applied(POLICY, node, Action::RemoveRejectRule, |_| true)
            .await
            .unwrap();
    }
    stop.cancel();
    let (worst, ever, samples) = sampler.await.unwrap();
    eprintln!("{samples} samples; nodes seen with an order in flight: {ever:?}");
    assert!(
        samples > 10,
        "the sampler must have run ({samples} samples)"
    );
    assert!(
        worst.len() <= 1,
        "two nodes had orders in flight at once: {worst:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_node_is_left_alone() {
    let h = Harness::start(HarnessOptions::new("h10", 2)).await.unwrap();
    let a = h.add_pod("node1", PodOptions::bridge()).await.unwrap();
    let b = h.add_pod("node2", PodOptions::bridge()).await.unwrap();
    h.pause_node("node2", true).await.unwrap();
    h.create_policy(POLICY, scenario_policy(Mode::Enforce))
        .await
        .unwrap();
    h.with_cluster(|c| c.inject_ip_forward_off("node2"))
        .await
        .unwrap();
    h.with_cluster(|c| c.inject_ip_forward_off("node1"))
        .await
        .unwrap();

    // node1 is healed, node2 is not touched.
    h.expect_applied(POLICY, "node1", Action::SetSysctl, |_| true)
        .await
        .unwrap();
    h.expect_finding("node2", Check::IpForward, |_| true)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let node2 = h.node_netns("node2");
    assert_eq!(read_sysctl(&node2, "net/ipv4/ip_forward").unwrap(), "0");
    assert!(
        h.applied_now(POLICY, "node2", Action::SetSysctl)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!ping(&a.netns, b.ip));

    // Unpaused, it is healed like any other node.
    h.pause_node("node2", false).await.unwrap();
    h.wait_ping(&a.netns, b.ip, true, Duration::from_secs(45))
        .await
        .unwrap();
    assert_eq!(read_sysctl(&node2, "net/ipv4/ip_forward").unwrap(), "1");
}
