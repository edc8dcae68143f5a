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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Debug};
use std::net::IpAddr;

use crate::meta::ObjectMeta;
use crate::selector::Selector;
use crate::status::StatusCause;
use crate::types::*;

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
}

// ------------------------------------------------------------ field errors

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

// ---------------------------------------------------------------- Namespace

impl Validate for Namespace {
    fn validate(&self) -> Vec<StatusCause> {
        let mut out = validate_meta(&self.metadata, false, NameRule::Label);
        check_one_of(
            &mut out,
            &self.status.phase,
            "status.phase",
            &["Active", "Terminating"],
        );
        out
    }
}

// --------------------------------------------------------------------- Node

/// The resources a node may report in `capacity` and `allocatable`.
pub const NODE_RESOURCES: &[&str] = &["cpu", "memory", "pods", "ephemeral-storage"];

/// The resources a container may request or be limited to.
pub const CONTAINER_RESOURCES: &[&str] = &["cpu", "memory", "ephemeral-storage"];

const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];

impl Validate for Node {
    fn validate(&self) -> Vec<StatusCause> {
        let mut out = validate_meta(&self.metadata, false, NameRule::Subdomain);
        let mut seen = BTreeSet::new();
        for (i, t) in self.spec.taints.iter().enumerate() {
            let path = format!("spec.taints[{i}]");
            if t.key.is_empty() {
                out.push(required(&format!("{path}.key"), ""));
            } else if !is_label_key(&t.key) {
                out.push(invalid(&format!("{path}.key"), &t.key, LABEL_KEY_RULE));
            }
            if !is_label_value(&t.value) {
                out.push(invalid(
                    &format!("{path}.value"),
                    &t.value,
                    LABEL_VALUE_RULE,
                ));
            }
            if t.effect.is_empty() {
                out.push(required(&format!("{path}.effect"), ""));
            } else {
                check_one_of(
                    &mut out,
                    &t.effect,
                    &format!("{path}.effect"),
                    TAINT_EFFECTS,
                );
            }
            if !seen.insert((t.key.as_str(), t.effect.as_str())) {
                out.push(duplicate(
                    &format!("{path}.effect"),
                    format!("{}:{}", t.key, t.effect),
                ));
            }
        }
        for (name, list) in [
            ("capacity", &self.status.capacity),
            ("allocatable", &self.status.allocatable),
        ] {
            for resource in list.keys() {
                if !NODE_RESOURCES.contains(&resource.as_str()) {
                    out.push(not_supported(
                        &format!("status.{name}[{resource}]"),
                        resource,
                        NODE_RESOURCES,
                    ));
                }
            }
        }
        out
    }
}

// ---------------------------------------------------------------------- Pod

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];

/// Checks a pod spec with errors under `path` (`spec` for a Pod,
/// `spec.template.spec` for a workload's template).
fn check_pod_spec(out: &mut Vec<StatusCause>, spec: &PodSpec, path: &str) {
    if spec.containers.is_empty() {
        out.push(required(
            &format!("{path}.containers"),
            "a pod needs at least one container",
        ));
    }
    let mut names = BTreeSet::new();
    // Containers of a pod share one network namespace, so ports (and the
    // port names Services resolve) must be unique across all of them.
    let mut ports = BTreeSet::new();
    let mut port_names = BTreeSet::new();
    for (i, c) in spec.containers.iter().enumerate() {
        let cpath = format!("{path}.containers[{i}]");
        let field = |f: &str| format!("{cpath}.{f}");
        if c.name.is_empty() {
            out.push(required(&field("name"), ""));
        } else if !is_dns1123_label(&c.name) {
            out.push(invalid(&field("name"), &c.name, DNS1123_LABEL_RULE));
        } else if !names.insert(c.name.as_str()) {
            out.push(duplicate(&field("name"), &c.name));
        }
        if c.image.is_empty() {
            out.push(required(&field("image"), ""));
        } else if c.image.trim() != c.image {
            out.push(invalid(
                &field("image"),
                &c.image,
                "must not have leading or trailing whitespace",
            ));
        }
        for (j, p) in c.ports.iter().enumerate() {
            let ppath = format!("{cpath}.ports[{j}]");
            let port_ok = check_port(out, p.container_port, &format!("{ppath}.containerPort"));
            let protocol = check_protocol(out, &p.protocol, &format!("{ppath}.protocol"));
            if port_ok && !ports.insert((p.container_port, protocol)) {
                out.push(duplicate(
                    &format!("{ppath}.containerPort"),
                    p.container_port,
                ));
            }
            if !p.name.is_empty() {
                if !is_port_name(&p.name) {
                    out.push(invalid(&format!("{ppath}.name"), &p.name, PORT_NAME_RULE));
                } else if !port_names.insert(p.name.as_str()) {
                    out.push(duplicate(&format!("{ppath}.name"), &p.name));
                }
            }
        }
        check_resources(out, &c.resources, &field("resources"));
        if let Some(probe) = &c.readiness_probe {
            check_probe(out, probe, &field("readinessProbe"));
        }
    }
    check_one_of(
        out,
        &spec.restart_policy,
        &format!("{path}.restartPolicy"),
        RESTART_POLICIES,
    );
    check_label_map(out, &spec.node_selector, &format!("{path}.nodeSelector"));
    for (i, t) in spec.tolerations.iter().enumerate() {
        check_toleration(out, t, &format!("{path}.tolerations[{i}]"));
    }
    if let Some(grace) = spec.termination_grace_period_seconds {
        check_non_negative(out, grace, &format!("{path}.terminationGracePeriodSeconds"));
    }
    if !spec.scheduler_name.is_empty() {
        check_subdomain(out, &spec.scheduler_name, &format!("{path}.schedulerName"));
    }
    if !spec.node_name.is_empty() {
        check_subdomain(out, &spec.node_name, &format!("{path}.nodeName"));
    }
}

fn check_resources(out: &mut Vec<StatusCause>, r: &ResourceRequirements, path: &str) {
    for (kind, list) in [("requests", &r.requests), ("limits", &r.limits)] {
        for name in list.keys() {
            if !CONTAINER_RESOURCES.contains(&name.as_str()) {
                out.push(not_supported(
                    &format!("{path}.{kind}[{name}]"),
                    name,
                    CONTAINER_RESOURCES,
                ));
            }
        }
    }
    for (name, request) in &r.requests {
        if let Some(limit) = r.limits.get(name) {
            if request.milli_value() > limit.milli_value() {
                out.push(invalid(
                    &format!("{path}.requests[{name}]"),
                    request.as_str(),
                    &format!("must be less than or equal to {name} limit of {limit}"),
                ));
            }
        }
    }
}

