//! The operator at scale on the real API server: 5,000 Node objects (no namespaces behind
//! them), 150,000 Running pods across them, one NodeNetworkReport per node with 10 findings,
//! and the real `netheal-operator` (release build) under a `DryRun` policy that selects every
//! node. The API server logs the operator's requests (an audit policy that logs only its
//! ServiceAccount), so every request figure is counted by the server, not by the operator.
//!
//! `make bench-scale` (root not needed). `NETHEAL_SCALE_NODES` / `NETHEAL_SCALE_PODS` change
//! the counts (5,000 / 150,000). Prints, each also as a `figure:` line:
//! - `scale.first_pass` (s): operator start to its first pass with the policy status written;
//! - `scale.pass.p50` / `.max` (ms): passes while nothing changes (requeue every 2 s);
//! - `scale.decide.p50` (ms): the pure decision inside those passes;
//! - `scale.rss` (MiB): the operator's peak resident memory (VmHWM);
//! - `scale.idle_requests_per_s`, `scale.idle_writes`: requests and writes (Lease renewals
//!   not counted as writes) in 30 s with nothing changing;
//! - `scale.churn_requests_per_s`, `scale.patches_per_changed_node`: while 1% of the nodes'
//!   reports change every second, for 20 s;
//! - `scale.one_node_change` (ms, p50 of 10): the decision after one report changed, and
//!   `scale.one_node_change.to_status` (s): that report's write to the policy status written.

use anyhow::{Context as _, bail};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use netheal_crds::{Check, Mode, NetworkHealthPolicy, NodeNetworkReport};
use netheal_e2e::controlplane::{AUDIT_LOG, ControlPlane, Options};
use netheal_e2e::harness::bins::workspace_root;
use netheal_e2e::harness::install::{self, NAMESPACE, OPERATOR_SA};
use netheal_e2e::harness::policies::scenario_policy;
use netheal_e2e::harness::process::ChildProcess;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const FINDINGS_PER_NODE: usize = 10;
const POLICY: &str = "scale";
const PODS_NAMESPACE: &str = "scale";
/// Requests in flight while the objects are created.
const CREATE_CONCURRENCY: usize = 32;
const IDLE_WINDOW: Duration = Duration::from_secs(30);
const CHURN_WINDOW: Duration = Duration::from_secs(20);
const ONE_NODE_ROUNDS: usize = 10;

fn count_from_env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn node_name(i: usize) -> String {
    format!("node-{i:05}")
}

