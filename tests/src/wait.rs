//! Waiting for readiness: poll a condition until a deadline, never sleep a
//! fixed time hoping something is ready.

use std::thread;
use std::time::{Duration, Instant};

/// The first poll interval; it doubles up to [`MAX_POLL`].
const FIRST_POLL: Duration = Duration::from_millis(10);
/// The longest pause between two polls.
const MAX_POLL: Duration = Duration::from_millis(200);

/// Errors of waiting.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// The condition did not hold before the deadline.
    #[error("timed out after {waited:?} waiting for {what}")]
    TimedOut { what: String, waited: Duration },
}

/// Polls `ready` until it returns `Some`, or fails at `deadline`. The
/// condition is always tried at least once, and once more at the deadline.
pub fn wait_for<T>(
    what: &str,
    deadline: Instant,
    mut ready: impl FnMut() -> Option<T>,
) -> Result<T, WaitError> {
    let start = Instant::now();
    let mut pause = FIRST_POLL;
    loop {
        if let Some(value) = ready() {
            return Ok(value);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(WaitError::TimedOut {
                what: what.to_owned(),
                waited: now - start,
            });
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(MAX_POLL);
    }
}

/// Polls `ready` until it returns true, or fails at `deadline`.
pub fn wait_until(
    what: &str,
    deadline: Instant,
    mut ready: impl FnMut() -> bool,
) -> Result<(), WaitError> {
    wait_for(what, deadline, || ready().then_some(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_as_soon_as_ready() -> Result<(), WaitError> {
        let mut calls = 0;
        let value = wait_for(
            "third call",
            Instant::now() + Duration::from_secs(5),
            || {
                calls += 1;
                (calls == 3).then_some(calls)
            },
        )?;
        assert_eq!(value, 3);
        Ok(())
    }

    #[test]
    fn times_out_with_what_it_waited_for() {
        let err = wait_until("never", Instant::now() + Duration::from_millis(50), || {
            false
        });
        let Err(err) = err else {
            panic!("a false condition cannot succeed");
        };
        assert!(err.to_string().contains("waiting for never"), "{err}");
    }

    #[test]
    fn past_deadline_still_tries_once() {
        assert!(wait_until("already true", Instant::now(), || true).is_ok());
    }
}
