//! Which of the cluster's own traffic an iptables rule drops: the scope of `RejectRule`.
//!
//! A rule is read into the matches netheal can see through (addresses, interfaces, protocol,
//! destination ports, connection states). It drops a cluster flow when every one of those
//! matches can hold for a packet of that flow. The flows are the overlay (VXLAN, IPIP,
//! WireGuard), the kubelet, BGP, and all traffic from or to the pod network or the nodes. The
//! last two count only for a rule that does not narrow protocol or ports, or that names a pod or
//! node address itself: `-p tcp --dport 25 -j REJECT` is an administrator's deliberate rule,
//! `-j REJECT` and `-s 10.244.0.0/16 -p tcp -j REJECT` drop the cluster's traffic. A rule with a
//! match netheal cannot see through (`-m set`, `-m mac`, ...) is never said to drop anything.

use crate::engine::ClusterFacts;
use crate::snapshot::{IpFamily, Link, Route, Route6};
use ipnet::IpNet;
use std::net::IpAddr;
use std::ops::RangeInclusive;

/// The interfaces pod traffic crosses besides the node's uplink, in iptables' syntax (`+` ends
/// a prefix): bridges, veths and the tunnels of flannel, Calico, Cilium and WireGuard.
pub const POD_INTERFACES: [&str; 10] = [
    "cni+",
    "veth+",
    "flannel+",
    "cali+",
    "tunl+",
    "vxlan.calico",
    "cilium+",
    "lxc+",
    "wg+",
    "kube-bridge",
];

/// Whether `name` is one of [`POD_INTERFACES`].
pub fn is_pod_interface(name: &str) -> bool {
    POD_INTERFACES.iter().any(|p| match p.strip_suffix('+') {
        Some(prefix) => name.starts_with(prefix),
        None => name == *p,
    })
}

/// What the cluster's traffic of one address family looks like on this node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterNetwork {
    /// The family judged: rules of `iptables` and `ip`/`inet` IPv4 matches, or of `ip6tables`
    /// and IPv6 matches.
    pub family: IpFamily,
    /// Every node's pod ranges of this family (`spec.podCIDRs`, `spec.podCIDR`).
    pub pod_cidrs: Vec<IpNet>,
    /// Every node's addresses of this family (InternalIP, ExternalIP, flannel's public IP).
    pub node_ips: Vec<IpAddr>,
    /// The interfaces this node reaches its peers through (from its routes), `None` when unknown.
    pub uplinks: Option<Vec<String>>,
}

impl ClusterNetwork {
    /// The cluster's IPv4 network from the Node objects and, when given, this node's links and
    /// routes (which tell the interfaces peers are reached through).
    pub fn from_facts(cluster: &ClusterFacts, links: &[Link], routes: &[Route]) -> Self {
        Self::of_family(IpFamily::V4, cluster, links, routes, &[])
    }

    /// The cluster's network of `family` (see [`Self::from_facts`]): the uplinks of IPv4 from
    /// `routes`, of IPv6 from `routes6` (unknown, so any interface but `lo`, when the table has
    /// no route to some node address).
    pub fn of_family(
        family: IpFamily,
        cluster: &ClusterFacts,
        links: &[Link],
        routes: &[Route],
        routes6: &[Route6],
    ) -> Self {
        let in_family = |ip: &IpAddr| match family {
            IpFamily::V4 => ip.is_ipv4(),
            IpFamily::V6 => ip.is_ipv6(),
        };
        let mut pod_cidrs = Vec::new();
        let mut node_ips = Vec::new();
        for node in &cluster.nodes {
            let spec = node.spec.as_ref();
            let cidrs = spec
                .and_then(|s| s.pod_cidrs.clone())
                .unwrap_or_default()
                .into_iter()
                .chain(spec.and_then(|s| s.pod_cidr.clone()));
            pod_cidrs.extend(
                cidrs
                    .filter_map(|c| c.parse::<IpNet>().ok().map(|c| c.trunc()))
                    .filter(|c| in_family(&c.addr())),
            );
            let addresses = node
                .status
                .as_ref()
                .and_then(|s| s.addresses.as_ref())
                .into_iter()
                .flatten()
                .filter(|a| a.type_ == "InternalIP" || a.type_ == "ExternalIP")
                .map(|a| a.address.as_str());
            let public = node
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(super::peers::PUBLIC_IP))
                .map(String::as_str);
            node_ips.extend(
                addresses
                    .chain(public)
                    .filter_map(|a| a.trim().parse::<IpAddr>().ok())
                    .filter(in_family),
            );
        }
        pod_cidrs.sort();
        pod_cidrs.dedup();
        node_ips.sort();
        node_ips.dedup();
        let uplinks = uplinks(&node_ips, links, |ip| match ip {
            IpAddr::V4(ip) => routes
                .iter()
                .filter(|r| r.table == MAIN_TABLE && r.dst.contains(ip))
                .max_by_key(|r| r.dst.prefix_len())
                .and_then(|r| r.oif),
            IpAddr::V6(ip) => routes6
                .iter()
                .filter(|r| r.table == MAIN_TABLE && r.dst.contains(ip))
                .max_by_key(|r| r.dst.prefix_len())
                .and_then(|r| r.oif),
        });
        Self {
            family,
            pod_cidrs,
            node_ips,
            uplinks,
        }
    }
}

