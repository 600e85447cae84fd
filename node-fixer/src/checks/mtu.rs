//! `Mtu` (report only): an overlay device whose packets no longer fit the uplink once
//! encapsulated. A node whose underlay MTU shrank (a cloud network of 1450, a VPN) while
//! flannel.1 kept 1450 drops every full-size pod packet to other nodes, silently: small pings
//! work, TCP transfers hang.

use super::{Input, details, finding};
use netheal_crds::{Check, Finding};

/// Overlay devices and their encapsulation overhead in bytes (outer IPv4 + UDP + VXLAN + inner
/// Ethernet for VXLAN; outer IPv4 for IPIP).
pub const OVERLAY_DEVICES: [(&str, u32); 3] =
    [("flannel.1", 50), ("vxlan.calico", 50), ("tunl0", 20)];

/// Findings for the node: each overlay device that is up and too large for the uplink.
pub fn check(input: &Input<'_>) -> Vec<Finding> {
    let host = &input.snapshot.host;
    let uplink = host
        .routes
        .iter()
        .filter(|r| r.dst.prefix_len() == 0)
        .filter_map(|r| {
            let link = host.links.iter().find(|l| Some(l.index) == r.oif)?;
            Some((link.name.as_str(), link.mtu?))
        })
        .min_by_key(|(_, mtu)| *mtu);
    let Some((uplink_name, uplink_mtu)) = uplink else {
        return Vec::new();
    };
    OVERLAY_DEVICES
        .iter()
        .filter_map(|(name, overhead)| {
            let link = host.links.iter().find(|l| l.name == *name && l.up)?;
            let mtu = link.mtu?;
            let fits = uplink_mtu.saturating_sub(*overhead);
            (mtu > fits).then(|| {
                finding(
                    Check::Mtu,
                    format!("mtu {name}"),
                    mtu.to_string(),
                    format!("<= {fits}"),
                    format!(
                        "{name} MTU {mtu} + {overhead} bytes of encapsulation exceeds the MTU {uplink_mtu} of the uplink {uplink_name}: full-size packets to other nodes are dropped"
                    ),
                    details([
                        ("netns", String::new()),
                        ("interface", (*name).to_string()),
                        ("uplink", uplink_name.to_string()),
                    ]),
                )
            })
        })
        .collect()
}
