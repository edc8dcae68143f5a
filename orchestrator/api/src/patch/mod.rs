//! The bodies of a `PATCH` request: JSON merge patch (RFC 7386),
//! Kubernetes' strategic merge patch ([`strategic`]) and JSON patch
//! (RFC 6902, through the `json-patch` crate).
//!
//! A merge patch is a partial object: members present replace (objects
//! merge recursively), members set to `null` are deleted, anything not an
//! object replaces the whole target. Lists are replaced, never merged; a
//! strategic merge patch merges some of them element by element.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

mod strategic;
pub use strategic::{list_merge_key, merges_as_set, strategic_merge_patch};

/// The patch formats a `PATCH` request may carry, by content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json`
    Merge,
    /// `application/strategic-merge-patch+json`
    Strategic,
    /// `application/json-patch+json`
    Json,
}

impl PatchType {
    /// The patch type a content type names (parameters already stripped).
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        Some(match ct {
            "application/merge-patch+json" => PatchType::Merge,
            "application/strategic-merge-patch+json" => PatchType::Strategic,
            "application/json-patch+json" => PatchType::Json,
            _ => return None,
        })
    }

    /// Applies a patch of this type (the request body, parsed) to
    /// `target`; the error says what is wrong with the patch.
    pub fn apply(self, target: &mut Value, patch: &Value) -> Result<(), String> {
        match self {
            PatchType::Merge => {
                merge_patch(target, patch);
                Ok(())
            }
            PatchType::Strategic => strategic_merge_patch(target, patch),
            PatchType::Json => {
                let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                    .map_err(|e| format!("the JSON patch is not a list of operations: {e}"))?;
                json_patch::patch(target, &ops).map_err(|e| format!("the JSON patch failed: {e}"))
            }
        }
    }
}

/// Applies `patch` to `target` in place, as RFC 7386 section 2 defines.
///
/// - a non-object patch replaces the target entirely;
/// - an object patch turns a non-object target into `{}` first, then for
///   each member: `null` removes it from the target, anything else is
///   merged into the target's member (recursively) — so `null`s nested in a
///   member the target lacks are dropped rather than stored.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(members) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(map) = target {
        for (name, value) in members {
            if value.is_null() {
                map.remove(name);
            } else {
                merge_patch(map.entry(name.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// The merge patch that turns `old` into `new`: what a client sends to
/// change only what it changed.
///
/// `merge_patch(old, create_merge_patch(old, new))` gives `new`, except
/// that `null` members of objects in `new` cannot be expressed (a merge
/// patch's `null` means "delete") and are dropped.
pub fn create_merge_patch(old: &Value, new: &Value) -> Value {
    let (Value::Object(old_map), Value::Object(new_map)) = (old, new) else {
        return new.clone();
    };
    let mut patch = Map::new();
    for name in old_map.keys() {
        if !new_map.contains_key(name) {
            patch.insert(name.clone(), Value::Null);
        }
    }
    for (name, value) in new_map {
        match old_map.get(name) {
            Some(before) if before == value => {}
            Some(before) => {
                patch.insert(name.clone(), create_merge_patch(before, value));
            }
            None => {
                patch.insert(name.clone(), value.clone());
            }
        }
    }
    Value::Object(patch)
}

/// Applies a merge patch to a typed object through its JSON form.
///
/// Fails when the result is not a valid `T` (a patch that sets an unknown
/// field, or a field to the wrong type); the error names the field.
pub fn patch_object<T>(object: &T, patch: &Value) -> Result<T, serde_json::Error>
where
    T: Serialize + DeserializeOwned,
{
    let mut value = serde_json::to_value(object)?;
    merge_patch(&mut value, patch);
    crate::decode::from_value_strict(value)
}

#[cfg(test)]
mod strategic_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Pod;
    use serde_json::json;

    fn patched(target: Value, patch: Value) -> Value {
        let mut t = target;
        merge_patch(&mut t, &patch);
        t
    }

    #[test]
    fn rfc7386_section_3_example() {
        let target = json!({
            "title": "Goodbye!",
            "author": {"givenName": "John", "familyName": "Doe"},
            "tags": ["example", "sample"],
            "content": "This will be unchanged"
        });
        let patch = json!({
            "title": "Hello!",
            "phoneNumber": "+01-123-456-7890",
            "author": {"familyName": null},
            "tags": ["example"]
        });
        let want = json!({
            "title": "Hello!",
            "author": {"givenName": "John"},
            "tags": ["example"],
            "content": "This will be unchanged",
            "phoneNumber": "+01-123-456-7890"
        });
        assert_eq!(patched(target, patch), want);
    }

    #[test]
    fn rfc7386_appendix_a_examples() {
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"a": "foo"}), json!("bar"), json!("bar")),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (i, (target, patch, want)) in cases.into_iter().enumerate() {
            assert_eq!(patched(target, patch), want, "appendix A example {}", i + 1);
        }
    }

    #[test]
    fn created_patches_reproduce_the_new_value() {
        let old = json!({
            "metadata": {"name": "web", "labels": {"app": "web", "old": "x"}},
            "spec": {"replicas": 1, "paused": true, "ports": [80]}
        });
        let new = json!({
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},
            "spec": {"replicas": 3, "ports": [80, 443]},
            "status": {}
        });
        let patch = create_merge_patch(&old, &new);
        assert_eq!(
            patch,
            json!({
                "metadata": {"labels": {"old": null, "tier": "front"}},
                "spec": {"replicas": 3, "paused": null, "ports": [80, 443]},
                "status": {}
            })
        );
        assert_eq!(patched(old.clone(), patch), new);
        assert_eq!(create_merge_patch(&old, &old), json!({}));
        assert_eq!(create_merge_patch(&old, &json!([1])), json!([1]));
    }

    #[test]
    fn typed_objects_patch_through_json() {
        let mut pod = Pod::default();
        pod.metadata.name = "web-1".into();
        pod.metadata.labels.insert("app".into(), "web".into());
        let out = patch_object(
            &pod,
            &json!({"metadata": {"labels": {"app": null, "tier": "db"}}, "spec": {"nodeName": "n1"}}),
        )
        .unwrap();
        assert_eq!(
            out.metadata.labels.get("tier").map(String::as_str),
            Some("db")
        );
        assert!(!out.metadata.labels.contains_key("app"));
        assert_eq!(out.spec.node_name, "n1");
        let err = patch_object(&pod, &json!({"spec": {"nodname": "n1"}})).unwrap_err();
        assert!(err.to_string().contains("nodname"), "{err}");
    }
}
