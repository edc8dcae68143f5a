//! The listening side: one listener per node port, each accepting HTTP/1
//! connections within its connection budget and serving them with hyper.
//!
//! - Binding retries with jittered exponential backoff (100 ms to 5 s); the
//!   first failure and the eventual success are traced, not every retry.
//! - Every connection is a task spawned through `Env::spawn` and registered
//!   in the listener's [`ConnSet`], which sheds the least recently active
//!   connection when the listener is full (see `conns`). Closing a
//!   listener (dropping its [`ListenerHandle`]) aborts its accept loop and
//!   every connection it accepted.
//! - A connection's deadlines (header and idle timeouts) are enforced here:
//!   the byte stream is wrapped ([`Watched`]) so the first byte of a request
//!   head is seen, the HTTP service marks requests in progress, and a timer
//!   re-armed whenever the deadline moves drops the connection when it
//!   passes. hyper's own header timer is off (see `conns` for why).
//! - Bad input is hyper's to refuse: garbage gets 400, oversized heads 431,
//!   each followed by a close; bodies are the forwarder's (413, 408).

use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use faultline_env::{BoxConn, Env, Listener};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rand::RngCore;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::conns::{ConnSet, Slot};
use crate::forward::{reply, Forwarder, ProxyBody};
use crate::ProxyConfig;

/// First wait before re-trying a failed bind.
const BIND_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest wait between bind attempts.
const BIND_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Wait after a failed accept (out of file descriptors, in real mode).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// hyper's smallest allowed read buffer.
const MIN_BUF_BYTES: usize = 8192;

/// What a listener answers.
pub(crate) enum Handler {
    /// A Service port: forward to its endpoints.
    Service(Forwarder),
    /// The health port: `GET /healthz` is 200 once `synced` is set.
    Health(Rc<Cell<bool>>),
}

impl Handler {
    async fn handle(&self, req: Request<Incoming>) -> Response<ProxyBody> {
        match self {
            Handler::Service(forwarder) => forwarder.forward(req).await,
            Handler::Health(synced) => health(&req, synced.get()),
        }
    }
}

fn health(req: &Request<Incoming>, synced: bool) -> Response<ProxyBody> {
    let known = matches!(*req.method(), Method::GET | Method::HEAD);
    match (known, req.uri().path()) {
        (true, "/healthz") if synced => reply(StatusCode::OK, b"ok\n", false, None),
        (true, "/healthz") => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            b"not synced yet\n",
            false,
            None,
        ),
        _ => reply(StatusCode::NOT_FOUND, b"not found\n", false, None),
    }
}

/// State shared by a listener's accept loop and its connections.
struct Listening {
    env: Env,
    cfg: Rc<ProxyConfig>,
    port: u16,
    /// What is served, for trace lines.
    label: String,
    handler: Handler,
    conns: RefCell<ConnSet<AbortHandle>>,
    http: http1::Builder,
}

/// An open listener. Dropping it closes the port and every connection
/// accepted on it.
pub(crate) struct ListenerHandle {
    accept: AbortHandle,
    shared: Rc<Listening>,
}

impl Drop for ListenerHandle {
    fn drop(&mut self) {
        self.accept.abort();
        // Take the handles out first: an aborted task's clean-up borrows
        // the set again.
        let handles = self.shared.conns.borrow_mut().drain();
        for handle in handles {
            handle.abort();
        }
    }
}

/// Starts serving `port` on this host with `handler`.
pub(crate) fn open(
    env: &Env,
    cfg: &Rc<ProxyConfig>,
    port: u16,
    label: String,
    handler: Handler,
) -> ListenerHandle {
    let mut http = http1::Builder::new();
    http.header_read_timeout(None)
        // The Date header would read the host's wall clock behind the
        // environment's back; upstream answers carry their own.
        .auto_date_header(false)
        .max_header_size(cfg.max_header_bytes)
        .max_buf_size(cfg.max_header_bytes.max(MIN_BUF_BYTES));
    let shared = Rc::new(Listening {
        env: env.clone(),
        cfg: cfg.clone(),
        port,
        label,
        handler,
        conns: RefCell::new(ConnSet::new(cfg.max_connections)),
        http,
    });
    let accept = env.spawn(accept_loop(shared.clone())).abort_handle();
    ListenerHandle { accept, shared }
}

