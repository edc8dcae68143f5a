//! Shrinking a failing run: the fault schedule a seed drew (the file's
//! faults plus the nemesis's) is written out as explicit `[[fault]]`
//! tables, then minimised by delta debugging (Zeller's ddmin) over the
//! faults, then by shortening each remaining fault, keeping at every step
//! only candidates whose run still violates the same invariant at the same
//! seed. Every candidate is a real run, so the result fails by
//! construction, and replays bit for bit like any scenario.

use std::time::Duration;

use crate::engine::run_engine;
use crate::faults::schedule::with_schedule;
use crate::faults::{plan, PlannedFault};
use crate::run::RunOptions;
use crate::scenario::Scenario;

/// What the shrinker found.
pub struct Shrunk {
    /// The scenario text with the minimal schedule.
    pub text: String,
    /// Faults drawn by the original run, and left.
    pub original_faults: usize,
    pub faults: Vec<PlannedFault>,
    /// The invariant that keeps failing.
    pub invariant: String,
    /// Runs tried.
    pub runs: usize,
}

/// Why shrinking could not start.
#[derive(Debug, thiserror::Error)]
pub enum ShrinkError {
    #[error("seed {seed} does not fail: every invariant held")]
    Passes { seed: u64 },
    #[error("seed {seed} does not violate {invariant} (violated: {violated})")]
    NotViolated {
        seed: u64,
        invariant: String,
        violated: String,
    },
    #[error("the explicit schedule no longer fails at seed {seed} ({detail})")]
    NotReproduced { seed: u64, detail: String },
}

/// Shrinks the fault schedule of `scenario` (file text `text`) at `seed`,
/// keeping `invariant` violated (by name or kind; default: the first one
/// the run violates). `progress` hears one line per step.
pub fn shrink(
    scenario: &Scenario,
    text: &str,
    path: &str,
    seed: u64,
    invariant: Option<&str>,
    max_runs: usize,
    progress: &mut dyn FnMut(&str),
) -> Result<Shrunk, ShrinkError> {
    let opts = RunOptions {
        seed,
        keep_trace: false,
        path: path.to_string(),
        progress: None,
    };
    let first = run_engine(scenario, &opts).summary;
    let mut broken = first.invariants.iter().filter(|i| !i.holds);
    let violated = match invariant {
        None => broken.next(),
        Some(want) => broken.find(|i| i.name == want || i.kind == want),
    };
    let Some(violated) = violated else {
        let names: Vec<&str> = first
            .invariants
            .iter()
            .filter(|i| !i.holds)
            .map(|i| i.name.as_str())
            .collect();
        return Err(match invariant {
            Some(want) if !names.is_empty() => ShrinkError::NotViolated {
                seed,
                invariant: want.to_string(),
                violated: names.join(", "),
            },
            _ => ShrinkError::Passes { seed },
        });
    };
    let invariant = violated.name.clone();
    progress(&format!(
        "seed {seed} violates {invariant}; shrinking its schedule"
    ));
    let mut runs = 1usize;
    // A candidate fails when its file parses and the same invariant is
    // violated again.
    let fails = |faults: &[PlannedFault], runs: &mut usize| -> bool {
        *runs += 1;
        let candidate = with_schedule(text, faults);
        let Ok(s) = Scenario::parse(&candidate, path) else {
            return false;
        };
        let sum = run_engine(&s, &opts).summary;
        sum.invariants
            .iter()
            .any(|i| i.name == invariant && !i.holds)
    };
    let all: Vec<PlannedFault> = plan(scenario, seed)
        .into_iter()
        .map(|mut f| {
            f.source = "scheduled";
            f
        })
        .collect();
    let original = all.len();
    if !fails(&all, &mut runs) {
        return Err(ShrinkError::NotReproduced {
            seed,
            detail: format!("{original} faults written out explicitly"),
        });
    }
    // ddmin: try each chunk alone, then each complement, refining.
    let mut cur = all;
    let mut n = 2usize;
    while cur.len() >= 2 && runs < max_runs {
        let chunk = cur.len().div_ceil(n);
        let parts: Vec<Vec<PlannedFault>> = cur.chunks(chunk).map(|c| c.to_vec()).collect();
        let mut reduced = false;
        for p in &parts {
            if runs >= max_runs {
                break;
            }
            if fails(p, &mut runs) {
                cur = p.clone();
                n = 2;
                reduced = true;
                break;
            }
        }
        if !reduced && parts.len() > 2 {
            for i in 0..parts.len() {
                if runs >= max_runs {
                    break;
                }
                let complement: Vec<PlannedFault> = parts
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .flat_map(|(_, p)| p.iter().cloned())
                    .collect();
                if fails(&complement, &mut runs) {
                    cur = complement;
                    n = (n - 1).max(2);
                    reduced = true;
                    break;
                }
            }
        }
        if !reduced {
            if n >= cur.len() {
                break;
            }
            n = (n * 2).min(cur.len());
        }
        progress(&format!(
            "{} of {original} faults still fail ({runs} runs)",
            cur.len()
        ));
    }
    if cur.len() == 1 && runs < max_runs && fails(&[], &mut runs) {
        // The run fails with no fault at all.
        cur.clear();
    }
    // Then shorten: halve each fault's duration while it still fails.
    for i in 0..cur.len() {
        for _ in 0..4 {
            if runs >= max_runs {
                break;
            }
            let Some(end) = cur[i].end else { break };
            let len = end.saturating_sub(cur[i].start);
            let half = Duration::from_millis((len.as_millis() / 2) as u64);
            if half < Duration::from_secs(1) {
                break;
            }
            let mut cand = cur.clone();
            cand[i].end = Some(cand[i].start + half);
            if fails(&cand, &mut runs) {
                cur = cand;
            } else {
                break;
            }
        }
    }
    progress(&format!(
        "minimal: {} of {original} faults ({runs} runs)",
        cur.len()
    ));
    let header = format!(
        "# Shrunk by `faultline sim shrink {path} --seed {seed}`: {} of the {original} faults that seed drew,\n# still violating {invariant}. Run it with --seed {seed}.\n",
        cur.len()
    );
    Ok(Shrunk {
        text: format!("{header}{}", with_schedule(text, &cur)),
        original_faults: original,
        faults: cur,
        invariant,
        runs,
    })
}
