//! A loopback stand-in for the Kubernetes API server, for end-to-end tests on machines where
//! no kube-apiserver can run.
//!
//! It speaks the REST and watch protocol that kube-rs and `kubectl` use, for JSON objects of
//! any registered resource: resourceVersion, watch (with bookmarks, timeouts and 410),
//! merge/JSON/apply patches, the status subresource, optimistic concurrency, finalizers,
//! owner-reference garbage collection, pod eviction, CRDs with schema and CEL validation,
//! discovery and server-side Tables. What it does not do is listed in `e2e/README.md`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use netheal_e2e::apiserver::{ApiServer, ApiServerConfig};
//! let server = ApiServer::start(ApiServerConfig::default()).await?;
//! server.write_kubeconfig("/tmp/kubeconfig")?;
//! let client = server.kube_client()?;
//! # Ok(()) }
//! ```

pub mod discovery;
pub mod http;
pub mod meta;
pub mod patch;
pub mod registry;
pub mod route;
pub mod schema;
pub mod selector;
pub mod status;
pub mod store;
pub mod strategic;
pub mod table;
pub mod watch;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use status::ApiError;
use store::{Store, StoreConfig, WriteOpts};

/// Why the server could not start or a helper failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    /// Binding the loopback port failed.
    #[error("could not listen on 127.0.0.1:{port}: {source}")]
    Bind {
        /// The port asked for.
        port: u16,
        /// Why.
        source: std::io::Error,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A manifest could not be parsed or was refused.
    #[error("{what}: {message}")]
    Manifest {
        /// Which file or document.
        what: String,
        /// Why.
        message: String,
    },
    /// Building a kube client failed.
    #[error("kube client: {0}")]
    Client(String),
}

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ApiServerConfig {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Directory of CRD (or any) manifests to create at start.
    pub crd_dir: Option<PathBuf>,
    /// Events retained for watches resuming from a resourceVersion (older ones get 410).
    pub history_limit: usize,
    /// Longest watch; longer `timeoutSeconds` are cut to this (the real server picks 30-60
    /// minutes). Make it short to exercise client reconnects.
    pub max_watch: Duration,
    /// Period of `BOOKMARK` events on watches that allow them.
    pub bookmark_interval: Duration,
}

impl Default for ApiServerConfig {
    fn default() -> Self {
        Self {
            port: 0,
            crd_dir: None,
            history_limit: 10_000,
            max_watch: Duration::from_secs(1800),
            bookmark_interval: Duration::from_secs(10),
        }
    }
}

/// The entry point.
#[derive(Debug)]
pub struct ApiServer;

impl ApiServer {
    /// Listen on 127.0.0.1 and serve until the returned handle is shut down or dropped.
    pub async fn start(config: ApiServerConfig) -> Result<RunningApiServer, ApiServerError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port))
            .await
            .map_err(|source| ApiServerError::Bind {
                port: config.port,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ApiServerError::Bind {
                port: config.port,
                source,
            })?;
        let store = Arc::new(Mutex::new(Store::new(StoreConfig {
            history_limit: config.history_limit,
        })));
        let shutdown = CancellationToken::new();
        let state = http::AppState {
            store: store.clone(),
            shutdown: shutdown.clone(),
            address: addr.to_string(),
            max_watch: config.max_watch,
            bookmark_interval: config.bookmark_interval,
        };
        let app = axum::Router::new().fallback(http::handle).with_state(state);
        let token = shutdown.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(token.cancelled_owned())
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "API stand-in stopped");
            }
        });
        let server = RunningApiServer {
            addr,
            store,
            shutdown,
            task: Some(task),
        };
        if let Some(dir) = &config.crd_dir {
            server.load_dir(dir).await?;
        }
        tracing::info!(url = %server.url(), "API stand-in listening");
        Ok(server)
    }
}

