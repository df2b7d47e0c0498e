//! Everything a run does before its clock starts: the output directory, the local xiu topology,
//! the kubeconfig, synthetic media, the HTTP client and the client event loops. All of it can be
//! slow; none of it is measured.

use super::endpoints::{Endpoints, stream_name};
use super::loops::ClientLoops;
use super::{RunError, RunOptions};
use crate::local::{LocalTopology, find_xiu_binary};
use crate::media::aac::{AudioParams, SyntheticAudio};
use crate::media::h264::{SyntheticVideo, VideoParams};
use crate::metrics::timeline::TimelineWriter;
use crate::metrics::{GroupMetrics, PlayerStats, PublisherStats};
use crate::player::HttpClients;
use crate::report::{OutputDir, OutputError};
use crate::rtmp::url::RtmpBase;
use crate::scenario::plan::{Plan, Shape};
use crate::scenario::{PlayerGroup, PublisherGroup, Scenario};
use std::path::PathBuf;
use std::sync::Arc;

pub(super) struct PublisherGroupRun {
    pub(super) config: PublisherGroup,
    pub(super) shape: Shape,
    pub(super) streams: Vec<String>,
    pub(super) video: SyntheticVideo,
    pub(super) audio: Option<SyntheticAudio>,
    pub(super) metrics: Arc<GroupMetrics<PublisherStats>>,
}

pub(super) struct PlayerGroupRun {
    pub(super) config: PlayerGroup,
    pub(super) shape: Shape,
    pub(super) streams: Arc<Vec<String>>,
    pub(super) metrics: Arc<GroupMetrics<PlayerStats>>,
}

/// Who the run is: its name, its id and its output directory.
pub(super) struct Identity {
    pub(super) name: String,
    pub(super) id: String,
    pub(super) out_dir: PathBuf,
}

pub(super) fn identity(scenario: &Scenario, options: &RunOptions) -> Identity {
    let name = scenario.run.name.clone().unwrap_or_else(|| {
        options
            .scenario_file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "run".into())
    });
    let id = format!(
        "{name}-{}",
        compact_timestamp(crate::clock::unix_micros_now())
    );
    let out_dir = options
        .out_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("reports").join(&id));
    Identity { name, id, out_dir }
}

/// What the run holds once setup is done.
pub(super) struct Prepared {
    /// The scenario's plan, worked out once for the whole run.
    pub(super) plan: Plan,
    pub(super) target_label: String,
    pub(super) endpoints: Arc<Endpoints>,
    pub(super) http: HttpClients,
    pub(super) local: Option<LocalTopology>,
    pub(super) kube: Option<crate::k8s::session::Connected>,
    pub(super) publishers: Vec<PublisherGroupRun>,
    pub(super) players: Vec<PlayerGroupRun>,
    /// Taken by the load when it starts, dropped (joining the loop threads) when it stops.
    pub(super) client_loops: Option<Arc<ClientLoops>>,
    /// Taken by the collector.
    pub(super) timeline: Option<TimelineWriter>,
    /// `windows.jsonl`, taken by the collector.
    pub(super) windows: Option<TimelineWriter>,
    /// From `target.publish_token_env`.
    pub(super) publish_token: Option<String>,
}

/// Fails fast on a missing xiu before any output exists.
pub(super) fn check_xiu(scenario: &Scenario) -> Result<Option<PathBuf>, RunError> {
    match &scenario.target.local {
        Some(local) => Ok(Some(find_xiu_binary(local.xiu_bin.as_deref())?)),
        None => Ok(None),
    }
}

pub(super) async fn prepare(
    scenario: &Scenario,
    xiu_bin: Option<PathBuf>,
    out: &OutputDir,
) -> Result<Prepared, RunError> {
    let timeline_path = out.path(OutputDir::TIMELINE);
    let timeline = TimelineWriter::create(&timeline_path).map_err(|source| OutputError::Write {
        path: timeline_path.clone(),
        source,
    })?;
    let windows_path = out.path(OutputDir::WINDOWS);
    let windows = TimelineWriter::create(&windows_path).map_err(|source| OutputError::Write {
        path: windows_path.clone(),
        source,
    })?;
    let kube = match &scenario.kube {
        Some(section) => Some(crate::k8s::session::Connected::connect(section).await?),
        None => None,
    };
    let (local, endpoints, target_label) = match (&scenario.target.local, xiu_bin) {
        (Some(local), Some(bin)) => {
            let app = &scenario.target.app;
            let options = crate::local::TopologyOptions::new(
                local.hls_fragment_secs,
                local.origins,
                local.edges,
                app,
            );
            let topology = LocalTopology::start_with(&bin, options).await?;
            let (endpoints, label) = super::local_endpoints(&topology, app);
            (Some(topology), endpoints, label)
        }
        _ => {
            let e = Endpoints::from_target(&scenario.target);
            let label = e
                .rtmp_publish
                .as_ref()
                .map(|b| format!("rtmp://{}", b.addr()))
                .or_else(|| e.flv_base.first().cloned())
                .or_else(|| e.hls_base.first().cloned())
                .unwrap_or_else(|| "remote".into());
            (None, e, label)
        }
    };
    let mut prepared = prepare_load(scenario, endpoints, target_label)?;
    prepared.local = local;
    prepared.kube = kube;
    prepared.timeline = Some(timeline);
    prepared.windows = Some(windows);
    Ok(prepared)
}

