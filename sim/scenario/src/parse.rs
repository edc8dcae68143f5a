//! Reading a scenario file. The document is parsed once into toml's
//! spanned tables; the sections are deserialized from it with serde (so
//! type errors keep their positions), and each `[[fault]]` and
//! `[[invariant]]` is read on its own: its `kind` selects the settings type
//! (an externally tagged enum built from the entry, with the tag placed at
//! the `kind` value so an unknown kind is reported there). Errors are
//! rewritten to name the file, line, column and field, and where a setting
//! belongs to other kinds, which ones.

use std::fmt;
use std::ops::Range;

use serde::de::{Deserialize, Deserializer, Error as _};
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use crate::fault::{Fault, FaultKind, FaultSpec};
use crate::invariant::{Invariant, InvariantKind, InvariantSpec};
use crate::settings::and_list;
use crate::{Dur, Scenario, ScenarioError};

/// For the sections read on their own (`[[fault]]`, `[[invariant]]`):
/// never called, since they are taken out of the document before serde
/// reads the rest, but declared so the field is listed in "expected one
/// of" messages.
pub(crate) fn read_apart<'de, D: Deserializer<'de>, T>(_: D) -> Result<T, D::Error> {
    Err(D::Error::custom("read on its own"))
}

/// The text being read and the name errors give it.
pub(crate) struct Source<'t> {
    pub text: &'t str,
    pub origin: &'t str,
}

impl Source<'_> {
    /// `ORIGIN:LINE:COL: FIELD: MESSAGE`.
    pub fn error(&self, span: Range<usize>, field: &str, msg: impl fmt::Display) -> ScenarioError {
        let (l, c) = line_col(self.text, span.start);
        ScenarioError(format!("{}:{l}:{c}: {field}: {msg}", self.origin))
    }

    /// `ORIGIN: MESSAGE`, for what has no one position.
    pub fn general(&self, msg: impl fmt::Display) -> ScenarioError {
        ScenarioError(format!("{}: {msg}", self.origin))
    }

    /// A TOML or serde error, at its position, naming the field on that
    /// line and, for a misspelt name, the closest expected one.
    fn toml(&self, e: &toml::de::Error) -> ScenarioError {
        let (at, field) = e
            .span()
            .map(|s| {
                let (l, c) = line_col(self.text, s.start);
                let field = field_at(self.text, s.start)
                    .map(|f| format!("{f}: "))
                    .unwrap_or_default();
                (format!(":{l}:{c}"), field)
            })
            .unwrap_or_default();
        let message = e.message().trim();
        let hint = did_you_mean(message)
            .map(|name| format!("; did you mean `{name}`?"))
            .unwrap_or_default();
        ScenarioError(format!("{}{at}: {field}{message}{hint}", self.origin))
    }
}

/// Parses and validates scenario text.
pub(crate) fn parse(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
    let src = Source { text, origin };
    let doc = DeTable::parse(text).map_err(|e| src.toml(&e))?;
    let mut rest = doc.get_ref().clone();
    let faults = rest.remove("fault");
    let invariants = rest.remove("invariant");
    let mut s = Scenario::deserialize(toml::de::Deserializer::from(Spanned::new(doc.span(), rest)))
        .map_err(|e| src.toml(&e))?;
    s.faults = entries(&src, "fault", faults)?
        .into_iter()
        .enumerate()
        .map(|(i, e)| read_fault(&src, i + 1, e))
        .collect::<Result<_, _>>()?;
    s.invariants = entries(&src, "invariant", invariants)?
        .into_iter()
        .enumerate()
        .map(|(i, e)| read_invariant(&src, i + 1, e))
        .collect::<Result<_, _>>()?;
    crate::validate::validate(&s, &crate::validate::Positions::new(&src, doc.get_ref()))?;
    Ok(s)
}

type Entry<'t> = Spanned<DeTable<'t>>;

/// The tables of an array of tables (`[[name]]`), if present.
fn entries<'t>(
    src: &Source<'_>,
    name: &str,
    value: Option<Spanned<DeValue<'t>>>,
) -> Result<Vec<Entry<'t>>, ScenarioError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let span = value.span();
    let DeValue::Array(items) = value.into_inner() else {
        return Err(src.error(span, name, format!("expected tables, written [[{name}]]")));
    };
    items
        .iter()
        .map(|item| match item.get_ref() {
            DeValue::Table(t) => Ok(Spanned::new(item.span(), t.clone())),
            _ => Err(src.error(
                item.span(),
                name,
                format!("expected a table, written [[{name}]]"),
            )),
        })
        .collect()
}

