//! Our PHP library's jobs API (`Pacer\Jobs\Consumer` as the workers, `Pacer\Jobs\Jobs`
//! as a producer script) against a real pacer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::jobs::{self, builder_with_worker, counts, taken, wait_counts};
use common::{php, worker_script};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_php_library_produces_and_consumes() {
    let server = builder_with_worker(
        "pipelines: {lib: {driver: memory}}, consume: [lib]",
        2,
        "jobs-lib.php",
    )
    .start()
    .await;
    let rpc = server.rpc.clone().unwrap();
    let n = 50;
    let out = tokio::process::Command::new(php())
        .arg(worker_script("jobs-producer.php"))
        .args([rpc.as_str(), "lib", &n.to_string()])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "producer failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ids"].as_array().unwrap().len(), 2 * n + 1);
    assert_eq!(report["list"], serde_json::json!(["lib", "lib-declared"]));
    assert_eq!(report["paused_ready"], false);
    assert_eq!(report["stat"]["lib-declared"]["driver"], "memory");
    assert_eq!(report["stat"]["lib-declared"]["priority"], 3);
    assert_eq!(report["stat"]["lib"]["ready"], true);
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("no such pipeline: no-such-pipeline"),
        "{report}"
    );
    let got = wait_counts(&server, "lib", 60, |c| c.acked >= 2 * n as u64).await;
    assert_eq!(
        (got.pushed, got.acked, got.failed),
        (2 * n as u64, 2 * n as u64, 0)
    );
    wait_counts(&server, "lib-declared", 30, |c| c.acked >= 1).await;
    let counts = counts(&server);
    assert_eq!(counts.len(), 2 * n + 1, "every job ran");
    assert!(counts.values().all(|&k| k == 1));
    let ids: Vec<String> = report["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    for id in &ids {
        assert!(counts.contains_key(id), "{id} never ran");
    }
    let log = taken(&server);
    let one = log.iter().find(|t| t.id == ids[3]).unwrap();
    assert_eq!(one.job, "App\\One");
    assert_eq!(one.headers["i"], serde_json::json!(["3"]));
    assert_eq!(one.headers["tags"], serde_json::json!(["a", "b"]));
    let batch = log.iter().find(|t| t.id == ids[n + 1]).unwrap();
    assert_eq!(batch.headers["b"], serde_json::json!(["1"]));
    assert!(
        ids[0].len() == 36 && ids[0].as_bytes()[14] == b'4',
        "a UUID v4: {}",
        ids[0]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_php_library_task_answers() {
    let server = builder_with_worker(
        "pipelines: {lib2: {driver: memory, retry: {max_attempts: 2, failed_pipeline: lib2dead}}, lib2dead: {driver: memory}}, consume: [lib2]",
        2,
        "jobs-lib.php",
    )
    .start()
    .await;
    let mut c = jobs::client(&server).await;
    for (id, payload) in [
        ("ack", r#"{"do":"ack"}"#),
        ("complete", r#"{"do":"complete"}"#),
        ("requeue", r#"{"do":"requeue","delay":1,"times":2}"#),
        ("nack", r#"{"do":"nack"}"#),
        ("fail", r#"{"do":"fail"}"#),
    ] {
        jobs::push(&mut c, jobs::job("lib2", id, payload))
            .await
            .unwrap();
    }
    let got = wait_counts(&server, "lib2", 60, |c| c.acked >= 3 && c.failed >= 4).await;
    assert_eq!((got.acked, got.requeued, got.failed), (3, 2, 4), "{got:?}");
    let counts = counts(&server);
    assert_eq!(
        (
            counts["ack"],
            counts["complete"],
            counts["requeue"],
            counts["nack"],
            counts["fail"]
        ),
        (1, 1, 3, 2, 2)
    );
    let requeued = taken(&server)
        .into_iter()
        .rfind(|t| t.id == "requeue")
        .unwrap();
    assert_eq!(requeued.headers["requeued"], serde_json::json!(["2"]));
    let dead = jobs::stats(&mut c)
        .await
        .into_iter()
        .find(|s| s.pipeline == "lib2dead")
        .unwrap();
    assert_eq!(dead.active, 2, "nack and fail, after 2 attempts each");
    server.stop().await;
}
