//! RoadRunner compatibility through RoadRunner's own PHP semantics: `rr-compat.php`
//! decodes what pacer sends the way roadrunner-php/http (3.4 and 2.2) does —
//! `JSON_THROW_ON_ERROR` on the context and on a parsed body, `(array)` uploads — and
//! answers the way apps on it do. Each test is one of the differences found when apps
//! built on those libraries were moved from RoadRunner to pacer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bytes::Bytes;
use common::binary::{PacerBin, Ports, RrYaml, children_of};
use common::serve::*;
use http::Request;
use http_body_util::Full;
use serde_json::json;

fn post(
    server: &Server,
    path: &str,
    content_type: &str,
    body: &'static [u8],
) -> Request<Full<Bytes>> {
    Request::post(server.url(path))
        .header("content-type", content_type)
        .body(Full::new(Bytes::from_static(body)))
        .unwrap()
}

/// Bug 1: a parsed body with no fields reached PHP as an empty body, which
/// `getParsedBody()` cannot decode (the app never saw the request). RoadRunner sends
/// `{}`.
#[tokio::test]
async fn forms_without_fields_reach_php_as_an_empty_json_object() {
    let server = Builder::new("rr-compat.php").workers(1).start().await;
    let client = h1();
    let only_a_file = b"--bb\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.txt\"\r\n\
Content-Type: text/plain\r\n\r\nfile body\r\n--bb--\r\n";
    let cases: [(&str, &str, &'static [u8]); 4] = [
        (
            "only a file field (curl -F f=@x)",
            "multipart/form-data; boundary=bb",
            only_a_file,
        ),
        (
            "an empty multipart body",
            "multipart/form-data; boundary=bb",
            b"--bb--\r\n",
        ),
        (
            "an empty urlencoded body",
            "application/x-www-form-urlencoded",
            b"",
        ),
        (
            "an urlencoded body of separators",
            "application/x-www-form-urlencoded",
            b"&&",
        ),
    ];
    for (what, content_type, body) in cases {
        let r = send(&client, post(&server, "/form", content_type, body)).await;
        assert_eq!(r.status, 200, "{what}: {}", r.text());
        let v = r.json();
        assert_eq!(v["parsed"], true, "{what}");
        assert_eq!(v["parsedBody"], json!([]), "{what}: {v}");
    }
    // The file of the first case arrived with it.
    let r = send(
        &client,
        post(
            &server,
            "/form",
            "multipart/form-data; boundary=bb",
            only_a_file,
        ),
    )
    .await;
    let v = r.json();
    assert_eq!(v["uploads"]["f"]["name"], "x.txt", "{v}");
    assert_eq!(v["uploads"]["f"]["size"], 9, "{v}");
    // Fields still arrive as the tree.
    let r = send(
        &client,
        post(
            &server,
            "/form",
            "application/x-www-form-urlencoded",
            b"a=1&b[c]=2",
        ),
    )
    .await;
    assert_eq!(r.json()["parsedBody"], json!({"a": "1", "b": {"c": "2"}}));
    server.stop().await;
}

/// Bug 2: a worker that crashes or answers garbage gets `http.internal_error_code`
/// (RoadRunner's key, default 500), not 502.
#[tokio::test]
async fn a_crashed_or_garbling_worker_is_answered_with_internal_error_code() {
    let server = Builder::new("rr-compat.php").workers(1).start().await;
    let client = h1();
    for path in ["/crash", "/garbage"] {
        let r = send(&client, get(&server.url(path))).await;
        assert_eq!(r.status, 500, "{path}: {}", r.text());
    }
    // An app error (an error frame) is 500 too, and the server keeps serving.
    assert_eq!(send(&client, get(&server.url("/ok"))).await.status, 200);
    server.stop().await;

    let server = Builder::new("rr-compat.php")
        .workers(1)
        .set("http.internal_error_code", 555)
        .start()
        .await;
    for path in ["/crash", "/garbage"] {
        let r = send(&client, get(&server.url(path))).await;
        assert_eq!(r.status.as_u16(), 555, "{path}: {}", r.text());
    }
    server.stop().await;
}

/// Bug 3: a response without Content-Type gets PHP's `default_mimetype`, as PHP's
/// SAPIs and RoadRunner send it; one the app set is kept.
#[tokio::test]
async fn a_response_without_content_type_gets_text_html_utf8() {
    let server = Builder::new("rr-compat.php")
        .workers(1)
        .set("http.http2.h2c", true)
        .start()
        .await;
    for client in [h1(), h2c()] {
        let r = send(&client, get(&server.url("/no-type"))).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/html; charset=UTF-8"));
        assert_eq!(r.text(), "<p>no type</p>");
        let r = send(&client, get(&server.url("/ok"))).await;
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    server.stop().await;
}

/// Bug 4: a 304 carries no Content-Type, Content-Length or Transfer-Encoding (RFC 9110
/// §15.4.5, what Go's server drops), but keeps its validators and cache headers.
#[tokio::test]
async fn not_modified_drops_entity_headers_and_keeps_validators() {
    let server = Builder::new("rr-compat.php").workers(1).start().await;
    let (raw, _) = raw_exchange(
        server.addr,
        b"GET /not-modified HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        20,
    )
    .await;
    assert_eq!(raw_status(&raw), 304, "{raw}");
    let head = raw.to_ascii_lowercase();
    assert!(!head.contains("content-type"), "{raw}");
    assert!(!head.contains("content-length"), "{raw}");
    assert!(!head.contains("transfer-encoding"), "{raw}");
    assert!(head.contains("etag: \"v1\""), "{raw}");
    assert!(head.contains("cache-control: max-age=60"), "{raw}");
    server.stop().await;
}

fn many_headers(n: usize) -> String {
    (0..n).map(|i| format!("X-H{i}: value-{i}\r\n")).collect()
}

/// Bug 5: 150 header fields are a normal request for RoadRunner (Go limits bytes, not
/// fields); the limits are `pacer.http.max_header_count` and `max_header_bytes`.
#[tokio::test]
async fn requests_with_many_headers_reach_php_up_to_the_configured_limits() {
    let server = Builder::new("rr-compat.php").workers(1).start().await;
    let request = format!(
        "GET /ok HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{}\r\n",
        many_headers(150)
    );
    let (raw, _) = raw_exchange(server.addr, request.as_bytes(), 20).await;
    assert_eq!(raw_status(&raw), 200, "{raw}");
    // Host is not a header PHP sees; the other 150 (and Connection) are.
    assert!(raw.contains("\"headerCount\":151"), "{raw}");
    // A 200 KiB header is within Go's 1 MiB default too.
    let big = "b".repeat(200 << 10);
    let request =
        format!("GET /ok HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Big: {big}\r\n\r\n");
    let (raw, _) = raw_exchange(server.addr, request.as_bytes(), 20).await;
    assert_eq!(raw_status(&raw), 200, "{}", &raw[..raw.len().min(200)]);
    server.stop().await;

    let server = Builder::new("rr-compat.php")
        .workers(1)
        .set("http.http2.h2c", true)
        .set("pacer.http.max_header_count", 50)
        .set("pacer.http.max_header_bytes", 16384)
        .start()
        .await;
    let request = format!(
        "GET /ok HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{}\r\n",
        many_headers(60)
    );
    let (raw, _) = raw_exchange(server.addr, request.as_bytes(), 20).await;
    assert_eq!(raw_status(&raw), 431, "{raw}");
    let big = "b".repeat(20 << 10);
    let request =
        format!("GET /ok HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Big: {big}\r\n\r\n");
    let (raw, _) = raw_exchange(server.addr, request.as_bytes(), 20).await;
    assert_eq!(raw_status(&raw), 431, "{}", &raw[..raw.len().min(200)]);
    // HTTP/2 is held to the count as well.
    let mut req = Request::get(server.url("/ok"));
    for i in 0..60 {
        req = req.header(format!("x-h{i}"), "v");
    }
    let r = send(&h2c(), req.body(Full::default()).unwrap()).await;
    assert_eq!(r.status, 431);
    let mut req = Request::get(server.url("/ok"));
    for i in 0..40 {
        req = req.header(format!("x-h{i}"), "v");
    }
    let r = send(&h2c(), req.body(Full::default()).unwrap()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["headerCount"], 40);
    server.stop().await;
}

/// A worker that prints to STDOUT by mistake (before its first frame and between
/// frames) keeps serving; the log names its pid and quotes what it printed.
#[tokio::test]
async fn stray_stdout_is_logged_with_the_worker_pid_and_the_worker_keeps_serving() {
    let ports = Ports::pick();
    let yaml = RrYaml::worker("rr-compat.php")
        .env("RR_COMPAT_BOOT_ECHO", "hello from boot\n")
        .render(&ports);
    let pacer = PacerBin::spawn(tempfile::tempdir().unwrap(), ports, &yaml);
    pacer.wait_ready(1).await;
    let pid = children_of(pacer.pid())[0];
    let client = h1();
    for _ in 0..3 {
        let r = send(&client, get(&pacer.url("/print"))).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text(), "printed");
    }
    assert_eq!(
        children_of(pacer.pid()),
        vec![pid],
        "the worker was replaced"
    );
    let log = pacer.stop().await;
    let stray: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("STDOUT outside a frame"))
        .collect();
    assert!(
        stray
            .iter()
            .any(|l| l.contains("hello from boot") && l.contains(&pid.to_string())),
        "{log}"
    );
    // The text printed during the last request may still sit unread in the pipe.
    assert!(
        stray
            .iter()
            .filter(|l| l.contains("printed by mistake"))
            .count()
            >= 2,
        "{log}"
    );
}

