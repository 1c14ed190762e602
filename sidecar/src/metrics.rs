//! Pacer's Prometheus metrics (docs/design.md §2.6) in the text exposition format 0.0.4.
//!
//! The metric names are a contract with the operator: they are listed once, in
//! [`FAMILIES`], and nothing else with the `pacer_` prefix is exported. Label sets are
//! bounded: `pool`, `state`, `outcome`, `reason`, `age` are closed sets; `slot` is the stable
//! worker index (never the pid); `code` is an HTTP status.
//!
//! # Theory of operation
//! Nothing here keeps state of its own. [`Metrics::render`] reads, at scrape time:
//! * each pool's [`Pool::snapshot`] (worker states, target, queue) and
//!   [`PoolStats`](crate::stats::PoolStats) (lock-free counters and histograms);
//! * worker RSS from [`WorkerInfo::rss`](crate::worker::WorkerInfo::rss), which the
//!   supervisor samples every `watch_tick` — a scrape never reads another process's
//!   `/proc` (workers not sampled yet have no memory series);
//! * [`HttpStats`] from the HTTP server;
//! * `/proc/self` for the standard `process_*` metrics (see [`process`]);
//! * the container's own cgroup for `pacer_cgroup_*` (see [`crate::cgroup`]);
//! * the application metrics declared over RPC ([`app::AppMetrics`]).
//!
//! [`serve`] answers every path and method with the exposition, like RoadRunner's
//! metrics plugin.
//!
//! Module map: [`text`] writes the format, [`app`] holds application metrics,
//! [`process`] reads `/proc`.

pub mod app;
pub mod process;
pub(crate) mod text;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cgroup::Cgroup;
use crate::pool::{Pool, PoolSnapshot};
use crate::stats::{HistogramSnapshot, HttpStats, Outcome};
use crate::worker::{RecycleReason, WorkerInfo};
pub use app::{AppMetrics, AppMetricsError, CollectorSpec};
use text::{Kind, Text};

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every metric family pacer exports itself. Application metrics may not use these
/// names (nor the `pacer_` prefix).
pub const FAMILIES: &[&str] = &[
    "pacer_build_info",
    "pacer_workers",
    "pacer_pool_target_workers",
    "pacer_queue_depth",
    "pacer_worker_memory_bytes",
    "pacer_worker_jobs",
    "pacer_jobs_total",
    "pacer_worker_restarts_total",
    "pacer_no_free_workers_total",
    "pacer_worker_spawn_failures_total",
    "pacer_worker_cpu_seconds_total",
    "pacer_http_requests_total",
    "pacer_job_duration_seconds",
    "pacer_worker_age_job_seconds_total",
    "pacer_worker_age_jobs_total",
    "pacer_queue_wait_seconds",
    "pacer_worker_boot_seconds",
    "pacer_http_request_duration_seconds",
    "pacer_pipeline_jobs_total",
    "pacer_pipeline_depth",
    "pacer_pipeline_job_duration_seconds",
    "pacer_pipeline_queue_wait_seconds",
    "pacer_cgroup_memory_working_set_bytes",
    "pacer_cgroup_memory_limit_bytes",
    "pacer_cgroup_oom_kills_total",
    "pacer_cgroup_cpu_periods_total",
    "pacer_cgroup_cpu_throttled_periods_total",
    "pacer_cgroup_cpu_throttled_seconds_total",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
];

/// The values of the `state` label of `pacer_workers`; all four are always exported.
pub const WORKER_STATES: [&str; 4] = ["ready", "working", "spawning", "stopping"];

/// Pacer's metrics: what to read at scrape time.
#[derive(Debug)]
pub struct Metrics {
    pools: Vec<Pool>,
    jobs: Option<crate::jobs::Jobs>,
    http: Arc<HttpStats>,
    app: Arc<AppMetrics>,
    version: String,
    cgroup: Cgroup,
}

impl Metrics {
    /// `pools` are labelled by their name (`http`); `app` is the registry the RPC
    /// `metrics.*` methods write to. `pacer_build_info` carries the crate version.
    pub fn new(pools: Vec<Pool>, http: Arc<HttpStats>, app: Arc<AppMetrics>) -> Metrics {
        Metrics {
            pools,
            jobs: None,
            http,
            app,
            version: env!("CARGO_PKG_VERSION").to_string(),
            cgroup: Cgroup::discover(),
        }
    }

    /// Exports the jobs pipelines' counters (`pacer_pipeline_*`) too.
    pub fn with_jobs(mut self, jobs: Option<crate::jobs::Jobs>) -> Metrics {
        self.jobs = jobs;
        self
    }

