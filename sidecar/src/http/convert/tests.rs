use super::*;
use http::{Request, Uri};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::net::{Ipv4Addr, Ipv6Addr};

fn parts(
    method: &str,
    uri: &str,
    version: Version,
    headers: &[(&str, &str)],
) -> http::request::Parts {
    let mut b = Request::builder().method(method).uri(uri).version(version);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap().into_parts().0
}

fn context_json(p: &http::request::Parts, tls: bool) -> Value {
    let attrs = Attributes::new();
    let ctx = request_context(
        p,
        IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
        tls,
        false,
        None,
        &attrs,
    );
    serde_json::from_slice(&encode_context(&ctx).unwrap()).unwrap()
}

#[test]
fn canonical_header_names_like_go() {
    let cases = [
        ("x-foo-bar", "X-Foo-Bar"),
        ("content-type", "Content-Type"),
        ("CONTENT-TYPE", "Content-Type"),
        ("www-authenticate", "Www-Authenticate"),
        ("x-csrf-token", "X-Csrf-Token"),
        ("dnt", "Dnt"),
        ("x_foo_bar", "X_foo_bar"),
        ("-x", "-X"),
        ("a--b", "A--B"),
        ("x-1a", "X-1a"),
        ("te", "Te"),
        ("x.y-z", "X.y-Z"),
        ("Already-Canonical", "Already-Canonical"),
        // not a token: Go leaves the key alone
        ("foo bar", "foo bar"),
        ("x-ü", "x-ü"),
    ];
    for (input, want) in cases {
        assert_eq!(canonical_header_name(input), want, "{input:?}");
    }
}

#[test]
fn stack_canonicalisation_matches_for_long_names() {
    for len in [1, 63, 64, 65, 200] {
        let name = format!("x-{}", "ab-".repeat(len).trim_end_matches('-'));
        let hn = HeaderName::from_bytes(name.as_bytes()).unwrap();
        let got = with_canonical(&hn, |s| s.to_owned());
        assert_eq!(got, canonical_header_name(&name), "len {len}");
    }
}

#[test]
fn absolute_uri_table() {
    type Case<'a> = (&'a str, Version, &'a [(&'a str, &'a str)], bool, &'a str);
    let cases: &[Case] = &[
        (
            "/p?q=1",
            Version::HTTP_11,
            &[("host", "example.com")],
            false,
            "http://example.com/p?q=1",
        ),
        (
            "/p",
            Version::HTTP_11,
            &[("host", "example.com:8080")],
            true,
            "https://example.com:8080/p",
        ),
        ("/", Version::HTTP_10, &[("host", "h")], false, "http://h/"),
        // absolute-form request line: its host wins, but the scheme is the connection's
        // (plain HTTP cannot claim to be https)
        (
            "https://other.test/x?y",
            Version::HTTP_11,
            &[("host", "ignored")],
            false,
            "http://other.test/x?y",
        ),
        (
            "http://other.test/x",
            Version::HTTP_11,
            &[("host", "ignored")],
            true,
            "https://other.test/x",
        ),
        // h2: :authority, scheme from the connection
        (
            "https://h2.test/a?b=c",
            Version::HTTP_2,
            &[],
            false,
            "http://h2.test/a?b=c",
        ),
        (
            "http://h2.test/a",
            Version::HTTP_2,
            &[("host", "other")],
            true,
            "https://h2.test/a",
        ),
        // h2 without :authority but with Host
        (
            "/a",
            Version::HTTP_2,
            &[("host", "fromhost")],
            true,
            "https://fromhost/a",
        ),
        // no host anywhere (HTTP/1.0): still a parseable URL
        ("/a", Version::HTTP_10, &[], false, "http://localhost/a"),
        // OPTIONS *
        ("*", Version::HTTP_11, &[("host", "h")], false, "http://h"),
        // encoded characters pass through untouched
        (
            "/a%20b/%2e%2e?x=%0d%0a",
            Version::HTTP_11,
            &[("host", "h")],
            false,
            "http://h/a%20b/%2e%2e?x=%0d%0a",
        ),
    ];
    for (uri, version, headers, tls, want) in cases {
        let p = parts("GET", uri, *version, headers);
        assert_eq!(absolute_uri(&p, *tls), *want, "{uri} {version:?}");
    }
}

