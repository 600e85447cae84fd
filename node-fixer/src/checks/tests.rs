//! The checks on hand-built snapshots.

use super::{Input, run_all};
use crate::engine::{ClusterFacts, default_policy};
use crate::snapshot::{
    Backend, FdbEntry, Iptables, Link, Mac, NUD_FAILED, NUD_PERMANENT, Neighbour, PodSnapshot,
    Route, Rule, Snapshot,
};
use k8s_openapi::api::core::v1::Node;
use netheal_crds::{Check, Finding, NetworkHealthPolicySpec};

fn mac(s: &str) -> Mac {
    Mac::parse(s).unwrap()
}

fn node(name: &str, cidr: &str, vtep: &str, ip: &str) -> Node {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "annotations": {
            "flannel.alpha.coreos.com/backend-data": format!("{{\"VNI\":1,\"VtepMAC\":\"{vtep}\"}}"),
            "flannel.alpha.coreos.com/public-ip": ip}},
        "spec": {"podCIDR": cidr}
    }))
    .unwrap()
}

fn base() -> Snapshot {
    let mut s = Snapshot::default();
    s.host.links = vec![
        Link {
            index: 1,
            name: "lo".into(),
            mac: None,
            mtu: Some(1500),
            up: true,
            kind: None,
            master: None,
        },
        Link {
            index: 2,
            name: "eth0".into(),
            mac: None,
            mtu: Some(1500),
            up: true,
            kind: None,
            master: None,
        },
        Link {
            index: 3,
            name: "flannel.1".into(),
            mac: Some(mac("02:00:00:00:00:01")),
            mtu: Some(1450),
            up: true,
            kind: None,
            master: None,
        },
        Link {
            index: 4,
            name: "cali1".into(),
            mac: None,
            mtu: Some(1500),
            up: true,
            kind: None,
            master: None,
        },
        Link {
            index: 5,
            name: "cali2".into(),
            mac: None,
            mtu: Some(1500),
            up: true,
            kind: None,
            master: None,
        },
    ];
    for (k, v) in [
        ("net/ipv4/ip_forward", "1"),
        ("net/ipv4/conf/all/forwarding", "1"),
        ("net/ipv4/conf/all/arp_ignore", "0"),
        ("net/ipv4/conf/default/arp_ignore", "0"),
        ("net/ipv4/conf/eth0/arp_ignore", "0"),
        ("net/ipv4/conf/cali1/arp_ignore", "0"),
        ("net/ipv4/conf/cali1/proxy_arp", "1"),
        ("net/ipv4/conf/flannel.1/arp_ignore", "0"),
        ("net/ipv4/conf/flannel.1/rp_filter", "0"),
    ] {
        s.host.sysctls.insert(k.into(), v.into());
    }
    s.host.routes = vec![
        Route {
            dst: "10.244.2.0/24".parse().unwrap(),
            oif: Some(3),
            gateway: None,
            table: 254,
        },
        Route {
            dst: "10.244.1.5/32".parse().unwrap(),
            oif: Some(4),
            gateway: None,
            table: 254,
        },
        Route {
            dst: "0.0.0.0/0".parse().unwrap(),
            oif: Some(2),
            gateway: None,
            table: 254,
        },
    ];
    s.host.neighbours = vec![Neighbour {
        ip: "10.244.2.0".parse().unwrap(),
        ifindex: 3,
        lladdr: Some(mac("02:00:00:00:00:02")),
        state: NUD_PERMANENT,
    }];
    s.host.fdb = vec![FdbEntry {
        mac: mac("02:00:00:00:00:02"),
        ifindex: 3,
        dst: "192.168.0.2".parse().unwrap(),
        state: 0xC0,
    }];
    s.host.iptables = Some(Iptables {
        backend: Backend::Nft,
        rules: vec![],
    });
    s
}

fn cluster() -> ClusterFacts {
    ClusterFacts {
        this_node: Some("a".into()),
        nodes: vec![
            node("a", "10.244.1.0/24", "02:00:00:00:00:01", "192.168.0.1"),
            node("b", "10.244.2.0/24", "02:00:00:00:00:02", "192.168.0.2"),
        ],
        services: Vec::new(),
        calico_blocks: Vec::new(),
    }
}

fn run(s: &Snapshot, policy: &NetworkHealthPolicySpec, c: &ClusterFacts) -> Vec<Finding> {
    run_all(&Input {
        snapshot: s,
        policy,
        cluster: c,
    })
    .to_vec()
}

