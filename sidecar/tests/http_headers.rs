//! The `headers` middleware (fixed request/response headers, CORS), static response
//! headers and the HTTP → HTTPS redirect, through the real server and real PHP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::serve::{Builder, fetch, h1, send};
use http::Method;
use http_body_util::Full;

fn with_headers(b: Builder) -> Builder {
    b.set("http.middleware", "[headers, static]")
        .set(
            "http.headers.request",
            "{X-Forwarded-Proto: https, X-Tenant: acme}",
        )
        .set("http.headers.response", "{X-Frame-Options: DENY}")
        .set(
            "http.headers.cors.allowed_origin",
            "https://app.example.com",
        )
        .set("http.headers.cors.allowed_methods", "\"GET, POST, PUT\"")
        .set(
            "http.headers.cors.allowed_headers",
            "\"Content-Type, X-Token\"",
        )
        .set("http.headers.cors.allow_credentials", "true")
        .set("http.headers.cors.max_age", "600")
        .set("http.headers.cors.options_success_status", "204")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_headers_reach_php_and_response_headers_reach_the_client() {
    let builder = with_headers(Builder::new("http.php"));
    std::fs::create_dir(builder.dir().join("public")).unwrap();
    std::fs::write(builder.dir().join("public/app.js"), "let x = 1;").unwrap();
    let dir = builder.dir().join("public").display().to_string();
    let server = builder
        .set("http.static.dir", &dir)
        .set(
            "http.static.response",
            "{Cache-Control: \"public, max-age=60\"}",
        )
        .start()
        .await;

    let reply = fetch(&server.url("/echo")).await;
    assert_eq!(reply.status, 200);
    let echo = reply.json();
    assert_eq!(echo["headers"]["X-Tenant"][0], "acme", "{echo}");
    assert_eq!(echo["headers"]["X-Forwarded-Proto"][0], "https");
    assert_eq!(reply.header("x-frame-options"), Some("DENY"));

    // Static files get their own fixed headers.
    let js = fetch(&server.url("/app.js")).await;
    assert_eq!(js.status, 200);
    assert_eq!(js.text(), "let x = 1;");
    assert_eq!(js.header("cache-control"), Some("public, max-age=60"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_is_answered_without_php_and_responses_carry_cors_headers() {
    let server = with_headers(Builder::new("http.php"))
        .workers(1)
        .start()
        .await;
    let client = h1();
    let jobs_before = server.pool().stats().jobs(pacer::stats::Outcome::Ok);

    let preflight = http::Request::builder()
        .method(Method::OPTIONS)
        .uri(server.url("/echo"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "PUT")
        .header("access-control-request-headers", "content-type")
        .body(Full::default())
        .unwrap();
    let reply = send(&client, preflight).await;
    assert_eq!(reply.status, 204);
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        reply.header("access-control-allow-methods"),
        Some("GET, POST, PUT")
    );
    assert_eq!(
        reply.header("access-control-allow-headers"),
        Some("Content-Type, X-Token")
    );
    assert_eq!(
        reply.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(reply.header("access-control-max-age"), Some("600"));
    assert_eq!(
        server.pool().stats().jobs(pacer::stats::Outcome::Ok),
        jobs_before,
        "PHP never saw the preflight"
    );

    let get = http::Request::builder()
        .uri(server.url("/echo"))
        .header("origin", "https://app.example.com")
        .body(Full::default())
        .unwrap();
    let reply = send(&client, get).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );

    let foreign = http::Request::builder()
        .uri(server.url("/echo"))
        .header("origin", "https://evil.example.net")
        .body(Full::default())
        .unwrap();
    let reply = send(&client, foreign).await;
    assert_eq!(
        reply.status, 200,
        "the request is served; the browser enforces CORS"
    );
    assert_eq!(reply.header("access-control-allow-origin"), None);
    server.stop().await;
}
