//! JSON merge patch (RFC 7386) and JSON patch (RFC 6902). Pure.

use serde_json::Value;

use super::status::ApiError;

/// The patch flavours the server accepts, by `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json` (built-in resources only; see `strategic`).
    Strategic,
    /// `application/json-patch+json`.
    Json,
    /// `application/apply-patch+yaml`: server-side apply, applied as a merge patch.
    Apply,
}

impl PatchKind {
    /// Recognise a `Content-Type` header value.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/json-patch+json" => Some(Self::Json),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// Apply an RFC 7386 merge patch: objects merge, `null` deletes, anything else replaces.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    if let Value::Object(map) = target {
        for (k, v) in patch_map {
            if v.is_null() {
                map.remove(k);
            } else {
                merge(map.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// Apply an RFC 6902 JSON patch (a list of operations), all or nothing.
pub fn json_patch(target: &Value, ops: &Value) -> Result<Value, ApiError> {
    let ops = ops
        .as_array()
        .ok_or_else(|| ApiError::bad_request("json patch must be a list of operations"))?;
    let mut doc = target.clone();
    for (i, op) in ops.iter().enumerate() {
        apply_op(&mut doc, op).map_err(|m| {
            ApiError::unprocessable(format!("the server rejected our request due to an error in our request: json patch operation {i}: {m}"))
        })?;
    }
    Ok(doc)
}

fn field<'a>(op: &'a Value, name: &str) -> Result<&'a Value, String> {
    op.get(name).ok_or_else(|| format!("missing `{name}`"))
}

fn str_field<'a>(op: &'a Value, name: &str) -> Result<&'a str, String> {
    field(op, name)?
        .as_str()
        .ok_or_else(|| format!("`{name}` must be a string"))
}

fn apply_op(doc: &mut Value, op: &Value) -> Result<(), String> {
    let path = str_field(op, "path")?;
    match str_field(op, "op")? {
        "add" => add(doc, path, field(op, "value")?.clone()),
        "remove" => remove(doc, path).map(drop),
        "replace" => {
            remove(doc, path)?;
            add(doc, path, field(op, "value")?.clone())
        }
        "move" => {
            let v = remove(doc, str_field(op, "from")?)?;
            add(doc, path, v)
        }
        "copy" => {
            let v = doc
                .pointer(str_field(op, "from")?)
                .cloned()
                .ok_or("`from` does not exist")?;
            add(doc, path, v)
        }
        "test" => {
            let want = field(op, "value")?;
            match doc.pointer(path) {
                Some(got) if got == want => Ok(()),
                _ => Err(format!("test failed at {path}")),
            }
        }
        other => Err(format!("unknown op {other:?}")),
    }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn split_parent(path: &str) -> Result<(&str, String), String> {
    let idx = path
        .rfind('/')
        .ok_or_else(|| format!("invalid path {path:?}"))?;
    Ok((&path[..idx], unescape(&path[idx + 1..])))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = split_parent(path)?;
    match doc.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.insert(last, value);
            Ok(())
        }
        Some(Value::Array(list)) => {
            let idx = if last == "-" {
                list.len()
            } else {
                last.parse::<usize>()
                    .map_err(|_| format!("bad index in {path:?}"))?
            };
            if idx > list.len() {
                return Err(format!("index out of range in {path:?}"));
            }
            list.insert(idx, value);
            Ok(())
        }
        _ => Err(format!("parent of {path:?} does not exist")),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split_parent(path)?;
    match doc.pointer_mut(parent) {
        Some(Value::Object(map)) => map
            .remove(&last)
            .ok_or_else(|| format!("{path:?} does not exist")),
        Some(Value::Array(list)) => {
            let idx = last
                .parse::<usize>()
                .map_err(|_| format!("bad index in {path:?}"))?;
            if idx >= list.len() {
                return Err(format!("index out of range in {path:?}"));
            }
            Ok(list.remove(idx))
        }
        _ => Err(format!("{path:?} does not exist")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7386_examples() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge(
            &mut t,
            &json!({"a": "z", "c": {"f": null}, "l": [3], "n": {"x": 1}}),
        );
        assert_eq!(
            t,
            json!({"a": "z", "c": {"d": "e"}, "l": [3], "n": {"x": 1}})
        );
        let mut t = json!({"a": 1});
        merge(&mut t, &json!(["x"]));
        assert_eq!(t, json!(["x"]));
    }

    #[test]
    fn json_patch_operations() {
        let doc = json!({"metadata": {"labels": {"a/b": "1"}}, "spec": {"l": [1, 2, 3]}});
        let out = json_patch(
            &doc,
            &json!([
                {"op": "test", "path": "/spec/l/0", "value": 1},
                {"op": "add", "path": "/spec/l/-", "value": 4},
                {"op": "remove", "path": "/spec/l/1"},
                {"op": "replace", "path": "/metadata/labels/a~1b", "value": "2"},
                {"op": "copy", "from": "/spec/l", "path": "/spec/m"},
                {"op": "move", "from": "/spec/m", "path": "/spec/n"},
            ]),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"labels": {"a/b": "2"}}, "spec": {"l": [1, 3, 4], "n": [1, 3, 4]}})
        );
    }

    #[test]
    fn failed_json_patch_changes_nothing() {
        let doc = json!({"spec": {"x": 1}});
        let err = json_patch(
            &doc,
            &json!([{"op": "test", "path": "/spec/x", "value": 2}]),
        )
        .unwrap_err();
        assert_eq!(err.code, 422);
        assert!(json_patch(&doc, &json!([{"op": "remove", "path": "/spec/y"}])).is_err());
        assert!(json_patch(&doc, &json!({"op": "add"})).is_err());
    }

    #[test]
    fn content_types() {
        assert_eq!(
            PatchKind::from_content_type("application/apply-patch+yaml; charset=utf-8"),
            Some(PatchKind::Apply)
        );
        assert_eq!(PatchKind::from_content_type("text/plain"), None);
    }
}
