//! End-to-end table tests of the config layer: YAML text in, `Config` or error text out.
//! The machine (environment, passwd/group, cgroup, directories) is a temp-dir fixture.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use super::host::Host;
use super::*;
use crate::pool::MAX_WORKERS;

const BASE: &str = "version: \"3\"\nserver:\n  command: php worker.php\n";

struct Fixture {
    dir: tempfile::TempDir,
    host: Host,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("passwd"),
            "root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33::/var/www:/sbin/nologin\n\
             app:x:1000:1001::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            d.join("group"),
            "root:x:0:\nwww-data:x:33:\nstaff:x:50:app\n",
        )
        .unwrap();
        std::fs::create_dir(d.join("cgroup")).unwrap();
        std::fs::write(d.join("cgroup/cpu.max"), "250000 100000\n").unwrap();
        let env: HashMap<String, String> = [
            ("HOME", "/home/app"),
            ("PORT", "9000"),
            ("EMPTY", ""),
            ("WORKERS", "6"),
            ("APP_ENV", "prod"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let host = Host {
            env,
            passwd: d.join("passwd"),
            group: d.join("group"),
            cgroup_root: d.join("cgroup"),
            fallback_cpus: 7,
            temp_dir: PathBuf::from("/tmp"),
            cwd: d.to_path_buf(),
        };
        Fixture { dir, host }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn opts(&self) -> LoadOptions {
        LoadOptions {
            path: self.path().join(".rr.yaml"),
            ..LoadOptions::default()
        }
    }

    fn parse_opts(&self, yaml: &str, opts: &LoadOptions) -> Result<Loaded, ConfigError> {
        parse_with(yaml, opts, &self.host)
    }

    fn parse(&self, yaml: &str) -> Result<Loaded, ConfigError> {
        self.parse_opts(yaml, &self.opts())
    }

    /// BASE plus `extra` (whose own `server` section replaces BASE's).
    fn with_base(extra: &str) -> String {
        if extra.lines().any(|l| l.starts_with("server:")) {
            format!("version: \"3\"\n{extra}\n")
        } else {
            format!("{BASE}{extra}\n")
        }
    }

    /// BASE plus `extra`, which must parse.
    fn ok(&self, extra: &str) -> Loaded {
        let yaml = Self::with_base(extra);
        match self.parse(&yaml) {
            Ok(l) => l,
            Err(e) => panic!("{yaml}\n→ {e}"),
        }
    }

    /// BASE plus `extra`, which must fail; the error text.
    fn err(&self, extra: &str) -> String {
        let yaml = Self::with_base(extra);
        match self.parse(&yaml) {
            Ok(l) => panic!("{yaml}\nparsed: {:#?}", l.config),
            Err(e) => e.to_string(),
        }
    }
}

fn http(c: &Config) -> &HttpConfig {
    c.http.as_ref().unwrap()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn minimal_config_defaults() {
    let f = Fixture::new();
    let l = f.ok("");
    assert_eq!(l.warnings, Vec::<String>::new());
    let c = l.config;
    assert_eq!(c.version, "3");
    assert_eq!(c.workdir, f.path());
    assert_eq!(c.server.command, ["php", "worker.php"]);
    assert!(c.server.env.is_empty());
    assert_eq!(c.server.relay, crate::relay::RelayAddr::Pipes);
    assert_eq!((c.server.uid, c.server.gid), (None, None));
    assert_eq!(c.http, None);
    assert_eq!(c.rpc, None);
    assert_eq!(c.status, None);
    assert_eq!(c.metrics, None);
    assert_eq!(c.reload, None);
    assert_eq!(
        c.logs,
        LogsConfig {
            mode: LogMode::Development,
            level: LogLevel::Debug,
            encoding: LogEncoding::Console,
            output: vec![LogOutput::Stderr],
            err_output: vec![LogOutput::Stderr],
            channels: Default::default(),
        }
    );
    assert_eq!(c.pacer.shutdown.delay, Duration::ZERO);
    assert_eq!(c.pacer.shutdown.grace_period, Duration::from_secs(30));
    assert_eq!(c.pacer.runtime.threads, 0);
    assert_eq!(c.pacer.http.header_read_timeout, Duration::from_secs(30));
    assert_eq!(c.pacer.http.max_requests_per_connection, 10_000);
    assert_eq!(c.pacer.http.max_header_count, 1000);
    assert_eq!(c.pacer.http.max_header_bytes, 1 << 20);
    assert!(c.dotenv.is_empty());
}

#[test]
fn http_section_defaults() {
    let f = Fixture::new();
    let c = f.ok("http: {address: 0.0.0.0:8080}").config;
    let h = http(&c);
    assert_eq!(h.address, Some(addr("0.0.0.0:8080")));
    assert_eq!(h.max_request_size, 1000 * 1024 * 1024);
    assert_eq!(h.internal_error_code, 500);
    assert!(!h.access_logs && !h.raw_body);
    assert!(h.middleware.is_empty());
    assert_eq!(
        h.trusted_subnets
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        DEFAULT_TRUSTED_SUBNETS
    );
    assert_eq!(h.uploads.dir, Path::new("/tmp"));
    assert_eq!(h.uploads.filter, ExtensionFilter::default());
    assert_eq!(h.static_files, None);
    assert_eq!(h.headers, None);
    assert_eq!(h.ssl, None);
    assert_eq!(
        h.http2,
        Http2Config {
            h2c: false,
            max_concurrent_streams: 128
        }
    );
    let p = &h.pool.settings;
    assert_eq!(p.num_workers, 3, "cgroup quota 2.5 CPUs, rounded up");
    assert_eq!((p.max_jobs, p.max_queue_size, p.debug), (0, 0, false));
    for t in [
        p.allocate_timeout,
        p.destroy_timeout,
        p.reset_timeout,
        p.stream_timeout,
    ] {
        assert_eq!(t, Duration::from_secs(60));
    }
    assert_eq!(
        p.supervisor,
        crate::pool::SupervisorLimits {
            watch_tick: Duration::from_secs(5),
            ..Default::default()
        }
    );
    assert_eq!(h.pool.command, None);
}

/// Every key: a fragment of YAML and the value it has in the effective config (same
/// keys and units as the input), so parsing, defaults and output are checked together.
#[test]
fn every_key_parses() {
    let f = Fixture::new();
    let w = f.path().display().to_string();
    let h = |inner: &str| format!("http: {{address: ':8080', {inner}}}");
    let cases: Vec<(String, &str, serde_json::Value)> = vec![
        // server
        ("".into(), "/server/command", json!(["php", "worker.php"])),
        ("".into(), "/server/relay", json!("pipes")),
        ("server: {command: [php, -d, 'a=b c', w.php]}".into(), "/server/command", json!(["php", "-d", "a=b c", "w.php"])),
        ("server: {command: 'php  -f  w.php '}".into(), "/server/command", json!(["php", "-f", "w.php"])),
        ("server: {command: ['php w.php']}".into(), "/server/command", json!(["php", "w.php"])),
        ("server: {command: php, env: {app_env: x, Debug: 1}}".into(), "/server/env", json!({"APP_ENV": "x", "DEBUG": "1"})),
        ("server: {command: php, relay: 'tcp://127.0.0.1:6002'}".into(), "/server/relay", json!("tcp://127.0.0.1:6002")),
        ("server: {command: php, relay: 'unix://rr.sock'}".into(), "/server/relay", json!("unix://rr.sock")),
        ("server: {command: php, relay: 'tcp://localhost:6002'}".into(), "/server/relay", json!("tcp://127.0.0.1:6002")),
        ("server: {command: php, relay: ''}".into(), "/server/relay", json!("pipes")),
        ("server: {command: php, user: www-data}".into(), "/server/user", json!("www-data")),
        // http
        (h(""), "/http/address", json!("0.0.0.0:8080")),
        (h("max_request_size: 10"), "/http/max_request_size", json!(10)),
        (h("max_request_size: 0"), "/http/max_request_size", json!(1000)),
        (h("internal_error_code: 502"), "/http/internal_error_code", json!(502)),
        (h("internal_error_code: 0"), "/http/internal_error_code", json!(500)),
        (h("access_logs: true"), "/http/access_logs", json!(true)),
        (h("raw_body: 'true'"), "/http/raw_body", json!(true)),
        (h("middleware: [gzip, http_metrics, proxy_ip_parser]"), "/http/middleware", json!(["gzip", "http_metrics", "proxy_ip_parser"])),
        (h("middleware: 'gzip, proxy_ip_parser'"), "/http/middleware", json!(["gzip", "proxy_ip_parser"])),
        (h("trusted_subnets: [10.1.2.3/8, '::1/128']"), "/http/trusted_subnets", json!(["10.0.0.0/8", "::1/128"])),
        (h("trusted_subnets: []"), "/http/trusted_subnets", json!([])),
        (h("uploads: {dir: up, forbid: [.PHP, exe], allow: ['.jpg', .php, '']}"), "/http/uploads", json!({"dir": format!("{w}/up"), "forbid": [".php", ".exe"], "allow": [".jpg"]})),
        (h("uploads: {dir: /var/up}"), "/http/uploads/dir", json!("/var/up")),
        (h("middleware: [static], static: {dir: public, forbid: [''], allow: [.css, .JS], calculate_etag: true, weak: true, request: {X-In: a}, response: {X-Out: b}}"), "/http/static",
            json!({"dir": format!("{w}/public"), "forbid": [".php"], "allow": [".css", ".js"], "calculate_etag": true, "weak": true, "request": {"x-in": "a"}, "response": {"x-out": "b"}})),
        (h("middleware: [static], static: {}"), "/http/static/dir", json!(w)),
        (h("middleware: [headers], headers: {cors: {allowed_origin: '*', allowed_methods: 'GET,POST', allow_credentials: true, max_age: 600}, request: {X-A: '1'}, response: {X-B: '2'}}"), "/http/headers",
            json!({"cors": {"allowed_origin": "*", "allowed_headers": "", "allowed_methods": "GET,POST", "allow_credentials": true, "exposed_headers": "", "max_age": 600, "options_success_status": 200, "debug": false}, "request": {"x-a": "1"}, "response": {"x-b": "2"}})),
        (h("ssl: {address: ':8443', cert: c.pem, key: /k.pem, redirect: true, rootCa: ca.pem}"), "/http/ssl",
            json!({"address": "0.0.0.0:8443", "cert": format!("{w}/c.pem"), "key": "/k.pem", "redirect": true, "root_ca": format!("{w}/ca.pem")})),
        ("http: {ssl: {cert: c, key: k}}".into(), "/http/ssl/address", json!("0.0.0.0:443")),
        (h("http2: {h2c: true, max_concurrent_streams: 0}"), "/http/http2", json!({"h2c": true, "max_concurrent_streams": 128})),
        (h("http2: {max_concurrent_streams: 64}"), "/http/http2/max_concurrent_streams", json!(64)),
        // http.pool
        (h("pool: {num_workers: 4}"), "/http/pool/num_workers", json!(4)),
        (h("pool: {num_workers: 0}"), "/http/pool/num_workers", json!(3)),
        (h("pool: {num_workers: '${WORKERS}'}"), "/http/pool/num_workers", json!(6)),
        (h("pool: {max_jobs: 500}"), "/http/pool/max_jobs", json!(500)),
        (h("pool: {max_queue_size: 100}"), "/http/pool/max_queue_size", json!(100)),
        (h("pool: {allocate_timeout: 1m30s}"), "/http/pool/allocate_timeout", json!("1m30s")),
        (h("pool: {allocate_timeout: 0}"), "/http/pool/allocate_timeout", json!("1m0s")),
        (h("pool: {destroy_timeout: 500ms}"), "/http/pool/destroy_timeout", json!("500ms")),
        (h("pool: {reset_timeout: 2h}"), "/http/pool/reset_timeout", json!("2h0m0s")),
        (h("pool: {stream_timeout: 10000000000}"), "/http/pool/stream_timeout", json!("10s")),
        (h("pool: {debug: true}"), "/http/pool/debug", json!(true)),
        (h("pool: {command: 'php other.php'}"), "/http/pool/command", json!(["php", "other.php"])),
        (h("pool: {supervisor: {}}"), "/http/pool/supervisor", json!({"watch_tick": "5s", "ttl": "0s", "idle_ttl": "0s", "max_worker_memory": 0, "exec_ttl": "0s"})),
        (h("pool: {supervisor: {watch_tick: 1s, ttl: 1h, idle_ttl: 10m, max_worker_memory: 128, exec_ttl: 30s}}"), "/http/pool/supervisor",
            json!({"watch_tick": "1s", "ttl": "1h0m0s", "idle_ttl": "10m0s", "max_worker_memory": 128, "exec_ttl": "30s"})),
        // rpc, status, metrics
        ("rpc: {}".into(), "/rpc/listen", json!("tcp://127.0.0.1:6001")),
        ("rpc:\n  listen: tcp://localhost:6010".into(), "/rpc/listen", json!("tcp://127.0.0.1:6010")),
        ("rpc:\n  listen: unix:///run/rr.sock".into(), "/rpc/listen", json!("unix:///run/rr.sock")),
        ("status: {address: ':2114'}".into(), "/status", json!({"address": "0.0.0.0:2114", "unavailable_status_code": 503, "check_timeout": "1m0s"})),
        ("status: {address: '127.0.0.1:2114', unavailable_status_code: 500, check_timeout: 10}".into(), "/status", json!({"address": "127.0.0.1:2114", "unavailable_status_code": 500, "check_timeout": "10s"})),
        ("status: {address: '127.0.0.1:2114', check_timeout: 30s}".into(), "/status/check_timeout", json!("30s")),
        ("status: {address: '127.0.0.1:2114', check_timeout: '15'}".into(), "/status/check_timeout", json!("15s")),
        (h("uploads: {dir: ./up/./x}"), "/http/uploads/dir", json!(format!("{w}/up/x"))),
        ("metrics: {}".into(), "/metrics", json!({"address": "127.0.0.1:2112", "collect": {}})),
        ("metrics: {address: '0.0.0.0:9100', collect: {app_metric: {type: histogram, help: Custom, labels: [type], buckets: [0.1, 1.0], objectives: [{1.4: 2.3}, {2.0: 1.4}]}}}".into(), "/metrics",
            json!({"address": "0.0.0.0:9100", "collect": {"app_metric": {"type": "histogram", "help": "Custom", "labels": ["type"], "buckets": [0.1, 1.0], "objectives": [{"1.4": 2.3}, {"2": 1.4}]}}})),
        // logs
        ("logs: {mode: production}".into(), "/logs", json!({"mode": "production", "level": "info", "encoding": "json", "output": ["stderr"], "err_output": ["stderr"], "channels": {}})),
        ("logs: {mode: development, level: WARN, encoding: json, output: [stdout, app.log], errorOutput: stdout}".into(), "/logs",
            json!({"mode": "development", "level": "warn", "encoding": "json", "output": ["stdout", format!("{w}/app.log")], "err_output": ["stdout"], "channels": {}})),
        ("logs: {mode: raw}".into(), "/logs/level", json!("info")),
        ("logs: {mode: none, level: debug}".into(), "/logs/level", json!("off")),
        ("logs: {level: panic, channels: {http: {level: error}, server: {mode: off}}}".into(), "/logs",
            json!({"mode": "development", "level": "error", "encoding": "console", "output": ["stderr"], "err_output": ["stderr"], "channels": {"http": {"level": "error"}, "server": {"level": "off"}}})),
        // reload
        ("reload: {services: {http: {}}}".into(), "/reload", json!({"interval": "1s", "patterns": [".php"], "services": {"http": {"dirs": [w], "recursive": false, "ignore": [], "patterns": []}}})),
        ("reload: {interval: 2s, patterns: [.php, .env], services: {http: {dirs: [src, /app], recursive: true, ignore: [vendor], patterns: [.twig]}}}".into(), "/reload",
            json!({"interval": "2s", "patterns": [".php", ".env"], "services": {"http": {"dirs": [format!("{w}/src"), "/app"], "recursive": true, "ignore": [format!("{w}/vendor")], "patterns": [".twig"]}}})),
        // pacer / endure
        ("pacer: {shutdown: {delay: 5s, grace_period: 1m}, runtime: {threads: 4}}".into(), "/pacer", json!({"shutdown": {"delay": "5s", "grace_period": "1m0s"}, "runtime": {"threads": 4, "shards": 1, "pin": true}, "http": {"header_read_timeout": "30s", "max_requests_per_connection": 10000, "max_header_count": 1000, "max_header_bytes": 1048576}, "readiness": {"mode": "accepting"}})),
        ("pacer: {runtime: {shards: 0, pin: false}}".into(), "/pacer/runtime", json!({"threads": 0, "shards": 0, "pin": false})),
        ("pacer: {readiness: {mode: saturation}}".into(), "/pacer/readiness", json!({"mode": "saturation", "queue_high": 10, "queue_low": 5, "high_for": "5s", "low_for": "10s"})),
        ("pacer: {readiness: {mode: saturation, queue_high: 4, queue_low: 1, high_for: 2s, low_for: 1m}}".into(), "/pacer/readiness", json!({"mode": "saturation", "queue_high": 4, "queue_low": 1, "high_for": "2s", "low_for": "1m0s"})),
        ("pacer: {http: {header_read_timeout: 5s, max_requests_per_connection: 0}}".into(), "/pacer/http", json!({"header_read_timeout": "5s", "max_requests_per_connection": 0, "max_header_count": 1000, "max_header_bytes": 1048576})),
        ("pacer: {http: {max_header_count: 200, max_header_bytes: 65536}}".into(), "/pacer/http", json!({"header_read_timeout": "30s", "max_requests_per_connection": 10000, "max_header_count": 200, "max_header_bytes": 65536})),
        ("endure: {grace_period: 45s}".into(), "/pacer/shutdown/grace_period", json!("45s")),
        ("endure: {grace_period: 45s}\npacer: {shutdown: {grace_period: 10s}}".into(), "/pacer/shutdown/grace_period", json!("10s")),
        ("pacer: {shutdown: {grace_period: 0s}}".into(), "/pacer/shutdown/grace_period", json!("0s")),
    ];
    for (extra, pointer, want) in cases {
        let c = f.ok(&extra).config;
        let got = to_json(&c);
        assert_eq!(got.pointer(pointer), Some(&want), "{extra}\n→ {pointer}");
    }
}

#[test]
fn typed_values_and_units() {
    let f = Fixture::new();
    let c = f
        .ok("http: {address: ':0', max_request_size: 2, pool: {supervisor: {max_worker_memory: 64}}}\n\
             status: {address: '[::1]:2114'}")
        .config;
    let h = http(&c);
    assert_eq!(h.address, Some(addr("0.0.0.0:0")));
    assert_eq!(h.max_request_size, 2 * 1024 * 1024);
    assert_eq!(
        h.pool.settings.supervisor.max_worker_memory,
        Some(64 * 1024 * 1024)
    );
    assert_eq!(c.status.unwrap().address, addr("[::1]:2114"));
    let filter = ExtensionFilter {
        forbid: vec![".php".into()],
        allow: vec![".jpg".into(), ".png".into()],
    };
    assert!(filter.permits("a/b/photo.JPG"));
    assert!(!filter.permits("x.php"));
    assert!(!filter.permits("archive.tar.gz"));
    assert!(!filter.permits("README"));
    let open = ExtensionFilter {
        forbid: vec![".exe".into()],
        allow: vec![],
    };
    assert!(open.permits("README") && open.permits("a.txt") && !open.permits("dir.d/x.EXE"));
}

#[test]
fn user_and_group_resolution() {
    let f = Fixture::new();
    let ids = |extra: &str| {
        let c = f.ok(&format!("server: {{command: php, {extra}}}")).config;
        (c.server.uid, c.server.gid)
    };
    assert_eq!(ids("user: www-data"), (Some(33), Some(33)));
    assert_eq!(ids("user: app"), (Some(1000), Some(1001)), "primary group");
    assert_eq!(ids("user: app, group: staff"), (Some(1000), Some(50)));
    assert_eq!(
        ids("user: 1000"),
        (Some(1000), Some(1001)),
        "numeric, listed"
    );
    assert_eq!(ids("user: 4242"), (Some(4242), None), "numeric, not listed");
    assert_eq!(ids("group: '77'"), (None, Some(77)));
    assert_eq!(ids("user: '', group: ''"), (None, None));
    assert_eq!(
        f.err("server: {command: php, user: nobody}"),
        format!(
            "server.user: \"nobody\" is not a user listed in {} or a numeric uid",
            f.path().join("passwd").display()
        )
    );
    assert_eq!(
        f.err("server: {command: php, group: wheel}"),
        format!(
            "server.group: \"wheel\" is not a group listed in {} or a numeric gid",
            f.path().join("group").display()
        )
    );
}

#[test]
fn env_substitution_in_values() {
    let f = Fixture::new();
    let c = f
        .ok("server:\n  command: php ${HOME}/w.php\n  env:\n    home: $HOME\n    port: ${PORT}\n    \
             mode: ${EMPTY:-dev}\n    plain: ${UNSET}\n    $HOME: key-not-expanded\n\
             http:\n  address: 127.0.0.1:${PORT}\n  middleware: [gzip, '${MW:-proxy_ip_parser}']\n\
             rpc:\n  listen: tcp://127.0.0.1:${RPC_PORT:-6001}")
        .config;
    assert_eq!(c.server.command, ["php", "/home/app/w.php"]);
    let env: Vec<(&str, &str)> = c
        .server
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        env,
        [
            ("$HOME", "key-not-expanded"),
            ("HOME", "/home/app"),
            ("MODE", "dev"),
            ("PLAIN", ""),
            ("PORT", "9000")
        ]
    );
    let h = http(&c);
    assert_eq!(h.address, Some(addr("127.0.0.1:9000")));
    assert_eq!(h.middleware, [Middleware::Gzip, Middleware::ProxyIpParser]);
    assert_eq!(c.rpc.unwrap().listen.to_string(), "tcp://127.0.0.1:6001");
}

#[test]
fn overrides_set_and_replace_values() {
    let f = Fixture::new();
    let mut opts = f.opts();
    opts.overrides = vec![
        "http.pool.num_workers=4".into(),
        "server.command=\"php w.php\"".into(),
        "http.middleware=[gzip, static]".into(),
        "http.static.dir=${HOME}".into(),
        "status.address=127.0.0.1:${PORT}".into(),
        "http.pool.supervisor.max_worker_memory=${MEM:-256}".into(),
    ];
    let yaml = format!("{BASE}http: {{address: ':80', pool: {{num_workers: 2}}}}\n");
    let c = f.parse_opts(&yaml, &opts).unwrap().config;
    let h = http(&c);
    assert_eq!(h.pool.settings.num_workers, 4);
    assert_eq!(c.server.command, ["php", "w.php"]);
    assert_eq!(h.middleware, [Middleware::Gzip, Middleware::Static]);
    assert_eq!(h.static_files.as_ref().unwrap().dir, Path::new("/home/app"));
    assert_eq!(c.status.as_ref().unwrap().address, addr("127.0.0.1:9000"));
    assert_eq!(
        h.pool.settings.supervisor.max_worker_memory,
        Some(256 << 20)
    );

    opts.overrides = vec![
        "server.command.x=1".into(),
        "nonsense".into(),
        "http.pool.num_workers=many".into(),
    ];
    let err = f.parse_opts(&yaml, &opts).unwrap_err().to_string();
    assert_eq!(
        err,
        "3 configuration errors:\n  \
         -o \"server.command.x=1\": server.command is not a section\n  \
         -o \"nonsense\": expected key.path=value\n  \
         http.pool.num_workers: \"many\" is not a non-negative integer"
    );
}

/// Laravel Octane's RoadRunner driver starts `rr` on an empty .rr.yaml it just touched,
/// with everything in `-o` (src/Commands/StartRoadRunnerCommand.php; v1.x passes
/// `version=2.7` and a space-separated command, v2.x `version=3` and a comma-separated
/// one, and no host by default).
#[test]
fn octane_starts_on_an_empty_file_with_overrides() {
    let f = Fixture::new();
    for (version, command, address) in [
        (
            "2.7",
            "/usr/bin/php8.2 /app/vendor/bin/roadrunner-worker",
            "127.0.0.1:8000",
        ),
        (
            "3",
            "/usr/bin/php8.2,/app/vendor/bin/roadrunner-worker",
            ":8000",
        ),
    ] {
        let mut opts = f.opts();
        opts.overrides = [
            format!("version={version}"),
            format!("http.address={address}"),
            format!("server.command={command}"),
            "http.pool.num_workers=0".into(),
            "http.pool.max_jobs=500".into(),
            "rpc.listen=tcp://127.0.0.1:6001".into(),
            "http.pool.supervisor.exec_ttl=30s".into(),
            "http.static.dir=/app/public".into(),
            "http.middleware=static".into(),
            "logs.mode=production".into(),
            "logs.level=debug".into(),
            "logs.output=stdout".into(),
            "logs.encoding=json".into(),
        ]
        .into();
        let loaded = f.parse_opts("", &opts).unwrap();
        let c = loaded.config;
        assert_eq!(
            c.server.command,
            ["/usr/bin/php8.2", "/app/vendor/bin/roadrunner-worker"]
        );
        let h = http(&c);
        assert_eq!(h.address.unwrap().port(), 8000);
        assert_eq!(h.pool.settings.max_jobs, 500);
        assert_eq!(h.middleware, [Middleware::Static]);
        assert_eq!(
            h.static_files.as_ref().unwrap().dir,
            Path::new("/app/public")
        );
        assert_eq!(c.rpc.unwrap().listen.to_string(), "tcp://127.0.0.1:6001");
        assert_eq!(c.logs.encoding, LogEncoding::Json);
        assert_eq!(c.logs.output, [LogOutput::Stdout]);
        assert_eq!(
            loaded.warnings.iter().any(|w| w.contains("2.7")),
            version == "2.7",
            "{:?}",
            loaded.warnings
        );
    }
    // A comma after a space belongs to an argument, not to RoadRunner's list syntax.
    let mut opts = f.opts();
    opts.overrides = vec!["server.command=php -d disable_functions=exec,system w.php".into()];
    let c = f.parse_opts(BASE, &opts).unwrap().config;
    assert_eq!(
        c.server.command,
        ["php", "-d", "disable_functions=exec,system", "w.php"]
    );
    // Without a version, an empty file is still refused.
    let err = f.parse_opts("", &f.opts()).unwrap_err().to_string();
    assert!(err.contains("the file is empty"), "{err}");
}

#[test]
fn dotenv_file_feeds_substitution_and_workers() {
    let f = Fixture::new();
    std::fs::write(
        f.path().join(".env"),
        "# app settings\nDB_HOST=db.local\nPORT=1111\nexport WORKERS_N=5\nSECRET=\"s3cr3t\"\n",
    )
    .unwrap();
    let yaml = "version: \"3\"\nhttp:\n  address: ':${PORT}'\n  pool: {num_workers: '${WORKERS_N}'}\n\
                server:\n  command: php w.php\n  env: {db: $DB_HOST}\n";
    let mut opts = f.opts();
    opts.dotenv = Some(PathBuf::from(".env"));
    let c = f.parse_opts(yaml, &opts).unwrap().config;
    assert_eq!(
        http(&c).address,
        Some(addr("0.0.0.0:9000")),
        "env wins over dotenv"
    );
    assert_eq!(http(&c).pool.settings.num_workers, 5);
    assert_eq!(c.server.env.get("DB").map(String::as_str), Some("db.local"));
    assert_eq!(
        c.dotenv,
        [
            ("DB_HOST".to_string(), "db.local".to_string()),
            ("WORKERS_N".to_string(), "5".to_string()),
            ("SECRET".to_string(), "s3cr3t".to_string()),
        ]
    );
    let spec = c.process_spec();
    assert_eq!(spec.command, ["php", "w.php"]);
    assert_eq!(spec.cwd.as_deref(), Some(f.path()));
    let env: Vec<String> = spec
        .env
        .iter()
        .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
        .collect();
    assert_eq!(
        env,
        [
            "DB_HOST=db.local",
            "WORKERS_N=5",
            "SECRET=s3cr3t",
            "DB=db.local"
        ]
    );

    // DOTENV_PATH when --dotenv is not given; a missing file is an error.
    let mut f2 = Fixture::new();
    std::fs::write(f2.path().join("custom.env"), "DB_HOST=other\n").unwrap();
    f2.host
        .env
        .insert("DOTENV_PATH".into(), "custom.env".into());
    let c = f2.parse(&yaml.replace("${WORKERS_N}", "2")).unwrap().config;
    assert_eq!(c.server.env.get("DB").map(String::as_str), Some("other"));
    f2.host
        .env
        .insert("DOTENV_PATH".into(), "missing.env".into());
    assert_eq!(
        f2.parse(yaml).unwrap_err().to_string(),
        format!(
            "dotenv file {}: not found",
            f2.path().join("missing.env").display()
        )
    );
    std::fs::write(f2.path().join("bad.env"), "OK=1\nthis is not a pair\n").unwrap();
    f2.host.env.insert("DOTENV_PATH".into(), "bad.env".into());
    assert_eq!(
        f2.parse(yaml).unwrap_err().to_string(),
        format!(
            "dotenv file {}: line 2: expected KEY=VALUE, got \"this is not a pair\"",
            f2.path().join("bad.env").display()
        )
    );
}

#[test]
fn unknown_keys_warn_with_full_paths() {
    let f = Fixture::new();
    let cases: &[(&str, &[&str])] = &[
        (
            "http: {address: ':80', pool: {maxjobs: 5}}",
            &["unknown key http.pool.maxjobs (ignored)"],
        ),
        (
            "http: {address: ':80', pool: {supervisor: {max_memory: 5}}}",
            &["unknown key http.pool.supervisor.max_memory (ignored)"],
        ),
        (
            "server: {command: php, cmd: x}",
            &["unknown key server.cmd (ignored)"],
        ),
        (
            "htpp: {address: ':80'}",
            &["unknown section htpp (ignored)"],
        ),
        (
            "jobs: {pool: {num_workers: 2}, pipelines: {a: {driver: memory, config: {prefetc: 5}}}}",
            &["unknown key jobs.pipelines.a.config.prefetc (ignored)"],
        ),
        (
            "logs: {channels: {http: {lvl: info}}}",
            &["unknown key logs.channels.http.lvl (ignored)"],
        ),
        (
            "reload: {services: {http: {dir: [.]}}}",
            &["unknown key reload.services.http.dir (ignored)"],
        ),
        (
            "pacer: {shutdown: {dealy: 5s}}",
            &["unknown key pacer.shutdown.dealy (ignored)"],
        ),
        (
            "metrics: {collect: {m: {type: counter, kind: x}}}",
            &["unknown key metrics.collect.m.kind (ignored)"],
        ),
        (
            "Http: {Address: ':80', Pool: {Num_Workers: 2, X: 1}}",
            &["unknown key http.pool.x (ignored)"],
        ),
    ];
    for (extra, want) in cases {
        assert_eq!(f.ok(extra).warnings, *want, "{extra}");
    }
}

#[test]
fn ignored_and_deprecated_settings_warn() {
    let f = Fixture::new();
    let cases: &[(&str, &str)] = &[
        (
            "http: {address: ':80', pool: {dynamic_allocator: {max_workers: 10}}}",
            "http.pool.dynamic_allocator is accepted but not used: pacer scales the pool through the operator (num_workers can change live)",
        ),
        (
            "http: {address: ':80', middleware: [etag]}",
            "http.middleware: \"etag\" is not implemented by pacer (ignored); pacer has static, gzip, headers, http_metrics, proxy_ip_parser, sendfile, otel",
        ),
        (
            "http: {address: ':80', sendfile: {roots: [.]}}",
            "http.sendfile is configured but \"sendfile\" is not in http.middleware, so it is not used",
        ),
        (
            "http: {address: ':80', middleware: [gzip, gzip]}",
            "http.middleware: \"gzip\" is listed twice (once is used)",
        ),
        (
            "http: {address: ':80', static: {dir: .}}",
            "http.static is configured but \"static\" is not in http.middleware, so it is not used",
        ),
        (
            "http: {address: ':80', middleware: [static]}",
            "http.middleware lists \"static\" but http.static is not configured (ignored)",
        ),
        (
            "http: {address: ':80', middleware: [headers]}",
            "http.middleware lists \"headers\" but http.headers is not configured (ignored)",
        ),
        (
            "http: {address: ':80', middleware: [static], static: {allow: [.php, .css]}}",
            "http.static.allow: .php is never served as a static file (removed)",
        ),
        (
            "http: {address: ':80', middleware: [http_metrics]}",
            "http.middleware: http_metrics has no effect without a metrics section",
        ),
        (
            "http: {address: ':80', fcgi: {address: 'tcp://0.0.0.0:9000'}}",
            "http.fcgi is not supported by pacer (ignored)",
        ),
        (
            "http: {ssl: {cert: c, key: k, acme: {domains: [x]}}}",
            "http.ssl.acme is not supported by pacer (ignored)",
        ),
        (
            "server: {command: php, relay_timeout: 20s}",
            "server.relay_timeout is obsolete since RoadRunner v2 (ignored)",
        ),
        (
            "server: {command: php, on_init: {command: php init.php}}",
            "server.on_init is not supported by pacer (ignored)",
        ),
        (
            "endure: {log_level: error}",
            "endure.log_level is not supported by pacer (ignored)",
        ),
        (
            "endure: {grace_period: 10s}\npacer: {shutdown: {grace_period: 20s}}",
            "endure.grace_period is overridden by pacer.shutdown.grace_period",
        ),
        (
            "logs: {file_logger_options: {log_output: x}}",
            "logs.file_logger_options is not supported by pacer (ignored): use logs.output",
        ),
        (
            "logs: {channels: {http: {level: info, encoding: json}}}",
            "logs.channels.http.encoding is not supported by pacer (ignored): channels only set a level",
        ),
        (
            "reload: {services: {http: {}, jobs: {}}}",
            "reload.services.jobs: pacer has no jobs pool (ignored)",
        ),
        (
            "reload: {}",
            "reload has no services.http section: no files are watched",
        ),
        (
            "rpc: {listen: 'tcp://0.0.0.0:6001'}",
            "rpc.listen: tcp://0.0.0.0:6001 is reachable from other hosts and RPC has no authentication",
        ),
        (
            "http: {address: ':80', pool: {supervisor: {watch_tick: 1}}}",
            "http.pool.supervisor.watch_tick: 1 is read as 1ns (a bare integer is nanoseconds, as in RoadRunner); write \"1s\" if seconds were meant",
        ),
    ];
    for (extra, want) in cases {
        assert_eq!(f.ok(extra).warnings, [*want], "{extra}");
    }
    let l = f
        .parse("version: \"2.7\"\nserver: {command: php}\n")
        .unwrap();
    assert_eq!(
        l.warnings,
        [
            "version \"2.7\" is deprecated: update the config to version: \"3\" (pacer reads it as version 3)"
        ]
    );
}

/// Bad values: the message names the key, the value and what was expected.
#[test]
fn bad_values_name_key_value_and_expectation() {
    let f = Fixture::new();
    let dur = "a duration like \"60s\", \"1m30s\" or \"500ms\" (a bare integer is nanoseconds)";
    let listen =
        "a listen address host:port with an IP address (like 0.0.0.0:8080, :8080 or [::1]:8080)";
    let cases: Vec<(&str, String)> = vec![
        ("http: {address: ':80', pool: {num_workers: lots}}", "http.pool.num_workers: \"lots\" is not a non-negative integer".into()),
        ("http: {address: ':80', pool: {num_workers: -1}}", "http.pool.num_workers: -1 is not a non-negative integer".into()),
        ("http: {address: ':80', pool: {num_workers: 5000}}", format!("http.pool.num_workers: 5000 is not an integer from 0 to {MAX_WORKERS}")),
        ("http: {address: ':80', pool: {num_workers: 2.5}}", "http.pool.num_workers: 2.5 is not a non-negative integer".into()),
        ("http: {address: ':80', pool: {max_jobs: [1]}}", "http.pool.max_jobs: [1] is not a non-negative integer".into()),
        ("http: {address: ':80', pool: {allocate_timeout: '60'}}", format!("http.pool.allocate_timeout: \"60\" is not {dur}: missing unit in duration \"60\"")),
        ("http: {address: ':80', pool: {destroy_timeout: 10 s}}", format!("http.pool.destroy_timeout: \"10 s\" is not {dur}: unknown unit \" s\" in duration \"10 s\"")),
        ("http: {address: ':80', pool: {reset_timeout: -5s}}", format!("http.pool.reset_timeout: \"-5s\" is not {dur}: negative duration \"-5s\"")),
        ("http: {address: ':80', pool: {stream_timeout: 1.5}}", format!("http.pool.stream_timeout: 1.5 is not {dur}")),
        ("http: {address: ':80', pool: {supervisor: {ttl: 1d}}}", format!("http.pool.supervisor.ttl: \"1d\" is not {dur}: unknown unit \"d\" in duration \"1d\"")),
        ("http: {address: ':80', pool: {supervisor: {max_worker_memory: 1GB}}}", "http.pool.supervisor.max_worker_memory: \"1GB\" is not a non-negative integer".into()),
        ("http: {address: ':80', pool: {debug: yes}}", "http.pool.debug: \"yes\" is not true or false".into()),
        ("http: {address: ':80', pool: {command: {a: b}}}", "http.pool.command: {\"a\":\"b\"} is not a command: a string or a list of strings".into()),
        ("http: {address: 8080}", format!("http.address: 8080 is not {listen}")),
        ("http: {address: 'example.com:80'}", format!("http.address: \"example.com:80\" is not {listen}")),
        ("http: {address: ':80', max_request_size: big}", "http.max_request_size: \"big\" is not a non-negative integer".into()),
        ("http: {address: ':80', internal_error_code: 700}", "http.internal_error_code: 700 is not an HTTP status code (100-599)".into()),
        ("http: {address: ':80', trusted_subnets: [10.0.0.0/8, 10.0.0.0/33]}", "http.trusted_subnets[1]: \"10.0.0.0/33\" is not a CIDR subnet like 10.0.0.0/8 or fc00::/7".into()),
        ("http: {address: ':80', middleware: {a: 1}}", "http.middleware: {\"a\":1} is not a list of strings".into()),
        ("http: {address: ':80', access_logs: maybe}", "http.access_logs: \"maybe\" is not true or false".into()),
        ("http: {address: ':80', middleware: [headers], headers: {response: {'Bad Header': x}}}", "http.headers.response: \"bad header\" is not a header name (letters, digits and !#$%&'*+-.^_`|~)".into()),
        ("http: {address: ':80', middleware: [headers], headers: {response: {x-a: \"a\\r\\nSet-Cookie: x\"}}}", "http.headers.response.x-a: \"a\\r\\nSet-Cookie: x\" is not a header value without CR, LF or NUL".into()),
        ("http: {address: ':80', http2: {max_concurrent_streams: 99999999999}}", "http.http2.max_concurrent_streams: 99999999999 is not an integer from 0 to 4294967295".into()),
        ("http: {pool: {num_workers: 1}}", "http.address is required: the address to listen on, e.g. address: 0.0.0.0:8080 (or configure http.ssl)".into()),
        ("http: {ssl: {cert: c.pem}}", "http.ssl.key is required: a PEM file".into()),
        ("http: 5", "http: 5 is not a section (a mapping of keys)".into()),
        ("http: {address: ':80', pool: [1, 2]}", "http.pool: [1,2] is not a section (a mapping of keys)".into()),
        ("server: {command: ''}", "server.command is required: the PHP worker to start, e.g. command: \"php worker.php\"".into()),
        ("server: {command: php, relay: 'tcp://nohost'}", "server.relay: \"tcp://nohost\" is not pipes, tcp://host:port or unix:///path/to.sock".into()),
        ("server: {command: php, env: [a, b]}", "server.env: [\"a\",\"b\"] is not a mapping of names to strings".into()),
        ("server: {command: php, env: {a: {b: c}}}", "server.env.a: {\"b\":\"c\"} is not a string".into()),
        ("rpc: {listen: 'http://127.0.0.1:6001'}", "rpc.listen: \"http://127.0.0.1:6001\" is not tcp://host:port (with an IP address) or unix:///path/to.sock".into()),
        ("rpc: {listen: '127.0.0.1:6001'}", "rpc.listen: \"127.0.0.1:6001\" is not tcp://host:port (with an IP address) or unix:///path/to.sock".into()),
        ("status: {unavailable_status_code: 503}", "status.address is required: the address of /health and /ready, e.g. address: 127.0.0.1:2114".into()),
        ("status: {address: ':2114', unavailable_status_code: abc}", "status.unavailable_status_code: \"abc\" is not a non-negative integer".into()),
        ("metrics: {address: nowhere}", format!("metrics.address: \"nowhere\" is not {listen}")),
        ("metrics: {collect: {m: {type: meter}}}", "metrics.collect.m.type: \"meter\" is not counter, gauge, histogram or summary".into()),
        ("metrics: {collect: {m: {help: x}}}", "metrics.collect.m.type is required: counter, gauge, histogram or summary".into()),
        ("metrics: {collect: {'9bad': {type: gauge}}}", "metrics.collect: \"9bad\" is not a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)".into()),
        ("logs: {level: loud}", "logs.level: \"loud\" is not debug, info, warn or error".into()),
        ("logs: {mode: verbose}", "logs.mode: \"verbose\" is not development, production, raw, off or none".into()),
        ("logs: {encoding: xml}", "logs.encoding: \"xml\" is not console or json".into()),
        ("reload: {interval: 100ms, services: {http: {}}}", "reload.interval: \"100ms\" is not a duration of at least 1s".into()),
        ("pacer: {runtime: {threads: 5000}}", "pacer.runtime.threads: 5000 is not an integer from 0 to 1024".into()),
        ("pacer: {http: {header_read_timeout: 0s}}", "pacer.http.header_read_timeout: \"0s\" is not a positive duration (e.g. \"10s\")".into()),
        ("pacer: {http: {max_requests_per_connection: -1}}", "pacer.http.max_requests_per_connection: -1 is not a non-negative integer".into()),
        ("http: {address: ':80', middleware: [sendfile]}", "http.sendfile.roots is required: the directories X-Sendfile responses may name files under, e.g. sendfile: {roots: [storage/exports]} (the sendfile middleware is on)".into()),
        ("pacer: {readiness: {mode: busy}}", "pacer.readiness.mode: \"busy\" is not \"accepting\" or \"saturation\"".into()),
        ("pacer: {readiness: {mode: saturation, queue_high: 4, queue_low: 4}}", "pacer.readiness.queue_low: 4 is not an integer below queue_high (4)".into()),
        ("pacer: {http: {max_header_count: 0}}", "pacer.http.max_header_count: 0 is not a positive integer".into()),
        ("pacer: {http: {max_header_bytes: 100}}", "pacer.http.max_header_bytes: 100 is not an integer from 8192 to 4294967295".into()),
        ("pacer: {shutdown: {delay: soon}}", format!("pacer.shutdown.delay: \"soon\" is not {dur}: invalid duration \"soon\"")),
    ];
    assert!(cases.len() >= 15);
    for (extra, want) in &cases {
        assert_eq!(f.err(extra), *want, "{extra}");
    }
}

#[test]
fn several_errors_are_reported_together() {
    let f = Fixture::new();
    let err =
        f.err("http: {address: nowhere, pool: {num_workers: x, max_jobs: y}}\nlogs: {level: z}");
    assert_eq!(
        err,
        "4 configuration errors:\n  \
         http.address: \"nowhere\" is not a listen address host:port with an IP address (like 0.0.0.0:8080, :8080 or [::1]:8080)\n  \
         http.pool.num_workers: \"x\" is not a non-negative integer\n  \
         http.pool.max_jobs: \"y\" is not a non-negative integer\n  \
         logs.level: \"z\" is not debug, info, warn or error"
    );
    let e = f
        .parse(&format!("{BASE}logs: {{level: z, mode: q}}"))
        .unwrap_err();
    assert_eq!(e.errors().len(), 2);
}

#[test]
fn document_and_file_errors() {
    let f = Fixture::new();
    let file = f.path().join(".rr.yaml");
    let cases: &[(&str, String)] = &[
        (
            "",
            format!(
                "{}: the file is empty; a RoadRunner config starts with version: \"3\"",
                file.display()
            ),
        ),
        (
            "server: {command: php}",
            format!(
                "{}: version is missing: RoadRunner configs start with version: \"3\"",
                file.display()
            ),
        ),
        (
            "version: 3\nserver: {command: php}",
            format!(
                "{}: version: 3 must be a string, as in RoadRunner: write version: \"3\"",
                file.display()
            ),
        ),
        (
            "version: \"2\"\nserver: {command: php}",
            format!(
                "{}: version: \"2\" is not supported; expected \"3\" (or the deprecated \"2.7\")",
                file.display()
            ),
        ),
        (
            "- a\n- b",
            format!(
                "{}: [\"a\",\"b\"] is not a mapping of sections like version, server, http",
                file.display()
            ),
        ),
        (
            "version: \"3\"",
            "server is required: pacer needs server.command to start PHP workers".to_string(),
        ),
        (
            "version: \"3\"\nserver:\n  command: php\n  env: {a: 1\n",
            format!(
                "{}: YAML syntax error at line 5, column 1: did not find expected ',' or '}}', while parsing a flow mapping at line 4 column 8",
                file.display()
            ),
        ),
        (
            "version: \"3\"\nserver:\n  command: php\nserver:\n  command: x\n",
            format!(
                "{}: YAML syntax error at line 4, column 1: duplicate entry with key \"server\"",
                file.display()
            ),
        ),
    ];
    for (yaml, want) in cases {
        assert_eq!(f.parse(yaml).unwrap_err().to_string(), *want, "{yaml:?}");
    }
    match f.parse("version: \"3\"\nserver:\n  command: [\n") {
        Err(ConfigError::Syntax { line, .. }) => assert_eq!(line, 4),
        other => panic!("{other:?}"),
    }

    let mut opts = f.opts();
    opts.path = PathBuf::from("missing.yaml");
    assert_eq!(
        load_with(&opts, &f.host).unwrap_err().to_string(),
        format!(
            "config file {} not found",
            f.path().join("missing.yaml").display()
        )
    );
    assert_eq!(ConfigError::EXIT_CODE, 64);
}

#[test]
fn load_reads_the_file_and_resolves_workdir() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.path().join("conf")).unwrap();
    std::fs::write(
        f.path().join("conf/rr.yaml"),
        format!(
            "{BASE}http:\n  address: ':80'\n  middleware: [static]\n  static: {{dir: public}}\n"
        ),
    )
    .unwrap();
    // `-w` is relative to the current directory, as RoadRunner's (`pacer serve -c
    // examples/hello/.rr.yaml -w examples/hello` from the repository root).
    let opts = LoadOptions {
        path: PathBuf::from("conf/rr.yaml"),
        workdir: Some(PathBuf::from("./app")),
        ..LoadOptions::default()
    };
    let c = load_with(&opts, &f.host).unwrap().config;
    let workdir = f.path().join("app");
    assert_eq!(c.workdir, workdir);
    assert_eq!(
        http(&c).static_files.as_ref().unwrap().dir,
        workdir.join("public")
    );
}

