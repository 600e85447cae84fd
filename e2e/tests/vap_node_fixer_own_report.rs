//! The ValidatingAdmissionPolicy of `config/admission` (part of `config/default`): node-fixer may write only the
//! NodeNetworkReport named after its own node, and may not create one that carries orders.
//!
//! The policy's CEL is read from the manifest itself (no copy), compiled, and evaluated with the
//! variables the API server binds (`object`, `oldObject`, `request`), including
//! `request.userInfo.extra`, which carries the node name of a pod-bound service account token.
//! `kube_cel::VapEvaluator` binds every VAP variable except `userInfo.extra`, so the policy is
//! evaluated here with the same CEL engine and Kubernetes function library (`KubeCelExt`), and
//! the expressions that do not read `extra` are cross-checked against `VapEvaluator`.

// A test crate: its helpers panic (unwrap) to fail the test that called them.
#![allow(clippy::unwrap_used)]

use kube_cel::cel::{Context, Program, Value};
use kube_cel::{AdmissionRequest, KubeCelExt, VapEvaluator, VapExpression};
use serde_json::{Value as Json, json};
use std::path::PathBuf;

const NODE_FIXER: &str = "system:serviceaccount:netheal-system:netheal-node-fixer";
const OPERATOR: &str = "system:serviceaccount:netheal-system:netheal-operator";
const NODE_NAME_KEY: &str = "authentication.kubernetes.io/node-name";

fn manifest_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../config/admission/validating-admission-policy.yaml")
}

/// The document of `kind` in the manifest.
fn document(kind: &str) -> Json {
    let text = std::fs::read_to_string(manifest_path()).unwrap();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value: Json = serde::Deserialize::deserialize(doc).unwrap();
        if value["kind"] == kind {
            return value;
        }
    }
    panic!("no {kind} in {}", manifest_path().display());
}

fn policy() -> Json {
    document("ValidatingAdmissionPolicy")
}

fn binding() -> Json {
    document("ValidatingAdmissionPolicyBinding")
}

/// One admission request, as the API server shows it to the policy.
struct Request {
    operation: &'static str,
    username: &'static str,
    /// `userInfo.extra[authentication.kubernetes.io/node-name]`; `None` = key absent.
    node_names: Option<Vec<&'static str>>,
    /// Leave `userInfo.extra` out of the request entirely (what the API server does when the
    /// token carries no extra at all: the field is `omitempty`).
    omit_extra: bool,
    object: Json,
    old_object: Option<Json>,
}

impl Request {
    fn request_json(&self) -> Json {
        let mut extra = serde_json::Map::new();
        if let Some(names) = &self.node_names {
            extra.insert(NODE_NAME_KEY.to_string(), json!(names));
        }
        let mut user_info = json!({
            "username": self.username,
            "uid": "0f6b1a52-2c2e-4a57-9d44-6a0d3c1f9e10",
            "groups": ["system:serviceaccounts", "system:serviceaccounts:netheal-system", "system:authenticated"],
        });
        if !self.omit_extra {
            user_info["extra"] = Json::Object(extra);
        }
        json!({
            "operation": self.operation,
            "name": self.object["metadata"]["name"],
            "namespace": "",
            "dryRun": false,
            "kind": {"group": "netheal.io", "version": "v1alpha1", "kind": "NodeNetworkReport"},
            "resource": {"group": "netheal.io", "version": "v1alpha1", "resource": "nodenetworkreports"},
            "userInfo": user_info,
        })
    }

    fn context(&self) -> Context<'static> {
        let mut ctx = Context::default().with_all();
        ctx.add_variable_from_value("object", kube_cel::cel::to_value(&self.object).unwrap());
        let old = match &self.old_object {
            Some(old) => kube_cel::cel::to_value(old).unwrap(),
            None => Value::Null,
        };
        ctx.add_variable_from_value("oldObject", old);
        ctx.add_variable_from_value(
            "request",
            kube_cel::cel::to_value(self.request_json()).unwrap(),
        );
        ctx
    }
}

/// What the API server decides: `Ok` when admitted, else every denial message.
fn admit(req: &Request) -> Result<(), Vec<String>> {
    let policy = policy();
    let ctx = req.context();
    // matchConditions: all must be true for the policy to apply; false for any = not matched.
    for cond in policy["spec"]["matchConditions"].as_array().unwrap() {
        let expr = cond["expression"].as_str().unwrap();
        match Program::compile(expr).unwrap().execute(&ctx).unwrap() {
            Value::Bool(true) => {}
            Value::Bool(false) => return Ok(()),
            other => panic!("matchCondition {expr} returned {other:?}"),
        }
    }
    let mut denials = Vec::new();
    for v in policy["spec"]["validations"].as_array().unwrap() {
        let expr = v["expression"].as_str().unwrap();
        // failurePolicy Fail: an evaluation error denies too.
        let passed = matches!(
            Program::compile(expr).unwrap().execute(&ctx),
            Ok(Value::Bool(true))
        );
        if passed {
            continue;
        }
        let message = v["messageExpression"]
            .as_str()
            .and_then(|m| match Program::compile(m).unwrap().execute(&ctx) {
                Ok(Value::String(s)) => Some(s.to_string()),
                _ => None,
            })
            .or_else(|| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| format!("failed: {expr}"));
        denials.push(message);
    }
    if denials.is_empty() {
        Ok(())
    } else {
        Err(denials)
    }
}

