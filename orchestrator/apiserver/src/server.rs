//! The HTTP front: hyper HTTP/1.1 over the environment's network, routing
//! Kubernetes paths to the registry, and watch streams.
//!
//! Routing is written out by hand rather than with axum's router: axum
//! requires `Send` handlers, and everything here is host-local (`Rc`,
//! spawned on the host's task set so a simulated crash drops it).

use std::any::Any;
use std::cell::{OnceCell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use faultline_api::patch::merge_patch;
use faultline_api::selector::{FieldSelector, Selector};
use faultline_api::{
    Binding, Deployment, Endpoints, Event, Lease, List, Namespace, Node, Pod, ReplicaSet, Resource,
    Scale, Service, Status, WatchEvent,
};
use faultline_env::{Env, Listener};
use faultline_store::client::{prefix_end, StoreClient, WatchStream};
use faultline_store::ops::{Event as StoreEvent, EventKind, KeyValue, StoreError};
use http::{header, Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::auth::{authorize, Access, Decision, Tokens, User};
use crate::cacher::{Cacher, Subscription};
use crate::discovery;
use crate::registry::{decode, prefix, Bugs, Guard, Part, Registry, Strategy};

/// How to run one API server.
#[derive(Debug, Clone)]
pub struct ApiServerConfig {
    pub port: u16,
    pub tokens: Tokens,
    pub bugs: Bugs,
    /// Largest request body accepted (Kubernetes: 3 MiB).
    pub max_body: usize,
    /// A watch with `allowWatchBookmarks` gets a bookmark this often.
    pub bookmark_every: Duration,
    /// A watch ends after this long (plus jitter) unless the client asked
    /// for less with `timeoutSeconds`; clients re-watch.
    pub watch_timeout: Duration,
    /// Told the status code of every request answered (the simulator's
    /// reports count requests and errors per second with it, as a
    /// Prometheus scrape of `apiserver_request_total` would).
    pub on_request: Option<RequestObserver>,
}

/// See [`ApiServerConfig::on_request`].
#[derive(Clone)]
pub struct RequestObserver(pub Rc<dyn Fn(u16)>);

impl std::fmt::Debug for RequestObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestObserver")
    }
}

impl ApiServerConfig {
    pub fn new(port: u16, tokens: Tokens) -> ApiServerConfig {
        ApiServerConfig {
            port,
            tokens,
            bugs: Bugs::default(),
            max_body: 3 << 20,
            bookmark_every: Duration::from_secs(5),
            watch_timeout: Duration::from_secs(300),
            on_request: None,
        }
    }
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

struct Ctx {
    reg: Registry,
    cfg: ApiServerConfig,
    /// Shared by every watch this server streams.
    watch_cache: RefCell<WatchCache>,
    /// One store watch per kind, shared by every watch this server streams.
    cacher: Cacher,
}

/// Where a watch's events come from.
enum Source {
    Feed(Subscription),
    /// A watch from a revision older than its kind's feed holds.
    Store(WatchStream),
}

impl Source {
    async fn next(&mut self) -> Option<Result<Vec<Rc<StoreEvent>>, StoreError>> {
        match self {
            Source::Feed(s) => s.next().await,
            Source::Store(s) => Some(
                s.next()
                    .await?
                    .map(|b| b.into_iter().map(Rc::new).collect()),
            ),
        }
    }
}

/// Store events decoded for the watches of one API server.
///
/// Every watch of a kind receives the same store events (from the kind's
/// one store watch, see [`Cacher`]), so without this an event that N
/// watches carry is decoded, turned into JSON for field selectors and
/// serialised N times. Entries are pure functions of the stored bytes and
/// the stamped revision, and a hit is confirmed against the bytes, so the
/// cache changes only the cost, never what a watch sends.
#[derive(Default)]
struct WatchCache {
    entries: BTreeMap<WatchCacheKey, Rc<dyn Any>>,
    /// Insertion order, for evicting the oldest beyond [`WATCH_CACHE_ENTRIES`].
    order: VecDeque<WatchCacheKey>,
}

/// (store key, the value's mod revision, the resourceVersion stamped on it).
type WatchCacheKey = (Vec<u8>, i64, i64);

/// Entries kept: a store event is fanned out to all its watches within a
/// few simulated milliseconds, so a short memory is enough.
const WATCH_CACHE_ENTRIES: usize = 512;

/// One stored value, decoded once, with its derived forms built on demand.
struct Decoded<T> {
    /// The stored bytes it was decoded from (a hit must match them).
    value: Vec<u8>,
    obj: T,
    /// The object as JSON, for field selectors.
    json: OnceCell<Value>,
    /// The serialised watch lines: ADDED, MODIFIED, DELETED.
    lines: [OnceCell<Bytes>; 3],
}

impl<T: Resource> Decoded<T> {
    fn line(&self, kind: &'static str) -> Bytes {
        let i = match kind {
            "ADDED" => 0,
            "MODIFIED" => 1,
            "DELETED" => 2,
            other => unreachable!("no cached watch line of kind {other}"),
        };
        self.lines[i].get_or_init(|| line(kind, &self.obj)).clone()
    }

