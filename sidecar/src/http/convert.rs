//! HTTP request → Goridge payload: the JSON request context of docs/wire-protocol.md §3.3
//! and §10, and the body classification of §3.4. Pure: the server reads the body and
//! hands the results in.
//!
//! The context is what RoadRunner's Go handler builds (`handler/request.go`):
//!
//! | key | value |
//! |---|---|
//! | `remoteAddr` | client IP without port |
//! | `protocol` | `HTTP/1.1`, `HTTP/2.0`, `HTTP/1.0` |
//! | `method` | verbatim |
//! | `uri` | absolute: `http(s)://` + Host (h2: `:authority`) + path + `?query` |
//! | `headers` | canonical MIME names (`X-Foo-Bar`) → list of values; no `Host`, no `Transfer-Encoding` |
//! | `cookies` | name → URL-unescaped value |
//! | `rawQuery` | query without `?` |
//! | `parsed` | the body is a JSON form tree |
//! | `uploads` | `null` or the uploads tree |
//! | `attributes` | object |
//!
//! [`RequestContext`] borrows from the request head so that building and encoding it
//! costs a handful of small allocations; it is built and encoded once per request.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Version};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, SerializeStruct, Serializer};

pub use super::client_ip::client_ip;

/// Request attributes set by middleware (`attributes` in the context). RoadRunner's v5
/// handler sends name → list of strings; PHP accepts any JSON value.
pub type Attributes = serde_json::Map<String, serde_json::Value>;

/// Why a request could not be turned into a payload.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// `multipart/form-data` without a usable `boundary` parameter: 400.
    #[error("multipart request without a valid boundary")]
    MultipartBoundary,
    /// Serializing the context failed (cannot happen with string keys; kept typed).
    #[error("encoding the request context: {0}")]
    Encode(#[from] serde_json::Error),
    /// A `Host` header that cannot be a host ([`valid_host`]): 400, as Go's server
    /// answers ("malformed Host header").
    #[error("malformed Host header")]
    Host,
}

/// The JSON request context PHP's `HttpWorker::waitRequest()` reads.
///
/// Serializes (see [`encode_context`]) to exactly the keys of docs/wire-protocol.md §3.3.
#[derive(Debug, Clone)]
pub struct RequestContext<'a> {
    /// Client IP, without port; IPv4-mapped IPv6 addresses are shown as IPv4 (as Go
    /// prints them).
    pub remote_addr: IpAddr,
    /// `HTTP/1.1`, `HTTP/2.0`, …
    pub protocol: &'static str,
    pub method: &'a str,
    /// The absolute URL.
    pub uri: String,
    /// All request headers; serialized with canonical names, without `Host` and
    /// `Transfer-Encoding` (as Go's server does).
    pub headers: &'a HeaderMap,
    /// HTTP/2 and later split `Cookie` into several fields; Go joins them back with
    /// `"; "` (RFC 9113 §8.2.3), so PHP sees one `Cookie` value.
    pub join_cookie_header: bool,
    /// Name → unescaped value, in first-seen order; a later duplicate name replaces the
    /// value (Go fills a map).
    pub cookies: Vec<(&'a str, Cow<'a, str>)>,
    pub raw_query: Cow<'a, str>,
    pub parsed: bool,
    pub uploads: Option<serde_json::Value>,
    pub attributes: &'a Attributes,
}

/// Builds the context of one request.
///
/// * `remote_ip`: the client address (already resolved through trusted proxies, see
///   [`super::client_ip::client_ip`]).
/// * `tls`: the connection is TLS (`https://` in `uri`).
/// * `parsed`: the body sent is a JSON form tree ([`BodyKind::parsed`]).
/// * `uploads`: the uploads tree of a multipart form.
pub fn request_context<'a>(
    parts: &'a http::request::Parts,
    remote_ip: IpAddr,
    tls: bool,
    parsed: bool,
    uploads: Option<serde_json::Value>,
    attributes: &'a Attributes,
) -> RequestContext<'a> {
    RequestContext {
        remote_addr: remote_ip.to_canonical(),
        protocol: protocol(parts.version),
        method: parts.method.as_str(),
        uri: absolute_uri(parts, tls),
        headers: &parts.headers,
        join_cookie_header: parts.version >= Version::HTTP_2,
        cookies: cookies(&parts.headers),
        raw_query: strip_crlf(parts.uri.query().unwrap_or("")),
        parsed,
        uploads,
        attributes,
    }
}