/// In a pod the config is a mounted ConfigMap (`/etc/pacer/rr.yaml`) and the app is in
/// the container's working directory: without `-w` the workers must run where pacer was
/// started, not in the config file's directory (`php worker.php` would not be found).
#[test]
fn without_workdir_the_current_directory_is_kept() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.path().join("etc/pacer")).unwrap();
    std::fs::write(f.path().join("etc/pacer/rr.yaml"), BASE).unwrap();
    let host = Host {
        cwd: f.path().join("app"),
        ..f.host.clone()
    };
    let opts = LoadOptions {
        path: f.path().join("etc/pacer/rr.yaml"),
        ..LoadOptions::default()
    };
    let c = load_with(&opts, &host).unwrap().config;
    assert_eq!(c.workdir, f.path().join("app"));
}

#[test]
fn includes_replace_whole_sections() {
    let f = Fixture::new();
    std::fs::write(
        f.path().join("http.yaml"),
        "version: \"3\"\nhttp:\n  address: 127.0.0.1:${PORT}\n",
    )
    .unwrap();
    std::fs::write(f.path().join("old.yaml"), "version: \"2.7\"\nrpc: {}\n").unwrap();
    let c = f
        .ok("include: [http.yaml]\nhttp: {address: ':1', pool: {num_workers: 9}}")
        .config;
    assert_eq!(http(&c).address, Some(addr("127.0.0.1:9000")));
    assert_eq!(
        http(&c).pool.settings.num_workers,
        3,
        "the whole section was replaced"
    );
    assert_eq!(
        f.err("include: [old.yaml]"),
        format!(
            "included file {}: version \"2.7\" differs from the root file's \"3\"",
            f.path().join("old.yaml").display()
        )
    );
    assert_eq!(
        f.err("include: [nope.yaml]"),
        format!(
            "included file {0}: config file {0} not found",
            f.path().join("nope.yaml").display()
        )
    );
}

