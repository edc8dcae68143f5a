//! Forwarding one request to a ready endpoint of a Service, with at most
//! one retry, and the idle upstream connections kept per endpoint.
//!
//! An attempt either reuses an idle keep-alive connection of the picked
//! endpoint or connects (under `connect_timeout`); sending the request and
//! reading the whole response share one `upstream_timeout`. How an attempt
//! fails decides the rest:
//!
//! | failure                                   | cooldown | retried when            | status |
//! |-------------------------------------------|----------|-------------------------|--------|
//! | connect refused, unreachable or timed out | yes      | always (nothing sent)   | 502 / 504 |
//! | connection closed before the request left | if fresh | always (nothing sent)   | 502    |
//! | connection lost after sending             | if fresh | idempotent method       | 502    |
//! | no response within `upstream_timeout`     | yes      | idempotent method       | 504    |
//! | endpoint stalled (idempotent first try)   | yes      | idempotent method       | 504    |
//! | response head arrived, body failed        | no       | never                   | 502 / 504 |
//!
//! "Stalled": the first attempt of an idempotent request is abandoned once
//! its endpoint has answered nobody for `endpoint_stall_timeout` while it
//! waited (see `table`) and another endpoint is healthy, and is retried
//! there. A request on a pooled connection into a network partition
//! otherwise hangs for the whole `upstream_timeout`, which an external
//! load balancer's users do not wait for (the balancer then takes the
//! whole node out). A merely slow endpoint keeps answering other requests
//! and is not abandoned; one that is slow and otherwise idle is — raise
//! the stall timeout for such services.
//!
//! "If fresh": a pooled connection that turns out dead says nothing about
//! the endpoint (the server may simply have closed an idle connection), so
//! it does not cool the endpoint down. A retry goes to another endpoint,
//! preferably one that did not fail last and sits on another node (see
//! `Backends::pick`); when there is none and the failure was such a dead
//! pooled connection, it goes to the same endpoint over a fresh one.
//!
//! Bodies are buffered, within `max_body_bytes`: the request body because a
//! retry must be able to send it again, the response body because the
//! upstream connection goes back to the pool only once its response is
//! complete (and the answer's status must reflect an upstream that fails
//! mid-body). Hop-by-hop headers (RFC 9110 §7.6.1) are dropped both ways:
//! a client's `Connection: close` must not close a pooled upstream
//! connection, nor an upstream's its client's. (Ten lines, hand-written:
//! neither hyper nor the workspace's crates offer it, and a proxy crate
//! would bring its own client and spawning.)
//!
//! The pool is a `Vec` per endpoint (inside the routing table's per-endpoint
//! state), used last in, first out; hand-written because hyper-util's pooled
//! client spawns its connection tasks through an executor and resolves
//! names itself, where ours must dial through `Env::net` and spawn through
//! `Env::spawn`, and because the pool must be dropped with its endpoint.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use faultline_env::Env;
use http::header::{
    HeaderName, HeaderValue, CONNECTION, CONTENT_TYPE, EXPECT, PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body, Incoming};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use crate::table::{Backends, Pick};
use crate::ProxyConfig;

/// The header naming the node whose proxy answered.
pub const NODE_HEADER: HeaderName = HeaderName::from_static("x-faultline-node");

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// What the proxy sends upstream and answers with.
pub(crate) type ProxyBody = Full<Bytes>;
type Sender = SendRequest<ProxyBody>;
type UpstreamRequest = Request<ProxyBody>;

/// The idle keep-alive connections to one endpoint, most recently used
/// last, each with the time it became idle.
#[derive(Default)]
pub(crate) struct Pool {
    idle: Vec<(Sender, Instant)>,
}

/// How an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// No connection: refused, unreachable, or `connect_timeout` passed.
    Connect { timed_out: bool },
    /// The connection closed before the request was written.
    NotSent { pooled: bool },
    /// The request was (maybe partly) written, then the connection failed
    /// before a response head arrived.
    Lost { pooled: bool },
    /// No response head within `upstream_timeout`.
    Timeout,
    /// Abandoned: the endpoint answered nobody for the stall timeout while
    /// this (idempotent, retryable) request waited.
    Stalled,
    /// A response head arrived; its body failed, was too large or late.
    Body { timed_out: bool },
}

