//! Decoding objects as kube-apiserver does: fields a kind does not have are
//! noticed, and the request's `fieldValidation` says what they mean —
//! dropped silently (`Ignore`), dropped with a warning (`Warn`, the
//! default), or refused (`Strict`).
//!
//! The kinds themselves accept unknown fields (so an object written by a
//! newer client or stored by a newer server still reads); `serde_ignored`
//! reports every field a decode skipped, with its path.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// What unknown fields in a request body mean (`?fieldValidation=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Dropped without a word.
    Ignore,
    /// Dropped, each named in a `Warning` response header.
    #[default]
    Warn,
    /// The request is refused, naming them.
    Strict,
}

impl FieldValidation {
    /// Parses the query parameter; absent or empty is `Warn`.
    pub fn parse(q: Option<&str>) -> Result<FieldValidation, String> {
        match q.unwrap_or("") {
            "" | "Warn" => Ok(FieldValidation::Warn),
            "Ignore" => Ok(FieldValidation::Ignore),
            "Strict" => Ok(FieldValidation::Strict),
            other => Err(format!(
                "fieldValidation must be one of Ignore, Warn or Strict, not {other:?}"
            )),
        }
    }
}

/// Decodes `v` as a `T`, returning the paths of the fields it ignored
/// (`spec.template.spec.containers[0].foo`), sorted.
pub fn from_value<T: DeserializeOwned>(v: Value) -> Result<(T, Vec<String>), serde_json::Error> {
    let mut unknown = Vec::new();
    let out = serde_ignored::deserialize(v, |p| unknown.push(path_text(&p)))?;
    unknown.sort();
    Ok((out, unknown))
}

/// Decodes `v` as a `T`, failing on the first field `T` does not have.
pub fn from_value_strict<T: DeserializeOwned>(v: Value) -> Result<T, serde_json::Error> {
    let (out, unknown) = from_value(v)?;
    match unknown.first() {
        None => Ok(out),
        Some(f) => Err(serde::de::Error::custom(format!("unknown field \"{f}\""))),
    }
}

fn path_text(p: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match p {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", path_text(parent)),
        Path::Map { parent, key } => {
            let head = path_text(parent);
            if head.is_empty() {
                key.clone()
            } else {
                format!("{head}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => path_text(parent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Deployment;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_named_with_their_paths() {
        let v = json!({
            "metadata": {"name": "web", "colour": "blue"},
            "spec": {"template": {"spec": {"containers": [
                {"name": "a", "image": "echo"},
                {"name": "b", "image": "echo", "imagePolicy": "x"}
            ]}}},
            "extra": 1
        });
        let (d, unknown): (Deployment, _) = from_value(v.clone()).unwrap();
        assert_eq!(d.metadata.name, "web");
        assert_eq!(
            unknown,
            vec![
                "extra",
                "metadata.colour",
                "spec.template.spec.containers[1].imagePolicy",
            ]
        );
        let err = from_value_strict::<Deployment>(v).unwrap_err();
        assert!(err.to_string().contains("unknown field \"extra\""), "{err}");
    }

    #[test]
    fn field_validation_parses_as_kube_apiserver_spells_it() {
        assert_eq!(FieldValidation::parse(None), Ok(FieldValidation::Warn));
        assert_eq!(
            FieldValidation::parse(Some("Strict")),
            Ok(FieldValidation::Strict)
        );
        assert_eq!(
            FieldValidation::parse(Some("Ignore")),
            Ok(FieldValidation::Ignore)
        );
        assert!(FieldValidation::parse(Some("strict")).is_err());
    }
}
