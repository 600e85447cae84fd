//! `ServiceVipMissing` on a real kernel (seed 001): the cluster DNS Service's cluster IP and
//! ports missing from kube-proxy's rules are reported in the mode kube-proxy is in on the node
//! (iptables `KUBE-SERVICES` rules; nftables `map ip kube-proxy service-ips`), nothing is
//! judged where no kube-proxy mode is found, and nothing once the entries are back. This
//! kernel has no IPVS (`/proc/net/ip_vs`): the IPVS table's parser is tested on the kernel's
//! text in the unit tests only.
#![allow(clippy::unwrap_used)] // test code: a panic is how a test fails

mod common;
use common::*;
use k8s_openapi::api::core::v1::Service;
use netheal_crds::{Check, Finding};
use node_fixer::engine::{self, EngineConfig};

fn kube_dns() -> Service {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system"},
        "spec": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                 "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                           {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                           {"name": "metrics", "port": 9153, "protocol": "TCP"}]}
    }))
    .unwrap()
}

fn vip_findings(config: &EngineConfig) -> Vec<Finding> {
    findings_of(&policy(), config, Check::ServiceVipMissing)
}

const DNS_TARGETS: [&str; 3] = [
    "service kube-system/kube-dns 10.96.0.10:53/TCP",
    "service kube-system/kube-dns 10.96.0.10:53/UDP",
    "service kube-system/kube-dns 10.96.0.10:9153/TCP",
];

#[test]
fn a_dns_vip_missing_from_kube_proxys_iptables_rules_is_reported() {
    let node = netns("nf-svc-ipt");
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&node, "svc", dir.path(), vec![], "n1");
    config.cluster.services = vec![kube_dns()];
    // No kube-proxy on the node: nothing to judge.
    assert!(vip_findings(&config).is_empty());

    // kube-proxy (iptables mode) has programmed the API server's Service only.
    let ipt = |args: &str| exec(&node, &format!("iptables-nft -w -t nat {args}"));
    ipt("-N KUBE-SERVICES");
    ipt("-N KUBE-SVC-API");
    ipt("-N KUBE-SVC-DNS");
    ipt(
        "-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment default/kubernetes:https -m tcp --dport 443 -j KUBE-SVC-API",
    );
    let found = vip_findings(&config);
    assert_eq!(targets(&found), DNS_TARGETS);
    assert_eq!(found[0].observed, "missing from kube-proxy's iptables");
    assert_eq!(found[0].details["modes"], "iptables");
    assert_eq!(found[0].action, None, "report only");

    for (proto, port) in [("udp", 53), ("tcp", 53), ("tcp", 9153)] {
        ipt(&format!(
            "-A KUBE-SERVICES -d 10.96.0.10/32 -p {proto} -m {proto} --dport {port} -j KUBE-SVC-DNS"
        ));
    }
    assert!(vip_findings(&config).is_empty());
}

const KUBE_PROXY_NFT: &str = r#"table ip kube-proxy {
	chain service-api {
	}
	chain service-dns {
	}
	map service-ips {
		type ipv4_addr . inet_proto . inet_service : verdict
		comment "ClusterIP, ExternalIP and LoadBalancer IP traffic"
		elements = { 10.96.0.1 . tcp . 443 comment "default/kubernetes" : goto service-api }
	}
	chain services {
		ip daddr . meta l4proto . th dport vmap @service-ips
	}
}
"#;

