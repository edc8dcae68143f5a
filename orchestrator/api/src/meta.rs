//! Metadata every object carries, lists, watch events and the [`Resource`]
//! trait that ties a Rust type to its kind, group and URL segment.

use std::collections::BTreeMap;
use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// `metadata` of every object (a subset of Kubernetes' ObjectMeta).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectMeta {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// A prefix the server completes with a random suffix when `name` is empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub generate_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// The store revision that last changed the object, as a decimal string.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    /// Bumped by the server on every change to `spec`.
    #[serde(skip_serializing_if = "is_zero")]
    pub generation: i64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub owner_references: Vec<OwnerReference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

impl ObjectMeta {
    /// Metadata with just a namespace and a name.
    pub fn named(namespace: &str, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: name.to_string(),
            namespace: namespace.to_string(),
            ..Default::default()
        }
    }

    /// The object's `resourceVersion` as a number (0 when unset or invalid).
    pub fn revision(&self) -> i64 {
        self.resource_version.parse().unwrap_or(0)
    }

    /// The owner reference marked `controller: true`, if any.
    pub fn controller(&self) -> Option<&OwnerReference> {
        self.owner_references.iter().find(|o| o.controller)
    }
}

/// A link from a dependent to the object that owns it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct OwnerReference {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub controller: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub block_owner_deletion: bool,
}

impl OwnerReference {
    /// A controller reference to `owner`.
    pub fn controller_of<R: Resource>(owner: &R) -> OwnerReference {
        OwnerReference {
            api_version: R::API_VERSION.to_string(),
            kind: R::KIND.to_string(),
            name: owner.meta().name.clone(),
            uid: owner.meta().uid.clone(),
            controller: true,
            block_owner_deletion: true,
        }
    }
}

/// A reference to another object (Binding targets, Event subjects,
/// Endpoints addresses).
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectReference {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
}

impl ObjectReference {
    /// A reference to `obj`.
    pub fn to<R: Resource>(obj: &R) -> ObjectReference {
        let m = obj.meta();
        ObjectReference {
            api_version: R::API_VERSION.to_string(),
            kind: R::KIND.to_string(),
            namespace: m.namespace.clone(),
            name: m.name.clone(),
            uid: m.uid.clone(),
            resource_version: String::new(),
        }
    }
}

/// `metadata` of a list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ListMeta {
    /// The store revision the list was read at; watch from here.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    /// Where the next page starts, when a `limit` cut the list short.
    #[serde(rename = "continue", skip_serializing_if = "String::is_empty")]
    pub continue_: String,
}

/// A list of objects of one kind (`PodList`, `NodeList`, ...).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", bound = "T: Resource")]
pub struct List<T> {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ListMeta,
    #[serde(default)]
    pub items: Vec<T>,
}

impl<T: Resource> List<T> {
    pub fn new(items: Vec<T>, resource_version: i64) -> List<T> {
        List {
            api_version: T::API_VERSION.to_string(),
            kind: format!("{}List", T::KIND),
            metadata: ListMeta {
                resource_version: resource_version.to_string(),
                ..Default::default()
            },
            items,
        }
    }

    /// The revision the list was read at.
    pub fn revision(&self) -> i64 {
        self.metadata.resource_version.parse().unwrap_or(0)
    }
}

/// One line of a watch stream: `{"type": "ADDED", "object": {...}}`.
///
/// `BOOKMARK` carries an object with only `metadata.resourceVersion` set;
/// `ERROR` carries a [`crate::Status`] (as JSON, since it is not a `T`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WatchEvent<T = serde_json::Value> {
    #[serde(rename = "type")]
    pub kind: String,
    pub object: T,
}

/// A kind of object the API serves.
pub trait Resource: Serialize + DeserializeOwned + Clone + Debug + Default + 'static {
    /// `Pod`
    const KIND: &'static str;
    /// `""` for the core group, `apps`, `coordination.k8s.io`
    const GROUP: &'static str;
    /// `v1` or `apps/v1`
    const API_VERSION: &'static str;
    /// The URL segment: `pods`
    const PLURAL: &'static str;
    const NAMESPACED: bool;

    fn meta(&self) -> &ObjectMeta;
    fn meta_mut(&mut self) -> &mut ObjectMeta;
    /// The object's `apiVersion` and `kind` fields as sent.
    fn type_meta(&self) -> (&str, &str);
    /// Sets `apiVersion` and `kind` to this type's.
    fn set_type_meta(&mut self);
}

/// Implements [`Resource`] for a struct with `api_version`, `kind` and
/// `metadata` fields.
#[macro_export]
macro_rules! impl_resource {
    ($ty:ty, $kind:literal, $group:literal, $api_version:literal, $plural:literal, $namespaced:literal) => {
        impl $crate::meta::Resource for $ty {
            const KIND: &'static str = $kind;
            const GROUP: &'static str = $group;
            const API_VERSION: &'static str = $api_version;
            const PLURAL: &'static str = $plural;
            const NAMESPACED: bool = $namespaced;
            fn meta(&self) -> &$crate::meta::ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut $crate::meta::ObjectMeta {
                &mut self.metadata
            }
            fn type_meta(&self) -> (&str, &str) {
                (&self.api_version, &self.kind)
            }
            fn set_type_meta(&mut self) {
                self.api_version = $api_version.to_string();
                self.kind = $kind.to_string();
            }
        }
    };
}
