//! `node-fixer`: the node agent and its standalone CLI.

use clap::{Parser, Subcommand};
use node_fixer::cli::args::{FixArgs, ScanArgs};
use node_fixer::cli::run::{self, EXIT_ERROR};

/// Finds and fixes node-local network faults (ARP, forwarding, stale neighbours, overlay gaps,
/// REJECT rules). Exit codes: 0 healthy, 1 findings, 2 error.
#[derive(Parser, Debug)]
#[command(name = "node-fixer", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check this host (read-only) and print the findings.
    Scan(ScanArgs),
    /// Check this host, apply every approved node-local fix, and check again.
    Fix(FixArgs),
    /// Run as the node agent: report findings to the Kubernetes API and execute approved orders.
    Agent(node_fixer::agent::AgentArgs),
}

fn main() {
    let cli = Cli::parse();
    if let Command::Agent(args) = &cli.command {
        // The agent installs its own logging (--log-format) and runtime.
        let code = match node_fixer::agent::run(args.clone()) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {e:#}");
                EXIT_ERROR
            }
        };
        std::process::exit(code);
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(node_fixer::agent::colour_logs())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let result = match &cli.command {
        Command::Scan(args) => run::scan(args),
        Command::Fix(args) => run::fix(args),
        Command::Agent(_) => Ok(EXIT_ERROR),
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            EXIT_ERROR
        }
    };
    std::process::exit(code);
}
