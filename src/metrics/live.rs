//! Live metrics shared by a group's client tasks and the run's collector.
//!
//! Clients record into the group's current one-second window under a short lock (a few
//! histogram increments); the collector swaps the window out once a second, writes it to the
//! timeline and folds it into the run totals. Memory is per group, never per sample or client.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
pub struct GroupMetrics<S> {
    active: AtomicU64,
    window: Mutex<S>,
}

impl<S: Default> GroupMetrics<S> {
    pub fn new() -> Arc<Self> {
        Arc::new(GroupMetrics {
            active: AtomicU64::new(0),
            window: Mutex::new(S::default()),
        })
    }

    /// Runs `f` on the current window. Keep `f` short: it holds the group's lock.
    pub fn record<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        let mut guard = self.window.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    /// Hands the current window to the collector and starts a new one.
    pub fn take_window(&self) -> S {
        let mut guard = self.window.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *guard)
    }

    pub fn active(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }

    /// Counts a connected client until the returned guard drops (also on panic or cancel).
    pub fn active_guard(self: &Arc<Self>) -> ActiveGuard<S> {
        self.active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(Arc::clone(self))
    }
}

pub struct ActiveGuard<S>(Arc<GroupMetrics<S>>);

impl<S> Drop for ActiveGuard<S> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::stats::PlayerStats;

    #[test]
    fn windows_are_handed_over_and_active_counts_follow_guards() {
        let g = GroupMetrics::<PlayerStats>::new();
        {
            let _a = g.active_guard();
            let _b = g.active_guard();
            assert_eq!(g.active(), 2);
            g.record(|s| s.frames += 3);
        }
        assert_eq!(g.active(), 0);
        assert_eq!(g.take_window().frames, 3);
        assert_eq!(g.take_window().frames, 0);
    }
}