/// Found by the `request_to_payload` fuzz target (fuzz/regressions/request_to_payload):
/// a `Host` header was spliced into `uri` as is, so `Host: evil.test/public?` made PHP
/// see the path `/public` and the real path as the query.
#[test]
fn a_host_header_cannot_change_the_path_php_sees() {
    for host in [
        "shop/test",
        "evil.test/public?",
        "evil.test#",
        "user@evil.test",
        "a b",
        "h\\x",
        "[::1",
        "h:1:2",
        "caf\u{e9}.test",
    ] {
        let p = parts("GET", "/search?q=1", Version::HTTP_11, &[("host", host)]);
        assert_eq!(
            absolute_uri(&p, false),
            "http://localhost/search?q=1",
            "{host:?}"
        );
        assert!(!valid_host(host.as_bytes()), "{host:?}");
        assert!(
            matches!(check_host(&p.headers), Err(ConvertError::Host)),
            "{host:?}"
        );
    }
    for (host, uri) in [
        ("example.com:8080", "http://example.com:8080/search?q=1"),
        ("[::1]:80", "http://[::1]:80/search?q=1"),
        ("xn--caf-dma.test", "http://xn--caf-dma.test/search?q=1"),
        ("", "http://localhost/search?q=1"),
    ] {
        let p = parts("GET", "/search?q=1", Version::HTTP_11, &[("host", host)]);
        assert_eq!(absolute_uri(&p, false), uri, "{host:?}");
        assert!(check_host(&p.headers).is_ok(), "{host:?}");
    }
}

#[test]
fn strip_crlf_removes_both() {
    assert_eq!(strip_crlf("a\r\nb\nc\rd"), "abcd");
    assert!(matches!(strip_crlf("clean"), Cow::Borrowed(_)));
}

#[test]
fn protocol_strings() {
    assert_eq!(protocol(Version::HTTP_10), "HTTP/1.0");
    assert_eq!(protocol(Version::HTTP_11), "HTTP/1.1");
    assert_eq!(protocol(Version::HTTP_2), "HTTP/2.0");
    assert_eq!(protocol(Version::HTTP_3), "HTTP/3.0");
}

#[test]
fn full_context_of_a_browser_get() {
    let p = parts(
        "GET",
        "/search?q=rust+lang&page=2",
        Version::HTTP_11,
        &[
            ("host", "shop.test"),
            ("user-agent", "Mozilla/5.0"),
            ("accept", "text/html"),
            ("accept-language", "en"),
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "2.2.2.2"),
            ("cookie", "sid=abc%3D; theme=dark"),
        ],
    );
    let attrs = Attributes::new();
    let ctx = request_context(
        &p,
        "::ffff:192.0.2.7".parse().unwrap(),
        false,
        false,
        None,
        &attrs,
    );
    let bytes = encode_context(&ctx).unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        v,
        json!({
            "remoteAddr": "192.0.2.7",
            "protocol": "HTTP/1.1",
            "method": "GET",
            "uri": "http://shop.test/search?q=rust+lang&page=2",
            "headers": {
                "User-Agent": ["Mozilla/5.0"],
                "Accept": ["text/html"],
                "Accept-Language": ["en"],
                "X-Forwarded-For": ["1.1.1.1", "2.2.2.2"],
                "Cookie": ["sid=abc%3D; theme=dark"],
            },
            "cookies": {"sid": "abc=", "theme": "dark"},
            "rawQuery": "q=rust+lang&page=2",
            "parsed": false,
            "uploads": null,
            "attributes": {},
        })
    );
    // key order is the struct order, like Go's encoder
    let text = std::str::from_utf8(&bytes).unwrap();
    let order: Vec<usize> = [
        "remoteAddr",
        "protocol",
        "method",
        "uri",
        "headers",
        "cookies",
        "rawQuery",
        "parsed",
        "uploads",
        "attributes",
    ]
    .iter()
    .map(|k| text.find(&format!("\"{k}\":")).unwrap())
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    // PHP's minimal required keys are present (docs/wire-protocol.md §10)
    for k in [
        "remoteAddr",
        "protocol",
        "method",
        "uri",
        "rawQuery",
        "parsed",
    ] {
        assert!(v.get(k).is_some(), "{k}");
    }
}

