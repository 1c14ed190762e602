//! The file as serde sees it: which keys exist at which level. Every leaf stays a YAML
//! value so that `convert.rs` can apply RoadRunner's weak typing and name the key in its
//! errors; keys not listed here are reported by `serde_ignored` as unknown. Keys that
//! RoadRunner knows but pacer does not implement are listed too, so they get a precise
//! warning instead of "unknown key". The meaning and default of each key is documented
//! on the typed field in `types.rs`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_yaml::Value;

type V = Option<Value>;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RootRaw {
    pub version: V,
    pub include: V,
    pub rpc: Option<RpcRaw>,
    pub server: Option<ServerRaw>,
    pub http: Option<HttpRaw>,
    pub status: Option<StatusRaw>,
    pub metrics: Option<MetricsRaw>,
    pub logs: Option<LogsRaw>,
    pub reload: Option<ReloadRaw>,
    pub endure: Option<EndureRaw>,
    pub otel: Option<OtelRaw>,
    pub pacer: Option<PacerRaw>,
    pub jobs: Option<super::jobs::JobsRaw>,
    pub amqp: Option<super::jobs::BrokerRaw>,
    pub beanstalk: Option<super::jobs::BrokerRaw>,
    pub nats: Option<super::jobs::BrokerRaw>,
    pub service: Option<BTreeMap<String, super::service::ServiceRaw>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RpcRaw {
    pub listen: V,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ServerRaw {
    pub command: V,
    pub env: V,
    pub relay: V,
    pub user: V,
    pub group: V,
    /// Not implemented.
    pub on_init: V,
    /// Obsolete since RoadRunner 2.x; still seen in configs.
    pub relay_timeout: V,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct HttpRaw {
    pub address: V,
    pub max_request_size: V,
    pub internal_error_code: V,
    pub access_logs: V,
    pub raw_body: V,
    pub middleware: V,
    pub trusted_subnets: V,
    pub uploads: Option<UploadsRaw>,
    #[serde(rename = "static")]
    pub static_files: Option<StaticRaw>,
    pub headers: Option<HeadersRaw>,
    pub sendfile: Option<SendfileRaw>,
    pub ssl: Option<SslRaw>,
    pub http2: Option<Http2Raw>,
    pub pool: Option<PoolRaw>,
    /// Not implemented.
    pub fcgi: V,
    pub http3: V,
    pub trusted_headers: V,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct UploadsRaw {
    pub dir: V,
    pub forbid: V,
    pub allow: V,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct StaticRaw {
    pub dir: V,
    pub forbid: V,
    pub allow: V,
    pub calculate_etag: V,
    pub weak: V,
    pub request: V,
    pub response: V,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct HeadersRaw {
    pub cors: Option<CorsRaw>,
    pub request: V,
    pub response: V,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct CorsRaw {
    pub allowed_origin: V,
    pub allowed_origin_regex: V,
    pub allowed_headers: V,
    pub allowed_methods: V,
    pub allow_credentials: V,
    pub exposed_headers: V,
    pub max_age: V,
    pub options_success_status: V,
    pub debug: V,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct SslRaw {
    pub address: V,
    pub redirect: V,
    pub cert: V,
    pub key: V,
    pub root_ca: V,
    /// `rootCa` in old samples (keys are lower-cased before parsing).
    pub rootca: V,
    /// Not implemented.
    pub client_auth_type: V,
    pub acme: V,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Http2Raw {
    pub h2c: V,
    pub max_concurrent_streams: V,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PoolRaw {
    pub debug: V,
    pub command: V,
    pub num_workers: V,
    pub max_jobs: V,
    pub max_queue_size: V,
    pub allocate_timeout: V,
    pub destroy_timeout: V,
    pub reset_timeout: V,
    pub stream_timeout: V,
    pub supervisor: Option<SupervisorRaw>,
    /// Accepted, not implemented: pacer scales through the operator.
    pub dynamic_allocator: V,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct SupervisorRaw {
    pub watch_tick: V,
    pub ttl: V,
    pub idle_ttl: V,
    pub max_worker_memory: V,
    pub exec_ttl: V,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct StatusRaw {
    pub address: V,
    pub unavailable_status_code: V,
    pub check_timeout: V,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct MetricsRaw {
    pub address: V,
    pub collect: Option<BTreeMap<String, CollectorRaw>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct CollectorRaw {
    #[serde(rename = "type")]
    pub kind: V,
    pub help: V,
    pub namespace: V,
    pub subsystem: V,
    pub labels: V,
    pub buckets: V,
    pub objectives: V,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct LogsRaw {
    pub mode: V,
    pub level: V,
    pub encoding: V,
    pub output: V,
    pub err_output: V,
    /// zap's own spelling, `errorOutput` (keys are lower-cased before parsing).
    pub erroroutput: V,
    /// Not implemented.
    pub line_ending: V,
    pub format: V,
    pub file_logger_options: V,
    pub channels: Option<BTreeMap<String, ChannelRaw>>,
}

/// A `logs.channels.<name>` entry: the same keys as `logs`, of which pacer uses the level.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ChannelRaw {
    pub mode: V,
    pub level: V,
    pub encoding: V,
    pub output: V,
    pub err_output: V,
    pub erroroutput: V,
    pub line_ending: V,
    pub format: V,
    pub file_logger_options: V,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ReloadRaw {
    pub interval: V,
    pub patterns: V,
    pub services: Option<BTreeMap<String, ReloadServiceRaw>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ReloadServiceRaw {
    pub dirs: V,
    pub recursive: V,
    pub ignore: V,
    pub patterns: V,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct EndureRaw {
    pub grace_period: V,
    /// Not implemented.
    pub log_level: V,
    pub watchdog_sec: V,
    pub print_graph: V,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PacerRaw {
    pub shutdown: Option<ShutdownRaw>,
    pub runtime: Option<RuntimeRaw>,
    pub http: Option<PacerHttpRaw>,
    pub readiness: Option<ReadinessRaw>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct SendfileRaw {
    pub roots: V,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ReadinessRaw {
    pub mode: V,
    pub queue_high: V,
    pub queue_low: V,
    pub high_for: V,
    pub low_for: V,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PacerHttpRaw {
    pub header_read_timeout: V,
    pub max_requests_per_connection: V,
    pub max_header_count: V,
    pub max_header_bytes: V,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ShutdownRaw {
    pub delay: V,
    pub grace_period: V,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RuntimeRaw {
    pub threads: V,
    pub shards: V,
    pub pin: V,
}

/// RoadRunner's `otel` plugin section (its `config.go`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct OtelRaw {
    pub resource: Option<OtelResourceRaw>,
    pub insecure: V,
    pub compress: V,
    pub exporter: V,
    pub custom_url: V,
    pub client: V,
    pub endpoint: V,
    /// Deprecated in RoadRunner for `resource.service_name`.
    pub service_name: V,
    /// Deprecated in RoadRunner for `resource.service_version`.
    pub service_version: V,
    pub headers: V,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct OtelResourceRaw {
    pub service_name: V,
    pub service_namespace: V,
    pub service_instance_id: V,
    pub service_version: V,
}