impl Failure {
    /// Whether the endpoint itself looks unhealthy.
    fn cools_down(self) -> bool {
        match self {
            Failure::Connect { .. } | Failure::Timeout | Failure::Stalled => true,
            Failure::NotSent { pooled } | Failure::Lost { pooled } => !pooled,
            Failure::Body { .. } => false,
        }
    }

    /// Whether another attempt is allowed: before any response, and either
    /// nothing was sent or sending twice is harmless.
    fn retryable(self, idempotent: bool) -> bool {
        match self {
            Failure::Connect { .. } | Failure::NotSent { .. } => true,
            Failure::Lost { .. } | Failure::Timeout | Failure::Stalled => idempotent,
            Failure::Body { .. } => false,
        }
    }

    /// A reused connection that was dead: the endpoint may be fine.
    fn dead_pooled(self) -> bool {
        matches!(
            self,
            Failure::NotSent { pooled: true } | Failure::Lost { pooled: true }
        )
    }

    fn answer(self) -> (StatusCode, &'static [u8]) {
        match self {
            Failure::Connect { timed_out: true }
            | Failure::Timeout
            | Failure::Stalled
            | Failure::Body { timed_out: true } => {
                (StatusCode::GATEWAY_TIMEOUT, b"upstream timed out\n")
            }
            _ => (StatusCode::BAD_GATEWAY, b"upstream failed\n"),
        }
    }
}

/// RFC 9110 §9.2.2.
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// The hop-by-hop headers (besides those `Connection` lists).
const HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
];

/// Drops the headers that describe one connection, not the message.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Usually there are none: one pass over a handful of names beats nine
    // hash lookups.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    if headers.contains_key(CONNECTION) {
        // Headers the sender listed in `Connection` are hop-by-hop too.
        let listed: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        for name in listed {
            headers.remove(name);
        }
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// A short plain-text answer from the proxy itself. `close` asks hyper to
/// close the connection after it (the request was not read to its end).
pub(crate) fn reply(
    status: StatusCode,
    body: &'static [u8],
    close: bool,
    node: Option<&HeaderValue>,
) -> Response<ProxyBody> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body)));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    if close {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    if let Some(node) = node {
        headers.insert(NODE_HEADER, node.clone());
    }
    resp
}

/// Forwards the requests of one listener to its backends.
pub(crate) struct Forwarder {
    env: Env,
    cfg: Rc<ProxyConfig>,
    backends: Rc<RefCell<Backends<Pool>>>,
    /// `x-faultline-node`, built once.
    node: HeaderValue,
}

impl Forwarder {
    pub(crate) fn new(
        env: Env,
        cfg: Rc<ProxyConfig>,
        backends: Rc<RefCell<Backends<Pool>>>,
        node: HeaderValue,
    ) -> Forwarder {
        Forwarder {
            env,
            cfg,
            backends,
            node,
        }
    }

    fn reply(&self, status: StatusCode, body: &'static [u8], close: bool) -> Response<ProxyBody> {
        reply(status, body, close, Some(&self.node))
    }

