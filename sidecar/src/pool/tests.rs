//! The pool's logic with fake workers in paused time: no PHP, no processes. A fake
//! worker is a task on the far end of an in-memory relay that answers jobs by their
//! context (`echo`, `sleep:MS`, `error`, `stop`, `die`), and a fake process task that
//! obeys kill/stop commands and reports the exit, as the real process task does.
//! Time is tokio's paused clock, so timeouts, backoff and `exec_ttl` are exact.
//! The same behaviour with real PHP is in `tests/pool_php.rs` and `tests/worker_php.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::relay::{FrameCodec, Options, Relay, flags};
use crate::worker::process::Cmd;
use crate::worker::{Exit, ProcessHandle, WorkerIdent};

/// Fake pids start above the kernel's pid_max.
static NEXT_PID: AtomicU32 = AtomicU32::new(5_000_000);

/// Starts fake workers; the first `fail_first` spawns fail. A spawn boots for `boot`,
/// or for `boots[n]` if it is the `n`th spawn asked for.
#[derive(Debug, Default)]
struct FakeSpawner {
    fail_first: usize,
    attempts: Arc<AtomicUsize>,
    boot: Duration,
    boots: Vec<Duration>,
    asked: AtomicUsize,
}

impl SpawnWorker for FakeSpawner {
    fn command_line(&self) -> String {
        "fake-php worker.php".into()
    }

