//! The Kubernetes objects the harness writes besides the cluster builder's own: the CNI agent
//! DaemonSet, the ReplicaSet that adopts a workload pod, the kubelet's status patch, the pause
//! annotation. Pure: values built from plain facts.

use crate::cluster::objects::{CALICO_DAEMONSET, CNI_DAEMONSET};
use k8s_openapi::api::apps::v1::{DaemonSet, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

/// Namespace of the CNI agent pods (the policy's default `agentSelector`).
pub const AGENT_NAMESPACE: &str = "kube-system";
/// Label key of the CNI agent pods; its value is the DaemonSet's name.
pub const AGENT_LABEL_KEY: &str = "k8s-app";
/// The label by which a workload pod's own ReplicaSet selects it.
pub const POD_LABEL: &str = "netheal.io/e2e-pod";

/// True for a CNI agent pod (namespace and the `k8s-app` label of canal or calico-node).
pub fn is_cni_agent(pod: &Pod) -> bool {
    pod.metadata.namespace.as_deref() == Some(AGENT_NAMESPACE)
        && pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(AGENT_LABEL_KEY))
            .is_some_and(|v| v == CNI_DAEMONSET || v == CALICO_DAEMONSET)
}

/// The CNI agent DaemonSet `kube-system/<agent>` (canal or calico-node): host network, on every
/// node, tolerating every taint, as their manifests have it.
pub fn cni_daemonset(agent: &str) -> Result<DaemonSet, serde_json::Error> {
    let (container, image) = crate::cluster::objects::agent_container(agent);
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": agent, "namespace": AGENT_NAMESPACE,
                     "labels": {AGENT_LABEL_KEY: agent}},
        "spec": {
            "selector": {"matchLabels": {AGENT_LABEL_KEY: agent}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {AGENT_LABEL_KEY: agent}},
                "spec": {
                    "hostNetwork": true,
                    "priorityClassName": "system-node-critical",
                    "terminationGracePeriodSeconds": 5,
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [{"name": container, "image": image}],
                },
            },
        },
    }))
}

/// The pod object the harness creates for a workload pod the cluster builder made: without
/// owner references (its ReplicaSet, [`pod_replicaset`], adopts it), labelled for that
/// ReplicaSet, status left to the kubelet.
pub fn workload_pod(pod: &Pod) -> Pod {
    let mut pod = pod.clone();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let owned = pod
        .metadata
        .owner_references
        .take()
        .is_some_and(|o| o.iter().any(|r| r.controller == Some(true)));
    pod.metadata.uid = None;
    pod.status = None;
    if owned {
        pod.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(POD_LABEL.into(), name);
    }
    pod
}

/// The ReplicaSet that owns workload pod `pod` (named after it, one replica, pinned to its node
/// by the template's `nodeName`): the real ReplicaSet controller adopts the pod and replaces it
/// on that node when it is evicted or deleted. `None` for a bare pod.
pub fn pod_replicaset(pod: &Pod) -> Option<Result<ReplicaSet, serde_json::Error>> {
    let name = pod.metadata.name.clone()?;
    let labels = pod.metadata.labels.clone()?;
    labels.get(POD_LABEL)?;
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let style = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(super::kubelet::POD_STYLE_ANNOTATION).cloned())
        .unwrap_or_else(|| "calico".into());
    let spec = pod.spec.clone().unwrap_or_default();
    let containers = serde_json::to_value(&spec.containers).ok()?;
    Some(serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {POD_LABEL: name}},
            "template": {
                "metadata": {"labels": labels,
                             "annotations": {super::kubelet::POD_STYLE_ANNOTATION: style}},
                "spec": {"nodeName": spec.node_name, "containers": containers},
            },
        },
    })))
}

/// A merge patch that sets or clears `netheal.io/paused` on a Node.
pub fn paused_patch(paused: bool) -> Value {
    let value = if paused { json!("true") } else { Value::Null };
    json!({"metadata": {"annotations": {netheal_crds::PAUSED_ANNOTATION: value}}})
}

/// A merge patch that sets a Node's flannel `backend-data` to `vtep_mac` and, on a dual-stack
/// node, `backend-v6-data` to `vtep_mac6` (what flannel does when a node rejoins with a new
/// VTEP).
pub fn vtep_mac_patch(vtep_mac: &str, vtep_mac6: Option<&str>) -> Value {
    use crate::cluster::objects::{BACKEND_DATA, BACKEND_V6_DATA};
    let mut annotations = serde_json::Map::new();
    let backend = json!({"VNI": 1, "VtepMAC": vtep_mac}).to_string();
    annotations.insert(BACKEND_DATA.into(), Value::String(backend));
    if let Some(mac6) = vtep_mac6 {
        let backend6 = json!({"VNI": 1, "VtepMAC": mac6}).to_string();
        annotations.insert(BACKEND_V6_DATA.into(), Value::String(backend6));
    }
    json!({"metadata": {"annotations": annotations}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::PodOwner;
    use crate::cluster::objects::{PodFacts, pod_object};
    use k8s_openapi::jiff::Timestamp;

    fn facts(owner: PodOwner) -> PodFacts {
        PodFacts {
            name: "web-node1-0".into(),
            namespace: "default".into(),
            app: "web".into(),
            node: "node1".into(),
            host_ip: "172.31.9.1".parse().unwrap(),
            host_ip6: None,
            ip: "10.244.1.2".parse().unwrap(),
            ip6: None,
            owner,
            netns: "cni-t-node1-0".into(),
            style: crate::cluster::PodStyle::Calico,
        }
    }

    #[test]
    fn an_owned_workload_pod_is_created_bare_and_adopted_by_its_own_replicaset() {
        let mut facts = facts(PodOwner::ReplicaSet("web-rs".into()));
        facts.style = crate::cluster::PodStyle::Bridge;
        let pod = pod_object(&facts, Timestamp::now());
        let created = workload_pod(&pod);
        assert!(created.metadata.owner_references.is_none());
        assert!(created.status.is_none());
        let labels = created.metadata.labels.clone().unwrap();
        assert_eq!(
            labels.get(POD_LABEL).map(String::as_str),
            Some("web-node1-0")
        );
        let rs = pod_replicaset(&created).unwrap().unwrap();
        let spec = rs.spec.unwrap();
        assert_eq!(spec.replicas, Some(1));
        let template = spec.template.unwrap();
        assert_eq!(template.spec.unwrap().node_name.as_deref(), Some("node1"));
        let annotations = template.metadata.unwrap().annotations.unwrap();
        assert_eq!(
            annotations
                .get(super::super::kubelet::POD_STYLE_ANNOTATION)
                .map(String::as_str),
            Some("bridge")
        );
    }

    #[test]
    fn a_bare_pod_gets_no_replicaset() {
        let pod = pod_object(&facts(PodOwner::Bare), Timestamp::now());
        assert!(pod_replicaset(&workload_pod(&pod)).is_none());
    }

    #[test]
    fn patches_have_the_expected_shape() {
        assert_eq!(
            paused_patch(true)["metadata"]["annotations"]["netheal.io/paused"],
            "true"
        );
        assert!(paused_patch(false)["metadata"]["annotations"]["netheal.io/paused"].is_null());
        assert!(cni_daemonset("canal").is_ok());
        assert!(cni_daemonset("calico-node").is_ok());
    }
}
