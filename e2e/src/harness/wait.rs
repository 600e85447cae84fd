//! Waiting for a condition with a deadline: poll every 100 ms, and on timeout fail with the
//! last state seen, so a failing scenario says what it was looking at.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often conditions are polled.
pub const POLL: Duration = Duration::from_millis(100);

/// One look at the condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check<T> {
    /// The condition holds; the wait returns this value.
    Done(T),
    /// Not yet; the text describes what was seen (reported on timeout).
    NotYet(String),
}

/// The condition did not hold before the deadline.
#[derive(Debug, thiserror::Error)]
#[error("timed out after {waited:?} waiting for {what}; last seen: {last}")]
pub struct Timeout {
    /// What was awaited.
    pub what: String,
    /// How long.
    pub waited: Duration,
    /// The last state seen.
    pub last: String,
}

/// Poll `probe` every [`POLL`] until it returns [`Check::Done`] or `timeout` passes.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> Result<T, Timeout>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Check<T>>,
{
    let start = Instant::now();
    loop {
        let last = match probe().await {
            Check::Done(value) => return Ok(value),
            Check::NotYet(seen) => seen,
        };
        if start.elapsed() >= timeout {
            return Err(Timeout {
                what: what.to_string(),
                waited: start.elapsed(),
                last,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// [`wait_for`] for blocking probes (kernel state, pings), run off the async runtime.
pub fn wait_for_blocking<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Check<T>,
) -> Result<T, Timeout> {
    let start = Instant::now();
    loop {
        let last = match probe() {
            Check::Done(value) => return Ok(value),
            Check::NotYet(seen) => seen,
        };
        if start.elapsed() >= timeout {
            return Err(Timeout {
                what: what.to_string(),
                waited: start.elapsed(),
                last,
            });
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_value_once_the_condition_holds() {
        let mut n = 0;
        let got = wait_for("n to reach 3", Duration::from_secs(5), || {
            n += 1;
            let seen = n;
            async move {
                if seen >= 3 {
                    Check::Done(seen)
                } else {
                    Check::NotYet(format!("n={seen}"))
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(got, 3);
    }

    #[tokio::test]
    async fn timeout_names_the_last_state_seen() {
        let err = wait_for::<(), _, _>("never", Duration::from_millis(250), || async {
            Check::NotYet("still red".into())
        })
        .await
        .unwrap_err();
        assert_eq!(err.last, "still red");
        assert!(
            err.to_string()
                .contains("waiting for never; last seen: still red")
        );
    }

    #[test]
    fn blocking_variant_times_out_too() {
        let err = wait_for_blocking::<()>("x", Duration::from_millis(150), || {
            Check::NotYet("y".into())
        })
        .unwrap_err();
        assert!(err.waited >= Duration::from_millis(150));
    }
}
