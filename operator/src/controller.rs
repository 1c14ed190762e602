//! The reconciler: observe → plan → apply → report, for one `PhpAppServer` at a time.
//!
//! * **observe**: when a tuning round is due, the app's pods (their IPs for the metrics source, OOM kills from their container statuses) and
//!   the window aggregates from the [`MetricsSource`].
//! * **plan**: [`crate::plan::plan`], pure.
//! * **apply**: ConfigMap, Deployment, Service and PodDisruptionBudget with server-side
//!   apply under one field manager. The ConfigMap goes first, so that a new Deployment's
//!   pods start with the new settings. The Deployment as the apply returns it gives the
//!   readiness.
//! * **report**: an Event per applied change (reason in words) and a metric; a Warning
//!   Event when the object becomes Degraded; the status, written only when it differs.
//!
//! A round that changes settings records them first: the status (`current`, the tuner's
//! memory) is written and the changes are announced *before* anything is applied, and the
//! apply then converges the owned objects to `status.current`. An operator killed in the
//! middle therefore leaves a successor that completes the same decision instead of
//! deciding again from a stale status — which would announce a change twice, or undo one
//! that already reached the pods. (The one window left, between the status write and the
//! Events, can lose an Event but never applies or announces anything twice.)
//!
//! The controller watches `PhpAppServer` objects through a generation predicate, so its
//! own status writes do not trigger reconciles (no storm), and the owned kinds, so that
//! drift and Deployment readiness do. Reconciles run with bounded concurrency (never two
//! for the same object) and failures back off per object, exponentially.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, predicates, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use pacer_crds::{PhpAppServer, PhpAppServerStatus};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::app_config::AppConfig;
use crate::metrics_source::{MetricsSource, PodTarget, Target};
use crate::plan::{self, DeploymentState, PlanInput, PodWaiting, TuningInput};
use crate::resources::{
    self, APP_LABEL, Inputs, MANAGER, SidecarDefaults, deployment::APP_CONTAINER,
};
use crate::telemetry::{ChangeLabels, Metrics, ResultLabels, SourceLabels};
use crate::tuning::Knob;

/// Where the time comes from (tests may fix it).
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Shortest and longest wait after a failed reconcile.
const BACKOFF_MIN: Duration = Duration::from_secs(2);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Operator-wide settings of the controller.
#[derive(Clone, Debug)]
pub struct ControllerSettings {
    /// Field manager of every write (one for all owned objects and the status).
    pub field_manager: String,
    /// Namespace to watch; `None` for all.
    pub namespace: Option<String>,
    /// Reconciles at once.
    pub concurrency: u16,
    /// Sidecar defaults for the generated pods.
    pub sidecar: SidecarDefaults,
    /// Identity in Events (`reportingInstance`).
    pub instance: String,
    /// Deliver memory-limit changes to running pods by in-place resize (`pods/resize`)
    /// instead of a rolling update, where the cluster allows it.
    pub in_place_resize: bool,
}

/// What every reconcile shares.
pub struct Context {
    client: Client,
    config: ControllerSettings,
    metrics_source: Arc<dyn MetricsSource>,
    /// For Warnings (kube's Recorder folds repeats of one reason into a series).
    recorder: Recorder,
    /// For tuning changes: each is its own Event (see [`announce`]).
    reporter: Reporter,
    metrics: Arc<Metrics>,
    clock: Clock,
    failures: Mutex<HashMap<ObjectRef<PhpAppServer>, u32>>,
    /// The last status this leader wrote, by object uid. The watch cache can lag behind our
    /// own write (a reconcile queued by the write's echoes may start before the status
    /// update arrives), and deciding again from the stale status would repeat a tuning
    /// round. Only the leader writes the status, so within one term this is never older
    /// than the cache; a new term starts empty.
    written: Mutex<HashMap<String, PhpAppServerStatus>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("config", &self.config)
            .field("metrics_source", &self.metrics_source)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context with the system clock.
    #[must_use]
    pub fn new(
        client: Client,
        config: ControllerSettings,
        metrics_source: Arc<dyn MetricsSource>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let reporter = Reporter {
            controller: MANAGER.to_owned(),
            instance: Some(config.instance.clone()),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter.clone()),
            reporter,
            client,
            config,
            metrics_source,
            metrics,
            clock: Arc::new(Timestamp::now),
            failures: Mutex::new(HashMap::new()),
            written: Mutex::new(HashMap::new()),
        }
    }

    /// Replaces the clock.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
}

