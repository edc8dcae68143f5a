//! Where requests go: round robin over ready endpoints, around dead ones,
//! retried by the rules, 503 with nobody to ask; listeners following their
//! Services.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use faultline_engine::run;
use faultline_env::{BoxConn, Env};
use faultline_proxy::ProxyConfig;
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{
    eventually, get, request, tally, trace_lines, try_connect, Answer, Cluster, KeepAlive, ADDR,
    POD_PORT, PORT,
};

fn pods(names: &[(&str, usize)]) -> std::collections::BTreeMap<String, usize> {
    names.iter().map(|(n, c)| (n.to_string(), *c)).collect()
}

/// Service `default/<name>` on `port` with the `ready` endpoints, once
/// the proxy has applied them.
async fn serve(c: &Cluster, name: &str, port: u16, ready: &[&str]) {
    c.service(name, port, POD_PORT).await;
    c.endpoints(name, ready, &[]).await;
    until_endpoints(c, name, port, ready.len()).await;
}

/// Waits until the proxy has applied an endpoint set for `service` with
/// `count` addresses (without sending it a request, which would move the
/// round-robin cursor).
async fn until_endpoints(c: &Cluster, service: &str, port: u16, count: usize) {
    let needle = format!("proxy: endpoints of default/{service}:http on :{port}: {count}");
    eventually(&c.client, Duration::from_secs(60), || async {
        !trace_lines(&c.world, &needle).is_empty()
    })
    .await
    .unwrap_or_else(|_| panic!("never saw {needle:?}"));
}

#[test]
fn requests_go_round_robin_over_every_ready_endpoint() {
    run(1, || async {
        let c = Cluster::new(1, ProxyConfig::new("n1")).await;
        for (i, ip) in ["10.9.0.1", "10.9.0.2", "10.9.0.3", "10.9.0.4"]
            .iter()
            .enumerate()
        {
            c.start_pod("p1", &format!("web-{}", i + 1), ip).await;
        }
        c.service("web", PORT, POD_PORT).await;
        // web-4 runs but is not ready: never a backend.
        c.endpoints("web", &["10.9.0.1", "10.9.0.2", "10.9.0.3"], &["10.9.0.4"])
            .await;
        until_endpoints(&c, "web", PORT, 3).await;

        let mut answers: Vec<Answer> = Vec::new();
        for _ in 0..9 {
            answers.push(get(&c.client, ADDR, "/hello").await.unwrap());
        }
        assert!(answers.iter().all(|a| a.status == 200), "{answers:?}");
        assert!(answers.iter().all(|a| a.node.as_deref() == Some("n1")));
        assert_eq!(
            tally(&answers),
            pods(&[("web-1", 3), ("web-2", 3), ("web-3", 3)])
        );
        // Strict rotation: every three answers in a row name three pods.
        for w in answers.windows(3) {
            assert!(w[0].pod != w[1].pod && w[1].pod != w[2].pod && w[0].pod != w[2].pod);
        }
        let json: serde_json::Value = serde_json::from_str(&answers[0].body).unwrap();
        assert_eq!(json["path"], "/hello");
        assert_eq!(json["node"], "p1");

        // One keep-alive client connection: still spread per request.
        let mut conn = KeepAlive::connect(&c.client, ADDR).await.unwrap();
        let mut kept = Vec::new();
        for _ in 0..6 {
            kept.push(
                conn.send(ADDR, Method::GET, "/", Bytes::new())
                    .await
                    .unwrap(),
            );
        }
        assert_eq!(
            tally(&kept),
            pods(&[("web-1", 2), ("web-2", 2), ("web-3", 2)])
        );
        // Every method goes through, HEAD without a body.
        for method in [
            Method::HEAD,
            Method::OPTIONS,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
        ] {
            let a = conn
                .send(ADDR, method.clone(), "/m", Bytes::from_static(b"{}"))
                .await
                .unwrap();
            assert_eq!(a.status, 200, "{method}");
            assert_eq!(a.body.is_empty(), method == Method::HEAD, "{method}");
        }
        c.world.shutdown();
    });
}

/// A Service whose `dead` endpoints die.
struct Case {
    name: &'static str,
    port: u16,
    /// (IP, node) of its ready endpoints.
    ready: &'static [(&'static str, &'static str)],
    dead: usize,
}

