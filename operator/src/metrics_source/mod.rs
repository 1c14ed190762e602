//! Where the tuner's numbers come from (docs/design.md §3.4).
//!
//! One trait, [`MetricsSource`], three implementations:
//! * [`Direct`] (default, no dependencies): scrapes `http://<podIP>:2112/metrics` of every
//!   running pod of the app, keeps the scrapes of the window per pod, and aggregates them
//!   ([`aggregate`]).
//! * [`Prometheus`]: PromQL over the HTTP API of the user's Prometheus; the window
//!   functions (`rate`, `avg_over_time`, `offset`) do the aggregation there.
//! * [`Fake`]: returns what a test told it to.
//!
//! [`Router`] picks Direct or Prometheus per app from its spec. The controller finds the
//! pods through the API and passes them in a [`Target`], so both real sources look at
//! exactly the pods the Deployment owns.

pub mod aggregate;
pub mod direct;
pub mod fake;
pub mod http;
pub mod jobs;
pub mod prom_text;
pub mod prometheus;
pub mod window;

use std::time::Duration;

use futures_util::future::BoxFuture;
use jiff::Timestamp;
use pacer_crds::MetricsSourceKind;

pub use direct::Direct;
pub use fake::Fake;
pub use prometheus::Prometheus;

use crate::sample::AppSample;

/// Port of pacer's metrics endpoint in the generated configuration.
pub const METRICS_PORT: u16 = 2112;

/// One pod of the app.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PodTarget {
    /// Pod name.
    pub name: String,
    /// Pod IP, once it has one.
    pub ip: Option<String>,
    /// Since when the pod is ready (its Ready condition's last transition); `None` while
    /// it is not ready. The tuner tells warm pods from cold ones by it.
    pub ready_since: Option<jiff::Timestamp>,
    /// An in-place resize of the pod is pending (deferred, infeasible or in progress).
    pub resize_pending: bool,
    /// The image its PHP container runs, by digest (the status' `imageID`): the
    /// application version it runs. `None` until the container has run.
    pub image: Option<String>,
}

/// The app whose metrics are wanted, and how.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// Namespace of the app.
    pub namespace: String,
    /// Name of the `PhpAppServer`.
    pub app: String,
    /// Its running pods.
    pub pods: Vec<PodTarget>,
    /// Which source the spec asks for.
    pub source: MetricsSourceKind,
    /// Prometheus base URL (source Prometheus).
    pub prometheus_url: Option<String>,
    /// Bearer token for Prometheus, read from the app's Secret.
    pub bearer_token: Option<String>,
    /// Length of the aggregation window.
    pub window: Duration,
    /// The time of this sample.
    pub now: Timestamp,
}

/// Why metrics could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An HTTP request failed (connect, TLS, timeout).
    #[error("request to {url} failed: {reason}")]
    Request {
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// An HTTP request got a non-success status. (The body is not kept: what a server
    /// answers must never reach the status of an object, or the operator would forward
    /// responses of whatever a tenant points it at.)
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The response could not be understood.
    #[error("cannot understand the answer of {url}: {reason}")]
    Parse {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// Every pod failed to answer.
    #[error("no pod answered its metrics scrape ({failed} failed), e.g. {first}")]
    AllPodsFailed {
        /// Pods that failed.
        failed: usize,
        /// The first failure.
        first: Box<Error>,
    },
    /// The source is misconfigured (e.g. no Prometheus URL).
    #[error("metrics source misconfigured: {0}")]
    Config(String),
}

/// Whether `url` is within one of the operator's allowed Prometheus URLs: same scheme and
/// host, the same port when the allowed entry names one, and a path under the entry's.
/// Userinfo (`user@host`) is never allowed: it could smuggle a different host past a
/// reader.
#[must_use]
pub fn url_allowed(url: &str, allowed: &[String]) -> bool {
    let Ok(uri) = url.parse::<::http::Uri>() else {
        return false;
    };
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return false;
    };
    if authority.as_str().contains('@') {
        return false;
    }
    let port = authority.port_u16().or(match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    });
    allowed.iter().any(|entry| {
        let Ok(e) = entry.parse::<::http::Uri>() else {
            return false;
        };
        let (Some(e_scheme), Some(e_authority)) = (e.scheme_str(), e.authority()) else {
            return false;
        };
        let base = e.path().trim_end_matches('/');
        let path = uri.path();
        e_scheme.eq_ignore_ascii_case(scheme)
            && e_authority.host().eq_ignore_ascii_case(authority.host())
            && e_authority.port_u16().is_none_or(|p| Some(p) == port)
            && (base.is_empty()
                || path == base
                || path
                    .strip_prefix(base)
                    .is_some_and(|rest| rest.starts_with('/')))
    })
}

