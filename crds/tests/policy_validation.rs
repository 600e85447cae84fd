//! The API contract as a user meets it: the samples parse, bad policies are refused with a
#![allow(clippy::unwrap_used)]
//! message naming the field (by the same CEL rules the API server runs, evaluated here with
//! kube's CEL engine, and by the generated OpenAPI schema, evaluated with a JSON-schema
//! validator), and the checked-in CRDs match the types.

use kube::CustomResourceExt;
use netheal_crds::{
    Action, Mode, NetworkHealthPolicy, NodeNetworkReport, PolicyError, crd_documents, parse_policy,
};
use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn samples() -> Vec<PathBuf> {
    let dir = repo_root().join("config/samples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yaml")
                && p.file_name().is_some_and(|n| n != "kustomization.yaml")
        })
        .collect();
    files.sort();
    files
}

/// The policy's `openAPIV3Schema`, as the API server sees it, translated to plain JSON Schema.
fn policy_json_schema() -> serde_json::Value {
    let crd = NetworkHealthPolicy::crd();
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .unwrap()
        .open_api_v3_schema
        .as_ref()
        .unwrap();
    to_json_schema(serde_json::to_value(schema).unwrap())
}

/// OpenAPI v3 (Kubernetes flavour) to JSON Schema: `nullable: true` allows null; the
/// `x-kubernetes-*` extensions are not JSON Schema keywords.
fn to_json_schema(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let nullable = map.get("nullable") == Some(&Value::Bool(true));
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                if k.starts_with("x-kubernetes-") || k == "nullable" {
                    continue;
                }
                out.insert(k, to_json_schema(v));
            }
            if nullable {
                if let Some(Value::String(t)) = out.get("type").cloned() {
                    out.insert("type".into(), serde_json::json!([t, "null"]));
                }
                if let Some(Value::Array(values)) = out.get_mut("enum") {
                    values.push(Value::Null);
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(to_json_schema).collect()),
        other => other,
    }
}

fn schema_errors(doc: &serde_json::Value) -> Vec<String> {
    let validator = jsonschema::validator_for(&policy_json_schema()).unwrap();
    validator
        .iter_errors(doc)
        .map(|e| format!("{}: {}", e.instance_path(), e))
        .collect()
}

const MINIMAL: &str = r#"
apiVersion: netheal.io/v1alpha1
kind: NetworkHealthPolicy
metadata: {name: minimal}
spec: {}
"#;

fn with_spec(spec: &str) -> String {
    format!(
        "apiVersion: netheal.io/v1alpha1\nkind: NetworkHealthPolicy\nmetadata: {{name: t}}\nspec:\n{spec}"
    )
}

#[test]
fn every_sample_parses_validates_and_matches_the_schema() {
    let files = samples();
    assert!(
        files.len() >= 3,
        "expected at least three samples, found {files:?}"
    );
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let policy =
            parse_policy(&text).unwrap_or_else(|e| panic!("{} is refused: {e}", path.display()));
        let doc: serde_json::Value = serde_yaml::from_str(&text).unwrap();
        let errors = schema_errors(&doc);
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        assert!(policy.metadata.name.is_some());
    }
}

