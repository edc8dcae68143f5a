//! Bad clients: garbage, stalls, idlers, floods and oversized requests are
//! refused or cut off, and everyone else is still served promptly.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use faultline_engine::run;
use faultline_env::BoxConn;
use faultline_proxy::ProxyConfig;
use http::Method;
use tokio::io::AsyncWriteExt;

use crate::{get, read_to_close, read_within, request, try_connect, Cluster, ADDR, POD_PORT, PORT};

/// A cluster serving `default/web` on `n1:80` from one echo pod.
async fn serving(seed: u64, cfg: ProxyConfig) -> Cluster {
    let c = Cluster::new(seed, cfg).await;
    c.start_pod("p1", "web-1", "10.9.0.1").await;
    c.service("web", PORT, POD_PORT).await;
    c.endpoints("web", &["10.9.0.1"], &[]).await;
    c.until_status(PORT, 200).await;
    c
}

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn garbage_gets_400_and_a_close_while_others_are_served() {
    run(21, || async {
        let c = serving(21, ProxyConfig::new("n1")).await;
        let mut garbage = try_connect(&c.other, ADDR, SECOND).await.unwrap();
        let mut bytes = b"\x00\x01\x02 garbage \xff\r\n".to_vec();
        bytes.extend((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
        let _ = garbage.write_all(&bytes).await;
        let (seen, closed) = read_to_close(&c.other, &mut garbage, 2 * SECOND).await;
        assert!(seen.starts_with("HTTP/1.1 400"), "{seen}");
        assert!(closed);
        // A request line that is not HTTP.
        let mut bad = try_connect(&c.other, ADDR, SECOND).await.unwrap();
        bad.write_all(b"HELLO THERE\r\n\r\n").await.unwrap();
        let (seen, closed) = read_to_close(&c.other, &mut bad, 2 * SECOND).await;
        assert!(seen.starts_with("HTTP/1.1 400") && closed, "{seen}");

        for _ in 0..3 {
            assert_eq!(get(&c.client, ADDR, "/").await.unwrap().status, 200);
        }
        c.world.shutdown();
    });
}

#[test]
fn a_stalled_client_is_cut_off_at_the_header_timeout_while_others_are_served() {
    run(22, || async {
        let c = serving(22, ProxyConfig::new("n1")).await;
        // Measured from before the connect: the proxy's clock starts at its
        // accept, a link latency later.
        let t0 = c.other.now();
        let mut stalled = try_connect(&c.other, ADDR, SECOND).await.unwrap();
        stalled
            .write_all(b"GET / HTTP/1.1\r\nHost: n1\r\nX-Slow: ")
            .await
            .unwrap();
        let mut silent = try_connect(&c.other, ADDR, SECOND).await.unwrap();

        // Meanwhile, another client is served as usual.
        let served = Rc::new(RefCell::new(Vec::new()));
        let (env, log) = (c.client.clone(), served.clone());
        let busy = c.client.spawn(async move {
            for _ in 0..20 {
                let t = env.now();
                let status = get(&env, ADDR, "/").await.map(|a| a.status).ok();
                log.borrow_mut().push((status, env.now() - t));
                env.sleep(Duration::from_millis(250)).await;
            }
        });

        assert_eq!(
            read_within(&c.other, &mut stalled, Duration::from_millis(4900)).await,
            "still open"
        );
        let (_, closed) = read_to_close(&c.other, &mut stalled, 10 * SECOND).await;
        let waited = c.other.now() - t0;
        assert!(closed);
        assert!(
            waited >= Duration::from_secs(5) && waited < Duration::from_millis(5100),
            "{waited:?}"
        );
        // A connection that never sends anything is a stalled client too.
        let (_, closed) = read_to_close(&c.other, &mut silent, SECOND).await;
        assert!(closed);

        busy.await.unwrap();
        let served = served.borrow();
        assert_eq!(served.len(), 20);
        assert!(
            served
                .iter()
                .all(|(s, took)| *s == Some(200) && *took < Duration::from_millis(20)),
            "{served:?}"
        );
        c.world.shutdown();
    });
}

#[test]
fn a_keep_alive_connection_may_idle_for_the_idle_timeout() {
    run(23, || async {
        let c = serving(23, ProxyConfig::new("n1")).await;
        let mut conn = try_connect(&c.client, ADDR, SECOND).await.unwrap();
        conn.write_all(b"GET / HTTP/1.1\r\nHost: n1\r\n\r\n")
            .await
            .unwrap();
        let seen = read_within(&c.client, &mut conn, SECOND).await;
        assert!(seen.starts_with("answered HTTP/1.1 200"), "{seen}");
        // Well past the header timeout, not past the idle timeout.
        assert_eq!(
            read_within(&c.client, &mut conn, Duration::from_secs(29)).await,
            "still open"
        );
        // Still usable.
        conn.write_all(b"GET / HTTP/1.1\r\nHost: n1\r\n\r\n")
            .await
            .unwrap();
        let seen = read_within(&c.client, &mut conn, SECOND).await;
        assert!(seen.starts_with("answered HTTP/1.1 200"), "{seen}");
        let t0 = c.client.now();
        let (_, closed) = read_to_close(&c.client, &mut conn, Duration::from_secs(40)).await;
        assert!(closed);
        let waited = c.client.now() - t0;
        assert!(
            waited >= Duration::from_millis(29_900) && waited < Duration::from_millis(30_100),
            "{waited:?}"
        );
        c.world.shutdown();
    });
}

#[test]
fn two_thousand_idle_connections_do_not_lock_out_a_client() {
    run(24, || async {
        let c = serving(24, ProxyConfig::new("n1")).await;
        let flood: Rc<RefCell<Vec<BoxConn>>> = Rc::default();
        for _ in 0..2000 {
            let (env, flood) = (c.other.clone(), flood.clone());
            c.other.spawn(async move {
                if let Ok(conn) = try_connect(&env, ADDR, SECOND).await {
                    flood.borrow_mut().push(conn);
                }
            });
        }
        c.other.sleep(Duration::from_millis(100)).await;
        assert_eq!(flood.borrow().len(), 2000, "every connection was accepted");

        let t0 = c.client.now();
        let a = get(&c.client, ADDR, "/").await.unwrap();
        assert_eq!(a.status, 200);
        assert!(c.client.now() - t0 < Duration::from_millis(20));

        // The proxy holds at most max_connections of them: the rest were
        // shed, oldest first.
        let mut conns = std::mem::take(&mut *flood.borrow_mut());
        let mut open = 0;
        for conn in conns.iter_mut() {
            if read_within(&c.other, conn, Duration::from_millis(1)).await == "still open" {
                open += 1;
            }
        }
        assert!(open <= 256, "{open} open");
        assert!(open >= 250, "{open} open");
        // And those time out at the header timeout.
        c.other.sleep(Duration::from_secs(6)).await;
        for conn in conns.iter_mut() {
            assert_eq!(
                read_within(&c.other, conn, Duration::from_millis(1)).await,
                "closed"
            );
        }
        assert_eq!(get(&c.client, ADDR, "/").await.unwrap().status, 200);
        c.world.shutdown();
    });
}

#[test]
fn oversized_requests_are_refused() {
    run(25, || async {
        let mut cfg = ProxyConfig::new("n1");
        cfg.max_body_bytes = 64 << 10;
        cfg.max_header_bytes = 8 << 10;
        let c = serving(25, cfg).await;

        // Declared too large: refused before reading a byte of it.
        let mut conn = try_connect(&c.client, ADDR, SECOND).await.unwrap();
        conn.write_all(b"POST / HTTP/1.1\r\nHost: n1\r\nContent-Length: 100000\r\n\r\n")
            .await
            .unwrap();
        let (seen, closed) = read_to_close(&c.client, &mut conn, 2 * SECOND).await;
        assert!(seen.starts_with("HTTP/1.1 413"), "{seen}");
        assert!(seen.contains("x-faultline-node: n1"), "{seen}");
        assert!(closed);

        // Chunked, found too large while reading.
        let mut conn = try_connect(&c.client, ADDR, SECOND).await.unwrap();
        conn.write_all(b"POST / HTTP/1.1\r\nHost: n1\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await
            .unwrap();
        let chunk = vec![b'x'; 16 << 10];
        for _ in 0..5 {
            let _ = conn.write_all(b"4000\r\n").await;
            let _ = conn.write_all(&chunk).await;
            let _ = conn.write_all(b"\r\n").await;
        }
        let (seen, closed) = read_to_close(&c.client, &mut conn, 2 * SECOND).await;
        assert!(seen.starts_with("HTTP/1.1 413"), "{seen}");
        assert!(closed);

        // A head beyond max_header_bytes.
        let mut conn = try_connect(&c.client, ADDR, SECOND).await.unwrap();
        let big = format!(
            "GET / HTTP/1.1\r\nHost: n1\r\nX-Big: {}\r\n\r\n",
            "y".repeat(10 << 10)
        );
        conn.write_all(big.as_bytes()).await.unwrap();
        let (seen, closed) = read_to_close(&c.client, &mut conn, 2 * SECOND).await;
        assert!(seen.starts_with("HTTP/1.1 431"), "{seen}");
        assert!(closed);

        // Within the limits, bodies go through.
        let a = request(
            &c.client,
            ADDR,
            Method::PUT,
            "/",
            Bytes::from(vec![b'z'; 60 << 10]),
        )
        .await
        .unwrap();
        assert_eq!(a.status, 200);
        c.world.shutdown();
    });
}

#[test]
fn a_client_stalling_mid_body_gets_408() {
    run(26, || async {
        let c = serving(26, ProxyConfig::new("n1")).await;
        let mut conn = try_connect(&c.client, ADDR, SECOND).await.unwrap();
        conn.write_all(b"POST / HTTP/1.1\r\nHost: n1\r\nContent-Length: 10\r\n\r\nabc")
            .await
            .unwrap();
        let t0 = c.client.now();
        let (seen, closed) = read_to_close(&c.client, &mut conn, 10 * SECOND).await;
        assert!(seen.starts_with("HTTP/1.1 408"), "{seen}");
        assert!(closed);
        let waited = c.client.now() - t0;
        assert!(
            waited >= Duration::from_secs(5) && waited < Duration::from_millis(5100),
            "{waited:?}"
        );
        c.world.shutdown();
    });
}