/// Encodes the context as JSON into a fresh buffer: the hot path's encoder (see
/// `write_context`), the same bytes as the `Serialize` impl gives.
///
/// Into a `Vec`, not a `BytesMut`: `Vec`'s pushes are plain `extend_from_slice` where
/// `BytesMut`'s writer adds checks and an indirection per piece. The `Vec` becomes
/// `Bytes` without a copy.
pub fn encode_context(ctx: &RequestContext<'_>) -> Result<Bytes, ConvertError> {
    let mut out = Vec::with_capacity(estimate(ctx));
    write_context(ctx, &mut out)?;
    Ok(Bytes::from(out))
}

/// Encodes the context as JSON into `buf` (cleared first) and splits it off, so a caller
/// that keeps `buf` reuses its allocation across requests. This one goes through
/// serde_json and the context's `Serialize` impl: it is the reference that the
/// hand-written [`encode_context`] is tested (byte for byte) and benchmarked against.
pub fn encode_context_into(
    ctx: &RequestContext<'_>,
    buf: &mut BytesMut,
) -> Result<Bytes, ConvertError> {
    buf.clear();
    buf.reserve(estimate(ctx));
    if let Err(e) = serde_json::to_writer((&mut *buf).writer(), ctx) {
        buf.clear();
        return Err(e.into());
    }
    Ok(buf.split().freeze())
}

/// The context as JSON, the same bytes as its `Serialize` impl gives through
/// `serde_json` (a test pins that), written directly: serde_json checks every byte of
/// every string against its escape table, one at a time; [`json_str`] checks eight
/// bytes at a time and copies a string that needs no escape in one go. Callgrind,
/// `GET /hello` from wrk: `encode_context` 2,778 → 1,973 instructions per request
/// (of pacer's ≈ 31,000).
fn write_context(ctx: &RequestContext<'_>, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    use std::io::Write as _;
    out.extend_from_slice(b"{\"remoteAddr\":\"");
    match ctx.remote_addr {
        IpAddr::V4(ip) => write_ipv4(out, ip),
        IpAddr::V6(ip) => write!(out, "{ip}").map_err(serde_json::Error::io)?,
    }
    out.extend_from_slice(b"\",\"protocol\":");
    json_str(out, ctx.protocol)?;
    out.extend_from_slice(b",\"method\":");
    json_str(out, ctx.method)?;
    out.extend_from_slice(b",\"uri\":");
    json_str(out, &ctx.uri)?;
    out.extend_from_slice(b",\"headers\":{");
    let mut iter = ctx.headers.iter().peekable();
    let mut first_entry = true;
    while let Some((name, first)) = iter.next() {
        if name == header::HOST || name == header::TRANSFER_ENCODING {
            while iter.next_if(|(n, _)| *n == name).is_some() {}
            continue;
        }
        if !first_entry {
            out.push(b',');
        }
        first_entry = false;
        with_canonical(name, |key| json_str(out, key))?;
        out.extend_from_slice(b":[");
        if ctx.join_cookie_header && name == header::COOKIE {
            let mut joined = value_str(first).into_owned();
            while let Some((_, v)) = iter.next_if(|(n, _)| *n == name) {
                joined.push_str("; ");
                joined.push_str(&value_str(v));
            }
            json_str(out, &joined)?;
        } else {
            json_str(out, &value_str(first))?;
            while let Some((_, v)) = iter.next_if(|(n, _)| *n == name) {
                out.push(b',');
                json_str(out, &value_str(v))?;
            }
        }
        out.push(b']');
    }
    out.extend_from_slice(b"},\"cookies\":{");
    for (i, (k, v)) in ctx.cookies.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json_str(out, k)?;
        out.push(b':');
        json_str(out, v)?;
    }
    out.extend_from_slice(b"},\"rawQuery\":");
    json_str(out, &ctx.raw_query)?;
    out.extend_from_slice(if ctx.parsed {
        b",\"parsed\":true,\"uploads\":"
    } else {
        b",\"parsed\":false,\"uploads\":"
    });
    match &ctx.uploads {
        None => out.extend_from_slice(b"null"),
        Some(v) => serde_json::to_writer(&mut *out, v)?,
    }
    out.extend_from_slice(b",\"attributes\":");
    if ctx.attributes.is_empty() {
        out.extend_from_slice(b"{}");
    } else {
        serde_json::to_writer(&mut *out, ctx.attributes)?;
    }
    out.push(b'}');
    Ok(())
}

