//! Laravel Octane's RoadRunner driver, as a contract: Octane starts and controls the `rr`
//! binary itself, so pacer — installed as `rr` in the Laravel app (a symlink) — must
//! accept exactly the commands Octane issues and print exactly what Octane parses. CI
//! cannot fetch Octane, so this test issues those commands itself and checks the output
//! with Octane's own rules, read from laravel/octane's source (v1.5.6, the last release
//! for Laravel 8, and v2.3.6):
//!
//! * The binary (src/RoadRunner/Concerns/FindsRoadRunnerBinary.php, 1.x l. 17, 2.x l. 15):
//!   `base_path('rr')` if it exists, else `rr` on the PATH.
//! * `rr --version`, run in the app's directory (src/Commands/Concerns/
//!   InstallsRoadRunnerDependencies.php, 1.x l. 124–136, 2.x l. 122–134): stdout must start
//!   with `rr version` (1.x: `rr version 2.`); its third space-separated word is compared
//!   with PHP's `version_compare()` to 2023.3.0 (1.x: 2.8.2). Otherwise Octane warns, or
//!   offers to download another binary.
//! * Serving (src/Commands/StartRoadRunnerCommand.php, 1.x l. 79–101, 2.x l. 81–103):
//!   `rr -c <base>/.rr.yaml -o version=… -o http.address=<host>:<port>
//!   -o server.command=… -o http.pool.num_workers=… -o http.pool.max_jobs=…
//!   -o rpc.listen=tcp://<host>:<rpc> -o http.pool.supervisor.exec_ttl=30s
//!   -o http.static.dir=<base>/public -o http.middleware=static -o logs.mode=production
//!   -o logs.level=debug|warn -o logs.output=stdout -o logs.encoding=json serve`, in the
//!   app's directory, with APP_ENV, APP_BASE_PATH and LARAVEL_OCTANE=1 added to the
//!   environment. Without `--rr-config` the .rr.yaml is an empty file Octane just touched
//!   (1.x l. 149, 2.x l. 150). 1.x passes `version=2.7`, host 127.0.0.1 by default and the
//!   command as `php worker`; 2.x `version=3`, no host by default (`:8000`) and the
//!   command as `php,worker`.
//! * Its output (same file, writeServerOutput(), 1.x l. 205–245, 2.x l. 206–246), polled
//!   while it runs: a stdout line that decodes to a JSON array is indexed with `msg` and
//!   `logger` without a check (a missing key is a PHP warning, which Laravel turns into an
//!   exception that ends `octane:start`); a `msg` that itself decodes to an array is the
//!   worker's own report (Octane's workers print JSON to stderr) and is shown as such; the
//!   `server` logger's `msg` is printed raw; an `info` line whose `msg` is "http log" and
//!   that has a `remote_address` must carry `elapsed`, `method`, `status` and `URI`, and
//!   `elapsed` is read by calculateElapsedTime() (1.x l. 253, 2.x l. 251). A stderr line
//!   without DEBUG, INFO or WARN in it is shown as an error.
//! * Reloading (src/RoadRunner/ServerProcessInspector.php reloadServer(), 1.x l. 50–61,
//!   2.x l. 46–57; `octane:reload`, `--watch`): `rr reset -o rpc.listen=tcp://<host>:<rpc>
//!   -s` in the app's directory; any stderr output throws "Cannot reload RoadRunner".
//! * Stopping (same file, 1.x l. 76, 2.x l. 70; `octane:stop`, Ctrl+C): SIGTERM to the
//!   process it started. `octane:status` (1.x l. 34, 2.x l. 32): `kill(pid, 0)`.
//!
//! A real `php artisan octane:start --server=roadrunner` (Octane 1.5.6 on Debian's Laravel
//! 8.83) was run against pacer by hand: Octane is not in Debian, and CI has no network.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::binary::{PACER, children_of, free_port};
use common::serve::fetch;
use common::{eventually, php, repo_root};
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

/// A Laravel-like app directory with pacer installed as `rr`, as Octane finds it
/// (FindsRoadRunnerBinary: `base_path('rr')`).
struct App {
    dir: tempfile::TempDir,
}

