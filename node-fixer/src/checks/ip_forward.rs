//! `IpForward`: the node must forward IPv4 (`net.ipv4.ip_forward` and `conf.all.forwarding`).

use super::{Input, details, finding};
use crate::probe::sysctl::dotted;
use netheal_crds::{Check, Finding};

/// The keys and the value they must have.
pub const KEYS: [&str; 2] = ["net/ipv4/ip_forward", "net/ipv4/conf/all/forwarding"];
/// The desired value.
pub const DESIRED: &str = "1";

/// Findings on the host namespace.
pub fn check(input: &Input<'_>) -> Vec<Finding> {
    let sysctls = &input.snapshot.host.sysctls;
    KEYS.iter()
        .filter_map(|key| {
            let observed = sysctls.get(*key)?;
            (observed != DESIRED).then(|| {
                finding(
                    Check::IpForward,
                    dotted(key),
                    observed.clone(),
                    DESIRED.to_string(),
                    "IPv4 forwarding is off: pods on other nodes cannot be reached".to_string(),
                    details([
                        ("netns", String::new()),
                        ("sysctl", key.to_string()),
                        ("value", DESIRED.to_string()),
                    ]),
                )
            })
        })
        .collect()
}
