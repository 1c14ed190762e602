//! The tuner: pure functions from window aggregates to pool settings (docs/design.md §3.3).
//!
//! [`decide`] takes the policy (from the spec), the settings now in force, the tuner's
//! memory ([`State`]), what was observed and the time, and returns the new settings, each
//! change with its reason in words, and the updated memory. No clock, no I/O: the
//! controller reads the time and the metrics and applies the result.
//!
//! The rules, in the order they are applied:
//! 1. **Workers needed** across all pods = busy workers (or arrivals × mean job time, if
//!    larger, counting refused requests as arrivals) + requests waiting, divided by the
//!    target utilisation.
//! 2. **Replicas** (when `min < max` and not external): as few pods as hold that many
//!    workers at the per-pod ceiling — pods are added only once workers per pod are at
//!    their ceiling.
//! 3. **Workers per pod** = needed ÷ replicas, clamped to the spec bounds, to what the
//!    memory allows (usable memory ÷ (p95 worker memory × 1.2)) and, with a CPU limit, to
//!    what the CPU allows (limit ÷ the CPU a busy worker uses, × [`CPU_OVERCOMMIT`]); the
//!    spec minimum wins over both ceilings.
//! 4. **Tolerance**: a recommendation within ±10 % of the current value changes nothing.
//! 5. **Up fast, down slowly**: increases apply at once; a decrease goes no lower than the
//!    largest recommendation of the stabilisation window, happens at most once per
//!    [`SCALE_DOWN_PERIOD`] and removes at most [`SCALE_DOWN_MAX_FRACTION`] of the pool
//!    (at least one).
//! 6. **Memory limit** (`auto`): p95 of the pods' peak memory × 1.15, and enough for the
//!    workers, within the spec bounds; raised by half after a new OOM kill; lowered only
//!    by ≥ 20 % and at most once per [`MEMORY_DOWN_PERIOD`] (each change resizes the
//!    running pods, or rolls them where in-place resize is refused).
//! 7. **max_worker_memory** (`auto`): p95 worker memory × 1.5, within the worker's share of
//!    the memory budget.
//! 8. **max_jobs** (`auto`): with measurable memory growth per job, recycle before a worker
//!    outgrows its share or +50 % of its warm size; otherwise keep the current value.
//!
//! Missing metrics never lower anything; only spec bounds and OOM kills act without them.

pub mod stats;

use std::fmt;
use std::time::Duration;

use jiff::Timestamp;

use crate::sample::AppSample;
use stats::{ceil_u32, ceil_u64, clamp_floor_wins, floor_u64, median, percentile};

