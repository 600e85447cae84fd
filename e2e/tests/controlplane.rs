//! The real control plane the end-to-end tests run on: it starts from the cached binaries,
//! reports the pinned release, enforces netheal's CRD schema and CEL rules, lists Events
//! written through `events.k8s.io/v1` with `kubectl get events`, and its controllers work
//! (a ReplicaSet's pod is created and scheduled onto a registered node).

#![allow(clippy::unwrap_used)] // helpers panic on purpose: that is how a test fails

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use netheal_e2e::controlplane::ControlPlane;
use netheal_e2e::harness::{Check, log_dir, wait_for};
use std::time::Duration;

fn release() -> String {
    let gomod = std::fs::read_to_string(
        netheal_e2e::harness::bins::workspace_root().join("e2e/controlplane/go.mod"),
    )
    .unwrap();
    gomod
        .lines()
        .find_map(|l| l.trim().strip_prefix("k8s.io/kubernetes "))
        .unwrap()
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_is_the_pinned_release_and_enforces_netheal_crds() {
    let cp = ControlPlane::start(&log_dir("cp1").join("controlplane"))
        .await
        .unwrap();
    eprintln!(
        "figure: controlplane.start {} ms",
        cp.started_in().as_millis()
    );

    let version = cp.kubectl(&["version", "-o", "json"]).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&version.stdout).unwrap();
    assert_eq!(v["serverVersion"]["gitVersion"], release().as_str());
    assert_eq!(v["clientVersion"]["gitVersion"], release().as_str());

    let crd = netheal_e2e::harness::bins::workspace_root().join("config/crd");
    cp.kubectl(&["apply", "-k", &crd.display().to_string()])
        .unwrap();
    cp.kubectl(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/networkhealthpolicies.netheal.io",
    ])
    .unwrap();
    let bad = r#"{"apiVersion":"netheal.io/v1alpha1","kind":"NetworkHealthPolicy",
        "metadata":{"name":"bad"},"spec":{"mode":"Sometimes"}}"#;
    let path = cp.dir().join("bad-policy.json");
    std::fs::write(&path, bad).unwrap();
    let refused = cp
        .kubectl(&["apply", "-f", &path.display().to_string()])
        .unwrap_err()
        .to_string();
    assert!(refused.contains("spec.mode"), "{refused}");

    // An Event written through events.k8s.io/v1 is listed by `kubectl get events`.
    let client = cp.admin_client().await.unwrap();
    let event: k8s_openapi::api::events::v1::Event = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "netheal-e2e-probe", "namespace": "default"},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "netheal.io/e2e",
        "reportingInstance": "e2e",
        "action": "Probe",
        "reason": "NethealProbe",
        "type": "Normal",
        "note": "written through events.k8s.io/v1",
        "regarding": {"kind": "Namespace", "name": "default", "apiVersion": "v1"},
    }))
    .unwrap();
    Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &event)
        .await
        .unwrap();
    let listed = cp.kubectl(&["get", "events", "-A"]).unwrap();
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(text.contains("NethealProbe"), "{text}");

    // The ServiceAccount controller ran (start waits for it); the scheduler binds a pod to a
    // registered node.
    let node: k8s_openapi::api::core::v1::Node = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}},
    }))
    .unwrap();
    Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await
        .unwrap();
    let status = serde_json::json!({"status": {
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}],
        "allocatable": {"cpu": "2", "memory": "1Gi", "pods": "10"},
        "capacity": {"cpu": "2", "memory": "1Gi", "pods": "10"},
    }});
    Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
        .patch_status("n1", &Default::default(), &kube::api::Patch::Merge(status))
        .await
        .unwrap();
    let rs: k8s_openapi::api::apps::v1::ReplicaSet = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "pause"}]}}},
    }))
    .unwrap();
    Api::<k8s_openapi::api::apps::v1::ReplicaSet>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &rs)
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "default");
    wait_for(
        "a scheduled pod of ReplicaSet web",
        Duration::from_secs(60),
        || async {
            match pods.list(&ListParams::default().labels("app=web")).await {
                Ok(l) => match l
                    .items
                    .iter()
                    .find_map(|p| p.spec.as_ref()?.node_name.clone())
                {
                    Some(n) if n == "n1" => Check::Done(()),
                    _ => Check::NotYet(format!("{} pod(s), none bound", l.items.len())),
                },
                Err(e) => Check::NotYet(e.to_string()),
            }
        },
    )
    .await
    .unwrap_or_else(|e| {
        let events = cp.kubectl(&["get", "events", "-A"]).unwrap();
        panic!("{e}\n{}", String::from_utf8_lossy(&events.stdout))
    });
    eprintln!("figure: controlplane.rss {} MiB", cp.rss_kib() / 1024);
}
