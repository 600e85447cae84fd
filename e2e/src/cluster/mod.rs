//! The cluster-in-a-box: nodes as network namespaces joined by an underlay bridge, a
//! flannel-style VXLAN overlay between them, pods as `cni-*` namespaces (bridge or Calico
//! style), Kubernetes objects describing all of it, and injectors for every fault of the
//! catalogue.
//!
//! ```text
//!  nhc-<c>-net:  br0 172.31.<o>.254/24 ── n1 ── n2 ── n3 (veths, one per node)
//!                                          │     │     │
//!  nhc-<c>-nodeI: eth0 172.31.<o>.I/24, default via .254
//!                 flannel.1 vxlan VNI 1 :8472 nolearning, 10.244.I.0/32, VtepMAC 0a:e1:<o>:<I>:00:<gen>
//!                 cni0 10.244.I.1/24 ── vethXXXXXXXX ── cni-<c>-nodeI-<n> eth0 10.244.I.<n+2>/24
//!                 caliXXXXXXXXXXX (proxy_arp) ──────── cni-<c>-nodeI-<n> eth0 10.244.I.<n+2>/32
//! ```
//!
//! A dual-stack cluster ([`Stack::DualStack`]) adds the IPv6 side beside it: `eth0`
//! `fd31:<o>::I/64`, `flannel-v6.1` (VNI 1 :8472 over the IPv6 underlay, `fd00:10:244:I::/128`,
//! VtepMAC `0a:e6:<o>:<I>:00:<gen>`), `cni0` `fd00:10:244:I::1/64`, and each pod
//! `fd00:10:244:I::<n+2>` (/64 on a bridge pod, /128 with a host route and the default route via
//! `fe80::ecee:eeff:feee:eeee` on a Calico pod, whose host veth has Calico's `ee:ee:ee:ee:ee:ee`).
//!
//! A Calico cluster ([`Overlay::CalicoVxlan`]) has `vxlan.calico` (VNI 4096 :4789, tunnel address
//! `10.40.I.0/32`, `blackhole 10.40.I.0/26`) instead of `flannel.1` and `cni0`, Calico pods only,
//! `10.40.I.<n+2>` from the node's block, and per peer block a route `via <peer tunnel address>
//! dev vxlan.calico onlink` with its neighbour and fdb entry.
//!
//! Everything is removed when the [`Cluster`] is dropped (also when a test panics);
//! [`state::cleanup_stale`] removes what a killed process left behind.

pub mod commands;
pub mod faults;
pub mod inspect;
pub mod objects;
pub mod plan;
pub mod register;
pub mod state;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Output;

use crate::netns::{Netns, NetnsError, run};
use commands::{Cmd, PeerCalico, PeerFacts, PeerFacts6};
use inspect::{FdbEntry, Neighbour, Route};
use plan::{
    ClusterPlan, MAX_NODE_INDEX, MAX_NODE_NAME, UNDERLAY_BRIDGE, UPLINK, VXLAN_DEVICE,
    VXLAN_DEVICE_V6,
};
pub use plan::{Overlay, Stack};

/// An error building, changing or inspecting a cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A name does not follow the naming rules.
    #[error("invalid {field} {value:?}: {reason}")]
    InvalidName {
        /// Which name.
        field: String,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A command failed.
    #[error(transparent)]
    Command(#[from] NetnsError),
    /// No node of that name in this cluster.
    #[error("unknown node {0:?}")]
    UnknownNode(String),
    /// No pod with that namespace name in this cluster.
    #[error("unknown pod {0:?}")]
    UnknownPod(String),
    /// A node of that name already exists.
    #[error("node {0:?} already exists")]
    NodeExists(String),
    /// Out of node indexes or pod addresses.
    #[error("{0}")]
    Exhausted(String),
    /// A tool printed something that is not the JSON it documents.
    #[error("could not parse the output of `{what}`: {source}")]
    Parse {
        /// The command.
        what: String,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A kernel value that is not what it should look like.
    #[error("unexpected value {value:?} in {what}")]
    Value {
        /// Where it was read.
        what: String,
        /// What was read.
        value: String,
    },
    /// A file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The state file is not valid JSON of the expected shape.
    #[error("state file {path}: {source}")]
    State {
        /// The file.
        path: String,
        /// The parse error.
        source: serde_json::Error,
    },
    /// An API request failed.
    #[error("API request {what}: {source}")]
    Api {
        /// The request.
        what: String,
        /// The client error.
        source: Box<kube::Error>,
    },
}

/// How a pod is wired to its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PodStyle {
    /// A veth on the `cni0` bridge, `IP/24`, default route via `10.244.<i>.1` (flannel/bridge).
    Bridge,
    /// A `cali*` veth with proxy ARP, `IP/32`, host route `IP dev caliX scope link`, default
    /// route via 169.254.1.1 (Calico).
    Calico,
}

impl PodStyle {
    /// The name `FromStr` reads (`bridge`, `calico`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bridge => "bridge",
            Self::Calico => "calico",
        }
    }
}

