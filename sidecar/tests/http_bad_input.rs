//! Bad input against the real server with real PHP workers behind it: oversize bodies,
//! malformed multipart, requests hyper must refuse before PHP sees them, request
//! smuggling attempts and slowloris clients. Raw sockets throughout, so that no client
//! library tidies up the bytes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::serve::*;
use common::{eventually, php, spawner, worker_script};
use pacer::http::server::{self, HttpHandler, HttpSettings};
use pacer::http::uploads::UploadLimits;
use pacer::relay::RelayAddr;
use pacer::stats::HttpStats;
use pacer::worker::ProcessSpec;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Reads until a whole response head (`\r\n\r\n`) arrived, or `secs` pass.
async fn read_head(s: &mut (impl AsyncRead + Unpin), secs: u64) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !out.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------------------
// Oversize bodies

#[tokio::test]
async fn oversize_content_length_is_413_before_the_body_is_sent() {
    let server = Builder::new("http.php")
        .workers(1)
        .set("http.max_request_size", "1")
        .start()
        .await;
    let before = server.jobs_run();
    for (content_type, expect) in [
        ("application/octet-stream", false),
        ("application/x-www-form-urlencoded", false),
        ("multipart/form-data; boundary=b", false),
        ("application/octet-stream", true),
    ] {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        let head = format!(
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: {content_type}\r\n\
             Content-Length: 10485760\r\n{}\r\n",
            if expect {
                "Expect: 100-continue\r\n"
            } else {
                ""
            }
        );
        s.write_all(head.as_bytes()).await.unwrap();
        // Not one byte of the body is sent: the answer must come anyway.
        let response = read_head(&mut s, 20).await;
        assert!(
            response.starts_with("HTTP/1.1 413"),
            "{content_type} expect={expect}: {response:?}"
        );
    }
    // Just under the limit is fine.
    let body = vec![b'a'; (1 << 20) - 10];
    let r = send(
        &h1(),
        http::Request::post(server.url("/echo"))
            .header("content-type", "application/octet-stream")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        server.jobs_run(),
        before + 1,
        "oversize requests reached PHP"
    );
    server.stop().await;
}

/// A client that does not wait for the early 413 and sends its whole oversize body (as
/// most HTTP clients do) still reads the answer: pacer closes its side of the connection
/// and reads the rest of the body before closing the socket. Closed at once, the unread
/// body in the socket made the kernel answer with a reset, and the client got
/// "connection reset" or "broken pipe" instead of the 413.
#[tokio::test]
async fn a_client_that_sends_its_whole_oversize_body_still_reads_the_413() {
    let server = Builder::new("http.php")
        .workers(1)
        .set("http.max_request_size", "1")
        .start()
        .await;
    for _ in 0..5 {
        let (mut rd, mut wr) = TcpStream::connect(server.addr).await.unwrap().into_split();
        let body = 4 << 20;
        let writer = tokio::spawn(async move {
            let head = format!(
                "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n\
                 Content-Length: {body}\r\n\r\n"
            );
            wr.write_all(head.as_bytes()).await?;
            let chunk = vec![b'z'; 64 * 1024];
            for _ in 0..body / chunk.len() {
                wr.write_all(&chunk).await?;
            }
            Ok::<_, std::io::Error>(())
        });
        let mut response = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(20), rd.read_to_end(&mut response))
            .await
            .expect("the connection was never closed");
        let text = String::from_utf8_lossy(&response);
        assert!(text.starts_with("HTTP/1.1 413"), "{text:?} ({read:?})");
        assert!(read.is_ok(), "the response ended in {read:?}");
        let sent = writer.await.unwrap();
        assert!(sent.is_ok(), "the body could not be sent: {sent:?}");
    }
    server.stop().await;
}

/// Sends an endless chunked body while reading; returns the response head.
async fn endless_chunked(addr: SocketAddr, content_type: &str, first: &[u8]) -> String {
    let s = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let head = format!(
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: {content_type}\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    );
    let first = first.to_vec();
    let writer = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await?;
        let chunk = vec![b'z'; 64 * 1024];
        let mut frame = format!("{:x}\r\n", first.len()).into_bytes();
        frame.extend_from_slice(&first);
        frame.extend_from_slice(b"\r\n");
        wr.write_all(&frame).await?;
        // Far more than the limit: a server that buffers it all never answers.
        for _ in 0..(64 * 16) {
            let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
            frame.extend_from_slice(&chunk);
            frame.extend_from_slice(b"\r\n");
            wr.write_all(&frame).await?;
        }
        Ok::<_, std::io::Error>(())
    });
    let head = read_head(&mut rd, 30).await;
    writer.abort();
    head
}

