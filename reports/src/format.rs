//! Numbers as the reports write them, for anyone who prints the same
//! figures (the CLI's progress and summary lines, the simulator's
//! invariant details) and wants them to read alike.

use std::time::{Duration, UNIX_EPOCH};

/// A ratio as a percentage that reads naturally: three decimals between
/// 99% and 100%, where nines matter, one elsewhere, with trailing zeros
/// (and a bare point) dropped.
///
/// ```
/// use faultline_reports::pct;
/// assert_eq!(pct(0.9995), "99.95%");
/// assert_eq!(pct(0.999), "99.9%");
/// assert_eq!(pct(0.7534), "75.3%");
/// assert_eq!(pct(1.0), "100%");
/// ```
pub fn pct(x: f64) -> String {
    let p = x * 100.0;
    let digits = if (99.0..100.0).contains(&p) { 3 } else { 1 };
    let s = format!("{p:.digits$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    format!("{s}%")
}

/// A short human duration: hours, minutes and whole seconds from a
/// minute up, tenths of a second below one. Negative durations count as
/// zero.
///
/// ```
/// use faultline_reports::hms;
/// assert_eq!(hms(3.36), "3.4s");
/// assert_eq!(hms(95.0), "1m35s");
/// assert_eq!(hms(3725.0), "1h02m05s");
/// ```
pub fn hms(secs: f64) -> String {
    let t = secs.max(0.0).round() as u64;
    let (h, m, s) = (t / 3600, t / 60 % 60, t % 60);
    if h > 0 {
        format!("{h}h{m:02}m{s:02}s")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{:.1}s", secs.max(0.0))
    }
}

/// Seconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS UTC` (whole
/// seconds; before the epoch counts as the epoch, past year 9999 as its
/// last second).
pub(crate) fn utc(unix_s: f64) -> String {
    // The last second humantime writes (it stops at four-digit years).
    const LAST: u64 = 253_402_300_799;
    // `as` saturates, and takes NaN to 0.
    let t = (unix_s.max(0.0) as u64).min(LAST);
    // `2023-11-14T22:13:20Z`
    let stamp = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t)).to_string();
    format!("{} {} UTC", &stamp[..10], &stamp[11..19])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_read_naturally() {
        assert_eq!(pct(0.999), "99.9%");
        assert_eq!(pct(0.9995), "99.95%");
        assert_eq!(pct(0.99999), "99.999%");
        assert_eq!(pct(1.0), "100%");
        assert_eq!(pct(0.5), "50%");
        assert_eq!(pct(0.755), "75.5%");
        assert_eq!(pct(0.0), "0%");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(hms(0.0), "0.0s");
        assert_eq!(hms(-1.0), "0.0s");
        assert_eq!(hms(3.36), "3.4s");
        assert_eq!(hms(59.4), "59.4s");
        assert_eq!(hms(60.0), "1m00s");
        assert_eq!(hms(95.0), "1m35s");
        assert_eq!(hms(3600.0), "1h00m00s");
        assert_eq!(hms(3725.4), "1h02m05s");
    }

    #[test]
    fn utc_formats_the_epoch_and_leap_days() {
        assert_eq!(utc(0.0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400.0), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000.9), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(-5.0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(f64::NAN), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1e300), "9999-12-31 23:59:59 UTC");
    }
}
