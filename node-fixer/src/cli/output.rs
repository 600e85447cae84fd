//! Printing scan and fix results: a table for people, JSON for scripts.

use netheal_crds::{Finding, Outcome, RemediationResult};
use serde_json::{Value, json};
use std::fmt::Write;

/// The JSON shape of one finding.
pub fn finding_json(f: &Finding) -> Value {
    json!({
        "id": f.id,
        "check": f.check,
        "target": f.target,
        "observed": f.observed,
        "desired": f.desired,
        "action": f.action,
        "details": f.details,
        "message": f.message,
    })
}

/// The JSON document of a scan (and, for `fix`, its results and what remains).
pub fn document(
    node: &str,
    backend: Option<&str>,
    findings: &[Finding],
    results: Option<&[RemediationResult]>,
    remaining: Option<&[Finding]>,
    errors: &[String],
) -> Value {
    let mut doc = json!({
        "node": node,
        "iptablesBackend": backend,
        "findings": findings.iter().map(finding_json).collect::<Vec<_>>(),
        "errors": errors,
    });
    if let Some(results) = results {
        doc["results"] = serde_json::to_value(results).unwrap_or(Value::Null);
    }
    if let Some(remaining) = remaining {
        doc["remaining"] = remaining.iter().map(finding_json).collect();
    }
    doc
}

fn cell(text: &str, width: usize) -> String {
    let mut s: String = text.chars().take(width).collect();
    if text.chars().count() > width {
        s.pop();
        s.push('…');
    }
    format!("{s:<width$}")
}

/// The findings table: one line per finding, then nothing (the caller prints the summary).
pub fn findings_table(findings: &[Finding]) -> String {
    let mut out = String::new();
    if findings.is_empty() {
        return out;
    }
    let tw = findings
        .iter()
        .map(|f| f.target.chars().count())
        .max()
        .unwrap_or(6)
        .clamp(6, 70);
    let _ = writeln!(
        out,
        "{} {} {} {} FIX",
        cell("CHECK", 16),
        cell("TARGET", tw),
        cell("OBSERVED", 34),
        cell("DESIRED", 12)
    );
    for f in findings {
        let fix = f
            .action
            .map_or("report only".to_string(), |a| a.to_string());
        let _ = writeln!(
            out,
            "{} {} {} {} {}",
            cell(f.check.as_str(), 16),
            cell(&f.target, tw),
            cell(&f.observed, 34),
            cell(&f.desired, 12),
            fix
        );
    }
    out
}

/// The results table of `fix`.
pub fn results_table(results: &[RemediationResult]) -> String {
    let mut out = String::new();
    for r in results {
        let dry = if r.dry_run { " (dry-run)" } else { "" };
        let msg = r
            .message
            .as_deref()
            .map(|m| format!("  [{m}]"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{}{dry} {} {}: {} -> {}{msg}",
            cell(r.outcome.as_str(), 8),
            cell(r.action.as_str(), 16),
            r.target,
            if r.before.is_empty() { "-" } else { &r.before },
            if r.after.is_empty() { "-" } else { &r.after },
        );
    }
    out
}

/// The one-line summary of `fix`.
pub fn fix_summary(node: &str, results: &[RemediationResult], remaining: &[Finding]) -> String {
    let count = |o: Outcome| results.iter().filter(|r| r.outcome == o).count();
    let dry = results.iter().any(|r| r.dry_run);
    let state = if remaining.is_empty() {
        "healthy".to_string()
    } else {
        format!(
            "{} finding(s) remain ({} report-only or cluster actions)",
            remaining.len(),
            remaining
                .iter()
                .filter(|f| !f.action.is_some_and(|a| a.is_node_local()))
                .count()
        )
    };
    format!(
        "{node}: {} {}, {} no change, {} failed, {} skipped; {state}",
        count(Outcome::Applied),
        if dry {
            "would apply (dry-run)"
        } else {
            "applied"
        },
        count(Outcome::NoChange),
        count(Outcome::Failed),
        count(Outcome::Skipped),
    )
}

/// The one-line summary.
pub fn summary(node: &str, findings: &[Finding], backend: Option<&str>, millis: u128) -> String {
    let fixable = findings
        .iter()
        .filter(|f| f.action.is_some_and(|a| a.is_node_local()))
        .count();
    if findings.is_empty() {
        format!(
            "{node}: healthy (iptables backend {}, scan {millis} ms)",
            backend.unwrap_or("unknown")
        )
    } else {
        format!(
            "{node}: {} finding(s), {fixable} fixable here by `node-fixer fix` (iptables backend {}, scan {millis} ms)",
            findings.len(),
            backend.unwrap_or("unknown")
        )
    }
}
