use super::*;
use serde_json::json;

#[test]
fn label_selector_matches_labels_and_expressions() {
    let sel = LabelSelector {
        match_labels: label_map(&[("app", "web")]),
        match_expressions: vec![
            LabelSelectorRequirement::new("env", "In", &["prod", "staging"]),
            LabelSelectorRequirement::new("tier", "NotIn", &["db"]),
            LabelSelectorRequirement::new("release", "Exists", &[]),
            LabelSelectorRequirement::new("legacy", "DoesNotExist", &[]),
        ],
    };
    let good = label_map(&[("app", "web"), ("env", "prod"), ("release", "1")]);
    assert!(sel.matches(&good));
    let mut l = good.clone();
    l.insert("tier".into(), "front".into());
    assert!(sel.matches(&l), "NotIn with another value matches");
    l.insert("tier".into(), "db".into());
    assert!(!sel.matches(&l));
    let mut l = good.clone();
    l.insert("legacy".into(), "".into());
    assert!(!sel.matches(&l));
    let mut l = good.clone();
    l.remove("release");
    assert!(!sel.matches(&l));
    let mut l = good.clone();
    l.insert("env".into(), "dev".into());
    assert!(!sel.matches(&l));
    let mut l = good;
    l.insert("app".into(), "db".into());
    assert!(!sel.matches(&l));
}

#[test]
fn empty_label_selector_matches_everything_and_bad_operator_nothing() {
    let empty = LabelSelector::default();
    assert!(empty.is_empty());
    assert!(empty.matches(&label_map(&[])));
    assert!(empty.matches(&label_map(&[("a", "b")])));
    let bad = LabelSelector {
        match_expressions: vec![LabelSelectorRequirement::new("a", "Gt", &["1"])],
        ..Default::default()
    };
    assert!(!bad.is_empty());
    assert!(!bad.matches(&label_map(&[("a", "2")])));
}

#[test]
fn parses_every_operator() {
    let s = Selector::parse(
        "app=web,tier!=db,env in (prod,staging),env notin (dev),!legacy,release,x==y",
    )
    .unwrap();
    let ops: Vec<(&str, Operator)> = s
        .requirements()
        .iter()
        .map(|r| (r.key(), r.operator()))
        .collect();
    assert_eq!(
        ops,
        vec![
            ("app", Operator::Equals),
            ("env", Operator::In),
            ("env", Operator::NotIn),
            ("legacy", Operator::DoesNotExist),
            ("release", Operator::Exists),
            ("tier", Operator::NotEquals),
            ("x", Operator::Equals),
        ]
    );
    assert!(s.matches(&label_map(&[
        ("app", "web"),
        ("env", "prod"),
        ("release", ""),
        ("x", "y")
    ])));
    assert!(!s.matches(&label_map(&[
        ("app", "web"),
        ("env", "prod"),
        ("release", ""),
        ("x", "y"),
        ("legacy", "true")
    ])));
}

#[test]
fn parse_tolerates_spaces_and_empty_values() {
    let s = Selector::parse("  app = web , env in ( a , b ) , ! old , k= ").unwrap();
    assert_eq!(s.to_string(), "app=web,env in (a,b),k=,!old");
    assert!(s.matches(&label_map(&[("app", "web"), ("env", "b"), ("k", "")])));
    assert!(!s.matches(&label_map(&[("app", "web"), ("env", "b")])));
    assert_eq!(Selector::parse("").unwrap(), Selector::everything());
    assert_eq!(Selector::parse("   ").unwrap(), Selector::everything());
    // Keywords are keywords only where an operator goes.
    let s = Selector::parse("in in (in),notin=in").unwrap();
    assert_eq!(s.to_string(), "in in (in),notin=in");
}

