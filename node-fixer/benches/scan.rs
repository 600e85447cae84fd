//! Scan cost on a namespace holding many neighbours, next to `ip -4 neigh show`.
//!
//! `cargo bench -p node-fixer --bench scan` (root). Builds `nf-bench` with 10k and then 100k
//! PERMANENT neighbours on a `cali*` veth (all covered by a route, so the StaleNeighbour check
//! examines each and finds nothing), then for each size runs, in fresh child processes:
//! the neighbour dump alone, the full engine scan (every probe and check of the default
//! policy, including two `iptables-save` runs), and `ip -4 neigh show`. Reports the best wall
//! time of a few runs and the peak RSS (`VmHWM` of the scanning child; max RSS of `ip`).

// A benchmark harness: a failed setup step is reported by panicking with its error.
#![allow(clippy::unwrap_used)]

use netheal_e2e::netns::Netns;
use node_fixer::engine::{self, EngineConfig};
use node_fixer::{netns, probe};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NS: &str = "nf-bench";
const RUNS: usize = 5;

fn vm_hwm_kib() -> u64 {
    netheal_e2e::procfs::status_kib("self", "VmHWM")
}

/// Child mode: do one measurement and print `<nanos> <peak KiB> <count>`.
fn child(mode: &str) {
    let start = Instant::now();
    let (count, peak) = match mode {
        "dump" => {
            let path = netns::netns_path(NS);
            let n = netns::run_in(Some(&path), || {
                let rt = netns::runtime().unwrap();
                rt.block_on(async {
                    let (conn, handle, _) = rtnetlink::new_connection().unwrap();
                    let task = tokio::spawn(conn);
                    let n = probe::neigh::dump_neighbours(&handle).await.unwrap().len();
                    task.abort();
                    n
                })
            })
            .unwrap();
            (n, vm_hwm_kib())
        }
        "scan" => {
            let config = EngineConfig {
                netns: Some(NS.into()),
                pod_netns_glob: "/var/run/netns/nf-bench-pod-*".into(),
                ..Default::default()
            };
            let out = engine::scan(&engine::default_policy(), &config);
            assert!(out.errors.is_empty(), "{:?}", out.errors);
            (out.findings.len(), vm_hwm_kib())
        }
        "ip" => {
            let out = Command::new("ip")
                .args(["-n", NS, "-4", "neigh", "show"])
                .stdout(Stdio::piped())
                .output()
                .unwrap();
            let lines = out.stdout.iter().filter(|b| **b == b'\n').count();
            let usage =
                nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
                    .unwrap();
            (lines, usage.max_rss() as u64)
        }
        other => panic!("unknown mode {other}"),
    };
    println!("{} {peak} {count}", start.elapsed().as_nanos());
}

fn measure(mode: &str) -> (Duration, u64, usize) {
    let exe = std::env::current_exe().unwrap();
    let mut best = (Duration::MAX, 0, 0);
    for _ in 0..RUNS {
        let out = Command::new(&exe).args(["--child", mode]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let v: Vec<u64> = text
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        let t = Duration::from_nanos(v[0]);
        if t < best.0 {
            best.0 = t;
        }
        best.1 = best.1.max(v[1]);
        best.2 = v[2] as usize;
    }
    best
}

fn fill(ns: &Netns, from: usize, to: usize) {
    let mut batch = String::new();
    for i in from..to {
        let (a, b) = ((i >> 8) & 0xff, i & 0xff);
        let c = i >> 16;
        batch.push_str(&format!(
            "neigh add 10.{c}.{a}.{b} lladdr 02:00:{c:02x}:{a:02x}:{b:02x}:01 dev calibench0 nud permanent\n"
        ));
    }
    netheal_e2e::netns::run_with_input("ip", &["-n", ns.name(), "-batch", "-"], &batch).unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1]);
        return;
    }
    if args.iter().any(|a| a == "--list") {
        println!("scan: benchmark");
        return;
    }
    let ns = Netns::create(NS).unwrap();
    ns.set_sysctl("net/ipv4/ip_forward", "1").unwrap();
    ns.ip(&[
        "link",
        "add",
        "calibench0",
        "type",
        "veth",
        "peer",
        "name",
        "benchpeer",
    ])
    .unwrap();
    ns.ip(&["link", "set", "calibench0", "up"]).unwrap();
    ns.ip(&["link", "set", "benchpeer", "up"]).unwrap();
    ns.ip(&["route", "add", "10.0.0.0/8", "dev", "calibench0"])
        .unwrap();
    ns.set_sysctl("net/ipv4/conf/calibench0/proxy_arp", "1")
        .unwrap();
    let mut filled = 0;
    println!(
        "{:<10} {:<32} {:>10} {:>12} {:>8}",
        "neighbours", "what", "best ms", "peak RSS MiB", "items"
    );
    for size in [10_000usize, 100_000] {
        fill(&ns, filled, size);
        filled = size;
        for (mode, what) in [
            ("dump", "node-fixer neighbour dump"),
            ("scan", "node-fixer full scan"),
            ("ip", "ip -4 neigh show"),
        ] {
            let (t, kib, n) = measure(mode);
            println!(
                "{size:<10} {what:<32} {:>10.1} {:>12.1} {n:>8}",
                t.as_secs_f64() * 1000.0,
                kib as f64 / 1024.0
            );
        }
    }
}
