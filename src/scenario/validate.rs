//! Semantic checks that types alone cannot express. Pure: returns problems with field paths; the
//! loader turns paths into file positions.

use super::model::*;
use super::threshold::parse_metric;
use std::collections::BTreeSet;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub field: String,
    pub message: String,
    pub hint: Option<String>,
}

struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>, hint: Option<&str>) {
        self.0.push(Problem {
            field: field.into(),
            message: message.into(),
            hint: hint.map(str::to_string),
        });
    }
}

pub fn validate(s: &Scenario) -> Vec<Problem> {
    let mut p = Problems(Vec::new());
    check_target(s, &mut p);
    check_names(s, &mut p);
    // The knee's group gets its shape from [knee], which has a length of its own.
    let knee_group = s.knee.as_ref().map(|k| k.group.as_str());
    let any_count_only = s.publishers.iter().any(|g| g.ramp.is_none())
        || s.players
            .iter()
            .any(|g| g.ramp.is_none() && Some(g.name.as_str()) != knee_group);
    match s.run.duration {
        // A knee has a length of its own (steps × step_duration), which `count` groups follow.
        None if any_count_only && s.knee.is_none() => p.add(
            "run.duration",
            "a group uses `count` without `ramp`, so the run needs a length",
            Some("add `duration = \"60s\"` under [run], or give the group `ramp` stages"),
        ),
        Some(d) if d.0.is_zero() => p.add("run.duration", "must be longer than 0s", None),
        _ => {}
    }
    if let Some(d) = s.run.duration
        && s.run.warmup.0 >= d.0
        && !d.0.is_zero()
    {
        p.add(
            "run.warmup",
            format!(
                "warmup ({}) is not shorter than the run ({d})",
                s.run.warmup
            ),
            Some("thresholds would judge nothing; shorten the warmup"),
        );
    }
    if s.publishers.is_empty() && s.players.is_empty() {
        p.add(
            "publishers",
            "the scenario has no [[publishers]] and no [[players]] groups",
            Some("add at least one group; see scenarios/local-smoke.toml"),
        );
    }
    for (i, g) in s.publishers.iter().enumerate() {
        let at = format!("publishers[{i}]");
        check_shape(&at, g.count, g.ramp.as_deref(), &mut p);
        check_video(&at, &g.video, &mut p);
        if g.audio.enabled && !(8_000..=512_000).contains(&g.audio.bitrate.bps()) {
            p.add(
                format!("{at}.audio.bitrate"),
                format!("{} is outside 8kbps..512kbps for AAC-LC", g.audio.bitrate),
                None,
            );
        }
        let slots = max_slots(g.count, g.ramp.as_deref());
        if slots > 1 && !g.stream.contains("{i}") {
            p.add(
                format!("{at}.stream"),
                format!("{slots} publishers would share the stream name {:?}", g.stream),
                Some("xiu disconnects a second publisher of a stream; put `{i}` in the pattern, e.g. \"cam-{i}\""),
            );
        }
    }
    for (i, g) in s.players.iter().enumerate() {
        let at = format!("players[{i}]");
        if knee_group == Some(g.name.as_str()) {
            if g.count.is_some() || g.ramp.is_some() {
                p.add(
                    at.clone(),
                    "this group is stepped by [knee]; remove its `count`/`ramp`",
                    None,
                );
            }
        } else {
            check_shape(&at, g.count, g.ramp.as_deref(), &mut p);
        }
        match (&g.publishers, &g.streams) {
            (None, None) | (Some(_), Some(_)) => p.add(
                at.clone(),
                "give exactly one of `publishers` (a publisher group's name) or `streams` (a list of stream names)",
                None,
            ),
            (Some(name), None) => {
                if !s.publishers.iter().any(|pg| &pg.name == name) {
                    let known: Vec<&str> = s.publishers.iter().map(|g| g.name.as_str()).collect();
                    p.add(
                        format!("{at}.publishers"),
                        format!("no publisher group is named {name:?}"),
                        Some(&format!("publisher groups: {known:?}")),
                    );
                }
            }
            (None, Some(list)) if list.is_empty() => {
                p.add(format!("{at}.streams"), "the list is empty", None)
            }
            (None, Some(_)) => {}
        }
        if let Selection::Zipf { exponent } = g.select
            && !(exponent.is_finite() && exponent > 0.0 && exponent <= 10.0)
        {
            p.add(
                format!("{at}.select.exponent"),
                format!("Zipf exponent {exponent} must be in (0, 10]"),
                Some("1.0 is classic Zipf; larger makes the top streams hotter"),
            );
        }
        if let Some(sess) = &g.session
            && (sess.min.0.is_zero() || sess.min > sess.max)
        {
            p.add(
                format!("{at}.session"),
                format!(
                    "need 0 < min <= max (got min {} max {})",
                    sess.min, sess.max
                ),
                None,
            );
        }
        if g.first_frame_timeout.0 < Duration::from_millis(100) {
            p.add(
                format!("{at}.first_frame_timeout"),
                "must be at least 100ms",
                None,
            );
        }
    }
    if let Some(k) = &s.knee {
        if !s.players.iter().any(|g| g.name == k.group) {
            p.add(
                "knee.group",
                format!("no player group is named {:?}", k.group),
                Some("the knee steps up the viewers of one [[players]] group"),
            );
        }
        if k.start == 0 || k.step == 0 || k.max < k.start {
            p.add("knee", "need start >= 1, step >= 1 and max >= start", None);
        }
        if k.settle.0 >= k.step_duration.0 {
            p.add(
                "knee.settle",
                format!(
                    "settle ({}) must be shorter than step_duration ({})",
                    k.settle, k.step_duration
                ),
                Some("the judged part of each step is step_duration - settle"),
            );
        }
        if !(0.0..0.95).contains(&k.headroom) {
            p.add(
                "knee.headroom",
                format!("{} must be within 0..0.95", k.headroom),
                None,
            );
        }
        if s.thresholds.is_empty() {
            p.add(
                "knee",
                "a knee needs [[thresholds]]: they decide where the server breaks",
                Some("e.g. metric = \"startup_ms.p99\", max = 3000"),
            );
        }
    }
    for (i, t) in s.thresholds.iter().enumerate() {
        let at = format!("thresholds[{i}]");
        let for_publishers = t.scope == "publishers";
        if let Err((message, hint)) = parse_metric(&t.metric, for_publishers) {
            p.add(format!("{at}.metric"), message, Some(&hint));
        }
        let scopes = scopes(s);
        if !scopes.contains(t.scope.as_str()) {
            p.add(
                format!("{at}.scope"),
                format!("unknown scope {:?}", t.scope),
                Some(&format!("scopes here: {:?}", scopes)),
            );
        }
        match (t.min, t.max) {
            (None, None) => p.add(at, "give `max` and/or `min`", None),
            (Some(lo), Some(hi)) if lo > hi => p.add(at, format!("min {lo} > max {hi}"), None),
            _ => {}
        }
    }
    p.0.extend(crate::kube::config::validate(
        s.kube.as_ref(),
        &s.expect,
        crate::kube::expect::stage_count(s),
    ));
    p.0
}

