//! Custom-resource schemas: pruning, defaulting, OpenAPI validation and CEL rules, in the
//! order the real server applies them. Pure.

use serde_json::{Map, Value};

use super::status::Cause;

/// A CRD version's `openAPIV3Schema`, with its JSON-Schema translation compiled once.
pub struct Schema {
    raw: Value,
    validator: jsonschema::Validator,
    /// The CEL rules compiled once, and the evaluator with the Kubernetes CEL library.
    cel: std::sync::Mutex<(kube_cel::CompiledSchema, kube_cel::Validator)>,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schema").field("raw", &self.raw).finish()
    }
}

impl Schema {
    /// Translate a Kubernetes structural schema to draft-4 JSON Schema and compile it.
    pub fn compile(raw: &Value) -> Result<Self, String> {
        let translated = translate(raw);
        let validator = jsonschema::draft4::new(&translated).map_err(|e| e.to_string())?;
        let compiled = kube_cel::compile_schema(raw);
        if let Some(e) = first_compilation_error(&compiled) {
            return Err(format!("x-kubernetes-validations: {e}"));
        }
        Ok(Self {
            raw: raw.clone(),
            validator,
            cel: std::sync::Mutex::new((compiled, kube_cel::Validator::new())),
        })
    }

    /// The schema as written in the CRD.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// Prune unknown fields, apply defaults, validate against the schema and its CEL rules.
    /// Returns the object to store and the pruned (unknown) fields, or every cause of refusal.
    pub fn admit(
        &self,
        obj: &Value,
        old: Option<&Value>,
    ) -> Result<(Value, Vec<String>), Vec<Cause>> {
        let mut pruned = obj.clone();
        let dropped = prune(&self.raw, &mut pruned, true);
        let defaulted = kube_cel::apply_defaults(&self.raw, &pruned);
        let mut causes: Vec<Cause> = self
            .validator
            .iter_errors(&defaulted)
            .map(|e| schema_cause(&defaulted, &e))
            .collect();
        let cel_result = if causes.is_empty() {
            match self.cel.lock() {
                Ok(cel) => cel.1.validate_compiled(&cel.0, &defaulted, old),
                Err(poisoned) => {
                    let cel = poisoned.into_inner();
                    cel.1.validate_compiled(&cel.0, &defaulted, old)
                }
            }
        } else {
            Ok(())
        };
        if let Err(errors) = cel_result {
            causes.extend(errors.into_vec().into_iter().map(|e| {
                let at = super::table::lookup(&defaulted, &format!(".{}", e.field_path));
                Cause {
                    message: format!(
                        "Invalid value: \"{}\": {}",
                        at.map_or("object", json_type),
                        e.message
                    ),
                    field: e.field_path.clone(),
                }
            }));
        }
        if causes.is_empty() {
            Ok((defaulted, dropped))
        } else {
            Err(causes)
        }
    }
}

/// The first CEL rule of the tree that does not compile.
fn first_compilation_error(c: &kube_cel::CompiledSchema) -> Option<String> {
    if let Some(e) = c.compilation_errors().first() {
        return Some(e.to_string());
    }
    c.properties
        .values()
        .chain(c.items.as_deref())
        .find_map(first_compilation_error)
}

