//! One application under test on the real node: its namespace, its `PhpAppServer`
//! (the example app's image), the load on it, the history of its ConfigMap and of its
//! pods' live pools, and its timeline. The operator is the one `helm install` put in
//! `pacer-system`, shared by every scenario.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use pacer_crds::PhpAppServer;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::load::{Load, LoadSpec};
use crate::lock;
use crate::metrics::{Scrape, scrape_via};
use crate::real::RealWorld;
use crate::scenario::{ConfigVersion, HTTP_PORT, METRICS_PORT, configured_pool, follow_config_map};
use crate::timeline::Timeline;

/// The app's name in every scenario (each has its own namespace): the stand-in's.
pub use crate::scenario::APP;

/// A pod's live pool changing size, as its pacer reported it.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolChange {
    /// Seconds since the scenario started (when the poller saw it).
    pub at: f64,
    /// The pod.
    pub pod: String,
    /// `pacer_pool_target_workers`.
    pub workers: u64,
}

/// A Ready pod.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadyPod {
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// Pod IP.
    pub ip: IpAddr,
    /// The app container's id (`containerd://…`).
    pub container_id: String,
    /// Restarts of the app container.
    pub restarts: i32,
}

/// One application under test on the real node.
pub struct RealApp {
    /// The world.
    pub world: &'static RealWorld,
    /// A client for this test's runtime.
    pub client: Client,
    /// The namespace.
    pub namespace: String,
    /// What happened when.
    pub timeline: Arc<Timeline>,
    slug: String,
    load: Mutex<Option<Arc<Load>>>,
    history: Arc<Mutex<Vec<ConfigVersion>>>,
    pools: Arc<Mutex<Vec<PoolChange>>>,
    stop: CancellationToken,
    tasks: tokio_util::task::TaskTracker,
}

