//! The jobs pipeline on the memory driver, end to end: jobs pushed over RPC (protobuf, as
//! the PHP library sends them), consumed by real PHP workers (`jobs.php`, written only
//! against docs/jobs-protocol.md), every delivery guarantee counted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::driver_suite::{self as suite, Broker};
use common::jobs::{self, builder, client, counts, job, push, taken, wait_counts};
use prost::Message;

/// The memory driver as the driver suite sees it: in pacer's own process, no section.
struct Memory;

impl Broker for Memory {
    fn driver(&self) -> &'static str {
        "memory"
    }

    fn pipeline_keys(&self, _name: &str) -> String {
        "driver: memory".to_string()
    }
}

const MEMORY: &str =
    "pipelines: {m: {driver: memory, config: {priority: 10, prefetch: 100}}}, consume: [m]";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reply_of_the_protocol_is_settled_and_counted() {
    let server = builder(MEMORY, 2).start().await;
    let mut c = client(&server).await;
    let kinds = ["ack", "complete", "empty"];
    let n = 300;
    let mut batch = Vec::new();
    for i in 0..n {
        let mut j = job(
            "m",
            &format!("id-{i}"),
            &format!(r#"{{"do":"{}"}}"#, kinds[i % 3]),
        );
        j.headers.insert(
            "trace".into(),
            pacer::jobs::proto::HeaderValue {
                value: vec![format!("t{i}"), "x".into()],
            },
        );
        if i % 2 == 0 {
            push(&mut c, j).await.unwrap();
        } else {
            batch.push(j);
        }
    }
    jobs::push_batch(&mut c, batch).await;
    let got = wait_counts(&server, "m", 60, |c| c.acked >= n as u64).await;
    assert_eq!(
        (
            got.pushed,
            got.consumed,
            got.acked,
            got.failed,
            got.requeued
        ),
        (n as u64, n as u64, n as u64, 0, 0),
        "{got:?}"
    );
    let counts = counts(&server);
    assert_eq!(counts.len(), n, "every job taken");
    assert!(counts.values().all(|&k| k == 1), "no job taken twice");
    let first = taken(&server).into_iter().find(|t| t.id == "id-0").unwrap();
    assert_eq!(first.job, "Tests\\Job");
    assert_eq!(first.pipeline, "m");
    assert_eq!(first.driver.as_deref(), Some("memory"));
    assert_eq!(first.queue.as_deref(), Some("m"));
    assert_eq!(first.headers["trace"], serde_json::json!(["t0", "x"]));
    assert_eq!(first.payload, r#"{"do":"ack"}"#);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_worker_is_killed_is_delivered_again() {
    let server = builder(MEMORY, 2).start().await;
    let mut c = client(&server).await;
    let n = 20;
    for i in 0..n {
        push(
            &mut c,
            job("m", &format!("k{i}"), r#"{"do":"ack","ms":300}"#),
        )
        .await
        .unwrap();
    }
    let kills = jobs::kill_busy_workers(&server, 3).await;
    let got = wait_counts(&server, "m", 60, |c| c.acked >= n).await;
    assert_eq!(got.acked, n, "{got:?}");
    let counts = counts(&server);
    assert_eq!(counts.len(), n as usize, "none lost");
    let duplicates: usize = counts.values().map(|k| k - 1).sum();
    assert!(
        (1..=kills).contains(&duplicates),
        "{duplicates} duplicates for {kills} killed workers: {counts:?}"
    );
    assert_eq!(got.failed as usize, duplicates, "{got:?}");
    // A redelivered job carries its attempts.
    let again = taken(&server)
        .into_iter()
        .filter(|t| counts[&t.id] > 1)
        .find(|t| !t.headers["attempts"].is_null())
        .expect("a redelivery with an attempts header");
    assert_eq!(again.headers["attempts"], serde_json::json!(["1"]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_ttl_and_failures_retry_with_delay_then_go_to_the_failed_pipeline() {
    suite::retries_then_the_failed_pipeline(&Memory, "w", "dead").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_delay_nack_and_worker_errors() {
    let server = builder(MEMORY, 2).start().await;
    let mut c = client(&server).await;
    push(
        &mut c,
        job("m", "rq", r#"{"do":"requeue","delay":1,"times":2}"#),
    )
    .await
    .unwrap();
    push(&mut c, job("m", "nq", r#"{"do":"nack","requeue":false}"#))
        .await
        .unwrap();
    push(&mut c, job("m", "er", r#"{"do":"error"}"#))
        .await
        .unwrap();
    let got = wait_counts(&server, "m", 30, |c| {
        c.acked >= 1 && c.failed >= 2 && c.requeued >= 2
    })
    .await;
    assert_eq!(got.acked, 1, "{got:?}");
    assert_eq!(
        got.failed, 2,
        "nack without requeue and a worker error: {got:?}"
    );
    let rq: Vec<_> = taken(&server)
        .into_iter()
        .filter(|t| t.id == "rq")
        .collect();
    assert_eq!(rq.len(), 3);
    assert_eq!(rq[2].headers["requeued"], serde_json::json!(["2"]));
    let t: Vec<f64> = std::fs::read_to_string(jobs::log_path(&server))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["id"] == "rq")
        .map(|v| v["t"].as_f64().unwrap())
        .collect();
    assert!(t[1] - t[0] >= 0.95 && t[2] - t[1] >= 0.95, "delays: {t:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume() {
    suite::pause_and_resume(&Memory, "p").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_are_declared_and_destroyed_at_run_time() {
    let server = builder(MEMORY, 1).start().await;
    let mut c = client(&server).await;
    // Declare, as Jobs::create(new MemoryCreateInfo('d', priority: 5)) sends it.
    let declare = [
        ("name", "d"),
        ("driver", "memory"),
        ("priority", "5"),
        ("prefetch", "10"),
    ];
    jobs::declare(&mut c, &declare).await.unwrap();
    let dup = jobs::declare(&mut c, &declare).await;
    assert!(dup.unwrap_err().to_string().contains("already exists"));
    let list = pacer::jobs::proto::Pipelines::decode(c.call_proto("jobs.List", b"").await.unwrap())
        .unwrap()
        .pipelines;
    assert_eq!(list, ["d", "m"]);
    push(&mut c, job("d", "in-d", r#"{"do":"ack"}"#))
        .await
        .unwrap();
    wait_counts(&server, "d", 30, |c| c.acked == 1).await;
    let destroyed = jobs::pipelines_call(&mut c, "jobs.Destroy", &["d"])
        .await
        .unwrap();
    assert_eq!(destroyed, ["d"]);
    let err = push(&mut c, job("d", "late", "{}")).await.unwrap_err();
    assert!(err.to_string().contains("no such pipeline: d"), "{err}");
    let err = jobs::declare(&mut c, &[("name", "x"), ("driver", "nope")])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("driver"), "{err}");
    let counts = counts(&server);
    assert_eq!(counts.len(), 1);
    server.stop().await;
}
