//! `BridgeSubnetMismatch` on a real kernel (seed 004 §5): a `cni0` bridge whose address is not
//! flannel's lease in `subnet.env` is reported, a `docker0` only when it lies in flannel's
//! network, a malformed lease is a finding of its own, and nothing is reported once the bridge
//! carries the lease (report only: nothing is changed).
#![allow(clippy::unwrap_used)] // test code: a panic is how a test fails

mod common;
use common::*;
use netheal_crds::{Check, Cni, Finding};
use node_fixer::engine::EngineConfig;

const LEASE: &str = "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n";

fn bridge_findings(config: &EngineConfig, cni: Cni) -> Vec<Finding> {
    let mut policy = policy();
    policy.checks.overlay.cni = cni;
    findings_of(&policy, config, Check::BridgeSubnetMismatch)
}

#[test]
fn a_pod_bridge_that_is_not_flannels_lease_is_reported() {
    let node = netns("nf-brs-a");
    ip(&node, "link add cni0 type bridge");
    ip(&node, "addr add 10.244.3.1/24 dev cni0");
    ip(&node, "link set cni0 up");
    // Docker's own bridge, outside flannel's network: not flannel's business.
    ip(&node, "link add docker0 type bridge");
    ip(&node, "addr add 172.17.0.1/16 dev docker0");
    let dir = tempfile::tempdir().unwrap();
    let config = config(&node, "brs", dir.path(), vec![], "n1");
    // No lease file (not a flannel node): nothing to compare, no error.
    assert!(bridge_findings(&config, Cni::Canal).is_empty());

    std::fs::write(&config.flannel_subnet_env, LEASE).unwrap();
    let found = bridge_findings(&config, Cni::Canal);
    assert_eq!(targets(&found), ["bridge cni0"]);
    assert_eq!(found[0].observed, "10.244.3.1/24");
    assert_eq!(found[0].desired, "10.244.1.1/24");
    assert_eq!(found[0].action, None, "report only");
    let message = found[0].message.as_deref().unwrap();
    assert!(
        message.contains("FLANNEL_SUBNET=10.244.1.1/24"),
        "{message}"
    );
    // Calico does not use flannel's lease.
    assert!(bridge_findings(&config, Cni::Calico).is_empty());

    // docker0 started with --bip from an older lease: inside flannel's network, judged.
    ip(&node, "addr flush dev docker0");
    ip(&node, "addr add 10.244.7.1/24 dev docker0");
    assert_eq!(
        targets(bridge_findings(&config, Cni::Flannel)),
        ["bridge cni0", "bridge docker0"]
    );

    // The bridges carry the lease again: nothing to report.
    ip(&node, "addr flush dev cni0");
    ip(&node, "addr add 10.244.1.1/24 dev cni0");
    ip(&node, "addr flush dev docker0");
    ip(&node, "addr add 10.244.1.1/24 dev docker0");
    assert!(bridge_findings(&config, Cni::Flannel).is_empty());

    // A lease flannel could not have written is a finding naming its line, not a panic.
    std::fs::write(
        &config.flannel_subnet_env,
        "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1/24\n",
    )
    .unwrap();
    let found = bridge_findings(&config, Cni::Flannel);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].target.starts_with("flannel lease "),
        "{}",
        found[0].target
    );
    assert!(
        found[0]
            .observed
            .starts_with("malformed: line 2: FLANNEL_SUBNET="),
        "{}",
        found[0].observed
    );
}

#[test]
fn the_scan_command_reads_the_lease_named_by_its_flag() {
    let node = netns("nf-brs-cli");
    ip(&node, "link add cni0 type bridge");
    ip(&node, "addr add 10.244.9.1/24 dev cni0");
    let dir = tempfile::tempdir().unwrap();
    let lease = dir.path().join("subnet.env");
    std::fs::write(&lease, LEASE).unwrap();
    let out = bin()
        .args(["scan", "--netns", node.name(), "--output", "json"])
        .arg("--flannel-subnet-env")
        .arg(&lease)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("\"target\": \"bridge cni0\"")
            || stdout.contains("\"target\":\"bridge cni0\""),
        "{stdout}"
    );
    assert!(stdout.contains("10.244.9.1/24"), "{stdout}");
}
