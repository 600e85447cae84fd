//! The CLI's edges: policy and nodes files, bad input, namespace handling.
#![allow(clippy::unwrap_used)] // test code: a panic is how a test fails

mod common;
use common::*;
use netheal_e2e::cluster::faults::reject_input_args;

fn run(args: &[&str]) -> std::process::Output {
    bin().args(args).output().unwrap()
}

#[test]
fn malformed_policy_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: netheal.io/v1alpha1\nkind: NetworkHealthPolicy\nmetadata: {name: x}\nspec:\n  mode: Sometimes\n",
    )
    .unwrap();
    let out = run(&["scan", "--policy", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("spec.mode"), "{err}");
    let out = run(&["scan", "--policy", "/nonexistent/policy.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--policy"));
}

#[test]
fn bad_nodes_file_and_missing_netns_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = dir.path().join("nodes.json");
    std::fs::write(&nodes, "{\"kind\":\"List\"}").unwrap();
    let out = run(&["scan", "--nodes", nodes.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("items"));
    std::fs::write(
        &nodes,
        "{\"kind\":\"List\",\"items\":[{\"spec\":{\"podCIDR\":7}}]}",
    )
    .unwrap();
    let out = run(&["scan", "--nodes", nodes.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("items[0]"));
    let out = run(&["scan", "--netns", "nf-does-not-exist"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nf-does-not-exist"));
    let out = run(&["scan", "--output", "yaml"]);
    assert_eq!(out.status.code(), Some(2), "clap usage errors exit 2 too");
}

#[test]
fn policy_file_switches_checks_and_dry_run_mode_is_honoured() {
    let ns = netns("nf-clipol");
    ns.set_sysctl("net/ipv4/ip_forward", "0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.yaml");
    std::fs::write(
        &policy,
        "apiVersion: netheal.io/v1alpha1\nkind: NetworkHealthPolicy\nmetadata: {name: p}\nspec:\n  mode: DryRun\n  checks:\n    arpIgnore: {enabled: false}\n",
    )
    .unwrap();
    let base = [
        "--netns",
        "nf-clipol",
        "--pod-netns",
        "/var/run/netns/nf-cni-clipol-*",
        "--output",
        "json",
    ];
    let mut args = vec![
        "fix",
        "--policy",
        policy.to_str().unwrap(),
        "--sysctl-dir",
        dir.path().to_str().unwrap(),
    ];
    args.extend(base);
    let out = run(&args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = doc["results"].as_array().unwrap();
    assert!(!results.is_empty());
    assert!(results.iter().all(|r| r["dryRun"] == true), "{results:?}");
    assert_eq!(
        sysctl(&ns, "net/ipv4/ip_forward"),
        "0",
        "DryRun policy writes nothing"
    );
    // A switched-off check reports nothing even when its fault is there.
    ns.set_sysctl("net/ipv4/conf/all/arp_ignore", "2").unwrap();
    let mut args = vec!["scan", "--policy", policy.to_str().unwrap()];
    args.extend(base);
    let out = run(&args);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["check"] != "ArpIgnore")
    );
}

#[test]
fn a_child_spawned_from_a_namespace_thread_runs_in_that_namespace() {
    let ns = netns("nf-thread");
    ip(&ns, "link add nfmarker0 type bridge");
    let path = node_fixer::netns::netns_path("nf-thread");
    let (inside, outside) = node_fixer::netns::run_in(Some(&path), || {
        let out = std::process::Command::new("ip")
            .args(["-o", "link"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .map(|inside| {
        let out = std::process::Command::new("ip")
            .args(["-o", "link"])
            .output()
            .unwrap();
        (inside, String::from_utf8_lossy(&out.stdout).into_owned())
    })
    .unwrap();
    assert!(inside.contains("nfmarker0"), "{inside}");
    assert!(
        !outside.contains("nfmarker0"),
        "the process itself never moved"
    );
    let err =
        node_fixer::netns::run_in(Some(std::path::Path::new("/var/run/netns/nf-nope")), || ())
            .unwrap_err();
    assert!(err.to_string().contains("nf-nope"));
}

/// `docs/node-fixer-scan.schema.json` describes what `scan` and `fix --output json` really
/// print (a namespace with three faults, one of them with a REJECT rule), and names every
/// check, action and outcome there is.
#[test]
fn json_output_matches_the_documented_schema() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/node-fixer-scan.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let names = |def: &str| -> Vec<String> {
        schema["$defs"][def]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let all = |v: Vec<&str>| v.into_iter().map(String::from).collect::<Vec<_>>();
    assert_eq!(
        names("check"),
        all(netheal_crds::Check::ALL.map(|c| c.as_str()).to_vec())
    );
    assert_eq!(
        names("action"),
        all(netheal_crds::Action::ALL.map(|a| a.as_str()).to_vec())
    );
    let validator = jsonschema::validator_for(&schema).unwrap();

    let ns = netns("nf-clijs");
    ns.set_sysctl("net/ipv4/ip_forward", "0").unwrap();
    ns.set_sysctl("net/ipv4/conf/all/arp_ignore", "2").unwrap();
    ns.exec("iptables-legacy", &reject_input_args("-A"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let base = [
        "--netns",
        "nf-clijs",
        "--pod-netns",
        "/var/run/netns/nf-cni-clijs-*",
        "--output",
        "json",
    ];
    let mut scan = vec!["scan"];
    scan.extend(base);
    let mut fix = vec!["fix", "--sysctl-dir", dir.path().to_str().unwrap()];
    fix.extend(base);
    for (args, keys) in [(scan, 4), (fix, 6)] {
        let out = run(&args);
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{args:?}: {errors:?}\n{doc:#}");
        assert_eq!(doc.as_object().unwrap().len(), keys, "{doc:#}");
        assert!(doc["findings"].as_array().unwrap().len() >= 3, "{doc:#}");
    }
}
