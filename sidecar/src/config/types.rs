//! The typed configuration. Each field says which key it comes from, its default and
//! why. Everything here is already checked: code that holds a `Config` never parses or
//! validates again.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use crate::pool::PoolSettings;
use crate::relay::socket::RelayAddr;
use crate::worker::ProcessSpec;

/// A whole `.rr.yaml`, parsed and defaulted.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// `version`: `"3"`, or `"2.7"` (accepted with a warning, read as 3, like RoadRunner).
    pub version: String,
    /// Where workers run and relative paths start: the config file's directory, or `-w`
    /// (itself relative to that directory). RoadRunner changes into these directories;
    /// `pacer serve` should too, so relative unix socket paths (kept relative, because a
    /// socket path is limited to 107 bytes) mean the same to pacer and to PHP.
    pub workdir: PathBuf,
    pub server: ServerConfig,
    /// `http`; `None` when the section is absent.
    pub http: Option<HttpConfig>,
    /// `rpc`; `None` when absent: no RPC listener and no `RR_RPC` for workers, like RR.
    pub rpc: Option<RpcConfig>,
    /// `status`; `None` when absent: no health/readiness listener.
    pub status: Option<StatusConfig>,
    /// `metrics`; `None` when absent: no Prometheus listener.
    pub metrics: Option<MetricsConfig>,
    /// `logs`; always present (defaults when the section is absent).
    pub logs: LogsConfig,
    /// `reload`; `None` when absent: no file watching.
    pub reload: Option<ReloadConfig>,
    /// `otel`; `None` when absent or when `otel` is not in `http.middleware` (as in
    /// RoadRunner, the section alone traces nothing): no tracing, no exporter.
    pub otel: Option<OtelConfig>,
    /// `pacer`: settings RoadRunner does not have.
    pub pacer: PacerConfig,
    /// `jobs` (with the broker sections its pipelines use); `None` when absent.
    pub jobs: Option<super::jobs::JobsConfig>,
    /// `service`: supervised side processes, by name.
    pub services: Vec<super::service::ServiceConfig>,
    /// Top-level sections pacer does not know (warned about), kept as written (after
    /// substitution and overrides) for plugins that claim them ([`crate::plugin`]).
    pub sections: BTreeMap<String, serde_yaml::Value>,
    /// Variables read from the dotenv file that were not already in pacer's environment.
    /// RoadRunner puts them into its own environment, so its workers inherit them; pacer
    /// adds them to the workers' environment instead (see [`Config::process_spec`]).
    /// Not part of the effective config (they are often secrets).
    pub dotenv: Vec<(String, String)>,
}

impl Config {
    /// How to start a worker of the `http` pool: `http.pool.command` or
    /// `server.command`, the dotenv variables then `server.env`, the working directory
    /// and the user/group.
    pub fn process_spec(&self) -> ProcessSpec {
        self.process_spec_with(self.http.as_ref().and_then(|h| h.pool.command.as_ref()))
    }

    /// How to start a worker of the `jobs` pool: `jobs.pool.command` or `server.command`,
    /// otherwise as [`Config::process_spec`].
    pub fn jobs_process_spec(&self) -> ProcessSpec {
        self.process_spec_with(self.jobs.as_ref().and_then(|j| j.pool.command.as_ref()))
    }

    fn process_spec_with(&self, pool_command: Option<&Vec<String>>) -> ProcessSpec {
        let command = pool_command
            .cloned()
            .unwrap_or_else(|| self.server.command.clone());
        let env = self
            .dotenv
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(
                self.server
                    .env
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect();
        ProcessSpec {
            command,
            env,
            cwd: Some(self.workdir.clone()),
            uid: self.server.uid,
            gid: self.server.gid,
        }
    }
}

/// `server`: how workers are started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// `server.command` (required): a string split on plain spaces (no shell, no
    /// quoting, like RoadRunner) — or at commas when a comma comes before any space
    /// (RoadRunner's list syntax, `php,/app/worker.php`, which Laravel Octane uses) — or
    /// a list used verbatim.
    pub command: Vec<String>,
    /// `server.env`: added to every worker's environment. Keys upper-cased and values
    /// env-expanded, like RoadRunner.
    pub env: BTreeMap<String, String>,
    /// `server.relay`: `pipes` (default, RR's), `tcp://host:port` (`localhost` read as
    /// 127.0.0.1) or `unix:///path`.
    pub relay: RelayAddr,
    /// `server.user` as written (a name or a numeric uid); `None` = pacer's own user.
    pub user: Option<String>,
    /// `server.group` as written (a name or a numeric gid).
    pub group: Option<String>,
    /// The uid `user` resolves to through `/etc/passwd` (numeric ids need no entry).
    pub uid: Option<u32>,
    /// The gid: `group` through `/etc/group`, else the user's primary group (which is
    /// what RoadRunner uses; it ignores `group`).
    pub gid: Option<u32>,
}

