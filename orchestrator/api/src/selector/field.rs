//! Field selectors: `?fieldSelector=` parsed and matched against an object's JSON.

use std::fmt;
use std::str::FromStr;

// ------------------------------------------------------------ FieldSelector

/// The fields a [`FieldSelector`] may name by default (those Kubernetes
/// indexes for pods; every kind has the two `metadata` ones).
pub const FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "status.phase",
];

/// The fields of Events a [`FieldSelector`] may name, as Kubernetes
/// indexes them (`kubectl describe` lists an object's events with
/// `involvedObject.name=...,involvedObject.namespace=...,involvedObject.uid=...`).
pub const EVENT_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "type",
];

/// The fields of Secrets a [`FieldSelector`] may name.
pub const SECRET_FIELDS: &[&str] = &["metadata.name", "metadata.namespace", "type"];

/// The fields a selector on objects of `kind` may name.
pub fn fields_for(kind: &str) -> &'static [&'static str] {
    match kind {
        "Event" => EVENT_FIELDS,
        "Secret" => SECRET_FIELDS,
        _ => FIELDS,
    }
}

/// How a [`FieldRequirement`] compares a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FieldOperator {
    /// `field=value` or `field==value`.
    Equals,
    /// `field!=value`.
    NotEquals,
}

/// One term of a [`FieldSelector`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    /// A dotted path such as `spec.nodeName`.
    pub field: String,
    pub operator: FieldOperator,
    /// The value compared with, unescaped. An unset field reads as `""`, so
    /// `spec.nodeName=` selects unscheduled pods.
    pub value: String,
}

impl FieldRequirement {
    /// True when the field's value (`None`: the object has no such field,
    /// which no term matches) satisfies the term.
    pub fn matches(&self, actual: Option<&str>) -> bool {
        match (actual, self.operator) {
            (None, _) => false,
            (Some(v), FieldOperator::Equals) => v == self.value,
            (Some(v), FieldOperator::NotEquals) => v != self.value,
        }
    }
}

impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            FieldOperator::Equals => "=",
            FieldOperator::NotEquals => "!=",
        };
        write!(f, "{}{op}{}", self.field, escape_field_value(&self.value))
    }
}

/// A parsed `?fieldSelector=`: all terms must hold.
///
/// `Display` prints the query-string form (escaping `\`, `,` and `=` in
/// values), which [`FieldSelector::parse`] reads back to an equal selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// The selector that matches everything (the empty string).
    pub fn everything() -> FieldSelector {
        FieldSelector::default()
    }

    /// Parses `field=value,field!=value` over the fields in [`FIELDS`]. An
    /// unknown field is an error naming it and the supported ones.
    pub fn parse(text: &str) -> Result<FieldSelector, String> {
        FieldSelector::parse_with(text, FIELDS)
    }

    /// Parses with a kind-specific list of supported fields.
    ///
    /// Terms are separated by unescaped commas; the operator is the first
    /// `!=`, `==` or `=`; in the value `\\`, `\,` and `\=` stand for
    /// themselves and any other backslash, `,` or `=` is an error (as in
    /// Kubernetes). Empty terms are skipped, so `""` selects everything.
    /// The error quotes the offending term.
    pub fn parse_with(text: &str, supported: &[&str]) -> Result<FieldSelector, String> {
        let mut terms = Vec::new();
        for raw in split_unescaped_commas(text) {
            let term = raw.trim();
            if term.is_empty() {
                continue;
            }
            let (field, operator, value) = split_field_term(term).ok_or_else(|| {
                format!("{term:?} has no operator (use field=value, field==value or field!=value)")
            })?;
            let field = field.trim();
            if !supported.contains(&field) {
                return Err(format!(
                    "unknown field {field:?} in {term:?} (supported: {})",
                    supported.join(", ")
                ));
            }
            let value = unescape_field_value(value).map_err(|why| format!("in {term:?}: {why}"))?;
            terms.push(FieldRequirement {
                field: field.to_string(),
                operator,
                value,
            });
        }
        Ok(FieldSelector { terms })
    }

    /// A selector of the given terms, unchecked.
    pub fn from_terms(terms: Vec<FieldRequirement>) -> FieldSelector {
        FieldSelector { terms }
    }

    pub fn terms(&self) -> &[FieldRequirement] {
        &self.terms
    }

    /// True for the selector that matches everything.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The value a `field=value` term pins `field` to, if any: lets a server
    /// answer `spec.nodeName=node-1` from an index instead of a scan.
    pub fn exact(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && t.operator == FieldOperator::Equals)
            .map(|t| t.value.as_str())
    }

    /// True when every term holds, reading fields through `lookup`
    /// (`None`: the object has no such field, and the term fails).
    pub fn matches<F>(&self, lookup: F) -> bool
    where
        F: Fn(&str) -> Option<String>,
    {
        self.terms
            .iter()
            .all(|t| t.matches(lookup(&t.field).as_deref()))
    }

    /// True when every term holds for the JSON form of an object (see
    /// [`field_value`]: unset fields read as `""`).
    pub fn matches_json(&self, obj: &serde_json::Value) -> bool {
        self.matches(|path| field_value(obj, path))
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{t}")?;
        }
        Ok(())
    }
}

impl FromStr for FieldSelector {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FieldSelector::parse(s)
    }
}

/// The value at a dotted `path` (`spec.nodeName`) of an object's JSON form,
/// as a string.
///
/// Strings are returned as they are, numbers and booleans in their JSON
/// spelling. A missing or `null` field — or one under a missing parent —
/// reads as `""`, as Kubernetes treats an unset `spec.nodeName`. `None` when
/// the path leads to an object or array, or through a scalar: there is no
/// such field to compare.
pub fn field_value(obj: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value;
    let mut at = obj;
    for segment in path.split('.') {
        match at {
            Value::Object(map) => match map.get(segment) {
                Some(v) => at = v,
                None => return Some(String::new()),
            },
            Value::Null => return Some(String::new()),
            _ => return None,
        }
    }
    match at {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// Splits on commas not preceded by an escaping backslash.
fn split_unescaped_commas(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            parts.push(&text[start..i]);
            start = i + 1;
        }
    }
    parts.push(&text[start..]);
    parts
}

/// `(field, operator, raw value)` at the first `!=`, `==` or `=`.
fn split_field_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, operator, len) in [
            ("!=", FieldOperator::NotEquals, 2),
            ("==", FieldOperator::Equals, 2),
            ("=", FieldOperator::Equals, 1),
        ] {
            if rest.starts_with(op) {
                return Some((&term[..i], operator, &term[i + len..]));
            }
        }
    }
    None
}

fn escape_field_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn unescape_field_value(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                Some(e) => return Err(format!("invalid escape sequence \"\\{e}\"")),
                None => return Err("a trailing \"\\\" escapes nothing".into()),
            },
            ',' | '=' => return Err(format!("unescaped {c:?} in the value (write \\{c})")),
            c => out.push(c),
        }
    }
    Ok(out)
}
