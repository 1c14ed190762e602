//! Raw sections → typed [`Config`]: defaults, units, cross-key rules and warnings, one
//! function per section. Errors are collected in [`Ctx`]; a section with an error still
//! yields a placeholder so the remaining sections are checked too.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde_yaml::Value;

use super::error::ConfigError;
use super::host::{find_group, find_uid, find_user};
use super::raw::*;
use super::types::*;
use super::value::{Ctx, parse_listen};
use crate::pool::{MAX_WORKERS, PoolSettings, SupervisorLimits};
use crate::relay::RelayAddr;

const MIB: u64 = 1024 * 1024;
/// RoadRunner's pool timeouts default to one minute.
const RR_TIMEOUT: Duration = Duration::from_secs(60);
/// RoadRunner's supervisor tick.
const RR_WATCH_TICK: Duration = Duration::from_secs(5);

/// Builds the typed config from the raw sections.
pub(crate) fn convert(
    raw: RootRaw,
    version: String,
    dotenv: Vec<(String, String)>,
    ctx: &mut Ctx<'_>,
) -> Config {
    let server = server(raw.server, ctx);
    let metrics = raw.metrics.map(|m| metrics(m, ctx));
    let http = raw.http.map(|h| http(h, metrics.is_some(), ctx));
    let rpc = raw.rpc.map(|r| rpc(r, ctx));
    let status = raw.status.map(|s| status(s, ctx));
    let logs = logs(raw.logs.unwrap_or_default(), ctx);
    let reload = raw.reload.map(|r| reload(r, ctx));
    let otel_listed = http
        .as_ref()
        .is_some_and(|h| h.middleware.contains(&Middleware::Otel));
    let otel = match raw.otel.map(|o| otel(o, ctx)) {
        Some(o) if otel_listed => Some(o),
        Some(_) => {
            ctx.warn(
                "otel is configured but \"otel\" is not in http.middleware, so nothing is traced",
            );
            None
        }
        None if otel_listed => {
            ctx.warn("http.middleware lists \"otel\" but the otel section is missing (ignored)");
            None
        }
        None => None,
    };
    let pacer = pacer(raw.pacer.unwrap_or_default(), raw.endure, ctx);
    let brokers = super::jobs::Brokers {
        amqp: raw.amqp,
        beanstalk: raw.beanstalk,
        nats: raw.nats,
    };
    let jobs = raw.jobs.map(|j| super::jobs::jobs(j, &brokers, ctx));
    let services = super::service::services(raw.service.unwrap_or_default(), ctx);
    Config {
        version,
        workdir: ctx.workdir.clone(),
        server,
        http,
        rpc,
        status,
        metrics,
        logs,
        reload,
        otel,
        pacer,
        jobs,
        services,
        sections: BTreeMap::new(),
        dotenv,
    }
}

/// Records a "required" error unless the key already produced one.
fn require<T>(
    ctx: &mut Ctx<'_>,
    errors_before: usize,
    v: Option<T>,
    key: &str,
    hint: &str,
) -> Option<T> {
    if v.is_none() && ctx.errors.len() == errors_before {
        ctx.error(ConfigError::Missing {
            key: key.to_string(),
            hint: hint.to_string(),
        });
    }
    v
}

fn unsupported(ctx: &mut Ctx<'_>, key: &str, v: &Option<Value>, what: &str) {
    if v.as_ref().is_some_and(|v| !v.is_null()) {
        ctx.warn(format!("{key} is not supported by pacer (ignored){what}"));
    }
}

// ---------------------------------------------------------------------------- server

fn server(raw: Option<ServerRaw>, ctx: &mut Ctx<'_>) -> ServerConfig {
    let present = raw.is_some();
    if !present {
        ctx.error(ConfigError::Missing {
            key: "server".to_string(),
            hint: "pacer needs server.command to start PHP workers".to_string(),
        });
    }
    let raw = raw.unwrap_or_default();
    let before = ctx.errors.len();
    let command = ctx.command("server.command", raw.command.as_ref());
    let command = if present {
        require(
            ctx,
            before,
            command,
            "server.command",
            "the PHP worker to start, e.g. command: \"php worker.php\"",
        )
    } else {
        command
    }
    .unwrap_or_default();

    let env = ctx
        .string_map("server.env", raw.env.as_ref())
        .into_iter()
        .map(|(k, v)| (k.to_uppercase(), v))
        .collect();

    let relay = match ctx.string("server.relay", raw.relay.as_ref()) {
        None => RelayAddr::Pipes,
        Some(s) => match RelayAddr::from_str(&s) {
            // The static binary may run where nothing resolves `localhost`.
            Ok(RelayAddr::Tcp(a)) => match a.strip_prefix("localhost:") {
                Some(port) => RelayAddr::Tcp(format!("127.0.0.1:{port}")),
                None => RelayAddr::Tcp(a),
            },
            Ok(r) => r,
            Err(_) => {
                ctx.error(ConfigError::invalid(
                    "server.relay",
                    format!("{s:?}"),
                    "pipes, tcp://host:port or unix:///path/to.sock",
                ));
                RelayAddr::Pipes
            }
        },
    };

    let user = ctx.string("server.user", raw.user.as_ref());
    let group = ctx.string("server.group", raw.group.as_ref());
    let (uid, user_gid) = match &user {
        Some(u) => resolve_user(ctx, u).unwrap_or((None, None)),
        None => (None, None),
    };
    let group_gid = group.as_ref().and_then(|g| resolve_group(ctx, g));

    unsupported(ctx, "server.on_init", &raw.on_init, "");
    if raw.relay_timeout.is_some() {
        ctx.warn("server.relay_timeout is obsolete since RoadRunner v2 (ignored)");
    }

    ServerConfig {
        command,
        env,
        relay,
        user,
        group,
        uid,
        gid: group_gid.or(user_gid),
    }
}

/// `server.user` → (uid, primary gid).
fn resolve_user(ctx: &mut Ctx<'_>, user: &str) -> Option<(Option<u32>, Option<u32>)> {
    let passwd = std::fs::read_to_string(&ctx.host.passwd);
    if let Ok(uid) = user.parse::<u32>() {
        let gid = passwd.ok().and_then(|p| find_uid(&p, uid)).map(|e| e.gid);
        return Some((Some(uid), gid));
    }
    let path = ctx.host.passwd.display().to_string();
    match passwd {
        Ok(p) => match find_user(&p, user) {
            Some(e) => Some((Some(e.uid), Some(e.gid))),
            None => {
                ctx.error(ConfigError::invalid(
                    "server.user",
                    format!("{user:?}"),
                    &format!("a user listed in {path} or a numeric uid"),
                ));
                None
            }
        },
        Err(e) => {
            ctx.error(ConfigError::invalid(
                "server.user",
                format!("{user:?}"),
                &format!("a numeric uid ({path} cannot be read to look the name up: {e})"),
            ));
            None
        }
    }
}

