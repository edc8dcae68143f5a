//! The verbs on a resource: get, list, create, update, patch, delete, bind and scale, with the node restriction and selectors.

use std::rc::Rc;

use faultline_api::patch::merge_patch;
use faultline_api::selector::{FieldSelector, Selector};
use faultline_api::{Binding, Deployment, List, Pod, Resource, Scale, Status};
use http::{Method, Request, Response};
use hyper::body::Incoming;
use serde_json::Value;

use super::respond::{
    content_type, decode_body, json_response, method_not_allowed, not_served, read_body,
    require_json, Query,
};
use super::watch::{watch, Decoded};
use super::{Body, Ctx, Route};
use crate::auth::{authorize, Access, Decision, User};
use crate::registry::{Guard, Part, Strategy};
use crate::table;

/// The node a pod is bound to, from any kind's JSON (empty if none).
fn node_of<T: Resource>(obj: &T) -> String {
    serde_json::to_value(obj).expect("objects always serialise")["spec"]["nodeName"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn on_node_check<T: Resource>(
    decision: &Decision,
    user: &User,
) -> impl Fn(&T) -> Result<(), Status> {
    let need = match decision {
        Decision::IfPodOnNode(n) => Some(n.clone()),
        Decision::Allow | Decision::IfNamed(_) => None,
    };
    let who = user.name.clone();
    move |cur: &T| match &need {
        Some(node) if node_of(cur) != *node => Err(Status::forbidden(format!(
            "User {who:?} may only change pods bound to node {node:?}; {} is bound to {:?}",
            cur.meta().name,
            node_of(cur)
        ))),
        _ => Ok(()),
    }
}

pub(super) async fn resource<T: Strategy>(
    ctx: &Rc<Ctx>,
    user: &User,
    req: Request<Incoming>,
    r: &Route,
) -> Result<Response<Body>, Status> {
    let query = Query::parse(req.uri().query());
    let method = req.method().clone();
    if T::NAMESPACED != r.namespace.is_some() && (r.name.is_some() || method != Method::GET) {
        return Err(not_served(req.uri().path()));
    }
    let ns = r.namespace.clone().unwrap_or_default();
    let name = r.name.clone().unwrap_or_default();
    let sub = r.sub.clone().unwrap_or_default();
    let watching = query.flag("watch");
    let verb = match (&method, r.name.is_some(), sub.as_str()) {
        (&Method::GET, false, _) if watching => "watch",
        (&Method::GET, false, _) => "list",
        (&Method::GET, true, _) => "get",
        (&Method::POST, false, _) => "create",
        (&Method::POST, true, "binding") => "create",
        (&Method::PUT, true, _) => "update",
        (&Method::PATCH, true, _) => "patch",
        (&Method::DELETE, true, "") => "delete",
        _ => return Err(method_not_allowed(&method, req.uri().path())),
    };
    let decision = authorize(
        user,
        &Access {
            verb,
            resource: T::PLURAL,
            sub: &sub,
            namespace: &ns,
            name: &name,
        },
    )?;
    let check = on_node_check::<T>(&decision, user);
    let guard = match req
        .headers()
        .get("x-faultline-fence")
        .and_then(|v| v.to_str().ok())
    {
        Some(h) if method != Method::GET => Guard::parse(h)?,
        _ => Guard::none(),
    };
    let g = &guard;
    match (sub.as_str(), T::PLURAL) {
        ("" | "status", _) => {}
        ("binding", "pods") if method == Method::POST => {}
        ("scale", "deployments") => {}
        _ => return Err(not_served(req.uri().path())),
    }
    let part = if sub == "status" {
        Part::Status
    } else {
        Part::Main
    };
    let as_table = req
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(table::wants_table)
        && sub.is_empty();
    let include = match as_table {
        true => table::Include::parse(query.get("includeObject")).map_err(Status::bad_request)?,
        false => table::Include::Metadata,
    };
    let as_rows = |objs: &[T], rv: String| {
        let now_ms = ctx.reg.env.wall_ms();
        let objs: Vec<Value> = objs
            .iter()
            .map(|o| serde_json::to_value(o).expect("objects always serialise"))
            .collect();
        json_response(200, &table::table(T::KIND, &objs, &rv, include, now_ms))
    };
    match verb {
        "list" => {
            let sel = selectors(&query)?;
            let ns_opt = r.namespace.as_deref();
            let (items, rev) = ctx.reg.list::<T>(ns_opt).await?;
            let items: Vec<T> = items.into_iter().filter(|o| sel.matches(o)).collect();
            if as_table {
                return Ok(as_rows(&items, rev.to_string()));
            }
            Ok(json_response(200, &List::new(items, rev)))
        }
        "watch" => watch::<T>(ctx, r.namespace.clone(), &query).await,
        "get" if sub == "scale" => {
            let d: Deployment = ctx.reg.get(&ns, &name).await?;
            Ok(json_response(200, &scale_of(&d)))
        }
        "get" => {
            let obj: T = ctx.reg.get(&ns, &name).await?;
            if as_table {
                let rv = obj.meta().resource_version.clone();
                return Ok(as_rows(std::slice::from_ref(&obj), rv));
            }
            Ok(json_response(200, &obj))
        }
        "create" if sub == "binding" => {
            let body = read_body(ctx, req).await?;
            bind(ctx, &ns, &name, decode_body::<Binding>(&body)?, g).await
        }
        "create" => {
            require_json(&content_type(&req))?;
            let body = read_body(ctx, req).await?;
            let obj = decode_body::<T>(&body)?;
            if let Decision::IfNamed(own) = &decision {
                if obj.meta().name != *own {
                    return Err(Status::forbidden(format!(
                        "User {:?} may only create the {} named {own:?}, not {:?}",
                        user.name,
                        T::PLURAL,
                        obj.meta().name
                    )));
                }
            }
            let created = ctx.reg.create(&ns, obj, g).await?;
            Ok(json_response(201, &created))
        }
        "update" if sub == "scale" => {
            require_json(&content_type(&req))?;
            let body = read_body(ctx, req).await?;
            let s = decode_body::<Scale>(&body)?;
            set_scale(ctx, &ns, &name, s, g).await
        }
        "update" => {
            require_json(&content_type(&req))?;
            let body = read_body(ctx, req).await?;
            let obj = decode_body::<T>(&body)?;
            let out = ctx.reg.update(&ns, &name, obj, part, &check, g).await?;
            Ok(json_response(200, &out))
        }
        "patch" => {
            let ct = content_type(&req);
            if !matches!(
                ct.as_str(),
                "application/merge-patch+json" | "application/strategic-merge-patch+json"
            ) {
                return Err(Status::failure(
                    415,
                    "UnsupportedMediaType",
                    format!(
                        "the patch content type {ct:?} is not supported; use application/merge-patch+json"
                    ),
                ));
            }
            let body = read_body(ctx, req).await?;
            let p: Value = serde_json::from_slice(&body)
                .map_err(|e| Status::bad_request(format!("the patch is not valid JSON: {e}")))?;
            if sub == "scale" {
                let d: Deployment = ctx.reg.get(&ns, &name).await?;
                let mut s = serde_json::to_value(scale_of(&d)).expect("serialises");
                merge_patch(&mut s, &p);
                let s: Scale = serde_json::from_value(s).map_err(|e| {
                    Status::bad_request(format!("the patched scale is not valid: {e}"))
                })?;
                return set_scale(ctx, &ns, &name, s, g).await;
            }
            patch::<T>(ctx, &ns, &name, &p, part, &check, g).await
        }
        "delete" => {
            let body = read_body(ctx, req).await?;
            delete::<T>(ctx, &ns, &name, &query, &body, &check, g).await
        }
        _ => Err(method_not_allowed(&method, r.plural.as_str())),
    }
}

/// Label and field selectors of a list or watch.
pub(super) struct Selectors {
    labels: Option<Selector>,
    fields: Option<FieldSelector>,
}

impl Selectors {
    pub(super) fn matches<T: Resource>(&self, obj: &T) -> bool {
        if let Some(l) = &self.labels {
            if !l.matches(&obj.meta().labels) {
                return false;
            }
        }
        if let Some(f) = &self.fields {
            let v = serde_json::to_value(obj).expect("objects always serialise");
            if !f.matches_json(&v) {
                return false;
            }
        }
        true
    }

    /// [`Selectors::matches`] on a cached object, reusing its JSON form.
    pub(super) fn matches_decoded<T: Resource>(&self, d: &Decoded<T>) -> bool {
        if let Some(l) = &self.labels {
            if !l.matches(&d.obj.meta().labels) {
                return false;
            }
        }
        match &self.fields {
            Some(f) => f.matches_json(d.json()),
            None => true,
        }
    }
}

pub(super) fn selectors(q: &Query) -> Result<Selectors, Status> {
    let labels = match q.get("labelSelector").filter(|s| !s.is_empty()) {
        Some(s) => Some(Selector::parse(s).map_err(|e| {
            Status::bad_request(format!("unable to parse labelSelector {s:?}: {e}"))
        })?),
        None => None,
    };
    let fields = match q.get("fieldSelector").filter(|s| !s.is_empty()) {
        Some(s) => Some(FieldSelector::parse(s).map_err(|e| {
            Status::bad_request(format!("unable to parse fieldSelector {s:?}: {e}"))
        })?),
        None => None,
    };
    Ok(Selectors { labels, fields })
}

async fn patch<T: Strategy>(
    ctx: &Rc<Ctx>,
    ns: &str,
    name: &str,
    p: &Value,
    part: Part,
    check: &dyn Fn(&T) -> Result<(), Status>,
    g: &Guard,
) -> Result<Response<Body>, Status> {
    let pinned = p["metadata"]["resourceVersion"].as_str().is_some();
    for _ in 0..5 {
        let cur: T = ctx.reg.get(ns, name).await?;
        let mut v = serde_json::to_value(&cur).expect("objects always serialise");
        merge_patch(&mut v, p);
        let next: T = serde_json::from_value(v).map_err(|e| {
            Status::bad_request(format!("the patched {} is not valid: {e}", T::KIND))
        })?;
        match ctx.reg.update(ns, name, next, part, check, g).await {
            Err(s) if s.reason == "Conflict" && !pinned => continue,
            Err(s) => return Err(s),
            Ok(out) => return Ok(json_response(200, &out)),
        }
    }
    Err(Status::conflict(
        T::PLURAL,
        name,
        "the object keeps changing; try again",
    ))
}

/// `DELETE`: bound pods are deleted gracefully (a deletion timestamp the
/// kubelet acts on; it then deletes with `gracePeriodSeconds=0`); anything
/// else goes at once. Dependents go later, through the garbage collector.
async fn delete<T: Strategy>(
    ctx: &Rc<Ctx>,
    ns: &str,
    name: &str,
    query: &Query,
    body: &[u8],
    check: &dyn Fn(&T) -> Result<(), Status>,
    g: &Guard,
) -> Result<Response<Body>, Status> {
    let opts: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body)
            .map_err(|e| Status::bad_request(format!("DeleteOptions are not valid JSON: {e}")))?
    };
    let grace = query
        .get("gracePeriodSeconds")
        .and_then(|g| g.parse::<i64>().ok())
        .or_else(|| opts["gracePeriodSeconds"].as_i64());
    let want_uid = opts["preconditions"]["uid"].as_str().unwrap_or("");
    let want_rv = opts["preconditions"]["resourceVersion"]
        .as_str()
        .unwrap_or("");
    for _ in 0..5 {
        let cur: T = ctx.reg.get(ns, name).await?;
        check(&cur)?;
        if !want_uid.is_empty() && want_uid != cur.meta().uid {
            return Err(Status::conflict(
                T::PLURAL,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {want_uid}, UID in object meta: {}",
                    cur.meta().uid
                ),
            ));
        }
        if !want_rv.is_empty() && want_rv != cur.meta().resource_version {
            return Err(Status::conflict(
                T::PLURAL,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {want_rv}, ResourceVersion in object meta: {}",
                    cur.meta().resource_version
                ),
            ));
        }
        let graceful = T::PLURAL == "pods" && !node_of(&cur).is_empty() && grace != Some(0);
        if graceful {
            if cur.meta().deletion_timestamp.is_some() {
                return Ok(json_response(200, &cur));
            }
            let mut next = cur.clone();
            next.meta_mut().deletion_timestamp =
                Some(faultline_api::time::rfc3339(ctx.reg.env.wall_ms()));
            match ctx.reg.swap(ns, name, &cur, &next, g).await? {
                Some(rev) => {
                    next.meta_mut().resource_version = rev.to_string();
                    return Ok(json_response(200, &next));
                }
                None => continue,
            }
        }
        match ctx.reg.remove(ns, name, &cur, g).await? {
            Some(_) => return Ok(json_response(200, &cur)),
            None => continue,
        }
    }
    Err(Status::conflict(
        T::PLURAL,
        name,
        "the object keeps changing; try again",
    ))
}

