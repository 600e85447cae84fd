//! Time to repair, end to end: inject each seed fault many times into a cluster-in-a-box run
//! by the real operator and agents under an `Enforce` policy, and measure the time from the
//! injection to the first ping that works again. Prints p50, p95 and max per check.
//!
//! `cargo bench -p netheal-e2e --bench time_to_repair` (root). `NETHEAL_BENCH_ROUNDS` sets the
//! rounds per fault (default 10). Targets: p50 under 2 s for neighbour and route faults, under
//! the agent's poll interval (1 s here) plus 2 s for sysctl and iptables faults.

use netheal_crds::Mode;
use netheal_e2e::cluster::faults::LostHow;
use netheal_e2e::cluster::{PodOptions, PodStyle};
use netheal_e2e::harness::policies::{POLICY, scenario_policy};
use netheal_e2e::harness::{Harness, HarnessOptions};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const REPAIR_TIMEOUT: Duration = Duration::from_secs(60);

/// How often a waiting ping sends an echo request: the measurement's resolution.
const PING_INTERVAL: &str = "0.02";

/// One `ping` that sends an echo request every 20 ms until the first reply or `deadline`
/// (`-c 1 -w`): true when a reply came. It returns early, false, on an ICMP error (a REJECT on
/// the path answers with one).
fn ping_until(from: &str, to: Ipv4Addr, deadline: Duration) -> bool {
    let seconds = deadline.as_secs().max(1).to_string();
    netheal_e2e::netns::run(
        "ip",
        &[
            "netns",
            "exec",
            from,
            "ping",
            "-n",
            "-q",
            "-c",
            "1",
            "-i",
            PING_INTERVAL,
            "-w",
            &seconds,
            &to.to_string(),
        ],
    )
    .is_ok()
}