fn resolve_group(ctx: &mut Ctx<'_>, group: &str) -> Option<u32> {
    if let Ok(gid) = group.parse::<u32>() {
        return Some(gid);
    }
    let path = ctx.host.group.display().to_string();
    match std::fs::read_to_string(&ctx.host.group) {
        Ok(text) => {
            let gid = find_group(&text, group);
            if gid.is_none() {
                ctx.error(ConfigError::invalid(
                    "server.group",
                    format!("{group:?}"),
                    &format!("a group listed in {path} or a numeric gid"),
                ));
            }
            gid
        }
        Err(e) => {
            ctx.error(ConfigError::invalid(
                "server.group",
                format!("{group:?}"),
                &format!("a numeric gid ({path} cannot be read to look the name up: {e})"),
            ));
            None
        }
    }
}

// ------------------------------------------------------------------------------ http

fn http(raw: HttpRaw, metrics_on: bool, ctx: &mut Ctx<'_>) -> HttpConfig {
    let before = ctx.errors.len();
    let address = ctx.listen("http.address", raw.address.as_ref());
    let ssl = raw.ssl.map(|s| ssl(s, ctx));
    if ssl.is_none() {
        require(
            ctx,
            before,
            address,
            "http.address",
            "the address to listen on, e.g. address: 0.0.0.0:8080 (or configure http.ssl)",
        );
    }
    if let Some(s) = &ssl
        && s.redirect
        && address.is_none()
    {
        ctx.warn("http.ssl.redirect needs http.address to redirect from (ignored)");
    }

    let max_request_size = match ctx.uint("http.max_request_size", raw.max_request_size.as_ref()) {
        None | Some(0) => 1000 * MIB,
        Some(mb) => mb.checked_mul(MIB).unwrap_or_else(|| {
            ctx.error(ConfigError::invalid(
                "http.max_request_size",
                mb.to_string(),
                "a size in MB that fits in 64 bits",
            ));
            0
        }),
    };
    let internal_error_code = ctx
        .status_code("http.internal_error_code", raw.internal_error_code.as_ref())
        .unwrap_or(500);
    let access_logs = ctx
        .boolean("http.access_logs", raw.access_logs.as_ref())
        .unwrap_or(false);
    let raw_body = ctx
        .boolean("http.raw_body", raw.raw_body.as_ref())
        .unwrap_or(false);

    let mut middleware = middleware(ctx, raw.middleware.as_ref());
    let trusted_subnets = trusted_subnets(ctx, raw.trusted_subnets.as_ref());

    let uploads = match raw.uploads {
        None => UploadsConfig {
            dir: ctx.host.temp_dir.clone(),
            filter: ExtensionFilter::default(),
        },
        Some(u) => UploadsConfig {
            dir: ctx
                .path("http.uploads.dir", u.dir.as_ref())
                .unwrap_or_else(|| ctx.host.temp_dir.clone()),
            filter: extension_filter(ctx, "http.uploads", u.forbid.as_ref(), u.allow.as_ref()),
        },
    };

    let static_files = raw.static_files.map(|s| static_files(s, ctx));
    let static_files = gate(
        ctx,
        &mut middleware,
        Middleware::Static,
        "http.static",
        static_files,
    );
    let headers = raw.headers.map(|h| headers(h, ctx));
    let headers = gate(
        ctx,
        &mut middleware,
        Middleware::Headers,
        "http.headers",
        headers,
    );
    let sendfile = raw.sendfile.map(|raw| SendfileConfig {
        roots: ctx
            .strings("http.sendfile.roots", raw.roots.as_ref())
            .unwrap_or_default()
            .iter()
            .map(|r| ctx.resolve(std::path::Path::new(r)))
            .collect(),
    });
    let sendfile = match (sendfile, middleware.contains(&Middleware::Sendfile)) {
        (Some(s), true) if !s.roots.is_empty() => Some(s),
        (_, true) => {
            // Unlike a missing `static` section, this is not ignorable: PHP would send
            // X-Sendfile responses that nobody serves (empty downloads).
            ctx.error(ConfigError::Missing {
                key: "http.sendfile.roots".into(),
                hint: "the directories X-Sendfile responses may name files under, e.g. \
                       sendfile: {roots: [storage/exports]} (the sendfile middleware is on)"
                    .into(),
            });
            None
        }
        (Some(_), false) => {
            ctx.warn(
                "http.sendfile is configured but \"sendfile\" is not in http.middleware, so it is not used",
            );
            None
        }
        (None, false) => None,
    };
    if middleware.contains(&Middleware::HttpMetrics) && !metrics_on {
        ctx.warn("http.middleware: http_metrics has no effect without a metrics section");
    }

    let http2 = match raw.http2 {
        None => Http2Config {
            h2c: false,
            max_concurrent_streams: 128,
        },
        Some(h) => Http2Config {
            h2c: ctx
                .boolean("http.http2.h2c", h.h2c.as_ref())
                .unwrap_or(false),
            max_concurrent_streams: match ctx.uint_max(
                "http.http2.max_concurrent_streams",
                h.max_concurrent_streams.as_ref(),
                u64::from(u32::MAX),
            ) {
                None | Some(0) => 128,
                Some(n) => u32::try_from(n).unwrap_or(u32::MAX),
            },
        },
    };
    let pool = pool(raw.pool.unwrap_or_default(), "http.pool", ctx);

    unsupported(ctx, "http.fcgi", &raw.fcgi, "");
    unsupported(ctx, "http.http3", &raw.http3, "");
    unsupported(
        ctx,
        "http.trusted_headers",
        &raw.trusted_headers,
        ": proxy_ip_parser reads X-Forwarded-For, X-Real-IP and Forwarded",
    );

    HttpConfig {
        address,
        max_request_size,
        internal_error_code,
        access_logs,
        raw_body,
        middleware,
        trusted_subnets,
        uploads,
        static_files,
        sendfile,
        headers,
        ssl,
        http2,
        pool,
    }
}

fn middleware(ctx: &mut Ctx<'_>, v: Option<&Value>) -> Vec<Middleware> {
    let mut out = Vec::new();
    for name in ctx.strings("http.middleware", v).unwrap_or_default() {
        match Middleware::from_name(&name) {
            Some(m) if out.contains(&m) => {
                ctx.warn(format!(
                    "http.middleware: {name:?} is listed twice (once is used)"
                ));
            }
            Some(m) => out.push(m),
            None => ctx.warn(format!(
                "http.middleware: {name:?} is not implemented by pacer (ignored); pacer has {}",
                Middleware::ALL.map(Middleware::as_str).join(", ")
            )),
        }
    }
    out
}