/// The main routing table.
const MAIN_TABLE: u32 = 254;

/// The interfaces of the main-table routes to the nodes' addresses (`best_oif`: the output
/// interface of the longest-prefix main-table route to an address); `None` when some address
/// has no such route (then any interface but `lo` may carry node traffic).
fn uplinks(
    node_ips: &[IpAddr],
    links: &[Link],
    best_oif: impl Fn(&IpAddr) -> Option<u32>,
) -> Option<Vec<String>> {
    if node_ips.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for ip in node_ips {
        let oif = best_oif(ip)?;
        let name = &links.iter().find(|l| l.index == oif)?.name;
        if name != "lo" && !out.contains(name) {
            out.push(name.clone());
        }
    }
    Some(out)
}

/// A match, possibly negated with `!`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neg<T> {
    /// `! -s …`
    pub negated: bool,
    /// The value matched.
    pub value: T,
}

/// A protocol as iptables names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// `-p all` (or `0`): no restriction.
    Any,
    /// An IP protocol number.
    Number(u8),
    /// A name netheal does not know: matches none of the flows.
    Unknown,
}

impl Proto {
    /// A protocol by the name iptables or nft gives it, or its number.
    pub fn parse(name: &str) -> Self {
        match name.to_ascii_lowercase().as_str() {
            "all" | "0" => Self::Any,
            "icmp" => Self::Number(1),
            "ipv6-icmp" | "icmpv6" | "icmp6" => Self::Number(58),
            "ipencap" | "ipip" | "ipv4" | "ip-encap" => Self::Number(4),
            "tcp" => Self::Number(6),
            "udp" => Self::Number(17),
            "gre" => Self::Number(47),
            "esp" => Self::Number(50),
            "sctp" => Self::Number(132),
            n => n.parse().map(Self::Number).unwrap_or(Self::Unknown),
        }
    }
}

/// The parts of an iptables rule that decide which packets it matches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Matches {
    /// `-s`
    pub source: Option<Neg<IpNet>>,
    /// `-d`
    pub destination: Option<Neg<IpNet>>,
    /// `-i`
    pub in_interface: Option<Neg<String>>,
    /// `-o`
    pub out_interface: Option<Neg<String>>,
    /// `-p`
    pub protocol: Option<Neg<Proto>>,
    /// `--dport`, `--dports`
    pub destination_ports: Option<Neg<Vec<RangeInclusive<u16>>>>,
    /// `--state`, `--ctstate`
    pub states: Option<Neg<Vec<String>>>,
    /// The first match netheal cannot see through (`-m set`, `--mac-source`, ...), as written;
    /// reading stops there, since its arguments are unknown.
    pub opaque: Option<String>,
}

/// Modules whose options below are all understood (or do not narrow which flows match).
const TRANSPARENT_MODULES: [&str; 10] = [
    "comment",
    "icmp6",
    "tcp",
    "udp",
    "multiport",
    "state",
    "conntrack",
    "icmp",
    "limit",
    "sctp",
];

