//! `PhpAppServer.spec`: what the user asks for.
//!
//! Every field's doc comment is the text `kubectl explain phpappserver.spec.<field>` shows,
//! so it is written for the user, with units and defaults. Defaults are in the schema (the
//! API server fills them in), and the bounds, enums, patterns and cross-field rules
//! (`x-kubernetes-validations`, CEL) make the API server refuse a bad object with a message
//! that names the field.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, PodTemplateSpec};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::status::PhpAppServerStatus;
use crate::units;

/// Desired state of a PHP application served by Pacer.
///
/// The operator turns it into a Deployment whose pods run `pacer serve` (RoadRunner's
/// configuration format), a Service, a ConfigMap holding the generated `rr.yaml` and a
/// PodDisruptionBudget, and then tunes the worker pool from the pods' live metrics.
///
/// The pod is either written in full (`template`, a Deployment's pod template, with
/// `container` naming the PHP container) or, for the simple case, in the short form
/// (`image`, `env`, … — the operator writes the pod).
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "pacer.dev",
    version = "v1alpha2",
    kind = "PhpAppServer",
    plural = "phpappservers",
    singular = "phpappserver",
    shortname = "pas",
    doc = "A PHP application served by Pacer, whose worker pool the operator tunes from live metrics.",
    category = "all",
    namespaced,
    status = "PhpAppServerStatus",
    scale(
        spec_replicas_path = ".spec.replicas.count",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn = r#"{"name":"Replicas","type":"integer","description":"Pods the Deployment has","jsonPath":".status.replicas"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","description":"Pods that are ready","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Workers","type":"integer","description":"PHP workers per pod now configured","jsonPath":".status.current.workers"}"#,
    printcolumn = r#"{"name":"Max Jobs","type":"integer","description":"Jobs a worker serves before it is recycled (0 = unlimited)","jsonPath":".status.current.maxJobs"}"#,
    printcolumn = r#"{"name":"Busy %","type":"integer","description":"Busy workers as a percentage of live workers over the last tuning window","jsonPath":".status.observed.busyPercent"}"#,
    printcolumn = r#"{"name":"Mode","type":"string","priority":1,"description":"Tuning mode","jsonPath":".spec.tuning.mode"}"#,
    printcolumn = r#"{"name":"Memory","type":"string","priority":1,"description":"Memory limit per pod now configured","jsonPath":".status.current.memoryLimit"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.image) != has(self.template)", "message": "set either image (the short form) or template (a full pod template), not both"},
    {"rule": "!has(self.template) || (has(self.template.spec) && self.template.spec.containers.exists(c, c.name == self.container))", "message": "template.spec.containers must have a container named as spec.container (default: app), the PHP container pacer is injected into"},
    {"rule": "!has(self.jobs) || !has(self.jobs.scaleToZero) || has(self.tuning.metrics.prometheusUrl)", "message": "jobs.scaleToZero needs tuning.metrics.prometheusUrl: the queue depth is read from Prometheus while no pod runs"},
    {"rule": "!(has(self.http) && has(self.http.enabled) && !self.http.enabled) || has(self.jobs)", "message": "http.enabled: false makes a jobs-only app: it needs jobs"},
    {"rule": "!has(self.jobs) || !has(self.jobs.scaleToZero) || (has(self.http) && has(self.http.enabled) && !self.http.enabled)", "message": "jobs.scaleToZero needs http.enabled: false: an app that serves HTTP never scales to zero"},
    {"rule": "!has(self.jobs) || !has(self.jobs.scaleToZero) || !(has(self.replicas.count) || self.replicas.external)", "message": "jobs.scaleToZero and an external replica count (replicas.count, replicas.external) exclude each other"},
    {"rule": "!has(self.template) || !(has(self.imagePullPolicy) || has(self.imagePullSecrets) || has(self.workingDir) || has(self.env) || has(self.serviceAccountName) || has(self.runAsUser) || has(self.runAsGroup) || has(self.podLabels) || has(self.podAnnotations) || has(self.nodeSelector))", "message": "with template, say the pod's settings in the template: imagePullPolicy, imagePullSecrets, workingDir, env, serviceAccountName, runAsUser, runAsGroup, podLabels, podAnnotations and nodeSelector are the short form's"}
]))]
pub struct PhpAppServerSpec {
    /// Short form: container image of the PHP application (PHP CLI and the application
    /// code). Set either `image` or `template`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,

