//! `TunnelOffload` (report only; seed 001, projectcalico/calico#3145, flannel-io/flannel#1279):
//! offload features active on overlay devices that some kernels get wrong. The default is
//! VXLAN's transmit checksum offload (`tx-checksum-ip-generic` on `flannel.1` and
//! `vxlan.calico`): before 5.7 the kernel left a wrong UDP checksum on encapsulated packets
//! whose inner header kube-proxy's SNAT had rewritten, and the peer dropped them (DNS through
//! the Service VIP timed out while ping worked). The policy names the interfaces and features
//! (add the uplink and `tx-generic-segmentation` for the GSO drop of IPIP packets seed 001
//! describes), and the kernel release from which they are no longer flagged.

use super::{Input, details, finding, patterns};
use netheal_crds::{Check, Finding};

/// `MAJOR.MINOR` of a kernel release (`6.1.0-27-amd64` → (6, 1)).
pub fn major_minor(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Whether the node's kernel is one the features are flagged on: older than `before`
/// (`MAJOR.MINOR`), every kernel when `before` is empty, and a kernel whose release is unknown.
pub fn kernel_affected(release: Option<&str>, before: &str) -> bool {
    let Some(limit) = major_minor(before) else {
        return true;
    };
    release.and_then(major_minor).is_none_or(|k| k < limit)
}

/// One finding per listed feature active on a listed interface, on an affected kernel.
pub fn check(input: &Input<'_>) -> Vec<Finding> {
    let spec = &input.policy.checks.tunnel_offload;
    let release = input.snapshot.node.kernel_release.as_deref();
    if !kernel_affected(release, &spec.kernels_before) {
        return Vec::new();
    }
    let interfaces = patterns("spec.checks.tunnelOffload.interfaces", &spec.interfaces);
    let kernel = release.unwrap_or("unknown");
    input
        .snapshot
        .host
        .features
        .iter()
        .filter(|(name, _)| interfaces.matches(name))
        .flat_map(|(name, active)| {
            spec.features
                .iter()
                .filter(|feature| active.contains(feature.as_str()))
                .map(move |feature| {
                    finding(
                        Check::TunnelOffload,
                        format!("offload {name} {feature}"),
                        "on".to_string(),
                        "off".to_string(),
                        format!(
                            "{feature} is on for {name} on kernel {kernel}: encapsulated packets can leave with a wrong checksum or be dropped (seed 001, flannel-io/flannel#1279). Turn it off with `ethtool -K {name} {feature} off` and make it persistent in the CNI's configuration (runbook: report-only checks)"
                        ),
                        details([
                            ("netns", String::new()),
                            ("interface", name.clone()),
                            ("feature", feature.clone()),
                            ("kernel", kernel.to_string()),
                        ]),
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_releases_are_compared_by_major_and_minor() {
        assert_eq!(major_minor("6.18.44-fc-v1147"), Some((6, 18)));
        assert_eq!(major_minor("5.4.0-150-generic"), Some((5, 4)));
        assert_eq!(major_minor("4.19+"), Some((4, 19)));
        assert_eq!(major_minor("junk"), None);
        assert!(kernel_affected(Some("5.4.0-150-generic"), "5.7"));
        assert!(!kernel_affected(Some("5.7.0"), "5.7"));
        assert!(!kernel_affected(Some("6.18.44-fc-v1147"), "5.7"));
        assert!(kernel_affected(Some("6.18.44"), ""));
        assert!(kernel_affected(None, "5.7"));
        assert!(kernel_affected(Some("weird"), "5.7"));
    }
}