/// `http`: the HTTP server and its worker pool.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpConfig {
    /// `http.address`: plain HTTP listener. Required unless `http.ssl` is configured
    /// (RoadRunner also allows HTTPS-only servers). `:8080` = every interface.
    pub address: Option<SocketAddr>,
    /// `http.max_request_size` in MB (MiB), here in bytes. Default and `0`: 1000 MB,
    /// RoadRunner's default; bigger bodies get 413.
    pub max_request_size: u64,
    /// `http.internal_error_code`: status for worker errors. Default 500 (RR's).
    pub internal_error_code: u16,
    /// `http.access_logs`: one log line per request. Default false (RR's).
    pub access_logs: bool,
    /// `http.raw_body`: send url-encoded and multipart bodies to PHP unparsed. Default
    /// false (RR's).
    pub raw_body: bool,
    /// `http.middleware`, in the order written, limited to what pacer implements (others
    /// are dropped with a warning). In RoadRunner v2025.1 each listed middleware wraps
    /// the previous ones, so the **last** is the outermost.
    pub middleware: Vec<Middleware>,
    /// `http.trusted_subnets`: peers whose `X-Forwarded-For`/`X-Real-IP`/`Forwarded`
    /// headers `proxy_ip_parser` believes. Default: RoadRunner's list of private,
    /// loopback and link-local ranges ([`DEFAULT_TRUSTED_SUBNETS`]).
    pub trusted_subnets: Vec<IpNet>,
    /// `http.uploads`.
    pub uploads: UploadsConfig,
    /// `http.static`, present only when it is configured **and** `static` is in
    /// `middleware` (RoadRunner's static plugin is a middleware: configured but not
    /// listed means not served; a warning says so).
    pub static_files: Option<StaticConfig>,
    /// `http.sendfile` (pacer's; RoadRunner's `sendfile` middleware has no settings and
    /// serves any path): the directories an `X-Sendfile` response may name a file
    /// under. Required when `sendfile` is in `http.middleware`.
    pub sendfile: Option<SendfileConfig>,
    /// `http.headers`, present only when configured and `headers` is in `middleware`.
    pub headers: Option<HeadersConfig>,
    /// `http.ssl`: an HTTPS listener beside (or instead of) `address`.
    pub ssl: Option<SslConfig>,
    /// `http.http2`.
    pub http2: Http2Config,
    /// `http.pool`.
    pub pool: PoolConfig,
}

/// RoadRunner's default `trusted_subnets` (`http@v5 config`).
pub const DEFAULT_TRUSTED_SUBNETS: [&str; 10] = [
    "10.0.0.0/8",
    "100.64.0.0/10",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "127.0.0.0/8",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
];

/// The HTTP middleware pacer implements, by their RoadRunner names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Middleware {
    /// `static`: files from `http.static.dir`.
    Static,
    /// `gzip`: response compression.
    Gzip,
    /// `headers`: CORS and fixed request/response headers from `http.headers`.
    Headers,
    /// `http_metrics`: request metrics.
    HttpMetrics,
    /// `proxy_ip_parser`: client IP from proxy headers of `trusted_subnets` peers.
    ProxyIpParser,
    /// `sendfile`: a response's `X-Sendfile` file, streamed by pacer from under
    /// `http.sendfile.roots`.
    Sendfile,
    /// `otel`: OpenTelemetry spans of each request, exported as the `otel` section says.
    Otel,
}

