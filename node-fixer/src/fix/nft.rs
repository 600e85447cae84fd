//! `RemoveRejectRule` for a rule of nftables' own tables: re-read the ruleset, find the rule
//! whose whole expression is the one ordered (by its handle; a table recreated by a reload
//! gives the same rule a new handle), check it again, and delete it by handle in one nft
//! transaction (`nft -j -f -`, libnftables' JSON commands: no quoting of names on a command
//! line).

use super::FixOutcome;
use crate::probe::nft::{NFT, probe};
use crate::snapshot::{NftRule, Nftables};
use serde_json::json;
use std::io::Write;
use std::process::{Command, Stdio};

/// Which rule an order names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleRef {
    /// The table's family.
    pub family: String,
    /// The table.
    pub table: String,
    /// The chain.
    pub chain: String,
    /// The handle the rule had when it was found, if the order says (preferred among rules
    /// with the same expression).
    pub handle: Option<u64>,
    /// Its statements, as [`NftRule::canonical_expr`] wrote them.
    pub expr: String,
}

impl RuleRef {
    /// Whether `rule` is in the chain this names.
    fn in_chain(&self, rule: &NftRule) -> bool {
        rule.family == self.family && rule.table == self.table && rule.chain == self.chain
    }

    /// Whether `rule` is in that chain with the very expression this names.
    fn is_same(&self, rule: &NftRule) -> bool {
        self.in_chain(rule) && rule.canonical_expr() == self.expr
    }

    fn describe(&self, handle: u64, text: &str) -> String {
        format!(
            "{text} (table {} {}, chain {}, handle {handle}, nftables)",
            self.family, self.table, self.chain
        )
    }
}

/// The rule of `ruleset` that `wanted` names: the one at its handle if its expression is the
/// same, else the first one of the chain with that very expression; `None` when there is none.
/// A handle alone never selects a rule.
pub fn find<'a>(ruleset: &'a Nftables, wanted: &RuleRef) -> Option<&'a NftRule> {
    let mut candidates = ruleset.rules.iter().filter(|r| wanted.is_same(r));
    let first = candidates.clone().next();
    candidates
        .find(|r| Some(r.handle) == wanted.handle)
        .or(first)
}

/// Delete the rule `wanted` names from the current thread's namespace, after `allowed` (the
/// check's own verdict on the rule as re-read) agrees. `render` writes the rule for the record.
pub fn remove_here(
    wanted: &RuleRef,
    dry_run: bool,
    allowed: impl Fn(&Nftables, &NftRule) -> Result<(), String>,
    render: impl Fn(&NftRule) -> String,
) -> FixOutcome {
    let in_table = |family: &str, table: &str| family == wanted.family && table == wanted.table;
    let ruleset = match probe(in_table) {
        Ok(Some(r)) => r,
        Ok(None) => return FixOutcome::failed("", format!("{NFT} is not installed")),
        Err(e) => return FixOutcome::failed("", e.to_string()),
    };
    let Some(rule) = find(&ruleset, wanted) else {
        return FixOutcome::no_change("absent", None);
    };
    let text = render(rule);
    let before = wanted.describe(rule.handle, &text);
    if let Err(why) = allowed(&ruleset, rule) {
        return FixOutcome::skipped(format!("{text} stays: {why}"));
    }
    if dry_run {
        return FixOutcome::applied(before, "absent", Some("dry-run: not deleted".into()));
    }
    let handle = rule.handle;
    let command = json!({"nftables": [{"delete": {"rule": {
        "family": wanted.family, "table": wanted.table, "chain": wanted.chain, "handle": handle,
    }}}]});
    if let Err(e) = run_json(&command.to_string()) {
        return FixOutcome::failed(before, e);
    }
    let after = match probe(in_table) {
        Ok(Some(now)) => Ok(now),
        Ok(None) => Err(format!("{NFT} is gone")),
        Err(e) => Err(e.to_string()),
    };
    match after {
        Ok(now) => {
            let still = now
                .rules
                .iter()
                .any(|r| wanted.in_chain(r) && r.handle == handle);
            let copies = now.rules.iter().filter(|r| wanted.is_same(r)).count();
            match (still, copies) {
                (true, _) => FixOutcome::failed(
                    before,
                    format!("{NFT} reported success but handle {handle} is still there"),
                ),
                (false, 0) => FixOutcome::applied(before, "absent", None),
                (false, n) => FixOutcome::applied(
                    before,
                    format!("{n} identical rule(s) remain"),
                    Some("one copy deleted; identical copies remain and are reported again".into()),
                ),
            }
        }
        Err(e) => FixOutcome::applied(before, "absent", Some(format!("re-check failed: {e}"))),
    }
}

/// Run one libnftables JSON command batch (`nft -j -f -`): all of it or none of it.
fn run_json(batch: &str) -> Result<(), String> {
    let mut child = Command::new(NFT)
        .args(["-j", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {NFT}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(batch.as_bytes())
            .map_err(|e| format!("writing to {NFT}: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for {NFT}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{NFT} -j -f - failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(handle: u64, expr: &str) -> NftRule {
        NftRule {
            family: "inet".into(),
            table: "firewalld".into(),
            chain: "filter_INPUT".into(),
            handle,
            comment: None,
            expr: serde_json::from_str(expr).unwrap(),
        }
    }

    const REJECT: &str = r#"[{"reject": {"type": "icmpx", "expr": "admin-prohibited"}}]"#;
    const ACCEPT: &str = r#"[{"accept": null}]"#;

    fn wanted(handle: u64) -> RuleRef {
        RuleRef {
            family: "inet".into(),
            table: "firewalld".into(),
            chain: "filter_INPUT".into(),
            handle: Some(handle),
            expr: rule(0, REJECT).canonical_expr(),
        }
    }

    #[test]
    fn the_rule_is_found_by_handle_and_whole_expression_never_by_handle_alone() {
        let ruleset = Nftables {
            chains: Vec::new(),
            rules: vec![rule(3, ACCEPT), rule(7, REJECT), rule(9, REJECT)],
            tables: Vec::new(),
        };
        assert_eq!(find(&ruleset, &wanted(9)).map(|r| r.handle), Some(9));
        // A reload renumbered the rules: the same rule at another handle.
        assert_eq!(find(&ruleset, &wanted(40)).map(|r| r.handle), Some(7));
        // The handle now holds another rule: that one is never taken.
        let replaced = Nftables {
            chains: Vec::new(),
            rules: vec![rule(7, ACCEPT)],
            tables: Vec::new(),
        };
        assert_eq!(find(&replaced, &wanted(7)), None);
        let mut any = wanted(7);
        any.handle = None;
        assert_eq!(find(&ruleset, &any).map(|r| r.handle), Some(7));
        let mut other_chain = wanted(7);
        other_chain.chain = "filter_FORWARD".into();
        assert_eq!(find(&ruleset, &other_chain), None);
    }
}
