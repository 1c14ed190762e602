//! The jobs pipeline on a real NATS JetStream (Debian's nats-server, started by the tests
//! on loopback; tests isolate themselves by stream and subject names): every delivery
//! guarantee counted (`common::driver_suite`), plus RoadRunner's message format.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::brokers::{Simple, nats};
use common::driver_suite::{self as suite, Broker, Restartable};
use common::jobs::{builder, client, job, push, taken, wait_counts};
use common::serve::Builder;

struct Nats<'a>(&'a Simple);

impl Broker for Nats<'_> {
    fn driver(&self) -> &'static str {
        "nats"
    }

    fn pipeline_keys(&self, name: &str) -> String {
        format!("driver: nats, config: {{subject: {name}, stream: {name}, prefetch: 10}}")
    }

    fn section(&self, b: Builder) -> Builder {
        b.set("nats", format!("{{addr: '{}'}}", self.0.url()))
    }
}

impl Restartable for Nats<'_> {
    fn stop(&self) {
        self.0.stop();
    }

    fn restart_after_stop(&self) {
        self.0.restart_after_stop();
    }
}

fn shared() -> Nats<'static> {
    Nats(nats())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_pushed_is_acked_once() {
    suite::every_job_pushed_is_acked_once(&shared(), "n_all").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_worker_is_killed_is_delivered_again() {
    suite::a_job_whose_worker_is_killed_is_delivered_again(&shared(), "n_kill").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delays_and_requeues_go_through_jetstream() {
    suite::delays_and_requeues(&shared(), "n_delay").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume() {
    suite::pause_and_resume(&shared(), "n_ctl").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_jobs_in_flight_and_returns_prefetched_ones() {
    suite::sigterm_returns_prefetched_jobs(&shared(), "n_term").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_loses_no_job() {
    let own = Simple::nats();
    suite::broker_restart_loses_nothing(&Nats(&own), "n_restart").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_roadrunners_format_on_the_stream() {
    let yaml = format!(
        "pipelines: {{n_rr: {}}}, consume: [n_rr]",
        shared().pipeline("n_rr")
    );
    let server = shared().section(builder(&yaml, 1)).start().await;
    let mut c = client(&server).await;
    push(&mut c, job("n_rr", "warm-up", r#"{"do":"ack"}"#))
        .await
        .unwrap();
    wait_counts(&server, "n_rr", 30, |c| c.acked == 1).await;
    // A message as RoadRunner's nats driver publishes it (JSON body, base64 payload,
    // headers as NATS headers).
    let client = async_nats::connect(nats().url()).await.unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("h", "v");
    let body = format!(
        r#"{{"job":"App\\RRJob","id":"from-rr","payload":"{}","options":{{"priority":10,"pipeline":"n_rr","auto_ack":false}}}}"#,
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            br#"{"do":"ack"}"#
        )
    );
    let js = async_nats::jetstream::new(client);
    js.publish_with_headers("n_rr", headers, body.into())
        .await
        .unwrap()
        .await
        .unwrap();
    let got = wait_counts(&server, "n_rr", 30, |c| c.acked == 2).await;
    assert_eq!(got.acked, 2, "{got:?}");
    let t = taken(&server)
        .into_iter()
        .find(|t| t.id == "from-rr")
        .unwrap();
    assert_eq!(t.job, "App\\RRJob");
    assert_eq!(t.headers["h"], serde_json::json!(["v"]));
    assert_eq!(t.payload, r#"{"do":"ack"}"#);
    server.stop().await;
}