/// Read the matches of a rule's arguments (as [`super::super::probe::iptables::split_args`]
/// gives them, without `-A CHAIN`). Never fails: what is not understood goes to `opaque`.
pub fn parse_matches(args: &[String]) -> Matches {
    let mut m = Matches::default();
    let mut negated = false;
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        let value = args.get(i + 1).map(String::as_str);
        let take = |i: &mut usize| {
            *i += 1;
            value
        };
        match arg {
            "!" => {
                negated = true;
                i += 1;
                continue;
            }
            "-j" | "--jump" | "-g" | "--goto" => break,
            "-s" | "--source" | "-d" | "--destination" => {
                let net = take(&mut i).and_then(parse_net);
                let slot = if arg == "-s" || arg == "--source" {
                    &mut m.source
                } else {
                    &mut m.destination
                };
                match net {
                    Some(value) => *slot = Some(Neg { negated, value }),
                    None => {
                        m.opaque = Some(format!("{arg} {}", value.unwrap_or("")));
                        break;
                    }
                }
            }
            "-i" | "--in-interface" | "-o" | "--out-interface" => {
                let name = take(&mut i).unwrap_or("").to_string();
                let n = Some(Neg {
                    negated,
                    value: name,
                });
                if arg == "-i" || arg == "--in-interface" {
                    m.in_interface = n;
                } else {
                    m.out_interface = n;
                }
            }
            "-p" | "--protocol" => {
                let value = Proto::parse(take(&mut i).unwrap_or(""));
                m.protocol = Some(Neg { negated, value });
            }
            "-m" | "--match" => {
                let module = take(&mut i).unwrap_or("");
                if !TRANSPARENT_MODULES.contains(&module) {
                    m.opaque = Some(format!("-m {module}"));
                    break;
                }
            }
            "--dport" | "--destination-port" | "--dports" | "--destination-ports" => {
                match take(&mut i).and_then(parse_ports) {
                    Some(value) => m.destination_ports = Some(Neg { negated, value }),
                    None => {
                        m.opaque = Some(format!("{arg} {}", value.unwrap_or("")));
                        break;
                    }
                }
            }
            "--state" | "--ctstate" => {
                let value = take(&mut i)
                    .unwrap_or("")
                    .split(',')
                    .map(|s| s.to_ascii_uppercase())
                    .collect();
                m.states = Some(Neg { negated, value });
            }
            // Options that take one value and do not narrow the flows below.
            "--comment" | "--sport" | "--source-port" | "--sports" | "--source-ports"
            | "--icmp-type" | "--icmpv6-type" | "--limit" | "--limit-burst" => {
                take(&mut i);
            }
            "--syn" => {}
            "--tcp-flags" => {
                take(&mut i);
                i += 1;
            }
            other => {
                m.opaque = Some(other.to_string());
                break;
            }
        }
        negated = false;
        i += 1;
    }
    m
}

fn parse_net(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
        .map(|n| n.trunc())
}

fn parse_ports(text: &str) -> Option<Vec<RangeInclusive<u16>>> {
    text.split(',')
        .map(|p| match p.split_once(':') {
            Some((a, b)) => {
                let a = if a.is_empty() { 0 } else { a.parse().ok()? };
                let b = if b.is_empty() {
                    u16::MAX
                } else {
                    b.parse().ok()?
                };
                Some(a.min(b)..=a.max(b))
            }
            None => p.parse().ok().map(|n| n..=n),
        })
        .collect()
}

/// Addresses a flow's packets may carry.
#[derive(Clone, Debug)]
enum Addrs {
    Any,
    Within(Vec<IpNet>),
}

/// One kind of the cluster's traffic.
#[derive(Clone, Debug)]
struct Flow {
    name: String,
    protocol: Option<u8>,
    port: Option<u16>,
    source: Addrs,
    destination: Addrs,
    /// Interfaces the packets may arrive on / leave by (`None` = any but `lo`).
    interfaces: Option<Vec<String>>,
    /// Counted only for a rule that does not narrow protocol or ports, or that names an
    /// address of this flow.
    whole_network: bool,
}

