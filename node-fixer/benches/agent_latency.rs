//! Detection latency and idle cost of the real `node-fixer agent`.
//!
//! `cargo bench -p node-fixer --bench agent_latency` (root). Starts the real control plane
//! in this process, builds the network namespace `nfa-bench` (veths `cali-bench` and `eth-bulk`), runs the agent binary on it with the default intervals (poll 5 s,
//! resync 300 s) and the default policy, and measures, by polling the report every 5 ms:
//! - neighbour event → report: a PERMANENT neighbour on `cali-bench` with no route
//!   (`StaleNeighbour`) appears; it clears when a route covers it (route event); and when it is
//!   deleted;
//! - sysctl → report: `ip_forward` 1→0 (appear) and 0→1 (clear), a netconf event;
//!   `arp_ignore` 0→2 and back, no event: the poll finds it;
//! - iptables → report: a REJECT rule in INPUT (iptables-nft) appears and goes, an nftables
//!   event;
//! - idle: with 10k PERMANENT neighbours on `eth-bulk`, the agent's CPU (utime+stime over 60 s)
//!   and RSS (`VmRSS`, `VmHWM`), and how many report writes happened meanwhile.
//!
//! Figures go to stdout; nothing is asserted about timings.

// A measurement harness: a panic is how a broken setup fails.
#![allow(clippy::unwrap_used)]
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, PostParams};
use netheal_crds::NodeNetworkReport;
use netheal_e2e::cluster::faults::reject_input_args;
use netheal_e2e::controlplane::ControlPlane;
use netheal_e2e::netns::{Netns, run};
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NS: &str = "nfa-bench";

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn proc_field(pid: u32, file: &str, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn targets(r: &NodeNetworkReport) -> Vec<String> {
    r.status
        .as_ref()
        .map(|s| s.findings.iter().map(|f| f.target.clone()).collect())
        .unwrap_or_default()
}

/// Time from now until `pred(targets)` holds on the stored report.
async fn until(
    api: &Api<NodeNetworkReport>,
    limit: Duration,
    pred: impl Fn(&[String]) -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(r)) = api.get_opt(NS).await
            && pred(&targets(&r))
        {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

/// Print the samples' spread, and `figure: <figure> <median> s` when a figure is named.
fn summary(name: &str, figure: Option<&str>, samples: &[Option<Duration>]) {
    let mut ok: Vec<f64> = samples
        .iter()
        .flatten()
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    ok.sort_by(|a, b| a.total_cmp(b));
    let missed = samples.len() - ok.len();
    if ok.is_empty() {
        println!("{name:<44} no sample within the limit ({missed} missed)");
        return;
    }
    let median = ok[ok.len() / 2];
    if let Some(figure) = figure {
        println!("figure: {figure} {:.3} s", median / 1000.0);
    }
    println!(
        "{name:<44} n={:<3} median {median:>7.1} ms  min {:>7.1} ms  max {:>7.1} ms{}",
        ok.len(),
        ok[0],
        ok[ok.len() - 1],
        if missed > 0 {
            format!("  ({missed} missed)")
        } else {
            String::new()
        }
    );
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Let the agent go quiet (the watch echo of its own last write wakes one more scan), then
/// wait `offset` more, so injections land at varied points of the poll period.
async fn settle(offset: Duration) {
    tokio::time::sleep(Duration::from_millis(300) + offset).await;
}

fn ns_ip(args: &[&str]) {
    let mut all = vec!["-n", NS];
    all.extend_from_slice(args);
    run("ip", &all).unwrap();
}

fn main() {
    if command_output("id", &["-u"]) != "0" {
        eprintln!("agent_latency needs root (network namespaces)");
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(bench());
}

async fn bench() {
    let ns = Netns::create(NS).unwrap();
    for (a, b) in [("cali-bench", "cali-bench-p"), ("eth-bulk", "eth-bulk-p")] {
        ns_ip(&["link", "add", a, "type", "veth", "peer", "name", b]);
        ns_ip(&["link", "set", a, "up"]);
        ns_ip(&["link", "set", b, "up"]);
    }
    ns.set_sysctl("net/ipv4/ip_forward", "1").unwrap();
    ns.set_sysctl("net/ipv4/conf/cali-bench/proxy_arp", "1")
        .unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let server = ControlPlane::for_test("bench").await.unwrap();
    let kubeconfig = tmp.path().join("kubeconfig");
    std::fs::copy(server.admin_kubeconfig(), &kubeconfig).unwrap();
    server.apply_crds().unwrap();
    let client = server.admin_client().await.unwrap();
    let node: Node = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NS}}),
    )
    .unwrap();
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await
        .unwrap();
    server
        .apply_manifest("apiVersion: netheal.io/v1alpha1\nkind: NetworkHealthPolicy\nmetadata: {name: default}\nspec: {}\n")
        .unwrap();
    let reports: Api<NodeNetworkReport> = Api::all(client);

    let log = tmp.path().join("agent.log");
    let agent = Agent(
        Command::new(env!("CARGO_BIN_EXE_node-fixer"))
            .args([
                "agent",
                "--node-name",
                NS,
                "--netns",
                NS,
                "--listen",
                "127.0.0.1:0",
            ])
            .args([
                "--pod-netns",
                "/var/run/netns/nfa-bench-pod-*",
                "--sysctl-dir",
            ])
            .arg(tmp.path())
            .env("KUBECONFIG", &kubeconfig)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let pid = agent.0.id();
    let first = until(&reports, Duration::from_secs(30), |_| true).await;
    println!("agent start → first report: {:?}", first);
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!(
        "open findings at start: {:?}",
        reports.get(NS).await.ok().map(|r| targets(&r))
    );

    // Neighbour and route events.
    let limit = Duration::from_secs(15);
    let (mut appear, mut route_clear, mut delete_clear) = (vec![], vec![], vec![]);
    for i in 1..=10 {
        let ip = format!("10.250.0.{i}");
        let target = format!("neigh {ip} dev cali-bench");
        let has = |t: &[String]| t.iter().any(|x| x == &target);
        settle(Duration::ZERO).await;
        ns_ip(&[
            "neigh",
            "replace",
            &ip,
            "lladdr",
            &format!("02:00:00:00:00:{i:02x}"),
            "dev",
            "cali-bench",
            "nud",
            "permanent",
        ]);
        appear.push(until(&reports, limit, has).await);
        settle(Duration::ZERO).await;
        ns_ip(&["route", "add", &format!("{ip}/32"), "dev", "cali-bench"]);
        route_clear.push(until(&reports, limit, |t| !has(t)).await);
        settle(Duration::ZERO).await;
        ns_ip(&["route", "del", &format!("{ip}/32"), "dev", "cali-bench"]);
        until(&reports, limit, has).await;
        settle(Duration::ZERO).await;
        ns_ip(&["neigh", "del", &ip, "dev", "cali-bench"]);
        delete_clear.push(until(&reports, limit, |t| !has(t)).await);
    }
    summary(
        "neighbour added → finding shown",
        Some("detect.StaleNeighbour.p50"),
        &appear,
    );
    summary("route added → finding cleared", None, &route_clear);
    summary("neighbour deleted → finding cleared", None, &delete_clear);

    // Sysctls: no event, the poll (5 s) finds them.
    let (mut s_on, mut s_off) = (vec![], vec![]);
    for i in 0..4u64 {
        settle(Duration::from_millis(1300 * i)).await;
        ns.set_sysctl("net/ipv4/ip_forward", "0").unwrap();
        s_on.push(
            until(&reports, limit, |t| {
                t.iter().any(|x| x == "net.ipv4.ip_forward")
            })
            .await,
        );
        settle(Duration::from_millis(700 * i)).await;
        ns.set_sysctl("net/ipv4/ip_forward", "1").unwrap();
        s_off.push(
            until(&reports, limit, |t| {
                !t.iter().any(|x| x == "net.ipv4.ip_forward")
            })
            .await,
        );
    }
    summary(
        "ip_forward=0 → finding shown (netconf event)",
        Some("detect.IpForward.p50"),
        &s_on,
    );
    summary(
        "ip_forward=1 → finding cleared (netconf event)",
        None,
        &s_off,
    );

    // arp_ignore has no event: the poll (5 s) finds it.
    let (mut a_on, mut a_off) = (vec![], vec![]);
    let arp = |t: &[String]| t.iter().any(|x| x == "net.ipv4.conf.all.arp_ignore");
    for i in 0..4u64 {
        settle(Duration::from_millis(1300 * i)).await;
        ns.set_sysctl("net/ipv4/conf/all/arp_ignore", "2").unwrap();
        a_on.push(until(&reports, limit, arp).await);
        settle(Duration::from_millis(700 * i)).await;
        ns.set_sysctl("net/ipv4/conf/all/arp_ignore", "0").unwrap();
        a_off.push(until(&reports, limit, |t| !arp(t)).await);
    }
    summary(
        "arp_ignore=2 → finding shown (poll 5 s)",
        Some("detect.ArpIgnore.p50"),
        &a_on,
    );
    summary("arp_ignore=0 → finding cleared (poll 5 s)", None, &a_off);

    // iptables.
    let (mut r_on, mut r_off) = (vec![], vec![]);
    let rejects = |t: &[String]| {
        t.iter()
            .any(|x| x.starts_with("filter INPUT") && x.contains("REJECT"))
    };
    for i in 0..3u64 {
        settle(Duration::from_millis(1700 * i)).await;
        ns.exec("iptables", &reject_input_args("-A")).unwrap();
        r_on.push(until(&reports, limit, rejects).await);
        settle(Duration::from_millis(900 * i)).await;
        ns.exec("iptables", &reject_input_args("-D")).unwrap();
        r_off.push(until(&reports, limit, |t| !rejects(t)).await);
    }
    summary(
        "REJECT rule added → finding shown (nftables event)",
        Some("detect.RejectRule.p50"),
        &r_on,
    );
    summary(
        "REJECT rule deleted → finding cleared (nftables event)",
        None,
        &r_off,
    );

    // Idle with 10k neighbours.
    let batch: String = (0..10_000)
        .map(|i| format!("neigh replace 10.{}.{}.{} lladdr 02:01:00:{:02x}:{:02x}:01 dev eth-bulk nud permanent\n", 100 + i / 65536, (i / 256) % 256, i % 256, (i / 256) % 256, i % 256))
        .collect();
    let batch_file = tmp.path().join("neigh.batch");
    std::fs::write(&batch_file, batch).unwrap();
    ns_ip(&["-batch", batch_file.to_str().unwrap()]);
    tokio::time::sleep(Duration::from_secs(12)).await;
    let rv_before = reports.get(NS).await.unwrap().metadata.resource_version;
    let (own_before, children_before) = netheal_e2e::procfs::cpu_ticks(pid);
    let idle = Duration::from_secs(60);
    let start = Instant::now();
    // Every report write changes its resourceVersion; the agent writes far less than once a
    // second, so a 1 s poll counts each.
    let mut writes = 0u32;
    let mut last_rv = rv_before.clone();
    while start.elapsed() < idle {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rv = reports.get(NS).await.unwrap().metadata.resource_version;
        if rv != last_rv {
            writes += 1;
            last_rv = rv;
        }
    }
    let (own, children) = netheal_e2e::procfs::cpu_ticks(pid);
    let secs = start.elapsed().as_secs_f64();
    let hz = netheal_e2e::procfs::clock_ticks_per_second();
    let pct = |ticks: u64| ticks as f64 / hz / secs * 100.0;
    let rv_after = reports.get(NS).await.unwrap().metadata.resource_version;
    println!(
        "idle, 10k neighbours, {secs:.0} s: CPU {:.2}% of a core (agent) + {:.2}% (iptables-save children); VmRSS {} KiB, VmHWM {} KiB; report resourceVersion {rv_before:?} → {rv_after:?}",
        pct(own - own_before),
        pct(children - children_before),
        proc_field(pid, "status", "VmRSS:"),
        proc_field(pid, "status", "VmHWM:"),
    );
    let cpu = pct(own - own_before) + pct(children - children_before);
    println!("figure: agent.idle_cpu {cpu:.2} %");
    let hwm = proc_field(pid, "status", "VmHWM:") as f64 / 1024.0;
    println!("figure: agent.rss_peak {hwm:.1} MiB");
    let per_hour = f64::from(writes) * 3600.0 / secs;
    println!("figure: agent.idle_writes_per_hour {per_hour:.0} writes");
    drop(agent);
    drop(server);
    drop(ns);
}
