//! `ArpIgnore`: the kernel answers ARP per max(conf.all, conf.IFACE); pod namespaces inherit
//! the node's `all`/`default` values when they are created, so they are checked too. On the
//! node: `all`, `default`, the policy's interfaces and the uplink.

use super::{Input, details, finding, patterns};
use crate::probe::sysctl::dotted;
use crate::snapshot::Sysctls;
use netheal_crds::{Check, Finding};

/// Findings for the node and every pod namespace.
pub fn check(input: &Input<'_>) -> Vec<Finding> {
    let spec = &input.policy.checks.arp_ignore;
    let pats = patterns("spec.checks.arpIgnore.interfaces", &spec.interfaces);
    // The node's uplink (the interface of a default route) counts too (FAULTS.md).
    let host = &input.snapshot.host;
    let uplinks = host.default_route_interfaces();
    let mut out = check_ns(&host.sysctls, "", spec.desired, &|i| {
        pats.matches(i) || uplinks.contains(&i)
    });
    if spec.pod_namespaces {
        for pod in &input.snapshot.pods {
            // Every interface of a pod namespace is a pod interface (eth0 inherited `default`).
            out.extend(check_ns(&pod.sysctls, &pod.name, spec.desired, &|i| {
                i != "lo"
            }));
        }
    }
    out
}

/// Findings for one namespace (`netns` empty = the host). `all` and `default` are always
/// checked; an interface is checked when `wanted` says so. A key is reported when its own value
/// is above `desired` (that is the key to lower); the observed text shows the effective value.
pub fn check_ns(
    sysctls: &Sysctls,
    netns: &str,
    desired: u8,
    wanted: &dyn Fn(&str) -> bool,
) -> Vec<Finding> {
    let value = |iface: &str| -> Option<u8> {
        sysctls
            .get(&format!("net/ipv4/conf/{iface}/arp_ignore"))
            .and_then(|v| v.parse().ok())
    };
    let all = value("all").unwrap_or(0);
    let mut out = Vec::new();
    let ifaces = sysctls.keys().filter_map(|k| {
        k.strip_prefix("net/ipv4/conf/")?
            .strip_suffix("/arp_ignore")
    });
    for iface in ifaces {
        let Some(own) = value(iface) else { continue };
        let is_special = iface == "all" || iface == "default";
        if !(is_special || wanted(iface)) || own <= desired {
            continue;
        }
        let observed = if is_special {
            own.to_string()
        } else {
            format!("{} (max of all={all}, {iface}={own})", all.max(own))
        };
        let key = format!("net/ipv4/conf/{iface}/arp_ignore");
        let target = if netns.is_empty() {
            dotted(&key)
        } else {
            format!("netns {netns} {}", dotted(&key))
        };
        let message = if netns.is_empty() {
            format!(
                "arp_ignore={own} on {iface}: pods with /32 addresses cannot answer the node's ARP"
            )
        } else {
            format!(
                "pod namespace {netns} carries arp_ignore={own} on {iface} (inherited when it was created): the pod ignores the node's ARP"
            )
        };
        out.push(finding(
            Check::ArpIgnore,
            target,
            observed,
            desired.to_string(),
            message,
            details([
                ("netns", netns.to_string()),
                ("sysctl", key),
                ("value", desired.to_string()),
            ]),
        ));
    }
    out
}
