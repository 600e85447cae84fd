//! The API calls one pass makes, asserted request by request against a mock API server
//! (`tower_test::mock`, the ApiServerVerifier pattern of kube-rs `controller-rs`): method,
//! path and body of every write, and no write at all when nothing changed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::{Request, Response, StatusCode};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::client::Body;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher::Event;
use netheal_crds::{
    Action, Check, Finding, Mode, NetworkHealthPolicy, NetworkHealthPolicySpec, NodeNetworkReport,
    NodeNetworkReportStatus, Outcome, RemediationResult, finding_id,
};
use netheal_operator::context::Context;
use netheal_operator::metrics::Metrics;
use netheal_operator::model::{PodPhase, SlimPod, SlimPodSpec, SlimPodStatus};
use netheal_operator::reconcile::{PassReport, run_pass};
use netheal_operator::watch::{Stores, Trigger};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tower_test::mock::{self, Handle};

type ApiHandle = Handle<Request<Body>, Response<Body>>;

struct Harness {
    ctx: Arc<Context>,
    handle: ApiHandle,
    policies: Writer<NetworkHealthPolicy>,
    reports: Writer<NodeNetworkReport>,
    nodes: Writer<Node>,
    pods: Writer<SlimPod>,
}

impl Harness {
    fn new() -> Self {
        Self::with(|ctx| ctx)
    }

    /// A harness whose context `configure` sets up (leadership, API timeout).
    fn with(configure: impl FnOnce(Context) -> Context) -> Self {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let (policies_r, policies) = reflector::store();
        let (reports_r, reports) = reflector::store();
        let (nodes_r, nodes) = reflector::store();
        let (pods_r, pods) = reflector::store();
        let stores = Stores::new(policies_r, reports_r, nodes_r, pods_r);
        let ctx = Arc::new(configure(Context::new(
            client,
            stores,
            Trigger::new(),
            Arc::new(Metrics::new()),
            Some("test".into()),
            Duration::from_secs(30),
        )));
        Self {
            ctx,
            handle,
            policies,
            reports,
            nodes,
            pods,
        }
    }

    fn policy(&mut self, p: NetworkHealthPolicy) {
        self.policies.apply_watcher_event(&Event::Apply(p));
    }
    fn report(&mut self, r: NodeNetworkReport) {
        self.reports.apply_watcher_event(&Event::Apply(r));
    }
    fn node(&mut self, name: &str) {
        let node = Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some(format!("uid-{name}")),
                ..Default::default()
            },
            ..Default::default()
        };
        self.nodes.apply_watcher_event(&Event::Apply(node));
    }
    fn pod(&mut self, p: SlimPod) {
        self.pods.apply_watcher_event(&Event::Apply(p));
    }

    /// Run one pass while `serve` answers the requests; return the pass's report.
    async fn pass<F, Fut>(self, serve: F) -> (Self, PassReport)
    where
        F: FnOnce(ApiHandle) -> Fut,
        Fut: Future<Output = ApiHandle> + Send + 'static,
    {
        let Harness {
            ctx,
            handle,
            policies,
            reports,
            nodes,
            pods,
        } = self;
        let server = tokio::spawn(serve(handle));
        let report = tokio::time::timeout(Duration::from_secs(10), run_pass(&ctx, true))
            .await
            .expect("the pass finished")
            .expect("the pass succeeded");
        let handle = tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the verifier finished")
            .expect("the verifier did not panic");
        (
            Harness {
                ctx,
                handle,
                policies,
                reports,
                nodes,
                pods,
            },
            report,
        )
    }
}

/// Take the next request, assert its method and path, return its JSON body and the responder.
async fn expect(
    handle: &mut ApiHandle,
    method: &str,
    path: &str,
) -> (Value, mock::SendResponse<Response<Body>>) {
    let (request, send) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
        .await
        .unwrap_or_else(|_| panic!("no request came; expected {method} {path}"))
        .expect("service not called");
    assert_eq!(request.method().as_str(), method, "method of {path}");
    assert_eq!(request.uri().to_string(), path);
    let bytes = request.into_body().collect_bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (body, send)
}

