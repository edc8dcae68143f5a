//! `faultline report`: draws report pages again from the data a run or a
//! sweep left (after an upgrade, or for runs made with `--no-charts`), puts
//! two runs side by side, and merges the shards of a sweep.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

#[derive(Args)]
#[command(
    about = "Draw report pages again from their data, put two runs side by side, or merge a sweep's shards",
    long_about = "Draw report pages again from their data, put two runs side by side, or merge a sweep's shards.\n\n\
                  A run folder (with summary.json) gets its index.html and PNG charts redrawn; \
                  a sweep folder (with sweep.json, from `faultline sim explore`) gets its \
                  index.html and junit.xml redrawn.\n\n\
                  With --compare A B, the runs in folders A and B are shown side by side: \
                  their verdicts, invariants, services and every chart.\n\n\
                  With --merge OUT, the folders given are the shards of one sweep (each written by \
                  `faultline sim explore --shard I/N --report DIR`, with the same --seeds): OUT gets \
                  one sweep.json, index.html and junit.xml over all their runs, and a copy of each \
                  run's folder."
)]
pub struct ReportArgs {
    /// Run or sweep report folders to redraw (with --merge: the shards'
    /// sweep folders).
    #[arg(required_unless_present = "compare")]
    dirs: Vec<PathBuf>,
    /// Two run report folders to put side by side.
    #[arg(long, num_args = 2, value_names = ["A", "B"], conflicts_with = "dirs")]
    compare: Option<Vec<PathBuf>>,
    /// Where the comparison goes (default: reports/out/compare-A-vs-B).
    #[arg(long, requires = "compare")]
    out: Option<PathBuf>,
    /// Merge the shard sweep folders given into this folder.
    #[arg(long, value_name = "OUT", conflicts_with = "compare")]
    merge: Option<PathBuf>,
}

fn name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into())
}

pub fn run(args: ReportArgs) -> ExitCode {
    if let Some(pair) = args.compare {
        let (a, b) = (&pair[0], &pair[1]);
        for d in [a, b] {
            if !d.join("summary.json").exists() {
                eprintln!(
                    "error: {}: no summary.json here (give a run report folder, as written by `faultline sim run --report DIR`)",
                    d.display()
                );
                return ExitCode::from(2);
            }
        }
        let out = args.out.unwrap_or_else(|| {
            PathBuf::from(format!("reports/out/compare-{}-vs-{}", name(a), name(b)))
        });
        return match faultline_reports::compare(a, b, &out) {
            Ok(()) => {
                println!("comparison: {}", out.join("index.html").display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    if let Some(out) = args.merge {
        let shards: Vec<&Path> = args.dirs.iter().map(PathBuf::as_path).collect();
        return match faultline_reports::sweep::merge(&shards, &out) {
            Ok(merged) => {
                println!(
                    "merged {} shard(s): {} runs, {} failed, verdict {}",
                    shards.len(),
                    merged.runs.len(),
                    merged.failing().count(),
                    merged.verdict
                );
                println!("report: {}", out.join("index.html").display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    let mut code = ExitCode::SUCCESS;
    for dir in &args.dirs {
        let result = if dir.join("sweep.json").exists() {
            faultline_reports::sweep::render_sweep_dir(dir).map(|_| ())
        } else if dir.join("summary.json").exists() {
            faultline_reports::render_dir(dir).map(|_| ())
        } else {
            Err(anyhow::anyhow!(
                "no summary.json or sweep.json here (give a folder written by `faultline sim run` or `faultline sim explore`)"
            ))
        };
        match result {
            Ok(()) => println!("report: {}", dir.join("index.html").display()),
            Err(e) => {
                eprintln!("error: {}: {e:#}", dir.display());
                code = ExitCode::from(2);
            }
        }
    }
    code
}
