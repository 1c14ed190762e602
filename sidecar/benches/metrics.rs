//! What one request's metrics cost on the hot path: pacer's hand-written counters and
//! histogram (`stats.rs`, relaxed atomic adds) beside the `prometheus` crate (its shared
//! and its thread-local flavour) and `prometheus-client` (the operator's library), each
//! doing what one HTTP request does: a status counter and a duration histogram, plus
//! the pool's job counter and two histograms (job duration, queue wait).
//!
//! `cargo bench -p pacer --bench metrics` — the numbers decide whether the sidecar keeps
//! its own (see `stats.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use pacer::stats::{DURATION_BUCKETS, HttpStats, Outcome, PoolStats};

fn bench(c: &mut Criterion) {
    let elapsed = Duration::from_micros(850);
    let secs = elapsed.as_secs_f64();
    let mut group = c.benchmark_group("metrics per request");

    let http = HttpStats::default();
    let pool = PoolStats::default();
    group.bench_function("pacer stats (hand-written)", |b| {
        b.iter(|| {
            http.observe(black_box(200), black_box(elapsed));
            pool.job(Outcome::Ok);
            pool.job_duration.observe(black_box(elapsed));
            pool.queue_wait.observe(black_box(elapsed));
        })
    });

    let opts =
        |name: &str| prometheus::HistogramOpts::new(name, "h").buckets(DURATION_BUCKETS.to_vec());
    let by_status =
        prometheus::IntCounterVec::new(prometheus::Opts::new("requests", "r"), &["status"])
            .unwrap();
    let duration = prometheus::Histogram::with_opts(opts("duration")).unwrap();
    let jobs =
        prometheus::IntCounterVec::new(prometheus::Opts::new("jobs", "j"), &["outcome"]).unwrap();
    let job_duration = prometheus::Histogram::with_opts(opts("job")).unwrap();
    let queue_wait = prometheus::Histogram::with_opts(opts("queue")).unwrap();
    group.bench_function("prometheus (label lookup per request)", |b| {
        b.iter(|| {
            by_status.with_label_values(&[black_box("200")]).inc();
            duration.observe(black_box(secs));
            jobs.with_label_values(&["ok"]).inc();
            job_duration.observe(black_box(secs));
            queue_wait.observe(black_box(secs));
        })
    });
    let ok_200 = by_status.with_label_values(&["200"]);
    let jobs_ok = jobs.with_label_values(&["ok"]);
    group.bench_function("prometheus (children cached)", |b| {
        b.iter(|| {
            ok_200.inc();
            duration.observe(black_box(secs));
            jobs_ok.inc();
            job_duration.observe(black_box(secs));
            queue_wait.observe(black_box(secs));
        })
    });
    let local_200 = ok_200.local();
    let local_duration = duration.local();
    let local_jobs = jobs_ok.local();
    let local_job = job_duration.local();
    let local_queue = queue_wait.local();
    group.bench_function("prometheus (thread-local, flushed every 64)", |b| {
        let mut n = 0u32;
        b.iter(|| {
            local_200.inc();
            local_duration.observe(black_box(secs));
            local_jobs.inc();
            local_job.observe(black_box(secs));
            local_queue.observe(black_box(secs));
            n += 1;
            if n.is_multiple_of(64) {
                local_200.flush();
                local_duration.flush();
                local_jobs.flush();
                local_job.flush();
                local_queue.flush();
            }
        })
    });

    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::histogram::Histogram;
    let hist = || Histogram::new(DURATION_BUCKETS.iter().copied());
    let pc_status = Family::<Vec<(String, String)>, Counter>::default();
    let pc_duration = hist();
    let pc_jobs = Family::<Vec<(String, String)>, Counter>::default();
    let pc_job = hist();
    let pc_queue = hist();
    group.bench_function("prometheus-client (label lookup per request)", |b| {
        b.iter(|| {
            pc_status
                .get_or_create(&vec![("status".into(), black_box("200").into())])
                .inc();
            pc_duration.observe(black_box(secs));
            pc_jobs
                .get_or_create(&vec![("outcome".into(), "ok".into())])
                .inc();
            pc_job.observe(black_box(secs));
            pc_queue.observe(black_box(secs));
        })
    });
    let pc_200: Counter = Counter::default();
    let pc_ok: Counter = Counter::default();
    group.bench_function("prometheus-client (children cached)", |b| {
        b.iter(|| {
            pc_200.inc();
            pc_duration.observe(black_box(secs));
            pc_ok.inc();
            pc_job.observe(black_box(secs));
            pc_queue.observe(black_box(secs));
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
