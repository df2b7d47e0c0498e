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

/// A ready list that does not fit the rotation it is applied to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ready edges {list:?}: not a comma-separated list of edge numbers below {edges}")]
pub struct ReadyListError {
    pub list: String,
    pub edges: usize,
}

impl Rotation {
    /// The edges in rotation as `0,2` (empty when none is): how a coordinator hands its
    /// kubelet's view to worker processes, whose viewers pick edges with a rotation of their own.
    pub fn ready_list(&self) -> String {
        (0..self.len())
            .filter(|i| self.is_ready(*i))
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Puts exactly the edges of `list` (as [`Rotation::ready_list`] writes it) in rotation;
    /// nothing changes when the list does not parse or names an edge this rotation lacks.
    pub fn apply_ready_list(&self, list: &str) -> Result<(), ReadyListError> {
        let refused = || ReadyListError {
            list: list.to_string(),
            edges: self.len(),
        };
        let mut ready = vec![false; self.len()];
        for part in list.split(',').filter(|p| !p.is_empty()) {
            let edge: usize = part.trim().parse().map_err(|_| refused())?;
            *ready.get_mut(edge).ok_or_else(refused)? = true;
        }
        for (edge, r) in ready.into_iter().enumerate() {
            self.set(edge, r);
        }
        Ok(())
    }
}

/// A rotation in a file (a worker's `--endpoints`) is its number of edges: it starts with all of
/// them ready, as the topology does, and follows the coordinator's ready lists from then on.
pub mod as_edge_count {
    use super::Rotation;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(r: &Option<Rotation>, s: S) -> Result<S::Ok, S::Error> {
        r.as_ref().map(Rotation::len).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Rotation>, D::Error> {
        Ok(Option::<usize>::deserialize(d)?.map(Rotation::all_ready))
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
    fn a_ready_list_carries_the_rotation_to_another_process() {
        let here = Rotation::all_ready(3);
        here.set(1, false);
        assert_eq!(here.ready_list(), "0,2");
        let there = Rotation::all_ready(3);
        there.apply_ready_list(&here.ready_list()).unwrap();
        assert_eq!(there.ready_list(), "0,2");
        there.apply_ready_list("").unwrap();
        assert_eq!(there.ready_list(), "", "no edge ready");
        there.apply_ready_list("1").unwrap();
        for bad in ["3", "x", "0,,-1"] {
            assert!(there.apply_ready_list(bad).is_err(), "{bad}");
        }
        assert_eq!(there.ready_list(), "1", "a refused list changes nothing");
    }

    #[test]
    fn a_rotation_travels_in_a_file_as_its_edge_count() {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct File {
            #[serde(default, with = "as_edge_count")]
            rotation: Option<Rotation>,
        }
        let text = serde_json::to_string(&File {
            rotation: Some(Rotation::all_ready(2)),
        })
        .unwrap();
        assert_eq!(text, r#"{"rotation":2}"#);
        let back: File = serde_json::from_str(&text).unwrap();
        assert_eq!(back.rotation.unwrap().ready_list(), "0,1");
        let none: File = serde_json::from_str("{}").unwrap();
        assert!(none.rotation.is_none());
    }

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
