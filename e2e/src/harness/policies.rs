//! The policies the scenarios apply: the defaults of `FAULTS.md`, with the safety limits set so
//! a scenario runs in seconds (no cooldown unless a scenario tests it).

use netheal_crds::{Mode, NetworkHealthPolicySpec, RemediationSpec};

/// The name of the policy every scenario applies.
pub const POLICY: &str = "baseline";

/// Every check on, every action approved, `mode`, no cooldown, one node in flight, the
/// default flap limit (3 fixes within an hour).
pub fn scenario_policy(mode: Mode) -> NetworkHealthPolicySpec {
    NetworkHealthPolicySpec {
        mode,
        remediation: RemediationSpec {
            cooldown_seconds: 0,
            ..RemediationSpec::default()
        },
        ..NetworkHealthPolicySpec::default()
    }
}

/// [`scenario_policy`] for a Calico cluster: the overlay audited is Calico's and the CNI agent
/// restarted is `kube-system/calico-node` (`k8s-app: calico-node`).
pub fn calico_scenario_policy(mode: Mode) -> NetworkHealthPolicySpec {
    let mut spec = scenario_policy(mode);
    spec.checks.overlay.cni = netheal_crds::Cni::Calico;
    spec.checks.overlay.agent_selector.labels = [(
        "k8s-app".to_string(),
        crate::cluster::objects::CALICO_DAEMONSET.to_string(),
    )]
    .into();
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_policy_is_valid_and_approves_every_action() {
        let spec = scenario_policy(Mode::DryRun);
        let policy = netheal_crds::NetworkHealthPolicy::new(POLICY, spec.clone());
        netheal_crds::validate_policy(&policy).unwrap();
        assert_eq!(
            spec.remediation.actions.len(),
            netheal_crds::Action::ALL.len()
        );
        assert_eq!(spec.remediation.cooldown_seconds, 0);
        assert_eq!(spec.mode, Mode::DryRun);
    }
}
