//! The delivery guarantees every driver keeps, as scenarios run against a real server: a
//! [`Broker`] says how to name a pipeline on it, a [`Restartable`] one how to restart it.
//! Each driver's test file (`jobs_amqp.rs`, `jobs_beanstalk.rs`, `jobs_nats.rs`,
//! `jobs_memory.rs`) runs them.

use std::time::Duration;

use super::jobs::{self, builder, client, counts, job, push, taken, wait_counts};
use super::serve::Builder;

/// A driver under test.
pub trait Broker: Sync {
    /// The driver's name, as jobs and `jobs.Stat` report it.
    fn driver(&self) -> &'static str;
    /// The `jobs.pipelines.<name>` entry (flow YAML) for a pipeline `name` on its own
    /// queue/tube/subject.
    fn pipeline(&self, name: &str) -> String {
        format!("{{{}}}", self.pipeline_keys(name))
    }
    /// The keys of that entry (`driver: …, config: {…}`), to which a scenario may add its
    /// own (`retry: …`).
    fn pipeline_keys(&self, name: &str) -> String;
    /// Adds the broker's section (`beanstalk`, `nats`) to a server config.
    fn section(&self, b: Builder) -> Builder {
        b
    }
    /// The queue a job of pipeline `name` names in its context and `jobs.Stat`, where
    /// the driver reports one.
    fn queue(&self, _name: &str) -> Option<String> {
        None
    }
}

/// A broker in a process of its own, which a scenario can stop and start again.
pub trait Restartable: Broker {
    fn stop(&self);
    fn restart_after_stop(&self);
}

fn consumed(broker: &dyn Broker, name: &str) -> String {
    format!(
        "pipelines: {{{name}: {}}}, consume: [{name}]",
        broker.pipeline(name)
    )
}

