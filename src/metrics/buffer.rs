//! A playback-buffer model: turns media arrivals into what a viewer's player would do (start after
//! a startup buffer, stall when the buffer runs dry, resume once it refills).
//!
//! Pure: callers pass arrival times, so the model is tested without clocks.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct PlaybackBuffer {
    /// Media needed before playback starts, and again after a stall.
    startup: Duration,
    /// Media received so far (sum of frame/segment durations since the first keyframe).
    received: Duration,
    state: State,
    stalls: u64,
    stall_time: Duration,
    play_time: Duration,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Not yet started: waiting for `startup` of media.
    Buffering { since: Option<Instant> },
    /// Playing: media position `position` was reached at wall time `at`.
    Playing { at: Instant, position: Duration },
    /// Stalled since `since` at media position `position`, waiting to refill.
    Stalled { since: Instant, position: Duration },
}

/// What changed on an update, for the caller's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    None,
    Started,
    StallBegan,
    StallEnded { lasted: Duration },
}

impl PlaybackBuffer {
    pub fn new(startup: Duration) -> Self {
        PlaybackBuffer {
            startup,
            received: Duration::ZERO,
            state: State::Buffering { since: None },
            stalls: 0,
            stall_time: Duration::ZERO,
            play_time: Duration::ZERO,
        }
    }

    /// Media of `duration` arrived at `now`. Returns the transitions it caused, oldest first (a
    /// late arrival can both end a stall that began in the gap and start nothing else).
    pub fn on_media(&mut self, now: Instant, duration: Duration) -> Vec<Transition> {
        let mut out = Vec::new();
        // First account for the time that passed: playback may have run dry before this arrival.
        if let Some(t) = self.advance(now) {
            out.push(t);
        }
        self.received += duration;
        match self.state {
            State::Buffering { since } => {
                let since = since.unwrap_or(now);
                self.state = State::Buffering { since: Some(since) };
                if self.received >= self.startup {
                    self.state = State::Playing {
                        at: now,
                        position: Duration::ZERO,
                    };
                    out.push(Transition::Started);
                }
            }
            State::Stalled { since, position } => {
                if self.received.saturating_sub(position) >= self.startup {
                    let lasted = now.saturating_duration_since(since);
                    self.stall_time += lasted;
                    self.state = State::Playing { at: now, position };
                    out.push(Transition::StallEnded { lasted });
                }
            }
            State::Playing { .. } => {}
        }
        out
    }

    /// Moves playback forward to `now`; reports a stall if the buffer ran dry on the way.
    pub fn advance(&mut self, now: Instant) -> Option<Transition> {
        if let State::Playing { at, position } = self.state {
            let elapsed = now.saturating_duration_since(at);
            let buffered = self.received.saturating_sub(position);
            if elapsed > buffered {
                // The buffer emptied `buffered` after `at`: the stall began then, not now.
                let since = at + buffered;
                self.play_time += buffered;
                self.stalls += 1;
                self.state = State::Stalled {
                    since,
                    position: self.received,
                };
                return Some(Transition::StallBegan);
            }
            self.play_time += elapsed;
            self.state = State::Playing {
                at: now,
                position: position + elapsed,
            };
        }
        None
    }

    /// Closes the session at `now`, counting an open stall's time so far.
    pub fn finish(&mut self, now: Instant) {
        self.advance(now);
        if let State::Stalled { since, position } = self.state {
            self.stall_time += now.saturating_duration_since(since);
            self.state = State::Stalled {
                since: now,
                position,
            };
        }
    }

    pub fn has_started(&self) -> bool {
        !matches!(self.state, State::Buffering { .. })
    }

    pub fn is_stalled(&self) -> bool {
        matches!(self.state, State::Stalled { .. })
    }

    pub fn stalls(&self) -> u64 {
        self.stalls
    }

    pub fn stall_time(&self) -> Duration {
        self.stall_time
    }

    pub fn play_time(&self) -> Duration {
        self.play_time
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: Duration = Duration::from_millis(40);

    #[test]
    fn steady_stream_starts_once_and_never_stalls() {
        let t0 = Instant::now();
        let mut b = PlaybackBuffer::new(Duration::from_millis(200));
        let mut started = 0;
        for i in 0..100u32 {
            for t in b.on_media(t0 + FRAME * i, FRAME) {
                assert_ne!(t, Transition::StallBegan);
                if t == Transition::Started {
                    started += 1;
                }
            }
        }
        assert_eq!(started, 1);
        b.finish(t0 + FRAME * 100);
        assert_eq!(b.stalls(), 0);
        assert_eq!(b.stall_time(), Duration::ZERO);
        // Playback started at frame 4 (200 ms buffered) and ran to the end.
        assert_eq!(b.play_time(), FRAME * 96);
    }

    #[test]
    fn a_gap_longer_than_the_buffer_is_one_stall_timed_from_when_it_ran_dry() {
        let t0 = Instant::now();
        let mut b = PlaybackBuffer::new(Duration::from_millis(200));
        for i in 0..10u32 {
            b.on_media(t0 + FRAME * i, FRAME);
        }
        // Playback started at t0+160ms (5th frame, 200 ms buffered); by the last frame at
        // t0+360ms 400 ms were received, so the buffer runs dry at t0+560ms.
        let resume_at = t0 + Duration::from_millis(2400);
        let mut transitions = Vec::new();
        for i in 0..5u32 {
            transitions.extend(b.on_media(resume_at + FRAME * i, FRAME));
        }
        assert_eq!(transitions[0], Transition::StallBegan);
        let Some(Transition::StallEnded { lasted }) = transitions.last().copied() else {
            panic!("{transitions:?}")
        };
        // Ran dry at t0+560ms, refilled 200 ms of media at the 5th new frame (+160 ms).
        assert_eq!(lasted, Duration::from_millis(2400 + 160 - 560));
        assert_eq!(b.stalls(), 1);
    }

    #[test]
    fn an_open_stall_counts_until_finish() {
        let t0 = Instant::now();
        let mut b = PlaybackBuffer::new(FRAME);
        b.on_media(t0, FRAME);
        b.finish(t0 + Duration::from_secs(1));
        assert!(b.is_stalled());
        assert_eq!(b.stalls(), 1);
        assert_eq!(b.stall_time(), Duration::from_millis(960));
    }

    #[test]
    fn never_started_is_not_a_stall() {
        let mut b = PlaybackBuffer::new(Duration::from_secs(5));
        let t0 = Instant::now();
        b.on_media(t0, FRAME);
        b.finish(t0 + Duration::from_secs(10));
        assert!(!b.has_started());
        assert_eq!(b.stalls(), 0);
    }
}
