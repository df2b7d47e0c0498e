//! Joins the per-second windows of several workers (or several hand-run load generators, for
//! `xiuload merge`) into one window per second, for the [`super::collector::Collector`]. Pure.
//!
//! Workers tick on one clock, so their `n`-th windows cover the same second. A worker whose tick
//! came late skips a number: its next window covers both seconds, so a worker that has sent
//! window `n + 1` has nothing more for `n`. A second is merged once every worker that is still
//! running has sent it (or a later one), or once the coordinator stops waiting for it (a worker
//! lost, or cut off longer than the caller holds windows back): then the window names the
//! workers whose share is missing. A window that arrives after its second was merged is folded
//! into the next merged second, so totals stay exact; only its second is off.

use super::collector::{GroupWindow, Window, WorkerSample, max_opt};
use crate::metrics::{PlayerStats, PublisherStats};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A worker's window as it travels: its number in the worker's sequence (1 = the window ending
/// at the first second) and whether it is the worker's last.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WindowRecord {
    pub seq: u64,
    #[serde(default)]
    pub last: bool,
    pub window: Window,
}

/// The number of the window ending `at_s` seconds into the run: ticks are one second apart, so
/// the nearest whole second. A last window (the run's short tail) takes the next number.
pub fn window_seq(at_s: f64, previous: u64, last: bool) -> u64 {
    let nearest = at_s.round().max(1.0) as u64;
    if last || nearest <= previous {
        nearest.max(previous + 1)
    } else {
        nearest
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum WorkerState {
    #[default]
    Running,
    /// Sent its last window.
    Finished,
    /// Gone: nothing more will come.
    Lost,
}

#[derive(Debug)]
pub struct Assembler {
    /// The next second to merge.
    next_seq: u64,
    /// Seconds not merged yet, each already folded as far as its workers have sent it: memory
    /// grows with the seconds held back, not with the number of workers.
    pending: BTreeMap<u64, Partial>,
    /// Highest window number each worker has sent.
    delivered: Vec<u64>,
    state: Vec<WorkerState>,
    /// Windows that came after their second was merged (folded into a later second).
    pub late_windows: u64,
}

impl Assembler {
    pub fn new(workers: u32) -> Assembler {
        Assembler {
            next_seq: 1,
            pending: BTreeMap::new(),
            delivered: vec![0; workers as usize],
            state: vec![WorkerState::Running; workers as usize],
            late_windows: 0,
        }
    }

    /// Takes worker `worker`'s window. Repeats (a window asked for twice) are ignored.
    pub fn offer(&mut self, worker: u32, record: WindowRecord) {
        let w = worker as usize;
        if w >= self.delivered.len() || record.seq <= self.delivered[w] {
            return;
        }
        self.delivered[w] = record.seq;
        if record.last {
            self.state[w] = WorkerState::Finished;
        }
        let seq = if record.seq < self.next_seq {
            self.late_windows += 1;
            self.next_seq
        } else {
            record.seq
        };
        self.pending
            .entry(seq)
            .or_default()
            .add(worker, record.window);
    }

    /// Nothing more will come from `worker`.
    pub fn mark_lost(&mut self, worker: u32) {
        if let Some(s) = self.state.get_mut(worker as usize)
            && *s == WorkerState::Running
        {
            *s = WorkerState::Lost;
        }
    }

    pub fn is_lost(&self, worker: u32) -> bool {
        self.state.get(worker as usize) == Some(&WorkerState::Lost)
    }

    /// Every worker finished or lost, and every window merged.
    pub fn is_done(&self) -> bool {
        self.pending.is_empty() && self.state.iter().all(|s| *s != WorkerState::Running)
    }

    /// Workers still expected to send windows.
    pub fn running(&self) -> Vec<u32> {
        (0..self.state.len() as u32)
            .filter(|w| self.state[*w as usize] == WorkerState::Running)
            .collect()
    }

    /// The highest window number any worker has sent.
    pub fn newest(&self) -> u64 {
        self.delivered.iter().copied().max().unwrap_or(0)
    }

    /// The merged windows that are complete, in order; seconds up to `give_up_through` are merged
    /// even when a running worker has not sent them (it is named missing).
    pub fn ready(&mut self, give_up_through: u64) -> Vec<Window> {
        let mut out = Vec::new();
        while let Some(&newest) = self.pending.keys().next_back() {
            let seq = self.next_seq;
            if seq > newest {
                break;
            }
            let complete = (0..self.state.len())
                .all(|w| self.state[w] != WorkerState::Running || self.delivered[w] >= seq);
            if !complete && seq > give_up_through {
                break;
            }
            let partial = self.pending.remove(&seq).unwrap_or_default();
            let missing: Vec<u32> = (0..self.state.len() as u32)
                .filter(|w| {
                    let i = *w as usize;
                    !partial.active.contains_key(w)
                        && self.delivered[i] <= seq
                        && self.state[i] != WorkerState::Finished
                })
                .collect();
            self.next_seq += 1;
            if partial.active.is_empty() && missing.is_empty() {
                // Every worker skipped this second (late ticks everywhere): nothing to show.
                continue;
            }
            out.push(partial.finish(missing));
        }
        out
    }
}

/// One second as far as its workers have sent it.
#[derive(Debug, Default)]
struct Partial {
    merged: Window,
    /// Each contributing worker's active clients per group (publishers, players) at the end of
    /// its window: a worker whose late window is folded in counts once, with its latest figures.
    active: BTreeMap<u32, (Vec<u64>, Vec<u64>)>,
}

impl Partial {
    fn add(&mut self, worker: u32, w: Window) {
        let m = &mut self.merged;
        m.at = m.at.max(w.at);
        m.length = m.length.max(w.length);
        add_groups(&mut m.publishers, &w.publishers, PublisherStats::merge);
        add_groups(&mut m.players, &w.players, PlayerStats::merge);
        let l = &mut m.loader;
        l.cpu_percent = max_opt(l.cpu_percent, w.loader.cpu_percent);
        l.rss_mib = max_opt(l.rss_mib, w.loader.rss_mib);
        l.lag.merge(&w.loader.lag);
        match m.workers.iter_mut().find(|s| s.worker == worker) {
            Some(sample) => {
                sample.loader.lag.merge(&w.loader.lag);
                sample.loader.cpu_percent = w.loader.cpu_percent;
                sample.loader.rss_mib = w.loader.rss_mib;
            }
            None => m.workers.push(WorkerSample {
                worker,
                loader: w.loader,
            }),
        }
        self.active.insert(
            worker,
            (
                w.publishers.iter().map(|g| g.active).collect(),
                w.players.iter().map(|g| g.active).collect(),
            ),
        );
    }

    fn finish(mut self, missing_workers: Vec<u32>) -> Window {
        for (publishers, players) in self.active.values() {
            for (g, a) in self.merged.publishers.iter_mut().zip(publishers) {
                g.active += a;
            }
            for (g, a) in self.merged.players.iter_mut().zip(players) {
                g.active += a;
            }
        }
        self.merged.workers.sort_by_key(|s| s.worker);
        self.merged.missing_workers = missing_workers;
        self.merged
    }
}

/// The workers' windows of one second as one: counts and histograms add, active clients add,
/// the loader's health is the hottest worker's (every worker's is kept beside it).
pub fn merge(parts: &BTreeMap<u32, Window>, missing_workers: Vec<u32>) -> Window {
    let mut partial = Partial::default();
    for (worker, w) in parts {
        partial.add(*worker, w.clone());
    }
    partial.finish(missing_workers)
}

/// Adds `from`'s stats into `into`, group by group (active counts are summed at the end).
fn add_groups<S: Default + Clone>(
    into: &mut Vec<GroupWindow<S>>,
    from: &[GroupWindow<S>],
    merge: fn(&mut S, &S),
) {
    if into.len() < from.len() {
        into.resize(from.len(), GroupWindow::default());
    }
    for (a, b) in into.iter_mut().zip(from) {
        merge(&mut a.stats, &b.stats);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::stats::ErrorKind;
    use rand::{Rng, SeedableRng, rngs::StdRng};
    use std::time::Duration;

    fn window(at_s: f64, frames: u64, active: u64) -> Window {
        let mut stats = PlayerStats {
            frames,
            sessions: 1,
            ..Default::default()
        };
        stats.latency.record_micros(1000 * frames);
        Window {
            at: Duration::from_secs_f64(at_s),
            length: Duration::from_secs(1),
            players: vec![GroupWindow { active, stats }],
            publishers: vec![GroupWindow {
                active: 1,
                stats: PublisherStats::default(),
            }],
            ..Default::default()
        }
    }

    fn record(seq: u64, last: bool, w: Window) -> WindowRecord {
        WindowRecord {
            seq,
            last,
            window: w,
        }
    }

    #[test]
    fn window_numbers_follow_the_clock_and_never_repeat() {
        assert_eq!(window_seq(1.003, 0, false), 1);
        assert_eq!(window_seq(2.0, 1, false), 2);
        // A tick 1.6 s late skips a number: its window covers two seconds.
        assert_eq!(window_seq(4.6, 2, false), 5);
        // The short last window after the plan's end at 30 s.
        assert_eq!(window_seq(30.3, 30, true), 31);
        assert_eq!(window_seq(0.2, 0, true), 1);
    }

    #[test]
    fn a_second_is_merged_when_every_worker_sent_it() {
        let mut a = Assembler::new(3);
        a.offer(0, record(1, false, window(1.0, 10, 5)));
        a.offer(1, record(1, false, window(1.01, 20, 6)));
        assert!(a.ready(0).is_empty(), "worker 2 has not sent second 1");
        a.offer(2, record(1, false, window(1.02, 30, 7)));
        let merged = a.ready(0);
        assert_eq!(merged.len(), 1);
        let w = &merged[0];
        assert_eq!(w.players[0].active, 18);
        assert_eq!(w.players[0].stats.frames, 60);
        assert_eq!(w.players[0].stats.sessions, 3);
        assert_eq!(w.publishers[0].active, 3);
        assert_eq!(w.at, Duration::from_secs_f64(1.02));
        assert_eq!(w.workers.len(), 3);
        assert!(w.missing_workers.is_empty());
        // A repeat of a window already taken changes nothing.
        a.offer(0, record(1, false, window(1.0, 10, 5)));
        assert!(a.ready(10).is_empty());
    }

    #[test]
    fn a_lost_worker_is_named_in_every_second_it_misses() {
        let mut a = Assembler::new(2);
        for s in 1..=3 {
            a.offer(0, record(s, false, window(s as f64, 1, 1)));
        }
        a.offer(1, record(1, false, window(1.0, 1, 1)));
        assert_eq!(a.ready(0).len(), 1);
        a.mark_lost(1);
        let merged = a.ready(0);
        assert_eq!(merged.len(), 2);
        assert!(merged.iter().all(|w| w.missing_workers == [1]));
        a.offer(0, record(4, true, window(4.2, 1, 0)));
        assert_eq!(a.ready(0).len(), 1);
        assert!(a.is_done());
    }

    #[test]
    fn an_outage_is_caught_up_exactly_or_marked() {
        let mut a = Assembler::new(2);
        // Worker 1 is cut off for seconds 1..=5; the caller waits 3 seconds for it.
        for s in 1..=5 {
            a.offer(0, record(s, false, window(s as f64, 10, 1)));
        }
        let merged = a.ready(2);
        assert_eq!(merged.len(), 2);
        assert!(merged.iter().all(|w| w.missing_workers == [1]));
        // It comes back with everything it buffered: seconds 1 and 2 are folded into second 3.
        for s in 1..=5 {
            a.offer(1, record(s, false, window(s as f64, 100, 2)));
        }
        let rest = a.ready(2);
        assert_eq!(rest.len(), 3);
        assert!(rest.iter().all(|w| w.missing_workers.is_empty()));
        let frames: u64 = merged
            .iter()
            .chain(&rest)
            .map(|w| w.players[0].stats.frames)
            .sum();
        assert_eq!(frames, 5 * 10 + 5 * 100, "nothing lost, nothing twice");
        assert_eq!(rest[0].players[0].stats.frames, 10 + 300);
        assert_eq!(a.late_windows, 2);
    }

    #[test]
    fn a_late_tick_leaves_no_hole() {
        let mut a = Assembler::new(2);
        a.offer(0, record(1, false, window(1.0, 1, 1)));
        a.offer(0, record(2, false, window(2.0, 1, 1)));
        a.offer(1, record(2, false, window(2.1, 2, 1)));
        let merged = a.ready(0);
        assert_eq!(merged.len(), 2);
        assert!(merged.iter().all(|w| w.missing_workers.is_empty()));
        assert_eq!(merged[1].players[0].stats.frames, 3);
    }

    #[test]
    fn finished_workers_are_not_missing() {
        let mut a = Assembler::new(2);
        a.offer(0, record(1, true, window(0.5, 1, 0)));
        a.offer(1, record(1, false, window(1.0, 1, 1)));
        a.offer(1, record(2, true, window(1.4, 1, 0)));
        let merged = a.ready(0);
        assert_eq!(merged.len(), 2);
        assert!(merged.iter().all(|w| w.missing_workers.is_empty()));
        assert!(a.is_done());
    }

    /// Merged percentiles equal those of one histogram fed every sample, for any split.
    #[test]
    fn merged_histograms_equal_one_histogram_of_every_sample() {
        let mut rng = StdRng::seed_from_u64(42);
        for round in 0..20 {
            let workers = rng.random_range(1..=8u32);
            let mut whole = PlayerStats::default();
            let mut parts = BTreeMap::new();
            for worker in 0..workers {
                let mut w = window(1.0, 0, 0);
                let stats = &mut w.players[0].stats;
                stats.latency = Default::default();
                for _ in 0..rng.random_range(0..2000) {
                    // Heavy-tailed, as latencies are.
                    let micros = (rng.random::<f64>().powi(4) * 5e6) as u64 + 1;
                    stats.latency.record_micros(micros);
                    whole.latency.record_micros(micros);
                    stats.errors.add(ErrorKind::Eof);
                    whole.errors.add(ErrorKind::Eof);
                }
                parts.insert(worker, w);
            }
            let merged = merge(&parts, Vec::new());
            let m = &merged.players[0].stats;
            for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
                assert_eq!(
                    m.latency.quantile_ms(q),
                    whole.latency.quantile_ms(q),
                    "round {round}, q {q}"
                );
            }
            assert_eq!(m.errors, whole.errors);
        }
    }

    #[test]
    fn records_survive_the_wire() {
        let r = record(7, true, window(7.25, 3, 2));
        let text = serde_json::to_string(&r).unwrap();
        let back: WindowRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
    }
}
