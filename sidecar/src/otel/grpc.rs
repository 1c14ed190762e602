//! OTLP over gRPC without a gRPC stack: the SDK's OTLP/HTTP exporter encodes the batch
//! as the same protobuf message (`ExportTraceServiceRequest`) that the gRPC method
//! `TraceService/Export` takes, so the exporter's client turns its HTTP request into a
//! gRPC call (HTTP/2, the method path, the 5-byte message prefix, `grpc-encoding`) and
//! the gRPC answer back into the HTTP answer the exporter expects (the reply message,
//! `grpc-status` as an HTTP status it knows how to retry). Pure: the I/O is the
//! client's (`export.rs`). A reply the exporter cannot read is an error, which it
//! retries: an answer must be decoded whenever the collector took the batch, or the
//! spans arrive twice.

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, StatusCode, header};

/// The largest reply message read (an export's answer is a few bytes).
const MAX_REPLY: u64 = 1 << 20;

/// The method every OTLP trace export calls.
pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// A gRPC answer that is not a successful export.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GrpcError {
    #[error("the request URI {0:?} cannot take the gRPC method path")]
    Uri(String),
    #[error("the collector answered HTTP {0} (not a gRPC server?)")]
    Http(u16),
    #[error("the reply message is cut short ({0} bytes)")]
    Truncated(usize),
    #[error("the reply message is compressed with an encoding pacer did not offer")]
    Compressed,
    #[error("the reply message is not valid gzip")]
    Gzip,
}

/// The exporter's OTLP/HTTP request (`POST` of the protobuf body, perhaps gzip'd with
/// `Content-Encoding`) as the gRPC call to the collector at the request's URI (scheme
/// and authority; the path is replaced with [`EXPORT_PATH`]).
pub fn request(request: http::Request<Bytes>) -> Result<http::Request<Bytes>, GrpcError> {
    let (mut parts, body) = request.into_parts();
    let gzip = parts
        .headers
        .remove(header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let mut uri = parts.uri.clone().into_parts();
    uri.path_and_query = Some(http::uri::PathAndQuery::from_static(EXPORT_PATH));
    parts.uri = http::Uri::from_parts(uri).map_err(|_| GrpcError::Uri(parts.uri.to_string()))?;
    parts.version = http::Version::HTTP_2;
    let h = &mut parts.headers;
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert(header::TE, HeaderValue::from_static("trailers"));
    if gzip {
        h.insert("grpc-encoding", HeaderValue::from_static("gzip"));
    }
    h.insert("grpc-accept-encoding", HeaderValue::from_static("identity"));
    Ok(http::Request::from_parts(parts, frame(&body, gzip)))
}

/// One length-prefixed message: the compressed flag, the big-endian length, the bytes.
pub fn frame(message: &[u8], compressed: bool) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(u8::from(compressed));
    // OTLP batches are far below 4 GiB (the SDK's batches are a few MiB at most).
    out.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    out.put_slice(message);
    out.freeze()
}

/// The gRPC answer as the exporter's HTTP answer: 200 with the reply message (the
/// protobuf `ExportTraceServiceResponse`, which it reads for partial success), or the
/// HTTP status of the `grpc-status` (so it retries what gRPC calls retryable).
pub fn response(
    status: StatusCode,
    headers: &HeaderMap,
    body: Bytes,
    trailers: Option<&HeaderMap>,
) -> Result<http::Response<Bytes>, GrpcError> {
    if status != StatusCode::OK {
        return Err(GrpcError::Http(status.as_u16()));
    }
    // A call that fails at once answers "trailers-only": the status is in the headers.
    let field = |name: &str| {
        trailers
            .and_then(|t| t.get(name))
            .or_else(|| headers.get(name))
            .and_then(|v| v.to_str().ok())
    };
    let code = field("grpc-status")
        .and_then(|c| c.trim().parse::<u32>().ok())
        // No status at all: the stream broke off (UNKNOWN, as gRPC clients say).
        .unwrap_or(2);
    if code != 0 {
        let message = field("grpc-message").unwrap_or_default();
        let mut r = http::Response::new(Bytes::from(format!(
            "gRPC status {code}: {}",
            percent_decode(message)
        )));
        *r.status_mut() = http_status(code);
        return Ok(r);
    }
    let message = match body.len() {
        0 => Bytes::new(),
        n if n < 5 => return Err(GrpcError::Truncated(n)),
        n => {
            let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
            if n - 5 < len {
                return Err(GrpcError::Truncated(n));
            }
            let message = body.slice(5..5 + len);
            match body[0] {
                0 => message,
                // A server may answer with the call's own compression (grpc-go does).
                _ if headers
                    .get("grpc-encoding")
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip")) =>
                {
                    gunzip(&message)?
                }
                _ => return Err(GrpcError::Compressed),
            }
        }
    };
    Ok(http::Response::new(message))
}

/// A gzip'd reply message (small: the export's answer), bounded like the client's reads.
fn gunzip(message: &[u8]) -> Result<Bytes, GrpcError> {
    use std::io::Read as _;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(message)
        .take(MAX_REPLY)
        .read_to_end(&mut out)
        .map_err(|_| GrpcError::Gzip)?;
    Ok(Bytes::from(out))
}