fn report(name: &str, remediations: Option<Json>) -> Json {
    let mut spec = serde_json::Map::new();
    if let Some(r) = remediations {
        spec.insert("remediations".into(), r);
    }
    json!({
        "apiVersion": "netheal.io/v1alpha1",
        "kind": "NodeNetworkReport",
        "metadata": {
            "name": name,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": "5d4f"}],
        },
        "spec": Json::Object(spec),
    })
}

fn order() -> Json {
    json!([{
        "id": "r-1", "action": "SetSysctl", "target": "net.ipv4.ip_forward",
        "parameters": {"netns": "", "sysctl": "net/ipv4/ip_forward", "value": "1"},
        "policy": "baseline", "approvedAt": "2026-11-22T08:00:00Z",
    }])
}

#[test]
fn node_fixer_creates_its_own_report() {
    let req = Request {
        operation: "CREATE",
        username: NODE_FIXER,
        node_names: Some(vec!["node-a"]),
        object: report("node-a", None),
        old_object: None,
        omit_extra: false,
    };
    assert_eq!(admit(&req), Ok(()));
}

#[test]
fn node_fixer_may_not_create_another_nodes_report() {
    let req = Request {
        operation: "CREATE",
        username: NODE_FIXER,
        node_names: Some(vec!["node-a"]),
        object: report("node-b", None),
        old_object: None,
        omit_extra: false,
    };
    let denials = admit(&req).unwrap_err();
    assert_eq!(denials.len(), 1, "{denials:?}");
    assert_eq!(
        denials[0],
        "node-fixer on node node-a may write only its own NodeNetworkReport, not node-b"
    );
}

#[test]
fn node_fixer_may_not_update_another_nodes_status() {
    let mut object = report("node-b", None);
    object["status"] = json!({"openFindings": 0});
    let req = Request {
        operation: "UPDATE",
        username: NODE_FIXER,
        node_names: Some(vec!["node-a"]),
        old_object: Some(report("node-b", None)),
        object,
        omit_extra: false,
    };
    let denials = admit(&req).unwrap_err();
    assert!(denials[0].contains("not node-b"), "{denials:?}");
}

#[test]
fn node_fixer_updates_its_own_status_while_orders_are_pending() {
    // The operator wrote spec.remediations; node-fixer answers in status. Allowed: the
    // no-orders rule applies to CREATE only.
    let mut object = report("node-a", Some(order()));
    object["status"] = json!({"results": [{"id": "r-1", "outcome": "Applied"}]});
    let req = Request {
        operation: "UPDATE",
        username: NODE_FIXER,
        node_names: Some(vec!["node-a"]),
        old_object: Some(report("node-a", Some(order()))),
        object,
        omit_extra: false,
    };
    assert_eq!(admit(&req), Ok(()));
}

#[test]
fn node_fixer_may_not_create_a_report_with_orders() {
    let req = Request {
        operation: "CREATE",
        username: NODE_FIXER,
        node_names: Some(vec!["node-a"]),
        object: report("node-a", Some(order())),
        old_object: None,
        omit_extra: false,
    };
    let denials = admit(&req).unwrap_err();
    assert_eq!(denials.len(), 1, "{denials:?}");
    assert!(denials[0].contains("spec.remediations"), "{denials:?}");
}

#[test]
fn node_fixer_may_not_create_a_report_with_a_history() {
    // A forged history would put the node in cooldown or make its findings look flapping.
    let mut object = report("node-a", None);
    object["spec"]["history"] = json!([{
        "findingId": "f", "action": "SetSysctl", "policy": "baseline",
        "actions": [{"id": "x", "time": "2026-11-22T08:00:00Z", "outcome": "Applied"}],
    }]);
    let req = Request {
        operation: "CREATE",
        username: NODE_FIXER,
        node_names: Some(vec!["node-a"]),
        object,
        old_object: None,
        omit_extra: false,
    };
    let denials = admit(&req).unwrap_err();
    assert_eq!(denials.len(), 1, "{denials:?}");
    assert!(denials[0].contains("spec.history"), "{denials:?}");
}

#[test]
fn a_token_without_a_node_name_is_refused() {
    // Before Kubernetes 1.30 (or with ServiceAccountTokenPodNodeInfo off, or a token not bound to
    // a pod) the key is absent: fail closed with a message that says why.
    let req = Request {
        operation: "CREATE",
        username: NODE_FIXER,
        node_names: None,
        object: report("node-a", None),
        old_object: None,
        omit_extra: false,
    };
    let denials = admit(&req).unwrap_err();
    assert_eq!(denials.len(), 1, "{denials:?}");
    assert!(denials[0].contains("carries no node name"), "{denials:?}");
}