#[test]
fn a_dns_vip_missing_from_kube_proxys_nftables_map_is_reported() {
    let node = netns("nf-svc-nft");
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&node, "svc", dir.path(), vec![], "n1");
    config.cluster.services = vec![kube_dns()];
    // A table named kube-proxy without kube-proxy's map is not its nftables mode.
    exec(&node, "nft add table ip kube-proxy");
    assert!(vip_findings(&config).is_empty());
    exec(&node, "nft delete table ip kube-proxy");

    node.exec_with_input("nft", &["-f", "-"], KUBE_PROXY_NFT)
        .unwrap();
    let found = vip_findings(&config);
    assert_eq!(targets(&found), DNS_TARGETS);
    assert_eq!(found[0].observed, "missing from kube-proxy's nftables");

    // The standalone CLI reads the same Service from `kubectl get service -o json` output.
    let services = dir.path().join("kube-dns.json");
    std::fs::write(&services, serde_json::to_string(&kube_dns()).unwrap()).unwrap();
    let out = bin()
        .args(["scan", "--netns", node.name(), "--output", "json"])
        .arg("--services")
        .arg(&services)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("kube-system/kube-dns 10.96.0.10:53/UDP"),
        "{stdout}"
    );

    exec(
        &node,
        "nft add element ip kube-proxy service-ips { 10.96.0.10 . udp . 53 : goto service-dns , 10.96.0.10 . tcp . 53 : goto service-dns , 10.96.0.10 . tcp . 9153 : goto service-dns }",
    );
    assert!(vip_findings(&config).is_empty());
    // This kernel has no IPVS: the table reads as absent, not as an error.
    let (snapshot, errors) = engine::snapshot(&policy(), &config);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(snapshot.host.proxy.nft.as_ref().map(Vec::len), Some(4));
    if !std::path::Path::new("/proc/net/ip_vs").exists() {
        assert_eq!(snapshot.host.proxy.ipvs, None);
    }
}

/// Dual-stack: kube-dns has an IPv6 cluster IP too; kube-proxy programmed its IPv4 side only.
/// The IPv6 VIP is reported from ip6tables' nat `KUBE-SERVICES`, the IPv4 one is not.
#[test]
fn an_ipv6_dns_vip_missing_from_ip6tables_is_reported_on_a_dual_stack_cluster() {
    let node = netns("nf-svc-ip6");
    let dir = tempfile::tempdir().unwrap();
    let nodes = vec![dual_stack_node("n1", "10.244.1.0/24", "fd00:10:244:1::/64")];
    let mut config = config(&node, "svc6", dir.path(), nodes, "n1");
    let mut dns = kube_dns();
    if let Some(spec) = dns.spec.as_mut() {
        spec.cluster_ips = Some(vec!["10.96.0.10".into(), "fd00:10:96::a".into()]);
    }
    config.cluster.services = vec![dns];
    for tool in ["iptables-nft", "ip6tables-nft"] {
        exec(&node, &format!("{tool} -w -t nat -N KUBE-SERVICES"));
        exec(&node, &format!("{tool} -w -t nat -N KUBE-SVC-DNS"));
    }
    for (proto, port) in [("udp", 53), ("tcp", 53), ("tcp", 9153)] {
        exec(
            &node,
            &format!(
                "iptables-nft -w -t nat -A KUBE-SERVICES -d 10.96.0.10/32 -p {proto} -m {proto} --dport {port} -j KUBE-SVC-DNS"
            ),
        );
    }
    exec(
        &node,
        "ip6tables-nft -w -t nat -A KUBE-SERVICES -d fd00:10:96::1/128 -p tcp -m tcp --dport 443 -j KUBE-SVC-DNS",
    );
    let found = vip_findings(&config);
    assert_eq!(
        targets(&found),
        [
            "service kube-system/kube-dns [fd00:10:96::a]:53/TCP",
            "service kube-system/kube-dns [fd00:10:96::a]:53/UDP",
            "service kube-system/kube-dns [fd00:10:96::a]:9153/TCP",
        ]
    );
    assert_eq!(found[0].details["clusterIP"], "fd00:10:96::a");
    for (proto, port) in [("udp", 53), ("tcp", 53), ("tcp", 9153)] {
        exec(
            &node,
            &format!(
                "ip6tables-nft -w -t nat -A KUBE-SERVICES -d fd00:10:96::a/128 -p {proto} -m {proto} --dport {port} -j KUBE-SVC-DNS"
            ),
        );
    }
    assert!(vip_findings(&config).is_empty());
    // A single-stack IPv4 cluster does not read ip6tables: the IPv6 VIP is not judged.
    exec(&node, "ip6tables-nft -w -t nat -F KUBE-SERVICES");
    let mut v4_only = config.clone();
    v4_only.cluster.nodes = vec![];
    assert!(vip_findings(&v4_only).is_empty());
}