fn deployment_state(d: &Deployment) -> DeploymentState {
    let status = d.status.as_ref();
    DeploymentState {
        desired: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        replicas: status.and_then(|s| s.replicas).unwrap_or(0),
        ready: status.and_then(|s| s.ready_replicas).unwrap_or(0),
        waiting: None,
    }
}

/// The first container (init containers first) of a live pod that waits for a reason
/// other than being created, as the kubelet reports it.
fn pod_waiting(pods: &[Pod]) -> Option<PodWaiting> {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .find_map(|pod| {
            let status = pod.status.as_ref()?;
            let containers = status.init_container_statuses.iter().flatten();
            containers
                .chain(status.container_statuses.iter().flatten())
                .find_map(|cs| {
                    let waiting = cs.state.as_ref()?.waiting.as_ref()?;
                    let reason = waiting.reason.clone()?;
                    if matches!(reason.as_str(), "ContainerCreating" | "PodInitializing") {
                        return None;
                    }
                    let message = waiting.message.clone().unwrap_or_default();
                    Some(PodWaiting {
                        detail: format!(
                            "pod {}, container {}: {reason}{}{message}",
                            pod.name_any(),
                            cs.name,
                            if message.is_empty() { "" } else { ": " },
                        ),
                        reason,
                    })
                })
        })
}

/// Running, addressable, not terminating pods, and the newest OOM kill of the app container.
fn pod_targets(pods: &[Pod]) -> (Vec<PodTarget>, Option<Timestamp>) {
    let mut targets = Vec::new();
    let mut newest_oom: Option<Timestamp> = None;
    for pod in pods {
        let status = pod.status.as_ref();
        for cs in status
            .and_then(|s| s.container_statuses.as_ref())
            .into_iter()
            .flatten()
            .filter(|cs| cs.name == APP_CONTAINER)
        {
            let terminated = [cs.last_state.as_ref(), cs.state.as_ref()]
                .into_iter()
                .flatten()
                .filter_map(|s| s.terminated.as_ref())
                .filter(|t| t.reason.as_deref() == Some("OOMKilled"))
                .filter_map(|t| t.finished_at.as_ref().map(|f| f.0));
            for at in terminated {
                newest_oom = Some(newest_oom.map_or(at, |n| n.max(at)));
            }
        }
        let running = status.and_then(|s| s.phase.as_deref()) == Some("Running");
        if running && pod.metadata.deletion_timestamp.is_none() {
            targets.push(PodTarget {
                name: pod.name_any(),
                ip: status.and_then(|s| s.pod_ip.clone()),
            });
        }
    }
    targets.sort_by(|a, b| a.name.cmp(&b.name));
    (targets, newest_oom)
}

/// Server-side apply; returns the object as the server holds it afterwards.
async fn apply<K>(api: &Api<K>, name: &str, object: &K, manager: &str) -> Result<K, Error>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
    K::DynamicType: Default,
{
    api.patch(
        name,
        &PatchParams::apply(manager).force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(|source| Error::Apply {
        kind: K::kind(&K::DynamicType::default()).into_owned(),
        name: name.to_owned(),
        source,
    })
}

#[tracing::instrument(skip_all, fields(namespace = %app.namespace().unwrap_or_default(), name = %app.name_any()))]
async fn reconcile(app: Arc<PhpAppServer>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let result = reconcile_inner(&app, &ctx).await;
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    let label = ResultLabels {
        result: if result.is_ok() { "ok" } else { "error" },
    };
    ctx.metrics.reconciliations.get_or_create(&label).inc();
    if result.is_ok() {
        ctx.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&ObjectRef::from_obj(app.as_ref()));
    }
    result
}

