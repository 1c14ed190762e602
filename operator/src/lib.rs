//! `pacer-operator`: reconciles `PhpAppServer` objects (`pacer.dev/v1alpha2`) into the
//! Deployment, Service, ConfigMap and PodDisruptionBudget that run a PHP app under
//! `pacer`, and tunes each app's worker pool from its pods' live metrics.
//!
//! Built on kube 5 (client, runtime, derive; rustls with ring, no OpenSSL), k8s-openapi
//! 0.29 at API level 1.33 (the CRD's CEL rules need 1.33+) and schemars 1, through the
//! `pacer-crds` crate.
//!
//! # Theory of operation
//! [`Operator::run`] is the composition root. It campaigns for a `coordination.k8s.io`
//! Lease ([`leader`]); only the holder runs the kube-runtime controller ([`controller`]),
//! and a replica that loses the Lease stops reconciling before anyone else can take it.
//! The binary (`main.rs`) adds the `/metrics` + `/health` server ([`telemetry::serve`]),
//! signal handling and logging, and passes one `CancellationToken` that stops it all.
//!
//! Each reconcile is [`observe`] → [`plan`] → [`apply`] → [`report`], each in its own
//! module, wired by [`controller`]. Everything in the middle is pure and tested without a
//! cluster: the spec is parsed once ([`app_config`]), the tuner decides ([`tuning`], with
//! `now` as a parameter), the status and its conditions are computed ([`plan`],
//! [`status`]) and the owned objects are built by one function
//! ([`resources::desired`]). The I/O at the edges is the Kubernetes API (server-side
//! apply, one field manager) and the [`metrics_source`] (direct scrapes of each pod's
//! pacer, or PromQL), behind the [`metrics_source::MetricsSource`] trait so tests use a
//! fake.
//!
//! Tuning changes reach running pods without restarts: workers and recycling limits go
//! into the ConfigMap, which pacer (`serve --watch-config`) applies live; the memory limit
//! is resized in place on the running pods (`pods/resize`), falling back to a rolling
//! update where the cluster refuses, and the tuner rate-limits its decreases.
//!
//! # Modules
//! * [`controller`] — the kube-runtime Controller wiring and the reconcile sequence.
//! * [`observe`] — reads the Deployment, the pods (their problems, for Ready) and metrics.
//! * [`plan`] — pure: settings, desired objects, status and events of one reconcile.
//! * [`apply`] — server-side apply; in-place resize versus rollout for memory limits.
//! * [`report`] — Events, the status (write-ahead for decisions), per-app gauges.
//! * [`tuning`] — pure: the tuner (docs/design.md §3.3).
//! * [`jobs_tuning`] — pure: the jobs pool's size (workers per pod, pods, scale to zero)
//!   from the backlog (`spec.jobs`).
//! * [`sample`] — the tuner's input: window aggregates per pod.
//! * [`metrics_source`] — Direct, Prometheus and Fake sources; the exposition parser.
//! * [`resources`] — pure builders of the owned objects and of `rr.yaml`.
//! * [`status`] — conditions and status conversions.
//! * [`app_config`] — spec → typed configuration.
//! * [`leader`] — Lease-based leader election.
//! * [`telemetry`] — the operator's metrics and its HTTP endpoint.
//! * [`install`] — the `install` subcommand the init container uses to copy pacer.
//!
//! Start reading at [`controller`], then [`plan::plan`] and [`tuning::decide`].

pub mod app_config;
pub mod apply;
pub mod controller;
pub mod install;
pub mod jobs_plan;
pub mod jobs_tuning;
pub mod leader;
pub mod metrics_source;
pub mod observe;
pub mod plan;
pub mod report;
pub mod resources;
pub mod sample;
pub mod status;
pub mod telemetry;
pub mod tuning;

pub use pacer_crds::units;

use std::sync::Arc;

use kube::Client;
use tokio_util::sync::CancellationToken;

use crate::controller::{Clock, Context, ControllerSettings};
use crate::leader::{LeaderElector, LeaseConfig};
use crate::metrics_source::MetricsSource;
use crate::telemetry::Metrics;

/// Errors of the operator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec does not parse (it slipped past the schema).
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// A namespaced object came without its namespace (or uid).
    #[error("object has no namespace or uid")]
    MissingNamespace,
    /// Reading an object from the API failed.
    #[error("reading {what}: {source}")]
    Read {
        /// What was read.
        what: &'static str,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// Server-side apply of an owned object failed.
    #[error("applying {kind} {name}: {source}")]
    Apply {
        /// Kind of the object.
        kind: String,
        /// Its name.
        name: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// Resizing a pod in place failed (other than by refusal).
    #[error("resizing pod {pod}: {source}")]
    Resize {
        /// The pod.
        pod: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// Writing the status failed.
    #[error("writing the status: {source}")]
    WriteStatus {
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// Rendering `rr.yaml` failed.
    #[error("rendering rr.yaml: {0}")]
    Render(#[from] serde_yaml::Error),
    /// Leader election failed.
    #[error(transparent)]
    Leader(#[from] leader::Error),
}

/// The operator's configuration.
#[derive(Clone, Debug)]
pub struct OperatorConfig {
    /// The controller's settings.
    pub controller: ControllerSettings,
    /// Leader election.
    pub lease: LeaseConfig,
}

/// The operator: leader election around the controller.
pub struct Operator {
    client: Client,
    config: OperatorConfig,
    metrics_source: Arc<dyn MetricsSource>,
    metrics: Arc<Metrics>,
    clock: Option<Clock>,
}

impl std::fmt::Debug for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operator")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Operator {
    /// An operator talking to `client`.
    #[must_use]
    pub fn new(
        client: Client,
        config: OperatorConfig,
        metrics_source: Arc<dyn MetricsSource>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            client,
            config,
            metrics_source,
            metrics,
            clock: None,
        }
    }

    /// Uses `clock` instead of the system clock for tuning decisions.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Campaigns for the Lease and runs the controller while holding it, until `shutdown`
    /// fires; then stops the controller (in-flight reconciles finish) and releases the
    /// Lease. Losing the Lease stops the controller and returns to campaigning.
    ///
    /// # Errors
    /// Only releasing the Lease at shutdown can fail; everything else is retried.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        let elector = LeaderElector::new(self.client.clone(), self.config.lease.clone());
        loop {
            if !elector.acquire(&shutdown).await {
                return Ok(());
            }
            self.metrics.leader.set(1);
            let mut context = Context::new(
                self.client.clone(),
                self.config.controller.clone(),
                self.metrics_source.clone(),
                self.metrics.clone(),
            );
            if let Some(clock) = &self.clock {
                context = context.with_clock(clock.clone());
            }
            let stop = CancellationToken::new();
            let controller = tokio::spawn(controller::run(
                Arc::new(context),
                stop.clone().cancelled_owned(),
            ));
            let shutting_down = elector.hold(&shutdown).await;
            stop.cancel();
            if let Err(error) = controller.await {
                tracing::error!(%error, "the controller task failed");
            }
            self.metrics.leader.set(0);
            if shutting_down {
                elector.release().await?;
                tracing::info!("released the lease");
                return Ok(());
            }
            tracing::warn!("lost the lease; campaigning again");
        }
    }
}
