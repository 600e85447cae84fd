//! Watch streams: newline-delimited `{"type": ..., "object": ...}` events, bookmarks,
//! `timeoutSeconds`, and selector transitions (an object that stops matching is `DELETED`).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::registry::ResourceInfo;
use super::store::{Event, EventType, Filter};

/// How one watch behaves.
#[derive(Debug, Clone)]
pub struct WatchOpts {
    /// End the stream after this long (`timeoutSeconds`, capped by the server).
    pub timeout: Duration,
    /// `allowWatchBookmarks=true`: send `BOOKMARK` events.
    pub bookmarks: bool,
    /// Period of bookmarks.
    pub bookmark_interval: Duration,
    /// `sendInitialEvents=true`: after the initial `ADDED` events, a bookmark annotated
    /// `k8s.io/initial-events-end`.
    pub initial_events_end: bool,
    /// resourceVersion of the store when the watch started.
    pub start_rv: u64,
}

/// Turns a stored object into what this request sees (apiVersion, metadata-only form).
pub type Present = Arc<dyn Fn(Value) -> Value + Send + Sync>;

/// What a watcher with `filter` sees of one event, if anything.
pub fn visible(event: &Event, info: &ResourceInfo, filter: &Filter) -> Option<EventType> {
    if event.key.group != info.group || event.key.resource != info.plural {
        return None;
    }
    if let Some(ns) = &filter.namespace
        && info.namespaced
        && *ns != event.key.namespace
    {
        return None;
    }
    let now = filter.matches(&event.object);
    match (event.type_, event.old.as_ref().map(|o| filter.matches(o))) {
        (EventType::Modified, Some(true)) if !now => Some(EventType::Deleted),
        (EventType::Modified, Some(false)) if now => Some(EventType::Added),
        (t, _) if now => Some(t),
        _ => None,
    }
}

fn line(type_: &str, object: Value) -> Bytes {
    let mut s = json!({"type": type_, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
}

fn bookmark(info: &ResourceInfo, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(
        "BOOKMARK",
        json!({"kind": info.kind, "apiVersion": info.api_version(), "metadata": meta}),
    )
}

/// Start streaming a watch; the returned body ends on timeout, server shutdown, a lagging
/// feed (the client resumes from its last resourceVersion) or client disconnect.
pub fn stream(
    info: ResourceInfo,
    filter: Filter,
    initial: Vec<Arc<Event>>,
    mut feed: broadcast::Receiver<Arc<Event>>,
    opts: WatchOpts,
    present: Present,
    shutdown: CancellationToken,
) -> Body {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(opts.timeout);
        tokio::pin!(deadline);
        let mut last_rv = opts.start_rv;
        for e in &initial {
            if let Some(t) = visible(e, &info, &filter)
                && tx
                    .send(line(t.as_str(), present(e.object.clone())))
                    .await
                    .is_err()
            {
                return;
            }
        }
        if opts.initial_events_end
            && opts.bookmarks
            && tx.send(bookmark(&info, last_rv, true)).await.is_err()
        {
            return;
        }
        let mut tick = tokio::time::interval(opts.bookmark_interval.max(Duration::from_millis(10)));
        tick.tick().await;
        loop {
            let out = tokio::select! {
                _ = &mut deadline => return,
                _ = shutdown.cancelled() => return,
                _ = tx.closed() => return,
                _ = tick.tick(), if opts.bookmarks => bookmark(&info, last_rv, false),
                got = feed.recv() => match got {
                    Ok(e) => {
                        last_rv = last_rv.max(e.rv);
                        match visible(&e, &info, &filter) {
                            Some(t) => line(t.as_str(), present(e.object.clone())),
                            None => continue,
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "watch fell behind; closing it");
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            };
            if tx.send(out).await.is_err() {
                return;
            }
        }
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    Body::from_stream(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::registry::Registry;
    use crate::apiserver::selector::LabelSelector;
    use crate::apiserver::store::Key;

    fn event(type_: EventType, labels: Value, old_labels: Option<Value>) -> Event {
        let obj = |l: Value| json!({"metadata": {"name": "p", "namespace": "a", "labels": l}});
        Event {
            rv: 5,
            type_,
            key: Key {
                group: "".into(),
                resource: "pods".into(),
                namespace: "a".into(),
                name: "p".into(),
            },
            object: obj(labels),
            old: old_labels.map(obj),
        }
    }

    #[test]
    fn selector_transitions() {
        let reg = Registry::with_builtins();
        let pods = reg.find("", "v1", "pods").unwrap();
        let filter = Filter {
            labels: LabelSelector::parse("app=web").unwrap(),
            ..Default::default()
        };
        let web = json!({"app": "web"});
        let db = json!({"app": "db"});
        let v = |e: Event| visible(&e, pods, &filter);
        assert_eq!(
            v(event(EventType::Added, web.clone(), None)),
            Some(EventType::Added)
        );
        assert_eq!(v(event(EventType::Added, db.clone(), None)), None);
        assert_eq!(
            v(event(EventType::Modified, db.clone(), Some(web.clone()))),
            Some(EventType::Deleted)
        );
        assert_eq!(
            v(event(EventType::Modified, web.clone(), Some(db.clone()))),
            Some(EventType::Added)
        );
        assert_eq!(
            v(event(EventType::Modified, web.clone(), Some(web.clone()))),
            Some(EventType::Modified)
        );
        assert_eq!(v(event(EventType::Modified, db.clone(), Some(db))), None);
        assert_eq!(
            v(event(EventType::Deleted, web, None)),
            Some(EventType::Deleted)
        );
    }

    #[test]
    fn other_namespaces_and_resources_are_invisible() {
        let reg = Registry::with_builtins();
        let pods = reg.find("", "v1", "pods").unwrap();
        let nodes = reg.find("", "v1", "nodes").unwrap();
        let e = event(EventType::Added, json!({}), None);
        let in_b = Filter {
            namespace: Some("b".into()),
            ..Default::default()
        };
        assert_eq!(visible(&e, pods, &in_b), None);
        assert_eq!(visible(&e, nodes, &Filter::default()), None);
        assert_eq!(
            visible(&e, pods, &Filter::default()),
            Some(EventType::Added)
        );
    }
}
