//! The delete path: deletion with finalizers, eviction, containment (namespaces, CRDs) and
//! owner-reference garbage collection.

use std::collections::HashSet;

use serde_json::Value;

use super::super::meta::{self, meta_mut, meta_str};
use super::super::registry::ResourceInfo;
use super::super::selector::LabelSelector;
use super::super::status::ApiError;
use super::{DeleteOpts, Deleted, EventType, Key, Store};

impl Store {
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

    /// Remove one object (and what it contains: a namespace's objects, a CRD's resources).
    pub(super) fn remove(&mut self, key: &Key) -> Option<Value> {
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
    pub(super) fn collect_garbage(&mut self) {
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
