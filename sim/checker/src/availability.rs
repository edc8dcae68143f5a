//! Availability and latency over recorded user requests: the fraction that
//! succeeded against an SLO (over the whole run and over sliding windows),
//! when the error budget ran out, latency quantiles, and the windows of
//! unavailability a person wants to look at.
//!
//! Pure functions over [`Request`]s, so they are tested on hand-made
//! histories and reused by the report.

/// One user request as the simulator recorded it. Times are simulated
/// nanoseconds since the run began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// When the user sent it.
    pub sent_ns: u64,
    /// When the answer came (or the user gave up).
    pub done_ns: u64,
    /// Whether it succeeded.
    pub ok: bool,
}

impl Request {
    /// Time from sending to the answer (or to giving up).
    pub fn latency_ns(&self) -> u64 {
        self.done_ns.saturating_sub(self.sent_ns)
    }
}

/// The verdict over a set of requests.
#[derive(Debug, Clone, PartialEq)]
pub struct Availability {
    /// Requests judged.
    pub total: u64,
    /// Requests that succeeded.
    pub ok: u64,
    /// When the failures first exceeded the budget the SLO allows over the
    /// whole run (`(1 - slo) * total`): the moment the run was lost.
    pub budget_exhausted_ns: Option<u64>,
    /// The worst sliding window: (start ns, end ns, ok, total).
    pub worst_window: Option<(u64, u64, u64, u64)>,
    /// The first sliding window below the SLO: (start ns, end ns, ok, total).
    pub window_violation: Option<(u64, u64, u64, u64)>,
}

impl Availability {
    /// Successful fraction (1.0 with no requests).
    pub fn ratio(&self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            self.ok as f64 / self.total as f64
        }
    }
}

const SECOND: u64 = 1_000_000_000;

/// Judges `requests` (in any order) against `slo`; with `window_ns`, also
/// every window of that length sliding by one second, counting requests by
/// the time they were sent.
pub fn availability(requests: &[Request], slo: f64, window_ns: Option<u64>) -> Availability {
    let total = requests.len() as u64;
    let ok = requests.iter().filter(|r| r.ok).count() as u64;
    let budget = ((1.0 - slo) * total as f64).floor() as u64;
    let mut failures: Vec<u64> = requests
        .iter()
        .filter(|r| !r.ok)
        .map(|r| r.done_ns)
        .collect();
    failures.sort_unstable();
    let budget_exhausted_ns = failures.get(budget as usize).copied();

    let (mut worst_window, mut window_violation) = (None, None);
    if let (Some(w), Some(first), Some(last)) = (
        window_ns,
        requests.iter().map(|r| r.sent_ns).min(),
        requests.iter().map(|r| r.sent_ns).max(),
    ) {
        let (oks, totals) = per_second(requests, first / SECOND, last / SECOND);
        let span = w.div_ceil(SECOND).max(1) as usize;
        let (mut o, mut t) = (0u64, 0u64);
        let mut worst = f64::INFINITY;
        for end in 0..oks.len() {
            o += oks[end];
            t += totals[end];
            if end >= span {
                o -= oks[end - span];
                t -= totals[end - span];
            }
            // Only whole windows, unless the run is shorter than one.
            if t == 0 || (end + 1 < span && end + 1 < oks.len()) {
                continue;
            }
            let start_s = (first / SECOND) + (end + 1).saturating_sub(span) as u64;
            let end_s = (first / SECOND) + end as u64 + 1;
            let r = o as f64 / t as f64;
            let win = (start_s * SECOND, end_s * SECOND, o, t);
            if r < worst {
                worst = r;
                worst_window = Some(win);
            }
            if r < slo && window_violation.is_none() {
                window_violation = Some(win);
            }
        }
    }
    Availability {
        total,
        ok,
        budget_exhausted_ns: (ok < total && (ok as f64) < slo * total as f64)
            .then_some(budget_exhausted_ns)
            .flatten(),
        worst_window,
        window_violation,
    }
}

/// Successes and totals per second from `first_s` to `last_s` inclusive,
/// by sending time.
fn per_second(requests: &[Request], first_s: u64, last_s: u64) -> (Vec<u64>, Vec<u64>) {
    let n = (last_s - first_s + 1) as usize;
    let (mut oks, mut totals) = (vec![0u64; n], vec![0u64; n]);
    for r in requests {
        let i = (r.sent_ns / SECOND - first_s) as usize;
        totals[i] += 1;
        if r.ok {
            oks[i] += 1;
        }
    }
    (oks, totals)
}

/// The `q` quantile (nearest rank) of the latencies of successful requests.
pub fn latency_quantile(requests: &[Request], q: f64) -> Option<u64> {
    let mut l: Vec<u64> = requests
        .iter()
        .filter(|r| r.ok)
        .map(|r| r.latency_ns())
        .collect();
    quantile(&mut l, q)
}

/// The `q` quantile (nearest rank) of `values`, sorting them.
pub fn quantile(values: &mut [u64], q: f64) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    Some(values[rank - 1])
}

