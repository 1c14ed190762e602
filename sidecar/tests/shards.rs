//! Runtime shards (`pacer.runtime.shards`): every request is answered whichever shard
//! accepts its connection, workers are pinned to their shard's CPU, and the pool's
//! life cycle (reset, shutdown) works across shards. Real PHP, real HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::serve::*;

fn allowed_cpus(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_string()
}

/// The CPUs each worker may run on, sorted.
fn pinned(server: &Server) -> Vec<String> {
    let mut pinned: Vec<String> = server
        .worker_pids()
        .iter()
        .map(|&p| allowed_cpus(p))
        .collect();
    pinned.sort();
    pinned
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_serve_every_connection_with_workers_pinned_to_their_cpus() {
    let cpus = pacer::shards::allowed_cpus();
    let server = Builder::new("http.php")
        .workers(4)
        .set("pacer.runtime.shards", 2)
        .start()
        .await;
    // Workers of slot i run on the CPU of shard i % 2.
    let mut expected: Vec<String> = (0..4)
        .map(|i| cpus[(i % 2) % cpus.len()].to_string())
        .collect();
    expected.sort();
    assert_eq!(pinned(&server), expected);
    // Many connections (spread over both shards' sockets), several requests each.
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let url = server.url(&format!("/echo?n={i}"));
            tokio::spawn(async move {
                let client = h1();
                for _ in 0..10 {
                    let r = send(&client, get(&url)).await;
                    assert_eq!(r.status, 200, "{}", r.text());
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(server.jobs_run(), 160);
    // A rolling reset replaces workers on their shards; requests go on.
    server.pool().reset().await.unwrap();
    assert_eq!(fetch(&server.url("/echo")).await.status, 200);
    assert_eq!(pinned(&server), expected);
    server.stop().await;
}
