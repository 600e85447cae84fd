//! The kernel side of the kubelet emulation, on a cluster-in-a-box: a pod gets a namespace
//! wired to its node ([`Cluster::add_pod`]); a restarted CNI agent re-programs its node's
//! overlay entries from the current peers ([`Cluster::program_peers`]); a deleted pod's
//! namespace goes.

use super::kubelet::Dataplane;
use crate::cluster::{Cluster, PodOptions, PodStyle};
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

    fn pod_ips(&self, namespace: &str, name: &str) -> Option<Vec<String>> {
        self.with(|c| {
            Ok(c.pods()
                .iter()
                .find(|p| p.namespace == namespace && p.name == name)
                .map(|p| p.ips().iter().map(ToString::to_string).collect()))
        })
        .ok()
        .flatten()
    }

    fn start_pod(
        &self,
        node: &str,
        namespace: &str,
        name: &str,
        style: &str,
        app: &str,
    ) -> Result<Vec<String>, String> {
        let style: PodStyle = style
            .parse()
            .map_err(|e| format!("{namespace}/{name}: {e}"))?;
        self.with(|c| {
            let mut opts = PodOptions::new(style).named(name);
            opts.namespace = namespace.to_string();
            opts.app = app.to_string();
            let pod = c
                .add_pod(node, opts)
                .map_err(|e| format!("start pod {namespace}/{name} on {node}: {e}"))?;
            Ok(pod.ips().iter().map(ToString::to_string).collect())
        })
    }

    fn pod_gone(&self, namespace: &str, name: &str) -> Result<(), String> {
        self.with(|c| {
            let netns = c
                .pods()
                .iter()
                .find(|p| p.namespace == namespace && p.name == name)
                .map(|p| p.netns.name().to_string());
            match netns {
                Some(netns) => c
                    .remove_pod(&netns)
                    .map_err(|e| format!("remove pod {netns}: {e}")),
                None => Ok(()),
            }
        })
    }
}
