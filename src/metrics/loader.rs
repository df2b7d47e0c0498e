//! The load generator's own health: CPU use and event-loop lag. A saturated loader measures
//! itself, not the server, so the report must say when that happened.

use super::histogram::LatencyHistogram;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Reads this process's CPU time from `/proc/self/stat` (Linux). Returns `None` elsewhere.
pub fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_cpu_ticks(&stat).map(|ticks| {
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Duration::from_micros(ticks * 1_000_000 / hz)
    })
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line. The command name (field 2) may
/// contain spaces and parentheses, so fields are counted after its closing parenthesis.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    parse_user_system_ticks(stat).map(|(user, system)| user + system)
}

/// utime and stime apart: user space (our code) and the kernel (system calls, the network stack).
pub fn parse_user_system_ticks(stat: &str) -> Option<(u64, u64)> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // After the comm, field 3 (state) is index 0, so utime (14) is index 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime, stime))
}

/// Resident set size of a process in bytes, from `/proc/<pid>/status`.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU percentage of one core between successive calls.
pub struct CpuSampler {
    last: Option<(Instant, Duration)>,
}

impl Default for CpuSampler {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuSampler {
    pub fn new() -> Self {
        CpuSampler {
            last: process_cpu_time().map(|c| (Instant::now(), c)),
        }
    }

    pub fn sample(&mut self) -> Option<f64> {
        let now = Instant::now();
        let cpu = process_cpu_time()?;
        let (then, before) = self.last.replace((now, cpu))?;
        let wall = now.duration_since(then).as_secs_f64();
        (wall > 0.0).then(|| cpu.saturating_sub(before).as_secs_f64() / wall * 100.0)
    }
}

/// The processes a [`ProcessSampler`] follows, kept current by whoever starts them: a server
/// restarted during the run (a fault, a failed liveness probe) is followed under its new pid.
#[derive(Debug, Clone, Default)]
pub struct PidSet(Arc<Mutex<BTreeSet<u32>>>);

impl PidSet {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<u32>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, pid: u32) {
        self.lock().insert(pid);
    }

    pub fn remove(&self, pid: u32) {
        self.lock().remove(&pid);
    }

    pub fn snapshot(&self) -> Vec<u32> {
        self.lock().iter().copied().collect()
    }
}

/// CPU (% of one core) and RSS of other processes, e.g. the local xiu servers.
pub struct ProcessSampler {
    pids: PidSet,
    /// When the last sample was taken and each followed process's CPU ticks then.
    last: (Instant, BTreeMap<u32, u64>),
    /// Some process was followed at some point (a worker with no servers reports nothing).
    followed_any: bool,
}

impl ProcessSampler {
    pub fn new(pids: PidSet) -> Self {
        let ticks = cpu_ticks(&pids.snapshot());
        ProcessSampler {
            followed_any: !ticks.is_empty(),
            pids,
            last: (Instant::now(), ticks),
        }
    }

    /// (CPU % of one core since the last call, total RSS MiB); nothing while no process was ever
    /// followed.
    pub fn sample(&mut self) -> (Option<f64>, Option<f64>) {
        let pids = self.pids.snapshot();
        self.followed_any |= !pids.is_empty();
        if !self.followed_any {
            return (None, None);
        }
        let now = Instant::now();
        let ticks = cpu_ticks(&pids);
        let used = ticks_since(&self.last.1, &ticks);
        let (then, _) = std::mem::replace(&mut self.last, (now, ticks));
        let wall = now.duration_since(then).as_secs_f64();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let percent = (wall > 0.0).then(|| (used as f64 / hz / wall * 1000.0).round() / 10.0);
        let rss: u64 = pids.iter().filter_map(|p| rss_bytes(*p)).sum();
        (
            percent,
            Some((rss as f64 / 1_048_576.0 * 10.0).round() / 10.0),
        )
    }
}

/// Each live process's CPU ticks (utime + stime); a process that is gone is left out.
fn cpu_ticks(pids: &[u32]) -> BTreeMap<u32, u64> {
    pids.iter()
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((*pid, parse_cpu_ticks(&stat)?))
        })
        .collect()
}

/// CPU ticks used between two readings: a process new since the first (a restart) counts from
/// its start, one gone since is left out (its last moments are lost, not subtracted).
fn ticks_since(before: &BTreeMap<u32, u64>, now: &BTreeMap<u32, u64>) -> u64 {
    now.iter()
        .map(|(pid, t)| t.saturating_sub(before.get(pid).copied().unwrap_or(0)))
        .sum()
}

/// Measures how late a timer fires on the runtime: when tasks hog the event loop, every client's
/// timestamps are late too.
#[derive(Clone, Default)]
pub struct LagProbe {
    window: Arc<Mutex<LatencyHistogram>>,
}

impl LagProbe {
    pub const PERIOD: Duration = Duration::from_millis(50);

    /// Samples the runtime this is called on.
    pub fn spawn(&self, stop: tokio_util::sync::CancellationToken) -> tokio::task::JoinHandle<()> {
        self.spawn_on(&tokio::runtime::Handle::current(), stop)
    }