fn scopes(s: &Scenario) -> BTreeSet<&str> {
    let mut set: BTreeSet<&str> = ["all", "publishers", "flv", "hls", "rtmp"].into();
    set.extend(s.players.iter().map(|g| g.name.as_str()));
    set
}

fn check_target(s: &Scenario, p: &mut Problems) {
    let t = &s.target;
    let remote = [&t.rtmp_publish, &t.rtmp_play, &t.flv_base, &t.hls_base]
        .iter()
        .any(|u| u.is_some());
    if t.local.is_some() && remote {
        p.add(
            "target.local",
            "a target is either [target.local] or remote URLs, not both",
            Some("remove [target.local] to load a cluster, or the URLs to run locally"),
        );
    }
    if t.local.is_none() && !remote {
        p.add(
            "target",
            "no target: add [target.local] or the cluster's URLs",
            Some("e.g. rtmp_publish = \"rtmp://origin.example.com:1935\", flv_base = \"https://httpflv.example.com\""),
        );
    }
    if t.app.is_empty() || t.app.contains('/') {
        p.add("target.app", "must be a non-empty name without '/'", None);
    }
    for (field, url, schemes) in [
        ("target.rtmp_publish", &t.rtmp_publish, &["rtmp://"][..]),
        ("target.rtmp_play", &t.rtmp_play, &["rtmp://"][..]),
        ("target.flv_base", &t.flv_base, &["http://", "https://"][..]),
        ("target.hls_base", &t.hls_base, &["http://", "https://"][..]),
    ] {
        if let Some(u) = url
            && (!schemes.iter().any(|s| u.starts_with(s)) || u.len() <= schemes[0].len())
        {
            p.add(
                field,
                format!("{u:?} is not a {} URL", schemes.join(" or ")),
                None,
            );
        }
    }
    if remote {
        if !s.publishers.is_empty() && t.rtmp_publish.is_none() {
            p.add(
                "target.rtmp_publish",
                "publisher groups need `rtmp_publish`",
                None,
            );
        }
        for (i, g) in s.players.iter().enumerate() {
            let (needed, name) = match g.protocol {
                Protocol::Flv => (&t.flv_base, "flv_base"),
                Protocol::Hls => (&t.hls_base, "hls_base"),
                Protocol::Rtmp => (&t.rtmp_play, "rtmp_play"),
            };
            if needed.is_none() {
                p.add(
                    format!("players[{i}].protocol"),
                    format!("{} players need `target.{name}`", g.protocol.as_str()),
                    None,
                );
            }
        }
    }
    if let Some(local) = &t.local
        && !(1..=10).contains(&local.hls_fragment_secs)
    {
        p.add(
            "target.local.hls_fragment_secs",
            "must be 1..=10 seconds",
            None,
        );
    }
}

