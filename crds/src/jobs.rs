//! `PhpAppServer.spec.jobs`: the task pipeline (RoadRunner's `jobs`) of each pod and how
//! the operator sizes its jobs pool from the backlog.
//!
//! As everywhere in the spec, each field's doc comment is what `kubectl explain` shows and
//! the schema (ranges, patterns, CEL rules) refuses bad values with a message naming the
//! field.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::units;

/// Jobs: the pods consume queues (RoadRunner's `jobs` section) with a jobs pool
/// (`RR_MODE=jobs` workers, the same command as the HTTP pool) whose size per pod, and
/// the number of pods, the operator tunes from the backlog: queue depth, jobs acknowledged
/// per second and the jobs workers' utilisation.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.consume) || self.consume.all(c, c in self.pipelines)", "message": "jobs.consume must name pipelines of jobs.pipelines"},
    {"rule": "!self.pipelines.exists(k, self.pipelines[k].driver == 'Amqp') || has(self.amqp)", "message": "jobs.amqp.addr is required when a pipeline uses the Amqp driver"}
]))]
pub struct JobsSpec {
    /// The pipelines, by name (RoadRunner's `jobs.pipelines`). Names: lowercase letters,
    /// digits, `-`, `_`, `.`.
    #[schemars(extend("minProperties" = 1, "maxProperties" = 32))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.all(k, k.matches('^[a-z0-9][a-z0-9_.-]{0,62}$'))", "message": "jobs.pipelines names must be lowercase letters, digits, '-', '_' or '.' (at most 63)"}
    ]))]
    pub pipelines: BTreeMap<String, PipelineSpec>,

    /// Pipelines consumed from the start (RoadRunner's `jobs.consume`). Default: all of
    /// `pipelines`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub consume: Vec<String>,

    /// The RabbitMQ connection (RoadRunner's `amqp` section), required by `Amqp`
    /// pipelines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amqp: Option<AmqpSpec>,

    /// Bounds on the jobs workers of one pod.
    #[serde(default)]
    pub workers: JobsWorkersSpec,

    /// The backlog should be drained within this time: the tuner sizes the jobs workers
    /// (per pod, then pods) so that the measured processing rate clears the queue depth
    /// in it. Default: 2m; between 10s and 24h.
    #[serde(default = "default_drain_time")]
    #[schemars(regex(pattern = units::DURATION_PATTERN), length(max = units::MAX_UNIT_LEN))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "duration(self) >= duration('10s') && duration(self) <= duration('24h')", "message": "jobs.targetDrainTime must be between 10s and 24h"}
    ]))]
    pub target_drain_time: String,

    /// Fraction of the jobs workers that should be busy on average while there is no
    /// backlog to drain. Default: `tuning.targetUtilization`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.1, max = 0.95))]
    pub target_utilization: Option<f64>,

    /// Scale to zero pods while every queue stays empty (for a jobs-only app: nothing
    /// should route HTTP to it). Unset: never fewer than `replicas.min` pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_to_zero: Option<ScaleToZeroSpec>,
}

/// One pipeline (RoadRunner's `jobs.pipelines.<name>`).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.driver != 'Amqp' || has(self.queue)", "message": "jobs.pipelines.*.queue is required with the Amqp driver"}
]))]
pub struct PipelineSpec {
    /// Amqp (RabbitMQ, durable across pods) or Memory (in the pod: lost with it, and
    /// invisible to the other pods; for tests and single pods).
    pub driver: JobsDriver,
    /// The RabbitMQ queue (Amqp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub queue: Option<String>,
    /// The exchange (Amqp). Default: `amqp.default`, as RoadRunner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub exchange: Option<String>,
    /// The routing key (Amqp). Default: the queue's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub routing_key: Option<String>,
    /// Jobs taken from the broker and not yet acknowledged, at most, per pod. Default: 10
    /// (RoadRunner's for Amqp).
    #[serde(default = "default_prefetch")]
    #[schemars(range(min = 1, max = 65535))]
    pub prefetch: i32,
    /// Declare the queue durable (Amqp). Default: false.
    #[serde(default)]
    pub durable: bool,
}

/// A pipeline's broker.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum JobsDriver {
    /// RabbitMQ (`driver: amqp`).
    Amqp,
    /// In the pod's memory (`driver: memory`).
    Memory,
}

/// The RabbitMQ connection.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AmqpSpec {
    /// `amqp://user:password@host:5672/vhost`. It lands in the pods' ConfigMap: write the
    /// password as `${AMQP_PASSWORD}` and set that variable from a Secret in `env`
    /// (pacer expands environment variables in its config).
    #[schemars(regex(pattern = r"^amqps?://[^\s]+$"), length(max = 2048))]
    pub addr: String,
}

/// Bounds on the jobs workers of one pod.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.min <= self.max", "message": "jobs.workers.min must be less than or equal to jobs.workers.max"},
    {"rule": "!has(self.initial) || (self.min <= self.initial && self.initial <= self.max)", "message": "jobs.workers.initial must lie between jobs.workers.min and jobs.workers.max"}
]))]
pub struct JobsWorkersSpec {
    /// Fewest jobs workers per pod. Default: 1.
    #[serde(default = "default_one")]
    #[schemars(range(min = 1, max = 1024))]
    pub min: i32,
    /// Most jobs workers per pod; beyond it the tuner adds pods (within `replicas.max`).
    /// Default: 16.
    #[serde(default = "default_max")]
    #[schemars(range(min = 1, max = 1024))]
    pub max: i32,
    /// Jobs workers per pod before the tuner has measured anything. Default: `min`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1024))]
    pub initial: Option<i32>,
}

impl Default for JobsWorkersSpec {
    fn default() -> Self {
        Self {
            min: 1,
            max: default_max(),
            initial: None,
        }
    }
}

/// Scale to zero: where the queue depth comes from while no pod runs, and how long the
/// queues must stay empty first.
///
/// The depth is a Prometheus query (to `tuning.metrics.prometheusUrl`), not a broker
/// connection from the operator: the operator then needs no broker credentials or network
/// path, and one mechanism serves every broker with an exporter — RabbitMQ's bundled
/// `rabbitmq_prometheus` plugin exports `rabbitmq_queue_messages_ready`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleToZeroSpec {
    /// A PromQL query whose value is the jobs waiting in the broker, e.g.
    /// `sum(rabbitmq_queue_messages_ready{queue="emails"})` (the broker's own exporter:
    /// it answers while no pod runs). Above 0 while at zero pods: one pod starts.
    #[schemars(length(min = 1, max = 4096))]
    pub depth_query: String,
    /// The queues (the query, and every pod's pipelines) must read empty, with no job in
    /// flight, for this long before the pods go to zero. Default: 5m; between 30s and
    /// 24h.
    #[serde(default = "default_idle_for")]
    #[schemars(regex(pattern = units::DURATION_PATTERN), length(max = units::MAX_UNIT_LEN))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "duration(self) >= duration('30s') && duration(self) <= duration('24h')", "message": "jobs.scaleToZero.idleFor must be between 30s and 24h"}
    ]))]
    pub idle_for: String,
}

fn default_one() -> i32 {
    1
}
fn default_max() -> i32 {
    16
}
fn default_prefetch() -> i32 {
    10
}
fn default_drain_time() -> String {
    "2m".to_owned()
}
fn default_idle_for() -> String {
    "5m".to_owned()
}
