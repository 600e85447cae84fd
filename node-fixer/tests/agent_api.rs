//! The agent's API requests, checked request by request against a mock API server (the
//! `tower_test::mock` "ApiServerVerifier" pattern of kube-rs controller-rs): the exact method,
//! path and body of each write, a report created when absent, and no write when nothing
//! changed. Orders run exactly once, also across a restart.

// Tests may unwrap: a panic is how a test fails (helpers outside #[test] included).
#![allow(clippy::unwrap_used)]

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Client;
use kube::client::Body;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::Event;
use netheal_crds::{
    Action, Check, Finding, NetworkHealthPolicy, NetworkHealthPolicySpec, NodeNetworkReport,
    NodeNetworkReportSpec, NodeNetworkReportStatus, Outcome, RemediationOrder, RemediationResult,
    finding_id,
};
use node_fixer::agent::kube_io::{WriteError, write_status};
use node_fixer::agent::metrics::Metrics;
use node_fixer::agent::status::WriteDecision;
use node_fixer::agent::worker::{Engine, Stores, Worker, WorkerConfig};
use node_fixer::engine::{EngineConfig, ScanOutput};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tower_test::mock::{self, Handle};

type ApiHandle = Handle<Request<Body>, Response<Body>>;

const NODE: &str = "node-a";
const STATUS_PATH: &str =
    "/apis/netheal.io/v1alpha1/nodenetworkreports/node-a/status?&fieldManager=netheal-node-fixer";

fn mock_client() -> (Client, ApiHandle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), handle)
}

async fn next(
    handle: &mut ApiHandle,
) -> (Method, String, Value, mock::SendResponse<Response<Body>>) {
    let (request, send) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
        .await
        .expect("a request within 5 s")
        .expect("the client is alive");
    let method = request.method().clone();
    let uri = request.uri().to_string();
    if method == Method::PATCH {
        assert_eq!(
            request.headers().get("content-type").unwrap(),
            "application/merge-patch+json"
        );
    }
    let bytes = request.into_body().collect_bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (method, uri, body, send)
}

fn respond(send: mock::SendResponse<Response<Body>>, code: StatusCode, body: Value) {
    send.send_response(
        Response::builder()
            .status(code)
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap(),
    );
}

/// What a server stores for a merge patch: `null` removes a field.
fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        other => other,
    }
}

fn report_json(status: Value) -> Value {
    let status = strip_nulls(status);
    json!({
        "apiVersion": "netheal.io/v1alpha1",
        "kind": "NodeNetworkReport",
        "metadata": {"name": NODE, "resourceVersion": "2", "uid": "r-uid"},
        "spec": {},
        "status": status,
    })
}

fn not_found() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
           "message": "nodenetworkreports \"node-a\" not found", "code": 404})
}

fn t(s: i64) -> Time {
    Time(jiff::Timestamp::from_second(1_800_000_000 + s).unwrap())
}

fn sample_status() -> NodeNetworkReportStatus {
    NodeNetworkReportStatus {
        agent_version: Some("0.1.0".into()),
        iptables_backend: Some("nft".into()),
        last_scan_time: Some(t(0)),
        last_scan_duration_ms: Some(4),
        open_findings: 0,
        pending_orders: 0,
        ..Default::default()
    }
}

#[tokio::test]
async fn status_is_written_with_a_merge_patch_on_the_status_subresource() {
    let (client, mut handle) = mock_client();
    let verifier = tokio::spawn(async move {
        let (method, uri, body, send) = next(&mut handle).await;
        assert_eq!(method, Method::PATCH);
        assert_eq!(uri, STATUS_PATH);
        assert_eq!(
            body,
            json!({"status": {
                "agentVersion": "0.1.0",
                "iptablesBackend": "nft",
                "lastScanTime": "2027-01-15T08:00:00Z",
                "lastScanDurationMs": 4,
                "openFindings": 0,
                "pendingOrders": 0,
                "findings": null,
                "findingsTruncated": null,
                "results": null,
                "errors": null,
            }})
        );
        respond(send, StatusCode::OK, report_json(body["status"].clone()));
    });
    write_status(&client, NODE, Some("node-uid"), &sample_status())
        .await
        .unwrap();
    verifier.await.unwrap();
}

