//! The jobs pipeline on a real RabbitMQ (Debian's rabbitmq-server, started once for this
//! binary on loopback; tests isolate themselves by queue names): every delivery guarantee
//! counted (`common::driver_suite`; the broker restart is `jobs_amqp_restart.rs`), plus
//! RabbitMQ's own behaviour and RoadRunner's message format on the broker.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use amqprs::channel::{BasicGetArguments, BasicPublishArguments, QueueDeclareArguments};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::{BasicProperties, FieldTable, FieldValue, ShortStr};
use common::brokers::{Rabbit, rabbitmq};
use common::driver_suite::{self as suite, Broker};
use common::jobs::{self, builder, client, counts, job, push, taken, wait_counts};
use common::serve::Builder;

/// Every test's queue is bound to RoadRunner's default exchange with its own routing key
/// (the default key, empty, would bind them all to each other's messages).
struct Amqp<'a>(&'a Rabbit);

impl Broker for Amqp<'_> {
    fn driver(&self) -> &'static str {
        "amqp"
    }

    fn pipeline_keys(&self, name: &str) -> String {
        format!(
            "driver: amqp, config: {{queue: {name}, routing_key: {name}, prefetch: 10, durable: true}}"
        )
    }

    fn section(&self, b: Builder) -> Builder {
        b.set("amqp", format!("{{addr: '{}'}}", self.0.url()))
    }

    fn queue(&self, name: &str) -> Option<String> {
        Some(name.to_string())
    }
}

fn shared() -> Amqp<'static> {
    Amqp(rabbitmq())
}

/// A jobs section with one amqp pipeline `name` on queue `name`, consumed.
fn amqp(name: &str) -> String {
    format!(
        "pipelines: {{{name}: {}}}, consume: [{name}]",
        shared().pipeline(name)
    )
}

fn with_broker(b: Builder) -> Builder {
    shared().section(b)
}

