//! The operator's own metrics (one struct, registered in one place) and its HTTP endpoint:
//! `/metrics` (OpenMetrics text), `/health` (the process is alive) and `/ready` (the
//! process is serving; a standby replica is ready too, it just does not lead).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Labels of `pacer_operator_reconciliations_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `ok` or `error`.
    pub result: &'static str,
}

/// Labels of `pacer_operator_tuning_changes_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChangeLabels {
    /// `workers`, `replicas`, `max_jobs`, `max_worker_memory`, `memory_limit`.
    pub setting: &'static str,
    /// `up` or `down`.
    pub direction: &'static str,
}

/// Labels of `pacer_operator_metrics_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    /// `Direct` or `Prometheus`.
    pub source: &'static str,
}

/// Every metric of the operator.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Reconciles by result.
    pub reconciliations: Family<ResultLabels, Counter>,
    /// Reconcile duration, seconds.
    pub reconcile_duration: Histogram,
    /// Applied tuning changes by setting and direction.
    pub tuning_changes: Family<ChangeLabels, Counter>,
    /// Failed metric reads by source.
    pub metrics_errors: Family<SourceLabels, Counter>,
    /// 1 while this replica holds the leader Lease.
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric under the `pacer_operator` prefix.
    #[must_use]
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("pacer_operator");
        let reconciliations = Family::<ResultLabels, Counter>::default();
        let reconcile_duration = Histogram::new(exponential_buckets(0.005, 2.0, 12));
        let tuning_changes = Family::<ChangeLabels, Counter>::default();
        let metrics_errors = Family::<SourceLabels, Counter>::default();
        let leader = Gauge::default();
        registry.register(
            "reconciliations",
            "Reconciles of PhpAppServer objects by result",
            reconciliations.clone(),
        );
        registry.register_with_unit(
            "reconcile_duration",
            "Time one reconcile took",
            prometheus_client::registry::Unit::Seconds,
            reconcile_duration.clone(),
        );
        registry.register(
            "tuning_changes",
            "Pool settings changed by the tuner, by setting and direction",
            tuning_changes.clone(),
        );
        registry.register(
            "metrics_errors",
            "Failed reads of application metrics, by source",
            metrics_errors.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease",
            leader.clone(),
        );
        Self {
            registry,
            reconciliations,
            reconcile_duration,
            tuning_changes,
            metrics_errors,
            leader,
        }
    }

    /// The OpenMetrics text of every metric.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

fn respond(metrics: &Metrics, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&hyper::Method::GET, "/metrics") => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        (&hyper::Method::GET, "/health" | "/healthz" | "/ready" | "/readyz") => (
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "ok\n".to_owned(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n".to_owned(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

/// Serves `/metrics`, `/health` and `/ready` on `listener` until `shutdown` fires, then
/// lets open connections finish for up to five seconds.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, shutdown: CancellationToken) {
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, _) = match accepted {
            Ok(conn) => conn,
            Err(error) => {
                tracing::warn!(%error, "accepting a metrics connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let response = respond(&metrics, &request);
                async move { Ok::<_, Infallible>(response) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
                }
            }
        });
    }
    connections.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), connections.wait()).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
        sock.write_all(
            format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        sock.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_metrics_and_health() {
        let metrics = Arc::new(Metrics::new());
        metrics
            .tuning_changes
            .get_or_create(&ChangeLabels {
                setting: "workers",
                direction: "up",
            })
            .inc();
        metrics.leader.set(1);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(listener, metrics, shutdown.clone()));

        let text = get(addr, "/metrics").await;
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(
            text.contains(
                r#"pacer_operator_tuning_changes_total{setting="workers",direction="up"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("pacer_operator_leader 1"), "{text}");
        assert!(
            text.contains("pacer_operator_reconcile_duration_seconds_bucket"),
            "{text}"
        );
        assert!(get(addr, "/health").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/ready").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));

        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap();
    }
}
