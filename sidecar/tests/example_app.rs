//! The bundled example app (`examples/hello`, what `make run` serves), through the real
//! `pacer` binary with the example's own `.rr.yaml` — only the listen addresses moved to
//! free ports: every route the example documents, its static file, and the log lines that
//! tell a user where the status and metrics endpoints are.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bytes::Bytes;
use common::binary::*;
use common::repo_root;
use common::serve::*;
use http_body_util::Full;
use hyper::Request;
use sha2::{Digest, Sha256};

async fn start() -> PacerBin {
    let app = repo_root().join("examples/hello");
    let pacer = PacerBin::serve_config(
        tempfile::tempdir().unwrap(),
        &app.join(".rr.yaml"),
        &app,
        &[],
    );
    pacer.wait_ready(2).await;
    pacer
}

#[tokio::test]
async fn every_documented_route_of_the_example_app() {
    let pacer = start().await;
    let client = h1();

    let hello = send(&client, get(&pacer.url("/hello"))).await;
    assert_eq!(hello.status, 200);
    assert_eq!(hello.text(), "Hello, world!");

    let page = send(&client, get(&pacer.url("/"))).await;
    assert!(
        page.text().contains("Pacer is serving PHP"),
        "{}",
        page.text()
    );
    let css = send(&client, get(&pacer.url("/style.css"))).await;
    assert_eq!(css.status, 200, "the static middleware serves public/");

    let json = r#"{"a":[1,2,3],"b":"x"}"#;
    let echo = send(
        &client,
        Request::post(pacer.url("/echo"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(json)))
            .unwrap(),
    )
    .await;
    assert_eq!(echo.text(), json);

    let info = send(&client, get(&pacer.url("/api/info"))).await.json();
    assert!(info["pid"].as_u64().is_some_and(|p| p > 0), "{info}");

    let work = send(&client, get(&pacer.url("/work?ms=50"))).await;
    assert_eq!(work.text(), "done");

    let stream = send(&client, get(&pacer.url("/stream?n=3"))).await;
    assert_eq!(stream.text(), "line 1\nline 2\nline 3\n");

    // Two files, one nested field, and a plain field.
    let file_a = b"first file\n".repeat(100);
    let file_b = vec![0u8, 1, 2, 255];
    let boundary = "pacerexampleboundary";
    let mut body = Vec::new();
    for (field, name, data) in [
        ("doc", "a.txt", &file_a[..]),
        ("more[]", "b.bin", &file_b[..]),
    ] {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n--{boundary}--\r\n")
            .as_bytes(),
    );
    let upload = send(
        &client,
        Request::post(pacer.url("/upload"))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(Full::new(Bytes::from(body)))
            .unwrap(),
    )
    .await;
    assert_eq!(upload.status, 200, "{}", upload.text());
    let got = upload.json();
    let files = got["files"].as_array().unwrap();
    assert_eq!(files.len(), 2, "{got}");
    let hex = |d: &[u8]| format!("{:x}", Sha256::digest(d));
    assert_eq!(files[0]["field"], "doc");
    assert_eq!(files[0]["filename"], "a.txt");
    assert_eq!(files[0]["size"], file_a.len());
    assert_eq!(files[0]["sha256"], hex(&file_a));
    assert_eq!(files[1]["field"], "more[0]");
    assert_eq!(files[1]["sha256"], hex(&file_b));
    assert_eq!(got["fields"]["note"], "hi");

    let logged = send(&client, get(&pacer.url("/log?msg=from-the-test"))).await;
    assert_eq!(logged.text(), "logged");

    let missing = send(&client, get(&pacer.url("/no/such/page"))).await;
    assert_eq!(missing.status, 404);

    // `make run` tells the user where everything is.
    let log = pacer.stderr();
    for line in [
        format!("address={} serving HTTP", pacer.ports.http),
        format!("address={} status: /health and /ready", pacer.ports.status),
        format!("address={} metrics: /metrics", pacer.ports.metrics),
    ] {
        let (address, what) = line.split_once(' ').unwrap();
        assert!(
            log.lines().any(|l| l.contains(address) && l.contains(what)),
            "no log line with {address} and {what:?}: {log}"
        );
    }
    // PHP's error log (its stderr) shows up in pacer's log, as `kubectl logs` shows it.
    let wanted = "hello log: from-the-test";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !pacer.stderr().contains(wanted) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(pacer.stderr().contains(wanted), "{}", pacer.stderr());
    pacer.stop().await;
}
