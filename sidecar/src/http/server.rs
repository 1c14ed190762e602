//! The HTTP server: accepts connections (HTTP/1.1, h2c, optional TLS with ALPN h2), runs
//! each request through static files → body parsing → the worker pool → response
//! conversion, and drains gracefully on shutdown.
//!
//! Each request is handled in its connection's task: the pool lease, the frame exchange
//! and the response conversion happen there, without hand-offs to other tasks (only a
//! streamed response gets a small pump task, so the client can go away mid-stream).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
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
use super::response::{self as reply_head, ResponseHead};
use super::static_files::StaticFiles;
use super::uploads::{self, TempFiles, UploadLimits};
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
    /// gzip/br for compressible responses (`gzip` middleware).
    pub compression: bool,
    pub uploads: UploadLimits,
    /// Slowloris guard: a request's headers must arrive within this time.
    pub header_read_timeout: Duration,
    /// Requests served on one HTTP/1.1 connection before it is closed.
    pub max_requests_per_connection: u64,
    pub max_concurrent_streams: u32,
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
}

impl HttpHandler {
    pub fn new(pool: Pool, settings: HttpSettings, stats: Arc<HttpStats>) -> Arc<Self> {
        Arc::new(HttpHandler {
            pool,
            settings,
            stats,
        })
    }

    /// Handles one request; never fails (errors become responses).
    pub async fn handle(&self, req: Request<Incoming>, conn: ConnInfo) -> Response<Body> {
        let started = Instant::now();
        let method = req.method().clone();
        let path = if self.settings.access_logs {
            Some(req.uri().path().to_string())
        } else {
            None
        };
        let mut response = self.route(req, conn).await;
        if method == Method::HEAD {
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

    async fn route(&self, req: Request<Incoming>, conn: ConnInfo) -> Response<Body> {
        if let Some(files) = &self.settings.static_files
            && StaticFiles::applies_to(req.method())
            && let Some(path) = files.resolve(req.uri().path())
        {
            // Boxed, like the other rare branches (multipart, streams): an async fn's
            // future is as big as its largest state, and every request's future is
            // moved (memcpy) a few times on its way into hyper.
            return Box::pin(files.serve(&req, path)).await;
        }
        match self.to_php(req, conn).await {
            Ok(r) => r,
            Err(e) => self.error_response(e),
        }
    }

    async fn to_php(
        &self,
        req: Request<Incoming>,
        conn: ConnInfo,
    ) -> Result<Response<Body>, HttpError> {
        let (parts, body) = req.into_parts();
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
        match self.pool.exec(job).await.map_err(HttpError::Pool)? {
            PoolResponse::Single(reply) => {
                let head =
                    reply_head::parse(&reply).map_err(|e| HttpError::BadResponse(e.to_string()))?;
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
        Ok(build(head, body.boxed_unsync()))
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
            HttpError::Pool(_) | HttpError::BadResponse(_) => {
                (StatusCode::BAD_GATEWAY, "the worker failed")
            }
        };
        match &error {
            HttpError::Pool(PoolError::Soft(message)) => tracing::warn!(%message, "php error"),
            HttpError::Pool(PoolError::NoFreeWorker(_) | PoolError::QueueFull(_)) => {
                tracing::debug!(%error, "request shed")
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

fn build(head: ResponseHead, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = head.status;
    *r.headers_mut() = head.headers;
    if head.connection_close {
        // Only meaningful for HTTP/1.x; `finish_connection` drops it for HTTP/2.
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
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
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(handler.settings.header_read_timeout)
        .keep_alive(true)
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(handler.settings.max_concurrent_streams)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let builder = Arc::new(builder);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let conn = ConnInfo {
            peer,
            tls: tls.is_some(),
        };
        let handler = handler.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let service = service_for(handler, conn);
            match tls {
                None => {
                    let _ = watcher
                        .watch(
                            builder.serve_connection_with_upgrades(TokioIo::new(stream), service),
                        )
                        .await;
                }
                Some(acceptor) => {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                            .await
                    else {
                        return;
                    };
                    let _ = watcher
                        .watch(
                            builder.serve_connection_with_upgrades(TokioIo::new(stream), service),
                        )
                        .await;
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
            return Box::pin(async move {
                let mut response = handler.handle(req, conn).await;
                finish_connection(&mut response, version, served, max);
                Ok(response)
            });
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
