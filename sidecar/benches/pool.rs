//! The pool's hot path and the shard hand-off, with in-memory echo workers (feature
//! `fake-workers`), so only pacer's side is measured:
//! * `pool/exec`: one job through `Pool::exec` on one runtime — lease an idle worker,
//!   encode the frame, read the reply, return the worker;
//! * `pool/exec (8 queued for 1 worker)`: the same with 8 requests at once, so that each
//!   release hands the worker to a waiter (the queue and `offer`'s choice of waiter);
//! * `pool/exec (own shard)` / `pool/exec (borrowed from another shard)`: the same from
//!   a shard thread, with the worker on that shard or on the other one (the relay is
//!   then driven across threads: what a shard pays when it owns no idle worker);
//! * `shards/hand-off`: running a future on a shard from another thread and awaiting
//!   its result, beside a plain `tokio::spawn` on the caller's own runtime.
//!
//! `cargo bench -p pacer --features fake-workers --bench pool`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use pacer::pool::{Pool, PoolSettings, Response};
use pacer::relay::flags;
use pacer::shards::Shards;
use pacer::worker::fake::echo_worker;
use pacer::worker::{Exit, Payload, SpawnError, SpawnWorker, Worker, WorkerIdent};

/// Fake pids start above the kernel's pid_max.
static NEXT_PID: AtomicU32 = AtomicU32::new(6_000_000);

#[derive(Debug)]
struct EchoSpawner;

impl SpawnWorker for EchoSpawner {
    fn command_line(&self) -> String {
        "fake-php echo".into()
    }

    fn spawn_worker(
        &self,
        ident: WorkerIdent,
        _jitter_percent: u64,
        _timeout: Duration,
        on_exit: Box<dyn FnOnce(Exit) + Send>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Worker, SpawnError>> + Send + '_>>
    {
        let pid = NEXT_PID.fetch_add(1, Ordering::Relaxed);
        Box::pin(async move { Ok(echo_worker(ident, pid, on_exit)) })
    }
}

const CONTEXT: &[u8] = br#"{"method":"GET","uri":"http://localhost/hello","headers":{}}"#;

fn settings() -> PoolSettings {
    PoolSettings {
        num_workers: 1,
        allocate_timeout: Duration::from_secs(10),
        ..PoolSettings::default()
    }
}

async fn one(pool: &Pool) -> usize {
    match pool
        .exec(Payload::new(
            flags::CODEC_JSON,
            Bytes::from_static(CONTEXT),
            Bytes::from_static(b"hello"),
        ))
        .await
        .unwrap()
    {
        Response::Single(p) => p.body.len(),
        Response::Stream(_) => unreachable!("the echo worker never streams"),
    }
}

/// `iters` jobs run on shard `on`, timed there.
fn timed_on_shard(shards: &Shards, on: usize, pool: &Pool, iters: u64) -> Duration {
    let pool = pool.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(shards.spawn(on, async move {
        let start = Instant::now();
        for _ in 0..iters {
            std::hint::black_box(one(&pool).await);
        }
        start.elapsed()
    }))
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("pool");
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let pool = rt.block_on(async {
            let pool = Pool::start("http", EchoSpawner, settings());
            assert!(pool.wait_ready(1, Duration::from_secs(10)).await);
            pool
        });
        group.bench_function("exec", |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        std::hint::black_box(one(&pool).await);
                    }
                    start.elapsed()
                })
            })
        });
        group.bench_function("exec (8 queued for 1 worker)", |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    let each = iters.div_ceil(8);
                    let tasks: Vec<_> = (0..8)
                        .map(|_| {
                            let pool = pool.clone();
                            tokio::spawn(async move {
                                for _ in 0..each {
                                    std::hint::black_box(one(&pool).await);
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                    start.elapsed()
                })
            })
        });
        rt.block_on(pool.shutdown());
    }
    {
        // Two unpinned shards; the one worker starts on shard 0.
        let shards = Shards::start(2, false).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let pool = rt.block_on(async {
            let pool = Pool::start_sharded("http", EchoSpawner, settings(), Some(shards.clone()));
            assert!(pool.wait_ready(1, Duration::from_secs(10)).await);
            pool
        });
        group.bench_function("exec (own shard)", |b| {
            b.iter_custom(|iters| timed_on_shard(&shards, 0, &pool, iters))
        });
        group.bench_function("exec (borrowed from another shard)", |b| {
            b.iter_custom(|iters| timed_on_shard(&shards, 1, &pool, iters))
        });
        rt.block_on(pool.shutdown());
    }
    group.finish();

    let mut group = c.benchmark_group("shards");
    let shards = Shards::start(1, false).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    group.bench_function("hand-off to a shard and back", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    std::hint::black_box(shards.spawn(0, async { 1u32 }).await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("tokio::spawn on the same runtime", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    std::hint::black_box(tokio::spawn(async { 1u32 }).await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