fn check_names(s: &Scenario, p: &mut Problems) {
    let mut seen = BTreeSet::new();
    let all = s
        .publishers
        .iter()
        .map(|g| ("publishers", &g.name))
        .chain(s.players.iter().map(|g| ("players", &g.name)));
    let reserved = ["all", "publishers", "flv", "hls", "rtmp"];
    for (i, (kind, name)) in all.enumerate() {
        let index = if kind == "publishers" {
            i
        } else {
            i - s.publishers.len()
        };
        let at = format!("{kind}[{index}].name");
        if name.is_empty() || name.contains(char::is_whitespace) {
            p.add(&at, "group names must be non-empty, without spaces", None);
        } else if reserved.contains(&name.as_str()) {
            p.add(
                &at,
                format!("{name:?} is reserved for threshold scopes"),
                None,
            );
        } else if !seen.insert(name.as_str()) {
            p.add(
                &at,
                format!("another group is already named {name:?}"),
                Some("group names must be unique across publishers and players"),
            );
        }
    }
}

fn check_shape(at: &str, count: Option<u32>, ramp: Option<&[Stage]>, p: &mut Problems) {
    match (count, ramp) {
        (Some(_), Some(_)) | (None, None) => p.add(
            at,
            "give exactly one of `count` (constant) or `ramp` (stages)",
            Some(
                "ramp = [{ duration = \"10s\", target = 50 }, { duration = \"1m\", target = 50 }]",
            ),
        ),
        (Some(c), None) if c > 100_000 => p.add(
            format!("{at}.count"),
            format!("{c} is more than one load generator can hold (100000)"),
            Some("split the load over several xiuload pods"),
        ),
        (None, Some([])) => p.add(format!("{at}.ramp"), "needs at least one stage", None),
        (None, Some(stages)) => {
            for (i, st) in stages.iter().enumerate() {
                if st.duration.0.is_zero() {
                    p.add(
                        format!("{at}.ramp[{i}].duration"),
                        "a stage must last longer than 0s",
                        None,
                    );
                }
                if st.target > 100_000 {
                    p.add(
                        format!("{at}.ramp[{i}].target"),
                        format!(
                            "{} is more than one load generator can hold (100000)",
                            st.target
                        ),
                        None,
                    );
                }
            }
        }
        _ => {}
    }
}

fn check_video(at: &str, v: &VideoSection, p: &mut Problems) {
    for (name, value) in [("width", v.width), ("height", v.height)] {
        if !(16..=4096).contains(&value) || value % 2 != 0 {
            p.add(
                format!("{at}.video.{name}"),
                format!("{value} must be even and within 16..=4096"),
                None,
            );
        }
    }
    if !(1..=120).contains(&v.fps) {
        p.add(
            format!("{at}.video.fps"),
            format!("{} must be 1..=120", v.fps),
            None,
        );
    }
    if !(50_000..=100_000_000).contains(&v.bitrate.bps()) {
        p.add(
            format!("{at}.video.bitrate"),
            format!("{} is outside 50kbps..100Mbps", v.bitrate),
            None,
        );
    }
    let frame = Duration::from_secs(1) / v.fps.max(1);
    if v.gop.0 < frame || v.gop.0 > Duration::from_secs(20) {
        p.add(
            format!("{at}.video.gop"),
            format!(
                "keyframe interval {} must be between one frame and 20s",
                v.gop
            ),
            Some("2s is usual for live streaming (HLS cuts segments on keyframes)"),
        );
    }
}