    /// Full form: the pod, as a Deployment's pod template. The operator injects pacer
    /// into the container named `container` and owns only what it must there: that
    /// container's command and args (`pacer serve`), its memory and CPU (from
    /// `resources`), the ports it adds (http, metrics, status), the probes it adds where
    /// the container has none, and the config and pacer volumes and mounts; the pod's
    /// pacer init container (first), termination grace period (at least pacer's
    /// shutdown), and the labels and annotations it needs. Security settings the template
    /// leaves unset get restricted defaults (non-root, read-only root file system, no
    /// privilege escalation, all capabilities dropped, RuntimeDefault seccomp); a
    /// writable `/tmp` is mounted unless the container mounts one. Everything else the
    /// template says (volumes, envFrom, other containers and init containers, affinity,
    /// tolerations, topology spread, security context, service account, priority
    /// class, …) passes through untouched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pod_template_schema")]
    pub template: Option<PodTemplateSpec>,

    /// Name of the PHP container: in `template`, the container pacer is injected into (it
    /// must be there); in the short form, the name of the container the operator
    /// writes. Default: `app`.
    #[serde(default = "default_container")]
    #[schemars(length(min = 1, max = 63))]
    pub container: String,

    /// Stop reconciling: the operator writes nothing to the owned objects and does not
    /// tune, so the pods keep the settings in force; it still reports status. The
    /// annotation `pacer.dev/paused: "true"` does the same. Default: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,

    /// Short form: pull policy for `image`: Always, IfNotPresent or Never. Default: the
    /// Kubernetes default for the image's tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,

    /// Short form: names of Secrets in this namespace used to pull `image` and the
    /// sidecar image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub image_pull_secrets: Vec<String>,

    /// The PHP worker command, e.g. `["php", "worker.php"]`. Written to `server.command` of
    /// the generated `rr.yaml`; pacer starts one process per worker with it.
    #[schemars(length(min = 1, max = 64))]
    pub command: Vec<String>,

    /// Short form: working directory of the app container and of the PHP workers.
    /// Default: the image's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub working_dir: Option<String>,

    /// Short form: environment of the app container; PHP workers inherit it. Same syntax
    /// as a container's `env` (values, or `valueFrom` a Secret, ConfigMap or field).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub env: Vec<EnvVar>,

    /// Pod count: fixed when `min` equals `max`, otherwise the tuner adds pods once the
    /// workers per pod have reached `pool.workers.max`.
    #[serde(default)]
    pub replicas: ReplicasSpec,

    /// The HTTP server of each pod.
    #[serde(default)]
    pub http: HttpSpec,

    /// The PHP worker pool of each pod (RoadRunner's `http.pool`).
    #[serde(default)]
    pub pool: PoolSpec,

    /// The task pipeline: queues the pods consume with a jobs pool the operator sizes
    /// from the backlog. Unset: no jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<crate::jobs::JobsSpec>,

    /// CPU and memory of the app container.
    #[serde(default)]
    pub resources: ResourcesSpec,

    /// How the operator tunes the pool from live metrics.
    #[serde(default)]
    pub tuning: TuningSpec,

    /// How the `pacer` binary gets into the pod.
    #[serde(default)]
    pub sidecar: SidecarSpec,

    /// Graceful shutdown of each pod (pacer's `pacer.shutdown`). The pod's termination
    /// grace period is set to `delay + gracePeriod + 5s`.
    #[serde(default)]
    pub shutdown: ShutdownSpec,

    /// Pods that may be unavailable at once during voluntary disruptions (node drains).
    /// Written to the PodDisruptionBudget. Default: 1.
    #[serde(default = "default_max_unavailable")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_unavailable: i32,