/// `a.b.c.d`, as `Ipv4Addr`'s `Display` writes it: that one goes through the formatting
/// machinery (≈ 970 instructions per request in callgrind for four small numbers).
fn write_ipv4(out: &mut Vec<u8>, ip: std::net::Ipv4Addr) {
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        if octet >= 100 {
            out.push(b'0' + octet / 100);
        }
        if octet >= 10 {
            out.push(b'0' + octet / 10 % 10);
        }
        out.push(b'0' + octet % 10);
    }
}

/// `s` as a JSON string: copied as is when it needs no escape, else through serde_json
/// (the same escapes as everywhere else).
fn json_str(out: &mut Vec<u8>, s: &str) -> Result<(), serde_json::Error> {
    if needs_escape(s.as_bytes()) {
        return serde_json::to_writer(&mut *out, s);
    }
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
    Ok(())
}

/// Whether `b` holds a byte JSON must escape (a control byte, `"` or `\\`), eight
/// bytes at a time: `(w - 0x01…·n) & !w & 0x80…` is non-zero exactly when some byte of
/// `w` is below `n` (n ≤ 0x80), and a byte equal to `c` is a zero byte of `w ^ c…`.
fn needs_escape(b: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH;
    let mut chunks = b.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let hits = below(w, 0x20)
            | below(w ^ (ONES * u64::from(b'"')), 1)
            | below(w ^ (ONES * u64::from(b'\\')), 1);
        if hits != 0 {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&c| c < 0x20 || c == b'"' || c == b'\\')
}

/// A capacity guess that avoids regrowing the buffer for ordinary requests.
fn estimate(ctx: &RequestContext<'_>) -> usize {
    let headers: usize = ctx
        .headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 8)
        .sum();
    160 + ctx.uri.len() * 2 + headers + ctx.cookies.len() * 8
}

/// Go's `r.Proto`.
pub fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// The absolute request URL, as RoadRunner's `URI()`:
///
/// * an HTTP/1 absolute-form request line (`GET http://h/p HTTP/1.1`) is used as is;
/// * otherwise `http://` or `https://` (from the connection, never from the client) +
///   the host (HTTP/2: `:authority`, else the `Host` header) + path + `?query`.
///
/// CR and LF are removed. Two cases RoadRunner gets wrong are made parseable for PHP:
/// a request without any host (HTTP/1.0 without `Host`) gets `localhost` instead of
/// `http:///p`, and `OPTIONS *` gets no path instead of `http://h*`.
///
/// A `Host` header that is not a [`valid_host`] is ignored: spliced into the URL, a
/// `/`, `?`, `#` or `@` in it would change the path, query or host PHP routes on. (Go's
/// server never lets such a request through; the server here refuses it first, see
/// [`check_host`].)
pub fn absolute_uri(parts: &http::request::Parts, tls: bool) -> String {
    let uri = &parts.uri;
    let scheme = if tls { "https://" } else { "http://" };
    if parts.version < Version::HTTP_2
        && uri.scheme().is_some()
        && let Some(authority) = uri.authority()
    {
        // An absolute-form request line names the host (RFC 9112 §3.2.2), but the scheme
        // is the connection's: `GET https://h/` over plain HTTP must not make PHP believe
        // the request was encrypted.
        let pq = uri.path_and_query().map_or("/", |pq| pq.as_str());
        return strip_crlf(&format!("{scheme}{authority}{pq}")).into_owned();
    }
    let host_header = parts
        .headers
        .get(header::HOST)
        .filter(|h| valid_host(h.as_bytes()))
        .and_then(|h| std::str::from_utf8(h.as_bytes()).ok());
    let authority = uri.authority().map(|a| a.as_str());
    let host = if parts.version >= Version::HTTP_2 {
        authority.or(host_header)
    } else {
        host_header.or(authority)
    }
    .filter(|h| !h.is_empty())
    .unwrap_or("localhost");
    let path_and_query = match uri.path_and_query().map(|pq| pq.as_str()) {
        Some("*") | None => "",
        Some(pq) => pq,
    };
    let mut out = String::with_capacity(scheme.len() + host.len() + path_and_query.len());
    out.push_str(scheme);
    out.push_str(host);
    if !path_and_query.is_empty() && !path_and_query.starts_with('/') {
        // An authority-form or odd request target: keep the URL parseable.
        out.push('/');
    }
    out.push_str(path_and_query);
    match strip_crlf(&out) {
        Cow::Borrowed(_) => out,
        Cow::Owned(s) => s,
    }
}

