//! What a distributed run's coordinator costs per worker: `cargo bench --bench coordinator`
//! (or `-- 10 100 300` for other fleet sizes).
//!
//! Each simulated second, every fake worker's `/windows` reply (a realistic window: two viewer
//! groups of 1000 viewers at 25 fps, one publisher group, with latency, frame-gap, connect and
//! startup histograms filled as a real second fills them) is decoded from its JSON wire form,
//! handed to the assembler, merged, and folded into the collector: the coordinator's whole
//! per-second work except the HTTP round trips. Prints CPU time per worker per second, the wire
//! size per worker per second, and the coordinator's memory growth over the run.

use std::time::Duration;
use xiuload::clock::RunClock;
use xiuload::metrics::loader::{process_cpu_time, rss_bytes};
use xiuload::metrics::{PlayerStats, PublisherStats};
use xiuload::run::assembler::{Assembler, WindowRecord};
use xiuload::run::collector::{Collector, GroupWindow, LoaderSample, PlayerGroupInfo, Window};
use xiuload::run::worker::{Phase, WindowsReply};

const SECONDS: u64 = 60;

/// One worker's second: `viewers` viewers per group at 25 fps.
fn window(second: u64, worker: u32, viewers: u64) -> Window {
    let mut seed = u64::from(worker) * 7919 + second * 104_729 + 1;
    let mut next = move || {
        // xorshift: cheap, deterministic spread of values.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut players = Vec::new();
    for _ in 0..2 {
        let mut s = PlayerStats {
            sessions: viewers / 20,
            sessions_with_media: viewers / 20,
            frames: viewers * 25,
            keyframes: viewers,
            bytes: viewers * 250_000,
            play_micros: viewers * 1_000_000,
            ..Default::default()
        };
        for _ in 0..viewers * 25 {
            s.latency.record_micros(300 + next() % 20_000);
            s.frame_gap.record_micros(38_000 + next() % 4_000);
        }
        for _ in 0..viewers / 20 {
            s.connect.record_micros(200 + next() % 2_000);
            s.startup.record_micros(20_000 + next() % 400_000);
            s.ttfb.record_micros(500 + next() % 5_000);
        }
        players.push(GroupWindow {
            active: viewers,
            stats: s,
        });
    }
    let mut publisher = PublisherStats {
        sessions: 1,
        frames: 25,
        bytes: 250_000,
        ..Default::default()
    };
    for _ in 0..25 {
        publisher.lateness.record_micros(100 + next() % 3_000);
    }
    let mut lag = xiuload::metrics::LatencyHistogram::new();
    for _ in 0..20 {
        lag.record_micros(50 + next() % 500);
    }
    Window {
        at: Duration::from_secs(second),
        length: Duration::from_secs(1),
        publishers: vec![GroupWindow {
            active: 1,
            stats: publisher,
        }],
        players,
        loader: LoaderSample {
            cpu_percent: Some(80.0),
            lag,
            rss_mib: Some(120.0),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn main() {
    let sizes: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10, 100]
    } else {
        sizes
    };
    // The wire form of one worker's second, built once: every worker sends one like it.
    let replies: Vec<Vec<u8>> = (1..=SECONDS)
        .map(|s| {
            serde_json::to_vec(&WindowsReply {
                phase: Phase::Running,
                records: vec![WindowRecord {
                    seq: s,
                    last: s == SECONDS,
                    window: window(s, 0, 1000),
                }],
            })
            .unwrap()
        })
        .collect();
    let wire = replies.iter().map(Vec::len).sum::<usize>() / replies.len();
    println!(
        "coordinator merge cost, {SECONDS} s simulated, each worker 2×1000 viewers + 1 publisher per second"
    );
    println!(
        "{:>8} {:>18} {:>22} {:>16} {:>20}",
        "workers",
        "CPU ms/s (total)",
        "CPU µs/worker/second",
        "wire KiB/worker/s",
        "RSS growth MiB"
    );
    for workers in sizes {
        let groups = [
            PlayerGroupInfo {
                name: "flv".into(),
                protocol: xiuload::scenario::Protocol::Flv,
            },
            PlayerGroupInfo {
                name: "hls".into(),
                protocol: xiuload::scenario::Protocol::Hls,
            },
        ];
        let mut collector = Collector::new(
            RunClock::start_now(),
            Duration::ZERO,
            2,
            &["cams".to_string()],
            &groups,
            vec![],
            None,
        );
        let mut assembler = Assembler::new(workers);
        let rss_before = rss_bytes(std::process::id()).unwrap_or(0);
        let cpu_before = process_cpu_time().unwrap_or_default();
        for reply in &replies {
            for w in 0..workers {
                let decoded: WindowsReply = serde_json::from_slice(reply).unwrap();
                for r in decoded.records {
                    assembler.offer(w, r);
                }
            }
            for merged in assembler.ready(0) {
                collector.add(merged);
            }
        }
        assert!(assembler.is_done(), "every second merged");
        assert_eq!(collector.points().len() as u64, SECONDS);
        let cpu = process_cpu_time()
            .unwrap_or_default()
            .saturating_sub(cpu_before);
        let rss_after = rss_bytes(std::process::id()).unwrap_or(0);
        let per_second_ms = cpu.as_secs_f64() * 1000.0 / SECONDS as f64;
        println!(
            "{workers:>8} {per_second_ms:>18.2} {:>22.0} {:>16.1} {:>20.1}",
            per_second_ms * 1000.0 / f64::from(workers),
            wire as f64 / 1024.0,
            rss_after.saturating_sub(rss_before) as f64 / 1_048_576.0
        );
    }
}