fn respond(send: mock::SendResponse<Response<Body>>, code: StatusCode, body: Value) {
    send.send_response(
        Response::builder()
            .status(code)
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap(),
    );
}

/// Answer a merge patch with the patched object (the body merged into `base`, roughly).
fn patched(mut base: Value, patch: &Value) -> Value {
    fn merge(a: &mut Value, b: &Value) {
        match (a, b) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in b {
                    if v.is_null() {
                        a.remove(k);
                    } else {
                        merge(a.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
            (a, Value::Object(_)) => {
                *a = json!({});
                merge(a, b);
            }
            (a, b) => *a = b.clone(),
        }
    }
    merge(&mut base, patch);
    base
}

fn enforce_policy(name: &str) -> NetworkHealthPolicy {
    let mut spec: NetworkHealthPolicySpec =
        serde_json::from_value(json!({"mode": "Enforce"})).unwrap();
    spec.checks.overlay.enabled = true;
    assert_eq!(spec.mode, Mode::Enforce);
    let mut p = NetworkHealthPolicy::new(name, spec);
    p.metadata.generation = Some(1);
    p.metadata.resource_version = Some("1".into());
    p.metadata.uid = Some(format!("uid-{name}"));
    p
}

fn arp_finding() -> Finding {
    let target = "net.ipv4.conf.all.arp_ignore";
    Finding {
        id: finding_id(Check::ArpIgnore, target),
        check: Check::ArpIgnore,
        target: target.into(),
        observed: "2".into(),
        desired: "0".into(),
        action: Some(Action::SetSysctl),
        details: netheal_crds::Details::from([
            ("netns".into(), String::new()),
            ("sysctl".into(), "net/ipv4/conf/all/arp_ignore".into()),
            ("value".into(), "0".into()),
        ]),
        policy: Some("p".into()),
        message: None,
        first_seen: None,
        last_seen: Some(Time(Timestamp::from_second(1_000).unwrap())),
    }
}

fn report_with(node: &str, findings: Vec<Finding>) -> NodeNetworkReport {
    let mut r = NodeNetworkReport::new(node, Default::default());
    r.metadata.resource_version = Some("10".into());
    r.status = Some(NodeNetworkReportStatus {
        last_scan_time: Some(Time(Timestamp::from_second(1_000).unwrap())),
        open_findings: findings.len() as u32,
        findings,
        ..Default::default()
    });
    r
}

const POLICY_STATUS: &str =
    "/apis/netheal.io/v1alpha1/networkhealthpolicies/p/status?&fieldManager=netheal-operator";
const REPORT_N1: &str =
    "/apis/netheal.io/v1alpha1/nodenetworkreports/n1?&fieldManager=netheal-operator";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/default/events?";

#[tokio::test]
async fn a_finding_becomes_an_order_and_the_status_says_so_then_nothing_is_rewritten() {
    let mut h = Harness::new();
    h.policy(enforce_policy("p"));
    h.node("n1");
    h.report(report_with("n1", vec![arp_finding()]));
    let policy_json = serde_json::to_value(enforce_policy("p")).unwrap();
    let report_json = serde_json::to_value(report_with("n1", vec![arp_finding()])).unwrap();

    let (h, pass) = h
        .pass(move |mut handle| async move {
            // 1. The policy status: one merge patch, with the finding and its disposition.
            let (body, send) = expect(&mut handle, "PATCH", POLICY_STATUS).await;
            let status = &body["status"];
            assert_eq!(status["observedGeneration"], 1);
            assert_eq!(status["summary"]["nodesSelected"], 1);
            assert_eq!(status["summary"]["nodesReporting"], 1);
            assert_eq!(status["summary"]["nodesHealthy"], 0);
            assert_eq!(status["summary"]["openFindings"], 1);
            let finding = &status["findings"][0];
            assert_eq!(finding["check"], "ArpIgnore");
            assert_eq!(finding["proposedAction"], "SetSysctl");
            let order_id = format!("{}-", arp_finding().id);
            assert!(
                finding["disposition"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("approved: order {order_id}"))
            );
            assert!(
                status["actions"].is_null(),
                "no action recorded yet: {status}"
            );
            let types: Vec<&str> = status["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["type"].as_str().unwrap())
                .collect();
            assert_eq!(types, ["Ready", "Degraded", "Flapping", "Paused"]);
            respond(send, StatusCode::OK, patched(policy_json, &body));

            // 2. The report: a merge patch of spec.remediations only.
            let (body, send) = expect(&mut handle, "PATCH", REPORT_N1).await;
            let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["spec"]);
            let spec_keys: Vec<&String> = body["spec"].as_object().unwrap().keys().collect();
            assert_eq!(spec_keys, ["remediations"]);
            let order = &body["spec"]["remediations"][0];
            assert_eq!(body["spec"]["remediations"].as_array().unwrap().len(), 1);
            assert!(order["id"].as_str().unwrap().starts_with(&order_id));
            assert_eq!(order["action"], "SetSysctl");
            assert_eq!(order["check"], "ArpIgnore");
            assert_eq!(order["findingId"], arp_finding().id);
            assert_eq!(order["policy"], "p");
            assert_eq!(order["dryRun"], false);
            assert_eq!(
                order["parameters"],
                json!({"netns": "", "sysctl": "net/ipv4/conf/all/arp_ignore", "value": "0"})
            );
            respond(send, StatusCode::OK, patched(report_json, &body));
            handle
        })
        .await;
    assert_eq!(pass.statuses_written, 1);
    assert_eq!(pass.orders_written, 1);

    // The next pass: the order is out, so the disposition changes once ("in flight"); the
    // report's orders are the same and are not written again.
    let written = Arc::new(std::sync::Mutex::new(Value::Null));
    let (mut h, pass) = {
        let written = written.clone();
        let policy_json = serde_json::to_value(enforce_policy("p")).unwrap();
        h.pass(move |mut handle| async move {
            let (body, send) = expect(&mut handle, "PATCH", POLICY_STATUS).await;
            let disposition = body["status"]["findings"][0]["disposition"]
                .as_str()
                .unwrap();
            assert!(disposition.starts_with("in flight: order"), "{disposition}");
            let object = patched(policy_json, &body);
            *written.lock().unwrap() = object.clone();
            respond(send, StatusCode::OK, object);
            handle
        })
        .await
    };
    assert_eq!(pass.statuses_written, 1);
    assert_eq!(pass.orders_written, 0);

    // The watch catches up with the write; nothing changed since: no request at all.
    let mut caught_up: NetworkHealthPolicy =
        serde_json::from_value(written.lock().unwrap().clone()).unwrap();
    caught_up.metadata.resource_version = Some("2".into());
    h.policy(caught_up);
    let (_h, pass) = h
        .pass(|mut handle| async move {
            let next =
                tokio::time::timeout(Duration::from_millis(300), handle.next_request()).await;
            assert!(next.is_err(), "no request expected");
            handle
        })
        .await;
    assert_eq!(pass, PassReport::default());
}

#[tokio::test]
async fn an_answered_order_is_recorded_with_events_then_leaves_the_spec() {
    let mut h = Harness::new();
    h.policy(enforce_policy("p"));
    h.node("n1");
    let finding = arp_finding();
    let mut report = report_with("n1", vec![]);
    let order = netheal_crds::RemediationOrder {
        id: format!("{}-900", finding.id),
        action: Action::SetSysctl,
        finding_id: finding.id.clone(),
        check: Check::ArpIgnore,
        target: finding.target.clone(),
        parameters: finding.details.to_map(),
        policy: "p".into(),
        dry_run: false,
        approved_at: Time(Timestamp::from_second(900).unwrap()),
    };
    report.spec.remediations = vec![order.clone()];
    report
        .status
        .as_mut()
        .unwrap()
        .results
        .push(RemediationResult {
            id: order.id.clone(),
            action: Action::SetSysctl,
            target: finding.target.clone(),
            outcome: Outcome::Applied,
            before: "2".into(),
            after: "0".into(),
            dry_run: false,
            time: Time(Timestamp::from_second(950).unwrap()),
            message: None,
        });
    h.report(report.clone());
    let policy_json = serde_json::to_value(enforce_policy("p")).unwrap();
    let report_json = serde_json::to_value(&report).unwrap();
    let order_id = order.id.clone();

    let (_h, pass) = h
        .pass(move |mut handle| async move {
            // Events on the Node and on the policy.
            for (kind, name) in [("Node", "n1"), ("NetworkHealthPolicy", "p")] {
                let (body, send) = expect(&mut handle, "POST", EVENTS).await;
                assert_eq!(body["reason"], "SetSysctl");
                assert_eq!(body["type"], "Normal");
                assert_eq!(body["reportingController"], "netheal.io/operator");
                assert_eq!(body["regarding"]["kind"], kind);
                assert_eq!(body["regarding"]["name"], name);
                respond(send, StatusCode::CREATED, body);
            }
            // The record in the policy status, before the order leaves the report.
            let (body, send) = expect(&mut handle, "PATCH", POLICY_STATUS).await;
            let actions = body["status"]["actions"].as_array().unwrap();
            assert_eq!(actions.len(), 1);
            assert_eq!(actions[0]["id"], order_id);
            assert_eq!(actions[0]["outcome"], "Applied");
            assert_eq!(actions[0]["before"], "2");
            assert_eq!(actions[0]["after"], "0");
            assert_eq!(actions[0]["node"], "n1");
            assert_eq!(actions[0]["check"], "ArpIgnore");
            assert_eq!(body["status"]["summary"]["actionsApplied"], 1);
            assert_eq!(body["status"]["summary"]["nodesHealthy"], 1);
            assert_eq!(body["status"]["findings"], Value::Null);
            respond(send, StatusCode::OK, patched(policy_json, &body));
            // The order leaves; the fix enters the node's durable history.
            let (body, send) = expect(&mut handle, "PATCH", REPORT_N1).await;
            assert_eq!(body["spec"]["remediations"], json!([]));
            assert_eq!(
                body["spec"]["history"],
                json!([{"findingId": finding.id, "action": "SetSysctl", "policy": "p",
                        "actions": [{"id": order_id, "time": "1970-01-01T00:15:50Z", "outcome": "Applied"}]}])
            );
            respond(send, StatusCode::OK, patched(report_json, &body));
            handle
        })
        .await;
    assert_eq!(pass.statuses_written, 1);
    assert_eq!(pass.orders_written, 1);
}

fn pod(ns: &str, name: &str, node: &str, ip: &str, created: i64, owned: bool) -> SlimPod {
    SlimPod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            uid: Some(format!("uid-{name}")),
            creation_timestamp: Some(Time(Timestamp::from_second(created).unwrap())),
            labels: Some(BTreeMap::from([("k8s-app".into(), "canal".into())])),
            owner_references: owned.then(|| {
                vec![OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "ReplicaSet".into(),
                    name: "rs".into(),
                    uid: "rs".into(),
                    controller: Some(true),
                    block_owner_deletion: None,
                }]
            }),
            ..Default::default()
        },
        spec: SlimPodSpec {
            node_name: Some(node.into()),
            host_network: None,
        },
        status: SlimPodStatus {
            phase: Some(PodPhase::Running),
            pod_ips: ip.parse().into_iter().collect(),
            ready: true,
        },
        controller_ref: None,
    }
}

