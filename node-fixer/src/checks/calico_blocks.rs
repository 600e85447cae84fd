//! `PeerRouteMissing` on Calico (seed 001): every live peer's IPAM blocks have a route on this
//! node. Calico IPAM does not use `spec.podCIDR`: the blocks a node owns are its `BlockAffinity`
//! objects (`crd.projectcalico.org/v1`, cluster-scoped, written by calico-node), and calico-node
//! programs one route per peer block (`<block> via <peer IP> dev tunl0 onlink` in IPIP mode,
//! `<block> via <peer VTEP> dev vxlan.calico onlink` in VXLAN mode, `<block> via <peer IP> dev
//! eth0 proto bird` without encapsulation). A peer block no non-default route covers is the
//! seed-001 gap; the remedy is restarting calico-node on this node (`RestartCniPod`).
//!
//! calico-node also writes each node's tunnel address into its Node object
//! (`projectcalico.org/IPv4IPIPTunnelAddr`, `IPv4VXLANTunnelAddr`, `IPv6VXLANTunnelAddrV6`): an
//! address from one of the node's blocks. A peer's tunnel address that none of its known blocks
//! holds (the `BlockAffinity` API is not served or not readable) must be routed too: that finds
//! seed 001 from the Node objects alone.

use super::{Input, details, finding};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use netheal_crds::{Check, Finding};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::IpAddr;

/// The API group of Calico's `BlockAffinity`.
pub const GROUP: &str = "crd.projectcalico.org";
/// Its version.
pub const VERSION: &str = "v1";
/// Its kind.
pub const KIND: &str = "BlockAffinity";

/// One IPAM block affine to a node, as its `BlockAffinity` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CalicoBlock {
    /// The `BlockAffinity` object's name.
    pub name: String,
    /// The node the block is affine to (`spec.node`).
    pub node: String,
    /// The block (`spec.cidr`, a /26 for IPv4 by default, /122 for IPv6).
    pub cidr: IpNet,
}

/// The Node annotations with calico-node's tunnel addresses.
pub const TUNNEL_ADDRESS_ANNOTATIONS: [&str; 3] = [
    "projectcalico.org/IPv4IPIPTunnelAddr",
    "projectcalico.org/IPv4VXLANTunnelAddr",
    "projectcalico.org/IPv6VXLANTunnelAddrV6",
];

/// A `BlockAffinity` object that is not what Calico writes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("BlockAffinity {name}: {field}: {reason}")]
pub struct BlockAffinityError {
    /// The object's name.
    pub name: String,
    /// The field at fault (`spec.cidr`).
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// The block of one `BlockAffinity` object (its JSON), `None` when the affinity is not in force
/// (`spec.state` other than `confirmed`, or `spec.deleted: "true"`: calico-node has not
/// programmed, or is withdrawing, its routes).
pub fn block_from_object(object: &Value) -> Result<Option<CalicoBlock>, BlockAffinityError> {
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    block_from_spec(name, &object["spec"])
}

/// [`block_from_object`] from the object's name and its `spec` (the agent's watched objects
/// are read in place, not serialized again).
pub fn block_from_spec(
    name: &str,
    spec: &Value,
) -> Result<Option<CalicoBlock>, BlockAffinityError> {
    let error = |field, reason: String| BlockAffinityError {
        name: name.to_string(),
        field,
        reason,
    };
    let text = |field: &'static str, key: &str| {
        spec[key]
            .as_str()
            .map(str::trim)
            .ok_or_else(|| error(field, "missing or not a string".into()))
    };
    let state = text("spec.state", "state")?;
    // Older releases wrote `deleted` as a boolean, newer ones as a string.
    let deleted = match &spec["deleted"] {
        Value::Bool(b) => *b,
        Value::String(s) => s.trim().eq_ignore_ascii_case("true"),
        _ => false,
    };
    if state != "confirmed" || deleted {
        return Ok(None);
    }
    let node = text("spec.node", "node")?;
    if node.is_empty() {
        return Err(error("spec.node", "empty".into()));
    }
    let cidr = text("spec.cidr", "cidr")?
        .parse::<IpNet>()
        .map_err(|e| error("spec.cidr", e.to_string()))?;
    Ok(Some(CalicoBlock {
        name: name.to_string(),
        node: node.to_string(),
        cidr: cidr.trunc(),
    }))
}

/// The tunnel addresses calico-node annotated on a Node.
fn tunnel_addresses(node: &Node) -> Vec<IpAddr> {
    let Some(annotations) = node.metadata.annotations.as_ref() else {
        return Vec::new();
    };
    TUNNEL_ADDRESS_ANNOTATIONS
        .iter()
        .filter_map(|key| annotations.get(*key)?.trim().parse().ok())
        .collect()
}

