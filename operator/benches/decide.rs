//! The decision pass at scale, and the memory the stores take.
//!
//! `cargo bench -p netheal-operator --bench decide`
//!
//! Builds 5,000 Nodes with a report of 10 findings each and 150,000 pods (30 per node, a few
//! duplicate IPs, a CNI agent per node), feeds them through the same stripping the watch
//! streams apply into real reflector stores, and prints:
//! - the resident memory the stores' content takes (VmRSS before/after, and VmHWM);
//! - the time of one decision pass (median and worst of several), target < 50 ms.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector;
use kube::runtime::watcher::Event;
use netheal_crds::{NetworkHealthPolicy, NodeNetworkReport};
use netheal_operator::decide::memo::Memo;
use netheal_operator::decide::{Inputs, decide, decide_with};
use netheal_operator::ledger::Ledger;
use netheal_operator::model::{NodeInfo, NodeInfos, SlimPod};
use netheal_operator::watch::{strip_node, strip_pod, strip_report};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

const NODES: usize = 5_000;
const FINDINGS_PER_NODE: usize = 10;
const PODS: usize = 150_000;

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn node_json(i: usize) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": format!("node-{i:05}"), "uid": format!("uid-node-{i}"),
            "resourceVersion": "1",
            "labels": {"kubernetes.io/hostname": format!("node-{i:05}"), "kubernetes.io/os": "linux", "pool": "default"},
            "annotations": {
                "flannel.alpha.coreos.com/backend-data": "{\"VNI\":1,\"VtepMAC\":\"aa:bb:cc:dd:ee:ff\"}",
                "flannel.alpha.coreos.com/public-ip": "172.18.0.2",
                "node.alpha.kubernetes.io/ttl": "0"
            },
            "managedFields": [{"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:conditions": {}}}}]
        },
        "spec": {"podCIDR": format!("10.{}.{}.0/24", i / 256, i % 256)},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}],
            "images": [{"names": ["registry.k8s.io/pause:3.9"], "sizeBytes": 321520}],
            "nodeInfo": {"architecture": "amd64", "bootID": "b", "containerRuntimeVersion": "containerd://1.7", "kernelVersion": "6.1", "kubeProxyVersion": "v1.33", "kubeletVersion": "v1.33", "machineID": "m", "operatingSystem": "linux", "osImage": "Debian", "systemUUID": "s"}
        }
    })
}

fn report_json(i: usize) -> serde_json::Value {
    let checks = [
        ("ArpIgnore", "SetSysctl"),
        ("IpForward", "SetSysctl"),
        ("StaleNeighbour", "DeleteNeighbour"),
        ("RejectRule", "RemoveRejectRule"),
        ("ProxyArpOff", ""),
    ];
    let findings: Vec<_> = (0..FINDINGS_PER_NODE)
        .map(|k| {
            let (check, action) = checks[k % checks.len()];
            let target = format!("netns cni-node-{i}-{k} net.ipv4.conf.eth0.arp_ignore");
            let mut f = json!({
                "id": netheal_crds::finding_id(serde_json::from_value(json!(check)).unwrap(), &target),
                "check": check, "target": target, "observed": "2", "desired": "0",
                "details": {"netns": format!("cni-node-{i}-{k}"), "sysctl": "net/ipv4/conf/eth0/arp_ignore", "value": "0"},
                "policy": "default",
                "lastSeen": "2026-01-01T00:00:00Z"
            });
            if !action.is_empty() {
                f["action"] = json!(action);
            }
            f
        })
        .collect();
    json!({
        "apiVersion": "netheal.io/v1alpha1", "kind": "NodeNetworkReport",
        "metadata": {"name": format!("node-{i:05}"), "uid": format!("uid-r-{i}"), "resourceVersion": "1",
            "managedFields": [{"manager": "node-fixer", "operation": "Update"}]},
        "spec": {},
        "status": {"agentVersion": "0.1.0", "iptablesBackend": "nft", "lastScanTime": "2026-01-01T00:00:00Z",
            "openFindings": FINDINGS_PER_NODE, "findings": findings}
    })
}

