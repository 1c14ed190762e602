//! The real `pacer` binary: graceful shutdown on SIGTERM with requests in flight, a
//! second signal, SIGKILL (no PHP left behind), bad configuration (exit 64 naming the
//! key) and `pacer config check`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::binary::{PACER, PacerBin, Ports, RrYaml, children_of, free_port};
use common::serve::*;
use common::{alive, eventually, php, worker_script};
use nix::sys::signal::Signal;
use tokio::time::Instant;

/// Starts `pacer serve` on free ports with `http.php` and `pacer_section` as the config's
/// `pacer:` section, and waits until it is ready with `workers` PHP processes.
async fn start(workers: usize, pacer_section: &str) -> PacerBin {
    let ports = Ports::pick();
    let yaml = RrYaml::worker("http.php")
        .workers(workers)
        .pool("allocate_timeout: 30s")
        .pool("destroy_timeout: 5s")
        .console()
        .section(&format!("pacer:\n{pacer_section}"))
        .render(&ports);
    let pacer = PacerBin::spawn(tempfile::tempdir().unwrap(), ports, &yaml);
    pacer.wait_ready(workers).await;
    pacer
}

async fn refused(addr: SocketAddr) -> bool {
    tokio::net::TcpStream::connect(addr).await.is_err()
}

#[tokio::test]
async fn sigterm_finishes_twenty_requests_in_flight_then_exits_0() {
    let mut pacer = start(10, "  shutdown:\n    delay: 4s\n    grace_period: 30s").await;
    let workers = children_of(pacer.pid());

    // 20 slow requests, each on its own connection: 10 run, 10 wait in the queue.
    let requests: Vec<_> = (0..20)
        .map(|_| {
            let url = pacer.url("/sleep?ms=1500");
            tokio::spawn(async move { fetch(&url).await })
        })
        .collect();
    let in_flight = eventually_async(30, || async {
        pacer
            .metric("pacer_workers{pool=\"http\",state=\"working\"}")
            .await
            + pacer.metric("pacer_queue_depth{pool=\"http\"}").await
            == 20.0
    })
    .await;
    assert!(in_flight, "the 20 requests never were in flight");

    pacer.signal(Signal::SIGTERM);
    let signalled = Instant::now();
    // Readiness drops at once; liveness stays.
    let ready = pacer.status_url("/ready");
    assert!(
        eventually_async(10, || async { fetch(&ready).await.status == 503 }).await,
        "/ready never turned 503"
    );
    assert!(
        signalled.elapsed() < Duration::from_secs(4),
        "/ready turned 503 only after the shutdown delay"
    );
    assert_eq!(fetch(&pacer.status_url("/health")).await.status, 200);
    // Within the shutdown delay, new connections are still served…
    let late = {
        let connection = tokio::net::TcpStream::connect(pacer.ports.http)
            .await
            .unwrap();
        assert!(signalled.elapsed() < Duration::from_secs(4));
        tokio::spawn(send_on(connection, false, get(&pacer.url("/"))))
    };
    // …after it, refused.
    let http = pacer.ports.http;
    assert!(
        eventually_async(30, || refused(http)).await,
        "the listener never closed"
    );
    assert!(
        signalled.elapsed() >= Duration::from_secs(4),
        "the listener closed before the shutdown delay ended ({:?})",
        signalled.elapsed()
    );

    for r in requests {
        let r = r.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text(), "slept 1500 ms");
    }
    assert_eq!(late.await.unwrap().status, 200);
    let status = pacer.wait_exit(60).await;
    assert_eq!(status.code(), Some(0), "{}", pacer.stderr());
    assert!(
        eventually(10, || workers.iter().all(|p| !alive(*p))).await,
        "PHP workers left behind: {workers:?}"
    );
    let log = pacer.stderr();
    assert!(!log.contains("grace period over"), "{log}");
    assert!(log.contains("stopped"), "{log}");
}

