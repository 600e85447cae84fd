//! The Kubernetes objects that describe a cluster-in-a-box: Nodes with flannel annotations,
//! workload Pods, and one CNI agent pod (canal) per node. Pure builders over plain facts.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStatus, HostIP, Node, NodeAddress,
    NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo, Pod, PodCondition, PodIP, PodSpec,
    PodStatus,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;

use super::plan::fnv1a;
use super::{Cluster, ClusterNode, ClusterPod, NodeCalico, NodeV6, Overlay, PodOwner, PodStyle};

/// Annotation with flannel's backend data (`{"VNI":1,"VtepMAC":"…"}`).
pub const BACKEND_DATA: &str = "flannel.alpha.coreos.com/backend-data";
/// Annotation with flannel's public IP (the underlay address).
pub const PUBLIC_IP: &str = "flannel.alpha.coreos.com/public-ip";
/// Annotation with flannel's IPv6 backend data (dual-stack: `flannel-v6.1`'s VtepMAC).
pub const BACKEND_V6_DATA: &str = "flannel.alpha.coreos.com/backend-v6-data";
/// Annotation with flannel's IPv6 public IP (dual-stack: the IPv6 underlay address).
pub const PUBLIC_IPV6: &str = "flannel.alpha.coreos.com/public-ipv6";
/// Annotation with flannel's backend type.
pub const BACKEND_TYPE: &str = "flannel.alpha.coreos.com/backend-type";
/// The node pool label.
pub const POOL_LABEL: &str = "netheal.io/pool";
/// The kubelet version every node reports.
pub const KUBELET_VERSION: &str = "v1.33.0";
/// The CNI agent DaemonSet of a flannel cluster (in `kube-system`).
pub const CNI_DAEMONSET: &str = "canal";
/// The CNI agent DaemonSet of a Calico cluster (in `kube-system`).
pub const CALICO_DAEMONSET: &str = "calico-node";
/// Calico's annotation with a node's address and prefix.
pub const CALICO_IPV4_ADDRESS: &str = "projectcalico.org/IPv4Address";
/// Calico's annotation with a node's VXLAN tunnel address.
pub const CALICO_VXLAN_TUNNEL_ADDR: &str = "projectcalico.org/IPv4VXLANTunnelAddr";

/// The container (name, image) of a CNI agent's pods, by its DaemonSet's name.
pub fn agent_container(agent: &str) -> (&'static str, &'static str) {
    if agent == CALICO_DAEMONSET {
        ("calico-node", "docker.io/calico/node:v3.30.0")
    } else {
        ("kube-flannel", "docker.io/flannel/flannel:v0.26.0")
    }
}

/// The CNI agent DaemonSet (and `k8s-app` label) of a cluster's overlay.
pub fn cni_agent(overlay: Overlay) -> &'static str {
    match overlay {
        Overlay::Flannel => CNI_DAEMONSET,
        Overlay::CalicoVxlan => CALICO_DAEMONSET,
    }
}

/// What a Node object says about a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    /// Name.
    pub name: String,
    /// Pool label value.
    pub pool: String,
    /// Underlay address.
    pub underlay_ip: Ipv4Addr,
    /// Pod CIDR.
    pub pod_cidr: String,
    /// Current VTEP MAC.
    pub vtep_mac: String,
    /// The IPv6 side of a dual-stack node.
    pub v6: Option<NodeV6>,
    /// The Calico side of a node of a Calico cluster (then no flannel annotations).
    pub calico: Option<NodeCalico>,
    /// The underlay prefix length (Calico's `IPv4Address` annotation carries it).
    pub underlay_prefix_len: u8,
}

