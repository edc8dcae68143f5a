//! Containers start, exit on their own schedule, are stopped and removed,
//! and die with their host.

use std::time::Duration;

use faultline_engine::run;
use faultline_kubelet::runtime::EXIT_CODE_KILLED;
use faultline_kubelet::{ContainerId, ContainerRuntime, ContainerState, RuntimeError};
use tokio::io::AsyncWriteExt;

use crate::{get, read_within, spec, try_connect, Cluster};

#[test]
fn crash_exits_with_code_1_after_its_duration() {
    run(11, || async {
        let c = Cluster::new(11).await;
        let id = c
            .runtime
            .start(spec("crashy", "crash", &["after=30s"], "10.1.0.5", &[]))
            .await
            .unwrap();
        let started_at = c.node.now();
        c.node.sleep(Duration::from_millis(29_999)).await;
        let list = c.runtime.list().await;
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].id, id);
        assert_eq!(list[0].started_at, started_at);
        assert_eq!(list[0].state, ContainerState::Running);

        c.node.sleep(Duration::from_secs(1)).await;
        let info = &c.runtime.list().await[0];
        match info.state {
            ContainerState::Exited { code, at } => {
                assert_eq!(code, 1);
                assert_eq!(at - started_at, Duration::from_secs(30));
            }
            other => panic!("still {other:?}"),
        }
        assert_eq!(info.state.reason(), Some("Error"));
        c.world.shutdown();
    });
}

#[test]
fn exit0_completes_and_sleep_runs_on() {
    run(12, || async {
        let c = Cluster::new(12).await;
        c.runtime
            .start(spec("job", "exit0", &["after=5s"], "10.1.0.5", &[]))
            .await
            .unwrap();
        c.runtime
            .start(spec("idle", "sleep", &[], "10.1.0.6", &[]))
            .await
            .unwrap();
        c.runtime
            .start(spec("bad", "crash", &["code=3"], "10.1.0.7", &[]))
            .await
            .unwrap();
        c.node.sleep(Duration::from_secs(3600)).await;
        let list = c.runtime.list().await;
        let states: Vec<(&str, Option<i32>, Option<&str>)> = list
            .iter()
            .map(|i| (i.pod_name.as_str(), i.state.exit_code(), i.state.reason()))
            .collect();
        assert_eq!(
            states,
            vec![
                ("job", Some(0), Some("Completed")),
                ("idle", None, None),
                ("bad", Some(3), Some("Error")),
            ]
        );
        c.world.shutdown();
    });
}

#[test]
fn ids_are_deterministic_distinct_and_listed_in_start_order() {
    let ids = |seed: u64| {
        run(seed, move || async move {
            let c = Cluster::new(seed).await;
            let mut ids = Vec::new();
            for (pod, ip) in [("web-b", "10.1.0.2"), ("web-a", "10.1.0.3")] {
                let mut s = spec(pod, "sleep", &[], ip, &[]);
                s.attempt = 4;
                ids.push(c.runtime.start(s).await.unwrap());
            }
            let listed: Vec<ContainerId> =
                c.runtime.list().await.into_iter().map(|i| i.id).collect();
            assert_eq!(listed, ids);
            assert!(c.runtime.list().await.iter().all(|i| i.attempt == 4));
            c.world.shutdown();
            ids
        })
    };
    let first = ids(13);
    assert_eq!(first, ids(13));
    assert_ne!(first[0], first[1]);
    assert!(first[0].as_str().starts_with("uid-web-"), "{}", first[0]);
    // Another seed (like another boot of the node) gives other ids.
    assert_ne!(first, ids(14));
}

