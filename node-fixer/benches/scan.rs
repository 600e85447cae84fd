//! Scan cost on a namespace holding many neighbours, next to `ip -4 neigh show`.
//!
//! `cargo bench -p node-fixer --bench scan` (root). Builds `nf-bench` with PERMANENT neighbours
//! on a `cali*` veth in four shapes: 10k and 100k all covered by a route (the StaleNeighbour
//! check examines each and finds nothing), 100k of which 10% and 100% have no route (one
//! finding each). For each shape it runs, in fresh child processes: the neighbour dump alone,
//! the full engine scan (every probe and check of the default policy, including two
//! `iptables-save` runs), the real `node-fixer scan --output json` (the CLI an SRE runs,
//! printing every finding), and `ip -4 neigh show`. Reports the best wall time of a few runs
//! and the peak RSS (`VmHWM` of the scanning child; max RSS of the `node-fixer` and `ip`
//! processes), and prints each figure as `figure: scan.<shape>.<what> <value> <unit>`. On the
//! 10%-stale shape it also times the DeleteNeighbour fix, 1,000 stale entries one at a time
//! (`figure: fix.<shape>.delete_neighbour`, per fix).

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

/// The peak RSS of the (one) child process this process waited for.
fn children_max_rss_kib() -> u64 {
    let usage =
        nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).unwrap();
    usage.max_rss() as u64
}

/// Child mode: do one measurement and print `<nanos> <peak KiB> <count>`.
fn child(mode: &str) {
    let start = Instant::now();
    let mut took = None;
    let (count, peak) = match mode {
        "dump" => {
            let path = netns::netns_path(NS);
            let n = netns::run_in(Some(&path), || {
                let mut rtnl = probe::rtnl::Rtnl::open().unwrap();
                probe::neigh::dump_neighbours(&mut rtnl).unwrap().len()
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
        "cli" => {
            let out = Command::new(env!("CARGO_BIN_EXE_node-fixer"))
                .args(["scan", "--netns", NS, "--output", "json"])
                .args(["--pod-netns", "/var/run/netns/nf-bench-pod-*"])
                .stdout(Stdio::piped())
                .output()
                .unwrap();
            took = Some(start.elapsed()); // not the parse below
            // Exit 1 = findings, 0 = healthy; 2 would be a scan error.
            assert!(
                matches!(out.status.code(), Some(0 | 1)),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            (
                doc["findings"].as_array().map_or(0, Vec::len),
                children_max_rss_kib(),
            )
        }
        "ip" => {
            let out = Command::new("ip")
                .args(["-n", NS, "-4", "neigh", "show"])
                .stdout(Stdio::piped())
                .output()
                .unwrap();
            let lines = out.stdout.iter().filter(|b| **b == b'\n').count();
            (lines, children_max_rss_kib())
        }
        other => panic!("unknown mode {other}"),
    };
    let took = took.unwrap_or_else(|| start.elapsed());
    println!("{} {peak} {count}", took.as_nanos());
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

/// One shape of the neighbour table: how many PERMANENT neighbours, how many of them stale.
struct Shape {
    name: &'static str,
    neighbours: usize,
    stale: usize,
}

const SHAPES: [Shape; 4] = [
    Shape {
        name: "neigh10k",
        neighbours: 10_000,
        stale: 0,
    },
    Shape {
        name: "neigh100k",
        neighbours: 100_000,
        stale: 0,
    },
    Shape {
        name: "neigh100k_stale10pct",
        neighbours: 100_000,
        stale: 10_000,
    },
    Shape {
        name: "neigh100k_stale100pct",
        neighbours: 100_000,
        stale: 100_000,
    },
];

/// Replace the veth's neighbours with `shape`: the healthy ones in 10.0.0.0/8 (routed through
/// the veth), the stale ones in 11.0.0.0/8 (no route: the pod is gone).
fn fill(ns: &Netns, shape: &Shape) {
    ns.ip(&["neigh", "flush", "dev", "calibench0", "nud", "permanent"])
        .unwrap();
    let mut batch = String::new();
    for i in 0..shape.neighbours {
        let (a, b) = ((i >> 8) & 0xff, i & 0xff);
        let c = i >> 16;
        let first = if i < shape.stale { 11 } else { 10 };
        batch.push_str(&format!(
            "neigh add {first}.{c}.{a}.{b} lladdr 02:{first:02x}:{c:02x}:{a:02x}:{b:02x}:01 dev calibench0 nud permanent\n"
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
    println!(
        "{:<22} {:<32} {:>10} {:>12} {:>8}",
        "shape", "what", "best ms", "peak RSS MiB", "items"
    );
    for shape in &SHAPES {
        fill(&ns, shape);
        let mut cli_ms = 0.0;
        for (mode, what) in [
            ("dump", "node-fixer neighbour dump"),
            ("scan", "node-fixer full scan"),
            ("cli", "node-fixer scan --output json"),
            ("ip", "ip -4 neigh show"),
        ] {
            let (t, kib, n) = measure(mode);
            let ms = t.as_secs_f64() * 1000.0;
            let mib = kib as f64 / 1024.0;
            println!(
                "{:<22} {what:<32} {ms:>10.1} {mib:>12.1} {n:>8}",
                shape.name
            );
            let name = shape.name;
            println!("figure: scan.{name}.{mode}.time {ms:.1} ms");
            println!("figure: scan.{name}.{mode}.rss {mib:.1} MiB");
            match mode {
                "cli" => cli_ms = ms,
                "ip" => println!("figure: scan.{name}.ratio_to_ip {:.2} x", cli_ms / ms),
                _ => {}
            }
        }
        if shape.stale > 0 && shape.stale < shape.neighbours {
            fix_cost(shape);
        }
    }
}

/// The DeleteNeighbour fix, one stale neighbour at a time, on the full table: what an order
/// costs on a node with `shape.neighbours` entries.
fn fix_cost(shape: &Shape) {
    const FIXES: usize = 1_000;
    let path = netns::netns_path(NS);
    let fixes = FIXES.min(shape.stale);
    let took = netns::run_in(Some(&path), move || {
        let start = Instant::now();
        for i in 0..fixes {
            let (a, b, c) = ((i >> 8) & 0xff, i & 0xff, i >> 16);
            let target = node_fixer::fix::neighbour::Target::Neighbour {
                ip: std::net::Ipv4Addr::new(11, c as u8, a as u8, b as u8).into(),
                interface: "calibench0".into(),
                lladdr: None,
            };
            let done = node_fixer::fix::neighbour::delete_here(&target, false, &[]);
            assert_eq!(done.outcome, netheal_crds::Outcome::Applied, "{done:?}");
        }
        start.elapsed()
    })
    .unwrap();
    let per_fix = took.as_secs_f64() * 1e3 / fixes as f64;
    println!(
        "{:<22} {:<32} {per_fix:>10.3} ms a fix ({fixes} fixes)",
        shape.name, "DeleteNeighbour, one at a time"
    );
    println!(
        "figure: fix.{}.delete_neighbour {per_fix:.3} ms",
        shape.name
    );
}
