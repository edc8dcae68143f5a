//! `faultline sim explore`: runs scenarios over a range of seeds, each run in
//! its own child process (`faultline sim run`), several at a time.
//!
//! Processes rather than threads: a simulation is single-threaded and
//! deterministic by construction, and a child that panics or runs away
//! cannot take the sweep down with it.
//!
//! Children write data only (`--no-charts`); the sweep draws the full
//! report of each failing run (and each expected failure) itself, then
//! writes the sweep report (`faultline_reports::sweep`): `sweep.json`,
//! `index.html` and `junit.xml` in the `--report` folder. On a terminal a
//! progress bar counts the runs; elsewhere (CI logs) a `progress:` line
//! every 10 seconds does.
#![allow(clippy::disallowed_methods)] // the sweep itself is real, not simulated

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use clap::Args;
use faultline_reports::sweep::{ScenarioTally, SweepReport, SweepRun};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

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
    /// Folder for the sweep report: `index.html` (tables, failing seeds
    /// with their reproduce commands, a histogram of the violated
    /// invariants, wall time per seed), `sweep.json` (the data, see
    /// docs/sweep-report.md), `junit.xml` (a test case per failing run and
    /// per clean scenario), and one `NAME-seedN/` folder per run: its
    /// summary.json and junit.xml, plus its page (`index.html`) when it
    /// failed or failed as expected.
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

/// The scenario files named, with each folder replaced by its `.toml`
/// files in name order.
pub(crate) fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
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
    path: PathBuf,
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
    /// Where the child's stdout and stderr go. Files, not pipes: a child
    /// that writes more than a pipe holds would block until read, and the
    /// sweep reads only once the child has exited.
    output: [PathBuf; 2],
}

/// Files for a child's stdout and stderr, next to its report folder.
fn output_files(dir: &Path) -> std::io::Result<([PathBuf; 2], [std::fs::File; 2])> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let paths = [
        parent.join(format!(".{name}.stdout")),
        parent.join(format!(".{name}.stderr")),
    ];
    let files = [
        std::fs::File::create(&paths[0])?,
        std::fs::File::create(&paths[1])?,
    ];
    Ok((paths, files))
}

