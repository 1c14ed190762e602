//! The modelled cluster, one second at a time: nodes, the Deployment's pods, the kubelet
//! (ConfigMap delivery, in-place resizes, restarts), the Service's endpoints, the database,
//! and in each pod pacer's worker pool as a queue.
//!
//! What the real operator touches is modelled as the API shows it: [`Cluster::k8s_pods`]
//! builds real `Pod` objects for `observe::pod_targets`, [`Cluster::scrape`] returns
//! what pacer's `/metrics` would say (as the operator's parsed [`PacerMetrics`]), and
//! [`Cluster::apply`] takes the settings a reconcile writes (ConfigMap, replica count,
//! memory limit) and delivers them the way a kubelet does — late, per pod.
//!
//! Timings (seconds): a scheduled pod's container is up after 4–10, its workers boot in
//! `boot_seconds` each, four at a time, and the readiness probe (every 10) notices; a
//! ConfigMap change reaches a pod at its next kubelet sync (every 60, at a random phase
//! per pod); a resize is applied the next second when the node has room for it (and, for a
//! decrease, when the container fits under the new limit), otherwise it waits (deferred);
//! a stopped node's pods keep their endpoints for 40 and are evicted after 340; a
//! container killed by the OOM killer restarts after 10 × 2ⁿ (at most 300).
//!
//! The scraped pacer counts each worker boot (a pod's first workers, a resize's, a
//! recycled or OOM-killed worker's replacement) into its boot histogram when the worker
//! becomes ready: `boot_seconds` to the sum, 1 to the count. It sums job time by worker
//! age (`pacer_worker_age_*`) in pacer's bands: each worker's jobs of the second, split at
//! the band bounds, each part at the job time of its middle age (the app's cold CPU,
//! stretched like the pod's by a CPU limit).

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    Container as K8sContainer, ContainerState, ContainerStateTerminated, ContainerStatus, Pod,
    PodCondition, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use pacer_operator::metrics_source::prom_text::PacerMetrics;
/// The PHP container's name (the short form's default, `spec.container`).
const APP_CONTAINER: &str = "app";

use crate::app::AppProfile;
use crate::queue::{self, Tail};
use crate::rng::Rng;
use crate::trace::{OomMode, Trace};

/// `pool.allocateTimeout`: a request waits at most this long for a worker, then gets 503.
pub const ALLOCATE_TIMEOUT: f64 = 60.0;
/// Kubelet sync period (ConfigMap volumes are refreshed at a pod's sync).
pub const KUBELET_SYNC: i64 = 60;
/// A stopped node's pods lose their endpoints after this long (node-monitor grace period).
pub const NODE_GRACE: f64 = 40.0;
/// … and are evicted this long after that (the default not-ready toleration).
pub const EVICTION_AFTER: f64 = 300.0;
/// Workers pacer boots at once.
const BOOT_PARALLEL: usize = 4;
/// pacer's worker-age bands (`sidecar/src/stats.rs`: `AGE_BAND_STARTS`,
/// `AGE_BAND_LABELS`): where each starts, in jobs done before, and its `age` label.
const AGE_BANDS: [(f64, &str); 7] = [
    (0.0, "0-9"),
    (10.0, "10-29"),
    (30.0, "30-99"),
    (100.0, "100-299"),
    (300.0, "300-999"),
    (1000.0, "1000-2999"),
    (3000.0, "3000+"),
];
/// Seconds from SIGTERM to a pod being gone (shutdown delay + drain).
const TERMINATION: f64 = 10.0;

/// The pool settings a ConfigMap version carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Workers.
    pub workers: u32,
    /// `max_jobs` (0 = unlimited).
    pub max_jobs: u64,
    /// `max_worker_memory`, bytes.
    pub max_worker_memory: u64,
}

#[derive(Clone, Debug)]
struct Slot {
    jobs: f64,
    /// pacer's per-worker max_jobs jitter, 0–1.
    jitter: f64,
    boot_until: f64,
    /// Seconds of the process's own boot, counted into pacer's boot histogram when the
    /// worker becomes ready; 0 once counted. (A slot that waits for a free spawn has its
    /// `boot_until` later than its boot: pacer times the process, not the wait.)
    boot: f64,
}

impl Slot {
    /// Counts a boot that has completed by `t` into pacer's boot histogram.
    fn count_boot(&mut self, t: f64, counters: &mut Counters) {
        if self.boot > 0.0 && self.boot_until <= t {
            counters.boot_seconds += self.boot;
            counters.boots += 1.0;
            self.boot = 0.0;
        }
    }

