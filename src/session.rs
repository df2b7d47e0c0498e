//! How a client session ended (the slot loop decides on reconnects from it), and the guards every
//! session runs under: panics caught, deadlines that cannot overflow, and the deadline policy of
//! a viewer session ([`SessionDeadlines`]) that every player shares.

use crate::metrics::ErrorKind;
use futures::FutureExt;
use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

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

/// A session panicked; `message` is what the panic was raised with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Panicked {
    pub message: String,
}

/// Runs `session` and turns a panic inside it into `Err(Panicked)`, so a bug (ours or a
/// library's) on hostile input ends one session instead of the client slot. `AssertUnwindSafe` is
/// sound here: the session's state is dropped with it, and what it shares (the group's metrics)
/// is behind mutexes that tolerate poisoning.
pub async fn catch_panic<F: Future>(session: F) -> Result<F::Output, Panicked> {
    AssertUnwindSafe(session)
        .catch_unwind()
        .await
        .map_err(|payload| Panicked {
            message: panic_message(payload.as_ref()),
        })
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
pub fn deadline(from: Instant, after: Duration) -> Instant {
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

/// How long a viewer session may wait for each step, from the scenario's player group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadlineBudget {
    /// Connect (+ TLS) up to the server's answer (HTTP response head, RTMP `Play.Start`).
    pub connect: Duration,
    /// From the session's start to the first keyframe.
    pub first_frame: Duration,
    /// Longest silence once media flows.
    pub read: Duration,
    /// Planned session length (viewer churn); `None` watches until cancelled.
    pub session_length: Option<Duration>,
}

/// Where a viewer session is, as far as its deadlines care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Waiting for the server's answer.
    Setup,
    /// Answered, waiting for the first keyframe.
    Answered,
    /// Media flows; `last_data` is when bytes last came.
    Media { last_data: Instant },
}

impl Progress {
    /// Where a session is that has (or has not) had its answer and its first keyframe, with data
    /// last at `last_data`.
    pub fn of(answered: bool, has_media: bool, last_data: Instant) -> Progress {
        match (answered, has_media) {
            (_, true) => Progress::Media { last_data },
            (true, false) => Progress::Answered,
            (false, false) => Progress::Setup,
        }
    }
}

/// What passing a deadline means for a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Its planned length is over: a normal end.
    Completed,
    /// Media flowed, then nothing came for the read timeout.
    ReadTimeout,
    /// The server answered but no keyframe came by the first-frame deadline.
    NoMedia,
    /// The server did not answer in time.
    Timeout,
}

impl Expiry {
    pub fn session_end(self) -> SessionEnd {
        match self {
            Expiry::Completed => SessionEnd::Completed,
            Expiry::ReadTimeout => SessionEnd::Failed(ErrorKind::ReadTimeout),
            Expiry::NoMedia => SessionEnd::Failed(ErrorKind::NoMedia),
            Expiry::Timeout => SessionEnd::Failed(ErrorKind::Timeout),
        }
    }
}

/// The deadline policy every viewer session runs under, whatever its protocol: the answer
/// deadline, the first-frame deadline, the read timeout once media flows, and the planned end.
/// Pure: the caller says where the session is and what time it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionDeadlines {
    answer_by: Instant,
    first_frame_by: Instant,
    ends_at: Option<Instant>,
    read_timeout: Duration,
}

impl SessionDeadlines {
    pub fn new(started: Instant, budget: &DeadlineBudget) -> Self {
        let first_frame_by = deadline(started, budget.first_frame);
        SessionDeadlines {
            // A server slower to answer than the first frame is due has failed either way.
            answer_by: first_frame_by.min(deadline(started, budget.connect)),
            first_frame_by,
            ends_at: budget.session_length.map(|len| deadline(started, len)),
            read_timeout: budget.read,
        }
    }

    /// By when the server must have answered.
    pub fn answer_by(&self) -> Instant {
        self.answer_by
    }

    /// By when the first keyframe must have come.
    pub fn first_frame_by(&self) -> Instant {
        self.first_frame_by
    }

    /// The next instant at which the session must look at its clock: the deadline of where it is,
    /// or its planned end if that comes first.
    pub fn due(&self, progress: Progress) -> Instant {
        let due = match progress {
            Progress::Setup => self.answer_by,
            Progress::Answered => self.first_frame_by,
            Progress::Media { last_data } => deadline(last_data, self.read_timeout),
        };
        self.ends_at.map_or(due, |end| end.min(due))
    }

