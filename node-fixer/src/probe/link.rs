//! Link dump over rtnetlink.

use super::rtnl::{Rtnl, RtnlError};
use crate::snapshot::{Link, Mac};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkInfo, LinkMessage};

/// Dump every link.
pub fn dump_links(rtnl: &mut Rtnl) -> Result<Vec<Link>, RtnlError> {
    let request = RouteNetlinkMessage::GetLink(LinkMessage::default());
    rtnl.dump(request, |m| match m {
        RouteNetlinkMessage::NewLink(msg) => Some(link_from(&msg)),
        _ => None,
    })
}

/// Decode one link message.
pub fn link_from(msg: &LinkMessage) -> Link {
    let mut name = String::new();
    let mut mac = None;
    let mut mtu = None;
    let mut kind = None;
    let mut master = None;
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => name = n.clone(),
            LinkAttribute::Address(bytes) => mac = Mac::from_bytes(bytes),
            LinkAttribute::Mtu(m) => mtu = Some(*m),
            LinkAttribute::Controller(index) => master = Some(*index),
            LinkAttribute::LinkInfo(infos) => {
                kind = infos.iter().find_map(|info| match info {
                    LinkInfo::Kind(k) => Some(k.to_string()),
                    _ => None,
                });
            }
            _ => {}
        }
    }
    Link {
        index: msg.header.index,
        name,
        mac,
        mtu,
        up: msg.header.flags.contains(LinkFlags::Up),
        kind,
        master,
    }
}