#[test]
fn yaml_features_merge_keys_and_case() {
    let f = Fixture::new();
    let c = f
        .ok(
            "x-timeouts: &t {allocate_timeout: 5s, destroy_timeout: 6s}\n\
             HTTP:\n  Address: ':80'\n  Pool:\n    <<: *t\n    Num_Workers: 2",
        )
        .config;
    let p = &http(&c).pool.settings;
    assert_eq!(p.num_workers, 2);
    assert_eq!(p.allocate_timeout, Duration::from_secs(5));
    assert_eq!(p.destroy_timeout, Duration::from_secs(6));
}

#[test]
fn effective_config_round_trips() {
    let f = Fixture::new();
    let l = f.ok(SAMPLE_SECTIONS);
    let yaml = effective_yaml(&l.config);
    let again = f.parse(&yaml).unwrap();
    assert_eq!(
        again.config,
        Config {
            dotenv: vec![],
            ..l.config.clone()
        }
    );
    assert_eq!(again.warnings, Vec::<String>::new(), "{yaml}");
    assert_eq!(to_json(&again.config), to_json(&l.config));
}

#[test]
fn live_changes() {
    let f = Fixture::new();
    let base = "http:\n  address: ':80'\n  pool:\n    num_workers: 2\n    max_jobs: 10\n    debug: false\n";
    let old = f.ok(base).config;
    let same = diff_live(&old, &f.ok(base).config);
    assert!(same.is_empty(), "{same:?}");

    let new = f
        .ok(&base.replace("num_workers: 2", "num_workers: 8").replace(
            "max_jobs: 10",
            "max_jobs: 20\n    max_queue_size: 5\n    allocate_timeout: 5s\n    \
                      destroy_timeout: 6s\n    reset_timeout: 7s\n    stream_timeout: 8s\n    \
                      supervisor: {ttl: 1h, max_worker_memory: 100}",
        ))
        .config;
    let d = diff_live(&old, &new);
    assert_eq!(d.restart_required, Vec::<String>::new());
    assert_eq!(d.pool, Some(http(&new).pool.settings.clone()));

    let new = f
        .ok(&base
            .replace("num_workers: 2", "num_workers: 4")
            .replace("debug: false", "debug: true")
            .replace(":80", ":81"))
        .config;
    let d = diff_live(&old, &new);
    assert_eq!(d.restart_required, ["http.address", "http.pool.debug"]);
    let pool = d.pool.unwrap();
    assert_eq!(pool.num_workers, 4);
    assert!(!pool.debug, "restart-only keys keep their running value");

    let new = f
        .ok(&format!("{base}rpc: {{}}\nlogs: {{level: info}}\n")
            .replace("command: php worker.php", "command: php other.php"))
        .config;
    let new = Config {
        server: ServerConfig {
            command: vec!["php".into(), "other.php".into()],
            ..new.server
        },
        ..new
    };
    let d = diff_live(&old, &new);
    assert_eq!(d.pool, None);
    assert_eq!(d.restart_required, ["logs.level", "rpc", "server.command"]);

    let no_http = f.ok("").config;
    let d = diff_live(&old, &no_http);
    assert_eq!(
        (d.pool, d.restart_required),
        (None, vec!["http".to_string()])
    );
}

