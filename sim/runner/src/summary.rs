//! The verdict of a run: every invariant judged by `faultline-checker` on
//! what the run observed, and the report's summary (faults, per-second
//! timeline, what the users of each service saw, nodes, store leaders, API
//! load).

use std::collections::BTreeSet;

use faultline_checker::availability::{self as avail, Request as Judged};
use faultline_checker::judge::{judge, slo::judged, store::set_verdict, Observations};
use faultline_checker::record::{Outcome, Sample, SampleOutcome, TrafficLog};
use faultline_reports::{
    DatacenterAvailability, FaultRecord, InvariantResult, LeaderChange, NodeTimeline, ReadyChange,
    RunStats, ServiceReport, Summary, TimelinePoint, UnavailableWindow,
};
use faultline_scenario::{InvariantKind, Scenario};

use crate::run::{reproduce_command, Finished, RunOptions};

const NS: f64 = 1e9;

/// Judges every invariant and assembles the summary.
pub fn summarize(s: &Scenario, opts: &RunOptions, run: Finished) -> Summary {
    let Finished {
        backend,
        observed,
        faults,
        trace_hash: hash,
        events,
        simulated_seconds,
        wall_seconds,
    } = run;
    let rec = observed.rec.borrow();
    let findings = observed.findings.borrow();
    let traffic = observed.traffic.borrow();
    let obs = Observations {
        store: &rec,
        final_state: &observed.final_state,
        converged: &observed.converged,
        raft: &observed.raft,
        cluster: s.has_nodes().then_some(&*findings),
        containers: observed.cluster.as_ref().map(|c| &*c.ledger),
        traffic: &traffic,
        control_plane_down: &observed.control_plane_down,
        healed_s: s.duration.0.as_secs_f64(),
        simulated_s: simulated_seconds,
    };
    let results: Vec<InvariantResult> = s
        .invariants
        .iter()
        .map(|inv| {
            let v = judge(inv, &obs);
            InvariantResult {
                name: inv.display_name().to_string(),
                kind: inv.kind().name().to_string(),
                holds: v.holds,
                detail: v.detail,
                at_s: v.at_ns.map(|ns| ns as f64 / 1e9),
            }
        })
        .collect();
    let set_lost = s
        .invariant(InvariantKind::NoLostWrites)
        .and_then(|_| set_verdict(&obs))
        .map_or(0, |v| v.lost.len() as u64);
    drop(findings);
    let passed = results.iter().all(|r| r.holds);
    let step = crate::observe::step_seconds(simulated_seconds);
    let services = services(s, &traffic, &faults, step, simulated_seconds);
    let nodes = observed
        .cluster
        .as_ref()
        .map(|c| {
            let names: Vec<String> = c.nodes.iter().map(|(n, _)| n.clone()).collect();
            let end_ns = (simulated_seconds * 1e9) as u64;
            let pods = c.ledger.pods_per_host(&names, step * 1_000_000_000, end_ns);
            let f = observed.findings.borrow();
            c.nodes
                .iter()
                .zip(pods)
                .map(|((node, dc), pods)| NodeTimeline {
                    node: node.clone(),
                    datacenter: dc.clone(),
                    pods,
                    ready: f
                        .readiness
                        .get(node)
                        .into_iter()
                        .flatten()
                        .map(|(at, status)| ReadyChange {
                            t_s: *at as f64 / 1e9,
                            status: status.clone(),
                        })
                        .collect(),
                })
                .collect()
        })
        .unwrap_or_default();
    let api = observed
        .cluster
        .as_ref()
        .map(|c| c.api.series(step, simulated_seconds))
        .unwrap_or_default();
    let fault_schedule =
        faultline_faults::schedule::plan_toml(&faultline_faults::plan(s, opts.seed));
    Summary {
        scenario: s.name.clone(),
        path: opts.path.clone(),
        seed: opts.seed,
        verdict: if passed { "pass" } else { "fail" }.into(),
        expect: format!("{:?}", s.expect).to_lowercase(),
        backend: backend.into(),
        trace_hash: format!("{hash:016x}"),
        simulated_seconds,
        wall_seconds,
        events,
        faults,
        invariants: results,
        reproduce: reproduce_command(&opts.path, opts.seed, backend),
        stats: RunStats {
            ops_ok: rec.ops_ok,
            ops_failed: rec.ops_failed,
            ops_unknown: rec.ops_unknown,
            set_acknowledged: rec.set_acknowledged.len() as u64,
            set_lost,
            watch_events: rec.watch.iter().map(|s| s.received.len() as u64).sum(),
            leaders: observed.raft.leaders().len() as u64,
            converged_after_s: observed.converged.as_ref().ok().map(|d| d.as_secs_f64()),
        },
        faulty_phase_s: s.duration.0.as_secs_f64(),
        timeline: if rec.samples.is_empty() {
            traffic_timeline(&traffic, simulated_seconds)
        } else {
            timeline(&rec.samples, simulated_seconds)
        },
        services,
        control_plane_down: observed
            .control_plane_down
            .iter()
            .map(|&(a, b)| (a as f64 / 1e9, b as f64 / 1e9))
            .collect(),
        leaders: observed
            .raft
            .leaders()
            .iter()
            .map(|(_, term, host, at)| LeaderChange {
                t_s: *at as f64 / 1e9,
                term: *term,
                host: host.clone(),
            })
            .collect(),
        step_s: step as f64,
        nodes,
        api,
        fault_schedule,
    }
}

