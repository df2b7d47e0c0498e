//! The relay loop: poll the origins and the edge, plan, start/stop relay tasks.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::health::SharedState;
use super::plan::{Action, Relay, SubState, failures_after_end, plan};
use super::readiness::{Listed, listed_since};
use super::relay::{RelayOutcome, RelaySpec, relay};
use super::streams::StreamKey;
use super::xiu_api::{poll_edge, poll_origin};
use super::{SidecarConfig, SidecarError, deletion_cost};
use crate::rtmp::url::RtmpBase;

/// Housekeeping tick: how soon an ended relay is noticed and a backoff of 500 ms can be honoured,
/// independently of the poll interval.
const TICK: Duration = Duration::from_millis(250);
/// API calls are small; a slow origin must not stall the loop.
const API_TIMEOUT: Duration = Duration::from_secs(2);
/// An origin that keeps the FLV connection open and sends nothing (a publisher gone without a
/// close) is given up after this; the backoff retries.
const FLV_READ_TIMEOUT: Duration = Duration::from_secs(5);

pub fn run_loop(
    config: SidecarConfig,
    state: Arc<SharedState>,
    mut stop: watch::Receiver<bool>,
) -> Result<impl Future<Output = ()>, SidecarError> {
    let api = reqwest::Client::builder().timeout(API_TIMEOUT).build()?;
    let flv = reqwest::Client::builder()
        .connect_timeout(API_TIMEOUT)
        .read_timeout(FLV_READ_TIMEOUT)
        .build()?;
    let edge = RtmpBase {
        host: config.edge_rtmp.ip().to_string(),
        port: config.edge_rtmp.port(),
    };
    let (viewers_tx, viewers_rx) = watch::channel(None);
    if let Some(pod) = config.pod.clone() {
        tokio::spawn(deletion_cost::run(pod, viewers_rx, stop.clone()));
    }
    Ok(async move {
        let n = config.origins.len();
        let mut relays: BTreeMap<StreamKey, Relay> = BTreeMap::new();
        let mut tasks: BTreeMap<StreamKey, JoinHandle<RelayOutcome>> = BTreeMap::new();
        let mut lists: Vec<Option<BTreeSet<StreamKey>>> = vec![None; n];
        let mut listed: Vec<Option<Listed>> = vec![None; n];
        let mut origin_up: Vec<Option<bool>> = vec![None; n];
        let mut last_poll: Option<Instant> = None;
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.changed() => break,
            }
            // A relay that just ended forces a fresh poll before any restart: the stream may
            // have left this origin for another one.
            if reap_finished(&mut relays, &mut tasks).await {
                last_poll = None;
            }
            let now = Instant::now();
            if last_poll.is_none_or(|t| now.duration_since(t) >= config.poll_interval) {
                last_poll = Some(now);
                let origin_polls = futures::future::join_all(
                    config
                        .origins
                        .iter()
                        .map(|o| poll_origin(&api, &o.api, &config.app)),
                );
                let (answers, edge_view) =
                    tokio::join!(origin_polls, poll_edge(&api, &config.edge_api, &config.app));
                let now = Instant::now();
                let mut synced = false;
                for (i, answer) in answers.into_iter().enumerate() {
                    let up = answer.is_ok();
                    if origin_up[i] != Some(up) {
                        match &answer {
                            Ok(_) => {
                                tracing::info!(origin = %config.origins[i].api, "origin answers")
                            }
                            Err(e) => {
                                tracing::warn!(origin = %config.origins[i].api, error = %e, "origin does not answer")
                            }
                        }
                        origin_up[i] = Some(up);
                    }
                    match answer {
                        Ok(publishers) => {
                            synced = true;
                            lists[i] = Some(publishers.keys().cloned().collect());
                            listed[i] = Some(listed_since(listed[i].as_ref(), &publishers, now));
                        }
                        Err(_) => {
                            lists[i] = None;
                            listed[i] = None;
                        }
                    }
                }
                if let Err(e) = &edge_view {
                    tracing::warn!(error = %e, "the edge's API does not answer");
                }
                let edge_view = edge_view.ok();
                state.edge_polled(edge_view.is_some());
                let _ = viewers_tx.send(edge_view.as_ref().map(|e| e.viewers));
                state.update(|s| {
                    s.origins = listed.clone();
                    s.edge = edge_view;
                    s.synced |= synced;
                });
            }
            for action in plan(&lists, &relays, Instant::now()) {
                match action {
                    Action::Stop(key) => {
                        tracing::info!(stream = %key, "no origin lists the stream: relay stopped");
                        if let Some(t) = tasks.remove(&key) {
                            t.abort();
                        }
                        relays.remove(&key);
                    }
                    Action::Start {
                        key,
                        origin,
                        failures,
                    } => {
                        if let Some(t) = tasks.remove(&key) {
                            tracing::info!(stream = %key, to = %config.origins[origin].api, "stream moved to another origin");
                            t.abort();
                        }
                        let spec = RelaySpec::new(
                            &config.origins[origin].flv,
                            edge.clone(),
                            key.clone(),
                            config.relay_token.clone(),
                        );
                        tasks.insert(key.clone(), tokio::spawn(relay(flv.clone(), spec)));
                        relays.insert(
                            key,
                            Relay {
                                origin,
                                state: SubState::Running {
                                    since: Instant::now(),
                                    failures,
                                },
                            },
                        );
                    }
                }
            }
            state.mark_tick();
        }
        for (_, t) in tasks {
            t.abort();
        }
    })
}

/// Turns finished tasks into `Ended` states with an updated failure count; true if any ended.
async fn reap_finished(
    relays: &mut BTreeMap<StreamKey, Relay>,
    tasks: &mut BTreeMap<StreamKey, JoinHandle<RelayOutcome>>,
) -> bool {
    let done: Vec<StreamKey> = tasks
        .iter()
        .filter(|(_, t)| t.is_finished())
        .map(|(k, _)| k.clone())
        .collect();
    let any = !done.is_empty();
    for key in done {
        let Some(handle) = tasks.remove(&key) else {
            continue;
        };
        let outcome = match handle.await {
            Ok(o) => o,
            Err(e) => RelayOutcome {
                bytes: 0,
                ran_for: Duration::ZERO,
                end: super::relay::RelayEnd::Origin(format!("relay task failed: {e}")),
            },
        };
        let Some(relay) = relays.get_mut(&key) else {
            continue;
        };
        let previous = match relay.state {
            SubState::Running { failures, .. } | SubState::Ended { failures, .. } => failures,
        };
        let failures = failures_after_end(previous, outcome.ran_for, outcome.bytes);
        tracing::info!(stream = %key, bytes = outcome.bytes, failures, end = ?outcome.end, "relay ended");
        relay.state = SubState::Ended {
            ended: Instant::now(),
            failures,
        };
    }
    any
}