/// A middleware's settings are used only when both configured and listed, like RR.
fn gate<T>(
    ctx: &mut Ctx<'_>,
    middleware: &mut Vec<Middleware>,
    which: Middleware,
    key: &str,
    settings: Option<T>,
) -> Option<T> {
    let listed = middleware.contains(&which);
    match (settings, listed) {
        (Some(s), true) => Some(s),
        (Some(_), false) => {
            ctx.warn(format!(
                "{key} is configured but {which:?} is not in http.middleware, so it is not used",
                which = which.as_str()
            ));
            None
        }
        (None, true) => {
            ctx.warn(format!(
                "http.middleware lists {:?} but {key} is not configured (ignored)",
                which.as_str()
            ));
            middleware.retain(|m| *m != which);
            None
        }
        (None, false) => None,
    }
}

fn trusted_subnets(ctx: &mut Ctx<'_>, v: Option<&Value>) -> Vec<IpNet> {
    let Some(list) = ctx.strings("http.trusted_subnets", v) else {
        return DEFAULT_TRUSTED_SUBNETS
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect();
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, s) in list.iter().enumerate() {
        match s.parse::<IpNet>() {
            // Like Go's net.ParseCIDR: host bits are dropped (10.1.2.3/8 = 10.0.0.0/8).
            Ok(net) => out.push(net.trunc()),
            Err(_) => ctx.error(ConfigError::invalid(
                &format!("http.trusted_subnets[{i}]"),
                format!("{s:?}"),
                "a CIDR subnet like 10.0.0.0/8 or fc00::/7",
            )),
        }
    }
    out
}

/// `.PHP`, `php` → `.php`.
fn extension(s: &str) -> String {
    let s = s.trim().to_lowercase();
    if s.starts_with('.') {
        s
    } else {
        format!(".{s}")
    }
}

fn extension_filter(
    ctx: &mut Ctx<'_>,
    prefix: &str,
    forbid: Option<&Value>,
    allow: Option<&Value>,
) -> ExtensionFilter {
    let mut filter = ExtensionFilter::default();
    for e in ctx
        .strings(&format!("{prefix}.forbid"), forbid)
        .unwrap_or_default()
    {
        let e = extension(&e);
        if !filter.forbid.contains(&e) {
            filter.forbid.push(e);
        }
    }
    for e in ctx
        .strings(&format!("{prefix}.allow"), allow)
        .unwrap_or_default()
    {
        let e = extension(&e);
        if !filter.allow.contains(&e) && !filter.forbid.contains(&e) {
            filter.allow.push(e);
        }
    }
    filter
}

fn static_files(raw: StaticRaw, ctx: &mut Ctx<'_>) -> StaticConfig {
    let dir = ctx
        .path("http.static.dir", raw.dir.as_ref())
        .unwrap_or_else(|| ctx.workdir.clone());
    let mut filter = extension_filter(ctx, "http.static", raw.forbid.as_ref(), raw.allow.as_ref());
    if filter.allow.iter().any(|e| e == ".php") {
        ctx.warn("http.static.allow: .php is never served as a static file (removed)");
        filter.allow.retain(|e| e != ".php");
    }
    if !filter.forbid.iter().any(|e| e == ".php") {
        filter.forbid.push(".php".to_string());
    }
    StaticConfig {
        dir,
        filter,
        calculate_etag: ctx
            .boolean("http.static.calculate_etag", raw.calculate_etag.as_ref())
            .unwrap_or(false),
        weak: ctx
            .boolean("http.static.weak", raw.weak.as_ref())
            .unwrap_or(false),
        request_headers: header_map(ctx, "http.static.request", raw.request.as_ref()),
        response_headers: header_map(ctx, "http.static.response", raw.response.as_ref()),
    }
}

/// Header name → value pairs; names must be HTTP tokens, values free of CR, LF and NUL
/// (a header from the config must not be able to split a response).
fn header_map(ctx: &mut Ctx<'_>, key: &str, v: Option<&Value>) -> Vec<(String, String)> {
    let pairs = ctx.string_map(key, v);
    let mut out = Vec::with_capacity(pairs.len());
    for (name, value) in pairs {
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            ctx.error(ConfigError::invalid(
                key,
                format!("{name:?}"),
                "a header name (letters, digits and !#$%&'*+-.^_`|~)",
            ));
        } else if value.contains(['\r', '\n', '\0']) {
            ctx.error(ConfigError::invalid(
                &format!("{key}.{name}"),
                format!("{value:?}"),
                "a header value without CR, LF or NUL",
            ));
        } else {
            out.push((name, value));
        }
    }
    out
}

fn headers(raw: HeadersRaw, ctx: &mut Ctx<'_>) -> HeadersConfig {
    let cors = raw.cors.map(|c| {
        let s = |ctx: &mut Ctx<'_>, k: &str, v: &Option<Value>| {
            ctx.string(&format!("http.headers.cors.{k}"), v.as_ref())
        };
        CorsConfig {
            allowed_origin: s(ctx, "allowed_origin", &c.allowed_origin).unwrap_or_default(),
            allowed_origin_regex: s(ctx, "allowed_origin_regex", &c.allowed_origin_regex),
            allowed_headers: s(ctx, "allowed_headers", &c.allowed_headers).unwrap_or_default(),
            allowed_methods: s(ctx, "allowed_methods", &c.allowed_methods).unwrap_or_default(),
            allow_credentials: ctx
                .boolean(
                    "http.headers.cors.allow_credentials",
                    c.allow_credentials.as_ref(),
                )
                .unwrap_or(false),
            exposed_headers: s(ctx, "exposed_headers", &c.exposed_headers).unwrap_or_default(),
            max_age: ctx
                .uint("http.headers.cors.max_age", c.max_age.as_ref())
                .unwrap_or(0),
            options_success_status: ctx
                .status_code(
                    "http.headers.cors.options_success_status",
                    c.options_success_status.as_ref(),
                )
                .unwrap_or(200),
            debug: ctx
                .boolean("http.headers.cors.debug", c.debug.as_ref())
                .unwrap_or(false),
        }
    });
    HeadersConfig {
        cors,
        request: header_map(ctx, "http.headers.request", raw.request.as_ref()),
        response: header_map(ctx, "http.headers.response", raw.response.as_ref()),
    }
}