async fn skip_events(handle: &mut ApiHandle, n: usize) {
    for _ in 0..n {
        let (body, send) = expect(handle, "POST", EVENTS).await;
        respond(send, StatusCode::CREATED, body);
    }
}

#[tokio::test]
async fn a_vtep_gap_deletes_the_cni_agent_pod_on_that_node_with_a_uid_precondition() {
    let mut h = Harness::new();
    h.policy(enforce_policy("p"));
    h.node("n1");
    let target = "neigh 10.244.3.0 dev flannel.1";
    let vtep = Finding {
        id: finding_id(Check::VtepMissing, target),
        check: Check::VtepMissing,
        target: target.into(),
        action: Some(Action::RestartCniPod),
        ..arp_finding()
    };
    h.report(report_with("n1", vec![vtep]));
    let mut agent = pod("kube-system", "canal-a", "n1", "172.18.0.2", 10, true);
    agent.spec.host_network = Some(true);
    // Only a DaemonSet's agent pod is ever deleted (the DaemonSet starts the replacement).
    if let Some(owners) = agent.metadata.owner_references.as_mut() {
        owners[0].kind = "DaemonSet".into();
        owners[0].name = "canal".into();
    }
    h.pod(agent);
    let policy_json = serde_json::to_value(enforce_policy("p")).unwrap();

    let (_h, pass) = h
        .pass(move |mut handle| async move {
            // Written ahead: the restart's cooldown holds even if this replica stops now.
            let (body, send) = expect(&mut handle, "PATCH", REPORT_N1).await;
            let ahead = &body["spec"]["history"][0];
            assert_eq!(ahead["action"], "RestartCniPod");
            assert_eq!(ahead["actions"][0]["outcome"], "Failed");
            assert!(body["spec"].get("remediations").is_none(), "{body}");
            let report_json = serde_json::to_value(report_with("n1", vec![])).unwrap();
            respond(send, StatusCode::OK, patched(report_json.clone(), &body));
            let (body, send) = expect(
                &mut handle,
                "DELETE",
                "/api/v1/namespaces/kube-system/pods/canal-a?",
            )
            .await;
            assert_eq!(body["preconditions"]["uid"], "uid-canal-a");
            respond(
                send,
                StatusCode::OK,
                serde_json::to_value(pod("kube-system", "canal-a", "n1", "", 10, true)).unwrap(),
            );
            skip_events(&mut handle, 2).await;
            let (body, send) = expect(&mut handle, "PATCH", POLICY_STATUS).await;
            let action = &body["status"]["actions"][0];
            assert_eq!(action["action"], "RestartCniPod");
            assert_eq!(action["outcome"], "Applied");
            assert_eq!(action["target"], target);
            assert_eq!(action["before"], "pod kube-system/canal-a uid uid-canal-a");
            respond(send, StatusCode::OK, patched(policy_json, &body));
            // Then the outcome replaces the provisional one.
            let (body, send) = expect(&mut handle, "PATCH", REPORT_N1).await;
            assert_eq!(
                body["spec"]["history"][0]["actions"][0]["outcome"],
                "Applied"
            );
            respond(send, StatusCode::OK, patched(report_json, &body));
            handle
        })
        .await;
    assert_eq!(pass.cluster_actions, 1);
    assert_eq!(pass.orders_written, 1);
}

