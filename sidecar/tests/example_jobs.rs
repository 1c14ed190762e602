//! examples/jobs through the `pacer` binary with its own `.rr.yaml` (listen addresses
//! moved to free ports): the hello app's `/enqueue` route pushes jobs, `consumer.php`
//! consumes them, the metrics count them — what the README shows.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::binary::*;
use common::repo_root;
use common::serve::*;
use http_body_util::Full;
use hyper::Request;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_route_and_consumer() {
    let root = repo_root();
    let pacer = PacerBin::serve_config(
        tempfile::tempdir().unwrap(),
        &root.join("examples/jobs/.rr.yaml"),
        &root.join("examples/hello"),
        &[],
    );
    // 2 HTTP workers and 2 jobs workers.
    pacer.wait_ready(4).await;
    let req = Request::post(pacer.url("/enqueue?n=3"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let reply = send(&h1(), req).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    assert_eq!(reply.json()["queued"].as_array().unwrap().len(), 3);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while pacer
        .metric(r#"pacer_pipeline_jobs_total{pipeline="emails",event="acked"}"#)
        .await
        < 3.0
    {
        assert!(tokio::time::Instant::now() < deadline, "{}", pacer.stderr());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = pacer.stop().await;
    for i in 0..3 {
        assert!(
            log.contains(&format!(
                "App\\\\SendWelcome: welcome mail to user{i}@example.com (attempt 1)"
            )) || log.contains(&format!(
                "App\\SendWelcome: welcome mail to user{i}@example.com (attempt 1)"
            )),
            "{log}"
        );
    }
}
