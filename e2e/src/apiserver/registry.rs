//! The resource types the server serves: built-ins and those defined by CRDs. Pure data.

use std::sync::Arc;

use serde_json::{Value, json};

use super::schema::Schema;
use super::status::{ApiError, Cause};

/// What happens to `status` in the body of a create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusOnCreate {
    /// Kept as sent (nodes, resources without a status subresource).
    Keep,
    /// Dropped (custom resources with a status subresource, CRDs: the server writes it).
    Drop,
    /// Replaced by `{phase: Pending}` (pods).
    PodPending,
}

/// One printer column of a CRD version (`additionalPrinterColumns`).
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    /// Header.
    pub name: String,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub type_: String,
    /// Optional format.
    pub format: String,
    /// Description.
    pub description: String,
    /// 0 = always shown; higher = only with `-o wide`.
    pub priority: i64,
    /// Simple JSONPath such as `.status.summary.openFindings`.
    pub json_path: String,
}

/// A served resource type.
#[derive(Debug, Clone)]
pub struct ResourceInfo {
    /// API group (`""` for core).
    pub group: String,
    /// API version.
    pub version: String,
    /// Plural, the path segment (`pods`).
    pub plural: String,
    /// Singular (`pod`).
    pub singular: String,
    /// Kind (`Pod`).
    pub kind: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Whether `status` is a subresource (written only through `/status`).
    pub status_subresource: bool,
    /// Other subresources (`eviction`).
    pub extra_subresources: Vec<String>,
    /// Short names (`po`, `nhp`).
    pub short_names: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Treatment of `status` on create.
    pub status_on_create: StatusOnCreate,
    /// Printer columns (CRDs only; built-ins have fixed tables).
    pub printer_columns: Vec<PrinterColumn>,
    /// The version's `openAPIV3Schema`, compiled (CRDs only).
    pub schema: Option<Arc<Schema>>,
    /// Name of the CRD that defines this resource, if any.
    pub crd: Option<String>,
    /// Whether this version is the CRD's storage version (always true for built-ins).
    pub storage: bool,
}

impl ResourceInfo {
    fn builtin(group: &str, version: &str, plural: &str, kind: &str, namespaced: bool) -> Self {
        Self {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            kind: kind.into(),
            namespaced,
            status_subresource: false,
            extra_subresources: Vec::new(),
            short_names: Vec::new(),
            categories: Vec::new(),
            status_on_create: StatusOnCreate::Keep,
            printer_columns: Vec::new(),
            schema: None,
            crd: None,
            storage: true,
        }
    }

    fn with_status(mut self, on_create: StatusOnCreate) -> Self {
        self.status_subresource = true;
        self.status_on_create = on_create;
        self
    }

    fn short(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(|s| s.to_string()).collect();
        self
    }

