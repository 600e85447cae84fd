//! `IpForward` on a real kernel: a router namespace between two hosts stops forwarding.
#![allow(clippy::unwrap_used)] // test code: a panic is how a test fails

mod common;
use common::*;
use netheal_crds::{Check, Outcome};
use node_fixer::engine;

#[test]
fn forwarding_off_on_the_router_is_found_fixed_and_persisted() {
    let a = netns("nf-fwd-a");
    let r = netns("nf-fwd-r");
    let b = netns("nf-fwd-b");
    veth(&a, "eth0", &r, "eth-a");
    veth(&b, "eth0", &r, "eth-b");
    ip(&a, "addr add 10.81.1.2/24 dev eth0");
    ip(&a, "route add default via 10.81.1.1");
    ip(&b, "addr add 10.81.2.2/24 dev eth0");
    ip(&b, "route add default via 10.81.2.1");
    ip(&r, "addr add 10.81.1.1/24 dev eth-a");
    ip(&r, "addr add 10.81.2.1/24 dev eth-b");
    r.set_sysctl("net/ipv4/ip_forward", "0").unwrap();
    assert!(!a.ping("10.81.2.2", 1), "no forwarding, no traffic");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("90-netheal.conf"),
        "# kept\nvm.swappiness = 10\n",
    )
    .unwrap();
    let config = config(&r, "fwd", dir.path(), vec![], "r");
    let policy = policy();
    let scan = engine::scan(&policy, &config);
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    // ip_forward and conf.all.forwarding are one kernel variable: one finding.
    assert_eq!(targets(&scan.findings), ["net.ipv4.ip_forward"]);
    assert!(
        scan.findings
            .iter()
            .all(|f| f.check == Check::IpForward && f.observed == "0")
    );

    let results = fix_all(&policy, &config, false);
    let outcomes: Vec<_> = results.iter().map(|r| r.outcome).collect();
    assert_eq!(outcomes, [Outcome::Applied], "one fix, recorded once");
    assert_eq!(
        (results[0].before.as_str(), results[0].after.as_str()),
        ("0", "1")
    );
    assert_eq!(sysctl(&r, "net/ipv4/ip_forward"), "1");
    assert_eq!(sysctl(&r, "net/ipv4/conf/all/forwarding"), "1");
    assert!(a.ping("10.81.2.2", 2), "traffic must flow again");
    let dropin = std::fs::read_to_string(dir.path().join("90-netheal.conf")).unwrap();
    assert!(
        dropin.starts_with("# kept\nvm.swappiness = 10\n"),
        "{dropin}"
    );
    assert!(dropin.contains("net.ipv4.ip_forward = 1"), "{dropin}");
    assert!(
        !dropin.contains("forwarding"),
        "one name in the drop-in: {dropin}"
    );
    assert!(engine::scan(&policy, &config).findings.is_empty());

    // Someone resets it: a fresh scan finds it again (findings come back, they are not latched).
    r.set_sysctl("net/ipv4/conf/all/forwarding", "0").unwrap();
    let again = engine::scan(&policy, &config).findings;
    assert_eq!(
        targets(&again),
        ["net.ipv4.ip_forward"],
        "either name, one finding"
    );
}

/// The node forwards, but the CNI bridge's own switch is off: what arrives on `cni0` is not
/// forwarded. Found and fixed on that interface alone; `conf.default.forwarding=0` (every new
/// pod veth would start without forwarding) likewise; another interface's switch is the
/// administrator's and is never a finding.
#[test]
fn an_interface_switch_off_while_the_node_forwards_is_found_and_fixed_on_that_interface() {
    let a = netns("nf-fwi-a");
    let r = netns("nf-fwi-r");
    let b = netns("nf-fwi-b");
    veth(&a, "eth0", &r, "cni0");
    veth(&b, "eth0", &r, "eth-b");
    ip(&a, "addr add 10.82.1.2/24 dev eth0");
    ip(&a, "route add default via 10.82.1.1");
    ip(&b, "addr add 10.82.2.2/24 dev eth0");
    ip(&b, "route add default via 10.82.2.1");
    ip(&r, "addr add 10.82.1.1/24 dev cni0");
    ip(&r, "addr add 10.82.2.1/24 dev eth-b");
    r.set_sysctl("net/ipv4/ip_forward", "1").unwrap();
    assert!(a.ping("10.82.2.2", 1));
    r.set_sysctl("net/ipv4/conf/cni0/forwarding", "0").unwrap();
    r.set_sysctl("net/ipv4/conf/default/forwarding", "0")
        .unwrap();
    assert!(!a.ping("10.82.2.2", 1), "cni0 does not forward");

    let dir = tempfile::tempdir().unwrap();
    let config = config(&r, "fwi", dir.path(), vec![], "r");
    let policy = policy();
    let scan = engine::scan(&policy, &config);
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    assert_eq!(
        targets(&scan.findings),
        [
            "net.ipv4.conf.cni0.forwarding",
            "net.ipv4.conf.default.forwarding"
        ]
    );
    let results = fix_all(&policy, &config, false);
    assert!(
        results.iter().all(|r| r.outcome == Outcome::Applied),
        "{results:?}"
    );
    assert_eq!(sysctl(&r, "net/ipv4/conf/cni0/forwarding"), "1");
    assert_eq!(sysctl(&r, "net/ipv4/conf/default/forwarding"), "1");
    assert!(a.ping("10.82.2.2", 2), "traffic flows again");
    assert!(engine::scan(&policy, &config).findings.is_empty());

    // An interface of neither the cluster nor an uplink: the administrator's switch.
    r.set_sysctl("net/ipv4/conf/eth-b/forwarding", "0").unwrap();
    assert!(engine::scan(&policy, &config).findings.is_empty());
}

