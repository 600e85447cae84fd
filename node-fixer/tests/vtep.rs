//! flannel-style VXLAN overlay between two "node" namespaces: stale VTEP neighbour and fdb
//! entries (`StaleNeighbour`), missing ones (`VtepMissing`) and missing peer routes
//! (`PeerRouteMissing`).
#![allow(clippy::unwrap_used)] // test code: a panic is how a test fails

mod common;
use common::*;
use netheal_crds::{Action, Check, Outcome};
use node_fixer::engine;

const MAC_A: &str = "02:00:00:0a:00:01";
const MAC_B: &str = "02:00:00:0b:00:01";
const OLD_B: &str = "02:00:00:0b:00:99";

struct Overlay {
    a: Netns,
    /// Held so the peer node lives (and is removed) with the test.
    _b: Netns,
}

/// The addressing of one overlay family, as flannel sets it up.
struct Plan {
    /// The `ip` option of the family (`""` or `"-6 "`).
    ip: &'static str,
    /// The VTEP device.
    dev: &'static str,
    /// The two nodes' underlay addresses, with their prefix.
    underlay: [&'static str; 2],
    /// Node `n`'s pod subnet network address (the VTEP's address and the peers' neighbour).
    subnet: fn(u8) -> String,
    /// The prefix of the VTEP's own address, and of a pod subnet.
    host_len: u8,
    pod_len: u8,
    /// Added to every address (IPv6: no duplicate address detection wait).
    flags: &'static str,
}

const V4: Plan = Plan {
    ip: "",
    dev: "flannel.1",
    underlay: ["192.168.77.1/24", "192.168.77.2/24"],
    subnet: |n| format!("10.244.{n}.0"),
    host_len: 32,
    pod_len: 24,
    flags: "",
};

const V6: Plan = Plan {
    ip: "-6 ",
    dev: "flannel-v6.1",
    underlay: ["fd77::1/64", "fd77::2/64"],
    subnet: |n| format!("fd00:10:244:{n}::"),
    host_len: 128,
    pod_len: 64,
    flags: " nodad",
};

/// `nf-<tag>-a` (underlay .1, pod subnet 1) and `nf-<tag>-b` (.2, subnet 2), the plan's VTEP on
/// each with the PERMANENT neighbour, fdb entry and onlink route flannel programs for the other,
/// and `cni0` holding the subnet's first address.
fn build(tag: &str, plan: &Plan) -> Overlay {
    let a = netns(&format!("nf-{tag}-a"));
    let b = netns(&format!("nf-{tag}-b"));
    veth(&a, "eth0", &b, "eth0");
    let Plan {
        ip: v, dev, flags, ..
    } = *plan;
    for (ns, me, my_mac, my_net, peer, peer_mac, peer_net) in [
        (&a, plan.underlay[0], MAC_A, 1, plan.underlay[1], MAC_B, 2),
        (&b, plan.underlay[1], MAC_B, 2, plan.underlay[0], MAC_A, 1),
    ] {
        let (me_ip, peer_ip) = (
            me.split('/').next().unwrap(),
            peer.split('/').next().unwrap(),
        );
        let (mine, theirs) = ((plan.subnet)(my_net), (plan.subnet)(peer_net));
        ns.set_sysctl("net/ipv4/ip_forward", "1").unwrap();
        ns.set_sysctl("net/ipv6/conf/all/forwarding", "1").unwrap();
        ip(ns, &format!("{v}addr add {me} dev eth0{flags}"));
        ip(
            ns,
            &format!(
                "link add {dev} type vxlan id 1 local {me_ip} dev eth0 nolearning dstport 8472"
            ),
        );
        ip(ns, &format!("link set {dev} address {my_mac}"));
        ip(
            ns,
            &format!("{v}addr add {mine}/{} dev {dev}{flags}", plan.host_len),
        );
        ip(ns, &format!("link set {dev} up"));
        ip(ns, "link add cni0 type bridge");
        // The subnet's first address: `.1` / `::1`.
        let first = format!("{}1", mine.trim_end_matches('0'));
        ip(
            ns,
            &format!("{v}addr add {first}/{} dev cni0{flags}", plan.pod_len),
        );
        ip(ns, "link set cni0 up");
        ip(
            ns,
            &format!("{v}neigh replace {theirs} lladdr {peer_mac} dev {dev} nud permanent"),
        );
        exec(
            ns,
            &format!("bridge fdb append {peer_mac} dev {dev} dst {peer_ip} self permanent"),
        );
        ip(
            ns,
            &format!(
                "{v}route add {theirs}/{} via {theirs} dev {dev} onlink",
                plan.pod_len
            ),
        );
    }
    Overlay { a, _b: b }
}

/// The IPv4 overlay: underlay 192.168.77.0/24, pods 10.244.1.0/24 and 10.244.2.0/24, `flannel.1`.
fn overlay(tag: &str) -> Overlay {
    build(tag, &V4)
}

fn nodes() -> Vec<k8s_openapi::api::core::v1::Node> {
    vec![
        node("node-a", "10.244.1.0/24", MAC_A, "192.168.77.1"),
        node("node-b", "10.244.2.0/24", MAC_B, "192.168.77.2"),
    ]
}

/// Two pings from node a's pod subnet address `from` to node b's `to` (ping picks the family).
fn pings(o: &Overlay, from: &str, to: &str) -> bool {
    o.a.exec(
        "ping",
        &[
            "-n", "-q", "-c", "2", "-W", "1", "-i", "0.2", "-I", from, to,
        ],
    )
    .is_ok()
}

fn pod_ping(o: &Overlay) -> bool {
    pings(o, "10.244.1.1", "10.244.2.1")
}

#[test]
fn stale_vtep_mac_is_deleted_with_its_fdb_entry_and_the_gap_is_reported() {
    let o = overlay("vxs");
    assert!(pod_ping(&o), "healthy overlay must carry traffic");
    let dir = tempfile::tempdir().unwrap();
    let config = config(&o.a, "vxs", dir.path(), nodes(), "node-a");
    let policy = policy();
    assert!(engine::scan(&policy, &config).findings.is_empty());

    // node-b's VTEP MAC was OLD_B before it restarted; node-a still points there.
    ip(
        &o.a,
        &format!("neigh replace 10.244.2.0 lladdr {OLD_B} dev flannel.1 nud permanent"),
    );
    exec(
        &o.a,
        &format!("bridge fdb append {OLD_B} dev flannel.1 dst 192.168.77.2 self permanent"),
    );
    assert!(!pod_ping(&o), "a stale VTEP MAC must break pod traffic");

    let scan = engine::scan(&policy, &config);
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    assert_eq!(
        targets(&scan.findings),
        [
            format!("fdb {OLD_B} dev flannel.1 dst 192.168.77.2"),
            "neigh 10.244.2.0 dev flannel.1".to_string(),
        ]
    );
    assert!(
        scan.findings
            .iter()
            .all(|f| f.check == Check::StaleNeighbour && f.action == Some(Action::DeleteNeighbour))
    );
    let neigh = scan
        .findings
        .iter()
        .find(|f| f.target.starts_with("neigh"))
        .unwrap();
    assert_eq!(neigh.details["ip"], "10.244.2.0");
    assert_eq!(neigh.details["interface"], "flannel.1");
    assert_eq!(neigh.details["lladdr"], OLD_B);
    assert_eq!(neigh.details["state"], "PERMANENT");

    // Dry-run touches nothing.
    let dry = fix_all(&policy, &config, true);
    assert!(
        dry.iter()
            .all(|r| r.outcome == Outcome::Applied && r.dry_run),
        "{dry:?}"
    );
    assert!(exec(&o.a, "ip neigh show dev flannel.1").contains(OLD_B));

    let results = fix_all(&policy, &config, false);
    let by_target = |t: &str| results.iter().find(|r| r.target.starts_with(t)).unwrap();
    let n = by_target("neigh");
    assert_eq!(n.outcome, Outcome::Applied);
    assert!(
        n.before.starts_with(&format!(
            "10.244.2.0 dev flannel.1 lladdr {OLD_B} PERMANENT"
        )),
        "{n:?}"
    );
    assert_eq!(n.after, "absent");
    // The fdb entry went by its own order or with the neighbour; either way exactly once.
    let f = by_target("fdb");
    assert!(
        matches!(f.outcome, Outcome::Applied | Outcome::NoChange),
        "{f:?}"
    );
    let fdb = exec(&o.a, "bridge fdb show dev flannel.1");
    assert!(!fdb.contains(OLD_B), "{fdb}");
    assert!(
        fdb.contains(MAC_B),
        "the live peer's fdb entry stays: {fdb}"
    );

    // What is left is the gap the CNI agent must refill (a cluster action, not done here).
    let after = engine::scan(&policy, &config);
    assert_eq!(targets(&after.findings), ["neigh 10.244.2.0 dev flannel.1"]);
    assert_eq!(after.findings.to_vec()[0].check, Check::VtepMissing);
    assert_eq!(
        after.findings.to_vec()[0].action,
        Some(Action::RestartCniPod)
    );
    assert!(engine::orders_for(&after.findings, &policy, false).is_empty());

    // The restarted agent reprograms the entry; traffic flows again and the scan is clean.
    ip(
        &o.a,
        &format!("neigh replace 10.244.2.0 lladdr {MAC_B} dev flannel.1 nud permanent"),
    );
    assert!(pod_ping(&o), "traffic must flow again");
    assert!(engine::scan(&policy, &config).findings.is_empty());
    assert!(
        fix_all(&policy, &config, false).is_empty(),
        "second fix does nothing"
    );
}

#[test]
fn subnet_no_node_owns_is_stale() {
    let o = overlay("vxg");
    let dir = tempfile::tempdir().unwrap();
    let config = config(&o.a, "vxg", dir.path(), nodes(), "node-a");
    ip(
        &o.a,
        "neigh replace 10.244.9.0 lladdr 02:00:00:09:00:01 dev flannel.1 nud permanent",
    );
    let policy = policy();
    let scan = engine::scan(&policy, &config);
    assert_eq!(targets(&scan.findings), ["neigh 10.244.9.0 dev flannel.1"]);
    let results = fix_all(&policy, &config, false);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].outcome, Outcome::Applied);
    assert!(!exec(&o.a, "ip neigh show dev flannel.1").contains("10.244.9.0"));
    assert!(pod_ping(&o));
}

