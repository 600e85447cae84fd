//! The IPv6 variant of each fault, end to end on a dual-stack cluster-in-a-box (IPv6 underlay,
//! `flannel-v6.1`, dual-stack Node and Pod objects): DryRun proposes and changes nothing,
//! Enforce repairs exactly the fault, IPv6 pod traffic works again and IPv4 is never touched.
//! (`ArpIgnore` has no IPv6 variant: neighbour discovery has no `arp_ignore`.)

#![allow(clippy::unwrap_used)] // helpers panic on purpose: that is how a test fails

mod heal_common;

use netheal_crds::{Action, Check, Mode};
use netheal_e2e::cluster::PodOptions;
use netheal_e2e::cluster::faults::{
    FIREWALLD_REJECTS, Family, KUBE_PROXY_JUMP, KUBE_PROXY_RULE_V6, LostHow, REJECT_RULES_V6,
};
use netheal_e2e::harness::expect::{findings_of, policy_findings};
use netheal_e2e::harness::policies::{POLICY, scenario_policy};
use netheal_e2e::harness::{Harness, HarnessOptions, PodInfo, ping, read_sysctl};
use std::net::Ipv6Addr;
use std::time::Duration;

/// A dual-stack harness of two nodes, one pod of `style` on each, reachable over both
/// families, and the scenario policy in DryRun.
async fn dual_stack(name: &str, opts: fn() -> PodOptions) -> (Harness, PodInfo, PodInfo) {
    let h = Harness::start(HarnessOptions::new(name, 2).dual_stack())
        .await
        .unwrap();
    let a = h.add_pod("node1", opts()).await.unwrap();
    let b = h.add_pod("node2", opts()).await.unwrap();
    h.wait_ping(&a.netns, ip6(&b), true, Duration::from_secs(10))
        .await
        .unwrap();
    h.create_policy(POLICY, scenario_policy(Mode::DryRun))
        .await
        .unwrap();
    (h, a, b)
}

fn ip6(pod: &PodInfo) -> Ipv6Addr {
    pod.ip6.expect("a dual-stack pod has an IPv6 address")
}

