//! The live status line printed during a run.

use crate::metrics::timeline::TimelinePoint;

pub fn status_line(p: &TimelinePoint, planned_s: f64, stage: Option<(usize, usize)>) -> String {
    let mut s = format!("[{:>5.0}s/{:.0}s]", p.t, planned_s);
    if let Some((i, n)) = stage {
        s.push_str(&format!(" stage {}/{n}", i + 1));
    }
    s.push_str(&format!(" | publishers {}", p.publishers));
    for (proto, pp) in &p.players {
        s.push_str(&format!(" | {proto} {}", pp.active));
    }
    s.push_str(&format!(
        " | in {:.1} Mbit/s out {:.1} | errors {}",
        p.mbps_in, p.mbps_out, p.errors
    ));
    if let Some(l) = p.latency_p99_ms {
        s.push_str(&format!(" | latency p99 {l:.0} ms"));
    }
    if p.stalls > 0 {
        s.push_str(&format!(" | stalls {}", p.stalls));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::timeline::ProtocolPoint;

    #[test]
    fn shows_progress_clients_and_errors() {
        let mut p = TimelinePoint {
            t: 12.0,
            publishers: 2,
            errors: 3,
            latency_p99_ms: Some(310.4),
            ..Default::default()
        };
        p.players.insert(
            "flv".into(),
            ProtocolPoint {
                active: 20,
                ..Default::default()
            },
        );
        let line = status_line(&p, 40.0, Some((1, 3)));
        assert!(
            line.contains("12s/40s") && line.contains("stage 2/3"),
            "{line}"
        );
        assert!(
            line.contains("flv 20") && line.contains("errors 3"),
            "{line}"
        );
        assert!(line.contains("latency p99 310 ms"), "{line}");
    }
}
