//! `ArpIgnore` on a real kernel: a Calico-style pod behind a `cali*` veth with a /32 address,
//! arp_ignore=2 on the node and inherited in the pod namespace.
#![allow(clippy::unwrap_used)] // test code: a panic is how a test fails

mod common;
use common::*;
use netheal_crds::{Action, Check, Outcome};
use node_fixer::engine;

struct Bed {
    node: Netns,
    pod: Netns,
}

/// node `nf-arp-node` (10.70.0.1 on lo) ⟷ `caliarp0` / `eth0` ⟷ pod `nf-cni-arp-0`
/// (10.77.0.5/32).
fn bed(tag: &str) -> Bed {
    let node = netns(&format!("nf-{tag}-node"));
    let pod = netns(&format!("nf-cni-{tag}-0"));
    node.set_sysctl("net/ipv4/ip_forward", "1").unwrap();
    ip(&node, "addr add 10.70.0.1/32 dev lo");
    veth(&node, "caliarp0", &pod, "eth0");
    node.set_sysctl("net/ipv4/conf/caliarp0/proxy_arp", "1")
        .unwrap();
    ip(&node, "route add 10.77.0.5/32 dev caliarp0 scope link");
    ip(&pod, "addr add 10.77.0.5/32 dev eth0");
    ip(&pod, "route add 10.70.0.1/32 dev eth0 scope link");
    Bed { node, pod }
}

fn break_it(bed: &Bed) {
    // The node got arp_ignore=2; the pod namespace was created while it was so (inherited).
    bed.node
        .set_sysctl("net/ipv4/conf/all/arp_ignore", "2")
        .unwrap();
    for key in ["all", "default", "eth0"] {
        bed.pod
            .set_sysctl(&format!("net/ipv4/conf/{key}/arp_ignore"), "2")
            .unwrap();
    }
    // Forget what was learned while the bed was healthy.
    ip(&bed.node, "neigh flush dev caliarp0");
    ip(&bed.pod, "neigh flush dev eth0");
}

const EXPECTED: [&str; 4] = [
    "net.ipv4.conf.all.arp_ignore",
    "netns nf-cni-arp-0 net.ipv4.conf.all.arp_ignore",
    "netns nf-cni-arp-0 net.ipv4.conf.default.arp_ignore",
    "netns nf-cni-arp-0 net.ipv4.conf.eth0.arp_ignore",
];

#[test]
fn arp_ignore_on_node_and_pod_namespace_is_found_fixed_and_persisted() {
    let bed = bed("arp");
    assert!(bed.node.ping("10.77.0.5", 1), "healthy bed must work");
    break_it(&bed);
    assert!(
        !bed.node.ping("10.77.0.5", 2),
        "arp_ignore=2 must break the pod"
    );

    let dir = tempfile::tempdir().unwrap();
    let config = config(&bed.node, "arp", dir.path(), vec![], "n1");
    let policy = policy();
    let scan = engine::scan(&policy, &config);
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    assert_eq!(targets(&scan.findings), EXPECTED);
    for f in &scan.findings {
        assert_eq!(f.check, Check::ArpIgnore);
        assert_eq!(f.action, Some(Action::SetSysctl));
        assert_eq!(f.desired, "0");
        assert_eq!(f.id, netheal_crds::finding_id(Check::ArpIgnore, &f.target));
    }
    let pod_eth0 = scan
        .findings
        .iter()
        .find(|f| f.target.ends_with("eth0.arp_ignore"))
        .unwrap();
    assert_eq!(pod_eth0.details["netns"], "nf-cni-arp-0");
    assert_eq!(pod_eth0.details["sysctl"], "net/ipv4/conf/eth0/arp_ignore");
    assert_eq!(pod_eth0.details["value"], "0");
    assert_eq!(pod_eth0.observed, "2 (max of all=2, eth0=2)");

    // Dry-run: every fix reports what it would do and writes nothing.
    let dry = fix_all(&policy, &config, true);
    assert_eq!(dry.len(), 4);
    for r in &dry {
        assert_eq!((r.outcome, r.dry_run), (Outcome::Applied, true), "{r:?}");
        assert_eq!((r.before.as_str(), r.after.as_str()), ("2", "0"));
    }
    assert_eq!(sysctl(&bed.pod, "net/ipv4/conf/eth0/arp_ignore"), "2");
    assert_eq!(sysctl(&bed.node, "net/ipv4/conf/all/arp_ignore"), "2");
    assert!(!dir.path().join("90-netheal.conf").exists());

    let results = fix_all(&policy, &config, false);
    assert_eq!(results.len(), 4);
    for r in &results {
        assert_eq!((r.outcome, r.dry_run), (Outcome::Applied, false), "{r:?}");
        assert_eq!((r.before.as_str(), r.after.as_str()), ("2", "0"));
    }
    assert_eq!(sysctl(&bed.pod, "net/ipv4/conf/default/arp_ignore"), "0");
    assert!(bed.node.ping("10.77.0.5", 3), "traffic must flow again");
    // Only the host's key is persisted (pod namespaces have no sysctl.d).
    let dropin = std::fs::read_to_string(dir.path().join("90-netheal.conf")).unwrap();
    assert!(
        dropin.contains("net.ipv4.conf.all.arp_ignore = 0\n"),
        "{dropin}"
    );
    assert!(!dropin.contains("eth0"), "{dropin}");

    // A second pass finds nothing; a stale order is NoChange.
    assert!(engine::scan(&policy, &config).findings.is_empty());
    let stale = engine::orders_for(&scan.findings, &policy, false);
    for o in &stale {
        assert_eq!(
            engine::execute(o, &policy, &config).outcome,
            Outcome::NoChange
        );
    }
}

#[test]
fn cli_scan_and_fix_report_exit_codes_and_json() {
    let bed = bed("arc");
    break_it(&bed);
    let dir = tempfile::tempdir().unwrap();
    let args = |cmd: &str| {
        let mut c = bin();
        c.args([
            cmd,
            "--netns",
            "nf-arc-node",
            "--pod-netns",
            "/var/run/netns/nf-cni-arc-*",
            "--sysctl-dir",
            dir.path().to_str().unwrap(),
            "--node-name",
            "n1",
            "--output",
            "json",
        ]);
        c
    };
    let out = args("scan").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["node"], "n1");
    let findings = doc["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 4);
    for key in ["id", "check", "target", "observed", "desired", "action"] {
        assert!(findings[0].get(key).is_some(), "missing {key}");
    }

    let out = args("fix").arg("--dry-run").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "dry-run leaves the host broken");
    assert_eq!(sysctl(&bed.pod, "net/ipv4/conf/all/arp_ignore"), "2");

    let out = args("fix").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = doc["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    assert!(results.iter().all(|r| r["outcome"] == "Applied"));
    assert_eq!(doc["remaining"].as_array().unwrap().len(), 0);
    assert!(bed.node.ping("10.77.0.5", 3));

    let out = args("scan").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    // The table form for people: a summary line naming the node.
    let mut table = bin();
    table.args([
        "scan",
        "--netns",
        "nf-arc-node",
        "--pod-netns",
        "/var/run/netns/nf-cni-arc-*",
        "--node-name",
        "n1",
    ]);
    let out = table.output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("n1: healthy"));
}
