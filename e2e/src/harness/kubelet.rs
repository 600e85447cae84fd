//! What only a kubelet does, played minimally for the cluster-in-a-box nodes (there is no
//! kubelet or container runtime here; the real controllers and scheduler do everything else):
//!
//! - **Run the pods bound to a node.** A pod the scheduler (or a template's `nodeName`) put on
//!   one of the harness's nodes is "started": a host-network pod gets the node's address; any
//!   other pod gets a pod network namespace wired to its node (style from the annotation
//!   [`POD_STYLE_ANNOTATION`], Calico by default) and that namespace's address. The kubelet's
//!   status (Running, Ready, pod and host IPs, a running container) is then written through
//!   `/status`. Containers are not run: the operator and the agents are processes the harness
//!   starts with tokens bound to these pods.
//! - **A CNI agent pod that starts on a node that had one before** (the DaemonSet recreated it
//!   after `RestartCniPod`) re-programs that node's overlay from the current peers, as canal
//!   does when it starts.
//! - **Finish graceful deletion.** A pod marked for deletion on one of these nodes has its
//!   namespace removed and is then deleted with grace period 0 (uid precondition).
//!
//! - **Heartbeats.** Each node's Lease in `kube-node-lease` is renewed every
//!   [`HEARTBEAT`], so the node lifecycle controller keeps the node Ready (and removes the
//!   `not-ready` taint a new node gets).
//!
//! Nothing else: no probes, no images, no restarts of failed containers, no resource limits.

use super::objects;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the emulation looks at the pods.
pub const TICK: Duration = Duration::from_millis(200);

/// How often a node's Lease is renewed (the kubelet's default).
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// The Lease duration a heartbeat announces (the kubelet's default).
pub const LEASE_SECONDS: i32 = 40;

pub use crate::cluster::objects::POD_STYLE_ANNOTATION;

/// The kernel side of a node's kubelet and CNI plugin.
pub trait Dataplane: Send + Sync + 'static {
    /// The CNI agent on `node` restarted: re-program that node's overlay entries.
    fn cni_restarted(&self, node: &str) -> Result<(), String>;
    /// The addresses of the pod network namespace of `namespace/name` (IPv4 first), if it has
    /// one.
    fn pod_ips(&self, namespace: &str, name: &str) -> Option<Vec<String>>;
    /// Make a pod network namespace for `namespace/name` on `node`; returns its addresses
    /// (IPv4 first; two on a dual-stack cluster).
    fn start_pod(
        &self,
        node: &str,
        namespace: &str,
        name: &str,
        style: &str,
        app: &str,
    ) -> Result<Vec<String>, String>;
    /// Remove the namespace of `namespace/name` (nothing when it has none).
    fn pod_gone(&self, namespace: &str, name: &str) -> Result<(), String>;
}

/// What the emulation did, for assertions and the demo's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeletEvent {
    /// A CNI agent pod started (`restart`: the node had one before and its overlay was
    /// re-programmed).
    AgentPod {
        /// Node.
        node: String,
        /// The pod's name.
        pod: String,
        /// True for a replacement.
        restart: bool,
    },
    /// A pod of a controller started in place of one of the same controller that went.
    PodReplaced {
        /// `namespace/name` of the pod that went.
        old: String,
        /// The replacement's name.
        new: String,
        /// The replacement's IP (the first of its IPs).
        ip: String,
    },
    /// A pod started (any other).
    PodStarted {
        /// `namespace/name`.
        pod: String,
        /// Its address.
        ip: String,
    },
    /// A pod's deletion was finished.
    PodDeleted {
        /// `namespace/name`.
        pod: String,
    },
    /// Something failed (also logged).
    Error(String),
}

/// State shared between the emulation task and the harness.
#[derive(Debug, Default)]
struct KubeletState {
    /// The nodes this emulation is the kubelet of: name → InternalIPs (IPv4 first).
    nodes: BTreeMap<String, Vec<String>>,
    /// CNI agent pods started per node.
    agents: BTreeMap<String, u32>,
    /// When each node's Lease was last renewed.
    heartbeats: BTreeMap<String, std::time::Instant>,
    /// Uids of the pods started, with `namespace/name`.
    running: BTreeMap<String, String>,
    /// Pods of a controller that went and were not replaced yet: controller uid → pod.
    gone: BTreeMap<String, Vec<String>>,
    /// What happened, oldest first.
    events: Vec<KubeletEvent>,
}

/// A handle to the emulation.
#[derive(Debug, Clone, Default)]
pub struct Kubelet {
    state: Arc<Mutex<KubeletState>>,
}

fn key(pod: &Pod) -> (String, String) {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

fn controller_uid(pod: &Pod) -> Option<String> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.clone())
}

