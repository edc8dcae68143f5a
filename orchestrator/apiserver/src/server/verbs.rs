//! The verbs on a resource: get, list, create, update, patch, delete, bind and scale, with the node restriction and selectors.

use std::rc::Rc;

use faultline_api::decode::FieldValidation;
use faultline_api::patch::PatchType;
use faultline_api::selector::{FieldSelector, Selector};
use faultline_api::{Binding, Deployment, List, Pod, Resource, Scale, Status};
use http::{Method, Request, Response};
use hyper::body::Incoming;
use serde_json::Value;

use super::respond::{
    content_type, decode_body, decode_value, json_response, method_not_allowed, not_served,
    read_body, require_json, with_warnings, Query,
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
        Decision::Allow | Decision::IfNamed(_) | Decision::IfUsedOnNode(_) => None,
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

/// Allows a node to read Secret or ConfigMap `ns/name` (`plural`) only
/// when a pod bound to it uses it.
async fn used_on_node(
    ctx: &Rc<Ctx>,
    user: &User,
    ns: &str,
    name: &str,
    plural: &str,
    node: &str,
) -> Result<(), Status> {
    let (pods, _) = ctx.reg.list::<faultline_api::Pod>(Some(ns)).await?;
    let used = pods.iter().filter(|p| p.spec.node_name == node).any(|p| {
        let spec = serde_json::to_value(&p.spec).expect("pods always serialise");
        crate::auth::pod_uses(&spec, plural, name)
    });
    if used {
        return Ok(());
    }
    Err(Status::forbidden(format!(
        "User {:?} cannot get resource {plural:?} named {name:?} in namespace {ns:?}: \
         no relationship found between node {node:?} and this object",
        user.name
    )))
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
    let fv = FieldValidation::parse(query.get("fieldValidation")).map_err(Status::bad_request)?;
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
        ("log", "pods") if verb == "get" => {
            return super::logs::pod_log(ctx, &ns, &name, &query).await
        }
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
        table::table(T::KIND, &objs, &rv, include, now_ms)
    };
    match verb {
        "list" => {
            let sel = selectors(&query, T::KIND)?;
            let ns_opt = r.namespace.as_deref();
            let limit = match query.get("limit").filter(|l| !l.is_empty()) {
                None => 0,
                Some(l) => l.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                    Status::bad_request(format!("limit must be a non-negative integer, not {l:?}"))
                })?,
            };
            let from = match query.get("continue").filter(|c| !c.is_empty()) {
                Some(c) => Some(paging::decode(c)?),
                None => None,
            };
            let (items, rev, next) = if limit == 0 && from.is_none() {
                let (items, rev) = ctx.reg.list::<T>(ns_opt).await?;
                let items: Vec<T> = items.into_iter().filter(|o| sel.matches(o)).collect();
                (items, rev, None)
            } else {
                let limit = if limit == 0 { i64::MAX } else { limit };
                let keep = |o: &T| sel.matches(o);
                let page = ctx.reg.list_page::<T>(ns_opt, limit, from, &keep).await?;
                (page.items, page.revision, page.next)
            };
            let token = next.map(|start| paging::encode(rev, &start));
            if as_table {
                let mut t = as_rows(&items, rev.to_string());
                if let Some(tok) = token {
                    t["metadata"]["continue"] = Value::String(tok);
                }
                return Ok(json_response(200, &t));
            }
            let mut list = List::new(items, rev);
            list.metadata.continue_ = token.unwrap_or_default();
            Ok(json_response(200, &list))
        }
        "watch" => watch::<T>(ctx, r.namespace.clone(), &query).await,
        "get" if sub == "scale" => {
            let d: Deployment = ctx.reg.get(&ns, &name).await?;
            Ok(json_response(200, &scale_of(&d)))
        }
        "get" => {
            if let Decision::IfUsedOnNode(node) = &decision {
                used_on_node(ctx, user, &ns, &name, T::PLURAL, node).await?;
            }
            let obj: T = ctx.reg.get(&ns, &name).await?;
            if as_table {
                let rv = obj.meta().resource_version.clone();
                return Ok(json_response(200, &as_rows(std::slice::from_ref(&obj), rv)));
            }
            Ok(json_response(200, &obj))
        }
        "create" if sub == "binding" => {
            let body = read_body(ctx, req).await?;
            let (b, warnings) = decode_body::<Binding>(&body, fv)?;
            Ok(with_warnings(bind(ctx, &ns, &name, b, g).await?, &warnings))
        }
        "create" => {
            require_json(&content_type(&req))?;
            let body = read_body(ctx, req).await?;
            let (obj, warnings) = decode_body::<T>(&body, fv)?;
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
            Ok(with_warnings(json_response(201, &created), &warnings))
        }
        "update" if sub == "scale" => {
            require_json(&content_type(&req))?;
            let body = read_body(ctx, req).await?;
            let (s, warnings) = decode_body::<Scale>(&body, fv)?;
            Ok(with_warnings(
                set_scale(ctx, &ns, &name, s, g).await?,
                &warnings,
            ))
        }
        "update" => {
            require_json(&content_type(&req))?;
            let body = read_body(ctx, req).await?;
            let (obj, warnings) = decode_body::<T>(&body, fv)?;
            let out = ctx.reg.update(&ns, &name, obj, part, &check, g).await?;
            Ok(with_warnings(json_response(200, &out), &warnings))
        }
        "patch" => {
            let ct = content_type(&req);
            let Some(kind) = PatchType::from_content_type(&ct) else {
                return Err(Status::failure(
                    415,
                    "UnsupportedMediaType",
                    format!(
                        "the patch content type {ct:?} is not supported; use \
                         application/merge-patch+json, application/strategic-merge-patch+json \
                         or application/json-patch+json (server-side apply is not served)"
                    ),
                ));
            };
            let body = read_body(ctx, req).await?;
            let body: Value = serde_json::from_slice(&body)
                .map_err(|e| Status::bad_request(format!("the patch is not valid JSON: {e}")))?;
            if sub == "scale" {
                let d: Deployment = ctx.reg.get(&ns, &name).await?;
                let mut s = serde_json::to_value(scale_of(&d)).expect("serialises");
                kind.apply(&mut s, &body).map_err(Status::bad_request)?;
                let (s, warnings) = decode_value::<Scale>(s, fv)?;
                let out = set_scale(ctx, &ns, &name, s, g).await?;
                return Ok(with_warnings(out, &warnings));
            }
            let how = Patching {
                kind,
                patch: &body,
                fv,
            };
            patch::<T>(ctx, &ns, &name, &how, part, &check, g).await
        }
        "delete" => {
            let body = read_body(ctx, req).await?;
            delete::<T>(ctx, &ns, &name, &query, &body, &check, g).await
        }
        _ => Err(method_not_allowed(&method, r.plural.as_str())),
    }
}

