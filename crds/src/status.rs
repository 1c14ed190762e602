//! `PhpAppServer.status`: what the operator observed, decided and applied.
//!
//! Written only by the operator (status subresource). Besides the user-facing fields it
//! keeps the tuner's memory (`tuningState`) so that a restarted operator continues the
//! stabilisation window where the previous one stopped instead of deciding from scratch.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Observed state of a `PhpAppServer`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PhpAppServerStatus {
    /// The `metadata.generation` of the spec this status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready: the Deployment has all its pods ready. Tuned: the tuner has recent metrics
    /// and the pool matches its decision (or the mode says why not). Degraded: something
    /// needs attention (metrics unreadable, a bound prevents the pool the load needs, OOM
    /// kills).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// Pods the Deployment has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,

    /// Pods that are ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,

    /// Label selector of the pods, for the `/scale` subresource (what an HPA reads to
    /// find the pods' resource metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,

    /// Progress of the Deployment's rollout of the current pod template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,

    /// The pool settings now written to the pods' configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<PoolSettings>,

    /// When `current` was last changed (written to the pods' configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_since: Option<Time>,

    /// What the pods themselves report of `current` (their `pacer_pool_target_workers`),
    /// from the latest tuning round's metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported: Option<ReportedSettings>,

    /// The tuner's latest decision and why. In Recommend mode this is all the tuner does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommendation: Option<Recommendation>,

    /// Aggregates of the last tuning window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<ObservedMetrics>,

    /// When the tuner last ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_tune_time: Option<Time>,

    /// The tuner's memory across runs (stabilisation window, rate limits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuning_state: Option<TuningState>,

    /// The jobs pool (`spec.jobs`): its size, why, what the pods report and the window it
    /// was decided on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<JobsPoolStatus>,
}

/// The jobs pool's size and the jobs tuner's memory.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobsPoolStatus {
    /// Jobs workers per pod now in the pods' configuration (`jobs.pool.num_workers`).
    pub workers: i32,
    /// Pods the jobs pool asks for (0: scaled to zero).
    pub replicas: i32,
    /// Why, in words (the latest decision).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Pods whose jobs pool size was read, and of those the pods running `workers`
    /// (`pacer_pool_target_workers{pool="jobs"}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_pods: Option<i32>,
    /// Of `reportedPods`, the pods running `workers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matching_pods: Option<i32>,
    /// Jobs ready in the brokers at the end of the last window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<f64>,
    /// Jobs acknowledged per second over the last window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_per_second: Option<f64>,
    /// Jobs workers busy on average over the last window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busy_workers: Option<f64>,
    /// Seconds a job holds a worker, last measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_seconds: Option<f64>,
    /// Since when the queues have been idle (depth 0, nothing in flight).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_since: Option<Time>,
    /// Recommendations of the stabilisation window, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub history: Vec<HistoryEntry>,
    /// When the jobs workers or pods were last lowered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_down_time: Option<Time>,
    /// When the jobs pool's size last changed (its delivery is awaited from then on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change_time: Option<Time>,
}

/// Settings of the pool of every pod.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolSettings {
    /// PHP workers per pod (`http.pool.num_workers`).
    pub workers: i32,
    /// Jobs per worker before it is recycled (`http.pool.max_jobs`; 0 = unlimited).
    pub max_jobs: i64,
    /// Memory per worker before it is recycled (`supervisor.max_worker_memory`).
    pub max_worker_memory: String,
    /// Memory limit of the app container.
    pub memory_limit: String,
    /// Pods.
    pub replicas: i32,
}

/// Progress of the Deployment's rollout.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// Pods the Deployment wants.
    pub desired: i32,
    /// Pods that run the current pod template.
    pub updated: i32,
    /// Pods that are ready (any template).
    pub ready: i32,
    /// Pods that have been ready for the Deployment's `minReadySeconds`.
    pub available: i32,
    /// True when every wanted pod runs the current template and is available, and the
    /// Deployment controller has seen the latest template.
    pub complete: bool,
}

/// What the pods report of the configured settings.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportedSettings {
    /// Pods whose metrics were read.
    pub pods: i32,
    /// Of those, pods whose pool targets `current.workers` (`pacer_pool_target_workers`).
    pub matching: i32,
    /// The workers per pod the pods report, when they all agree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<i32>,
    /// When every reporting pod was first seen running `current.workers`; unset while some
    /// pod still reports another value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
}

/// A tuning decision with its reasons.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    /// PHP workers per pod.
    pub workers: i32,
    /// Jobs per worker before it is recycled (0 = unlimited).
    pub max_jobs: i64,
    /// Memory per worker before it is recycled.
    pub max_worker_memory: String,
    /// Memory limit of the app container.
    pub memory_limit: String,
    /// Pods.
    pub replicas: i32,
    /// Why, in words.
    pub reason: String,
}

