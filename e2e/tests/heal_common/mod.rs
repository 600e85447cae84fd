//! Steps the scenarios share.

#![allow(clippy::unwrap_used, dead_code)] // each scenario uses some of the steps

use netheal_crds::{Action, Check, Mode};
use netheal_e2e::harness::expect::policy_findings;
use netheal_e2e::harness::policies::POLICY;
use netheal_e2e::harness::{Harness, ping};
use std::net::IpAddr;
use std::time::Duration;

/// A fault on `node` that `RestartCniPod` repairs, already injected and reported as `check`:
/// DryRun proposes the restart and deletes nothing (the ping from `from` to `to` still fails);
/// Enforce deletes that node's CNI agent pod and no other, the new agent programs the data
/// plane again, the ping (IPv4 or IPv6) works, the action and its Event are recorded and the finding clears.
pub async fn cni_restart_heals(
    h: &Harness,
    node: &str,
    check: Check,
    from: &str,
    to: impl Into<IpAddr>,
) {
    let to: IpAddr = to.into();
    h.expect_proposed(POLICY, node, check, Action::RestartCniPod)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        h.kubelet().cni_restarts(node),
        0,
        "DryRun must not delete the CNI agent pod"
    );
    assert!(!ping(from, to));

    h.set_mode(POLICY, Mode::Enforce).await.unwrap();
    h.wait_ping(from, to, true, Duration::from_secs(45))
        .await
        .unwrap();
    h.expect_applied(POLICY, node, Action::RestartCniPod, |_| true)
        .await
        .unwrap();
    h.wait_cni_restarts(node, 1, Duration::from_secs(10))
        .await
        .unwrap();
    let others: Vec<String> = h
        .cluster()
        .nodes()
        .iter()
        .map(|n| n.name.clone())
        .filter(|n| n != node)
        .collect();
    for other in others {
        {
            assert_eq!(
                h.kubelet().cni_restarts(&other),
                0,
                "only {node}, which reported the gap, is restarted"
            );
        }
    }
    h.expect_finding_cleared(node, check).await.unwrap();
    h.expect_event("RestartCniPod", node).await.unwrap();
}

/// Duplicate pods already proposed for `RecreatePod` on `node`: switch to Enforce, and the
/// copies are evicted (never `keeper`, the pod that owns the host route) until no
/// `DuplicatePodIp` finding is left in the policy.
pub async fn copies_recreated_keeping(h: &Harness, node: &str, keeper: &str) {
    h.set_mode(POLICY, Mode::Enforce).await.unwrap();
    let recreated = h
        .expect_applied(POLICY, node, Action::RecreatePod, |_| true)
        .await
        .unwrap();
    assert!(
        recreated.iter().all(|r| !r.target.contains(keeper)),
        "the pod with the host route is kept: {recreated:?}"
    );
    h.wait_policy(
        POLICY,
        "the duplicate IP to clear",
        Duration::from_secs(60),
        |p| {
            policy_findings(p, node, Check::DuplicatePodIp)
                .is_empty()
                .then_some(())
        },
    )
    .await
    .unwrap();
}