async fn raw_channel() -> (Connection, amqprs::channel::Channel) {
    let args = OpenConnectionArguments::try_from(rabbitmq().url().as_str()).unwrap();
    let conn = Connection::open(&args).await.unwrap();
    let ch = conn.open_channel(None).await.unwrap();
    (conn, ch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_pushed_is_acked_once() {
    suite::every_job_pushed_is_acked_once(&shared(), "a_all").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_worker_is_killed_is_delivered_again() {
    suite::a_job_whose_worker_is_killed_is_delivered_again(&shared(), "a_kill").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_ttl_and_failures_retry_with_delay_then_go_to_the_failed_pipeline() {
    suite::retries_then_the_failed_pipeline(&shared(), "a_retry", "a_dead").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delays_and_requeues_go_through_rabbitmq() {
    suite::delays_and_requeues(&shared(), "a_delay").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_jobs_in_flight_and_returns_prefetched_ones() {
    suite::sigterm_returns_prefetched_jobs(&shared(), "a_term").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume() {
    suite::pause_and_resume(&shared(), "a_ctl").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_are_declared_and_destroyed_at_run_time() {
    let server = with_broker(builder(&amqp("a_ctl2"), 1)).start().await;
    let mut c = client(&server).await;
    // As `$jobs->create(new AMQPCreateInfo(name: 'a_decl', queue: 'a_decl', ...))` sends it.
    jobs::declare(
        &mut c,
        &[
            ("name", "a_decl"),
            ("driver", "amqp"),
            ("priority", "10"),
            ("prefetch", "100"),
            ("queue", "a_decl"),
            ("exchange", "amqp.default"),
            ("exchange_type", "direct"),
            ("routing_key", "a_decl"),
            ("exclusive", "false"),
            ("multiple_ack", "false"),
            ("requeue_on_fail", "false"),
            ("durable", "false"),
            ("exchange_durable", "false"),
            ("consumer_id", "pacer-test"),
            ("queue_auto_delete", "false"),
            ("exchange_auto_delete", "false"),
            ("delete_queue_on_stop", "true"),
            ("queue_headers", "{}"),
        ],
    )
    .await
    .unwrap();
    push(&mut c, job("a_decl", "d1", r#"{"do":"ack"}"#))
        .await
        .unwrap();
    wait_counts(&server, "a_decl", 30, |c| c.acked == 1).await;
    jobs::pipelines_call(&mut c, "jobs.Destroy", &["a_decl"])
        .await
        .unwrap();
    // delete_queue_on_stop: the queue is gone from RabbitMQ.
    let (_conn, ch) = raw_channel().await;
    let mut gone = false;
    for _ in 0..50 {
        let passive = QueueDeclareArguments::new("a_decl").passive(true).finish();
        if ch.queue_declare(passive).await.is_err() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "a_decl still exists");
    server.stop().await;
}

/// RabbitMQ's count of ready messages in `queue` and of its consumers.
async fn queue_counts(queue: &str) -> (u32, u32) {
    let (_conn, ch) = raw_channel().await;
    let passive = QueueDeclareArguments::new(queue).passive(true).finish();
    let (_, ready, consumers) = ch.queue_declare(passive).await.unwrap().unwrap();
    (ready, consumers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_returns_prefetched_jobs_and_resume_consumes_again() {
    // One worker, prefetch 10: one job runs, the others wait prefetched in pacer.
    let server = with_broker(builder(&amqp("a_pause"), 1)).start().await;
    let mut c = client(&server).await;
    for i in 0..10 {
        push(
            &mut c,
            job("a_pause", &format!("q{i}"), r#"{"do":"ack","ms":1000}"#),
        )
        .await
        .unwrap();
    }
    assert!(
        common::eventually(30, || !taken(&server).is_empty()).await,
        "no job started"
    );
    jobs::pipelines_call(&mut c, "jobs.Pause", &["a_pause"])
        .await
        .unwrap();
    let started = taken(&server).len();
    // The running job finishes and is acked; the prefetched ones go back to RabbitMQ
    // instead of running.
    let got = wait_counts(&server, "a_pause", 30, |c| c.acked as usize >= started).await;
    assert_eq!(got.acked as usize, started, "{got:?}");
    let want = (10 - started as u32, 0);
    let mut seen = (0, 0);
    for _ in 0..150 {
        seen = queue_counts("a_pause").await;
        if seen == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        seen, want,
        "(ready in RabbitMQ, consumers) after the pause, {started} started"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(taken(&server).len(), started, "a job ran while paused");
    assert_eq!(queue_counts("a_pause").await, want);
    // Resume opens a consumer again: the rest run, each once.
    jobs::pipelines_call(&mut c, "jobs.Resume", &["a_pause"])
        .await
        .unwrap();
    let got = wait_counts(&server, "a_pause", 60, |c| c.acked >= 10).await;
    assert_eq!(got.acked, 10, "{got:?}");
    let counts = counts(&server);
    assert_eq!(counts.len(), 10, "{counts:?}");
    assert!(counts.values().all(|&n| n == 1), "ran twice: {counts:?}");
    assert_eq!(queue_counts("a_pause").await.0, 0);
    // Pause and resume again: still consuming, nothing left behind.
    jobs::pipelines_call(&mut c, "jobs.Pause", &["a_pause"])
        .await
        .unwrap();
    jobs::pipelines_call(&mut c, "jobs.Resume", &["a_pause"])
        .await
        .unwrap();
    push(&mut c, job("a_pause", "q10", r#"{"do":"ack"}"#))
        .await
        .unwrap();
    let got = wait_counts(&server, "a_pause", 30, |c| c.acked >= 11).await;
    assert_eq!(got.acked, 11, "{got:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_roadrunners_format_on_the_broker() {
    // A message as RoadRunner's amqp driver publishes it is consumed by pacer...
    let server = with_broker(builder(&amqp("a_rr"), 1)).start().await;
    let mut c = client(&server).await;
    // A first job through pacer: the exchange, queue and binding exist once it has run.
    push(&mut c, job("a_rr", "warm-up", r#"{"do":"ack"}"#))
        .await
        .unwrap();
    wait_counts(&server, "a_rr", 30, |c| c.acked == 1).await;
    let (_conn, ch) = raw_channel().await;
    let name = |s: &str| ShortStr::try_from(s).unwrap();
    let mut t = FieldTable::new();
    t.insert(name("rr_id"), FieldValue::from("from-rr"));
    t.insert(name("rr_job"), FieldValue::from("App\\RRJob"));
    t.insert(name("rr_pipeline"), FieldValue::from("a_rr"));
    t.insert(
        name("rr_headers"),
        FieldValue::x(amqprs::ByteArray::try_from(br#"{"h":["v"]}"#.to_vec()).unwrap()),
    );
    t.insert(name("rr_delay"), FieldValue::I(0));
    t.insert(name("rr_priority"), FieldValue::I(10));
    t.insert(name("rr_auto_ack"), FieldValue::t(false));
    let mut props = BasicProperties::default();
    props.with_headers(t);
    ch.basic_publish(
        props.finish(),
        br#"{"do":"ack"}"#.to_vec(),
        BasicPublishArguments::new("amqp.default", "a_rr"),
    )
    .await
    .unwrap();
    wait_counts(&server, "a_rr", 30, |c| c.acked == 2).await;
    let got = taken(&server)
        .into_iter()
        .find(|t| t.id == "from-rr")
        .unwrap();
    assert_eq!(
        (got.id.as_str(), got.job.as_str()),
        ("from-rr", "App\\RRJob")
    );
    assert_eq!(got.headers["h"], serde_json::json!(["v"]));
    // ...and what pacer publishes carries RoadRunner's headers.
    jobs::pipelines_call(&mut c, "jobs.Pause", &["a_rr"])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut j = job("a_rr", "to-rr", "payload");
    j.headers.insert(
        "k".into(),
        pacer::jobs::proto::HeaderValue {
            value: vec!["1".into()],
        },
    );
    j.options.as_mut().unwrap().priority = 7;
    push(&mut c, j).await.unwrap();
    let (_, props, body) = ch
        .basic_get(BasicGetArguments::new("a_rr").no_ack(true).finish())
        .await
        .unwrap()
        .expect("the message is in the queue");
    assert_eq!(body, b"payload");
    let h = props.headers().unwrap();
    let get = |k: &str| h.get(&name(k)).map(|v| v.to_string());
    assert_eq!(get("rr_id").as_deref(), Some("to-rr"));
    assert_eq!(get("rr_job").as_deref(), Some("Tests\\Job"));
    assert_eq!(get("rr_pipeline").as_deref(), Some("a_rr"));
    assert!(matches!(
        h.get(&name("rr_priority")),
        Some(FieldValue::l(7))
    ));
    match h.get(&name("rr_headers")) {
        Some(FieldValue::x(b)) => {
            assert_eq!(Vec::<u8>::from(b.clone()), br#"{"k":["1"]}"#.to_vec())
        }
        other => panic!("rr_headers: {other:?}"),
    }
    server.stop().await;
}
