//! User traffic: client hosts that send HTTP requests to a Service through
//! the node proxies, the way an external load balancer in front of a
//! cluster does.
//!
//! Each client host stands for the users of one datacenter behind a load
//! balancer that:
//! - health-checks every node's proxy (`GET /healthz` on port 10256 every
//!   2 s; a node turns unhealthy after 2 failed checks, healthy after 2
//!   good ones) and takes a node out at once when a request to it cannot
//!   connect or times out (passive health checking);
//! - prefers healthy nodes in its own datacenter, then healthy nodes
//!   anywhere, and when none looks healthy tries any node (fail open);
//! - retries a failed request once on another node: a `GET` after any
//!   failure, a `POST` only when it never reached a backend (the
//!   connection failed, or the proxy answered 503 "no endpoints");
//! - keeps idle keep-alive connections per node, dropped after 10 s idle
//!   (shorter than the proxy's idle timeout, as real pools do).
//!
//! Requests arrive as a Poisson process and run concurrently. Every one is
//! recorded in the checker's `TrafficLog`: when it was sent and answered, its
//! outcome, the node that took it and the pod that answered.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use faultline_env::Env;
use http::{header, Method, Request as HttpRequest};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rand::Rng;
use tokio::time::Instant;

use faultline_checker::record::{Clock, Outcome, Request, SharedTrafficLog};
use faultline_scenario::{dc_of, node_names, traffic_clients, HttpMethod, Scenario};

/// The proxy's health-check port on every node (kube-proxy's).
pub const HEALTHZ_PORT: u16 = 10256;

const CHECK_EVERY: Duration = Duration::from_secs(2);
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const POOL_IDLE: Duration = Duration::from_secs(10);
const POOL_MAX: usize = 8;

/// What one user host does.
pub struct UserSpec {
    service: u16,
    client: u16,
    port: u16,
    /// Requests per simulated second from this host.
    rate: f64,
    timeout: Duration,
    start: Duration,
    method: HttpMethod,
    datacenter: String,
    /// (node, datacenter)
    nodes: Vec<(String, String)>,
}

/// Every user host of `s`: (host, datacenter, what it does).
pub fn users(s: &Scenario) -> Vec<(String, String, Rc<UserSpec>)> {
    let nodes: Vec<(String, String)> = node_names(s)
        .into_iter()
        .enumerate()
        .map(|(i, n)| (n, dc_of(s, i)))
        .collect();
    let clients = traffic_clients(s);
    let mut out = Vec::new();
    for (idx, c) in clients.iter().enumerate() {
        let t = &s.traffic[c.entry];
        let per_entry = clients.iter().filter(|x| x.entry == c.entry).count();
        let port = s
            .deployments
            .iter()
            .find(|d| d.name == t.service)
            .and_then(|d| d.port)
            .expect("validated: the service has a port");
        let spec = Rc::new(UserSpec {
            service: c.entry as u16,
            client: idx as u16,
            port,
            rate: t.rate / per_entry as f64,
            timeout: t.timeout.0,
            start: t.start.0,
            method: t.method,
            datacenter: c.datacenter.clone(),
            nodes: nodes.clone(),
        });
        out.push((c.name.clone(), c.datacenter.clone(), spec));
    }
    out
}

/// Idle keep-alive connections, with when each went idle.
type Pool = RefCell<Vec<(SendRequest<Empty<Bytes>>, Instant)>>;

/// One node as the load balancer sees it.
struct Backend {
    addr: String,
    health_addr: String,
    local: bool,
    healthy: Cell<bool>,
    /// Consecutive good (> 0) or failed (< 0) health checks.
    streak: Cell<i32>,
    idle: Pool,
    idle_checks: Pool,
}

struct Balancer {
    env: Env,
    backends: Vec<Backend>,
    cursor: Cell<usize>,
}

/// Why an attempt failed.
enum Failure {
    /// The request never left: no connection.
    NotSent,
    /// It may have reached the node.
    Lost,
}

