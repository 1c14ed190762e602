//! Composition: the only module that knows every component. It builds the pool, the
//! servers and the background tasks from a [`Config`], runs them, and shuts them down in
//! the one order written here:
//!
//! 1. `/ready` turns 503 at once (the pod leaves the Service endpoints);
//! 2. requests keep being served for `pacer.shutdown.delay`;
//! 3. the HTTP listeners close; in-flight requests (streams too) get up to
//!    `pacer.shutdown.grace_period` to finish;
//! 4. the workers are stopped (`destroy_timeout`, then SIGKILL);
//! 5. the status, metrics and RPC endpoints and the background tasks stop.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{self, Config, LoadOptions};
use crate::http::headers::{FixedHeaders, HeaderRules};
use crate::http::server::{self, HttpHandler, HttpSettings};
use crate::http::static_files::StaticFiles;
use crate::http::uploads::UploadLimits;
use crate::plugin::{Plugin, PluginContext};
use crate::pool::Pool;
use crate::relay::FrameCodec;
use crate::stats::HttpStats;
use crate::status::Status;
use crate::worker::Spawner;

/// Why pacer could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot listen on {what} {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error("the config has no `http`, `jobs` or `service` section: nothing to serve")]
    NoHttp,
    #[error(transparent)]
    Otel(#[from] crate::otel::OtelError),
    #[error("relay: {0}")]
    Relay(std::io::Error),
    #[error("static files: {dir}: {source}")]
    Static {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("tls: {0}")]
    Tls(String),
    #[error("{0}")]
    Headers(String),
    #[error(transparent)]
    Plugin(#[from] crate::plugin::PluginError),
    #[error("{0}")]
    Sendfile(std::io::Error),
    #[error("runtime shards: {0}")]
    Runtime(std::io::Error),
}

/// The sockets pacer serves on, bound before [`run`] (tests bind port 0).
#[derive(Debug, Default)]
pub struct Listeners {
    pub http: Option<TcpListener>,
    pub https: Option<TcpListener>,
    pub status: Option<TcpListener>,
    pub metrics: Option<TcpListener>,
    pub rpc: Option<crate::rpc::RpcListener>,
}

/// A listener's bound address for the log (with the real port when 0 was asked for).
fn local_addr(listener: &TcpListener) -> String {
    listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default()
}

impl Listeners {
    /// Binds every address the config names.
    pub async fn bind(config: &Config) -> Result<Listeners, AppError> {
        async fn tcp(
            what: &'static str,
            addr: std::net::SocketAddr,
        ) -> Result<TcpListener, AppError> {
            TcpListener::bind(addr)
                .await
                .map_err(|source| AppError::Bind {
                    what,
                    addr: addr.to_string(),
                    source,
                })
        }
        let mut l = Listeners::default();
        // A jobs-only (or service-only) config has no HTTP listener.
        let http = config.http.as_ref();
        if let Some(addr) = http.and_then(|h| h.address) {
            l.http = Some(if config.pacer.runtime.shards == 1 {
                tcp("http", addr).await?
            } else {
                // Each runtime shard accepts on its own socket bound to this address;
                // the kernel spreads connections over them.
                reuseport_listener(addr).map_err(|source| AppError::Bind {
                    what: "http",
                    addr: addr.to_string(),
                    source,
                })?
            });
        }
        if let Some(ssl) = http.and_then(|h| h.ssl.as_ref()) {
            l.https = Some(tcp("https", ssl.address).await?);
        }
        if let Some(status) = &config.status {
            l.status = Some(tcp("status", status.address).await?);
        }
        if let Some(metrics) = &config.metrics {
            l.metrics = Some(tcp("metrics", metrics.address).await?);
        }
        if let Some(rpc) = &config.rpc {
            let addr = rpc.listen.clone();
            let listener =
                crate::rpc::RpcListener::bind(&addr)
                    .await
                    .map_err(|e| AppError::Bind {
                        what: "rpc",
                        addr: rpc.listen.to_string(),
                        source: std::io::Error::other(e.to_string()),
                    })?;
            l.rpc = Some(listener);
        }
        Ok(l)
    }
}

/// A listener on `addr` with SO_REUSEPORT, so that more sockets can bind the same
/// address (one per runtime shard).
fn reuseport_listener(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// How `run` was asked to behave beyond the config itself.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Re-read the config file on change and apply pool changes live (`--watch-config`).
    pub watch_config: bool,
    /// How the config was loaded, to re-load it the same way when it changes.
    pub load: LoadOptions,
}

/// Handles on a running app, for tests and for `main`.
#[derive(Clone, Debug)]
pub struct Running {
    /// The HTTP pool; without an `http` section the jobs pool. (A config with neither
    /// pool sends no `Running`.)
    pub pool: Pool,
    /// The jobs service, when the config has a `jobs` section.
    pub jobs: Option<crate::jobs::Jobs>,
    pub status: Status,
}

/// Runs pacer until `shutdown` resolves, then shuts down in order. `ready` (if given)
/// receives handles once everything is started.
pub async fn run(
    config: Config,
    listeners: Listeners,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
    ready: Option<tokio::sync::oneshot::Sender<Running>>,
) -> Result<(), AppError> {
    run_with_plugins(config, listeners, options, Vec::new(), shutdown, ready).await
}

/// [`run`] with extra plugins (a custom binary's services, see [`crate::plugin`]),
/// started after pacer's own (jobs, `service`).
pub async fn run_with_plugins(
    config: Config,
    listeners: Listeners,
    options: RunOptions,
    extra_plugins: Vec<Arc<dyn Plugin>>,
    shutdown: impl Future<Output = ()>,
    ready: Option<tokio::sync::oneshot::Sender<Running>>,
) -> Result<(), AppError> {
    let http = config.http.clone();
    if http.is_none()
        && config.jobs.is_none()
        && config.services.is_empty()
        && extra_plugins.is_empty()
    {
        return Err(AppError::NoHttp);
    }
    let tracker = TaskTracker::new();
    let background = CancellationToken::new();

    // Workers reach RPC at the address actually bound (port 0 resolved), as their user.
    let rpc_env = listeners.rpc.as_ref().map(|l| l.dsn().to_string());
    if let (Some(rpc), Some(uid)) = (&listeners.rpc, config.server.uid)
        && uid != nix::unistd::geteuid().as_raw()
    {
        rpc.give_to(uid, config.server.gid)
            .map_err(|source| AppError::Bind {
                what: "rpc",
                addr: rpc.dsn().to_string(),
                source,
            })?;
    }
    let (http_pool, shards) = match &http {
        Some(http) => {
            let (pool, shards) =
                start_http_pool(&config, http.pool.settings.clone(), rpc_env.clone()).await?;
            tracker.spawn(crate::supervisor::run(pool.clone(), background.clone()));
            (Some(pool), shards)
        }
        None => (None, None),
    };
    // Plugins: jobs, the `service` process manager, then the caller's own.
    let jobs_plugin = config
        .jobs
        .clone()
        .map(|j| Arc::new(crate::jobs::JobsPlugin::new(j)));
    let mut plugins: Vec<Arc<dyn Plugin>> = Vec::new();
    if let Some(j) = &jobs_plugin {
        plugins.push(j.clone());
    }
    if !config.services.is_empty() {
        plugins.push(Arc::new(crate::service::Services::new(
            config.services.clone(),
        )));
    }
    plugins.extend(extra_plugins);
    let shared_config = Arc::new(config.clone());
    for plugin in &plugins {
        let ctx = PluginContext {
            config: shared_config.clone(),
            section: config.sections.get(plugin.name()).cloned(),
            rpc: rpc_env.clone(),
        };
        plugin.start(&ctx).await.map_err(AppError::Plugin)?;
        tracing::info!(plugin = plugin.name(), "started");
    }
    let jobs = jobs_plugin.as_ref().and_then(|j| j.jobs());
    let pools: Vec<Pool> = http_pool
        .iter()
        .cloned()
        .chain(plugins.iter().flat_map(|p| p.pools()))
        .collect();
    // The pool `Running` hands out: the HTTP pool, or without one the jobs pool.
    let status_pool = http_pool.clone().or_else(|| pools.first().cloned());
    if crate::pid1::is_pid1() {
        tracker.spawn(crate::pid1::reap_orphans(background.clone()));
    }

    let unavailable = config
        .status
        .as_ref()
        .map_or(503, |s| s.unavailable_status_code);
    let mut status = Status::new(http_pool.clone(), plugins.clone(), unavailable);
    if let (config::ReadinessConfig::Saturation(settings), Some(pool)) =
        (&config.pacer.readiness, &http_pool)
    {
        let flag = Arc::new(crate::readiness::SaturationFlag::default());
        status = status.with_saturation(flag.clone());
        tracker.spawn(crate::readiness::watch(
            pool.clone(),
            settings.clone(),
            flag,
            background.clone(),
        ));
    }
    if let Some(listener) = listeners.status {
        tracing::info!(address = %local_addr(&listener), "status: /health and /ready");
        let status = status.clone();
        tracker.spawn(crate::endpoint::serve(
            listener,
            move |req| {
                let response = status.handle(&req);
                async move { response }
            },
            background.clone(),
        ));
    }

    let http_stats = Arc::new(HttpStats::default());
    let tracing_on = match &config.otel {
        Some(otel) => {
            match otel.exporter {
                crate::config::OtelExporter::Otlp => tracing::info!(
                    endpoint = %otel.url,
                    client = otel.client.as_str(),
                    service = %otel.resource.service_name,
                    "otel: exporting request spans over OTLP"
                ),
                other => tracing::info!(
                    exporter = other.as_str(),
                    service = %otel.resource.service_name,
                    "otel: writing request spans as OTLP JSON lines"
                ),
            }
            Some(Arc::new(crate::otel::Tracing::start(otel)?))
        }
        None => None,
    };
    let handler = match &http_pool {
        Some(pool) => Some(HttpHandler::with_tracing(
            pool.clone(),
            http_settings(&config)?,
            http_stats.clone(),
            tracing_on.clone(),
        )),
        None => None,
    };
    let http_stop = CancellationToken::new();
    let grace = config.pacer.shutdown.grace_period;
    let mut http_servers = Vec::new();
    if let (Some(listener), Some(handler)) = (listeners.http, &handler) {
        tracing::info!(address = %local_addr(&listener), "serving HTTP");
        match &shards {
            None => http_servers.push(tokio::spawn(server::serve(
                listener,
                None,
                handler.clone(),
                http_stop.clone(),
                grace,
            ))),
            Some(shards) => {
                let addr = listener.local_addr().map_err(AppError::Runtime)?;
                let mut sockets = vec![listener.into_std().map_err(AppError::Runtime)?];
                for _ in 1..shards.len() {
                    // A listener bound elsewhere without SO_REUSEPORT (tests, a handed-in
                    // socket) cannot get siblings: the shards then share its one socket.
                    let extra = match reuseport_listener(addr) {
                        Ok(l) => l.into_std(),
                        Err(_) => sockets[0].try_clone(),
                    };
                    sockets.push(extra.map_err(AppError::Runtime)?);
                }
                for (i, socket) in sockets.into_iter().enumerate() {
                    let (handler, stop) = (handler.clone(), http_stop.clone());
                    http_servers.push(shards.spawn(i, async move {
                        match TcpListener::from_std(socket) {
                            Ok(listener) => {
                                server::serve(listener, None, handler, stop, grace).await
                            }
                            Err(error) => tracing::error!(%error, shard = i, "cannot listen"),
                        }
                    }));
                }
            }
        }
    }
    if let (Some(listener), Some(ssl), Some(handler)) = (
        listeners.https,
        http.as_ref().and_then(|h| h.ssl.as_ref()),
        &handler,
    ) {
        let acceptor = server::tls_acceptor(&ssl.cert, &ssl.key).map_err(AppError::Tls)?;
        tracing::info!(address = %local_addr(&listener), "serving HTTPS");
        http_servers.push(tokio::spawn(server::serve(
            listener,
            Some(acceptor),
            handler.clone(),
            http_stop.clone(),
            grace,
        )));
    }

    let app_metrics = Arc::new(crate::metrics::AppMetrics::new());
    if let Some(metrics) = &config.metrics {
        for (name, spec) in &metrics.collect {
            if let Err(error) = app_metrics.declare(name, collector_spec(spec)) {
                tracing::warn!(%error, metric = %name, "metrics.collect entry refused");
            }
        }
    }
    if let Some(listener) = listeners.metrics {
        tracing::info!(address = %local_addr(&listener), "metrics: /metrics");
        let metrics = Arc::new(
            crate::metrics::Metrics::new(pools.clone(), http_stats.clone(), app_metrics.clone())
                .with_jobs(jobs.clone()),
        );
        tracker.spawn(crate::metrics::serve(listener, metrics, background.clone()));
    }
    let mut rpc_ctx = crate::rpc::RpcContext::new(
        pools.clone(),
        config::to_json(&config),
        env!("CARGO_PKG_VERSION"),
        app_metrics.clone(),
    );
    for plugin in &plugins {
        if let Some(service) = plugin.rpc() {
            rpc_ctx = rpc_ctx.with_service(service);
        }
    }
    let rpc_ctx = Arc::new(rpc_ctx);
    if let Some(listener) = listeners.rpc {
        tracker.spawn(crate::rpc::serve(
            listener,
            rpc_ctx.clone(),
            background.clone(),
        ));
    }

    if let (Some(reload), Some(pool)) = (reload_settings(&config), &http_pool) {
        let (pool, cancel) = (pool.clone(), background.clone());
        tracker.spawn(async move {
            if let Err(error) = crate::reload::run(pool, reload, cancel).await {
                tracing::error!(%error, "file watching for reload failed");
            }
        });
    }
    if options.watch_config {
        tracker.spawn(watch_config(
            options.load.clone(),
            config.clone(),
            http_pool.clone(),
            jobs.clone(),
            rpc_ctx.clone(),
            background.clone(),
        ));
    }

    if let (Some(ready), Some(pool)) = (ready, &status_pool) {
        let _ = ready.send(Running {
            pool: pool.clone(),
            jobs: jobs.clone(),
            status: status.clone(),
        });
    }
    shutdown.await;

    // The shutdown order, once. Jobs stop consuming at once and drain alongside HTTP.
    status.start_draining();
    let plugins_stop = {
        let plugins = plugins.clone();
        tokio::spawn(async move {
            futures_util::future::join_all(plugins.iter().map(|p| p.stop(grace))).await;
        })
    };
    if !config.pacer.shutdown.delay.is_zero() {
        tracing::info!(delay = ?config.pacer.shutdown.delay, "draining: still serving while endpoints update");
        tokio::time::sleep(config.pacer.shutdown.delay).await;
    }
    http_stop.cancel();
    for server in http_servers {
        let _ = server.await;
    }
    if let Some(pool) = &http_pool {
        tracing::info!("HTTP drained; stopping workers");
        pool.shutdown().await;
    }
    drop(handler);
    if let Some(otel) = tracing_on {
        // Every request has ended: this is the last owner. Flushing blocks.
        if let Ok(otel) = Arc::try_unwrap(otel) {
            let _ = tokio::task::spawn_blocking(move || otel.shutdown()).await;
        }
    }
    let _ = plugins_stop.await;
    background.cancel();
    tracker.close();
    if tokio::time::timeout(Duration::from_secs(5), tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some background tasks did not stop in time");
    }
    tracing::info!("stopped");
    Ok(())
}

/// The HTTP pool (and the runtime shards it is spread over).
async fn start_http_pool(
    config: &Config,
    settings: crate::pool::PoolSettings,
    rpc_env: Option<String>,
) -> Result<(Pool, Option<Arc<crate::shards::Shards>>), AppError> {
    let spawner = Spawner::new(
        config.process_spec(),
        config.server.relay.clone(),
        "http",
        rpc_env,
        FrameCodec::default(),
        settings.allocate_timeout,
    )
    .await
    .map_err(AppError::Relay)?;
    // `shards: 0` is one per allowed CPU, but no more than there are workers to own:
    // a shard without workers would only borrow other shards' ones.
    let shards = match config.pacer.runtime.shards {
        0 => crate::shards::allowed_cpus()
            .len()
            .min(settings.num_workers)
            .max(1),
        n => n,
    };
    let shards = match shards {
        1 => None,
        n => Some(
            crate::shards::Shards::start(n, config.pacer.runtime.pin).map_err(AppError::Runtime)?,
        ),
    };
    let spawner = match &shards {
        Some(shards) => spawner.with_cpus((0..shards.len()).map(|i| shards.cpu(i)).collect()),
        None => spawner,
    };
    if let Some(shards) = &shards {
        tracing::info!(
            shards = shards.len(),
            cpus = ?(0..shards.len()).map(|i| shards.cpu(i)).collect::<Vec<_>>(),
            "runtime shards"
        );
    }
    let pool = Pool::start_sharded("http", spawner, settings, shards.clone());
    Ok((pool, shards))
}

fn http_settings(config: &Config) -> Result<HttpSettings, AppError> {
    let http = config.http.as_ref().ok_or(AppError::NoHttp)?;
    let static_files = match &http.static_files {
        Some(s) => Some(
            StaticFiles::new(
                &s.dir,
                &s.filter.forbid,
                &s.filter.allow,
                s.calculate_etag,
                s.weak,
            )
            .map_err(|source| AppError::Static {
                dir: s.dir.clone(),
                source,
            })?,
        ),
        None => None,
    };
    let static_headers = match &http.static_files {
        Some(s) => FixedHeaders::new(&s.response_headers, "http.static.response")
            .map_err(AppError::Headers)?,
        None => FixedHeaders::default(),
    };
    let headers = match &http.headers {
        Some(h) => HeaderRules::new(h).map_err(AppError::Headers)?,
        None => HeaderRules::default(),
    };
    Ok(HttpSettings {
        static_headers,
        headers,
        redirect_to_https: http
            .ssl
            .as_ref()
            .filter(|s| s.redirect && http.address.is_some())
            .map(|s| s.address.port()),
        max_request_size: http.max_request_size,
        raw_body: http.raw_body,
        // RoadRunner believes proxy headers only through the `proxy_ip_parser`
        // middleware; without it, any client on a private network could pick its IP.
        trusted_subnets: if http.middleware.contains(&config::Middleware::ProxyIpParser) {
            http.trusted_subnets.clone()
        } else {
            Vec::new()
        },
        internal_error_code: http::StatusCode::from_u16(http.internal_error_code)
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR),
        access_logs: http.access_logs,
        expose_errors: http.pool.settings.debug,
        static_files,
        sendfile: match &http.sendfile {
            Some(s) => {
                Some(crate::http::sendfile::Sendfile::new(&s.roots).map_err(AppError::Sendfile)?)
            }
            None => None,
        },
        compression: http.middleware.contains(&config::Middleware::Gzip),
        uploads: UploadLimits {
            dir: http.uploads.dir.clone(),
            forbid: http.uploads.filter.forbid.clone(),
            allow: http.uploads.filter.allow.clone(),
            max_request_size: http.max_request_size,
            owner: config
                .server
                .uid
                .map(|uid| (uid, config.server.gid.unwrap_or(uid))),
        },
        header_read_timeout: config.pacer.http.header_read_timeout,
        max_requests_per_connection: config.pacer.http.max_requests_per_connection,
        max_header_count: config.pacer.http.max_header_count,
        max_header_bytes: config.pacer.http.max_header_bytes,
        max_concurrent_streams: http.http2.max_concurrent_streams,
        h2c: http.http2.h2c,
    })
}

