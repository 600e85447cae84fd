//! The reflector stores, kept warm on every replica (the standby too, so that it can take
//! over at once). Each watch stream strips what the decisions never read (`managedFields`,
//! the last-applied annotation, Node status…) with `.modify()` before the store keeps it, and
//! bumps the [`Trigger`] only when something the decisions read has changed: a Node's
//! heartbeat or a pod's container restart does not cause a pass.

use crate::model::SlimPod;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use netheal_crds::{NetworkHealthPolicy, NodeNetworkReport};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use tokio::sync::watch;

/// The annotations a Node keeps in the store.
const NODE_ANNOTATION_PREFIX: &str = "netheal.io/";

/// The shortest time between two triggered reconciles: longer than the controller's debounce
/// (100 ms), so that churn cannot starve it, and short enough that a fault right after other
/// activity waits at most this long (a full pass over 5,000 nodes costs about 50 ms).
pub const TRIGGER_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// A counter bumped whenever a pass may decide something new; the controller reconciles on
/// every change (debounced).
#[derive(Clone)]
pub struct Trigger {
    tx: Arc<watch::Sender<u64>>,
}

impl Default for Trigger {
    fn default() -> Self {
        Self::new()
    }
}

impl Trigger {
    /// A new trigger.
    pub fn new() -> Self {
        Self {
            tx: Arc::new(watch::channel(0).0),
        }
    }

    /// Something changed.
    pub fn bump(&self) {
        self.tx.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// How many changes so far.
    pub fn epoch(&self) -> u64 {
        *self.tx.borrow()
    }

    /// A stream yielding once per change (changes in between are coalesced), at most once
    /// per [`TRIGGER_INTERVAL`]: the controller's debounce restarts on every request, so a
    /// steady stream of changes in a large cluster must not starve it.
    pub fn stream(&self) -> impl Stream<Item = ()> + Send + 'static {
        let rx = self.tx.subscribe();
        futures::stream::unfold((rx, false), |(mut rx, yielded)| async move {
            if yielded {
                tokio::time::sleep(TRIGGER_INTERVAL).await;
            }
            rx.changed().await.ok()?;
            Some(((), (rx, true)))
        })
    }
}

/// The four stores the decisions read.
#[derive(Clone)]
pub struct Stores {
    /// Policies (`managedFields` and the last-applied annotation stripped).
    pub policies: Store<NetworkHealthPolicy>,
    /// Reports (`managedFields` and annotations stripped).
    pub reports: Store<NodeNetworkReport>,
    /// Nodes: name, labels and `netheal.io/*` annotations only.
    pub nodes: Store<Node>,
    /// Pods, slim (see [`SlimPod`]).
    pub pods: Store<SlimPod>,
    /// Lets one task at a time into kube-runtime's readiness wait (see
    /// [`Stores::wait_until_ready`]).
    ready_gate: Arc<tokio::sync::Mutex<()>>,
}

impl Stores {
    /// The four stores.
    pub fn new(
        policies: Store<NetworkHealthPolicy>,
        reports: Store<NodeNetworkReport>,
        nodes: Store<Node>,
        pods: Store<SlimPod>,
    ) -> Self {
        Self {
            policies,
            reports,
            nodes,
            pods,
            ready_gate: Arc::default(),
        }
    }

    /// Wait until every store holds its first full list. Any number of tasks may wait:
    /// kube-runtime's `Store::wait_until_ready` wakes only the last task that polled it (its
    /// readiness is one oneshot receiver), so the waiters go through it one at a time; once
    /// the stores are ready it returns at once.
    pub async fn wait_until_ready(&self) -> Result<(), reflector::store::WriterDropped> {
        let _one_at_a_time = self.ready_gate.lock().await;
        self.policies.wait_until_ready().await?;
        self.reports.wait_until_ready().await?;
        self.nodes.wait_until_ready().await?;
        self.pods.wait_until_ready().await
    }
}

