//! `RejectRule` in nftables' own tables: firewalld's (nftables backend) catch-all rejects in
//! `table inet firewalld` are found by `nft -j list ruleset` (invisible to `iptables-save`) and
//! deleted by handle after their whole expression is matched again; kube-proxy's nftables
//! table, firewalld's deliberate rules and its IPv6 martian reject survive.
#![allow(clippy::unwrap_used)] // test code: a panic is how a test fails

mod common;
use common::*;
use netheal_crds::{Check, Outcome};
use node_fixer::engine;
use node_fixer::probe::nft::parse_ruleset;
use node_fixer::snapshot::Nftables;

use netheal_e2e::cluster::faults::FIREWALLD_RULESET as RULESET;

const INPUT: &str = "inet firewalld filter_INPUT reject with icmpx admin-prohibited";
const FORWARD: &str = "inet firewalld filter_FORWARD reject with icmpx admin-prohibited";

/// `nf-<tag>-a` (10.78.0.1) ⟷ `nf-<tag>-b` (10.78.0.2, firewalld's ruleset): pings fail.
fn bed(tag: &str) -> (Netns, Netns) {
    let a = netns(&format!("nf-{tag}-a"));
    let b = netns(&format!("nf-{tag}-b"));
    veth(&a, "eth0", &b, "eth0");
    ip(&a, "addr add 10.78.0.1/24 dev eth0");
    ip(&b, "addr add 10.78.0.2/24 dev eth0");
    b.set_sysctl("net/ipv4/ip_forward", "1").unwrap();
    assert!(a.ping("10.78.0.2", 1));
    load(&b);
    assert!(
        !a.ping("10.78.0.2", 1),
        "firewalld's reject must break traffic"
    );
    (a, b)
}

fn load(ns: &Netns) {
    ns.exec_with_input("nft", &["-f", "-"], RULESET).unwrap();
}

/// What `firewall-cmd --reload` does to the table: remove it and load it again (new handles).
fn reload(ns: &Netns) {
    exec(ns, "nft delete table inet firewalld");
    exec(ns, "nft delete table ip kube-proxy");
    load(ns);
}

fn ruleset(ns: &Netns) -> Nftables {
    parse_ruleset(&exec(ns, "nft -j list ruleset")).unwrap()
}

/// The rules of one table, without their handles.
fn table_rules(r: &Nftables, table: &str) -> Vec<(String, String)> {
    r.rules
        .iter()
        .filter(|x| x.table == table)
        .map(|x| {
            (
                x.chain.clone(),
                serde_json::Value::Array(x.expr.clone()).to_string(),
            )
        })
        .collect()
}

