//! Fields of `/proc/<pid>/status`, for the memory and privilege figures of tests and benches.

/// The value of field `name` (`VmRSS`, `CapEff`, …) of `/proc/<pid>/status`, `pid` a number or
/// `self`: the text after the colon, trimmed. `None` when the file or the field is missing.
pub fn status_field(pid: &str, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key == name).then(|| value.trim().to_string())
    })
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`) in KiB; 0 when unreadable.
pub fn status_kib(pid: &str, name: &str) -> u64 {
    status_field(pid, name)
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_fields() {
        assert!(status_kib("self", "VmRSS") > 0);
        assert!(status_field("self", "CapEff").is_some_and(|v| v.len() == 16));
        assert_eq!(status_field("self", "NoSuchField"), None);
    }
}
