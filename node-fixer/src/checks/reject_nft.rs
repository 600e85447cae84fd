//! `RejectRule` in nftables' own rulesets: the `reject` and `drop` rules a firewall such as
//! firewalld (nftables backend, `table inet firewalld`) keeps where `iptables-save` never shows
//! them.
//!
//! Searched: every base chain hooked where the policy's chains are (`INPUT` → hook `input`,
//! `FORWARD` → `forward`) in every `ip`, `ip6` and `inet` table, and every chain those jump or go to,
//! in the same table. nftables has no fixed chains: a table's base chains hand packets to its
//! regular chains, so a rule there is as effective as one in the base chain (firewalld's zone
//! chains `filter_IN_<zone>`), whatever `followJumps` says (that switch is about iptables' user
//! chains). Never searched: the tables of kube-proxy, Calico, Cilium and flannel (by name), the
//! chains Kubernetes or the CNI own, rules carrying their comments, the tables iptables-nft
//! manages (`ip filter`, `ip6 nat`, ...: read through `iptables-save` and `ip6tables-save`).
//!
//! A rule is a candidate when it ends in `reject` or `drop`; its matches are read into the same
//! [`Matches`] as an iptables rule's, so the scope (which of the cluster's traffic it drops) is
//! decided by [`super::reject_scope`] exactly as for iptables. A match netheal cannot see
//! through makes the rule opaque (kept under `ClusterTraffic`). A rule is judged in each address
//! family its table carries and its matches allow, against that family's cluster network (IPv6
//! only on a cluster with IPv6 pod ranges).

use super::reject::{
    NFTABLES_BACKEND, Verdict, is_owned_chain, is_owned_comment, scope_verdict, what_it_drops,
};
use super::reject_scope::{ClusterNetwork, Matches, Neg, Proto, scope_of};
use super::{details, finding};
use crate::snapshot::{IpFamily, NftRule, Nftables};
use ipnet::IpNet;
use netheal_crds::{Check, Finding, RejectRulesCheck};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::ops::RangeInclusive;

/// A chain: (family, table, chain).
pub type ChainKey = (String, String, String);

/// Tables kube-proxy (nftables mode), Calico, Cilium and flannel create: never candidates.
pub fn is_owned_table(table: &str) -> bool {
    let t = table.to_ascii_lowercase();
    t.contains("kube") || t.starts_with("cali") || t.contains("cilium") || t.contains("flannel")
}

/// The tables iptables-nft (and ebtables/arptables-nft) manage: their rules are read, and
/// removed, through `iptables-save` and `iptables-restore`, never here.
pub fn is_xtables_table(family: &str, table: &str) -> bool {
    matches!(family, "ip" | "ip6" | "arp" | "bridge")
        && matches!(
            table,
            "filter" | "nat" | "mangle" | "raw" | "security" | "broute"
        )
}

/// Whether the rules of this table are searched at all.
pub fn is_searched_table(family: &str, table: &str) -> bool {
    matches!(family, "ip" | "ip6" | "inet")
        && !is_owned_table(table)
        && !is_xtables_table(family, table)
}

/// firewalld's table on its nftables backend.
pub fn is_firewalld_table(table: &str) -> bool {
    table == "firewalld"
}

/// The hook of an iptables chain name (`INPUT` → `input`), if it is one of the built-in ones.
fn hook_of(chain: &str) -> Option<String> {
    let hook = chain.to_ascii_lowercase();
    matches!(
        hook.as_str(),
        "input" | "forward" | "output" | "prerouting" | "postrouting"
    )
    .then_some(hook)
}

fn key(rule: &NftRule) -> ChainKey {
    (rule.family.clone(), rule.table.clone(), rule.chain.clone())
}

