//! Leases expire on the leader's clock unless kept alive; expiry, like
//! every write, reaches watchers; a compacted revision cannot be watched.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use faultline_engine::{run, HostMain, World, WorldConfig};
use faultline_env::Env;
use faultline_store::client::{ClientConfig, StoreClient};
use faultline_store::ops::{EventKind, Op, StoreError};
use faultline_store::server::{serve, StoreConfig};

fn master(id: u64) -> HostMain {
    Rc::new(move |env: Env| {
        Box::pin(async move {
            let members: BTreeMap<u64, String> =
                (1..=3).map(|i| (i, format!("m{i}:2379"))).collect();
            serve(env, StoreConfig::new(id, 2379, members))
                .await
                .expect("replica starts");
        })
    })
}

type Log = Rc<RefCell<Vec<String>>>;

fn user(log: Log) -> HostMain {
    Rc::new(move |env: Env| {
        let log = log.clone();
        Box::pin(async move {
            env.sleep(Duration::from_secs(3)).await;
            let endpoints = (1..=3).map(|i| format!("m{i}:2379")).collect();
            let c = Rc::new(StoreClient::new(env.clone(), ClientConfig::new(endpoints)));
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
    run(9, move || async move {
        let world = World::new(WorldConfig::new(9));
        for id in 1..=3 {
            world.add_host(&format!("m{id}"), "dc-a", master(id));
        }
        world.add_host("user", "dc-a", user(l));
        tokio::time::sleep(Duration::from_secs(40)).await;
        world.shutdown();
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