impl std::str::FromStr for PodStyle {
    type Err = ClusterError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bridge" => Ok(Self::Bridge),
            "calico" => Ok(Self::Calico),
            other => Err(ClusterError::InvalidName {
                field: "pod style".into(),
                value: other.into(),
                reason: "must be `bridge` or `calico`".into(),
            }),
        }
    }
}

/// Who owns a pod object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodOwner {
    /// A ReplicaSet of that name (`controller: true`): the pod can be recreated.
    ReplicaSet(String),
    /// Nobody: a bare pod, never to be deleted by a fixer.
    Bare,
}

/// How to make a pod.
#[derive(Debug, Clone)]
pub struct PodOptions {
    /// Wiring style.
    pub style: PodStyle,
    /// Pod object name; default `<app>-<node>-<n>`.
    pub name: Option<String>,
    /// Kubernetes namespace; default `default`.
    pub namespace: String,
    /// The `app` label; default `web`.
    pub app: String,
    /// Owner; default ReplicaSet `<app>-rs`.
    pub owner: Option<PodOwner>,
    /// A fixed address (e.g. a duplicate); default the next free one on the node.
    pub ip: Option<Ipv4Addr>,
    /// A fixed IPv6 address on a dual-stack cluster; default the next free one on the node.
    pub ip6: Option<Ipv6Addr>,
    /// Install the host route `IP dev caliX` (Calico only; default true). A pod without it is
    /// one that lost its address to another pod.
    pub host_route: bool,
}

impl PodOptions {
    /// A pod of `style`, all other settings default.
    pub fn new(style: PodStyle) -> Self {
        Self {
            style,
            name: None,
            namespace: "default".into(),
            app: "web".into(),
            owner: None,
            ip: None,
            ip6: None,
            host_route: true,
        }
    }

    /// A Calico-style pod.
    pub fn calico() -> Self {
        Self::new(PodStyle::Calico)
    }

    /// A bridge-style pod.
    pub fn bridge() -> Self {
        Self::new(PodStyle::Bridge)
    }

    /// Without an owner.
    pub fn bare(mut self) -> Self {
        self.owner = Some(PodOwner::Bare);
        self
    }

    /// With this pod object name.
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
}

/// One node of the cluster.
#[derive(Debug)]
pub struct ClusterNode {
    /// Node name (`node1`).
    pub name: String,
    /// Index: underlay `.index`, pod CIDR `10.244.<index>.0/24`.
    pub index: u8,
    /// Its namespace, `nhc-<cluster>-<name>`.
    pub netns: Netns,
    /// Node pool label value.
    pub pool: String,
    /// Underlay address (InternalIP, flannel public-ip).
    pub underlay_ip: Ipv4Addr,
    /// Pod CIDR.
    pub pod_cidr: String,
    /// VTEP address on `flannel.1`.
    pub vtep_ip: Ipv4Addr,
    /// Current VTEP MAC of `flannel.1`.
    pub vtep_mac: String,
    /// How often the node (re)joined; part of the VTEP MAC.
    pub generation: u8,
    /// The node's IPv6 side, on a dual-stack cluster.
    pub v6: Option<NodeV6>,
    /// The node's Calico side, on a Calico cluster.
    pub calico: Option<NodeCalico>,
    next_pod: u32,
}

/// A node's Calico side on a Calico VXLAN cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCalico {
    /// Its IPAM block (its `BlockAffinity`).
    pub block: String,
    /// Its tunnel address on `vxlan.calico`.
    pub tunnel_ip: Ipv4Addr,
    /// The MAC of its `vxlan.calico`.
    pub vtep_mac: String,
}

