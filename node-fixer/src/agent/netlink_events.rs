//! Netlink multicast subscription in the managed network namespace, and the pure
//! classification of what a message means for the checks:
//! - rtnetlink's neighbour, IPv4 route, IPv4 address and link groups (parsed by
//!   `netlink-packet-route`);
//! - the IPv4 and IPv6 netconf groups (`RTM_NEWNETCONF`: `forwarding`, `rp_filter`,
//!   `proxy_arp` of `all`, `default` or an interface changed), which `netlink-packet-route`
//!   does not parse: only the message type is read, then everything is re-checked;
//! - nftables' group (`NFNLGRP_NFTABLES` on `NETLINK_NETFILTER`): a table, chain or rule was
//!   added or deleted (iptables-nft writes through it too); set elements are not rules.
//!
//! `arp_ignore` and iptables-legacy have no event: the poll finds those.
//!
//! A socket belongs to the namespace of the thread that created it: the socket is created on a
//! short-lived std thread that entered the namespace with `setns`, then its connection runs on
//! the tokio runtime. The receive buffer is raised to 4 MiB (`SO_RCVBUFFORCE`, falling back to
//! `SO_RCVBUF`); an overrun (`ENOBUFS`) arrives as an `Overrun` message and means "re-scan
//! everything".

use crate::probe::rtnl::message_length;
use futures::StreamExt;
use futures::channel::mpsc::UnboundedReceiver;
use nix::sched::{CloneFlags, setns};
use rtnetlink::constants::{
    RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE, RTMGRP_IPV6_ROUTE, RTMGRP_LINK, RTMGRP_NEIGH,
};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::neighbour::NeighbourState;
use rtnetlink::sys::protocols::{NETLINK_NETFILTER, NETLINK_ROUTE};
use rtnetlink::sys::{AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket};
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
    /// An IPv4 address was added or removed (a pod bridge re-addressed).
    Address,
    /// A netconf switch (`forwarding`, `rp_filter`, `proxy_arp`) changed.
    Netconf,
    /// An nftables table, chain or rule was added or deleted.
    Rules,
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
            RouteNetlinkMessage::NewAddress(_) | RouteNetlinkMessage::DelAddress(_) => {
                Some(Change::Address)
            }
            _ => None,
        },
        _ => None,
    }
}

/// `RTNLGRP_IPV4_NETCONF` and `RTNLGRP_IPV6_NETCONF` (`linux/rtnetlink.h`).
const RTNLGRP_NETCONF: [u32; 2] = [24, 25];
/// `RTM_NEWNETCONF`, `RTM_DELNETCONF`.
const RTM_NETCONF: [u16; 2] = [80, 81];
/// `NFNLGRP_NFTABLES` (`linux/netfilter/nfnetlink.h`).
const NFNLGRP_NFTABLES: u32 = 7;
/// `NFNL_SUBSYS_NFTABLES`: the high byte of an nftables message's type.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NFT_MSG_{NEW,DEL}{TABLE,CHAIN,RULE}` (`linux/netfilter/nf_tables.h`); set elements and
/// generation messages are not rule changes.
const NFT_RULE_MESSAGES: [u16; 6] = [0, 2, 3, 5, 6, 8];

/// The type of each netlink message in one datagram (a truncated message ends the walk).
pub fn message_types(datagram: &[u8]) -> Vec<u16> {
    let mut types = Vec::new();
    let mut rest = datagram;
    while let Ok(length) = message_length(rest) {
        types.push(u16::from_ne_bytes([rest[4], rest[5]]));
        rest = rest.get(length.next_multiple_of(4)..).unwrap_or_default();
    }
    types
}

/// Classify a datagram of the netconf groups.
pub fn classify_netconf(datagram: &[u8]) -> Option<Change> {
    message_types(datagram)
        .iter()
        .any(|t| RTM_NETCONF.contains(t))
        .then_some(Change::Netconf)
}

