//! Cluster-in-a-box, broken: every fault injector of the catalogue, each proving its symptom
//! on a 3-node cluster and recording what it changed. Needs root.

#![allow(clippy::unwrap_used)] // helpers panic on purpose: that is how a test fails

use netheal_e2e::cluster::faults::{
    Change, Fault, KUBE_PROXY_JUMP, KUBE_PROXY_RULE, LostHow, REJECT_RULES, Symptom,
};
use netheal_e2e::cluster::state::list_cluster_namespaces;
use netheal_e2e::cluster::{Cluster, PodOptions, PodStyle};

fn unique(tag: char) -> String {
    format!("{tag}{:x}", std::process::id())
}

/// Three nodes with one Calico pod each (`cni-<c>-nodeI-0`), all reachable.
fn healthy(name: &str) -> Cluster {
    let mut cluster = Cluster::build(name, 3).unwrap();
    for node in ["node1", "node2", "node3"] {
        cluster.add_pod(node, PodOptions::calico()).unwrap();
    }
    let (a, b) = (format!("cni-{name}-node1-0"), format!("cni-{name}-node2-0"));
    assert!(cluster.ping(&a, &b).unwrap(), "healthy cluster must ping");
    cluster
}

fn assert_gone(name: &str) {
    assert!(
        list_cluster_namespaces(name).unwrap().is_empty(),
        "{name} left namespaces"
    );
}

#[test]
fn arp_ignore_on_a_node_is_inherited_by_a_new_pod_that_becomes_unreachable() {
    let name = unique('a');
    {
        let mut cluster = healthy(&name);
        let injected = cluster
            .inject_arp_ignore("node2", PodStyle::Calico)
            .unwrap();
        assert_eq!(injected.fault, Fault::ArpIgnore);
        let node_ns = format!("nhc-{name}-node2");
        for scope in ["all", "default"] {
            let path = format!("net/ipv4/conf/{scope}/arp_ignore");
            assert!(injected.changes.contains(&Change::Sysctl {
                netns: node_ns.clone(),
                path: path.clone(),
                before: "0".into(),
                after: "2".into(),
            }));
            assert_eq!(cluster.sysctl(&node_ns, &path).unwrap(), "2");
        }
        let Symptom::Unreachable { from_pod, to_pod } = &injected.symptom else {
            panic!("{:?}", injected.symptom)
        };
        assert_eq!(to_pod, &format!("cni-{name}-node2-1"));
        assert_eq!(
            cluster
                .sysctl(to_pod, "net/ipv4/conf/all/arp_ignore")
                .unwrap(),
            "2"
        );
        assert!(!from_pod.contains("node2"));
        assert!(
            cluster.symptom_present(&injected).unwrap(),
            "new pod must be unreachable"
        );
        // The pod made before the change still answers.
        let old = format!("cni-{name}-node2-0");
        assert!(cluster.ping(from_pod, &old).unwrap());
        // Healing both the node and the pod brings it back.
        let node = cluster.netns(&node_ns).unwrap();
        node.set_sysctl("net/ipv4/conf/all/arp_ignore", "0")
            .unwrap();
        assert!(
            cluster.symptom_present(&injected).unwrap(),
            "fixing only the node is not enough"
        );
        // In the pod: `all` and `eth0` (made while `default` was 2): the kernel uses the max.
        let pod = cluster.netns(to_pod).unwrap();
        pod.set_sysctl("net/ipv4/conf/all/arp_ignore", "0").unwrap();
        assert_eq!(
            cluster
                .sysctl(to_pod, "net/ipv4/conf/eth0/arp_ignore")
                .unwrap(),
            "2"
        );
        assert!(
            cluster.symptom_present(&injected).unwrap(),
            "eth0 still says 2"
        );
        pod.set_sysctl("net/ipv4/conf/eth0/arp_ignore", "0")
            .unwrap();
        assert!(!cluster.symptom_present(&injected).unwrap());
    }
    assert_gone(&name);
}

#[test]
fn ip_forward_off_cuts_a_node_s_pods_off() {
    let name = unique('f');
    {
        let cluster = healthy(&name);
        let injected = cluster.inject_ip_forward_off("node3").unwrap();
        assert_eq!(
            injected.changes,
            vec![Change::Sysctl {
                netns: format!("nhc-{name}-node3"),
                path: "net/ipv4/ip_forward".into(),
                before: "1".into(),
                after: "0".into(),
            }]
        );
        assert!(cluster.symptom_present(&injected).unwrap());
        cluster
            .netns(&format!("nhc-{name}-node3"))
            .unwrap()
            .set_sysctl("net/ipv4/ip_forward", "1")
            .unwrap();
        assert!(!cluster.symptom_present(&injected).unwrap());
    }
    assert_gone(&name);
}

