//! Timestamps as Kubernetes writes them (RFC 3339, UTC), from and to the
//! environment's wall clock in milliseconds since the Unix epoch.
//!
//! Objects never read the machine's clock: the caller passes
//! `env.wall_ms()`, which the simulator controls (and can skew).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `2026-11-25T15:51:57Z` (creation and transition times).
pub fn rfc3339(wall_ms: u64) -> String {
    humantime::format_rfc3339_seconds(at(wall_ms)).to_string()
}

/// `2026-11-25T15:51:57.123456Z` (lease renew times: Kubernetes' MicroTime).
pub fn rfc3339_micros(wall_ms: u64) -> String {
    humantime::format_rfc3339_micros(at(wall_ms)).to_string()
}

/// Milliseconds since the epoch of an RFC 3339 timestamp; `None` if it is
/// not one.
pub fn parse_ms(text: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339_weak(text).ok()?;
    t.duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as u64)
}

fn at(wall_ms: u64) -> SystemTime {
    // Not a clock read: a fixed epoch plus the caller's time.
    UNIX_EPOCH + Duration::from_millis(wall_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let ms = 1_795_000_000_123;
        assert_eq!(parse_ms(&rfc3339_micros(ms)), Some(ms));
        assert_eq!(parse_ms(&rfc3339(ms)), Some(ms - 123));
        assert_eq!(parse_ms("yesterday"), None);
    }
}
