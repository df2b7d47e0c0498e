//! One clock for the whole run: a monotonic start instant plus its wall-clock anchor.
//!
//! Load samples, timeline lines and (later) cluster events are all expressed on this clock, so
//! joining them is arithmetic rather than guesswork, and timelines written by several load-generator
//! pods can be merged by wall clock.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy)]
pub struct RunClock {
    start: Instant,
    start_unix_micros: u64,
}

impl RunClock {
    pub fn start_now() -> Self {
        RunClock {
            start: Instant::now(),
            start_unix_micros: unix_micros_now(),
        }
    }

    /// A clock whose zero is the wall-clock instant `unix_micros`, past or future: several
    /// processes given the same instant share one time zero (as far as their clocks agree).
    pub fn at_unix_micros(unix_micros: u64) -> Self {
        let (now, wall) = (Instant::now(), unix_micros_now());
        let start = if unix_micros >= wall {
            now + Duration::from_micros(unix_micros - wall)
        } else {
            now.checked_sub(Duration::from_micros(wall - unix_micros))
                .unwrap_or(now)
        };
        RunClock {
            start,
            start_unix_micros: unix_micros,
        }
    }

    pub fn start_instant(&self) -> Instant {
        self.start
    }

    pub fn start_unix_micros(&self) -> u64 {
        self.start_unix_micros
    }

    /// Time since the run started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Wall-clock time (µs since the Unix epoch) of a monotonic instant, derived from the anchor so
    /// that a wall-clock step during the run (NTP) does not distort measured intervals.
    pub fn unix_micros_at(&self, at: Instant) -> u64 {
        let offset = at.saturating_duration_since(self.start).as_micros() as u64;
        self.start_unix_micros + offset
    }
}

pub fn unix_micros_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// RFC 3339 rendering (UTC, millisecond precision) of a Unix time in µs, without a date crate:
/// civil-from-days is a few lines (Howard Hinnant's algorithm) and keeps the dependency list short.
pub fn rfc3339_from_unix_micros(micros: u64) -> String {
    let secs = (micros / 1_000_000) as i64;
    let millis = (micros / 1000) % 1000;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_set_to_a_wall_instant_counts_from_it() {
        let wall = unix_micros_now();
        let future = RunClock::at_unix_micros(wall + 2_000_000);
        let until = future
            .start_instant()
            .saturating_duration_since(Instant::now());
        assert!(until > Duration::from_millis(1500) && until <= Duration::from_secs(2));
        assert_eq!(future.elapsed(), Duration::ZERO, "not started yet");
        let past = RunClock::at_unix_micros(wall - 3_000_000);
        assert!(past.elapsed() >= Duration::from_secs(3));
        assert_eq!(past.start_unix_micros(), wall - 3_000_000);
    }

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339_from_unix_micros(0), "1970-01-01T00:00:00.000Z");
        // 2024-02-29T12:34:56.789Z, a leap day.
        assert_eq!(
            rfc3339_from_unix_micros(1_709_210_096_789_000),
            "2024-02-29T12:34:56.789Z"
        );
    }

    #[test]
    fn wall_clock_follows_monotonic_offsets() {
        let clock = RunClock::start_now();
        let later = clock.start_instant() + Duration::from_millis(1500);
        assert_eq!(
            clock.unix_micros_at(later) - clock.start_unix_micros(),
            1_500_000
        );
    }
}
