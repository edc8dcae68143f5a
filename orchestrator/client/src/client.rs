//! The typed client: one API for every kind, HTTP/1.1 keep-alive
//! connections over the environment's network, failover between API
//! servers, and a timeout on every call.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use faultline_api::{Binding, List, ObjectReference, Resource, Status, WatchEvent};
use faultline_env::tls::TlsClient;
use faultline_env::Env;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use rand::RngCore;
use serde_json::Value;

/// Client tunables.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// API server addresses (`host:port`), tried in turn.
    pub servers: Vec<String>,
    /// Bearer token.
    pub token: String,
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Time allowed for one request, response body included.
    pub request_timeout: Duration,
    /// A watch that hears nothing (not even a bookmark) for this long is
    /// considered cut off.
    pub watch_idle_timeout: Duration,
    /// Header sent with every mutating request so the API server can fence
    /// it (see [`crate::leader`]); set by the elector.
    pub user_agent: String,
    /// Speak HTTPS, verifying servers with this (real mode); `None` speaks
    /// plain HTTP, as in the simulator.
    pub tls: Option<TlsClient>,
}

impl ClientConfig {
    pub fn new(servers: Vec<String>, token: &str) -> ClientConfig {
        ClientConfig {
            servers,
            token: token.to_string(),
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(10),
            watch_idle_timeout: Duration::from_secs(20),
            user_agent: "faultline".into(),
            tls: None,
        }
    }
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// The server answered with an error status.
    #[error("{0}")]
    Status(Status),
    /// No server answered. If `maybe_applied`, a write may have happened.
    #[error("no API server answered ({detail}; maybe applied: {maybe_applied})")]
    Transport { detail: String, maybe_applied: bool },
    /// The answer was not what the API promises.
    #[error("undecodable answer: {0}")]
    Decode(String),
}

impl ApiError {
    /// The HTTP code of a status error.
    pub fn code(&self) -> Option<u16> {
        match self {
            ApiError::Status(s) => Some(s.code),
            _ => None,
        }
    }
    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }
    /// 409: a stale resourceVersion, or AlreadyExists.
    pub fn is_conflict(&self) -> bool {
        self.code() == Some(409)
    }
    pub fn is_already_exists(&self) -> bool {
        matches!(self, ApiError::Status(s) if s.reason == "AlreadyExists")
    }
    pub fn is_gone(&self) -> bool {
        self.code() == Some(410)
    }
}

/// List and watch filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListParams {
    pub label_selector: String,
    pub field_selector: String,
}

impl ListParams {
    pub fn labels(s: &str) -> ListParams {
        ListParams {
            label_selector: s.to_string(),
            ..Default::default()
        }
    }
    pub fn fields(s: &str) -> ListParams {
        ListParams {
            field_selector: s.to_string(),
            ..Default::default()
        }
    }
    fn query(&self) -> String {
        let mut q = Vec::new();
        if !self.label_selector.is_empty() {
            q.push(format!("labelSelector={}", encode(&self.label_selector)));
        }
        if !self.field_selector.is_empty() {
            q.push(format!("fieldSelector={}", encode(&self.field_selector)));
        }
        q.join("&")
    }
}

/// Delete options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteParams {
    /// `Some(0)`: delete now, even a running pod.
    pub grace_period_seconds: Option<i64>,
    /// Only delete this incarnation of the name.
    pub precondition_uid: String,
    pub precondition_resource_version: String,
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The URL path of a kind, an object, or one of its subresources.
pub fn path<T: Resource>(ns: Option<&str>, name: Option<&str>, sub: Option<&str>) -> String {
    let mut p = if T::GROUP.is_empty() {
        "/api/v1".to_string()
    } else {
        format!("/apis/{}", T::API_VERSION)
    };
    if T::NAMESPACED {
        if let Some(ns) = ns {
            p.push_str(&format!("/namespaces/{ns}"));
        }
    }
    p.push('/');
    p.push_str(T::PLURAL);
    if let Some(n) = name {
        p.push('/');
        p.push_str(n);
    }
    if let Some(s) = sub {
        p.push('/');
        p.push_str(s);
    }
    p
}

type Conn = SendRequest<Full<Bytes>>;

