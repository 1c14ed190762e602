//! Shared helpers of the operator's tests against the real API server (`pacer-e2e`).

#![allow(dead_code)]

use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodTemplateSpec};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use pacer_crds::PhpAppServer;
use pacer_e2e::{ControlPlane, or_skip};
use pacer_operator::sample::{AppSample, PodSample};
use serde_json::json;

/// The control plane shared by the tests of one test binary; `None` only outside CI when
/// it cannot be built (a skip, announced on stderr).
pub async fn cluster() -> Result<Option<&'static ControlPlane>> {
    or_skip(ControlPlane::shared().await)
}

/// Installs (or updates) the PhpAppServer CRD and waits until it is established.
pub async fn install_crd(client: &Client) -> Result<()> {
    apply_crd(client, pacer_crds::crd()).await
}

/// Applies a CRD (server-side) and waits until the API server has established it.
pub async fn apply_crd(client: &Client, crd: CustomResourceDefinition) -> Result<()> {
    let name = crd.metadata.name.clone().context("a CRD without a name")?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        &name,
        &PatchParams::apply("pacer-tests").force(),
        &Patch::Apply(crd),
    )
    .await
    .with_context(|| format!("applying the CRD {name}"))?;
    wait_for(
        Duration::from_secs(30),
        &format!("the CRD {name} to be established"),
        || async {
            let crd = crds.get(&name).await?;
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

/// Logging, the shared control plane with the CRD installed, and a fresh namespace named
/// after `prefix`; `None` where [`cluster`] skips.
pub async fn setup(prefix: &str) -> Result<Option<(Client, String)>> {
    init_logging();
    let Some(cp) = cluster().await? else {
        return Ok(None);
    };
    let client = cp.client()?;
    install_crd(&client).await?;
    let ns = cp.new_namespace(prefix).await?;
    Ok(Some((client, ns)))
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
use pacer_operator::metrics_source::{Fake, MetricsSource};
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

/// How long the tests wait for the operator to act.
pub const WAIT: Duration = Duration::from_secs(30);

/// A PhpAppServer `name` that runs `php worker.php` from `shop:1`, with the fields of
/// `spec` on top.
pub fn app(name: &str, spec: serde_json::Value) -> Result<PhpAppServer> {
    let mut base = json!({"image": "shop:1", "command": ["php", "worker.php"]});
    if let (Some(b), Some(s)) = (base.as_object_mut(), spec.as_object()) {
        b.extend(s.clone());
    }
    Ok(serde_json::from_value(json!({
        "apiVersion": "pacer.dev/v1alpha2",
        "kind": "PhpAppServer",
        "metadata": {"name": name},
        "spec": base,
    }))?)
}

/// One pod (`shop-1`) with `busy` of its `live` workers busy, each busy one doing ten
/// 0.1 s jobs a second.
pub fn busy_sample(busy: f64, live: f64) -> AppSample {
    AppSample {
        window: Duration::from_secs(60),
        pods: vec![PodSample {
            pod: "shop-1".into(),
            live_workers: live,
            busy_workers: busy,
            jobs_per_second: busy * 10.0,
            mean_job_seconds: Some(0.1),
            ..PodSample::default()
        }],
    }
}

/// The rr.yaml of a ConfigMap the operator wrote.
pub fn rr_yaml(cm: &ConfigMap) -> Result<serde_yaml::Value> {
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get("rr.yaml"))
        .context("ConfigMap without rr.yaml")?;
    Ok(serde_yaml::from_str(text)?)
}

/// `http.pool.num_workers` of the ConfigMap `name`; `None` while there is none.
pub async fn workers_in_config(api: &Api<ConfigMap>, name: &str) -> Result<Option<u64>> {
    Ok(match api.get_opt(name).await? {
        Some(cm) => rr_yaml(&cm)?["http"]["pool"]["num_workers"].as_u64(),
        None => None,
    })
}

/// The condition `type_` of the app `name`, if it has one.
pub async fn find_condition(
    api: &Api<PhpAppServer>,
    name: &str,
    type_: &str,
) -> Result<Option<Condition>> {
    Ok(api
        .get(name)
        .await?
        .status
        .unwrap_or_default()
        .conditions
        .into_iter()
        .find(|c| c.type_ == type_))
}

/// The status and reason of the condition `type_` of the app `name`.
pub async fn condition(
    api: &Api<PhpAppServer>,
    name: &str,
    type_: &str,
) -> Result<Option<(String, String)>> {
    Ok(find_condition(api, name, type_)
        .await?
        .map(|c| (c.status, c.reason)))
}

/// Waits until the condition `type_` of the app `name` has this status and reason.
pub async fn wait_for_condition(
    api: &Api<PhpAppServer>,
    name: &str,
    type_: &str,
    status: &str,
    reason: &str,
) -> Result<()> {
    let want = Some((status.to_owned(), reason.to_owned()));
    wait_for(WAIT, &format!("{type_}={status} {reason}"), || async {
        Ok(condition(api, name, type_).await? == want)
    })
    .await
}

/// Merges `spec` into the spec of the app `name`, as `kubectl patch --type merge` does.
pub async fn patch_spec(
    apps: &Api<PhpAppServer>,
    name: &str,
    spec: serde_json::Value,
) -> Result<()> {
    apps.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": spec })),
    )
    .await?;
    Ok(())
}

/// The pod template of the Deployment `name`.
pub async fn template_of(deployments: &Api<Deployment>, name: &str) -> Result<PodTemplateSpec> {
    Ok(deployments
        .get(name)
        .await?
        .spec
        .context("no spec")?
        .template)
}

/// Waits until the operator has made the Deployment `name`.
pub async fn wait_for_deployment(deployments: &Api<Deployment>, name: &str) -> Result<()> {
    wait_for(WAIT, &format!("the Deployment {name}"), || async {
        Ok(deployments.get_opt(name).await?.is_some())
    })
    .await
}

/// Plays the Deployment controller (none runs here): `replicas` pods of `name`, all
/// updated, ready and available.
pub async fn report_ready(deployments: &Api<Deployment>, name: &str, replicas: i32) -> Result<()> {
    deployments
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": DeploymentStatus {
                observed_generation: deployments.get(name).await?.metadata.generation,
                replicas: Some(replicas),
                ready_replicas: Some(replicas),
                available_replicas: Some(replicas),
                updated_replicas: Some(replicas),
                ..DeploymentStatus::default()
            }})),
        )
        .await?;
    Ok(())
}