    /// `apiVersion` of objects of this resource (`v1`, `netheal.io/v1alpha1`).
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural.group` as the real server names resources in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The `APIResource` entries of this resource and its subresources.
    pub fn discovery_entries(&self) -> Vec<Value> {
        let verbs = [
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ];
        let mut out = vec![json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": verbs,
            "shortNames": self.short_names,
            "categories": self.categories,
        })];
        if self.status_subresource {
            out.push(json!({
                "name": format!("{}/status", self.plural),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        for sub in &self.extra_subresources {
            out.push(json!({
                "name": format!("{}/{sub}", self.plural),
                "singularName": "",
                "namespaced": self.namespaced,
                "group": "policy",
                "version": "v1",
                "kind": "Eviction",
                "verbs": ["create"],
            }));
        }
        out
    }
}

/// Every served resource type.
#[derive(Debug, Clone)]
pub struct Registry {
    resources: Vec<ResourceInfo>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::with_builtins()
    }
}

impl Registry {
    /// The built-in resources netheal and its tests use.
    pub fn with_builtins() -> Self {
        use StatusOnCreate::*;
        let b = ResourceInfo::builtin;
        let mut pods = b("", "v1", "pods", "Pod", true)
            .with_status(PodPending)
            .short(&["po"]);
        pods.extra_subresources = vec!["eviction".into()];
        pods.categories = vec!["all".into()];
        let resources = vec![
            b("", "v1", "namespaces", "Namespace", false)
                .with_status(Keep)
                .short(&["ns"]),
            b("", "v1", "nodes", "Node", false)
                .with_status(Keep)
                .short(&["no"]),
            pods,
            b("", "v1", "events", "Event", true).short(&["ev"]),
            b("", "v1", "configmaps", "ConfigMap", true).short(&["cm"]),
            b("", "v1", "secrets", "Secret", true),
            b("", "v1", "serviceaccounts", "ServiceAccount", true).short(&["sa"]),
            b("", "v1", "services", "Service", true)
                .with_status(Keep)
                .short(&["svc"]),
            b("apps", "v1", "daemonsets", "DaemonSet", true)
                .with_status(Keep)
                .short(&["ds"]),
            b("apps", "v1", "deployments", "Deployment", true)
                .with_status(Keep)
                .short(&["deploy"]),
            b("apps", "v1", "replicasets", "ReplicaSet", true)
                .with_status(Keep)
                .short(&["rs"]),
            b("events.k8s.io", "v1", "events", "Event", true).short(&["ev"]),
            b("coordination.k8s.io", "v1", "leases", "Lease", true),
            b(
                "policy",
                "v1",
                "poddisruptionbudgets",
                "PodDisruptionBudget",
                true,
            )
            .with_status(Keep)
            .short(&["pdb"]),
            b(
                "apiextensions.k8s.io",
                "v1",
                "customresourcedefinitions",
                "CustomResourceDefinition",
                false,
            )
            .with_status(Drop)
            .short(&["crd", "crds"]),
        ];
        Self { resources }
    }

    /// The resource at `group/version/plural`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceInfo> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    /// The resource serving `kind` in `group/version`.
    pub fn find_kind(&self, group: &str, version: &str, kind: &str) -> Option<&ResourceInfo> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.kind == kind)
    }

    /// The resources of one group version.
    pub fn in_group_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'a ResourceInfo> + 'a {
        self.resources
            .iter()
            .filter(move |r| r.group == group && r.version == version)
    }

    /// Groups in registration order, each with its versions (preferred first).
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for r in &self.resources {
            match out.iter_mut().find(|(g, _)| *g == r.group) {
                Some((_, versions)) if !versions.contains(&r.version) => {
                    if r.storage {
                        versions.insert(0, r.version.clone());
                    } else {
                        versions.push(r.version.clone());
                    }
                }
                Some(_) => {}
                None => out.push((r.group.clone(), vec![r.version.clone()])),
            }
        }
        out
    }

    /// Replace the resources a CRD serves (all its served versions).
    pub fn set_crd(&mut self, crd_name: &str, infos: Vec<ResourceInfo>) {
        self.remove_crd(crd_name);
        self.resources.extend(infos);
    }

    /// Stop serving a CRD's resources.
    pub fn remove_crd(&mut self, crd_name: &str) {
        self.resources
            .retain(|r| r.crd.as_deref() != Some(crd_name));
    }
}

/// Read a `CustomResourceDefinition` into the resources it serves, refusing a malformed one
/// with 422 naming the field.
pub fn crd_resources(crd: &Value) -> Result<Vec<ResourceInfo>, ApiError> {
    let name = crd["metadata"]["name"].as_str().unwrap_or_default();
    let mut causes = Vec::new();
    let mut need = |path: &str| -> String {
        let v = path
            .split('.')
            .try_fold(crd, |v, k| v.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default();
        if v.is_empty() {
            causes.push(Cause {
                field: path.into(),
                message: "Required value".into(),
            });
        }
        v.to_string()
    };
    let group = need("spec.group");
    let plural = need("spec.names.plural");
    let kind = need("spec.names.kind");
    let scope = need("spec.scope");
    if !causes.is_empty() {
        return Err(invalid_crd(name, causes));
    }
    let expected = format!("{plural}.{group}");
    if name != expected {
        return Err(invalid_crd(
            name,
            vec![Cause {
                field: "metadata.name".into(),
                message: format!(
                    "Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"
                ),
            }],
        ));
    }
    let namespaced = match scope.as_str() {
        "Namespaced" => true,
        "Cluster" => false,
        other => {
            return Err(invalid_crd(
                name,
                vec![Cause {
                    field: "spec.scope".into(),
                    message: format!(
                        "Unsupported value: {other:?}: supported values: \"Cluster\", \"Namespaced\""
                    ),
                }],
            ));
        }
    };
    let names = &crd["spec"]["names"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let versions = crd["spec"]["versions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        return Err(invalid_crd(
            name,
            vec![Cause {
                field: "spec.versions".into(),
                message: "Invalid value: \"null\": must have exactly one version marked as storage version".into(),
            }],
        ));
    }
    let mut out = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let Some(version) = v["name"].as_str().filter(|s| !s.is_empty()) else {
            return Err(invalid_crd(
                name,
                vec![Cause {
                    field: format!("spec.versions[{i}].name"),
                    message: "Required value".into(),
                }],
            ));
        };
        if v["served"] == Value::Bool(false) {
            continue;
        }
        let status_subresource = v["subresources"].get("status").is_some();
        let schema = match v["schema"].get("openAPIV3Schema") {
            Some(raw) => Some(Arc::new(Schema::compile(raw).map_err(|m| {
                invalid_crd(
                    name,
                    vec![Cause {
                        field: format!("spec.versions[{i}].schema.openAPIV3Schema"),
                        message: format!("Invalid value: {m}"),
                    }],
                )
            })?)),
            None => None,
        };
        out.push(ResourceInfo {
            group: group.clone(),
            version: version.into(),
            plural: plural.clone(),
            singular: names["singular"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| kind.to_lowercase()),
            kind: kind.clone(),
            namespaced,
            status_subresource,
            extra_subresources: Vec::new(),
            short_names: strings(&names["shortNames"]),
            categories: strings(&names["categories"]),
            status_on_create: if status_subresource {
                StatusOnCreate::Drop
            } else {
                StatusOnCreate::Keep
            },
            printer_columns: printer_columns(&v["additionalPrinterColumns"]),
            schema,
            crd: Some(name.to_string()),
            storage: v["storage"].as_bool().unwrap_or(versions.len() == 1),
        });
    }
    Ok(out)
}

fn printer_columns(cols: &Value) -> Vec<PrinterColumn> {
    let s = |c: &Value, k: &str| c[k].as_str().unwrap_or_default().to_string();
    cols.as_array()
        .map(|a| {
            a.iter()
                .map(|c| PrinterColumn {
                    name: s(c, "name"),
                    type_: s(c, "type"),
                    format: s(c, "format"),
                    description: s(c, "description"),
                    priority: c["priority"].as_i64().unwrap_or(0),
                    json_path: s(c, "jsonPath"),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn invalid_crd(name: &str, causes: Vec<Cause>) -> ApiError {
    ApiError::invalid(
        "CustomResourceDefinition",
        "apiextensions.k8s.io",
        name,
        causes,
    )
}

/// The status the server writes on an accepted CRD (Established, NamesAccepted).
pub fn crd_status(crd: &Value, now: &str) -> Value {
    let stored: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .filter(|v| v["storage"].as_bool().unwrap_or(false))
                .map(|v| v["name"].clone())
                .collect()
        })
        .unwrap_or_default();
    let cond = |t: &str, reason: &str| json!({"type": t, "status": "True", "reason": reason, "message": "", "lastTransitionTime": now});
    json!({
        "acceptedNames": crd["spec"]["names"],
        "storedVersions": stored,
        "conditions": [cond("NamesAccepted", "NoConflicts"), cond("Established", "InitialNamesAccepted")],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.io"},
            "spec": {
                "group": "example.io",
                "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [{
                    "name": "v1", "served": true, "storage": true,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}],
                    "schema": {"openAPIV3Schema": {"type": "object"}}
                }]
            }
        })
    }

    #[test]
    fn crd_becomes_a_resource() {
        let infos = crd_resources(&crd()).unwrap();
        assert_eq!(infos.len(), 1);
        let w = &infos[0];
        assert_eq!(
            (w.group.as_str(), w.plural.as_str(), w.kind.as_str()),
            ("example.io", "widgets", "Widget")
        );
        assert!(w.namespaced && w.status_subresource);
        assert_eq!(w.singular, "widget");
        assert_eq!(w.short_names, vec!["wd"]);
        assert_eq!(w.printer_columns[0].json_path, ".spec.size");
        assert_eq!(w.status_on_create, StatusOnCreate::Drop);
        let mut reg = Registry::with_builtins();
        reg.set_crd("widgets.example.io", infos);
        assert!(reg.find("example.io", "v1", "widgets").is_some());
        assert!(reg.groups().iter().any(|(g, _)| g == "example.io"));
        reg.remove_crd("widgets.example.io");
        assert!(reg.find("example.io", "v1", "widgets").is_none());
    }

    #[test]
    fn malformed_crd_names_the_field() {
        let mut c = crd();
        c["spec"]["names"]["kind"] = Value::Null;
        let e = crd_resources(&c).unwrap_err();
        assert_eq!(e.code, 422);
        assert!(e.message.contains("spec.names.kind"), "{}", e.message);
        let mut c = crd();
        c["metadata"]["name"] = json!("wrong");
        assert!(
            crd_resources(&c)
                .unwrap_err()
                .message
                .contains("metadata.name")
        );
    }

    #[test]
    fn builtins_have_discovery_entries_with_subresources() {
        let reg = Registry::with_builtins();
        let pods = reg.find("", "v1", "pods").unwrap();
        let names: Vec<String> = pods
            .discovery_entries()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, vec!["pods", "pods/status", "pods/eviction"]);
        assert_eq!(pods.qualified(), "pods");
        let lease = reg.find("coordination.k8s.io", "v1", "leases").unwrap();
        assert_eq!(lease.api_version(), "coordination.k8s.io/v1");
    }
}
