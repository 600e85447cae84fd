//! What `netheal-cluster up` leaves behind for `down`: a JSON state file, and the removal of
//! every namespace of a cluster by name (also the leftovers of a killed run).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::plan::ClusterPlan;
use super::{Cluster, ClusterError, PodStyle};
use crate::netns::run;

/// Where state files live.
pub const STATE_DIR: &str = "/run/netheal-e2e";

/// A node as recorded in the state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// Node name.
    pub name: String,
    /// Its namespace.
    pub netns: String,
    /// Underlay address.
    pub underlay_ip: Ipv4Addr,
    /// Pod CIDR.
    pub pod_cidr: String,
    /// VTEP MAC (`flannel.1`'s, or `vxlan.calico`'s on a Calico cluster).
    pub vtep_mac: String,
    /// IPv6 pod range (dual-stack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_cidr6: Option<String>,
    /// Calico IPAM block (Calico cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calico_block: Option<String>,
}

/// A pod as recorded in the state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodState {
    /// Object name.
    pub name: String,
    /// Its namespace.
    pub netns: String,
    /// Node.
    pub node: String,
    /// Address.
    pub ip: Ipv4Addr,
    /// IPv6 address (dual-stack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ipv6Addr>,
    /// Wiring style.
    pub style: PodStyle,
}

/// The state of a running cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// Cluster name.
    pub name: String,
    /// Every namespace, pods first.
    pub namespaces: Vec<String>,
    /// Nodes.
    pub nodes: Vec<NodeState>,
    /// Pods.
    pub pods: Vec<PodState>,
    /// The kubeconfig of a control plane, when one serves the cluster.
    #[serde(default)]
    pub kubeconfig: Option<String>,
    /// The process that keeps the cluster up in the foreground, when one does.
    #[serde(default)]
    pub pid: Option<u32>,
}

impl ClusterState {
    /// The state of a cluster.
    pub fn of(cluster: &Cluster) -> Self {
        Self {
            name: cluster.name().to_string(),
            namespaces: cluster.namespaces(),
            nodes: cluster
                .nodes()
                .iter()
                .map(|n| NodeState {
                    name: n.name.clone(),
                    netns: n.netns.name().to_string(),
                    underlay_ip: n.underlay_ip,
                    pod_cidr: n.pod_cidr.clone(),
                    vtep_mac: n
                        .calico
                        .as_ref()
                        .map_or_else(|| n.vtep_mac.clone(), |c| c.vtep_mac.clone()),
                    pod_cidr6: n.v6.as_ref().map(|v6| v6.pod_cidr.clone()),
                    calico_block: n.calico.as_ref().map(|c| c.block.clone()),
                })
                .collect(),
            pods: cluster
                .pods()
                .iter()
                .map(|p| PodState {
                    name: p.name.clone(),
                    netns: p.netns.name().to_string(),
                    node: p.node.clone(),
                    ip: p.ip,
                    ip6: p.ip6,
                    style: p.style,
                })
                .collect(),
            kubeconfig: None,
            pid: None,
        }
    }

    /// Write the state as JSON to `path` (creating its directory).
    pub fn write(&self, path: &Path) -> Result<(), ClusterError> {
        let io = |what: String| move |source| ClusterError::Io { what, source };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
        }
        let text = serde_json::to_string_pretty(self).map_err(|source| ClusterError::State {
            path: path.display().to_string(),
            source,
        })?;
        std::fs::write(path, text).map_err(io(format!("write {}", path.display())))
    }

    /// Read a state file.
    pub fn read(path: &Path) -> Result<Self, ClusterError> {
        let text = std::fs::read_to_string(path).map_err(|source| ClusterError::Io {
            what: format!("read {}", path.display()),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ClusterError::State {
            path: path.display().to_string(),
            source,
        })
    }
}

/// The state file of cluster `name`: `/run/netheal-e2e/<name>.json`.
pub fn state_path(name: &str) -> PathBuf {
    Path::new(STATE_DIR).join(format!("{name}.json"))
}

/// The names in `ip netns list` output (`NAME` or `NAME (id: N)` per line).
pub fn parse_netns_list(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// The namespaces of cluster `name` among `names`: `nhc-<name>-*` and `cni-<name>-*`.
pub fn names_of_cluster(plan: &ClusterPlan, names: &[String]) -> Vec<String> {
    let (nodes, pods) = (plan.node_prefix(), plan.pod_prefix());
    names
        .iter()
        .filter(|n| n.starts_with(&nodes) || n.starts_with(&pods))
        .cloned()
        .collect()
}

/// The namespaces of cluster `name` that exist now.
pub fn list_cluster_namespaces(name: &str) -> Result<Vec<String>, ClusterError> {
    let plan = ClusterPlan::new(name)?;
    let out = run("ip", &["netns", "list"])?;
    Ok(names_of_cluster(
        &plan,
        &parse_netns_list(&String::from_utf8_lossy(&out.stdout)),
    ))
}

/// Remove every namespace of cluster `name` (pods first) and its state file: the leftovers of
/// a crashed or killed run. Returns the namespaces removed.
pub fn cleanup_stale(name: &str) -> Result<Vec<String>, ClusterError> {
    let mut names = list_cluster_namespaces(name)?;
    names.sort_by_key(|n| !n.starts_with("cni-"));
    for ns in &names {
        run("ip", &["netns", "del", ns])?;
    }
    let path = state_path(name);
    if path.exists() {
        std::fs::remove_file(&path).map_err(|source| ClusterError::Io {
            what: format!("remove {}", path.display()),
            source,
        })?;
    }
    if !names.is_empty() {
        tracing::info!(
            cluster = name,
            removed = names.len(),
            "removed stale namespaces"
        );
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netns_list_lines_with_and_without_ids() {
        let names = parse_netns_list("nhc-t1-node1 (id: 3)\ncni-t1-node1-0\n\n");
        assert_eq!(names, vec!["nhc-t1-node1", "cni-t1-node1-0"]);
    }

    #[test]
    fn only_this_clusters_names_are_selected() {
        let plan = ClusterPlan::new("t1").unwrap();
        let all: Vec<String> = [
            "nhc-t1-node1",
            "nhc-t1-net",
            "cni-t1-node1-0",
            "nhc-t10-node1",
            "cni-t10-node1-0",
            "cni-node1-0",
            "other",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            names_of_cluster(&plan, &all),
            vec!["nhc-t1-node1", "nhc-t1-net", "cni-t1-node1-0"]
        );
    }

    #[test]
    fn state_round_trips_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/x.json");
        let state = ClusterState {
            name: "x".into(),
            namespaces: vec!["nhc-x-net".into()],
            nodes: vec![],
            pods: vec![PodState {
                name: "p".into(),
                netns: "cni-x-node1-0".into(),
                node: "node1".into(),
                ip: Ipv4Addr::new(10, 244, 1, 2),
                ip6: Some("fd00:10:244:1::2".parse().unwrap()),
                style: PodStyle::Calico,
            }],
            kubeconfig: Some("/tmp/k".into()),
            pid: None,
        };
        state.write(&path).unwrap();
        assert_eq!(ClusterState::read(&path).unwrap(), state);
        std::fs::write(&path, "{").unwrap();
        assert!(
            ClusterState::read(&path)
                .unwrap_err()
                .to_string()
                .contains("x.json")
        );
    }
}
