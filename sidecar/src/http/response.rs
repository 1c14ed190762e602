//! Worker reply → HTTP response head (docs/wire-protocol.md §3.6, §10). Pure.
//!
//! The reply's context is either JSON, `{"status":N,"headers":{name:[values]}}` (frame
//! flags 0x00 or 0x08; PHP writes `headers` as `{}`, or `[]` for an empty PHP array,
//! escapes `/` as `\/` and keeps header names as the app wrote them), or the protobuf
//! `http.v1.Response { int64 status = 1; map<string, HeaderValue> headers = 2; }` with
//! `HeaderValue { repeated bytes value = 1; }` (flags 0x80). Without a codec flag the
//! encoding is sniffed: a JSON object starts with `{`, which no valid `http.v1.Response`
//! does. The protobuf is decoded by hand: two fields do not justify a code generator
//! and a build script.
//!
//! Whatever PHP sends is checked before it can reach a client: the status must be
//! 100..=599, names must be tokens and values must not hold CR, LF, NUL or other
//! control bytes. Any violation is a [`ResponseError`] (the server answers
//! `http.internal_error_code`, 500 by default, and logs it), never a partially
//! applied header set.

use http::StatusCode;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

use crate::relay::flags;
use crate::worker::Payload;

/// Why a worker's response context cannot be used. Every variant means "the worker
/// answered something no client may see": `http.internal_error_code` (500).
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    #[error("response context is not valid JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("response context is not a valid http.v1.Response: {0}")]
    Proto(&'static str),
    #[error("unknown status code from worker: {0}")]
    Status(i64),
    /// The (possibly truncated) name is kept for the log; it is the app's, not a
    /// client's.
    #[error("invalid response header name {0:?}")]
    HeaderName(String),
    /// The value is not kept: it may be a cookie or a token.
    #[error("invalid value (CR, LF, NUL or another control byte) in response header {0:?}")]
    HeaderValue(String),
}

/// The head of the response the worker asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct ResponseHead {
    pub status: StatusCode,
    /// Headers to send, hop-by-hop ones removed (see [`HOP_BY_HOP`]); repeated names
    /// (several `Set-Cookie`) keep every value in order.
    pub headers: HeaderMap,
    /// Headers listed in `Trailer` and present in the reply, moved here to be sent
    /// after the body (RoadRunner's `handleTrailers`). The `Trailer` header itself
    /// stays in `headers`: HTTP/1.1 servers (hyper) only send declared trailers.
    pub trailers: Option<HeaderMap>,
    /// A 1xx status (e.g. 103 Early Hints on the first frame of a stream): not the
    /// final response. The server decides what to do with it (send it as an interim
    /// response, or ignore it; 101 must never be honoured).
    pub informational: bool,
    /// The worker sent `Connection: close` (dropped from `headers`); an HTTP/1.1
    /// server may close the connection after this response, as Go's server does.
    pub connection_close: bool,
}

impl ResponseHead {
    /// What an empty context means: 200 and no headers (RoadRunner writes the body
    /// only, so Go's default 200 applies).
    pub fn ok() -> Self {
        ResponseHead {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            trailers: None,
            informational: false,
            connection_close: false,
        }
    }
}

/// Response headers that describe one connection rather than the response. hyper
/// frames the body itself, and HTTP/2 forbids these fields, so a worker's copies are
/// dropped (plus any field named in `Connection`). `Http2-Push` is an instruction to
/// RoadRunner (server push, which hyper does not offer and browsers removed), not a
/// header for the client.
pub static HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::TE,
    HeaderName::from_static("http2-push"),
];

/// [`parse_response`] of a worker reply (its codec flags and context).
pub fn parse(reply: &Payload) -> Result<ResponseHead, ResponseError> {
    parse_response(reply.codec, &reply.context)
}

/// Parses a worker reply context. `codec` is the frame's flags byte.
pub fn parse_response(codec: u8, context: &[u8]) -> Result<ResponseHead, ResponseError> {
    if context.is_empty() {
        return Ok(ResponseHead::ok());
    }
    let mut headers = HeaderMap::new();
    let status = if codec & flags::CODEC_PROTO != 0 {
        decode_proto(context, &mut headers)?
    } else if codec & flags::CODEC_JSON != 0 || looks_like_json(context) {
        decode_json(context, &mut headers)?
    } else {
        decode_proto(context, &mut headers)?
    };
    finish(status, headers)
}

