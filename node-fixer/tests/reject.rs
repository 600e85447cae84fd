//! `RejectRule` with both iptables backends: a RHEL-style REJECT in INPUT is removed by its
//! exact spec; kube-proxy's REJECT rules survive.
#![allow(clippy::unwrap_used)] // test code: a panic is how a test fails

mod common;
use common::*;
use netheal_crds::{Check, Outcome};
use node_fixer::engine;

const KUBE_RULE: &str = "-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment \"default/svc:port has no endpoints\" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable";

/// Load `rules` (iptables-save syntax) into `ns` with `<iptables>-restore --noflush`.
fn restore_rules(ns: &Netns, iptables: &str, rules: &str) {
    ns.exec_with_input(&format!("{iptables}-restore"), &["--noflush"], rules)
        .unwrap();
}

/// `nf-<tag>-a` (10.79.0.1) ⟷ `nf-<tag>-b` (10.79.0.2), pinging, no rules yet.
fn pair(tag: &str) -> (Netns, Netns) {
    let a = netns(&format!("nf-{tag}-a"));
    let b = netns(&format!("nf-{tag}-b"));
    veth(&a, "eth0", &b, "eth0");
    ip(&a, "addr add 10.79.0.1/24 dev eth0");
    ip(&b, "addr add 10.79.0.2/24 dev eth0");
    b.set_sysctl("net/ipv4/ip_forward", "1").unwrap();
    assert!(a.ping("10.79.0.2", 1));
    (a, b)
}

/// [`pair`] with REJECT rules in b.
fn bed(tag: &str, iptables: &str) -> (Netns, Netns) {
    let (a, b) = pair(tag);
    let restore = format!(
        "*filter\n:KUBE-SERVICES - [0:0]\n-A INPUT -j KUBE-SERVICES\n{KUBE_RULE}\n-A INPUT -m comment --comment \"kubernetes health check\" -p tcp --dport 9 -j REJECT\n-A INPUT -j REJECT --reject-with icmp-host-prohibited\n-A FORWARD -j REJECT --reject-with icmp-host-prohibited\nCOMMIT\n"
    );
    restore_rules(&b, iptables, &restore);
    assert!(
        !a.ping("10.79.0.2", 1),
        "the REJECT rule must break traffic"
    );
    (a, b)
}

fn run(tag: &str, iptables: &str, backend: &str) {
    let (a, b) = bed(tag, iptables);
    let dir = tempfile::tempdir().unwrap();
    let config = config(&b, tag, dir.path(), vec![], "n1");
    let policy = policy();
    let scan = engine::scan(&policy, &config);
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    // Detection ran `iptables-*-save` inside the namespace (the root namespace has its own).
    assert_eq!(scan.iptables_backend.as_deref(), Some(backend));
    assert_eq!(
        targets(&scan.findings),
        [
            "filter FORWARD -j REJECT --reject-with icmp-host-prohibited",
            "filter INPUT -j REJECT --reject-with icmp-host-prohibited",
        ]
    );
    let input = scan
        .findings
        .iter()
        .find(|f| f.target.contains("INPUT"))
        .unwrap();
    assert_eq!(input.check, Check::RejectRule);
    assert_eq!(input.details["backend"], backend);
    assert_eq!(input.details["chain"], "INPUT");
    assert_eq!(
        input.details["rule"],
        "-j REJECT --reject-with icmp-host-prohibited"
    );

    let dry = fix_all(&policy, &config, true);
    assert!(
        dry.iter()
            .all(|r| r.outcome == Outcome::Applied && r.dry_run)
    );
    assert!(!a.ping("10.79.0.2", 1), "dry-run changes nothing");

    let results = fix_all(&policy, &config, false);
    assert_eq!(results.len(), 2);
    for r in &results {
        assert_eq!(r.outcome, Outcome::Applied, "{r:?}");
        assert!(
            r.before.starts_with("-A ")
                && r.before
                    .contains("-j REJECT --reject-with icmp-host-prohibited")
        );
        assert_eq!(r.after, "absent");
    }
    assert!(a.ping("10.79.0.2", 2), "traffic must flow again");
    let save = exec(&b, &format!("{iptables}-save"));
    assert!(
        save.contains(KUBE_RULE),
        "kube-proxy's rule survives: {save}"
    );
    assert!(save.contains("kubernetes health check"), "{save}");
    assert!(engine::scan(&policy, &config).findings.is_empty());
    assert!(fix_all(&policy, &config, false).is_empty());
    // A replayed order is NoChange; an order naming kube-proxy's rule is refused.
    for o in engine::orders_for(&scan.findings, &policy, false) {
        assert_eq!(
            engine::execute(&o, &policy, &config).outcome,
            Outcome::NoChange
        );
    }
    let mut kube = engine::orders_for(&scan.findings, &policy, false).remove(0);
    kube.parameters
        .insert("chain".into(), "KUBE-SERVICES".into());
    kube.parameters.insert(
        "rule".into(),
        KUBE_RULE.trim_start_matches("-A KUBE-SERVICES ").into(),
    );
    assert_eq!(
        engine::execute(&kube, &policy, &config).outcome,
        Outcome::Skipped
    );
    assert!(exec(&b, &format!("{iptables}-save")).contains(KUBE_RULE));
}

