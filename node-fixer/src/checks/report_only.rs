//! Report-only checks: `ProxyArpOff`, `Masquerade`, `RpFilter`.

use super::peers::peers;
use super::reject::is_owned_chain;
use super::{Input, details, finding};
use crate::probe::iptables::split_args;
use crate::probe::sysctl::dotted;
use ipnet::Ipv4Net;
use netheal_crds::{Check, Cni, Finding};

/// Every enabled report-only finding.
pub fn check(input: &Input<'_>) -> Vec<Finding> {
    let checks = &input.policy.checks;
    let mut out = Vec::new();
    if checks.is_enabled(Check::ProxyArpOff)
        && matches!(checks.overlay.cni, Cni::Canal | Cni::Calico)
    {
        out.extend(proxy_arp(input));
    }
    if checks.is_enabled(Check::Masquerade) {
        out.extend(masquerade(input));
    }
    if checks.is_enabled(Check::RpFilter) {
        out.extend(rp_filter(input));
    }
    out
}

fn conf_values<'a>(input: &'a Input<'_>, key: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> {
    input
        .snapshot
        .host
        .sysctls
        .iter()
        .filter_map(move |(k, v)| {
            let iface = k
                .strip_prefix("net/ipv4/conf/")?
                .strip_suffix(key)?
                .strip_suffix('/')?;
            Some((iface, v.as_str()))
        })
}

/// Calico answers ARP for pods with proxy_arp on each `cali*` veth.
fn proxy_arp(input: &Input<'_>) -> Vec<Finding> {
    conf_values(input, "proxy_arp")
        .filter(|(iface, v)| iface.starts_with("cali") && *v != "1")
        .map(|(iface, v)| {
            let key = format!("net/ipv4/conf/{iface}/proxy_arp");
            finding(
                Check::ProxyArpOff,
                dotted(&key),
                v.to_string(),
                "1".to_string(),
                format!("Calico needs proxy_arp=1 on {iface} so the pod's gateway ARP is answered"),
                details([("netns", String::new()), ("sysctl", key)]),
            )
        })
        .collect()
}

/// Strict reverse-path filtering (1) on overlay interfaces drops asymmetric overlay traffic.
fn rp_filter(input: &Input<'_>) -> Vec<Finding> {
    let all = input
        .snapshot
        .host
        .sysctls
        .get("net/ipv4/conf/all/rp_filter")
        .and_then(|v| v.parse::<u8>().ok())
        .unwrap_or(0);
    conf_values(input, "rp_filter")
        .filter(|(iface, _)| {
            iface.starts_with("flannel.") || *iface == "tunl0" || *iface == "vxlan.calico"
        })
        .filter_map(|(iface, v)| {
            let own = v.parse::<u8>().ok()?;
            // The kernel uses max(all, iface); 2 (loose) is fine, 1 (strict) is not.
            (own.max(all) == 1).then(|| {
                let key = format!("net/ipv4/conf/{iface}/rp_filter");
                finding(
                    Check::RpFilter,
                    dotted(&key),
                    format!("1 (max of all={all}, {iface}={own})"),
                    "0 or 2".to_string(),
                    format!("strict reverse-path filtering on overlay interface {iface}"),
                    details([("netns", String::new()), ("sysctl", key)]),
                )
            })
        })
        .collect()
}

/// A POSTROUTING MASQUERADE of pod sources without a destination restriction rewrites
/// pod-to-pod traffic over the overlay.
fn masquerade(input: &Input<'_>) -> Vec<Finding> {
    let Some(ipt) = &input.snapshot.host.iptables else {
        return Vec::new();
    };
    let pod_cidrs: Vec<Ipv4Net> = peers(input.cluster)
        .iter()
        .filter_map(|p| p.pod_cidr)
        .collect();
    ipt.rules
        .iter()
        .filter(|r| r.table == "nat" && r.chain == "POSTROUTING" && !is_owned_chain(&r.chain))
        .filter(|r| {
            let args = split_args(&r.spec);
            let has = |f: &str| args.iter().any(|a| a == f);
            let src: Option<Ipv4Net> = args
                .windows(2)
                .find(|w| w[0] == "-s")
                .and_then(|w| w[1].parse().ok());
            let negated_out = args.windows(2).any(|w| w[0] == "!" && w[1] == "-o");
            let overlaps = src.is_some_and(|s| pod_cidrs.iter().any(|c| s.contains(c) || c.contains(&s)));
            args.windows(2).any(|w| w[0] == "-j" && w[1] == "MASQUERADE")
                && src.is_some()
                && !has("-d")
                && (negated_out || overlaps)
        })
        .map(|r| {
            finding(
                Check::Masquerade,
                format!("nat POSTROUTING {}", r.spec),
                format!("present (iptables-{})", ipt.backend.as_str()),
                "no MASQUERADE of pod-to-pod traffic".to_string(),
                "this MASQUERADE rewrites pod sources over the overlay; peers see the node's address".to_string(),
                details([
                    ("netns", String::new()),
                    ("table", "nat".to_string()),
                    ("chain", "POSTROUTING".to_string()),
                    ("rule", r.spec.clone()),
                    ("backend", ipt.backend.as_str().to_string()),
                ]),
            )
        })
        .collect()
}
