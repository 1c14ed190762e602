//! Shared helpers for the sidecar's integration tests: real PHP workers from
//! `testdata/workers/`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod apps;
pub mod binary;
pub mod brokers;
pub mod configmap;
pub mod driver_suite;
pub mod jobs;
pub mod leaks;
pub mod load;
pub mod poll;
pub mod prom;
pub mod serve;
pub mod services;

pub use poll::eventually;

use std::path::PathBuf;
use std::time::Duration;

use pacer::pool::{Pool, PoolError, PoolSettings, Response};
use pacer::relay::{FrameCodec, RelayAddr};
use pacer::worker::{Payload, ProcessSpec, Spawner};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn worker_script(name: &str) -> String {
    repo_root()
        .join("testdata/workers")
        .join(name)
        .display()
        .to_string()
}

/// Fails loudly when PHP is missing: these tests are meant to run for real.
pub fn php() -> String {
    let php = std::env::var("PACER_TEST_PHP").unwrap_or_else(|_| "php".to_string());
    let ok = std::process::Command::new(&php)
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "`{php} -v` failed: install php8.2-cli (make deps) to run the real-PHP tests"
    );
    php
}

pub fn ops_spec(env: &[(&str, &str)]) -> ProcessSpec {
    ProcessSpec {
        command: vec![php(), worker_script("ops.php")],
        env: env.iter().map(|(k, v)| (k.into(), v.into())).collect(),
        cwd: None,
        uid: None,
        gid: None,
    }
}

pub fn settings(n: usize) -> PoolSettings {
    PoolSettings {
        num_workers: n,
        allocate_timeout: Duration::from_secs(10),
        destroy_timeout: Duration::from_secs(5),
        reset_timeout: Duration::from_secs(20),
        stream_timeout: Duration::from_secs(5),
        ..PoolSettings::default()
    }
}

pub async fn spawner(spec: ProcessSpec, relay: RelayAddr) -> Spawner {
    Spawner::new(
        spec,
        relay,
        "http",
        None,
        FrameCodec::new(64 << 20),
        Duration::from_secs(10),
    )
    .await
    .unwrap()
}

/// A pool of `ops.php` workers, started and fully spawned.
pub async fn ops_pool(settings: PoolSettings, relay: RelayAddr, env: &[(&str, &str)]) -> Pool {
    let n = settings.num_workers;
    let pool = Pool::start("http", spawner(ops_spec(env), relay).await, settings);
    assert!(
        pool.wait_ready(n, Duration::from_secs(20)).await,
        "{n} workers did not start"
    );
    pool
}

/// Sends one op; returns the reply body (single frame) as text.
pub async fn call(pool: &Pool, ctx: &str, body: &[u8]) -> Result<Payload, PoolError> {
    match pool
        .exec(Payload::new(0, ctx.as_bytes().to_vec(), body.to_vec()))
        .await?
    {
        Response::Single(p) => Ok(p),
        Response::Stream(mut s) => {
            let mut all = Payload::default();
            while let Some(chunk) = s.next().await? {
                let mut b = all.body.to_vec();
                b.extend_from_slice(&chunk.body);
                all.body = b.into();
            }
            Ok(all)
        }
    }
}

pub async fn pid_of_next(pool: &Pool) -> u32 {
    let p = call(pool, r#"{"op":"pid"}"#, b"").await.unwrap();
    std::str::from_utf8(&p.body).unwrap().parse().unwrap()
}

pub fn alive(pid: u32) -> bool {
    // A zombie is dead for our purposes.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}