#[test]
fn stop_kills_frees_the_port_and_remove_forgets() {
    run(15, || async {
        let c = Cluster::new(15).await;
        let s = spec("web-1", "echo", &[], "10.1.0.5", &[("http", 8080)]);
        let first = c.runtime.start(s.clone()).await.unwrap();
        // A keep-alive connection the stop must close.
        let mut open = try_connect(&c.client, "10.1.0.5:8080", Duration::from_secs(2))
            .await
            .unwrap();
        c.client.sleep(Duration::from_secs(1)).await;

        c.runtime
            .stop(&first, std::time::Duration::ZERO)
            .await
            .unwrap();
        let info = &c.runtime.list().await[0];
        assert_eq!(info.state.exit_code(), Some(EXIT_CODE_KILLED));
        assert_eq!(
            read_within(&c.client, &mut open, Duration::from_secs(2)).await,
            "closed"
        );
        let refused = try_connect(&c.client, "10.1.0.5:8080", Duration::from_secs(2)).await;
        assert!(
            matches!(&refused, Err(e) if e.contains("refused")),
            "{:?}",
            refused.err()
        );
        // Stopping twice is harmless; the port is free for the restart at
        // once.
        c.runtime
            .stop(&first, std::time::Duration::ZERO)
            .await
            .unwrap();
        let second = c.runtime.start(s).await.unwrap();
        assert_ne!(first, second);
        assert_eq!(
            get(&c.client, "10.1.0.5:8080", "/").await.unwrap().status,
            200
        );

        c.runtime.remove(&first).await.unwrap();
        let ids: Vec<ContainerId> = c.runtime.list().await.into_iter().map(|i| i.id).collect();
        assert_eq!(ids, vec![second.clone()]);
        assert_eq!(
            c.runtime.stop(&first, std::time::Duration::ZERO).await,
            Err(RuntimeError::NotFound { id: first.clone() })
        );
        // Removing a running container stops it first.
        c.runtime.remove(&second).await.unwrap();
        assert!(c.runtime.list().await.is_empty());
        assert!(get(&c.client, "10.1.0.5:8080", "/").await.is_err());
        c.world.shutdown();
    });
}

#[test]
fn a_host_crash_takes_its_containers_down() {
    run(16, || async {
        let c = Cluster::new(16).await;
        c.runtime
            .start(spec("web-1", "echo", &[], "10.1.0.5", &[]))
            .await
            .unwrap();
        assert_eq!(
            get(&c.client, "10.1.0.5:8080", "/").await.unwrap().status,
            200
        );
        let mut open = try_connect(&c.client, "10.1.0.5:8080", Duration::from_secs(2))
            .await
            .unwrap();
        open.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();

        c.world.crash(c.node_id, false);
        // The open connection ends; a new one goes nowhere.
        let seen = read_within(&c.client, &mut open, Duration::from_secs(2)).await;
        assert!(seen == "closed" || seen.starts_with("error"), "{seen}");
        let again = try_connect(&c.client, "10.1.0.5:8080", Duration::from_secs(3)).await;
        assert!(again.is_err(), "connected to a crashed host");
        assert!(get(&c.client, "10.1.0.5:8080", "/").await.is_err());
        c.world.shutdown();
    });
}

/// A crash must also stop the container's task: a `crash` container
/// due to exit after the host died must never report its exit.
#[test]
fn a_host_crash_stops_the_container_tasks() {
    run(17, || async {
        let c = Cluster::new(17).await;
        c.runtime
            .start(spec("crashy", "crash", &["after=10s"], "10.1.0.5", &[]))
            .await
            .unwrap();
        c.client.sleep(Duration::from_secs(5)).await;
        c.world.crash(c.node_id, false);
        c.client.sleep(Duration::from_secs(10)).await;
        // The runtime object outlives the crash only because the test holds
        // it; the task behind its one container must be gone.
        assert_eq!(c.runtime.list().await[0].state, ContainerState::Running);
        c.world.shutdown();
    });
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let trace = |seed: u64| {
        run(seed, move || async move {
            let c = Cluster::new(seed).await;
            c.runtime
                .start(spec("web-1", "echo", &[], "10.1.0.5", &[]))
                .await
                .unwrap();
            c.runtime
                .start(spec("crashy", "crash", &["after=2s"], "10.1.0.6", &[]))
                .await
                .unwrap();
            for i in 0..5 {
                let a = get(&c.client, "10.1.0.5:8080", &format!("/{i}"))
                    .await
                    .unwrap();
                assert_eq!(a.status, 200);
            }
            c.client.sleep(Duration::from_secs(5)).await;
            c.world.shutdown();
            (c.world.trace().hash(), c.world.trace().events())
        })
    };
    let (hash, events) = trace(18);
    assert!(events > 10, "{events}");
    assert_eq!((hash, events), trace(18));
}
