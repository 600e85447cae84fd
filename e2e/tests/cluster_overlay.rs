//! Cluster-in-a-box, healthy: nodes, the flannel-style overlay, both pod styles, joins and
//! leaves, Kubernetes objects, and a teardown that leaves nothing behind. Needs root.

#![allow(clippy::unwrap_used)] // helpers panic on purpose: that is how a test fails

use netheal_e2e::cluster::state::list_cluster_namespaces;
use netheal_e2e::cluster::{Cluster, PodOptions, PodStyle};

/// A cluster name no other test or concurrent run uses.
fn unique(tag: char) -> String {
    format!("{tag}{:x}", std::process::id())
}

fn netns_list() -> String {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn pods_ping_across_nodes_in_both_styles_and_teardown_leaves_nothing() {
    let name = unique('h');
    let names;
    {
        let mut cluster = Cluster::build(&name, 3).unwrap();
        for node in ["node1", "node2", "node3"] {
            cluster.add_pod(node, PodOptions::bridge()).unwrap();
            cluster.add_pod(node, PodOptions::calico()).unwrap();
        }
        names = cluster.namespaces();
        assert_eq!(names.len(), 3 + 6 + 1);
        assert!(names.contains(&format!("nhc-{name}-node1")));
        assert!(names.contains(&format!("nhc-{name}-net")));
        assert!(names.contains(&format!("cni-{name}-node3-1")));

        // The overlay on node1: one PERMANENT neighbour, fdb entry and onlink route per peer.
        let neigh = cluster.neighbours("node1").unwrap();
        let fdb = cluster.fdb("node1").unwrap();
        let routes = cluster.routes("node1").unwrap();
        for peer in ["node2", "node3"] {
            let p = cluster.node(peer).unwrap();
            let vtep = p.vtep_ip.to_string();
            assert!(
                neigh.iter().any(|n| n.dst == vtep
                    && n.dev == "flannel.1"
                    && n.is_permanent()
                    && n.lladdr.as_deref() == Some(p.vtep_mac.as_str())),
                "{neigh:?}"
            );
            assert!(
                fdb.iter().any(|f| f.mac == p.vtep_mac
                    && f.dst.as_deref() == Some(p.underlay_ip.to_string().as_str())),
                "{fdb:?}"
            );
            assert!(
                routes.iter().any(|r| r.dst == p.pod_cidr
                    && r.gateway.as_deref() == Some(vtep.as_str())
                    && r.dev.as_deref() == Some("flannel.1")
                    && r.flags.iter().any(|f| f == "onlink")),
                "{routes:?}"
            );
        }
        let n1 = cluster.node("node1").unwrap().netns.name().to_string();
        assert_eq!(cluster.sysctl(&n1, "net/ipv4/ip_forward").unwrap(), "1");
        assert_eq!(
            cluster.sysctl(&n1, "net/ipv4/conf/all/arp_ignore").unwrap(),
            "0"
        );

        // Calico pods: /32, host route on the cali veth, proxy ARP on it.
        let cali = cluster.pod(&format!("cni-{name}-node2-1")).unwrap();
        assert_eq!(cali.style, PodStyle::Calico);
        assert!(cali.host_veth.starts_with("cali") && cali.host_veth.len() <= 15);
        let n2 = cluster.node("node2").unwrap().netns.name().to_string();
        let path = format!("net/ipv4/conf/{}/proxy_arp", cali.host_veth);
        assert_eq!(cluster.sysctl(&n2, &path).unwrap(), "1");
        let r2 = cluster.routes("node2").unwrap();
        assert!(
            r2.iter().any(|r| r.dst == cali.ip.to_string()
                && r.dev.as_deref() == Some(cali.host_veth.as_str()))
        );

        // Every style to every style, across nodes.
        for (from, to) in [
            ("node1-0", "node2-0"),
            ("node1-0", "node3-1"),
            ("node2-1", "node3-0"),
            ("node3-1", "node1-1"),
        ] {
            let (from, to) = (format!("cni-{name}-{from}"), format!("cni-{name}-{to}"));
            assert!(cluster.ping(&from, &to).unwrap(), "{from} -> {to}");
        }
        assert!(names.iter().all(|n| netns_list().contains(n.as_str())));
    }
    let left = netns_list();
    for n in &names {
        assert!(
            !left
                .lines()
                .any(|l| l.split_whitespace().next() == Some(n.as_str())),
            "{n} left behind"
        );
    }
    assert!(list_cluster_namespaces(&name).unwrap().is_empty());
}

#[test]
fn a_joining_node_is_programmed_on_every_peer_and_a_leaving_one_is_removed() {
    let name = unique('j');
    let mut cluster = Cluster::build(&name, 2).unwrap();
    cluster.add_pod("node1", PodOptions::bridge()).unwrap();
    cluster.add_node_in_pool("node3", "gpu").unwrap();
    let pod = cluster.add_pod("node3", PodOptions::calico()).unwrap();
    let (new_pod, vtep) = (
        pod.netns.name().to_string(),
        cluster.node("node3").unwrap().vtep_ip,
    );
    assert!(
        cluster
            .ping(&format!("cni-{name}-node1-0"), &new_pod)
            .unwrap()
    );
    for peer in ["node1", "node2"] {
        let neigh = cluster.neighbours(peer).unwrap();
        assert!(
            neigh
                .iter()
                .any(|n| n.dst == vtep.to_string() && n.is_permanent())
        );
    }
    let objects = cluster.node_objects();
    assert_eq!(objects.len(), 3);
    let labels = objects[2].metadata.labels.clone().unwrap();
    assert_eq!(labels["netheal.io/pool"], "gpu");

    cluster.remove_node("node3").unwrap();
    assert!(!netns_list().contains(&new_pod));
    assert!(!netns_list().contains(&format!("nhc-{name}-node3")));
    for peer in ["node1", "node2"] {
        let neigh = cluster.neighbours(peer).unwrap();
        assert!(
            !neigh.iter().any(|n| n.dst == vtep.to_string()),
            "{peer}: {neigh:?}"
        );
        let routes = cluster.routes(peer).unwrap();
        assert!(
            !routes.iter().any(|r| r.dst == "10.244.3.0/24"),
            "{peer}: {routes:?}"
        );
        assert!(cluster.fdb(peer).unwrap().len() == 1, "one peer left");
    }
    assert_eq!(cluster.node_objects().len(), 2);
}

#[test]
fn pod_objects_describe_workloads_and_one_cni_agent_per_node() {
    let name = unique('o');
    let mut cluster = Cluster::build(&name, 2).unwrap();
    cluster.add_pod("node1", PodOptions::calico()).unwrap();
    cluster
        .add_pod("node2", PodOptions::bridge().bare().named("lonely"))
        .unwrap();
    let pods = cluster.pod_objects();
    assert_eq!(pods.len(), 4);
    let lonely = pods
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("lonely"))
        .unwrap();
    assert!(lonely.metadata.owner_references.is_none());
    let status = lonely.status.clone().unwrap();
    assert_eq!(status.pod_ip.as_deref(), Some("10.244.2.2"));
    let agents: Vec<_> = pods
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some("kube-system"))
        .collect();
    assert_eq!(agents.len(), 2);
    let node = &cluster.node_objects()[0];
    let ann = node.metadata.annotations.clone().unwrap();
    assert!(
        ann["flannel.alpha.coreos.com/backend-data"]
            .contains(&cluster.node("node1").unwrap().vtep_mac)
    );
}

#[test]
fn a_new_namespace_inherits_init_net_not_its_creator_so_pods_copy_the_node() {
    let name = unique('i');
    let mut cluster = Cluster::build(&name, 1).unwrap();
    let node_ns = cluster.node("node1").unwrap().netns.name().to_string();
    let node = cluster.netns(&node_ns).unwrap();
    node.set_sysctl("net/ipv4/conf/all/arp_ignore", "2")
        .unwrap();
    // The kernel: a namespace made from inside the node copies init_net's values.
    let out = node
        .exec(
            "unshare",
            &["-n", "cat", "/proc/sys/net/ipv4/conf/all/arp_ignore"],
        )
        .unwrap();
    let child = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let root = std::fs::read_to_string("/proc/sys/net/ipv4/conf/all/arp_ignore").unwrap();
    assert_eq!(
        child,
        root.trim(),
        "a new netns copies init_net, not the node"
    );
    // The cluster: a pod copies the node's values explicitly.
    let pod = cluster
        .add_pod("node1", PodOptions::calico())
        .unwrap()
        .netns
        .name()
        .to_string();
    assert_eq!(
        cluster
            .sysctl(&pod, "net/ipv4/conf/all/arp_ignore")
            .unwrap(),
        "2"
    );
}
