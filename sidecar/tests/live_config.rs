//! `pacer serve --watch-config` under load: the config is rewritten the way the kubelet
//! updates a mounted ConfigMap (new timestamped dir, `..data` symlink swapped), and the
//! pool follows — 2 → 8 → 2 workers — without a single failed request.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::configmap::publish;
use common::eventually;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use pacer::app::{self, Listeners, RunOptions, Running};
use pacer::config::{self, LoadOptions};
use tokio::net::TcpListener;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rr_yaml(workers: usize, max_jobs: u64) -> String {
    format!(
        r#"version: "3"
server:
  command: "php {worker}"
http:
  address: 127.0.0.1:0
  pool:
    num_workers: {workers}
    max_jobs: {max_jobs}
    allocate_timeout: 30s
    supervisor:
      watch_tick: 200ms
      max_worker_memory: 256
status:
  address: 127.0.0.1:0
metrics:
  address: 127.0.0.1:0
"#,
        worker = repo().join("testdata/workers/http.php").display()
    )
}

/// `pacer serve --watch-config` in this process, on the `rr.yaml` published in `dir`.
async fn serve_watched(dir: &Path, listeners: Listeners) -> (Running, Served) {
    let load = LoadOptions {
        path: dir.join("rr.yaml"),
        ..LoadOptions::default()
    };
    let config = config::load(&load).unwrap().config;
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(app::run(
        config,
        listeners,
        RunOptions {
            watch_config: true,
            load,
        },
        async move {
            let _ = stop_rx.await;
        },
        Some(ready_tx),
    ));
    let running = ready_rx.await.unwrap();
    (running, Served { stop, task })
}

/// A server [`serve_watched`] started: [`Served::stop`] shuts it down, in order.
struct Served {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), app::AppError>>,
}

impl Served {
    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_swaps_resize_the_pool_live_without_failed_requests() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), 1, &[("rr.yaml", &rr_yaml(2, 0))]);

    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let status = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (http_addr, status_addr) = (http.local_addr().unwrap(), status.local_addr().unwrap());
    let metrics_addr = metrics.local_addr().unwrap();
    let listeners = Listeners {
        http: Some(http),
        status: Some(status),
        metrics: Some(metrics),
        ..Listeners::default()
    };
    let (running, server) = serve_watched(dir.path(), listeners).await;
    assert!(running.pool.wait_ready(2, Duration::from_secs(20)).await);

    // Continuous load: 6 clients, each request holds a worker for 5 ms.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let clients: Vec<_> = (0..6)
        .map(|_| {
            let (client, stop, ok, failed) =
                (client.clone(), stop.clone(), ok.clone(), failed.clone());
            tokio::spawn(async move {
                let mut errors = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let uri = format!("http://{http_addr}/sleep?ms=5");
                    match client.get(uri.parse().unwrap()).await {
                        Ok(resp) if resp.status() == 200 => {
                            resp.into_body().collect().await.unwrap();
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(resp) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            errors.push(format!("status {}", resp.status()));
                        }
                        Err(e) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            errors.push(e.to_string());
                        }
                    }
                }
                errors
            })
        })
        .collect();

    let workers = || running.pool.snapshot().workers.len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    publish(dir.path(), 2, &[("rr.yaml", &rr_yaml(8, 0))]);
    assert!(
        eventually(30, || workers() == 8 && running.pool.target() == 8).await,
        "grew to 8: {}",
        workers()
    );
    let scrape = client
        .get(format!("http://{metrics_addr}/metrics").parse().unwrap())
        .await
        .unwrap();
    let text = String::from_utf8(
        scrape
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(
        text.contains("pacer_pool_target_workers{pool=\"http\"} 8"),
        "{text}"
    );

    // A broken file is rejected and changes nothing.
    publish(
        dir.path(),
        3,
        &[("rr.yaml", "version: \"3\"\nhttp: [not, a, map]\n")],
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(running.pool.target(), 8);

    publish(dir.path(), 4, &[("rr.yaml", &rr_yaml(2, 500))]);
    assert!(
        eventually(30, || workers() == 2 && running.pool.target() == 2).await,
        "shrank to 2: {}",
        workers()
    );
    assert_eq!(
        running.pool.settings().max_jobs,
        500,
        "max_jobs applied live too"
    );

    stop.store(true, Ordering::Relaxed);
    let mut errors = Vec::new();
    for c in clients {
        errors.extend(c.await.unwrap());
    }
    assert!(
        errors.is_empty(),
        "{} failed requests: {errors:?}",
        errors.len()
    );
    assert!(
        ok.load(Ordering::Relaxed) > 100,
        "load ran: {}",
        ok.load(Ordering::Relaxed)
    );
    assert_eq!(failed.load(Ordering::Relaxed), 0);

    // Readiness stayed up throughout and still is.
    let ready = client
        .get(format!("http://{status_addr}/ready").parse().unwrap())
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    server.stop().await;
}

fn rr_yaml_with_jobs(jobs_workers: usize, log: &Path) -> String {
    let jobs = repo().join("testdata/workers/jobs.php");
    format!(
        r#"{http}rpc:
  listen: tcp://127.0.0.1:0
jobs:
  pool:
    num_workers: {jobs_workers}
    command: "php {jobs}"
    allocate_timeout: 20s
    destroy_timeout: 5s
  consume: [m]
  pipelines:
    m: {{driver: memory, config: {{prefetch: 1000}}}}
"#,
        http = rr_yaml(1, 0).replace(
            "server:\n",
            &format!("server:\n  env: {{JOBS_LOG: {}}}\n", log.display())
        ),
        jobs = jobs.display(),
    )
}

/// How many distinct jobs workers took jobs after the `from`-th log line.
fn pids_after(log: &Path, from: usize) -> (usize, std::collections::BTreeSet<u64>) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let pids = lines
        .iter()
        .skip(from)
        .map(|l| l["pid"].as_u64().unwrap())
        .collect();
    (lines.len(), pids)
}