    /// Overrides the `version` label of `pacer_build_info` (e.g. with a git describe).
    pub fn with_version(mut self, version: impl Into<String>) -> Metrics {
        self.version = version.into();
        self
    }

    pub fn app(&self) -> &Arc<AppMetrics> {
        &self.app
    }

    /// The whole exposition.
    pub fn render(&self) -> String {
        self.render_at(Instant::now())
    }

    /// The exposition as of `now` (summary windows are relative to it).
    pub fn render_at(&self, now: Instant) -> String {
        let mut t = Text::with_capacity(8192);
        t.family(
            "pacer_build_info",
            "Pacer build information; the value is always 1.",
            Kind::Gauge,
        );
        t.sample("pacer_build_info", &[("version", &self.version)], 1.0);

        self.render_pools(&mut t);
        self.render_http(&mut t);
        if let Some(jobs) = &self.jobs {
            crate::jobs::stats::render(&mut t, &jobs.stats());
        }
        render_process(&mut t);
        render_cgroup(&mut t, &self.cgroup);
        self.app.render(&mut t, now);
        t.finish()
    }

    fn render_pools(&self, t: &mut Text) {
        let snaps: Vec<_> = self.pools.iter().map(Pool::snapshot).collect();

        t.family(
            "pacer_workers",
            "Worker processes by state: ready (idle), working (running a job), spawning (starting), stopping (retired, not exited yet).",
            Kind::Gauge,
        );
        for s in &snaps {
            for (state, n) in WORKER_STATES
                .iter()
                .zip([s.ready, s.working, s.spawning, s.stopping])
            {
                t.sample_u64(
                    "pacer_workers",
                    &[("pool", &s.name), ("state", state)],
                    n as u64,
                );
            }
        }

        self.per_pool(
            t,
            &snaps,
            "pacer_pool_target_workers",
            "The number of workers the pool aims for (num_workers, changed live by RPC or config).",
            Kind::Gauge,
            |s, _| s.target as u64,
        );
        self.per_pool(
            t,
            &snaps,
            "pacer_queue_depth",
            "Requests waiting for a free worker.",
            Kind::Gauge,
            |s, _| s.queue_depth as u64,
        );

        t.family(
            "pacer_worker_memory_bytes",
            "Resident set size of the worker in a slot, sampled by the supervisor every watch_tick.",
            Kind::Gauge,
        );
        for s in &snaps {
            for w in s.workers.iter().filter(|w| w.rss() > 0) {
                per_slot(t, "pacer_worker_memory_bytes", s, w, w.rss());
            }
        }

        t.family(
            "pacer_worker_jobs",
            "Jobs run by the current worker in a slot (starts at 0 when the worker is replaced).",
            Kind::Gauge,
        );
        for s in &snaps {
            for w in &s.workers {
                per_slot(t, "pacer_worker_jobs", s, w, w.jobs());
            }
        }

        self.per_pool_by(
            t,
            &snaps,
            "pacer_jobs_total",
            "Jobs by outcome: ok, error (PHP reported an error), timeout (exec_ttl), worker_died, no_worker (none free in time or queue full).",
            ("outcome", &Outcome::ALL, Outcome::as_str),
            |pool, outcome| pool.stats().jobs(outcome),
        );
        self.per_pool_by(
            t,
            &snaps,
            "pacer_worker_restarts_total",
            "Workers replaced, by reason.",
            ("reason", &RecycleReason::ALL, RecycleReason::as_str),
            |pool, reason| pool.stats().restarts(reason),
        );

        self.per_pool(
            t,
            &snaps,
            "pacer_no_free_workers_total",
            "Requests that found no free worker within allocate_timeout, or a full queue.",
            Kind::Counter,
            |_, pool| pool.stats().no_free_workers.get(),
        );
        self.per_pool(
            t,
            &snaps,
            "pacer_worker_spawn_failures_total",
            "Worker starts that failed (the command, the handshake or allocate_timeout); \
             each one backs the next start off.",
            Kind::Counter,
            |_, pool| pool.stats().spawn_failures.get(),
        );

        t.family(
            "pacer_worker_cpu_seconds_total",
            "CPU time (user + system) the pool's workers used, sampled every watch_tick.",
            Kind::Counter,
        );
        for (s, pool) in snaps.iter().zip(&self.pools) {
            t.sample(
                "pacer_worker_cpu_seconds_total",
                &[("pool", &s.name)],
                pool.stats().worker_cpu_ticks.get() as f64 / process::clock_ticks() as f64,
            );
        }

        self.per_pool_histogram(
            t,
            &snaps,
            "pacer_job_duration_seconds",
            "Time a worker spent on a job, from handing it over to the last response frame.",
            |pool| pool.stats().job_duration.snapshot(),
        );
        self.render_worker_age(t, &snaps);
        self.per_pool_histogram(
            t,
            &snaps,
            "pacer_queue_wait_seconds",
            "Time a job waited for a free worker.",
            |pool| pool.stats().queue_wait.snapshot(),
        );
        self.per_pool_histogram(
            t,
            &snaps,
            "pacer_worker_boot_seconds",
            "Time a worker took to boot, from starting its process to the end of its PID \
             handshake (for RoadRunner's PHP library: the app's bootstrap); failed starts \
             are not counted.",
            |pool| pool.stats().worker_boot.snapshot(),
        );
    }

