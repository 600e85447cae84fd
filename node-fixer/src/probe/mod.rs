//! Probes: read kernel state into a [`crate::snapshot::Snapshot`]. Read-only; every probe runs
//! on a short-lived thread inside the namespace it reads (see [`crate::netns`]).

pub mod addr;
pub mod iptables;
pub mod ipvs;
pub mod link;
pub mod neigh;
pub mod nft;
pub mod node_files;
pub mod offload;
pub mod route;
pub mod rtnl;
pub mod sysctl;

use crate::error::ProbeError;
use crate::netns;
use crate::snapshot::{NsSnapshot, PodSnapshot};
use netheal_crds::patterns::InterfacePatterns;
use std::path::{Path, PathBuf};

/// Where the kernel's sysctls are read and written by default.
pub const PROC_SYS: &str = "/proc/sys";

/// The environment variable that moves the sysctl root. In an unprivileged container the
/// runtime mounts `/proc/sys` read-only, so the DaemonSet mounts the host's `/proc/sys/net` at
/// `/host/proc/sys/net` and sets `NETHEAL_PROC_SYS=/host/proc/sys` (as Cilium's agent does).
/// A `net/...` file still resolves in the network namespace of the thread that opens it, so
/// pod namespaces work the same through the mount.
pub const PROC_SYS_ENV: &str = "NETHEAL_PROC_SYS";

/// The sysctl root: `$NETHEAL_PROC_SYS`, or `/proc/sys` when unset or empty.
pub fn proc_sys_root() -> &'static Path {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| proc_sys_root_from(std::env::var_os(PROC_SYS_ENV)))
}

fn proc_sys_root_from(value: Option<std::ffi::OsString>) -> PathBuf {
    match value {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(PROC_SYS),
    }
}

/// What to read in a namespace.
#[derive(Clone, Debug)]
pub struct ProbeSet {
    /// Links, addresses, neighbours, fdb and routes (netlink).
    pub netlink: bool,
    /// Sysctls.
    pub sysctls: bool,
    /// iptables rules.
    pub iptables: bool,
    /// ip6tables rules too (of the backend iptables uses); needs `iptables`.
    pub ip6tables: bool,
    /// The rules of nftables' own tables (`nft -j list table`).
    pub nftables: bool,
    /// The interfaces whose offload features are read (ethtool netlink); needs `netlink`.
    pub features_of: Option<InterfacePatterns>,
    /// kube-proxy's IPVS table and nftables `service-ips` map.
    pub proxy: bool,
}

/// Read the namespace `ns` (`None`: the process's own). Errors of single probes are returned
/// beside the partial snapshot.
pub fn probe_namespace(ns: Option<&Path>, set: ProbeSet) -> (NsSnapshot, Vec<String>) {
    let label = ns.map_or_else(|| "host".to_string(), |p| p.display().to_string());
    match netns::run_in(ns, move || probe_here(set)) {
        Ok(result) => result,
        Err(e) => (NsSnapshot::default(), vec![format!("{label}: {e}")]),
    }
}

