use super::respond::Query;
use super::*;

#[test]
fn routes_kubernetes_paths() {
    let r = route("/api/v1/namespaces/default/pods/web-1/status").unwrap();
    assert_eq!(
        (r.group.as_str(), r.namespace.as_deref(), r.plural.as_str()),
        ("", Some("default"), "pods")
    );
    assert_eq!(
        (r.name.as_deref(), r.sub.as_deref()),
        (Some("web-1"), Some("status"))
    );
    let r = route("/api/v1/namespaces/default").unwrap();
    assert_eq!(
        (r.plural.as_str(), r.name.as_deref()),
        ("namespaces", Some("default"))
    );
    let r = route("/apis/apps/v1/namespaces/x/deployments").unwrap();
    assert_eq!(
        (r.group.as_str(), r.plural.as_str()),
        ("apps", "deployments")
    );
    let r = route("/api/v1/pods").unwrap();
    assert_eq!((r.namespace, r.plural.as_str()), (None, "pods"));
    assert!(route("/api/v1/namespaces/a/pods/b/c/d").is_none());
    assert!(route("/nope").is_none());
}

#[test]
fn decodes_percent_encoding() {
    let decoded = |raw: &str| Query::parse(Some(&format!("v={raw}"))).0["v"].clone();
    assert_eq!(decoded("app%3Dweb%2Ctier+in+(a)"), "app=web,tier in (a)");
    assert_eq!(decoded("100%"), "100%");
    assert_eq!(decoded("%zz"), "%zz");
    assert_eq!(decoded("%2B+%41%e2%9D%a4%"), "+ A\u{2764}%");
    assert_eq!(decoded("%E2%9D"), "\u{FFFD}");
    // A `%` followed by a sign and one hex digit is no escape.
    assert_eq!(decoded("%+A"), "% A");
}

#[test]
fn splits_the_query_into_pairs() {
    let q = Query::parse(Some("a%3D=1=2&&watch&a%3D=3&x+y=%26"));
    let pairs: Vec<(&str, &str)> = q.0.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(pairs, [("a=", "3"), ("watch", ""), ("x y", "&")]);
    assert!(!q.flag("watch"));
    assert_eq!(q.get("watch"), Some(""));
    assert!(Query::parse(None).0.is_empty());
}

#[test]
fn unknown_fields_warn_by_default_and_fail_when_strict() {
    use faultline_api::decode::FieldValidation;
    let body = br#"{"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "echo", "colour": "x"}]}}"#;
    let (pod, warnings) =
        respond::decode_body::<faultline_api::Pod>(body, FieldValidation::Warn).unwrap();
    assert_eq!(pod.metadata.name, "p");
    assert_eq!(warnings, ["unknown field \"spec.containers[0].colour\""]);
    let resp = respond::with_warnings(respond::text(201, "ok"), &warnings);
    assert_eq!(
        resp.headers()[http::header::WARNING],
        r#"299 - "unknown field \"spec.containers[0].colour\"""#
    );
    let (_, none) =
        respond::decode_body::<faultline_api::Pod>(body, FieldValidation::Ignore).unwrap();
    assert!(none.is_empty());
    let err =
        respond::decode_body::<faultline_api::Pod>(body, FieldValidation::Strict).unwrap_err();
    assert_eq!(err.code, 400);
    assert_eq!(
        err.message,
        r#"Pod in version "v1" cannot be handled as a Pod: strict decoding error: unknown field "spec.containers[0].colour""#
    );
}