fn ssl(raw: SslRaw, ctx: &mut Ctx<'_>) -> SslConfig {
    let address = ctx
        .listen("http.ssl.address", raw.address.as_ref())
        .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 443));
    let acme = raw.acme.as_ref().is_some_and(|v| !v.is_null());
    let hint = if acme {
        "pacer does not implement ACME; give PEM certificate and key files"
    } else {
        "a PEM file"
    };
    let before = ctx.errors.len();
    let cert = ctx.path("http.ssl.cert", raw.cert.as_ref());
    let cert = require(ctx, before, cert, "http.ssl.cert", hint).unwrap_or_default();
    let before = ctx.errors.len();
    let key = ctx.path("http.ssl.key", raw.key.as_ref());
    let key = require(ctx, before, key, "http.ssl.key", hint).unwrap_or_default();
    unsupported(ctx, "http.ssl.acme", &raw.acme, "");
    unsupported(ctx, "http.ssl.client_auth_type", &raw.client_auth_type, "");
    unsupported(
        ctx,
        "http.ssl.root_ca",
        &raw.root_ca,
        ": client certificates are not verified",
    );
    unsupported(
        ctx,
        "http.ssl.rootCa",
        &raw.rootca,
        ": client certificates are not verified",
    );
    let root_ca = match (&raw.root_ca, &raw.rootca) {
        (Some(_), _) => ctx.path("http.ssl.root_ca", raw.root_ca.as_ref()),
        (None, v) => ctx.path("http.ssl.rootCa", v.as_ref()),
    };
    SslConfig {
        address,
        cert,
        key,
        redirect: ctx
            .boolean("http.ssl.redirect", raw.redirect.as_ref())
            .unwrap_or(false),
        root_ca,
    }
}

pub(crate) fn pool(raw: PoolRaw, p: &str, ctx: &mut Ctx<'_>) -> PoolConfig {
    let timeout = |ctx: &mut Ctx<'_>, k: &str, v: &Option<Value>| match ctx
        .duration(&format!("{p}.{k}"), v.as_ref())
    {
        None => RR_TIMEOUT,
        Some(d) if d.is_zero() => RR_TIMEOUT,
        Some(d) => d,
    };
    let num_workers = match ctx.uint_max(
        &format!("{p}.num_workers"),
        raw.num_workers.as_ref(),
        MAX_WORKERS as u64,
    ) {
        None | Some(0) => ctx.host.default_workers(),
        Some(n) => usize::try_from(n).unwrap_or(MAX_WORKERS),
    };
    let max_queue_size = ctx
        .uint(&format!("{p}.max_queue_size"), raw.max_queue_size.as_ref())
        .map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let supervisor = match raw.supervisor {
        None => SupervisorLimits {
            watch_tick: RR_WATCH_TICK,
            ..Default::default()
        },
        Some(s) => supervisor(s, p, ctx),
    };
    let settings = PoolSettings {
        num_workers,
        max_jobs: ctx
            .uint(&format!("{p}.max_jobs"), raw.max_jobs.as_ref())
            .unwrap_or(0),
        max_queue_size,
        allocate_timeout: timeout(ctx, "allocate_timeout", &raw.allocate_timeout),
        destroy_timeout: timeout(ctx, "destroy_timeout", &raw.destroy_timeout),
        reset_timeout: timeout(ctx, "reset_timeout", &raw.reset_timeout),
        stream_timeout: timeout(ctx, "stream_timeout", &raw.stream_timeout),
        debug: ctx
            .boolean(&format!("{p}.debug"), raw.debug.as_ref())
            .unwrap_or(false),
        supervisor,
    };
    if raw.dynamic_allocator.as_ref().is_some_and(|v| !v.is_null()) {
        ctx.warn(format!(
            "{p}.dynamic_allocator is accepted but not used: pacer scales the pool \
             through the operator (num_workers can change live)"
        ));
    }
    PoolConfig {
        settings,
        command: ctx.command(&format!("{p}.command"), raw.command.as_ref()),
    }
}

fn supervisor(raw: SupervisorRaw, pool: &str, ctx: &mut Ctx<'_>) -> SupervisorLimits {
    let p = format!("{pool}.supervisor");
    // 0 means "off" for every limit, as in RoadRunner.
    let limit = |ctx: &mut Ctx<'_>, k: &str, v: &Option<Value>| {
        ctx.duration(&format!("{p}.{k}"), v.as_ref())
            .filter(|d| !d.is_zero())
    };
    let max_worker_memory = match ctx.uint(
        &format!("{p}.max_worker_memory"),
        raw.max_worker_memory.as_ref(),
    ) {
        None | Some(0) => None,
        Some(mb) => match mb.checked_mul(MIB) {
            Some(b) => Some(b),
            None => {
                ctx.error(ConfigError::invalid(
                    &format!("{p}.max_worker_memory"),
                    mb.to_string(),
                    "a size in MB that fits in 64 bits",
                ));
                None
            }
        },
    };
    SupervisorLimits {
        watch_tick: limit(ctx, "watch_tick", &raw.watch_tick).unwrap_or(RR_WATCH_TICK),
        ttl: limit(ctx, "ttl", &raw.ttl),
        idle_ttl: limit(ctx, "idle_ttl", &raw.idle_ttl),
        max_worker_memory,
        exec_ttl: limit(ctx, "exec_ttl", &raw.exec_ttl),
    }
}

// ------------------------------------------------------------------ rpc/status/metrics

pub(crate) const DEFAULT_RPC: &str = "tcp://127.0.0.1:6001";

fn rpc(raw: RpcRaw, ctx: &mut Ctx<'_>) -> RpcConfig {
    let listen = ctx
        .string("rpc.listen", raw.listen.as_ref())
        .unwrap_or_else(|| DEFAULT_RPC.to_string());
    let parsed = match listen.split_once("://") {
        Some(("tcp", rest)) if !rest.contains("://") => {
            parse_listen(rest).map(|a| RpcAddr::Tcp(a.to_string()))
        }
        Some(("unix", rest)) if !rest.is_empty() && !rest.contains("://") => {
            Some(RpcAddr::Unix(PathBuf::from(rest)))
        }
        _ => None,
    };
    let listen = parsed.unwrap_or_else(|| {
        ctx.error(ConfigError::invalid(
            "rpc.listen",
            format!("{listen:?}"),
            "tcp://host:port (with an IP address) or unix:///path/to.sock",
        ));
        RpcAddr::Tcp(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 6001).to_string())
    });
    if !listen.is_local() {
        ctx.warn(format!(
            "rpc.listen: {listen} is reachable from other hosts and RPC has no authentication"
        ));
    }
    RpcConfig { listen }
}