async fn reconcile_inner(app: &PhpAppServer, ctx: &Context) -> Result<Action, Error> {
    let name = app.name_any();
    let namespace = app.namespace().ok_or(Error::MissingNamespace)?;
    if app.metadata.deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove what we made.
        ctx.metrics_source.forget(&namespace, &name);
        if let Some(uid) = app.uid() {
            ctx.written
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&uid);
        }
        return Ok(Action::await_change());
    }
    let now = (ctx.clock)();
    let apps: Api<PhpAppServer> = Api::namespaced(ctx.client.clone(), &namespace);
    let uid = app.uid().ok_or(Error::MissingNamespace)?;
    let previous = ctx
        .written
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&uid)
        .cloned()
        .unwrap_or_else(|| app.status.clone().unwrap_or_default());
    let generation = app.metadata.generation;

    let config = match AppConfig::from_spec(&app.spec) {
        Ok(config) => config,
        Err(error) => {
            tracing::warn!(%error, "spec does not parse");
            let mut status = previous.clone();
            status.observed_generation = generation;
            crate::status::set_condition(
                &mut status.conditions,
                crate::status::DEGRADED,
                crate::status::Truth::True,
                "InvalidSpec",
                &error.to_string(),
                generation,
                now,
            );
            write_status(&apps, &name, &previous, &status, &ctx.config.field_manager).await?;
            remember(ctx, uid, status);
            return Ok(Action::requeue(plan::IDLE_RESYNC));
        }
    };

    // Observe.
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut pods: Option<Vec<Pod>> = None;
    let live_deployment = deployments
        .get_opt(&name)
        .await
        .map_err(|source| Error::Read {
            what: "Deployment",
            source,
        })?;
    let tuning = if plan::tuning_due(&config, &previous, now) {
        let listed = list_pods(&pods_api, &name).await?;
        let (targets, newest_oom) = pod_targets(&listed);
        pods = Some(listed);
        let target = Target {
            namespace: namespace.clone(),
            app: name.clone(),
            pods: targets,
            source: config.source,
            prometheus_url: config.prometheus_url.clone(),
            window: config.sample_window,
            now,
        };
        let sample = ctx.metrics_source.sample(&target).await.map_err(|error| {
            tracing::warn!(%error, "reading metrics failed");
            let source = match config.source {
                pacer_crds::MetricsSourceKind::Direct => "Direct",
                pacer_crds::MetricsSourceKind::Prometheus => "Prometheus",
            };
            ctx.metrics
                .metrics_errors
                .get_or_create(&SourceLabels { source })
                .inc();
            error.to_string()
        });
        Some(TuningInput { sample, newest_oom })
    } else {
        None
    };

    // Plan.
    let planned = plan::plan(PlanInput {
        generation,
        config: &config,
        previous: &previous,
        tuning,
        now,
    });

    // Record and announce a decision before acting on it (see the module docs).
    let mut previous = previous;
    if !planned.changes.is_empty() {
        write_status(
            &apps,
            &name,
            &previous,
            &planned.status,
            &ctx.config.field_manager,
        )
        .await?;
        remember(ctx, uid.clone(), planned.status.clone());
        previous = planned.status.clone();
        let reference = app.object_ref(&());
        for change in planned
            .changes
            .iter()
            .filter(|c| c.knob != Knob::MemoryLimit)
        {
            announce(ctx, &reference, change, change.to_string()).await;
        }
    }

    // Apply.
    let mut owner = app
        .controller_owner_ref(&())
        .ok_or(Error::MissingNamespace)?;
    // Foreground deletion of the PhpAppServer waits for its objects (needs the
    // `phpappservers/finalizers` update permission where that admission check is on).
    owner.block_owner_deletion = Some(true);
    let inputs = Inputs {
        name: &name,
        namespace: &namespace,
        owner,
        spec: &app.spec,
        settings: &planned.settings,
        termination_grace_seconds: config.termination_grace_seconds,
        sidecar: &ctx.config.sidecar,
    };
    let manager = ctx.config.field_manager.as_str();
    let config_map = resources::simple::config_map(&inputs)?;
    let _: ConfigMap = apply(
        &Api::<ConfigMap>::namespaced(ctx.client.clone(), &namespace),
        &resources::config_map_name(&name),
        &config_map,
        manager,
    )
    .await?;
    // The memory limit goes to running pods in place when the cluster can (no restart);
    // the pod template keeps its value unless the pods roll anyway. See
    // `resources::deployment::template_memory`.
    let desired_memory = planned.settings.memory_limit;
    let wanted = resources::deployment::deployment(&inputs)?;
    let template_memory = resources::deployment::template_memory(
        desired_memory,
        live_deployment.as_ref(),
        &wanted,
        ctx.config.in_place_resize,
    );
    let mut delivery = "by a rolling update of the pods";
    let mut deployment = if template_memory == desired_memory {
        apply(&deployments, &name, &wanted, manager).await?
    } else {
        let mut held = planned.settings;
        held.memory_limit = template_memory;
        let held_inputs = Inputs {
            settings: &held,
            ..inputs.clone()
        };
        let applied = apply(
            &deployments,
            &name,
            &resources::deployment::deployment(&held_inputs)?,
            manager,
        )
        .await?;
        delivery = "in place, without restarting the pods";
        applied
    };
    if template_memory != desired_memory {
        let listed = match pods.take() {
            Some(listed) => listed,
            None => list_pods(&pods_api, &name).await?,
        };
        if let Err(refusal) = resize_pods(&pods_api, &listed, desired_memory).await? {
            tracing::warn!(reason = %refusal, "in-place resize refused; rolling the pods instead");
            deployment = apply(&deployments, &name, &wanted, manager).await?;
            delivery = "by a rolling update of the pods (in-place resize was refused)";
        }
    }
    let mut status = planned.status;
    let mut state = deployment_state(&deployment);
    if state.ready < state.desired {
        let listed = match pods.take() {
            Some(listed) => listed,
            None => list_pods(&pods_api, &name).await?,
        };
        state.waiting = pod_waiting(&listed);
    }
    plan::readiness(&mut status, Some(state), generation, now);
    let _: Service = apply(
        &Api::<Service>::namespaced(ctx.client.clone(), &namespace),
        &name,
        &resources::simple::service(&inputs),
        manager,
    )
    .await?;
    let _: PodDisruptionBudget = apply(
        &Api::<PodDisruptionBudget>::namespaced(ctx.client.clone(), &namespace),
        &name,
        &resources::simple::pod_disruption_budget(&inputs),
        manager,
    )
    .await?;

    // Report.
    let reference = app.object_ref(&());
    for change in planned
        .changes
        .iter()
        .filter(|c| c.knob == Knob::MemoryLimit)
    {
        // Announced after the apply: the note says how it was delivered.
        announce(
            ctx,
            &reference,
            change,
            format!("{change}; delivered {delivery}"),
        )
        .await;
    }
    if let Some((reason, message)) = &planned.warning {
        let event = Event {
            type_: EventType::Warning,
            reason: reason.clone(),
            note: Some(truncate_note(message)),
            action: "Tune".to_owned(),
            secondary: None,
        };
        if let Err(error) = ctx.recorder.publish(&event, &reference).await {
            tracing::warn!(%error, "publishing an event failed");
        }
    }
    write_status(&apps, &name, &previous, &status, manager).await?;
    remember(ctx, uid, status);
    Ok(Action::requeue(planned.requeue_after))
}

