//! The end-to-end harness: a real control plane ([`crate::controlplane`]), netheal installed on
//! it with `kubectl apply -k` ([`install`]), a cluster-in-a-box whose nodes register as Node
//! objects, the kubelet emulation of [`kubelet`] (the one part that cannot run here), and the
//! real `netheal-operator` and one real `node-fixer agent` per node as child processes, each
//! authenticated with a token bound to its own pod. Everything is torn down when the
//! [`Harness`] is dropped, also when a scenario fails; the logs stay in
//! `target/e2e-logs/<cluster>/` and their paths are printed on failure.

pub mod api;
pub mod bins;
pub mod dataplane;
pub mod disrupt;
pub mod dns;
pub mod expect;
pub mod install;
pub mod kubelet;
pub mod objects;
pub mod policies;
pub mod process;
pub mod prometheus;
pub mod relay;
pub mod show;
pub mod wait;
pub mod writer;

use crate::cluster::{Cluster, ClusterError, Overlay, PodOptions, Stack};
use crate::container::{self, translate};
use crate::controlplane::ControlPlane;
use crate::netns::Netns;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use netheal_crds::{Mode, NetworkHealthPolicy, NetworkHealthPolicySpec, NodeNetworkReport};
use process::ChildProcess;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
pub use wait::{Check, Timeout, wait_for, wait_for_blocking};

/// The poll interval given to every agent (sysctls and iptables are polled; netlink changes
/// are events).
pub const AGENT_POLL_INTERVAL: &str = "1s";

/// Something the harness could not do.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The binaries are missing.
    #[error(transparent)]
    Bin(#[from] bins::BinError),
    /// A process could not be started.
    #[error(transparent)]
    Process(#[from] process::ProcessError),
    /// The control plane failed.
    #[error(transparent)]
    ControlPlane(#[from] crate::controlplane::ControlPlaneError),
    /// An API call failed.
    #[error(transparent)]
    Api(#[from] api::ApiError),
    /// The cluster builder failed.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// A wait timed out.
    #[error(transparent)]
    Timeout(#[from] Timeout),
    /// Anything else (I/O, a blocking task that died).
    #[error("{0}")]
    Other(String),
}

/// How to start a harness.
#[derive(Debug, Clone)]
pub struct HarnessOptions {
    /// The cluster's name (`h1`…): namespaces `nhc-<name>-*`, `cni-<name>-*`. The environment
    /// variable `NETHEAL_E2E_PREFIX` is put in front (to run two copies of the suite at once).
    pub cluster: String,
    /// Nodes `node1..=nodeN` built and registered at start.
    pub nodes: usize,
    /// Start one agent per node at start (false: call [`Harness::start_agent`]).
    pub start_agents: bool,
    /// Start the operator at start.
    pub start_operator: bool,
    /// Keep the `baseline` DryRun policy config/default ships (false: the scenario brings its
    /// own).
    pub keep_baseline: bool,
    /// Nodes whose agent runs as the node-fixer image (the DaemonSet's Pod on that node, run by
    /// podman in the node's namespace), not as a process.
    pub agent_containers: Vec<String>,
    /// Run the operator as the operator image (its Deployment's Pod, in a namespace of its
    /// own), not as a process.
    pub operator_container: bool,
    /// Nodes whose agent (a process) reaches the API server through a relay the test can cut
    /// ([`Harness::cut_agent`]).
    pub relayed_agents: Vec<String>,
    /// Extra environment of every agent process.
    pub agent_env: Vec<(String, String)>,
    /// The cluster's address families (default IPv4 only).
    pub stack: Stack,
    /// The cluster's overlay and IPAM (default flannel).
    pub overlay: Overlay,
}

impl HarnessOptions {
    /// `nodes` nodes in cluster `cluster`, agents and operator started.
    pub fn new(cluster: &str, nodes: usize) -> Self {
        Self {
            cluster: cluster.to_string(),
            nodes,
            start_agents: true,
            start_operator: true,
            keep_baseline: false,
            agent_containers: Vec::new(),
            operator_container: false,
            relayed_agents: Vec::new(),
            agent_env: Vec::new(),
            stack: Stack::Ipv4,
            overlay: Overlay::Flannel,
        }
    }

    /// The same on Calico's VXLAN overlay with Calico IPAM (`BlockAffinity` objects served by
    /// the API server, the `calico-node` agent).
    pub fn calico(mut self) -> Self {
        self.overlay = Overlay::CalicoVxlan;
        self
    }

    /// The same, dual-stack (IPv4 and IPv6).
    pub fn dual_stack(mut self) -> Self {
        self.stack = Stack::DualStack;
        self
    }
}

/// A pod the harness made: its object name, network namespace and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    /// Pod object name.
    pub name: String,
    /// Node.
    pub node: String,
    /// Network namespace.
    pub netns: String,
    /// Address.
    pub ip: Ipv4Addr,
    /// IPv6 address (dual-stack clusters).
    pub ip6: Option<Ipv6Addr>,
}

/// A running cluster-in-a-box with netheal. Field order is drop order: the processes go
/// first, then the kubelet emulation, the cluster's namespaces and the control plane.
pub struct Harness {
    operator: Option<ChildProcess>,
    standby_operators: Vec<ChildProcess>,
    operator_pods: Vec<String>,
    refusals_forgiven: BTreeMap<PathBuf, usize>,
    agents: BTreeMap<String, ChildProcess>,
    relays: BTreeMap<String, relay::Relay>,
    operator_netns: Option<Netns>,
    agent_containers: Vec<String>,
    operator_container: bool,
    relayed_agents: Vec<String>,
    agent_env: Vec<(String, String)>,
    cancel: CancellationToken,
    kubelet: kubelet::Kubelet,
    client: Client,
    cluster: Arc<Mutex<Cluster>>,
    controlplane: ControlPlane,
    name: String,
    log_dir: PathBuf,
    bin_dir: PathBuf,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("cluster", &self.name)
            .field("api", &self.controlplane.server())
            .field("log_dir", &self.log_dir)
            .finish_non_exhaustive()
    }
}

/// The directory a cluster's logs go to: `<workspace>/target/e2e-logs/<cluster>`.
pub fn log_dir(cluster: &str) -> PathBuf {
    bins::workspace_root()
        .join("target")
        .join("e2e-logs")
        .join(cluster)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, HarnessError> + Send + 'static,
) -> Result<T, HarnessError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| HarnessError::Other(format!("blocking task failed: {e}")))?
}

