//! The kernel side of the kubelet emulation, on a cluster-in-a-box: a restarted CNI agent
//! re-programs its node's overlay entries from the current peers
//! ([`Cluster::program_peers`]); a replaced pod gets a new namespace with a fresh IP.

use super::kubelet::{Dataplane, Replacement};
use crate::cluster::{Cluster, PodOptions, PodOwner};
use std::sync::{Mutex, PoisonError, Weak};

/// [`Dataplane`] over a cluster owned by the harness (held weakly: the cluster goes when the
/// harness goes).
#[derive(Debug)]
pub struct ClusterDataplane {
    cluster: Weak<Mutex<Cluster>>,
}

impl ClusterDataplane {
    /// Act on `cluster`.
    pub fn new(cluster: &std::sync::Arc<Mutex<Cluster>>) -> Self {
        Self {
            cluster: std::sync::Arc::downgrade(cluster),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Cluster) -> Result<T, String>) -> Result<T, String> {
        let cluster = self
            .cluster
            .upgrade()
            .ok_or_else(|| "the cluster is gone".to_string())?;
        let mut guard = cluster.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }
}

impl Dataplane for ClusterDataplane {
    fn cni_restarted(&self, node: &str) -> Result<(), String> {
        self.with(|c| {
            c.program_peers(node)
                .map_err(|e| format!("re-program overlay on {node}: {e}"))
        })
    }

    fn pod_gone(&self, namespace: &str, name: &str) -> Result<Option<Replacement>, String> {
        self.with(|c| {
            let Some(pod) = c
                .pods()
                .iter()
                .find(|p| p.namespace == namespace && p.name == name)
            else {
                return Ok(None);
            };
            let PodOwner::ReplicaSet(owner) = pod.owner.clone() else {
                return Ok(None);
            };
            let (netns, node) = (pod.netns.name().to_string(), pod.node.clone());
            let opts = PodOptions {
                style: pod.style,
                name: None,
                namespace: pod.namespace.clone(),
                app: pod.app.clone(),
                owner: Some(PodOwner::ReplicaSet(owner.clone())),
                ip: None,
                host_route: true,
            };
            c.remove_pod(&netns)
                .map_err(|e| format!("remove pod {netns}: {e}"))?;
            let host_ip = c
                .node(&node)
                .map_err(|e| e.to_string())?
                .underlay_ip
                .to_string();
            let new = c
                .add_pod(&node, opts)
                .map_err(|e| format!("replace pod {namespace}/{name}: {e}"))?;
            let (new_name, ip) = (new.name.clone(), new.ip);
            let pod = super::pod_object_of(c, &new_name)
                .ok_or_else(|| format!("no object for the new pod {new_name}"))?;
            Ok(Some(Replacement {
                pod,
                name: new_name,
                ip: ip.to_string(),
                host_ip,
            }))
        })
    }
}