/// An entry split into its `kind` (name and position), its common
/// settings and the rest, the kind's own settings.
struct Tagged<'t> {
    span: Range<usize>,
    kind: Spanned<String>,
    table: DeTable<'t>,
}

fn tagged<'t>(
    src: &Source<'_>,
    section: &str,
    index: usize,
    entry: Entry<'t>,
) -> Result<Tagged<'t>, ScenarioError> {
    let span = entry.span();
    let mut table = entry.into_inner();
    let Some(kind) = table.remove("kind") else {
        return Err(src.error(span, &format!("{section}[{index}]"), "missing field `kind`"));
    };
    let name =
        String::deserialize(ValueDeserializer::from(kind.clone())).map_err(|e| src.toml(&e))?;
    Ok(Tagged {
        span,
        kind: Spanned::new(kind.span(), name),
        table,
    })
}

impl<'t> Tagged<'t> {
    /// Takes a common setting out of the entry.
    fn take<T: Deserialize<'t>>(&mut self, key: &str) -> Result<Option<T>, toml::de::Error> {
        self.table
            .remove(key)
            .map(|v| T::deserialize(ValueDeserializer::from(v)))
            .transpose()
    }

    /// Deserializes the kind's settings type `T` (an externally tagged
    /// enum) from `{kind = {settings}}`. What the kind needs is reported
    /// before what it does not take: when a setting another kind takes
    /// (`elsewhere`) is refused, the entry is tried again without it, and
    /// a missing setting found then is the error. A name no kind takes is
    /// a typo, reported as such.
    fn spec<T: Deserialize<'t>>(
        self,
        elsewhere: impl Fn(&str) -> bool,
    ) -> Result<T, toml::de::Error> {
        let first = match self.spec_of::<T>(self.table.clone()) {
            Ok(spec) => return Ok(spec),
            Err(e) => e,
        };
        let mut table = self.table.clone();
        let mut refused = unknown_field(&first).filter(|f| elsewhere(f));
        while let Some(field) = refused {
            table.remove(field.as_str());
            match self.spec_of::<T>(table.clone()) {
                Err(e) if e.message().starts_with("missing field `") => return Err(e),
                Err(e) => refused = unknown_field(&e).filter(|f| elsewhere(f)),
                Ok(_) => break,
            }
        }
        Err(first)
    }

    fn spec_of<T: Deserialize<'t>>(&self, table: DeTable<'t>) -> Result<T, toml::de::Error> {
        let mut outer = DeTable::new();
        outer.insert(
            Spanned::new(self.kind.span(), self.kind.get_ref().clone().into()),
            Spanned::new(self.span.clone(), DeValue::Table(table)),
        );
        T::deserialize(ValueDeserializer::from(Spanned::new(
            self.span.clone(),
            DeValue::Table(outer),
        )))
    }
}

/// The `X` of serde's "unknown field `X`, ...".
fn unknown_field(e: &toml::de::Error) -> Option<String> {
    quoted(e, "unknown field `")
}

/// The first back-quoted name after `prefix` in an error's message.
fn quoted(e: &toml::de::Error, prefix: &str) -> Option<String> {
    e.message()
        .strip_prefix(prefix)
        .and_then(|rest| rest.split('`').next())
        .map(str::to_string)
}

fn read_fault(src: &Source<'_>, index: usize, entry: Entry<'_>) -> Result<Fault, ScenarioError> {
    let mut e = tagged(src, "fault", index, entry)?;
    let (span, kind) = (e.span.clone(), e.kind.get_ref().clone());
    let known = FaultKind::from_name(&kind).map(|k| (k.name(), k.settings()));
    let at: Option<Dur> = e.take("at").map_err(|e| src.toml(&e))?;
    let kinds = kinds_of_faults();
    let spec: FaultSpec = e
        .spec(|field| taken_by_some(&kinds, field))
        .map_err(|err| kind_error(src, "fault", known, &kinds, err))?;
    let Some(at) = at else {
        return Err(src.error(
            span,
            &format!("fault ({kind})"),
            "needs `at` (when it starts)",
        ));
    };
    Ok(Fault { at, spec })
}

fn read_invariant(
    src: &Source<'_>,
    index: usize,
    entry: Entry<'_>,
) -> Result<Invariant, ScenarioError> {
    let mut e = tagged(src, "invariant", index, entry)?;
    let known = InvariantKind::ALL
        .iter()
        .find(|k| k.name() == e.kind.get_ref())
        .map(|k| (k.name(), k.settings()));
    let name: Option<String> = e.take("name").map_err(|e| src.toml(&e))?;
    let kinds = kinds_of_invariants();
    let spec: InvariantSpec = e
        .spec(|field| taken_by_some(&kinds, field))
        .map_err(|err| kind_error(src, "invariant", known, &kinds, err))?;
    Ok(Invariant { name, spec })
}

