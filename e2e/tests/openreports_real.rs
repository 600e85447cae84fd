//! OpenReports output on the real API server: with the `openreports.io` ClusterReport CRD of
//! `config/components/openreports` applied, the operator finds the API by discovery and keeps
//! one ClusterReport per node, scoped to and owned by that Node, one result per check. A fault
//! shows as `fail` naming its target and the proposed action (DryRun), then as `pass` naming
//! the fix once Enforce healed it; `kubectl get clusterreports` lists them with their counts.

#![allow(clippy::unwrap_used)] // helpers panic on purpose: that is how a test fails

use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use netheal_crds::openreports::{ClusterReport, Outcome, ReportResult};
use netheal_crds::{Check, Mode};
use netheal_e2e::harness::bins::workspace_root;
use netheal_e2e::harness::policies::{POLICY, scenario_policy};
use netheal_e2e::harness::{Check as Wait, Harness, HarnessOptions, read_sysctl, wait_for};
use std::time::Duration;

fn result_of(report: &ClusterReport, check: Check) -> Option<&ReportResult> {
    report
        .results
        .iter()
        .find(|r| r.policy == POLICY && r.rule.as_deref() == Some(check.as_str()))
}

/// Wait until node's report has a result for `check` that `want` accepts.
async fn wait_result(
    h: &Harness,
    node: &str,
    check: Check,
    what: &str,
    want: impl Fn(&ReportResult) -> bool,
) -> ClusterReport {
    let api: Api<ClusterReport> = Api::all(h.client().clone());
    let name = format!("netheal-{node}");
    wait_for(
        &format!("ClusterReport {name}: {what}"),
        Duration::from_secs(45),
        || async {
            match api.get_opt(&name).await {
                Ok(Some(report)) => match result_of(&report, check) {
                    Some(r) if want(r) => Wait::Done(report),
                    other => Wait::NotYet(format!("{other:?}")),
                },
                Ok(None) => Wait::NotYet("no report".into()),
                Err(e) => Wait::NotYet(e.to_string()),
            }
        },
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healed_fault_turns_its_cluster_report_result_from_fail_to_pass() {
    let mut opts = HarnessOptions::new("or1", 2);
    opts.start_operator = false;
    let mut h = Harness::start(opts).await.unwrap();
    let crd =
        workspace_root().join("config/components/openreports/openreports.io_clusterreports.yaml");
    h.controlplane()
        .kubectl(&["apply", "--server-side", "-f", &crd.display().to_string()])
        .unwrap();
    h.controlplane()
        .kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=30s",
            "crd/clusterreports.openreports.io",
        ])
        .unwrap();
    let mut spec = scenario_policy(Mode::DryRun);
    spec.checks.masquerade.enabled = false;
    h.create_policy(POLICY, spec).await.unwrap();
    h.start_operator().await.unwrap();

    // Healthy nodes: every enabled check passes, a disabled one is skipped.
    let healthy = wait_result(&h, "node1", Check::IpForward, "IpForward passes", |r| {
        r.result == Some(Outcome::Pass)
    })
    .await;
    assert_eq!(
        result_of(&healthy, Check::Masquerade).and_then(|r| r.result),
        Some(Outcome::Skip)
    );
    let scope = healthy.scope.clone().unwrap();
    assert_eq!(
        (scope.kind.as_deref(), scope.name.as_deref()),
        (Some("Node"), Some("node1"))
    );
    let node1 = Api::<Node>::all(h.client().clone())
        .get("node1")
        .await
        .unwrap();
    let owner = &healthy.metadata.owner_references.clone().unwrap()[0];
    assert_eq!(owner.kind, "Node");
    assert_eq!(Some(owner.uid.clone()), node1.metadata.uid);
    let summary = healthy.summary.unwrap();
    assert_eq!(summary.fail, 0, "{:?}", healthy.results);
    assert_eq!(
        summary.pass + summary.skip + summary.error + summary.fail + summary.warn,
        u32::try_from(healthy.results.len()).unwrap()
    );

    // A fault in DryRun: fail, naming the target and the proposed action.
    let node2 = h.node_netns("node2");
    h.with_cluster(|c| c.inject_ip_forward_off("node2"))
        .await
        .unwrap();
    let failing = wait_result(&h, "node2", Check::IpForward, "IpForward fails", |r| {
        r.result == Some(Outcome::Fail)
    })
    .await;
    let r = result_of(&failing, Check::IpForward).unwrap();
    let message = r.message.clone().unwrap_or_default();
    assert!(message.contains("net.ipv4.ip_forward"), "{message}");
    assert!(message.contains("dry-run: would SetSysctl"), "{message}");
    assert_eq!(
        r.properties.get("action").map(String::as_str),
        Some("SetSysctl")
    );
    assert!(
        r.properties.contains_key("findingIds"),
        "{:?}",
        r.properties
    );
    assert_eq!(failing.summary.unwrap().fail, 1);
    assert_eq!(read_sysctl(&node2, "net/ipv4/ip_forward").unwrap(), "0");

    // Enforce heals it: pass, naming the fix that was applied.
    h.set_mode(POLICY, Mode::Enforce).await.unwrap();
    let healed = wait_result(
        &h,
        "node2",
        Check::IpForward,
        "IpForward passes again",
        |r| r.result == Some(Outcome::Pass),
    )
    .await;
    assert_eq!(read_sysctl(&node2, "net/ipv4/ip_forward").unwrap(), "1");
    let r = result_of(&healed, Check::IpForward).unwrap();
    let last = r.properties.get("lastAction").cloned().unwrap_or_default();
    assert!(last.contains("SetSysctl Applied"), "{:?}", r.properties);
    assert_eq!(healed.summary.unwrap().fail, 0);

    // Nothing changes on node1 while node2 breaks and heals again (several passes): node1's
    // report is not written again.
    let node1_writes = || {
        std::fs::read_to_string(h.log_dir().join("operator.log"))
            .unwrap()
            .lines()
            .filter(|l| l.contains("ClusterReport written") && l.contains("report=netheal-node1"))
            .count()
    };
    let written = node1_writes();
    assert!(
        written >= 1,
        "the operator logs each ClusterReport it writes"
    );
    let first_fix = last.clone();
    h.with_cluster(|c| c.inject_ip_forward_off("node2"))
        .await
        .unwrap();
    wait_result(
        &h,
        "node2",
        Check::IpForward,
        "IpForward fixed a second time",
        |r| {
            r.result == Some(Outcome::Pass)
                && r.properties
                    .get("lastAction")
                    .is_some_and(|l| *l != first_fix)
        },
    )
    .await;
    assert_eq!(
        node1_writes(),
        written,
        "node1's unchanged report was written again"
    );

    // What users see.
    let listed = h
        .controlplane()
        .kubectl(&["get", "clusterreports", "-o", "wide"])
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    for node in ["node1", "node2"] {
        assert!(
            listed
                .lines()
                .any(|l| l.starts_with(&format!("netheal-{node} ")) && l.contains(" Node ")),
            "kubectl get clusterreports:\n{listed}"
        );
    }

    // No policy selects the nodes any more: the reports go.
    h.controlplane()
        .kubectl(&[
            "patch",
            "networkhealthpolicy",
            POLICY,
            "--type=merge",
            "-p",
            r#"{"spec":{"nodeSelector":{"matchLabels":{"netheal.io/pool":"none"}}}}"#,
        ])
        .unwrap();
    let api: Api<ClusterReport> = Api::all(h.client().clone());
    wait_for(
        "the ClusterReports deleted once no policy selects their node",
        Duration::from_secs(45),
        || async {
            match api.list(&Default::default()).await {
                Ok(list) if list.items.is_empty() => Wait::Done(()),
                Ok(list) => Wait::NotYet(format!("{} left", list.items.len())),
                Err(e) => Wait::NotYet(e.to_string()),
            }
        },
    )
    .await
    .unwrap();
}
