//! A plan written back as `[[fault]]` tables: the report's `faults.toml`
//! and the summary's schedule, and the shrinker's candidates (a scenario
//! whose nemesis is replaced by the explicit faults it drew). Written with
//! `toml_edit`, so the rest of a scenario file keeps its comments and
//! layout.

use std::time::Duration;

use faultline_scenario::{FaultSpec, IsolateFrom};
use toml_edit::{value, Array, ArrayOfTables, DocumentMut, Item, Table};

use crate::PlannedFault;

/// A duration as files write it, to the millisecond.
fn dur(d: Duration) -> String {
    humantime::format_duration(Duration::from_millis(d.as_millis() as u64)).to_string()
}

/// A planned fault as a `[[fault]]` table: `at`, `kind`, `target` (or
/// `groups`), `for` when the kind takes one and the fault heals, then the
/// kind's own settings.
fn table(f: &PlannedFault) -> Table {
    let mut t = Table::new();
    t["at"] = value(dur(f.start));
    t["kind"] = value(f.kind().name());
    if let Some(target) = f.spec.target() {
        t["target"] = value(target);
    }
    if let FaultSpec::Partition(p) | FaultSpec::PartitionOneWay(p) = &f.spec {
        if let Some(groups) = &p.groups {
            let groups: Array = groups
                .iter()
                .map(|g| g.iter().map(String::as_str).collect::<Array>())
                .collect();
            t["groups"] = value(groups);
        }
    }
    if let Some(end) = f.end.filter(|e| *e > f.start) {
        if f.kind().settings().contains(&"for") {
            t["for"] = value(dur(end - f.start));
        }
    }
    match &f.spec {
        FaultSpec::Loss(l) => t["probability"] = value(l.probability),
        FaultSpec::Latency(l) => {
            t["delay"] = value(dur(l.delay.0));
            if let Some(j) = l.jitter.filter(|j| !j.0.is_zero()) {
                t["jitter"] = value(dur(j.0));
            }
        }
        FaultSpec::DiskSlow(d) => t["delay"] = value(dur(d.delay.0)),
        FaultSpec::DiskCorruption(d) => t["bits"] = value(i64::from(d.bits.unwrap_or(1).max(1))),
        FaultSpec::ClockSkew(c) => t["offset"] = value(c.offset.to_string()),
        FaultSpec::ClockJump(c) => t["offset"] = value(c.offset.to_string()),
        FaultSpec::NodeIsolate(n) if n.from == IsolateFrom::All => t["from"] = value("all"),
        _ => {}
    }
    t
}

/// A planned fault as a `[[fault]]` table's text.
pub fn fault_toml(f: &PlannedFault) -> String {
    let mut faults = ArrayOfTables::new();
    faults.push(table(f));
    let mut doc = DocumentMut::new();
    doc.insert("fault", Item::ArrayOfTables(faults));
    doc.to_string()
}

/// The whole plan as `[[fault]]` tables, one blank line apart.
pub fn plan_toml(plan: &[PlannedFault]) -> String {
    plan.iter().map(fault_toml).collect::<Vec<_>>().join("\n")
}

/// Scenario `text` without its `[[fault]]` tables and `[nemesis]`, with
/// `faults` as explicit tables at the end. `text` is a scenario that
/// loaded, so it is valid TOML.
pub fn with_schedule(text: &str, faults: &[PlannedFault]) -> String {
    let mut doc: DocumentMut = text.parse().expect("a scenario that loaded is valid TOML");
    doc.remove("fault");
    doc.remove("nemesis");
    if !faults.is_empty() {
        let mut tables = ArrayOfTables::new();
        for f in faults {
            let mut t = table(f);
            t.decor_mut().set_prefix("\n");
            tables.push(t);
        }
        doc.insert("fault", Item::ArrayOfTables(tables));
    }
    doc.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_scenario::fault::{ClockSkew, Partition};
    use faultline_scenario::{Dur, SignedDur};

    fn planned(spec: FaultSpec) -> PlannedFault {
        PlannedFault {
            start: Duration::from_secs(10),
            end: Some(Duration::from_millis(15_250)),
            spec,
            source: "nemesis",
        }
    }

    #[test]
    fn a_fault_is_written_as_the_file_would_write_it() {
        let skew = planned(FaultSpec::ClockSkew(ClockSkew {
            target: Some("m2".into()),
            duration: Dur(Duration::from_secs(5)),
            offset: SignedDur::from_millis(-90_000),
        }));
        assert_eq!(
            fault_toml(&skew),
            "[[fault]]\nat = \"10s\"\nkind = \"clock-skew\"\ntarget = \"m2\"\nfor = \"5s 250ms\"\noffset = \"-1m 30s\"\n"
        );
        let split = planned(FaultSpec::Partition(Partition {
            target: None,
            groups: Some(vec![vec!["m1".into()], vec!["m2".into(), "m3".into()]]),
            duration: Dur(Duration::from_secs(5)),
        }));
        assert!(
            fault_toml(&split).contains("groups = [[\"m1\"], [\"m2\", \"m3\"]]\n"),
            "{}",
            fault_toml(&split)
        );
    }

    #[test]
    fn a_schedule_replaces_the_files_faults_and_nemesis() {
        let text = "# a comment\nname = \"x\"\n\n[[fault]]\nat = \"1s\"\nkind = \"leader-kill\"\n\n[nemesis]\nevery = \"5s\"\nkinds = [\"leader-kill\"]\n\n[[invariant]]\nkind = \"raft-safety\"\n";
        let out = with_schedule(
            text,
            &[planned(FaultSpec::LeaderKill(
                faultline_scenario::fault::Crash {
                    target: Some("leader".into()),
                    duration: None,
                },
            ))],
        );
        assert!(out.starts_with("# a comment\nname = \"x\"\n"), "{out}");
        assert!(
            !out.contains("[nemesis]") && !out.contains("at = \"1s\""),
            "{out}"
        );
        assert!(
            out.contains("[[invariant]]\nkind = \"raft-safety\"\n"),
            "{out}"
        );
        assert!(out.ends_with("\n\n[[fault]]\nat = \"10s\"\nkind = \"leader-kill\"\ntarget = \"leader\"\nfor = \"5s 250ms\"\n"), "{out}");
    }
}