#[test]
fn jobs_pool_changes_are_live_and_apart_from_http() {
    let f = Fixture::new();
    let base = "http:\n  address: ':80'\n  pool: {num_workers: 2}\n\
                jobs:\n  pool: {num_workers: 3, max_jobs: 0}\n  consume: [m]\n  \
                pipelines: {m: {driver: memory, config: {prefetch: 10}}}\n";
    let old = f.ok(base).config;
    assert!(diff_live(&old, &f.ok(base).config).is_empty());

    let new = f
        .ok(&base.replace(
            "num_workers: 3, max_jobs: 0",
            "num_workers: 7, max_jobs: 50",
        ))
        .config;
    let d = diff_live(&old, &new);
    assert_eq!(d.restart_required, Vec::<String>::new());
    assert_eq!(d.pool, None, "the HTTP pool did not change");
    let jobs = d.jobs_pool.unwrap();
    assert_eq!((jobs.num_workers, jobs.max_jobs), (7, 50));

    // A pipeline change is not live; the jobs pool still is.
    let new = f
        .ok(&base
            .replace("num_workers: 3", "num_workers: 1")
            .replace("prefetch: 10", "prefetch: 20"))
        .config;
    let d = diff_live(&old, &new);
    assert_eq!(d.restart_required, ["jobs.pipelines.m.config.prefetch"]);
    assert_eq!(d.jobs_pool.map(|p| p.num_workers), Some(1));
}