/// n jobs pushed (one by one and in a batch) are each taken and acked exactly once,
/// and the broker reports the queue empty.
pub async fn every_job_pushed_is_acked_once(broker: &dyn Broker, name: &str) {
    let server = broker
        .section(builder(&consumed(broker, name), 2))
        .start()
        .await;
    let mut c = client(&server).await;
    let n = 300u64;
    let mut batch = Vec::new();
    for i in 0..n {
        let j = job(name, &format!("a{i}"), r#"{"do":"ack"}"#);
        if i % 2 == 0 {
            push(&mut c, j).await.unwrap();
        } else {
            batch.push(j);
        }
    }
    jobs::push_batch(&mut c, batch).await;
    let got = wait_counts(&server, name, 120, |c| c.acked >= n).await;
    assert_eq!(
        (
            got.pushed,
            got.consumed,
            got.acked,
            got.failed,
            got.requeued
        ),
        (n, n, n, 0, 0),
        "{got:?}"
    );
    let counts = counts(&server);
    assert_eq!(counts.len() as u64, n, "none lost");
    assert!(
        counts.values().all(|&k| k == 1),
        "duplicates without a failure"
    );
    let t = taken(&server).into_iter().find(|t| t.id == "a0").unwrap();
    assert_eq!(
        (t.driver.as_deref(), t.pipeline.as_str()),
        (Some(broker.driver()), name)
    );
    let queue = broker.queue(name);
    if queue.is_some() {
        assert_eq!(t.queue, queue, "{t:?}");
    }
    // The broker says the queue is empty.
    let stat = jobs::stat_when(&mut c, name, |s| (s.active, s.reserved) == (0, 0)).await;
    if let Some(queue) = &queue {
        assert_eq!(&stat.queue, queue, "{stat:?}");
    }
    assert_eq!(
        (stat.active, stat.reserved, stat.ready),
        (0, 0, true),
        "{stat:?}"
    );
    server.stop().await;
}

/// Workers SIGKILLed mid-job: every job is still acked; duplicates only for the jobs
/// whose worker died.
pub async fn a_job_whose_worker_is_killed_is_delivered_again(broker: &dyn Broker, name: &str) {
    let server = broker
        .section(builder(&consumed(broker, name), 2))
        .start()
        .await;
    let mut c = client(&server).await;
    let n = 20u64;
    for i in 0..n {
        push(
            &mut c,
            job(name, &format!("k{i}"), r#"{"do":"ack","ms":300}"#),
        )
        .await
        .unwrap();
    }
    let kills = jobs::kill_busy_workers(&server, 3).await;
    let got = wait_counts(&server, name, 90, |c| c.acked >= n).await;
    assert_eq!(got.acked, n, "{got:?}");
    let counts = counts(&server);
    assert_eq!(counts.len() as u64, n, "none lost");
    let duplicates: usize = counts.values().map(|k| k - 1).sum();
    assert!(
        (1..=kills).contains(&duplicates),
        "{duplicates} duplicates for {kills} killed workers: {counts:?}"
    );
    assert_eq!(got.failed as usize, duplicates, "{got:?}");
    server.stop().await;
}

/// exec_ttl kills a slow job; it, a failing, a nacked and a flaky job are retried with
/// the delay of `retry` (each retry carrying its attempts) until they are acked or,
/// after the last attempt, moved to the failed pipeline `dead`, which is not consumed.
pub async fn retries_then_the_failed_pipeline(broker: &dyn Broker, name: &str, dead: &str) {
    let retry = format!(
        "{{{}, retry: {{max_attempts: 3, delay: 1s, failed_pipeline: {dead}}}}}",
        broker.pipeline_keys(name)
    );
    let yaml = format!(
        "pipelines: {{{name}: {retry}, {dead}: {}}}, consume: [{name}]",
        broker.pipeline(dead)
    );
    let server = broker
        .section(builder(&yaml, 2))
        .set("jobs.pool.supervisor", "{exec_ttl: 1s}")
        .start()
        .await;
    let mut c = client(&server).await;
    for (id, payload) in [
        ("slow", r#"{"do":"ack","ms":5000}"#),
        ("bad", r#"{"do":"fail"}"#),
        ("flaky", r#"{"do":"fail_until","attempts":3}"#),
        ("nacked", r#"{"do":"nack"}"#),
    ] {
        push(&mut c, job(name, id, payload)).await.unwrap();
    }
    let got = wait_counts(&server, name, 120, |c| c.acked + c.failed >= 12).await;
    // Every delivery of slow (killed at exec_ttl), bad and nacked fails (3 each, the last
    // one moved to `dead`); flaky fails twice, then is acked.
    assert_eq!(got.acked, 1, "{got:?}");
    assert_eq!(got.failed, 3 + 3 + 3 + 2, "{got:?}");
    let counts = counts(&server);
    for id in ["slow", "bad", "flaky", "nacked"] {
        assert_eq!(counts[id], 3, "{id} taken {} times", counts[id]);
    }
    // Each retry carried the attempts so far.
    let attempts: Vec<_> = taken(&server)
        .into_iter()
        .filter(|t| t.id == "bad")
        .map(|t| t.headers["attempts"].clone())
        .collect();
    assert_eq!(
        attempts,
        [
            serde_json::Value::Null,
            serde_json::json!(["1"]),
            serde_json::json!(["2"])
        ]
    );
    // The exhausted ones wait in the failed pipeline, moved there by pacer, not pushed.
    let stat = jobs::stat_when(&mut c, dead, |s| s.active == 3).await;
    assert_eq!((stat.active, stat.ready), (3, false), "{stat:?}");
    assert_eq!(jobs::counter(&server, dead).pushed, 0);
    server.stop().await;
}

/// A delayed push runs after its delay; a requeue with a delay comes back after it.
pub async fn delays_and_requeues(broker: &dyn Broker, name: &str) {
    let server = broker
        .section(builder(&consumed(broker, name), 2))
        .start()
        .await;
    let mut c = client(&server).await;
    let mut delayed = job(name, "later", r#"{"do":"ack"}"#);
    delayed.options.as_mut().unwrap().delay = 2;
    let pushed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    push(&mut c, delayed).await.unwrap();
    push(
        &mut c,
        job(name, "rq", r#"{"do":"requeue","delay":1,"times":2}"#),
    )
    .await
    .unwrap();
    let got = wait_counts(&server, name, 60, |c| c.acked >= 2).await;
    assert_eq!((got.acked, got.requeued), (2, 2), "{got:?}");
    // The workers log a job before they answer it, but two workers share the log: wait
    // (bounded) until it shows the 4 runs, then check that nothing else ran meanwhile.
    let read_log = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(jobs::log_path(&server))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let mut log = Vec::new();
    super::poll::eventually(30, || {
        log = read_log();
        log.len() >= 4
    })
    .await;
    let now = jobs::counter(&server, name);
    assert_eq!(
        (log.len(), now.acked, now.requeued),
        (4, 2, 2),
        "runs logged: {log:?}; counts then {got:?}, now {now:?}"
    );
    let at = |id: &str| -> Vec<f64> {
        log.iter()
            .filter(|v| v["id"] == id)
            .map(|v| v["t"].as_f64().unwrap())
            .collect()
    };
    // beanstalkd counts delays in whole seconds from its own clock: allow 0.2 s.
    let later = at("later");
    assert!(
        later.len() == 1 && later[0] - pushed_at >= 1.8,
        "a 2 s delay: {later:?} (log: {log:?})"
    );
    let rq = at("rq");
    assert_eq!(rq.len(), 3);
    assert!(rq[1] - rq[0] >= 0.8 && rq[2] - rq[1] >= 0.8, "{rq:?}");
    server.stop().await;
}

/// Paused: pushes are stored, nothing is consumed; resumed: all of them run.
pub async fn pause_and_resume(broker: &dyn Broker, name: &str) {
    let server = broker
        .section(builder(&consumed(broker, name), 1))
        .start()
        .await;
    let mut c = client(&server).await;
    jobs::pipelines_call(&mut c, "jobs.Pause", &[name])
        .await
        .unwrap();
    for i in 0..5 {
        push(&mut c, job(name, &format!("p{i}"), r#"{"do":"ack"}"#))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(taken(&server).is_empty(), "paused: nothing consumed");
    let s = jobs::stats(&mut c)
        .await
        .into_iter()
        .find(|s| s.pipeline == name)
        .unwrap();
    assert_eq!(
        (s.active, s.ready, s.driver.as_str()),
        (5, false, broker.driver()),
        "the depth comes from the broker"
    );
    jobs::pipelines_call(&mut c, "jobs.Resume", &[name])
        .await
        .unwrap();
    let got = wait_counts(&server, name, 30, |c| c.acked == 5).await;
    assert_eq!(got.acked, 5, "{got:?}");
    server.stop().await;
}

/// SIGTERM: jobs in flight finish, prefetched ones go back to the broker, and a second
/// pacer gets exactly the rest: none lost, none twice.
pub async fn sigterm_returns_prefetched_jobs(broker: &dyn Broker, name: &str) {
    let n = 40u64;
    let logs = tempfile::tempdir().unwrap();
    let first_log = logs.path().join("first.log");
    let server = broker
        .section(jobs::builder_with_log(
            &consumed(broker, name),
            2,
            &first_log,
        ))
        .set("pacer.shutdown.grace_period", "20s")
        .start()
        .await;
    let mut c = client(&server).await;
    for i in 0..n {
        push(
            &mut c,
            job(name, &format!("t{i}"), r#"{"do":"ack","ms":400}"#),
        )
        .await
        .unwrap();
    }
    wait_counts(&server, name, 30, |c| c.acked >= 2).await;
    let first_jobs = server.running.jobs.clone().unwrap();
    drop(c);
    server.stop().await;
    let first = first_jobs.counts(name);
    let taken_first = jobs::taken_from(&first_log).len() as u64;
    assert_eq!(
        taken_first, first.acked,
        "in-flight jobs finished: {first:?}"
    );
    assert!(first.acked < n, "stopped before the end: {first:?}");
    assert!(first.consumed >= first.acked, "{first:?}");

    let second = broker
        .section(builder(&consumed(broker, name), 2))
        .start()
        .await;
    wait_counts(&second, name, 60, |c| c.acked >= n - first.acked).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = jobs::counter(&second, name);
    assert_eq!(
        first.acked + got.acked,
        n,
        "pushed = acked: {first:?} then {got:?}"
    );
    let mut ids: Vec<String> = jobs::taken_from(&first_log)
        .into_iter()
        .chain(taken(&second))
        .map(|t| t.id)
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len() as u64, n, "every job ran exactly once");
    second.stop().await;
}

/// The broker restarts while jobs are pushed and consumed: pushes wait for it, the
/// consumer reconnects, and every job pushed runs (duplicates allowed: the broker
/// redelivers what it had handed out when the connection broke).
pub async fn broker_restart_loses_nothing(broker: &dyn Restartable, name: &str) {
    let server = broker
        .section(builder(&consumed(broker, name), 2))
        .start()
        .await;
    let mut c = client(&server).await;
    let n = 200u64;
    for i in 0..n / 2 {
        push(
            &mut c,
            job(name, &format!("r{i}"), r#"{"do":"ack","ms":5}"#),
        )
        .await
        .unwrap();
    }
    wait_counts(&server, name, 60, |c| c.acked >= 10).await;
    broker.stop();
    // Pushes during the outage wait for the broker (up to jobs.timeout).
    let pushing = {
        let rpc = server.rpc.clone().unwrap();
        let name = name.to_string();
        tokio::spawn(async move {
            let mut c = pacer::rpc::RpcClient::connect(&rpc, Duration::from_secs(30))
                .await
                .unwrap();
            for i in n / 2..n {
                push(
                    &mut c,
                    job(&name, &format!("r{i}"), r#"{"do":"ack","ms":5}"#),
                )
                .await
                .unwrap();
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    broker.restart_after_stop();
    pushing.await.unwrap();
    let got = wait_counts(&server, name, 120, |c| {
        c.acked >= n && counts_all(&server, n)
    })
    .await;
    let counts = counts(&server);
    assert_eq!(counts.len() as u64, n, "none lost: {got:?}");
    let duplicates: usize = counts.values().map(|k| k - 1).sum();
    eprintln!(
        "broker restart: {n} pushed, {} taken, {duplicates} duplicates",
        got.consumed
    );
    server.stop().await;
}

fn counts_all(server: &super::serve::Server, n: u64) -> bool {
    counts(server).len() as u64 >= n
}