#[test]
fn display_round_trips() {
    for text in [
        "app=web",
        "app!=web",
        "env in (prod,staging)",
        "env notin (dev)",
        "!legacy",
        "release",
        "a=,b in (,x)",
        "example.com/tier=front,app=web,!gone,env notin (a,b)",
    ] {
        let s = Selector::parse(text).unwrap();
        let again = Selector::parse(&s.to_string()).unwrap();
        assert_eq!(s, again, "{text:?} printed as {s}");
    }
    // `==` prints as `=`; order is canonical.
    assert_eq!(Selector::parse("b==1,a=2").unwrap().to_string(), "a=2,b=1");
}

#[test]
fn parse_errors_name_the_offending_part() {
    for (text, part) in [
        ("app=we b", "\"b\""),
        ("app=web,", "after the last"),
        ("app in prod", "\"prod\""),
        ("app in ()", "empty"),
        ("app in (a", "the end"),
        ("app>1", "'>'"),
        ("Bad Key=1", "\"Key\""),
        ("-bad=1", "\"-bad\""),
        ("app=-web", "\"-web\""),
        ("!", "label key after"),
        ("a=b=c", "\"=\""),
        (",a", "\",\""),
        ("a/b/c=1", "\"a/b/c\""),
    ] {
        let err = Selector::parse(text).unwrap_err();
        assert!(err.contains(part), "{text:?}: {err}");
    }
}

#[test]
fn label_selector_converts_to_a_query_string() {
    let sel = LabelSelector {
        match_labels: label_map(&[("app", "web")]),
        match_expressions: vec![
            LabelSelectorRequirement::new("env", "In", &["staging", "prod"]),
            LabelSelectorRequirement::new("old", "DoesNotExist", &[]),
        ],
    };
    let s = Selector::try_from(&sel).unwrap();
    assert_eq!(s.to_string(), "app=web,env in (prod,staging),!old");
    for l in [
        label_map(&[("app", "web"), ("env", "prod")]),
        label_map(&[("app", "web"), ("env", "dev")]),
        label_map(&[("app", "web"), ("env", "prod"), ("old", "1")]),
    ] {
        assert_eq!(s.matches(&l), sel.matches(&l), "{l:?}");
    }
    let bad = LabelSelector {
        match_expressions: vec![LabelSelectorRequirement::new("a", "Gt", &["1"])],
        ..Default::default()
    };
    assert!(Selector::try_from(&bad).unwrap_err().contains("\"Gt\""));
    let empty_in = LabelSelector {
        match_expressions: vec![LabelSelectorRequirement::new("a", "In", &[])],
        ..Default::default()
    };
    assert!(Selector::try_from(empty_in).is_err());
}

#[test]
fn from_map_selects_like_a_service() {
    let s = Selector::from_map(&label_map(&[("app", "web"), ("tier", "front")]));
    assert_eq!(s.to_string(), "app=web,tier=front");
    assert!(s.matches(&label_map(&[("app", "web"), ("tier", "front"), ("x", "y")])));
    assert!(!s.matches(&label_map(&[("app", "web")])));
    assert!(Selector::from_map(&BTreeMap::new()).is_empty());
}

#[test]
fn requirement_new_checks_value_counts() {
    assert!(Requirement::new("a", Operator::Equals, ["x", "y"]).is_err());
    assert!(Requirement::new("a", Operator::Exists, ["x"]).is_err());
    assert!(Requirement::new("a", Operator::In, None::<String>).is_err());
    assert!(Requirement::new("a", Operator::NotIn, ["x", "y"]).is_ok());
}

#[test]
fn field_selector_parses_and_matches_json() {
    let pod = json!({
        "metadata": {"name": "web-1", "namespace": "default"},
        "spec": {"containers": []},
        "status": {"phase": "Running"}
    });
    let sel = FieldSelector::parse("spec.nodeName=,status.phase==Running").unwrap();
    assert!(sel.matches_json(&pod));
    assert_eq!(sel.exact("spec.nodeName"), Some(""));
    let sel = FieldSelector::parse("metadata.name!=web-1").unwrap();
    assert!(!sel.matches_json(&pod));
    let sel = FieldSelector::parse("metadata.namespace=default,metadata.name=web-1").unwrap();
    assert!(sel.matches_json(&pod));
    assert!(FieldSelector::parse("").unwrap().matches_json(&pod));
    assert!(FieldSelector::parse(",,").unwrap().is_empty());
}

