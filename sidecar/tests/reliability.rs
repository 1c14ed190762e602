//! Reliability under continuous HTTP load through the real server: each scenario runs
//! while several clients keep sending requests, and asserts exactly what happened to
//! every one of them — zero failed or lost requests unless the scenario says which
//! request fails and how.
//!
//! The pool-level versions of several scenarios live in `pool_php.rs`/`worker_php.rs`,
//! single requests in `http_serve.rs`, the binary's shutdown in `serve_binary.rs`; these
//! add the load, the HTTP path and the process-level facts (CPU, fds, children).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use common::binary::*;
use common::load::{Got, Load, LoadOptions};
use common::serve::*;
use common::{alive, eventually, php};
use http::Request;
use http_body_util::Full;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use pacer::rpc::client::RpcClient;
use pacer::worker::RecycleReason;
use tokio::time::Instant;

fn sigkill(pid: u32) {
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
}

/// The worker that has been running one job for at least `for_at_least` (the load's
/// jobs are 50 times shorter), once there is exactly one, seen twice 200 ms apart (a
/// short job that a loaded machine stalled is over by then).
async fn long_busy_worker(server: &Server, for_at_least: Duration) -> u32 {
    let long_busy = || {
        let now = Instant::now();
        server
            .pool()
            .snapshot()
            .workers
            .iter()
            .filter(|w| w.busy_for(now).is_some_and(|b| b >= for_at_least))
            .map(|w| w.pid)
            .collect::<Vec<u32>>()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let [pid] = long_busy()[..] {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if long_busy() == [pid] {
                return pid;
            }
        }
        assert!(Instant::now() < deadline, "no single long-running job");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// GET requests for `path_and_query` with `&c=<client>&i=<seq>` appended, so every
/// request of a run is distinct in failure messages.
fn tagged(
    server: &Server,
    path_and_query: &str,
) -> impl Fn(usize, u64) -> Request<Full<Bytes>> + use<> {
    let base = server.url(path_and_query);
    let sep = if base.contains('?') { '&' } else { '?' };
    move |c, i| get(&format!("{base}{sep}c={c}&i={i}"))
}

/// A server of `workers` http.php workers with RPC on a free port, and a client of it.
async fn with_rpc(workers: usize) -> (Server, RpcClient) {
    let server = Builder::new("http.php")
        .workers(workers)
        .set("rpc.listen", "tcp://127.0.0.1:0")
        .start()
        .await;
    let rpc = RpcClient::connect(server.rpc.as_ref().unwrap(), Duration::from_secs(30))
        .await
        .unwrap();
    (server, rpc)
}

/// Waits (10 s at most) until every one of `pids`, the `what` workers, has exited.
async fn all_exit(pids: &[u32], what: &str) {
    assert!(
        eventually(10, || pids.iter().all(|p| !alive(*p))).await,
        "{what} workers still alive"
    );
}

/// Waits until `server` runs 4 workers again, `pid` not among them.
async fn replaced(server: &Server, pid: u32) {
    assert!(
        eventually(20, || {
            let pids = server.worker_pids();
            pids.len() == 4 && !pids.contains(&pid)
        })
        .await,
        "no replacement: {:?}",
        server.worker_pids()
    );
}

fn spawn_fetch(url: String) -> tokio::task::JoinHandle<(Reply, Instant)> {
    tokio::spawn(async move {
        let r = fetch(&url).await;
        (r, Instant::now())
    })
}

// ---------------------------------------------------------------------------------------
// Worker death and hangs

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_a_busy_worker_fails_only_its_request_with_a_fast_500() {
    let server = Builder::new("http.php").workers(4).start().await;
    let load = Load::start(LoadOptions::clients(3), tagged(&server, "/sleep?ms=20"));
    load.wait_done(30, 30).await;

    let victim = spawn_fetch(server.url("/sleep?ms=30000&id=victim"));
    let pid = long_busy_worker(&server, Duration::from_millis(1000)).await;
    sigkill(pid);
    let killed = Instant::now();
    let (r, answered) = victim.await.unwrap();
    assert_eq!(r.status, 500, "{}", r.text());
    let took = answered - killed;
    assert!(took < Duration::from_secs(3), "the 500 took {took:?}");

    // A replacement takes the slot; the load keeps going meanwhile.
    replaced(&server, pid).await;
    load.finish_after(30, "load beside the killed worker", 60)
        .await;
    assert_eq!(server.pool().stats().restarts(RecycleReason::Died), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_worker_is_504_past_exec_ttl_for_its_request_only_and_replaced() {
    let server = Builder::new("http.php")
        .workers(4)
        .set("http.pool.supervisor.exec_ttl", "2s")
        .set("http.pool.supervisor.watch_tick", "200ms")
        .start()
        .await;
    let load = Load::start(LoadOptions::clients(3), tagged(&server, "/sleep?ms=20"));
    load.wait_done(30, 30).await;

    let started = Instant::now();
    let hung = spawn_fetch(server.url("/sleep?ms=60000&id=hung"));
    let pid = long_busy_worker(&server, Duration::from_millis(500)).await;
    let (r, answered) = hung.await.unwrap();
    assert_eq!(r.status, 504, "{}", r.text());
    let took = answered - started;
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(6),
        "504 after {took:?}"
    );
    assert!(
        eventually(10, || !alive(pid)).await,
        "the hung worker lives"
    );
    replaced(&server, pid).await;
    load.finish_after(30, "load beside the hung worker", 60)
        .await;
    assert_eq!(server.pool().stats().restarts(RecycleReason::ExecTtl), 1);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Recycling and resizing

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_reset_over_rpc_every_second_for_30_s_fails_nothing() {
    let (server, mut rpc) = with_rpc(4).await;
    let load = Load::start(LoadOptions::clients(4), tagged(&server, "/sleep?ms=10"));
    load.wait_done(20, 30).await;

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let until = Instant::now() + Duration::from_secs(30);
    let mut resets = 0u64;
    let mut generations = vec![server.worker_pids()];
    while Instant::now() < until {
        tick.tick().await;
        let before = server.worker_pids();
        rpc.reset("http").await.unwrap();
        resets += 1;
        let after = server.worker_pids();
        assert_eq!(after.len(), 4, "reset {resets}: {before:?} → {after:?}");
        assert!(
            after.iter().all(|p| !before.contains(p)),
            "reset {resets} left workers: {before:?} → {after:?}"
        );
        generations.push(after);
    }
    let report = load.finish().await;
    report.assert_all_ok("load during rolling resets", 200);
    // A reset (four PHP boots in a row) takes well under a second on an idle machine;
    // a loaded one may need up to three.
    assert!(resets >= 10, "only {resets} resets in 30 s");
    assert_eq!(
        server.pool().stats().restarts(RecycleReason::Reset),
        4 * resets
    );
    let retired: Vec<u32> = generations[..generations.len() - 1].concat();
    all_exit(&retired, "retired").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_jobs_10_recycles_under_load_and_fails_nothing() {
    let server = Builder::new("http.php")
        .workers(2)
        .set("http.pool.max_jobs", 10)
        .start()
        .await;
    let first = server.worker_pids();
    let total = 300;
    let load = Load::start(
        LoadOptions {
            total,
            ..LoadOptions::clients(4)
        },
        tagged(&server, "/pid"),
    );
    load.wait_done(total, 120).await;
    let report = load.finish().await;
    report.assert_all_ok("max_jobs recycling", total as usize);

    let mut jobs: BTreeMap<u32, u64> = BTreeMap::new();
    for body in report.bodies() {
        *jobs.entry(body.parse().unwrap()).or_default() += 1;
    }
    let live = server.worker_pids();
    for (pid, n) in &jobs {
        // max_jobs plus the worker's 0–14 % jitter: 10 or 11 jobs, then retired.
        if live.contains(pid) {
            assert!(*n <= 11, "worker {pid} ran {n} jobs");
        } else {
            assert!((10..=11).contains(n), "retired worker {pid} ran {n} jobs");
        }
    }
    let retired: Vec<u32> = jobs.keys().filter(|p| !live.contains(p)).copied().collect();
    assert!(retired.len() >= 300 / 11 - 2, "{jobs:?}");
    assert!(first.iter().all(|p| jobs.contains_key(p)), "{first:?}");
    assert_eq!(
        server.pool().stats().restarts(RecycleReason::MaxJobs),
        retired.len() as u64
    );
    all_exit(&retired, "retired").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit_recycles_a_leaking_endpoint_and_fails_nothing() {
    let server = Builder::new("http.php")
        .workers(2)
        .set("http.pool.supervisor.max_worker_memory", 48)
        .set("http.pool.supervisor.watch_tick", "100ms")
        .start()
        .await;
    let first = server.worker_pids();
    let load = Load::start(LoadOptions::clients(3), tagged(&server, "/leak?kb=512"));
    assert!(
        eventually(60, || server.pool().stats().restarts(RecycleReason::Memory)
            >= 4)
        .await,
        "no memory recycling: {:?}",
        server.pool().stats()
    );
    let report = load.finish().await;
    report.assert_all_ok("memory recycling", 50);
    let rss: Vec<u64> = report.bodies().map(|b| b.parse().unwrap()).collect();
    let max = *rss.iter().max().unwrap();
    // Recycling is soft: a worker serves on until its replacement is up, so it can
    // overshoot by what it leaks meanwhile, but not run away.
    assert!(max < 160 << 20, "a worker reached {max} bytes");
    let now = server.worker_pids();
    assert!(
        now.iter().all(|p| !first.contains(p)),
        "{first:?} → {now:?}"
    );
    all_exit(&first, "recycled").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_resize_up_and_down_with_busy_workers_fails_nothing() {
    let (server, mut rpc) = with_rpc(2).await;
    // More clients than workers, and jobs long enough that every shrink meets busy ones.
    let load = Load::start(LoadOptions::clients(6), tagged(&server, "/sleep?ms=100"));
    load.wait_done(10, 30).await;
    let mut seen: BTreeSet<u32> = server.worker_pids().into_iter().collect();
    let settle = |n: usize| {
        let server = &server;
        async move {
            assert!(
                eventually(30, || server.worker_pids().len() == n
                    && server.pool().snapshot().stopping == 0)
                .await,
                "never settled at {n}: {:?}",
                server.worker_pids()
            );
        }
    };
    for (step, target) in [6usize, 1, 5, 2, 4].into_iter().enumerate() {
        if step % 2 == 0 {
            server.pool().set_target(target);
        } else {
            // Down (and back up) one worker at a time over RPC, as `rr` clients do.
            let from = server.pool().target();
            for _ in target..from {
                rpc.remove_worker("http").await.unwrap();
            }
        }
        settle(target).await;
        seen.extend(server.worker_pids());
        let done = load.done();
        load.wait_done(done + 10, 30).await;
    }
    for _ in 0..2 {
        rpc.add_worker("http").await.unwrap();
    }
    settle(6).await;
    seen.extend(server.worker_pids());
    let report = load.finish().await;
    report.assert_all_ok("resizing", 60);
    let live: BTreeSet<u32> = server.worker_pids().into_iter().collect();
    let gone: Vec<u32> = seen.difference(&live).copied().collect();
    assert!(gone.len() >= 8, "{seen:?} → {live:?}");
    all_exit(&gone, "retired").await;
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Children of PHP

/// Live processes running `sleep <secs>` (the `/fork` route's children), with their
/// process group.
fn fork_children(secs: u32) -> Vec<(u32, u32)> {
    processes_with_arg(&secs.to_string())
        .into_iter()
        .filter_map(|pid| {
            let f = stat_fields(pid)?;
            Some((pid, f[2].parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forked_children_die_with_a_killed_worker_and_its_request_is_a_fast_500() {
    // A `sleep` argument no other test uses marks this test's children.
    const SECS: u32 = 6007;
    let server = Builder::new("http.php").workers(3).start().await;
    let load = Load::start(LoadOptions::clients(2), tagged(&server, "/sleep?ms=20"));
    load.wait_done(20, 30).await;

    let victim = spawn_fetch(server.url(&format!("/fork?secs={SECS}&sleep_ms=30000")));
    let pid = long_busy_worker(&server, Duration::from_millis(1000)).await;
    // A child and a grandchild, both holding the worker's stdout (the relay).
    assert!(
        eventually(10, || fork_children(SECS).len() == 2).await,
        "{:?}",
        fork_children(SECS)
    );
    let children = fork_children(SECS);
    assert!(children.iter().all(|(_, g)| *g == pid), "{children:?}");
    sigkill(pid);
    let killed = Instant::now();
    let (r, answered) = victim.await.unwrap();
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(
        answered - killed < Duration::from_secs(3),
        "the children kept the relay open: 500 after {:?}",
        answered - killed
    );
    assert!(
        eventually(5, || children.iter().all(|(c, _)| !alive(*c))).await,
        "children outlived their worker: {children:?}"
    );
    assert!(eventually(20, || server.worker_pids().len() == 3).await);
    load.finish_after(20, "load beside the forks", 40).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forked_children_die_when_their_worker_is_recycled() {
    const SECS: u32 = 6011;
    let server = Builder::new("http.php")
        .workers(2)
        .set("http.pool.max_jobs", 4)
        .start()
        .await;
    let total = 40;
    let path = format!("/fork?secs={SECS}");
    let load = Load::start(
        LoadOptions {
            total,
            ..LoadOptions::clients(3)
        },
        tagged(&server, &path),
    );
    load.wait_done(total, 60).await;
    let report = load.finish().await;
    report.assert_all_ok("forking under max_jobs", total as usize);

    let forks: Vec<(u32, u32)> = report
        .bodies()
        .map(|b| {
            let v: serde_json::Value = serde_json::from_str(&b).unwrap();
            (
                v["parent"].as_u64().unwrap() as u32,
                v["child"].as_u64().unwrap() as u32,
            )
        })
        .collect();
    let live = server.worker_pids();
    let retired: BTreeSet<u32> = forks
        .iter()
        .map(|(p, _)| *p)
        .filter(|p| !live.contains(p))
        .collect();
    assert!(retired.len() >= 6, "{forks:?}");
    // Every child of a retired worker is gone; only the live workers' children remain.
    assert!(
        eventually(10, || fork_children(SECS)
            .iter()
            .all(|(_, group)| live.contains(group)))
        .await,
        "children of recycled workers survive: {:?} (live workers {live:?})",
        fork_children(SECS)
    );
    for (parent, child) in &forks {
        if retired.contains(parent) {
            assert!(!alive(*child), "child {child} of recycled {parent}");
        }
    }
    server.stop().await;
    assert!(
        eventually(10, || fork_children(SECS).is_empty()).await,
        "children outlived pacer's shutdown: {:?}",
        fork_children(SECS)
    );
}

// ---------------------------------------------------------------------------------------
// The binary: shutdown, broken workers, CPU, uploads and fds

/// A config for the binary: `workers` workers running `command` with `env`, every
/// listener on a free loopback port, `extra` appended at the top level.
struct BinaryConfig<'a> {
    command: Vec<String>,
    env: &'a [(&'a str, &'a str)],
    workers: usize,
    allocate_timeout: &'a str,
    extra: &'a str,
}

impl BinaryConfig<'_> {
    fn new(command: Vec<String>) -> BinaryConfig<'static> {
        BinaryConfig {
            command,
            env: &[],
            workers: 2,
            allocate_timeout: "1s",
            extra: "",
        }
    }

    fn start(self) -> PacerBin {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("uploads")).unwrap();
        let ports = Ports::pick();
        let mut env = String::new();
        if !self.env.is_empty() {
            env.push_str("\n  env:");
            for (k, v) in self.env {
                env.push_str(&format!("\n    {k}: {}", serde_json::to_string(v).unwrap()));
            }
        }
        let yaml = format!(
            r#"version: "3"
server:
  command: {command}{env}
http:
  address: {http}
  uploads:
    dir: {uploads}
  pool:
    num_workers: {workers}
    allocate_timeout: {allocate}
    destroy_timeout: 5s
status:
  address: {status}
metrics:
  address: {metrics}
logs:
  level: info
  encoding: console
{extra}
"#,
            command = serde_json::to_string(&self.command).unwrap(),
            http = ports.http,
            status = ports.status,
            metrics = ports.metrics,
            uploads = yaml_path(&dir.path().join("uploads")),
            workers = self.workers,
            allocate = self.allocate_timeout,
            extra = self.extra,
        );
        PacerBin::spawn(dir, ports, &yaml)
    }
}

#[tokio::test]
async fn sigterm_under_keep_alive_load_finishes_long_requests_and_refuses_late_ones_cleanly() {
    let mut pacer = BinaryConfig {
        workers: 6,
        allocate_timeout: "20s",
        extra: "pacer:\n  shutdown:\n    delay: 1s\n    grace_period: 20s",
        ..BinaryConfig::new(vec![php(), script("http.php")])
    }
    .start();
    pacer.wait_ready(6).await;
    let workers = children_of(pacer.pid());

    let base = pacer.url("/sleep?ms=200");
    let load = Load::start(
        LoadOptions {
            stop_on_no_response: true,
            ..LoadOptions::clients(3)
        },
        move |c, i| get(&format!("{base}&c={c}&i={i}")),
    );
    load.wait_done(15, 30).await;
    let long: Vec<_> = (0..2)
        .map(|i| spawn_fetch(pacer.url(&format!("/sleep?ms=4000&long={i}"))))
        .collect();
    // Three load clients at most: five busy workers means both long requests run.
    let working = "pacer_workers{pool=\"http\",state=\"working\"}";
    assert!(
        eventually_async(20, || async { pacer.metric(working).await >= 5.0 }).await,
        "the long requests never ran"
    );

    pacer.signal(Signal::SIGTERM);
    let signalled = Instant::now();
    let http = pacer.ports.http;
    assert!(
        eventually_async(20, || async {
            tokio::net::TcpStream::connect(http).await.is_err()
        })
        .await,
        "the listener never closed"
    );
    let closed = Instant::now();
    assert!(
        closed - signalled >= Duration::from_millis(900),
        "closed {:?} after the signal, before the 1 s delay",
        closed - signalled
    );
    for l in long {
        let (r, done) = l.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text(), "slept 4000 ms");
        assert!(done > closed, "a long request ended before the drain");
    }
    let status = pacer.wait_exit(30).await;
    let exited = Instant::now();
    assert_eq!(status.code(), Some(0), "{}", pacer.stderr());
    assert!(
        exited - signalled < Duration::from_secs(20),
        "shutdown took {:?}, past the grace period",
        exited - signalled
    );
    let log = pacer.stderr();
    assert!(!log.contains("grace period over"), "{log}");

    // Every load request either got its whole answer, or — only once the drain had
    // begun — no answer at all; never an error status or a body cut short.
    let report = load.finish().await;
    let mut refused = 0;
    let mut served_while_draining = 0;
    for o in &report.outcomes {
        match &o.got {
            Got::Response { status, .. } if *status == 200 => {
                assert_eq!(o.text(), "slept 200 ms", "{o:?}");
                if o.started > signalled {
                    served_while_draining += 1;
                }
            }
            Got::NoResponse(_) if o.started > signalled => refused += 1,
            _ => panic!("{o:#?}"),
        }
    }
    // Each client stopped at its first refusal: none hung, none got a broken answer.
    assert_eq!(refused, 3, "{:#?}", report.failures());
    assert!(
        served_while_draining >= 3,
        "nothing served during the delay"
    );
    assert!(
        eventually(10, || workers.iter().all(|p| !alive(*p))).await,
        "PHP workers left behind: {workers:?}"
    );
}

/// Asserts that pacer used less than `share` of one core over `window`, while `load`
/// keeps sending requests.
async fn assert_cpu_below(pacer: &PacerBin, window: Duration, share: f64) -> Duration {
    let before = pacer.cpu_time();
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let used = pacer.cpu_time() - before;
    let wall = started.elapsed();
    assert!(
        used.as_secs_f64() < share * wall.as_secs_f64(),
        "pacer used {used:?} of CPU in {wall:?}: {}",
        pacer.stderr()
    );
    used
}

/// Every load request got a fast 503 with Retry-After, after allocate_timeout (1 s).
fn assert_all_503(report: &common::load::Report, what: &str) {
    assert!(report.len() >= 4, "{what}: {} requests", report.len());
    for o in &report.outcomes {
        assert_eq!(o.status(), Some(503), "{what}: {o:?}");
        assert!(
            o.elapsed < Duration::from_secs(5),
            "{what}: a 503 took {:?}",
            o.elapsed
        );
    }
}

async fn ready_reason(pacer: &PacerBin) -> (u16, String) {
    let r = fetch(&pacer.status_url("/ready")).await;
    let reason = r.json()[0]["error_message"].as_str().unwrap().to_string();
    (r.status.as_u16(), reason)
}

#[tokio::test]
async fn a_command_that_crashes_at_boot_backs_off_with_ready_503_and_low_cpu() {
    let pacer = BinaryConfig::new(vec![
        php(),
        "-r".into(),
        "fwrite(STDERR, 'bootstrap failed'); exit(3);".into(),
    ])
    .start();
    pacer.wait_listening().await;
    let load = Load::start(LoadOptions::clients(2), {
        let url = pacer.url("/");
        move |_, _| get(&url)
    });
    let ready = pacer.status_url("/ready");
    assert!(
        eventually_async(20, || async { fetch(&ready).await.status == 503 }).await,
        "{}",
        pacer.stderr()
    );
    // Measured once the first failures are in: pacer must idle between attempts.
    assert_cpu_below(&pacer, Duration::from_secs(5), 0.10).await;
    let (code, reason) = ready_reason(&pacer).await;
    assert_eq!(code, 503);
    assert!(reason.starts_with("no workers: "), "{reason}");
    assert_eq!(fetch(&pacer.status_url("/health")).await.status, 200);
    let report = load.finish().await;
    assert_all_503(&report, "requests while no worker starts");

    // The backoff shows in the log: attempts spread out, each delay longer.
    let log = pacer.stderr();
    let delays: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("worker failed to start"))
        .filter_map(|l| l.split("retry_in=").nth(1)?.split_whitespace().next())
        .collect();
    assert!(
        (3..=20).contains(&delays.len()),
        "{} failed starts: {log}",
        delays.len()
    );
    assert_ne!(
        delays.first(),
        delays.last(),
        "the delay never grew: {delays:?}"
    );
    assert!(
        log.contains("bootstrap failed"),
        "PHP's stderr is logged: {log}"
    );
    // And in the metrics, for alerting: at least every failure the log showed so far.
    let failures = pacer
        .metric("pacer_worker_spawn_failures_total{pool=\"http\"}")
        .await;
    assert!(
        failures >= delays.len() as f64,
        "{failures} spawn failures counted, {} logged",
        delays.len()
    );
    pacer.stop().await;
}

#[tokio::test]
async fn a_worker_that_never_answers_the_handshake_is_killed_and_retried_without_spinning() {
    // An argument only this test's PHP processes carry.
    let marker = format!("--no-handshake-{}", std::process::id());
    let pacer = BinaryConfig {
        env: &[("OPS_NO_HANDSHAKE", "1")],
        ..BinaryConfig::new(vec![php(), script("ops.php"), marker.clone()])
    }
    .start();
    pacer.wait_listening().await;
    let load = Load::start(LoadOptions::clients(2), {
        let url = pacer.url("/");
        move |_, _| get(&url)
    });
    assert!(
        eventually_async(20, || async {
            let (code, reason) = ready_reason(&pacer).await;
            code == 503 && reason.contains("did not complete the handshake")
        })
        .await,
        "{:?} {}",
        ready_reason(&pacer).await,
        pacer.stderr()
    );
    // Never more silent PHP processes than workers: each is killed when its handshake
    // times out (allocate_timeout, 1 s).
    let most = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let watcher = {
        let (most, marker) = (most.clone(), marker.clone());
        tokio::spawn(async move {
            loop {
                let n = processes_with_arg(&marker).len();
                most.fetch_max(n, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    assert_cpu_below(&pacer, Duration::from_secs(5), 0.10).await;
    watcher.abort();
    let most = most.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        (1..=2).contains(&most),
        "{most} silent PHP processes at once"
    );
    assert_eq!(fetch(&pacer.status_url("/health")).await.status, 200);
    let report = load.finish().await;
    assert_all_503(&report, "requests while workers never answer");
    pacer.stop().await;
    assert!(
        eventually(10, || processes_with_arg(&marker).is_empty()).await,
        "silent PHP processes left: {:?}",
        processes_with_arg(&marker)
    );
}

#[tokio::test]
async fn a_thousand_1_mib_uploads_leave_no_temp_file_and_no_fd_leak() {
    let pacer = BinaryConfig {
        allocate_timeout: "20s",
        ..BinaryConfig::new(vec![php(), script("http.php")])
    }
    .start();
    pacer.wait_ready(2).await;
    let uploads = pacer.path("uploads");
    let data: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let sha = {
        use std::fmt::Write;
        let digest = std::process::Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write as _;
                c.stdin.take().unwrap().write_all(&data)?;
                c.wait_with_output()
            })
            .unwrap();
        let mut s = String::new();
        write!(s, "{}", String::from_utf8_lossy(&digest.stdout)).unwrap();
        s.split_whitespace().next().unwrap().to_string()
    };
    let body = {
        let mut b = Vec::with_capacity(data.len() + 256);
        b.extend_from_slice(
            b"--BoUnDaRy\r\nContent-Disposition: form-data; name=\"file\"; filename=\"blob.bin\"\r\n\
Content-Type: application/octet-stream\r\n\r\n",
        );
        b.extend_from_slice(&data);
        b.extend_from_slice(b"\r\n--BoUnDaRy--\r\n");
        Bytes::from(b)
    };
    let fds_before = pacer.fd_count();
    let url = pacer.url("/upload");
    let total = 1000;
    let load = Load::start(
        LoadOptions {
            total,
            ..LoadOptions::clients(4)
        },
        move |_, _| {
            Request::post(url.as_str())
                .header("content-type", "multipart/form-data; boundary=BoUnDaRy")
                .body(Full::new(body.clone()))
                .unwrap()
        },
    );
    load.wait_done(total, 200).await;
    let report = load.finish().await;
    report.assert_all_ok("1 MiB uploads", total as usize);
    for body in report.bodies() {
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let f = &v[0];
        assert_eq!(f["size"], 1 << 20, "{v}");
        assert_eq!(f["error"], 0, "{v}");
        assert_eq!(f["tmp_exists"], true, "{v}");
        assert_eq!(f["sha256"], sha.as_str(), "{v}");
    }
    // The clients are gone; so must be their connections and every temp file.
    common::poll::emptied(&uploads, 10, "temp files left").await;
    assert!(
        eventually(10, || pacer.fd_count() <= fds_before + 2).await,
        "pacer's fds: {fds_before} before, {} after",
        pacer.fd_count()
    );
    pacer.stop().await;
}