/// The chains searched: base chains hooked at the policy's chains, chains the policy names
/// itself, and every chain reachable from them by `jump`/`goto` (also inside verdict maps),
/// never entering a chain Kubernetes or the CNI owns.
pub fn searched_chains(nft: &Nftables, policy: &RejectRulesCheck) -> BTreeSet<ChainKey> {
    let hooks: BTreeSet<String> = policy.chains.iter().filter_map(|c| hook_of(c)).collect();
    let mut searched: BTreeSet<ChainKey> = nft
        .chains
        .iter()
        .filter(|c| is_searched_table(&c.family, &c.table) && !is_owned_chain(&c.name))
        .filter(|c| {
            c.hook.as_ref().is_some_and(|h| hooks.contains(h)) || policy.chains.contains(&c.name)
        })
        .map(|c| (c.family.clone(), c.table.clone(), c.name.clone()))
        .collect();
    let mut todo: Vec<ChainKey> = searched.iter().cloned().collect();
    while let Some(chain) = todo.pop() {
        for rule in nft.rules.iter().filter(|r| key(r) == chain) {
            let mut targets = Vec::new();
            for statement in &rule.expr {
                jump_targets(statement, &mut targets);
            }
            for target in targets {
                let next = (chain.0.clone(), chain.1.clone(), target);
                if !is_owned_chain(&next.2) && searched.insert(next.clone()) {
                    todo.push(next);
                }
            }
        }
    }
    searched
}

/// Every `jump`/`goto` target anywhere in `value` (a statement or a verdict map).
fn jump_targets(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if (k == "jump" || k == "goto")
                    && let Some(target) = v.get("target").and_then(Value::as_str)
                {
                    out.push(target.to_string());
                } else {
                    jump_targets(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| jump_targets(v, out)),
        _ => {}
    }
}

/// `reject` or `drop` when the rule ends in one.
pub fn dropping_verdict(rule: &NftRule) -> Option<&'static str> {
    let last = rule.expr.last()?;
    if last.get("reject").is_some() {
        Some("reject")
    } else if last.get("drop").is_some() {
        Some("drop")
    } else {
        None
    }
}

/// Whether `rule` is a `reject`/`drop` rule this check may consider: in a searched chain, and
/// owned by neither Kubernetes nor the CNI.
pub fn is_unowned_drop(rule: &NftRule, searched: &BTreeSet<ChainKey>) -> bool {
    is_searched_table(&rule.family, &rule.table)
        && !is_owned_chain(&rule.chain)
        && searched.contains(&key(rule))
        && dropping_verdict(rule).is_some()
        && !rule.comment.as_deref().is_some_and(is_owned_comment)
}

/// What an nftables rule matches in packets of `family`, in the terms of [`Matches`]; `None`
/// when it matches no packet of that family (`ip6 …`, `icmpv6 …`, `meta nfproto ipv6` for
/// IPv4; `ip …`, `icmp …` for IPv6). Never fails: what is not understood goes to `opaque`.
pub fn matches(rule: &NftRule, family: IpFamily) -> Option<Matches> {
    let mut m = Matches::default();
    for statement in &rule.expr {
        if let Some(mat) = statement.get("match") {
            match read_match(mat, family, &mut m) {
                Read::Ok => {}
                Read::OtherFamily => return None,
                Read::Opaque => {
                    m.opaque = Some(render_statement(statement));
                    break;
                }
            }
        } else if ["log", "limit", "counter"]
            .iter()
            .any(|k| statement.get(*k).is_some())
        {
            // Do not narrow which flows match.
        } else if is_verdict(statement) {
            break;
        } else {
            m.opaque = Some(render_statement(statement));
            break;
        }
    }
    Some(m)
}

/// Whether a table of this nftables family sees packets of `family`.
fn table_carries(table_family: &str, family: IpFamily) -> bool {
    match table_family {
        "inet" => true,
        "ip" => family == IpFamily::V4,
        "ip6" => family == IpFamily::V6,
        _ => false,
    }
}

const VERDICTS: [&str; 8] = [
    "accept", "drop", "reject", "continue", "return", "jump", "goto", "queue",
];

fn is_verdict(statement: &Value) -> bool {
    VERDICTS.iter().any(|k| statement.get(*k).is_some())
}

enum Read {
    Ok,
    /// The match holds for packets of the other address family only.
    OtherFamily,
    Opaque,
}

