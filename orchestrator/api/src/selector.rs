//! Label and field selectors: which objects a list, a watch, a Service or a
//! controller is about.
//!
//! Three forms, as in Kubernetes:
//!
//! - [`LabelSelector`] (in [`crate::types`]) is the structured form stored in
//!   Deployments and ReplicaSets (`matchLabels` + `matchExpressions`); its
//!   [`LabelSelector::matches`] is defined here.
//! - [`Selector`] is the parsed `?labelSelector=` query string
//!   (`app=web,tier!=db,env in (prod,staging),!legacy`). A `LabelSelector`
//!   converts to one with [`Selector::try_from`] so a client can send it, and
//!   a Service's `selector` map with [`Selector::from_map`].
//! - [`FieldSelector`] is the parsed `?fieldSelector=` query string
//!   (`spec.nodeName=node-1,status.phase!=Failed`), matched against the JSON
//!   form of an object with [`FieldSelector::matches_json`].
//!
//! An empty selector of any form matches everything. (Whether an empty
//! selector is *allowed* is a validation question: a Deployment's may not be
//! empty, see [`crate::validate`].)

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use crate::types::{LabelSelector, LabelSelectorRequirement};
use crate::validate::{is_label_key, is_label_value, LABEL_KEY_RULE, LABEL_VALUE_RULE};

// ------------------------------------------------------------ LabelSelector

/// A label map from `(key, value)` pairs, for writing labels and
/// `matchLabels` as literals.
pub fn label_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl LabelSelectorRequirement {
    /// The `matchExpressions` requirement `key operator values`, unchecked
    /// (see [`Requirement::new`] for a validated one).
    pub fn new(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }
}

impl LabelSelector {
    /// True when `labels` satisfy every `matchLabels` pair and every
    /// `matchExpressions` requirement.
    ///
    /// An empty selector matches everything. A requirement with an operator
    /// other than `In`, `NotIn`, `Exists` or `DoesNotExist` matches nothing,
    /// so a selector that slipped past validation selects no objects rather
    /// than all of them.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self
                .match_expressions
                .iter()
                .all(|r| expression_matches(r, labels))
    }

    /// True when the selector has neither `matchLabels` nor
    /// `matchExpressions` (and so would match everything).
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }
}

fn expression_matches(r: &LabelSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let value = labels.get(&r.key);
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| r.values.contains(v)),
        "NotIn" => value.is_none_or(|v| !r.values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        _ => false,
    }
}

// ----------------------------------------------------------------- Selector

/// How a [`Requirement`] tests a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operator {
    /// `key=value` (or `key==value`): the label is present with that value.
    Equals,
    /// `key!=value`: the label is absent or has another value.
    NotEquals,
    /// `key in (a,b)`: the label is present with one of the values.
    In,
    /// `key notin (a,b)`: the label is absent or has none of the values.
    NotIn,
    /// `key`: the label is present.
    Exists,
    /// `!key`: the label is absent.
    DoesNotExist,
}

/// One term of a [`Selector`]: a key, an operator and its values.
///
/// Invariant: `Equals`/`NotEquals` have exactly one value, `In`/`NotIn` at
/// least one, `Exists`/`DoesNotExist` none. [`Requirement::new`] checks it
/// and the fields are private so nothing else can break it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: BTreeSet<String>,
}

impl Requirement {
    /// A requirement on `key`, checked: the key must be a valid label key,
    /// every value a valid label value, and the number of values must suit
    /// the operator. The error names the offending key or value.
    pub fn new<I, S>(key: &str, operator: Operator, values: I) -> Result<Requirement, String>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        if !is_label_key(key) {
            return Err(format!("invalid label key {key:?}: {LABEL_KEY_RULE}"));
        }
        let values: BTreeSet<String> = values.into_iter().map(Into::into).collect();
        if let Some(bad) = values.iter().find(|v| !is_label_value(v)) {
            return Err(format!(
                "invalid value {bad:?} for label {key:?}: {LABEL_VALUE_RULE}"
            ));
        }
        let count_ok = match operator {
            Operator::Equals | Operator::NotEquals => values.len() == 1,
            Operator::In | Operator::NotIn => !values.is_empty(),
            Operator::Exists | Operator::DoesNotExist => values.is_empty(),
        };
        if !count_ok {
            let want = match operator {
                Operator::Equals | Operator::NotEquals => "exactly one value",
                Operator::In | Operator::NotIn => "at least one value",
                Operator::Exists | Operator::DoesNotExist => "no values",
            };
            return Err(format!(
                "requirement on {key:?} with operator {operator:?} needs {want}, got {}",
                values.len()
            ));
        }
        Ok(Requirement {
            key: key.to_string(),
            operator,
            values,
        })
    }

    /// The label key tested.
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values, sorted (one for `Equals`/`NotEquals`, none for
    /// `Exists`/`DoesNotExist`).
    pub fn values(&self) -> &BTreeSet<String> {
        &self.values
    }

    /// True when `labels` satisfy this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::Equals | Operator::In => value.is_some_and(|v| self.values.contains(v)),
            Operator::NotEquals | Operator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }

    /// The single value of an `Equals`/`NotEquals` requirement.
    fn value(&self) -> &str {
        self.values.first().map(String::as_str).unwrap_or("")
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, word: &str| {
            let values: Vec<&str> = self.values.iter().map(String::as_str).collect();
            write!(f, "{} {word} ({})", self.key, values.join(","))
        };
        match self.operator {
            Operator::Equals => write!(f, "{}={}", self.key, self.value()),
            Operator::NotEquals => write!(f, "{}!={}", self.key, self.value()),
            Operator::In => list(f, "in"),
            Operator::NotIn => list(f, "notin"),
            Operator::Exists => f.write_str(&self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
        }
    }
}

