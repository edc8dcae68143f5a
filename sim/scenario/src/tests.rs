//! Loading scenario text: good files, and the errors bad ones get.

use std::time::Duration;

use crate::*;

const GOOD: &str = r#"
name = "t"
duration = "30s"
[cluster]
datacenters = ["a", "b", "c"]
masters = 3
[workload]
rate = 50
[[fault]]
at = "5s"
kind = "leader-kill"
for = "3s"
[[invariant]]
kind = "linearizable"
"#;

#[test]
fn parses_a_good_file() {
    let s = Scenario::parse(GOOD, "t.toml").unwrap();
    assert_eq!(s.duration.0, Duration::from_secs(30));
    assert_eq!(s.faults.len(), 1);
}

fn error_of(text: &str) -> String {
    Scenario::parse(text, "t.toml").unwrap_err().0
}

#[test]
fn errors_name_file_line_and_field() {
    let e = error_of(&GOOD.replace("masters = 3", "masters = \"three\""));
    assert!(e.starts_with("t.toml:6:"), "{e}");
    let e = error_of(&GOOD.replace("kind = \"leader-kill\"", "kind = \"meteor\""));
    assert!(e.contains("t.toml:11:") && e.contains("meteor"), "{e}");
    let e = error_of(&GOOD.replace("rate = 50", "rate = 50\nrat = 3"));
    assert!(e.contains("unknown field") && e.contains("rat"), "{e}");
    let e = error_of(&GOOD.replace("duration = \"30s\"", "duration = \"soon\""));
    assert!(
        e.contains("t.toml:3:") && e.contains("invalid duration"),
        "{e}"
    );
    let e = error_of(&GOOD.replace("at = \"5s\"", "at = \"50s\""));
    assert!(e.contains("not before the end"), "{e}");
    let e = error_of(&GOOD.replace("for = \"3s\"", "for = \"3s\"\ntarget = \"m9\""));
    assert!(e.contains("target") && e.contains("m9"), "{e}");
    let e = error_of(&GOOD.replace("masters = 3", "masters = 0"));
    assert!(e.contains("cluster.masters"), "{e}");
    let e = error_of("name = ");
    assert!(e.starts_with("t.toml:1:"), "{e}");
    let e = error_of(&GOOD.replace("[[invariant]]\nkind = \"linearizable\"\n", ""));
    assert!(e.contains("no [[invariant]]"), "{e}");
}

const TRAFFIC: &str = r#"
name = "t"
duration = "5m"
[cluster]
datacenters = ["a", "b", "c"]
masters = 3
nodes_per_datacenter = 1
[[deployment]]
name = "web"
replicas = 3
port = 80
[[deployment]]
name = "batch"
replicas = 1
[[traffic]]
service = "web"
rate = 100
[[fault]]
at = "60s"
kind = "datacenter-outage"
target = "a"
for = "2m"
[[invariant]]
kind = "availability"
service = "web"
at_least = 0.999
"#;

#[test]
fn traffic_and_availability_mistakes_are_named() {
    let s = Scenario::parse(TRAFFIC, "t.toml").unwrap();
    let users = traffic_clients(&s);
    assert_eq!(users.len(), 3, "one client per datacenter by default");
    assert_eq!(
        (users[2].name.as_str(), users[2].datacenter.as_str()),
        ("u3", "c")
    );
    let cases = [
        (
            "service = \"web\"\nrate",
            "service = \"nope\"\nrate",
            "no [[deployment]] named \"nope\"",
        ),
        (
            "service = \"web\"\nrate",
            "service = \"batch\"\nrate",
            "has no `port`",
        ),
        ("rate = 100", "rate = 0", "traffic (web).rate"),
        (
            "rate = 100",
            "rate = 100\nclients = 0",
            "traffic (web).clients",
        ),
        (
            "rate = 100",
            "rate = 100\nstart = \"9m\"",
            "traffic (web).start",
        ),
        (
            "rate = 100",
            "rate = 100\nmethod = \"PATCH\"",
            "unknown variant `PATCH`",
        ),
        (
            "at_least = 0.999",
            "at_least = 1.5",
            "invariant (availability).at_least",
        ),
        ("at_least = 0.999", "", "needs `at_least`"),
        (
            "at_least = 0.999",
            "at_least = 0.9\nwindow = \"0s\"",
            "window",
        ),
        (
            "service = \"web\"\nat_least",
            "service = \"api\"\nat_least",
            "no [[traffic]] to \"api\"",
        ),
        (
            "target = \"a\"",
            "target = \"z\"",
            "needs a datacenter as `target`",
        ),
        (
            "kind = \"availability\"",
            "kind = \"latency\"",
            "needs a positive `below`",
        ),
    ];
    for (from, to, needle) in cases {
        assert!(TRAFFIC.contains(from), "{from}");
        let e = error_of(&TRAFFIC.replacen(from, to, 1));
        assert!(e.contains(needle), "{to:?}: expected {needle:?} in {e}");
        assert!(e.starts_with("t.toml"), "{e}");
    }
    let no_traffic = TRAFFIC.replace("[[traffic]]\nservice = \"web\"\nrate = 100\n", "");
    assert!(error_of(&no_traffic).contains("needs [[traffic]]"));
    let e = error_of(&TRAFFIC.replace(
        "kind = \"datacenter-outage\"\ntarget = \"a\"",
        "kind = \"node-crash\"\ntarget = \"pod:nope\"",
    ));
    assert!(e.contains("pod:DEPLOYMENT"), "{e}");
}

#[test]
fn did_you_mean_suggests_the_closest_expected_name() {
    let field = |x: &str, names: &[&str]| {
        let list = names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        did_you_mean(&format!("unknown field `{x}`, expected one of {list}"))
    };
    // The closest, not the first, close name.
    assert_eq!(
        field("withn", &["kind", "window", "within", "name"]).as_deref(),
        Some("within")
    );
    assert_eq!(
        field("rat", &["clients", "rate", "keys"]).as_deref(),
        Some("rate")
    );
    // Far from all: a third of a long name's length is still allowed.
    assert_eq!(
        field("eviction_timout_s", &["node_grace", "eviction_timeout"]).as_deref(),
        Some("eviction_timeout")
    );
    assert_eq!(field("zzz", &["clients", "rate", "keys"]), None);
    assert_eq!(field("replicas", &["within", "name"]), None);
    // A two-letter name is not "corrected" into an unrelated one.
    assert_eq!(field("xy", &["ab", "name"]), None);
    // Variants, and serde's shorter forms of the list.
    assert_eq!(
        did_you_mean("unknown variant `raft-safty`, expected one of `linearizable`, `raft-safety`")
            .as_deref(),
        Some("raft-safety")
    );
    assert_eq!(
        did_you_mean("unknown variant `fial`, expected `pass` or `fail`").as_deref(),
        Some("fail")
    );
    assert_eq!(did_you_mean("unknown field `x`, there are no fields"), None);
    assert_eq!(
        did_you_mean("invalid type: string \"3\", expected u32"),
        None
    );
}
