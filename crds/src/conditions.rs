//! `metav1.Condition` helpers, with the semantics of `meta.SetStatusCondition` in
//! apimachinery: `lastTransitionTime` moves only when the status flips.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The condition types a policy's status carries.
pub mod types {
    /// Every selected node reports and has no open finding.
    pub const READY: &str = "Ready";
    /// Some selected node has open findings, or failed actions.
    pub const DEGRADED: &str = "Degraded";
    /// A fixed finding keeps coming back: netheal stopped fixing it.
    pub const FLAPPING: &str = "Flapping";
    /// The policy is paused.
    pub const PAUSED: &str = "Paused";
}

/// A condition to set: type, status, machine-readable reason, message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionUpdate<'a> {
    /// The condition type (`Ready`, …).
    pub type_: &'a str,
    /// True or false.
    pub status: bool,
    /// CamelCase reason.
    pub reason: &'a str,
    /// A sentence for people.
    pub message: String,
}

/// Set or update the condition `update.type_` in `conditions`. Returns true when anything
/// changed. `lastTransitionTime` is `now` for a new condition or a flipped status, and kept
/// otherwise.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    update: ConditionUpdate<'_>,
    observed_generation: Option<i64>,
    now: &Time,
) -> bool {
    let status = if update.status { "True" } else { "False" }.to_string();
    match conditions.iter_mut().find(|c| c.type_ == update.type_) {
        Some(existing) => {
            let mut changed = false;
            if existing.status != status {
                existing.status = status;
                existing.last_transition_time = now.clone();
                changed = true;
            }
            if existing.reason != update.reason {
                existing.reason = update.reason.to_string();
                changed = true;
            }
            if existing.message != update.message {
                existing.message = update.message;
                changed = true;
            }
            if existing.observed_generation != observed_generation {
                existing.observed_generation = observed_generation;
                changed = true;
            }
            changed
        }
        None => {
            conditions.push(Condition {
                type_: update.type_.to_string(),
                status,
                reason: update.reason.to_string(),
                message: update.message,
                observed_generation,
                last_transition_time: now.clone(),
            });
            true
        }
    }
}

/// The condition of type `type_`, if present.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// True when the condition `type_` is present with status `True`.
pub fn is_condition_true(conditions: &[Condition], type_: &str) -> bool {
    find_condition(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    fn ready(status: bool, message: &str) -> ConditionUpdate<'_> {
        ConditionUpdate {
            type_: types::READY,
            status,
            reason: if status { "AllHealthy" } else { "OpenFindings" },
            message: message.to_string(),
        }
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let mut conditions = Vec::new();
        assert!(set_condition(
            &mut conditions,
            ready(true, "ok"),
            Some(1),
            &at(10)
        ));
        assert_eq!(conditions[0].last_transition_time, at(10));

        // Same status, same text: nothing changes.
        assert!(!set_condition(
            &mut conditions,
            ready(true, "ok"),
            Some(1),
            &at(20)
        ));
        // Same status, new message: changed, but the transition time stays.
        assert!(set_condition(
            &mut conditions,
            ready(true, "still ok"),
            Some(1),
            &at(30)
        ));
        assert_eq!(conditions[0].last_transition_time, at(10));
        // Flip: the transition time moves.
        assert!(set_condition(
            &mut conditions,
            ready(false, "2 findings"),
            Some(2),
            &at(40)
        ));
        assert_eq!(conditions[0].last_transition_time, at(40));
        assert_eq!(conditions[0].status, "False");
        assert_eq!(conditions.len(), 1);
        assert!(!is_condition_true(&conditions, types::READY));
    }
}