    fn json(&self) -> &Value {
        self.json
            .get_or_init(|| serde_json::to_value(&self.obj).expect("objects always serialise"))
    }
}

impl WatchCache {
    /// `kv` decoded and stamped with `revision`, from the cache when an
    /// earlier watch already decoded it; `None` if it does not decode.
    fn decode<T: Resource>(&mut self, kv: &KeyValue, revision: i64) -> Option<Rc<Decoded<T>>> {
        let key: WatchCacheKey = (kv.key.clone(), kv.mod_revision, revision);
        if let Some(hit) = self.entries.get(&key) {
            if let Ok(d) = hit.clone().downcast::<Decoded<T>>() {
                if d.value == kv.value {
                    return Some(d);
                }
            }
        }
        let obj = decode::<T>(kv, revision).ok()?;
        let d = Rc::new(Decoded {
            value: kv.value.clone(),
            obj,
            json: OnceCell::new(),
            lines: Default::default(),
        });
        self.entries.insert(key.clone(), d.clone());
        self.order.push_back(key);
        while self.order.len() > WATCH_CACHE_ENTRIES {
            let old = self.order.pop_front().expect("longer than the limit");
            self.entries.remove(&old);
        }
        Some(d)
    }
}

/// Serves the API on `cfg.port` until the host stops.
pub async fn serve(env: Env, cfg: ApiServerConfig, store: Rc<StoreClient>) -> std::io::Result<()> {
    let mut listener: Box<dyn Listener> = env.net().bind(cfg.port).await?;
    let ctx = Rc::new(Ctx {
        reg: Registry {
            env: env.clone(),
            store,
            bugs: cfg.bugs,
        },
        cfg,
        watch_cache: RefCell::new(WatchCache::default()),
        cacher: Cacher::default(),
    });
    env.spawn(bootstrap(ctx.clone()));
    loop {
        let (conn, _peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                env.trace(format_args!("apiserver accept failed: {e}"));
                env.sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let ctx = ctx.clone();
        env.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let ctx = ctx.clone();
                async move {
                    let response = handle(ctx.clone(), req).await;
                    if let Some(observe) = &ctx.cfg.on_request {
                        (observe.0)(response.status().as_u16());
                    }
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                // hyper's Date header reads the machine's wall clock,
                // behind the environment's back.
                .auto_date_header(false)
                .serve_connection(hyper_util::rt::TokioIo::new(conn), service)
                .await;
        });
    }
}

/// The namespaces every cluster has, created by whichever API server gets
/// there first.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

async fn bootstrap(ctx: Rc<Ctx>) {
    for ns in SYSTEM_NAMESPACES {
        loop {
            let obj = Namespace {
                metadata: faultline_api::ObjectMeta::named("", ns),
                ..Default::default()
            };
            match ctx.reg.create("", obj, &Guard::none()).await {
                Ok(_) => break,
                Err(s) if s.code == 409 => break,
                Err(_) => ctx.reg.env.sleep(Duration::from_secs(1)).await,
            }
        }
    }
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

fn json_response(code: u16, v: &impl serde::Serialize) -> Response<Body> {
    let body = serde_json::to_vec(v).expect("responses always serialise");
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(body))
        .expect("a valid response")
}

fn status_response(s: &Status) -> Response<Body> {
    json_response(s.code, s)
}

/// The parsed query string.
struct Query(BTreeMap<String, String>);

impl Query {
    /// Parses `application/x-www-form-urlencoded` pairs separated by `&`
    /// (empty ones skipped): a name without `=` has an empty value, the
    /// last of a repeated name wins; in names and values `+` is a space,
    /// `%XX` a byte, a `%` not followed by two hex digits stays as it is,
    /// and bytes that are not UTF-8 become U+FFFD.
    fn parse(q: Option<&str>) -> Query {
        let mut m = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(q.unwrap_or("").as_bytes()).into_owned() {
            m.insert(k, v);
        }
        Query(m)
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }
    fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("1" | "true"))
    }
}