/// Kubernetes OpenAPI v3 schema → draft-4 JSON Schema: drop `x-kubernetes-*` extensions,
/// turn `nullable: true` into an explicit `null` type.
pub fn translate(schema: &Value) -> Value {
    let Value::Object(map) = schema else {
        return schema.clone();
    };
    let nullable = map.get("nullable") == Some(&Value::Bool(true));
    let int_or_string = map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    let mut out = Map::new();
    for (k, v) in map {
        if k.starts_with("x-kubernetes-") || k == "nullable" {
            continue;
        }
        let v = match k.as_str() {
            "properties" | "patternProperties" | "definitions" => Value::Object(
                v.as_object()
                    .map(|props| {
                        props
                            .iter()
                            .map(|(n, s)| (n.clone(), translate(s)))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            "items" | "additionalProperties" | "not" => translate(v),
            "allOf" | "anyOf" | "oneOf" => Value::Array(
                v.as_array()
                    .map(|a| a.iter().map(translate).collect())
                    .unwrap_or_default(),
            ),
            "required" if v.as_array().is_some_and(Vec::is_empty) => continue,
            _ => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    if int_or_string {
        out.remove("type");
    }
    if nullable {
        if let Some(Value::String(t)) = out.get("type").cloned() {
            out.insert(
                "type".into(),
                Value::Array(vec![Value::String(t), "null".into()]),
            );
        }
        if let Some(Value::Array(options)) = out.get_mut("enum")
            && !options.contains(&Value::Null)
        {
            options.push(Value::Null);
        }
    }
    Value::Object(out)
}

/// Drop fields the schema does not know, as the real server does for structural schemas
/// (unless `x-kubernetes-preserve-unknown-fields`). At the root, `apiVersion`, `kind` and
/// `metadata` are always kept. Returns the dropped fields (`spec.foo`).
pub fn prune(schema: &Value, value: &mut Value, root: bool) -> Vec<String> {
    let mut dropped = Vec::new();
    prune_at(schema, value, root, "", &mut dropped);
    dropped
}

fn prune_at(schema: &Value, value: &mut Value, root: bool, path: &str, dropped: &mut Vec<String>) {
    let preserve = schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    let embedded = schema.get("x-kubernetes-embedded-resource") == Some(&Value::Bool(true));
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            map.retain(|k, v| {
                let keep_meta =
                    (root || embedded) && matches!(k.as_str(), "apiVersion" | "kind" | "metadata");
                if let Some(s) = props.and_then(|p| p.get(k)) {
                    prune_at(s, v, false, &join(k), dropped);
                    true
                } else if let Some(s) = additional {
                    prune_at(s, v, false, &join(k), dropped);
                    true
                } else if keep_meta || preserve {
                    true
                } else {
                    dropped.push(join(k));
                    false
                }
            });
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune_at(s, item, false, &format!("{path}[{i}]"), dropped);
                }
            }
        }
        _ => {}
    }
}

/// A JSON pointer (`/spec/items/0/name`) in Kubernetes' field form (`spec.items[0].name`).
pub fn field_path(obj: &Value, pointer: &str) -> String {
    let mut out = String::new();
    let mut cur = Some(obj);
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        match cur {
            Some(Value::Array(a)) => {
                out.push_str(&format!("[{token}]"));
                cur = token.parse::<usize>().ok().and_then(|i| a.get(i));
            }
            other => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&token);
                cur = other.and_then(|v| v.get(&token));
            }
        }
    }
    out
}

