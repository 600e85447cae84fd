//! `Mtu` (report only): an overlay device whose packets no longer fit the uplink once
//! encapsulated. A node whose underlay MTU shrank (a cloud network of 1450, a VPN) while
//! flannel.1 kept 1450 drops every full-size pod packet to other nodes, silently: small pings
//! work, TCP transfers hang.
//!
//! And a pod's host-side veth larger than the overlay device: the pod was set up with the
//! underlay's MTU (a CNI configuration without `mtu`, a pod created before the overlay's MTU was
//! lowered), so its full-size packets to other nodes do not fit the overlay and are dropped or
//! answered with "fragmentation needed" that many paths lose. The pod's own `eth0` is the other
//! end of that veth and normally has its MTU; the pod's namespace is not read for this.

use super::{Input, details, finding};
use crate::snapshot::{Link, NsSnapshot};
use netheal_crds::{Check, Finding};

/// Overlay devices and their encapsulation overhead in bytes (outer IPv4 + UDP + VXLAN + inner
/// Ethernet for VXLAN; outer IPv4 for IPIP).
pub const OVERLAY_DEVICES: [(&str, u32); 3] =
    [("flannel.1", 50), ("vxlan.calico", 50), ("tunl0", 20)];

/// The bridges pod veths are ports of.
pub const POD_BRIDGES: [&str; 3] = ["cni0", "docker0", "cbr0"];

/// Findings for the node: each overlay device that is up and too large for the uplink, and each
/// pod veth larger than the overlay device.
pub fn check(input: &Input<'_>) -> Vec<Finding> {
    let mut out = overlay_against_uplink(input);
    out.extend(pod_veths_against_overlay(input));
    out
}

/// Whether `link` is the host end of a pod's veth: a veth that is a port of a pod bridge, or a
/// Calico (`cali*`) or flannel-less (`veth*`) one.
fn is_pod_veth(link: &Link, host: &NsSnapshot) -> bool {
    link.kind.as_deref() == Some("veth")
        && (link.name.starts_with("cali")
            || link.name.starts_with("veth")
            || link
                .master
                .and_then(|m| host.link_name(m))
                .is_some_and(|bridge| POD_BRIDGES.contains(&bridge)))
}

fn pod_veths_against_overlay(input: &Input<'_>) -> Vec<Finding> {
    let host = &input.snapshot.host;
    let Some((overlay, overlay_mtu)) = OVERLAY_DEVICES.iter().find_map(|(name, _)| {
        let link = host.links.iter().find(|l| l.name == *name && l.up)?;
        Some((*name, link.mtu?))
    }) else {
        return Vec::new();
    };
    host.links
        .iter()
        .filter(|l| is_pod_veth(l, host))
        .filter_map(|veth| {
            let mtu = veth.mtu?;
            (mtu > overlay_mtu).then(|| {
                finding(
                    Check::Mtu,
                    format!("mtu {}", veth.name),
                    mtu.to_string(),
                    format!("<= {overlay_mtu}"),
                    format!(
                        "pod veth {} has MTU {mtu}, more than the overlay device {overlay} ({overlay_mtu}): the pod's full-size packets to other nodes do not fit the overlay. Set the MTU in the CNI's configuration and recreate the pod",
                        veth.name
                    ),
                    details([
                        ("netns", String::new()),
                        ("interface", veth.name.clone()),
                        ("overlay", overlay.to_string()),
                    ]),
                )
            })
        })
        .collect()
}

fn overlay_against_uplink(input: &Input<'_>) -> Vec<Finding> {
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
