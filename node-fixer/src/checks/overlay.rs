//! `VtepMissing` and `PeerRouteMissing`: every live peer has a usable VTEP neighbour and fdb
//! entry on `flannel.<VNI>` (flannel, canal) and a route to its pod CIDR.

use super::neighbours::{fdb_target, neigh_target};
use super::peers::peers;
use super::{Input, details, finding};
use crate::snapshot::{NUD_FAILED, NUD_INCOMPLETE, state_name};
use netheal_crds::{Check, Cni, Finding};

/// Findings for every live peer.
pub fn check(input: &Input<'_>) -> Vec<Finding> {
    let host = &input.snapshot.host;
    let flannel = matches!(input.policy.checks.overlay.cni, Cni::Canal | Cni::Flannel);
    let mut out = Vec::new();
    for peer in peers(input.cluster).iter().filter(|p| !p.is_self) {
        let Some(cidr) = peer.pod_cidr else { continue };
        let has_route = host
            .routes
            .iter()
            .any(|r| r.dst.prefix_len() > 0 && r.dst.contains(&cidr));
        if !has_route {
            out.push(finding(
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
            ));
        }
        let (Some(mac), Some(public_ip), Some(vtep_ip)) =
            (peer.vtep_mac, peer.public_ip, peer.vtep_ip())
        else {
            continue;
        };
        if !flannel {
            continue;
        }
        let iface = peer.interface();
        let Some(link) = host.link_by_name(&iface) else {
            continue; // no VTEP here at all: not this check's business
        };
        let neigh = host
            .neighbours
            .iter()
            .find(|n| n.ifindex == link.index && n.ip == vtep_ip);
        let broken = match neigh {
            None => Some("missing".to_string()),
            Some(n) if n.state & (NUD_INCOMPLETE | NUD_FAILED) != 0 || n.lladdr.is_none() => {
                Some(state_name(n.state).to_string())
            }
            Some(_) => None,
        };
        if let Some(observed) = broken {
            out.push(finding(
                Check::VtepMissing,
                neigh_target(vtep_ip, &iface),
                observed,
                format!("{vtep_ip} lladdr {mac} PERMANENT"),
                format!("no usable VTEP neighbour for Node {}", peer.name),
                details([
                    ("netns", String::new()),
                    ("node", peer.name.clone()),
                    ("ip", vtep_ip.to_string()),
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
                fdb_target(mac, &iface, &public_ip.to_string()),
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
    out
}
