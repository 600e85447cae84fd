//! The object store: JSON objects by resource, namespace and name, one cluster-wide
//! resourceVersion, an event history for watches, and the write rules (status subresource,
//! generation, optimistic concurrency, finalizers, owner-reference garbage collection).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::meta::{self, meta_mut, meta_str};
use super::registry::{self, Registry, ResourceInfo, StatusOnCreate};
use super::selector::{FieldSelector, LabelSelector};
use super::status::{ApiError, Cause};

/// Where an object lives: `(group, resource, namespace, name)`; `namespace` is `""` for
/// cluster-scoped objects. All versions of a resource share one key space.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// API group.
    pub group: String,
    /// Resource plural.
    pub resource: String,
    /// Namespace or `""`.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl Key {
    fn of(info: &ResourceInfo, namespace: &str, name: &str) -> Self {
        Self {
            group: info.group.clone(),
            resource: info.plural.clone(),
            namespace: if info.namespaced {
                namespace.into()
            } else {
                String::new()
            },
            name: name.into(),
        }
    }

    fn namespace_key(name: &str) -> Self {
        Self {
            group: String::new(),
            resource: "namespaces".into(),
            namespace: String::new(),
            name: name.into(),
        }
    }
}

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

impl EventType {
    /// The watch wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, as retained in the history and broadcast to watches.
#[derive(Debug, Clone)]
pub struct Event {
    /// resourceVersion of the change.
    pub rv: u64,
    /// Kind of change.
    pub type_: EventType,
    /// Where.
    pub key: Key,
    /// The object after the change (for `Deleted`: its last state).
    pub object: Value,
    /// The object before the change (`Modified` only), for selector transitions.
    pub old: Option<Value>,
}

/// Which objects a list, watch or collection delete covers.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Namespace; `None` = all namespaces.
    pub namespace: Option<String>,
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
}

impl Filter {
    /// Whether an object passes the selectors (the namespace is checked by key).
    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }

    fn covers(&self, info: &ResourceInfo, key: &Key) -> bool {
        key.group == info.group
            && key.resource == info.plural
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| !info.namespaced || *ns == key.namespace)
    }
}

/// Options of a write.
#[derive(Debug, Clone, Default)]
pub struct WriteOpts {
    /// `dryRun=All`: validate and answer, store nothing.
    pub dry_run: bool,
    /// `fieldManager`, or the client's user agent.
    pub manager: String,
    /// The write is a server-side apply.
    pub apply: bool,
    /// `fieldValidation=Strict`: unknown fields are refused (400) instead of dropped.
    pub strict: bool,
}

/// Options of a delete.
#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `propagationPolicy: Orphan`: dependents lose the owner reference instead of going.
    pub orphan: bool,
    /// `preconditions.resourceVersion`.
    pub precondition_rv: Option<String>,
    /// `preconditions.uid`.
    pub precondition_uid: Option<String>,
}

/// The result of a delete: the object is gone, or waits for its finalizers.
#[derive(Debug, Clone)]
pub enum Deleted {
    /// Removed; its last state.
    Gone(Value),
    /// Marked with `deletionTimestamp`; finalizers remain.
    Pending(Value),
}

/// Configuration of the store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Events kept for watches that resume from a resourceVersion.
    pub history_limit: usize,
}

/// All state of the server.
#[derive(Debug)]
pub struct Store {
    registry: Registry,
    objects: BTreeMap<Key, Value>,
    rv: u64,
    history: VecDeque<Arc<Event>>,
    history_limit: usize,
    compacted: u64,
    tx: broadcast::Sender<Arc<Event>>,
    seed: u64,
    uids: u64,
    /// Test hook: every eviction answers 429.
    pub evictions_blocked: bool,
}

impl Store {
    /// An empty cluster with the built-in resources and the standard namespaces.
    pub fn new(config: StoreConfig) -> Self {
        let (tx, _) = broadcast::channel(16_384);
        let seed = jiff::Timestamp::now().as_nanosecond() as u64;
        let mut store = Self {
            registry: Registry::with_builtins(),
            objects: BTreeMap::new(),
            rv: 0,
            history: VecDeque::new(),
            history_limit: config.history_limit.max(1),
            compacted: 0,
            tx,
            seed,
            uids: 0,
            evictions_blocked: false,
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            if let Some(info) = store.registry.find("", "v1", "namespaces").cloned() {
                // Cannot fail: a fresh store, valid names.
                let _ = store.create(&info, "", body, &WriteOpts::default());
            }
        }
        store
    }

