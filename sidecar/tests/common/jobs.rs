//! Jobs tests: a server with a `jobs` section (workers: `testdata/workers/jobs.php`, which
//! logs every job it takes), a producer speaking `jobs.*` over RPC with protobuf, and the
//! job log.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use pacer::jobs::proto;
use pacer::rpc::RpcClient;
use prost::Message;

use super::serve::{Builder, Server};
use super::{php, worker_script};

/// A server whose jobs pool runs `jobs.php` (`workers` of them) with the `jobs` section
/// given as YAML flow text (`pipelines: {...}, consume: [...]`), logging to `jobs.log`.
pub fn builder(jobs_yaml: &str, workers: usize) -> Builder {
    let b = Builder::new("http.php").workers(1);
    let log = b.dir().join("jobs.log");
    builder_logging_to(b, jobs_yaml, workers, &log)
}

/// As [`builder`], with the job log at `log` (e.g. to read it after the server is gone).
pub fn builder_with_log(jobs_yaml: &str, workers: usize, log: &std::path::Path) -> Builder {
    builder_logging_to(Builder::new("http.php").workers(1), jobs_yaml, workers, log)
}

/// As [`builder`], with another jobs worker script from `testdata/workers/`.
pub fn builder_with_worker(jobs_yaml: &str, workers: usize, script: &str) -> Builder {
    let b = Builder::new("http.php").workers(1);
    let log = b.dir().join("jobs.log");
    builder_full(b, jobs_yaml, workers, &log, script)
}

fn builder_logging_to(
    b: Builder,
    jobs_yaml: &str,
    workers: usize,
    log: &std::path::Path,
) -> Builder {
    builder_full(b, jobs_yaml, workers, log, "jobs.php")
}

fn builder_full(
    b: Builder,
    jobs_yaml: &str,
    workers: usize,
    log: &std::path::Path,
    script: &str,
) -> Builder {
    let command = serde_json::to_string(&vec![php(), worker_script(script)]).unwrap();
    b.set("rpc.listen", "tcp://127.0.0.1:0")
        .set("server.env", format!("{{JOBS_LOG: {}}}", log.display()))
        .set(
            "jobs",
            format!(
                "{{pool: {{num_workers: {workers}, command: {command}, allocate_timeout: 20s, destroy_timeout: 5s}}, {jobs_yaml}}}"
            ),
        )
}

/// One line of the job log.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Taken {
    pub pid: u32,
    pub id: String,
    pub job: String,
    pub pipeline: String,
    pub driver: Option<String>,
    pub queue: Option<String>,
    pub headers: serde_json::Value,
    pub payload: String,
}

pub fn log_path(server: &Server) -> PathBuf {
    server.dir.path().join("jobs.log")
}

/// Every job taken so far, in order.
pub fn taken(server: &Server) -> Vec<Taken> {
    taken_from(&log_path(server))
}

pub fn taken_from(path: &std::path::Path) -> Vec<Taken> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad log line {l:?}: {e}")))
        .collect()
}

/// How many times each id was taken.
pub fn counts(server: &Server) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for t in taken(server) {
        *m.entry(t.id).or_default() += 1;
    }
    m
}

pub async fn client(server: &Server) -> RpcClient {
    RpcClient::connect(server.rpc.as_ref().unwrap(), Duration::from_secs(30))
        .await
        .unwrap()
}

/// A job as the PHP library builds it.
pub fn job(pipeline: &str, id: &str, payload: &str) -> proto::Job {
    proto::Job {
        job: "Tests\\Job".into(),
        id: id.into(),
        payload: payload.as_bytes().to_vec().into(),
        headers: Default::default(),
        options: Some(proto::Options {
            pipeline: pipeline.into(),
            ..Default::default()
        }),
    }
}

pub async fn push(c: &mut RpcClient, job: proto::Job) -> Result<(), pacer::rpc::ClientError> {
    let req = proto::PushRequest { job: Some(job) };
    c.call_proto("jobs.Push", &req.encode_to_vec())
        .await
        .map(|_| ())
}

pub async fn push_batch(c: &mut RpcClient, jobs: Vec<proto::Job>) {
    let req = proto::PushBatchRequest { jobs };
    c.call_proto("jobs.PushBatch", &req.encode_to_vec())
        .await
        .unwrap();
}

pub async fn stats(c: &mut RpcClient) -> Vec<proto::Stat> {
    let reply = c.call_proto("jobs.Stat", b"").await.unwrap();
    proto::Stats::decode(reply).unwrap().stats
}

/// `jobs.Stat` of `pipeline`, polled until `settled` holds or 10 s pass (brokers count
/// acks and moves asynchronously); returns the last one.
pub async fn stat_when(
    c: &mut RpcClient,
    pipeline: &str,
    settled: impl Fn(&proto::Stat) -> bool,
) -> proto::Stat {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stat = stats(c)
            .await
            .into_iter()
            .find(|s| s.pipeline == pipeline)
            .unwrap_or_else(|| panic!("no pipeline {pipeline} in jobs.Stat"));
        if settled(&stat) || tokio::time::Instant::now() > deadline {
            return stat;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `jobs.Declare` of the pipeline with these keys, as the PHP library's
/// `Jobs::create(...CreateInfo)` sends it.
pub async fn declare(
    c: &mut RpcClient,
    pipeline: &[(&str, &str)],
) -> Result<bytes::Bytes, pacer::rpc::ClientError> {
    let req = proto::DeclareRequest {
        pipeline: pipeline
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    c.call_proto("jobs.Declare", &req.encode_to_vec()).await
}

pub async fn pipelines_call(
    c: &mut RpcClient,
    method: &str,
    names: &[&str],
) -> Result<Vec<String>, pacer::rpc::ClientError> {
    let req = proto::Pipelines {
        pipelines: names.iter().map(|s| s.to_string()).collect(),
    };
    let reply = c.call_proto(method, &req.encode_to_vec()).await?;
    Ok(proto::Pipelines::decode(reply).unwrap().pipelines)
}

/// The pipeline's counters as pacer exports them.
pub fn counter(server: &Server, pipeline: &str) -> pacer::jobs::Counts {
    server.running.jobs.as_ref().unwrap().counts(pipeline)
}

/// Waits (polling, up to `secs`) until `cond` holds on the job counters.
pub async fn wait_counts(
    server: &Server,
    pipeline: &str,
    secs: u64,
    cond: impl Fn(&pacer::jobs::Counts) -> bool,
) -> pacer::jobs::Counts {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let c = counter(server, pipeline);
        if cond(&c) || tokio::time::Instant::now() > deadline {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGKILLs `times` workers of the jobs pool, each while it runs a job (a little into
/// it); returns how many were killed.
pub async fn kill_busy_workers(server: &Server, times: usize) -> usize {
    let pool = server.running.jobs.as_ref().unwrap().pool().clone();
    let mut kills = 0;
    for _ in 0..times {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let busy = loop {
            if let Some(w) = pool
                .snapshot()
                .workers
                .iter()
                .find(|w| w.state() == pacer::worker::WorkerState::Working)
            {
                break w.process().pid();
            }
            assert!(tokio::time::Instant::now() < deadline, "no busy worker");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(busy as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        kills += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    kills
}
