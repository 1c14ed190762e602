//! The span pipeline behind [`super::Tracing`]: the SDK's batch span processor (its own
//! thread; a bounded queue that drops spans when full, so a request never waits for the
//! exporter) → the SDK's OTLP exporter, which encodes each batch → [`Client`], pacer's
//! own transport for the encoded batch: OTLP/HTTP or OTLP/gRPC (`grpc.rs`) with hyper +
//! rustls, driven by a one-thread Tokio runtime of its own (the request runtimes never
//! run an export), or one line of OTLP JSON on stdout/stderr (the `stdout` and `stderr`
//! exporters).

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

use super::{OtelError, grpc};
use crate::config::{OtelConfig, OtelExporter, OtlpClient};

/// One export may take this long (connect, send, read the answer).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// Spans waiting for export; more are dropped (and counted by the SDK).
pub const MAX_QUEUE: usize = 4096;
/// Collector answers are small; anything bigger is not read.
const MAX_RESPONSE: usize = 1 << 20;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// Where the exporter's encoded batches go.
#[derive(Debug)]
pub(super) enum Client {
    /// To a collector.
    Network(Box<Network>),
    /// One line per batch (the exporter encodes OTLP JSON for these).
    Stdout,
    Stderr,
}

/// The collector's client: each request runs on the exporter's own runtime.
#[derive(Debug)]
pub(super) struct Network {
    client: HyperClient<Connector, Full<Bytes>>,
    grpc: bool,
    runtime: tokio::runtime::Handle,
}

impl Client {
    pub(super) fn new(
        config: &OtelConfig,
        runtime: tokio::runtime::Handle,
    ) -> Result<Client, OtelError> {
        match config.exporter {
            OtelExporter::Stdout => return Ok(Client::Stdout),
            OtelExporter::Stderr => return Ok(Client::Stderr),
            OtelExporter::Otlp => {}
        }
        let grpc = config.client == OtlpClient::Grpc;
        let tls = rustls::ClientConfig::with_platform_verifier()
            .map_err(|e| OtelError::Tls(e.to_string()))?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http();
        // gRPC is HTTP/2 only: prior knowledge in plain text, ALPN h2 over TLS.
        let connector = if grpc {
            connector.enable_http2().build()
        } else {
            connector.enable_http1().build()
        };
        let client = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .http2_only(grpc)
            .build(connector);
        Ok(Client::Network(Box::new(Network {
            client,
            grpc,
            runtime,
        })))
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
        let (client, grpc, runtime) = match self {
            Client::Network(n) => (n.client.clone(), n.grpc, &n.runtime),
            Client::Stdout => {
                return Box::pin(std::future::ready(write_line(
                    &mut std::io::stdout().lock(),
                    request.body(),
                )));
            }
            Client::Stderr => {
                return Box::pin(std::future::ready(write_line(
                    &mut std::io::stderr().lock(),
                    request.body(),
                )));
            }
        };
        let task = runtime.spawn(async move {
            let request = if grpc {
                grpc::request(request)?
            } else {
                request
            };
            let exchange = async {
                let response = client.request(request.map(Full::new)).await?;
                let (parts, body) = response.into_parts();
                let collected = Limited::new(body, MAX_RESPONSE)
                    .collect()
                    .await
                    .map_err(|e| -> HttpError { e })?;
                let trailers = collected.trailers().cloned();
                let body = collected.to_bytes();
                if grpc {
                    return Ok(grpc::response(
                        parts.status,
                        &parts.headers,
                        body,
                        trailers.as_ref(),
                    )?);
                }
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

/// The `stdout`/`stderr` exporters: the batch's OTLP JSON as one line, in one write (a
/// reader never sees half a line), answered as a collector would.
fn write_line(
    out: &mut impl std::io::Write,
    body: &Bytes,
) -> Result<http::Response<Bytes>, HttpError> {
    out.write_all(&one_line(body))?;
    out.flush()?;
    Ok(http::Response::new(Bytes::from_static(b"{}")))
}

/// The exporter pretty-prints its JSON: drop the whitespace outside strings (keeping
/// the keys' order) and end the line.
fn one_line(json: &[u8]) -> Vec<u8> {
    let mut line = Vec::with_capacity(json.len() / 2 + 1);
    let (mut in_string, mut escaped) = (false, false);
    for &b in json {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        } else if b.is_ascii_whitespace() {
            continue;
        }
        line.push(b);
    }
    line.push(b'\n');
    line
}

/// The tracer provider: resource, batch processor, exporter.
pub(super) fn provider(
    config: &OtelConfig,
    runtime: tokio::runtime::Handle,
) -> Result<SdkTracerProvider, OtelError> {
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(Client::new(config, runtime)?)
        .with_timeout(EXPORT_TIMEOUT);
    builder = match config.exporter {
        // The collectors get protobuf (gRPC's message is the OTLP/HTTP body, grpc.rs).
        OtelExporter::Otlp => {
            builder = builder
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(config.url.clone())
                .with_headers(config.headers.iter().cloned().collect::<HashMap<_, _>>());
            if config.compress {
                builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
            }
            builder
        }
        // The line exporters print OTLP JSON (no endpoint: the client writes the body).
        OtelExporter::Stdout | OtelExporter::Stderr => {
            builder.with_protocol(opentelemetry_otlp::Protocol::HttpJson)
        }
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_json_becomes_one_line_with_strings_intact() {
        let pretty = b"{\n  \"a b\": [\n    1,\n    \"x \\\" y\\\\\"\n  ],\n  \"c\":\t{}\n}";
        let line = one_line(pretty);
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "{\"a b\":[1,\"x \\\" y\\\\\"],\"c\":{}}\n"
        );
    }
}