#[test]
fn context_fields_for_uploads_attributes_and_ipv6() {
    let p = parts(
        "POST",
        "/u",
        Version::HTTP_2,
        &[
            ("host", "h"),
            ("content-type", "multipart/form-data; boundary=x"),
        ],
    );
    let mut attrs = Attributes::new();
    attrs.insert("rid".into(), json!(["abc"]));
    let uploads = json!({"f": {"name": "a.txt", "mime": "text/plain", "size": 3, "error": 0, "tmpName": "/tmp/upload1"}});
    let ctx = request_context(
        &p,
        IpAddr::V6(Ipv6Addr::LOCALHOST),
        true,
        true,
        Some(uploads.clone()),
        &attrs,
    );
    let v: Value = serde_json::from_slice(&encode_context(&ctx).unwrap()).unwrap();
    assert_eq!(v["remoteAddr"], "::1");
    assert_eq!(v["protocol"], "HTTP/2.0");
    assert_eq!(v["uri"], "https://h/u");
    assert_eq!(v["parsed"], true);
    assert_eq!(v["uploads"], uploads);
    assert_eq!(v["attributes"], json!({"rid": ["abc"]}));
    assert_eq!(v["method"], "POST");
    assert!(v["headers"].get("Host").is_none());
}

#[test]
fn host_is_never_a_header_and_repeated_headers_keep_order() {
    let v = context_json(
        &parts(
            "GET",
            "/",
            Version::HTTP_11,
            &[("host", "h"), ("x-a", "1"), ("X-A", "2"), ("x-b", "")],
        ),
        false,
    );
    assert_eq!(v["headers"], json!({"X-A": ["1", "2"], "X-B": [""]}));
}

#[test]
fn obs_text_header_values_become_replacement_characters() {
    let mut p = parts("GET", "/", Version::HTTP_11, &[("host", "h")]);
    p.headers
        .insert("x-bin", http::HeaderValue::from_bytes(b"caf\xe9").unwrap());
    let v = context_json(&p, false);
    assert_eq!(v["headers"]["X-Bin"], json!(["caf\u{fffd}"]));
}

#[test]
fn h2_cookie_fields_are_joined_in_headers_but_not_in_h1() {
    let h = [("host", "h"), ("cookie", "a=1"), ("cookie", "b=2")];
    let v2 = context_json(&parts("GET", "https://h/", Version::HTTP_2, &h), true);
    assert_eq!(v2["headers"]["Cookie"], json!(["a=1; b=2"]));
    assert_eq!(v2["cookies"], json!({"a": "1", "b": "2"}));
    let v1 = context_json(&parts("GET", "/", Version::HTTP_11, &h), false);
    assert_eq!(v1["headers"]["Cookie"], json!(["a=1", "b=2"]));
    assert_eq!(v1["cookies"], json!({"a": "1", "b": "2"}));
}

