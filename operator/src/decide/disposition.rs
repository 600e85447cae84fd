//! Why a finding is or is not acted on. Formatted only for the findings a policy's status
//! keeps: at 50,000 findings the strings would cost more than the decisions.

use k8s_openapi::jiff::Timestamp;
use netheal_crds::{Action, Check};
use std::fmt;

/// A finding's disposition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Why {
    /// No automatic fix exists.
    ReportOnly(Check),
    /// `spec.paused`.
    PolicyPaused,
    /// The Node's pause annotation.
    NodePaused,
    /// The action is not in `spec.remediation.actions`.
    NotApproved(Action),
    /// Inside the cooldown of the node and action kind.
    Cooldown(Timestamp),
    /// DryRun mode.
    DryRun(Action),
    /// `maxConcurrentNodes` reached.
    Concurrency {
        /// Nodes in flight.
        in_flight: usize,
        /// The limit.
        max: usize,
    },
    /// Anything rarer, already worded.
    Text(String),
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::ReportOnly(check) => write!(f, "report-only: no automatic fix for {check}"),
            Why::PolicyPaused => f.write_str("paused: the policy is paused"),
            Why::NodePaused => write!(
                f,
                "node paused: the Node is annotated {}=true",
                netheal_crds::PAUSED_ANNOTATION
            ),
            Why::NotApproved(action) => write!(
                f,
                "not approved: {action} is not in spec.remediation.actions"
            ),
            Why::Cooldown(until) => write!(f, "cooldown until {until}"),
            Why::DryRun(action) => write!(f, "dry-run: would {action}"),
            Why::Concurrency { in_flight, max } => {
                write!(f, "concurrency limit: {in_flight} of {max} nodes in flight")
            }
            Why::Text(text) => f.write_str(text),
        }
    }
}

impl From<String> for Why {
    fn from(text: String) -> Self {
        Why::Text(text)
    }
}
