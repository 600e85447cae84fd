//! Object metadata rules: generation, no-op detection, managedFields, status isolation. Pure.

use serde_json::{Map, Value, json};

/// Now, as the server writes timestamps (`2024-05-01T12:00:00Z`).
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A fresh uid in the UUID text form, unique within this process.
pub fn uid(seed: u64, counter: u64) -> String {
    let mix = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let a = mix(seed.wrapping_add(counter.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    let b = mix(a ^ counter);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48 & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// The mutable `metadata` map of an object, created if absent.
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let Some(map) = obj.as_object_mut() else {
        unreachable!("just made an object")
    };
    let m = map.entry("metadata").or_insert_with(|| json!({}));
    if !m.is_object() {
        *m = json!({});
    }
    match m.as_object_mut() {
        Some(m) => m,
        None => unreachable!("just made an object"),
    }
}

/// A string field of `metadata`.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// Whether the change from `old` to `new` bumps `metadata.generation`: a change of `spec`
/// when the object has one; otherwise a change of anything but `metadata` (and `status`
/// when status is a subresource).
pub fn generation_changes(old: &Value, new: &Value, status_subresource: bool) -> bool {
    if old.get("spec").is_some() || new.get("spec").is_some() {
        return old.get("spec") != new.get("spec");
    }
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            if status_subresource {
                m.remove("status");
            }
        }
        v
    };
    strip(old) != strip(new)
}

/// Whether `new` is `old` again, ignoring what the server itself maintains
/// (`resourceVersion`, `managedFields`): such a write is a no-op and emits no event.
pub fn same_object(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        let m = meta_mut(&mut v);
        m.remove("resourceVersion");
        m.remove("managedFields");
        v
    };
    strip(old) == strip(new)
}

/// Record a write in `metadata.managedFields`, one entry per manager, operation and
/// subresource (field ownership itself is not tracked).
pub fn record_manager(
    obj: &mut Value,
    manager: &str,
    apply: bool,
    api_version: &str,
    subresource: Option<&str>,
) {
    let operation = if apply { "Apply" } else { "Update" };
    let mut entry = json!({
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": now(),
        "fieldsType": "FieldsV1",
        "fieldsV1": {},
    });
    if let (Some(sub), Some(e)) = (subresource, entry.as_object_mut()) {
        e.insert("subresource".into(), sub.into());
    }
    let meta = meta_mut(obj);
    let list = meta
        .entry("managedFields")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !list.is_array() {
        *list = Value::Array(Vec::new());
    }
    if let Value::Array(entries) = list {
        entries.retain(|e| {
            !(e["manager"] == manager
                && e["operation"] == operation
                && e.get("subresource").and_then(Value::as_str) == subresource)
        });
        entries.push(entry);
    }
}

/// Owner uids named by `metadata.ownerReferences`.
pub fn owner_uids(obj: &Value) -> Vec<&str> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .map(|refs| refs.iter().filter_map(|r| r["uid"].as_str()).collect())
        .unwrap_or_default()
}

/// Whether `metadata.finalizers` is non-empty.
pub fn has_finalizers(obj: &Value) -> bool {
    obj["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_follows_spec_only() {
        let a = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"x": 1}, "status": {"y": 1}});
        let mut b = a.clone();
        b["metadata"]["labels"]["a"] = json!("2");
        b["status"]["y"] = json!(2);
        assert!(!generation_changes(&a, &b, true));
        b["spec"]["x"] = json!(2);
        assert!(generation_changes(&a, &b, true));
    }

    #[test]
    fn generation_without_spec_follows_non_metadata() {
        let a = json!({"metadata": {"name": "l"}, "data": {"k": "v"}});
        let mut b = a.clone();
        b["metadata"]["labels"] = json!({"x": "y"});
        assert!(!generation_changes(&a, &b, false));
        b["data"]["k"] = json!("w");
        assert!(generation_changes(&a, &b, false));
    }

    #[test]
    fn no_op_ignores_server_fields() {
        let a = json!({"metadata": {"resourceVersion": "1", "managedFields": []}, "spec": {}});
        let b = json!({"metadata": {"resourceVersion": "7"}, "spec": {}});
        assert!(same_object(&a, &b));
        let c = json!({"metadata": {}, "spec": {"x": 1}});
        assert!(!same_object(&a, &c));
    }

    #[test]
    fn managers_are_recorded_once_each() {
        let mut o = json!({"metadata": {}});
        record_manager(&mut o, "op", true, "v1", None);
        record_manager(&mut o, "op", true, "v1", None);
        record_manager(&mut o, "op", false, "v1", Some("status"));
        let mf = o["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(mf.len(), 2);
        assert_eq!(mf[1]["subresource"], "status");
    }

    #[test]
    fn uids_are_distinct_and_uuid_shaped() {
        let a = uid(42, 1);
        let b = uid(42, 2);
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
    }
}
