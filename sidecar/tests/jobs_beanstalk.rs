//! The jobs pipeline on a real beanstalkd (Debian's beanstalkd, started by the tests on
//! loopback; tests isolate themselves by tube names): every delivery guarantee counted
//! (`common::driver_suite`), plus beanstalkd's own behaviour.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Write};

use common::brokers::{Simple, beanstalkd};
use common::driver_suite::{self as suite, Broker, Restartable};
use common::jobs::{builder, client, job, push, taken, wait_counts};
use common::serve::Builder;

struct Beanstalk<'a>(&'a Simple);

impl Broker for Beanstalk<'_> {
    fn driver(&self) -> &'static str {
        "beanstalk"
    }

    fn pipeline_keys(&self, name: &str) -> String {
        format!("driver: beanstalk, config: {{tube: {name}, prefetch: 10, reserve_timeout: 1}}")
    }

    fn section(&self, b: Builder) -> Builder {
        b.set("beanstalk", format!("{{addr: '{}'}}", self.0.url()))
    }
}

impl Restartable for Beanstalk<'_> {
    fn stop(&self) {
        self.0.stop();
    }

    fn restart_after_stop(&self) {
        self.0.restart_after_stop();
    }
}

fn shared() -> Beanstalk<'static> {
    Beanstalk(beanstalkd())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_pushed_is_acked_once() {
    suite::every_job_pushed_is_acked_once(&shared(), "b_all").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_worker_is_killed_is_delivered_again() {
    suite::a_job_whose_worker_is_killed_is_delivered_again(&shared(), "b_kill").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delays_and_requeues_go_through_beanstalkd() {
    suite::delays_and_requeues(&shared(), "b_delay").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume() {
    suite::pause_and_resume(&shared(), "b_ctl").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_jobs_in_flight_and_returns_reserved_ones() {
    suite::sigterm_returns_prefetched_jobs(&shared(), "b_term").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_beanstalkd_restart_loses_no_job() {
    // Its own server: the others keep theirs.
    let own = Simple::beanstalkd();
    suite::broker_restart_loses_nothing(&Beanstalk(&own), "b_restart").await;
}

/// A raw beanstalkd command on a fresh connection; the reply's first line.
fn raw(line: &str, body: Option<&[u8]>) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", beanstalkd().port)).unwrap();
    s.write_all(line.as_bytes()).unwrap();
    s.write_all(b"\r\n").unwrap();
    if let Some(b) = body {
        s.write_all(b).unwrap();
        s.write_all(b"\r\n").unwrap();
    }
    let mut out = String::new();
    BufReader::new(s).read_line(&mut out).unwrap();
    out.trim_end().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nacked_job_is_buried_and_a_foreign_body_still_runs() {
    let yaml = format!(
        "pipelines: {{b_bury: {}}}, consume: [b_bury]",
        shared().pipeline("b_bury")
    );
    let server = shared().section(builder(&yaml, 1)).start().await;
    let mut c = client(&server).await;
    push(&mut c, job("b_bury", "n1", r#"{"do":"nack"}"#))
        .await
        .unwrap();
    let got = wait_counts(&server, "b_bury", 30, |c| c.failed == 1).await;
    assert_eq!(got.failed, 1, "{got:?}");
    // Nacked without requeue: buried in the tube (beanstalkd's dead letter), not gone.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", beanstalkd().port)).unwrap();
        s.write_all(b"stats-tube b_bury\r\n").unwrap();
        let mut r = BufReader::new(s);
        let mut head = String::new();
        r.read_line(&mut head).unwrap();
        let len: usize = head
            .trim_end()
            .strip_prefix("OK ")
            .unwrap()
            .parse()
            .unwrap();
        let mut body = vec![0; len + 2];
        std::io::Read::read_exact(&mut r, &mut body).unwrap();
        let yaml = String::from_utf8(body).unwrap();
        if yaml.contains("current-jobs-buried: 1") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not buried:\n{yaml}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // A message another producer put runs as RoadRunner's `consume_all` does.
    let body = br#"{"do":"ack"}"#;
    let reply = raw(
        &format!("use b_bury\r\nput 1 0 60 {}", body.len()),
        Some(body),
    );
    assert_eq!(reply, "USING b_bury");
    let got = wait_counts(&server, "b_bury", 30, |c| c.acked == 1).await;
    assert_eq!(got.acked, 1, "{got:?}");
    let foreign = taken(&server).into_iter().find(|t| t.id != "n1").unwrap();
    assert_eq!(foreign.job, "deduced_by_rr");
    assert_eq!(foreign.payload, r#"{"do":"ack"}"#);
    server.stop().await;
}
