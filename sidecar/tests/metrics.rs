//! The Prometheus exposition with a real pool of PHP workers: names, labels, values
//! after known traffic, histogram invariants, stable slot labels, the HTTP endpoint and
//! `promtool check metrics`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use common::prom::{find, promtool_check, samples, value};
use common::*;
use pacer::metrics::{self, AppMetrics, CollectorSpec, Metrics};
use pacer::pool::Pool;
use pacer::relay::RelayAddr;
use pacer::stats::HttpStats;
use pacer::supervisor;
use pacer::worker::RecycleReason;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

async fn setup(workers: usize) -> (Pool, Arc<HttpStats>, Arc<AppMetrics>, Metrics) {
    let pool = ops_pool(settings(workers), RelayAddr::Pipes, &[]).await;
    let http = Arc::new(HttpStats::default());
    let app = Arc::new(AppMetrics::new());
    let m = Metrics::new(vec![pool.clone()], http.clone(), app.clone());
    (pool, http, app, m)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_jobs_are_counted_exactly() {
    let (pool, _http, _app, m) = setup(2).await;
    let tasks: Vec<_> = (0..4)
        .map(|c| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for i in 0..25 {
                    let body = format!("{c}-{i}");
                    let reply = call(&pool, r#"{"op":"echo"}"#, body.as_bytes())
                        .await
                        .unwrap();
                    assert_eq!(reply.body, body.as_bytes());
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let text = m.render();
    assert!(
        text.lines()
            .any(|l| l == "pacer_jobs_total{pool=\"http\",outcome=\"ok\"} 100"),
        "{text}"
    );
    let all = samples(&text);
    for outcome in ["error", "timeout", "worker_died", "no_worker"] {
        assert_eq!(
            value(&all, "pacer_jobs_total", &[("outcome", outcome)]),
            0.0
        );
    }
    assert_eq!(
        value(
            &all,
            "pacer_job_duration_seconds_count",
            &[("pool", "http")]
        ),
        100.0
    );
    assert_eq!(
        value(&all, "pacer_queue_wait_seconds_count", &[("pool", "http")]),
        100.0
    );
    let jobs: f64 = find(&all, "pacer_worker_jobs", &[("pool", "http")])
        .iter()
        .map(|s| s.value)
        .sum();
    assert_eq!(jobs, 100.0, "per-slot job counts add up");

    // A PHP error is its own outcome.
    call(&pool, r#"{"op":"error"}"#, b"boom").await.unwrap_err();
    let all = samples(&m.render());
    assert_eq!(
        value(&all, "pacer_jobs_total", &[("outcome", "error")]),
        1.0
    );
    assert_eq!(value(&all, "pacer_jobs_total", &[("outcome", "ok")]), 100.0);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_and_label_sets_are_the_contract() {
    let (pool, http, _app, m) = setup(2).await;
    supervisor::tick_once(&pool);
    http.observe(200, Duration::from_millis(4));
    http.observe(503, Duration::from_millis(40));
    let text = m.render();
    let all = samples(&text);

    // Every family of docs/design.md §2.6 (plus worker CPU time, spawn failures and boots),
    // with its type.
    for (family, kind) in [
        ("pacer_build_info", "gauge"),
        ("pacer_workers", "gauge"),
        ("pacer_pool_target_workers", "gauge"),
        ("pacer_queue_depth", "gauge"),
        ("pacer_worker_memory_bytes", "gauge"),
        ("pacer_worker_jobs", "gauge"),
        ("pacer_jobs_total", "counter"),
        ("pacer_worker_restarts_total", "counter"),
        ("pacer_no_free_workers_total", "counter"),
        ("pacer_worker_spawn_failures_total", "counter"),
        ("pacer_worker_cpu_seconds_total", "counter"),
        ("pacer_http_requests_total", "counter"),
        ("pacer_job_duration_seconds", "histogram"),
        ("pacer_worker_age_job_seconds_total", "counter"),
        ("pacer_worker_age_jobs_total", "counter"),
        ("pacer_queue_wait_seconds", "histogram"),
        ("pacer_worker_boot_seconds", "histogram"),
        ("pacer_http_request_duration_seconds", "histogram"),
        ("process_cpu_seconds_total", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_virtual_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
        ("process_max_fds", "gauge"),
        ("process_start_time_seconds", "gauge"),
    ] {
        assert!(
            text.contains(&format!("\n# TYPE {family} {kind}\n")),
            "{family} {kind}"
        );
        assert!(text.contains(&format!("# HELP {family} ")), "{family} help");
    }
    // Nothing else with the pacer_ prefix.
    let families: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .filter(|n| n.starts_with("pacer_"))
        .collect();
    // The cgroup's families come and go with the machine (see the live test below).
    let core = families
        .iter()
        .filter(|f| !f.starts_with("pacer_cgroup_"))
        .count();
    assert_eq!(core, 18, "{families:?}");
    for f in &families {
        assert!(metrics::FAMILIES.contains(f), "{f}");
    }

    let version = find(&all, "pacer_build_info", &[]);
    assert_eq!(version.len(), 1);
    assert_eq!(version[0].value, 1.0);
    assert_eq!(version[0].labels["version"], env!("CARGO_PKG_VERSION"));

    let states: BTreeSet<&str> = find(&all, "pacer_workers", &[("pool", "http")])
        .iter()
        .map(|s| s.labels["state"].as_str())
        .collect();
    assert_eq!(
        states,
        BTreeSet::from(["ready", "working", "spawning", "stopping"])
    );
    assert_eq!(
        value(&all, "pacer_workers", &[("state", "ready")]),
        2.0,
        "{text}"
    );
    assert_eq!(
        value(&all, "pacer_pool_target_workers", &[("pool", "http")]),
        2.0
    );
    assert_eq!(value(&all, "pacer_queue_depth", &[("pool", "http")]), 0.0);

    let outcomes: BTreeSet<&str> = find(&all, "pacer_jobs_total", &[])
        .iter()
        .map(|s| s.labels["outcome"].as_str())
        .collect();
    assert_eq!(
        outcomes,
        BTreeSet::from(["ok", "error", "timeout", "worker_died", "no_worker"])
    );
    for family in [
        "pacer_worker_age_job_seconds_total",
        "pacer_worker_age_jobs_total",
    ] {
        let ages: Vec<&str> = find(&all, family, &[("pool", "http")])
            .iter()
            .map(|s| s.labels["age"].as_str())
            .collect();
        assert_eq!(ages, pacer::stats::AGE_BAND_LABELS, "{family}");
    }
    let reasons: BTreeSet<&str> = find(&all, "pacer_worker_restarts_total", &[])
        .iter()
        .map(|s| s.labels["reason"].as_str())
        .collect();
    assert_eq!(
        reasons,
        RecycleReason::ALL.iter().map(|r| r.as_str()).collect()
    );

    // Slot labels, never pids.
    for family in ["pacer_worker_memory_bytes", "pacer_worker_jobs"] {
        let slots: BTreeSet<&str> = find(&all, family, &[("pool", "http")])
            .iter()
            .map(|s| s.labels["slot"].as_str())
            .collect();
        assert_eq!(slots, BTreeSet::from(["0", "1"]), "{family}");
    }
    for s in find(&all, "pacer_worker_memory_bytes", &[]) {
        assert!(
            s.value > 1_048_576.0,
            "RSS sampled by the supervisor: {s:?}"
        );
    }
    for s in &all {
        assert!(!s.labels.contains_key("pid"), "{s:?}");
        let labels: BTreeSet<&str> = s.labels.keys().map(String::as_str).collect();
        // Every pool metric has a pool; HTTP, build and cgroup metrics are per process.
        if s.name.starts_with("pacer_")
            && !s.name.starts_with("pacer_http_")
            && !s.name.starts_with("pacer_cgroup_")
            && s.name != "pacer_build_info"
        {
            assert!(labels.contains("pool"), "{s:?}");
        }
    }

    assert_eq!(
        value(&all, "pacer_http_requests_total", &[("code", "200")]),
        1.0
    );
    assert_eq!(
        value(&all, "pacer_http_requests_total", &[("code", "503")]),
        1.0
    );
    assert_eq!(
        value(&all, "pacer_http_request_duration_seconds_count", &[]),
        2.0
    );
    assert!(value(&all, "process_resident_memory_bytes", &[]) > 1_048_576.0);
    assert!(value(&all, "process_open_fds", &[]) >= 3.0);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histograms_keep_their_invariants() {
    let (pool, http, app, m) = setup(2).await;
    for i in 0..30u64 {
        let ctx = if i % 3 == 0 {
            r#"{"op":"sleep","ms":15}"#
        } else {
            r#"{"op":"echo"}"#
        };
        call(&pool, ctx, b"x").await.unwrap();
        http.observe(200, Duration::from_micros(300 * i * i));
    }
    app.declare(
        "app_latency_seconds",
        serde_json::from_value::<CollectorSpec>(serde_json::json!({
            "type": "histogram", "help": "h", "labels": ["route"], "buckets": [0.01, 0.1, 1]
        }))
        .unwrap(),
    )
    .unwrap();
    for v in [0.005, 0.05, 0.5, 5.0] {
        app.observe("app_latency_seconds", v, &["/x".to_string()])
            .unwrap();
    }
    let all = samples(&m.render());

    let mut checked = 0;
    for base in [
        "pacer_job_duration_seconds",
        "pacer_queue_wait_seconds",
        "pacer_worker_boot_seconds",
        "pacer_http_request_duration_seconds",
        "app_latency_seconds",
    ] {
        let buckets = find(&all, &format!("{base}_bucket"), &[]);
        assert!(!buckets.is_empty(), "{base}");
        let mut previous = (f64::NEG_INFINITY, 0.0);
        for b in &buckets {
            let le: f64 = match b.labels["le"].as_str() {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap(),
            };
            assert!(le > previous.0, "{base}: le ascending");
            assert!(b.value >= previous.1, "{base}: cumulative counts");
            previous = (le, b.value);
        }
        assert_eq!(previous.0, f64::INFINITY, "{base}: ends with +Inf");
        let count = value(&all, &format!("{base}_count"), &[]);
        assert_eq!(previous.1, count, "{base}: +Inf bucket == _count");
        assert!(value(&all, &format!("{base}_sum"), &[]) >= 0.0);
        checked += 1;
    }
    assert_eq!(checked, 5);
    assert_eq!(value(&all, "pacer_job_duration_seconds_count", &[]), 30.0);
    // Ten jobs slept 15 ms: at least ten are above the 10 ms bound.
    let le_10ms = value(&all, "pacer_job_duration_seconds_bucket", &[("le", "0.01")]);
    assert!(le_10ms <= 20.0, "{le_10ms}");
    pool.shutdown().await;
}

/// A worker whose app boots for 0.5 s before its first wait for a request: its boot, from
/// the process start to the end of the PID handshake, is what pacer exports — on pipes
/// (pacer asks at once, the library answers on its first read) and on a socket relay (the
/// library connects on its first `waitPayload()`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_bootstrap_is_the_workers_boot_time() {
    for relay in [RelayAddr::Pipes, RelayAddr::Tcp("127.0.0.1:0".into())] {
        let pool = ops_pool(settings(2), relay.clone(), &[("OPS_BOOT_SLEEP_MS", "500")]).await;
        let m = Metrics::new(
            vec![pool.clone()],
            Arc::new(HttpStats::default()),
            Arc::new(AppMetrics::new()),
        );
        let all = samples(&m.render());
        let sum = value(&all, "pacer_worker_boot_seconds_sum", &[("pool", "http")]);
        let count = value(&all, "pacer_worker_boot_seconds_count", &[("pool", "http")]);
        assert_eq!(count, 2.0, "{relay:?}");
        let mean = sum / count;
        eprintln!("{relay:?}: mean boot {mean:.3} s over {count} workers");
        assert!((0.5..3.0).contains(&mean), "{relay:?}: {mean}");
        // Both boots are above the 0.25 s bound and at most 60 s.
        assert_eq!(
            value(
                &all,
                "pacer_worker_boot_seconds_bucket",
                &[("pool", "http"), ("le", "0.25")]
            ),
            0.0
        );
        assert_eq!(
            value(
                &all,
                "pacer_worker_boot_seconds_bucket",
                &[("pool", "http"), ("le", "60")]
            ),
            2.0
        );
        pool.shutdown().await;
    }
}

/// A worker whose first jobs are slower — it sleeps 20·e^(−j/20) ms before its j-th job, a
/// warm-up of about 20 jobs — shows it in the job time by worker age: each band's mean is
/// the warm mean plus that band's share of the decay, and every job is in the band of the
/// jobs its worker had done before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_time_by_worker_age_shows_a_warm_up() {
    const COLD_MS: f64 = 20.0;
    const TAU: f64 = 20.0;
    const JOBS: u64 = 330;
    let pool = ops_pool(
        settings(1),
        RelayAddr::Pipes,
        &[("OPS_COLD_MS", "20"), ("OPS_COLD_JOBS", "20")],
    )
    .await;
    let m = Metrics::new(
        vec![pool.clone()],
        Arc::new(HttpStats::default()),
        Arc::new(AppMetrics::new()),
    );
    for _ in 0..JOBS {
        call(&pool, r#"{"op":"echo"}"#, b"x").await.unwrap();
    }
    let all = samples(&m.render());
    let band = |age: &str| {
        let labels = [("pool", "http"), ("age", age)];
        (
            value(&all, "pacer_worker_age_job_seconds_total", &labels),
            value(&all, "pacer_worker_age_jobs_total", &labels),
        )
    };
    // One worker: jobs 0–9, 10–29, 30–99, 100–299 and 300–329 of its life.
    let expected = [
        ("0-9", 0, 10),
        ("10-29", 10, 30),
        ("30-99", 30, 100),
        ("100-299", 100, 300),
        ("300-999", 300, JOBS),
    ];
    for (age, first, end) in expected {
        assert_eq!(band(age).1, (end - first) as f64, "{age}");
    }
    for age in ["1000-2999", "3000+"] {
        assert_eq!(band(age), (0.0, 0.0), "{age}");
    }
    let total: f64 = expected.iter().map(|(age, ..)| band(age).0).sum();
    let histogram = value(&all, "pacer_job_duration_seconds_sum", &[("pool", "http")]);
    assert!((total - histogram).abs() < 1e-6, "{total} vs {histogram}");

    // The warm mean: past 15 time constants the sleep is under a microsecond.
    let (sum, n) = band("300-999");
    let warm = sum / n;
    for (age, first, end) in &expected[..3] {
        let (sum, n) = band(age);
        let extra_ms = (sum / n - warm) * 1e3;
        let want_ms = (*first..*end)
            .map(|j| COLD_MS * (-(j as f64) / TAU).exp())
            .sum::<f64>()
            / n;
        eprintln!("{age}: {extra_ms:.2} ms over the warm mean, {want_ms:.2} ms slept");
        // usleep sleeps at least as asked; a loaded machine adds to any job.
        assert!(
            extra_ms > want_ms * 0.9 - 0.3 && extra_ms < want_ms * 1.3 + 3.0,
            "{age}: {extra_ms} ms, want {want_ms}"
        );
    }
    let young = band("0-9");
    assert!(
        young.0 / young.1 > warm + 0.01,
        "the young band is 10 ms slower or more"
    );
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_labels_survive_a_worker_restart() {
    let (pool, _http, _app, m) = setup(2).await;
    supervisor::tick_once(&pool);
    let slots_of = |text: &str| -> BTreeMap<String, f64> {
        find(
            &samples(text),
            "pacer_worker_memory_bytes",
            &[("pool", "http")],
        )
        .iter()
        .map(|s| (s.labels["slot"].clone(), s.value))
        .collect()
    };
    let before = slots_of(&m.render());
    assert_eq!(before.keys().cloned().collect::<Vec<_>>(), ["0", "1"]);

    let victim = pool.snapshot().workers[0].clone();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim.pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(
        eventually(20, || {
            let s = pool.snapshot();
            s.workers.len() == 2 && s.workers.iter().all(|w| w.pid != victim.pid)
        })
        .await,
        "the killed worker was replaced"
    );
    supervisor::tick_once(&pool);
    let text = m.render();
    let after = slots_of(&text);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "same slot labels after the restart:\n{text}"
    );
    let all = samples(&text);
    assert_eq!(
        value(&all, "pacer_worker_restarts_total", &[("reason", "died")]),
        1.0
    );
    let jobs: BTreeSet<&str> = find(&all, "pacer_worker_jobs", &[])
        .iter()
        .map(|s| s.labels["slot"].as_str())
        .collect();
    assert_eq!(jobs, BTreeSet::from(["0", "1"]));
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_the_exposition() {
    let (pool, http, app, m) = setup(2).await;
    supervisor::tick_once(&pool);
    for _ in 0..10 {
        call(&pool, r#"{"op":"echo"}"#, b"x").await.unwrap();
    }
    call(&pool, r#"{"op":"error"}"#, b"x").await.unwrap_err();
    for (code, ms) in [(200, 2), (200, 9), (404, 1), (500, 30)] {
        http.observe(code, Duration::from_millis(ms));
    }
    let spec = |v: serde_json::Value| serde_json::from_value::<CollectorSpec>(v).unwrap();
    app.declare(
        "orders_total",
        spec(serde_json::json!({"namespace":"shop","type":"counter","help":"Orders \\ placed\nper channel","labels":["channel"]})),
    )
    .unwrap();
    app.add("orders_total", 3.0, &["we\"b\\\n".to_string()])
        .unwrap();
    app.declare(
        "queue_size",
        spec(serde_json::json!({"type":"gauge","help":"Queue"})),
    )
    .unwrap();
    app.set("queue_size", -2.5, &[]).unwrap();
    app.declare(
        "latency_seconds",
        spec(serde_json::json!({"type":"histogram","help":"Latency","labels":["method"]})),
    )
    .unwrap();
    app.observe("latency_seconds", 0.3, &["GET".to_string()])
        .unwrap();
    app.declare(
        "payload_bytes",
        spec(serde_json::json!({"type":"summary","help":"Payload","objectives":{"0.5":0.05,"0.99":0.001},"labels":["dir"]})),
    )
    .unwrap();
    app.observe("payload_bytes", 512.0, &["in".to_string()])
        .unwrap();
    app.declare(
        "idle_payload_bytes",
        spec(serde_json::json!({"type":"summary","help":"No observations","objectives":{"0.5":0.05}})),
    )
    .unwrap();

    let text = m.render();
    assert!(
        text.contains("shop_orders_total{channel=\"we\\\"b\\\\\\n\"} 3\n"),
        "{text}"
    );
    assert!(
        text.contains("idle_payload_bytes{quantile=\"0.5\"} NaN\n"),
        "{text}"
    );
    promtool_check(&text);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_serves_every_path() {
    let (pool, _http, _app, m) = setup(1).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let server = tokio::spawn(metrics::serve(listener, Arc::new(m), stop.clone()));

    for path in ["/metrics", "/", "/anything/else"] {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut response = String::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut response))
            .await
            .unwrap()
            .unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: text/plain; version=0.0.4"),
            "{head}"
        );
        assert!(body.contains("pacer_build_info{version="), "{path}");
        assert!(body.contains("pacer_workers{pool=\"http\",state=\"ready\"} 1\n"));
    }
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap();
    pool.shutdown().await;
}

/// The container's cgroup, read live from this machine's own cgroup (v1 here; the v2
/// parsing is tested on fixtures in `cgroup.rs`): the exposition carries the working set,
/// the limit when there is one, the OOM-kill count and the CPU periods, and each value
/// lies between two direct reads of the kernel's files around the scrape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cgroup_metrics_are_read_live() {
    use pacer::cgroup::{Cgroup, parse_flat_keyed, parse_limit};
    let (_pool, _http, _app, m) = setup(1).await;
    let cgroup = Cgroup::discover();
    let locations = cgroup.locations().clone();
    let (version, memory) = locations
        .memory
        .clone()
        .expect("this machine's memory cgroup is found");
    let (_, cpu) = locations
        .cpu
        .clone()
        .expect("this machine's CPU cgroup is found");
    let file = |dir: &std::path::Path, name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    let (usage_file, limit_file, events_file) = match version {
        pacer::cgroup::Version::V1 => (
            "memory.usage_in_bytes",
            "memory.limit_in_bytes",
            "memory.oom_control",
        ),
        pacer::cgroup::Version::V2 => ("memory.current", "memory.max", "memory.events"),
    };
    let usage = |dir: &std::path::Path| file(dir, usage_file).trim().parse::<f64>().unwrap();
    let ooms = || parse_flat_keyed(&file(&memory, events_file))["oom_kill"] as f64;
    let periods = || parse_flat_keyed(&file(&cpu, "cpu.stat"))["nr_periods"] as f64;

    let (oom_before, periods_before) = (ooms(), periods());
    let text = m.render();
    let (oom_after, periods_after, usage_after) = (ooms(), periods(), usage(&memory));
    let all = samples(&text);

    let working_set = value(&all, "pacer_cgroup_memory_working_set_bytes", &[]);
    assert!(working_set > 0.0, "{working_set}");
    // The working set is the usage less the inactive file pages; the test process itself
    // allocates between the reads, so allow it some slack above the later usage.
    assert!(
        working_set <= usage_after + 64.0 * 1024.0 * 1024.0,
        "working set {working_set} > usage {usage_after}"
    );
    let oom = value(&all, "pacer_cgroup_oom_kills_total", &[]);
    assert!(
        (oom_before..=oom_after).contains(&oom),
        "{oom_before} ≤ {oom} ≤ {oom_after}"
    );
    let p = value(&all, "pacer_cgroup_cpu_periods_total", &[]);
    assert!((periods_before..=periods_after).contains(&p), "{p}");
    assert!(value(&all, "pacer_cgroup_cpu_throttled_periods_total", &[]) <= p);
    assert!(value(&all, "pacer_cgroup_cpu_throttled_seconds_total", &[]) >= 0.0);
    match parse_limit(&file(&memory, limit_file)) {
        Some(limit) => assert_eq!(
            value(&all, "pacer_cgroup_memory_limit_bytes", &[]),
            limit as f64
        ),
        None => assert!(find(&all, "pacer_cgroup_memory_limit_bytes", &[]).is_empty()),
    }
    promtool_check(&text);
}