/// A resource path, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Route {
    group: String,
    version: String,
    namespace: Option<String>,
    plural: String,
    name: Option<String>,
    sub: Option<String>,
}

/// Parses `/api/v1/...` and `/apis/{group}/{version}/...`.
fn route(path: &str) -> Option<Route> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, r @ ..] if !r.is_empty() => (Some(ns.to_string()), r),
        r => (None, r),
    };
    let (plural, name, sub) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(n.to_string()), None),
        [p, n, s] => (*p, Some(n.to_string()), Some(s.to_string())),
        _ => return None,
    };
    if plural.is_empty() || name.as_deref() == Some("") {
        return None;
    }
    Some(Route {
        group: group.to_string(),
        version: version.to_string(),
        namespace,
        plural: plural.to_string(),
        name,
        sub,
    })
}

async fn handle(ctx: Rc<Ctx>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    match path.as_str() {
        "/healthz" | "/livez" => return text(200, "ok"),
        "/readyz" => {
            return match ctx.reg.revision().await {
                Ok(_) => text(200, "ok"),
                Err(s) => text(503, &format!("storage not ready: {}", s.message)),
            };
        }
        _ => {}
    }
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    let user = match ctx.cfg.tokens.authenticate(auth) {
        Ok(u) => u.clone(),
        Err(s) => return status_response(&s),
    };
    match path.trim_end_matches('/') {
        "/api" => return json_response(200, &discovery::core_versions()),
        "/apis" => return json_response(200, &discovery::groups()),
        p => {
            let segs: Vec<&str> = p.trim_matches('/').split('/').collect();
            let gv = match segs.as_slice() {
                ["api", v] => Some(("", *v)),
                ["apis", g, v] => Some((*g, *v)),
                _ => None,
            };
            if let Some((g, v)) = gv {
                return match discovery::resources(g, v) {
                    Some(doc) => json_response(200, &doc),
                    None => status_response(&not_served(&path)),
                };
            }
        }
    }
    let Some(r) = route(&path) else {
        return status_response(&not_served(&path));
    };
    let out = match (r.group.as_str(), r.version.as_str(), r.plural.as_str()) {
        ("", "v1", "namespaces") => resource::<Namespace>(&ctx, &user, req, &r).await,
        ("", "v1", "nodes") => resource::<Node>(&ctx, &user, req, &r).await,
        ("", "v1", "pods") => resource::<Pod>(&ctx, &user, req, &r).await,
        ("", "v1", "services") => resource::<Service>(&ctx, &user, req, &r).await,
        ("", "v1", "endpoints") => resource::<Endpoints>(&ctx, &user, req, &r).await,
        ("", "v1", "events") => resource::<Event>(&ctx, &user, req, &r).await,
        ("apps", "v1", "deployments") => resource::<Deployment>(&ctx, &user, req, &r).await,
        ("apps", "v1", "replicasets") => resource::<ReplicaSet>(&ctx, &user, req, &r).await,
        ("coordination.k8s.io", "v1", "leases") => resource::<Lease>(&ctx, &user, req, &r).await,
        _ => Err(not_served(&path)),
    };
    match out {
        Ok(resp) => resp,
        Err(s) => status_response(&s),
    }
}

