//! The Kubernetes objects the harness writes besides the cluster builder's own (Node and Pod
//! objects come from [`crate::cluster::objects`]): CNI agent pods of a given generation, the
//! kubelet's status patch, the pause annotation. Pure: values built from plain facts.

use crate::cluster::objects::{CNI_DAEMONSET, cni_agent_pod, uid_of};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use std::net::Ipv4Addr;

/// Namespace of the CNI agent pods (the policy's default `agentSelector`).
pub const AGENT_NAMESPACE: &str = "kube-system";
/// Label key and value of the CNI agent pods.
pub const AGENT_LABEL: (&str, &str) = ("k8s-app", CNI_DAEMONSET);

/// The name of `node`'s agent pod of `generation` (`canal-<node>-<generation>`, as a
/// DaemonSet names a new pod differently from the one it replaces).
pub fn agent_pod_name(node: &str, generation: u32) -> String {
    format!("{CNI_DAEMONSET}-{node}-{generation}")
}

/// The CNI agent pod of `node` of `generation`, as created (no status: the kubelet writes it).
pub fn agent_pod(node: &str, host_ip: Ipv4Addr, generation: u32) -> Pod {
    let mut pod = cni_agent_pod(node, host_ip, Timestamp::now());
    let name = agent_pod_name(node, generation);
    pod.metadata.uid = Some(uid_of(&format!("pod/{AGENT_NAMESPACE}/{name}")));
    pod.metadata.name = Some(name);
    pod.status = None;
    pod
}

/// The status patch the kubelet writes once a pod runs: phase Running, Ready, its IPs.
pub fn running_status(pod_ip: &str, host_ip: &str) -> Value {
    let now = Timestamp::now().to_string();
    let cond = |t: &str| json!({"type": t, "status": "True", "lastTransitionTime": now});
    json!({
        "status": {
            "phase": "Running",
            "hostIP": host_ip,
            "hostIPs": [{"ip": host_ip}],
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": now,
            "conditions": [cond("PodScheduled"), cond("Initialized"), cond("ContainersReady"), cond("Ready")],
        }
    })
}

/// A merge patch that sets or clears `netheal.io/paused` on a Node.
pub fn paused_patch(paused: bool) -> Value {
    let value = if paused { json!("true") } else { Value::Null };
    json!({"metadata": {"annotations": {netheal_crds::PAUSED_ANNOTATION: value}}})
}

/// A merge patch that sets a Node's flannel `backend-data` to `vtep_mac` (what flannel does
/// when a node rejoins with a new VTEP).
pub fn vtep_mac_patch(vtep_mac: &str) -> Value {
    let backend = json!({"VNI": 1, "VtepMAC": vtep_mac}).to_string();
    json!({"metadata": {"annotations": {crate::cluster::objects::BACKEND_DATA: backend}}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_pods_get_a_new_name_and_uid_per_generation() {
        let ip = Ipv4Addr::new(172, 31, 20, 1);
        let a = agent_pod("node1", ip, 0);
        let b = agent_pod("node1", ip, 1);
        assert_eq!(a.metadata.name.as_deref(), Some("canal-node1-0"));
        assert_eq!(b.metadata.name.as_deref(), Some("canal-node1-1"));
        assert_ne!(a.metadata.uid, b.metadata.uid);
        assert!(a.status.is_none());
        let labels = a.metadata.labels.unwrap();
        assert_eq!(labels.get(AGENT_LABEL.0).map(String::as_str), Some("canal"));
        assert_eq!(a.metadata.namespace.as_deref(), Some(AGENT_NAMESPACE));
    }

    #[test]
    fn patches_have_the_expected_shape() {
        assert_eq!(
            paused_patch(true)["metadata"]["annotations"]["netheal.io/paused"],
            "true"
        );
        assert!(paused_patch(false)["metadata"]["annotations"]["netheal.io/paused"].is_null());
        let backend = vtep_mac_patch("0a:e1:14:02:00:01")["metadata"]["annotations"]
            ["flannel.alpha.coreos.com/backend-data"]
            .as_str()
            .unwrap()
            .to_string();
        let v: Value = serde_json::from_str(&backend).unwrap();
        assert_eq!(v["VtepMAC"], "0a:e1:14:02:00:01");
        let s = running_status("10.244.1.2", "172.31.40.1");
        assert_eq!(s["status"]["podIPs"][0]["ip"], "10.244.1.2");
        assert_eq!(s["status"]["conditions"][3]["type"], "Ready");
    }
}