fn read_match(mat: &Value, family: IpFamily, m: &mut Matches) -> Read {
    let op = mat.get("op").and_then(Value::as_str).unwrap_or("==");
    let negated = match op {
        "==" | "in" => false,
        "!=" => true,
        _ => return Read::Opaque,
    };
    let (Some(left), Some(right)) = (mat.get("left"), mat.get("right")) else {
        return Read::Opaque;
    };
    if let Some(payload) = left.get("payload") {
        let protocol = payload.get("protocol").and_then(Value::as_str);
        let field = payload.get("field").and_then(Value::as_str);
        return read_payload(protocol, field, right, negated, family, m);
    }
    if let Some(key) = left
        .get("meta")
        .and_then(|v| v.get("key"))
        .and_then(Value::as_str)
    {
        return read_meta(key, right, negated, family, m);
    }
    if left
        .get("ct")
        .and_then(|v| v.get("key"))
        .and_then(Value::as_str)
        == Some("state")
    {
        let Some(states) = strings(right) else {
            return Read::Opaque;
        };
        m.states = Some(Neg {
            negated,
            value: states.iter().map(|s| s.to_ascii_uppercase()).collect(),
        });
        return Read::Ok;
    }
    Read::Opaque
}

fn read_payload(
    protocol: Option<&str>,
    field: Option<&str>,
    right: &Value,
    negated: bool,
    family: IpFamily,
    m: &mut Matches,
) -> Read {
    let header = match protocol {
        Some("ip" | "icmp") => Some(IpFamily::V4),
        Some("ip6" | "icmpv6") => Some(IpFamily::V6),
        _ => None,
    };
    if header.is_some_and(|h| h != family) {
        return Read::OtherFamily;
    }
    match (protocol, field) {
        (Some("ip" | "ip6"), Some(field @ ("saddr" | "daddr"))) => {
            let Some(value) = ip_net(right, family) else {
                return Read::Opaque;
            };
            let slot = if field == "saddr" {
                &mut m.source
            } else {
                &mut m.destination
            };
            *slot = Some(Neg { negated, value });
            Read::Ok
        }
        (Some("ip"), Some("protocol")) | (Some("ip6"), Some("nexthdr")) => {
            read_protocol(right, negated, m)
        }
        (Some(l4 @ ("tcp" | "udp" | "sctp" | "th")), Some(field)) => {
            if l4 != "th" && m.protocol.is_none() {
                // `tcp dport 25` matches TCP packets only, whatever the operator.
                m.protocol = Some(Neg {
                    negated: false,
                    value: Proto::parse(l4),
                });
            }
            match field {
                "dport" => match ports(right) {
                    Some(value) => {
                        m.destination_ports = Some(Neg { negated, value });
                        Read::Ok
                    }
                    None => Read::Opaque,
                },
                // Source ports and flags do not narrow the flows below.
                "sport" | "flags" => Read::Ok,
                _ => Read::Opaque,
            }
        }
        (Some(icmp @ ("icmp" | "icmpv6")), _) => {
            if m.protocol.is_none() {
                m.protocol = Some(Neg {
                    negated: false,
                    value: Proto::parse(icmp),
                });
            }
            Read::Ok
        }
        _ => Read::Opaque,
    }
}

fn read_meta(key: &str, right: &Value, negated: bool, family: IpFamily, m: &mut Matches) -> Read {
    match key {
        "iifname" | "oifname" | "iif" | "oif" => {
            let Some(name) = right.as_str() else {
                return Read::Opaque;
            };
            // nft's wildcard `cni*` is iptables' `cni+`.
            let value = match name.strip_suffix('*') {
                Some(prefix) => format!("{prefix}+"),
                None => name.to_string(),
            };
            let slot = if key.starts_with('i') {
                &mut m.in_interface
            } else {
                &mut m.out_interface
            };
            *slot = Some(Neg { negated, value });
            Read::Ok
        }
        "l4proto" => read_protocol(right, negated, m),
        "nfproto" | "protocol" => {
            let named = match right.as_str() {
                Some("ipv4" | "ip") => IpFamily::V4,
                Some("ipv6" | "ip6") => IpFamily::V6,
                Some(_) => return Read::Ok,
                None => return Read::Opaque,
            };
            if (named == family) == negated {
                Read::OtherFamily
            } else {
                Read::Ok
            }
        }
        _ => Read::Opaque,
    }
}