/// Read the current thread's namespace.
fn probe_here(set: ProbeSet) -> (NsSnapshot, Vec<String>) {
    let mut snap = NsSnapshot::default();
    let mut errors = Vec::new();
    if set.netlink {
        match probe_netlink(&mut snap) {
            Ok(()) => {
                if let Some(patterns) = &set.features_of {
                    let names: Vec<String> = snap
                        .links
                        .iter()
                        .filter(|l| patterns.matches(&l.name))
                        .map(|l| l.name.clone())
                        .collect();
                    match offload::read_features(&names) {
                        Ok(features) => snap.features = features,
                        Err(e) => errors.push(format!("ethtool: {e}")),
                    }
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    if set.sysctls {
        let (sysctls, errs) = sysctl::read_sysctls(proc_sys_root());
        snap.sysctls = sysctls;
        errors.extend(errs);
    }
    if set.iptables {
        match iptables::probe() {
            Ok((rules, unreadable)) => {
                if set.ip6tables
                    && let Some(backend) = rules.as_ref().map(|r| r.backend)
                {
                    match iptables::probe_v6(backend) {
                        Ok(rules) => snap.ip6tables = rules,
                        Err(e) => errors.push(format!("ip6tables: {e}")),
                    }
                }
                snap.iptables = rules;
                errors.extend(unreadable.map(|e| format!("iptables: {e}")));
            }
            Err(e) => errors.push(format!("iptables: {e}")),
        }
    }
    if set.nftables || set.proxy {
        // Without the REJECT check only the table listing is read (kube-proxy's table there?).
        let searched = set.nftables;
        match nft::probe(|family, name| {
            searched && crate::checks::reject_nft::is_searched_table(family, name)
        }) {
            Ok(ruleset) => {
                if set.proxy
                    && let Some(listing) = &ruleset
                {
                    match nft::kube_proxy_service_ips(&listing.tables, "ip") {
                        Ok(keys) => snap.proxy.nft = keys,
                        Err(e) => errors.push(format!("kube-proxy: {e}")),
                    }
                    match nft::kube_proxy_service_ips(&listing.tables, "ip6") {
                        Ok(keys) => snap.proxy.nft6 = keys,
                        Err(e) => errors.push(format!("kube-proxy: {e}")),
                    }
                }
                if set.nftables {
                    snap.nftables = ruleset;
                }
            }
            Err(e) if set.nftables => errors.push(format!("nftables: {e}")),
            Err(e) => errors.push(format!("kube-proxy: {e}")),
        }
    }
    if set.proxy {
        match ipvs::read() {
            Ok(keys) => snap.proxy.ipvs = keys,
            Err(e) => errors.push(format!("kube-proxy: {e}")),
        }
    }
    (snap, errors)
}

fn probe_netlink(snap: &mut NsSnapshot) -> Result<(), ProbeError> {
    let dump = |what| move |source| ProbeError::Dump { what, source };
    let mut rtnl = rtnl::Rtnl::open().map_err(dump("netlink"))?;
    snap.links = link::dump_links(&mut rtnl).map_err(dump("link"))?;
    snap.addresses = addr::dump_addresses(&mut rtnl).map_err(dump("address"))?;
    snap.neighbours = neigh::dump_neighbours(&mut rtnl).map_err(dump("neighbour"))?;
    snap.fdb = neigh::dump_fdb(&mut rtnl).map_err(dump("fdb"))?;
    snap.routes = route::dump_routes(&mut rtnl).map_err(dump("route"))?;
    // A kernel (or namespace) without IPv6 has no IPv6 tables to read: not an error.
    if std::path::Path::new("/proc/thread-self/net/if_inet6").exists() {
        snap.neighbours6 = neigh::dump_neighbours6(&mut rtnl).map_err(dump("neighbour6"))?;
        snap.routes6 = route::dump_routes6(&mut rtnl).map_err(dump("route6"))?;
    }
    Ok(())
}

/// Read the sysctls of every pod namespace in `paths`.
pub fn probe_pods(paths: &[PathBuf]) -> (Vec<PodSnapshot>, Vec<String>) {
    let set = ProbeSet {
        netlink: false,
        sysctls: true,
        iptables: false,
        ip6tables: false,
        nftables: false,
        features_of: None,
        proxy: false,
    };
    let mut pods = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        let (snap, errs) = probe_namespace(Some(path), set.clone());
        let name = netns::netns_name(path);
        // A pod that went away during the scan is not an error.
        if !errs.is_empty() && !path.exists() {
            continue;
        }
        errors.extend(errs.into_iter().map(|e| format!("netns {name}: {e}")));
        pods.push(PodSnapshot {
            name,
            sysctls: snap.sysctls,
        });
    }
    (pods, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_root_follows_the_environment_and_defaults_to_proc_sys() {
        assert_eq!(proc_sys_root_from(None), PathBuf::from("/proc/sys"));
        assert_eq!(
            proc_sys_root_from(Some("".into())),
            PathBuf::from("/proc/sys")
        );
        assert_eq!(
            proc_sys_root_from(Some("/host/proc/sys".into())),
            PathBuf::from("/host/proc/sys")
        );
    }
}