/// Sections of a realistic RoadRunner v3 config, as in docs/configuration.md and the
/// `.rr.yaml` samples RoadRunner ships.
const SAMPLE_SECTIONS: &str = r#"
rpc:
  listen: tcp://127.0.0.1:6001
logs:
  mode: production
  level: info
  encoding: json
  output: stderr
  channels:
    http: {level: warn}
    server: {level: info}
http:
  address: 0.0.0.0:8080
  internal_error_code: 500
  access_logs: false
  max_request_size: 256
  raw_body: false
  middleware: [headers, gzip, static, http_metrics, proxy_ip_parser]
  trusted_subnets: ["10.0.0.0/8", "127.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "::1/128", "fc00::/7", "fe80::/10"]
  uploads:
    dir: /tmp/uploads
    forbid: [".php", ".exe", ".bat"]
    allow: []
  headers:
    cors:
      allowed_origin: "*"
      allowed_headers: "*"
      allowed_methods: "GET,POST,PUT,DELETE"
      allow_credentials: true
      exposed_headers: "Cache-Control,Content-Language,Content-Type,Expires,Last-Modified,Pragma"
      max_age: 600
    request: {input: "custom-header"}
    response: {output: "output-header", X-Powered-By: "pacer"}
  static:
    dir: public
    forbid: [".htaccess"]
    allow: []
    calculate_etag: true
    weak: false
    request: {input: "custom-header"}
    response: {output: "output-header"}
  http2:
    h2c: true
    max_concurrent_streams: 128
  pool:
    debug: false
    num_workers: 4
    max_jobs: 1000
    max_queue_size: 100
    allocate_timeout: 60s
    destroy_timeout: 60s
    reset_timeout: 60s
    stream_timeout: 60s
    supervisor:
      watch_tick: 1s
      ttl: 0s
      idle_ttl: 10s
      max_worker_memory: 128
      exec_ttl: 60s
metrics:
  address: 127.0.0.1:2112
status:
  address: 127.0.0.1:2114
  unavailable_status_code: 503
  check_timeout: 60
reload:
  interval: 1s
  patterns: [".php"]
  services:
    http:
      recursive: true
      ignore: ["vendor"]
      patterns: [".php", ".go", ".md"]
      dirs: ["."]
pacer:
  shutdown: {delay: 5s, grace_period: 30s}
  runtime: {threads: 2}
"#;

#[test]
fn realistic_roadrunner_config() {
    let f = Fixture::new();
    let yaml = format!(
        r#"version: "3"
server:
  command: "php worker.php"
  user: ""
  group: ""
  env:
    - APP_ENV: production
  relay: pipes
  relay_timeout: 20s
{SAMPLE_SECTIONS}
jobs:
  consume: ["local"]
  pipelines:
    local: {{driver: memory, config: {{priority: 10}}}}
kv:
  local: {{driver: memory}}
endure:
  grace_period: 30s
  print_graph: false
  log_level: error
"#
    )
    .replace(
        "  env:\n    - APP_ENV: production\n",
        "  env:\n    APP_ENV: ${APP_ENV}\n    DEBUG: ${DEBUG:-false}\n",
    );
    let l = f.parse(&yaml).unwrap();
    assert_eq!(
        l.warnings,
        [
            "section kv configures a RoadRunner plugin pacer does not implement (ignored)",
            "server.relay_timeout is obsolete since RoadRunner v2 (ignored)",
            "endure.log_level is not supported by pacer (ignored)",
            "endure.print_graph is not supported by pacer (ignored)",
        ]
    );
    let c = l.config;
    let w = f.path();
    assert_eq!(c.server.command, ["php", "worker.php"]);
    assert_eq!(
        c.server.env.iter().collect::<Vec<_>>(),
        [
            (&"APP_ENV".to_string(), &"prod".to_string()),
            (&"DEBUG".to_string(), &"false".to_string())
        ]
    );
    assert_eq!(
        c.rpc.as_ref().unwrap().listen.to_string(),
        "tcp://127.0.0.1:6001"
    );
    assert_eq!(c.logs.level, LogLevel::Info);
    assert_eq!(c.logs.encoding, LogEncoding::Json);
    assert_eq!(c.logs.channels.get("http"), Some(&LogLevel::Warn));
    let h = http(&c);
    assert_eq!(h.max_request_size, 256 << 20);
    assert_eq!(
        h.middleware,
        [
            Middleware::Headers,
            Middleware::Gzip,
            Middleware::Static,
            Middleware::HttpMetrics,
            Middleware::ProxyIpParser
        ]
    );
    assert_eq!(h.trusted_subnets.len(), 7);
    assert_eq!(h.uploads.filter.forbid, [".php", ".exe", ".bat"]);
    let st = h.static_files.as_ref().unwrap();
    assert_eq!(st.dir, w.join("public"));
    assert_eq!(st.filter.forbid, [".htaccess", ".php"]);
    assert!(st.calculate_etag);
    let hd = h.headers.as_ref().unwrap();
    assert_eq!(hd.cors.as_ref().unwrap().max_age, 600);
    assert_eq!(
        hd.response,
        [
            ("output".to_string(), "output-header".to_string()),
            ("x-powered-by".to_string(), "pacer".to_string())
        ]
    );
    assert!(h.http2.h2c);
    let p = &h.pool.settings;
    assert_eq!(
        (p.num_workers, p.max_jobs, p.max_queue_size),
        (4, 1000, 100)
    );
    assert_eq!(p.supervisor.watch_tick, Duration::from_secs(1));
    assert_eq!(p.supervisor.ttl, None);
    assert_eq!(p.supervisor.idle_ttl, Some(Duration::from_secs(10)));
    assert_eq!(p.supervisor.max_worker_memory, Some(128 << 20));
    assert_eq!(p.supervisor.exec_ttl, Some(Duration::from_secs(60)));
    assert_eq!(c.metrics.as_ref().unwrap().address, addr("127.0.0.1:2112"));
    let s = c.status.as_ref().unwrap();
    assert_eq!(
        (s.address, s.unavailable_status_code, s.check_timeout),
        (addr("127.0.0.1:2114"), 503, Duration::from_secs(60))
    );
    let r = c.reload.as_ref().unwrap();
    let rh = r.http.as_ref().unwrap();
    assert_eq!(rh.dirs, [w]);
    assert_eq!(rh.ignore, [w.join("vendor")]);
    assert_eq!(r.patterns_for(rh), [".php", ".go", ".md", ".php"]);
    assert_eq!(c.pacer.shutdown.delay, Duration::from_secs(5));
    assert_eq!(c.pacer.runtime.threads, 2);
}

#[test]
fn json_is_shaped_like_the_input() {
    let f = Fixture::new();
    let c = f.ok(SAMPLE_SECTIONS).config;
    let j = to_json(&c);
    let tree = output::to_tree(&c);
    let top: Vec<&str> = tree
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(
        top,
        [
            "version", "rpc", "server", "http", "status", "metrics", "logs", "reload", "pacer"
        ]
    );
    assert_eq!(j["http"]["pool"]["max_jobs"], json!(1000));
    assert_eq!(
        j["http"]["pool"]["supervisor"]["max_worker_memory"],
        json!(128)
    );
    assert_eq!(j["http"]["max_request_size"], json!(256));
    assert!(effective_yaml(&f.ok("").config).starts_with("# effective configuration"));
}

#[test]
fn jobs_section_and_its_errors() {
    let f = Fixture::new();
    let l = f.ok(
        "jobs: {pool: {num_workers: 3, supervisor: {exec_ttl: 10s}}, timeout: 5, consume: [a, q],\n  \
         pipelines: {a: {driver: memory, config: {priority: 3, prefetch: 7}},\n  \
         q: {driver: amqp, config: {queue: work, prefetch: 20, durable: true, queue_headers: {x-max-priority: 10}},\n  \
         retry: {max_attempts: 4, delay: 2s, failed_pipeline: a}}}}\namqp: {addr: 'amqp://u:p@127.0.0.1:5673/'}",
    );
    let j = l.config.jobs.as_ref().unwrap();
    let again = f.parse(&effective_yaml(&l.config)).unwrap();
    assert_eq!(
        again.config.jobs, l.config.jobs,
        "config check prints what it read"
    );
    assert_eq!(j.num_pollers, 5);
    assert_eq!(j.timeout, Duration::from_secs(5));
    assert_eq!(j.consume, ["a", "q"]);
    assert_eq!(
        j.pool.settings.supervisor.exec_ttl,
        Some(Duration::from_secs(10))
    );
    assert_eq!(j.pipelines[0].priority, 3);
    assert_eq!(
        j.pipelines[0].driver,
        DriverConfig::Memory(MemoryConfig { prefetch: 7 })
    );
    let DriverConfig::Amqp(q) = &j.pipelines[1].driver else {
        panic!("not amqp")
    };
    assert_eq!(
        (q.addr.as_str(), q.queue.as_str(), q.prefetch, q.durable),
        ("amqp://u:p@127.0.0.1:5673/", "work", 20, true)
    );
    assert_eq!(
        (q.exchange.as_str(), q.exchange_type.as_str()),
        ("amqp.default", "direct")
    );
    assert_eq!(
        q.queue_headers,
        [("x-max-priority".to_string(), "10".to_string())]
    );
    assert_eq!(
        j.pipelines[1].retry,
        RetryPolicy {
            max_attempts: 4,
            delay: Duration::from_secs(2),
            failed_pipeline: Some("a".into())
        }
    );
    for (jobs, want) in [
        (
            "{pipelines: {a: {driver: amqp, config: {queue: x}}}}",
            "amqp is required",
        ),
        (
            "{pipelines: {a: {driver: sqs}}}",
            "jobs.pipelines.a.driver: \"sqs\" is not a driver pacer implements",
        ),
        (
            "{pipelines: {a: {driver: memory}}, consume: [b]}",
            "jobs.consume: \"b\" is not the name of a pipeline",
        ),
        (
            "{pipelines: {a: {config: {}}}}",
            "jobs.pipelines.a.driver is required",
        ),
        (
            "{pipelines: {a: {driver: memory, retry: {failed_pipeline: z}}}}",
            "retry.failed_pipeline: \"z\"",
        ),
        ("{pool: {num_workers: x}}", "jobs.pool.num_workers"),
    ] {
        let err = f.err(&format!("jobs: {jobs}\namqp: ~"));
        assert!(err.contains(want), "{jobs}: {err}");
    }
}

#[test]
fn beanstalk_and_nats_pipelines_and_their_errors() {
    let f = Fixture::new();
    let l = f.ok(
        "jobs: {consume: [b, n], pipelines: {\n  \
         b: {driver: beanstalk, config: {tube: mails, tube_priority: 5, reserve_timeout: 2, prefetch: 4, priority: 3}},\n  \
         n: {driver: nats, config: {subject: work, stream: works, prefetch: 50, deliver_new: true, ack_wait: 60, delete_after_ack: true}}}}\n\
         beanstalk: {addr: 'tcp://127.0.0.1:11301', timeout: 7s}\nnats: {addr: 'nats://127.0.0.1:4223'}",
    );
    assert_eq!(l.warnings, Vec::<String>::new());
    let j = l.config.jobs.as_ref().unwrap();
    let again = f.parse(&effective_yaml(&l.config)).unwrap();
    assert_eq!(
        again.config.jobs, l.config.jobs,
        "config check prints what it read"
    );
    assert_eq!(j.pipelines[0].priority, 3);
    assert_eq!(
        j.pipelines[0].driver,
        DriverConfig::Beanstalk(BeanstalkConfig {
            addr: "127.0.0.1:11301".into(),
            timeout: Duration::from_secs(7),
            tube: "mails".into(),
            tube_priority: 5,
            reserve_timeout: Duration::from_secs(2),
            prefetch: 4,
        })
    );
    assert_eq!(
        j.pipelines[1].driver,
        DriverConfig::Nats(NatsConfig {
            addr: "nats://127.0.0.1:4223".into(),
            timeout: Duration::from_secs(10),
            subject: "work".into(),
            stream: "works".into(),
            prefetch: 50,
            deliver_new: true,
            delete_stream_on_stop: false,
            delete_after_ack: true,
            ack_wait: Duration::from_secs(60),
        })
    );
    // RoadRunner's defaults.
    let l = f.ok(
        "jobs: {pipelines: {b: {driver: beanstalk}, n: {driver: nats}}}\nbeanstalk: {}\nnats: {}",
    );
    let j = l.config.jobs.unwrap();
    let DriverConfig::Beanstalk(b) = &j.pipelines[0].driver else {
        panic!("not beanstalk")
    };
    assert_eq!(
        (
            b.addr.as_str(),
            b.tube.as_str(),
            b.tube_priority,
            b.prefetch
        ),
        ("127.0.0.1:11300", "default", 1, 10)
    );
    let DriverConfig::Nats(n) = &j.pipelines[1].driver else {
        panic!("not nats")
    };
    assert_eq!(
        (
            n.addr.as_str(),
            n.subject.as_str(),
            n.stream.as_str(),
            n.prefetch
        ),
        ("nats://127.0.0.1:4222", "default", "default-stream", 100)
    );
    for (yaml, want) in [
        (
            "jobs: {pipelines: {b: {driver: beanstalk}}}",
            "beanstalk is required",
        ),
        ("jobs: {pipelines: {n: {driver: nats}}}", "nats is required"),
        (
            "jobs: {pipelines: {b: {driver: beanstalk}}}\nbeanstalk: {addr: 'unix:///b.sock'}",
            "beanstalk.addr",
        ),
        (
            "jobs: {pipelines: {b: {driver: beanstalk, config: {tube: 'a b'}}}}\nbeanstalk: {}",
            "jobs.pipelines.b.config.tube",
        ),
        (
            "jobs: {pipelines: {n: {driver: nats}}}\nnats: {addr: 'tls://x:1'}",
            "nats.addr",
        ),
        (
            "jobs: {pipelines: {n: {driver: nats, config: {stream: 'a.b'}}}}\nnats: {}",
            "jobs.pipelines.n.config.stream",
        ),
        (
            "jobs: {pipelines: {n: {driver: nats, config: {prefetch: x}}}}\nnats: {}",
            "jobs.pipelines.n.config.prefetch",
        ),
    ] {
        let err = f.err(yaml);
        assert!(err.contains(want), "{yaml}: {err}");
    }
    let l = f.ok("jobs: {pipelines: {n: {driver: nats, config: {rate_limit: 5, subjekt: x}}}}\nnats: {tls: {}}");
    let w = l.warnings.join("\n");
    assert!(w.contains("rate_limit is not used"), "{w}");
    assert!(
        w.contains("unknown key jobs.pipelines.n.config.subjekt"),
        "{w}"
    );
    assert!(w.contains("nats.tls is not implemented"), "{w}");
}

#[test]
fn otel_section_with_roadrunner_keys() {
    let f = Fixture::new();
    let l = f.ok("http:\n  address: ':80'\n  middleware: [otel]\notel:\n  exporter: otlp\n  client: http\n  endpoint: collector:4318\n  insecure: true\n  compress: true\n  custom_url: /otlp/v1/traces\n  headers: {x-api-key: secret}\n  resource:\n    service_name: shop\n    service_version: 2.1.0\n    service_instance_id: pod-1\n    service_namespace: prod\n");
    let o = l.config.otel.clone().unwrap();
    assert_eq!(o.url, "http://collector:4318/otlp/v1/traces");
    assert!(o.insecure && o.compress);
    assert_eq!(
        o.headers,
        vec![("x-api-key".to_string(), "secret".to_string())]
    );
    assert_eq!(
        o.resource,
        OtelResource {
            service_name: "shop".into(),
            service_version: "2.1.0".into(),
            service_instance_id: Some("pod-1".into()),
            service_namespace: Some("prod".into()),
        }
    );
    assert_eq!(l.warnings, Vec::<String>::new());
    // The effective config parses back to the same section.
    let again = f.parse(&effective_yaml(&l.config)).unwrap();
    assert_eq!(again.config.otel, l.config.otel);

    // Defaults: HTTPS to the OTLP port on loopback, service "pacer".
    let l = f.ok("http: {address: ':80', middleware: [otel]}\notel: {}");
    let o = l.config.otel.unwrap();
    assert_eq!(o.url, "https://127.0.0.1:4318/v1/traces");
    assert_eq!(o.resource.service_name, "pacer");
    assert_eq!(o.resource.service_version, env!("CARGO_PKG_VERSION"));

    // Deprecated keys still work, with RoadRunner's warning.
    let l = f.ok(
        "http: {address: ':80', middleware: [otel]}\notel: {service_name: old, insecure: true}",
    );
    assert_eq!(l.config.otel.unwrap().resource.service_name, "old");
    assert_eq!(
        l.warnings,
        vec!["otel.service_name is deprecated, use otel.resource.service_name instead"]
    );

    // As in RoadRunner, the section traces nothing unless the middleware is listed.
    let l = f.ok("http: {address: ':80'}\notel: {insecure: true}");
    assert!(l.config.otel.is_none());
    assert_eq!(
        l.warnings,
        vec!["otel is configured but \"otel\" is not in http.middleware, so nothing is traced"]
    );
}

#[test]
fn otel_reads_the_standard_environment() {
    let mut f = Fixture::new();
    for (k, v) in [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel.monitoring:4318"),
        ("OTEL_SERVICE_NAME", "from-env"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.namespace=team%20a,service.version=9",
        ),
        ("HOSTNAME", "web-7d4b9"),
    ] {
        f.host.env.insert(k.into(), v.into());
    }
    let o = f
        .ok("http: {address: ':80', middleware: [otel]}\notel: {}")
        .config
        .otel
        .unwrap();
    assert_eq!(o.url, "http://otel.monitoring:4318/v1/traces");
    assert_eq!(
        o.resource,
        OtelResource {
            service_name: "from-env".into(),
            service_version: "9".into(),
            service_instance_id: Some("web-7d4b9".into()),
            service_namespace: Some("team a".into()),
        }
    );
    // The file wins over the environment.
    let o = f
        .ok("http: {address: ':80', middleware: [otel]}\notel: {endpoint: 'a:1', insecure: true}")
        .config
        .otel
        .unwrap();
    assert_eq!(o.url, "http://a:1/v1/traces");
    // The protocol from the environment applies when `client` is unset; a gRPC URL
    // has no path of its own.
    f.host
        .env
        .insert("OTEL_EXPORTER_OTLP_PROTOCOL".into(), "grpc".into());
    f.host.env.insert(
        "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
        "http://otel.monitoring:4317/".into(),
    );
    let o = f
        .ok("http: {address: ':80', middleware: [otel]}\notel: {}")
        .config
        .otel
        .unwrap();
    assert_eq!(
        (o.client, o.url.as_str()),
        (OtlpClient::Grpc, "http://otel.monitoring:4317")
    );
    let o = f
        .ok("http: {address: ':80', middleware: [otel]}\notel: {client: http}")
        .config
        .otel
        .unwrap();
    assert_eq!(o.client, OtlpClient::Http);
    f.host.env.insert(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL".into(),
        "http/json".into(),
    );
    let l = f.ok("http: {address: ':80', middleware: [otel]}\notel: {}");
    assert_eq!(l.config.otel.unwrap().client, OtlpClient::Http);
    assert_eq!(
        l.warnings,
        vec![
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: \"http/json\" is not supported, exporting OTLP/HTTP with protobuf bodies"
        ]
    );
    f.host
        .env
        .insert("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL".into(), "thrift".into());
    let e = f.err("http: {address: ':80', middleware: [otel]}\notel: {}");
    assert!(
        e.starts_with("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: \"thrift\" is not http"),
        "{e}"
    );
}

#[test]
fn otel_grpc_and_the_stdout_exporters() {
    let f = Fixture::new();
    let base = "http: {address: ':80', middleware: [otel]}\notel: ";
    // gRPC: port 4317 by default, no path (custom_url is for HTTP only).
    let o = f
        .ok(&format!("{base}{{client: grpc, custom_url: /x}}"))
        .config
        .otel
        .unwrap();
    assert_eq!(
        (o.exporter, o.client, o.url.as_str()),
        (
            OtelExporter::Otlp,
            OtlpClient::Grpc,
            "https://127.0.0.1:4317"
        )
    );
    let l = f.ok(&format!(
        "{base}{{client: grpc, endpoint: 'collector:4317', insecure: true, compress: true}}"
    ));
    let o = l.config.otel.clone().unwrap();
    assert_eq!(o.url, "http://collector:4317");
    assert!(o.compress);
    let again = f.parse(&effective_yaml(&l.config)).unwrap();
    assert_eq!(again.config.otel, l.config.otel);
    for (name, exporter) in [
        ("stdout", OtelExporter::Stdout),
        ("stderr", OtelExporter::Stderr),
    ] {
        let l = f.ok(&format!("{base}{{exporter: {name}}}"));
        assert_eq!(l.config.otel.clone().unwrap().exporter, exporter);
        let again = f.parse(&effective_yaml(&l.config)).unwrap();
        assert_eq!(again.config.otel, l.config.otel);
    }
}

#[test]
fn otel_bad_values_name_the_key() {
    let f = Fixture::new();
    let base = "http: {address: ':80', middleware: [otel]}\notel: ";
    for (otel, starts) in [
        (
            "{exporter: zipkin}",
            "otel.exporter: \"zipkin\" is not otlp, stdout or stderr",
        ),
        (
            "{exporter: jaeger}",
            "otel.exporter: \"jaeger\" is not otlp, stdout or stderr",
        ),
        (
            "{client: http/json}",
            "otel.client: \"http/json\" is not http",
        ),
        ("{client: udp}", "otel.client: \"udp\" is not http"),
        (
            "{endpoint: 'ftp://x:1'}",
            "otel.endpoint: \"ftp://x:1\" is not host:port",
        ),
        (
            "{endpoint: 'a b:1'}",
            "otel.endpoint: \"a b:1\" is not host:port",
        ),
        (
            "{endpoint: 'user@host:1'}",
            "otel.endpoint: \"user@host:1\" is not host:port",
        ),
        (
            "{insecure: maybe}",
            "otel.insecure: \"maybe\" is not true or false",
        ),
        ("{compress: [1]}", "otel.compress: [1] is not true or false"),
        (
            "{custom_url: v1/traces}",
            "otel.custom_url: \"v1/traces\" is not a URL path",
        ),
        (
            "{headers: {'bad header': x}}",
            "otel.headers.bad header: \"x\" is not an HTTP header",
        ),
        ("{headers: [a]}", "otel.headers: [\"a\"] is not"),
        (
            "{resource: {service_name: [a]}}",
            "otel.resource.service_name: [\"a\"] is not a string",
        ),
        ("5", "otel"),
    ] {
        let e = f.err(&format!("{base}{otel}"));
        assert!(e.starts_with(starts), "{otel}: {e}");
    }
}
