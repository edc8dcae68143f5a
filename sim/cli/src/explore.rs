//! `faultline sim explore`: runs scenarios over a range of seeds, each run in
//! its own child process (`faultline sim run`), several at a time.
//!
//! Processes rather than threads: a simulation is single-threaded and
//! deterministic by construction, and a child that panics or runs away
//! cannot take the sweep down with it.
#![allow(clippy::disallowed_methods)] // the sweep itself is real, not simulated

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Args;

#[derive(Args)]
pub struct ExploreArgs {
    /// Scenario files or folders of them.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Seeds to run, as `A..B` (B excluded) or a single seed.
    #[arg(long, default_value = "1..101")]
    seeds: String,
    /// Runs at a time (default: the number of cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Run every seed even after a failure (default: stop at the first).
    #[arg(long)]
    keep_going: bool,
    /// Run only shard I of N (1-based, e.g. `2/4`): the jobs of the full
    /// list (scenario by scenario, seed by seed) whose index modulo N is
    /// I - 1. N processes given `1/N` through `N/N` cover every run once.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// Folder for the failing runs' reports.
    #[arg(long, default_value = "reports/out/explore")]
    report: PathBuf,
}

fn parse_seeds(s: &str) -> Result<std::ops::Range<u64>, String> {
    if let Some((a, b)) = s.split_once("..") {
        let a: u64 = a
            .trim()
            .parse()
            .map_err(|_| format!("bad seed range {s:?}"))?;
        let b: u64 = b
            .trim()
            .parse()
            .map_err(|_| format!("bad seed range {s:?}"))?;
        if a >= b {
            return Err(format!("empty seed range {s:?}"));
        }
        Ok(a..b)
    } else {
        let a: u64 = s.trim().parse().map_err(|_| format!("bad seed {s:?}"))?;
        Ok(a..a + 1)
    }
}

/// Parses `I/N` (1-based shard I of N).
fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("bad shard {s:?}: write it as I/N, e.g. 2/4 (shard 2 of 4)");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let i: usize = i.trim().parse().map_err(|_| bad())?;
    let n: usize = n.trim().parse().map_err(|_| bad())?;
    if n == 0 {
        return Err(format!("bad shard {s:?}: N must be at least 1"));
    }
    if i == 0 || i > n {
        return Err(format!(
            "bad shard {s:?}: I must be between 1 and N ({n}); shards are numbered from 1"
        ));
    }
    Ok((i, n))
}

