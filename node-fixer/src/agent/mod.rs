//! `node-fixer agent`: the node agent. It watches the `NetworkHealthPolicy` objects, the
//! Nodes and this node's `NodeNetworkReport`; scans on netlink events (debounced), on a poll
//! interval (sysctls and iptables have no events) and on a resync timer; executes each
//! approved order once; and writes the report's status only when something changed.
//!
//! [`run`] is blocking: it builds its own tokio runtime.

pub mod http;
pub mod kube_io;
pub mod metrics;
pub mod netlink_events;
pub mod orders;
pub mod policy_select;
pub mod status;
pub mod worker;

use crate::engine::{DEFAULT_POD_NETNS_GLOB, DEFAULT_SYSCTL_DIR, EngineConfig};
use crate::probe::node_files::DEFAULT_FLANNEL_SUBNET_ENV;
use anyhow::Context;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Service;
use kube::Client;
use kube::api::{Api, DynamicObject, GroupVersionKind};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use metrics::Metrics;
use netlink_events::Change;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use worker::{RealEngine, Stores, Worker, WorkerConfig};

/// How long a burst of netlink events is collected before the re-check.
pub const DEBOUNCE: Duration = Duration::from_millis(50);

/// Log line format.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `node-fixer agent` flags.
#[derive(clap::Args, Clone, Debug)]
pub struct AgentArgs {
    /// This node's name (a DaemonSet sets NODE_NAME from the downward API).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: String,
    /// The host network namespace to manage (name under /var/run/netns or a path); the API
    /// connection stays in the process's own namespace. Default: the process's own.
    #[arg(long)]
    pub netns: Option<String>,
    /// Glob of the pod network namespaces.
    #[arg(long = "pod-netns", default_value = DEFAULT_POD_NETNS_GLOB)]
    pub pod_netns: String,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:9750")]
    pub listen: SocketAddr,
    /// How often sysctls and iptables are re-read (e.g. 5s, 500ms, 1m).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub poll_interval: Duration,
    /// Full resync period; also the longest time between two report writes.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    pub resync_interval: Duration,
    /// Directory of the sysctl drop-in file.
    #[arg(long, default_value = DEFAULT_SYSCTL_DIR)]
    pub sysctl_dir: PathBuf,
    /// A Service (NAMESPACE/NAME) whose cluster IPs and ports kube-proxy must have programmed
    /// on the node (`ServiceVipMissing`); repeat the flag (or separate with commas) for more.
    /// The policy's `checks.serviceVip.enabled: false` turns the check off.
    #[arg(long = "service", value_name = "NAMESPACE/NAME", env = "NETHEAL_SERVICES", value_delimiter = ',', default_value = DEFAULT_SERVICE, value_parser = parse_service_ref)]
    pub services: Vec<ServiceRef>,
    /// flannel's lease file, compared with the pod bridge's address (`BridgeSubnetMismatch`).
    #[arg(long, value_name = "FILE", env = "NETHEAL_FLANNEL_SUBNET_ENV", default_value = DEFAULT_FLANNEL_SUBNET_ENV)]
    pub flannel_subnet_env: PathBuf,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// The Service the agent watches by default: the cluster DNS.
pub const DEFAULT_SERVICE: &str = "kube-system/kube-dns";

/// A Service named by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRef {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
}

/// Parse `NAMESPACE/NAME` (`kube-system/kube-dns`).
pub fn parse_service_ref(text: &str) -> Result<ServiceRef, String> {
    let (namespace, name) = text
        .trim()
        .split_once('/')
        .filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains('/'))
        .ok_or_else(|| format!("{text:?} is not NAMESPACE/NAME (kube-system/kube-dns)"))?;
    Ok(ServiceRef {
        namespace: namespace.to_string(),
        name: name.to_string(),
    })
}

/// Parse `500ms`, `5s`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a duration like 500ms, 5s, 2m or 1h"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use ms, s, m or h)"
            ));
        }
    };
    if d.is_zero() {
        return Err(format!("{text:?}: must be greater than zero"));
    }
    Ok(d)
}

