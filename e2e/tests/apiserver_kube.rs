//! The API stand-in through the kube-rs client: verbs, selectors, patches, status
//! subresource, optimistic concurrency, eviction, garbage collection, schema validation.
#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is how a test fails.

mod apiserver_common;

use apiserver_common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, EvictParams, ListParams, Patch, PatchParams, PostParams};
use netheal_e2e::apiserver::ApiServerConfig;
use serde_json::json;

fn pod(name: &str, node: &str, app: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Running", "podIP": "10.0.0.1"}
    }))
    .unwrap()
}

fn node(name: &str, pool: &str) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"pool": pool}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}
    }))
    .unwrap()
}

#[tokio::test]
async fn create_get_list_with_label_and_field_selectors() {
    let server = start().await;
    let client = server.kube_client().unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();
    let created = pods.create(&pp, &pod("a", "node-1", "web")).await.unwrap();
    pods.create(&pp, &pod("b", "node-2", "web")).await.unwrap();
    pods.create(&pp, &pod("c", "node-1", "db")).await.unwrap();

    let meta = &created.metadata;
    assert!(meta.uid.as_deref().is_some_and(|u| u.len() == 36));
    assert!(meta.creation_timestamp.is_some());
    assert_eq!(meta.generation, Some(1));
    let rv: u64 = meta.resource_version.as_deref().unwrap().parse().unwrap();
    assert!(rv > 0);
    // A pod's status is the server's on create, as on a real cluster.
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Pending"));

    let got = pods.get("a").await.unwrap();
    assert_eq!(got.spec.unwrap().node_name.as_deref(), Some("node-1"));

    let names = |l: kube::core::ObjectList<Pod>| -> Vec<String> {
        l.items
            .into_iter()
            .map(|p| p.metadata.name.unwrap())
            .collect()
    };
    let lp = |s: &str| ListParams::default().labels(s);
    assert_eq!(names(pods.list(&lp("app=web")).await.unwrap()), ["a", "b"]);
    assert_eq!(names(pods.list(&lp("app!=web")).await.unwrap()), ["c"]);
    assert_eq!(names(pods.list(&lp("app in (db,x)")).await.unwrap()), ["c"]);
    assert_eq!(
        names(pods.list(&lp("app notin (db)")).await.unwrap()),
        ["a", "b"]
    );
    assert_eq!(names(pods.list(&lp("app")).await.unwrap()), ["a", "b", "c"]);
    assert!(names(pods.list(&lp("!app")).await.unwrap()).is_empty());
    let on_node_1 = ListParams::default().fields("spec.nodeName=node-1");
    assert_eq!(names(pods.list(&on_node_1).await.unwrap()), ["a", "c"]);
    let by_name = ListParams::default().fields("metadata.name=b");
    assert_eq!(names(pods.list(&by_name).await.unwrap()), ["b"]);
    // limit/continue are accepted (and ignored: everything comes in one page).
    let paged = pods.list(&ListParams::default().limit(1)).await.unwrap();
    assert_eq!(paged.items.len(), 3);
    // Across namespaces.
    let all: Api<Pod> = Api::all(client.clone());
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        3
    );
    let other: Api<Pod> = Api::namespaced(client, "kube-system");
    assert!(
        other
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn refusals_are_kubernetes_statuses() {
    let server = start().await;
    let client = server.kube_client().unwrap();
    let nodes: Api<Node> = Api::all(client.clone());
    let pp = PostParams::default();
    nodes.create(&pp, &node("n1", "a")).await.unwrap();
    let dup = nodes.create(&pp, &node("n1", "a")).await.unwrap_err();
    assert_eq!(code(&dup), 409);
    assert!(message(&dup).contains("already exists"));
    assert_eq!(code(&nodes.get("nope").await.unwrap_err()), 404);
    // Protobuf bodies are refused as an unsupported media type.
    let req = http::Request::post("/api/v1/namespaces")
        .header("content-type", "application/vnd.kubernetes.protobuf")
        .body(b"k8s\0".to_vec())
        .unwrap();
    let err = client.request::<serde_json::Value>(req).await.unwrap_err();
    assert_eq!(code(&err), 415);
    // Namespaced objects need their namespace.
    let missing: Api<Pod> = Api::namespaced(client, "no-such-ns");
    assert_eq!(
        code(&missing.create(&pp, &pod("p", "n1", "x")).await.unwrap_err()),
        404
    );
}

#[tokio::test]
async fn stale_replace_is_a_conflict() {
    let server = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(server.kube_client().unwrap(), "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"k": "1"}})).unwrap();
    let v1 = cms.create(&PostParams::default(), &cm).await.unwrap();
    let mut v2 = v1.clone();
    v2.data.as_mut().unwrap().insert("k".into(), "2".into());
    let stored = cms.replace("c", &PostParams::default(), &v2).await.unwrap();
    assert_eq!(stored.data.unwrap()["k"], "2");
    let mut stale = v1;
    stale.data.as_mut().unwrap().insert("k".into(), "3".into());
    let err = cms
        .replace("c", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert_eq!(code(&err), 409);
    assert_eq!(cms.get("c").await.unwrap().data.unwrap()["k"], "2");
}

#[tokio::test]
async fn merge_json_and_apply_patches() {
    let server = start_with_gadgets(ApiServerConfig::default()).await;
    let api = gadgets(server.kube_client().unwrap());
    create_gadget(&api, "g", json!({"size": 1, "colour": "red"})).await;

    let pp = PatchParams::default();
    let merged = api
        .patch(
            "g",
            &pp,
            &Patch::Merge(json!({"spec": {"size": 3, "colour": null}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.data["spec"]["size"], 3);
    assert!(merged.data["spec"].get("colour").is_none());
    assert_eq!(merged.metadata.generation, Some(2));

    // kube-rs sends JSON patches only with its `jsonpatch` feature: send one by hand.
    let client = server.kube_client().unwrap();
    let json_patch = |ops: serde_json::Value| {
        http::Request::patch("/apis/test.netheal.io/v1/gadgets/g")
            .header("content-type", "application/json-patch+json")
            .body(serde_json::to_vec(&ops).unwrap())
            .unwrap()
    };
    let patched: kube::api::DynamicObject = client
        .request(json_patch(json!([
            {"op": "test", "path": "/spec/size", "value": 3},
            {"op": "replace", "path": "/spec/size", "value": 4},
            {"op": "add", "path": "/metadata/labels", "value": {"team": "net"}}
        ])))
        .await
        .unwrap();
    assert_eq!(patched.data["spec"]["size"], 4);
    assert_eq!(patched.metadata.labels.unwrap()["team"], "net");
    let err = client
        .request::<kube::api::DynamicObject>(json_patch(json!([
            {"op": "test", "path": "/spec/size", "value": 99}
        ])))
        .await
        .unwrap_err();
    assert_eq!(code(&err), 422);
    assert_eq!(api.get("g").await.unwrap().data["spec"]["size"], 4);

    // Server-side apply creates when absent and merges when present.
    let ssa = PatchParams::apply("netheal-test").force();
    let body = json!({"apiVersion": "test.netheal.io/v1", "kind": "Gadget",
                      "metadata": {"name": "h"}, "spec": {"size": 5}});
    let created = api.patch("h", &ssa, &Patch::Apply(&body)).await.unwrap();
    assert_eq!(created.data["spec"]["size"], 5);
    assert_eq!(
        created.data["spec"]["mode"], "DryRun",
        "schema default applied"
    );
    let managers = created.metadata.managed_fields.unwrap();
    assert!(
        managers
            .iter()
            .any(|m| m.manager.as_deref() == Some("netheal-test")
                && m.operation.as_deref() == Some("Apply"))
    );
    let body = json!({"apiVersion": "test.netheal.io/v1", "kind": "Gadget",
                      "metadata": {"name": "h"}, "spec": {"colour": "blue"}});
    let applied = api.patch("h", &ssa, &Patch::Apply(&body)).await.unwrap();
    assert_eq!(applied.data["spec"]["size"], 5);
    assert_eq!(applied.data["spec"]["colour"], "blue");
    // Apply without a field manager is refused, as by the real server.
    let err = api
        .patch("h", &PatchParams::default(), &Patch::Apply(&body))
        .await
        .unwrap_err();
    assert_eq!(code(&err), 400);
}

#[tokio::test]
async fn no_op_writes_change_nothing() {
    let server = start_with_gadgets(ApiServerConfig::default()).await;
    let before = server.resource_version().await;
    server.apply_manifest(GADGET_CRD).await.unwrap();
    assert_eq!(
        server.resource_version().await,
        before,
        "re-applying a CRD changes nothing"
    );
    let api = gadgets(server.kube_client().unwrap());
    let g = create_gadget(&api, "g", json!({"size": 2})).await;
    let same = api
        .patch(
            "g",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(same.metadata.resource_version, g.metadata.resource_version);
    assert_eq!(same.metadata.generation, Some(1));
}

#[tokio::test]
async fn status_subresource_is_isolated() {
    let server = start_with_gadgets(ApiServerConfig::default()).await;
    let api = gadgets(server.kube_client().unwrap());
    let mut g = gadget("g", json!({"size": 2}));
    g.data["status"] = json!({"phase": "Sneaky"});
    let created = api.create(&PostParams::default(), &g).await.unwrap();
    assert!(
        created.data.get("status").is_none(),
        "status is dropped on create"
    );

    let pp = PatchParams::default();
    let with_status = api
        .patch_status(
            "g",
            &pp,
            &Patch::Merge(json!({"status": {"phase": "Ready"}, "spec": {"size": 9}})),
        )
        .await
        .unwrap();
    assert_eq!(with_status.data["status"]["phase"], "Ready");
    assert_eq!(
        with_status.data["spec"]["size"], 2,
        "a status write leaves spec alone"
    );
    assert_eq!(with_status.metadata.generation, Some(1), "and generation");

    let with_spec = api
        .patch(
            "g",
            &pp,
            &Patch::Merge(json!({"spec": {"size": 3}, "status": {"phase": "Hacked"}})),
        )
        .await
        .unwrap();
    assert_eq!(with_spec.data["spec"]["size"], 3);
    assert_eq!(
        with_spec.data["status"]["phase"], "Ready",
        "a main write leaves status alone"
    );
    assert_eq!(with_spec.metadata.generation, Some(2));

    // replace_status with a stale resourceVersion conflicts.
    let mut stale = created.clone();
    stale.data["status"] = json!({"phase": "Old"});
    let err = api
        .replace_status("g", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert_eq!(code(&err), 409);

    // Nodes and pods have a status subresource too.
    let nodes: Api<Node> = Api::all(server.kube_client().unwrap());
    nodes
        .create(&PostParams::default(), &node("n1", "a"))
        .await
        .unwrap();
    let n = nodes
        .patch(
            "n1",
            &pp,
            &Patch::Merge(json!({"status": {"conditions": []}})),
        )
        .await
        .unwrap();
    assert_eq!(n.status.unwrap().conditions.unwrap().len(), 1);
}

#[tokio::test]
async fn schema_violations_are_422_naming_the_field() {
    let server = start_with_gadgets(ApiServerConfig::default()).await;
    let api = gadgets(server.kube_client().unwrap());
    let cases = [
        (
            json!({"size": 2, "mode": "Sometimes"}),
            "spec.mode",
            "Unsupported value",
        ),
        (json!({"size": 0}), "spec.size", ""),
        (
            json!({"size": "two"}),
            "spec.size",
            "must be of type integer",
        ),
        (json!({"size": 2, "colour": "Red"}), "spec.colour", ""),
        (
            json!({"size": 2, "colour": "abcdefghijk"}),
            "spec.colour",
            "",
        ),
        (json!({"mode": "DryRun"}), "spec.size", "Required value"),
        (
            json!({"size": 1, "mode": "Enforce"}),
            "spec",
            "Enforce needs size of at least 2",
        ),
    ];
    for (i, (spec, field, text)) in cases.into_iter().enumerate() {
        let err = api
            .create(
                &PostParams::default(),
                &gadget(&format!("bad{i}"), spec.clone()),
            )
            .await
            .unwrap_err();
        assert_eq!(code(&err), 422, "{spec}");
        let msg = message(&err);
        assert!(msg.contains(&format!("{field}: ")), "{spec}: {msg}");
        assert!(msg.contains(text), "{spec}: {msg}");
        assert!(
            msg.starts_with(&format!("Gadget.test.netheal.io \"bad{i}\" is invalid")),
            "{msg}"
        );
    }
    // Updates are validated too.
    create_gadget(&api, "good", json!({"size": 2})).await;
    let err = api
        .patch(
            "good",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 11}})),
        )
        .await
        .unwrap_err();
    assert_eq!(code(&err), 422);
    // Unknown fields are pruned, or refused under fieldValidation=Strict.
    let pruned = create_gadget(&api, "typo", json!({"size": 2, "sise": 3})).await;
    assert!(pruned.data["spec"].get("sise").is_none());
    let client = server.kube_client().unwrap();
    let req = http::Request::post("/apis/test.netheal.io/v1/gadgets?fieldValidation=Strict")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&gadget("strict", json!({"size": 2, "sise": 3}))).unwrap())
        .unwrap();
    let err = client.request::<serde_json::Value>(req).await.unwrap_err();
    assert_eq!(code(&err), 400);
    assert!(
        message(&err).contains("unknown field \"spec.sise\""),
        "{}",
        message(&err)
    );
}

#[tokio::test]
async fn eviction_deletes_the_pod_unless_a_budget_forbids_it() {
    let server = start().await;
    // kube retries 429 by default; see each refusal at once instead.
    let mut config = server.kube_config().unwrap();
    config.default_retry = false;
    let client = kube::Client::try_from(config).unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();
    pods.create(&pp, &pod("a", "n1", "web")).await.unwrap();
    pods.create(&pp, &pod("b", "n1", "db")).await.unwrap();

    let status = pods.evict("a", &EvictParams::default()).await.unwrap();
    assert_eq!(status.code, 201);
    assert_eq!(code(&pods.get("a").await.unwrap_err()), 404);
    assert_eq!(
        code(&pods.evict("a", &EvictParams::default()).await.unwrap_err()),
        404
    );

    server.block_evictions(true).await;
    assert_eq!(
        code(&pods.evict("b", &EvictParams::default()).await.unwrap_err()),
        429
    );
    server.block_evictions(false).await;

    // A budget with no disruptions allowed (status as the disruption controller writes it).
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client, "default");
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}}
    }))
    .unwrap();
    pdbs.create(&pp, &pdb).await.unwrap();
    pdbs.patch_status(
        "db",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"status": {"disruptionsAllowed": 0, "currentHealthy": 1,
            "desiredHealthy": 1, "expectedPods": 1}}),
        ),
    )
    .await
    .unwrap();
    let err = pods.evict("b", &EvictParams::default()).await.unwrap_err();
    assert_eq!(code(&err), 429);
    assert!(message(&err).contains("disruption budget"));
    assert!(pods.get("b").await.is_ok());
    pdbs.patch_status(
        "db",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"disruptionsAllowed": 1}})),
    )
    .await
    .unwrap();
    pods.evict("b", &EvictParams::default()).await.unwrap();
    assert_eq!(code(&pods.get("b").await.unwrap_err()), 404);
}