    /// Job time by the age of the worker that ran the job (`age`: a band of the jobs it
    /// had done before, [`crate::stats::AGE_BAND_LABELS`]); every band always exported.
    fn render_worker_age(&self, t: &mut Text, snaps: &[PoolSnapshot]) {
        let bands: Vec<_> = self
            .pools
            .iter()
            .map(|p| p.stats().worker_age.snapshot())
            .collect();
        t.family(
            "pacer_worker_age_job_seconds_total",
            "Seconds workers spent on jobs (as pacer_job_duration_seconds), by the jobs the \
             worker had done before the job (age band).",
            Kind::Counter,
        );
        for (s, bands) in snaps.iter().zip(&bands) {
            for b in bands {
                let labels = [("pool", s.name.as_str()), ("age", b.label)];
                t.sample("pacer_worker_age_job_seconds_total", &labels, b.seconds);
            }
        }
        t.family(
            "pacer_worker_age_jobs_total",
            "Jobs timed into pacer_worker_age_job_seconds_total, by the same age band.",
            Kind::Counter,
        );
        for (s, bands) in snaps.iter().zip(&bands) {
            for b in bands {
                let labels = [("pool", s.name.as_str()), ("age", b.label)];
                t.sample_u64("pacer_worker_age_jobs_total", &labels, b.jobs);
            }
        }
    }

    /// A family with one sample per pool, labelled `pool`.
    fn per_pool(
        &self,
        t: &mut Text,
        snaps: &[PoolSnapshot],
        name: &str,
        help: &str,
        kind: Kind,
        value: fn(&PoolSnapshot, &Pool) -> u64,
    ) {
        t.family(name, help, kind);
        for (s, pool) in snaps.iter().zip(&self.pools) {
            t.sample_u64(name, &[("pool", &s.name)], value(s, pool));
        }
    }

