//! `DuplicatePodIp` (FAULTS.md): running, non-hostNetwork pods grouped by `status.podIPs`;
//! an IP held by more than one pod is a finding.
//!
//! Dual-stack pods hold two IPs, and copies made by the same fault usually share both. Pods
//! linked by any shared IP are one group with one keeper, so the IPv4 and the IPv6 duplicate
//! never pick different pods to keep (which would evict every copy).

use crate::model::SlimPod;
use netheal_crds::{Check, Details, Finding, NodeNetworkReport, finding_id};
use std::net::IpAddr;
use std::sync::Arc;

/// Pods linked by shared IPs.
#[derive(Clone, Debug)]
pub struct DuplicateGroup {
    /// The first shared address (IPv4 before IPv6): the finding's target.
    pub ip: String,
    /// Every address held by more than one pod of the group, sorted (`ip` first).
    pub ips: Vec<String>,
    /// The node the pods run on (the first one's node, by pod key, when they differ).
    pub node: String,
    /// The pods, sorted by `namespace/name`.
    pub pods: Vec<Arc<SlimPod>>,
    /// The finding that describes the group.
    pub finding: Finding,
}

/// The target string of a duplicate-IP finding.
pub fn target(ip: &str) -> String {
    format!("pod-ip {ip}")
}

/// Every set of running, non-hostNetwork pods linked by IPs held by more than one of them,
/// sorted by first shared IP.
pub fn detect(pods: &[Arc<SlimPod>]) -> Vec<DuplicateGroup> {
    // Sort (ip, pod) pairs instead of hashing: no allocation per pod, and only the pods in
    // a run of equal IPs are touched again.
    let mut held: Vec<(IpAddr, u32)> = Vec::with_capacity(pods.len());
    for (i, pod) in pods.iter().enumerate() {
        if pod.status.pod_ips.is_empty() || !pod.is_running_pod_network() {
            continue;
        }
        let Ok(i) = u32::try_from(i) else { break };
        held.extend(pod.status.pod_ips.iter().map(|ip| (*ip, i)));
    }
    held.sort_unstable();
    // A pod that lists one IP twice does not share it.
    held.dedup();
    let mut links = Links::default();
    let mut shared: Vec<(IpAddr, u32)> = Vec::new();
    for run in held.chunk_by(|a, b| a.0 == b.0) {
        if let [(ip, first), rest @ ..] = run
            && !rest.is_empty()
        {
            for (_, other) in rest {
                links.join(*first, *other);
            }
            shared.push((*ip, *first));
        }
    }
    // One group per linked set, in the order of its first shared IP.
    let mut order: Vec<u32> = Vec::new();
    let mut sets: std::collections::HashMap<u32, (Vec<IpAddr>, Vec<u32>)> =
        std::collections::HashMap::new();
    for (ip, member) in shared {
        let root = links.root(member);
        let set = sets.entry(root).or_insert_with(|| {
            order.push(root);
            (Vec::new(), Vec::new())
        });
        set.0.push(ip);
    }
    for (member, root) in links.roots() {
        if let Some(set) = sets.get_mut(&root) {
            set.1.push(member);
        }
    }
    order
        .into_iter()
        .filter_map(|root| sets.remove(&root))
        .map(|(ips, members)| {
            let members: Vec<&Arc<SlimPod>> = members
                .into_iter()
                .filter_map(|i| pods.get(i as usize))
                .collect();
            group(&ips, members)
        })
        .filter(|g| g.pods.len() > 1)
        .collect()
}

/// Pods joined by shared IPs (union-find over pod indices, only the pods that share one).
#[derive(Default)]
struct Links {
    parent: std::collections::HashMap<u32, u32>,
}

impl Links {
    fn root(&mut self, mut i: u32) -> u32 {
        loop {
            let p = *self.parent.entry(i).or_insert(i);
            if p == i {
                return i;
            }
            let grand = *self.parent.entry(p).or_insert(p);
            self.parent.insert(i, grand);
            i = grand;
        }
    }

    fn join(&mut self, a: u32, b: u32) {
        let (a, b) = (self.root(a), self.root(b));
        if a != b {
            self.parent.insert(a.max(b), a.min(b));
        }
    }