struct Inner {
    env: Env,
    cfg: ClientConfig,
    /// Index of the server in use.
    current: Cell<usize>,
    idle: RefCell<BTreeMap<usize, Vec<Conn>>>,
    /// Extra headers on mutating requests (the leader fence).
    fence: RefCell<Option<String>>,
}

/// A client. Cheap to clone; not `Send` (it lives on its host).
#[derive(Clone)]
pub struct Client {
    inner: Rc<Inner>,
}

enum Failure {
    /// Nothing was sent.
    Unreached(String),
    /// Sent, no answer.
    Lost(String),
}

impl Client {
    pub fn new(env: Env, cfg: ClientConfig) -> Client {
        assert!(!cfg.servers.is_empty(), "a client needs API servers");
        let start = env.rng().next_u64() as usize % cfg.servers.len();
        Client {
            inner: Rc::new(Inner {
                env,
                cfg,
                current: Cell::new(start),
                idle: RefCell::new(BTreeMap::new()),
                fence: RefCell::new(None),
            }),
        }
    }

    pub fn env(&self) -> &Env {
        &self.inner.env
    }

    /// A client sharing this one's servers and token whose mutating
    /// requests carry `fence` (see [`crate::leader::Fence`]).
    pub fn fenced(&self, fence: &str) -> Client {
        let c = Client::new(self.inner.env.clone(), self.inner.cfg.clone());
        *c.inner.fence.borrow_mut() = Some(fence.to_string());
        c
    }

    async fn connect(&self, idx: usize) -> Result<Conn, Failure> {
        if let Some(list) = self.inner.idle.borrow_mut().get_mut(&idx) {
            while let Some(c) = list.pop() {
                if !c.is_closed() && c.is_ready() {
                    return Ok(c);
                }
            }
        }
        let env = &self.inner.env;
        let addr = &self.inner.cfg.servers[idx];
        let io = match env
            .timeout(self.inner.cfg.connect_timeout, env.net().connect(addr))
            .await
        {
            Ok(Ok(io)) => io,
            Ok(Err(e)) => return Err(Failure::Unreached(format!("{addr}: {e}"))),
            Err(_) => return Err(Failure::Unreached(format!("{addr}: connect timed out"))),
        };
        let io = match &self.inner.cfg.tls {
            None => io,
            Some(tls) => match env
                .timeout(self.inner.cfg.connect_timeout, tls.connect(addr, io))
                .await
            {
                Ok(Ok(io)) => io,
                Ok(Err(e)) => return Err(Failure::Unreached(format!("{addr}: TLS: {e}"))),
                Err(_) => {
                    return Err(Failure::Unreached(format!(
                        "{addr}: TLS handshake timed out"
                    )))
                }
            },
        };
        let (send, conn) = match env
            .timeout(
                self.inner.cfg.connect_timeout,
                http1::handshake(hyper_util::rt::TokioIo::new(io)),
            )
            .await
        {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => return Err(Failure::Unreached(format!("{addr}: {e}"))),
            Err(_) => return Err(Failure::Unreached(format!("{addr}: handshake timed out"))),
        };
        env.spawn(async move {
            let _ = conn.await;
        });
        Ok(send)
    }

