//! `TunnelOffload` on a real kernel, through ethtool's netlink interface: VXLAN transmit
//! checksum offload on `flannel.1` is reported on the kernels the policy names, not reported on
//! a kernel past the fix, and not once it is turned off (report only: nothing is changed).
#![allow(clippy::unwrap_used)] // test code: a panic is how a test fails

mod common;
use common::*;
use netheal_crds::{Check, Finding, NetworkHealthPolicySpec};
use node_fixer::engine::{self, EngineConfig};

fn offload_findings(config: &EngineConfig, policy: &NetworkHealthPolicySpec) -> Vec<Finding> {
    findings_of(policy, config, Check::TunnelOffload)
}

#[test]
fn vxlan_checksum_offload_is_reported_where_the_policy_says_it_breaks() {
    let node = netns("nf-tof-a");
    let peer = netns("nf-tof-b");
    veth(&node, "eth0", &peer, "eth0");
    ip(&node, "addr add 192.168.78.1/24 dev eth0");
    ip(
        &node,
        "link add flannel.1 type vxlan id 1 local 192.168.78.1 dev eth0 dstport 8472 nolearning",
    );
    ip(&node, "link set flannel.1 up");
    let dir = tempfile::tempdir().unwrap();
    let config = config(&node, "tof", dir.path(), vec![], "n1");

    // The kernel turns the offload on for a new VXLAN device; ethtool's netlink says so.
    let (snapshot, errors) = engine::snapshot(&policy(), &config);
    assert!(errors.is_empty(), "{errors:?}");
    let features = &snapshot.host.features;
    assert!(
        features["flannel.1"].contains("tx-checksum-ip-generic"),
        "{features:?}"
    );
    assert!(
        !features.contains_key("eth0"),
        "only the policy's interfaces are read"
    );

    // This kernel is past the fix (5.7): the default policy reports nothing.
    let release = snapshot.node.kernel_release.clone().unwrap();
    let past_fix = node_fixer::checks::tunnel_offload::major_minor(&release).unwrap() >= (5, 7);
    let mut every_kernel = policy();
    if past_fix {
        assert!(offload_findings(&config, &policy()).is_empty());
    }
    // Flagged on every kernel: reported, report only.
    every_kernel.checks.tunnel_offload.kernels_before = String::new();
    let found = offload_findings(&config, &every_kernel);
    assert_eq!(
        targets(&found),
        ["offload flannel.1 tx-checksum-ip-generic"]
    );
    assert_eq!(
        (found[0].observed.as_str(), found[0].desired.as_str()),
        ("on", "off")
    );
    assert_eq!(found[0].details["kernel"], release);
    assert_eq!(found[0].action, None, "report only");

    // The uplink named too (seed 001): its features are read as well.
    every_kernel
        .checks
        .tunnel_offload
        .interfaces
        .push("eth0".into());
    let eth0_on = exec(&node, "ethtool -k eth0").contains("tx-checksum-ip-generic: on");
    let expected = usize::from(eth0_on) + 1;
    assert_eq!(offload_findings(&config, &every_kernel).len(), expected);

    // Turned off (what flannel and Calico do on affected kernels): nothing to report.
    exec(&node, "ethtool -K flannel.1 tx-checksum-ip-generic off");
    exec(&node, "ethtool -K eth0 tx-checksum-ip-generic off");
    assert!(offload_findings(&config, &every_kernel).is_empty());
}
