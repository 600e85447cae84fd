//! The real `node-fixer agent` on a cluster with Calico IPAM: Calico's `BlockAffinity` API is
//! served by the real API server, the agent finds it at start, watches the objects and reports
//! `PeerRouteMissing` for a peer block its node has no route to (seed 001); the finding clears
//! once the route is back, and an object that is not what Calico writes is a report error, never
//! a crash. Needs root (network namespaces).

// Tests may unwrap: a panic is how a test fails (helpers outside #[test] included).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::wait_for;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, PostParams};
use netheal_crds::{Check, NodeNetworkReport, NodeNetworkReportStatus};
use netheal_e2e::controlplane::ControlPlane;
use netheal_e2e::netns::Netns;
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const NODE: &str = "nfc-node1";
const PEER: &str = "nfc-node2";
const BLOCK: &str = "10.40.52.128/26";

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn status(api: &Api<NodeNetworkReport>) -> Option<NodeNetworkReportStatus> {
    api.get_opt(NODE)
        .await
        .ok()
        .flatten()
        .and_then(|r| r.status)
}

fn has_block_finding(s: &NodeNetworkReportStatus) -> bool {
    s.findings
        .iter()
        .any(|f| f.check == Check::PeerRouteMissing && f.target == format!("route {BLOCK}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_reads_block_affinities_and_reports_a_lost_peer_block_route() {
    let ns = Netns::create(NODE).unwrap();
    ns.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
    ])
    .unwrap();
    ns.ip(&["addr", "add", "192.168.80.1/24", "dev", "eth0"])
        .unwrap();
    ns.ip(&["link", "set", "eth0", "up"]).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let server = ControlPlane::for_test("nfc").await.unwrap();
    let client = server.admin_client().await.unwrap();
    server.apply_crds().unwrap();
    let crd = include_str!("../../e2e/calico/blockaffinity-crd.yaml");
    server.apply_manifest(crd).unwrap();
    server
        .kubectl(&[
            "wait",
            "--for=condition=Established",
            "crd/blockaffinities.crd.projectcalico.org",
            "--timeout=30s",
        ])
        .unwrap();
    let nodes: Api<Node> = Api::all(client.clone());
    for (name, ip) in [(NODE, "192.168.80.1"), (PEER, "192.168.80.2")] {
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"netheal.io/test": "nfc"}},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
        }))
        .unwrap();
        nodes.create(&PostParams::default(), &node).await.unwrap();
    }
    server
        .apply_manifest(&format!(
            r#"
apiVersion: crd.projectcalico.org/v1
kind: BlockAffinity
metadata: {{name: {PEER}-10-40-52-128-26}}
spec: {{cidr: "{BLOCK}", node: {PEER}, state: confirmed, deleted: "false", type: host}}
---
apiVersion: crd.projectcalico.org/v1
kind: BlockAffinity
metadata: {{name: {NODE}-10-40-51-0-26}}
spec: {{cidr: 10.40.51.0/26, node: {NODE}, state: confirmed, deleted: "false", type: host}}
---
apiVersion: netheal.io/v1alpha1
kind: NetworkHealthPolicy
metadata: {{name: nfc-calico}}
spec:
  nodeSelector: {{matchLabels: {{netheal.io/test: nfc}}}}
  mode: DryRun
  checks:
    arpIgnore: {{enabled: false}}
    staleNeighbours: {{enabled: false}}
    duplicatePodIps: {{enabled: false}}
    rejectRules: {{enabled: false}}
    overlay: {{cni: Calico, agentSelector: {{namespace: kube-system, labels: {{k8s-app: calico-node}}}}}}
"#
        ))
        .unwrap();
    let log = tmp.path().join("agent.log");
    let kubeconfig = tmp.path().join("kubeconfig");
    std::fs::copy(server.admin_kubeconfig(), &kubeconfig).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_node-fixer"))
        .args([
            "agent",
            "--netns",
            NODE,
            "--pod-netns",
            "/var/run/netns/nfc-cni-*",
        ])
        .args(["--listen", "127.0.0.1:0", "--poll-interval", "1s"])
        .arg("--sysctl-dir")
        .arg(tmp.path())
        .env("NODE_NAME", NODE)
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _agent = Agent(child);
    let reports: Api<NodeNetworkReport> = Api::all(client.clone());
    let dump = || std::fs::read_to_string(&log).unwrap_or_default();

    // No route to node2's block: found, from its BlockAffinity; this node's own block is not.
    let found = wait_for(
        "the block route finding",
        Duration::from_secs(30),
        async || status(&reports).await.filter(has_block_finding),
    )
    .await;
    let routes: Vec<&str> = found
        .findings
        .iter()
        .filter(|f| f.check == Check::PeerRouteMissing)
        .map(|f| f.target.as_str())
        .collect();
    assert_eq!(routes, [format!("route {BLOCK}")], "{}", dump());
    assert!(
        dump().contains("watching Calico BlockAffinity objects"),
        "{}",
        dump()
    );

    // A malformed object is an error of the report; the good blocks are still judged.
    server
        .apply_manifest(
            "apiVersion: crd.projectcalico.org/v1\nkind: BlockAffinity\nmetadata: {name: nfc-bad}\nspec: {cidr: 10.40.52.300/26, node: nfc-node2, state: confirmed, deleted: \"false\"}\n",
        )
        .unwrap();
    let errored = wait_for("the report error", Duration::from_secs(30), async || {
        status(&reports).await.filter(|s| {
            s.errors
                .iter()
                .any(|e| e.contains("BlockAffinity nfc-bad: spec.cidr"))
        })
    })
    .await;
    assert!(has_block_finding(&errored), "{errored:#?}");

    // calico-node programs the route again: the finding clears.
    ns.ip(&["route", "add", BLOCK, "via", "192.168.80.2", "dev", "eth0"])
        .unwrap();
    wait_for(
        "the finding to clear",
        Duration::from_secs(30),
        async || status(&reports).await.filter(|s| !has_block_finding(s)),
    )
    .await;
}
