//! Kubernetes' strategic merge patch (`application/strategic-merge-patch+json`),
//! what `kubectl apply`, `set image`, `label`, `annotate` and `edit` send for
//! built-in kinds.
//!
//! Written here because no Rust crate implements it: it is a JSON merge
//! patch (RFC 7386) in which some lists merge element by element, matched
//! on a *merge key* (containers by `name`, container ports by
//! `containerPort`, service ports by `port`, env by `name`, ...), plus the
//! directives kubectl emits:
//!
//! - `$patch: delete` in a list element removes the element with that key;
//!   in a map, removes the map; `$patch: replace` replaces instead of
//!   merging (a map, or a whole list when it appears as a list element);
//! - `$setElementOrder/<field>`: the order the merged list's elements take;
//! - `$retainKeys`: the keys a map keeps (the others are cleared);
//! - `$deleteFromPrimitiveList/<field>`: values removed from a list of
//!   scalars that merges (`finalizers`).
//!
//! Kubernetes reads merge keys from struct tags (`patchMergeKey`); the kinds
//! here have the same lists, so the table is by field name, as in
//! [`merge_key`].

use serde_json::{Map, Value};

/// The field an element of list `field` is matched on, if the list merges.
///
/// `ports` is a container's (`containerPort`) or a Service's (`port`): the
/// elements on either side tell which.
fn merge_key(field: &str, a: &[Value], b: &[Value]) -> Option<&'static str> {
    let container = a.iter().chain(b).any(|e| e.get("containerPort").is_some());
    list_merge_key(field, container)
}

/// The merge key of list `field` (`ports` of a container when `container`,
/// else of a Service), as the OpenAPI document publishes it
/// (`x-kubernetes-patch-merge-key`).
pub fn list_merge_key(field: &str, container: bool) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => "name",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "conditions" | "addresses" => "type",
        "ownerReferences" => "uid",
        "hostAliases" => "ip",
        "taints" => "key",
        "topologySpreadConstraints" => "topologyKey",
        "ports" if container => "containerPort",
        "ports" => "port",
        _ => return None,
    })
}

/// Lists of scalars that merge (a set) rather than being replaced.
pub fn merges_as_set(field: &str) -> bool {
    field == "finalizers"
}

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_FROM: &str = "$deleteFromPrimitiveList/";

/// Applies a strategic merge `patch` to `target` in place.
///
/// A patch that is not an object replaces the target, as in a merge patch.
pub fn strategic_merge_patch(target: &mut Value, patch: &Value) -> Result<(), String> {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else {
        unreachable!("made an object above")
    };
    if merge_map(t, p)? == Outcome::Delete {
        *target = Value::Object(Map::new());
    }
    Ok(())
}

#[derive(PartialEq, Eq, Debug)]
enum Outcome {
    Keep,
    /// The map asked to be deleted (`$patch: delete`).
    Delete,
}

