//! Lock-free counters and histograms the pool updates on its hot path. The metrics
//! endpoint renders them (see `metrics.rs`); nothing here knows about Prometheus.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::worker::RecycleReason;

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
}

/// Bucket bounds in seconds for job, queue and request durations: from 1 ms (a warm PHP
/// hello world) to 60 s (the default timeouts).
pub const DURATION_BUCKETS: [f64; BUCKETS] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];

/// Bucket bounds in seconds for worker boots: from 10 ms (a bare PHP script) to 60 s (the
/// default `allocate_timeout`), finest between 1 and 5 s, where framework bootstraps
/// (Laravel, Symfony) land and where the cost of recycling a worker is decided.
pub const BOOT_BUCKETS: [f64; BUCKETS] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0,
];

/// The number of finite bucket bounds of every [`Histogram`] (a fixed array keeps an
/// observation to three atomic adds, with no allocation behind a pointer).
pub const BUCKETS: usize = 14;

/// Which bucket bounds a [`Histogram`] has: a type, so that choosing them costs nothing
/// at run time and `Default` still builds every histogram.
pub trait Buckets: std::fmt::Debug + Send + Sync + 'static {
    /// Upper bounds in seconds, ascending; `+Inf` follows.
    const BOUNDS: [f64; BUCKETS];
}

/// [`DURATION_BUCKETS`]: jobs, queue waits, HTTP requests.
#[derive(Debug)]
pub struct Durations;

impl Buckets for Durations {
    const BOUNDS: [f64; BUCKETS] = DURATION_BUCKETS;
}

/// [`BOOT_BUCKETS`]: worker boots.
#[derive(Debug)]
pub struct Boots;

impl Buckets for Boots {
    const BOUNDS: [f64; BUCKETS] = BOOT_BUCKETS;
}

/// A fixed-bucket histogram of durations, updated with three relaxed atomic adds.
#[derive(Debug)]
pub struct Histogram<B: Buckets = Durations> {
    /// Non-cumulative counts; the last one is +Inf.
    buckets: [AtomicU64; BUCKETS + 1],
    sum_nanos: AtomicU64,
    count: AtomicU64,
    bounds: PhantomData<B>,
}

impl<B: Buckets> Default for Histogram<B> {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
            count: AtomicU64::new(0),
            bounds: PhantomData,
        }
    }
}

/// A consistent-enough copy of a histogram for rendering.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSnapshot {
    /// (upper bound in seconds, cumulative count); the last bound is +Inf.
    pub buckets: Vec<(f64, u64)>,
    pub sum_seconds: f64,
    pub count: u64,
}

impl<B: Buckets> Histogram<B> {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = B::BOUNDS.iter().position(|b| secs <= *b).unwrap_or(BUCKETS);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos
            .fetch_add(d.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(self.buckets.len());
        for (i, b) in self.buckets.iter().enumerate() {
            cumulative += b.load(Ordering::Relaxed);
            let bound = B::BOUNDS.get(i).copied().unwrap_or(f64::INFINITY);
            buckets.push((bound, cumulative));
        }
        HistogramSnapshot {
            buckets,
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            // The buckets are the truth for the count, so `_count == +Inf bucket` holds
            // even when a scrape races an observation.
            count: cumulative,
        }
    }
}

/// Lower bounds of the worker-age bands after the first (which starts at 0), in jobs the
/// worker had done before the job: roughly ×3 apart, so that a warm-up of 10 to 1000 jobs
/// (opcache, autoload, a framework's lazily built services) spans several bands and the
/// operator can fit its size and length (`pacer_worker_age_*`). Fixed: 7 series per pool
/// and counter.
pub const AGE_BAND_STARTS: [u64; AGE_BANDS - 1] = [10, 30, 100, 300, 1000, 3000];

/// The number of worker-age bands.
pub const AGE_BANDS: usize = 7;

/// The `age` label of each band: `first-last` (inclusive), the last one `first+`. The
/// operator reads the bounds back from the label, so the bands are defined only here.
pub const AGE_BAND_LABELS: [&str; AGE_BANDS] = [
    "0-9",
    "10-29",
    "30-99",
    "100-299",
    "300-999",
    "1000-2999",
    "3000+",
];

