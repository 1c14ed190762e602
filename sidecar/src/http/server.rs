//! The HTTP server: accepts connections (HTTP/1.1, h2c when `http.http2.h2c` is on,
//! optional TLS with ALPN h2), runs each request through static files → body parsing →
//! the worker pool → response conversion, and drains gracefully on shutdown.
//!
//! Each request is handled in its connection's task: the pool lease, the frame exchange
//! and the response conversion happen there, without hand-offs to other tasks (only a
//! streamed response gets a small pump task, so the client can go away mid-stream).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::Either;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::{Layer, ServiceExt};
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, Predicate};

use super::body::{Body, empty, full};
use super::convert::{self, BodyKind};
use super::headers::{FixedHeaders, HeaderRules};
use super::linger::LingeringClose;
use super::response::{self as reply_head, ResponseHead};
use super::static_files::StaticFiles;
use super::uploads::{self, TempFiles, UploadLimits};
use crate::otel::{Hooks, NoTrace, RequestFacts, Tracing};
use crate::pool::{Pool, PoolError, Response as PoolResponse, StreamReply};
use crate::relay::flags;
use crate::stats::HttpStats;
use crate::worker::Payload;

/// Everything the request path needs, fixed at start-up.
#[derive(Debug)]
pub struct HttpSettings {
    /// Largest accepted request body in bytes (`http.max_request_size` MB).
    pub max_request_size: u64,
    /// Send urlencoded and multipart bodies raw instead of parsed (`http.raw_body`).
    pub raw_body: bool,
    pub trusted_subnets: Vec<ipnet::IpNet>,
    /// Status for PHP error frames (`http.internal_error_code`).
    pub internal_error_code: StatusCode,
    pub access_logs: bool,
    /// Put the PHP error text into 500 bodies (`pool.debug`); never in production.
    pub expose_errors: bool,
    pub static_files: Option<StaticFiles>,
    /// The `sendfile` middleware: `X-Sendfile` replies served from these roots.
    pub sendfile: Option<super::sendfile::Sendfile>,
    /// `http.static.response`: headers added to static file responses.
    pub static_headers: FixedHeaders,
    /// The `headers` middleware: fixed request/response headers and CORS.
    pub headers: HeaderRules,
    /// `http.ssl.redirect`: plain-HTTP requests are redirected to HTTPS on this port.
    pub redirect_to_https: Option<u16>,
    /// gzip/br for compressible responses (`gzip` middleware).
    pub compression: bool,
    pub uploads: UploadLimits,
    /// Slowloris guard: a request's headers must arrive within this time.
    pub header_read_timeout: Duration,
    /// Requests served on one HTTP/1.1 connection before it is closed.
    pub max_requests_per_connection: u64,
    /// Most header fields in one request (`pacer.http.max_header_count`); more is 431.
    pub max_header_count: usize,
    /// Largest request head in bytes (`pacer.http.max_header_bytes`); more is 431.
    pub max_header_bytes: usize,
    pub max_concurrent_streams: u32,
    /// HTTP/2 with prior knowledge on the plain listener (`http.http2.h2c`); off, it
    /// speaks HTTP/1.x only, like RoadRunner. TLS negotiates h2 by ALPN regardless.
    pub h2c: bool,
}

/// Who is on the other end of a connection.
#[derive(Clone, Copy, Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
}

/// The request handler shared by every connection.
#[derive(Debug)]
pub struct HttpHandler {
    pool: Pool,
    settings: HttpSettings,
    stats: Arc<HttpStats>,
    /// `otel`: `None` when tracing is off (the request path's one check).
    tracing: Option<Arc<Tracing>>,
}

impl HttpHandler {
    pub fn new(pool: Pool, settings: HttpSettings, stats: Arc<HttpStats>) -> Arc<Self> {
        Self::with_tracing(pool, settings, stats, None)
    }

    pub fn with_tracing(
        pool: Pool,
        settings: HttpSettings,
        stats: Arc<HttpStats>,
        tracing: Option<Arc<Tracing>>,
    ) -> Arc<Self> {
        Arc::new(HttpHandler {
            pool,
            settings,
            stats,
            tracing,
        })
    }