    /// Short form: service account the pods run as. Default: the namespace's `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub service_account_name: Option<String>,

    /// Short form: user id the containers run as. Pods always run as non-root; set this
    /// when the image's own user is root or not numeric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub run_as_user: Option<i64>,

    /// Short form: group id the containers run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub run_as_group: Option<i64>,

    /// Short form: extra labels for the pods (the operator's own labels win on
    /// conflict).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_labels: BTreeMap<String, String>,

    /// Short form: extra annotations for the pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_annotations: BTreeMap<String, String>,

    /// Short form: node labels the pods must match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
}

fn default_max_unavailable() -> i32 {
    1
}

fn default_container() -> String {
    "app".to_owned()
}

/// Kubernetes' own schema of a pod template, with `metadata` as the API server expects an
/// embedded object's metadata (only labels and annotations are kept).
fn pod_template_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = generator.subschema_for::<PodTemplateSpec>();
    if let Some(props) = schema
        .as_object_mut()
        .and_then(|o| o.get_mut("properties"))
        .and_then(|p| p.as_object_mut())
    {
        props.insert(
            "metadata".to_owned(),
            serde_json::json!({
                "description": "Labels and annotations of the pods (the operator's own labels and annotations win on conflict).",
                "type": "object",
                "properties": {
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "annotations": {"type": "object", "additionalProperties": {"type": "string"}}
                }
            }),
        );
    }
    schema
}

/// Image pull policy.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ImagePullPolicy {
    /// Pull on every pod start.
    Always,
    /// Pull when the node does not have the image.
    IfNotPresent,
    /// Never pull; the image must be on the node.
    Never,
}

impl ImagePullPolicy {
    /// The value Kubernetes expects.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

/// Bounds on the number of pods.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.min <= self.max", "message": "replicas.min must be less than or equal to replicas.max"}
]))]
pub struct ReplicasSpec {
    /// Fewest pods. Default: 1.
    #[serde(default = "default_one")]
    #[schemars(range(min = 1, max = 1000))]
    pub min: i32,
    /// Most pods. Default: 1.
    #[serde(default = "default_one")]
    #[schemars(range(min = 1, max = 1000))]
    pub max: i32,
    /// Pods, as set through the `/scale` subresource (an HPA or a KEDA ScaledObject
    /// that targets this PhpAppServer, or `kubectl scale`). While set, the pods are this
    /// many and the tuner leaves their number alone (it still tunes workers per pod);
    /// unset, the tuner picks pods within `min`..`max`. An autoscaler needs a starting
    /// value here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10000))]
    pub count: Option<i32>,
    /// Leave the Deployment's replica count to someone else: the operator then never
    /// writes it. Not needed for an HPA or KEDA ScaledObject in the same namespace that
    /// targets the PhpAppServer or its Deployment: the operator sees them itself and
    /// reports the `ExternalReplicas` condition. Default: false.
    #[serde(default)]
    pub external: bool,
}

impl Default for ReplicasSpec {
    fn default() -> Self {
        Self {
            min: 1,
            max: 1,
            count: None,
            external: false,
        }
    }
}

fn default_one() -> i32 {
    1
}

/// The HTTP server of each pod.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpSpec {
    /// Serve HTTP. `false` makes a jobs-only app (it needs `jobs`): pacer runs no HTTP
    /// server and no HTTP pool (health and metrics are still served), the Service
    /// exposes only the metrics port, and `jobs.scaleToZero` becomes possible. Default:
    /// true.
    #[serde(default = "default_true")]
    pub enabled: bool,

    /// Container port pacer's HTTP server listens on (`http.address`). Default: 8080.
    #[serde(default = "default_http_port")]
    #[schemars(range(min = 1024, max = 65535))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self != 2112 && self != 2114", "message": "http.port must not be 2112 (metrics) or 2114 (status)"}
    ]))]
    pub port: i32,

    /// Largest request body accepted, in megabytes (`http.max_request_size`). Default: 100.
    #[serde(default = "default_max_request_size")]
    #[schemars(range(min = 1, max = 10240))]
    pub max_request_size: i32,

    /// Directory served as static files by pacer (never `.php` files). Unset: no static
    /// files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub static_dir: Option<String>,

    /// Port of the Service in front of the pods. Default: 80.
    #[serde(default = "default_service_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub service_port: i32,
}

