//! Durations as scenario files write them: `90s`, `5m`, `250ms`, `1h30m`,
//! and signed ones for clock offsets (`-90s`, `+2m`).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A duration written like `90s`, `5m`, `250ms` or `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// Parses `90s`, `5m`, `250ms`, `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        format!("invalid duration {s:?} ({e}); write it like \"90s\", \"5m\" or \"250ms\"")
    })
}

/// A signed duration: `"-90s"`, `"2m"`, `"+500ms"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedDur {
    pub negative: bool,
    pub magnitude: Duration,
}

impl SignedDur {
    /// From milliseconds, negative when behind.
    pub fn from_millis(ms: i64) -> SignedDur {
        SignedDur {
            negative: ms < 0,
            magnitude: Duration::from_millis(ms.unsigned_abs()),
        }
    }

    /// Milliseconds, negative when behind.
    pub fn millis(self) -> i64 {
        let ms = self.magnitude.as_millis() as i64;
        if self.negative {
            -ms
        } else {
            ms
        }
    }
}

impl fmt::Display for SignedDur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.negative { "-" } else { "" };
        write!(f, "{sign}{}", humantime::format_duration(self.magnitude))
    }
}

impl<'de> Deserialize<'de> for SignedDur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SignedDur, D::Error> {
        let s = String::deserialize(d)?;
        let t = s.trim();
        let (negative, rest) = match t.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, t.strip_prefix('+').unwrap_or(t)),
        };
        parse_duration(rest)
            .map(|magnitude| SignedDur {
                negative,
                magnitude,
            })
            .map_err(serde::de::Error::custom)
    }
}
