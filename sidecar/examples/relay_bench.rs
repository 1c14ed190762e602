//! Relay round-trip benchmark: small payloads through PHP echo workers, driven either by
//! pacer's pool (`pacer`) or by a minimal blocking driver (`bare`: one thread per worker,
//! std pipes, one write per frame — the physical limit of the PHP side).
//!
//! ```text
//! relay_bench <pacer|bare> <workers> <concurrency> <messages> [current|multi|sharded]
//! ```
//! `sharded`: one runtime shard per worker (pinned to the allowed CPUs in turn), each
//! driving its share of the concurrency with the worker on its CPU — the server's
//! `pacer.runtime.shards` design.
//! Prints one line: `mode flavor workers concurrency msgs/s p50_us p99_us`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use pacer::pool::{Pool, PoolSettings, Response};
use pacer::relay::frame::encode_parts;
use pacer::relay::{FrameCodec, Options, RelayAddr, flags};
use pacer::worker::{Payload, ProcessSpec, Spawner};

const CONTEXT: &[u8] = br#"{"op":"echo"}"#;
const BODY: &[u8] = b"hello, world";

fn script() -> String {
    format!("{}/../bench/workers/echo.php", env!("CARGO_MANIFEST_DIR"))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn report(
    mode: &str,
    flavor: &str,
    workers: usize,
    conc: usize,
    elapsed: Duration,
    mut lat: Vec<Duration>,
) {
    lat.sort();
    println!(
        "{mode} {flavor} {workers} {conc} {:.0} {:.1} {:.1}",
        lat.len() as f64 / elapsed.as_secs_f64(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
}

/// One PHP process driven with blocking pipes.
fn bare_worker(warmup: usize, messages: usize, go: &std::sync::Barrier) -> Vec<Duration> {
    let mut child = Command::new("php")
        .arg(script())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut buf = BytesMut::new();
    let mut exchange = |flags: u8, options: &Options, parts: &[&[u8]]| {
        buf.clear();
        encode_parts(&mut buf, flags, 0, 0, options, parts);
        stdin.write_all(&buf).unwrap();
        let mut head = [0u8; 12];
        stdout.read_exact(&mut head).unwrap();
        let hl = (head[0] & 0x0f) as usize;
        let len = u32::from_le_bytes([head[2], head[3], head[4], head[5]]) as usize;
        let mut rest = vec![0u8; (hl - 3) * 4 + len];
        stdout.read_exact(&mut rest).unwrap();
    };
    let pid = format!("{{\"pid\":{}}}", std::process::id());
    exchange(
        flags::CONTROL | flags::CODEC_JSON,
        &Options::NONE,
        &[pid.as_bytes()],
    );
    let options = Options::one(CONTEXT.len() as u32);
    for _ in 0..warmup {
        exchange(0, &options, &[CONTEXT, BODY]);
    }
    go.wait();
    let mut lat = Vec::with_capacity(messages);
    for _ in 0..messages {
        let t = Instant::now();
        exchange(0, &options, &[CONTEXT, BODY]);
        lat.push(t.elapsed());
    }
    // Ask the worker to exit the way pacer does.
    buf.clear();
    encode_parts(
        &mut buf,
        flags::CONTROL | flags::CODEC_JSON,
        0,
        0,
        &Options::NONE,
        &[br#"{"stop":true}"#],
    );
    stdin.write_all(&buf).unwrap();
    let _ = child.wait();
    lat
}

async fn pacer_run(
    workers: usize,
    conc: usize,
    messages: usize,
    shards: Option<std::sync::Arc<pacer::shards::Shards>>,
) -> (Duration, Vec<Duration>) {
    let spec = ProcessSpec {
        command: vec!["php".into(), script()],
        env: vec![],
        cwd: None,
        uid: None,
        gid: None,
    };
    let spawner = Spawner::new(
        spec,
        RelayAddr::Pipes,
        "http",
        None,
        FrameCodec::default(),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let spawner = match &shards {
        Some(s) => spawner.with_cpus((0..s.len()).map(|i| s.cpu(i)).collect()),
        None => spawner,
    };
    let pool = Pool::start_sharded(
        "bench",
        spawner,
        PoolSettings {
            num_workers: workers,
            ..PoolSettings::default()
        },
        shards.clone(),
    );
    assert!(pool.wait_ready(workers, Duration::from_secs(20)).await);
    // Warm up every worker.
    for _ in 0..workers * 50 {
        pool.exec(Payload::new(0, CONTEXT, BODY)).await.unwrap();
    }
    let started = Instant::now();
    let tasks: Vec<_> = (0..conc)
        .map(|i| {
            let pool = pool.clone();
            let drive = async move {
                let mut lat = Vec::with_capacity(messages / conc);
                for _ in 0..messages / conc {
                    let t = Instant::now();
                    match pool.exec(Payload::new(0, CONTEXT, BODY)).await.unwrap() {
                        Response::Single(p) => assert_eq!(&p.body[..], BODY),
                        Response::Stream(_) => panic!("unexpected stream"),
                    }
                    lat.push(t.elapsed());
                }
                lat
            };
            match &shards {
                Some(s) => s.spawn(i, drive),
                None => tokio::spawn(drive),
            }
        })
        .collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    pool.shutdown().await;
    (elapsed, lat)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("pacer");
    let workers: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let conc: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    let messages: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let flavor = args.get(5).map(String::as_str).unwrap_or("current");
    match mode {
        "bare" => {
            // One blocking driver thread per worker; all warm up, then start together.
            let per = messages / workers;
            let go = std::sync::Arc::new(std::sync::Barrier::new(workers + 1));
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    let go = go.clone();
                    std::thread::spawn(move || bare_worker(50, per, &go))
                })
                .collect();
            go.wait();
            let started = Instant::now();
            let mut lat = Vec::new();
            for h in handles {
                lat.extend(h.join().unwrap());
            }
            report("bare", "threads", workers, workers, started.elapsed(), lat);
        }
        _ => {
            let rt = if flavor == "multi" {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
            } else {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
            }
            .unwrap();
            let shards =
                (flavor == "sharded").then(|| pacer::shards::Shards::start(workers, true).unwrap());
            let (elapsed, lat) = rt.block_on(pacer_run(workers, conc, messages, shards));
            report("pacer", flavor, workers, conc, elapsed, lat);
        }
    }
}