fn quote_list(options: &Value) -> String {
    options
        .as_array()
        .map(|a| {
            a.iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn schema_cause(obj: &Value, e: &jsonschema::ValidationError<'_>) -> Cause {
    use jsonschema::error::ValidationErrorKind as K;
    let field = field_path(obj, e.instance_path().as_str());
    let instance = e.instance();
    match e.kind() {
        K::Required { property } => {
            let prop = property
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| property.to_string());
            Cause {
                field: if field.is_empty() {
                    prop
                } else {
                    format!("{field}.{prop}")
                },
                message: "Required value".into(),
            }
        }
        K::Enum { options } => Cause {
            message: format!(
                "Unsupported value: {instance}: supported values: {}",
                quote_list(options)
            ),
            field,
        },
        K::Type { kind } => {
            let expected = match kind {
                jsonschema::error::TypeKind::Single(t) => t.to_string(),
                jsonschema::error::TypeKind::Multiple(ts) => ts
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(" or "),
            };
            Cause {
                message: format!(
                    "Invalid value: \"{t}\": {field} in body must be of type {expected}: \"{t}\"",
                    t = json_type(instance),
                ),
                field,
            }
        }
        _ => Cause {
            message: format!("Invalid value: {instance}: {e}"),
            field,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["mode"],
                    "properties": {
                        "mode": {"type": "string", "enum": ["DryRun", "Enforce"], "default": "DryRun"},
                        "size": {"type": "integer", "minimum": 1, "maximum": 10},
                        "name": {"type": "string", "maxLength": 5, "pattern": "^[a-z]+$"},
                        "note": {"type": "string", "nullable": true},
                        "items": {"type": "array", "items": {
                            "type": "object",
                            "properties": {"port": {"type": "integer"}}
                        }},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "window": {
                            "type": "object",
                            "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}},
                            "x-kubernetes-validations": [{"rule": "self.min <= self.max", "message": "min must not exceed max"}]
                        }
                    }
                },
                "status": {"type": "object", "properties": {"ok": {"type": "boolean"}}}
            }
        })
    }

    fn admit(obj: Value) -> Result<Value, Vec<Cause>> {
        Schema::compile(&schema())
            .unwrap()
            .admit(&obj, None)
            .map(|(v, _)| v)
    }

    #[test]
    fn unknown_fields_are_reported() {
        let s = Schema::compile(&schema()).unwrap();
        let (_, dropped) = s
            .admit(
                &obj(json!({"mode": "DryRun", "typo": 1, "items": [{"prot": 1}]})),
                None,
            )
            .unwrap();
        assert_eq!(dropped, vec!["spec.items[0].prot", "spec.typo"]);
    }

    fn obj(spec: Value) -> Value {
        json!({"apiVersion": "x.io/v1", "kind": "X", "metadata": {"name": "a"}, "spec": spec})
    }

    #[test]
    fn good_object_is_defaulted_and_pruned() {
        let out = admit(json!({
            "apiVersion": "x.io/v1", "kind": "X", "metadata": {"name": "a"},
            "spec": {"size": 3, "junk": 1, "note": null, "free": {"any": {"thing": 1}},
                     "labels": {"a": "b"}, "items": [{"port": 1, "junk": 2}]},
            "junk": true
        }))
        .unwrap();
        assert_eq!(out["spec"]["mode"], "DryRun");
        assert!(out["spec"].get("junk").is_none());
        assert!(out.get("junk").is_none());
        assert_eq!(out["spec"]["items"], json!([{"port": 1}]));
        assert_eq!(out["spec"]["free"]["any"]["thing"], 1);
        assert_eq!(out["spec"]["labels"]["a"], "b");
        assert_eq!(out["metadata"]["name"], "a");
    }

    #[test]
    fn enum_violation_names_the_field() {
        let causes = admit(obj(json!({"mode": "Sometimes"}))).unwrap_err();
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec.mode");
        assert!(
            causes[0]
                .message
                .contains("Unsupported value: \"Sometimes\""),
            "{:?}",
            causes
        );
        assert!(
            causes[0].message.contains("\"DryRun\", \"Enforce\""),
            "{:?}",
            causes
        );
    }

    #[test]
    fn types_bounds_patterns_and_lengths() {
        let field = |spec: Value| admit(obj(spec)).unwrap_err()[0].field.clone();
        assert_eq!(field(json!({"size": "big"})), "spec.size");
        assert_eq!(field(json!({"size": 0})), "spec.size");
        assert_eq!(field(json!({"size": 11})), "spec.size");
        assert_eq!(field(json!({"name": "toolong"})), "spec.name");
        assert_eq!(field(json!({"name": "UP"})), "spec.name");
        assert_eq!(
            field(json!({"items": [{"port": "x"}]})),
            "spec.items[0].port"
        );
        assert_eq!(field(json!({"labels": {"a": 1}})), "spec.labels.a");
        let type_msg = admit(obj(json!({"size": "big"}))).unwrap_err()[0]
            .message
            .clone();
        assert!(type_msg.contains("must be of type integer"), "{type_msg}");
    }

    #[test]
    fn cel_rules_are_evaluated() {
        let causes = admit(obj(json!({"window": {"min": 5, "max": 1}}))).unwrap_err();
        assert_eq!(causes[0].field, "spec.window");
        assert!(
            causes[0].message.contains("min must not exceed max"),
            "{causes:?}"
        );
        assert!(admit(obj(json!({"window": {"min": 1, "max": 5}}))).is_ok());
    }

    #[test]
    fn a_rule_that_does_not_compile_is_refused() {
        let bad = json!({"type": "object", "properties": {"spec": {"type": "object",
            "x-kubernetes-validations": [{"rule": "self.size >"}]}}});
        let err = Schema::compile(&bad).unwrap_err();
        assert!(err.contains("x-kubernetes-validations"), "{err}");
    }

    #[test]
    fn nullable_becomes_a_null_type() {
        let t = translate(&json!({"type": "string", "nullable": true, "x-kubernetes-foo": 1}));
        assert_eq!(t, json!({"type": ["string", "null"]}));
    }

    #[test]
    fn pointer_to_field_path() {
        let o = json!({"spec": {"l": [{"a": 1}], "m": {"0": 1}}});
        assert_eq!(field_path(&o, "/spec/l/0/a"), "spec.l[0].a");
        assert_eq!(field_path(&o, "/spec/m/0"), "spec.m.0");
        assert_eq!(field_path(&o, ""), "");
    }
}