/// The `continue` token of a paged list: where the next page starts and
/// the revision every page is read at, as kube-apiserver's (base64 of
/// `{"v": "meta.k8s.io/v1", "rv": ..., "start": ...}`). Opaque to clients.
mod paging {
    use base64::engine::general_purpose::URL_SAFE;
    use base64::Engine;
    use faultline_api::Status;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    struct Token {
        v: String,
        rv: i64,
        start: String,
    }

    pub(super) fn encode(rev: i64, start: &[u8]) -> String {
        let t = Token {
            v: "meta.k8s.io/v1".into(),
            rv: rev,
            start: String::from_utf8_lossy(start).into_owned(),
        };
        URL_SAFE.encode(serde_json::to_vec(&t).expect("a token serialises"))
    }

    /// The revision and the first key (after the kind's prefix) of the
    /// page a token names.
    pub(super) fn decode(token: &str) -> Result<(i64, Vec<u8>), Status> {
        let bad = |why: &str| Status::bad_request(format!("invalid continue token: {why}"));
        let raw = URL_SAFE.decode(token).map_err(|_| bad("not base64"))?;
        let t: Token = serde_json::from_slice(&raw).map_err(|_| bad("not a continue token"))?;
        if t.v != "meta.k8s.io/v1" || t.rv <= 0 {
            return Err(bad("not a continue token of this server"));
        }
        Ok((t.rv, t.start.into_bytes()))
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

    /// [`Selectors::matches`] on a decoded object: fields the kind reads
    /// typed (pods' `spec.nodeName`, say) without JSON, others from its
    /// JSON form, built once per object.
    pub(super) fn matches_decoded<T: Strategy>(&self, d: &Decoded<T>) -> bool {
        if let Some(l) = &self.labels {
            if !l.matches(&d.obj.meta().labels) {
                return false;
            }
        }
        match &self.fields {
            Some(f) => f.matches(|path| {
                d.obj
                    .field(path)
                    .or_else(|| faultline_api::selector::field_value(d.json(), path))
            }),
            None => true,
        }
    }

    /// The value a `field=value` term of the field selector pins `field`
    /// to, if any.
    pub(super) fn exact_field(&self, field: &str) -> Option<String> {
        self.fields.as_ref()?.exact(field).map(str::to_string)
    }
}

/// The label and field selectors of a list or watch of `kind`.
pub(super) fn selectors(q: &Query, kind: &str) -> Result<Selectors, Status> {
    let labels = match q.get("labelSelector").filter(|s| !s.is_empty()) {
        Some(s) => Some(Selector::parse(s).map_err(|e| {
            Status::bad_request(format!("unable to parse labelSelector {s:?}: {e}"))
        })?),
        None => None,
    };
    let fields = match q.get("fieldSelector").filter(|s| !s.is_empty()) {
        Some(s) => Some(
            FieldSelector::parse_with(s, faultline_api::selector::fields_for(kind)).map_err(
                |e| Status::bad_request(format!("unable to parse fieldSelector {s:?}: {e}")),
            )?,
        ),
        None => None,
    };
    Ok(Selectors { labels, fields })
}

/// A `PATCH` request's body (parsed) and how to apply it.
struct Patching<'a> {
    kind: PatchType,
    patch: &'a Value,
    fv: FieldValidation,
}

