//! Group controllers: keep as many client slots running as the plan asks for at each moment, and
//! run each slot's sessions with the reconnect policy.

use super::loops::ClientLoops;
use crate::scenario::ReconnectPolicy;
use crate::scenario::plan::Shape;
use crate::scenario::shard::Shard;
use crate::session::SessionEnd;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How often the controller compares active slots with the plan.
const CONTROL_PERIOD: Duration = Duration::from_millis(100);

/// Where a group's slots run.
#[derive(Clone, Default)]
pub enum Placement {
    /// On the runtime the controller runs on.
    #[default]
    Here,
    /// Dealt out over the client event loops.
    Loops(Arc<ClientLoops>),
}

/// Runs slots following `shape` until `cancel`. `spawn_slot(index, token)` returns the slot's
/// future; a ramp-down cancels the newest slots first. Only the slots `shard` owns run here: the
/// plan's other slots are counted (so slot numbers and ramp-downs agree with every other worker)
/// but left to their workers.
pub async fn control<F, Fut>(
    shape: Shape,
    run_start: tokio::time::Instant,
    cancel: CancellationToken,
    placement: Placement,
    shard: Shard,
    mut spawn_slot: F,
) where
    F: FnMut(u32, CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut tasks = JoinSet::new();
    // One entry per slot of the plan; `None` for the slots other workers run.
    let mut slots: Vec<Option<CancellationToken>> = Vec::new();
    let mut ticker = tokio::time::interval(CONTROL_PERIOD);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let want = shape.target_at(run_start.elapsed()) as usize;
        while slots.len() < want {
            let index = slots.len() as u32;
            if !shard.owns(index) {
                slots.push(None);
                continue;
            }
            let token = cancel.child_token();
            let slot = spawn_slot(index, token.clone());
            match &placement {
                Placement::Here => tasks.spawn(slot),
                Placement::Loops(loops) => tasks.spawn_on(slot, loops.next_handle()),
            };
            slots.push(Some(token));
        }
        while slots.len() > want {
            if let Some(Some(t)) = slots.pop() {
                t.cancel();
            }
        }
        // Reap finished tasks so the set does not grow over a long run.
        while tasks.try_join_next().is_some() {}
    }
    for t in slots.iter().flatten() {
        t.cancel();
    }
    while tasks.join_next().await.is_some() {}
}

/// What a slot does after a session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Stop,
    /// Same client tries again after the delay (counts as a reconnect).
    Retry(Duration),
    /// The client gave up or left; a new one takes the slot after the delay.
    Replace(Duration),
}

/// The reconnect policy as a pure decision. `attempts` is the number of consecutive failures.
pub fn decide(end: SessionEnd, attempts: &mut u32, policy: &ReconnectPolicy) -> Next {
    match end {
        SessionEnd::Cancelled => Next::Stop,
        SessionEnd::Completed => {
            *attempts = 0;
            Next::Replace(Duration::ZERO)
        }
        SessionEnd::Failed(_) if *attempts < policy.max_attempts => {
            *attempts += 1;
            let factor = 1u32 << (*attempts - 1).min(6);
            // The backoff comes from the scenario file: saturate rather than overflow.
            Next::Retry(policy.backoff.0.saturating_mul(factor))
        }
        SessionEnd::Failed(_) => {
            *attempts = 0;
            Next::Replace(policy.backoff.0)
        }
    }
}

