//! The time series a run's report draws: API server requests per step,
//! pods per node, node readiness, and what the users of each service saw.
//!
//! Everything here watches from outside the simulated cluster and feeds
//! nothing back: recording adds no event, timer or message, so a run's
//! trace hash is the same whether anyone reads these or not.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use faultline_apiserver::server::RequestObserver;
use faultline_reports::{ApiPoint, ServicePoint};

use faultline_checker::record::{Clock, Outcome, TrafficLog};
use faultline_scenario::{InvariantSpec, Scenario};

const NS: u64 = 1_000_000_000;

/// The step of a run's time series: whole seconds, a round number, and no
/// more than about 400 points over the run.
pub fn step_seconds(run_seconds: f64) -> u64 {
    let want = (run_seconds / 400.0).ceil().max(1.0) as u64;
    [1, 2, 5, 10, 15, 30, 60, 120, 300, 600]
        .into_iter()
        .find(|&s| s >= want)
        .unwrap_or(want)
}

/// Every API server's answers, counted per simulated second by class.
pub struct ApiLog {
    clock: Clock,
    /// second -> [requests, 4xx, 5xx or 429]
    per_second: RefCell<BTreeMap<u64, [u64; 3]>>,
}

impl ApiLog {
    pub fn new(clock: Clock) -> Rc<ApiLog> {
        Rc::new(ApiLog {
            clock,
            per_second: RefCell::new(BTreeMap::new()),
        })
    }

    /// The hook an API server calls with each answer's status code.
    pub fn observer(self: &Rc<Self>) -> RequestObserver {
        let log = self.clone();
        RequestObserver(Rc::new(move |code: u16| {
            let second = (log.clock)() / NS;
            let mut m = log.per_second.borrow_mut();
            let c = m.entry(second).or_default();
            c[0] += 1;
            match code {
                429 | 500.. => c[2] += 1,
                400..=499 => c[1] += 1,
                _ => {}
            }
        }))
    }

    /// One point per `step` seconds up to `end_s`.
    pub fn series(&self, step: u64, end_s: f64) -> Vec<ApiPoint> {
        let steps = (end_s / step as f64).ceil().max(1.0) as u64;
        let mut out: Vec<ApiPoint> = (0..steps)
            .map(|i| ApiPoint {
                t_s: (i * step) as f64,
                ..Default::default()
            })
            .collect();
        for (&second, c) in self.per_second.borrow().iter() {
            let i = ((second / step) as usize).min(out.len() - 1);
            out[i].requests += c[0];
            out[i].client_errors += c[1];
            out[i].server_errors += c[2];
        }
        out
    }
}

/// The strictest `availability` SLO `s` sets for `service`.
pub fn slo_of(s: &Scenario, service: &str) -> Option<f64> {
    s.invariants
        .iter()
        .filter_map(|i| match &i.spec {
            InvariantSpec::Availability(a) => Some(a),
            _ => None,
        })
        .filter(|a| a.service.as_deref().is_none_or(|x| x == service))
        .map(|a| a.at_least)
        .reduce(f64::max)
}

/// What the users of service `svc` saw, one point per `step` seconds:
/// requests by the time they were sent, latency of the successful ones.
pub fn service_series(log: &TrafficLog, svc: u16, step: u64, end_s: f64) -> Vec<ServicePoint> {
    let steps = (end_s / step as f64).ceil().max(1.0) as usize;
    let mut points: Vec<ServicePoint> = (0..steps)
        .map(|i| ServicePoint {
            t_s: (i as u64 * step) as f64,
            ..Default::default()
        })
        .collect();
    let mut latencies: Vec<Vec<u64>> = vec![Vec::new(); steps];
    for r in log.requests.iter().filter(|r| r.service == svc) {
        let i = ((r.sent_ns / (step * NS)) as usize).min(steps - 1);
        points[i].requests += 1;
        if r.outcome == Outcome::Ok {
            points[i].ok += 1;
            latencies[i].push(r.done_ns.saturating_sub(r.sent_ns));
        }
    }
    for (p, l) in points.iter_mut().zip(latencies) {
        if let Some((p50, p99)) = p50_p99_ms(l) {
            (p.p50_ms, p.p99_ms) = (p50, p99);
        }
    }
    points
}

/// The median and 99th percentile of latencies in nanoseconds, as
/// milliseconds (nearest rank); `None` for none.
pub fn p50_p99_ms(mut l: Vec<u64>) -> Option<(f64, f64)> {
    if l.is_empty() {
        return None;
    }
    l.sort_unstable();
    let at = |q: f64| l[((l.len() - 1) as f64 * q).round() as usize] as f64 / 1e6;
    Some((at(0.50), at(0.99)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round_and_few() {
        assert_eq!(step_seconds(60.0), 1);
        assert_eq!(step_seconds(400.0), 1);
        assert_eq!(step_seconds(401.0), 2);
        assert_eq!(step_seconds(1900.0), 5);
        assert_eq!(step_seconds(3.0 * 3600.0), 30);
    }

    #[test]
    fn the_api_log_counts_by_class_and_step() {
        let now = Rc::new(std::cell::Cell::new(0u64));
        let clock: Clock = {
            let now = now.clone();
            Rc::new(move || now.get())
        };
        let log = ApiLog::new(clock);
        let obs = log.observer();
        (obs.0)(200);
        (obs.0)(409);
        now.set(3 * NS);
        (obs.0)(503);
        (obs.0)(429);
        let s = log.series(2, 4.0);
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].requests, s[0].client_errors, s[0].server_errors),
            (2, 1, 0)
        );
        assert_eq!(
            (s[1].requests, s[1].client_errors, s[1].server_errors),
            (2, 0, 2)
        );
        assert_eq!(s[1].t_s, 2.0);
    }
}
