//! `kubectl` (v1.32) against the API stand-in: apply, get with server-side printer columns,
//! validation errors, delete; and the `netheal-apiserver` binary.
#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is how a test fails.

mod apiserver_common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use apiserver_common::*;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::io::AsyncBufReadExt;

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

async fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Out {
    let mut cmd = tokio::process::Command::new("kubectl");
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("kubectl runs");
    if let Some(input) = stdin {
        use tokio::io::AsyncWriteExt;
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input.as_bytes()).await.unwrap();
        drop(pipe);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("kubectl finishes")
        .unwrap();
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn ok(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let out = kubectl(kubeconfig, args, stdin).await;
    assert!(
        out.ok,
        "kubectl {args:?} failed: {}{}",
        out.stdout, out.stderr
    );
    out.stdout
}

/// The header words and the row of `name` in `kubectl get` output.
fn table_row(out: &str, name: &str) -> (Vec<String>, Vec<String>) {
    let words = |l: &str| l.split_whitespace().map(String::from).collect::<Vec<_>>();
    let mut lines = out.lines();
    let header = words(lines.next().unwrap_or_default());
    let row = lines
        .map(words)
        .find(|w| w.first().map(String::as_str) == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in:\n{out}"));
    (header, row)
}

const GADGET: &str = "apiVersion: test.netheal.io/v1
kind: Gadget
metadata:
  name: g1
spec:
  size: 3
  colour: teal
";

#[tokio::test]
async fn apply_get_and_delete_custom_resources() {
    let server = start().await;
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kc).unwrap();
    let crd = dir.path().join("crd.yaml");
    std::fs::write(&crd, GADGET_CRD).unwrap();

    let out = ok(&kc, &["apply", "-f", crd.to_str().unwrap()], None).await;
    assert!(
        out.contains(
            "customresourcedefinition.apiextensions.k8s.io/gadgets.test.netheal.io created"
        ),
        "{out}"
    );
    let out = ok(&kc, &["apply", "-f", "-"], Some(GADGET)).await;
    assert!(out.contains("gadget.test.netheal.io/g1 created"), "{out}");

    // Server-side printer columns; the status column fills in once status is written.
    let api = gadgets(server.kube_client().unwrap());
    api.patch_status(
        "g1",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Ready"}})),
    )
    .await
    .unwrap();
    let out = ok(&kc, &["get", "gadgets"], None).await;
    let (header, row) = table_row(&out, "g1");
    assert_eq!(header, ["NAME", "MODE", "SIZE", "PHASE", "AGE"], "{out}");
    assert_eq!(&row[..4], ["g1", "DryRun", "3", "Ready"], "{out}");
    let out = ok(&kc, &["get", "gd", "-o", "wide"], None).await;
    let (header, row) = table_row(&out, "g1");
    assert_eq!(
        header,
        ["NAME", "MODE", "SIZE", "PHASE", "COLOUR", "AGE"],
        "{out}"
    );
    assert_eq!(row[4], "teal");
    let size = ok(
        &kc,
        &["get", "gadget", "g1", "-o", "jsonpath={.spec.size}"],
        None,
    )
    .await;
    assert_eq!(size, "3");

    // A second apply patches (three-way merge) what changed.
    let changed = GADGET
        .replace("size: 3", "size: 4")
        .replace("  colour: teal\n", "");
    let out = ok(&kc, &["apply", "-f", "-"], Some(&changed)).await;
    assert!(
        out.contains("gadget.test.netheal.io/g1 configured"),
        "{out}"
    );
    let g = api.get("g1").await.unwrap();
    assert_eq!(g.data["spec"]["size"], 4);
    assert!(
        g.data["spec"].get("colour").is_none(),
        "removed from the manifest, removed from the object"
    );
    assert_eq!(g.data["status"]["phase"], "Ready");

    // Refusals name the field.
    let bad = GADGET
        .replace("name: g1", "name: g2")
        .replace("size: 3", "size: 3\n  mode: Sometimes");
    let out = kubectl(&kc, &["apply", "-f", "-"], Some(&bad)).await;
    assert!(!out.ok);
    assert!(
        out.stderr
            .contains("spec.mode: Unsupported value: \"Sometimes\""),
        "{}",
        out.stderr
    );
    let typo = GADGET
        .replace("name: g1", "name: g3")
        .replace("colour", "color");
    let out = kubectl(&kc, &["apply", "-f", "-"], Some(&typo)).await;
    assert!(!out.ok, "strict field validation refuses unknown fields");
    assert!(
        out.stderr.contains("unknown field \"spec.color\""),
        "{}",
        out.stderr
    );

    let out = ok(&kc, &["delete", "gadget", "g1"], None).await;
    assert!(
        out.contains("gadget.test.netheal.io \"g1\" deleted"),
        "{out}"
    );
    let out = kubectl(&kc, &["get", "gadgets"], None).await;
    assert!(out.ok);
    assert!(
        out.stderr.contains("No resources found"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    // Deleting the CRD stops serving its resources.
    ok(&kc, &["delete", "-f", crd.to_str().unwrap()], None).await;
    let out = kubectl(&kc, &["get", "gadgets"], None).await;
    assert!(!out.ok);
}

#[tokio::test]
async fn get_built_in_resources() {
    let server = start().await;
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kc).unwrap();
    let client = server.kube_client().unwrap();
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": "node-1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
                   "nodeInfo": {"kubeletVersion": "v1.33.1", "machineID": "", "systemUUID": "",
                     "bootID": "", "kernelVersion": "", "osImage": "", "containerRuntimeVersion": "",
                     "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64"},
                   "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "kube-system");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "canal-x"},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c"}, {"name": "d"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    pods.patch_status(
        "canal-x",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Running", "podIP": "10.244.0.5",
            "containerStatuses": [{"name": "c", "ready": true, "restartCount": 1, "image": "", "imageID": ""},
                                  {"name": "d", "ready": false, "restartCount": 0, "image": "", "imageID": ""}]}})),
    )
    .await
    .unwrap();

    let out = ok(&kc, &["get", "nodes", "-o", "wide"], None).await;
    let (header, row) = table_row(&out, "node-1");
    assert_eq!(
        header,
        ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP"],
        "{out}"
    );
    assert_eq!(row[1..3], ["Ready", "control-plane"]);
    assert_eq!(row[4..], ["v1.33.1", "10.0.0.1"]);
    let out = ok(&kc, &["get", "pods", "-A", "-o", "wide"], None).await;
    let words: Vec<&str> = out
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        words[..5],
        ["kube-system", "canal-x", "1/2", "Running", "1"],
        "{out}"
    );
    assert!(
        words.contains(&"10.244.0.5") && words.contains(&"node-1"),
        "{out}"
    );
    let out = ok(&kc, &["get", "namespaces"], None).await;
    let (_, row) = table_row(&out, "kube-system");
    assert_eq!(row[1], "Active");
    let out = ok(&kc, &["api-resources"], None).await;
    assert!(
        out.contains("leases") && out.contains("customresourcedefinitions"),
        "{out}"
    );
}