/// Logs, counts and publishes one applied tuning change.
///
/// Each change is its own Event, published through a fresh Recorder: kube's Recorder folds
/// Events of the same reason into one series for six minutes, keeping the first note, so
/// "workers 4 → 3" would be shown as another "workers 5 → 4".
async fn announce(
    ctx: &Context,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    change: &crate::tuning::Change,
    note: String,
) {
    tracing::info!(setting = change.knob.as_str(), from = change.from, to = change.to, reason = %change.reason, "tuned");
    ctx.metrics
        .tuning_changes
        .get_or_create(&ChangeLabels {
            setting: change.knob.as_str(),
            direction: if change.is_increase() { "up" } else { "down" },
        })
        .inc();
    let event = Event {
        type_: EventType::Normal,
        reason: change.event_reason().to_owned(),
        note: Some(truncate_note(&note)),
        action: "Tune".to_owned(),
        secondary: None,
    };
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    if let Err(error) = recorder.publish(&event, reference).await {
        tracing::warn!(%error, "publishing an event failed");
    }
}

fn remember(ctx: &Context, uid: String, status: PhpAppServerStatus) {
    ctx.written
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(uid, status);
}

async fn list_pods(api: &Api<Pod>, app: &str) -> Result<Vec<Pod>, Error> {
    api.list(&ListParams::default().labels(&format!("{APP_LABEL}={app}")))
        .await
        .map(|list| list.items)
        .map_err(|source| Error::Read {
            what: "Pods",
            source,
        })
}

