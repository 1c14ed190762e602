//! The operator's half of the contract, against a real pacer (the sidecar library, run
//! in-process) serving real PHP workers: the generated `rr.yaml` starts it, the Direct
//! source reads its metrics into the window aggregates the tuner expects (including the
//! memory growth per job of a leaking endpoint), and a new `rr.yaml` resizes the live pool
//! (whose new worker's boot the next window reports).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use jiff::Timestamp;
use pacer::app::{Listeners, RunOptions};
use pacer::config::LoadOptions;
use pacer_crds::{MetricsSourceKind, PhpAppServerSpec};
use pacer_operator::metrics_source::http::HttpClient;
use pacer_operator::metrics_source::prom_text::{PacerMetrics, parse};
use pacer_operator::metrics_source::{Direct, MetricsSource, PodTarget, Target};
use pacer_operator::resources::rr_config::render;
use pacer_operator::tuning::Settings;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const MI: u64 = 1024 * 1024;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `php`, or a skip outside CI when it is missing.
fn php() -> Result<Option<String>> {
    let php = std::env::var("PACER_TEST_PHP").unwrap_or_else(|_| "php".to_owned());
    let works = std::process::Command::new(&php)
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    match (works, std::env::var("CI").as_deref() == Ok("true")) {
        (true, _) => Ok(Some(php)),
        (false, true) => bail!("`{php} -v` failed: install php8.2-cli (scripts/deps.sh)"),
        (false, false) => {
            eprintln!("SKIPPED (not in CI): no PHP");
            Ok(None)
        }
    }
}

fn settings(workers: u32) -> Settings {
    Settings {
        workers,
        max_jobs: 0,
        max_worker_memory: 256 * MI,
        memory_limit: 1024 * MI,
        replicas: 1,
    }
}

/// Writes `text` the way the kubelet updates a ConfigMap volume: a new file, then an
/// atomic rename over the old one.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, text)?;
    std::fs::rename(&temp, path)?;
    Ok(())
}

async fn get(addr: std::net::SocketAddr, path: &str) -> Result<String> {
    let mut sock = tokio::net::TcpStream::connect(addr).await?;
    sock.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut out = String::new();
    sock.read_to_string(&mut out).await?;
    Ok(out)
}

