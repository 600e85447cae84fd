//! `RemoveRejectRule`: delete one rule by its exact spec with the backend's own tools, never
//! by line number.

use super::FixOutcome;
use crate::probe::iptables::{parse_save, save};
use crate::snapshot::{Backend, IpFamily};
use std::io::Write;
use std::process::{Command, Stdio};

/// How long a restore waits for the xtables lock (`--wait`): kube-proxy and the CNI hold it for
/// their own writes. Without the flag iptables-legacy-restore 1.8 waits for as long as the holder
/// keeps it (measured: it blocks on the lock), so a stuck holder would hang the fix.
const XTABLES_LOCK_WAIT: &str = "--wait=5";

/// How many times `-A chain spec` is in the table now.
fn count(
    backend: Backend,
    family: IpFamily,
    table: &str,
    chain: &str,
    spec: &str,
) -> Result<usize, crate::error::ProbeError> {
    let text = save(backend, family)?;
    Ok(parse_save(&text)
        .iter()
        .filter(|r| r.table == table && r.chain == chain && r.spec == spec)
        .count())
}

/// Delete `-A chain spec` from `table` of `family` (`iptables` or `ip6tables`) in the current
/// thread's namespace.
pub fn remove_here(
    backend: Backend,
    family: IpFamily,
    table: &str,
    chain: &str,
    spec: &str,
    dry_run: bool,
) -> FixOutcome {
    let rule = format!("-A {chain} {spec}");
    let before = format!(
        "{rule} (table {table}, {}-{})",
        family.tool(),
        backend.as_str()
    );
    let restore = backend.restore(family);
    match count(backend, family, table, chain, spec) {
        Ok(0) => return FixOutcome::no_change("absent", None),
        Ok(_) => {}
        Err(e) => return FixOutcome::failed("", e.to_string()),
    }
    if dry_run {
        return FixOutcome::applied(before, "absent", Some("dry-run: not deleted".into()));
    }
    // One atomic batch in iptables-save syntax: the spec is passed exactly as it was printed.
    let batch = format!("*{table}\n-D {chain} {spec}\nCOMMIT\n");
    let run = || -> Result<std::process::Output, std::io::Error> {
        let mut child = Command::new(restore)
            .args(["--noflush", XTABLES_LOCK_WAIT])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(batch.as_bytes())?;
        }
        child.wait_with_output()
    };
    match run() {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            return FixOutcome::failed(
                before,
                format!(
                    "{} failed ({}): {}",
                    restore,
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            );
        }
        Err(e) => {
            return FixOutcome::failed(before, format!("cannot run {restore}: {e}"));
        }
    }
    match count(backend, family, table, chain, spec) {
        Ok(0) => FixOutcome::applied(before, "absent", None),
        Ok(n) => FixOutcome::applied(
            before,
            format!("{n} identical rule(s) remain"),
            Some("one copy deleted; identical copies remain and are reported again".into()),
        ),
        Err(e) => FixOutcome::applied(before, "absent", Some(format!("re-check failed: {e}"))),
    }
}
