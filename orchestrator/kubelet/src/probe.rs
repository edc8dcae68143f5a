//! Probes: one probe against a pod IP ([`probe`]) and the threshold
//! machine that turns a run of readiness results into ready / not ready
//! ([`ProbeState`]). Liveness probes use the same probe and timings; the
//! kubelet kills a container after `failureThreshold` failures in a row.
//!
//! Kubernetes semantics: a container is not ready until a probe succeeds
//! (`successThreshold` times in a row, default 1); once ready it stays ready
//! until `failureThreshold` probes in a row fail (default 3). The first probe
//! runs `initialDelaySeconds` after the container started, then one every
//! `periodSeconds` (default 10), each with a `timeoutSeconds` deadline
//! (default 1). Zero or negative fields take their defaults, as the API
//! server's defaulting would have filled them in.

use std::time::Duration;

use bytes::Bytes;
use faultline_api::{ContainerPort, IntOrString, Probe};
use faultline_env::Env;
use http::header::{HOST, USER_AGENT};
use http::Request;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use crate::runtime::{ContainerId, ContainerRuntime, ExecOutput};

/// Default `periodSeconds`.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(10);
/// Default `timeoutSeconds`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// Default `successThreshold`.
pub const DEFAULT_SUCCESS_THRESHOLD: u32 = 1;
/// Default `failureThreshold`.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;

/// The outcome of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    Success,
    /// Why it failed, for events and logs (connection refused, timed out,
    /// status 503, a named port the container does not declare, ...).
    Failure(String),
}

impl ProbeResult {
    /// True on success.
    pub fn is_success(&self) -> bool {
        matches!(self, ProbeResult::Success)
    }
}

/// Runs `probe` once against `pod_ip`. Named ports resolve through
/// `container_ports` (the probed container's). An HTTP probe succeeds on a
/// status in 200..400; a TCP probe when the connection opens. Everything,
/// connecting included, runs under the probe's timeout. A misconfigured
/// probe (no handler, unknown port name) fails.
pub async fn probe(
    env: &Env,
    pod_ip: &str,
    probe: &Probe,
    container_ports: &[ContainerPort],
) -> ProbeResult {
    let timeout = probe_timeout(probe);
    if let Some(action) = &probe.http_get {
        let port = match resolve_port(&action.port, container_ports) {
            Ok(port) => port,
            Err(why) => return ProbeResult::Failure(why),
        };
        let addr = format!("{pod_ip}:{port}");
        let path = match action.path.as_str() {
            "" => "/".to_string(),
            p if p.starts_with('/') => p.to_string(),
            p => format!("/{p}"),
        };
        let what = format!("GET http://{addr}{path}");
        match env.timeout(timeout, http_get(env, &addr, &path)).await {
            Err(_) => ProbeResult::Failure(format!("{what}: timed out after {timeout:?}")),
            Ok(Err(why)) => ProbeResult::Failure(format!("{what}: {why}")),
            Ok(Ok(status)) if (200..400).contains(&status) => ProbeResult::Success,
            Ok(Ok(status)) => ProbeResult::Failure(format!("{what}: status {status}")),
        }
    } else if let Some(action) = &probe.tcp_socket {
        let port = match resolve_port(&action.port, container_ports) {
            Ok(port) => port,
            Err(why) => return ProbeResult::Failure(why),
        };
        let addr = format!("{pod_ip}:{port}");
        match env.timeout(timeout, env.net().connect(&addr)).await {
            Err(_) => ProbeResult::Failure(format!("connect {addr}: timed out after {timeout:?}")),
            Ok(Err(e)) => ProbeResult::Failure(format!("connect {addr}: {e}")),
            // Dropping the connection closes it.
            Ok(Ok(_conn)) => ProbeResult::Success,
        }
    } else {
        ProbeResult::Failure("the probe has no httpGet or tcpSocket handler".to_string())
    }
}

/// Runs one probe of container `id`: an `exec` probe through the runtime,
/// the others with [`probe`] against `pod_ip`.
pub async fn probe_container(
    env: &Env,
    runtime: &dyn ContainerRuntime,
    id: &ContainerId,
    pod_ip: &str,
    p: &Probe,
    container_ports: &[ContainerPort],
) -> ProbeResult {
    let Some(exec) = &p.exec else {
        return probe(env, pod_ip, p, container_ports).await;
    };
    let timeout = probe_timeout(p);
    let what = format!("exec {:?}", exec.command);
    match runtime.exec(id, &exec.command, timeout).await {
        Err(e) => ProbeResult::Failure(format!("{what}: {e}")),
        Ok(ExecOutput { code: Some(0), .. }) => ProbeResult::Success,
        Ok(ExecOutput { code: None, .. }) => {
            ProbeResult::Failure(format!("{what}: timed out after {timeout:?}"))
        }
        Ok(ExecOutput {
            code: Some(code),
            output,
        }) => {
            let output = output.trim();
            ProbeResult::Failure(if output.is_empty() {
                format!("{what}: exit code {code}")
            } else {
                format!("{what}: exit code {code}: {output}")
            })
        }
    }
}