/// Whether a `Host` value can be the host of a URL: only the bytes Go's
/// `httpguts.ValidHostHeader` accepts (letters, digits, `[]:` and the sub-delimiters;
/// no `/`, `?`, `#`, `@`, space or control byte), forming a URI authority (so no stray
/// bracket or a second port). The empty value is Go's "no host" and is valid.
pub fn valid_host(host: &[u8]) -> bool {
    host.is_empty()
        || plain_host(host)
        || (host.iter().all(|&b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b'-'
                        | b'.'
                        | b':'
                        | b';'
                        | b'='
                        | b'['
                        | b']'
                        | b'_'
                        | b'~'
                )
        }) && http::uri::Authority::try_from(host).is_ok())
}

/// What nearly every request carries, a name or IPv4 address of letters, digits, `.`
/// and `-` with an optional `:port` of up to five digits: valid without parsing it as
/// an authority (which cost ≈ 800 instructions per request, twice: here and in
/// [`absolute_uri`]). A test pins that everything this accepts [`valid_host`]'s full
/// check accepts too.
fn plain_host(host: &[u8]) -> bool {
    let (name, port) = match host.iter().position(|&b| b == b':') {
        Some(i) => (&host[..i], Some(&host[i + 1..])),
        None => (host, None),
    };
    !name.is_empty()
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.iter().all(u8::is_ascii_digit))
}

/// Refuses a request whose `Host` header is not a [`valid_host`], before any of it
/// reaches PHP (Go's server answers such a request with 400).
pub fn check_host(headers: &HeaderMap) -> Result<(), ConvertError> {
    match headers.get(header::HOST) {
        Some(h) if !valid_host(h.as_bytes()) => Err(ConvertError::Host),
        _ => Ok(()),
    }
}

fn strip_crlf(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b == b'\r' || b == b'\n') {
        Cow::Owned(s.replace(['\r', '\n'], ""))
    } else {
        Cow::Borrowed(s)
    }
}

/// Go's canonical MIME header key: the first letter and every letter after a `-` upper
/// case, the rest lower case (`x-foo-bar` → `X-Foo-Bar`, `www-authenticate` →
/// `Www-Authenticate`). A name with a byte that is not a token character is left as
/// is, like Go does.
pub fn canonical_header_name(name: &str) -> Cow<'_, str> {
    if !name.bytes().all(is_token_byte) {
        return Cow::Borrowed(name);
    }
    let mut upper = true;
    let needs_change = name.bytes().any(|b| {
        let wrong = if upper {
            b.is_ascii_lowercase()
        } else {
            b.is_ascii_uppercase()
        };
        upper = b == b'-';
        wrong
    });
    if !needs_change {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
        upper = c == '-';
    }
    Cow::Owned(out)
}

/// RFC 9110 `tchar`.
pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Writes the canonical form of a (lower-case, valid) header name into a stack buffer,
/// so the common case allocates nothing.
fn with_canonical<R>(name: &HeaderName, f: impl FnOnce(&str) -> R) -> R {
    let name = name.as_str();
    let mut buf = [0u8; 64];
    if name.len() <= buf.len() {
        let mut upper = true;
        for (dst, &b) in buf.iter_mut().zip(name.as_bytes()) {
            *dst = if upper {
                b.to_ascii_uppercase()
            } else {
                b.to_ascii_lowercase()
            };
            upper = b == b'-';
        }
        if let Ok(s) = std::str::from_utf8(&buf[..name.len()]) {
            return f(s);
        }
    }
    f(&canonical_header_name(name))
}

