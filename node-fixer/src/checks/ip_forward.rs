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

use super::reject_scope::is_pod_interface;
use super::{Input, details, finding};
use crate::probe::sysctl::dotted;
use netheal_crds::{Check, Finding};

/// The switch's two names; the finding is reported and fixed under the first.
pub const KEYS: [&str; 2] = ["net/ipv4/ip_forward", "net/ipv4/conf/all/forwarding"];
/// The desired value.
pub const DESIRED: &str = "1";

/// The finding on the host namespace, when forwarding is off under either name.
pub fn check(input: &Input<'_>) -> Vec<Finding> {
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
