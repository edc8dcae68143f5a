//! The built-in applications a container image selects.
//!
//! An image is `name` or `name:tag`; the tag is free text, reported back
//! (the `echo` server names its full image in every answer, so a rolling
//! update from `echo:v1` to `echo:v2` is visible to clients). Arguments are
//! `key=value` strings; durations use `humantime` (`30s`, `1m 30s`).
//!
//! | image   | does                                              | args               |
//! |---------|---------------------------------------------------|--------------------|
//! | `echo`  | HTTP/1.1 server on `pod_ip:port` for every port   | none               |
//! | `crash` | runs, then exits with `code` after `after`        | `after=0s`, `code=1` |
//! | `sleep` | nothing, forever                                  | none               |
//! | `exit0` | exits 0 after `after`                             | `after=0s`         |
//!
//! Each writes to its container's output ([`LogBuffer`], what `kubectl
//! logs` shows): `echo` a line per port it listens on and an access-log
//! line per request, the others what they do and, on stderr, why they
//! exit.

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use faultline_env::{BoxConn, Env, Listener};
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::task::AbortHandle;

use crate::logs::{LogBuffer, Stream};
use crate::runtime::{ContainerSpec, RuntimeError};

/// The images this runtime knows, by name (without tag).
pub const KNOWN_IMAGES: [&str; 4] = ["echo", "crash", "sleep", "exit0"];

/// The port `echo` listens on when its container declares none.
pub const ECHO_DEFAULT_PORT: u16 = 8080;

/// How long `echo` waits for a request's headers (including the wait for
/// the next request on an idle keep-alive connection) before closing the
/// connection, so a stalled client cannot pin one forever.
pub const ECHO_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The response header naming the pod that answered.
pub const POD_HEADER: &str = "x-pod";

/// A parsed image plus arguments: what a container will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum App {
    /// Answers every HTTP request with JSON naming the pod.
    Echo,
    /// Exits with `code` after `after`.
    Crash { after: Duration, code: i32 },
    /// Does nothing forever.
    Sleep,
    /// Exits 0 after `after`.
    Exit0 { after: Duration },
}

impl App {
    /// Selects the application for `image` (`name` or `name:tag`) and
    /// parses its arguments.
    pub fn parse(image: &str, args: &[String]) -> Result<App, RuntimeError> {
        let name = image.split_once(':').map_or(image, |(name, _tag)| name);
        let mut app = match name {
            "echo" => App::Echo,
            "crash" => App::Crash {
                after: Duration::ZERO,
                code: 1,
            },
            "sleep" => App::Sleep,
            "exit0" => App::Exit0 {
                after: Duration::ZERO,
            },
            _ => {
                return Err(RuntimeError::UnknownImage {
                    image: image.to_string(),
                    known: KNOWN_IMAGES.join(", "),
                })
            }
        };
        for arg in args {
            let bad = |reason: String| RuntimeError::BadArgument {
                image: image.to_string(),
                arg: arg.clone(),
                reason,
            };
            let (key, value) = arg
                .split_once('=')
                .ok_or_else(|| bad(format!("expected key=value; {}", app.accepts())))?;
            match (&mut app, key) {
                (App::Crash { after, .. } | App::Exit0 { after }, "after") => {
                    *after = humantime::parse_duration(value)
                        .map_err(|e| bad(format!("{value:?} is not a duration: {e}")))?;
                }
                (App::Crash { code, .. }, "code") => {
                    *code = value
                        .parse()
                        .map_err(|_| bad(format!("{value:?} is not an exit code")))?;
                }
                _ => return Err(bad(format!("unknown key {key:?}; {}", app.accepts()))),
            }
        }
        Ok(app)
    }

    /// Which arguments the application takes, for error messages.
    fn accepts(&self) -> &'static str {
        match self {
            App::Echo | App::Sleep => "this image takes no arguments",
            App::Crash { .. } => "this image takes after=<duration> and code=<int>",
            App::Exit0 { .. } => "this image takes after=<duration>",
        }
    }
}

