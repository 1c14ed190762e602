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

/// Labels of the per-app gauges: the `PhpAppServer`'s namespace and name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppLabels {
    /// Namespace of the `PhpAppServer`.
    pub namespace: String,
    /// Its name.
    pub phpappserver: String,
}

/// Labels of `pacer_operator_app_status_condition` (as kube-state-metrics labels
/// conditions: one series per status, the one in force is 1).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConditionLabels {
    /// Namespace of the `PhpAppServer`.
    pub namespace: String,
    /// Its name.
    pub phpappserver: String,
    /// Condition type: `Ready`, `Tuned`, `Degraded`, `ExternalReplicas`.
    pub condition: &'static str,
    /// `true`, `false` or `unknown`.
    pub status: &'static str,
}

/// The condition types exported per app.
pub const EXPORTED_CONDITIONS: &[&str] = &["Ready", "Tuned", "Degraded", "ExternalReplicas"];
const CONDITION_STATUSES: &[(&str, &str)] =
    &[("True", "true"), ("False", "false"), ("Unknown", "unknown")];

/// What the per-app gauges show of one app after a reconcile (plain data).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AppView {
    /// Workers per pod now configured.
    pub workers: i64,
    /// `pool.workers.max`.
    pub workers_max: i64,
    /// Pods now configured (or wanted by an external autoscaler).
    pub replicas: i64,
    /// `replicas.max`.
    pub replicas_max: i64,
    /// Memory limit per pod now configured, bytes.
    pub memory_limit_bytes: i64,
    /// Busy workers ÷ live workers over the last window, when measured.
    pub busy_ratio: Option<f64>,
    /// Finish time of the newest OOM kill of an app container, Unix seconds.
    pub last_oom_kill: Option<i64>,
    /// Condition type → status (`True`, `False`, `Unknown`).
    pub conditions: Vec<(&'static str, String)>,
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
    /// Per app: workers per pod now configured.
    pub app_workers: Family<AppLabels, Gauge>,
    /// Per app: `pool.workers.max`.
    pub app_workers_max: Family<AppLabels, Gauge>,
    /// Per app: pods.
    pub app_replicas: Family<AppLabels, Gauge>,
    /// Per app: `replicas.max`.
    pub app_replicas_max: Family<AppLabels, Gauge>,
    /// Per app: memory limit per pod, bytes.
    pub app_memory_limit: Family<AppLabels, Gauge>,
    /// Per app: busy ratio of the last window.
    pub app_busy_ratio: Family<AppLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Per app: newest OOM kill, Unix seconds (0: none seen).
    pub app_last_oom_kill: Family<AppLabels, Gauge>,
    /// Per app: conditions.
    pub app_condition: Family<ConditionLabels, Gauge>,
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
        let app_workers = Family::<AppLabels, Gauge>::default();
        let app_workers_max = Family::<AppLabels, Gauge>::default();
        let app_replicas = Family::<AppLabels, Gauge>::default();
        let app_replicas_max = Family::<AppLabels, Gauge>::default();
        let app_memory_limit = Family::<AppLabels, Gauge>::default();
        let app_busy_ratio =
            Family::<AppLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        let app_last_oom_kill = Family::<AppLabels, Gauge>::default();
        let app_condition = Family::<ConditionLabels, Gauge>::default();
        registry.register(
            "app_workers",
            "PHP workers per pod now configured, per PhpAppServer",
            app_workers.clone(),
        );
        registry.register(
            "app_workers_max",
            "pool.workers.max of each PhpAppServer",
            app_workers_max.clone(),
        );
        registry.register(
            "app_replicas",
            "Pods now configured (or wanted by an external autoscaler), per PhpAppServer",
            app_replicas.clone(),
        );
        registry.register(
            "app_replicas_max",
            "replicas.max of each PhpAppServer",
            app_replicas_max.clone(),
        );
        registry.register_with_unit(
            "app_memory_limit",
            "Memory limit per pod now configured, per PhpAppServer",
            prometheus_client::registry::Unit::Bytes,
            app_memory_limit.clone(),
        );
        registry.register(
            "app_busy_ratio",
            "Busy workers / live workers over the last tuning window, per PhpAppServer",
            app_busy_ratio.clone(),
        );
        registry.register(
            "app_last_oom_kill_timestamp_seconds",
            "Finish time of the newest OOM kill of an app container (0: none seen), per PhpAppServer",
            app_last_oom_kill.clone(),
        );
        registry.register(
            "app_status_condition",
            "Conditions of each PhpAppServer: 1 for the status in force",
            app_condition.clone(),
        );
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
            app_workers,
            app_workers_max,
            app_replicas,
            app_replicas_max,
            app_memory_limit,
            app_busy_ratio,
            app_last_oom_kill,
            app_condition,
        }
    }

    /// Sets the per-app gauges of one app.
    pub fn record_app(&self, namespace: &str, name: &str, view: &AppView) {
        let labels = AppLabels {
            namespace: namespace.to_owned(),
            phpappserver: name.to_owned(),
        };
        self.app_workers.get_or_create(&labels).set(view.workers);
        self.app_workers_max
            .get_or_create(&labels)
            .set(view.workers_max);
        self.app_replicas.get_or_create(&labels).set(view.replicas);
        self.app_replicas_max
            .get_or_create(&labels)
            .set(view.replicas_max);
        self.app_memory_limit
            .get_or_create(&labels)
            .set(view.memory_limit_bytes);
        match view.busy_ratio {
            Some(ratio) => {
                self.app_busy_ratio.get_or_create(&labels).set(ratio);
            }
            None => {
                self.app_busy_ratio.remove(&labels);
            }
        }
        self.app_last_oom_kill
            .get_or_create(&labels)
            .set(view.last_oom_kill.unwrap_or(0));
        for condition in EXPORTED_CONDITIONS {
            let now = view
                .conditions
                .iter()
                .find(|(c, _)| c == condition)
                .map(|(_, s)| s.as_str());
            for (status, label) in CONDITION_STATUSES {
                let key = ConditionLabels {
                    namespace: namespace.to_owned(),
                    phpappserver: name.to_owned(),
                    condition,
                    status: label,
                };
                match now {
                    Some(s) => {
                        self.app_condition
                            .get_or_create(&key)
                            .set(i64::from(s == *status));
                    }
                    None => {
                        self.app_condition.remove(&key);
                    }
                }
            }
        }
    }

    /// Removes every per-app series of a deleted app.
    pub fn forget_app(&self, namespace: &str, name: &str) {
        let labels = AppLabels {
            namespace: namespace.to_owned(),
            phpappserver: name.to_owned(),
        };
        for family in [
            &self.app_workers,
            &self.app_workers_max,
            &self.app_replicas,
            &self.app_replicas_max,
            &self.app_memory_limit,
            &self.app_last_oom_kill,
        ] {
            family.remove(&labels);
        }
        self.app_busy_ratio.remove(&labels);
        for condition in EXPORTED_CONDITIONS {
            for (_, status) in CONDITION_STATUSES {
                self.app_condition.remove(&ConditionLabels {
                    namespace: namespace.to_owned(),
                    phpappserver: name.to_owned(),
                    condition,
                    status,
                });
            }
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

    #[test]
    fn per_app_gauges_are_set_and_forgotten() {
        let metrics = Metrics::new();
        let view = AppView {
            workers: 6,
            workers_max: 16,
            replicas: 2,
            replicas_max: 4,
            memory_limit_bytes: 512 * 1024 * 1024,
            busy_ratio: Some(0.75),
            last_oom_kill: Some(1_700_000_000),
            conditions: vec![("Ready", "False".into()), ("Tuned", "Unknown".into())],
        };
        metrics.record_app("shop", "web", &view);
        let text = metrics.encode();
        for line in [
            r#"pacer_operator_app_workers{namespace="shop",phpappserver="web"} 6"#,
            r#"pacer_operator_app_workers_max{namespace="shop",phpappserver="web"} 16"#,
            r#"pacer_operator_app_memory_limit_bytes{namespace="shop",phpappserver="web"} 536870912"#,
            r#"pacer_operator_app_busy_ratio{namespace="shop",phpappserver="web"} 0.75"#,
            r#"pacer_operator_app_last_oom_kill_timestamp_seconds{namespace="shop",phpappserver="web"} 1700000000"#,
            r#"pacer_operator_app_status_condition{namespace="shop",phpappserver="web",condition="Ready",status="false"} 1"#,
            r#"pacer_operator_app_status_condition{namespace="shop",phpappserver="web",condition="Ready",status="true"} 0"#,
            r#"pacer_operator_app_status_condition{namespace="shop",phpappserver="web",condition="Tuned",status="unknown"} 1"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(
            !text.contains(r#"condition="Degraded""#),
            "unset conditions have no series"
        );
        metrics.forget_app("shop", "web");
        assert!(!metrics.encode().contains(r#"phpappserver="web""#));
    }

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