/// `: 1, 3, 5`, or for a long list `: 2, 6, 10, ..., 498 (step 4)`: the
/// seeds of one scenario a shard runs (an arithmetic progression).
fn seed_list(seeds: &[u64]) -> String {
    match seeds {
        [] => String::new(),
        [a, b, c, .., z] if seeds.len() > 12 => {
            format!(": {a}, {b}, {c}, ..., {z} (step {})", b - a)
        }
        _ => format!(
            ": {}",
            seeds
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `95` -> `1m35s`: a short human duration, whole seconds.
fn hms(secs: f64) -> String {
    let t = secs.max(0.0).round() as u64;
    let (h, m, s) = (t / 3600, t / 60 % 60, t % 60);
    if h > 0 {
        format!("{h}h{m:02}m{s:02}s")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| format!("{}: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

struct Job {
    /// Index into the scenario list (and the per-scenario tally).
    file: usize,
    scenario: PathBuf,
    expect_fail: bool,
    seed: u64,
}

/// What one scenario's runs came to.
struct Tally {
    name: String,
    expect_fail: bool,
    runs: usize,
    passed: usize,
    failed: usize,
    wall: f64,
}

struct Running {
    job: Job,
    child: Child,
    started: Instant,
}

pub fn explore(args: ExploreArgs) -> ExitCode {
    let seeds = match parse_seeds(&args.seeds) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: --seeds: {e}");
            return ExitCode::from(2);
        }
    };
    let shard = match args.shard.as_deref().map(parse_shard).transpose() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: --shard: {e}");
            return ExitCode::from(2);
        }
    };
    let files = match scenario_files(&args.paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // Every file is checked before any seed runs, in every shard.
    let mut all = Vec::new();
    let mut tallies = Vec::new();
    for (file, f) in files.iter().enumerate() {
        let s = match faultline_sim::Scenario::load(f) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        let expect_fail = s.expect == faultline_sim::scenario::Expect::Fail;
        tallies.push(Tally {
            name: s.name.clone(),
            expect_fail,
            runs: 0,
            passed: 0,
            failed: 0,
            wall: 0.0,
        });
        for seed in seeds.clone() {
            all.push(Job {
                file,
                scenario: f.clone(),
                expect_fail,
                seed,
            });
        }
    }
    let full = all.len();
    let mut queue: VecDeque<Job> = match shard {
        Some((i, n)) => all
            .into_iter()
            .enumerate()
            .filter(|(k, _)| k % n == i - 1)
            .map(|(_, j)| j)
            .collect(),
        None => all.into(),
    };
    let jobs = args
        .jobs
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .max(1);
    let exe = std::env::current_exe().expect("own executable path");
    let total = queue.len();
    println!(
        "exploring {} scenario(s) x {} seeds = {} runs, {} at a time",
        files.len(),
        seeds.end - seeds.start,
        full,
        jobs
    );
    if let Some((i, n)) = shard {
        println!(
            "shard {i}/{n}: {total} of the {full} runs (runs {i}, {}, {}, ... of the full list)",
            i + n,
            i + 2 * n
        );
        for (file, f) in files.iter().enumerate() {
            let mine: Vec<u64> = queue
                .iter()
                .filter(|j| j.file == file)
                .map(|j| j.seed)
                .collect();
            println!(
                "  {}: {} seed(s){}",
                f.display(),
                mine.len(),
                seed_list(&mine)
            );
        }
    }
    let start = Instant::now();
    let mut running: Vec<Running> = Vec::new();
    let mut done = 0usize;
    let mut failures: Vec<(Job, String)> = Vec::new();
    let mut wall_total = 0.0;
    let mut last_progress = Instant::now();
    loop {
        let stop = !args.keep_going && !failures.is_empty();
        while running.len() < jobs && !stop {
            let Some(job) = queue.pop_front() else { break };
            let dir = report_dir(&args.report, &job.scenario, job.seed);
            let child = Command::new(&exe)
                .args(["sim", "run"])
                .arg(&job.scenario)
                .args(["--seed", &job.seed.to_string(), "--report"])
                .arg(&dir)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn();
            match child {
                Ok(child) => running.push(Running {
                    job,
                    child,
                    started: Instant::now(),
                }),
                Err(e) => {
                    eprintln!("error: cannot start {}: {e}", exe.display());
                    return ExitCode::from(2);
                }
            }
        }
        if running.is_empty() {
            break;
        }
        let mut i = 0;
        while i < running.len() {
            match running[i].child.try_wait() {
                Ok(Some(_)) => {
                    let r = running.swap_remove(i);
                    let elapsed = r.started.elapsed().as_secs_f64();
                    wall_total += elapsed;
                    let out = r.child.wait_with_output().expect("child finished");
                    let code = out.status.code().unwrap_or(101);
                    let failed = !matches!((code, r.job.expect_fail), (0, false) | (1, true));
                    done += 1;
                    let tally = &mut tallies[r.job.file];
                    tally.runs += 1;
                    tally.wall += elapsed;
                    if failed {
                        tally.failed += 1;
                        let stdout = String::from_utf8_lossy(&out.stdout);
                        let stderr = String::from_utf8_lossy(&out.stderr);
                        let why = if r.job.expect_fail && code == 0 {
                            "expected a violation but every invariant held".to_string()
                        } else {
                            stdout
                                .lines()
                                .filter(|l| l.contains("[FAIL]"))
                                .chain(stderr.lines().filter(|l| !l.trim().is_empty()).take(3))
                                .collect::<Vec<_>>()
                                .join(" | ")
                        };
                        println!(
                            "FAIL {} seed {} (exit {code}): {why}",
                            r.job.scenario.display(),
                            r.job.seed
                        );
                        failures.push((r.job, why));
                    } else {
                        tally.passed += 1;
                    }
                }
                Ok(None) => i += 1,
                Err(e) => {
                    eprintln!("error: waiting for a run: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        if last_progress.elapsed() >= Duration::from_secs(10) || done == total {
            last_progress = Instant::now();
            let stopping = !args.keep_going && !failures.is_empty();
            println!(
                "progress: {done}/{total} seeds done, {} failed, {} elapsed, ETA {}",
                failures.len(),
                hms(start.elapsed().as_secs_f64()),
                eta(done, wall_total, &running, queue.len(), jobs, stopping)
                    .map(hms)
                    .unwrap_or_else(|| "unknown".into())
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = start.elapsed().as_secs_f64();
    print_table(&tallies);
    println!(
        "explored {done} runs in {elapsed:.1}s ({:.2}s per run, {:.0} runs per hour)",
        wall_total / done.max(1) as f64,
        done as f64 / elapsed.max(1e-9) * 3600.0
    );
    if done < total {
        println!(
            "{} runs not started: stopped at the first failure (--keep-going runs them all)",
            total - done
        );
    }
    if failures.is_empty() {
        println!("verdict: pass");
        ExitCode::SUCCESS
    } else {
        println!("verdict: fail ({} failing runs)", failures.len());
        println!("failing seeds:");
        for (job, _) in &failures {
            let dir = report_dir(&args.report, &job.scenario, job.seed);
            let report = if dir.join("summary.json").exists() {
                dir.display().to_string()
            } else {
                format!("{} (none written: the run ended early)", dir.display())
            };
            println!(
                "  faultline sim run {} --seed {}    report: {report}",
                job.scenario.display(),
                job.seed
            );
        }
        ExitCode::from(1)
    }
}

/// Seconds until the last run ends: the work left (each queued run at the
/// mean wall time per finished run, each run in flight at what its mean
/// leaves) shared by `jobs` workers, and never less than the longest wait
/// for a run in flight. `None` until a run has finished.
fn eta(
    done: usize,
    wall_total: f64,
    running: &[Running],
    queued: usize,
    jobs: usize,
    stopping: bool,
) -> Option<f64> {
    if done == 0 {
        return if running.is_empty() && (queued == 0 || stopping) {
            Some(0.0)
        } else {
            None
        };
    }
    let mean = wall_total / done as f64;
    let in_flight: Vec<f64> = running
        .iter()
        .map(|r| (mean - r.started.elapsed().as_secs_f64()).max(0.0))
        .collect();
    let queued = if stopping { 0 } else { queued };
    let work = in_flight.iter().sum::<f64>() + queued as f64 * mean;
    let longest = in_flight.iter().cloned().fold(0.0, f64::max);
    Some((work / jobs as f64).max(longest))
}

fn print_table(tallies: &[Tally]) {
    println!("results (passed: as expected; failed: not as expected):");
    let width = tallies
        .iter()
        .map(|t| t.name.len())
        .chain([8])
        .max()
        .unwrap_or(8);
    println!(
        "{:<width$}  {:<6}  {:>6}  {:>6}  {:>6}  {:>10}",
        "scenario", "expect", "runs", "passed", "failed", "mean wall"
    );
    let row = |name: &str, expect: &str, runs: usize, passed: usize, failed: usize, wall: f64| {
        let mean = if runs == 0 {
            "-".to_string()
        } else {
            format!("{:.2}s", wall / runs as f64)
        };
        println!("{name:<width$}  {expect:<6}  {runs:>6}  {passed:>6}  {failed:>6}  {mean:>10}");
    };
    for t in tallies {
        let expect = if t.expect_fail { "fail" } else { "pass" };
        row(&t.name, expect, t.runs, t.passed, t.failed, t.wall);
    }
    row(
        "total",
        "",
        tallies.iter().map(|t| t.runs).sum(),
        tallies.iter().map(|t| t.passed).sum(),
        tallies.iter().map(|t| t.failed).sum(),
        tallies.iter().map(|t| t.wall).sum(),
    );
}

fn report_dir(root: &Path, scenario: &Path, seed: u64) -> PathBuf {
    let stem = scenario
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    root.join(format!("{stem}-seed{seed}"))
}
