//! Sustained traffic: the rate a simulation drives through a node, kept up
//! for a simulated minute.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use faultline_engine::run;
use faultline_proxy::ProxyConfig;
use http::Method;

use crate::{get, Cluster, KeepAlive, ADDR, POD_PORT, PORT};

#[test]
fn twelve_thousand_requests_in_a_simulated_minute() {
    run(51, || async {
        let c = Cluster::new(51, ProxyConfig::new("n1")).await;
        for (i, ip) in ["10.9.0.1", "10.9.0.2", "10.9.0.3"].iter().enumerate() {
            c.start_pod("p1", &format!("web-{}", i + 1), ip).await;
        }
        c.service("web", PORT, POD_PORT).await;
        c.endpoints("web", &["10.9.0.1", "10.9.0.2", "10.9.0.3"], &[])
            .await;
        c.until_status(PORT, 200).await;

        let ok = Rc::new(RefCell::new(0u32));
        let mut tasks = Vec::new();
        // Four keep-alive clients at 50 requests per second each...
        for _ in 0..4 {
            let (env, ok) = (c.client.clone(), ok.clone());
            tasks.push(c.client.spawn(async move {
                let mut conn = KeepAlive::connect(&env, ADDR).await.unwrap();
                for _ in 0..2950 {
                    let a = conn.send(ADDR, Method::GET, "/", Bytes::new()).await;
                    if matches!(a, Ok(a) if a.status == 200) {
                        *ok.borrow_mut() += 1;
                    }
                    env.sleep(Duration::from_millis(20)).await;
                }
            }));
        }
        // ...and one that connects anew every time, at 10 per second.
        let (env, fresh_ok) = (c.other.clone(), ok.clone());
        tasks.push(c.other.spawn(async move {
            for _ in 0..200 {
                if matches!(get(&env, ADDR, "/").await, Ok(a) if a.status == 200) {
                    *fresh_ok.borrow_mut() += 1;
                }
                env.sleep(Duration::from_millis(100)).await;
            }
        }));
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*ok.borrow(), 4 * 2950 + 200);
        c.world.shutdown();
    });
}
