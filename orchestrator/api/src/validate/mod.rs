//! Validation of objects before they are stored: every field error, each
//! with its path, as Kubernetes reports them in a 422 `Status`.
//!
//! [`Validate::validate`] checks an object on its own (create, and the new
//! version on update); [`Validate::validate_update`] adds the rules that
//! compare with the stored version (immutable fields). Both return *all*
//! errors found, never just the first, as [`StatusCause`]s whose `field` is a
//! path such as `spec.containers[0].image` and whose `message` follows
//! Kubernetes' wording (`Required value`, `Invalid value: "x": ...`,
//! `Unsupported value: "x": supported values: ...`).
//!
//! What is *not* checked here: name and namespace immutability, resource
//! versions and admission (defaulting, quota), which are the apiserver's.

use std::collections::BTreeMap;
use std::fmt::{self, Debug};

use crate::meta::ObjectMeta;
use crate::status::StatusCause;
use crate::types::*;

mod cluster;
mod config;
mod pod;
mod service;
mod subresource;
#[cfg(test)]
mod tests;
mod workload;

pub use cluster::{CONTAINER_RESOURCES, NODE_RESOURCES};
pub use service::NODE_PORT_RANGE;

/// The `reason` strings of field errors.
pub mod reason {
    /// A required field is missing or empty.
    pub const REQUIRED: &str = "FieldValueRequired";
    /// A value has the wrong form or is out of range.
    pub const INVALID: &str = "FieldValueInvalid";
    /// A value is not one of an enumerated set.
    pub const NOT_SUPPORTED: &str = "FieldValueNotSupported";
    /// A value that must be unique appears twice.
    pub const DUPLICATE: &str = "FieldValueDuplicate";
    /// A field may not be set (here, or to this, or changed).
    pub const FORBIDDEN: &str = "FieldValueForbidden";
    /// A value is longer than allowed.
    pub const TOO_LONG: &str = "FieldValueTooLong";
    /// A value names something that does not exist.
    pub const NOT_FOUND: &str = "FieldValueNotFound";
}

// ------------------------------------------------------------ field errors

/// `value` names nothing that exists: `Not found: "value"`.
pub fn not_found(field: &str, value: impl Debug) -> StatusCause {
    cause(reason::NOT_FOUND, field, format!("Not found: {value:?}"))
}

/// `field` is missing: `Required value[: detail]`.
pub fn required(field: &str, detail: &str) -> StatusCause {
    let message = if detail.is_empty() {
        "Required value".to_string()
    } else {
        format!("Required value: {detail}")
    };
    cause(reason::REQUIRED, field, message)
}

/// `field` has a bad `value`: `Invalid value: "x": detail`.
pub fn invalid(field: &str, value: impl Debug, detail: &str) -> StatusCause {
    cause(
        reason::INVALID,
        field,
        format!("Invalid value: {value:?}: {detail}"),
    )
}

/// `field` is not one of `supported`:
/// `Unsupported value: "x": supported values: "a", "b"`.
pub fn not_supported(field: &str, value: impl Debug, supported: &[&str]) -> StatusCause {
    let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
    cause(
        reason::NOT_SUPPORTED,
        field,
        format!(
            "Unsupported value: {value:?}: supported values: {}",
            list.join(", ")
        ),
    )
}

/// `value` appears twice where it must be unique: `Duplicate value: "x"`.
pub fn duplicate(field: &str, value: impl Debug) -> StatusCause {
    cause(
        reason::DUPLICATE,
        field,
        format!("Duplicate value: {value:?}"),
    )
}

/// `field` may not be set, or not like this: `Forbidden: detail`.
pub fn forbidden(field: &str, detail: &str) -> StatusCause {
    cause(reason::FORBIDDEN, field, format!("Forbidden: {detail}"))
}

/// `field` is longer than `max_bytes`.
pub fn too_long(field: &str, max_bytes: usize) -> StatusCause {
    cause(
        reason::TOO_LONG,
        field,
        format!("Too long: must have at most {max_bytes} bytes"),
    )
}

