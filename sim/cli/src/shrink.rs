//! `faultline sim shrink`: minimises the fault schedule of a failing seed
//! and writes it as a new scenario file (see `faultline_runner::shrink`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Args)]
pub struct ShrinkArgs {
    /// The scenario file (TOML).
    scenario: PathBuf,
    /// The failing seed.
    #[arg(long)]
    seed: u64,
    /// Where to write the shrunk scenario (default:
    /// reports/out/NAME-seedN-shrunk.toml).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The invariant to keep violated, by name or kind (default: the first
    /// one the run violates).
    #[arg(long)]
    invariant: Option<String>,
    /// Give up refining after this many runs (the result still fails).
    #[arg(long, default_value_t = 200)]
    max_runs: usize,
}

pub fn shrink(args: ShrinkArgs) -> ExitCode {
    let text = match std::fs::read_to_string(&args.scenario) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}: cannot read: {e}", args.scenario.display());
            return ExitCode::from(2);
        }
    };
    let path = args.scenario.display().to_string();
    let scenario = match faultline_runner::Scenario::parse(&text, &path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut progress = |line: &str| println!("shrink: {line}");
    let shrunk = match faultline_runner::shrink::shrink(
        &scenario,
        &text,
        &path,
        args.seed,
        args.invariant.as_deref(),
        args.max_runs,
        &mut progress,
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {path}: {e}");
            return ExitCode::from(2);
        }
    };
    let out = args.out.unwrap_or_else(|| {
        PathBuf::from(format!(
            "reports/out/{}-seed{}-shrunk.toml",
            scenario.name, args.seed
        ))
    });
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("error: {}: {e}", dir.display());
            return ExitCode::from(2);
        }
    }
    if let Err(e) = std::fs::write(&out, &shrunk.text) {
        eprintln!("error: {}: {e}", out.display());
        return ExitCode::from(2);
    }
    println!(
        "shrunk: {} of {} faults, still violating {} ({} runs)",
        shrunk.faults.len(),
        shrunk.original_faults,
        shrunk.invariant,
        shrunk.runs
    );
    for f in &shrunk.faults {
        let end = f
            .end
            .map(|e| format!("{:7.1}s", e.as_secs_f64()))
            .unwrap_or_else(|| "    end".into());
        println!(
            "  {:7.1}s .. {end}  {} {}",
            f.start.as_secs_f64(),
            f.kind().name(),
            f.spec.target().unwrap_or("")
        );
    }
    println!("wrote: {}", out.display());
    println!(
        "reproduce: faultline sim run {} --seed {}",
        out.display(),
        args.seed
    );
    ExitCode::SUCCESS
}