#[test]
fn missing_vtep_entries_and_peer_route_are_reported_and_left_to_the_cni() {
    let o = overlay("vxm");
    let dir = tempfile::tempdir().unwrap();
    let config = config(&o.a, "vxm", dir.path(), nodes(), "node-a");
    ip(&o.a, "neigh del 10.244.2.0 dev flannel.1");
    exec(
        &o.a,
        &format!("bridge fdb del {MAC_B} dev flannel.1 dst 192.168.77.2 self"),
    );
    ip(&o.a, "route del 10.244.2.0/24");
    assert!(!pod_ping(&o));
    let policy = policy();
    let scan = engine::scan(&policy, &config);
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    assert_eq!(
        targets(&scan.findings),
        [
            format!("fdb {MAC_B} dev flannel.1 dst 192.168.77.2"),
            "neigh 10.244.2.0 dev flannel.1".to_string(),
            "route 10.244.2.0/24".to_string(),
        ]
    );
    let route = scan
        .findings
        .iter()
        .find(|f| f.check == Check::PeerRouteMissing)
        .unwrap();
    assert_eq!(route.details["node"], "node-b");
    assert!(
        fix_all(&policy, &config, false).is_empty(),
        "cluster actions are not node-local"
    );
    // An INCOMPLETE entry is just as missing.
    ip(
        &o.a,
        "route add 10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink",
    );
    exec(
        &o.a,
        &format!("bridge fdb append {MAC_B} dev flannel.1 dst 192.168.77.2 self permanent"),
    );
    let _ = o.a.ping("10.244.2.1", 1); // triggers ARP resolution that never completes
    let scan = engine::scan(&policy, &config);
    assert_eq!(targets(&scan.findings), ["neigh 10.244.2.0 dev flannel.1"]);
    assert!(
        ["INCOMPLETE", "FAILED", "missing"].contains(&scan.findings.to_vec()[0].observed.as_str()),
        "{:?}",
        scan.findings.to_vec()[0]
    );
}