/// The band of a job run by a worker that had done `jobs_before` jobs.
pub fn age_band(jobs_before: u64) -> usize {
    AGE_BAND_STARTS
        .iter()
        .take_while(|&&start| jobs_before >= start)
        .count()
}

/// Job time by the age of the worker that ran the job (jobs it had done before), per
/// [`age_band`]: the sum of seconds and the count, two relaxed atomic adds per job. A
/// fresh worker's first jobs are slower than a warm one's; the operator prices a recycled
/// worker's cold jobs with what these show.
#[derive(Debug, Default)]
pub struct AgeBands {
    nanos: [AtomicU64; AGE_BANDS],
    jobs: [AtomicU64; AGE_BANDS],
}

/// One band's totals.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AgeBandSnapshot {
    pub label: &'static str,
    pub seconds: f64,
    pub jobs: u64,
}

impl AgeBands {
    pub fn observe(&self, jobs_before: u64, d: Duration) {
        let band = age_band(jobs_before);
        self.nanos[band].fetch_add(d.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
        self.jobs[band].fetch_add(1, Ordering::Relaxed);
    }

    /// Every band, youngest first.
    pub fn snapshot(&self) -> [AgeBandSnapshot; AGE_BANDS] {
        std::array::from_fn(|i| AgeBandSnapshot {
            label: AGE_BAND_LABELS[i],
            seconds: self.nanos[i].load(Ordering::Relaxed) as f64 / 1e9,
            jobs: self.jobs[i].load(Ordering::Relaxed),
        })
    }
}

/// How a job ended: the `outcome` label of `pacer_jobs_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok = 0,
    /// The PHP code reported an error.
    Error = 1,
    /// `exec_ttl` expired.
    Timeout = 2,
    /// The worker died or broke the protocol during the job.
    WorkerDied = 3,
    /// No worker within `allocate_timeout`, or the queue was full.
    NoWorker = 4,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Ok,
        Outcome::Error,
        Outcome::Timeout,
        Outcome::WorkerDied,
        Outcome::NoWorker,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
            Outcome::WorkerDied => "worker_died",
            Outcome::NoWorker => "no_worker",
        }
    }
}

/// Everything the pool counts.
#[derive(Debug, Default)]
pub struct PoolStats {
    jobs: [Counter; 5],
    restarts: [Counter; RecycleReason::ALL.len()],
    pub no_free_workers: Counter,
    pub spawn_failures: Counter,
    /// CPU time (user + system, clock ticks) the pool's workers used, summed from the
    /// supervisor's samples.
    pub worker_cpu_ticks: Counter,
    pub job_duration: Histogram,
    /// Job time by the age of the worker that ran it (see [`PoolStats::job_time`]).
    pub worker_age: AgeBands,
    pub queue_wait: Histogram,
    /// Worker boots: from starting the process to the end of its PID handshake (for
    /// RoadRunner's PHP library, the app's bootstrap up to its first wait for a request).
    /// Only workers that complete the handshake; failures are `spawn_failures`. The
    /// operator reads it as the cost of recycling a worker.
    pub worker_boot: Histogram<Boots>,
}

impl PoolStats {
    pub fn job(&self, outcome: Outcome) {
        self.jobs[outcome as usize].inc();
    }

    pub fn jobs(&self, outcome: Outcome) -> u64 {
        self.jobs[outcome as usize].get()
    }

    /// Records the time of a job that a worker which had done `jobs_before` jobs ran:
    /// into the job duration histogram and its worker-age band.
    pub fn job_time(&self, jobs_before: u64, d: Duration) {
        self.job_duration.observe(d);
        self.worker_age.observe(jobs_before, d);
    }

    pub fn restart(&self, reason: RecycleReason) {
        self.restarts[reason as usize - 1].inc();
    }

    pub fn restarts(&self, reason: RecycleReason) -> u64 {
        self.restarts[reason as usize - 1].get()
    }
}

/// HTTP responses by status code, and their durations.
#[derive(Debug)]
pub struct HttpStats {
    /// Index = status - 100 (100..=599).
    by_status: Box<[Counter; 500]>,
    pub duration: Histogram,
}

impl Default for HttpStats {
    fn default() -> Self {
        HttpStats {
            by_status: Box::new(std::array::from_fn(|_| Counter::default())),
            duration: Histogram::default(),
        }
    }
}