impl Middleware {
    pub const ALL: [Middleware; 7] = [
        Middleware::Static,
        Middleware::Gzip,
        Middleware::Headers,
        Middleware::HttpMetrics,
        Middleware::ProxyIpParser,
        Middleware::Sendfile,
        Middleware::Otel,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Middleware::Static => "static",
            Middleware::Gzip => "gzip",
            Middleware::Headers => "headers",
            Middleware::HttpMetrics => "http_metrics",
            Middleware::ProxyIpParser => "proxy_ip_parser",
            Middleware::Sendfile => "sendfile",
            Middleware::Otel => "otel",
        }
    }

    pub fn from_name(name: &str) -> Option<Middleware> {
        Middleware::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

impl std::fmt::Display for Middleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which file extensions may pass (uploads accepted, static files served).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtensionFilter {
    /// Never allowed. Lower-cased, with a leading dot (`.php`).
    pub forbid: Vec<String>,
    /// When not empty, only these are allowed. Lower-cased, with a leading dot; anything
    /// also in `forbid` is removed (forbid wins, like RoadRunner).
    pub allow: Vec<String>,
}

impl ExtensionFilter {
    /// Whether a file name (or path) passes, judged by its extension as Go's
    /// `filepath.Ext` sees it (from the last dot of the last path element), lower-cased.
    pub fn permits(&self, file_name: &str) -> bool {
        let base = file_name.rsplit('/').next().unwrap_or(file_name);
        let ext = base
            .rfind('.')
            .map(|i| base[i..].to_lowercase())
            .unwrap_or_default();
        if self.forbid.contains(&ext) {
            return false;
        }
        self.allow.is_empty() || self.allow.contains(&ext)
    }
}

/// `http.uploads`: where multipart files go and which are accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadsConfig {
    /// `http.uploads.dir`. Default: the OS temp dir (`$TMPDIR` or `/tmp`), RR's default.
    pub dir: PathBuf,
    /// `http.uploads.forbid` / `allow`. Default: nothing forbidden (RoadRunner's code has
    /// no default list, whatever its sample config says). A refused file reaches PHP
    /// with error code 8 (`UPLOAD_ERR_EXTENSION`).
    pub filter: ExtensionFilter,
}

/// `http.static`: files served by pacer itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticConfig {
    /// `http.static.dir`. Default `.` (the working directory), RR's default.
    pub dir: PathBuf,
    /// `http.static.forbid` / `allow`. `forbid` always contains `.php`: pacer never
    /// serves PHP source, whatever the config says (a warning names such an `allow`).
    pub filter: ExtensionFilter,
    /// `http.static.calculate_etag`: send an `ETag`. Default false (RR's).
    pub calculate_etag: bool,
    /// `http.static.weak`: weak ETags (`W/`, from the name only). Default false (RR's).
    pub weak: bool,
    /// `http.static.request`: headers added to requests for static files.
    pub request_headers: Vec<(String, String)>,
    /// `http.static.response`: headers added to static responses.
    pub response_headers: Vec<(String, String)>,
}

/// `http.headers` (the `headers` middleware).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeadersConfig {
    /// `http.headers.cors`; `None` = no CORS handling.
    pub cors: Option<CorsConfig>,
    /// `http.headers.request`: added to every request sent to PHP.
    pub request: Vec<(String, String)>,
    /// `http.headers.response`: added to every response from PHP.
    pub response: Vec<(String, String)>,
}

/// `http.headers.cors`, RoadRunner's keys; the strings go into the CORS headers as is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorsConfig {
    /// `allowed_origin` (e.g. `*`). Default empty.
    pub allowed_origin: String,
    /// `allowed_origin_regex`: an origin pattern, checked by the middleware.
    pub allowed_origin_regex: Option<String>,
    /// `allowed_headers` (comma-separated).
    pub allowed_headers: String,
    /// `allowed_methods` (comma-separated).
    pub allowed_methods: String,
    /// `allow_credentials`. Default false.
    pub allow_credentials: bool,
    /// `exposed_headers` (comma-separated).
    pub exposed_headers: String,
    /// `max_age` in seconds; 0 = no `Access-Control-Max-Age`.
    pub max_age: u64,
    /// `options_success_status`: status of a successful preflight. Default 200 (RR's).
    pub options_success_status: u16,
    /// `debug`: log CORS decisions. Default false.
    pub debug: bool,
}

/// `http.ssl`: the HTTPS listener (certificate files; ACME is not implemented).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SslConfig {
    /// `http.ssl.address`. Default `:443` (every interface), as RoadRunner documents.
    pub address: SocketAddr,
    /// `http.ssl.cert` (required): PEM certificate chain.
    pub cert: PathBuf,
    /// `http.ssl.key` (required): PEM private key.
    pub key: PathBuf,
    /// `http.ssl.redirect`: plain HTTP requests are redirected to HTTPS. Default false.
    pub redirect: bool,
    /// `http.ssl.root_ca` (also `rootCa`): extra CA bundle.
    pub root_ca: Option<PathBuf>,
}

/// `http.http2`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Http2Config {
    /// `http.http2.h2c`: HTTP/2 over plain TCP. Default false (RR's).
    pub h2c: bool,
    /// `http.http2.max_concurrent_streams`. Default and `0`: 128 (RR's).
    pub max_concurrent_streams: u32,
}