impl Harness {
    /// Start everything `opts` asks for.
    pub async fn start(mut opts: HarnessOptions) -> Result<Self, HarnessError> {
        if let Ok(prefix) = std::env::var("NETHEAL_E2E_PREFIX") {
            opts.cluster = format!("{prefix}{}", opts.cluster);
        }
        let bin_dir = blocking(|| Ok(bins::ensure_built()?)).await?;
        let log_dir = log_dir(&opts.cluster);
        let _ = std::fs::remove_dir_all(&log_dir);
        std::fs::create_dir_all(&log_dir)
            .map_err(|e| HarnessError::Other(format!("{}: {e}", log_dir.display())))?;
        init_tracing(&log_dir.join("harness.log"));
        let controlplane = ControlPlane::start(&log_dir.join("controlplane")).await?;
        let client = controlplane.admin_client().await?;
        install::install(&controlplane, &bins::workspace_root(), opts.keep_baseline).await?;
        tracing::info!("netheal installed");
        let agent = crate::cluster::objects::cni_agent(opts.overlay);
        api::create_cni_daemonset(&client, agent).await?;
        if opts.overlay == Overlay::CalicoVxlan {
            install::calico_crds(&controlplane, &bins::workspace_root())?;
        }
        let (cluster_name, stack, overlay) = (opts.cluster.clone(), opts.stack, opts.overlay);
        let cluster = blocking(move || Ok(Cluster::create(&cluster_name, stack, overlay)?)).await?;
        let cluster = Arc::new(Mutex::new(cluster));
        let kubelet = kubelet::Kubelet::default();
        let cancel = CancellationToken::new();
        let mut harness = Self {
            operator: None,
            standby_operators: Vec::new(),
            operator_pods: Vec::new(),
            refusals_forgiven: BTreeMap::new(),
            agents: BTreeMap::new(),
            relays: BTreeMap::new(),
            operator_netns: None,
            agent_containers: opts.agent_containers.clone(),
            operator_container: opts.operator_container,
            relayed_agents: opts.relayed_agents.clone(),
            agent_env: opts.agent_env.clone(),
            cancel: cancel.clone(),
            kubelet: kubelet.clone(),
            client: client.clone(),
            cluster: Arc::clone(&cluster),
            controlplane,
            name: opts.cluster.clone(),
            log_dir,
            bin_dir,
        };
        for i in 1..=opts.nodes {
            harness.add_node(&format!("node{i}")).await?;
        }
        tracing::info!(nodes = opts.nodes, "nodes registered");
        let dp: Arc<dyn kubelet::Dataplane> = Arc::new(dataplane::ClusterDataplane::new(&cluster));
        tokio::spawn(kubelet.run(client, dp, cancel));
        if opts.start_operator {
            harness.start_operator().await?;
        }
        if opts.start_agents {
            for i in 1..=opts.nodes {
                harness.start_agent(&format!("node{i}")).await?;
            }
        }
        tracing::info!(cluster = %harness.name, "harness started");
        Ok(harness)
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// An admin client of the control plane.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The admin kubeconfig of the control plane (for `kubectl`).
    pub fn kubeconfig(&self) -> &Path {
        self.controlplane.admin_kubeconfig()
    }

    /// Where the logs are.
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// The control plane.
    pub fn controlplane(&self) -> &ControlPlane {
        &self.controlplane
    }

    /// The kubelet emulation (what it did).
    pub fn kubelet(&self) -> &kubelet::Kubelet {
        &self.kubelet
    }

    /// The cluster, locked. Keep the guard short: the kubelet emulation needs it too.
    pub fn cluster(&self) -> MutexGuard<'_, Cluster> {
        self.cluster.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Run `f` on the cluster on a blocking thread.
    pub async fn with_cluster<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Cluster) -> Result<T, ClusterError> + Send + 'static,
    ) -> Result<T, HarnessError> {
        let cluster = Arc::clone(&self.cluster);
        blocking(move || {
            let mut guard = cluster.lock().unwrap_or_else(PoisonError::into_inner);
            Ok(f(&mut guard)?)
        })
        .await
    }

    /// The namespace of `node`.
    pub fn node_netns(&self, node: &str) -> String {
        format!("nhc-{}-{node}", self.name)
    }

    /// Build node `name` in the cluster, register its Node object and run its CNI agent pod.
    /// Its node-fixer is not started (see [`Harness::start_agent`]).
    pub async fn add_node(&mut self, name: &str) -> Result<(), HarnessError> {
        let node_name = name.to_string();
        let (node, affinities) = self
            .with_cluster(move |c| {
                c.add_node(&node_name)?;
                let affinities: Vec<serde_json::Value> = c
                    .block_affinity_objects()
                    .into_iter()
                    .filter(|a| a["spec"]["node"] == node_name.as_str())
                    .collect();
                Ok((node_object_of(c, &node_name), affinities))
            })
            .await?;
        let node = node.ok_or_else(|| HarnessError::Other(format!("no Node object for {name}")))?;
        // calico-node claims the node's block as it starts.
        for affinity in affinities {
            self.controlplane.apply_manifest(&affinity.to_string())?;
        }
        self.register_node(&node).await
    }

    /// Register a Node object (create, then its status, as a kubelet does) and be its kubelet:
    /// the DaemonSets' pods (the CNI agent, node-fixer) land on it.
    pub async fn register_node(&self, node: &Node) -> Result<(), HarnessError> {
        api::create_node(&self.client, node).await?;
        let name = node.metadata.name.clone().unwrap_or_default();
        let ips: Vec<String> = node
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .into_iter()
            .flatten()
            .filter(|a| a.type_ == "InternalIP")
            .map(|a| a.address.clone())
            .collect();
        self.kubelet.add_node(&name, &ips);
        Ok(())
    }

    /// Bring `node`'s Node object up to date with the cluster (its flannel `backend-data`
    /// after a VTEP MAC change: what flannel writes when the node rejoins).
    pub async fn sync_node_object(&self, node: &str) -> Result<(), HarnessError> {
        let name = node.to_string();
        let (mac, mac6) = self
            .with_cluster(move |c| {
                let node = c.node(&name)?;
                Ok((
                    node.vtep_mac.clone(),
                    node.v6.as_ref().map(|v6| v6.vtep_mac.clone()),
                ))
            })
            .await?;
        api::patch_node(
            &self.client,
            node,
            objects::vtep_mac_patch(&mac, mac6.as_deref()),
        )
        .await?;
        Ok(())
    }

    /// Add a pod on `node` in the cluster and register its object (Running, Ready). A
    /// controller-owned pod is adopted by a ReplicaSet of its own, which replaces it on that
    /// node when it is evicted.
    pub async fn add_pod(&self, node: &str, opts: PodOptions) -> Result<PodInfo, HarnessError> {
        let node_name = node.to_string();
        let (info, pod) = self
            .with_cluster(move |c| {
                let p = c.add_pod(&node_name, opts)?;
                let info = PodInfo {
                    name: p.name.clone(),
                    node: p.node.clone(),
                    netns: p.netns.name().to_string(),
                    ip: p.ip,
                    ip6: p.ip6,
                };
                let pod = pod_object_of(c, &info.name);
                Ok((info, pod))
            })
            .await?;
        let pod =
            pod.ok_or_else(|| HarnessError::Other(format!("no Pod object for {}", info.name)))?;
        self.register_pod(&pod).await?;
        Ok(info)
    }

    /// Register a workload Pod object made by the cluster: created without owner, then (when
    /// the cluster made it controller-owned) adopted by a ReplicaSet of its own; returns once
    /// the kubelet emulation reports it Running (and the ReplicaSet owns it).
    pub async fn register_pod(&self, pod: &Pod) -> Result<(), HarnessError> {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        api::ensure_namespace(&self.client, &namespace).await?;
        let created = objects::workload_pod(pod);
        api::create_pod(&self.client, &created).await?;
        let owned = match objects::pod_replicaset(&created) {
            Some(rs) => {
                let rs =
                    rs.map_err(|e| HarnessError::Other(format!("ReplicaSet of {name}: {e}")))?;
                api::create_replicaset(&self.client, &rs).await?;
                true
            }
            None => false,
        };
        let what = format!("pod {namespace}/{name} Running");
        wait_for(&what, Duration::from_secs(30), || async {
            match api::pod(&self.client, &namespace, &name).await {
                Ok(Some(p)) => {
                    let running =
                        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
                    let adopted = !owned
                        || p.metadata
                            .owner_references
                            .iter()
                            .flatten()
                            .any(|o| o.controller == Some(true));
                    if running && adopted {
                        Check::Done(())
                    } else {
                        Check::NotYet(format!("running={running} adopted={adopted}"))
                    }
                }
                Ok(None) => Check::NotYet("no pod".into()),
                Err(e) => Check::NotYet(e.to_string()),
            }
        })
        .await?;
        Ok(())
    }

    /// Register the objects of every cluster pod that has none yet (pods made by a fault
    /// injector).
    pub async fn register_new_pods(&self) -> Result<Vec<String>, HarnessError> {
        let existing: std::collections::BTreeSet<(String, String)> = api::pods(&self.client)
            .await?
            .into_iter()
            .map(|p| {
                (
                    p.metadata.namespace.unwrap_or_default(),
                    p.metadata.name.unwrap_or_default(),
                )
            })
            .collect();
        let pods = self.with_cluster(|c| Ok(c.pod_objects())).await?;
        let mut added = Vec::new();
        for pod in pods {
            let key = (
                pod.metadata.namespace.clone().unwrap_or_default(),
                pod.metadata.name.clone().unwrap_or_default(),
            );
            let is_agent = objects::is_cni_agent(&pod);
            if !is_agent && !existing.contains(&key) {
                self.register_pod(&pod).await?;
                added.push(key.1);
            }
        }
        Ok(added)
    }

    /// Start the operator, authenticated as its ServiceAccount with a token bound to one of
    /// the pods of its Deployment (which the kubelet emulation reports Running).
    pub async fn start_operator(&mut self) -> Result<(), HarnessError> {
        let pod = self
            .wait_running_pod(
                install::NAMESPACE,
                "app.kubernetes.io/component=operator",
                None,
            )
            .await?;
        if self.operator_container {
            let token = install::pod_bound_token(&self.client, install::OPERATOR_SA, &pod).await?;
            let netns = Netns::create(&format!("nhc-{}-operator", self.name))
                .map_err(|e| HarnessError::Other(e.to_string()))?;
            let ctx = self
                .pod_context("operator", "operator", &netns.path(), &token)
                .await?;
            self.operator_netns = Some(netns);
            let p = self.start_container("operator", "operator", &pod, ctx)?;
            self.operator = Some(p);
            return Ok(());
        }
        let p = self.spawn_operator(&pod, "operator").await?;
        self.operator = Some(p);
        Ok(())
    }

    /// Start `node`'s `node-fixer agent` (managing its node namespace and pod namespaces; the
    /// sysctl drop-in goes under the log directory, never to the host's `/etc/sysctl.d`),
    /// authenticated as node-fixer's ServiceAccount with a token bound to the DaemonSet's pod
    /// on that node.
    pub async fn start_agent(&mut self, node: &str) -> Result<(), HarnessError> {
        let pod = self
            .wait_running_pod(
                install::NAMESPACE,
                "app.kubernetes.io/component=node-fixer",
                Some(node),
            )
            .await?;
        let token = install::pod_bound_token(&self.client, install::NODE_FIXER_SA, &pod).await?;
        let sysctl_dir = self.log_dir.join("sysctl.d").join(node);
        std::fs::create_dir_all(&sysctl_dir)
            .map_err(|e| HarnessError::Other(format!("{}: {e}", sysctl_dir.display())))?;
        // flannel's lease of this node: a folder of the test, not the host's /run/flannel.
        let flannel_dir = self.log_dir.join("flannel").join(node);
        std::fs::create_dir_all(&flannel_dir)
            .map_err(|e| HarnessError::Other(format!("{}: {e}", flannel_dir.display())))?;
        let pod_netns = format!("/var/run/netns/cni-{}-{node}-*", self.name);
        if self.agent_containers.iter().any(|n| n == node) {
            let name = format!("agent-{node}");
            let netns_path = format!("/var/run/netns/{}", self.node_netns(node));
            let mut ctx = self
                .pod_context(&name, "node-fixer", &netns_path, &token)
                .await?;
            // The emulation's redirections: the drop-in and flannel's lease live under the log
            // directory, not in the host's /etc/sysctl.d and /run/flannel, and the pod
            // namespaces are this node's only (every node of the box shares one /var/run/netns).
            ctx.host_paths
                .insert("/etc/sysctl.d".into(), sysctl_dir.display().to_string());
            ctx.host_paths
                .insert("/run/flannel".into(), flannel_dir.display().to_string());
            ctx.arg_overrides.insert("--pod-netns".into(), pod_netns);
            let p = self.start_container(&name, "node-fixer", &pod, ctx)?;
            self.agents.insert(node.to_string(), p);
            return Ok(());
        }
        let kubeconfig = self.log_dir.join(format!("agent-{node}.kubeconfig"));
        let name = format!("agent-{node}");
        if self.relayed_agents.iter().any(|n| n == node) {
            let upstream = self.api_address()?;
            let relay = match self.relays.remove(&name) {
                Some(relay) => relay,
                None => relay::start(
                    None,
                    "127.0.0.1:0"
                        .parse()
                        .map_err(|e| HarnessError::Other(format!("{e}")))?,
                    upstream,
                )
                .await
                .map_err(|e| HarnessError::Other(format!("relay for {name}: {e}")))?,
            };
            self.controlplane.write_token_kubeconfig_via(
                &kubeconfig,
                install::NODE_FIXER_SA,
                &token,
                &format!("https://{}", relay.address()),
            )?;
            self.relays.insert(name.clone(), relay);
        } else {
            self.controlplane.write_token_kubeconfig(
                &kubeconfig,
                install::NODE_FIXER_SA,
                &token,
            )?;
        }
        let args: Vec<String> = vec![
            "agent".into(),
            "--node-name".into(),
            node.into(),
            "--netns".into(),
            self.node_netns(node),
            "--pod-netns".into(),
            pod_netns,
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--poll-interval".into(),
            AGENT_POLL_INTERVAL.into(),
            "--sysctl-dir".into(),
            sysctl_dir.display().to_string(),
            "--flannel-subnet-env".into(),
            flannel_dir.join("subnet.env").display().to_string(),
            "--log-format".into(),
            "text".into(),
        ];
        let mut env = self.env(&kubeconfig);
        env.extend(self.agent_env.iter().map(|(k, v)| (k.as_str(), v.clone())));
        // A restarted agent appends to a log of its own.
        let mut log = self.log_dir.join(format!("{name}.log"));
        for restart in 1.. {
            if !log.exists() {
                break;
            }
            log = self.log_dir.join(format!("{name}.restart-{restart}.log"));
        }
        let p = ChildProcess::spawn(
            &name,
            &self.bin_dir.join(bins::NODE_FIXER),
            &args,
            &env,
            &log,
        )?;
        self.agents.insert(node.to_string(), p);
        Ok(())
    }

    /// A pod of `namespace` with `selector` (on `node`, when given) that the kubelet emulation
    /// runs.
    pub async fn wait_running_pod(
        &self,
        namespace: &str,
        selector: &str,
        node: Option<&str>,
    ) -> Result<Pod, HarnessError> {
        let what = format!(
            "a Running pod {selector} in {namespace}{}",
            node.map(|n| format!(" on {n}")).unwrap_or_default()
        );
        Ok(wait_for(&what, Duration::from_secs(60), || async {
            match api::pods_selected(&self.client, namespace, selector).await {
                Ok(pods) => pods
                    .into_iter()
                    .find(|p| {
                        p.metadata.deletion_timestamp.is_none()
                            && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                            && node.is_none_or(|n| {
                                p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(n)
                            })
                    })
                    .map_or_else(|| Check::NotYet("none yet".into()), Check::Done),
                Err(e) => Check::NotYet(e.to_string()),
            }
        })
        .await?)
    }

    /// The API server's address.
    fn api_address(&self) -> Result<std::net::SocketAddr, HarnessError> {
        self.controlplane
            .server()
            .trim_start_matches("https://")
            .parse()
            .map_err(|e| HarnessError::Other(format!("API server address: {e}")))
    }

    /// Where the operator and agent processes serve `/metrics`, by process name (`operator`,
    /// `agent-node1`, …). They listen on `127.0.0.1:0`: this is the port the kernel gave each
    /// one's listening socket. A process that has not bound yet (or a container) is left out.
    pub fn metrics_addresses(&self) -> BTreeMap<String, std::net::SocketAddr> {
        self.operator
            .iter()
            .chain(self.standby_operators.iter())
            .chain(self.agents.values())
            .filter_map(|p| match prometheus::listen_addresses(p.pid()).as_slice() {
                [one] => Some((p.name().to_string(), *one)),
                _ => None,
            })
            .collect()
    }

    /// Stop `node`'s agent.
    pub fn stop_agent(&mut self, node: &str) {
        self.agents.remove(node);
        self.relays.remove(&format!("agent-{node}"));
    }

    /// What a kubelet gives a container of a Pod: its ServiceAccount token folder (the
    /// pod-bound `token`, the cluster CA, the namespace) and the in-cluster address of the API
    /// server, reached through a relay in the container's network namespace.
    async fn pod_context(
        &mut self,
        name: &str,
        container: &str,
        netns_path: &str,
        token: &str,
    ) -> Result<translate::Context, HarnessError> {
        let sa_dir = self.log_dir.join("serviceaccount").join(name);
        container::write_service_account_dir(
            &sa_dir,
            token,
            self.controlplane.ca_pem(),
            install::NAMESPACE,
        )
        .map_err(|e| HarnessError::Other(format!("{}: {e}", sa_dir.display())))?;
        let upstream = self.api_address()?;
        let relay = relay::start(Some(netns_path), upstream, upstream)
            .await
            .map_err(|e| HarnessError::Other(format!("relay into {netns_path}: {e}")))?;
        self.relays.insert(name.to_string(), relay);
        let mut extra_env: Vec<(String, String)> = vec![
            ("KUBERNETES_SERVICE_HOST".into(), upstream.ip().to_string()),
            (
                "KUBERNETES_SERVICE_PORT".into(),
                upstream.port().to_string(),
            ),
        ];
        // As for the processes: NETHEAL_E2E_LOG overrides the manifest's RUST_LOG.
        if let Ok(filter) = std::env::var("NETHEAL_E2E_LOG") {
            extra_env.push(("RUST_LOG".into(), filter));
        }
        Ok(translate::Context {
            container: container.to_string(),
            netns_path: netns_path.to_string(),
            service_account_dir: Some(sa_dir.display().to_string()),
            extra_env: vec![
                ("KUBERNETES_SERVICE_HOST".into(), upstream.ip().to_string()),
                (
                    "KUBERNETES_SERVICE_PORT".into(),
                    upstream.port().to_string(),
                ),
            ],
            ..translate::Context::default()
        })
    }

    /// Run `pod`'s container with podman as `ctx` says, its output in `<name>.log`; the
    /// manifest's image name (`netheal-node-fixer`) is the image `make images` built.
    fn start_container(
        &self,
        name: &str,
        component: &str,
        pod: &Pod,
        ctx: translate::Context,
    ) -> Result<ChildProcess, HarnessError> {
        let spec = translate::run_spec(pod, &ctx)
            .map_err(|e| HarnessError::Other(format!("{name}: the manifest: {e}")))?;
        let image = container::image(component);
        // `netheal-node-fixer`, `ghcr.io/netheal/netheal-node-fixer:0.1.0`: the repository's
        // last path segment, without its tag.
        let repository = spec.image.rsplit('/').next().unwrap_or_default();
        if repository.split(':').next() != Some(format!("netheal-{component}").as_str()) {
            return Err(HarnessError::Other(format!(
                "{name}: the manifest's image {} is not netheal-{component}",
                spec.image
            )));
        }
        container::require_image(&image).map_err(|e| HarnessError::Other(e.to_string()))?;
        let container_name = self.container_name(name);
        container::remove(&container_name);
        let args = container::run_command(&container_name, &spec.flags, &image, &spec.args);
        tracing::info!(name, image, flags = ?spec.flags, args = ?spec.args, "container");
        Ok(ChildProcess::spawn(
            name,
            Path::new("podman"),
            &args,
            &[],
            &self.log_dir.join(format!("{name}.log")),
        )?
        .with_stop_command("podman", &["rm", "--force", "--time=0", &container_name]))
    }

    /// The podman name of a containerised agent or operator (`agent-node1`, `operator`).
    pub fn container_name(&self, name: &str) -> String {
        format!("netheal-e2e-{}-{name}", self.name)
    }

    fn env(&self, kubeconfig: &Path) -> Vec<(&str, String)> {
        vec![
            ("KUBECONFIG", kubeconfig.display().to_string()),
            (
                "RUST_LOG",
                std::env::var("NETHEAL_E2E_LOG").unwrap_or_else(|_| "info".to_string()),
            ),
            ("POD_NAMESPACE", "netheal-system".to_string()),
        ]
    }

    /// Processes that died, with the end of their logs.
    pub fn dead_processes(&mut self) -> Vec<String> {
        let mut dead = Vec::new();
        for p in self
            .operator
            .iter_mut()
            .chain(self.standby_operators.iter_mut())
            .chain(self.agents.values_mut())
        {
            if let Some(status) = p.exited() {
                dead.push(format!("{} exited ({status}):\n{}", p.name(), p.tail(20)));
            }
        }
        dead
    }

    /// The log files, one a line (printed when a scenario fails).
    pub fn log_files(&self) -> String {
        let mut lines = vec![
            format!(
                "logs of cluster {} in {}",
                self.name,
                self.log_dir.display()
            ),
            format!("  harness: {}", self.log_dir.join("harness.log").display()),
            format!("  kubectl: KUBECONFIG={}", self.kubeconfig().display()),
            self.controlplane.log_files(),
        ];
        for p in self.operator.iter().chain(self.agents.values()) {
            lines.push(format!("  {}: {}", p.name(), p.log().display()));
        }
        lines.join("\n")
    }

    // ---- policies, reports, events ----

    /// Create policy `name`.
    pub async fn create_policy(
        &self,
        name: &str,
        spec: NetworkHealthPolicySpec,
    ) -> Result<NetworkHealthPolicy, HarnessError> {
        Ok(api::create_policy(&self.client, name, spec).await?)
    }

    /// Switch policy `name` to `mode`.
    pub async fn set_mode(&self, name: &str, mode: Mode) -> Result<(), HarnessError> {
        api::set_mode(&self.client, name, mode).await?;
        Ok(())
    }

    /// Merge-patch policy `name`'s spec.
    pub async fn patch_policy(
        &self,
        name: &str,
        spec: serde_json::Value,
    ) -> Result<(), HarnessError> {
        api::patch_policy_spec(&self.client, name, spec).await?;
        Ok(())
    }

    /// Read policy `name`.
    pub async fn policy(&self, name: &str) -> Result<NetworkHealthPolicy, HarnessError> {
        Ok(api::policy(&self.client, name).await?)
    }

    /// Read `node`'s report.
    pub async fn report(&self, node: &str) -> Result<Option<NodeNetworkReport>, HarnessError> {
        Ok(api::report(&self.client, node).await?)
    }

    /// Every Event.
    pub async fn events(&self) -> Result<Vec<k8s_openapi::api::events::v1::Event>, HarnessError> {
        Ok(api::events(&self.client).await?)
    }

    /// Pause or unpause `node` (annotation `netheal.io/paused`).
    pub async fn pause_node(&self, node: &str, paused: bool) -> Result<(), HarnessError> {
        api::patch_node(&self.client, node, objects::paused_patch(paused)).await?;
        Ok(())
    }

    /// Wait until `f` accepts policy `name`; on timeout the error shows the policy's status.
    pub async fn wait_policy<T>(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        f: impl Fn(&NetworkHealthPolicy) -> Option<T>,
    ) -> Result<T, HarnessError> {
        let f = &f;
        Ok(wait_for(what, timeout, || async move {
            match api::policy(&self.client, name).await {
                Ok(p) => match f(&p) {
                    Some(v) => Check::Done(v),
                    None => Check::NotYet(describe(&p.status)),
                },
                Err(e) => Check::NotYet(e.to_string()),
            }
        })
        .await?)
    }

    /// Wait until `f` accepts `node`'s report; on timeout the error shows the report.
    pub async fn wait_report<T>(
        &self,
        node: &str,
        what: &str,
        timeout: Duration,
        f: impl Fn(&NodeNetworkReport) -> Option<T>,
    ) -> Result<T, HarnessError> {
        let f = &f;
        Ok(wait_for(what, timeout, || async move {
            match api::report(&self.client, node).await {
                Ok(Some(r)) => match f(&r) {
                    Some(v) => Check::Done(v),
                    None => Check::NotYet(format!(
                        "spec: {}; status: {}",
                        describe(&r.spec),
                        describe(&r.status)
                    )),
                },
                Ok(None) => Check::NotYet(format!("no report for {node} yet")),
                Err(e) => Check::NotYet(e.to_string()),
            }
        })
        .await?)
    }

    /// Wait until the kubelet emulation has restarted the CNI agent on `node` at least
    /// `at_least` times (it records a restart once the DaemonSet's new pod has re-programmed
    /// the data plane).
    pub async fn wait_cni_restarts(
        &self,
        node: &str,
        at_least: usize,
        timeout: Duration,
    ) -> Result<usize, HarnessError> {
        let what = format!("{at_least} CNI agent restart(s) on {node}");
        Ok(wait_for(&what, timeout, || async {
            let restarts = self.kubelet.cni_restarts(node);
            if restarts >= at_least {
                Check::Done(restarts)
            } else {
                Check::NotYet(format!("{restarts} restart(s)"))
            }
        })
        .await?)
    }

    /// Wait until a ping from namespace `from` to `to` succeeds (`reachable`) or fails.
    pub async fn wait_ping(
        &self,
        from: &str,
        to: impl Into<IpAddr>,
        reachable: bool,
        timeout: Duration,
    ) -> Result<(), HarnessError> {
        let from = from.to_string();
        let to: IpAddr = to.into();
        let what = format!(
            "ping {from} -> {to} to {}",
            if reachable { "succeed" } else { "fail" }
        );
        blocking(move || {
            Ok(wait_for_blocking(&what, timeout, || {
                if ping(&from, to) == reachable {
                    Check::Done(())
                } else {
                    Check::NotYet(format!("ping reachable={}", !reachable))
                }
            })?)
        })
        .await
    }
}

