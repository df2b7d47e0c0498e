//! Which local edges take new viewers: the local topology's Service endpoints. The kubelet
//! ([`super::kubelet`]) takes an unready edge out and puts it back; each new viewer session picks
//! its edge here.
//!
//! Lock-free: one atomic flag per edge, read once per new session (the common case, its own edge
//! ready, is one load), written only when an edge's readiness changes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Clone)]
pub struct Rotation(Arc<[AtomicBool]>);

impl Rotation {
    /// `edges` edges, all in rotation (the topology starts only once every edge is ready).
    pub fn all_ready(edges: usize) -> Rotation {
        Rotation((0..edges).map(|_| AtomicBool::new(true)).collect())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn is_ready(&self, edge: usize) -> bool {
        self.0.get(edge).is_some_and(|r| r.load(Ordering::Relaxed))
    }

    /// Puts edge `edge` in or out; whether that changed anything.
    pub fn set(&self, edge: usize, ready: bool) -> bool {
        self.0
            .get(edge)
            .is_some_and(|r| r.swap(ready, Ordering::Relaxed) != ready)
    }

    /// The edge viewer number `viewer` uses: its own (`viewer % edges`, the spread without a
    /// kubelet) while that one is ready, else the ready edges share its viewers in turn. With no
    /// edge ready it keeps its own, as a Service without endpoints fails the connection: the
    /// session fails and the viewer retries.
    pub fn pick(&self, viewer: usize) -> usize {
        let n = self.0.len();
        if n == 0 {
            return 0;
        }
        let own = viewer % n;
        if self.is_ready(own) {
            return own;
        }
        let ready = (0..n).filter(|i| self.is_ready(*i)).count();
        if ready == 0 {
            return own;
        }
        (0..n)
            .filter(|i| self.is_ready(*i))
            .nth((viewer / n) % ready)
            .unwrap_or(own)
    }
}

impl std::fmt::Debug for Rotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ready: Vec<usize> = (0..self.len()).filter(|i| self.is_ready(*i)).collect();
        write!(f, "Rotation {{ edges: {}, ready: {ready:?} }}", self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewers_keep_their_edge_while_it_is_ready_and_share_the_ready_ones_otherwise() {
        let r = Rotation::all_ready(3);
        let picks = |r: &Rotation| (0..9).map(|v| r.pick(v)).collect::<Vec<_>>();
        assert_eq!(picks(&r), [0, 1, 2, 0, 1, 2, 0, 1, 2]);
        assert!(r.set(1, false));
        assert!(!r.set(1, false), "already out");
        let p = picks(&r);
        assert!(!p.contains(&1), "{p:?}");
        // The viewers of edge 1 are spread over 0 and 2, the others stay where they were.
        assert_eq!(p, [0, 0, 2, 0, 2, 2, 0, 0, 2]);
        r.set(0, false);
        r.set(2, false);
        assert_eq!(
            picks(&r),
            [0, 1, 2, 0, 1, 2, 0, 1, 2],
            "none ready: own edge"
        );
        assert!(r.set(1, true));
        assert_eq!(picks(&r), [1; 9]);
        assert_eq!(format!("{r:?}"), "Rotation { edges: 3, ready: [1] }");
        assert_eq!(Rotation::all_ready(0).pick(5), 0);
    }
}
