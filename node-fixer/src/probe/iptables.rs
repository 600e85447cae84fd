//! iptables rules from `iptables-save`, with the backend chosen the way kube-proxy's
//! iptables-wrapper does: the backend holding kube-proxy's hint/canary chains wins, otherwise
//! the one holding more rules (nft on a tie).

use crate::error::ProbeError;
use crate::snapshot::{Backend, IpFamily, Iptables, Rule};
use std::process::Command;

/// Chains kube-proxy and the kubelet create to mark the backend in use.
const HINT_CHAINS: [&str; 2] = [":KUBE-IPTABLES-HINT", ":KUBE-KUBELET-CANARY"];

/// Run `<backend>-save` (all tables) of `family`. Spawned from the calling thread, so it runs
/// in that thread's network namespace.
pub fn save(backend: Backend, family: IpFamily) -> Result<String, ProbeError> {
    let program = backend.save(family);
    let output = Command::new(program)
        .output()
        .map_err(|source| ProbeError::Spawn { program, source })?;
    if !output.status.success() {
        return Err(ProbeError::Failed {
            program,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    String::from_utf8(output.stdout).map_err(|source| ProbeError::NotUtf8 { program, source })
}

/// Read both backends and keep the rules of the one in use. `Ok(None)` when neither backend's
/// tool could be run.
/// The rules of the backend in use, and the error of a backend that is installed but could
/// not be read (for example iptables-legacy without CAP_NET_RAW): its rules are unknown, which
/// must be reported rather than taken for "no rules". A backend that is not installed is no
/// error.
pub fn probe() -> Result<(Option<Iptables>, Option<ProbeError>), ProbeError> {
    let nft = save(Backend::Nft, IpFamily::V4);
    let legacy = save(Backend::Legacy, IpFamily::V4);
    let (nft, legacy, unreadable) = match (nft, legacy) {
        (Err(nft), Err(legacy)) => {
            return Err(ProbeError::NoIptables {
                nft: Box::new(nft),
                legacy: Box::new(legacy),
            });
        }
        (Ok(nft), Err(e)) => (Some(nft), None, unreadable_backend(e)),
        (Err(e), Ok(legacy)) => (None, Some(legacy), unreadable_backend(e)),
        (Ok(nft), Ok(legacy)) => (Some(nft), Some(legacy), None),
    };
    let backend = choose_backend(nft.as_deref(), legacy.as_deref());
    let text = match backend {
        Backend::Nft => nft,
        Backend::Legacy => legacy,
    };
    let rules = text.map(|t| Iptables {
        backend,
        rules: parse_save(&t),
    });
    Ok((rules, unreadable))
}

/// The `ip6tables` rules of `backend` (the one chosen for IPv4: kube-proxy's iptables-wrapper
/// switches both families together). `Ok(None)` when that backend's `ip6tables-save` is not
/// installed.
pub fn probe_v6(backend: Backend) -> Result<Option<Iptables>, ProbeError> {
    match save(backend, IpFamily::V6) {
        Ok(text) => Ok(Some(Iptables {
            backend,
            rules: parse_save(&text),
        })),
        Err(e) => match unreadable_backend(e) {
            None => Ok(None),
            Some(e) => Err(e),
        },
    }
}

/// `Some(e)` unless `e` says the program is not installed.
fn unreadable_backend(e: ProbeError) -> Option<ProbeError> {
    match &e {
        ProbeError::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound => None,
        _ => Some(e),
    }
}

/// kube-proxy's choice between two `iptables-save` outputs.
pub fn choose_backend(nft: Option<&str>, legacy: Option<&str>) -> Backend {
    let has_hint = |t: Option<&str>| {
        t.is_some_and(|t| {
            t.lines()
                .any(|l| HINT_CHAINS.iter().any(|h| l.starts_with(h)))
        })
    };
    let rules =
        |t: Option<&str>| t.map_or(0, |t| t.lines().filter(|l| l.starts_with("-A ")).count());
    match (nft, legacy) {
        (Some(_), None) => Backend::Nft,
        (None, Some(_)) => Backend::Legacy,
        _ if has_hint(nft) => Backend::Nft,
        _ if has_hint(legacy) => Backend::Legacy,
        _ if rules(legacy) > rules(nft) => Backend::Legacy,
        _ => Backend::Nft,
    }
}

/// The rules of an `iptables-save` dump, in order.
pub fn parse_save(text: &str) -> Vec<Rule> {
    let mut table = String::new();
    let mut rules = Vec::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix('*') {
            table = t.trim().to_string();
        } else if let Some(rest) = line.strip_prefix("-A ") {
            let (chain, spec) = rest.split_once(' ').unwrap_or((rest, ""));
            rules.push(Rule {
                table: table.clone(),
                chain: chain.to_string(),
                spec: spec.to_string(),
            });
        }
    }
    rules
}

/// Split a rule spec into arguments as the shell would: double-quoted strings (with `\"` and
/// `\\` escapes, as `iptables-save` writes comments) are one argument.
pub fn split_args(spec: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_arg = false;
    let mut quoted = false;
    let mut chars = spec.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '"' => {
                quoted = !quoted;
                in_arg = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_arg {
                    out.push(std::mem::take(&mut cur));
                    in_arg = false;
                }
            }
            c => {
                cur.push(c);
                in_arg = true;
            }
        }
    }
    if in_arg {
        out.push(cur);
    }
    out
}

