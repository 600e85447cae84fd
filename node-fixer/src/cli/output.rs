//! Printing scan and fix results: a table for people, JSON for scripts.

use crate::checks::Findings;
use netheal_crds::{Action, Check, Details, Finding, Outcome, RemediationResult};
use serde::Serialize;
use std::borrow::Cow;
use std::fmt::Write;

/// The JSON shape of one finding (the report's fields a script needs; no policy or times).
#[derive(Serialize)]
pub struct FindingJson<'a> {
    id: &'a str,
    check: Check,
    target: &'a str,
    observed: &'a str,
    desired: &'a str,
    action: Option<Action>,
    details: &'a Details,
    message: Option<&'a str>,
}

impl<'a> From<&'a Finding> for FindingJson<'a> {
    fn from(f: &'a Finding) -> Self {
        Self {
            id: &f.id,
            check: f.check,
            target: &f.target,
            observed: &f.observed,
            desired: &f.desired,
            action: f.action,
            details: &f.details,
            message: f.message.as_deref(),
        }
    }
}

/// Findings serialized one by one as the document is written (never copied into a tree; a
/// pending one is built, written and dropped).
pub struct FindingsJson<'a>(pub &'a Findings);

impl Serialize for FindingsJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(OneFinding))
    }
}

/// One finding, borrowed or built for the moment.
struct OneFinding<'a>(Cow<'a, Finding>);

impl Serialize for OneFinding<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        FindingJson::from(self.0.as_ref()).serialize(serializer)
    }
}

/// The JSON document of a scan (and, for `fix`, its results and what remains). Written
/// straight to the output with `serde_json::to_writer_pretty`: 100k findings cost no more than
/// the findings themselves.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Document<'a> {
    /// The node.
    pub node: &'a str,
    /// `nft` or `legacy`, `null` when unknown.
    pub iptables_backend: Option<&'a str>,
    /// What the scan found.
    pub findings: FindingsJson<'a>,
    /// What `fix` did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results: Option<&'a [RemediationResult]>,
    /// What `fix` left (the second scan).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining: Option<FindingsJson<'a>>,
    /// Probes that failed.
    pub errors: &'a [String],
}

/// Write `doc` as indented JSON and a newline to stdout, buffered.
pub fn print_json(doc: &Document<'_>) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    serde_json::to_writer_pretty(&mut out, doc)?;
    out.write_all(b"\n")?;
    out.flush()
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
pub fn findings_table(findings: &Findings) -> String {
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
pub fn fix_summary(node: &str, results: &[RemediationResult], remaining: &Findings) -> String {
    let count = |o: Outcome| results.iter().filter(|r| r.outcome == o).count();
    let dry = results.iter().any(|r| r.dry_run);
    let state = if remaining.is_empty() {
        "healthy".to_string()
    } else {
        format!(
            "{} finding(s) remain ({} report-only or cluster actions)",
            remaining.len(),
            remaining.len() - remaining.fixable_here()
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
pub fn summary(node: &str, findings: &Findings, backend: Option<&str>, millis: u128) -> String {
    let fixable = findings.fixable_here();
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