fn cause(reason: &str, field: &str, message: String) -> StatusCause {
    StatusCause {
        reason: reason.to_string(),
        message,
        field: field.to_string(),
    }
}

// ------------------------------------------------------------ name formats

/// Why a string is not a DNS-1123 label (the detail of the field error).
pub const DNS1123_LABEL_RULE: &str = "a lowercase RFC 1123 label must consist of lower case \
     alphanumeric characters or '-', start and end with an alphanumeric character, and be at \
     most 63 characters (e.g. 'my-name' or '123-abc')";

/// Why a string is not a DNS-1123 subdomain.
pub const DNS1123_SUBDOMAIN_RULE: &str = "a lowercase RFC 1123 subdomain must consist of lower \
     case alphanumeric characters, '-' or '.', start and end with an alphanumeric character, \
     and be at most 253 characters (e.g. 'example.com')";

/// Why a string is not a label (or annotation) key.
pub const LABEL_KEY_RULE: &str = "a label key is an optional DNS subdomain prefix and '/', then \
     a name of at most 63 characters of alphanumerics, '-', '_' or '.', starting and ending \
     with an alphanumeric character (e.g. 'app' or 'example.com/tier')";

/// Why a string is not a label value.
pub const LABEL_VALUE_RULE: &str = "a label value must be empty or at most 63 characters of \
     alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric character \
     (e.g. 'web' or 'v1.2')";

/// Why a string is not a port name.
pub const PORT_NAME_RULE: &str = "a port name must be at most 15 characters of lower case \
     alphanumerics or '-', contain at least one letter, not start or end with '-' and not \
     contain '--' (e.g. 'http')";

/// The most bytes all of an object's annotations (keys and values) may take.
pub const ANNOTATIONS_BYTES_MAX: usize = 256 * 1024;

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?` without a length limit.
fn is_dns_label_shape(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            alnum(first) && alnum(last) && b.iter().all(|c| alnum(c) || *c == b'-')
        }
        _ => false,
    }
}

/// An RFC 1123 label: at most 63 characters of `[a-z0-9-]`, starting and
/// ending with an alphanumeric. Namespace, Service and container names.
pub fn is_dns1123_label(s: &str) -> bool {
    s.len() <= 63 && is_dns_label_shape(s)
}

/// An RFC 1123 subdomain: at most 253 characters, dot-separated labels.
/// The names of most objects.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label_shape)
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]` of at most 63 characters,
/// possibly empty.
fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (None, _) | (_, None) => true,
        (Some(first), Some(last)) => {
            b.len() <= 63
                && first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
    }
}

/// A label or annotation key: an optional DNS-subdomain prefix and `/`,
/// then a non-empty name of at most 63 characters of alphanumerics, `-`,
/// `_` and `.` that starts and ends with an alphanumeric.
pub fn is_label_key(s: &str) -> bool {
    let (prefix, name) = match s.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, s),
    };
    prefix.is_none_or(is_dns1123_subdomain) && !name.is_empty() && is_qualified_name_part(name)
}

/// A label value: empty, or at most 63 characters of alphanumerics, `-`,
/// `_` and `.` that start and end with an alphanumeric.
pub fn is_label_value(s: &str) -> bool {
    is_qualified_name_part(s)
}

/// An IANA service name as Kubernetes uses for port names: at most 15
/// characters of `[a-z0-9-]`, at least one letter, no leading, trailing or
/// doubled `-`.
pub fn is_port_name(s: &str) -> bool {
    s.len() <= 15
        && is_dns_label_shape(s)
        && s.bytes().any(|c| c.is_ascii_lowercase())
        && !s.contains("--")
}

// ------------------------------------------------------------------ meta

/// Which format an object's name must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// A DNS-1123 subdomain (most kinds).
    Subdomain,
    /// A DNS-1123 label (Namespaces and Services, whose names become DNS
    /// labels).
    Label,
}

impl NameRule {
    fn check(self, s: &str) -> Result<(), &'static str> {
        match self {
            NameRule::Subdomain if !is_dns1123_subdomain(s) => Err(DNS1123_SUBDOMAIN_RULE),
            NameRule::Label if !is_dns1123_label(s) => Err(DNS1123_LABEL_RULE),
            _ => Ok(()),
        }
    }
}