#[test]
fn reject_rules_block_a_node_and_kube_proxy_rules_are_marked_to_survive() {
    let name = unique('r');
    {
        let cluster = healthy(&name);
        let injected = cluster.inject_reject_rules("node1").unwrap();
        for rule in [
            KUBE_PROXY_RULE,
            KUBE_PROXY_JUMP,
            REJECT_RULES[0],
            REJECT_RULES[1],
        ] {
            assert!(
                cluster.has_rule("node1", rule).unwrap(),
                "iptables-save lacks {rule}"
            );
        }
        let survivors: Vec<_> = injected
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
            .collect();
        assert_eq!(survivors.len(), 2);
        assert!(cluster.symptom_present(&injected).unwrap());
        // Removing exactly the two firewall rules heals it; kube-proxy's rule stays.
        let node = cluster.netns(&format!("nhc-{name}-node1")).unwrap();
        for chain in ["INPUT", "FORWARD"] {
            node.exec(
                "iptables",
                &[
                    "-t",
                    "filter",
                    "-D",
                    chain,
                    "-j",
                    "REJECT",
                    "--reject-with",
                    "icmp-host-prohibited",
                ],
            )
            .unwrap();
        }
        assert!(!cluster.symptom_present(&injected).unwrap());
        assert!(cluster.has_rule("node1", KUBE_PROXY_RULE).unwrap());
    }
    assert_gone(&name);
}

#[test]
fn a_node_rejoining_with_a_new_vtep_mac_leaves_stale_entries_on_peers() {
    let name = unique('v');
    {
        let mut cluster = healthy(&name);
        let old = cluster.node("node2").unwrap().vtep_mac.clone();
        let injected = cluster.inject_vtep_mac_change("node2").unwrap();
        let new = cluster.node("node2").unwrap().vtep_mac.clone();
        assert_ne!(old, new);
        assert!(injected.changes.contains(&Change::VtepMac {
            node: "node2".into(),
            before: old.clone(),
            after: new.clone(),
        }));
        // The Node object already tells the truth.
        let node2 = cluster
            .node_objects()
            .into_iter()
            .find(|n| n.metadata.name.as_deref() == Some("node2"))
            .unwrap();
        let ann = node2.metadata.annotations.unwrap();
        assert!(ann["flannel.alpha.coreos.com/backend-data"].contains(&new));
        // Peers hold the old MAC, PERMANENT, in neighbour and fdb.
        let vtep = cluster.node("node2").unwrap().vtep_ip.to_string();
        for peer in ["node1", "node3"] {
            let neigh = cluster.neighbours(peer).unwrap();
            assert!(neigh.iter().any(|n| n.dst == vtep
                && n.is_permanent()
                && n.lladdr.as_deref() == Some(old.as_str())));
            assert!(cluster.fdb(peer).unwrap().iter().any(|f| f.mac == old));
        }
        let stale = injected
            .changes
            .iter()
            .filter(|c| matches!(c, Change::StaleNeighbour { .. } | Change::StaleFdb { .. }))
            .count();
        assert_eq!(stale, 4);
        assert!(cluster.symptom_present(&injected).unwrap());
        // A restarted CNI agent on the peers reprograms them from the truth.
        cluster.program_peers("node1").unwrap();
        cluster.program_peers("node3").unwrap();
        assert!(!cluster.symptom_present(&injected).unwrap());
    }
    assert_gone(&name);
}

#[test]
fn a_lost_vtep_neighbour_on_a_peer_breaks_that_direction() {
    let name = unique('n');
    {
        let cluster = healthy(&name);
        let vtep3 = cluster.node("node3").unwrap().vtep_ip.to_string();
        let injected = cluster
            .inject_lost_neighbour("node1", "node3", LostHow::Incomplete)
            .unwrap();
        assert_eq!(injected.node, "node1");
        let neigh = cluster.neighbours("node1").unwrap();
        let entry = neigh.iter().find(|n| n.dst == vtep3).unwrap();
        assert!(!entry.is_permanent() && entry.is_unresolved(), "{entry:?}");
        assert!(cluster.symptom_present(&injected).unwrap());
        cluster.program_peers("node1").unwrap();
        assert!(!cluster.symptom_present(&injected).unwrap());

        let injected = cluster
            .inject_lost_neighbour("node2", "node3", LostHow::Deleted)
            .unwrap();
        assert!(
            !cluster
                .neighbours("node2")
                .unwrap()
                .iter()
                .any(|n| n.dst == vtep3)
        );
        assert!(
            cluster.fdb("node2").unwrap().len() == 2,
            "the fdb keeps its entries"
        );
        assert!(cluster.symptom_present(&injected).unwrap());
    }
    assert_gone(&name);
}

#[test]
fn a_missing_peer_route_breaks_that_direction() {
    let name = unique('m');
    {
        let cluster = healthy(&name);
        let injected = cluster.inject_missing_route("node3", "node1").unwrap();
        assert!(
            !cluster
                .routes("node3")
                .unwrap()
                .iter()
                .any(|r| r.dst == "10.244.1.0/24")
        );
        assert!(cluster.symptom_present(&injected).unwrap());
        cluster.program_peers("node3").unwrap();
        assert!(!cluster.symptom_present(&injected).unwrap());
    }
    assert_gone(&name);
}

