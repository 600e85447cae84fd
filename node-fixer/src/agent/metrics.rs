//! The agent's Prometheus metrics (names of the team contract).

use crate::checks::Findings;
use netheal_crds::{Check, RemediationResult};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

type Labels = Vec<(String, String)>;

/// Every metric node-fixer's agent exports.
pub struct Metrics {
    registry: Registry,
    findings: Family<Labels, Gauge>,
    fixes: Family<Labels, Counter>,
    scan_duration: Histogram,
    netlink_overruns: Counter,
    last_report: Gauge<f64, AtomicU64>,
    api_errors: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let findings = Family::<Labels, Gauge>::default();
        registry.register(
            "netheal_node_findings",
            "Open findings on this node, by check",
            findings.clone(),
        );
        let fixes = Family::<Labels, Counter>::default();
        registry.register(
            "netheal_node_fixes",
            "Remediation orders answered, by action and outcome",
            fixes.clone(),
        );
        let scan_duration = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        registry.register(
            "netheal_node_scan_duration_seconds",
            "Time one full scan takes",
            scan_duration.clone(),
        );
        let netlink_overruns = Counter::default();
        registry.register(
            "netheal_node_netlink_overruns",
            "Netlink event overruns (each one triggers a full rescan)",
            netlink_overruns.clone(),
        );
        let last_report = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "netheal_node_last_report_timestamp_seconds",
            "Unix time of the last successful report write",
            last_report.clone(),
        );
        let api_errors = Counter::default();
        registry.register(
            "netheal_node_api_errors",
            "Failed Kubernetes API requests",
            api_errors.clone(),
        );
        for check in Check::ALL {
            findings.get_or_create(&check_labels(check)).set(0);
        }
        Self {
            registry,
            findings,
            fixes,
            scan_duration,
            netlink_overruns,
            last_report,
            api_errors,
        }
    }

    /// Record one scan: its duration and the open findings per check.
    pub fn scanned(&self, duration: Duration, findings: &Findings) {
        self.scan_duration.observe(duration.as_secs_f64());
        for check in Check::ALL {
            let n = findings.count(check);
            self.findings
                .get_or_create(&check_labels(check))
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Record one answered order.
    pub fn fixed(&self, result: &RemediationResult) {
        self.fixes
            .get_or_create(&vec![
                ("action".to_string(), result.action.to_string()),
                ("outcome".to_string(), result.outcome.to_string()),
            ])
            .inc();
    }

    /// Record a netlink overrun.
    pub fn overrun(&self) {
        self.netlink_overruns.inc();
    }

    /// Record a failed API request.
    pub fn api_error(&self) {
        self.api_errors.inc();
    }

    /// Record a successful report write at `unix_seconds`.
    pub fn reported(&self, unix_seconds: f64) {
        self.last_report.set(unix_seconds);
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

fn check_labels(check: Check) -> Labels {
    vec![("check".to_string(), check.to_string())]
}

#[cfg(test)]
mod tests {
    use super::*;
    use netheal_crds::{Action, Outcome};

    #[test]
    fn exposition_has_the_contract_names_and_values() {
        let m = Metrics::new();
        let f = crate::checks::finding(
            Check::IpForward,
            "net.ipv4.ip_forward".into(),
            "0".into(),
            "1".into(),
            "IPv4 forwarding is off".into(),
            Default::default(),
        );
        m.scanned(Duration::from_millis(3), &vec![f].into());
        m.fixed(&RemediationResult {
            id: "o".into(),
            action: Action::SetSysctl,
            target: "t".into(),
            outcome: Outcome::Applied,
            before: String::new(),
            after: String::new(),
            dry_run: false,
            time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
            message: None,
        });
        m.overrun();
        m.api_error();
        m.reported(12.5);
        let text = m.encode();
        for needle in [
            "netheal_node_findings{check=\"IpForward\"} 1",
            "netheal_node_findings{check=\"ArpIgnore\"} 0",
            "netheal_node_fixes_total{action=\"SetSysctl\",outcome=\"Applied\"} 1",
            "netheal_node_scan_duration_seconds_count 1",
            "netheal_node_netlink_overruns_total 1",
            "netheal_node_last_report_timestamp_seconds 12.5",
            "netheal_node_api_errors_total 1",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