/// The memory limit of a pod's app container, bytes.
fn pod_memory_limit(pod: &Pod) -> Option<u64> {
    let container = pod
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == APP_CONTAINER)?;
    let quantity = container
        .resources
        .as_ref()?
        .limits
        .as_ref()?
        .get("memory")?;
    crate::units::parse_memory(&quantity.0).ok()
}

/// Resizes the app container of every live pod whose memory limit differs, through the
/// `pods/resize` subresource. `Ok(Err(reason))` when the cluster refuses in-place resize
/// (no such subresource, not allowed, or not valid for these pods): the caller rolls the
/// pods instead. Other failures are errors (retried with backoff).
async fn resize_pods(
    api: &Api<Pod>,
    pods: &[Pod],
    memory: u64,
) -> Result<Result<(), String>, Error> {
    let quantity = crate::units::format_memory(memory);
    let patch = serde_json::json!({"spec": {"containers": [{
        "name": APP_CONTAINER,
        "resources": {"requests": {"memory": quantity}, "limits": {"memory": quantity}},
    }]}});
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some()
            || pod_memory_limit(pod).is_none_or(|m| m == memory)
        {
            continue;
        }
        let name = pod.name_any();
        match api
            .patch_subresource(
                "resize",
                &name,
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
        {
            Ok(_) => tracing::info!(pod = %name, memory = %quantity, "resized in place"),
            Err(kube::Error::Api(status)) if matches!(status.code, 403 | 404 | 405 | 422) => {
                return Ok(Err(format!("{}: {}", status.code, status.message)));
            }
            // Gone since the list: nothing to resize.
            Err(kube::Error::Api(status)) if status.code == 409 || status.reason == "NotFound" => {}
            Err(source) => return Err(Error::Resize { pod: name, source }),
        }
    }
    Ok(Ok(()))
}