    fn build(
        &self,
        method: &Method,
        path: &str,
        body: &Option<(Vec<u8>, &str)>,
    ) -> Request<Full<Bytes>> {
        let addr = &self.inner.cfg.servers[self.inner.current.get()];
        let mut b = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::HOST, addr.as_str())
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", self.inner.cfg.token),
            )
            .header(header::USER_AGENT, self.inner.cfg.user_agent.as_str())
            .header(header::ACCEPT, "application/json");
        if method != Method::GET {
            if let Some(f) = self.inner.fence.borrow().as_ref() {
                b = b.header("x-faultline-fence", f.as_str());
            }
        }
        let bytes = match body {
            Some((data, ct)) => {
                b = b.header(header::CONTENT_TYPE, *ct);
                Bytes::from(data.clone())
            }
            None => Bytes::new(),
        };
        b.body(Full::new(bytes)).expect("a valid request")
    }

    async fn attempt(
        &self,
        idx: usize,
        method: &Method,
        path: &str,
        body: &Option<(Vec<u8>, &str)>,
    ) -> Result<(StatusCode, Bytes), Failure> {
        let mut conn = self.connect(idx).await?;
        let env = &self.inner.env;
        let req = self.build(method, path, body);
        let fut = async {
            let resp = conn.send_request(req).await.map_err(|e| e.to_string())?;
            let code = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>((code, bytes))
        };
        match env.timeout(self.inner.cfg.request_timeout, fut).await {
            Ok(Ok(r)) => {
                if !conn.is_closed() {
                    self.inner
                        .idle
                        .borrow_mut()
                        .entry(idx)
                        .or_default()
                        .push(conn);
                }
                Ok(r)
            }
            Ok(Err(e)) => Err(Failure::Lost(e)),
            Err(_) => Err(Failure::Lost("request timed out".into())),
        }
    }

    /// Sends one request, failing over between servers. Idempotent
    /// requests are retried after a lost answer; a `POST` only when it
    /// never left.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
    ) -> Result<Bytes, ApiError> {
        let n = self.inner.cfg.servers.len();
        let idempotent = method != Method::POST;
        let mut last = String::new();
        for round in 0..(2 * n) {
            let idx = self.inner.current.get();
            match self.attempt(idx, &method, path, &body).await {
                Ok((code, bytes)) if code.is_success() => return Ok(bytes),
                Ok((code, bytes)) => {
                    let status: Status = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                        Status::failure(
                            code.as_u16(),
                            code.canonical_reason().unwrap_or("Error"),
                            String::from_utf8_lossy(&bytes).into_owned(),
                        )
                    });
                    // A server whose storage is unreachable: another one may do.
                    if status.code == 503 && round + 1 < 2 * n {
                        last = status.message.clone();
                        self.rotate(idx);
                        continue;
                    }
                    return Err(ApiError::Status(status));
                }
                Err(Failure::Unreached(e)) => {
                    last = e;
                    self.rotate(idx);
                    self.pause(round).await;
                }
                Err(Failure::Lost(e)) if idempotent => {
                    last = e;
                    self.rotate(idx);
                }
                Err(Failure::Lost(e)) => {
                    self.rotate(idx);
                    return Err(ApiError::Transport {
                        detail: e,
                        maybe_applied: true,
                    });
                }
            }
        }
        Err(ApiError::Transport {
            detail: last,
            maybe_applied: idempotent && method != Method::GET,
        })
    }

    fn rotate(&self, from: usize) {
        if self.inner.current.get() == from {
            self.inner
                .current
                .set((from + 1) % self.inner.cfg.servers.len());
        }
    }

    async fn pause(&self, round: usize) {
        let ms = (50u64 << round.min(4)).min(500);
        let jitter = self.inner.env.rng().next_u64() % (ms / 2 + 1);
        self.inner
            .env
            .sleep(Duration::from_millis(ms / 2 + jitter))
            .await;
    }

    async fn typed<R: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
    ) -> Result<R, ApiError> {
        let bytes = self.request(method, path, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| ApiError::Decode(format!("{path}: {e}")))
    }

    fn json<T: serde::Serialize>(obj: &T) -> Option<(Vec<u8>, &'static str)> {
        Some((
            serde_json::to_vec(obj).expect("objects always serialise"),
            "application/json",
        ))
    }

    pub async fn get<T: Resource>(&self, ns: &str, name: &str) -> Result<T, ApiError> {
        self.typed(Method::GET, &path::<T>(Some(ns), Some(name), None), None)
            .await
    }

    /// Lists in `ns`, or in every namespace with `None`.
    pub async fn list<T: Resource>(
        &self,
        ns: Option<&str>,
        params: &ListParams,
    ) -> Result<List<T>, ApiError> {
        let mut p = path::<T>(ns, None, None);
        let q = params.query();
        if !q.is_empty() {
            p = format!("{p}?{q}");
        }
        self.typed(Method::GET, &p, None).await
    }

    pub async fn create<T: Resource>(&self, obj: &T) -> Result<T, ApiError> {
        let ns = obj.meta().namespace.clone();
        self.typed(
            Method::POST,
            &path::<T>(Some(&ns), None, None),
            Self::json(obj),
        )
        .await
    }

    /// `PUT` with the object's resourceVersion: 409 if it changed since.
    pub async fn update<T: Resource>(&self, obj: &T) -> Result<T, ApiError> {
        let m = obj.meta();
        self.typed(
            Method::PUT,
            &path::<T>(Some(&m.namespace), Some(&m.name), None),
            Self::json(obj),
        )
        .await
    }

    /// `PUT .../status` with the object's resourceVersion.
    pub async fn update_status<T: Resource>(&self, obj: &T) -> Result<T, ApiError> {
        let m = obj.meta();
        self.typed(
            Method::PUT,
            &path::<T>(Some(&m.namespace), Some(&m.name), Some("status")),
            Self::json(obj),
        )
        .await
    }

    /// JSON merge patch of the object (or its status with `status = true`).
    pub async fn patch<T: Resource>(
        &self,
        ns: &str,
        name: &str,
        patch: &Value,
        status: bool,
    ) -> Result<T, ApiError> {
        let body = serde_json::to_vec(patch).expect("JSON serialises");
        self.typed(
            Method::PATCH,
            &path::<T>(Some(ns), Some(name), status.then_some("status")),
            Some((body, "application/merge-patch+json")),
        )
        .await
    }

    /// Deletes; returns the object as deleted (or as marked for graceful
    /// deletion).
    pub async fn delete<T: Resource>(
        &self,
        ns: &str,
        name: &str,
        params: &DeleteParams,
    ) -> Result<T, ApiError> {
        let mut opts = serde_json::json!({"kind": "DeleteOptions", "apiVersion": "v1"});
        if let Some(g) = params.grace_period_seconds {
            opts["gracePeriodSeconds"] = g.into();
        }
        if !params.precondition_uid.is_empty() {
            opts["preconditions"]["uid"] = params.precondition_uid.clone().into();
        }
        if !params.precondition_resource_version.is_empty() {
            opts["preconditions"]["resourceVersion"] =
                params.precondition_resource_version.clone().into();
        }
        self.typed(
            Method::DELETE,
            &path::<T>(Some(ns), Some(name), None),
            Self::json(&opts),
        )
        .await
    }

    /// Binds a pod (of uid `uid`) to `node`.
    pub async fn bind(&self, ns: &str, name: &str, uid: &str, node: &str) -> Result<(), ApiError> {
        let mut b = Binding::default();
        b.set_type_meta();
        b.metadata = faultline_api::ObjectMeta {
            name: name.to_string(),
            namespace: ns.to_string(),
            uid: uid.to_string(),
            ..Default::default()
        };
        b.target = ObjectReference {
            kind: "Node".into(),
            name: node.to_string(),
            ..Default::default()
        };
        let p = path::<faultline_api::Pod>(Some(ns), Some(name), Some("binding"));
        self.request(Method::POST, &p, Self::json(&b))
            .await
            .map(|_| ())
    }

    /// Sets a deployment's replicas through its scale subresource.
    pub async fn scale(
        &self,
        ns: &str,
        name: &str,
        replicas: i32,
    ) -> Result<faultline_api::Scale, ApiError> {
        let p = path::<faultline_api::Deployment>(Some(ns), Some(name), Some("scale"));
        let body = serde_json::json!({"spec": {"replicas": replicas}});
        self.typed(
            Method::PATCH,
            &p,
            Some((
                serde_json::to_vec(&body).expect("serialises"),
                "application/merge-patch+json",
            )),
        )
        .await
    }

    /// Opens a watch from `resource_version` (exclusive) at the current
    /// server. The stream ends when the server or the connection does.
    pub async fn watch<T: Resource>(
        &self,
        ns: Option<&str>,
        params: &ListParams,
        resource_version: &str,
    ) -> Result<WatchStream<T>, ApiError> {
        let mut p = format!(
            "{}?watch=1&allowWatchBookmarks=true&resourceVersion={}",
            path::<T>(ns, None, None),
            encode(resource_version)
        );
        let q = params.query();
        if !q.is_empty() {
            p = format!("{p}&{q}");
        }
        let idx = self.inner.current.get();
        let transport = |detail: String| ApiError::Transport {
            detail,
            maybe_applied: false,
        };
        let mut conn = match self.connect(idx).await {
            Ok(c) => c,
            Err(Failure::Unreached(e) | Failure::Lost(e)) => {
                self.rotate(idx);
                return Err(transport(e));
            }
        };
        let req = self.build(&Method::GET, &p, &None);
        let env = &self.inner.env;
        let resp = match env
            .timeout(self.inner.cfg.request_timeout, conn.send_request(req))
            .await
        {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                self.rotate(idx);
                return Err(transport(e.to_string()));
            }
            Err(_) => {
                self.rotate(idx);
                return Err(transport("watch request timed out".into()));
            }
        };
        if !resp.status().is_success() {
            let code = resp.status();
            let bytes = env
                .timeout(self.inner.cfg.request_timeout, resp.into_body().collect())
                .await
                .ok()
                .and_then(|r| r.ok())
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let status: Status = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                Status::failure(code.as_u16(), "Error", String::from_utf8_lossy(&bytes))
            });
            if status.code == 503 {
                self.rotate(idx);
            }
            return Err(ApiError::Status(status));
        }
        Ok(WatchStream {
            env: env.clone(),
            body: resp.into_body(),
            buf: BytesMut::new(),
            idle: self.inner.cfg.watch_idle_timeout,
            _conn: conn,
            _t: std::marker::PhantomData,
        })
    }
}