/// Checks `metadata`: a name (unless `generateName` is set) of the given
/// format, a namespace iff `namespaced` (a DNS label), valid label keys and
/// values, valid annotation keys within [`ANNOTATIONS_BYTES_MAX`] in all,
/// and owner references with their identifying fields and at most one
/// controller.
pub fn validate_meta(meta: &ObjectMeta, namespaced: bool, name_rule: NameRule) -> Vec<StatusCause> {
    let mut out = Vec::new();
    check_meta(&mut out, meta, namespaced, name_rule);
    out
}

fn check_meta(out: &mut Vec<StatusCause>, meta: &ObjectMeta, namespaced: bool, rule: NameRule) {
    if meta.name.is_empty() {
        if meta.generate_name.is_empty() {
            out.push(required(
                "metadata.name",
                "name or generateName is required",
            ));
        }
    } else if let Err(why) = rule.check(&meta.name) {
        out.push(invalid("metadata.name", &meta.name, why));
    }
    if !meta.generate_name.is_empty() {
        // The server appends a random suffix, so a prefix may end in '-':
        // check it as if that dash were followed by more name.
        let masked = match meta.generate_name.strip_suffix('-') {
            Some(stem) => format!("{stem}-a"),
            None => meta.generate_name.clone(),
        };
        if let Err(why) = rule.check(&masked) {
            out.push(invalid("metadata.generateName", &meta.generate_name, why));
        }
    }
    if namespaced {
        if meta.namespace.is_empty() {
            out.push(required("metadata.namespace", ""));
        } else if !is_dns1123_label(&meta.namespace) {
            out.push(invalid(
                "metadata.namespace",
                &meta.namespace,
                DNS1123_LABEL_RULE,
            ));
        }
    } else if !meta.namespace.is_empty() {
        out.push(forbidden(
            "metadata.namespace",
            &format!(
                "not allowed on this type (got {:?}; the kind is cluster-scoped)",
                meta.namespace
            ),
        ));
    }
    check_labels_annotations(out, meta, "metadata");
    let mut controllers = 0;
    for (i, r) in meta.owner_references.iter().enumerate() {
        let path = format!("metadata.ownerReferences[{i}]");
        for (name, value) in [
            ("apiVersion", &r.api_version),
            ("kind", &r.kind),
            ("name", &r.name),
            ("uid", &r.uid),
        ] {
            if value.is_empty() {
                out.push(required(&format!("{path}.{name}"), ""));
            }
        }
        if r.controller {
            controllers += 1;
        }
    }
    if controllers > 1 {
        let owners: Vec<String> = meta
            .owner_references
            .iter()
            .filter(|r| r.controller)
            .map(|r| format!("{}/{}", r.kind, r.name))
            .collect();
        out.push(invalid(
            "metadata.ownerReferences",
            owners,
            "only one reference can have `controller` set to true",
        ));
    }
}

/// Labels and annotations of `meta`, with errors under `{path}.labels` and
/// `{path}.annotations` (pod templates check only these).
fn check_labels_annotations(out: &mut Vec<StatusCause>, meta: &ObjectMeta, path: &str) {
    check_label_map(out, &meta.labels, &format!("{path}.labels"));
    let field = format!("{path}.annotations");
    let mut bytes = 0;
    for (k, v) in &meta.annotations {
        if !is_label_key(k) {
            out.push(invalid(&field, k, LABEL_KEY_RULE));
        }
        bytes += k.len() + v.len();
    }
    if bytes > ANNOTATIONS_BYTES_MAX {
        out.push(too_long(&field, ANNOTATIONS_BYTES_MAX));
    }
}

/// A map of label keys to label values (labels, node selectors, Service
/// selectors, `matchLabels`).
fn check_label_map(out: &mut Vec<StatusCause>, map: &BTreeMap<String, String>, field: &str) {
    for (k, v) in map {
        if !is_label_key(k) {
            out.push(invalid(field, k, LABEL_KEY_RULE));
        }
        if !is_label_value(v) {
            out.push(invalid(
                field,
                v,
                &format!("value of {k:?}: {LABEL_VALUE_RULE}"),
            ));
        }
    }
}