const DAEMONSET: &str = "apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
  namespace: kube-system
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers:
      - name: agent
        image: agent:1
        args: [run]
        env: [{name: A, value: a}, {name: B, value: b}]
      - name: sidecar
        image: sidecar:1
";

#[tokio::test]
async fn reapplying_a_built_in_merges_lists_by_key() {
    let server = start().await;
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kc).unwrap();
    ok(&kc, &["apply", "-f", "-"], Some(DAEMONSET)).await;
    // Someone else adds an env var the manifest does not know.
    let ds: Api<k8s_openapi::api::apps::v1::DaemonSet> =
        Api::namespaced(server.kube_client().unwrap(), "kube-system");
    ds.patch(
        "agent",
        &PatchParams::default(),
        &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
            {"name": "agent", "env": [{"name": "EXTRA", "value": "x"}]}]}}}})),
    )
    .await
    .unwrap();
    let changed = DAEMONSET
        .replace("agent:1", "agent:2")
        .replace(", {name: B, value: b}", "");
    let out = ok(&kc, &["apply", "-f", "-"], Some(&changed)).await;
    assert!(out.contains("daemonset.apps/agent configured"), "{out}");
    let spec = ds
        .get("agent")
        .await
        .unwrap()
        .spec
        .unwrap()
        .template
        .spec
        .unwrap();
    let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["agent", "sidecar"]);
    let agent = &spec.containers[0];
    assert_eq!(agent.image.as_deref(), Some("agent:2"));
    assert_eq!(agent.args.as_deref(), Some(&["run".to_string()][..]));
    let env: Vec<&str> = agent
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(env, ["A", "EXTRA"], "B removed by the manifest, EXTRA kept");
    assert_eq!(spec.containers[1].image.as_deref(), Some("sidecar:1"));
}

#[tokio::test]
async fn the_binary_serves_preloaded_crds_and_writes_a_kubeconfig() {
    let dir = tempfile::tempdir().unwrap();
    let crds = dir.path().join("crds");
    std::fs::create_dir(&crds).unwrap();
    std::fs::write(crds.join("gadgets.yaml"), GADGET_CRD).unwrap();
    let kc = dir.path().join("kubeconfig");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_netheal-apiserver"))
        .args(["--port", "0", "--kubeconfig"])
        .arg(&kc)
        .arg("--crd-dir")
        .arg(&crds)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the server announces itself")
        .unwrap()
        .unwrap();
    let url = first.strip_prefix("listening on ").expect("listening line");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(std::fs::read_to_string(&kc).unwrap().contains(url));

    let out = ok(&kc, &["get", "crd"], None).await;
    assert!(out.contains("gadgets.test.netheal.io"), "{out}");
    ok(&kc, &["apply", "-f", "-"], Some(GADGET)).await;
    let out = ok(
        &kc,
        &["get", "gd", "g1", "-o", "jsonpath={.spec.mode}"],
        None,
    )
    .await;
    assert_eq!(out, "DryRun");
    let out = ok(&kc, &["config", "current-context"], None).await;
    assert_eq!(out.trim(), "netheal-e2e");

    // SIGTERM stops it.
    let pid = child.id().unwrap();
    std::process::Command::new("kill")
        .arg(pid.to_string())
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
}
