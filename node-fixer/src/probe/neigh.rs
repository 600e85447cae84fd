//! Neighbour (ARP) and vxlan fdb dumps over rtnetlink.

use crate::snapshot::{FdbEntry, Mac, Neighbour};
use futures::TryStreamExt;
use rtnetlink::Handle;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Dump every IPv4 neighbour (including the NONE/NOARP entries `ip neigh` hides).
pub async fn dump_neighbours(handle: &Handle) -> Result<Vec<Neighbour>, rtnetlink::Error> {
    let mut stream = handle
        .neighbours()
        .get()
        .set_address_family(AddressFamily::Inet)
        .execute();
    let mut out = Vec::new();
    while let Some(msg) = stream.try_next().await? {
        if let Some(n) = neighbour_from(&msg) {
            out.push(n);
        }
    }
    Ok(out)
}

/// Decode one IPv4 neighbour message.
pub fn neighbour_from(msg: &NeighbourMessage) -> Option<Neighbour> {
    let mut ip = None;
    let mut lladdr = None;
    for attr in &msg.attributes {
        match attr {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => ip = Some(*a),
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

/// Dump the bridge fdb entries that carry a remote destination (vxlan entries).
pub async fn dump_fdb(handle: &Handle) -> Result<Vec<FdbEntry>, rtnetlink::Error> {
    let mut stream = handle
        .neighbours()
        .get()
        .set_address_family(AddressFamily::Bridge)
        .execute();
    let mut out = Vec::new();
    while let Some(msg) = stream.try_next().await? {
        if let Some(e) = fdb_from(&msg) {
            out.push(e);
        }
    }
    Ok(out)
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
