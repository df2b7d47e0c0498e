//! Client slots: each slot runs one publisher or viewer after another, with start jitter, churn
//! and the reconnect policy.

use super::endpoints::Endpoints;
use super::slots::{Next, decide, pause};
use crate::clock::RunClock;
use crate::media::aac::SyntheticAudio;
use crate::media::h264::SyntheticVideo;
use crate::metrics::{ErrorKind, GroupMetrics, PlayerStats, PublisherStats};
use crate::player::{HttpClients, PlayerLimits, PlayerTiming};
use crate::rtmp::publisher::{PublisherSpec, publish_session};
use crate::rtmp::url::RtmpBase;
use crate::scenario::select::{Selector, viewer_number, viewer_rng};
use crate::scenario::{PlayerGroup, Protocol, PublisherGroup};
use crate::session::{SessionEnd, catch_panic};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub(super) struct PublisherSlotContext {
    pub(super) base: RtmpBase,
    pub(super) app: String,
    pub(super) streams: Vec<String>,
    /// The origin's publish token, sent as `?token=` (xiu's RTMP push auth).
    pub(super) token: Option<String>,
    pub(super) video: SyntheticVideo,
    pub(super) audio: Option<SyntheticAudio>,
    pub(super) metrics: Arc<GroupMetrics<PublisherStats>>,
    pub(super) clock: RunClock,
    pub(super) config: PublisherGroup,
    pub(super) seed: u64,
}

pub(super) async fn publisher_slot(
    ctx: Arc<PublisherSlotContext>,
    index: u32,
    cancel: CancellationToken,
) {
    let mut rng = StdRng::seed_from_u64(ctx.seed ^ index as u64);
    let jitter = ctx.config.start_jitter.0;
    if !jitter.is_zero() && !pause(jitter.mul_f64(rng.random::<f64>()), &cancel).await {
        return;
    }
    let spec = PublisherSpec {
        base: ctx.base.clone(),
        app: ctx.app.clone(),
        stream: publish_name(
            &ctx.streams[index as usize % ctx.streams.len().max(1)],
            ctx.token.as_deref(),
        ),
        video: ctx.video.clone(),
        audio: ctx.audio.clone(),
        connect_timeout: ctx.config.connect_timeout.0,
    };
    let mut attempts = 0;
    loop {
        let tag: u32 = rng.random();
        let session = publish_session(&spec, &ctx.metrics, &ctx.clock, &cancel, tag);
        let end = survive_panic(session, |message| {
            ctx.metrics
                .record(|s| s.add_error(ErrorKind::Panic, message))
        })
        .await;
        let delay = match decide(end, &mut attempts, &ctx.config.reconnect) {
            Next::Stop => return,
            // A publisher never gives up while its slot exists: it keeps retrying at the
            // policy's slowest pace.
            Next::Retry(d) | Next::Replace(d) => d,
        };
        if !pause(delay, &cancel).await {
            return;
        }
    }
}

pub(super) struct PlayerSlotContext {
    pub(super) endpoints: Arc<Endpoints>,
    pub(super) http: HttpClients,
    pub(super) streams: Arc<Vec<String>>,
    pub(super) selector: Selector,
    /// The group's seed: each viewer's draws derive from it and the viewer's number.
    pub(super) seed: u64,
    /// The group's slot count at its peak: numbers the audience (see `viewer_number`).
    pub(super) slots: u32,
    pub(super) timing_base: PlayerTiming,
    pub(super) metrics: Arc<GroupMetrics<PlayerStats>>,
    pub(super) clock: RunClock,
    pub(super) config: PlayerGroup,
}

impl PlayerSlotContext {
    /// The `session`-th viewer of slot `slot`: which stream, how long they stay, how long they
    /// wait before joining. The same on whichever worker the slot runs.
    fn new_viewer(&self, slot: u32, session: u64) -> (String, Option<Duration>, Duration) {
        let viewer = viewer_number(slot, session, self.slots);
        let rng = &mut viewer_rng(self.seed, viewer);
        let index = self.selector.pick(viewer, rng);
        let stream = self.streams.get(index).cloned().unwrap_or_default();
        let length = self.config.session.as_ref().map(|s| {
            let span = s.max.0.saturating_sub(s.min.0);
            // Saturating: float rounding near `Duration::MAX` must not overflow the sum.
            s.min.0.saturating_add(span.mul_f64(rng.random::<f64>()))
        });
        let jitter = self.config.start_jitter.0.mul_f64(rng.random::<f64>());
        (stream, length, jitter)
    }
}