#[tokio::test]
async fn a_second_sigterm_exits_at_once() {
    let mut pacer = start(1, "  shutdown:\n    grace_period: 60s").await;
    let workers = children_of(pacer.pid());
    let slow = {
        let url = pacer.url("/sleep?ms=30000");
        tokio::spawn(async move {
            tokio::time::timeout(Duration::from_secs(60), h1().request(get(&url))).await
        })
    };
    let working = "pacer_workers{pool=\"http\",state=\"working\"}";
    assert!(eventually_async(20, || async { pacer.metric(working).await == 1.0 }).await);
    pacer.signal(Signal::SIGTERM);
    let ready = pacer.status_url("/ready");
    assert!(eventually_async(10, || async { fetch(&ready).await.status == 503 }).await);
    pacer.signal(Signal::SIGTERM);
    let started = Instant::now();
    let status = pacer.wait_exit(10).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_ne!(status.code(), Some(0), "a forced exit is not a clean one");
    assert!(
        eventually(10, || workers.iter().all(|p| !alive(*p))).await,
        "PHP workers left behind: {workers:?}"
    );
    // The request that was cut off sees the connection go, not a hang.
    let outcome = slow.await.unwrap().expect("the request hung");
    assert!(outcome.is_err(), "{outcome:?}");
}

#[tokio::test]
async fn sigkill_leaves_no_php_process_behind() {
    let mut pacer = start(3, "  shutdown:\n    grace_period: 5s").await;
    let workers = children_of(pacer.pid());
    assert_eq!(workers.len(), 3);
    pacer.signal(Signal::SIGKILL);
    pacer.wait_exit(10).await;
    assert!(
        eventually(10, || workers.iter().all(|p| !alive(*p))).await,
        "PHP workers outlived a SIGKILLed pacer: {workers:?}"
    );
}

fn run(args: &[&str], dir: &Path) -> std::process::Output {
    std::process::Command::new(PACER)
        .args(args)
        .current_dir(dir)
        .env_remove("PACER_LOG")
        .output()
        .unwrap()
}

#[tokio::test]
async fn bad_config_exits_64_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let good = format!(
        "version: \"3\"\nserver:\n  command: \"{} {}\"\nhttp:\n  address: 127.0.0.1:{}\n",
        php(),
        worker_script("http.php"),
        free_port()
    );
    std::fs::write(dir.path().join("good.yaml"), &good).unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        format!("{good}  pool:\n    num_workers: lots\n"),
    )
    .unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["serve", "-c", "bad.yaml"], "http.pool.num_workers"),
        (
            &["config", "check", "-c", "bad.yaml"],
            "http.pool.num_workers",
        ),
        (
            &[
                "serve",
                "-c",
                "good.yaml",
                "-o",
                "http.pool.allocate_timeout=soon",
            ],
            "http.pool.allocate_timeout",
        ),
        (
            &["serve", "-c", "good.yaml", "-o", "http.max_request_size=-1"],
            "http.max_request_size",
        ),
        (&["serve", "-c", "missing.yaml"], "missing.yaml"),
    ];
    for (args, key) in cases {
        let out = run(args, dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
        assert!(
            stderr.contains(key),
            "{args:?}: {key} not named in {stderr}"
        );
    }
    // The bad value itself is shown too.
    let out = run(&["serve", "-c", "bad.yaml"], dir.path());
    assert!(String::from_utf8_lossy(&out.stderr).contains("lots"));

    // An address already in use cannot be served either.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(
        &[
            "serve",
            "-c",
            "good.yaml",
            "-o",
            &format!("http.address={addr}"),
        ],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains(&addr), "{stderr}");
}

#[tokio::test]
async fn config_check_prints_the_effective_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".rr.yaml"),
        "version: \"3\"\nserver:\n  command: \"php worker.php\"\nhttp:\n  address: \
         ${PORT_FOR_TEST:-127.0.0.1:8081}\n  bogus_key: 1\n  pool:\n    num_workers: 2\n",
    )
    .unwrap();
    let out = run(
        &["config", "check", "-o", "http.pool.max_jobs=77"],
        dir.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for line in [
        "address: 127.0.0.1:8081",
        "num_workers: 2",
        "max_jobs: 77",
        "allocate_timeout: 1m0s",
        "relay: pipes",
    ] {
        assert!(stdout.contains(line), "{line} missing from:\n{stdout}");
    }
    // The output is itself YAML.
    let _: serde_yaml::Value = serde_yaml::from_str(&stdout).unwrap();
    assert!(stderr.contains("http.bogus_key"), "{stderr}");

    let out = run(&["version"], dir.path());
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("pacer "));
}
