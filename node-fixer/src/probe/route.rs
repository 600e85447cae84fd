//! IPv4 route dump over rtnetlink (every table but `local`, unicast only).

use crate::snapshot::Route;
use futures::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
use rtnetlink::{Handle, RouteMessageBuilder};
use std::net::Ipv4Addr;

/// The kernel's `local` table (addresses of this host; never interesting here).
const RT_TABLE_LOCAL: u32 = 255;

/// Dump the IPv4 unicast routes of every table except `local`.
pub async fn dump_routes(handle: &Handle) -> Result<Vec<Route>, rtnetlink::Error> {
    let request = RouteMessageBuilder::<Ipv4Addr>::new().build();
    let mut stream = handle.route().get(request).execute();
    let mut out = Vec::new();
    while let Some(msg) = stream.try_next().await? {
        if let Some(r) = route_from(&msg)
            && r.table != RT_TABLE_LOCAL
        {
            out.push(r);
        }
    }
    Ok(out)
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
