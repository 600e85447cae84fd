//! The project's own CRDs (`config/crd/`) and samples (`config/samples/`) on the API stand-in.
#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is how a test fails.

mod apiserver_common;

use std::path::PathBuf;

use apiserver_common::*;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use netheal_crds::{NetworkHealthPolicy, NodeNetworkReport};
use netheal_e2e::apiserver::{ApiServerConfig, RunningApiServer};
use serde_json::{Value, json};

fn config_dir(sub: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../config")
        .join(sub)
}

async fn start_with_project_crds() -> RunningApiServer {
    start_with(ApiServerConfig {
        crd_dir: Some(config_dir("crd")),
        ..Default::default()
    })
    .await
}

/// Whether every field of `small` is in `big` with the same value (lists compared whole).
fn contains(big: &Value, small: &Value) -> bool {
    match (big, small) {
        (Value::Object(b), Value::Object(s)) => s
            .iter()
            .all(|(k, v)| b.get(k).is_some_and(|bv| contains(bv, v))),
        _ => big == small,
    }
}

fn samples() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(config_dir("samples")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".yaml") || name == "kustomization.yaml" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v: Value = serde::Deserialize::deserialize(doc).unwrap();
            if !v.is_null() {
                out.push((name.clone(), v));
            }
        }
    }
    assert!(!out.is_empty(), "samples exist");
    out
}

fn policy_resource() -> ApiResource {
    ApiResource::erase::<NetworkHealthPolicy>(&())
}

#[tokio::test]
async fn samples_apply_and_read_back() {
    let server = start_with_project_crds().await;
    let client = server.kube_client().unwrap();
    let dynamic: Api<DynamicObject> = Api::all_with(client.clone(), &policy_resource());
    let typed: Api<NetworkHealthPolicy> = Api::all(client);
    for (file, sample) in samples() {
        assert_eq!(sample["kind"], "NetworkHealthPolicy", "{file}");
        let name = sample["metadata"]["name"].as_str().unwrap().to_string();
        let applied = dynamic
            .patch(
                &name,
                &PatchParams::apply("netheal-e2e").force(),
                &Patch::Apply(&sample),
            )
            .await
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(
            contains(&applied.data["spec"], &sample["spec"]),
            "{file}: stored spec {} lacks parts of {}",
            applied.data["spec"],
            sample["spec"]
        );
        // The operator's own types read what the server stored (defaults filled in).
        let policy = typed
            .get(&name)
            .await
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let mode = serde_json::to_value(policy.spec.mode).unwrap();
        assert_eq!(mode, sample["spec"]["mode"], "{file}");
        assert_eq!(policy.metadata.generation, Some(1));
    }
}

#[tokio::test]
async fn a_policy_with_an_unknown_mode_is_refused_naming_spec_mode() {
    let server = start_with_project_crds().await;
    let dynamic: Api<DynamicObject> =
        Api::all_with(server.kube_client().unwrap(), &policy_resource());
    let (_, mut sample) = samples().remove(0);
    sample["metadata"]["name"] = json!("sometimes");
    sample["spec"]["mode"] = json!("Sometimes");
    let mut obj: DynamicObject = serde_json::from_value(sample).unwrap();
    obj.metadata.resource_version = None;
    let err = dynamic
        .create(&PostParams::default(), &obj)
        .await
        .unwrap_err();
    assert_eq!(code(&err), 422, "{err}");
    let msg = message(&err);
    assert!(msg.contains("spec.mode"), "{msg}");
    assert!(
        msg.starts_with("NetworkHealthPolicy.netheal.io \"sometimes\" is invalid"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_report_goes_when_its_node_goes() {
    let server = start_with_project_crds().await;
    let client = server.kube_client().unwrap();
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({"metadata": {"name": "node-1"}})).unwrap();
    let node = nodes.create(&PostParams::default(), &node).await.unwrap();
    let reports: Api<NodeNetworkReport> = Api::all(client);
    let report: NodeNetworkReport = serde_json::from_value(json!({
        "apiVersion": "netheal.io/v1alpha1", "kind": "NodeNetworkReport",
        "metadata": {"name": "node-1", "ownerReferences": [{
            "apiVersion": "v1", "kind": "Node", "name": "node-1", "uid": node.metadata.uid}]},
        "spec": {}
    }))
    .unwrap();
    reports
        .create(&PostParams::default(), &report)
        .await
        .unwrap();
    let written = reports
        .patch_status(
            "node-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"agentVersion": "0.1.0"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&written.status).unwrap()["agentVersion"],
        "0.1.0"
    );
    nodes
        .delete("node-1", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(code(&reports.get("node-1").await.unwrap_err()), 404);
}