/// The running application: resolves to the exit code.
pub(crate) type Running = Pin<Box<dyn Future<Output = i32>>>;

/// Prepares `app` for `spec` (servers bind now, so their errors are the
/// caller's) and returns the future that runs it. Every task the application
/// spawns is aborted when that future is dropped or finishes: a process that
/// exits takes its connections with it.
pub(crate) async fn launch(
    env: &Env,
    spec: &ContainerSpec,
    app: &App,
    log: Rc<LogBuffer>,
) -> Result<Running, RuntimeError> {
    let out = Output {
        env: env.clone(),
        log,
    };
    match app {
        App::Echo => launch_echo(env, spec, out).await,
        App::Crash { after, code } => {
            let (env, after, code) = (env.clone(), *after, *code);
            out.stdout(&format!(
                "crash: running; will exit with code {code} in {}",
                humantime::format_duration(after)
            ));
            Ok(Box::pin(async move {
                env.sleep(after).await;
                out.stderr(&format!("crash: exiting with code {code}"));
                code
            }))
        }
        App::Sleep => {
            out.stdout("sleep: sleeping until stopped");
            Ok(Box::pin(std::future::pending()))
        }
        App::Exit0 { after } => {
            let (env, after) = (env.clone(), *after);
            out.stdout(&format!(
                "exit0: running; will exit with code 0 in {}",
                humantime::format_duration(after)
            ));
            Ok(Box::pin(async move {
                env.sleep(after).await;
                out.stdout("exit0: done");
                0
            }))
        }
    }
}

/// An application's stdout and stderr.
#[derive(Clone)]
struct Output {
    env: Env,
    log: Rc<LogBuffer>,
}

impl Output {
    fn stdout(&self, line: &str) {
        self.log.write(self.env.wall_ms(), Stream::Stdout, line);
    }

    fn stderr(&self, line: &str) {
        self.log.write(self.env.wall_ms(), Stream::Stderr, line);
    }
}

/// Tasks an application spawned (its connections).
#[derive(Default)]
struct Children {
    handles: RefCell<Vec<AbortHandle>>,
}

impl Children {
    fn add(&self, handle: AbortHandle) {
        let mut handles = self.handles.borrow_mut();
        // Forget finished connections now and then so the list stays short.
        if handles.len() >= 64 && handles.len().is_power_of_two() {
            handles.retain(|h| !h.is_finished());
        }
        handles.push(handle);
    }
}

/// Owned by the application's future: aborts its children when dropped.
/// (Not the `Rc` itself: the accept loops hold clones of it.)
struct AbortChildren(Rc<Children>);

impl Drop for AbortChildren {
    fn drop(&mut self) {
        for h in self.0.handles.borrow_mut().drain(..) {
            h.abort();
        }
    }
}

/// Who answers: fixed for the life of an echo container.
struct EchoIdentity {
    pod_name: HeaderValue,
    /// The answer's JSON up to the path's value, and after it. Only the
    /// path changes from one request to the next, so the rest is encoded
    /// once: the echo answers every simulated user request, and building a
    /// `serde_json::Value` per answer was a third of its cost.
    before_path: String,
    after_path: String,
}