#[tokio::test]
async fn a_duplicate_ip_is_fixed_through_the_eviction_api_and_a_pdb_refusal_is_recorded() {
    let mut h = Harness::new();
    h.policy(enforce_policy("p"));
    h.node("n1");
    h.report(report_with("n1", vec![]));
    h.pod(pod("default", "web-old", "n1", "10.244.1.5", 10, true));
    h.pod(pod("default", "web-new", "n1", "10.244.1.5", 20, true));
    h.pod(pod("default", "bare", "n1", "10.244.1.5", 30, false));
    let policy_json = serde_json::to_value(enforce_policy("p")).unwrap();

    let (_h, pass) = h
        .pass(move |mut handle| async move {
            let (body, send) = expect(&mut handle, "PATCH", REPORT_N1).await;
            assert_eq!(body["spec"]["history"][0]["action"], "RecreatePod");
            let report_json = serde_json::to_value(report_with("n1", vec![])).unwrap();
            respond(send, StatusCode::OK, patched(report_json, &body));
            let (body, send) = expect(
                &mut handle,
                "POST",
                "/api/v1/namespaces/default/pods/web-new/eviction?",
            )
            .await;
            assert_eq!(body["kind"], "Eviction");
            assert_eq!(body["metadata"]["name"], "web-new");
            assert_eq!(body["deleteOptions"]["preconditions"]["uid"], "uid-web-new");
            respond(
                send,
                StatusCode::TOO_MANY_REQUESTS,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                       "message": "Cannot evict pod as it would violate the pod's disruption budget.",
                       "reason": "TooManyRequests", "code": 429}),
            );
            // A failed action is a Warning.
            for _ in 0..2 {
                let (body, send) = expect(&mut handle, "POST", EVENTS).await;
                assert_eq!(body["type"], "Warning");
                assert_eq!(body["reason"], "RecreatePod");
                respond(send, StatusCode::CREATED, body);
            }
            let (body, send) = expect(&mut handle, "PATCH", POLICY_STATUS).await;
            let action = &body["status"]["actions"][0];
            assert_eq!(action["action"], "RecreatePod");
            assert_eq!(action["outcome"], "Failed");
            assert!(
                action["message"]
                    .as_str()
                    .unwrap()
                    .contains("PodDisruptionBudget")
            );
            assert_eq!(body["status"]["summary"]["actionsFailed"], 1);
            let disposition = body["status"]["findings"][0]["disposition"].as_str().unwrap();
            assert!(disposition.contains("keep default/web-old"), "{disposition}");
            assert!(disposition.contains("default/bare has no controller"), "{disposition}");
            respond(send, StatusCode::OK, patched(policy_json, &body));
            handle
        })
        .await;
    assert_eq!(pass.cluster_actions, 1, "the bare pod is never evicted");
}

