//! `VtepMissing` and `PeerRouteMissing`: every live peer has a usable VTEP neighbour and fdb
//! entry on `flannel.<VNI>` (flannel, canal) and a route to its pod CIDR; on a dual-stack
//! cluster the same for its IPv6 pod CIDR and `flannel-v6.<VNI>`.

use super::neighbours::{fdb_target, neigh_target};
use super::peers::{Peer, peers};
use super::{Input, details, finding};
use crate::snapshot::{Mac, NUD_FAILED, NUD_INCOMPLETE, NsSnapshot, state_name};
use netheal_crds::{Check, Cni, Finding};
use std::net::IpAddr;

/// One family's overlay towards a peer, as the node should have it.
struct Expected {
    /// The peer's pod CIDR of this family.
    cidr: String,
    /// Whether a non-default route covers it.
    has_route: bool,
    /// The VTEP entries, when the peer's annotations give them.
    vtep: Option<Vtep>,
}

struct Vtep {
    interface: String,
    /// The neighbour address (the subnet's network address).
    ip: IpAddr,
    mac: Mac,
    public_ip: IpAddr,
}

/// Findings for every live peer.
pub fn check(input: &Input<'_>) -> Vec<Finding> {
    let host = &input.snapshot.host;
    let flannel = matches!(input.policy.checks.overlay.cni, Cni::Canal | Cni::Flannel);
    // Calico IPAM routes its blocks, not `spec.podCIDR` (see `calico_blocks`).
    let pod_cidr_routes = !super::calico_blocks::calico_ipam(input.cluster);
    let mut out = Vec::new();
    for peer in peers(input.cluster).iter().filter(|p| !p.is_self) {
        for expected in [ipv4(host, peer), ipv6(host, peer)].into_iter().flatten() {
            if pod_cidr_routes && !expected.has_route {
                out.push(route_missing(peer, &expected.cidr));
            }
            judge(host, peer, &expected, flannel, &mut out);
        }
    }
    out
}

fn ipv4(host: &NsSnapshot, peer: &Peer) -> Option<Expected> {
    let cidr = peer.pod_cidr?;
    let has_route = host.routes_cover(cidr.into());
    let vtep = match (peer.vtep_mac, peer.public_ip, peer.vtep_ip()) {
        (Some(mac), Some(public_ip), Some(ip)) => Some(Vtep {
            interface: peer.interface(),
            ip: IpAddr::V4(ip),
            mac,
            public_ip,
        }),
        _ => None,
    };
    Some(Expected {
        cidr: cidr.to_string(),
        has_route,
        vtep,
    })
}

/// The IPv6 side: only for a peer with an IPv6 pod CIDR.
fn ipv6(host: &NsSnapshot, peer: &Peer) -> Option<Expected> {
    let cidr = peer.pod_cidr6?;
    let has_route = host.routes_cover(cidr.into());
    let vtep = match (peer.vtep_mac6, peer.public_ipv6, peer.vtep_ip6()) {
        (Some(mac), Some(public_ip), Some(ip)) => Some(Vtep {
            interface: peer.interface6(),
            ip: IpAddr::V6(ip),
            mac,
            public_ip: IpAddr::V6(public_ip),
        }),
        _ => None,
    };
    Some(Expected {
        cidr: cidr.to_string(),
        has_route,
        vtep,
    })
}

/// `PeerRouteMissing` for a peer's pod CIDR.
fn route_missing(peer: &Peer, cidr: &str) -> Finding {
    finding(
        Check::PeerRouteMissing,
        format!("route {cidr}"),
        "no route".to_string(),
        format!("route to Node {}'s pod CIDR", peer.name),
        format!("no route to Node {}'s pods ({cidr})", peer.name),
        details([
            ("netns", String::new()),
            ("node", peer.name.clone()),
            ("podCIDR", cidr.to_string()),
        ]),
    )
}

/// The VTEP entries towards a peer (flannel, canal).
fn judge(
    host: &NsSnapshot,
    peer: &Peer,
    expected: &Expected,
    flannel: bool,
    out: &mut Vec<Finding>,
) {
    let Some(vtep) = &expected.vtep else { return };
    if !flannel {
        return;
    }
    let iface = &vtep.interface;
    let Some(link) = host.link_by_name(iface) else {
        return; // no VTEP here at all: not this check's business
    };
    // (state, has a link-layer address) of the neighbour, if there is one.
    let neigh = match vtep.ip {
        IpAddr::V4(ip) => host
            .neighbours
            .iter()
            .find(|n| n.ifindex == link.index && n.ip == ip)
            .map(|n| (n.state, n.lladdr.is_some())),
        IpAddr::V6(ip) => host
            .neighbours6
            .iter()
            .find(|n| n.ifindex == link.index && n.ip == ip)
            .map(|n| (n.state, n.lladdr.is_some())),
    };
    let broken = match neigh {
        None => Some("missing".to_string()),
        Some((state, lladdr)) if state & (NUD_INCOMPLETE | NUD_FAILED) != 0 || !lladdr => {
            Some(state_name(state).to_string())
        }
        Some(_) => None,
    };
    let (ip, mac, public_ip) = (vtep.ip.to_string(), vtep.mac, vtep.public_ip);
    if let Some(observed) = broken {
        out.push(finding(
            Check::VtepMissing,
            neigh_target(&ip, iface),
            observed,
            format!("{ip} lladdr {mac} PERMANENT"),
            format!("no usable VTEP neighbour for Node {}", peer.name),
            details([
                ("netns", String::new()),
                ("node", peer.name.clone()),
                ("ip", ip.clone()),
                ("interface", iface.clone()),
                ("lladdr", mac.to_string()),
            ]),
        ));
    }
    let has_fdb = host
        .fdb
        .iter()
        .any(|e| e.ifindex == link.index && e.mac == mac && e.dst == public_ip);
    if !has_fdb {
        out.push(finding(
            Check::VtepMissing,
            fdb_target(mac, iface, &public_ip.to_string()),
            "missing".to_string(),
            format!("{mac} dst {public_ip}"),
            format!("no fdb entry towards Node {}'s VTEP", peer.name),
            details([
                ("netns", String::new()),
                ("node", peer.name.clone()),
                ("interface", iface.clone()),
                ("lladdr", mac.to_string()),
                ("dst", public_ip.to_string()),
            ]),
        ));
    }
}