fn figure(name: &str, value: f64, unit: &str) {
    println!("figure: {name} {value:.3} {unit}");
}

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Log only the operator's requests, with their metadata (verb, resource, user).
fn audit_policy() -> String {
    format!(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n  users: [\"{}\"]\n- level: None\n",
        operator_user()
    )
}

fn operator_user() -> String {
    format!("system:serviceaccount:{NAMESPACE}:{OPERATOR_SA}")
}

fn node_object(i: usize) -> Result<Node, serde_json::Error> {
    serde_json::from_value(json!({
        "metadata": {
            "name": node_name(i),
            "labels": {"kubernetes.io/hostname": node_name(i), "kubernetes.io/os": "linux", "pool": "default"},
            "annotations": {
                "flannel.alpha.coreos.com/backend-data": "{\"VNI\":1,\"VtepMAC\":\"aa:bb:cc:dd:ee:ff\"}",
                "flannel.alpha.coreos.com/public-ip": format!("172.18.{}.{}", i / 256, i % 256),
            }
        },
        "spec": {"podCIDR": format!("10.{}.{}.0/24", 64 + i / 256, i % 256)}
    }))
}

/// The ten findings of node `i`; `variant` changes one of them (and drops the last one when
/// odd), which is what a node's change is here.
fn findings(i: usize, variant: usize) -> Value {
    let checks = [
        Check::StaleNeighbour,
        Check::StaleNeighbour,
        Check::StaleNeighbour,
        Check::StaleNeighbour,
        Check::ArpIgnore,
        Check::IpForward,
        Check::RejectRule,
        Check::StaleNeighbour,
        Check::StaleNeighbour,
        Check::ProxyArpOff,
    ];
    let n = if variant % 2 == 1 {
        FINDINGS_PER_NODE - 1
    } else {
        FINDINGS_PER_NODE
    };
    let list: Vec<Value> = (0..n)
        .map(|k| {
            let check = checks[k % checks.len()];
            let target = format!("cali{i:05}{k} 10.{}.{}.{}", 64 + i / 256, i % 256, 10 + k);
            json!({
                "id": netheal_crds::finding_id(check, &target),
                "check": check,
                "target": target,
                "observed": format!("PERMANENT lladdr ee:ee:ee:ee:{:02x}:{k:02x} (variant {variant})", i % 256),
                "desired": "no PERMANENT entry without a route",
                "details": {"interface": format!("cali{i:05}{k}"), "address": format!("10.{}.{}.{}", 64 + i / 256, i % 256, 10 + k), "state": "PERMANENT"},
                "lastSeen": "2026-12-01T00:00:00Z"
            })
        })
        .collect();
    json!({
        "agentVersion": "0.1.0", "iptablesBackend": "nft",
        "lastScanTime": "2026-12-01T00:00:00Z", "lastScanDurationMs": 12,
        "openFindings": n, "findings": list
    })
}

/// Write node `i`'s report status with [`findings`] `variant`.
async fn set_findings(
    reports: &Api<NodeNetworkReport>,
    i: usize,
    variant: usize,
) -> Result<(), kube::Error> {
    let status = json!({"status": findings(i, variant)});
    reports
        .patch_status(
            &node_name(i),
            &PatchParams::default(),
            &Patch::Merge(status),
        )
        .await
        .map(drop)
}

fn pod_object(i: usize, nodes: usize) -> Result<(Pod, Value), serde_json::Error> {
    let node = i % nodes;
    let agent = i < nodes;
    let (namespace, name, labels) = if agent {
        (
            "kube-system",
            format!("canal-{node:05}"),
            json!({"k8s-app": "canal", "controller-revision-hash": "abc", "pod-template-generation": "1"}),
        )
    } else {
        (
            PODS_NAMESPACE,
            format!("web-{i:06}"),
            json!({"app": "web", "pod-template-hash": "7d9f8b6c5d"}),
        )
    };
    let ip = if agent {
        format!("172.18.{}.{}", node / 256, node % 256)
    } else {
        format!(
            "10.{}.{}.{}",
            64 + node / 256,
            node % 256,
            2 + (i / nodes) % 250
        )
    };
    let pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "nodeName": node_name(node),
            "hostNetwork": agent,
            "automountServiceAccountToken": false,
            "containers": [{"name": "web", "image": "registry.k8s.io/pause:3.10", "ports": [{"containerPort": 80}],
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]
        }
    }))?;
    let status = json!({"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": format!("172.18.{}.{}", node / 256, node % 256),
        "conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}]
    }});
    Ok((pod, status))
}

/// Run `make(i)` for every `i` in `0..n`, `CREATE_CONCURRENCY` at a time.
async fn for_each<F, Fut>(n: usize, what: &str, make: F) -> anyhow::Result<()>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let started = Instant::now();
    stream::iter(0..n)
        .map(make)
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect::<()>()
        .await
        .with_context(|| what.to_string())?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "created {n} {what} in {secs:.1} s ({:.0}/s)",
        n as f64 / secs
    );
    Ok(())
}