#[test]
fn legacy_reject_rule_is_removed_and_kube_proxy_rules_survive() {
    run("rjl", "iptables-legacy", "legacy");
}

#[test]
fn nft_reject_rule_is_removed_and_kube_proxy_rules_survive() {
    run("rjn", "iptables-nft", "nft");
}

#[test]
fn cli_fix_removes_the_rule_and_second_fix_does_nothing() {
    let (a, _b) = bed("rjc", "iptables-legacy");
    let dir = tempfile::tempdir().unwrap();
    let fix = || {
        bin()
            .args([
                "fix",
                "--netns",
                "nf-rjc-b",
                "--pod-netns",
                "/var/run/netns/nf-cni-rjc-*",
                "--output",
                "json",
                "--sysctl-dir",
            ])
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let out = fix();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["iptablesBackend"], "legacy");
    assert_eq!(doc["results"].as_array().unwrap().len(), 2);
    assert!(a.ping("10.79.0.2", 2));
    let out = fix();
    assert_eq!(out.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["findings"].as_array().unwrap().len(), 0);
    assert_eq!(doc["results"].as_array().unwrap().len(), 0);
}

/// While another program holds the xtables lock (kube-proxy mid-write, or stuck), the fix waits
/// a bounded time, then fails with the lock named, and the rule stays.
#[test]
fn a_held_xtables_lock_fails_the_fix_after_a_bounded_wait_and_keeps_the_rule() {
    let (a, _b) = bed("rjw", "iptables-legacy");
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("xtables.lock");
    // iptables takes the lock file from XTABLES_LOCKFILE: the host's /run/xtables.lock stays
    // free. A thread holds it for up to 30 s, or until the fix has returned.
    let file = std::fs::File::create(&lock).unwrap();
    let held = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .unwrap();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let _ = released.recv_timeout(std::time::Duration::from_secs(30));
        drop(held);
    });
    let started = std::time::Instant::now();
    let out = bin()
        .args([
            "fix",
            "--netns",
            "nf-rjw-b",
            "--pod-netns",
            "/var/run/netns/nf-cni-rjw-*",
            "--output",
            "json",
            "--sysctl-dir",
        ])
        .arg(dir.path())
        .env("XTABLES_LOCKFILE", &lock)
        .output()
        .unwrap();
    let took = started.elapsed();
    let _ = release.send(());
    holder.join().unwrap();
    assert!(
        took < std::time::Duration::from_secs(25),
        "the fix must not wait for the lock as long as it is held: {took:?}"
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = doc["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{doc}");
    for r in results {
        assert_eq!(r["outcome"], "Failed", "{r}");
        assert!(
            r["message"].as_str().unwrap().contains("xtables lock"),
            "{r}"
        );
    }
    assert!(!a.ping("10.79.0.2", 1), "the rules stay");
}

/// A firewall tool that keeps its REJECT in its own chain (`INPUT -j IN_public`): found and
/// removed only with `followJumps`; kube-proxy's chain, jumped to from INPUT as well, is never
/// entered.
#[test]
fn reject_in_a_jumped_to_chain_is_found_only_with_follow_jumps() {
    let (a, b) = pair("rjj");
    let restore = format!(
        "*filter\n:KUBE-SERVICES - [0:0]\n:IN_public - [0:0]\n-A INPUT -j KUBE-SERVICES\n{KUBE_RULE}\n-A INPUT -j IN_public\n-A IN_public -j REJECT --reject-with icmp-host-prohibited\nCOMMIT\n"
    );
    restore_rules(&b, "iptables-legacy", &restore);
    assert!(
        !a.ping("10.79.0.2", 1),
        "the jumped-to REJECT breaks traffic"
    );

    let dir = tempfile::tempdir().unwrap();
    let config = config(&b, "rjj", dir.path(), vec![], "n1");
    let mut policy = policy();
    let rejects = |policy: &netheal_crds::NetworkHealthPolicySpec| -> Vec<netheal_crds::Finding> {
        engine::scan(policy, &config)
            .findings
            .into_iter()
            .filter(|f| f.check == Check::RejectRule)
            .collect()
    };
    assert!(rejects(&policy).is_empty());
    // An order for that rule is refused while the policy does not follow jumps.
    let mut order = {
        policy.checks.reject_rules.follow_jumps = true;
        let found = rejects(&policy);
        assert_eq!(
            targets(&found),
            ["filter IN_public -j REJECT --reject-with icmp-host-prohibited"]
        );
        engine::orders_for(&found, &policy, false).remove(0)
    };
    policy.checks.reject_rules.follow_jumps = false;
    assert_eq!(
        engine::execute(&order, &policy, &config).outcome,
        Outcome::Skipped
    );
    assert!(!a.ping("10.79.0.2", 1));

    policy.checks.reject_rules.follow_jumps = true;
    let result = engine::execute(&order, &policy, &config);
    assert_eq!(result.outcome, Outcome::Applied, "{result:?}");
    assert!(a.ping("10.79.0.2", 2), "traffic flows again");
    let save = exec(&b, "iptables-legacy-save");
    assert!(
        save.contains(KUBE_RULE),
        "kube-proxy's rule survives: {save}"
    );
    assert!(
        save.contains("-A INPUT -j IN_public"),
        "only the REJECT went: {save}"
    );
    order.id.push_str("-again");
    assert_eq!(
        engine::execute(&order, &policy, &config).outcome,
        Outcome::NoChange
    );
}

