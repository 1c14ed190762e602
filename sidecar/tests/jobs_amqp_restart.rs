//! A RabbitMQ restart in the middle of a stream of pushes and deliveries: pacer reconnects
//! with backoff, pushes wait for the connection, and no job is lost (its own broker: the
//! restart would disturb the other tests' shared one).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::brokers::Rabbit;
use common::jobs::{builder, client, counts, job, push, wait_counts};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_loses_no_job() {
    let rabbit = Arc::new(tokio::task::spawn_blocking(Rabbit::start).await.unwrap());
    let workers = 2u64;
    let prefetch = 10u64;
    let server = builder(
        &format!(
            "timeout: 60, pipelines: {{r: {{driver: amqp, config: {{queue: r, routing_key: r, durable: true, prefetch: {prefetch}}}}}}}, consume: [r]"
        ),
        workers as usize,
    )
    .set("amqp", format!("{{addr: '{}'}}", rabbit.url()))
    .start()
    .await;
    let n = 300u64;
    let retries = Arc::new(AtomicU64::new(0));
    let rpc = server.rpc.clone().unwrap();
    let producer = {
        let retries = retries.clone();
        tokio::spawn(async move {
            let mut c = pacer::rpc::RpcClient::connect(&rpc, Duration::from_secs(90))
                .await
                .unwrap();
            for i in 0..n {
                // A push that fails (the broker went away mid-call) is sent again: the
                // producer's own at-least-once.
                while let Err(error) = push(
                    &mut c,
                    job("r", &format!("r{i}"), r#"{"do":"ack","ms":20}"#),
                )
                .await
                {
                    retries.fetch_add(1, Ordering::Relaxed);
                    eprintln!("push r{i} failed ({error}); again");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    wait_counts(&server, "r", 60, |c| c.acked >= 80).await;
    let restart = {
        let rabbit = rabbit.clone();
        tokio::task::spawn_blocking(move || {
            rabbit.stop();
            std::thread::sleep(Duration::from_secs(2));
            rabbit.restart_after_stop();
        })
    };
    restart.await.unwrap();
    tokio::time::timeout(Duration::from_secs(120), producer)
        .await
        .expect("the producer finished after the restart")
        .unwrap();
    let got = wait_counts(&server, "r", 120, |_| counts(&server).len() as u64 >= n).await;
    let counts = counts(&server);
    let missing: Vec<String> = (0..n)
        .map(|i| format!("r{i}"))
        .filter(|id| !counts.contains_key(id))
        .collect();
    assert!(missing.is_empty(), "lost: {missing:?} ({got:?})");
    // Duplicates only from the restart: deliveries in flight or prefetched when the
    // connection died (their acks could not reach RabbitMQ), and pushes the producer
    // sent again.
    let duplicates: u64 = counts.values().map(|&k| k as u64 - 1).sum();
    let bound = prefetch + workers + retries.load(Ordering::Relaxed);
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates, at most {bound} expected: {got:?}"
    );
    // Consuming resumed after the restart: the queue drains.
    let mut c = client(&server).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s = common::jobs::stats(&mut c)
            .await
            .into_iter()
            .find(|s| s.pipeline == "r")
            .unwrap();
        if s.active == 0 && s.ready {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "queue not drained: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "restart: {n} jobs, {duplicates} duplicates, {} producer retries, counters {:?}",
        retries.load(Ordering::Relaxed),
        common::jobs::counter(&server, "r")
    );
    server.stop().await;
}
