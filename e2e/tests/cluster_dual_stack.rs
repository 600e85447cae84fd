//! Cluster-in-a-box, dual-stack: the IPv6 side (underlay, `flannel-v6.1`, IPv6 pod addresses
//! and Node/Pod objects) works in both pod styles, and each IPv6 fault injector breaks IPv6
//! only, proving its symptom. Needs root.

#![allow(clippy::unwrap_used)] // helpers panic on purpose: that is how a test fails

use netheal_e2e::cluster::faults::{
    Change, Family, KUBE_PROXY_RULE_V6, LostHow, REJECT_RULES_V6, Symptom,
};
use netheal_e2e::cluster::objects::{BACKEND_V6_DATA, PUBLIC_IPV6};
use netheal_e2e::cluster::state::list_cluster_namespaces;
use netheal_e2e::cluster::{Cluster, PodOptions, Stack};

fn unique(tag: char) -> String {
    format!("{tag}{:x}", std::process::id())
}

/// Three dual-stack nodes with one Calico pod each (`cni-<c>-nodeI-0`), all reachable over
/// both families.
fn healthy(name: &str) -> Cluster {
    let mut cluster = Cluster::build_with(name, 3, Stack::DualStack).unwrap();
    for node in ["node1", "node2", "node3"] {
        cluster.add_pod(node, PodOptions::calico()).unwrap();
    }
    let (a, b) = (format!("cni-{name}-node1-0"), format!("cni-{name}-node2-0"));
    assert!(cluster.ping(&a, &b).unwrap(), "healthy cluster must ping");
    assert!(cluster.ping6(&a, &b).unwrap(), "healthy cluster must ping6");
    cluster
}

fn assert_gone(name: &str) {
    assert!(
        list_cluster_namespaces(name).unwrap().is_empty(),
        "{name} left namespaces"
    );
}

/// The pods named by an IPv6 symptom: IPv6 is cut, IPv4 between the same pods is not.
fn assert_only_ipv6_cut(cluster: &Cluster, symptom: &Symptom) {
    let Symptom::Unreachable6 { from_pod, to_pod } = symptom else {
        panic!("not an IPv6 symptom: {symptom:?}")
    };
    assert!(!cluster.ping6(from_pod, to_pod).unwrap(), "IPv6 must fail");
    assert!(
        cluster.ping(from_pod, to_pod).unwrap(),
        "IPv4 must still work"
    );
}

#[test]
fn both_pod_styles_reach_each_other_over_ipv6_and_objects_are_dual_stack() {
    let name = unique('s');
    {
        let mut cluster = Cluster::build_with(&name, 2, Stack::DualStack).unwrap();
        let bridge = cluster.add_pod("node1", PodOptions::bridge()).unwrap();
        let (bridge_ns, bridge_ip6) = (bridge.netns.name().to_string(), bridge.ip6.unwrap());
        let calico = cluster.add_pod("node2", PodOptions::calico()).unwrap();
        let (calico_ns, calico_ip6) = (calico.netns.name().to_string(), calico.ip6.unwrap());
        assert_eq!(bridge_ip6.to_string(), "fd00:10:244:1::2");
        assert_eq!(calico_ip6.to_string(), "fd00:10:244:2::2");
        assert!(cluster.ping6(&bridge_ns, &calico_ns).unwrap());
        assert!(cluster.ping6(&calico_ns, &bridge_ns).unwrap());
        assert!(cluster.ping(&bridge_ns, &calico_ns).unwrap());
        // flannel's IPv6 entries on node1 for node2, as node-fixer reads them.
        let node2 = cluster.node("node2").unwrap().v6.clone().unwrap();
        let fdb = cluster.fdb6("node1").unwrap();
        assert!(
            fdb.iter().any(|e| e.mac == node2.vtep_mac
                && e.dst.as_deref() == Some(&node2.underlay_ip.to_string())),
            "{fdb:?}"
        );
        let routes = cluster.routes6("node1").unwrap();
        assert!(
            routes
                .iter()
                .any(|r| r.dst == node2.pod_cidr && r.dev.as_deref() == Some("flannel-v6.1")),
            "{routes:?}"
        );
        // The Node objects carry both ranges and flannel's IPv6 annotations; the pods both IPs.
        let node = cluster
            .node_objects()
            .into_iter()
            .find(|n| n.metadata.name.as_deref() == Some("node2"))
            .unwrap();
        let ann = node.metadata.annotations.unwrap();
        assert!(ann[BACKEND_V6_DATA].contains(&node2.vtep_mac));
        assert_eq!(ann[PUBLIC_IPV6], node2.underlay_ip.to_string());
        assert_eq!(
            node.spec.unwrap().pod_cidrs.unwrap(),
            ["10.244.2.0/24".to_string(), node2.pod_cidr.clone()]
        );
        let pod = cluster
            .pod_objects()
            .into_iter()
            .find(|p| p.metadata.name.as_deref() == Some("web-node2-0"))
            .unwrap();
        let ips: Vec<String> = pod
            .status
            .unwrap()
            .pod_ips
            .unwrap()
            .into_iter()
            .map(|p| p.ip)
            .collect();
        assert_eq!(ips, ["10.244.2.2", "fd00:10:244:2::2"]);
    }
    assert_gone(&name);
}

