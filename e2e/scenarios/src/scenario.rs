//! One application under test: its namespace, its operator process, its `PhpAppServer`,
//! the load on it, the history of its ConfigMap and its timeline.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PropagationPolicy};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use pacer_crds::PhpAppServer;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::load::{Load, LoadSpec};
use crate::lock;
use crate::metrics::{Scrape, scrape};
use crate::operator::OperatorProcess;
use crate::timeline::Timeline;
use crate::world::World;

/// The app's name in every scenario (each scenario has its own namespace).
pub const APP: &str = "shop";
/// The container ports of the generated pods.
pub const HTTP_PORT: u16 = 8080;
/// Metrics port of the generated pods.
pub const METRICS_PORT: u16 = 2112;

/// Which metrics source the app's tuner uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The operator scrapes the pods.
    Direct,
    /// The operator queries Prometheus.
    Prometheus,
}

impl Source {
    /// Both, in the order scenarios run them.
    pub const BOTH: [Self; 2] = [Self::Direct, Self::Prometheus];

    /// Lower-case name for namespaces and files.
    #[must_use]
    pub fn slug(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Prometheus => "prometheus",
        }
    }
}

/// One version of the app's ConfigMap as the API server stored it.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigVersion {
    /// Seconds since the scenario started.
    pub at: f64,
    /// `metadata.resourceVersion`.
    pub resource_version: String,
    /// `http.pool.num_workers`.
    pub workers: u64,
    /// `http.pool.max_jobs`.
    pub max_jobs: u64,
}

/// One tuning round as the status reported it.
#[derive(Clone, Debug, PartialEq)]
pub struct Round {
    /// Seconds since the scenario started (when the recorder saw it).
    pub at: f64,
    /// `status.observed.busyRatio`, if the round had metrics.
    pub busy_ratio: Option<f64>,
    /// `status.current.workers`.
    pub workers: i32,
    /// The tuner's raw recommendation of this round (workers per pod, before the
    /// stabilisation window), from `status.tuningState.history`.
    pub recommended: Option<i32>,
}

/// An Event about the app.
#[derive(Clone, Debug, PartialEq)]
pub struct EventInfo {
    /// Normal or Warning.
    pub type_: String,
    /// CamelCase reason.
    pub reason: String,
    /// The note.
    pub note: String,
    /// How often it was reported (1 + series count).
    pub count: i32,
    /// Who reported it (`reportingInstance`).
    pub instance: String,
}

/// A pod as the node reported it.
#[derive(Clone, Debug, PartialEq)]
pub struct PodInfo {
    /// Name.
    pub name: String,
    /// Pod IP.
    pub ip: IpAddr,
    /// The app container's id (`pacer://<pid>`).
    pub container_id: String,
    /// Restarts of the app container.
    pub restarts: i32,
}

impl PodInfo {
    /// Its metrics endpoint.
    #[must_use]
    pub fn metrics(&self) -> SocketAddr {
        SocketAddr::new(self.ip, METRICS_PORT)
    }
}

/// One application under test.
pub struct Scenario {
    /// The shared world.
    pub world: &'static World,
    /// A client for this test's runtime.
    pub client: Client,
    /// The namespace.
    pub namespace: String,
    /// Metrics source of the app.
    pub source: Source,
    /// What happened when.
    pub timeline: Arc<Timeline>,
    slug: String,
    operator: Mutex<Option<OperatorProcess>>,
    operators: AtomicU32,
    load: Arc<Mutex<Option<Arc<Load>>>>,
    history: Arc<Mutex<Vec<ConfigVersion>>>,
    rounds: Arc<Mutex<Vec<Round>>>,
    stop: CancellationToken,
    tasks: tokio_util::task::TaskTracker,
}

impl std::fmt::Debug for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scenario")
            .field("namespace", &self.namespace)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Merges `patch` into `base` (objects recursively, everything else replaced).
fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p.clone(),
    }
}

