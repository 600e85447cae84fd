//! The write path: create, replace, patch results, manifests.

use serde_json::{Value, json};

use super::super::meta::{self, meta_mut, meta_str};
use super::super::registry::{self, ResourceInfo, StatusOnCreate};
use super::super::status::{ApiError, Cause};
use super::{EventType, Key, Store, WriteOpts, generation_bump, is_crd, set_or_remove};

impl Store {
    /// Create an object (POST). 409 if the name is taken.
    pub fn create(
        &mut self,
        info: &ResourceInfo,
        ns: &str,
        mut body: Value,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        let name = match meta_str(&body, "name").filter(|n| !n.is_empty()) {
            Some(n) => n.to_string(),
            None => match meta_str(&body, "generateName").filter(|n| !n.is_empty()) {
                Some(prefix) => {
                    self.uids += 1;
                    let suffix = &meta::uid(self.seed, self.uids)[..5];
                    format!("{prefix}{suffix}")
                }
                None => {
                    return Err(ApiError::invalid(
                        &info.kind,
                        &info.group,
                        "",
                        vec![Cause {
                            field: "metadata.name".into(),
                            message: "Required value: name or generateName is required".into(),
                        }],
                    ));
                }
            },
        };
        meta_mut(&mut body).insert("name".into(), name.clone().into());
        let key = Key::of(info, ns, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(&info.qualified(), &name));
        }
        self.write(info, key, None, body, None, opts)
    }

    /// Create an object from a manifest (`apiVersion`/`kind` pick the resource; namespaced
    /// objects default to `default`), or replace it when it exists.
    pub fn put_manifest(&mut self, obj: &Value, opts: &WriteOpts) -> Result<Value, ApiError> {
        let api_version = obj["apiVersion"].as_str().unwrap_or_default();
        let kind = obj["kind"].as_str().unwrap_or_default();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let info = self
            .registry
            .find_kind(group, version, kind)
            .cloned()
            .ok_or_else(|| ApiError::no_route(&format!("{api_version} {kind}")))?;
        let ns = meta_str(obj, "namespace").unwrap_or("default").to_string();
        let name = meta_str(obj, "name").unwrap_or_default().to_string();
        match self.get(&info, &ns, &name) {
            Ok(existing) => {
                let mut body = obj.clone();
                let rv = meta_str(&existing, "resourceVersion")
                    .unwrap_or_default()
                    .to_string();
                meta_mut(&mut body).insert("resourceVersion".into(), rv.into());
                self.update(&info, &ns, &name, body, None, opts)
            }
            Err(_) => self.create(&info, &ns, obj.clone(), opts),
        }
    }

    /// Replace an object (PUT), or its status (`subresource = Some("status")`).
    pub fn update(
        &mut self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        body: Value,
        subresource: Option<&str>,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        let key = Key::of(info, ns, name);
        let old = self.get(info, ns, name)?;
        if let Some(body_name) = meta_str(&body, "name")
            && body_name != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let body_rv = meta_str(&body, "resourceVersion").unwrap_or("").to_string();
        if body_rv.is_empty() && info.crd.is_some() {
            return Err(ApiError::invalid(
                &info.kind,
                &info.group,
                name,
                vec![Cause {
                    field: "metadata.resourceVersion".into(),
                    message: "Invalid value: 0x0: must be specified for an update".into(),
                }],
            ));
        }
        self.write(info, key, Some(old), body, subresource, opts)
    }

    /// Write a patched object. `new` is the result of applying the patch to `old`
    /// (or, for an apply that creates, to an empty object).
    pub fn patched(
        &mut self,
        info: &ResourceInfo,
        (ns, name): (&str, &str),
        old: Option<Value>,
        mut new: Value,
        subresource: Option<&str>,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        meta_mut(&mut new).insert("name".into(), name.into());
        self.write(info, Key::of(info, ns, name), old, new, subresource, opts)
    }

    /// The write pipeline shared by create, update and patch.
    fn write(
        &mut self,
        info: &ResourceInfo,
        key: Key,
        old: Option<Value>,
        mut new: Value,
        subresource: Option<&str>,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        if let Some(old) = &old {
            let want = meta_str(&new, "resourceVersion").unwrap_or("");
            if !want.is_empty() && want != meta_str(old, "resourceVersion").unwrap_or("") {
                return Err(ApiError::conflict(&info.qualified(), &key.name));
            }
        }
        match (&old, subresource) {
            (Some(old), Some(_)) => {
                // Status writes change status only.
                let status = new.get("status").cloned();
                new = old.clone();
                set_or_remove(&mut new, "status", status);
            }
            (Some(old), None) => {
                for field in [
                    "uid",
                    "creationTimestamp",
                    "deletionTimestamp",
                    "generation",
                    "managedFields",
                ] {
                    let v = old["metadata"].get(field).cloned();
                    match v {
                        Some(v) => meta_mut(&mut new).insert(field.into(), v),
                        None => meta_mut(&mut new).remove(field),
                    };
                }
                if info.status_subresource {
                    set_or_remove(&mut new, "status", old.get("status").cloned());
                }
            }
            (None, _) => self.prepare_create(info, &key, &mut new)?,
        }
        if let Some(obj) = new.as_object_mut() {
            obj.insert("apiVersion".into(), info.api_version().into());
            obj.insert("kind".into(), info.kind.clone().into());
        }
        let m = meta_mut(&mut new);
        if info.namespaced {
            m.insert("namespace".into(), key.namespace.clone().into());
        } else {
            m.remove("namespace");
        }
        if let Some(schema) = &info.schema {
            let (admitted, dropped) = schema
                .admit(&new, old.as_ref())
                .map_err(|causes| ApiError::invalid(&info.kind, &info.group, &key.name, causes))?;
            if opts.strict && !dropped.is_empty() {
                let fields: Vec<String> = dropped
                    .iter()
                    .map(|f| format!("unknown field \"{f}\""))
                    .collect();
                return Err(ApiError::bad_request(format!(
                    "strict decoding error: {}",
                    fields.join(", ")
                )));
            }
            new = admitted;
        }
        let crd_infos = if is_crd(info) {
            let infos = registry::crd_resources(&new)?;
            // The server's own status; kept as it is while the spec does not change, so that
            // re-applying an unchanged CRD is a no-op.
            let status = match &old {
                Some(o) if o.get("spec") == new.get("spec") && o.get("status").is_some() => {
                    o["status"].clone()
                }
                _ => registry::crd_status(&new, &meta::now()),
            };
            set_or_remove(&mut new, "status", Some(status));
            Some(infos)
        } else {
            None
        };
        if let Some(old) = &old {
            let bump = generation_bump(info, old, &new);
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
            meta_mut(&mut new).insert("generation".into(), (generation + i64::from(bump)).into());
            if meta::same_object(old, &new) {
                return Ok(old.clone());
            }
        }
        meta::record_manager(
            &mut new,
            &opts.manager,
            opts.apply,
            &info.api_version(),
            subresource,
        );
        if opts.dry_run {
            return Ok(new);
        }
        if let Some(infos) = crd_infos {
            self.registry.set_crd(&key.name, infos);
        }
        let type_ = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        let stored = self.commit(key.clone(), new, type_, old);
        let terminating = stored["metadata"].get("deletionTimestamp").is_some();
        if terminating && !meta::has_finalizers(&stored) {
            self.remove(&key);
            self.collect_garbage();
        }
        Ok(stored)
    }

    fn prepare_create(
        &mut self,
        info: &ResourceInfo,
        key: &Key,
        new: &mut Value,
    ) -> Result<(), ApiError> {
        if info.namespaced {
            if key.namespace.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "{} is namespaced: a namespace is required",
                    info.qualified()
                )));
            }
            if !self
                .objects
                .contains_key(&Key::namespace_key(&key.namespace))
            {
                return Err(ApiError::not_found("namespaces", &key.namespace));
            }
        }
        if let Some(ns) = meta_str(new, "namespace")
            && info.namespaced
            && ns != key.namespace
        {
            return Err(ApiError::bad_request(format!(
                "the namespace of the provided object ({ns}) does not match the namespace sent on the request ({})",
                key.namespace
            )));
        }
        self.uids += 1;
        let uid = meta::uid(self.seed, self.uids);
        let m = meta_mut(new);
        m.insert("uid".into(), uid.into());
        m.insert("creationTimestamp".into(), meta::now().into());
        m.insert("generation".into(), 1.into());
        for field in ["resourceVersion", "deletionTimestamp", "managedFields"] {
            m.remove(field);
        }
        match info.status_on_create {
            StatusOnCreate::Keep => {}
            StatusOnCreate::Drop => set_or_remove(new, "status", None),
            StatusOnCreate::PodPending => {
                set_or_remove(new, "status", Some(json!({"phase": "Pending"})))
            }
        }
        if info.group.is_empty() && info.plural == "namespaces" && new["status"]["phase"].is_null()
        {
            set_or_remove(new, "status", Some(json!({"phase": "Active"})));
        }
        Ok(())
    }
}