fn looks_like_json(context: &[u8]) -> bool {
    context
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{')
}

fn finish(status: i64, mut headers: HeaderMap) -> Result<ResponseHead, ResponseError> {
    let status = u16::try_from(status)
        .ok()
        .filter(|s| (100..=599).contains(s))
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or(ResponseError::Status(status))?;
    let informational = status.is_informational();

    // One pass over the (few) names instead of a hash lookup per special header: the
    // usual reply has none of them, and nine lookups per response showed in profiles.
    let (mut has_connection, mut has_hop_by_hop, mut has_trailer) = (false, false, false);
    for name in headers.keys() {
        has_connection |= name == header::CONNECTION;
        has_hop_by_hop |= HOP_BY_HOP.contains(name);
        has_trailer |= name == header::TRAILER;
    }

    let mut connection_close = false;
    if has_connection {
        // Connection options name further hop-by-hop fields (RFC 9110 §7.6.1).
        let mut named = Vec::new();
        for v in headers.get_all(header::CONNECTION) {
            for token in v.as_bytes().split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    connection_close = true;
                } else if let Ok(name) = HeaderName::from_bytes(token) {
                    named.push(name);
                }
            }
        }
        for name in named {
            headers.remove(name);
        }
    }
    if has_hop_by_hop {
        for name in &HOP_BY_HOP {
            headers.remove(name);
        }
    }

    let trailers = if informational || !has_trailer {
        None
    } else {
        move_trailers(&mut headers)
    };
    Ok(ResponseHead {
        status,
        headers,
        trailers,
        informational,
        connection_close,
    })
}

/// Moves the fields named in `Trailer` (comma-separated, possibly several `Trailer`
/// fields) to a trailer map. Framing fields are never moved.
fn move_trailers(headers: &mut HeaderMap) -> Option<HeaderMap> {
    if !headers.contains_key(header::TRAILER) {
        return None;
    }
    let mut names = Vec::new();
    for v in headers.get_all(header::TRAILER) {
        for n in v.as_bytes().split(|&b| b == b',') {
            if let Ok(name) = HeaderName::from_bytes(n.trim_ascii())
                && name != header::CONTENT_LENGTH
                && name != header::TRAILER
            {
                names.push(name);
            }
        }
    }
    let mut trailers = HeaderMap::new();
    for name in names {
        if let header::Entry::Occupied(e) = headers.entry(name) {
            let (name, values) = e.remove_entry_mult();
            for v in values {
                trailers.append(name.clone(), v);
            }
        }
    }
    (!trailers.is_empty()).then_some(trailers)
}

fn header_name(name: &[u8]) -> Result<HeaderName, ResponseError> {
    HeaderName::from_bytes(name).map_err(|_| {
        let mut shown = String::from_utf8_lossy(name).into_owned();
        if shown.len() > 64 {
            let mut cut = 64;
            while !shown.is_char_boundary(cut) {
                cut -= 1;
            }
            shown.truncate(cut);
        }
        ResponseError::HeaderName(shown)
    })
}

fn append_value(
    headers: &mut HeaderMap,
    name: &HeaderName,
    value: &[u8],
) -> Result<(), ResponseError> {
    // Rejects CR, LF, NUL and every other control byte but HTAB.
    let value =
        HeaderValue::from_bytes(value).map_err(|_| ResponseError::HeaderValue(name.to_string()))?;
    headers.append(name.clone(), value);
    Ok(())
}

// ---- JSON ----

fn decode_json(context: &[u8], headers: &mut HeaderMap) -> Result<i64, ResponseError> {
    if let Some(status) = fast::decode(context, headers) {
        return Ok(status);
    }
    headers.clear();
    decode_json_serde(context, headers)
}