#[tokio::test]
async fn dry_run_writes_the_proposal_and_no_order() {
    let mut h = Harness::new();
    let mut policy = enforce_policy("p");
    policy.spec.mode = Mode::DryRun;
    h.policy(policy.clone());
    h.node("n1");
    h.report(report_with("n1", vec![arp_finding()]));
    let policy_json = serde_json::to_value(policy).unwrap();
    let (_h, pass) = h
        .pass(move |mut handle| async move {
            let (body, send) = expect(&mut handle, "PATCH", POLICY_STATUS).await;
            let finding = &body["status"]["findings"][0];
            assert_eq!(finding["disposition"], "dry-run: would SetSysctl");
            assert_eq!(finding["proposedAction"], "SetSysctl");
            respond(send, StatusCode::OK, patched(policy_json, &body));
            let next =
                tokio::time::timeout(Duration::from_millis(300), handle.next_request()).await;
            assert!(next.is_err(), "no order is written in dry-run");
            handle
        })
        .await;
    assert_eq!(pass.orders_written, 0);
    assert_eq!(pass.statuses_written, 1);
}

/// A pass of a replica that lost the lease sends nothing (the leader check comes before every
/// write) and says why.
#[tokio::test]
async fn a_replica_that_no_longer_leads_writes_nothing() {
    let (leading_tx, leading) = tokio::sync::watch::channel(true);
    let mut h = Harness::with(|ctx| ctx.with_leadership(leading));
    h.policy(enforce_policy("p"));
    h.node("n1");
    h.report(report_with("n1", vec![arp_finding()]));
    leading_tx.send_replace(false);
    let Harness {
        ctx, mut handle, ..
    } = h;
    let result = tokio::time::timeout(Duration::from_secs(5), run_pass(&ctx, true))
        .await
        .expect("the pass finished");
    assert!(
        matches!(&result, Err(netheal_operator::reconcile::Error::NotLeader { what }) if what.contains("status of policy p")),
        "{result:?}"
    );
    let next = tokio::time::timeout(Duration::from_millis(300), handle.next_request()).await;
    assert!(next.is_err(), "no request may be sent");
}

/// An API call that never answers is cut off after the API timeout; the orders are not
/// written after a status write that failed.
#[tokio::test]
async fn an_api_call_without_an_answer_times_out_and_the_pass_stops_there() {
    let mut h = Harness::with(|ctx| ctx.with_api_timeout(Duration::from_millis(200)));
    h.policy(enforce_policy("p"));
    h.node("n1");
    h.report(report_with("n1", vec![arp_finding()]));
    let Harness {
        ctx, mut handle, ..
    } = h;
    let server = tokio::spawn(async move {
        // Take the status patch and never answer it.
        let (_body, send) = expect(&mut handle, "PATCH", POLICY_STATUS).await;
        let next = tokio::time::timeout(Duration::from_millis(500), handle.next_request()).await;
        assert!(next.is_err(), "nothing is written after the timeout");
        drop(send);
    });
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(5), run_pass(&ctx, true))
        .await
        .expect("the pass finished");
    assert!(
        matches!(&result, Err(netheal_operator::reconcile::Error::Timeout { after, .. }) if *after == Duration::from_millis(200)),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    server.await.expect("the verifier did not panic");
}