    /// Answers one client request.
    pub(crate) async fn forward(&self, req: Request<Incoming>) -> Response<ProxyBody> {
        let (mut parts, body) = req.into_parts();
        if parts.method == Method::CONNECT {
            return self.reply(
                StatusCode::METHOD_NOT_ALLOWED,
                b"CONNECT is not supported\n",
                true,
            );
        }
        let body = match self.read_body(body).await {
            Ok(body) => body,
            Err(answer) => return answer,
        };
        strip_hop_by_hop(&mut parts.headers);
        // The whole body is in hand: the upstream need not ask for it.
        parts.headers.remove(EXPECT);
        if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
            parts.uri = parts
                .uri
                .path_and_query()
                .map(|pq| Uri::from(pq.clone()))
                .unwrap_or_else(|| Uri::from_static("/"));
        }
        parts.version = Version::HTTP_11;
        let first = self.backends.borrow_mut().pick(self.env.now(), None);
        let Some(first) = first else {
            return self.reply(
                StatusCode::SERVICE_UNAVAILABLE,
                b"no ready endpoints\n",
                false,
            );
        };
        let idempotent = is_idempotent(&parts.method);
        // A request that was sent cannot be taken back from hyper: keep a
        // copy when a retry after sending is allowed at all.
        let spare = idempotent.then(|| {
            let mut copy = Request::new(Full::new(body.clone()));
            *copy.method_mut() = parts.method.clone();
            *copy.uri_mut() = parts.uri.clone();
            *copy.version_mut() = parts.version;
            *copy.headers_mut() = parts.headers.clone();
            copy
        });
        let req = Request::from_parts(parts, Full::new(body));
        let (failure, returned) = match self.attempt(&first, req, false, idempotent).await {
            Ok(resp) => return resp,
            Err(e) => e,
        };
        let (status, text) = failure.answer();
        if !failure.retryable(idempotent) {
            return self.reply(status, text, false);
        }
        let Some(req) = returned.or(spare) else {
            return self.reply(status, text, false);
        };
        let retry = {
            let mut backends = self.backends.borrow_mut();
            let now = self.env.now();
            match backends.pick(now, Some(&first)) {
                Some(pick) => Some((pick, false)),
                None if failure.dead_pooled() => backends.pick(now, None).map(|p| (p, true)),
                None => None,
            }
        };
        let Some((pick, fresh)) = retry else {
            return self.reply(status, text, false);
        };
        match self.attempt(&pick, req, fresh, false).await {
            Ok(resp) => resp,
            Err((failure, _)) => {
                let (status, text) = failure.answer();
                self.reply(status, text, false)
            }
        }
    }

    /// Reads the client's body, within `max_body_bytes` and the header
    /// timeout (a client stalling mid-body is cut off like one stalling
    /// mid-head).
    async fn read_body(&self, body: Incoming) -> Result<Bytes, Response<ProxyBody>> {
        if body.is_end_stream() {
            return Ok(Bytes::new());
        }
        let max = self.cfg.max_body_bytes;
        let too_large = || {
            self.reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                b"request body too large\n",
                true,
            )
        };
        if body.size_hint().lower() > max as u64 {
            return Err(too_large());
        }
        match self
            .env
            .timeout(
                self.cfg.header_read_timeout,
                Limited::new(body, max).collect(),
            )
            .await
        {
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(e)) if e.is::<LengthLimitError>() => Err(too_large()),
            Ok(Err(_)) => Err(self.reply(
                StatusCode::BAD_REQUEST,
                b"could not read the request body\n",
                true,
            )),
            Err(_) => Err(self.reply(
                StatusCode::REQUEST_TIMEOUT,
                b"request body timed out\n",
                true,
            )),
        }
    }

    /// One attempt against `pick`. On failure, returns the request when it
    /// certainly was not sent (so any method may be retried with it).
    /// `abandon_stalled`: give up as soon as the endpoint stalls.
    async fn attempt(
        &self,
        pick: &Pick,
        req: UpstreamRequest,
        fresh: bool,
        abandon_stalled: bool,
    ) -> Result<Response<ProxyBody>, (Failure, Option<UpstreamRequest>)> {
        let begun = self.env.now();
        let mut in_flight = InFlight::begin(self, pick);
        let pooled = if fresh { None } else { self.take_idle(pick) };
        let reused = pooled.is_some();
        let mut sender = match pooled {
            Some(sender) => sender,
            None => match self.connect(&pick.addr).await {
                Ok(sender) => sender,
                Err(failure) => return Err(self.failed(pick, failure, Some(req))),
            },
        };
        let deadline = self.env.now() + self.cfg.upstream_timeout;
        let exchange = async {
            // A pooled connection may still be finishing its previous
            // exchange, or be closed by now.
            if reused && sender.ready().await.is_err() {
                return Err((Failure::NotSent { pooled: true }, Some(req)));
            }
            sender.try_send_request(req).await.map_err(|mut e| {
                let req = e.take_message();
                let failure = if req.is_some() {
                    Failure::NotSent { pooled: reused }
                } else {
                    Failure::Lost { pooled: reused }
                };
                (failure, req)
            })
        };
        // Dropping the exchange on timeout closes the connection (hyper
        // cannot cancel one HTTP/1 request otherwise).
        let bounded = self.env.timeout(self.cfg.upstream_timeout, exchange);
        let outcome = if abandon_stalled {
            tokio::select! {
                biased;
                outcome = bounded => outcome,
                () = self.stalls(pick, begun) => {
                    return Err(self.failed(pick, Failure::Stalled, None));
                }
            }
        } else {
            bounded.await
        };
        let resp = match outcome {
            Ok(Ok(resp)) => resp,
            Ok(Err((failure, req))) => return Err(self.failed(pick, failure, req)),
            Err(_) => return Err(self.failed(pick, Failure::Timeout, None)),
        };
        in_flight.answered();
        let (mut parts, body) = resp.into_parts();
        let left = deadline.saturating_duration_since(self.env.now());
        let collected = self
            .env
            .timeout(left, Limited::new(body, self.cfg.max_body_bytes).collect())
            .await;
        let body = match collected {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(_)) => return Err(self.failed(pick, Failure::Body { timed_out: false }, None)),
            Err(_) => return Err(self.failed(pick, Failure::Body { timed_out: true }, None)),
        };
        self.put_idle(pick, sender);
        // `Content-Length`, if any, still describes the body (hyper decoded
        // exactly that much; for HEAD it describes the GET's body, as it
        // should).
        strip_hop_by_hop(&mut parts.headers);
        parts.headers.insert(NODE_HEADER, self.node.clone());
        Ok(Response::from_parts(parts, Full::new(body)))
    }

    /// Resolves once the picked endpoint stalls (requests in flight and no
    /// answer for the stall timeout) after `begun`, if another endpoint is
    /// healthy then. Never if it was stalled already (it was picked knowing
    /// that, every endpoint being stalled), if there is nowhere better to
    /// go, or if it leaves the set.
    async fn stalls(&self, pick: &Pick, begun: Instant) {
        loop {
            let (since, stall, elsewhere) = {
                let backends = self.backends.borrow();
                (
                    backends.waiting_since(pick),
                    backends.stall_timeout(),
                    backends.has_alternative(pick, self.env.now()),
                )
            };
            let Some(since) = since else {
                return std::future::pending().await;
            };
            // An answer to another request moves `since`: look again then.
            let at = since + stall;
            if at <= begun {
                return std::future::pending().await;
            }
            if self.env.now() >= at {
                if elsewhere {
                    return;
                }
                // Better wait for a slow answer than retry into worse.
                return std::future::pending().await;
            }
            self.env.sleep_until(at).await;
        }
    }

    /// Books a failure against the endpoint when it deserves it.
    fn failed(
        &self,
        pick: &Pick,
        failure: Failure,
        req: Option<UpstreamRequest>,
    ) -> (Failure, Option<UpstreamRequest>) {
        if failure.cools_down() {
            self.backends.borrow_mut().fail(pick, self.env.now());
        }
        (failure, req)
    }

    /// An idle connection to `pick`, most recently used first; stale and
    /// closed ones are dropped on the way.
    fn take_idle(&self, pick: &Pick) -> Option<Sender> {
        let now = self.env.now();
        let mut backends = self.backends.borrow_mut();
        let pool = backends.state_mut(pick)?;
        while let Some((sender, since)) = pool.idle.pop() {
            if !sender.is_closed()
                && now.saturating_duration_since(since) < self.cfg.pool_idle_timeout
            {
                return Some(sender);
            }
        }
        None
    }

    /// Returns a connection whose exchange completed.
    fn put_idle(&self, pick: &Pick, sender: Sender) {
        let now = self.env.now();
        let mut backends = self.backends.borrow_mut();
        if sender.is_closed() || self.cfg.pool_max_idle_per_endpoint == 0 {
            return;
        }
        if let Some(pool) = backends.state_mut(pick) {
            if pool.idle.len() >= self.cfg.pool_max_idle_per_endpoint {
                // The least recently used goes (and closes).
                pool.idle.remove(0);
            }
            pool.idle.push((sender, now));
        }
    }

    /// A fresh connection to `addr`, its driver spawned on this host.
    async fn connect(&self, addr: &str) -> Result<Sender, Failure> {
        let env = &self.env;
        let dial = async {
            let conn = env
                .net()
                .connect(addr)
                .await
                .map_err(|_| Failure::Connect { timed_out: false })?;
            http1::Builder::new()
                .handshake::<_, ProxyBody>(TokioIo::new(conn))
                .await
                .map_err(|_| Failure::Connect { timed_out: false })
        };
        let (sender, conn) = match env.timeout(self.cfg.connect_timeout, dial).await {
            Ok(Ok(pair)) => pair,
            Ok(Err(failure)) => return Err(failure),
            Err(_) => return Err(Failure::Connect { timed_out: true }),
        };
        // Ends when the connection closes or its sender (pooled or not) is
        // dropped.
        env.spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }
}