#[tokio::test]
async fn an_absent_report_is_created_owned_by_the_node_then_patched() {
    let (client, mut handle) = mock_client();
    let verifier = tokio::spawn(async move {
        let (method, uri, _, send) = next(&mut handle).await;
        assert_eq!((method, uri.as_str()), (Method::PATCH, STATUS_PATH));
        respond(send, StatusCode::NOT_FOUND, not_found());

        let (method, uri, body, send) = next(&mut handle).await;
        assert_eq!(method, Method::POST);
        assert_eq!(
            uri,
            "/apis/netheal.io/v1alpha1/nodenetworkreports?&fieldManager=netheal-node-fixer"
        );
        assert_eq!(
            body,
            json!({
                "apiVersion": "netheal.io/v1alpha1",
                "kind": "NodeNetworkReport",
                "metadata": {"name": NODE, "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Node", "name": NODE, "uid": "node-uid"}
                ]},
                "spec": {},
            })
        );
        respond(send, StatusCode::CREATED, report_json(Value::Null));

        let (method, uri, body, send) = next(&mut handle).await;
        assert_eq!((method, uri.as_str()), (Method::PATCH, STATUS_PATH));
        assert_eq!(body["status"]["iptablesBackend"], "nft");
        respond(send, StatusCode::OK, report_json(body["status"].clone()));
    });
    write_status(&client, NODE, Some("node-uid"), &sample_status())
        .await
        .unwrap();
    verifier.await.unwrap();
}

#[tokio::test]
async fn without_the_node_an_absent_report_waits_instead_of_being_created_unowned() {
    let (client, mut handle) = mock_client();
    let verifier = tokio::spawn(async move {
        let (method, _, _, send) = next(&mut handle).await;
        assert_eq!(method, Method::PATCH);
        respond(send, StatusCode::NOT_FOUND, not_found());
        // No POST follows.
        assert!(
            tokio::time::timeout(Duration::from_millis(200), handle.next_request())
                .await
                .map_or(true, |r| r.is_none())
        );
    });
    let err = write_status(&client, NODE, None, &sample_status())
        .await
        .unwrap_err();
    assert!(matches!(err, WriteError::NodeUnknown(_)), "{err}");
    drop(client);
    verifier.await.unwrap();
}

// ---- the cycle, with a fake engine ----

/// Reports `ip_forward=0` until an order is executed.
struct FakeEngine {
    broken: AtomicBool,
    executions: AtomicUsize,
    seen_policy: Mutex<Option<NetworkHealthPolicySpec>>,
}

impl FakeEngine {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            broken: AtomicBool::new(true),
            executions: AtomicUsize::new(0),
            seen_policy: Mutex::new(None),
        })
    }
}

fn ip_forward_finding() -> Finding {
    Finding {
        id: finding_id(Check::IpForward, "net.ipv4.ip_forward"),
        check: Check::IpForward,
        target: "net.ipv4.ip_forward".into(),
        observed: "0".into(),
        desired: "1".into(),
        action: Some(Action::SetSysctl),
        details: [
            ("netns".to_string(), String::new()),
            ("sysctl".to_string(), "net/ipv4/ip_forward".to_string()),
            ("value".to_string(), "1".to_string()),
        ]
        .into(),
        policy: None,
        message: None,
        first_seen: None,
        last_seen: None,
    }
}

impl Engine for FakeEngine {
    fn scan(&self, policy: &NetworkHealthPolicySpec, _: &EngineConfig) -> ScanOutput {
        *self.seen_policy.lock().unwrap() = Some(policy.clone());
        ScanOutput {
            findings: if self.broken.load(Ordering::SeqCst) {
                vec![ip_forward_finding()].into()
            } else {
                Default::default()
            },
            iptables_backend: Some("nft".into()),
            errors: vec![],
            duration: Duration::from_millis(2),
        }
    }

