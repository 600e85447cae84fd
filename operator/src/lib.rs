//! netheal's operator: it watches the policies, the node reports, the Nodes and the Pods;
//! decides which fixes are approved under the safety limits (pure, in [`decide`]); has the
//! node-local ones applied by node-fixer through the reports' `spec.remediations`, takes the
//! cluster actions itself (in [`act`]); and records every action (in [`record`]).

pub mod act;
pub mod context;
pub mod decide;
pub mod http;
pub mod leader;
pub mod ledger;
pub mod metrics;
pub mod model;
pub mod openreports;
pub mod reconcile;
pub mod record;
pub mod status;
pub mod watch;

/// Parse a duration such as `30s`, `2m`, `1h` or `500ms` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a number followed by ms, s, m or h"))?;
    let secs = |s: u64| std::time::Duration::from_secs(s);
    match unit {
        "ms" => Ok(std::time::Duration::from_millis(n)),
        "" | "s" => Ok(secs(n)),
        "m" => Ok(secs(n.saturating_mul(60))),
        "h" => Ok(secs(n.saturating_mul(3600))),
        other => Err(format!(
            "{text:?}: unknown unit {other:?} (use ms, s, m or h)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_parse_and_bad_ones_say_why() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("5d").unwrap_err().contains("unknown unit"));
        assert!(
            parse_duration("s")
                .unwrap_err()
                .contains("expected a number")
        );
    }
}