/// The child's exit status and what it wrote; removes the files.
fn collect(status: std::process::ExitStatus, output: &[PathBuf; 2]) -> Output {
    let read = |p: &PathBuf| {
        let bytes = std::fs::read(p).unwrap_or_default();
        let _ = std::fs::remove_file(p);
        bytes
    };
    Output {
        status,
        stdout: read(&output[0]),
        stderr: read(&output[1]),
    }
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
        let s = match faultline_runner::Scenario::load(f) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        let expect_fail = s.expect == faultline_runner::scenario::Expect::Fail;
        tallies.push(Tally {
            name: s.name.clone(),
            path: f.clone(),
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
    let started_unix_s = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let mut progress = Progress::new(total);
    let mut running: Vec<Running> = Vec::new();
    let mut done = 0usize;
    let mut failures: Vec<Job> = Vec::new();
    let mut runs: Vec<(usize, SweepRun)> = Vec::new();
    let mut wall_total = 0.0;
    loop {
        let stop = !args.keep_going && !failures.is_empty();
        while running.len() < jobs && !stop {
            let Some(job) = queue.pop_front() else { break };
            let dir = report_dir(&args.report, &job.scenario, job.seed);
            // A report left by an earlier sweep must not pass for this
            // run's (a run that crashes writes none).
            if dir.exists() {
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    progress.warn(&format!(
                        "warning: cannot clear {} from an earlier sweep: {e}",
                        dir.display()
                    ));
                }
            }
            let child = output_files(&dir).and_then(|(output, [out, err])| {
                Command::new(&exe)
                    .args(["sim", "run"])
                    .arg(&job.scenario)
                    .args(["--seed", &job.seed.to_string(), "--no-charts", "--report"])
                    .arg(&dir)
                    .stdout(Stdio::from(out))
                    .stderr(Stdio::from(err))
                    .spawn()
                    .map(|child| (child, output))
            });
            match child {
                Ok((child, output)) => running.push(Running {
                    job,
                    child,
                    started: Instant::now(),
                    output,
                }),
                Err(e) => {
                    progress.finish();
                    eprintln!("error: cannot start {}: {e}", exe.display());
                    return ExitCode::from(2);
                }
            }
        }
        if running.is_empty() {
            break;
        }
        let mut finished = false;
        let mut i = 0;
        while i < running.len() {
            match running[i].child.try_wait() {
                Ok(Some(status)) => {
                    let r = running.swap_remove(i);
                    let file = r.job.file;
                    let elapsed = r.started.elapsed().as_secs_f64();
                    wall_total += elapsed;
                    let out = collect(status, &r.output);
                    let run = sweep_run(&args.report, &tallies[file], &r.job, &out, elapsed);
                    done += 1;
                    finished = true;
                    let tally = &mut tallies[file];
                    tally.runs += 1;
                    tally.wall += elapsed;
                    if run.ok {
                        tally.passed += 1;
                    } else {
                        tally.failed += 1;
                        progress.line(&format!(
                            "FAIL {} seed {} (exit {}): {}",
                            r.job.scenario.display(),
                            r.job.seed,
                            out.status.code().unwrap_or(101),
                            run.reason
                        ));
                    }
                    let run = render_run(&args.report, run, &progress);
                    if !run.ok {
                        failures.push(r.job);
                    }
                    runs.push((file, run));
                }
                Ok(None) => i += 1,
                Err(e) => {
                    progress.finish();
                    eprintln!("error: waiting for a run: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        if progress.due(finished, done == total) {
            let stopping = !args.keep_going && !failures.is_empty();
            progress.update(
                done,
                failures.len(),
                start.elapsed().as_secs_f64(),
                eta(done, wall_total, &running, queue.len(), jobs, stopping),
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    progress.finish();
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
    // Scenario by scenario, seed by seed, whatever order the runs ended in.
    runs.sort_by_key(|(file, run)| (*file, run.seed));
    let sweep = SweepReport {
        seeds: args.seeds.clone(),
        shard: args.shard.clone(),
        started_unix_s,
        elapsed_s: elapsed,
        jobs,
        planned_runs: total,
        verdict: if failures.is_empty() && done == total {
            "pass"
        } else {
            "fail"
        }
        .into(),
        scenarios: tallies.iter().map(scenario_tally).collect(),
        runs: runs.into_iter().map(|(_, run)| run).collect(),
    };
    match faultline_reports::sweep::write_sweep(&sweep, &args.report) {
        Ok(()) => println!("sweep report: {}", args.report.join("index.html").display()),
        Err(e) => eprintln!("error: cannot write the sweep report: {e:#}"),
    }
    if failures.is_empty() {
        println!("verdict: pass");
        ExitCode::SUCCESS
    } else {
        println!("verdict: fail ({} failing runs)", failures.len());
        println!("failing seeds:");
        for job in &failures {
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
        row(
            &t.name,
            expect(t.expect_fail),
            t.runs,
            t.passed,
            t.failed,
            t.wall,
        );
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

/// `NAME-seedN`: a run's report folder inside the sweep folder, named
/// after the scenario file.
fn run_dir_name(scenario: &Path, seed: u64) -> String {
    let stem = scenario
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{stem}-seed{seed}")
}

fn report_dir(root: &Path, scenario: &Path, seed: u64) -> PathBuf {
    root.join(run_dir_name(scenario, seed))
}

/// What one finished run came to, from its exit code, its output and the
/// `summary.json` it wrote, if any. `root` is the sweep folder.
fn sweep_run(root: &Path, tally: &Tally, job: &Job, out: &Output, wall_seconds: f64) -> SweepRun {
    let code = out.status.code();
    // A child killed by a signal crashed like one that exited 101.
    let c = code.unwrap_or(101);
    let ok = matches!((c, job.expect_fail), (0, false) | (1, true));
    let name = run_dir_name(&job.scenario, job.seed);
    let summary = faultline_reports::Summary::read(&root.join(&name).join("summary.json")).ok();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // `  [FAIL] NAME: DETAIL`, one per violated invariant.
    let fail_lines: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("[FAIL] "))
        .collect();
    let failed_invariants: Vec<String> = match &summary {
        Some(s) => s
            .invariants
            .iter()
            .filter(|i| !i.holds)
            .map(|i| i.name.clone())
            .collect(),
        // A run whose cluster panicked writes no summary, but says so.
        None => fail_lines
            .iter()
            .map(|l| l.split_once(':').map_or(*l, |(n, _)| n).to_string())
            .collect(),
    };
    let verdict = match c {
        0 | 1 => summary.as_ref().map_or_else(
            || if c == 0 { "pass" } else { "fail" }.to_string(),
            |s| s.verdict.clone(),
        ),
        2 => "bad-input".to_string(),
        _ => "crash".to_string(),
    };
    let reason = if c == 0 && !job.expect_fail {
        String::new()
    } else if c == 0 {
        "expected a violation but every invariant held".to_string()
    } else {
        fail_lines
            .iter()
            .copied()
            .chain(stderr.lines().filter(|l| !l.trim().is_empty()).take(3))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let reproduce = summary.as_ref().map_or_else(
        || {
            format!(
                "faultline sim run {} --seed {}",
                job.scenario.display(),
                job.seed
            )
        },
        |s| s.reproduce.clone(),
    );
    SweepRun {
        scenario: tally.name.clone(),
        path: job.scenario.display().to_string(),
        seed: job.seed,
        expect: expect(job.expect_fail).to_string(),
        exit_code: code,
        ok,
        verdict,
        wall_seconds,
        failed_invariants,
        reason,
        report: summary.is_some().then_some(name),
        page: None,
        reproduce,
    }
}

/// Draws the full report of a run that failed, as expected or not, so the
/// sweep page can link to it. A run that wrote no summary has nothing to
/// draw; a drawing that fails is a warning, not a failed sweep.
fn render_run(root: &Path, mut run: SweepRun, progress: &Progress) -> SweepRun {
    if run.ok && run.verdict == "pass" {
        return run;
    }
    let Some(dir) = &run.report else {
        return run;
    };
    match faultline_reports::render_dir(&root.join(dir)) {
        Ok(_) => run.page = Some(format!("{dir}/index.html")),
        Err(e) => progress.warn(&format!(
            "warning: cannot draw the report of {} seed {}: {e:#}",
            run.path, run.seed
        )),
    }
    run
}

fn expect(fail: bool) -> &'static str {
    if fail {
        "fail"
    } else {
        "pass"
    }
}

fn scenario_tally(t: &Tally) -> ScenarioTally {
    ScenarioTally {
        name: t.name.clone(),
        path: t.path.display().to_string(),
        expect: expect(t.expect_fail).to_string(),
        runs: t.runs,
        passed: t.passed,
        failed: t.failed,
        mean_wall_s: (t.runs > 0).then(|| t.wall / t.runs as f64),
    }
}

/// Where the sweep reports how far it got: on a terminal, a bar (other
/// lines print above it); elsewhere, such as a CI log, a plain `progress:`
/// line every 10 seconds.
struct Progress {
    /// None when stdout is not a terminal.
    bar: Option<ProgressBar>,
    total: usize,
    last: Instant,
}

impl Progress {
    fn new(total: usize) -> Progress {
        let bar = std::io::stdout().is_terminal().then(|| {
            // No steady tick (a thread of its own): the polling loop
            // updates the bar.
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stdout());
            bar.set_style(
                ProgressStyle::with_template("[{bar:40}] {pos}/{len} runs, {msg}")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            bar
        });
        Progress {
            bar,
            total,
            last: Instant::now(),
        }
    }

    /// Prints a line of the sweep's output, above the bar if there is one.
    fn line(&self, s: &str) {
        match &self.bar {
            Some(bar) => bar.println(s),
            None => println!("{s}"),
        }
    }

    /// Prints a line on stderr, the bar out of the way.
    fn warn(&self, s: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{s}")),
            None => eprintln!("{s}"),
        }
    }

    /// Whether to update now: the bar when a run finished and a few times
    /// a second (elapsed time and ETA move); the plain line every 10
    /// seconds and once every run has finished.
    fn due(&self, finished: bool, all_done: bool) -> bool {
        match self.bar {
            Some(_) => finished || self.last.elapsed() >= Duration::from_millis(250),
            None => all_done || self.last.elapsed() >= Duration::from_secs(10),
        }
    }

    fn update(&mut self, done: usize, failed: usize, elapsed_s: f64, eta_s: Option<f64>) {
        self.last = Instant::now();
        let eta = eta_s
            .map(faultline_reports::hms)
            .unwrap_or_else(|| "unknown".into());
        match &self.bar {
            Some(bar) => {
                bar.set_message(format!(
                    "{failed} failed, {} elapsed, ETA {eta}",
                    faultline_reports::hms(elapsed_s)
                ));
                bar.set_position(done as u64);
            }
            None => println!(
                "progress: {done}/{} seeds done, {failed} failed, {} elapsed, ETA {eta}",
                self.total,
                faultline_reports::hms(elapsed_s)
            ),
        }
    }

    /// Takes the bar off the screen before the final table.
    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
