//! What a threshold names: a metric (with its statistic) and a scope, as enums. Parsed when the
//! scenario is read, so a typo is a located load error and judging is a `match`, not string
//! comparisons spread over the crate.

use super::protocol::Protocol;
use serde::{Deserialize, Serialize};
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
    pub const ALL: [Stat; 6] = [
        Stat::P50,
        Stat::P90,
        Stat::P95,
        Stat::P99,
        Stat::Max,
        Stat::Mean,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Stat::P50 => "p50",
            Stat::P90 => "p90",
            Stat::P95 => "p95",
            Stat::P99 => "p99",
            Stat::Max => "max",
            Stat::Mean => "mean",
        }
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

/// Who a metric is measured on: a threshold's scope picks one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Players,
    Publishers,
}

/// Histograms (milliseconds) a threshold can take a statistic of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Histogram {
    Startup,
    Latency,
    Connect,
    Ttfb,
    FrameGap,
    Playlist,
    Segment,
    Lateness,
}

impl Histogram {
    pub const ALL: [Histogram; 8] = [
        Histogram::Startup,
        Histogram::Latency,
        Histogram::Connect,
        Histogram::Ttfb,
        Histogram::FrameGap,
        Histogram::Playlist,
        Histogram::Segment,
        Histogram::Lateness,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Histogram::Startup => "startup_ms",
            Histogram::Latency => "latency_ms",
            Histogram::Connect => "connect_ms",
            Histogram::Ttfb => "ttfb_ms",
            Histogram::FrameGap => "frame_gap_ms",
            Histogram::Playlist => "playlist_ms",
            Histogram::Segment => "segment_ms",
            Histogram::Lateness => "lateness_ms",
        }
    }

    /// Whether `side` measures this histogram.
    pub fn measured_on(&self, side: Side) -> bool {
        match self {
            Histogram::Connect => true,
            Histogram::Lateness => side == Side::Publishers,
            _ => side == Side::Players,
        }
    }
}

/// Ratios (no statistic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ratio {
    Stall,
    Error,
    LostFrame,
}

impl Ratio {
    pub const ALL: [Ratio; 3] = [Ratio::Stall, Ratio::Error, Ratio::LostFrame];

    pub fn name(&self) -> &'static str {
        match self {
            Ratio::Stall => "stall_ratio",
            Ratio::Error => "error_rate",
            Ratio::LostFrame => "lost_frame_ratio",
        }
    }

    pub fn measured_on(&self, side: Side) -> bool {
        match self {
            Ratio::Error => true,
            _ => side == Side::Players,
        }
    }
}

/// `startup_ms.p99` or `stall_ratio`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Metric {
    Histogram(Histogram, Stat),
    Ratio(Ratio),
}

impl Metric {
    pub fn measured_on(&self, side: Side) -> bool {
        match self {
            Metric::Histogram(h, _) => h.measured_on(side),
            Metric::Ratio(r) => r.measured_on(side),
        }
    }

    /// The metrics `side` measures, as a user would write them (for hints).
    pub fn known_on(side: Side) -> String {
        let histograms = Histogram::ALL
            .iter()
            .filter(|h| h.measured_on(side))
            .map(|h| format!("{}.p99", h.name()));
        let ratios = Ratio::ALL
            .iter()
            .filter(|r| r.measured_on(side))
            .map(|r| r.name().to_string());
        histograms.chain(ratios).collect::<Vec<_>>().join(", ")
    }
}

const STATS_HINT: &str = "statistics: p50, p90, p95, p99, max, mean";

/// Why a threshold's `metric` cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricError {
    #[error("metric `{0}` needs a statistic: write e.g. `{0}.p99`; {STATS_HINT}")]
    NoStatistic(String),
    #[error("unknown statistic `{0}`; {STATS_HINT}")]
    UnknownStatistic(String),
    #[error(
        "metric `{name}` is a ratio and takes no statistic (got `.{stat}`): write just `{name}`"
    )]
    RatioWithStatistic { name: String, stat: String },
    #[error(
        "unknown metric `{0}`; player metrics: {players}; publisher metrics: {publishers}",
        players = Metric::known_on(Side::Players),
        publishers = Metric::known_on(Side::Publishers)
    )]
    Unknown(String),
}

impl std::str::FromStr for Metric {
    type Err = MetricError;

    fn from_str(text: &str) -> Result<Metric, MetricError> {
        let (name, stat) = match text.split_once('.') {
            Some((n, s)) => (n, Some(s)),
            None => (text, None),
        };
        if let Some(h) = Histogram::ALL.into_iter().find(|h| h.name() == name) {
            let stat_text = stat.ok_or_else(|| MetricError::NoStatistic(name.to_string()))?;
            let stat = Stat::ALL
                .into_iter()
                .find(|s| s.name() == stat_text)
                .ok_or_else(|| MetricError::UnknownStatistic(stat_text.to_string()))?;
            return Ok(Metric::Histogram(h, stat));
        }
        if let Some(r) = Ratio::ALL.into_iter().find(|r| r.name() == name) {
            return match stat {
                Some(s) => Err(MetricError::RatioWithStatistic {
                    name: name.to_string(),
                    stat: s.to_string(),
                }),
                None => Ok(Metric::Ratio(r)),
            };
        }
        Err(MetricError::Unknown(name.to_string()))
    }
}