impl Balancer {
    /// The next node by round robin: healthy local ones first, then healthy
    /// anywhere, then anything (fail open); never `avoid` if there is a
    /// choice.
    fn pick(&self, avoid: Option<usize>) -> usize {
        let n = self.backends.len();
        let tiers: [&dyn Fn(&Backend) -> bool; 3] = [
            &|b| b.healthy.get() && b.local,
            &|b| b.healthy.get(),
            &|_| true,
        ];
        let start = self.cursor.get();
        self.cursor.set(start.wrapping_add(1));
        for tier in tiers {
            let count = (0..n)
                .filter(|&i| Some(i) != avoid && tier(&self.backends[i]))
                .count();
            if count == 0 {
                continue;
            }
            let k = start % count;
            return (0..n)
                .filter(|&i| Some(i) != avoid && tier(&self.backends[i]))
                .nth(k)
                .expect("k < count");
        }
        avoid.unwrap_or(0)
    }

    fn mark_down(&self, i: usize) {
        let b = &self.backends[i];
        b.healthy.set(false);
        b.streak.set(0);
        b.idle.borrow_mut().clear();
    }

    /// A pooled or new connection to `addr`.
    async fn connection(
        &self,
        addr: &str,
        pool: &Pool,
    ) -> Result<SendRequest<Empty<Bytes>>, Failure> {
        let now = self.env.now();
        loop {
            let Some((s, since)) = pool.borrow_mut().pop() else {
                break;
            };
            if !s.is_closed() && s.is_ready() && now.duration_since(since) < POOL_IDLE {
                return Ok(s);
            }
        }
        let io = match self
            .env
            .timeout(CONNECT_TIMEOUT, self.env.net().connect(addr))
            .await
        {
            Ok(Ok(io)) => io,
            _ => return Err(Failure::NotSent),
        };
        let (send, conn) = match http1::handshake(TokioIo::new(io)).await {
            Ok(x) => x,
            Err(_) => return Err(Failure::NotSent),
        };
        self.env.spawn(async move {
            let _ = conn.await;
        });
        Ok(send)
    }

    /// Sends one request on `pool`'s connections to `addr`; returns the
    /// status and the answering pod.
    async fn send(
        &self,
        addr: &str,
        pool: &Pool,
        method: Method,
        path: &str,
    ) -> Result<(u16, Option<String>), Failure> {
        let mut conn = self.connection(addr, pool).await?;
        let req = HttpRequest::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, addr)
            .body(Empty::<Bytes>::new())
            .expect("a valid request");
        let resp = conn.send_request(req).await.map_err(|_| Failure::Lost)?;
        let status = resp.status().as_u16();
        let pod = resp
            .headers()
            .get(faultline_kubelet::apps::POD_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        resp.into_body()
            .collect()
            .await
            .map_err(|_| Failure::Lost)?;
        let mut idle = pool.borrow_mut();
        if !conn.is_closed() && idle.len() < POOL_MAX {
            idle.push((conn, self.env.now()));
        }
        Ok((status, pod))
    }

    /// One round of health checks, concurrently.
    async fn check_all(self: &Rc<Self>) {
        let mut checks = Vec::new();
        for i in 0..self.backends.len() {
            let me = self.clone();
            checks.push(self.env.spawn(async move {
                let b = &me.backends[i];
                let good = matches!(
                    me.env
                        .timeout(
                            CHECK_TIMEOUT,
                            me.send(&b.health_addr, &b.idle_checks, Method::GET, "/healthz")
                        )
                        .await,
                    Ok(Ok((200, _)))
                );
                let s = b.streak.get();
                let s = match (good, s) {
                    (true, s) if s > 0 => s + 1,
                    (true, _) => 1,
                    (false, s) if s < 0 => s - 1,
                    (false, _) => -1,
                };
                b.streak.set(s);
                if s >= 2 {
                    b.healthy.set(true);
                } else if s <= -2 {
                    b.healthy.set(false);
                }
                if !good {
                    b.idle_checks.borrow_mut().clear();
                }
            }));
        }
        for c in checks {
            let _ = c.await;
        }
    }
}

