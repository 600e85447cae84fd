//! The part of the kubelet and of the DaemonSet/ReplicaSet controllers that netheal's cluster
//! actions rely on, played honestly and minimally (there is no kubelet in a cluster-in-a-box):
//!
//! - **DaemonSet `canal`**: every registered node has one CNI agent pod
//!   (`kube-system/canal-<node>-<generation>`, label `k8s-app=canal`). When it is deleted
//!   (`RestartCniPod`), a new one is created with the next generation, the node's overlay
//!   entries are re-programmed from the current peers (what canal does when it starts), and the
//!   pod turns Ready [`AGENT_READY_DELAY`] later.
//! - **ReplicaSet**: a controller-owned workload pod that is evicted or deleted (`RecreatePod`)
//!   is replaced by a new pod on the same node with a fresh IP. Bare pods are not replaced.
//! - **Graceful deletion**: a pod marked for deletion is removed (grace period 0).
//!
//! Nothing else: no scheduling, no probes, no image pulls.

use super::api;
use super::objects;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, DeleteParams};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the emulation looks at the pods.
pub const TICK: Duration = Duration::from_millis(200);
/// How long a new CNI agent pod stays not Ready.
pub const AGENT_READY_DELAY: Duration = Duration::from_millis(300);

/// A replacement pod made by the dataplane for an evicted one.
#[derive(Debug, Clone, PartialEq)]
pub struct Replacement {
    /// Its object (status is written separately, as the kubelet does).
    pub pod: Pod,
    /// Its object name.
    pub name: String,
    /// Its address.
    pub ip: String,
    /// Its node's address.
    pub host_ip: String,
}

/// The kernel side of what the emulated controllers do.
pub trait Dataplane: Send + Sync + 'static {
    /// The CNI agent on `node` restarted: re-program that node's overlay entries.
    fn cni_restarted(&self, node: &str) -> Result<(), String>;
    /// Workload pod `namespace/name` is gone: remove its namespace and make a replacement
    /// (fresh IP). `None` when the pod is not one the dataplane knows.
    fn pod_gone(&self, namespace: &str, name: &str) -> Result<Option<Replacement>, String>;
}

/// What the emulation did, for assertions and the demo's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeletEvent {
    /// A CNI agent pod was created (`restart`: it replaced a deleted one and the overlay was
    /// re-programmed).
    AgentPod {
        /// Node.
        node: String,
        /// The new pod's name.
        pod: String,
        /// True for a replacement.
        restart: bool,
    },
    /// A controller-owned pod was replaced.
    PodReplaced {
        /// `namespace/name` of the pod that went.
        old: String,
        /// The replacement's name.
        new: String,
        /// The replacement's IP.
        ip: String,
    },
    /// Something failed (also logged).
    Error(String),
}

/// State shared between the emulation task and the harness.
#[derive(Debug, Default)]
pub struct KubeletState {
    /// Nodes that run the DaemonSet: name → InternalIP.
    nodes: BTreeMap<String, String>,
    /// Next agent pod generation per node.
    generations: BTreeMap<String, u32>,
    /// Controller-owned workload pods the ReplicaSet emulation keeps alive: `(namespace, name)`.
    workloads: BTreeSet<(String, String)>,
    /// What happened, oldest first.
    events: Vec<KubeletEvent>,
}

/// A handle to the emulation.
#[derive(Debug, Clone, Default)]
pub struct Kubelet {
    state: Arc<Mutex<KubeletState>>,
}

impl Kubelet {
    fn with<T>(&self, f: impl FnOnce(&mut KubeletState) -> T) -> T {
        let mut guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }

    /// Run the CNI agent DaemonSet on `node` (address `host_ip`).
    pub fn add_node(&self, node: &str, host_ip: &str) {
        self.with(|s| {
            s.nodes.insert(node.to_string(), host_ip.to_string());
        });
    }

    /// Stop running anything for `node`.
    pub fn remove_node(&self, node: &str) {
        self.with(|s| {
            s.nodes.remove(node);
        });
    }