#[tokio::test]
async fn owner_references_garbage_collect_dependents() {
    let server = start_with_gadgets(ApiServerConfig::default()).await;
    let client = server.kube_client().unwrap();
    let nodes: Api<Node> = Api::all(client.clone());
    let n1 = nodes
        .create(&PostParams::default(), &node("n1", "a"))
        .await
        .unwrap();
    let api = gadgets(client.clone());
    let owned = |name: &str, owner: &Node| {
        let mut g = gadget(name, json!({"size": 2}));
        g.metadata.owner_references = Some(vec![
            serde_json::from_value(json!({"apiVersion": "v1", "kind": "Node",
                "name": owner.metadata.name, "uid": owner.metadata.uid}))
            .unwrap(),
        ]);
        g
    };
    api.create(&PostParams::default(), &owned("report-n1", &n1))
        .await
        .unwrap();
    create_gadget(&api, "unowned", json!({"size": 2})).await;
    // A dependent of a dependent goes too.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let report = api.get("report-n1").await.unwrap();
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "grandchild",
        "ownerReferences": [{"apiVersion": "test.netheal.io/v1", "kind": "Gadget",
            "name": "report-n1", "uid": report.metadata.uid}]}}))
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();

    nodes.delete("n1", &DeleteParams::default()).await.unwrap();
    assert_eq!(code(&api.get("report-n1").await.unwrap_err()), 404);
    assert_eq!(code(&cms.get("grandchild").await.unwrap_err()), 404);
    assert!(api.get("unowned").await.is_ok());

    // Orphan propagation keeps the dependent and drops the reference.
    let n2 = nodes
        .create(&PostParams::default(), &node("n2", "a"))
        .await
        .unwrap();
    api.create(&PostParams::default(), &owned("report-n2", &n2))
        .await
        .unwrap();
    nodes.delete("n2", &DeleteParams::orphan()).await.unwrap();
    let kept = api.get("report-n2").await.unwrap();
    assert!(
        kept.metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let server = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(server.kube_client().unwrap(), "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "f", "finalizers": ["netheal.io/x"]}}))
            .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let pending = cms.delete("f", &DeleteParams::default()).await.unwrap();
    let marked = pending
        .left()
        .expect("object returned while finalizers remain");
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert!(cms.get("f").await.is_ok());
    cms.patch(
        "f",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(code(&cms.get("f").await.unwrap_err()), 404);
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_objects() {
    let server = start().await;
    let client = server.kube_client().unwrap();
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap();
    let created = nss.create(&PostParams::default(), &ns).await.unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));
    let pods: Api<Pod> = Api::namespaced(client, "team");
    pods.create(&PostParams::default(), &pod("p", "n1", "web"))
        .await
        .unwrap();
    nss.delete("team", &DeleteParams::default()).await.unwrap();
    assert_eq!(code(&pods.get("p").await.unwrap_err()), 404);
}

#[tokio::test]
async fn strategic_merge_patches_merge_lists_by_key() {
    let server = start_with_gadgets(ApiServerConfig::default()).await;
    let client = server.kube_client().unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &pod("p", "n1", "web"))
        .await
        .unwrap();
    let pp = PatchParams::default();
    pods.patch_status(
        "p",
        &pp,
        &Patch::Merge(json!({"status": {"conditions": [
            {"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}]}})),
    )
    .await
    .unwrap();
    let p = pods
        .patch_status(
            "p",
            &pp,
            &Patch::Strategic(
                json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
            ),
        )
        .await
        .unwrap();
    let conditions = p.status.unwrap().conditions.unwrap();
    let status: Vec<(&str, &str)> = conditions
        .iter()
        .map(|c| (c.type_.as_str(), c.status.as_str()))
        .collect();
    assert_eq!(status, [("PodScheduled", "True"), ("Ready", "True")]);
    // Custom resources have no strategic-merge metadata: 415, as on a real server.
    let api = gadgets(client);
    create_gadget(&api, "g", json!({"size": 2})).await;
    let err = api
        .patch("g", &pp, &Patch::Strategic(json!({"spec": {"size": 3}})))
        .await
        .unwrap_err();
    assert_eq!(code(&err), 415);
}