impl Default for HttpSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            port: default_http_port(),
            max_request_size: default_max_request_size(),
            static_dir: None,
            service_port: default_service_port(),
        }
    }
}

fn default_http_port() -> i32 {
    8080
}
fn default_max_request_size() -> i32 {
    100
}
fn default_service_port() -> i32 {
    80
}

/// The worker pool of each pod. Durations are Go-style (`30s`, `1m30s`, `0s`).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolSpec {
    /// Workers per pod: the tuner stays within these bounds.
    #[serde(default)]
    pub workers: WorkersSpec,

    /// Jobs a worker serves before it is replaced (`max_jobs`, RoadRunner's guard against
    /// leaks): a number (0 = never) or `auto` (default), which starts at 500 and is then
    /// derived from the measured memory growth per job.
    #[serde(default)]
    pub max_jobs: MaxJobs,

    /// Longest a single request may run before the worker is killed and the client gets
    /// 504 (`supervisor.exec_ttl`). `0s` disables it. Default: 30s.
    #[serde(default = "default_exec_timeout")]
    #[schemars(regex(pattern = units::DURATION_PATTERN), length(max = units::MAX_UNIT_LEN))]
    pub exec_timeout: String,

    /// How long a request waits for a free worker before the client gets 503
    /// (`allocate_timeout`). Must be positive. Default: 60s.
    #[serde(default = "default_allocate_timeout")]
    #[schemars(regex(pattern = units::DURATION_PATTERN), length(max = units::MAX_UNIT_LEN))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "duration(self) > duration('0s')", "message": "pool.allocateTimeout must be a positive duration"}
    ]))]
    pub allocate_timeout: String,

    /// How long a stopping worker may take to exit before it is killed
    /// (`destroy_timeout`). Must be positive. Default: 30s.
    #[serde(default = "default_destroy_timeout")]
    #[schemars(regex(pattern = units::DURATION_PATTERN), length(max = units::MAX_UNIT_LEN))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "duration(self) > duration('0s')", "message": "pool.destroyTimeout must be a positive duration"}
    ]))]
    pub destroy_timeout: String,

    /// Longest a worker lives (`supervisor.ttl`); `0s` = forever. Default: 0s.
    #[serde(default = "default_zero_duration")]
    #[schemars(regex(pattern = units::DURATION_PATTERN), length(max = units::MAX_UNIT_LEN))]
    pub ttl: String,

    /// Longest a worker may stay idle before it is replaced (`supervisor.idle_ttl`);
    /// `0s` = forever. Default: 0s.
    #[serde(default = "default_zero_duration")]
    #[schemars(regex(pattern = units::DURATION_PATTERN), length(max = units::MAX_UNIT_LEN))]
    pub idle_ttl: String,

    /// Memory a worker may use before it is recycled between jobs
    /// (`supervisor.max_worker_memory`): a quantity (e.g. `128Mi`) or `auto` (default),
    /// which starts at 128Mi and is then derived from the measured worker memory.
    #[serde(default = "default_auto")]
    #[schemars(regex(pattern = units::MEMORY_OR_AUTO_PATTERN), length(max = units::MAX_UNIT_LEN))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self == 'auto' || quantity(self).compareTo(quantity('1Mi')) >= 0", "message": "pool.maxWorkerMemory must be auto or at least 1Mi"}
    ]))]
    pub max_worker_memory: String,
}

impl Default for PoolSpec {
    fn default() -> Self {
        Self {
            workers: WorkersSpec::default(),
            max_jobs: MaxJobs::default(),
            exec_timeout: default_exec_timeout(),
            allocate_timeout: default_allocate_timeout(),
            destroy_timeout: default_destroy_timeout(),
            ttl: default_zero_duration(),
            idle_ttl: default_zero_duration(),
            max_worker_memory: default_auto(),
        }
    }
}

