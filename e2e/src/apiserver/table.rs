//! Server-side printing: `meta.k8s.io/v1` Table answers for `kubectl get`. Pure.

use serde_json::{Value, json};

use super::registry::{PrinterColumn, ResourceInfo};

/// Whether `Accept` asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

/// Build the Table of `objects`. `include_object` is the `includeObject` parameter
/// (`None`, `Metadata` (default) or `Object`).
pub fn table(
    info: &ResourceInfo,
    objects: &[Value],
    rv: u64,
    include_object: &str,
    now: i64,
) -> Value {
    let columns = columns(info);
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let cells: Vec<Value> = columns.iter().map(|c| cell(info, c, o, now)).collect();
            let object = match include_object {
                "None" => Value::Null,
                "Object" => o.clone(),
                _ => json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": o["metadata"],
                }),
            };
            json!({"cells": cells, "object": object})
        })
        .collect();
    let defs: Vec<Value> = columns
        .iter()
        .map(|c| {
            json!({
                "name": c.name, "type": c.type_, "format": c.format,
                "description": c.description, "priority": c.priority,
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv.to_string()},
        "columnDefinitions": defs,
        "rows": rows,
    })
}

fn col(name: &str, type_: &str, priority: i64, json_path: &str) -> PrinterColumn {
    PrinterColumn {
        name: name.into(),
        type_: type_.into(),
        format: if name == "Name" {
            "name".into()
        } else {
            String::new()
        },
        description: String::new(),
        priority,
        json_path: json_path.into(),
    }
}

const AGE: &str = ".metadata.creationTimestamp";

fn columns(info: &ResourceInfo) -> Vec<PrinterColumn> {
    let name = col("Name", "string", 0, ".metadata.name");
    let age = col("Age", "date", 0, AGE);
    let mut out = vec![name];
    if info.crd.is_some() && !info.printer_columns.is_empty() {
        out.extend(info.printer_columns.iter().cloned());
        return out;
    }
    match (info.group.as_str(), info.plural.as_str()) {
        ("", "nodes") => out.extend([
            col("Status", "string", 0, "#node-status"),
            col("Roles", "string", 0, "#node-roles"),
            age,
            col("Version", "string", 0, ".status.nodeInfo.kubeletVersion"),
            col("Internal-IP", "string", 1, "#node-ip"),
        ]),
        ("", "pods") => out.extend([
            col("Ready", "string", 0, "#pod-ready"),
            col("Status", "string", 0, "#pod-status"),
            col("Restarts", "integer", 0, "#pod-restarts"),
            age,
            col("IP", "string", 1, ".status.podIP"),
            col("Node", "string", 1, ".spec.nodeName"),
        ]),
        ("", "namespaces") => out.extend([col("Status", "string", 0, ".status.phase"), age]),
        _ => out.push(age),
    }
    out
}

fn cell(info: &ResourceInfo, c: &PrinterColumn, o: &Value, now: i64) -> Value {
    let _ = info;
    match c.json_path.as_str() {
        "#node-status" => node_status(o).into(),
        "#node-roles" => node_roles(o).into(),
        "#node-ip" => o["status"]["addresses"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["type"] == "InternalIP"))
            .map(|x| x["address"].clone())
            .unwrap_or_else(|| "<none>".into()),
        "#pod-ready" => pod_ready(o).into(),
        "#pod-status" => pod_status(o).into(),
        "#pod-restarts" => o["status"]["containerStatuses"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s["restartCount"].as_i64())
                    .sum::<i64>()
            })
            .unwrap_or(0)
            .into(),
        path => {
            let v = lookup(o, path).cloned().unwrap_or(Value::Null);
            match (c.type_.as_str(), &v) {
                ("date", Value::String(ts)) => age(ts, now).into(),
                _ => v,
            }
        }
    }
}

/// Evaluate a simple JSONPath (`.a.b`, `.a[0].b`, `{.a.b}`).
pub fn lookup<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut cur = obj;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (field, indices) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !field.is_empty() {
            cur = cur.get(field)?;
        }
        for idx in indices.split('[').filter(|s| !s.is_empty()) {
            let i: usize = idx.trim_end_matches(']').parse().ok()?;
            cur = cur.get(i)?;
        }
    }
    Some(cur)
}