#[test]
fn ipv6_forwarding_off_on_a_dual_stack_node_is_found_and_fixed() {
    let a = netns("nf-fw6-a");
    let r = netns("nf-fw6-r");
    let b = netns("nf-fw6-b");
    veth(&a, "eth0", &r, "eth-a");
    veth(&b, "eth0", &r, "eth-b");
    // `nodad`: the addresses are usable at once (no duplicate address detection wait).
    ip(&a, "-6 addr add fd81:1::2/64 dev eth0 nodad");
    ip(&a, "-6 route add default via fd81:1::1");
    ip(&b, "-6 addr add fd81:2::2/64 dev eth0 nodad");
    ip(&b, "-6 route add default via fd81:2::1");
    ip(&r, "-6 addr add fd81:1::1/64 dev eth-a nodad");
    ip(&r, "-6 addr add fd81:2::1/64 dev eth-b nodad");
    r.set_sysctl("net/ipv4/ip_forward", "1").unwrap();
    r.set_sysctl("net/ipv6/conf/all/forwarding", "0").unwrap();
    assert!(
        !a.ping("fd81:2::2", 1),
        "no IPv6 forwarding, no IPv6 traffic"
    );

    let dir = tempfile::tempdir().unwrap();
    // A single-stack IPv4 cluster does not need IPv6 forwarding: nothing to report.
    let v4_only = vec![node("r", "10.244.1.0/24", "0a:00:00:00:00:01", "10.81.1.1")];
    let config4 = config(&r, "fw6", dir.path(), v4_only, "r");
    let scan = engine::scan(&policy(), &config4);
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    assert!(
        scan.findings.iter().all(|f| f.check != Check::IpForward),
        "{:?}",
        targets(&scan.findings)
    );

    let dual = vec![dual_stack_node("r", "10.244.1.0/24", "fd00:10:244:1::/64")];
    let config = config(&r, "fw6", dir.path(), dual, "r");
    let scan = engine::scan(&policy(), &config);
    let forwarding: Vec<_> = scan
        .findings
        .iter()
        .filter(|f| f.check == Check::IpForward)
        .collect();
    assert_eq!(
        targets(forwarding.iter().map(|f| f.as_ref())),
        ["net.ipv6.conf.all.forwarding"]
    );
    assert_eq!(forwarding[0].observed, "0");

    let results = fix_all(&policy(), &config, false);
    let applied: Vec<_> = results
        .iter()
        .filter(|r| r.outcome == Outcome::Applied)
        .collect();
    assert_eq!(applied.len(), 1, "{results:?}");
    assert_eq!(
        (applied[0].before.as_str(), applied[0].after.as_str()),
        ("0", "1")
    );
    assert_eq!(sysctl(&r, "net/ipv6/conf/all/forwarding"), "1");
    assert!(a.ping("fd81:2::2", 2), "IPv6 traffic must flow again");
    let dropin = std::fs::read_to_string(dir.path().join("90-netheal.conf")).unwrap();
    assert!(
        dropin.contains("net.ipv6.conf.all.forwarding = 1"),
        "{dropin}"
    );
    // Idempotent: nothing left.
    let again = engine::scan(&policy(), &config);
    assert!(again.findings.iter().all(|f| f.check != Check::IpForward));
}