/// Reads `num_workers` and `max_jobs` from an `rr.yaml`.
///
/// # Errors
/// When the text is not YAML or lacks the keys.
pub fn pool_settings(rr_yaml: &str) -> Result<(u64, u64)> {
    let yaml: Value = serde_yaml::from_str(rr_yaml)?;
    let get = |p: &str| {
        yaml.pointer(p)
            .and_then(Value::as_u64)
            .with_context(|| format!("{p} missing"))
    };
    Ok((get("/http/pool/num_workers")?, get("/http/pool/max_jobs")?))
}

/// The pool settings in the app's ConfigMap (`{APP}-pacer`) now: (workers, max_jobs).
///
/// # Errors
/// When it cannot be read or has no readable pool section.
pub async fn configured_pool(client: Client, namespace: &str) -> Result<(u64, u64)> {
    let cm = Api::<ConfigMap>::namespaced(client, namespace)
        .get(&format!("{APP}-pacer"))
        .await?;
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get("rr.yaml"))
        .context("no rr.yaml")?;
    pool_settings(text)
}

/// Follows the app's ConfigMap (`{APP}-pacer`) in a task of `tasks` until `stop`, and
/// hands `on` every stored version whose `rr.yaml` has a readable pool section, stamped
/// with the scenario's clock. Shared by the stand-in and the real-node scenarios, which
/// keep different histories of it.
pub fn follow_config_map(
    client: Client,
    namespace: &str,
    timeline: Arc<Timeline>,
    stop: CancellationToken,
    tasks: &tokio_util::task::TaskTracker,
    mut on: impl FnMut(ConfigVersion) + Send + 'static,
) {
    let api: Api<ConfigMap> = Api::namespaced(client, namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={APP}-pacer"));
    tasks.spawn(async move {
        let mut stream = watcher(api, config)
            .default_backoff()
            .applied_objects()
            .boxed();
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => return,
                next = stream.next() => next,
            };
            let Some(Ok(cm)) = next else {
                if next.is_none() {
                    return;
                }
                continue;
            };
            let Some(text) = cm.data.as_ref().and_then(|d| d.get("rr.yaml")) else {
                continue;
            };
            let Ok((workers, max_jobs)) = pool_settings(text) else {
                continue;
            };
            on(ConfigVersion {
                at: timeline.elapsed().as_secs_f64(),
                resource_version: cm.resource_version().unwrap_or_default(),
                workers,
                max_jobs,
            });
        }
    });
}

impl Scenario {
    /// The `PhpAppServer` every scenario starts from, with `patch` merged into its spec:
    /// the example app (`examples/hello`, seen as `/app` in the "image"), a 5 s tuning
    /// interval and a 30 s stabilisation window so that a scenario takes minutes.
    #[must_use]
    pub fn object(world: &World, namespace: &str, source: Source, patch: &Value) -> Value {
        let metrics = match source {
            Source::Direct => json!({"source": "Direct"}),
            Source::Prometheus => {
                json!({"source": "Prometheus", "prometheusUrl": world.prometheus_url()})
            }
        };
        let mut spec = json!({
            "image": "pacer-example-app:e2e",
            "command": ["php", "worker.php"],
            "workingDir": "/app",
            "replicas": {"min": 1, "max": 1},
            "pool": {
                "workers": {"min": 2, "max": 8, "initial": 2},
                "maxJobs": 0,
                "maxWorkerMemory": "128Mi",
                "allocateTimeout": "60s",
                "destroyTimeout": "5s",
                "execTimeout": "30s",
            },
            "resources": {"memory": {"limit": "512Mi", "min": "128Mi", "max": "1Gi"}},
            "tuning": {
                "mode": "Auto",
                "interval": "5s",
                "stabilizationWindow": "30s",
                "targetUtilization": 0.7,
                "metrics": metrics,
            },
            "shutdown": {"delay": "1s", "gracePeriod": "10s"},
        });
        merge(&mut spec, patch);
        json!({
            "apiVersion": "pacer.dev/v1alpha2",
            "kind": "PhpAppServer",
            "metadata": {"name": APP, "namespace": namespace},
            "spec": spec,
        })
    }

