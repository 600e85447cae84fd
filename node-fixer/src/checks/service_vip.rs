//! `ServiceVipMissing` (report only; seed 001): a Service the node must reach (the cluster DNS,
//! `kube-system/kube-dns`) has a cluster IP and port that kube-proxy has not programmed on this
//! node, so every lookup from its pods times out while pod IPs still answer.
//!
//! kube-proxy's mode is read off the node, never assumed: IPVS when the `kube-ipvs0` device
//! exists (the table is `/proc/net/ip_vs`; its `KUBE-SERVICES` rules match ipsets and are not
//! read then), else nftables when `table ip kube-proxy` has its map `service-ips`, and iptables
//! when the nat table has `KUBE-SERVICES` rules (`-d VIP/32 -p PROTO --dport PORT`). A port is
//! present when any mode found holds it (a mode being switched leaves the old one's remains
//! until kube-proxy cleans them); with no mode found (no kube-proxy, or a CNI that replaces it)
//! nothing is judged. On a dual-stack cluster a Service's IPv6 cluster IP is judged against
//! the IPv6 side of the same modes: the IPVS table (it holds both families), `table ip6
//! kube-proxy`, ip6tables' nat `KUBE-SERVICES`; an IPv6 IP is not judged where no IPv6 side was
//! read.

use super::{Input, details, finding};
use crate::probe::iptables::split_args;
use crate::snapshot::Iptables;
use crate::snapshot::ServiceKey;
use k8s_openapi::api::core::v1::Service;
use netheal_crds::{Check, Finding};
use std::collections::BTreeSet;
use std::net::IpAddr;

/// The dummy device kube-proxy's IPVS mode binds every Service IP to.
pub const IPVS_DEVICE: &str = "kube-ipvs0";

/// A kube-proxy mode found on the node: its name, whether it covers IPv6 Service IPs (and
/// IPv4 ones), and the Service keys it holds.
pub struct ProxyMode {
    /// `IPVS`, `nftables` or `iptables`.
    pub name: &'static str,
    /// It was read for IPv4 Service IPs.
    pub ipv4: bool,
    /// It was read for IPv6 Service IPs.
    pub ipv6: bool,
    /// What it holds.
    pub keys: BTreeSet<ServiceKey>,
}

impl ProxyMode {
    /// Whether this mode was read for the family of `addr`.
    pub fn covers(&self, addr: &IpAddr) -> bool {
        if addr.is_ipv4() { self.ipv4 } else { self.ipv6 }
    }
}

/// Each kube-proxy mode found on the node (one entry per mode, both families merged).
pub fn proxy_modes(input: &Input<'_>) -> Vec<ProxyMode> {
    let host = &input.snapshot.host;
    if host.link_by_name(IPVS_DEVICE).is_some()
        && let Some(keys) = &host.proxy.ipvs
    {
        // IPVS mode's own KUBE-SERVICES rules match ipsets, not Service IPs: IPVS alone.
        return vec![ProxyMode {
            name: "IPVS",
            ipv4: true,
            ipv6: true,
            keys: keys.iter().cloned().collect(),
        }];
    }
    let mut modes = Vec::new();
    let (nft, nft6) = (&host.proxy.nft, &host.proxy.nft6);
    if nft.is_some() || nft6.is_some() {
        modes.push(ProxyMode {
            name: "nftables",
            ipv4: nft.is_some(),
            ipv6: nft6.is_some(),
            keys: nft.iter().chain(nft6).flatten().cloned().collect(),
        });
    }
    let (v4, v6) = (
        host.iptables.as_ref().and_then(services_chain),
        host.ip6tables.as_ref().and_then(services_chain),
    );
    if v4.is_some() || v6.is_some() {
        modes.push(ProxyMode {
            name: "iptables",
            ipv4: v4.is_some(),
            ipv6: v6.is_some(),
            keys: v4.into_iter().chain(v6).flatten().collect(),
        });
    }
    modes
}