#[test]
fn failed_fix_on_a_vanished_interface_changes_nothing() {
    let o = overlay("vxf");
    let dir = tempfile::tempdir().unwrap();
    let config = config(&o.a, "vxf", dir.path(), nodes(), "node-a");
    ip(
        &o.a,
        &format!("neigh replace 10.244.2.0 lladdr {OLD_B} dev flannel.1 nud permanent"),
    );
    let policy = policy();
    let scan = engine::scan(&policy, &config);
    let mut order = engine::orders_for(&scan.findings, &policy, false).remove(0);
    // A Calico veth with a stale entry that goes away between the scan and the fix.
    ip(&o.a, "link add calix0 type veth peer name calix1");
    ip(
        &o.a,
        "neigh replace 10.78.1.1 lladdr 02:00:00:00:01:01 dev calix0 nud permanent",
    );
    let scan = engine::scan(&policy, &config);
    let vanish = engine::orders_for(&scan.findings, &policy, false)
        .into_iter()
        .find(|o| o.target == "neigh 10.78.1.1 dev calix0")
        .unwrap();
    ip(&o.a, "link del calix0");
    let before = exec(&o.a, "ip neigh show");
    let r = engine::execute(&vanish, &policy, &config);
    assert_eq!(r.outcome, Outcome::Failed);
    let msg = r.message.clone().unwrap();
    assert!(msg.contains("calix0 does not exist"), "{r:?}");
    assert_eq!(exec(&o.a, "ip neigh show"), before);
    // An interface the policy does not cover is never touched.
    order.parameters.insert("interface".into(), "eth0".into());
    assert_eq!(
        engine::execute(&order, &policy, &config).outcome,
        Outcome::Skipped
    );
    // A malformed order is refused with the parameter named.
    order
        .parameters
        .insert("interface".into(), "flannel.1".into());
    order.parameters.insert("ip".into(), "not-an-ip".into());
    let r = engine::execute(&order, &policy, &config);
    assert_eq!(r.outcome, Outcome::Failed);
    assert!(r.message.unwrap().contains("\"ip\""));
    assert_eq!(exec(&o.a, "ip neigh show"), before);
}

