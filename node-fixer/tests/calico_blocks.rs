//! `PeerRouteMissing` on a Calico-IPAM cluster (seed 001), on a real kernel: two nodes with
//! Calico's VXLAN dataplane (`vxlan.calico`, VNI 4096, :4789; one route per peer IPAM block via
//! the peer's tunnel address, onlink), the blocks known only from `BlockAffinity` objects. A
//! lost block route is found, through the library and through `node-fixer scan
//! --calico-blocks`; blocks of this node, of a node without a Node object and of pending
//! affinities are not expected; the Nodes' `spec.podCIDR` (which Calico IPAM ignores) is not
//! judged. (Calico's IPIP mode, `tunl0`, needs the `ipip` device type, which this kernel lacks;
//! the check judges the route alone, whatever device it leaves through.)

#![allow(clippy::unwrap_used)] // helpers panic on purpose: that is how a test fails

mod common;

use common::*;
use k8s_openapi::api::core::v1::Node;
use netheal_crds::{Action, Check};
use node_fixer::checks::calico_blocks::block_from_object;
use serde_json::{Value, json};

const MAC_A: &str = "66:a0:00:00:00:01";
const MAC_B: &str = "66:a0:00:00:00:02";

fn calico_node(name: &str, ip: &str, pod_cidr: &str) -> Node {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "annotations": {
            "projectcalico.org/IPv4Address": format!("{ip}/24"),
        }},
        "spec": {"podCIDR": pod_cidr},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
    }))
    .unwrap()
}

fn affinity(node: &str, cidr: &str, state: &str) -> Value {
    json!({
        "apiVersion": "crd.projectcalico.org/v1", "kind": "BlockAffinity",
        "metadata": {"name": format!("{node}-{}", cidr.replace(['.', '/'], "-"))},
        "spec": {"cidr": cidr, "node": node, "state": state, "deleted": "false", "type": "host"},
    })
}

/// The cluster's `BlockAffinity` objects: node2 owns two blocks, node1 one; node3 (no Node
/// object) and a pending affinity of node2 are not in force.
fn affinities() -> Vec<Value> {
    vec![
        affinity("node1", "10.40.51.0/26", "confirmed"),
        affinity("node2", "10.40.52.128/26", "confirmed"),
        affinity("node2", "10.40.52.192/26", "confirmed"),
        affinity("node3", "10.40.53.0/26", "confirmed"),
        affinity("node2", "10.40.54.0/26", "pending"),
    ]
}

/// `nf-cb-a` (node1) and `nf-cb-b` (node2) on 192.168.79.0/24, `vxlan.calico` on each with the
/// tunnel address of its first block, and on node1 what calico-node programs for node2's blocks;
/// a Calico pod `10.40.52.130` on node2.
struct Bed {
    a: Netns,
    _b: Netns,
    pod: Netns,
}

fn bed() -> Bed {
    let a = netns("nf-cb-a");
    let b = netns("nf-cb-b");
    veth(&a, "eth0", &b, "eth0");
    for (ns, me, mac, tunnel) in [
        (&a, "192.168.79.1", MAC_A, "10.40.51.0"),
        (&b, "192.168.79.2", MAC_B, "10.40.52.128"),
    ] {
        ns.set_sysctl("net/ipv4/ip_forward", "1").unwrap();
        ip(ns, &format!("addr add {me}/24 dev eth0"));
        // A default route, as every node has: proxy ARP answers only for what it can route.
        ip(ns, "route add default via 192.168.79.254 dev eth0");
        ip(
            ns,
            &format!(
                "link add vxlan.calico type vxlan id 4096 local {me} dev eth0 dstport 4789 nolearning"
            ),
        );
        ip(ns, &format!("link set vxlan.calico address {mac}"));
        ip(ns, &format!("addr add {tunnel}/32 dev vxlan.calico"));
        ip(ns, "link set vxlan.calico up");
    }
    // node1 -> node2's blocks, and node2 -> node1's block.
    ip(
        &a,
        &format!("neigh replace 10.40.52.128 lladdr {MAC_B} dev vxlan.calico nud permanent"),
    );
    exec(
        &a,
        &format!("bridge fdb append {MAC_B} dev vxlan.calico dst 192.168.79.2 self permanent"),
    );
    for block in ["10.40.52.128/26", "10.40.52.192/26"] {
        ip(
            &a,
            &format!("route add {block} via 10.40.52.128 dev vxlan.calico onlink"),
        );
    }
    ip(
        &b,
        &format!("neigh replace 10.40.51.0 lladdr {MAC_A} dev vxlan.calico nud permanent"),
    );
    exec(
        &b,
        &format!("bridge fdb append {MAC_A} dev vxlan.calico dst 192.168.79.1 self permanent"),
    );
    ip(
        &b,
        "route add 10.40.51.0/26 via 10.40.51.0 dev vxlan.calico onlink",
    );
    // calico-node's own block on node2: blackholed, its pods by host routes.
    ip(&b, "route add blackhole 10.40.52.128/26");
    let pod = netns("nf-cni-cb-0");
    ip(
        &b,
        &format!(
            "link add calicb0 type veth peer name eth0 netns {}",
            pod.name()
        ),
    );
    b.set_sysctl("net/ipv4/conf/calicb0/proxy_arp", "1")
        .unwrap();
    ip(&b, "link set calicb0 up");
    ip(&b, "route add 10.40.52.130/32 dev calicb0 scope link");
    ip(&pod, "addr add 10.40.52.130/32 dev eth0");
    ip(&pod, "link set eth0 up");
    ip(&pod, "route add 169.254.1.1 dev eth0 scope link");
    ip(&pod, "route add default via 169.254.1.1 dev eth0");
    Bed { a, _b: b, pod }
}