/// A recommendation within this fraction of the current value changes nothing.
pub const TOLERANCE: f64 = 0.10;
/// At most one decrease of workers or replicas per this period.
pub const SCALE_DOWN_PERIOD: Duration = Duration::from_secs(60);
/// At most this fraction of the pool (and at least one) is removed per decrease.
pub const SCALE_DOWN_MAX_FRACTION: f64 = 0.2;
/// Headroom on the p95 worker memory when fitting workers into a pod.
pub const WORKER_MEMORY_HEADROOM: f64 = 1.2;
/// Headroom on the p95 pod memory for the memory limit.
pub const MEMORY_LIMIT_HEADROOM: f64 = 1.15;
/// Share of the memory limit pacer and the workers may plan to use (the rest is slack for
/// page cache, spikes and measurement lag).
pub const MEMORY_BUDGET_FRACTION: f64 = 0.9;
/// Assumed memory of pacer itself until it is measured.
pub const DEFAULT_SERVER_MEMORY: u64 = 32 * MIB;
/// At most one decrease of the memory limit per this period (each change resizes or rolls
/// the pods).
pub const MEMORY_DOWN_PERIOD: Duration = Duration::from_secs(30 * 60);
/// The memory limit is lowered only when the target is below this fraction of it.
pub const MEMORY_DOWN_THRESHOLD: f64 = 0.8;
/// The memory limit is raised (without an OOM kill) only when the target exceeds it by
/// this factor, so that small drifts do not roll the pods.
pub const MEMORY_UP_THRESHOLD: f64 = 1.1;
/// Factor applied to the memory limit after an OOM kill.
pub const OOM_BUMP: f64 = 1.5;
/// `max_jobs` of `auto` before anything is measured.
pub const DEFAULT_MAX_JOBS: u64 = 500;
/// Smallest `max_jobs` `auto` chooses.
pub const MIN_AUTO_MAX_JOBS: u64 = 10;
/// Largest `max_jobs` `auto` chooses.
pub const MAX_AUTO_MAX_JOBS: u64 = 100_000;
/// `max_worker_memory` of `auto` before anything is measured.
pub const DEFAULT_MAX_WORKER_MEMORY: u64 = 128 * MIB;
/// Smallest `max_worker_memory` `auto` chooses.
pub const MIN_AUTO_MAX_WORKER_MEMORY: u64 = 32 * MIB;
/// `max_worker_memory` relative to the p95 worker memory.
pub const MAX_WORKER_MEMORY_FACTOR: f64 = 1.5;
/// A worker may grow this fraction past its warm size before it is recycled.
pub const WARM_GROWTH_ALLOWANCE: f64 = 0.5;
/// Memory growth per job below this many bytes counts as no growth (RSS moves in pages).
pub const MEMORY_GROWTH_NOISE: f64 = 256.0;
/// Workers beyond what the CPU limit runs at full speed, as a factor: a little headroom,
/// because a worker is counted busy while its request waits on I/O it did not measure.
pub const CPU_OVERCOMMIT: f64 = 1.25;
/// Busy workers (summed over pods) below which the CPU a busy worker uses is not estimated.
pub const MIN_BUSY_FOR_CPU: f64 = 0.2;
/// Most recommendations kept in the history.
pub const MAX_HISTORY: usize = 256;

const MIB: u64 = 1024 * 1024;

/// A setting that is either tuned or fixed by the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting<T> {
    /// Tuned.
    Auto,
    /// Fixed by the spec.
    Fixed(T),
}

/// Inclusive bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds<T> {
    /// Lower bound.
    pub min: T,
    /// Upper bound.
    pub max: T,
}

/// What the spec allows the tuner.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Workers per pod.
    pub workers: Bounds<u32>,
    /// Workers per pod before anything is measured.
    pub initial_workers: u32,
    /// Pods.
    pub replicas: Bounds<u32>,
    /// Pods are counted by someone else (an HPA); the tuner never changes them.
    pub replicas_external: bool,
    /// Target share of busy workers (0.1–0.95).
    pub target_utilization: f64,
    /// Scale-down stabilisation window.
    pub stabilization_window: Duration,
    /// `max_jobs` (0 = unlimited).
    pub max_jobs: Setting<u64>,
    /// `max_worker_memory`, bytes.
    pub max_worker_memory: Setting<u64>,
    /// Memory limit of the app container, bytes.
    pub memory_limit: Setting<u64>,
    /// Bounds for an `auto` memory limit, bytes.
    pub memory: Bounds<u64>,
    /// CPU limit of the app container, millicores; `None`: no limit, no CPU ceiling.
    pub cpu_limit_millis: Option<u64>,
}

/// The pool settings of every pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Workers per pod.
    pub workers: u32,
    /// Jobs per worker before recycling (0 = unlimited).
    pub max_jobs: u64,
    /// Memory per worker before recycling, bytes.
    pub max_worker_memory: u64,
    /// Memory limit of the app container, bytes.
    pub memory_limit: u64,
    /// Pods.
    pub replicas: u32,
}

/// One past recommendation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// When it was made.
    pub at: Timestamp,
    /// Recommended workers per pod (before stabilisation).
    pub workers: u32,
    /// Recommended pods (before stabilisation).
    pub replicas: u32,
}

/// The tuner's memory across runs (persisted in the status by the controller).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct State {
    /// Recommendations of the stabilisation window, oldest first.
    pub history: Vec<Entry>,
    /// When workers or replicas were last lowered.
    pub last_scale_down: Option<Timestamp>,
    /// When the memory limit last changed (or the tuner first saw it).
    pub last_memory_change: Option<Timestamp>,
    /// Finish time of the newest OOM kill already acted on.
    pub last_oom: Option<Timestamp>,
}

