//! Pool behaviour with real PHP workers: recycling limits, live resizing and rolling
//! resets under concurrent load.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use pacer::pool::{Pool, PoolError};
use pacer::relay::RelayAddr;
use pacer::supervisor;
use pacer::worker::RecycleReason;
use tokio_util::sync::CancellationToken;

const MIB: u64 = 1 << 20;

/// Keeps `clients` concurrent clients sending echo jobs until stopped; counts results.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<Vec<String>>>,
}

impl Load {
    fn start(pool: &Pool, clients: usize, ctx: &'static str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let tasks = (0..clients)
            .map(|c| {
                let (pool, stop, ok, failed) =
                    (pool.clone(), stop.clone(), ok.clone(), failed.clone());
                tokio::spawn(async move {
                    let mut errors = Vec::new();
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let body = format!("client {c} job {i}");
                        match call(&pool, ctx, body.as_bytes()).await {
                            Ok(reply) if reply.body == body.as_bytes() => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(reply) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                errors.push(format!("wrong body {:?}", reply.body));
                            }
                            Err(e) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                errors.push(e.to_string());
                            }
                        }
                        i += 1;
                    }
                    errors
                })
            })
            .collect();
        Load { stop, ok, tasks }
    }

    async fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut errors = Vec::new();
        for t in self.tasks {
            errors.extend(t.await.unwrap());
        }
        (self.ok.load(Ordering::Relaxed), errors)
    }
}