#[test]
fn duplicate_pod_ips_leave_stale_permanent_neighbours_on_cali_veths() {
    let name = unique('d');
    {
        let mut cluster = healthy(&name);
        let injected = cluster.inject_duplicate_pod_ip("node2", 3).unwrap();
        let Symptom::StaleNeighbours { ip, .. } = injected.symptom.clone() else {
            panic!("{:?}", injected.symptom)
        };
        assert_eq!(ip, cluster.pod(&format!("cni-{name}-node2-0")).unwrap().ip);
        // Four pod objects on node2 share the address; three are controller-owned copies.
        let holders: Vec<_> = cluster
            .pod_objects()
            .into_iter()
            .filter(|p| {
                p.status.as_ref().and_then(|s| s.pod_ip.as_deref()) == Some(ip.to_string().as_str())
            })
            .collect();
        assert_eq!(holders.len(), 4);
        assert!(
            holders
                .iter()
                .all(|p| p.spec.as_ref().unwrap().node_name.as_deref() == Some("node2"))
        );
        // PERMANENT on four cali veths, but the host route names only the original.
        let neigh = cluster.neighbours("node2").unwrap();
        let permanent = neigh
            .iter()
            .filter(|n| n.dst == ip.to_string() && n.dev.starts_with("cali") && n.is_permanent())
            .count();
        assert_eq!(permanent, 4);
        let stale = cluster.stale_cali_neighbours("node2", ip).unwrap();
        assert_eq!(stale.len(), 3);
        assert!(cluster.symptom_present(&injected).unwrap());
        // Traffic still reaches the one pod that owns the route.
        let from = format!("cni-{name}-node1-0");
        assert!(cluster.ping_ip(&from, ip).unwrap());
        for n in &stale {
            cluster
                .netns(&format!("nhc-{name}-node2"))
                .unwrap()
                .ip(&["neigh", "del", &n.dst, "dev", &n.dev])
                .unwrap();
        }
        assert!(!cluster.symptom_present(&injected).unwrap());
    }
    assert_gone(&name);
}

#[test]
fn a_vanished_node_leaves_entries_for_a_subnet_no_node_owns() {
    let name = unique('x');
    {
        let mut cluster = healthy(&name);
        let vtep3 = cluster.node("node3").unwrap().vtep_ip;
        let injected = cluster.inject_vanished_node("node3").unwrap();
        assert_eq!(injected.fault, Fault::VanishedNode);
        assert!(cluster.node("node3").is_err());
        assert_eq!(
            cluster.node_objects().len(),
            2,
            "no Node owns 10.244.3.0/24 any more"
        );
        assert!(
            list_cluster_namespaces(&name)
                .unwrap()
                .iter()
                .all(|n| !n.contains("node3"))
        );
        assert_eq!(injected.changes.len(), 4);
        for peer in ["node1", "node2"] {
            assert!(
                cluster
                    .routes(peer)
                    .unwrap()
                    .iter()
                    .any(|r| r.dst == "10.244.3.0/24")
            );
        }
        assert!(cluster.symptom_present(&injected).unwrap());
        for peer in ["node1", "node2"] {
            cluster
                .netns(&format!("nhc-{name}-{peer}"))
                .unwrap()
                .ip(&["neigh", "del", &vtep3.to_string(), "dev", "flannel.1"])
                .unwrap();
        }
        assert!(!cluster.symptom_present(&injected).unwrap());
    }
    assert_gone(&name);
}

#[test]
fn proxy_arp_off_on_a_cali_veth_strands_its_pod() {
    let name = unique('p');
    {
        let mut cluster = healthy(&name);
        cluster.add_pod("node1", PodOptions::bridge()).unwrap();
        let pod = format!("cni-{name}-node1-0");
        let injected = cluster.inject_proxy_arp_off(&pod).unwrap();
        let veth = cluster.pod(&pod).unwrap().host_veth.clone();
        let node = format!("nhc-{name}-node1");
        let path = format!("net/ipv4/conf/{veth}/proxy_arp");
        assert_eq!(
            injected.changes,
            vec![Change::Sysctl {
                netns: node.clone(),
                path: path.clone(),
                before: "1".into(),
                after: "0".into(),
            }]
        );
        assert!(cluster.symptom_present(&injected).unwrap());
        assert!(
            cluster
                .inject_proxy_arp_off(&format!("cni-{name}-node1-1"))
                .is_err(),
            "a bridge pod has no proxy ARP to lose"
        );
        cluster
            .netns(&node)
            .unwrap()
            .set_sysctl(&path, "1")
            .unwrap();
        assert!(!cluster.symptom_present(&injected).unwrap());
    }
    assert_gone(&name);
}