/// The fault cut IPv6 between `a` and `b` and left IPv4 working.
async fn assert_only_ipv6_cut(h: &Harness, a: &PodInfo, b: &PodInfo) {
    h.wait_ping(&a.netns, ip6(b), false, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(ping(&a.netns, b.ip), "IPv4 must still work");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_forwarding_off_is_proposed_in_dry_run_and_fixed_in_enforce() {
    let (h, a, b) = dual_stack("v6a", PodOptions::bridge).await;
    let node2 = h.node_netns("node2");
    h.with_cluster(|c| c.inject_ip6_forward_off("node2"))
        .await
        .unwrap();
    assert_only_ipv6_cut(&h, &a, &b).await;
    let target = "net.ipv6.conf.all.forwarding";
    let finding = h
        .expect_finding("node2", Check::IpForward, |f| f.target == target)
        .await
        .unwrap();
    assert_eq!(
        (finding.observed.as_str(), finding.desired.as_str()),
        ("0", "1")
    );
    assert_eq!(finding.action, Some(Action::SetSysctl));
    h.expect_proposed(POLICY, "node2", Check::IpForward, Action::SetSysctl)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let path = "net/ipv6/conf/all/forwarding";
    assert_eq!(
        read_sysctl(&node2, path).unwrap(),
        "0",
        "DryRun changes nothing"
    );
    assert!(!ping(&a.netns, ip6(&b)));

    h.set_mode(POLICY, Mode::Enforce).await.unwrap();
    h.wait_ping(&a.netns, ip6(&b), true, Duration::from_secs(30))
        .await
        .unwrap();
    let records = h
        .expect_applied(POLICY, "node2", Action::SetSysctl, |r| r.target == target)
        .await
        .unwrap();
    assert_eq!(
        (records[0].before.as_str(), records[0].after.as_str()),
        ("0", "1")
    );
    assert_eq!(read_sysctl(&node2, path).unwrap(), "1");
    assert_eq!(read_sysctl(&node2, "net/ipv4/ip_forward").unwrap(), "1");
    h.expect_finding_cleared("node2", Check::IpForward)
        .await
        .unwrap();
    h.expect_event("SetSysctl", "node2").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip6tables_rejects_are_proposed_then_removed_and_kube_proxy_ipv6_rules_survive() {
    let (h, a, b) = dual_stack("v6b", PodOptions::bridge).await;
    h.with_cluster(|c| c.inject_ip6tables_rejects("node2"))
        .await
        .unwrap();
    assert_only_ipv6_cut(&h, &a, &b).await;
    for chain in ["INPUT", "FORWARD"] {
        let target = format!("ip6 filter {chain} -j REJECT --reject-with icmp6-adm-prohibited");
        let f = h
            .expect_finding("node2", Check::RejectRule, |f| f.target == target)
            .await
            .unwrap();
        assert_eq!(f.action, Some(Action::RemoveRejectRule));
        assert_eq!(f.details.get("family").map(String::as_str), Some("ip6"));
    }
    let report = h.report("node2").await.unwrap().unwrap();
    let found = findings_of(&report, Check::RejectRule);
    assert_eq!(found.len(), 2, "not kube-proxy's IPv6 rules: {found:?}");

    h.expect_proposed(POLICY, "node2", Check::RejectRule, Action::RemoveRejectRule)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    for rule in REJECT_RULES_V6 {
        let kept = h.with_cluster(move |c| c.has_rule6("node2", rule)).await;
        assert!(kept.unwrap(), "DryRun must not delete {rule}");
    }

    h.set_mode(POLICY, Mode::Enforce).await.unwrap();
    h.wait_ping(&a.netns, ip6(&b), true, Duration::from_secs(45))
        .await
        .unwrap();
    let records = h
        .expect_applied(POLICY, "node2", Action::RemoveRejectRule, |_| true)
        .await
        .unwrap();
    assert!(
        records
            .iter()
            .any(|r| r.before.contains("icmp6-adm-prohibited")),
        "the deleted rule is recorded in full: {records:?}"
    );
    h.expect_finding_cleared("node2", Check::RejectRule)
        .await
        .unwrap();
    let save = h.with_cluster(|c| c.ip6tables_save("node2")).await.unwrap();
    let has = |rule: &str| save.lines().any(|l| l.trim() == rule);
    for rule in REJECT_RULES_V6 {
        assert!(!has(rule), "{rule} must be gone:\n{save}");
    }
    assert!(
        has(KUBE_PROXY_RULE_V6),
        "kube-proxy's IPv6 REJECT survives:\n{save}"
    );
    assert!(has(KUBE_PROXY_JUMP), "kube-proxy's jump survives:\n{save}");
    h.expect_event("RemoveRejectRule", "node2").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firewalld_inet_rejects_on_a_dual_stack_cluster_are_removed_for_both_families() {
    let (h, a, b) = dual_stack("v6c", PodOptions::bridge).await;
    h.with_cluster(|c| c.inject_firewalld_rejects("node2"))
        .await
        .unwrap();
    h.wait_ping(&a.netns, ip6(&b), false, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(!ping(&a.netns, b.ip), "an inet table drops both families");
    for target in FIREWALLD_REJECTS {
        let f = h
            .expect_finding("node2", Check::RejectRule, |f| f.target == target)
            .await
            .unwrap();
        let drops = f.details.get("drops").cloned().unwrap_or_default();
        assert!(
            drops.contains("10.244.1.0/24") && drops.contains("fd00:10:244:1::/64"),
            "the rule drops both families' pod traffic: {drops}"
        );
    }
    let report = h.report("node2").await.unwrap().unwrap();
    let found = findings_of(&report, Check::RejectRule);
    assert_eq!(found.len(), 2, "only firewalld's catch-alls: {found:?}");

    h.set_mode(POLICY, Mode::Enforce).await.unwrap();
    h.wait_ping(&a.netns, ip6(&b), true, Duration::from_secs(45))
        .await
        .unwrap();
    h.wait_ping(&a.netns, b.ip, true, Duration::from_secs(10))
        .await
        .unwrap();
    h.expect_finding_cleared("node2", Check::RejectRule)
        .await
        .unwrap();
    let ruleset = h.with_cluster(|c| c.nft_ruleset("node2")).await.unwrap();
    assert!(
        ruleset.contains("\"kube-proxy\""),
        "kube-proxy's table survives"
    );
    assert!(
        ruleset.contains("addr-unreachable"),
        "firewalld's IPv6 martian reject survives"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_ipv6_vtep_entries_are_proposed_then_replaced() {
    let (h, a, b) = dual_stack("v6d", PodOptions::bridge).await;
    let old6 = h
        .with_cluster(|c| Ok(c.node("node2")?.v6.clone()))
        .await
        .unwrap()
        .unwrap();
    h.with_cluster(|c| c.inject_vtep_mac_change("node2"))
        .await
        .unwrap();
    h.sync_node_object("node2").await.unwrap();
    h.wait_ping(&a.netns, ip6(&b), false, Duration::from_secs(5))
        .await
        .unwrap();
    let neigh = format!("neigh {} dev flannel-v6.1", old6.vtep_ip);
    let fdb = format!(
        "fdb {} dev flannel-v6.1 dst {}",
        old6.vtep_mac, old6.underlay_ip
    );
    for target in [&neigh, &fdb] {
        let f = h
            .expect_finding("node1", Check::StaleNeighbour, |f| &f.target == target)
            .await
            .unwrap();
        assert_eq!(f.action, Some(Action::DeleteNeighbour));
    }
    h.expect_proposed(
        POLICY,
        "node1",
        Check::StaleNeighbour,
        Action::DeleteNeighbour,
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let old_mac = old6.vtep_mac.clone();
    let still = h
        .with_cluster(move |c| Ok(c.fdb6("node1")?.iter().any(|e| e.mac == old_mac)))
        .await
        .unwrap();
    assert!(still, "DryRun must not delete the IPv6 fdb entry");

    h.set_mode(POLICY, Mode::Enforce).await.unwrap();
    h.wait_ping(&a.netns, ip6(&b), true, Duration::from_secs(60))
        .await
        .unwrap();
    h.wait_ping(&a.netns, b.ip, true, Duration::from_secs(10))
        .await
        .unwrap();
    let records = h
        .expect_applied(POLICY, "node1", Action::DeleteNeighbour, |r| {
            r.target == neigh
        })
        .await
        .unwrap();
    assert!(records[0].before.contains(&old6.vtep_mac), "{records:?}");
    h.expect_finding_cleared("node1", Check::StaleNeighbour)
        .await
        .unwrap();
    let (vtep6, old_mac) = (old6.vtep_ip.to_string(), old6.vtep_mac.clone());
    let (new_neigh, old_fdb) = h
        .with_cluster(move |c| {
            let new_mac = c.node("node2")?.v6.as_ref().map(|v| v.vtep_mac.clone());
            let neigh = c
                .neighbours("node1")?
                .into_iter()
                .any(|n| n.dst == vtep6 && n.lladdr == new_mac);
            let old = c.fdb6("node1")?.iter().any(|e| e.mac == old_mac);
            Ok((neigh, old))
        })
        .await
        .unwrap();
    assert!(new_neigh, "node1 points at node2's new IPv6 VTEP MAC");
    assert!(!old_fdb, "the stale IPv6 fdb entry is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_ipv6_vtep_neighbour_is_repaired_by_restarting_the_cni_agent() {
    let (h, a, b) = dual_stack("v6e", PodOptions::bridge).await;
    h.with_cluster(|c| c.inject_lost_neighbour_of("node1", "node2", LostHow::Deleted, Family::V6))
        .await
        .unwrap();
    assert_only_ipv6_cut(&h, &a, &b).await;
    let f = h
        .expect_finding("node1", Check::VtepMissing, |f| {
            f.target.contains("flannel-v6.1")
        })
        .await
        .unwrap();
    assert_eq!(f.action, Some(Action::RestartCniPod));
    heal_common::cni_restart_heals(&h, "node1", Check::VtepMissing, &a.netns, ip6(&b)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_ipv6_peer_route_is_repaired_by_restarting_the_cni_agent() {
    let (h, a, b) = dual_stack("v6f", PodOptions::bridge).await;
    h.with_cluster(|c| c.inject_missing_route_of("node1", "node2", Family::V6))
        .await
        .unwrap();
    assert_only_ipv6_cut(&h, &a, &b).await;
    let cidr6 = "fd00:10:244:2::/64";
    let f = h
        .expect_finding("node1", Check::PeerRouteMissing, |f| {
            f.target == format!("route {cidr6}")
        })
        .await
        .unwrap();
    assert_eq!(f.action, Some(Action::RestartCniPod));
    heal_common::cni_restart_heals(&h, "node1", Check::PeerRouteMissing, &a.netns, ip6(&b)).await;
    let back = h
        .with_cluster(move |c| Ok(c.routes6("node1")?.iter().any(|r| r.dst == cidr6)))
        .await
        .unwrap();
    assert!(back, "the new agent programmed the IPv6 route again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_stack_duplicate_pods_are_one_finding_and_their_ipv6_neighbours_go() {
    let (h, original, peer) = dual_stack("v6g", PodOptions::calico).await;
    h.with_cluster(|c| c.inject_duplicate_pod_ip("node1", 2))
        .await
        .unwrap();
    let copies = h.register_new_pods().await.unwrap();
    assert_eq!(copies.len(), 2, "{copies:?}");
    let (ip, ip6) = (original.ip, ip6(&original));
    let stale6 = h
        .with_cluster(move |c| c.stale_cali_neighbours("node1", ip6))
        .await
        .unwrap();
    assert_eq!(stale6.len(), 2, "stale PERMANENT IPv6 entries {stale6:?}");

    let proposed = h
        .expect_proposed(POLICY, "node1", Check::DuplicatePodIp, Action::RecreatePod)
        .await
        .unwrap();
    assert!(proposed.target.contains(&ip.to_string()), "{proposed:?}");
    let groups = h
        .wait_policy(
            POLICY,
            "the duplicate group",
            Duration::from_secs(30),
            |p| {
                let found = policy_findings(p, "node1", Check::DuplicatePodIp);
                (!found.is_empty()).then_some(found.len())
            },
        )
        .await
        .unwrap();
    assert_eq!(groups, 1, "pods sharing two IPs are one duplicate group");
    h.expect_finding("node1", Check::StaleNeighbour, |f| {
        f.target.contains(&ip6.to_string())
    })
    .await
    .unwrap();

    heal_common::copies_recreated_keeping(&h, "node1", &original.name).await;
    h.expect_finding_cleared("node1", Check::StaleNeighbour)
        .await
        .unwrap();
    for addr in [std::net::IpAddr::V4(ip), std::net::IpAddr::V6(ip6)] {
        let stale = h
            .with_cluster(move |c| c.stale_cali_neighbours("node1", addr))
            .await
            .unwrap();
        assert!(stale.is_empty(), "{addr}: {stale:?}");
    }
    h.wait_ping(&peer.netns, ip6, true, Duration::from_secs(10))
        .await
        .unwrap();
    h.wait_ping(&peer.netns, ip, true, Duration::from_secs(10))
        .await
        .unwrap();
}
