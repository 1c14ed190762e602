//! `pacer serve --watch-config` under load: the config is rewritten the way the kubelet
//! updates a mounted ConfigMap (new timestamped dir, `..data` symlink swapped), and the
//! pool follows — 2 → 8 → 2 workers — without a single failed request.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::configmap::publish;
use common::eventually;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use pacer::app::{self, Listeners, RunOptions};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_swaps_resize_the_pool_live_without_failed_requests() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), 1, &[("rr.yaml", &rr_yaml(2, 0))]);
    let load = LoadOptions {
        path: dir.path().join("rr.yaml"),
        ..LoadOptions::default()
    };
    let config = config::load(&load).unwrap().config;

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
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(app::run(
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

    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}
