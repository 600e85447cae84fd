//! Link dump over rtnetlink.

use crate::snapshot::{Link, Mac};
use futures::TryStreamExt;
use rtnetlink::Handle;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};

/// Dump every link.
pub async fn dump_links(handle: &Handle) -> Result<Vec<Link>, rtnetlink::Error> {
    let mut stream = handle.link().get().execute();
    let mut out = Vec::new();
    while let Some(msg) = stream.try_next().await? {
        out.push(link_from(&msg));
    }
    Ok(out)
}

/// Decode one link message.
pub fn link_from(msg: &LinkMessage) -> Link {
    let mut name = String::new();
    let mut mac = None;
    let mut mtu = None;
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => name = n.clone(),
            LinkAttribute::Address(bytes) => mac = Mac::from_bytes(bytes),
            LinkAttribute::Mtu(m) => mtu = Some(*m),
            _ => {}
        }
    }
    Link {
        index: msg.header.index,
        name,
        mac,
        mtu,
        up: msg.header.flags.contains(LinkFlags::Up),
    }
}
