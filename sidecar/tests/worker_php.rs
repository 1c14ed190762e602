//! The worker and pool against real PHP processes (`testdata/workers/ops.php`, written
//! with our PHP library): relays, payload sizes, streaming, errors, stop requests,
//! broken workers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use pacer::pool::{PoolError, Response};
use pacer::relay::RelayAddr;
use pacer::worker::{Payload, RecycleReason};

async fn echo_round_trip(relay: RelayAddr) {
    let pool = ops_pool(settings(2), relay, &[]).await;
    for i in 0..50 {
        let body = format!("hello {i}");
        let reply = call(&pool, r#"{"op":"echo"}"#, body.as_bytes())
            .await
            .unwrap();
        assert_eq!(reply.body, body.as_bytes());
        assert_eq!(&reply.context[..], br#"{"op":"echo"}"#);
    }
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_over_pipes() {
    echo_round_trip(RelayAddr::Pipes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_over_tcp() {
    echo_round_trip(RelayAddr::Tcp("127.0.0.1:0".into())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_over_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    echo_round_trip(RelayAddr::Unix(dir.path().join("relay.sock"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_mib_payload_round_trips_on_every_relay() {
    let dir = tempfile::tempdir().unwrap();
    for relay in [
        RelayAddr::Pipes,
        RelayAddr::Tcp("127.0.0.1:0".into()),
        RelayAddr::Unix(dir.path().join("r.sock")),
    ] {
        let pool = ops_pool(settings(1), relay.clone(), &[]).await;
        let body: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
        let reply = call(&pool, r#"{"op":"echo"}"#, &body).await.unwrap();
        assert_eq!(reply.body.len(), body.len(), "{relay}");
        assert!(reply.body == body, "{relay}: body differs");
        pool.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_reply_with_ping_pong_arrives_in_order() {
    let pool = ops_pool(settings(1), RelayAddr::Pipes, &[]).await;
    // 17 chunks: PHP sends PING on chunks 6, 11 and 16 and waits for our PONG each time.
    let ctx = r#"{"op":"stream","chunks":17}"#;
    let Response::Stream(mut stream) = pool.exec(Payload::new(0, ctx, "")).await.unwrap() else {
        panic!("expected a streamed reply");
    };
    let mut bodies = Vec::new();
    while let Some(chunk) = stream.next().await.unwrap() {
        if !chunk.body.is_empty() {
            bodies.push(String::from_utf8(chunk.body.to_vec()).unwrap());
        }
    }
    let want: Vec<String> = (1..=17).map(|i| format!("chunk-{i}")).collect();
    assert_eq!(bodies, want);
    // The worker is reusable afterwards.
    assert_eq!(
        call(&pool, r#"{"op":"echo"}"#, b"after")
            .await
            .unwrap()
            .body,
        &b"after"[..]
    );
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_stream_sends_stop_and_keeps_the_worker() {
    for relay in [RelayAddr::Pipes, RelayAddr::Tcp("127.0.0.1:0".into())] {
        let pool = ops_pool(settings(1), relay.clone(), &[]).await;
        let pid = pid_of_next(&pool).await;
        let ctx = r#"{"op":"stream","chunks":1000,"delay_ms":2}"#;
        let Response::Stream(mut stream) = pool.exec(Payload::new(0, ctx, "")).await.unwrap()
        else {
            panic!("expected a streamed reply");
        };
        for _ in 0..3 {
            stream.next().await.unwrap().unwrap();
        }
        let started = tokio::time::Instant::now();
        drop(stream); // the client went away
        // The same worker answers the next job once PHP has honoured the STOP, long
        // before the 1000 chunks (2 s) would have been produced.
        assert_eq!(pid_of_next(&pool).await, pid, "{relay}: worker kept");
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{relay}: STOP honoured quickly"
        );
        assert_eq!(pool.stats().restarts(RecycleReason::Protocol), 0);
        pool.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_frame_fails_the_job_and_keeps_the_worker() {
    let pool = ops_pool(settings(1), RelayAddr::Pipes, &[]).await;
    let pid = pid_of_next(&pool).await;
    let err = call(&pool, r#"{"op":"error"}"#, b"boom from php")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PoolError::Soft(m) if m == "boom from php"),
        "{err}"
    );
    assert_eq!(pid_of_next(&pool).await, pid);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_initiated_stop_reruns_the_same_job_on_another_worker() {
    let pool = ops_pool(settings(1), RelayAddr::Pipes, &[]).await;
    let pid = pid_of_next(&pool).await;
    let reply = call(
        &pool,
        &format!(r#"{{"op":"stop_if_pid","pid":{pid}}}"#),
        b"",
    )
    .await
    .unwrap();
    let other: u32 = std::str::from_utf8(&reply.body).unwrap().parse().unwrap();
    assert_ne!(other, pid, "the job was re-run on a new worker");
    assert_eq!(pool.stats().restarts(RecycleReason::StopRequest), 1);
    assert!(
        eventually(5, || !alive(pid)).await,
        "the stopped worker exited"
    );
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_exiting_mid_job_fails_that_job_and_is_replaced() {
    let pool = ops_pool(settings(1), RelayAddr::Pipes, &[]).await;
    let pid = pid_of_next(&pool).await;
    let err = call(&pool, r#"{"op":"exit"}"#, b"").await.unwrap_err();
    assert!(matches!(err, PoolError::WorkerFailed(_)), "{err}");
    let next = pid_of_next(&pool).await;
    assert_ne!(next, pid);
    assert_eq!(pool.stats().restarts(RecycleReason::Died), 1);
    pool.shutdown().await;
}

/// Text on STDOUT before, between and after frames (a stray echo, var_dump or notice)
/// is skipped up to the next valid frame: the worker keeps serving, nothing is
/// recycled, and every job gets its own reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_text_around_frames_is_skipped_and_the_worker_lives_on() {
    let pool = pacer::pool::Pool::start(
        "http",
        spawner(
            // Before the first frame (the PID handshake).
            ops_spec(&[("OPS_BOOT_ECHO", "Notice: something echoed at boot\n")]),
            RelayAddr::Pipes,
        )
        .await,
        settings(1),
    );
    let pid = pid_of_next(&pool).await;
    // Between frames: printed before the reply.
    let r = call(
        &pool,
        r#"{"op":"garbage"}"#,
        b"stray output from a var_dump\n",
    )
    .await
    .unwrap();
    assert_eq!(r.body, "stray output from a var_dump\n");
    // After a frame: printed after the reply, read before the next one.
    for i in 0..3 {
        let body = format!("job {i}");
        let r = call(&pool, r#"{"op":"garbage_after"}"#, body.as_bytes())
            .await
            .unwrap();
        assert_eq!(r.body, body);
    }
    assert_eq!(
        call(&pool, r#"{"op":"echo"}"#, b"last").await.unwrap().body,
        "last"
    );
    assert_eq!(
        pid_of_next(&pool).await,
        pid,
        "the same worker served every job"
    );
    assert_eq!(pool.stats().restarts(RecycleReason::Protocol), 0);
    assert_eq!(pool.stats().restarts(RecycleReason::Died), 0);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_script_says_what_php_printed() {
    let spec = pacer::worker::ProcessSpec {
        command: vec![php(), "/nonexistent/worker.php".into()],
        ..ops_spec(&[])
    };
    let pool = pacer::pool::Pool::start("http", spawner(spec, RelayAddr::Pipes).await, settings(1));
    assert!(eventually(10, || pool.snapshot().backoff.failures >= 1).await);
    let error = pool.snapshot().backoff.last_error.unwrap();
    assert!(
        error.contains("Could not open input file: /nonexistent/worker.php"),
        "{error}"
    );
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_boot_beyond_allocate_timeout_fails_the_spawn_and_the_request() {
    let mut s = settings(1);
    s.allocate_timeout = Duration::from_millis(400);
    let pool = pacer::pool::Pool::start(
        "http",
        spawner(ops_spec(&[("OPS_BOOT_SLEEP_MS", "3000")]), RelayAddr::Pipes).await,
        s,
    );
    let err = call(&pool, r#"{"op":"echo"}"#, b"").await.unwrap_err();
    assert!(matches!(err, PoolError::NoFreeWorker(_)), "{err}");
    assert!(eventually(5, || pool.snapshot().backoff.failures >= 1).await);
    let error = pool.snapshot().backoff.last_error.unwrap();
    assert!(error.contains("allocate_timeout"), "{error}");
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_that_never_answers_the_handshake_times_out_on_sockets_too() {
    let mut s = settings(1);
    s.allocate_timeout = Duration::from_millis(500);
    let pool = pacer::pool::Pool::start(
        "http",
        spawner(
            ops_spec(&[("OPS_NO_HANDSHAKE", "1")]),
            RelayAddr::Tcp("127.0.0.1:0".into()),
        )
        .await,
        s,
    );
    assert!(eventually(5, || pool.snapshot().backoff.failures >= 1).await);
    assert!(pool.snapshot().workers.is_empty());
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_command_backs_off_instead_of_spinning() {
    let spec = pacer::worker::ProcessSpec {
        command: vec!["/nonexistent/php-binary".into()],
        ..ops_spec(&[])
    };
    let pool = pacer::pool::Pool::start("http", spawner(spec, RelayAddr::Pipes).await, settings(4));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let snap = pool.snapshot();
    let failures = pool.stats().spawn_failures.get();
    // 100 ms doubling: about 5 rounds in 2 s, each of up to 4 parallel attempts. A busy
    // loop would make thousands.
    assert!(
        (1..=40).contains(&failures),
        "{failures} spawn attempts in 2 s"
    );
    assert!(
        snap.backoff
            .last_error
            .unwrap()
            .contains("/nonexistent/php-binary")
    );
    assert!(snap.backoff.retry_at.is_some());
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_stderr_does_not_disturb_the_relay() {
    let pool = ops_pool(settings(1), RelayAddr::Pipes, &[]).await;
    for op in ["stderr", "print"] {
        let reply = call(&pool, &format!(r#"{{"op":"{op}"}}"#), b"a log line")
            .await
            .unwrap();
        assert_eq!(reply.body, &b"a log line"[..], "{op}");
    }
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_worker_takes_its_forked_children_along() {
    let pool = ops_pool(settings(1), RelayAddr::Pipes, &[]).await;
    let pid = pid_of_next(&pool).await;
    let child: u32 = std::str::from_utf8(&call(&pool, r#"{"op":"fork"}"#, b"").await.unwrap().body)
        .unwrap()
        .parse()
        .unwrap();
    assert!(alive(child));
    pool.shutdown().await;
    assert!(
        eventually(5, || !alive(pid) && !alive(child)).await,
        "worker {pid} and its child {child} are gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_while_idle_never_fails_the_next_job() {
    let pool = ops_pool(settings(2), RelayAddr::Pipes, &[]).await;
    for round in 0..5 {
        let pids: Vec<u32> = pool.snapshot().workers.iter().map(|w| w.pid).collect();
        for pid in &pids {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            )
            .unwrap();
        }
        // Once the processes are gone (their pipes closed), a job must not land on them,
        // whether or not the pool has noticed the exits yet: a write to a dead worker
        // fails before the job is delivered, and the job is retried elsewhere. (A
        // worker killed in the microseconds while the job is being written cannot be
        // told from one that crashed on the job; that job fails with 500 (http.internal_error_code).)
        assert!(eventually(5, || pids.iter().all(|p| !alive(*p))).await);
        let jobs: Vec<_> = (0..4)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    call(&pool, r#"{"op":"echo"}"#, format!("{round}-{i}").as_bytes()).await
                })
            })
            .collect();
        for (i, job) in jobs.into_iter().enumerate() {
            let reply = job
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round} job {i}: {e}"));
            assert_eq!(reply.body, format!("{round}-{i}").as_bytes());
        }
        assert!(pool.wait_ready(2, Duration::from_secs(20)).await);
    }
    pool.shutdown().await;
}
