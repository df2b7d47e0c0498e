//! The loop: poll the origin, plan, start/stop subscriber tasks.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::edge_admin::forget_stream;
use super::health::SharedState;
use super::plan::{Action, SubState, failures_after_end, plan};
use super::streams::{StreamKey, parse_streams};
use super::subscriber::{Outcome, flv_url, subscribe};
use super::{SidecarConfig, SidecarError};

/// Housekeeping tick: how soon an ended subscription is noticed and a
/// backoff of 500 ms can be honoured, independently of the poll interval.
const TICK: Duration = Duration::from_millis(250);
/// Origin API calls are small; a slow origin must not stall the loop.
const API_TIMEOUT: Duration = Duration::from_secs(2);
/// An edge with a phantom stream keeps the FLV connection open with no data;
/// give up after this and let the backoff retry.
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
    let url = format!(
        "{}/api/query_whole_streams?top=1000",
        config.origin_api.trim_end_matches('/')
    );
    Ok(async move {
        let mut subs: BTreeMap<StreamKey, SubState> = BTreeMap::new();
        let mut tasks: BTreeMap<StreamKey, JoinHandle<Outcome>> = BTreeMap::new();
        let mut desired: BTreeSet<StreamKey> = BTreeSet::new();
        let mut last_poll: Option<Instant> = None;
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.changed() => break,
            }
            // A subscription that just ended forces a fresh poll before any
            // restart: re-asking the edge for a stream the origin no longer
            // has (origin restarting) can leave a phantom stream on the edge.
            if reap_finished(&mut subs, &mut tasks).await {
                last_poll = None;
            }
            let now = Instant::now();
            if last_poll.is_none_or(|t| now.duration_since(t) >= config.poll_interval) {
                last_poll = Some(now);
                match poll(&api, &url, &config.app).await {
                    Ok(list) => {
                        desired = list;
                        state.mark_synced();
                    }
                    // Origin unreachable: keep healthy subscriptions, start
                    // nothing new (a pull towards a dead origin can leave a
                    // phantom stream on the edge).
                    Err(e) => {
                        tracing::warn!(error = %e, "origin poll failed");
                        desired = subs
                            .iter()
                            .filter(|(_, s)| matches!(s, SubState::Running { .. }))
                            .map(|(k, _)| k.clone())
                            .collect();
                    }
                }
            }
            for action in plan(&desired, &subs, Instant::now()) {
                match action {
                    Action::Stop(k) => {
                        tracing::info!(stream = %k, "stream left the origin: unsubscribing");
                        if let Some(t) = tasks.remove(&k) {
                            t.abort();
                        }
                        subs.remove(&k);
                        // The edge may keep a phantom copy; make it forget so
                        // the stream's return is pulled afresh.
                        forget(&api, &config.edge_api, &k).await;
                    }
                    Action::Restart(k)
                        if matches!(subs.get(&k), Some(SubState::Ended { stalled: true, .. })) =>
                    {
                        forget(&api, &config.edge_api, &k).await;
                        // Give the edge a backoff period to drop it before asking again.
                        if let Some(SubState::Ended { failures, .. }) = subs.get(&k).copied() {
                            subs.insert(
                                k,
                                SubState::Ended {
                                    ended: Instant::now(),
                                    failures,
                                    stalled: false,
                                },
                            );
                        }
                    }
                    Action::Start(k) | Action::Restart(k) => {
                        let failures = match subs.get(&k) {
                            Some(SubState::Ended { failures, .. }) => *failures,
                            _ => 0,
                        };
                        tracing::info!(stream = %k, failures, "subscribing on the edge");
                        let handle =
                            tokio::spawn(subscribe(flv.clone(), flv_url(&config.edge_flv, &k)));
                        tasks.insert(k.clone(), handle);
                        subs.insert(
                            k,
                            SubState::Running {
                                since: Instant::now(),
                                failures,
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

async fn forget(api: &reqwest::Client, edge_api: &str, key: &StreamKey) {
    match forget_stream(api, edge_api, key).await {
        Ok(true) => tracing::info!(stream = %key, "asked the edge to drop its copy"),
        Ok(false) => {}
        Err(e) => tracing::warn!(stream = %key, error = %e, "cannot reach the edge API"),
    }
}

async fn poll(api: &reqwest::Client, url: &str, app: &str) -> Result<BTreeSet<StreamKey>, String> {
    let resp = api.get(url).send().await.map_err(|e| e.to_string())?;
    let body = resp.text().await.map_err(|e| e.to_string())?;
    parse_streams(&body, app).map_err(|e| e.to_string())
}

/// Turns finished tasks into `Ended` states with an updated failure count;
/// true if any ended.
async fn reap_finished(
    subs: &mut BTreeMap<StreamKey, SubState>,
    tasks: &mut BTreeMap<StreamKey, JoinHandle<Outcome>>,
) -> bool {
    let done: Vec<StreamKey> = tasks
        .iter()
        .filter(|(_, t)| t.is_finished())
        .map(|(k, _)| k.clone())
        .collect();
    let any = !done.is_empty();
    for k in done {
        let Some(handle) = tasks.remove(&k) else {
            continue;
        };
        let outcome = handle.await.unwrap_or(Outcome {
            bytes: 0,
            ran_for: Duration::ZERO,
            stalled: false,
        });
        let previous = match subs.get(&k) {
            Some(SubState::Running { failures, .. }) | Some(SubState::Ended { failures, .. }) => {
                *failures
            }
            None => 0,
        };
        let failures = failures_after_end(previous, outcome.ran_for, outcome.bytes);
        tracing::info!(stream = %k, bytes = outcome.bytes, failures, stalled = outcome.stalled, "subscription ended");
        subs.insert(
            k,
            SubState::Ended {
                ended: Instant::now(),
                failures,
                stalled: outcome.stalled,
            },
        );
    }
    any
}
