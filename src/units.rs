//! Human-friendly quantities in scenario files: durations ("90s", "2m 30s") and bit rates
//! ("2Mbps", "128k", "2.5 Mbit/s").
//!
//! Durations use `humantime` (a well-kept crate). Bit rates have no such crate (byte-size crates
//! speak bytes with binary prefixes, while stream bit rates are decimal bits), so they are parsed
//! here.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub fn secs(s: u64) -> Self {
        HumanDuration(Duration::from_secs(s))
    }
    pub fn millis(ms: u64) -> Self {
        HumanDuration(Duration::from_millis(ms))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// The longest single duration a scenario may hold. Anything longer is a typo (`300000000000y`)
/// and, added to a clock, would overflow it: bounding it where it is parsed keeps every sum of a
/// few such values far from overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Why a duration or bit rate in a scenario cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UnitError {
    #[error("invalid duration {text:?}: {reason} (write e.g. \"500ms\", \"30s\", \"2m\")")]
    Duration { text: String, reason: String },
    #[error(
        "duration {text:?} is longer than the limit of {}",
        in_days(MAX_DURATION)
    )]
    TooLong { text: String },
    #[error(
        "invalid bit rate {text:?}: expected a number then a unit, e.g. \"2Mbps\" or \"128kbps\""
    )]
    BitRateNumber { text: String },
    #[error("invalid bit rate {text:?}: unknown unit {unit:?} (use bps, kbps, Mbps or Gbps)")]
    BitRateUnit { text: String, unit: String },
    #[error("invalid bit rate {text:?}: must be at least 1 bit/s")]
    BitRateTooLow { text: String },
}

/// Parses a human duration ("500ms", "30s", "2m 30s"), at most [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<HumanDuration, UnitError> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| UnitError::Duration {
        text: text.to_string(),
        reason: e.to_string(),
    })?;
    if d > MAX_DURATION {
        return Err(UnitError::TooLong {
            text: text.to_string(),
        });
    }
    Ok(HumanDuration(d))
}

/// A long duration in days ("30 days", "40.5 days"): humantime's "1month 9days 13h 26m 24s"
/// is hard to compare with a limit.
pub fn in_days(d: Duration) -> String {
    let days = d.as_secs_f64() / 86_400.0;
    let text = format!("{days:.1}");
    format!("{} days", text.trim_end_matches(".0"))
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration in quotes, e.g. \"500ms\", \"30s\" or \"2m\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                parse_duration(v).map_err(E::custom)
            }
        }
        d.deserialize_str(Visitor)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// A bit rate in bits per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct BitRate(pub u64);

impl BitRate {
    pub fn bps(&self) -> u64 {
        self.0
    }
}

impl fmt::Display for BitRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b >= 1_000_000 && b.is_multiple_of(1000) {
            write!(f, "{}Mbps", b as f64 / 1e6)
        } else if b >= 1000 && b.is_multiple_of(1000) {
            write!(f, "{}kbps", b / 1000)
        } else {
            write!(f, "{b}bps")
        }
    }
}

/// Parses "2Mbps", "2M", "2.5 Mbit/s", "128kbps", "128k", "64000" (plain bits per second).
pub fn parse_bitrate(text: &str) -> Result<BitRate, UnitError> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| UnitError::BitRateNumber {
        text: text.to_string(),
    })?;
    let unit = unit.trim().to_ascii_lowercase();
    let multiplier = match unit.as_str() {
        "" | "bps" | "bit/s" | "b/s" => 1.0,
        "k" | "kbps" | "kbit/s" | "kb/s" => 1e3,
        "m" | "mbps" | "mbit/s" | "mb/s" => 1e6,
        "g" | "gbps" | "gbit/s" | "gb/s" => 1e9,
        other => {
            return Err(UnitError::BitRateUnit {
                text: text.to_string(),
                unit: other.to_string(),
            });
        }
    };
    let bps = value * multiplier;
    if !bps.is_finite() || bps < 1.0 {
        return Err(UnitError::BitRateTooLow {
            text: text.to_string(),
        });
    }
    Ok(BitRate(bps.round() as u64))
}