/// A node's IPv6 side on a dual-stack cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeV6 {
    /// IPv6 underlay address (InternalIP, flannel `public-ipv6`).
    pub underlay_ip: Ipv6Addr,
    /// IPv6 pod range.
    pub pod_cidr: String,
    /// VTEP address on `flannel-v6.1`.
    pub vtep_ip: Ipv6Addr,
    /// Current VTEP MAC of `flannel-v6.1`.
    pub vtep_mac: String,
}

impl ClusterNode {
    /// What peers program for this node.
    pub fn peer_facts(&self) -> PeerFacts {
        PeerFacts {
            underlay_ip: self.underlay_ip,
            vtep_mac: self.vtep_mac.clone(),
            vtep_ip: self.vtep_ip,
            pod_cidr: self.pod_cidr.clone(),
            v6: self.v6.as_ref().map(|v6| PeerFacts6 {
                underlay_ip: v6.underlay_ip,
                vtep_mac: v6.vtep_mac.clone(),
                vtep_ip: v6.vtep_ip,
                pod_cidr: v6.pod_cidr.clone(),
            }),
            calico: self.calico.as_ref().map(|c| PeerCalico {
                tunnel_ip: c.tunnel_ip,
                vtep_mac: c.vtep_mac.clone(),
                block: c.block.clone(),
            }),
        }
    }

    /// The pod ranges, IPv4 first.
    pub fn pod_cidrs(&self) -> Vec<String> {
        let mut all = vec![self.pod_cidr.clone()];
        all.extend(self.v6.iter().map(|v6| v6.pod_cidr.clone()));
        all
    }
}

/// One pod of the cluster.
#[derive(Debug)]
pub struct ClusterPod {
    /// Pod object name.
    pub name: String,
    /// Kubernetes namespace.
    pub namespace: String,
    /// `app` label.
    pub app: String,
    /// Node name.
    pub node: String,
    /// Its network namespace, `cni-<cluster>-<node>-<n>`.
    pub netns: Netns,
    /// Its address.
    pub ip: Ipv4Addr,
    /// Its IPv6 address, on a dual-stack cluster.
    pub ip6: Option<Ipv6Addr>,
    /// Wiring style.
    pub style: PodStyle,
    /// Host-side veth on the node.
    pub host_veth: String,
    /// Owner.
    pub owner: PodOwner,
}

/// Keys a new namespace copies from `conf/all` and `conf/default` of its parent (see
/// [`Cluster::add_pod`]).
pub const INHERITED_DEVCONF: [&str; 3] = ["arp_ignore", "arp_announce", "rp_filter"];

/// A running cluster-in-a-box. Dropping it removes every namespace it made.
#[derive(Debug)]
pub struct Cluster {
    plan: ClusterPlan,
    stack: Stack,
    overlay: Overlay,
    // Field order is drop order: pods, then nodes, then the underlay.
    pods: Vec<ClusterPod>,
    nodes: Vec<ClusterNode>,
    net: Netns,
}

/// Run one command inside namespace `ns`.
pub fn run_in(ns: &str, cmd: &Cmd) -> Result<Output, ClusterError> {
    let mut args: Vec<&str> = vec!["-n", ns];
    args.extend(cmd.args.iter().map(String::as_str));
    Ok(run(cmd.program, &args)?)
}

fn run_all(ns: &str, cmds: &[Cmd]) -> Result<(), ClusterError> {
    for cmd in cmds {
        run_in(ns, cmd)?;
    }
    Ok(())
}

