//! `netheal-apiserver`: the loopback Kubernetes API stand-in as a process.
//!
//! Prints `listening on http://127.0.0.1:PORT` on stdout once it serves, then runs until
//! SIGINT or SIGTERM.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use netheal_e2e::apiserver::{ApiServer, ApiServerConfig};

/// A loopback stand-in for the Kubernetes API server, for end-to-end tests.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Write a kubeconfig for the server here.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Create the manifests (CRDs first, by file name) found in this directory at start.
    #[arg(long)]
    crd_dir: Option<PathBuf>,
    /// Longest watch in seconds before the server closes it.
    #[arg(long, default_value_t = 1800)]
    max_watch_seconds: u64,
    /// Seconds between watch bookmarks.
    #[arg(long, default_value_t = 10)]
    bookmark_seconds: u64,
    /// Events kept for watches that resume from a resourceVersion.
    #[arg(long, default_value_t = 10_000)]
    history: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let server = ApiServer::start(ApiServerConfig {
        port: args.port,
        crd_dir: args.crd_dir,
        history_limit: args.history,
        max_watch: Duration::from_secs(args.max_watch_seconds),
        bookmark_interval: Duration::from_secs(args.bookmark_seconds),
    })
    .await
    .context("starting the API stand-in")?;
    if let Some(path) = &args.kubeconfig {
        server
            .write_kubeconfig(path)
            .context("writing the kubeconfig")?;
    }
    println!("listening on {}", server.url());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    server.shutdown().await;
    Ok(())
}
