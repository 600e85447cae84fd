//! Command-line flags of `node-fixer scan` and `node-fixer fix`.

use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// How results are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// One line per finding, then a summary (for people).
    #[default]
    Table,
    /// One JSON document (for scripts).
    Json,
}

/// Flags shared by `scan` and `fix`.
#[derive(Args, Clone, Debug)]
pub struct ScanArgs {
    /// Work in this network namespace (a name under /var/run/netns, or an absolute path)
    /// instead of the process's own.
    #[arg(long, value_name = "NAME")]
    pub netns: Option<String>,
    /// NetworkHealthPolicy YAML file; without it the built-in default policy is used (every
    /// check on, every node-local fix approved).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Glob of the pod network namespaces checked for inherited sysctls.
    #[arg(long = "pod-netns", value_name = "GLOB", default_value = crate::engine::DEFAULT_POD_NETNS_GLOB)]
    pub pod_netns: String,
    /// Node objects as `kubectl get nodes -o json` prints them (a List with items): the truth
    /// for the overlay checks (VTEP MACs, public IPs, pod CIDRs). Without it those checks are
    /// skipped.
    #[arg(long, value_name = "FILE")]
    pub nodes: Option<PathBuf>,
    /// Service objects as `kubectl get service -o json` prints them (one Service or a List):
    /// the cluster IPs and ports kube-proxy must have programmed on the node
    /// (`ServiceVipMissing`). Without it that check has nothing to compare.
    #[arg(long, value_name = "FILE")]
    pub services: Option<PathBuf>,
    /// Calico's `BlockAffinity` objects as `kubectl get blockaffinities.crd.projectcalico.org -o
    /// json` prints them (a List): the IPAM blocks of each node, whose routes
    /// `PeerRouteMissing` checks on a cluster with Calico IPAM.
    #[arg(long = "calico-blocks", value_name = "FILE")]
    pub calico_blocks: Option<PathBuf>,
    /// This node's name (its own Node object is not a peer); defaults to the hostname.
    #[arg(long = "node-name", value_name = "NAME", env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// Directory of the sysctl drop-in file written when the policy persists sysctls.
    #[arg(long = "sysctl-dir", value_name = "DIR", default_value = crate::engine::DEFAULT_SYSCTL_DIR)]
    pub sysctl_dir: PathBuf,
    /// flannel's lease file, compared with the pod bridge's address (`BridgeSubnetMismatch`).
    #[arg(long = "flannel-subnet-env", value_name = "FILE", env = "NETHEAL_FLANNEL_SUBNET_ENV", default_value = crate::probe::node_files::DEFAULT_FLANNEL_SUBNET_ENV)]
    pub flannel_subnet_env: PathBuf,
}

/// Flags of `fix`.
#[derive(Args, Clone, Debug)]
pub struct FixArgs {
    /// The scan flags.
    #[command(flatten)]
    pub scan: ScanArgs,
    /// Stop right before every write and report what would change.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
}
