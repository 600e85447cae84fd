//! `node-fixer scan` and `node-fixer fix`: build the engine config from the flags, run, print,
//! and return the exit code (0 healthy, 1 findings, 2 error).

use super::args::{FixArgs, OutputFormat, ScanArgs};
use super::output;
use crate::checks::calico_blocks::{CalicoBlock, block_from_object};
use crate::engine::{self, ClusterFacts, EngineConfig};
use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Node, Service};
use netheal_crds::{Mode, NetworkHealthPolicySpec};
use serde::de::DeserializeOwned;
use std::path::Path;

/// Exit code: healthy.
pub const EXIT_HEALTHY: i32 = 0;
/// Exit code: findings remain.
pub const EXIT_FINDINGS: i32 = 1;
/// Exit code: an error.
pub const EXIT_ERROR: i32 = 2;

/// The policy from `--policy` (validated), or the built-in default.
pub fn load_policy(args: &ScanArgs) -> Result<(NetworkHealthPolicySpec, bool)> {
    let Some(path) = &args.policy else {
        return Ok((engine::default_policy(), false));
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --policy {}", path.display()))?;
    let policy = netheal_crds::parse_policy(&text)
        .with_context(|| format!("--policy {} is refused", path.display()))?;
    Ok((policy.spec, true))
}

/// The JSON document of the file a flag names.
fn read_json(flag: &str, path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {flag} {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{flag} {} is not JSON", path.display()))
}

/// The objects of a List's `items`, each of `kind`.
fn list_items<T: DeserializeOwned>(
    flag: &str,
    path: &Path,
    items: &[serde_json::Value],
    kind: &str,
) -> Result<Vec<T>> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            serde_json::from_value::<T>(item.clone())
                .with_context(|| format!("{flag} {}: items[{i}] is not a {kind}", path.display()))
        })
        .collect()
}

/// Node objects from `--nodes` (a `List` with `items`, as `kubectl get nodes -o json`).
pub fn load_nodes(args: &ScanArgs) -> Result<Vec<Node>> {
    let Some(path) = &args.nodes else {
        return Ok(Vec::new());
    };
    let value = read_json("--nodes", path)?;
    let Some(items) = value.get("items").and_then(|i| i.as_array()) else {
        bail!(
            "--nodes {}: items: expected a List of Node objects with an \"items\" array",
            path.display()
        );
    };
    list_items("--nodes", path, items, "Node")
}

/// Service objects from `--services`: one Service, or a `List` with `items` (as `kubectl get
/// service -o json` prints either).
pub fn load_services(args: &ScanArgs) -> Result<Vec<Service>> {
    let Some(path) = &args.services else {
        return Ok(Vec::new());
    };
    let value = read_json("--services", path)?;
    if let Some(items) = value.get("items").and_then(|i| i.as_array()) {
        return list_items("--services", path, items, "Service");
    }
    if value.get("kind").and_then(|k| k.as_str()) != Some("Service") {
        bail!(
            "--services {}: expected a Service or a List of Services (kind: Service, or items)",
            path.display()
        );
    }
    let service = serde_json::from_value::<Service>(value)
        .with_context(|| format!("--services {} is not a Service", path.display()))?;
    Ok(vec![service])
}

/// The blocks in force of the `BlockAffinity` objects of `--calico-blocks` (a `List`); a
/// malformed object fails naming its index and field.
pub fn load_calico_blocks(args: &ScanArgs) -> Result<Vec<CalicoBlock>> {
    let Some(path) = &args.calico_blocks else {
        return Ok(Vec::new());
    };
    let value = read_json("--calico-blocks", path)?;
    let Some(items) = value.get("items").and_then(|i| i.as_array()) else {
        bail!(
            "--calico-blocks {}: items: expected a List of BlockAffinity objects with an \"items\" array",
            path.display()
        );
    };
    let mut blocks = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if let Some(block) = block_from_object(item)
            .with_context(|| format!("--calico-blocks {}: items[{i}]", path.display()))?
        {
            blocks.push(block);
        }
    }
    Ok(blocks)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