/// The reply as serde_json reads it: every shape PHP may send, with typed errors. The
/// reference [`fast::decode`] is tested against.
fn decode_json_serde(context: &[u8], headers: &mut HeaderMap) -> Result<i64, ResponseError> {
    let mut failure = None;
    let mut de = serde_json::Deserializer::from_slice(context);
    let seed = ContextSeed {
        headers,
        failure: &mut failure,
    };
    let result = seed
        .deserialize(&mut de)
        .and_then(|status| de.end().map(|()| status));
    match (result, failure) {
        (_, Some(e)) => Err(e),
        (Ok(status), None) => Ok(status),
        (Err(e), None) => Err(ResponseError::Json(e)),
    }
}

/// The reply our `HttpWorker` and RoadRunner's PHP library write for nearly every
/// response, `{"status":N,"headers":{"Name":["value",…],…}}` (or `"headers":[]`)
/// without whitespace, read in one pass. Through serde's visitors the same reply cost
/// ≈ 3,000 instructions per request in callgrind (pacer's whole request ≈ 28,000).
/// Anything else — whitespace, other keys or key order, numbers or `null` as values,
/// escapes other than `\/`, `\"` and `\\`, bytes outside printable ASCII, a header
/// that fails validation — gives `None`, and [`decode_json_serde`] reads the reply
/// (with its errors); a proptest pins that both agree wherever this one answers.
mod fast {
    use super::{HeaderMap, append_value, header_name};

    pub(super) fn decode(context: &[u8], headers: &mut HeaderMap) -> Option<i64> {
        let mut c = Cursor { b: context, i: 0 };
        let mut scratch = Vec::new();
        c.eat(b"{\"status\":")?;
        let status = c.status()?;
        c.eat(b",\"headers\":")?;
        if c.eat(b"[]").is_none() {
            c.eat(b"{")?;
            if c.eat(b"}").is_none() {
                loop {
                    let name = c.string(&mut scratch)?;
                    let name = header_name(c.bytes(name, &scratch)).ok()?;
                    c.eat(b":[")?;
                    if c.eat(b"]").is_none() {
                        loop {
                            let value = c.string(&mut scratch)?;
                            append_value(headers, &name, c.bytes(value, &scratch)).ok()?;
                            if c.eat(b",").is_none() {
                                break;
                            }
                        }
                        c.eat(b"]")?;
                    }
                    if c.eat(b",").is_none() {
                        break;
                    }
                }
                c.eat(b"}")?;
            }
        }
        c.eat(b"}")?;
        (c.i == context.len()).then_some(status)
    }

    struct Cursor<'a> {
        b: &'a [u8],
        i: usize,
    }

    /// Where a string's bytes are: in the input, or unescaped into the scratch buffer.
    enum Span {
        Raw(usize, usize),
        Scratch,
    }

    impl Cursor<'_> {
        fn eat(&mut self, lit: &[u8]) -> Option<()> {
            let rest = self.b.get(self.i..)?;
            rest.starts_with(lit).then(|| self.i += lit.len())
        }

        /// A JSON integer as serde reads it into an `i64`: no sign, no leading zero, no
        /// fraction (the caller's next literal refuses `.` and `e`).
        fn status(&mut self) -> Option<i64> {
            let start = self.i;
            while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                self.i += 1;
            }
            let digits = &self.b[start..self.i];
            if digits.is_empty() || digits.len() > 18 || (digits.len() > 1 && digits[0] == b'0') {
                return None;
            }
            Some(
                digits
                    .iter()
                    .fold(0i64, |n, d| n * 10 + i64::from(d - b'0')),
            )
        }

        fn string(&mut self, scratch: &mut Vec<u8>) -> Option<Span> {
            self.eat(b"\"")?;
            let start = self.i;
            let mut escaped = false;
            loop {
                let c = *self.b.get(self.i)?;
                match c {
                    b'"' => break,
                    b'\\' => {
                        if !escaped {
                            scratch.clear();
                            scratch.extend_from_slice(&self.b[start..self.i]);
                            escaped = true;
                        }
                        let unescaped = match *self.b.get(self.i + 1)? {
                            e @ (b'/' | b'"' | b'\\') => e,
                            _ => return None,
                        };
                        scratch.push(unescaped);
                        self.i += 2;
                    }
                    0x20..=0x7e => {
                        if escaped {
                            scratch.push(c);
                        }
                        self.i += 1;
                    }
                    _ => return None,
                }
            }
            let end = self.i;
            self.i += 1;
            Some(if escaped {
                Span::Scratch
            } else {
                Span::Raw(start, end)
            })
        }

        fn bytes<'s>(&'s self, span: Span, scratch: &'s [u8]) -> &'s [u8] {
            match span {
                Span::Raw(a, b) => &self.b[a..b],
                Span::Scratch => scratch,
            }
        }
    }
}