/// flannel's IPv6 VTEP between two nodes: IPv6 underlay fd77::1/fd77::2, IPv6 pod subnets
/// fd00:10:244:1::/64 and fd00:10:244:2::/64 (IPv6 `spec.podCIDRs`), `flannel-v6.1`.
fn overlay6(tag: &str) -> Overlay {
    build(tag, &V6)
}

/// Nodes of an IPv6 flannel: `backend-v6-data`, `public-ipv6` and an IPv6 pod range.
fn nodes6() -> Vec<k8s_openapi::api::core::v1::Node> {
    [("node-a", 1, MAC_A, "fd77::1"), ("node-b", 2, MAC_B, "fd77::2")]
        .into_iter()
        .map(|(name, net, mac, ip)| {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "annotations": {
                    "flannel.alpha.coreos.com/backend-v6-data": format!("{{\"VNI\":1,\"VtepMAC\":\"{mac}\"}}"),
                    "flannel.alpha.coreos.com/public-ipv6": ip,
                    "flannel.alpha.coreos.com/backend-type": "vxlan"}},
                "spec": {"podCIDR": format!("fd00:10:244:{net}::/64"), "podCIDRs": [format!("fd00:10:244:{net}::/64")]}
            }))
            .unwrap()
        })
        .collect()
}

