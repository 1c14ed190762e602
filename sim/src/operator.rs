//! The operator in the loop: each reconcile does what the controller's observe → plan → apply does,
//! with the modelled cluster in place of the API server and the pods' `/metrics`.
//!
//! * observe: the pods as `Pod` objects through the real `observe::pod_targets` (running
//!   pods, newest OOM kill) and `observe::pod_problem`, the Deployment's counts; when
//!   `plan::tuning_due`, one scrape per pod into the real `metrics_source::window::Windows`
//!   (what `Direct` keeps, aggregated by the real `aggregate`), an error when every scrape
//!   failed, as `Direct` returns;
//! * plan: the real `plan::plan` (which calls `tuning::decide` and builds the desired
//!   objects) on the status the previous reconcile wrote;
//! * apply: the settings to the cluster (ConfigMap, replica count, in-place resize);
//! * the next reconcile after the plan's `requeue_after`.
//!
//! A restart of the operator loses what it keeps in memory (the scrape windows); the
//! status survives, as it does in the API server.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use pacer_crds::{PhpAppServerSpec, PhpAppServerStatus};
use pacer_operator::app_config::AppConfig;
use pacer_operator::metrics_source::window::Windows;
use pacer_operator::observe::{pod_problem, pod_targets};
use pacer_operator::plan::{self, Owner, PlanInput, PodProblem, TuningInput};
use pacer_operator::resources::SidecarDefaults;
use pacer_operator::sample::AppSample;
use pacer_operator::tuning::{self, Knob, Settings};

use crate::cluster::{Cluster, PoolConfig, at};
use crate::record::{Change, Decided};
use crate::trace::Trace;

/// Why a trace cannot run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The trace's spec is not a valid `PhpAppServerSpec`.
    #[error("the spec of trace {trace} does not parse: {reason}")]
    Spec {
        /// The trace.
        trace: String,
        /// Why.
        reason: String,
    },
    /// The plan failed (it could not build the desired objects).
    #[error("planning failed: {0}")]
    Plan(String),
}

/// The operator's view of one app.
#[derive(Debug)]
pub struct Operator {
    spec: PhpAppServerSpec,
    sidecar: SidecarDefaults,
    config: AppConfig,
    status: PhpAppServerStatus,
    windows: Windows,
    next: f64,
    decided: Decided,
    /// Every applied change.
    pub changes: Vec<Change>,
}

/// The settings as the cluster takes them.
#[must_use]
pub fn pool_config(s: &Settings) -> PoolConfig {
    PoolConfig {
        workers: s.workers,
        max_jobs: s.max_jobs,
        max_worker_memory: s.max_worker_memory,
    }
}

impl Operator {
    /// The operator for a trace's app.
    ///
    /// # Errors
    /// [`Error::Spec`] when the trace's spec does not parse.
    pub fn new(trace: &Trace) -> Result<Self, Error> {
        let fail = |reason: String| Error::Spec {
            trace: trace.name.to_owned(),
            reason,
        };
        let spec: PhpAppServerSpec =
            serde_json::from_value(trace.spec.clone()).map_err(|e| fail(e.to_string()))?;
        let config = AppConfig::from_spec(&spec).map_err(|e| fail(e.to_string()))?;
        let mut operator = Self {
            spec,
            sidecar: SidecarDefaults {
                image: "pacer:sim".into(),
                install_command: vec![
                    "/pacer-operator".into(),
                    "install".into(),
                    "/pacer/pacer".into(),
                ],
            },
            config,
            status: PhpAppServerStatus::default(),
            windows: Windows::new(),
            next: 0.0,
            decided: Decided::default(),
            changes: Vec::new(),
        };
        operator.decided = operator.read_decided();
        Ok(operator)
    }

    /// The settings the Deployment starts with.
    #[must_use]
    pub fn initial(&self) -> Settings {
        tuning::initial(&self.config.policy)
    }

    /// CPU limit of the app container, cores.
    #[must_use]
    pub fn cpu_limit(&self) -> Option<f64> {
        self.config
            .policy
            .cpu_limit_millis
            .map(|m| m as f64 / 1000.0)
    }

    /// The tuning interval, seconds.
    #[must_use]
    pub fn interval(&self) -> f64 {
        self.config.interval.as_secs_f64()
    }

