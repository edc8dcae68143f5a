//! The echo application: who answers, on which ports, and what bad input
//! does to it.

use std::time::Duration;

use faultline_engine::run;
use faultline_kubelet::{ContainerRuntime, RuntimeError};
use tokio::io::AsyncWriteExt;

use crate::{get, read_within, spec, try_connect, Cluster};

#[test]
fn echo_answers_with_json_naming_its_pod() {
    run(1, || async {
        let c = Cluster::new(1).await;
        c.runtime
            .start(spec("web-1", "echo:v2", &[], "10.1.0.5", &[("http", 8080)]))
            .await
            .expect("echo starts");

        let a = get(&c.client, "10.1.0.5:8080", "/hello?x=1").await.unwrap();
        assert_eq!(a.status, 200);
        assert_eq!(a.pod_header.as_deref(), Some("web-1"));
        let json: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "pod": "default/web-1",
                "node": "n1",
                "image": "echo:v2",
                "path": "/hello",
            })
        );

        let h = get(&c.client, "10.1.0.5:8080", "/healthz").await.unwrap();
        assert_eq!((h.status, h.body.as_str()), (200, "ok"));
        c.world.shutdown();
    });
}

#[test]
fn echo_listens_on_every_port_or_on_8080() {
    run(2, || async {
        let c = Cluster::new(2).await;
        c.runtime
            .start(spec(
                "two",
                "echo",
                &[],
                "10.1.0.7",
                &[("http", 80), ("admin", 9090)],
            ))
            .await
            .unwrap();
        c.runtime
            .start(spec("plain", "echo", &[], "10.1.0.8", &[]))
            .await
            .unwrap();
        for addr in ["10.1.0.7:80", "10.1.0.7:9090", "10.1.0.8:8080"] {
            let a = get(&c.client, addr, "/").await.unwrap();
            assert_eq!(a.status, 200, "{addr}");
        }
        assert!(get(&c.client, "10.1.0.7:8080", "/").await.is_err());
        c.world.shutdown();
    });
}

#[test]
fn echo_refuses_to_start_without_an_ip_or_on_a_taken_port() {
    run(3, || async {
        let c = Cluster::new(3).await;
        let err = c
            .runtime
            .start(spec("noip", "echo", &[], "", &[]))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            RuntimeError::NoPodIp {
                image: "echo".into()
            }
        );
        c.runtime
            .start(spec("a", "echo", &[], "10.1.0.9", &[("http", 8080)]))
            .await
            .unwrap();
        let err = c
            .runtime
            .start(spec("a", "echo", &[], "10.1.0.9", &[("http", 8080)]))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, RuntimeError::Listen { addr, kind, .. }
                if addr == "10.1.0.9:8080" && *kind == std::io::ErrorKind::AddrInUse),
            "{err}"
        );
        let err = c
            .runtime
            .start(spec("b", "echo", &[], "10.1.0.10", &[("http", 70000)]))
            .await
            .unwrap_err();
        assert_eq!(err, RuntimeError::BadPort { port: 70000 });
        let err = c
            .runtime
            .start(spec("c", "nginx", &[], "10.1.0.11", &[]))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("echo, crash, sleep, exit0"),
            "{err}"
        );
        // Nothing failed half-way into the table.
        assert_eq!(c.runtime.list().await.len(), 1);
        c.world.shutdown();
    });
}

#[test]
fn garbage_and_stalled_clients_do_not_stop_echo() {
    run(4, || async {
        let c = Cluster::new(4).await;
        c.runtime
            .start(spec("web-1", "echo", &[], "10.1.0.5", &[]))
            .await
            .unwrap();
        let addr = "10.1.0.5:8080";
        let d = Duration::from_secs(2);

        // Garbage: a 400 or a closed connection.
        let mut garbage = try_connect(&c.client, addr, d).await.unwrap();
        let bytes: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let _ = garbage.write_all(&bytes).await;
        let seen = read_within(&c.client, &mut garbage, d).await;
        assert!(
            seen.starts_with("answered HTTP/1.1 400")
                || seen == "closed"
                || seen.starts_with("error"),
            "{seen}"
        );

        // A half-written request, then silence: closed at the header
        // timeout, not before.
        let mut stalled = try_connect(&c.client, addr, d).await.unwrap();
        stalled
            .write_all(b"GET / HTTP/1.1\r\nHost: x")
            .await
            .unwrap();
        let t0 = c.client.now();
        let seen = read_within(&c.client, &mut stalled, Duration::from_secs(5)).await;
        assert_eq!(seen, "still open");
        let seen = read_within(&c.client, &mut stalled, Duration::from_secs(30)).await;
        let waited = c.client.now() - t0;
        assert!(
            seen == "closed" || seen.starts_with("answered HTTP/1.1 408"),
            "{seen}"
        );
        assert!(
            waited >= Duration::from_secs(10) && waited < Duration::from_secs(11),
            "{waited:?}"
        );

        // An idle connection that never sends anything is closed too.
        let mut idle = try_connect(&c.client, addr, d).await.unwrap();
        let seen = read_within(&c.client, &mut idle, Duration::from_secs(30)).await;
        assert!(
            seen == "closed" || seen.starts_with("answered HTTP/1.1 408"),
            "{seen}"
        );

        // Everyone else is still served.
        for _ in 0..3 {
            let a = get(&c.client, addr, "/").await.unwrap();
            assert_eq!(a.status, 200);
        }
        c.world.shutdown();
    });
}