async fn populate(client: &Client, nodes: usize, pods: usize) -> anyhow::Result<()> {
    let pp = PostParams::default();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &pp,
            &serde_json::from_value(json!({"metadata": {"name": PODS_NAMESPACE}}))?,
        )
        .await?;
    // No controller manager runs here, so the ServiceAccount admission's `default` accounts
    // are made by hand.
    for ns in [PODS_NAMESPACE, "kube-system"] {
        let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
        api.create(
            &pp,
            &serde_json::from_value(json!({"metadata": {"name": "default"}}))?,
        )
        .await?;
    }
    let node_api: Api<Node> = Api::all(client.clone());
    let reports: Api<NodeNetworkReport> = Api::all(client.clone());
    for_each(nodes, "nodes and their reports", |i| {
        let (node_api, reports, pp) = (node_api.clone(), reports.clone(), pp.clone());
        async move {
            node_api.create(&pp, &node_object(i)?).await?;
            let report = NodeNetworkReport::new(&node_name(i), Default::default());
            reports.create(&pp, &report).await?;
            set_findings(&reports, i, 0).await?;
            Ok(())
        }
    })
    .await?;
    for_each(pods, "pods (Running, with their IPs)", |i| {
        let (client, pp) = (client.clone(), pp.clone());
        async move {
            let (pod, status) = pod_object(i, nodes)?;
            let namespace = pod.namespace().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(client, &namespace);
            let created = api.create(&pp, &pod).await?;
            api.patch_status(
                &created.name_any(),
                &PatchParams::default(),
                &Patch::Merge(status),
            )
            .await?;
            Ok(())
        }
    })
    .await
}

/// One request the API server logged for the operator.
struct Request {
    verb: String,
    resource: String,
}

impl Request {
    fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        ) && self.resource != "leases"
    }
}