fn check_probe(out: &mut Vec<StatusCause>, p: &Probe, path: &str) {
    match (&p.http_get, &p.tcp_socket) {
        (None, None) => out.push(required(
            path,
            "must specify a handler type (httpGet or tcpSocket)",
        )),
        (Some(_), Some(_)) => out.push(forbidden(
            &format!("{path}.tcpSocket"),
            "may not specify more than 1 handler type",
        )),
        _ => {}
    }
    if let Some(h) = &p.http_get {
        check_port_or_name(out, &h.port, &format!("{path}.httpGet.port"));
    }
    if let Some(t) = &p.tcp_socket {
        check_port_or_name(out, &t.port, &format!("{path}.tcpSocket.port"));
    }
    for (name, value) in [
        ("initialDelaySeconds", p.initial_delay_seconds),
        ("periodSeconds", p.period_seconds),
        ("timeoutSeconds", p.timeout_seconds),
        ("successThreshold", p.success_threshold),
        ("failureThreshold", p.failure_threshold),
    ] {
        check_non_negative(out, value.into(), &format!("{path}.{name}"));
    }
}

fn check_toleration(out: &mut Vec<StatusCause>, t: &Toleration, path: &str) {
    let op_field = format!("{path}.operator");
    if !t.key.is_empty() && !is_label_key(&t.key) {
        out.push(invalid(&format!("{path}.key"), &t.key, LABEL_KEY_RULE));
    }
    match t.operator.as_str() {
        "" | "Equal" => {
            if t.key.is_empty() {
                out.push(invalid(
                    &op_field,
                    &t.operator,
                    "operator must be Exists when `key` is empty, which means \
                     \"match all values and all keys\"",
                ));
            }
            if !is_label_value(&t.value) {
                out.push(invalid(
                    &format!("{path}.value"),
                    &t.value,
                    LABEL_VALUE_RULE,
                ));
            }
        }
        "Exists" => {
            if !t.value.is_empty() {
                out.push(invalid(
                    &op_field,
                    &t.value,
                    "value must be empty when `operator` is 'Exists'",
                ));
            }
        }
        other => out.push(not_supported(&op_field, other, &["Equal", "Exists"])),
    }
    check_one_of(out, &t.effect, &format!("{path}.effect"), TAINT_EFFECTS);
}

impl Validate for Pod {
    fn validate(&self) -> Vec<StatusCause> {
        let mut out = validate_meta(&self.metadata, true, NameRule::Subdomain);
        check_pod_spec(&mut out, &self.spec, "spec");
        out
    }

    /// A pod's spec is fixed at creation, except that `spec.nodeName` may
    /// go from empty to a node once (the binding); it may never change
    /// after that.
    fn validate_update(&self, old: &Self) -> Vec<StatusCause> {
        let mut out = self.validate();
        if !old.spec.node_name.is_empty() && self.spec.node_name != old.spec.node_name {
            out.push(forbidden(
                "spec.nodeName",
                &format!(
                    "may not be changed once set (the pod is bound to node {:?}, the update \
                     asks for {:?})",
                    old.spec.node_name, self.spec.node_name
                ),
            ));
        }
        let changed = changed_fields(
            &PodSpec {
                node_name: String::new(),
                ..self.spec.clone()
            },
            &PodSpec {
                node_name: String::new(),
                ..old.spec.clone()
            },
        );
        if !changed.is_empty() {
            out.push(forbidden(
                "spec",
                &format!(
                    "pod updates may not change fields other than `spec.nodeName` (which may \
                     only be set once, while empty); changed: {}",
                    changed.join(", ")
                ),
            ));
        }
        out
    }
}

/// The top-level JSON fields in which `new` and `old` differ (camelCase,
/// as a user wrote them).
fn changed_fields<T: serde::Serialize + PartialEq>(new: &T, old: &T) -> Vec<String> {
    if new == old {
        return Vec::new();
    }
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(new), serde_json::to_value(old))
    else {
        // Not representable as objects: say only that something changed.
        return vec!["(the whole value)".to_string()];
    };
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

// ------------------------------------------------ Deployment and ReplicaSet

/// The selector as a query string for messages, or its debug form if it is
/// not expressible.
fn selector_text(selector: &LabelSelector) -> String {
    Selector::try_from(selector)
        .map(|s| s.to_string())
        .unwrap_or_else(|_| format!("{selector:?}"))
}

/// What Deployments and ReplicaSets share: replicas, a non-empty selector
/// that matches the template's labels, a valid template that restarts
/// always.
fn check_workload(
    out: &mut Vec<StatusCause>,
    kind: &str,
    replicas: Option<i32>,
    selector: &LabelSelector,
    template: &PodTemplateSpec,
    min_ready_seconds: i32,
) {
    if let Some(r) = replicas {
        check_non_negative(out, r.into(), "spec.replicas");
    }
    check_non_negative(out, min_ready_seconds.into(), "spec.minReadySeconds");
    let selector_errors = validate_label_selector(selector, "spec.selector");
    let selector_ok = selector_errors.is_empty();
    out.extend(selector_errors);
    if selector.is_empty() {
        out.push(required(
            "spec.selector",
            &format!("an empty selector is invalid for a {kind}: it would select every pod"),
        ));
    }
    check_labels_annotations(out, &template.metadata, "spec.template.metadata");
    if selector_ok && !selector.is_empty() && !selector.matches(&template.metadata.labels) {
        out.push(invalid(
            "spec.template.metadata.labels",
            &template.metadata.labels,
            &format!(
                "`selector` does not match template `labels` (selector: {})",
                selector_text(selector)
            ),
        ));
    }
    check_pod_spec(out, &template.spec, "spec.template.spec");
    // A controller replaces pods that exit; letting them stay down would
    // leave it fighting the kubelet.
    if matches!(template.spec.restart_policy.as_str(), "OnFailure" | "Never") {
        out.push(not_supported(
            "spec.template.spec.restartPolicy",
            &template.spec.restart_policy,
            &["Always"],
        ));
    }
}

fn check_selector_unchanged(out: &mut Vec<StatusCause>, new: &LabelSelector, old: &LabelSelector) {
    if new != old {
        out.push(invalid(
            "spec.selector",
            selector_text(new),
            &format!("field is immutable (was {:?})", selector_text(old)),
        ));
    }
}