/// Send this process's own logs (the harness, the kubelet emulation) to `path`, once per
/// process; a subscriber installed before wins.
fn init_tracing(path: &Path) {
    if let Ok(file) = std::fs::File::create(path) {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("NETHEAL_E2E_LOG")
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            )
            .with_ansi(false)
            .with_writer(Mutex::new(file))
            .try_init();
    }
}

/// One ping (1 s timeout) from namespace `from` to `to` (IPv4 or IPv6); true when it was
/// answered. Does not lock the cluster.
pub fn ping(from: &str, to: impl Into<IpAddr>) -> bool {
    let to: IpAddr = to.into();
    crate::netns::run(
        "ip",
        &[
            "netns",
            "exec",
            from,
            "ping",
            "-n",
            "-q",
            "-c",
            "1",
            "-W",
            "1",
            &to.to_string(),
        ],
    )
    .is_ok()
}

/// Read `/proc/sys/<path>` inside namespace `netns` (without locking the cluster).
pub fn read_sysctl(netns: &str, path: &str) -> Result<String, HarnessError> {
    let out = crate::netns::run(
        "ip",
        &["netns", "exec", netns, "cat", &format!("/proc/sys/{path}")],
    )
    .map_err(|e| HarnessError::Other(e.to_string()))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// JSON text of a status, shortened for error messages.
pub fn describe<T: serde::Serialize>(value: &T) -> String {
    let text = serde_json::to_string(value).unwrap_or_else(|e| e.to_string());
    if text.len() > 4000 {
        let mut end = 4000;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &text[..end])
    } else {
        text
    }
}

