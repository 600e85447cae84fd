//! Naming and addressing of a cluster-in-a-box: pure functions, no kernel access.
//!
//! Every name and address of a cluster follows from its name and a node's index, so two clusters
//! with different names never share a network namespace, and the addresses live only inside the
//! cluster's own namespaces (nothing is configured in the root namespace).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::ClusterError;

/// Longest cluster name: keeps namespace names short and readable.
pub const MAX_CLUSTER_NAME: usize = 8;
/// Longest node name.
pub const MAX_NODE_NAME: usize = 12;
/// Highest node index: node `i` gets underlay `.i`, and `.254` is the underlay gateway.
pub const MAX_NODE_INDEX: u8 = 200;
/// Pods per node: pod `n` gets `10.244.<i>.<n + 2>`.
pub const MAX_PODS_PER_NODE: u32 = 250;
/// The VXLAN device name on every node.
pub const VXLAN_DEVICE: &str = "flannel.1";
/// flannel's IPv6 VXLAN device on every node of a dual-stack cluster.
pub const VXLAN_DEVICE_V6: &str = "flannel-v6.1";
/// The VNI of the overlay.
pub const VNI: u32 = 1;
/// The VXLAN UDP port (flannel's default).
pub const VXLAN_PORT: u16 = 8472;
/// The bridge of bridge-style pods on every node.
pub const POD_BRIDGE: &str = "cni0";
/// The pods' MTU: the VXLAN device's (the uplink's 1500 less 50 bytes of encapsulation), as
/// flannel hands it to the CNI plugin (`FLANNEL_MTU`) and Calico sets `veth_mtu` for VXLAN.
pub const POD_MTU: u32 = 1450;
/// The uplink of every node (its underlay interface).
pub const UPLINK: &str = "eth0";
/// The underlay bridge in the cluster's "net" namespace.
pub const UNDERLAY_BRIDGE: &str = "br0";
/// Calico's fake gateway: the pod's default route points at it and the host answers by proxy ARP.
pub const CALICO_GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// The MAC Calico gives every host-side `cali*` veth; its EUI-64 link-local address is the IPv6
/// default gateway of every Calico pod.
pub const CALICO_HOST_MAC: &str = "ee:ee:ee:ee:ee:ee";
/// Calico's IPv6 gateway: the link-local address of [`CALICO_HOST_MAC`].
pub const CALICO_GATEWAY_V6: Ipv6Addr =
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0xecee, 0xeeff, 0xfeee, 0xeeee);

/// Calico's VXLAN device (Calico's `vxlanMode: Always`).
pub const CALICO_VXLAN_DEVICE: &str = "vxlan.calico";
/// Calico's VXLAN VNI.
pub const CALICO_VNI: u32 = 4096;
/// Calico's VXLAN UDP port.
pub const CALICO_VXLAN_PORT: u16 = 4789;
/// Pods per node on a Calico cluster: one /26 IPAM block per node, its first address the
/// node's tunnel address.
pub const MAX_CALICO_PODS_PER_NODE: u32 = 62;

/// Which overlay and IPAM a cluster runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overlay {
    /// flannel's VXLAN (`flannel.1`), host-local IPAM from each Node's `spec.podCIDR`, the
    /// `canal` agent.
    #[default]
    Flannel,
    /// Calico's VXLAN (`vxlan.calico`), Calico IPAM: one /26 block per node recorded in a
    /// `BlockAffinity` object, one route per peer block; the `calico-node` agent. Calico's IPIP
    /// (`tunl0`) cannot run here: this kernel has no `ipip` device type.
    CalicoVxlan,
}

impl Overlay {
    /// The name `FromStr` reads (`flannel`, `calico-vxlan`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Flannel => "flannel",
            Self::CalicoVxlan => "calico-vxlan",
        }
    }
}

impl std::str::FromStr for Overlay {
    type Err = ClusterError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "flannel" => Ok(Self::Flannel),
            "calico-vxlan" => Ok(Self::CalicoVxlan),
            other => Err(ClusterError::InvalidName {
                field: "overlay".into(),
                value: other.into(),
                reason: "must be `flannel` or `calico-vxlan`".into(),
            }),
        }
    }
}

/// Which address families a cluster runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stack {
    /// IPv4 only.
    #[default]
    Ipv4,
    /// IPv4 and IPv6: an IPv6 underlay, `flannel-v6.1`, an IPv6 range per node and an IPv6
    /// address per pod beside the IPv4 ones.
    DualStack,
}

impl Stack {
    /// True for [`Stack::DualStack`].
    pub fn has_ipv6(self) -> bool {
        self == Self::DualStack
    }
}

/// The names and addresses of one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterPlan {
    name: String,
    octet: u8,
}