/// Read `/proc/sys/<path>` inside a namespace.
pub fn read_sysctl(ns: &Netns, path: &str) -> Result<String, ClusterError> {
    let out = ns.exec("cat", &[&format!("/proc/sys/{path}")])?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl Cluster {
    /// An empty IPv4 cluster: the underlay namespace and bridge, no nodes yet. Leftovers of an
    /// earlier run with the same name are removed first.
    pub fn new(name: &str) -> Result<Self, ClusterError> {
        Self::with_stack(name, Stack::Ipv4)
    }

    /// An empty flannel cluster of `stack` (see [`Cluster::new`]).
    pub fn with_stack(name: &str, stack: Stack) -> Result<Self, ClusterError> {
        Self::create(name, stack, Overlay::Flannel)
    }

    /// An empty cluster of `stack` and `overlay` (see [`Cluster::new`]). Calico is IPv4 only
    /// here.
    pub fn create(name: &str, stack: Stack, overlay: Overlay) -> Result<Self, ClusterError> {
        if stack.has_ipv6() && overlay == Overlay::CalicoVxlan {
            return Err(ClusterError::InvalidName {
                field: "overlay".into(),
                value: overlay.as_str().into(),
                reason: "the Calico cluster is IPv4 only".into(),
            });
        }
        let plan = ClusterPlan::new(name)?;
        state::cleanup_stale(name)?;
        let net = Netns::create(&plan.net_netns())?;
        let gw = format!("{}/{}", plan.underlay_gateway(), plan.underlay_prefix_len());
        net.ip(&["link", "add", UNDERLAY_BRIDGE, "type", "bridge"])?;
        net.ip(&["addr", "add", &gw, "dev", UNDERLAY_BRIDGE])?;
        if stack.has_ipv6() {
            let gw6 = format!(
                "{}/{}",
                plan.underlay_gateway6(),
                plan.underlay6_prefix_len()
            );
            net.ip(&["-6", "addr", "add", &gw6, "dev", UNDERLAY_BRIDGE, "nodad"])?;
        }
        net.ip(&["link", "set", UNDERLAY_BRIDGE, "up"])?;
        tracing::debug!(cluster = name, ?stack, "underlay ready");
        Ok(Self {
            plan,
            stack,
            overlay,
            pods: Vec::new(),
            nodes: Vec::new(),
            net,
        })
    }

    /// An IPv4 cluster with nodes `node1..=nodeN`, no pods.
    pub fn build(name: &str, nodes: usize) -> Result<Self, ClusterError> {
        Self::build_with(name, nodes, Stack::Ipv4)
    }

    /// A flannel cluster of `stack` with nodes `node1..=nodeN`, no pods.
    pub fn build_with(name: &str, nodes: usize, stack: Stack) -> Result<Self, ClusterError> {
        Self::build_shaped(name, nodes, stack, Overlay::Flannel)
    }

    /// A cluster of `stack` and `overlay` with nodes `node1..=nodeN`, no pods.
    pub fn build_shaped(
        name: &str,
        nodes: usize,
        stack: Stack,
        overlay: Overlay,
    ) -> Result<Self, ClusterError> {
        let mut cluster = Self::create(name, stack, overlay)?;
        for i in 1..=nodes {
            cluster.add_node(&format!("node{i}"))?;
        }
        Ok(cluster)
    }

    /// The address families the cluster runs.
    pub fn stack(&self) -> Stack {
        self.stack
    }

    /// The overlay and IPAM the cluster runs.
    pub fn overlay(&self) -> Overlay {
        self.overlay
    }

    /// The cluster's naming and addressing.
    pub fn plan(&self) -> &ClusterPlan {
        &self.plan
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        self.plan.name()
    }

    /// The underlay namespace.
    pub fn net(&self) -> &Netns {
        &self.net
    }

    /// The nodes, in join order.
    pub fn nodes(&self) -> &[ClusterNode] {
        &self.nodes
    }

    /// The pods, in creation order.
    pub fn pods(&self) -> &[ClusterPod] {
        &self.pods
    }

    /// A node by name.
    pub fn node(&self, name: &str) -> Result<&ClusterNode, ClusterError> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| ClusterError::UnknownNode(name.to_string()))
    }

    /// A pod by its network namespace name.
    pub fn pod(&self, netns: &str) -> Result<&ClusterPod, ClusterError> {
        self.pods
            .iter()
            .find(|p| p.netns.name() == netns)
            .ok_or_else(|| ClusterError::UnknownPod(netns.to_string()))
    }

    /// The pods on one node.
    pub fn pods_on<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a ClusterPod> + 'a {
        self.pods.iter().filter(move |p| p.node == node)
    }

    /// Every namespace of the cluster: pods, nodes, the underlay.
    pub fn namespaces(&self) -> Vec<String> {
        let mut names: Vec<String> = self.pods.iter().map(|p| p.netns.name().into()).collect();
        names.extend(self.nodes.iter().map(|n| n.netns.name().to_string()));
        names.push(self.net.name().to_string());
        names
    }

    fn free_index(&self) -> Result<u8, ClusterError> {
        (1..=MAX_NODE_INDEX)
            .find(|i| self.nodes.iter().all(|n| n.index != *i))
            .ok_or_else(|| ClusterError::Exhausted(format!("{MAX_NODE_INDEX} nodes at most")))
    }

    /// Add a node in pool `default` (see [`Cluster::add_node_in_pool`]).
    pub fn add_node(&mut self, name: &str) -> Result<&ClusterNode, ClusterError> {
        self.add_node_in_pool(name, "default")
    }

    /// Add a node: namespace, uplink on the underlay, sysctls (`ip_forward=1`,
    /// `arp_ignore=0`), `flannel.1`, `cni0`; then program the overlay both ways between it and
    /// every existing node (what flannel does when a node joins).
    pub fn add_node_in_pool(
        &mut self,
        name: &str,
        pool: &str,
    ) -> Result<&ClusterNode, ClusterError> {
        plan::validate_name("node name", name, MAX_NODE_NAME)?;
        if name == "net" {
            return Err(ClusterError::InvalidName {
                field: "node name".into(),
                value: name.into(),
                reason: "`net` is the underlay namespace".into(),
            });
        }
        if self.nodes.iter().any(|n| n.name == name) {
            return Err(ClusterError::NodeExists(name.to_string()));
        }
        let index = self.free_index()?;
        let netns = Netns::create(&self.plan.node_netns(name))?;
        let node = ClusterNode {
            name: name.to_string(),
            index,
            pool: pool.to_string(),
            underlay_ip: self.plan.underlay_ip(index),
            pod_cidr: self.plan.pod_cidr(index),
            vtep_ip: self.plan.vtep_ip(index),
            vtep_mac: self.plan.vtep_mac(index, 0),
            generation: 0,
            v6: self.stack.has_ipv6().then(|| NodeV6 {
                underlay_ip: self.plan.underlay_ip6(index),
                pod_cidr: self.plan.pod_cidr6(index),
                vtep_ip: self.plan.vtep_ip6(index),
                vtep_mac: self.plan.vtep_mac6(index, 0),
            }),
            calico: (self.overlay == Overlay::CalicoVxlan).then(|| NodeCalico {
                block: self.plan.calico_block(index),
                tunnel_ip: self.plan.calico_tunnel_ip(index),
                vtep_mac: self.plan.calico_vtep_mac(index),
            }),
            next_pod: 0,
            netns,
        };
        self.wire_node(&node)?;
        for peer in &self.nodes {
            run_all(
                node.netns.name(),
                &commands::peer_entries(&peer.peer_facts()),
            )?;
            run_all(
                peer.netns.name(),
                &commands::peer_entries(&node.peer_facts()),
            )?;
        }
        tracing::debug!(cluster = self.name(), node = name, index, "node joined");
        self.nodes.push(node);
        let last = self.nodes.len() - 1;
        Ok(&self.nodes[last])
    }

    fn wire_node(&self, node: &ClusterNode) -> Result<(), ClusterError> {
        let port = self.plan.underlay_port(node.index);
        self.net.ip(&[
            "link",
            "add",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            UPLINK,
            "netns",
            node.netns.name(),
        ])?;
        self.net
            .ip(&["link", "set", &port, "master", UNDERLAY_BRIDGE])?;
        self.net.ip(&["link", "set", &port, "up"])?;
        let ns = node.netns.name();
        run_all(
            ns,
            &commands::uplink(
                node.underlay_ip,
                self.plan.underlay_prefix_len(),
                self.plan.underlay_gateway(),
            ),
        )?;
        node.netns.set_sysctl("net/ipv4/ip_forward", "1")?;
        node.netns.set_sysctl("net/ipv4/conf/all/arp_ignore", "0")?;
        node.netns
            .set_sysctl("net/ipv4/conf/default/arp_ignore", "0")?;
        if let Some(calico) = &node.calico {
            return run_all(
                ns,
                &commands::calico_vxlan_device(
                    node.underlay_ip,
                    &calico.vtep_mac,
                    calico.tunnel_ip,
                    &calico.block,
                ),
            );
        }
        run_all(
            ns,
            &commands::vxlan_device(node.underlay_ip, &node.vtep_mac, node.vtep_ip),
        )?;
        run_all(ns, &commands::pod_bridge(self.plan.bridge_ip(node.index)))?;
        if let Some(v6) = &node.v6 {
            // Addresses and link-local addresses of new interfaces are usable at once (no
            // duplicate address detection: every address of the cluster is planned).
            disable_dad(&node.netns)?;
            node.netns.set_sysctl("net/ipv6/conf/all/forwarding", "1")?;
            run_all(
                ns,
                &commands::uplink6(
                    v6.underlay_ip,
                    self.plan.underlay6_prefix_len(),
                    self.plan.underlay_gateway6(),
                ),
            )?;
            run_all(
                ns,
                &commands::vxlan_device6(v6.underlay_ip, &v6.vtep_mac, v6.vtep_ip),
            )?;
            run_all(ns, &commands::pod_bridge6(self.plan.bridge_ip6(node.index)))?;
        }
        Ok(())
    }

    /// Remove a node: its pods, its namespace (the underlay veth goes with it), and its
    /// overlay entries on every peer (what flannel does when a Node is deleted).
    pub fn remove_node(&mut self, name: &str) -> Result<(), ClusterError> {
        let pos = self
            .nodes
            .iter()
            .position(|n| n.name == name)
            .ok_or_else(|| ClusterError::UnknownNode(name.to_string()))?;
        self.pods.retain(|p| p.node != name);
        let node = self.nodes.remove(pos);
        for peer in &self.nodes {
            for cmd in commands::remove_peer_entries(&node.peer_facts()) {
                // An entry that is already gone is what we want.
                let _ = run_in(peer.netns.name(), &cmd);
            }
        }
        drop(node);
        Ok(())
    }

    /// Program on `node` the overlay entries for every peer, from the peers' current facts:
    /// what a restarted flannel/canal agent does on that node.
    pub fn program_peers(&self, node: &str) -> Result<(), ClusterError> {
        let this = self.node(node)?;
        for peer in self.nodes.iter().filter(|p| p.name != node) {
            run_all(
                this.netns.name(),
                &commands::peer_entries(&peer.peer_facts()),
            )?;
        }
        Ok(())
    }

    /// Add a pod on `node`. The pod's namespace first gets the `conf/all` and `conf/default`
    /// values of [`INHERITED_DEVCONF`] that the node has: on a real node a new namespace copies
    /// them from the root namespace (`net.core.devconf_inherit_init_net=0`), but here the node
    /// is itself a namespace, and a new namespace copies from init_net, not from its creator
    /// (measured: `unshare -n` inside a node with `all.arp_ignore=2` gets 0), so the copy is
    /// made explicitly.
    pub fn add_pod(&mut self, node: &str, opts: PodOptions) -> Result<&ClusterPod, ClusterError> {
        let pos = self
            .nodes
            .iter()
            .position(|n| n.name == node)
            .ok_or_else(|| ClusterError::UnknownNode(node.to_string()))?;
        let (index, n) = (self.nodes[pos].index, self.nodes[pos].next_pod);
        let calico_ipam = self.overlay == Overlay::CalicoVxlan;
        if calico_ipam && opts.style != PodStyle::Calico {
            return Err(ClusterError::InvalidName {
                field: "pod style".into(),
                value: opts.style.as_str().into(),
                reason: "a Calico cluster has Calico-style pods only".into(),
            });
        }
        let ip = match opts.ip {
            Some(ip) => ip,
            None if calico_ipam => self.plan.calico_pod_ip(index, n)?,
            None => self.plan.pod_ip(index, n)?,
        };
        let ip6 = match (self.stack.has_ipv6(), opts.ip6) {
            (false, _) => None,
            (true, Some(ip6)) => Some(ip6),
            (true, None) => Some(self.plan.pod_ip6(index, n)?),
        };
        let netns_name = self.plan.pod_netns(node, n);
        let calico = opts.style == PodStyle::Calico;
        let host_veth = self.plan.host_veth(&netns_name, calico);
        let pod_ns = Netns::create(&netns_name)?;
        self.nodes[pos].next_pod += 1;
        let node_ref = &self.nodes[pos];
        inherit_devconf(&node_ref.netns, &pod_ns)?;
        if ip6.is_some() {
            disable_dad(&pod_ns)?;
        }
        let node_ns = node_ref.netns.name();
        let mtu = plan::POD_MTU.to_string();
        node_ref.netns.ip(&[
            "link",
            "add",
            &host_veth,
            "mtu",
            &mtu,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "mtu",
            &mtu,
            "netns",
            pod_ns.name(),
        ])?;
        match opts.style {
            PodStyle::Bridge => {
                run_all(node_ns, &commands::bridge_pod_host(&host_veth))?;
                run_all(
                    pod_ns.name(),
                    &commands::bridge_pod_inside(ip, self.plan.bridge_ip(index)),
                )?;
                if let Some(ip6) = ip6 {
                    run_all(
                        pod_ns.name(),
                        &commands::bridge_pod_inside6(ip6, self.plan.bridge_ip6(index)),
                    )?;
                }
            }
            PodStyle::Calico => {
                node_ref
                    .netns
                    .set_sysctl(&format!("net/ipv4/conf/{host_veth}/proxy_arp"), "1")?;
                node_ref
                    .netns
                    .set_sysctl(&format!("net/ipv4/neigh/{host_veth}/proxy_delay"), "0")?;
                if ip6.is_some() {
                    // Calico's host-side MAC, set while the veth is down: its link-local
                    // address is the pods' IPv6 gateway.
                    node_ref.netns.ip(&[
                        "link",
                        "set",
                        &host_veth,
                        "address",
                        plan::CALICO_HOST_MAC,
                    ])?;
                }
                run_all(
                    node_ns,
                    &commands::calico_pod_host(&host_veth, ip, opts.host_route),
                )?;
                run_all(pod_ns.name(), &commands::calico_pod_inside(ip))?;
                if let Some(ip6) = ip6 {
                    run_all(
                        node_ns,
                        &commands::calico_pod_host6(&host_veth, ip6, opts.host_route),
                    )?;
                    run_all(pod_ns.name(), &commands::calico_pod_inside6(ip6))?;
                }
            }
        }
        let name = opts
            .name
            .unwrap_or_else(|| format!("{}-{node}-{n}", opts.app));
        let owner = opts
            .owner
            .unwrap_or_else(|| PodOwner::ReplicaSet(format!("{}-rs", opts.app)));
        tracing::debug!(pod = %name, netns = pod_ns.name(), %ip, "pod created");
        self.pods.push(ClusterPod {
            name,
            namespace: opts.namespace,
            app: opts.app,
            node: node.to_string(),
            netns: pod_ns,
            ip,
            ip6,
            style: opts.style,
            host_veth,
            owner,
        });
        let last = self.pods.len() - 1;
        Ok(&self.pods[last])
    }

    /// Remove a pod (its namespace, hence its veth and the host route with it).
    pub fn remove_pod(&mut self, netns: &str) -> Result<(), ClusterError> {
        let pos = self
            .pods
            .iter()
            .position(|p| p.netns.name() == netns)
            .ok_or_else(|| ClusterError::UnknownPod(netns.to_string()))?;
        self.pods.remove(pos);
        Ok(())
    }

    /// Ping `to_pod`'s address from inside `from_pod` (up to 2 echo requests, 1 s timeout
    /// each): true when a reply came back.
    pub fn ping(&self, from_pod: &str, to_pod: &str) -> Result<bool, ClusterError> {
        let to = self.pod(to_pod)?.ip;
        self.ping_ip(from_pod, to)
    }

    /// Ping `to_pod`'s IPv6 address from inside `from_pod` (as [`Cluster::ping`]).
    pub fn ping6(&self, from_pod: &str, to_pod: &str) -> Result<bool, ClusterError> {
        let to = self.pod(to_pod)?.ip6.ok_or_else(|| ClusterError::Value {
            what: format!("IPv6 address of pod {to_pod}"),
            value: "none (an IPv4 cluster)".into(),
        })?;
        self.ping_ip(from_pod, to)
    }

    /// Ping an address (IPv4 or IPv6) from inside a pod.
    pub fn ping_ip(&self, from_pod: &str, to: impl Into<IpAddr>) -> Result<bool, ClusterError> {
        Ok(self.pod(from_pod)?.netns.ping(&to.into().to_string(), 2))
    }

    /// The neighbour table of a node (all interfaces).
    pub fn neighbours(&self, node: &str) -> Result<Vec<Neighbour>, ClusterError> {
        let out = self.node(node)?.netns.ip(&["-j", "neigh", "show"])?;
        inspect::parse_neighbours(&String::from_utf8_lossy(&out.stdout))
    }

    /// The fdb of a node's `flannel.1`.
    pub fn fdb(&self, node: &str) -> Result<Vec<FdbEntry>, ClusterError> {
        self.fdb_of(node, VXLAN_DEVICE)
    }

    /// The fdb of a node's `flannel-v6.1` (dual-stack clusters).
    pub fn fdb6(&self, node: &str) -> Result<Vec<FdbEntry>, ClusterError> {
        self.fdb_of(node, VXLAN_DEVICE_V6)
    }

    fn fdb_of(&self, node: &str, device: &str) -> Result<Vec<FdbEntry>, ClusterError> {
        let ns = self.node(node)?.netns.name();
        let out = run("bridge", &["-n", ns, "-j", "fdb", "show", "dev", device])?;
        inspect::parse_fdb(&String::from_utf8_lossy(&out.stdout))
    }

    /// The IPv4 main routing table of a node.
    pub fn routes(&self, node: &str) -> Result<Vec<Route>, ClusterError> {
        let out = self.node(node)?.netns.ip(&["-j", "-4", "route", "show"])?;
        inspect::parse_routes(&String::from_utf8_lossy(&out.stdout))
    }

    /// The IPv6 main routing table of a node.
    pub fn routes6(&self, node: &str) -> Result<Vec<Route>, ClusterError> {
        let out = self.node(node)?.netns.ip(&["-j", "-6", "route", "show"])?;
        inspect::parse_routes(&String::from_utf8_lossy(&out.stdout))
    }

    /// `iptables-save -t filter` inside a node.
    pub fn iptables_save(&self, node: &str) -> Result<String, ClusterError> {
        let out = self
            .node(node)?
            .netns
            .exec("iptables-save", &["-t", "filter"])?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Read a sysctl (`net/ipv4/ip_forward`) inside any namespace of the cluster.
    pub fn sysctl(&self, netns: &str, path: &str) -> Result<String, ClusterError> {
        read_sysctl(self.netns(netns)?, path)
    }

    /// Any namespace of the cluster by name.
    pub fn netns(&self, name: &str) -> Result<&Netns, ClusterError> {
        if self.net.name() == name {
            return Ok(&self.net);
        }
        if let Some(n) = self.nodes.iter().find(|n| n.netns.name() == name) {
            return Ok(&n.netns);
        }
        self.pods
            .iter()
            .find(|p| p.netns.name() == name)
            .map(|p| &p.netns)
            .ok_or_else(|| ClusterError::UnknownPod(name.to_string()))
    }

    /// Keep the namespaces after this value goes away (for `netheal-cluster up`): returns the
    /// state to write so that `down` can remove them later.
    pub fn keep_running(self) -> state::ClusterState {
        let state = state::ClusterState::of(&self);
        std::mem::forget(self);
        state
    }

    fn node_mut(&mut self, name: &str) -> Result<&mut ClusterNode, ClusterError> {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .ok_or_else(|| ClusterError::UnknownNode(name.to_string()))
    }
}

/// No duplicate address detection in `ns` for interfaces made from now on.
fn disable_dad(ns: &Netns) -> Result<(), ClusterError> {
    for scope in ["all", "default"] {
        ns.set_sysctl(&format!("net/ipv6/conf/{scope}/accept_dad"), "0")?;
    }
    Ok(())
}

/// Copy the node's `conf/{all,default}` values of [`INHERITED_DEVCONF`] into a new pod namespace.
fn inherit_devconf(node: &Netns, pod: &Netns) -> Result<(), ClusterError> {
    for key in INHERITED_DEVCONF {
        for scope in ["all", "default"] {
            let path = format!("net/ipv4/conf/{scope}/{key}");
            let value = read_sysctl(node, &path)?;
            if value.parse::<i64>().is_err() {
                return Err(ClusterError::Value {
                    what: format!("{} {path}", node.name()),
                    value,
                });
            }
            if read_sysctl(pod, &path)? != value {
                pod.set_sysctl(&path, &value)?;
            }
        }
    }
    Ok(())
}
