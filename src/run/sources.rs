//! Where this process's windows come from: its own client groups' live metrics and its own
//! health samples, taken once a second for the [`super::collector::Collector`].

use super::collector::{GroupWindow, LoaderSample, Window};
use crate::metrics::loader::{CpuSampler, LagProbe, ProcessSampler, rss_bytes};
use crate::metrics::{GroupMetrics, PlayerStats, PublisherStats};
use std::sync::Arc;
use std::time::Duration;

/// A window shorter than this gives a CPU share that is noise (the run's last, partial window):
/// it is neither shown nor judged.
const MIN_CPU_WINDOW: Duration = Duration::from_millis(500);

pub struct LocalSource {
    pub publishers: Vec<Arc<GroupMetrics<PublisherStats>>>,
    pub players: Vec<Arc<GroupMetrics<PlayerStats>>>,
    pub cpu: CpuSampler,
    pub lag: LagProbe,
    pub servers: ProcessSampler,
}

fn take<S: Default>(m: &GroupMetrics<S>) -> GroupWindow<S> {
    GroupWindow {
        active: m.active(),
        stats: m.take_window(),
    }
}

impl LocalSource {
    /// Takes every group's window ending `at` (on the run clock), `length` long.
    pub fn take(&mut self, at: Duration, length: Duration) -> Window {
        let publishers = self.publishers.iter().map(|m| take(m)).collect();
        let players = self.players.iter().map(|m| take(m)).collect();
        let cpu_percent = self.cpu.sample().filter(|_| length >= MIN_CPU_WINDOW);
        let (server_cpu_percent, server_rss_mib) = self.servers.sample();
        Window {
            at,
            length,
            publishers,
            players,
            loader: LoaderSample {
                cpu_percent,
                lag: self.lag.take_window(),
                rss_mib: rss_bytes(std::process::id()).map(|b| b as f64 / 1_048_576.0),
                server_cpu_percent,
                server_rss_mib,
            },
            ..Window::default()
        }
    }
}
