//! `SetSysctl`: write one key under `/proc/sys` (in the thread's namespace), optionally
//! persisted in a drop-in file.

use super::FixOutcome;
use crate::error::{FileError, OrderError};
use crate::probe::sysctl::dotted;
use std::io::Write;
use std::path::Path;

/// Refuse keys outside `net/` or with path tricks.
pub fn validate_key(key: &str) -> Result<(), OrderError> {
    let ok = key.starts_with("net/")
        && !key.contains("..")
        && !key.contains("//")
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-@:".contains(c));
    if ok {
        Ok(())
    } else {
        Err(OrderError::InvalidParameter {
            key: "sysctl",
            value: key.to_string(),
            expected: "a sysctl under net/",
        })
    }
}

/// Set `key` to `value` in the current thread's namespace (`root` is `/proc/sys`).
pub fn set_here(root: &Path, key: &str, value: &str, dry_run: bool) -> FixOutcome {
    let path = root.join(key);
    let before = match std::fs::read_to_string(&path) {
        Ok(v) => v.trim().to_string(),
        Err(e) => return FixOutcome::failed("", format!("cannot read {}: {e}", path.display())),
    };
    if before == value {
        return FixOutcome::no_change(before, None);
    }
    if dry_run {
        return FixOutcome::applied(before, value, Some("dry-run: not written".into()));
    }
    if let Err(e) = std::fs::write(&path, format!("{value}\n")) {
        return FixOutcome::failed(before, format!("cannot write {}: {e}", path.display()));
    }
    match std::fs::read_to_string(&path) {
        Ok(v) if v.trim() == value => FixOutcome::applied(before, value, None),
        Ok(v) => FixOutcome::failed(
            before,
            format!(
                "wrote {value} to {} but it reads {}",
                path.display(),
                v.trim()
            ),
        ),
        Err(e) => FixOutcome::failed(before, format!("cannot re-read {}: {e}", path.display())),
    }
}

/// Whether a key is worth persisting: global keys and `all`/`default`, not per-interface keys
/// (interfaces come and go; a boot-time sysctl for a missing interface fails).
pub fn is_persistable(key: &str) -> bool {
    match key.strip_prefix("net/ipv4/conf/") {
        Some(rest) => rest.starts_with("all/") || rest.starts_with("default/"),
        None => true,
    }
}

/// The drop-in line for `key`: dotted, or slash-separated when a component holds a dot.
pub fn dropin_key(key: &str) -> String {
    if key.split('/').any(|c| c.contains('.')) {
        key.to_string()
    } else {
        dotted(key)
    }
}

/// Replace (or add) `key = value` in the drop-in text, keeping every other line.
pub fn merge_dropin(existing: &str, key: &str, value: &str) -> String {
    let name = dropin_key(key);
    let line = format!("{name} = {value}");
    let mut found = false;
    let mut out: Vec<String> = existing
        .lines()
        .map(|l| {
            let k = l.split('=').next().unwrap_or("").trim();
            if !l.trim_start().starts_with('#') && (k == name || k == dotted(key) || k == key) {
                found = true;
                line.clone()
            } else {
                l.to_string()
            }
        })
        .collect();
    if !found {
        if out.is_empty() {
            out.push("# Written by netheal node-fixer.".to_string());
        }
        out.push(line);
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

/// Write the drop-in atomically (temp file + rename). Returns whether the file changed.
pub fn persist(dir: &Path, file: &str, key: &str, value: &str) -> Result<bool, FileError> {
    let path = dir.join(file);
    let existing = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(FileError::new("read", path, e)),
    };
    let text = merge_dropin(&existing, key, value);
    if text == existing {
        return Ok(false);
    }
    std::fs::create_dir_all(dir).map_err(|e| FileError::new("create", dir, e))?;
    let tmp = dir.join(format!(".{file}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(FileError::new("write", path, e));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropin_keeps_other_lines_and_replaces_the_key() {
        let text = "# mine\nnet.ipv4.ip_forward = 0\nvm.swappiness = 10\n";
        let out = merge_dropin(text, "net/ipv4/ip_forward", "1");
        assert_eq!(out, "# mine\nnet.ipv4.ip_forward = 1\nvm.swappiness = 10\n");
        let out2 = merge_dropin(&out, "net/ipv4/conf/all/arp_ignore", "0");
        assert!(out2.ends_with("vm.swappiness = 10\nnet.ipv4.conf.all.arp_ignore = 0\n"));
        assert_eq!(
            merge_dropin(&out2, "net/ipv4/conf/all/arp_ignore", "0"),
            out2
        );
        assert_eq!(
            dropin_key("net/ipv4/conf/flannel.1/arp_ignore"),
            "net/ipv4/conf/flannel.1/arp_ignore"
        );
    }

    proptest::proptest! {
        #[test]
        fn merging_keeps_every_other_line_and_is_idempotent(
            lines in proptest::collection::vec("[a-z.]{1,12} = [0-9]{1,3}|# [ -~]{0,20}", 0..8),
            value in "[0-9]{1,2}",
        ) {
            let existing: String = lines.iter().map(|l| format!("{l}\n")).collect();
            let key = "net/ipv4/conf/all/arp_ignore";
            let once = merge_dropin(&existing, key, &value);
            proptest::prop_assert_eq!(merge_dropin(&once, key, &value), once.clone());
            let want = format!("net.ipv4.conf.all.arp_ignore = {value}");
            proptest::prop_assert!(once.lines().any(|l| l == want));
            for l in &lines {
                proptest::prop_assert!(once.lines().any(|o| o == l), "lost {:?}", l);
            }
        }
    }

    #[test]
    fn keys_are_validated_and_persistence_is_limited_to_global_keys() {
        assert!(validate_key("net/ipv4/conf/flannel.1/arp_ignore").is_ok());
        assert!(validate_key("net/../kernel/panic").is_err());
        assert!(validate_key("kernel/panic").is_err());
        assert!(validate_key("net/ipv4/conf/a b/x").is_err());
        assert!(is_persistable("net/ipv4/ip_forward"));
        assert!(is_persistable("net/ipv4/conf/all/arp_ignore"));
        assert!(!is_persistable("net/ipv4/conf/cali1/arp_ignore"));
    }

    #[test]
    fn persist_writes_atomically_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("90-netheal.conf"), "kernel.x = 1\n").unwrap();
        assert!(persist(dir.path(), "90-netheal.conf", "net/ipv4/ip_forward", "1").unwrap());
        assert!(!persist(dir.path(), "90-netheal.conf", "net/ipv4/ip_forward", "1").unwrap());
        let text = std::fs::read_to_string(dir.path().join("90-netheal.conf")).unwrap();
        assert_eq!(text, "kernel.x = 1\nnet.ipv4.ip_forward = 1\n");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }
}
