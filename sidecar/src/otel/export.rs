//! The span pipeline behind [`super::Tracing`]: the SDK's batch span processor (its own
//! thread; a bounded queue that drops spans when full, so a request never waits for the
//! exporter) → the OTLP/HTTP protobuf exporter → [`Client`], pacer's own hyper + rustls
//! client driven by a one-thread Tokio runtime of its own (the request runtimes never run
//! an export).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::cell::Cell;

use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, IdGenerator, SdkTracerProvider,
};
use rustls_platform_verifier::ConfigVerifierExt;

use super::OtelError;
use crate::config::OtelConfig;

/// One export may take this long (connect, send, read the answer).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// Spans waiting for export; more are dropped (and counted by the SDK).
pub const MAX_QUEUE: usize = 4096;
/// Collector answers are small; anything bigger is not read.
const MAX_RESPONSE: usize = 1 << 20;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// The exporter's HTTP client: each request runs on the exporter's own runtime.
#[derive(Debug)]
pub(super) struct Client {
    client: HyperClient<Connector, Full<Bytes>>,
    runtime: tokio::runtime::Handle,
}

impl Client {
    pub(super) fn new(runtime: tokio::runtime::Handle) -> Result<Client, OtelError> {
        let tls = rustls::ClientConfig::with_platform_verifier()
            .map_err(|e| OtelError::Tls(e.to_string()))?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let client = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Client { client, runtime })
    }
}

impl HttpClient for Client {
    // The trait is declared with `async_trait`; this is its expanded form.
    fn send_bytes<'a, 'b>(
        &'a self,
        request: http::Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Result<http::Response<Bytes>, HttpError>> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        let client = self.client.clone();
        let task = self.runtime.spawn(async move {
            let request = request.map(Full::new);
            let exchange = async {
                let response = client.request(request).await?;
                let (parts, body) = response.into_parts();
                let body = Limited::new(body, MAX_RESPONSE)
                    .collect()
                    .await
                    .map_err(|e| -> HttpError { e })?
                    .to_bytes();
                Ok::<_, HttpError>(http::Response::from_parts(parts, body))
            };
            match tokio::time::timeout(EXPORT_TIMEOUT, exchange).await {
                Ok(result) => result,
                Err(_) => Err(format!("no answer within {EXPORT_TIMEOUT:?}").into()),
            }
        });
        Box::pin(async move { task.await.map_err(|e| -> HttpError { Box::new(e) })? })
    }
}

/// The tracer provider: resource, batch processor, exporter.
pub(super) fn provider(
    config: &OtelConfig,
    runtime: tokio::runtime::Handle,
) -> Result<SdkTracerProvider, OtelError> {
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(Client::new(runtime)?)
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(config.url.clone())
        .with_timeout(EXPORT_TIMEOUT)
        .with_headers(config.headers.iter().cloned().collect::<HashMap<_, _>>());
    if config.compress {
        builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
    }
    let exporter = builder
        .build()
        .map_err(|e| OtelError::Exporter(e.to_string()))?;
    let batch = BatchConfigBuilder::default()
        .with_max_queue_size(MAX_QUEUE)
        .build();
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(batch)
        .build();
    Ok(SdkTracerProvider::builder()
        .with_id_generator(Ids)
        .with_span_processor(processor)
        .with_resource(resource(config))
        .build())
}

fn resource(config: &OtelConfig) -> Resource {
    let r = &config.resource;
    let mut attributes = vec![
        KeyValue::new("service.name", r.service_name.clone()),
        KeyValue::new("service.version", r.service_version.clone()),
        KeyValue::new("webengine.name", "pacer"),
        KeyValue::new("webengine.version", env!("CARGO_PKG_VERSION")),
        KeyValue::new("host.arch", std::env::consts::ARCH),
        KeyValue::new("os.type", std::env::consts::OS),
    ];
    if let Some(id) = &r.service_instance_id {
        attributes.push(KeyValue::new("service.instance.id", id.clone()));
    }
    if let Some(ns) = &r.service_namespace {
        attributes.push(KeyValue::new("service.namespace", ns.clone()));
    }
    // `builder()` reads OTEL_RESOURCE_ATTRIBUTES too; the section's values win.
    Resource::builder().with_attributes(attributes).build()
}

thread_local! {
    /// The id the next span started on this thread must have (see [`with_span_id`]).
    static NEXT_SPAN_ID: Cell<Option<SpanId>> = const { Cell::new(None) };
}

/// Runs `start` (which starts one span) so that the span gets `id`: the `php` span's id
/// is chosen before the exchange, to be PHP's parent, and the SDK's span builder has no
/// field for it. Span start is synchronous, so a thread-local handover is exact.
pub(super) fn with_span_id<T>(id: SpanId, start: impl FnOnce() -> T) -> T {
    NEXT_SPAN_ID.with(|next| next.set(Some(id)));
    let span = start();
    NEXT_SPAN_ID.with(|next| next.set(None));
    span
}

/// Random ids, except a span id handed over by [`with_span_id`].
#[derive(Debug)]
struct Ids;

impl IdGenerator for Ids {
    fn new_trace_id(&self) -> TraceId {
        TraceId::from_bytes(fastrand::u128(1..).to_be_bytes())
    }

    fn new_span_id(&self) -> SpanId {
        NEXT_SPAN_ID
            .with(Cell::take)
            .unwrap_or_else(|| SpanId::from_bytes(fastrand::u64(1..).to_be_bytes()))
    }
}