/// Whether log lines on stderr may carry ANSI colours: only on a terminal, and never with
/// `NO_COLOR` set to anything but empty (no-color.org). Logs that go to a file, a pipe or a
/// container runtime stay plain text.
pub fn colour_logs() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour_logs())
        .with_writer(std::io::stderr);
    // A subscriber may already be installed by the caller: keep it.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Run the agent until SIGTERM/SIGINT. Blocking: builds a multi-thread tokio runtime.
pub fn run(args: AgentArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .enable_all()
        .build()
        .context("building the async runtime")?;
    runtime.block_on(run_async(args))
}

/// Feed a watch into a reflector store; every event wakes the loop.
fn spawn_watch<K, S>(
    stream: S,
    wake: mpsc::Sender<()>,
    metrics: Arc<Metrics>,
    ready: Option<Arc<AtomicBool>>,
    what: &'static str,
) where
    K: Send + 'static,
    S: Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::InitDone) => {
                    if let Some(r) = &ready {
                        r.store(true, Ordering::Release);
                    }
                    let _ = wake.try_send(());
                }
                Ok(Event::Apply(_) | Event::Delete(_)) => {
                    let _ = wake.try_send(());
                }
                Ok(_) => {}
                Err(e) => {
                    metrics.api_error();
                    tracing::warn!(watch = what, error = %e, "watch failed; retrying with backoff");
                }
            }
        }
    });
}

/// Calico's `BlockAffinity` objects, watched when the API server serves them (a cluster with
/// Calico IPAM); `None` otherwise (looked up once at start: installing Calico's CRDs later
/// takes an agent restart to be noticed).
async fn watch_calico_blocks(
    client: &Client,
    wake: &mpsc::Sender<()>,
    metrics: &Arc<Metrics>,
) -> Option<Store<DynamicObject>> {
    let gvk = GroupVersionKind::gvk(
        crate::checks::calico_blocks::GROUP,
        crate::checks::calico_blocks::VERSION,
        crate::checks::calico_blocks::KIND,
    );
    let resource = match kube::discovery::pinned_kind(client, &gvk).await {
        Ok((resource, _)) => resource,
        Err(e) => {
            tracing::info!(error = %e, "no Calico BlockAffinity API: Calico IPAM blocks are not read");
            return None;
        }
    };
    tracing::info!("watching Calico BlockAffinity objects");
    let writer = reflector::store::Writer::<DynamicObject>::new(resource.clone());
    let store = writer.as_reader();
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    spawn_watch(
        watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(|o| o.metadata.managed_fields = None)
            .reflect(writer),
        wake.clone(),
        metrics.clone(),
        None,
        "blockaffinities",
    );
    Some(store)
}

async fn shutdown_signal(token: CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down: finishing the fix in flight");
    token.cancel();
}