/// One attempt in flight to an endpoint, reported to its backends when it
/// ends — when the response head arrives, or when it is dropped without
/// one (failed, timed out, or abandoned by a client gone mid-request).
struct InFlight<'a> {
    forwarder: &'a Forwarder,
    pick: &'a Pick,
    answered: bool,
}

impl<'a> InFlight<'a> {
    fn begin(forwarder: &'a Forwarder, pick: &'a Pick) -> InFlight<'a> {
        forwarder
            .backends
            .borrow_mut()
            .begin(pick, forwarder.env.now());
        InFlight {
            forwarder,
            pick,
            answered: false,
        }
    }

    fn answered(&mut self) {
        assert!(!self.answered, "one answer per attempt");
        self.answered = true;
        let f = self.forwarder;
        f.backends.borrow_mut().end(self.pick, f.env.now(), true);
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.answered {
            let f = self.forwarder;
            f.backends.borrow_mut().end(self.pick, f.env.now(), false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_decide_cooldown_retry_and_status() {
        use Failure::*;
        let all = [
            Connect { timed_out: false },
            Connect { timed_out: true },
            NotSent { pooled: false },
            NotSent { pooled: true },
            Lost { pooled: false },
            Lost { pooled: true },
            Timeout,
            Stalled,
            Body { timed_out: false },
            Body { timed_out: true },
        ];
        let table: Vec<(bool, bool, bool, u16)> = all
            .iter()
            .map(|f| {
                (
                    f.cools_down(),
                    f.retryable(false),
                    f.retryable(true),
                    f.answer().0.as_u16(),
                )
            })
            .collect();
        assert_eq!(
            table,
            vec![
                (true, true, true, 502),
                (true, true, true, 504),
                (true, true, true, 502),
                (false, true, true, 502),
                (true, false, true, 502),
                (false, false, true, 502),
                (true, false, true, 504),
                (true, false, true, 504),
                (false, false, false, 502),
                (false, false, false, 504),
            ]
        );
        assert!(NotSent { pooled: true }.dead_pooled());
        assert!(!Connect { timed_out: false }.dead_pooled());
    }

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("close, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert(KEEP_ALIVE, HeaderValue::from_static("timeout=5"));
        h.insert("x-kept", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["x-kept"]);
    }

    #[test]
    fn idempotent_methods_follow_rfc_9110() {
        for m in ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"] {
            assert!(is_idempotent(&m.parse().unwrap()), "{m}");
        }
        for m in ["POST", "PATCH", "CONNECT"] {
            assert!(!is_idempotent(&m.parse().unwrap()), "{m}");
        }
    }
}