    /// A counter family with one series per pool and value of a closed set `by` (its
    /// label, its values, their label values), labelled `pool` and that label.
    fn per_pool_by<K: Copy>(
        &self,
        t: &mut Text,
        snaps: &[PoolSnapshot],
        name: &str,
        help: &str,
        by: (&str, &[K], fn(K) -> &'static str),
        value: fn(&Pool, K) -> u64,
    ) {
        let (label, keys, key_str) = by;
        t.family(name, help, Kind::Counter);
        for (s, pool) in snaps.iter().zip(&self.pools) {
            for &k in keys {
                t.sample_u64(
                    name,
                    &[("pool", &s.name), (label, key_str(k))],
                    value(pool, k),
                );
            }
        }
    }

    /// A histogram family with one series per pool, labelled `pool`.
    fn per_pool_histogram(
        &self,
        t: &mut Text,
        snaps: &[PoolSnapshot],
        name: &str,
        help: &str,
        value: fn(&Pool) -> HistogramSnapshot,
    ) {
        t.family(name, help, Kind::Histogram);
        for (s, pool) in snaps.iter().zip(&self.pools) {
            t.histogram(name, &[("pool", &s.name)], &value(pool));
        }
    }

    fn render_http(&self, t: &mut Text) {
        t.family(
            "pacer_http_requests_total",
            "HTTP responses by status code.",
            Kind::Counter,
        );
        for (code, n) in self.http.by_status() {
            t.sample_u64(
                "pacer_http_requests_total",
                &[("code", &code.to_string())],
                n,
            );
        }
        t.family(
            "pacer_http_request_duration_seconds",
            "HTTP request duration, from the request head to the end of the response.",
            Kind::Histogram,
        );
        t.histogram(
            "pacer_http_request_duration_seconds",
            &[],
            &self.http.duration.snapshot(),
        );
    }
}

/// The container's cgroup (see [`crate::cgroup`]); a family is left out when its file is
/// not there (no cgroup, an older kernel, no limit).
fn render_cgroup(t: &mut Text, cgroup: &Cgroup) {
    let c = cgroup.read();
    let gauges = [
        (
            "pacer_cgroup_memory_working_set_bytes",
            "Memory of the container's cgroup minus inactive file pages, as the kubelet counts it.",
            c.memory_working_set,
        ),
        (
            "pacer_cgroup_memory_limit_bytes",
            "Memory limit of the container's cgroup (absent when unlimited).",
            c.memory_limit,
        ),
    ];
    let counters = [
        (
            "pacer_cgroup_oom_kills_total",
            "Processes of the container the kernel's OOM killer killed (a worker, under cgroup v1).",
            c.oom_kills,
        ),
        (
            "pacer_cgroup_cpu_periods_total",
            "CPU quota periods of the container's cgroup that had runnable tasks.",
            c.cpu_periods,
        ),
        (
            "pacer_cgroup_cpu_throttled_periods_total",
            "CPU quota periods in which the container's cgroup was throttled.",
            c.cpu_throttled_periods,
        ),
    ];
    for (name, help, value) in gauges {
        single_u64(t, name, help, Kind::Gauge, value);
    }
    for (name, help, value) in counters {
        single_u64(t, name, help, Kind::Counter, value);
    }
    single(
        t,
        "pacer_cgroup_cpu_throttled_seconds_total",
        "Time the container's tasks were throttled by the CPU quota.",
        Kind::Counter,
        c.cpu_throttled_seconds,
    );
}

/// The Go client's process collector, for pacer itself.
fn render_process(t: &mut Text) {
    let p = process::read_self();
    single(
        t,
        "process_cpu_seconds_total",
        "Total user and system CPU time spent in seconds.",
        Kind::Counter,
        p.cpu_seconds,
    );
    single_u64(
        t,
        "process_open_fds",
        "Number of open file descriptors.",
        Kind::Gauge,
        p.open_fds,
    );
    single_u64(
        t,
        "process_max_fds",
        "Maximum number of open file descriptors.",
        Kind::Gauge,
        p.max_fds,
    );
    single_u64(
        t,
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes.",
        Kind::Gauge,
        p.virtual_bytes,
    );
    single_u64(
        t,
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
        Kind::Gauge,
        p.resident_bytes,
    );
    single(
        t,
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        Kind::Gauge,
        p.start_time_seconds,
    );
}

/// A family of one unlabelled sample; left out when the value is not known.
fn single(t: &mut Text, name: &str, help: &str, kind: Kind, value: Option<f64>) {
    if let Some(v) = value {
        t.family(name, help, kind);
        t.sample(name, &[], v);
    }
}

/// [`single`] with an integer value.
fn single_u64(t: &mut Text, name: &str, help: &str, kind: Kind, value: Option<u64>) {
    if let Some(v) = value {
        t.family(name, help, kind);
        t.sample_u64(name, &[], v);
    }
}

/// The sample of one worker slot of pool `s`.
fn per_slot(t: &mut Text, name: &str, s: &PoolSnapshot, w: &WorkerInfo, value: u64) {
    let slot = w.ident.slot.to_string();
    t.sample_u64(name, &[("pool", &s.name), ("slot", &slot)], value);
}

/// Serves the exposition on every path until `stop` fires (the caller binds the
/// listener: `metrics.address`, port 0 in tests).
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, stop: CancellationToken) {
    crate::endpoint::serve(
        listener,
        move |_req| {
            let metrics = metrics.clone();
            async move { crate::endpoint::respond(200, CONTENT_TYPE, metrics.render()) }
        },
        stop,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_unique_and_valid_names() {
        for (i, f) in FAMILIES.iter().enumerate() {
            assert!(text::is_metric_name(f), "{f}");
            assert!(!FAMILIES[..i].contains(f), "{f} twice");
        }
    }

    #[test]
    fn without_pools_the_exposition_has_build_http_and_process_metrics() {
        let http = Arc::new(HttpStats::default());
        http.observe(200, std::time::Duration::from_millis(3));
        http.observe(404, std::time::Duration::from_millis(1));
        let m = Metrics::new(vec![], http, Arc::new(AppMetrics::new())).with_version("1.2.3");
        let text = m.render();
        assert!(text.starts_with("# HELP pacer_build_info "), "{text}");
        assert!(text.contains("pacer_build_info{version=\"1.2.3\"} 1\n"));
        assert!(text.contains("pacer_http_requests_total{code=\"200\"} 1\n"));
        assert!(text.contains("pacer_http_requests_total{code=\"404\"} 1\n"));
        assert!(text.contains("pacer_http_request_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        for f in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_virtual_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
        ] {
            assert!(text.contains(&format!("# TYPE {f} ")), "{f}");
        }
    }
}
