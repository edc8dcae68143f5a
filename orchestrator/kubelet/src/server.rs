//! The kubelet's own HTTP server (port 10250, as Kubernetes'): what the API
//! server asks a node for rather than the store, today a container's
//! output.
//!
//! - `GET /containerLogs/{namespace}/{pod}/{container}` with the log
//!   options of [`LogOptions::parse`]: the output as `text/plain`, streamed
//!   while `follow` holds;
//! - `GET /healthz`: `ok`.
//!
//! In real mode it serves HTTPS and accepts only clients whose certificate
//! chains to the cluster CA and is meant for client authentication: the
//! masters hold such certificates, nodes do not (their serving
//! certificates are for servers only), so one node cannot read another's
//! pods. In the simulator it serves plain HTTP, like every simulated
//! transport.
//!
//! Routing is by hand, as in the API server: the handlers are host-local.

use std::convert::Infallible;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use faultline_env::tls::TlsServer;
use faultline_env::{Env, Listener};
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::sync::mpsc;

use crate::logs::LogBuffer;
use faultline_api::PodLogOptions;

/// The port Kubernetes' kubelet serves on.
pub const KUBELET_PORT: u16 = 10250;

/// A client has this long to finish its TLS handshake, and then to send
/// its request's headers.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Why a container's output cannot be read, with the status to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRefusal {
    pub status: StatusCode,
    pub message: String,
}

impl LogRefusal {
    pub fn not_found(message: String) -> LogRefusal {
        LogRefusal {
            status: StatusCode::NOT_FOUND,
            message,
        }
    }

    pub fn bad_request(message: String) -> LogRefusal {
        LogRefusal {
            status: StatusCode::BAD_REQUEST,
            message,
        }
    }
}

/// What the server serves from: the kubelet's view of its pods and its
/// runtime.
#[async_trait(?Send)]
pub trait NodeLogs {
    /// The output of `container` of pod `namespace/pod` (its previous,
    /// terminated instance with `previous`).
    async fn container_log(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Result<Rc<LogBuffer>, LogRefusal>;
}

/// Serves on `port` until the host stops.
pub async fn serve(
    env: Env,
    port: u16,
    tls: Option<TlsServer>,
    logs: Rc<dyn NodeLogs>,
) -> std::io::Result<()> {
    let mut listener: Box<dyn Listener> = env.net().bind(port).await?;
    loop {
        let (conn, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                env.trace(format_args!("kubelet server accept failed: {e}"));
                env.sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (env2, tls, logs) = (env.clone(), tls.clone(), logs.clone());
        env.spawn(async move {
            let conn = match &tls {
                None => conn,
                Some(tls) => match env2.timeout(HANDSHAKE_TIMEOUT, tls.accept(conn)).await {
                    Ok(Ok(c)) => c,
                    Ok(Err(e)) => {
                        env2.trace(format_args!(
                            "kubelet server TLS handshake from {peer}: {e}"
                        ));
                        return;
                    }
                    Err(_) => return,
                },
            };
            let service = hyper::service::service_fn(move |req| {
                let (env, logs) = (env2.clone(), logs.clone());
                async move { Ok::<_, Infallible>(handle(&env, &*logs, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HANDSHAKE_TIMEOUT)
                // hyper's Date header reads the machine's wall clock.
                .auto_date_header(false)
                .serve_connection(hyper_util::rt::TokioIo::new(conn), service)
                .await;
        });
    }
}

fn text(status: StatusCode, message: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(message)).boxed_unsync());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

async fn handle(env: &Env, logs: &dyn NodeLogs, req: Request<Incoming>) -> Response<Body> {
    if req.method() != Method::GET {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} is not served here: only GET", req.method()),
        );
    }
    let path = req.uri().path();
    if path == "/healthz" {
        return text(StatusCode::OK, "ok".into());
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let ["containerLogs", ns, pod, container] = parts.as_slice() else {
        return text(
            StatusCode::NOT_FOUND,
            format!("{path} is not served here: only /containerLogs/NAMESPACE/POD/CONTAINER and /healthz"),
        );
    };
    let query: Vec<(String, String)> =
        form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let opts = match PodLogOptions::parse(
        query.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        env.wall_ms(),
    ) {
        Ok(o) => o,
        Err(e) => return text(StatusCode::BAD_REQUEST, e.0),
    };
    let log = match logs.container_log(ns, pod, container, opts.previous).await {
        Ok(l) => l,
        Err(r) => return text(r.status, r.message),
    };
    // Streamed through a channel: a follower's response outlives this
    // handler, and ends when the container does or the reader leaves.
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    env.spawn(async move {
        crate::logs::read(&opts, &log, |chunk| {
            let tx = tx.clone();
            async move { tx.send(chunk).await.is_ok() }
        })
        .await;
    });
    let mut r = Response::new(ChannelBody { rx }.boxed_unsync());
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
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
