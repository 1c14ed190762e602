//! A jobs-only `pacer serve` (no `http` section): the consumer of `examples/jobs` takes
//! every job pushed over RPC, `/health`, `/ready` and `/metrics` answer, no HTTP pool or
//! listener exists, and a config with nothing to serve exits 64 naming the sections.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::binary::{PACER, PacerBin, Ports, free_port};
use common::jobs::{job, push};
use common::serve::fetch;
use common::{php, repo_root};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_only_serves_jobs_health_and_metrics_without_http() {
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::pick();
    let rpc = format!("tcp://127.0.0.1:{}", free_port());
    let consumer = repo_root().join("examples/jobs/consumer.php");
    let yaml = format!(
        r#"version: "3"
server:
  command: ["{php}", "{consumer}"]
status: {{address: {status}}}
metrics: {{address: {metrics}}}
rpc: {{listen: "{rpc}"}}
logs: {{level: info}}
jobs:
  pool: {{num_workers: 2}}
  consume: [emails]
  pipelines:
    emails: {{driver: memory, config: {{prefetch: 10}}}}
"#,
        php = php(),
        consumer = consumer.display(),
        status = ports.status,
        metrics = ports.metrics,
    );
    let http = ports.http;
    let bin = PacerBin::spawn(dir, ports, &yaml);
    // Ready once the 2 jobs workers run: the jobs pool is the one /ready follows.
    bin.wait_ready(2).await;
    let mut c = pacer::rpc::RpcClient::connect(&rpc, Duration::from_secs(30))
        .await
        .unwrap();
    for i in 0..50 {
        let payload = format!(r#"{{"to":"user{i}@example.test"}}"#);
        push(&mut c, job("emails", &format!("welcome{i}"), &payload))
            .await
            .unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while bin
        .metric(r#"pacer_pipeline_jobs_total{pipeline="emails",event="acked"}"#)
        .await
        < 50.0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "50 jobs not acked: {}",
            bin.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = fetch(&format!("http://{}/metrics", bin.ports.metrics))
        .await
        .text();
    assert!(
        text.contains(r#"pacer_pool_target_workers{pool="jobs"} 2"#),
        "{text}"
    );
    assert!(
        !text.contains(r#"pool="http""#),
        "no HTTP pool in a jobs-only pacer:\n{text}"
    );
    assert_eq!(fetch(&bin.status_url("/health")).await.status, 200);
    // The consumer logged every mail (pacer forwards the workers' stderr).
    let log = bin.stderr();
    assert_eq!(
        (0..50)
            .filter(|i| log.contains(&format!("welcome mail to user{i}@example.test")))
            .count(),
        50,
        "{log}"
    );
    // Nothing listens on the HTTP port the test reserved.
    assert!(tokio::net::TcpStream::connect(http).await.is_err());
    let text = bin.stop().await;
    assert!(!text.contains("panicked"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_with_nothing_to_serve_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".rr.yaml");
    std::fs::write(
        &path,
        "version: \"3\"\nserver: {command: \"php w.php\"}\nstatus: {address: 127.0.0.1:0}\n",
    )
    .unwrap();
    let out = tokio::process::Command::new(PACER)
        .args(["serve", "-c"])
        .arg(&path)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("no `http`, `jobs` or `service` section"),
        "{stderr}"
    );
}
