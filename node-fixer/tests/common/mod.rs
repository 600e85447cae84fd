//! Shared helpers of the kernel tests: namespaces (RAII, removed on failure too), engine
//! configs, policies and Node objects.
#![allow(dead_code, clippy::unwrap_used)] // test helpers: a panic is how a test fails

use k8s_openapi::api::core::v1::Node;
use netheal_crds::{Finding, NetworkHealthPolicySpec, Outcome, RemediationResult};
pub use netheal_e2e::netns::Netns;
use node_fixer::engine::{self, ClusterFacts, EngineConfig};
use std::path::Path;

/// Create a namespace (test names start with `nf-`).
pub fn netns(name: &str) -> Netns {
    assert!(
        name.starts_with("nf-"),
        "test namespaces use the nf- prefix"
    );
    Netns::create(name).unwrap()
}

/// Run `ip -n NS args…`, panicking with the error on failure.
pub fn ip(ns: &Netns, args: &str) {
    let args: Vec<&str> = args.split_whitespace().collect();
    ns.ip(&args).unwrap();
}

/// Run a program inside the namespace.
pub fn exec(ns: &Netns, cmd: &str) -> String {
    let args: Vec<&str> = cmd.split_whitespace().collect();
    let out = ns.exec(args[0], &args[1..]).unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A sysctl read inside the namespace (`net/ipv4/ip_forward`).
pub fn sysctl(ns: &Netns, key: &str) -> String {
    exec(ns, &format!("cat /proc/sys/{key}")).trim().to_string()
}

/// Join two namespaces with a veth pair.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) {
    ip(
        a,
        &format!(
            "link add {a_if} type veth peer name {b_if} netns {}",
            b.name()
        ),
    );
    ip(a, &format!("link set {a_if} up"));
    ip(b, &format!("link set {b_if} up"));
}

/// An engine config for the host namespace `ns`, pod namespaces `nf-cni-<pods>-*`, and a
/// private sysctl directory.
pub fn config(
    ns: &Netns,
    pods: &str,
    sysctl_dir: &Path,
    nodes: Vec<Node>,
    this: &str,
) -> EngineConfig {
    EngineConfig {
        netns: Some(ns.name().to_string()),
        pod_netns_glob: format!("/var/run/netns/nf-cni-{pods}-*"),
        sysctl_dir: sysctl_dir.to_path_buf(),
        // The host's own lease file, if any, is not the test's.
        flannel_subnet_env: sysctl_dir.join("subnet.env"),
        cluster: ClusterFacts {
            this_node: Some(this.to_string()),
            nodes,
            services: Vec::new(),
            calico_blocks: Vec::new(),
        },
    }
}

/// The built-in default policy (what `node-fixer fix` uses without `--policy`).
pub fn policy() -> NetworkHealthPolicySpec {
    engine::default_policy()
}

/// The targets of findings, sorted.
pub fn targets<I>(findings: I) -> Vec<String>
where
    I: IntoIterator,
    I::Item: std::borrow::Borrow<Finding>,
{
    use std::borrow::Borrow;
    let mut t: Vec<String> = findings
        .into_iter()
        .map(|f| f.borrow().target.clone())
        .collect();
    t.sort();
    t
}

/// Scan, build orders for every node-local finding, execute them.
pub fn fix_all(
    policy: &NetworkHealthPolicySpec,
    config: &EngineConfig,
    dry_run: bool,
) -> Vec<RemediationResult> {
    let scan = engine::scan(policy, config);
    assert!(scan.errors.is_empty(), "scan errors: {:?}", scan.errors);
    engine::orders_for(&scan.findings, policy, dry_run)
        .iter()
        .map(|o| engine::execute(o, policy, config))
        .collect()
}

/// Every result has this outcome.
pub fn assert_all(results: &[RemediationResult], outcome: Outcome) {
    for r in results {
        assert_eq!(r.outcome, outcome, "{r:?}");
    }
}

/// A Node with flannel annotations.
pub fn node(name: &str, pod_cidr: &str, vtep_mac: &str, public_ip: &str) -> Node {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "annotations": {
            "flannel.alpha.coreos.com/backend-data": format!("{{\"VNI\":1,\"VtepMAC\":\"{vtep_mac}\"}}"),
            "flannel.alpha.coreos.com/public-ip": public_ip,
            "flannel.alpha.coreos.com/backend-type": "vxlan"}},
        "spec": {"podCIDR": pod_cidr}
    }))
    .unwrap()
}

/// A Node of a dual-stack cluster: an IPv4 and an IPv6 pod range.
pub fn dual_stack_node(name: &str, v4: &str, v6: &str) -> Node {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name},
        "spec": {"podCIDR": v4, "podCIDRs": [v4, v6]}
    }))
    .unwrap()
}

/// The node-fixer binary.
pub fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_node-fixer"))
}

/// Scan with `policy` (no probe may fail) and keep the findings of `check`.
pub fn findings_of(
    policy: &NetworkHealthPolicySpec,
    config: &EngineConfig,
    check: netheal_crds::Check,
) -> Vec<Finding> {
    let scan = engine::scan(policy, config);
    assert!(scan.errors.is_empty(), "scan errors: {:?}", scan.errors);
    scan.findings
        .to_vec()
        .into_iter()
        .filter(|f| f.check == check)
        .collect()
}

/// Poll `probe` every 100 ms until it returns a value; panic naming `what` after `timeout`.
pub async fn wait_for<T>(
    what: &str,
    timeout: std::time::Duration,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