fn default_exec_timeout() -> String {
    "30s".to_owned()
}
fn default_allocate_timeout() -> String {
    "60s".to_owned()
}
fn default_destroy_timeout() -> String {
    "30s".to_owned()
}
fn default_zero_duration() -> String {
    "0s".to_owned()
}
fn default_auto() -> String {
    "auto".to_owned()
}

/// Bounds on the PHP workers of one pod.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.min <= self.max", "message": "pool.workers.min must be less than or equal to pool.workers.max"},
    {"rule": "!has(self.initial) || (self.min <= self.initial && self.initial <= self.max)", "message": "pool.workers.initial must lie between pool.workers.min and pool.workers.max"}
]))]
pub struct WorkersSpec {
    /// Fewest workers per pod; the tuner never goes below. Default: 1.
    #[serde(default = "default_one")]
    #[schemars(range(min = 1, max = 1024))]
    pub min: i32,
    /// Most workers per pod; beyond it the tuner adds pods (within `replicas.max`).
    /// Default: 16.
    #[serde(default = "default_workers_max")]
    #[schemars(range(min = 1, max = 1024))]
    pub max: i32,
    /// Workers per pod before the tuner has measured anything (and with `tuning.mode`
    /// Off from the start). Default: `min`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1024))]
    pub initial: Option<i32>,
}

impl Default for WorkersSpec {
    fn default() -> Self {
        Self {
            min: 1,
            max: default_workers_max(),
            initial: None,
        }
    }
}

fn default_workers_max() -> i32 {
    16
}

/// `maxJobs`: a fixed number of jobs per worker (0 = unlimited) or `auto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MaxJobs {
    /// Derived by the tuner from the memory growth per job.
    #[default]
    Auto,
    /// A fixed value; 0 means a worker is never recycled for its job count.
    Fixed(u64),
}

impl Serialize for MaxJobs {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Auto => serializer.serialize_str("auto"),
            Self::Fixed(n) => serializer.serialize_u64(*n),
        }
    }
}

impl<'de> Deserialize<'de> for MaxJobs {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(n) => Ok(Self::Fixed(n)),
            Raw::Text(text) if text == "auto" => Ok(Self::Auto),
            Raw::Text(text) => text.parse().map(Self::Fixed).map_err(|_| {
                serde::de::Error::custom(format!(
                    "maxJobs must be a non-negative number or \"auto\", not {text:?}"
                ))
            }),
        }
    }
}

impl JsonSchema for MaxJobs {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "MaxJobs".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "x-kubernetes-int-or-string": true,
            // Explicit, so that kube's optional-int-or-string rewrite leaves it alone: a
            // null here would pass the schema and then fail to parse.
            "nullable": false,
            "x-kubernetes-validations": [{
                "rule": "type(self) == int ? self >= 0 : self == 'auto'",
                "message": "pool.maxJobs must be a non-negative number or \"auto\""
            }]
        })
    }
}

/// CPU and memory of the app container (the PHP workers and pacer share it).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResourcesSpec {
    /// CPU request and limit.
    #[serde(default)]
    pub cpu: CpuSpec,
    /// Memory request and limit; with `limit: auto` the tuner sizes the limit between `min`
    /// and `max`.
    #[serde(default)]
    pub memory: MemorySpec,
}

/// CPU of the app container.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.limit) || quantity(self.request).compareTo(quantity(self.limit)) <= 0", "message": "resources.cpu.request must not exceed resources.cpu.limit"}
]))]
pub struct CpuSpec {
    /// CPU request (e.g. `500m`, `2`). Default: 250m.
    #[serde(default = "default_cpu_request")]
    #[schemars(regex(pattern = units::CPU_PATTERN), length(max = units::MAX_UNIT_LEN))]
    pub request: String,
    /// CPU limit. Unset (recommended for latency): no CPU limit. With a limit, the tuner keeps
    /// workers per pod within what it can run: limit × 1.25 ÷ the CPU one busy worker uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = units::CPU_PATTERN), length(max = units::MAX_UNIT_LEN))]
    pub limit: Option<String>,
}

