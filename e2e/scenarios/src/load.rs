//! The load generator: HTTP GETs (hyper client) at an app's ready pods, with a
//! controllable concurrency (requests in flight) and an optional rate cap.
//!
//! Like a Service, it sends traffic only to the pods that are Ready, and follows them
//! (the pod list is re-read every half second). Every request is counted: a success is a
//! 200 with its whole body read; anything else (other status, connection error, time-out)
//! is a failure, with the first few kept for the report. The load is bounded: it stops by
//! itself at its deadline.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use crate::dial::Dial;
use crate::lock;

/// What to send.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadSpec {
    /// Path and query, e.g. `/work?ms=100`.
    pub path: String,
    /// Requests in flight at most (0 = idle).
    pub concurrency: usize,
    /// Requests per second at most (`None`: as fast as the concurrency allows).
    pub rate: Option<f64>,
}

impl LoadSpec {
    /// No load.
    #[must_use]
    pub fn idle() -> Self {
        Self {
            path: "/hello".into(),
            concurrency: 0,
            rate: None,
        }
    }

    /// A short description for the timeline.
    #[must_use]
    pub fn describe(&self) -> String {
        if self.concurrency == 0 {
            return "idle".into();
        }
        match self.rate {
            Some(r) => format!("{} ×{} ≤{r:.0}/s", self.path, self.concurrency),
            None => format!("{} ×{}", self.path, self.concurrency),
        }
    }
}

/// Counters of a load run.
#[derive(Debug, Default)]
pub struct Stats {
    ok: AtomicU64,
    failed: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Stats {
    /// Successful requests.
    #[must_use]
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Failed requests.
    #[must_use]
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// The first few failures, in words.
    #[must_use]
    pub fn errors(&self) -> Vec<String> {
        lock(&self.errors).clone()
    }

    fn fail(&self, why: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut errors = lock(&self.errors);
        if errors.len() < 10 {
            errors.push(why);
        }
    }
}

/// A running load generator.
#[derive(Debug)]
pub struct Load {
    spec: watch::Sender<LoadSpec>,
    stats: Arc<Stats>,
    endpoints: Arc<RwLock<Vec<SocketAddr>>>,
    stop: CancellationToken,
    tasks: tokio_util::task::TaskTracker,
}

/// Most worker tasks (in-flight requests) a load may have.
const MAX_CONCURRENCY: usize = 64;

impl Load {
    /// Starts sending `spec` to the ready pods of app `app` in `namespace` (label
    /// `pacer.dev/app`), on `port`, until [`Load::stop`] or `deadline` from now.
    #[must_use]
    pub fn start(
        client: Client,
        namespace: &str,
        app: &str,
        port: u16,
        spec: LoadSpec,
        deadline: Duration,
    ) -> Self {
        Self::start_via(Dial::Host, client, namespace, app, port, spec, deadline)
    }