/// Deserializes the top-level object straight into the header map; a validation
/// failure is stored in `failure` (typed) and aborts deserialization.
struct ContextSeed<'a> {
    headers: &'a mut HeaderMap,
    failure: &'a mut Option<ResponseError>,
}

impl<'de> DeserializeSeed<'de> for ContextSeed<'_> {
    type Value = i64;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<i64, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ContextSeed<'_> {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"{"status":N,"headers":{...}}"#)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<i64, A::Error> {
        let mut status = None;
        while let Some(key) = map.next_key::<TopKey>()? {
            match key {
                TopKey::Status => status = Some(map.next_value::<i64>()?),
                TopKey::Headers => map.next_value_seed(HeadersSeed {
                    headers: &mut *self.headers,
                    failure: &mut *self.failure,
                })?,
                TopKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        // A missing status is Go's zero value, an unknown status code.
        Ok(status.unwrap_or(0))
    }
}

enum TopKey {
    Status,
    Headers,
    Other,
}

impl<'de> de::Deserialize<'de> for TopKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = TopKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TopKey, E> {
                Ok(match v {
                    "status" => TopKey::Status,
                    "headers" => TopKey::Headers,
                    _ => TopKey::Other,
                })
            }
        }
        d.deserialize_str(V)
    }
}

struct HeadersSeed<'a> {
    headers: &'a mut HeaderMap,
    failure: &'a mut Option<ResponseError>,
}

impl<'de> DeserializeSeed<'de> for HeadersSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for HeadersSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of header lists (or an empty array)")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    /// PHP encodes an empty array as `[]`; anything in it is not a header map.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        match seq.next_element::<IgnoredAny>()? {
            None => Ok(()),
            Some(_) => Err(de::Error::custom("headers must be an object")),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(name) = map.next_key::<Text<'de>>()? {
            let name = match header_name(name.as_bytes()) {
                Ok(n) => n,
                Err(e) => {
                    *self.failure = Some(e);
                    return Err(de::Error::custom("invalid header name"));
                }
            };
            map.next_value_seed(ValuesSeed {
                name: &name,
                headers: &mut *self.headers,
                failure: &mut *self.failure,
            })?;
        }
        Ok(())
    }
}

/// The values of one header: a list of strings (PHP), or leniently a single string or
/// number; `null` adds nothing.
struct ValuesSeed<'a> {
    name: &'a HeaderName,
    headers: &'a mut HeaderMap,
    failure: &'a mut Option<ResponseError>,
}

impl ValuesSeed<'_> {
    fn add<E: de::Error>(&mut self, value: &[u8]) -> Result<(), E> {
        append_value(self.headers, self.name, value).map_err(|e| {
            *self.failure = Some(e);
            E::custom("invalid header value")
        })
    }
}

impl<'de> DeserializeSeed<'de> for ValuesSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValuesSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of header values")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        while let Some(v) = seq.next_element::<Scalar<'de>>()? {
            match v {
                Scalar::Text(t) => self.add(t.as_bytes())?,
                Scalar::Number(n) => self.add(n.as_bytes())?,
                Scalar::Null => {}
            }
        }
        Ok(())
    }

    fn visit_str<E: de::Error>(mut self, v: &str) -> Result<(), E> {
        self.add(v.as_bytes())
    }

    fn visit_i64<E: de::Error>(mut self, v: i64) -> Result<(), E> {
        self.add(v.to_string().as_bytes())
    }

    fn visit_u64<E: de::Error>(mut self, v: u64) -> Result<(), E> {
        self.add(v.to_string().as_bytes())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// A JSON string, borrowed when it has no escapes.
enum Text<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Text<'_> {
    fn as_bytes(&self) -> &[u8] {
        match self {
            Text::Borrowed(s) => s.as_bytes(),
            Text::Owned(s) => s.as_bytes(),
        }
    }
}

