//! `nft -j list ruleset` output, as node-fixer reads it: the parser, then the `RejectRule`
//! check over every rule (chains searched, matches read, verdict, the rule rendered).
#![no_main]

use libfuzzer_sys::fuzz_target;
use netheal_crds::NetworkHealthPolicySpec;
use node_fixer::checks::reject_nft::{render, searched_chains, verdict};
use node_fixer::checks::reject_scope::ClusterNetwork;
use node_fixer::checks::{Input, reject};
use node_fixer::engine::ClusterFacts;
use node_fixer::probe::nft::parse_ruleset;
use node_fixer::snapshot::{IpFamily, NsSnapshot, Snapshot};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(ruleset) = parse_ruleset(text) else {
        return;
    };
    let net = ClusterNetwork {
        pod_cidrs: vec![ipnet::IpNet::V4(
            ipnet::Ipv4Net::new([10, 244, 0, 0].into(), 16).unwrap_or_default(),
        )],
        node_ips: vec![std::net::IpAddr::from([192, 168, 50, 1])],
        uplinks: Some(vec!["eth0".into()]),
        ..Default::default()
    };
    // Dual-stack: every rule is also read for IPv6.
    let net6 = ClusterNetwork {
        family: IpFamily::V6,
        pod_cidrs: vec![ipnet::IpNet::V6(
            ipnet::Ipv6Net::new([0xfd00, 0x10, 0x244, 0, 0, 0, 0, 0].into(), 56)
                .unwrap_or_default(),
        )],
        ..Default::default()
    };
    let nets = [net, net6];
    let policy = NetworkHealthPolicySpec::default();
    let searched = searched_chains(&ruleset, &policy.checks.reject_rules);
    for rule in &ruleset.rules {
        let _ = verdict(rule, &searched, &policy.checks.reject_rules, &nets);
        let _ = render(rule);
    }
    let snapshot = Snapshot {
        host: NsSnapshot {
            nftables: Some(ruleset),
            ..NsSnapshot::default()
        },
        pods: Vec::new(),
        ..Snapshot::default()
    };
    let cluster = ClusterFacts::default();
    for finding in reject::check(&Input {
        snapshot: &snapshot,
        policy: &policy,
        cluster: &cluster,
    }) {
        assert_eq!(
            finding.id,
            netheal_crds::finding_id(finding.check, &finding.target)
        );
    }
});
