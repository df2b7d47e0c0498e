//! Capacity knee results: the last step that passed every threshold, and with the server's
//! resource use at that step, how many pods a target audience needs. Pure: the run's collector
//! feeds judged steps in (the steps themselves are the plan's, `scenario::plan`).

use super::thresholds::ThresholdResult;
use crate::scenario::KneeSection;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepResult {
    pub step: usize,
    /// Clients the step asked for.
    pub target: u32,
    /// Mean clients actually active while judged.
    pub active_mean: f64,
    pub pass: bool,
    pub thresholds: Vec<ThresholdResult>,
    /// Mbit/s received by all players while judged.
    pub mbps_in: f64,
    /// The local xiu processes' CPU (% of one core) and memory while judged; `null` for a
    /// cluster target (use the cluster watch's pod metrics there).
    pub server_cpu_percent: Option<f64>,
    pub server_rss_mib: Option<f64>,
    pub loader_saturated_seconds: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KneeReport {
    pub group: String,
    /// What was stepped: `viewers` (a player group) or `publishers` (ingest capacity).
    #[serde(default)]
    pub clients: KneeClients,
    pub steps: Vec<StepResult>,
    /// The last step that passed every threshold.
    pub knee: Option<StepResult>,
    /// The first step that failed; `null` if the plan ran out first (raise `max`).
    pub broke_at: Option<usize>,
    /// Per viewer at the knee, from the local xiu processes.
    pub cpu_percent_per_viewer: Option<f64>,
    pub rss_kib_per_viewer: Option<f64>,
    pub mbps_per_viewer: Option<f64>,
    /// Servers (pods) behind the measured capacity: 1 local xiu, or the local edges.
    pub servers: u32,
    pub target_audience: Option<u64>,
    pub headroom: f64,
    /// Pods needed for `target_audience` at `headroom`: ceil(audience / (knee per pod × (1 − headroom))).
    pub pods_needed: Option<u64>,
    /// A knee of publishers: the streams to plan for, and the origins they need at `headroom`:
    /// ceil(streams / (knee publishers per origin × (1 − headroom))).
    #[serde(default)]
    pub target_streams: Option<u64>,
    #[serde(default)]
    pub origins_needed: Option<u64>,
    pub note: String,
}

/// What a knee steps up.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KneeClients {
    #[default]
    Viewers,
    Publishers,
}

/// `servers`: the pods behind the measured capacity (edges serving viewers, or origins taking
/// publishers).
pub fn summarise(
    k: &KneeSection,
    clients: KneeClients,
    steps: Vec<StepResult>,
    servers: u32,
) -> KneeReport {
    let broke_at = steps.iter().find(|s| !s.pass).map(|s| s.step);
    let knee = steps.iter().take_while(|s| s.pass).last().cloned();
    let per_viewer = |v: Option<f64>, k: &StepResult| {
        v.filter(|_| k.active_mean > 0.0).map(|v| v / k.active_mean)
    };
    let servers = servers.max(1);
    let needed = |target: Option<u64>| match (&knee, target) {
        (Some(knee), Some(target)) if knee.active_mean > 0.0 => {
            let per_pod = knee.active_mean / servers as f64 * (1.0 - k.headroom);
            (per_pod > 0.0).then(|| (target as f64 / per_pod).ceil() as u64)
        }
        _ => None,
    };
    let (pods_needed, origins_needed) = match clients {
        KneeClients::Viewers => (needed(k.target_audience), None),
        KneeClients::Publishers => (None, needed(k.target_streams)),
    };
    let note = match (&knee, broke_at) {
        (None, Some(_)) => "the first step already failed: start lower".to_string(),
        (None, None) => "no step was judged (run stopped early?)".to_string(),
        (Some(kn), Some(b)) => format!(
            "capacity knee at {} clients ({:.0} active); step {} broke a threshold",
            kn.target,
            kn.active_mean,
            b + 1
        ),
        (Some(kn), None) => format!(
            "no threshold broke up to {} clients: the knee is higher, raise `max`",
            kn.target
        ),
    };
    KneeReport {
        group: k.group.clone(),
        clients,
        target_streams: k.target_streams,
        origins_needed,
        cpu_percent_per_viewer: knee
            .as_ref()
            .and_then(|s| per_viewer(s.server_cpu_percent, s)),
        rss_kib_per_viewer: knee
            .as_ref()
            .and_then(|s| per_viewer(s.server_rss_mib.map(|m| m * 1024.0), s)),
        mbps_per_viewer: knee.as_ref().and_then(|s| per_viewer(Some(s.mbps_in), s)),
        knee,
        broke_at,
        steps,
        servers,
        target_audience: k.target_audience,
        headroom: k.headroom,
        pods_needed,
        note,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::plan::tests::knee_section;

    fn step(i: usize, target: u32, pass: bool) -> StepResult {
        StepResult {
            step: i,
            target,
            active_mean: target as f64,
            pass,
            thresholds: vec![],
            mbps_in: target as f64 * 2.0,
            server_cpu_percent: Some(target as f64 * 0.5),
            server_rss_mib: Some(20.0),
            loader_saturated_seconds: 0,
        }
    }

    #[test]
    fn knee_is_the_last_passing_step_and_sizes_the_fleet() {
        let r = summarise(
            &knee_section(),
            KneeClients::Viewers,
            vec![step(0, 10, true), step(1, 20, true), step(2, 30, false)],
            2,
        );
        assert_eq!(r.knee.as_ref().unwrap().target, 20);
        assert_eq!(r.broke_at, Some(2));
        // 20 viewers over 2 servers = 10 per pod; with 25 % headroom 7.5 per pod; 1000 / 7.5.
        assert_eq!(r.pods_needed, Some(134));
        assert_eq!(r.cpu_percent_per_viewer, Some(0.5));
        assert_eq!(r.mbps_per_viewer, Some(2.0));
        assert!(r.note.contains("knee at 20"), "{}", r.note);
    }

    #[test]
    fn no_break_and_immediate_break_are_explained() {
        let r = summarise(
            &knee_section(),
            KneeClients::Viewers,
            vec![step(0, 10, true)],
            1,
        );
        assert!(r.broke_at.is_none() && r.note.contains("raise `max`"));
        let r = summarise(
            &knee_section(),
            KneeClients::Viewers,
            vec![step(0, 10, false)],
            1,
        );
        assert!(r.knee.is_none() && r.pods_needed.is_none() && r.note.contains("start lower"));
    }

    #[test]
    fn a_knee_of_publishers_sizes_the_origins() {
        let k = KneeSection {
            target_audience: None,
            target_streams: Some(500),
            ..knee_section()
        };
        let r = summarise(
            &k,
            KneeClients::Publishers,
            vec![step(0, 10, true), step(1, 20, true), step(2, 30, false)],
            1,
        );
        // 20 publishers on 1 origin, 25 % headroom: 15 per origin; 500 / 15.
        assert_eq!(r.origins_needed, Some(34));
        assert_eq!(r.pods_needed, None);
        assert_eq!(r.clients, KneeClients::Publishers);
    }
}