impl std::fmt::Debug for RealApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealApp")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl RealApp {
    /// The `PhpAppServer` every scenario starts from, with `patch` merged into its spec:
    /// the example app's image, one replica, a small CPU request (the node has 2 CPUs for
    /// every scenario at once), a 5 s tuning interval and a 30 s stabilisation window.
    #[must_use]
    pub fn object(world: &RealWorld, namespace: &str, patch: &Value) -> Value {
        let mut spec = json!({
            "image": world.node().images().app,
            "command": ["php", "worker.php"],
            "workingDir": "/app",
            "runAsUser": 1000,
            "replicas": {"min": 1, "max": 1},
            "pool": {
                "workers": {"min": 2, "max": 8, "initial": 2},
                "maxJobs": 0,
                "maxWorkerMemory": "128Mi",
                "allocateTimeout": "60s",
                "execTimeout": "30s",
            },
            "resources": {
                "cpu": {"request": "50m"},
                "memory": {"limit": "512Mi", "min": "128Mi", "max": "1Gi"},
            },
            "tuning": {
                "mode": "Auto",
                "interval": "5s",
                "stabilizationWindow": "30s",
                "targetUtilization": 0.7,
                "metrics": {"source": "Direct"},
            },
            "shutdown": {"delay": "2s", "gracePeriod": "20s"},
        });
        merge(&mut spec, patch);
        json!({
            "apiVersion": "pacer.dev/v1alpha2",
            "kind": "PhpAppServer",
            "metadata": {"name": APP, "namespace": namespace},
            "spec": spec,
        })
    }

    /// A namespace `slug`, the app applied with `patch`, and `replicas` pods Ready.
    ///
    /// # Errors
    /// When any step fails.
    pub async fn start(slug: &str, title: &str, patch: Value, replicas: usize) -> Result<Self> {
        let world = RealWorld::shared().await?;
        let client = world.client()?;
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let namespace = serde_json::from_value(json!({"metadata": {"name": slug}}))?;
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .with_context(|| format!("creating namespace {slug}"))?;
        let app = Self {
            world,
            client,
            namespace: slug.to_owned(),
            timeline: Arc::new(Timeline::new(&format!("{title} (real node)"))),
            slug: format!("node-{slug}"),
            load: Mutex::new(None),
            history: Arc::new(Mutex::new(Vec::new())),
            pools: Arc::new(Mutex::new(Vec::new())),
            stop: CancellationToken::new(),
            tasks: tokio_util::task::TaskTracker::new(),
        };
        app.watch_config_map();
        app.watch_pools();
        app.apply(&Self::object(world, slug, &patch)).await?;
        app.wait_ready(replicas, Duration::from_secs(240)).await?;
        app.note(&format!("{replicas} pod(s) Ready"));
        Ok(app)
    }

    /// Applies `object` (server-side apply, as `kubectl apply --server-side`).
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

    /// The app's pods (all of them).
    ///
    /// # Errors
    /// When listing fails.
    pub async fn pods(&self) -> Result<Vec<Pod>> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        Ok(pods
            .list(&ListParams::default().labels(&format!("pacer.dev/app={APP}")))
            .await?
            .items)
    }

    /// The app's Ready pods, sorted by name.
    ///
    /// # Errors
    /// When listing fails.
    pub async fn ready_pods(&self) -> Result<Vec<ReadyPod>> {
        let mut out = Vec::new();
        for pod in self.pods().await? {
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
            out.push(ReadyPod {
                name: pod.name_any(),
                uid: pod.uid().unwrap_or_default(),
                ip: ip.parse()?,
                container_id: app.and_then(|c| c.container_id.clone()).unwrap_or_default(),
                restarts: app.map_or(0, |c| c.restart_count),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Waits until exactly `n` pods are Ready.
    ///
    /// # Errors
    /// On time-out.
    pub async fn wait_ready(&self, n: usize, timeout: Duration) -> Result<Vec<ReadyPod>> {
        crate::wait_for(
            timeout,
            Duration::from_millis(250),
            &format!("{n} Ready pods in {}", self.namespace),
            || async {
                self.world.node().check()?;
                let pods = self.ready_pods().await?;
                Ok((pods.len() == n).then_some(pods))
            },
        )
        .await
    }

    /// Scrapes one pod's pacer.
    ///
    /// # Errors
    /// When the scrape fails.
    pub async fn scrape(&self, pod: &ReadyPod) -> Result<Scrape> {
        scrape_via(&self.world.dial(), SocketAddr::new(pod.ip, METRICS_PORT)).await
    }

    /// The settings in the app's ConfigMap now: (workers, max_jobs).
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

    /// Every change of a pod's live pool seen since the start.
    #[must_use]
    pub fn pool_history(&self) -> Vec<PoolChange> {
        lock(&self.pools).clone()
    }

    /// Starts load at the app's Ready pods (bounded by `deadline`), replacing any (its
    /// phase ends with [`RealApp::end_phase`]).
    pub fn start_load(&self, spec: LoadSpec, deadline: Duration) -> Arc<Load> {
        let load = Arc::new(Load::start_via(
            self.world.dial(),
            self.client.clone(),
            &self.namespace,
            APP,
            HTTP_PORT,
            spec.clone(),
            deadline,
        ));
        *lock(&self.load) = Some(load.clone());
        self.timeline
            .push(&spec.describe(), "", "", "", "load phase starts");
        load
    }

    /// Ends the running load phase: stops it, notes its counts, and returns them
    /// (answered, failed).
    pub async fn end_phase(&self, phase: &str) -> (u64, u64) {
        let load = lock(&self.load).take();
        let Some(load) = load else {
            return (0, 0);
        };
        load.stop().await;
        let stats = load.stats();
        let (ok, failed) = (stats.ok(), stats.failed());
        let mut text = format!("{phase}: {ok} requests answered 2xx, {failed} failed");
        if failed > 0 {
            text += &format!(" (e.g. {:?})", stats.errors().first());
        }
        self.note(&text);
        (ok, failed)
    }

    /// A note in the timeline.
    pub fn note(&self, text: &str) {
        self.timeline.push("", "", "", "", text);
    }

    /// Keeps the ConfigMap's history of pool settings, a version per change, each change
    /// after the first noted in the timeline.
    fn watch_config_map(&self) {
        let history = self.history.clone();
        let timeline = self.timeline.clone();
        follow_config_map(
            self.client.clone(),
            &self.namespace,
            self.timeline.clone(),
            self.stop.clone(),
            &self.tasks,
            move |version| {
                let mut h = lock(&history);
                let (workers, max_jobs) = (version.workers, version.max_jobs);
                let changed = h
                    .last()
                    .is_none_or(|last| (last.workers, last.max_jobs) != (workers, max_jobs));
                if changed {
                    if !h.is_empty() {
                        timeline.push(
                            "",
                            &workers.to_string(),
                            "",
                            "",
                            &format!("ConfigMap: workers {workers}, max_jobs {max_jobs}"),
                        );
                    }
                    h.push(version);
                }
            },
        );
    }

    /// Polls every Ready pod's pacer every 250 ms and records each change of its pool's
    /// target size (the moment the kubelet's delivery of the ConfigMap took effect).
    fn watch_pools(&self) {
        let stop = self.stop.clone();
        let pools = self.pools.clone();
        let timeline = self.timeline.clone();
        let client = self.client.clone();
        let namespace = self.namespace.clone();
        let dial = self.world.dial();
        self.tasks.spawn(async move {
            let pods: Api<Pod> = Api::namespaced(client, &namespace);
            let mut last: std::collections::BTreeMap<String, u64> = Default::default();
            let mut ips: Vec<(String, IpAddr)> = Vec::new();
            let mut listed = tokio::time::Instant::now() - Duration::from_secs(10);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
                if listed.elapsed() >= Duration::from_secs(1) {
                    listed = tokio::time::Instant::now();
                    let selector = format!("pacer.dev/app={APP}");
                    if let Ok(Ok(list)) = tokio::time::timeout(
                        Duration::from_secs(5),
                        pods.list(&ListParams::default().labels(&selector)),
                    )
                    .await
                    {
                        ips = list
                            .items
                            .iter()
                            .filter_map(|p| {
                                Some((
                                    p.name_any(),
                                    p.status.as_ref()?.pod_ip.as_ref()?.parse().ok()?,
                                ))
                            })
                            .collect();
                    }
                }
                for (name, ip) in &ips {
                    let Ok(s) = scrape_via(&dial, SocketAddr::new(*ip, METRICS_PORT)).await else {
                        continue;
                    };
                    let target = s.target_workers();
                    if target <= 0.0 {
                        continue;
                    }
                    let workers = target as u64;
                    if last.get(name) != Some(&workers) {
                        let at = timeline.elapsed().as_secs_f64();
                        if last.contains_key(name) {
                            timeline.push(
                                "",
                                "",
                                &workers.to_string(),
                                "",
                                &format!("pod {name}: pool now {workers} workers"),
                            );
                        }
                        last.insert(name.clone(), workers);
                        lock(&pools).push(PoolChange {
                            at,
                            pod: name.clone(),
                            workers,
                        });
                    }
                }
            }
        });
    }

    /// Waits until `check` holds for the stored PhpAppServer.
    ///
    /// # Errors
    /// On time-out (with the status).
    pub async fn wait_status<F>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: F,
    ) -> Result<PhpAppServer>
    where
        F: FnMut(&PhpAppServer) -> bool,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.world.node().check()?;
            let app = self.app().await?;
            if check(&app) {
                return Ok(app);
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "timed out after {timeout:?} waiting for {what}; status: {}",
                    serde_json::to_string(&app.status).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Ends the scenario: stops the load and the watchers, saves and prints the timeline,
    /// deletes the namespace (the namespace controller removes the app and its pods).
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
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let _ = namespaces
            .delete(&self.namespace, &DeleteParams::default())
            .await;
        Ok(())
    }
}

/// Fails unless a phase answered something and failed nothing.
///
/// # Errors
/// When it failed a request or answered none.
pub fn ensure_clean(phase: &str, (ok, failed): (u64, u64)) -> Result<()> {
    ensure!(
        failed == 0,
        "{phase}: {failed} of {} requests failed",
        ok + failed
    );
    ensure!(ok > 0, "{phase}: no request answered");
    Ok(())
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
