//! Calico-style duplicate PERMANENT neighbours: one pod IP on several `cali*` veths, only one
//! of which carries the pod's /32 route.
#![allow(clippy::unwrap_used)] // test code: a panic is how a test fails

mod common;
use common::*;
use netheal_crds::{Check, Outcome};
use node_fixer::engine;

#[test]
fn permanent_pod_ip_on_the_wrong_cali_veths_is_deleted_and_the_right_one_stays() {
    let node = netns("nf-dup-node");
    let pod = netns("nf-cni-dup-0");
    let old1 = netns("nf-cni-dup-1");
    let old2 = netns("nf-cni-dup-2");
    node.set_sysctl("net/ipv4/ip_forward", "1").unwrap();
    ip(&node, "addr add 10.70.0.1/32 dev lo");
    veth(&node, "calidup0", &pod, "eth0");
    veth(&node, "calidup1", &old1, "eth0");
    veth(&node, "calidup2", &old2, "eth0");
    for i in 0..3 {
        node.set_sysctl(&format!("net/ipv4/conf/calidup{i}/proxy_arp"), "1")
            .unwrap();
    }
    ip(&pod, "addr add 10.78.0.5/32 dev eth0");
    ip(&pod, "route add 10.70.0.1/32 dev eth0 scope link");
    ip(&node, "route add 10.78.0.5/32 dev calidup0 scope link");
    let pod_mac = exec(&pod, "cat /sys/class/net/eth0/address")
        .trim()
        .to_string();
    // felix's entry for the live pod, and leftovers of two dead pods that had the same IP,
    // plus one for an IP that has no route at all.
    ip(
        &node,
        &format!("neigh replace 10.78.0.5 lladdr {pod_mac} dev calidup0 nud permanent"),
    );
    ip(
        &node,
        "neigh replace 10.78.0.5 lladdr 02:00:00:00:00:01 dev calidup1 nud permanent",
    );
    ip(
        &node,
        "neigh replace 10.78.0.5 lladdr 02:00:00:00:00:02 dev calidup2 nud permanent",
    );
    ip(
        &node,
        "neigh replace 10.78.0.9 lladdr 02:00:00:00:00:09 dev calidup1 nud permanent",
    );
    assert!(node.ping("10.78.0.5", 1));

    let dir = tempfile::tempdir().unwrap();
    let config = config(&node, "dup", dir.path(), vec![], "n1");
    let policy = policy();
    let scan = engine::scan(&policy, &config);
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    assert_eq!(
        targets(&scan.findings),
        [
            "neigh 10.78.0.5 dev calidup1",
            "neigh 10.78.0.5 dev calidup2",
            "neigh 10.78.0.9 dev calidup1",
        ]
    );
    assert!(
        scan.findings
            .iter()
            .all(|f| f.check == Check::StaleNeighbour)
    );
    let msg = scan.findings.to_vec()[0].message.clone().unwrap();
    assert!(msg.contains("goes through calidup0"), "{msg}");

    let results = fix_all(&policy, &config, false);
    assert_eq!(results.len(), 3);
    for r in &results {
        assert_eq!(r.outcome, Outcome::Applied, "{r:?}");
        assert_eq!(r.after, "absent");
        assert!(r.before.contains("PERMANENT") && r.before.contains("lladdr 02:00:00:00:00:0"));
    }
    let left = exec(&node, "ip neigh show");
    assert!(
        left.contains(&format!(
            "10.78.0.5 dev calidup0 lladdr {pod_mac} PERMANENT"
        )),
        "{left}"
    );
    assert!(
        !left.contains("calidup1") && !left.contains("calidup2"),
        "{left}"
    );
    assert!(node.ping("10.78.0.5", 2), "the live pod still answers");
    assert!(engine::scan(&policy, &config).findings.is_empty());
    // Replaying the same orders changes nothing.
    for o in engine::orders_for(&scan.findings, &policy, false) {
        assert_eq!(
            engine::execute(&o, &policy, &config).outcome,
            Outcome::NoChange
        );
    }
}