fn flows(net: &ClusterNetwork) -> Vec<Flow> {
    // IPv4 without Node objects: any address may be the cluster's. IPv6: only the pod ranges and
    // node addresses the Nodes give are (a cluster without them has no IPv6 traffic to drop).
    let unknown = match net.family {
        IpFamily::V4 => Some(Addrs::Any),
        IpFamily::V6 => None,
    };
    let nodes = if net.node_ips.is_empty() {
        unknown.clone()
    } else {
        Some(Addrs::Within(
            net.node_ips.iter().map(|ip| IpNet::from(*ip)).collect(),
        ))
    };
    let pods = if net.pod_cidrs.is_empty() {
        unknown
    } else {
        Some(Addrs::Within(net.pod_cidrs.clone()))
    };
    let mut out = Vec::new();
    if let Some(nodes) = &nodes {
        out.extend(node_flows(net, nodes));
    }
    if let Some(pods) = pods {
        out.extend(pod_flows(net, pods));
    }
    out
}

/// The overlay, kubelet and BGP, and all traffic from or to the nodes.
fn node_flows(net: &ClusterNetwork, nodes: &Addrs) -> Vec<Flow> {
    let uplinks = net.uplinks.clone();
    let service = |name: &str, protocol: u8, port: Option<u16>, from: Addrs| Flow {
        name: name.to_string(),
        protocol: Some(protocol),
        port,
        source: from,
        destination: nodes.clone(),
        interfaces: uplinks.clone(),
        whole_network: false,
    };
    let mut out = vec![
        service("VXLAN overlay (udp/8472)", 17, Some(8472), nodes.clone()),
        service("VXLAN overlay (udp/4789)", 17, Some(4789), nodes.clone()),
        service("IPIP overlay (protocol 4)", 4, None, nodes.clone()),
        service(
            "WireGuard overlay (udp/51820)",
            17,
            Some(51820),
            nodes.clone(),
        ),
        service(
            "WireGuard overlay (udp/51821)",
            17,
            Some(51821),
            nodes.clone(),
        ),
        service("kubelet (tcp/10250)", 6, Some(10250), Addrs::Any),
        service("BGP (tcp/179)", 6, Some(179), nodes.clone()),
    ];
    let name = match &net.node_ips[..] {
        [] => "node traffic".to_string(),
        ips => format!("node traffic ({})", join(ips)),
    };
    for (source, destination) in [(nodes.clone(), Addrs::Any), (Addrs::Any, nodes.clone())] {
        out.push(whole(&name, source, destination, uplinks.clone()));
    }
    out
}

/// All traffic from or to the pod ranges.
fn pod_flows(net: &ClusterNetwork, pods: Addrs) -> Vec<Flow> {
    let interfaces = net.uplinks.clone().map(|mut u| {
        u.extend(POD_INTERFACES.map(String::from));
        u
    });
    let name = match &net.pod_cidrs[..] {
        [] => "pod traffic".to_string(),
        cidrs => format!("pod traffic ({})", join(cidrs)),
    };
    vec![
        whole(&name, pods.clone(), Addrs::Any, interfaces.clone()),
        whole(&name, Addrs::Any, pods, interfaces),
    ]
}

fn whole(name: &str, source: Addrs, destination: Addrs, interfaces: Option<Vec<String>>) -> Flow {
    Flow {
        name: name.to_string(),
        protocol: None,
        port: None,
        source,
        destination,
        interfaces,
        whole_network: true,
    }
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a rule means for the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// It drops these kinds of the cluster's traffic (names for the finding's message).
    Drops(Vec<String>),
    /// It drops none of the cluster's traffic.
    Narrow,
    /// It has a match netheal cannot see through (named).
    Opaque(String),
}

/// Which of the cluster's traffic a rule with these arguments drops.
pub fn scope(args: &[String], net: &ClusterNetwork) -> Scope {
    scope_of(parse_matches(args), net)
}

/// Which of the cluster's traffic a rule with these matches drops (an iptables rule's from
/// [`parse_matches`], an nftables rule's from [`super::reject_nft::matches`]).
pub fn scope_of(m: Matches, net: &ClusterNetwork) -> Scope {
    if let Some(opaque) = m.opaque {
        return Scope::Opaque(opaque);
    }
    let narrows = matches!(
        &m.protocol,
        Some(Neg {
            negated: false,
            value: Proto::Number(_) | Proto::Unknown
        })
    ) || m.destination_ports.as_ref().is_some_and(|p| !p.negated);
    let mut drops: Vec<String> = Vec::new();
    for flow in flows(net) {
        let names_address = [&m.source, &m.destination]
            .into_iter()
            .flatten()
            .any(|n| !n.negated && names(&flow, n.value));
        if flow.whole_network && narrows && !names_address {
            continue;
        }
        if can_match(&m, &flow) && !drops.contains(&flow.name) {
            drops.push(flow.name);
        }
    }
    if drops.is_empty() {
        Scope::Narrow
    } else {
        Scope::Drops(drops)
    }
}