fn pod_ping6(o: &Overlay) -> bool {
    pings(o, "fd00:10:244:1::1", "fd00:10:244:2::1")
}

#[test]
fn stale_ipv6_vtep_mac_is_deleted_with_its_fdb_entry_and_the_gaps_are_reported() {
    let o = overlay6("vx6");
    assert!(pod_ping6(&o), "healthy IPv6 overlay must carry traffic");
    let dir = tempfile::tempdir().unwrap();
    let config = config(&o.a, "vx6", dir.path(), nodes6(), "node-a");
    let policy = policy();
    let healthy = engine::scan(&policy, &config);
    assert!(healthy.errors.is_empty(), "{:?}", healthy.errors);
    assert!(
        healthy.findings.is_empty(),
        "{:?}",
        targets(&healthy.findings)
    );

    // node-b's IPv6 VTEP MAC was OLD_B before it restarted; node-a still points there.
    ip(
        &o.a,
        &format!("-6 neigh replace fd00:10:244:2:: lladdr {OLD_B} dev flannel-v6.1 nud permanent"),
    );
    exec(
        &o.a,
        &format!("bridge fdb append {OLD_B} dev flannel-v6.1 dst fd77::2 self permanent"),
    );
    assert!(
        !pod_ping6(&o),
        "a stale IPv6 VTEP MAC must break pod traffic"
    );
    let scan = engine::scan(&policy, &config);
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    assert_eq!(
        targets(&scan.findings),
        [
            format!("fdb {OLD_B} dev flannel-v6.1 dst fd77::2"),
            "neigh fd00:10:244:2:: dev flannel-v6.1".to_string(),
        ]
    );
    let neigh = scan
        .findings
        .iter()
        .find(|f| f.target.starts_with("neigh"))
        .unwrap();
    assert_eq!(neigh.check, Check::StaleNeighbour);
    assert!(
        neigh
            .message
            .clone()
            .unwrap_or_default()
            .contains(&format!("IPv6 VtepMAC {MAC_B}")),
        "{neigh:?}"
    );

    let results = fix_all(&policy, &config, false);
    assert!(
        results
            .iter()
            .all(|r| matches!(r.outcome, Outcome::Applied | Outcome::NoChange)),
        "{results:?}"
    );
    let fdb = exec(&o.a, "bridge fdb show dev flannel-v6.1");
    assert!(!fdb.contains(OLD_B), "{fdb}");
    assert!(
        fdb.contains(MAC_B),
        "the live peer's fdb entry stays: {fdb}"
    );
    // The gap is the CNI agent's to refill.
    let after = engine::scan(&policy, &config);
    assert_eq!(
        targets(&after.findings),
        ["neigh fd00:10:244:2:: dev flannel-v6.1"]
    );
    assert_eq!(after.findings.to_vec()[0].check, Check::VtepMissing);
    assert_eq!(
        after.findings.to_vec()[0].action,
        Some(Action::RestartCniPod)
    );
    ip(
        &o.a,
        &format!("-6 neigh replace fd00:10:244:2:: lladdr {MAC_B} dev flannel-v6.1 nud permanent"),
    );
    assert!(pod_ping6(&o), "IPv6 traffic flows again");
    assert!(engine::scan(&policy, &config).findings.is_empty());

    // A lost IPv6 peer route and fdb entry are the other two IPv6 gaps.
    ip(&o.a, "-6 route del fd00:10:244:2::/64");
    exec(
        &o.a,
        &format!("bridge fdb del {MAC_B} dev flannel-v6.1 dst fd77::2 self"),
    );
    let gaps = engine::scan(&policy, &config);
    assert_eq!(
        targets(&gaps.findings),
        [
            format!("fdb {MAC_B} dev flannel-v6.1 dst fd77::2"),
            "route fd00:10:244:2::/64".to_string(),
        ]
    );
    let checks: Vec<Check> = gaps.findings.iter().map(|f| f.check).collect();
    assert!(checks.contains(&Check::VtepMissing) && checks.contains(&Check::PeerRouteMissing));
}