/// The largest number of concurrent clients a group asks for.
pub fn max_slots(count: Option<u32>, ramp: Option<&[Stage]>) -> u32 {
    count
        .into_iter()
        .chain(ramp.unwrap_or(&[]).iter().map(|s| s.target))
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use crate::scenario::{LoadError, Located, parse};
    use std::path::Path;

    const BASE: &str = r#"[run]
duration = "10s"

[target.local]

[[publishers]]
name = "cams"
stream = "cam-{i}"
count = 2

[[players]]
name = "viewers"
protocol = "flv"
publishers = "cams"
count = 2
"#;

    fn problems(text: &str) -> Vec<Located> {
        match parse(Path::new("s.toml"), text) {
            Ok(_) => panic!("expected problems in\n{text}"),
            Err(LoadError::Invalid(v)) => v,
            Err(e) => panic!("{e}"),
        }
    }

    fn assert_problem(text: &str, field: &str, needle: &str, line: usize) {
        let all = problems(text);
        let p = all
            .iter()
            .find(|p| p.field == field)
            .unwrap_or_else(|| panic!("no problem at {field}: {all:#?}"));
        assert!(p.message.contains(needle), "{p}");
        assert_eq!(p.line, line, "{p}");
    }

    #[test]
    fn base_is_valid() {
        parse(Path::new("s.toml"), BASE).unwrap();
    }

    #[test]
    fn count_and_ramp_together() {
        let text = BASE.replace(
            "count = 2\n\n[[players]]",
            "count = 2\nramp = [{ duration = \"1s\", target = 1 }]\n\n[[players]]",
        );
        assert_problem(&text, "publishers[0]", "exactly one of `count`", 6);
    }

    #[test]
    fn player_references_missing_publisher_group() {
        let text = BASE.replace("publishers = \"cams\"", "publishers = \"camz\"");
        assert_problem(
            &text,
            "players[0].publishers",
            "no publisher group is named \"camz\"",
            14,
        );
    }

    #[test]
    fn shared_stream_name_is_rejected() {
        let text = BASE.replace("stream = \"cam-{i}\"", "stream = \"cam\"");
        assert_problem(&text, "publishers[0].stream", "share the stream name", 8);
    }

    #[test]
    fn odd_width_and_zero_fps() {
        let text = BASE.replace(
            "count = 2\n\n[[players]]",
            "count = 2\nvideo = { width = 641, fps = 0 }\n\n[[players]]",
        );
        assert_problem(&text, "publishers[0].video.width", "even", 10);
        assert_problem(&text, "publishers[0].video.fps", "1..=120", 10);
    }

    #[test]
    fn duplicate_group_names() {
        let text = BASE.replace("name = \"viewers\"", "name = \"cams\"");
        assert_problem(&text, "players[0].name", "already named", 12);
    }

    #[test]
    fn count_without_duration() {
        let text = BASE.replace("duration = \"10s\"\n", "");
        assert_problem(&text, "run.duration", "needs a length", 1);
    }

    #[test]
    fn local_and_remote_target_together() {
        let text = BASE.replace(
            "[target.local]",
            "[target]\nflv_base = \"http://x\"\n[target.local]",
        );
        assert_problem(&text, "target.local", "not both", 6);
    }

    #[test]
    fn remote_target_missing_player_url() {
        let text = BASE.replace(
            "[target.local]",
            "[target]\nrtmp_publish = \"rtmp://origin:1935\"",
        );
        assert_problem(&text, "players[0].protocol", "need `target.flv_base`", 14);
    }

    #[test]
    fn bad_url_scheme() {
        let text = BASE.replace(
            "[target.local]",
            "[target]\nrtmp_publish = \"http://origin\"\nflv_base = \"http://edge\"",
        );
        assert_problem(&text, "target.rtmp_publish", "not a rtmp:// URL", 5);
    }

    #[test]
    fn unknown_threshold_metric_and_scope() {
        let text = format!(
            "{BASE}\n[[thresholds]]\nmetric = \"startup.p99\"\nscope = \"dash\"\nmax = 1\n"
        );
        assert_problem(&text, "thresholds[0].metric", "unknown player metric", 18);
        assert_problem(&text, "thresholds[0].scope", "unknown scope", 19);
    }

    #[test]
    fn threshold_without_bound() {
        let text = format!("{BASE}\n[[thresholds]]\nmetric = \"stall_ratio\"\n");
        assert_problem(&text, "thresholds[0]", "`max` and/or `min`", 17);
    }

    #[test]
    fn zipf_exponent_out_of_range() {
        let text = BASE.replace("count = 2\n\"", "").replace(
            "publishers = \"cams\"",
            "publishers = \"cams\"\nselect = { mode = \"zipf\", exponent = -1.0 }",
        );
        assert_problem(&text, "players[0].select.exponent", "Zipf exponent", 15);
    }

    #[test]
    fn session_min_above_max() {
        let text = BASE.replace(
            "publishers = \"cams\"",
            "publishers = \"cams\"\nsession = { min = \"30s\", max = \"10s\" }",
        );
        assert_problem(&text, "players[0].session", "min <= max", 15);
    }

    #[test]
    fn empty_ramp() {
        let text = BASE.replace("count = 2\n\n[[players]]", "ramp = []\n\n[[players]]");
        assert_problem(&text, "publishers[0].ramp", "at least one stage", 9);
    }

    #[test]
    fn several_problems_are_all_reported() {
        let text = BASE
            .replace(
                "count = 2\n\n[[players]]",
                "count = 2\nvideo = { fps = 500 }\n\n[[players]]",
            )
            .replace("publishers = \"cams\"", "publishers = \"nope\"");
        assert!(problems(&text).len() >= 2);
    }
}
