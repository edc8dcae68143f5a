//! The JUnit XML files, written with `quick-junit`: one for a run
//! ([`crate::Summary::junit`]) and one for a sweep ([`crate::sweep::junit`]).
//!
//! `quick-junit` escapes the text and drops what XML 1.0 cannot carry
//! (control characters, and whole ANSI colour sequences, which a child's
//! stderr may hold).

use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::sweep::{ScenarioTally, SweepReport};
use crate::Summary;

/// Seconds as a JUnit `time` (written with three decimals); what is not a
/// duration (negative, NaN, too large) is zero.
fn seconds(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or_default()
}

/// A failure whose message is `message` and whose text is `text`.
fn failure(message: &str, text: String) -> TestCaseStatus {
    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
    status.set_message(message).set_description(text);
    status
}

/// The document of one suite.
fn document(suite: TestSuite) -> String {
    let mut report = Report::unnamed();
    report.add_test_suite(suite);
    report
        .to_string()
        .expect("JUnit XML written to memory from UTF-8 strings")
}

/// A run: one suite, one test case per invariant; a failure carries the
/// invariant's detail and the reproduce command.
pub(crate) fn run(s: &Summary) -> String {
    let mut suite = TestSuite::new(format!("{} seed {}", s.scenario, s.seed));
    suite.set_time(seconds(s.wall_seconds));
    for inv in &s.invariants {
        let status = if inv.holds {
            TestCaseStatus::success()
        } else {
            failure(
                &inv.detail,
                format!("{}\nreproduce: {}", inv.detail, s.reproduce),
            )
        };
        let mut case = TestCase::new(&inv.name, status);
        case.set_classname(&s.scenario);
        suite.add_test_case(case);
    }
    document(suite)
}

/// A sweep: one suite; one test case per run that did not end as expected
/// (its failure message names the violated invariants, or the reason),
/// then one per scenario with no failing run, skipped when none of its
/// runs finished.
pub(crate) fn sweep(report: &SweepReport) -> String {
    let mut name = format!("faultline sim explore --seeds {}", report.seeds);
    if let Some(shard) = &report.shard {
        name.push_str(&format!(" --shard {shard}"));
    }
    let mut suite = TestSuite::new(name);
    suite.set_time(seconds(report.elapsed_s));
    for r in report.failing() {
        let message = if r.failed_invariants.is_empty() {
            r.reason.clone()
        } else {
            format!("violated: {}", r.failed_invariants.join(", "))
        };
        let text = format!("{}\nreproduce: {}", r.reason, r.reproduce);
        let mut case = TestCase::new(
            format!("{} seed {}", r.scenario, r.seed),
            failure(&message, text),
        );
        case.set_classname(&r.scenario)
            .set_time(seconds(r.wall_seconds));
        suite.add_test_case(case);
    }
    let clean = report.scenarios.iter().filter(|t| t.failed == 0);
    for t in clean {
        suite.add_test_case(clean_case(t));
    }
    document(suite)
}

/// A scenario none of whose runs failed: its runs' total wall time.
fn clean_case(t: &ScenarioTally) -> TestCase {
    let status = if t.runs == 0 {
        let mut s = TestCaseStatus::skipped();
        s.set_message("no seed of this scenario ran");
        s
    } else {
        TestCaseStatus::success()
    };
    let mut case = TestCase::new(format!("{} ({} seeds)", t.name, t.runs), status);
    case.set_classname(&t.name)
        .set_time(seconds(t.mean_wall_s.unwrap_or(0.0) * t.runs as f64));
    case
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InvariantResult;

    #[test]
    fn what_xml_cannot_carry_is_dropped() {
        let s = Summary {
            scenario: "s".into(),
            seed: 1,
            invariants: vec![InvariantResult {
                name: "a\u{7}b".into(),
                kind: "k".into(),
                holds: false,
                detail: "\u{1b}[31mred\u{1b}[0m \u{0} line".into(),
                at_s: None,
            }],
            reproduce: "faultline sim run s.toml --seed 1".into(),
            ..Default::default()
        };
        let x = run(&s);
        let doc = roxmltree::Document::parse(&x).expect("well-formed XML");
        let case = doc.descendants().find(|n| n.has_tag_name("testcase"));
        assert_eq!(case.unwrap().attribute("name"), Some("ab"));
        let failure = doc.descendants().find(|n| n.has_tag_name("failure"));
        let failure = failure.unwrap();
        assert_eq!(failure.attribute("message"), Some("red  line"));
        assert_eq!(
            failure.text(),
            Some("red  line\nreproduce: faultline sim run s.toml --seed 1")
        );
    }
}
