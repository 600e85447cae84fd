//! The `ip`/`bridge` command lines that build the overlay and the pods: pure data, so the exact
//! dataplane a node gets can be read (and tested) without a kernel.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::plan::{
    CALICO_GATEWAY, CALICO_GATEWAY_V6, CALICO_VNI, CALICO_VXLAN_DEVICE, CALICO_VXLAN_PORT,
    POD_BRIDGE, UPLINK, VNI, VXLAN_DEVICE, VXLAN_DEVICE_V6, VXLAN_PORT,
};

/// One command to run inside a network namespace (`ip -n NS …` / `bridge -n NS …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    /// `ip` or `bridge`.
    pub program: &'static str,
    /// Its arguments, without the namespace option.
    pub args: Vec<String>,
}

impl Cmd {
    fn ip(args: &[&str]) -> Self {
        Self {
            program: "ip",
            args: args.iter().map(|a| (*a).to_string()).collect(),
        }
    }

    fn bridge(args: &[&str]) -> Self {
        Self {
            program: "bridge",
            args: args.iter().map(|a| (*a).to_string()).collect(),
        }
    }

    /// The command line as a person would type it (for errors and docs).
    pub fn display(&self) -> String {
        format!("{} {}", self.program, self.args.join(" "))
    }
}

/// What one node must know about a peer to reach its pods (flannel's view of a peer Node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerFacts {
    /// The peer's underlay address (flannel `public-ip`).
    pub underlay_ip: Ipv4Addr,
    /// The peer's VTEP MAC (flannel `backend-data` `VtepMAC`).
    pub vtep_mac: String,
    /// The peer's VTEP address, `<peer subnet>.0`.
    pub vtep_ip: Ipv4Addr,
    /// The peer's pod CIDR.
    pub pod_cidr: String,
    /// The peer's IPv6 side, on a dual-stack cluster.
    pub v6: Option<PeerFacts6>,
    /// The peer's Calico side, on a Calico cluster (then the flannel fields are not programmed).
    pub calico: Option<PeerCalico>,
}

/// What one node must know about a peer on a Calico VXLAN cluster (calico-node's view).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCalico {
    /// The peer's tunnel address on `vxlan.calico`.
    pub tunnel_ip: Ipv4Addr,
    /// The peer's `vxlan.calico` MAC.
    pub vtep_mac: String,
    /// The peer's IPAM block.
    pub block: String,
}

/// What one node must know about a peer to reach its pods over IPv6 (`flannel-v6.1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerFacts6 {
    /// The peer's IPv6 underlay address (flannel `public-ipv6`).
    pub underlay_ip: Ipv6Addr,
    /// The peer's IPv6 VTEP MAC (flannel `backend-v6-data` `VtepMAC`).
    pub vtep_mac: String,
    /// The peer's IPv6 VTEP address, the first address of its IPv6 range.
    pub vtep_ip: Ipv6Addr,
    /// The peer's IPv6 pod range.
    pub pod_cidr: String,
}

/// The node's underlay: address on the uplink and a default route via the underlay gateway.
pub fn uplink(ip: Ipv4Addr, prefix_len: u8, gateway: Ipv4Addr) -> Vec<Cmd> {
    let addr = format!("{ip}/{prefix_len}");
    let gw = gateway.to_string();
    vec![
        Cmd::ip(&["addr", "add", &addr, "dev", UPLINK]),
        Cmd::ip(&["link", "set", UPLINK, "up"]),
        Cmd::ip(&["route", "add", "default", "via", &gw, "dev", UPLINK]),
    ]
}

/// `ip link add DEVICE type vxlan id VNI local LOCAL dev eth0 dstport PORT nolearning`.
fn vxlan_link(device: &str, vni: u32, local: &str, port: u16) -> Cmd {
    let (vni, port) = (vni.to_string(), port.to_string());
    Cmd::ip(&[
        "link",
        "add",
        device,
        "type",
        "vxlan",
        "id",
        &vni,
        "local",
        local,
        "dev",
        UPLINK,
        "dstport",
        &port,
        "nolearning",
    ])
}