/// The scope: an administrator's narrow REJECT (`-p tcp --dport 25`) is not flagged and an
/// order for it is refused, beside a catch-all that is flagged and removed; with
/// `scope: AllUnowned` the narrow one is flagged and removable too.
#[test]
fn a_narrow_administrator_reject_stays_unless_the_scope_is_all_unowned() {
    const SMTP: &str = "-p tcp -m tcp --dport 25 -j REJECT --reject-with tcp-reset";
    let (a, b) = pair("rjs");
    restore_rules(
        &b,
        "iptables-legacy",
        &format!(
            "*filter\n-A INPUT {SMTP}\n-A INPUT -j REJECT --reject-with icmp-host-prohibited\nCOMMIT\n"
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = config(&b, "rjs", dir.path(), vec![], "n1");
    let mut policy = policy();
    let scan = engine::scan(&policy, &config);
    assert_eq!(
        targets(&scan.findings),
        ["filter INPUT -j REJECT --reject-with icmp-host-prohibited"]
    );
    let message = scan.findings.to_vec()[0]
        .message
        .clone()
        .unwrap_or_default();
    assert!(
        message.contains("drops the cluster's traffic: VXLAN overlay (udp/8472)"),
        "the finding says which cluster traffic the rule drops: {message}"
    );

    // The same node under AllUnowned flags the SMTP rule; an order for it, replayed under
    // ClusterTraffic, is refused and the rule stays.
    policy.checks.reject_rules.scope = netheal_crds::RejectScope::AllUnowned;
    let wide = engine::scan(&policy, &config).findings;
    assert_eq!(
        targets(&wide),
        [
            "filter INPUT -j REJECT --reject-with icmp-host-prohibited".to_string(),
            format!("filter INPUT {SMTP}"),
        ]
    );
    let smtp: Vec<_> = wide
        .into_iter()
        .filter(|f| f.target.contains("--dport 25"))
        .collect();
    let smtp_order = engine::orders_for(&smtp, &policy, false).remove(0);
    policy.checks.reject_rules.scope = netheal_crds::RejectScope::ClusterTraffic;
    let refused = engine::execute(&smtp_order, &policy, &config);
    assert_eq!(refused.outcome, Outcome::Skipped, "{refused:?}");
    assert!(
        refused
            .message
            .as_deref()
            .is_some_and(|m| m.contains("none of the cluster's traffic")),
        "{refused:?}"
    );

    let results = fix_all(&policy, &config, false);
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0].outcome, Outcome::Applied);
    assert!(a.ping("10.79.0.2", 2), "traffic flows again");
    let save = exec(&b, "iptables-legacy-save");
    assert!(
        save.contains(SMTP),
        "the administrator's rule stays: {save}"
    );

    policy.checks.reject_rules.scope = netheal_crds::RejectScope::AllUnowned;
    let results = fix_all(&policy, &config, false);
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0].outcome, Outcome::Applied);
    assert!(!exec(&b, "iptables-legacy-save").contains("--dport 25"));
}

const KUBE_RULE6: &str = "-A KUBE-SERVICES -d fd00:10:96::a/128 -p tcp -m comment --comment \"default/svc:port has no endpoints\" -m tcp --dport 80 -j REJECT --reject-with icmp6-port-unreachable";

