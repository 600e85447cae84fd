//! `RejectRule` (seed 004 §6): a RHEL-style firewall adds `-j REJECT --reject-with
//! icmp-host-prohibited` to INPUT and FORWARD, which drops the overlay. DryRun proposes
//! `RemoveRejectRule` for each and deletes nothing; Enforce deletes exactly those rules, the
//! ping works, and kube-proxy's own REJECT rule (and its jump) survive, as does an
//! administrator's narrow rule (`-p tcp --dport 25`), which drops none of the cluster's traffic.

use netheal_crds::{Action, Check, Mode};
use netheal_e2e::cluster::PodOptions;
use netheal_e2e::cluster::faults::{KUBE_PROXY_JUMP, KUBE_PROXY_RULE, REJECT_RULES};
use netheal_e2e::harness::policies::{POLICY, scenario_policy};
use netheal_e2e::harness::{Harness, HarnessOptions, ping};
use std::time::Duration;

async fn rules(h: &Harness, node: &'static str) -> String {
    h.with_cluster(move |c| c.iptables_save(node))
        .await
        .expect("iptables-save in the node")
}

/// An administrator's deliberate rule: never a finding under the default scope.
const ADMIN_RULE: &str = "-A INPUT -p tcp -m tcp --dport 25 -j REJECT --reject-with tcp-reset";

fn has(save: &str, rule: &str) -> bool {
    save.lines().any(|l| l.trim() == rule)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_rules_are_proposed_then_removed_and_kube_proxy_rules_survive() {
    let h = Harness::start(HarnessOptions::new("h3", 2)).await.unwrap();
    let a = h.add_pod("node1", PodOptions::bridge()).await.unwrap();
    let b = h.add_pod("node2", PodOptions::bridge()).await.unwrap();
    h.create_policy(POLICY, scenario_policy(Mode::DryRun))
        .await
        .unwrap();

    h.with_cluster(|c| c.inject_reject_rules("node2"))
        .await
        .unwrap();
    h.with_cluster(|c| {
        let args: Vec<&str> = ADMIN_RULE.split(' ').collect();
        Ok(c.node("node2")?.netns.exec("iptables", &args)?)
    })
    .await
    .unwrap();
    h.wait_ping(&a.netns, b.ip, false, Duration::from_secs(5))
        .await
        .unwrap();
    for chain in ["INPUT", "FORWARD"] {
        let target = format!("filter {chain} -j REJECT --reject-with icmp-host-prohibited");
        let f = h
            .expect_finding("node2", Check::RejectRule, |f| f.target == target)
            .await
            .unwrap();
        assert_eq!(f.action, Some(Action::RemoveRejectRule));
        let message = f.message.unwrap_or_default();
        assert!(
            message.contains("VXLAN overlay (udp/8472)") && message.contains("10.244.1.0/24"),
            "the finding names the cluster traffic the rule drops, from the Node objects: {message}"
        );
    }
    let report = h.report("node2").await.unwrap().unwrap();
    let rule_findings = netheal_e2e::harness::expect::findings_of(&report, Check::RejectRule);
    assert!(
        rule_findings.iter().all(|f| !f.target.contains("KUBE-")),
        "kube-proxy's rules are never candidates: {rule_findings:?}"
    );
    assert!(
        rule_findings
            .iter()
            .all(|f| !f.target.contains("--dport 25")),
        "the administrator's narrow rule is not a finding: {rule_findings:?}"
    );

    h.expect_proposed(POLICY, "node2", Check::RejectRule, Action::RemoveRejectRule)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let save = rules(&h, "node2").await;
    for rule in REJECT_RULES {
        assert!(has(&save, rule), "DryRun must not delete {rule}");
    }
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
        records.iter().any(|r| r.before.contains("REJECT")),
        "the deleted rule is recorded in full: {records:?}"
    );
    h.expect_finding_cleared("node2", Check::RejectRule)
        .await
        .unwrap();
    let save = rules(&h, "node2").await;
    for rule in REJECT_RULES {
        assert!(!has(&save, rule), "{rule} must be gone:\n{save}");
    }
    assert!(
        has(&save, KUBE_PROXY_RULE),
        "kube-proxy's REJECT survives:\n{save}"
    );
    assert!(
        has(&save, KUBE_PROXY_JUMP),
        "kube-proxy's jump survives:\n{save}"
    );
    assert!(
        has(&save, ADMIN_RULE),
        "the administrator's rule survives Enforce:\n{save}"
    );
    h.expect_event("RemoveRejectRule", "node2").await.unwrap();
}
