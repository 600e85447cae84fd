//! Sysctl values as the kernel (or a hostile file under a fake `/proc/sys`) gives them, one
//! `key=value` per line, in the host and in one pod namespace: every check reads them and
//! none panics; each finding's id is derived from its check and target.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netheal_crds::NetworkHealthPolicySpec;
use node_fixer::checks::{Input, run_all};
use node_fixer::engine::ClusterFacts;
use node_fixer::snapshot::{NsSnapshot, PodSnapshot, Snapshot, Sysctls};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let sysctls: Sysctls = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let snapshot = Snapshot {
        host: NsSnapshot {
            sysctls: sysctls.clone(),
            ..NsSnapshot::default()
        },
        pods: vec![PodSnapshot {
            name: "cni-fuzz".into(),
            sysctls,
        }],
        ..Snapshot::default()
    };
    let policy = NetworkHealthPolicySpec::default();
    let cluster = ClusterFacts::default();
    for finding in run_all(&Input {
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
