//! The service-level invariants, judged on every user request recorded:
//! `availability` (over the run and every sliding window, saying when the
//! error budget ran out), `latency` (a quantile of successful requests)
//! and `static-stability` (while the whole control plane is down, pods that
//! were serving keep serving).

use std::collections::BTreeSet;

use faultline_scenario::invariant::{Availability, Latency, StaticStability};

use crate::availability::{self as avail, Request as Judged};
use crate::record::TrafficLog;

const NS: f64 = 1e9;

/// The services an invariant is about: its `service`, or every one with
/// traffic.
pub fn services<'a>(service: Option<&str>, log: &'a TrafficLog) -> Vec<(u16, &'a str)> {
    log.services
        .iter()
        .enumerate()
        .filter(|(_, name)| service.is_none_or(|s| s == *name))
        .map(|(i, name)| (i as u16, name.as_str()))
        .collect()
}

/// The requests to `service` sent in `[from_ns, to_ns)`, as the availability oracle takes them.
pub fn judged(log: &TrafficLog, service: u16, from_ns: u64, to_ns: u64) -> Vec<Judged> {
    log.requests
        .iter()
        .filter(|r| r.service == service && r.sent_ns >= from_ns && r.sent_ns < to_ns)
        .map(|r| r.judged())
        .collect()
}

/// A ratio as a percentage: `99.950%` near 100%, `75.3%` elsewhere.
pub fn pct(x: f64) -> String {
    let p = x * 100.0;
    if (99.0..100.0).contains(&p) {
        format!("{p:.3}%")
    } else {
        format!("{p:.1}%")
    }
}

/// `availability`: over the run (and every `window`), at least `at_least`
/// of each service's requests succeed. Also says when it first broke
/// (simulated ns).
pub fn availability(inv: &Availability, log: &TrafficLog) -> (bool, String, Option<u64>) {
    let slo = inv.at_least;
    let window = inv.window.map(|w| w.0.as_nanos() as u64);
    let mut holds = true;
    let mut first: Option<u64> = None;
    let mut broke = |at: u64| first = Some(first.map_or(at, |f| f.min(at)));
    let mut parts = Vec::new();
    for (svc, name) in services(inv.service.as_deref(), log) {
        let reqs = judged(log, svc, 0, u64::MAX);
        let a = avail::availability(&reqs, slo, window);
        if a.total == 0 {
            holds = false;
            parts.push(format!("{name}: no request was sent"));
            continue;
        }
        let mut line = format!(
            "{name}: {} of {} requests succeeded (SLO {})",
            pct(a.ratio()),
            a.total,
            pct(slo)
        );
        if let Some(at) = a.budget_exhausted_ns {
            holds = false;
            broke(at);
            line.push_str(&format!(
                ", VIOLATED: the error budget ran out at {:.3}s",
                at as f64 / NS
            ));
        }
        if let Some((s, e, o, t)) = a.window_violation {
            holds = false;
            broke(e);
            line.push_str(&format!(
                ", VIOLATED in the window {:.0}s..{:.0}s: {} of {t}",
                s as f64 / NS,
                e as f64 / NS,
                pct(o as f64 / t as f64)
            ));
        } else if let Some((s, e, o, t)) = a.worst_window {
            line.push_str(&format!(
                "; worst {}s window {:.0}s..{:.0}s: {}",
                window.unwrap_or(0) / 1_000_000_000,
                s as f64 / NS,
                e as f64 / NS,
                pct(o as f64 / t as f64)
            ));
        }
        parts.push(line);
    }
    (holds, parts.join("; "), first)
}

/// `latency`: the `quantile` of successful requests' latency is below
/// `below`.
pub fn latency(inv: &Latency, log: &TrafficLog) -> (bool, String) {
    let q = inv.quantile.unwrap_or(0.99);
    let bound = inv.below.0;
    let mut holds = true;
    let mut parts = Vec::new();
    for (svc, name) in services(inv.service.as_deref(), log) {
        let reqs = judged(log, svc, 0, u64::MAX);
        match avail::latency_quantile(&reqs, q) {
            None => {
                holds = false;
                parts.push(format!("{name}: no successful request"));
            }
            Some(l) => {
                let ok = l < bound.as_nanos() as u64;
                holds &= ok;
                parts.push(format!(
                    "{name}: p{} {:.1}ms {} {}ms",
                    (q * 100.0).round(),
                    l as f64 / 1e6,
                    if ok { "<" } else { ">= (VIOLATED)" },
                    bound.as_millis()
                ));
            }
        }
    }
    (holds, parts.join("; "))
}

/// `static-stability`: during every control-plane outage, each service
/// keeps its SLO and every pod that answered in the minute before keeps
/// answering. Also says when the first outage that broke it began.
pub fn static_stability(
    inv: &StaticStability,
    log: &TrafficLog,
    outages: &[(u64, u64)],
) -> (bool, String, Option<u64>) {
    let slo = inv.at_least.unwrap_or(0.999);
    let mut first = None;
    if outages.is_empty() {
        return (
            false,
            "the control plane was never down, so static stability was not tested: take every master down (or a majority) in the scenario".into(),
            None,
        );
    }
    let mut holds = true;
    let mut parts = Vec::new();
    for &(from, to) in outages {
        for (svc, name) in services(inv.service.as_deref(), log) {
            let during = judged(log, svc, from, to);
            let a = avail::availability(&during, slo, None);
            let pods = |a: u64, b: u64| -> BTreeSet<u32> {
                log.requests
                    .iter()
                    .filter(|r| r.service == svc && r.sent_ns >= a && r.sent_ns < b)
                    .filter_map(|r| r.pod)
                    .collect()
            };
            let before = pods(from.saturating_sub(60_000_000_000), from);
            let still = pods(from, to);
            let gone: Vec<&str> = before
                .difference(&still)
                .map(|&p| log.pods[p as usize].as_str())
                .collect();
            let ok = a.total > 0 && a.ratio() >= slo && gone.is_empty();
            if !ok && holds {
                first = Some(from);
            }
            holds &= ok;
            parts.push(format!(
                "control plane down {:.0}s..{:.0}s: {name} served {} of {} requests (SLO {}), {} of {} pods kept answering{}",
                from as f64 / NS,
                to as f64 / NS,
                pct(a.ratio()),
                a.total,
                pct(slo),
                before.len() - gone.len(),
                before.len(),
                if gone.is_empty() {
                    String::new()
                } else {
                    format!(" (VIOLATED: silent: {})", gone.join(", "))
                }
            ));
        }
    }
    (holds, parts.join("; "), first)
}