    /// What reaching `now` means: `None` while no deadline has passed (data came since the timer
    /// was armed, say), otherwise how the session ends. The planned end wins over a failure.
    pub fn check(&self, now: Instant, progress: Progress) -> Option<Expiry> {
        if self.ends_at.is_some_and(|end| now >= end) {
            return Some(Expiry::Completed);
        }
        match progress {
            Progress::Setup if now >= self.answer_by => Some(Expiry::Timeout),
            Progress::Answered if now >= self.first_frame_by => Some(Expiry::NoMedia),
            Progress::Media { last_data } if now >= deadline(last_data, self.read_timeout) => {
                Some(Expiry::ReadTimeout)
            }
            _ => None,
        }
    }

    /// Whether the planned end has come (checked after each read, so a busy stream ends on time).
    pub fn ended(&self, now: Instant) -> bool {
        self.ends_at.is_some_and(|end| now >= end)
    }
}

/// How far later than armed a session's timer may be wanted before it is moved: re-arming a timer
/// on every read was a measurable share of a viewer's CPU, and a deadline met up to this late
/// changes no verdict (read timeouts are seconds).
pub const TIMER_SLACK: Duration = Duration::from_millis(500);

/// Whether a timer armed for `armed` must be moved to fire at `wanted`: always when it fired or
/// when `wanted` is earlier, only past [`TIMER_SLACK`] when later (firing early costs one check).
pub fn needs_rearm(armed: Instant, wanted: Instant, fired: bool) -> bool {
    fired || wanted < armed || wanted > deadline(armed, TIMER_SLACK)
}