#[test]
fn a_request_without_any_extra_is_refused_with_the_same_message() {
    // No `extra` at all in the request (omitempty): the rules test it with has() instead of
    // failing on a missing field, so the message still says what is wrong.
    let req = Request {
        operation: "CREATE",
        username: NODE_FIXER,
        node_names: None,
        object: report("node-a", None),
        old_object: None,
        omit_extra: true,
    };
    let denials = admit(&req).unwrap_err();
    assert_eq!(denials.len(), 1, "{denials:?}");
    assert!(denials[0].contains("carries no node name"), "{denials:?}");
}

#[test]
fn an_ambiguous_node_name_is_refused() {
    let req = Request {
        operation: "CREATE",
        username: NODE_FIXER,
        node_names: Some(vec!["node-a", "node-b"]),
        object: report("node-a", None),
        old_object: None,
        omit_extra: false,
    };
    assert!(admit(&req).is_err());
}

#[test]
fn other_users_are_not_matched() {
    // The operator writes spec.remediations of any node's report; people and other controllers
    // are left to RBAC. The policy does not apply to them at all.
    for username in [
        OPERATOR,
        "kubernetes-admin",
        "system:serviceaccount:other:netheal-node-fixer",
    ] {
        let req = Request {
            operation: "UPDATE",
            username,
            node_names: None,
            old_object: Some(report("node-b", None)),
            object: report("node-b", Some(order())),
            // A person's or another controller's token carries no node name.
            omit_extra: true,
        };
        assert_eq!(admit(&req), Ok(()), "{username}");
    }
}

#[test]
fn the_policy_covers_create_and_update_of_reports_and_their_status_and_fails_closed() {
    let policy = policy();
    assert_eq!(policy["apiVersion"], "admissionregistration.k8s.io/v1");
    assert_eq!(policy["spec"]["failurePolicy"], "Fail");
    let rule = &policy["spec"]["matchConstraints"]["resourceRules"][0];
    assert_eq!(rule["apiGroups"], json!(["netheal.io"]));
    assert_eq!(rule["operations"], json!(["CREATE", "UPDATE"]));
    assert_eq!(
        rule["resources"],
        json!(["nodenetworkreports", "nodenetworkreports/status"])
    );
    let binding = binding();
    assert_eq!(binding["spec"]["policyName"], policy["metadata"]["name"]);
    assert_eq!(binding["spec"]["validationActions"], json!(["Deny"]));
}

#[test]
fn kube_cel_vap_evaluator_agrees_on_the_expressions_it_can_bind() {
    // VapEvaluator binds object/oldObject/request without userInfo.extra: every expression that
    // does not read `extra` must give the same verdict there as in `admit`'s context.
    let policy = policy();
    let mut expressions: Vec<VapExpression> = Vec::new();
    for cond in policy["spec"]["matchConditions"].as_array().unwrap() {
        expressions.push(VapExpression {
            expression: cond["expression"].as_str().unwrap().to_string(),
            message: None,
            message_expression: None,
        });
    }
    for v in policy["spec"]["validations"].as_array().unwrap() {
        let expression = v["expression"].as_str().unwrap();
        if expression.contains("extra") {
            continue;
        }
        expressions.push(VapExpression {
            expression: expression.to_string(),
            message: v["message"].as_str().map(str::to_string),
            message_expression: None,
        });
    }
    assert!(
        expressions.len() >= 2,
        "the username match and the no-orders rule"
    );

    for (operation, username, remediations, expect_all_pass) in [
        ("CREATE", NODE_FIXER, None, true),
        ("CREATE", NODE_FIXER, Some(order()), false),
        ("UPDATE", NODE_FIXER, Some(order()), true),
        ("CREATE", OPERATOR, None, false),
    ] {
        let object = report("node-a", remediations);
        let evaluator = VapEvaluator::builder()
            .object(object.clone())
            .request(AdmissionRequest {
                operation: operation.into(),
                username: username.into(),
                name: "node-a".into(),
                ..Default::default()
            })
            .build();
        let theirs = evaluator.evaluate(&expressions);
        let ours_req = Request {
            operation: if operation == "CREATE" {
                "CREATE"
            } else {
                "UPDATE"
            },
            username: if username == NODE_FIXER {
                NODE_FIXER
            } else {
                OPERATOR
            },
            node_names: None,
            object,
            old_object: None,
            // As VapEvaluator binds it: no `extra`.
            omit_extra: true,
        };
        let ctx = ours_req.context();
        for (expr, result) in expressions.iter().zip(&theirs) {
            let ours = matches!(
                Program::compile(&expr.expression).unwrap().execute(&ctx),
                Ok(Value::Bool(true))
            );
            assert_eq!(
                ours, result.passed,
                "{operation} {username}: {} ({:?})",
                expr.expression, result.message
            );
        }
        assert_eq!(
            theirs.iter().all(|r| r.passed),
            expect_all_pass,
            "{operation} {username}: {theirs:?}"
        );
    }
}