/// The operator's requests in the audit log after byte `from` (one per audit ID).
fn requests_since(audit: &Path, from: u64) -> anyhow::Result<Vec<Request>> {
    let text = std::fs::read(audit).with_context(|| format!("reading {}", audit.display()))?;
    let start = usize::try_from(from).unwrap_or(usize::MAX).min(text.len());
    let mut seen = HashSet::new();
    let mut requests = Vec::new();
    let user = operator_user();
    for line in text[start..].split(|b| *b == b'\n') {
        let Ok(event) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        if event["user"]["username"] != user.as_str() {
            continue;
        }
        let Some(id) = event["auditID"].as_str() else {
            continue;
        };
        if seen.insert(id.to_string()) {
            requests.push(Request {
                verb: event["verb"].as_str().unwrap_or_default().to_string(),
                resource: event["objectRef"]["resource"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            });
        }
    }
    Ok(requests)
}

/// The operator's JSON log events named `message` after byte `from`.
fn log_events(log: &Path, from: u64, message: &str) -> Vec<Value> {
    let text = std::fs::read(log).unwrap_or_default();
    let start = usize::try_from(from).unwrap_or(usize::MAX).min(text.len());
    text[start..]
        .split(|b| *b == b'\n')
        .filter_map(|line| serde_json::from_slice::<Value>(line).ok())
        .filter(|e| e["message"] == message)
        .collect()
}

fn field_ms(events: &[Value], field: &str) -> Vec<f64> {
    events.iter().filter_map(|e| e[field].as_f64()).collect()
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Wait until the log has an event `message` after `from` that `accept`s; return it.
async fn wait_event(
    log: &Path,
    from: u64,
    message: &str,
    timeout: Duration,
    accept: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(e) = log_events(log, from, message).into_iter().find(&accept) {
            return Ok(e);
        }
        if Instant::now() > deadline {
            bail!(
                "no {message:?} in the operator's log after {timeout:?}: {}",
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn operator_binary() -> anyhow::Result<PathBuf> {
    let dir = std::env::var_os("NETHEAL_BIN_DIR")
        .map_or_else(|| workspace_root().join("target/release"), PathBuf::from);
    let bin = dir.join("netheal-operator");
    if !bin.exists() {
        bail!(
            "{} is missing: `make bench-scale` builds it (cargo build --release -p netheal-operator)",
            bin.display()
        );
    }
    Ok(bin)
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    netheal_e2e::procfs::status_kib(&pid.to_string(), field)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let nodes = count_from_env("NETHEAL_SCALE_NODES", 5_000).max(2);
    let pods = count_from_env("NETHEAL_SCALE_PODS", 150_000).max(nodes);
    let operator_bin = operator_binary()?;
    let dir = netheal_e2e::harness::log_dir("scale");
    let cp = ControlPlane::start_with(
        &dir.join("controlplane"),
        &Options {
            controllers: false,
            audit_policy: Some(audit_policy()),
        },
    )
    .await?;
    let audit = cp.dir().join(AUDIT_LOG);
    println!(
        "API server and etcd up in {} ms (no controller manager, no scheduler: nothing acts on the objects)",
        cp.started_in().as_millis()
    );
    install::install(&cp, &workspace_root(), false).await?;
    let client = cp.admin_client().await?;
    let policies: Api<NetworkHealthPolicy> = Api::all(client.clone());
    policies
        .create(
            &PostParams::default(),
            &NetworkHealthPolicy::new(POLICY, scenario_policy(Mode::DryRun)),
        )
        .await?;
    let populating = Instant::now();
    populate(&client, nodes, pods).await?;
    println!(
        "{nodes} nodes, {pods} pods, {nodes} reports x {FINDINGS_PER_NODE} findings in {:.0} s; control plane {} MiB resident",
        populating.elapsed().as_secs_f64(),
        cp.rss_kib() / 1024
    );

    let token = install::token(&client, OPERATOR_SA, None).await?;
    let kubeconfig = dir.join("operator.kubeconfig");
    cp.write_token_kubeconfig(&kubeconfig, OPERATOR_SA, &token)?;
    let log = dir.join("operator.log");
    let started = Instant::now();
    let mut operator = ChildProcess::spawn(
        "netheal-operator",
        &operator_bin,
        &[
            "--listen",
            "127.0.0.1:0",
            "--requeue-interval",
            "2s",
            "--log-format",
            "json",
        ]
        .map(String::from),
        &[
            ("KUBECONFIG", kubeconfig.display().to_string()),
            (
                "RUST_LOG",
                "info,netheal_operator::reconcile=debug".to_string(),
            ),
            ("POD_NAMESPACE", NAMESPACE.to_string()),
        ],
        &log,
    )?;
    let pid = operator.pid();
    let result = measure(&client, &audit, &log, pid, started, nodes).await;
    if let Some(status) = operator.exited() {
        eprintln!("the operator exited ({status}):\n{}", operator.tail(30));
    }
    operator.kill();
    println!("logs: {}\n{}", log.display(), cp.log_files());
    result
}

async fn measure(
    client: &Client,
    audit: &Path,
    log: &Path,
    pid: u32,
    started: Instant,
    nodes: usize,
) -> anyhow::Result<()> {
    let policies: Api<NetworkHealthPolicy> = Api::all(client.clone());
    let reports: Api<NodeNetworkReport> = Api::all(client.clone());
    let total = (nodes * FINDINGS_PER_NODE) as u64;

    // The first pass that wrote the policy's status, with every finding counted.
    wait_event(log, 0, "pass finished", Duration::from_secs(600), |e| {
        e["statuses_written"].as_u64().unwrap_or(0) >= 1
    })
    .await?;
    let first_pass = started.elapsed().as_secs_f64();
    let status = policies.get_status(POLICY).await?;
    let summary = status.status.map(|s| s.summary).unwrap_or_default();
    if u64::from(summary.open_findings) != total {
        bail!(
            "the first status counts {} open findings, not {total}",
            summary.open_findings
        );
    }
    println!(
        "first pass: {first_pass:.2} s after start ({} nodes selected, {} open findings)",
        summary.nodes_selected, summary.open_findings
    );
    figure("scale.first_pass", first_pass, "s");

    // Nothing changes.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (log_from, audit_from, cpu_from) = (
        file_len(log),
        file_len(audit),
        netheal_e2e::procfs::cpu_ticks(pid).0,
    );
    tokio::time::sleep(IDLE_WINDOW).await;
    let idle = requests_since(audit, audit_from)?;
    let ticks = netheal_e2e::procfs::cpu_ticks(pid)
        .0
        .saturating_sub(cpu_from) as f64;
    let clock = netheal_e2e::procfs::clock_ticks_per_second();
    let passes = log_events(log, log_from, "pass finished");
    let pass_ms = field_ms(&passes, "total_ms");
    let decide_ms = field_ms(&log_events(log, log_from, "decided"), "decide_ms");
    let idle_writes = idle.iter().filter(|r| r.is_write()).count();
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for r in &idle {
        *by_kind
            .entry(format!("{} {}", r.verb, r.resource))
            .or_default() += 1;
    }
    println!(
        "idle {} s: {} passes, {} requests ({by_kind:?}), {idle_writes} writes, CPU {:.1} % of a core",
        IDLE_WINDOW.as_secs(),
        passes.len(),
        idle.len(),
        100.0 * ticks / clock / IDLE_WINDOW.as_secs_f64()
    );
    figure("scale.pass.p50", percentile(&pass_ms, 50.0), "ms");
    figure("scale.pass.max", percentile(&pass_ms, 100.0), "ms");
    figure("scale.decide.p50", percentile(&decide_ms, 50.0), "ms");
    figure(
        "scale.idle_requests_per_s",
        idle.len() as f64 / IDLE_WINDOW.as_secs_f64(),
        "req/s",
    );
    figure("scale.idle_writes", idle_writes as f64, "writes");
    figure(
        "scale.idle_cpu",
        100.0 * ticks / clock / IDLE_WINDOW.as_secs_f64(),
        "%",
    );

    // 1% of the nodes change every second.
    let per_second = (nodes / 100).max(1);
    let (log_from, audit_from) = (file_len(log), file_len(audit));
    let churn_started = Instant::now();
    let mut changed = 0usize;
    let mut round = 0usize;
    while churn_started.elapsed() < CHURN_WINDOW {
        let tick = Instant::now();
        round += 1;
        for k in 0..per_second {
            let i = (round * per_second + k) % nodes;
            set_findings(&reports, i, round).await?;
            changed += 1;
        }
        tokio::time::sleep(Duration::from_secs(1).saturating_sub(tick.elapsed())).await;
    }
    let churn_secs = churn_started.elapsed().as_secs_f64();
    // The last changes' pass.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let churn = requests_since(audit, audit_from)?;
    let writes = churn.iter().filter(|r| r.is_write()).count();
    let churn_passes = log_events(log, log_from, "pass finished");
    println!(
        "churn {churn_secs:.0} s, {per_second} reports a second ({changed} changes): {} passes, {} requests, {writes} writes",
        churn_passes.len(),
        churn.len()
    );
    figure(
        "scale.churn_requests_per_s",
        churn.len() as f64 / churn_secs,
        "req/s",
    );
    figure(
        "scale.patches_per_changed_node",
        writes as f64 / changed as f64,
        "patches",
    );
    figure(
        "scale.churn_pass.p50",
        percentile(&field_ms(&churn_passes, "total_ms"), 50.0),
        "ms",
    );

    // One node changes, from the state the reports were created in.
    for i in (per_second..(round + 1) * per_second).map(|i| i % nodes) {
        set_findings(&reports, i, 0).await?;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut one_decide = Vec::new();
    let mut to_status = Vec::new();
    for r in 0..ONE_NODE_ROUNDS {
        let before = policies.get_status(POLICY).await?.resource_version();
        let from = file_len(log);
        let changed_at = Instant::now();
        let i = (r * 7919) % nodes;
        set_findings(&reports, i, 1001 + 2 * r).await?;
        // The first decision that has the change (one finding fewer on that node).
        let decided = wait_event(log, from, "decided", Duration::from_secs(30), |e| {
            e["findings"].as_u64() == Some(total - 1)
        })
        .await?;
        one_decide.push(decided["decide_ms"].as_f64().unwrap_or(f64::NAN));
        loop {
            if policies.get_status(POLICY).await?.resource_version() != before {
                break;
            }
            if changed_at.elapsed() > Duration::from_secs(30) {
                bail!("the policy status did not change after report {i} changed");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        to_status.push(changed_at.elapsed().as_secs_f64());
        // Put the node back and let that pass go by.
        set_findings(&reports, i, 0).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    figure("scale.one_node_change", percentile(&one_decide, 50.0), "ms");
    figure(
        "scale.one_node_change.to_status",
        percentile(&to_status, 50.0),
        "s",
    );
    figure(
        "scale.rss",
        proc_status_kib(pid, "VmHWM") as f64 / 1024.0,
        "MiB",
    );
    figure(
        "scale.rss_now",
        proc_status_kib(pid, "VmRSS") as f64 / 1024.0,
        "MiB",
    );
    Ok(())
}
