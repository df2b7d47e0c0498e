//! What a valid scenario will run into on xiu 0.14 whatever the cluster does: notes printed by
//! `xiuload validate` and at the start of a run, so an error count that is the server's known
//! behaviour is not mistaken for the finding of the test.
//!
//! One such behaviour today: xiu names each HTTP-FLV and RTMP subscriber by the Unix second plus
//! 4 random digits and keys a stream's subscribers by that name. Two viewers of one stream that
//! join in the same second share a name once in 10,000 pairs; the later one replaces the earlier
//! in the table, and when the earlier one's stream ends it removes the later one too. Both see
//! `eof`. With joins arriving at `k` a second on a stream, the pairs in one second average `k²/2`,
//! so the viewers lost average `k²/10,000` a second. See README, "What is measured".

use super::plan::Shape;
use super::select::zipf_shares;
use super::{PlayerGroup, Protocol, Scenario, Selection, Stage, max_slots};

/// Names one xiu 0.14 subscriber can take within a second: 4 random decimal digits.
const NAMES_PER_SECOND: f64 = 10_000.0;

/// Below this many expected losses a note would be noise.
const WORTH_A_NOTE: f64 = 1.0;

/// A player group whose joins xiu 0.14 is expected to cut short by name collisions.
#[derive(Debug, Clone, PartialEq)]
pub struct NameCollisions {
    pub group: String,
    /// Viewers expected to end with `eof` for this reason over the whole run.
    pub expected_eof: f64,
    /// The highest rate of joins on the group's most watched stream, per second.
    pub peak_joins_per_stream: f64,
}

impl std::fmt::Display for NameCollisions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "players group \"{}\": expect about {:.0} viewers to end with `eof` through xiu 0.14's \
             own naming, whatever the cluster does: two viewers of a stream who join in the same \
             second get the same name once in 10,000 pairs, and xiu drops both (up to {:.0} joins \
             a second on one stream here; README, \"What is measured\"; the figure is for one xiu, N \
             edges sharing the viewers lose about 1/N of it). Ramp slower or spread viewers over \
             more streams if that is not what this test is about.",
            self.group, self.expected_eof, self.peak_joins_per_stream
        )
    }
}

/// Player groups of `scenario` that expect at least one such loss.
pub fn name_collisions(scenario: &Scenario) -> Vec<NameCollisions> {
    let plan = super::plan::Plan::of(scenario);
    let run_seconds = plan.length.as_secs_f64();
    scenario
        .players
        .iter()
        .zip(&plan.players)
        .filter_map(|(g, shape)| {
            let shares = stream_shares(g, scenario);
            group_collisions(g, shape, &shares, run_seconds)
        })
        .filter(|c| c.expected_eof >= WORTH_A_NOTE)
        .collect()
}

/// How a group's joins divide over its streams (each share in `0..=1`, summing to 1).
fn stream_shares(g: &PlayerGroup, scenario: &Scenario) -> Vec<f64> {
    let streams = match (&g.publishers, &g.streams) {
        (Some(group), _) => scenario
            .publishers
            .iter()
            .find(|p| &p.name == group)
            .map_or(1, |p| max_slots(p.count, p.ramp.as_deref()) as usize),
        (None, Some(list)) => list.len(),
        (None, None) => 1,
    }
    .max(1);
    match g.select {
        Selection::RoundRobin => vec![1.0 / streams as f64; streams],
        Selection::Zipf { exponent } => zipf_shares(streams, exponent),
    }
}

fn group_collisions(
    g: &PlayerGroup,
    shape: &Shape,
    shares: &[f64],
    run_seconds: f64,
) -> Option<NameCollisions> {
    if g.protocol == Protocol::Hls {
        // HLS viewers fetch files; xiu keeps no subscriber per viewer.
        return None;
    }
    let concentration: f64 = shares.iter().map(|s| s * s).sum();
    let top_share = shares.iter().copied().fold(0.0, f64::max);
    let mean_session = g
        .session
        .as_ref()
        .map(|s| (s.min.0 + s.max.0).as_secs_f64() / 2.0)
        .filter(|m| *m > 0.0);
    let mut expected = 0.0;
    let mut peak_rate: f64 = 0.0;
    for (rate, seconds) in join_rates(g, shape, mean_session, run_seconds) {
        // Σ over streams of (rate · share)² / 10,000, for each second at this rate.
        expected += rate * rate * concentration / NAMES_PER_SECOND * seconds;
        peak_rate = peak_rate.max(rate * top_share);
    }
    Some(NameCollisions {
        group: g.name.clone(),
        expected_eof: expected,
        peak_joins_per_stream: peak_rate,
    })
}