fn status(raw: StatusRaw, ctx: &mut Ctx<'_>) -> StatusConfig {
    let before = ctx.errors.len();
    let address = ctx.listen("status.address", raw.address.as_ref());
    let address = require(
        ctx,
        before,
        address,
        "status.address",
        "the address of /health and /ready, e.g. address: 127.0.0.1:2114",
    )
    .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0));
    let check_timeout = match raw.check_timeout.as_ref() {
        // RoadRunner's code reads an integer of seconds (also from a quoted number).
        Some(v @ Value::Number(_)) => ctx
            .uint("status.check_timeout", Some(v))
            .map(Duration::from_secs),
        Some(v @ Value::String(s)) if s.trim().bytes().all(|b| b.is_ascii_digit()) => ctx
            .uint("status.check_timeout", Some(v))
            .map(Duration::from_secs),
        // Its docs write a duration (`30s`).
        v => ctx.duration("status.check_timeout", v),
    }
    .filter(|d| !d.is_zero())
    .unwrap_or(Duration::from_secs(60));
    StatusConfig {
        address,
        unavailable_status_code: ctx
            .status_code(
                "status.unavailable_status_code",
                raw.unavailable_status_code.as_ref(),
            )
            .unwrap_or(503),
        check_timeout,
    }
}

fn metrics(raw: MetricsRaw, ctx: &mut Ctx<'_>) -> MetricsConfig {
    let address = ctx
        .listen("metrics.address", raw.address.as_ref())
        .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 2112));
    let mut collect = BTreeMap::new();
    for (name, c) in raw.collect.unwrap_or_default() {
        let p = format!("metrics.collect.{name}");
        let valid_name = name.chars().enumerate().all(|(i, ch)| {
            ch.is_ascii_alphabetic() || ch == '_' || ch == ':' || (i > 0 && ch.is_ascii_digit())
        });
        if name.is_empty() || !valid_name {
            ctx.error(ConfigError::invalid(
                "metrics.collect",
                format!("{name:?}"),
                "a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)",
            ));
            continue;
        }
        let before = ctx.errors.len();
        let kind = ctx.string(&format!("{p}.type"), c.kind.as_ref());
        let kind = match kind.as_deref().map(str::to_lowercase).as_deref() {
            Some("counter") => Some(CollectorKind::Counter),
            Some("gauge") => Some(CollectorKind::Gauge),
            Some("histogram") => Some(CollectorKind::Histogram),
            Some("summary") => Some(CollectorKind::Summary),
            Some(_) => {
                if let Some(v) = &c.kind {
                    ctx.invalid(
                        &format!("{p}.type"),
                        v,
                        "counter, gauge, histogram or summary",
                    );
                }
                None
            }
            None => require(
                ctx,
                before,
                None,
                &format!("{p}.type"),
                "counter, gauge, histogram or summary",
            ),
        };
        let collector = CollectorConfig {
            kind: kind.unwrap_or(CollectorKind::Counter),
            help: ctx
                .string(&format!("{p}.help"), c.help.as_ref())
                .unwrap_or_default(),
            namespace: ctx.string(&format!("{p}.namespace"), c.namespace.as_ref()),
            subsystem: ctx.string(&format!("{p}.subsystem"), c.subsystem.as_ref()),
            labels: ctx
                .strings(&format!("{p}.labels"), c.labels.as_ref())
                .unwrap_or_default(),
            buckets: floats(ctx, &format!("{p}.buckets"), c.buckets.as_ref()),
            objectives: objectives(ctx, &format!("{p}.objectives"), c.objectives.as_ref()),
        };
        collect.insert(name, collector);
    }
    MetricsConfig { address, collect }
}

fn float(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn floats(ctx: &mut Ctx<'_>, key: &str, v: Option<&Value>) -> Vec<f64> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Sequence(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                let f = float(item);
                if f.is_none() {
                    ctx.invalid(&format!("{key}[{i}]"), item, "a number");
                }
                f
            })
            .collect(),
        Some(other) => {
            ctx.invalid(key, other, "a list of numbers");
            Vec::new()
        }
    }
}

/// `objectives`: a mapping `{0.5: 0.05}` or RoadRunner's list of one-entry mappings.
fn objectives(ctx: &mut Ctx<'_>, key: &str, v: Option<&Value>) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let mut add = |ctx: &mut Ctx<'_>, map: &serde_yaml::Mapping| {
        for (q, e) in map {
            match (float(q), float(e)) {
                (Some(q), Some(e)) => out.push((q, e)),
                _ => ctx.invalid(
                    key,
                    &Value::Mapping(map.clone()),
                    "quantile: error pairs of numbers",
                ),
            }
        }
    };
    match v {
        None | Some(Value::Null) => {}
        Some(Value::Mapping(m)) => add(ctx, m),
        Some(Value::Sequence(items)) => {
            for item in items {
                match item {
                    Value::Mapping(m) => add(ctx, m),
                    other => ctx.invalid(key, other, "quantile: error pairs of numbers"),
                }
            }
        }
        Some(other) => ctx.invalid(key, other, "quantile: error pairs of numbers"),
    }
    out
}

// ------------------------------------------------------------------------------ logs

fn log_mode(ctx: &mut Ctx<'_>, key: &str, v: Option<&Value>) -> Option<LogMode> {
    let s = ctx.string(key, v)?;
    match s.to_lowercase().as_str() {
        "development" => Some(LogMode::Development),
        "production" => Some(LogMode::Production),
        "raw" => Some(LogMode::Raw),
        "off" | "none" => Some(LogMode::Off),
        _ => {
            ctx.invalid(key, v?, "development, production, raw, off or none");
            None
        }
    }
}

fn log_level(ctx: &mut Ctx<'_>, key: &str, v: Option<&Value>) -> Option<LogLevel> {
    let s = ctx.string(key, v)?;
    match s.to_lowercase().as_str() {
        "debug" => Some(LogLevel::Debug),
        "info" => Some(LogLevel::Info),
        "warn" | "warning" => Some(LogLevel::Warn),
        "error" | "dpanic" | "panic" | "fatal" => Some(LogLevel::Error),
        "off" | "none" => Some(LogLevel::Off),
        _ => {
            ctx.invalid(key, v?, "debug, info, warn or error");
            None
        }
    }
}

fn log_outputs(ctx: &mut Ctx<'_>, key: &str, v: Option<&Value>) -> Vec<LogOutput> {
    let list = ctx.strings(key, v).unwrap_or_default();
    let mut out: Vec<LogOutput> = list
        .iter()
        .map(|s| match s.as_str() {
            "stderr" => LogOutput::Stderr,
            "stdout" => LogOutput::Stdout,
            path => LogOutput::File(ctx.resolve(std::path::Path::new(path))),
        })
        .collect();
    if out.is_empty() {
        out.push(LogOutput::Stderr);
    }
    out
}