/// What the controller observed.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Observation {
    /// Window aggregates; `None` when the metrics could not be read.
    pub sample: Option<AppSample>,
    /// Finish time of the newest OOM kill of an app container.
    pub newest_oom: Option<Timestamp>,
}

/// Which setting changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Knob {
    /// Workers per pod.
    Workers,
    /// Pods.
    Replicas,
    /// `max_jobs`.
    MaxJobs,
    /// `max_worker_memory`.
    MaxWorkerMemory,
    /// Memory limit.
    MemoryLimit,
}

impl Knob {
    /// Label value for metrics and the Event reason prefix.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Workers => "workers",
            Self::Replicas => "replicas",
            Self::MaxJobs => "max_jobs",
            Self::MaxWorkerMemory => "max_worker_memory",
            Self::MemoryLimit => "memory_limit",
        }
    }
}

/// One changed setting, with its reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The setting.
    pub knob: Knob,
    /// Old value (bytes for memory).
    pub from: u64,
    /// New value (bytes for memory).
    pub to: u64,
    /// Why, in words.
    pub reason: String,
}

impl Change {
    /// `true` when the value went up.
    #[must_use]
    pub fn is_increase(&self) -> bool {
        self.to > self.from
    }

    /// CamelCase Event reason, e.g. `WorkersIncreased`.
    #[must_use]
    pub fn event_reason(&self) -> &'static str {
        match (self.knob, self.is_increase()) {
            (Knob::Workers, true) => "WorkersIncreased",
            (Knob::Workers, false) => "WorkersDecreased",
            (Knob::Replicas, true) => "ReplicasIncreased",
            (Knob::Replicas, false) => "ReplicasDecreased",
            (Knob::MaxJobs, true) => "MaxJobsIncreased",
            (Knob::MaxJobs, false) => "MaxJobsDecreased",
            (Knob::MaxWorkerMemory, true) => "MaxWorkerMemoryIncreased",
            (Knob::MaxWorkerMemory, false) => "MaxWorkerMemoryDecreased",
            (Knob::MemoryLimit, true) => "MemoryLimitIncreased",
            (Knob::MemoryLimit, false) => "MemoryLimitDecreased",
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: u64| match self.knob {
            Knob::MaxWorkerMemory | Knob::MemoryLimit => mib(v),
            Knob::MaxJobs if v == 0 => "unlimited".to_owned(),
            _ => v.to_string(),
        };
        write!(
            f,
            "{} {} → {}: {}",
            self.knob.as_str(),
            show(self.from),
            show(self.to),
            self.reason
        )
    }
}

/// The tuner's verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The settings the pool should have.
    pub settings: Settings,
    /// What differs from the input settings, and why.
    pub changes: Vec<Change>,
    /// The updated memory.
    pub state: State,
    /// One paragraph: what was seen and what was decided.
    pub summary: String,
    /// Conditions the user should know about (Degraded).
    pub problems: Vec<Problem>,
}

/// Something the tuner cannot fix by itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// What kind.
    pub kind: ProblemKind,
    /// In words, with the numbers.
    pub message: String,
}

/// Kinds of [`Problem`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    /// The load needs more workers than the bounds allow.
    AtCapacity,
    /// OOM kills with the memory limit at its maximum or fixed.
    OutOfMemory,
}

impl ProblemKind {
    /// CamelCase condition reason.
    #[must_use]
    pub fn reason(self) -> &'static str {
        match self {
            Self::AtCapacity => "AtCapacity",
            Self::OutOfMemory => "OOMKilled",
        }
    }
}

/// The settings before anything is measured (and always in mode Off).
#[must_use]
pub fn initial(policy: &Policy) -> Settings {
    Settings {
        workers: clamp_floor_wins(
            policy.initial_workers,
            policy.workers.min,
            policy.workers.max,
        ),
        max_jobs: match policy.max_jobs {
            Setting::Fixed(n) => n,
            Setting::Auto => DEFAULT_MAX_JOBS,
        },
        max_worker_memory: match policy.max_worker_memory {
            Setting::Fixed(b) => b,
            Setting::Auto => DEFAULT_MAX_WORKER_MEMORY,
        },
        memory_limit: match policy.memory_limit {
            Setting::Fixed(b) => b,
            Setting::Auto => policy.memory.max,
        },
        replicas: policy.replicas.min,
    }
}