/// Classify a datagram of the nftables group.
pub fn classify_nftables(datagram: &[u8]) -> Option<Change> {
    message_types(datagram)
        .iter()
        .any(|t| t >> 8 == NFNL_SUBSYS_NFTABLES && NFT_RULE_MESSAGES.contains(&(t & 0xff)))
        .then_some(Change::Rules)
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

/// The sockets of one namespace: rtnetlink's parsed stream, and the raw netconf and nftables
/// sockets (`None` where the kernel has no nftables).
struct Opened {
    messages: Messages,
    netconf: TokioSocket,
    nftables: Option<TokioSocket>,
}

/// A raw socket of `protocol` in the current namespace, a member of `groups`, with the large
/// receive buffer.
fn raw_socket(protocol: isize, groups: &[u32]) -> std::io::Result<TokioSocket> {
    let mut socket = TokioSocket::new(protocol)?;
    let inner = socket.socket_mut();
    inner.bind(&SocketAddr::new(0, 0))?;
    for &group in groups {
        inner.add_membership(group)?;
    }
    if rustix::net::sockopt::set_socket_recv_buffer_size_force(&*inner, RX_BUFFER_BYTES).is_err() {
        inner.set_rx_buf_sz(RX_BUFFER_BYTES)?;
    }
    Ok(socket)
}

/// Create the subscribed socket inside `netns` (`None`: the process's own namespace) on a
/// short-lived thread, spawn its connection on `runtime`, and return the message stream.
fn open(netns: Option<PathBuf>, runtime: tokio::runtime::Handle) -> Result<Opened, EventsError> {
    let worker = std::thread::Builder::new()
        .name("netlink-setns".into())
        .spawn(move || -> Result<Opened, EventsError> {
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
                RTMGRP_NEIGH
                    | RTMGRP_IPV4_ROUTE
                    | RTMGRP_IPV6_ROUTE
                    | RTMGRP_IPV4_IFADDR
                    | RTMGRP_LINK,
            ))?;
            if rustix::net::sockopt::set_socket_recv_buffer_size_force(&*socket, RX_BUFFER_BYTES)
                .is_err()
            {
                socket.set_rx_buf_sz(RX_BUFFER_BYTES)?;
            }
            runtime.spawn(conn);
            let netconf = raw_socket(NETLINK_ROUTE, &RTNLGRP_NETCONF)?;
            // Without nf_tables (a legacy-only kernel) there is nothing to subscribe to.
            let nftables = match raw_socket(NETLINK_NETFILTER, &[NFNLGRP_NFTABLES]) {
                Ok(socket) => Some(socket),
                Err(e) => {
                    tracing::info!(error = %e, "no nftables events (polling iptables only)");
                    None
                }
            };
            Ok(Opened {
                messages,
                netconf,
                nftables,
            })
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
    let opened = tokio::task::spawn_blocking(move || open(netns, runtime))
        .await
        .map_err(|_| EventsError::Thread)??;
    let mut messages = opened.messages;
    let parsed = changes.clone();
    tokio::spawn(async move {
        while let Some((message, _)) = messages.next().await {
            if let Some(change) = classify(&message)
                && forward(&parsed, change).await.is_err()
            {
                break;
            }
        }
        tracing::warn!("netlink event stream ended");
    });
    tokio::spawn(forward_raw(
        opened.netconf,
        classify_netconf,
        changes.clone(),
        "netconf",
    ));
    if let Some(nftables) = opened.nftables {
        tokio::spawn(forward_raw(
            nftables,
            classify_nftables,
            changes,
            "nftables",
        ));
    }
    Ok(())
}

/// Pass `change` on. A full channel already holds a pending re-check: dropping this one loses
/// nothing, except an overrun, which must get through. `Err`: the receiver is gone.
async fn forward(changes: &mpsc::Sender<Change>, change: Change) -> Result<(), ()> {
    if change == Change::Overrun {
        changes.send(change).await.map_err(|_| ())
    } else {
        match changes.try_send(change) {
            Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
            _ => Ok(()),
        }
    }
}

/// Read `socket` until the receiver is gone, passing on what `classify` makes of each datagram;
/// a full receive buffer (`ENOBUFS`) is an overrun.
async fn forward_raw(
    socket: TokioSocket,
    classify: fn(&[u8]) -> Option<Change>,
    changes: mpsc::Sender<Change>,
    what: &'static str,
) {
    loop {
        let change = match socket.recv_from_full().await {
            Ok((datagram, _)) => classify(&datagram),
            Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ENOBUFS as i32) => {
                Some(Change::Overrun)
            }
            Err(e) => {
                tracing::warn!(error = %e, "{what} event stream ended");
                return;
            }
        };
        if let Some(change) = change
            && forward(&changes, change).await.is_err()
        {
            return;
        }
    }
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

    /// A datagram of netlink messages of `types`, each with `payload` bytes.
    fn datagram(types: &[u16], payload: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for &t in types {
            let len = 16 + payload;
            out.extend_from_slice(&(len as u32).to_ne_bytes());
            out.extend_from_slice(&t.to_ne_bytes());
            out.extend_from_slice(&[0; 10]);
            out.extend(std::iter::repeat_n(0xAA, payload));
            out.extend(std::iter::repeat_n(0, ((len + 3) & !3) - len));
        }
        out
    }

    #[test]
    fn netconf_and_nftables_rule_messages_are_changes_and_set_elements_are_not() {
        assert_eq!(
            classify_netconf(&datagram(&[80], 20)),
            Some(Change::Netconf)
        );
        assert_eq!(classify_netconf(&datagram(&[16], 20)), None);
        let nft = |msg: u16| (10 << 8) | msg;
        // NEWRULE, DELRULE, NEWCHAIN, DELTABLE (after a set element: several per datagram).
        for msg in [6, 8, 3, 2] {
            assert_eq!(
                classify_nftables(&datagram(&[nft(12), nft(msg)], 7)),
                Some(Change::Rules),
                "{msg}"
            );
        }
        // NEWSETELEM, DELSETELEM, NEWGEN; and another nfnetlink subsystem's NEWRULE number.
        assert_eq!(
            classify_nftables(&datagram(&[nft(12), nft(14), nft(15)], 7)),
            None
        );
        assert_eq!(classify_nftables(&datagram(&[(1 << 8) | 6], 7)), None);
        // Truncated or malformed input is no message, never a panic.
        assert_eq!(message_types(&[1, 2, 3]), Vec::<u16>::new());
        let mut truncated = datagram(&[nft(6)], 7);
        truncated[0] = 200;
        assert_eq!(message_types(&truncated), Vec::<u16>::new());
        assert_eq!(message_types(&datagram(&[1, 2, 3], 5)), vec![1, 2, 3]);
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
