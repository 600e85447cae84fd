//! Where the control plane's binaries are: `hack/build-controlplane.sh` builds them once into
//! a cache folder (or checks `NETHEAL_CONTROLPLANE_BIN`) and prints `controlplane: DIR`. Run
//! once per process.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The binaries could not be had.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "the control plane binaries: {0} (run `make controlplane`, or set NETHEAL_CONTROLPLANE_BIN)"
)]
pub struct BinsError(String);

static DIR: OnceLock<Result<PathBuf, BinsError>> = OnceLock::new();

/// The folder with `etcd`, `kube-apiserver`, `kube-controller-manager`, `kube-scheduler` and
/// `kubectl`, built first when needed.
pub fn ensure() -> Result<PathBuf, BinsError> {
    DIR.get_or_init(|| {
        let script = crate::harness::bins::workspace_root().join("hack/build-controlplane.sh");
        let output = Command::new("bash")
            .arg(&script)
            .output()
            .map_err(|e| BinsError(format!("{}: {e}", script.display())))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(BinsError(format!(
                "{} failed: {}{}",
                script.display(),
                stdout.trim(),
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        stdout
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("controlplane: "))
            .map(|d| PathBuf::from(d.trim()))
            .ok_or_else(|| BinsError(format!("{} printed no folder", script.display())))
    })
    .clone()
}