/// Brings settings inside the policy: fixed values win, tuned values are clamped to the
/// (possibly edited) bounds. Used on every reconcile, with or without metrics.
#[must_use]
pub fn conform(policy: &Policy, settings: Settings) -> Settings {
    Settings {
        workers: clamp_floor_wins(settings.workers, policy.workers.min, policy.workers.max),
        max_jobs: match policy.max_jobs {
            Setting::Fixed(n) => n,
            Setting::Auto => settings.max_jobs,
        },
        max_worker_memory: match policy.max_worker_memory {
            Setting::Fixed(b) => b,
            Setting::Auto => settings.max_worker_memory,
        },
        memory_limit: match policy.memory_limit {
            Setting::Fixed(b) => b,
            Setting::Auto => {
                clamp_floor_wins(settings.memory_limit, policy.memory.min, policy.memory.max)
            }
        },
        replicas: clamp_floor_wins(settings.replicas, policy.replicas.min, policy.replicas.max),
    }
}

/// Aggregates the tuner derives from a sample.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Load {
    pods: usize,
    busy: f64,
    live: f64,
    queue: f64,
    jobs_per_second: f64,
    required: f64,
    worker_memory_p95: Option<f64>,
    pod_memory_p95: Option<f64>,
    server_memory: f64,
    growth_per_job: Option<f64>,
    warm_memory: Option<f64>,
    /// Cores one busy worker uses (CPU time ÷ busy time), from the pods that report CPU.
    cpu_per_busy_worker: Option<f64>,
}

fn load_of(sample: &AppSample) -> Load {
    let pods = &sample.pods;
    let busy: f64 = pods.iter().map(|p| p.busy_workers.max(0.0)).sum();
    let live: f64 = pods.iter().map(|p| p.live_workers.max(0.0)).sum();
    let queue: f64 = pods.iter().map(|p| p.queue_depth.max(0.0)).sum();
    let jobs_per_second = sample.total_jobs_per_second().max(0.0);
    let rejected: f64 = pods.iter().map(|p| p.rejected_per_second.max(0.0)).sum();
    let arrival_load = sample
        .mean_job_seconds()
        .map_or(0.0, |d| (jobs_per_second + rejected) * d.max(0.0));
    let workers: Vec<f64> = pods
        .iter()
        .flat_map(|p| p.worker_memory.iter().map(|&b| b as f64))
        .collect();
    let peaks: Vec<f64> = pods
        .iter()
        .filter_map(|p| p.pod_memory_peak.map(|b| b as f64))
        .collect();
    let growth: Vec<f64> = pods
        .iter()
        .filter_map(|p| p.memory_growth_per_job)
        .collect();
    let warm: Vec<f64> = pods.iter().filter_map(|p| p.warm_worker_memory).collect();
    let server_memory = pods
        .iter()
        .filter_map(|p| p.server_memory)
        .max()
        .unwrap_or(DEFAULT_SERVER_MEMORY) as f64;
    let (cpu, cpu_busy) = pods
        .iter()
        .filter_map(|p| {
            p.worker_cpu_cores
                .map(|c| (c.max(0.0), p.busy_workers.max(0.0)))
        })
        .fold((0.0, 0.0), |(a, b), (c, w)| (a + c, b + w));
    let cpu_per_busy_worker =
        (cpu_busy >= MIN_BUSY_FOR_CPU).then(|| (cpu / cpu_busy).clamp(0.01, 1.0));
    Load {
        pods: pods.len(),
        busy,
        live,
        queue,
        jobs_per_second,
        required: busy.max(arrival_load) + queue,
        worker_memory_p95: percentile(&workers, 0.95),
        pod_memory_p95: percentile(&peaks, 0.95),
        server_memory,
        growth_per_job: median(&growth),
        warm_memory: median(&warm),
        cpu_per_busy_worker,
    }
}