impl EchoIdentity {
    fn new(pod: &str, pod_name: HeaderValue, node: &str, image: &str) -> EchoIdentity {
        let text = |s: &str| serde_json::to_string(s).expect("a string always encodes");
        EchoIdentity {
            pod_name,
            // Keys in sorted order, as a `serde_json::Value` map writes them.
            before_path: format!(r#"{{"image":{},"node":{},"path":"#, text(image), text(node)),
            after_path: format!(r#","pod":{}}}"#, text(pod)),
        }
    }

    /// `{"image":…,"node":…,"path":…,"pod":…}` for a request to `path`.
    fn answer(&self, path: &str) -> Bytes {
        let mut out =
            Vec::with_capacity(self.before_path.len() + path.len() + 2 + self.after_path.len());
        out.extend_from_slice(self.before_path.as_bytes());
        serde_json::to_writer(&mut out, path).expect("a string always encodes");
        out.extend_from_slice(self.after_path.as_bytes());
        Bytes::from(out)
    }
}

async fn launch_echo(
    env: &Env,
    spec: &ContainerSpec,
    out: Output,
) -> Result<Running, RuntimeError> {
    if spec.pod_ip.is_empty() {
        return Err(RuntimeError::NoPodIp {
            image: spec.image.clone(),
        });
    }
    let mut ports = Vec::new();
    for p in &spec.ports {
        let port = u16::try_from(p.container_port)
            .ok()
            .filter(|port| *port != 0)
            .ok_or(RuntimeError::BadPort {
                port: p.container_port,
            })?;
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    if ports.is_empty() {
        ports.push(ECHO_DEFAULT_PORT);
    }
    let mut listeners = Vec::new();
    for port in ports {
        let listener =
            env.net()
                .bind_ip(&spec.pod_ip, port)
                .await
                .map_err(|e| RuntimeError::Listen {
                    addr: format!("{}:{port}", spec.pod_ip),
                    kind: e.kind(),
                    message: e.to_string(),
                })?;
        listeners.push((listener, port));
    }
    for (_, port) in &listeners {
        out.stdout(&format!("echo: listening on {}:{port}", spec.pod_ip));
    }
    let identity = Rc::new(EchoIdentity::new(
        &format!("{}/{}", spec.pod_namespace, spec.pod_name),
        // A pod name is a DNS label, always a valid header value; anything
        // else is answered without the header rather than refused.
        HeaderValue::from_str(&spec.pod_name)
            .unwrap_or_else(|_| HeaderValue::from_static("invalid")),
        env.host(),
        &spec.image,
    ));
    let env = env.clone();
    Ok(Box::pin(async move {
        let children = Rc::new(Children::default());
        let _abort = AbortChildren(children.clone());
        // The listeners live in this future (not in spawned tasks), so
        // dropping it, as `stop` does, frees the ports at once.
        let mut loops: Vec<Option<Pin<Box<dyn Future<Output = ()>>>>> = listeners
            .into_iter()
            .map(|(l, _port)| {
                let fut: Pin<Box<dyn Future<Output = ()>>> = Box::pin(accept_loop(
                    env.clone(),
                    l,
                    identity.clone(),
                    children.clone(),
                    out.clone(),
                ));
                Some(fut)
            })
            .collect();
        std::future::poll_fn(|cx| {
            for slot in loops.iter_mut() {
                if let Some(fut) = slot {
                    if fut.as_mut().poll(cx).is_ready() {
                        *slot = None;
                    }
                }
            }
            // An echo server never exits by itself: only `stop` (or a
            // crash) ends it.
            Poll::<i32>::Pending
        })
        .await
    }))
}

async fn accept_loop(
    env: Env,
    mut listener: Box<dyn Listener>,
    identity: Rc<EchoIdentity>,
    children: Rc<Children>,
    out: Output,
) {
    loop {
        match listener.accept().await {
            Ok((conn, peer)) => {
                let task = env.spawn(serve_connection(
                    conn,
                    identity.clone(),
                    out.clone(),
                    Rc::from(peer),
                ));
                children.add(task.abort_handle());
            }
            Err(e) => {
                // Out of file descriptors and the like (real mode): back
                // off rather than spin.
                env.trace(format_args!("echo accept failed: {e}"));
                env.sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_connection(conn: BoxConn, identity: Rc<EchoIdentity>, out: Output, peer: Rc<str>) {
    let service = service_fn(move |req| {
        let answered = answer(identity.clone(), &req);
        // An access-log line per request, as web servers write them.
        out.stdout(&format!(
            "{peer} \"{} {} {:?}\" 200 {}",
            req.method(),
            req.uri(),
            req.version(),
            answered.body_len
        ));
        std::future::ready(Ok::<_, Infallible>(answered.response))
    });
    // Errors (garbage, a client gone mid-request, the header timeout) end
    // this connection only; hyper has already answered 400 where it could.
    let _ = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(ECHO_HEADER_READ_TIMEOUT)
        // hyper's Date header reads the machine's wall clock, behind the
        // environment's back (and costs a clock read per answer).
        .auto_date_header(false)
        .serve_connection(TokioIo::new(conn), service)
        .await;
}

/// An answer, and its body's length for the access log.
struct Answered {
    response: Response<Full<Bytes>>,
    body_len: usize,
}

fn answer(identity: Rc<EchoIdentity>, req: &Request<Incoming>) -> Answered {
    let path = req.uri().path();
    let (content_type, body) = if path == "/healthz" {
        ("text/plain", Bytes::from_static(b"ok"))
    } else {
        ("application/json", identity.answer(path))
    };
    let body_len = body.len();
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = StatusCode::OK;
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(POD_HEADER, identity.pod_name.clone());
    Answered {
        response: resp,
        body_len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_is_the_json_of_who_answered_and_the_path() {
        let id = EchoIdentity::new(
            "default/web-1",
            HeaderValue::from_static("web-1"),
            "n1",
            "echo:v\"2",
        );
        for path in ["/", "/a b", "/\"quoted\"\\", "/ü"] {
            let want = serde_json::json!({
                "pod": "default/web-1",
                "node": "n1",
                "image": "echo:v\"2",
                "path": path,
            });
            let got = id.answer(path);
            assert_eq!(got, want.to_string().as_bytes(), "{path}");
            let back: serde_json::Value = serde_json::from_slice(&got).unwrap();
            assert_eq!(back, want);
        }
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn images_select_apps_with_any_tag() {
        assert_eq!(App::parse("echo", &[]), Ok(App::Echo));
        assert_eq!(App::parse("echo:v2", &[]), Ok(App::Echo));
        assert_eq!(App::parse("sleep:latest", &[]), Ok(App::Sleep));
        assert_eq!(
            App::parse("crash", &args(&["after=30s"])),
            Ok(App::Crash {
                after: Duration::from_secs(30),
                code: 1
            })
        );
        assert_eq!(
            App::parse("crash", &args(&["after=1m 30s", "code=3"])),
            Ok(App::Crash {
                after: Duration::from_secs(90),
                code: 3
            })
        );
        assert_eq!(
            App::parse("exit0", &args(&["after=500ms"])),
            Ok(App::Exit0 {
                after: Duration::from_millis(500)
            })
        );
        assert_eq!(
            App::parse("exit0", &[]),
            Ok(App::Exit0 {
                after: Duration::ZERO
            })
        );
    }

    #[test]
    fn unknown_images_name_themselves_and_the_known_ones() {
        let err = App::parse("nginx:1.25", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown image \"nginx:1.25\": this runtime runs only echo, crash, sleep, exit0"
        );
    }

    #[test]
    fn bad_arguments_say_what_is_accepted() {
        let err = App::parse("crash", &args(&["after=soon"])).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "image \"crash\" cannot take argument \"after=soon\": \"soon\" is not a duration"
            ),
            "{err}"
        );
        let err = App::parse("echo", &args(&["port=80"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "image \"echo\" cannot take argument \"port=80\": unknown key \"port\"; this image takes no arguments"
        );
        let err = App::parse("exit0", &args(&["30s"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "image \"exit0\" cannot take argument \"30s\": expected key=value; this image takes after=<duration>"
        );
        assert!(App::parse("crash", &args(&["code=x"])).is_err());
    }
}