fn read_protocol(right: &Value, negated: bool, m: &mut Matches) -> Read {
    let value = match right {
        Value::String(name) => Proto::parse(name),
        Value::Number(n) => match n.as_u64().and_then(|n| u8::try_from(n).ok()) {
            Some(n) => Proto::Number(n),
            None => return Read::Opaque,
        },
        _ => return Read::Opaque,
    };
    m.protocol = Some(Neg { negated, value });
    Read::Ok
}

/// An address or prefix of `family` (`"10.0.0.1"`, `{"prefix": {"addr", "len"}}`).
fn ip_net(right: &Value, family: IpFamily) -> Option<IpNet> {
    let net = if let Some(text) = right.as_str() {
        text.parse::<IpAddr>().ok().map(IpNet::from)?
    } else {
        let prefix = right.get("prefix")?;
        let addr: IpAddr = prefix.get("addr")?.as_str()?.parse().ok()?;
        let len = u8::try_from(prefix.get("len")?.as_u64()?).ok()?;
        IpNet::new(addr, len).ok()?.trunc()
    };
    let same = match family {
        IpFamily::V4 => net.addr().is_ipv4(),
        IpFamily::V6 => net.addr().is_ipv6(),
    };
    same.then_some(net)
}

fn port(value: &Value) -> Option<u16> {
    value.as_u64().and_then(|n| u16::try_from(n).ok())
}

fn port_range(value: &Value) -> Option<RangeInclusive<u16>> {
    if let Some(n) = port(value) {
        return Some(n..=n);
    }
    let pair = value.get("range")?.as_array()?;
    let (a, b) = (port(pair.first()?)?, port(pair.get(1)?)?);
    Some(a.min(b)..=a.max(b))
}

fn ports(right: &Value) -> Option<Vec<RangeInclusive<u16>>> {
    match right.get("set").and_then(Value::as_array) {
        Some(items) => items.iter().map(port_range).collect(),
        None => port_range(right).map(|r| vec![r]),
    }
}

fn strings(right: &Value) -> Option<Vec<String>> {
    match right {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => strings(right.get("set")?),
    }
}

/// The verdict on `rule` under `policy`, `searched` being the chains searched, in each address
/// family of `nets` the rule's table carries: removed when it drops the cluster's traffic of
/// either family. An IPv6 network without pod ranges (a single-stack IPv4 cluster) is not
/// judged: it has no IPv6 traffic of its own.
pub fn verdict(
    rule: &NftRule,
    searched: &BTreeSet<ChainKey>,
    policy: &RejectRulesCheck,
    nets: &[ClusterNetwork],
) -> Verdict {
    if !is_unowned_drop(rule, searched) {
        return Verdict::Keep(
            "it is not a reject or drop rule this policy may remove (owned by Kubernetes or the CNI, managed by iptables-nft, or not in a chain hooked where spec.checks.rejectRules.chains are)".to_string(),
        );
    }
    let mut removed: Option<Vec<String>> = None;
    // Why it stays, in the families it can match; then why no family applies.
    let mut kept = Vec::new();
    let mut not_applicable = Vec::new();
    for net in nets
        .iter()
        .filter(|n| table_carries(&rule.family, n.family))
    {
        let ip = match net.family {
            IpFamily::V4 => "IPv4",
            IpFamily::V6 => "IPv6",
        };
        if net.family == IpFamily::V6 && net.pod_cidrs.is_empty() {
            not_applicable.push(
                "the cluster has no IPv6 pod ranges (its IPv6 traffic is not checked)".to_string(),
            );
            continue;
        }
        let Some(m) = matches(rule, net.family) else {
            not_applicable.push(format!("it matches no {ip} packet"));
            continue;
        };
        match scope_verdict(scope_of(m, net), policy) {
            Verdict::Remove(drops) => {
                let all = removed.get_or_insert_with(Vec::new);
                all.extend(
                    drops
                        .into_iter()
                        .filter(|d| !all.contains(d))
                        .collect::<Vec<_>>(),
                );
            }
            Verdict::Keep(why) => kept.push(format!("{ip}: {why}")),
        }
    }
    match removed {
        Some(drops) => Verdict::Remove(drops),
        None if !kept.is_empty() => Verdict::Keep(kept.join("; ")),
        None if !not_applicable.is_empty() => Verdict::Keep(not_applicable.join("; ")),
        None => Verdict::Keep(format!(
            "a table of family {} carries no IP packets",
            rule.family
        )),
    }
}

