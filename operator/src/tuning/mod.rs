//! The tuner: pure functions from window aggregates to pool settings (docs/design.md §3.3).
//!
//! [`decide`] takes the policy (from the spec), the settings now in force, the tuner's
//! memory ([`State`], kept in the status), what was observed and the time, and returns the
//! new settings, each change with its reason in words, and the updated memory. No clock,
//! no I/O: the controller reads the time and the metrics and applies the result. The
//! simulator (`sim/`) scores it over simulated days (`make sim`).
//!
//! The rules, in the order they are applied:
//! 1. **Delivered first**: while a pod still reports the previous decision's workers
//!    (`pacer_pool_target_workers`; the kubelet delivers a ConfigMap within about a
//!    minute) or memory limit (its cgroup's, or a pending resize), nothing the pods read
//!    changes — deciding again would measure pods that run the old pool. A change the
//!    pods cannot report (only `max_jobs` or `max_worker_memory`) is awaited for
//!    [`CONFIG_DELIVERY`]. Pods may still be added. After [`DELIVERY_TIMEOUT`] the tuner
//!    stops waiting.
//! 2. **Demand** ([`load`]): busy workers (or arrivals × mean job time, counting refused
//!    requests as arrivals) plus the workers that drain the waiting requests, measured on
//!    the warm pods and extrapolated to every pod that serves. With a pod's metrics
//!    missing nothing is lowered.
//! 3. **A slow dependency** ([`slowdown`]): jobs twice as long at flat completions is a
//!    slow database, not demand: workers and pods are held and the app is Degraded
//!    (`DependencySlow`) — more workers would be more connections to it; for two minutes
//!    after it recovers increases wait (the windows still hold the slow jobs and their
//!    backlog, which the workers drain by themselves). An increase the
//!    window's arrivals × job time do not explain (a queue, or a busy gauge scraped just
//!    after the database slowed down) waits one round for a second look.
//! 4. **Ceilings** per pod: the spec, the memory (what the limit holds, from the memory
//!    model; a worker increase waits until a raised limit is in force), the CPU limit
//!    ([`cpu`], from the CPU of a busy worker learned while not throttled); the spec
//!    minimum wins.
//! 5. **Replicas** (when `min < max` and not external): as few pods as hold the workers
//!    needed at the per-pod ceiling, and under a CPU limit at least as many as give the
//!    load's cores room at 60 % of the quota ([`cpu::pods_needed`]: CFS throttles bursts
//!    long before the average reaches the quota). **Workers per pod**: the workers needed ÷ the pods
//!    that serve, at least busy + √busy ([`scale::small_pool_floor`]), plus spares for the
//!    workers a lowered `max_jobs` keeps booting ([`max_jobs::spare_workers`], by pacer's
//!    measured boot time) — counted in the pods too, so that a pod at its ceiling is not
//!    the one without them. Both move
//!    as [`scale`] says: ±10 % tolerance, up at once but at most doubling (or +4) per
//!    decision, down no lower than the window's largest
//!    recommendation, once per minute, by at most 20 %.
//! 6. **Memory limit** (`auto`, [`memory`]): a model of the pods' peak working set (their
//!    cgroups, as the OOM killer sees them) against their workers, learned over days; the
//!    limit for the workers decided, raised at once, lowered by ≥ 10 % at most once per
//!    [`MEMORY_DOWN_PERIOD`]. An OOM kill (in the pod status, or a worker killed inside a
//!    living container, counted by pacer's cgroup) raises it once per episode by
//!    max(+100 MiB, ×1.2), wins over the other rules in its round, and is remembered by
//!    the model.
//!
//!    **An OOM episode** starts with the kill that bumps the limit and lasts
//!    [`OOM_EPISODE`] (10 minutes), or longer while a resize is still on its way to the
//!    pods. Within it the limit holds for the workers the pods run: no further kill raises
//!    it, nor does their working set or the model — a leak or a spike fills the pods up
//!    to whatever limit they have, so raising for it would compound the one bump ×1.1 a
//!    round (128 → 228 → 263 → … Mi) — and it is not lowered. Only more workers raise it,
//!    by the model. A kill after the episode starts the next one.
//!
//!    **A new version** (a new image digest of the PHP container in any pod): what the model
//!    learned weighs a sixteenth ([`memory::Model::new_versions`]) and the fast leak of
//!    the old version is forgotten. **After a raise of a lowered `max_jobs`** the limit is
//!    not lowered for [`MAX_JOBS_SETTLING`]: the workers grow further than the model saw.
//!
//!    **Workers in step**: while a fast leak is measured and `max_jobs` recycles it
//!    ([`max_jobs::recycled_growth`]), a pod younger than [`IN_STEP_YOUNG`] (or one being
//!    added) has workers that started together and reach their `max_jobs` together; the
//!    limit holds them all grown at once ([`memory::Model::limit_in_step`]).
//! 7. **max_worker_memory** (`auto`, [`worker_memory`]): the median worker's memory × 1.5
//!    (with a fixed memory limit, within the worker's share of it), stabilised; while
//!    `max_jobs` recycles a fast leak, at least [`NET_ABOVE_RECYCLED`] × the size a worker
//!    reaches by then — `max_jobs` leads, the net cannot chase it down.
//! 8. **max_jobs** (`auto`, [`max_jobs`]): from the growth per job of workers past their
//!    warm-up; lowered in cuts that recycle at most a quarter of the live workers (or by a
//!    quarter of the value), raised slowly, restored when a window measures no growth; for
//!    a fast leak — measured on workers past their warm-up ([`max_jobs::confirms_fast_leak`],
//!    remembered for the version) — no higher than the least memory per unit of work
//!    ([`max_jobs::least_memory_per_work`], with the measured boot time and the warm-up
//!    [`warm_up::fit`] finds in the job time by worker age, where the bands say enough).
//!
//! Missing metrics never lower anything; only spec bounds and OOM kills act without them.