/// A stretch of time in which requests failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    /// Start of the first second with a failure.
    pub start_ns: u64,
    /// End of the last second with a failure.
    pub end_ns: u64,
    /// Failed requests sent in the window.
    pub failed: u64,
    /// All requests sent in the window.
    pub total: u64,
}

/// The windows of unavailability: seconds in which at least one request
/// (by sending time) failed, merged when at most `gap_s` clean seconds
/// separate them.
pub fn outages(requests: &[Request], gap_s: u64) -> Vec<Outage> {
    let (Some(first), Some(last)) = (
        requests.iter().map(|r| r.sent_ns / SECOND).min(),
        requests.iter().map(|r| r.sent_ns / SECOND).max(),
    ) else {
        return Vec::new();
    };
    let (oks, totals) = per_second(requests, first, last);
    let mut out: Vec<Outage> = Vec::new();
    let mut clean_run = 0u64;
    for (i, (&o, &t)) in oks.iter().zip(&totals).enumerate() {
        let s = first + i as u64;
        if o == t {
            clean_run += 1;
            continue;
        }
        match out.last_mut() {
            Some(w) if clean_run <= gap_s && w.end_ns / SECOND + clean_run == s => {
                w.end_ns = (s + 1) * SECOND;
                w.failed += t - o;
                w.total += t;
            }
            _ => out.push(Outage {
                start_ns: s * SECOND,
                end_ns: (s + 1) * SECOND,
                failed: t - o,
                total: t,
            }),
        }
        clean_run = 0;
    }
    // Count the clean seconds swallowed inside merged windows too.
    for w in &mut out {
        let (a, b) = (
            (w.start_ns / SECOND - first) as usize,
            (w.end_ns / SECOND - first) as usize,
        );
        w.total = totals[a..b].iter().sum();
        w.failed = w.total - oks[a..b].iter().sum::<u64>();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(sent_s: f64, ok: bool) -> Request {
        let sent_ns = (sent_s * 1e9) as u64;
        Request {
            sent_ns,
            done_ns: sent_ns + 10_000_000,
            ok,
        }
    }

    #[test]
    fn budget_runs_out_at_the_failure_that_breaks_the_slo() {
        // 1000 requests, one per 10 ms; SLO 99% allows 10 failures.
        let mut rs: Vec<Request> = (0..1000).map(|i| req(i as f64 * 0.01, true)).collect();
        for r in rs.iter_mut().skip(500).take(11) {
            r.ok = false;
        }
        let a = availability(&rs, 0.99, None);
        assert_eq!((a.total, a.ok), (1000, 989));
        // The 11th failure (request 510, sent at 5.10 s, done 10 ms later).
        assert_eq!(a.budget_exhausted_ns, Some(5_110_000_000));
        for r in rs.iter_mut().skip(510).take(1) {
            r.ok = true;
        }
        let a = availability(&rs, 0.99, None);
        assert_eq!(a.budget_exhausted_ns, None, "exactly at the SLO holds");
    }

    #[test]
    fn sliding_windows_find_a_short_outage_the_run_average_hides() {
        // 100 s at 10 req/s; 3 s of total failure at 50..53 s.
        let rs: Vec<Request> = (0..1000)
            .map(|i| {
                let t = i as f64 * 0.1;
                req(t, !(50.0..53.0).contains(&t))
            })
            .collect();
        let whole = availability(&rs, 0.95, None);
        assert!(whole.ratio() > 0.95 && whole.budget_exhausted_ns.is_none());
        let a = availability(&rs, 0.95, Some(10 * SECOND));
        let (s, e, o, t) = a.window_violation.expect("a bad window");
        assert_eq!((s, e), (41 * SECOND, 51 * SECOND));
        assert_eq!((o, t), (90, 100));
        let (_, _, wo, wt) = a.worst_window.unwrap();
        assert_eq!((wo, wt), (70, 100));
    }

    #[test]
    fn quantiles_use_nearest_rank() {
        let mut v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&mut v, 0.99), Some(99));
        assert_eq!(quantile(&mut v, 0.5), Some(50));
        assert_eq!(quantile(&mut [], 0.5), None);
        let rs = vec![req(0.0, true), req(1.0, false)];
        assert_eq!(latency_quantile(&rs, 0.99), Some(10_000_000));
    }

    #[test]
    fn outages_merge_across_short_gaps() {
        let mut rs = Vec::new();
        for s in 0..20 {
            for k in 0..4 {
                let failed = s == 3 || s == 5 || (s == 12 && k == 0);
                rs.push(req(s as f64 + k as f64 * 0.25, !failed));
            }
        }
        let o = outages(&rs, 1);
        assert_eq!(o.len(), 2);
        assert_eq!((o[0].start_ns, o[0].end_ns), (3 * SECOND, 6 * SECOND));
        assert_eq!((o[0].failed, o[0].total), (8, 12));
        assert_eq!((o[1].failed, o[1].total), (1, 4));
        assert!(outages(&[], 1).is_empty());
    }
}