/// Resolves a probe's port: a number, or the name of one of the container's
/// ports.
pub fn resolve_port(port: &IntOrString, container_ports: &[ContainerPort]) -> Result<u16, String> {
    let number = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => container_ports
            .iter()
            .find(|p| !p.name.is_empty() && p.name == *name)
            .map(|p| p.container_port)
            .ok_or_else(|| format!("the container has no port named {name:?}"))?,
    };
    u16::try_from(number)
        .ok()
        .filter(|n| *n != 0)
        .ok_or_else(|| format!("port {number} is outside 1..=65535"))
}

/// The probe's timeout (`timeoutSeconds`, default 1s).
pub fn probe_timeout(probe: &Probe) -> Duration {
    seconds_or(probe.timeout_seconds, DEFAULT_TIMEOUT)
}

fn seconds_or(value: i32, default: Duration) -> Duration {
    if value > 0 {
        Duration::from_secs(value as u64)
    } else {
        default
    }
}

fn count_or(value: i32, default: u32) -> u32 {
    if value > 0 {
        value as u32
    } else {
        default
    }
}

/// One GET; returns the status. Runs under the caller's timeout: if that
/// fires, this future is dropped and the connection with it.
async fn http_get(env: &Env, addr: &str, path: &str) -> Result<u16, String> {
    let conn = env.net().connect(addr).await.map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(conn))
        .await
        .map_err(|e| e.to_string())?;
    let driver = env.spawn(async move {
        let _ = connection.await;
    });
    let _abort = AbortOnDrop(driver.abort_handle());
    let req = Request::get(path)
        .header(HOST, addr)
        .header(USER_AGENT, "faultline-probe/1")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    Ok(resp.status().as_u16())
}

/// Aborts a task when dropped (the probe's connection driver, whether the
/// probe finished or timed out).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A container's readiness as its probe results arrive.
///
/// Invariant: at most one of `successes` and `failures` is nonzero (they
/// count the current run of equal results).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeState {
    success_threshold: u32,
    failure_threshold: u32,
    initial_delay: Duration,
    period: Duration,
    timeout: Duration,
    successes: u32,
    failures: u32,
    ready: bool,
}

impl ProbeState {
    /// A fresh state (not ready) for `probe`, defaults applied.
    pub fn new(probe: &Probe) -> ProbeState {
        ProbeState {
            success_threshold: count_or(probe.success_threshold, DEFAULT_SUCCESS_THRESHOLD),
            failure_threshold: count_or(probe.failure_threshold, DEFAULT_FAILURE_THRESHOLD),
            initial_delay: Duration::from_secs(probe.initial_delay_seconds.max(0) as u64),
            period: seconds_or(probe.period_seconds, DEFAULT_PERIOD),
            timeout: probe_timeout(probe),
            successes: 0,
            failures: 0,
            ready: false,
        }
    }

    /// Feeds one probe result; returns whether the container is ready now.
    pub fn observe(&mut self, ok: bool) -> bool {
        assert!(self.successes == 0 || self.failures == 0);
        if ok {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            if self.successes >= self.success_threshold {
                self.ready = true;
            }
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            if self.failures >= self.failure_threshold {
                self.ready = false;
            }
        }
        self.ready
    }

    /// Whether the container is ready.
    pub fn ready(&self) -> bool {
        self.ready
    }

    /// Whether the last `failureThreshold` probes all failed (a liveness
    /// probe's verdict: the container is to be killed).
    pub fn failing(&self) -> bool {
        self.failures >= self.failure_threshold
    }

    /// Back to not ready with no history (the container restarted).
    pub fn reset(&mut self) {
        self.successes = 0;
        self.failures = 0;
        self.ready = false;
    }

    /// `initialDelaySeconds`.
    pub fn initial_delay(&self) -> Duration {
        self.initial_delay
    }

    /// `periodSeconds` (default 10s).
    pub fn period(&self) -> Duration {
        self.period
    }

    /// `timeoutSeconds` (default 1s).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `successThreshold` (default 1).
    pub fn success_threshold(&self) -> u32 {
        self.success_threshold
    }

