//! `RejectRule` as a RHEL 8/9 node has it (seed 004 §6, firewalld on its nftables backend):
//! the catch-all `reject with icmpx admin-prohibited` ending `filter_INPUT` and
//! `filter_FORWARD` of `table inet firewalld` drops the overlay, and `iptables-save` shows none
//! of it. DryRun proposes `RemoveRejectRule` for each and deletes nothing; Enforce deletes
//! exactly those two rules by handle, the ping works, and kube-proxy's nftables table (with its
//! own `reject`) and firewalld's other rules survive.

use netheal_crds::{Action, Check, Mode};
use netheal_e2e::cluster::PodOptions;
use netheal_e2e::cluster::faults::FIREWALLD_REJECTS;
use netheal_e2e::harness::policies::{POLICY, scenario_policy};
use netheal_e2e::harness::{Harness, HarnessOptions, ping};
use serde_json::Value;
use std::time::Duration;

/// Every rule of node2's ruleset as (table, chain, statements), handles and counters left out.
async fn rules(h: &Harness) -> Vec<(String, String, String)> {
    let text = h
        .with_cluster(|c| c.nft_ruleset("node2"))
        .await
        .expect("nft in the node");
    let doc: Value = serde_json::from_str(&text).expect("nft -j output");
    doc["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o.get("rule"))
        .map(|r| {
            let expr: Vec<Value> = r["expr"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|s| s.get("counter").is_none())
                .cloned()
                .collect();
            (
                format!(
                    "{} {}",
                    r["family"].as_str().unwrap_or(""),
                    r["table"].as_str().unwrap_or("")
                ),
                r["chain"].as_str().unwrap_or("").to_string(),
                Value::Array(expr).to_string(),
            )
        })
        .collect()
}

const CATCH_ALL: &str = r#"[{"reject":{"expr":"admin-prohibited","type":"icmpx"}}]"#;

fn is_catch_all(rule: &(String, String, String)) -> bool {
    rule.0 == "inet firewalld"
        && (rule.1 == "filter_INPUT" || rule.1 == "filter_FORWARD")
        && serde_json::from_str::<Value>(&rule.2).ok()
            == serde_json::from_str::<Value>(CATCH_ALL).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firewalld_nft_rejects_are_proposed_then_removed_and_kube_proxy_table_survives() {
    let h = Harness::start(HarnessOptions::new("h12", 2)).await.unwrap();
    let a = h.add_pod("node1", PodOptions::bridge()).await.unwrap();
    let b = h.add_pod("node2", PodOptions::bridge()).await.unwrap();
    h.create_policy(POLICY, scenario_policy(Mode::DryRun))
        .await
        .unwrap();

    h.with_cluster(|c| c.inject_firewalld_rejects("node2"))
        .await
        .unwrap();
    h.wait_ping(&a.netns, b.ip, false, Duration::from_secs(5))
        .await
        .unwrap();
    let before = rules(&h).await;
    assert_eq!(before.iter().filter(|r| is_catch_all(r)).count(), 2);
    for target in FIREWALLD_REJECTS {
        let f = h
            .expect_finding("node2", Check::RejectRule, |f| f.target == target)
            .await
            .unwrap();
        assert_eq!(f.action, Some(Action::RemoveRejectRule));
        assert_eq!(
            f.details.get("backend").map(String::as_str),
            Some("nftables")
        );
        let message = f.message.unwrap_or_default();
        assert!(
            message.contains("VXLAN overlay (udp/8472)") && message.contains("trusted zone"),
            "the finding names the traffic dropped and what to change in firewalld: {message}"
        );
    }
    let report = h.report("node2").await.unwrap().unwrap();
    let found = netheal_e2e::harness::expect::findings_of(&report, Check::RejectRule);
    assert_eq!(
        found.len(),
        2,
        "only the two catch-all rejects: not kube-proxy's, not the IPv6 martian reject, not the rich rule: {found:?}"
    );

    h.expect_proposed(POLICY, "node2", Check::RejectRule, Action::RemoveRejectRule)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(rules(&h).await, before, "DryRun deletes nothing");
    assert!(!ping(&a.netns, b.ip));

    h.set_mode(POLICY, Mode::Enforce).await.unwrap();
    h.wait_ping(&a.netns, b.ip, true, Duration::from_secs(45))
        .await
        .unwrap();
    let records = h
        .expect_applied(POLICY, "node2", Action::RemoveRejectRule, |_| true)
        .await
        .unwrap();
    assert!(
        records.iter().any(|r| r
            .before
            .contains("reject with icmpx admin-prohibited (table inet firewalld")),
        "the deleted rule is recorded in full: {records:?}"
    );
    h.expect_finding_cleared("node2", Check::RejectRule)
        .await
        .unwrap();
    let after = rules(&h).await;
    let kept: Vec<_> = before
        .iter()
        .filter(|r| !is_catch_all(r))
        .cloned()
        .collect();
    assert_eq!(after, kept, "exactly the two catch-all rejects are gone");
    assert!(
        after
            .iter()
            .any(|r| r.0 == "ip kube-proxy" && r.1 == "reject-chain")
    );
    h.expect_event("RemoveRejectRule", "node2").await.unwrap();
}
