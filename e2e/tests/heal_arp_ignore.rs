//! `ArpIgnore` (seed 000): a node joins with `arp_ignore=2`, and a pod created meanwhile
//! inherits 2 in its own namespace, so it does not answer the node's ARP and pods elsewhere
//! cannot reach it. DryRun proposes `SetSysctl` and changes nothing; Enforce lowers the node's
//! values and the pod namespace's, the ping works, the actions and an Event are recorded and
//! the findings clear.

use netheal_crds::{Action, Check, Mode};
use netheal_e2e::cluster::{PodOptions, PodStyle};
use netheal_e2e::harness::policies::{POLICY, scenario_policy};
use netheal_e2e::harness::{Harness, HarnessOptions, ping, read_sysctl};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arp_ignore_on_a_node_and_its_new_pods_is_proposed_then_fixed() {
    let h = Harness::start(HarnessOptions::new("h2", 2)).await.unwrap();
    let a = h.add_pod("node1", PodOptions::calico()).await.unwrap();
    h.add_pod("node2", PodOptions::calico()).await.unwrap();
    h.create_policy(POLICY, scenario_policy(Mode::DryRun))
        .await
        .unwrap();

    let injected = h
        .with_cluster(|c| c.inject_arp_ignore("node2", PodStyle::Calico))
        .await
        .unwrap();
    h.register_new_pods().await.unwrap();
    let joined = h
        .with_cluster(|c| {
            let p = c.pods().last().map(|p| (p.netns.name().to_string(), p.ip));
            Ok(p)
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(injected.node, "node2");
    assert_eq!(
        read_sysctl(&joined.0, "net/ipv4/conf/all/arp_ignore").unwrap(),
        "2",
        "the new pod inherits the node's value"
    );
    h.wait_ping(&a.netns, joined.1, false, Duration::from_secs(5))
        .await
        .unwrap();

    let node_finding = h
        .expect_finding("node2", Check::ArpIgnore, |f| {
            f.target == "net.ipv4.conf.all.arp_ignore"
        })
        .await
        .unwrap();
    assert_eq!(node_finding.action, Some(Action::SetSysctl));
    let pod_target = format!("netns {} net.ipv4.conf.all.arp_ignore", joined.0);
    h.expect_finding("node2", Check::ArpIgnore, |f| f.target == pod_target)
        .await
        .unwrap();

    // DryRun: proposed, nothing written.
    h.expect_proposed(POLICY, "node2", Check::ArpIgnore, Action::SetSysctl)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let node_ns = h.node_netns("node2");
    assert_eq!(
        read_sysctl(&node_ns, "net/ipv4/conf/all/arp_ignore").unwrap(),
        "2"
    );
    assert_eq!(
        read_sysctl(&joined.0, "net/ipv4/conf/all/arp_ignore").unwrap(),
        "2"
    );
    assert!(
        h.applied_now(POLICY, "node2", Action::SetSysctl)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!ping(&a.netns, joined.1));

    // Enforce: the node and the pod namespace are fixed.
    h.set_mode(POLICY, Mode::Enforce).await.unwrap();
    h.wait_ping(&a.netns, joined.1, true, Duration::from_secs(45))
        .await
        .unwrap();
    let target = pod_target.clone();
    let records = h
        .expect_applied(POLICY, "node2", Action::SetSysctl, |r| r.target == target)
        .await
        .unwrap();
    assert_eq!(records[0].before, "2");
    assert_eq!(records[0].after, "0");
    h.expect_finding_cleared("node2", Check::ArpIgnore)
        .await
        .unwrap();
    for ns in [&node_ns, &joined.0] {
        for scope in ["all", "default"] {
            assert_eq!(
                read_sysctl(ns, &format!("net/ipv4/conf/{scope}/arp_ignore")).unwrap(),
                "0",
                "{ns} conf.{scope}.arp_ignore"
            );
        }
    }
    h.expect_event("SetSysctl", "node2").await.unwrap();
}