fn pids(pool: &Pool) -> HashSet<u32> {
    pool.snapshot().workers.iter().map(|w| w.pid).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_jobs_recycles_with_jitter_and_loses_nothing() {
    let mut s = settings(2);
    s.max_jobs = 10;
    let pool = ops_pool(s, RelayAddr::Pipes, &[]).await;
    let load = Load::start(&pool, 4, r#"{"op":"echo"}"#);
    assert!(eventually(30, || pool.stats().restarts(RecycleReason::MaxJobs) >= 10).await);
    let (ok, errors) = load.finish().await;
    assert!(errors.is_empty(), "{errors:?}");
    assert!(ok >= 100);
    // No worker ran more than max_jobs + 14 % (rounded down) jobs.
    for w in pool.snapshot().workers {
        assert!(w.jobs() <= 11, "worker {} ran {} jobs", w.pid, w.jobs());
    }
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_recycles_between_jobs() {
    let mut s = settings(1);
    s.supervisor.ttl = Some(Duration::from_millis(300));
    s.supervisor.watch_tick = Duration::from_millis(50);
    let pool = ops_pool(s, RelayAddr::Pipes, &[]).await;
    let cancel = CancellationToken::new();
    tokio::spawn(supervisor::run(pool.clone(), cancel.clone()));
    let first = pid_of_next(&pool).await;
    // A job longer than the ttl is not interrupted.
    let reply = call(&pool, r#"{"op":"sleep","ms":600}"#, b"slow")
        .await
        .unwrap();
    assert_eq!(reply.body, &b"slow"[..]);
    assert!(
        eventually(5, || !pids(&pool).contains(&first)
            && !pids(&pool).is_empty())
        .await
    );
    assert!(pool.stats().restarts(RecycleReason::Ttl) >= 1);
    cancel.cancel();
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_ttl_recycles_only_after_first_use() {
    let mut s = settings(2);
    s.supervisor.idle_ttl = Some(Duration::from_millis(300));
    s.supervisor.watch_tick = Duration::from_millis(50);
    let pool = ops_pool(s, RelayAddr::Pipes, &[]).await;
    let cancel = CancellationToken::new();
    tokio::spawn(supervisor::run(pool.clone(), cancel.clone()));
    let before = pids(&pool);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        pids(&pool),
        before,
        "unused workers are never idle-recycled"
    );
    let used = pid_of_next(&pool).await;
    assert!(eventually(5, || !pids(&pool).contains(&used)).await);
    assert_eq!(pool.stats().restarts(RecycleReason::IdleTtl), 1);
    cancel.cancel();
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaking_worker_is_recycled_by_memory_limit_without_failing_requests() {
    let mut s = settings(2);
    s.supervisor.max_worker_memory = Some(40 * MIB);
    s.supervisor.watch_tick = Duration::from_millis(50);
    let pool = ops_pool(s, RelayAddr::Pipes, &[]).await;
    let cancel = CancellationToken::new();
    tokio::spawn(supervisor::run(pool.clone(), cancel.clone()));
    let mut max_rss = 0u64;
    for _ in 0..200 {
        // Each job keeps 512 KiB more alive; the body is the worker's RSS.
        let reply = call(&pool, r#"{"op":"leak","kb":512}"#, b"").await.unwrap();
        let rss: u64 = std::str::from_utf8(&reply.body).unwrap().parse().unwrap();
        max_rss = max_rss.max(rss);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        pool.stats().restarts(RecycleReason::Memory) >= 2,
        "{:?}",
        pool.stats()
    );
    // Recycling is soft: a worker may overshoot by what it leaks within one tick.
    assert!(max_rss < 80 * MIB, "max RSS seen {max_rss}");
    cancel.cancel();
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_ttl_kills_the_worker_and_fails_the_job() {
    let mut s = settings(1);
    s.supervisor.exec_ttl = Some(Duration::from_millis(300));
    let pool = ops_pool(s, RelayAddr::Pipes, &[]).await;
    let pid = pid_of_next(&pool).await;
    let started = tokio::time::Instant::now();
    let err = call(&pool, r#"{"op":"sleep","ms":5000}"#, b"")
        .await
        .unwrap_err();
    assert!(matches!(err, PoolError::ExecTimeout(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        eventually(5, || !alive(pid)).await,
        "the hung worker was killed"
    );
    assert_ne!(pid_of_next(&pool).await, pid);
    assert_eq!(pool.stats().restarts(RecycleReason::ExecTtl), 1);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_kills_a_worker_past_exec_ttl_even_while_streaming() {
    let mut s = settings(1);
    s.supervisor.watch_tick = Duration::from_millis(50);
    let pool = ops_pool(s, RelayAddr::Pipes, &[]).await;
    let mut limits = pool.settings();
    limits.supervisor.exec_ttl = Some(Duration::from_millis(400));
    pool.update_settings(limits);
    let cancel = CancellationToken::new();
    tokio::spawn(supervisor::run(pool.clone(), cancel.clone()));
    // Each chunk arrives within exec_ttl, but the whole job exceeds it.
    let result = call(&pool, r#"{"op":"stream","chunks":100,"delay_ms":100}"#, b"").await;
    assert!(
        matches!(result, Err(PoolError::ExecTimeout(_))),
        "{result:?}"
    );
    cancel.cancel();
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_grow_and_shrink_under_load_fail_nothing() {
    let pool = ops_pool(settings(2), RelayAddr::Pipes, &[]).await;
    let load = Load::start(&pool, 6, r#"{"op":"sleep","ms":2}"#);
    pool.set_target(6);
    assert!(
        eventually(20, || pool.snapshot().workers.len() == 6).await,
        "grew to 6"
    );
    pool.set_target(1);
    assert!(
        eventually(20, || pool.snapshot().workers.len() == 1).await,
        "shrank to 1"
    );
    pool.set_target(3);
    assert!(
        eventually(20, || pool.snapshot().workers.len() == 3).await,
        "grew to 3"
    );
    let (ok, errors) = load.finish().await;
    assert!(errors.is_empty(), "{errors:?}");
    assert!(ok > 50, "{ok}");
    assert!(pool.stats().restarts(RecycleReason::Shrink) >= 5);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_reset_under_load_replaces_every_worker_and_fails_nothing() {
    let pool = ops_pool(settings(4), RelayAddr::Pipes, &[]).await;
    let before = pids(&pool);
    let load = Load::start(&pool, 8, r#"{"op":"echo"}"#);
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..3 {
        pool.reset().await.unwrap();
        // Capacity never dropped: every reset keeps the target's worth of workers.
        assert!(pool.snapshot().workers.len() >= 4);
    }
    let (ok, errors) = load.finish().await;
    assert!(errors.is_empty(), "{errors:?}");
    assert!(ok > 100, "{ok}");
    let after = pids(&pool);
    assert!(
        before.is_disjoint(&after),
        "every worker replaced: {before:?} -> {after:?}"
    );
    assert_eq!(pool.stats().restarts(RecycleReason::Reset), 12);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_fails_fast() {
    let mut s = settings(1);
    s.max_queue_size = 2;
    let pool = ops_pool(s, RelayAddr::Pipes, &[]).await;
    let busy: Vec<_> = (0..3)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { call(&pool, r#"{"op":"sleep","ms":500}"#, b"").await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = tokio::time::Instant::now();
    let err = call(&pool, r#"{"op":"echo"}"#, b"").await.unwrap_err();
    assert!(matches!(err, PoolError::QueueFull(2)), "{err}");
    assert!(started.elapsed() < Duration::from_millis(50));
    for b in busy {
        b.await.unwrap().unwrap();
    }
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_mode_uses_a_fresh_worker_per_request() {
    let mut s = settings(2);
    s.debug = true;
    let pool = Pool::start("http", spawner(ops_spec(&[]), RelayAddr::Pipes).await, s);
    let mut seen = HashSet::new();
    for _ in 0..4 {
        assert!(seen.insert(pid_of_next(&pool).await), "a pid repeated");
    }
    assert_eq!(pool.stats().restarts(RecycleReason::Debug), 4);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_busy_jobs_finish_and_stops_every_worker() {
    let pool = ops_pool(settings(2), RelayAddr::Pipes, &[]).await;
    let before = pids(&pool);
    let job = {
        let pool = pool.clone();
        tokio::spawn(async move { call(&pool, r#"{"op":"sleep","ms":400}"#, b"done").await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    pool.shutdown().await;
    assert_eq!(job.await.unwrap().unwrap().body, &b"done"[..]);
    assert!(matches!(
        call(&pool, r#"{"op":"echo"}"#, b"").await,
        Err(PoolError::Closed)
    ));
    for pid in before {
        assert!(!alive(pid), "{pid} still alive");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_samples_worker_cpu_time() {
    let mut s = settings(2);
    s.supervisor.watch_tick = Duration::from_millis(50);
    let pool = ops_pool(s, RelayAddr::Pipes, &[]).await;
    let cancel = CancellationToken::new();
    tokio::spawn(supervisor::run(pool.clone(), cancel.clone()));
    // PHP spends tens of milliseconds of CPU booting, and building 64 MiB of strings
    // takes more: both show up in the pool's CPU counter.
    for _ in 0..4 {
        call(&pool, r#"{"op":"leak","kb":16384}"#, b"")
            .await
            .unwrap();
    }
    assert!(
        eventually(5, || pool.stats().worker_cpu_ticks.get() >= 2).await,
        "{:?}",
        pool.stats()
    );
    let before = pool.stats().worker_cpu_ticks.get();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Idle workers add (almost) nothing: samples are deltas, not totals.
    assert!(pool.stats().worker_cpu_ticks.get() <= before + 2);
    cancel.cancel();
    pool.shutdown().await;
}
