//! What a run leaves behind: one [`Minute`] per simulated minute and every tuning change.

use crate::cluster::{Cluster, Second};
use crate::queue::{self, Tail};

/// One minute of a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Minute {
    /// Start, seconds.
    pub t: f64,
    /// Requests per second that arrived.
    pub rate: f64,
    /// Requests that arrived.
    pub arrivals: f64,
    /// Requests that failed.
    pub failed: f64,
    /// Share of the arrivals that waited longer than the SLO or failed.
    pub bad: f64,
    /// 99th percentile of the queue wait, seconds.
    pub p99: f64,
    /// Pods not being deleted (end of the minute).
    pub pods: f64,
    /// Ready pods.
    pub ready: f64,
    /// Workers per pod the operator decided.
    pub workers: f64,
    /// Workers per pod the running pods have received (mean).
    pub delivered: f64,
    /// Running workers over all pods.
    pub total_workers: f64,
    /// Memory limit the operator decided, bytes.
    pub memory_limit: f64,
    /// Highest memory limit in force on a pod, bytes.
    pub memory_in_force: f64,
    /// Highest working set of a pod, bytes.
    pub working_set: f64,
    /// OOM kills.
    pub oom_kills: u32,
    /// The database's highest latency factor.
    pub db_factor: f64,
    /// Highest share of throttled CPU periods of a pod.
    pub throttled: f64,
    /// Memory limits held on live nodes × seconds, byte-seconds.
    pub reserved: f64,
    /// `max_jobs` the operator decided.
    pub max_jobs: f64,
}

/// One applied tuning change.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// When, seconds.
    pub t: f64,
    /// Which setting (`workers`, `replicas`, `memory_limit`, …).
    pub knob: &'static str,
    /// Old value.
    pub from: u64,
    /// New value.
    pub to: u64,
    /// Decided while the previous change had not reached every running pod.
    pub early: bool,
    /// The tuner's reason.
    pub reason: String,
}

/// Collects seconds into minutes.
#[derive(Debug)]
pub struct Recorder {
    slo: f64,
    minutes: Vec<Minute>,
    current: Minute,
    tails: Vec<Tail>,
    /// Every applied change.
    pub changes: Vec<Change>,
}

/// What the operator has decided, for the minute records.
#[derive(Clone, Copy, Debug, Default)]
pub struct Decided {
    /// Workers per pod.
    pub workers: f64,
    /// Memory limit, bytes.
    pub memory_limit: f64,
    /// `max_jobs`.
    pub max_jobs: f64,
}

impl Recorder {
    /// A recorder judging waits against `slo` seconds.
    #[must_use]
    pub fn new(slo: f64) -> Self {
        Self {
            slo,
            minutes: Vec::new(),
            current: Minute::default(),
            tails: Vec::new(),
            changes: Vec::new(),
        }
    }

    /// Adds the second that started at `t`.
    pub fn second(&mut self, t: f64, s: &Second, cluster: &Cluster, decided: Decided) {
        let m = &mut self.current;
        if self.tails.is_empty() && m.arrivals == 0.0 {
            m.t = (t / 60.0).floor() * 60.0;
        }
        m.arrivals += s.arrivals;
        m.failed += s.failed;
        m.oom_kills += s.oom_kills;
        m.working_set = m.working_set.max(s.working_set_max);
        m.db_factor = m.db_factor.max(cluster.db_factor);
        m.throttled = m.throttled.max(s.throttled);
        m.reserved += cluster.reserved_memory(t);
        self.tails
            .extend(s.tails.iter().copied().filter(|x| x.n > 0.0));
        if (t as i64 + 1) % 60 == 0 {
            m.rate = m.arrivals / 60.0;
            m.pods = cluster.active_pods() as f64;
            m.ready = cluster.ready_pods() as f64;
            m.workers = decided.workers;
            m.max_jobs = decided.max_jobs;
            m.delivered = cluster.delivered_workers();
            m.total_workers = cluster.total_workers(t) as f64;
            m.memory_limit = decided.memory_limit;
            m.memory_in_force = cluster.memory_limit_max();
            let slow = queue::share_over(&self.tails, self.slo);
            let served: f64 = self.tails.iter().map(|x| x.n).sum();
            m.bad = if m.arrivals > 0.0 {
                ((slow * served + m.failed) / m.arrivals).min(1.0)
            } else {
                0.0
            };
            m.p99 = queue::quantile(&self.tails, 0.99);
            self.minutes.push(std::mem::take(&mut self.current));
            self.tails.clear();
        }
    }

    /// The minutes recorded.
    #[must_use]
    pub fn minutes(&self) -> &[Minute] {
        &self.minutes
    }
}
