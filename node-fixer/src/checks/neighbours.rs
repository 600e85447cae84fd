//! `StaleNeighbour`: PERMANENT neighbours (and vxlan fdb entries) that point at the wrong place.
//! Calico veths: the pod IP's host route names another interface, or no route reaches it on
//! this one. flannel VTEPs: the MAC differs from the owner Node's VtepMAC, or no Node owns the
//! subnet any more.

use super::findings::PendingNeighbour;
use super::peers::{Peer, peers};
use super::{Input, details, finding, patterns};
use crate::snapshot::{FdbEntry, Mac, Neighbour, Neighbour6, NsSnapshot, state_name};
use netheal_crds::{Check, Finding};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// The main routing table.
const RT_TABLE_MAIN: u32 = 254;

/// Whether an interface is a flannel VTEP (audited against the Node objects).
pub fn is_vtep(name: &str) -> bool {
    name.starts_with("flannel.")
}

/// Whether an interface is flannel's IPv6 VTEP (`flannel-v6.<VNI>`, dual-stack flannel).
pub fn is_vtep6(name: &str) -> bool {
    name.starts_with("flannel-v6.")
}

/// All stale neighbours and fdb entries on the audited interfaces: those on VTEPs and the fdb
/// entries built, those on veths (one per pod IP, possibly 100k) left to build when read.
pub fn check(input: &Input<'_>) -> (Vec<Finding>, Vec<PendingNeighbour>) {
    let host = &input.snapshot.host;
    let pats = patterns(
        "spec.checks.staleNeighbours.interfaces",
        &input.policy.checks.stale_neighbours.interfaces,
    );
    let peers = peers(input.cluster);
    let mut out = Vec::new();
    let mut pending = Vec::new();
    let mut names: HashMap<u32, Arc<str>> = HashMap::new();
    for n in host.neighbours.iter().filter(|n| n.is_permanent()) {
        let Some(iface) = host.link_name(n.ifindex) else {
            continue;
        };
        if !pats.matches(iface) {
            continue;
        }
        if is_vtep(iface) {
            if peers.is_empty() {
                continue; // without Node objects there is no truth to compare with
            }
            if let Some(why) = vtep_problem(n, &peers) {
                out.push(neighbour_finding(n, iface, &why));
            }
        } else if let Some(why) = route_problem(host, n, iface) {
            let interface = names.entry(n.ifindex).or_insert_with(|| Arc::from(iface));
            pending.push(PendingNeighbour {
                neighbour: *n,
                interface: Arc::clone(interface),
                why: why.into_boxed_str(),
            });
        }
    }
    // IPv6: Calico's dual-stack pods on veths by the same rule, flannel's IPv6 VTEP against
    // the Nodes' `backend-v6-data` and IPv6 pod CIDRs.
    for n in host.neighbours6.iter().filter(|n| n.is_permanent()) {
        let Some(iface) = host.link_name(n.ifindex) else {
            continue;
        };
        if !pats.matches(iface) || is_vtep(iface) {
            continue;
        }
        if is_vtep6(iface) {
            if !peers.is_empty()
                && let Some(why) = vtep6_problem(n, &peers)
            {
                out.push(neighbour_finding(n, iface, &why));
            }
            continue;
        }
        let best = host
            .routes6
            .iter()
            .filter(|r| r.table == RT_TABLE_MAIN && r.dst.contains(&n.ip))
            .max_by_key(|r| r.dst.prefix_len())
            .map(|r| (r.dst.to_string(), r.dst.prefix_len(), r.oif));
        if let Some(why) = route_verdict(host, n.ifindex, iface, &n.ip.to_string(), best) {
            out.push(neighbour_finding(n, iface, &why));
        }
    }
    if !peers.is_empty() {
        for e in host.fdb.iter().filter(|e| e.state & 0x80 != 0) {
            let Some(iface) = host.link_name(e.ifindex) else {
                continue;
            };
            if !pats.matches(iface) || e.mac == Mac([0; 6]) {
                continue;
            }
            let why = if is_vtep(iface) {
                fdb_problem(e, &peers)
            } else if is_vtep6(iface) {
                fdb6_problem(e, &peers)
            } else {
                continue;
            };
            if let Some(why) = why {
                out.push(fdb_finding(e, iface, why));
            }
        }
    }
    (out, pending)
}

/// Why a PERMANENT neighbour on a veth is stale, if it is: the longest-prefix route to its IP
/// in the main table must leave through the same interface.
pub fn route_problem(host: &NsSnapshot, n: &Neighbour, iface: &str) -> Option<String> {
    let best = host
        .routes
        .iter()
        .filter(|r| r.table == RT_TABLE_MAIN && r.dst.contains(&n.ip))
        .max_by_key(|r| r.dst.prefix_len());
    match best {
        // The common case of 100k healthy entries: no text built.
        Some(r) if r.dst.prefix_len() > 0 && r.oif == Some(n.ifindex) => None,
        _ => route_verdict(
            host,
            n.ifindex,
            iface,
            &n.ip.to_string(),
            best.map(|r| (r.dst.to_string(), r.dst.prefix_len(), r.oif)),
        ),
    }
}

/// The verdict on a PERMANENT neighbour of `ip` on `iface` whose longest-prefix main-table
/// route is `best` (its destination, prefix length and output interface).
fn route_verdict(
    host: &NsSnapshot,
    ifindex: u32,
    iface: &str,
    ip: &str,
    best: Option<(String, u8, Option<u32>)>,
) -> Option<String> {
    match best {
        Some((_, len, oif)) if len > 0 && oif == Some(ifindex) => None,
        Some((dst, len, oif)) if len > 0 => Some(format!(
            "the route {dst} goes through {}, not {iface}",
            oif.and_then(|i| host.link_name(i))
                .unwrap_or("another interface")
        )),
        _ => Some(format!("no route to {ip} (the pod is gone)")),
    }
}