/// Window aggregates the tuner decided on.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObservedMetrics {
    /// Pods that contributed metrics.
    pub pods: i32,
    /// Busy workers ÷ live workers, averaged over the window (0–1).
    pub busy_ratio: f64,
    /// `busyRatio` as a whole percentage.
    pub busy_percent: i32,
    /// Busy workers per pod, averaged over the window.
    pub busy_workers: f64,
    /// Requests waiting for a worker per pod, averaged over the window.
    pub queue_depth: f64,
    /// Requests per second across all pods.
    pub requests_per_second: f64,
    /// Mean time a worker spends on one request, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_job_duration_ms: Option<f64>,
    /// 95th percentile of one worker's memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_memory_p95: Option<String>,
    /// Estimated memory a worker gains per request, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_growth_per_job: Option<i64>,
    /// 95th percentile of a pod's memory (pacer plus its workers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_memory_p95: Option<String>,
    /// Length of the window these aggregates cover.
    pub window: String,
}

/// The tuner's memory across runs.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TuningState {
    /// Recommendations of the stabilisation window, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub history: Vec<HistoryEntry>,
    /// When the workers or replicas were last lowered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_down_time: Option<Time>,
    /// When the memory limit was last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_memory_change_time: Option<Time>,
    /// Finish time of the newest OOM kill already acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_oom_time: Option<Time>,
    /// When the settings last changed; the tuner waits for the pods to report them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change_time: Option<Time>,
    /// When an OOM kill last raised the memory limit (one raise per episode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_oom_bump_time: Option<Time>,
    /// When maxJobs last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_max_jobs_change_time: Option<Time>,
    /// When maxJobs was last raised (the memory limit waits for the workers to grow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_max_jobs_raise_time: Option<Time>,
    /// When maxWorkerMemory last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_max_worker_memory_change_time: Option<Time>,
    /// When the pool's configuration last changed without a new worker count (which the
    /// pods would report); such a change is awaited for a kubelet sync period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreported_change_time: Option<Time>,
    /// When requests first queued without busier workers (the next round decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_spike_time: Option<Time>,
    /// The running version's workers leak fast, measured past their warm-up: bytes per
    /// job …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fast_leak_bytes_per_job: Option<f64>,
    /// … from this warm size, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fast_leak_warm_bytes: Option<f64>,
    /// The memory limit before the last change, in bytes (pods that still report it have
    /// not been resized yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_memory_limit: Option<i64>,
    /// CPU cores one busy worker uses when the pod is not throttled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_per_busy_worker: Option<f64>,
    /// The usual job time and completion rate (a slow dependency is told from demand by
    /// them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<JobBaseline>,
    /// The model of the pods' peak memory, learned over days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_model: Option<MemoryModel>,
}

/// The usual job time and completion rate of healthy rounds.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobBaseline {
    /// Usual seconds per job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// Usual completions per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_second: Option<f64>,
    /// First round that fed the averages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Time>,
    /// Last round that fed them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<Time>,
    /// Since when the jobs have been slow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_since: Option<Time>,
    /// Since when the jobs have been longer than usual, not yet slow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspect_since: Option<Time>,
    /// When the last slowdown ended (increases wait a little after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered_at: Option<Time>,
}

/// The pods' peak working set against their workers: decayed least-squares sums and a
/// decayed histogram of the residuals (weights relative to `referenceTime`, halving daily).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemoryModel {
    /// The time the weights are relative to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_time: Option<Time>,
    /// Σw, Σw·workers, Σw·MiB, Σw·workers², Σw·workers·MiB.
    #[serde(default)]
    #[schemars(length(max = 5))]
    pub sums: Vec<f64>,
    /// Residual histogram.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128))]
    pub residuals: Vec<ResidualBucket>,
    /// The application versions (images of the PHP container) the model last learned
    /// from: a new one makes the rest fade.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 512)))]
    // tuning::memory::MAX_VERSIONS, MAX_VERSION_LEN
    pub versions: Vec<String>,
    /// The part of the first sum the versions before these left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earlier: Option<f64>,
}

/// One bucket of the residual histogram.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResidualBucket {
    /// Bucket index (2 MiB each, from −2 GiB).
    pub bucket: i32,
    /// Its weight.
    pub weight: f64,
}

/// One past recommendation.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// When it was made.
    pub time: Time,
    /// Recommended workers per pod.
    pub workers: i32,
    /// Recommended pods.
    pub replicas: i32,
}
