//! The slim objects the operator keeps in memory. A 5,000-node cluster has 150,000 pods, so
//! the pod store holds only what the decisions read: name, namespace, uid, labels, owner
//! references, creation time, node, host networking, phase, readiness and pod IPs. Unknown
//! fields are dropped while deserializing, and the watch stream strips the rest.

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::core::NamespaceResourceScope;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A Pod with only the fields netheal reads.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct SlimPod {
    /// Name, namespace, uid, labels, owner references, creation and deletion time.
    pub metadata: ObjectMeta,
    /// `spec.nodeName`, `spec.hostNetwork`.
    #[serde(default)]
    pub spec: SlimPodSpec,
    /// `status.phase`, `status.podIPs`, the `Ready` condition.
    #[serde(default)]
    pub status: SlimPodStatus,
    /// The controlling owner as `Kind/name`, moved here from `metadata.ownerReferences` by
    /// the watch stream's stripping: one small string instead of a list of references.
    #[serde(skip)]
    pub controller_ref: Option<Box<str>>,
}

/// The part of `PodSpec` netheal reads.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct SlimPodSpec {
    /// The node the pod runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// True for pods in the host's network namespace (they share the node's IP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_network: Option<bool>,
}

/// The part of `PodStatus` netheal reads, in compact form: the phase as an enum, the IPs
/// parsed, and only whether the `Ready` condition is `True`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SlimPodStatus {
    /// `Pending`, `Running`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<PodPhase>,
    /// `status.podIPs`; an address that does not parse is left out.
    #[serde(
        default,
        rename = "podIPs",
        deserialize_with = "ips::de",
        serialize_with = "ips::ser",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub pod_ips: Vec<IpAddr>,
    /// The `Ready` condition is `True` (read from, and written as, `status.conditions`).
    #[serde(
        default,
        rename = "conditions",
        deserialize_with = "ready::de",
        serialize_with = "ready::ser"
    )]
    pub ready: bool,
}

/// `status.phase`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PodPhase {
    /// Not running yet.
    Pending,
    /// Running.
    Running,
    /// Done.
    Succeeded,
    /// Failed.
    Failed,
    /// Anything else.
    #[serde(other)]
    Unknown,
}

mod ips {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::net::IpAddr;

    #[derive(Serialize, Deserialize)]
    struct PodIp {
        #[serde(default)]
        ip: String,
    }

    pub fn de<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpAddr>, D::Error> {
        let raw = Option::<Vec<PodIp>>::deserialize(d)?.unwrap_or_default();
        Ok(raw.iter().filter_map(|p| p.ip.parse().ok()).collect())
    }

    pub fn ser<S: Serializer>(ips: &[IpAddr], s: S) -> Result<S::Ok, S::Error> {
        ips.iter()
            .map(|ip| PodIp { ip: ip.to_string() })
            .collect::<Vec<_>>()
            .serialize(s)
    }
}

mod ready {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Condition {
        #[serde(rename = "type", default)]
        type_: String,
        #[serde(default)]
        status: String,
    }

    pub fn de<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        let raw = Option::<Vec<Condition>>::deserialize(d)?.unwrap_or_default();
        Ok(raw.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    }

    pub fn ser<S: Serializer>(ready: &bool, s: S) -> Result<S::Ok, S::Error> {
        let status = if *ready { "True" } else { "False" };
        [Condition {
            type_: "Ready".into(),
            status: status.into(),
        }]
        .serialize(s)
    }
}

impl kube::Resource for SlimPod {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("Pod")
    }
    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("")
    }
    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("v1")
    }
    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("pods")
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl SlimPod {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!(
            "{}/{}",
            self.metadata.namespace.as_deref().unwrap_or_default(),
            self.metadata.name.as_deref().unwrap_or_default()
        )
    }

    /// The node the pod is scheduled on.
    pub fn node(&self) -> Option<&str> {
        self.spec.node_name.as_deref()
    }

    /// True when the pod's `Ready` condition is `True`.
    pub fn is_ready(&self) -> bool {
        self.status.ready
    }

    /// True for a running pod with its own network namespace that is not being deleted.
    pub fn is_running_pod_network(&self) -> bool {
        self.status.phase == Some(PodPhase::Running)
            && self.spec.host_network != Some(true)
            && self.metadata.deletion_timestamp.is_none()
    }

    /// The kind and name of the controller that owns the pod, when there is one.
    pub fn controller(&self) -> Option<(&str, &str)> {
        if let Some(owner) = &self.controller_ref {
            return owner.split_once('/');
        }
        self.metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| (o.kind.as_str(), o.name.as_str()))
    }

    /// The creation time (the epoch when absent, so that unknown sorts first).
    pub fn created(&self) -> Timestamp {
        self.metadata
            .creation_timestamp
            .as_ref()
            .map_or(Timestamp::UNIX_EPOCH, |t| t.0)
    }

    /// True when every label of `selector` is on the pod.
    pub fn has_labels(&self, selector: &BTreeMap<String, String>) -> bool {
        let labels = self.metadata.labels.as_ref();
        selector
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
    }
}