/// `http.pool`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Every key of docs/configuration.md (`http.pool`). Defaults are RoadRunner's, except
    /// `num_workers`, which is the CPU count the cgroup quota allows, rounded up (RR uses
    /// the host's CPU count, far too many in a pod limited to a fraction of the node),
    /// capped at [`crate::pool::MAX_WORKERS`].
    pub settings: PoolSettings,
    /// `http.pool.command`: replaces `server.command` for this pool.
    pub command: Option<Vec<String>>,
}

/// `rpc`: the Goridge RPC listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcConfig {
    /// `rpc.listen`. Default `tcp://127.0.0.1:6001` (RR's and what PHP clients assume).
    pub listen: RpcAddr,
}

/// Where the RPC server listens: the one RPC address type, shared with the RPC server
/// and client (`tcp://host:port` or `unix://path`; the config resolves a TCP host to
/// an IP address, relative unix paths stay relative, see [`Config::workdir`]).
pub use crate::rpc::RpcAddr;

/// `status`: health and readiness endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusConfig {
    /// `status.address` (required when the section exists; RoadRunner has no default).
    pub address: SocketAddr,
    /// `status.unavailable_status_code`. Default 503 (RR's).
    pub unavailable_status_code: u16,
    /// `status.check_timeout`: an integer of seconds (RoadRunner's code) or a duration
    /// (RoadRunner's docs). Default 60s (RR's).
    pub check_timeout: Duration,
}

/// `metrics`: the Prometheus endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricsConfig {
    /// `metrics.address`. Default `127.0.0.1:2112` (RR's): metrics stay private unless
    /// asked for.
    pub address: SocketAddr,
    /// `metrics.collect`: application metrics declared in the config (the same as
    /// `metrics.Declare` over RPC). Names are lower-cased, as RoadRunner's viper does.
    pub collect: BTreeMap<String, CollectorConfig>,
}

/// One `metrics.collect.<name>` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct CollectorConfig {
    pub kind: CollectorKind,
    pub help: String,
    pub namespace: Option<String>,
    pub subsystem: Option<String>,
    pub labels: Vec<String>,
    /// Histogram buckets; empty = Prometheus' defaults.
    pub buckets: Vec<f64>,
    /// Summary objectives: (quantile, allowed error).
    pub objectives: Vec<(f64, f64)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CollectorKind {
    Counter,
    Gauge,
    Histogram,
    Summary,
}

impl CollectorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CollectorKind::Counter => "counter",
            CollectorKind::Gauge => "gauge",
            CollectorKind::Histogram => "histogram",
            CollectorKind::Summary => "summary",
        }
    }
}

/// `logs`: what a tracing subscriber needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogsConfig {
    /// `logs.mode`. Default `development` (RR's).
    pub mode: LogMode,
    /// `logs.level`. Default: `debug` in development mode (RR's default), `info` in the
    /// other modes (RoadRunner also falls back to debug there, which floods production
    /// logs; pacer does not). `off` when the mode is `off`/`none`.
    pub level: LogLevel,
    /// `logs.encoding`. Default: `json` in production mode, else `console` (RR's).
    pub encoding: LogEncoding,
    /// `logs.output`. Default stderr (RR's).
    pub output: Vec<LogOutput>,
    /// `logs.err_output` (zap: `errorOutput`). Default stderr (RR's).
    pub err_output: Vec<LogOutput>,
    /// `logs.channels.<name>.level`: per-logger levels. RoadRunner's channel names:
    /// `server` (worker stderr), `http`, `rpc`, `metrics`, `status`, `reload`, `pool`.
    pub channels: BTreeMap<String, LogLevel>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogMode {
    Development,
    Production,
    /// Messages only, no timestamps or levels.
    Raw,
    /// `off` / `none`: no logs.
    Off,
}

impl LogMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LogMode::Development => "development",
            LogMode::Production => "production",
            LogMode::Raw => "raw",
            LogMode::Off => "off",
        }
    }
}

/// Log levels; zap's `dpanic`, `panic` and `fatal` read as `error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
    Off,
}

impl LogLevel {
    /// The level's name, which is also a valid `tracing_subscriber::EnvFilter` directive.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Off => "off",
        }
    }
}