/// The keys of nat `KUBE-SERVICES`, when it has rules.
fn services_chain(ipt: &Iptables) -> Option<BTreeSet<ServiceKey>> {
    let mut rules = ipt
        .rules
        .iter()
        .filter(|r| r.table == "nat" && r.chain == "KUBE-SERVICES")
        .peekable();
    rules.peek()?;
    Some(rules.filter_map(|r| iptables_key(&r.spec)).collect())
}

/// The key of a `KUBE-SERVICES` rule (`-d 10.96.0.10/32 -p udp ... --dport 53 -j KUBE-SVC-…`).
pub fn iptables_key(spec: &str) -> Option<ServiceKey> {
    let args = split_args(spec);
    let value = |flag: &str| {
        args.windows(2)
            .find(|w| w[0] == flag)
            .map(|w| w[1].as_str())
    };
    let addr = value("-d")?;
    let host = addr
        .strip_suffix("/32")
        .or_else(|| addr.strip_suffix("/128"))
        .unwrap_or(addr);
    let addr: IpAddr = host.parse().ok()?;
    Some(ServiceKey {
        protocol: value("-p")?.to_ascii_lowercase(),
        addr,
        port: value("--dport")?.parse().ok()?,
    })
}

/// The (namespace/name, key) of every cluster IP (IPv4 and IPv6) and port of `services`;
/// headless and ExternalName Services have none.
pub fn service_keys(services: &[Service]) -> Vec<(String, ServiceKey)> {
    let mut out = Vec::new();
    for service in services {
        let meta = &service.metadata;
        let name = format!(
            "{}/{}",
            meta.namespace.as_deref().unwrap_or("default"),
            meta.name.as_deref().unwrap_or_default()
        );
        let Some(spec) = &service.spec else { continue };
        let ips: BTreeSet<IpAddr> = spec
            .cluster_ips
            .iter()
            .flatten()
            .chain(spec.cluster_ip.iter())
            .filter_map(|ip| ip.parse().ok())
            .collect();
        for addr in ips {
            for port in spec.ports.iter().flatten() {
                let Ok(number) = u16::try_from(port.port) else {
                    continue;
                };
                out.push((
                    name.clone(),
                    ServiceKey {
                        protocol: port
                            .protocol
                            .as_deref()
                            .unwrap_or("TCP")
                            .to_ascii_lowercase(),
                        addr,
                        port: number,
                    },
                ));
            }
        }
    }
    out
}

