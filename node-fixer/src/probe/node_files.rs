//! Files of the node itself, read beside the namespaces: the kernel release and flannel's
//! lease file. Neither depends on the network namespace of the reading thread.

use crate::error::FileError;
use crate::snapshot::{FileText, NodeFiles};
use std::path::Path;

/// The kernel's release string.
pub const OSRELEASE: &str = "/proc/sys/kernel/osrelease";
/// Where flannel writes the lease it holds for this node.
pub const DEFAULT_FLANNEL_SUBNET_ENV: &str = "/run/flannel/subnet.env";

/// The kernel release, read once: it does not change while the process runs, and every scan
/// (one per poll) needs it.
fn kernel_release() -> &'static Result<String, String> {
    static RELEASE: std::sync::OnceLock<Result<String, String>> = std::sync::OnceLock::new();
    RELEASE.get_or_init(|| match std::fs::read_to_string(OSRELEASE) {
        Ok(text) => Ok(text.trim().to_string()),
        Err(e) => Err(format!("kernel: {}", FileError::new("read", OSRELEASE, e))),
    })
}

/// Read the kernel release, and flannel's lease file at `flannel_subnet_env` when given. A file
/// that does not exist is `None` (a node without flannel); any other failure is reported.
pub fn read(flannel_subnet_env: Option<&Path>) -> (NodeFiles, Vec<String>) {
    let mut files = NodeFiles::default();
    let mut errors = Vec::new();
    match kernel_release() {
        Ok(release) => files.kernel_release = Some(release.clone()),
        Err(e) => errors.push(e.clone()),
    }
    if let Some(path) = flannel_subnet_env {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                files.flannel_lease = Some(FileText {
                    path: path.display().to_string(),
                    text,
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => errors.push(format!(
                "flannel: {}",
                FileError::new("read", path.to_path_buf(), e)
            )),
        }
    }
    (files, errors)
}
