//! `netheal-demo`: netheal healing a cluster-in-a-box, live, on one machine (root).
//!
//! - `run`: bring up a 3-node cluster on a real control plane, with netheal installed as
//!   users install it, the operator and one agent per node; apply the dry-run policy; inject the seed faults; print the dry-run report
//!   (`kubectl get nhp`, `kubectl get nnr`, the findings); switch to Enforce and print the
//!   actions as they happen and the final status; tear everything down.
//! - `up`: the same cluster with netheal running (`--no-netheal`: without the operator and
//!   the agents), in the foreground until SIGTERM/Ctrl-C (what `make cluster-up` starts in the
//!   background); prints `kubeconfig: PATH` and one `node: NAME netns: NAMESPACE` line per node.
//!
//! Both first check what they need (root, `ip`, `iptables`, `ping`, and Go or
//! `NETHEAL_CONTROLPLANE_BIN` for the control plane) and say what is missing.
//! - `down`: stop a running `up` (by its pid file) and remove what is left of the cluster.

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use netheal_crds::{Mode, NetworkHealthPolicy};
use netheal_e2e::cluster::faults::LostHow;
use netheal_e2e::cluster::{Overlay, PodOptions, Stack};
use netheal_e2e::harness::policies::{POLICY, calico_scenario_policy, scenario_policy};
use netheal_e2e::harness::{Harness, HarnessOptions, ping, show};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(version, about = "netheal healing a cluster-in-a-box, live")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The whole demo: dry-run report, then Enforce and the healing, then tear down.
    Run {
        /// Cluster name.
        #[arg(long, default_value = "demo")]
        name: String,
        /// How long to wait for the healing, in seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Bring the cluster up with netheal running; stay in the foreground until SIGTERM.
    Up {
        /// Cluster name.
        #[arg(long, default_value = "demo")]
        name: String,
        /// Nodes.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Also apply the dry-run policy.
        #[arg(long)]
        policy: bool,
        /// Only the cluster and its control plane: no operator, no agents.
        #[arg(long, conflicts_with = "policy")]
        no_netheal: bool,
        /// Dual-stack: IPv6 underlay, `flannel-v6.1`, IPv6 pod addresses and dual-stack objects.
        #[arg(long, conflicts_with = "overlay")]
        dual_stack: bool,
        /// The overlay: `flannel` or `calico-vxlan` (Calico IPAM, BlockAffinity objects,
        /// calico-node; the policy then audits Calico).
        #[arg(long, default_value = "flannel")]
        overlay: Overlay,
    },
    /// Stop a running `up` and remove the cluster's leftovers.
    Down {
        /// Cluster name.
        #[arg(long, default_value = "demo")]
        name: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let command = Args::parse().command;
    if !matches!(command, Command::Down { .. })
        && let Err(missing) = check_prerequisites()
    {
        eprintln!("netheal-demo: {missing}");
        std::process::exit(2);
    }
    match command {
        Command::Run { name, timeout } => run(&name, Duration::from_secs(timeout)).await,
        Command::Up {
            name,
            nodes,
            policy,
            no_netheal,
            dual_stack,
            overlay,
        } => {
            let mut opts = HarnessOptions::new(&name, nodes);
            opts.stack = if dual_stack {
                Stack::DualStack
            } else {
                Stack::Ipv4
            };
            opts.overlay = overlay;
            up(opts, policy, !no_netheal).await
        }
        Command::Down { name } => down(&name),
    }
}

fn pid_file(name: &str) -> PathBuf {
    PathBuf::from(format!("/run/netheal-e2e/{name}-netheal.pid"))
}

fn section(title: &str) {
    println!("\n==> {title}");
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// What the demo needs, checked before anything is built: a missing `ping` would otherwise
/// print FAIL in every ping table, even after healing.
fn check_prerequisites() -> anyhow::Result<()> {
    let mut missing = Vec::new();
    // /proc/self belongs to the process's effective user.
    let euid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self")?);
    if euid != 0 {
        missing.push("root (network namespaces, iptables): run it with sudo".to_string());
    }
    for (program, package) in [
        ("ip", "iproute2"),
        ("iptables", "iptables"),
        ("ping", "iputils-ping"),
    ] {
        if !on_path(program) {
            missing.push(format!("`{program}` (Debian package {package})"));
        }
    }
    if std::env::var_os("NETHEAL_CONTROLPLANE_BIN").is_none() && !on_path("go") {
        missing.push(
            "Go, to build the control plane (or NETHEAL_CONTROLPLANE_BIN=DIR with etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kubectl)"
                .to_string(),
        );
    }
    if missing.is_empty() {
        return Ok(());
    }
    bail!("the demo needs:\n  - {}", missing.join("\n  - "))
}

fn kubectl(h: &Harness, args: &[&str]) {
    let out = std::process::Command::new(h.controlplane().bin_dir().join("kubectl"))
        .env("KUBECONFIG", h.kubeconfig())
        .args(args)
        .output();
    match out {
        Ok(o) => {
            println!("$ kubectl {}", args.join(" "));
            print!("{}", String::from_utf8_lossy(&o.stdout));
            if !o.status.success() {
                print!("{}", String::from_utf8_lossy(&o.stderr));
            }
        }
        Err(e) => println!("(kubectl not available: {e})"),
    }
}

async fn start(mut opts: HarnessOptions, netheal: bool) -> anyhow::Result<Harness> {
    let nodes = opts.nodes;
    opts.start_agents = netheal;
    opts.start_operator = netheal;
    let h = Harness::start(opts)
        .await
        .context("starting the cluster-in-a-box")?;
    for i in 1..=nodes {
        h.add_pod(&format!("node{i}"), PodOptions::calico())
            .await
            .context("adding a pod")?;
    }
    Ok(h)
}

async fn run(name: &str, timeout: Duration) -> anyhow::Result<()> {
    section(
        "a 3-node cluster-in-a-box on a real control plane: netheal installed with kubectl apply -k, netheal-operator, one node-fixer agent per node",
    );
    let h = start(HarnessOptions::new(name, 3), true).await?;
    println!("{}", h.log_files());
    kubectl(&h, &["version"]);
    let pods: Vec<(String, String, std::net::Ipv4Addr)> = h
        .with_cluster(|c| {
            Ok(c.pods()
                .iter()
                .map(|p| (p.node.clone(), p.netns.name().to_string(), p.ip))
                .collect())
        })
        .await?;
    kubectl(&h, &["get", "nodes", "-o", "wide"]);

    section("the dry-run policy");
    let spec = scenario_policy(Mode::DryRun);
    h.create_policy(POLICY, spec.clone()).await?;
    println!(
        "{}",
        serde_yaml::to_string(&NetworkHealthPolicy::new(POLICY, spec))?
    );

    section("injecting the seed faults");
    h.with_cluster(|c| c.inject_reject_rules("node1")).await?;
    println!(
        "node1: -A INPUT/FORWARD -j REJECT --reject-with icmp-host-prohibited (004 §6), plus a kube-proxy REJECT that must survive"
    );
    h.with_cluster(|c| c.inject_ip_forward_off("node2")).await?;
    println!("node2: net.ipv4.ip_forward=0 (004 §2)");
    h.with_cluster(|c| c.inject_arp_ignore("node3", netheal_e2e::cluster::PodStyle::Calico))
        .await?;
    h.register_new_pods().await?;
    println!("node3: arp_ignore=2, and a pod created meanwhile inherits it (000)");
    h.with_cluster(|c| c.inject_lost_neighbour("node2", "node3", LostHow::Incomplete))
        .await?;
    println!("node2: its neighbour for node3's VTEP is INCOMPLETE (003)");
    let all_pods: Vec<(String, std::net::Ipv4Addr)> = h
        .with_cluster(|c| {
            Ok(c.pods()
                .iter()
                .map(|p| (p.netns.name().to_string(), p.ip))
                .collect())
        })
        .await?;
    print_pings(&all_pods);

    section("the dry-run report (nothing is changed)");
    let settle = Instant::now();
    let mut last = 0;
    loop {
        let p = h.policy(POLICY).await?;
        let open = p.status.as_ref().map_or(0, |s| s.findings.len());
        if open > 0 && open == last && settle.elapsed() > Duration::from_secs(6) {
            break;
        }
        if settle.elapsed() > Duration::from_secs(30) {
            break;
        }
        last = open;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    kubectl(&h, &["get", "nhp"]);
    kubectl(&h, &["get", "nnr"]);
    println!("\n{}", show::findings_table(&h.policy(POLICY).await?));

    section("switching the policy to Enforce: the healing, live");
    h.set_mode(POLICY, Mode::Enforce).await?;
    let started = Instant::now();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut healthy_since: Option<Instant> = None;
    loop {
        let p = h.policy(POLICY).await?;
        let status = p.status.clone().unwrap_or_default();
        let mut actions = status.actions.clone();
        actions.sort_by_key(|a| a.time.0);
        for a in actions.iter().filter(|a| !a.dry_run) {
            if seen.insert(a.id.clone()) {
                println!("{}", show::action_line(a));
            }
        }
        let open = status.summary.open_findings;
        if open == 0 && !status.findings.is_empty() {
            healthy_since = None;
        } else if open == 0 {
            let since = *healthy_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(2) {
                println!(
                    "all findings cleared after {:.1} s",
                    started.elapsed().as_secs_f64()
                );
                break;
            }
        } else {
            healthy_since = None;
        }
        if started.elapsed() > timeout {
            println!(
                "not healed after {} s: {open} open findings",
                timeout.as_secs()
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let restarts: Vec<String> = h
        .kubelet()
        .events()
        .into_iter()
        .filter_map(|e| match e {
            netheal_e2e::harness::kubelet::KubeletEvent::AgentPod {
                node,
                pod,
                restart: true,
            } => Some(format!("{node}: CNI agent restarted as {pod}")),
            _ => None,
        })
        .collect();
    for r in restarts {
        println!("{r}");
    }

    section("the final status");
    kubectl(&h, &["get", "nhp", "-o", "wide"]);
    kubectl(&h, &["get", "nnr"]);
    let p = h.policy(POLICY).await?;
    println!("\n{}", show::conditions(&p));
    print_pings(&all_pods);
    let _ = pods;

    section("tearing down");
    drop(h);
    println!("done");
    Ok(())
}

fn print_pings(pods: &[(String, std::net::Ipv4Addr)]) {
    let mut rows = Vec::new();
    for (from, _) in pods {
        let mut row = vec![from.clone()];
        for (_, to) in pods {
            row.push(if ping(from, *to) {
                "ok".into()
            } else {
                "FAIL".into()
            });
        }
        rows.push(row);
    }
    let mut header = vec!["ping from \\ to".to_string()];
    header.extend(pods.iter().map(|(_, ip)| ip.to_string()));
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    println!("{}", show::table(&header, &rows));
}

async fn up(opts: HarnessOptions, policy: bool, netheal: bool) -> anyhow::Result<()> {
    let name = opts.cluster.clone();
    let calico = opts.overlay == Overlay::CalicoVxlan;
    let h = start(opts, netheal).await?;
    let name = name.as_str();
    if policy {
        let spec = if calico {
            calico_scenario_policy(Mode::DryRun)
        } else {
            scenario_policy(Mode::DryRun)
        };
        h.create_policy(POLICY, spec).await?;
    }
    let pid = pid_file(name);
    if let Some(dir) = pid.parent() {
        std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    }
    std::fs::write(&pid, std::process::id().to_string())
        .with_context(|| pid.display().to_string())?;
    println!("kubeconfig: {}", h.kubeconfig().display());
    let nodes: Vec<(String, String)> = h
        .with_cluster(|c| {
            Ok(c.nodes()
                .iter()
                .map(|n| (n.name.clone(), n.netns.name().to_string()))
                .collect())
        })
        .await?;
    for (node, netns) in nodes {
        println!("node: {node} netns: {netns}");
    }
    println!("{}", h.log_files());
    println!(
        "cluster is running{}; stop with `netheal-demo down --name {name}` (or Ctrl-C)",
        if netheal { " with netheal" } else { "" }
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    drop(h);
    let _ = std::fs::remove_file(&pid);
    Ok(())
}

fn down(name: &str) -> anyhow::Result<()> {
    let pid = pid_file(name);
    if let Ok(text) = std::fs::read_to_string(&pid) {
        let id = text.trim();
        if id.parse::<u32>().is_err() {
            bail!("{}: not a pid: {id:?}", pid.display());
        }
        let _ = std::process::Command::new("kill")
            .args(["-TERM", id])
            .status();
        for _ in 0..100 {
            if !Path::new(&format!("/proc/{id}")).exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = std::fs::remove_file(&pid);
    }
    netheal_e2e::cluster::state::cleanup_stale(name).context("removing the cluster")?;
    println!("cluster {name} is down");
    Ok(())
}