    fn execute(
        &self,
        order: &RemediationOrder,
        _: &NetworkHealthPolicySpec,
        _: &EngineConfig,
    ) -> RemediationResult {
        self.executions.fetch_add(1, Ordering::SeqCst);
        self.broken.store(false, Ordering::SeqCst);
        RemediationResult {
            id: order.id.clone(),
            action: order.action,
            target: order.target.clone(),
            outcome: Outcome::Applied,
            before: "0".into(),
            after: "1".into(),
            dry_run: order.dry_run,
            time: t(1),
            message: None,
        }
    }
}

struct Fixture {
    stores: Stores,
    reports: reflector::store::Writer<NodeNetworkReport>,
}

fn fixture(report: Option<NodeNetworkReport>) -> Fixture {
    let (policies, mut pw) = reflector::store::<NetworkHealthPolicy>();
    let (nodes, mut nw) = reflector::store::<Node>();
    let (reports, mut rw): (Store<NodeNetworkReport>, _) = reflector::store();
    let spec: NetworkHealthPolicySpec = serde_json::from_value(json!({})).unwrap();
    pw.apply_watcher_event(&Event::Apply(NetworkHealthPolicy::new("default", spec)));
    nw.apply_watcher_event(&Event::Apply(Node {
        metadata: ObjectMeta {
            name: Some(NODE.into()),
            uid: Some("node-uid".into()),
            ..Default::default()
        },
        ..Default::default()
    }));
    if let Some(r) = report {
        rw.apply_watcher_event(&Event::Apply(r));
    }
    Fixture {
        stores: Stores {
            policies,
            nodes,
            reports,
            services: Vec::new(),
            calico_blocks: None,
            reports_ready: Arc::new(AtomicBool::new(true)),
        },
        reports: rw,
    }
}

fn worker(client: Client, stores: Stores, engine: Arc<FakeEngine>) -> Worker {
    Worker::new(
        WorkerConfig {
            node: NODE.into(),
            engine: EngineConfig::default(),
            refresh: Duration::from_secs(300),
        },
        client,
        stores,
        engine,
        Arc::new(Metrics::new()),
    )
}

fn order(id: &str) -> RemediationOrder {
    RemediationOrder {
        id: id.into(),
        action: Action::SetSysctl,
        finding_id: finding_id(Check::IpForward, "net.ipv4.ip_forward"),
        check: Check::IpForward,
        target: "net.ipv4.ip_forward".into(),
        parameters: ip_forward_finding().details.to_map(),
        policy: "default".into(),
        dry_run: false,
        approved_at: t(0),
    }
}

fn report_with(
    orders: Vec<RemediationOrder>,
    results: Vec<RemediationResult>,
) -> NodeNetworkReport {
    let mut r = NodeNetworkReport::new(
        NODE,
        NodeNetworkReportSpec {
            remediations: orders,
            ..Default::default()
        },
    );
    r.status = Some(NodeNetworkReportStatus {
        results,
        ..Default::default()
    });
    r
}

/// Answer every request with 200 and record the bodies, until the client is dropped.
fn recorder(mut handle: ApiHandle) -> tokio::task::JoinHandle<Vec<(Method, String, Value)>> {
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some((request, send)) = handle.next_request().await {
            let method = request.method().clone();
            let uri = request.uri().to_string();
            let bytes = request.into_body().collect_bytes().await.unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            respond(send, StatusCode::OK, report_json(body["status"].clone()));
            seen.push((method, uri, body));
        }
        seen
    })
}

#[tokio::test]
async fn nothing_changed_means_no_write() {
    let (client, handle) = mock_client();
    let seen = recorder(handle);
    let engine = FakeEngine::new();
    let fx = fixture(None);
    let mut w = worker(client, fx.stores, engine.clone());
    let token = CancellationToken::new();
    let first = w.cycle(&token).await;
    assert_eq!(first.write, Some(WriteDecision::FirstWrite));
    assert_eq!(first.open_findings, 1);
    for _ in 0..3 {
        let again = w.cycle(&token).await;
        assert_eq!(again.write, Some(WriteDecision::Skip));
    }
    // The fault goes away: that is a change.
    engine.broken.store(false, Ordering::SeqCst);
    let cleared = w.cycle(&token).await;
    assert_eq!(cleared.write, Some(WriteDecision::Changed));
    drop(w);
    let seen = seen.await.unwrap();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert!(
        seen.iter()
            .all(|(m, u, _)| *m == Method::PATCH && u == STATUS_PATH)
    );
    let finding = &seen[0].2["status"]["findings"][0];
    assert_eq!(finding["policy"], "default");
    assert_eq!(finding["check"], "IpForward");
    assert!(finding["firstSeen"].is_string());
    assert_eq!(seen[0].2["status"]["openFindings"], 1);
    assert!(seen[1].2["status"]["findings"].is_null());
    assert_eq!(seen[1].2["status"]["openFindings"], 0);
    assert!(
        engine
            .seen_policy
            .lock()
            .unwrap()
            .as_ref()
            .unwrap()
            .checks
            .ip_forward
            .enabled
    );
}