#[test]
fn dead_endpoints_are_skipped_without_a_failed_get() {
    run(2, || async {
        let c = Cluster::new(2, ProxyConfig::new("n1")).await;
        c.start_pod("p1", "web-1", "10.9.0.1").await;
        let doomed = c.start_pod("p1", "web-2", "10.9.0.2").await;
        c.start_pod("p2", "web-3", "10.9.0.3").await;
        c.start_pod("p1", "web-4", "10.9.0.4").await;
        c.start_pod("p2", "web-5", "10.9.0.5").await;
        c.start_pod("p1", "web-6", "10.9.0.6").await;
        // One Service per way to die, and one whose two pods on a dead node
        // come one after the other in round-robin order.
        let cases = [
            Case {
                name: "refused",
                port: 81,
                ready: &[("10.9.0.1", "p1"), ("10.9.0.2", "p1"), ("10.9.0.4", "p1")],
                dead: 1,
            },
            Case {
                name: "crashed",
                port: 82,
                ready: &[("10.9.0.1", "p1"), ("10.9.0.3", "p2"), ("10.9.0.4", "p1")],
                dead: 1,
            },
            Case {
                name: "unknown",
                port: 83,
                ready: &[("10.9.0.1", "p1"), ("10.9.0.4", "p1"), ("10.9.0.9", "p9")],
                dead: 1,
            },
            Case {
                name: "node-down",
                port: 84,
                ready: &[
                    ("10.9.0.1", "p1"),
                    ("10.9.0.3", "p2"),
                    ("10.9.0.5", "p2"),
                    ("10.9.0.6", "p1"),
                ],
                dead: 2,
            },
        ];
        for case in &cases {
            c.service(case.name, case.port, POD_PORT).await;
            c.endpoints_on(case.name, case.ready).await;
            until_endpoints(&c, case.name, case.port, case.ready.len()).await;
        }
        // Warm the pools: the proxy keeps connections to the live ones.
        for case in &cases {
            for _ in 0..case.ready.len() {
                let _ = get(&c.client, &format!("n1:{}", case.port), "/").await;
            }
        }

        // web-2's port closes (refused); p2 crashes with web-3 and web-5
        // (black hole: connecting hangs).
        c.stop_pod("p1", &doomed).await;
        c.world.crash(c.world.host("p2").unwrap(), false);

        for Case {
            name, port, dead, ..
        } in cases
        {
            let addr = format!("n1:{port}");
            let mut answers = Vec::new();
            let mut slow = 0;
            for _ in 0..20 {
                let t0 = c.client.now();
                answers.push(get(&c.client, &addr, "/").await.unwrap());
                if c.client.now() - t0 > Duration::from_millis(50) {
                    slow += 1;
                }
            }
            assert!(
                answers.iter().all(|a| a.status == 200),
                "{name}: {:?}",
                tally(&answers)
            );
            let live = ["web-1", "web-4", "web-6"];
            assert!(
                tally(&answers).keys().all(|p| live.contains(&p.as_str())),
                "{name}: {:?}",
                tally(&answers)
            );
            // Once seen failing, a dead endpoint cools down: at most one
            // connect timeout each.
            assert!(slow <= dead, "{name}: {slow} slow answers");
        }
        c.world.shutdown();
    });
}

#[test]
fn a_post_to_a_refused_endpoint_is_retried_elsewhere() {
    run(3, || async {
        let c = Cluster::new(3, ProxyConfig::new("n1")).await;
        let gone = c.start_pod("p1", "web-1", "10.9.0.1").await;
        c.start_pod("p1", "web-2", "10.9.0.2").await;
        c.stop_pod("p1", &gone).await;
        serve(&c, "web", PORT, &["10.9.0.1", "10.9.0.2"]).await;
        // The first pick is 10.9.0.1 (sorted first): refused, nothing sent,
        // so even a POST goes to the next one.
        let a = request(&c.client, ADDR, Method::POST, "/orders", Bytes::from("x=1"))
            .await
            .unwrap();
        assert_eq!((a.status, a.pod.as_deref()), (200, Some("web-2")));
        c.world.shutdown();
    });
}