fn logs(raw: LogsRaw, ctx: &mut Ctx<'_>) -> LogsConfig {
    let mode = log_mode(ctx, "logs.mode", raw.mode.as_ref()).unwrap_or(LogMode::Development);
    let level = log_level(ctx, "logs.level", raw.level.as_ref());
    let level = match (mode, level) {
        (LogMode::Off, _) => LogLevel::Off,
        (_, Some(l)) => l,
        (LogMode::Development, None) => LogLevel::Debug,
        (_, None) => LogLevel::Info,
    };
    let encoding = match ctx.string("logs.encoding", raw.encoding.as_ref()) {
        None => None,
        Some(s) => match s.to_lowercase().as_str() {
            "json" => Some(LogEncoding::Json),
            "console" => Some(LogEncoding::Console),
            _ => {
                if let Some(v) = &raw.encoding {
                    ctx.invalid("logs.encoding", v, "console or json");
                }
                None
            }
        },
    }
    .unwrap_or(if mode == LogMode::Production {
        LogEncoding::Json
    } else {
        LogEncoding::Console
    });
    let output = log_outputs(ctx, "logs.output", raw.output.as_ref());
    let err_output = match (&raw.err_output, &raw.erroroutput) {
        (Some(v), _) => log_outputs(ctx, "logs.err_output", Some(v)),
        (None, v) => log_outputs(ctx, "logs.errorOutput", v.as_ref()),
    };
    unsupported(ctx, "logs.line_ending", &raw.line_ending, "");
    unsupported(ctx, "logs.format", &raw.format, "");
    unsupported(
        ctx,
        "logs.file_logger_options",
        &raw.file_logger_options,
        ": use logs.output",
    );

    let mut channels = BTreeMap::new();
    for (name, c) in raw.channels.unwrap_or_default() {
        let p = format!("logs.channels.{name}");
        let mode = log_mode(ctx, &format!("{p}.mode"), c.mode.as_ref());
        let level = log_level(ctx, &format!("{p}.level"), c.level.as_ref());
        let level = match (mode, level) {
            (Some(LogMode::Off), _) => Some(LogLevel::Off),
            (_, l) => l,
        };
        for (k, v) in [
            ("encoding", &c.encoding),
            ("output", &c.output),
            ("err_output", &c.err_output),
            ("erroroutput", &c.erroroutput),
            ("line_ending", &c.line_ending),
            ("format", &c.format),
            ("file_logger_options", &c.file_logger_options),
        ] {
            if v.is_some() {
                ctx.warn(format!(
                    "{p}.{k} is not supported by pacer (ignored): channels only set a level"
                ));
            }
        }
        if let Some(l) = level {
            channels.insert(name, l);
        }
    }
    LogsConfig {
        mode,
        level,
        encoding,
        output,
        err_output,
        channels,
    }
}

// ---------------------------------------------------------------------------- reload

fn reload(raw: ReloadRaw, ctx: &mut Ctx<'_>) -> ReloadConfig {
    let interval = match ctx.duration("reload.interval", raw.interval.as_ref()) {
        None => Duration::from_secs(1),
        Some(d) if d.is_zero() => Duration::from_secs(1),
        Some(d) if d < Duration::from_secs(1) => {
            if let Some(v) = &raw.interval {
                ctx.invalid("reload.interval", v, "a duration of at least 1s");
            }
            Duration::from_secs(1)
        }
        Some(d) => d,
    };
    let patterns = ctx
        .strings("reload.patterns", raw.patterns.as_ref())
        .unwrap_or_else(|| vec![".php".to_string()]);
    let mut http = None;
    for (name, s) in raw.services.unwrap_or_default() {
        if name != "http" {
            ctx.warn(format!(
                "reload.services.{name}: pacer has no {name} pool (ignored)"
            ));
            continue;
        }
        let p = "reload.services.http";
        let paths = |ctx: &mut Ctx<'_>, k: &str, v: &Option<Value>| -> Vec<PathBuf> {
            ctx.strings(&format!("{p}.{k}"), v.as_ref())
                .unwrap_or_default()
                .iter()
                .map(|d| ctx.resolve(std::path::Path::new(d)))
                .collect()
        };
        let mut dirs = paths(ctx, "dirs", &s.dirs);
        if dirs.is_empty() {
            dirs.push(ctx.workdir.clone());
        }
        http = Some(ReloadService {
            dirs,
            recursive: ctx
                .boolean(&format!("{p}.recursive"), s.recursive.as_ref())
                .unwrap_or(false),
            ignore: paths(ctx, "ignore", &s.ignore),
            patterns: ctx
                .strings(&format!("{p}.patterns"), s.patterns.as_ref())
                .unwrap_or_default(),
        });
    }
    if http.is_none() {
        ctx.warn("reload has no services.http section: no files are watched");
    }
    ReloadConfig {
        interval,
        patterns,
        http,
    }
}

// ----------------------------------------------------------------------------- pacer

fn pacer(raw: PacerRaw, endure: Option<EndureRaw>, ctx: &mut Ctx<'_>) -> PacerConfig {
    let shutdown = raw.shutdown.unwrap_or_default();
    let endure = endure.unwrap_or_default();
    let endure_grace = ctx
        .duration("endure.grace_period", endure.grace_period.as_ref())
        .filter(|d| !d.is_zero());
    let own_grace = ctx.duration(
        "pacer.shutdown.grace_period",
        shutdown.grace_period.as_ref(),
    );
    if let (Some(own), Some(rr)) = (own_grace, endure_grace)
        && own != rr
    {
        ctx.warn("endure.grace_period is overridden by pacer.shutdown.grace_period");
    }
    unsupported(ctx, "endure.log_level", &endure.log_level, "");
    unsupported(ctx, "endure.watchdog_sec", &endure.watchdog_sec, "");
    unsupported(ctx, "endure.print_graph", &endure.print_graph, "");
    let runtime = raw.runtime.unwrap_or_default();
    let threads = ctx
        .uint_max("pacer.runtime.threads", runtime.threads.as_ref(), 1024)
        .map_or(0, |n| usize::try_from(n).unwrap_or(0));
    let shards = ctx
        .uint_max("pacer.runtime.shards", runtime.shards.as_ref(), 1024)
        .map_or(1, |n| usize::try_from(n).unwrap_or(1));
    let pin = ctx
        .boolean("pacer.runtime.pin", runtime.pin.as_ref())
        .unwrap_or(true);
    PacerConfig {
        shutdown: ShutdownConfig {
            delay: ctx
                .duration("pacer.shutdown.delay", shutdown.delay.as_ref())
                .unwrap_or(Duration::ZERO),
            grace_period: own_grace
                .or(endure_grace)
                .unwrap_or(Duration::from_secs(30)),
        },
        runtime: RuntimeConfig {
            threads,
            shards,
            pin,
        },
        http: pacer_http(raw.http.unwrap_or_default(), ctx),
        readiness: readiness(raw.readiness.unwrap_or_default(), ctx),
    }
}