impl Kubelet {
    fn with<T>(&self, f: impl FnOnce(&mut KubeletState) -> T) -> T {
        let mut guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }

    /// Be the kubelet of `node` (its InternalIPs `host_ips`, IPv4 first).
    pub fn add_node(&self, node: &str, host_ips: &[String]) {
        self.with(|s| {
            s.nodes.insert(node.to_string(), host_ips.to_vec());
        });
    }

    /// Stop being the kubelet of `node`.
    pub fn remove_node(&self, node: &str) {
        self.with(|s| {
            s.nodes.remove(node);
        });
    }

    /// Everything the emulation did so far.
    pub fn events(&self) -> Vec<KubeletEvent> {
        self.with(|s| s.events.clone())
    }

    /// How many times the CNI agent on `node` was restarted.
    pub fn cni_restarts(&self, node: &str) -> usize {
        self.with(|s| {
            s.events
                .iter()
                .filter(|e| matches!(e, KubeletEvent::AgentPod { node: n, restart: true, .. } if n == node))
                .count()
        })
    }

    fn record(&self, event: KubeletEvent) {
        if let KubeletEvent::Error(e) = &event {
            tracing::warn!(error = %e, "kubelet emulation");
        } else {
            tracing::info!(?event, "kubelet emulation");
        }
        self.with(|s| s.events.push(event));
    }

