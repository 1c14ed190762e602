//! The Prometheus metrics source against a real Prometheus server (Debian's `prometheus`)
//! scraping a pacer-shaped metrics endpoint whose counters advance at known rates: the
//! PromQL the source sends is valid and yields the window aggregates Little's law says.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use jiff::Timestamp;
use pacer_crds::MetricsSourceKind;
use pacer_operator::metrics_source::http::HttpClient;
use pacer_operator::metrics_source::{MetricsSource, PodTarget, Prometheus, Target};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MI: f64 = 1024.0 * 1024.0;
/// Bytes a worker gains per job in the fake.
const GROWTH: f64 = 4096.0;

/// Finds the Prometheus binary; outside CI its absence is a skip.
fn prometheus_binary() -> Result<Option<PathBuf>> {
    let found = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("prometheus"))
                .find(|p| p.is_file())
        })
        .unwrap_or_default();
    match found {
        Some(path) => Ok(Some(path)),
        None if std::env::var("CI").as_deref() == Ok("true") => {
            bail!("prometheus is not installed (scripts/deps.sh installs it)")
        }
        None => {
            eprintln!("SKIPPED (not in CI): prometheus is not installed");
            Ok(None)
        }
    }
}

/// Serves the worker series of a leaky pool whose worker is recycled every 4 s, as pacer
/// does it: the replacement starts in the other slot (1, 2, 1, …), so each slot series is
/// younger than a 5 s window and a reused slot starts again from 0 jobs. The worker grows
/// [`GROWTH`] per job at 10 jobs/s.
async fn fake_recycling_pacer() -> Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let start = Instant::now();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let t = start.elapsed().as_secs_f64();
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = sock.read(&mut buf).await;
                let life = (t / 4.0).floor();
                let slot = 1 + (life as u64 % 2);
                let jobs = (10.0 * (t - 4.0 * life)).floor();
                let body = format!(
                    "pacer_workers{{pool=\"http\",state=\"ready\"}} 0\n\
                     pacer_workers{{pool=\"http\",state=\"working\"}} 1\n\
                     pacer_job_duration_seconds_sum{{pool=\"http\"}} {}\n\
                     pacer_job_duration_seconds_count{{pool=\"http\"}} {}\n\
                     pacer_worker_memory_bytes{{pool=\"http\",slot=\"{slot}\"}} {}\n\
                     pacer_worker_jobs{{pool=\"http\",slot=\"{slot}\"}} {jobs}\n\
                     process_resident_memory_bytes {}\n",
                    0.1 * t,
                    10.0 * t,
                    20.0 * MI + jobs * GROWTH,
                    10.0 * MI,
                );
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(answer.as_bytes()).await;
            });
        }
    });
    Ok(port)
}

/// OOM kills the fake's container had before Prometheus' first scrape of it.
const EARLY_KILLS: f64 = 7.0;

/// Seconds each of the fake's worker boots takes; one boots every 2 s.
const BOOT: f64 = 3.0;

/// Seconds a young worker's job takes in the fake (a warm one's: 0.1).
const YOUNG_JOB: f64 = 0.3;