/// What a Pod object says about a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFacts {
    /// Object name.
    pub name: String,
    /// Kubernetes namespace.
    pub namespace: String,
    /// `app` label.
    pub app: String,
    /// Node name.
    pub node: String,
    /// Node underlay address (hostIP).
    pub host_ip: Ipv4Addr,
    /// Node IPv6 underlay address (second hostIP, dual-stack).
    pub host_ip6: Option<Ipv6Addr>,
    /// Pod address.
    pub ip: Ipv4Addr,
    /// Pod IPv6 address (second podIP, dual-stack).
    pub ip6: Option<Ipv6Addr>,
    /// Owner.
    pub owner: PodOwner,
    /// The pod's network namespace (annotation `netheal.io/netns`, for people reading the objects).
    pub netns: String,
    /// How it is wired (annotation [`POD_STYLE_ANNOTATION`]).
    pub style: PodStyle,
}

/// The annotation that says how a pod is wired (`calico` or `bridge`): the kubelet emulation
/// reads it to wire a pod a controller made from this one's template.
pub const POD_STYLE_ANNOTATION: &str = "netheal.io/pod-style";

/// A stable UUID-shaped uid derived from a string.
pub fn uid_of(seed: &str) -> String {
    let a = fnv1a(seed);
    let b = fnv1a(&format!("{seed}/uid"));
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        (b >> 48) & 0x0fff,
        b & 0xffff_ffff_ffff
    )
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

