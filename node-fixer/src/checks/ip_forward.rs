//! `IpForward`: the node must forward IPv4.
//!
//! `net.ipv4.ip_forward` and `net.ipv4.conf.all.forwarding` are two names of one kernel
//! variable (the netns's `devconf_all` FORWARDING: writing either changes both). They are one
//! finding under the first name, with one flap counter, so that a competing writer of either name
//! meets one limit and the fix is recorded once.

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
        return Vec::new();
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