    /// A namespace `<slug>-<source>-…`, an operator watching it, the app applied with
    /// `patch`, and its pods ready.
    ///
    /// # Errors
    /// When any step fails.
    pub async fn start(
        slug: &str,
        title: &str,
        source: Source,
        patch: Value,
        replicas: usize,
    ) -> Result<Self> {
        let world = World::shared().await?;
        let client = world.client()?;
        let namespace = world
            .control_plane()
            .new_namespace(&format!("{slug}-{}", source.slug()))
            .await?;
        let scenario = Self {
            world,
            client,
            namespace,
            source,
            timeline: Arc::new(Timeline::new(&format!(
                "{title} — {} source",
                source.slug()
            ))),
            slug: format!("{slug}-{}", source.slug()),
            operator: Mutex::new(None),
            operators: AtomicU32::new(0),
            load: Arc::new(Mutex::new(None)),
            history: Arc::new(Mutex::new(Vec::new())),
            rounds: Arc::new(Mutex::new(Vec::new())),
            stop: CancellationToken::new(),
            tasks: tokio_util::task::TaskTracker::new(),
        };
        scenario.start_operator()?;
        scenario.watch_config_map();
        let object = Self::object(world, &scenario.namespace, source, &patch);
        scenario.apply(&object).await?;
        scenario.record();
        scenario
            .wait_ready(replicas, Duration::from_secs(120))
            .await?;
        Ok(scenario)
    }

    /// Applies `object` (server-side apply, as `kubectl apply --server-side` would).
    ///
    /// # Errors
    /// When the API server refuses it.
    pub async fn apply(&self, object: &Value) -> Result<PhpAppServer> {
        let api: Api<PhpAppServer> = Api::namespaced(self.client.clone(), &self.namespace);
        Ok(api
            .patch(
                APP,
                &PatchParams::apply("e2e-user").force(),
                &Patch::Apply(object),
            )
            .await?)
    }

    /// Starts an operator process (a new identity each time).
    ///
    /// # Errors
    /// When it cannot be spawned.
    pub fn start_operator(&self) -> Result<()> {
        let n = self.operators.fetch_add(1, Ordering::SeqCst) + 1;
        let identity = format!("operator-{n}");
        let log = self
            .world
            .run_dir()
            .join(format!("{}-{identity}.log", self.slug));
        let process = OperatorProcess::start(
            &self.world.binaries().operator,
            self.world.control_plane().kubeconfig_path(),
            &self.namespace,
            &identity,
            &log,
            self.world.watchdog(),
        )?;
        *lock(&self.operator) = Some(process);
        Ok(())
    }

    /// SIGKILLs the operator; returns its identity.
    pub async fn kill_operator(&self) -> Option<String> {
        let process = lock(&self.operator).take();
        let mut process = process?;
        let identity = process.identity().to_owned();
        let _ = tokio::task::spawn_blocking(move || process.kill()).await;
        Some(identity)
    }

    /// The PhpAppServer as stored.
    ///
    /// # Errors
    /// When reading fails.
    pub async fn app(&self) -> Result<PhpAppServer> {
        Ok(
            Api::<PhpAppServer>::namespaced(self.client.clone(), &self.namespace)
                .get(APP)
                .await?,
        )
    }

