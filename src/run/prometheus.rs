//! Live metrics in the Prometheus text format (`xiuload run --metrics-addr`), so a Grafana
//! dashboard can show a run beside the cluster's own metrics. The collector renders a snapshot once
//! a second; scrapes read the last one and never touch the hot path.

use crate::metrics::timeline::TimelinePoint;
use crate::metrics::{PlayerStats, PublisherStats};
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

/// One player group's cumulative view.
pub struct PlayerGroupView<'a> {
    pub name: &'a str,
    pub protocol: &'a str,
    pub active: u64,
    /// Warm-up and steady state together: counters must only grow.
    pub totals: [&'a PlayerStats; 2],
}

pub struct PublisherGroupView<'a> {
    pub name: &'a str,
    pub active: u64,
    pub totals: [&'a PublisherStats; 2],
}

/// Renders the exposition text. Pure.
pub fn render(
    players: &[PlayerGroupView<'_>],
    publishers: &[PublisherGroupView<'_>],
    last: &TimelinePoint,
) -> String {
    let mut out = String::new();
    let family = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    family(
        &mut out,
        "xiuload_players_active",
        "gauge",
        "Viewers connected or connecting.",
    );
    for g in players {
        let _ = writeln!(
            out,
            "xiuload_players_active{{group=\"{}\",protocol=\"{}\"}} {}",
            g.name, g.protocol, g.active
        );
    }
    type Counter = fn(&PlayerStats) -> u64;
    let counters: [(&str, &str, Counter); 5] = [
        (
            "xiuload_player_sessions_total",
            "Viewer sessions started.",
            |s| s.sessions,
        ),
        (
            "xiuload_player_frames_total",
            "Video frames received.",
            |s| s.frames,
        ),
        (
            "xiuload_player_bytes_total",
            "Bytes received by viewers.",
            |s| s.bytes,
        ),
        (
            "xiuload_player_stalls_total",
            "Stalls in the playback-buffer model.",
            |s| s.stalls,
        ),
        (
            "xiuload_player_lost_frames_total",
            "Frames lost (sequence gaps).",
            |s| s.lost_frames,
        ),
    ];
    for (metric, help, value) in counters {
        family(&mut out, metric, "counter", help);
        for g in players {
            let v: u64 = g.totals.iter().map(|s| value(s)).sum();
            let _ = writeln!(
                out,
                "{metric}{{group=\"{}\",protocol=\"{}\"}} {v}",
                g.name, g.protocol
            );
        }
    }
    family(
        &mut out,
        "xiuload_player_errors_total",
        "counter",
        "Viewer errors by kind.",
    );
    for g in players {
        let mut errors = g.totals[0].errors.clone();
        errors.merge(&g.totals[1].errors);
        for (kind, n) in &errors.0 {
            let _ = writeln!(
                out,
                "xiuload_player_errors_total{{group=\"{}\",protocol=\"{}\",kind=\"{kind}\"}} {n}",
                g.name, g.protocol
            );
        }
    }
    family(
        &mut out,
        "xiuload_publishers_active",
        "gauge",
        "Publishers sending.",
    );
    for g in publishers {
        let _ = writeln!(
            out,
            "xiuload_publishers_active{{group=\"{}\"}} {}",
            g.name, g.active
        );
    }
    family(
        &mut out,
        "xiuload_publisher_bytes_total",
        "counter",
        "Bytes sent by publishers.",
    );
    for g in publishers {
        let v: u64 = g.totals.iter().map(|s| s.bytes).sum();
        let _ = writeln!(
            out,
            "xiuload_publisher_bytes_total{{group=\"{}\"}} {v}",
            g.name
        );
    }
    family(
        &mut out,
        "xiuload_latency_ms",
        "gauge",
        "End-to-end latency over the last second, all viewers.",
    );
    for (q, v) in [
        ("0.5", last.latency_p50_ms),
        ("0.95", last.latency_p95_ms),
        ("0.99", last.latency_p99_ms),
    ] {
        if let Some(v) = v {
            let _ = writeln!(out, "xiuload_latency_ms{{quantile=\"{q}\"}} {v}");
        }
    }
    family(
        &mut out,
        "xiuload_startup_ms",
        "gauge",
        "Time to first keyframe over the last second, all viewers.",
    );
    for (q, v) in [("0.5", last.startup_p50_ms), ("0.99", last.startup_p99_ms)] {
        if let Some(v) = v {
            let _ = writeln!(out, "xiuload_startup_ms{{quantile=\"{q}\"}} {v}");
        }
    }
    family(
        &mut out,
        "xiuload_loader_cpu_percent",
        "gauge",
        "Load generator CPU, % of one core.",
    );
    if let Some(c) = last.loader_cpu_percent {
        let _ = writeln!(out, "xiuload_loader_cpu_percent {c}");
    }
    family(
        &mut out,
        "xiuload_run_seconds",
        "gauge",
        "Seconds since the run started.",
    );
    let _ = writeln!(out, "xiuload_run_seconds {}", last.t);
    out
}

/// The latest exposition, shared with the HTTP server.
#[derive(Clone, Default)]
pub struct Exposition(Arc<RwLock<String>>);

impl Exposition {
    pub fn set(&self, text: String) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = text;
    }

    pub fn get(&self) -> String {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Serves `GET /metrics` on `listener` until `stop`.
    pub fn serve(
        &self,
        listener: tokio::net::TcpListener,
        stop: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let exposition = self.clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let e = exposition.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4",
                        )],
                        e.get(),
                    )
                }
            }),
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
        })
    }
}

/// Binds the metrics address before the run starts, so a taken port fails at once.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ErrorKind;

    #[test]
    fn renders_counters_gauges_and_labels() {
        let mut steady = PlayerStats {
            sessions: 3,
            bytes: 1000,
            ..Default::default()
        };
        steady.errors.add(ErrorKind::EmptyStream);
        let warm = PlayerStats {
            sessions: 2,
            ..Default::default()
        };
        let pubs = PublisherStats {
            bytes: 42,
            ..Default::default()
        };
        let last = TimelinePoint {
            t: 7.0,
            latency_p99_ms: Some(120.5),
            ..Default::default()
        };
        let text = render(
            &[PlayerGroupView {
                name: "v",
                protocol: "flv",
                active: 4,
                totals: [&warm, &steady],
            }],
            &[PublisherGroupView {
                name: "cams",
                active: 1,
                totals: [&pubs, &PublisherStats::default()],
            }],
            &last,
        );
        assert!(
            text.contains("xiuload_players_active{group=\"v\",protocol=\"flv\"} 4"),
            "{text}"
        );
        assert!(
            text.contains("xiuload_player_sessions_total{group=\"v\",protocol=\"flv\"} 5"),
            "{text}"
        );
        assert!(text.contains("kind=\"empty_200\"} 1"), "{text}");
        assert!(
            text.contains("xiuload_publisher_bytes_total{group=\"cams\"} 42"),
            "{text}"
        );
        assert!(
            text.contains("xiuload_latency_ms{quantile=\"0.99\"} 120.5"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE xiuload_player_bytes_total counter"),
            "{text}"
        );
        assert!(text.contains("xiuload_run_seconds 7"), "{text}");
    }
}