fn targets(f: &[Finding]) -> Vec<&str> {
    f.iter().map(|f| f.target.as_str()).collect()
}

#[test]
fn healthy_snapshot_has_no_findings() {
    assert!(run(&base(), &default_policy(), &cluster()).is_empty());
}

#[test]
fn arp_ignore_takes_the_max_and_reports_the_keys_to_lower() {
    let mut s = base();
    s.host
        .sysctls
        .insert("net/ipv4/conf/cali1/arp_ignore".into(), "2".into());
    s.host
        .sysctls
        .insert("net/ipv4/conf/eth0/arp_ignore".into(), "2".into()); // the uplink
    s.host
        .sysctls
        .insert("net/ipv4/conf/eth9/arp_ignore".into(), "2".into()); // neither
    s.pods.push(PodSnapshot {
        name: "cni-1".into(),
        sysctls: [
            ("net/ipv4/conf/default/arp_ignore", "2"),
            ("net/ipv4/conf/lo/arp_ignore", "2"),
            ("net/ipv4/conf/eth0/arp_ignore", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    });
    let f = run(&s, &default_policy(), &cluster());
    assert_eq!(
        targets(&f),
        [
            "net.ipv4.conf.cali1.arp_ignore",
            "net.ipv4.conf.eth0.arp_ignore",
            "netns cni-1 net.ipv4.conf.default.arp_ignore",
            "netns cni-1 net.ipv4.conf.eth0.arp_ignore",
        ]
    );
    assert_eq!(f[0].details["sysctl"], "net/ipv4/conf/cali1/arp_ignore");
    assert_eq!(f[0].details["netns"], "");
    // A desired value of 1 accepts 1.
    let mut p = default_policy();
    p.checks.arp_ignore.desired = 1;
    p.checks.arp_ignore.pod_namespaces = false;
    assert_eq!(
        targets(&run(&s, &p, &cluster())),
        [
            "net.ipv4.conf.cali1.arp_ignore",
            "net.ipv4.conf.eth0.arp_ignore"
        ]
    );
    p.checks.arp_ignore.enabled = false;
    assert!(run(&s, &p, &cluster()).is_empty());
}

#[test]
fn ip_forward_and_conf_all_forwarding_are_one_finding() {
    let mut s = base();
    s.host
        .sysctls
        .insert("net/ipv4/ip_forward".into(), "0".into());
    s.host
        .sysctls
        .insert("net/ipv4/conf/all/forwarding".into(), "0".into());
    let f = run(&s, &default_policy(), &cluster());
    assert_eq!(targets(&f), ["net.ipv4.ip_forward"]);
    assert_eq!(f[0].check, Check::IpForward);
    assert_eq!((f[0].observed.as_str(), f[0].desired.as_str()), ("0", "1"));

    // Only the alias read as off (they are one variable; a torn read): still the one finding.
    s.host
        .sysctls
        .insert("net/ipv4/ip_forward".into(), "1".into());
    let f = run(&s, &default_policy(), &cluster());
    assert_eq!(targets(&f), ["net.ipv4.ip_forward"]);
    assert_eq!(f[0].observed, "1 (net.ipv4.conf.all.forwarding=0)");
}

#[test]
fn an_interface_switch_is_a_finding_only_while_the_node_forwards_and_only_for_the_cluster() {
    let mut s = base();
    for (key, value) in [
        ("net/ipv4/ip_forward", "0"),
        ("net/ipv4/conf/all/forwarding", "0"),
        ("net/ipv4/conf/default/forwarding", "0"),
        ("net/ipv4/conf/cni0/forwarding", "0"),
        ("net/ipv4/conf/eth9/forwarding", "0"),
    ] {
        s.host.sysctls.insert(key.into(), value.into());
    }
    // Off globally: one finding (the fix turns every interface's switch on with it).
    let f = run(&s, &default_policy(), &cluster());
    let forwarding: Vec<&str> = f
        .iter()
        .filter(|f| f.check == Check::IpForward)
        .map(|f| f.target.as_str())
        .collect();
    assert_eq!(forwarding, ["net.ipv4.ip_forward"]);
    // On globally: default and cni0 are the cluster's; eth9 is the administrator's.
    s.host
        .sysctls
        .insert("net/ipv4/ip_forward".into(), "1".into());
    s.host
        .sysctls
        .insert("net/ipv4/conf/all/forwarding".into(), "1".into());
    let f = run(&s, &default_policy(), &cluster());
    let forwarding: Vec<(&str, &str)> = f
        .iter()
        .filter(|f| f.check == Check::IpForward)
        .map(|f| (f.target.as_str(), f.details["sysctl"].as_str()))
        .collect();
    assert_eq!(
        forwarding,
        [
            (
                "net.ipv4.conf.cni0.forwarding",
                "net/ipv4/conf/cni0/forwarding"
            ),
            (
                "net.ipv4.conf.default.forwarding",
                "net/ipv4/conf/default/forwarding"
            ),
        ]
    );
}

#[test]
fn calico_neighbours_follow_the_host_route() {
    let mut s = base();
    for (ip, ifindex) in [("10.244.1.5", 4), ("10.244.1.5", 5), ("10.244.1.9", 4)] {
        s.host.neighbours.push(Neighbour {
            ip: ip.parse().unwrap(),
            ifindex,
            lladdr: Some(mac("02:00:00:00:01:05")),
            state: NUD_PERMANENT,
        });
    }
    // A non-permanent entry is never a candidate.
    s.host.neighbours.push(Neighbour {
        ip: "10.244.1.7".parse().unwrap(),
        ifindex: 5,
        lladdr: None,
        state: NUD_FAILED,
    });
    let f = run(&s, &default_policy(), &cluster());
    assert_eq!(
        targets(&f),
        ["neigh 10.244.1.5 dev cali2", "neigh 10.244.1.9 dev cali1"]
    );
    assert!(f[1].message.as_deref().unwrap().contains("no route"));
    // Interfaces outside the policy's patterns are never audited.
    let mut p = default_policy();
    p.checks.stale_neighbours.interfaces = vec!["flannel.1".into()];
    assert!(run(&s, &p, &cluster()).is_empty());
}

#[test]
fn vtep_entries_are_compared_with_the_node_objects() {
    let mut s = base();
    s.host.neighbours[0].lladdr = Some(mac("02:00:00:00:00:99"));
    s.host.fdb.push(FdbEntry {
        mac: mac("02:00:00:00:00:99"),
        ifindex: 3,
        dst: "192.168.0.2".parse().unwrap(),
        state: NUD_PERMANENT,
    });
    let f = run(&s, &default_policy(), &cluster());
    assert_eq!(
        targets(&f),
        [
            "fdb 02:00:00:00:00:99 dev flannel.1 dst 192.168.0.2",
            "neigh 10.244.2.0 dev flannel.1"
        ]
    );
    assert_eq!(f[0].details["kind"], "fdb");
    // Without Node objects there is no truth: nothing is reported for the VTEP.
    assert!(run(&s, &default_policy(), &ClusterFacts::default()).is_empty());
}

#[test]
fn overlay_gaps_are_reported_per_peer() {
    let mut s = base();
    s.host.neighbours[0].state = NUD_FAILED;
    s.host.fdb.clear();
    s.host.routes.remove(0);
    let f = run(&s, &default_policy(), &cluster());
    let checks: Vec<_> = f.iter().map(|f| (f.check, f.target.as_str())).collect();
    assert_eq!(
        checks,
        [
            (
                Check::VtepMissing,
                "fdb 02:00:00:00:00:02 dev flannel.1 dst 192.168.0.2"
            ),
            (Check::VtepMissing, "neigh 10.244.2.0 dev flannel.1"),
            (Check::PeerRouteMissing, "route 10.244.2.0/24"),
        ]
    );
    assert_eq!(f[1].observed, "FAILED");
    let mut p = default_policy();
    p.checks.overlay.enabled = false;
    assert!(run(&s, &p, &cluster()).is_empty());
}

#[test]
fn calico_blocks_of_live_peers_need_a_route_in_their_family() {
    use crate::checks::calico_blocks::CalicoBlock;
    use crate::snapshot::Route6;
    let block = |node: &str, cidr: &str| CalicoBlock {
        name: format!("{node}-{cidr}"),
        node: node.into(),
        cidr: cidr.parse().unwrap(),
    };
    let mut c = cluster();
    c.calico_blocks = vec![
        block("a", "10.40.1.0/26"),      // this node's own block
        block("b", "10.40.2.0/26"),      // routed below
        block("b", "10.40.2.64/26"),     // not routed
        block("b", "fd00:40:2::/122"),   // IPv6, not routed
        block("b", "fd00:40:2::40/122"), // IPv6, routed by a covering /64
        block("gone", "10.40.9.0/26"),   // no Node object
    ];
    let mut s = base();
    s.host.routes.push(Route {
        dst: "10.40.2.0/26".parse().unwrap(),
        oif: Some(2),
        gateway: Some("192.168.0.2".parse().unwrap()),
        table: 254,
    });
    s.host.routes6.push(Route6 {
        dst: "fd00:40:2::40/122".parse().unwrap(),
        oif: Some(2),
        table: 254,
    });
    let f = run(&s, &default_policy(), &c);
    let routes: Vec<&str> = f
        .iter()
        .filter(|f| f.check == Check::PeerRouteMissing)
        .map(|f| f.target.as_str())
        .collect();
    // The Node's podCIDR (10.244.2.0/24, routed or not) is not Calico's business.
    assert_eq!(routes, ["route 10.40.2.64/26", "route fd00:40:2::/122"]);
}

#[test]
fn without_block_affinities_a_peers_calico_tunnel_address_must_be_routed() {
    let mut c = cluster();
    c.nodes[1]
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(
            "projectcalico.org/IPv4IPIPTunnelAddr".into(),
            "10.40.7.1".into(),
        );
    let mut s = base();
    s.host.routes.clear();
    let routes = |s: &Snapshot| -> Vec<String> {
        run(s, &default_policy(), &c)
            .iter()
            .filter(|f| f.check == Check::PeerRouteMissing)
            .map(|f| f.target.clone())
            .collect()
    };
    // Not the podCIDR (Calico IPAM), the tunnel address.
    assert_eq!(routes(&s), ["route 10.40.7.1/32"]);
    s.host.routes.push(Route {
        dst: "10.40.7.0/26".parse().unwrap(),
        oif: Some(2),
        gateway: Some("192.168.0.2".parse().unwrap()),
        table: 254,
    });
    assert!(routes(&s).is_empty());
}

/// A dual-stack cluster: the Nodes of [`cluster`] with IPv6 pod ranges beside their IPv4 ones.
fn dual_stack_cluster() -> ClusterFacts {
    let mut c = cluster();
    for (node, v6) in c
        .nodes
        .iter_mut()
        .zip(["fd00:10:244:1::/64", "fd00:10:244:2::/64"])
    {
        let spec = node.spec.get_or_insert_with(Default::default);
        let v4 = spec.pod_cidr.clone().unwrap_or_default();
        spec.pod_cidrs = Some(vec![v4, v6.to_string()]);
    }
    c
}

#[test]
fn ip6tables_rejects_are_judged_only_on_clusters_with_ipv6_pods() {
    let mut s = base();
    let rule = |chain: &str, spec: &str| Rule {
        table: "filter".into(),
        chain: chain.into(),
        spec: spec.into(),
    };
    s.host.ip6tables = Some(Iptables {
        backend: Backend::Nft,
        rules: vec![
            rule("FORWARD", "-j REJECT --reject-with icmp6-adm-prohibited"),
            // The IPv4 rule's text in ip6tables: a rule of its own.
            rule("INPUT", "-j REJECT --reject-with icmp6-adm-prohibited"),
            // An administrator's rule of other addresses, a narrow rule, kube-proxy's own.
            rule("INPUT", "-s 2001:db8::/32 -j REJECT"),
            rule("INPUT", "-p tcp -m tcp --dport 25 -j REJECT"),
            rule("FORWARD", "-s fd00:10:244:2::/64 -p ipv6-icmp -j REJECT"),
            rule("KUBE-FORWARD", "-j REJECT"),
            rule(
                "FORWARD",
                "-m comment --comment \"kubernetes forwarding rules\" -j REJECT",
            ),
        ],
    });
    s.host.iptables = Some(Iptables {
        backend: Backend::Nft,
        rules: vec![rule(
            "INPUT",
            "-j REJECT --reject-with icmp-host-prohibited",
        )],
    });
    let rejects = |f: Vec<Finding>| -> Vec<Finding> {
        f.into_iter()
            .filter(|f| f.check == Check::RejectRule)
            .collect()
    };
    let f = rejects(run(&s, &default_policy(), &dual_stack_cluster()));
    assert_eq!(
        targets(&f),
        [
            "filter INPUT -j REJECT --reject-with icmp-host-prohibited",
            "ip6 filter FORWARD -j REJECT --reject-with icmp6-adm-prohibited",
            "ip6 filter FORWARD -s fd00:10:244:2::/64 -p ipv6-icmp -j REJECT",
            "ip6 filter INPUT -j REJECT --reject-with icmp6-adm-prohibited",
        ]
    );
    assert_eq!(f[1].details["family"], "ip6");
    assert!(
        !f[0].details.contains_key("family"),
        "IPv4 orders as before"
    );
    assert_eq!(f[1].observed, "present (ip6tables-nft)");
    assert!(
        f[1].details["drops"].contains("pod traffic (fd00:10:244:1::/64, fd00:10:244:2::/64)"),
        "{}",
        f[1].details["drops"]
    );
    assert!(
        !f[1].details["drops"].contains("overlay"),
        "the Nodes have no IPv6 addresses: no IPv6 overlay or node flows"
    );
    assert_ne!(f[0].id, f[3].id);
    // A single-stack IPv4 cluster has no IPv6 traffic of its own: its ip6tables rules stay.
    let f = rejects(run(&s, &default_policy(), &cluster()));
    assert_eq!(
        targets(&f),
        ["filter INPUT -j REJECT --reject-with icmp-host-prohibited"]
    );
}

#[test]
fn reject_and_report_only_rules() {
    let mut s = base();
    let rule = |table: &str, chain: &str, spec: &str| Rule {
        table: table.into(),
        chain: chain.into(),
        spec: spec.into(),
    };
    s.host.iptables = Some(Iptables {
        backend: Backend::Legacy,
        rules: vec![
            rule(
                "filter",
                "INPUT",
                "-j REJECT --reject-with icmp-host-prohibited",
            ),
            rule("filter", "KUBE-SERVICES", "-j REJECT"),
            rule(
                "filter",
                "FORWARD",
                "-m comment --comment \"cali:x\" -j REJECT",
            ),
            rule(
                "nat",
                "POSTROUTING",
                "-s 10.244.0.0/16 ! -o docker0 -j MASQUERADE",
            ),
            rule(
                "nat",
                "POSTROUTING",
                "-s 10.244.0.0/16 ! -d 10.244.0.0/16 -j MASQUERADE",
            ),
        ],
    });
    s.host
        .sysctls
        .insert("net/ipv4/conf/cali1/proxy_arp".into(), "0".into());
    s.host
        .sysctls
        .insert("net/ipv4/conf/flannel.1/rp_filter".into(), "1".into());
    let f = run(&s, &default_policy(), &cluster());
    let checks: Vec<_> = f
        .iter()
        .map(|f| (f.check, f.target.as_str(), f.action.is_some()))
        .collect();
    assert_eq!(
        checks,
        [
            (
                Check::RejectRule,
                "filter INPUT -j REJECT --reject-with icmp-host-prohibited",
                true
            ),
            (Check::ProxyArpOff, "net.ipv4.conf.cali1.proxy_arp", false),
            (
                Check::Masquerade,
                "nat POSTROUTING -s 10.244.0.0/16 ! -o docker0 -j MASQUERADE",
                false
            ),
            (Check::RpFilter, "net.ipv4.conf.flannel.1.rp_filter", false),
        ]
    );
    assert_eq!(f[0].details["backend"], "legacy");
}

#[test]
fn an_overlay_device_too_large_for_the_uplink_is_reported() {
    // flannel.1 at 1450 fits an uplink of 1500; the uplink shrinks to 1450.
    let mut s = base();
    s.host.links[1].mtu = Some(1450);
    let f = run(&s, &default_policy(), &cluster());
    assert_eq!(targets(&f), ["mtu flannel.1"]);
    assert_eq!(f[0].check, Check::Mtu);
    assert_eq!(
        (f[0].observed.as_str(), f[0].desired.as_str()),
        ("1450", "<= 1400")
    );
    assert_eq!(f[0].action, None, "report only");
    assert_eq!(f[0].details["uplink"], "eth0");
    // A device that is down carries nothing (Calico's tunl0 without IPIP).
    s.host.links[2].up = false;
    assert!(run(&s, &default_policy(), &cluster()).is_empty());
    s.host.links[2].up = true;
    // Switched off by the policy.
    let mut p = default_policy();
    p.checks.mtu.enabled = false;
    assert!(run(&s, &p, &cluster()).is_empty());
    // No default route: no uplink to compare with.
    s.host.routes.retain(|r| r.dst.prefix_len() != 0);
    assert!(run(&s, &default_policy(), &cluster()).is_empty());
}