/// Sleeps unless cancelled first; returns false when cancelled.
pub async fn pause(d: Duration, cancel: &CancellationToken) -> bool {
    if d.is_zero() {
        return !cancel.is_cancelled();
    }
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ErrorKind;
    use crate::units::HumanDuration;

    #[test]
    fn reconnects_back_off_then_give_up() {
        let policy = ReconnectPolicy {
            max_attempts: 2,
            backoff: HumanDuration::secs(1),
        };
        let mut attempts = 0;
        let fail = SessionEnd::Failed(ErrorKind::Eof);
        assert_eq!(
            decide(fail, &mut attempts, &policy),
            Next::Retry(Duration::from_secs(1))
        );
        assert_eq!(
            decide(fail, &mut attempts, &policy),
            Next::Retry(Duration::from_secs(2))
        );
        assert_eq!(
            decide(fail, &mut attempts, &policy),
            Next::Replace(Duration::from_secs(1))
        );
        assert_eq!(attempts, 0);
        let huge = ReconnectPolicy {
            max_attempts: 5,
            backoff: HumanDuration(Duration::MAX / 2),
        };
        let mut tries = 2;
        assert_eq!(decide(fail, &mut tries, &huge), Next::Retry(Duration::MAX));
        assert_eq!(
            decide(SessionEnd::Cancelled, &mut attempts, &policy),
            Next::Stop
        );
        assert_eq!(
            decide(SessionEnd::Completed, &mut attempts, &policy),
            Next::Replace(Duration::ZERO)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn controller_follows_the_ramp_up_and_down() {
        use crate::scenario::Stage;
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let shape = Shape::Ramp(vec![
            Stage {
                duration: HumanDuration::secs(1),
                target: 4,
            },
            Stage {
                duration: HumanDuration::secs(1),
                target: 4,
            },
            Stage {
                duration: HumanDuration::secs(1),
                target: 1,
            },
            Stage {
                duration: HumanDuration::secs(1),
                target: 1,
            },
        ]);
        let cancel = CancellationToken::new();
        let (r, p) = (running.clone(), peak.clone());
        let start = tokio::time::Instant::now();
        let placement = Placement::default();
        let controller = tokio::spawn(control(
            shape,
            start,
            cancel.clone(),
            placement,
            Shard::WHOLE,
            move |_, token| {
                let (r, p) = (r.clone(), p.clone());
                async move {
                    let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                    p.fetch_max(now, Ordering::SeqCst);
                    token.cancelled().await;
                    r.fetch_sub(1, Ordering::SeqCst);
                }
            },
        ));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(running.load(Ordering::SeqCst), 4);
        tokio::time::sleep(Duration::from_millis(2000)).await;
        assert_eq!(running.load(Ordering::SeqCst), 1);
        cancel.cancel();
        controller.await.unwrap();
        assert_eq!(running.load(Ordering::SeqCst), 0);
        assert_eq!(peak.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn sharded_controllers_together_run_what_one_would() {
        use crate::scenario::Stage;
        use std::collections::BTreeSet;
        use std::sync::{Arc, Mutex};
        let stage = |secs, target| Stage {
            duration: HumanDuration::secs(secs),
            target,
        };
        let shape = Shape::Ramp(vec![stage(1, 7), stage(1, 7), stage(1, 2), stage(1, 2)]);
        let cancel = CancellationToken::new();
        let start = tokio::time::Instant::now();
        // Which slots are open right now, on any worker.
        let open: Arc<Mutex<BTreeSet<u32>>> = Arc::default();
        let mut controllers = Vec::new();
        for index in 0..3 {
            let open = open.clone();
            controllers.push(tokio::spawn(control(
                shape.clone(),
                start,
                cancel.clone(),
                Placement::default(),
                Shard::new(index, 3).unwrap(),
                move |slot, token| {
                    let open = open.clone();
                    async move {
                        assert!(
                            open.lock().unwrap().insert(slot),
                            "slot {slot} opened twice"
                        );
                        token.cancelled().await;
                        open.lock().unwrap().remove(&slot);
                    }
                },
            )));
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(*open.lock().unwrap(), (0..7).collect());
        tokio::time::sleep(Duration::from_millis(2000)).await;
        // The ramp-down closed the newest slots, whichever worker held them.
        assert_eq!(*open.lock().unwrap(), (0..2).collect());
        cancel.cancel();
        for c in controllers {
            c.await.unwrap();
        }
        assert!(open.lock().unwrap().is_empty());
    }
}