fn text(code: u16, body: &str) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(full(body.to_string()))
        .expect("a valid response")
}

fn not_served(path: &str) -> Status {
    Status::failure(
        404,
        "NotFound",
        format!("the server could not find the requested resource ({path})"),
    )
}

fn method_not_allowed(method: &Method, what: &str) -> Status {
    Status::failure(
        405,
        "MethodNotAllowed",
        format!("{method} is not supported on {what}"),
    )
}

/// Reads a request body up to the configured limit.
async fn read_body(ctx: &Ctx, req: Request<Incoming>) -> Result<Bytes, Status> {
    let limited = Limited::new(req.into_body(), ctx.cfg.max_body);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Status::failure(
            413,
            "RequestEntityTooLarge",
            format!("the request body is larger than {} bytes", ctx.cfg.max_body),
        )),
        Err(e) => Err(Status::bad_request(format!(
            "could not read the request body: {e}"
        ))),
    }
}

fn content_type(req: &Request<Incoming>) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// Decodes a request body as a `T`: JSON, the right kind, no unknown fields.
fn decode_body<T: Resource>(body: &[u8]) -> Result<T, Status> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| Status::bad_request(format!("the request body is not valid JSON: {e}")))?;
    check_type::<T>(&v)?;
    serde_json::from_slice(body)
        .map_err(|e| Status::bad_request(format!("strict decoding error for {}: {e}", T::KIND)))
}

fn check_type<T: Resource>(v: &Value) -> Result<(), Status> {
    if !v.is_object() {
        return Err(Status::bad_request(format!(
            "the request body must be a JSON object (a {})",
            T::KIND
        )));
    }
    let kind = v["kind"].as_str().unwrap_or("");
    let api_version = v["apiVersion"].as_str().unwrap_or("");
    if !kind.is_empty() && kind != T::KIND {
        return Err(Status::bad_request(format!(
            "the body is a {kind}, but this resource holds {} objects",
            T::KIND
        )));
    }
    if !api_version.is_empty() && api_version != T::API_VERSION {
        return Err(Status::bad_request(format!(
            "apiVersion {api_version:?} does not serve {}; use {:?}",
            T::KIND,
            T::API_VERSION
        )));
    }
    Ok(())
}

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
        Decision::Allow => None,
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

