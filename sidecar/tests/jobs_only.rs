//! A jobs-only `pacer serve` (no `http` section): the consumer of `examples/jobs` takes
//! every job pushed over RPC, `/health`, `/ready` and `/metrics` answer, no HTTP pool or
//! listener exists, and a config with nothing to serve exits 64 naming the sections.
//! `/ready` follows the jobs plugin: 503 naming the reason while its RabbitMQ is down or
//! its workers cannot start, 200 again after the reconnect.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::binary::{PACER, PacerBin, Ports, free_port};
use common::brokers::Rabbit;
use common::jobs::{job, push};
use common::poll::eventually_async;
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

/// The jobs-only config of these tests: `examples/jobs`' consumer on `pipelines`.
fn jobs_only_yaml(ports: &Ports, rpc: &str, command: &str, extra: &str) -> String {
    format!(
        r#"version: "3"
server:
  command: {command}
status: {{address: {status}}}
metrics: {{address: {metrics}}}
rpc: {{listen: "{rpc}"}}
logs: {{level: info}}
{extra}"#,
        status = ports.status,
        metrics = ports.metrics,
    )
}

/// `/ready` (what the operator's probe of a jobs-only pod asks) as (status, body).
async fn ready(bin: &PacerBin, query: &str) -> (u16, serde_json::Value) {
    let r = fetch(&bin.status_url(&format!("/ready{query}"))).await;
    (r.status.as_u16(), r.json())
}

/// Polls `/ready{query}` for up to `secs` until `want` holds: whether it did, and the
/// last answer.
async fn ready_until(
    bin: &PacerBin,
    query: &str,
    secs: u64,
    want: impl Fn(&(u16, serde_json::Value)) -> bool,
) -> (bool, (u16, serde_json::Value)) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let seen = ready(bin, query).await;
        if want(&seen) {
            return (true, seen);
        }
        if tokio::time::Instant::now() >= deadline {
            return (false, seen);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_turns_503_naming_the_broker_while_rabbitmq_is_down_and_200_after_the_reconnect() {
    let rabbit = std::sync::Arc::new(tokio::task::spawn_blocking(Rabbit::start).await.unwrap());
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::pick();
    let rpc = format!("tcp://127.0.0.1:{}", free_port());
    let consumer = repo_root().join("examples/jobs/consumer.php");
    let command = format!(r#"["{}", "{}"]"#, php(), consumer.display());
    let jobs = format!(
        r#"amqp: {{addr: "{url}"}}
jobs:
  pool: {{num_workers: 1}}
  consume: [emails]
  pipelines:
    emails: {{driver: amqp, config: {{queue: ready-emails, routing_key: ready-emails, prefetch: 5}}}}
"#,
        url = rabbit.url()
    );
    let yaml = jobs_only_yaml(&ports, &rpc, &command, &jobs);
    let bin = PacerBin::spawn(dir, ports, &yaml);
    bin.wait_ready(1).await;
    let ok = serde_json::json!([{"plugin_name": "jobs", "error_message": "", "status_code": 200}]);
    assert_eq!(ready(&bin, "").await, (200, ok.clone()));
    assert_eq!(ready(&bin, "?plugin=jobs").await, (200, ok.clone()));

    let r = rabbit.clone();
    tokio::task::spawn_blocking(move || r.stop()).await.unwrap();
    let (down, seen) = ready_until(&bin, "?plugin=jobs", 60, |s| s.0 == 503).await;
    assert!(down, "/ready stayed {seen:?} with RabbitMQ stopped");
    let message = seen.1[0]["error_message"].as_str().unwrap().to_string();
    assert_eq!(seen.1[0]["plugin_name"], "jobs");
    assert_eq!(seen.1[0]["status_code"], 503);
    assert!(
        message.starts_with("pipeline emails (amqp): ") && message.contains("RabbitMQ"),
        "the reason names the pipeline and its broker: {message}"
    );
    eprintln!(
        "/ready?plugin=jobs with RabbitMQ stopped: {} {}",
        seen.0, seen.1
    );
    // Liveness holds: a restart would not bring the broker back.
    assert_eq!(fetch(&bin.status_url("/health")).await.status, 200);

    let r = rabbit.clone();
    tokio::task::spawn_blocking(move || r.restart_after_stop())
        .await
        .unwrap();
    let (up, seen) = ready_until(&bin, "?plugin=jobs", 90, |s| s.0 == 200).await;
    assert!(
        up,
        "/ready stayed {seen:?} after RabbitMQ came back: {}",
        bin.stderr()
    );
    assert_eq!(seen.1, ok);
    // Ready means consuming again: a job pushed now is acked.
    let mut c = pacer::rpc::RpcClient::connect(&rpc, Duration::from_secs(30))
        .await
        .unwrap();
    push(
        &mut c,
        job("emails", "after-restart", r#"{"to":"back@example.test"}"#),
    )
    .await
    .unwrap();
    let acked = eventually_async(60, || async {
        bin.metric(r#"pacer_pipeline_jobs_total{pipeline="emails",event="acked"}"#)
            .await
            >= 1.0
    })
    .await;
    assert!(
        acked,
        "the job pushed after the reconnect was not acked: {}",
        bin.stderr()
    );
    let text = bin.stop().await;
    assert!(!text.contains("panicked"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_turns_503_naming_the_reason_while_no_jobs_worker_starts() {
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::pick();
    let rpc = format!("tcp://127.0.0.1:{}", free_port());
    let command = format!(
        r#"["{}", "-r", "fwrite(STDERR, 'broken consumer'); exit(3);"]"#,
        php()
    );
    let jobs = r#"jobs:
  pool: {num_workers: 1, allocate_timeout: 1s}
  consume: [emails]
  pipelines:
    emails: {driver: memory, config: {prefetch: 10}}
"#;
    let yaml = jobs_only_yaml(&ports, &rpc, &command, jobs);
    let bin = PacerBin::spawn(dir, ports, &yaml);
    let status = bin.ports.status;
    assert!(
        eventually_async(30, || async move {
            tokio::net::TcpStream::connect(status).await.is_ok()
        })
        .await,
        "the status endpoint never listened: {}",
        bin.stderr()
    );
    let (unready, seen) = ready_until(&bin, "", 30, |s| {
        s.0 == 503
            && s.1[0]["error_message"]
                .as_str()
                .is_some_and(|m| m.starts_with("jobs pool: no workers: "))
    })
    .await;
    assert!(unready, "/ready does not say why: {seen:?}");
    assert_eq!(seen.1[0]["plugin_name"], "jobs");
    // Alive, though: restarting the process would not help.
    assert_eq!(fetch(&bin.status_url("/health")).await.status, 200);
    bin.stop().await;
}
