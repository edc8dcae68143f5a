//! The HTTP front: hyper HTTP/1.1 over the environment's network, routing
//! Kubernetes paths to the registry, and watch streams.
//!
//! Routing is written out by hand rather than with axum's router: axum
//! requires `Send` handlers, and everything here is host-local (`Rc`,
//! spawned on the host's task set so a simulated crash drops it).

use std::convert::Infallible;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use faultline_api::{
    ConfigMap, Deployment, Endpoints, Event, Lease, Namespace, Node, Pod, ReplicaSet, Secret,
    Service,
};
use faultline_env::tls::{TlsClient, TlsServer};
use faultline_env::{Env, Listener};
use faultline_store::client::StoreClient;
use http::{header, Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;

use crate::auth::Tokens;
use crate::cacher::Cacher;
use crate::discovery;
use crate::openapi;
use crate::openapi_v2;
use crate::registry::{Bugs, Guard, Registry};
use respond::{json_response, not_served, status_response, text};
use verbs::resource;

mod logs;
mod respond;
#[cfg(test)]
mod tests;
mod verbs;
mod watch;

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
    /// Serve HTTPS with this certificate (real mode); `None` serves plain
    /// HTTP, as the simulator does (see `faultline_env::tls`).
    pub tls: Option<TlsServer>,
    /// How to reach the nodes' kubelets (`pods/log`): HTTPS with this
    /// client identity (real mode); `None` speaks plain HTTP, as the
    /// simulator's kubelets serve.
    pub kubelet_tls: Option<TlsClient>,
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
            tls: None,
            kubelet_tls: None,
        }
    }
}

/// A client has this long to finish its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

type Body = UnsyncBoxBody<Bytes, Infallible>;

struct Ctx {
    reg: Registry,
    cfg: ApiServerConfig,
    /// One store watch per kind, shared by every watch this server streams.
    cacher: Cacher,
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
        cacher: Cacher::default(),
    });
    env.spawn(bootstrap(ctx.clone()));
    loop {
        let (conn, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                env.trace(format_args!("apiserver accept failed: {e}"));
                env.sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let ctx = ctx.clone();
        env.spawn(async move {
            let conn = match &ctx.cfg.tls {
                None => conn,
                Some(tls) => {
                    let env = &ctx.reg.env;
                    match env.timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(conn)).await {
                        Ok(Ok(c)) => c,
                        Ok(Err(e)) => {
                            env.trace(format_args!("apiserver TLS handshake from {peer}: {e}"));
                            return;
                        }
                        Err(_) => return,
                    }
                }
            };
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

fn wants_aggregated(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(discovery::wants_aggregated)
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
        "/openapi/v2" => {
            let accept = req
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !openapi_v2::wants_protobuf(accept) {
                return json_response(200, openapi_v2::json());
            }
            return Response::builder()
                .header(header::CONTENT_TYPE, openapi_v2::PROTOBUF)
                .body(respond::bytes(openapi_v2::protobuf()))
                .expect("a valid response");
        }
        "/openapi/v3" => return json_response(200, openapi::root()),
        p if p.starts_with("/openapi/v3/") => {
            return match openapi::group_version(&p["/openapi/v3/".len()..]) {
                Some(doc) => json_response(200, doc),
                None => status_response(&not_served(&path)),
            };
        }
        "/api" | "/apis" if wants_aggregated(&req) => {
            let mut resp = json_response(
                200,
                &discovery::aggregated(path.trim_end_matches('/') == "/api"),
            );
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(discovery::AGGREGATED),
            );
            return resp;
        }
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
        ("", "v1", "configmaps") => resource::<ConfigMap>(&ctx, &user, req, &r).await,
        ("", "v1", "secrets") => resource::<Secret>(&ctx, &user, req, &r).await,
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
