//! Engine behaviour: latency, ordering, crashes, partitions, hold/release,
//! and determinism of the trace hash.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use faultline_engine::{run, HostMain, World, WorldConfig};
use faultline_env::Env;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// An echo server on port 7: answers every 4-byte message with itself.
fn echo_server() -> HostMain {
    Rc::new(|env: Env| {
        Box::pin(async move {
            let mut l = env.net().bind(7).await.unwrap();
            loop {
                let (mut conn, _) = l.accept().await.unwrap();
                env.spawn(async move {
                    let mut buf = [0u8; 4];
                    while conn.read_exact(&mut buf).await.is_ok() {
                        if conn.write_all(&buf).await.is_err() {
                            break;
                        }
                    }
                });
            }
        })
    })
}

type Log = Rc<RefCell<Vec<String>>>;

/// A client that pings `server` every 100 ms for `n` rounds, logging each
/// round trip (or its failure) with its simulated time.
fn pinger(server: &'static str, n: u32, log: Log) -> HostMain {
    Rc::new(move |env: Env| {
        let log = log.clone();
        Box::pin(async move {
            let start = Instant::now();
            let mut conn = None;
            for i in 0..n {
                env.sleep(Duration::from_millis(100)).await;
                if conn.is_none() {
                    match env
                        .timeout(Duration::from_millis(500), env.net().connect(server))
                        .await
                    {
                        Ok(Ok(c)) => conn = Some(c),
                        Ok(Err(e)) => {
                            log.borrow_mut()
                                .push(format!("{i} connect error {}", e.kind()));
                            continue;
                        }
                        Err(_) => {
                            log.borrow_mut().push(format!("{i} connect timeout"));
                            continue;
                        }
                    }
                }
                let c = conn.as_mut().unwrap();
                let sent = Instant::now();
                let round = async {
                    c.write_all(&i.to_le_bytes()).await?;
                    let mut b = [0u8; 4];
                    c.read_exact(&mut b).await?;
                    Ok::<_, std::io::Error>(u32::from_le_bytes(b))
                };
                match env.timeout(Duration::from_millis(500), round).await {
                    Ok(Ok(v)) => log.borrow_mut().push(format!(
                        "{i} echo {v} rtt {}ms at {}ms",
                        sent.elapsed().as_millis(),
                        start.elapsed().as_millis()
                    )),
                    Ok(Err(e)) => {
                        log.borrow_mut().push(format!("{i} error {}", e.kind()));
                        conn = None;
                    }
                    Err(_) => {
                        log.borrow_mut().push(format!("{i} timeout"));
                        conn = None;
                    }
                }
            }
        })
    })
}

fn world(seed: u64) -> World {
    let mut cfg = WorldConfig::new(seed);
    cfg.within.jitter = Duration::from_millis(2);
    cfg.between.jitter = Duration::from_millis(5);
    World::new(cfg)
}

#[test]
fn round_trip_takes_link_latency() {
    let log: Log = Default::default();
    let l2 = log.clone();
    run(1, || async move {
        let w = World::new(WorldConfig::new(1));
        w.add_host("server", "dc-a", echo_server());
        w.add_host("client", "dc-b", pinger("server:7", 3, l2));
        tokio::time::sleep(Duration::from_secs(2)).await;
        w.shutdown();
    });
    let log = log.borrow();
    assert_eq!(log.len(), 3, "{log:?}");
    // 20 ms each way between datacenters.
    assert!(log[1].contains("rtt 40ms"), "{log:?}");
}

#[test]
fn crash_closes_connections_and_restart_serves_again() {
    let log: Log = Default::default();
    let l2 = log.clone();
    run(2, || async move {
        let w = world(2);
        let s = w.add_host("server", "dc-a", echo_server());
        w.add_host("client", "dc-a", pinger("server:7", 20, l2));
        tokio::time::sleep(Duration::from_millis(550)).await;
        w.crash(s, false);
        tokio::time::sleep(Duration::from_millis(600)).await;
        w.restart(s);
        tokio::time::sleep(Duration::from_secs(2)).await;
        w.shutdown();
    });
    let log = log.borrow();
    let text = log.join("\n");
    assert!(text.contains("error") || text.contains("timeout"), "{text}");
    assert!(log.last().unwrap().contains("echo 19"), "{text}");
}

#[test]
fn partition_black_holes_and_heals() {
    let log: Log = Default::default();
    let l2 = log.clone();
    run(3, || async move {
        let w = world(3);
        let s = w.add_host("server", "dc-a", echo_server());
        let c = w.add_host("client", "dc-a", pinger("server:7", 30, l2));
        tokio::time::sleep(Duration::from_millis(550)).await;
        w.partition(s, c);
        tokio::time::sleep(Duration::from_secs(1)).await;
        w.repair(s, c);
        tokio::time::sleep(Duration::from_secs(3)).await;
        w.shutdown();
    });
    let text = log.borrow().join("\n");
    assert!(text.contains("timeout"), "{text}");
    assert!(text.contains("29 echo 29"), "{text}");
}