fn ready_node_condition(now: Timestamp) -> NodeCondition {
    NodeCondition {
        type_: "Ready".into(),
        status: "True".into(),
        reason: Some("KubeletReady".into()),
        message: Some("kubelet is posting ready status".into()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// What a node offers the scheduler (a cluster-in-a-box pod costs nothing, so generous).
fn node_resources() -> BTreeMap<String, Quantity> {
    [("cpu", "8"), ("memory", "16Gi"), ("pods", "110")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect()
}

/// The addresses of one thing, IPv4 first (the order `status.podIPs` and `hostIPs` keep).
pub fn dual(v4: Ipv4Addr, v6: Option<Ipv6Addr>) -> Vec<IpAddr> {
    let mut all = vec![IpAddr::V4(v4)];
    all.extend(v6.map(IpAddr::V6));
    all
}

/// The Node object of a node (dual-stack: both ranges in `spec.podCIDRs`, both InternalIPs,
/// flannel's `backend-v6-data` and `public-ipv6`).
pub fn node_object(facts: &NodeFacts, now: Timestamp) -> Node {
    let backend = serde_json::json!({"VNI": 1, "VtepMAC": facts.vtep_mac}).to_string();
    let mut annotations = match &facts.calico {
        Some(calico) => labels(&[
            (
                CALICO_IPV4_ADDRESS,
                &format!("{}/{}", facts.underlay_ip, facts.underlay_prefix_len),
            ),
            (CALICO_VXLAN_TUNNEL_ADDR, &calico.tunnel_ip.to_string()),
        ]),
        None => labels(&[
            (BACKEND_DATA, &backend),
            (BACKEND_TYPE, "vxlan"),
            (PUBLIC_IP, &facts.underlay_ip.to_string()),
        ]),
    };
    let mut pod_cidrs = vec![facts.pod_cidr.clone()];
    let mut addresses = vec![NodeAddress {
        type_: "InternalIP".into(),
        address: facts.underlay_ip.to_string(),
    }];
    if let Some(v6) = &facts.v6 {
        let backend6 = serde_json::json!({"VNI": 1, "VtepMAC": v6.vtep_mac}).to_string();
        annotations.insert(BACKEND_V6_DATA.into(), backend6);
        annotations.insert(PUBLIC_IPV6.into(), v6.underlay_ip.to_string());
        pod_cidrs.push(v6.pod_cidr.clone());
        addresses.push(NodeAddress {
            type_: "InternalIP".into(),
            address: v6.underlay_ip.to_string(),
        });
    }
    addresses.push(NodeAddress {
        type_: "Hostname".into(),
        address: facts.name.clone(),
    });
    Node {
        metadata: ObjectMeta {
            name: Some(facts.name.clone()),
            uid: Some(uid_of(&format!("node/{}", facts.name))),
            labels: Some(labels(&[
                ("kubernetes.io/hostname", &facts.name),
                ("kubernetes.io/os", "linux"),
                ("kubernetes.io/arch", "amd64"),
                (POOL_LABEL, &facts.pool),
            ])),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: Some(facts.pod_cidr.clone()),
            pod_cidrs: Some(pod_cidrs),
            ..NodeSpec::default()
        }),
        status: Some(NodeStatus {
            addresses: Some(addresses),
            conditions: Some(vec![ready_node_condition(now)]),
            capacity: Some(node_resources()),
            allocatable: Some(node_resources()),
            node_info: Some(NodeSystemInfo {
                architecture: "amd64".into(),
                boot_id: uid_of(&format!("boot/{}", facts.name)),
                container_runtime_version: "containerd://1.7.0".into(),
                kernel_version: "netns".into(),
                kube_proxy_version: KUBELET_VERSION.into(),
                kubelet_version: KUBELET_VERSION.into(),
                machine_id: uid_of(&format!("machine/{}", facts.name)).replace('-', ""),
                operating_system: "linux".into(),
                os_image: "netheal cluster-in-a-box".into(),
                system_uuid: uid_of(&format!("system/{}", facts.name)),
                swap: None,
            }),
            ..NodeStatus::default()
        }),
    }
}

fn owner_reference(kind: &str, api_version: &str, name: &str, namespace: &str) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: name.into(),
        uid: uid_of(&format!("{kind}/{namespace}/{name}")),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The status a kubelet writes once `container` runs: Running, Ready, the pod and host IPs
/// (`hostIP`/`podIP` the first of each, `hostIPs`/`podIPs` all, IPv4 first).
pub fn running_status(
    container: &Container,
    host_ips: &[IpAddr],
    pod_ips: &[IpAddr],
    now: Timestamp,
) -> PodStatus {
    let cond = |type_: &str| PodCondition {
        type_: type_.into(),
        status: "True".into(),
        last_transition_time: Some(Time(now)),
        ..PodCondition::default()
    };
    PodStatus {
        phase: Some("Running".into()),
        host_ip: host_ips.first().map(IpAddr::to_string),
        host_ips: Some(
            host_ips
                .iter()
                .map(|ip| HostIP { ip: ip.to_string() })
                .collect(),
        ),
        pod_ip: pod_ips.first().map(IpAddr::to_string),
        pod_ips: Some(
            pod_ips
                .iter()
                .map(|ip| PodIP { ip: ip.to_string() })
                .collect(),
        ),
        start_time: Some(Time(now)),
        container_statuses: Some(vec![ContainerStatus {
            name: container.name.clone(),
            image: container.image.clone().unwrap_or_default(),
            image_id: String::new(),
            ready: true,
            started: Some(true),
            restart_count: 0,
            state: Some(ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(Time(now)),
                }),
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        }]),
        conditions: Some(vec![
            cond("PodScheduled"),
            cond("Initialized"),
            cond("ContainersReady"),
            cond("Ready"),
        ]),
        ..PodStatus::default()
    }
}

/// The Pod object of a workload pod.
pub fn pod_object(facts: &PodFacts, now: Timestamp) -> Pod {
    let owner_references = match &facts.owner {
        PodOwner::ReplicaSet(rs) => Some(vec![owner_reference(
            "ReplicaSet",
            "apps/v1",
            rs,
            &facts.namespace,
        )]),
        PodOwner::Bare => None,
    };
    let container = Container {
        name: facts.app.clone(),
        image: Some("registry.k8s.io/pause:3.10".into()),
        ..Container::default()
    };
    Pod {
        metadata: ObjectMeta {
            name: Some(facts.name.clone()),
            namespace: Some(facts.namespace.clone()),
            uid: Some(uid_of(&format!("pod/{}/{}", facts.namespace, facts.name))),
            labels: Some(labels(&[("app", &facts.app)])),
            annotations: Some(labels(&[
                ("netheal.io/netns", &facts.netns),
                (POD_STYLE_ANNOTATION, facts.style.as_str()),
            ])),
            owner_references,
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some(facts.node.clone()),
            containers: vec![container.clone()],
            ..PodSpec::default()
        }),
        status: Some(running_status(
            &container,
            &dual(facts.host_ip, facts.host_ip6),
            &dual(facts.ip, facts.ip6),
            now,
        )),
    }
}

/// The CNI agent pod (`agent`: canal or calico-node) of a node: `kube-system`, `k8s-app:
/// <agent>`, owned by DaemonSet `<agent>`, host network, its IPs are the node's.
pub fn cni_agent_pod(agent: &str, node: &str, host_ips: &[IpAddr], now: Timestamp) -> Pod {
    let name = format!("{agent}-{node}");
    let (container_name, image) = agent_container(agent);
    let container = Container {
        name: container_name.into(),
        image: Some(image.into()),
        ..Container::default()
    };
    Pod {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some("kube-system".into()),
            uid: Some(uid_of(&format!("pod/kube-system/{name}"))),
            labels: Some(labels(&[("k8s-app", agent)])),
            owner_references: Some(vec![owner_reference(
                "DaemonSet",
                "apps/v1",
                agent,
                "kube-system",
            )]),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.into()),
            host_network: Some(true),
            containers: vec![container.clone()],
            ..PodSpec::default()
        }),
        status: Some(running_status(&container, host_ips, host_ips, now)),
    }
}