/// `POST pods/{name}/binding`: sets `spec.nodeName` once, with a
/// compare-and-swap on the pod's revision, so a pod is never bound twice.
async fn bind(
    ctx: &Rc<Ctx>,
    ns: &str,
    name: &str,
    b: Binding,
    g: &Guard,
) -> Result<Response<Body>, Status> {
    if !b.target.kind.is_empty() && b.target.kind != "Node" {
        return Err(Status::bad_request(format!(
            "a pod can only be bound to a Node, not a {}",
            b.target.kind
        )));
    }
    if b.target.name.is_empty() {
        return Err(Status::invalid(
            "Binding",
            name,
            vec![faultline_api::StatusCause {
                reason: "FieldValueRequired".into(),
                message: "Required value: the node to bind to".into(),
                field: "target.name".into(),
            }],
        ));
    }
    let cur: Pod = ctx.reg.get(ns, name).await?;
    if !b.metadata.uid.is_empty() && b.metadata.uid != cur.metadata.uid {
        return Err(Status::conflict(
            "pods",
            name,
            "the pod's UID does not match the binding",
        ));
    }
    if cur.metadata.deletion_timestamp.is_some() {
        return Err(Status::conflict("pods", name, "the pod is being deleted"));
    }
    if !cur.spec.node_name.is_empty() && !ctx.reg.bugs.unchecked_binding {
        return Err(Status::conflict(
            "pods",
            name,
            &format!(
                "pod {name} is already assigned to node {:?}",
                cur.spec.node_name
            ),
        ));
    }
    let mut next = cur.clone();
    next.spec.node_name = b.target.name.clone();
    next.set_condition("PodScheduled", "True", "", "");
    if let Some(c) = next
        .status
        .conditions
        .iter_mut()
        .find(|c| c.kind == "PodScheduled")
    {
        c.last_transition_time = Some(faultline_api::time::rfc3339(ctx.reg.env.wall_ms()));
    }
    let ok = if ctx.reg.bugs.unchecked_binding {
        ctx.reg.blind_put(ns, name, &next, g).await?;
        true
    } else {
        ctx.reg.swap(ns, name, &cur, &next, g).await?.is_some()
    };
    if !ok {
        return Err(Status::conflict(
            "pods",
            name,
            "the pod changed while binding; it may have been bound by someone else",
        ));
    }
    let mut s = Status::success();
    s.code = 201;
    Ok(json_response(201, &s))
}

