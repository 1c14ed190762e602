//! Micro-benchmarks of the per-request HTTP ⇄ payload conversion (`pacer::http`).
//!
//! Run: `cargo bench -p pacer --bench convert`.
// A bench whose setup fails should stop loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use bytes::BytesMut;
use criterion::{Criterion, criterion_group, criterion_main};
use pacer::http::convert::{Attributes, encode_context, encode_context_into, request_context};
use pacer::http::{form, response};

/// A typical browser navigation: 12 headers, a few cookies, a query string.
fn browser_get() -> http::request::Parts {
    let headers = [
        ("host", "shop.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("accept-language", "en-US,en;q=0.5"),
        ("accept-encoding", "gzip, deflate, br, zstd"),
        ("referer", "https://shop.example.com/catalog?page=1"),
        ("connection", "keep-alive"),
        (
            "cookie",
            "XSRF-TOKEN=eyJpdiI6IkJ0c2x4%3D%3D; laravel_session=eyJpdiI6Ik1rT2%3D%3D; theme=dark",
        ),
        ("upgrade-insecure-requests", "1"),
        ("sec-fetch-dest", "document"),
        ("sec-fetch-mode", "navigate"),
        ("sec-fetch-site", "same-origin"),
    ];
    let mut b = http::Request::builder()
        .method("GET")
        .uri("/catalog/shoes?page=2&sort=price&color=red")
        .version(http::Version::HTTP_11);
    for (k, v) in headers {
        b = b.header(k, v);
    }
    b.body(()).unwrap().into_parts().0
}

fn bench_request_context(c: &mut Criterion) {
    let parts = browser_get();
    let attrs = Attributes::new();
    let ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
    let mut buf = BytesMut::new();
    c.bench_function(
        "request_context+encode (browser GET, 12 headers, serde_json, reused buffer)",
        |b| {
            b.iter(|| {
                let ctx = request_context(black_box(&parts), ip, false, false, None, &attrs);
                black_box(encode_context_into(&ctx, &mut buf).unwrap())
            })
        },
    );
    c.bench_function(
        "request_context+encode (browser GET, 12 headers, hand-written, fresh buffer)",
        |b| {
            b.iter(|| {
                let ctx = request_context(black_box(&parts), ip, false, false, None, &attrs);
                black_box(encode_context(&ctx).unwrap())
            })
        },
    );
}

fn bench_response(c: &mut Criterion) {
    let json = br#"{"status":200,"headers":{"Content-Type":["text\/html; charset=UTF-8"],"Cache-Control":["no-cache, private"],"Date":["Tue, 03 Jun 2025 10:00:00 GMT"],"Set-Cookie":["XSRF-TOKEN=eyJpdiI6IkJ0c2x4; expires=Tue, 03 Jun 2025 12:00:00 GMT; Max-Age=7200; path=\/; samesite=lax","laravel_session=eyJpdiI6Ik1rT2; expires=Tue, 03 Jun 2025 12:00:00 GMT; Max-Age=7200; path=\/; httponly; samesite=lax"]}}"#;
    c.bench_function("response JSON -> head (4 headers, 2 Set-Cookie)", |b| {
        b.iter(|| black_box(response::parse_response(0, black_box(json)).unwrap()))
    });
    let hello = br#"{"status":200,"headers":{"Content-Type":["text\/plain"]}}"#;
    c.bench_function("response JSON -> head (hello world)", |b| {
        b.iter(|| black_box(response::parse_response(0, black_box(hello)).unwrap()))
    });
}

fn bench_form(c: &mut Criterion) {
    let body = b"_token=NM8eor1JFGRLxfaTNHanGX4en0ZMFtatdz1Muu5Z&_method=PUT&name=Jane+Doe\
&email=jane%40example.com&tags%5B%5D=a&tags%5B%5D=b&address%5Bstreet%5D=Main+St+1\
&address%5Bcity%5D=Springfield&newsletter=1&comment=Hello%2C+world%21";
    c.bench_function("urlencoded form -> JSON tree (10 fields)", |b| {
        b.iter(|| black_box(form::urlencoded_to_json(black_box(body)).unwrap()))
    });
}

criterion_group!(benches, bench_request_context, bench_response, bench_form);
criterion_main!(benches);