/// The node's IPv6 underlay: an address on the uplink (no duplicate address detection: the
/// underlay is the cluster's own) and a default route via the IPv6 underlay gateway.
pub fn uplink6(ip: Ipv6Addr, prefix_len: u8, gateway: Ipv6Addr) -> Vec<Cmd> {
    let addr = format!("{ip}/{prefix_len}");
    let gw = gateway.to_string();
    vec![
        Cmd::ip(&["-6", "addr", "add", &addr, "dev", UPLINK, "nodad"]),
        Cmd::ip(&["-6", "route", "add", "default", "via", &gw, "dev", UPLINK]),
    ]
}

/// flannel's IPv6 VXLAN device `flannel-v6.1`: VNI 1, port 8472 over the IPv6 underlay, no
/// learning, its own fixed MAC, `<range>::/128`.
pub fn vxlan_device6(local: Ipv6Addr, vtep_mac: &str, vtep_ip: Ipv6Addr) -> Vec<Cmd> {
    let local = local.to_string();
    let addr = format!("{vtep_ip}/128");
    vec![
        vxlan_link(VXLAN_DEVICE_V6, VNI, &local, VXLAN_PORT),
        Cmd::ip(&["link", "set", VXLAN_DEVICE_V6, "address", vtep_mac]),
        Cmd::ip(&["-6", "addr", "add", &addr, "dev", VXLAN_DEVICE_V6, "nodad"]),
        Cmd::ip(&["link", "set", VXLAN_DEVICE_V6, "up"]),
    ]
}

/// flannel's VXLAN device: VNI 1, port 8472, no learning, fixed MAC, `<subnet>.0/32`.
pub fn vxlan_device(local: Ipv4Addr, vtep_mac: &str, vtep_ip: Ipv4Addr) -> Vec<Cmd> {
    let local = local.to_string();
    let addr = format!("{vtep_ip}/32");
    vec![
        vxlan_link(VXLAN_DEVICE, VNI, &local, VXLAN_PORT),
        Cmd::ip(&["link", "set", VXLAN_DEVICE, "address", vtep_mac]),
        Cmd::ip(&["addr", "add", &addr, "dev", VXLAN_DEVICE]),
        Cmd::ip(&["link", "set", VXLAN_DEVICE, "up"]),
    ]
}

/// Calico's VXLAN device `vxlan.calico` (VNI 4096, port 4789, no learning, its MAC, the tunnel
/// address /32) and the blackhole route calico-node keeps for the node's own block (its pods are
/// reached by their host routes).
pub fn calico_vxlan_device(
    local: Ipv4Addr,
    vtep_mac: &str,
    tunnel_ip: Ipv4Addr,
    block: &str,
) -> Vec<Cmd> {
    let local = local.to_string();
    let addr = format!("{tunnel_ip}/32");
    vec![
        vxlan_link(CALICO_VXLAN_DEVICE, CALICO_VNI, &local, CALICO_VXLAN_PORT),
        Cmd::ip(&["link", "set", CALICO_VXLAN_DEVICE, "address", vtep_mac]),
        Cmd::ip(&["addr", "add", &addr, "dev", CALICO_VXLAN_DEVICE]),
        Cmd::ip(&["link", "set", CALICO_VXLAN_DEVICE, "up"]),
        Cmd::ip(&["route", "add", "blackhole", block]),
    ]
}

/// Change a VXLAN device's MAC (a node that rejoins with a new VTEP).
pub fn vxlan_mac(device: &str, vtep_mac: &str) -> Vec<Cmd> {
    vec![
        Cmd::ip(&["link", "set", device, "down"]),
        Cmd::ip(&["link", "set", device, "address", vtep_mac]),
        Cmd::ip(&["link", "set", device, "up"]),
    ]
}

/// The pod bridge `cni0` with the node's gateway address.
pub fn pod_bridge(bridge_ip: Ipv4Addr) -> Vec<Cmd> {
    let addr = format!("{bridge_ip}/24");
    vec![
        Cmd::ip(&["link", "add", POD_BRIDGE, "type", "bridge"]),
        Cmd::ip(&["addr", "add", &addr, "dev", POD_BRIDGE]),
        Cmd::ip(&["link", "set", POD_BRIDGE, "up"]),
    ]
}

