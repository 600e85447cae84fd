//! Fixes: apply one approved order. Each fix re-reads its target right before the write
//! (a stale order ends in `NoChange`), stops before the write in dry-run, and changes nothing
//! when it fails.

pub mod iptables;
pub mod neighbour;
pub mod nft;
pub mod sysctl;

use netheal_crds::Outcome;
use std::collections::BTreeMap;

/// What a fix did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixOutcome {
    /// How it ended.
    pub outcome: Outcome,
    /// The state before (a deleted object in full).
    pub before: String,
    /// The state after (or, in dry-run, what it would be).
    pub after: String,
    /// Details or the error.
    pub message: Option<String>,
}

impl FixOutcome {
    /// A failure that changed nothing.
    pub fn failed(before: impl Into<String>, message: impl Into<String>) -> Self {
        let before = before.into();
        Self {
            outcome: Outcome::Failed,
            after: before.clone(),
            before,
            message: Some(message.into()),
        }
    }

    /// An order that was not executed.
    pub fn skipped(message: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::Skipped,
            before: String::new(),
            after: String::new(),
            message: Some(message.into()),
        }
    }

    /// Nothing to do.
    pub fn no_change(state: impl Into<String>, message: Option<String>) -> Self {
        let state = state.into();
        Self {
            outcome: Outcome::NoChange,
            before: state.clone(),
            after: state,
            message,
        }
    }

    /// The change was made (or would be, in dry-run).
    pub fn applied(
        before: impl Into<String>,
        after: impl Into<String>,
        message: Option<String>,
    ) -> Self {
        Self {
            outcome: Outcome::Applied,
            before: before.into(),
            after: after.into(),
            message,
        }
    }
}

/// A required order parameter.
pub fn param<'a>(
    params: &'a BTreeMap<String, String>,
    key: &str,
) -> Result<&'a str, crate::error::OrderError> {
    params
        .get(key)
        .map(String::as_str)
        .ok_or_else(|| crate::error::OrderError::MissingParameter(key.to_string()))
}