impl App {
    fn new() -> App {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(PACER, dir.path().join("rr")).unwrap();
        std::fs::create_dir(dir.path().join("public")).unwrap();
        std::fs::write(dir.path().join("public/robots.txt"), "static\n").unwrap();
        // Octane's `configPath()` touches an empty .rr.yaml when none is given.
        std::fs::write(dir.path().join(".rr.yaml"), "").unwrap();
        std::fs::create_dir_all(dir.path().join("vendor/bin")).unwrap();
        // Stands in for vendor/bin/roadrunner-worker: a RoadRunner worker that reports a
        // request to stderr as Octane's Stream class does, and answers with the
        // environment Octane gave it.
        std::fs::write(
            dir.path().join("vendor/bin/roadrunner-worker"),
            format!(
                r#"<?php
require '{autoload}';
$http = new Pacer\Http\HttpWorker(Pacer\Worker::create());
while ($request = $http->waitRequest()) {{
    fwrite(STDERR, json_encode(['type' => 'throwable', 'class' => 'RuntimeException', 'code' => 0,
        'file' => __FILE__, 'line' => __LINE__, 'message' => 'reported by ' . getmypid(), 'trace' => []]) . "\n");
    $http->respond(200, json_encode([
        'pid' => getmypid(),
        'APP_BASE_PATH' => getenv('APP_BASE_PATH'),
        'LARAVEL_OCTANE' => getenv('LARAVEL_OCTANE'),
        'APP_ENV' => getenv('APP_ENV'),
    ]), ['Content-Type' => ['application/json']]);
}}
"#,
                autoload = repo_root().join("php/autoload.php").display()
            ),
        )
        .unwrap();
        App { dir }
    }

    fn base(&self) -> &Path {
        self.dir.path()
    }

    fn rr(&self) -> PathBuf {
        self.base().join("rr")
    }
}

/// `rr <args>` run to completion in the app's directory: (exit code, stdout, stderr).
async fn run(app: &App, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        Command::new(app.rr())
            .args(args)
            .envs(env.iter().copied())
            .current_dir(app.base())
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// PHP's verdict on `rr --version`'s output, with Octane's own expressions.
fn octane_accepts_version(output: &str, prefix: &str, required: &str) -> bool {
    let script = format!(
        "$v = {out}; if (!str_starts_with($v, {prefix})) {{ exit(2); }} \
         exit(version_compare(explode(' ', $v)[2], {required}, '>=') ? 0 : 3);",
        out = php_string(output),
        prefix = php_string(prefix),
        required = php_string(required),
    );
    std::process::Command::new(php())
        .args(["-r", &script])
        .status()
        .unwrap()
        .success()
}

fn php_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[tokio::test]
async fn rr_version_passes_octanes_checks() {
    let app = App::new();
    let (code, out, err) = run(&app, &["--version"], &[]).await;
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "{err}");
    // Octane 2.x: `rr version`, then >= 2023.3.0.
    assert!(
        octane_accepts_version(&out, "rr version", "2023.3.0"),
        "{out}"
    );
    // Octane 1.x wants `rr version 2.` and >= 2.8.2: PACER_RR_VERSION answers it.
    assert!(
        !octane_accepts_version(&out, "rr version 2.", "2.8.2"),
        "{out}"
    );
    let (_, out, _) = run(&app, &["--version"], &[("PACER_RR_VERSION", "2.12.3")]).await;
    assert!(
        octane_accepts_version(&out, "rr version 2.", "2.8.2"),
        "{out}"
    );
    // As `pacer`, pacer's own version.
    let own = std::process::Command::new(PACER)
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&own.stdout).starts_with("pacer "));
}

/// `rr … serve` as Octane starts it, with stdout and stderr collected.
struct Served {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    port: u16,
    rpc: u16,
}