    /// The app's pods that are Ready (sorted by name).
    ///
    /// # Errors
    /// When listing fails.
    pub async fn ready_pods(&self) -> Result<Vec<PodInfo>> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let list = pods
            .list(&ListParams::default().labels(&format!("pacer.dev/app={APP}")))
            .await?;
        let mut out = Vec::new();
        for pod in list.items {
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let Some(status) = pod.status.as_ref() else {
                continue;
            };
            let ready = status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            let (Some(ip), true) = (status.pod_ip.as_ref(), ready) else {
                continue;
            };
            let app = status
                .container_statuses
                .iter()
                .flatten()
                .find(|c| c.name == "app");
            out.push(PodInfo {
                name: pod.name_any(),
                ip: ip.parse()?,
                container_id: app.and_then(|c| c.container_id.clone()).unwrap_or_default(),
                restarts: app.map_or(0, |c| c.restart_count),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Waits until `n` pods are Ready and the status says so.
    ///
    /// # Errors
    /// On time-out.
    pub async fn wait_ready(&self, n: usize, timeout: Duration) -> Result<Vec<PodInfo>> {
        crate::wait_for(
            timeout,
            Duration::from_millis(250),
            &format!("{n} ready pods"),
            || async {
                let pods = self.ready_pods().await?;
                let app = self.app().await?;
                let status_ready = app
                    .status
                    .as_ref()
                    .and_then(|s| s.ready_replicas)
                    .unwrap_or(0);
                Ok(
                    (pods.len() == n && usize::try_from(status_ready).unwrap_or(0) == n)
                        .then_some(pods),
                )
            },
        )
        .await
    }

    /// Scrapes every ready pod's pacer.
    ///
    /// # Errors
    /// When a scrape fails.
    pub async fn scrape_pods(&self) -> Result<Vec<(PodInfo, Scrape)>> {
        let mut out = Vec::new();
        for pod in self.ready_pods().await? {
            let s = scrape(pod.metrics()).await?;
            out.push((pod, s));
        }
        Ok(out)
    }

    /// Waits until every ready pod's live pool has `workers` workers (target and alive).
    ///
    /// # Errors
    /// On time-out.
    pub async fn wait_pools(
        &self,
        workers: u64,
        timeout: Duration,
    ) -> Result<Vec<(PodInfo, Scrape)>> {
        crate::wait_for(
            timeout,
            Duration::from_millis(250),
            &format!("pools of {workers} workers"),
            || async {
                let pods = self.scrape_pods().await?;
                let w = workers as f64;
                let done = !pods.is_empty()
                    && pods
                        .iter()
                        .all(|(_, s)| s.target_workers() == w && s.live_workers() >= w);
                Ok(done.then_some(pods))
            },
        )
        .await
    }

    /// Waits until every ready pod's live pool matches the ConfigMap's `num_workers` (read
    /// again on every poll, so a further change while waiting is followed).
    ///
    /// # Errors
    /// On time-out.
    pub async fn wait_pools_match_config(&self, timeout: Duration) -> Result<u64> {
        crate::wait_for(
            timeout,
            Duration::from_millis(250),
            "pools matching the ConfigMap",
            || async {
                let (workers, _) = self.config().await?;
                let w = workers as f64;
                let pods = self.scrape_pods().await?;
                let done = !pods.is_empty()
                    && pods
                        .iter()
                        .all(|(_, s)| s.target_workers() == w && s.live_workers() >= w);
                Ok(done.then_some(workers))
            },
        )
        .await
    }

    /// The settings in the app's ConfigMap now.
    ///
    /// # Errors
    /// When it cannot be read.
    pub async fn config(&self) -> Result<(u64, u64)> {
        configured_pool(self.client.clone(), &self.namespace).await
    }

    /// Every version of the ConfigMap seen since the start.
    #[must_use]
    pub fn config_history(&self) -> Vec<ConfigVersion> {
        lock(&self.history).clone()
    }

    /// The tuning rounds seen so far.
    #[must_use]
    pub fn rounds(&self) -> Vec<Round> {
        lock(&self.rounds).clone()
    }

    /// The Events about the app, oldest first.
    ///
    /// # Errors
    /// When listing fails.
    pub async fn events(&self) -> Result<Vec<EventInfo>> {
        let list = Api::<Event>::namespaced(self.client.clone(), &self.namespace)
            .list(&ListParams::default())
            .await?;
        let mut events: Vec<(String, EventInfo)> = list
            .items
            .into_iter()
            .filter(is_about_app)
            .map(|e| {
                let at = e
                    .event_time
                    .as_ref()
                    .map(|t| t.0.to_string())
                    .unwrap_or_default();
                (
                    at,
                    EventInfo {
                        type_: e.type_.clone().unwrap_or_default(),
                        reason: e.reason.clone().unwrap_or_default(),
                        note: e.note.clone().unwrap_or_default(),
                        count: e.series.as_ref().map_or(1, |s| s.count.max(1)),
                        instance: e.reporting_instance.clone().unwrap_or_default(),
                    },
                )
            })
            .collect();
        events.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(events.into_iter().map(|(_, e)| e).collect())
    }

    /// Waits (up to 15 s) for an Event with `reason` about the app and returns the first.
    ///
    /// # Errors
    /// On time-out.
    pub async fn wait_event(&self, reason: &str) -> Result<EventInfo> {
        crate::wait_for(
            Duration::from_secs(15),
            Duration::from_millis(200),
            &format!("a {reason} Event"),
            || async {
                Ok(self
                    .events()
                    .await?
                    .into_iter()
                    .find(|e| e.reason == reason))
            },
        )
        .await
    }

    /// Starts load at the app's ready pods (bounded by `deadline`).
    #[must_use]
    pub fn start_load(&self, spec: LoadSpec, deadline: Duration) -> Arc<Load> {
        let load = Arc::new(Load::start(
            self.client.clone(),
            &self.namespace,
            APP,
            HTTP_PORT,
            spec,
            deadline,
        ));
        *lock(&self.load) = Some(load.clone());
        load
    }

    /// A note in the timeline (load changes, operator kills).
    pub fn note(&self, text: &str) {
        let load = lock(&self.load)
            .as_ref()
            .map_or_else(|| "idle".to_owned(), |l| l.spec().describe());
        self.timeline.push(&load, "", "", "", &format!("** {text}"));
    }

    fn watch_config_map(&self) {
        let history = self.history.clone();
        follow_config_map(
            self.client.clone(),
            &self.namespace,
            self.timeline.clone(),
            self.stop.clone(),
            &self.tasks,
            move |version| {
                let mut h = lock(&history);
                if h.last()
                    .is_none_or(|last| last.resource_version != version.resource_version)
                {
                    h.push(version);
                }
            },
        );
    }

    /// The recorder: a row per tuning round, Event or load change.
    fn record(&self) {
        let client = self.client.clone();
        let namespace = self.namespace.clone();
        let stop = self.stop.clone();
        let timeline = self.timeline.clone();
        let load = self.load.clone();
        let rounds = self.rounds.clone();
        self.tasks.spawn(async move {
            let apps: Api<PhpAppServer> = Api::namespaced(client.clone(), &namespace);
            let events: Api<Event> = Api::namespaced(client.clone(), &namespace);
            let pods: Api<Pod> = Api::namespaced(client, &namespace);
            let mut last_tune = None;
            let mut seen: HashSet<(String, i32)> = HashSet::new();
            let mut last_ok = (Instant::now(), 0u64);
            let mut last_load = String::new();
            // What the last printed row showed: a quiet round ("hold", nothing else new) is
            // left out, so that the timeline stays short.
            let mut shown: Option<(String, String, i32)> = None;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(1000)) => {}
                }
                // Every call is bounded: one stuck request must not stop the timeline.
                let Ok(Ok(app)) = bounded(apps.get(APP)).await else {
                    continue;
                };
                let status = app.status.clone().unwrap_or_default();
                let mut decisions = Vec::new();
                if let Ok(Ok(list)) = bounded(events.list(&ListParams::default())).await {
                    let mut items: Vec<&Event> =
                        list.items.iter().filter(|e| is_about_app(e)).collect();
                    items.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
                    for e in items {
                        let count = e.series.as_ref().map_or(0, |s| s.count);
                        if seen.insert((e.metadata.uid.clone().unwrap_or_default(), count)) {
                            let note = e.note.clone().unwrap_or_default();
                            let short: String = note
                                .split(':')
                                .next()
                                .unwrap_or_default()
                                .chars()
                                .take(60)
                                .collect();
                            decisions
                                .push(format!("{}: {short}", e.reason.clone().unwrap_or_default()));
                        }
                    }
                }
                let tuned = status.last_tune_time.as_ref().map(|t| t.0);
                let new_round = tuned.is_some() && tuned != last_tune;
                last_tune = tuned;
                if new_round {
                    lock(&rounds).push(Round {
                        at: timeline.elapsed().as_secs_f64(),
                        busy_ratio: status.observed.as_ref().map(|o| o.busy_ratio),
                        workers: status.current.as_ref().map_or(0, |c| c.workers),
                        recommended: status
                            .tuning_state
                            .as_ref()
                            .and_then(|t| t.history.last())
                            .filter(|h| Some(&h.time) == status.last_tune_time.as_ref())
                            .map(|h| h.workers),
                    });
                }
                let (load_text, rate) = {
                    let guard = lock(&load);
                    match guard.as_ref() {
                        Some(l) => {
                            let ok = l.stats().ok();
                            let secs = last_ok.0.elapsed().as_secs_f64().max(0.001);
                            let rate = (ok.saturating_sub(last_ok.1)) as f64 / secs;
                            last_ok = (Instant::now(), ok);
                            (l.spec().describe(), Some(rate))
                        }
                        None => ("idle".to_owned(), None),
                    }
                };
                let load_changed = load_text != last_load;
                last_load.clone_from(&load_text);
                if !(new_round || !decisions.is_empty() || load_changed) {
                    continue;
                }
                if decisions.is_empty() {
                    let mode = app.spec.tuning.mode;
                    decisions.push(match (mode, status.recommendation.as_ref()) {
                        (pacer_crds::TuningMode::Recommend, Some(r)) => {
                            format!("recommend {} workers, max_jobs {}", r.workers, r.max_jobs)
                        }
                        _ => {
                            let tuned = status
                                .conditions
                                .iter()
                                .find(|c| c.type_ == "Tuned")
                                .map(|c| c.reason.clone())
                                .unwrap_or_default();
                            if tuned == "Tuned" {
                                "hold".to_owned()
                            } else {
                                tuned
                            }
                        }
                    });
                }
                let mut pools = Vec::new();
                let selector = format!("pacer.dev/app={APP}");
                if let Ok(Ok(list)) =
                    bounded(pods.list(&ListParams::default().labels(&selector))).await
                {
                    let mut ips: Vec<(String, IpAddr)> = list
                        .items
                        .iter()
                        .filter_map(|p| {
                            Some((
                                p.name_any(),
                                p.status.as_ref()?.pod_ip.as_ref()?.parse().ok()?,
                            ))
                        })
                        .collect();
                    ips.sort();
                    for (_, ip) in ips {
                        match scrape(SocketAddr::new(ip, METRICS_PORT)).await {
                            Ok(s) => pools.push(format!("{}", s.target_workers())),
                            Err(_) => pools.push("-".into()),
                        }
                    }
                }
                let current = status.current.as_ref();
                let workers = current.map_or_else(String::new, |c| {
                    if c.max_jobs > 0 {
                        format!("{} (max_jobs {})", c.workers, c.max_jobs)
                    } else {
                        c.workers.to_string()
                    }
                });
                let busy = status
                    .observed
                    .as_ref()
                    .map_or_else(String::new, |o| format!("{}%", o.busy_percent));
                let busy_percent = status.observed.as_ref().map_or(-100, |o| o.busy_percent);
                let state = (workers.clone(), pools.join(","), busy_percent);
                let quiet = !load_changed
                    && decisions
                        .iter()
                        .all(|d| d == "hold" || d == "CollectingMetrics")
                    && shown.as_ref().is_some_and(|(w, p, b)| {
                        *w == state.0 && *p == state.1 && (b - state.2).abs() < 10
                    });
                if quiet {
                    continue;
                }
                shown = Some(state);
                let load_col = match rate {
                    Some(r) if load_text != "idle" => format!("{load_text} ({r:.0}/s)"),
                    _ => load_text,
                };
                timeline.push(
                    &load_col,
                    &workers,
                    &pools.join(","),
                    &busy,
                    &decisions.join("; "),
                );
            }
        });
    }

