//! Against the real control plane (`netheal_e2e::controlplane`), with the CRDs of
//! `config/crd/`: real watches fill the stores, one pass writes the orders into the report's
//! spec and the findings into the policy's status; node-fixer's answer (written here by hand)
//! is recorded and the order leaves the spec. Also: the binary refuses to start without CRDs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use netheal_crds::{NetworkHealthPolicy, NodeNetworkReport};
use netheal_e2e::controlplane::ControlPlane;
use netheal_operator::context::Context;
use netheal_operator::metrics::Metrics;
use netheal_operator::reconcile::run_pass;
use netheal_operator::watch::{self, Stores, Trigger};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// An hour ago plus `secs`, as the API writes times: the fixes stay inside the ledger's
/// retention (old ones are pruned, and pruning is a change that is written).
fn scan_time(secs: i64) -> String {
    let base = k8s_openapi::jiff::Timestamp::now().as_second() - 3600;
    k8s_openapi::jiff::Timestamp::from_second(base + secs)
        .expect("a valid time")
        .to_string()
}

async fn server(with_crds: bool) -> ControlPlane {
    let cp = ControlPlane::for_test("op")
        .await
        .expect("the control plane starts");
    if with_crds {
        cp.apply_crds().expect("the CRDs are installed");
    }
    cp
}

/// Poll `cond` on the stores until it holds (10 s at most).
async fn until(stores: &Stores, what: &str, cond: impl Fn(&Stores) -> bool) {
    for _ in 0..200 {
        if cond(stores) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

const ARP_TARGET: &str = "net.ipv4.conf.all.arp_ignore";

/// Two Nodes, an Enforce policy without cooldown, and two reports: `n1` with one ArpIgnore
/// finding, `n2` healthy. Returns the finding's id.
async fn seed(client: &kube::Client) -> String {
    let client = client.clone();
    let nodes: Api<Node> = Api::all(client.clone());
    for name in ["n1", "n2"] {
        nodes
            .create(
                &PostParams::default(),
                &serde_json::from_value(
                    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}),
                )
                .unwrap(),
            )
            .await
            .unwrap();
    }
    let policies: Api<NetworkHealthPolicy> = Api::all(client.clone());
    policies
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "netheal.io/v1alpha1", "kind": "NetworkHealthPolicy",
                "metadata": {"name": "default"},
                "spec": {"mode": "Enforce", "remediation": {"cooldownSeconds": 0}}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let reports: Api<NodeNetworkReport> = Api::all(client.clone());
    for name in ["n1", "n2"] {
        reports
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "apiVersion": "netheal.io/v1alpha1", "kind": "NodeNetworkReport",
                    "metadata": {"name": name}, "spec": {}
                }))
                .unwrap(),
            )
            .await
            .unwrap();
    }
    let id = netheal_crds::finding_id(netheal_crds::Check::ArpIgnore, ARP_TARGET);
    let at = scan_time;
    reports
        .patch_status(
            "n1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "lastScanTime": at(0),
                "openFindings": 1,
                "findings": [{
                    "id": id, "check": "ArpIgnore", "target": ARP_TARGET,
                    "observed": "2", "desired": "0", "action": "SetSysctl",
                    "details": {"netns": "", "sysctl": "net/ipv4/conf/all/arp_ignore", "value": "0"},
                    "policy": "default", "lastSeen": at(0)
                }]
            }})),
        )
        .await
        .unwrap();
    reports
        .patch_status(
            "n2",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"lastScanTime": at(0)}})),
        )
        .await
        .unwrap();

    id
}