/// Check a name: 1..=`max` characters of `[a-z0-9]`, starting with a letter.
pub fn validate_name(field: &str, value: &str, max: usize) -> Result<(), ClusterError> {
    let invalid = |reason: String| ClusterError::InvalidName {
        field: field.to_string(),
        value: value.to_string(),
        reason,
    };
    if value.is_empty() || value.len() > max {
        return Err(invalid(format!("must be 1 to {max} characters long")));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Err(invalid(
            "only lowercase letters and digits are allowed".into(),
        ));
    }
    if !value.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(invalid("must start with a letter".into()));
    }
    Ok(())
}

/// FNV-1a, 64 bits: a stable hash for derived names (stable across Rust versions, unlike
/// `DefaultHasher`).
pub fn fnv1a(data: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in data.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

impl ClusterPlan {
    /// The plan of cluster `name` (1..=8 characters of `[a-z0-9]`, starting with a letter).
    pub fn new(name: &str) -> Result<Self, ClusterError> {
        validate_name("cluster name", name, MAX_CLUSTER_NAME)?;
        // 16..=255: a third underlay octet that differs between most clusters, which makes
        // captures and error messages easy to tell apart. Clusters never share a namespace, so a
        // collision is harmless.
        let octet = 16 + (fnv1a(name) % 240) as u8;
        Ok(Self {
            name: name.to_string(),
            octet,
        })
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The third octet of the underlay subnet `172.31.<octet>.0/24`.
    pub fn octet(&self) -> u8 {
        self.octet
    }

    /// Prefix of every node and "net" namespace of this cluster: `nhc-<cluster>-`.
    pub fn node_prefix(&self) -> String {
        format!("nhc-{}-", self.name)
    }

    /// Prefix of every pod namespace of this cluster: `cni-<cluster>-`.
    pub fn pod_prefix(&self) -> String {
        format!("cni-{}-", self.name)
    }

    /// The namespace holding the underlay bridge: `nhc-<cluster>-net`.
    pub fn net_netns(&self) -> String {
        format!("nhc-{}-net", self.name)
    }

    /// A node's namespace: `nhc-<cluster>-<node>`.
    pub fn node_netns(&self, node: &str) -> String {
        format!("nhc-{}-{node}", self.name)
    }

    /// A pod's namespace: `cni-<cluster>-<node>-<n>`.
    pub fn pod_netns(&self, node: &str, n: u32) -> String {
        format!("cni-{}-{node}-{n}", self.name)
    }

    /// The glob matching the pod namespaces of one node (for node-fixer's `--pod-netns`).
    pub fn pod_netns_glob(&self, node: &str) -> String {
        format!("/var/run/netns/cni-{}-{node}-*", self.name)
    }

    /// The underlay subnet.
    pub fn underlay_prefix_len(&self) -> u8 {
        24
    }

    /// Node `index`'s underlay (InternalIP, flannel public-ip) address.
    pub fn underlay_ip(&self, index: u8) -> Ipv4Addr {
        Ipv4Addr::new(172, 31, self.octet, index)
    }

    /// The underlay gateway (on the bridge in the "net" namespace); nodes' default route.
    pub fn underlay_gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(172, 31, self.octet, 254)
    }

    /// The underlay-side veth of node `index` in the "net" namespace.
    pub fn underlay_port(&self, index: u8) -> String {
        format!("n{index}")
    }

    /// Node `index`'s pod CIDR, `10.244.<index>.0/24`.
    pub fn pod_cidr(&self, index: u8) -> String {
        format!("10.244.{index}.0/24")
    }

    /// Node `index`'s VTEP address (`flannel.1`, /32): `10.244.<index>.0`.
    pub fn vtep_ip(&self, index: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 244, index, 0)
    }

    /// Node `index`'s `cni0` address, the bridge pods' gateway: `10.244.<index>.1`.
    pub fn bridge_ip(&self, index: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 244, index, 1)
    }

    /// The address of pod `n` on node `index`: `10.244.<index>.<n + 2>`.
    pub fn pod_ip(&self, index: u8, n: u32) -> Result<Ipv4Addr, ClusterError> {
        if n >= MAX_PODS_PER_NODE {
            return Err(ClusterError::Exhausted(format!(
                "node index {index} already has {MAX_PODS_PER_NODE} pods"
            )));
        }
        Ok(Ipv4Addr::new(10, 244, index, (n + 2) as u8))
    }

    /// The IPv6 underlay prefix length.
    pub fn underlay6_prefix_len(&self) -> u8 {
        64
    }

    /// Node `index`'s IPv6 underlay address (InternalIP, flannel `public-ipv6`):
    /// `fd31:<octet>::<index>` (hex).
    pub fn underlay_ip6(&self, index: u8) -> Ipv6Addr {
        Ipv6Addr::new(
            0xfd31,
            u16::from(self.octet),
            0,
            0,
            0,
            0,
            0,
            u16::from(index),
        )
    }

    /// The IPv6 underlay gateway, `fd31:<octet>::fe`.
    pub fn underlay_gateway6(&self) -> Ipv6Addr {
        Ipv6Addr::new(0xfd31, u16::from(self.octet), 0, 0, 0, 0, 0, 0xfe)
    }

    /// Node `index`'s IPv6 pod range, `fd00:10:244:<index>::/64` (hex).
    pub fn pod_cidr6(&self, index: u8) -> String {
        format!("{}/64", self.vtep_ip6(index))
    }

    /// Node `index`'s IPv6 VTEP address (`flannel-v6.1`, /128): the range's first address.
    pub fn vtep_ip6(&self, index: u8) -> Ipv6Addr {
        Ipv6Addr::new(0xfd00, 0x10, 0x244, u16::from(index), 0, 0, 0, 0)
    }

    /// Node `index`'s IPv6 `cni0` address, `fd00:10:244:<index>::1`.
    pub fn bridge_ip6(&self, index: u8) -> Ipv6Addr {
        Ipv6Addr::new(0xfd00, 0x10, 0x244, u16::from(index), 0, 0, 0, 1)
    }

    /// The IPv6 address of pod `n` on node `index`: `fd00:10:244:<index>::<n + 2>` (hex).
    pub fn pod_ip6(&self, index: u8, n: u32) -> Result<Ipv6Addr, ClusterError> {
        let v4 = self.pod_ip(index, n)?;
        Ok(Ipv6Addr::new(
            0xfd00,
            0x10,
            0x244,
            u16::from(index),
            0,
            0,
            0,
            u16::from(v4.octets()[3]),
        ))
    }

    /// Node `index`'s IPv6 VTEP MAC (`flannel-v6.1`) for its `generation`-th join:
    /// `0a:e6:<octet>:<index>:00:<generation>`.
    pub fn vtep_mac6(&self, index: u8, generation: u8) -> String {
        format!(
            "0a:e6:{:02x}:{:02x}:00:{:02x}",
            self.octet, index, generation
        )
    }

    /// Node `index`'s Calico IPAM block, `10.40.<index>.0/26`.
    pub fn calico_block(&self, index: u8) -> String {
        format!("{}/26", self.calico_tunnel_ip(index))
    }

    /// Node `index`'s Calico tunnel address (`vxlan.calico`, /32), the block's first address.
    pub fn calico_tunnel_ip(&self, index: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 40, index, 0)
    }

    /// The address of pod `n` on node `index` of a Calico cluster: `10.40.<index>.<n + 2>`.
    pub fn calico_pod_ip(&self, index: u8, n: u32) -> Result<Ipv4Addr, ClusterError> {
        if n >= MAX_CALICO_PODS_PER_NODE {
            return Err(ClusterError::Exhausted(format!(
                "node index {index}'s Calico block is full ({MAX_CALICO_PODS_PER_NODE} pods)"
            )));
        }
        Ok(Ipv4Addr::new(10, 40, index, (n + 2) as u8))
    }

    /// Node `index`'s `vxlan.calico` MAC: `66:ca:<octet>:<index>:00:00`.
    pub fn calico_vtep_mac(&self, index: u8) -> String {
        format!("66:ca:{:02x}:{:02x}:00:00", self.octet, index)
    }

    /// Node `index`'s VTEP MAC for its `generation`-th join: locally administered, unicast,
    /// `0a:e1:<octet>:<index>:00:<generation>` in hex.
    pub fn vtep_mac(&self, index: u8, generation: u8) -> String {
        format!(
            "0a:e1:{:02x}:{:02x}:00:{:02x}",
            self.octet, index, generation
        )
    }

    /// The host-side veth of a pod: `cali` + 11 hex digits (Calico's shape) or `veth` + 8 hex
    /// digits (the bridge plugin's shape), derived from the pod's namespace name. ≤ 15 chars.
    pub fn host_veth(&self, pod_netns: &str, calico: bool) -> String {
        let hash = fnv1a(pod_netns);
        if calico {
            format!("cali{:011x}", hash & 0x0fff_ffff_ffff)
        } else {
            format!("veth{:08x}", hash & 0xffff_ffff)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_team_convention() {
        let plan = ClusterPlan::new("t1").unwrap();
        assert_eq!(plan.node_netns("node1"), "nhc-t1-node1");
        assert_eq!(plan.pod_netns("node1", 0), "cni-t1-node1-0");
        assert_eq!(plan.net_netns(), "nhc-t1-net");
        assert_eq!(
            plan.pod_netns_glob("node2"),
            "/var/run/netns/cni-t1-node2-*"
        );
    }

    #[test]
    fn addresses_follow_the_node_index() {
        let plan = ClusterPlan::new("t1").unwrap();
        let o = plan.octet();
        assert!(o >= 16);
        assert_eq!(plan.underlay_ip(3), Ipv4Addr::new(172, 31, o, 3));
        assert_eq!(plan.pod_cidr(3), "10.244.3.0/24");
        assert_eq!(plan.vtep_ip(3), Ipv4Addr::new(10, 244, 3, 0));
        assert_eq!(plan.bridge_ip(3), Ipv4Addr::new(10, 244, 3, 1));
        assert_eq!(plan.pod_ip(3, 0).unwrap(), Ipv4Addr::new(10, 244, 3, 2));
        assert!(plan.pod_ip(3, MAX_PODS_PER_NODE).is_err());
    }

    #[test]
    fn ipv6_addresses_follow_the_node_index() {
        let plan = ClusterPlan::new("t1").unwrap();
        let o = plan.octet();
        assert_eq!(plan.underlay_ip6(3).to_string(), format!("fd31:{o:x}::3"));
        assert_eq!(
            plan.underlay_gateway6().to_string(),
            format!("fd31:{o:x}::fe")
        );
        assert_eq!(plan.pod_cidr6(3), "fd00:10:244:3::/64");
        assert_eq!(plan.vtep_ip6(3).to_string(), "fd00:10:244:3::");
        assert_eq!(plan.bridge_ip6(3).to_string(), "fd00:10:244:3::1");
        assert_eq!(plan.pod_ip6(3, 0).unwrap().to_string(), "fd00:10:244:3::2");
        assert_eq!(plan.pod_ip6(12, 9).unwrap().to_string(), "fd00:10:244:c::b");
        assert!(plan.pod_ip6(3, MAX_PODS_PER_NODE).is_err());
        assert_ne!(plan.vtep_mac6(3, 0), plan.vtep_mac(3, 0));
        assert_eq!(CALICO_GATEWAY_V6.to_string(), "fe80::ecee:eeff:feee:eeee");
    }

    #[test]
    fn calico_addresses_follow_the_node_index() {
        let plan = ClusterPlan::new("t1").unwrap();
        assert_eq!(plan.calico_block(3), "10.40.3.0/26");
        assert_eq!(plan.calico_tunnel_ip(3), Ipv4Addr::new(10, 40, 3, 0));
        assert_eq!(
            plan.calico_pod_ip(3, 0).unwrap(),
            Ipv4Addr::new(10, 40, 3, 2)
        );
        assert_eq!(
            plan.calico_pod_ip(3, 61).unwrap(),
            Ipv4Addr::new(10, 40, 3, 63)
        );
        assert!(plan.calico_pod_ip(3, MAX_CALICO_PODS_PER_NODE).is_err());
        assert_eq!(
            "calico-vxlan".parse::<Overlay>().unwrap(),
            Overlay::CalicoVxlan
        );
        assert!(
            "ipip"
                .parse::<Overlay>()
                .unwrap_err()
                .to_string()
                .contains("overlay")
        );
    }

    #[test]
    fn vtep_macs_are_unicast_local_and_change_per_generation() {
        let plan = ClusterPlan::new("t1").unwrap();
        let a = plan.vtep_mac(2, 0);
        let b = plan.vtep_mac(2, 1);
        assert_ne!(a, b);
        let first = u8::from_str_radix(&a[..2], 16).unwrap();
        assert_eq!(first & 0x01, 0, "unicast");
        assert_eq!(first & 0x02, 0x02, "locally administered");
        assert_eq!(a.len(), 17);
    }

    #[test]
    fn host_veth_names_fit_an_interface_name() {
        let plan = ClusterPlan::new("abcdefgh").unwrap();
        let ns = plan.pod_netns("abcdefghijkl", 249);
        let cali = plan.host_veth(&ns, true);
        let veth = plan.host_veth(&ns, false);
        assert!(cali.starts_with("cali") && cali.len() == 15, "{cali}");
        assert!(veth.starts_with("veth") && veth.len() == 12, "{veth}");
        assert_ne!(
            plan.host_veth("cni-a-b-0", true),
            plan.host_veth("cni-a-b-1", true)
        );
    }

    #[test]
    fn bad_names_are_refused_with_the_field_named() {
        for bad in ["", "T1", "a-b", "1abc", "waytoolongname"] {
            let err = ClusterPlan::new(bad).unwrap_err().to_string();
            assert!(err.contains("cluster name"), "{bad}: {err}");
        }
        assert!(validate_name("node name", "node1", MAX_NODE_NAME).is_ok());
    }
}