fn node_status(o: &Value) -> String {
    let ready = o["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .map(|c| c["status"].as_str().unwrap_or("Unknown"));
    let mut s = match ready {
        Some("True") => "Ready",
        Some("False") => "NotReady",
        _ => "Unknown",
    }
    .to_string();
    if o["spec"]["unschedulable"] == Value::Bool(true) {
        s.push_str(",SchedulingDisabled");
    }
    s
}

fn node_roles(o: &Value) -> String {
    let roles: Vec<&str> = o["metadata"]["labels"]
        .as_object()
        .map(|l| {
            l.keys()
                .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                .filter(|r| !r.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if roles.is_empty() {
        "<none>".into()
    } else {
        roles.join(",")
    }
}

fn pod_ready(o: &Value) -> String {
    let total = o["spec"]["containers"].as_array().map_or(0, Vec::len);
    let ready = o["status"]["containerStatuses"].as_array().map_or(0, |a| {
        a.iter().filter(|s| s["ready"] == Value::Bool(true)).count()
    });
    format!("{ready}/{total}")
}

fn pod_status(o: &Value) -> String {
    if o["metadata"].get("deletionTimestamp").is_some() {
        return "Terminating".into();
    }
    o["status"]["reason"]
        .as_str()
        .or(o["status"]["phase"].as_str())
        .unwrap_or("Unknown")
        .to_string()
}

/// The age of an RFC 3339 timestamp, formatted like `kubectl` (`45s`, `5m10s`, `3h`, `2d`).
pub fn age(ts: &str, now: i64) -> String {
    match ts.parse::<jiff::Timestamp>() {
        Ok(t) => human_duration(now - t.as_second()),
        Err(_) => "<invalid>".into(),
    }
}

/// Kubernetes' `duration.HumanDuration`.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let s = secs.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    let with = |big: i64, unit: &str, small: i64, sunit: &str| {
        if small == 0 {
            format!("{big}{unit}")
        } else {
            format!("{big}{unit}{small}{sunit}")
        }
    };
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        with(m, "m", s % 60, "s")
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        with(h, "h", m % 60, "m")
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        with(d, "d", h % 24, "h")
    } else if h < 24 * 365 * 2 {
        format!("{d}d")
    } else if h < 24 * 365 * 8 {
        with(d / 365, "y", d % 365, "d")
    } else {
        format!("{}y", d / 365)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::registry::{Registry, crd_resources};

    #[test]
    fn durations_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(310), "5m10s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(10 * 3600), "10h");
        assert_eq!(human_duration(3 * 86400), "3d");
        assert_eq!(human_duration(30 * 86400), "30d");
    }

    #[test]
    fn jsonpath_lookup() {
        let o = json!({"status": {"summary": {"n": 3}, "l": [{"a": 1}]}});
        assert_eq!(lookup(&o, ".status.summary.n"), Some(&json!(3)));
        assert_eq!(lookup(&o, "{.status.l[0].a}"), Some(&json!(1)));
        assert_eq!(lookup(&o, ".status.missing"), None);
    }

    #[test]
    fn crd_printer_columns() {
        let crd = json!({
            "metadata": {"name": "widgets.example.io"},
            "spec": {"group": "example.io", "scope": "Cluster",
                "names": {"plural": "widgets", "kind": "Widget"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "additionalPrinterColumns": [
                        {"name": "Mode", "type": "string", "jsonPath": ".spec.mode"},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]}]}
        });
        let info = &crd_resources(&crd).unwrap()[0];
        let now = "2024-01-01T01:00:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_second();
        let obj = json!({"metadata": {"name": "w", "creationTimestamp": "2024-01-01T00:00:00Z"},
                         "spec": {"mode": "DryRun"}});
        let t = table(info, &[obj], 7, "Metadata", now);
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["Name", "Mode", "Age"]);
        assert_eq!(t["rows"][0]["cells"], json!(["w", "DryRun", "60m"]));
        assert_eq!(t["rows"][0]["object"]["metadata"]["name"], "w");
    }

    #[test]
    fn node_and_pod_tables() {
        let reg = Registry::with_builtins();
        let nodes = reg.find("", "v1", "nodes").unwrap();
        let node = json!({"metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.33.0"}}});
        let t = table(nodes, &[node], 1, "None", 0);
        assert_eq!(t["rows"][0]["cells"][1], "Ready");
        assert_eq!(t["rows"][0]["cells"][2], "control-plane");
        assert_eq!(t["rows"][0]["cells"][4], "v1.33.0");
        let pods = reg.find("", "v1", "pods").unwrap();
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{}, {}]},
            "status": {"phase": "Running", "containerStatuses": [{"ready": true, "restartCount": 2}]}});
        let t = table(pods, &[pod], 1, "None", 0);
        assert_eq!(t["rows"][0]["cells"][1], "1/2");
        assert_eq!(t["rows"][0]["cells"][2], "Running");
        assert_eq!(t["rows"][0]["cells"][3], 2);
    }

    #[test]
    fn accept_header() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
    }
}
