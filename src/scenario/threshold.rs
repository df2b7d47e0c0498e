//! The metrics a threshold can name. Parsing them here (not at report time) lets `validate`
//! reject a typo before the run starts.

use std::fmt;

/// A statistic of a latency-like histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    P50,
    P90,
    P95,
    P99,
    Max,
    Mean,
}

impl Stat {
    pub const ALL: [(&'static str, Stat); 6] = [
        ("p50", Stat::P50),
        ("p90", Stat::P90),
        ("p95", Stat::P95),
        ("p99", Stat::P99),
        ("max", Stat::Max),
        ("mean", Stat::Mean),
    ];

    pub fn name(&self) -> &'static str {
        Stat::ALL
            .iter()
            .find(|(_, s)| s == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }

    /// The quantile for percentile stats.
    pub fn quantile(&self) -> Option<f64> {
        match self {
            Stat::P50 => Some(0.50),
            Stat::P90 => Some(0.90),
            Stat::P95 => Some(0.95),
            Stat::P99 => Some(0.99),
            Stat::Max | Stat::Mean => None,
        }
    }
}

/// Histogram metrics (milliseconds) of players.
pub const PLAYER_HISTOGRAMS: [&str; 7] = [
    "startup_ms",
    "latency_ms",
    "connect_ms",
    "ttfb_ms",
    "frame_gap_ms",
    "playlist_ms",
    "segment_ms",
];
/// Ratios of players (no statistic).
pub const PLAYER_RATIOS: [&str; 3] = ["stall_ratio", "error_rate", "lost_frame_ratio"];
/// Histogram metrics of publishers.
pub const PUBLISHER_HISTOGRAMS: [&str; 2] = ["lateness_ms", "connect_ms"];
pub const PUBLISHER_RATIOS: [&str; 1] = ["error_rate"];

#[derive(Debug, Clone, PartialEq)]
pub struct MetricRef {
    pub name: String,
    pub stat: Option<Stat>,
}

impl fmt::Display for MetricRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.stat {
            Some(s) => write!(f, "{}.{}", self.name, s.name()),
            None => write!(f, "{}", self.name),
        }
    }
}

/// Parses `startup_ms.p99` or `stall_ratio` for players, or publishers when `for_publishers`.
pub fn parse_metric(text: &str, for_publishers: bool) -> Result<MetricRef, (String, String)> {
    let (histograms, ratios): (&[&str], &[&str]) = if for_publishers {
        (&PUBLISHER_HISTOGRAMS, &PUBLISHER_RATIOS)
    } else {
        (&PLAYER_HISTOGRAMS, &PLAYER_RATIOS)
    };
    let (name, stat) = match text.split_once('.') {
        Some((n, s)) => (n, Some(s)),
        None => (text, None),
    };
    let known = || {
        let mut all: Vec<String> = histograms.iter().map(|h| format!("{h}.p99")).collect();
        all.extend(ratios.iter().map(|r| r.to_string()));
        all.join(", ")
    };
    if histograms.contains(&name) {
        let stat_text = stat.ok_or_else(|| {
            (
                format!("metric `{name}` needs a statistic"),
                format!("write e.g. `{name}.p99`; statistics: p50, p90, p95, p99, max, mean"),
            )
        })?;
        let stat = Stat::ALL
            .iter()
            .find(|(n, _)| *n == stat_text)
            .map(|(_, s)| *s)
            .ok_or_else(|| {
                (
                    format!("unknown statistic `{stat_text}`"),
                    "statistics: p50, p90, p95, p99, max, mean".to_string(),
                )
            })?;
        Ok(MetricRef {
            name: name.to_string(),
            stat: Some(stat),
        })
    } else if ratios.contains(&name) {
        if let Some(s) = stat {
            return Err((
                format!("metric `{name}` is a ratio and takes no statistic (got `.{s}`)"),
                format!("write just `{name}`"),
            ));
        }
        Ok(MetricRef {
            name: name.to_string(),
            stat: None,
        })
    } else {
        let whose = if for_publishers {
            "publisher"
        } else {
            "player"
        };
        Err((
            format!("unknown {whose} metric `{name}`"),
            format!("known metrics: {}", known()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_histogram_and_ratio_metrics() {
        let m = parse_metric("startup_ms.p99", false).unwrap();
        assert_eq!(m.stat, Some(Stat::P99));
        assert_eq!(m.to_string(), "startup_ms.p99");
        assert_eq!(parse_metric("stall_ratio", false).unwrap().stat, None);
        assert!(parse_metric("lateness_ms.max", true).is_ok());
    }

    #[test]
    fn rejects_with_hints() {
        assert!(
            parse_metric("startup_ms", false)
                .unwrap_err()
                .1
                .contains("startup_ms.p99")
        );
        assert!(
            parse_metric("startup_ms.p42", false)
                .unwrap_err()
                .0
                .contains("p42")
        );
        assert!(
            parse_metric("stall_ratio.p99", false)
                .unwrap_err()
                .0
                .contains("ratio")
        );
        assert!(
            parse_metric("lateness_ms.p99", false)
                .unwrap_err()
                .1
                .contains("known metrics")
        );
    }
}
