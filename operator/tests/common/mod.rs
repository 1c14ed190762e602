//! Shared helpers of the operator's tests against the real API server (`pacer-e2e`).

#![allow(dead_code)]

use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use pacer_e2e::{ControlPlane, or_skip};

/// The control plane shared by the tests of one test binary; `None` only outside CI when
/// it cannot be built (a skip, announced on stderr).
pub async fn cluster() -> Result<Option<&'static ControlPlane>> {
    or_skip(ControlPlane::shared().await)
}

/// Installs (or updates) the PhpAppServer CRD and waits until it is established.
pub async fn install_crd(client: &Client) -> Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        pacer_crds::CRD_NAME,
        &PatchParams::apply("pacer-tests").force(),
        &Patch::Apply(pacer_crds::crd()),
    )
    .await
    .context("applying the CRD")?;
    wait_for(
        Duration::from_secs(30),
        "the CRD to be established",
        || async {
            let crd = crds.get(pacer_crds::CRD_NAME).await?;
            Ok(crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True"))
        },
    )
    .await
}

/// Polls `check` every 100 ms until it returns true or `timeout` passes.
pub async fn wait_for<F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_error = Some(e),
        }
        if tokio::time::Instant::now() >= deadline {
            match last_error {
                Some(e) => {
                    bail!("timed out after {timeout:?} waiting for {what}; last error: {e:#}")
                }
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

use std::sync::Arc;

use pacer_operator::controller::ControllerSettings;
use pacer_operator::leader::LeaseConfig;
use pacer_operator::metrics_source::MetricsSource;
use pacer_operator::resources::{MANAGER, SidecarDefaults};
use pacer_operator::telemetry::Metrics;
use pacer_operator::{Operator, OperatorConfig};
use tokio_util::sync::CancellationToken;

/// An operator running in-process against the test API server.
pub struct Running {
    pub shutdown: CancellationToken,
    pub metrics: Arc<Metrics>,
    pub task: tokio::task::JoinHandle<Result<(), pacer_operator::Error>>,
}

impl Running {
    /// Stops it (releasing the Lease) and waits.
    pub async fn stop(self) -> Result<()> {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .context("the operator did not stop within 30 s")???;
        Ok(())
    }

    /// Reconciles so far, by result.
    pub fn reconciles(&self, result: &'static str) -> u64 {
        self.metrics
            .reconciliations
            .get_or_create(&pacer_operator::telemetry::ResultLabels { result })
            .get()
    }
}

/// Fast Lease timings for tests.
pub fn lease(namespace: &str, identity: &str) -> LeaseConfig {
    LeaseConfig {
        namespace: namespace.to_owned(),
        name: "pacer-operator".to_owned(),
        identity: identity.to_owned(),
        lease_duration: Duration::from_secs(4),
        renew_deadline: Duration::from_secs(3),
        retry_period: Duration::from_millis(250),
    }
}

/// Starts an operator watching `namespace` only, with its Lease there too.
pub fn start_operator(
    client: Client,
    namespace: &str,
    identity: &str,
    source: Arc<dyn MetricsSource>,
) -> Running {
    start(
        client,
        vec![namespace],
        lease(namespace, identity),
        source,
        None,
        None,
    )
}

/// Starts an operator watching `namespace` only, deciding with `clock`'s time.
pub fn start_operator_with_clock(
    client: Client,
    namespace: &str,
    identity: &str,
    source: Arc<dyn MetricsSource>,
    clock: pacer_operator::controller::Clock,
) -> Running {
    start(
        client,
        vec![namespace],
        lease(namespace, identity),
        source,
        Some(clock),
        None,
    )
}

/// Starts an operator watching `watch` (all namespaces when `None`) with this Lease.
pub fn start_operator_with(
    client: Client,
    watch: Option<&str>,
    lease: LeaseConfig,
    source: Arc<dyn MetricsSource>,
) -> Running {
    start(
        client,
        watch.into_iter().collect(),
        lease,
        source,
        None,
        None,
    )
}

/// Starts an operator watching these namespaces (all when empty) with this Lease.
pub fn start_operator_in(
    client: Client,
    namespaces: &[&str],
    lease: LeaseConfig,
    source: Arc<dyn MetricsSource>,
) -> Running {
    start(client, namespaces.to_vec(), lease, source, None, None)
}

/// Starts an operator watching all namespaces but reconciling only those whose labels
/// match `selector`.
pub fn start_operator_selecting(
    client: Client,
    selector: &str,
    lease: LeaseConfig,
    source: Arc<dyn MetricsSource>,
) -> Running {
    let selector = selector.to_owned();
    start_configured(
        client,
        Vec::new(),
        lease,
        source,
        None,
        None,
        move |settings| {
            settings.namespace_selector = Some(selector);
        },
    )
}

/// Starts an operator watching `namespace` with these sidecar defaults (as a chart
/// configures them).
pub fn start_operator_with_sidecar(
    client: Client,
    namespace: &str,
    identity: &str,
    source: Arc<dyn MetricsSource>,
    sidecar: SidecarDefaults,
) -> Running {
    start(
        client,
        vec![namespace],
        lease(namespace, identity),
        source,
        None,
        Some(sidecar),
    )
}

fn start(
    client: Client,
    watch: Vec<&str>,
    lease: LeaseConfig,
    source: Arc<dyn MetricsSource>,
    clock: Option<pacer_operator::controller::Clock>,
    sidecar: Option<SidecarDefaults>,
) -> Running {
    start_configured(client, watch, lease, source, clock, sidecar, |_| {})
}

fn start_configured(
    client: Client,
    watch: Vec<&str>,
    lease: LeaseConfig,
    source: Arc<dyn MetricsSource>,
    clock: Option<pacer_operator::controller::Clock>,
    sidecar: Option<SidecarDefaults>,
    adjust: impl FnOnce(&mut ControllerSettings),
) -> Running {
    let identity = lease.identity.clone();
    let mut config = OperatorConfig {
        controller: ControllerSettings {
            field_manager: MANAGER.to_owned(),
            namespaces: watch.into_iter().map(str::to_owned).collect(),
            namespace_selector: None,
            concurrency: 2,
            sidecar: sidecar.unwrap_or_else(|| SidecarDefaults {
                image: "pacer:test".to_owned(),
                install_command: vec![
                    "/pacer-operator".into(),
                    "install".into(),
                    "--to".into(),
                    "/pacer-install/pacer".into(),
                ],
            }),
            instance: identity,
            in_place_resize: true,
            prometheus_allowed_urls: vec!["http://127.0.0.1".into()],
        },
        lease,
    };
    adjust(&mut config.controller);
    let metrics = Arc::new(Metrics::new());
    let shutdown = CancellationToken::new();
    let mut operator = Operator::new(client, config, source, metrics.clone());
    if let Some(clock) = clock {
        operator = operator.with_clock(clock);
    }
    let task = tokio::spawn(operator.run(shutdown.clone()));
    Running {
        shutdown,
        metrics,
        task,
    }
}

/// Logs to the test's captured output (shown for failing tests); `RUST_LOG` filters.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
