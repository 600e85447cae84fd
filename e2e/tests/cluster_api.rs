//! Cluster-in-a-box meets the real control plane: Node and Pod objects are registered, updated
//! when a node rejoins with a new VTEP MAC, and removed when a node leaves. Needs root.

#![allow(clippy::unwrap_used)] // helpers panic on purpose: that is how a test fails

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use netheal_e2e::cluster::register::unregister_node;
use netheal_e2e::cluster::{Cluster, PodOptions};
use netheal_e2e::controlplane::ControlPlane;
use netheal_e2e::harness::log_dir;

fn backend_mac(node: &Node) -> String {
    let ann = node.metadata.annotations.clone().unwrap();
    let data: serde_json::Value =
        serde_json::from_str(&ann["flannel.alpha.coreos.com/backend-data"]).unwrap();
    data["VtepMAC"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_and_pods_are_registered_and_follow_the_cluster() {
    let name = format!("g{:x}", std::process::id());
    let cp = ControlPlane::start(&log_dir(&name).join("controlplane"))
        .await
        .unwrap();
    let client = cp.admin_client().await.unwrap();
    let mut cluster = Cluster::build(&name, 3).unwrap();
    for node in ["node1", "node2", "node3"] {
        cluster.add_pod(node, PodOptions::calico()).unwrap();
    }
    cluster
        .add_pod("node1", PodOptions::bridge().bare().named("solo"))
        .unwrap();
    cluster.register(&client).await.unwrap();

    let nodes: Api<Node> = Api::all(client.clone());
    let listed = nodes.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(listed.len(), 3);
    let node2 = nodes.get("node2").await.unwrap();
    assert_eq!(backend_mac(&node2), cluster.node("node2").unwrap().vtep_mac);
    assert_eq!(
        node2.spec.as_ref().unwrap().pod_cidr.as_deref(),
        Some("10.244.2.0/24")
    );
    let status = node2.status.unwrap();
    let internal = status
        .addresses
        .unwrap()
        .into_iter()
        .find(|a| a.type_ == "InternalIP")
        .unwrap();
    assert_eq!(
        internal.address,
        cluster.node("node2").unwrap().underlay_ip.to_string()
    );
    assert!(
        status
            .conditions
            .unwrap()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    );

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let solo = pods.get("solo").await.unwrap();
    assert!(solo.metadata.owner_references.is_none());
    assert_eq!(
        solo.status.unwrap().phase.as_deref(),
        Some("Running"),
        "status is written through the status subresource"
    );
    let agents: Api<Pod> = Api::namespaced(client.clone(), "kube-system");
    let canal = agents
        .list(&ListParams::default().labels("k8s-app=canal"))
        .await
        .unwrap()
        .items;
    assert_eq!(canal.len(), 3);

    // A rejoin with a new MAC: registering again updates backend-data.
    let injected = cluster.inject_vtep_mac_change("node2").unwrap();
    assert!(cluster.symptom_present(&injected).unwrap());
    cluster.register(&client).await.unwrap();
    let node2 = nodes.get("node2").await.unwrap();
    assert_eq!(backend_mac(&node2), cluster.node("node2").unwrap().vtep_mac);

    // A node leaves.
    cluster.remove_node("node3").unwrap();
    unregister_node(&client, "node3").await.unwrap();
    assert_eq!(
        nodes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    assert!(agents.get_opt("canal-node3").await.unwrap().is_none());
    unregister_node(&client, "node3").await.unwrap();
}