    /// Recycles the worker: a fresh one boots from `t`.
    fn restart(&mut self, t: f64, boot: f64) {
        self.jobs = 0.0;
        self.boot_until = t + boot;
        self.boot = boot;
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Container {
    Creating { up_at: f64 },
    Up { since: f64 },
    Down { until: f64 },
}

/// pacer's counters of one container (they start again at 0 when it restarts), and the
/// cgroup's.
#[derive(Clone, Debug, Default)]
struct Counters {
    job_seconds: f64,
    jobs: f64,
    queue_wait: f64,
    rejected: f64,
    cpu_seconds: f64,
    periods: f64,
    throttled_periods: f64,
    oom_kills: f64,
    /// `pacer_worker_boot_seconds_sum` and `_count`.
    boot_seconds: f64,
    boots: f64,
    /// Per band of [`AGE_BANDS`]: `pacer_worker_age_job_seconds_total` and
    /// `pacer_worker_age_jobs_total`.
    age: [(f64, f64); AGE_BANDS.len()],
}

impl Counters {
    /// Counts `n` jobs of a worker that had done `jobs` jobs before the first, the job at
    /// age `j` taking `seconds(j)`: split at the band bounds, each part timed at its middle.
    fn by_age(&mut self, jobs: f64, n: f64, seconds: impl Fn(f64) -> f64) {
        let end = jobs + n;
        for (i, (first, _)) in AGE_BANDS.iter().enumerate() {
            let last = AGE_BANDS.get(i + 1).map_or(f64::INFINITY, |b| b.0);
            let (a, b) = (jobs.max(*first), end.min(last));
            if b > a {
                self.age[i].0 += (b - a) * seconds((a + b) / 2.0);
                self.age[i].1 += b - a;
            }
        }
    }
}

/// One pod.
#[derive(Clone, Debug)]
pub struct SimPod {
    /// Name.
    pub name: String,
    index: u64,
    version: usize,
    node: Option<usize>,
    created: f64,
    deleting: Option<f64>,
    container: Option<Container>,
    started_once: bool,
    restarts_in_row: u32,
    ready: bool,
    ready_changed: f64,
    ready_at: Option<f64>,
    /// Delivered pool settings.
    pub config: PoolConfig,
    config_version: u64,
    pending_config: Option<(PoolConfig, u64)>,
    sync_phase: i64,
    /// Memory limit in force, bytes.
    pub memory_limit: f64,
    /// Memory limit the pod's spec asks for (a resize not applied yet), bytes.
    pub pending_resize: Option<f64>,
    slots: Vec<Slot>,
    backlog: f64,
    counters: Counters,
    busy: f64,
    queue_gauge: f64,
    /// Working set of the container's cgroup, bytes (this second).
    pub working_set: f64,
    last_oom: Option<f64>,
    cpu_use: f64,
}

impl SimPod {
    /// Live (booted) workers.
    fn live(&self, t: f64) -> usize {
        self.slots.iter().filter(|s| s.boot_until <= t).count()
    }

    fn up(&self) -> bool {
        matches!(self.container, Some(Container::Up { .. }))
    }

    /// Holds memory on a live node (counts for memory-hours).
    #[must_use]
    pub fn reserves(&self) -> bool {
        self.node.is_some()
    }
}

#[derive(Clone, Debug)]
struct Node {
    memory: f64,
    failed_at: Option<f64>,
}

/// What one second did, for the recorder.
#[derive(Clone, Debug, Default)]
pub struct Second {
    /// Requests that arrived.
    pub arrivals: f64,
    /// Requests completed.
    pub completed: f64,
    /// Requests that failed (503 after the allocate timeout, killed by an OOM kill, sent to
    /// a stopped node, or arriving with no endpoint at all).
    pub failed: f64,
    /// Their waits, per pod.
    pub tails: Vec<Tail>,
    /// OOM kills this second.
    pub oom_kills: u32,
    /// Highest working set of a pod, bytes.
    pub working_set_max: f64,
    /// Busy workers over all pods.
    pub busy: f64,
    /// Highest share of throttled CPU periods of a pod.
    pub throttled: f64,
}

/// The cluster.
#[derive(Debug)]
pub struct Cluster {
    trace: Trace,
    versions: Vec<AppProfile>,
    current_version: usize,
    nodes: Vec<Node>,
    /// Pods of the Deployment (gone ones are dropped).
    pub pods: Vec<SimPod>,
    next_index: u64,
    /// Pods the Deployment wants.
    pub replicas: u32,
    /// The ConfigMap's pool settings and version.
    pub configmap: PoolConfig,
    cm_version: u64,
    template_memory: f64,
    /// The memory limit the operator last asked for, bytes.
    pub desired_memory: f64,
    cpu_limit: Option<f64>,
    rng: Rng,
    noise: f64,
    conns: f64,
    /// The database's latency factor this second.
    pub db_factor: f64,
    deploys_done: usize,
    failures_done: usize,
    created: bool,
}

impl Cluster {
    /// A cluster running the trace's app with the initial settings.
    #[must_use]
    pub fn new(
        trace: &Trace,
        initial: PoolConfig,
        replicas: u32,
        memory: f64,
        cpu_limit: Option<f64>,
    ) -> Self {
        Self {
            nodes: trace
                .nodes
                .iter()
                .map(|&memory| Node {
                    memory,
                    failed_at: None,
                })
                .collect(),
            trace: trace.clone(),
            versions: trace.versions(),
            current_version: 0,
            pods: Vec::new(),
            next_index: 0,
            replicas,
            configmap: initial,
            cm_version: 1,
            template_memory: memory,
            desired_memory: memory,
            cpu_limit,
            rng: Rng::new(trace.seed),
            noise: 0.0,
            conns: 0.0,
            db_factor: 1.0,
            deploys_done: 0,
            failures_done: 0,
            created: false,
        }
    }

    fn node_alive(&self, node: usize, t: f64) -> bool {
        self.nodes
            .get(node)
            .is_some_and(|n| n.failed_at.is_none_or(|f| t < f))
    }

    fn allocated(&self, node: usize) -> f64 {
        self.pods
            .iter()
            .filter(|p| p.node == Some(node))
            .map(|p| p.memory_limit)
            .sum()
    }

    /// Pods a reconcile counts: not deleted.
    fn active(&self) -> impl Iterator<Item = &SimPod> {
        self.pods.iter().filter(|p| p.deleting.is_none())
    }

    /// A ConfigMap version has not reached every pod that runs.
    #[must_use]
    pub fn config_pending(&self, t: f64) -> bool {
        self.pods.iter().any(|p| {
            p.deleting.is_none()
                && p.up()
                && p.node.is_some_and(|n| self.node_alive(n, t))
                && p.config_version != self.cm_version
        })
    }

    /// A resize has not been applied to every pod that runs.
    #[must_use]
    pub fn resize_pending(&self, t: f64) -> bool {
        self.pods.iter().any(|p| {
            p.deleting.is_none()
                && p.node.is_some_and(|n| self.node_alive(n, t))
                && p.pending_resize.is_some()
        })
    }

    /// Applies what a reconcile writes: the ConfigMap, the replica count, the memory limit
    /// (in-place resize of every pod whose spec differs; the template keeps its value
    /// unless the pods roll anyway, as `resources::deployment::template_memory` decides).
    pub fn apply(&mut self, config: PoolConfig, replicas: u32, memory: f64) {
        if config != self.configmap {
            self.configmap = config;
            self.cm_version += 1;
            let version = self.cm_version;
            for pod in &mut self.pods {
                pod.pending_config = Some((config, version));
            }
        }
        self.replicas = replicas;
        self.desired_memory = memory;
        for pod in &mut self.pods {
            if pod.deleting.is_some() {
                continue;
            }
            if pod.node.is_none() {
                // Not scheduled yet: the scheduler places it with the new spec.
                pod.memory_limit = memory;
                continue;
            }
            let spec = pod.pending_resize.unwrap_or(pod.memory_limit);
            if (spec - memory).abs() > 0.5 {
                pod.pending_resize = Some(memory);
            }
        }
    }

    /// The pods as the API shows them.
    #[must_use]
    pub fn k8s_pods(&self, t: f64) -> Vec<Pod> {
        self.pods
            .iter()
            .map(|p| {
                let phase = if p.started_once { "Running" } else { "Pending" };
                Pod {
                    metadata: ObjectMeta {
                        name: Some(p.name.clone()),
                        deletion_timestamp: p.deleting.map(|d| Time(at(d))),
                        creation_timestamp: Some(Time(at(p.created))),
                        ..ObjectMeta::default()
                    },
                    // A deploy is a new image: the version the pod runs.
                    spec: Some(PodSpec {
                        containers: vec![K8sContainer {
                            name: APP_CONTAINER.into(),
                            image: Some(format!("shop:v{}", p.version + 1)),
                            ..K8sContainer::default()
                        }],
                        ..PodSpec::default()
                    }),
                    status: Some(PodStatus {
                        phase: Some(phase.into()),
                        pod_ip: p.node.map(|n| format!("10.0.{n}.{}", p.index % 250)),
                        conditions: Some(
                            std::iter::once(PodCondition {
                                type_: "Ready".into(),
                                status: if p.ready { "True" } else { "False" }.into(),
                                last_transition_time: Some(Time(at(p.ready_changed.min(t)))),
                                ..PodCondition::default()
                            })
                            .chain(p.pending_resize.map(|_| PodCondition {
                                // 1.33+: a resize the node has no room for yet.
                                type_: "PodResizePending".into(),
                                status: "True".into(),
                                reason: Some("Deferred".into()),
                                ..PodCondition::default()
                            }))
                            .collect(),
                        ),
                        container_statuses: Some(vec![ContainerStatus {
                            name: APP_CONTAINER.into(),
                            ready: p.ready,
                            // What the operator takes for the version: the digest of the
                            // image the container runs, which the kubelet reports once it
                            // has started (a deploy is a new build).
                            image: format!("shop:v{}", p.version + 1),
                            image_id: if p.started_once {
                                format!("shop@sha256:{:064x}", p.version + 1)
                            } else {
                                String::new()
                            },
                            last_state: p.last_oom.map(|o| ContainerState {
                                terminated: Some(ContainerStateTerminated {
                                    reason: Some("OOMKilled".into()),
                                    exit_code: 137,
                                    finished_at: Some(Time(at(o))),
                                    ..ContainerStateTerminated::default()
                                }),
                                ..ContainerState::default()
                            }),
                            ..ContainerStatus::default()
                        }]),
                        ..PodStatus::default()
                    }),
                }
            })
            .collect()
    }

    /// One scrape of a pod's pacer; `None` when it fails (not up, node stopped, or at
    /// random with the trace's failure rate).
    pub fn scrape(&mut self, name: &str, t: f64) -> Option<PacerMetrics> {
        let failure = self.trace.scrape_failures;
        let roll = self.rng.unit();
        let pod = self.pods.iter().find(|p| p.name == name)?;
        if !pod.up() || !pod.node.is_some_and(|n| self.node_alive(n, t)) || roll < failure {
            return None;
        }
        let app = &self.versions[pod.version];
        let live = pod.live(t) as f64;
        let busy = pod.busy.min(live);
        let slots: BTreeMap<String, (f64, f64)> = pod
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.boot_until <= t)
            .map(|(i, s)| (i.to_string(), (app.rss(s.jobs).round(), s.jobs.floor())))
            .collect();
        Some(PacerMetrics {
            ready: (live - busy).max(0.0),
            working: busy,
            queue_depth: pod.queue_gauge,
            target_workers: Some(f64::from(pod.config.workers)),
            job_seconds_sum: pod.counters.job_seconds,
            job_count: pod.counters.jobs.floor(),
            queue_wait_sum: pod.counters.queue_wait,
            no_free_workers: pod.counters.rejected.floor(),
            slots,
            process_memory: Some(app.server),
            worker_cpu_seconds: Some(pod.counters.cpu_seconds),
            worker_boot_seconds_sum: Some(pod.counters.boot_seconds),
            worker_boot_count: Some(pod.counters.boots),
            worker_age: AGE_BANDS
                .iter()
                .zip(&pod.counters.age)
                .map(|((_, label), totals)| ((*label).to_owned(), *totals))
                .collect(),
            working_set: Some(pod.working_set.round()),
            memory_limit: Some(pod.memory_limit),
            oom_kills: Some(pod.counters.oom_kills),
            start_time: match pod.container {
                Some(Container::Up { since }) => Some(at(since).as_second() as f64),
                _ => None,
            },
            cpu_periods: self.cpu_limit.map(|_| pod.counters.periods.floor()),
            cpu_throttled_periods: self
                .cpu_limit
                .map(|_| pod.counters.throttled_periods.floor()),
            jobs: None,
        })
    }

    /// Whether pods were created since the last call: the Deployment's status changes, and
    /// that wakes the controller (it watches its owned objects).
    pub fn take_created(&mut self) -> bool {
        std::mem::take(&mut self.created)
    }

    fn new_pod(&mut self, t: f64) {
        self.created = true;
        let index = self.next_index;
        self.next_index += 1;
        let phase = (self.rng.unit() * KUBELET_SYNC as f64) as i64;
        self.pods.push(SimPod {
            name: format!("shop-{index:05}"),
            index,
            version: self.current_version,
            node: None,
            created: t,
            deleting: None,
            container: None,
            started_once: false,
            restarts_in_row: 0,
            ready: false,
            ready_changed: t,
            ready_at: None,
            config: self.configmap,
            config_version: self.cm_version,
            pending_config: None,
            sync_phase: phase,
            memory_limit: self.template_memory,
            pending_resize: None,
            slots: Vec::new(),
            backlog: 0.0,
            counters: Counters::default(),
            busy: 0.0,
            queue_gauge: 0.0,
            working_set: 0.0,
            last_oom: None,
            cpu_use: 0.0,
        });
    }

    fn trace_events(&mut self, t: f64) {
        if let Some(d) = self.trace.deploys.get(self.deploys_done)
            && t >= d.at
        {
            self.deploys_done += 1;
            self.current_version = self.deploys_done;
            // The pods roll anyway: the template takes the memory the operator wants.
            self.template_memory = self.desired_memory;
        }
        if let Some(&at) = self.trace.node_failures.get(self.failures_done)
            && t >= at
        {
            self.failures_done += 1;
            // The node that runs most of the app's pods.
            let busiest = (0..self.nodes.len())
                .filter(|&n| self.node_alive(n, t))
                .max_by_key(|&n| {
                    let pods = self.pods.iter().filter(|p| p.node == Some(n)).count();
                    (pods, std::cmp::Reverse(n))
                });
            if let Some(n) = busiest {
                self.nodes[n].failed_at = Some(at);
            }
        }
    }

    /// The ReplicaSet controller: as many pods as wanted, a rolling update (25 % surge, none
    /// unavailable) when the version changed.
    fn replica_set(&mut self, t: f64) {
        let wanted = self.replicas as usize;
        let version = self.current_version;
        let active: Vec<usize> = (0..self.pods.len())
            .filter(|&i| self.pods[i].deleting.is_none())
            .collect();
        let old: Vec<usize> = active
            .iter()
            .copied()
            .filter(|&i| self.pods[i].version != version)
            .collect();
        if old.is_empty() {
            if active.len() < wanted {
                for _ in active.len()..wanted {
                    self.new_pod(t);
                }
            } else if active.len() > wanted {
                let mut victims = active.clone();
                // Unscheduled first, then not ready, then the newest.
                victims.sort_by_key(|&i| {
                    let p = &self.pods[i];
                    (p.node.is_some(), p.ready, std::cmp::Reverse(p.index))
                });
                for &i in victims.iter().take(active.len() - wanted) {
                    self.pods[i].deleting = Some(t);
                    self.pods[i].ready = false;
                    self.pods[i].ready_changed = t;
                }
            }
            return;
        }
        let surge = wanted.div_ceil(4).max(1);
        let new = active.len() - old.len();
        if active.len() < wanted + surge && new < wanted {
            self.new_pod(t);
        }
        let ready = active.iter().filter(|&&i| self.pods[i].ready).count();
        if ready > wanted || (active.len() > wanted + surge) {
            let mut victims = old;
            victims.sort_by_key(|&i| (self.pods[i].ready, self.pods[i].index));
            if let Some(&i) = victims.first() {
                self.pods[i].deleting = Some(t);
                self.pods[i].ready = false;
                self.pods[i].ready_changed = t;
            }
        }
    }

    fn schedule(&mut self, t: f64) {
        for i in 0..self.pods.len() {
            if self.pods[i].node.is_some() || self.pods[i].deleting.is_some() {
                continue;
            }
            let request = self.pods[i].memory_limit;
            let best = (0..self.nodes.len())
                .filter(|&n| self.node_alive(n, t))
                .map(|n| (n, self.nodes[n].memory - self.allocated(n)))
                .filter(|&(_, free)| free >= request)
                .max_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((n, _)) = best {
                let start = self.rng.uniform(4.0, 10.0);
                let pod = &mut self.pods[i];
                pod.node = Some(n);
                pod.container = Some(Container::Creating { up_at: t + start });
            }
        }
    }

    /// The kubelet of each pod's node: container starts and restarts, readiness, ConfigMap
    /// delivery, resizes, termination; the node controller for stopped nodes.
    fn kubelets(&mut self, t: f64) {
        let cm = (self.configmap, self.cm_version);
        let mut gone = Vec::new();
        for i in 0..self.pods.len() {
            let Some(node) = self.pods[i].node else {
                continue;
            };
            if let Some(failed) = self.nodes[node].failed_at
                && t >= failed
            {
                let pod = &mut self.pods[i];
                if t >= failed + NODE_GRACE && pod.ready {
                    pod.ready = false;
                    pod.ready_changed = t;
                }
                if t >= failed + NODE_GRACE + EVICTION_AFTER {
                    gone.push(i);
                }
                continue;
            }
            let free = self.nodes[node].memory - self.allocated(node);
            let boot = self.versions[self.pods[i].version].boot_seconds;
            let probe = self.rng.uniform(0.0, 10.0);
            let pod = &mut self.pods[i];
            if let Some(d) = pod.deleting {
                if t >= d + TERMINATION {
                    gone.push(i);
                }
                continue;
            }
            match pod.container {
                Some(Container::Creating { up_at }) if t >= up_at => {
                    pod.container = Some(Container::Up { since: t });
                    pod.started_once = true;
                    // A (re)started container mounts the ConfigMap as it is now.
                    pod.config = cm.0;
                    pod.config_version = cm.1;
                    pod.pending_config = None;
                    pod.counters = Counters::default();
                    pod.backlog = 0.0;
                    pod.slots = (0..pod.config.workers as usize)
                        .map(|k| Slot {
                            jobs: 0.0,
                            jitter: (k as f64 * 0.618_034).fract(),
                            boot_until: t + boot * (1 + k / BOOT_PARALLEL) as f64,
                            boot,
                        })
                        .collect();
                    pod.ready_at = Some(t + boot + probe);
                }
                Some(Container::Down { until }) if t >= until => {
                    pod.container = Some(Container::Creating { up_at: t + 2.0 });
                }
                Some(Container::Up { since }) => {
                    if pod.ready_at.is_some_and(|r| t >= r) && !pod.ready {
                        pod.ready = true;
                        pod.ready_changed = t;
                        pod.ready_at = None;
                    }
                    if t - since > 600.0 {
                        pod.restarts_in_row = 0;
                    }
                    if let Some((config, version)) = pod.pending_config
                        && (t as i64 - pod.sync_phase).rem_euclid(KUBELET_SYNC) == 0
                    {
                        pod.config = config;
                        pod.config_version = version;
                        pod.pending_config = None;
                    }
                }
                _ => {}
            }
            if let Some(wanted) = pod.pending_resize {
                let fits = if wanted >= pod.memory_limit {
                    free >= wanted - pod.memory_limit
                } else {
                    pod.working_set < wanted * 0.98
                };
                if fits {
                    pod.memory_limit = wanted;
                    pod.pending_resize = None;
                }
            }
        }
        gone.sort_unstable();
        // Terminated, or evicted from a stopped node (the ReplicaSet replaces those).
        for i in gone.into_iter().rev() {
            self.pods.remove(i);
        }
    }

    /// Advances the cluster by one second starting at `t`.
    pub fn step(&mut self, t: f64) -> Second {
        self.trace_events(t);
        self.kubelets(t);
        self.replica_set(t);
        self.schedule(t);

        // Traffic noise: a slow random walk re-drawn each minute.
        if (t as i64) % 60 == 0 {
            let sigma = self.trace.load.noise;
            self.noise = 0.9 * self.noise + sigma * 0.45 * self.rng.normal();
        }
        let rate = self.trace.rate(t) * self.noise.exp();
        let mut out = Second {
            arrivals: self.rng.poisson(rate),
            ..Second::default()
        };

        // The database: calls beyond its slots queue there, and contention slows it more.
        let slow = self.trace.slowdown(t);
        let slots = self.trace.db_slots;
        let pressure = (self.conns / slots - 1.0).max(0.0);
        self.db_factor = slow * (self.conns / slots).max(1.0) * (1.0 + 0.5 * pressure);

        let endpoints: Vec<usize> = (0..self.pods.len())
            .filter(|&i| {
                let p = &self.pods[i];
                p.ready && p.deleting.is_none()
            })
            .collect();
        if endpoints.is_empty() {
            out.failed += out.arrivals;
        }
        let share = out.arrivals / endpoints.len().max(1) as f64;
        // The expected rate per pod: the stationary waits (Erlang C) already account for
        // Poisson arrivals, so they get the rate, not this second's count.
        let expected = rate / endpoints.len().max(1) as f64;
        let mut conns = 0.0;
        for i in 0..self.pods.len() {
            let receives = endpoints.contains(&i);
            let arrivals = if receives {
                // Spread like kube-proxy's random choice: Poisson around the fair share.
                self.rng.poisson(share)
            } else {
                0.0
            };
            let alive = self.pods[i].node.is_some_and(|n| self.node_alive(n, t));
            if !alive || !self.pods[i].up() {
                out.failed += arrivals;
                continue;
            }
            conns += self.pod_second(i, t, arrivals, expected, &mut out);
        }
        // Smoothed, so that the database's answer to the pods does not oscillate.
        self.conns = 0.5 * self.conns + 0.5 * conns;
        out
    }

    /// One second of one running pod; returns its calls in flight to the database.
    fn pod_second(
        &mut self,
        i: usize,
        t: f64,
        arrivals: f64,
        lambda: f64,
        out: &mut Second,
    ) -> f64 {
        let app = self.versions[self.pods[i].version].clone();
        let cpu_limit = self.cpu_limit;
        let oom_mode = self.trace.oom;
        let db = self.db_factor;
        let spike_roll = self.rng.unit();
        let pod = &mut self.pods[i];

        // pacer's pool follows its (delivered) configuration.
        let wanted = pod.config.workers as usize;
        while pod.slots.len() < wanted {
            let k = pod.slots.len();
            pod.slots.push(Slot {
                jobs: 0.0,
                jitter: (k as f64 * 0.618_034).fract(),
                boot_until: t + app.boot_seconds * (1 + k % BOOT_PARALLEL) as f64,
                boot: app.boot_seconds,
            });
        }
        pod.slots.truncate(wanted);
        for slot in &mut pod.slots {
            slot.count_boot(t, &mut pod.counters);
        }

        let live: Vec<usize> = (0..pod.slots.len())
            .filter(|&k| pod.slots[k].boot_until <= t)
            .collect();
        let c = live.len();
        let work = pod.backlog + arrivals;
        if c == 0 {
            let (kept, rejected) = cap_backlog(work, 0.0, pod.backlog);
            pod.backlog = kept;
            pod.counters.rejected += rejected;
            out.failed += rejected;
            out.tails.push(Tail {
                n: arrivals,
                ahead: app.boot_seconds,
                waiting: 1.0,
                rate: 1.0,
            });
            pod.busy = 0.0;
            pod.queue_gauge = pod.backlog;
            pod.working_set = steady_memory(&app, &pod.slots);
            return 0.0;
        }
        let cpu_job = live
            .iter()
            .map(|&k| app.cpu_per_job(pod.slots[k].jobs))
            .sum::<f64>()
            / c as f64;
        let io_job = app.io * db;
        let cf = c as f64;

        // Completions: as many as the workers (and the CPU limit) allow.
        let (done, service, u) = match cpu_limit {
            None => {
                let service = io_job + cpu_job;
                (work.min(cf / service), service, 0.0)
            }
            Some(limit) => {
                let capacity = queue::cpu_capacity(cf, io_job, cpu_job, limit);
                let done = work.min(capacity);
                let u = (done * cpu_job / limit).min(0.98);
                (done, io_job + cpu_job * queue::cpu_stretch(limit, u), u)
            }
        };
        let busy = (done * service).min(cf);
        let (backlog, rejected) = cap_backlog(work - done, done, pod.backlog);
        let ahead = if pod.backlog + backlog > 0.5 {
            (pod.backlog + backlog) / 2.0 / done.max(1e-9)
        } else {
            0.0
        };
        let mut tail = queue::tail(arrivals, c as u32, lambda, service, app.cv, ahead);
        if backlog > 0.5 {
            tail.waiting = 1.0;
        }
        out.tails.push(tail);
        out.completed += done;
        out.failed += rejected;
        out.busy += busy;

        let counters = &mut pod.counters;
        counters.job_seconds += busy;
        counters.jobs += done;
        counters.queue_wait += arrivals * tail.mean().min(ALLOCATE_TIMEOUT);
        counters.rejected += rejected;
        counters.cpu_seconds += done * cpu_job;
        if let Some(limit) = cpu_limit {
            let share = queue::throttled_share(limit, u);
            counters.periods += 10.0;
            counters.throttled_periods += 10.0 * share;
            out.throttled = out.throttled.max(share);
        }
        pod.busy = busy;
        pod.backlog = backlog;
        pod.queue_gauge = backlog + arrivals * (tail.mean() - ahead).max(0.0);
        pod.cpu_use = done * cpu_job;

        // Jobs spread evenly over the live workers; recycling by max_jobs and by memory
        // (pacer's supervisor checks RSS every second). A worker's job takes the I/O and
        // its own CPU, stretched as the pod's mean is by a CPU limit.
        let per = done / cf;
        let stretch = if cpu_job > 0.0 {
            ((service - io_job) / cpu_job).max(0.0)
        } else {
            1.0
        };
        let max_jobs = pod.config.max_jobs;
        for &k in &live {
            let slot = &mut pod.slots[k];
            pod.counters
                .by_age(slot.jobs, per, |j| io_job + app.cpu_per_job(j) * stretch);
            slot.jobs += per;
            let over_jobs = slot.jobs >= recycle_point(max_jobs, slot.jitter);
            let over_memory = pod.config.max_worker_memory > 0
                && app.rss(slot.jobs) > pod.config.max_worker_memory as f64;
            if over_jobs || over_memory {
                slot.restart(t, app.boot_seconds);
            }
        }

        // Memory: the steady working set plus the transient allocations of running jobs.
        let steady = steady_memory(&app, &pod.slots);
        let spikes = poisson_from_unit(busy * app.spike_chance, spike_roll);
        let peak = steady + spikes * app.spike;
        pod.working_set = peak;
        out.working_set_max = out.working_set_max.max(peak);
        if peak > pod.memory_limit {
            out.oom_kills += 1;
            match oom_mode {
                OomMode::Group => {
                    let backoff = (10.0 * 2f64.powi(pod.restarts_in_row.min(5) as i32)).min(300.0);
                    pod.restarts_in_row += 1;
                    out.failed += busy + pod.backlog;
                    pod.backlog = 0.0;
                    pod.busy = 0.0;
                    pod.slots.clear();
                    pod.container = Some(Container::Down { until: t + backoff });
                    pod.ready = false;
                    pod.ready_changed = t;
                    pod.ready_at = None;
                    pod.last_oom = Some(t);
                    pod.working_set = 0.0;
                }
                OomMode::Process => {
                    // The kernel picks the largest process: the worker with the most jobs.
                    if let Some(k) = live
                        .iter()
                        .copied()
                        .max_by(|&a, &b| pod.slots[a].jobs.total_cmp(&pod.slots[b].jobs))
                    {
                        out.failed += busy / cf;
                        pod.slots[k].restart(t, app.boot_seconds);
                    }
                    pod.counters.oom_kills += 1.0;
                }
            }
        }
        busy * io_job / service
    }

    /// Pods that exist and hold memory on a live node, with their limits.
    pub fn reserved_memory(&self, t: f64) -> f64 {
        self.pods
            .iter()
            .filter(|p| p.reserves() && p.node.is_some_and(|n| self.node_alive(n, t)))
            .map(|p| p.memory_limit)
            .sum()
    }

    /// The Deployment's status: counts of its pods.
    #[must_use]
    pub fn deployment_state(&self) -> pacer_operator::plan::DeploymentState {
        let count = |f: &dyn Fn(&SimPod) -> bool| {
            i32::try_from(self.pods.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
        };
        let version = self.current_version;
        let desired = i32::try_from(self.replicas).unwrap_or(i32::MAX);
        let replicas = count(&|p| p.deleting.is_none());
        let ready = count(&|p| p.ready);
        let updated = count(&|p| p.deleting.is_none() && p.version == version);
        pacer_operator::plan::DeploymentState {
            desired,
            replicas,
            ready,
            updated,
            available: ready,
            rolled_out: updated >= desired && ready >= desired && replicas <= desired,
            stalled: false,
        }
    }

    /// Pods not being deleted.
    #[must_use]
    pub fn active_pods(&self) -> usize {
        self.active().count()
    }

    /// Ready pods.
    #[must_use]
    pub fn ready_pods(&self) -> usize {
        self.pods.iter().filter(|p| p.ready).count()
    }

    /// Mean delivered workers per running pod.
    #[must_use]
    pub fn delivered_workers(&self) -> f64 {
        let up: Vec<&SimPod> = self.pods.iter().filter(|p| p.up()).collect();
        if up.is_empty() {
            return 0.0;
        }
        up.iter().map(|p| f64::from(p.config.workers)).sum::<f64>() / up.len() as f64
    }

    /// Workers that run, over all pods.
    #[must_use]
    pub fn total_workers(&self, t: f64) -> usize {
        self.pods
            .iter()
            .filter(|p| p.up() && p.node.is_some_and(|n| self.node_alive(n, t)))
            .map(|p| p.live(t))
            .sum()
    }

    /// Highest memory limit in force on a pod, bytes.
    #[must_use]
    pub fn memory_limit_max(&self) -> f64 {
        self.active().map(|p| p.memory_limit).fold(0.0, f64::max)
    }
}

/// max_jobs with pacer's jitter (0–14 % more per worker, so recycles spread out).
fn recycle_point(max_jobs: u64, roll: f64) -> f64 {
    if max_jobs == 0 {
        return f64::INFINITY;
    }
    max_jobs as f64 * (1.0 + 0.14 * roll)
}

/// Keeps what can wait within the allocate timeout; the rest is refused (503).
fn cap_backlog(backlog: f64, rate: f64, _previous: f64) -> (f64, f64) {
    let cap = ALLOCATE_TIMEOUT * rate;
    if backlog > cap {
        (cap, backlog - cap)
    } else {
        (backlog.max(0.0), 0.0)
    }
}

fn steady_memory(app: &AppProfile, slots: &[Slot]) -> f64 {
    app.server
        + app.shared
        + app.page_cache
        + slots
            .iter()
            .map(|s| app.private_memory(s.jobs))
            .sum::<f64>()
}

/// A Poisson draw from one uniform number (inversion; the means here are small).
fn poisson_from_unit(mean: f64, u: f64) -> f64 {
    if mean <= 0.0 {
        return 0.0;
    }
    let mut k = 0.0;
    let mut p = (-mean).exp();
    let mut cdf = p;
    while u > cdf && k < 1000.0 {
        k += 1.0;
        p *= mean / k;
        cdf += p;
    }
    k
}

/// The simulated clock as a timestamp: the trace starts Monday 2026-01-05 00:00 UTC.
#[must_use]
pub fn at(t: f64) -> Timestamp {
    const MONDAY: i64 = 1_767_571_200;
    Timestamp::from_second(MONDAY + t.floor() as i64).unwrap_or(Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace;

    fn cluster(t: &Trace) -> Cluster {
        Cluster::new(
            t,
            PoolConfig {
                workers: 8,
                max_jobs: 500,
                max_worker_memory: 128 << 20,
            },
            2,
            1024.0 * 1024.0 * 1024.0,
            None,
        )
    }

    #[test]
    fn pods_start_become_ready_and_serve() {
        let t = trace::daily_week();
        let mut c = cluster(&t);
        let mut completed = 0.0;
        for s in 0..120 {
            completed += c.step(f64::from(s)).completed;
        }
        assert_eq!(c.ready_pods(), 2);
        assert!(completed > 1000.0, "{completed}");
        let pods = c.k8s_pods(120.0);
        assert_eq!(pods.len(), 2);
        // Their version, as the operator reads it: the digest the container runs.
        let (targets, _) = pacer_operator::observe::pod_targets(&pods, APP_CONTAINER);
        let digest = format!("shop@sha256:{:064x}", 1);
        assert_eq!(targets.len(), 2);
        assert!(
            targets
                .iter()
                .all(|p| p.image.as_deref() == Some(digest.as_str())),
            "{targets:?}"
        );
        let metrics = c.scrape(&c.pods[0].name.clone(), 120.0);
        // 1 % of scrapes fail at random; this one is fixed by the seed.
        let m = metrics.expect("scrape");
        assert_eq!(m.target_workers, Some(8.0));
        assert!(m.job_count > 100.0);
    }

    /// The scraped pacer counts every boot once its worker is ready: the pod's first
    /// eight, then each replacement of a recycled worker.
    #[test]
    fn boots_are_counted_when_the_workers_are_ready() {
        let t = trace::daily_week();
        let boot = t.versions()[0].boot_seconds;
        let mut c = cluster(&t);
        // Never recycled: a boot per worker.
        c.configmap.max_jobs = 0;
        for s in 0..120 {
            c.step(f64::from(s));
        }
        let name = c.pods[0].name.clone();
        let m = c.scrape(&name, 120.0).expect("scrape");
        assert_eq!(m.worker_boot_count, Some(8.0));
        assert_eq!(m.worker_boot_seconds_sum, Some(8.0 * boot));

        // Recycled after 20 jobs: many more boots, each of the app's boot time.
        let mut c = cluster(&t);
        c.configmap.max_jobs = 20;
        for s in 0..120 {
            c.step(f64::from(s));
        }
        let m = c.scrape(&name, 120.0).expect("scrape");
        let count = m.worker_boot_count.unwrap_or_default();
        assert!(count > 16.0, "{count}");
        let sum = m.worker_boot_seconds_sum.unwrap_or_default();
        assert!((sum - count * boot).abs() < 1e-9, "{sum} for {count}");
    }

    /// The scraped pacer's job time by worker age follows the app's warm-up (CPU 2× at
    /// first, decaying over 300 jobs), and the operator's fit finds it there.
    #[test]
    fn job_time_by_worker_age_shows_the_apps_warm_up() {
        let t = trace::daily_week();
        let app = t.versions()[0].clone();
        let mut c = cluster(&t);
        for s in 0..1800 {
            c.step(f64::from(s));
        }
        let name = c.pods[0].name.clone();
        let m = c.scrape(&name, 1800.0).expect("scrape");
        let bands: Vec<pacer_operator::sample::AgeBand> = AGE_BANDS
            .iter()
            .filter_map(|(_, label)| {
                let (seconds, jobs) = m.worker_age[*label];
                pacer_operator::sample::AgeBand::of(label, seconds, jobs)
            })
            .collect();
        assert_eq!(bands.len(), 7);
        // Every job is in a band.
        let jobs: f64 = bands.iter().map(|b| b.jobs).sum();
        assert!(
            (jobs - m.job_count).abs() <= 1.0,
            "{jobs} vs {}",
            m.job_count
        );
        let mean = |i: usize| bands[i].seconds / bands[i].jobs;
        // Workers recycled at 500 jobs (+ up to 14 %): the young band pays ≈ all of the
        // 25 ms extra CPU, the 300–999 band a fraction.
        assert!(mean(0) > app.job_seconds() + 0.02, "{}", mean(0));
        assert!(mean(4) < mean(3) && mean(3) < mean(2), "{bands:?}");
        let w = pacer_operator::tuning::warm_up::fit(&bands, 500).expect("a fit");
        assert!(
            (w.jobs - app.warm_jobs).abs() < 0.2 * app.warm_jobs,
            "{w:?}"
        );
        let extra = app.cpu * (app.cold - 1.0);
        assert!(
            (w.first_job_extra_seconds() - extra).abs() < 0.2 * extra,
            "{w:?}"
        );
    }

    #[test]
    fn config_reaches_pods_within_a_sync_period() {
        let t = trace::daily_week();
        let mut c = cluster(&t);
        for s in 0..60 {
            c.step(f64::from(s));
        }
        let mut next = c.configmap;
        next.workers = 12;
        c.apply(next, 2, c.desired_memory);
        assert!(c.config_pending(60.0));
        let mut delivered_at = None;
        for s in 60..200_i64 {
            c.step(s as f64);
            if delivered_at.is_none() && !c.config_pending(s as f64) {
                delivered_at = Some(s);
            }
        }
        let d = delivered_at.expect("delivered");
        assert!(d <= 60 + KUBELET_SYNC + 1, "{d}");
        assert!(c.pods.iter().all(|p| p.config.workers == 12));
    }

    #[test]
    fn a_resize_waits_for_room_on_the_node() {
        let mut t = trace::daily_week();
        t.nodes = vec![2.5 * 1024.0 * 1024.0 * 1024.0];
        let mut c = cluster(&t);
        for s in 0..30 {
            c.step(f64::from(s));
        }
        // Two pods of 1 GiB on a 2.5 GiB node: raising both to 1.5 GiB fits only one.
        c.apply(c.configmap, 2, 1536.0 * 1024.0 * 1024.0);
        for s in 30..40 {
            c.step(f64::from(s));
        }
        let resized = c.pods.iter().filter(|p| p.pending_resize.is_none()).count();
        assert_eq!(resized, 1);
        assert!(c.resize_pending(40.0));
    }

    #[test]
    fn at_is_monday() {
        assert_eq!(at(0.0).to_string(), "2026-01-05T00:00:00Z");
    }
}