async fn resource<T: Strategy>(
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
    match verb {
        "list" => {
            let sel = selectors(&query)?;
            let ns_opt = r.namespace.as_deref();
            let (items, rev) = ctx.reg.list::<T>(ns_opt).await?;
            let items: Vec<T> = items.into_iter().filter(|o| sel.matches(o)).collect();
            Ok(json_response(200, &List::new(items, rev)))
        }
        "watch" => watch::<T>(ctx, r.namespace.clone(), &query).await,
        "get" if sub == "scale" => {
            let d: Deployment = ctx.reg.get(&ns, &name).await?;
            Ok(json_response(200, &scale_of(&d)))
        }
        "get" => {
            let obj: T = ctx.reg.get(&ns, &name).await?;
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

fn require_json(ct: &str) -> Result<(), Status> {
    if ct.is_empty() || ct == "application/json" || ct == "*/*" {
        Ok(())
    } else {
        Err(Status::failure(
            415,
            "UnsupportedMediaType",
            format!("the content type {ct:?} is not supported; send application/json"),
        ))
    }
}

/// Label and field selectors of a list or watch.
struct Selectors {
    labels: Option<Selector>,
    fields: Option<FieldSelector>,
}

impl Selectors {
    fn matches<T: Resource>(&self, obj: &T) -> bool {
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
    fn matches_decoded<T: Resource>(&self, d: &Decoded<T>) -> bool {
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

fn selectors(q: &Query) -> Result<Selectors, Status> {
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

/// A streamed response body fed from a channel.
struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

fn line(kind: &str, object: &impl serde::Serialize) -> Bytes {
    let mut v = serde_json::to_vec(&WatchEvent {
        kind: kind.to_string(),
        object,
    })
    .expect("events always serialise");
    v.push(b'\n');
    Bytes::from(v)
}

/// `GET ...?watch=1`: newline-delimited watch events from
/// `resourceVersion` (exclusive; empty or 0 = the current state as ADDED
/// events, then changes), bookmarks if asked for, and an ERROR event with a
/// 410 status when that revision has been compacted.
async fn watch<T: Strategy>(
    ctx: &Rc<Ctx>,
    ns: Option<String>,
    q: &Query,
) -> Result<Response<Body>, Status> {
    let sel = selectors(q)?;
    let from: i64 = match q.get("resourceVersion").unwrap_or("") {
        "" => 0,
        rv => rv
            .parse()
            .map_err(|_| Status::bad_request(format!("resourceVersion {rv:?} is not a number")))?,
    };
    let bookmarks = q.flag("allowWatchBookmarks");
    let env = ctx.reg.env.clone();
    let jitter = Duration::from_millis(rand::RngCore::next_u64(&mut *env.rng()) % 60_000);
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(ctx.cfg.watch_timeout + jitter);
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    // Initial state for a watch from "now".
    let mut initial = Vec::new();
    let start = if from == 0 {
        let (items, rev) = ctx.reg.list::<T>(ns.as_deref()).await?;
        initial = items.into_iter().filter(|o| sel.matches(o)).collect();
        rev + 1
    } else {
        from + 1
    };
    let p = prefix::<T>(ns.as_deref());
    let store: Rc<StoreClient> = ctx.reg.store.clone();
    let every = ctx.cfg.bookmark_every;
    let env2 = env.clone();
    let ctx = ctx.clone();
    env.spawn(async move {
        for o in &initial {
            if tx.send(line("ADDED", o)).await.is_err() {
                return;
            }
        }
        let deadline = env2.now() + timeout;
        let kind = prefix::<T>(None);
        let subscribed = ctx.cacher.subscribe(&env2, &store, &kind, &p, start);
        let mut stream = match subscribed {
            Some(s) => Source::Feed(s),
            None => match store.watch(&p, &prefix_end(&p), start).await {
                Some(s) => Source::Store(s),
                None => return,
            },
        };
        let mut last = start - 1;
        loop {
            let wait = every.min(deadline.saturating_duration_since(env2.now()));
            if wait.is_zero() {
                return;
            }
            let batch = match env2.timeout(wait, stream.next()).await {
                Err(_) => {
                    if bookmarks && last > 0 {
                        let mut o = T::default();
                        o.set_type_meta();
                        o.meta_mut().resource_version = last.to_string();
                        if tx.send(line("BOOKMARK", &o)).await.is_err() {
                            return;
                        }
                    }
                    continue;
                }
                Ok(None) => return,
                Ok(Some(Err(StoreError::Compacted { compact_revision }))) => {
                    let s = Status::gone(format!(
                        "too old resource version: {} ({compact_revision})",
                        start - 1
                    ));
                    let _ = tx.send(line("ERROR", &s)).await;
                    return;
                }
                Ok(Some(Err(e))) => {
                    let s = Status::unavailable(format!("watch ended: {e}"));
                    let _ = tx.send(line("ERROR", &s)).await;
                    return;
                }
                Ok(Some(Ok(events))) => events,
            };
            for ev in batch {
                last = ev.kv.mod_revision;
                let rev = ev.kv.mod_revision;
                let now: Option<Rc<Decoded<T>>> = match ev.kind {
                    EventKind::Put => match ctx.watch_cache.borrow_mut().decode::<T>(&ev.kv, rev) {
                        Some(o) => Some(o),
                        None => continue,
                    },
                    EventKind::Delete => None,
                };
                // Stamped with the event's revision, which is also what a
                // DELETED event built from it must carry.
                let before: Option<Rc<Decoded<T>>> = ev
                    .prev_kv
                    .as_ref()
                    .and_then(|kv| ctx.watch_cache.borrow_mut().decode::<T>(kv, rev));
                let was = before.as_ref().is_some_and(|o| sel.matches_decoded(o));
                let is = now.as_ref().is_some_and(|o| sel.matches_decoded(o));
                let out = match (was, is, now, before) {
                    (_, true, Some(o), _)
                        if ev.kv.create_revision == ev.kv.mod_revision || !was =>
                    {
                        o.line("ADDED")
                    }
                    (_, true, Some(o), _) => o.line("MODIFIED"),
                    (true, false, Some(o), _) => o.line("DELETED"),
                    (true, false, None, Some(o)) => o.line("DELETED"),
                    _ => continue,
                };
                if tx.send(out).await.is_err() {
                    return;
                }
            }
        }
    });
    let body = ChannelBody { rx }.boxed_unsync();
    Ok(Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .expect("a valid response"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_kubernetes_paths() {
        let r = route("/api/v1/namespaces/default/pods/web-1/status").unwrap();
        assert_eq!(
            (r.group.as_str(), r.namespace.as_deref(), r.plural.as_str()),
            ("", Some("default"), "pods")
        );
        assert_eq!(
            (r.name.as_deref(), r.sub.as_deref()),
            (Some("web-1"), Some("status"))
        );
        let r = route("/api/v1/namespaces/default").unwrap();
        assert_eq!(
            (r.plural.as_str(), r.name.as_deref()),
            ("namespaces", Some("default"))
        );
        let r = route("/apis/apps/v1/namespaces/x/deployments").unwrap();
        assert_eq!(
            (r.group.as_str(), r.plural.as_str()),
            ("apps", "deployments")
        );
        let r = route("/api/v1/pods").unwrap();
        assert_eq!((r.namespace, r.plural.as_str()), (None, "pods"));
        assert!(route("/api/v1/namespaces/a/pods/b/c/d").is_none());
        assert!(route("/nope").is_none());
    }

    #[test]
    fn decodes_percent_encoding() {
        let decoded = |raw: &str| Query::parse(Some(&format!("v={raw}"))).0["v"].clone();
        assert_eq!(decoded("app%3Dweb%2Ctier+in+(a)"), "app=web,tier in (a)");
        assert_eq!(decoded("100%"), "100%");
        assert_eq!(decoded("%zz"), "%zz");
        assert_eq!(decoded("%2B+%41%e2%9D%a4%"), "+ A\u{2764}%");
        assert_eq!(decoded("%E2%9D"), "\u{FFFD}");
        // A `%` followed by a sign and one hex digit is no escape.
        assert_eq!(decoded("%+A"), "% A");
    }

    #[test]
    fn splits_the_query_into_pairs() {
        let q = Query::parse(Some("a%3D=1=2&&watch&a%3D=3&x+y=%26"));
        let pairs: Vec<(&str, &str)> = q.0.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(pairs, [("a=", "3"), ("watch", ""), ("x y", "&")]);
        assert!(!q.flag("watch"));
        assert_eq!(q.get("watch"), Some(""));
        assert!(Query::parse(None).0.is_empty());
    }
}
