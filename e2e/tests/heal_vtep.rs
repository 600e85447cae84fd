//! flannel VTEP faults (seed 003). A node rejoins with a new VTEP MAC: its peers keep the
//! PERMANENT neighbour and fdb entry with the old MAC (`StaleNeighbour`, fixed by
//! `DeleteNeighbour`; the missing entry that leaves is `VtepMissing`, fixed by `RestartCniPod`,
//! whose new agent pod programs the right entry). And a peer that lost its neighbour for a
//! node's VTEP (`VtepMissing`) gets its CNI agent restarted.

mod heal_common;

use netheal_crds::{Action, Check, Mode};
use netheal_e2e::cluster::PodOptions;
use netheal_e2e::cluster::faults::LostHow;
use netheal_e2e::harness::policies::{POLICY, scenario_policy};
use netheal_e2e::harness::{Harness, HarnessOptions, ping};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_vtep_entries_on_peers_are_proposed_then_replaced() {
    let h = Harness::start(HarnessOptions::new("h4", 2)).await.unwrap();
    let a = h.add_pod("node1", PodOptions::bridge()).await.unwrap();
    let b = h.add_pod("node2", PodOptions::bridge()).await.unwrap();
    h.create_policy(POLICY, scenario_policy(Mode::DryRun))
        .await
        .unwrap();

    let injected = h
        .with_cluster(|c| c.inject_vtep_mac_change("node2"))
        .await
        .unwrap();
    h.sync_node_object("node2").await.unwrap();
    h.wait_ping(&a.netns, b.ip, false, Duration::from_secs(5))
        .await
        .unwrap();
    let vtep = h
        .with_cluster(|c| Ok(c.node("node2")?.vtep_ip))
        .await
        .unwrap();
    let target = format!("neigh {vtep} dev flannel.1");
    let stale = h
        .expect_finding("node1", Check::StaleNeighbour, |f| f.target == target)
        .await
        .unwrap();
    assert_eq!(stale.action, Some(Action::DeleteNeighbour));
    assert!(
        injected
            .changes
            .iter()
            .any(|c| format!("{c:?}").contains("StaleNeighbour")),
        "{injected:?}"
    );

    h.expect_proposed(
        POLICY,
        "node1",
        Check::StaleNeighbour,
        Action::DeleteNeighbour,
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let old_mac_still_there = h
        .with_cluster(move |c| {
            Ok(c.neighbours("node1")?
                .iter()
                .any(|n| n.dst == vtep.to_string() && n.is_permanent()))
        })
        .await
        .unwrap();
    assert!(old_mac_still_there, "DryRun must not delete the neighbour");
    assert_eq!(h.kubelet().cni_restarts("node1"), 0);
    assert!(!ping(&a.netns, b.ip));

    h.set_mode(POLICY, Mode::Enforce).await.unwrap();
    h.wait_ping(&a.netns, b.ip, true, Duration::from_secs(60))
        .await
        .unwrap();
    let records = h
        .expect_applied(POLICY, "node1", Action::DeleteNeighbour, |_| true)
        .await
        .unwrap();
    assert!(records.iter().any(|r| r.target == target), "{records:?}");
    h.expect_finding_cleared("node1", Check::StaleNeighbour)
        .await
        .unwrap();
    h.expect_finding_cleared("node1", Check::VtepMissing)
        .await
        .unwrap();
    let new_mac = h
        .with_cluster(|c| Ok(c.node("node2")?.vtep_mac.clone()))
        .await
        .unwrap();
    let entry_is_new = h
        .with_cluster(move |c| {
            Ok(c.neighbours("node1")?.iter().any(|n| {
                n.dst == vtep.to_string() && n.lladdr.as_deref() == Some(new_mac.as_str())
            }))
        })
        .await
        .unwrap();
    assert!(entry_is_new, "node1 must point at node2's new VTEP MAC");
    h.expect_event("DeleteNeighbour", "node1").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_vtep_neighbour_is_proposed_then_repaired_by_restarting_the_cni_agent() {
    let h = Harness::start(HarnessOptions::new("h5", 2)).await.unwrap();
    let a = h.add_pod("node1", PodOptions::bridge()).await.unwrap();
    let b = h.add_pod("node2", PodOptions::bridge()).await.unwrap();
    h.create_policy(POLICY, scenario_policy(Mode::DryRun))
        .await
        .unwrap();

    h.with_cluster(|c| c.inject_lost_neighbour("node1", "node2", LostHow::Deleted))
        .await
        .unwrap();
    h.wait_ping(&a.netns, b.ip, false, Duration::from_secs(5))
        .await
        .unwrap();
    let f = h
        .expect_finding("node1", Check::VtepMissing, |_| true)
        .await
        .unwrap();
    assert_eq!(f.action, Some(Action::RestartCniPod));

    heal_common::cni_restart_heals(&h, "node1", Check::VtepMissing, &a.netns, b.ip).await;
}