/// `X-Sendfile` (the `sendfile` middleware): the file under `http.sendfile.roots` is
/// streamed by pacer with PHP's headers; PHP's body is dropped; traversal and symlinks
/// out of the roots are refused, and a large file never sits in pacer's memory.
#[tokio::test]
async fn x_sendfile_streams_files_under_the_roots_only() {
    let ports = Ports::pick();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("exports");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(dir.path().join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("link-out")).unwrap();
    // 64 MiB of a pattern: big next to pacer's own footprint.
    let big: Vec<u8> = (0..64u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("big.bin"), &big).unwrap();
    std::fs::write(root.join("small.csv"), "a,b\n1,2\n").unwrap();
    let yaml = RrYaml::worker("rr-compat.php")
        .http(&format!(
            "middleware: [sendfile]\nsendfile:\n  roots: [\"{}\"]",
            root.display()
        ))
        .level("warn")
        .render(&ports);
    let pacer = PacerBin::spawn(dir, ports, &yaml);
    pacer.wait_ready(1).await;
    let client = h1();
    let url = |p: &str| pacer.url(&format!("/sendfile?path={p}"));

    let r = send(&client, get(&url("small.csv"))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "a,b\n1,2\n");
    assert_eq!(r.header("content-type"), Some("text/csv"));
    assert_eq!(r.header("content-length"), Some("8"));
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"export.csv\"")
    );
    assert!(r.header("x-sendfile").is_none());

    let abs = root.join("big.bin").display().to_string();
    let r = send(&client, get(&url(&abs))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), big.len());
    assert!(r.body == big, "the file arrived changed");
    let hwm_kib: u64 = std::fs::read_to_string(format!("/proc/{}/status", pacer.pid()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(
        hwm_kib < 40 << 10,
        "pacer's peak RSS was {hwm_kib} KiB for a 64 MiB file"
    );

    for (path, status) in [
        ("../secret.txt", 403),
        ("link-out", 403),
        ("%2E%2E/secret.txt", 403),
        ("/etc/passwd", 403),
        ("missing.csv", 404),
        (".", 404),
    ] {
        let r = send(&client, get(&url(path))).await;
        assert_eq!(r.status.as_u16(), status, "{path}: {}", r.text());
        assert!(!r.text().contains("secret"), "{path}");
        assert!(!r.text().contains("php body"), "{path}");
    }
    let log = pacer.stop().await;
    assert!(log.contains("X-Sendfile refused"), "{log}");
}