impl Served {
    async fn start(app: &App, octane2: bool) -> Served {
        let (port, rpc) = (free_port(), free_port());
        let base = app.base().display().to_string();
        let php = php();
        let worker = format!("{base}/vendor/bin/roadrunner-worker");
        let (version, address, command) = if octane2 {
            // 2.x: no --host by default, the command comma-separated.
            ("3", format!(":{port}"), format!("{php},{worker}"))
        } else {
            (
                "2.7",
                format!("127.0.0.1:{port}"),
                format!("{php} {worker}"),
            )
        };
        let overrides = [
            format!("version={version}"),
            format!("http.address={address}"),
            format!("server.command={command}"),
            "http.pool.num_workers=2".into(),
            "http.pool.max_jobs=500".into(),
            format!("rpc.listen=tcp://127.0.0.1:{rpc}"),
            "http.pool.supervisor.exec_ttl=30s".into(),
            format!("http.static.dir={base}/public"),
            "http.middleware=static".into(),
            "logs.mode=production".into(),
            "logs.level=debug".into(),
            "logs.output=stdout".into(),
            "logs.encoding=json".into(),
        ];
        let mut args = vec!["-c".to_string(), format!("{base}/.rr.yaml")];
        for o in overrides {
            args.push("-o".into());
            args.push(o);
        }
        args.push("serve".into());
        let mut child = Command::new(app.rr())
            .args(&args)
            .current_dir(app.base())
            .env("APP_ENV", "local")
            .env("APP_BASE_PATH", &base)
            .env("LARAVEL_OCTANE", "1")
            .env_remove("PACER_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        for (stream, sink) in [
            (
                Box::new(child.stdout.take().unwrap())
                    as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                stdout.clone(),
            ),
            (Box::new(child.stderr.take().unwrap()), stderr.clone()),
        ] {
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    sink.lock().unwrap().push(line);
                }
            });
        }
        let served = Served {
            child,
            stdout,
            stderr,
            port,
            rpc,
        };
        let pid = served.child.id().unwrap();
        assert!(
            eventually(60, || children_of(pid).len() == 2).await,
            "two workers expected: {:?}\n{:?}",
            served.stdout.lock().unwrap(),
            served.stderr.lock().unwrap()
        );
        served
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }
}

/// Octane's reading of one stdout line (writeServerOutput): what it would show, or why
/// it would fail.
#[derive(Debug, PartialEq)]
enum Shown {
    /// Not JSON: printed as info.
    Info(String),
    /// `msg` decodes to an array: handleStream() (the worker's report).
    Stream(serde_json::Value),
    /// The `server` logger: printed raw.
    Raw(String),
    /// An "http log" line: a request line, duration in ms.
    Request {
        method: String,
        uri: String,
        status: u64,
        ms: f64,
    },
    /// Read and ignored.
    Nothing,
}

fn octane_reads(line: &str) -> Result<Shown, String> {
    let Ok(serde_json::Value::Object(debug)) = serde_json::from_str::<serde_json::Value>(line)
    else {
        return Ok(Shown::Info(line.to_string()));
    };
    let msg = debug
        .get("msg")
        .ok_or_else(|| format!("no msg (a PHP warning in Octane): {line}"))?;
    if let Some(text) = msg.as_str()
        && let Ok(stream @ (serde_json::Value::Object(_) | serde_json::Value::Array(_))) =
            serde_json::from_str::<serde_json::Value>(text)
    {
        return Ok(Shown::Stream(stream));
    }
    let logger = debug
        .get("logger")
        .ok_or_else(|| format!("no logger (a PHP warning in Octane): {line}"))?;
    if logger == "server" {
        return Ok(Shown::Raw(msg.as_str().unwrap_or_default().to_string()));
    }
    let level = debug
        .get("level")
        .ok_or_else(|| format!("no level (a PHP warning in Octane): {line}"))?;
    if level == "info" && debug.contains_key("remote_address") && msg == "http log" {
        let field = |k: &str| {
            debug
                .get(k)
                .cloned()
                .ok_or_else(|| format!("http log without {k}: {line}"))
        };
        let elapsed = field("elapsed")?;
        return Ok(Shown::Request {
            method: field("method")?.as_str().unwrap_or_default().to_string(),
            uri: field("URI")?.as_str().unwrap_or_default().to_string(),
            status: field("status")?.as_u64().unwrap_or_default(),
            ms: elapsed_ms(&elapsed),
        });
    }
    Ok(Shown::Nothing)
}

/// StartRoadRunnerCommand::calculateElapsedTime (2.x; 1.x lacks the integer case).
fn elapsed_ms(elapsed: &serde_json::Value) -> f64 {
    let text = match elapsed {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if let Some(ms) = text.strip_suffix("ms") {
        return ms.parse().unwrap_or(f64::NAN);
    }
    if let Some(us) = text.strip_suffix("µs") {
        return us.parse::<f64>().unwrap_or(f64::NAN) * 0.001;
    }
    if let Ok(ms) = text.parse::<i64>() {
        return ms as f64;
    }
    leading_float(&text) * 1000.0
}

/// PHP's `(float) "1.5s"`: the leading number.
fn leading_float(s: &str) -> f64 {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == 'e'))
        .unwrap_or(s.len());
    s[..end].parse().unwrap_or(0.0)
}

