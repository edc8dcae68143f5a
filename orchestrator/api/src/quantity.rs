//! Resource quantities: `250m` CPU, `128Mi` or `1Gi` memory, `2` pods.
//!
//! Parsed exactly with integers (no floating point), so sums over thousands
//! of pods never drift.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A quantity as written (`"250m"`), validated on deserialisation.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Quantity {
    text: String,
    /// The value in thousandths of the base unit.
    milli: i128,
}

/// Why a quantity string is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("quantity {text:?}: {why}")]
pub struct QuantityError {
    pub text: String,
    pub why: &'static str,
}

const SUFFIXES: &[(&str, i128)] = &[
    ("Ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
    ("Ti", 1 << 40),
    ("Pi", 1 << 50),
    ("Ei", 1 << 60),
    ("k", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
    ("T", 1_000_000_000_000),
    ("P", 1_000_000_000_000_000),
    ("E", 1_000_000_000_000_000_000),
];

impl Quantity {
    /// Parses `text`: a non-negative decimal number with an optional
    /// fraction, then an optional suffix (`m`, `k`, `M`, `G`, `T`, `P`, `E`,
    /// `Ki` .. `Ei`).
    pub fn parse(text: &str) -> Result<Quantity, QuantityError> {
        let err = |why| QuantityError {
            text: text.to_string(),
            why,
        };
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, suffix) = text.split_at(split);
        if number.is_empty() {
            return Err(err("must start with a number"));
        }
        let (int_part, frac_part) = match number.split_once('.') {
            Some((i, f)) => (i, f),
            None => (number, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() || frac_part.contains('.') {
            return Err(err("is not a decimal number"));
        }
        if int_part.len() > 18 || frac_part.len() > 9 {
            return Err(err("has too many digits"));
        }
        // Value in billionths of the written unit.
        let int: i128 = if int_part.is_empty() {
            0
        } else {
            int_part
                .parse()
                .map_err(|_| err("is not a decimal number"))?
        };
        let mut frac: i128 = 0;
        for (i, d) in frac_part.bytes().enumerate() {
            frac += (d - b'0') as i128 * 10i128.pow(8 - i as u32);
        }
        let nanos = int * 1_000_000_000 + frac;
        let milli = match suffix {
            "" => nanos / 1_000_000,
            "m" => nanos / 1_000_000_000,
            s => {
                let mult = SUFFIXES
                    .iter()
                    .find(|(name, _)| *name == s)
                    .map(|(_, m)| *m)
                    .ok_or_else(|| {
                        err("has an unknown suffix (use m, k, M, G, Ki, Mi, Gi, ...)")
                    })?;
                nanos.checked_mul(mult).ok_or_else(|| err("is too large"))? / 1_000_000
            }
        };
        if milli > i64::MAX as i128 * 1000 {
            return Err(err("is too large"));
        }
        Ok(Quantity {
            text: text.to_string(),
            milli,
        })
    }

    /// The value in thousandths (CPU in millicores), saturating.
    pub fn milli_value(&self) -> i64 {
        self.milli.min(i64::MAX as i128) as i64
    }

    /// The value in the base unit (bytes, pods), rounded up as Kubernetes does.
    pub fn value(&self) -> i64 {
        ((self.milli + 999) / 1000).min(i64::MAX as i128) as i64
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

impl schemars::JsonSchema for Quantity {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Quantity".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // As Kubernetes' OpenAPI describes resource.Quantity.
        schemars::json_schema!({
            "description": "A quantity: 250m, 1.5, 128Mi, 1Gi, 2.",
            "x-kubernetes-int-or-string": true
        })
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Kubernetes accepts `cpu: 2` as well as `cpu: "2"`.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            N(u64),
        }
        let text = match Raw::deserialize(d)? {
            Raw::S(s) => s,
            Raw::N(n) => n.to_string(),
        };
        Quantity::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        assert_eq!(Quantity::parse("250m").unwrap().milli_value(), 250);
        assert_eq!(Quantity::parse("2").unwrap().milli_value(), 2000);
        assert_eq!(Quantity::parse("0.5").unwrap().milli_value(), 500);
        assert_eq!(Quantity::parse("1.5").unwrap().milli_value(), 1500);
        assert_eq!(Quantity::parse("128Mi").unwrap().value(), 128 << 20);
        assert_eq!(Quantity::parse("1Gi").unwrap().value(), 1 << 30);
        assert_eq!(Quantity::parse("1k").unwrap().value(), 1000);
        assert_eq!(Quantity::parse("1.5Gi").unwrap().value(), 3 << 29);
        assert_eq!(Quantity::parse("1m").unwrap().value(), 1);
    }

    #[test]
    fn refuses_what_is_not_a_quantity() {
        for bad in [
            "",
            "m",
            "-1",
            "1x",
            "1..2",
            "abc",
            "1 Gi",
            "99999999999999999999Ei",
        ] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?} parsed");
        }
        let e = serde_json::from_str::<Quantity>("\"12q\"").unwrap_err();
        assert!(e.to_string().contains("unknown suffix"), "{e}");
        assert_eq!(
            serde_json::from_str::<Quantity>("2").unwrap().milli_value(),
            2000
        );
    }
}
