//! Running a closure inside a network namespace without moving the process: a short-lived
//! thread calls `setns(CLONE_NEWNET)` and then runs the closure. Netlink sockets, files under
//! `/proc/sys/net` and `/proc/thread-self/net`, and child processes spawned from that thread
//! all belong to the thread's namespace. The thread ends with the closure, so no other code
//! ever runs in the foreign namespace.

use nix::sched::{CloneFlags, setns};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Where named namespaces are bind-mounted by `ip netns add` and the CRI.
pub const NETNS_DIR: &str = "/var/run/netns";

/// Why a closure could not run in a namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The namespace file could not be opened (no such namespace, not root).
    #[error("cannot open network namespace {path}: {source}")]
    Open {
        /// The namespace file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `setns` failed.
    #[error("cannot enter network namespace {path}: {source}")]
    Enter {
        /// The namespace file.
        path: PathBuf,
        /// Why.
        source: nix::Error,
    },
    /// The worker thread could not start or panicked.
    #[error("namespace worker thread failed: {0}")]
    Thread(String),
}

/// The file of a namespace given by name (`/var/run/netns/NAME`) or absolute path.
pub fn netns_path(name: &str) -> PathBuf {
    if name.starts_with('/') {
        PathBuf::from(name)
    } else {
        Path::new(NETNS_DIR).join(name)
    }
}

/// The short name of a namespace path (`/var/run/netns/cni-1` → `cni-1`).
pub fn netns_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Run `f` on a fresh thread that first enters the namespace `ns` (`None`: stay in the
/// process's own namespace, still on a fresh thread so that callers on async runtimes are never
/// blocked in a surprising place).
pub fn run_in<T, F>(ns: Option<&Path>, f: F) -> Result<T, NetnsError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let ns = ns.map(Path::to_path_buf);
    let handle = std::thread::Builder::new()
        .name("netns-worker".into())
        .spawn(move || -> Result<T, NetnsError> {
            if let Some(path) = ns {
                let file = File::open(&path).map_err(|source| NetnsError::Open {
                    path: path.clone(),
                    source,
                })?;
                setns(&file, CloneFlags::CLONE_NEWNET)
                    .map_err(|source| NetnsError::Enter { path, source })?;
            }
            Ok(f())
        })
        .map_err(|e| NetnsError::Thread(e.to_string()))?;
    handle
        .join()
        .map_err(|_| NetnsError::Thread("worker panicked".into()))?
}

/// The pod namespaces matching `pattern`, sorted, excluding `exclude` (the host namespace
/// when it happens to match).
pub fn pod_namespaces(
    pattern: &str,
    exclude: Option<&Path>,
) -> Result<Vec<PathBuf>, crate::error::ProbeError> {
    let paths = glob::glob(pattern).map_err(|source| crate::error::ProbeError::PodNetnsGlob {
        pattern: pattern.to_string(),
        source,
    })?;
    let mut out: Vec<PathBuf> = paths
        .filter_map(Result::ok)
        .filter(|p| Some(p.as_path()) != exclude)
        .collect();
    out.sort();
    Ok(out)
}
