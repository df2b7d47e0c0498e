//! How a client session ended (the slot loop decides on reconnects from it), and the guards every
//! session runs under: panics caught, deadlines that cannot overflow.

use crate::metrics::ErrorKind;
use futures::FutureExt;
use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// The run (or a ramp-down) stopped it.
    Cancelled,
    /// It lasted its planned session length (viewer churn) or the stream ended normally.
    Completed,
    /// It failed; the kind was already counted.
    Failed(ErrorKind),
}

/// A setup (connect, handshake, first answer) still pending when the run or a ramp-down stops its
/// session counts as a `timeout` once it has waited this long: against a server that answers, a
/// setup takes milliseconds, so one stopped younger than this was merely caught in the act.
pub const PENDING_SETUP_GRACE: Duration = Duration::from_secs(1);

/// Runs `session` and turns a panic inside it into `Err(message)`, so a bug (ours or a library's)
/// on hostile input ends one session instead of the client slot. `AssertUnwindSafe` is sound here:
/// the session's state is dropped with it, and what it shares (the group's metrics) is behind
/// mutexes that tolerate poisoning.
pub async fn catch_panic<F: Future>(session: F) -> Result<F::Output, String> {
    AssertUnwindSafe(session)
        .catch_unwind()
        .await
        .map_err(|payload| panic_message(payload.as_ref()))
}

/// The text a panic was raised with (`panic!("...")` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Far enough to mean "never" for a session, near enough to add to any `Instant`.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 86_400);

/// `from + after`, saturating at a far future instead of panicking: `after` may come from a
/// server (an HLS `#EXT-X-TARGETDURATION`) or a scenario file.
pub fn deadline(from: std::time::Instant, after: Duration) -> std::time::Instant {
    from.checked_add(after)
        .or_else(|| from.checked_add(FOREVER))
        .unwrap_or(from)
}

/// [`deadline`] on tokio's clock.
pub fn tokio_deadline(from: tokio::time::Instant, after: Duration) -> tokio::time::Instant {
    from.checked_add(after)
        .or_else(|| from.checked_add(FOREVER))
        .unwrap_or(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_session_gives_its_message() {
        let ok = catch_panic(async { 7 }).await;
        assert_eq!(ok, Ok(7));
        let caught = catch_panic(async {
            let v: Vec<u8> = Vec::new();
            // Indexing past the end: the kind of bug hostile input finds.
            v[usize::MAX / 2]
        })
        .await;
        let message = caught.unwrap_err();
        assert!(message.contains("index out of bounds"), "{message}");
        let formatted = catch_panic(async { panic!("bad {}", 42) }).await;
        assert_eq!(formatted, Err::<(), _>("bad 42".to_string()));
    }

    #[test]
    fn deadlines_saturate_instead_of_overflowing() {
        let now = std::time::Instant::now();
        assert_eq!(
            deadline(now, Duration::from_secs(2)),
            now + Duration::from_secs(2)
        );
        let far = deadline(now, Duration::from_secs(u64::MAX));
        assert!(far > now + Duration::from_secs(365 * 86_400));
        let now = tokio::time::Instant::now();
        assert!(tokio_deadline(now, Duration::MAX) > now + Duration::from_secs(86_400));
    }
}
