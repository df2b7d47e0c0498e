//! Semantic checks that types alone cannot express. Pure: returns problems with field paths; the
//! loader turns paths into file positions.

use super::model::*;
use super::problem::Problem;
use super::threshold::{Metric, Scope, Side};
use crate::units::{HumanDuration, MAX_DURATION, in_days};
use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

/// The most clients one group (or one knee step) may ask for: what one load generator can hold.
pub const MAX_GROUP_CLIENTS: u32 = 100_000;

/// The shortest reconnect backoff. With no pause, a client against a closed port reconnects as
/// fast as the CPU allows (a million sessions in 10 s were seen), which measures only the loader.
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// CA files are read whole; a CA bundle is a few KiB.
const MAX_CA_FILE_BYTES: u64 = 1024 * 1024;

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
    check_run_name(s, &mut p);
    check_publish_token_env(s, &mut p);
    check_local_origins(s, &mut p);
    check_something_runs(s, &mut p);
    // The knee's group gets its shape from [knee], which has a length of its own.
    let knee_group = s.knee.as_ref().map(|k| k.group.as_str());
    let any_count_only = s
        .publishers
        .iter()
        .any(|g| g.ramp.is_none() && Some(g.name.as_str()) != knee_group)
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
        check_group_shape(&at, &g.name, knee_group, g.count, g.ramp.as_deref(), &mut p);
        check_reconnect(&at, &g.reconnect, &mut p);
        check_video(&at, &g.video, &mut p);
        if g.audio.enabled && !(8_000..=512_000).contains(&g.audio.bitrate.bps()) {
            p.add(
                format!("{at}.audio.bitrate"),
                format!("{} is outside 8kbps..512kbps for AAC-LC", g.audio.bitrate),
                None,
            );
        }
        let slots = super::plan::publisher_shape(s, g).peak();
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
        check_group_shape(&at, &g.name, knee_group, g.count, g.ramp.as_deref(), &mut p);
        check_reconnect(&at, &g.reconnect, &mut p);
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
        let publishers = super::plan::knee_steps_publishers(s);
        if !publishers && !s.players.iter().any(|g| g.name == k.group) {
            p.add(
                "knee.group",
                format!("no player or publisher group is named {:?}", k.group),
                Some(
                    "the knee steps up the viewers of one [[players]] group, or the publishers of one [[publishers]] group",
                ),
            );
        }
        if publishers && k.target_audience.is_some() {
            p.add(
                "knee.target_audience",
                "the knee steps publishers: size origins with `target_streams`",
                None,
            );
        }
        if !publishers && k.target_streams.is_some() {
            p.add(
                "knee.target_streams",
                "the knee steps viewers: size the fleet with `target_audience`",
                None,
            );
        }
        if k.start == 0 || k.step == 0 || k.max < k.start {
            p.add("knee", "need start >= 1, step >= 1 and max >= start", None);
        } else if k.max > MAX_GROUP_CLIENTS {
            p.add(
                "knee.max",
                format!(
                    "{} is more than one load generator can hold ({MAX_GROUP_CLIENTS})",
                    k.max
                ),
                Some("split the load over several xiuload pods"),
            );
        } else {
            let steps = super::plan::step_targets(k).len() as u32;
            let length = k.step_duration.0.saturating_mul(steps);
            if length > MAX_DURATION {
                p.add(
                    "knee.step_duration",
                    format!(
                        "{steps} steps of {} last {}, longer than a run may last ({})",
                        k.step_duration,
                        in_days(length),
                        in_days(MAX_DURATION)
                    ),
                    Some("shorten step_duration or take fewer, larger steps"),
                );
            }
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
        let side = t.scope.side();
        if !t.metric.measured_on(side) {
            let whose = match side {
                Side::Players => "player",
                Side::Publishers => "publisher",
            };
            p.add(
                format!("{at}.metric"),
                format!("`{}` is not a {whose} metric", t.metric),
                Some(&format!("{whose} metrics: {}", Metric::known_on(side))),
            );
        }
        if let Scope::Group(name) = &t.scope
            && !s.players.iter().any(|g| &g.name == name)
        {
            p.add(
                format!("{at}.scope"),
                format!("unknown scope {name:?}"),
                Some(&format!("scopes here: {:?}", scopes(s))),
            );
        }
        match (t.min, t.max) {
            (None, None) => p.add(at, "give `max` and/or `min`", None),
            (Some(lo), Some(hi)) if lo > hi => p.add(at, format!("min {lo} > max {hi}"), None),
            _ => {}
        }
    }
    p.0.extend(super::cluster::validate(
        s.kube.as_ref(),
        &s.expect,
        super::plan::stage_count(s),
        s.fault.len(),
    ));
    if !s.fault.is_empty() {
        p.0.extend(super::fault::validate(
            &s.fault,
            s.target.local.as_ref(),
            s.kube.as_ref(),
            super::plan::Plan::of(s).length,
        ));
    }
    p.0.extend(super::distributed::validate(s));
    p.0
}

