//! IPv4 address dump over rtnetlink.

use super::rtnl::{Rtnl, RtnlError};
use crate::snapshot::Address;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::IpAddr;

/// Dump every IPv4 address of every interface.
pub fn dump_addresses(rtnl: &mut Rtnl) -> Result<Vec<Address>, RtnlError> {
    let mut request = AddressMessage::default();
    request.header.family = AddressFamily::Inet;
    rtnl.dump(RouteNetlinkMessage::GetAddress(request), |m| match m {
        RouteNetlinkMessage::NewAddress(msg) => address_from(&msg),
        _ => None,
    })
}

/// Decode one address message; `None` for an IPv6 address or one without an address. The
/// interface's own address is `IFA_LOCAL` (on point-to-point links `IFA_ADDRESS` is the peer's).
pub fn address_from(msg: &AddressMessage) -> Option<Address> {
    let mut local = None;
    let mut address = None;
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(IpAddr::V4(a)) => local = Some(*a),
            AddressAttribute::Address(IpAddr::V4(a)) => address = Some(*a),
            _ => {}
        }
    }
    let addr = Ipv4Net::new(local.or(address)?, msg.header.prefix_len).ok()?;
    Some(Address {
        ifindex: msg.header.index,
        addr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn the_local_address_wins_and_a_bad_prefix_is_dropped() {
        let mut msg = AddressMessage::default();
        msg.header.index = 7;
        msg.header.prefix_len = 24;
        msg.attributes = vec![
            AddressAttribute::Address(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))),
            AddressAttribute::Local(IpAddr::V4(Ipv4Addr::new(10, 244, 1, 1))),
        ];
        let a = address_from(&msg).unwrap();
        assert_eq!((a.ifindex, a.addr.to_string()), (7, "10.244.1.1/24".into()));
        msg.header.prefix_len = 40;
        assert_eq!(address_from(&msg), None);
        msg.attributes = vec![AddressAttribute::Local("fd00::1".parse().unwrap())];
        msg.header.prefix_len = 64;
        assert_eq!(address_from(&msg), None);
    }
}