#[test]
fn firewalld_nft_rejects_are_removed_by_handle_and_kube_proxy_table_survives() {
    let (a, b) = bed("nft");
    let dir = tempfile::tempdir().unwrap();
    // Two nodes: the peers are reached through eth0, so firewalld's `iifname "cni*" tcp dport
    // 1-1024 reject` drops none of the cluster's traffic and stays.
    let nodes = vec![
        node("n0", "10.244.0.0/24", "0a:00:00:00:00:01", "10.78.0.1"),
        node("n1", "10.244.1.0/24", "0a:00:00:00:00:02", "10.78.0.2"),
    ];
    let config = config(&b, "nft", dir.path(), nodes, "n1");
    // The overlay is not built here: only the firewall is under test.
    let mut policy = policy();
    policy.checks.overlay.enabled = false;
    let before = ruleset(&b);

    let scan = engine::scan(&policy, &config);
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    assert_eq!(targets(&scan.findings), [FORWARD, INPUT]);
    let input = scan.findings.iter().find(|f| f.target == INPUT).unwrap();
    assert_eq!(input.check, Check::RejectRule);
    assert_eq!(input.details["backend"], "nftables");
    assert_eq!(input.details["family"], "inet");
    assert_eq!(input.details["table"], "firewalld");
    assert_eq!(input.details["chain"], "filter_INPUT");
    assert_eq!(input.details["rule"], "reject with icmpx admin-prohibited");
    assert!(
        input.observed.starts_with("present (nftables, handle "),
        "{}",
        input.observed
    );
    assert!(!input.details.contains_key("handle"));
    let message = input.message.clone().unwrap_or_default();
    assert!(message.contains("trusted zone"), "{message}");

    let dry = fix_all(&policy, &config, true);
    assert_eq!(dry.len(), 2);
    assert!(
        dry.iter()
            .all(|r| r.outcome == Outcome::Applied && r.dry_run)
    );
    assert_eq!(ruleset(&b), before, "dry-run changes nothing");

    let results = fix_all(&policy, &config, false);
    assert_eq!(results.len(), 2);
    for r in &results {
        assert_eq!(r.outcome, Outcome::Applied, "{r:?}");
        assert!(
            r.before
                .starts_with("reject with icmpx admin-prohibited (table inet firewalld"),
            "{}",
            r.before
        );
        assert_eq!(r.after, "absent");
    }
    assert!(a.ping("10.78.0.2", 2), "traffic must flow again");
    let after = ruleset(&b);
    assert_eq!(
        table_rules(&after, "kube-proxy"),
        table_rules(&before, "kube-proxy"),
        "kube-proxy's table is untouched"
    );
    assert_eq!(
        after.rules.len(),
        before.rules.len() - 2,
        "exactly the two rejects are gone"
    );
    assert!(engine::scan(&policy, &config).findings.is_empty());
    // Replayed orders find nothing to do.
    for o in engine::orders_for(&scan.findings, &policy, false) {
        assert_eq!(
            engine::execute(&o, &policy, &config).outcome,
            Outcome::NoChange
        );
    }

    // firewalld reloads: its table comes back with new handles. The findings are the same
    // (same ids), and the old orders still find their rules by their whole expression.
    reload(&b);
    let again = engine::scan(&policy, &config);
    let ids = |s: &engine::ScanOutput| s.findings.iter().map(|f| f.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&again), ids(&scan));
    let old = engine::orders_for(&scan.findings, &policy, false);
    for o in &old {
        assert_eq!(
            engine::execute(o, &policy, &config).outcome,
            Outcome::Applied
        );
    }
    assert!(a.ping("10.78.0.2", 2));

    // An order whose expression is not the rule at its handle deletes nothing.
    reload(&b);
    let count = ruleset(&b).rules.len();
    let mut wrong = engine::orders_for(&again.findings, &policy, false).remove(0);
    wrong.parameters.insert(
        "expr".into(),
        r#"[{"reject":{"type":"icmpx","expr":"host-unreachable"}}]"#.into(),
    );
    assert_eq!(
        engine::execute(&wrong, &policy, &config).outcome,
        Outcome::NoChange
    );
    // An order naming kube-proxy's own reject is refused, whatever it says.
    let now = ruleset(&b);
    let kube = now
        .rules
        .iter()
        .find(|r| r.chain == "reject-chain")
        .unwrap();
    let mut owned = engine::orders_for(&again.findings, &policy, false).remove(0);
    for (k, v) in [
        ("family", "ip".to_string()),
        ("table", "kube-proxy".to_string()),
        ("chain", "reject-chain".to_string()),
        ("handle", kube.handle.to_string()),
        (
            "expr",
            serde_json::Value::Array(kube.expr.clone()).to_string(),
        ),
    ] {
        owned.parameters.insert(k.into(), v);
    }
    assert_eq!(
        engine::execute(&owned, &policy, &config).outcome,
        Outcome::Skipped
    );
    assert_eq!(ruleset(&b).rules.len(), count, "nothing was deleted");
    // A malformed order fails, naming the parameter.
    let mut bad = engine::orders_for(&again.findings, &policy, false).remove(0);
    bad.parameters.insert("handle".into(), "fourteen".into());
    let r = engine::execute(&bad, &policy, &config);
    assert_eq!(r.outcome, Outcome::Failed);
    assert!(r.message.unwrap_or_default().contains("handle"));
}

/// iptables-nft's own tables (`ip filter`) are read through `iptables-save`, never also as
/// nftables rules: one REJECT, one finding, with the iptables backend.
#[test]
fn iptables_nft_rules_are_reported_once_through_iptables() {
    let a = netns("nf-nfx-a");
    let b = netns("nf-nfx-b");
    veth(&a, "eth0", &b, "eth0");
    ip(&b, "addr add 10.78.1.2/24 dev eth0");
    b.set_sysctl("net/ipv4/ip_forward", "1").unwrap();
    exec(
        &b,
        "iptables-nft -A INPUT -j REJECT --reject-with icmp-host-prohibited",
    );
    let dir = tempfile::tempdir().unwrap();
    let config = config(&b, "nfx", dir.path(), vec![], "n1");
    let scan = engine::scan(&policy(), &config);
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    assert_eq!(
        targets(&scan.findings),
        ["filter INPUT -j REJECT --reject-with icmp-host-prohibited"]
    );
    assert!(scan.findings.iter().all(|f| f.details["backend"] == "nft"));
    // nft sees the table iptables-nft made.
    assert!(
        ruleset(&b)
            .chains
            .iter()
            .any(|c| c.table == "filter" && c.family == "ip")
    );
    drop(a);
}

/// A site firewall of its own in an `ip6` table: a reject of the cluster's IPv6 pod range and
/// an administrator's narrow SMTP reject.
const SITE_FIREWALL6: &str = "table ip6 sitefw {
  chain input {
    type filter hook input priority 0; policy accept;
    ip6 saddr fd00:10:244::/56 reject with icmpv6 admin-prohibited
    tcp dport 25 reject with tcp reset
  }
}
";
const SITE_REJECT6: &str =
    "ip6 sitefw input ip6 saddr fd00:10:244::/56 reject with icmpv6 admin-prohibited";

