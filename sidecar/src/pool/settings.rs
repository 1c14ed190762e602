//! Pool settings that can change while the pool runs.

use std::time::Duration;

use crate::worker::WorkerInfo;

/// Supervisor limits (`http.pool.supervisor`). `None` = the limit is off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SupervisorLimits {
    /// How often the supervisor samples workers (RoadRunner default 5 s).
    pub watch_tick: Duration,
    /// Maximum lifetime of a worker (soft: recycled between jobs).
    pub ttl: Option<Duration>,
    /// Maximum idle time after the first job (soft).
    pub idle_ttl: Option<Duration>,
    /// Maximum RSS in bytes (soft).
    pub max_worker_memory: Option<u64>,
    /// Maximum duration of one job (hard: the worker is killed, the job fails).
    pub exec_ttl: Option<Duration>,
}

/// The pool's settings (`http.pool`), already validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolSettings {
    pub num_workers: usize,
    /// Jobs before a worker is recycled, before jitter; 0 = unlimited.
    pub max_jobs: u64,
    /// Requests allowed to wait for a worker; 0 = RoadRunner's "unlimited", which here
    /// still means [`PoolSettings::UNLIMITED_QUEUE`]: every queue is bounded.
    pub max_queue_size: usize,
    pub allocate_timeout: Duration,
    pub destroy_timeout: Duration,
    pub reset_timeout: Duration,
    pub stream_timeout: Duration,
    /// A fresh worker for every request.
    pub debug: bool,
    pub supervisor: SupervisorLimits,
}

impl PoolSettings {
    /// The queue bound behind `max_queue_size: 0`.
    pub const UNLIMITED_QUEUE: usize = 65_536;

    pub fn queue_limit(&self) -> usize {
        if self.max_queue_size == 0 {
            Self::UNLIMITED_QUEUE
        } else {
            self.max_queue_size
        }
    }

    /// The `max_jobs` of one worker: the setting plus the worker's own 0–14 % jitter.
    pub fn max_jobs_for(&self, info: &WorkerInfo) -> u64 {
        if self.max_jobs == 0 {
            0
        } else {
            self.max_jobs + self.max_jobs * info.jitter_percent / 100
        }
    }
}

impl Default for PoolSettings {
    /// RoadRunner's defaults (docs/configuration.md (`http.pool`)), except `num_workers`, which the
    /// config layer derives from the CPU quota.
    fn default() -> Self {
        PoolSettings {
            num_workers: 1,
            max_jobs: 0,
            max_queue_size: 0,
            allocate_timeout: Duration::from_secs(60),
            destroy_timeout: Duration::from_secs(60),
            reset_timeout: Duration::from_secs(60),
            stream_timeout: Duration::from_secs(60),
            debug: false,
            supervisor: SupervisorLimits {
                watch_tick: Duration::from_secs(5),
                ..Default::default()
            },
        }
    }
}