/// One finding per Service IP and port no kube-proxy mode on the node holds.
pub fn check(input: &Input<'_>) -> Vec<Finding> {
    let modes = proxy_modes(input);
    if modes.is_empty() {
        return Vec::new();
    }
    service_keys(&input.cluster.services)
        .into_iter()
        .filter_map(|(service, key)| {
            let covering: Vec<&ProxyMode> =
                modes.iter().filter(|m| m.covers(&key.addr)).collect();
            // No mode read for this family, or one holds the key: nothing to say.
            if covering.is_empty() || covering.iter().any(|m| m.keys.contains(&key)) {
                return None;
            }
            let names: Vec<&str> = covering.iter().map(|m| m.name).collect();
            Some((service, key, names))
        })
        .map(|(service, key, names)| {
            let searched = names.join(" and ");
            let endpoint = match key.addr {
                IpAddr::V4(a) => format!("{a}:{}/{}", key.port, key.protocol.to_ascii_uppercase()),
                IpAddr::V6(a) => format!("[{a}]:{}/{}", key.port, key.protocol.to_ascii_uppercase()),
            };
            finding(
                Check::ServiceVipMissing,
                format!("service {service} {endpoint}"),
                format!("missing from kube-proxy's {searched}"),
                "present".to_string(),
                format!(
                    "kube-proxy on this node has no {searched} entry for {service} at {endpoint}: pods here cannot reach it through its cluster IP (for the cluster DNS every lookup times out). A Service without ready endpoints has no entry in iptables mode either. Restart kube-proxy on the node and read its log (runbook: report-only checks)"
                ),
                details([
                    ("netns", String::new()),
                    ("service", service),
                    ("clusterIP", key.addr.to_string()),
                    ("port", key.port.to_string()),
                    ("protocol", key.protocol),
                    ("modes", names.join(",")),
                ]),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dns() -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "kube-dns", "namespace": "kube-system"},
            "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 53, "protocol": "UDP"}]}
        }))
        .unwrap()
    }

    fn key(addr: [u8; 4], port: u16) -> ServiceKey {
        ServiceKey {
            protocol: "udp".into(),
            addr: addr.into(),
            port,
        }
    }

    /// Seed 001: kube-proxy in IPVS mode (kube-ipvs0, ipset-matching KUBE-SERVICES rules).
    #[test]
    fn in_ipvs_mode_only_the_ipvs_table_is_judged() {
        let mut snapshot = crate::snapshot::Snapshot::default();
        snapshot.host.links.push(crate::snapshot::Link {
            index: 9,
            name: IPVS_DEVICE.into(),
            mac: None,
            mtu: Some(1500),
            up: false,
            kind: Some("dummy".into()),
            master: None,
        });
        snapshot.host.iptables = Some(crate::snapshot::Iptables {
            backend: crate::snapshot::Backend::Nft,
            rules: vec![crate::snapshot::Rule {
                table: "nat".into(),
                chain: "KUBE-SERVICES".into(),
                spec: "-m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT".into(),
            }],
        });
        snapshot.host.proxy.ipvs = Some(vec![key([10, 96, 0, 1], 443)]);
        let policy = netheal_crds::NetworkHealthPolicySpec::default();
        let cluster = crate::engine::ClusterFacts {
            services: vec![dns()],
            ..Default::default()
        };
        let input = Input {
            snapshot: &snapshot,
            policy: &policy,
            cluster: &cluster,
        };
        let found = check(&input);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].target,
            "service kube-system/kube-dns 10.96.0.10:53/UDP"
        );
        assert_eq!(found[0].observed, "missing from kube-proxy's IPVS");
        snapshot.host.proxy.ipvs = Some(vec![key([10, 96, 0, 10], 53)]);
        let input = Input {
            snapshot: &snapshot,
            policy: &policy,
            cluster: &cluster,
        };
        assert!(check(&input).is_empty());
    }

    #[test]
    fn kube_services_rules_give_their_keys() {
        let key = iptables_key(r#"-d 10.96.0.10/32 -p udp -m comment --comment "kube-system/kube-dns:dns cluster IP" -m udp --dport 53 -j KUBE-SVC-TCOU7JCQXEZGVUNU"#).unwrap();
        assert_eq!(
            (key.protocol.as_str(), key.addr.to_string(), key.port),
            ("udp", "10.96.0.10".into(), 53)
        );
        assert_eq!(
            iptables_key(
                "-m comment --comment \"kubernetes service nodeports\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"
            ),
            None
        );
    }

    #[test]
    fn every_cluster_ip_of_both_families_and_port_is_a_key_and_headless_services_have_none() {
        let dns: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "kube-dns", "namespace": "kube-system"},
            "spec": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10", "fd00::a"],
                     "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                               {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                               {"name": "metrics", "port": 9153}]}
        }))
        .unwrap();
        let headless: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "h", "namespace": "x"},
            "spec": {"clusterIP": "None", "ports": [{"port": 80}]}
        }))
        .unwrap();
        let keys = service_keys(&[dns, headless]);
        let text: Vec<String> = keys
            .iter()
            .map(|(s, k)| format!("{s} {}:{}/{}", k.addr, k.port, k.protocol))
            .collect();
        assert_eq!(
            text,
            [
                "kube-system/kube-dns 10.96.0.10:53/udp",
                "kube-system/kube-dns 10.96.0.10:53/tcp",
                "kube-system/kube-dns 10.96.0.10:9153/tcp",
                "kube-system/kube-dns fd00::a:53/udp",
                "kube-system/kube-dns fd00::a:53/tcp",
                "kube-system/kube-dns fd00::a:9153/tcp"
            ]
        );
    }
}