    /// The stabilisation window, seconds.
    #[must_use]
    pub fn stabilization_window(&self) -> f64 {
        self.config.policy.stabilization_window.as_secs_f64()
    }

    /// The policy.
    #[must_use]
    pub fn config(&self) -> &AppConfig {
        &self.config
    }

    /// What the status says is decided.
    #[must_use]
    pub fn decided(&self) -> Decided {
        self.decided
    }

    fn read_decided(&self) -> Decided {
        let current = self
            .status
            .current
            .as_ref()
            .and_then(pacer_operator::status::settings_from)
            .unwrap_or_else(|| self.initial());
        Decided {
            workers: f64::from(current.workers),
            memory_limit: current.memory_limit as f64,
            max_jobs: current.max_jobs as f64,
        }
    }

    /// A watch event (an owned object changed): reconcile at `t` unless sooner anyway.
    pub fn wake(&mut self, t: f64) {
        self.next = self.next.min(t);
    }

    /// The operator process restarts: its scrape windows are gone, the status is not.
    pub fn restart(&mut self) {
        self.windows = Windows::new();
    }

    /// Reconciles when the last plan asked to be woken by `t`.
    ///
    /// # Errors
    /// [`Error::Plan`] when the plan fails.
    pub fn tick(&mut self, cluster: &mut Cluster, t: f64) -> Result<(), Error> {
        if t < self.next {
            return Ok(());
        }
        let now = at(t);
        let pods = cluster.k8s_pods(t);
        let (targets, newest_oom) = pod_targets(&pods, &self.spec.container);
        let mut pod_problems: Vec<PodProblem> = pods.iter().filter_map(pod_problem).collect();
        pod_problems.sort_by_key(|p| (p.severity(), p.pod.clone()));
        let tuning = plan::tuning_due(&self.config, &self.status, now).then(|| {
            let names: Vec<&str> = targets.iter().map(|p| p.name.as_str()).collect();
            let mut fresh = Vec::new();
            let mut failed = 0;
            for target in targets.iter().filter(|p| p.ip.is_some()) {
                match cluster.scrape(&target.name, t) {
                    Some(metrics) => fresh.push((target.name.clone(), metrics)),
                    None => failed += 1,
                }
            }
            let scraped = !fresh.is_empty();
            let window = self.config.sample_window;
            let pods = self
                .windows
                .record(("sim", "shop"), &names, fresh, now, window);
            let sample = if !scraped && failed > 0 {
                Err(format!(
                    "no pod answered its metrics scrape ({failed} failed)"
                ))
            } else {
                Ok(AppSample { window, pods })
            };
            TuningInput {
                sample,
                newest_oom,
                pods: targets.clone(),
                jobs_depth: None,
            }
        });
        let deployment = cluster.deployment_state();
        let planned = plan::plan(PlanInput {
            owner: Owner {
                name: "shop",
                namespace: "sim",
                reference: OwnerReference {
                    api_version: pacer_crds::API_VERSION.into(),
                    kind: "PhpAppServer".into(),
                    name: "shop".into(),
                    uid: "sim".into(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                },
                spec: &self.spec,
                sidecar: &self.sidecar,
            },
            generation: Some(1),
            config: &self.config,
            previous: &self.status,
            tuning,
            deployment: Some(deployment),
            pod_problems: &pod_problems,
            autoscaler: None,
            paused: false,
            now,
        })
        .map_err(|e| Error::Plan(e.to_string()))?;
        for change in &planned.changes {
            let early = match change.knob {
                Knob::Workers | Knob::MaxJobs | Knob::MaxWorkerMemory | Knob::JobsWorkers => {
                    cluster.config_pending(t)
                }
                Knob::MemoryLimit => cluster.resize_pending(t),
                Knob::Replicas => false,
            };
            self.changes.push(Change {
                t,
                knob: change.knob.as_str(),
                from: change.from,
                to: change.to,
                early,
                reason: change.reason.clone(),
            });
        }
        let s = planned.settings;
        cluster.apply(pool_config(&s), s.replicas, s.memory_limit as f64);
        self.status = planned.status;
        self.decided = self.read_decided();
        self.next = t + planned.requeue_after.as_secs_f64().max(1.0).round();
        Ok(())
    }
}