/// The Node object of cluster node `name`.
pub fn node_object_of(cluster: &Cluster, name: &str) -> Option<Node> {
    cluster
        .node_objects()
        .into_iter()
        .find(|n| n.metadata.name.as_deref() == Some(name))
}

/// The Pod object of workload pod `name`, as the cluster builder describes it.
pub fn pod_object_of(cluster: &Cluster, name: &str) -> Option<Pod> {
    cluster
        .pod_objects()
        .into_iter()
        .find(|p| p.metadata.name.as_deref() == Some(name) && !objects::is_cni_agent(p))
}

impl Harness {
    /// Every line of the operator's and the agents' logs where the API server refused a request
    /// (403): netheal's RBAC and admission policy must let its own binaries do their work.
    pub fn refused_requests(&self) -> Vec<String> {
        self.operator
            .iter()
            .chain(self.standby_operators.iter())
            .chain(self.agents.values())
            .flat_map(|p| {
                let text = std::fs::read_to_string(p.log()).unwrap_or_default();
                // What an API server that was just restarted refused before its RBAC caches
                // synced is not netheal's RBAC (see `Harness::restart_apiserver`).
                let from = self
                    .refusals_forgiven
                    .get(p.log())
                    .copied()
                    .unwrap_or(0)
                    .min(text.len());
                let text = text.get(from..).unwrap_or_default();
                text.lines()
                    .filter(|l| l.contains("Forbidden") || l.contains("code: 403"))
                    .map(|l| format!("{}: {l}", p.name()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let refused = self.refused_requests();
        let dead = self.dead_processes();
        if std::thread::panicking() || !dead.is_empty() {
            eprintln!("{}", self.log_files());
            for d in dead {
                eprintln!("{d}");
            }
            eprintln!("kubelet emulation: {:?}", self.kubelet.events());
        }
        self.operator = None;
        self.agents.clear();
        self.relays.clear();
        self.operator_netns = None;
        self.cancel.cancel();
        if !std::thread::panicking() && !refused.is_empty() {
            panic!(
                "the API server refused netheal's own requests (RBAC or admission):\n{}",
                refused.join("\n")
            );
        }
    }
}
