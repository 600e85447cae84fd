//! The flapping circuit breaker: a finding that was fixed `flapLimit.fixes` times within
//! `flapLimit.windowSeconds` and is back again is not fixed any more. Someone else writes that
//! value; a person has to find out who.

use crate::ledger::Ledger;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use netheal_crds::FlapLimit;

/// How many times the finding was fixed within the window when that reaches the limit, else
/// `None`.
pub fn flapping(
    ledger: &Ledger,
    node: &str,
    finding: &str,
    limit: &FlapLimit,
    now: Timestamp,
) -> Option<usize> {
    let window = SignedDuration::from_secs(i64::from(limit.window_seconds));
    let since = now.checked_sub(window).unwrap_or(Timestamp::MIN);
    let fixes = ledger.fixes_since(node, finding, since);
    (limit.fixes > 0 && fixes >= limit.fixes as usize).then_some(fixes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Entry;
    use netheal_crds::{Action, Outcome};

    fn fixed(ledger: &mut Ledger, id: &str, secs: i64, outcome: Outcome) {
        ledger.push(Entry {
            id: id.into(),
            policy: "p".into(),
            node: "n1".into(),
            action: Action::SetSysctl,
            finding_id: "f".into(),
            time: Timestamp::from_second(secs).unwrap(),
            outcome,
            dry_run: false,
        });
    }

    #[test]
    fn only_applied_fixes_inside_the_window_count() {
        let limit = FlapLimit {
            fixes: 3,
            window_seconds: 100,
        };
        let now = Timestamp::from_second(1000).unwrap();
        let mut ledger = Ledger::new();
        fixed(&mut ledger, "a", 850, Outcome::Applied); // outside the window
        fixed(&mut ledger, "b", 950, Outcome::Applied);
        fixed(&mut ledger, "c", 960, Outcome::NoChange); // changed nothing
        fixed(&mut ledger, "d", 970, Outcome::Applied);
        assert_eq!(flapping(&ledger, "n1", "f", &limit, now), None);
        fixed(&mut ledger, "e", 990, Outcome::Applied);
        assert_eq!(flapping(&ledger, "n1", "f", &limit, now), Some(3));
        assert_eq!(flapping(&ledger, "n2", "f", &limit, now), None);
        assert_eq!(flapping(&ledger, "n1", "other", &limit, now), None);
    }
}