    /// Samples the runtime behind `handle`, into the same window as every other probe of this one.
    pub fn spawn_on(
        &self,
        handle: &tokio::runtime::Handle,
        stop: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let window = Arc::clone(&self.window);
        handle.spawn(async move {
            loop {
                let intended = tokio::time::Instant::now() + Self::PERIOD;
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep_until(intended) => {}
                }
                let lag = tokio::time::Instant::now().saturating_duration_since(intended);
                window
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .record_micros(lag.as_micros() as u64 + 1);
            }
        })
    }

    pub fn take_window(&self) -> LatencyHistogram {
        std::mem::take(&mut *self.window.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Per-second samples folded into the run's loader verdict.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LoaderHealth {
    pub cores: usize,
    pub cpu_percent_mean: f64,
    pub cpu_percent_max: f64,
    pub lag_ms_p99: Option<f64>,
    pub lag_ms_max: Option<f64>,
    pub saturated: bool,
    pub reasons: Vec<String>,
    /// A distributed run: each worker's own health (the run is saturated when any worker is).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<WorkerHealth>,
    #[serde(skip)]
    cpu_samples: Vec<f64>,
    #[serde(skip)]
    lag: LatencyHistogram,
}

/// One worker of a distributed run, as the report shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct WorkerHealth {
    pub index: u32,
    #[serde(flatten)]
    pub health: LoaderHealth,
    pub rss_mib_max: Option<f64>,
    /// Seconds of the run for which this worker's measurements never reached the coordinator.
    pub missing_windows: u64,
    pub first_missing_s: Option<f64>,
    /// The worker's measurements stopped at this second and never came back: it was lost, and
    /// its share of the load with it.
    pub lost_at_s: Option<f64>,
    /// The share of the plan's clients (at their peak) this worker ran, 0..=1.
    #[serde(default)]
    pub load_share: f64,
}

/// CPU above this share of all cores in a second counts as a saturated second.
const SATURATED_CPU_SHARE: f64 = 0.90;
/// Saturated seconds above this share of the run flag the run.
const SATURATED_SECONDS_SHARE: f64 = 0.10;
/// Event-loop lag p99 above this flags the run: timestamps would be off by as much.
const LAG_P99_LIMIT_MS: f64 = 50.0;

impl LoaderHealth {
    pub fn new(cores: usize) -> Self {
        LoaderHealth {
            cores: cores.max(1),
            ..Default::default()
        }
    }

    pub fn add_second(&mut self, cpu_percent: Option<f64>, lag: &LatencyHistogram) {
        if let Some(c) = cpu_percent {
            self.cpu_samples.push(c);
        }
        self.lag.merge(lag);
        self.conclude();
    }

    /// Recomputes the verdict; pure over the samples so far.
    fn conclude(&mut self) {
        let n = self.cpu_samples.len();
        self.cpu_percent_mean = if n == 0 {
            0.0
        } else {
            self.cpu_samples.iter().sum::<f64>() / n as f64
        };
        self.cpu_percent_max = self.cpu_samples.iter().cloned().fold(0.0, f64::max);
        self.lag_ms_p99 = self.lag.quantile_ms(0.99);
        self.lag_ms_max = self.lag.max_ms();
        self.reasons.clear();
        let limit = SATURATED_CPU_SHARE * 100.0 * self.cores as f64;
        let hot = self.cpu_samples.iter().filter(|c| **c >= limit).count();
        if n > 0 && hot as f64 / n as f64 > SATURATED_SECONDS_SHARE {
            self.reasons.push(format!(
                "CPU at or above {:.0}% of {} core(s) in {hot} of {n} seconds",
                SATURATED_CPU_SHARE * 100.0,
                self.cores
            ));
        }
        if let Some(p99) = self.lag_ms_p99
            && p99 > LAG_P99_LIMIT_MS
        {
            self.reasons.push(format!(
                    "event-loop lag p99 {p99:.1} ms exceeds {LAG_P99_LIMIT_MS} ms: client timestamps are late by as much"
                ));
        }
        self.saturated = !self.reasons.is_empty();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restarted_process_counts_from_its_start_and_a_gone_one_is_not_subtracted() {
        let before = BTreeMap::from([(10, 500), (11, 300)]);
        // 10 used 20 more ticks; 11 died; 12 (11's restart) used 7 since it started.
        let now = BTreeMap::from([(10, 520), (12, 7)]);
        assert_eq!(ticks_since(&before, &now), 27);
        assert_eq!(ticks_since(&now, &now), 0);
    }

    #[test]
    fn the_sampler_follows_pids_added_after_it_started() {
        let pids = PidSet::default();
        let mut sampler = ProcessSampler::new(pids.clone());
        assert_eq!(sampler.sample(), (None, None), "nothing followed yet");
        pids.insert(std::process::id());
        let (cpu, rss) = sampler.sample();
        assert!(cpu.is_some());
        assert!(rss.is_some_and(|mib| mib > 0.0), "{rss:?}");
        pids.remove(std::process::id());
        assert_eq!(
            sampler.sample().1,
            Some(0.0),
            "followed before: zero, not unknown"
        );
    }

    #[test]
    fn parses_proc_stat_with_spaces_in_comm() {
        let line = "1234 (tokio rt (x)) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 8 0";
        assert_eq!(parse_cpu_ticks(line), Some(300));
        assert_eq!(parse_user_system_ticks(line), Some((250, 50)));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn own_cpu_time_is_readable_here() {
        assert!(process_cpu_time().is_some());
        assert!(rss_bytes(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn saturation_needs_sustained_cpu_or_lag() {
        let quiet = LatencyHistogram::new();
        let mut h = LoaderHealth::new(2);
        for _ in 0..20 {
            h.add_second(Some(50.0), &quiet);
        }
        assert!(!h.saturated, "{:?}", h.reasons);
        for _ in 0..5 {
            h.add_second(Some(195.0), &quiet);
        }
        assert!(h.saturated);
        assert!(h.reasons[0].contains("5 of 25 seconds"), "{:?}", h.reasons);

        let mut laggy = LatencyHistogram::new();
        laggy.record_micros(200_000);
        let mut h = LoaderHealth::new(2);
        h.add_second(Some(10.0), &laggy);
        assert!(h.saturated && h.reasons[0].contains("lag"));
    }
}