/// The `cookies` map: every `Cookie` field, split like Go's `readCookies`: pairs split
/// on `;`, trimmed; the name must be a token, the value (optionally in double quotes)
/// may hold only `0x20..0x7E` without `"`, `;` and `\`. Values are URL-unescaped
/// (`url.QueryUnescape`: `+` is a space); a value that fails to unescape drops the
/// cookie. A repeated name keeps its first position and takes the last value.
pub fn cookies(headers: &HeaderMap) -> Vec<(&str, Cow<'_, str>)> {
    let mut out: Vec<(&str, Cow<'_, str>)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for field in headers.get_all(header::COOKIE) {
        for pair in field.as_bytes().split(|&b| b == b';') {
            let pair = pair.trim_ascii();
            if pair.is_empty() {
                continue;
            }
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            let name = name.trim_ascii();
            let mut value = value.trim_ascii();
            if name.is_empty() || !name.iter().copied().all(is_token_byte) {
                continue;
            }
            if value.len() > 1 && value[0] == b'"' && value[value.len() - 1] == b'"' {
                value = &value[1..value.len() - 1];
            }
            if !value
                .iter()
                .all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b';' && b != b'\\')
            {
                continue;
            }
            // Both are ASCII by now.
            let (Ok(name), Ok(value)) = (std::str::from_utf8(name), std::str::from_utf8(value))
            else {
                continue;
            };
            let Some(value) = query_unescape(value) else {
                continue;
            };
            // A repeated name takes the later value (Go fills a map). Cookie headers
            // can hold thousands of pairs, so large sets are indexed, not scanned.
            if out.len() < 16 {
                match out.iter_mut().find(|(n, _)| *n == name) {
                    Some(slot) => slot.1 = value,
                    None => out.push((name, value)),
                }
            } else {
                if index.is_empty() {
                    index.extend(out.iter().enumerate().map(|(i, (n, _))| (*n, i)));
                }
                match index.get(name) {
                    Some(&i) => out[i].1 = value,
                    None => {
                        index.insert(name, out.len());
                        out.push((name, value));
                    }
                }
            }
        }
    }
    out
}

/// Go's `url.QueryUnescape`: `%XX` → byte, `+` → space; a `%` without two hex digits
/// is an error. Invalid UTF-8 in the result becomes U+FFFD (as Go's JSON encoder does).
pub fn query_unescape(s: &str) -> Option<Cow<'_, str>> {
    if !s.contains(['%', '+']) {
        return Some(Cow::Borrowed(s));
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16))?;
                let lo = bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16))?;
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    })
}

/// How the request body travels to PHP (docs/wire-protocol.md §3.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// `HEAD` and `OPTIONS`: the body is not read; PHP gets an empty body.
    None,
    /// `application/x-www-form-urlencoded`: the JSON data tree ([`super::form`]).
    UrlEncoded,
    /// `multipart/form-data`: the JSON tree of the non-file fields; files become
    /// `uploads` ([`super::uploads`]).
    Multipart { boundary: String },
    /// Everything else, and forms when `http.raw_body` is on: the bytes as they came.
    Raw,
}

impl BodyKind {
    /// The `parsed` flag of the context.
    pub fn parsed(&self) -> bool {
        matches!(self, BodyKind::UrlEncoded | BodyKind::Multipart { .. })
    }
}