/// gRPC's status codes as the HTTP statuses the OTLP exporter classifies: OTLP calls
/// UNAVAILABLE, RESOURCE_EXHAUSTED, ABORTED, CANCELLED, DEADLINE_EXCEEDED … retryable.
fn http_status(code: u32) -> StatusCode {
    match code {
        // CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, DATA_LOSS, UNAVAILABLE
        1 | 4 | 10 | 11 | 15 | 14 => StatusCode::SERVICE_UNAVAILABLE,
        // RESOURCE_EXHAUSTED
        8 => StatusCode::TOO_MANY_REQUESTS,
        // UNAUTHENTICATED, PERMISSION_DENIED
        16 => StatusCode::UNAUTHORIZED,
        7 => StatusCode::FORBIDDEN,
        // UNIMPLEMENTED
        12 => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// `grpc-message` is percent-encoded.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn otlp_request(gzip: bool) -> http::Request<Bytes> {
        let mut b = http::Request::post("http://collector:4317")
            .header(header::CONTENT_TYPE, "application/x-protobuf")
            .header("x-api-key", "k");
        if gzip {
            b = b.header(header::CONTENT_ENCODING, "gzip");
        }
        b.body(Bytes::from_static(b"\x0a\x02ab")).unwrap()
    }

    #[test]
    fn the_http_request_becomes_the_grpc_call() {
        let r = request(otlp_request(false)).unwrap();
        assert_eq!(
            r.uri().to_string(),
            "http://collector:4317/opentelemetry.proto.collector.trace.v1.TraceService/Export"
        );
        assert_eq!(r.version(), http::Version::HTTP_2);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/grpc");
        assert_eq!(r.headers()[header::TE], "trailers");
        assert_eq!(r.headers()["x-api-key"], "k");
        assert!(r.headers().get("grpc-encoding").is_none());
        assert_eq!(&r.body()[..], b"\x00\x00\x00\x00\x04\x0a\x02ab");

        let r = request(otlp_request(true)).unwrap();
        assert_eq!(r.headers()["grpc-encoding"], "gzip");
        assert!(r.headers().get(header::CONTENT_ENCODING).is_none());
        assert_eq!(r.body()[0], 1, "compressed flag");
    }

    #[test]
    fn a_successful_answer_gives_the_reply_message() {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        let body = frame(b"\x12\x00", false);
        let r = response(StatusCode::OK, &HeaderMap::new(), body, Some(&trailers)).unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(&r.body()[..], b"\x12\x00");
        // An empty reply message is a zero-length frame, or no frame at all.
        let r = response(
            StatusCode::OK,
            &HeaderMap::new(),
            frame(b"", false),
            Some(&trailers),
        );
        assert_eq!(r.unwrap().body().len(), 0);
    }

    #[test]
    fn grpc_failures_become_http_statuses_the_exporter_retries_or_not() {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", HeaderValue::from_static("14"));
        headers.insert("grpc-message", HeaderValue::from_static("no%20backend"));
        // Trailers-only answer: the status is in the headers.
        let r = response(StatusCode::OK, &headers, Bytes::new(), None).unwrap();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(&r.body()[..], b"gRPC status 14: no backend");
        for (code, status) in [("8", 429), ("3", 400), ("12", 404), ("16", 401)] {
            let mut t = HeaderMap::new();
            t.insert("grpc-status", HeaderValue::from_str(code).unwrap());
            let r = response(StatusCode::OK, &HeaderMap::new(), Bytes::new(), Some(&t)).unwrap();
            assert_eq!(r.status().as_u16(), status, "grpc-status {code}");
        }
        // No status at all: the call broke off.
        let r = response(StatusCode::OK, &HeaderMap::new(), Bytes::new(), None).unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn malformed_answers_are_errors() {
        let ok = {
            let mut t = HeaderMap::new();
            t.insert("grpc-status", HeaderValue::from_static("0"));
            t
        };
        let none = HeaderMap::new();
        assert_eq!(
            response(StatusCode::NOT_FOUND, &none, Bytes::new(), None).unwrap_err(),
            GrpcError::Http(404)
        );
        assert_eq!(
            response(
                StatusCode::OK,
                &none,
                Bytes::from_static(b"\0\0"),
                Some(&ok)
            )
            .unwrap_err(),
            GrpcError::Truncated(2)
        );
        assert_eq!(
            response(
                StatusCode::OK,
                &none,
                Bytes::from_static(b"\0\0\0\0\x09ab"),
                Some(&ok)
            )
            .unwrap_err(),
            GrpcError::Truncated(7)
        );
        assert_eq!(
            response(StatusCode::OK, &none, frame(b"x", true), Some(&ok)).unwrap_err(),
            GrpcError::Compressed
        );
        let mut gzip = HeaderMap::new();
        gzip.insert("grpc-encoding", HeaderValue::from_static("gzip"));
        assert_eq!(
            response(StatusCode::OK, &gzip, frame(b"not gzip", true), Some(&ok)).unwrap_err(),
            GrpcError::Gzip
        );
    }

    #[test]
    fn a_gzip_reply_is_decompressed() {
        use std::io::Write as _;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(b"\x12\x00").unwrap();
        let zipped = enc.finish().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("grpc-encoding", HeaderValue::from_static("gzip"));
        let mut ok = HeaderMap::new();
        ok.insert("grpc-status", HeaderValue::from_static("0"));
        let r = response(StatusCode::OK, &headers, frame(&zipped, true), Some(&ok)).unwrap();
        assert_eq!(&r.body()[..], b"\x12\x00");
    }
}
