//! IPv4 and IPv6 route dumps over rtnetlink (every table but `local`, unicast only).

use super::rtnl::{Rtnl, RtnlError};
use crate::snapshot::{Route, Route6};
use ipnet::{Ipv4Net, Ipv6Net};
use rtnetlink::RouteMessageBuilder;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
use std::net::{Ipv4Addr, Ipv6Addr};

/// The kernel's `local` table (addresses of this host; never interesting here).
const RT_TABLE_LOCAL: u32 = 255;

/// Dump the IPv4 unicast routes of every table except `local`.
pub fn dump_routes(rtnl: &mut Rtnl) -> Result<Vec<Route>, RtnlError> {
    let request = RouteMessageBuilder::<Ipv4Addr>::new().build();
    rtnl.dump(RouteNetlinkMessage::GetRoute(request), |m| match m {
        RouteNetlinkMessage::NewRoute(msg) => {
            route_from(&msg).filter(|r| r.table != RT_TABLE_LOCAL)
        }
        _ => None,
    })
}

/// Dump the IPv6 unicast routes of every table except `local`.
pub fn dump_routes6(rtnl: &mut Rtnl) -> Result<Vec<Route6>, RtnlError> {
    let request = RouteMessageBuilder::<Ipv6Addr>::new().build();
    rtnl.dump(RouteNetlinkMessage::GetRoute(request), |m| match m {
        RouteNetlinkMessage::NewRoute(msg) => {
            route6_from(&msg).filter(|r| r.table != RT_TABLE_LOCAL)
        }
        _ => None,
    })
}

/// Decode one IPv6 route message; `None` for non-unicast or non-IPv6 routes.
pub fn route6_from(msg: &RouteMessage) -> Option<Route6> {
    if msg.header.kind != RouteType::Unicast {
        return None;
    }
    let mut dst = Ipv6Addr::UNSPECIFIED;
    let mut oif = None;
    let mut table = u32::from(msg.header.table);
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(RouteAddress::Inet6(a)) => dst = *a,
            RouteAttribute::Destination(_) => return None,
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Table(t) => table = *t,
            _ => {}
        }
    }
    let dst = Ipv6Net::new(dst, msg.header.destination_prefix_length).ok()?;
    Some(Route6 { dst, oif, table })
}

/// Decode one route message; `None` for non-unicast or non-IPv4 routes.
pub fn route_from(msg: &RouteMessage) -> Option<Route> {
    if msg.header.kind != RouteType::Unicast {
        return None;
    }
    let mut dst = Ipv4Addr::UNSPECIFIED;
    let mut oif = None;
    let mut gateway = None;
    let mut table = u32::from(msg.header.table);
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(RouteAddress::Inet(a)) => dst = *a,
            RouteAttribute::Destination(_) => return None,
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Gateway(RouteAddress::Inet(a)) => gateway = Some(*a),
            RouteAttribute::Table(t) => table = *t,
            _ => {}
        }
    }
    let dst = Ipv4Net::new(dst, msg.header.destination_prefix_length).ok()?;
    Some(Route {
        dst,
        oif,
        gateway,
        table,
    })
}
