//! The jobs pipeline through the `pacer` binary: the jobs pool in `pacer workers jobs`
//! and `pacer_workers{pool="jobs"}`, the per-pipeline metrics (checked by promtool), and
//! SIGTERM while jobs run: they finish, the rest stays queued.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::binary::{PACER, PacerBin, Ports, free_port};
use common::jobs::{job, push};
use common::prom::promtool_check;
use common::serve::fetch;
use common::{php, worker_script};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_pool_metrics_cli_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::pick();
    let rpc = format!("tcp://127.0.0.1:{}", free_port());
    // Outside pacer's directory, which goes with it.
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("jobs.log");
    let yaml = format!(
        r#"version: "3"
server:
  command: ["{php}", "{http}"]
  env: {{JOBS_LOG: "{log}"}}
http:
  address: {http_addr}
  pool: {{num_workers: 1}}
status: {{address: {status}}}
metrics: {{address: {metrics}}}
rpc: {{listen: "{rpc}"}}
logs: {{level: info}}
jobs:
  pool: {{num_workers: 2, command: ["{php}", "{jobs}"]}}
  consume: [m]
  pipelines:
    m: {{driver: memory, config: {{prefetch: 4}}}}
pacer:
  shutdown: {{delay: 0s, grace_period: 20s}}
"#,
        php = php(),
        http = worker_script("http.php"),
        jobs = worker_script("jobs.php"),
        log = log.display(),
        http_addr = ports.http,
        status = ports.status,
        metrics = ports.metrics,
    );
    let bin = PacerBin::spawn(dir, ports, &yaml);
    // 1 HTTP worker and 2 jobs workers.
    bin.wait_ready(3).await;
    let mut c = pacer::rpc::RpcClient::connect(&rpc, Duration::from_secs(30))
        .await
        .unwrap();
    for i in 0..10 {
        push(
            &mut c,
            job("m", &format!("fast{i}"), r#"{"do":"ack","ms":10}"#),
        )
        .await
        .unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while bin
        .metric(r#"pacer_pipeline_jobs_total{pipeline="m",event="acked"}"#)
        .await
        < 10.0
    {
        assert!(tokio::time::Instant::now() < deadline, "10 jobs not acked");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = fetch(&format!("http://{}/metrics", bin.ports.metrics))
        .await
        .text();
    for sample in [
        r#"pacer_pipeline_jobs_total{pipeline="m",event="pushed"} 10"#,
        r#"pacer_pipeline_jobs_total{pipeline="m",event="consumed"} 10"#,
        r#"pacer_pipeline_jobs_total{pipeline="m",event="failed"} 0"#,
        r#"pacer_pipeline_job_duration_seconds_count{pipeline="m"} 10"#,
        r#"pacer_pipeline_queue_wait_seconds_count{pipeline="m"} 10"#,
        r#"pacer_workers{pool="jobs",state="ready"} 2"#,
        r#"pacer_pool_target_workers{pool="jobs"} 2"#,
    ] {
        assert!(text.contains(sample), "no {sample} in\n{text}");
    }
    let depth = tokio::time::Instant::now() + Duration::from_secs(10);
    while !fetch(&format!("http://{}/metrics", bin.ports.metrics))
        .await
        .text()
        .contains(r#"pacer_pipeline_depth{pipeline="m"} 0"#)
    {
        assert!(tokio::time::Instant::now() < depth, "no depth sample");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    promtool_check(&text);
    let out = tokio::process::Command::new(PACER)
        .args(["workers", "--rpc", &rpc, "jobs", "--json"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let workers: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        workers["jobs"].as_array().map(Vec::len),
        Some(2),
        "{workers}"
    );

    // SIGTERM with 2 jobs running and 2 more prefetched: the running ones finish, the
    // process exits 0, nothing is half-done.
    for i in 0..6 {
        push(
            &mut c,
            job("m", &format!("slow{i}"), r#"{"do":"ack","ms":1500}"#),
        )
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stderr = bin.stop().await;
    let taken: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .filter(|id| id.starts_with("slow"))
        .collect();
    assert_eq!(taken.len(), 2, "only the two running jobs ran: {taken:?}");
    assert!(stderr.contains("jobs stopped"), "{stderr}");
}