/// A parsed label selector: all requirements must hold (logical AND).
///
/// Requirements are kept sorted by key (stably), so two selectors that
/// differ only in the order of their terms compare equal and print the same.
/// `Display` prints the query-string form, which [`Selector::parse`] reads
/// back to an equal selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

impl Selector {
    /// The selector that matches everything (the empty string).
    pub fn everything() -> Selector {
        Selector::default()
    }

    /// A selector from requirements (sorted by key).
    pub fn from_requirements(mut requirements: Vec<Requirement>) -> Selector {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Selector { requirements }
    }

    /// `key=value` for every pair, as a Service's `selector` means.
    ///
    /// The map is taken as it is, without checking keys and values; validate
    /// it first if it came from a user (a Service's selector is checked by
    /// [`crate::validate`]). An empty map gives [`Selector::everything`]:
    /// callers that treat an empty Service selector as "no endpoints
    /// managed" must check for that themselves.
    pub fn from_map(map: &BTreeMap<String, String>) -> Selector {
        Selector {
            requirements: map
                .iter()
                .map(|(k, v)| Requirement {
                    key: k.clone(),
                    operator: Operator::Equals,
                    values: BTreeSet::from([v.clone()]),
                })
                .collect(),
        }
    }

    /// Parses a `?labelSelector=` string:
    /// `app=web,tier!=db,env in (prod,staging),env notin (dev),!legacy,release`
    /// (`==` is accepted for `=`; spaces around tokens are ignored). The
    /// empty string selects everything.
    ///
    /// The error names the offending part (not the whole selector, which
    /// the caller has and usually quotes).
    pub fn parse(text: &str) -> Result<Selector, String> {
        let tokens = lex(text)?;
        let requirements = Parser { tokens, pos: 0 }.selector()?;
        Ok(Selector::from_requirements(requirements))
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// True for the selector that matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// True when `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl FromStr for Selector {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Selector::parse(s)
    }
}

/// Converts the structured form to the query-string form: `matchLabels`
/// become `key=value`, `matchExpressions` their operators.
///
/// Fallible (rather than `From`) because a `LabelSelector` that did not pass
/// validation may carry an unknown operator, an `In` without values or a bad
/// key, none of which a query string can express; the error names it.
impl TryFrom<&LabelSelector> for Selector {
    type Error = String;
    fn try_from(sel: &LabelSelector) -> Result<Selector, String> {
        let mut requirements = Vec::new();
        for (k, v) in &sel.match_labels {
            requirements.push(Requirement::new(k, Operator::Equals, [v.as_str()])?);
        }
        for e in &sel.match_expressions {
            let operator = match e.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(format!(
                        "matchExpressions on {:?}: unknown operator {other:?} \
                         (supported: In, NotIn, Exists, DoesNotExist)",
                        e.key
                    ))
                }
            };
            requirements.push(Requirement::new(
                &e.key,
                operator,
                e.values.iter().cloned(),
            )?);
        }
        Ok(Selector::from_requirements(requirements))
    }
}

impl TryFrom<LabelSelector> for Selector {
    type Error = String;
    fn try_from(sel: LabelSelector) -> Result<Selector, String> {
        Selector::try_from(&sel)
    }
}

/// A token of the label-selector grammar with the byte offset it starts at.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    /// `!`
    Not,
    /// `=` or `==`
    Eq,
    /// `!=`
    NotEq,
    Comma,
    Open,
    Close,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Word(w) => write!(f, "{w:?}"),
            Token::Not => f.write_str("\"!\""),
            Token::Eq => f.write_str("\"=\""),
            Token::NotEq => f.write_str("\"!=\""),
            Token::Comma => f.write_str("\",\""),
            Token::Open => f.write_str("\"(\""),
            Token::Close => f.write_str("\")\""),
        }
    }
}

fn is_special(c: char) -> bool {
    c.is_whitespace() || matches!(c, ',' | '=' | '!' | '(' | ')' | '<' | '>')
}

