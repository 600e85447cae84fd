//! The real `node-fixer agent` binary against the real control plane, managing a network
//! namespace built here: a fault shows in the report, an order approved by hand fixes the
//! kernel and is answered, the finding clears, and a restarted agent does not run the order
//! again. Needs root (network namespaces).

// Tests may unwrap: a panic is how a test fails (helpers outside #[test] included).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::wait_for;
use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use netheal_crds::{Check, Finding, NodeNetworkReport, NodeNetworkReportStatus};
use netheal_e2e::controlplane::ControlPlane;
use netheal_e2e::netns::Netns;
use serde_json::json;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NODE: &str = "nfa-node1";

/// A running agent, stopped (SIGTERM, then SIGKILL) when dropped.
struct Agent {
    child: Child,
}

impl Agent {
    fn start(kubeconfig: &Path, listen: &str, sysctl_dir: &Path, log: &Path) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_node-fixer"))
            .args([
                "agent",
                "--netns",
                NODE,
                "--pod-netns",
                "/var/run/netns/nfa-cni-node1-*",
                "--listen",
                listen,
                "--poll-interval",
                "1s",
                "--resync-interval",
                "300s",
                "--sysctl-dir",
            ])
            .arg(sysctl_dir)
            .args(["--log-format", "json"])
            .env("NODE_NAME", NODE)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Self { child }
    }

    /// SIGTERM and wait: the agent finishes what it does and exits 0.
    fn stop(mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "agent did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` on 127.0.0.1:port: (status code, body); `None` while nothing listens.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((code, body))
}

async fn status(api: &Api<NodeNetworkReport>) -> Option<NodeNetworkReportStatus> {
    api.get_opt(NODE)
        .await
        .ok()
        .flatten()
        .and_then(|r| r.status)
}

fn ip_forward_finding(s: &NodeNetworkReportStatus) -> Option<Finding> {
    s.findings
        .iter()
        .find(|f| f.check == Check::IpForward && f.target == "net.ipv4.ip_forward")
        .cloned()
}