#[tokio::test]
async fn one_pass_orders_the_fix_and_records_the_answer() {
    let server = server(true).await;
    let client = server.admin_client().await.unwrap();
    let id = seed(&client).await;
    let policies: Api<NetworkHealthPolicy> = Api::all(client.clone());
    let reports: Api<NodeNetworkReport> = Api::all(client.clone());

    let trigger = Trigger::new();
    let (stores, watches) = watch::start(&client, &trigger);
    let watches = tokio::spawn(watches);
    let ctx = Context::new(
        client.clone(),
        stores.clone(),
        trigger,
        Arc::new(Metrics::new()),
        Some("test".into()),
        Duration::from_secs(30),
    );
    tokio::time::timeout(Duration::from_secs(10), stores.wait_until_ready())
        .await
        .unwrap()
        .unwrap();
    until(&stores, "the finding in the store", |s| {
        s.reports
            .state()
            .iter()
            .any(|r| r.status.as_ref().is_some_and(|st| !st.findings.is_empty()))
            && s.nodes.state().len() == 2
            && s.policies.state().len() == 1
    })
    .await;

    let pass = run_pass(&ctx, true).await.unwrap();
    assert_eq!(pass.orders_written, 1);
    assert_eq!(pass.statuses_written, 1);

    let n1 = reports.get("n1").await.unwrap();
    assert_eq!(n1.spec.remediations.len(), 1);
    let order = n1.spec.remediations[0].clone();
    assert_eq!(order.finding_id, id);
    assert_eq!(order.policy, "default");
    assert_eq!(order.parameters["sysctl"], "net/ipv4/conf/all/arp_ignore");
    assert!(
        reports
            .get("n2")
            .await
            .unwrap()
            .spec
            .remediations
            .is_empty()
    );
    let status = policies
        .get_status("default")
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.summary.nodes_selected, 2);
    assert_eq!(status.summary.nodes_reporting, 2);
    assert_eq!(status.summary.nodes_healthy, 1);
    assert_eq!(status.summary.open_findings, 1);
    assert!(
        status.findings[0]
            .disposition
            .as_deref()
            .unwrap()
            .starts_with("approved: order")
    );
    assert!(netheal_crds::conditions::is_condition_true(
        &status.conditions,
        "Degraded"
    ));

    // node-fixer answers, and the finding clears.
    let at = scan_time;
    reports
        .patch_status(
            "n1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "lastScanTime": at(60),
                "openFindings": 0,
                "findings": null,
                "results": [{
                    "id": order.id, "action": "SetSysctl", "target": ARP_TARGET,
                    "outcome": "Applied", "before": "2", "after": "0",
                    "dryRun": false, "time": at(30)
                }]
            }})),
        )
        .await
        .unwrap();
    until(&stores, "the answer in the store", |s| {
        s.reports
            .state()
            .iter()
            .any(|r| r.status.as_ref().is_some_and(|st| !st.results.is_empty()))
    })
    .await;
    let pass = run_pass(&ctx, true).await.unwrap();
    assert_eq!(pass.orders_written, 1);
    assert_eq!(pass.statuses_written, 1);
    assert!(
        reports
            .get("n1")
            .await
            .unwrap()
            .spec
            .remediations
            .is_empty()
    );
    let status = policies
        .get_status("default")
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(status.actions.len(), 1);
    assert_eq!(status.actions[0].id, order.id);
    assert_eq!(status.actions[0].outcome, netheal_crds::Outcome::Applied);
    assert_eq!(status.summary.actions_applied, 1);
    assert_eq!(status.summary.open_findings, 0);
    assert!(status.findings.is_empty());
    assert!(netheal_crds::conditions::is_condition_true(
        &status.conditions,
        "Ready"
    ));

    // Once the stores catch up, a pass writes nothing.
    until(&stores, "the status in the store", |s| {
        s.policies
            .state()
            .iter()
            .any(|p| p.status.as_ref().is_some_and(|st| st.actions.len() == 1))
            && s.reports
                .state()
                .iter()
                .all(|r| r.spec.remediations.is_empty())
    })
    .await;
    let pass = run_pass(&ctx, true).await.unwrap();
    assert_eq!(pass.statuses_written + pass.orders_written, 0, "{pass:?}");

    watches.abort();
    drop(server);
}

#[tokio::test]
async fn the_binary_refuses_to_start_without_the_crds() {
    let server = server(false).await;
    let dir = std::env::temp_dir().join(format!("netheal-operator-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::copy(server.admin_kubeconfig(), &kubeconfig).unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_netheal-operator"))
        .args(["--no-leader-election", "--listen", "127.0.0.1:0"])
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(20), output)
        .await
        .expect("the binary exits")
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("netheal CRDs are not installed: kubectl apply -k config/crd"),
        "{stderr}"
    );
    drop(server);
}

/// Start the operator binary against `server` with `extra` arguments; wait (30 s at most) until
/// it has written the order for the seeded finding into `n1`'s report.
async fn binary_orders_the_fix(extra: &[&str]) {
    let server = server(true).await;
    let client = server.admin_client().await.unwrap();
    let id = seed(&client).await;
    let dir = std::env::temp_dir().join(format!(
        "netheal-operator-bin-{}-{}",
        std::process::id(),
        extra.len()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::copy(server.admin_kubeconfig(), &kubeconfig).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_netheal-operator"))
        .args(["--listen", "127.0.0.1:0", "--requeue-interval", "2s"])
        .args(extra)
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let reports: Api<NodeNetworkReport> = Api::all(client.clone());
    let mut ordered = false;
    for _ in 0..300 {
        if let Some(exit) = child.try_wait().unwrap() {
            panic!("the operator exited early: {exit}");
        }
        let n1 = reports.get("n1").await.unwrap();
        if n1.spec.remediations.iter().any(|o| o.finding_id == id) {
            ordered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().await.ok();
    std::fs::remove_dir_all(&dir).ok();
    assert!(ordered, "no order for finding {id} within 30 s ({extra:?})");
    drop(server);
}

#[tokio::test]
async fn the_binary_reconciles_without_leader_election() {
    binary_orders_the_fix(&["--no-leader-election"]).await;
}

#[tokio::test]
async fn the_binary_reconciles_once_it_holds_the_lease() {
    binary_orders_the_fix(&["--lease-namespace", "default"]).await;
}