#[tokio::test]
async fn no_policy_selecting_the_node_is_reported_and_nothing_scanned() {
    let (client, handle) = mock_client();
    let seen = recorder(handle);
    let engine = FakeEngine::new();
    let fx = fixture(None);
    let (policies, _w) = reflector::store::<NetworkHealthPolicy>();
    let stores = Stores {
        policies,
        ..fx.stores
    };
    let mut w = worker(client, stores, engine.clone());
    let report = w.cycle(&CancellationToken::new()).await;
    assert_eq!(report.open_findings, 0);
    assert!(
        engine.seen_policy.lock().unwrap().is_none(),
        "nothing is scanned"
    );
    drop(w);
    let seen = seen.await.unwrap();
    let errors = seen[0].2["status"]["errors"].as_array().unwrap();
    assert!(
        errors[0]
            .as_str()
            .unwrap()
            .contains("no NetworkHealthPolicy selects node node-a")
    );
}

#[tokio::test]
async fn an_approved_order_runs_once_and_the_finding_clears_in_the_same_write() {
    let (client, handle) = mock_client();
    let seen = recorder(handle);
    let engine = FakeEngine::new();
    let mut fx = fixture(Some(report_with(vec![order("o-1")], vec![])));
    let stores = fx.stores.clone();
    let mut w = worker(client, stores, engine.clone());
    let token = CancellationToken::new();
    let first = w.cycle(&token).await;
    assert_eq!(first.executed, ["o-1"]);
    assert_eq!(first.open_findings, 0, "re-scanned after the fix");
    // The watch has not delivered our own write yet: memory alone prevents a second run.
    let second = w.cycle(&token).await;
    assert!(second.executed.is_empty());
    assert_eq!(engine.executions.load(Ordering::SeqCst), 1);
    drop(w);
    let seen = seen.await.unwrap();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    let status = &seen[0].2["status"];
    assert_eq!(status["results"][0]["id"], "o-1");
    assert_eq!(status["results"][0]["outcome"], "Applied");
    assert_eq!(status["results"][0]["before"], "0");
    assert_eq!(status["results"][0]["after"], "1");
    assert_eq!(status["pendingOrders"], 0);
    assert!(status["findings"].is_null());

    // A restarted agent reads the results from the API and does not run the order again.
    let recorded: NodeNetworkReportStatus =
        serde_json::from_value(strip_nulls(status.clone())).unwrap();
    fx.reports.apply_watcher_event(&Event::Apply(report_with(
        vec![order("o-1")],
        recorded.results,
    )));
    engine.broken.store(true, Ordering::SeqCst);
    let (client, handle) = mock_client();
    let seen = recorder(handle);
    let mut restarted = worker(client, fx.stores.clone(), engine.clone());
    let after = restarted.cycle(&token).await;
    assert!(after.executed.is_empty());
    assert_eq!(engine.executions.load(Ordering::SeqCst), 1);
    drop(restarted);
    let seen = seen.await.unwrap();
    assert_eq!(
        seen[0].2["status"]["results"][0]["id"], "o-1",
        "the old answer is kept"
    );
}