/// What firewalld users change so that the rule is not put back on the next reload.
const FIREWALLD_HINT: &str = "firewalld puts this rule back on every reload: put the pod interfaces (cni0, flannel.1, cali+, tunl0) and the pod CIDRs in the trusted zone (firewall-cmd --permanent --zone=trusted --add-interface=cni0 --add-source=<pod CIDR>; firewall-cmd --reload)";

/// The `RejectRule` findings of nftables' own tables.
pub fn findings(
    nft: &Nftables,
    policy: &RejectRulesCheck,
    nets: &[ClusterNetwork],
) -> Vec<Finding> {
    let searched = searched_chains(nft, policy);
    nft.rules
        .iter()
        .filter_map(|r| Some((r, verdict(r, &searched, policy, nets).removed()?)))
        .map(|(r, drops)| {
            let what = what_it_drops(&drops);
            let verdict = dropping_verdict(r).unwrap_or("reject");
            let text = render(r);
            let hint = if is_firewalld_table(&r.table) {
                format!(". {FIREWALLD_HINT}")
            } else {
                String::new()
            };
            finding(
                Check::RejectRule,
                format!("{} {} {} {text}", r.family, r.table, r.chain),
                // The handle is not part of the finding's parameters: a reload renumbers the
                // rules, and the fix finds the rule by its whole expression again anyway.
                format!("present (nftables, handle {})", r.handle),
                "absent".to_string(),
                format!(
                    "nftables {verdict} rule in table {} {}, chain {} {what}{hint}",
                    r.family, r.table, r.chain
                ),
                details([
                    ("netns", String::new()),
                    ("backend", NFTABLES_BACKEND.to_string()),
                    ("family", r.family.clone()),
                    ("table", r.table.clone()),
                    ("chain", r.chain.clone()),
                    ("rule", text),
                    ("expr", r.canonical_expr()),
                    ("drops", drops.join("; ")),
                ]),
            )
        })
        .collect()
}

/// A rule in nft's own syntax, close to what `nft list ruleset` prints (counters left out;
/// what is not rendered here is printed as its JSON).
pub fn render(rule: &NftRule) -> String {
    let mut parts: Vec<String> = rule.expr.iter().map(render_statement).collect();
    if let Some(c) = &rule.comment {
        parts.push(format!("comment {}", quote(c)));
    }
    parts.join(" ")
}

fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

fn render_statement(statement: &Value) -> String {
    let Some((name, body)) = statement.as_object().and_then(|o| o.iter().next()) else {
        return statement.to_string();
    };
    match (name.as_str(), body) {
        ("accept" | "drop" | "continue" | "return", _) => name.clone(),
        ("jump" | "goto", b) => match b.get("target").and_then(Value::as_str) {
            Some(t) => format!("{name} {t}"),
            None => statement.to_string(),
        },
        ("reject", Value::Null) => "reject".to_string(),
        ("reject", b) => {
            let kind = b.get("type").and_then(Value::as_str);
            let code = b.get("expr").and_then(Value::as_str);
            match (kind, code) {
                (Some(k), Some(c)) => format!("reject with {k} {c}"),
                (Some(k), None) => format!("reject with {k}"),
                _ => "reject".to_string(),
            }
        }
        ("match", b) => {
            let op = match b.get("op").and_then(Value::as_str) {
                None | Some("==") | Some("in") => String::new(),
                Some(op) => format!("{op} "),
            };
            let left = b.get("left").map(render_expression).unwrap_or_default();
            let right = b.get("right").map(render_expression).unwrap_or_default();
            format!("{left} {op}{right}")
        }
        ("log", _) => "log".to_string(),
        _ => statement.to_string(),
    }
}

