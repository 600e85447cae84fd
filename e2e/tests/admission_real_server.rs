//! RBAC and the ValidatingAdmissionPolicy of `config/admission` (part of `config/default`), enforced by the real API
//! server with netheal installed as users install it: node-fixer, authenticated with a token
//! bound to its DaemonSet pod on node1, writes node1's report, and is refused with a 403 and
//! the policy's message when it writes node2's report, creates a report carrying orders, or
//! uses a token bound to no pod; RBAC refuses it everything else it has no business with.

#![allow(clippy::unwrap_used)] // helpers panic on purpose: that is how a test fails

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use netheal_crds::NodeNetworkReport;
use netheal_e2e::controlplane::client_from_file;
use netheal_e2e::harness::install::{self, NAMESPACE, NODE_FIXER_SA};
use netheal_e2e::harness::{Harness, HarnessOptions};
use serde_json::json;

async fn token_client(h: &Harness, name: &str, token: &str) -> Client {
    let path = h.log_dir().join(format!("{name}.kubeconfig"));
    h.controlplane()
        .write_token_kubeconfig(&path, name, token)
        .unwrap();
    client_from_file(&path).await.unwrap()
}

async fn node_fixer_client(h: &Harness, node: &str) -> Client {
    let pod = h
        .wait_running_pod(
            NAMESPACE,
            "app.kubernetes.io/component=node-fixer",
            Some(node),
        )
        .await
        .unwrap();
    let token = install::pod_bound_token(h.client(), NODE_FIXER_SA, &pod)
        .await
        .unwrap();
    token_client(h, &format!("node-fixer-{node}"), &token).await
}

/// The 403's message, or a panic when the call was not refused with 403.
fn forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> String {
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 => status.message,
        other => panic!("expected a 403, got {other:?}"),
    }
}

fn report(name: &str, remediations: serde_json::Value) -> NodeNetworkReport {
    serde_json::from_value(json!({
        "apiVersion": "netheal.io/v1alpha1", "kind": "NodeNetworkReport",
        "metadata": {"name": name}, "spec": {"remediations": remediations},
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_fixer_writes_only_its_own_report_and_never_orders() {
    let mut opts = HarnessOptions::new("a1", 2);
    opts.start_agents = false;
    opts.start_operator = false;
    let h = Harness::start(opts).await.unwrap();
    let node1 = node_fixer_client(&h, "node1").await;
    let reports: Api<NodeNetworkReport> = Api::all(node1.clone());

    // Its own report: created, then its status written.
    reports
        .create(&PostParams::default(), &report("node1", json!([])))
        .await
        .unwrap();
    reports
        .patch_status(
            "node1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"agentVersion": "test"}})),
        )
        .await
        .unwrap();

    // node2's report: refused on create and on status update, with the policy's message.
    let message = forbidden(
        reports
            .create(&PostParams::default(), &report("node2", json!([])))
            .await,
    );
    assert!(
        message.contains(
            "node-fixer on node node1 may write only its own NodeNetworkReport, not node2"
        ),
        "{message}"
    );
    Api::<NodeNetworkReport>::all(h.client().clone())
        .create(&PostParams::default(), &report("node2", json!([])))
        .await
        .unwrap();
    let message = forbidden(
        reports
            .patch_status(
                "node2",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"agentVersion": "evil"}})),
            )
            .await,
    );
    assert!(
        message.contains("may write only its own NodeNetworkReport, not node2"),
        "{message}"
    );

    // A report of its own that carries orders: refused (orders are the operator's).
    let node2 = node_fixer_client(&h, "node2").await;
    Api::<NodeNetworkReport>::all(h.client().clone())
        .delete("node2", &DeleteParams::default())
        .await
        .unwrap();
    let order = json!([{"id": "r1", "findingId": "0123456789abcdef", "action": "SetSysctl",
        "check": "IpForward", "target": "net.ipv4.ip_forward", "policy": "p",
        "parameters": {}, "dryRun": false,
        "approvedAt": "2026-01-01T00:00:00Z"}]);
    let message = forbidden(
        Api::<NodeNetworkReport>::all(node2)
            .create(&PostParams::default(), &report("node2", order))
            .await,
    );
    assert!(
        message.contains("may not create a NodeNetworkReport with spec.remediations"),
        "{message}"
    );

    // A node-fixer token bound to no pod carries no node name: refused.
    let plain = Api::<ServiceAccount>::namespaced(h.client().clone(), NAMESPACE)
        .create_token_request(
            NODE_FIXER_SA,
            &PostParams::default(),
            &TokenRequest {
                spec: TokenRequestSpec {
                    audiences: Vec::new(),
                    expiration_seconds: Some(600),
                    bound_object_ref: None,
                },
                ..TokenRequest::default()
            },
        )
        .await
        .unwrap()
        .status
        .unwrap()
        .token;
    let unbound = token_client(&h, "node-fixer-unbound", &plain).await;
    let message = forbidden(
        Api::<NodeNetworkReport>::all(unbound)
            .patch_status(
                "node1",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"agentVersion": "x"}})),
            )
            .await,
    );
    assert!(message.contains("carries no node name"), "{message}");

    // RBAC: node-fixer may not delete pods (the operator's job) nor read secrets.
    let pods: Api<Pod> = Api::namespaced(node1.clone(), "kube-system");
    let message = forbidden(pods.delete("anything", &DeleteParams::default()).await);
    assert!(
        message.contains("cannot delete resource \"pods\""),
        "{message}"
    );
}