impl ClusterNode {
    /// The facts its Node object carries.
    pub fn facts(&self) -> NodeFacts {
        NodeFacts {
            name: self.name.clone(),
            pool: self.pool.clone(),
            underlay_ip: self.underlay_ip,
            pod_cidr: self.pod_cidr.clone(),
            vtep_mac: self.vtep_mac.clone(),
            v6: self.v6.clone(),
            calico: self.calico.clone(),
            underlay_prefix_len: 24,
        }
    }

    /// Its underlay addresses, IPv4 first.
    pub fn host_ips(&self) -> Vec<IpAddr> {
        dual(self.underlay_ip, self.v6.as_ref().map(|v6| v6.underlay_ip))
    }
}

impl ClusterPod {
    /// Its addresses, IPv4 first.
    pub fn ips(&self) -> Vec<IpAddr> {
        dual(self.ip, self.ip6)
    }

    fn facts(&self, node: &ClusterNode) -> PodFacts {
        PodFacts {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            app: self.app.clone(),
            node: self.node.clone(),
            host_ip: node.underlay_ip,
            host_ip6: node.v6.as_ref().map(|v6| v6.underlay_ip),
            ip: self.ip,
            ip6: self.ip6,
            owner: self.owner.clone(),
            netns: self.netns.name().to_string(),
            style: self.style,
        }
    }
}

impl Cluster {
    /// One Node object per node, with the node's current facts (a VTEP MAC change shows in
    /// `backend-data`).
    pub fn node_objects(&self) -> Vec<Node> {
        let now = Timestamp::now();
        self.nodes
            .iter()
            .map(|n| node_object(&n.facts(), now))
            .collect()
    }

    /// The workload pods' objects followed by one CNI agent pod per node.
    pub fn pod_objects(&self) -> Vec<Pod> {
        let now = Timestamp::now();
        let mut pods: Vec<Pod> = self
            .pods
            .iter()
            .filter_map(|p| {
                let node = self.nodes.iter().find(|n| n.name == p.node)?;
                Some(pod_object(&p.facts(node), now))
            })
            .collect();
        pods.extend(
            self.nodes
                .iter()
                .map(|n| cni_agent_pod(cni_agent(self.overlay), &n.name, &n.host_ips(), now)),
        );
        pods
    }

    /// The `BlockAffinity` objects calico-node writes on a Calico cluster (one per node, its
    /// block confirmed); none on a flannel cluster.
    pub fn block_affinity_objects(&self) -> Vec<serde_json::Value> {
        self.nodes
            .iter()
            .filter_map(|n| Some(block_affinity_object(&n.name, &n.calico.as_ref()?.block)))
            .collect()
    }
}