pub mod cpu;
#[cfg(test)]
mod fixtures;
pub mod load;
pub mod max_jobs;
pub mod memory;
pub mod scale;
pub mod slowdown;
pub mod stats;
pub mod warm_up;
pub mod worker_memory;

use std::fmt;
use std::time::Duration;

use jiff::Timestamp;

use crate::metrics_source::PodTarget;
use crate::sample::AppSample;
pub use cpu::CPU_OVERCOMMIT;
pub use load::{DEFAULT_SERVER_MEMORY, Load, load_of};
pub use max_jobs::{DEFAULT_MAX_JOBS, MAX_AUTO_MAX_JOBS, MIN_AUTO_MAX_JOBS};
pub use scale::{SCALE_DOWN_MAX_FRACTION, SCALE_DOWN_PERIOD, TOLERANCE};
use scale::{elapsed, stabilize, within_tolerance};
use stats::{ceil_u32, ceil_u64, clamp_floor_wins, floor_u64};
pub use worker_memory::{
    DEFAULT_MAX_WORKER_MEMORY, MAX_WORKER_MEMORY_FACTOR, MIN_AUTO_MAX_WORKER_MEMORY,
};

/// Headroom on the p95 worker memory when fitting workers into a pod without a model.
pub const WORKER_MEMORY_HEADROOM: f64 = 1.2;
/// Share of the memory limit pacer and the workers may plan to use (the rest is slack for
/// page cache, spikes and measurement lag), when fitting workers without a model.
pub const MEMORY_BUDGET_FRACTION: f64 = 0.9;
/// At most one decrease of the memory limit per this period (each change resizes the
/// pods).
pub const MEMORY_DOWN_PERIOD: Duration = Duration::from_secs(10 * 60);
/// The memory limit is lowered only when the target is below this fraction of it.
pub const MEMORY_DOWN_THRESHOLD: f64 = 0.9;
/// A pod younger than this (or one being added) may have workers that started together and
/// reach their `max_jobs` together: while the workers leak, the memory limit holds that
/// ([`memory::Model::limit_in_step`]). Recycling at `max_jobs` (+ pacer's 0–14 % jitter)
/// spreads them apart only slowly; a quarter of an hour covers the first generations, when
/// they are also still warming up (`make sim`, `leak`: the OOM kills of pods added at
/// 11:12, 14:45 and 16:58 came within three minutes of the pod).
pub const IN_STEP_YOUNG: Duration = Duration::from_secs(15 * 60);
/// While `max_jobs` recycles a fast leak, `max_worker_memory` stays this factor above the
/// size a worker reaches by then: after a cut the median worker is young, and a net from it
/// alone fell below that size, recycled the older workers too, made the median younger
/// still — and `max_jobs` followed it down (`make sim`, `leak`, day 2: the net 91 ↔ 153
/// MiB and `max_jobs` 400 ↔ 600 every few minutes).
pub const NET_ABOVE_RECYCLED: f64 = 1.2;
/// After a raise of `max_jobs` the memory limit is not lowered for this long: the
/// workers grow to the new value first, and the model learns it.
pub const MAX_JOBS_SETTLING: Duration = Duration::from_secs(15 * 60);
/// A raised memory limit gets this much more than the model asks for.
pub const MEMORY_UP_SLACK: f64 = 0.05;
/// The model needs this many samples (pod-rounds) before it may lower a limit.
pub const MEMORY_MODEL_MIN_WEIGHT: f64 = 120.0;
/// An OOM kill raises the memory limit by this factor …
pub const OOM_BUMP_FACTOR: f64 = 1.2;
/// … or by this many bytes, whichever is more (VPA's rule).
pub const OOM_BUMP_MIN: u64 = 100 * MIB;
/// An OOM episode lasts this long after its bump (and while a resize is still on its way
/// to the pods): kills within it are the same episode, one bump per episode.
pub const OOM_EPISODE: Duration = Duration::from_secs(10 * 60);
/// A queue the busy workers do not explain is looked at again within this long before
/// anything is added for it.
pub const QUEUE_SECOND_LOOK: Duration = Duration::from_secs(90);
/// Busy workers beyond what arrivals × job time explain count as unexplained demand only
/// above this many (or √ of the explained ones, if more): the gauge's noise.
pub const GAUGE_NOISE: f64 = 2.0;
/// The tuner waits for the pods to report a decision at most this long.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// A ConfigMap change the pods cannot report (`max_jobs`, `max_worker_memory`: pacer
/// exports only the pool size) is taken as delivered after this long (the kubelet's sync
/// period and its jitter).
pub const CONFIG_DELIVERY: Duration = Duration::from_secs(90);
/// A bridge pod is added while the pods run fewer workers than decided only when the
/// workers they run would be busier than this share.
pub const BRIDGE_UTILIZATION: f64 = 0.9;
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
#[derive(Clone, Debug, PartialEq, Default)]
pub struct State {
    /// Recommendations of the stabilisation window, oldest first.
    pub history: Vec<Entry>,
    /// When workers or replicas were last lowered.
    pub last_scale_down: Option<Timestamp>,
    /// When the memory limit last changed (or the tuner first saw it).
    pub last_memory_change: Option<Timestamp>,
    /// Finish time of the newest OOM kill (of a container) already acted on.
    pub last_oom: Option<Timestamp>,
    /// When the settings last changed (the pods are waited for from then on).
    pub last_change: Option<Timestamp>,
    /// When an OOM kill last raised the memory limit (the start of an episode).
    pub last_oom_bump: Option<Timestamp>,
    /// When `max_jobs` last changed.
    pub last_max_jobs_change: Option<Timestamp>,
    /// When `max_jobs` was last raised (see [`MAX_JOBS_SETTLING`]).
    pub last_max_jobs_raise: Option<Timestamp>,
    /// When `max_worker_memory` last changed.
    pub last_max_worker_memory_change: Option<Timestamp>,
    /// When the ConfigMap last changed without a new pool size (which the pods would
    /// report): such a change is awaited for [`CONFIG_DELIVERY`].
    pub unreported_change: Option<Timestamp>,
    /// When requests first queued, or workers looked busy, beyond what the window's
    /// arrivals × job time ask for (a burst, or the first seconds of a slow dependency):
    /// the next round decides.
    pub queue_spike: Option<Timestamp>,
    /// Cores a busy worker uses when not throttled (see [`cpu`]).
    pub cpu_per_busy_worker: Option<f64>,
    /// The usual job time and completions (see [`slowdown`]).
    pub jobs: slowdown::Baseline,
    /// The memory model (see [`memory`]).
    pub memory: memory::Model,
    /// The running version's workers leak fast, as last measured on workers past their
    /// warm-up ([`max_jobs::confirms_fast_leak`]); cleared by a new version or a window
    /// that measures no growth.
    pub fast_leak: Option<max_jobs::FastLeak>,
    /// The memory limit before the last change (pods still reporting it have not been
    /// resized yet).
    pub previous_memory_limit: Option<u64>,
}

