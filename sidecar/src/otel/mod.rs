//! OpenTelemetry tracing of HTTP requests (RoadRunner's `otel` section and middleware).
//!
//! Each traced request gets a SERVER span (continuing the client's `traceparent` when
//! it sends a valid one) with HTTP semantic-convention attributes, and under it the
//! spans of what pacer did: `pacer.queue` (waiting for a free worker), `php` (the
//! exchange with the worker; PHP receives its id as the parent in `traceparent`) or
//! `pacer.static` (a static file). Spans are exported in batches by a thread of their
//! own (`export.rs`); a full queue drops spans, never delays a request.
//!
//! With tracing off the request path makes one branch (`HttpHandler` holds an
//! `Option<Tracing>` that is `None`) and then runs code generic over [`Hooks`]
//! instantiated with [`NoTrace`], whose hooks are empty and compile away: no header is
//! read, no clock, no allocation, no span or context object.

pub mod context;
mod export;
mod grpc;

use std::net::SocketAddr;
use std::time::SystemTime;

use http::{HeaderMap, HeaderValue, StatusCode, header};
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

use crate::config::OtelConfig;
use crate::pool::{Pool, PoolError, Response as PoolResponse};
use crate::worker::Payload;
use context::TraceParent;

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
pub enum OtelError {
    #[error("otel: TLS setup for the exporter: {0}")]
    Tls(String),
    #[error("otel: exporter: {0}")]
    Exporter(String),
    #[error("otel: exporter runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// The tracer and its export pipeline. Cheap to share (`Arc` inside the SDK types).
#[derive(Debug)]
pub struct Tracing {
    tracer: SdkTracer,
    provider: SdkTracerProvider,
    /// Stops the exporter's runtime thread (after the provider flushed).
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Tracing {
    /// Starts the exporter's runtime thread and the batch processor. Nothing is sent
    /// until spans end; an unreachable collector is logged by the SDK, not fatal.
    pub fn start(config: &OtelConfig) -> Result<Tracing, OtelError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("pacer-otel")
            .build()
            .map_err(OtelError::Runtime)?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("pacer-otel-io".into())
            .spawn(move || {
                let _ = runtime.block_on(stopped);
            })
            .map_err(OtelError::Runtime)?;
        let provider = export::provider(config, handle)?;
        let tracer = provider.tracer("pacer");
        Ok(Tracing {
            tracer,
            provider,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Exports what is queued and stops. Blocks (up to the export timeout): call it
    /// from a blocking context at shutdown.
    pub fn shutdown(mut self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "otel: flushing spans at shutdown failed");
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Starts the SERVER span of a request (now).
    pub fn request(&self, req: &RequestFacts<'_>) -> RequestTrace {
        let remote = req
            .headers
            .get(TRACEPARENT)
            .and_then(|v| TraceParent::parse(v.as_bytes()));
        let tracestate = remote
            .and(req.headers.get(TRACESTATE))
            .filter(|v| context::valid_tracestate(v.as_bytes()));
        let parent = match remote {
            Some(tp) => {
                let state = tracestate
                    .and_then(|v| v.to_str().ok())
                    .and_then(|s| s.parse::<TraceState>().ok())
                    .unwrap_or_default();
                Context::new().with_remote_span_context(SpanContext::new(
                    TraceId::from_bytes(tp.trace_id),
                    SpanId::from_bytes(tp.parent_id),
                    TraceFlags::new(tp.flags),
                    true,
                    state,
                ))
            }
            None => Context::new(),
        };
        let mut attributes = Vec::with_capacity(10);
        attributes.push(KeyValue::new(
            "http.request.method",
            req.method.as_str().to_owned(),
        ));
        attributes.push(KeyValue::new("url.path", req.uri.path().to_owned()));
        if let Some(q) = req.uri.query() {
            attributes.push(KeyValue::new("url.query", q.to_owned()));
        }
        attributes.push(KeyValue::new(
            "url.scheme",
            if req.tls { "https" } else { "http" },
        ));
        attributes.push(KeyValue::new(
            "network.protocol.version",
            match req.version {
                http::Version::HTTP_10 => "1.0",
                http::Version::HTTP_2 => "2",
                _ => "1.1",
            },
        ));
        let authority = req
            .uri
            .authority()
            .map(|a| (a.host().to_owned(), a.port_u16()))
            .or_else(|| {
                let host = req.headers.get(header::HOST)?.to_str().ok()?;
                let a: http::uri::Authority = host.parse().ok()?;
                Some((a.host().to_owned(), a.port_u16()))
            });
        if let Some((host, port)) = authority {
            attributes.push(KeyValue::new("server.address", host));
            if let Some(port) = port {
                attributes.push(KeyValue::new("server.port", i64::from(port)));
            }
        }
        attributes.push(KeyValue::new("client.address", req.peer.ip().to_string()));
        attributes.push(KeyValue::new(
            "network.peer.port",
            i64::from(req.peer.port()),
        ));
        if let Some(ua) = req
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
        {
            attributes.push(KeyValue::new("user_agent.original", ua.to_owned()));
        }
        let span = self
            .tracer
            .span_builder(req.method.as_str().to_owned())
            .with_kind(SpanKind::Server)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &parent);
        RequestTrace {
            cx: parent.with_span(span),
            tracer: self.tracer.clone(),
            tracestate: tracestate.cloned(),
            exchange_id: None,
        }
    }
}

impl Drop for Tracing {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// What the SERVER span is made of: the request head and the connection.
#[derive(Debug)]
pub struct RequestFacts<'a> {
    pub method: &'a http::Method,
    pub uri: &'a http::Uri,
    pub version: http::Version,
    pub headers: &'a HeaderMap,
    pub peer: SocketAddr,
    pub tls: bool,
}

/// The spans of one request in flight.
#[derive(Debug)]
pub struct RequestTrace {
    /// Holds the SERVER span.
    cx: Context,
    tracer: SdkTracer,
    /// The client's `tracestate`, passed on to PHP.
    tracestate: Option<HeaderValue>,
    /// The id the `php` span will have: PHP's parent, chosen before the exchange.
    exchange_id: Option<SpanId>,
}

/// How a PHP exchange went, for its spans.
#[derive(Clone, Copy, Debug)]
pub struct Exchange {
    /// When pacer asked the pool for a worker.
    pub queued: SystemTime,
    /// When it got one (`None`: it never did: queue full or timed out).
    pub leased: Option<SystemTime>,
    /// When the reply (or the error) arrived.
    pub done: SystemTime,
    /// The worker's pid, when one served.
    pub pid: Option<u32>,
    /// The exchange failed (worker error, timeout, bad reply).
    pub failed: bool,
}

impl RequestTrace {
    /// Puts the context PHP continues from into the headers it receives:
    /// `traceparent` with this trace and the id of the `php` span as the parent (as
    /// RoadRunner does: PHP's spans hang under pacer's), and the client's valid
    /// `tracestate`. A client's own headers are replaced (an invalid one would
    /// otherwise be taken for the parent).
    pub fn inject_for_php(&mut self, headers: &mut HeaderMap) {
        let server = self.cx.span().span_context().clone();
        let id = SpanId::from_bytes(fastrand::u64(1..).to_be_bytes());
        self.exchange_id = Some(id);
        let tp = TraceParent {
            trace_id: server.trace_id().to_bytes(),
            parent_id: id.to_bytes(),
            flags: server.trace_flags().to_u8(),
        };
        if let Ok(v) = HeaderValue::from_str(&tp.format()) {
            headers.insert(TRACEPARENT, v);
        }
        match &self.tracestate {
            Some(ts) => {
                headers.insert(TRACESTATE, ts.clone());
            }
            None => {
                headers.remove(TRACESTATE);
            }
        }
    }

    /// Records `pacer.queue` and `php` after the exchange (with their real times).
    pub fn exchange(&self, e: Exchange) {
        let queue_end = e.leased.unwrap_or(e.done);
        let mut queue = self
            .tracer
            .span_builder("pacer.queue")
            .with_kind(SpanKind::Internal)
            .with_start_time(e.queued)
            .start_with_context(&self.tracer, &self.cx);
        if e.leased.is_none() {
            queue.set_status(Status::error("no worker became free"));
        }
        queue.end_with_timestamp(queue_end);
        let Some(leased) = e.leased else { return };
        let mut builder = self
            .tracer
            .span_builder("php")
            .with_kind(SpanKind::Client)
            .with_start_time(leased);
        if let Some(pid) = e.pid {
            builder = builder.with_attributes([KeyValue::new("process.pid", i64::from(pid))]);
        }
        // The span must have the id PHP already got as its parent.
        let mut php = match self.exchange_id {
            Some(id) => {
                export::with_span_id(id, || builder.start_with_context(&self.tracer, &self.cx))
            }
            None => builder.start_with_context(&self.tracer, &self.cx),
        };
        if e.failed {
            php.set_status(Status::error("the worker failed"));
        }
        php.end_with_timestamp(e.done);
    }

    /// Records `pacer.static` for a static file served from `started` until now.
    pub fn static_file(&self, started: SystemTime) {
        let mut span = self
            .tracer
            .span_builder("pacer.static")
            .with_kind(SpanKind::Internal)
            .with_start_time(started)
            .start_with_context(&self.tracer, &self.cx);
        span.end();
    }

    /// Ends the SERVER span with the response status.
    pub fn finish(self, status: StatusCode) {
        let span = self.cx.span();
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status.as_u16()),
        ));
        // Semantic conventions: for a server, only 5xx is an error.
        if status.is_server_error() {
            span.set_attribute(KeyValue::new("error.type", status.as_str().to_owned()));
            span.set_status(Status::error(""));
        }
        span.end();
    }
}

