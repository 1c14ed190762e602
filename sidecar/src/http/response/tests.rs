use super::*;
use crate::relay::FrameCodec;
use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

fn json(ctx: &str) -> Result<ResponseHead, ResponseError> {
    parse_response(0, ctx.as_bytes())
}

fn values(h: &HeaderMap, name: &str) -> Vec<String> {
    h.get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect()
}

#[test]
fn json_variants_from_php() {
    type Case<'a> = (u8, &'a str, u16, &'a [(&'a str, &'a [&'a str])]);
    let cases: &[Case] = &[
        (0, r#"{"status":200,"headers":{}}"#, 200, &[]),
        // roadrunner-http 2.x: an empty PHP array
        (0, r#"{"status":204,"headers":[]}"#, 204, &[]),
        (0x08, r#"{"status":404}"#, 404, &[]),
        (0, r#"{"status":200,"headers":null}"#, 200, &[]),
        (
            0,
            r#"{"status":200,"headers":{"Content-Type":["text\/html; charset=UTF-8"],"Set-Cookie":["a=1; Path=\/","b=2"]}}"#,
            200,
            &[
                ("content-type", &["text/html; charset=UTF-8"]),
                ("set-cookie", &["a=1; Path=/", "b=2"]),
            ],
        ),
        // names as the app wrote them; same name in two spellings merges in order
        (
            0,
            r#"{"status":201,"headers":{"x-a":["1"],"X-A":["2"]}}"#,
            201,
            &[("x-a", &["1", "2"])],
        ),
        // whitespace, unknown keys, key order
        (
            0,
            " \n{\"headers\":{\"X\":[\"1\"]},\"extra\":{\"a\":[1]},\"status\":302}\n",
            302,
            &[("x", &["1"])],
        ),
        // lenient: a single string, numbers, null entries
        (
            0,
            r#"{"status":200,"headers":{"X-One":"v","X-N":[5,"6"],"X-Null":[null]}}"#,
            200,
            &[("x-one", &["v"]), ("x-n", &["5", "6"])],
        ),
        // UTF-8 and escapes in values pass through as bytes
        (
            0,
            r#"{"status":200,"headers":{"Content-Disposition":["attachment; filename=\"\u00e9.txt\""]}}"#,
            200,
            &[("content-disposition", &["attachment; filename=\"é.txt\""])],
        ),
        (0, r#"{"status":200,"headers":{"X-Empty":[]}}"#, 200, &[]),
        (
            0,
            r#"{"status":200,"headers":{"X-Blank":[""]}}"#,
            200,
            &[("x-blank", &[""])],
        ),
        (
            0,
            r#"{"status":200,"headers":{"X-Tab":["a\tb"]}}"#,
            200,
            &[("x-tab", &["a\tb"])],
        ),
    ];
    for (codec, ctx, status, want) in cases {
        let head = parse_response(*codec, ctx.as_bytes()).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        assert_eq!(head.status.as_u16(), *status, "{ctx}");
        assert_eq!(
            head.headers.keys().count(),
            want.len(),
            "{ctx}: {:?}",
            head.headers
        );
        for (name, vals) in *want {
            assert_eq!(values(&head.headers, name), *vals, "{ctx}");
        }
        assert!(!head.informational);
        assert!(head.trailers.is_none());
    }
}

#[test]
fn empty_context_is_200_without_headers() {
    for codec in [0, 0x08, 0x80] {
        assert_eq!(parse_response(codec, b"").unwrap(), ResponseHead::ok());
    }
}

#[test]
fn status_out_of_range_is_an_error() {
    for (ctx, status) in [
        (r#"{"status":99,"headers":{}}"#, 99),
        (r#"{"status":600}"#, 600),
        (r#"{"status":0}"#, 0),
        (r#"{"headers":{}}"#, 0),
        (r#"{"status":-200}"#, -200),
        (r#"{"status":70000}"#, 70000),
    ] {
        match json(ctx) {
            Err(ResponseError::Status(s)) => assert_eq!(s, status, "{ctx}"),
            other => panic!("{ctx}: {other:?}"),
        }
    }
    assert_eq!(json(r#"{"status":599}"#).unwrap().status.as_u16(), 599);
    assert_eq!(json(r#"{"status":100}"#).unwrap().status.as_u16(), 100);
}

#[test]
fn header_injection_never_passes() {
    for ctx in [
        r#"{"status":200,"headers":{"X-A":["ok\r\nSet-Cookie: evil=1"]}}"#,
        r#"{"status":200,"headers":{"X-A":["line\nbreak"]}}"#,
        r#"{"status":200,"headers":{"X-A":["cr\ronly"]}}"#,
        r#"{"status":200,"headers":{"X-A":["nul\u0000"]}}"#,
        r#"{"status":200,"headers":{"X-A":["bell\u0007"]}}"#,
        r#"{"status":200,"headers":{"X-A":["fine","del\u007f"]}}"#,
        r#"{"status":200,"headers":{"Location":"\r\nX: y"}}"#,
    ] {
        match json(ctx) {
            Err(ResponseError::HeaderValue(name)) => assert!(!name.contains('\n'), "{ctx}"),
            other => panic!("{ctx}: {other:?}"),
        }
    }
}

#[test]
fn invalid_header_names_are_errors() {
    for (ctx, shown) in [
        (r#"{"status":200,"headers":{"Bad Name":["v"]}}"#, "Bad Name"),
        (r#"{"status":200,"headers":{"X-\u00dc":["v"]}}"#, "X-Ü"),
        (r#"{"status":200,"headers":{"":["v"]}}"#, ""),
        (r#"{"status":200,"headers":{"X:Y":["v"]}}"#, "X:Y"),
        (r#"{"status":200,"headers":{"X\r\nY":["v"]}}"#, "X\r\nY"),
    ] {
        match json(ctx) {
            Err(ResponseError::HeaderName(n)) => assert_eq!(n, shown, "{ctx}"),
            other => panic!("{ctx}: {other:?}"),
        }
    }
    let long = format!(
        r#"{{"status":200,"headers":{{"{}é":["v"]}}}}"#,
        "x".repeat(63)
    );
    match json(&long) {
        Err(ResponseError::HeaderName(n)) => assert!(n.len() <= 64, "{n}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn malformed_json_is_an_error() {
    for ctx in [
        "{",
        r#"{"status":"200"}"#,
        r#"{"status":200.5}"#,
        r#"{"status":200,"headers":["X"]}"#,
        r#"{"status":200,"headers":{"X":[{"a":1}]}}"#,
        r#"{"status":200,"headers":{"X":true}}"#,
        r#"{"status":200} trailing"#,
        r#"[200]"#,
    ] {
        assert!(
            matches!(
                parse_response(0x08, ctx.as_bytes()),
                Err(ResponseError::Json(_))
            ),
            "{ctx}"
        );
    }
}

#[test]
fn hop_by_hop_headers_are_dropped() {
    let head = json(
        r#"{"status":200,"headers":{"Connection":["close, X-Private"],"X-Private":["1"],"Keep-Alive":["timeout=5"],"Transfer-Encoding":["chunked"],"Upgrade":["h2c"],"Proxy-Connection":["keep-alive"],"TE":["trailers"],"Http2-Push":["/app.css"],"Content-Type":["text/plain"]}}"#,
    )
    .unwrap();
    assert_eq!(head.headers.len(), 1, "{:?}", head.headers);
    assert_eq!(values(&head.headers, "content-type"), ["text/plain"]);
    assert!(head.connection_close);

    let head = json(r#"{"status":200,"headers":{"Connection":["keep-alive"]}}"#).unwrap();
    assert!(head.headers.is_empty());
    assert!(!head.connection_close);
}

#[test]
fn trailers_are_moved() {
    let head = json(
        r#"{"status":200,"headers":{"Trailer":["X-Checksum, X-Timing","Content-Length"],"X-Checksum":["abc"],"X-Timing":["1","2"],"Content-Length":["5"],"X-Other":["o"]}}"#,
    )
    .unwrap();
    let trailers = head.trailers.expect("trailers");
    assert_eq!(values(&trailers, "x-checksum"), ["abc"]);
    assert_eq!(values(&trailers, "x-timing"), ["1", "2"]);
    assert_eq!(trailers.len(), 3);
    assert!(head.headers.get("x-checksum").is_none());
    assert!(head.headers.get("x-timing").is_none());
    // framing fields are never trailers; Trailer itself stays to declare them
    assert_eq!(values(&head.headers, "content-length"), ["5"]);
    assert_eq!(values(&head.headers, "x-other"), ["o"]);
    assert_eq!(
        values(&head.headers, "trailer"),
        ["X-Checksum, X-Timing", "Content-Length"]
    );

    // a declared trailer that is not there moves nothing
    let head = json(r#"{"status":200,"headers":{"Trailer":["X-Late"]}}"#).unwrap();
    assert!(head.trailers.is_none());
}

#[test]
fn informational_statuses_are_reported() {
    let head = json(
        r#"{"status":103,"headers":{"Link":["</a.css>; rel=preload","</b.js>; rel=preload"]}}"#,
    )
    .unwrap();
    assert!(head.informational);
    assert_eq!(head.status, StatusCode::EARLY_HINTS);
    assert_eq!(values(&head.headers, "link").len(), 2);
    let head =
        json(r#"{"status":101,"headers":{"Upgrade":["websocket"],"Trailer":["X"],"X":["1"]}}"#)
            .unwrap();
    assert!(head.informational);
    assert!(head.trailers.is_none());
    assert!(head.headers.get("upgrade").is_none());
    assert!(!json(r#"{"status":200}"#).unwrap().informational);
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn protobuf_golden_frame() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/goridge/frames.json"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let golden = doc["frames"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "http_response_proto")
        .unwrap();
    let mut buf = BytesMut::from(&hex(golden["hex"].as_str().unwrap())[..]);
    let frame = FrameCodec::default().decode(&mut buf).unwrap().unwrap();
    let ctx_len = frame.options.as_slice()[0] as usize;
    let (context, body) = frame.payload.split_at(ctx_len);
    assert_eq!(body, b"hi");
    let head = parse_response(frame.flags, context).unwrap();
    let reply = Payload::new(
        frame.flags,
        Bytes::copy_from_slice(context),
        Bytes::copy_from_slice(body),
    );
    assert_eq!(parse(&reply).unwrap(), head);
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.headers.len(), 1);
    assert_eq!(values(&head.headers, "content-type"), ["text/plain"]);
}

/// A tiny protobuf writer for the tests.
fn pb_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn pb_bytes(out: &mut Vec<u8>, field: u64, data: &[u8]) {
    pb_varint(out, field << 3 | 2);
    pb_varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

fn pb_header(out: &mut Vec<u8>, name: &[u8], values: &[&[u8]], value_first: bool) {
    let mut hv = Vec::new();
    for v in values {
        pb_bytes(&mut hv, 1, v);
    }
    let mut entry = Vec::new();
    if value_first {
        pb_bytes(&mut entry, 2, &hv);
        pb_bytes(&mut entry, 1, name);
    } else {
        pb_bytes(&mut entry, 1, name);
        pb_bytes(&mut entry, 2, &hv);
    }
    pb_bytes(out, 2, &entry);
}

#[test]
fn protobuf_variants() {
    let mut msg = Vec::new();
    pb_varint(&mut msg, 1 << 3);
    pb_varint(&mut msg, 201);
    pb_header(&mut msg, b"Set-Cookie", &[b"a=1", b"b=2"], false);
    pb_header(&mut msg, b"X-Rev", &[b"r"], true);
    // unknown fields of every wire type are skipped
    pb_varint(&mut msg, 9 << 3);
    pb_varint(&mut msg, 12345);
    pb_bytes(&mut msg, 10, b"ignored");
    pb_varint(&mut msg, 11 << 3 | 1);
    msg.extend_from_slice(&[0; 8]);
    pb_varint(&mut msg, 12 << 3 | 5);
    msg.extend_from_slice(&[0; 4]);
    let head = parse_response(0x80, &msg).unwrap();
    assert_eq!(head.status.as_u16(), 201);
    assert_eq!(values(&head.headers, "set-cookie"), ["a=1", "b=2"]);
    assert_eq!(values(&head.headers, "x-rev"), ["r"]);
    // sniffed without a codec flag
    assert_eq!(parse_response(0, &msg).unwrap(), head);

    // negative int64 status: 10-byte varint
    let mut neg = Vec::new();
    pb_varint(&mut neg, 1 << 3);
    pb_varint(&mut neg, (-1i64) as u64);
    assert!(matches!(
        parse_response(0x80, &neg),
        Err(ResponseError::Status(-1))
    ));

    // injection and bad names through protobuf too
    let mut bad = vec![0x08, 0xc8, 0x01];
    pb_header(&mut bad, b"X-A", &[b"x\r\nY: z"], false);
    assert!(matches!(
        parse_response(0x80, &bad),
        Err(ResponseError::HeaderValue(_))
    ));
    let mut bad = vec![0x08, 0xc8, 0x01];
    pb_header(&mut bad, b"X A", &[b"v"], false);
    assert!(matches!(
        parse_response(0x80, &bad),
        Err(ResponseError::HeaderName(_))
    ));
    let mut bad = vec![0x08, 0xc8, 0x01];
    pb_header(&mut bad, b"\xff", &[b"v"], false);
    assert!(matches!(
        parse_response(0x80, &bad),
        Err(ResponseError::Proto(_))
    ));
}

#[test]
fn truncated_protobuf_is_an_error() {
    for msg in [
        &[0x08][..],             // varint missing
        &[0x08, 0xc8][..],       // varint cut
        &[0x12, 0x05, 0x0a][..], // length beyond the end
        &[0x0b][..],             // group wire type
        &[0x00, 0x01][..],       // field 0
        &[
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ][..], // 11-byte varint
        &[0x59, 0x00][..],       // fixed64 cut
    ] {
        assert!(
            matches!(parse_response(0x80, msg), Err(ResponseError::Proto(_))),
            "{msg:02x?}"
        );
    }
}

/// Both JSON readers on one reply: the fast one answers only what serde reads the same.
fn fast_agrees_with_serde(reply: &[u8]) -> Result<bool, proptest::test_runner::TestCaseError> {
    let mut fast_headers = HeaderMap::new();
    let Some(status) = fast::decode(reply, &mut fast_headers) else {
        return Ok(false);
    };
    let mut serde_headers = HeaderMap::new();
    let serde_status = decode_json_serde(reply, &mut serde_headers);
    proptest::prop_assert!(
        serde_status.is_ok(),
        "{}: {serde_status:?}",
        String::from_utf8_lossy(reply)
    );
    proptest::prop_assert_eq!(status, serde_status.unwrap_or_default());
    proptest::prop_assert_eq!(fast_headers, serde_headers);
    Ok(true)
}

#[test]
fn the_fast_json_reader_takes_what_php_writes_and_leaves_the_rest() {
    for reply in [
        r#"{"status":200,"headers":{"Content-Type":["text\/plain"]}}"#,
        r#"{"status":204,"headers":[]}"#,
        r#"{"status":200,"headers":{}}"#,
        r#"{"status":302,"headers":{"Location":["\/a?b=\"c\"\\"],"Set-Cookie":["a=1","b=2"],"X-Empty":[]}}"#,
    ] {
        let mut h = HeaderMap::new();
        assert!(fast::decode(reply.as_bytes(), &mut h).is_some(), "{reply}");
        assert!(fast_agrees_with_serde(reply.as_bytes()).unwrap());
    }
    for reply in [
        r#"{"status":200}"#,
        r#"{ "status":200,"headers":{}}"#,
        r#"{"headers":{},"status":200}"#,
        r#"{"status":200,"headers":null}"#,
        r#"{"status":200.0,"headers":{}}"#,
        r#"{"status":0200,"headers":{}}"#,
        r#"{"status":-1,"headers":{}}"#,
        r#"{"status":200,"headers":{"A":["\u0041"]}}"#,
        r#"{"status":200,"headers":{"A":[1]}}"#,
        r#"{"status":200,"headers":{"A":"x"}}"#,
        r#"{"status":200,"headers":{"A B":["x"]}}"#,
        r#"{"status":200,"headers":{"A":["x\u007f"]}}"#,
        "{\"status\":200,\"headers\":{\"A\":[\"\x7f\"]}}",
        "{\"status\":200,\"headers\":{\"A\":[\"caf\u{e9}\"]}}",
        r#"{"status":200,"headers":{}} "#,
        r#"{"status":200,"headers":{},"x":1}"#,
    ] {
        let mut h = HeaderMap::new();
        assert!(fast::decode(reply.as_bytes(), &mut h).is_none(), "{reply}");
    }
    // What falls back still parses (or fails) as before.
    assert_eq!(
        json(r#"{"status":200,"headers":{"A":["\u0041"]}}"#)
            .unwrap()
            .headers["a"],
        "A"
    );
    assert!(matches!(
        json(r#"{"status":200,"headers":{"A B":["x"]}}"#),
        Err(ResponseError::HeaderName(_))
    ));
    assert!(matches!(
        json("{\"status\":200,\"headers\":{\"A\":[\"\x7f\"]}}"),
        Err(ResponseError::HeaderValue(_))
    ));
}

proptest::proptest! {
    #[test]
    fn the_fast_json_reader_agrees_with_serde(
        status in 0i64..1000,
        entries in proptest::collection::vec(
            ("[A-Za-z0-9 :/_-]{0,8}", proptest::collection::vec("[ -~\\x00-\\x1f\\u{7f}é]{0,10}", 0..3)),
            0..4,
        ),
        php_slashes: bool,
        mutate in proptest::option::of((0usize..200, proptest::num::u8::ANY)),
    ) {
        let map: serde_json::Map<String, serde_json::Value> = entries
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::json!(v)))
            .collect();
        let mut reply = serde_json::to_string(&serde_json::json!({"status": status, "headers": map}))
            .unwrap()
            .into_bytes();
        if php_slashes {
            reply = String::from_utf8(reply).unwrap().replace('/', "\\/").into_bytes();
        }
        if let Some((at, byte)) = mutate
            && !reply.is_empty()
        {
            let at = at % reply.len();
            reply[at] = byte;
        }
        fast_agrees_with_serde(&reply)?;
        // And through the public entry: the same result as serde alone, errors included.
        let mut serde_headers = HeaderMap::new();
        let reference = decode_json_serde(&reply, &mut serde_headers);
        let mut headers = HeaderMap::new();
        let got = decode_json(&reply, &mut headers);
        proptest::prop_assert_eq!(got.is_ok(), reference.is_ok());
        if let (Ok(a), Ok(b)) = (got, reference) {
            proptest::prop_assert_eq!(a, b);
            proptest::prop_assert_eq!(headers, serde_headers);
        }
    }
}
