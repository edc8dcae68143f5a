//! Load and statistics: the put loop, latency percentiles and the disk's fsync floor.

use std::cell::Cell;
use std::fs::File;
use std::future::Future;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::systems::Target;
use super::Args;

pub(super) struct Stats {
    writes: usize,
    window: Duration,
    pub(super) p50: Duration,
    pub(super) p99: Duration,
    pub(super) max: Duration,
    pub(super) errors: u64,
    first_error: Option<String>,
    /// CPU seconds the three servers used during the phase (warm-up included).
    pub(super) server_cpu: f64,
}

impl Stats {
    pub(super) fn per_sec(&self) -> f64 {
        self.writes as f64 / self.window.as_secs_f64()
    }

    /// Server CPU microseconds per write (warm-up writes counted too).
    pub(super) fn cpu_us_per_write(&self, total_secs: f64) -> f64 {
        let writes = self.per_sec() * total_secs;
        self.server_cpu * 1e6 / writes.max(1.0)
    }

    pub(super) fn line(&self, system: &str, c: usize, total_secs: f64) -> String {
        let mut s = format!(
            "{system} c={c}: {:.0} writes/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} errors, servers used {:.1} CPU s ({:.0} us/write)",
            self.per_sec(),
            ms(self.p50),
            ms(self.p99),
            ms(self.max),
            self.errors,
            self.server_cpu,
            self.cpu_us_per_write(total_secs),
        );
        if let Some(e) = &self.first_error {
            s.push_str(&format!(" (first: {e})"));
        }
        s
    }
}

/// Seconds of load per phase, warm-up included.
pub(super) fn total_secs(args: &Args) -> f64 {
    (args.warmup + args.seconds) as f64
}

pub(super) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `c` tasks issue sequential puts to distinct keys for `warmup + seconds`;
/// requests issued after the warm-up and answered before the end count.
// A benchmark of real time: it reads the real clock on purpose.
#[allow(clippy::disallowed_methods)]
pub(super) async fn run_load(
    target: &Target,
    system: &str,
    c: usize,
    args: &Args,
    value: &Rc<[u8]>,
) -> Result<Stats> {
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup);
    let end = measure_from + Duration::from_secs(args.seconds);
    let errors = Cell::new(0u64);
    let first_error: std::cell::RefCell<Option<String>> = Default::default();
    // The tasks borrow `target`, so they run as futures joined here rather
    // than spawned: the same single thread either way.
    let tasks = (0..c).map(|t| {
        let (errors, first_error) = (&errors, &first_error);
        async move {
            let mut lat = Vec::new();
            let mut n = 0u64;
            loop {
                let issued = Instant::now();
                if issued >= end {
                    break;
                }
                let key = format!("bench/{system}/c{c}/t{t}/{n:010}");
                n += 1;
                match target.put(key.as_bytes(), value).await {
                    Ok(rev) if rev > 0 => {
                        let done = Instant::now();
                        if issued >= measure_from && done <= end {
                            lat.push(done - issued);
                        }
                        if args.slow_ms.is_some_and(|s| done - issued >= Duration::from_millis(s)) {
                            let wall = std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .unwrap_or_default();
                            println!(
                                "  slow: {system} c={c} task {t}: {:.1} ms, answered at t+{:.3} s (unix {:.3})",
                                ms(done - issued),
                                (done - start).as_secs_f64(),
                                wall.as_secs_f64()
                            );
                        }
                    }
                    r => {
                        errors.set(errors.get() + 1);
                        let msg = match r {
                            Ok(rev) => format!("bad revision {rev}"),
                            Err(e) => format!("{e:#}"),
                        };
                        first_error.borrow_mut().get_or_insert(msg);
                        if errors.get() > 1000 {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            lat
        }
    });
    let per_task = join_all(tasks.collect()).await;
    let mut all: Vec<Duration> = per_task.into_iter().flatten().collect();
    if errors.get() > 1000 {
        bail!(
            "{system} c={c}: too many errors (first: {})",
            first_error.borrow().clone().unwrap_or_default()
        );
    }
    all.sort_unstable();
    Ok(Stats {
        writes: all.len(),
        window: Duration::from_secs(args.seconds),
        p50: percentile(&all, 50.0),
        p99: percentile(&all, 99.0),
        max: all.last().copied().unwrap_or_default(),
        errors: errors.get(),
        first_error: first_error.take(),
        server_cpu: 0.0,
    })
}

/// Polls every future to completion on this task (no `futures` crate).
async fn join_all<F: Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut outs: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, out) in futs.iter_mut().zip(outs.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *out = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outs.into_iter()
        .map(|o| o.expect("every future finished"))
        .collect()
}

pub(super) struct DiskProbe {
    pub(super) n: usize,
    pub(super) p50: Duration,
    pub(super) p99: Duration,
}

/// What one small write plus `fdatasync` costs on the scratch disk: the
/// floor under any durable write's latency.
// A benchmark of real time: it reads the real clock on purpose.
#[allow(clippy::disallowed_methods)]
pub(super) fn fsync_probe(path: &Path) -> Result<DiskProbe> {
    let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let block = [0x5au8; 4096];
    let mut samples = Vec::new();
    let until = Instant::now() + Duration::from_millis(500);
    let mut off = 0u64;
    while Instant::now() < until || samples.len() < 20 {
        let t = Instant::now();
        f.write_all_at(&block, off)?;
        f.sync_data()?;
        samples.push(t.elapsed());
        off += block.len() as u64;
        if samples.len() >= 2000 {
            break;
        }
    }
    drop(f);
    std::fs::remove_file(path).ok();
    samples.sort_unstable();
    Ok(DiskProbe {
        n: samples.len(),
        p50: percentile(&samples, 50.0),
        p99: percentile(&samples, 99.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&v, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&[], 99.0), Duration::ZERO);
    }
}