async fn serve_reset_and_stop(octane2: bool) {
    let app = App::new();
    let mut served = Served::start(&app, octane2).await;
    let pid = served.child.id().unwrap();

    // Serving, with Octane's environment passed to the workers, and public/ as static.
    let reply = fetch(&served.url("/")).await;
    assert_eq!(reply.status, 200, "{:?}", served.stdout());
    let env = reply.json();
    assert_eq!(env["APP_BASE_PATH"], app.base().display().to_string());
    assert_eq!(env["LARAVEL_OCTANE"], "1");
    assert_eq!(env["APP_ENV"], "local");
    assert_eq!(fetch(&served.url("/robots.txt")).await.text(), "static\n");

    // Every stdout line reads as Octane reads it; the worker's report comes through.
    let reported = format!("reported by {}", env["pid"]);
    assert!(
        eventually(30, || {
            served.stdout().iter().any(|l| {
                matches!(octane_reads(l), Ok(Shown::Stream(s)) if s["message"] == reported.as_str())
            })
        })
        .await,
        "the worker's JSON report is not a server-logger msg: {:?}",
        served.stdout()
    );
    let workers_before = children_of(pid);

    // octane:reload: `rr reset -o rpc.listen=… -s`, nothing on stderr, workers replaced.
    let listen = format!("rpc.listen=tcp://127.0.0.1:{}", served.rpc);
    let (code, _, err) = run(&app, &["reset", "-o", &listen, "-s"], &[]).await;
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "Octane throws on any stderr output: {err}");
    assert!(
        eventually(60, || {
            let now = children_of(pid);
            now.len() == 2 && now.iter().all(|p| !workers_before.contains(p))
        })
        .await,
        "workers not replaced: {workers_before:?} → {:?}\n{:?}",
        children_of(pid),
        served.stdout()
    );
    // Also when the app has no .rr.yaml (octane:start --rr-config elsewhere).
    std::fs::remove_file(app.base().join(".rr.yaml")).unwrap();
    let (code, _, err) = run(&app, &["reset", "-o", &listen, "-s"], &[]).await;
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(fetch(&served.url("/")).await.status, 200);

    // octane:stop: SIGTERM; a clean exit.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(60), served.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    tokio::time::sleep(Duration::from_millis(200)).await;

    for line in served.stdout() {
        octane_reads(&line).unwrap_or_else(|e| panic!("Octane would fail: {e}"));
    }
    let stderr = served.stderr.lock().unwrap().clone();
    let shown_as_errors: Vec<_> = stderr
        .iter()
        .filter(|l| !["DEBUG", "INFO", "WARN"].iter().any(|k| l.contains(k)))
        .collect();
    assert!(
        shown_as_errors.is_empty(),
        "Octane shows these as errors: {shown_as_errors:?}"
    );
}

#[tokio::test]
async fn octane_2_serve_reload_stop() {
    serve_reset_and_stop(true).await;
}

#[tokio::test]
async fn octane_1_serve_reload_stop() {
    serve_reset_and_stop(false).await;
}

#[tokio::test]
async fn access_log_lines_are_octanes_request_lines() {
    // Octane shows a line per request from RoadRunner's "http log" records; pacer writes
    // them with `http.access_logs: true` in the app's .rr.yaml.
    let app = App::new();
    std::fs::write(
        app.base().join(".rr.yaml"),
        "version: \"3\"\nhttp:\n  access_logs: true\n",
    )
    .unwrap();
    let served = Served::start(&app, true).await;
    assert_eq!(fetch(&served.url("/some/page?x=1")).await.status, 200);
    let request = || {
        served.stdout().iter().find_map(|l| match octane_reads(l) {
            Ok(r @ Shown::Request { .. }) => Some(r),
            _ => None,
        })
    };
    assert!(
        eventually(30, || request().is_some()).await,
        "{:?}",
        served.stdout()
    );
    let Some(Shown::Request {
        method,
        uri,
        status,
        ms,
    }) = request()
    else {
        unreachable!()
    };
    assert_eq!(
        (method.as_str(), uri.as_str(), status),
        ("GET", "/some/page", 200)
    );
    assert!(ms > 0.0 && ms < 60_000.0, "{ms} ms");
}

#[test]
fn elapsed_is_read_as_octane_reads_it() {
    assert_eq!(elapsed_ms(&"1.25ms".into()), 1.25);
    assert!((elapsed_ms(&"850µs".into()) - 0.85).abs() < 1e-9);
    assert_eq!(elapsed_ms(&"1.5s".into()), 1500.0);
    assert_eq!(elapsed_ms(&serde_json::json!(12)), 12.0);
}