    /// Ends the scenario: stops the load and the recorder, saves and prints the timeline,
    /// stops the operator and deletes the app (the garbage collector removes its
    /// Deployment, ReplicaSet and pods; the node stops their processes).
    ///
    /// # Errors
    /// When the timeline cannot be saved.
    pub async fn finish(&self) -> Result<()> {
        let load = lock(&self.load).take();
        if let Some(load) = load {
            load.stop().await;
        }
        self.stop.cancel();
        self.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.tasks.wait()).await;
        let path = self.timeline.save(&self.slug)?;
        println!("{}(kept in {})\n", self.timeline.render(), path.display());
        let operator = lock(&self.operator).take();
        if let Some(mut operator) = operator {
            // SIGTERM and a bounded wait: off the runtime's threads, which the other
            // source's scenario is using.
            let _ = tokio::task::spawn_blocking(move || operator.stop()).await;
        }
        let api: Api<PhpAppServer> = Api::namespaced(self.client.clone(), &self.namespace);
        let _ = api
            .delete(
                APP,
                &DeleteParams {
                    propagation_policy: Some(PropagationPolicy::Background),
                    ..DeleteParams::default()
                },
            )
            .await;
        Ok(())
    }

    /// Reads the operator's and the pods' logs for a failure report.
    #[must_use]
    pub fn logs_hint(&self) -> String {
        format!(
            "logs: {}/{}-operator-*.log, {}/pods/{}/",
            self.world.run_dir().display(),
            self.slug,
            self.world.run_dir().display(),
            self.namespace
        )
    }

    /// Waits until the status's `current.workers` satisfies `check`.
    ///
    /// # Errors
    /// On time-out.
    pub async fn wait_status<F>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: F,
    ) -> Result<PhpAppServer>
    where
        F: FnMut(&PhpAppServer) -> bool,
    {
        let deadline = Instant::now() + timeout;
        loop {
            let app = self.app().await?;
            if check(&app) {
                return Ok(app);
            }
            if Instant::now() >= deadline {
                bail!(
                    "timed out after {timeout:?} waiting for {what}; status: {}\n{}",
                    serde_json::to_string(&app.status).unwrap_or_default(),
                    self.logs_hint()
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// `f`, or an error after 10 s.
async fn bounded<T>(
    f: impl std::future::Future<Output = T>,
) -> Result<T, tokio::time::error::Elapsed> {
    tokio::time::timeout(Duration::from_secs(10), f).await
}

/// Whether an Event is about the `PhpAppServer` (not its Deployment of the same name).
fn is_about_app(event: &Event) -> bool {
    event.regarding.as_ref().is_some_and(|r| {
        r.name.as_deref() == Some(APP) && r.kind.as_deref() == Some("PhpAppServer")
    })
}

/// Runs `f` for both sources at once and fails if either fails (both are awaited, so
/// both timelines are printed).
///
/// # Errors
/// The first failure, with the other's too when both fail.
pub async fn for_both_sources<F, Fut>(f: F) -> Result<()>
where
    F: Fn(Source) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let (a, b) = tokio::join!(f(Source::Direct), f(Source::Prometheus));
    match (a, b) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(e), Ok(())) => Err(e.context("Direct source")),
        (Ok(()), Err(e)) => Err(e.context("Prometheus source")),
        (Err(a), Err(b)) => bail!("Direct source: {a:#}\n\nPrometheus source: {b:#}"),
    }
}

/// Settings of the pool as the status reports them: (workers, max_jobs).
#[must_use]
pub fn current(app: &PhpAppServer) -> Option<(i32, i64)> {
    let c = app.status.as_ref()?.current.as_ref()?;
    Some((c.workers, c.max_jobs))
}

/// A condition of the app: (status, reason, message).
#[must_use]
pub fn condition(app: &PhpAppServer, type_: &str) -> Option<(String, String, String)> {
    app.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Counts by key, for duplicate checks.
#[must_use]
pub fn counts<K: Ord + Clone>(items: impl IntoIterator<Item = K>) -> BTreeMap<K, usize> {
    let mut out = BTreeMap::new();
    for k in items {
        *out.entry(k).or_insert(0) += 1;
    }
    out
}
