//! The operator's Prometheus metrics (prometheus-client, text exposition on `/metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// `{policy, action, outcome}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    /// The policy.
    pub policy: String,
    /// The action.
    pub action: String,
    /// The outcome.
    pub outcome: String,
}

/// `{policy, check}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabels {
    /// The policy.
    pub policy: String,
    /// The check.
    pub check: String,
}

/// `{policy}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabels {
    /// The policy.
    pub policy: String,
}

/// `{policy, mode}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct PolicyModeLabels {
    /// The policy.
    pub policy: String,
    /// `DryRun` or `Enforce`.
    pub mode: String,
}

/// Every metric the operator exports.
pub struct Metrics {
    registry: Registry,
    /// `netheal_actions_total{policy,action,outcome}`.
    pub actions: Family<ActionLabels, Counter>,
    /// `netheal_open_findings{policy,check}`.
    pub open_findings: Family<CheckLabels, Gauge>,
    /// `netheal_flapping_findings{policy}`.
    pub flapping: Family<PolicyLabels, Gauge>,
    /// `netheal_nodes_in_flight`.
    pub nodes_in_flight: Gauge,
    /// `netheal_reconcile_duration_seconds`.
    pub reconcile_duration: Histogram,
    /// `netheal_reconcile_errors_total`.
    pub reconcile_errors: Counter,
    /// `netheal_leader`: 1 on the leader.
    pub leader: Gauge,
    /// `netheal_policy_info{policy,mode}`: 1 per policy.
    pub policy_info: Family<PolicyModeLabels, Gauge>,
    /// The policy label sets exported last time (to drop the ones that went).
    known_policies: Mutex<std::collections::BTreeSet<PolicyModeLabels>>,
    /// The label sets of the open-findings gauge set last time (to zero the ones that went).
    known_findings: Mutex<BTreeMap<(String, String), i64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Register every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let actions = Family::<ActionLabels, Counter>::default();
        let open_findings = Family::<CheckLabels, Gauge>::default();
        let flapping = Family::<PolicyLabels, Gauge>::default();
        let nodes_in_flight = Gauge::default();
        let reconcile_duration = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let reconcile_errors = Counter::default();
        let leader = Gauge::default();
        let policy_info = Family::<PolicyModeLabels, Gauge>::default();
        registry.register(
            "netheal_actions",
            "Actions taken, by policy, action and outcome",
            actions.clone(),
        );
        registry.register(
            "netheal_open_findings",
            "Open findings, by policy and check",
            open_findings.clone(),
        );
        registry.register(
            "netheal_flapping_findings",
            "Findings no longer fixed because they keep coming back",
            flapping.clone(),
        );
        registry.register(
            "netheal_nodes_in_flight",
            "Nodes with an action in flight",
            nodes_in_flight.clone(),
        );
        registry.register(
            "netheal_reconcile_duration_seconds",
            "Duration of one decision pass, API writes included",
            reconcile_duration.clone(),
        );
        registry.register(
            "netheal_reconcile_errors",
            "Passes that failed",
            reconcile_errors.clone(),
        );
        registry.register(
            "netheal_leader",
            "1 on the replica holding the lease",
            leader.clone(),
        );
        registry.register(
            "netheal_policy_info",
            "1 per NetworkHealthPolicy, with its mode",
            policy_info.clone(),
        );
        Self {
            registry,
            actions,
            open_findings,
            flapping,
            nodes_in_flight,
            reconcile_duration,
            reconcile_errors,
            leader,
            policy_info,
            known_policies: Mutex::new(std::collections::BTreeSet::new()),
            known_findings: Mutex::new(BTreeMap::new()),
        }
    }

    /// Count one action.
    pub fn action(&self, policy: &str, action: &str, outcome: &str) {
        self.actions
            .get_or_create(&ActionLabels {
                policy: policy.into(),
                action: action.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Set the open-findings gauges; label sets not in `current` go to 0.
    pub fn set_open_findings(&self, current: BTreeMap<(String, String), i64>) {
        let Ok(mut known) = self.known_findings.lock() else {
            return;
        };
        for key in known.keys() {
            if !current.contains_key(key) {
                self.open_findings
                    .get_or_create(&CheckLabels {
                        policy: key.0.clone(),
                        check: key.1.clone(),
                    })
                    .set(0);
            }
        }
        for ((policy, check), n) in &current {
            self.open_findings
                .get_or_create(&CheckLabels {
                    policy: policy.clone(),
                    check: check.clone(),
                })
                .set(*n);
        }
        *known = current;
    }

    /// Set `netheal_policy_info` to the policies in `current` (name, mode); the series of a
    /// deleted policy, or of its previous mode, go away.
    pub fn set_policies(&self, current: impl IntoIterator<Item = (String, String)>) {
        let Ok(mut known) = self.known_policies.lock() else {
            return;
        };
        let current: std::collections::BTreeSet<PolicyModeLabels> = current
            .into_iter()
            .map(|(policy, mode)| PolicyModeLabels { policy, mode })
            .collect();
        for gone in known.difference(&current) {
            self.policy_info.remove(gone);
        }
        for labels in &current {
            self.policy_info.get_or_create(labels).set(1);
        }
        *known = current;
    }

    /// The text exposition.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_contract() {
        let m = Metrics::new();
        m.action("p", "SetSysctl", "Applied");
        m.set_open_findings(BTreeMap::from([(("p".into(), "ArpIgnore".into()), 2)]));
        m.set_open_findings(BTreeMap::new());
        m.leader.set(1);
        m.set_policies([
            ("p".into(), "Enforce".into()),
            ("q".into(), "DryRun".into()),
        ]);
        m.set_policies([("p".into(), "DryRun".into())]);
        m.flapping
            .get_or_create(&PolicyLabels { policy: "p".into() })
            .set(1);
        let text = m.encode().unwrap();
        for needle in [
            "netheal_actions_total{policy=\"p\",action=\"SetSysctl\",outcome=\"Applied\"} 1",
            "netheal_open_findings{policy=\"p\",check=\"ArpIgnore\"} 0",
            "netheal_nodes_in_flight 0",
            "netheal_reconcile_duration_seconds_bucket",
            "netheal_reconcile_errors_total 0",
            "netheal_leader 1",
            "netheal_flapping_findings{policy=\"p\"} 1",
            "netheal_policy_info{policy=\"p\",mode=\"DryRun\"} 1",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
        for gone in ["mode=\"Enforce\"", "policy=\"q\""] {
            assert!(!text.contains(gone), "{gone} still exported:\n{text}");
        }
    }
}
