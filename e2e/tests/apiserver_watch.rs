//! Watches on the API stand-in: raw watch events, bookmarks, 410, and kube-runtime's watcher
//! across server-closed watches and expired resourceVersions.
#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is how a test fails.

mod apiserver_common;

use std::time::Duration;

use apiserver_common::*;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher;
use netheal_e2e::apiserver::ApiServerConfig;
use serde_json::json;

fn cm(name: &str, app: &str) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"app": app}}, "data": {"k": "v"}}),
    )
    .unwrap()
}

async fn next_event<S>(stream: &mut S) -> WatchEvent<ConfigMap>
where
    S: futures::Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Unpin,
{
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an event within 10 s")
        .expect("stream still open")
        .expect("a decodable event")
}

fn describe(e: &WatchEvent<ConfigMap>) -> String {
    match e {
        WatchEvent::Added(o) => format!("ADDED {}", o.metadata.name.as_deref().unwrap_or("")),
        WatchEvent::Modified(o) => format!("MODIFIED {}", o.metadata.name.as_deref().unwrap_or("")),
        WatchEvent::Deleted(o) => format!("DELETED {}", o.metadata.name.as_deref().unwrap_or("")),
        WatchEvent::Bookmark(_) => "BOOKMARK".into(),
        WatchEvent::Error(s) => format!("ERROR {}", s.code),
    }
}

#[tokio::test]
async fn watch_sends_changes_in_order_from_a_resource_version() {
    let server = start().await;
    let api: Api<ConfigMap> = Api::namespaced(server.kube_client().unwrap(), "default");
    api.create(&PostParams::default(), &cm("before", "x"))
        .await
        .unwrap();
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default().timeout(30), &rv)
        .await
        .unwrap()
        .boxed();

    api.create(&PostParams::default(), &cm("a", "x"))
        .await
        .unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "w"}})),
    )
    .await
    .unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(describe(&next_event(&mut stream).await));
    }
    assert_eq!(seen, ["ADDED a", "MODIFIED a", "DELETED a"]);
}

#[tokio::test]
async fn watch_from_zero_starts_with_the_current_state() {
    let server = start().await;
    let api: Api<ConfigMap> = Api::namespaced(server.kube_client().unwrap(), "default");
    api.create(&PostParams::default(), &cm("one", "x"))
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("two", "y"))
        .await
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default().timeout(30), "0")
        .await
        .unwrap()
        .boxed();
    assert_eq!(describe(&next_event(&mut stream).await), "ADDED one");
    assert_eq!(describe(&next_event(&mut stream).await), "ADDED two");

    // With a label selector, an object that stops matching is DELETED for the watcher.
    let mut selected = api
        .watch(&WatchParams::default().labels("app=x").timeout(30), "0")
        .await
        .unwrap()
        .boxed();
    assert_eq!(describe(&next_event(&mut selected).await), "ADDED one");
    api.patch(
        "one",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "z"}}})),
    )
    .await
    .unwrap();
    assert_eq!(describe(&next_event(&mut selected).await), "DELETED one");
    api.patch(
        "two",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "x"}}})),
    )
    .await
    .unwrap();
    assert_eq!(describe(&next_event(&mut selected).await), "ADDED two");
}

#[tokio::test]
async fn bookmarks_and_timeouts() {
    let server = start_with(ApiServerConfig {
        bookmark_interval: Duration::from_millis(100),
        ..Default::default()
    })
    .await;
    let api: Api<ConfigMap> = Api::namespaced(server.kube_client().unwrap(), "default");
    let rv = server.resource_version().await.to_string();
    let mut stream = api
        .watch(&WatchParams::default().timeout(1), &rv)
        .await
        .unwrap()
        .boxed();
    match next_event(&mut stream).await {
        WatchEvent::Bookmark(b) => assert_eq!(b.metadata.resource_version, rv),
        other => panic!("expected a bookmark, got {}", describe(&other)),
    }
    // timeoutSeconds=1: the server ends the stream.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while stream.next().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the watch ends after timeoutSeconds");
}

#[tokio::test]
async fn a_resource_version_older_than_the_history_is_gone() {
    let server = start_with(ApiServerConfig {
        history_limit: 2,
        ..Default::default()
    })
    .await;
    let api: Api<ConfigMap> = Api::namespaced(server.kube_client().unwrap(), "default");
    let first = api
        .create(&PostParams::default(), &cm("c0", "x"))
        .await
        .unwrap();
    for i in 1..5 {
        api.create(&PostParams::default(), &cm(&format!("c{i}"), "x"))
            .await
            .unwrap();
    }
    let old = first.metadata.resource_version.unwrap();
    let mut stream = api
        .watch(&WatchParams::default(), &old)
        .await
        .unwrap()
        .boxed();
    match next_event(&mut stream).await {
        WatchEvent::Error(s) => {
            assert_eq!(s.code, 410);
            assert_eq!(s.reason, "Expired");
        }
        other => panic!("expected 410, got {}", describe(&other)),
    }
    // The newest versions are still watchable.
    let recent = server.resource_version().await - 1;
    let mut stream = api
        .watch(&WatchParams::default(), &recent.to_string())
        .await
        .unwrap()
        .boxed();
    assert_eq!(describe(&next_event(&mut stream).await), "ADDED c4");
}

