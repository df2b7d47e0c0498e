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

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(text.trim())
            .map(HumanDuration)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "invalid duration {text:?}: {e} (write e.g. \"500ms\", \"30s\", \"2m\")"
                ))
            })
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
pub fn parse_bitrate(text: &str) -> Result<BitRate, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("invalid bit rate {text:?}: expected a number then a unit, e.g. \"2Mbps\" or \"128kbps\""))?;
    let unit = unit.trim().to_ascii_lowercase();
    let multiplier = match unit.as_str() {
        "" | "bps" | "bit/s" | "b/s" => 1.0,
        "k" | "kbps" | "kbit/s" | "kb/s" => 1e3,
        "m" | "mbps" | "mbit/s" | "mb/s" => 1e6,
        "g" | "gbps" | "gbit/s" | "gb/s" => 1e9,
        other => {
            return Err(format!(
                "invalid bit rate {text:?}: unknown unit {other:?} (use bps, kbps, Mbps or Gbps)"
            ));
        }
    };
    let bps = value * multiplier;
    if !bps.is_finite() || bps < 1.0 {
        return Err(format!(
            "invalid bit rate {text:?}: must be at least 1 bit/s"
        ));
    }
    Ok(BitRate(bps.round() as u64))
}

impl<'de> Deserialize<'de> for BitRate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) if n > 0 => Ok(BitRate(n)),
            Raw::Number(_) => Err(serde::de::Error::custom("bit rate must be positive")),
            Raw::Text(t) => parse_bitrate(&t).map_err(serde::de::Error::custom),
        }
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
        let err = parse_bitrate("2 furlongs").unwrap_err();
        assert!(err.contains("unknown unit"), "{err}");
        assert!(
            parse_bitrate("Mbps")
                .unwrap_err()
                .contains("expected a number")
        );
        assert!(parse_bitrate("0kbps").is_err());
    }

    #[test]
    fn bitrate_display_round_trips() {
        for text in ["2Mbps", "128kbps", "1500bps", "2.5Mbps"] {
            let rate = parse_bitrate(text).unwrap();
            assert_eq!(parse_bitrate(&rate.to_string()).unwrap(), rate);
        }
    }
}
