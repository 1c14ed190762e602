//! The wire contract, pinned independently of our PHP library: `raw-http.php` is written
//! only against docs/wire-protocol.md (its own frames, CRC and JSON) and echoes the request
//! context and body it received. The same requests go through it over pipes, a TCP
//! relay and a unix socket relay, and the context is checked key by key against
//! docs/wire-protocol.md §3.3–3.5 and §10.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write as _;

use bytes::Bytes;
use common::php;
use common::serve::*;
use http::Request;
use http_body_util::Full;
use serde_json::{Value, json};

fn sha256_hex(data: &[u8]) -> String {
    let mut child = std::process::Command::new(php())
        .args(["-r", "echo hash('sha256', stream_get_contents(STDIN));"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
}

/// The basic requests, each checked against the spec; `what` names the relay.
async fn basic_requests(server: &Server, what: &str) {
    let client = h1();
    let host = server.addr.to_string();

    // GET: absolute uri, canonical header names, no Host, cookies unescaped, raw query.
    let req = Request::get(server.url("/some/path?q=1&x[]=2&e=%20"))
        .header("x-custom-header", "v1")
        .header("x-multi", "a")
        .header("x-multi", "b")
        .header("cookie", "a=1; b=x%20y")
        .body(Full::default())
        .unwrap();
    let r = send(&client, req).await;
    assert_eq!(r.status, 200, "{what}");
    assert_eq!(r.header("content-type"), Some("application/json"), "{what}");
    let v = r.json();
    assert_eq!(v["remoteAddr"], "127.0.0.1", "{what}");
    assert_eq!(v["protocol"], "HTTP/1.1", "{what}");
    assert_eq!(v["method"], "GET", "{what}");
    assert_eq!(
        v["uri"],
        format!("http://{host}/some/path?q=1&x[]=2&e=%20"),
        "{what}"
    );
    assert_eq!(v["rawQuery"], "q=1&x[]=2&e=%20", "{what}");
    assert_eq!(v["headers"]["X-Custom-Header"], json!(["v1"]), "{what}");
    assert_eq!(v["headers"]["X-Multi"], json!(["a", "b"]), "{what}");
    assert_eq!(v["headers"]["Cookie"], json!(["a=1; b=x%20y"]), "{what}");
    assert!(v["headers"].get("Host").is_none(), "{what}: {v}");
    assert_eq!(v["cookies"], json!({"a": "1", "b": "x y"}), "{what}");
    assert_eq!(v["parsed"], false, "{what}");
    assert_eq!(v["uploads"], Value::Null, "{what}");
    assert_eq!(v["attributes"], json!({}), "{what}");
    assert_eq!(v["bodyLength"], 0, "{what}");

    // urlencoded: parsed, the body is the JSON data tree.
    let req = Request::post(server.url("/form"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from_static(
            b"a=1&b[]=2&b[]=3&c[d]=e&plain=1&plain=2",
        )))
        .unwrap();
    let v = send(&client, req).await.json();
    assert_eq!(v["parsed"], true, "{what}");
    let tree: Value = serde_json::from_str(v["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        tree,
        json!({"a": "1", "b": ["2", "3"], "c": {"d": "e"}, "plain": "2"}),
        "{what}"
    );

    // Raw bytes, every value, exactly (a chunked request: no Transfer-Encoding header).
    let body: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
    let stream = futures_util::stream::iter(
        body.chunks(100_000)
            .map(|c| {
                Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::copy_from_slice(c)))
            })
            .collect::<Vec<_>>(),
    );
    let req = Request::put(server.url("/raw"))
        .header("content-type", "application/octet-stream")
        .body(http_body_util::StreamBody::new(stream))
        .unwrap();
    let streaming =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let resp = streaming.request(req).await.unwrap();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["method"], "PUT", "{what}");
    assert_eq!(v["parsed"], false, "{what}");
    assert_eq!(v["bodyLength"], body.len(), "{what}");
    assert_eq!(v["bodySha256"], sha256_hex(&body), "{what}");
    assert!(
        v["headers"].get("Transfer-Encoding").is_none(),
        "{what}: {v}"
    );

    // multipart: fields as the JSON tree, files in `uploads` with a temp file.
    let mp = b"--bb\r\nContent-Disposition: form-data; name=\"field\"\r\n\r\nvalue\r\n\
--bb\r\nContent-Disposition: form-data; name=\"files[doc]\"; filename=\"a.txt\"\r\n\
Content-Type: text/plain\r\n\r\nhello upload\r\n--bb--\r\n";
    let req = Request::post(server.url("/upload"))
        .header("content-type", "multipart/form-data; boundary=bb")
        .body(Full::new(Bytes::from_static(mp)))
        .unwrap();
    let v = send(&client, req).await.json();
    assert_eq!(v["parsed"], true, "{what}");
    let tree: Value = serde_json::from_str(v["body"].as_str().unwrap()).unwrap();
    assert_eq!(tree, json!({"field": "value"}), "{what}");
    let doc = &v["uploads"]["files"]["doc"];
    assert_eq!(doc["name"], "a.txt", "{what}: {v}");
    assert_eq!(doc["mime"], "text/plain", "{what}");
    assert_eq!(doc["size"], 12, "{what}");
    assert_eq!(doc["error"], 0, "{what}");
    let tmp = doc["tmpName"].as_str().unwrap();
    assert!(
        tmp.starts_with(server.uploads_dir().to_str().unwrap()),
        "{what}: {tmp}"
    );

    // HEAD: no body back; OPTIONS: no body forwarded.
    let r = send(
        &client,
        Request::head(server.url("/h"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{what}");
    assert!(r.body.is_empty(), "{what}");
    let r = send(
        &client,
        Request::options(server.url("/o"))
            .body(Full::new(Bytes::from_static(b"not forwarded")))
            .unwrap(),
    )
    .await;
    let v = r.json();
    assert_eq!(v["method"], "OPTIONS", "{what}");
    assert_eq!(v["bodyLength"], 0, "{what}");

    // HTTP/2: protocol, and split cookie fields joined back into one.
    let req = Request::get(server.url("/h2?x=1"))
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .body(Full::default())
        .unwrap();
    let v = send(&h2c(), req).await.json();
    assert_eq!(v["protocol"], "HTTP/2.0", "{what}");
    assert_eq!(v["uri"], format!("http://{host}/h2?x=1"), "{what}");
    assert_eq!(v["headers"]["Cookie"], json!(["a=1; b=2"]), "{what}");
    assert_eq!(v["cookies"], json!({"a": "1", "b": "2"}), "{what}");
}

#[tokio::test]
async fn raw_worker_over_pipes() {
    let server = Builder::new("raw-http.php")
        .set("http.http2.h2c", "true")
        .start()
        .await;
    basic_requests(&server, "pipes").await;
    server.stop().await;
}

#[tokio::test]
async fn raw_worker_over_a_tcp_relay() {
    let server = Builder::new("raw-http.php")
        .set("http.http2.h2c", "true")
        .set("server.relay", "tcp://127.0.0.1:0")
        .start()
        .await;
    basic_requests(&server, "tcp").await;
    server.stop().await;
}

#[tokio::test]
async fn raw_worker_over_a_unix_socket_relay() {
    let builder = Builder::new("raw-http.php").set("http.http2.h2c", "true");
    let socket = builder.dir().join("relay.sock");
    let server = builder
        .set("server.relay", format!("unix://{}", socket.display()))
        .start()
        .await;
    basic_requests(&server, "unix").await;
    server.stop().await;
}
