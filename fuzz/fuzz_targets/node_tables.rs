//! The node's own tables, as node-fixer reads them: flannel's lease file (`subnet.env`), the
//! kernel's IPVS table (`/proc/net/ip_vs`) and kube-proxy's `service-ips` map (`nft -j list
//! map`). The same bytes go to each parser, then through the checks that read them
//! (`BridgeSubnetMismatch`, `ServiceVipMissing`): an error is fine, a panic is not.
#![no_main]

use k8s_openapi::api::core::v1::Service;
use libfuzzer_sys::fuzz_target;
use netheal_crds::NetworkHealthPolicySpec;
use node_fixer::checks::{Input, bridge_subnet, service_vip};
use node_fixer::engine::ClusterFacts;
use node_fixer::probe::{ipvs, nft};
use node_fixer::snapshot::{FileText, Link, NodeFiles, Snapshot};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut snapshot = Snapshot {
        node: NodeFiles {
            kernel_release: Some(text.lines().next().unwrap_or_default().to_string()),
            flannel_lease: Some(FileText {
                path: "/run/flannel/subnet.env".into(),
                text: text.to_string(),
            }),
        },
        ..Snapshot::default()
    };
    snapshot.host.links.push(Link {
        index: 2,
        name: "kube-ipvs0".into(),
        mac: None,
        mtu: Some(1500),
        up: true,
        kind: Some("dummy".into()),
        master: None,
    });
    snapshot.host.proxy.ipvs = ipvs::parse(text).ok();
    snapshot.host.proxy.nft = nft::parse_service_ips(text).ok();
    let _ = bridge_subnet::parse_lease(text);
    let dns: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "kube-dns", "namespace": "kube-system"},
        "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 53, "protocol": "UDP"}]}
    }))
    .unwrap_or_default();
    let policy = NetworkHealthPolicySpec::default();
    let cluster = ClusterFacts {
        services: vec![dns],
        ..ClusterFacts::default()
    };
    let input = Input {
        snapshot: &snapshot,
        policy: &policy,
        cluster: &cluster,
    };
    for finding in bridge_subnet::check(&input)
        .into_iter()
        .chain(service_vip::check(&input))
    {
        assert_eq!(
            finding.id,
            netheal_crds::finding_id(finding.check, &finding.target)
        );
    }
});