fn render_expression(e: &Value) -> String {
    match e {
        Value::String(s)
            if s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c)) =>
        {
            s.clone()
        }
        Value::String(s) => quote(s),
        Value::Number(n) => n.to_string(),
        Value::Object(o) => {
            if let Some(p) = o.get("payload") {
                let protocol = p.get("protocol").and_then(Value::as_str).unwrap_or("?");
                let field = p.get("field").and_then(Value::as_str).unwrap_or("?");
                return format!("{protocol} {field}");
            }
            if let Some(key) = o
                .get("meta")
                .and_then(|m| m.get("key"))
                .and_then(Value::as_str)
            {
                return match key {
                    "iifname" | "oifname" | "iif" | "oif" => key.to_string(),
                    k => format!("meta {k}"),
                };
            }
            if let Some(key) = o
                .get("ct")
                .and_then(|m| m.get("key"))
                .and_then(Value::as_str)
            {
                return format!("ct {key}");
            }
            if let Some(p) = o.get("prefix") {
                let addr = p.get("addr").map(render_expression).unwrap_or_default();
                let len = p.get("len").map(render_expression).unwrap_or_default();
                return format!("{addr}/{len}");
            }
            if let Some(Value::Array(r)) = o.get("range")
                && let [a, b] = &r[..]
            {
                return format!("{}-{}", render_expression(a), render_expression(b));
            }
            if let Some(Value::Array(items)) = o.get("set") {
                let items: Vec<String> = items.iter().map(render_expression).collect();
                return format!("{{ {} }}", items.join(", "));
            }
            e.to_string()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::nft::parse_ruleset;
    use netheal_crds::RejectScope;

    /// What nft 1.0.6 prints (`nft -j list ruleset`) for a firewalld-style table and
    /// kube-proxy's nftables table, loaded into a namespace.
    const FIREWALLD: &str = include_str!("../../tests/fixtures/firewalld-kube-proxy.json");

    fn net() -> ClusterNetwork {
        ClusterNetwork {
            pod_cidrs: vec!["10.244.0.0/16".parse().unwrap()],
            node_ips: vec!["192.168.50.1".parse().unwrap()],
            uplinks: Some(vec!["eth0".into()]),
            ..Default::default()
        }
    }

    /// A single-stack IPv4 cluster: no IPv6 pod ranges.
    fn nets() -> [ClusterNetwork; 2] {
        [
            net(),
            ClusterNetwork {
                family: IpFamily::V6,
                ..Default::default()
            },
        ]
    }

    /// A dual-stack cluster.
    fn dual_stack() -> [ClusterNetwork; 2] {
        [
            net(),
            ClusterNetwork {
                family: IpFamily::V6,
                pod_cidrs: vec!["fd00:10:244::/56".parse().unwrap()],
                ..Default::default()
            },
        ]
    }

    fn rule(nft: &Nftables, handle: u64, chain: &str) -> NftRule {
        nft.rules
            .iter()
            .find(|r| r.handle == handle && r.chain == chain)
            .cloned()
            .unwrap()
    }

    #[test]
    fn base_chains_and_their_jumps_are_searched_never_owned_tables() {
        let nft = parse_ruleset(FIREWALLD).unwrap();
        let searched = searched_chains(&nft, &RejectRulesCheck::default());
        let names: Vec<&str> = searched.iter().map(|k| k.2.as_str()).collect();
        assert_eq!(
            names,
            [
                "filter_FORWARD",
                "filter_FORWARD_ZONES",
                "filter_FWD_public",
                "filter_INPUT",
                "filter_INPUT_ZONES",
                "filter_IN_public",
                "filter_IN_public_allow",
            ]
        );
        assert!(searched.iter().all(|k| k.1 == "firewalld"));
        let only_input = RejectRulesCheck {
            chains: vec!["INPUT".into()],
            ..RejectRulesCheck::default()
        };
        let names: Vec<String> = searched_chains(&nft, &only_input)
            .into_iter()
            .map(|k| k.2)
            .collect();
        assert!(
            !names
                .iter()
                .any(|n| n.contains("FORWARD") || n.contains("FWD"))
        );
    }

    #[test]
    fn firewalld_catch_all_rejects_are_removed_and_everything_else_kept() {
        let nft = parse_ruleset(FIREWALLD).unwrap();
        let policy = RejectRulesCheck::default();
        let searched = searched_chains(&nft, &policy);
        let removed: Vec<(String, u64)> = nft
            .rules
            .iter()
            .filter(|r| matches!(verdict(r, &searched, &policy, &nets()), Verdict::Remove(_)))
            .map(|r| (r.chain.clone(), r.handle))
            .collect();
        assert_eq!(
            removed,
            [
                ("filter_INPUT".to_string(), 14),
                ("filter_FORWARD".to_string(), 23)
            ]
        );
        let why = |chain: &str, handle| match verdict(
            &rule(&nft, handle, chain),
            &searched,
            &policy,
            &nets(),
        ) {
            Verdict::Keep(why) => why,
            Verdict::Remove(d) => panic!("{chain} {handle} removed: {d:?}"),
        };
        // `ct state invalid drop`: no live packet of a flow is INVALID.
        assert!(why("filter_INPUT", 12).contains("none of the cluster's traffic"));
        // firewalld's IPv6 martian reject.
        assert!(why("filter_FORWARD", 21).contains("IPv6"));
        // A rich rule against a foreign network's SMTP.
        assert!(why("filter_IN_public", 29).contains("none of the cluster's traffic"));
        // kube-proxy's reject chain.
        assert!(why("reject-chain", 6).contains("not a reject or drop rule"));
        let everything = RejectRulesCheck {
            scope: RejectScope::AllUnowned,
            ..RejectRulesCheck::default()
        };
        assert_eq!(
            verdict(
                &rule(&nft, 29, "filter_IN_public"),
                &searched,
                &everything,
                &nets()
            ),
            Verdict::Remove(Vec::new())
        );
        assert!(matches!(
            verdict(
                &rule(&nft, 6, "reject-chain"),
                &searched,
                &everything,
                &nets()
            ),
            Verdict::Keep(_)
        ));
    }

    #[test]
    fn matches_are_read_as_iptables_would_have_them() {
        let nft = parse_ruleset(FIREWALLD).unwrap();
        let Some(m) = matches(&rule(&nft, 30, "filter_IN_public"), IpFamily::V4) else {
            panic!("IPv4 rule read as IPv6");
        };
        assert_eq!(m.in_interface.map(|n| n.value), Some("cni+".to_string()));
        assert_eq!(m.protocol.map(|p| p.value), Some(Proto::Number(6)));
        assert_eq!(m.destination_ports.map(|p| p.value), Some(vec![1..=1024]));
        assert_eq!(m.opaque, None);
        let Some(m) = matches(&rule(&nft, 29, "filter_IN_public"), IpFamily::V4) else {
            panic!("IPv4 rule read as IPv6");
        };
        assert_eq!(
            matches(&rule(&nft, 29, "filter_IN_public"), IpFamily::V6),
            None,
            "ip saddr matches no IPv6 packet"
        );
        assert_eq!(
            m.source.map(|s| s.value),
            Some("203.0.113.0/24".parse().unwrap())
        );
        // `ct status dnat` is not seen through.
        let Some(m) = matches(&rule(&nft, 10, "filter_INPUT"), IpFamily::V4) else {
            panic!("IPv4 rule read as IPv6");
        };
        assert_eq!(m.opaque.as_deref(), Some("ct status dnat"));
        // firewalld's martian reject: IPv6 only, a set of prefixes not seen through.
        let martian = rule(&nft, 21, "filter_FORWARD");
        assert_eq!(matches(&martian, IpFamily::V4), None);
        let m = matches(&martian, IpFamily::V6).unwrap();
        assert!(
            m.opaque.as_deref().unwrap_or("").starts_with("ip6 daddr"),
            "{m:?}"
        );
    }

    #[test]
    fn on_a_dual_stack_cluster_inet_rejects_drop_both_families() {
        let nft = parse_ruleset(FIREWALLD).unwrap();
        let policy = RejectRulesCheck::default();
        let searched = searched_chains(&nft, &policy);
        let verdicts: Vec<(u64, Verdict)> = nft
            .rules
            .iter()
            .filter(|r| [14, 21, 23].contains(&r.handle) && r.table == "firewalld")
            .map(|r| (r.handle, verdict(r, &searched, &policy, &dual_stack())))
            .collect();
        let Verdict::Remove(drops) = &verdicts[0].1 else {
            panic!("{verdicts:?}");
        };
        assert!(
            drops.iter().any(|d| d == "pod traffic (10.244.0.0/16)")
                && drops.iter().any(|d| d == "pod traffic (fd00:10:244::/56)"),
            "{drops:?}"
        );
        let Verdict::Keep(why) = &verdicts[1].1 else {
            panic!("the martian reject stays: {verdicts:?}");
        };
        assert!(why.starts_with("IPv6: its match ip6 daddr"), "{why}");
        assert!(matches!(verdicts[2].1, Verdict::Remove(_)));
        // On the single-stack cluster the same catch-all drops IPv4 traffic only.
        let Verdict::Remove(drops) =
            verdict(&rule(&nft, 14, "filter_INPUT"), &searched, &policy, &nets())
        else {
            panic!("removed");
        };
        assert!(drops.iter().all(|d| !d.contains("fd00")), "{drops:?}");
    }

    #[test]
    fn a_pod_interface_reject_is_kept_on_a_dual_stack_cluster_whose_ipv6_uplinks_are_known() {
        let nft = parse_ruleset(FIREWALLD).unwrap();
        let policy = RejectRulesCheck::default();
        let searched = searched_chains(&nft, &policy);
        let cni_rule = rule(&nft, 30, "filter_IN_public");
        let mut nets = dual_stack();
        nets[1].node_ips = vec!["fd31::1".parse().unwrap(), "fd31::2".parse().unwrap()];
        // Unknown IPv6 uplinks: node traffic (BGP) might arrive on cni0, so the rule drops it.
        assert!(matches!(
            verdict(&cni_rule, &searched, &policy, &nets),
            Verdict::Remove(_)
        ));
        // Known (the IPv6 routes to the nodes leave through eth0): it drops none of it.
        nets[1].uplinks = Some(vec!["eth0".into()]);
        assert!(matches!(
            verdict(&cni_rule, &searched, &policy, &nets),
            Verdict::Keep(_)
        ));
    }

    #[test]
    fn rules_render_in_nft_syntax() {
        let nft = parse_ruleset(FIREWALLD).unwrap();
        let text = |h, c| render(&rule(&nft, h, c));
        assert_eq!(
            text(14, "filter_INPUT"),
            "reject with icmpx admin-prohibited"
        );
        assert_eq!(
            text(9, "filter_INPUT"),
            "ct state { established, related } accept"
        );
        assert_eq!(
            text(29, "filter_IN_public"),
            "ip saddr 203.0.113.0/24 tcp dport 25 reject with tcp reset comment \"rich rule\""
        );
        assert_eq!(
            text(30, "filter_IN_public"),
            "iifname \"cni*\" tcp dport 1-1024 reject with icmpx port-unreachable"
        );
        assert_eq!(text(6, "reject-chain"), "reject with icmp port-unreachable");
    }

    #[test]
    fn xtables_tables_are_left_to_iptables_and_owned_tables_never_searched() {
        assert!(!is_searched_table("ip", "filter"));
        assert!(!is_searched_table("ip6", "nat"));
        assert!(!is_searched_table("ip6", "filter"));
        assert!(!is_searched_table("ip6", "kube-proxy"));
        assert!(!is_searched_table("arp", "myfirewall"));
        assert!(is_searched_table("ip6", "myfirewall"));
        assert!(!is_searched_table("ip", "kube-proxy"));
        assert!(!is_searched_table("ip", "calico"));
        assert!(!is_searched_table("inet", "cilium_filter"));
        assert!(!is_searched_table("ip", "flannel-ipv4"));
        assert!(is_searched_table("inet", "filter"));
        assert!(is_searched_table("ip", "myfirewall"));
        assert!(is_searched_table("inet", "firewalld"));
    }
}