/// What the load needs, against `endpoints`: the groups with their synthetic media, the HTTP
/// client and the client event loops. A worker of a distributed run prepares only this.
pub(super) fn prepare_load(
    scenario: &Scenario,
    endpoints: Endpoints,
    target_label: String,
) -> Result<Prepared, RunError> {
    let plan = Plan::of(scenario);
    let publishers = scenario
        .publishers
        .iter()
        .zip(&plan.publishers)
        .map(|(g, shape)| publisher_group(g, shape.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let players: Vec<PlayerGroupRun> = scenario
        .players
        .iter()
        .zip(&plan.players)
        .map(|(g, shape)| PlayerGroupRun {
            streams: Arc::new(match (&g.publishers, &g.streams) {
                (Some(group), _) => publishers
                    .iter()
                    .find(|p| &p.config.name == group)
                    .map(|p| p.streams.clone())
                    .unwrap_or_default(),
                (None, Some(list)) => list.clone(),
                (None, None) => Vec::new(),
            }),
            shape: shape.clone(),
            config: g.clone(),
            metrics: GroupMetrics::new(),
        })
        .collect();
    let peak_players: usize = players.iter().map(|p| p.shape.peak() as usize).sum();
    let client_loops = Arc::new(
        ClientLoops::sized_for(peak_players)
            .map_err(|e| RunError::Setup(format!("cannot start the client event loops: {e}")))?,
    );
    Ok(Prepared {
        plan,
        target_label,
        endpoints: Arc::new(endpoints),
        http: build_http_client(scenario)?,
        local: None,
        kube: None,
        publishers,
        players,
        publish_token: publish_token(scenario)?,
        client_loops: Some(client_loops),
        timeline: None,
        windows: None,
    })
}

/// The publish token from the environment variable `target.publish_token_env` names.
fn publish_token(scenario: &Scenario) -> Result<Option<String>, RunError> {
    let Some(var) = &scenario.target.publish_token_env else {
        return Ok(None);
    };
    match std::env::var(var) {
        Ok(token) if !token.is_empty() => Ok(Some(token)),
        _ => Err(RunError::Setup(format!(
            "target.publish_token_env: the environment variable {var} is not set (it holds the \
             origin's publish token, e.g. from the xiu-publish-token Secret)"
        ))),
    }
}

fn publisher_group(g: &PublisherGroup, shape: Shape) -> Result<PublisherGroupRun, RunError> {
    let media_error = |e: &dyn std::fmt::Display| RunError::Media {
        group: g.name.clone(),
        message: e.to_string(),
    };
    let video = SyntheticVideo::new(&VideoParams {
        width: g.video.width,
        height: g.video.height,
        fps: g.video.fps,
        bitrate_bps: g.video.bitrate.bps(),
        gop_frames: ((g.video.gop.0.as_secs_f64() * g.video.fps as f64).round() as u32).max(1),
    })
    .map_err(|e| media_error(&e))?;
    let audio = if g.audio.enabled {
        Some(
            SyntheticAudio::new(&AudioParams {
                bitrate_bps: g.audio.bitrate.bps(),
            })
            .map_err(|e| media_error(&e))?,
        )
    } else {
        None
    };
    Ok(PublisherGroupRun {
        streams: publisher_streams(g, &shape),
        config: g.clone(),
        shape,
        video,
        audio,
        metrics: GroupMetrics::new(),
    })
}

/// The streams a publisher group publishes: one per slot of its plan (`shape`).
pub(super) fn publisher_streams(g: &PublisherGroup, shape: &Shape) -> Vec<String> {
    (0..shape.peak())
        .map(|i| stream_name(&g.stream, i))
        .collect()
}

/// The publish address, checked before any load starts.
pub(super) fn publish_base(
    endpoints: &Endpoints,
    publishers: usize,
) -> Result<Option<RtmpBase>, RunError> {
    match (&endpoints.rtmp_publish, publishers) {
        (_, 0) => Ok(None),
        (Some(base), _) => Ok(Some(base.clone())),
        (None, _) => Err(RunError::Setup("no rtmp_publish address".into())),
    }
}

/// The run's HTTP clients: the rustls config HTTP-FLV and HLS viewers wrap their own
/// connections in, honouring `target.tls`, made once.
fn build_http_client(scenario: &Scenario) -> Result<HttpClients, RunError> {
    let tls = &scenario.target.tls;
    let ca_error = |ca: &std::path::Path, e: &dyn std::fmt::Display| {
        RunError::Setup(format!("target.tls.ca_file {}: {e}", ca.display()))
    };
    let ca_pem = match &tls.ca_file {
        Some(ca) => Some(std::fs::read(ca).map_err(|e| ca_error(ca, &e))?),
        None => None,
    };
    let config = crate::player::tls::client_config(ca_pem.as_deref(), tls.insecure_skip_verify)
        .map_err(|e| match &tls.ca_file {
            Some(ca) => ca_error(ca, &e),
            None => RunError::Setup(e.to_string()),
        })?;
    Ok(HttpClients {
        tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
    })
}

fn compact_timestamp(unix_micros: u64) -> String {
    // 2026-11-25T19:55:33.000Z -> 20261125-195533
    let s = crate::clock::rfc3339_from_unix_micros(unix_micros);
    format!(
        "{}{}{}-{}{}{}",
        &s[0..4],
        &s[5..7],
        &s[8..10],
        &s[11..13],
        &s[14..16],
        &s[17..19]
    )
}