/// Creates the pod `pod_name` from the template of the Deployment `shop`, as the
/// ReplicaSet controller would (no status: the caller plays the kubelet).
pub async fn pod_from_template(client: &Client, ns: &str, pod_name: &str) -> Result<()> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let template = template_of(&deployments, "shop").await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod = Pod {
        metadata: kube::api::ObjectMeta {
            name: Some(pod_name.into()),
            labels: template.metadata.and_then(|m| m.labels),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    };
    pods.create(&PostParams::default(), &pod).await?;
    Ok(())
}

/// Waits for an Event that `matches` (`what` names it in the timeout's error).
pub async fn wait_for_event(
    events: &Api<Event>,
    what: &str,
    matches: impl Fn(&Event) -> bool,
) -> Result<()> {
    wait_for(WAIT, what, || async {
        Ok(events
            .list(&Default::default())
            .await?
            .items
            .iter()
            .any(&matches))
    })
    .await
}

/// The common start of a test: a fresh namespace, an operator (`op-a`) watching it with a
/// fake metrics source, and the app `shop` (see [`app`]) created there.
pub struct Shop {
    pub client: Client,
    pub ns: String,
    pub fake: Arc<Fake>,
    pub op: Running,
    pub apps: Api<PhpAppServer>,
    /// The app as the API server created it.
    pub created: PhpAppServer,
}

impl Shop {
    /// The fake reports `sample` for `shop` from the start (before the operator runs);
    /// `None` where [`cluster`] skips.
    pub async fn start(
        prefix: &str,
        sample: Option<AppSample>,
        spec: serde_json::Value,
    ) -> Result<Option<Shop>> {
        let Some((client, ns)) = setup(prefix).await? else {
            return Ok(None);
        };
        let fake = Arc::new(Fake::new());
        if let Some(sample) = sample {
            fake.set(&ns, "shop", sample);
        }
        let op = start_operator(client.clone(), &ns, "op-a", fake.clone());
        let apps: Api<PhpAppServer> = Api::namespaced(client.clone(), &ns);
        let created = apps
            .create(&PostParams::default(), &app("shop", spec)?)
            .await?;
        Ok(Some(Shop {
            client,
            ns,
            fake,
            op,
            apps,
            created,
        }))
    }
}