/// How many workers, each using `cpu_per_busy_worker` cores while busy, the CPU limit
/// runs (with [`CPU_OVERCOMMIT`]).
fn workers_for_cpu(limit_millis: u64, cpu_per_busy_worker: f64) -> u32 {
    let cores = limit_millis as f64 / 1000.0;
    floor_u64(cores * CPU_OVERCOMMIT / cpu_per_busy_worker.max(0.01)).clamp(1, u64::from(u32::MAX))
        as u32
}

/// How many workers of `worker_memory` bytes fit beside pacer into `limit`.
fn workers_that_fit(limit: u64, server_memory: f64, worker_memory: f64) -> u32 {
    let usable = limit as f64 * MEMORY_BUDGET_FRACTION - server_memory;
    let per_worker = worker_memory * WORKER_MEMORY_HEADROOM;
    if per_worker <= 0.0 {
        return u32::MAX;
    }
    floor_u64(usable / per_worker).min(u64::from(u32::MAX)) as u32
}

fn within_tolerance(current: u64, wanted: u64) -> bool {
    let current_f = current as f64;
    (wanted as f64 - current_f).abs() <= current_f * TOLERANCE
}

fn elapsed(since: Option<Timestamp>, now: Timestamp) -> Option<Duration> {
    since.map(|t| {
        let d = now.duration_since(t);
        if d.is_negative() {
            Duration::ZERO
        } else {
            d.unsigned_abs()
        }
    })
}

/// Outcome of stabilising one count (workers or replicas).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stabilized {
    value: u32,
    /// The recommendation was lower but the window or the rate limit held it.
    held: bool,
}

/// Up at once; down no lower than the window's largest recommendation, at most one step
/// per [`SCALE_DOWN_PERIOD`].
fn stabilize(
    current: u32,
    recommended: u32,
    window_max: u32,
    last_scale_down: Option<Timestamp>,
    now: Timestamp,
) -> Stabilized {
    if recommended >= current {
        return Stabilized {
            value: recommended,
            held: false,
        };
    }
    let floor = window_max.max(recommended);
    if floor >= current {
        return Stabilized {
            value: current,
            held: true,
        };
    }
    if elapsed(last_scale_down, now).is_some_and(|e| e < SCALE_DOWN_PERIOD) {
        return Stabilized {
            value: current,
            held: true,
        };
    }
    let step = (floor_u64(f64::from(current) * SCALE_DOWN_MAX_FRACTION) as u32).max(1);
    let value = floor.max(current.saturating_sub(step));
    Stabilized {
        value,
        held: value > recommended,
    }
}