/// Collect watcher events into a shared log.
fn spawn_watcher(
    api: Api<ConfigMap>,
    config: watcher::Config,
) -> (
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    tokio::task::JoinHandle<()>,
) {
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = log.clone();
    let task = tokio::spawn(async move {
        let mut events = watcher(api, config).boxed();
        loop {
            // Errors (such as 410) are reported, then the watcher recovers on the next poll.
            let item = match events.try_next().await {
                Ok(Some(e)) => match e {
                    watcher::Event::Init => "Init".to_string(),
                    watcher::Event::InitApply(o) => {
                        format!("InitApply {}", o.metadata.name.unwrap())
                    }
                    watcher::Event::InitDone => "InitDone".to_string(),
                    watcher::Event::Apply(o) => format!("Apply {}", o.metadata.name.unwrap()),
                    watcher::Event::Delete(o) => format!("Delete {}", o.metadata.name.unwrap()),
                },
                Ok(None) => return,
                Err(e) => format!("Error {e}"),
            };
            sink.lock().unwrap().push(item);
        }
    });
    (log, task)
}

fn count(log: &std::sync::Mutex<Vec<String>>, what: &str) -> usize {
    log.lock().unwrap().iter().filter(|e| *e == what).count()
}

#[tokio::test]
async fn watcher_survives_server_closed_watches_without_relisting() {
    let server = start_with(ApiServerConfig {
        max_watch: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let api: Api<ConfigMap> = Api::namespaced(server.kube_client().unwrap(), "default");
    api.create(&PostParams::default(), &cm("early", "x"))
        .await
        .unwrap();
    let (log, task) = spawn_watcher(api.clone(), watcher::Config::default());
    eventually("the initial list", || async {
        count(&log, "InitDone") == 1
    })
    .await;
    assert_eq!(count(&log, "InitApply early"), 1);
    // Several watches are closed by the server meanwhile.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    api.create(&PostParams::default(), &cm("late", "x"))
        .await
        .unwrap();
    eventually("the late object", || async {
        count(&log, "Apply late") == 1
    })
    .await;
    api.delete("early", &DeleteParams::default()).await.unwrap();
    eventually("the deletion", || async {
        count(&log, "Delete early") == 1
    })
    .await;
    assert_eq!(
        count(&log, "Init"),
        1,
        "resumed from resourceVersion, never relisted: {:?}",
        log.lock().unwrap()
    );
    task.abort();
}

#[tokio::test]
async fn watcher_relists_after_410() {
    let server = start_with(ApiServerConfig {
        max_watch: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let api: Api<ConfigMap> = Api::namespaced(server.kube_client().unwrap(), "default");
    api.create(&PostParams::default(), &cm("a", "x"))
        .await
        .unwrap();
    let (log, task) = spawn_watcher(api.clone(), watcher::Config::default());
    eventually("the initial list", || async {
        count(&log, "InitDone") == 1
    })
    .await;
    server.compact().await;
    eventually("a relist", || async { count(&log, "InitDone") == 2 }).await;
    assert_eq!(count(&log, "InitApply a"), 2);
    assert!(
        log.lock()
            .unwrap()
            .iter()
            .any(|e| e.starts_with("Error") && e.contains("Expired")),
        "{:?}",
        log.lock().unwrap()
    );
    api.create(&PostParams::default(), &cm("b", "x"))
        .await
        .unwrap();
    eventually("the object created after the relist", || async {
        count(&log, "Apply b") == 1
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn watcher_with_streaming_lists() {
    let server = start().await;
    let api: Api<ConfigMap> = Api::namespaced(server.kube_client().unwrap(), "default");
    api.create(&PostParams::default(), &cm("a", "x"))
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("b", "y"))
        .await
        .unwrap();
    let (log, task) = spawn_watcher(
        api.clone(),
        watcher::Config::default().labels("app=x").streaming_lists(),
    );
    eventually("the initial events", || async {
        count(&log, "InitDone") == 1
    })
    .await;
    assert_eq!(count(&log, "InitApply a"), 1);
    assert_eq!(
        count(&log, "InitApply b"),
        0,
        "filtered by the label selector"
    );
    api.create(&PostParams::default(), &cm("c", "x"))
        .await
        .unwrap();
    eventually("a live event", || async { count(&log, "Apply c") == 1 }).await;
    task.abort();
}

#[tokio::test]
async fn metadata_only_lists_gets_and_watches() {
    let server = start().await;
    let api: Api<ConfigMap> = Api::namespaced(server.kube_client().unwrap(), "default");
    api.create(&PostParams::default(), &cm("a", "x"))
        .await
        .unwrap();
    let listed = api.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(
        listed.items[0].metadata.labels.as_ref().unwrap()["app"],
        "x"
    );
    let got = api.get_metadata("a").await.unwrap();
    assert_eq!(got.metadata.name.as_deref(), Some("a"));
    assert_eq!(got.types.unwrap().kind, "PartialObjectMetadata");

    // `Api<PartialObjectMeta<K>>` makes metadata-only requests.
    let meta_api: Api<kube::core::PartialObjectMeta<ConfigMap>> =
        Api::namespaced(server.kube_client().unwrap(), "default");
    let mut events = watcher(meta_api, watcher::Config::default()).boxed();
    let mut names = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !names.contains(&"Apply b".to_string()) {
        let e = tokio::time::timeout_at(deadline, events.try_next())
            .await
            .expect("events within 10 s")
            .unwrap()
            .unwrap();
        match e {
            watcher::Event::InitApply(o) => {
                names.push(format!("InitApply {}", o.metadata.name.unwrap()))
            }
            watcher::Event::InitDone => {
                names.push("InitDone".into());
                api.create(&PostParams::default(), &cm("b", "y"))
                    .await
                    .unwrap();
            }
            watcher::Event::Apply(o) => names.push(format!("Apply {}", o.metadata.name.unwrap())),
            _ => {}
        }
    }
    assert_eq!(names, ["InitApply a", "InitDone", "Apply b"]);
}
