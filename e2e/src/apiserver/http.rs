//! The HTTP face of the server: decode requests, call the store, encode answers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::discovery;
use super::patch::{self, PatchKind};
use super::registry::ResourceInfo;
use super::route::{self, ObjectPath, Route};
use super::selector::{FieldSelector, LabelSelector};
use super::status::{self, ApiError};
use super::store::{DeleteOpts, Deleted, Filter, Store, WriteOpts};
use super::strategic;
use super::table;
use super::watch::{self, Present, WatchOpts};

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// Everything stored.
    pub store: Arc<Mutex<Store>>,
    /// Cancelled when the server stops (ends open watches).
    pub shutdown: CancellationToken,
    /// `host:port` the server listens on.
    pub address: String,
    /// Longest watch before the server closes it.
    pub max_watch: Duration,
    /// Period of watch bookmarks.
    pub bookmark_interval: Duration,
}

type Query = HashMap<String, String>;

/// The one handler: every request comes here.
pub async fn handle(
    State(st): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query: Query = axum::extract::Query::try_from_uri(&uri)
        .map(|q: axum::extract::Query<Query>| q.0)
        .unwrap_or_default();
    tracing::debug!(%method, %uri, "request");
    match dispatch(&st, &method, &uri, &query, &headers, body).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::debug!(%method, %uri, code = e.code, message = %e.message, "refused");
            json_response(e.code, &e.to_status())
        }
    }
}

fn json_response(code: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn dispatch(
    st: &AppState,
    method: &Method,
    uri: &Uri,
    query: &Query,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let path = uri.path();
    let content_type = header_str(headers, header::CONTENT_TYPE);
    if content_type.contains("protobuf") || content_type.contains("cbor") {
        return Err(ApiError::unsupported_media_type(content_type));
    }
    let found = |v: Option<Value>| {
        v.map(|v| json_response(200, &v))
            .ok_or_else(|| ApiError::no_route(path))
    };
    match route::parse(path) {
        Route::Version => Ok(json_response(200, &discovery::version())),
        Route::Health => Ok((StatusCode::OK, "ok").into_response()),
        Route::CoreVersions => Ok(json_response(200, &discovery::core_versions(&st.address))),
        Route::Groups => Ok(json_response(
            200,
            &discovery::group_list(st.store.lock().await.registry()),
        )),
        Route::Group(g) => found(discovery::group(st.store.lock().await.registry(), &g)),
        Route::Resources { group, version } => found(discovery::resource_list(
            st.store.lock().await.registry(),
            &group,
            &version,
        )),
        Route::OpenApiRoot => Ok(json_response(
            200,
            &discovery::openapi_root(st.store.lock().await.registry()),
        )),
        Route::OpenApiGroupVersion { group, version } => found(discovery::openapi_group_version(
            st.store.lock().await.registry(),
            &group,
            &version,
        )),
        Route::Unknown => Err(ApiError::no_route(path)),
        Route::Object(p) => object(st, method, p, query, headers, body).await,
    }
}

/// Parse a request body: JSON, or YAML (which includes JSON).
fn decode(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).or_else(|_| {
        serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("could not decode the request body: {e}")))
    })
}

fn flag(query: &Query, name: &str) -> bool {
    matches!(query.get(name).map(String::as_str), Some("true" | "1"))
}

fn write_opts(query: &Query, headers: &HeaderMap, apply: bool) -> WriteOpts {
    let agent = header_str(headers, header::USER_AGENT);
    let manager = query.get("fieldManager").cloned().unwrap_or_else(|| {
        agent
            .split('/')
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown")
            .to_string()
    });
    WriteOpts {
        dry_run: query.get("dryRun").is_some_and(|d| d == "All"),
        manager,
        apply,
        strict: query.get("fieldValidation").is_some_and(|v| v == "Strict"),
    }
}

fn filter(query: &Query, namespace: Option<String>) -> Result<Filter, ApiError> {
    Ok(Filter {
        namespace,
        labels: LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))?,
        fields: FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str))?,
    })
}

/// How a stored object is shown to this request: with the requested apiVersion, as
/// PartialObjectMetadata, or as a one-row Table.
fn presenter(info: &ResourceInfo, accept: &str, query: &Query) -> Present {
    let api_version = info.api_version();
    if table::wants_table(accept) {
        let info = info.clone();
        let include = query.get("includeObject").cloned().unwrap_or_default();
        return Arc::new(move |mut o: Value| {
            o["apiVersion"] = api_version.clone().into();
            let rv = super::store::rv_of(&o);
            table::table(
                &info,
                &[o],
                rv,
                &include,
                jiff::Timestamp::now().as_second(),
            )
        });
    }
    let metadata_only = accept.contains("as=PartialObjectMetadata");
    Arc::new(move |mut o: Value| {
        if metadata_only {
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]})
        } else {
            o["apiVersion"] = api_version.clone().into();
            o
        }
    })
}