/// User requests as store-client samples, for the timeline.
fn traffic_timeline(log: &TrafficLog, seconds: f64) -> Vec<TimelinePoint> {
    let samples: Vec<Sample> = log
        .requests
        .iter()
        .map(|r| Sample {
            invoke_ns: r.sent_ns,
            complete_ns: Some(r.done_ns),
            outcome: if r.outcome == Outcome::Ok {
                SampleOutcome::Ok
            } else {
                SampleOutcome::Failed
            },
        })
        .collect();
    timeline(&samples, seconds)
}

/// Buckets client operations by simulated second.
fn timeline(samples: &[Sample], seconds: f64) -> Vec<TimelinePoint> {
    let n = seconds.ceil().max(1.0) as usize;
    let mut points: Vec<TimelinePoint> = (0..n)
        .map(|i| TimelinePoint {
            t_s: i as f64,
            ..Default::default()
        })
        .collect();
    let mut latencies: Vec<Vec<u64>> = vec![Vec::new(); n];
    let sec = |ns: u64| ((ns / 1_000_000_000) as usize).min(n - 1);
    for smp in samples {
        match (smp.outcome, smp.complete_ns) {
            (SampleOutcome::Ok, Some(done)) => {
                points[sec(done)].ok += 1;
                latencies[sec(done)].push(done.saturating_sub(smp.invoke_ns));
            }
            (SampleOutcome::Failed, Some(done)) => points[sec(done)].failed += 1,
            _ => points[sec(smp.invoke_ns)].unknown += 1,
        }
    }
    for (p, l) in points.iter_mut().zip(latencies) {
        if let Some((p50, p99)) = crate::observe::p50_p99_ms(l) {
            (p.p50_ms, p.p99_ms) = (p50, p99);
        }
    }
    points
}

/// What the users of each service saw, with a time series in steps of
/// `step` seconds up to `end_s`.
fn services(
    s: &Scenario,
    log: &TrafficLog,
    faults: &[FaultRecord],
    step: u64,
    end_s: f64,
) -> Vec<ServiceReport> {
    let mut out = Vec::new();
    for (svc, name) in log.services.iter().enumerate() {
        let svc = svc as u16;
        let reqs = judged(log, svc, 0, u64::MAX);
        let a = avail::availability(&reqs, 1.0, None);
        let ms =
            |q: f64, r: &[Judged]| avail::latency_quantile(r, q).map_or(0.0, |l| l as f64 / 1e6);
        let dcs: BTreeSet<&str> = log.clients.iter().map(|(_, dc)| dc.as_str()).collect();
        let by_datacenter = dcs
            .into_iter()
            .map(|dc| {
                let r: Vec<Judged> = log
                    .requests
                    .iter()
                    .filter(|r| r.service == svc && log.clients[r.client as usize].1 == dc)
                    .map(|r| r.judged())
                    .collect();
                let d = avail::availability(&r, 1.0, None);
                DatacenterAvailability {
                    datacenter: dc.to_string(),
                    requests: d.total,
                    ok: d.ok,
                    availability: d.ratio(),
                    p99_ms: ms(0.99, &r),
                }
            })
            .filter(|d| d.requests > 0)
            .collect();
        let unavailable = avail::outages(&reqs, 1)
            .into_iter()
            .map(|o| {
                let (s, e) = (o.start_ns as f64 / NS, o.end_ns as f64 / NS);
                UnavailableWindow {
                    start_s: s,
                    end_s: e,
                    failed: o.failed,
                    total: o.total,
                    faults: faults
                        .iter()
                        .filter(|f| f.start_s < e && f.end_s.is_none_or(|end| end > s))
                        .map(|f| format!("{} {}", f.kind, f.target))
                        .collect(),
                }
            })
            .collect();
        let pods: BTreeSet<u32> = log
            .requests
            .iter()
            .filter(|r| r.service == svc)
            .filter_map(|r| r.pod)
            .collect();
        out.push(ServiceReport {
            service: name.clone(),
            requests: a.total,
            ok: a.ok,
            availability: a.ratio(),
            p50_ms: ms(0.5, &reqs),
            p99_ms: ms(0.99, &reqs),
            by_datacenter,
            pods_answering: pods.len() as u64,
            unavailable,
            slo: crate::observe::slo_of(s, name),
            series: crate::observe::service_series(log, svc, step, end_s),
        });
    }
    out
}