#[test]
fn hold_delays_then_delivers_in_order() {
    let log: Log = Default::default();
    let l2 = log.clone();
    run(4, || async move {
        let w = World::new(WorldConfig::new(4));
        let s = w.add_host("server", "dc-a", echo_server());
        let c = w.add_host("client", "dc-a", pinger("server:7", 5, l2));
        tokio::time::sleep(Duration::from_millis(250)).await;
        w.net().hold(c, s);
        tokio::time::sleep(Duration::from_millis(300)).await;
        w.net().release(c, s);
        tokio::time::sleep(Duration::from_secs(2)).await;
        w.shutdown();
    });
    let log = log.borrow();
    // Every round is answered, in order; the one sent while the link was
    // held waits for the release.
    assert_eq!(log.len(), 5, "{log:?}");
    let rtts: Vec<u64> = log
        .iter()
        .map(|l| {
            l.split("rtt ")
                .nth(1)
                .unwrap()
                .split("ms")
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(rtts.iter().any(|&r| r >= 200), "{log:?}");
}

fn hash_of(seed: u64) -> (u64, u64) {
    run(seed, || async move {
        let w = world(seed);
        let s = w.add_host("server", "dc-a", echo_server());
        for i in 0..5 {
            let name: &'static str = Box::leak(format!("client{i}").into_boxed_str());
            w.add_host(name, "dc-b", pinger("server:7", 20, Default::default()));
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        w.crash(s, true);
        tokio::time::sleep(Duration::from_millis(300)).await;
        w.restart(s);
        tokio::time::sleep(Duration::from_secs(3)).await;
        w.shutdown();
        (w.trace().hash(), w.trace().events())
    })
}

#[test]
fn same_seed_same_hash_different_seed_different_hash() {
    let a = hash_of(11);
    assert_eq!(a, hash_of(11));
    assert_ne!(a.0, hash_of(12).0);
    assert!(a.1 > 100);
}

#[test]
#[should_panic]
fn a_panicking_task_aborts_the_whole_run() {
    run(13, || async move {
        let w = World::new(WorldConfig::new(13));
        let main: HostMain = Rc::new(|env: Env| {
            Box::pin(async move {
                env.spawn(async { panic!("an invariant failed inside a host") });
                std::future::pending::<()>().await;
            })
        });
        w.add_host("buggy", "dc-a", main);
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
}

/// A paused server answers nothing (the client times out, its connection
/// stays open) and, once resumed, answers again on the same connection.
/// The client, paused in its turn, sends nothing: no round is logged while
/// it is frozen, and its late timers fire at once when it resumes.
#[test]
fn a_paused_host_freezes_then_resumes_with_its_state() {
    let log: Log = Default::default();
    let l2 = log.clone();
    run(3, || async move {
        let w = World::new(WorldConfig::new(3));
        let s = w.add_host("server", "dc-a", echo_server());
        let c = w.add_host("client", "dc-a", pinger("server:7", 30, l2.clone()));
        tokio::time::sleep(Duration::from_millis(450)).await;
        w.pause(s);
        assert!(w.is_paused(s));
        tokio::time::sleep(Duration::from_millis(1000)).await;
        w.resume(s);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = l2.borrow().len();
        w.pause(c);
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(l2.borrow().len(), before, "a paused client logs nothing");
        w.resume(c);
        tokio::time::sleep(Duration::from_secs(2)).await;
        w.shutdown();
    });
    let log = log.borrow();
    let text = log.join("\n");
    assert!(
        text.contains("timeout"),
        "the paused server answered: {text}"
    );
    assert!(!text.contains("error"), "a pause is not a crash: {text}");
    assert!(log.last().unwrap().contains("echo 29"), "{text}");
}

/// A process of a host (`Env::process`) restarts on its own: its tasks are
/// aborted while the host's other tasks keep running; a host crash still
/// takes the process's tasks with it.
#[test]
fn a_process_restarts_without_its_host() {
    let ticks: Rc<RefCell<(u32, u32)>> = Default::default();
    let t = ticks.clone();
    let main: HostMain = Rc::new(move |env: Env| {
        let t = t.clone();
        Box::pin(async move {
            let (penv, process) = env.process();
            let t1 = t.clone();
            penv.spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    t1.borrow_mut().0 += 1;
                }
            });
            let t2 = t.clone();
            env.spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    t2.borrow_mut().1 += 1;
                }
            });
            tokio::time::sleep(Duration::from_millis(550)).await;
            process.abort_all();
            std::future::pending::<()>().await
        })
    });
    run(4, || async move {
        let w = World::new(WorldConfig::new(4));
        let h = w.add_host("node", "dc-a", main);
        tokio::time::sleep(Duration::from_millis(1050)).await;
        assert_eq!(
            *ticks.borrow(),
            (5, 10),
            "the process stopped, the host did not"
        );
        w.crash(h, false);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(*ticks.borrow(), (5, 10), "a crash stops everything");
        w.shutdown();
    });
}
