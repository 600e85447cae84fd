//! The object store: JSON objects by resource, namespace and name, one cluster-wide
//! resourceVersion, an event history for watches, and the write rules (status subresource,
//! generation, optimistic concurrency, finalizers, owner-reference garbage collection).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::meta::{self, meta_mut, meta_str};
use super::registry::{Registry, ResourceInfo};
use super::selector::{FieldSelector, LabelSelector};
use super::status::ApiError;

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

/// Where a watch starts: the events to send first, and the live feed.
pub type WatchStart = (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>);

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

mod delete;
mod write;

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
    ) -> Result<WatchStart, ApiError> {
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

    pub(super) fn commit(
        &mut self,
        key: Key,
        mut obj: Value,
        type_: EventType,
        old: Option<Value>,
    ) -> Value {
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