fn reload_settings(config: &Config) -> Option<crate::reload::ReloadSettings> {
    let reload = config.reload.as_ref()?;
    let service = reload.http.as_ref()?;
    Some(crate::reload::ReloadSettings {
        interval: reload.interval,
        dirs: service
            .dirs
            .iter()
            .map(|d| config.workdir.join(d))
            .collect(),
        recursive: service.recursive,
        ignore: service.ignore.clone(),
        patterns: reload.patterns_for(service),
    })
}

/// `--watch-config`: re-reads the config file and applies pool changes live (the HTTP
/// pool and, when jobs run, the jobs pool).
async fn watch_config(
    load: LoadOptions,
    mut current: Config,
    pool: Option<Pool>,
    jobs: Option<crate::jobs::Jobs>,
    rpc: Arc<crate::rpc::RpcContext>,
    cancel: CancellationToken,
) {
    let path = load.path.clone();
    let initial = tokio::fs::read(&path).await.unwrap_or_default();
    let result = crate::config_watch::watch(path.clone(), initial, cancel, move |content| {
        let text = String::from_utf8_lossy(content);
        match config::parse_str(&text, &load) {
            Ok(loaded) => {
                for warning in &loaded.warnings {
                    tracing::warn!(%warning, "config");
                }
                let change = config::diff_live(&current, &loaded.config);
                if let (Some(settings), Some(pool)) = (change.pool, &pool) {
                    tracing::info!(
                        workers = settings.num_workers,
                        max_jobs = settings.max_jobs,
                        "config changed; applying pool settings live"
                    );
                    pool.update_settings(settings);
                }
                if let (Some(settings), Some(jobs)) = (change.jobs_pool, &jobs) {
                    tracing::info!(
                        workers = settings.num_workers,
                        max_jobs = settings.max_jobs,
                        "config changed; applying jobs pool settings live"
                    );
                    jobs.resize(settings);
                }
                if !change.restart_required.is_empty() {
                    tracing::warn!(keys = ?change.restart_required, "config changes that take effect at the next start");
                }
                rpc.set_config(&config::to_json(&loaded.config));
                current = loaded.config;
            }
            Err(error) => tracing::error!(%error, path = %path.display(), "new config rejected; keeping the running one"),
        }
    })
    .await;
    if let Err(error) = result {
        tracing::error!(%error, "cannot watch the config file");
    }
}

/// `metrics.collect.<name>` from the config, in the shape `metrics.Declare` takes.
fn collector_spec(c: &config::CollectorConfig) -> crate::metrics::CollectorSpec {
    crate::metrics::CollectorSpec {
        namespace: c.namespace.clone().unwrap_or_default(),
        subsystem: c.subsystem.clone().unwrap_or_default(),
        kind: c.kind.as_str().to_string(),
        help: c.help.clone(),
        labels: c.labels.clone(),
        buckets: c.buckets.clone(),
        objectives: c
            .objectives
            .iter()
            .map(|(q, e)| (q.to_string(), *e))
            .collect(),
    }
}