impl<'de> Deserialize<'de> for BitRate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A visitor, not an untagged enum: serde's message for a value matching no variant
        // ("data did not match any variant of untagged enum") says nothing about what to write.
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = BitRate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a bit rate: a string like \"2Mbps\" or \"128kbps\", or a whole number of bits/s",
                )
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<BitRate, E> {
                if n > 0 {
                    Ok(BitRate(n))
                } else {
                    Err(E::custom("bit rate must be positive"))
                }
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<BitRate, E> {
                match u64::try_from(n) {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(E::custom(format!("bit rate {n} must be positive"))),
                }
            }
            fn visit_str<E: serde::de::Error>(self, t: &str) -> Result<BitRate, E> {
                parse_bitrate(t).map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl Serialize for BitRate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitrates_in_common_spellings() {
        assert_eq!(parse_bitrate("2Mbps").unwrap().bps(), 2_000_000);
        assert_eq!(parse_bitrate("2.5 Mbit/s").unwrap().bps(), 2_500_000);
        assert_eq!(parse_bitrate("128k").unwrap().bps(), 128_000);
        assert_eq!(parse_bitrate("64000").unwrap().bps(), 64_000);
    }

    #[test]
    fn bitrate_errors_say_what_to_write() {
        let err = parse_bitrate("2 furlongs").unwrap_err().to_string();
        assert!(err.contains("unknown unit \"furlongs\""), "{err}");
        assert_eq!(
            parse_bitrate("Mbps"),
            Err(UnitError::BitRateNumber {
                text: "Mbps".into()
            })
        );
        assert_eq!(
            parse_bitrate("0kbps"),
            Err(UnitError::BitRateTooLow {
                text: "0kbps".into()
            })
        );
    }

    #[derive(Debug, Deserialize)]
    struct Holder {
        #[allow(dead_code)]
        d: Option<HumanDuration>,
        #[allow(dead_code)]
        b: Option<BitRate>,
    }

    fn holder_error(text: &str) -> String {
        toml::from_str::<Holder>(text)
            .unwrap_err()
            .message()
            .to_string()
    }

    #[test]
    fn durations_are_bounded_where_they_are_parsed() {
        assert_eq!(parse_duration("30days").unwrap().0, MAX_DURATION);
        let err = parse_duration("31days").unwrap_err().to_string();
        assert!(err.contains("longer than the limit of 30 days"), "{err}");
        assert_eq!(
            in_days(Duration::from_secs(40 * 86_400 + 43_200)),
            "40.5 days"
        );
        // Values that would overflow a clock when added up.
        for huge in ["500000000000y", "300000000000y", "584942417355y"] {
            assert!(parse_duration(huge).is_err(), "{huge}");
        }
        assert!(holder_error("d = \"1000y\"").contains("longer than the limit"));
        let err = holder_error("d = 30");
        assert!(err.contains("a duration in quotes"), "{err}");
    }

    #[test]
    fn bitrate_type_errors_say_what_to_write() {
        for bad in ["b = -5", "b = 1.5", "b = true", "b = [1]"] {
            let err = holder_error(bad);
            assert!(!err.contains("untagged"), "{bad}: {err}");
            assert!(
                err.contains("bit rate") || err.contains("\"2Mbps\""),
                "{bad}: {err}"
            );
        }
        assert!(holder_error("b = 0").contains("positive"));
        assert_eq!(
            toml::from_str::<Holder>("b = 64000").unwrap().b,
            Some(BitRate(64_000))
        );
    }

    #[test]
    fn bitrate_display_round_trips() {
        for text in ["2Mbps", "128kbps", "1500bps", "2.5Mbps"] {
            let rate = parse_bitrate(text).unwrap();
            assert_eq!(parse_bitrate(&rate.to_string()).unwrap(), rate);
        }
    }
}