/// Applies a patch to the current object and writes the result with a
/// compare-and-swap, again on a conflict — unless the patch names the
/// resourceVersion it was made against, which then must still hold.
async fn patch<T: Strategy>(
    ctx: &Rc<Ctx>,
    ns: &str,
    name: &str,
    how: &Patching<'_>,
    part: Part,
    check: &dyn Fn(&T) -> Result<(), Status>,
    g: &Guard,
) -> Result<Response<Body>, Status> {
    let pinned = how.patch["metadata"]["resourceVersion"].as_str().is_some();
    for _ in 0..5 {
        let cur: T = ctx.reg.get(ns, name).await?;
        let mut v = serde_json::to_value(&cur).expect("objects always serialise");
        how.kind
            .apply(&mut v, how.patch)
            .map_err(Status::bad_request)?;
        let (next, warnings) = decode_value::<T>(v, how.fv)?;
        match ctx.reg.update(ns, name, next, part, check, g).await {
            Err(s) if s.reason == "Conflict" && !pinned => continue,
            Err(s) => return Err(s),
            Ok(out) => return Ok(with_warnings(json_response(200, &out), &warnings)),
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
        if T::PLURAL == "namespaces" {
            if super::SYSTEM_NAMESPACES.contains(&name) {
                return Err(Status::forbidden(format!(
                    "namespaces {name:?} is forbidden: this namespace may not be deleted"
                )));
            }
            // A namespace goes in two steps, as in Kubernetes: marked
            // Terminating (no new content; the controller manager deletes
            // what is in it), then removed once it is empty.
            if cur.meta().deletion_timestamp.is_some() {
                if !ctx.reg.namespace_is_empty(name).await? {
                    return Ok(json_response(200, &cur));
                }
            } else {
                let mut v = serde_json::to_value(&cur).expect("objects always serialise");
                v["metadata"]["deletionTimestamp"] =
                    Value::String(faultline_api::time::rfc3339(ctx.reg.env.wall_ms()));
                v["status"]["phase"] = Value::String("Terminating".into());
                let next: T = serde_json::from_value(v).expect("a namespace stays a namespace");
                match ctx.reg.swap(ns, name, &cur, &next, g).await? {
                    Some(rev) => {
                        let mut next = next;
                        next.meta_mut().resource_version = rev.to_string();
                        return Ok(json_response(200, &next));
                    }
                    None => continue,
                }
            }
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