fn nodes() -> Vec<Node> {
    vec![
        calico_node("node1", "192.168.79.1", "10.244.1.0/24"),
        calico_node("node2", "192.168.79.2", "10.244.2.0/24"),
    ]
}

fn route_findings(bed: &Bed, dir: &std::path::Path) -> Vec<netheal_crds::Finding> {
    let mut config = config(&bed.a, "cb", dir, nodes(), "node1");
    config.cluster.calico_blocks = affinities()
        .iter()
        .filter_map(|a| block_from_object(a).unwrap())
        .collect();
    let mut policy = policy();
    policy.checks.overlay.cni = netheal_crds::Cni::Calico;
    findings_of(&policy, &config, Check::PeerRouteMissing)
}

fn pings(from: &Netns, to: &str) -> bool {
    from.ping(to, 2)
}

#[test]
fn a_lost_route_to_a_peers_calico_block_is_found_from_its_block_affinity() {
    let bed = bed();
    let dir = tempfile::tempdir().unwrap();
    assert!(pings(&bed.a, "10.40.52.130"), "the healthy bed must ping");
    let found = route_findings(&bed, dir.path());
    assert!(
        found.is_empty(),
        "every peer block is routed; own, unknown-node and pending blocks are not expected; the Nodes' podCIDRs are not Calico's: {found:?}"
    );

    // Seed 001: the route to node2's block is gone; the pod on node2 cannot be reached.
    ip(&bed.a, "route del 10.40.52.128/26");
    assert!(!pings(&bed.a, "10.40.52.130"));
    let found = route_findings(&bed, dir.path());
    assert_eq!(targets(&found), ["route 10.40.52.128/26"]);
    let f = &found[0];
    assert_eq!(f.action, Some(Action::RestartCniPod));
    assert_eq!(f.details.get("node").map(String::as_str), Some("node2"));
    assert_eq!(
        f.details.get("blockAffinity").map(String::as_str),
        Some("node2-10-40-52-128-26")
    );
    assert!(
        f.message.as_deref().unwrap_or("").contains("calico-node"),
        "{f:?}"
    );

    // The same through the command, from the files kubectl prints.
    let nodes_file = dir.path().join("nodes.json");
    let blocks_file = dir.path().join("blocks.json");
    std::fs::write(
        &nodes_file,
        json!({"kind": "List", "items": nodes()}).to_string(),
    )
    .unwrap();
    std::fs::write(
        &blocks_file,
        json!({"apiVersion": "v1", "kind": "List", "items": affinities()}).to_string(),
    )
    .unwrap();
    let policy_file = dir.path().join("p.yaml");
    std::fs::write(
        &policy_file,
        "apiVersion: netheal.io/v1alpha1\nkind: NetworkHealthPolicy\nmetadata: {name: p}\nspec:\n  checks:\n    overlay: {cni: Calico}\n",
    )
    .unwrap();
    let out = bin()
        .args([
            "scan",
            "--netns",
            "nf-cb-a",
            "--pod-netns",
            "/var/run/netns/nf-cni-cbx-*",
        ])
        .args(["--node-name", "node1", "--output", "json"])
        .args(["--policy", policy_file.to_str().unwrap()])
        .args(["--nodes", nodes_file.to_str().unwrap()])
        .args(["--calico-blocks", blocks_file.to_str().unwrap()])
        .args(["--sysctl-dir", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let routes: Vec<&str> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "PeerRouteMissing")
        .filter_map(|f| f["target"].as_str())
        .collect();
    assert_eq!(routes, ["route 10.40.52.128/26"], "{doc}");

    // What a restarted calico-node does: the route is back, the pod answers, no finding.
    ip(
        &bed.a,
        "route add 10.40.52.128/26 via 10.40.52.128 dev vxlan.calico onlink",
    );
    assert!(pings(&bed.a, "10.40.52.130"));
    assert!(route_findings(&bed, dir.path()).is_empty());
    assert!(pings(&bed.pod, "10.40.51.0"), "and back from the pod");
}

#[test]
fn a_malformed_block_affinity_file_is_refused_naming_the_item_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = dir.path().join("blocks.json");
    std::fs::write(
        &blocks,
        json!({"kind": "List", "items": [
            affinity("node2", "10.40.52.128/26", "confirmed"),
            affinity("node2", "10.40.52.300/26", "confirmed"),
        ]})
        .to_string(),
    )
    .unwrap();
    let out = bin()
        .args(["scan", "--calico-blocks", blocks.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("items[1]") && err.contains("spec.cidr"),
        "{err}"
    );
    std::fs::write(&blocks, "{\"kind\":\"List\"}").unwrap();
    let out = bin()
        .args(["scan", "--calico-blocks", blocks.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("items"));
}