#[tokio::test]
async fn chunked_oversize_is_413_without_buffering_the_body() {
    let server = Builder::new("http.php")
        .workers(1)
        .set("http.max_request_size", "1")
        .start()
        .await;
    let before = server.jobs_run();
    let part = b"--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"big.bin\"\r\n\r\n";
    for (content_type, first) in [
        ("application/octet-stream", &b"raw"[..]),
        ("application/x-www-form-urlencoded", b"a="),
        ("multipart/form-data; boundary=b", part),
    ] {
        let head = endless_chunked(server.addr, content_type, first).await;
        assert!(head.starts_with("HTTP/1.1 413"), "{content_type}: {head:?}");
    }
    assert_eq!(server.jobs_run(), before, "oversize requests reached PHP");
    // Nothing of the oversize upload is left behind.
    let uploads = server.uploads_dir();
    common::poll::emptied(&uploads, 10, "upload temp files left").await;
    server.stop().await;
}

#[tokio::test]
async fn oversize_bodies_over_h2c_are_413_too() {
    let server = Builder::new("http.php")
        .workers(1)
        .set("http.max_request_size", "1")
        .set("http.http2.h2c", "true")
        .start()
        .await;
    let before = server.jobs_run();
    let client = h2c();
    // With a declared length.
    let req = http::Request::post(server.url("/echo"))
        .header("content-type", "application/octet-stream")
        .body(http_body_util::Full::new(bytes::Bytes::from(vec![
            b'a';
            2 << 20
        ])))
        .unwrap();
    assert_eq!(send(&client, req).await.status, 413);
    // Streamed, without one: 64 KiB frames until the server answers.
    let frames = futures_util::stream::iter((0..64).map(|_| {
        Ok::<_, std::convert::Infallible>(http_body::Frame::data(bytes::Bytes::from(vec![
            b'z';
            64 * 1024
        ])))
    }));
    let req = http::Request::post(server.url("/echo"))
        .header("content-type", "application/octet-stream")
        .body(http_body_util::StreamBody::new(frames))
        .unwrap();
    let streaming =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    let resp = tokio::time::timeout(Duration::from_secs(30), streaming.request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(server.jobs_run(), before, "oversize requests reached PHP");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Malformed multipart

#[tokio::test]
async fn malformed_multipart_is_400() {
    let server = Builder::new("http.php").workers(1).start().await;
    let before = server.jobs_run();
    let cases: [(&str, &str); 5] = [
        ("multipart/form-data", "--b\r\n\r\n--b--\r\n"),
        ("multipart/form-data; boundary=", "--b\r\n\r\n--b--\r\n"),
        (
            "multipart/form-data; boundary=b",
            "this is not multipart at all",
        ),
        (
            "multipart/form-data; boundary=b",
            "--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\ntruncated",
        ),
        (
            "multipart/form-data; boundary=b",
            "--b\r\nno header terminator",
        ),
    ];
    for (content_type, body) in cases {
        let req = format!(
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: {content_type}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let (raw, _) = raw_exchange(server.addr, req.as_bytes(), 20).await;
        assert_eq!(raw_status(&raw), 400, "{content_type} {body:?}: {raw}");
    }
    assert_eq!(server.jobs_run(), before, "malformed multipart reached PHP");
    let uploads = server.uploads_dir();
    common::poll::emptied(&uploads, 10, "upload temp files left").await;
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Requests hyper refuses

#[tokio::test]
async fn invalid_method_uri_and_oversized_headers_never_reach_php() {
    let server = Builder::new("http.php").workers(1).start().await;
    let before = server.jobs_run();
    // Past the defaults: pacer.http.max_header_bytes (1 MiB) and max_header_count (1000).
    let huge = "a".repeat(2 << 20);
    let many: String = (0..1500).map(|i| format!("X-H{i}: v\r\n")).collect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "space in method",
            b"GE T /echo HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
        ),
        (
            "@ in method",
            b"G@T /echo HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
        ),
        (
            "empty method",
            b" /echo HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
        ),
        (
            "space in uri",
            b"GET /ec ho HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
        ),
        (
            "DEL in uri",
            b"GET /ec\x7fho HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
        ),
        (
            "broken authority",
            b"GET http://[::1/echo HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
        ),
        ("no uri", b"GET HTTP/1.1\r\nHost: t\r\n\r\n".to_vec()),
        (
            "bad version",
            b"GET /echo HTTP/1.x\r\nHost: t\r\n\r\n".to_vec(),
        ),
        (
            "header without colon",
            b"GET /echo HTTP/1.1\r\nHost: t\r\nBroken\r\n\r\n".to_vec(),
        ),
        (
            "NUL in header",
            b"GET /echo HTTP/1.1\r\nHost: t\r\nX-A: a\x00b\r\n\r\n".to_vec(),
        ),
        (
            "space before colon",
            b"GET /echo HTTP/1.1\r\nHost: t\r\nX-A : b\r\n\r\n".to_vec(),
        ),
        (
            "HTTP/1.1 without Host",
            b"GET /echo HTTP/1.1\r\n\r\n".to_vec(),
        ),
        (
            "two Host headers",
            b"GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_vec(),
        ),
        (
            "space in Host",
            b"GET /echo HTTP/1.1\r\nHost: a b\r\n\r\n".to_vec(),
        ),
        (
            "slash in Host",
            b"GET /echo HTTP/1.1\r\nHost: a/b\r\n\r\n".to_vec(),
        ),
        (
            "non-ASCII Host",
            b"GET /echo HTTP/1.1\r\nHost: caf\xc3\xa9\r\n\r\n".to_vec(),
        ),
        (
            "huge header",
            format!("GET /echo HTTP/1.1\r\nHost: t\r\nX-Big: {huge}\r\n\r\n").into_bytes(),
        ),
        (
            "too many headers",
            format!("GET /echo HTTP/1.1\r\nHost: t\r\n{many}\r\n").into_bytes(),
        ),
    ];
    for (what, bytes) in cases {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        // The server may answer (and close) before it has read a huge request.
        let _ = s.write_all(&bytes).await;
        let (raw, closed) = read_until_close(&mut s, 20).await;
        let status = raw_status(&raw);
        assert!((400..500).contains(&status), "{what}: {raw}");
        assert!(closed, "{what}: connection left open");
    }
    assert_eq!(server.jobs_run(), before, "a refused request reached PHP");
    assert_eq!(fetch(&server.url("/")).await.status, 200);
    // HTTP/1.0 may leave Host out; IP literals and ports are fine.
    for ok in [
        &b"GET / HTTP/1.0\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: my-app.example_x:80\r\nConnection: close\r\n\r\n",
    ] {
        let (raw, _) = raw_exchange(server.addr, ok, 20).await;
        assert!(raw.starts_with("HTTP/1"), "{raw}");
        assert!(raw.contains(" 200 "), "{raw}");
    }
    server.stop().await;
}

/// `OPTIONS *` is about the server: 200 with no body, as Go's server answers it for
/// RoadRunner; `*` with any other method is 400. Neither reaches PHP.
#[tokio::test]
async fn asterisk_requests_are_answered_by_pacer() {
    let server = Builder::new("http.php").workers(1).start().await;
    let before = server.jobs_run();
    let (raw, _) = raw_exchange(
        server.addr,
        b"OPTIONS * HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        10,
    )
    .await;
    assert_eq!(raw_status(&raw), 200, "{raw}");
    assert!(
        raw.to_ascii_lowercase().contains("content-length: 0\r\n"),
        "{raw}"
    );
    let (raw, closed) = raw_exchange(server.addr, b"GET * HTTP/1.1\r\nHost: t\r\n\r\n", 10).await;
    assert_eq!(raw_status(&raw), 400, "{raw}");
    assert!(closed, "connection left open after GET *");
    assert_eq!(server.jobs_run(), before, "an asterisk request reached PHP");
    server.stop().await;
}

#[tokio::test]
async fn smuggling_attempts_are_refused_or_read_one_way_and_the_connection_closed() {
    let server = Builder::new("http.php").workers(1).start().await;
    let before = server.jobs_run();
    // What a smuggler would hide behind the first request.
    let hidden = "GET /status/418 HTTP/1.1\r\nHost: t\r\n\r\n";

    // Refused outright: 400 and closed, nothing reaches PHP.
    let refused: Vec<(&str, String)> = vec![
        (
            "two different Content-Length",
            format!(
                "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd{hidden}"
            ),
        ),
        (
            "Content-Length list",
            format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4, 40\r\n\r\nabcd{hidden}"),
        ),
        (
            "signed Content-Length",
            format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: +4\r\n\r\nabcd{hidden}"),
        ),
        (
            "chunked not last",
            format!(
                "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n{hidden}"
            ),
        ),
        (
            "unknown coding",
            format!(
                "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n{hidden}"
            ),
        ),
        (
            "Transfer-Encoding in HTTP/1.0",
            format!(
                "POST /echo HTTP/1.0\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n0\r\n\r\n{hidden}"
            ),
        ),
        (
            "space before colon",
            format!(
                "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{hidden}"
            ),
        ),
        (
            "bad chunk size",
            format!(
                "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n\r\n{hidden}"
            ),
        ),
    ];
    for (what, req) in refused {
        let (raw, closed) = raw_exchange(server.addr, req.as_bytes(), 20).await;
        assert_eq!(raw_status(&raw), 400, "{what}: {raw}");
        assert!(closed, "{what}: connection left open");
        assert!(
            !raw.contains("418"),
            "{what}: the hidden request ran: {raw}"
        );
    }
    assert_eq!(server.jobs_run(), before, "a refused request reached PHP");

    // Content-Length and Transfer-Encoding together: RFC 9112 §6.1 lets a server read
    // the body by Transfer-Encoding (hyper, like Go, does) but it MUST close the
    // connection afterwards, so what hides behind the chunked body is never a request.
    for order in [
        "Content-Length: 60\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked\r\nContent-Length: 60",
    ] {
        let req = format!("POST /echo HTTP/1.1\r\nHost: t\r\n{order}\r\n\r\n0\r\n\r\n{hidden}");
        let (raw, closed) = raw_exchange(server.addr, req.as_bytes(), 20).await;
        let status = raw_status(&raw);
        assert!(status == 400 || status == 200, "{order}: {raw}");
        assert!(closed, "{order}: connection left open");
        assert_eq!(raw.matches("HTTP/1.1 ").count(), 1, "{order}: {raw}");
        assert!(
            !raw.contains("418"),
            "{order}: the hidden request ran: {raw}"
        );
        if status == 200 {
            // Read as chunked: PHP saw an empty body, not the Content-Length bytes.
            let body = &raw[raw.find("\r\n\r\n").unwrap() + 4..];
            assert!(body.contains("\"body\":\"\""), "{order}: {raw}");
        }
    }
    assert!(server.jobs_run() <= before + 2);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Slowloris

/// The HTTP server alone, with a short header read timeout, over a real pool of
/// `http.php` workers.
async fn quick_timeout_server(
    header_read_timeout: Duration,
    h2c: bool,
) -> (SocketAddr, CancellationToken, tokio::task::JoinHandle<()>) {
    let spec = ProcessSpec {
        command: vec![php(), worker_script("http.php")],
        env: Vec::new(),
        cwd: None,
        uid: None,
        gid: None,
    };
    let pool = pacer::pool::Pool::start(
        "http",
        spawner(spec, RelayAddr::Pipes).await,
        common::settings(1),
    );
    assert!(pool.wait_ready(1, Duration::from_secs(30)).await);
    let settings = HttpSettings {
        max_request_size: 1 << 20,
        raw_body: false,
        trusted_subnets: Vec::new(),
        internal_error_code: http::StatusCode::INTERNAL_SERVER_ERROR,
        access_logs: false,
        expose_errors: false,
        static_files: None,
        sendfile: None,
        static_headers: Default::default(),
        headers: Default::default(),
        redirect_to_https: None,
        compression: false,
        uploads: UploadLimits::default(),
        header_read_timeout,
        max_requests_per_connection: 100,
        max_header_count: 1000,
        max_header_bytes: 1 << 20,
        max_concurrent_streams: 16,
        h2c,
    };
    let handler = HttpHandler::new(pool.clone(), settings, Arc::new(HttpStats::default()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let stop = stop.clone();
        async move {
            server::serve(listener, None, handler, stop, Duration::from_secs(5)).await;
            pool.shutdown().await;
        }
    });
    (addr, stop, task)
}

/// Writes `bytes` one at a time, `gap` apart, until the server closes the connection;
/// returns how long that took, or `None` if it never did within `secs`.
async fn dribble(addr: SocketAddr, bytes: &[u8], gap: Duration, secs: u64) -> Option<Duration> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let mut i = 0;
    let mut buf = [0u8; 1024];
    while Instant::now() < deadline {
        if i < bytes.len() && s.write_all(&bytes[i..=i]).await.is_err() {
            return Some(started.elapsed());
        }
        i += 1;
        match tokio::time::timeout(gap, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) | Err(_) => {}
        }
    }
    None
}

#[tokio::test]
async fn slowloris_connections_are_closed_after_the_header_read_timeout() {
    for h2c in [true, false] {
        let (addr, stop, task) = quick_timeout_server(Duration::from_secs(1), h2c).await;
        let slow_headers = format!("GET / HTTP/1.1\r\nHost: t\r\nX-Slow: {}", "a".repeat(500));
        let cases: [(&str, &[u8]); 3] = [
            ("headers dribbled", slow_headers.as_bytes()),
            ("nothing sent", b""),
            (
                "HTTP/2 preface dribbled",
                b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            ),
        ];
        let slow = cases.map(|(what, bytes)| async move {
            let closed = dribble(addr, bytes, Duration::from_millis(300), 20).await;
            let took = closed.unwrap_or_else(|| panic!("h2c={h2c} {what}: still open after 20 s"));
            assert!(
                took < Duration::from_secs(10),
                "h2c={h2c} {what}: closed only after {took:?}"
            );
        });
        futures_util::future::join_all(slow).await;

        // An honest client on the same server is served, and its connection, once
        // idle, is closed too.
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let head = read_head(&mut s, 20).await;
        assert!(head.starts_with("HTTP/1.1 200"), "h2c={h2c}: {head}");
        let (_, closed) = read_until_close(&mut s, 10).await;
        assert!(closed, "h2c={h2c}: idle keep-alive connection left open");
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .unwrap()
            .unwrap();
    }
}

/// The limits are set from the config file (`pacer.http`), through `pacer serve`'s own
/// config loading: a 1 s header read timeout closes a dribbling client long before the
/// 30 s default would, and the third request of a connection is its last.
#[tokio::test]
async fn connection_limits_come_from_the_pacer_http_section() {
    let server = Builder::new("http.php")
        .workers(1)
        .set("pacer.http.header_read_timeout", "1s")
        .set("pacer.http.max_requests_per_connection", "3")
        .start()
        .await;
    let took = dribble(
        server.addr,
        b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        Duration::from_millis(300),
        20,
    )
    .await
    .expect("a dribbling client was never disconnected");
    assert!(took < Duration::from_secs(10), "closed only after {took:?}");

    let mut s = TcpStream::connect(server.addr).await.unwrap();
    for n in 1..=3 {
        // HEAD: answered without a body, so each read ends at a response head.
        s.write_all(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let head = read_head(&mut s, 20).await.to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "request {n}: {head}");
        assert_eq!(
            head.contains("connection: close"),
            n == 3,
            "request {n}: {head}"
        );
    }
    let (_, closed) = read_until_close(&mut s, 10).await;
    assert!(closed, "the connection outlived its third request");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Clients that go away

#[tokio::test]
async fn client_gone_mid_request_leaves_a_usable_worker() {
    let server = Builder::new("http.php").workers(1).start().await;
    let client = h1();
    let pid: u32 = send(&client, get(&server.url("/pid")))
        .await
        .text()
        .parse()
        .unwrap();
    // Executing: the client hangs up while PHP sleeps.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET /sleep?ms=1500 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    assert!(eventually(20, || server.pool().snapshot().working == 1).await);
    // Queued behind it: this one hangs up while waiting for the worker.
    let mut queued = TcpStream::connect(server.addr).await.unwrap();
    queued
        .write_all(b"GET /sleep?ms=1500 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    assert!(eventually(20, || server.pool().snapshot().queue_depth == 1).await);
    drop(queued);
    drop(s);
    // The worker finishes (or is replaced) and serves on; the abandoned queued request
    // never runs.
    let started = Instant::now();
    let r = send(&client, get(&server.url("/pid"))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(started.elapsed() < Duration::from_secs(15));
    let again: u32 = r.text().parse().unwrap();
    assert_eq!(again, pid, "the worker was killed for a client hanging up");
    assert!(server.jobs_run() <= 3, "the abandoned queued request ran");
    server.stop().await;
}

#[tokio::test]
async fn client_gone_mid_upload_leaves_no_temp_file() {
    let server = Builder::new("http.php").workers(1).start().await;
    let before = server.jobs_run();
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let part = "--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.bin\"\r\n\r\n";
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=b\r\n\
         Content-Length: 10000000\r\n\r\n{part}"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&vec![b'x'; 200_000]).await.unwrap();
    // The temp file exists while the upload runs…
    let uploads = server.uploads_dir();
    assert!(
        eventually(20, || std::fs::read_dir(&uploads).unwrap().count() == 1).await,
        "no temp file while uploading"
    );
    drop(s);
    // …and is gone when the client is.
    common::poll::emptied(&uploads, 20, "temp file left after the client went away").await;
    assert_eq!(server.jobs_run(), before);
    assert_eq!(fetch(&server.url("/")).await.status, 200);
    server.stop().await;
}