fn readiness(raw: ReadinessRaw, ctx: &mut Ctx<'_>) -> ReadinessConfig {
    let mode = ctx.string("pacer.readiness.mode", raw.mode.as_ref());
    let saturation = match mode.as_deref().map(str::trim) {
        None | Some("accepting") => false,
        Some("saturation") => true,
        Some(_) => {
            if let Some(v) = raw.mode.as_ref() {
                ctx.invalid("pacer.readiness.mode", v, "\"accepting\" or \"saturation\"");
            }
            false
        }
    };
    let high = ctx
        .uint("pacer.readiness.queue_high", raw.queue_high.as_ref())
        .map_or(10, |n| usize::try_from(n).unwrap_or(usize::MAX));
    if high == 0
        && let Some(v) = raw.queue_high.as_ref()
    {
        ctx.invalid("pacer.readiness.queue_high", v, "a positive integer");
    }
    let low = ctx
        .uint("pacer.readiness.queue_low", raw.queue_low.as_ref())
        .map_or(high / 2, |n| usize::try_from(n).unwrap_or(usize::MAX));
    if low >= high
        && high > 0
        && let Some(v) = raw.queue_low.as_ref()
    {
        ctx.invalid(
            "pacer.readiness.queue_low",
            v,
            &format!("an integer below queue_high ({high})"),
        );
    }
    let high_for = ctx
        .duration("pacer.readiness.high_for", raw.high_for.as_ref())
        .unwrap_or(Duration::from_secs(5));
    let low_for = ctx
        .duration("pacer.readiness.low_for", raw.low_for.as_ref())
        .unwrap_or(Duration::from_secs(10));
    if !saturation {
        return ReadinessConfig::Accepting;
    }
    ReadinessConfig::Saturation(SaturationConfig {
        queue_high: high.max(1),
        queue_low: low.min(high.max(1) - 1),
        high_for,
        low_for,
    })
}

/// Default of `pacer.http.header_read_timeout`.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default of `pacer.http.max_requests_per_connection`.
pub const DEFAULT_MAX_REQUESTS_PER_CONNECTION: u64 = 10_000;
/// Default of `pacer.http.max_header_count`.
pub const DEFAULT_MAX_HEADER_COUNT: usize = 1000;
/// Default of `pacer.http.max_header_bytes` (Go's `http.DefaultMaxHeaderBytes`).
pub const DEFAULT_MAX_HEADER_BYTES: usize = 1 << 20;
/// The smallest `pacer.http.max_header_bytes` (hyper's smallest read buffer).
const MIN_HEADER_BYTES: u64 = 8192;

fn pacer_http(raw: PacerHttpRaw, ctx: &mut Ctx<'_>) -> PacerHttpConfig {
    let key = "pacer.http.header_read_timeout";
    let header_read_timeout = match ctx.duration(key, raw.header_read_timeout.as_ref()) {
        Some(d) if d.is_zero() => {
            if let Some(v) = raw.header_read_timeout.as_ref() {
                ctx.invalid(key, v, "a positive duration (e.g. \"10s\")");
            }
            DEFAULT_HEADER_READ_TIMEOUT
        }
        Some(d) => d,
        None => DEFAULT_HEADER_READ_TIMEOUT,
    };
    PacerHttpConfig {
        header_read_timeout,
        max_requests_per_connection: ctx
            .uint(
                "pacer.http.max_requests_per_connection",
                raw.max_requests_per_connection.as_ref(),
            )
            .unwrap_or(DEFAULT_MAX_REQUESTS_PER_CONNECTION),
        max_header_count: match ctx
            .uint("pacer.http.max_header_count", raw.max_header_count.as_ref())
        {
            Some(0) => {
                if let Some(v) = raw.max_header_count.as_ref() {
                    ctx.invalid("pacer.http.max_header_count", v, "a positive integer");
                }
                DEFAULT_MAX_HEADER_COUNT
            }
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
            None => DEFAULT_MAX_HEADER_COUNT,
        },
        max_header_bytes: match ctx
            .uint("pacer.http.max_header_bytes", raw.max_header_bytes.as_ref())
        {
            Some(n) if n < MIN_HEADER_BYTES || n > u64::from(u32::MAX) => {
                if let Some(v) = raw.max_header_bytes.as_ref() {
                    ctx.invalid(
                        "pacer.http.max_header_bytes",
                        v,
                        &format!("an integer from {MIN_HEADER_BYTES} to {}", u32::MAX),
                    );
                }
                DEFAULT_MAX_HEADER_BYTES
            }
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
            None => DEFAULT_MAX_HEADER_BYTES,
        },
    }
}

// ------------------------------------------------------------------ otel

/// Where an OTLP collector listens when nothing says otherwise (the OTLP default ports,
/// on loopback: a pod's collector sidecar).
const OTLP_HTTP_DEFAULT_ENDPOINT: &str = "127.0.0.1:4318";
const OTLP_GRPC_DEFAULT_ENDPOINT: &str = "127.0.0.1:4317";

