//! Netlink multicast subscription (neighbour, IPv4 route and link groups) in the managed
//! network namespace, and the pure classification of what a message means for the checks.
//!
//! A socket belongs to the namespace of the thread that created it: the socket is created on a
//! short-lived std thread that entered the namespace with `setns`, then its connection runs on
//! the tokio runtime. The receive buffer is raised to 4 MiB (`SO_RCVBUFFORCE`, falling back to
//! `SO_RCVBUF`); an overrun (`ENOBUFS`) arrives as an `Overrun` message and means "re-scan
//! everything".

use futures::StreamExt;
use futures::channel::mpsc::UnboundedReceiver;
use nix::sched::{CloneFlags, setns};
use rtnetlink::constants::{RTMGRP_IPV4_ROUTE, RTMGRP_LINK, RTMGRP_NEIGH};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::neighbour::NeighbourState;
use rtnetlink::sys::{AsyncSocket, SocketAddr};
use std::path::PathBuf;
use tokio::sync::mpsc;

/// The receive buffer asked for.
pub const RX_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// The file of a namespace given by name (`/var/run/netns/NAME`) or absolute path.
pub fn netns_path(name: &str) -> PathBuf {
    if name.starts_with('/') {
        PathBuf::from(name)
    } else {
        PathBuf::from("/var/run/netns").join(name)
    }
}

/// What a netlink message means for the checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// A neighbour (ARP or fdb) entry that checks care about appeared, changed or went.
    Neighbour,
    /// A route appeared or went.
    Route,
    /// A link appeared, changed or went.
    Link,
    /// Events were lost: everything must be re-read.
    Overrun,
}

/// Neighbour states the kernel moves through on its own as ARP ages (REACHABLE, STALE,
/// DELAY, PROBE): churn, not a configuration change.
const NUD_DYNAMIC: u16 = 0x02 | 0x04 | 0x08 | 0x10;

/// Whether a neighbour in `state` is only ARP churn. PERMANENT, NOARP, INCOMPLETE, FAILED and
/// NONE entries (what the checks look at) are not.
pub fn is_neighbour_churn(state: NeighbourState) -> bool {
    let bits = u16::from(state);
    bits != 0 && bits & !NUD_DYNAMIC == 0
}

/// Classify one message (`None`: nothing to re-check).
pub fn classify(message: &NetlinkMessage<RouteNetlinkMessage>) -> Option<Change> {
    match &message.payload {
        NetlinkPayload::Overrun(_) => Some(Change::Overrun),
        NetlinkPayload::InnerMessage(inner) => match inner {
            RouteNetlinkMessage::NewNeighbour(n) | RouteNetlinkMessage::DelNeighbour(n) => {
                (!is_neighbour_churn(n.header.state)).then_some(Change::Neighbour)
            }
            RouteNetlinkMessage::NewRoute(_) | RouteNetlinkMessage::DelRoute(_) => {
                Some(Change::Route)
            }
            RouteNetlinkMessage::NewLink(_) | RouteNetlinkMessage::DelLink(_) => Some(Change::Link),
            _ => None,
        },
        _ => None,
    }
}

