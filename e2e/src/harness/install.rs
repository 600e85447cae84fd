//! netheal installed on the control plane the way users install it: `kubectl apply -k` of
//! `e2e/manifests` (config/default plus the ValidatingAdmissionPolicy component), the CRDs
//! first so the policy in it can be created; then pod-bound tokens for the binaries that the
//! harness runs as processes in place of the pods' containers.

use super::HarnessError;
use crate::controlplane::ControlPlane;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use std::path::Path;

/// The namespace of netheal's own objects.
pub const NAMESPACE: &str = "netheal-system";
/// node-fixer's ServiceAccount (config/rbac).
pub const NODE_FIXER_SA: &str = "netheal-node-fixer";
/// The operator's ServiceAccount (config/rbac).
pub const OPERATOR_SA: &str = "netheal-operator";
/// The policy config/default ships, which the scenarios replace with their own.
pub const BASELINE_POLICY: &str = "baseline";
/// How long a token the harness requests lives.
pub const TOKEN_SECONDS: i64 = 3600;

fn other(e: impl std::fmt::Display) -> HarnessError {
    HarnessError::Other(e.to_string())
}

/// Apply netheal's manifests; `keep_baseline` false deletes the shipped `baseline` policy.
pub async fn install(
    cp: &ControlPlane,
    root: &Path,
    keep_baseline: bool,
) -> Result<(), HarnessError> {
    let manifests = root.join("e2e/manifests").display().to_string();
    let cp_dir = cp.bin_dir().to_path_buf();
    let kubeconfig = cp.admin_kubeconfig().to_path_buf();
    let probe = cp.dir().join("vap-probe.json");
    std::fs::write(
        &probe,
        r#"{"apiVersion":"netheal.io/v1alpha1","kind":"NodeNetworkReport","metadata":{"name":"netheal-vap-probe"},"spec":{}}"#,
    )
    .map_err(other)?;
    tokio::task::spawn_blocking(move || {
        let k = |args: &[&str]| crate::controlplane::kubectl(&cp_dir, &kubeconfig, args);
        crate::controlplane::apply_crds(&cp_dir, &kubeconfig)?;
        k(&["apply", "--server-side", "-k", &manifests])?;
        wait_admission_policy(&k, &probe.display().to_string())?;
        Ok::<_, crate::controlplane::ControlPlaneError>(())
    })
    .await
    .map_err(other)?
    .map_err(other)?;
    if !keep_baseline {
        let client = cp.admin_client().await.map_err(other)?;
        let api: Api<netheal_crds::NetworkHealthPolicy> = Api::all(client);
        api.delete(BASELINE_POLICY, &DeleteParams::default())
            .await
            .map_err(other)?;
    }
    Ok(())
}

/// Serve Calico's `BlockAffinity` API (`e2e/calico/blockaffinity-crd.yaml`), as a Calico install
/// does, and wait until it is Established: node-fixer looks it up once at start.
pub fn calico_crds(cp: &ControlPlane, root: &Path) -> Result<(), HarnessError> {
    let crd = root.join("e2e/calico/blockaffinity-crd.yaml");
    let crd = crd.display().to_string();
    cp.kubectl(&["apply", "-f", &crd])?;
    cp.kubectl(&[
        "wait",
        "--for=condition=Established",
        "crd/blockaffinities.crd.projectcalico.org",
        "--timeout=30s",
    ])?;
    Ok(())
}

/// The API server enforces a new ValidatingAdmissionPolicy a moment after it is created (its
/// admission plugin loads policies from an informer). Wait until it refuses a server-side dry
/// run of a report creation made as node-fixer (impersonated, so the token carries no node
/// name), which only that policy refuses: from then on every scenario runs under it.
fn wait_admission_policy(
    k: &dyn Fn(&[&str]) -> Result<std::process::Output, crate::controlplane::ControlPlaneError>,
    probe: &str,
) -> Result<(), crate::controlplane::ControlPlaneError> {
    let user = format!("--as=system:serviceaccount:{NAMESPACE}:{NODE_FIXER_SA}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let last = match k(&["create", "--dry-run=server", &user, "-f", probe]) {
            Err(e) if e.to_string().contains("ValidatingAdmissionPolicy") => return Ok(()),
            Err(e) => e.to_string(),
            Ok(_) => "admitted".to_string(),
        };
        if std::time::Instant::now() > deadline {
            return Err(crate::controlplane::ControlPlaneError::Io {
                what: "wait for the ValidatingAdmissionPolicy to be enforced".into(),
                detail: last,
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A token of ServiceAccount `NAMESPACE/sa`, bound to `pod` (the API server puts the pod's
/// node name in it, which the ValidatingAdmissionPolicy checks).
pub async fn pod_bound_token(client: &Client, sa: &str, pod: &Pod) -> Result<String, HarnessError> {
    token(client, sa, Some(pod)).await
}

/// A token of ServiceAccount `sa` in [`NAMESPACE`], bound to `pod` when given (it stops
/// working when the pod is deleted).
pub async fn token(client: &Client, sa: &str, pod: Option<&Pod>) -> Result<String, HarnessError> {
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(TOKEN_SECONDS),
            bound_object_ref: pod.map(|pod| BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..TokenRequest::default()
    };
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), NAMESPACE);
    let answer = api
        .create_token_request(sa, &PostParams::default(), &request)
        .await
        .map_err(|e| HarnessError::Other(format!("token for {sa}: {e}")))?;
    answer
        .status
        .map(|s| s.token)
        .ok_or_else(|| HarnessError::Other(format!("token for {sa}: no status")))
}
