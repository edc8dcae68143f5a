//! ConfigMap and Secret: keys, sizes, base64 values, immutability.

use std::collections::BTreeMap;

use base64::Engine;

use crate::status::StatusCause;
use crate::types::*;

use super::{duplicate, forbidden, invalid, too_long, validate_meta, NameRule, Validate};

/// The most data one ConfigMap or Secret may hold (Kubernetes' 1 MiB).
pub const MAX_DATA_BYTES: usize = 1 << 20;

const CONFIG_KEY_RULE: &str = "a valid config key must consist of alphanumeric characters, \
    '-', '_' or '.' (e.g. 'key.name', or 'KEY_NAME', or 'key-name', regex used for \
    validation is '[-._a-zA-Z0-9]+')";

fn check_key(out: &mut Vec<StatusCause>, key: &str, field: &str) {
    let path = format!("{field}[{key}]");
    let shape = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !shape {
        out.push(invalid(&path, key, CONFIG_KEY_RULE));
    } else if key == "." || key == ".." {
        out.push(invalid(&path, key, "must not be '.' or '..'"));
    } else if key.len() > 253 {
        out.push(too_long(&path, 253));
    }
}

fn check_base64(out: &mut Vec<StatusCause>, values: &BTreeMap<String, String>, field: &str) {
    for (k, v) in values {
        if base64::engine::general_purpose::STANDARD.decode(v).is_err() {
            out.push(invalid(
                &format!("{field}[{k}]"),
                "<value>",
                "must be base64-encoded (the value is not shown)",
            ));
        }
    }
}

/// The data must not change once `immutable` is set, nor may the flag be
/// unset.
fn check_immutable<D: PartialEq>(
    out: &mut Vec<StatusCause>,
    old: (Option<bool>, D),
    new: (Option<bool>, D),
    fields: &str,
) {
    if old.0 != Some(true) {
        return;
    }
    if new.0 != Some(true) {
        out.push(forbidden(
            "immutable",
            "field is immutable when `immutable` is set",
        ));
    }
    if old.1 != new.1 {
        out.push(forbidden(
            fields,
            "field is immutable when `immutable` is set",
        ));
    }
}

impl Validate for ConfigMap {
    fn validate(&self) -> Vec<StatusCause> {
        let mut out = validate_meta(&self.metadata, true, NameRule::Subdomain);
        let mut size = 0;
        for (k, v) in &self.data {
            check_key(&mut out, k, "data");
            size += k.len() + v.len();
        }
        for (k, v) in &self.binary_data {
            check_key(&mut out, k, "binaryData");
            if self.data.contains_key(k) {
                out.push(duplicate(&format!("data[{k}]"), k));
            }
            size += k.len() + v.len() * 3 / 4;
        }
        check_base64(&mut out, &self.binary_data, "binaryData");
        if size > MAX_DATA_BYTES {
            out.push(too_long("data", MAX_DATA_BYTES));
        }
        out
    }

    fn validate_update(&self, old: &Self) -> Vec<StatusCause> {
        let mut out = self.validate();
        check_immutable(
            &mut out,
            (old.immutable, (&old.data, &old.binary_data)),
            (self.immutable, (&self.data, &self.binary_data)),
            "data",
        );
        out
    }
}

impl Validate for Secret {
    /// After the API server merged `stringData` into `data`.
    fn validate(&self) -> Vec<StatusCause> {
        let mut out = validate_meta(&self.metadata, true, NameRule::Subdomain);
        let mut size = 0;
        for (k, v) in &self.data {
            check_key(&mut out, k, "data");
            size += k.len() + v.len() * 3 / 4;
        }
        for k in self.string_data.keys() {
            check_key(&mut out, k, "stringData");
        }
        check_base64(&mut out, &self.data, "data");
        if size > MAX_DATA_BYTES {
            out.push(too_long("data", MAX_DATA_BYTES));
        }
        out
    }

    fn validate_update(&self, old: &Self) -> Vec<StatusCause> {
        let mut out = self.validate();
        if self.secret_type != old.secret_type {
            out.push(invalid("type", &self.secret_type, "field is immutable"));
        }
        check_immutable(
            &mut out,
            (old.immutable, &old.data),
            (self.immutable, &self.data),
            "data",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::ObjectMeta;

    fn fields(causes: &[StatusCause]) -> Vec<String> {
        causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    fn cm(data: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta::named("default", "cfg"),
            data: data
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn keys_follow_kubernetes_rules() {
        assert!(cm(&[("app.conf", "x"), ("KEY_1", "y"), ("a-b", "")])
            .validate()
            .is_empty());
        let got = fields(&cm(&[("a/b", "x"), ("..", "y")]).validate());
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(
            got[0].starts_with("data[..]: Invalid value: \"..\""),
            "{got:?}"
        );
        assert!(
            got[1].starts_with("data[a/b]: Invalid value: \"a/b\": a valid config key"),
            "{got:?}"
        );
        let mut both = cm(&[("k", "x")]);
        both.binary_data.insert("k".into(), "eA==".into());
        assert_eq!(
            fields(&both.validate()),
            ["data[k]: Duplicate value: \"k\""]
        );
        let mut big = cm(&[]);
        big.data.insert("k".into(), "x".repeat(MAX_DATA_BYTES));
        assert_eq!(
            fields(&big.validate()),
            ["data: Too long: must have at most 1048576 bytes"]
        );
    }

    #[test]
    fn immutable_data_cannot_change_and_the_flag_stays() {
        let mut old = cm(&[("k", "1")]);
        old.immutable = Some(true);
        let mut new = cm(&[("k", "2")]);
        new.immutable = Some(true);
        assert_eq!(
            fields(&new.validate_update(&old)),
            ["data: Forbidden: field is immutable when `immutable` is set"]
        );
        new.data = old.data.clone();
        new.immutable = None;
        assert_eq!(
            fields(&new.validate_update(&old)),
            ["immutable: Forbidden: field is immutable when `immutable` is set"]
        );
        // Mutable: anything goes.
        assert!(cm(&[("k", "2")])
            .validate_update(&cm(&[("k", "1")]))
            .is_empty());
    }

    #[test]
    fn secret_values_are_base64_and_never_shown() {
        let mut s = Secret {
            metadata: ObjectMeta::named("default", "db"),
            secret_type: "Opaque".into(),
            ..Default::default()
        };
        s.data.insert("password".into(), "aHVudGVyMg==".into());
        assert!(s.validate().is_empty());
        s.data.insert("token".into(), "not base64!".into());
        let got = fields(&s.validate());
        assert_eq!(got.len(), 1);
        assert!(
            got[0].starts_with("data[token]: Invalid value: \"<value>\""),
            "{got:?}"
        );
        assert!(!got[0].contains("not base64"), "the value is not echoed");
        let mut other = s.clone();
        other.data.remove("token");
        let mut changed = other.clone();
        changed.secret_type = "kubernetes.io/tls".into();
        assert_eq!(
            fields(&changed.validate_update(&other)),
            ["type: Invalid value: \"kubernetes.io/tls\": field is immutable"]
        );
    }
}
