//! Leases expire on the leader's clock unless kept alive; expiry, like
//! every write, reaches watchers; a compacted revision cannot be watched;
//! a replica that catches up by installing a snapshot keeps its watchers.

use std::rc::Rc;
use std::time::Duration;

use faultline_engine::{run, HostMain, World, WorldConfig};
use faultline_env::Env;
use faultline_store::client::{ClientConfig, StoreClient};
use faultline_store::ops::{EventKind, Op, StoreError};
use faultline_testkit::{simulate, Log, Masters};

fn user(log: Log) -> HostMain {
    Rc::new(move |env: Env| {
        let log = log.clone();
        Box::pin(async move {
            env.sleep(Duration::from_secs(3)).await;
            let c = Masters::store(3).store_client(&env);
            let mut watch = c.watch(&[0], &[0], 1).await.expect("watch");
            let short = c.lease_grant(2000).await.unwrap();
            let kept = c.lease_grant(2000).await.unwrap();
            c.put_with_lease(b"a", b"1", short).await.unwrap();
            c.put_with_lease(b"b", b"2", kept).await.unwrap();
            for _ in 0..10 {
                env.sleep(Duration::from_millis(500)).await;
                c.keep_alive(kept).await.unwrap();
            }
            let a = c.get(b"a").await.unwrap();
            let b = c.get(b"b").await.unwrap();
            log.borrow_mut()
                .push(format!("a={} b={}", a.is_some(), b.is_some()));
            let mut seen = Vec::new();
            while seen.len() < 3 {
                match env.timeout(Duration::from_secs(5), watch.next()).await {
                    Ok(Some(Ok(events))) => {
                        for e in events {
                            let kind = if e.kind == EventKind::Put {
                                "put"
                            } else {
                                "delete"
                            };
                            seen.push(format!("{kind} {}", String::from_utf8_lossy(&e.kv.key)));
                        }
                    }
                    other => {
                        seen.push(format!("watch ended: {other:?}"));
                        break;
                    }
                }
            }
            log.borrow_mut().push(seen.join(", "));
            // Compact everything: watching from revision 1 must now fail.
            let (rev, _) = c
                .range(faultline_store::client::single_key(b"b"), true)
                .await
                .unwrap();
            c.write(Op::Compact { revision: rev }).await.unwrap();
            let mut old = c.watch(&[0], &[0], 1).await.expect("watch");
            let ended = env.timeout(Duration::from_secs(5), old.next()).await;
            let compacted = matches!(ended, Ok(Some(Err(StoreError::Compacted { .. }))));
            log.borrow_mut().push(format!("compacted={compacted}"));
        })
    })
}

#[test]
fn leases_expire_unless_kept_alive_and_watchers_see_it() {
    let log: Log = Default::default();
    let l = log.clone();
    simulate(9, 40, &Masters::store(3), move |world| {
        world.add_host("user", "dc-a", user(l));
    });
    let log = log.borrow();
    assert_eq!(
        *log,
        vec![
            "a=false b=true".to_string(),
            "put a, put b, delete a".to_string(),
            "compacted=true".to_string()
        ]
    );
}

/// m3 is cut off from the other replicas while 120 keys are written and
/// the log is truncated behind snapshots; it catches up by installing a
/// snapshot. A watch served by m3 from revision 1 must still deliver every
/// put exactly once, in order (the snapshot carries the history).
#[test]
fn a_watch_survives_its_replica_installing_a_snapshot() {
    let log: Log = Default::default();
    let seen = log.clone();
    let trace = run(5, move || async move {
        let mut config = WorldConfig::new(5);
        config.keep_trace = true;
        let world = World::new(config);
        let ids = Masters::store(3)
            .tune_store(|c| c.snapshot_every = 16)
            .add_to(&world, "dc-a");
        let writer = Rc::new(
            |env: Env| -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
                Box::pin(async move {
                    env.sleep(Duration::from_secs(3)).await;
                    let c = Masters::store(3).store_client(&env);
                    for i in 0..120 {
                        let key = format!("k{i:03}");
                        while c.put(key.as_bytes(), b"v").await.is_err() {
                            env.sleep(Duration::from_millis(200)).await;
                        }
                        env.sleep(Duration::from_millis(100)).await;
                    }
                })
            },
        );
        world.add_host("writer", "dc-a", writer);
        let watcher = {
            let seen = seen.clone();
            Rc::new(
                move |env: Env| -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
                    let seen = seen.clone();
                    Box::pin(async move {
                        env.sleep(Duration::from_secs(2)).await;
                        let c = StoreClient::new(
                            env.clone(),
                            ClientConfig::new(vec!["m3:2379".into()]),
                        );
                        let mut w = c.watch(b"k", b"l", 1).await.expect("watch");
                        loop {
                            match w.next().await {
                                Some(Ok(events)) => {
                                    for e in events {
                                        seen.borrow_mut()
                                            .push(String::from_utf8_lossy(&e.kv.key).into_owned());
                                    }
                                }
                                other => {
                                    seen.borrow_mut().push(format!("ended: {other:?}"));
                                    return;
                                }
                            }
                        }
                    })
                },
            )
        };
        world.add_host("watcher", "dc-a", watcher);
        tokio::time::sleep(Duration::from_secs(5)).await;
        world.partition(ids[2], ids[0]);
        world.partition(ids[2], ids[1]);
        tokio::time::sleep(Duration::from_secs(15)).await;
        world.repair(ids[2], ids[0]);
        world.repair(ids[2], ids[1]);
        tokio::time::sleep(Duration::from_secs(20)).await;
        world.shutdown();
        world.trace().lines()
    });
    assert!(
        trace
            .iter()
            .any(|l| l.contains("m3") && l.contains("store installed snapshot")),
        "m3 must catch up through a snapshot for this test to mean anything"
    );
    let expected: Vec<String> = (0..120).map(|i| format!("k{i:03}")).collect();
    assert_eq!(*log.borrow(), expected);
}