/// The seed-004 REJECT in its IPv6 form (`ip6tables ... icmp6-adm-prohibited`) on a dual-stack
/// node: found, removed from ip6tables only, kube-proxy's IPv6 rule and an administrator's
/// narrow rule untouched; not judged at all on a single-stack IPv4 cluster.
fn run6(tag: &str, backend: &str) {
    let a = netns(&format!("nf-{tag}-a"));
    let b = netns(&format!("nf-{tag}-b"));
    veth(&a, "eth0", &b, "eth0");
    ip(&a, "-6 addr add fd79::1/64 dev eth0 nodad");
    ip(&b, "-6 addr add fd79::2/64 dev eth0 nodad");
    // A node forwards both families: only the REJECT rule is wrong here.
    b.set_sysctl("net/ipv4/ip_forward", "1").unwrap();
    b.set_sysctl("net/ipv6/conf/all/forwarding", "1").unwrap();
    assert!(a.ping("fd79::2", 2));
    let (ip6tables, iptables) = match backend {
        "nft" => ("ip6tables-nft", "iptables-nft"),
        _ => ("ip6tables-legacy", "iptables-legacy"),
    };
    // The IPv4 side holds a rule of its own, so kube-proxy's choice of backend is this one.
    restore_rules(
        &b,
        iptables,
        "*filter\n-A INPUT -p tcp -m tcp --dport 25 -j ACCEPT\nCOMMIT\n",
    );
    let narrow = "-A INPUT -p tcp -m tcp --dport 25 -j REJECT --reject-with icmp6-adm-prohibited";
    restore_rules(
        &b,
        ip6tables,
        &format!(
            "*filter\n:KUBE-SERVICES - [0:0]\n-A INPUT -j KUBE-SERVICES\n{KUBE_RULE6}\n{narrow}\n-A INPUT -j REJECT --reject-with icmp6-adm-prohibited\nCOMMIT\n"
        ),
    );
    assert!(!a.ping("fd79::2", 1), "the ip6tables REJECT breaks IPv6");

    let dir = tempfile::tempdir().unwrap();
    let policy = policy();
    let v4_only = config(&b, tag, dir.path(), vec![], "n1");
    let scan = engine::scan(&policy, &v4_only);
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    assert!(
        scan.findings.is_empty(),
        "an IPv4-only cluster: {:?}",
        targets(&scan.findings)
    );

    let config = config(
        &b,
        tag,
        dir.path(),
        vec![dual_stack_node("n1", "10.244.1.0/24", "fd00:10:244:1::/64")],
        "n1",
    );
    let scan = engine::scan(&policy, &config);
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    assert_eq!(scan.iptables_backend.as_deref(), Some(backend));
    assert_eq!(
        targets(&scan.findings),
        ["ip6 filter INPUT -j REJECT --reject-with icmp6-adm-prohibited"]
    );
    let f = scan.findings.iter().next().unwrap();
    assert_eq!(f.details["family"], "ip6");
    assert_eq!(f.details["backend"], backend);
    assert_eq!(f.observed, format!("present ({ip6tables})"));

    let dry = fix_all(&policy, &config, true);
    assert!(
        dry.iter()
            .all(|r| r.outcome == Outcome::Applied && r.dry_run)
    );
    assert!(!a.ping("fd79::2", 1), "dry-run changes nothing");
    let results = fix_all(&policy, &config, false);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].outcome, Outcome::Applied, "{results:?}");
    assert_eq!(
        results[0].before,
        format!(
            "-A INPUT -j REJECT --reject-with icmp6-adm-prohibited (table filter, {ip6tables})"
        )
    );
    assert!(a.ping("fd79::2", 2), "IPv6 traffic flows again");
    let save = exec(&b, &format!("{ip6tables}-save"));
    assert!(
        save.contains(KUBE_RULE6),
        "kube-proxy's rule survives: {save}"
    );
    assert!(save.contains(narrow), "the narrow rule survives: {save}");
    let save4 = exec(&b, &format!("{iptables}-save"));
    assert!(
        save4.contains("--dport 25 -j ACCEPT"),
        "IPv4 untouched: {save4}"
    );
    assert!(engine::scan(&policy, &config).findings.is_empty());
    // Replayed: NoChange. The same order without `family` is an IPv4 order: no such rule there.
    for o in engine::orders_for(&scan.findings, &policy, false) {
        assert_eq!(
            engine::execute(&o, &policy, &config).outcome,
            Outcome::NoChange
        );
        let mut v4 = o.clone();
        v4.parameters.remove("family");
        assert_eq!(
            engine::execute(&v4, &policy, &config).outcome,
            Outcome::NoChange
        );
        let mut bad = o.clone();
        bad.parameters.insert("family".into(), "ipv7".into());
        let refused = engine::execute(&bad, &policy, &config);
        assert_eq!(refused.outcome, Outcome::Failed);
        assert!(
            refused.message.as_deref().unwrap_or("").contains("family"),
            "{refused:?}"
        );
    }
}

#[test]
fn ip6tables_reject_on_a_dual_stack_node_is_removed_with_the_nft_backend() {
    run6("rj6n", "nft");
}

#[test]
fn ip6tables_reject_on_a_dual_stack_node_is_removed_with_the_legacy_backend() {
    run6("rj6l", "legacy");
}
