//! Where the real binaries are: `NETHEAL_BIN_DIR`, or the workspace's `target/debug/` (built on
//! first use with `cargo build -p node-fixer -p netheal-operator`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The node agent binary.
pub const NODE_FIXER: &str = "node-fixer";
/// The operator binary.
pub const OPERATOR: &str = "netheal-operator";

/// A binary could not be found or built.
#[derive(Debug, thiserror::Error)]
pub enum BinError {
    /// `cargo build` could not run or failed.
    #[error("building {what} failed: {detail}")]
    Build {
        /// What was being built.
        what: String,
        /// cargo's error output, or why it could not start.
        detail: String,
    },
    /// The binary is not where it should be.
    #[error(
        "binary {0} not found (set NETHEAL_BIN_DIR or run `cargo build -p node-fixer -p netheal-operator`)"
    )]
    Missing(PathBuf),
}

/// The workspace root (the parent of the `e2e` crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The directory the binaries are taken from: `NETHEAL_BIN_DIR` when set, else
/// `<workspace>/target/debug` (or `$CARGO_TARGET_DIR/debug`).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("NETHEAL_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from);
    target.join("debug")
}

static BUILT: OnceLock<Result<(), String>> = OnceLock::new();

/// Make sure the operator and node-fixer binaries exist and are current. With
/// `NETHEAL_BIN_DIR` set nothing is built; otherwise `cargo build` runs once per process (fast
/// when nothing changed), so a test never runs a stale binary.
pub fn ensure_built() -> Result<PathBuf, BinError> {
    let dir = bin_dir();
    if std::env::var_os("NETHEAL_BIN_DIR").is_none() {
        let result = BUILT.get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
            let output = Command::new(cargo)
                .current_dir(workspace_root())
                .args([
                    "build", "--quiet", "-p", NODE_FIXER, "-p", OPERATOR, "--bins",
                ])
                .output()
                .map_err(|e| e.to_string())?;
            if output.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&output.stderr).into_owned())
            }
        });
        if let Err(detail) = result {
            return Err(BinError::Build {
                what: format!("{NODE_FIXER} and {OPERATOR}"),
                detail: detail.clone(),
            });
        }
    }
    for name in [NODE_FIXER, OPERATOR] {
        let path = dir.join(name);
        if !path.is_file() {
            return Err(BinError::Missing(path));
        }
    }
    Ok(dir)
}

/// The path of binary `name` in [`bin_dir`].
pub fn bin_path(name: &str) -> PathBuf {
    bin_dir().join(name)
}