fn scale_of(d: &Deployment) -> Scale {
    let mut s = Scale::default();
    s.set_type_meta();
    s.metadata = faultline_api::ObjectMeta {
        name: d.metadata.name.clone(),
        namespace: d.metadata.namespace.clone(),
        uid: d.metadata.uid.clone(),
        resource_version: d.metadata.resource_version.clone(),
        creation_timestamp: d.metadata.creation_timestamp.clone(),
        ..Default::default()
    };
    s.spec.replicas = d.spec.replicas.unwrap_or(1);
    s.status.replicas = d.status.replicas;
    s.status.selector = d
        .spec
        .selector
        .match_labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    s
}

async fn set_scale(
    ctx: &Rc<Ctx>,
    ns: &str,
    name: &str,
    s: Scale,
    g: &Guard,
) -> Result<Response<Body>, Status> {
    if s.spec.replicas < 0 {
        return Err(Status::invalid(
            "Scale",
            name,
            vec![faultline_api::StatusCause {
                reason: "FieldValueInvalid".into(),
                message: format!(
                    "Invalid value: {}: must be greater than or equal to 0",
                    s.spec.replicas
                ),
                field: "spec.replicas".into(),
            }],
        ));
    }
    let mut d: Deployment = ctx.reg.get(ns, name).await?;
    if !s.metadata.resource_version.is_empty() {
        d.metadata.resource_version = s.metadata.resource_version.clone();
    }
    d.spec.replicas = Some(s.spec.replicas);
    let out = ctx
        .reg
        .update(ns, name, d, Part::Main, &|_| Ok(()), g)
        .await?;
    Ok(json_response(200, &scale_of(&out)))
}