fn otel(raw: OtelRaw, ctx: &mut Ctx<'_>) -> OtelConfig {
    let env = |k: &str| {
        ctx.host
            .env
            .get(k)
            .filter(|v| !v.trim().is_empty())
            .cloned()
    };
    let exporter = match ctx
        .string("otel.exporter", raw.exporter.as_ref())
        .as_deref()
    {
        None | Some("otlp") => OtelExporter::Otlp,
        Some("stdout") => OtelExporter::Stdout,
        Some("stderr") => OtelExporter::Stderr,
        Some(other) => {
            ctx.error(ConfigError::invalid(
                "otel.exporter",
                format!("{other:?}"),
                "otlp, stdout or stderr (RoadRunner itself refuses zipkin and jaeger: \
                 send OTLP to a collector that forwards to them)",
            ));
            OtelExporter::Otlp
        }
    };
    // RoadRunner reads the protocol from the environment only when `client` is unset.
    let client = ctx.string("otel.client", raw.client.as_ref());
    let (client_key, client) = match client {
        Some(c) => ("otel.client", Some(c)),
        None => match env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") {
            Some(p) => ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", Some(p)),
            None => (
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                env("OTEL_EXPORTER_OTLP_PROTOCOL"),
            ),
        },
    };
    let client = match client.as_deref() {
        None | Some("http" | "http/protobuf") => OtlpClient::Http,
        Some("grpc") => OtlpClient::Grpc,
        Some("http/json") if client_key != "otel.client" => {
            // As RoadRunner does: warned about, exported as protobuf.
            ctx.warn(format!(
                "{client_key}: \"http/json\" is not supported, exporting OTLP/HTTP with protobuf bodies"
            ));
            OtlpClient::Http
        }
        Some(other) => {
            ctx.error(ConfigError::invalid(
                client_key,
                format!("{other:?}"),
                "http (OTLP/HTTP with protobuf bodies, the collector's port 4318) or grpc \
                 (OTLP/gRPC, port 4317)",
            ));
            OtlpClient::Http
        }
    };
    let insecure = ctx
        .boolean("otel.insecure", raw.insecure.as_ref())
        .unwrap_or(false);
    let compress = ctx
        .boolean("otel.compress", raw.compress.as_ref())
        .unwrap_or(false);
    let custom_url = ctx.string("otel.custom_url", raw.custom_url.as_ref());
    if let Some(path) = &custom_url
        && (!path.starts_with('/') || path.contains(char::is_whitespace))
    {
        ctx.error(ConfigError::invalid(
            "otel.custom_url",
            format!("{path:?}"),
            "a URL path starting with / (e.g. /v1/traces)",
        ));
    }
    // gRPC has a fixed method path, which the exporter adds; `custom_url` is for HTTP
    // only (as in RoadRunner).
    let path = match client {
        OtlpClient::Http => custom_url.unwrap_or_else(|| "/v1/traces".to_string()),
        OtlpClient::Grpc => String::new(),
    };
    let (key, endpoint) = match ctx.string("otel.endpoint", raw.endpoint.as_ref()) {
        Some(e) => ("otel.endpoint", e),
        None => match env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .map(|e| ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", e))
            .or_else(|| {
                env("OTEL_EXPORTER_OTLP_ENDPOINT").map(|e| ("OTEL_EXPORTER_OTLP_ENDPOINT", e))
            }) {
            Some(found) => found,
            None => (
                "otel.endpoint",
                match client {
                    OtlpClient::Http => OTLP_HTTP_DEFAULT_ENDPOINT,
                    OtlpClient::Grpc => OTLP_GRPC_DEFAULT_ENDPOINT,
                }
                .to_string(),
            ),
        },
    };
    let url = match otlp_url(&endpoint, insecure, &path) {
        Ok(url) => url,
        Err(expected) => {
            ctx.error(ConfigError::invalid(key, format!("{endpoint:?}"), expected));
            String::new()
        }
    };
    let mut headers = Vec::new();
    for (name, value) in ctx.string_map("otel.headers", raw.headers.as_ref()) {
        let valid = http::HeaderName::from_bytes(name.as_bytes()).is_ok()
            && http::HeaderValue::from_str(&value).is_ok();
        if valid {
            headers.push((name, value));
        } else {
            ctx.error(ConfigError::invalid(
                &format!("otel.headers.{name}"),
                format!("{value:?}"),
                "an HTTP header name with a visible-ASCII value",
            ));
        }
    }

    let res = raw.resource.unwrap_or_default();
    let deprecated_name = ctx.string("otel.service_name", raw.service_name.as_ref());
    if deprecated_name.is_some() {
        ctx.warn("otel.service_name is deprecated, use otel.resource.service_name instead");
    }
    let deprecated_version = ctx.string("otel.service_version", raw.service_version.as_ref());
    if deprecated_version.is_some() {
        ctx.warn("otel.service_version is deprecated, use otel.resource.service_version instead");
    }
    let env_attrs = resource_attributes(env("OTEL_RESOURCE_ATTRIBUTES").as_deref());
    let from_env = |attr: &str| {
        env_attrs
            .iter()
            .find(|(k, _)| k == attr)
            .map(|(_, v)| v.clone())
    };
    let service_name = ctx
        .string("otel.resource.service_name", res.service_name.as_ref())
        .or(deprecated_name)
        .or_else(|| env("OTEL_SERVICE_NAME"))
        .or_else(|| from_env("service.name"))
        .unwrap_or_else(|| "pacer".to_string());
    let service_version = ctx
        .string(
            "otel.resource.service_version",
            res.service_version.as_ref(),
        )
        .or(deprecated_version)
        .or_else(|| from_env("service.version"))
        .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string());
    let service_instance_id = ctx
        .string(
            "otel.resource.service_instance_id",
            res.service_instance_id.as_ref(),
        )
        .or_else(|| from_env("service.instance.id"))
        .or_else(|| env("HOSTNAME"));
    let service_namespace = ctx
        .string(
            "otel.resource.service_namespace",
            res.service_namespace.as_ref(),
        )
        .or_else(|| from_env("service.namespace"));
    OtelConfig {
        exporter,
        client,
        url,
        insecure,
        compress,
        headers,
        resource: OtelResource {
            service_name,
            service_version,
            service_instance_id,
            service_namespace,
        },
    }
}

/// RoadRunner's `endpoint` is `host:port` (the Go SDK's `WithEndpoint`), the scheme
/// coming from `insecure`; the environment variables are URLs. Both are accepted. An
/// empty `path` (gRPC, whose method path is fixed) drops a URL's own path too.
fn otlp_url(endpoint: &str, insecure: bool, path: &str) -> Result<String, &'static str> {
    const EXPECTED: &str = "host:port (e.g. 127.0.0.1:4318), or an http:// or https:// URL";
    let (scheme, rest) = match endpoint.split_once("://") {
        Some(("http", rest)) => ("http", rest),
        Some(("https", rest)) => ("https", rest),
        Some(_) => return Err(EXPECTED),
        None => (if insecure { "http" } else { "https" }, endpoint),
    };
    // A URL may carry its own path (the env variables' form: base URL + /v1/traces).
    let (authority, own_path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(&rest[i..])),
        None => (rest, None),
    };
    let uri: http::uri::Authority = authority.parse().map_err(|_| EXPECTED)?;
    if uri.host().is_empty() || authority.contains('@') {
        return Err(EXPECTED);
    }
    let path = match own_path {
        Some(p) if p != "/" && endpoint.contains("://") && !path.is_empty() => p.to_string(),
        _ => path.to_string(),
    };
    Ok(format!("{scheme}://{authority}{path}"))
}

/// `OTEL_RESOURCE_ATTRIBUTES`: `key=value,key=value` (values percent-encoded).
fn resource_attributes(raw: Option<&str>) -> Vec<(String, String)> {
    raw.unwrap_or_default()
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            let v =
                form_urlencoded::parse(format!("v={}", v.trim().replace('+', "%2B")).as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
            (k.trim().to_string(), v)
        })
        .filter(|(k, _)| !k.is_empty())
        .collect()
}