/// Listens on `ip:8080` of `env`'s host and runs `handle` on every
/// connection accepted, each in a task of its own.
async fn serve_each<F, Fut>(env: &Env, ip: &str, handle: F)
where
    F: Fn(BoxConn) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let mut listener = env.net().bind_ip(ip, POD_PORT).await.unwrap();
    let e = env.clone();
    env.spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            e.spawn(handle(conn));
        }
    });
}

/// Answers every request on `conn` with an empty 200 from pod `pod`, after
/// sleeping `delay` on the given environment when there is one, until the
/// client hangs up.
async fn answer_every_request(mut conn: BoxConn, pod: &str, delay: Option<(Env, Duration)>) {
    let answer = format!("HTTP/1.1 200 OK\r\nx-pod: {pod}\r\ncontent-length: 0\r\n\r\n");
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            seen.drain(..end + 4);
            if let Some((env, delay)) = &delay {
                env.sleep(*delay).await;
            }
            if conn.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
        }
    }
}

/// A server on `ip:8080` of `env`'s host that reads a request and hangs up
/// without answering.
async fn hang_up_server(env: &Env, ip: &str) {
    serve_each(env, ip, |mut conn| async move {
        let mut buf = [0u8; 1024];
        let _ = conn.read(&mut buf).await;
    })
    .await;
}

#[test]
fn a_lost_post_is_not_resent_but_a_lost_get_is() {
    run(4, || async {
        let c = Cluster::new(4, ProxyConfig::new("n1")).await;
        hang_up_server(&c.pod_env("p1"), "10.9.0.1").await;
        c.start_pod("p1", "web-2", "10.9.0.2").await;
        for (name, port) in [("posts", 81), ("gets", 82)] {
            serve(&c, name, port, &["10.9.0.1", "10.9.0.2"]).await;
        }
        // Sent, then the connection died: the POST may have been applied.
        let a = request(&c.client, "n1:81", Method::POST, "/", Bytes::from("x"))
            .await
            .unwrap();
        assert_eq!((a.status, a.node.as_deref()), (502, Some("n1")));
        assert_eq!(a.body, "upstream failed\n");
        // The same failure under a GET is retried on the other endpoint.
        let a = get(&c.client, "n1:82", "/").await.unwrap();
        assert_eq!((a.status, a.pod.as_deref()), (200, Some("web-2")));
        // The hang-up endpoint now cools down: POSTs avoid it.
        let a = request(&c.client, "n1:81", Method::POST, "/", Bytes::from("x"))
            .await
            .unwrap();
        assert_eq!((a.status, a.pod.as_deref()), (200, Some("web-2")));
        c.world.shutdown();
    });
}

#[test]
fn a_silent_endpoint_times_out_a_post_with_504() {
    run(5, || async {
        let mut cfg = ProxyConfig::new("n1");
        cfg.upstream_timeout = Duration::from_millis(500);
        let c = Cluster::new(5, cfg).await;
        // Accepts and reads, never answers.
        let env = c.pod_env("p1");
        let mut listener = env.net().bind_ip("10.9.0.1", POD_PORT).await.unwrap();
        env.spawn(async move {
            let mut held = Vec::new();
            loop {
                let (conn, _) = listener.accept().await.unwrap();
                held.push(conn);
            }
        });
        serve(&c, "web", PORT, &["10.9.0.1"]).await;
        let t0 = c.client.now();
        let a = request(&c.client, ADDR, Method::POST, "/", Bytes::from("x"))
            .await
            .unwrap();
        assert_eq!((a.status, a.body.as_str()), (504, "upstream timed out\n"));
        let waited = c.client.now() - t0;
        assert!(
            waited >= Duration::from_millis(500) && waited < Duration::from_millis(600),
            "{waited:?}"
        );
        c.world.shutdown();
    });
}

