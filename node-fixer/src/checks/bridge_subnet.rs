//! `BridgeSubnetMismatch` (report only, flannel and canal; seed 004 §5): the pod bridge does not
//! carry the lease flannel holds for this node. flannel writes its lease to
//! `/run/flannel/subnet.env` (`FLANNEL_SUBNET=10.244.1.1/24`: the bridge's address and the
//! node's pod subnet); after a power loss the bridge (`cni0`, or `docker0` started with
//! `--bip`) can come back with an older subnet. Its pods then get addresses that the other
//! nodes route elsewhere, and nothing reaches them.
//!
//! `cni0` is flannel's bridge and must carry the lease's address; `docker0` is judged only when
//! one of its addresses lies in flannel's network (`FLANNEL_NETWORK`), that is when Docker was
//! configured to use the lease, since a plain Docker keeps its own `172.17.0.1/16`. A bridge
//! without an IPv4 address (no pod started yet) is not judged. A lease file that cannot be
//! read as flannel writes it is one finding of its own, never a panic.

use super::{Input, details, finding};
use ipnet::Ipv4Net;
use netheal_crds::{Check, Finding};

/// The bridges compared with the lease: flannel's CNI bridge and Docker's.
pub const BRIDGES: [&str; 2] = ["cni0", "docker0"];

/// What flannel's lease file says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlannelLease {
    /// `FLANNEL_NETWORK`: the cluster's pod network, when written.
    pub network: Option<Ipv4Net>,
    /// `FLANNEL_SUBNET`: this node's bridge address and prefix (`10.244.1.1/24`).
    pub subnet: Ipv4Net,
}

/// Why a lease file is not one.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// A line is not `KEY=VALUE`.
    #[error("line {line}: {text:?} is not KEY=VALUE")]
    NotAssignment {
        /// 1-based.
        line: usize,
        /// The line.
        text: String,
    },
    /// A value is not an IPv4 address with a prefix.
    #[error("line {line}: {key}={value:?} is not an IPv4 address/prefix")]
    NotSubnet {
        /// 1-based.
        line: usize,
        /// The key.
        key: &'static str,
        /// The value.
        value: String,
    },
    /// No `FLANNEL_SUBNET`.
    #[error("no FLANNEL_SUBNET line")]
    NoSubnet,
}

/// Parse a lease file as flannel writes it (`KEY=VALUE` lines; blank lines, `#` comments, an
/// `export ` prefix and quotes are accepted). Keys other than `FLANNEL_NETWORK` and
/// `FLANNEL_SUBNET` (`FLANNEL_MTU`, `FLANNEL_IPMASQ`, the IPv6 ones) are read past.
pub fn parse_lease(text: &str) -> Result<FlannelLease, LeaseError> {
    let mut network = None;
    let mut subnet = None;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let assignment = trimmed.strip_prefix("export ").unwrap_or(trimmed);
        let Some((key, value)) = assignment.split_once('=') else {
            return Err(LeaseError::NotAssignment {
                line,
                text: raw.to_string(),
            });
        };
        let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
        let slot = match key.trim() {
            "FLANNEL_NETWORK" => (&mut network, "FLANNEL_NETWORK"),
            "FLANNEL_SUBNET" => (&mut subnet, "FLANNEL_SUBNET"),
            _ => continue,
        };
        let parsed: Ipv4Net = value.parse().map_err(|_| LeaseError::NotSubnet {
            line,
            key: slot.1,
            value: value.to_string(),
        })?;
        *slot.0 = Some(parsed);
    }
    Ok(FlannelLease {
        network,
        subnet: subnet.ok_or(LeaseError::NoSubnet)?,
    })
}

/// The findings of the node: one per bridge that does not carry the lease, or one for a lease
/// file that cannot be read.
pub fn check(input: &Input<'_>) -> Vec<Finding> {
    let Some(file) = &input.snapshot.node.flannel_lease else {
        return Vec::new();
    };
    let lease = match parse_lease(&file.text) {
        Ok(lease) => lease,
        Err(e) => {
            return vec![finding(
                Check::BridgeSubnetMismatch,
                format!("flannel lease {}", file.path),
                format!("malformed: {e}"),
                "FLANNEL_SUBNET=<address>/<prefix>".to_string(),
                format!(
                    "flannel's lease file {} cannot be read as flannel writes it ({e}): the pod bridge cannot be compared with it, and flannel's CNI plugin will fail the same way",
                    file.path
                ),
                details([("netns", String::new()), ("lease", file.path.clone())]),
            )];
        }
    };
    let host = &input.snapshot.host;
    BRIDGES
        .iter()
        .filter_map(|name| {
            let link = host.link_by_name(name)?;
            let addresses: Vec<Ipv4Net> = host
                .addresses
                .iter()
                .filter(|a| a.ifindex == link.index)
                .map(|a| a.addr)
                .collect();
            let judged = *name == "cni0"
                || lease
                    .network
                    .is_some_and(|n| addresses.iter().any(|a| n.contains(&a.addr())));
            let carries = addresses.contains(&lease.subnet);
            (judged && !addresses.is_empty() && !carries)
                .then(|| mismatch(name, &addresses, &lease, &file.path))
        })
        .collect()
}

fn mismatch(bridge: &str, addresses: &[Ipv4Net], lease: &FlannelLease, path: &str) -> Finding {
    let observed = addresses
        .iter()
        .map(Ipv4Net::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let subnet = lease.subnet;
    finding(
        Check::BridgeSubnetMismatch,
        format!("bridge {bridge}"),
        observed.clone(),
        subnet.to_string(),
        format!(
            "{bridge} has {observed} but flannel's lease in {path} is FLANNEL_SUBNET={subnet}: pods on {bridge} get addresses the other nodes do not route to this node. Delete the stale bridge (ip link delete {bridge}) and restart flannel and the pods on this node, or for docker0 set --bip to {subnet} (runbook: report-only checks)"
        ),
        details([
            ("netns", String::new()),
            ("interface", bridge.to_string()),
            ("lease", path.to_string()),
            ("flannelSubnet", subnet.to_string()),
        ]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_read_as_flannel_writes_it() {
        let text = "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n";
        let lease = parse_lease(text).unwrap();
        assert_eq!(lease.network, Some("10.244.0.0/16".parse().unwrap()));
        assert_eq!(lease.subnet.to_string(), "10.244.1.1/24");
        let quoted = "# written by hand\n\nexport FLANNEL_SUBNET=\"10.1.15.1/24\"\n";
        assert_eq!(parse_lease(quoted).unwrap().network, None);
    }

    #[test]
    fn a_malformed_lease_names_its_line() {
        assert_eq!(
            parse_lease("FLANNEL_SUBNET=10.244.1/24\n"),
            Err(LeaseError::NotSubnet {
                line: 1,
                key: "FLANNEL_SUBNET",
                value: "10.244.1/24".into()
            })
        );
        assert!(matches!(
            parse_lease("FLANNEL_MTU=1450\ngarbage\n"),
            Err(LeaseError::NotAssignment { line: 2, .. })
        ));
        assert_eq!(parse_lease("FLANNEL_MTU=1450\n"), Err(LeaseError::NoSubnet));
        assert_eq!(parse_lease(""), Err(LeaseError::NoSubnet));
    }
}
