//! `PeerRouteMissing` (seed 001): a node lost its route to a peer's pod CIDR. DryRun proposes
//! `RestartCniPod` on that node and deletes nothing; Enforce deletes its CNI agent pod, the
//! new agent programs the route again, the ping works and the finding clears.

mod heal_common;

use netheal_crds::{Action, Check, Mode};
use netheal_e2e::cluster::PodOptions;
use netheal_e2e::harness::policies::{POLICY, scenario_policy};
use netheal_e2e::harness::{Harness, HarnessOptions};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_peer_route_is_proposed_then_repaired_by_restarting_the_cni_agent() {
    let h = Harness::start(HarnessOptions::new("h6", 2)).await.unwrap();
    let a = h.add_pod("node1", PodOptions::bridge()).await.unwrap();
    let b = h.add_pod("node2", PodOptions::bridge()).await.unwrap();
    h.create_policy(POLICY, scenario_policy(Mode::DryRun))
        .await
        .unwrap();

    h.with_cluster(|c| c.inject_missing_route("node1", "node2"))
        .await
        .unwrap();
    h.wait_ping(&a.netns, b.ip, false, Duration::from_secs(5))
        .await
        .unwrap();
    let cidr = h
        .with_cluster(|c| Ok(c.node("node2")?.pod_cidr.clone()))
        .await
        .unwrap();
    let target = format!("route {cidr}");
    let f = h
        .expect_finding("node1", Check::PeerRouteMissing, |f| f.target == target)
        .await
        .unwrap();
    assert_eq!(f.action, Some(Action::RestartCniPod));

    heal_common::cni_restart_heals(&h, "node1", Check::PeerRouteMissing, &a.netns, b.ip).await;
    let route_back = h
        .with_cluster(move |c| Ok(c.routes("node1")?.iter().any(|r| r.dst == cidr)))
        .await
        .unwrap();
    assert!(route_back);
}