#[test]
fn no_endpoints_is_503_and_listeners_follow_their_service() {
    run(6, || async {
        let c = Cluster::new(6, ProxyConfig::new("n1")).await;
        c.service("empty", 84, POD_PORT).await;
        c.until_status(84, 503).await;
        let a = get(&c.client, "n1:84", "/").await.unwrap();
        assert_eq!(
            (a.status, a.body.as_str(), a.node.as_deref()),
            (503, "no ready endpoints\n", Some("n1"))
        );

        c.delete::<faultline_api::Service>("default", "empty").await;
        let env = c.client.clone();
        eventually(&env, Duration::from_secs(30), || async {
            matches!(
                try_connect(&env, "n1:84", Duration::from_secs(1)).await,
                Err(e) if e.contains("refused")
            )
        })
        .await
        .expect("the port closes with its Service");

        c.service("empty", 84, POD_PORT).await;
        c.until_status(84, 503).await;
        assert_eq!(trace_lines(&c.world, "proxy: open :84").len(), 2);
        assert_eq!(
            trace_lines(&c.world, "proxy: close :84 of default/empty:http").len(),
            1
        );
        c.world.shutdown();
    });
}

#[test]
fn closing_a_listener_closes_its_connections() {
    run(7, || async {
        let c = Cluster::new(7, ProxyConfig::new("n1")).await;
        c.start_pod("p1", "web-1", "10.9.0.1").await;
        c.service("web", PORT, POD_PORT).await;
        c.endpoints("web", &["10.9.0.1"], &[]).await;
        c.until_status(PORT, 200).await;
        let mut kept = KeepAlive::connect(&c.client, ADDR).await.unwrap();
        let a = kept
            .send(ADDR, Method::GET, "/", Bytes::new())
            .await
            .unwrap();
        assert_eq!(a.status, 200);
        c.delete::<faultline_api::Service>("default", "web").await;
        let env = c.client.clone();
        eventually(&env, Duration::from_secs(30), || async {
            try_connect(&env, ADDR, Duration::from_secs(1))
                .await
                .is_err()
        })
        .await
        .unwrap();
        let again = env
            .timeout(
                Duration::from_secs(1),
                kept.send(ADDR, Method::GET, "/", Bytes::new()),
            )
            .await;
        assert!(matches!(again, Ok(Err(_))), "{again:?}");
        c.world.shutdown();
    });
}

#[test]
fn the_first_service_by_name_wins_a_shared_port() {
    run(8, || async {
        let c = Cluster::new(8, ProxyConfig::new("n1")).await;
        c.start_pod("p1", "web-a", "10.9.0.1").await;
        c.start_pod("p1", "web-b", "10.9.0.2").await;
        c.service("b-web", 85, POD_PORT).await;
        c.endpoints("b-web", &["10.9.0.2"], &[]).await;
        c.until_status(85, 200).await;
        assert_eq!(
            get(&c.client, "n1:85", "/").await.unwrap().pod.as_deref(),
            Some("web-b")
        );
        c.endpoints("a-web", &["10.9.0.1"], &[]).await;
        c.service("a-web", 85, POD_PORT).await;
        let env = c.client.clone();
        eventually(&env, Duration::from_secs(30), || async {
            matches!(get(&env, "n1:85", "/").await, Ok(a) if a.pod.as_deref() == Some("web-a"))
        })
        .await
        .expect("a-web takes the port");
        assert_eq!(
            trace_lines(
                &c.world,
                "proxy: port 85 claimed by default/a-web and default/b-web: default/a-web is served"
            )
            .len(),
            1
        );
        c.delete::<faultline_api::Service>("default", "a-web").await;
        eventually(&env, Duration::from_secs(30), || async {
            matches!(get(&env, "n1:85", "/").await, Ok(a) if a.pod.as_deref() == Some("web-b"))
        })
        .await
        .expect("b-web gets the port back");
        c.world.shutdown();
    });
}

/// A server on `ip:8080` that answers the first request of each
/// connection (keeping it alive), then hangs up on the next one unanswered:
/// the proxy's pooled connection to it turns out dead only when used.
async fn one_shot_server(env: &Env, ip: &str) {
    serve_each(env, ip, |mut conn| async move {
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        let answer = b"HTTP/1.1 200 OK\r\nx-pod: one-shot\r\ncontent-length: 2\r\n\r\nok";
        if conn.write_all(answer).await.is_err() {
            return;
        }
        // The next request is read, then the connection dropped.
        let _ = conn.read(&mut buf).await;
    })
    .await;
}

