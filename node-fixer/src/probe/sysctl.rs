//! Sysctls read from `/proc/sys/net` (they resolve in the reading thread's namespace). Keys are
//! paths under `/proc/sys` with slashes, so interface names with dots (`flannel.1`) work.

use crate::error::FileError;
use crate::snapshot::Sysctls;
use std::path::Path;

/// The per-interface keys the checks read, under `net/ipv4/conf/<iface>/`.
pub const CONF_KEYS: [&str; 4] = ["arp_ignore", "forwarding", "proxy_arp", "rp_filter"];
/// The global keys the checks read.
pub const GLOBAL_KEYS: [&str; 1] = ["net/ipv4/ip_forward"];
/// The global keys read when the kernel has them: IPv6's forwarding switch is absent on a
/// kernel booted with `ipv6.disable=1`, which is no error.
pub const OPTIONAL_KEYS: [&str; 1] = ["net/ipv6/conf/all/forwarding"];

/// Read the global keys and, for every entry of `net/ipv4/conf` (`all`, `default` and each
/// interface), the [`CONF_KEYS`]. A key that cannot be read is skipped and reported.
pub fn read_sysctls(root: &Path) -> (Sysctls, Vec<String>) {
    let mut out = Sysctls::new();
    let mut errors = Vec::new();
    for key in GLOBAL_KEYS {
        match read_key(root, key) {
            Ok(v) => {
                out.insert(key.to_string(), v);
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    for key in OPTIONAL_KEYS {
        match read_key(root, key) {
            Ok(v) => {
                out.insert(key.to_string(), v);
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => errors.push(e.to_string()),
        }
    }
    let conf = root.join("net/ipv4/conf");
    let entries = match std::fs::read_dir(&conf) {
        Ok(entries) => entries,
        Err(e) => {
            errors.push(FileError::new("list", conf, e).to_string());
            return (out, errors);
        }
    };
    for entry in entries.flatten() {
        let iface = entry.file_name().to_string_lossy().into_owned();
        for key in CONF_KEYS {
            let path = format!("net/ipv4/conf/{iface}/{key}");
            // An interface that vanished between the listing and the read is not an error.
            if let Ok(v) = read_key(root, &path) {
                out.insert(path, v);
            }
        }
    }
    (out, errors)
}

/// Read one key (`net/ipv4/ip_forward`) under `root` (`/proc/sys`), trimmed.
pub fn read_key(root: &Path, key: &str) -> Result<String, FileError> {
    let path = root.join(key);
    match std::fs::read_to_string(&path) {
        Ok(v) => Ok(v.trim().to_string()),
        Err(e) => Err(FileError::new("read", path, e)),
    }
}

/// `net/ipv4/conf/flannel.1/arp_ignore` → `net.ipv4.conf.flannel.1.arp_ignore` (the dotted
/// form people know; interface names keep their dots).
pub fn dotted(key: &str) -> String {
    key.replace('/', ".")
}