async fn object(
    st: &AppState,
    method: &Method,
    p: ObjectPath,
    query: &Query,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut store = st.store.lock().await;
    let info = store
        .registry()
        .find(&p.group, &p.version, &p.resource)
        .cloned()
        .ok_or_else(|| ApiError::no_route(&format!("{}/{}/{}", p.group, p.version, p.resource)))?;
    if p.namespace.is_some() && !info.namespaced {
        return Err(ApiError::no_route(&info.qualified()));
    }
    let sub = p.subresource.as_deref();
    match sub {
        None => {}
        Some("status") if info.status_subresource && p.name.is_some() => {}
        Some(s) if info.extra_subresources.iter().any(|x| x == s) && *method == Method::POST => {}
        Some(s) => return Err(ApiError::no_route(&format!("{}/{s}", info.qualified()))),
    }
    let ns = p.namespace.clone().unwrap_or_default();
    let accept = header_str(headers, header::ACCEPT).to_string();
    let present = presenter(&info, &accept, query);
    let Some(name) = p.name.clone() else {
        if info.namespaced && p.namespace.is_none() && *method != Method::GET {
            return Err(ApiError::method_not_allowed(format!(
                "{} is namespaced: use /namespaces/NS/{}",
                info.qualified(),
                info.plural
            )));
        }
        return collection(
            st,
            &mut store,
            &info,
            method,
            p.namespace,
            query,
            headers,
            present,
            body,
        );
    };
    if info.namespaced && p.namespace.is_none() {
        return Err(ApiError::no_route(&format!("{}/{name}", info.qualified())));
    }
    let ok = |code: u16, v: Value| Ok(json_response(code, &present(v)));
    match (method.clone(), sub) {
        (Method::GET, _) => ok(200, store.get(&info, &ns, &name)?),
        (Method::POST, Some("eviction")) => {
            let eviction = if body.is_empty() {
                json!({})
            } else {
                decode(&body)?
            };
            if flag(query, "dryRun") || eviction["deleteOptions"]["dryRun"].is_array() {
                store.get(&info, &ns, &name)?;
            } else {
                store.evict(&info, &ns, &name)?;
            }
            Ok(json_response(
                201,
                &status::success(201, json!({"name": name, "kind": "pods"})),
            ))
        }
        (Method::PUT, _) => {
            let opts = write_opts(query, headers, false);
            ok(
                200,
                store.update(&info, &ns, &name, decode(&body)?, sub, &opts)?,
            )
        }
        (Method::PATCH, _) => {
            let (code, v) =
                patch_object(&mut store, &info, &ns, &name, sub, query, headers, &body)?;
            ok(code, v)
        }
        (Method::DELETE, None) => {
            let opts = delete_opts(query, &body)?;
            match store.delete(&info, &ns, &name, &opts)? {
                Deleted::Pending(v) => ok(200, v),
                Deleted::Gone(v) => Ok(json_response(
                    200,
                    &status::success(
                        200,
                        json!({
                            "name": name, "group": info.group, "kind": info.plural,
                            "uid": v["metadata"]["uid"],
                        }),
                    ),
                )),
            }
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "{method} is not supported on {}",
            info.qualified()
        ))),
    }
}