/// Classifies the body from the method and the (first) `Content-Type`, like
/// RoadRunner's `contentType()`: a substring match (here case-insensitive, since media
/// types are). Forms are parsed for every method but `HEAD`/`OPTIONS`; Go parses an
/// urlencoded body only for POST, PUT and PATCH and silently sends `{}` otherwise.
pub fn body_kind(
    method: &Method,
    headers: &HeaderMap,
    raw_body: bool,
) -> Result<BodyKind, ConvertError> {
    if method == Method::HEAD || method == Method::OPTIONS {
        return Ok(BodyKind::None);
    }
    if raw_body {
        return Ok(BodyKind::Raw);
    }
    let Some(ct) = headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()) else {
        return Ok(BodyKind::Raw);
    };
    if contains_ignore_case(ct, b"application/x-www-form-urlencoded") {
        return Ok(BodyKind::UrlEncoded);
    }
    if contains_ignore_case(ct, b"multipart/form-data") {
        let ct = String::from_utf8_lossy(ct);
        return match multer::parse_boundary(ct.as_ref()) {
            // RFC 2046 §5.1.1: 1 to 70 characters.
            Ok(boundary) if (1..=70).contains(&boundary.len()) => {
                Ok(BodyKind::Multipart { boundary })
            }
            _ => Err(ConvertError::MultipartBoundary),
        };
    }
    Ok(BodyKind::Raw)
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

impl Serialize for RequestContext<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("RequestContext", 10)?;
        s.serialize_field("remoteAddr", &self.remote_addr)?;
        s.serialize_field("protocol", self.protocol)?;
        s.serialize_field("method", self.method)?;
        s.serialize_field("uri", &self.uri)?;
        s.serialize_field(
            "headers",
            &HeadersJson {
                map: self.headers,
                join_cookies: self.join_cookie_header,
            },
        )?;
        s.serialize_field("cookies", &CookiesJson(&self.cookies))?;
        s.serialize_field("rawQuery", &self.raw_query)?;
        s.serialize_field("parsed", &self.parsed)?;
        s.serialize_field("uploads", &self.uploads)?;
        s.serialize_field("attributes", self.attributes)?;
        s.end()
    }
}

struct HeadersJson<'a> {
    map: &'a HeaderMap,
    join_cookies: bool,
}

type HeaderIter<'a> = std::iter::Peekable<header::Iter<'a, HeaderValue>>;

impl Serialize for HeadersJson<'_> {
    /// One pass over the map: `HeaderMap::iter` yields the values of a name one after
    /// the other, so each run becomes one JSON entry without hashing the name again.
    /// (The proptest below pins that: a split run would produce a duplicate key.)
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut m = serializer.serialize_map(None)?;
        let iter = RefCell::new(self.map.iter().peekable());
        loop {
            let Some((name, first)) = iter.borrow_mut().next() else {
                break;
            };
            // Go's server keeps `Host` only in `r.Host` and moves `Transfer-Encoding`
            // to `r.TransferEncoding` (the body PHP gets is already de-chunked).
            if name == header::HOST || name == header::TRANSFER_ENCODING {
                let mut it = iter.borrow_mut();
                while it.next_if(|(n, _)| *n == name).is_some() {}
                continue;
            }
            let run = Run {
                name,
                first,
                rest: &iter,
                join: self.join_cookies && name == header::COOKIE,
            };
            with_canonical(name, |key| m.serialize_entry(key, &run))?;
        }
        m.end()
    }
}

/// The values of one header name: `first` and whatever follows it under that name.
struct Run<'a, 'i> {
    name: &'a HeaderName,
    first: &'a HeaderValue,
    rest: &'i RefCell<HeaderIter<'a>>,
    join: bool,
}

impl Serialize for Run<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut rest = self.rest.borrow_mut();
        let mut next = || rest.next_if(|(n, _)| *n == self.name).map(|(_, v)| v);
        if self.join {
            let mut joined = value_str(self.first).into_owned();
            while let Some(v) = next() {
                joined.push_str("; ");
                joined.push_str(&value_str(v));
            }
            return [joined].serialize(serializer);
        }
        let mut seq = serializer.serialize_seq(None)?;
        seq.serialize_element(&value_str(self.first))?;
        while let Some(v) = next() {
            seq.serialize_element(&value_str(v))?;
        }
        seq.end()
    }
}

/// Header values may carry obs-text; Go's JSON encoder turns invalid UTF-8 into
/// U+FFFD, and so does this.
fn value_str(v: &HeaderValue) -> Cow<'_, str> {
    match std::str::from_utf8(v.as_bytes()) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(v.as_bytes()),
    }
}

struct CookiesJson<'a>(&'a [(&'a str, Cow<'a, str>)]);

impl Serialize for CookiesJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut m = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests;
