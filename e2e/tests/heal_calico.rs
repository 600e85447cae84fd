//! `PeerRouteMissing` on Calico (seed 001): on a cluster with Calico IPAM (VXLAN mode here:
//! this kernel has no `ipip` device for `tunl0`), node1 lost its route to node2's IPAM block,
//! so its pods' DNS lookups time out: the cluster DNS (dnsmasq in a pod) runs on node2. node-fixer knows the block only from
//! node2's `BlockAffinity` (served by the real API server, read under the RBAC users get). DryRun
//! proposes restarting `calico-node` on node1 and deletes nothing; Enforce deletes that pod, the
//! new one programs the block route again, and the lookups work again.

mod heal_common;

use netheal_crds::{Action, Check, Mode};
use netheal_e2e::cluster::PodOptions;
use netheal_e2e::harness::dns::{DnsServer, Resolver, SERVICE_IP};
use netheal_e2e::harness::expect::findings_of;
use netheal_e2e::harness::policies::{POLICY, calico_scenario_policy};
use netheal_e2e::harness::{Harness, HarnessOptions};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_calico_block_route_is_proposed_then_repaired_by_restarting_calico_node() {
    let h = Harness::start(HarnessOptions::new("k1", 2).calico())
        .await
        .unwrap();
    let client = h.add_pod("node1", PodOptions::calico()).await.unwrap();
    let mut dns = PodOptions::calico();
    dns.namespace = "kube-system".into();
    dns.app = "coredns".into();
    let dns = h.add_pod("node2", dns).await.unwrap();
    h.wait_ping(&client.netns, dns.ip, true, Duration::from_secs(10))
        .await
        .unwrap();
    let _server = DnsServer::start(&dns.netns, dns.ip).unwrap();
    let resolver = Resolver::new(&client.netns, dns.ip).unwrap();
    let mut answered = None;
    for _ in 0..50 {
        answered = resolver.lookup();
        if answered.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        answered,
        Some(SERVICE_IP.into()),
        "the healthy cluster resolves"
    );
    h.create_policy(POLICY, calico_scenario_policy(Mode::DryRun))
        .await
        .unwrap();

    h.with_cluster(|c| c.inject_missing_route("node1", "node2"))
        .await
        .unwrap();
    h.wait_ping(&client.netns, dns.ip, false, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        resolver.lookup(),
        None,
        "seed 001: the DNS lookup times out"
    );
    let block = "10.40.2.0/26";
    let f = h
        .expect_finding("node1", Check::PeerRouteMissing, |f| {
            f.target == format!("route {block}")
        })
        .await
        .unwrap();
    assert_eq!(f.action, Some(Action::RestartCniPod));
    assert_eq!(
        f.details.get("blockAffinity").map(String::as_str),
        Some("node2-10-40-2-0-26")
    );
    let report = h.report("node1").await.unwrap().unwrap();
    let routes = findings_of(&report, Check::PeerRouteMissing);
    assert_eq!(
        routes.len(),
        1,
        "only the block: not the Nodes' podCIDRs, which Calico IPAM does not route: {routes:?}"
    );
    assert!(report.status.unwrap_or_default().errors.is_empty());

    heal_common::cni_restart_heals(&h, "node1", Check::PeerRouteMissing, &client.netns, dns.ip)
        .await;
    let back = h
        .with_cluster(move |c| Ok(c.routes("node1")?.iter().any(|r| r.dst == block)))
        .await
        .unwrap();
    assert!(back, "the new calico-node programmed the block route again");
    assert_eq!(
        resolver.lookup(),
        Some(SERVICE_IP.into()),
        "DNS works again"
    );
    let events = h.events().await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.note.as_deref().is_some_and(|n| n.contains("calico-node"))),
        "the Event names the calico-node pod: {events:?}"
    );
}