fn merge_map(t: &mut Map<String, Value>, p: &Map<String, Value>) -> Result<Outcome, String> {
    match p.get(PATCH).map(|d| d.as_str()) {
        None | Some(Some("merge")) => {}
        Some(Some("replace")) => {
            let mut fresh = Map::new();
            let mut rest = p.clone();
            rest.remove(PATCH);
            merge_map(&mut fresh, &rest)?;
            *t = fresh;
            return Ok(Outcome::Keep);
        }
        Some(Some("delete")) => return Ok(Outcome::Delete),
        Some(other) => return Err(format!("unknown $patch directive {other:?} in a map")),
    }
    let mut orders = Vec::new();
    for (k, v) in p {
        if k == PATCH || k == RETAIN_KEYS {
            continue;
        }
        if let Some(field) = k.strip_prefix(SET_ORDER) {
            let Value::Array(order) = v else {
                return Err(format!("{k} must be a list"));
            };
            orders.push((field, order));
            continue;
        }
        if let Some(field) = k.strip_prefix(DELETE_FROM) {
            let Value::Array(gone) = v else {
                return Err(format!("{k} must be a list"));
            };
            if let Some(Value::Array(list)) = t.get_mut(field) {
                list.retain(|e| !gone.contains(e));
            }
            continue;
        }
        match v {
            Value::Null => {
                t.remove(k);
            }
            Value::Object(pm) => {
                let slot = t
                    .entry(k.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                let Value::Object(tm) = slot else {
                    unreachable!("made an object above")
                };
                if merge_map(tm, pm)? == Outcome::Delete {
                    t.remove(k);
                }
            }
            Value::Array(pl) => {
                let slot = t.entry(k.clone()).or_insert(Value::Array(Vec::new()));
                if !slot.is_array() {
                    *slot = Value::Array(Vec::new());
                }
                let Value::Array(tl) = slot else {
                    unreachable!("made a list above")
                };
                merge_list(k, tl, pl)?;
            }
            scalar => {
                t.insert(k.clone(), scalar.clone());
            }
        }
    }
    for (field, order) in orders {
        if let Some(Value::Array(list)) = t.get_mut(field) {
            let key = merge_key(field, list, &[]);
            reorder(list, order, key);
        }
    }
    if let Some(retain) = p.get(RETAIN_KEYS) {
        let Value::Array(keep) = retain else {
            return Err(format!("{RETAIN_KEYS} must be a list"));
        };
        t.retain(|k, _| keep.iter().any(|x| x.as_str() == Some(k)));
    }
    Ok(Outcome::Keep)
}

/// A value from a patch, stored fresh: its maps lose their directives.
fn fresh(v: &Value) -> Result<Value, String> {
    match v {
        Value::Object(pm) => {
            let mut m = Map::new();
            merge_map(&mut m, pm)?;
            Ok(Value::Object(m))
        }
        other => Ok(other.clone()),
    }
}

fn directive(e: &Value) -> Option<&str> {
    e.get(PATCH).and_then(Value::as_str)
}

fn merge_list(field: &str, t: &mut Vec<Value>, p: &[Value]) -> Result<(), String> {
    if p.iter().any(|e| directive(e) == Some("replace")) {
        *t = p
            .iter()
            .filter(|e| directive(e) != Some("replace"))
            .map(fresh)
            .collect::<Result<_, _>>()?;
        return Ok(());
    }
    if merges_as_set(field) {
        for e in p {
            if !t.contains(e) {
                t.push(e.clone());
            }
        }
        return Ok(());
    }
    let Some(key) = merge_key(field, t, p) else {
        *t = p.iter().map(fresh).collect::<Result<_, _>>()?;
        return Ok(());
    };
    for e in p {
        let Value::Object(pm) = e else {
            return Err(format!(
                "an element of {field} must be an object with {key:?}, not {e}"
            ));
        };
        let Some(id) = pm.get(key) else {
            return Err(format!("an element of {field} lacks its merge key {key:?}"));
        };
        let at = t.iter().position(|x| x.get(key) == Some(id));
        match (directive(e), at) {
            (Some("delete"), Some(i)) => {
                t.remove(i);
            }
            (Some("delete"), None) => {}
            (_, Some(i)) => {
                if !t[i].is_object() {
                    t[i] = Value::Object(Map::new());
                }
                let Value::Object(tm) = &mut t[i] else {
                    unreachable!("made an object above")
                };
                if merge_map(tm, pm)? == Outcome::Delete {
                    t.remove(i);
                }
            }
            (_, None) => t.push(fresh(e)?),
        }
    }
    Ok(())
}

/// Puts the elements named in `order` first, in that order; the others
/// follow in the order they had.
fn reorder(list: &mut [Value], order: &[Value], key: Option<&str>) {
    let id = |e: &Value| -> Value {
        match key {
            Some(k) => e.get(k).cloned().unwrap_or(Value::Null),
            None => e.clone(),
        }
    };
    let rank = |e: &Value| {
        let want = id(e);
        order
            .iter()
            .position(|o| id(o) == want || *o == want)
            .unwrap_or(order.len())
    };
    list.sort_by_key(rank);
}
