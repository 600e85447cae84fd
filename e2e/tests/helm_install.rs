//! The Helm chart (`charts/netheal`) on the real control plane, with the real `helm` built from
//! its Go module (`make helm`): `helm install` creates the namespace with its Pod Security
//! labels, the CRDs, RBAC, the admission policy, the operator and node-fixer and the `baseline`
//! policy in DryRun; `helm upgrade --set policy.mode=Enforce` (after the CRDs, as the chart's
//! README says) switches the policy and makes revision 2; `helm uninstall` removes every object
//! the chart rendered, in every namespace and cluster-wide, and only the two netheal CRDs stay
//! (Helm never deletes what it installed from `crds/`).

#![allow(clippy::unwrap_used)] // helpers panic on purpose: that is how a test fails

use netheal_e2e::controlplane::ControlPlane;
use netheal_e2e::harness::bins::workspace_root;
use netheal_e2e::harness::{Check, wait_for};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const NAMESPACE: &str = "netheal-system";
const RELEASE: &str = "netheal";

/// `NETHEAL_HELM`, else the binary `make helm` (hack/build-helm.sh) keeps in its cache.
fn helm_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NETHEAL_HELM") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "NETHEAL_HELM={} is not a file: unset it or run `make helm`",
            path.display()
        );
        return path;
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .expect("neither XDG_CACHE_HOME nor HOME is set");
    let helm = cache.join("netheal/helm/current/helm");
    assert!(
        helm.is_file(),
        "no helm at {}: run `make helm` (builds it from hack/helm/go.mod) or set NETHEAL_HELM",
        helm.display()
    );
    helm
}

struct Helm {
    bin: PathBuf,
    kubeconfig: PathBuf,
    home: PathBuf,
}