    /// Run the emulation until `cancel` fires.
    pub async fn run(
        self,
        client: Client,
        dataplane: Arc<dyn Dataplane>,
        cancel: CancellationToken,
    ) {
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(TICK) => {}
            }
            if let Err(e) = self.tick(&client, &dataplane).await {
                self.record(KubeletEvent::Error(e));
            }
        }
    }

    async fn heartbeat(
        &self,
        client: &Client,
        nodes: &BTreeMap<String, Vec<String>>,
    ) -> Result<(), String> {
        let due: Vec<String> = self.with(|s| {
            nodes
                .keys()
                .filter(|n| {
                    s.heartbeats
                        .get(*n)
                        .is_none_or(|t| t.elapsed() >= HEARTBEAT)
                })
                .cloned()
                .collect()
        });
        let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
        for node in due {
            let lease = serde_json::json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": node, "namespace": "kube-node-lease"},
                "spec": {
                    "holderIdentity": node,
                    "leaseDurationSeconds": LEASE_SECONDS,
                    "renewTime": MicroTime(k8s_openapi::jiff::Timestamp::now()),
                },
            });
            leases
                .patch(
                    &node,
                    &PatchParams::apply("netheal-e2e-kubelet").force(),
                    &Patch::Apply(&lease),
                )
                .await
                .map_err(|e| format!("heartbeat of {node}: {e}"))?;
            self.with(|s| s.heartbeats.insert(node, std::time::Instant::now()));
        }
        Ok(())
    }

    async fn tick(&self, client: &Client, dataplane: &Arc<dyn Dataplane>) -> Result<(), String> {
        let nodes = self.with(|s| s.nodes.clone());
        self.heartbeat(client, &nodes).await?;
        let pods = Api::<Pod>::all(client.clone())
            .list(&ListParams::default())
            .await
            .map_err(|e| format!("list pods: {e}"))?
            .items;
        let mine: Vec<&Pod> = pods
            .iter()
            .filter(|p| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .is_some_and(|n| nodes.contains_key(n))
            })
            .collect();
        // Pods that vanished without passing through graceful deletion here (deleted at once
        // by someone else): their namespaces go too.
        let present: BTreeSet<String> =
            pods.iter().filter_map(|p| p.metadata.uid.clone()).collect();
        let vanished: Vec<(String, String)> = self.with(|s| {
            let gone: Vec<String> = s
                .running
                .keys()
                .filter(|uid| !present.contains(*uid))
                .cloned()
                .collect();
            gone.into_iter()
                .filter_map(|uid| s.running.remove(&uid).map(|p| (uid, p)))
                .collect()
        });
        for (_, pod) in vanished {
            if let Some((ns, name)) = pod.split_once('/') {
                blocking_dp(dataplane, {
                    let (ns, name) = (ns.to_string(), name.to_string());
                    move |dp| dp.pod_gone(&ns, &name)
                })
                .await?;
            }
        }
        for pod in &mine {
            if pod.metadata.deletion_timestamp.is_some() {
                self.finish_deletion(client, dataplane, pod).await?;
            }
        }
        for pod in mine
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
        {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            if self.with(|s| s.running.contains_key(&uid)) {
                continue;
            }
            let node = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default();
            let host_ips = nodes.get(&node).cloned().unwrap_or_default();
            self.start(client, dataplane, pod, &node, &host_ips).await?;
        }
        Ok(())
    }

    async fn start(
        &self,
        client: &Client,
        dataplane: &Arc<dyn Dataplane>,
        pod: &Pod,
        node: &str,
        host_ips: &[String],
    ) -> Result<(), String> {
        let (namespace, name) = key(pod);
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let host_network = pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        let pod_ips = if host_network {
            if objects::is_cni_agent(pod) {
                let before = self.with(|s| s.agents.get(node).copied().unwrap_or(0));
                if before > 0 {
                    let n = node.to_string();
                    blocking_dp(dataplane, move |dp| dp.cni_restarted(&n)).await?;
                }
                self.with(|s| *s.agents.entry(node.to_string()).or_insert(0) += 1);
                self.record(KubeletEvent::AgentPod {
                    node: node.to_string(),
                    pod: name.clone(),
                    restart: before > 0,
                });
            }
            host_ips.to_vec()
        } else {
            let (ns, n) = (namespace.clone(), name.clone());
            match blocking_dp(dataplane, move |dp| Ok(dp.pod_ips(&ns, &n))).await? {
                Some(ips) => ips,
                None => {
                    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
                    let style = annotations
                        .get(POD_STYLE_ANNOTATION)
                        .cloned()
                        .unwrap_or_else(|| "calico".to_string());
                    let app = pod
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("app").cloned())
                        .unwrap_or_else(|| name.clone());
                    let (nd, ns, n) = (node.to_string(), namespace.clone(), name.clone());
                    let ips = blocking_dp(dataplane, move |dp| {
                        dp.start_pod(&nd, &ns, &n, &style, &app)
                    })
                    .await?;
                    let ip = ips.first().cloned().unwrap_or_default();
                    let replaced = controller_uid(pod).and_then(|owner| {
                        self.with(|s| {
                            let list = s.gone.get_mut(&owner)?;
                            let old = list.pop();
                            if list.is_empty() {
                                s.gone.remove(&owner);
                            }
                            old
                        })
                    });
                    self.record(match replaced {
                        Some(old) => KubeletEvent::PodReplaced {
                            old,
                            new: name.clone(),
                            ip: ip.clone(),
                        },
                        None => KubeletEvent::PodStarted {
                            pod: format!("{namespace}/{name}"),
                            ip: ip.clone(),
                        },
                    });
                    ips
                }
            }
        };
        let container = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first().cloned())
            .unwrap_or_default();
        let parse = |what: &str, ips: &[String]| {
            ips.iter()
                .map(|ip| {
                    ip.parse::<std::net::IpAddr>()
                        .map_err(|e| format!("{what} {ip:?} of {namespace}/{name}: {e}"))
                })
                .collect::<Result<Vec<_>, String>>()
        };
        let status = crate::cluster::objects::running_status(
            &container,
            &parse("host IP", host_ips)?,
            &parse("pod IP", &pod_ips)?,
            k8s_openapi::jiff::Timestamp::now(),
        );
        Api::<Pod>::namespaced(client.clone(), &namespace)
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({ "status": status })),
            )
            .await
            .map_err(|e| format!("status of {namespace}/{name}: {e}"))?;
        self.with(|s| s.running.insert(uid, format!("{namespace}/{name}")));
        Ok(())
    }

    async fn finish_deletion(
        &self,
        client: &Client,
        dataplane: &Arc<dyn Dataplane>,
        pod: &Pod,
    ) -> Result<(), String> {
        let (namespace, name) = key(pod);
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let (ns, n) = (namespace.clone(), name.clone());
        blocking_dp(dataplane, move |dp| dp.pod_gone(&ns, &n)).await?;
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match Api::<Pod>::namespaced(client.clone(), &namespace)
            .delete(&name, &params)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
            Err(e) => return Err(format!("finish deletion of {namespace}/{name}: {e}")),
        }
        let full = format!("{namespace}/{name}");
        self.with(|s| {
            s.running.remove(&uid);
            if let Some(owner) = controller_uid(pod) {
                s.gone.entry(owner).or_default().push(full.clone());
            }
        });
        self.record(KubeletEvent::PodDeleted { pod: full });
        Ok(())
    }
}

async fn blocking_dp<T: Send + 'static>(
    dataplane: &Arc<dyn Dataplane>,
    f: impl FnOnce(&dyn Dataplane) -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let dp = Arc::clone(dataplane);
    tokio::task::spawn_blocking(move || f(dp.as_ref()))
        .await
        .map_err(|e| e.to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_are_counted_per_node() {
        let k = Kubelet::default();
        k.record(KubeletEvent::AgentPod {
            node: "node1".into(),
            pod: "canal-abcde".into(),
            restart: false,
        });
        k.record(KubeletEvent::AgentPod {
            node: "node1".into(),
            pod: "canal-fghij".into(),
            restart: true,
        });
        assert_eq!(k.cni_restarts("node1"), 1);
        assert_eq!(k.cni_restarts("node2"), 0);
    }
}