fn read_sysctl(ns: &Netns, key: &str) -> String {
    let out = ns.exec("cat", &[&format!("/proc/sys/{key}")]).unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

async fn setup(server: &ControlPlane, client: &Client) {
    server.apply_crds().unwrap();
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": NODE, "labels": {"netheal.io/test": "nfa"}},
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    // A policy for this node (only the checks this test exercises), and one for other nodes.
    server
        .apply_manifest(
            r#"
apiVersion: netheal.io/v1alpha1
kind: NetworkHealthPolicy
metadata: {name: nfa-ip-forward}
spec:
  nodeSelector: {matchLabels: {netheal.io/test: nfa}}
  mode: Enforce
  checks:
    arpIgnore: {enabled: false}
    staleNeighbours: {enabled: false}
    overlay: {enabled: false}
    duplicatePodIps: {enabled: false}
    proxyArp: {enabled: false}
    masquerade: {enabled: false}
    rpFilter: {enabled: false}
    rejectRules: {enabled: true}
---
apiVersion: netheal.io/v1alpha1
kind: NetworkHealthPolicy
metadata: {name: nfa-elsewhere}
spec:
  nodeSelector: {matchLabels: {pool: elsewhere}}
"#,
        )
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_reports_a_fault_executes_an_approved_order_once_and_survives_a_restart() {
    let ns = Netns::create(NODE).unwrap();
    ns.set_sysctl("net/ipv4/ip_forward", "1").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let server = ControlPlane::for_test("nfa").await.unwrap();
    let kubeconfig = tmp.path().join("kubeconfig");
    std::fs::copy(server.admin_kubeconfig(), &kubeconfig).unwrap();
    let client = server.admin_client().await.unwrap();
    setup(&server, &client).await;
    let reports: Api<NodeNetworkReport> = Api::all(client.clone());
    let sysctl_dir = tmp.path().join("sysctl.d");
    std::fs::create_dir_all(&sysctl_dir).unwrap();
    let log = tmp.path().join("agent.log");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let agent = Agent::start(&kubeconfig, &listen, &sysctl_dir, &log);
    let dump_log = || std::fs::read_to_string(&log).unwrap_or_default();

    // A healthy node: the report is created, owned by the Node, with no IpForward finding.
    let healthy = wait_for("the first report", Duration::from_secs(20), async || {
        status(&reports).await
    })
    .await;
    assert!(ip_forward_finding(&healthy).is_none(), "{healthy:#?}");
    assert_eq!(
        healthy.agent_version.as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    let report = reports.get(NODE).await.unwrap();
    let owner = &report.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Node", NODE));
    let node_uid = Api::<Node>::all(client.clone())
        .get(NODE)
        .await
        .unwrap()
        .metadata
        .uid;
    assert_eq!(Some(owner.uid.clone()), node_uid);
    let (code, _) = wait_for("/readyz", Duration::from_secs(5), async || {
        http_get(port, "/readyz").filter(|(c, _)| *c == 200)
    })
    .await;
    assert_eq!(code, 200);

    // Inject the fault: the finding shows, from the policy that selects the node.
    ns.set_sysctl("net/ipv4/ip_forward", "0").unwrap();
    let finding = wait_for(
        "the IpForward finding",
        Duration::from_secs(10),
        async || status(&reports).await.as_ref().and_then(ip_forward_finding),
    )
    .await;
    assert_eq!(finding.policy.as_deref(), Some("nfa-ip-forward"));
    assert_eq!(finding.observed, "0");
    assert!(finding.first_seen.is_some());
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    assert!(
        metrics.contains("netheal_node_scan_duration_seconds_count"),
        "{metrics}"
    );

    // Approve an order by hand, as the operator would.
    let order = json!({"spec": {"remediations": [{
        "id": "nfa-order-1",
        "action": "SetSysctl",
        "findingId": finding.id,
        "check": "IpForward",
        "target": finding.target,
        "parameters": finding.details,
        "policy": "nfa-ip-forward",
        "dryRun": false,
        "approvedAt": "2026-01-01T00:00:00Z",
    }]}});
    reports
        .patch(NODE, &PatchParams::default(), &Patch::Merge(&order))
        .await
        .unwrap();
    let answered = wait_for("the order's result", Duration::from_secs(10), async || {
        status(&reports)
            .await
            .filter(|s| s.results.iter().any(|r| r.id == "nfa-order-1"))
    })
    .await;
    let result = answered
        .results
        .iter()
        .find(|r| r.id == "nfa-order-1")
        .unwrap();
    assert_eq!(
        result.outcome.as_str(),
        "Applied",
        "{result:#?}\n{}",
        dump_log()
    );
    assert_eq!(result.before, "0");
    assert_eq!(read_sysctl(&ns, "net/ipv4/ip_forward"), "1");
    assert!(
        ip_forward_finding(&answered).is_none(),
        "the finding clears in the same write: {answered:#?}"
    );
    assert_eq!(answered.pending_orders, 0);

    // Restart: the answered order is never executed again, even when the fault comes back.
    let exit = agent.stop();
    assert!(
        exit.success(),
        "agent exit on SIGTERM: {exit:?}\n{}",
        dump_log()
    );
    ns.set_sysctl("net/ipv4/ip_forward", "0").unwrap();
    let agent = Agent::start(&kubeconfig, &listen, &sysctl_dir, &log);
    let again = wait_for(
        "the fault reported again",
        Duration::from_secs(20),
        async || status(&reports).await.as_ref().and_then(ip_forward_finding),
    )
    .await;
    assert_eq!(again.id, finding.id);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        read_sysctl(&ns, "net/ipv4/ip_forward"),
        "0",
        "the order ran twice\n{}",
        dump_log()
    );
    let after = status(&reports).await.unwrap();
    assert_eq!(
        after
            .results
            .iter()
            .filter(|r| r.id == "nfa-order-1")
            .count(),
        1
    );
    assert_eq!(after.pending_orders, 0);
    drop(agent);
    drop(server);
}