/// One family's overlay facts of a peer: the arguments of its entries.
struct Overlay<'a> {
    family: &'static str,
    device: &'static str,
    vtep_ip: String,
    underlay_ip: String,
    vtep_mac: &'a str,
    pod_cidr: &'a str,
}

impl PeerFacts {
    fn overlays(&self) -> Vec<Overlay<'_>> {
        if let Some(calico) = &self.calico {
            return vec![Overlay {
                family: "-4",
                device: CALICO_VXLAN_DEVICE,
                vtep_ip: calico.tunnel_ip.to_string(),
                underlay_ip: self.underlay_ip.to_string(),
                vtep_mac: &calico.vtep_mac,
                pod_cidr: &calico.block,
            }];
        }
        let mut all = vec![Overlay {
            family: "-4",
            device: VXLAN_DEVICE,
            vtep_ip: self.vtep_ip.to_string(),
            underlay_ip: self.underlay_ip.to_string(),
            vtep_mac: &self.vtep_mac,
            pod_cidr: &self.pod_cidr,
        }];
        if let Some(v6) = &self.v6 {
            all.push(Overlay {
                family: "-6",
                device: VXLAN_DEVICE_V6,
                vtep_ip: v6.vtep_ip.to_string(),
                underlay_ip: v6.underlay_ip.to_string(),
                vtep_mac: &v6.vtep_mac,
                pod_cidr: &v6.pod_cidr,
            });
        }
        all
    }
}

/// What flannel programs for one peer, per family: a PERMANENT neighbour, an fdb entry, a
/// route (on `flannel.1`, and on `flannel-v6.1` when the peer has an IPv6 side).
pub fn peer_entries(peer: &PeerFacts) -> Vec<Cmd> {
    let mut cmds = Vec::new();
    for o in peer.overlays() {
        cmds.push(Cmd::ip(&[
            o.family,
            "neigh",
            "replace",
            &o.vtep_ip,
            "lladdr",
            o.vtep_mac,
            "dev",
            o.device,
            "nud",
            "permanent",
        ]));
        cmds.push(Cmd::bridge(&[
            "fdb",
            "append",
            o.vtep_mac,
            "dev",
            o.device,
            "dst",
            &o.underlay_ip,
        ]));
        cmds.push(Cmd::ip(&[
            o.family, "route", "replace", o.pod_cidr, "via", &o.vtep_ip, "dev", o.device, "onlink",
        ]));
    }
    cmds
}

/// What flannel removes when a peer Node goes away. Each may fail when already gone.
pub fn remove_peer_entries(peer: &PeerFacts) -> Vec<Cmd> {
    let mut cmds = Vec::new();
    for o in peer.overlays() {
        cmds.push(Cmd::ip(&[o.family, "route", "del", o.pod_cidr]));
        cmds.push(Cmd::ip(&[
            o.family, "neigh", "del", &o.vtep_ip, "dev", o.device,
        ]));
        cmds.push(Cmd::bridge(&[
            "fdb",
            "del",
            o.vtep_mac,
            "dev",
            o.device,
            "dst",
            &o.underlay_ip,
        ]));
    }
    cmds
}

/// Host side of a bridge-style pod: its veth joins `cni0`.
pub fn bridge_pod_host(host_veth: &str) -> Vec<Cmd> {
    vec![
        Cmd::ip(&["link", "set", host_veth, "master", POD_BRIDGE]),
        Cmd::ip(&["link", "set", host_veth, "up"]),
    ]
}

/// Inside a bridge-style pod: `IP/24` on eth0, default route via the node's `cni0` address.
pub fn bridge_pod_inside(pod_ip: Ipv4Addr, gateway: Ipv4Addr) -> Vec<Cmd> {
    let addr = format!("{pod_ip}/24");
    let gw = gateway.to_string();
    vec![
        Cmd::ip(&["addr", "add", &addr, "dev", "eth0"]),
        Cmd::ip(&["link", "set", "eth0", "up"]),
        Cmd::ip(&["route", "add", "default", "via", &gw, "dev", "eth0"]),
    ]
}

