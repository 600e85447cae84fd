//! Strategic merge patch for built-in resources, for the lists that matter: lists of objects
//! with a known merge key (containers by `name`, conditions by `type`, ...) merge by that key;
//! `finalizers` merge as a set; every other list is replaced. Directives: `$patch`
//! (`replace`, `delete`, `merge`), `$retainKeys`, `$setElementOrder/F`,
//! `$deleteFromPrimitiveList/F`. Pure.

use serde_json::{Map, Value};

/// The merge key of a list field, from the Kubernetes types' `patchMergeKey` tags. `ports` is
/// keyed by `containerPort` in containers and by `port` in services.
fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "containerStatuses"
        | "initContainerStatuses"
        | "ephemeralContainerStatuses"
        | "resourceClaims" => "name",
        "conditions" | "addresses" => "type",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "ownerReferences" => "uid",
        "hostAliases" | "podIPs" | "hostIPs" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        "taints" => "key",
        "ports" if items.iter().any(|i| i.get("containerPort").is_some()) => "containerPort",
        "ports" => "port",
        _ => return None,
    })
}

/// Apply a strategic merge patch to `target`.
pub fn apply(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    match p.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *target = Value::Object(strip(p));
            return;
        }
        Some("delete") => {
            *target = Value::Object(Map::new());
            return;
        }
        _ => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else { return };
    for (k, v) in p {
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        let slot = t.entry(k.clone()).or_insert(Value::Null);
        match (slot.as_array_mut(), v.as_array()) {
            (Some(old), Some(new)) => merge_list(k, old, new),
            (None, Some(new)) => {
                let items = new
                    .iter()
                    .filter(|i| i.get("$patch").and_then(Value::as_str) != Some("delete"))
                    .cloned()
                    .map(without_directives);
                *slot = Value::Array(items.collect());
            }
            _ if v.is_object() => apply(slot, v),
            _ => *slot = v.clone(),
        }
    }
    for (k, v) in p {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/")
            && let (Some(Value::Array(list)), Some(gone)) = (t.get_mut(field), v.as_array())
        {
            list.retain(|x| !gone.contains(x));
        }
        if let Some(field) = k.strip_prefix("$setElementOrder/")
            && let (Some(Value::Array(list)), Some(order)) = (t.get_mut(field), v.as_array())
        {
            reorder(field, list, order);
        }
    }
    if let Some(Value::Array(keep)) = p.get("$retainKeys") {
        t.retain(|k, _| keep.iter().any(|x| x.as_str() == Some(k)));
    }
}

fn strip(p: &Map<String, Value>) -> Map<String, Value> {
    p.iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn merge_list(field: &str, old: &mut Vec<Value>, new: &[Value]) {
    if field == "finalizers" {
        for v in new {
            if !old.contains(v) {
                old.push(v.clone());
            }
        }
        return;
    }
    let all: Vec<Value> = old.iter().chain(new).cloned().collect();
    let Some(key) = merge_key(field, &all) else {
        *old = new.iter().map(|v| without_directives(v.clone())).collect();
        return;
    };
    for item in new {
        let id = item.get(key);
        let pos = old.iter().position(|o| id.is_some() && o.get(key) == id);
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                old.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => apply(&mut old[i], item),
            (None, false) => old.push(without_directives(item.clone())),
        }
    }
}

fn without_directives(mut v: Value) -> Value {
    if let Value::Object(m) = &mut v {
        m.retain(|k, _| !k.starts_with('$'));
    }
    v
}

fn reorder(field: &str, list: &mut [Value], order: &[Value]) {
    let Some(key) = merge_key(field, list) else {
        return;
    };
    let rank = |v: &Value| {
        order
            .iter()
            .position(|o| o.get(key).is_some() && o.get(key) == v.get(key))
            .unwrap_or(usize::MAX)
    };
    list.sort_by_key(rank);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patched(target: Value, patch: Value) -> Value {
        let mut t = target;
        apply(&mut t, &patch);
        t
    }

    #[test]
    fn containers_merge_by_name() {
        let pod = json!({"spec": {"containers": [
            {"name": "a", "image": "a:1", "ports": [{"containerPort": 80}]},
            {"name": "b", "image": "b:1"}]}});
        let out = patched(
            pod,
            json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                            "containers": [{"name": "a", "image": "a:2"}]}}),
        );
        assert_eq!(
            out,
            json!({"spec": {"containers": [
                {"name": "b", "image": "b:1"},
                {"name": "a", "image": "a:2", "ports": [{"containerPort": 80}]}]}})
        );
    }

    #[test]
    fn conditions_merge_by_type_and_delete_directive() {
        let status = json!({"conditions": [
            {"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}]});
        let out = patched(
            status.clone(),
            json!({"conditions": [{"type": "Ready", "status": "True"}]}),
        );
        assert_eq!(
            out["conditions"][0],
            json!({"type": "Ready", "status": "True"})
        );
        assert_eq!(out["conditions"][1]["type"], "PodScheduled");
        let out = patched(
            status,
            json!({"conditions": [{"type": "Ready", "$patch": "delete"}, {"type": "New", "status": "True"}]}),
        );
        assert_eq!(
            out["conditions"],
            json!([{"type": "PodScheduled", "status": "True"}, {"type": "New", "status": "True"}])
        );
    }

    #[test]
    fn other_lists_replace_and_finalizers_merge() {
        let o = json!({"metadata": {"finalizers": ["a"]}, "spec": {"args": ["x", "y"]}});
        let out = patched(
            o,
            json!({"metadata": {"finalizers": ["b"]}, "spec": {"args": ["z"]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(out["spec"]["args"], json!(["z"]));
        let out = patched(
            out,
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
    }

    #[test]
    fn map_directives() {
        let o = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}, "x": 1}});
        let out = patched(
            o.clone(),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
        );
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        let out = patched(o, json!({"spec": {"$patch": "replace", "y": 2}}));
        assert_eq!(out["spec"], json!({"y": 2}));
        let out = patched(json!({"a": {"b": 1}, "c": 1}), json!({"a": null}));
        assert_eq!(out, json!({"c": 1}));
    }
}