    /// Handles one request; never fails (errors become responses).
    ///
    /// Tracing's one branch: off, the future is the request path itself with hooks that
    /// compile away (no future around it to build and move: every request's future is
    /// moved a few times on its way into hyper); on, it is boxed, like the rare paths.
    pub fn handle(
        &self,
        req: Request<Incoming>,
        conn: ConnInfo,
    ) -> impl Future<Output = Response<Body>> + Send + '_ {
        match &self.tracing {
            None => Either::Left(self.handle_with(req, conn, NoTrace)),
            Some(tracing) => Either::Right(Box::pin(self.handle_traced(tracing, req, conn))),
        }
    }

    /// [`HttpHandler::handle`] inside a SERVER span (kept out of the untraced path's
    /// future, which stays as small as it was).
    async fn handle_traced(
        &self,
        tracing: &Tracing,
        req: Request<Incoming>,
        conn: ConnInfo,
    ) -> Response<Body> {
        let mut trace = tracing.request(&RequestFacts {
            method: req.method(),
            uri: req.uri(),
            version: req.version(),
            headers: req.headers(),
            peer: conn.peer,
            tls: conn.tls,
        });
        let response = self.handle_with(req, conn, &mut trace).await;
        trace.finish(response.status());
        response
    }

    async fn handle_with(
        &self,
        req: Request<Incoming>,
        conn: ConnInfo,
        mut trace: impl Hooks,
    ) -> Response<Body> {
        let started = Instant::now();
        let method = req.method().clone();
        let path = if self.settings.access_logs {
            Some(req.uri().path().to_string())
        } else {
            None
        };
        // Routing is written out here rather than in an `async fn` of its own: every
        // nested future is built and then moved (memcpy, its full size) into its parent
        // once per request.
        let mut response = match self.answer_early(&req, conn) {
            Some(r) => r,
            None => {
                let cors = self.settings.headers.cors.as_ref();
                let origin = cors.and_then(|_| req.headers().get(header::ORIGIN).cloned());
                let mut r = if let Some(files) = &self.settings.static_files
                    && StaticFiles::applies_to(req.method())
                    && let Some(path) = files.resolve(req.uri().path())
                {
                    // Boxed, like the other rare branches (multipart, streams): an async
                    // fn's future is as big as its largest state.
                    let started = trace.mark();
                    let mut r = Box::pin(files.serve(&req, path)).await;
                    self.settings.static_headers.apply(r.headers_mut());
                    trace.static_file(started);
                    r
                } else {
                    let mut r = match self.to_php(req, conn, trace).await {
                        Ok(r) => r,
                        Err(e) => self.error_response(e),
                    };
                    self.settings.headers.response.apply(r.headers_mut());
                    r
                };
                if let Some(cors) = cors {
                    cors.apply(origin.as_ref(), r.headers_mut());
                }
                r
            }
        };
        if method == Method::HEAD {
            // No body, but the length a GET would have had, as Go's server reports it.
            if let Some(len) = http_body::Body::size_hint(response.body()).exact()
                && !response.headers().contains_key(header::CONTENT_LENGTH)
            {
                response
                    .headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            }
            *response.body_mut() = empty();
        }
        let status = response.status();
        self.stats.observe(status.as_u16(), started.elapsed());
        if let Some(path) = path {
            tracing::info!(
                target: "pacer::access",
                method = %method,
                path = %path,
                status = status.as_u16(),
                elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
                remote = %conn.peer.ip(),
                "request"
            );
        }
        response
    }

    /// Answers what is refused or answered before any routing (bad Host, `*`, too many
    /// header fields, HTTPS redirect, CORS preflight); `None` lets the request on.
    fn answer_early(&self, req: &Request<Incoming>, conn: ConnInfo) -> Option<Response<Body>> {
        if let Err(reason) = check_host(req) {
            // As Go does: answer, then close; what follows on the connection is suspect.
            let mut r = self.error_response(HttpError::BadRequest(reason.into()));
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return Some(r);
        }
        if req.uri() == "*" {
            return Some(asterisk_form(req.method()));
        }
        if req.headers().len() > self.settings.max_header_count {
            // HTTP/1 is held to the count by hyper's parser; HTTP/2 only to the bytes.
            let mut r = Response::new(empty());
            *r.status_mut() = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
            return Some(r);
        }
        if !conn.tls
            && let Some(port) = self.settings.redirect_to_https
        {
            return Some(redirect_to_https(req, port));
        }
        let cors = self.settings.headers.cors.as_ref()?;
        let (status, headers) = cors.preflight(req.method(), req.headers())?;
        let mut r = Response::new(empty());
        *r.status_mut() = status;
        *r.headers_mut() = headers;
        Some(r)
    }

    async fn to_php(
        &self,
        req: Request<Incoming>,
        conn: ConnInfo,
        mut trace: impl Hooks,
    ) -> Result<Response<Body>, HttpError> {
        let (mut parts, body) = req.into_parts();
        self.settings.headers.request.apply(&mut parts.headers);
        trace.inject_for_php(&mut parts.headers);
        if let Some(len) = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            && len > self.settings.max_request_size
        {
            return Err(HttpError::TooLarge);
        }
        let remote = convert::client_ip(
            conn.peer.ip(),
            &parts.headers,
            &self.settings.trusted_subnets,
        );
        let kind = convert::body_kind(&parts.method, &parts.headers, self.settings.raw_body)
            .map_err(|e| HttpError::BadRequest(e.to_string()))?;
        let mut temp_files = TempFiles::default();
        let (parsed, uploads, body) = match kind {
            BodyKind::None => (false, None, Bytes::new()),
            BodyKind::Raw => (false, None, self.read_body(body).await?),
            BodyKind::UrlEncoded => {
                let raw = self.read_body(body).await?;
                let json = super::form::urlencoded_to_json(&raw)
                    .map_err(|e| HttpError::BadRequest(e.to_string()))?;
                (true, None, json)
            }
            BodyKind::Multipart { boundary } => {
                let form = Box::pin(uploads::parse_multipart(
                    body,
                    &boundary,
                    &self.settings.uploads,
                ))
                .await
                .map_err(HttpError::Upload)?;
                let (fields, tree, files) = form
                    .into_payload_parts()
                    .map_err(|e| HttpError::BadRequest(e.to_string()))?;
                temp_files = files;
                (true, Some(tree), fields)
            }
        };
        let attributes = convert::Attributes::new();
        let context =
            convert::request_context(&parts, remote, conn.tls, parsed, uploads, &attributes);
        let context =
            convert::encode_context(&context).map_err(|e| HttpError::BadRequest(e.to_string()))?;
        let job = Payload::new(flags::CODEC_JSON, context, body);
        match trace.exec(&self.pool, job).await.map_err(HttpError::Pool)? {
            PoolResponse::Single(reply) => {
                let mut head =
                    reply_head::parse(&reply).map_err(|e| HttpError::BadResponse(e.to_string()))?;
                // The body's own length frames the response: hyper writes a
                // Content-Length header beside a body of known size as it is, so a
                // wrong one from PHP would desync the connection.
                head.headers.remove(header::CONTENT_LENGTH);
                if head.informational {
                    // Nothing follows a single frame: a 1xx there is no final response
                    // (and 101 would hand the connection to nobody).
                    return Err(HttpError::BadResponse(format!(
                        "status {} is not a final response",
                        head.status.as_u16()
                    )));
                }
                if let Some(sendfile) = &self.settings.sendfile
                    && let Some(file) = head.headers.remove(super::sendfile::X_SENDFILE)
                {
                    // PHP's body is dropped: the file is the body.
                    let response = build(head, empty());
                    return Ok(Box::pin(sendfile.serve(&file, response)).await);
                }
                let body = match head.trailers.clone() {
                    None => full(reply.body),
                    Some(trailers) => {
                        let frames = [
                            Ok(http_body::Frame::data(reply.body)),
                            Ok(http_body::Frame::trailers(trailers)),
                        ];
                        http_body_util::StreamBody::new(futures_util::stream::iter(frames))
                            .boxed_unsync()
                    }
                };
                Ok(build(head, body))
            }
            PoolResponse::Stream(stream) => Box::pin(self.stream(stream, temp_files)).await,
        }
    }

    /// Reads a whole request body (it goes to PHP as one frame), bounded by
    /// `max_request_size`.
    async fn read_body(&self, body: Incoming) -> Result<Bytes, HttpError> {
        let limit = usize::try_from(self.settings.max_request_size).unwrap_or(usize::MAX);
        match Limited::new(body, limit).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e)
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                Err(HttpError::TooLarge)
            }
            Err(e) => Err(HttpError::BodyRead(e.to_string())),
        }
    }

    /// Passes a streamed reply through as it arrives. The first frame with a final status
    /// sets the head; 1xx frames before it are skipped (hyper cannot send them from a
    /// service). A pump task feeds the body; when the client goes away the channel
    /// closes, the `StreamReply` is dropped and the worker gets STOP.
    async fn stream(
        &self,
        mut stream: StreamReply,
        temp_files: TempFiles,
    ) -> Result<Response<Body>, HttpError> {
        let (head, first_body) = loop {
            let Some(frame) = stream.next().await.map_err(HttpError::Pool)? else {
                return Err(HttpError::BadResponse(
                    "the stream ended before a status was sent".into(),
                ));
            };
            if frame.context.is_empty() {
                return Err(HttpError::BadResponse(
                    "the first streamed frame has no status".into(),
                ));
            }
            let head =
                reply_head::parse(&frame).map_err(|e| HttpError::BadResponse(e.to_string()))?;
            if !head.informational {
                break (head, frame.body);
            }
        };
        let (mut tx, body) =
            http_body_util::channel::Channel::<Bytes, super::body::BoxError>::new(4);
        let expose = self.settings.expose_errors;
        let trailers = head.trailers.clone();
        tokio::spawn(async move {
            let _keep_uploads_until_done = temp_files;
            if !first_body.is_empty() && tx.send_data(first_body).await.is_err() {
                return;
            }
            loop {
                match stream.next().await {
                    Ok(Some(frame)) => {
                        if !frame.body.is_empty() && tx.send_data(frame.body).await.is_err() {
                            // Client gone: dropping `stream` cancels it on the worker.
                            return;
                        }
                    }
                    Ok(None) => {
                        if let Some(trailers) = trailers {
                            let _ = tx.send_trailers(trailers).await;
                        }
                        return;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "streamed response failed midway");
                        let message: super::body::BoxError = if expose {
                            error.to_string().into()
                        } else {
                            "the worker failed".into()
                        };
                        tx.abort(message);
                        return;
                    }
                }
            }
        });
        // Fused: a channel body panics when polled again after its end (or its error),
        // and the compression layer does exactly that at the end of every stream.
        Ok(build(head, body.fuse().boxed_unsync()))
    }

    fn error_response(&self, error: HttpError) -> Response<Body> {
        let (status, public) = match &error {
            HttpError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
            HttpError::BodyRead(_) => (StatusCode::BAD_REQUEST, "could not read the request body"),
            HttpError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad request"),
            HttpError::Upload(e) if e.is_too_large() => {
                (StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
            }
            HttpError::Upload(_) => (StatusCode::BAD_REQUEST, "malformed multipart body"),
            HttpError::Pool(
                PoolError::NoFreeWorker(_) | PoolError::QueueFull(_) | PoolError::Closed,
            ) => (StatusCode::SERVICE_UNAVAILABLE, "no free worker, try again"),
            HttpError::Pool(PoolError::ExecTimeout(_)) => {
                (StatusCode::GATEWAY_TIMEOUT, "the request took too long")
            }
            HttpError::Pool(PoolError::Soft(_)) => {
                (self.settings.internal_error_code, "internal server error")
            }
            // A worker that crashed, answered garbage or could not be started: RoadRunner
            // answers these with `http.internal_error_code` too (default 500), not 502.
            HttpError::Pool(_) | HttpError::BadResponse(_) => {
                (self.settings.internal_error_code, "the worker failed")
            }
        };
        match &error {
            HttpError::Pool(PoolError::Soft(message)) => tracing::warn!(%message, "php error"),
            HttpError::Pool(PoolError::NoFreeWorker(_) | PoolError::QueueFull(_)) => {
                tracing::debug!(%error, "request shed")
            }
            // The client's mistakes carry details taken from its request body (form field
            // names, multipart part names): the log gets only their public reason.
            HttpError::TooLarge
            | HttpError::BodyRead(_)
            | HttpError::BadRequest(_)
            | HttpError::Upload(_) => {
                tracing::warn!(reason = public, status = status.as_u16(), "request refused")
            }
            e => tracing::warn!(error = %e, status = status.as_u16(), "request failed"),
        }
        let text = if self.settings.expose_errors {
            format!("{error}\n")
        } else {
            format!("{public}\n")
        };
        let mut r = Response::new(full(text));
        *r.status_mut() = status;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

/// What PHP's SAPIs send when a script sets no Content-Type (`default_mimetype` and
/// `default_charset`); RoadRunner's responses carry it too.
const DEFAULT_CONTENT_TYPE: HeaderValue = HeaderValue::from_static("text/html; charset=UTF-8");

/// Entity headers a 304 must not carry (RFC 9110 §15.4.5); Go's server, and so
/// RoadRunner, drops exactly these.
const SUPPRESSED_304: [header::HeaderName; 3] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
];

fn build(head: ResponseHead, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = head.status;
    *r.headers_mut() = head.headers;
    if head.status == StatusCode::NOT_MODIFIED {
        for name in SUPPRESSED_304 {
            r.headers_mut().remove(name);
        }
    } else if head.status != StatusCode::NO_CONTENT
        && !r.headers().contains_key(header::CONTENT_TYPE)
    {
        r.headers_mut()
            .insert(header::CONTENT_TYPE, DEFAULT_CONTENT_TYPE);
    }
    if !single_valid_length(r.headers()) {
        // hyper would send an unparsable or repeated value as it is.
        r.headers_mut().remove(header::CONTENT_LENGTH);
    }
    if head.connection_close {
        // Only meaningful for HTTP/1.x; `finish_connection` drops it for HTTP/2.
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

/// RFC 9112 §3.2, as Go's server (RoadRunner's) enforces it: an HTTP/1.x request with
/// more than one Host field or an invalid one is refused, and so is an HTTP/1.1 request
/// without one. The Host becomes the authority of the `uri` PHP sees, so an ambiguous
/// or malformed one must not reach it. (HTTP/2 carries `:authority`, checked by h2.)
/// A request for `*` (RFC 9110 §7.1) is about the server, not a resource: `OPTIONS *`
/// is answered here with 200 and no body, as Go's server (and so RoadRunner) answers it;
/// any other method with `*` is nonsense and gets 400. Neither reaches PHP.
fn asterisk_form(method: &Method) -> Response<Body> {
    let mut r = Response::new(empty());
    if method == Method::OPTIONS {
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    } else {
        *r.status_mut() = StatusCode::BAD_REQUEST;
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

fn check_host<B>(req: &Request<B>) -> Result<(), &'static str> {
    let h1 = req.version() < http::Version::HTTP_2;
    let mut hosts = req.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if req.version() == http::Version::HTTP_11 => Err("missing Host header"),
        (Some(_), Some(_)) if h1 => Err("more than one Host header"),
        // The one Host check of the server (HTTP/2 too, where it is optional):
        // `convert::valid_host`, Go's httpguts.ValidHostHeader plus a URI authority.
        (Some(host), _) if !super::convert::valid_host(host.as_bytes()) => {
            Err("invalid Host header")
        }
        _ => Ok(()),
    }
}

/// Whether the Content-Length headers (if any) are one plain decimal number, the only
/// form that may frame a streamed response (hyper then stops at that length, as Go
/// does).
fn single_valid_length(headers: &http::HeaderMap) -> bool {
    let mut values = headers.get_all(header::CONTENT_LENGTH).iter();
    match (values.next(), values.next()) {
        (None, _) => true,
        (Some(v), None) => {
            let v = v.as_bytes();
            !v.is_empty() && v.len() <= 19 && v.iter().all(u8::is_ascii_digit)
        }
        _ => false,
    }
}

/// Why a request did not reach PHP or its answer could not be used.
#[derive(Debug, thiserror::Error)]
enum HttpError {
    #[error("request body exceeds max_request_size")]
    TooLarge,
    #[error("reading the request body failed: {0}")]
    BodyRead(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("multipart: {0}")]
    Upload(uploads::UploadError),
    #[error(transparent)]
    Pool(PoolError),
    #[error("the worker's response is invalid: {0}")]
    BadResponse(String),
}

/// With the `gzip` middleware on, compresses when tower-http's defaults agree (not for
/// images, gRPC, SSE, or tiny bodies).
#[derive(Clone, Copy)]
struct CompressWhen;

impl Predicate for CompressWhen {
    fn should_compress<B: http_body::Body>(&self, response: &http::Response<B>) -> bool {
        DefaultPredicate::new().should_compress(response)
    }
}

/// Serves HTTP on `listener` until `stop` fires, then stops accepting and gives open
/// requests (streams included) up to `grace` to finish.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handler: Arc<HttpHandler>,
    stop: CancellationToken,
    grace: Duration,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    if tls.is_none() && !handler.settings.h2c {
        builder = builder.http1_only();
    }
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(handler.settings.header_read_timeout)
        .keep_alive(true)
        // The head must fit the read buffer: hyper answers 431 past it.
        .max_buf_size(handler.settings.max_header_bytes.max(8192))
        .max_headers(handler.settings.max_header_count);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(handler.settings.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(handler.settings.max_concurrent_streams)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let builder = Arc::new(builder);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    while let Some((stream, peer)) = crate::accept::next(&listener, &stop, "http").await {
        let _ = stream.set_nodelay(true);
        let conn = ConnInfo {
            peer,
            tls: tls.is_some(),
        };
        let handler = handler.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let first_bytes_within = handler.settings.header_read_timeout;
        tokio::spawn(async move {
            let service = service_for(handler, conn);
            match tls {
                None => {
                    let io = TokioIo::new(LingeringClose::new(FirstBytesDeadline::new(
                        stream,
                        first_bytes_within,
                    )));
                    let _ = watcher.watch(builder.serve_connection(io, service)).await;
                }
                Some(acceptor) => {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                            .await
                    else {
                        return;
                    };
                    let io = TokioIo::new(LingeringClose::new(FirstBytesDeadline::new(
                        stream,
                        first_bytes_within,
                    )));
                    let _ = watcher.watch(builder.serve_connection(io, service)).await;
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            "grace period over; closing the remaining connections"
        );
    }
}

/// The slowloris guard for the first bytes of a connection. hyper's
/// `header_read_timeout` only starts once the HTTP/1 parser runs, but the auto builder
/// first reads until it can tell HTTP/1 from the 24-byte HTTP/2 preface, with no
/// timeout: a client that connected and sent nothing, or dribbled `PRI * HTTP/2.0…`,
/// held its connection forever. Until the bytes received differ from the preface (then
/// it is HTTP/1, and hyper's timeout takes over) or complete it (HTTP/2), reads fail
/// with `TimedOut` once the header read timeout has passed; after that, this is a
/// plain pass-through.
struct FirstBytesDeadline<I> {
    io: I,
    /// `None` once the protocol is decided.
    deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    /// How many bytes of the HTTP/2 preface the connection has matched so far.
    matched: usize,
}

impl<I> FirstBytesDeadline<I> {
    const H2_PREFACE: &'static [u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    fn new(io: I, within: Duration) -> Self {
        FirstBytesDeadline {
            io,
            deadline: Some(Box::pin(tokio::time::sleep(within))),
            matched: 0,
        }
    }

    /// Follows the preface through `read`; disarms the deadline once it is decided.
    fn saw(&mut self, read: &[u8]) {
        for &b in read {
            if Self::H2_PREFACE.get(self.matched) != Some(&b) {
                self.deadline = None;
                return;
            }
            self.matched += 1;
            if self.matched == Self::H2_PREFACE.len() {
                self.deadline = None;
                return;
            }
        }
    }
}

impl<I: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for FirstBytesDeadline<I> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let this = self.get_mut();
        let before = buf.filled().len();
        match std::pin::Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if this.deadline.is_some() {
                    this.saw(&buf.filled()[before..]);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let expired = this
                    .deadline
                    .as_mut()
                    .is_some_and(|d| d.as_mut().poll(cx).is_ready());
                if expired {
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the request did not start within the header read timeout",
                    )));
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

impl<I: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for FirstBytesDeadline<I> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The per-connection tower service: the handler plus who is connected.
#[derive(Clone)]
struct RequestService {
    handler: Arc<HttpHandler>,
    conn: ConnInfo,
    /// Requests seen on this connection (HTTP/1.1 keep-alive limit).
    served: Arc<std::sync::atomic::AtomicU64>,
}

impl tower::Service<Request<Incoming>> for RequestService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Response<Body>, Infallible>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let (handler, conn) = (self.handler.clone(), self.conn);
        let served = self
            .served
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let version = req.version();
        let max = handler.settings.max_requests_per_connection;
        if !handler.settings.compression {
            // The request's one allocation: built in the box's place, with no wrapper
            // future around `handle_with` (see `respond`).
            return Box::pin(respond(handler, req, conn, served));
        }
        // tower-http's compression only when the `gzip` middleware is on: its response
        // body type embeds the encoders' state, so a response through it is several
        // hundred bytes that hyper moves (memcpy) a few times per request, and it
        // parses Accept-Encoding. Compressed bodies are boxed into our one `Body` type.
        let inner = tower::service_fn(move |req| {
            let handler = handler.clone();
            async move { Ok::<_, Infallible>(handler.handle(req, conn).await) }
        });
        let compressed = CompressionLayer::new()
            .compress_when(CompressWhen)
            .layer(inner)
            .oneshot(req);
        Box::pin(async move {
            let mut response = compressed.await?.map(|body| body.boxed_unsync());
            finish_connection(&mut response, version, served, max);
            Ok(response)
        })
    }
}

/// The uncompressed request path as one future: [`HttpHandler::handle`]'s tracing branch
/// and the connection headers, written out so that the request's future is not wrapped
/// (and moved) once more on its way into its box.
async fn respond(
    handler: Arc<HttpHandler>,
    req: Request<Incoming>,
    conn: ConnInfo,
    served: u64,
) -> Result<Response<Body>, Infallible> {
    let version = req.version();
    let mut response = match &handler.tracing {
        None => handler.handle_with(req, conn, NoTrace).await,
        Some(tracing) => Box::pin(handler.handle_traced(tracing, req, conn)).await,
    };
    let max = handler.settings.max_requests_per_connection;
    finish_connection(&mut response, version, served, max);
    Ok(response)
}

fn service_for(
    handler: Arc<HttpHandler>,
    conn: ConnInfo,
) -> hyper_util::service::TowerToHyperService<RequestService> {
    hyper_util::service::TowerToHyperService::new(RequestService {
        handler,
        conn,
        served: Arc::default(),
    })
}

/// `http.ssl.redirect`: 308 to the same host and path on the HTTPS port.
fn redirect_to_https<B>(req: &Request<B>, port: u16) -> Response<Body> {
    let host = req
        .uri()
        .host()
        .map(str::to_string)
        .or_else(|| {
            let h = req.headers().get(header::HOST)?.to_str().ok()?;
            // Strip a port, keeping IPv6 brackets.
            Some(match h.rsplit_once(':') {
                Some((name, p))
                    if !name.ends_with(']')
                        || h.starts_with('[') && p.chars().all(|c| c.is_ascii_digit()) =>
                {
                    name.to_string()
                }
                _ => h.to_string(),
            })
        })
        .unwrap_or_else(|| "localhost".into());
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = if port == 443 {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}:{port}{path}")
    };
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// Connection-level headers: HTTP/2 forbids `Connection`; an HTTP/1.1 connection is
/// closed after `max` requests so long-lived clients get rebalanced across pods.
fn finish_connection(response: &mut Response<Body>, version: http::Version, served: u64, max: u64) {
    if version == http::Version::HTTP_2 {
        response.headers_mut().remove(header::CONNECTION);
    } else if max > 0 && served >= max {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
}

/// Loads a PEM certificate chain and private key for TLS (ALPN: h2, http/1.1).
pub fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<TlsAcceptor, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_redirect_keeps_host_path_and_query() {
        let req = Request::get("/a/b?x=1")
            .header(header::HOST, "example.com:8080")
            .body(())
            .unwrap();
        let r = redirect_to_https(&req, 8443);
        assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(
            r.headers()[header::LOCATION],
            "https://example.com:8443/a/b?x=1"
        );
        let req = Request::get("/")
            .header(header::HOST, "[::1]:80")
            .body(())
            .unwrap();
        assert_eq!(
            redirect_to_https(&req, 443).headers()[header::LOCATION],
            "https://[::1]/"
        );
        let req = Request::get("http://h.test/p").body(()).unwrap();
        assert_eq!(
            redirect_to_https(&req, 443).headers()[header::LOCATION],
            "https://h.test/p"
        );
    }
}