    /// Every pod that shares an IP, with the root of its set.
    fn roots(&mut self) -> Vec<(u32, u32)> {
        let all: Vec<u32> = self.parent.keys().copied().collect();
        all.into_iter().map(|i| (i, self.root(i))).collect()
    }
}

fn group(ips: &[IpAddr], pods: Vec<&Arc<SlimPod>>) -> DuplicateGroup {
    let ips: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
    let ip = ips.first().cloned().unwrap_or_default();
    let shown = ips.join(" and ");
    let mut pods: Vec<Arc<SlimPod>> = pods.into_iter().cloned().collect();
    pods.sort_by_key(|p| p.key());
    pods.dedup_by_key(|p| p.key());
    let node = pods
        .iter()
        .find_map(|p| p.node())
        .unwrap_or_default()
        .to_string();
    let listing: Vec<String> = pods
        .iter()
        .map(|p| format!("{}@{}", p.key(), p.node().unwrap_or("?")))
        .collect();
    let target = target(&ip);
    let mut details: Details = [
        ("ip".to_string(), ip.clone()),
        ("pods".to_string(), listing.join(",")),
    ]
    .into_iter()
    .collect();
    if ips.len() > 1 {
        details.insert("ips".into(), ips.join(","));
    }
    let finding = Finding {
        id: finding_id(Check::DuplicatePodIp, &target),
        check: Check::DuplicatePodIp,
        observed: format!("{} pods hold {shown}", pods.len()),
        desired: "one pod per IP".into(),
        action: Check::DuplicatePodIp.remedy(),
        details,
        policy: None,
        message: Some(format!(
            "{} running pods share {shown}: {}",
            pods.len(),
            listing.join(", ")
        )),
        first_seen: None,
        last_seen: None,
        target,
    };
    DuplicateGroup {
        ip,
        ips,
        node,
        pods,
        finding,
    }
}