#[test]
fn samples_cover_dry_run_enforce_on_a_pool_and_calico() {
    let policies: Vec<NetworkHealthPolicy> = samples()
        .iter()
        .map(|p| parse_policy(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect();
    assert!(
        policies
            .iter()
            .any(|p| p.spec.mode == Mode::DryRun && p.spec.node_selector.is_none())
    );
    assert!(
        policies
            .iter()
            .any(|p| p.spec.mode == Mode::Enforce && p.spec.node_selector.is_some())
    );
    assert!(
        policies
            .iter()
            .any(|p| p.spec.checks.overlay.cni == netheal_crds::Cni::Calico)
    );
}

#[test]
fn an_empty_spec_gets_the_documented_defaults() {
    let policy = parse_policy(MINIMAL).unwrap();
    let spec = &policy.spec;
    assert_eq!(spec.mode, Mode::DryRun);
    assert!(!spec.paused);
    assert!(spec.checks.arp_ignore.enabled && spec.checks.arp_ignore.pod_namespaces);
    assert_eq!(spec.checks.arp_ignore.desired, 0);
    assert_eq!(
        spec.checks.arp_ignore.interfaces,
        ["cali*", "flannel.1", "cni0", "tunl0", "vxlan.calico"]
    );
    assert_eq!(
        spec.checks.stale_neighbours.interfaces,
        ["cali*", "flannel.1", "flannel-v6.1"]
    );
    assert_eq!(spec.checks.reject_rules.chains, ["INPUT", "FORWARD"]);
    assert!(spec.checks.ip_forward.enabled && spec.checks.duplicate_pod_ips.enabled);
    // Every check is on by default, in the typed default and in a document that omits it.
    let typed = netheal_crds::NetworkHealthPolicySpec::default();
    for check in netheal_crds::Check::ALL {
        let expected = true;
        assert_eq!(
            spec.checks.is_enabled(check),
            expected,
            "{check} from an empty spec"
        );
        assert_eq!(
            typed.checks.is_enabled(check),
            expected,
            "{check} in the typed default"
        );
    }
    assert_eq!(spec.checks.overlay.agent_selector.namespace, "kube-system");
    assert_eq!(spec.remediation.actions, Action::ALL);
    assert_eq!(spec.remediation.max_concurrent_nodes, 1);
    assert_eq!(spec.remediation.cooldown_seconds, 60);
    assert_eq!(spec.remediation.flap_limit.fixes, 3);
    assert_eq!(spec.remediation.flap_limit.window_seconds, 3600);
    assert!(spec.remediation.persist_sysctls);
}

fn refused(spec: &str) -> String {
    match parse_policy(&with_spec(spec)) {
        Ok(_) => panic!("policy with spec {spec:?} was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn unknown_mode_is_refused_naming_the_field() {
    let message = refused("  mode: Sometimes\n");
    assert!(message.contains("spec.mode"), "{message}");
    assert!(message.contains("Sometimes"), "{message}");
    // The API server's schema refuses it too, at the same path.
    let doc: serde_json::Value = serde_yaml::from_str(&with_spec("  mode: Sometimes\n")).unwrap();
    let errors = schema_errors(&doc);
    assert!(
        errors.iter().any(|e| e.starts_with("/spec/mode")),
        "{errors:?}"
    );
}

#[test]
fn zero_max_concurrent_nodes_is_refused_naming_the_field() {
    let message = refused("  remediation: {maxConcurrentNodes: 0}\n");
    assert!(
        message.contains("spec.remediation.maxConcurrentNodes"),
        "{message}"
    );
}

#[test]
fn a_twenty_character_interface_pattern_is_refused_naming_the_field() {
    let message = refused("  checks: {arpIgnore: {interfaces: [\"cali12345678901234567\"]}}\n");
    assert!(
        message.contains("spec.checks.arpIgnore.interfaces"),
        "{message}"
    );
    let message = refused("  checks: {staleNeighbours: {interfaces: [\"eth0/1\"]}}\n");
    assert!(
        message.contains("spec.checks.staleNeighbours.interfaces"),
        "{message}"
    );
    // The schema's maxLength says the same to the API server.
    let doc: serde_json::Value = serde_yaml::from_str(&with_spec(
        "  checks: {arpIgnore: {interfaces: [\"cali12345678901234567\"]}}\n",
    ))
    .unwrap();
    assert!(!schema_errors(&doc).is_empty());
}

#[test]
fn other_bad_fields_are_refused_naming_the_field() {
    for (spec, field) in [
        (
            "  remediation: {flapLimit: {fixes: 0}}\n",
            "spec.remediation.flapLimit.fixes",
        ),
        (
            "  remediation: {flapLimit: {fixes: 21}}\n",
            "spec.remediation.flapLimit.fixes",
        ),
        (
            "  remediation: {flapLimit: {windowSeconds: 0}}\n",
            "spec.remediation.flapLimit.windowSeconds",
        ),
        (
            "  remediation: {cooldownSeconds: 100000}\n",
            "spec.remediation.cooldownSeconds",
        ),
        (
            "  remediation: {actions: [SetSysctl, SetSysctl]}\n",
            "spec.remediation.actions",
        ),
        (
            "  remediation: {actions: [Reboot]}\n",
            "spec.remediation.actions",
        ),
        (
            "  checks: {rejectRules: {chains: [\"INPUT; rm\"]}}\n",
            "spec.checks.rejectRules.chains",
        ),
        (
            "  checks: {arpIgnore: {desired: 5}}\n",
            "spec.checks.arpIgnore.desired",
        ),
        (
            "  checks: {overlay: {cni: Weave}}\n",
            "spec.checks.overlay.cni",
        ),
        (
            "  checks: {overlay: {agentSelector: {labels: {}}}}\n",
            "spec.checks.overlay.agentSelector.labels",
        ),
        (
            "  nodeSelector: {matchExpressions: [{key: a, operator: Near}]}\n",
            "spec.nodeSelector",
        ),
        ("  paused: maybe\n", "spec.paused"),
    ] {
        let message = refused(spec);
        assert!(message.contains(field), "{spec:?} -> {message}");
    }
}

#[test]
fn wrong_kind_or_garbage_is_refused() {
    let err =
        parse_policy(&MINIMAL.replace("NetworkHealthPolicy", "NodeNetworkReport")).unwrap_err();
    assert!(
        matches!(err, PolicyError::WrongType { field: "kind", .. }),
        "{err}"
    );
    assert!(matches!(parse_policy(": : :"), Err(PolicyError::Yaml(_))));
}

#[test]
fn crds_have_the_contracted_names_scope_and_subresources() {
    for (crd, short, plural) in [
        (NetworkHealthPolicy::crd(), "nhp", "networkhealthpolicies"),
        (NodeNetworkReport::crd(), "nnr", "nodenetworkreports"),
    ] {
        assert_eq!(crd.spec.group, "netheal.io");
        assert_eq!(crd.spec.scope, "Cluster");
        assert_eq!(crd.spec.names.plural, plural);
        assert_eq!(
            crd.spec.names.short_names.as_deref(),
            Some(&[short.to_string()][..])
        );
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(version.subresources.as_ref().unwrap().status.is_some());
        assert!(version.additional_printer_columns.as_ref().unwrap().len() >= 4);
    }
    let columns: Vec<String> = NetworkHealthPolicy::crd().spec.versions[0]
        .additional_printer_columns
        .clone()
        .unwrap()
        .into_iter()
        .filter(|c| c.priority.unwrap_or(0) == 0)
        .map(|c| c.name)
        .collect();
    assert_eq!(columns, ["Mode", "Nodes", "Findings", "Actions", "Age"]);
}

#[test]
fn every_cel_rule_has_a_message_naming_its_field() {
    let json = serde_json::to_value(NetworkHealthPolicy::crd()).unwrap();
    let mut rules = Vec::new();
    collect_rules(&json, &mut rules);
    assert!(rules.len() >= 10, "{rules:?}");
    for (rule, message) in rules {
        assert!(
            message.starts_with("spec."),
            "rule {rule:?} has message {message:?}"
        );
    }
}

fn collect_rules(value: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Array(rules)) = map.get("x-kubernetes-validations") {
                for r in rules {
                    out.push((
                        r["rule"].as_str().unwrap_or_default().to_string(),
                        r["message"].as_str().unwrap_or_default().to_string(),
                    ));
                }
            }
            map.values().for_each(|v| collect_rules(v, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_rules(v, out)),
        _ => {}
    }
}

#[test]
fn checked_in_crds_match_the_types() {
    for (name, yaml) in crd_documents().unwrap() {
        let path = repo_root().join("config/crd").join(name);
        let on_disk =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let body: String = on_disk
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(body, yaml, "{} drifted: run `make crds`", path.display());
    }
}