impl Default for CpuSpec {
    fn default() -> Self {
        Self {
            request: default_cpu_request(),
            limit: None,
        }
    }
}

fn default_cpu_request() -> String {
    "250m".to_owned()
}

/// Memory of the app container.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "quantity(self.min).compareTo(quantity(self.max)) <= 0", "message": "resources.memory.min must be less than or equal to resources.memory.max"},
    {"rule": "self.limit == 'auto' || (quantity(self.min).compareTo(quantity(self.limit)) <= 0 && quantity(self.limit).compareTo(quantity(self.max)) <= 0)", "message": "resources.memory.limit must be auto or lie between resources.memory.min and resources.memory.max"}
]))]
pub struct MemorySpec {
    /// Memory limit of the app container: a quantity, or `auto` (default) to let the tuner
    /// size it (p95 of the pods' peak memory plus 15 %, raised after an OOM kill). `auto`
    /// starts at `max`.
    #[serde(default = "default_auto")]
    #[schemars(regex(pattern = units::MEMORY_OR_AUTO_PATTERN), length(max = units::MAX_UNIT_LEN))]
    pub limit: String,
    /// Smallest limit `auto` may choose. Default: 128Mi. (The memory request always equals
    /// the limit: a PHP pool's memory is not elastic.)
    #[serde(default = "default_memory_min")]
    #[schemars(regex(pattern = units::MEMORY_PATTERN), length(max = units::MAX_UNIT_LEN))]
    pub min: String,
    /// Largest limit `auto` may choose. Default: 1Gi.
    #[serde(default = "default_memory_max")]
    #[schemars(regex(pattern = units::MEMORY_PATTERN), length(max = units::MAX_UNIT_LEN))]
    pub max: String,
}

impl Default for MemorySpec {
    fn default() -> Self {
        Self {
            limit: default_auto(),
            min: default_memory_min(),
            max: default_memory_max(),
        }
    }
}

fn default_memory_min() -> String {
    "128Mi".to_owned()
}
fn default_memory_max() -> String {
    "1Gi".to_owned()
}

/// How the operator tunes the pool.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TuningSpec {
    /// Auto: apply the tuner's decisions. Recommend: only write them to
    /// `status.recommendation`. Off: read no metrics and change nothing — the pods keep
    /// the settings in force (`status.current`, kept within the spec's bounds).
    /// Default: Auto. In YAML write `"Off"` quoted: YAML 1.1 (kubectl, helm) reads a plain
    /// Off as `false`.
    #[serde(default)]
    pub mode: TuningMode,

    /// Fraction of the workers that should be busy on average; the tuner sizes the pool so
    /// that the measured load fills this share of it. Default: 0.7.
    #[serde(default = "default_target_utilization")]
    #[schemars(range(min = 0.1, max = 0.95))]
    pub target_utilization: f64,

    /// How often the tuner reads metrics and decides. Default: 30s; at least 5s.
    #[serde(default = "default_interval")]
    #[schemars(regex(pattern = units::DURATION_PATTERN), length(max = units::MAX_UNIT_LEN))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "duration(self) >= duration('5s') && duration(self) <= duration('1h')", "message": "tuning.interval must be between 5s and 1h"}
    ]))]
    pub interval: String,

    /// Scale-down stabilisation: the pool is never made smaller than the largest
    /// recommendation of this last period. Scale-up is immediate. Default: 5m.
    #[serde(default = "default_stabilization_window")]
    #[schemars(regex(pattern = units::DURATION_PATTERN), length(max = units::MAX_UNIT_LEN))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "duration(self) <= duration('1h')", "message": "tuning.stabilizationWindow must be at most 1h"}
    ]))]
    pub stabilization_window: String,

    /// Where the metrics come from.
    #[serde(default)]
    pub metrics: MetricsSpec,
}

