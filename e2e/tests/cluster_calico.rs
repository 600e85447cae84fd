//! Cluster-in-a-box on Calico's VXLAN overlay with Calico IPAM: one /26 block per node, pods
//! from it, one route per peer block over `vxlan.calico`, the `BlockAffinity` objects and
//! calico-node agent pods that describe it; seed 001's lost block route and what a restarted
//! calico-node does about it. Needs root.

#![allow(clippy::unwrap_used)] // helpers panic on purpose: that is how a test fails

use netheal_e2e::cluster::faults::{Change, Symptom};
use netheal_e2e::cluster::objects::{CALICO_IPV4_ADDRESS, CALICO_VXLAN_TUNNEL_ADDR};
use netheal_e2e::cluster::state::list_cluster_namespaces;
use netheal_e2e::cluster::{Cluster, Overlay, PodOptions, Stack};

fn unique(tag: char) -> String {
    format!("{tag}{:x}", std::process::id())
}

#[test]
fn calico_blocks_are_routed_between_nodes_and_described_by_block_affinities() {
    let name = unique('k');
    {
        let mut cluster =
            Cluster::build_shaped(&name, 3, Stack::Ipv4, Overlay::CalicoVxlan).unwrap();
        for node in ["node1", "node2", "node3"] {
            cluster.add_pod(node, PodOptions::calico()).unwrap();
        }
        let (a, b) = (format!("cni-{name}-node1-0"), format!("cni-{name}-node2-0"));
        assert_eq!(cluster.pod(&b).unwrap().ip.to_string(), "10.40.2.2");
        assert!(cluster.ping(&a, &b).unwrap());
        let routes = cluster.routes("node1").unwrap();
        let block = routes.iter().find(|r| r.dst == "10.40.2.0/26").unwrap();
        assert_eq!(block.dev.as_deref(), Some("vxlan.calico"));
        assert_eq!(block.gateway.as_deref(), Some("10.40.2.0"));
        assert!(
            routes.iter().all(|r| !r.dst.starts_with("10.244.")),
            "Calico IPAM does not route the Nodes' podCIDRs: {routes:?}"
        );
        // The objects: one confirmed BlockAffinity per node, Calico's Node annotations, and
        // calico-node agent pods.
        let affinities = cluster.block_affinity_objects();
        assert_eq!(affinities.len(), 3);
        assert_eq!(affinities[1]["spec"]["cidr"], "10.40.2.0/26");
        assert_eq!(affinities[1]["spec"]["node"], "node2");
        let node = &cluster.node_objects()[1];
        let ann = node.metadata.annotations.as_ref().unwrap();
        assert_eq!(ann[CALICO_VXLAN_TUNNEL_ADDR], "10.40.2.0");
        assert!(ann[CALICO_IPV4_ADDRESS].ends_with("/24"));
        let agents: Vec<String> = cluster
            .pod_objects()
            .into_iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some("kube-system"))
            .filter_map(|p| p.metadata.name)
            .collect();
        assert_eq!(
            agents,
            [
                "calico-node-node1",
                "calico-node-node2",
                "calico-node-node3"
            ]
        );

        // Seed 001: node1 lost its route to node2's block.
        let injected = cluster.inject_missing_route("node1", "node2").unwrap();
        assert_eq!(
            injected.changes,
            [Change::RouteRemoved {
                netns: format!("nhc-{name}-node1"),
                dst: "10.40.2.0/26".into()
            }]
        );
        assert!(matches!(injected.symptom, Symptom::Unreachable { .. }));
        assert!(cluster.symptom_present(&injected).unwrap());
        // A restarted calico-node on node1 programs it again.
        cluster.program_peers("node1").unwrap();
        assert!(!cluster.symptom_present(&injected).unwrap());
    }
    assert!(list_cluster_namespaces(&name).unwrap().is_empty());
}

#[test]
fn a_calico_cluster_refuses_what_it_cannot_be() {
    let name = unique('q');
    {
        let err = Cluster::create(&name, Stack::DualStack, Overlay::CalicoVxlan).unwrap_err();
        assert!(err.to_string().contains("IPv4 only"), "{err}");
        let mut cluster =
            Cluster::build_shaped(&name, 2, Stack::Ipv4, Overlay::CalicoVxlan).unwrap();
        let err = cluster.add_pod("node1", PodOptions::bridge()).unwrap_err();
        assert!(err.to_string().contains("Calico-style pods only"), "{err}");
        cluster.add_pod("node1", PodOptions::calico()).unwrap();
        cluster.add_pod("node2", PodOptions::calico()).unwrap();
        let err = cluster.inject_vtep_mac_change("node2").unwrap_err();
        assert!(err.to_string().contains("flannel"), "{err}");
    }
    assert!(list_cluster_namespaces(&name).unwrap().is_empty());
}