impl Helm {
    /// Run `helm args…` as the admin; panics with its output when it fails.
    fn run(&self, args: &[&str]) -> String {
        let output = Command::new(&self.bin)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            // Keep helm's own files (repositories, cache) out of the user's home.
            .env("HELM_CACHE_HOME", self.home.join("cache"))
            .env("HELM_CONFIG_HOME", self.home.join("config"))
            .env("HELM_DATA_HOME", self.home.join("data"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        assert!(
            output.status.success(),
            "helm {} failed ({}):\n{stdout}\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    fn status(&self) -> Value {
        serde_json::from_str(&self.run(&["status", RELEASE, "-n", NAMESPACE, "-o", "json"]))
            .unwrap()
    }
}

fn get_json(cp: &ControlPlane, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_slice(&cp.kubectl(&all).unwrap().stdout).unwrap()
}

/// Every resource type the chart renders, as kubectl names them (`kubectl api-resources`).
const RENDERED_TYPES: &[(&str, &str)] = &[
    ("Namespace", "namespaces"),
    ("ServiceAccount", "serviceaccounts"),
    ("ClusterRole", "clusterroles.rbac.authorization.k8s.io"),
    (
        "ClusterRoleBinding",
        "clusterrolebindings.rbac.authorization.k8s.io",
    ),
    ("Role", "roles.rbac.authorization.k8s.io"),
    ("RoleBinding", "rolebindings.rbac.authorization.k8s.io"),
    (
        "ValidatingAdmissionPolicy",
        "validatingadmissionpolicies.admissionregistration.k8s.io",
    ),
    (
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings.admissionregistration.k8s.io",
    ),
    ("Deployment", "deployments.apps"),
    ("DaemonSet", "daemonsets.apps"),
    ("PodDisruptionBudget", "poddisruptionbudgets.policy"),
    ("Service", "services"),
    ("NetworkHealthPolicy", "networkhealthpolicies.netheal.io"),
];

/// What the chart's objects make, and Helm's own release records: gone after uninstall too.
const DERIVED_TYPES: &[&str] = &[
    "replicasets.apps",
    "pods",
    "secrets",
    "leases.coordination.k8s.io",
];

/// Is `item` netheal's: in its namespace, named netheal*, labelled as netheal's or as this
/// release's, or a netheal policy.
fn is_nethealish(item: &Value) -> bool {
    let meta = &item["metadata"];
    let name = meta["name"].as_str().unwrap_or_default();
    let labels = &meta["labels"];
    meta["namespace"] == NAMESPACE
        || name == NAMESPACE
        || name.starts_with("netheal")
        || name.starts_with("sh.helm.release.v1.netheal.")
        || labels["app.kubernetes.io/name"] == "netheal"
        || labels["app.kubernetes.io/instance"] == RELEASE
        || item["apiVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("netheal.io/"))
}

/// The netheal objects of every type in `types`, across all namespaces, as `type/ns/name`.
fn remaining(cp: &ControlPlane, types: &[&str]) -> BTreeSet<String> {
    let mut left = BTreeSet::new();
    for t in types {
        let list = get_json(cp, &["get", t, "--all-namespaces"]);
        for item in list["items"].as_array().unwrap() {
            if is_nethealish(item) {
                let meta = &item["metadata"];
                left.insert(format!(
                    "{t}/{}/{}",
                    meta["namespace"].as_str().unwrap_or("-"),
                    meta["name"].as_str().unwrap_or("?")
                ));
            }
        }
    }
    left
}

fn chart_dir() -> String {
    workspace_root()
        .join("charts/netheal")
        .display()
        .to_string()
}

fn policy_mode(cp: &ControlPlane) -> String {
    let policy = get_json(cp, &["get", "networkhealthpolicies.netheal.io", "baseline"]);
    policy["spec"]["mode"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_installs_upgrades_and_uninstalls_netheal_leaving_only_the_crds() {
    let helm_bin = helm_binary();
    let cp = ControlPlane::for_test("helm").await.unwrap();
    let helm = Helm {
        bin: helm_bin,
        kubeconfig: cp.admin_kubeconfig().to_path_buf(),
        home: cp.dir().join("helm-home"),
    };
    let chart = chart_dir();
    let crds = workspace_root().join("charts/netheal/crds");
    let appversion = appversion(&workspace_root().join("charts/netheal/Chart.yaml"));

    // Install as the docs say (helm waits for nothing: there are no nodes to run pods on).
    let started = std::time::Instant::now();
    helm.run(&[
        "install",
        RELEASE,
        &chart,
        "-n",
        NAMESPACE,
        "--create-namespace",
        "--wait=hookOnly",
    ]);
    eprintln!("figure: helm.install {} ms", started.elapsed().as_millis());
    let status = helm.status();
    assert_eq!(status["info"]["status"], "deployed", "{status}");
    assert_eq!(status["version"], 1, "{status}");

    let ns = get_json(&cp, &["get", "namespace", NAMESPACE]);
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "privileged",
        "the chart's Namespace (with its Pod Security labels) must be what --create-namespace left: {ns}"
    );
    let deploy = get_json(
        &cp,
        &["-n", NAMESPACE, "get", "deployment", "netheal-operator"],
    );
    assert_eq!(deploy["spec"]["replicas"], 2);
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("ghcr.io/netheal/netheal-operator:{appversion}").as_str()
    );
    assert_eq!(
        deploy["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "Helm"
    );
    let ds = get_json(
        &cp,
        &["-n", NAMESPACE, "get", "daemonset", "netheal-node-fixer"],
    );
    assert_eq!(
        ds["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("ghcr.io/netheal/netheal-node-fixer:{appversion}").as_str()
    );
    assert_eq!(
        ds["spec"]["template"]["spec"]["tolerations"],
        serde_json::json!([{"operator": "Exists"}])
    );
    for sa in ["netheal-operator", "netheal-node-fixer"] {
        get_json(&cp, &["-n", NAMESPACE, "get", "serviceaccount", sa]);
    }
    for role in ["netheal-operator", "netheal-node-fixer"] {
        let cr = get_json(&cp, &["get", "clusterrole", role]);
        assert!(!cr["rules"].as_array().unwrap().is_empty(), "{cr}");
        let crb = get_json(&cp, &["get", "clusterrolebinding", role]);
        assert_eq!(crb["subjects"][0]["namespace"], NAMESPACE, "{crb}");
    }
    let vap = get_json(
        &cp,
        &[
            "get",
            "validatingadmissionpolicy",
            "netheal-node-fixer-own-report",
        ],
    );
    assert!(
        vap["spec"]["matchConditions"][0]["expression"]
            .as_str()
            .unwrap()
            .contains("system:serviceaccount:netheal-system:netheal-node-fixer"),
        "{vap}"
    );
    get_json(
        &cp,
        &[
            "get",
            "validatingadmissionpolicybinding",
            "netheal-node-fixer-own-report",
        ],
    );
    assert_eq!(policy_mode(&cp), "DryRun");

    // Every kind the release holds is one this test checks after uninstall.
    let manifest = helm.run(&["get", "manifest", RELEASE, "-n", NAMESPACE]);
    let kinds: BTreeSet<String> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("kind: "))
        .map(|k| k.trim().to_string())
        .collect();
    let checked: BTreeSet<String> = RENDERED_TYPES.iter().map(|(k, _)| k.to_string()).collect();
    assert_eq!(
        kinds, checked,
        "the chart renders kinds this test does not check"
    );

    // Upgrade the way the chart's README says: CRDs first, then helm upgrade.
    cp.kubectl(&["apply", "--server-side", "-f", &crds.display().to_string()])
        .unwrap();
    helm.run(&[
        "upgrade",
        RELEASE,
        &chart,
        "-n",
        NAMESPACE,
        "--set",
        "policy.mode=Enforce",
        "--wait=hookOnly",
    ]);
    assert_eq!(policy_mode(&cp), "Enforce");
    let status = helm.status();
    assert_eq!(status["version"], 2, "{status}");
    assert_eq!(status["info"]["status"], "deployed", "{status}");
    assert_eq!(status["config"]["policy"]["mode"], "Enforce", "{status}");

    // Uninstall: nothing of netheal's remains but its two CRDs.
    let mut types: Vec<&str> = RENDERED_TYPES.iter().map(|(_, t)| *t).collect();
    types.extend(DERIVED_TYPES);
    let before = remaining(&cp, &types);
    assert!(
        before.len() >= RENDERED_TYPES.len(),
        "the lookup finds netheal's objects before uninstall: {before:?}"
    );
    let started = std::time::Instant::now();
    helm.run(&["uninstall", RELEASE, "-n", NAMESPACE]);
    let left = wait_for(
        "every object of the release to be gone",
        Duration::from_secs(120),
        || async {
            let left = remaining(&cp, &types);
            if left.is_empty() {
                Check::Done(())
            } else {
                Check::NotYet(format!("{left:?}"))
            }
        },
    )
    .await;
    left.unwrap();
    eprintln!(
        "figure: helm.uninstall_until_gone {} ms",
        started.elapsed().as_millis()
    );
    let releases = helm.run(&[
        "list",
        "--all-namespaces",
        "-q",
        "--deployed",
        "--failed",
        "--pending",
        "--superseded",
        "--uninstalling",
        "--uninstalled",
    ]);
    assert_eq!(releases.trim(), "", "helm still lists a release");
    let crds = get_json(&cp, &["get", "customresourcedefinitions"]);
    let netheal_crds: BTreeSet<&str> = crds["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["metadata"]["name"].as_str())
        .filter(|n| n.ends_with(".netheal.io"))
        .collect();
    assert_eq!(
        netheal_crds,
        BTreeSet::from([
            "networkhealthpolicies.netheal.io",
            "nodenetworkreports.netheal.io"
        ]),
        "Helm keeps the CRDs of crds/"
    );
}

fn appversion(chart_yaml: &Path) -> String {
    let text = std::fs::read_to_string(chart_yaml).unwrap();
    let chart: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    chart["appVersion"].as_str().unwrap().to_string()
}