/// Joins a second and for how many seconds, stage by stage: viewers added by a rising stage,
/// plus, with churn, leavers replaced at `viewers / mean session`.
fn join_rates(
    g: &PlayerGroup,
    shape: &Shape,
    mean_session: Option<f64>,
    run_seconds: f64,
) -> Vec<(f64, f64)> {
    let churn = |viewers: f64| mean_session.map_or(0.0, |m| viewers / m);
    match shape {
        Shape::Ramp(stages) => {
            let mut from = 0.0;
            stages
                .iter()
                .map(|Stage { duration, target }| {
                    // Joins of a shorter stage still spread over its viewers' start jitter, and
                    // no rate beats "all in one second".
                    let seconds = duration
                        .0
                        .as_secs_f64()
                        .max(g.start_jitter.0.as_secs_f64())
                        .max(1.0);
                    let to = *target as f64;
                    let added = (to - from).max(0.0) / seconds;
                    let average = (from + to) / 2.0;
                    from = to;
                    (added + churn(average), seconds)
                })
                .collect()
        }
        Shape::Constant { count } => {
            // A constant group starts at once, spread over its start jitter (a second at least),
            // then replaces its leavers for the rest of the run.
            let count = *count as f64;
            let spread = g.start_jitter.0.as_secs_f64().max(1.0);
            vec![
                (count / spread, spread),
                (churn(count), (run_seconds - spread).max(0.0)),
            ]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::parse;
    use std::path::Path;

    fn scenario(players: &str) -> Scenario {
        let text = format!(
            r#"[run]
duration = "60s"
[target]
rtmp_publish = "rtmp://127.0.0.1:1935"
rtmp_play = "rtmp://127.0.0.1:1935"
flv_base = "http://127.0.0.1:8080"
hls_base = "http://127.0.0.1:8081"
[[publishers]]
name = "cams"
stream = "cam-{{i}}"
count = 4
{players}"#
        );
        parse(Path::new("advice.toml"), &text).unwrap()
    }

    /// One player group: which streams it watches and how it comes and goes.
    fn group(name: &str, protocol: &str, watch: &str, load: &str) -> String {
        format!("[[players]]\nname = \"{name}\"\nprotocol = \"{protocol}\"\n{watch}\n{load}\n")
    }

    const HOT: &str = r#"streams = ["hot"]"#;
    const CAMS: &str = r#"publishers = "cams""#;

    #[test]
    fn a_steep_ramp_onto_one_stream_expects_losses_that_scale_with_the_square_of_its_rate() {
        let s = scenario(&group(
            "fans",
            "flv",
            HOT,
            r#"ramp = [{ duration = "8s", target = 600 }, { duration = "20s", target = 600 }]"#,
        ));
        let found = name_collisions(&s);
        assert_eq!(found.len(), 1);
        // 75 joins a second for 8 s: 75² / 10,000 · 8 = 4.5 (measured against xiu: 4 to 6).
        assert!((found[0].expected_eof - 4.5).abs() < 1e-9, "{found:?}");
        assert_eq!(found[0].peak_joins_per_stream, 75.0);
        assert!(found[0].to_string().contains("players group \"fans\""));

        // A jump (a stage shorter than a second) counts as all joins in one second: 600² / 10,000.
        let jump = scenario(&group(
            "fans",
            "flv",
            HOT,
            r#"ramp = [{ duration = "100ms", target = 600 }, { duration = "20s", target = 600 }]"#,
        ));
        assert!((name_collisions(&jump)[0].expected_eof - 36.0).abs() < 1e-9);

        // Twice as steep: four times the losses a second, for half the seconds.
        let steeper = scenario(&group(
            "fans",
            "rtmp",
            HOT,
            r#"ramp = [{ duration = "4s", target = 600 }]"#,
        ));
        assert!((name_collisions(&steeper)[0].expected_eof - 9.0).abs() < 1e-9);
    }

    #[test]
    fn spreading_viewers_over_streams_and_hls_avoid_the_note() {
        // The same ramp over the 4 publisher streams: a quarter of the losses, 1.1, still a note.
        let spread = scenario(&group(
            "fans",
            "flv",
            CAMS,
            r#"ramp = [{ duration = "8s", target = 600 }]"#,
        ));
        assert!((name_collisions(&spread)[0].expected_eof - 1.125).abs() < 1e-9);
        // HLS keeps no subscriber per viewer; a gentle ramp expects less than one loss.
        let quiet = scenario(&format!(
            "{}{}",
            group(
                "hls-fans",
                "hls",
                HOT,
                r#"ramp = [{ duration = "1s", target = 600 }]"#
            ),
            group(
                "gentle",
                "flv",
                CAMS,
                r#"ramp = [{ duration = "30s", target = 100 }]"#
            ),
        ));
        assert!(name_collisions(&quiet).is_empty());
    }

    #[test]
    fn churn_keeps_joining_after_the_ramp_and_zipf_concentrates_it() {
        // 1000 viewers held 60 s, each staying 10 s on average: 100 joins a second throughout.
        let churn = |select: &str| {
            let load = format!(
                "{select}\ncount = 1000\nstart_jitter = \"10s\"\nsession = {{ min = \"5s\", max = \"15s\" }}"
            );
            scenario(&group("zappers", "flv", CAMS, &load))
        };
        // 1000 joins spread over the 10 s start jitter, then 100 a second for the other 50 s,
        // dealt over 4 streams: 100² / 4 / 10,000 a second (0.25), for 60 s.
        let even = name_collisions(&churn(""));
        assert!((even[0].expected_eof - 15.0).abs() < 1e-9, "{even:?}");
        let hot = name_collisions(&churn(r#"select = { mode = "zipf", exponent = 1.2 }"#));
        assert!(hot[0].expected_eof > even[0].expected_eof, "{hot:?}");
        assert!(hot[0].peak_joins_per_stream > 25.0);
    }
}