#[test]
fn cookie_table() {
    let cases: &[(&[&str], Value)] = &[
        (&["a=1"], json!({"a": "1"})),
        (&["a=1; b=2", "c=3"], json!({"a": "1", "b": "2", "c": "3"})),
        (&["  a=1 ;; b = 2 ;"], json!({"a": "1", "b": "2"})),
        (&["q=\"quoted value\""], json!({"q": "quoted value"})),
        (&["q=\"\""], json!({"q": ""})),
        (&["q=\"half"], json!({})),
        (
            &["enc=hello%20world%21", "plus=a+b"],
            json!({"enc": "hello world!", "plus": "a b"}),
        ),
        // unescape failures drop the cookie only
        (&["bad=%zz; good=1; bad2=%4"], json!({"good": "1"})),
        // invalid names and values
        (&["=nameless; a b=1; ok=1"], json!({"ok": "1"})),
        (&["bs=a\\b; ok=1"], json!({"ok": "1"})),
        (&["flag"], json!({"flag": ""})),
        (&["eq=a=b"], json!({"eq": "a=b"})),
        (
            &["utf=%C3%A9", "lossy=%FF"],
            json!({"utf": "é", "lossy": "\u{fffd}"}),
        ),
        // duplicates: first position, last value
        (&["a=1; b=2", "a=3"], json!({"a": "3", "b": "2"})),
        (&[], json!({})),
    ];
    for (fields, want) in cases {
        let mut headers = vec![("host", "h")];
        headers.extend(fields.iter().map(|f| ("cookie", *f)));
        let v = context_json(&parts("GET", "/", Version::HTTP_11, &headers), false);
        assert_eq!(&v["cookies"], want, "{fields:?}");
    }
}

#[test]
fn many_cookies_are_deduplicated_in_order() {
    let mut field = String::new();
    for i in 0..2000 {
        field.push_str(&format!("c{}={i}; ", i % 500));
    }
    let p = parts(
        "GET",
        "/",
        Version::HTTP_11,
        &[("host", "h"), ("cookie", &field)],
    );
    let c = cookies(&p.headers);
    assert_eq!(c.len(), 500);
    assert_eq!(c[0], ("c0", Cow::Borrowed("1500")));
    assert_eq!(c[499], ("c499", Cow::Borrowed("1999")));
}

#[test]
fn query_unescape_like_go() {
    assert_eq!(query_unescape("a%2Fb+c").as_deref(), Some("a/b c"));
    assert_eq!(query_unescape("%").as_deref(), None);
    assert_eq!(query_unescape("%g0").as_deref(), None);
    assert_eq!(query_unescape("plain").as_deref(), Some("plain"));
    assert_eq!(query_unescape("%41%6a").as_deref(), Some("Aj"));
}

#[test]
fn body_kind_table() {
    let form = "application/x-www-form-urlencoded";
    let multi = "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW";
    let cases: &[(&str, Option<&str>, bool, BodyKind)] = &[
        ("HEAD", Some(form), false, BodyKind::None),
        ("OPTIONS", Some(multi), false, BodyKind::None),
        ("HEAD", None, true, BodyKind::None),
        ("POST", Some(form), false, BodyKind::UrlEncoded),
        (
            "PUT",
            Some("application/x-www-form-urlencoded; charset=UTF-8"),
            false,
            BodyKind::UrlEncoded,
        ),
        (
            "DELETE",
            Some("Application/X-WWW-Form-URLEncoded"),
            false,
            BodyKind::UrlEncoded,
        ),
        (
            "POST",
            Some(multi),
            false,
            BodyKind::Multipart {
                boundary: "----WebKitFormBoundary7MA4YWxkTrZu0gW".into(),
            },
        ),
        (
            "PATCH",
            Some("multipart/form-data; boundary=\"quoted b\""),
            false,
            BodyKind::Multipart {
                boundary: "quoted b".into(),
            },
        ),
        ("POST", Some(form), true, BodyKind::Raw),
        ("POST", Some(multi), true, BodyKind::Raw),
        ("POST", Some("application/json"), false, BodyKind::Raw),
        ("POST", None, false, BodyKind::Raw),
        ("GET", None, false, BodyKind::Raw),
        ("POST", Some("text/plain"), false, BodyKind::Raw),
    ];
    for (method, ct, raw, want) in cases {
        let mut headers = HeaderMap::new();
        if let Some(ct) = ct {
            headers.insert(header::CONTENT_TYPE, ct.parse().unwrap());
        }
        let got = body_kind(&method.parse().unwrap(), &headers, *raw).unwrap();
        assert_eq!(&got, want, "{method} {ct:?} raw={raw}");
        assert_eq!(
            got.parsed(),
            matches!(want, BodyKind::UrlEncoded | BodyKind::Multipart { .. })
        );
    }
}