/// Checks `maxSurge`/`maxUnavailable`; returns whether it is zero.
fn check_int_or_percent(
    out: &mut Vec<StatusCause>,
    value: &IntOrString,
    field: &str,
    percent_max_100: bool,
) -> bool {
    match value {
        IntOrString::Int(v) => {
            check_non_negative(out, (*v).into(), field);
            *v == 0
        }
        IntOrString::String(s) => {
            let pct = s
                .strip_suffix('%')
                .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|d| d.parse::<u64>().ok());
            match pct {
                None => {
                    out.push(invalid(
                        field,
                        Shown(value),
                        "must be an integer or a percentage (e.g. '25%')",
                    ));
                    false
                }
                Some(p) => {
                    if percent_max_100 && p > 100 {
                        out.push(invalid(
                            field,
                            Shown(value),
                            "must not be greater than 100%",
                        ));
                    }
                    p == 0
                }
            }
        }
    }
}

impl Validate for Deployment {
    fn validate(&self) -> Vec<StatusCause> {
        let mut out = validate_meta(&self.metadata, true, NameRule::Subdomain);
        let s = &self.spec;
        check_workload(
            &mut out,
            "Deployment",
            s.replicas,
            &s.selector,
            &s.template,
            s.min_ready_seconds,
        );
        if let Some(limit) = s.revision_history_limit {
            check_non_negative(&mut out, limit.into(), "spec.revisionHistoryLimit");
        }
        check_one_of(
            &mut out,
            &s.strategy.kind,
            "spec.strategy.type",
            &["RollingUpdate", "Recreate"],
        );
        if let Some(ru) = &s.strategy.rolling_update {
            if s.strategy.kind == "Recreate" {
                out.push(forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
            let path = "spec.strategy.rollingUpdate";
            // Unset, either defaults to 25%, which is not zero.
            let surge_zero = ru.max_surge.as_ref().is_some_and(|v| {
                check_int_or_percent(&mut out, v, &format!("{path}.maxSurge"), false)
            });
            let unavailable_zero = ru.max_unavailable.as_ref().is_some_and(|v| {
                check_int_or_percent(&mut out, v, &format!("{path}.maxUnavailable"), true)
            });
            if surge_zero && unavailable_zero {
                if let Some(v) = &ru.max_unavailable {
                    out.push(invalid(
                        &format!("{path}.maxUnavailable"),
                        Shown(v),
                        "may not be 0 when `maxSurge` is 0: the rollout could never progress",
                    ));
                }
            }
        }
        out
    }

    /// `spec.selector` may not change: the Deployment would orphan the
    /// ReplicaSets and pods it owns.
    fn validate_update(&self, old: &Self) -> Vec<StatusCause> {
        let mut out = self.validate();
        check_selector_unchanged(&mut out, &self.spec.selector, &old.spec.selector);
        out
    }
}

impl Validate for ReplicaSet {
    fn validate(&self) -> Vec<StatusCause> {
        let mut out = validate_meta(&self.metadata, true, NameRule::Subdomain);
        let s = &self.spec;
        check_workload(
            &mut out,
            "ReplicaSet",
            s.replicas,
            &s.selector,
            &s.template,
            s.min_ready_seconds,
        );
        out
    }

    /// `spec.selector` may not change: the ReplicaSet would orphan its pods.
    fn validate_update(&self, old: &Self) -> Vec<StatusCause> {
        let mut out = self.validate();
        check_selector_unchanged(&mut out, &self.spec.selector, &old.spec.selector);
        out
    }
}

// ------------------------------------------------------ Service, Endpoints

/// The range `nodePort` must fall in (Kubernetes' default).
pub const NODE_PORT_RANGE: std::ops::RangeInclusive<i32> = 30000..=32767;

impl Validate for Service {
    fn validate(&self) -> Vec<StatusCause> {
        let mut out = validate_meta(&self.metadata, true, NameRule::Label);
        let s = &self.spec;
        check_one_of(&mut out, &s.kind, "spec.type", &["ClusterIP", "NodePort"]);
        if s.ports.is_empty() {
            out.push(required("spec.ports", "a service needs at least one port"));
        }
        let mut names = BTreeSet::new();
        let mut ports = BTreeSet::new();
        let mut node_ports = BTreeSet::new();
        for (i, p) in s.ports.iter().enumerate() {
            let path = format!("spec.ports[{i}]");
            if p.name.is_empty() {
                if s.ports.len() > 1 {
                    out.push(required(
                        &format!("{path}.name"),
                        "every port must be named when a service has more than one",
                    ));
                }
            } else if !is_dns1123_label(&p.name) {
                out.push(invalid(
                    &format!("{path}.name"),
                    &p.name,
                    DNS1123_LABEL_RULE,
                ));
            } else if !names.insert(p.name.as_str()) {
                out.push(duplicate(&format!("{path}.name"), &p.name));
            }
            let protocol = check_protocol(&mut out, &p.protocol, &format!("{path}.protocol"));
            if check_port(&mut out, p.port, &format!("{path}.port"))
                && !ports.insert((p.port, protocol))
            {
                out.push(duplicate(&path, format!("{}/{protocol}", p.port)));
            }
            if let Some(target) = &p.target_port {
                check_port_or_name(&mut out, target, &format!("{path}.targetPort"));
            }
            if p.node_port != 0 {
                let field = format!("{path}.nodePort");
                if !NODE_PORT_RANGE.contains(&p.node_port) {
                    out.push(invalid(
                        &field,
                        p.node_port,
                        "provided port is not in the valid range. The range of valid ports \
                         is 30000-32767",
                    ));
                } else if !node_ports.insert(p.node_port) {
                    out.push(duplicate(&field, p.node_port));
                }
                if s.kind.is_empty() || s.kind == "ClusterIP" {
                    out.push(forbidden(
                        &field,
                        "may not be used when `type` is 'ClusterIP'",
                    ));
                }
            }
        }
        check_label_map(&mut out, &s.selector, "spec.selector");
        if !s.cluster_ip.is_empty()
            && s.cluster_ip != "None"
            && s.cluster_ip.parse::<IpAddr>().is_err()
        {
            out.push(invalid(
                "spec.clusterIP",
                &s.cluster_ip,
                "must be a valid IP address (e.g. 10.9.8.7) or \"None\"",
            ));
        }
        out
    }

    /// An allocated `spec.clusterIP` may not change. (An update that leaves
    /// it empty is accepted: the server keeps the allocated one.)
    fn validate_update(&self, old: &Self) -> Vec<StatusCause> {
        let mut out = self.validate();
        let (new_ip, old_ip) = (&self.spec.cluster_ip, &old.spec.cluster_ip);
        if !old_ip.is_empty() && !new_ip.is_empty() && new_ip != old_ip {
            out.push(invalid(
                "spec.clusterIP",
                new_ip,
                &format!("field is immutable (was {old_ip:?})"),
            ));
        }
        out
    }
}

fn check_endpoint_address(out: &mut Vec<StatusCause>, a: &EndpointAddress, path: &str) {
    let field = format!("{path}.ip");
    if a.ip.is_empty() {
        out.push(required(&field, ""));
    } else if a.ip.parse::<IpAddr>().is_err() {
        out.push(invalid(
            &field,
            &a.ip,
            "must be a valid IP address (e.g. 10.9.8.7)",
        ));
    }
    if let Some(node) = a.node_name.as_deref().filter(|n| !n.is_empty()) {
        check_subdomain(out, node, &format!("{path}.nodeName"));
    }
}

impl Validate for Endpoints {
    fn validate(&self) -> Vec<StatusCause> {
        let mut out = validate_meta(&self.metadata, true, NameRule::Subdomain);
        for (i, subset) in self.subsets.iter().enumerate() {
            let path = format!("subsets[{i}]");
            for (j, a) in subset.addresses.iter().enumerate() {
                check_endpoint_address(&mut out, a, &format!("{path}.addresses[{j}]"));
            }
            for (j, a) in subset.not_ready_addresses.iter().enumerate() {
                check_endpoint_address(&mut out, a, &format!("{path}.notReadyAddresses[{j}]"));
            }
            let mut names = BTreeSet::new();
            for (k, p) in subset.ports.iter().enumerate() {
                let ppath = format!("{path}.ports[{k}]");
                check_port(&mut out, p.port, &format!("{ppath}.port"));
                check_protocol(&mut out, &p.protocol, &format!("{ppath}.protocol"));
                if p.name.is_empty() {
                    if subset.ports.len() > 1 {
                        out.push(required(&format!("{ppath}.name"), ""));
                    }
                } else if !is_dns1123_label(&p.name) {
                    out.push(invalid(
                        &format!("{ppath}.name"),
                        &p.name,
                        DNS1123_LABEL_RULE,
                    ));
                } else if !names.insert(p.name.as_str()) {
                    out.push(duplicate(&format!("{ppath}.name"), &p.name));
                }
            }
        }
        out
    }
}

// -------------------------------------------------------------- Lease, Event

impl Validate for Lease {
    fn validate(&self) -> Vec<StatusCause> {
        let mut out = validate_meta(&self.metadata, true, NameRule::Subdomain);
        if let Some(d) = self.spec.lease_duration_seconds {
            if d <= 0 {
                out.push(invalid(
                    "spec.leaseDurationSeconds",
                    d,
                    "must be greater than 0",
                ));
            }
        }
        if let Some(t) = self.spec.lease_transitions {
            check_non_negative(&mut out, t.into(), "spec.leaseTransitions");
        }
        out
    }
}

impl Validate for Event {
    fn validate(&self) -> Vec<StatusCause> {
        let mut out = validate_meta(&self.metadata, true, NameRule::Subdomain);
        let o = &self.involved_object;
        if o.kind.is_empty() {
            out.push(required("involvedObject.kind", ""));
        }
        if o.name.is_empty() {
            out.push(required("involvedObject.name", ""));
        }
        // Events about cluster-scoped objects (Nodes) live in some namespace
        // while the object has none; a namespaced object's events live in
        // its own namespace.
        if !o.namespace.is_empty() && o.namespace != self.metadata.namespace {
            out.push(invalid(
                "involvedObject.namespace",
                &o.namespace,
                &format!(
                    "does not match the event's namespace {:?}",
                    self.metadata.namespace
                ),
            ));
        }
        check_one_of(&mut out, &self.event_type, "type", &["Normal", "Warning"]);
        check_non_negative(&mut out, self.count.into(), "count");
        out
    }
}

// ----------------------------------------------------------- sub-resources

impl Validate for Binding {
    /// Only the target: a Binding's name and namespace are the pod's, taken
    /// from the URL.
    fn validate(&self) -> Vec<StatusCause> {
        let mut out = Vec::new();
        if self.target.name.is_empty() {
            out.push(required("target.name", "the node to bind to"));
        } else {
            check_subdomain(&mut out, &self.target.name, "target.name");
        }
        check_one_of(&mut out, &self.target.kind, "target.kind", &["Node"]);
        out
    }
}

impl Validate for Scale {
    /// Only the replica count: a Scale's name and namespace are its
    /// parent's, taken from the URL.
    fn validate(&self) -> Vec<StatusCause> {
        let mut out = Vec::new();
        check_non_negative(&mut out, self.spec.replicas.into(), "spec.replicas");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{ObjectReference, OwnerReference};
    use crate::quantity::Quantity;
    use crate::selector::label_map;

    fn fields(causes: &[StatusCause]) -> Vec<&str> {
        causes.iter().map(|c| c.field.as_str()).collect()
    }

    fn has(causes: &[StatusCause], reason: &str, field: &str) -> bool {
        causes
            .iter()
            .any(|c| c.reason == reason && c.field == field)
    }

    #[track_caller]
    fn assert_has(causes: &[StatusCause], reason: &str, field: &str) {
        assert!(
            has(causes, reason, field),
            "expected {reason} at {field}, got {causes:#?}"
        );
    }

    fn container(name: &str) -> Container {
        Container {
            name: name.into(),
            image: "echo".into(),
            ..Default::default()
        }
    }

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta::named("default", "web-1"),
            spec: PodSpec {
                containers: vec![container("c")],
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn deployment() -> Deployment {
        let app = label_map(&[("app", "web")]);
        Deployment {
            metadata: ObjectMeta::named("default", "web"),
            spec: DeploymentSpec {
                replicas: Some(3),
                selector: LabelSelector {
                    match_labels: app.clone(),
                    ..Default::default()
                },
                template: PodTemplateSpec {
                    metadata: ObjectMeta {
                        labels: app,
                        ..Default::default()
                    },
                    spec: pod().spec,
                },
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn service() -> Service {
        Service {
            metadata: ObjectMeta::named("default", "web"),
            spec: ServiceSpec {
                selector: label_map(&[("app", "web")]),
                ports: vec![ServicePort {
                    port: 80,
                    target_port: Some(IntOrString::Int(8080)),
                    ..Default::default()
                }],
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).expect("test quantity")
    }

    #[test]
    fn name_formats() {
        for good in ["a", "web-1", "0", "a-b-c", &"a".repeat(63)] {
            assert!(is_dns1123_label(good), "{good:?}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(64)] {
            assert!(!is_dns1123_label(bad), "{bad:?}");
        }
        for good in ["a.b", "web-1.example.com", &"a".repeat(253)] {
            assert!(is_dns1123_subdomain(good), "{good:?}");
        }
        for bad in ["", "a..b", ".a", "a.", "a_b", "Web", &"a".repeat(254)] {
            assert!(!is_dns1123_subdomain(bad), "{bad:?}");
        }
        for good in [
            "app",
            "App_1.x-y",
            "example.com/tier",
            "k8s.io/a",
            &"a".repeat(63),
        ] {
            assert!(is_label_key(good), "{good:?}");
        }
        for bad in [
            "",
            "/a",
            "a/",
            "a/b/c",
            "-a",
            "a b",
            "Example.com/a",
            &"a".repeat(64),
        ] {
            assert!(!is_label_key(bad), "{bad:?}");
        }
        for good in ["", "web", "v1.2", "A_b-c"] {
            assert!(is_label_value(good), "{good:?}");
        }
        for bad in ["-web", "a b", "a/b", &"a".repeat(64)] {
            assert!(!is_label_value(bad), "{bad:?}");
        }
        for good in ["http", "h2", "web-api"] {
            assert!(is_port_name(good), "{good:?}");
        }
        for bad in ["", "80", "a--b", "-a", "HTTP", "abcdefghijklmnop"] {
            assert!(!is_port_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn meta_requires_name_and_namespace() {
        let e = validate_meta(&ObjectMeta::default(), true, NameRule::Subdomain);
        assert_has(&e, reason::REQUIRED, "metadata.name");
        assert_has(&e, reason::REQUIRED, "metadata.namespace");
        let m = ObjectMeta {
            generate_name: "web-".into(),
            namespace: "default".into(),
            ..Default::default()
        };
        assert!(validate_meta(&m, true, NameRule::Subdomain).is_empty());
        let m = ObjectMeta {
            generate_name: "Web-".into(),
            namespace: "default".into(),
            ..Default::default()
        };
        assert_has(
            &validate_meta(&m, true, NameRule::Subdomain),
            reason::INVALID,
            "metadata.generateName",
        );
        let e = validate_meta(&ObjectMeta::named("x", "n1"), false, NameRule::Subdomain);
        assert_has(&e, reason::FORBIDDEN, "metadata.namespace");
        let e = validate_meta(&ObjectMeta::named("Bad_NS", "a.b"), true, NameRule::Label);
        assert_has(&e, reason::INVALID, "metadata.namespace");
        assert_has(&e, reason::INVALID, "metadata.name");
        assert!(e[0].message.contains("\"a.b\""), "{e:?}");
        assert!(
            validate_meta(&ObjectMeta::named("ns", "a.b"), true, NameRule::Subdomain).is_empty()
        );
    }

    #[test]
    fn meta_checks_labels_annotations_and_owners() {
        let mut m = ObjectMeta::named("default", "web");
        m.labels = label_map(&[("bad key", "v"), ("ok", "bad value")]);
        m.annotations = label_map(&[("example.com/note", "anything at all, even spaces")]);
        let e = validate_meta(&m, true, NameRule::Subdomain);
        assert_eq!(fields(&e), vec!["metadata.labels", "metadata.labels"]);
        assert!(e[0].message.contains("\"bad key\""), "{e:?}");
        assert!(e[1].message.contains("\"bad value\""), "{e:?}");

        let mut m = ObjectMeta::named("default", "web");
        m.annotations = label_map(&[("big", &"x".repeat(ANNOTATIONS_BYTES_MAX))]);
        assert_has(
            &validate_meta(&m, true, NameRule::Subdomain),
            reason::TOO_LONG,
            "metadata.annotations",
        );

        let owner = OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "web-1".into(),
            uid: "u1".into(),
            controller: true,
            block_owner_deletion: true,
        };
        let mut m = ObjectMeta::named("default", "web");
        m.owner_references = vec![
            owner.clone(),
            OwnerReference {
                uid: String::new(),
                ..owner
            },
        ];
        let e = validate_meta(&m, true, NameRule::Subdomain);
        assert_has(&e, reason::REQUIRED, "metadata.ownerReferences[1].uid");
        assert_has(&e, reason::INVALID, "metadata.ownerReferences");
    }

    #[test]
    fn a_good_pod_is_valid() {
        let mut p = pod();
        p.spec.containers[0].ports = vec![ContainerPort {
            name: "http".into(),
            container_port: 8080,
            protocol: String::new(),
        }];
        p.spec.containers[0]
            .resources
            .requests
            .insert("cpu".into(), q("250m"));
        p.spec.containers[0]
            .resources
            .limits
            .insert("cpu".into(), q("1"));
        p.spec.containers[0].readiness_probe = Some(Probe {
            http_get: Some(HttpGetAction {
                path: "/".into(),
                port: IntOrString::String("http".into()),
            }),
            period_seconds: 1,
            ..Default::default()
        });
        p.spec.restart_policy = "Always".into();
        p.spec.node_selector = label_map(&[(labels::ZONE, "z1")]);
        p.spec.tolerations = vec![Toleration {
            key: "k".into(),
            operator: "Exists".into(),
            effect: "NoExecute".into(),
            ..Default::default()
        }];
        assert_eq!(p.validate(), vec![]);
    }

    #[test]
    fn a_pod_with_three_errors_reports_all_three() {
        let mut p = pod();
        p.spec.containers[0].image = String::new();
        p.spec.containers.push(container("c"));
        p.spec.restart_policy = "Sometimes".into();
        let e = p.validate();
        assert_eq!(
            fields(&e),
            vec![
                "spec.containers[0].image",
                "spec.containers[1].name",
                "spec.restartPolicy"
            ],
            "{e:#?}"
        );
        assert_eq!(e[0].reason, reason::REQUIRED);
        assert_eq!(e[1].reason, reason::DUPLICATE);
        assert_eq!(e[2].reason, reason::NOT_SUPPORTED);
        assert!(e[2].message.contains("\"Sometimes\""), "{}", e[2].message);
        assert!(e[2].message.contains("\"OnFailure\""), "{}", e[2].message);
    }

    #[test]
    fn pod_containers() {
        let mut p = pod();
        p.spec.containers.clear();
        assert_has(&p.validate(), reason::REQUIRED, "spec.containers");
        let mut p = pod();
        p.spec.containers = vec![container(""), container("Bad_Name"), container("ok")];
        p.spec.containers[2].image = " echo".into();
        let e = p.validate();
        assert_has(&e, reason::REQUIRED, "spec.containers[0].name");
        assert_has(&e, reason::INVALID, "spec.containers[1].name");
        assert_has(&e, reason::INVALID, "spec.containers[2].image");
    }

    #[test]
    fn pod_ports() {
        let port = |name: &str, n: i32| ContainerPort {
            name: name.into(),
            container_port: n,
            protocol: String::new(),
        };
        let mut p = pod();
        p.spec.containers[0].ports = vec![port("", 0), port("http", 80), port("http", 81)];
        p.spec.containers.push(container("d"));
        p.spec.containers[1].ports = vec![
            port("", 80),
            port("", 70000),
            ContainerPort {
                protocol: "ICMP".into(),
                ..port("", 90)
            },
        ];
        let e = p.validate();
        assert_has(
            &e,
            reason::INVALID,
            "spec.containers[0].ports[0].containerPort",
        );
        assert_has(&e, reason::DUPLICATE, "spec.containers[0].ports[2].name");
        assert_has(
            &e,
            reason::DUPLICATE,
            "spec.containers[1].ports[0].containerPort",
        );
        assert_has(
            &e,
            reason::INVALID,
            "spec.containers[1].ports[1].containerPort",
        );
        assert_has(
            &e,
            reason::NOT_SUPPORTED,
            "spec.containers[1].ports[2].protocol",
        );
        assert_eq!(e.len(), 5, "{e:#?}");
        // The same number over another protocol is a different port.
        let mut p = pod();
        p.spec.containers[0].ports = vec![
            port("", 53),
            ContainerPort {
                protocol: "UDP".into(),
                ..port("", 53)
            },
        ];
        assert_eq!(p.validate(), vec![]);
    }

    #[test]
    fn pod_requests_must_not_exceed_limits() {
        let mut p = pod();
        let r = &mut p.spec.containers[0].resources;
        r.requests.insert("cpu".into(), q("2"));
        r.limits.insert("cpu".into(), q("500m"));
        r.requests.insert("memory".into(), q("64Mi"));
        r.limits.insert("memory".into(), q("128Mi"));
        r.requests.insert("gpu".into(), q("1"));
        let e = p.validate();
        assert_eq!(e.len(), 2, "{e:#?}");
        assert_has(
            &e,
            reason::INVALID,
            "spec.containers[0].resources.requests[cpu]",
        );
        assert!(
            e[1].message.contains("cpu limit of 500m"),
            "{}",
            e[1].message
        );
        assert_has(
            &e,
            reason::NOT_SUPPORTED,
            "spec.containers[0].resources.requests[gpu]",
        );
    }

    #[test]
    fn pod_probes_need_exactly_one_handler() {
        let mut p = pod();
        p.spec.containers[0].readiness_probe = Some(Probe::default());
        assert_has(
            &p.validate(),
            reason::REQUIRED,
            "spec.containers[0].readinessProbe",
        );
        p.spec.containers[0].readiness_probe = Some(Probe {
            http_get: Some(HttpGetAction {
                path: "/".into(),
                port: IntOrString::Int(0),
            }),
            tcp_socket: Some(TcpSocketAction {
                port: IntOrString::String("No".into()),
            }),
            period_seconds: -1,
            failure_threshold: -3,
            ..Default::default()
        });
        let e = p.validate();
        let path = "spec.containers[0].readinessProbe";
        assert_has(&e, reason::FORBIDDEN, &format!("{path}.tcpSocket"));
        assert_has(&e, reason::INVALID, &format!("{path}.httpGet.port"));
        assert_has(&e, reason::INVALID, &format!("{path}.tcpSocket.port"));
        assert_has(&e, reason::INVALID, &format!("{path}.periodSeconds"));
        assert_has(&e, reason::INVALID, &format!("{path}.failureThreshold"));
        assert_eq!(e.len(), 5, "{e:#?}");
    }

    #[test]
    fn pod_tolerations_and_node_selector() {
        let mut p = pod();
        p.spec.tolerations = vec![
            Toleration {
                key: "k".into(),
                operator: "Exists".into(),
                value: "v".into(),
                ..Default::default()
            },
            Toleration {
                key: "k".into(),
                operator: "Greater".into(),
                ..Default::default()
            },
            Toleration {
                operator: "Equal".into(),
                effect: "NoWay".into(),
                ..Default::default()
            },
            // Empty key with Exists tolerates everything: valid.
            Toleration {
                operator: "Exists".into(),
                ..Default::default()
            },
        ];
        p.spec.node_selector = label_map(&[("zone", "a b")]);
        p.spec.termination_grace_period_seconds = Some(-1);
        let e = p.validate();
        assert_has(&e, reason::INVALID, "spec.tolerations[0].operator");
        let exists_with_value = e.iter().find(|c| c.field == "spec.tolerations[0].operator");
        assert!(
            exists_with_value.is_some_and(|c| c.message.contains("\"v\"")),
            "{e:#?}"
        );
        assert_has(&e, reason::NOT_SUPPORTED, "spec.tolerations[1].operator");
        assert_has(&e, reason::INVALID, "spec.tolerations[2].operator");
        assert_has(&e, reason::NOT_SUPPORTED, "spec.tolerations[2].effect");
        assert_has(&e, reason::INVALID, "spec.nodeSelector");
        assert_has(&e, reason::INVALID, "spec.terminationGracePeriodSeconds");
        assert_eq!(e.len(), 6, "{e:#?}");
    }

    #[test]
    fn pod_updates_may_only_bind_once() {
        let old = pod();
        let mut bound = old.clone();
        bound.spec.node_name = "node-1".into();
        assert_eq!(bound.validate_update(&old), vec![]);
        assert_eq!(bound.validate_update(&bound), vec![]);

        let mut moved = bound.clone();
        moved.spec.node_name = "node-2".into();
        let e = moved.validate_update(&bound);
        assert_eq!(fields(&e), vec!["spec.nodeName"]);
        assert_eq!(e[0].reason, reason::FORBIDDEN);
        assert!(e[0].message.contains("\"node-1\""), "{}", e[0].message);

        let mut unbound = bound.clone();
        unbound.spec.node_name.clear();
        assert_has(
            &unbound.validate_update(&bound),
            reason::FORBIDDEN,
            "spec.nodeName",
        );

        let mut new_image = bound.clone();
        new_image.spec.containers[0].image = "other".into();
        new_image.spec.restart_policy = "Never".into();
        let e = new_image.validate_update(&bound);
        assert_eq!(fields(&e), vec!["spec"]);
        assert_eq!(e[0].reason, reason::FORBIDDEN);
        assert!(
            e[0].message.contains("containers, restartPolicy"),
            "{}",
            e[0].message
        );

        // Status and metadata changes are not the spec's business.
        let mut status = bound.clone();
        status.status.phase = "Running".into();
        status.metadata.labels = label_map(&[("a", "b")]);
        assert_eq!(status.validate_update(&bound), vec![]);
    }

    #[test]
    fn a_good_deployment_is_valid() {
        let mut d = deployment();
        d.spec.strategy = DeploymentStrategy {
            kind: "RollingUpdate".into(),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(IntOrString::String("25%".into())),
                max_unavailable: Some(IntOrString::Int(0)),
            }),
        };
        assert_eq!(d.validate(), vec![]);
    }

    #[test]
    fn deployment_selector_must_match_template() {
        let mut d = deployment();
        d.spec.template.metadata.labels = label_map(&[("app", "db")]);
        let e = d.validate();
        assert_eq!(fields(&e), vec!["spec.template.metadata.labels"]);
        assert_eq!(e[0].reason, reason::INVALID);
        assert!(
            e[0].message
                .contains("`selector` does not match template `labels`"),
            "{}",
            e[0].message
        );

        let mut d = deployment();
        d.spec.selector = LabelSelector::default();
        let e = d.validate();
        assert_eq!(fields(&e), vec!["spec.selector"]);
        assert_eq!(e[0].reason, reason::REQUIRED);

        let mut d = deployment();
        d.spec.selector.match_expressions = vec![
            LabelSelectorRequirement::new("env", "In", &[]),
            LabelSelectorRequirement::new("env", "Exists", &["x"]),
            LabelSelectorRequirement::new("env", "Gt", &["1"]),
        ];
        let e = d.validate();
        assert_eq!(
            fields(&e),
            vec![
                "spec.selector.matchExpressions[0].values",
                "spec.selector.matchExpressions[1].values",
                "spec.selector.matchExpressions[2].operator",
            ],
            "an invalid selector is not also reported as not matching: {e:#?}"
        );
    }

    #[test]
    fn deployment_spec_rules() {
        let mut d = deployment();
        d.spec.replicas = Some(-1);
        d.spec.template.spec.containers[0].image.clear();
        d.spec.template.spec.restart_policy = "Never".into();
        d.spec.strategy.kind = "BlueGreen".into();
        let e = d.validate();
        assert_eq!(
            fields(&e),
            vec![
                "spec.replicas",
                "spec.template.spec.containers[0].image",
                "spec.template.spec.restartPolicy",
                "spec.strategy.type",
            ],
            "{e:#?}"
        );
    }

    #[test]
    fn deployment_rolling_update_rules() {
        let with = |surge: Option<IntOrString>, unavailable: Option<IntOrString>| {
            let mut d = deployment();
            d.spec.strategy.rolling_update = Some(RollingUpdateDeployment {
                max_surge: surge,
                max_unavailable: unavailable,
            });
            d.validate()
        };
        let int = IntOrString::Int;
        let pct = |s: &str| IntOrString::String(s.into());
        let path = "spec.strategy.rollingUpdate";
        let e = with(Some(int(0)), Some(pct("0%")));
        assert_eq!(fields(&e), vec![format!("{path}.maxUnavailable")]);
        assert!(e[0].message.contains("may not be 0"), "{}", e[0].message);
        assert_eq!(with(Some(int(0)), None), vec![]);
        assert_eq!(with(Some(pct("200%")), Some(pct("100%"))), vec![]);
        let e = with(Some(pct("x%")), Some(pct("101%")));
        assert_has(&e, reason::INVALID, &format!("{path}.maxSurge"));
        assert_has(&e, reason::INVALID, &format!("{path}.maxUnavailable"));
        let e = with(Some(int(-1)), Some(pct("-5%")));
        assert_eq!(e.len(), 2, "{e:#?}");

        let mut d = deployment();
        d.spec.strategy = DeploymentStrategy {
            kind: "Recreate".into(),
            rolling_update: Some(RollingUpdateDeployment::default()),
        };
        assert_has(&d.validate(), reason::FORBIDDEN, path);
    }

    #[test]
    fn workload_selectors_are_immutable() {
        let old = deployment();
        let mut new = old.clone();
        new.spec.replicas = Some(5);
        assert_eq!(new.validate_update(&old), vec![]);
        new.spec
            .selector
            .match_labels
            .insert("tier".into(), "front".into());
        new.spec
            .template
            .metadata
            .labels
            .insert("tier".into(), "front".into());
        let e = new.validate_update(&old);
        assert_eq!(fields(&e), vec!["spec.selector"]);
        assert!(e[0].message.contains("immutable"), "{}", e[0].message);

        let rs = |d: &Deployment| ReplicaSet {
            metadata: d.metadata.clone(),
            spec: ReplicaSetSpec {
                replicas: d.spec.replicas,
                selector: d.spec.selector.clone(),
                template: d.spec.template.clone(),
                min_ready_seconds: 0,
            },
            ..Default::default()
        };
        assert_eq!(rs(&old).validate(), vec![]);
        assert_has(
            &rs(&new).validate_update(&rs(&old)),
            reason::INVALID,
            "spec.selector",
        );
        let mut bad = rs(&old);
        bad.spec.template.metadata.labels.clear();
        assert_has(
            &bad.validate(),
            reason::INVALID,
            "spec.template.metadata.labels",
        );
    }

    #[test]
    fn service_rules() {
        assert_eq!(service().validate(), vec![]);
        let mut s = service();
        s.metadata.name = "web.v1".into();
        s.spec.ports.clear();
        s.spec.kind = "LoadBalancer".into();
        let e = s.validate();
        assert_eq!(
            fields(&e),
            vec!["metadata.name", "spec.type", "spec.ports"],
            "{e:#?}"
        );

        let mut s = service();
        let p = |name: &str, port: i32| ServicePort {
            name: name.into(),
            port,
            ..Default::default()
        };
        s.spec.ports = vec![
            p("", 80),
            p("a", 0),
            p("a", 81),
            ServicePort {
                target_port: Some(IntOrString::String("Bad".into())),
                node_port: 80,
                ..p("b", 82)
            },
            ServicePort {
                node_port: 30001,
                ..p("c", 80)
            },
        ];
        let e = s.validate();
        assert_eq!(
            fields(&e),
            vec![
                "spec.ports[0].name",
                "spec.ports[1].port",
                "spec.ports[2].name",
                "spec.ports[3].targetPort",
                "spec.ports[3].nodePort",
                "spec.ports[3].nodePort",
                "spec.ports[4]",
                "spec.ports[4].nodePort",
            ],
            "{e:#?}"
        );
        assert_eq!(e[0].reason, reason::REQUIRED);
        assert_eq!(e[2].reason, reason::DUPLICATE);
        assert_eq!(e[4].reason, reason::INVALID);
        assert_eq!(e[5].reason, reason::FORBIDDEN);
        assert_eq!(e[6].reason, reason::DUPLICATE);

        let mut s = service();
        s.spec.kind = "NodePort".into();
        s.spec.ports[0].node_port = 30080;
        s.spec.cluster_ip = "10.0.0.1".into();
        assert_eq!(s.validate(), vec![]);
        let mut moved = s.clone();
        moved.spec.cluster_ip = "10.0.0.2".into();
        assert_has(
            &moved.validate_update(&s),
            reason::INVALID,
            "spec.clusterIP",
        );
        moved.spec.cluster_ip.clear();
        assert_eq!(moved.validate_update(&s), vec![]);
        moved.spec.cluster_ip = "ten".into();
        assert_has(&moved.validate(), reason::INVALID, "spec.clusterIP");
    }

    #[test]
    fn endpoints_rules() {
        let mut e = Endpoints {
            metadata: ObjectMeta::named("default", "web"),
            subsets: vec![EndpointSubset {
                addresses: vec![EndpointAddress {
                    ip: "10.0.0.5".into(),
                    node_name: Some("node-1".into()),
                    target_ref: None,
                }],
                not_ready_addresses: vec![],
                ports: vec![EndpointPort {
                    port: 8080,
                    ..Default::default()
                }],
            }],
            ..Default::default()
        };
        assert_eq!(e.validate(), vec![]);
        e.subsets[0].addresses.push(EndpointAddress::default());
        e.subsets[0].not_ready_addresses.push(EndpointAddress {
            ip: "10.0.0".into(),
            ..Default::default()
        });
        e.subsets[0].ports.push(EndpointPort {
            name: "b".into(),
            port: 65536,
            ..Default::default()
        });
        let errs = e.validate();
        assert_eq!(
            fields(&errs),
            vec![
                "subsets[0].addresses[1].ip",
                "subsets[0].notReadyAddresses[0].ip",
                "subsets[0].ports[0].name",
                "subsets[0].ports[1].port",
            ],
            "{errs:#?}"
        );
    }

    #[test]
    fn node_rules() {
        let mut n = Node {
            metadata: ObjectMeta {
                name: "node-1".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        n.status.capacity.insert("cpu".into(), q("4"));
        n.status.allocatable.insert("pods".into(), q("110"));
        assert_eq!(n.validate(), vec![]);
        let taint = |key: &str, effect: &str| Taint {
            key: key.into(),
            value: String::new(),
            effect: effect.into(),
        };
        n.spec.taints = vec![
            taint("a", "NoSchedule"),
            taint("a", "NoSchedule"),
            taint("", "Sometimes"),
            taint("b", ""),
        ];
        n.status.allocatable.insert("gpus".into(), q("1"));
        let e = n.validate();
        assert_eq!(
            fields(&e),
            vec![
                "spec.taints[1].effect",
                "spec.taints[2].key",
                "spec.taints[2].effect",
                "spec.taints[3].effect",
                "status.allocatable[gpus]",
            ],
            "{e:#?}"
        );
        assert_eq!(e[0].reason, reason::DUPLICATE);
        assert_eq!(e[2].reason, reason::NOT_SUPPORTED);
        assert_eq!(e[3].reason, reason::REQUIRED);
        assert_eq!(e[4].reason, reason::NOT_SUPPORTED);
    }

    #[test]
    fn namespace_rules() {
        let mut ns = Namespace {
            metadata: ObjectMeta {
                name: "team-a".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(ns.validate(), vec![]);
        ns.metadata.name = "team.a".into();
        ns.metadata.namespace = "default".into();
        ns.status.phase = "Gone".into();
        assert_eq!(
            fields(&ns.validate()),
            vec!["metadata.name", "metadata.namespace", "status.phase"]
        );
        assert_eq!(ns.validate_update(&ns.clone()).len(), 3);
    }

    #[test]
    fn lease_event_binding_scale_rules() {
        let mut lease = Lease {
            metadata: ObjectMeta::named("kube-node-lease", "node-1"),
            ..Default::default()
        };
        assert_eq!(lease.validate(), vec![]);
        lease.spec.lease_duration_seconds = Some(0);
        assert_has(
            &lease.validate(),
            reason::INVALID,
            "spec.leaseDurationSeconds",
        );
        lease.spec.lease_duration_seconds = Some(40);
        assert_eq!(lease.validate(), vec![]);

        let mut ev = Event {
            metadata: ObjectMeta::named("default", "web-1.1"),
            ..Default::default()
        };
        assert_eq!(
            fields(&ev.validate()),
            vec!["involvedObject.kind", "involvedObject.name"]
        );
        ev.involved_object = ObjectReference {
            kind: "Pod".into(),
            name: "web-1".into(),
            namespace: "other".into(),
            ..Default::default()
        };
        ev.event_type = "Info".into();
        assert_eq!(
            fields(&ev.validate()),
            vec!["involvedObject.namespace", "type"]
        );

        let mut b = Binding::default();
        assert_eq!(fields(&b.validate()), vec!["target.name"]);
        b.target.name = "node-1".into();
        assert_eq!(b.validate(), vec![]);
        b.target.kind = "Pod".into();
        assert_has(&b.validate(), reason::NOT_SUPPORTED, "target.kind");
        b.target.kind = "Node".into();
        assert_eq!(b.validate(), vec![]);

        let mut s = Scale::default();
        assert_eq!(s.validate(), vec![]);
        s.spec.replicas = -2;
        assert_eq!(fields(&s.validate()), vec!["spec.replicas"]);
    }

    #[test]
    fn messages_follow_kubernetes_wording() {
        assert_eq!(required("f", "").message, "Required value");
        assert_eq!(required("f", "why").message, "Required value: why");
        assert_eq!(
            invalid("f", "x", "bad").message,
            "Invalid value: \"x\": bad"
        );
        assert_eq!(invalid("f", 7, "bad").message, "Invalid value: 7: bad");
        assert_eq!(
            not_supported("f", "x", &["a", "b"]).message,
            "Unsupported value: \"x\": supported values: \"a\", \"b\""
        );
        assert_eq!(duplicate("f", "x").message, "Duplicate value: \"x\"");
        assert_eq!(forbidden("f", "no").message, "Forbidden: no");
        assert_eq!(forbidden("f", "no").reason, "FieldValueForbidden");
    }
}