/// Calico's `BlockAffinity` (`crd.projectcalico.org/v1`) of `block` for `node`, as calico-node
/// writes it once the block is claimed: named `<node>-<block with dashes>`, `state: confirmed`,
/// `deleted: "false"`.
pub fn block_affinity_object(node: &str, block: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "crd.projectcalico.org/v1",
        "kind": "BlockAffinity",
        "metadata": {"name": format!("{node}-{}", block.replace(['.', '/', ':'], "-"))},
        "spec": {"cidr": block, "node": node, "state": "confirmed", "deleted": "false", "type": "host"},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node_facts() -> NodeFacts {
        NodeFacts {
            name: "node2".into(),
            pool: "default".into(),
            underlay_ip: Ipv4Addr::new(172, 31, 20, 2),
            pod_cidr: "10.244.2.0/24".into(),
            vtep_mac: "0a:e1:14:02:00:00".into(),
            v6: None,
            calico: None,
            underlay_prefix_len: 24,
        }
    }

    #[test]
    fn a_calico_node_carries_calico_annotations_and_its_block_affinity() {
        let mut facts = node_facts();
        facts.calico = Some(NodeCalico {
            block: "10.40.2.0/26".into(),
            tunnel_ip: Ipv4Addr::new(10, 40, 2, 0),
            vtep_mac: "66:ca:14:02:00:00".into(),
        });
        let ann = node_object(&facts, Timestamp::UNIX_EPOCH)
            .metadata
            .annotations
            .unwrap();
        assert_eq!(ann[CALICO_IPV4_ADDRESS], "172.31.20.2/24");
        assert_eq!(ann[CALICO_VXLAN_TUNNEL_ADDR], "10.40.2.0");
        assert!(
            !ann.contains_key(BACKEND_DATA),
            "no flannel on a Calico node"
        );
        let affinity = block_affinity_object("node2", "10.40.2.0/26");
        assert_eq!(affinity["metadata"]["name"], "node2-10-40-2-0-26");
        assert_eq!(affinity["spec"]["state"], "confirmed");
        let agent = cni_agent_pod(CALICO_DAEMONSET, "node2", &[], Timestamp::UNIX_EPOCH);
        assert_eq!(agent.metadata.name.as_deref(), Some("calico-node-node2"));
        assert_eq!(agent.metadata.labels.unwrap()["k8s-app"], "calico-node");
    }

    #[test]
    fn a_dual_stack_node_carries_both_families() {
        let mut facts = node_facts();
        facts.v6 = Some(NodeV6 {
            underlay_ip: "fd31:14::2".parse().unwrap(),
            pod_cidr: "fd00:10:244:2::/64".into(),
            vtep_ip: "fd00:10:244:2::".parse().unwrap(),
            vtep_mac: "0a:e6:14:02:00:00".into(),
        });
        let node = node_object(&facts, Timestamp::UNIX_EPOCH);
        let ann = node.metadata.annotations.unwrap();
        let backend6: serde_json::Value = serde_json::from_str(&ann[BACKEND_V6_DATA]).unwrap();
        assert_eq!(backend6["VtepMAC"], "0a:e6:14:02:00:00");
        assert_eq!(ann[PUBLIC_IPV6], "fd31:14::2");
        let spec = node.spec.unwrap();
        assert_eq!(
            spec.pod_cidrs.unwrap(),
            ["10.244.2.0/24", "fd00:10:244:2::/64"]
        );
        assert_eq!(spec.pod_cidr.as_deref(), Some("10.244.2.0/24"));
        let internal: Vec<String> = node
            .status
            .unwrap()
            .addresses
            .unwrap()
            .into_iter()
            .filter(|a| a.type_ == "InternalIP")
            .map(|a| a.address)
            .collect();
        assert_eq!(internal, ["172.31.20.2", "fd31:14::2"]);
    }

    #[test]
    fn a_dual_stack_pod_lists_both_ips_ipv4_first() {
        let mut facts = pod_facts(PodOwner::Bare);
        facts.ip6 = Some("fd00:10:244:2::2".parse().unwrap());
        facts.host_ip6 = Some("fd31:14::2".parse().unwrap());
        let status = pod_object(&facts, Timestamp::UNIX_EPOCH).status.unwrap();
        let ips: Vec<String> = status.pod_ips.unwrap().into_iter().map(|p| p.ip).collect();
        assert_eq!(ips, ["10.244.2.2", "fd00:10:244:2::2"]);
        assert_eq!(status.pod_ip.as_deref(), Some("10.244.2.2"));
        assert_eq!(status.host_ips.unwrap().len(), 2);
    }

    #[test]
    fn node_carries_flannel_annotations_and_addresses() {
        let node = node_object(&node_facts(), Timestamp::UNIX_EPOCH);
        let ann = node.metadata.annotations.unwrap();
        let backend: serde_json::Value = serde_json::from_str(&ann[BACKEND_DATA]).unwrap();
        assert_eq!(backend["VNI"], 1);
        assert_eq!(backend["VtepMAC"], "0a:e1:14:02:00:00");
        assert_eq!(ann[PUBLIC_IP], "172.31.20.2");
        assert_eq!(ann[BACKEND_TYPE], "vxlan");
        assert_eq!(
            node.spec.unwrap().pod_cidr.as_deref(),
            Some("10.244.2.0/24")
        );
        let status = node.status.unwrap();
        let addrs = status.addresses.unwrap();
        assert!(
            addrs
                .iter()
                .any(|a| a.type_ == "InternalIP" && a.address == "172.31.20.2")
        );
        assert!(
            addrs
                .iter()
                .any(|a| a.type_ == "Hostname" && a.address == "node2")
        );
        assert_eq!(status.conditions.unwrap()[0].status, "True");
        assert_eq!(status.node_info.unwrap().kubelet_version, KUBELET_VERSION);
        let labels = node.metadata.labels.unwrap();
        assert_eq!(labels["kubernetes.io/hostname"], "node2");
        assert_eq!(labels["kubernetes.io/os"], "linux");
        assert_eq!(labels[POOL_LABEL], "default");
    }

    fn pod_facts(owner: PodOwner) -> PodFacts {
        PodFacts {
            name: "web-node2-0".into(),
            namespace: "default".into(),
            app: "web".into(),
            node: "node2".into(),
            host_ip: Ipv4Addr::new(172, 31, 20, 2),
            host_ip6: None,
            ip: Ipv4Addr::new(10, 244, 2, 2),
            ip6: None,
            owner,
            netns: "cni-t1-node2-0".into(),
            style: PodStyle::Calico,
        }
    }

    #[test]
    fn owned_pod_has_a_controller_reference_and_bare_pod_none() {
        let pod = pod_object(
            &pod_facts(PodOwner::ReplicaSet("web-rs".into())),
            Timestamp::UNIX_EPOCH,
        );
        let owners = pod.metadata.owner_references.unwrap();
        assert_eq!(owners[0].kind, "ReplicaSet");
        assert_eq!(owners[0].controller, Some(true));
        let status = pod.status.unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.pod_ips.unwrap()[0].ip, "10.244.2.2");
        assert!(
            status
                .conditions
                .unwrap()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        );
        assert_eq!(pod.spec.unwrap().node_name.as_deref(), Some("node2"));
        let bare = pod_object(&pod_facts(PodOwner::Bare), Timestamp::UNIX_EPOCH);
        assert!(bare.metadata.owner_references.is_none());
    }

    #[test]
    fn cni_agent_is_a_host_network_daemonset_pod() {
        let pod = cni_agent_pod(
            CNI_DAEMONSET,
            "node1",
            &[IpAddr::V4(Ipv4Addr::new(172, 31, 20, 1))],
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(pod.metadata.namespace.as_deref(), Some("kube-system"));
        assert_eq!(pod.metadata.labels.unwrap()["k8s-app"], "canal");
        let owner = &pod.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("DaemonSet", "canal")
        );
        assert_eq!(pod.spec.unwrap().host_network, Some(true));
    }

    #[test]
    fn uids_are_stable_and_distinct() {
        assert_eq!(uid_of("a"), uid_of("a"));
        assert_ne!(uid_of("a"), uid_of("b"));
        assert_eq!(uid_of("a").len(), 36);
    }
}