impl From<LogLevel> for tracing::level_filters::LevelFilter {
    fn from(l: LogLevel) -> Self {
        use tracing::level_filters::LevelFilter;
        match l {
            LogLevel::Debug => LevelFilter::DEBUG,
            LogLevel::Info => LevelFilter::INFO,
            LogLevel::Warn => LevelFilter::WARN,
            LogLevel::Error => LevelFilter::ERROR,
            LogLevel::Off => LevelFilter::OFF,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogEncoding {
    Console,
    Json,
}

impl LogEncoding {
    pub fn as_str(self) -> &'static str {
        match self {
            LogEncoding::Console => "console",
            LogEncoding::Json => "json",
        }
    }
}

/// A log destination (zap's `stderr`, `stdout` or a file path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogOutput {
    Stderr,
    Stdout,
    File(PathBuf),
}

/// `reload`: rolling reset of the workers when PHP files change (RoadRunner's reload
/// plugin).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReloadConfig {
    /// `reload.interval`: how often files are polled, and how long changes must settle
    /// before one reset. Default 1s, at least 1s (RR's).
    pub interval: Duration,
    /// `reload.patterns`: substrings of file names that matter, for every service.
    /// Default `[".php"]` (RR's).
    pub patterns: Vec<String>,
    /// `reload.services.http`; `None` = nothing to watch (other services are warned
    /// about: pacer has only the http pool).
    pub http: Option<ReloadService>,
}

/// `reload.services.<name>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReloadService {
    /// `dirs`: directories to watch. Default: the working directory.
    pub dirs: Vec<PathBuf>,
    /// `recursive`: watch subdirectories too. Default false (RR's).
    pub recursive: bool,
    /// `ignore`: directories not watched.
    pub ignore: Vec<PathBuf>,
    /// `patterns`: this service's own patterns, used with the global ones.
    pub patterns: Vec<String>,
}

impl ReloadConfig {
    /// The patterns a changed file of `service` is matched against (a file matters when
    /// its name contains one): the service's own, then the global ones, like RoadRunner.
    pub fn patterns_for(&self, service: &ReloadService) -> Vec<String> {
        service
            .patterns
            .iter()
            .chain(&self.patterns)
            .cloned()
            .collect()
    }
}

/// `pacer`: pacer's own settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacerConfig {
    pub shutdown: ShutdownConfig,
    pub runtime: RuntimeConfig,
    pub http: PacerHttpConfig,
    /// `pacer.readiness`: what `/ready` says about a busy pod.
    pub readiness: ReadinessConfig,
}

/// `http.sendfile`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendfileConfig {
    /// `http.sendfile.roots`: directories (relative ones from the working directory).
    pub roots: Vec<std::path::PathBuf>,
}

/// `pacer.readiness.mode`: `accepting` (the default: ready while workers live, however
/// busy) or `saturation` (also not ready while the queue stays long; see
/// [`SaturationConfig`]).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum ReadinessConfig {
    #[default]
    Accepting,
    Saturation(SaturationConfig),
}

/// `pacer.readiness` in `saturation` mode: `/ready` turns 503 once the request queue has
/// held at least `queue_high` requests for `high_for`, and 200 again once it has held at
/// most `queue_low` for `low_for`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaturationConfig {
    /// `pacer.readiness.queue_high`. Default 10.
    pub queue_high: usize,
    /// `pacer.readiness.queue_low`: below `queue_high`. Default `queue_high / 2`.
    pub queue_low: usize,
    /// `pacer.readiness.high_for`. Default 5s.
    pub high_for: Duration,
    /// `pacer.readiness.low_for`. Default 10s.
    pub low_for: Duration,
}

/// `pacer.http`: connection limits of the HTTP server that RoadRunner's `http` section
/// has no keys for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacerHttpConfig {
    /// `pacer.http.header_read_timeout`: a client must send a whole request head (or, on
    /// a kept-alive connection, the next one) within this time, or the connection is
    /// closed — the slowloris defence. Default 30s.
    pub header_read_timeout: Duration,
    /// `pacer.http.max_requests_per_connection`: after this many requests an HTTP/1
    /// connection is closed (`Connection: close` on the last response), so that load
    /// spreads again over the pods behind a Service. 0 = unlimited. Default 10000.
    pub max_requests_per_connection: u64,
    /// `pacer.http.max_header_count`: most header fields one request may carry; more is
    /// 431. Default 1000 (Go's server, and so RoadRunner, has no count limit, only the
    /// byte limit below; 1000 is far above what browsers and proxies send).
    pub max_header_count: usize,
    /// `pacer.http.max_header_bytes`: largest request head (request line and headers;
    /// for HTTP/2 the header list) in bytes; more is 431. Default 1 MiB, Go's
    /// `DefaultMaxHeaderBytes` that RoadRunner runs with. At least 8192.
    pub max_header_bytes: usize,
}

