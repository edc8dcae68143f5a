//! The control plane going away changes nothing for traffic, and the
//! health endpoint says so.

use std::time::Duration;

use faultline_engine::run;
use faultline_proxy::ProxyConfig;

use crate::{eventually, get, tally, try_connect, Cluster, ADDR, POD_PORT, PORT};

const HEALTHZ: &str = "n1:10256";

#[test]
fn the_proxy_keeps_serving_with_every_api_server_down() {
    run(31, || async {
        let c = Cluster::new(31, ProxyConfig::new("n1")).await;
        let mut ids = Vec::new();
        for (i, ip) in ["10.9.0.1", "10.9.0.2", "10.9.0.3"].iter().enumerate() {
            ids.push(c.start_pod("p1", &format!("web-{}", i + 1), ip).await);
        }
        c.service("web", PORT, POD_PORT).await;
        c.endpoints("web", &["10.9.0.1", "10.9.0.2", "10.9.0.3"], &[])
            .await;
        c.until_status(PORT, 200).await;

        for m in &c.masters {
            c.world.crash(*m, false);
        }
        // Long enough for every watch to break and every relist to fail.
        c.client.sleep(Duration::from_secs(60)).await;
        let mut answers = Vec::new();
        for _ in 0..30 {
            answers.push(get(&c.client, ADDR, "/").await.unwrap());
        }
        assert!(answers.iter().all(|a| a.status == 200));
        assert_eq!(tally(&answers).len(), 3);
        assert_eq!(
            get(&c.client, HEALTHZ, "/healthz").await.unwrap().status,
            200
        );

        // A pod dying during the outage is still routed around (nobody can
        // update its Endpoints).
        c.stop_pod("p1", &ids[1]).await;
        let mut answers = Vec::new();
        for _ in 0..30 {
            answers.push(get(&c.client, ADDR, "/").await.unwrap());
        }
        assert!(answers.iter().all(|a| a.status == 200));
        assert_eq!(
            tally(&answers).keys().collect::<Vec<_>>(),
            vec!["web-1", "web-3"]
        );

        // The control plane returns: still the same.
        for m in &c.masters {
            c.world.restart(*m);
        }
        c.client.sleep(Duration::from_secs(30)).await;
        assert_eq!(get(&c.client, ADDR, "/").await.unwrap().status, 200);
        c.world.shutdown();
    });
}

#[test]
fn healthz_is_503_until_synced_then_200_even_without_api_servers() {
    run(32, || async {
        // No masters yet: the informers cannot list.
        let mut c = Cluster::build(32, ProxyConfig::new("n1"), false).await;
        c.client.sleep(Duration::from_secs(5)).await;
        let a = get(&c.client, HEALTHZ, "/healthz").await.unwrap();
        assert_eq!((a.status, a.body.as_str()), (503, "not synced yet\n"));
        assert_eq!(
            get(&c.client, HEALTHZ, "/metrics").await.unwrap().status,
            404
        );
        assert!(try_connect(&c.client, ADDR, Duration::from_secs(1))
            .await
            .is_err());

        c.add_masters();
        c.start_pod("p1", "web-1", "10.9.0.1").await;
        c.service("web", PORT, POD_PORT).await;
        c.endpoints("web", &["10.9.0.1"], &[]).await;
        let env = c.client.clone();
        eventually(&env, Duration::from_secs(60), || async {
            matches!(get(&env, HEALTHZ, "/healthz").await, Ok(a) if a.status == 200)
        })
        .await
        .expect("healthy once synced");
        c.until_status(PORT, 200).await;

        for m in &c.masters {
            c.world.crash(*m, false);
        }
        for _ in 0..6 {
            c.client.sleep(Duration::from_secs(10)).await;
            let a = get(&c.client, HEALTHZ, "/healthz").await.unwrap();
            assert_eq!((a.status, a.body.as_str()), (200, "ok\n"));
        }
        c.world.shutdown();
    });
}