#[test]
fn events_select_by_their_involved_object_as_kubectl_describe_asks() {
    let event = json!({
        "metadata": {"name": "web-1.abc", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "default", "uid": "u1"},
        "reason": "FailedMount",
        "type": "Warning"
    });
    let describe =
        "involvedObject.name=web-1,involvedObject.namespace=default,involvedObject.uid=u1";
    let sel = FieldSelector::parse_with(describe, fields_for("Event")).unwrap();
    assert!(sel.matches_json(&event));
    let sel = FieldSelector::parse_with("type=Normal", fields_for("Event")).unwrap();
    assert!(!sel.matches_json(&event));
    assert!(FieldSelector::parse_with(describe, fields_for("Pod")).is_err());
    assert!(FieldSelector::parse_with("type=Opaque", fields_for("Secret")).is_ok());
}

#[test]
fn field_selector_errors_name_the_field_and_list_the_supported() {
    let err = FieldSelector::parse("spec.host=a").unwrap_err();
    assert!(err.contains("\"spec.host\""), "{err}");
    for f in FIELDS {
        assert!(err.contains(f), "{err}");
    }
    let err = FieldSelector::parse("status.phase").unwrap_err();
    assert!(err.contains("no operator"), "{err}");
    let err = FieldSelector::parse("status.phase=a=b").unwrap_err();
    assert!(err.contains("unescaped"), "{err}");
    let err = FieldSelector::parse(r"status.phase=a\x").unwrap_err();
    assert!(err.contains("escape"), "{err}");
    let ok = FieldSelector::parse_with("spec.host=a", &["spec.host"]).unwrap();
    assert_eq!(ok.terms().len(), 1);
}

#[test]
fn field_selector_escapes_round_trip() {
    let sel = FieldSelector::parse(r"metadata.name=a\,b\=c\\d,status.phase!=x").unwrap();
    assert_eq!(sel.terms()[0].value, r"a,b=c\d");
    assert_eq!(sel.terms()[1].operator, FieldOperator::NotEquals);
    let text = sel.to_string();
    assert_eq!(text, r"metadata.name=a\,b\=c\\d,status.phase!=x");
    assert_eq!(FieldSelector::parse(&text).unwrap(), sel);
}

#[test]
fn field_value_reads_dotted_paths() {
    let obj = json!({"a": {"b": "x", "n": 3, "t": true, "z": null, "o": {}}, "s": "str"});
    assert_eq!(field_value(&obj, "a.b").as_deref(), Some("x"));
    assert_eq!(field_value(&obj, "a.n").as_deref(), Some("3"));
    assert_eq!(field_value(&obj, "a.t").as_deref(), Some("true"));
    assert_eq!(field_value(&obj, "a.z").as_deref(), Some(""));
    assert_eq!(field_value(&obj, "a.missing").as_deref(), Some(""));
    assert_eq!(field_value(&obj, "q.r.s").as_deref(), Some(""));
    assert_eq!(field_value(&obj, "a.o"), None);
    assert_eq!(field_value(&obj, "s.deeper"), None);
    // A term on a field that is not a scalar never matches.
    let sel = FieldSelector::parse_with("a.o!=x", &["a.o"]).unwrap();
    assert!(!sel.matches_json(&obj));
}

#[test]
fn field_selector_matches_through_a_closure() {
    let sel = FieldSelector::parse("spec.nodeName=n1").unwrap();
    assert!(sel.matches(|f| (f == "spec.nodeName").then(|| "n1".to_string())));
    assert!(!sel.matches(|_| None));
}