/// Serves pacer-shaped metrics: 3 of 4 workers busy, 25 jobs/s of 0.1 s each (2.5 busy
/// workers by Little's law) — by worker age, 1 job/s of [`YOUNG_JOB`] in band `0-9` and
/// 24 of 0.1 s in `3000+` — 0.5 requests waiting, slot 0's worker growing 4 KiB per job,
/// a worker booting in [`BOOT`] every 2 s, and [`EARLY_KILLS`] OOM kills in its container
/// before it was first scraped (pacer started when the fake did).
async fn fake_pacer() -> Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let start = Instant::now();
    let started = Timestamp::now().as_millisecond() as f64 / 1000.0;
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let t = start.elapsed().as_secs_f64();
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = sock.read(&mut buf).await;
                let jobs0 = (10.0 * t).floor();
                let boots = (t / 2.0).floor();
                let body = format!(
                    "pacer_workers{{pool=\"http\",state=\"ready\"}} 1\n\
                     pacer_workers{{pool=\"http\",state=\"working\"}} 3\n\
                     pacer_workers{{pool=\"http\",state=\"spawning\"}} 0\n\
                     pacer_queue_depth{{pool=\"http\"}} 0\n\
                     pacer_job_duration_seconds_sum{{pool=\"http\"}} {}\n\
                     pacer_job_duration_seconds_count{{pool=\"http\"}} {}\n\
                     pacer_queue_wait_seconds_sum{{pool=\"http\"}} {}\n\
                     pacer_no_free_workers_total{{pool=\"http\"}} 0\n\
                     pacer_worker_memory_bytes{{pool=\"http\",slot=\"0\"}} {}\n\
                     pacer_worker_jobs{{pool=\"http\",slot=\"0\"}} {}\n\
                     pacer_worker_memory_bytes{{pool=\"http\",slot=\"1\"}} {}\n\
                     pacer_worker_jobs{{pool=\"http\",slot=\"1\"}} 5\n\
                     process_resident_memory_bytes {}\n\
                     pacer_cgroup_oom_kills_total {EARLY_KILLS}\n\
                     pacer_worker_boot_seconds_sum{{pool=\"http\"}} {}\n\
                     pacer_worker_boot_seconds_count{{pool=\"http\"}} {boots}\n\
                     pacer_worker_age_job_seconds_total{{pool=\"http\",age=\"0-9\"}} {}\n\
                     pacer_worker_age_jobs_total{{pool=\"http\",age=\"0-9\"}} {t}\n\
                     pacer_worker_age_job_seconds_total{{pool=\"http\",age=\"3000+\"}} {}\n\
                     pacer_worker_age_jobs_total{{pool=\"http\",age=\"3000+\"}} {}\n\
                     process_start_time_seconds {started}\n",
                    2.5 * t,
                    25.0 * t,
                    0.5 * t,
                    20.0 * MI + jobs0 * GROWTH,
                    jobs0,
                    22.0 * MI,
                    10.0 * MI,
                    BOOT * boots,
                    YOUNG_JOB * t,
                    0.1 * 24.0 * t,
                    24.0 * t,
                );
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(answer.as_bytes()).await;
            });
        }
    });
    Ok(port)
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn promql_aggregates_match_the_scraped_rates() -> Result<()> {
    let Some(binary) = prometheus_binary()? else {
        return Ok(());
    };
    let target_port = fake_pacer().await?;
    let recycling_port = fake_recycling_pacer().await?;
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: pacer\n    static_configs:\n      \
             - targets: ['127.0.0.1:{target_port}']\n        labels: {{namespace: shop, pod: web-5d8f-a1}}\n      \
             - targets: ['127.0.0.1:{recycling_port}']\n        labels: {{namespace: shop, pod: web-5d8f-b2}}\n"
        ),
    )?;
    let port = pacer_ports::free_port();
    let _server = Server(
        Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting prometheus")?,
    );
    let source = Prometheus::new(HttpClient::new(Duration::from_secs(5))?);
    let target = |window: u64| Target {
        namespace: "shop".into(),
        app: "web".into(),
        pods: vec![PodTarget {
            name: "web-5d8f-a1".into(),
            ip: None,
            ..PodTarget::default()
        }],
        source: MetricsSourceKind::Prometheus,
        prometheus_url: Some(format!("http://127.0.0.1:{port}/")),
        bearer_token: None,
        window: Duration::from_secs(window),
        now: Timestamp::now(),
    };

    // Wait until Prometheus holds a few windows of scrapes and answers for our pod.
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);
    let sample = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if started.elapsed() < Duration::from_secs(12) {
            continue;
        }
        if let Ok(sample) = source.sample(&target(5)).await
            && sample
                .pods
                .first()
                .is_some_and(|p| p.memory_growth_per_job.is_some())
        {
            break sample;
        }
        if Instant::now() > deadline {
            bail!("prometheus never produced a full window for the pod");
        }
    };
    let pod = &sample.pods[0];
    let near = |got: f64, want: f64| (got - want).abs() <= want * 0.2;
    assert_eq!(pod.pod, "web-5d8f-a1");
    assert!(near(pod.live_workers, 4.0), "live {}", pod.live_workers);
    // Busy: max(2.5 from the duration sum, 3 from the working gauge).
    assert!(near(pod.busy_workers, 3.0), "busy {}", pod.busy_workers);
    assert!(
        near(pod.jobs_per_second, 25.0),
        "jobs/s {}",
        pod.jobs_per_second
    );
    assert!(
        near(pod.mean_job_seconds.unwrap_or_default(), 0.1),
        "{:?}",
        pod.mean_job_seconds
    );
    assert!(near(pod.queue_depth, 0.5), "queue {}", pod.queue_depth);
    assert_eq!(pod.rejected_per_second, 0.0);
    assert_eq!(pod.worker_memory.len(), 2);
    // Only slot 0 served jobs in the window: its slope is the growth per job.
    let growth = pod.memory_growth_per_job.unwrap_or_default();
    assert!(near(growth, GROWTH), "growth {growth}");
    assert!(
        near(pod.warm_worker_memory.unwrap_or_default(), 20.0 * MI),
        "warm {:?}",
        pod.warm_worker_memory
    );
    assert_eq!(pod.server_memory, Some((10.0 * MI) as u64));
    assert!(
        near(pod.worker_boot_seconds.unwrap_or_default(), BOOT),
        "boot {:?}",
        pod.worker_boot_seconds
    );
    // Job time by worker age: each band's jobs and mean over the window.
    let bands: Vec<(f64, f64, f64)> = pod
        .worker_age
        .iter()
        .map(|b| (b.first, b.jobs / 5.0, b.seconds / b.jobs.max(1e-9)))
        .collect();
    assert_eq!(bands.len(), 2, "{bands:?}");
    assert_eq!((bands[0].0, bands[1].0), (0.0, 3000.0), "{bands:?}");
    assert!(
        near(bands[0].1, 1.0) && near(bands[0].2, YOUNG_JOB),
        "{bands:?}"
    );
    assert!(near(bands[1].1, 24.0) && near(bands[1].2, 0.1), "{bands:?}");
    // About 2.5 boots in 5 s; how many a 5 s window holds depends on the scrape phase.
    assert!(pod.worker_boots >= 1.0, "boots {}", pod.worker_boots);
    assert!(
        pod.pod_memory_peak.is_some_and(|p| p as f64 > 52.0 * MI),
        "{:?}",
        pod.pod_memory_peak
    );

    // The container's kills before Prometheus' first scrape: in a window that holds the
    // container's start they are counted (the counter began at 0 inside it) …
    let mut long = target(60);
    long.now = Timestamp::now();
    let early = source.sample(&long).await?;
    assert_eq!(
        early.pods.first().and_then(|p| p.oom_kills),
        Some(EARLY_KILLS),
        "kills before the first scrape of a container started inside the window"
    );
    // … in a window that began after it they are a baseline, as for an operator that
    // first looks at an old container.
    let mut short = target(5);
    short.now = Timestamp::now();
    let late = source.sample(&short).await?;
    assert_eq!(late.pods.first().and_then(|p| p.oom_kills), Some(0.0));

    // A leaky worker recycled more often than the window still has its growth measured
    // (its slot series is younger than the window).
    let mut recycling = target(5);
    recycling.pods[0].name = "web-5d8f-b2".into();
    let deadline = Instant::now() + Duration::from_secs(30);
    let growth = loop {
        recycling.now = Timestamp::now();
        let sample = source.sample(&recycling).await?;
        if let Some(g) = sample.pods.first().and_then(|p| p.memory_growth_per_job) {
            break g;
        }
        if Instant::now() > deadline {
            bail!("no growth measured for a worker recycled faster than the window");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        near(growth, GROWTH),
        "growth of the recycled worker {growth}"
    );
    // It exports no boot histogram (an older pacer): no boot time, not 0 s.
    recycling.now = Timestamp::now();
    let older = source.sample(&recycling).await?;
    assert_eq!(
        older
            .pods
            .first()
            .map(|p| (p.worker_boot_seconds, p.worker_boots)),
        Some((None, 0.0))
    );

    // A pod Prometheus knows nothing about yields no sample rather than zeros.
    let mut unknown = target(5);
    unknown.pods[0].name = "web-5d8f-zz".into();
    assert!(source.sample(&unknown).await?.pods.is_empty());
    Ok(())
}
