//! Racing a session against its cancellation token without paying for it on every wake-up.
//!
//! `tokio::select!` polls every branch each time the task wakes. A viewer wakes once per frame, and
//! polling its token each time (a lock inside the token's tree and its `Notify`) was ~3 % of a
//! viewer's CPU in a profile of a thousand. Here the token's future gets a waker of its own that
//! flags its wake-ups, and is polled only when flagged.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Runs `work` until it finishes (`Some`) or `cancel` fires first (`None`, and `work` is dropped).
pub async fn until_cancelled<F: Future>(cancel: &CancellationToken, work: F) -> Option<F::Output> {
    UntilCancelled {
        work: Box::pin(work),
        cancelled: Box::pin(cancel.clone().cancelled_owned()),
        flag: Arc::new(Flag::default()),
        task: None,
    }
    .await
}

struct UntilCancelled<F> {
    work: Pin<Box<F>>,
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
    flag: Arc<Flag>,
    /// The task's waker last handed to `flag`; compared (cheaply) on every poll.
    task: Option<Waker>,
}

/// The cancellation future's waker: notes that it fired, then wakes the task.
#[derive(Default)]
struct Flag {
    fired: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        if let Some(task) = self.task.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            task.wake_by_ref();
        }
    }
}

impl<F: Future> Future for UntilCancelled<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let first = this.task.is_none();
        if this.task.as_ref().is_none_or(|w| !w.will_wake(cx.waker())) {
            this.task = Some(cx.waker().clone());
            *this.flag.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
        }
        // Cancellation first (as `select!` with `biased`), but only when its waker fired.
        if first || this.flag.fired.swap(false, Ordering::AcqRel) {
            let waker = Waker::from(Arc::clone(&this.flag));
            if this
                .cancelled
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_ready()
            {
                return Poll::Ready(None);
            }
        }
        this.work.as_mut().poll(cx).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[tokio::test]
    async fn work_that_finishes_wins() {
        let cancel = CancellationToken::new();
        assert_eq!(until_cancelled(&cancel, async { 7 }).await, Some(7));
    }

    #[tokio::test]
    async fn an_already_cancelled_token_stops_work_before_it_starts() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let started = AtomicU32::new(0);
        let out = until_cancelled(&cancel, async {
            started.fetch_add(1, Ordering::SeqCst);
        })
        .await;
        assert_eq!((out, started.load(Ordering::SeqCst)), (None, 0));
    }

    #[tokio::test]
    async fn cancelling_wakes_and_drops_work_that_waits_forever() {
        let cancel = CancellationToken::new();
        let (dropped_tx, dropped_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn({
            let cancel = cancel.clone();
            async move {
                until_cancelled(&cancel, async move {
                    let _dropped = dropped_tx;
                    std::future::pending::<()>().await
                })
                .await
            }
        });
        tokio::task::yield_now().await;
        // The parent token: a ramp-down cancels a child, a stopped run the root.
        cancel.cancel();
        assert_eq!(task.await.unwrap(), None);
        assert!(dropped_rx.await.is_err(), "the work was dropped");
    }

    #[tokio::test]
    async fn work_woken_many_times_still_sees_a_later_cancel() {
        let cancel = CancellationToken::new();
        let child = cancel.child_token();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(1);
        let task = tokio::spawn(async move {
            until_cancelled(&child, async move {
                let mut seen = 0;
                while let Some(n) = rx.recv().await {
                    seen += n;
                }
                seen
            })
            .await
        });
        for _ in 0..50 {
            tx.send(1).await.unwrap();
        }
        cancel.cancel();
        assert_eq!(task.await.unwrap(), None);
    }
}