/// The tuner. See the module documentation for the rules.
#[must_use]
pub fn decide(
    policy: &Policy,
    current: &Settings,
    state: &State,
    observation: &Observation,
    now: Timestamp,
) -> Decision {
    let current = conform(policy, *current);
    let mut next = current;
    let mut state = state.clone();
    let mut problems = Vec::new();
    let mut reasons: Vec<(Knob, String)> = Vec::new();
    let window_start = now
        .checked_sub(
            jiff::SignedDuration::try_from(policy.stabilization_window).unwrap_or_default(),
        )
        .unwrap_or(now);
    state.history.retain(|e| e.at > window_start && e.at <= now);

    let load = observation
        .sample
        .as_ref()
        .filter(|s| !s.pods.is_empty())
        .map(load_of);

    // Memory ceiling the workers must fit under: the fixed limit, or the most `auto` may use.
    let memory_ceiling = match policy.memory_limit {
        Setting::Fixed(b) => b,
        Setting::Auto => policy.memory.max,
    };

    let mut summary = String::new();
    if let Some(load) = load {
        let target = policy.target_utilization.clamp(0.05, 1.0);
        let wanted_total = ceil_u32(load.required / target - 1e-9).max(1);
        let memory_cap = load.worker_memory_p95.map_or(u32::MAX, |w| {
            workers_that_fit(memory_ceiling, load.server_memory, w)
        });
        let cpu_cap = match (policy.cpu_limit_millis, load.cpu_per_busy_worker) {
            (Some(limit), Some(per_worker)) => workers_for_cpu(limit, per_worker),
            _ => u32::MAX,
        };
        let per_pod_ceiling = policy
            .workers
            .max
            .min(memory_cap)
            .min(cpu_cap)
            .max(policy.workers.min);
        if cpu_cap < policy.workers.max.min(memory_cap) {
            reasons.push((
                Knob::Workers,
                format!(
                    "the CPU limit of {} cores runs {cpu_cap} workers that each use {:.2}                      cores while busy",
                    policy.cpu_limit_millis.unwrap_or(0) as f64 / 1000.0,
                    load.cpu_per_busy_worker.unwrap_or(0.0)
                ),
            ));
        }
        if memory_cap < policy.workers.max {
            reasons.push((
                Knob::Workers,
                format!(
                    "memory allows {memory_cap} workers of {} per pod",
                    mib(load.worker_memory_p95.map_or(0, ceil_u64))
                ),
            ));
        }

        // Replicas first: pods are added only once the workers per pod are at the ceiling.
        let replicas_fixed = policy.replicas_external || policy.replicas.min == policy.replicas.max;
        let raw_replicas = if replicas_fixed {
            current.replicas
        } else {
            let needed = wanted_total.div_ceil(per_pod_ceiling.max(1));
            let needed = clamp_floor_wins(needed, policy.replicas.min, policy.replicas.max);
            if within_tolerance(u64::from(current.replicas), u64::from(needed)) {
                current.replicas
            } else {
                needed
            }
        };
        let replicas_window_max = state.history.iter().map(|e| e.replicas).max().unwrap_or(0);
        let replicas = if replicas_fixed {
            Stabilized {
                value: current.replicas,
                held: false,
            }
        } else {
            stabilize(
                current.replicas,
                raw_replicas,
                replicas_window_max,
                state.last_scale_down,
                now,
            )
        };
        next.replicas = replicas.value;

        // With an HPA counting the pods, the pods that reported are the best count.
        let pods_now = if policy.replicas_external {
            u32::try_from(load.pods).unwrap_or(u32::MAX)
        } else {
            next.replicas
        };
        let per_pod = wanted_total.div_ceil(pods_now.max(1));
        let mut raw_workers = clamp_floor_wins(per_pod, policy.workers.min, per_pod_ceiling);
        if within_tolerance(u64::from(current.workers), u64::from(raw_workers)) {
            raw_workers = current.workers;
        }
        let workers_window_max = state.history.iter().map(|e| e.workers).max().unwrap_or(0);
        let workers = stabilize(
            current.workers,
            raw_workers,
            workers_window_max,
            state.last_scale_down,
            now,
        );
        next.workers = workers.value;

        if wanted_total > per_pod_ceiling.saturating_mul(policy.replicas.max)
            && !policy.replicas_external
        {
            problems.push(Problem {
                kind: ProblemKind::AtCapacity,
                message: format!(
                    "the load needs {wanted_total} workers in all, but at most {} fit \
                     ({per_pod_ceiling} per pod × {} pods); raise pool.workers.max, \
                     replicas.max or the memory bounds",
                    per_pod_ceiling.saturating_mul(policy.replicas.max),
                    policy.replicas.max
                ),
            });
        }

        let utilisation = if load.live > 0.0 {
            load.busy / load.live
        } else {
            0.0
        };
        summary = format!(
            "{} pod(s): {:.1} of {:.1} workers busy ({:.0} %, target {:.0} %), {:.1} requests \
             waiting, {:.1} requests/s; {} workers needed in all",
            load.pods,
            load.busy,
            load.live,
            utilisation * 100.0,
            target * 100.0,
            load.queue,
            load.jobs_per_second,
            wanted_total,
        );

        let workers_reason = if next.workers > current.workers {
            format!(
                "{:.1} busy workers and {:.1} waiting requests per pod need {} workers to stay \
                 at {:.0} % utilisation",
                load.busy / load.pods as f64,
                load.queue / load.pods as f64,
                raw_workers,
                target * 100.0
            )
        } else if next.workers < current.workers {
            format!(
                "load fell to {:.1} busy workers per pod; the largest recommendation of the \
                 last {} is {}, and the pool shrinks by at most {:.0} % per {}",
                load.busy / load.pods as f64,
                crate::units::format_duration(policy.stabilization_window),
                workers_window_max.max(raw_workers),
                SCALE_DOWN_MAX_FRACTION * 100.0,
                crate::units::format_duration(SCALE_DOWN_PERIOD),
            )
        } else if workers.held {
            format!(
                "held at {} by the stabilisation window (recommended {raw_workers})",
                current.workers
            )
        } else {
            String::new()
        };
        if !workers_reason.is_empty() {
            reasons.push((Knob::Workers, workers_reason));
        }
        if next.replicas != current.replicas {
            reasons.push((
                Knob::Replicas,
                format!(
                    "{wanted_total} workers needed in all and at most {per_pod_ceiling} per pod"
                ),
            ));
        }

        state.history.push(Entry {
            at: now,
            workers: raw_workers,
            replicas: raw_replicas,
        });
        if state.history.len() > MAX_HISTORY {
            let excess = state.history.len() - MAX_HISTORY;
            state.history.drain(..excess);
        }
        if next.workers < current.workers || next.replicas < current.replicas {
            state.last_scale_down = Some(now);
        }
    } else {
        summary.push_str("no metrics for this window: nothing is lowered");
    }

    // Memory limit.
    if let Setting::Auto = policy.memory_limit {
        let started = *state.last_memory_change.get_or_insert(now);
        let mut target = current.memory_limit;
        let mut why = String::new();
        if let Some(load) = load {
            let for_workers = load.worker_memory_p95.map(|w| {
                (load.server_memory + f64::from(next.workers) * w * WORKER_MEMORY_HEADROOM)
                    / MEMORY_BUDGET_FRACTION
            });
            let for_peaks = load.pod_memory_p95.map(|p| p * MEMORY_LIMIT_HEADROOM);
            let wanted = match (for_peaks, for_workers) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            if let Some(wanted) = wanted {
                let wanted = round_up_mib(ceil_u64(wanted));
                let wanted = clamp_floor_wins(wanted, policy.memory.min, policy.memory.max);
                let cur = current.memory_limit as f64;
                if wanted as f64 >= cur * MEMORY_UP_THRESHOLD {
                    target = wanted;
                    why = format!(
                        "pods peak at {} (p95) and {} workers need {}; limit = that + 15 %",
                        load.pod_memory_p95.map_or("?".into(), |p| mib(ceil_u64(p))),
                        next.workers,
                        for_workers.map_or("?".into(), |w| mib(ceil_u64(w))),
                    );
                } else if (wanted as f64) <= cur * MEMORY_DOWN_THRESHOLD
                    && elapsed(Some(started), now).is_some_and(|e| e >= MEMORY_DOWN_PERIOD)
                {
                    target = wanted;
                    why = format!(
                        "pods peak at {} (p95), well below the limit for {}; limit = p95 + 15 %",
                        load.pod_memory_p95.map_or("?".into(), |p| mib(ceil_u64(p))),
                        crate::units::format_duration(MEMORY_DOWN_PERIOD),
                    );
                }
            }
        }
        if let Some(oom) = observation.newest_oom
            && state.last_oom.is_none_or(|seen| oom > seen)
        {
            state.last_oom = Some(oom);
            let bumped = round_up_mib(ceil_u64(current.memory_limit as f64 * OOM_BUMP));
            let bumped = clamp_floor_wins(bumped, policy.memory.min, policy.memory.max);
            if bumped > target {
                target = bumped;
                why = format!("a pod was OOM-killed at {oom}; raising the limit by half");
            }
            if current.memory_limit >= policy.memory.max {
                problems.push(Problem {
                    kind: ProblemKind::OutOfMemory,
                    message: format!(
                        "a pod was OOM-killed at {oom} with the memory limit already at \
                         resources.memory.max ({})",
                        mib(policy.memory.max)
                    ),
                });
            }
        }
        if target != current.memory_limit {
            next.memory_limit = target;
            state.last_memory_change = Some(now);
            reasons.push((Knob::MemoryLimit, why));
        }
    } else if let Some(oom) = observation.newest_oom
        && state.last_oom.is_none_or(|seen| oom > seen)
    {
        state.last_oom = Some(oom);
        problems.push(Problem {
            kind: ProblemKind::OutOfMemory,
            message: format!(
                "a pod was OOM-killed at {oom}; resources.memory.limit is fixed at {}",
                mib(current.memory_limit)
            ),
        });
    }

    // max_worker_memory: a safety net above the normal size, within the worker's share.
    let usable = |limit: u64, server: f64| limit as f64 * MEMORY_BUDGET_FRACTION - server;
    if let (Setting::Auto, Some(load)) = (policy.max_worker_memory, load)
        && let Some(p95) = load.worker_memory_p95
    {
        let share = floor_u64(
            usable(next.memory_limit, load.server_memory) / f64::from(next.workers.max(1)),
        );
        let wanted = round_up_mib(ceil_u64(p95 * MAX_WORKER_MEMORY_FACTOR));
        let wanted = clamp_floor_wins(
            wanted,
            MIN_AUTO_MAX_WORKER_MEMORY,
            share.max(MIN_AUTO_MAX_WORKER_MEMORY),
        );
        if !within_tolerance(current.max_worker_memory, wanted) {
            next.max_worker_memory = wanted;
            reasons.push((
                Knob::MaxWorkerMemory,
                format!(
                    "workers use {} (p95); recycle a worker above 1.5 × that, within its share \
                     {} of the pod's memory",
                    mib(ceil_u64(p95)),
                    mib(share)
                ),
            ));
        }
    }

    // max_jobs: recycle before the leak matters.
    if let (Setting::Auto, Some(load)) = (policy.max_jobs, load)
        && let (Some(growth), Some(warm)) = (load.growth_per_job, load.warm_memory)
        && growth >= MEMORY_GROWTH_NOISE
    {
        let share = usable(next.memory_limit, load.server_memory) / f64::from(next.workers.max(1));
        let cap = (next.max_worker_memory as f64).min(share);
        let headroom = (cap - warm).min(warm * WARM_GROWTH_ALLOWANCE);
        let wanted = if headroom <= 0.0 {
            MIN_AUTO_MAX_JOBS
        } else {
            floor_u64(headroom / growth).clamp(MIN_AUTO_MAX_JOBS, MAX_AUTO_MAX_JOBS)
        };
        let unlimited = current.max_jobs == 0;
        if unlimited || !within_tolerance(current.max_jobs, wanted) {
            next.max_jobs = wanted;
            reasons.push((
                Knob::MaxJobs,
                format!(
                    "workers grow {} per job from {} warm; recycling after {wanted} jobs keeps \
                     them under {}",
                    kib(growth),
                    mib(ceil_u64(warm)),
                    mib(ceil_u64(warm + growth * wanted as f64)),
                ),
            ));
        }
    }

    let changes = collect_changes(&current, &next, &reasons);
    if !changes.is_empty() {
        let list: Vec<String> = changes.iter().map(ToString::to_string).collect();
        summary = format!("{summary}. Changed: {}", list.join("; "));
    }
    Decision {
        settings: next,
        changes,
        state,
        summary,
        problems,
    }
}