fn strip_meta(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

/// Strip a policy for the store.
pub fn strip_policy(policy: &mut NetworkHealthPolicy) {
    strip_meta(&mut policy.metadata);
}

/// Strip a report for the store: besides the metadata, the findings' prose (`message`) and
/// `firstSeen`, which the decisions never read.
pub fn strip_report(report: &mut NodeNetworkReport) {
    strip_meta(&mut report.metadata);
    report.metadata.annotations = None;
    if let Some(status) = report.status.as_mut() {
        for finding in &mut status.findings {
            finding.message = None;
            finding.first_seen = None;
        }
    }
}

/// Strip a Node to its name, uid, labels and `netheal.io/*` annotations.
pub fn strip_node(node: &mut Node) {
    strip_meta(&mut node.metadata);
    if let Some(annotations) = node.metadata.annotations.as_mut() {
        annotations.retain(|k, _| k.starts_with(NODE_ANNOTATION_PREFIX));
        if annotations.is_empty() {
            node.metadata.annotations = None;
        }
    }
    node.metadata.finalizers = None;
    node.metadata.resource_version = None;
    node.spec = None;
    node.status = None;
}

/// Strip a pod to what [`SlimPod`] keeps, and within that drop annotations, finalizers, the
/// resourceVersion (the watcher has read it already), every owner reference but the
/// controller's (kept as `Kind/name` in [`SlimPod::controller_ref`]), and the labels of pods in their own
/// network namespace: labels only select CNI agent pods, which run with hostNetwork.
pub fn strip_pod(pod: &mut SlimPod) {
    strip_meta(&mut pod.metadata);
    pod.metadata.annotations = None;
    pod.metadata.finalizers = None;
    pod.metadata.generate_name = None;
    pod.metadata.resource_version = None;
    pod.status.pod_ips.shrink_to_fit();
    if let Some(owners) = pod.metadata.owner_references.take() {
        pod.controller_ref = owners
            .into_iter()
            .find(|o| o.controller == Some(true))
            .map(|o| format!("{}/{}", o.kind, o.name).into_boxed_str());
    }
    if pod.spec.host_network != Some(true) {
        pod.metadata.labels = None;
    }
}

fn hash_of(value: &impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// What in a policy makes a pass decide differently: its spec (the generation) and name.
pub fn policy_fingerprint(p: &NetworkHealthPolicy) -> u64 {
    hash_of(&(
        p.metadata.generation,
        p.metadata.deletion_timestamp.is_some(),
    ))
}

/// What in a report makes a pass decide differently: orders, findings, answers.
pub fn report_fingerprint(r: &NodeNetworkReport) -> u64 {
    let orders: Vec<&str> = r.spec.remediations.iter().map(|o| o.id.as_str()).collect();
    let status = r.status.as_ref();
    let findings: Vec<(&str, Option<i64>)> = status
        .iter()
        .flat_map(|s| s.findings.iter())
        .map(|f| (f.id.as_str(), f.last_seen.as_ref().map(|t| t.0.as_second())))
        .collect();
    let results: Vec<&str> = status
        .iter()
        .flat_map(|s| s.results.iter())
        .map(|x| x.id.as_str())
        .collect();
    let scan = status
        .and_then(|s| s.last_scan_time.as_ref())
        .map(|t| t.0.as_second());
    hash_of(&(orders, findings, results, scan))
}

/// What in a Node makes a pass decide differently: labels and the pause annotation.
pub fn node_fingerprint(n: &Node) -> u64 {
    hash_of(&(&n.metadata.labels, &n.metadata.annotations))
}

/// What in a pod makes a pass decide differently: node, IPs, phase, readiness, deletion.
pub fn pod_fingerprint(p: &SlimPod) -> u64 {
    let ips = &p.status.pod_ips;
    hash_of(&(
        &p.spec,
        ips,
        &p.status.phase,
        p.is_ready(),
        p.metadata.deletion_timestamp.is_some(),
        &p.metadata.labels,
    ))
}

/// Run one reflector: watch, strip, store, and bump `trigger` when an object's fingerprint
/// changes or it goes away.
async fn reflect<K>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    strip: fn(&mut K),
    fingerprint: fn(&K) -> u64,
    trigger: Trigger,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let kind = K::kind(&()).to_string();
    // Per object (by a hash of its namespace and name: 16 bytes an entry, not a copy of the
    // name, for 150k pods), the fingerprint last seen.
    let mut seen: HashMap<u64, u64> = HashMap::new();
    let stream = watcher(api).default_backoff().modify(strip).reflect(writer);
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Apply(obj) | Event::InitApply(obj)) => {
                let key = key_of(&obj);
                let fp = fingerprint(&obj);
                if seen.insert(key, fp) != Some(fp) {
                    trigger.bump();
                }
            }
            Ok(Event::Delete(obj)) => {
                seen.remove(&key_of(&obj));
                trigger.bump();
            }
            Ok(Event::InitDone) => trigger.bump(),
            Ok(Event::Init) => {}
            Err(err) => tracing::warn!(kind, error = %err, "watch error; retrying with backoff"),
        }
    }
}

