//! Blocking rtnetlink requests on a socket of the current thread's network namespace.
//!
//! A dump is decoded one message at a time as the kernel's datagrams arrive, and each message
//! is turned into its small snapshot entry at once: nothing is queued as parsed netlink
//! messages, so a table of 100k neighbours costs the 100k decoded entries and one receive
//! buffer (an asynchronous connection reads the whole dump ahead of its consumer and holds it
//! as parsed messages, about 250 bytes each).

use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::protocols::NETLINK_ROUTE;
use rtnetlink::sys::{Socket, SocketAddr};

/// The receive buffer: the kernel fills a dump datagram up to 32 KiB.
const RECEIVE_BUFFER: usize = 64 * 1024;

/// Why an rtnetlink request failed.
#[derive(Debug, thiserror::Error)]
pub enum RtnlError {
    /// The socket could not be opened, bound or connected.
    #[error("netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    /// Sending or receiving failed.
    #[error("netlink I/O: {0}")]
    Io(#[source] std::io::Error),
    /// The kernel answered with an error.
    #[error("{0}")]
    Kernel(#[source] std::io::Error),
    /// A message could not be decoded.
    #[error("undecodable netlink message: {0}")]
    Decode(String),
}

/// An rtnetlink socket.
pub struct Rtnl {
    socket: Socket,
    sequence: u32,
    buffer: Vec<u8>,
}

impl Rtnl {
    /// Open a socket in the current thread's namespace.
    pub fn open() -> Result<Self, RtnlError> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(RtnlError::Socket)?;
        socket.bind_auto().map_err(RtnlError::Socket)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(RtnlError::Socket)?;
        Ok(Self {
            socket,
            sequence: 0,
            buffer: Vec::with_capacity(RECEIVE_BUFFER),
        })
    }

    /// Dump with `request`, keeping what `decode` makes of each answered message.
    pub fn dump<T>(
        &mut self,
        request: RouteNetlinkMessage,
        mut decode: impl FnMut(RouteNetlinkMessage) -> Option<T>,
    ) -> Result<Vec<T>, RtnlError> {
        let mut out = Vec::new();
        self.send(request, NLM_F_REQUEST | NLM_F_DUMP)?;
        self.receive(|m| out.extend(decode(m)))?;
        Ok(out)
    }

    /// Ask for one object with `request` (not a dump): what `decode` makes of the answer, or
    /// `None` when the kernel has no such object (`ENOENT`).
    pub fn get<T>(
        &mut self,
        request: RouteNetlinkMessage,
        mut decode: impl FnMut(RouteNetlinkMessage) -> Option<T>,
    ) -> Result<Option<T>, RtnlError> {
        let mut out = None;
        self.send(request, NLM_F_REQUEST | NLM_F_ACK)?;
        match self.receive(|m| {
            if out.is_none() {
                out = decode(m);
            }
        }) {
            Ok(()) => Ok(out),
            Err(RtnlError::Kernel(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Send one request (a delete, an add) and wait for the kernel's acknowledgement.
    pub fn execute(&mut self, request: RouteNetlinkMessage) -> Result<(), RtnlError> {
        self.send(request, NLM_F_REQUEST | NLM_F_ACK)?;
        self.receive(|_| {})
    }

    fn send(&mut self, request: RouteNetlinkMessage, flags: u16) -> Result<(), RtnlError> {
        self.sequence = self.sequence.wrapping_add(1);
        let mut message = NetlinkMessage::from(request);
        message.header.flags = flags;
        message.header.sequence_number = self.sequence;
        message.finalize();
        let mut bytes = vec![0; message.buffer_len()];
        message.serialize(&mut bytes);
        self.socket.send(&bytes, 0).map_err(RtnlError::Io)?;
        Ok(())
    }

    /// Read the answers to the latest request until its end (`NLMSG_DONE`, an ack or an
    /// error), handing each inner message to `each`.
    fn receive(&mut self, mut each: impl FnMut(RouteNetlinkMessage)) -> Result<(), RtnlError> {
        loop {
            self.buffer.clear();
            // MSG_TRUNC: the kernel returns the datagram's real length, so a cut is seen.
            let n = self
                .socket
                .recv(&mut self.buffer, nix::libc::MSG_TRUNC)
                .map_err(RtnlError::Io)?;
            if n > self.buffer.len() {
                return Err(RtnlError::Decode(format!(
                    "a {n}-byte datagram does not fit the {RECEIVE_BUFFER}-byte buffer"
                )));
            }
            let mut offset = 0;
            while offset < self.buffer.len() {
                let rest = &self.buffer[offset..];
                let length = message_length(rest)?;
                let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rest[..length])
                    .map_err(|e| RtnlError::Decode(e.to_string()))?;
                offset += length.next_multiple_of(4);
                if message.header.sequence_number != self.sequence {
                    continue; // an answer to an earlier, abandoned request
                }
                match message.payload {
                    NetlinkPayload::InnerMessage(inner) => each(inner),
                    NetlinkPayload::Done(_) => return Ok(()),
                    NetlinkPayload::Error(e) if e.code.is_none() => return Ok(()),
                    NetlinkPayload::Error(e) => return Err(RtnlError::Kernel(e.to_io())),
                    _ => {} // Noop, Overrun: nothing of this request
                }
            }
        }
    }
}

/// The length of the netlink message at the start of `bytes` (its header's first field),
/// checked: at least a header, at most what is left of the datagram.
pub fn message_length(bytes: &[u8]) -> Result<usize, RtnlError> {
    let header: [u8; 4] = bytes
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| RtnlError::Decode(format!("{} trailing bytes", bytes.len())))?;
    let length = u32::from_ne_bytes(header) as usize;
    if length < 16 || length > bytes.len() {
        return Err(RtnlError::Decode(format!(
            "message length {length} with {} bytes left",
            bytes.len()
        )));
    }
    Ok(length)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_length_outside_the_datagram_is_a_decode_error() {
        assert!(matches!(message_length(&[1, 2]), Err(RtnlError::Decode(_))));
        let mut bytes = 200u32.to_ne_bytes().to_vec();
        bytes.resize(20, 0);
        assert!(matches!(message_length(&bytes), Err(RtnlError::Decode(_))));
        let mut bytes = 8u32.to_ne_bytes().to_vec();
        bytes.resize(20, 0);
        assert!(matches!(message_length(&bytes), Err(RtnlError::Decode(_))));
        let mut bytes = 20u32.to_ne_bytes().to_vec();
        bytes.resize(24, 0);
        assert_eq!(message_length(&bytes).unwrap(), 20);
    }
}
