//! `pacer serve` end to end, in-process: real PHP workers (`testdata/workers/http.php`)
//! behind the real listeners of [`pacer::app::run`], driven by real HTTP clients
//! (HTTP/1.1, h2c, HTTPS with ALPN) and raw sockets where the bytes matter.
//!
//! Covers the request context PHP sees, bodies and uploads, response headers and status
//! codes, streaming and client disconnects, TLS, static files, compression, trusted
//! proxies, access logs, the error mapping of docs/design.md §2.2, `/health` and `/ready`,
//! draining, and the rolling reset of hot reload under load.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::serve::*;
use common::{alive, eventually, php};
use http::Request;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tokio::time::Instant;

fn post(url: &str, content_type: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::post(url)
        .header("content-type", content_type)
        .body(Full::new(body.into()))
        .unwrap()
}

/// A `multipart/form-data` body: (field name, file name, content type, data) per part.
pub fn multipart(boundary: &str, parts: &[(&str, Option<&str>, &str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, file, content_type, data) in parts {
        write!(
            out,
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\""
        )
        .unwrap();
        if let Some(file) = file {
            write!(out, "; filename=\"{file}\"").unwrap();
        }
        write!(out, "\r\n").unwrap();
        if !content_type.is_empty() {
            write!(out, "Content-Type: {content_type}\r\n").unwrap();
        }
        write!(out, "\r\n").unwrap();
        out.extend_from_slice(data);
        write!(out, "\r\n").unwrap();
    }
    write!(out, "--{boundary}--\r\n").unwrap();
    out
}

fn sha256_hex(data: &[u8]) -> String {
    // PHP computes the hash; ask it for the expected one too, so the test needs no crate.
    let out = std::process::Command::new(php())
        .args(["-r", "echo hash('sha256', stream_get_contents(STDIN));"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(data)?;
            child.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

async fn pid_via(client: &H1, server: &Server) -> u32 {
    let r = send(client, get(&server.url("/pid"))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.text().parse().unwrap()
}

async fn wait_working(server: &Server, n: usize) {
    assert!(
        eventually(20, || server.pool().snapshot().working >= n).await,
        "{n} workers never got busy"
    );
}

// ---------------------------------------------------------------------------------------
// The request as PHP sees it

#[tokio::test]
async fn get_reaches_php_with_absolute_uri_canonical_headers_cookies_and_query() {
    let server = Builder::new("http.php").start().await;
    let req = Request::get(server.url("/echo?a=1&b[]=2&b[]=3&c[d]=e"))
        .header("x-custom-header", "v1")
        .header("x-multi", "first")
        .header("x-multi", "second")
        .header("cookie", "session=abc; name=hello%20world")
        .body(Full::default())
        .unwrap();
    let r = send(&h1(), req).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["method"], "GET");
    let uri = v["uri"].as_str().unwrap();
    assert!(
        uri.starts_with(&format!("http://{}/echo?a=1&b", server.addr)),
        "{uri}"
    );
    assert_eq!(
        v["query"],
        json!({"a": "1", "b": ["2", "3"], "c": {"d": "e"}})
    );
    assert_eq!(v["headers"]["X-Custom-Header"], json!(["v1"]));
    assert_eq!(v["headers"]["X-Multi"], json!(["first", "second"]));
    assert_eq!(
        v["cookies"],
        json!({"session": "abc", "name": "hello world"})
    );
    assert_eq!(v["protocol"], "1.1");
    assert_eq!(v["remoteAddr"], "127.0.0.1");
    assert_eq!(v["body"], "");
    server.stop().await;
}

#[tokio::test]
async fn post_bodies_urlencoded_parsed_json_and_binary_raw() {
    let server = Builder::new("http.php").start().await;
    let client = h1();
    let url = server.url("/echo");

    let form = "name=Ann+Lee&list[]=1&list[]=2&nested[k][deep]=v&plain=first&plain=last";
    let v = send(
        &client,
        post(&url, "application/x-www-form-urlencoded", form),
    )
    .await
    .json();
    assert_eq!(v["method"], "POST");
    assert_eq!(
        v["parsedBody"],
        json!({"name": "Ann Lee", "list": ["1", "2"], "nested": {"k": {"deep": "v"}}, "plain": "last"})
    );

    let doc = r#"{"k":[1,2],"s":"\u00e9"}"#;
    let v = send(&client, post(&url, "application/json", doc))
        .await
        .json();
    assert_eq!(v["body"], doc, "JSON bodies go to PHP raw");
    assert_eq!(v["parsedBody"], Value::Null);

    let binary: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let r = send(
        &client,
        Request::put(&url)
            .header("content-type", "application/octet-stream")
            .body(Full::new(Bytes::from(binary.clone())))
            .unwrap(),
    )
    .await;
    assert_eq!(r.json()["method"], "PUT");

    // Every method passes through verbatim.
    for method in ["PATCH", "DELETE", "PURGE"] {
        let r = send(
            &client,
            Request::builder()
                .method(method)
                .uri(&url)
                .body(Full::new(Bytes::from_static(b"x")))
                .unwrap(),
        )
        .await;
        assert_eq!(r.json()["method"], method);
    }
    server.stop().await;
}

#[tokio::test]
async fn head_and_options_send_no_body() {
    let server = Builder::new("http.php").start().await;
    let client = h1();
    let r = send(
        &client,
        Request::head(server.url("/echo"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.is_empty(),
        "HEAD answered with a body: {:?}",
        r.text()
    );

    // OPTIONS: the request body is not read or passed on (like RoadRunner).
    let r = send(
        &client,
        Request::options(server.url("/echo"))
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from_static(b"ignored body")))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["method"], "OPTIONS");
    assert_eq!(v["body"], "");

    // The connection is still usable afterwards.
    assert_eq!(
        send(&client, get(&server.url("/"))).await.text(),
        "Hello, world!"
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Responses

#[tokio::test]
async fn multi_value_headers_and_several_set_cookies() {
    let server = Builder::new("http.php")
        .set("http.http2.h2c", "true")
        .start()
        .await;
    for client in [h1(), h2c()] {
        let r = send(&client, get(&server.url("/headers"))).await;
        assert_eq!(r.status, 200);
        let multi = r.header_all("x-multi").join(", ");
        assert_eq!(multi, "a, b");
        assert_eq!(
            r.header_all("set-cookie"),
            ["first=1; Path=/", "second=2; Path=/; HttpOnly"]
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn status_codes_from_php_reach_the_client() {
    let server = Builder::new("http.php").start().await;
    let client = h1();
    for code in [
        200u16, 201, 202, 204, 301, 304, 400, 404, 418, 451, 500, 503, 599,
    ] {
        let r = send(&client, get(&server.url(&format!("/status/{code}")))).await;
        assert_eq!(r.status.as_u16(), code);
        if code == 204 || code == 304 {
            assert!(r.body.is_empty());
        } else {
            assert_eq!(r.text(), format!("status {code}"));
        }
    }
    assert_eq!(send(&client, get(&server.url("/nope"))).await.status, 404);
    server.stop().await;
}

#[tokio::test]
async fn invalid_statuses_and_header_injection_from_php_become_500() {
    let server = Builder::new("http.php").workers(1).start().await;
    let client = h1();
    // 1xx is not a final status: a single frame with one has nothing to follow it,
    // and 101 must never switch a connection to a protocol nobody speaks.
    for path in [
        "/status/999",
        "/status/600",
        "/status/099",
        "/status/100",
        "/status/101",
        "/status/103",
    ] {
        let r = send(&client, get(&server.url(path))).await;
        assert_eq!(r.status, 500, "{path}: {}", r.text());
    }
    // A header with CR/LF never reaches the client; checked on the raw bytes.
    let (raw, _) = raw_exchange(
        server.addr,
        b"GET /bad-header HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        20,
    )
    .await;
    assert_eq!(raw_status(&raw), 500, "{raw}");
    assert!(!raw.contains("Injected"), "{raw}");
    assert!(!raw.contains("evil"), "{raw}");
    assert!(!raw.contains("bad header"), "the PHP body leaked: {raw}");
    // The worker is fine and keeps serving.
    assert_eq!(send(&client, get(&server.url("/"))).await.status, 200);
    server.stop().await;
}

/// A worker that frames its replies badly on purpose: Content-Length headers that
/// disagree with the body, or are not numbers at all.
const FRAMING_WORKER: &str = r#"<?php
require getenv('AUTOLOAD');
$worker = Pacer\Worker::create();
$http = new Pacer\Http\HttpWorker($worker);
while ($req = $http->waitRequest()) {
    switch (parse_url($req->uri, PHP_URL_PATH)) {
        case '/short': $http->respond(200, '0123456789', ['Content-Length' => ['5']]); break;
        case '/long': $http->respond(200, '01234', ['Content-Length' => ['10']]); break;
        case '/nan': $http->respond(200, '01234', ['Content-Length' => ['abc']]); break;
        case '/two': $http->respond(200, '01234', ['Content-Length' => ['5', '6']]); break;
        case '/stream':
            $http->respondStream(200, (function () { yield 'abc'; yield 'def'; })(), ['Content-Length' => ['6']]);
            break;
        case '/stream-long':
            $http->respondStream(200, (function () { yield 'abc'; yield 'defghi'; })(), ['Content-Length' => ['6']]);
            break;
        case '/stream-short':
            $http->respondStream(200, (function () { yield 'abc'; })(), ['Content-Length' => ['6']]);
            break;
        default: $http->respond(200, 'next', []);
    }
}
"#;

#[tokio::test]
async fn content_length_from_php_never_frames_a_wrong_response() {
    let builder = Builder::new("http.php").workers(1);
    let script = builder.dir().join("framing.php");
    std::fs::write(&script, FRAMING_WORKER).unwrap();
    let autoload = common::repo_root().join("testdata/workers/autoload.php");
    let server = builder
        .command(vec![php(), script.display().to_string()])
        .set(
            "server.env",
            format!("{{AUTOLOAD: \"{}\"}}", autoload.display()),
        )
        .set("http.http2.h2c", "true")
        .start()
        .await;
    // Each bad reply is followed on the same connection by a pipelined request: a
    // Content-Length that disagrees with the body would desync the two.
    for (path, body) in [
        ("/short", "0123456789"),
        ("/long", "01234"),
        ("/nan", "01234"),
        ("/two", "01234"),
        ("/stream", "abcdef"),
    ] {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: t\r\n\r\nGET /next HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        );
        let (raw, _) = raw_exchange(server.addr, req.as_bytes(), 20).await;
        let mut responses = raw.split("HTTP/1.1 ").skip(1);
        let first = responses
            .next()
            .unwrap_or_else(|| panic!("{path}: no answer: {raw:?}"));
        let second = responses
            .next()
            .unwrap_or_else(|| panic!("{path}: one answer: {raw:?}"));
        assert!(first.starts_with("200"), "{path}: {raw:?}");
        let (head, got) = first.split_once("\r\n\r\n").unwrap();
        let got = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            got.split("\r\n")
                .collect::<Vec<_>>()
                .chunks(2)
                .filter_map(|c| c.get(1).copied())
                .collect::<String>()
        } else {
            got.to_string()
        };
        assert_eq!(got, body, "{path}: {raw:?}");
        for line in head
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with("content-length"))
        {
            assert_eq!(
                line.to_ascii_lowercase(),
                format!("content-length: {}", body.len()),
                "{path}"
            );
        }
        assert!(second.starts_with("200"), "{path}: {raw:?}");
        assert!(second.ends_with("next"), "{path}: {raw:?}");
    }
    // A stream that breaks its own Content-Length never delivers more than it declared
    // and never looks complete when it is short, on either protocol.
    for client in [h1(), h2c()] {
        for path in ["/stream-long", "/stream-short"] {
            let outcome = async {
                let resp = client
                    .request(get(&server.url(path)))
                    .await
                    .map_err(|e| format!("{e:?}"))?;
                resp.into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .map_err(|e| format!("{e:?}"))
            };
            match tokio::time::timeout(Duration::from_secs(20), outcome)
                .await
                .unwrap()
            {
                Ok(body) => assert_eq!(&body[..], b"abcdef", "{path}"),
                Err(e) => println!("{path}: broke off as it should: {e:?}"),
            }
        }
        assert_eq!(
            send(&client, get(&server.url("/next"))).await.text(),
            "next"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn head_reports_the_length_a_get_would_have() {
    let server = Builder::new("http.php").workers(1).start().await;
    let (raw, _) = raw_exchange(
        server.addr,
        b"HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        20,
    )
    .await;
    assert_eq!(raw_status(&raw), 200, "{raw}");
    assert!(
        raw.to_ascii_lowercase().contains("content-length: 13\r\n"),
        "{raw}"
    );
    assert!(raw.ends_with("\r\n\r\n"), "HEAD with a body: {raw:?}");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Uploads

#[tokio::test]
async fn multipart_uploads_reach_php_and_temp_files_are_removed_after() {
    let server = Builder::new("http.php")
        .set("http.uploads.forbid", r#"[".exe"]"#)
        .start()
        .await;
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut files: Vec<(&str, Option<&str>, &str, &[u8])> = vec![
        ("title", None, "", b"My files"),
        ("avatar", Some("me.png"), "image/png", b"\x89PNG fake"),
        ("docs[]", Some("a.txt"), "text/plain", b"first doc"),
        ("docs[]", Some("b.bin"), "application/octet-stream", &big),
        ("deep[inner][file]", Some("c.txt"), "text/plain", b"nested"),
    ];
    let body = multipart("XyZb0undary", &files);
    let r = send(
        &h1(),
        post(
            &server.url("/upload"),
            "multipart/form-data; boundary=XyZb0undary",
            body.clone(),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let list = r.json();
    let by_field = |f: &str| -> Value {
        list.as_array()
            .unwrap()
            .iter()
            .find(|u| u["field"] == f)
            .unwrap_or_else(|| panic!("{f} missing in {list}"))
            .clone()
    };
    for (field, name, data) in [
        ("avatar", "me.png", &b"\x89PNG fake"[..]),
        ("docs[0]", "a.txt", b"first doc"),
        ("docs[1]", "b.bin", &big),
        ("deep[inner][file]", "c.txt", b"nested"),
    ] {
        let u = by_field(field);
        assert_eq!(u["name"], name, "{u}");
        assert_eq!(u["size"], data.len(), "{u}");
        assert_eq!(u["error"], 0, "{u}");
        assert_eq!(
            u["tmp_exists"], true,
            "temp file missing during the request: {u}"
        );
        assert_eq!(u["sha256"], sha256_hex(data), "{u}");
    }

    // The non-file fields arrive as the parsed body; a forbidden extension is error 8
    // (UPLOAD_ERR_EXTENSION) with nothing stored.
    files.push(("bad", Some("evil.EXE"), "application/x-msdownload", b"MZ"));
    let body = multipart("XyZb0undary", &files);
    let r = send(
        &h1(),
        post(
            &server.url("/echo"),
            "multipart/form-data; boundary=XyZb0undary",
            body,
        ),
    )
    .await;
    let v = r.json();
    assert_eq!(v["parsedBody"], json!({"title": "My files"}));
    let uploads = v["uploads"].as_array().unwrap();
    assert_eq!(uploads.len(), 5, "{v}");
    let bad = uploads.iter().find(|u| u["field"] == "bad").unwrap();
    assert_eq!(bad["error"], 8, "forbidden extension: {bad}");
    assert_eq!(bad["size"], 0, "{bad}");
    assert_eq!(bad["name"], "evil.EXE", "{bad}");

    // Every temp file is gone once the responses are done.
    let uploads = server.uploads_dir();
    common::poll::emptied(&uploads, 10, "temp files left").await;
    server.stop().await;
}

#[tokio::test]
async fn upload_errors_no_tmp_dir_and_allow_list() {
    let builder = Builder::new("http.php").workers(1);
    let missing = builder.dir().join("no-such-dir");
    let server = builder
        .set("http.uploads.dir", missing.display())
        .set("http.uploads.allow", r#"[".txt"]"#)
        .start()
        .await;
    let body = multipart(
        "bb",
        &[
            ("ok", Some("a.txt"), "text/plain", b"text"),
            ("no", Some("b.jpg"), "image/jpeg", b"jpeg"),
        ],
    );
    let r = send(
        &h1(),
        post(
            &server.url("/echo"),
            "multipart/form-data; boundary=bb",
            body,
        ),
    )
    .await;
    let v = r.json();
    let error = |field: &str| {
        v["uploads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["field"] == field)
            .unwrap_or_else(|| panic!("{field}: {v}"))["error"]
            .clone()
    };
    assert_eq!(error("ok"), 6, "UPLOAD_ERR_NO_TMP_DIR: {v}");
    assert_eq!(error("no"), 8, "UPLOAD_ERR_EXTENSION: {v}");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Streaming

#[tokio::test]
async fn streamed_response_arrives_chunk_by_chunk() {
    let server = Builder::new("http.php")
        .workers(1)
        .set("http.http2.h2c", "true")
        .start()
        .await;
    for client in [h1(), h2c()] {
        let resp = client
            .request(get(&server.url("/stream?chunks=3&delay_ms=1000")))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let mut body = resp.into_body();
        let mut got = Vec::new();
        let mut times = Vec::new();
        while let Some(frame) = tokio::time::timeout(Duration::from_secs(30), body.frame())
            .await
            .unwrap()
        {
            if let Ok(data) = frame.unwrap().into_data() {
                got.extend_from_slice(&data);
                times.push((Instant::now(), got.len()));
            }
        }
        assert_eq!(got, b"chunk-1\nchunk-2\nchunk-3\n");
        let first = times.iter().find(|(_, n)| *n >= 8).unwrap().0;
        let last = times.last().unwrap().0;
        // PHP produces the last chunk 2 s after the first: if the first arrived with
        // the last, the response was buffered.
        assert!(
            last - first >= Duration::from_millis(1000),
            "the first chunk arrived only {:?} before the last",
            last - first
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn client_disconnect_mid_stream_stops_the_worker_which_is_reused() {
    let server = Builder::new("http.php")
        .workers(1)
        .set("http.http2.h2c", "true")
        .start()
        .await;
    let client = h1();
    let pid = pid_via(&client, &server).await;
    for h2 in [false, true] {
        let streaming = if h2 { h2c() } else { h1() };
        // Endless without STOP: 100000 chunks, 20 ms apart.
        let resp = streaming
            .request(get(&server.url("/stream?chunks=100000&delay_ms=20")))
            .await
            .unwrap();
        let mut body = resp.into_body();
        let first = tokio::time::timeout(Duration::from_secs(20), body.frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(first.into_data().unwrap(), "chunk-1\n");
        drop(body);
        drop(streaming);
        // The only worker answers again, soon, and it is the same process.
        let started = Instant::now();
        let again = pid_via(&client, &server).await;
        assert_eq!(
            again, pid,
            "h2={h2}: the worker was replaced instead of stopped"
        );
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "h2={h2}: the stream was not stopped ({:?})",
            started.elapsed()
        );
    }
    server.stop().await;
}

/// Reads a body to its end; `Err` when it broke off.
async fn drain(mut body: hyper::body::Incoming) -> Result<Vec<u8>, String> {
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(30), body.frame()).await {
            Err(_) => panic!("the body neither ended nor broke in 30 s"),
            Ok(None) => return Ok(got),
            Ok(Some(Err(e))) => return Err(format!("{e:?}")),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    got.extend_from_slice(&data);
                }
            }
        }
    }
}

#[tokio::test]
async fn a_stream_whose_worker_dies_or_overruns_breaks_off_and_the_worker_is_replaced() {
    let server = Builder::new("http.php")
        .workers(1)
        .set("http.pool.supervisor.exec_ttl", "2s")
        .start()
        .await;
    let client = h1();
    // Killed midway.
    let pid = pid_via(&client, &server).await;
    let resp = client
        .request(get(&server.url("/stream?chunks=100000&delay_ms=20")))
        .await
        .unwrap();
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "chunk-1\n");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(
        drain(body).await.is_err(),
        "a broken stream looked complete"
    );
    let next = pid_via(&client, &server).await;
    assert_ne!(next, pid);

    // A frame later than exec_ttl.
    let resp = client
        .request(get(&server.url("/stream?chunks=3&delay_ms=5000")))
        .await
        .unwrap();
    assert!(drain(resp.into_body()).await.is_err());
    assert!(
        eventually(10, || !alive(next)).await,
        "the overrunning worker lives"
    );
    assert_ne!(pid_via(&client, &server).await, next);
    server.stop().await;
}

#[tokio::test]
async fn uploads_live_until_a_streamed_response_ends_and_streams_finish_on_shutdown() {
    let mut server = Builder::new("http.php").workers(1).start().await;
    let body = multipart(
        "bb",
        &[("f", Some("a.txt"), "text/plain", b"kept while streaming")],
    );
    let resp = h1()
        .request(post(
            &server.url("/stream?chunks=4&delay_ms=700"),
            "multipart/form-data; boundary=bb",
            body,
        ))
        .await
        .unwrap();
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "chunk-1\n");
    let uploads = server.uploads_dir();
    assert_eq!(std::fs::read_dir(&uploads).unwrap().count(), 1);
    // Shutdown mid-stream: the stream still ends whole.
    server.begin_shutdown();
    let rest = drain(body)
        .await
        .expect("the stream was cut by the shutdown");
    assert_eq!(rest, b"chunk-2\nchunk-3\nchunk-4\n");
    common::poll::emptied(&uploads, 10, "temp file left after the stream").await;
    server.wait_stopped(30).await;
}

// ---------------------------------------------------------------------------------------
// Protocols

#[tokio::test]
async fn h2c_prior_knowledge_serves_concurrent_streams() {
    let server = Builder::new("http.php")
        .set("http.http2.h2c", "true")
        .start()
        .await;
    let client = h2c();
    let r = send(&client, get(&server.url("/echo?x=1"))).await;
    assert_eq!(r.version, http::Version::HTTP_2);
    let v = r.json();
    assert_eq!(v["protocol"], "2");
    assert!(
        v["uri"]
            .as_str()
            .unwrap()
            .starts_with(&format!("http://{}/echo", server.addr))
    );

    let all = futures_util::future::join_all((0..10).map(|i| {
        let client = client.clone();
        let url = server.url(&format!("/sleep?ms={}", 50 + i));
        async move { send(&client, get(&url)).await }
    }))
    .await;
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), format!("slept {} ms", 50 + i));
    }
    server.stop().await;

    // h2c off (RoadRunner's default): the plain listener speaks HTTP/1.x only.
    let server = Builder::new("http.php").workers(1).start().await;
    let refused = tokio::time::timeout(
        Duration::from_secs(20),
        h2c().request(get(&server.url("/"))),
    )
    .await
    .expect("no answer in 20 s");
    assert!(refused.is_err(), "h2c served with http2.h2c off");
    assert_eq!(fetch(&server.url("/")).await.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn tls_with_a_self_signed_certificate_and_alpn() {
    let builder = Builder::new("http.php");
    let (cert, key, ca) = self_signed(builder.dir());
    let server = builder
        .set("http.ssl.address", "127.0.0.1:0")
        .set("http.ssl.cert", cert.display())
        .set("http.ssl.key", key.display())
        .start()
        .await;
    let https = server.https.unwrap();
    let url = format!("https://localhost:{}/echo?tls=1", https.port());

    let tls = tls_connect(https, &ca, &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let r = send_on(tls, true, get(&url)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.version, http::Version::HTTP_2);
    let v = r.json();
    assert_eq!(v["protocol"], "2");
    assert_eq!(
        v["uri"],
        format!("https://localhost:{}/echo?tls=1", https.port())
    );

    let tls = tls_connect(https, &ca, &[b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let r = send_on(tls, false, get(&url)).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["protocol"], "1.1");
    assert!(v["uri"].as_str().unwrap().starts_with("https://"), "{v}");

    // The plain listener is still plain.
    assert_eq!(fetch(&server.url("/")).await.status, 200);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Static files, compression, proxies, access logs

fn static_site(dir: &std::path::Path) -> std::path::PathBuf {
    let public = dir.join("public");
    std::fs::create_dir_all(public.join("css")).unwrap();
    std::fs::write(public.join("css/app.css"), "body { color: red }").unwrap();
    std::fs::write(public.join("index.php"), "<?php echo 'source';").unwrap();
    std::fs::write(public.join("secret.env"), "PASSWORD=hunter2").unwrap();
    std::fs::write(dir.join("outside.txt"), "OUTSIDE-SECRET").unwrap();
    std::os::unix::fs::symlink(dir.join("outside.txt"), public.join("escape.txt")).unwrap();
    std::os::unix::fs::symlink(public.join("index.php"), public.join("source.txt")).unwrap();
    std::os::unix::fs::symlink(public.join("secret.env"), public.join("env.txt")).unwrap();
    std::os::unix::fs::symlink(dir, public.join("up")).unwrap();
    public
}

#[tokio::test]
async fn static_files_with_etag_never_php_never_outside() {
    let builder = Builder::new("http.php");
    let public = static_site(builder.dir());
    let server = builder
        .set("http.middleware", "[static]")
        .set("http.static.dir", public.display())
        .set("http.static.forbid", r#"[".env"]"#)
        .set("http.static.calculate_etag", "true")
        .start()
        .await;
    let client = h1();
    let r = send(&client, get(&server.url("/css/app.css"))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "body { color: red }");
    assert_eq!(r.header("content-type"), Some("text/css"));
    let etag = r.header("etag").expect("an ETag").to_string();
    let r = send(
        &client,
        Request::get(server.url("/css/app.css"))
            .header("if-none-match", &etag)
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    let r = send(
        &client,
        Request::head(server.url("/css/app.css"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());

    // Not a file on disk (or not allowed): falls through to PHP.
    let r = send(&client, get(&server.url("/missing.css"))).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (404, "not found"));
    let r = send(&client, get(&server.url("/echo"))).await;
    assert_eq!(r.json()["path"], "/echo");

    // Traversal variants, sent as raw bytes so no client normalises them.
    for path in [
        "/index.php",
        "/INDEX.PHP",
        "/index.php%00.css",
        "/index.php/",
        "/source.txt",
        "/secret.env",
        "/env.txt",
        "/escape.txt",
        "/up/outside.txt",
        "/../outside.txt",
        "/css/../../outside.txt",
        "/%2e%2e/outside.txt",
        "/%2E%2E/outside.txt",
        "/.%2e/outside.txt",
        "/%2e%2e%2foutside.txt",
        "/css/..%2f..%2foutside.txt",
        "/css%2f..%2f..%2foutside.txt",
        "/%252e%252e/outside.txt",
        "/css/..\\..\\outside.txt",
        "/%c0%ae%c0%ae/outside.txt",
        "//outside.txt",
        "/./../outside.txt",
    ] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let (raw, _) = raw_exchange(server.addr, req.as_bytes(), 20).await;
        assert!(!raw.is_empty(), "{path}: no answer");
        for secret in ["OUTSIDE-SECRET", "hunter2", "<?php", "source"] {
            assert!(!raw.contains(secret), "{path} served {secret}: {raw}");
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn static_files_are_off_without_the_static_middleware() {
    let builder = Builder::new("http.php").workers(1);
    let public = static_site(builder.dir());
    let server = builder
        .set("http.static.dir", public.display())
        .start()
        .await;
    let r = fetch(&server.url("/css/app.css")).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (404, "not found"));
    server.stop().await;
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[tokio::test]
async fn gzip_when_the_middleware_is_on_and_the_client_asks() {
    let on = Builder::new("http.php")
        .workers(1)
        .set("http.middleware", "[gzip]")
        .start()
        .await;
    let off = Builder::new("http.php").workers(1).start().await;
    let client = h1();
    let long = "x".repeat(2000);
    let ask = |server: &Server| {
        Request::get(server.url(&format!("/echo?long={long}")))
            .header("accept-encoding", "gzip")
            .body(Full::default())
            .unwrap()
    };
    let r = send(&client, ask(&on)).await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let plain = gunzip(&r.body);
    assert!(r.body.len() < plain.len() / 2, "not compressed");
    let v: Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(v["query"]["long"], long);

    // No Accept-Encoding: identity.
    let r = send(&client, get(&on.url(&format!("/echo?long={long}")))).await;
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.json()["query"]["long"], long);

    // Middleware off: identity whatever the client asks.
    let r = send(&client, ask(&off)).await;
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.json()["query"]["long"], long);

    // A streamed response is compressed as it flows: every chunk arrives when PHP
    // sends it, and the stream ends cleanly (the gzip trailer arrives).
    for _ in 0..2 {
        let req = Request::get(on.url("/stream?chunks=3&delay_ms=1000"))
            .header("accept-encoding", "gzip")
            .body(Full::default())
            .unwrap();
        let resp = client.request(req).await.unwrap();
        assert_eq!(resp.headers()["content-encoding"], "gzip");
        let mut body = resp.into_body();
        let mut got = Vec::new();
        let mut times = Vec::new();
        while let Some(frame) = tokio::time::timeout(Duration::from_secs(30), body.frame())
            .await
            .unwrap()
        {
            let frame = frame.unwrap_or_else(|e| panic!("the stream broke: {e:?}"));
            if let Ok(data) = frame.into_data() {
                got.extend_from_slice(&data);
                times.push(Instant::now());
            }
        }
        assert_eq!(gunzip(&got), b"chunk-1\nchunk-2\nchunk-3\n");
        assert!(
            *times.last().unwrap() - times[0] >= Duration::from_millis(1000),
            "the compressed stream was buffered"
        );
    }
    on.stop().await;
    off.stop().await;
}

#[tokio::test]
async fn forwarded_for_is_honoured_only_from_a_trusted_peer() {
    let echo_ip = |server: &Server, header: (&'static str, &'static str)| {
        let req = Request::get(server.url("/echo"))
            .header(header.0, header.1)
            .body(Full::default())
            .unwrap();
        async move { send(&h1(), req).await.json()["remoteAddr"].clone() }
    };
    // The peer (127.0.0.1) is in RoadRunner's default trusted subnets.
    let trusting = Builder::new("http.php")
        .workers(1)
        .set("http.middleware", "[proxy_ip_parser]")
        .start()
        .await;
    assert_eq!(
        echo_ip(&trusting, ("x-forwarded-for", "203.0.113.7")).await,
        "203.0.113.7"
    );
    assert_eq!(
        echo_ip(&trusting, ("x-real-ip", "198.51.100.2")).await,
        "198.51.100.2"
    );
    assert_eq!(
        echo_ip(&trusting, ("forwarded", "for=\"[2001:db8::1]:4711\"")).await,
        "2001:db8::1"
    );
    // A peer outside the trusted subnets is never overridden.
    let strict = Builder::new("http.php")
        .workers(1)
        .set("http.middleware", "[proxy_ip_parser]")
        .set("http.trusted_subnets", r#"["10.0.0.0/8"]"#)
        .start()
        .await;
    assert_eq!(
        echo_ip(&strict, ("x-forwarded-for", "203.0.113.7")).await,
        "127.0.0.1"
    );
    assert_eq!(
        echo_ip(&strict, ("x-real-ip", "198.51.100.2")).await,
        "127.0.0.1"
    );
    // Without the proxy_ip_parser middleware (RoadRunner's default) nobody is believed.
    let plain = Builder::new("http.php").workers(1).start().await;
    assert_eq!(
        echo_ip(&plain, ("x-forwarded-for", "203.0.113.7")).await,
        "127.0.0.1"
    );
    trusting.stop().await;
    strict.stop().await;
    plain.stop().await;
}

/// Collects formatted log output.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn access_log_lines_name_method_path_status() {
    // A current-thread runtime: every task of the app runs on this thread, so a
    // thread-local subscriber sees them all.
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("pacer::access=info")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = Builder::new("http.php")
        .workers(1)
        .set("http.access_logs", "true")
        .start()
        .await;
    assert_eq!(fetch(&server.url("/echo?q=1")).await.status, 200);
    assert_eq!(fetch(&server.url("/status/418")).await.status, 418);
    let log = capture.text();
    let line = |needle: &str| {
        log.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no access log line with {needle}: {log}"))
            .to_string()
    };
    let echo = line("path=/echo");
    assert!(echo.contains("method=GET"), "{echo}");
    assert!(echo.contains("status=200"), "{echo}");
    assert!(echo.contains("remote=127.0.0.1"), "{echo}");
    assert!(line("path=/status/418").contains("status=418"));
    server.stop().await;

    let quiet = Capture::default();
    let writer = quiet.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("pacer::access=info")
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let server = Builder::new("http.php").workers(1).start().await;
    assert_eq!(fetch(&server.url("/echo")).await.status, 200);
    assert_eq!(quiet.text(), "", "access logs are off by default");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Error mapping (docs/design.md §2.2)

/// Sends `path` in the background and waits until a worker is busy with it.
async fn busy_with(server: &Server, path: &str) -> tokio::task::JoinHandle<Reply> {
    let url = server.url(path);
    let request = tokio::spawn(async move { fetch(&url).await });
    wait_working(server, 1).await;
    request
}

/// The next request is refused with 503 and a Retry-After, within 5 s.
async fn refused_at_once(server: &Server) {
    let started = Instant::now();
    let r = fetch(&server.url("/")).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn no_free_worker_within_allocate_timeout_is_503_with_retry_after() {
    let server = Builder::new("http.php")
        .workers(1)
        .set("http.pool.allocate_timeout", "1s")
        .start()
        .await;
    let busy = busy_with(&server, "/sleep?ms=6000").await;
    refused_at_once(&server).await;
    assert_eq!(busy.await.unwrap().status, 200);
    server.stop().await;
}

#[tokio::test]
async fn full_queue_is_503_at_once() {
    let server = Builder::new("http.php")
        .workers(1)
        .set("http.pool.max_queue_size", "1")
        .start()
        .await;
    let busy = busy_with(&server, "/sleep?ms=6000").await;
    let url = server.url("/");
    let queued = tokio::spawn(async move { fetch(&url).await });
    assert!(
        eventually(20, || server.pool().snapshot().queue_depth == 1).await,
        "the second request never queued"
    );
    // At once, not after allocate_timeout (20 s) nor after the busy request (6 s).
    refused_at_once(&server).await;
    assert_eq!(busy.await.unwrap().status, 200);
    assert_eq!(queued.await.unwrap().status, 200);
    server.stop().await;
}

#[tokio::test]
async fn exec_ttl_is_504_and_the_worker_is_replaced() {
    let server = Builder::new("http.php")
        .workers(1)
        .set("http.pool.supervisor.exec_ttl", "1s")
        .set("http.pool.supervisor.watch_tick", "1s")
        .start()
        .await;
    let client = h1();
    let pid = pid_via(&client, &server).await;
    let started = Instant::now();
    let r = send(&client, get(&server.url("/sleep?ms=20000"))).await;
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(
        eventually(10, || !alive(pid)).await,
        "the overrunning worker lives"
    );
    let next = pid_via(&client, &server).await;
    assert_ne!(next, pid);
    server.stop().await;
}

#[tokio::test]
async fn worker_killed_mid_request_is_500_and_replaced() {
    let server = Builder::new("http.php").workers(1).start().await;
    let client = h1();
    let pid = pid_via(&client, &server).await;
    let victim = busy_with(&server, "/sleep?ms=20000").await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let r = victim.await.unwrap();
    assert_eq!(r.status, 500, "{}", r.text());
    let next = pid_via(&client, &server).await;
    assert_ne!(next, pid);
    assert!(server.pool().wait_ready(1, Duration::from_secs(20)).await);
    server.stop().await;
}

#[tokio::test]
async fn php_error_is_500_with_the_text_only_in_debug_mode() {
    let server = Builder::new("http.php").workers(1).start().await;
    let r = fetch(&server.url("/error")).await;
    assert_eq!(r.status, 500);
    assert!(
        !r.text().contains("boom"),
        "error text leaked: {}",
        r.text()
    );
    // The worker survives an error frame.
    assert_eq!(fetch(&server.url("/")).await.status, 200);
    server.stop().await;

    // Debug mode: a fresh worker per request, none kept in between; still ready.
    let server = Builder::new("http.php")
        .workers(1)
        .set("http.pool.debug", "true")
        .no_wait()
        .start()
        .await;
    let r = fetch(&server.status_url("/ready")).await;
    assert_eq!(r.status, 200, "debug mode: {}", r.text());
    let r = fetch(&server.url("/error")).await;
    assert_eq!(r.status, 500);
    assert!(r.text().contains("boom from /error"), "{}", r.text());
    server.stop().await;

    let server = Builder::new("http.php")
        .workers(1)
        .set("http.internal_error_code", "599")
        .start()
        .await;
    assert_eq!(fetch(&server.url("/error")).await.status.as_u16(), 599);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Status endpoints and draining

#[tokio::test]
async fn health_and_ready_answer_like_roadrunner_even_when_busy() {
    let server = Builder::new("http.php").workers(1).start().await;
    let ok = json!([{"plugin_name": "http", "error_message": "", "status_code": 200}]);
    for path in [
        "/health",
        "/ready",
        "/health?plugin=http",
        "/ready?plugin=http",
    ] {
        let r = fetch(&server.status_url(path)).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.json(), ok, "{path}");
    }
    // A fully busy pool is still ready.
    let busy = busy_with(&server, "/sleep?ms=3000").await;
    assert_eq!(fetch(&server.status_url("/ready")).await.status, 200);
    assert_eq!(fetch(&server.status_url("/health")).await.status, 200);
    assert_eq!(busy.await.unwrap().status, 200);
    assert_eq!(fetch(&server.status_url("/nope")).await.status, 404);
    server.stop().await;
}

#[tokio::test]
async fn workers_that_cannot_start_make_ready_503_with_the_reason_and_requests_503() {
    let server = Builder::with_command(vec![
        php(),
        "-r".into(),
        "fwrite(STDERR, 'broken app'); exit(3);".into(),
    ])
    .workers(1)
    .set("http.pool.allocate_timeout", "1s")
    .no_wait()
    .start()
    .await;
    let ready = server.status_url("/ready");
    assert!(
        eventually_async(20, || async {
            let r = fetch(&ready).await;
            r.status == 503
                && r.json()[0]["error_message"]
                    .as_str()
                    .unwrap()
                    .starts_with("no workers: ")
        })
        .await,
        "/ready does not tell why: {}",
        fetch(&ready).await.text()
    );
    // Alive, though: restarting the process would not help.
    assert_eq!(fetch(&server.status_url("/health")).await.status, 200);
    let r = fetch(&server.url("/")).await;
    assert!(
        r.status == 503 || r.status == 500,
        "{} {}",
        r.status,
        r.text()
    );
    server.stop().await;
}

#[tokio::test]
async fn draining_turns_ready_503_keeps_health_200_and_serves_until_the_delay_ends() {
    let mut server = Builder::new("http.php")
        .workers(1)
        .set("pacer.shutdown.delay", "2s")
        .start()
        .await;
    let pids = server.worker_pids();
    let in_flight = busy_with(&server, "/sleep?ms=3000").await;
    server.begin_shutdown();
    let status = server.status_url("/ready");
    assert!(
        eventually_async(5, || async { fetch(&status).await.status == 503 }).await,
        "/ready never turned 503"
    );
    let r = fetch(&server.status_url("/ready")).await;
    assert_eq!(r.json()[0]["status_code"], 503);
    assert_eq!(fetch(&server.status_url("/health")).await.status, 200);
    // Still serving new connections during the delay.
    assert_eq!(fetch(&server.url("/")).await.status, 200);
    // Then the listener closes.
    let addr = server.addr;
    assert!(
        eventually_async(20, || async {
            tokio::net::TcpStream::connect(addr).await.is_err()
        })
        .await,
        "the HTTP listener never closed"
    );
    assert_eq!(in_flight.await.unwrap().status, 200);
    server.wait_stopped(30).await;
    assert!(eventually(10, || pids.iter().all(|p| !alive(*p))).await);
}

// ---------------------------------------------------------------------------------------
// Hot reload

#[tokio::test]
async fn hot_reload_resets_workers_under_load_without_failing_a_request() {
    let builder = Builder::new("http.php");
    let worker = builder.dir().join("worker.php");
    let real = common::worker_script("http.php");
    std::fs::write(&worker, format!("<?php\nrequire '{real}';\n")).unwrap();
    let server = builder
        .command(vec![php(), worker.display().to_string()])
        .set("reload.interval", "1s")
        .set("reload.patterns", r#"[".php"]"#)
        .set("reload.services.http.dirs", r#"["."]"#)
        .start()
        .await;
    let before = server.worker_pids();
    assert_eq!(before.len(), 2);

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..3 {
        let (stop, url) = (stop.clone(), server.url("/pid"));
        load.push(tokio::spawn(async move {
            let client = h1();
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = send(&client, get(&url)).await;
                seen.push((r.status, r.text()));
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(&worker, format!("<?php\n// changed\nrequire '{real}';\n")).unwrap();
    let replaced = eventually(40, || {
        let now = server.worker_pids();
        now.len() == 2 && now.iter().all(|p| !before.contains(p))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut seen = Vec::new();
    for l in load {
        seen.extend(l.await.unwrap());
    }
    assert!(
        replaced,
        "workers not replaced: {before:?} → {:?}",
        server.worker_pids()
    );
    let failed: Vec<_> = seen.iter().filter(|(s, _)| !s.is_success()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {failed:?}",
        failed.len(),
        seen.len()
    );
    let pids: std::collections::BTreeSet<u32> =
        seen.iter().map(|(_, t)| t.parse().unwrap()).collect();
    assert!(pids.iter().any(|p| before.contains(p)), "{pids:?}");
    assert!(pids.iter().any(|p| !before.contains(p)), "{pids:?}");
    server.stop().await;
}
