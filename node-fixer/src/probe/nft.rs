//! The nftables ruleset, read with `nft -j list tables` and `nft -j list table FAMILY NAME`:
//! libnftables' JSON form (libnftables-json(5)), which every nft since 0.9 prints and whose
//! schema is versioned (`metainfo.json_schema_version`). Only chains and rules are kept; of
//! sets and maps only the keys of kube-proxy's `service-ips` map are read, on their own
//! (`ServiceVipMissing`).

use crate::error::ProbeError;
use crate::snapshot::{NftChain, NftRule, Nftables, ServiceKey};
use serde_json::Value;
use std::process::Command;

/// The nft program.
pub const NFT: &str = "nft";

/// Run `nft -j <args>` in the calling thread's network namespace. `Ok(None)` when nft is not
/// installed (the host then has no nftables ruleset netheal could read or change).
fn nft_json(args: &[&str]) -> Result<Option<String>, ProbeError> {
    let output = match Command::new(NFT).arg("-j").args(args).output() {
        Ok(o) => o,
        Err(source) if source.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ProbeError::Spawn {
                program: NFT,
                source,
            });
        }
    };
    if !output.status.success() {
        return Err(ProbeError::Failed {
            program: NFT,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    String::from_utf8(output.stdout)
        .map(Some)
        .map_err(|source| ProbeError::NotUtf8 {
            program: NFT,
            source,
        })
}

/// Read the tables `wanted(family, name)` selects, one `nft -j list table` each, after one
/// `nft -j list tables`: the tables netheal never searches (kube-proxy's in nftables mode holds
/// a set element per Service endpoint) are never dumped or parsed. `Ok(None)` without nft.
pub fn probe(wanted: impl Fn(&str, &str) -> bool) -> Result<Option<Nftables>, ProbeError> {
    let Some(listing) = nft_json(&["list", "tables"])? else {
        return Ok(None);
    };
    let mut out = Nftables {
        tables: parse_tables(&listing)?,
        ..Nftables::default()
    };
    for (family, name) in out.tables.clone() {
        if !wanted(&family, &name) {
            continue;
        }
        let Some(text) = nft_json(&["list", "table", &family, &name])? else {
            return Ok(None);
        };
        let table = parse_ruleset(&text)?;
        out.chains.extend(table.chains);
        out.rules.extend(table.rules);
    }
    Ok(Some(out))
}

/// kube-proxy's table in nftables mode (`ip kube-proxy`, and `ip6 kube-proxy` on a dual-stack
/// cluster), and its map from (Service IP, protocol, port) to the Service's chain.
pub const KUBE_PROXY_SERVICE_IPS: (&str, &str) = ("kube-proxy", "service-ips");

/// The keys of kube-proxy's `service-ips` map of `family` (`ip` or `ip6`), with `nft -j list
/// map <family> kube-proxy service-ips`, when `tables` holds kube-proxy's table of that family
/// and it has that map (`Ok(None)` otherwise, or without nft).
pub fn kube_proxy_service_ips(
    tables: &[(String, String)],
    family: &str,
) -> Result<Option<Vec<ServiceKey>>, ProbeError> {
    let (table, map) = KUBE_PROXY_SERVICE_IPS;
    if !tables.iter().any(|(f, t)| f == family && t == table) {
        return Ok(None);
    }
    match nft_json(&["list", "map", family, table, map]) {
        Ok(Some(text)) => parse_service_ips(&text).map(Some),
        Ok(None) => Ok(None),
        // A table of that name without kube-proxy's map is not kube-proxy's nftables mode.
        Err(ProbeError::Failed { stderr, .. }) if stderr.contains("No such file or directory") => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The (protocol, address, port) keys of a `service-ips` map listing. An element is
/// `[{"concat": ["10.96.0.10", "udp", 53]}, {"goto": ...}]`, its key possibly wrapped as
/// `{"elem": {"val": {"concat": ...}}}` when the element has a comment; a key of another
/// shape is an error naming it.
pub fn parse_service_ips(text: &str) -> Result<Vec<ServiceKey>, ProbeError> {
    let mut out = Vec::new();
    for item in items(text)? {
        let Some(elements) = item
            .get("map")
            .and_then(|m| m.get("elem"))
            .and_then(Value::as_array)
        else {
            continue;
        };
        for element in elements {
            let key = element.get(0).unwrap_or(element);
            let key = key.get("elem").and_then(|e| e.get("val")).unwrap_or(key);
            out.push(service_key(key).ok_or_else(|| {
                ProbeError::NftJson(format!(
                    "a service-ips element that is not IP . protocol . port: {key}"
                ))
            })?);
        }
    }
    Ok(out)
}

fn service_key(key: &Value) -> Option<ServiceKey> {
    let parts = key.get("concat")?.as_array()?;
    let [addr, protocol, port] = parts.as_slice() else {
        return None;
    };
    let port = match port {
        Value::Number(n) => u16::try_from(n.as_u64()?).ok()?,
        Value::String(s) => s.parse().ok()?,
        _ => return None,
    };
    Some(ServiceKey {
        protocol: protocol.as_str()?.to_ascii_lowercase(),
        addr: addr.as_str()?.parse().ok()?,
        port,
    })
}

/// The (family, name) of every table in `nft -j list tables` output.
pub fn parse_tables(text: &str) -> Result<Vec<(String, String)>, ProbeError> {
    items(text)?
        .iter()
        .filter_map(|item| item.get("table"))
        .map(|t| {
            Ok((
                text_field(t, "family", "table")?,
                text_field(t, "name", "table")?,
            ))
        })
        .collect()
}

fn items(text: &str) -> Result<Vec<Value>, ProbeError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let doc: Value =
        serde_json::from_str(text).map_err(|e| ProbeError::NftJson(format!("not JSON: {e}")))?;
    match doc {
        Value::Object(mut map) => match map.remove("nftables") {
            Some(Value::Array(items)) => Ok(items),
            _ => Err(ProbeError::NftJson(
                "no \"nftables\" array at the top".to_string(),
            )),
        },
        _ => Err(ProbeError::NftJson(
            "no \"nftables\" array at the top".to_string(),
        )),
    }
}

/// Parse `nft -j list ruleset` (or `list table`) output. An empty output (nft prints nothing for an empty
/// ruleset in some versions) is an empty ruleset; anything that is not the documented
/// `{"nftables": [...]}` is an error naming what is wrong. An object of a kind not needed
/// (set, map, element, flowtable, ...) is skipped.
pub fn parse_ruleset(text: &str) -> Result<Nftables, ProbeError> {
    let mut out = Nftables::default();
    for item in &items(text)? {
        if let Some(chain) = item.get("chain") {
            out.chains.push(parse_chain(chain)?);
        } else if let Some(rule) = item.get("rule") {
            out.rules.push(parse_rule(rule)?);
        }
    }
    Ok(out)
}

fn text_field(object: &Value, key: &str, what: &str) -> Result<String, ProbeError> {
    object
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ProbeError::NftJson(format!("a {what} without a string \"{key}\"")))
}

fn parse_chain(chain: &Value) -> Result<NftChain, ProbeError> {
    Ok(NftChain {
        family: text_field(chain, "family", "chain")?,
        table: text_field(chain, "table", "chain")?,
        name: text_field(chain, "name", "chain")?,
        hook: chain
            .get("hook")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

fn parse_rule(rule: &Value) -> Result<NftRule, ProbeError> {
    let handle = rule
        .get("handle")
        .and_then(Value::as_u64)
        .ok_or_else(|| ProbeError::NftJson("a rule without a numeric \"handle\"".to_string()))?;
    let expr = rule
        .get("expr")
        .and_then(Value::as_array)
        .ok_or_else(|| ProbeError::NftJson(format!("rule {handle} without an \"expr\" array")))?;
    Ok(NftRule {
        family: text_field(rule, "family", "rule")?,
        table: text_field(rule, "table", "rule")?,
        chain: text_field(rule, "chain", "rule")?,
        handle,
        comment: rule
            .get("comment")
            .and_then(Value::as_str)
            .map(str::to_string),
        expr: expr
            .iter()
            .filter(|s| s.get("counter").is_none())
            .cloned()
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Part of what nft 1.0.6 prints for firewalld's table (`nft -j list ruleset`).
    const RULESET: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "firewalld", "handle": 1}}, {"chain": {"family": "inet", "table": "firewalld", "name": "filter_INPUT", "handle": 1, "type": "filter", "hook": "input", "prio": 10, "policy": "accept"}}, {"chain": {"family": "inet", "table": "firewalld", "name": "filter_IN_public", "handle": 5}}, {"set": {"family": "inet", "table": "firewalld", "name": "s", "handle": 9, "type": "ipv4_addr"}}, {"rule": {"family": "inet", "table": "firewalld", "chain": "filter_INPUT", "handle": 14, "expr": [{"reject": {"type": "icmpx", "expr": "admin-prohibited"}}]}}, {"rule": {"family": "inet", "table": "firewalld", "chain": "filter_IN_public", "handle": 31, "comment": "rich rule", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 25}}, {"counter": {"packets": 3, "bytes": 180}}, {"reject": {"type": "tcp reset"}}]}}]}"#;

    #[test]
    fn chains_and_rules_are_read_and_counters_left_out() {
        let r = parse_ruleset(RULESET).unwrap();
        assert_eq!(r.chains.len(), 2);
        assert_eq!(r.chains[0].hook.as_deref(), Some("input"));
        assert_eq!(r.chains[1].hook, None);
        assert_eq!(r.rules.len(), 2);
        assert_eq!(r.rules[1].handle, 31);
        assert_eq!(r.rules[1].comment.as_deref(), Some("rich rule"));
        let without_counter: Vec<Value> = serde_json::from_str(
            r#"[{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 25}}, {"reject": {"type": "tcp reset"}}]"#,
        )
        .unwrap();
        assert_eq!(
            r.rules[1].canonical_expr(),
            Value::Array(without_counter).to_string()
        );
        assert!(!r.rules[1].canonical_expr().contains("counter"));
    }

    #[test]
    fn kube_proxy_service_ips_are_read_with_or_without_element_comments() {
        let text = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}}, {"map": {"family": "ip", "name": "service-ips", "table": "kube-proxy", "type": ["ipv4_addr", "inet_proto", "inet_service"], "handle": 5, "map": "verdict", "elem": [[{"concat": ["10.96.0.10", "udp", 53]}, {"goto": {"target": "service-X-kube-system/kube-dns/udp/dns"}}], [{"elem": {"val": {"concat": ["10.96.0.1", "tcp", 443]}, "comment": "default/kubernetes"}}, {"goto": {"target": "service-Y"}}]]}}]}"#;
        let keys = parse_service_ips(text).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(
            (
                keys[0].protocol.as_str(),
                keys[0].addr.to_string(),
                keys[0].port
            ),
            ("udp", "10.96.0.10".into(), 53)
        );
        assert_eq!((keys[1].protocol.as_str(), keys[1].port), ("tcp", 443));
        let odd = r#"{"nftables": [{"map": {"elem": [[{"concat": ["10.96.0.10", "udp"]}, {"goto": {"target": "s"}}]]}}]}"#;
        assert!(
            parse_service_ips(odd)
                .unwrap_err()
                .to_string()
                .contains("IP . protocol . port")
        );
        let empty = r#"{"nftables": [{"map": {"family": "ip", "name": "service-ips", "table": "kube-proxy"}}]}"#;
        assert!(parse_service_ips(empty).unwrap().is_empty());
    }

    #[test]
    fn tables_are_listed_by_family_and_name() {
        let listing = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "firewalld", "handle": 1}}, {"table": {"family": "ip", "name": "kube-proxy", "handle": 2}}]}"#;
        assert_eq!(
            parse_tables(listing).unwrap(),
            [
                ("inet".to_string(), "firewalld".to_string()),
                ("ip".to_string(), "kube-proxy".to_string())
            ]
        );
        assert!(parse_tables("").unwrap().is_empty());
        assert!(parse_tables(r#"{"nftables":[{"table":{"name":"t"}}]}"#).is_err());
    }

    #[test]
    fn what_is_not_the_ruleset_is_an_error_naming_the_problem() {
        assert_eq!(parse_ruleset("").unwrap(), Nftables::default());
        let e = |t: &str| parse_ruleset(t).unwrap_err().to_string();
        assert!(e("{").contains("not JSON"));
        assert!(e("[]").contains("\"nftables\""));
        assert!(
            e(r#"{"nftables":[{"rule":{"family":"ip","table":"t","chain":"c","expr":[]}}]}"#)
                .contains("handle")
        );
        assert!(
            e(r#"{"nftables":[{"rule":{"family":"ip","table":"t","chain":"c","handle":1}}]}"#)
                .contains("expr")
        );
        assert!(e(r#"{"nftables":[{"chain":{"family":"ip","name":"c"}}]}"#).contains("table"));
    }
}