impl TryFrom<String> for Metric {
    type Error = MetricError;
    fn try_from(text: String) -> Result<Metric, MetricError> {
        text.parse()
    }
}

impl From<Metric> for String {
    fn from(m: Metric) -> String {
        m.to_string()
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::Histogram(h, s) => write!(f, "{}.{}", h.name(), s.name()),
            Metric::Ratio(r) => f.write_str(r.name()),
        }
    }
}

/// Which measurements a threshold judges: all players, one protocol's, one group's, or the
/// publishers'. A protocol name is taken as the protocol even if a group has that name.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Scope {
    #[default]
    All,
    Publishers,
    Protocol(Protocol),
    Group(String),
}

impl Scope {
    pub fn side(&self) -> Side {
        match self {
            Scope::Publishers => Side::Publishers,
            _ => Side::Players,
        }
    }

    /// Whether a player group (`name`, `protocol`) is judged under this scope.
    pub fn covers(&self, group: &str, protocol: Protocol) -> bool {
        match self {
            Scope::All => true,
            Scope::Publishers => false,
            Scope::Protocol(p) => *p == protocol,
            Scope::Group(g) => g == group,
        }
    }
}

impl From<String> for Scope {
    fn from(text: String) -> Scope {
        match text.as_str() {
            "all" => Scope::All,
            "publishers" => Scope::Publishers,
            other => match Protocol::ALL.into_iter().find(|p| p.as_str() == other) {
                Some(p) => Scope::Protocol(p),
                None => Scope::Group(text),
            },
        }
    }
}

impl From<Scope> for String {
    fn from(s: Scope) -> String {
        s.to_string()
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::All => f.write_str("all"),
            Scope::Publishers => f.write_str("publishers"),
            Scope::Protocol(p) => f.write_str(p.as_str()),
            Scope::Group(g) => f.write_str(g),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_histogram_and_ratio_metrics() {
        let m: Metric = "startup_ms.p99".parse().unwrap();
        assert_eq!(m, Metric::Histogram(Histogram::Startup, Stat::P99));
        assert_eq!(m.to_string(), "startup_ms.p99");
        assert_eq!("stall_ratio".parse(), Ok(Metric::Ratio(Ratio::Stall)));
        let lateness: Metric = "lateness_ms.max".parse().unwrap();
        assert!(lateness.measured_on(Side::Publishers));
        assert!(!lateness.measured_on(Side::Players));
        let connect: Metric = "connect_ms.p50".parse().unwrap();
        assert!(connect.measured_on(Side::Players) && connect.measured_on(Side::Publishers));
        for h in Histogram::ALL {
            for s in Stat::ALL {
                let m = Metric::Histogram(h, s);
                assert_eq!(m.to_string().parse(), Ok(m), "round trip of {m}");
            }
        }
    }

    #[test]
    fn rejects_with_hints() {
        let no_stat = "startup_ms".parse::<Metric>().unwrap_err().to_string();
        assert!(no_stat.contains("startup_ms.p99"), "{no_stat}");
        let bad_stat = "startup_ms.p42".parse::<Metric>().unwrap_err().to_string();
        assert!(bad_stat.contains("p42"), "{bad_stat}");
        let ratio_stat = "stall_ratio.p99".parse::<Metric>().unwrap_err().to_string();
        assert!(ratio_stat.contains("ratio"), "{ratio_stat}");
        let unknown = "lag_ms.p99".parse::<Metric>().unwrap_err().to_string();
        assert!(
            unknown.contains("player metrics: startup_ms.p99"),
            "{unknown}"
        );
        let publishers = unknown
            .split("publisher metrics:")
            .nth(1)
            .unwrap_or_default();
        assert!(publishers.contains("lateness_ms.p99"), "{unknown}");
    }

    #[test]
    fn scopes_read_protocols_groups_and_sides() {
        assert_eq!(Scope::from("all".to_string()), Scope::All);
        assert_eq!(
            Scope::from("hls".to_string()),
            Scope::Protocol(Protocol::Hls)
        );
        let group = Scope::from("mobile".to_string());
        assert_eq!(group, Scope::Group("mobile".into()));
        assert!(group.covers("mobile", Protocol::Flv));
        assert!(!group.covers("desktop", Protocol::Flv));
        assert!(Scope::Protocol(Protocol::Hls).covers("any", Protocol::Hls));
        assert!(!Scope::Publishers.covers("any", Protocol::Flv));
        assert_eq!(Scope::Publishers.side(), Side::Publishers);
        assert_eq!(Scope::Publishers.to_string(), "publishers");
    }
}