/// One timer for a whole session, aimed at [`SessionDeadlines::due`] before each wait and moved
/// only when [`needs_rearm`] says so.
pub struct SessionTimer {
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl SessionTimer {
    pub fn new(at: Instant) -> Self {
        SessionTimer {
            sleep: Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(at))),
        }
    }

    /// Aims the timer at `wanted`, within the slack.
    pub fn aim(&mut self, wanted: Instant) {
        let armed = self.sleep.deadline().into_std();
        if needs_rearm(armed, wanted, self.sleep.is_elapsed()) {
            self.sleep
                .as_mut()
                .reset(tokio::time::Instant::from_std(wanted));
        }
    }

    /// Completes when the timer fires (cancel-safe: for `select!`).
    pub async fn fired(&mut self) {
        self.sleep.as_mut().await
    }
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
        let panicked = caught.unwrap_err();
        assert!(
            panicked.message.contains("index out of bounds"),
            "{panicked}"
        );
        let formatted = catch_panic(async { panic!("bad {}", 42) }).await;
        assert_eq!(
            formatted,
            Err::<(), _>(Panicked {
                message: "bad 42".to_string()
            })
        );
        // What the slot counts and logs: the message as it was raised.
        assert_eq!(formatted.unwrap_err().to_string(), "bad 42");
    }

    const MS: Duration = Duration::from_millis(1);

    fn budget(session_length: Option<Duration>) -> DeadlineBudget {
        DeadlineBudget {
            connect: 2000 * MS,
            first_frame: 5000 * MS,
            read: 3000 * MS,
            session_length,
        }
    }

    #[test]
    fn each_phase_has_its_deadline_and_its_meaning() {
        let t0 = Instant::now();
        let d = SessionDeadlines::new(t0, &budget(None));
        // Setup: the connect budget.
        assert_eq!(d.due(Progress::Setup), t0 + 2000 * MS);
        assert_eq!(d.check(t0 + 1999 * MS, Progress::Setup), None);
        assert_eq!(
            d.check(t0 + 2000 * MS, Progress::Setup),
            Some(Expiry::Timeout)
        );
        // Answered: the first-frame deadline, counted from the start, not from the answer.
        assert_eq!(d.due(Progress::Answered), t0 + 5000 * MS);
        assert_eq!(d.check(t0 + 4999 * MS, Progress::Answered), None);
        assert_eq!(
            d.check(t0 + 5000 * MS, Progress::Answered),
            Some(Expiry::NoMedia)
        );
        // Media: the read timeout after the last data, however late in the session.
        let media = Progress::Media {
            last_data: t0 + 60_000 * MS,
        };
        assert_eq!(d.due(media), t0 + 63_000 * MS);
        assert_eq!(d.check(t0 + 62_999 * MS, media), None);
        assert_eq!(d.check(t0 + 63_000 * MS, media), Some(Expiry::ReadTimeout));
        assert!(!d.ended(t0 + 1_000_000 * MS));
    }

    #[test]
    fn the_answer_deadline_never_outlasts_the_first_frame_deadline() {
        let t0 = Instant::now();
        let slow_connect = DeadlineBudget {
            connect: 10_000 * MS,
            ..budget(None)
        };
        let d = SessionDeadlines::new(t0, &slow_connect);
        assert_eq!(d.answer_by(), t0 + 5000 * MS);
        assert_eq!(d.first_frame_by(), t0 + 5000 * MS);
        assert_eq!(
            d.check(t0 + 5000 * MS, Progress::Setup),
            Some(Expiry::Timeout)
        );
    }

    #[test]
    fn the_planned_end_comes_first_and_wins_over_a_failure() {
        let t0 = Instant::now();
        let d = SessionDeadlines::new(t0, &budget(Some(4000 * MS)));
        // Due at the end when it comes before the phase's own deadline.
        assert_eq!(d.due(Progress::Answered), t0 + 4000 * MS);
        assert_eq!(d.due(Progress::Setup), t0 + 2000 * MS);
        let media = Progress::Media {
            last_data: t0 + 3500 * MS,
        };
        assert_eq!(d.due(media), t0 + 4000 * MS);
        // At the end the session completed, even if another deadline passed too.
        let stale = Progress::Media { last_data: t0 };
        assert_eq!(d.check(t0 + 4000 * MS, stale), Some(Expiry::Completed));
        assert_eq!(d.check(t0 + 3000 * MS, stale), Some(Expiry::ReadTimeout));
        assert!(d.ended(t0 + 4000 * MS) && !d.ended(t0 + 3999 * MS));
        assert_eq!(Expiry::Completed.session_end(), SessionEnd::Completed);
        assert_eq!(
            Expiry::Timeout.session_end(),
            SessionEnd::Failed(ErrorKind::Timeout)
        );
    }

    #[test]
    fn budgets_no_clock_can_hold_do_not_overflow() {
        let t0 = Instant::now();
        let huge = DeadlineBudget {
            connect: Duration::MAX,
            first_frame: Duration::MAX,
            read: Duration::MAX,
            session_length: Some(Duration::MAX),
        };
        let d = SessionDeadlines::new(t0, &huge);
        let far = t0 + Duration::from_secs(365 * 86_400);
        assert!(d.due(Progress::Setup) > far);
        assert_eq!(d.check(far, Progress::Media { last_data: far }), None);
    }

    #[test]
    fn the_timer_moves_later_only_past_the_slack_and_earlier_always() {
        let t = Instant::now();
        assert!(!needs_rearm(t, t, false));
        assert!(!needs_rearm(t, t + TIMER_SLACK, false));
        assert!(needs_rearm(t, t + TIMER_SLACK + MS, false));
        assert!(needs_rearm(t, t - MS, false));
        // A timer that fired is re-armed wherever it is wanted.
        assert!(needs_rearm(t, t, true));
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_timer_fires_at_its_deadline_within_the_slack() {
        let t0 = tokio::time::Instant::now().into_std();
        let mut timer = SessionTimer::new(t0 + 1000 * MS);
        // Wanted a little later: left where it is, so it fires early (and the caller re-checks).
        timer.aim(t0 + 1200 * MS);
        timer.fired().await;
        assert_eq!(tokio::time::Instant::now().into_std(), t0 + 1000 * MS);
        // Fired: moved to wherever it is wanted next.
        timer.aim(t0 + 3000 * MS);
        // Wanted earlier: moved at once.
        timer.aim(t0 + 2000 * MS);
        timer.fired().await;
        assert_eq!(tokio::time::Instant::now().into_std(), t0 + 2000 * MS);
        // Wanted later than the slack allows: moved.
        timer.aim(t0 + 2100 * MS);
        timer.aim(t0 + 2100 * MS + TIMER_SLACK + MS);
        timer.fired().await;
        assert_eq!(
            tokio::time::Instant::now().into_std(),
            t0 + 2101 * MS + TIMER_SLACK
        );
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
