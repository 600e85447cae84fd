//! netheal's images run with podman, with the privileges and mounts their manifests declare
//! ([`translate`]). Images are the ones `make images` builds; a test that needs one and does not
//! find it fails and says to run `make images`.

pub mod translate;

use std::path::Path;
use std::process::{Command, Output};

/// Something podman could not do.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// podman could not be started.
    #[error("cannot run podman: {0} (apt-get install podman runc)")]
    Spawn(std::io::Error),
    /// The image is not in podman's storage.
    #[error("image {0} not found: build it with `make images`")]
    NoImage(String),
    /// A podman command failed.
    #[error("`podman {command}` failed: {stderr}")]
    Failed {
        /// The arguments.
        command: String,
        /// What podman printed.
        stderr: String,
    },
}

/// The image `make images` tags for `component` (`operator`, `node-fixer`) at this version, or
/// `NETHEAL_<COMPONENT>_IMAGE` (`NETHEAL_NODE_FIXER_IMAGE`).
pub fn image(component: &str) -> String {
    let var = format!(
        "NETHEAL_{}_IMAGE",
        component.to_uppercase().replace('-', "_")
    );
    std::env::var(var).unwrap_or_else(|_| {
        format!(
            "ghcr.io/netheal/netheal-{component}:{}",
            env!("CARGO_PKG_VERSION")
        )
    })
}

/// Fails unless `image` is in podman's storage.
pub fn require_image(image: &str) -> Result<(), ContainerError> {
    let out = podman(&["image", "exists", image])?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ContainerError::NoImage(image.to_string()))
    }
}

/// The flags every `podman run` here needs, measured on Debian 12: the `runc` runtime (crun,
/// podman's default, fails with cgroups in hybrid mode) and file and process limits below the
/// machine's hard limit (podman's defaults exceed it).
pub fn runtime_flags() -> Vec<String> {
    let hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(_, hard)| hard)
        .unwrap_or(16384);
    let n = hard.min(16384);
    vec![
        "--runtime=runc".to_string(),
        format!("--ulimit=nofile={n}:{n}"),
        format!("--ulimit=nproc={n}:{n}"),
    ]
}

/// Run `podman ARGS`, returning its output whatever the exit status.
pub fn podman(args: &[&str]) -> Result<Output, ContainerError> {
    Command::new("podman")
        .args(args)
        .output()
        .map_err(ContainerError::Spawn)
}

/// Run `podman ARGS` and fail on a non-zero exit.
pub fn podman_ok(args: &[&str]) -> Result<Output, ContainerError> {
    let out = podman(args)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(ContainerError::Failed {
            command: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// The argument list of `podman run --rm --name NAME <runtime flags> FLAGS IMAGE ARGS`. The
/// container's stdout and stderr are podman's own (log driver `passthrough`): no copy through
/// conmon, so a log file given to podman is the container's.
pub fn run_command(name: &str, flags: &[String], image: &str, args: &[String]) -> Vec<String> {
    let mut all = vec![
        "run".to_string(),
        "--rm".to_string(),
        format!("--name={name}"),
        "--log-driver=passthrough".to_string(),
    ];
    all.extend(runtime_flags());
    all.extend(flags.iter().cloned());
    all.push(image.to_string());
    all.extend(args.iter().cloned());
    all
}

/// Remove container `name` now (no grace period), whether it runs or not.
pub fn remove(name: &str) {
    let _ = podman(&["rm", "--force", "--time=0", "--ignore", name]);
}

/// What podman says about a running container (`podman inspect`), as JSON.
pub fn inspect(name: &str) -> Result<serde_json::Value, ContainerError> {
    let out = podman_ok(&["inspect", name])?;
    let all: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| ContainerError::Failed {
            command: format!("inspect {name}"),
            stderr: format!("unreadable answer: {e}"),
        })?;
    Ok(all.get(0).cloned().unwrap_or_default())
}

/// Write the folder a Pod's ServiceAccount token volume holds: `token`, `ca.crt`, `namespace`.
pub fn write_service_account_dir(
    dir: &Path,
    token: &str,
    ca_pem: &str,
    namespace: &str,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("token"), token)?;
    std::fs::write(dir.join("ca.crt"), ca_pem)?;
    std::fs::write(dir.join("namespace"), namespace)?;
    Ok(())
}