#[allow(clippy::too_many_arguments)]
fn collection(
    st: &AppState,
    store: &mut Store,
    info: &ResourceInfo,
    method: &Method,
    namespace: Option<String>,
    query: &Query,
    headers: &HeaderMap,
    present: Present,
    body: Bytes,
) -> Result<Response, ApiError> {
    let accept = header_str(headers, header::ACCEPT);
    let ns = namespace.clone().unwrap_or_default();
    let list_doc = |items: Vec<Value>, rv: u64| {
        json!({
            "kind": format!("{}List", info.kind),
            "apiVersion": info.api_version(),
            "metadata": {"resourceVersion": rv.to_string()},
            "items": items,
        })
    };
    match *method {
        Method::GET if flag(query, "watch") => {
            let f = filter(query, namespace)?;
            let initial_end = flag(query, "sendInitialEvents");
            let from = match query.get("resourceVersion").map(String::as_str) {
                _ if initial_end => None,
                None | Some("") => None,
                Some(rv) => Some(rv.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!("invalid resourceVersion {rv:?}"))
                })?),
            };
            let (initial, feed) = match store.watch(info, &f, from) {
                Ok(started) => started,
                // Like the real server: a too-old resourceVersion is an ERROR event in a
                // 200 stream, not an HTTP error.
                Err(e) if e.code == 410 => {
                    let line = format!("{}\n", json!({"type": "ERROR", "object": e.to_status()}));
                    return Ok(watch_response(Body::from(line)));
                }
                Err(e) => return Err(e),
            };
            let requested = query
                .get("timeoutSeconds")
                .and_then(|t| t.parse::<u64>().ok())
                .map(Duration::from_secs)
                .unwrap_or(st.max_watch);
            let opts = WatchOpts {
                timeout: requested.min(st.max_watch),
                bookmarks: flag(query, "allowWatchBookmarks"),
                bookmark_interval: st.bookmark_interval,
                initial_events_end: initial_end,
                start_rv: store.resource_version(),
            };
            let body = watch::stream(
                info.clone(),
                f,
                initial,
                feed,
                opts,
                present,
                st.shutdown.clone(),
            );
            Ok(watch_response(body))
        }
        Method::GET => {
            let (items, rv) = store.list(info, &filter(query, namespace)?);
            let doc = if table::wants_table(accept) {
                let include = query.get("includeObject").map_or("", String::as_str);
                let items: Vec<Value> = items
                    .into_iter()
                    .map(|mut o| {
                        o["apiVersion"] = info.api_version().into();
                        o
                    })
                    .collect();
                table::table(
                    info,
                    &items,
                    rv,
                    include,
                    jiff::Timestamp::now().as_second(),
                )
            } else if accept.contains("as=PartialObjectMetadataList") {
                let mut doc = list_doc(items.into_iter().map(|o| present(o)).collect(), rv);
                doc["kind"] = "PartialObjectMetadataList".into();
                doc["apiVersion"] = "meta.k8s.io/v1".into();
                doc
            } else {
                list_doc(items.into_iter().map(|o| present(o)).collect(), rv)
            };
            Ok(json_response(200, &doc))
        }
        Method::POST => {
            let opts = write_opts(query, headers, false);
            let created = store.create(info, &ns, decode(&body)?, &opts)?;
            Ok(json_response(201, &present(created)))
        }
        Method::DELETE => {
            let opts = delete_opts(query, &body)?;
            let (items, _) = store.list(info, &filter(query, namespace)?);
            let mut deleted = Vec::new();
            for item in items {
                let item_ns = item["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let item_name = item["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                match store.delete(info, &item_ns, &item_name, &opts) {
                    Ok(Deleted::Gone(v) | Deleted::Pending(v)) => deleted.push(present(v)),
                    Err(e) if e.code == 404 => {} // already taken by garbage collection
                    Err(e) => return Err(e),
                }
            }
            let rv = store.resource_version();
            Ok(json_response(200, &list_doc(deleted, rv)))
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "{method} is not supported on the {} collection",
            info.qualified()
        ))),
    }
}

fn watch_response(body: Body) -> Response {
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(body)
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

fn delete_opts(query: &Query, body: &[u8]) -> Result<DeleteOpts, ApiError> {
    let b = if body.is_empty() {
        json!({})
    } else {
        decode(body)?
    };
    let policy = query
        .get("propagationPolicy")
        .map(String::as_str)
        .or(b["propagationPolicy"].as_str());
    let s = |v: &Value| v.as_str().map(String::from);
    Ok(DeleteOpts {
        dry_run: query.get("dryRun").is_some_and(|d| d == "All") || b["dryRun"].is_array(),
        orphan: policy == Some("Orphan") || b["orphanDependents"] == Value::Bool(true),
        precondition_rv: s(&b["preconditions"]["resourceVersion"]),
        precondition_uid: s(&b["preconditions"]["uid"]),
    })
}

#[allow(clippy::too_many_arguments)]
fn patch_object(
    store: &mut Store,
    info: &ResourceInfo,
    ns: &str,
    name: &str,
    sub: Option<&str>,
    query: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(u16, Value), ApiError> {
    let ct = header_str(headers, header::CONTENT_TYPE);
    let kind =
        PatchKind::from_content_type(ct).ok_or_else(|| ApiError::unsupported_media_type(ct))?;
    let apply = kind == PatchKind::Apply;
    if apply && !query.contains_key("fieldManager") {
        return Err(ApiError::bad_request(
            "PATCH requests of type apply must include a fieldManager (query parameter)",
        ));
    }
    let patch_doc = decode(body)?;
    let old = match store.get(info, ns, name) {
        Ok(o) => Some(o),
        Err(e) if e.code == 404 && apply && sub.is_none() => None,
        Err(e) => return Err(e),
    };
    if apply
        && let Some(n) = patch_doc["metadata"]["name"].as_str()
        && n != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        )));
    }
    let base = old.clone().unwrap_or_else(|| json!({}));
    let new = match kind {
        PatchKind::Json => patch::json_patch(&base, &patch_doc)?,
        PatchKind::Strategic if info.crd.is_some() => {
            // As the real server: custom resources have no strategic-merge metadata.
            return Err(ApiError::unsupported_media_type(ct));
        }
        PatchKind::Strategic => {
            let mut t = base;
            strategic::apply(&mut t, &patch_doc);
            t
        }
        PatchKind::Merge | PatchKind::Apply => {
            let mut t = base;
            patch::merge(&mut t, &patch_doc);
            t
        }
    };
    let created = old.is_none();
    let opts = write_opts(query, headers, apply);
    let v = store.patched(info, (ns, name), old, new, sub, &opts)?;
    Ok((if created { 201 } else { 200 }, v))
}