/// Why the subscription could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// The namespace could not be opened.
    #[error("cannot open network namespace {path}: {source}")]
    Open {
        /// The namespace file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `setns` failed.
    #[error("cannot enter network namespace {path}: {source}")]
    Enter {
        /// The namespace file.
        path: PathBuf,
        /// Why.
        source: nix::Error,
    },
    /// The socket could not be created or bound.
    #[error("netlink socket: {0}")]
    Socket(#[from] std::io::Error),
    /// The creating thread failed.
    #[error("netlink socket thread failed")]
    Thread,
}

type Messages = UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>;

/// Create the subscribed socket inside `netns` (`None`: the process's own namespace) on a
/// short-lived thread, spawn its connection on `runtime`, and return the message stream.
fn open(netns: Option<PathBuf>, runtime: tokio::runtime::Handle) -> Result<Messages, EventsError> {
    let worker = std::thread::Builder::new()
        .name("netlink-setns".into())
        .spawn(move || -> Result<Messages, EventsError> {
            if let Some(path) = &netns {
                let file = std::fs::File::open(path).map_err(|source| EventsError::Open {
                    path: path.clone(),
                    source,
                })?;
                setns(&file, CloneFlags::CLONE_NEWNET).map_err(|source| EventsError::Enter {
                    path: path.clone(),
                    source,
                })?;
            }
            // The tokio socket registers with the runtime's reactor: enter it on this thread.
            let _guard = runtime.enter();
            let (mut conn, _handle, messages) = rtnetlink::new_connection()?;
            let socket = conn.socket_mut().socket_mut();
            socket.bind(&SocketAddr::new(
                0,
                RTMGRP_NEIGH | RTMGRP_IPV4_ROUTE | RTMGRP_LINK,
            ))?;
            if rustix::net::sockopt::set_socket_recv_buffer_size_force(&*socket, RX_BUFFER_BYTES)
                .is_err()
            {
                socket.set_rx_buf_sz(RX_BUFFER_BYTES)?;
            }
            runtime.spawn(conn);
            Ok(messages)
        })
        .map_err(EventsError::Socket)?;
    worker.join().map_err(|_| EventsError::Thread)?
}

/// Subscribe in `netns` and forward every relevant change to `changes` until the receiver is
/// dropped. Returns once the socket is set up (events are flowing).
pub async fn subscribe(
    netns: Option<PathBuf>,
    changes: mpsc::Sender<Change>,
) -> Result<(), EventsError> {
    let runtime = tokio::runtime::Handle::current();
    let mut messages = tokio::task::spawn_blocking(move || open(netns, runtime))
        .await
        .map_err(|_| EventsError::Thread)??;
    tokio::spawn(async move {
        while let Some((message, _)) = messages.next().await {
            if let Some(change) = classify(&message) {
                // A full channel already holds a pending re-check: dropping this one loses
                // nothing, except an overrun, which must get through.
                let sent = if change == Change::Overrun {
                    changes.send(change).await.map_err(|_| ())
                } else {
                    match changes.try_send(change) {
                        Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
                        _ => Ok(()),
                    }
                };
                if sent.is_err() {
                    break;
                }
            }
        }
        tracing::warn!("netlink event stream ended");
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_core::NetlinkHeader;
    use rtnetlink::packet_route::neighbour::NeighbourMessage;
    use rtnetlink::packet_route::route::RouteMessage;

    fn neigh(state: NeighbourState, new: bool) -> NetlinkMessage<RouteNetlinkMessage> {
        let mut n = NeighbourMessage::default();
        n.header.state = state;
        let inner = if new {
            RouteNetlinkMessage::NewNeighbour(n)
        } else {
            RouteNetlinkMessage::DelNeighbour(n)
        };
        NetlinkMessage::new(
            NetlinkHeader::default(),
            NetlinkPayload::InnerMessage(inner),
        )
    }

    #[test]
    fn arp_churn_is_ignored_and_configured_entries_are_not() {
        assert_eq!(classify(&neigh(NeighbourState::Reachable, true)), None);
        assert_eq!(classify(&neigh(NeighbourState::Stale, false)), None);
        for state in [
            NeighbourState::Permanent,
            NeighbourState::Incomplete,
            NeighbourState::Failed,
            NeighbourState::Noarp,
            NeighbourState::None,
            // A permanent fdb entry: PERMANENT|NOARP.
            NeighbourState::Other(0xC0),
        ] {
            assert_eq!(
                classify(&neigh(state, true)),
                Some(Change::Neighbour),
                "{state:?}"
            );
            assert_eq!(
                classify(&neigh(state, false)),
                Some(Change::Neighbour),
                "{state:?}"
            );
        }
    }

    #[test]
    fn routes_links_and_overruns_are_changes() {
        let route = NetlinkMessage::new(
            NetlinkHeader::default(),
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelRoute(RouteMessage::default())),
        );
        assert_eq!(classify(&route), Some(Change::Route));
        let overrun: NetlinkMessage<RouteNetlinkMessage> =
            NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::Overrun(vec![]));
        assert_eq!(classify(&overrun), Some(Change::Overrun));
    }
}