    /// The served resource types.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The newest resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// Forget the retained event history: every resourceVersion issued so far becomes too
    /// old to watch from (410). The resourceVersion moves on by one, so a fresh list gives a
    /// version that can be watched.
    pub fn compact(&mut self) {
        self.rv += 1;
        self.compacted = self.rv;
        self.history.clear();
    }

    /// Read one object.
    pub fn get(&self, info: &ResourceInfo, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&Key::of(info, ns, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&info.qualified(), name))
    }

    /// Objects that pass the filter, in key order, and the current resourceVersion.
    pub fn list(&self, info: &ResourceInfo, filter: &Filter) -> (Vec<Value>, u64) {
        let items = self
            .objects
            .iter()
            .filter(|(k, v)| filter.covers(info, k) && filter.matches(v))
            .map(|(_, v)| v.clone())
            .collect();
        (items, self.rv)
    }

    /// The state a watch starts from: the events to send first, and the live feed. With no
    /// resourceVersion (or `0`) every current object comes as `ADDED`; otherwise the retained
    /// events after it, or 410 when they are no longer retained.
    pub fn watch(
        &self,
        info: &ResourceInfo,
        filter: &Filter,
        from: Option<u64>,
    ) -> Result<(Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>), ApiError> {
        let initial = match from {
            None | Some(0) => self
                .objects
                .iter()
                .filter(|(k, _)| filter.covers(info, k))
                .map(|(k, v)| {
                    Arc::new(Event {
                        rv: rv_of(v),
                        type_: EventType::Added,
                        key: k.clone(),
                        object: v.clone(),
                        old: None,
                    })
                })
                .collect(),
            Some(rv) if rv < self.compacted => {
                return Err(ApiError::expired(rv, self.compacted + 1));
            }
            Some(rv) => self
                .history
                .iter()
                .filter(|e| e.rv > rv && filter.covers(info, &e.key))
                .cloned()
                .collect(),
        };
        Ok((initial, self.tx.subscribe()))
    }

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
        ns: &str,
        name: &str,
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
            let status = registry::crd_status(&new, &meta::now());
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

    /// Delete an object: at once, or (with finalizers) by marking it. Dependents named by
    /// owner references go too (or are orphaned), as the garbage collector does.
    pub fn delete(
        &mut self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
    ) -> Result<Deleted, ApiError> {
        let key = Key::of(info, ns, name);
        let current = self.get(info, ns, name)?;
        let conflict = |want: &Option<String>, field: &str| {
            want.as_deref()
                .is_some_and(|w| Some(w) != meta_str(&current, field))
        };
        if conflict(&opts.precondition_rv, "resourceVersion")
            || conflict(&opts.precondition_uid, "uid")
        {
            return Err(ApiError::conflict(&info.qualified(), name));
        }
        if opts.dry_run {
            return Ok(Deleted::Gone(current));
        }
        if meta::has_finalizers(&current) {
            if current["metadata"].get("deletionTimestamp").is_some() {
                return Ok(Deleted::Pending(current));
            }
            let mut marked = current.clone();
            let m = meta_mut(&mut marked);
            m.insert("deletionTimestamp".into(), meta::now().into());
            m.insert("deletionGracePeriodSeconds".into(), 0.into());
            return Ok(Deleted::Pending(self.commit(
                key,
                marked,
                EventType::Modified,
                Some(current),
            )));
        }
        if opts.orphan {
            self.orphan_dependents(meta_str(&current, "uid").unwrap_or(""));
        }
        let gone = self.remove(&key).unwrap_or(current);
        self.collect_garbage();
        Ok(Deleted::Gone(gone))
    }

    /// Evict a pod (policy/v1 Eviction): 429 when blocked by the test hook or by a
    /// PodDisruptionBudget whose `status.disruptionsAllowed` is 0.
    pub fn evict(&mut self, pods: &ResourceInfo, ns: &str, name: &str) -> Result<(), ApiError> {
        let pod = self.get(pods, ns, name)?;
        if self.evictions_blocked {
            return Err(ApiError::too_many_requests(
                "Cannot evict pod as it would violate the pod's disruption budget.",
            ));
        }
        let blocked_by = self.objects.iter().find(|(k, pdb)| {
            k.group == "policy"
                && k.resource == "poddisruptionbudgets"
                && k.namespace == ns
                && pdb["status"]["disruptionsAllowed"].as_i64() == Some(0)
                && LabelSelector::from_json(&pdb["spec"]["selector"]).matches(&pod)
        });
        if let Some((k, _)) = blocked_by {
            return Err(ApiError::too_many_requests(format!(
                "Cannot evict pod as it would violate the pod's disruption budget. The disruption budget {} needs more healthy pods.",
                k.name
            )));
        }
        self.delete(pods, ns, name, &DeleteOpts::default())
            .map(drop)
    }

    fn commit(&mut self, key: Key, mut obj: Value, type_: EventType, old: Option<Value>) -> Value {
        self.rv += 1;
        meta_mut(&mut obj).insert("resourceVersion".into(), self.rv.to_string().into());
        self.objects.insert(key.clone(), obj.clone());
        self.emit(type_, key, obj.clone(), old);
        obj
    }

    fn emit(&mut self, type_: EventType, key: Key, object: Value, old: Option<Value>) {
        let event = Arc::new(Event {
            rv: self.rv,
            type_,
            key,
            object,
            old,
        });
        self.history.push_back(event.clone());
        while self.history.len() > self.history_limit {
            if let Some(dropped) = self.history.pop_front() {
                self.compacted = dropped.rv;
            }
        }
        // No receivers is fine: nobody watches.
        let _ = self.tx.send(event);
    }

    /// Remove one object (and what it contains: a namespace's objects, a CRD's resources).
    fn remove(&mut self, key: &Key) -> Option<Value> {
        let mut obj = self.objects.remove(key)?;
        self.rv += 1;
        meta_mut(&mut obj).insert("resourceVersion".into(), self.rv.to_string().into());
        self.emit(EventType::Deleted, key.clone(), obj.clone(), None);
        let contained: Vec<Key> = if key.group.is_empty() && key.resource == "namespaces" {
            self.objects
                .keys()
                .filter(|k| k.namespace == key.name)
                .cloned()
                .collect()
        } else if key.group == "apiextensions.k8s.io" && key.resource == "customresourcedefinitions"
        {
            self.registry.remove_crd(&key.name);
            let (plural, group) = key.name.split_once('.').unwrap_or((&key.name, ""));
            self.objects
                .keys()
                .filter(|k| k.group == group && k.resource == plural)
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        for k in contained {
            self.remove(&k);
        }
        Some(obj)
    }

    /// Delete every object whose owners are all gone.
    fn collect_garbage(&mut self) {
        loop {
            let uids: HashSet<String> = self
                .objects
                .values()
                .filter_map(|o| meta_str(o, "uid").map(String::from))
                .collect();
            let orphans: Vec<Key> = self
                .objects
                .iter()
                .filter(|(_, o)| {
                    let owners = meta::owner_uids(o);
                    !owners.is_empty() && owners.iter().all(|u| !uids.contains(*u))
                })
                .map(|(k, _)| k.clone())
                .collect();
            if orphans.is_empty() {
                return;
            }
            for k in orphans {
                self.remove(&k);
            }
        }
    }

    fn orphan_dependents(&mut self, uid: &str) {
        let dependents: Vec<(Key, Value)> = self
            .objects
            .iter()
            .filter(|(_, o)| meta::owner_uids(o).contains(&uid))
            .map(|(k, o)| (k.clone(), o.clone()))
            .collect();
        for (key, old) in dependents {
            let mut new = old.clone();
            if let Some(Value::Array(refs)) = meta_mut(&mut new).get_mut("ownerReferences") {
                refs.retain(|r| r["uid"] != uid);
            }
            self.commit(key, new, EventType::Modified, Some(old));
        }
    }
}

fn is_crd(info: &ResourceInfo) -> bool {
    info.group == "apiextensions.k8s.io" && info.plural == "customresourcedefinitions"
}

fn generation_bump(info: &ResourceInfo, old: &Value, new: &Value) -> bool {
    meta::generation_changes(old, new, info.status_subresource)
}

fn set_or_remove(obj: &mut Value, field: &str, value: Option<Value>) {
    if let Some(map) = obj.as_object_mut() {
        match value {
            Some(v) => map.insert(field.into(), v),
            None => map.remove(field),
        };
    }
}

/// The resourceVersion of a stored object.
pub fn rv_of(obj: &Value) -> u64 {
    meta_str(obj, "resourceVersion")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
