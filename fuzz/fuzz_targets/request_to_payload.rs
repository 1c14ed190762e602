//! HTTP request head → JSON request context (`body_kind`, `request_context`,
//! `encode_context`), with heads built from fuzz data through `http::Request::builder`.
//!
//! Input layout (so that real request heads are seeds): byte 0 holds switches (bit 0:
//! TLS connection, bit 1: `http.raw_body`, bit 2: the peer is IPv6), then the peer
//! address (4 or 16 bytes), then an HTTP/1-style head: `METHOD TARGET VERSION`,
//! `Name: value` lines, an empty line, and `key=value&…` pairs that become the
//! request's attributes and, for a multipart body, its uploads tree. Whatever `http`
//! refuses (a bad method, target, name or value) is dropped, never the whole input.
//!
//! Properties:
//! * nothing panics, and encoding never fails;
//! * the output is JSON that `serde_json` parses, with every key of docs/wire-protocol.md §3.3;
//! * `uri` is an absolute URL (scheme and authority) without CR or LF that `http::Uri`
//!   parses; unless the request line was in absolute form, its scheme is the
//!   connection's and its path and query are the request's (a `Host` header cannot
//!   change what PHP routes on);
//! * `headers` never carries `Host` or `Transfer-Encoding`.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::{HeaderName, HeaderValue, Request, Uri, Version};
use libfuzzer_sys::fuzz_target;
use pacer::http::convert::{Attributes, BodyKind, body_kind, encode_context, request_context};
use serde_json::Value;

const TLS: u8 = 1;
const RAW_BODY: u8 = 2;
const IPV6: u8 = 4;

fn version(token: &[u8]) -> Version {
    match token {
        b"HTTP/0.9" => Version::HTTP_09,
        b"HTTP/1.0" => Version::HTTP_10,
        b"HTTP/2" | b"HTTP/2.0" => Version::HTTP_2,
        b"HTTP/3" | b"HTTP/3.0" => Version::HTTP_3,
        _ => Version::HTTP_11,
    }
}

/// Splits `data` at the first `sep`.
fn split_once<'a>(data: &'a [u8], sep: &[u8]) -> (&'a [u8], &'a [u8]) {
    match data.windows(sep.len()).position(|w| w == sep) {
        Some(i) => (&data[..i], &data[i + sep.len()..]),
        None => (data, &[]),
    }
}

fn pairs(text: &[u8]) -> Vec<(String, String)> {
    text.split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = split_once(p, b"=");
            (
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&switches, rest)) = data.split_first() else {
        return;
    };
    let (remote, rest) = if switches & IPV6 != 0 {
        let Some((ip, rest)) = rest.split_first_chunk::<16>() else {
            return;
        };
        (IpAddr::V6(Ipv6Addr::from(*ip)), rest)
    } else {
        let Some((ip, rest)) = rest.split_first_chunk::<4>() else {
            return;
        };
        (IpAddr::V4(Ipv4Addr::from(*ip)), rest)
    };
    let tls = switches & TLS != 0;
    let (head, extra) = split_once(rest, b"\r\n\r\n");
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = lines.next().unwrap_or_default();
    let mut words = request_line.splitn(3, |&b| b == b' ');
    let method = words.next().unwrap_or_default();
    let target = words.next().unwrap_or_default();
    let version = version(words.next().unwrap_or_default());

    let mut builder = Request::builder()
        .method(method)
        .uri(target)
        .version(version);
    for line in lines {
        let (name, value) = split_once(line, b":");
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name),
            HeaderValue::from_bytes(value.trim_ascii_start()),
        ) else {
            continue;
        };
        builder = builder.header(name, value);
    }
    // A method or target that `http` refuses never reaches the conversion.
    let Ok(request) = builder.body(()) else {
        return;
    };
    let (parts, ()) = request.into_parts();

    let kind = body_kind(&parts.method, &parts.headers, switches & RAW_BODY != 0);
    let parsed = kind.as_ref().is_ok_and(BodyKind::parsed);
    let extra = pairs(extra);
    let uploads = matches!(kind, Ok(BodyKind::Multipart { .. })).then(|| {
        Value::Object(
            extra
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        )
    });
    let attributes: Attributes = extra
        .into_iter()
        .map(|(k, v)| (k, Value::from(vec![v])))
        .collect();

    let ctx = request_context(&parts, remote, tls, parsed, uploads, &attributes);
    let bytes = encode_context(&ctx).expect("the context always encodes");
    let json: Value = serde_json::from_slice(&bytes).expect("the context is valid JSON");
    let obj = json.as_object().expect("the context is an object");
    for key in [
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
    ] {
        assert!(obj.contains_key(key), "missing {key}: {json}");
    }
    assert_eq!(obj["parsed"], Value::Bool(parsed));
    assert_eq!(obj["method"].as_str(), Some(parts.method.as_str()));
    obj["remoteAddr"]
        .as_str()
        .and_then(|a| a.parse::<IpAddr>().ok())
        .expect("remoteAddr is an IP address");

    let uri = obj["uri"].as_str().expect("uri is a string");
    assert!(!uri.contains(['\r', '\n']), "CR/LF in uri {uri:?}");
    let absolute: Uri = uri
        .parse()
        .unwrap_or_else(|e| panic!("uri {uri:?} does not parse: {e}"));
    assert!(
        absolute.scheme().is_some() && absolute.authority().is_some(),
        "uri {uri:?} is not absolute"
    );
    let absolute_form = parts.version < Version::HTTP_2
        && parts.uri.scheme().is_some()
        && parts.uri.authority().is_some();
    if !absolute_form {
        let scheme = if tls { "https" } else { "http" };
        assert_eq!(absolute.scheme_str(), Some(scheme), "scheme of {uri:?}");
        // Authority-form targets (`CONNECT h:443`) have no path of their own.
        if let Some(pq) = parts.uri.path_and_query().map(|pq| pq.as_str())
            && pq.starts_with('/')
        {
            let got = absolute.path_and_query().map_or("/", |pq| pq.as_str());
            assert_eq!(got, pq, "the path PHP sees in {uri:?}");
        }
    }
    assert!(
        !obj["rawQuery"]
            .as_str()
            .unwrap_or("")
            .contains(['\r', '\n'])
    );

    let headers = obj["headers"].as_object().expect("headers is an object");
    for (name, values) in headers {
        let lower = name.to_ascii_lowercase();
        assert!(
            lower != "host" && lower != "transfer-encoding",
            "{name} sent to PHP"
        );
        assert!(values.is_array(), "{name}: {values}");
    }
});