    /// Keep controller-owned pod `namespace/name` alive.
    pub fn manage_workload(&self, namespace: &str, name: &str) {
        self.with(|s| {
            s.workloads
                .insert((namespace.to_string(), name.to_string()));
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

    async fn tick(&self, client: &Client, dataplane: &Arc<dyn Dataplane>) -> Result<(), String> {
        // Snapshot what to keep alive before listing, so an object registered meanwhile is
        // never taken for one that went away.
        let nodes = self.with(|s| s.nodes.clone());
        let workloads = self.with(|s| s.workloads.clone());
        let pods = api::pods(client).await.map_err(|e| e.to_string())?;
        for pod in pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_some())
        {
            finalize_deletion(client, pod).await?;
        }
        let alive: Vec<&Pod> = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        for (node, host_ip) in nodes {
            if !alive.iter().any(|p| is_agent_on(p, &node)) {
                self.start_agent(client, dataplane, &node, &host_ip).await?;
            }
        }
        for (namespace, name) in workloads {
            let present = alive.iter().any(|p| {
                p.metadata.namespace.as_deref() == Some(namespace.as_str())
                    && p.metadata.name.as_deref() == Some(name.as_str())
            });
            if !present {
                self.replace_workload(client, dataplane, &namespace, &name)
                    .await?;
            }
        }
        Ok(())
    }

    async fn start_agent(
        &self,
        client: &Client,
        dataplane: &Arc<dyn Dataplane>,
        node: &str,
        host_ip: &str,
    ) -> Result<(), String> {
        let generation = self.with(|s| {
            let g = s.generations.entry(node.to_string()).or_insert(0);
            let current = *g;
            *g += 1;
            current
        });
        let restart = generation > 0;
        let ip: std::net::Ipv4Addr = host_ip
            .parse()
            .map_err(|e| format!("address {host_ip:?} of {node}: {e}"))?;
        let pod = objects::agent_pod(node, ip, generation);
        let name = objects::agent_pod_name(node, generation);
        api::create_pod(client, &pod, None)
            .await
            .map_err(|e| e.to_string())?;
        if restart {
            let dp = Arc::clone(dataplane);
            let node_name = node.to_string();
            tokio::task::spawn_blocking(move || dp.cni_restarted(&node_name))
                .await
                .map_err(|e| e.to_string())??;
        }
        tokio::time::sleep(AGENT_READY_DELAY).await;
        api::set_pod_status(
            client,
            objects::AGENT_NAMESPACE,
            &name,
            objects::running_status(host_ip, host_ip),
        )
        .await
        .map_err(|e| e.to_string())?;
        self.record(KubeletEvent::AgentPod {
            node: node.to_string(),
            pod: name,
            restart,
        });
        Ok(())
    }

    async fn replace_workload(
        &self,
        client: &Client,
        dataplane: &Arc<dyn Dataplane>,
        namespace: &str,
        name: &str,
    ) -> Result<(), String> {
        self.with(|s| {
            s.workloads
                .remove(&(namespace.to_string(), name.to_string()));
        });
        let dp = Arc::clone(dataplane);
        let (ns, n) = (namespace.to_string(), name.to_string());
        let replacement = tokio::task::spawn_blocking(move || dp.pod_gone(&ns, &n))
            .await
            .map_err(|e| e.to_string())??;
        let Some(rep) = replacement else {
            return Ok(());
        };
        api::create_pod(
            client,
            &rep.pod,
            Some(objects::running_status(&rep.ip, &rep.host_ip)),
        )
        .await
        .map_err(|e| e.to_string())?;
        self.manage_workload(namespace, &rep.name);
        self.record(KubeletEvent::PodReplaced {
            old: format!("{namespace}/{name}"),
            new: rep.name,
            ip: rep.ip,
        });
        Ok(())
    }
}

/// True for the CNI agent pod of `node`.
pub fn is_agent_on(pod: &Pod, node: &str) -> bool {
    pod.metadata.namespace.as_deref() == Some(objects::AGENT_NAMESPACE)
        && pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node)
        && pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(objects::AGENT_LABEL.0))
            .is_some_and(|v| v == objects::AGENT_LABEL.1)
}

async fn finalize_deletion(client: &Client, pod: &Pod) -> Result<(), String> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    match api
        .delete(&name, &DeleteParams::default().grace_period(0))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(format!("finalize deletion of {namespace}/{name}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_pods_are_recognised_by_namespace_label_and_node() {
        let pod = objects::agent_pod("node1", std::net::Ipv4Addr::new(172, 31, 9, 1), 0);
        assert!(is_agent_on(&pod, "node1"));
        assert!(!is_agent_on(&pod, "node2"));
        let mut other = pod.clone();
        other.metadata.namespace = Some("default".into());
        assert!(!is_agent_on(&other, "node1"));
    }

    #[test]
    fn restarts_are_counted_per_node() {
        let k = Kubelet::default();
        k.record(KubeletEvent::AgentPod {
            node: "node1".into(),
            pod: "canal-node1-0".into(),
            restart: false,
        });
        k.record(KubeletEvent::AgentPod {
            node: "node1".into(),
            pod: "canal-node1-1".into(),
            restart: true,
        });
        assert_eq!(k.cni_restarts("node1"), 1);
        assert_eq!(k.cni_restarts("node2"), 0);
    }
}