// -------------------------------------------------------------- the trait

/// An object that can be checked before it is stored.
pub trait Validate {
    /// Every field error of the object on its own.
    fn validate(&self) -> Vec<StatusCause>;

    /// Every field error of the object as an update of `old`: its own
    /// errors plus those of changing what may not change.
    fn validate_update(&self, old: &Self) -> Vec<StatusCause> {
        let _ = old;
        self.validate()
    }
}

// ------------------------------------------------------------ small checks

/// Shows an [`IntOrString`] as it was written: `8080` or `"http"`.
struct Shown<'a>(&'a IntOrString);

impl Debug for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IntOrString::Int(v) => write!(f, "{v}"),
            IntOrString::String(s) => write!(f, "{s:?}"),
        }
    }
}

const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";
const NON_NEGATIVE: &str = "must be greater than or equal to 0";
const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];

fn check_port(out: &mut Vec<StatusCause>, port: i32, field: &str) -> bool {
    let ok = (1..=65535).contains(&port);
    if !ok {
        out.push(invalid(field, port, PORT_RANGE));
    }
    ok
}

fn check_non_negative(out: &mut Vec<StatusCause>, value: i64, field: &str) {
    if value < 0 {
        out.push(invalid(field, value, NON_NEGATIVE));
    }
}

/// A port number or the name of a container port.
fn check_port_or_name(out: &mut Vec<StatusCause>, port: &IntOrString, field: &str) {
    match port {
        IntOrString::Int(p) => {
            check_port(out, *p, field);
        }
        IntOrString::String(name) => {
            if !is_port_name(name) {
                out.push(invalid(field, name, PORT_NAME_RULE));
            }
        }
    }
}

/// `""` (meaning TCP) or one of [`PROTOCOLS`]; returns the effective one.
fn check_protocol<'a>(out: &mut Vec<StatusCause>, protocol: &'a str, field: &str) -> &'a str {
    if protocol.is_empty() {
        "TCP"
    } else {
        if !PROTOCOLS.contains(&protocol) {
            out.push(not_supported(field, protocol, PROTOCOLS));
        }
        protocol
    }
}

fn check_one_of(out: &mut Vec<StatusCause>, value: &str, field: &str, allowed: &[&str]) {
    if !value.is_empty() && !allowed.contains(&value) {
        out.push(not_supported(field, value, allowed));
    }
}

fn check_subdomain(out: &mut Vec<StatusCause>, value: &str, field: &str) {
    if !is_dns1123_subdomain(value) {
        out.push(invalid(field, value, DNS1123_SUBDOMAIN_RULE));
    }
}

/// Checks the parts of a `LabelSelector` (not whether it is empty: that is
/// up to the kind). Errors are under `field` (`spec.selector`).
pub fn validate_label_selector(selector: &LabelSelector, field: &str) -> Vec<StatusCause> {
    let mut out = Vec::new();
    check_label_map(
        &mut out,
        &selector.match_labels,
        &format!("{field}.matchLabels"),
    );
    for (i, e) in selector.match_expressions.iter().enumerate() {
        let path = format!("{field}.matchExpressions[{i}]");
        if !is_label_key(&e.key) {
            out.push(invalid(&format!("{path}.key"), &e.key, LABEL_KEY_RULE));
        }
        match e.operator.as_str() {
            "In" | "NotIn" => {
                if e.values.is_empty() {
                    out.push(required(
                        &format!("{path}.values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !e.values.is_empty() {
                    out.push(forbidden(
                        &format!("{path}.values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            other => out.push(not_supported(
                &format!("{path}.operator"),
                other,
                &["In", "NotIn", "Exists", "DoesNotExist"],
            )),
        }
        for (j, v) in e.values.iter().enumerate() {
            if !is_label_value(v) {
                out.push(invalid(&format!("{path}.values[{j}]"), v, LABEL_VALUE_RULE));
            }
        }
    }
    out
}