    fn spawn_worker(
        &self,
        ident: WorkerIdent,
        jitter_percent: u64,
        _timeout: Duration,
        on_exit: Box<dyn FnOnce(Exit) + Send>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Worker, SpawnError>> + Send + '_>>
    {
        let asked = self.asked.fetch_add(1, Ordering::SeqCst);
        let boot = self.boots.get(asked).copied().unwrap_or(self.boot);
        Box::pin(async move {
            tokio::time::sleep(boot).await;
            let attempt = self.attempts.fetch_add(1, Ordering::SeqCst);
            let pid = NEXT_PID.fetch_add(1, Ordering::SeqCst);
            if attempt < self.fail_first {
                on_exit(Exit { pid, status: None });
                return Err(SpawnError::Start {
                    command: self.command_line(),
                    source: std::io::Error::other("fake boot failure"),
                });
            }
            Ok(fake_worker(ident, pid, jitter_percent, on_exit))
        })
    }
}

/// A worker whose "PHP" is a task on an in-memory relay.
fn fake_worker(
    ident: WorkerIdent,
    pid: u32,
    jitter_percent: u64,
    on_exit: Box<dyn FnOnce(Exit) + Send>,
) -> Worker {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (our_read, our_write) = tokio::io::split(ours);
    let (php_read, php_write) = tokio::io::split(theirs);
    let (handle, commands) = ProcessHandle::fake(pid);
    let alive = CancellationToken::new();
    let php = tokio::spawn(fake_php(php_read, php_write, alive.clone()));
    tokio::spawn(fake_process(pid, commands, alive, php, on_exit));
    let info = Arc::new(WorkerInfo::new(
        ident,
        pid,
        jitter_percent,
        "fake-php worker.php".into(),
        handle,
    ));
    Worker::new(Relay::new(our_read, our_write, FrameCodec::default()), info)
}

/// Owns the fake process: kills it on command, gives a stopped one its grace, reports
/// the exit once.
async fn fake_process(
    pid: u32,
    mut commands: tokio::sync::mpsc::Receiver<Cmd>,
    alive: CancellationToken,
    mut php: tokio::task::JoinHandle<()>,
    on_exit: Box<dyn FnOnce(Exit) + Send>,
) {
    tokio::select! {
        _ = &mut php => {}
        cmd = commands.recv() => match cmd {
            Some(Cmd::Kill) | None => {
                alive.cancel();
                let _ = (&mut php).await;
            }
            Some(Cmd::StopWithin(grace)) => {
                if tokio::time::timeout(grace, &mut php).await.is_err() {
                    alive.cancel();
                    let _ = (&mut php).await;
                }
            }
        },
    }
    on_exit(Exit { pid, status: None });
}

/// The fake PHP side: answers each job by its context.
async fn fake_php(
    read: tokio::io::ReadHalf<tokio::io::DuplexStream>,
    write: tokio::io::WriteHalf<tokio::io::DuplexStream>,
    alive: CancellationToken,
) {
    let mut frames = FramedRead::new(read, FrameCodec::default());
    let mut out = Relay::new(tokio::io::empty(), write, FrameCodec::default());
    loop {
        let frame = tokio::select! {
            _ = alive.cancelled() => return,
            f = frames.next() => match f {
                Some(Ok(f)) => f,
                _ => return,
            },
        };
        if frame.has_flag(flags::CONTROL) {
            // {"stop":true}: exit.
            return;
        }
        let ctx_len = frame.options.get(0).unwrap_or(0) as usize;
        let context = frame.payload.slice(..ctx_len);
        let body = frame.payload.slice(ctx_len..);
        let op = std::str::from_utf8(&context).unwrap_or("");
        let reply = |body: &[u8]| {
            (
                Options::one(context.len() as u32),
                [context.to_vec(), body.to_vec()].concat(),
            )
        };
        match op.split_once(':').unwrap_or((op, "")) {
            ("sleep", ms) => {
                let ms: u64 = ms.parse().unwrap_or(0);
                tokio::select! {
                    _ = alive.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
                }
            }
            ("error", _) => {
                let _ = out
                    .send_parts(flags::ERROR, 0, &Options::NONE, &[b"boom"])
                    .await;
                continue;
            }
            ("stop", _) => {
                let stop = br#"{"stop":true}"#;
                let _ = out
                    .send_parts(0, 0, &Options::one(stop.len() as u32), &[stop])
                    .await;
                continue;
            }
            ("die", _) => return,
            _ => {}
        }
        let (options, payload) = reply(&body);
        if out.send_parts(0, 0, &options, &[&payload]).await.is_err() {
            return;
        }
    }
}

fn settings(n: usize) -> PoolSettings {
    PoolSettings {
        num_workers: n,
        allocate_timeout: Duration::from_secs(10),
        destroy_timeout: Duration::from_secs(5),
        reset_timeout: Duration::from_secs(20),
        stream_timeout: Duration::from_secs(5),
        ..PoolSettings::default()
    }
}

async fn started(spawner: FakeSpawner, settings: PoolSettings) -> Pool {
    let n = settings.num_workers;
    let pool = Pool::start("http", spawner, settings);
    assert!(pool.wait_ready(n, Duration::from_secs(60)).await);
    pool
}

async fn run(pool: &Pool, op: &str) -> Result<Payload, PoolError> {
    match pool
        .exec(Payload::new(
            0,
            Bytes::copy_from_slice(op.as_bytes()),
            "body",
        ))
        .await?
    {
        Response::Single(p) => Ok(p),
        Response::Stream(_) => panic!("fake workers do not stream"),
    }
}

fn pids(pool: &Pool) -> Vec<u32> {
    pool.snapshot().workers.iter().map(|w| w.pid).collect()
}

#[tokio::test(start_paused = true)]
async fn a_job_gets_its_reply_and_the_warmest_worker_serves_the_next() {
    let pool = started(FakeSpawner::default(), settings(3)).await;
    let reply = run(&pool, "echo").await.unwrap();
    assert_eq!(reply.context, "echo");
    assert_eq!(reply.body, "body");
    // LIFO: one job at a time always lands on the same worker.
    for _ in 0..5 {
        run(&pool, "echo").await.unwrap();
    }
    let jobs: Vec<u64> = pool.snapshot().workers.iter().map(|w| w.jobs()).collect();
    assert!(jobs.contains(&6), "{jobs:?}");
    assert_eq!(jobs.iter().sum::<u64>(), 6);
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn waiters_time_out_at_allocate_timeout_and_a_full_queue_refuses_at_once() {
    let mut s = settings(1);
    s.allocate_timeout = Duration::from_millis(500);
    s.max_queue_size = 2;
    let pool = started(FakeSpawner::default(), s).await;
    let busy = tokio::spawn({
        let pool = pool.clone();
        async move { run(&pool, "sleep:2000").await }
    });
    tokio::task::yield_now().await;
    let waiting: Vec<_> = (0..2)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let t = Instant::now();
                (run(&pool, "echo").await, t.elapsed())
            })
        })
        .collect();
    while pool.queue_depth() < 2 {
        tokio::task::yield_now().await;
    }
    // The queue is full: refused without waiting.
    let t = Instant::now();
    assert!(matches!(
        run(&pool, "echo").await,
        Err(PoolError::QueueFull(2))
    ));
    assert_eq!(t.elapsed(), Duration::ZERO);
    for w in waiting {
        let (result, waited) = w.await.unwrap();
        assert!(
            matches!(result, Err(PoolError::NoFreeWorker(_))),
            "{result:?}"
        );
        assert_eq!(waited, Duration::from_millis(500));
    }
    assert!(busy.await.unwrap().is_ok());
    assert_eq!(pool.queue_depth(), 0);
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_released_worker_goes_to_the_first_waiter() {
    let pool = started(FakeSpawner::default(), settings(1)).await;
    let first = tokio::spawn({
        let pool = pool.clone();
        async move { run(&pool, "sleep:100").await }
    });
    tokio::task::yield_now().await;
    let second = tokio::spawn({
        let pool = pool.clone();
        async move {
            let t = Instant::now();
            run(&pool, "echo").await.unwrap();
            t.elapsed()
        }
    });
    first.await.unwrap().unwrap();
    // It waited exactly as long as the first job ran.
    assert_eq!(second.await.unwrap(), Duration::from_millis(100));
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn max_jobs_replaces_a_worker_without_failing_a_request() {
    let mut s = settings(2);
    s.max_jobs = 3;
    let pool = started(FakeSpawner::default(), s).await;
    let before = pids(&pool);
    for _ in 0..40 {
        run(&pool, "echo").await.unwrap();
    }
    assert!(pool.wait_settled(Duration::from_secs(10)).await);
    let after = pids(&pool);
    assert_eq!(after.len(), 2);
    assert!(
        after.iter().all(|p| !before.contains(p)),
        "{before:?} {after:?}"
    );
    // No worker ever ran more than max_jobs (plus the per-worker jitter of up to 14 %).
    assert!(pool.snapshot().workers.iter().all(|w| w.jobs() <= 3));
    assert!(pool.stats().restarts(RecycleReason::MaxJobs) >= 10);
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_worker_dying_mid_job_fails_that_job_only_and_is_replaced() {
    let pool = started(FakeSpawner::default(), settings(2)).await;
    let err = run(&pool, "die").await.unwrap_err();
    assert!(matches!(err, PoolError::WorkerFailed(_)), "{err}");
    assert!(pool.wait_settled(Duration::from_secs(10)).await);
    assert_eq!(pool.snapshot().workers.len(), 2);
    assert_eq!(pool.stats().restarts(RecycleReason::Died), 1);
    run(&pool, "echo").await.unwrap();
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_error_frame_fails_the_job_and_keeps_the_worker() {
    let pool = started(FakeSpawner::default(), settings(1)).await;
    let before = pids(&pool);
    assert!(matches!(run(&pool, "error").await, Err(PoolError::Soft(m)) if m == "boom"));
    run(&pool, "echo").await.unwrap();
    assert_eq!(pids(&pool), before);
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn exec_ttl_kills_an_overrunning_job_at_the_deadline() {
    let mut s = settings(1);
    s.supervisor.exec_ttl = Some(Duration::from_millis(300));
    let pool = started(FakeSpawner::default(), s).await;
    let before = pids(&pool);
    let t = Instant::now();
    let err = run(&pool, "sleep:5000").await.unwrap_err();
    assert!(matches!(err, PoolError::ExecTimeout(_)), "{err}");
    assert_eq!(t.elapsed(), Duration::from_millis(300));
    assert!(pool.wait_ready(1, Duration::from_secs(10)).await);
    assert_ne!(pids(&pool), before);
    assert_eq!(pool.stats().restarts(RecycleReason::ExecTtl), 1);
    run(&pool, "echo").await.unwrap();
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_worker_asking_to_stop_is_replaced_and_the_job_runs_elsewhere() {
    let pool = started(FakeSpawner::default(), settings(2)).await;
    // The first worker asked gets "stop": it asks to be replaced; the job must still
    // get an answer. Fake workers answer "stop" every time, so every try stops one
    // worker: after MAX_STOP_RETRIES the requester gets StopLoop, never a hang.
    let err = run(&pool, "stop").await.unwrap_err();
    assert!(matches!(err, PoolError::StopLoop), "{err}");
    assert!(pool.stats().restarts(RecycleReason::StopRequest) >= MAX_STOP_RETRIES as u64);
    assert!(pool.wait_settled(Duration::from_secs(30)).await);
    run(&pool, "echo").await.unwrap();
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn failed_spawns_back_off_exponentially_then_recover() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let spawner = FakeSpawner {
        fail_first: 4,
        attempts: attempts.clone(),
        ..FakeSpawner::default()
    };
    let t = Instant::now();
    let pool = Pool::start("http", spawner, settings(1));
    assert!(pool.wait_ready(1, Duration::from_secs(60)).await);
    // 100 + 200 + 400 + 800 ms of backoff between the five attempts.
    assert_eq!(t.elapsed(), Duration::from_millis(1500));
    assert_eq!(attempts.load(Ordering::SeqCst), 5);
    let snap = pool.snapshot();
    assert_eq!(snap.backoff.failures, 0, "a success resets the backoff");
    assert_eq!(pool.stats().spawn_failures.get(), 4);
    pool.shutdown().await;
}

/// Each worker that completes its handshake is timed from its start; a failed start is
/// not a boot (it is a spawn failure).
#[tokio::test(start_paused = true)]
async fn boots_are_timed_and_failed_starts_are_not() {
    // Two spawns at once: the 200 ms one completes first and fails, the 300 ms one boots;
    // after the backoff the failed one's replacement boots in 1 s.
    let spawner = FakeSpawner {
        fail_first: 1,
        boots: vec![Duration::from_millis(200), Duration::from_millis(300)],
        boot: Duration::from_secs(1),
        ..FakeSpawner::default()
    };
    let pool = started(spawner, settings(2)).await;
    assert_eq!(pool.stats().spawn_failures.get(), 1);
    let boots = pool.stats().worker_boot.snapshot();
    assert_eq!(boots.count, 2);
    assert!((boots.sum_seconds - 1.3).abs() < 1e-9, "{boots:?}");
    // The 300 ms boot is in the 0.5 s bucket, the 1 s one in the 1 s bucket.
    assert_eq!(boots.buckets[4], (0.25, 0));
    assert_eq!(boots.buckets[5], (0.5, 1));
    assert_eq!(boots.buckets[6], (1.0, 2));

    let metrics = crate::metrics::Metrics::new(
        vec![pool.clone()],
        Arc::new(crate::stats::HttpStats::default()),
        Arc::new(crate::metrics::AppMetrics::new()),
    );
    let text = metrics.render();
    assert!(
        text.contains("\n# TYPE pacer_worker_boot_seconds histogram\n"),
        "{text}"
    );
    assert!(
        text.contains("\npacer_worker_boot_seconds_sum{pool=\"http\"} 1.3\n"),
        "{text}"
    );
    assert!(
        text.contains("\npacer_worker_boot_seconds_count{pool=\"http\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("\npacer_worker_boot_seconds_bucket{pool=\"http\",le=\"60\"} 2\n"),
        "{text}"
    );
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn resizing_grows_and_shrinks_without_failing_requests_in_flight() {
    let pool = started(FakeSpawner::default(), settings(2)).await;
    let in_flight: Vec<_> = (0..2)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { run(&pool, "sleep:1000").await })
        })
        .collect();
    tokio::task::yield_now().await;
    pool.set_target(5);
    assert!(pool.wait_settled(Duration::from_secs(10)).await);
    assert_eq!(pool.snapshot().workers.len(), 5);
    pool.set_target(1);
    // Idle workers go at once; the busy ones when their job ends.
    for r in in_flight {
        r.await.unwrap().unwrap();
    }
    assert!(pool.wait_settled(Duration::from_secs(10)).await);
    assert_eq!(pool.snapshot().workers.len(), 1);
    assert_eq!(pool.stats().restarts(RecycleReason::Shrink), 4);
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_rolling_reset_replaces_every_worker_and_capacity_never_drops() {
    let spawner = FakeSpawner {
        boot: Duration::from_millis(200),
        ..FakeSpawner::default()
    };
    let pool = started(spawner, settings(4)).await;
    let before = pids(&pool);
    let watcher = tokio::spawn({
        let pool = pool.clone();
        async move {
            let mut least = usize::MAX;
            for _ in 0..200 {
                // Doomed workers keep serving until their replacement is ready.
                least = least.min(pool.snapshot().workers.len());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            least
        }
    });
    pool.reset().await.unwrap();
    let after = pids(&pool);
    assert_eq!(after.len(), 4);
    assert!(
        after.iter().all(|p| !before.contains(p)),
        "{before:?} {after:?}"
    );
    assert!(
        watcher.await.unwrap() >= 4,
        "capacity dipped during the reset"
    );
    assert_eq!(pool.stats().restarts(RecycleReason::Reset), 4);
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_rolling_reset_also_replaces_a_worker_that_was_still_starting() {
    // The second worker boots slowly: it is still starting (a process, not yet in the
    // pool's books) when the reset begins, so it runs the code from before the reset
    // too and must be replaced as well (RoadRunner: `rr reset` returns once every
    // worker has been replaced). Octane's reload hit exactly this on a loaded machine.
    let spawner = FakeSpawner {
        boot: Duration::from_millis(200),
        boots: vec![Duration::ZERO, Duration::from_secs(5)],
        ..FakeSpawner::default()
    };
    let pool = Pool::start("http", spawner, settings(2));
    assert!(pool.wait_ready(1, Duration::from_secs(60)).await);
    let snap = pool.snapshot();
    assert_eq!((snap.workers.len(), snap.spawning), (1, 1));
    let t = Instant::now();
    pool.reset().await.unwrap();
    // It waited for the slow worker to come up, then replaced it.
    assert!(t.elapsed() >= Duration::from_secs(5), "{:?}", t.elapsed());
    let after = pool.snapshot().workers;
    assert_eq!(after.len(), 2);
    assert!(
        after.iter().all(|w| w.ident.generation == 1),
        "a worker started before the reset survived it: {:?}",
        after.iter().map(|w| (w.pid, w.ident)).collect::<Vec<_>>()
    );
    assert_eq!(pool.stats().restarts(RecycleReason::Reset), 2);
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_the_job_in_flight_and_refuses_new_ones() {
    let pool = started(FakeSpawner::default(), settings(1)).await;
    let job = tokio::spawn({
        let pool = pool.clone();
        async move { run(&pool, "sleep:500").await }
    });
    tokio::task::yield_now().await;
    let t = Instant::now();
    pool.shutdown().await;
    assert!(t.elapsed() >= Duration::from_millis(500));
    assert!(job.await.unwrap().is_ok());
    assert!(matches!(run(&pool, "echo").await, Err(PoolError::Closed)));
    assert!(pool.snapshot().workers.is_empty());
}
