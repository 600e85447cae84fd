//! `DeleteNeighbour`: delete exactly one neighbour `(ip, interface)` by netlink, with the
//! matching vxlan fdb entry, or exactly one fdb entry `(lladdr, interface, dst)`.

use super::FixOutcome;
use crate::probe::rtnl::{Rtnl, RtnlError};
use crate::probe::{link, neigh};
use crate::snapshot::{Mac, state_name};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::IpAddr;

/// What to delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// An IPv4 or IPv6 neighbour; `lladdr` is what the finding saw (the order is stale if it
    /// changed).
    Neighbour {
        /// Address.
        ip: IpAddr,
        /// Interface name.
        interface: String,
        /// The MAC seen by the scan, if any.
        lladdr: Option<Mac>,
    },
    /// A vxlan fdb entry.
    Fdb {
        /// MAC.
        mac: Mac,
        /// Interface name.
        interface: String,
        /// Remote VTEP.
        dst: IpAddr,
    },
}

/// Run the deletion in the current thread's namespace. `protected` are MACs of live peers'
/// VTEPs: their fdb entries are never deleted along with a neighbour.
pub fn delete_here(target: &Target, dry_run: bool, protected: &[Mac]) -> FixOutcome {
    let mut rtnl = match Rtnl::open() {
        Ok(r) => r,
        Err(e) => return FixOutcome::failed("", e.to_string()),
    };
    match target {
        Target::Neighbour {
            ip,
            interface,
            lladdr,
        } => delete_neighbour(&mut rtnl, *ip, interface, *lladdr, dry_run, protected),
        Target::Fdb {
            mac,
            interface,
            dst,
        } => delete_fdb(&mut rtnl, *mac, interface, *dst, dry_run),
    }
}

fn ifindex(rtnl: &mut Rtnl, name: &str) -> Result<Option<u32>, String> {
    let links = link::dump_links(rtnl).map_err(|e| format!("link dump: {e}"))?;
    Ok(links.iter().find(|l| l.name == name).map(|l| l.index))
}

fn delete_neighbour(
    rtnl: &mut Rtnl,
    ip: IpAddr,
    interface: &str,
    lladdr: Option<Mac>,
    dry_run: bool,
    protected: &[Mac],
) -> FixOutcome {
    let index = match ifindex(rtnl, interface) {
        Ok(Some(i)) => i,
        Ok(None) => {
            return FixOutcome::failed(
                "",
                format!("interface {interface} does not exist (any more); nothing was changed"),
            );
        }
        Err(e) => return FixOutcome::failed("", e),
    };
    let current = match neigh::get_neighbour(rtnl, ip, index) {
        Ok(Some(n)) => n,
        Ok(None) => return FixOutcome::no_change("absent", None),
        Err(e) => return FixOutcome::failed("", format!("neighbour {ip} dev {interface}: {e}")),
    };
    let describe = |n: &crate::snapshot::Neighbour<IpAddr>| {
        format!(
            "{} dev {interface} lladdr {} {}",
            n.ip,
            n.lladdr.map(|m| m.to_string()).unwrap_or_default(),
            state_name(n.state)
        )
    };
    let before = describe(&current);
    if !current.is_permanent() || (lladdr.is_some() && current.lladdr != lladdr) {
        return FixOutcome::no_change(
            before,
            Some("the neighbour changed since the scan; left alone".into()),
        );
    }
    // The vxlan fdb entry that carries this MAC (flannel programs both).
    let fdb = match (current.lladdr, neigh::dump_fdb(rtnl)) {
        (Some(mac), Ok(entries)) if !protected.contains(&mac) => entries
            .into_iter()
            .filter(|e| e.ifindex == index && e.mac == mac)
            .collect::<Vec<_>>(),
        _ => Vec::new(),
    };
    let mut full = before.clone();
    for e in &fdb {
        full.push_str(&format!(
            "; fdb {} dev {interface} dst {} {}",
            e.mac,
            e.dst,
            state_name(e.state)
        ));
    }
    if dry_run {
        return FixOutcome::applied(full, "absent", Some("dry-run: not deleted".into()));
    }
    let mut msg = NeighbourMessage::default();
    let (family, address) = match ip {
        IpAddr::V4(a) => (AddressFamily::Inet, NeighbourAddress::Inet(a)),
        IpAddr::V6(a) => (AddressFamily::Inet6, NeighbourAddress::Inet6(a)),
    };
    msg.header.family = family;
    msg.header.ifindex = index;
    msg.attributes
        .push(NeighbourAttribute::Destination(address));
    if let Err(e) = rtnl.execute(RouteNetlinkMessage::DelNeighbour(msg)) {
        return FixOutcome::failed(before, format!("netlink delete {ip} dev {interface}: {e}"));
    }
    let mut message = None;
    for e in &fdb {
        if let Err(err) = del_fdb(rtnl, e.mac, index, Some(e.dst)) {
            message = Some(format!(
                "neighbour deleted; fdb {} dst {}: {err}",
                e.mac, e.dst
            ));
        }
    }
    FixOutcome::applied(full, "absent", message)
}

fn del_fdb(rtnl: &mut Rtnl, mac: Mac, index: u32, dst: Option<IpAddr>) -> Result<(), RtnlError> {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Bridge;
    msg.header.ifindex = index;
    msg.header.state = NeighbourState::Permanent;
    // The entry lives in the vxlan device's own table (`bridge fdb del … self`).
    msg.header.flags = NeighbourFlags::Own;
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()));
    if let Some(dst) = dst {
        let addr = match dst {
            IpAddr::V4(a) => NeighbourAddress::Inet(a),
            IpAddr::V6(a) => NeighbourAddress::Inet6(a),
        };
        msg.attributes.push(NeighbourAttribute::Destination(addr));
    }
    rtnl.execute(RouteNetlinkMessage::DelNeighbour(msg))
}

fn delete_fdb(
    rtnl: &mut Rtnl,
    mac: Mac,
    interface: &str,
    dst: IpAddr,
    dry_run: bool,
) -> FixOutcome {
    let index = match ifindex(rtnl, interface) {
        Ok(Some(i)) => i,
        Ok(None) => {
            return FixOutcome::failed(
                "",
                format!("interface {interface} does not exist (any more); nothing was changed"),
            );
        }
        Err(e) => return FixOutcome::failed("", e),
    };
    let entries = match neigh::dump_fdb(rtnl) {
        Ok(e) => e,
        Err(e) => return FixOutcome::failed("", format!("fdb dump: {e}")),
    };
    let Some(current) = entries
        .iter()
        .find(|e| e.ifindex == index && e.mac == mac && e.dst == dst)
    else {
        return FixOutcome::no_change("absent", None);
    };
    let before = format!(
        "fdb {mac} dev {interface} dst {dst} {}",
        state_name(current.state)
    );
    if dry_run {
        return FixOutcome::applied(before, "absent", Some("dry-run: not deleted".into()));
    }
    match del_fdb(rtnl, mac, index, Some(dst)) {
        Ok(()) => FixOutcome::applied(before, "absent", None),
        Err(e) => FixOutcome::failed(before, format!("netlink fdb delete: {e}")),
    }
}
