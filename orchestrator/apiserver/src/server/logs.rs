//! `GET .../pods/{name}/log`: a container's output, read from the kubelet
//! of the pod's node, as kube-apiserver serves it.
//!
//! The API server checks what it can itself (the pod, its container, its
//! node, the log options), then dials the node's kubelet at the address
//! and port the Node reports (`InternalIP`, `daemonEndpoints`) and relays
//! the answer: the output streamed as it comes (`follow` streams until the
//! container exits or the reader leaves), or the kubelet's refusal as a
//! `Status` with the kubelet's code. In real mode the dial is HTTPS with
//! the master's client certificate, which the kubelet requires.

use std::convert::Infallible;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use faultline_api::PodLogOptions;
use faultline_api::{Node, Pod, Status};
use http::header::{HeaderValue, CONTENT_TYPE, HOST};
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;

use super::respond::Query;
use super::{Body, Ctx};

/// Time to open a connection to a kubelet (TLS included).
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for the kubelet to answer with its headers (the output itself may
/// stream for as long as the container runs, with `follow`).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// The most of a kubelet's refusal relayed.
const MAX_REFUSAL: usize = 16 << 10;

fn unavailable(message: String) -> Status {
    Status::failure(503, "ServiceUnavailable", message)
}

/// Serves `pods/log` for pod `ns/name`.
pub(super) async fn pod_log(
    ctx: &Rc<Ctx>,
    ns: &str,
    name: &str,
    query: &Query,
) -> Result<Response<Body>, Status> {
    let pod: Pod = ctx.reg.get(ns, name).await?;
    let names: Vec<&str> = pod
        .spec
        .containers
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let container = match query.get("container").filter(|c| !c.is_empty()) {
        Some(c) if names.contains(&c) => c.to_string(),
        Some(c) => {
            return Err(Status::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )))
        }
        None if names.len() == 1 => names[0].to_string(),
        None => {
            return Err(Status::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names.join(" ")
            )))
        }
    };
    let env = &ctx.reg.env;
    let opts = PodLogOptions::parse(
        query.0.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        env.wall_ms(),
    )
    .map_err(|e| Status::bad_request(e.0))?;
    let node_name = &pod.spec.node_name;
    if node_name.is_empty() {
        return Err(Status::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let node: Node = ctx.reg.get("", node_name).await?;
    let ip = node
        .status
        .addresses
        .iter()
        .find(|a| a.kind == "InternalIP")
        .map(|a| a.address.clone())
        .ok_or_else(|| unavailable(format!("node {node_name} reports no InternalIP address")))?;
    let port = node.status.daemon_endpoints.kubelet_endpoint.port;
    if port <= 0 {
        return Err(unavailable(format!(
            "node {node_name} reports no kubelet endpoint (status.daemonEndpoints)"
        )));
    }
    let addr = if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    };
    let path = format!("/containerLogs/{ns}/{name}/{container}?{}", opts.to_query());
    let answer = fetch(ctx, &addr, &path)
        .await
        .map_err(|e| unavailable(format!("the kubelet of node {node_name} at {addr}: {e}")))?;
    let (parts, body) = answer.into_parts();
    if parts.status != StatusCode::OK {
        let text = env
            .timeout(
                ANSWER_TIMEOUT,
                http_body_util::Limited::new(body, MAX_REFUSAL).collect(),
            )
            .await
            .ok()
            .and_then(|r| r.ok())
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_string())
            .unwrap_or_default();
        let code = parts.status.as_u16();
        let reason = match code {
            400 => "BadRequest",
            404 => "NotFound",
            _ => "InternalError",
        };
        return Err(Status::failure(code, reason, text));
    }
    let mut r = Response::new(BodyExt::boxed_unsync(Relay(body)));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(r)
}

/// Dials the kubelet at `addr` and sends `GET path`; returns its answer's
/// head with the body still streaming.
async fn fetch(ctx: &Rc<Ctx>, addr: &str, path: &str) -> Result<Response<Incoming>, String> {
    let env = &ctx.reg.env;
    let conn = match env.timeout(DIAL_TIMEOUT, env.net().connect(addr)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(format!("cannot connect: {e}")),
        Err(_) => return Err("connect timed out".into()),
    };
    let conn = match &ctx.cfg.kubelet_tls {
        None => conn,
        Some(tls) => match env.timeout(DIAL_TIMEOUT, tls.connect(addr, conn)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(format!("TLS handshake failed: {e}")),
            Err(_) => return Err("TLS handshake timed out".into()),
        },
    };
    let (mut send, connection) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(
        hyper_util::rt::TokioIo::new(conn),
    )
    .await
    .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    // The connection's task lives as long as the relayed body is read (or
    // the API server's host).
    env.spawn(async move {
        let _ = connection.await;
    });
    let req = Request::get(path)
        .header(HOST, addr)
        .body(Empty::new())
        .map_err(|e| format!("bad request {path:?}: {e}"))?;
    match env.timeout(ANSWER_TIMEOUT, send.send_request(req)).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(format!("request failed: {e}")),
        Err(_) => Err(format!("no answer within {} s", ANSWER_TIMEOUT.as_secs())),
    }
}

/// The kubelet's body, relayed; a broken connection ends the stream (the
/// reader sees the output stop, as when the node goes away).
struct Relay(Incoming);

impl http_body::Body for Relay {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match Pin::new(&mut self.0).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
            Poll::Ready(Some(Err(_)) | None) => Poll::Ready(None),
        }
    }
}