async fn scrape(addr: std::net::SocketAddr) -> Result<PacerMetrics> {
    let text = get(addr, "/metrics").await?;
    let body = text.split("\r\n\r\n").nth(1).context("no body")?;
    PacerMetrics::from_samples(&parse(body)?).context("no pacer series for pool http")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_pacer_runs_the_generated_config_and_feeds_the_direct_source() -> Result<()> {
    let Some(php) = php()? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let config_path = dir.path().join("rr.yaml");
    let worker = repo().join("testdata/workers/http.php");
    let spec: PhpAppServerSpec = serde_json::from_value(json!({
        "image": "unused",
        "command": [php, worker.to_str().context("path")?],
        "pool": {"allocateTimeout": "10s", "destroyTimeout": "5s"},
        "shutdown": {"delay": "0s", "gracePeriod": "5s"},
    }))?;
    write_atomically(&config_path, &render(&spec, &settings(2))?)?;

    let load = LoadOptions {
        path: config_path.clone(),
        ..LoadOptions::default()
    };
    let loaded = pacer::config::load(&load)?;
    ensure!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    // The config names 0.0.0.0 and fixed ports; the test binds loopback port 0 instead.
    let bind = || TcpListener::bind("127.0.0.1:0");
    let (http, status, metrics) = (bind().await?, bind().await?, bind().await?);
    let (http_addr, metrics_addr) = (http.local_addr()?, metrics.local_addr()?);
    let listeners = Listeners {
        http: Some(http),
        status: Some(status),
        metrics: Some(metrics),
        ..Listeners::default()
    };
    let stop = CancellationToken::new();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(pacer::app::run(
        loaded.config,
        listeners,
        RunOptions {
            watch_config: true,
            load,
        },
        stop.clone().cancelled_owned(),
        Some(ready_tx),
    ));
    tokio::time::timeout(Duration::from_secs(30), ready_rx).await??;

    // Two workers alive, and their memory sampled (watch_tick is 1 s).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let m = scrape(metrics_addr).await?;
        if m.ready + m.working >= 2.0 && m.slots.values().filter(|(mem, _)| *mem > 0.0).count() >= 2
        {
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the pool never came up: {m:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let direct = Direct::with_port(
        HttpClient::new(Duration::from_secs(5))?,
        metrics_addr.port(),
    );
    let t0 = Timestamp::now();
    let target = |now: Timestamp| Target {
        namespace: "shop".into(),
        app: "web".into(),
        pods: vec![PodTarget {
            name: "web-1".into(),
            ip: Some("127.0.0.1".into()),
            ..PodTarget::default()
        }],
        source: MetricsSourceKind::Direct,
        prometheus_url: None,
        bearer_token: None,
        window: Duration::from_secs(60),
        now,
    };
    assert!(
        direct.sample(&target(t0)).await?.pods.is_empty(),
        "one scrape is not a window"
    );

    // 60 requests that each keep 64 KiB in the worker that served them.
    for _ in 0..60 {
        let answer = get(http_addr, "/leak?kb=64").await?;
        ensure!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = t0
        .checked_add(jiff::SignedDuration::from_secs(10))
        .context("time")?;
    let sample = direct.sample(&target(later)).await?;
    let pod = sample
        .pods
        .first()
        .context("no aggregate after two scrapes")?;
    // The window is the 10 s between the two sample times.
    assert_eq!(pod.jobs_per_second, 6.0);
    assert!(
        pod.mean_job_seconds.is_some_and(|d| d > 0.0 && d < 1.0),
        "{:?}",
        pod.mean_job_seconds
    );
    assert!(
        (pod.live_workers - 2.0).abs() < 1e-9,
        "live {}",
        pod.live_workers
    );
    assert_eq!(pod.worker_memory.len(), 2);
    assert!(
        pod.worker_memory.iter().all(|&m| m > 4 * MI),
        "{:?}",
        pod.worker_memory
    );
    assert!(pod.server_memory.is_some_and(|m| m > MI));
    // The real pacer exports its workers' CPU time under the contract's name.
    assert!(
        pod.worker_cpu_cores
            .is_some_and(|c| (0.0..2.0).contains(&c)),
        "worker cpu {:?}",
        pod.worker_cpu_cores
    );
    // Job time by worker age, under the contract's names: pacer's seven bands, youngest
    // first, holding the window's 60 jobs, all run by workers younger than 100 jobs.
    let firsts: Vec<f64> = pod.worker_age.iter().map(|b| b.first).collect();
    assert_eq!(
        firsts,
        [0.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0],
        "{:?}",
        pod.worker_age
    );
    let jobs = |young: bool| {
        pod.worker_age
            .iter()
            .filter(|b| (b.first < 100.0) == young)
            .map(|b| b.jobs)
            .sum::<f64>()
    };
    assert_eq!(
        (jobs(true), jobs(false)),
        (60.0, 0.0),
        "{:?}",
        pod.worker_age
    );
    let seconds: f64 = pod.worker_age.iter().map(|b| b.seconds).sum();
    let mean = pod.mean_job_seconds.unwrap_or_default();
    assert!(
        (seconds - 60.0 * mean).abs() < 1e-6,
        "{seconds} s by age, {mean} s per job"
    );
    // Both workers booted before the window: no boot time, rather than a made-up one.
    assert_eq!(
        (pod.worker_boot_seconds, pod.worker_boots),
        (None, 0.0),
        "no worker booted in the window"
    );
    let growth = pod
        .memory_growth_per_job
        .context("no memory growth measured")?;
    assert!(
        (40.0 * 1024.0..=160.0 * 1024.0).contains(&growth),
        "growth {growth} B/job, expected ≈ 64 KiB"
    );

    // The operator writes 3 workers: pacer grows the live pool without a restart.
    write_atomically(&config_path, &render(&spec, &settings(3))?)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let m = scrape(metrics_addr).await?;
        if m.target_workers == Some(3.0) && m.ready + m.working >= 3.0 {
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the pool never grew: {m:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The third worker's boot is in the next window, under the contract's name.
    let sample = direct
        .sample(&target(
            t0.checked_add(jiff::SignedDuration::from_secs(20))
                .context("time")?,
        ))
        .await?;
    let pod = sample.pods.first().context("no aggregate")?;
    assert_eq!(pod.worker_boots, 1.0, "{pod:?}");
    assert!(
        pod.worker_boot_seconds.is_some_and(|b| b > 0.0 && b < 10.0),
        "boot {:?}",
        pod.worker_boot_seconds
    );
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), server).await???;
    Ok(())
}