/// Inside a bridge-style pod of a dual-stack cluster: `IP6/64` on eth0, the IPv6 default
/// route via the node's IPv6 `cni0` address.
pub fn bridge_pod_inside6(pod_ip: Ipv6Addr, gateway: Ipv6Addr) -> Vec<Cmd> {
    let addr = format!("{pod_ip}/64");
    let gw = gateway.to_string();
    vec![
        Cmd::ip(&["-6", "addr", "add", &addr, "dev", "eth0", "nodad"]),
        Cmd::ip(&["-6", "route", "add", "default", "via", &gw, "dev", "eth0"]),
    ]
}

/// The node's IPv6 `cni0` address.
pub fn pod_bridge6(bridge_ip: Ipv6Addr) -> Vec<Cmd> {
    let addr = format!("{bridge_ip}/64");
    vec![Cmd::ip(&[
        "-6", "addr", "add", &addr, "dev", POD_BRIDGE, "nodad",
    ])]
}

/// Host side of a Calico-style pod's IPv6 address: the host route `IP6 dev caliX` when the pod
/// owns the address.
pub fn calico_pod_host6(host_veth: &str, pod_ip: Ipv6Addr, with_route: bool) -> Vec<Cmd> {
    if !with_route {
        return Vec::new();
    }
    let ip = pod_ip.to_string();
    vec![Cmd::ip(&["-6", "route", "replace", &ip, "dev", host_veth])]
}

/// Inside a Calico-style pod of a dual-stack cluster: `IP6/128` on eth0 and the default route
/// via the host veth's link-local address (`fe80::ecee:eeff:feee:eeee`), as Calico sets it.
pub fn calico_pod_inside6(pod_ip: Ipv6Addr) -> Vec<Cmd> {
    let addr = format!("{pod_ip}/128");
    let gw = CALICO_GATEWAY_V6.to_string();
    vec![
        Cmd::ip(&["-6", "addr", "add", &addr, "dev", "eth0", "nodad"]),
        Cmd::ip(&["-6", "route", "add", "default", "via", &gw, "dev", "eth0"]),
    ]
}

/// Host side of a Calico-style pod: the veth up and, when the pod owns the address, the host
/// route `IP dev caliX scope link`. (proxy_arp is a sysctl, set separately.)
pub fn calico_pod_host(host_veth: &str, pod_ip: Ipv4Addr, with_route: bool) -> Vec<Cmd> {
    let mut cmds = vec![Cmd::ip(&["link", "set", host_veth, "up"])];
    if with_route {
        let ip = pod_ip.to_string();
        cmds.push(Cmd::ip(&[
            "route", "replace", &ip, "dev", host_veth, "scope", "link",
        ]));
    }
    cmds
}