#[test]
fn multipart_without_boundary_is_an_error() {
    for ct in [
        "multipart/form-data",
        "multipart/form-data; charset=utf-8",
        "multipart/form-data; boundary=",
        "multipart/form-data; boundary=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ] {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, ct.parse().unwrap());
        let got = body_kind(&Method::POST, &headers, false);
        assert!(
            matches!(got, Err(ConvertError::MultipartBoundary)),
            "{ct}: {got:?}"
        );
    }
}

#[test]
fn encode_into_reuses_the_buffer() {
    let p = parts("GET", "/", Version::HTTP_11, &[("host", "h")]);
    let attrs = Attributes::new();
    let ctx = request_context(
        &p,
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        false,
        false,
        None,
        &attrs,
    );
    let mut buf = BytesMut::new();
    let a = encode_context_into(&ctx, &mut buf).unwrap();
    let b = encode_context_into(&ctx, &mut buf).unwrap();
    assert_eq!(a, b);
    assert_eq!(a, encode_context(&ctx).unwrap());
    assert!(buf.is_empty());
}

#[test]
fn uri_of_parts_built_by_hand() {
    // A request whose URI has an authority but no scheme (authority-form, CONNECT).
    let mut p = parts("CONNECT", "/", Version::HTTP_11, &[("host", "h:443")]);
    p.uri = Uri::from_static("h:443");
    assert_eq!(absolute_uri(&p, false), "http://h:443");
}

fn header_name() -> impl Strategy<Value = String> {
    "[a-z0-9!#$%&'*+.^_`|~-]{1,24}"
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![8 => 0x20u8..0x7f, 1 => Just(b'\t'), 1 => 0x80u8..=0xff],
        0..40,
    )
}

proptest! {
    #[test]
    fn arbitrary_header_maps_round_trip_through_the_context(
        entries in prop::collection::vec((header_name(), header_value()), 0..24)
    ) {
        let mut p = parts("GET", "/", Version::HTTP_11, &[]);
        let mut want: indexmap::IndexMap<String, Vec<String>> = indexmap::IndexMap::new();
        for (name, value) in &entries {
            let hn = HeaderName::from_bytes(name.as_bytes()).unwrap();
            let hv = http::HeaderValue::from_bytes(value).unwrap();
            p.headers.append(hn, hv);
            if name != "host" && name != "transfer-encoding" {
                want.entry(canonical_header_name(name).into_owned())
                    .or_default()
                    .push(String::from_utf8_lossy(value).into_owned());
            }
        }
        let v = context_json(&p, false);
        let got: std::collections::HashMap<String, Vec<String>> =
            serde_json::from_value(v["headers"].clone()).unwrap();
        prop_assert_eq!(got.len(), want.len());
        for (k, vs) in &want {
            prop_assert_eq!(got.get(k), Some(vs), "{}", k);
        }
    }
}