impl HttpStats {
    pub fn observe(&self, status: u16, elapsed: Duration) {
        if let Some(c) = status
            .checked_sub(100)
            .and_then(|i| self.by_status.get(i as usize))
        {
            c.inc();
        }
        self.duration.observe(elapsed);
    }

    /// `(status, count)` for every status seen at least once, ascending.
    pub fn by_status(&self) -> Vec<(u16, u64)> {
        self.by_status
            .iter()
            .enumerate()
            .filter(|(_, c)| c.get() > 0)
            .map(|(i, c)| (i as u16 + 100, c.get()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_in_inf() {
        let h = Histogram::<Durations>::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(100));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.buckets[0], (0.001, 1));
        assert_eq!(s.buckets[2], (0.005, 2));
        assert_eq!(s.buckets.last().unwrap().1, 3);
        assert!(s.buckets.last().unwrap().0.is_infinite());
        assert!((s.sum_seconds - 100.0035).abs() < 1e-6);
    }

    #[test]
    fn boot_histograms_have_their_own_bounds() {
        let h = Histogram::<Boots>::default();
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_millis(1500));
        h.observe(Duration::from_secs(4));
        let s = h.snapshot();
        let bounds: Vec<f64> = s.buckets.iter().map(|b| b.0).collect();
        assert_eq!(bounds[..BUCKETS], BOOT_BUCKETS);
        assert_eq!(s.buckets[0], (0.01, 1));
        assert_eq!(s.buckets[7], (2.0, 2));
        assert_eq!(s.buckets[9], (5.0, 3));
        assert_eq!(s.count, 3);
        assert!((s.sum_seconds - 5.505).abs() < 1e-9);
    }

    #[test]
    fn age_bands_split_at_their_starts() {
        let cases = [
            (0, 0),
            (9, 0),
            (10, 1),
            (29, 1),
            (30, 2),
            (99, 2),
            (100, 3),
            (299, 3),
            (300, 4),
            (999, 4),
            (1000, 5),
            (2999, 5),
            (3000, 6),
            (u64::MAX, 6),
        ];
        for (jobs, band) in cases {
            assert_eq!(age_band(jobs), band, "{jobs} jobs");
        }
    }

    #[test]
    fn age_band_labels_name_their_bounds() {
        for (i, label) in AGE_BAND_LABELS.iter().enumerate() {
            let first = if i == 0 { 0 } else { AGE_BAND_STARTS[i - 1] };
            match AGE_BAND_STARTS.get(i) {
                Some(next) => assert_eq!(*label, format!("{first}-{}", next - 1)),
                None => assert_eq!(*label, format!("{first}+")),
            }
        }
    }

    #[test]
    fn job_times_are_summed_per_age_band() {
        let s = PoolStats::default();
        s.job_time(0, Duration::from_millis(30));
        s.job_time(5, Duration::from_millis(10));
        s.job_time(150, Duration::from_millis(4));
        s.job_time(5000, Duration::from_millis(2));
        let bands = s.worker_age.snapshot();
        assert_eq!(bands[0].label, "0-9");
        assert_eq!(bands[0].jobs, 2);
        assert!((bands[0].seconds - 0.04).abs() < 1e-12);
        assert_eq!((bands[3].jobs, bands[6].jobs), (1, 1));
        assert!((bands[6].seconds - 0.002).abs() < 1e-12);
        assert_eq!(
            bands[1].jobs + bands[2].jobs + bands[4].jobs + bands[5].jobs,
            0
        );
        assert_eq!(s.job_duration.snapshot().count, 4);
    }

    #[test]
    fn counters_are_kept_per_label() {
        let s = PoolStats::default();
        s.job(Outcome::Ok);
        s.job(Outcome::Ok);
        s.job(Outcome::Timeout);
        s.restart(RecycleReason::Memory);
        assert_eq!(s.jobs(Outcome::Ok), 2);
        assert_eq!(s.jobs(Outcome::Timeout), 1);
        assert_eq!(s.jobs(Outcome::Error), 0);
        assert_eq!(s.restarts(RecycleReason::Memory), 1);
        assert_eq!(s.restarts(RecycleReason::Shutdown), 0);
    }
}