async fn run_async(args: AgentArgs) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    tokio::spawn(shutdown_signal(shutdown.clone()));
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(http::Health::new(metrics.clone()));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("--listen {}", args.listen))?;
    tracing::info!(listen = %args.listen, node = %args.node_name, netns = ?args.netns, "node-fixer agent starting");
    let http_task = tokio::spawn(http::serve(listener, health.clone(), shutdown.clone()));

    let client = Client::try_default()
        .await
        .context("no Kubernetes configuration (in-cluster or KUBECONFIG)")?;
    let (wake_tx, mut wake_rx) = mpsc::channel::<()>(1);
    let (policies_api, nodes_api, reports_api) = kube_io::apis(&client);
    let (policies, policies_w) = reflector::store();
    let (nodes, nodes_w) = reflector::store();
    let (reports, reports_w): (Store<_>, _) = reflector::store();
    let reports_ready = Arc::new(AtomicBool::new(false));
    spawn_watch(
        watcher::watcher(policies_api, watcher::Config::default())
            .default_backoff()
            .modify(|p| p.metadata.managed_fields = None)
            .reflect(policies_w),
        wake_tx.clone(),
        metrics.clone(),
        None,
        "networkhealthpolicies",
    );
    spawn_watch(
        watcher::watcher(nodes_api, watcher::Config::default())
            .default_backoff()
            .modify(|n| *n = kube_io::slim_node(std::mem::take(n)))
            .reflect(nodes_w),
        wake_tx.clone(),
        metrics.clone(),
        None,
        "nodes",
    );
    spawn_watch(
        watcher::watcher(
            reports_api,
            watcher::Config::default().fields(&format!("metadata.name={}", args.node_name)),
        )
        .default_backoff()
        .reflect(reports_w),
        wake_tx.clone(),
        metrics.clone(),
        Some(reports_ready.clone()),
        "nodenetworkreports",
    );

    // Netlink changes in the managed namespace.
    let (change_tx, mut change_rx) = mpsc::channel::<Change>(1);
    let netns_path = args.netns.as_deref().map(netlink_events::netns_path);
    let mut extra_errors = Vec::new();
    if let Err(e) = netlink_events::subscribe(netns_path, change_tx).await {
        tracing::error!(error = %e, "netlink subscription failed: relying on polling only");
        extra_errors.push(format!("netlink subscription failed (polling only): {e}"));
    }

    let config = WorkerConfig {
        node: args.node_name.clone(),
        engine: EngineConfig {
            netns: args.netns.clone(),
            pod_netns_glob: args.pod_netns.clone(),
            sysctl_dir: args.sysctl_dir.clone(),
            flannel_subnet_env: args.flannel_subnet_env.clone(),
            cluster: Default::default(),
        },
        refresh: args.resync_interval,
    };
    let mut services = Vec::new();
    for service in &args.services {
        let (store, writer) = reflector::store();
        let api: Api<Service> = Api::namespaced(client.clone(), &service.namespace);
        spawn_watch(
            watcher::watcher(
                api,
                watcher::Config::default().fields(&format!("metadata.name={}", service.name)),
            )
            .default_backoff()
            .modify(|s| s.metadata.managed_fields = None)
            .reflect(writer),
            wake_tx.clone(),
            metrics.clone(),
            None,
            "services",
        );
        services.push(store);
    }
    let calico_blocks = watch_calico_blocks(&client, &wake_tx, &metrics).await;
    let stores = Stores {
        policies,
        nodes,
        reports,
        services,
        calico_blocks,
        reports_ready,
    };
    let mut worker = Worker::new(
        config,
        client,
        stores,
        Arc::new(RealEngine),
        metrics.clone(),
    );
    worker.extra_errors = extra_errors;

    let mut poll = tokio::time::interval(args.poll_interval);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut resync = tokio::time::interval(args.resync_interval);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    resync.tick().await;
    loop {
        let cause = {
            let retry = worker.retry_at();
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(change) = change_rx.recv() => {
                    if change == Change::Overrun {
                        metrics.overrun();
                    }
                    // Collect the rest of the burst.
                    tokio::time::sleep(DEBOUNCE).await;
                    while let Ok(c) = change_rx.try_recv() {
                        if c == Change::Overrun {
                            metrics.overrun();
                        }
                    }
                    "netlink"
                }
                Some(()) = wake_rx.recv() => {
                    tokio::time::sleep(DEBOUNCE).await;
                    while wake_rx.try_recv().is_ok() {}
                    "api"
                }
                _ = poll.tick() => "poll",
                _ = resync.tick() => "resync",
                _ = sleep_until(retry) => "retry",
            }
        };
        let started = Instant::now();
        let report = worker.cycle(&shutdown).await;
        health.set_ready();
        tracing::debug!(
            cause,
            took_ms = started.elapsed().as_millis() as u64,
            ?report,
            "cycle"
        );
        if report.write.is_some_and(|w| w.writes()) && report.write_error.is_none() {
            tracing::info!(cause, open_findings = report.open_findings, write = ?report.write, "report written");
        }
    }
    worker.flush().await;
    shutdown.cancel();
    let _ = http_task.await;
    tracing::info!("node-fixer agent stopped");
    Ok(())
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_refuse_nonsense() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("300"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5 parsecs").unwrap_err().contains("unit"));
        assert!(parse_duration("s").is_err());
    }
}