/// Why a PERMANENT neighbour on a VTEP is stale, if it is.
pub fn vtep_problem(n: &Neighbour, peers: &[Peer]) -> Option<String> {
    let owner = peers
        .iter()
        .find(|p| p.pod_cidr.is_some_and(|c| c.contains(&n.ip)));
    let Some(owner) = owner else {
        return Some(format!("no Node owns a pod subnet containing {}", n.ip));
    };
    if owner.is_self {
        return None;
    }
    match (owner.vtep_mac, n.lladdr) {
        (Some(want), Some(have)) if want != have => Some(format!(
            "Node {} has VtepMAC {want}, the entry says {have}",
            owner.name
        )),
        _ => None,
    }
}

/// Why a PERMANENT neighbour on flannel's IPv6 VTEP is stale, if it is: its MAC must be the
/// owning Node's IPv6 VtepMAC (`backend-v6-data`), and some Node's IPv6 pod CIDR must hold it.
pub fn vtep6_problem(n: &Neighbour6, peers: &[Peer]) -> Option<String> {
    let Some(owner) = peers
        .iter()
        .find(|p| p.pod_cidr6.is_some_and(|c| c.contains(&n.ip)))
    else {
        return Some(format!(
            "no Node owns an IPv6 pod subnet containing {}",
            n.ip
        ));
    };
    if owner.is_self {
        return None;
    }
    match (owner.vtep_mac6, n.lladdr) {
        (Some(want), Some(have)) if want != have => Some(format!(
            "Node {} has IPv6 VtepMAC {want}, the entry says {have}",
            owner.name
        )),
        _ => None,
    }
}

/// Why a vxlan fdb entry on flannel's IPv6 VTEP is stale, if it is: its MAC must be a live
/// peer's IPv6 VtepMAC and its destination that peer's `public-ipv6`.
pub fn fdb6_problem(e: &FdbEntry, peers: &[Peer]) -> Option<String> {
    match peers.iter().find(|p| p.vtep_mac6 == Some(e.mac)) {
        None => Some(format!("no Node has IPv6 VtepMAC {}", e.mac)),
        Some(p) if p.public_ipv6.is_some_and(|ip| IpAddr::V6(ip) != e.dst) => Some(format!(
            "Node {} with IPv6 VtepMAC {} has public IPv6 {}, not {}",
            p.name,
            e.mac,
            p.public_ipv6.map(|i| i.to_string()).unwrap_or_default(),
            e.dst
        )),
        Some(_) => None,
    }
}

/// Why a vxlan fdb entry is stale, if it is: its MAC must be a live peer's VtepMAC and its
/// destination that peer's public IP.
pub fn fdb_problem(e: &FdbEntry, peers: &[Peer]) -> Option<String> {
    match peers.iter().find(|p| p.vtep_mac == Some(e.mac)) {
        None => Some(format!("no Node has VtepMAC {}", e.mac)),
        Some(p) if p.public_ip.is_some_and(|ip| ip != e.dst) => Some(format!(
            "Node {} with VtepMAC {} has public IP {}, not {}",
            p.name,
            e.mac,
            p.public_ip.map(|i| i.to_string()).unwrap_or_default(),
            e.dst
        )),
        Some(_) => None,
    }
}

/// The finding of a stale neighbour. Built by concatenation: a scan may build 100k of them.
pub fn neighbour_finding<A: std::fmt::Display>(
    n: &Neighbour<A>,
    iface: &str,
    why: &str,
) -> Finding {
    let ip = n.ip.to_string();
    let lladdr = n.lladdr.map(|m| m.text()).unwrap_or_default();
    let state = state_name(n.state);
    finding(
        Check::StaleNeighbour,
        concat(&["neigh ", &ip, " dev ", iface]),
        concat(&["lladdr ", &lladdr, " ", state]),
        "absent".to_string(),
        concat(&["stale PERMANENT neighbour: ", why]),
        details([
            ("netns", String::new()),
            ("ip", ip),
            ("interface", iface.to_string()),
            ("lladdr", lladdr),
            ("state", state.to_string()),
        ]),
    )
}

/// The pieces, one after the other, in a string of the right size.
fn concat(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        out.push_str(p);
    }
    out
}

fn fdb_finding(e: &FdbEntry, iface: &str, why: String) -> Finding {
    finding(
        Check::StaleNeighbour,
        fdb_target(e.mac, iface, &e.dst.to_string()),
        format!("{} dst {} {}", e.mac, e.dst, state_name(e.state)),
        "absent".to_string(),
        format!("stale vxlan fdb entry: {why}"),
        details([
            ("netns", String::new()),
            ("kind", "fdb".to_string()),
            ("ip", e.dst.to_string()),
            ("interface", iface.to_string()),
            ("lladdr", e.mac.to_string()),
            ("state", state_name(e.state).to_string()),
        ]),
    )
}

/// `neigh 10.244.1.0 dev flannel.1`.
pub fn neigh_target(ip: impl std::fmt::Display, iface: &str) -> String {
    concat(&["neigh ", &ip.to_string(), " dev ", iface])
}

/// `fdb aa:..:ff dev flannel.1 dst 172.18.0.3`.
pub fn fdb_target(mac: Mac, iface: &str, dst: &str) -> String {
    format!("fdb {mac} dev {iface} dst {dst}")
}