impl Default for TuningSpec {
    fn default() -> Self {
        Self {
            mode: TuningMode::default(),
            target_utilization: default_target_utilization(),
            interval: default_interval(),
            stabilization_window: default_stabilization_window(),
            metrics: MetricsSpec::default(),
        }
    }
}

fn default_target_utilization() -> f64 {
    0.7
}
fn default_interval() -> String {
    "30s".to_owned()
}
fn default_stabilization_window() -> String {
    "5m".to_owned()
}

/// Tuning mode.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum TuningMode {
    /// Apply the tuner's decisions.
    #[default]
    Auto,
    /// Write decisions to `status.recommendation` only.
    Recommend,
    /// No tuning; no metrics are read; the settings in force stay.
    Off,
}

/// Metrics source of the tuner.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.source != 'Prometheus' || has(self.prometheusUrl)", "message": "tuning.metrics.prometheusUrl is required when tuning.metrics.source is Prometheus"}
]))]
pub struct MetricsSpec {
    /// Direct (default): the operator scrapes each pod's pacer metrics endpoint (port
    /// 2112). Prometheus: PromQL queries to `prometheusUrl`; the series must carry
    /// `namespace` and `pod` labels, as Kubernetes service discovery adds them.
    #[serde(default)]
    pub source: MetricsSourceKind,
    /// Base URL of the Prometheus HTTP API, e.g. `http://prometheus.monitoring:9090`. It
    /// must be among the URLs the operator allows (its `--prometheus-allowed-urls`, the
    /// chart's `prometheus.allowedUrls`): the operator never queries anything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[^\s]+$"), length(max = 2048))]
    pub prometheus_url: Option<String>,
    /// A bearer token for `prometheusUrl` (sent as `Authorization: Bearer`), from a key of
    /// a Secret in this namespace. The operator must be allowed to read Secrets there (the
    /// chart's `prometheus.readSecrets`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_secret: Option<SecretKeyRef>,
}

/// A key of a Secret in the PhpAppServer's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key whose value is used.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Metrics source kind.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum MetricsSourceKind {
    /// Scrape the pods directly.
    #[default]
    Direct,
    /// Query a Prometheus server.
    Prometheus,
}

/// How the `pacer` binary gets into the pod.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SidecarSpec {
    /// The Pacer image an init container copies the static `pacer` binary from. Default:
    /// the image the operator was configured with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,
    /// true (default): inject pacer with an init container into an emptyDir at `/pacer`.
    /// false: the app image already has `pacer` at `/usr/local/bin/pacer`
    /// (`COPY --from=` the Pacer image).
    #[serde(default = "default_true")]
    pub inject: bool,
}

impl Default for SidecarSpec {
    fn default() -> Self {
        Self {
            image: None,
            inject: true,
        }
    }
}

fn default_true() -> bool {
    true
}

/// Graceful shutdown of each pod.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShutdownSpec {
    /// After SIGTERM pacer reports not-ready but keeps serving this long, so that endpoints
    /// stop sending traffic first. Default: 5s.
    #[serde(default = "default_shutdown_delay")]
    #[schemars(regex(pattern = units::DURATION_PATTERN), length(max = units::MAX_UNIT_LEN))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "duration(self) <= duration('5m')", "message": "shutdown.delay must be at most 5m"}
    ]))]
    pub delay: String,
    /// Then in-flight requests get this long to finish. Default: 30s.
    #[serde(default = "default_grace_period")]
    #[schemars(regex(pattern = units::DURATION_PATTERN), length(max = units::MAX_UNIT_LEN))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "duration(self) > duration('0s') && duration(self) <= duration('1h')", "message": "shutdown.gracePeriod must be positive and at most 1h"}
    ]))]
    pub grace_period: String,
}

impl Default for ShutdownSpec {
    fn default() -> Self {
        Self {
            delay: default_shutdown_delay(),
            grace_period: default_grace_period(),
        }
    }
}

fn default_shutdown_delay() -> String {
    "5s".to_owned()
}
fn default_grace_period() -> String {
    "30s".to_owned()
}