/// The engine config from the flags.
pub fn config(args: &ScanArgs) -> Result<(EngineConfig, String)> {
    let node = args.node_name.clone().unwrap_or_else(hostname);
    let nodes = load_nodes(args)?;
    if let Some(ns) = &args.netns {
        let path = crate::netns::netns_path(ns);
        if !path.exists() {
            bail!("--netns {ns}: {} does not exist", path.display());
        }
    }
    Ok((
        EngineConfig {
            netns: args.netns.clone(),
            pod_netns_glob: args.pod_netns.clone(),
            sysctl_dir: args.sysctl_dir.clone(),
            flannel_subnet_env: args.flannel_subnet_env.clone(),
            cluster: ClusterFacts {
                this_node: Some(node.clone()),
                nodes,
                services: load_services(args)?,
                calico_blocks: load_calico_blocks(args)?,
            },
        },
        node,
    ))
}

/// `node-fixer scan`.
pub fn scan(args: &ScanArgs) -> Result<i32> {
    let (policy, _) = load_policy(args)?;
    let (config, node) = config(args)?;
    let out = engine::scan(&policy, &config);
    let backend = out.iptables_backend.as_deref();
    match args.output {
        OutputFormat::Json => {
            output::print_json(&output::Document {
                node: &node,
                iptables_backend: backend,
                findings: output::FindingsJson(&out.findings),
                results: None,
                remaining: None,
                errors: &out.errors,
            })?;
        }
        OutputFormat::Table => {
            print!("{}", output::findings_table(&out.findings));
            println!(
                "{}",
                output::summary(&node, &out.findings, backend, out.duration.as_millis())
            );
        }
    }
    for e in &out.errors {
        eprintln!("error: {e}");
    }
    Ok(exit_code(&out.errors, out.findings.is_empty()))
}

fn exit_code(errors: &[String], healthy: bool) -> i32 {
    if !errors.is_empty() {
        EXIT_ERROR
    } else if healthy {
        EXIT_HEALTHY
    } else {
        EXIT_FINDINGS
    }
}

/// `node-fixer fix`: scan, execute every approved node-local fix, scan again.
pub fn fix(args: &FixArgs) -> Result<i32> {
    let (policy, from_file) = load_policy(&args.scan)?;
    let (config, node) = config(&args.scan)?;
    // Without --policy the CLI enforces the default policy; a policy file's DryRun mode is
    // honoured.
    let dry_run = args.dry_run || (from_file && policy.mode == Mode::DryRun);
    if from_file && policy.paused {
        eprintln!("the policy is paused: nothing is changed");
    }
    let first = engine::scan(&policy, &config);
    let orders = if from_file && policy.paused {
        Vec::new()
    } else {
        engine::orders_for(&first.findings, &policy, dry_run)
    };
    let results: Vec<_> = orders
        .iter()
        .map(|o| engine::execute(o, &policy, &config))
        .collect();
    let last = engine::scan(&policy, &config);
    let backend = last.iptables_backend.as_deref();
    let mut errors = first.errors.clone();
    errors.extend(last.errors.iter().cloned());
    errors.dedup();
    match args.scan.output {
        OutputFormat::Json => {
            output::print_json(&output::Document {
                node: &node,
                iptables_backend: backend,
                findings: output::FindingsJson(&first.findings),
                results: Some(&results),
                remaining: Some(output::FindingsJson(&last.findings)),
                errors: &errors,
            })?;
        }
        OutputFormat::Table => {
            print!("{}", output::findings_table(&first.findings));
            if !results.is_empty() {
                println!();
                print!("{}", output::results_table(&results));
            }
            println!("{}", output::fix_summary(&node, &results, &last.findings));
        }
    }
    for e in &errors {
        eprintln!("error: {e}");
    }
    let failed = results
        .iter()
        .any(|r| r.outcome == netheal_crds::Outcome::Failed);
    if failed {
        return Ok(EXIT_ERROR);
    }
    Ok(exit_code(&errors, last.findings.is_empty()))
}
