//! A cluster DNS for seed 001's symptom: dnsmasq (Debian's `dnsmasq-base`) answering inside a
//! pod's namespace, and a lookup through it from another pod with the C library's resolver
//! (`getent`), the way a pod's process resolves a Service name.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The name the DNS pod answers, and its address.
pub const SERVICE_NAME: &str = "kubernetes.default.svc.cluster.local";
/// The address it resolves to (the `kubernetes` Service's cluster IP).
pub const SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);

/// dnsmasq running in a pod's namespace; stopped when dropped.
#[derive(Debug)]
pub struct DnsServer {
    child: Child,
}

impl DnsServer {
    /// Serve [`SERVICE_NAME`] on `ip`:53 inside namespace `netns`, nothing else (no upstream,
    /// no hosts file).
    pub fn start(netns: &str, ip: Ipv4Addr) -> std::io::Result<Self> {
        let child = Command::new("ip")
            .args(["netns", "exec", netns, "dnsmasq", "--keep-in-foreground"])
            .args([
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--port=53",
            ])
            .arg(format!("--listen-address={ip}"))
            .arg(format!("--address=/{SERVICE_NAME}/{SERVICE_IP}"))
            .args(["--pid-file=", "--user=root"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(Self { child })
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A pod's resolver configuration (`/etc/netns/<netns>/resolv.conf`, which `ip netns exec`
/// mounts over `/etc/resolv.conf`); removed when dropped.
#[derive(Debug)]
pub struct Resolver {
    netns: String,
    dir: PathBuf,
}

impl Resolver {
    /// Point pod namespace `netns` at `server`, one try of one second per lookup.
    pub fn new(netns: &str, server: Ipv4Addr) -> std::io::Result<Self> {
        let dir = PathBuf::from("/etc/netns").join(netns);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("resolv.conf"),
            format!("nameserver {server}\noptions timeout:1 attempts:1\n"),
        )?;
        Ok(Self {
            netns: netns.to_string(),
            dir,
        })
    }

    /// Resolve [`SERVICE_NAME`] from the pod: its first IPv4 address, `None` when the lookup
    /// fails (the server cannot be reached).
    pub fn lookup(&self) -> Option<IpAddr> {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.netns,
                "getent",
                "ahostsv4",
                SERVICE_NAME,
            ])
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        // `/etc/netns` itself only when no other namespace's configuration is left in it.
        let _ = self.dir.parent().map(std::fs::remove_dir);
    }
}
