//! `IpForward`: the node must forward IPv4.
//!
//! `net.ipv4.ip_forward` and `net.ipv4.conf.all.forwarding` are two names of one kernel
//! variable (the netns's `devconf_all` FORWARDING: writing either changes both). They are one
//! finding under the first name, with one flap counter, so that a competing writer of either name
//! meets one limit and the fix is recorded once.
//!
//! Writing that switch also sets `conf.default.forwarding` and every interface's own
//! `forwarding`, so while it is off it is the only finding. While it is on, an interface whose own
//! switch is off does not forward what arrives on it, and `conf.default.forwarding=0` makes every
//! new interface (each new pod's veth) start that way: those are findings of their own, for
//! `default`, the node's uplinks (the interfaces of its default routes) and the CNI's interfaces
//! (bridges, veths, tunnels). Any other interface's switch is the administrator's.
//!
//! IPv6 has one switch, `net.ipv6.conf.all.forwarding`, checked only where the cluster has
//! IPv6 pod ranges (a Node's `spec.podCIDRs`); it is a finding of its own, fixed the same way.

use super::reject_scope::is_pod_interface;
use super::{Input, details, finding};
use crate::engine::ClusterFacts;
use crate::probe::sysctl::dotted;
use ipnet::Ipv6Net;
use netheal_crds::{Check, Finding};

/// The switch's two names; the finding is reported and fixed under the first.
pub const KEYS: [&str; 2] = ["net/ipv4/ip_forward", "net/ipv4/conf/all/forwarding"];
/// The desired value.
pub const DESIRED: &str = "1";

/// IPv6's switch: one for every interface (an interface's own `forwarding` only chooses host or
/// router behaviour there, not whether packets are forwarded).
pub const IPV6_KEY: &str = "net/ipv6/conf/all/forwarding";

/// The findings on the host namespace: IPv4 forwarding (either name) off, or on with an
/// interface of the cluster not forwarding; IPv6 forwarding off on a dual-stack node.
pub fn check(input: &Input<'_>) -> Vec<Finding> {
    let mut out = ipv4(input);
    out.extend(ipv6(input));
    out
}

/// Whether the cluster carries IPv6 pod traffic: a Node with an IPv6 range in
/// `spec.podCIDRs` (dual-stack or IPv6-only). A single-stack IPv4 cluster needs no IPv6
/// forwarding, and netheal does not ask for it there.
pub fn has_ipv6_pods(cluster: &ClusterFacts) -> bool {
    cluster.nodes.iter().any(|node| {
        node.spec
            .as_ref()
            .and_then(|spec| spec.pod_cidrs.as_ref())
            .is_some_and(|cidrs| cidrs.iter().any(|c| c.parse::<Ipv6Net>().is_ok()))
    })
}

/// `net.ipv6.conf.all.forwarding` off while the cluster has IPv6 pod ranges: pods on other
/// nodes cannot be reached over IPv6 (IPv4 still works, so dual-stack clients that prefer IPv6
/// time out first).
fn ipv6(input: &Input<'_>) -> Vec<Finding> {
    let Some(value) = input.snapshot.host.sysctls.get(IPV6_KEY) else {
        return Vec::new();
    };
    if value.trim() == DESIRED || !has_ipv6_pods(input.cluster) {
        return Vec::new();
    }
    vec![finding(
        Check::IpForward,
        dotted(IPV6_KEY),
        value.trim().to_string(),
        DESIRED.to_string(),
        "IPv6 forwarding is off (net.ipv6.conf.all.forwarding) on a node of a cluster with IPv6 pod ranges: pods on other nodes cannot be reached over IPv6".to_string(),
        details([
            ("netns", String::new()),
            ("sysctl", IPV6_KEY.to_string()),
            ("value", DESIRED.to_string()),
        ]),
    )]
}

/// The IPv4 finding, when forwarding is off under either name; else the per-interface ones.
fn ipv4(input: &Input<'_>) -> Vec<Finding> {
    let sysctls = &input.snapshot.host.sysctls;
    let read: Vec<(&str, &String)> = KEYS
        .iter()
        .filter_map(|key| sysctls.get(*key).map(|v| (*key, v)))
        .collect();
    let Some((_, off)) = read.iter().find(|(_, v)| v.as_str() != DESIRED) else {
        return per_interface(input);
    };
    // Both names read the same variable; should they ever differ, say both.
    let observed = match read.as_slice() {
        [(_, a), (k, b)] if a != b => format!("{a} ({}={b})", dotted(k)),
        _ => (*off).clone(),
    };
    vec![finding(
        Check::IpForward,
        dotted(KEYS[0]),
        observed,
        DESIRED.to_string(),
        "IPv4 forwarding is off (net.ipv4.ip_forward, also read as net.ipv4.conf.all.forwarding): pods on other nodes cannot be reached".to_string(),
        details([
            ("netns", String::new()),
            ("sysctl", KEYS[0].to_string()),
            ("value", DESIRED.to_string()),
        ]),
    )]
}

/// Findings for `conf.default.forwarding` and the cluster's interfaces whose own switch is off
/// (the global switch being on).
fn per_interface(input: &Input<'_>) -> Vec<Finding> {
    let host = &input.snapshot.host;
    let uplinks = host.default_route_interfaces();
    host.sysctls
        .iter()
        .filter_map(|(key, value)| {
            let iface = key.strip_prefix("net/ipv4/conf/")?.strip_suffix("/forwarding")?;
            let covered = iface == "default" || uplinks.contains(&iface) || is_pod_interface(iface);
            (covered && iface != "all" && value.trim() == "0").then_some((key, iface, value))
        })
        .map(|(key, iface, value)| {
            let message = if iface == "default" {
                "net.ipv4.conf.default.forwarding is off while forwarding is on: every new interface (each new pod's veth) starts without forwarding".to_string()
            } else {
                format!(
                    "forwarding is off on {iface} while the node forwards: what arrives on {iface} is not forwarded"
                )
            };
            finding(
                Check::IpForward,
                dotted(key),
                value.trim().to_string(),
                DESIRED.to_string(),
                message,
                details([
                    ("netns", String::new()),
                    ("sysctl", key.clone()),
                    ("value", DESIRED.to_string()),
                ]),
            )
        })
        .collect()
}