/// What the request path tells tracing, as hooks at the points where spans start and end.
/// The path is generic over it: [`NoTrace`] (tracing off) makes every hook nothing, so
/// the untraced path is the code without tracing; `&mut RequestTrace` records spans.
pub trait Hooks: Send {
    /// A span's start time; `()` when off (no clock is read).
    type Mark: Copy + Send;

    fn mark(&self) -> Self::Mark;

    /// Before the request goes to PHP: the context PHP continues from.
    fn inject_for_php(&mut self, headers: &mut HeaderMap);

    /// A static file was served from `started` until now.
    fn static_file(&mut self, started: Self::Mark);

    /// Runs `job` on the pool (the queue wait and the PHP exchange).
    fn exec<'a>(
        &'a mut self,
        pool: &'a Pool,
        job: Payload,
    ) -> impl Future<Output = Result<PoolResponse, PoolError>> + Send + 'a;
}

/// Tracing off: every hook is empty.
#[derive(Clone, Copy, Debug)]
pub struct NoTrace;

impl Hooks for NoTrace {
    type Mark = ();

    #[inline(always)]
    fn mark(&self) {}

    #[inline(always)]
    fn inject_for_php(&mut self, _headers: &mut HeaderMap) {}

    #[inline(always)]
    fn static_file(&mut self, _started: ()) {}

    #[inline(always)]
    fn exec<'a>(
        &'a mut self,
        pool: &'a Pool,
        job: Payload,
    ) -> impl Future<Output = Result<PoolResponse, PoolError>> + Send + 'a {
        pool.exec(job)
    }
}

impl Hooks for &mut RequestTrace {
    type Mark = SystemTime;

    fn mark(&self) -> SystemTime {
        SystemTime::now()
    }

    fn inject_for_php(&mut self, headers: &mut HeaderMap) {
        RequestTrace::inject_for_php(self, headers);
    }

    fn static_file(&mut self, started: SystemTime) {
        RequestTrace::static_file(self, started);
    }

    async fn exec(&mut self, pool: &Pool, job: Payload) -> Result<PoolResponse, PoolError> {
        let queued = SystemTime::now();
        let mut leased = None;
        let reply = pool.exec_observed(job, &mut leased).await;
        self.exchange(Exchange {
            queued,
            leased: leased.map(|(at, _)| at),
            done: SystemTime::now(),
            pid: leased.map(|(_, pid)| pid),
            failed: reply.is_err(),
        });
        reply
    }
}