/// What the decisions need to know about a Node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node's name.
    pub name: String,
    /// Its labels (policies select nodes by label).
    pub labels: BTreeMap<String, String>,
    /// `netheal.io/paused: "true"`.
    pub paused: bool,
    /// Which reading of the Node this is: a number [`NodeInfos`] gives each info it reads, never
    /// twice in a process (0: read elsewhere). Two infos of the same non-zero version are equal.
    pub version: u64,
}

impl NodeInfo {
    /// Whether `self` and `other` are the same: by version when both come from [`NodeInfos`]
    /// (no label compared), else field by field.
    pub fn same_as(&self, other: &NodeInfo) -> bool {
        if self.version != 0 && other.version != 0 {
            self.version == other.version
        } else {
            self.name == other.name && self.labels == other.labels && self.paused == other.paused
        }
    }
}

impl NodeInfo {
    /// Read a Node object.
    pub fn from_node(node: &Node) -> Self {
        let paused = node
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(netheal_crds::PAUSED_ANNOTATION))
            .is_some_and(|v| v == "true");
        Self {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            paused,
            version: 0,
        }
    }
}

/// The next [`NodeInfo::version`] (process-wide, from 1).
static NEXT_VERSION: AtomicU64 = AtomicU64::new(1);

/// The [`NodeInfo`] of every Node in the store, kept between passes: a Node object the store
/// still holds at the same place (the same `Arc`: the store replaces it on every change) is not
/// read again, and keeps its version.
#[derive(Default)]
pub struct NodeInfos {
    read_from: Vec<Arc<Node>>,
    infos: Vec<NodeInfo>,
}

impl NodeInfos {
    /// The infos of `nodes` (the store's list), in its order.
    pub fn read(&mut self, nodes: Vec<Arc<Node>>) -> &[NodeInfo] {
        let unchanged = |i: usize, node: &Arc<Node>| {
            self.read_from
                .get(i)
                .is_some_and(|old| Arc::ptr_eq(old, node))
        };
        let infos: Vec<NodeInfo> = nodes
            .iter()
            .enumerate()
            .map(|(i, node)| match self.infos.get_mut(i) {
                Some(info) if unchanged(i, node) => std::mem::take(info),
                _ => NodeInfo {
                    version: NEXT_VERSION.fetch_add(1, Ordering::Relaxed),
                    ..NodeInfo::from_node(node)
                },
            })
            .collect();
        self.infos = infos;
        self.read_from = nodes;
        &self.infos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, zone: &str) -> Arc<Node> {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        n.metadata.labels = Some(BTreeMap::from([("zone".to_string(), zone.to_string())]));
        Arc::new(n)
    }

    #[test]
    fn node_infos_follow_every_change_of_the_store() {
        let mut infos = NodeInfos::default();
        let (a, b) = (node("a", "1"), node("b", "1"));
        let read = |infos: &mut NodeInfos, nodes: &[Arc<Node>]| infos.read(nodes.to_vec()).to_vec();
        // What the store says now, and the version each info carries.
        let check = |got: &[NodeInfo], nodes: &[Arc<Node>]| -> Vec<u64> {
            assert_eq!(got.len(), nodes.len());
            for (info, node) in got.iter().zip(nodes) {
                let fresh = NodeInfo::from_node(node);
                assert!(info.same_as(&fresh), "{info:?} against {fresh:?}");
                assert_eq!((&info.name, &info.labels), (&fresh.name, &fresh.labels));
                assert_ne!(info.version, 0);
            }
            got.iter().map(|i| i.version).collect()
        };
        let list = [a.clone(), b.clone()];
        let first = check(&read(&mut infos, &list), &list);
        assert_ne!(first[0], first[1]);
        assert_eq!(check(&read(&mut infos, &list), &list), first, "kept");
        // b relabelled (a new object): read again, under a new version.
        let list = [a.clone(), node("b", "2")];
        let relabelled = check(&read(&mut infos, &list), &list);
        assert_eq!(relabelled[0], first[0]);
        assert!(!first.contains(&relabelled[1]));
        assert_eq!(infos.infos[1].labels["zone"], "2");
        // The order changes, then a node goes.
        let list = [list[1].clone(), a.clone()];
        check(&read(&mut infos, &list), &list);
        let list = [a.clone()];
        check(&read(&mut infos, &list), &list);
        assert!(read(&mut infos, &[]).is_empty());
    }

    #[test]
    fn infos_of_one_version_are_the_same_and_others_compare_by_field() {
        let info = NodeInfo::from_node(&node("a", "1"));
        let relabelled = NodeInfo::from_node(&node("a", "2"));
        assert!(info.same_as(&info.clone()));
        assert!(!info.same_as(&relabelled));
        let v = |info: &NodeInfo, version| NodeInfo {
            version,
            ..info.clone()
        };
        assert!(v(&info, 7).same_as(&v(&info, 7)));
        assert!(!v(&info, 7).same_as(&v(&info, 8)));
        assert!(v(&info, 7).same_as(&info), "version 0 compares by field");
        assert!(!v(&relabelled, 7).same_as(&info));
    }
}