type Kinds = Vec<(&'static str, &'static [&'static str])>;

fn taken_by_some(kinds: &Kinds, field: &str) -> bool {
    kinds.iter().any(|(_, settings)| settings.contains(&field))
}

fn kinds_of_faults() -> Kinds {
    FaultKind::ALL
        .iter()
        .map(|k| (k.name(), k.settings()))
        .collect()
}

fn kinds_of_invariants() -> Kinds {
    InvariantKind::ALL
        .iter()
        .map(|k| (k.name(), k.settings()))
        .collect()
}

/// A kind's settings refused: a setting another kind takes ("only loss
/// takes `probability`"), or a missing required one ("needs `for`");
/// anything else as serde said it, at its position.
fn kind_error(
    src: &Source<'_>,
    section: &str,
    kind: Option<(&str, &[&str])>,
    kinds: &Kinds,
    e: toml::de::Error,
) -> ScenarioError {
    let Some((name, _)) = kind else {
        return src.toml(&e);
    };
    let span = e.span().unwrap_or(0..0);
    if let Some(field) = unknown_field(&e) {
        let takers: Vec<&str> = kinds
            .iter()
            .filter(|(_, settings)| settings.contains(&field.as_str()))
            .map(|(k, _)| *k)
            .collect();
        let label = format!("{section} ({name}).{field}");
        if takers.len() * 2 > kinds.len() {
            // Most kinds take it: naming them all would bury the point.
            return src.error(
                span,
                &label,
                format!("{name} does not take `{field}`: drop it"),
            );
        }
        if !takers.is_empty() {
            let verb = if takers.len() > 1 { "take" } else { "takes" };
            return src.error(
                span,
                &label,
                format!("only {} {verb} `{field}`", and_list(&takers)),
            );
        }
    }
    if let Some(field) = quoted(&e, "missing field `") {
        return src.error(span, &format!("{section} ({name})"), needs(&field));
    }
    src.toml(&e)
}

/// What a missing required setting is for.
fn needs(field: &str) -> String {
    match field {
        "for" => "needs `for` (how long the fault lasts)".into(),
        "offset" => "needs `offset` (how far the clock is off, e.g. \"-90s\")".into(),
        "at_least" => "needs `at_least` (the SLO, e.g. 0.999)".into(),
        "below" => "needs a positive `below` (e.g. \"250ms\")".into(),
        f => format!("needs `{f}`"),
    }
}

/// The dotted name of the field whose line holds `offset` (`cluster.masters`,
/// `fault[2].kind`), when the line is a `key = value` line.
pub(crate) fn field_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line = text[line_start..].lines().next().unwrap_or("");
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim())
        .filter(|k| !k.is_empty() && !k.starts_with('['))?;
    // The innermost table header above the line, counting array entries.
    let mut table: Option<String> = None;
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for l in text[..line_start].lines() {
        let l = l.trim();
        if let Some(name) = l.strip_prefix("[[").and_then(|r| r.strip_suffix("]]")) {
            let n = counts.entry(name.trim().to_string()).or_insert(0);
            *n += 1;
            table = Some(format!("{}[{}]", name.trim(), *n));
        } else if let Some(name) = l.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            table = Some(name.trim().to_string());
        }
    }
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_string(),
    })
}

/// 1-based line and column of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

/// For a serde message `unknown field `X`, expected one of `a`, `b`, ...`
/// (or `unknown variant `X`, ...`), the expected name closest to `X`, when
/// one is close enough to be a likely typo: at most 2 edits, or at most a
/// third of the longer name's length (and always fewer edits than `X` has
/// characters, so a short name is not "corrected" into an unrelated one).
/// The distance is Levenshtein's, from `strsim`.
///
/// ```
/// use faultline_scenario::did_you_mean;
/// assert_eq!(
///     did_you_mean("unknown field `rat`, expected one of `clients`, `rate`, `keys`"),
///     Some("rate".to_string())
/// );
/// assert_eq!(did_you_mean("unknown field `zzz`, expected `rate` or `keys`"), None);
/// ```
pub fn did_you_mean(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    let (unknown, rest) = rest.split_once('`')?;
    let (_, expected) = rest.split_once("expected")?;
    let names = expected.split('`').skip(1).step_by(2);
    let len = unknown.chars().count();
    names
        .map(|name| (strsim::levenshtein(unknown, name), name))
        .filter(|&(d, name)| {
            let longer = len.max(name.chars().count());
            d > 0 && d < len.max(1) && (d <= 2 || d * 3 <= longer)
        })
        .min_by_key(|&(d, _)| d)
        .map(|(_, name)| name.to_string())
}