    /// [`Load::start`], reaching the pods through `dial`.
    #[must_use]
    pub fn start_via(
        dial: Dial,
        client: Client,
        namespace: &str,
        app: &str,
        port: u16,
        spec: LoadSpec,
        deadline: Duration,
    ) -> Self {
        let (spec_tx, spec_rx) = watch::channel(spec);
        let stats = Arc::new(Stats::default());
        let endpoints = Arc::new(RwLock::new(Vec::new()));
        let stop = CancellationToken::new();
        let tasks = tokio_util::task::TaskTracker::new();

        // Endpoints: the Ready pods, like an EndpointSlice.
        {
            let pods: Api<Pod> = Api::namespaced(client, namespace);
            let selector = format!("pacer.dev/app={app}");
            let endpoints = endpoints.clone();
            let stop = stop.clone();
            tasks.spawn(async move {
                loop {
                    if let Ok(list) = pods.list(&ListParams::default().labels(&selector)).await {
                        let ready: Vec<SocketAddr> = list
                            .items
                            .iter()
                            .filter(|p| p.metadata.deletion_timestamp.is_none())
                            .filter(|p| {
                                p.status
                                    .as_ref()
                                    .and_then(|s| s.conditions.as_ref())
                                    .is_some_and(|c| {
                                        c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                                    })
                            })
                            .filter_map(|p| p.status.as_ref()?.pod_ip.as_ref()?.parse().ok())
                            .map(|ip: std::net::IpAddr| SocketAddr::new(ip, port))
                            .collect();
                        *endpoints.write().unwrap_or_else(|e| e.into_inner()) = ready;
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            });
        }

        // Rate cap: a ticker hands out permits (none are needed without a cap).
        let permits = Arc::new(Semaphore::new(0));
        {
            let permits = permits.clone();
            let mut spec = spec_rx.clone();
            let stop = stop.clone();
            tasks.spawn(async move {
                loop {
                    let current = spec.borrow_and_update().clone();
                    let wait = match current.rate {
                        Some(r) if r > 0.0 => {
                            if permits.available_permits() < current.concurrency.max(1) {
                                permits.add_permits(1);
                            }
                            Duration::from_secs_f64(1.0 / r)
                        }
                        _ => Duration::from_millis(100),
                    };
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = spec.changed() => {}
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            });
        }

        let http: HttpClient<Dial, Empty<Bytes>> = HttpClient::builder(TokioExecutor::new())
            .pool_max_idle_per_host(MAX_CONCURRENCY)
            .build(dial);
        let next = Arc::new(AtomicUsize::new(0));
        for index in 0..MAX_CONCURRENCY {
            let mut spec = spec_rx.clone();
            let stop = stop.clone();
            let http = http.clone();
            let stats = stats.clone();
            let endpoints = endpoints.clone();
            let permits = permits.clone();
            let next = next.clone();
            tasks.spawn(async move {
                loop {
                    let current = spec.borrow_and_update().clone();
                    if index >= current.concurrency {
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = spec.changed() => continue,
                        }
                    }
                    if current.rate.is_some() {
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = spec.changed() => continue,
                            permit = permits.acquire() => match permit {
                                Ok(p) => p.forget(),
                                Err(_) => return,
                            },
                        }
                    }
                    let target = {
                        let list = endpoints.read().unwrap_or_else(|e| e.into_inner());
                        if list.is_empty() {
                            None
                        } else {
                            Some(list[next.fetch_add(1, Ordering::Relaxed) % list.len()])
                        }
                    };
                    let Some(target) = target else {
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                        }
                    };
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = request(&http, target, &current.path, &stats) => {}
                    }
                }
            });
        }

        let stop_at = stop.clone();
        tasks.spawn(async move {
            tokio::select! {
                _ = stop_at.cancelled() => {}
                _ = tokio::time::sleep(deadline) => stop_at.cancel(),
            }
        });
        tasks.close();
        Self {
            spec: spec_tx,
            stats,
            endpoints,
            stop,
            tasks,
        }
    }

    /// Changes what is sent, at once.
    pub fn set(&self, spec: LoadSpec) {
        let _ = self.spec.send(spec);
    }

    /// What is being sent.
    #[must_use]
    pub fn spec(&self) -> LoadSpec {
        self.spec.borrow().clone()
    }

    /// The counters.
    #[must_use]
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// The pods receiving traffic now.
    #[must_use]
    pub fn endpoints(&self) -> Vec<SocketAddr> {
        self.endpoints
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops sending; requests in flight are abandoned (not counted).
    pub async fn stop(&self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.tasks.wait()).await;
    }
}

async fn request(
    http: &HttpClient<Dial, Empty<Bytes>>,
    target: SocketAddr,
    path: &str,
    stats: &Stats,
) {
    let uri = match format!("http://{target}{path}").parse::<http::Uri>() {
        Ok(uri) => uri,
        Err(e) => return stats.fail(format!("bad uri: {e}")),
    };
    let attempt = async {
        let response = http.get(uri).await.map_err(|e| format!("{target}: {e}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{target}: body: {e}"))?
            .to_bytes();
        if status == http::StatusCode::OK {
            Ok(())
        } else {
            Err(format!(
                "{target}{path}: {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ))
        }
    };
    match tokio::time::timeout(Duration::from_secs(30), attempt).await {
        Ok(Ok(())) => {
            stats.ok.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Err(e)) => stats.fail(e),
        Err(_) => stats.fail(format!("{target}{path}: no answer within 30 s")),
    }
}
