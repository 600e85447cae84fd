//! The engine: scan a node (probe → check) and execute one approved order (fix). Blocking
//! functions; async callers run them on `tokio::task::spawn_blocking`.

use k8s_openapi::api::core::v1::Node;
use netheal_crds::{
    Finding, NetworkHealthPolicySpec, Outcome, RemediationOrder, RemediationResult,
};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What the cluster says about the nodes (the truth overlay checks compare against).
#[derive(Clone, Debug, Default)]
pub struct ClusterFacts {
    /// This node's name (its own Node object is not a peer).
    pub this_node: Option<String>,
    /// Every Node object known.
    pub nodes: Vec<Node>,
}

/// Where and how the engine works.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The host network namespace to work in: `None` = the process's own; `Some(name)` =
    /// `/var/run/netns/NAME` (or an absolute path).
    pub netns: Option<String>,
    /// Glob of the pod network namespaces (bind-mount paths).
    pub pod_netns_glob: String,
    /// Directory of the sysctl drop-in file (`90-netheal.conf`).
    pub sysctl_dir: PathBuf,
    /// The cluster's nodes.
    pub cluster: ClusterFacts,
}

/// The default glob of pod network namespaces created by the CRI.
pub const DEFAULT_POD_NETNS_GLOB: &str = "/var/run/netns/cni-*";
/// The default directory of the sysctl drop-in.
pub const DEFAULT_SYSCTL_DIR: &str = "/etc/sysctl.d";
/// The drop-in file name written under the sysctl directory.
pub const SYSCTL_DROPIN: &str = "90-netheal.conf";

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            netns: None,
            pod_netns_glob: DEFAULT_POD_NETNS_GLOB.to_string(),
            sysctl_dir: PathBuf::from(DEFAULT_SYSCTL_DIR),
            cluster: ClusterFacts::default(),
        }
    }
}

/// The result of one scan.
#[derive(Clone, Debug, Default)]
pub struct ScanOutput {
    /// Every finding, in a stable order.
    pub findings: Vec<Finding>,
    /// The iptables backend the host's rules live in (`nft` or `legacy`), when known.
    pub iptables_backend: Option<String>,
    /// Probes that failed (findings may be partial).
    pub errors: Vec<String>,
    /// How long the scan took.
    pub duration: Duration,
}

/// Probe the node (and its pod namespaces) and run every enabled check of `policy`.
pub fn scan(policy: &NetworkHealthPolicySpec, config: &EngineConfig) -> ScanOutput {
    let start = Instant::now();
    let _ = (policy, config);
    ScanOutput {
        duration: start.elapsed(),
        ..Default::default()
    }
}

/// Execute one approved node-local order. Idempotent, honours `order.dry_run`, never panics.
pub fn execute(
    order: &RemediationOrder,
    policy: &NetworkHealthPolicySpec,
    config: &EngineConfig,
) -> RemediationResult {
    let _ = (policy, config);
    RemediationResult {
        id: order.id.clone(),
        action: order.action,
        target: order.target.clone(),
        outcome: Outcome::Failed,
        before: String::new(),
        after: String::new(),
        dry_run: order.dry_run,
        time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
        message: Some("not implemented yet".into()),
    }
}
