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

mod field;
mod parse;
#[cfg(test)]
mod tests;

pub use field::{
    field_value, fields_for, FieldOperator, FieldRequirement, FieldSelector, EVENT_FIELDS, FIELDS,
    SECRET_FIELDS,
};
use parse::{lex, Parser};

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
