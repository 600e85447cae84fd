//! `IpForward` (seed 004 §2): a hardening tool set `net.ipv4.ip_forward=0` on a node, so pods
//! on other nodes cannot reach its pods. In DryRun netheal proposes `SetSysctl` and changes
//! nothing; in Enforce the agent writes 1 back, the ping works again, the action is recorded
//! with before/after, an Event is published and the finding clears.

use netheal_crds::{Action, Check, Mode};
use netheal_e2e::cluster::PodOptions;
use netheal_e2e::harness::policies::{POLICY, scenario_policy};
use netheal_e2e::harness::{Harness, HarnessOptions, read_sysctl};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_forward_off_is_proposed_in_dry_run_and_fixed_in_enforce() {
    let h = Harness::start(HarnessOptions::new("h1", 2)).await.unwrap();
    let node2 = h.node_netns("node2");
    let a = h.add_pod("node1", PodOptions::bridge()).await.unwrap();
    let b = h.add_pod("node2", PodOptions::bridge()).await.unwrap();
    h.wait_ping(&a.netns, b.ip, true, Duration::from_secs(10))
        .await
        .unwrap();
    h.create_policy(POLICY, scenario_policy(Mode::DryRun))
        .await
        .unwrap();

    h.with_cluster(|c| c.inject_ip_forward_off("node2"))
        .await
        .unwrap();
    h.wait_ping(&a.netns, b.ip, false, Duration::from_secs(5))
        .await
        .unwrap();
    let finding = h
        .expect_finding("node2", Check::IpForward, |f| {
            f.target == "net.ipv4.ip_forward"
        })
        .await
        .unwrap();
    assert_eq!(finding.observed, "0");
    assert_eq!(finding.desired, "1");
    assert_eq!(finding.action, Some(Action::SetSysctl));

    // DryRun: proposed, nothing written (two agent poll intervals later it is still 0).
    h.expect_proposed(POLICY, "node2", Check::IpForward, Action::SetSysctl)
        .await
        .unwrap();
    // One finding for the switch (`conf.all.forwarding` is the same variable): the policy
    // proposes the fix for it.
    let target = finding.target.clone();
    h.wait_policy(
        POLICY,
        "a proposal for net.ipv4.ip_forward",
        Duration::from_secs(30),
        |p| {
            netheal_e2e::harness::expect::policy_findings(p, "node2", Check::IpForward)
                .into_iter()
                .find(|f| f.target == target && f.proposed_action == Some(Action::SetSysctl))
                .cloned()
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let value = read_sysctl(&node2, "net/ipv4/ip_forward").unwrap();
    assert_eq!(value, "0", "DryRun must not change the node");
    assert!(
        h.applied_now(POLICY, "node2", Action::SetSysctl)
            .await
            .unwrap()
            .is_empty(),
        "DryRun must not record an applied action"
    );
    assert!(!netheal_e2e::harness::ping(&a.netns, b.ip));

    // Enforce: fixed, recorded, announced, cleared.
    h.set_mode(POLICY, Mode::Enforce).await.unwrap();
    h.wait_ping(&a.netns, b.ip, true, Duration::from_secs(30))
        .await
        .unwrap();
    let records = h
        .expect_applied(POLICY, "node2", Action::SetSysctl, |r| {
            r.check == Some(Check::IpForward)
        })
        .await
        .unwrap();
    assert_eq!(records[0].before, "0");
    assert_eq!(records[0].after, "1");
    assert_eq!(read_sysctl(&node2, "net/ipv4/ip_forward").unwrap(), "1");
    h.expect_event("SetSysctl", "node2").await.unwrap();
    // The Event netheal wrote through events.k8s.io/v1 is what `kubectl get events` lists.
    let events = h
        .controlplane()
        .kubectl(&["get", "events", "-A", "-o", "wide"])
        .unwrap();
    let listed = String::from_utf8_lossy(&events.stdout);
    assert!(
        listed
            .lines()
            .any(|l| l.contains("SetSysctl") && l.contains("node2")),
        "kubectl get events does not list netheal's Event:\n{listed}"
    );
    h.expect_finding_cleared("node2", Check::IpForward)
        .await
        .unwrap();
    h.wait_policy(
        POLICY,
        "no open IpForward finding in the policy",
        Duration::from_secs(30),
        |p| {
            netheal_e2e::harness::expect::policy_findings(p, "node2", Check::IpForward)
                .is_empty()
                .then_some(())
        },
    )
    .await
    .unwrap();
}