/// One item of a watch.
#[derive(Debug, Clone)]
pub enum WatchItem<T> {
    Added(T),
    Modified(T),
    Deleted(T),
    /// Nothing changed up to this resourceVersion.
    Bookmark(String),
    /// The server ended the watch (410: the revision was compacted; relist).
    Error(Status),
}

/// A watch's events, one at a time.
pub struct WatchStream<T> {
    env: Env,
    body: Incoming,
    buf: BytesMut,
    idle: Duration,
    _conn: Conn,
    _t: std::marker::PhantomData<T>,
}

impl<T: Resource> WatchStream<T> {
    /// The next event; `None` when the stream ended, broke or went silent.
    pub async fn next(&mut self) -> Option<WatchItem<T>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line = self.buf.split_to(pos + 1);
                let text = &line[..pos];
                if text.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some(self.parse(text));
            }
            let frame = match self.env.timeout(self.idle, self.body.frame()).await {
                Ok(Some(Ok(f))) => f,
                _ => return None,
            };
            if let Ok(mut data) = frame.into_data() {
                while data.has_remaining() {
                    let chunk = data.chunk();
                    self.buf.extend_from_slice(chunk);
                    let n = chunk.len();
                    data.advance(n);
                }
            }
        }
    }

    fn parse(&self, text: &[u8]) -> WatchItem<T> {
        let bad = |e: String| {
            WatchItem::Error(Status::failure(
                500,
                "InternalError",
                format!("bad watch event: {e}"),
            ))
        };
        let ev: WatchEvent<Value> = match serde_json::from_slice(text) {
            Ok(e) => e,
            Err(e) => return bad(e.to_string()),
        };
        match ev.kind.as_str() {
            "BOOKMARK" => WatchItem::Bookmark(
                ev.object["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            ),
            "ERROR" => WatchItem::Error(serde_json::from_value(ev.object).unwrap_or_else(|e| {
                Status::failure(500, "InternalError", format!("bad watch error: {e}"))
            })),
            kind => match serde_json::from_value::<T>(ev.object) {
                Ok(o) => match kind {
                    "ADDED" => WatchItem::Added(o),
                    "MODIFIED" => WatchItem::Modified(o),
                    "DELETED" => WatchItem::Deleted(o),
                    other => bad(format!("unknown event type {other:?}")),
                },
                Err(e) => bad(e.to_string()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_api::{Deployment, Node, Pod};

    #[test]
    fn paths_follow_kubernetes() {
        assert_eq!(
            path::<Pod>(Some("default"), None, None),
            "/api/v1/namespaces/default/pods"
        );
        assert_eq!(path::<Pod>(None, None, None), "/api/v1/pods");
        assert_eq!(
            path::<Node>(Some("x"), Some("n1"), Some("status")),
            "/api/v1/nodes/n1/status"
        );
        assert_eq!(
            path::<Deployment>(Some("a"), Some("web"), Some("scale")),
            "/apis/apps/v1/namespaces/a/deployments/web/scale"
        );
        assert_eq!(
            encode("app=web,x in (a b)"),
            "app%3Dweb%2Cx%20in%20%28a%20b%29"
        );
    }
}
