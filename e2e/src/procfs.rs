//! Fields of `/proc/<pid>/status` and `/proc/<pid>/stat`, for the memory, CPU and privilege
//! figures of tests and benches.

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

/// (utime + stime, cutime + cstime) of `pid`, in clock ticks: its own threads, and its
/// waited-for children. Zero when unreadable.
pub fn cpu_ticks(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after ") ".
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17.
    let get = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (get(14) + get(15), get(16) + get(17))
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 when it cannot be asked).
pub fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_fields() {
        assert!(status_kib("self", "VmRSS") > 0);
        assert!(status_field("self", "CapEff").is_some_and(|v| v.len() == 16));
        assert_eq!(status_field("self", "NoSuchField"), None);
        assert!(clock_ticks_per_second() > 0.0);
    }
}