#[tokio::test]
async fn orders_wait_until_the_report_listing_is_known_and_gone_findings_are_answered_no_change() {
    let (client, handle) = mock_client();
    let seen = recorder(handle);
    let engine = FakeEngine::new();
    engine.broken.store(false, Ordering::SeqCst);
    let fx = fixture(Some(report_with(vec![order("o-2")], vec![])));
    fx.stores.reports_ready.store(false, Ordering::SeqCst);
    let ready = fx.stores.reports_ready.clone();
    let mut w = worker(client, fx.stores.clone(), engine.clone());
    let token = CancellationToken::new();
    let before = w.cycle(&token).await;
    assert!(before.executed.is_empty() && before.answered.is_empty());
    assert_eq!(
        before.write, None,
        "no write before the report's results are known"
    );
    ready.store(true, Ordering::SeqCst);
    let after = w.cycle(&token).await;
    assert_eq!(after.answered, ["o-2"]);
    assert_eq!(engine.executions.load(Ordering::SeqCst), 0);
    drop(w);
    let seen = seen.await.unwrap();
    let last = &seen.last().unwrap().2["status"];
    assert_eq!(seen.len(), 1);
    assert_eq!(last["results"][0]["outcome"], "NoChange");
    assert_eq!(last["pendingOrders"], 0);
}

#[tokio::test]
async fn a_failed_write_backs_off_and_is_retried() {
    let (client, mut handle) = mock_client();
    let engine = FakeEngine::new();
    let fx = fixture(None);
    let mut w = worker(client, fx.stores, engine);
    let token = CancellationToken::new();
    let verifier = tokio::spawn(async move {
        let (_, _, _, send) = next(&mut handle).await;
        respond(
            send,
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"kind": "Status", "code": 500, "message": "etcd down", "status": "Failure", "reason": "InternalError"}),
        );
        handle
    });
    let first = w.cycle(&token).await;
    assert!(first.write_error.is_some());
    let mut handle = verifier.await.unwrap();
    // Within the backoff window the cycle scans but does not write.
    let during = w.cycle(&token).await;
    assert_eq!(during.write, None);
    assert!(w.retry_at().is_some());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let verifier = tokio::spawn(async move {
        let (method, _, body, send) = next(&mut handle).await;
        assert_eq!(method, Method::PATCH);
        respond(send, StatusCode::OK, report_json(body["status"].clone()));
    });
    let retried = w.cycle(&token).await;
    assert_eq!(retried.write, Some(WriteDecision::FirstWrite));
    assert!(retried.write_error.is_none());
    verifier.await.unwrap();
    assert!(w.retry_at().is_none());
}

#[tokio::test]
async fn the_report_is_created_when_the_node_appears() {
    let (client, mut handle) = mock_client();
    let engine = FakeEngine::new();
    let fx = fixture(None);
    let (nodes, mut nodes_w) = reflector::store::<Node>();
    let stores = Stores { nodes, ..fx.stores };
    let mut w = worker(client, stores, engine);
    let token = CancellationToken::new();
    let waiting = w.cycle(&token).await;
    assert!(
        waiting
            .write_error
            .unwrap()
            .contains("waiting for the Node")
    );
    assert!(
        w.retry_at().is_none(),
        "no backoff: the Node's event wakes the agent"
    );
    nodes_w.apply_watcher_event(&Event::Apply(Node {
        metadata: ObjectMeta {
            name: Some(NODE.into()),
            uid: Some("late-uid".into()),
            ..Default::default()
        },
        ..Default::default()
    }));
    let verifier = tokio::spawn(async move {
        let (method, _, _, send) = next(&mut handle).await;
        assert_eq!(
            method,
            Method::PATCH,
            "no request was made while the Node was unknown"
        );
        respond(send, StatusCode::NOT_FOUND, not_found());
        let (method, _, body, send) = next(&mut handle).await;
        assert_eq!(method, Method::POST);
        assert_eq!(body["metadata"]["ownerReferences"][0]["uid"], "late-uid");
        respond(send, StatusCode::CREATED, report_json(Value::Null));
        let (method, _, body, send) = next(&mut handle).await;
        assert_eq!(method, Method::PATCH);
        respond(send, StatusCode::OK, report_json(body["status"].clone()));
    });
    let created = w.cycle(&token).await;
    assert_eq!(created.write, Some(WriteDecision::FirstWrite));
    assert!(created.write_error.is_none(), "{:?}", created.write_error);
    verifier.await.unwrap();
}
