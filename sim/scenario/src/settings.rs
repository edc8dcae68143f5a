//! Which settings a kind takes, read off its settings struct: the field
//! names serde's derive hands to `deserialize_struct`. Error messages use
//! it ("only loss takes `probability`"), so the types stay the one place
//! that says what a kind takes.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// The field names of the struct `T` deserializes as (empty for anything
/// that is not a struct).
pub fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let seen = Cell::new(&[][..]);
    let _ = T::deserialize(Probe(&seen));
    seen.get()
}

/// A deserializer that only notes the fields a struct asks for, then
/// fails.
struct Probe<'a>(&'a Cell<&'static [&'static str]>);

#[derive(Debug)]
struct Stop;

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("probe")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: fmt::Display>(_: T) -> Stop {
        Stop
    }
}

impl<'de> Deserializer<'de> for Probe<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        self.0.set(fields);
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// Defines, from one table of `Variant = "name-in-files" (SettingsStruct)`
/// lines, a kind enum (the names) and a spec enum (a kind with its
/// settings, deserialized from `{name = {settings}}`), with: every kind in
/// order, each kind's name and the settings it takes, a spec's kind, and
/// its settings as `&dyn $Trait` (which every settings struct implements).
/// Faults and invariants are both defined with it.
macro_rules! kinds {
    (
        $(#[$kind_doc:meta])* kind $Kind:ident;
        $(#[$spec_doc:meta])* spec $Spec:ident: dyn $Trait:ident;
        $($(#[$doc:meta])* $variant:ident = $name:literal ($settings:ident),)*
    ) => {
        $(#[$kind_doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
        pub enum $Kind {
            $($(#[$doc])* #[serde(rename = $name)] $variant,)*
        }

        $(#[$spec_doc])*
        #[derive(Debug, Clone, PartialEq, serde::Deserialize)]
        pub enum $Spec {
            $($(#[$doc])* #[serde(rename = $name)] $variant($settings),)*
        }

        impl $Kind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [$Kind] = &[$($Kind::$variant),*];

            /// The name used in files.
            pub fn name(self) -> &'static str {
                match self {
                    $($Kind::$variant => $name,)*
                }
            }

            /// The settings this kind takes besides its common ones.
            pub fn settings(self) -> &'static [&'static str] {
                match self {
                    $($Kind::$variant => $crate::settings::fields_of::<$settings>(),)*
                }
            }
        }

        impl $Spec {
            /// The kind.
            pub fn kind(&self) -> $Kind {
                match self {
                    $($Spec::$variant(_) => $Kind::$variant,)*
                }
            }

            /// The settings, as every kind's settings answer for them.
            pub fn settings(&self) -> &dyn $Trait {
                match self {
                    $($Spec::$variant(s) => s,)*
                }
            }
        }
    };
}

pub(crate) use kinds;

/// "a", "a and b", "a, b and c".
pub fn and_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Two {
        first: u32,
        #[serde(rename = "for")]
        duration: u32,
    }

    #[test]
    fn reads_the_names_a_struct_is_written_with() {
        assert_eq!(fields_of::<Two>(), ["first", "for"]);
        assert!(fields_of::<u32>().is_empty());
        assert_eq!(and_list(&["a", "b", "c"]), "a, b and c");
        assert_eq!(and_list(&["a", "b"]), "a and b");
    }
}