impl<'de> de::Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text::Borrowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text::Owned(v.to_owned()))
            }
        }
        d.deserialize_str(V)
    }
}

enum Scalar<'de> {
    Text(Text<'de>),
    Number(String),
    Null,
}

impl<'de> de::Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Text(Text::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Text(Text::Owned(v.to_owned())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Number(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Number(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Null)
            }
        }
        d.deserialize_any(V)
    }
}

// ---- protobuf ----

/// Decodes `http.v1.Response`; unknown fields are skipped, as protobuf requires.
fn decode_proto(mut buf: &[u8], headers: &mut HeaderMap) -> Result<i64, ResponseError> {
    let mut status = 0i64;
    while !buf.is_empty() {
        let (field, wire) = proto_key(&mut buf)?;
        match (field, wire) {
            // int64: a negative value is a 10-byte two's-complement varint.
            (1, WIRE_VARINT) => status = varint(&mut buf)? as i64,
            (2, WIRE_LEN) => {
                let entry = length_delimited(&mut buf)?;
                decode_header_entry(entry, headers)?;
            }
            (_, w) => skip(&mut buf, w)?,
        }
    }
    Ok(status)
}

/// One `map<string, HeaderValue>` entry: key = 1, value = 2, in any order.
fn decode_header_entry(mut entry: &[u8], headers: &mut HeaderMap) -> Result<(), ResponseError> {
    let mut key: &[u8] = b"";
    let mut value: &[u8] = b"";
    while !entry.is_empty() {
        match proto_key(&mut entry)? {
            (1, WIRE_LEN) => key = length_delimited(&mut entry)?,
            (2, WIRE_LEN) => value = length_delimited(&mut entry)?,
            (_, w) => skip(&mut entry, w)?,
        }
    }
    if std::str::from_utf8(key).is_err() {
        return Err(ResponseError::Proto("header name is not UTF-8"));
    }
    let name = header_name(key)?;
    // HeaderValue { repeated bytes value = 1; }
    while !value.is_empty() {
        match proto_key(&mut value)? {
            (1, WIRE_LEN) => {
                let v = length_delimited(&mut value)?;
                append_value(headers, &name, v)?;
            }
            (_, w) => skip(&mut value, w)?,
        }
    }
    Ok(())
}

const WIRE_VARINT: u8 = 0;
const WIRE_I64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_I32: u8 = 5;

fn proto_key(buf: &mut &[u8]) -> Result<(u64, u8), ResponseError> {
    let key = varint(buf)?;
    let field = key >> 3;
    if field == 0 {
        return Err(ResponseError::Proto("field number 0"));
    }
    Ok((field, (key & 7) as u8))
}

fn varint(buf: &mut &[u8]) -> Result<u64, ResponseError> {
    let mut value = 0u64;
    for i in 0..10 {
        let Some((&b, rest)) = buf.split_first() else {
            return Err(ResponseError::Proto("truncated varint"));
        };
        *buf = rest;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(ResponseError::Proto("varint longer than 10 bytes"))
}

fn length_delimited<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], ResponseError> {
    let len = varint(buf)?;
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| l <= buf.len())
        .ok_or(ResponseError::Proto("length beyond the end of the message"))?;
    let (field, rest) = buf.split_at(len);
    *buf = rest;
    Ok(field)
}

fn skip(buf: &mut &[u8], wire: u8) -> Result<(), ResponseError> {
    let n = match wire {
        WIRE_VARINT => return varint(buf).map(|_| ()),
        WIRE_LEN => return length_delimited(buf).map(|_| ()),
        WIRE_I64 => 8,
        WIRE_I32 => 4,
        _ => return Err(ResponseError::Proto("unsupported wire type")),
    };
    if buf.len() < n {
        return Err(ResponseError::Proto("truncated fixed-width field"));
    }
    *buf = &buf[n..];
    Ok(())
}

#[cfg(test)]
mod tests;
