//! For distributed runs: the scenario they split, the windows runs and workers write
//! (`windows.jsonl`), and the figures two sets of windows are compared on. The same helpers as
//! tests/distributed.rs keeps for itself (which can use these instead).

use std::path::Path;
use xiuload::metrics::{PlayerStats, PublisherStats};
use xiuload::run::assembler::WindowRecord;

/// 3 publishers, 12 HTTP-FLV and 6 RTMP viewers, for `seconds`, against a running xiu.
pub fn scenario(xiu: &xiuload::local::LocalXiu, seconds: u32) -> String {
    format!(
        r#"[run]
name = "distributed"
duration = "{seconds}s"
warmup = "3s"

{target}
[[publishers]]
name = "cams"
stream = "cam-{{i}}"
count = 3
video = {{ width = 320, height = 180, fps = 25, bitrate = "400kbps", gop = "1s" }}
audio = {{ enabled = false }}

[[players]]
name = "flv-viewers"
protocol = "flv"
publishers = "cams"
ramp = [
  {{ duration = "1s", target = 0 }},
  {{ duration = "1s", target = 12 }},
  {{ duration = "{hold}s", target = 12 }},
]

[[players]]
name = "rtmp-viewers"
protocol = "rtmp"
publishers = "cams"
select = {{ mode = "zipf", exponent = 1.2 }}
ramp = [
  {{ duration = "1s", target = 0 }},
  {{ duration = "1s", target = 6 }},
  {{ duration = "{hold}s", target = 6 }},
]
"#,
        target = super::remote_target(xiu),
        hold = seconds - 2,
    )
}

pub fn read_records(path: &Path) -> Vec<WindowRecord> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

/// Per player group frames, bytes, sessions, errors and latency percentiles (from the merged
/// histogram), per publisher group sessions, frames and bytes: compact, so a failure stays
/// readable.
pub fn figures(records: &[WindowRecord]) -> Vec<String> {
    let (players, publishers) = totals(records);
    players
        .iter()
        .map(|p| {
            format!(
                "players frames={} bytes={} sessions={} errors={} latency p50={:?} p99={:?} max={:?}",
                p.frames,
                p.bytes,
                p.sessions,
                p.errors.total(),
                p.latency.quantile_ms(0.5),
                p.latency.quantile_ms(0.99),
                p.latency.max_ms()
            )
        })
        .chain(publishers.iter().map(|p| {
            format!(
                "publishers sessions={} frames={} bytes={}",
                p.sessions, p.frames, p.bytes
            )
        }))
        .collect()
}

/// Every player group's and publisher group's stats over `records`, merged.
pub fn totals(records: &[WindowRecord]) -> (Vec<PlayerStats>, Vec<PublisherStats>) {
    let mut players: Vec<PlayerStats> = Vec::new();
    let mut publishers: Vec<PublisherStats> = Vec::new();
    for r in records {
        players.resize(
            r.window.players.len().max(players.len()),
            Default::default(),
        );
        publishers.resize(
            r.window.publishers.len().max(publishers.len()),
            Default::default(),
        );
        for (t, g) in players.iter_mut().zip(&r.window.players) {
            t.merge(&g.stats);
        }
        for (t, g) in publishers.iter_mut().zip(&r.window.publishers) {
            t.merge(&g.stats);
        }
    }
    (players, publishers)
}

/// Checks that `merged` holds exactly the survivors' windows and a prefix of the dead worker's:
/// all it sent before it died, missing at most the one window it was cutting then.
pub fn assert_merged_survivors_and_what_the_dead_sent(
    merged: &[WindowRecord],
    survivors: &[WindowRecord],
    dead: &[WindowRecord],
) {
    let merged = figures(merged);
    let sent = (0..=dead.len()).find(|n| figures(&[survivors, &dead[..*n]].concat()) == merged);
    assert!(
        sent.is_some_and(|n| n + 1 >= dead.len() && n >= 2),
        "the merge is not the survivors plus what the dead worker sent: {merged:?}\nall of it: {:?}\nsurvivors: {:?}",
        figures(&[survivors, dead].concat()),
        figures(survivors)
    );
}
