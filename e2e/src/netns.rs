//! Named network namespaces for tests, removed when dropped.
//!
//! A [`Netns`] is created with `ip netns add` and deleted with `ip netns del` when the guard goes
//! out of scope, also when a test panics. Commands run inside it with `ip netns exec`.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// An error running one of the host's network tools.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The tool could not be started (not installed, not root).
    #[error("could not run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why it could not start.
        source: std::io::Error,
    },
    /// The tool ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed on stderr.
        stderr: String,
    },
}

/// Run a command and return its output, turning a non-zero exit into an error.
pub fn run(program: &str, args: &[&str]) -> Result<Output, NetnsError> {
    let command = format!("{program} {}", args.join(" "));
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| NetnsError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(NetnsError::Failed {
            command,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(output)
}

/// [`run`], with `input` written to the command's standard input (`iptables-restore`,
/// `ip -batch -`).
pub fn run_with_input(program: &str, args: &[&str], input: &str) -> Result<Output, NetnsError> {
    let command = format!("{program} {}", args.join(" "));
    let spawn_error = |source| NetnsError::Spawn {
        command: command.clone(),
        source,
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).map_err(spawn_error)?;
    }
    let output = child.wait_with_output().map_err(spawn_error)?;
    if !output.status.success() {
        return Err(NetnsError::Failed {
            command,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(output)
}

/// A named network namespace that is deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Create `name` (deleting a leftover of the same name first) and bring its loopback up.
    pub fn create(name: &str) -> Result<Self, NetnsError> {
        let _ = run("ip", &["netns", "del", name]);
        run("ip", &["netns", "add", name])?;
        let ns = Self {
            name: name.to_string(),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's bind-mount path (`/var/run/netns/NAME`).
    pub fn path(&self) -> String {
        format!("/var/run/netns/{}", self.name)
    }

    /// Run `program args…` inside the namespace.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<Output, NetnsError> {
        let mut all = vec!["netns", "exec", self.name.as_str(), program];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Run `program args…` inside the namespace with `input` on its standard input.
    pub fn exec_with_input(
        &self,
        program: &str,
        args: &[&str],
        input: &str,
    ) -> Result<Output, NetnsError> {
        let mut all = vec!["netns", "exec", self.name.as_str(), program];
        all.extend_from_slice(args);
        run_with_input("ip", &all, input)
    }

    /// Run `ip args…` inside the namespace.
    pub fn ip(&self, args: &[&str]) -> Result<Output, NetnsError> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Write `value` to `/proc/sys/<path>` inside the namespace. `path` is slash-separated
    /// (`net/ipv4/conf/flannel.1/arp_ignore`), so interface names with dots work.
    pub fn set_sysctl(&self, path: &str, value: &str) -> Result<(), NetnsError> {
        let path = format!("/proc/sys/{path}");
        self.exec("sh", &["-c", &format!("echo {value} > {path}")])
            .map(|_| ())
    }

    /// `ping -c COUNT -W 1 ADDR` from inside the namespace; true when a reply came back.
    pub fn ping(&self, addr: &str, count: u32) -> bool {
        self.exec(
            "ping",
            &[
                "-n",
                "-q",
                "-c",
                &count.to_string(),
                "-W",
                "1",
                "-i",
                "0.2",
                addr,
            ],
        )
        .is_ok()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_is_created_usable_and_removed_on_drop() {
        let name = "nh-netns-selftest";
        {
            let ns = Netns::create(name).unwrap();
            assert!(
                ns.ping("127.0.0.1", 1),
                "loopback must answer inside the namespace"
            );
            let list = run("ip", &["netns", "list"]).unwrap();
            assert!(String::from_utf8_lossy(&list.stdout).contains(name));
        }
        let list = run("ip", &["netns", "list"]).unwrap();
        assert!(!String::from_utf8_lossy(&list.stdout).contains(name));
    }
}