/// A source of window aggregates.
pub trait MetricsSource: Send + Sync + std::fmt::Debug {
    /// Window aggregates of every pod of the target that has enough data. An empty
    /// `pods` list means "nothing measurable yet" (e.g. the first scrape of a window).
    fn sample<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<AppSample, Error>>;

    /// Forget what is kept about an app (it was deleted).
    fn forget(&self, _namespace: &str, _app: &str) {}

    /// One PromQL value at `now` from the Prometheus at `url`: the sum of the vector's
    /// series, 0 for an empty vector (the jobs depth while no pod runs,
    /// `jobs.scaleToZero.depthQuery`).
    fn query_sum<'a>(
        &'a self,
        url: &'a str,
        _token: Option<&'a str>,
        _query: &'a str,
        _now: Timestamp,
    ) -> BoxFuture<'a, Result<f64, Error>> {
        Box::pin(async move {
            Err(Error::Config(format!(
                "this metrics source cannot query {url}"
            )))
        })
    }
}

/// Dispatches to [`Direct`] or [`Prometheus`] by the app's `tuning.metrics.source`.
#[derive(Debug)]
pub struct Router {
    direct: Direct,
    prometheus: Prometheus,
}

impl Router {
    /// A router over the two real sources.
    #[must_use]
    pub fn new(direct: Direct, prometheus: Prometheus) -> Self {
        Self { direct, prometheus }
    }
}

impl MetricsSource for Router {
    fn sample<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<AppSample, Error>> {
        match target.source {
            MetricsSourceKind::Direct => self.direct.sample(target),
            MetricsSourceKind::Prometheus => self.prometheus.sample(target),
        }
    }

    fn forget(&self, namespace: &str, app: &str) {
        self.direct.forget(namespace, app);
        self.prometheus.forget(namespace, app);
    }

    fn query_sum<'a>(
        &'a self,
        url: &'a str,
        token: Option<&'a str>,
        query: &'a str,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<f64, Error>> {
        self.prometheus.query_sum(url, token, query, now)
    }
}

#[cfg(test)]
mod tests {
    use super::url_allowed;

    #[test]
    fn only_allowed_prometheus_urls_pass() {
        let allowed = vec![
            "http://prometheus.monitoring:9090".to_owned(),
            "https://thanos.example/api/prom/".to_owned(),
            "http://127.0.0.1".to_owned(),
        ];
        for (url, ok) in [
            ("http://prometheus.monitoring:9090", true),
            ("http://prometheus.monitoring:9090/", true),
            ("http://PROMETHEUS.monitoring:9090/sub", true),
            ("http://prometheus.monitoring:9091", false),
            ("https://prometheus.monitoring:9090", false),
            ("http://prometheus.monitoring.evil:9090", false),
            ("http://evil@prometheus.monitoring:9090", false),
            ("http://kubernetes.default.svc/api", false),
            ("https://thanos.example/api/prom", true),
            ("https://thanos.example/api/prom/tenant", true),
            ("https://thanos.example/api/prometheus", false),
            ("https://thanos.example/", false),
            ("http://127.0.0.1:41234/", true),
            ("http://127.0.0.2:41234/", false),
            ("not a url", false),
        ] {
            assert_eq!(url_allowed(url, &allowed), ok, "{url}");
        }
        assert!(
            !url_allowed("http://prometheus.monitoring:9090", &[]),
            "none by default"
        );
    }
}