fn lex(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let token = match c {
            c if c.is_whitespace() => continue,
            ',' => Token::Comma,
            '(' => Token::Open,
            ')' => Token::Close,
            '=' => {
                chars.next_if(|&(_, c)| c == '=');
                Token::Eq
            }
            '!' => {
                if chars.next_if(|&(_, c)| c == '=').is_some() {
                    Token::NotEq
                } else {
                    Token::Not
                }
            }
            '<' | '>' => {
                return Err(format!(
                    "operator {c:?} at byte {at} is not supported \
                     (use =, ==, !=, in, notin, ! or a bare key)"
                ))
            }
            _ => {
                let mut end = text.len();
                while let Some(&(i, c)) = chars.peek() {
                    if is_special(c) {
                        end = i;
                        break;
                    }
                    chars.next();
                }
                Token::Word(text[at..end].to_string())
            }
        };
        tokens.push(token);
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn found(t: Option<&Token>) -> String {
        match t {
            Some(t) => t.to_string(),
            None => "the end".to_string(),
        }
    }

    fn selector(mut self) -> Result<Vec<Requirement>, String> {
        let mut out = Vec::new();
        if self.peek().is_none() {
            return Ok(out);
        }
        loop {
            out.push(self.requirement()?);
            match self.next() {
                None => return Ok(out),
                Some(Token::Comma) => {
                    if self.peek().is_none() {
                        return Err("expected a requirement after the last \",\"".into());
                    }
                }
                t => {
                    return Err(format!(
                        "expected \",\" or the end after {:?}, found {}",
                        out.last().map(ToString::to_string).unwrap_or_default(),
                        Parser::found(t.as_ref())
                    ))
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let key = match self.next() {
            Some(Token::Not) => {
                let key = self.word("a label key after \"!\"")?;
                return Requirement::new(&key, Operator::DoesNotExist, None::<String>);
            }
            Some(Token::Word(w)) => w,
            t => {
                return Err(format!(
                    "expected a label key or \"!\", found {}",
                    Parser::found(t.as_ref())
                ))
            }
        };
        match self.peek() {
            None | Some(Token::Comma) => Requirement::new(&key, Operator::Exists, None::<String>),
            Some(Token::Eq) | Some(Token::NotEq) => {
                let operator = if self.next() == Some(Token::Eq) {
                    Operator::Equals
                } else {
                    Operator::NotEquals
                };
                // An empty value (`app=`) means "the label is set to the
                // empty string", as in Kubernetes.
                let value = match self.peek() {
                    None | Some(Token::Comma) => String::new(),
                    Some(Token::Word(_)) => self.word("a value")?,
                    Some(t) => {
                        return Err(format!("expected a value after {key:?}, found {t}"));
                    }
                };
                Requirement::new(&key, operator, [value])
            }
            Some(Token::Word(w)) if w == "in" || w == "notin" => {
                let operator = if w == "in" {
                    Operator::In
                } else {
                    Operator::NotIn
                };
                self.pos += 1;
                let values = self.value_list(&key)?;
                Requirement::new(&key, operator, values)
            }
            Some(t) => Err(format!(
                "expected an operator (=, ==, !=, in, notin), \",\" or the end after {key:?}, \
                 found {t}"
            )),
        }
    }

    /// `( value [, value]* )`; a value may be empty, as in `(a,)`.
    fn value_list(&mut self, key: &str) -> Result<Vec<String>, String> {
        match self.next() {
            Some(Token::Open) => {}
            t => {
                return Err(format!(
                    "expected \"(\" after the operator on {key:?}, found {}",
                    Parser::found(t.as_ref())
                ))
            }
        }
        if self.peek() == Some(&Token::Close) {
            return Err(format!("the value list for {key:?} is empty"));
        }
        let mut values = Vec::new();
        let mut current = String::new();
        loop {
            match self.next() {
                Some(Token::Word(w)) if current.is_empty() => current = w,
                Some(Token::Comma) => values.push(std::mem::take(&mut current)),
                Some(Token::Close) => {
                    values.push(current);
                    return Ok(values);
                }
                t => {
                    return Err(format!(
                        "expected a value, \",\" or \")\" in the list for {key:?}, found {}",
                        Parser::found(t.as_ref())
                    ))
                }
            }
        }
    }

    fn word(&mut self, what: &str) -> Result<String, String> {
        match self.next() {
            Some(Token::Word(w)) => Ok(w),
            t => Err(format!(
                "expected {what}, found {}",
                Parser::found(t.as_ref())
            )),
        }
    }
}

// ------------------------------------------------------------ FieldSelector

/// The fields a [`FieldSelector`] may name by default (those Kubernetes
/// indexes for pods; every kind has the two `metadata` ones).
pub const FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "status.phase",
];

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

#[cfg(test)]
mod tests {
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
}
