//! `netheal-operator`: watches the policies, reports, Nodes and Pods, approves fixes under the
//! safety limits, takes the cluster actions, and records every action.

use anyhow::{Context as _, bail};
use clap::{Parser, ValueEnum};
use futures::StreamExt;
use kube::api::ListParams;
use kube::runtime::Controller;
use kube::runtime::controller::Config as ControllerConfig;
use kube::runtime::watcher;
use kube::{Api, Client};
use netheal_crds::{NetworkHealthPolicy, NodeNetworkReport};
use netheal_operator::context::Context;
use netheal_operator::http::{HttpState, router};
use netheal_operator::leader::Election;
use netheal_operator::metrics::Metrics;
use netheal_operator::reconcile::{error_policy, reconcile};
use netheal_operator::watch::{self, Trigger};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::watch as tokio_watch;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// netheal's operator.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address of the /metrics, /healthz and /readyz endpoints.
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "netheal-system")]
    lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "netheal-operator")]
    lease_name: String,
    /// Run without leader election (a single replica).
    #[arg(long)]
    no_leader_election: bool,
    /// Periodic pass interval (e.g. 30s, 2m).
    #[arg(long, default_value = "30s", value_parser = netheal_operator::parse_duration)]
    requeue_interval: Duration,
    /// The longest one API write may take; less than the lease's 15 s, so that a write cannot
    /// outlive the leadership it started under by more than that.
    #[arg(long, default_value = "10s", value_parser = netheal_operator::parse_duration)]
    api_timeout: Duration,
    /// Write one OpenReports `ClusterReport` per node where the API server serves
    /// `openreports.io/v1alpha1` (looked up by discovery; netheal never installs that CRD).
    #[arg(long, value_enum, default_value = "auto")]
    openreports: OpenReports,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum OpenReports {
    /// Where the API is served.
    Auto,
    /// Never.
    Disabled,
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // ANSI colours only on a terminal and without NO_COLOR (no-color.org): logs that go to a
    // file, a pipe or a container runtime stay plain text.
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

/// Refuse to start without the CRDs, with a message that says what to do.
async fn check_crds(client: &Client) -> anyhow::Result<()> {
    let params = ListParams::default().limit(1);
    let policies = Api::<NetworkHealthPolicy>::all(client.clone())
        .list(&params)
        .await;
    let reports = Api::<NodeNetworkReport>::all(client.clone())
        .list(&params)
        .await;
    for result in [policies.map(|_| ()), reports.map(|_| ())] {
        match result {
            Ok(()) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {
                bail!("netheal CRDs are not installed: kubectl apply -k config/crd")
            }
            Err(err) => return Err(err).context("listing netheal resources"),
        }
    }
    Ok(())
}

fn identity() -> String {
    let host = std::env::var("POD_NAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "netheal-operator".into());
    format!("{host}-{}", std::process::id())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Run the controller while this replica leads; return when leadership is lost or on shutdown.
async fn lead(ctx: Arc<Context>, client: Client, mut stop: tokio_watch::Receiver<bool>) {
    let stopped = async move {
        while !*stop.borrow() {
            if stop.changed().await.is_err() {
                break;
            }
        }
    };
    Controller::new(
        Api::<NetworkHealthPolicy>::all(client),
        watcher::Config::default().any_semantic(),
    )
    .with_config(
        ControllerConfig::default()
            // Short: a node's fault is decided 0.1 s after its report changed. Bursts (a
            // rollout, a resync) are bounded by the trigger, at most one pass per 250 ms.
            .debounce(Duration::from_millis(100))
            .concurrency(1),
    )
    .reconcile_all_on(ctx.trigger.stream())
    .graceful_shutdown_on(stopped)
    .run(reconcile, error_policy, ctx)
    .for_each(|result| async move {
        if let Err(err) = result {
            tracing::debug!(error = %err, "reconcile");
        }
    })
    .await;
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "netheal-operator stopped");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    init_tracing(args.log_format);
    let lease = Duration::from_secs(netheal_operator::leader::LEASE_SECONDS);
    if args.api_timeout.is_zero() || args.api_timeout >= lease {
        bail!(
            "--api-timeout {:?} must be more than 0 and less than the lease duration {lease:?}",
            args.api_timeout
        );
    }
    let client = Client::try_default()
        .await
        .context("no Kubernetes configuration (in-cluster or KUBECONFIG)")?;
    check_crds(&client).await?;

    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let trigger = Trigger::new();
    let (stores, watches) = watch::start(&client, &trigger);
    tokio::spawn(watches);
    let mut election = if args.no_leader_election {
        Election::always()
    } else {
        Election::start(
            client.clone(),
            &args.lease_namespace,
            &args.lease_name,
            &identity(),
        )
        .await
        .with_context(|| {
            format!(
                "joining the leader election (Lease {}/{})",
                args.lease_namespace, args.lease_name
            )
        })?
    };
    // Every write checks the lease first: a pass that started as leader stops writing once
    // the lease is lost.
    let ctx = Arc::new(
        Context::new(
            client.clone(),
            stores.clone(),
            trigger,
            metrics.clone(),
            Some(identity()),
            args.requeue_interval,
        )
        .with_leadership(election.is_leader.clone())
        .with_api_timeout(args.api_timeout)
        .with_openreports(args.openreports == OpenReports::Auto),
    );

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("--listen {}", args.listen))?;
    let app = router(HttpState {
        metrics: metrics.clone(),
        ready: ready.clone(),
    });
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(error = %err, "HTTP server stopped");
        }
    });
    {
        let (stores, ready) = (stores.clone(), ready.clone());
        tokio::spawn(async move {
            if stores.wait_until_ready().await.is_ok() {
                ready.store(true, Ordering::Relaxed);
                tracing::info!("stores synced");
            }
        });
    }

    tracing::info!(listen = %args.listen, "netheal-operator started");

    let (stop_tx, _) = tokio_watch::channel(false);
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        // Standby: wait for the lease (the stores stay warm meanwhile).
        while !*election.is_leader.borrow() {
            tokio::select! {
                changed = election.is_leader.changed() => if changed.is_err() { bail!("the leader election stopped") },
                _ = &mut shutdown => {
                    election.release().await;
                    return Ok(());
                }
            }
        }
        tracing::info!("leading");
        metrics.leader.set(1);
        if stores.wait_until_ready().await.is_err() {
            bail!("the watches stopped");
        }
        ctx.reset().await;
        stop_tx.send_replace(false);
        let running = tokio::spawn(lead(ctx.clone(), client.clone(), stop_tx.subscribe()));
        let shutting_down = loop {
            tokio::select! {
                changed = election.is_leader.changed() => {
                    if changed.is_err() || !*election.is_leader.borrow() { break false; }
                }
                _ = &mut shutdown => break true,
            }
        };
        stop_tx.send_replace(true);
        if let Err(err) = running.await {
            tracing::warn!(error = %err, "controller task failed");
        }
        metrics.leader.set(0);
        ctx.reset().await;
        if shutting_down {
            tracing::info!("shutting down");
            election.release().await;
            return Ok(());
        }
        tracing::warn!("lost the lease; standing by");
    }
}
