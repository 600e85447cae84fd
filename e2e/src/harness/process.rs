//! Child processes with their output in a log file, killed when dropped.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A child process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The log file could not be created.
    #[error("cannot create log file {path}: {source}")]
    Log {
        /// The log file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The program could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A running child process whose stdout and stderr go to a log file. Dropping it kills the
/// process (SIGKILL) and reaps it.
#[derive(Debug)]
pub struct ChildProcess {
    name: String,
    child: Child,
    log: PathBuf,
    stop: Option<(String, Vec<String>)>,
}

impl ChildProcess {
    /// Start `program args…` with `envs`, output appended to `log`.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        envs: &[(&str, String)],
        log: &Path,
    ) -> Result<Self, ProcessError> {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).map_err(|source| ProcessError::Log {
                path: log.to_path_buf(),
                source,
            })?;
        }
        let out = File::create(log).map_err(|source| ProcessError::Log {
            path: log.to_path_buf(),
            source,
        })?;
        let err = out.try_clone().map_err(|source| ProcessError::Log {
            path: log.to_path_buf(),
            source,
        })?;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        for (key, value) in envs {
            command.env(key, value);
        }
        let child = command.spawn().map_err(|source| ProcessError::Spawn {
            program: program.display().to_string(),
            source,
        })?;
        tracing::debug!(name, pid = child.id(), log = %log.display(), "started");
        Ok(Self {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
            stop: None,
        })
    }

    /// Run `program args…` to stop the process's real work before killing it: for a client
    /// such as `podman run`, whose container would outlive it.
    pub fn with_stop_command(mut self, program: &str, args: &[&str]) -> Self {
        self.stop = Some((
            program.to_string(),
            args.iter().map(|a| a.to_string()).collect(),
        ));
        self
    }

    /// The process's name in the harness (`operator`, `agent-node1`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// `Some(status text)` when the process has exited.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("unknown ({e})")),
        }
    }

    /// The last `lines` lines of the log.
    pub fn tail(&self, lines: usize) -> String {
        tail_file(&self.log, lines)
    }

    /// Kill the process and wait for it.
    pub fn kill(&mut self) {
        if let Some((program, args)) = self.stop.take() {
            let _ = Command::new(program)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
        }
        // SIGKILL is final; the wait only reaps.
        for _ in 0..50 {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.wait();
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last `lines` lines of a text file (empty when unreadable).
pub fn tail_file(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_goes_to_the_log_and_drop_kills() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("sub/echo.log");
        let mut p = ChildProcess::spawn(
            "sh",
            Path::new("/bin/sh"),
            &["-c".into(), "echo hello-$X; exec sleep 30".into()],
            &[("X", "world".into())],
            &log,
        )
        .unwrap();
        let pid = p.pid();
        for _ in 0..100 {
            if p.tail(1) == "hello-world" {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(p.tail(5), "hello-world");
        assert!(p.exited().is_none());
        drop(p);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map(|s| s.contains(" Z "))
                    .unwrap_or(true),
            "the child must be gone after drop"
        );
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        std::fs::write(&path, "a\nb\nc\n").unwrap();
        assert_eq!(tail_file(&path, 2), "b\nc");
        assert_eq!(tail_file(&dir.path().join("none"), 2), "");
    }
}
