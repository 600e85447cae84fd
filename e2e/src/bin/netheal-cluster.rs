//! `netheal-cluster`: bring a cluster-in-a-box up for a person, and take it down again.
//!
//! `up` builds the namespaces, prints one `node: NAME netns: NAMESPACE` line per node (and one
//! `pod: …` line per pod), records the cluster in `/run/netheal-e2e/<name>.json` and exits,
//! leaving the cluster running: the network alone, without a control plane (`netheal-demo up`
//! adds the control plane and netheal). `down` removes every namespace of the cluster, also the
//! leftovers of a killed `up`.

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use netheal_e2e::cluster::state::{
    ClusterState, cleanup_stale, list_cluster_namespaces, state_path,
};
use netheal_e2e::cluster::{Cluster, Overlay, PodOptions, PodStyle, Stack};

/// Network-namespace nodes with a flannel-style overlay, for trying netheal on one machine.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build a cluster and leave it running.
    Up {
        /// Number of nodes (`node1`…).
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Cluster name: 1-8 lowercase letters or digits; namespaces are `nhc-<name>-*`, `cni-<name>-*`.
        #[arg(long, default_value = "demo")]
        name: String,
        /// How pods are wired: `bridge` (cni0) or `calico` (cali* veths, /32).
        #[arg(long, default_value = "calico")]
        pod_style: PodStyle,
        /// Pods per node.
        #[arg(long, default_value_t = 1)]
        pods_per_node: usize,
        /// Dual-stack: an IPv6 underlay, `flannel-v6.1`, an IPv6 range per node and an IPv6
        /// address per pod beside the IPv4 ones.
        #[arg(long)]
        dual_stack: bool,
        /// The overlay: `flannel` (flannel.1, host-local IPAM from podCIDR) or `calico-vxlan`
        /// (vxlan.calico, one /26 Calico IPAM block per node; Calico-style pods only).
        #[arg(long, default_value = "flannel")]
        overlay: Overlay,
    },
    /// Remove a cluster (every `nhc-<name>-*` and `cni-<name>-*` namespace and its state).
    Down {
        /// Cluster name.
        #[arg(long, default_value = "demo")]
        name: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    use std::io::IsTerminal;
    // Colours only on a terminal and without NO_COLOR (no-color.org).
    tracing_subscriber::fmt()
        .with_ansi(
            std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Args::parse().command {
        Command::Up {
            nodes,
            name,
            pod_style,
            pods_per_node,
            dual_stack,
            overlay,
        } => {
            up(UpArgs {
                nodes,
                name,
                pod_style,
                pods_per_node,
                stack: if dual_stack {
                    Stack::DualStack
                } else {
                    Stack::Ipv4
                },
                overlay,
            })
            .await
        }
        Command::Down { name } => down(&name),
    }
}

struct UpArgs {
    nodes: usize,
    name: String,
    pod_style: PodStyle,
    pods_per_node: usize,
    stack: Stack,
    overlay: Overlay,
}

fn build(args: &UpArgs) -> anyhow::Result<Cluster> {
    let mut cluster = Cluster::build_shaped(&args.name, args.nodes, args.stack, args.overlay)
        .context("building the cluster")?;
    let names: Vec<String> = cluster.nodes().iter().map(|n| n.name.clone()).collect();
    for node in &names {
        for _ in 0..args.pods_per_node {
            cluster
                .add_pod(node, PodOptions::new(args.pod_style))
                .with_context(|| format!("adding a pod on {node}"))?;
        }
    }
    Ok(cluster)
}

fn print_cluster(state: &ClusterState) {
    for node in &state.nodes {
        let mut extra = node
            .pod_cidr6
            .as_ref()
            .map(|cidr| format!(" podCIDR6: {cidr}"))
            .unwrap_or_default();
        if let Some(block) = &node.calico_block {
            extra.push_str(&format!(" calicoBlock: {block}"));
        }
        println!(
            "node: {} netns: {} ip: {} podCIDR: {} vtep: {}{extra}",
            node.name, node.netns, node.underlay_ip, node.pod_cidr, node.vtep_mac
        );
    }
    for pod in &state.pods {
        let v6 = pod.ip6.map(|ip| format!(" ip6: {ip}")).unwrap_or_default();
        println!(
            "pod: {} netns: {} ip: {}{v6} node: {}",
            pod.name, pod.netns, pod.ip, pod.node
        );
    }
}

async fn up(args: UpArgs) -> anyhow::Result<()> {
    let existing = list_cluster_namespaces(&args.name)?;
    if !existing.is_empty() || state_path(&args.name).exists() {
        bail!(
            "cluster {:?} is already up ({} namespaces); run `netheal-cluster down --name {}` first",
            args.name,
            existing.len(),
            args.name
        );
    }
    // Catch Ctrl-C from here on, so that an interrupted build still removes what it made.
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let name = args.name.clone();
    let building = tokio::task::spawn_blocking(move || build(&args).map(|c| (c, args)));
    tokio::pin!(building);
    let (cluster, _args) = tokio::select! {
        built = &mut building => built.context("the build task failed")??,
        _ = &mut interrupted => {
            eprintln!("interrupted: removing the partial cluster");
            drop(building.await);
            cleanup_stale(&name)?;
            bail!("interrupted");
        }
    };
    let state = cluster.keep_running();
    let path = state_path(&state.name);
    state.write(&path)?;
    print_cluster(&state);
    println!("state: {}", path.display());
    println!("down: netheal-cluster down --name {}", state.name);
    Ok(())
}

/// True when `pid` is a live `netheal-cluster` process (not a recycled pid).
fn is_our_process(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains("netheal-cluster"))
        .unwrap_or(false)
}

fn down(name: &str) -> anyhow::Result<()> {
    let path = state_path(name);
    if path.exists() {
        match ClusterState::read(&path) {
            Ok(state) => {
                if let Some(pid) = state.pid.filter(|p| *p != std::process::id())
                    && is_our_process(pid)
                {
                    // The foreground `up` removes the cluster itself on SIGTERM.
                    let _ = std::process::Command::new("kill")
                        .args(["-TERM", &pid.to_string()])
                        .status();
                    for _ in 0..50 {
                        if !is_our_process(pid) {
                            break;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(100));
                    }
                }
                if let Some(kubeconfig) = state.kubeconfig {
                    let _ = std::fs::remove_file(kubeconfig);
                }
            }
            Err(e) => tracing::warn!(error = %e, "ignoring an unreadable state file"),
        }
    }
    let removed = cleanup_stale(name)?;
    for ns in &removed {
        println!("removed: {ns}");
    }
    if removed.is_empty() {
        println!("cluster {name}: nothing to remove");
    }
    Ok(())
}
