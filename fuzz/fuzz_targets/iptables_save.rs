//! `iptables-save` output, as node-fixer reads it from either backend: the parser, the
//! argument splitter (with the property that joining and splitting again gives the same
//! arguments), and the `RejectRule` check with its scope over every rule.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netheal_crds::NetworkHealthPolicySpec;
use node_fixer::checks::reject_scope::{ClusterNetwork, scope};
use node_fixer::checks::{Input, reject};
use node_fixer::engine::ClusterFacts;
use node_fixer::probe::iptables::{join_args, parse_save, split_args};
use node_fixer::snapshot::{Backend, Iptables, NsSnapshot, Snapshot};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let rules = parse_save(text);
    let net = ClusterNetwork {
        pod_cidrs: vec![ipnet::IpNet::V4(
            ipnet::Ipv4Net::new([10, 244, 0, 0].into(), 16).unwrap_or_default(),
        )],
        node_ips: vec![std::net::IpAddr::from([192, 168, 50, 1])],
        uplinks: Some(vec!["eth0".into()]),
        ..Default::default()
    };
    for rule in &rules {
        let args = split_args(&rule.spec);
        assert_eq!(
            split_args(&join_args(&args)),
            args,
            "join then split: {:?}",
            rule.spec
        );
        let _ = scope(&args, &net);
    }
    let mut policy = NetworkHealthPolicySpec::default();
    policy.checks.reject_rules.follow_jumps = true;
    let snapshot = Snapshot {
        host: NsSnapshot {
            iptables: Some(Iptables {
                backend: Backend::Nft,
                rules,
            }),
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