pub(super) async fn player_slot(
    ctx: Arc<PlayerSlotContext>,
    index: u32,
    cancel: CancellationToken,
) {
    let viewer = index as usize;
    let mut viewers_so_far = 0;
    let (mut stream, mut length, jitter) = ctx.new_viewer(index, viewers_so_far);
    if !pause(jitter, &cancel).await {
        return;
    }
    let limits = PlayerLimits {
        connect_timeout: ctx.config.connect_timeout.0,
        max_playlist_bytes: ctx.config.max_playlist_bytes,
        max_segment_bytes: ctx.config.max_segment_bytes,
        max_tag_bytes: ctx.config.max_tag_bytes,
    };
    let mut attempts = 0;
    loop {
        let timing = PlayerTiming {
            session_length: length,
            ..ctx.timing_base.clone()
        };
        let session = play_one(&ctx, &stream, viewer, &timing, &limits, &cancel);
        let end = survive_panic(session, |message| {
            ctx.metrics
                .record(|s| s.add_error(ErrorKind::Panic, message))
        })
        .await;
        let Some(end) = end else {
            return;
        };
        match decide(end, &mut attempts, &ctx.config.reconnect) {
            Next::Stop => return,
            Next::Retry(d) => {
                ctx.metrics.record(|s| s.reconnects += 1);
                if !pause(d, &cancel).await {
                    return;
                }
            }
            Next::Replace(d) => {
                if matches!(end, SessionEnd::Failed(_)) {
                    ctx.metrics.record(|s| s.abandoned += 1);
                }
                viewers_so_far += 1;
                let (s, l, _) = ctx.new_viewer(index, viewers_so_far);
                stream = s;
                length = l;
                if !pause(d, &cancel).await {
                    return;
                }
            }
        }
    }
}

/// One viewer session of the group's protocol; `None` when the group has no RTMP address.
async fn play_one(
    ctx: &PlayerSlotContext,
    stream: &str,
    viewer: usize,
    timing: &PlayerTiming,
    limits: &PlayerLimits,
    cancel: &CancellationToken,
) -> Option<SessionEnd> {
    let end = match ctx.config.protocol {
        Protocol::Flv => {
            let url = ctx.endpoints.flv_url(stream, viewer).unwrap_or_default();
            crate::player::flv::play_flv(
                &ctx.http.tls,
                &url,
                timing,
                limits,
                &ctx.metrics,
                &ctx.clock,
                cancel,
            )
            .await
        }
        Protocol::Hls => {
            let url = ctx.endpoints.hls_url(stream, viewer).unwrap_or_default();
            crate::player::hls::play_hls(
                &ctx.http.tls,
                &url,
                timing,
                limits,
                &ctx.metrics,
                &ctx.clock,
                cancel,
            )
            .await
        }
        Protocol::Rtmp => {
            let base = ctx.endpoints.rtmp_play(viewer)?;
            crate::player::rtmp::play_rtmp(
                base,
                &ctx.endpoints.app,
                stream,
                timing,
                limits,
                &ctx.metrics,
                &ctx.clock,
                cancel,
            )
            .await
        }
    };
    Some(end)
}

/// Runs one session; a panic inside it is counted through `count` (with its message) and ends
/// the session as a failure, so the slot goes on with its plan (a reconnect after the backoff)
/// instead of dying unnoticed.
async fn survive_panic<T: From<SessionEnd>>(
    session: impl std::future::Future<Output = T>,
    count: impl FnOnce(&str),
) -> T {
    match catch_panic(session).await {
        Ok(end) => end,
        Err(panicked) => {
            count(&panicked.message);
            T::from(SessionEnd::Failed(ErrorKind::Panic))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::ReconnectPolicy;
    use crate::units::HumanDuration;

    #[tokio::test]
    async fn a_panicking_session_is_counted_and_the_slot_plans_its_next_one() {
        let metrics = GroupMetrics::<PlayerStats>::new();
        let end: SessionEnd = survive_panic(async { panic!("capacity overflow") }, |message| {
            metrics.record(|s| s.add_error(ErrorKind::Panic, message))
        })
        .await;
        assert_eq!(end, SessionEnd::Failed(ErrorKind::Panic));
        let s = metrics.take_window();
        assert_eq!(s.errors.0["panic"], 1);
        assert_eq!(s.error_examples.0["panic"], "capacity overflow");
        // The slot goes on as after any failure: a reconnect after the backoff.
        let policy = ReconnectPolicy {
            max_attempts: 3,
            backoff: HumanDuration::secs(1),
        };
        let mut attempts = 0;
        assert_eq!(
            decide(end, &mut attempts, &policy),
            Next::Retry(Duration::from_secs(1))
        );
        // A session that does not panic is left alone.
        let fine: Option<SessionEnd> =
            survive_panic(async { Some(SessionEnd::Completed) }, |_| unreachable!()).await;
        assert_eq!(fine, Some(SessionEnd::Completed));
    }
}

/// The name a publisher asks to publish: the stream, with the publish token as xiu reads it
/// (`<stream>?token=<token>`; xiu strips the query from the stream's key).
fn publish_name(stream: &str, token: Option<&str>) -> String {
    match token {
        Some(t) => format!("{stream}?token={t}"),
        None => stream.to_string(),
    }
}

#[cfg(test)]
mod publish_name_tests {
    use super::publish_name;

    #[test]
    fn the_token_rides_in_the_query() {
        assert_eq!(publish_name("cam-1", None), "cam-1");
        assert_eq!(publish_name("cam-1", Some("s3cr3t")), "cam-1?token=s3cr3t");
    }
}