/// One user host: sends requests until `stop`, recording each in `log`.
pub async fn user_loop(
    env: Env,
    spec: Rc<UserSpec>,
    log: SharedTrafficLog,
    clock: Clock,
    stop: Rc<Cell<bool>>,
) {
    let begin = env.now();
    let lb = Rc::new(Balancer {
        env: env.clone(),
        backends: spec
            .nodes
            .iter()
            .map(|(n, dc)| Backend {
                addr: format!("{n}:{}", spec.port),
                health_addr: format!("{n}:{HEALTHZ_PORT}"),
                local: *dc == spec.datacenter,
                healthy: Cell::new(false),
                streak: Cell::new(0),
                idle: RefCell::new(Vec::new()),
                idle_checks: RefCell::new(Vec::new()),
            })
            .collect(),
        cursor: Cell::new(0),
    });
    let checker = lb.clone();
    let stop2 = stop.clone();
    env.spawn(async move {
        while !stop2.get() {
            checker.check_all().await;
            checker.env.sleep(CHECK_EVERY).await;
        }
    });
    // The host's rng is seeded from the run seed and the host name, so the
    // arrival times are part of the replayable schedule.
    let phase: f64 = env.rng().random_range(0.0..1.0);
    let mut next = begin + spec.start + Duration::from_secs_f64(phase / spec.rate);
    env.sleep_until(next).await;
    while !stop.get() {
        let (lb2, spec2, log2, clock2) = (lb.clone(), spec.clone(), log.clone(), clock.clone());
        env.spawn(async move { one_request(&lb2, &spec2, &log2, &clock2).await });
        // Arrival times are kept exact and slept until, not slept between:
        // tokio's timers round a sleep up to the next millisecond, which
        // at 67 requests per second per host cut the rate by ~3%.
        let u: f64 = env.rng().random_range(1e-9..1.0);
        next += Duration::from_secs_f64(-u.ln() / spec.rate);
        env.sleep_until(next).await;
    }
}

async fn one_request(lb: &Balancer, spec: &UserSpec, log: &SharedTrafficLog, clock: &Clock) {
    let env = &lb.env;
    let sent_ns = clock();
    let deadline = env.now() + spec.timeout;
    let method = match spec.method {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
    };
    let idempotent = spec.method == HttpMethod::Get;
    let mut outcome = Outcome::Error;
    let (mut node, mut pod, mut attempts) = (None, None, 0u8);
    let mut avoid = None;
    for attempt in 0..2 {
        let left = deadline.saturating_duration_since(env.now());
        if left.is_zero() {
            break;
        }
        // The first try gets half the budget so a retry has time left.
        let budget = if attempt == 0 { left / 2 } else { left };
        let i = lb.pick(avoid);
        let b = &lb.backends[i];
        node = Some(i as u16);
        attempts += 1;
        let retry = match env
            .timeout(budget, lb.send(&b.addr, &b.idle, method.clone(), "/"))
            .await
        {
            Ok(Ok((status, who))) => {
                pod = who.map(|p| log.borrow_mut().pod_id(&p));
                if (200..300).contains(&status) {
                    outcome = Outcome::Ok;
                    break;
                }
                outcome = Outcome::Status(status);
                // 503 from the proxy: nothing was forwarded.
                (idempotent && status >= 500) || status == 503
            }
            Ok(Err(Failure::NotSent)) => {
                lb.mark_down(i);
                outcome = Outcome::Error;
                true
            }
            Ok(Err(Failure::Lost)) => {
                outcome = Outcome::Error;
                idempotent
            }
            Err(_) => {
                lb.mark_down(i);
                outcome = Outcome::Timeout;
                idempotent
            }
        };
        if !retry {
            break;
        }
        avoid = Some(i);
    }
    log.borrow_mut().requests.push(Request {
        service: spec.service,
        client: spec.client,
        sent_ns,
        done_ns: clock(),
        outcome,
        node,
        pod,
        attempts,
    });
}