/// `pacer.shutdown`: what happens on SIGTERM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShutdownConfig {
    /// `pacer.shutdown.delay`: how long pacer keeps serving after `/ready` turns 503, so
    /// Kubernetes can take the pod out of its endpoints before the listener closes.
    /// Default 0s: right for running locally; the operator sets it (a few seconds) for
    /// pods.
    pub delay: Duration,
    /// `pacer.shutdown.grace_period` (or RoadRunner's `endure.grace_period`): how long
    /// in-flight requests may take to finish before workers are stopped. Default 30s,
    /// RoadRunner's and Kubernetes' default `terminationGracePeriodSeconds`.
    pub grace_period: Duration,
}

/// `pacer.runtime`: the async runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// `pacer.runtime.threads`: tokio worker threads; 0 = a current-thread runtime.
    /// Default 0: pacer's own work per request is small next to PHP's, and what costs is
    /// thread hand-offs and wake-ups (bench/RESULTS.md), so one thread leaves every
    /// core to the PHP workers. Raise it when TLS or compression make pacer CPU-bound.
    pub threads: usize,
    /// `pacer.runtime.shards`: runtime shards — one current-thread runtime per shard,
    /// each on its own thread, serving the connections it accepts (SO_REUSEPORT) with
    /// the workers it owns, so a request never changes threads (see `shards.rs`).
    /// 1 (the default) = no shards: HTTP runs on the main runtime; 0 = one per CPU
    /// this process may use, at most one per worker (`num_workers` at start).
    pub shards: usize,
    /// `pacer.runtime.pin`: with shards, pin shard `i`'s thread and its PHP workers to
    /// the `i`-th allowed CPU, so their wake-ups stay on one CPU. Default true.
    pub pin: bool,
}

/// `otel`: where and how pacer exports its request spans (RoadRunner's otel plugin keys).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtelConfig {
    /// `exporter`: where spans go (default `otlp`).
    pub exporter: OtelExporter,
    /// `client`: the OTLP transport (default `http`, or the protocol the standard
    /// environment names when `client` is unset).
    pub client: OtlpClient,
    /// `endpoint` (`host:port`, RoadRunner's form; a scheme is accepted too), else
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`, else
    /// `127.0.0.1:4318` (HTTP) or `127.0.0.1:4317` (gRPC). Resolved with `insecure` and
    /// `custom_url` (HTTP only) into [`Self::url`]; a gRPC URL has no path.
    pub url: String,
    /// `insecure`: plain HTTP instead of HTTPS (default false, as in RoadRunner).
    pub insecure: bool,
    /// `compress`: gzip request bodies.
    pub compress: bool,
    /// `headers`: sent with every export (e.g. an API key).
    pub headers: Vec<(String, String)>,
    /// `resource` (and the deprecated top-level `service_name`/`service_version`).
    pub resource: OtelResource,
}

/// `otel.exporter`. RoadRunner's `zipkin` and `jaeger` are refused (RoadRunner refuses
/// them too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtelExporter {
    /// OTLP to a collector, over [`OtlpClient`].
    Otlp,
    /// One line of OTLP JSON per exported batch on stdout (for debugging).
    Stdout,
    /// The same on stderr.
    Stderr,
}

impl OtelExporter {
    pub fn as_str(self) -> &'static str {
        match self {
            OtelExporter::Otlp => "otlp",
            OtelExporter::Stdout => "stdout",
            OtelExporter::Stderr => "stderr",
        }
    }
}

/// `otel.client`: OTLP's transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtlpClient {
    /// OTLP/HTTP with protobuf bodies (the collector's port 4318).
    Http,
    /// OTLP/gRPC (the collector's port 4317).
    Grpc,
}

impl OtlpClient {
    pub fn as_str(self) -> &'static str {
        match self {
            OtlpClient::Http => "http",
            OtlpClient::Grpc => "grpc",
        }
    }
}

/// The `resource` attributes every span carries. Unset ones come from
/// `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES`, else the defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtelResource {
    /// `service.name`; default `pacer`.
    pub service_name: String,
    /// `service.version`; default pacer's version.
    pub service_version: String,
    /// `service.instance.id`; default the pod's host name, else a random id.
    pub service_instance_id: Option<String>,
    /// `service.namespace`; none by default.
    pub service_namespace: Option<String>,
}