fn collect_changes(current: &Settings, next: &Settings, reasons: &[(Knob, String)]) -> Vec<Change> {
    let pairs = [
        (
            Knob::Workers,
            u64::from(current.workers),
            u64::from(next.workers),
        ),
        (
            Knob::Replicas,
            u64::from(current.replicas),
            u64::from(next.replicas),
        ),
        (Knob::MaxJobs, current.max_jobs, next.max_jobs),
        (
            Knob::MaxWorkerMemory,
            current.max_worker_memory,
            next.max_worker_memory,
        ),
        (Knob::MemoryLimit, current.memory_limit, next.memory_limit),
    ];
    pairs
        .into_iter()
        .filter(|(_, from, to)| from != to)
        .map(|(knob, from, to)| Change {
            knob,
            from,
            to,
            reason: reasons
                .iter()
                .filter(|(k, _)| *k == knob)
                .map(|(_, r)| r.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        })
        .collect()
}

fn round_up_mib(bytes: u64) -> u64 {
    bytes.div_ceil(MIB).saturating_mul(MIB)
}

fn mib(bytes: u64) -> String {
    crate::units::format_memory(bytes)
}

fn kib(bytes: f64) -> String {
    if bytes >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
    } else if bytes >= 1024.0 {
        format!("{:.1} KiB", bytes / 1024.0)
    } else {
        format!("{bytes:.0} B")
    }
}

#[cfg(test)]
mod tests;