fn watcher<K>(api: Api<K>) -> impl Stream<Item = Result<Event<K>, watcher::Error>> + Send
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    watcher::watcher(api, watcher::Config::default().any_semantic())
}

fn key_of<K: Resource>(obj: &K) -> u64 {
    let meta = obj.meta();
    hash_of(&(meta.namespace.as_deref(), meta.name.as_deref()))
}

/// Start the four reflectors. Returns the stores and the future that drives them (run it for
/// the life of the process).
pub fn start(
    client: &Client,
    trigger: &Trigger,
) -> (Stores, impl Future<Output = ()> + Send + use<>) {
    let (policies, w_policies) = reflector::store();
    let (reports, w_reports) = reflector::store();
    let (nodes, w_nodes) = reflector::store();
    let (pods, w_pods) = reflector::store();
    let run = {
        let (client, trigger) = (client.clone(), trigger.clone());
        async move {
            tokio::join!(
                reflect(
                    Api::<NetworkHealthPolicy>::all(client.clone()),
                    w_policies,
                    strip_policy,
                    policy_fingerprint,
                    trigger.clone(),
                ),
                reflect(
                    Api::<NodeNetworkReport>::all(client.clone()),
                    w_reports,
                    strip_report,
                    report_fingerprint,
                    trigger.clone(),
                ),
                reflect(
                    Api::<Node>::all(client.clone()),
                    w_nodes,
                    strip_node,
                    node_fingerprint,
                    trigger.clone(),
                ),
                reflect(
                    Api::<SlimPod>::all(client),
                    w_pods,
                    strip_pod,
                    pod_fingerprint,
                    trigger,
                ),
            );
        }
    };
    (Stores::new(policies, reports, nodes, pods), run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeSpec, NodeStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
    use std::collections::BTreeMap;

    #[tokio::test]
    async fn every_waiter_is_woken_when_the_stores_are_ready() {
        let (policies, mut w_policies) = reflector::store();
        let (reports, mut w_reports) = reflector::store();
        let (nodes, mut w_nodes) = reflector::store();
        let (pods, mut w_pods) = reflector::store();
        let stores = Stores::new(policies, reports, nodes, pods);
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let stores = stores.clone();
                tokio::spawn(async move { stores.wait_until_ready().await })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        w_policies.apply_watcher_event(&watcher::Event::InitDone);
        w_reports.apply_watcher_event(&watcher::Event::InitDone);
        w_nodes.apply_watcher_event(&watcher::Event::InitDone);
        w_pods.apply_watcher_event(&watcher::Event::InitDone);
        for waiter in waiters {
            let woken = tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await;
            assert!(matches!(woken, Ok(Ok(Ok(())))), "a waiter was never woken");
        }
    }

    #[test]
    fn a_pod_from_the_api_keeps_only_what_decisions_read() {
        let json = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "web-1", "namespace": "default", "uid": "u1", "resourceVersion": "7",
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "labels": {"app": "web"},
                "annotations": {"big": "x"},
                "managedFields": [{"manager": "kubelet"}],
                "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "r", "controller": true},
                    {"apiVersion": "v1", "kind": "Other", "name": "o", "uid": "o"}
                ]
            },
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx", "env": [{"name": "A", "value": "B"}]}]},
            "status": {
                "phase": "Running",
                "podIPs": [{"ip": "10.244.1.5"}],
                "conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
                "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0, "image": "nginx", "imageID": ""}]
            }
        });
        let mut pod: SlimPod = serde_json::from_value(json).unwrap();
        strip_pod(&mut pod);
        assert!(pod.metadata.managed_fields.is_none());
        assert!(pod.metadata.annotations.is_none());
        assert!(pod.metadata.owner_references.is_none());
        assert_eq!(pod.controller_ref.as_deref(), Some("ReplicaSet/web"));
        assert!(pod.is_ready() && pod.is_running_pod_network());
        assert_eq!(pod.node(), Some("n1"));
        assert_eq!(
            pod.status.pod_ips,
            ["10.244.1.5".parse::<std::net::IpAddr>().unwrap()]
        );
        let back: SlimPod = serde_json::from_value(serde_json::to_value(&pod).unwrap()).unwrap();
        assert_eq!((&back.spec, &back.status), (&pod.spec, &pod.status));
        assert_eq!(pod.controller(), Some(("ReplicaSet", "web")));
        assert!(
            pod.metadata.labels.is_none(),
            "only hostNetwork pods keep labels"
        );
        assert!(pod.metadata.resource_version.is_none());
        let back = serde_json::to_value(&pod).unwrap();
        assert!(back["spec"].get("containers").is_none());
        assert!(back["status"].get("containerStatuses").is_none());
    }

    #[test]
    fn a_node_keeps_labels_and_netheal_annotations_only() {
        let mut node = Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                labels: Some(BTreeMap::from([("pool".into(), "edge".into())])),
                annotations: Some(BTreeMap::from([
                    ("netheal.io/paused".into(), "true".into()),
                    ("flannel.alpha.coreos.com/backend-data".into(), "{}".into()),
                ])),
                managed_fields: Some(vec![ManagedFieldsEntry::default()]),
                ..Default::default()
            },
            spec: Some(NodeSpec::default()),
            status: Some(NodeStatus::default()),
        };
        let before = node_fingerprint(&node);
        strip_node(&mut node);
        assert!(node.status.is_none() && node.spec.is_none());
        assert!(node.metadata.managed_fields.is_none());
        assert_eq!(node.metadata.annotations.as_ref().unwrap().len(), 1);
        let info = crate::model::NodeInfo::from_node(&node);
        assert!(info.paused);
        assert_eq!(info.labels["pool"], "edge");
        // A heartbeat (status only) leaves the fingerprint alone; a label change does not.
        let fp = node_fingerprint(&node);
        assert_ne!(before, fp);
        let mut beat = node.clone();
        beat.metadata.resource_version = Some("99".into());
        assert_eq!(node_fingerprint(&beat), fp);
        beat.metadata.labels = None;
        assert_ne!(node_fingerprint(&beat), fp);
    }

    #[test]
    fn a_policy_status_write_does_not_trigger_a_pass() {
        let mut p = NetworkHealthPolicy::new("p", Default::default());
        p.metadata.generation = Some(1);
        let fp = policy_fingerprint(&p);
        p.status = Some(Default::default());
        assert_eq!(policy_fingerprint(&p), fp);
        p.metadata.generation = Some(2);
        assert_ne!(policy_fingerprint(&p), fp);
    }

    #[tokio::test]
    async fn the_trigger_coalesces_changes() {
        let t = Trigger::new();
        let mut s = Box::pin(t.stream());
        t.bump();
        t.bump();
        assert_eq!(t.epoch(), 2);
        assert_eq!(s.next().await, Some(()));
        let next = tokio::time::timeout(std::time::Duration::from_millis(20), s.next()).await;
        assert!(next.is_err(), "two bumps before a poll yield once");
        // A change during the pause is delivered after it.
        t.bump();
        let next = tokio::time::timeout(TRIGGER_INTERVAL * 3, s.next()).await;
        assert_eq!(next, Ok(Some(())));
    }
}
