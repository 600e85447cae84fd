//! IPVS virtual services from `/proc/thread-self/net/ip_vs` (the calling thread's namespace;
//! `/proc/net` would be the process's): what `ipvsadm -Ln` lists, as the kernel prints it, with
//! addresses and ports in hex (`UDP  0A60000A:0035 rr` is `10.96.0.10:53`).

use crate::snapshot::ServiceKey;
use std::net::{IpAddr, Ipv4Addr};

/// The thread's IPVS table.
pub const IP_VS: &str = "/proc/thread-self/net/ip_vs";

/// Why the table could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IpvsError {
    /// The file exists but could not be read.
    #[error("{IP_VS}: {0}")]
    Read(#[source] std::io::Error),
    /// A virtual-service line is not as the kernel prints it.
    #[error("{IP_VS} line {line}: {text:?} is not PROTOCOL HEXADDR:HEXPORT SCHEDULER")]
    Line {
        /// 1-based.
        line: usize,
        /// The line.
        text: String,
    },
}

/// Read the table; `Ok(None)` when the kernel has no IPVS (no file).
pub fn read() -> Result<Option<Vec<ServiceKey>>, IpvsError> {
    match std::fs::read_to_string(IP_VS) {
        Ok(text) => parse(&text).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(IpvsError::Read(e)),
    }
}

/// The TCP, UDP and SCTP virtual services of the table's text, IPv4 (`0A60000A:0035`) and IPv6
/// (`[fd00:0010:0000:0000:0000:0000:0000:000a]:0035`). Real servers (`  -> `), the header and
/// firewall-mark (`FWM`) services are read past.
pub fn parse(text: &str) -> Result<Vec<ServiceKey>, IpvsError> {
    let mut out = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let mut fields = raw.split_whitespace();
        let Some(protocol @ ("TCP" | "UDP" | "SCTP")) = fields.next() else {
            continue;
        };
        let bad = || IpvsError::Line {
            line: index + 1,
            text: raw.to_string(),
        };
        let endpoint = fields.next().ok_or_else(bad)?;
        let (addr, port) = match endpoint.strip_prefix('[') {
            Some(rest) => {
                let (addr, port) = rest.split_once("]:").ok_or_else(bad)?;
                (IpAddr::V6(addr.parse().map_err(|_| bad())?), port)
            }
            None => {
                let (addr, port) = endpoint.split_once(':').ok_or_else(bad)?;
                let addr = u32::from_str_radix(addr, 16).map_err(|_| bad())?;
                (IpAddr::V4(Ipv4Addr::from(addr)), port)
            }
        };
        let port = u16::from_str_radix(port, 16).map_err(|_| bad())?;
        out.push(ServiceKey {
            protocol: protocol.to_ascii_lowercase(),
            addr,
            port,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seed 001's three DNS entries as the kernel prints them.
    const TABLE: &str = "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port Forward Weight ActiveConn InActConn
TCP  0A60000A:0035 rr
  -> 0A283495:0035      Masq    1      0          0
  -> 0A2834AB:0035      Masq    1      0          0
TCP  0A60000A:23C1 rr
  -> 0A283495:23C1      Masq    1      0          0
UDP  0A60000A:0035 rr
  -> 0A283495:0035      Masq    1      0          6930
FWM  00000001 rr
TCP  [fd00:0000:0000:0000:0000:0000:0000:000a]:0035 rr
";

    #[test]
    fn virtual_services_are_read_in_hex_and_the_rest_read_past() {
        let keys = parse(TABLE).unwrap();
        let text: Vec<String> = keys
            .iter()
            .map(|k| format!("{} {}:{}", k.protocol, k.addr, k.port))
            .collect();
        assert_eq!(
            text,
            [
                "tcp 10.96.0.10:53",
                "tcp 10.96.0.10:9153",
                "udp 10.96.0.10:53",
                "tcp fd00::a:53"
            ]
        );
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn a_line_not_as_the_kernel_prints_it_is_an_error_naming_it() {
        let e = parse("TCP  10.96.0.10:53 rr\n").unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("10.96.0.10:53"), "{e}");
        assert!(parse("UDP\n").is_err());
        assert!(parse("TCP  0A60000A rr\n").is_err());
        assert!(parse("TCP  [fd00::zz]:0035 rr\n").is_err());
        assert!(parse("TCP  [fd00::a] rr\n").is_err());
    }
}