fn pod_json(i: usize, nodes: usize) -> serde_json::Value {
    let node = i % nodes;
    let agent = i < nodes;
    // Every 1,000th pod shares its IP with the previous one.
    let ip_index = if i % 1000 == 1 { i - 1 } else { i };
    let (ns, name, labels) = if agent {
        (
            "kube-system",
            format!("canal-{node}"),
            json!({"k8s-app": "canal", "controller-revision-hash": "abc", "pod-template-generation": "1"}),
        )
    } else {
        (
            "default",
            format!("web-{i}-7d9f8b6c5d-x2x4z"),
            json!({"app": "web", "pod-template-hash": "7d9f8b6c5d"}),
        )
    };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": ns, "uid": format!("0b7a6c1e-1f2d-4c3b-9a8e-{i:012}"),
            "resourceVersion": "123456", "creationTimestamp": "2026-01-01T00:00:00Z",
            "generateName": "web-7d9f8b6c5d-",
            "labels": labels,
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z", "prometheus.io/scrape": "true"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f8b6c5d", "uid": "9c1d", "controller": true, "blockOwnerDeletion": true}],
            "managedFields": [{"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {}}, "f:spec": {"f:containers": {}}}}]
        },
        "spec": {
            "nodeName": format!("node-{node:05}"),
            "hostNetwork": agent,
            "containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}], "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}], "volumeMounts": [{"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]}],
            "volumes": [{"name": "kube-api-access", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}],
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]
        },
        "status": {
            "phase": "Running",
            "podIP": format!("10.{}.{}.{}", ip_index / 65536, (ip_index / 256) % 256, ip_index % 256),
            "podIPs": [{"ip": format!("10.{}.{}.{}", ip_index / 65536, (ip_index / 256) % 256, ip_index % 256)}],
            "hostIP": "172.18.0.2",
            "conditions": [
                {"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"},
                {"type": "ContainersReady", "status": "True"}, {"type": "PodScheduled", "status": "True"}
            ],
            "containerStatuses": [{"name": "web", "ready": true, "restartCount": 0, "image": "nginx:1.27", "imageID": "docker.io/library/nginx@sha256:abc", "containerID": "containerd://abc", "started": true, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]
        }
    })
}

