//! Which policy owns a finding. A node can be selected by several policies: for each check,
//! the policy named in the finding (when it selects the node and enables the check) owns it,
//! otherwise the lexically first selecting policy that enables the check.

use netheal_crds::{Check, NetworkHealthPolicy, selector};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The policies, sorted by name, with the error of any selector that cannot be evaluated.
pub struct Policies {
    /// Sorted by name.
    pub sorted: Vec<Arc<NetworkHealthPolicy>>,
    /// Policy name → selector error.
    pub selector_errors: BTreeMap<String, String>,
}

impl Policies {
    /// Sort the policies by name.
    pub fn new(policies: &[Arc<NetworkHealthPolicy>]) -> Self {
        let mut sorted: Vec<_> = policies.to_vec();
        sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        Self {
            sorted,
            selector_errors: BTreeMap::new(),
        }
    }

    /// The indices (into `sorted`) of the policies selecting a node with `labels`, and whether
    /// every selector could be evaluated on them. A policy whose selector is malformed selects
    /// nothing, and its error is kept; a selection that met one is never kept for a later pass,
    /// which would not record it.
    pub fn selecting(&mut self, labels: &BTreeMap<String, String>) -> (Vec<usize>, bool) {
        let mut out = Vec::new();
        let mut clean = true;
        for (i, policy) in self.sorted.iter().enumerate() {
            match selector::selects(policy.spec.node_selector.as_ref(), labels) {
                Ok(true) => out.push(i),
                Ok(false) => {}
                Err(err) => {
                    clean = false;
                    self.selector_errors
                        .entry(name(policy).to_string())
                        .or_insert_with(|| err.to_string());
                }
            }
        }
        (out, clean)
    }

    /// The owner of a finding of `check` on a node selected by `selecting`, preferring
    /// `named` (the finding's `policy`).
    pub fn owner(&self, selecting: &[usize], check: Check, named: Option<&str>) -> Option<usize> {
        let enables = |&&i: &&usize| {
            self.sorted
                .get(i)
                .is_some_and(|p| p.spec.checks.is_enabled(check))
        };
        if let Some(named) = named
            && let Some(&i) = selecting
                .iter()
                .filter(enables)
                .find(|&&i| self.sorted.get(i).is_some_and(|p| name(p) == named))
        {
            return Some(i);
        }
        selecting.iter().find(enables).copied()
    }
}

/// A policy's name.
pub fn name(policy: &NetworkHealthPolicy) -> &str {
    policy.metadata.name.as_deref().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::testkit::policy;

    #[test]
    fn lexically_first_enabling_policy_owns_unless_the_finding_names_one() {
        let mut b = policy("b-policy");
        Arc::make_mut(&mut b).spec.checks.ip_forward.enabled = true;
        let mut a = policy("a-policy");
        Arc::make_mut(&mut a).spec.checks.ip_forward.enabled = false;
        let c = policy("c-policy");
        let mut policies = Policies::new(&[c, b, a]);
        let selecting = policies.selecting(&BTreeMap::new()).0;
        assert_eq!(selecting.len(), 3);
        let owner = |named| {
            policies
                .owner(&selecting, Check::IpForward, named)
                .map(|i| name(&policies.sorted[i]).to_string())
        };
        assert_eq!(owner(None).as_deref(), Some("b-policy"));
        assert_eq!(owner(Some("c-policy")).as_deref(), Some("c-policy"));
        // A named policy that does not enable the check does not own it.
        assert_eq!(owner(Some("a-policy")).as_deref(), Some("b-policy"));
        assert_eq!(owner(Some("gone")).as_deref(), Some("b-policy"));
    }

    #[test]
    fn a_malformed_selector_selects_nothing_and_is_reported() {
        let mut bad = policy("bad");
        Arc::make_mut(&mut bad).spec.node_selector = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
                match_expressions: Some(vec![
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement {
                        key: "x".into(),
                        operator: "Near".into(),
                        values: None,
                    },
                ]),
                ..Default::default()
            },
        );
        let mut policies = Policies::new(&[bad]);
        assert!(policies.selecting(&BTreeMap::new()).0.is_empty());
        assert!(policies.selector_errors["bad"].contains("operator"));
    }
}
