//! Readiness probes from the node against its pods' IPs.

use std::time::Duration;

use faultline_api::{HttpGetAction, IntOrString, Probe, TcpSocketAction};
use faultline_engine::run;
use faultline_kubelet::{probe, ContainerRuntime, ProbeResult, ProbeState};

use crate::{spec, Cluster};

fn http(port: IntOrString, path: &str) -> Probe {
    Probe {
        http_get: Some(HttpGetAction {
            path: path.into(),
            port,
        }),
        ..Probe::default()
    }
}

fn tcp(port: i32) -> Probe {
    Probe {
        tcp_socket: Some(TcpSocketAction {
            port: IntOrString::Int(port),
        }),
        ..Probe::default()
    }
}

fn named(name: &str) -> IntOrString {
    IntOrString::String(name.into())
}

#[test]
fn probes_succeed_against_echo_and_fail_against_silence() {
    run(21, || async {
        let c = Cluster::new(21).await;
        let web = spec("web-1", "echo", &[], "10.1.0.5", &[("http", 8080)]);
        let ports = web.ports.clone();
        c.runtime.start(web).await.unwrap();
        c.runtime
            .start(spec("idle", "sleep", &[], "10.1.0.6", &[("http", 8080)]))
            .await
            .unwrap();
        let env = &c.node;

        // Against echo: HTTP by name and by number, TCP.
        for p in [
            http(named("http"), "/healthz"),
            http(IntOrString::Int(8080), ""),
            tcp(8080),
        ] {
            assert_eq!(
                probe(env, "10.1.0.5", &p, &ports).await,
                ProbeResult::Success
            );
        }

        // Against a port nobody listens on: refused.
        let r = probe(env, "10.1.0.5", &tcp(9999), &ports).await;
        assert!(
            matches!(&r, ProbeResult::Failure(why) if why.contains("refused")),
            "{r:?}"
        );
        let r = probe(env, "10.1.0.5", &http(IntOrString::Int(9999), "/"), &ports).await;
        assert!(
            matches!(&r, ProbeResult::Failure(why) if why.contains("refused")),
            "{r:?}"
        );

        // Against `sleep`: nothing listens on its IP at all.
        for p in [http(named("http"), "/healthz"), tcp(8080)] {
            let r = probe(env, "10.1.0.6", &p, &ports).await;
            assert!(!r.is_success(), "{r:?}");
        }

        // Misconfigured probes fail with the reason.
        let r = probe(env, "10.1.0.5", &http(named("grpc"), "/"), &ports).await;
        assert_eq!(
            r,
            ProbeResult::Failure("the container has no port named \"grpc\"".into())
        );
        let r = probe(env, "10.1.0.5", &Probe::default(), &ports).await;
        assert!(!r.is_success());
        c.world.shutdown();
    });
}

#[test]
fn probes_time_out_against_an_unreachable_pod() {
    run(22, || async {
        let c = Cluster::new(22).await;
        let web = spec("web-1", "echo", &[], "10.1.0.5", &[("http", 8080)]);
        let ports = web.ports.clone();
        c.runtime.start(web).await.unwrap();
        // Probed from the client host across a partition: the SYN is lost.
        c.world.partition(c.client_id, c.node_id);
        let mut p = http(named("http"), "/healthz");
        p.timeout_seconds = 2;
        let t0 = c.client.now();
        let r = probe(&c.client, "10.1.0.5", &p, &ports).await;
        assert_eq!(c.client.now() - t0, Duration::from_secs(2));
        assert_eq!(
            r,
            ProbeResult::Failure("GET http://10.1.0.5:8080/healthz: timed out after 2s".into())
        );
        let r = probe(&c.client, "10.1.0.5", &tcp(8080), &ports).await;
        assert_eq!(
            r,
            ProbeResult::Failure("connect 10.1.0.5:8080: timed out after 1s".into())
        );
        c.world.repair(c.client_id, c.node_id);
        assert!(probe(&c.client, "10.1.0.5", &p, &ports).await.is_success());
        c.world.shutdown();
    });
}

#[test]
fn a_probe_loop_turns_ready_and_back() {
    run(23, || async {
        let c = Cluster::new(23).await;
        let web = spec("web-1", "echo", &[], "10.1.0.5", &[("http", 8080)]);
        let ports = web.ports.clone();
        let id = c.runtime.start(web).await.unwrap();
        let p = Probe {
            initial_delay_seconds: 5,
            period_seconds: 2,
            ..http(named("http"), "/healthz")
        };
        let mut state = ProbeState::new(&p);
        let started_at = c.node.now();
        c.node.sleep_until(state.first_probe_at(started_at)).await;
        let mut history = Vec::new();
        for round in 0..6 {
            if round == 2 {
                c.runtime
                    .stop(&id, std::time::Duration::ZERO)
                    .await
                    .unwrap();
            }
            let ok = probe(&c.node, "10.1.0.5", &p, &ports).await.is_success();
            history.push((ok, state.observe(ok)));
            c.node.sleep(state.period()).await;
        }
        // Ready on the first success; still ready after two failures; not
        // ready at the third (failureThreshold 3).
        assert_eq!(
            history,
            vec![
                (true, true),
                (true, true),
                (false, true),
                (false, true),
                (false, false),
                (false, false),
            ]
        );
        c.world.shutdown();
    });
}