fn scopes(s: &Scenario) -> BTreeSet<&str> {
    let mut set: BTreeSet<&str> = ["all", "publishers", "flv", "hls", "rtmp"].into();
    set.extend(s.players.iter().map(|g| g.name.as_str()));
    set
}

fn check_target(s: &Scenario, p: &mut Problems) {
    let t = &s.target;
    let remote = t.rtmp_publish.is_some()
        || t.rtmp_play.is_some()
        || t.flv_base.is_some()
        || t.hls_base.is_some();
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
    if t.local.is_some() {
        for (field, template, xiu) in [
            ("target.flv_path", &t.flv_path, PathTemplate::xiu_flv()),
            ("target.hls_path", &t.hls_path, PathTemplate::xiu_hls()),
        ] {
            if *template != xiu {
                p.add(
                    field,
                    format!("a local target is xiu, which serves {xiu}"),
                    Some("path templates are for remote targets (flv_base, hls_base)"),
                );
            }
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
            let (given, name) = match g.protocol {
                Protocol::Flv => (t.flv_base.is_some(), "flv_base"),
                Protocol::Hls => (t.hls_base.is_some(), "hls_base"),
                Protocol::Rtmp => (t.rtmp_play.is_some(), "rtmp_play"),
            };
            if !given {
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

/// A group's shape: its own `count` or `ramp`, or none when the knee steps it.
fn check_group_shape(
    at: &str,
    name: &str,
    knee_group: Option<&str>,
    count: Option<u32>,
    ramp: Option<&[Stage]>,
    p: &mut Problems,
) {
    if knee_group != Some(name) {
        check_shape(at, count, ramp, p);
    } else if count.is_some() || ramp.is_some() {
        p.add(
            at,
            "this group is stepped by [knee]; remove its `count`/`ramp`",
            None,
        );
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
        (Some(c), None) if c > MAX_GROUP_CLIENTS => p.add(
            format!("{at}.count"),
            format!("{c} is more than one load generator can hold ({MAX_GROUP_CLIENTS})"),
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
                if st.target > MAX_GROUP_CLIENTS {
                    p.add(
                        format!("{at}.ramp[{i}].target"),
                        format!(
                            "{} is more than one load generator can hold ({MAX_GROUP_CLIENTS})",
                            st.target
                        ),
                        None,
                    );
                }
            }
            let total = stages
                .iter()
                .fold(Duration::ZERO, |sum, st| sum.saturating_add(st.duration.0));
            if total > MAX_DURATION {
                p.add(
                    format!("{at}.ramp"),
                    format!(
                        "the stages add up to {}, longer than a run may last ({})",
                        in_days(total),
                        in_days(MAX_DURATION)
                    ),
                    None,
                );
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

/// `run.name` names the report directory under `reports/`: it must stay a single directory name.
fn check_run_name(s: &Scenario, p: &mut Problems) {
    let Some(name) = &s.run.name else { return };
    let bad = name.is_empty()
        || name.contains(['/', '\\', '\0'])
        || name.contains("..")
        || name.chars().any(char::is_control);
    if bad {
        p.add(
            "run.name",
            format!("{name:?} cannot name a report directory: it must be non-empty, without '/', '\\' or '..'"),
            Some("the report goes to reports/<name>-<time>; use e.g. \"staging-knee\" (or pass --out)"),
        );
    }
}

/// `target.publish_token_env` names an environment variable; a value that looks like anything
/// else is most likely the secret itself, pasted where its name belongs.
fn check_publish_token_env(s: &Scenario, p: &mut Problems) {
    let Some(name) = &s.target.publish_token_env else {
        return;
    };
    let is_name = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !is_name {
        p.add(
            "target.publish_token_env",
            "wants the name of an environment variable (letters, digits, '_'), not the token"
                .to_string(),
            Some(
                "e.g. publish_token_env = \"XIU_PUBLISH_TOKEN\", then export XIU_PUBLISH_TOKEN=...",
            ),
        );
    }
}

/// `[target.local] origins`: 1 to 8, and more than one only with edges (viewers of a stream on
/// the second origin reach it through an edge's relay).
fn check_local_origins(s: &Scenario, p: &mut Problems) {
    let Some(local) = &s.target.local else {
        return;
    };
    if !(1..=8).contains(&local.origins) {
        p.add(
            "target.local.origins",
            format!("{} origins: between 1 and 8", local.origins),
            None,
        );
    } else if local.origins > 1 && local.edges == 0 {
        p.add(
            "target.local.origins",
            format!("{} origins need edges: viewers reach a stream on any origin through an edge's relay", local.origins),
            Some("set [target.local] edges = 2 (or more)"),
        );
    }
}

/// A scenario whose every group holds 0 clients runs for its length and passes having measured
/// nothing.
fn check_something_runs(s: &Scenario, p: &mut Problems) {
    if s.knee.is_some() || (s.publishers.is_empty() && s.players.is_empty()) {
        return;
    }
    let publishers = s
        .publishers
        .iter()
        .map(|g| max_slots(g.count, g.ramp.as_deref()));
    let players = s
        .players
        .iter()
        .map(|g| max_slots(g.count, g.ramp.as_deref()));
    if publishers.chain(players).all(|n| n == 0) {
        let field = if s.publishers.is_empty() {
            "players[0]"
        } else {
            "publishers[0]"
        };
        p.add(
            field,
            "every group has 0 clients (count = 0, or ramp targets of 0): there is nothing to run",
            Some("give at least one group a count or ramp target above 0"),
        );
    }
}

fn check_reconnect(at: &str, r: &ReconnectPolicy, p: &mut Problems) {
    if r.backoff.0 < MIN_BACKOFF {
        p.add(
            format!("{at}.reconnect.backoff"),
            format!(
                "{} is below the floor of {}",
                r.backoff,
                HumanDuration(MIN_BACKOFF)
            ),
            Some("with no pause a client reconnects to a dead server as fast as the CPU allows; the default is 1s"),
        );
    }
}

/// Checks that need the file system (the CA file); `validate` stays pure.
pub fn check_files(s: &Scenario) -> Vec<Problem> {
    let mut p = Problems(Vec::new());
    if let Some(ca) = &s.target.tls.ca_file
        && let Err(e) = check_ca_file(ca)
    {
        p.add(
            "target.tls.ca_file",
            e.to_string(),
            Some(
                "give a PEM file with -----BEGIN CERTIFICATE----- blocks, e.g. the issuer's ca.crt",
            ),
        );
    }
    p.0
}

/// Why `target.tls.ca_file` cannot serve as the run's trust anchors.
#[derive(Debug, thiserror::Error)]
enum CaFileError {
    #[error("cannot read {}: {source}", .path.display())]
    Unreadable {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is larger than 1 MiB; a CA file is a few KiB", .0.display())]
    TooLarge(std::path::PathBuf),
    #[error("{}: {source}", .path.display())]
    NotPem {
        path: std::path::PathBuf,
        #[source]
        source: PemError,
    },
}

/// What a would-be PEM certificate file holds instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum PemError {
    #[error("a PEM header without its closing dashes")]
    UnclosedHeader,
    #[error("a {0} block without its END line")]
    NoEndLine(String),
    /// PEM blocks are counted from 1, as a reader of the file counts them.
    #[error("PEM block {0} is not valid base64")]
    NotBase64(usize),
    /// Certificates are counted from 1; the reason is the X.509 parser's.
    #[error("certificate {0} is not a usable certificate ({1})")]
    NotACertificate(usize, String),
    #[error("cannot be read as PEM: {0}")]
    Unreadable(String),
    #[error("holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NoPem,
    #[error("holds a private key, not a certificate")]
    PrivateKey,
    /// The labels of the PEM blocks it holds.
    #[error("holds {} but no certificate", .0.join(", "))]
    NoCertificate(Vec<&'static str>),
}

fn check_ca_file(path: &Path) -> Result<(), CaFileError> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CA_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|source| CaFileError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > MAX_CA_FILE_BYTES {
        return Err(CaFileError::TooLarge(path.to_path_buf()));
    }
    pem_certificates(&bytes).map_err(|source| CaFileError::NotPem {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(())
}

/// Counts the certificates in PEM `bytes` as the run will read them: rustls-pki-types' PEM reader,
/// then each certificate added to a rustls root store (what `player::tls::client_config` does).
/// An error says what the file holds instead.
fn pem_certificates(bytes: &[u8]) -> Result<usize, PemError> {
    use tokio_rustls::rustls::RootCertStore;
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::{self, SectionKind};
    let mut reader = bytes;
    let mut roots = RootCertStore::empty();
    let mut certificates = 0;
    let mut others: Vec<&'static str> = Vec::new();
    loop {
        let block = certificates + others.len() + 1;
        match pem::from_buf(&mut reader) {
            Ok(Some((SectionKind::Certificate, der))) => {
                certificates += 1;
                roots
                    .add(CertificateDer::from(der))
                    .map_err(|e| PemError::NotACertificate(certificates, e.to_string()))?;
            }
            Ok(Some((kind, _))) => others.push(section_label(kind)),
            Ok(None) => break,
            Err(pem::Error::MissingSectionEnd { end_marker }) => {
                return Err(PemError::NoEndLine(
                    String::from_utf8_lossy(&end_marker).into_owned(),
                ));
            }
            Err(pem::Error::IllegalSectionStart { .. }) => return Err(PemError::UnclosedHeader),
            Err(pem::Error::Base64Decode(_)) => return Err(PemError::NotBase64(block)),
            Err(e) => return Err(PemError::Unreadable(e.to_string())),
        }
    }
    match (certificates, others.is_empty()) {
        (0, true) => Err(PemError::NoPem),
        (0, false) if others.iter().any(|l| l.contains("PRIVATE KEY")) => Err(PemError::PrivateKey),
        (0, false) => Err(PemError::NoCertificate(others)),
        (n, _) => Ok(n),
    }
}

/// A PEM section's label, as the file writes it.
fn section_label(kind: tokio_rustls::rustls::pki_types::pem::SectionKind) -> &'static str {
    use tokio_rustls::rustls::pki_types::pem::SectionKind;
    match kind {
        SectionKind::Certificate => "CERTIFICATE",
        SectionKind::PublicKey => "PUBLIC KEY",
        SectionKind::RsaPrivateKey => "RSA PRIVATE KEY",
        SectionKind::PrivateKey => "PRIVATE KEY",
        SectionKind::EcPrivateKey => "EC PRIVATE KEY",
        SectionKind::Crl => "X509 CRL",
        SectionKind::Csr => "CERTIFICATE REQUEST",
        _ => "another PEM section",
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
        // A metric that does not exist stops the file being read, at its line.
        assert_problem(
            &text,
            "thresholds[0].metric",
            "unknown metric `startup`",
            18,
        );
        let text = text.replace("startup.p99", "startup_ms.p99");
        assert_problem(&text, "thresholds[0].scope", "unknown scope", 19);
        // A metric of the other side is found with the scope it is judged under.
        let text = format!("{BASE}\n[[thresholds]]\nmetric = \"lateness_ms.p99\"\nmax = 1\n");
        assert_problem(&text, "thresholds[0].metric", "not a player metric", 18);
        let text = format!(
            "{BASE}\n[[thresholds]]\nmetric = \"stall_ratio\"\nscope = \"publishers\"\nmax = 1\n"
        );
        assert_problem(&text, "thresholds[0].metric", "not a publisher metric", 18);
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

    #[test]
    fn pem_files_are_told_apart() {
        use super::pem_certificates;
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let pem_certificates = |text: &str| pem_certificates(text.as_bytes());
        assert_eq!(pem_certificates(&cert.cert.pem()), Ok(1));
        let both = format!("{}{}", cert.signing_key.serialize_pem(), cert.cert.pem());
        assert_eq!(pem_certificates(&both), Ok(1));
        let key_only = cert.signing_key.serialize_pem();
        let text = |r: Result<usize, super::PemError>| r.unwrap_err().to_string();
        assert_eq!(
            text(pem_certificates(&key_only)),
            "holds a private key, not a certificate"
        );
        assert_eq!(
            text(pem_certificates("hello")),
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        );
        let broken = "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n";
        assert_eq!(
            text(pem_certificates(broken)),
            "PEM block 1 is not valid base64"
        );
        let not_der = format!(
            "{}-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            cert.cert.pem()
        );
        assert_eq!(
            text(pem_certificates(&not_der)),
            "certificate 2 is not a usable certificate (invalid peer certificate: BadEncoding)"
        );
        let cut = "-----BEGIN CERTIFICATE-----\nMIIB\n";
        assert_eq!(
            text(pem_certificates(cut)),
            "a CERTIFICATE block without its END line"
        );
        assert_eq!(
            text(pem_certificates("-----BEGIN CERTIFICATE")),
            "a PEM header without its closing dashes"
        );
        let csr = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n";
        assert_eq!(
            text(pem_certificates(csr)),
            "holds CERTIFICATE REQUEST but no certificate"
        );
    }

    #[test]
    fn ca_file_problems_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.crt");
        let e = super::check_ca_file(&missing).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("cannot read {}: ", missing.display())),
            "{e}"
        );
        let key = dir.path().join("key.pem");
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(&key, cert.signing_key.serialize_pem()).unwrap();
        assert_eq!(
            super::check_ca_file(&key).unwrap_err().to_string(),
            format!("{}: holds a private key, not a certificate", key.display())
        );
        let big = dir.path().join("big.crt");
        std::fs::write(&big, vec![b'a'; super::MAX_CA_FILE_BYTES as usize + 1]).unwrap();
        assert_eq!(
            super::check_ca_file(&big).unwrap_err().to_string(),
            format!(
                "{} is larger than 1 MiB; a CA file is a few KiB",
                big.display()
            )
        );
        let good = dir.path().join("ca.crt");
        std::fs::write(&good, cert.cert.pem()).unwrap();
        assert!(super::check_ca_file(&good).is_ok());
    }

    #[test]
    fn knee_steps_add_up_to_at_most_30_days() {
        let text = r#"[target.local]

[[publishers]]
name = "cams"
count = 1

[[players]]
name = "viewers"
protocol = "flv"
publishers = "cams"

[knee]
group = "viewers"
start = 1
step = 1
max = 100
step_duration = "1days"

[[thresholds]]
metric = "stall_ratio"
max = 0.1
"#;
        assert_problem(
            text,
            "knee.step_duration",
            "100 steps of 1day last 100 days",
            17,
        );
    }

    #[test]
    fn path_templates_are_for_remote_targets() {
        let text = BASE.replace(
            "[target.local]",
            "[target]\nhls_path = \"/hls/{stream}.m3u8\"\n[target.local]",
        );
        assert_problem(&text, "target.hls_path", "a local target is xiu", 5);
    }

    #[test]
    fn faults_are_located_by_file_line_and_field() {
        let text = format!(
            "{BASE}\n[[fault]]\nat = \"5s\"\naction = \"kill\"\ntarget = \"origin\"\nindex = 1\n\n[[fault]]\nat = \"12s\"\naction = \"rollout_restart\"\ntarget = \"edge\"\n"
        );
        assert_problem(&text, "fault[0].index", "origin 1 does not exist", 21);
        assert_problem(
            &text,
            "fault[1].at",
            "not before the end of the run (10s)",
            24,
        );
        assert_problem(
            &text,
            "fault[1].action",
            "\"rollout_restart\" acts on a cluster workload, and this scenario has no [kube]",
            25,
        );
        let located = problems(&text)
            .into_iter()
            .find(|p| p.field == "fault[0].index")
            .unwrap();
        assert!(
            located
                .to_string()
                .starts_with("s.toml:21:9: field `fault[0].index`"),
            "{located}"
        );
    }

    #[test]
    fn backoff_below_the_floor() {
        let text = BASE.replace(
            "publishers = \"cams\"",
            "publishers = \"cams\"\nreconnect = { backoff = \"50ms\" }",
        );
        assert_problem(
            &text,
            "players[0].reconnect.backoff",
            "50ms is below the floor of 100ms",
            15,
        );
    }
}
