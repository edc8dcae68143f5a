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
    scenario: PathBuf,
    expect_fail: bool,
    seed: u64,
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
    let files = match scenario_files(&args.paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut queue = VecDeque::new();
    for f in &files {
        let s = match faultline_sim::Scenario::load(f) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        let expect_fail = s.expect == faultline_sim::scenario::Expect::Fail;
        for seed in seeds.clone() {
            queue.push_back(Job {
                scenario: f.clone(),
                expect_fail,
                seed,
            });
        }
    }
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
        total,
        jobs
    );
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
                    if failed {
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
            println!(
                "progress: {done}/{total} runs, {} failed, {:.0}s elapsed",
                failures.len(),
                start.elapsed().as_secs_f64()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "explored {done} runs in {elapsed:.1}s ({:.2}s per run, {:.0} runs per hour)",
        wall_total / done.max(1) as f64,
        done as f64 / elapsed.max(1e-9) * 3600.0
    );
    if failures.is_empty() {
        println!("verdict: pass");
        ExitCode::SUCCESS
    } else {
        println!("verdict: fail ({} failing runs)", failures.len());
        for (job, _) in &failures {
            println!(
                "reproduce: faultline sim run {} --seed {}",
                job.scenario.display(),
                job.seed
            );
        }
        ExitCode::from(1)
    }
}

fn report_dir(root: &Path, scenario: &Path, seed: u64) -> PathBuf {
    let stem = scenario
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    root.join(format!("{stem}-seed{seed}"))
}