/// The same on a dual-stack Calico node: felix's PERMANENT NDP entry for the live pod's IPv6
/// address stays, the leftovers on other veths (and one with no route) are deleted over
/// netlink (AF_INET6), and IPv6 to the live pod keeps working.
#[test]
fn permanent_ipv6_pod_ip_on_the_wrong_cali_veths_is_deleted_and_the_right_one_stays() {
    let node = netns("nf-dup6-node");
    let pod = netns("nf-cni-dup6-0");
    let old = netns("nf-cni-dup6-1");
    node.set_sysctl("net/ipv4/ip_forward", "1").unwrap();
    node.set_sysctl("net/ipv6/conf/all/forwarding", "1")
        .unwrap();
    ip(&node, "-6 addr add fd00:70::1/128 dev lo nodad");
    veth(&node, "calidup0", &pod, "eth0");
    veth(&node, "calidup1", &old, "eth0");
    for i in 0..2 {
        node.set_sysctl(&format!("net/ipv4/conf/calidup{i}/proxy_arp"), "1")
            .unwrap();
    }
    // Calico's pods route through a link-local address of the host's veth.
    ip(&node, "-6 addr add fe80::1/64 dev calidup0 nodad");
    ip(&pod, "-6 addr add fd00:78::5/128 dev eth0 nodad");
    ip(&pod, "-6 route add default via fe80::1 dev eth0");
    ip(&node, "-6 route add fd00:78::5/128 dev calidup0");
    let pod_mac = exec(&pod, "cat /sys/class/net/eth0/address")
        .trim()
        .to_string();
    ip(
        &node,
        &format!("-6 neigh replace fd00:78::5 lladdr {pod_mac} dev calidup0 nud permanent"),
    );
    ip(
        &node,
        "-6 neigh replace fd00:78::5 lladdr 02:00:00:00:00:01 dev calidup1 nud permanent",
    );
    ip(
        &node,
        "-6 neigh replace fd00:78::9 lladdr 02:00:00:00:00:09 dev calidup1 nud permanent",
    );
    assert!(node.ping("fd00:78::5", 2));

    let dir = tempfile::tempdir().unwrap();
    let config = config(&node, "dup6", dir.path(), vec![], "n1");
    let policy = policy();
    let scan = engine::scan(&policy, &config);
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    assert_eq!(
        targets(&scan.findings),
        [
            "neigh fd00:78::5 dev calidup1",
            "neigh fd00:78::9 dev calidup1",
        ]
    );
    let findings = scan.findings.to_vec();
    let msg = findings[0].message.clone().unwrap();
    assert!(msg.contains("goes through calidup0"), "{msg}");
    assert!(
        findings[1]
            .message
            .clone()
            .unwrap()
            .contains("no route to fd00:78::9"),
        "{findings:?}"
    );
    assert_eq!(findings[0].details["ip"], "fd00:78::5");

    let results = fix_all(&policy, &config, false);
    assert_eq!(results.len(), 2);
    for r in &results {
        assert_eq!(r.outcome, Outcome::Applied, "{r:?}");
        assert_eq!(r.after, "absent");
        assert!(r.before.contains("PERMANENT") && r.before.contains("lladdr 02:00:00:00:00:0"));
    }
    let left = exec(&node, "ip -6 neigh show");
    assert!(
        left.contains(&format!(
            "fd00:78::5 dev calidup0 lladdr {pod_mac} PERMANENT"
        )),
        "{left}"
    );
    assert!(!left.contains("calidup1 lladdr 02:"), "{left}");
    assert!(
        node.ping("fd00:78::5", 2),
        "the live pod still answers over IPv6"
    );
    assert!(engine::scan(&policy, &config).findings.is_empty());
    for o in engine::orders_for(&scan.findings, &policy, false) {
        assert_eq!(
            engine::execute(&o, &policy, &config).outcome,
            Outcome::NoChange
        );
    }
}