/// What the controller observed.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Observation {
    /// Window aggregates; `None` when the metrics could not be read.
    pub sample: Option<AppSample>,
    /// Finish time of the newest OOM kill of an app container.
    pub newest_oom: Option<Timestamp>,
    /// The pods the API lists as running (readiness, pending resizes); empty: unknown.
    pub pods: Vec<PodTarget>,
    /// The settings are applied to the pods (mode Auto), so their delivery is awaited.
    pub await_delivery: bool,
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
    /// Jobs workers per pod (`spec.jobs`, see [`crate::jobs_tuning`]).
    JobsWorkers,
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
            Self::JobsWorkers => "jobs_workers",
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
            (Knob::JobsWorkers, true) => "JobsWorkersIncreased",
            (Knob::JobsWorkers, false) => "JobsWorkersDecreased",
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
    /// Jobs take much longer at flat completions: a dependency is slow.
    DependencySlow,
}

impl ProblemKind {
    /// CamelCase condition reason.
    #[must_use]
    pub fn reason(self) -> &'static str {
        match self {
            Self::AtCapacity => "AtCapacity",
            Self::OutOfMemory => "OOMKilled",
            Self::DependencySlow => "DependencySlow",
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

/// What the pods still report of an earlier decision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Pending {
    /// A pod's pacer runs another pool size than decided (ConfigMap not delivered).
    workers: bool,
    /// A pod still has the memory limit before the last change (resize not applied).
    memory: bool,
}

impl Pending {
    fn any(self) -> bool {
        self.workers || self.memory
    }
}

fn pending(
    current: &Settings,
    load: Option<&Load>,
    state: &State,
    observation: &Observation,
    now: Timestamp,
) -> (Pending, bool) {
    let Some(load) = load.filter(|_| observation.await_delivery) else {
        return (Pending::default(), false);
    };
    let unreported = elapsed(state.unreported_change, now).is_some_and(|e| e < CONFIG_DELIVERY);
    let found = Pending {
        workers: unreported || load.target_workers.iter().any(|&w| w != current.workers),
        memory: load.resize_pending
            || state.previous_memory_limit.is_some_and(|old| {
                old != current.memory_limit
                    && load
                        .memory_limits
                        .iter()
                        .any(|&m| m.abs_diff(old) < MIB && m.abs_diff(current.memory_limit) >= MIB)
            }),
    };
    let timed_out =
        found.any() && elapsed(state.last_change, now).is_some_and(|e| e >= DELIVERY_TIMEOUT);
    if timed_out {
        (Pending::default(), true)
    } else {
        (found, false)
    }
}

/// Workers per pod a memory limit of `limit` bytes holds: from the memory model when it has
/// data, else from the p95 worker memory; `u32::MAX` when nothing is known.
fn workers_fit(model: &memory::Model, limit: u64, load: &Load, assumed: Option<f64>) -> u32 {
    let by_model = (model.sums[0] > 0.0)
        .then(|| model.workers_for(limit as f64, assumed))
        .flatten();
    let by_workers = load
        .worker_memory_p95
        .map(|w| workers_that_fit(limit, load.server_memory, w));
    match by_model.or_else(|| by_workers.map(f64::from)) {
        Some(w) => floor_u64(w).min(u64::from(u32::MAX)) as u32,
        None => u32::MAX,
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
        .map(|s| load_of(s, &observation.pods, now));
    let (pending, timed_out) = pending(&current, load.as_ref(), &state, observation, now);

    // A new application version is a new memory profile: the model's past fades first.
    let mut versions: Vec<String> = observation
        .pods
        .iter()
        .filter_map(|p| p.image.clone())
        .collect();
    versions.sort();
    versions.dedup();
    let new_version = state.memory.new_versions(&versions);
    if new_version {
        state.fast_leak = None;
    }
    // The memory model learns from every round's peaks.
    if let Some(load) = &load {
        for &(workers, peak) in &load.working_sets {
            state.memory.add(now, workers, peak, 1.0);
        }
    }
    // Without a spread of workers the model assumes a worker's RSS (an upper bound).
    let assumed = load
        .as_ref()
        .and_then(|l| l.worker_memory_p95)
        .map(|b| b / MIB as f64);
    let limit_now = match policy.memory_limit {
        Setting::Fixed(b) => b,
        Setting::Auto => current.memory_limit,
    };
    let limit_max = match policy.memory_limit {
        Setting::Fixed(b) => b,
        Setting::Auto => policy.memory.max,
    };

    let mut summary = String::new();
    // Workers per pod the load asks for (after stabilisation, before waiting for memory),
    // or that a pod still runs.
    let mut workers_wanted = current.workers;
    if let Some(load) = &load {
        let throttled = load.throttled.is_some_and(|s| s > cpu::THROTTLE_HIGH);
        let verdict =
            state
                .jobs
                .observe(load.warm_job_seconds, load.jobs_per_second, throttled, now);
        let slow = verdict.slow();
        let suspect = verdict == slowdown::Verdict::Suspect;
        let recovering = verdict == slowdown::Verdict::Recovering;
        let target = policy.target_utilization.clamp(0.05, 1.0);
        let wanted_total = ceil_u32(load.required / target - 1e-9).max(1);
        // Demand the window's completions do not explain — a queue, or busy workers the
        // scrapes saw at an instant beyond what arrivals × job time say — waits one round:
        // a burst is still there 30 s later, while the first seconds of a slow dependency
        // then show as longer jobs (a busy gauge scraped a second after the database slowed
        // down counts every stuck job; the window's job time does not show it yet).
        let capacity_now = current.workers.saturating_mul(current.replicas);
        // The gauge counts only beyond its noise: a pool of 3 workers reads 3 busy in one
        // scrape and 2 in the next while completions explain 1.9 (about √busy either way).
        // What the window does not explain is the gauge's excess and the waiting requests
        // together: a dependency that slowed down two seconds before the round shows in
        // both (the `slowdown` trace: 4.2 busy workers and 3.8 workers of queue beyond the
        // 26.8 the completions explain), neither alone above the noise.
        let gauge_excess = load.required - load.required_flow;
        let queue_driven = wanted_total > capacity_now
            && (ceil_u32(load.required_busy / target - 1e-9) <= capacity_now
                || (ceil_u32(load.required_flow / target - 1e-9) <= capacity_now
                    && gauge_excess >= GAUGE_NOISE.max(load.required_flow.sqrt())));
        let first_look = queue_driven
            && state
                .queue_spike
                .is_none_or(|s| elapsed(Some(s), now).is_some_and(|e| e > QUEUE_SECOND_LOOK));
        state.queue_spike = if queue_driven {
            if first_look {
                Some(now)
            } else {
                state.queue_spike
            }
        } else {
            None
        };
        let memory_cap = workers_fit(&state.memory, limit_max, load, assumed);
        let memory_cap_now = workers_fit(&state.memory, limit_now, load, assumed);
        let cpu = policy.cpu_limit_millis.and_then(|limit| {
            cpu::clamp(
                limit,
                load.cpu_per_busy_worker,
                load.throttled,
                &mut state.cpu_per_busy_worker,
                current.workers,
            )
        });
        let cpu_cap = cpu.map_or(u32::MAX, |c| c.workers);
        let per_pod_ceiling = policy
            .workers
            .max
            .min(memory_cap)
            .min(cpu_cap)
            .max(policy.workers.min);
        if let Some(c) = cpu
            && cpu_cap < policy.workers.max.min(memory_cap)
        {
            let how = if c.held {
                format!(
                    "; throttled in {:.0} % of its CPU periods, the pod gets more pods, not more workers",
                    c.throttled.unwrap_or(0.0) * 100.0
                )
            } else {
                String::new()
            };
            reasons.push((
                Knob::Workers,
                format!(
                    "the CPU limit of {} cores runs {cpu_cap} workers that each use {:.2} cores while busy{how}",
                    policy.cpu_limit_millis.unwrap_or(0) as f64 / 1000.0,
                    c.per_worker,
                ),
            ));
        }
        if memory_cap < policy.workers.max {
            reasons.push((
                Knob::Workers,
                format!(
                    "memory allows {memory_cap} workers per pod within {}",
                    mib(limit_max)
                ),
            ));
        }

        // Under a CPU limit the pods also give the load's CPU headroom below the quota
        // ([`cpu::pods_for`]): throttling stretches every job long before the workers run out.
        let cpu_pods = match (policy.cpu_limit_millis, load.cpu_cores) {
            (Some(limit), Some(cores)) => cpu::pods_needed(cores, limit, target, current.replicas),
            _ => 0,
        };
        // Recycling costs capacity: a worker past `max_jobs` boots again (and starts cold)
        // while the others carry its share; a pool that recycles often has workers out
        // (`max_jobs::spare_workers`), as spares on top of what the load needs — in the
        // pods too, so that a pod at its ceiling is not the one without them.
        let recycling =
            max_jobs::recycling_workers(current.max_jobs, load.jobs_per_second, load.boot_seconds);
        let spare = |pods: u32| max_jobs::spare_workers(recycling / f64::from(pods.max(1)));
        // Replicas first: pods are added only once the workers per pod are at the ceiling.
        let replicas_fixed = policy.replicas_external || policy.replicas.min == policy.replicas.max;
        let raw_replicas = if replicas_fixed {
            current.replicas
        } else {
            let ceiling = per_pod_ceiling.max(1);
            let mut needed = wanted_total.div_ceil(ceiling);
            while needed < policy.replicas.max
                && wanted_total.div_ceil(needed.max(1)) + spare(needed) > ceiling
            {
                needed += 1;
            }
            let needed = needed.max(cpu_pods);
            let needed = clamp_floor_wins(needed, policy.replicas.min, policy.replicas.max);
            if within_tolerance(u64::from(current.replicas), u64::from(needed)) {
                current.replicas
            } else {
                needed
            }
        };
        let replicas_window_max = state.history.iter().map(|e| e.replicas).max().unwrap_or(0);
        let mut replicas = if replicas_fixed {
            current.replicas
        } else {
            stabilize(
                current.replicas,
                raw_replicas,
                replicas_window_max,
                state.last_scale_down,
                now,
            )
            .value
        };
        let holds_down = load.missing > 0 || pending.any();
        if slow.is_some()
            || (holds_down && replicas < current.replicas)
            || ((suspect || recovering || first_look) && replicas > current.replicas)
        {
            replicas = current.replicas;
        }
        next.replicas = clamp_floor_wins(replicas, policy.replicas.min, policy.replicas.max);

        // Workers per pod: the workers needed over the pods that serve (never more pods
        // than will exist; with an HPA, the pods it runs).
        let serving = u32::try_from(load.serving).unwrap_or(u32::MAX).max(1);
        let pods_now = if policy.replicas_external {
            serving
        } else {
            next.replicas.min(serving).max(1)
        };
        let per_pod = wanted_total
            .div_ceil(pods_now)
            .max(scale::small_pool_floor(load.required / f64::from(pods_now)))
            .saturating_add(spare(pods_now));
        let mut raw_workers = clamp_floor_wins(per_pod, policy.workers.min, per_pod_ceiling);
        if within_tolerance(u64::from(current.workers), u64::from(raw_workers)) {
            raw_workers = current.workers;
        }
        let workers_window_max = state.history.iter().map(|e| e.workers).max().unwrap_or(0);
        let stabilized = stabilize(
            current.workers,
            raw_workers,
            workers_window_max,
            state.last_scale_down,
            now,
        );
        let mut workers = stabilized.value;
        let mut held_by = None;
        if slow.is_some() {
            workers = current.workers;
        } else if suspect && workers > current.workers {
            held_by = Some(
                "jobs take longer at flat completions: waiting a round to tell a slow dependency from demand",
            );
            workers = current.workers;
        } else if recovering && workers > current.workers {
            held_by = Some(
                "a slow dependency has just recovered: the window still holds its slow jobs \
                 and the backlog they left, which the workers drain",
            );
            workers = current.workers;
        } else if first_look && workers > current.workers {
            held_by = Some(
                "the window's completions do not explain the queue or the busy workers: a \
                 second look first",
            );
            workers = current.workers;
        } else if pending.any() && workers != current.workers {
            held_by = Some("the pods have not all received the last decision yet");
            workers = current.workers;
        } else if load.missing > 0 && workers < current.workers {
            held_by = Some("a pod's metrics are missing");
            workers = current.workers;
        }
        // The memory limit is sized for these, and a pod still runs the workers it reports
        // until the kubelet delivers a decrease (up to a minute): a limit lowered for fewer
        // workers before that OOM-kills it.
        workers_wanted = workers.max(load.target_workers.iter().copied().max().unwrap_or(0));
        if workers > current.workers
            && policy.memory_limit == Setting::Auto
            && workers > memory_cap_now
        {
            // Memory first: the workers grow once the raised limit is in force.
            workers = memory_cap_now.max(current.workers);
            held_by = Some("the memory limit they need is raised first");
        }
        next.workers = workers;
        // Fewer pods only if the workers the pods run now carry the load: more workers per
        // pod decided in this round reach the pods only with the next kubelet sync, and
        // removing pods before that queues their requests on the rest.
        if next.replicas < current.replicas {
            let needed = wanted_total.div_ceil(next.workers.min(current.workers).max(1));
            next.replicas = next.replicas.max(needed.min(current.replicas));
        }
        // A bridge: while the pods run fewer workers than decided (the ConfigMap is on its
        // way, or the memory for them is), more pods carry the load — a new pod starts with
        // the ConfigMap as it is now.
        let mut bridge = 0;
        if !replicas_fixed && slow.is_none() && !suspect && !recovering && !first_look {
            let running = if pending.workers {
                load.target_workers
                    .iter()
                    .copied()
                    .min()
                    .unwrap_or(next.workers)
            } else {
                next.workers
            };
            // Only for a real shortfall: a worker or two short of the target utilisation
            // for the minute of a delivery is not worth a pod that starts and goes again;
            // and only for what the window's arrivals explain (busy workers and a queue
            // beyond them wait for a second look, see above).
            let explained = load
                .required
                .min(load.required_flow + GAUGE_NOISE.max(load.required_flow.sqrt()));
            if f64::from(running.saturating_mul(next.replicas)) * BRIDGE_UTILIZATION < explained {
                bridge = wanted_total
                    .div_ceil(running.max(1))
                    .min(scale::step_up_limit(current.replicas))
                    .min(policy.replicas.max);
                if bridge > next.replicas {
                    reasons.push((
                        Knob::Replicas,
                        format!(
                            "the pods run {running} workers until they receive the {} decided",
                            next.workers
                        ),
                    ));
                    next.replicas = bridge;
                }
            }
        }

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
        if let Some(s) = slow {
            problems.push(Problem {
                kind: ProblemKind::DependencySlow,
                message: format!(
                    "jobs take {:.1}× their usual {:.0} ms while completions stay at {:.0}/s \
                     (usually {:.0}/s): a dependency (database, API) is slow; workers and \
                     pods are held, since more of them would add load to it",
                    s.factor,
                    s.usual * 1000.0,
                    s.per_second,
                    s.usual_per_second
                ),
            });
        }

        let utilisation = if load.live > 0.0 {
            load.busy / load.live
        } else {
            0.0
        };
        let pods = load.pods.max(1) as f64;
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
        if load.missing > 0 {
            summary.push_str(&format!(
                "; {} ready pod(s) without metrics: nothing is lowered",
                load.missing
            ));
        }
        if timed_out {
            summary.push_str(&format!(
                "; the pods did not report the last decision within {}, deciding anyway",
                crate::units::format_duration(DELIVERY_TIMEOUT)
            ));
        }

        let workers_reason = if next.workers > current.workers {
            let mut r = format!(
                "{:.1} busy workers and {:.1} waiting requests per pod need {} workers to stay \
                 at {:.0} % utilisation",
                load.busy / pods,
                load.queue / pods,
                raw_workers,
                target * 100.0
            );
            if stabilized.stepped {
                r.push_str(&format!(
                    "; at most {} in one step",
                    scale::step_up_limit(current.workers)
                ));
            }
            if let Some(h) = held_by {
                r.push_str(&format!("; {h}"));
            }
            r
        } else if next.workers < current.workers {
            format!(
                "load fell to {:.1} busy workers per pod; the largest recommendation of the \
                 last {} is {}, and the pool shrinks by at most {:.0} % per {}",
                load.busy / pods,
                crate::units::format_duration(policy.stabilization_window),
                workers_window_max.max(raw_workers),
                SCALE_DOWN_MAX_FRACTION * 100.0,
                crate::units::format_duration(SCALE_DOWN_PERIOD),
            )
        } else if stabilized.held {
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
                if cpu_pods > wanted_total.div_ceil(per_pod_ceiling.max(1)) {
                    format!(
                        "the workers use {:.1} cores in all; {cpu_pods} pods keep them at {:.0} % \
                         of their CPU limit, where CFS throttles few of the periods",
                        load.cpu_cores.unwrap_or(0.0),
                        target.min(cpu::CPU_TARGET) * 100.0
                    )
                } else {
                    format!(
                        "{wanted_total} workers needed in all and at most {per_pod_ceiling} per pod"
                    )
                },
            ));
        }

        state.history.push(Entry {
            at: now,
            workers: raw_workers,
            // A bridge is held for the window like any recommendation.
            replicas: raw_replicas.max(bridge),
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
    if new_version {
        summary.push_str(&format!(
            "; the pods run a new version ({}): what the memory model learned before weighs \
             a sixteenth",
            versions.join(", ")
        ));
    }

    // OOM kills: of a whole container (its status), or of a worker inside a living one
    // (pacer's cgroup counter; the container's status never shows those).
    let container_oom = observation
        .newest_oom
        .filter(|o| state.last_oom.is_none_or(|seen| *o > seen));
    if let Some(o) = container_oom {
        state.last_oom = Some(o);
    }
    let oom = container_oom.is_some() || load.as_ref().is_some_and(|l| l.oom_kills >= 0.5);
    let oom_words = container_oom.map_or_else(
        || "a worker was OOM-killed".to_owned(),
        |o| format!("a pod was OOM-killed at {o}"),
    );
    // The OOM episode (module docs, rule 6), as it stood before this round's kill.
    let episode_before =
        pending.memory || elapsed(state.last_oom_bump, now).is_some_and(|e| e < OOM_EPISODE);
    // A kill this round is the episode's, or starts one: either way no other rule raises
    // the limit for the workers the pods run.
    let episode = episode_before || oom;

    // Memory limit.
    if let Setting::Auto = policy.memory_limit {
        let started = *state.last_memory_change.get_or_insert(now);
        let mut target = current.memory_limit;
        let mut why = String::new();
        // A raised `max_jobs` lets the workers grow further than the model has seen: no
        // decrease until they have lived with it (`make sim`, `leak`, seed 6:
        // 264 → 385 at night, the limit lowered for 9 workers two minutes later, a pod
        // OOM-killed 30 s after that).
        let max_jobs_settling =
            elapsed(state.last_max_jobs_raise, now).is_some_and(|e| e < MAX_JOBS_SETTLING);
        if oom && !episode_before {
            // Remember where it hit, for days; then raise once for this episode.
            let workers_then = load
                .as_ref()
                .filter(|l| l.pods > 0)
                .map_or(f64::from(current.workers), |l| l.live / l.pods as f64);
            state.memory.add(
                now,
                workers_then,
                current.memory_limit as f64,
                memory::OOM_WEIGHT,
            );
            state.last_oom_bump = Some(now);
            let bumped = current
                .memory_limit
                .saturating_add(OOM_BUMP_MIN)
                .max(ceil_u64(current.memory_limit as f64 * OOM_BUMP_FACTOR));
            let bumped =
                clamp_floor_wins(round_up_mib(bumped), policy.memory.min, policy.memory.max);
            if bumped > target {
                target = bumped;
                why = format!("{oom_words}; raised once for this episode by max(+100Mi, ×1.2)");
            }
            if current.memory_limit >= policy.memory.max {
                problems.push(Problem {
                    kind: ProblemKind::OutOfMemory,
                    message: format!(
                        "{oom_words} with the memory limit already at resources.memory.max ({})",
                        mib(policy.memory.max)
                    ),
                });
            }
        } else if !pending.memory
            && let Some(load) = &load
            && let for_workers = next.workers.max(workers_wanted).max(current.workers)
            && (!episode || for_workers > current.workers)
        {
            // Within an OOM episode the bump is the answer for the workers the pods run:
            // the leak or spike that filled them sits at whatever limit they have, so
            // their working set is the limit itself, and raising for it would compound
            // the bump round after round. Only more workers raise it then, by the model.
            // Fewer workers reach the pods with the next kubelet sync, a resize at once:
            // the limit comes down only for workers the pods no longer run.
            let for_workers = f64::from(for_workers);
            // Workers that leak grow by `max_jobs` × the growth per job and are recycled:
            // in a pod of workers of every age they are half-way on average, which the
            // model has learned; a young pod's workers started together and reach the end
            // together — while there is one, the limit holds that too.
            let young = next.replicas > current.replicas
                || load
                    .youngest_pod_seconds
                    .is_some_and(|s| s < IN_STEP_YOUNG.as_secs_f64());
            let in_step = young
                .then(|| {
                    max_jobs::recycled_growth(
                        current.max_jobs,
                        load.growth_per_job,
                        load.warm_memory,
                    )
                })
                .flatten()
                .and_then(|grown| state.memory.limit_in_step(for_workers, grown, assumed));
            let by_model = (state.memory.sums[0] > 0.0)
                .then(|| state.memory.limit_for(for_workers, assumed))
                .flatten()
                .map(|m| m.max(in_step.unwrap_or(0.0)));
            let peak_now = if episode {
                0.0
            } else {
                load.working_sets
                    .iter()
                    .map(|&(_, ws)| ws)
                    .fold(0.0, f64::max)
            };
            if let Some(model) = by_model {
                // A raise adds [`MEMORY_UP_SLACK`] so that the limit does not follow every
                // drift of the model one resize at a time.
                let needed = model.max(peak_now * memory::HEADROOM);
                let wanted = if needed > current.memory_limit as f64 {
                    needed * (1.0 + MEMORY_UP_SLACK)
                } else {
                    needed
                };
                let wanted = round_up_mib(ceil_u64(wanted));
                let wanted = clamp_floor_wins(wanted, policy.memory.min, policy.memory.max);
                let line = state.memory.line(assumed);
                let explain = |verb: &str| {
                    format!(
                        "{verb}: pods peak at {} + {} per worker (their cgroups, learned over \
                         days) and {} more in 1 % of the windows; {} workers need that + 10 %",
                        line.map_or("?".into(), |l| mib(ceil_u64(l.fixed.max(0.0) * MIB as f64))),
                        line.map_or("?".into(), |l| mib(ceil_u64(l.per_worker * MIB as f64))),
                        mib(ceil_u64(
                            state
                                .memory
                                .residual(memory::RESIDUAL_QUANTILE)
                                .unwrap_or(0.0)
                                .max(0.0)
                                * MIB as f64
                        )),
                        for_workers,
                    )
                };
                if wanted > current.memory_limit {
                    target = wanted;
                    why = explain("raised");
                } else if !episode
                    && !max_jobs_settling
                    && (wanted as f64) <= current.memory_limit as f64 * MEMORY_DOWN_THRESHOLD
                    && state.memory.weight(now) >= MEMORY_MODEL_MIN_WEIGHT
                    && elapsed(Some(started), now).is_some_and(|e| e >= MEMORY_DOWN_PERIOD)
                {
                    target = wanted;
                    why = explain("lowered");
                }
            } else if let Some(w) = load.worker_memory_p95 {
                // No cgroup figures (an older pacer): only raise, for the workers.
                let need = (load.server_memory + for_workers * w * WORKER_MEMORY_HEADROOM)
                    / MEMORY_BUDGET_FRACTION;
                let need = clamp_floor_wins(
                    round_up_mib(ceil_u64(need)),
                    policy.memory.min,
                    policy.memory.max,
                );
                if need > current.memory_limit {
                    target = need;
                    why = format!(
                        "{for_workers} workers of {} need {}",
                        mib(ceil_u64(w)),
                        mib(need)
                    );
                }
            }
        }
        if target != current.memory_limit {
            next.memory_limit = target;
            state.previous_memory_limit = Some(current.memory_limit);
            state.last_memory_change = Some(now);
            reasons.push((Knob::MemoryLimit, why));
        }
    } else if oom {
        let episode = elapsed(state.last_oom_bump, now).is_some_and(|e| e < OOM_EPISODE);
        if !episode {
            state.last_oom_bump = Some(now);
            problems.push(Problem {
                kind: ProblemKind::OutOfMemory,
                message: format!(
                    "{oom_words}; resources.memory.limit is fixed at {}",
                    mib(current.memory_limit)
                ),
            });
        }
    }

    // A worker's share of the memory (RSS terms): with a fixed limit, the usable memory
    // over the workers. With `auto` there is none to respect: the limit follows what the
    // workers use (the model learns their growth too), an OOM kill is the backstop — and
    // the cgroup-sized limit is far below the sum of RSS, which counts opcache's shared
    // pages in every worker, so a share of it would recycle healthy workers.
    let share = |load: &Load| match policy.memory_limit {
        Setting::Fixed(limit) => Some(
            (limit as f64 * MEMORY_BUDGET_FRACTION - load.server_memory)
                / f64::from(next.workers.max(1)),
        ),
        Setting::Auto => None,
    };

    // max_worker_memory: a safety net above the normal size.
    if let (Setting::Auto, Some(load), false) = (policy.max_worker_memory, &load, pending.any())
        && let Some((to, why)) = worker_memory::recommend(
            current.max_worker_memory,
            load.worker_memory_p50,
            max_jobs::recycled_growth(current.max_jobs, load.growth_per_job, load.warm_memory)
                .zip(load.warm_memory)
                .map(|(grown, warm)| (warm + grown) * NET_ABOVE_RECYCLED),
            share(load).map(floor_u64),
            state.last_max_worker_memory_change,
            now,
        )
        && to != current.max_worker_memory
    {
        next.max_worker_memory = to;
        state.last_max_worker_memory_change = Some(now);
        reasons.push((Knob::MaxWorkerMemory, why));
    }

    // max_jobs: recycle before the leak matters.
    if let (Setting::Auto, Some(load), false) = (policy.max_jobs, &load, pending.any()) {
        if load
            .growth_per_job
            .is_some_and(|g| g < max_jobs::MEMORY_GROWTH_NOISE)
        {
            state.fast_leak = None;
        }
        // The warm-up as pacer measured it, in the workers' job time by age.
        let warm_up = warm_up::fit(&load.worker_age, current.max_jobs);
        if let Some(leak) = max_jobs::confirms_fast_leak(
            load.growth_per_job,
            load.warm_memory,
            load.growth_jobs,
            warm_up,
        ) {
            state.fast_leak = Some(leak);
        }
        let inputs = max_jobs::Inputs {
            fast_leak: state.fast_leak,
            boot_seconds: load.boot_seconds,
            warm_up,
            growth: load.growth_per_job,
            warm: load.warm_memory,
            cap: (next.max_worker_memory as f64).min(share(load).unwrap_or(f64::INFINITY)),
            jobs_done_p75: load.jobs_done_p75,
            job_seconds: load.warm_job_seconds,
            cpu_per_busy_worker: load.cpu_per_busy_worker,
        };
        // A higher max_jobs lets every worker grow further before it is recycled: only
        // when the memory limit in force holds the pods' peak plus that growth.
        let peak = load
            .working_sets
            .iter()
            .map(|&(_, ws)| ws)
            .fold(0.0, f64::max);
        let room_for = |to: u64| {
            if current.max_jobs == 0 {
                return true;
            }
            // A step leak grows in lumps: a window between two steps measures less than
            // its average (or nothing), so the room is checked for twice the measured
            // growth, and at least for the growth the value in force was lowered for (a
            // worker's warm size over WARM_GROWTH_ALLOWANCE).
            let lowered_for = (current.max_jobs < DEFAULT_MAX_JOBS)
                .then(|| {
                    load.warm_memory
                        .map(|w| w * max_jobs::WARM_GROWTH_ALLOWANCE / current.max_jobs as f64)
                })
                .flatten();
            let growth = match (load.growth_per_job, lowered_for) {
                (Some(measured), Some(lowered)) => Some(measured.max(lowered)),
                (measured, lowered) => measured.or(lowered),
            };
            let Some(growth) = growth else {
                return true;
            };
            let extra =
                max_jobs::RAISE_GROWTH_MARGIN * growth * to.saturating_sub(current.max_jobs) as f64;
            peak + f64::from(next.workers) * extra
                <= next.memory_limit.min(current.memory_limit) as f64 * MEMORY_BUDGET_FRACTION
        };
        if let Some((to, why)) =
            max_jobs::recommend(current.max_jobs, inputs, state.last_max_jobs_change, now)
            && to != current.max_jobs
            && (to < current.max_jobs || to == 0 || room_for(to))
        {
            next.max_jobs = to;
            state.last_max_jobs_change = Some(now);
            // A raise of a value lowered for a leak: the workers will grow further.
            if (to > current.max_jobs || to == 0) && current.max_jobs < DEFAULT_MAX_JOBS {
                state.last_max_jobs_raise = Some(now);
            }
            reasons.push((Knob::MaxJobs, why));
        }
    }

    let changes = collect_changes(&current, &next, &reasons);
    if !changes.is_empty() {
        state.last_change = Some(now);
        let config_changed = next.max_jobs != current.max_jobs
            || next.max_worker_memory != current.max_worker_memory;
        if config_changed && next.workers == current.workers {
            state.unreported_change = Some(now);
        }
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

/// How many workers of `worker_memory` bytes fit beside pacer into `limit`.
fn workers_that_fit(limit: u64, server_memory: f64, worker_memory: f64) -> u32 {
    let usable = limit as f64 * MEMORY_BUDGET_FRACTION - server_memory;
    let per_worker = worker_memory * WORKER_MEMORY_HEADROOM;
    if per_worker <= 0.0 {
        return u32::MAX;
    }
    floor_u64(usable / per_worker).min(u64::from(u32::MAX)) as u32
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

#[cfg(test)]
mod tests;