/// Dual-stack: firewalld's `inet` catch-all rejects drop the IPv6 pod traffic too, and a
/// reject in an `ip6` table is found and deleted by handle; none of the IPv6 side is judged on a
/// single-stack IPv4 cluster. IPv6 traffic between two addresses of the pod range proves it.
#[test]
fn on_a_dual_stack_node_inet_and_ip6_rejects_are_removed_and_ipv6_flows_again() {
    let a = netns("nf-nf6-a");
    let b = netns("nf-nf6-b");
    veth(&a, "eth0", &b, "eth0");
    ip(&a, "-6 addr add fd00:10:244:1::1/64 dev eth0 nodad");
    ip(&b, "-6 addr add fd00:10:244:1::2/64 dev eth0 nodad");
    // The nodes' IPv4 addresses: the peers are reached through eth0 (see the test above).
    ip(&a, "addr add 10.78.2.1/24 dev eth0");
    ip(&b, "addr add 10.78.2.2/24 dev eth0");
    b.set_sysctl("net/ipv4/ip_forward", "1").unwrap();
    b.set_sysctl("net/ipv6/conf/all/forwarding", "1").unwrap();
    assert!(a.ping("fd00:10:244:1::2", 2));
    load(&b);
    b.exec_with_input("nft", &["-f", "-"], SITE_FIREWALL6)
        .unwrap();
    assert!(!a.ping("fd00:10:244:1::2", 1), "the rejects break IPv6");
    let dir = tempfile::tempdir().unwrap();
    let mut policy = policy();
    policy.checks.overlay.enabled = false;

    // Single-stack IPv4: the inet catch-alls are found for IPv4's sake only; the ip6 table's
    // reject is not the cluster's business.
    let v4_only = vec![
        node("n0", "10.244.0.0/24", "0a:00:00:00:00:01", "10.78.2.1"),
        node("n1", "10.244.1.0/24", "0a:00:00:00:00:02", "10.78.2.2"),
    ];
    let config4 = config(&b, "nf6", dir.path(), v4_only, "n1");
    let scan = engine::scan(&policy, &config4);
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    assert_eq!(targets(&scan.findings), [FORWARD, INPUT]);
    assert!(
        scan.findings
            .iter()
            .all(|f| !f.details["drops"].contains("fd00")),
        "no IPv6 traffic judged"
    );

    let mut dual = vec![
        dual_stack_node("n0", "10.244.0.0/24", "fd00:10:244::/64"),
        dual_stack_node("n1", "10.244.1.0/24", "fd00:10:244:1::/64"),
    ];
    for (n, ip) in dual.iter_mut().zip(["10.78.2.1", "10.78.2.2"]) {
        n.metadata.annotations = Some(
            [(
                "flannel.alpha.coreos.com/public-ip".to_string(),
                ip.to_string(),
            )]
            .into(),
        );
    }
    let config = config(&b, "nf6", dir.path(), dual, "n1");
    let scan = engine::scan(&policy, &config);
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    assert_eq!(targets(&scan.findings), [FORWARD, INPUT, SITE_REJECT6]);
    let input = scan.findings.iter().find(|f| f.target == INPUT).unwrap();
    assert!(
        input.details["drops"].contains("pod traffic (10.244.0.0/24, 10.244.1.0/24)")
            && input.details["drops"]
                .contains("pod traffic (fd00:10:244::/64, fd00:10:244:1::/64)"),
        "{}",
        input.details["drops"]
    );
    let site = scan
        .findings
        .iter()
        .find(|f| f.target == SITE_REJECT6)
        .unwrap();
    assert_eq!(site.details["family"], "ip6");
    assert_eq!(site.details["table"], "sitefw");

    let before = ruleset(&b);
    let results = fix_all(&policy, &config, false);
    assert_eq!(results.len(), 3, "{results:?}");
    assert!(
        results.iter().all(|r| r.outcome == Outcome::Applied),
        "{results:?}"
    );
    assert!(a.ping("fd00:10:244:1::2", 2), "IPv6 traffic flows again");
    let after = ruleset(&b);
    assert_eq!(after.rules.len(), before.rules.len() - 3);
    assert_eq!(
        table_rules(&after, "kube-proxy"),
        table_rules(&before, "kube-proxy"),
        "kube-proxy's table is untouched"
    );
    let site_rules = table_rules(&after, "sitefw");
    assert_eq!(site_rules.len(), 1, "the SMTP reject stays: {site_rules:?}");
    assert!(site_rules[0].1.contains("\"dport\""), "{site_rules:?}");
    assert!(engine::scan(&policy, &config).findings.is_empty());
    drop(a);
}