/// A running server. Dropping it stops the server.
#[derive(Debug)]
pub struct RunningApiServer {
    addr: SocketAddr,
    store: Arc<Mutex<Store>>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl RunningApiServer {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address listened on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kubeconfig for this server: plain http, no credentials, context `netheal-e2e`.
    pub fn kubeconfig(&self) -> String {
        kubeconfig_yaml(&self.url())
    }

    /// Write [`Self::kubeconfig`] to `path`.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> Result<(), ApiServerError> {
        let path = path.as_ref();
        std::fs::write(path, self.kubeconfig()).map_err(|source| ApiServerError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// A kube-rs client configuration for this server (default namespace `default`).
    pub fn kube_config(&self) -> Result<kube::Config, ApiServerError> {
        let uri: ::http::Uri = self
            .url()
            .parse()
            .map_err(|e: ::http::uri::InvalidUri| ApiServerError::Client(e.to_string()))?;
        Ok(kube::Config::new(uri))
    }

    /// A kube-rs client for this server, built from [`Self::kube_config`]. Needs a tokio
    /// runtime. Note that kube's default retry policy retries 429 answers (a blocked
    /// eviction) up to 15 times with exponential backoff; set `default_retry = false` on the
    /// config to see them at once.
    pub fn kube_client(&self) -> Result<kube::Client, ApiServerError> {
        kube::Client::try_from(self.kube_config()?)
            .map_err(|e| ApiServerError::Client(e.to_string()))
    }

    /// Test hook: make every pod eviction answer 429 TooManyRequests (as when a
    /// PodDisruptionBudget forbids it), or stop doing so.
    pub async fn block_evictions(&self, blocked: bool) {
        self.store.lock().await.evictions_blocked = blocked;
    }

    /// Test hook: forget the event history, so that a watch resuming from any current
    /// resourceVersion gets 410 Gone (as after etcd compaction).
    pub async fn compact(&self) {
        self.store.lock().await.compact();
    }

    /// The newest resourceVersion.
    pub async fn resource_version(&self) -> u64 {
        self.store.lock().await.resource_version()
    }

    /// Create every document of a (multi-document) YAML or JSON manifest, in order, as
    /// `kubectl create` would; a document whose object exists already replaces it.
    /// Returns the stored objects.
    pub async fn apply_manifest(&self, text: &str) -> Result<Vec<Value>, ApiServerError> {
        let mut out = Vec::new();
        for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let what = format!("document {i}");
            let obj: Value =
                serde::Deserialize::deserialize(doc).map_err(|e| ApiServerError::Manifest {
                    what: what.clone(),
                    message: e.to_string(),
                })?;
            if obj.is_null() {
                continue;
            }
            let stored = self
                .store
                .lock()
                .await
                .put_manifest(
                    &obj,
                    &WriteOpts {
                        manager: "netheal-e2e".into(),
                        ..Default::default()
                    },
                )
                .map_err(|e| ApiServerError::Manifest {
                    what,
                    message: e.message,
                })?;
            out.push(stored);
        }
        Ok(out)
    }

    /// [`Self::apply_manifest`] for every `*.yaml`, `*.yml` and `*.json` file of a directory,
    /// in name order.
    pub async fn load_dir(&self, dir: &Path) -> Result<usize, ApiServerError> {
        let io = |source| ApiServerError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml" | "json")
                ) && p.file_name().and_then(|n| n.to_str()) != Some("kustomization.yaml")
            })
            .collect();
        files.sort();
        let mut count = 0;
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|source| ApiServerError::Io {
                path: file.clone(),
                source,
            })?;
            count += self
                .apply_manifest(&text)
                .await
                .map_err(|e| ApiServerError::Manifest {
                    what: file.display().to_string(),
                    message: e.to_string(),
                })?
                .len();
        }
        Ok(count)
    }

    /// Stop serving: open watches end, the port closes.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(mut task) = self.task.take() {
            // Connections that linger (idle keep-alives) do not hold the shutdown up.
            tokio::select! {
                _ = &mut task => {}
                _ = tokio::time::sleep(Duration::from_secs(2)) => task.abort(),
            }
        }
    }
}

impl Drop for RunningApiServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A kubeconfig for a plain-http server at `url`.
pub fn kubeconfig_yaml(url: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: netheal-e2e
  cluster:
    server: {url}
contexts:
- name: netheal-e2e
  context:
    cluster: netheal-e2e
    user: netheal-e2e
    namespace: default
current-context: netheal-e2e
users:
- name: netheal-e2e
  user: {{}}
preferences: {{}}
"
    )
}