/// The operator sizes the jobs pool through the same ConfigMap: a backlog drained by one
/// jobs worker, then four (four take jobs at once), then one again; the HTTP pool is left
/// alone, every job is taken exactly once and acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_swaps_resize_the_jobs_pool_live() {
    use pacer::jobs::proto;
    use prost::Message;

    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("jobs.log");
    publish(dir.path(), 1, &[("rr.yaml", &rr_yaml_with_jobs(1, &log))]);
    let rpc = pacer::rpc::RpcListener::bind(&"tcp://127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let rpc_dsn = rpc.dsn().to_string();
    let listeners = Listeners {
        http: Some(TcpListener::bind("127.0.0.1:0").await.unwrap()),
        rpc: Some(rpc),
        ..Listeners::default()
    };
    let (running, server) = serve_watched(dir.path(), listeners).await;
    let jobs = running.jobs.clone().unwrap();
    assert!(jobs.pool().wait_ready(1, Duration::from_secs(20)).await);

    // A backlog: 600 jobs of 20 ms each (12 s for one worker).
    let n = 600;
    let mut client = pacer::rpc::RpcClient::connect(&rpc_dsn, Duration::from_secs(20))
        .await
        .unwrap();
    let batch = (0..n)
        .map(|i| proto::Job {
            job: "Tests\\Job".into(),
            id: format!("b{i}"),
            payload: br#"{"do":"ack","ms":20}"#.to_vec().into(),
            headers: Default::default(),
            options: Some(proto::Options {
                pipeline: "m".into(),
                ..Default::default()
            }),
        })
        .collect();
    client
        .call_proto(
            "jobs.PushBatch",
            &proto::PushBatchRequest { jobs: batch }.encode_to_vec(),
        )
        .await
        .unwrap();
    let acked = || jobs.counts("m").acked;
    assert!(
        eventually(30, || acked() >= 20).await,
        "one worker consumes"
    );
    let (_, one) = pids_after(&log, 0);
    assert_eq!(one.len(), 1, "one jobs worker: {one:?}");

    publish(dir.path(), 2, &[("rr.yaml", &rr_yaml_with_jobs(4, &log))]);
    assert!(
        eventually(30, || jobs.pool().snapshot().workers.len() == 4).await,
        "jobs pool grew to 4: {}",
        jobs.pool().snapshot().workers.len()
    );
    let (seen, _) = pids_after(&log, 0);
    assert!(
        eventually(30, || pids_after(&log, seen).1.len() == 4).await,
        "four workers take jobs: {:?}",
        pids_after(&log, seen).1
    );
    assert_eq!(
        running.pool.target(),
        1,
        "the HTTP pool is not the jobs pool"
    );
    assert_eq!(
        jobs.pool().snapshot().queue_depth,
        0,
        "no job waits in the pool's queue"
    );

    publish(dir.path(), 3, &[("rr.yaml", &rr_yaml_with_jobs(1, &log))]);
    assert!(
        eventually(30, || jobs.pool().snapshot().workers.len() == 1).await,
        "jobs pool shrank to 1: {}",
        jobs.pool().snapshot().workers.len()
    );
    assert!(
        acked() < n as u64,
        "the backlog outlasts the shrink: {}",
        acked()
    );
    let (seen, _) = pids_after(&log, 0);
    assert!(
        eventually(60, || acked() >= n as u64).await,
        "drained: {:?}",
        jobs.counts("m")
    );
    assert_eq!(pids_after(&log, seen).1.len(), 1, "one worker again");

    let c = jobs.counts("m");
    assert_eq!(
        (c.pushed, c.acked, c.failed, c.requeued),
        (n as u64, n as u64, 0, 0)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let mut ids = std::collections::BTreeMap::<String, usize>::new();
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        *ids.entry(v["id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(ids.len(), n, "every job taken");
    assert!(ids.values().all(|&k| k == 1), "none taken twice");

    server.stop().await;
}
