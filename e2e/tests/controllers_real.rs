//! What the real controllers do for netheal on the cluster-in-a-box: the garbage collector
//! deletes a node's NodeNetworkReport when its Node goes (the agent writes the owner
//! reference), and the DaemonSet controller gives a node that joins its node-fixer and CNI
//! agent pods.

#![allow(clippy::unwrap_used)] // helpers panic on purpose: that is how a test fails

use kube::api::{Api, DeleteParams};
use netheal_e2e::harness::install::NAMESPACE;
use netheal_e2e::harness::{Check, Harness, HarnessOptions, wait_for};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_goes_with_its_node_and_a_new_node_gets_the_daemonsets_pods() {
    let mut opts = HarnessOptions::new("c1", 1);
    opts.start_operator = false;
    let mut h = Harness::start(opts).await.unwrap();
    let report = h
        .wait_report(
            "node1",
            "node1's first report",
            Duration::from_secs(30),
            |r| {
                r.status.as_ref()?.last_scan_time.as_ref()?;
                Some(r.clone())
            },
        )
        .await
        .unwrap();
    let owner = report.metadata.owner_references.clone().unwrap_or_default();
    assert!(
        owner.iter().any(|o| o.kind == "Node" && o.name == "node1"),
        "{owner:?}"
    );

    h.add_node("node2").await.unwrap();
    for component in ["node-fixer"] {
        h.wait_running_pod(
            NAMESPACE,
            &format!("app.kubernetes.io/component={component}"),
            Some("node2"),
        )
        .await
        .unwrap();
    }
    h.wait_running_pod("kube-system", "k8s-app=canal", Some("node2"))
        .await
        .unwrap();

    h.stop_agent("node1");
    Api::<k8s_openapi::api::core::v1::Node>::all(h.client().clone())
        .delete("node1", &DeleteParams::default())
        .await
        .unwrap();
    let reports: Api<netheal_crds::NodeNetworkReport> = Api::all(h.client().clone());
    wait_for(
        "node1's report to be collected",
        Duration::from_secs(60),
        || async {
            match reports.get_opt("node1").await {
                Ok(None) => Check::Done(()),
                Ok(Some(_)) => Check::NotYet("still there".into()),
                Err(e) => Check::NotYet(e.to_string()),
            }
        },
    )
    .await
    .unwrap();
}