/// The pod that keeps the IPs: the one the node's report names as carrying the host route of
/// one of them (a `DuplicatePodIp` finding with details `ip` and `routePod: namespace/name`),
/// otherwise
/// the oldest by creation time (then by name).
pub fn keeper<'a>(
    group: &'a DuplicateGroup,
    report: Option<&NodeNetworkReport>,
) -> Option<&'a SlimPod> {
    let named = report
        .and_then(|r| r.status.as_ref())
        .into_iter()
        .flat_map(|s| s.findings.iter())
        .filter(|f| {
            f.check == Check::DuplicatePodIp
                && f.details.get("ip").is_some_and(|ip| group.ips.contains(ip))
        })
        .find_map(|f| f.details.get("routePod"))
        .and_then(|key| group.pods.iter().find(|p| &p.key() == key));
    named
        .or_else(|| group.pods.iter().min_by_key(|p| (p.created(), p.key())))
        .map(Arc::as_ref)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::testkit::pod;

    #[test]
    fn only_running_pod_network_pods_sharing_an_ip_are_grouped() {
        let mut host = pod("kube-system", "proxy", "n1", "10.0.0.1", 1);
        Arc::make_mut(&mut host).spec.host_network = Some(true);
        let mut pending = pod("default", "pending", "n1", "10.244.1.5", 1);
        Arc::make_mut(&mut pending).status.phase = Some(crate::model::PodPhase::Pending);
        let pods = vec![
            pod("default", "b", "n1", "10.244.1.5", 20),
            pod("default", "a", "n1", "10.244.1.5", 30),
            pod("default", "c", "n1", "10.244.1.6", 10),
            host.clone(),
            pod("kube-system", "other-host", "n2", "10.0.0.1", 1),
            pending,
        ];
        let mut pods = pods;
        Arc::make_mut(&mut pods[4]).spec.host_network = Some(true);
        let groups = detect(&pods);
        assert_eq!(groups.len(), 1);
        let g = &groups[0];
        assert_eq!(g.ip, "10.244.1.5");
        assert_eq!(g.node, "n1");
        assert_eq!(g.finding.target, "pod-ip 10.244.1.5");
        assert_eq!(g.finding.check, Check::DuplicatePodIp);
        assert_eq!(g.finding.details["pods"], "default/a@n1,default/b@n1");
        assert_eq!(
            keeper(g, None).unwrap().key(),
            "default/b",
            "the oldest pod keeps the IP"
        );
    }

    #[test]
    fn the_report_names_the_pod_with_the_host_route() {
        let pods = vec![
            pod("default", "old", "n1", "10.244.1.5", 1),
            pod("default", "young", "n1", "10.244.1.5", 9),
        ];
        let groups = detect(&pods);
        let report = route_report(&groups[0], "10.244.1.5", "default/young");
        assert_eq!(
            keeper(&groups[0], Some(&report)).unwrap().key(),
            "default/young"
        );
    }

    /// n1's report: the pod `route_pod` carries the host route of `ip` of `group`.
    fn route_report(group: &DuplicateGroup, ip: &str, route_pod: &str) -> NodeNetworkReport {
        let mut report = NodeNetworkReport::new("n1", Default::default());
        let mut finding = group.finding.clone();
        finding.details.insert("ip".into(), ip.into());
        finding.details.insert("routePod".into(), route_pod.into());
        report.status = Some(netheal_crds::NodeNetworkReportStatus {
            findings: vec![finding],
            ..Default::default()
        });
        report
    }
    fn dual(ns: &str, name: &str, v4: &str, v6: &str, created: i64) -> Arc<SlimPod> {
        let mut p = pod(ns, name, "n1", v4, created);
        Arc::make_mut(&mut p)
            .status
            .pod_ips
            .push(v6.parse().expect("an IPv6 literal"));
        p
    }

    #[test]
    fn dual_stack_copies_sharing_both_ips_are_one_group_with_one_keeper() {
        let pods = vec![
            dual("default", "young", "10.244.1.5", "fd00:10:244:1::5", 9),
            dual("default", "old", "10.244.1.5", "fd00:10:244:1::5", 1),
            dual("default", "alone", "10.244.1.6", "fd00:10:244:1::6", 1),
        ];
        let groups = detect(&pods);
        assert_eq!(groups.len(), 1, "{groups:?}");
        let g = &groups[0];
        assert_eq!(g.ip, "10.244.1.5", "IPv4 first: the target");
        assert_eq!(g.ips, ["10.244.1.5", "fd00:10:244:1::5"]);
        assert_eq!(g.finding.target, "pod-ip 10.244.1.5");
        assert_eq!(g.finding.details["ips"], "10.244.1.5,fd00:10:244:1::5");
        assert_eq!(
            g.finding.observed,
            "2 pods hold 10.244.1.5 and fd00:10:244:1::5"
        );
        // The node names the pod carrying the IPv6 host route: it keeps both IPs.
        let report = route_report(g, "fd00:10:244:1::5", "default/young");
        assert_eq!(keeper(g, Some(&report)).unwrap().key(), "default/young");
        assert_eq!(keeper(g, None).unwrap().key(), "default/old");
    }

    #[test]
    fn pods_linked_through_different_ips_are_one_group_and_a_repeated_ip_is_not_shared() {
        let mut twice = pod("default", "twice", "n1", "10.244.1.9", 1);
        Arc::make_mut(&mut twice)
            .status
            .pod_ips
            .push("10.244.1.9".parse().unwrap());
        let pods = vec![
            dual("default", "a", "10.244.1.5", "fd00::a", 1),
            dual("default", "b", "10.244.1.5", "fd00::b", 2),
            dual("default", "c", "10.244.1.7", "fd00::b", 3),
            twice,
        ];
        let groups = detect(&pods);
        assert_eq!(groups.len(), 1, "{groups:?}");
        let g = &groups[0];
        assert_eq!(g.ips, ["10.244.1.5", "fd00::b"]);
        let keys: Vec<String> = g.pods.iter().map(|p| p.key()).collect();
        assert_eq!(keys, ["default/a", "default/b", "default/c"]);
        assert_eq!(keeper(g, None).unwrap().key(), "default/a");
    }
}
