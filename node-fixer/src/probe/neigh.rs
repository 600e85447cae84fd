//! Neighbour (ARP and NDP) and vxlan fdb dumps over rtnetlink.

use super::rtnl::{Rtnl, RtnlError};
use crate::snapshot::{FdbEntry, Mac, Neighbour, Neighbour6};
use rtnetlink::packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Dump the neighbour table of one address family, decoding each entry with `decode`.
fn dump<T>(
    rtnl: &mut Rtnl,
    family: AddressFamily,
    decode: impl Fn(&NeighbourMessage) -> Option<T>,
) -> Result<Vec<T>, RtnlError> {
    let mut request = NeighbourMessage::default();
    request.header.family = family;
    rtnl.dump(RouteNetlinkMessage::GetNeighbour(request), |m| match m {
        RouteNetlinkMessage::NewNeighbour(msg) => decode(&msg),
        _ => None,
    })
}

/// Dump every IPv4 neighbour (including the NONE/NOARP entries `ip neigh` hides).
pub fn dump_neighbours(rtnl: &mut Rtnl) -> Result<Vec<Neighbour>, RtnlError> {
    dump(rtnl, AddressFamily::Inet, neighbour_from)
}

/// Dump every IPv6 neighbour.
pub fn dump_neighbours6(rtnl: &mut Rtnl) -> Result<Vec<Neighbour6>, RtnlError> {
    dump(rtnl, AddressFamily::Inet6, neighbour6_from)
}

/// The neighbour `ip` (IPv4 or IPv6) on interface `ifindex`, asked for alone (`RTM_GETNEIGH`
/// without a dump, Linux 5.0+): one fix on a table of 100k entries reads one entry, not the
/// table.
pub fn get_neighbour(
    rtnl: &mut Rtnl,
    ip: IpAddr,
    ifindex: u32,
) -> Result<Option<Neighbour<IpAddr>>, RtnlError> {
    let mut request = NeighbourMessage::default();
    request.header.family = match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    request.header.ifindex = ifindex;
    request
        .attributes
        .push(NeighbourAttribute::Destination(match ip {
            IpAddr::V4(a) => NeighbourAddress::Inet(a),
            IpAddr::V6(a) => NeighbourAddress::Inet6(a),
        }));
    rtnl.get(RouteNetlinkMessage::GetNeighbour(request), |m| match m {
        RouteNetlinkMessage::NewNeighbour(msg) => any_neighbour_from(&msg),
        _ => None,
    })
}

/// Decode one neighbour message of either family.
fn any_neighbour_from(msg: &NeighbourMessage) -> Option<Neighbour<IpAddr>> {
    decode(msg, |a| match a {
        NeighbourAddress::Inet(a) => Some(IpAddr::V4(*a)),
        NeighbourAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    })
}

/// Decode one IPv6 neighbour message.
pub fn neighbour6_from(msg: &NeighbourMessage) -> Option<Neighbour6> {
    decode(msg, |a| match a {
        NeighbourAddress::Inet6(a) => Some(*a),
        _ => None,
    })
}

fn decode<A>(
    msg: &NeighbourMessage,
    address: impl Fn(&NeighbourAddress) -> Option<A>,
) -> Option<Neighbour<A>> {
    let mut ip = None;
    let mut lladdr = None;
    for attr in &msg.attributes {
        match attr {
            NeighbourAttribute::Destination(a) => ip = address(a),
            NeighbourAttribute::LinkLayerAddress(bytes) => lladdr = Mac::from_bytes(bytes),
            _ => {}
        }
    }
    Some(Neighbour {
        ip: ip?,
        ifindex: msg.header.ifindex,
        lladdr,
        state: u16::from(msg.header.state),
    })
}

/// Decode one IPv4 neighbour message.
pub fn neighbour_from(msg: &NeighbourMessage) -> Option<Neighbour> {
    decode(msg, |a| match a {
        NeighbourAddress::Inet(a) => Some(*a),
        _ => None,
    })
}

/// Dump the bridge fdb entries that carry a remote destination (vxlan entries).
pub fn dump_fdb(rtnl: &mut Rtnl) -> Result<Vec<FdbEntry>, RtnlError> {
    dump(rtnl, AddressFamily::Bridge, fdb_from)
}

/// Decode one AF_BRIDGE message; `None` unless it has a MAC and a remote destination.
pub fn fdb_from(msg: &NeighbourMessage) -> Option<FdbEntry> {
    let mut mac = None;
    let mut dst = None;
    for attr in &msg.attributes {
        match attr {
            NeighbourAttribute::LinkLayerAddress(bytes) => mac = Mac::from_bytes(bytes),
            NeighbourAttribute::Destination(addr) => dst = address(addr),
            _ => {}
        }
    }
    Some(FdbEntry {
        mac: mac?,
        ifindex: msg.header.ifindex,
        dst: dst?,
        state: u16::from(msg.header.state),
    })
}

/// In AF_BRIDGE dumps the destination arrives as raw bytes.
fn address(addr: &NeighbourAddress) -> Option<IpAddr> {
    match addr {
        NeighbourAddress::Inet(a) => Some(IpAddr::V4(*a)),
        NeighbourAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        NeighbourAddress::Other(bytes) => match bytes.len() {
            4 => <[u8; 4]>::try_from(bytes.as_slice())
                .ok()
                .map(|b| IpAddr::V4(Ipv4Addr::from(b))),
            16 => <[u8; 16]>::try_from(bytes.as_slice())
                .ok()
                .map(|b| IpAddr::V6(Ipv6Addr::from(b))),
            _ => None,
        },
        _ => None,
    }
}