#[test]
fn a_dead_pooled_connection_is_retried_and_does_not_cool_its_endpoint() {
    run(9, || async {
        let c = Cluster::new(9, ProxyConfig::new("n1")).await;
        one_shot_server(&c.pod_env("p1"), "10.9.0.1").await;
        c.start_pod("p1", "web-2", "10.9.0.2").await;
        serve(&c, "web", PORT, &["10.9.0.1", "10.9.0.2"]).await;
        let mut pods = Vec::new();
        for _ in 0..6 {
            let a = get(&c.client, ADDR, "/").await.unwrap();
            assert_eq!(a.status, 200);
            pods.push(a.pod.unwrap());
        }
        // 3rd: the pooled connection to one-shot dies under the GET, which
        // goes to web-2 instead; 4th: one-shot is still in rotation (a dead
        // pooled connection says nothing about its endpoint), over a fresh
        // connection. And so on.
        assert_eq!(
            pods,
            vec!["one-shot", "web-2", "web-2", "one-shot", "web-2", "web-2"]
        );

        // With no other endpoint, the retry takes a fresh connection to the
        // same one.
        serve(&c, "solo", 81, &["10.9.0.1"]).await;
        for _ in 0..4 {
            let a = get(&c.client, "n1:81", "/").await.unwrap();
            assert_eq!((a.status, a.pod.as_deref()), (200, Some("one-shot")));
        }
        c.world.shutdown();
    });
}

#[test]
fn a_port_that_cannot_be_bound_is_retried_and_harms_nothing() {
    run(10, || async {
        let c = Cluster::new(10, ProxyConfig::new("n1")).await;
        c.start_pod("p1", "web-1", "10.9.0.1").await;
        // The proxy's own health port.
        c.service("clash", 10256, POD_PORT).await;
        c.service("web", PORT, POD_PORT).await;
        c.endpoints("web", &["10.9.0.1"], &[]).await;
        c.until_status(PORT, 200).await;
        c.client.sleep(Duration::from_secs(30)).await;
        let lines = trace_lines(&c.world, "proxy: cannot listen on :10256");
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].ends_with("for default/clash:http: port 10256 already in use on n1; retrying"),
            "{lines:?}"
        );
        let a = get(&c.client, "n1:10256", "/healthz").await.unwrap();
        assert_eq!(a.status, 200);
        c.delete::<faultline_api::Service>("default", "clash").await;
        c.client.sleep(Duration::from_secs(10)).await;
        assert_eq!(get(&c.client, ADDR, "/").await.unwrap().status, 200);
        c.world.shutdown();
    });
}