/// Seconds from `start` until a ping from `from` to `to` works.
fn until_ping(start: Instant, from: &str, to: Ipv4Addr) -> Option<f64> {
    while start.elapsed() < REPAIR_TIMEOUT {
        if ping_until(from, to, REPAIR_TIMEOUT.saturating_sub(start.elapsed())) {
            return Some(start.elapsed().as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    IpForward,
    RejectRule,
    ArpIgnore,
    StaleVtep,
    VtepMissing,
    PeerRouteMissing,
}

impl Fault {
    const ALL: [Fault; 6] = [
        Fault::IpForward,
        Fault::RejectRule,
        Fault::ArpIgnore,
        Fault::StaleVtep,
        Fault::VtepMissing,
        Fault::PeerRouteMissing,
    ];

    fn check(self) -> &'static str {
        match self {
            Fault::IpForward => "IpForward",
            Fault::RejectRule => "RejectRule",
            Fault::ArpIgnore => "ArpIgnore",
            Fault::StaleVtep => "StaleNeighbour (VTEP MAC change)",
            Fault::VtepMissing => "VtepMissing",
            Fault::PeerRouteMissing => "PeerRouteMissing",
        }
    }

    /// The target for p50: neighbour and route faults 2 s, sysctl and iptables faults the
    /// poll interval (1 s) plus 2 s.
    fn target(self) -> f64 {
        match self {
            Fault::IpForward | Fault::RejectRule | Fault::ArpIgnore => 3.0,
            Fault::StaleVtep | Fault::VtepMissing | Fault::PeerRouteMissing => 2.0,
        }
    }
}

struct Pods {
    a: (String, Ipv4Addr),
    b: (String, Ipv4Addr),
}

/// Inject `fault` once; returns the injection time and the pod pair whose ping proves the
/// repair.
async fn inject(
    h: &Harness,
    fault: Fault,
    pods: &Pods,
) -> anyhow::Result<(Instant, String, Ipv4Addr)> {
    let (from, to) = (pods.a.0.clone(), pods.b.1);
    let start = Instant::now();
    match fault {
        Fault::IpForward => {
            h.with_cluster(|c| c.inject_ip_forward_off("node2")).await?;
        }
        Fault::RejectRule => {
            // From the first REJECT rule, not from the kube-proxy rules put in before it.
            let (_, began) = h
                .with_cluster(|c| c.inject_reject_rules_timed("node2"))
                .await?;
            return Ok((began, from, to));
        }
        Fault::ArpIgnore => {
            h.with_cluster(|c| c.inject_arp_ignore("node2", PodStyle::Calico))
                .await?;
            let start = Instant::now();
            let new = h
                .with_cluster(|c| Ok(c.pods().last().map(|p| p.ip)))
                .await?
                .ok_or_else(|| anyhow::anyhow!("no pod"))?;
            h.register_new_pods().await?;
            return Ok((start, from, new));
        }
        Fault::StaleVtep => {
            h.with_cluster(|c| c.inject_vtep_mac_change("node2"))
                .await?;
            h.sync_node_object("node2").await?;
        }
        Fault::VtepMissing => {
            h.with_cluster(|c| c.inject_lost_neighbour("node1", "node2", LostHow::Deleted))
                .await?;
        }
        Fault::PeerRouteMissing => {
            h.with_cluster(|c| c.inject_missing_route("node1", "node2"))
                .await?;
        }
    }
    Ok((start, from, to))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let rounds: usize = std::env::var("NETHEAL_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let h = Harness::start(HarnessOptions::new("hb", 2)).await?;
    let a = h.add_pod("node1", PodOptions::calico()).await?;
    let b = h.add_pod("node2", PodOptions::calico()).await?;
    let mut spec = scenario_policy(Mode::Enforce);
    // Re-injecting the same fault is the point here, not a fight: the breaker would trip only
    // on more than the most fixes a policy may allow (20) within one second.
    spec.remediation.flap_limit.fixes = 20;
    spec.remediation.flap_limit.window_seconds = 1;
    h.create_policy(POLICY, spec).await?;
    let pods = Pods {
        a: (a.netns.clone(), a.ip),
        b: (b.netns.clone(), b.ip),
    };
    let (from, to) = (pods.a.0.clone(), pods.b.1);
    tokio::task::spawn_blocking(move || until_ping(Instant::now(), &from, to))
        .await?
        .ok_or_else(|| anyhow::anyhow!("the cluster does not work before any fault"))?;

    println!(
        "control plane: started in {} ms, {} MiB resident",
        h.controlplane().started_in().as_millis(),
        h.controlplane().rss_kib() / 1024
    );
    println!(
        "figure: e2e.controlplane_start {} ms",
        h.controlplane().started_in().as_millis()
    );
    println!("time to repair, injection to first working ping, {rounds} rounds per fault");
    let mut rows = Vec::new();
    let mut rss_max = h.controlplane().rss_kib();
    for fault in Fault::ALL {
        let mut times = Vec::new();
        let mut failed = 0;
        for _ in 0..rounds {
            let (start, from, to) = inject(&h, fault, &pods).await?;
            let t = tokio::task::spawn_blocking(move || until_ping(start, &from, to)).await?;
            match t {
                Some(t) => times.push(t),
                None => failed += 1,
            }
            // Let the reports settle before the next round.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            rss_max = rss_max.max(h.controlplane().rss_kib());
        }
        times.sort_by(f64::total_cmp);
        let (p50, p95) = (percentile(&times, 50.0), percentile(&times, 95.0));
        let max = times.last().copied().unwrap_or(f64::NAN);
        let verdict = if p50 <= fault.target() { "ok" } else { "SLOW" };
        println!(
            "{:<34} n={:<3} failed={:<2} p50={:>6.2}s p95={:>6.2}s max={:>6.2}s target p50<{:.0}s {verdict}",
            fault.check(),
            times.len(),
            failed,
            p50,
            p95,
            max,
            fault.target()
        );
        // The check's name as the API spells it: `repair.IpForward.p50`.
        let name = fault.check().split(' ').next().unwrap_or_default();
        println!("figure: repair.{name}.p50 {p50:.2} s");
        println!("figure: repair.{name}.p95 {p95:.2} s");
        rows.push((fault, p50, p95));
    }
    println!("figure: e2e.controlplane_rss_max {} MiB", rss_max / 1024);
    println!("{}", h.log_files());
    Ok(())
}
