//! Latency histograms: bounded memory whatever the run length, mergeable across workers and
//! across load-generator pods, serialisable losslessly.

use base64::Engine;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

/// Values are microseconds; anything above an hour is clamped (and still counted).
const MAX_MICROS: u64 = 3_600_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

#[derive(Debug, Clone)]
pub struct LatencyHistogram(Histogram<u64>);

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for LatencyHistogram {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

/// Why a histogram read back from a report or a worker's window cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HistogramDecodeError {
    #[error("histogram is not base64: {0}")]
    NotBase64(base64::DecodeError),
    // hdrhistogram's errors have Debug only.
    #[error("histogram does not decode: {0}")]
    NotAHistogram(String),
    #[error("histogram bounds: {0}")]
    OutOfBounds(String),
}

impl LatencyHistogram {
    /// Empty, and small: the counts grow with the largest value recorded (auto-resize), so a
    /// histogram of millisecond latencies holds a fraction of what one sized for an hour would
    /// (which a distributed run's coordinator holds per worker and group, and every viewer's
    /// window too). Values are still clamped to an hour.
    pub fn new() -> Self {
        LatencyHistogram(
            Histogram::new(SIGNIFICANT_DIGITS).expect("static histogram precision is valid"),
        )
    }

    pub fn record_micros(&mut self, micros: u64) {
        let value = micros.clamp(1, MAX_MICROS);
        // `record` grows the counts to fit; `saturating_record` would clamp to the current size.
        if self.0.record(value).is_err() {
            self.0.saturating_record(value);
        }
    }

    pub fn record(&mut self, d: std::time::Duration) {
        self.record_micros(d.as_micros().min(u64::MAX as u128) as u64);
    }

    pub fn merge(&mut self, other: &LatencyHistogram) {
        // Same bounds on both sides, so `add` cannot fail.
        let _ = self.0.add(&other.0);
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        (!self.is_empty()).then(|| self.0.value_at_quantile(q) as f64 / 1000.0)
    }

    pub fn max_ms(&self) -> Option<f64> {
        (!self.is_empty()).then(|| self.0.max() as f64 / 1000.0)
    }

    pub fn mean_ms(&self) -> Option<f64> {
        (!self.is_empty()).then(|| self.0.mean() / 1000.0)
    }

    pub fn summary(&self) -> Summary {
        Summary {
            count: self.count(),
            min_ms: (!self.is_empty()).then(|| self.0.min() as f64 / 1000.0),
            mean_ms: self.mean_ms().map(round3),
            p50_ms: self.quantile_ms(0.50),
            p90_ms: self.quantile_ms(0.90),
            p95_ms: self.quantile_ms(0.95),
            p99_ms: self.quantile_ms(0.99),
            p999_ms: self.quantile_ms(0.999),
            max_ms: self.max_ms(),
        }
    }

    /// Percentile curve for plots: (percentile, ms) at the histogram's own quantile steps.
    pub fn percentile_curve(&self) -> Vec<(f64, f64)> {
        if self.is_empty() {
            return Vec::new();
        }
        self.0
            .iter_quantiles(2)
            .map(|v| {
                (
                    v.quantile_iterated_to() * 100.0,
                    v.value_iterated_to() as f64 / 1000.0,
                )
            })
            .collect()
    }

    /// HdrHistogram's V2 deflate encoding in base64: the same bytes other HdrHistogram
    /// implementations read, so reports of several pods merge exactly.
    pub fn to_base64(&self) -> String {
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&self.0, &mut bytes)
            .expect("serialising to a Vec cannot fail");
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    pub fn from_base64(text: &str) -> Result<Self, HistogramDecodeError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(HistogramDecodeError::NotBase64)?;
        let h: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| HistogramDecodeError::NotAHistogram(format!("{e:?}")))?;
        let mut out = LatencyHistogram::new();
        out.0
            .add(&h)
            .map_err(|e| HistogramDecodeError::OutOfBounds(format!("{e:?}")))?;
        Ok(out)
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

impl Serialize for LatencyHistogram {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for LatencyHistogram {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        LatencyHistogram::from_base64(&text).map_err(serde::de::Error::custom)
    }
}

/// Percentiles of one histogram in milliseconds, as written in reports.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub min_ms: Option<f64>,
    pub mean_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let mut a = LatencyHistogram::new();
        let mut b = LatencyHistogram::new();
        let mut all = LatencyHistogram::new();
        for v in 1..=1000u64 {
            let micros = v * 997 % 250_000 + 1;
            if v % 3 == 0 {
                a.record_micros(micros)
            } else {
                b.record_micros(micros)
            }
            all.record_micros(micros);
        }
        a.merge(&b);
        assert_eq!(a, all);
        assert_eq!(a.count(), 1000);
    }

    #[test]
    fn serialisation_round_trips_exactly() {
        let mut h = LatencyHistogram::new();
        for v in [5, 500, 50_000, 5_000_000, 4_000_000_000] {
            h.record_micros(v);
        }
        let json = serde_json::to_string(&h).unwrap();
        let back: LatencyHistogram = serde_json::from_str(&json).unwrap();
        assert_eq!(back, h);
        // The out-of-range value was clamped to an hour, not dropped.
        assert_eq!(back.count(), 5);
        let max = back.max_ms().unwrap();
        assert!((max - 3_600_000.0).abs() / 3_600_000.0 < 0.001, "{max}");
    }

    #[test]
    fn quantiles_are_within_three_significant_digits() {
        let mut h = LatencyHistogram::new();
        for v in 1..=100_000u64 {
            h.record_micros(v);
        }
        let p99 = h.quantile_ms(0.99).unwrap();
        assert!((p99 - 99.0).abs() / 99.0 < 0.001, "{p99}");
        assert!(LatencyHistogram::new().summary().p99_ms.is_none());
    }
}