#[test]
fn ipv6_forwarding_off_cuts_only_ipv6() {
    let name = unique('f');
    {
        let cluster = healthy(&name);
        let injected = cluster.inject_ip6_forward_off("node2").unwrap();
        assert!(matches!(
            &injected.changes[0],
            Change::Sysctl { path, before, after, .. }
                if path == "net/ipv6/conf/all/forwarding" && before == "1" && after == "0"
        ));
        assert_only_ipv6_cut(&cluster, &injected.symptom);
        assert!(cluster.symptom_present(&injected).unwrap());
    }
    assert_gone(&name);
}

#[test]
fn ip6tables_rejects_cut_only_ipv6_and_kube_proxy_rules_are_marked_to_survive() {
    let name = unique('r');
    {
        let cluster = healthy(&name);
        let injected = cluster.inject_ip6tables_rejects("node2").unwrap();
        assert_only_ipv6_cut(&cluster, &injected.symptom);
        for rule in REJECT_RULES_V6.iter().chain([&KUBE_PROXY_RULE_V6]) {
            assert!(cluster.has_rule6("node2", rule).unwrap(), "{rule}");
        }
        let survivors = injected
            .changes
            .iter()
            .filter(|c| {
                matches!(
                    c,
                    Change::Rule {
                        must_survive: true,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(survivors, 2);
        // IPv4's iptables is untouched.
        assert!(!cluster.iptables_save("node2").unwrap().contains("REJECT"));
    }
    assert_gone(&name);
}

#[test]
fn a_lost_ipv6_vtep_neighbour_and_a_lost_ipv6_route_cut_only_ipv6() {
    let name = unique('n');
    {
        let cluster = healthy(&name);
        let lost = cluster
            .inject_lost_neighbour_of("node1", "node2", LostHow::Deleted, Family::V6)
            .unwrap();
        assert!(matches!(
            &lost.changes[0],
            Change::LostNeighbour { dev, .. } if dev == "flannel-v6.1"
        ));
        assert_only_ipv6_cut(&cluster, &lost.symptom);
        cluster.program_peers("node1").unwrap();
        assert!(!cluster.symptom_present(&lost).unwrap());

        let route = cluster
            .inject_missing_route_of("node1", "node3", Family::V6)
            .unwrap();
        assert!(matches!(
            &route.changes[0],
            Change::RouteRemoved { dst, .. } if dst == "fd00:10:244:3::/64"
        ));
        assert_only_ipv6_cut(&cluster, &route.symptom);
    }
    assert_gone(&name);
}

#[test]
fn a_dual_stack_rejoin_leaves_stale_entries_of_both_vteps() {
    let name = unique('v');
    {
        let mut cluster = healthy(&name);
        let injected = cluster.inject_vtep_mac_change("node2").unwrap();
        let stale6 = injected
            .changes
            .iter()
            .filter(|c| matches!(c, Change::StaleNeighbour { dev, .. } if dev == "flannel-v6.1"))
            .count();
        assert_eq!(stale6, 2, "one stale IPv6 VTEP neighbour per peer");
        let (a, b) = (format!("cni-{name}-node1-0"), format!("cni-{name}-node2-0"));
        assert!(!cluster.ping(&a, &b).unwrap());
        assert!(!cluster.ping6(&a, &b).unwrap());
        // A restarted agent on the peer programs the new MACs: both families work again.
        cluster.program_peers("node1").unwrap();
        assert!(cluster.ping6(&a, &b).unwrap());
    }
    assert_gone(&name);
}

#[test]
fn dual_stack_duplicates_share_both_ips_with_stale_neighbours_of_both_families() {
    let name = unique('d');
    {
        let mut cluster = healthy(&name);
        let injected = cluster.inject_duplicate_pod_ip("node2", 2).unwrap();
        let original = cluster.pod(&format!("cni-{name}-node2-0")).unwrap();
        let (ip, ip6) = (original.ip, original.ip6.unwrap());
        assert_eq!(cluster.stale_cali_neighbours("node2", ip).unwrap().len(), 2);
        assert_eq!(
            cluster.stale_cali_neighbours("node2", ip6).unwrap().len(),
            2
        );
        let holders6 = cluster
            .pod_objects()
            .into_iter()
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.pod_ips.as_ref())
                    .is_some_and(|ips| ips.iter().any(|i| i.ip == ip6.to_string()))
            })
            .count();
        assert_eq!(holders6, 3);
        assert!(cluster.symptom_present(&injected).unwrap());
        // Traffic of both families still reaches the routed pod.
        let from = format!("cni-{name}-node1-0");
        assert!(cluster.ping_ip(&from, ip6).unwrap());
    }
    assert_gone(&name);
}

#[test]
fn ipv6_injectors_refuse_an_ipv4_cluster() {
    let name = unique('x');
    {
        let mut cluster = Cluster::build(&name, 2).unwrap();
        cluster.add_pod("node1", PodOptions::calico()).unwrap();
        cluster.add_pod("node2", PodOptions::calico()).unwrap();
        let err = cluster.inject_ip6_forward_off("node2").unwrap_err();
        assert!(err.to_string().contains("IPv4-only"), "{err}");
        assert!(cluster.pods()[0].ip6.is_none());
    }
    assert_gone(&name);
}