async fn accept_loop(l: Rc<Listening>) {
    let mut listener = bind(&l).await;
    loop {
        match listener.accept().await {
            Ok((conn, _peer)) => admit(&l, conn),
            Err(e) => {
                l.env
                    .trace(format_args!("proxy: accept on :{} failed: {e}", l.port));
                l.env.sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

async fn bind(l: &Listening) -> Box<dyn Listener> {
    let mut delay = BIND_BACKOFF_MIN;
    let mut failures = 0u32;
    loop {
        match l.env.net().bind(l.port).await {
            Ok(listener) => {
                if failures > 0 {
                    l.env.trace(format_args!(
                        "proxy: listening on :{} for {} after {failures} failed binds",
                        l.port, l.label
                    ));
                }
                return listener;
            }
            Err(e) => {
                if failures == 0 {
                    l.env.trace(format_args!(
                        "proxy: cannot listen on :{} for {}: {e}; retrying",
                        l.port, l.label
                    ));
                }
                failures += 1;
                let half = delay.as_millis() as u64 / 2;
                let jitter = l.env.rng().next_u64() % (half + 1);
                l.env.sleep(Duration::from_millis(half + jitter)).await;
                delay = (delay * 2).min(BIND_BACKOFF_MAX);
            }
        }
    }
}

/// Takes a new connection in, shedding another if the listener is full.
fn admit(l: &Rc<Listening>, conn: BoxConn) {
    let room = l.conns.borrow_mut().make_room();
    match room {
        // Every connection is in the middle of a request: refuse this one
        // (dropping it closes it).
        Err(_full) => return,
        Ok(Some(shed)) => shed.abort(),
        Ok(None) => {}
    }
    let slot = Rc::new(Slot::new(
        l.env.now(),
        l.cfg.header_read_timeout,
        l.cfg.idle_timeout,
    ));
    let id = l.conns.borrow_mut().insert(slot.clone());
    let task = l.env.spawn(serve(l.clone(), conn, slot, id));
    l.conns.borrow_mut().set_handle(id, task.abort_handle());
}

/// Removes a connection from its listener's set when its task ends or is
/// aborted.
struct Leave {
    l: Rc<Listening>,
    id: u64,
}

impl Drop for Leave {
    fn drop(&mut self) {
        self.l.conns.borrow_mut().remove(self.id);
    }
}

async fn serve(l: Rc<Listening>, conn: BoxConn, slot: Rc<Slot>, id: u64) {
    let _leave = Leave { l: l.clone(), id };
    let io = Watched {
        io: conn,
        slot: slot.clone(),
        env: l.env.clone(),
    };
    let (svc_l, svc_slot) = (l.clone(), slot.clone());
    let service = service_fn(move |req| {
        let (l, slot) = (svc_l.clone(), svc_slot.clone());
        async move {
            slot.on_request(l.env.now());
            let resp = l.handler.handle(req).await;
            slot.on_response(l.env.now());
            Ok::<_, Infallible>(resp)
        }
    });
    // Errors (garbage, a client gone mid-request) end this connection
    // only; hyper has already answered 400 or 431 where it could.
    let conn = l.http.serve_connection(TokioIo::new(io), service);
    until_deadline(&l.env, conn, &slot).await;
}

/// A sleep through the environment, boxed so it can be replaced when the
/// deadline moves.
type Sleep = Pin<Box<dyn Future<Output = ()>>>;

/// Runs `fut` until it ends or `slot`'s deadline passes, whichever is
/// first. The deadline moves only while `fut` is polled (the byte stream
/// and the service move it), so checking it after each poll is enough.
async fn until_deadline<F: Future>(env: &Env, fut: F, slot: &Slot) {
    let mut fut = pin!(fut);
    let mut timer: Option<(Instant, Sleep)> = None;
    std::future::poll_fn(|cx| {
        if fut.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        let Some(deadline) = slot.deadline() else {
            timer = None;
            return Poll::Pending;
        };
        if timer.as_ref().map(|(at, _)| *at) != Some(deadline) {
            let env = env.clone();
            timer = Some((
                deadline,
                Box::pin(async move { env.sleep_until(deadline).await }),
            ));
        }
        let (_, sleep) = timer.as_mut().expect("armed above");
        sleep.as_mut().poll(cx)
    })
    .await
}

/// A client connection's byte stream, telling its [`Slot`] when the first
/// byte of a request head arrives.
struct Watched {
    io: BoxConn,
    slot: Rc<Slot>,
    env: Env,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = this.io.as_mut().poll_read(cx, buf);
        if buf.filled().len() > before && this.slot.awaits_head() {
            this.slot.on_bytes(this.env.now());
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().io.as_mut().poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().io.as_mut().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().io.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().io.as_mut().poll_shutdown(cx)
    }
}
