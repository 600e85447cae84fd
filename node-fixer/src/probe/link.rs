//! Link dump over rtnetlink.

use crate::snapshot::{Link, Mac};
use futures::TryStreamExt;
use rtnetlink::Handle;
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};

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
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => name = n.clone(),
            LinkAttribute::Address(bytes) => mac = Mac::from_bytes(bytes),
            _ => {}
        }
    }
    Link {
        index: msg.header.index,
        name,
        mac,
    }
}
