//! `Mtu` on a real kernel: a flannel-style VXLAN device whose MTU no longer fits the uplink
//! once the uplink's MTU shrinks is reported (report only: nothing to fix), and is not once the
//! device is brought down to fit.
#![allow(clippy::unwrap_used)] // test code: a panic is how a test fails

mod common;
use common::*;
use netheal_crds::{Check, Finding};

fn mtu_findings(ns: &Netns, tag: &str) -> Vec<Finding> {
    let dir = tempfile::tempdir().unwrap();
    let config = config(ns, tag, dir.path(), vec![], "n1");
    findings_of(&policy(), &config, Check::Mtu)
}

#[test]
fn an_overlay_device_larger_than_the_uplink_allows_is_reported() {
    let node = netns("nf-mtu-a");
    let peer = netns("nf-mtu-b");
    veth(&node, "eth0", &peer, "eth0");
    ip(&node, "addr add 192.168.77.1/24 dev eth0");
    ip(&node, "route add default via 192.168.77.2 dev eth0");
    ip(
        &node,
        "link add flannel.1 type vxlan id 1 local 192.168.77.1 dev eth0 dstport 8472 nolearning",
    );
    ip(&node, "link set flannel.1 up");
    // The kernel sized flannel.1 to the uplink: 1500 - 50.
    assert!(mtu_findings(&node, "mtu").is_empty());

    // The underlay shrinks (a VPN, a cloud network of 1450); flannel.1 keeps 1450.
    ip(&node, "link set eth0 mtu 1450");
    ip(&node, "link set flannel.1 mtu 1450");
    let found = mtu_findings(&node, "mtu");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].target, "mtu flannel.1");
    assert_eq!(found[0].observed, "1450");
    assert_eq!(found[0].desired, "<= 1400");
    assert_eq!(found[0].details["uplink"], "eth0");
    assert_eq!(found[0].action, None, "report only");

    // Down, it carries nothing; at 1400, it fits.
    ip(&node, "link set flannel.1 down");
    assert!(mtu_findings(&node, "mtu").is_empty());
    ip(&node, "link set flannel.1 mtu 1400 up");
    assert!(mtu_findings(&node, "mtu").is_empty());
}

#[test]
fn a_pod_veth_larger_than_the_overlay_device_is_reported() {
    let node = netns("nf-mtv-a");
    let pod = netns("nf-mtv-p");
    let peer = netns("nf-mtv-b");
    veth(&node, "eth0", &peer, "eth0");
    ip(&node, "addr add 192.168.79.1/24 dev eth0");
    ip(&node, "route add default via 192.168.79.2 dev eth0");
    ip(
        &node,
        "link add flannel.1 type vxlan id 1 local 192.168.79.1 dev eth0 dstport 8472 nolearning",
    );
    ip(&node, "link set flannel.1 up");
    ip(&node, "link add cni0 type bridge");
    ip(&node, "link set cni0 up");
    // A pod set up with the underlay's MTU (1500) behind flannel.1 (1450).
    veth(&node, "vethpod1", &pod, "eth0");
    ip(&node, "link set vethpod1 master cni0");
    ip(&node, "link set vethpod1 mtu 1500");
    // A veth that is no pod's (not on a pod bridge, not named like one) is not judged.
    ip(&node, "link add ext0 type veth peer name ext1");
    let found = mtu_findings(&node, "mtv");
    assert_eq!(targets(&found), ["mtu vethpod1"]);
    assert_eq!(found[0].observed, "1500");
    assert_eq!(found[0].desired, "<= 1450");
    assert_eq!(found[0].details["overlay"], "flannel.1");

    // The CNI's MTU fixed and the pod recreated: it fits.
    ip(&node, "link set vethpod1 mtu 1450");
    assert!(mtu_findings(&node, "mtv").is_empty());
}
