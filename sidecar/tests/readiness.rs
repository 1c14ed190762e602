//! Readiness under load: by default a saturated pod stays ready (`accepting`); with
//! `pacer.readiness.mode: saturation` `/ready` turns 503 once the queue has stayed long,
//! and 200 again once it has drained for a while. Real PHP workers, real HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::serve::*;

/// Keeps `n` slow requests in flight on their own connections until they finish.
fn flood(server: &Server, n: usize, ms: u64) -> Vec<tokio::task::JoinHandle<Reply>> {
    (0..n)
        .map(|_| {
            let url = server.url(&format!("/sleep?ms={ms}"));
            tokio::spawn(async move { fetch(&url).await })
        })
        .collect()
}

async fn ready(server: &Server) -> u16 {
    fetch(&server.status_url("/ready")).await.status.as_u16()
}

#[tokio::test]
async fn saturation_mode_takes_a_pod_with_a_long_queue_out_and_back_with_hysteresis() {
    let server = Builder::new("http.php")
        .workers(1)
        .set("pacer.readiness.mode", "saturation")
        .set("pacer.readiness.queue_high", 3)
        .set("pacer.readiness.queue_low", 0)
        .set("pacer.readiness.high_for", "300ms")
        .set("pacer.readiness.low_for", "500ms")
        .start()
        .await;
    assert_eq!(ready(&server).await, 200);
    // 1 running + 5 queued, for about 6 × 400 ms.
    let requests = flood(&server, 6, 400);
    assert!(
        eventually_async(20, || async { server.pool().queue_depth() >= 3 }).await,
        "the queue never filled"
    );
    assert!(
        eventually_async(20, || async { ready(&server).await == 503 }).await,
        "a saturated pod stayed ready"
    );
    let body = fetch(&server.status_url("/ready")).await.text();
    assert!(body.contains("saturated"), "{body}");
    for r in requests {
        assert_eq!(r.await.unwrap().status, 200);
    }
    // Drained: ready again (the timing of the hysteresis is the unit tests' job).
    assert!(
        eventually_async(20, || async { ready(&server).await == 200 }).await,
        "never ready again"
    );
    server.stop().await;
}

#[tokio::test]
async fn by_default_a_pod_with_a_long_queue_stays_ready() {
    let server = Builder::new("http.php").workers(1).start().await;
    let requests = flood(&server, 6, 300);
    assert!(
        eventually_async(20, || async { server.pool().queue_depth() >= 3 }).await,
        "the queue never filled"
    );
    // Past the saturation mode's default high_for (5 s) would be too slow a test; the
    // default mode has no timer at all: it is ready while the queue is long.
    for _ in 0..5 {
        assert_eq!(ready(&server).await, 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for r in requests {
        assert_eq!(r.await.unwrap().status, 200);
    }
    server.stop().await;
}