/// Join arguments back into `iptables-save` form: an argument that is empty or holds
/// whitespace or quotes is double-quoted, with `"` and `\` escaped.
pub fn join_args(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.is_empty()
                || a.chars()
                    .any(|c| c.is_whitespace() || c == '"' || c == '\\')
            {
                format!("\"{}\"", a.replace('\\', "\\\\").replace('"', "\\\""))
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The value following `flag` in `args` (`-j` → `REJECT`).
pub fn arg_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SAVE: &str = "# Generated by iptables-nft-save v1.8.9\n*filter\n:INPUT ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n-A INPUT -j REJECT --reject-with icmp-host-prohibited\n-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment \"default/svc:port has no endpoints\" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable\nCOMMIT\n*nat\n-A POSTROUTING -s 10.244.0.0/16 ! -o docker0 -j MASQUERADE\nCOMMIT\n";

    #[test]
    fn save_output_is_split_into_rules_with_tables() {
        let rules = parse_save(SAVE);
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[0].table, "filter");
        assert_eq!(rules[0].chain, "INPUT");
        assert_eq!(
            rules[0].spec,
            "-j REJECT --reject-with icmp-host-prohibited"
        );
        assert_eq!(rules[2].table, "nat");
        let args = split_args(&rules[1].spec);
        assert_eq!(
            arg_value(&args, "--comment"),
            Some("default/svc:port has no endpoints")
        );
        assert_eq!(arg_value(&args, "-j"), Some("REJECT"));
        assert_eq!(join_args(&args), rules[1].spec);
    }

    #[test]
    fn backend_follows_hints_then_rule_counts() {
        let empty = "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n";
        let one = "*filter\n-A INPUT -j ACCEPT\nCOMMIT\n";
        let hint = "*mangle\n:KUBE-IPTABLES-HINT - [0:0]\nCOMMIT\n";
        assert_eq!(choose_backend(Some(empty), Some(one)), Backend::Legacy);
        assert_eq!(choose_backend(Some(one), Some(empty)), Backend::Nft);
        assert_eq!(choose_backend(Some(empty), Some(empty)), Backend::Nft);
        assert_eq!(choose_backend(Some(empty), Some(hint)), Backend::Legacy);
        assert_eq!(choose_backend(Some(hint), Some(one)), Backend::Nft);
        assert_eq!(choose_backend(None, Some(empty)), Backend::Legacy);
    }

    #[test]
    fn a_backend_that_is_installed_but_unreadable_is_an_error_not_an_empty_table() {
        let missing = ProbeError::Spawn {
            program: "iptables-legacy-save",
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert!(unreadable_backend(missing).is_none());
        let denied = ProbeError::Spawn {
            program: "iptables-legacy-save",
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert!(unreadable_backend(denied).is_some());
        let failed = ProbeError::Failed {
            program: "iptables-legacy-save",
            status: std::process::ExitStatus::default(),
            stderr: "Cannot initialize: Permission denied (you must be root)".into(),
        };
        let e = unreadable_backend(failed)
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("iptables-legacy-save") && e.contains("Permission denied"),
            "{e}"
        );
    }

    proptest! {
        #[test]
        fn args_round_trip_through_quoting(args in proptest::collection::vec("[ -~]{0,12}", 0..8)) {
            let joined = join_args(&args);
            prop_assert_eq!(split_args(&joined), args);
        }

        #[test]
        fn canonical_specs_round_trip(words in proptest::collection::vec("[a-zA-Z0-9/:._-]{1,10}", 1..6), comment in "[ -~]{0,20}") {
            let mut args = words.clone();
            args.push("--comment".into());
            args.push(comment);
            let spec = join_args(&args);
            prop_assert_eq!(join_args(&split_args(&spec)), spec);
        }
    }
}