#[test]
fn upstream_connections_are_kept_alive_and_reused() {
    run(11, || async {
        let c = Cluster::new(11, ProxyConfig::new("n1")).await;
        // A keep-alive server that counts its connections.
        let accepted = Rc::new(std::cell::Cell::new(0u32));
        let count = accepted.clone();
        serve_each(&c.pod_env("p1"), "10.9.0.1", move |conn| {
            count.set(count.get() + 1);
            answer_every_request(conn, "counter", None)
        })
        .await;
        serve(&c, "web", PORT, &["10.9.0.1"]).await;
        // Sequential requests, each on a new client connection.
        for _ in 0..50 {
            let a = get(&c.client, ADDR, "/").await.unwrap();
            assert_eq!((a.status, a.pod.as_deref()), (200, Some("counter")));
        }
        assert_eq!(accepted.get(), 1);
        // Concurrent ones open a few more, kept for later.
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let env = c.client.clone();
            tasks.push(c.client.spawn(async move {
                for _ in 0..10 {
                    assert_eq!(get(&env, ADDR, "/").await.unwrap().status, 200);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let after_burst = accepted.get();
        assert!((2..=5).contains(&after_burst), "{after_burst}");
        for _ in 0..20 {
            get(&c.client, ADDR, "/").await.unwrap();
        }
        assert_eq!(accepted.get(), after_burst);
        // Idle past pool_idle_timeout: not reused, a fresh one is dialed.
        c.client.sleep(Duration::from_secs(5)).await;
        get(&c.client, ADDR, "/").await.unwrap();
        assert_eq!(accepted.get(), after_burst + 1);
        c.world.shutdown();
    });
}

#[test]
fn a_partition_from_most_endpoints_costs_no_request() {
    run(12, || async {
        let c = Cluster::new(12, ProxyConfig::new("n1")).await;
        // Three pods on p1, six on p2; p2 will be cut off from n1, with
        // the proxy's pooled connections to it (a black hole, not a close).
        let mut ready = Vec::new();
        for i in 1..=9u8 {
            let host = if i <= 3 { "p1" } else { "p2" };
            let ip = format!("10.9.0.{i}");
            c.start_pod(host, &format!("web-{i}"), &ip).await;
            ready.push((ip, host));
        }
        let ready: Vec<(&str, &str)> = ready.iter().map(|(ip, h)| (ip.as_str(), *h)).collect();
        c.service("web", PORT, POD_PORT).await;
        c.endpoints_on("web", &ready).await;
        until_endpoints(&c, "web", PORT, 9).await;

        // Users: 50 GETs a second, each given 1 s (what a load balancer
        // gives a first try before it retries another node).
        let log: Rc<RefCell<Vec<(u64, bool)>>> = Rc::default();
        let (env, l) = (c.client.clone(), log.clone());
        let users = c.client.spawn(async move {
            let start = env.now();
            let mut tasks = Vec::new();
            for i in 0..1000u64 {
                let (env2, l2) = (env.clone(), l.clone());
                tasks.push(env.spawn(async move {
                    let ok = env2
                        .timeout(Duration::from_secs(1), get(&env2, ADDR, "/"))
                        .await
                        .is_ok_and(|a| a.is_ok_and(|a| a.status == 200));
                    l2.borrow_mut().push((i, ok));
                }));
                env.sleep_until(start + Duration::from_millis(20 * (i + 1)))
                    .await;
            }
            for t in tasks {
                t.await.unwrap();
            }
        });
        c.client.sleep(Duration::from_secs(5)).await;
        c.world.partition(c.node, c.world.host("p2").unwrap());
        users.await.unwrap();
        let failed: Vec<u64> = log
            .borrow()
            .iter()
            .filter(|(_, ok)| !ok)
            .map(|(i, _)| *i)
            .collect();
        // Requests caught on a pooled connection into the partition are
        // abandoned when their endpoint stalls and retried elsewhere;
        // connecting into it fails within the connect timeout and is
        // retried; then the dead endpoints cool down.
        assert!(failed.is_empty(), "{} failed: {failed:?}", failed.len());
        assert_eq!(log.borrow().len(), 1000);
        c.world.shutdown();
    });
}

/// A server on `ip:8080` that answers every request after `delay`.
async fn slow_server(env: &Env, ip: &str, delay: Duration) {
    let e = env.clone();
    serve_each(env, ip, move |conn| {
        answer_every_request(conn, "slow", Some((e.clone(), delay)))
    })
    .await;
}

#[test]
fn a_slow_endpoint_is_waited_for_unless_a_healthy_one_can_answer() {
    run(13, || async {
        let c = Cluster::new(13, ProxyConfig::new("n1")).await;
        slow_server(&c.pod_env("p1"), "10.9.0.1", Duration::from_millis(800)).await;
        c.start_pod("p1", "web-2", "10.9.0.2").await;
        // Alone, a slow endpoint is simply slow.
        serve(&c, "solo", 81, &["10.9.0.1"]).await;
        for _ in 0..3 {
            let t0 = c.client.now();
            let a = get(&c.client, "n1:81", "/").await.unwrap();
            assert_eq!((a.status, a.pod.as_deref()), (200, Some("slow")));
            assert!(c.client.now() - t0 >= Duration::from_millis(800));
        }
        // Beside a healthy one, a GET waiting on it past the stall timeout
        // is retried there.
        serve(&c, "pair", 82, &["10.9.0.1", "10.9.0.2"]).await;
        let t0 = c.client.now();
        let a = get(&c.client, "n1:82", "/").await.unwrap();
        let took = c.client.now() - t0;
        assert_eq!((a.status, a.pod.as_deref()), (200, Some("web-2")));
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_millis(600),
            "{took:?}"
        );
        // A POST is not (it could not be retried): once the slow one's
        // cooldown is over, a POST to it waits for its answer.
        c.client.sleep(Duration::from_secs(6)).await;
        let t0 = c.client.now();
        let a = request(&c.client, "n1:82", Method::POST, "/", Bytes::new())
            .await
            .unwrap();
        assert_eq!((a.status, a.pod.as_deref()), (200, Some("slow")));
        assert!(c.client.now() - t0 >= Duration::from_millis(800));
        c.world.shutdown();
    });
}