/// Inside a Calico-style pod: `IP/32` on eth0, a link route to 169.254.1.1 and the default
/// route through it.
pub fn calico_pod_inside(pod_ip: Ipv4Addr) -> Vec<Cmd> {
    let addr = format!("{pod_ip}/32");
    let gw = CALICO_GATEWAY.to_string();
    vec![
        Cmd::ip(&["addr", "add", &addr, "dev", "eth0"]),
        Cmd::ip(&["link", "set", "eth0", "up"]),
        Cmd::ip(&["route", "add", &gw, "dev", "eth0", "scope", "link"]),
        Cmd::ip(&["route", "add", "default", "via", &gw, "dev", "eth0"]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> PeerFacts {
        PeerFacts {
            underlay_ip: Ipv4Addr::new(172, 31, 20, 2),
            vtep_mac: "0a:e1:14:02:00:00".into(),
            vtep_ip: Ipv4Addr::new(10, 244, 2, 0),
            pod_cidr: "10.244.2.0/24".into(),
            v6: None,
            calico: None,
        }
    }

    #[test]
    fn a_calico_peer_gets_its_block_routed_over_vxlan_calico() {
        let mut facts = peer();
        facts.calico = Some(PeerCalico {
            tunnel_ip: Ipv4Addr::new(10, 40, 2, 0),
            vtep_mac: "66:ca:14:02:00:00".into(),
            block: "10.40.2.0/26".into(),
        });
        let lines: Vec<String> = peer_entries(&facts).iter().map(Cmd::display).collect();
        assert_eq!(
            lines,
            [
                "ip -4 neigh replace 10.40.2.0 lladdr 66:ca:14:02:00:00 dev vxlan.calico nud permanent",
                "bridge fdb append 66:ca:14:02:00:00 dev vxlan.calico dst 172.31.20.2",
                "ip -4 route replace 10.40.2.0/26 via 10.40.2.0 dev vxlan.calico onlink",
            ]
        );
        let device = calico_vxlan_device(
            Ipv4Addr::new(172, 31, 20, 1),
            "66:ca:14:01:00:00",
            Ipv4Addr::new(10, 40, 1, 0),
            "10.40.1.0/26",
        );
        assert_eq!(
            device[0].display(),
            "ip link add vxlan.calico type vxlan id 4096 local 172.31.20.1 dev eth0 dstport 4789 nolearning"
        );
        assert_eq!(device[4].display(), "ip route add blackhole 10.40.1.0/26");
    }

    #[test]
    fn peer_entries_are_what_flannel_programs() {
        let lines: Vec<String> = peer_entries(&peer()).iter().map(Cmd::display).collect();
        assert_eq!(
            lines,
            vec![
                "ip -4 neigh replace 10.244.2.0 lladdr 0a:e1:14:02:00:00 dev flannel.1 nud permanent",
                "bridge fdb append 0a:e1:14:02:00:00 dev flannel.1 dst 172.31.20.2",
                "ip -4 route replace 10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink",
            ]
        );
    }

    #[test]
    fn a_dual_stack_peer_gets_flannel_v6_entries_too() {
        let mut facts = peer();
        facts.v6 = Some(PeerFacts6 {
            underlay_ip: "fd31:14::2".parse().unwrap(),
            vtep_mac: "0a:e6:14:02:00:00".into(),
            vtep_ip: "fd00:10:244:2::".parse().unwrap(),
            pod_cidr: "fd00:10:244:2::/64".into(),
        });
        let lines: Vec<String> = peer_entries(&facts).iter().map(Cmd::display).collect();
        assert_eq!(lines.len(), 6);
        assert_eq!(
            lines[3..],
            [
                "ip -6 neigh replace fd00:10:244:2:: lladdr 0a:e6:14:02:00:00 dev flannel-v6.1 nud permanent",
                "bridge fdb append 0a:e6:14:02:00:00 dev flannel-v6.1 dst fd31:14::2",
                "ip -6 route replace fd00:10:244:2::/64 via fd00:10:244:2:: dev flannel-v6.1 onlink",
            ]
        );
        let removed: Vec<String> = remove_peer_entries(&facts)
            .iter()
            .map(Cmd::display)
            .collect();
        assert!(removed.contains(&"ip -6 route del fd00:10:244:2::/64".to_string()));
        let inside: Vec<String> = calico_pod_inside6("fd00:10:244:1::5".parse().unwrap())
            .iter()
            .map(Cmd::display)
            .collect();
        assert!(inside.contains(
            &"ip -6 route add default via fe80::ecee:eeff:feee:eeee dev eth0".to_string()
        ));
    }

    #[test]
    fn vxlan_device_is_flannel_shaped() {
        let cmds = vxlan_device(
            Ipv4Addr::new(172, 31, 20, 1),
            "0a:e1:14:01:00:00",
            Ipv4Addr::new(10, 244, 1, 0),
        );
        assert_eq!(
            cmds[0].display(),
            "ip link add flannel.1 type vxlan id 1 local 172.31.20.1 dev eth0 dstport 8472 nolearning"
        );
        assert_eq!(cmds[2].display(), "ip addr add 10.244.1.0/32 dev flannel.1");
    }

    #[test]
    fn calico_pods_route_only_when_they_own_the_address() {
        let ip = Ipv4Addr::new(10, 244, 1, 5);
        assert_eq!(calico_pod_host("caliabc", ip, false).len(), 1);
        let with = calico_pod_host("caliabc", ip, true);
        assert_eq!(
            with[1].display(),
            "ip route replace 10.244.1.5 dev caliabc scope link"
        );
        let inside: Vec<String> = calico_pod_inside(ip).iter().map(Cmd::display).collect();
        assert!(inside.contains(&"ip route add default via 169.254.1.1 dev eth0".to_string()));
        assert!(inside.contains(&"ip addr add 10.244.1.5/32 dev eth0".to_string()));
    }
}
