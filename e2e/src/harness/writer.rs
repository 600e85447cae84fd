//! A competing writer: another owner of a sysctl (a network manager, a hardening timer) that
//! writes its own value every period. It stops when dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// A thread writing `value` to `/proc/sys/<path>` in namespace `netns` every `period`.
#[derive(Debug)]
pub struct CompetingWriter {
    stop: Arc<AtomicBool>,
    writes: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl CompetingWriter {
    /// Start writing (the first write happens at once).
    pub fn start(netns: &str, path: &str, value: &str, period: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let writes = Arc::new(AtomicU64::new(0));
        let (netns, file, value) = (
            netns.to_string(),
            format!("/proc/sys/{path}"),
            value.to_string(),
        );
        let (s, w) = (Arc::clone(&stop), Arc::clone(&writes));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let script = format!("echo {value} > {file}");
                if crate::netns::run("ip", &["netns", "exec", &netns, "sh", "-c", &script]).is_ok()
                {
                    w.fetch_add(1, Ordering::Relaxed);
                }
                let mut slept = Duration::ZERO;
                while slept < period && !s.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                    slept += Duration::from_millis(50);
                }
            }
        });
        Self {
            stop,
            writes,
            thread: Some(thread),
        }
    }

    /// How many writes succeeded so far.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
}

impl Drop for CompetingWriter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