fn truncate_note(text: &str) -> String {
    // Event notes are capped at 1 KiB by the API.
    if text.len() <= 1000 {
        return text.to_owned();
    }
    let mut end = 1000;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Writes the status with server-side apply, only when it changed (so that a reconcile
/// with nothing new to say costs no write and wakes no watcher).
async fn write_status(
    apps: &Api<PhpAppServer>,
    name: &str,
    previous: &PhpAppServerStatus,
    status: &PhpAppServerStatus,
    manager: &str,
) -> Result<(), Error> {
    if previous == status {
        return Ok(());
    }
    let body = serde_json::json!({
        "apiVersion": "pacer.dev/v1alpha1",
        "kind": "PhpAppServer",
        "status": status,
    });
    match apps
        .patch_status(
            name,
            &PatchParams::apply(manager).force(),
            &Patch::Apply(&body),
        )
        .await
    {
        Ok(_) => Ok(()),
        // Deleted while we were reconciling: there is no status left to write.
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(Error::WriteStatus { source }),
    }
}

fn error_policy(app: Arc<PhpAppServer>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = ObjectRef::from_obj(app.as_ref());
    let failures = {
        let mut map = ctx
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = map.entry(key).or_insert(0);
        *count = count.saturating_add(1);
        *count
    };
    let delay = backoff(failures);
    tracing::warn!(%error, failures, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Exponential backoff per object: 2 s, 4 s, 8 s … up to 5 minutes.
#[must_use]
pub fn backoff(failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    BACKOFF_MIN.saturating_mul(factor).min(BACKOFF_MAX)
}

fn owned_watch() -> watcher::Config {
    watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGER}"))
}

/// Runs the controller until `stop` completes; in-flight reconciles finish first.
pub async fn run(
    ctx: Arc<Context>,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let (apps, deployments, config_maps, services, pdbs) = match &ctx.config.namespace {
        Some(ns) => (
            Api::<PhpAppServer>::namespaced(client.clone(), ns),
            Api::<Deployment>::namespaced(client.clone(), ns),
            Api::<ConfigMap>::namespaced(client.clone(), ns),
            Api::<Service>::namespaced(client.clone(), ns),
            Api::<PodDisruptionBudget>::namespaced(client.clone(), ns),
        ),
        None => (
            Api::<PhpAppServer>::all(client.clone()),
            Api::<Deployment>::all(client.clone()),
            Api::<ConfigMap>::all(client.clone()),
            Api::<Service>::all(client.clone()),
            Api::<PodDisruptionBudget>::all(client.clone()),
        ),
    };
    let (reader, writer) = reflector::store();
    // Status writes do not change the generation: filtering on it keeps the operator's
    // own status updates from waking it.
    let trigger = watcher(apps, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
    Controller::for_stream(trigger, reader)
        .owns(deployments, owned_watch())
        .owns(config_maps, owned_watch())
        .owns(services, owned_watch())
        .owns(pdbs, owned_watch())
        .with_config(ControllerConfig::default().concurrency(ctx.config.concurrency.max(1)))
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "controller event");
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStatus, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn pod(name: &str, phase: &str, ip: Option<&str>, oom_at: Option<i64>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            status: Some(PodStatus {
                phase: Some(phase.into()),
                pod_ip: ip.map(str::to_owned),
                container_statuses: Some(vec![ContainerStatus {
                    name: APP_CONTAINER.into(),
                    last_state: oom_at.map(|s| ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            reason: Some("OOMKilled".into()),
                            finished_at: Some(Time(Timestamp::from_second(s).unwrap())),
                            exit_code: 137,
                            ..ContainerStateTerminated::default()
                        }),
                        ..ContainerState::default()
                    }),
                    ..ContainerStatus::default()
                }]),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    #[test]
    fn running_pods_are_targets_and_oom_kills_are_found() {
        let pods = [
            pod("b", "Running", Some("10.0.0.2"), Some(1_700_000_100)),
            pod("a", "Running", Some("10.0.0.1"), None),
            pod("c", "Pending", None, Some(1_700_000_050)),
        ];
        let (targets, oom) = pod_targets(&pods);
        let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(targets[0].ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(oom, Some(Timestamp::from_second(1_700_000_100).unwrap()));
    }

    #[test]
    fn a_waiting_container_explains_a_pod_that_is_not_ready() {
        let waiting = |name: &str, init: &str, app: &str| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name},
                "status": {
                    "phase": "Pending",
                    "initContainerStatuses": [{"name": "install-pacer", "image": "p", "imageID": "",
                        "ready": false, "restartCount": 0, "state": {"waiting": {"reason": init}}}],
                    "containerStatuses": [{"name": "app", "image": "a", "imageID": "",
                        "ready": false, "restartCount": 0,
                        "state": {"waiting": {"reason": app, "message": "Back-off pulling image \"a\""}}}],
                }
            }))
            .unwrap()
        };
        // Being created is no reason to report.
        assert_eq!(
            pod_waiting(&[waiting("p0", "PodInitializing", "PodInitializing")]),
            None
        );
        let found = pod_waiting(&[
            waiting("p0", "PodInitializing", "ContainerCreating"),
            waiting("p1", "PodInitializing", "ImagePullBackOff"),
        ])
        .unwrap();
        assert_eq!(found.reason, "ImagePullBackOff");
        assert_eq!(
            found.detail,
            "pod p1, container app: ImagePullBackOff: Back-off pulling image \"a\""
        );
        // Init containers first: the app cannot start before them.
        let found = pod_waiting(&[waiting("p2", "ErrImageNeverPull", "PodInitializing")]).unwrap();
        assert_eq!(found.reason, "ErrImageNeverPull");
        assert!(
            found.detail.starts_with("pod p2, container install-pacer"),
            "{}",
            found.detail
        );
    }

    #[test]
    fn backoff_doubles_to_a_ceiling() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(2), Duration::from_secs(4));
        assert_eq!(backoff(5), Duration::from_secs(32));
        assert_eq!(backoff(50), BACKOFF_MAX);
    }

    #[test]
    fn long_notes_are_cut() {
        assert_eq!(truncate_note("short"), "short");
        assert!(truncate_note(&"x".repeat(5000)).len() <= 1003);
    }
}
