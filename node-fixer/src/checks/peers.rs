//! The overlay truth read from Node objects: flannel's annotations (IPv4, and IPv6 on a
//! dual-stack flannel: `backend-v6-data`, `public-ipv6`) and `spec.podCIDR`/`podCIDRs`.

use crate::engine::ClusterFacts;
use crate::snapshot::Mac;
use ipnet::{Ipv4Net, Ipv6Net};
use k8s_openapi::api::core::v1::Node;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// flannel's backend data annotation (`{"VNI":1,"VtepMAC":"…"}`).
pub const BACKEND_DATA: &str = "flannel.alpha.coreos.com/backend-data";
/// flannel's public IP annotation.
pub const PUBLIC_IP: &str = "flannel.alpha.coreos.com/public-ip";
/// flannel's IPv6 backend data annotation (dual-stack: the `flannel-v6.<VNI>` VTEP's MAC).
pub const BACKEND_V6_DATA: &str = "flannel.alpha.coreos.com/backend-v6-data";
/// flannel's public IPv6 annotation (dual-stack: the IPv6 VTEP's underlay address).
pub const PUBLIC_IPV6: &str = "flannel.alpha.coreos.com/public-ipv6";

/// One node as the overlay sees it. Fields are `None` when the Node lacks or garbles them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Node name.
    pub name: String,
    /// The node's flannel VTEP MAC.
    pub vtep_mac: Option<Mac>,
    /// VXLAN network id (the interface is `flannel.<VNI>`).
    pub vni: Option<u32>,
    /// The node's underlay address.
    pub public_ip: Option<IpAddr>,
    /// The node's pod CIDR.
    pub pod_cidr: Option<Ipv4Net>,
    /// The node's IPv6 flannel VTEP MAC (`backend-v6-data`).
    pub vtep_mac6: Option<Mac>,
    /// The node's IPv6 underlay address (`public-ipv6`).
    pub public_ipv6: Option<Ipv6Addr>,
    /// The node's IPv6 pod CIDR (the IPv6 range of `spec.podCIDRs`).
    pub pod_cidr6: Option<Ipv6Net>,
    /// This node (not a peer).
    pub is_self: bool,
}

impl Peer {
    /// The flannel neighbour address of this node's subnet (`10.244.1.0`).
    pub fn vtep_ip(&self) -> Option<Ipv4Addr> {
        self.pod_cidr.map(|c| c.network())
    }

    /// The VXLAN interface name (`flannel.1`).
    pub fn interface(&self) -> String {
        format!("flannel.{}", self.vni.unwrap_or(1))
    }

    /// The flannel IPv6 neighbour address of this node's IPv6 subnet (`fd00:10:244:1::`).
    pub fn vtep_ip6(&self) -> Option<Ipv6Addr> {
        self.pod_cidr6.map(|c| c.network())
    }

    /// The IPv6 VXLAN interface name (`flannel-v6.1`).
    pub fn interface6(&self) -> String {
        format!("flannel-v6.{}", self.vni.unwrap_or(1))
    }
}

/// Decode one Node.
pub fn peer_from(node: &Node, this_node: Option<&str>) -> Peer {
    let name = node.metadata.name.clone().unwrap_or_default();
    let annotations = node.metadata.annotations.as_ref();
    let get = |k: &str| annotations.and_then(|a| a.get(k)).map(String::as_str);
    let backend: Option<serde_json::Value> =
        get(BACKEND_DATA).and_then(|t| serde_json::from_str(t).ok());
    let vtep_mac = backend
        .as_ref()
        .and_then(|b| b.get("VtepMAC")?.as_str().and_then(Mac::parse));
    let vni = backend
        .as_ref()
        .and_then(|b| b.get("VNI")?.as_u64())
        .and_then(|v| u32::try_from(v).ok());
    let public_ip = get(PUBLIC_IP).and_then(|t| t.trim().parse().ok());
    let vtep_mac6 = get(BACKEND_V6_DATA)
        .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
        .and_then(|b| b.get("VtepMAC")?.as_str().and_then(Mac::parse));
    let public_ipv6 = get(PUBLIC_IPV6).and_then(|t| t.trim().parse().ok());
    let pod_cidr6 = node
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidrs.as_ref())
        .into_iter()
        .flatten()
        .find_map(|c| c.parse::<Ipv6Net>().ok())
        .map(|c| c.trunc());
    let pod_cidr = node
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_deref())
        .and_then(|c| c.parse::<Ipv4Net>().ok())
        .map(|c| c.trunc());
    Peer {
        is_self: this_node == Some(name.as_str()),
        name,
        vtep_mac,
        vni,
        public_ip,
        pod_cidr,
        vtep_mac6,
        public_ipv6,
        pod_cidr6,
    }
}

/// Every node of the cluster facts, decoded.
pub fn peers(cluster: &ClusterFacts) -> Vec<Peer> {
    cluster
        .nodes
        .iter()
        .map(|n| peer_from(n, cluster.this_node.as_deref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flannel_annotations_and_pod_cidr_are_read() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n2", "annotations": {
                BACKEND_DATA: "{\"VNI\":1,\"VtepMAC\":\"AA:bb:cc:dd:ee:02\"}",
                PUBLIC_IP: "172.18.0.3"}},
            "spec": {"podCIDR": "10.244.2.0/24"}
        }))
        .unwrap();
        let p = peer_from(&node, Some("n1"));
        assert_eq!(p.vtep_mac.unwrap().to_string(), "aa:bb:cc:dd:ee:02");
        assert_eq!(p.public_ip.unwrap().to_string(), "172.18.0.3");
        assert_eq!(p.vtep_ip().unwrap().to_string(), "10.244.2.0");
        assert_eq!(p.interface(), "flannel.1");
        assert!(!p.is_self);
        let garbled: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n3", "annotations": {BACKEND_DATA: "{not json"}}
        }))
        .unwrap();
        let dual: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n2", "annotations": {
                BACKEND_DATA: "{\"VNI\":1,\"VtepMAC\":\"aa:bb:cc:dd:ee:02\"}",
                BACKEND_V6_DATA: "{\"VNI\":1,\"VtepMAC\":\"aa:bb:cc:dd:ee:62\"}",
                PUBLIC_IPV6: "fd78::3"}},
            "spec": {"podCIDR": "10.244.2.0/24", "podCIDRs": ["10.244.2.0/24", "fd00:10:244:2::/64"]}
        }))
        .unwrap();
        let p = peer_from(&dual, Some("n1"));
        assert_eq!(p.vtep_mac6.unwrap().to_string(), "aa:bb:cc:dd:ee:62");
        assert_eq!(p.public_ipv6.unwrap().to_string(), "fd78::3");
        assert_eq!(p.vtep_ip6().unwrap().to_string(), "fd00:10:244:2::");
        assert_eq!(p.interface6(), "flannel-v6.1");
        let p = peer_from(&garbled, Some("n3"));
        assert!(p.vtep_mac.is_none() && p.pod_cidr.is_none() && p.is_self);
    }
}
