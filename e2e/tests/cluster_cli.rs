//! `netheal-cluster up` / `down`: the command a person runs. Needs root.

#![allow(clippy::unwrap_used)] // helpers panic on purpose: that is how a test fails

use std::process::Command;

use netheal_e2e::cluster::state::{ClusterState, list_cluster_namespaces, state_path};

fn netheal_cluster(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_netheal-cluster"))
        .args(args)
        .output()
        .unwrap()
}

/// Removes the cluster even when an assertion fails.
struct Down(String);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = netheal_cluster(&["down", "--name", &self.0]);
    }
}

#[test]
fn up_leaves_a_working_cluster_and_down_removes_it() {
    let name = format!("u{:x}", std::process::id());
    let _guard = Down(name.clone());
    let out = netheal_cluster(&[
        "up",
        "--name",
        &name,
        "--nodes",
        "2",
        "--pod-style",
        "bridge",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for node in ["node1", "node2"] {
        let line = format!("node: {node} netns: nhc-{name}-{node}");
        assert!(stdout.lines().any(|l| l.starts_with(&line)), "{stdout}");
    }
    assert_eq!(list_cluster_namespaces(&name).unwrap().len(), 2 + 2 + 1);
    let state = ClusterState::read(&state_path(&name)).unwrap();
    assert_eq!(state.nodes.len(), 2);
    // The cluster outlives the command: pods still ping across nodes.
    let ping = Command::new("ip")
        .args(["netns", "exec", &state.pods[0].netns, "ping", "-c1", "-W1"])
        .arg(state.pods[1].ip.to_string())
        .status()
        .unwrap();
    assert!(ping.success());
    // A second `up` with the same name refuses.
    let again = netheal_cluster(&["up", "--name", &name]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already up"));

    let out = netheal_cluster(&["down", "--name", &name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(list_cluster_namespaces(&name).unwrap().is_empty());
    assert!(!state_path(&name).exists());
}

#[test]
fn bad_arguments_are_refused_naming_the_field() {
    let out = netheal_cluster(&["up", "--name", "Bad-Name"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cluster name"));
    let out = netheal_cluster(&["up", "--pod-style", "weave"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pod style"));
}
