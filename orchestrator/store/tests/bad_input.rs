//! Bad input on the store's port: garbage, oversized frames, half-written
//! requests, impostor peers and idle connections get an error or a closed
//! connection, and the replica keeps serving everyone else.

use std::rc::Rc;
use std::time::Duration;

use faultline_engine::HostMain;
use faultline_env::Env;
use faultline_store::proto::{self, Frame};
use faultline_testkit::{read_within, simulate, Log, Masters};
use tokio::io::AsyncWriteExt;

fn vandal(log: Log) -> HostMain {
    Rc::new(move |env: Env| {
        let log = log.clone();
        Box::pin(async move {
            env.sleep(Duration::from_secs(3)).await;
            let connect = || async { env.net().connect("m1:2379").await.expect("m1 listens") };
            // 1. Garbage bytes.
            let mut garbage = connect().await;
            let bytes: Vec<u8> = (0..4096u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect();
            let _ = garbage.write_all(&bytes).await;
            let seen = read_within(&env, &mut garbage, Duration::from_secs(2)).await;
            log.borrow_mut().push(format!("garbage: {seen}"));
            // 2. A frame claiming 2 GiB.
            let mut huge = connect().await;
            let _ = huge.write_all(&[0, 0, 0, 0x80, 1, 2, 3, 4]).await;
            let seen = read_within(&env, &mut huge, Duration::from_secs(2)).await;
            log.borrow_mut().push(format!("huge: {seen}"));
            // 3. A valid frame with one flipped bit.
            let mut flipped = connect().await;
            let mut frame = proto::encode_frame(&Frame::Hello { from: 2 }).unwrap();
            let last = frame.len() - 1;
            frame[last] ^= 1;
            let _ = flipped.write_all(&frame).await;
            let seen = read_within(&env, &mut flipped, Duration::from_secs(2)).await;
            log.borrow_mut().push(format!("flipped: {seen}"));
            // 4. An impostor claiming to be member 9.
            let mut impostor = connect().await;
            let _ = impostor
                .write_all(&proto::encode_frame(&Frame::Hello { from: 9 }).unwrap())
                .await;
            let seen = read_within(&env, &mut impostor, Duration::from_secs(2)).await;
            log.borrow_mut().push(format!("impostor: {seen}"));
            // 5. Half a request, then silence; and 200 idle connections.
            let mut half = connect().await;
            let _ = half.write_all(&[100, 0, 0, 0, 9, 9]).await;
            let mut idle = Vec::new();
            for _ in 0..200 {
                idle.push(connect().await);
            }
            log.borrow_mut().push("stalled".into());
            env.sleep(Duration::from_secs(60)).await;
            drop((half, idle));
        })
    })
}

fn honest(log: Log) -> HostMain {
    Rc::new(move |env: Env| {
        let log = log.clone();
        Box::pin(async move {
            env.sleep(Duration::from_secs(8)).await;
            let client = Masters::store(3).store_client(&env);
            let mut ok = 0;
            for i in 0..20 {
                let key = format!("k{i}");
                if client.put(key.as_bytes(), b"v").await.is_ok()
                    && client.get(key.as_bytes()).await.ok().flatten().is_some()
                {
                    ok += 1;
                }
            }
            log.borrow_mut().push(format!("honest: {ok}/20"));
            // The abused replica itself answers and has applied every write.
            env.sleep(Duration::from_secs(1)).await;
            let m1 = client.status(0).await.map(|s| s.revision);
            log.borrow_mut().push(format!("m1 revision: {m1:?}"));
        })
    })
}

#[test]
fn bad_input_is_refused_and_the_replica_keeps_serving() {
    let log: Log = Default::default();
    let l = log.clone();
    simulate(5, 40, &Masters::store(3), move |world| {
        world.add_host("vandal", "dc-a", vandal(l.clone()));
        world.add_host("honest", "dc-a", honest(l.clone()));
    });
    let log = log.borrow();
    let text = log.join("\n");
    for abuse in ["garbage", "huge", "flipped", "impostor"] {
        let line = log
            .iter()
            .find(|l| l.starts_with(abuse))
            .unwrap_or_else(|| panic!("{abuse} missing: {text}"));
        assert!(line.ends_with("closed") || line.contains("error"), "{text}");
    }
    assert!(log.contains(&"stalled".to_string()), "{text}");
    assert!(log.contains(&"honest: 20/20".to_string()), "{text}");
    // Revision 1 is the empty store; 20 puts later it is 21.
    assert!(log.contains(&"m1 revision: Some(21)".to_string()), "{text}");
}