/// Whether the cluster runs Calico IPAM: `BlockAffinity` objects are known, or a Node carries
/// a calico-node tunnel address. Then the Nodes' `spec.podCIDR` is not what pods are routed by.
pub fn calico_ipam(cluster: &crate::engine::ClusterFacts) -> bool {
    !cluster.calico_blocks.is_empty()
        || cluster
            .nodes
            .iter()
            .any(|node| !tunnel_addresses(node).is_empty())
}

/// A finding for every block of a live peer (a Node object exists for its `spec.node`) that no
/// non-default route covers, and for every tunnel address of a live peer that none of its known
/// blocks holds and no route covers.
pub fn check(input: &Input<'_>) -> Vec<Finding> {
    let cluster = input.cluster;
    let live: BTreeSet<&str> = cluster
        .nodes
        .iter()
        .filter_map(|n| n.metadata.name.as_deref())
        .collect();
    let this = cluster.this_node.as_deref();
    let host = &input.snapshot.host;
    let mut out = Vec::new();
    for node in &cluster.nodes {
        let Some(name) = node.metadata.name.as_deref() else {
            continue;
        };
        if Some(name) == this {
            continue;
        }
        for addr in tunnel_addresses(node) {
            let held = cluster
                .calico_blocks
                .iter()
                .any(|b| b.node == name && b.cidr.contains(&addr));
            let host_net = IpNet::from(addr);
            if held || host.routes_cover(host_net) {
                continue;
            }
            out.push(finding(
                Check::PeerRouteMissing,
                format!("route {host_net}"),
                "no route".to_string(),
                format!("route to Node {name}'s Calico tunnel address"),
                format!(
                    "no route to Node {name}'s Calico tunnel address {addr} (its Node annotation), so none to the IPAM block holding it: calico-node on this node programs it"
                ),
                details([
                    ("netns", String::new()),
                    ("node", name.to_string()),
                    ("tunnelAddress", addr.to_string()),
                ]),
            ));
        }
    }
    for block in &cluster.calico_blocks {
        if Some(block.node.as_str()) == this || !live.contains(block.node.as_str()) {
            continue;
        }
        if host.routes_cover(block.cidr) {
            continue;
        }
        let cidr = block.cidr.to_string();
        out.push(finding(
            Check::PeerRouteMissing,
            format!("route {cidr}"),
            "no route".to_string(),
            format!("route to Node {}'s Calico block", block.node),
            format!(
                "no route to Node {}'s pods in Calico block {cidr} (BlockAffinity {}): calico-node on this node programs it",
                block.node, block.name
            ),
            details([
                ("netns", String::new()),
                ("node", block.node.clone()),
                ("block", cidr),
                ("blockAffinity", block.name.clone()),
            ]),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn affinity(name: &str, node: &str, cidr: &str, state: &str, deleted: Value) -> Value {
        json!({
            "apiVersion": "crd.projectcalico.org/v1",
            "kind": "BlockAffinity",
            "metadata": {"name": name},
            "spec": {"cidr": cidr, "node": node, "state": state, "deleted": deleted, "type": "host"},
        })
    }

    #[test]
    fn confirmed_affinities_are_blocks_and_others_are_not() {
        let ok = affinity(
            "node2-10-40-52-128-26",
            "node2",
            "10.40.52.128/26",
            "confirmed",
            json!("false"),
        );
        assert_eq!(
            block_from_object(&ok).unwrap(),
            Some(CalicoBlock {
                name: "node2-10-40-52-128-26".into(),
                node: "node2".into(),
                cidr: "10.40.52.128/26".parse().unwrap(),
            })
        );
        for (state, deleted) in [
            ("pending", json!("false")),
            ("pendingDeletion", json!("false")),
            ("confirmed", json!("true")),
            ("confirmed", json!(true)),
        ] {
            let v = affinity("b", "node2", "10.40.52.128/26", state, deleted.clone());
            assert_eq!(block_from_object(&v).unwrap(), None, "{state} {deleted}");
        }
        let v6 = affinity(
            "b6",
            "node2",
            "fd00:10:40::40/122",
            "confirmed",
            json!("false"),
        );
        assert!(
            block_from_object(&v6)
                .unwrap()
                .unwrap()
                .cidr
                .addr()
                .is_ipv6()
        );
    }

    #[test]
    fn a_bad_affinity_is_an_error_naming_the_field() {
        let bad = affinity("b", "node2", "10.40.52.300/26", "confirmed", json!("false"));
        let err = block_from_object(&bad).unwrap_err();
        assert_eq!(err.field, "spec.cidr");
        assert!(
            err.to_string().starts_with("BlockAffinity b: spec.cidr:"),
            "{err}"
        );
        let no_node = json!({"metadata": {"name": "c"}, "spec": {"cidr": "10.0.0.0/26", "state": "confirmed"}});
        assert_eq!(block_from_object(&no_node).unwrap_err().field, "spec.node");
        let no_spec = json!({"metadata": {"name": "d"}});
        assert_eq!(block_from_object(&no_spec).unwrap_err().field, "spec.state");
    }
}