/// The decision's inputs, without per-node views.
fn inputs<'a>(
    policies: &'a [Arc<NetworkHealthPolicy>],
    reports: &'a [Arc<NodeNetworkReport>],
    nodes: &'a [NodeInfo],
    pods: &'a [Arc<SlimPod>],
    ledger: &'a Ledger,
    now: Timestamp,
) -> Inputs<'a> {
    Inputs {
        policies,
        reports,
        nodes,
        pods,
        ledger,
        now,
        node_views: false,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too: keep it quick then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let scale = if quick { 50 } else { 1 };
    let (nodes_n, pods_n) = (NODES / scale, PODS / scale);

    let (policies, mut w_policies) = reflector::store::<NetworkHealthPolicy>();
    let (reports, mut w_reports) = reflector::store::<NodeNetworkReport>();
    let (nodes, mut w_nodes) = reflector::store::<Node>();
    let (pods, mut w_pods) = reflector::store::<SlimPod>();

    let rss_before = status_kib("VmRSS:");
    let started = Instant::now();
    for i in 0..nodes_n {
        let text = serde_json::to_string(&node_json(i)).unwrap();
        let mut node: Node = serde_json::from_str(&text).unwrap();
        strip_node(&mut node);
        w_nodes.apply_watcher_event(&Event::Apply(node));
        let text = serde_json::to_string(&report_json(i)).unwrap();
        let mut report: NodeNetworkReport = serde_json::from_str(&text).unwrap();
        strip_report(&mut report);
        w_reports.apply_watcher_event(&Event::Apply(report));
    }
    for i in 0..pods_n {
        let text = serde_json::to_string(&pod_json(i, nodes_n)).unwrap();
        let mut pod: SlimPod = serde_json::from_str(&text).unwrap();
        strip_pod(&mut pod);
        w_pods.apply_watcher_event(&Event::Apply(pod));
    }
    let rss_after = status_kib("VmRSS:");
    let hwm = status_kib("VmHWM:");
    let build = started.elapsed();

    let policy: NetworkHealthPolicy = serde_json::from_value(json!({
        "apiVersion": "netheal.io/v1alpha1", "kind": "NetworkHealthPolicy",
        "metadata": {"name": "default", "generation": 1},
        "spec": {"mode": "Enforce", "remediation": {"maxConcurrentNodes": 10}}
    }))
    .unwrap();
    w_policies.apply_watcher_event(&Event::Apply(policy));

    let policies = policies.state();
    let reports = reports.state();
    let pods = pods.state();
    // Read as the operator reads them (each info under a version).
    let node_infos: Vec<NodeInfo> = NodeInfos::default().read(nodes.state()).to_vec();
    let ledger = Ledger::new();
    let now = Timestamp::from_second(1_800_000_000).unwrap();

    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..if quick { 2 } else { 15 } {
        let t = Instant::now();
        let d = decide(&inputs(
            &policies,
            &reports,
            &node_infos,
            &pods,
            &ledger,
            now,
        ));
        times.push(t.elapsed());
        last = Some(d);
    }
    times.sort();
    let d = last.unwrap();
    let t = Instant::now();
    let groups = netheal_operator::decide::duplicates::detect(&pods);
    let detect = t.elapsed();
    assert!(!groups.is_empty());
    let outcome = &d.policies["default"];
    assert_eq!(outcome.nodes_selected as usize, nodes_n);
    assert!(outcome.open_findings() as usize >= nodes_n * FINDINGS_PER_NODE);
    assert!(d.nodes_in_flight.len() <= 10);

    println!(
        "stores: {nodes_n} nodes, {} reports x {FINDINGS_PER_NODE} findings, {pods_n} pods (built in {:.1?})",
        reports.len(),
        build
    );
    println!(
        "memory: VmRSS {} MiB -> {} MiB (+{:.1} MiB for the stores' content), VmHWM {} MiB (target < 256 MiB)",
        rss_before / 1024,
        rss_after / 1024,
        (rss_after.saturating_sub(rss_before)) as f64 / 1024.0,
        hwm / 1024
    );
    println!(
        "decide: median {:.2?}, worst {:.2?} over {} passes ({} findings, {} duplicate-IP groups, {} orders) (target < 50 ms)",
        times[times.len() / 2],
        times[times.len() - 1],
        times.len(),
        outcome.open_findings(),
        outcome
            .open_by_check
            .get(&netheal_crds::Check::DuplicatePodIp)
            .copied()
            .unwrap_or(0),
        d.orders.values().map(Vec::len).sum::<usize>()
    );
    println!("of which duplicate-IP detection over {pods_n} pods: {detect:.2?}");
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    println!(
        "figure: decide.pass.p50 {:.1} ms",
        ms(times[times.len() / 2])
    );
    println!(
        "figure: decide.pass.max {:.1} ms",
        ms(times[times.len() - 1])
    );
    println!("figure: decide.duplicate_ip_detection {:.1} ms", ms(detect));
    println!("figure: decide.hwm {} MiB", hwm / 1024);

    // The same cluster under a DryRun policy, one report changing between passes: the memo
    // keeps every unchanged node's decisions.
    let mut dry_run = policies[0].as_ref().clone();
    dry_run.spec.mode = netheal_crds::Mode::DryRun;
    let policies = vec![Arc::new(dry_run)];
    let mut reports = reports;
    let mut memo = Memo::default();
    let mut one = Vec::new();
    let mut reused = 0;
    let mut deltas = 0;
    for round in 0..if quick { 3 } else { 21 } {
        let i = (round * 7919) % reports.len();
        let mut changed = reports[i].as_ref().clone();
        if let Some(status) = changed.status.as_mut() {
            status.findings.pop();
        }
        reports[i] = Arc::new(changed);
        let t = Instant::now();
        let d = decide_with(
            &inputs(&policies, &reports, &node_infos, &pods, &ledger, now),
            &mut memo,
        );
        // The first pass fills the memo.
        if round > 0 {
            one.push(t.elapsed());
            reused = d.reused_nodes;
            deltas += usize::from(memo.last_was_delta());
        }
    }
    one.sort();
    println!(
        "one report changed, DryRun, with the memo: median {:.2?}, worst {:.2?} ({reused} of {nodes_n} nodes reused, {deltas} of {} passes deltas; target < 5 ms)",
        one[one.len() / 2],
        one[one.len() - 1],
        one.len()
    );
    println!(
        "figure: decide.one_node_change.p50 {:.2} ms",
        ms(one[one.len() / 2])
    );
}