/// Whether `net` overlaps an address set of the flow that is not "any".
fn names(flow: &Flow, net: IpNet) -> bool {
    [&flow.source, &flow.destination]
        .into_iter()
        .any(|a| matches!(a, Addrs::Within(list) if list.iter().any(|n| overlaps(*n, net))))
}

fn overlaps(a: IpNet, b: IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn can_match(m: &Matches, flow: &Flow) -> bool {
    address_can_match(m.source.as_ref(), &flow.source)
        && address_can_match(m.destination.as_ref(), &flow.destination)
        && interface_can_match(m.in_interface.as_ref(), flow.interfaces.as_deref())
        && interface_can_match(m.out_interface.as_ref(), flow.interfaces.as_deref())
        && protocol_can_match(m.protocol.as_ref(), flow.protocol)
        && port_can_match(m.destination_ports.as_ref(), flow.port)
        && state_can_match(m.states.as_ref())
}

fn address_can_match(rule: Option<&Neg<IpNet>>, flow: &Addrs) -> bool {
    match (rule, flow) {
        (None, _) => true,
        // A rule naming addresses of its own does not drop a flow from or to anywhere: an
        // administrator who blocks `203.0.113.0/24` keeps that rule.
        (Some(r), Addrs::Any) => r.negated,
        (Some(r), Addrs::Within(list)) if r.negated => list.iter().any(|n| !r.value.contains(n)),
        (Some(r), Addrs::Within(list)) => list.iter().any(|n| overlaps(*n, r.value)),
    }
}

/// Two iptables interface patterns (a trailing `+` is a prefix) that some name matches both.
fn interfaces_meet(a: &str, b: &str) -> bool {
    match (a.strip_suffix('+'), b.strip_suffix('+')) {
        (None, None) => a == b,
        (Some(p), None) => b.starts_with(p),
        (None, Some(q)) => a.starts_with(q),
        (Some(p), Some(q)) => p.starts_with(q) || q.starts_with(p),
    }
}

/// Whether every name `flow` matches also matches `rule`.
fn interface_covers(rule: &str, flow: &str) -> bool {
    match (rule.strip_suffix('+'), flow.strip_suffix('+')) {
        (None, None) => rule == flow,
        (Some(p), None) => flow.starts_with(p),
        (None, Some(_)) => false,
        (Some(p), Some(q)) => q.starts_with(p),
    }
}

fn interface_can_match(rule: Option<&Neg<String>>, flow: Option<&[String]>) -> bool {
    let Some(rule) = rule else { return true };
    match flow {
        None if rule.negated => true,
        None => !interface_covers("lo", &rule.value) && !interfaces_meet(&rule.value, "lo"),
        Some(list) if rule.negated => list.iter().any(|f| !interface_covers(&rule.value, f)),
        Some(list) => list.iter().any(|f| interfaces_meet(&rule.value, f)),
    }
}

fn protocol_can_match(rule: Option<&Neg<Proto>>, flow: Option<u8>) -> bool {
    match (rule, flow) {
        (None, _) | (_, None) => true,
        (Some(r), Some(p)) => {
            let equal = match r.value {
                Proto::Any => true,
                Proto::Number(n) => n == p,
                Proto::Unknown => false,
            };
            equal != r.negated
        }
    }
}

fn port_can_match(rule: Option<&Neg<Vec<RangeInclusive<u16>>>>, flow: Option<u16>) -> bool {
    match (rule, flow) {
        (None, _) | (_, None) => true,
        (Some(r), Some(p)) => r.value.iter().any(|range| range.contains(&p)) != r.negated,
    }
}

/// A flow has packets in every live state: a rule matching only `INVALID` drops none of them.
fn state_can_match(rule: Option<&Neg<Vec<String>>>) -> bool {
    const LIVE: [&str; 6] = ["NEW", "ESTABLISHED", "RELATED", "UNTRACKED", "DNAT", "SNAT"];
    match rule {
        None => true,
        Some(r) if r.negated => !["NEW", "ESTABLISHED"]
            .iter()
            .all(|s| r.value.iter().any(|v| v == s)),
        Some(r) => r.value.iter().any(|v| LIVE.contains(&v.as_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::iptables::split_args;

    fn net() -> ClusterNetwork {
        ClusterNetwork {
            pod_cidrs: vec![
                "10.244.0.0/24".parse().unwrap(),
                "10.244.1.0/24".parse().unwrap(),
            ],
            node_ips: vec![
                "192.168.50.1".parse().unwrap(),
                "192.168.50.2".parse().unwrap(),
            ],
            uplinks: Some(vec!["eth0".into()]),
            ..Default::default()
        }
    }

    fn of(spec: &str) -> Scope {
        scope(&split_args(spec), &net())
    }

    fn drops(spec: &str) -> Vec<String> {
        match of(spec) {
            Scope::Drops(d) => d,
            other => panic!("{spec}: expected Drops, got {other:?}"),
        }
    }

    #[test]
    fn a_catch_all_reject_drops_everything_the_cluster_sends() {
        let d = drops("-j REJECT --reject-with icmp-host-prohibited");
        for name in [
            "VXLAN overlay (udp/8472)",
            "IPIP overlay (protocol 4)",
            "kubelet (tcp/10250)",
            "BGP (tcp/179)",
            "pod traffic (10.244.0.0/24, 10.244.1.0/24)",
            "node traffic (192.168.50.1, 192.168.50.2)",
        ] {
            assert!(d.iter().any(|n| n == name), "{name} missing from {d:?}");
        }
        // Comments, states including NEW, and a negated protocol do not narrow it.
        assert!(matches!(
            of("-m comment --comment \"firewall\" -m state --state NEW -j REJECT"),
            Scope::Drops(_)
        ));
        assert!(matches!(of("! -p icmp -j REJECT"), Scope::Drops(_)));
        assert!(matches!(of("-i eth0 -j REJECT"), Scope::Drops(_)));
        assert!(matches!(of("-i cni0 -j REJECT"), Scope::Drops(_)));
    }

    #[test]
    fn a_narrow_administrator_rule_drops_nothing_of_the_cluster() {
        for spec in [
            "-p tcp -m tcp --dport 25 -j REJECT",
            "-p tcp -m multiport --dports 25,587 -j REJECT --reject-with tcp-reset",
            "-p icmp -j REJECT",
            "-i lo -j REJECT",
            "-s 203.0.113.0/24 -j REJECT",
            "-d 198.51.100.7/32 -p udp -j REJECT",
            "-i eth1 -j REJECT",
            "-m conntrack --ctstate INVALID -j REJECT",
            "-p udp -m udp --dport 53 -j REJECT",
        ] {
            assert_eq!(of(spec), Scope::Narrow, "{spec}");
        }
    }

    #[test]
    fn rules_on_overlay_kubelet_or_bgp_ports_or_on_cluster_addresses_drop_them() {
        assert_eq!(
            drops("-p udp -m udp --dport 8472 -j REJECT"),
            ["VXLAN overlay (udp/8472)"]
        );
        assert_eq!(
            drops("-p udp -j REJECT"),
            [
                "VXLAN overlay (udp/8472)",
                "VXLAN overlay (udp/4789)",
                "WireGuard overlay (udp/51820)",
                "WireGuard overlay (udp/51821)"
            ]
        );
        assert_eq!(drops("-p ipencap -j REJECT"), ["IPIP overlay (protocol 4)"]);
        assert_eq!(
            drops("-p tcp -m multiport --dports 1:1024 -j REJECT"),
            ["BGP (tcp/179)"]
        );
        assert_eq!(
            drops("-p tcp -m tcp --dport 10250 -j REJECT"),
            ["kubelet (tcp/10250)"]
        );
        // An address of the pod network, even with a port: it names the cluster's traffic.
        assert_eq!(
            drops("-s 10.244.0.0/16 -p tcp -m tcp --dport 22 -j REJECT"),
            ["pod traffic (10.244.0.0/24, 10.244.1.0/24)"]
        );
        assert!(
            drops("-s 192.168.50.2/32 -j REJECT")
                .iter()
                .any(|n| n.starts_with("node traffic"))
        );
        // A source that excludes every node still hits the kubelet (reached from anywhere).
        assert_eq!(
            drops("! -s 192.168.50.0/24 -p tcp -m tcp --dport 10250 -j REJECT"),
            ["kubelet (tcp/10250)"]
        );
        assert_eq!(
            of("! -s 192.168.50.0/24 -p udp -m udp --dport 8472 -j REJECT"),
            Scope::Narrow
        );
    }

    #[test]
    fn matches_it_cannot_see_through_make_a_rule_opaque() {
        assert_eq!(
            of("-m set --match-set blocked src -j REJECT"),
            Scope::Opaque("-m set".into())
        );
        assert!(matches!(
            of("-m mac --mac-source 52:54:00:00:00:01 -j REJECT"),
            Scope::Opaque(_)
        ));
        assert!(matches!(of("-s not-an-ip -j REJECT"), Scope::Opaque(_)));
    }

    #[test]
    fn ipv6_uplinks_come_from_the_ipv6_routes_to_the_nodes() {
        let node: k8s_openapi::api::core::v1::Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1"},
            "spec": {"podCIDRs": ["10.244.1.0/24", "fd00:10:244:1::/64"]},
            "status": {"addresses": [
                {"type": "InternalIP", "address": "192.168.50.1"},
                {"type": "InternalIP", "address": "fd31::1"}]},
        }))
        .unwrap();
        let cluster = ClusterFacts {
            nodes: vec![node],
            ..Default::default()
        };
        let link = |index, name: &str| Link {
            index,
            name: name.into(),
            mac: None,
            mtu: None,
            up: true,
            kind: None,
            master: None,
        };
        let links = [link(1, "lo"), link(2, "eth0"), link(3, "flannel-v6.1")];
        let route6 = |dst: &str, oif| Route6 {
            dst: dst.parse().unwrap(),
            oif: Some(oif),
            table: MAIN_TABLE,
        };
        let routes6 = [route6("fd31::/64", 2), route6("fd00:10:244:2::/64", 3)];
        let net6 = ClusterNetwork::of_family(IpFamily::V6, &cluster, &links, &[], &routes6);
        assert_eq!(net6.node_ips, vec!["fd31::1".parse::<IpAddr>().unwrap()]);
        assert_eq!(net6.uplinks, Some(vec!["eth0".to_string()]));
        // No IPv6 route to a node address: unknown, any interface but lo.
        let unrouted =
            ClusterNetwork::of_family(IpFamily::V6, &cluster, &links, &[], &routes6[1..]);
        assert_eq!(unrouted.uplinks, None);
        // The IPv4 routes do not tell the IPv6 uplinks.
        let v4_only = ClusterNetwork::of_family(IpFamily::V6, &cluster, &links, &[], &[]);
        assert_eq!(v4_only.uplinks, None);
    }

    #[test]
    fn interface_patterns_meet_as_iptables_matches_them() {
        assert!(interfaces_meet("cali+", "caliabc"));
        assert!(interfaces_meet("eth+", "eth0"));
        assert!(!interfaces_meet("eth1", "eth0"));
        assert!(interfaces_meet("c+", "cni+"));
        assert!(interface_covers("cali+", "caliabc"));
        assert!(!interface_covers("cali", "cali+"));
        // Unknown uplinks: any interface but lo may carry the cluster's traffic.
        let unknown = ClusterNetwork {
            uplinks: None,
            ..net()
        };
        assert!(matches!(
            scope(&split_args("-i eth1 -j REJECT"), &unknown),
            Scope::Drops(_)
        ));
        assert_eq!(
            scope(&split_args("-i lo -j REJECT"), &unknown),
            Scope::Narrow
        );
    }

    #[test]
    fn ports_parse_lists_and_ranges_and_refuse_garbage() {
        assert_eq!(parse_ports("25,587"), Some(vec![25..=25, 587..=587]));
        assert_eq!(parse_ports("1024:"), Some(vec![1024..=65535]));
        assert_eq!(parse_ports("9:1"), Some(vec![1..=9]));
        assert_eq!(parse_ports("http"), None);
        assert_eq!(parse_ports("70000"), None);
    }
}
