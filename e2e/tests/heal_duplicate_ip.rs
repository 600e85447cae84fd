//! `DuplicatePodIp` (seed 002): several pods on a node hold one IP, and the node has stale
//! PERMANENT neighbours for it on the copies' `cali*` veths. DryRun proposes `RecreatePod`
//! and evicts nothing; Enforce evicts the controller-owned copies (the ReplicaSet brings them
//! back with fresh IPs), keeps the pod that owns the host route, and the stale neighbours go.

mod heal_common;

use netheal_crds::{Action, Check, Mode};
use netheal_e2e::cluster::PodOptions;
use netheal_e2e::harness::kubelet::KubeletEvent;
use netheal_e2e::harness::policies::{POLICY, scenario_policy};
use netheal_e2e::harness::wait::{Check as WaitCheck, wait_for};
use netheal_e2e::harness::{Harness, HarnessOptions};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_pod_ips_are_proposed_then_the_copies_are_recreated() {
    let h = Harness::start(HarnessOptions::new("h7", 2)).await.unwrap();
    let original = h.add_pod("node1", PodOptions::calico()).await.unwrap();
    let peer = h.add_pod("node2", PodOptions::calico()).await.unwrap();
    h.create_policy(POLICY, scenario_policy(Mode::DryRun))
        .await
        .unwrap();

    h.with_cluster(|c| c.inject_duplicate_pod_ip("node1", 2))
        .await
        .unwrap();
    let copies = h.register_new_pods().await.unwrap();
    assert_eq!(copies.len(), 2, "{copies:?}");
    let ip = original.ip;
    let stale = h
        .with_cluster(move |c| c.stale_cali_neighbours("node1", ip))
        .await
        .unwrap();
    assert_eq!(
        stale.len(),
        2,
        "the symptom: stale PERMANENT entries {stale:?}"
    );

    let proposed = h
        .expect_proposed(POLICY, "node1", Check::DuplicatePodIp, Action::RecreatePod)
        .await
        .unwrap();
    assert!(proposed.target.contains(&ip.to_string()), "{proposed:?}");
    h.expect_finding("node1", Check::StaleNeighbour, |f| {
        f.target.contains(&ip.to_string())
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !h.kubelet()
            .events()
            .iter()
            .any(|e| matches!(e, KubeletEvent::PodReplaced { .. })),
        "DryRun must not evict"
    );

    heal_common::copies_recreated_keeping(&h, "node1", &original.name).await;
    // The duplicate clears when the copies are gone; their replacements start a little later
    // (ReplicaSet, scheduler, the kubelet emulation's tick).
    let replaced: Vec<String> = wait_for(
        "the evicted copies to be replaced",
        Duration::from_secs(60),
        || async {
            let replaced: Vec<String> = h
                .kubelet()
                .events()
                .into_iter()
                .filter_map(|e| match e {
                    KubeletEvent::PodReplaced { old, .. } => Some(old),
                    _ => None,
                })
                .collect();
            if copies
                .iter()
                .all(|copy| replaced.iter().any(|o| o.ends_with(&format!("/{copy}"))))
            {
                WaitCheck::Done(replaced)
            } else {
                WaitCheck::NotYet(format!("replaced so far: {replaced:?}"))
            }
        },
    )
    .await
    .unwrap();
    assert!(
        !replaced
            .iter()
            .any(|o| o.ends_with(&format!("/{}", original.name)))
    );
    h.expect_finding_cleared("node1", Check::StaleNeighbour)
        .await
        .unwrap();
    let stale = h
        .with_cluster(move |c| c.stale_cali_neighbours("node1", ip))
        .await
        .unwrap();
    assert!(stale.is_empty(), "{stale:?}");
    h.wait_ping(&peer.netns, ip, true, Duration::from_secs(10))
        .await
        .unwrap();
    h.expect_event("RecreatePod", "node1").await.unwrap();
}
