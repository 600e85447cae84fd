//! Builders for the decision tests.

use crate::model::{NodeInfo, PodPhase, SlimPod, SlimPodSpec, SlimPodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use netheal_crds::{
    Check, Finding, Mode, NetworkHealthPolicy, NetworkHealthPolicySpec, NodeNetworkReport,
    NodeNetworkReportStatus, finding_id,
};
use std::collections::BTreeMap;
use std::sync::Arc;

pub fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap()
}

/// An enforcing policy with the default limits (1 node, 60 s cooldown, 3 fixes per hour).
pub fn policy(name: &str) -> Arc<NetworkHealthPolicy> {
    // Through serde, so that every default is the one a policy file gets.
    let spec: NetworkHealthPolicySpec =
        serde_json::from_value(serde_json::json!({"mode": "Enforce"})).unwrap();
    let mut spec = spec;
    assert_eq!(spec.mode, Mode::Enforce);
    // `OverlayCheck::default()` leaves the check off (the serde default of a present
    // `overlay` object turns it on); the tests want every check on.
    spec.checks.overlay.enabled = true;
    let mut p = NetworkHealthPolicy::new(name, spec);
    p.metadata.generation = Some(1);
    Arc::new(p)
}

pub fn node(name: &str) -> NodeInfo {
    NodeInfo {
        name: name.into(),
        labels: BTreeMap::new(),
        paused: false,
        version: 0,
    }
}

pub fn finding(check: Check, target: &str) -> Finding {
    Finding {
        id: finding_id(check, target),
        check,
        target: target.into(),
        observed: "2".into(),
        desired: "0".into(),
        action: check.remedy(),
        details: netheal_crds::Details::from([
            ("netns".to_string(), String::new()),
            ("sysctl".to_string(), target.replace('.', "/")),
            ("value".to_string(), "0".to_string()),
        ]),
        policy: None,
        message: None,
        first_seen: None,
        last_seen: None,
    }
}

/// A report whose last scan was at `scan` seconds, with `findings`.
pub fn report(node: &str, scan: i64, findings: Vec<Finding>) -> Arc<NodeNetworkReport> {
    let mut r = NodeNetworkReport::new(node, Default::default());
    r.status = Some(NodeNetworkReportStatus {
        last_scan_time: Some(Time(at(scan))),
        open_findings: findings.len() as u32,
        findings,
        ..Default::default()
    });
    Arc::new(r)
}

/// A running, Ready pod owned by a ReplicaSet.
pub fn pod(ns: &str, name: &str, node: &str, ip: &str, created: i64) -> Arc<SlimPod> {
    Arc::new(SlimPod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            uid: Some(format!("uid-{ns}-{name}")),
            creation_timestamp: Some(Time(at(created))),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: format!("{name}-rs"),
                uid: "rs".into(),
                controller: Some(true),
                block_owner_deletion: None,
            }]),
            ..Default::default()
        },
        spec: SlimPodSpec {
            node_name: Some(node.into()),
            host_network: None,
        },
        status: SlimPodStatus {
            phase: Some(PodPhase::Running),
            pod_ips: vec![ip.parse().unwrap()],
            ready: true,
        },
        controller_ref: None,
    })
}

/// A canal agent pod on `node` (hostNetwork, DaemonSet-owned).
pub fn agent(name: &str, node: &str, created: i64, ready: bool) -> Arc<SlimPod> {
    let mut p = pod("kube-system", name, node, "172.18.0.2", created);
    let m = Arc::make_mut(&mut p);
    m.spec.host_network = Some(true);
    m.metadata.labels = Some(BTreeMap::from([("k8s-app".into(), "canal".into())]));
    if let Some(o) = m.metadata.owner_references.as_mut() {
        o[0].kind = "DaemonSet".into();
        o[0].name = "canal".into();
    }
    m.status.ready = ready;
    p
}