    /// `failureThreshold` (default 3).
    pub fn failure_threshold(&self) -> u32 {
        self.failure_threshold
    }

    /// When the first probe of a container started at `started_at` is due.
    pub fn first_probe_at(&self, started_at: Instant) -> Instant {
        started_at + self.initial_delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_api::TcpSocketAction;

    fn probe_with(success: i32, failure: i32) -> Probe {
        Probe {
            tcp_socket: Some(TcpSocketAction {
                port: IntOrString::Int(8080),
            }),
            success_threshold: success,
            failure_threshold: failure,
            ..Probe::default()
        }
    }

    #[test]
    fn defaults_apply_to_unset_fields() {
        let s = ProbeState::new(&Probe::default());
        assert_eq!(s.success_threshold(), 1);
        assert_eq!(s.failure_threshold(), 3);
        assert_eq!(s.period(), Duration::from_secs(10));
        assert_eq!(s.timeout(), Duration::from_secs(1));
        assert_eq!(s.initial_delay(), Duration::ZERO);
        assert!(!s.ready());
        let s = ProbeState::new(&Probe {
            initial_delay_seconds: 5,
            period_seconds: 2,
            timeout_seconds: 3,
            ..Probe::default()
        });
        assert_eq!(s.initial_delay(), Duration::from_secs(5));
        assert_eq!(s.period(), Duration::from_secs(2));
        assert_eq!(s.timeout(), Duration::from_secs(3));
    }

    #[test]
    fn not_ready_until_the_first_success() {
        let mut s = ProbeState::new(&probe_with(0, 0));
        // Failures before any success keep it not ready, however few.
        assert!(!s.observe(false));
        assert!(!s.observe(false));
        assert!(s.observe(true));
    }

    #[test]
    fn failing_means_failure_threshold_failures_in_a_row() {
        let mut s = ProbeState::new(&probe_with(1, 2));
        s.observe(false);
        assert!(!s.failing());
        s.observe(true);
        s.observe(false);
        assert!(!s.failing(), "a success broke the run");
        s.observe(false);
        assert!(s.failing());
        // An unset threshold takes Kubernetes' default of 3.
        let mut d = ProbeState::new(&probe_with(1, 0));
        d.observe(false);
        d.observe(false);
        assert!(!d.failing());
        d.observe(false);
        assert!(d.failing());
    }

    #[test]
    fn ready_until_failure_threshold_failures_in_a_row() {
        let mut s = ProbeState::new(&probe_with(1, 3));
        assert!(s.observe(true));
        assert!(s.observe(false));
        assert!(s.observe(false));
        // A success resets the run of failures.
        assert!(s.observe(true));
        assert!(s.observe(false));
        assert!(s.observe(false));
        assert!(!s.observe(false));
        assert!(!s.observe(false));
        assert!(s.observe(true));
    }

    #[test]
    fn success_threshold_needs_successes_in_a_row() {
        let mut s = ProbeState::new(&probe_with(3, 1));
        assert!(!s.observe(true));
        assert!(!s.observe(true));
        assert!(!s.observe(false));
        assert!(!s.observe(true));
        assert!(!s.observe(true));
        assert!(s.observe(true));
        // Failure threshold 1: one failure is enough.
        assert!(!s.observe(false));
        assert!(!s.observe(true));
        s.reset();
        assert!(!s.ready());
    }

    #[test]
    fn first_probe_waits_for_the_initial_delay() {
        let s = ProbeState::new(&Probe {
            initial_delay_seconds: 7,
            ..Probe::default()
        });
        let t0 = Instant::now();
        assert_eq!(s.first_probe_at(t0), t0 + Duration::from_secs(7));
    }

    #[test]
    fn named_ports_resolve_through_the_container() {
        let ports = vec![
            ContainerPort {
                name: "http".into(),
                container_port: 8080,
                ..ContainerPort::default()
            },
            ContainerPort {
                name: "admin".into(),
                container_port: 9090,
                ..ContainerPort::default()
            },
        ];
        let named = |n: &str| IntOrString::String(n.into());
        assert_eq!(resolve_port(&named("admin"), &ports), Ok(9090));
        assert_eq!(resolve_port(&IntOrString::Int(81), &ports), Ok(81));
        assert_eq!(
            resolve_port(&named("grpc"), &ports),
            Err("the container has no port named \"grpc\"".to_string())
        );
        assert!(resolve_port(&IntOrString::Int(0), &ports).is_err());
        assert!(resolve_port(&IntOrString::Int(70000), &ports).is_err());
    }
}