/// The hand-written encoder gives exactly serde_json's bytes (the `Serialize` impl).
fn same_as_serde(p: &http::request::Parts, cookies_joined: bool) -> Result<(), TestCaseError> {
    let empty = Attributes::new();
    let mut attrs = Attributes::new();
    attrs.insert("k\"ey".into(), json!({"a": [1, "\u{1}"]}));
    let mut ctx = request_context(
        p,
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        false,
        true,
        None,
        &empty,
    );
    ctx.join_cookie_header = cookies_joined;
    let mut buf = bytes::BytesMut::new();
    prop_assert_eq!(
        encode_context(&ctx).unwrap(),
        encode_context_into(&ctx, &mut buf).unwrap()
    );
    let ctx = RequestContext {
        uploads: Some(json!({"f": {"name": "a\nb.txt"}})),
        attributes: &attrs,
        ..ctx
    };
    prop_assert_eq!(
        encode_context(&ctx).unwrap(),
        encode_context_into(&ctx, &mut buf).unwrap()
    );
    Ok(())
}

#[test]
fn needs_escape_finds_every_escaped_byte_at_every_offset() {
    for len in 0..20 {
        for at in 0..len {
            for bad in (0u8..0x20).chain([b'"', b'\\']) {
                let mut b = vec![b'a'; len];
                b[at] = bad;
                assert!(needs_escape(&b), "{b:?}");
            }
            let mut b = vec![b'a'; len];
            for ok in [0x20u8, b'!', b'#', b'[', b']', 0x7f, 0x80, 0xff] {
                b[at] = ok;
                assert!(!needs_escape(&b), "{b:?}");
            }
        }
    }
}

proptest! {
    #[test]
    fn the_hand_written_context_encoder_matches_serde_json(
        entries in prop::collection::vec((header_name(), header_value()), 0..12),
        cookie in "[ -~]{0,30}",
        query in "[a-z0-9=&%+]{0,20}",
        join in any::<bool>(),
    ) {
        let mut p = parts("POST", &format!("http://example.com/p?{query}"), Version::HTTP_11, &[]);
        for (name, value) in &entries {
            p.headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                http::HeaderValue::from_bytes(value).unwrap(),
            );
        }
        if let Ok(v) = http::HeaderValue::from_str(&cookie) {
            p.headers.append(header::COOKIE, v.clone());
            p.headers.append(header::COOKIE, v);
        }
        same_as_serde(&p, join)?;
        p.headers.clear();
        same_as_serde(&p, join)?;
    }
}

/// The fast path of `valid_host` accepts nothing its full check refuses.
fn full_host_check(host: &[u8]) -> bool {
    host.iter()
        .all(|&b| b.is_ascii_alphanumeric() || b"!$%&'()*+,-.:;=[]_~".contains(&b))
        && http::uri::Authority::try_from(host).is_ok()
}

#[test]
fn plain_hosts_pass_the_full_check_too() {
    for port in (0..=99_999u32)
        .step_by(7)
        .chain([65_535, 65_536, 99_999, 0, 80])
    {
        for host in [
            format!("h:{port}"),
            format!("127.0.0.1:{port}"),
            format!("a-b.c:{port:05}"),
        ] {
            assert!(plain_host(host.as_bytes()), "{host}");
            assert!(full_host_check(host.as_bytes()), "{host}");
        }
    }
    for host in [
        "", ":80", "h:", "h:123456", "h::1", "[::1]:80", "a b", "a/b", "h:8a",
    ] {
        assert!(!plain_host(host.as_bytes()), "{host}");
    }
}

proptest! {
    #[test]
    fn plain_host_implies_the_full_check(host in "[a-z0-9.:\\-]{0,12}") {
        if plain_host(host.as_bytes()) {
            prop_assert!(full_host_check(host.as_bytes()), "{}", host);
        }
        prop_assert_eq!(valid_host(host.as_bytes()), host.is_empty() || full_host_check(host.as_bytes()));
    }

    #[test]
    fn ipv4_is_written_as_display_writes_it(a: u8, b: u8, c: u8, d: u8) {
        let ip = std::net::Ipv4Addr::new(a, b, c, d);
        let mut out = Vec::new();
        write_ipv4(&mut out, ip);
        prop_assert_eq!(String::from_utf8(out).unwrap(), ip.to_string());
    }
}
