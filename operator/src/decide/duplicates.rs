//! `DuplicatePodIp` (FAULTS.md): running, non-hostNetwork pods grouped by `status.podIPs`;
//! an IP held by more than one pod is a finding.

use crate::model::SlimPod;
use netheal_crds::{Check, Finding, NodeNetworkReport, finding_id};
use std::net::IpAddr;
use std::sync::Arc;

/// Pods sharing one IP.
#[derive(Clone, Debug)]
pub struct DuplicateGroup {
    /// The shared address.
    pub ip: String,
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

/// Every IP held by more than one running, non-hostNetwork pod, sorted by IP.
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
    let mut groups = Vec::new();
    for run in held.chunk_by(|a, b| a.0 == b.0) {
        if run.len() > 1 {
            let members: Vec<&Arc<SlimPod>> = run
                .iter()
                .filter_map(|(_, i)| pods.get(*i as usize))
                .collect();
            groups.push(group(&run[0].0.to_string(), members));
        }
    }
    groups.retain(|g| g.pods.len() > 1);
    groups
}

fn group(ip: &str, pods: Vec<&Arc<SlimPod>>) -> DuplicateGroup {
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
    let target = target(ip);
    let finding = Finding {
        id: finding_id(Check::DuplicatePodIp, &target),
        check: Check::DuplicatePodIp,
        observed: format!("{} pods hold {ip}", pods.len()),
        desired: "one pod per IP".into(),
        action: Check::DuplicatePodIp.remedy(),
        details: [
            ("ip".to_string(), ip.to_string()),
            ("pods".to_string(), listing.join(",")),
        ]
        .into_iter()
        .collect(),
        policy: None,
        message: Some(format!(
            "{} running pods share {ip}: {}",
            pods.len(),
            listing.join(", ")
        )),
        first_seen: None,
        last_seen: None,
        target,
    };
    DuplicateGroup {
        ip: ip.to_string(),
        node,
        pods,
        finding,
    }
}

/// The pod that keeps the IP: the one the node's report names as carrying the host route
/// (a `DuplicatePodIp` finding with details `ip` and `routePod: namespace/name`), otherwise
/// the oldest by creation time (then by name).
pub fn keeper<'a>(
    group: &'a DuplicateGroup,
    report: Option<&NodeNetworkReport>,
) -> Option<&'a SlimPod> {
    let named = report
        .and_then(|r| r.status.as_ref())
        .into_iter()
        .flat_map(|s| s.findings.iter())
        .filter(|f| f.check == Check::DuplicatePodIp && f.details.get("ip") == Some(&group.ip))
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
        let mut report = NodeNetworkReport::new("n1", Default::default());
        let mut finding = groups[0].finding.clone();
        finding
            .details
            .insert("routePod".into(), "default/young".into());
        report.status = Some(netheal_crds::NodeNetworkReportStatus {
            findings: vec![finding],
            ..Default::default()
        });
        assert_eq!(
            keeper(&groups[0], Some(&report)).unwrap().key(),
            "default/young"
        );
    }
}
