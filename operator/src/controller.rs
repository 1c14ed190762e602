//! The controller: kube-runtime wiring and one reconcile as
//! observe → plan → apply → report, each in its own module.
//!
//! * [`crate::observe`] reads the live Deployment, the pods and (when a tuning round is
//!   due) the metrics.
//! * [`crate::plan`] decides, purely: settings, status, Events to publish, and the desired
//!   objects from one function ([`crate::resources::desired`]).
//! * [`crate::report::record`] writes the decision to the status and announces it before
//!   anything is applied (write-ahead; see [`crate::report`]).
//! * [`crate::apply`] converges the owned objects with server-side apply (one field
//!   manager) and chooses between in-place resize and a rollout for memory limits.
//! * [`crate::report::finish`] publishes what only the apply could tell and writes the
//!   status when it changed.
//!
//! The controller watches `PhpAppServer` objects through a generation predicate, so its
//! own status writes do not trigger reconciles (no storm), the owned kinds, so that drift
//! and Deployment progress do, and the app's pods, so that a pod stuck in
//! ImagePullBackOff or CrashLoopBackOff turns Ready False in the next reconcile.
//! Reconciles run with bounded concurrency (never two for the same object) and failures
//! back off per object, exponentially.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, predicates, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use pacer_crds::{PhpAppServer, PhpAppServerStatus};

use crate::Error;
use crate::app_config::AppConfig;
use crate::metrics_source::MetricsSource;
use crate::plan::{self, Owner, PlanInput};
use crate::resources::{APP_LABEL, MANAGER, SidecarDefaults};
use crate::telemetry::{Metrics, ResultLabels};
use crate::{apply, observe, report};

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
    /// Namespaces to watch (one watch each, so that RBAC can be a Role in each); empty
    /// for all.
    pub namespaces: Vec<String>,
    /// With all namespaces watched: reconcile only apps in namespaces whose labels match
    /// this label selector (the API server evaluates it).
    pub namespace_selector: Option<String>,
    /// Reconciles at once.
    pub concurrency: u16,
    /// Sidecar defaults for the generated pods.
    pub sidecar: SidecarDefaults,
    /// Identity in Events (`reportingInstance`).
    pub instance: String,
    /// Deliver memory-limit changes to running pods by in-place resize (`pods/resize`)
    /// instead of a rolling update, where the cluster allows it.
    pub in_place_resize: bool,
    /// The Prometheus URLs an app's `tuning.metrics.prometheusUrl` may name (prefixes,
    /// see [`crate::metrics_source::url_allowed`]); empty: none, the Prometheus source is
    /// refused. A tenant's URL must not turn the operator into a request forwarder.
    pub prometheus_allowed_urls: Vec<String>,
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

    /// The API client.
    #[must_use]
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The metrics source.
    #[must_use]
    pub fn metrics_source(&self) -> &dyn MetricsSource {
        self.metrics_source.as_ref()
    }

    /// The operator's own metrics.
    #[must_use]
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The Recorder for Warnings.
    #[must_use]
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// The Events' reporter identity.
    #[must_use]
    pub fn reporter(&self) -> &Reporter {
        &self.reporter
    }

    /// The operator-wide settings.
    #[must_use]
    pub fn settings(&self) -> &ControllerSettings {
        &self.config
    }

    /// The field manager of every write.
    #[must_use]
    pub fn field_manager(&self) -> &str {
        &self.config.field_manager
    }

    /// Remembers the status this leader wrote for the object with `uid`.
    pub fn remember(&self, uid: String, status: PhpAppServerStatus) {
        self.written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(uid, status);
    }
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
    let uid = app.uid().ok_or(Error::MissingNamespace)?;
    if app.metadata.deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove what we made.
        ctx.metrics_source.forget(&namespace, &name);
        ctx.metrics.forget_app(&namespace, &name);
        ctx.written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&uid);
        return Ok(Action::await_change());
    }
    if let Some(selector) = &ctx.config.namespace_selector
        && !namespace_selected(ctx, &namespace, selector).await?
    {
        tracing::debug!(%selector, "namespace not selected");
        return Ok(Action::requeue(plan::IDLE_RESYNC));
    }
    let now = (ctx.clock)();
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
            report::write_status(ctx, app, &previous, &status).await?;
            return Ok(Action::requeue(plan::IDLE_RESYNC));
        }
    };

    let observed = observe::observe(ctx, app, &config, &previous, now).await?;
    let paused = plan::paused(app);

    let mut reference = app
        .controller_owner_ref(&())
        .ok_or(Error::MissingNamespace)?;
    // Foreground deletion of the PhpAppServer waits for its objects (needs the
    // `phpappservers/finalizers` update permission where that admission check is on).
    reference.block_owner_deletion = Some(true);
    let planned = plan::plan(PlanInput {
        owner: Owner {
            name: &name,
            namespace: &namespace,
            reference,
            spec: &app.spec,
            sidecar: &ctx.config.sidecar,
        },
        generation,
        config: &config,
        previous: &previous,
        tuning: observed.tuning.clone(),
        deployment: observed.deployment_state,
        pod_problems: &observed.pod_problems,
        autoscaler: observed.autoscaler.as_ref(),
        paused,
        now,
    })?;

    if paused {
        // Nothing is written to the owned objects; the status still tells the truth.
        report::write_status(ctx, app, &previous, &planned.status).await?;
        return Ok(Action::requeue(planned.requeue_after));
    }
    let written = report::record(ctx, app, &previous, &planned).await?;
    let applied = apply::apply(
        apply::Target {
            client: &ctx.client,
            namespace: &namespace,
            manager: &ctx.config.field_manager,
            in_place_resize: ctx.config.in_place_resize,
            container: &app.spec.container,
        },
        &planned.desired,
        planned.settings.memory_limit,
        observed.deployment.as_ref(),
        &observed.pods,
    )
    .await?;
    report::finish(ctx, app, &written, &planned, &applied).await?;
    ctx.metrics.record_app(
        &namespace,
        &name,
        &report::app_view(&planned.status, &config, observed.newest_oom),
    );
    Ok(Action::requeue(planned.requeue_after))
}

/// Whether the namespace's labels match `selector` (a `kubectl -l` label selector,
/// evaluated by the API server).
async fn namespace_selected(ctx: &Context, namespace: &str, selector: &str) -> Result<bool, Error> {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(ctx.client.clone());
    let params = kube::api::ListParams::default()
        .labels(selector)
        .fields(&format!("metadata.name={namespace}"));
    namespaces
        .list(&params)
        .await
        .map(|list| !list.items.is_empty())
        .map_err(|source| Error::Read {
            what: "Namespaces",
            source,
        })
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

/// Status writes change neither the generation nor the pause annotation: filtering on
/// both keeps the operator's own status updates from waking it, while a spec change or
/// `pacer.dev/paused` (metadata only) still does.
fn generation_and_pause(app: &PhpAppServer) -> Option<u64> {
    let generation = predicates::generation(app)?;
    Some(
        generation
            .wrapping_mul(2)
            .wrapping_add(u64::from(plan::paused(app))),
    )
}

fn owned_watch() -> watcher::Config {
    watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGER}"))
}

/// Runs the controller until `stop` completes; in-flight reconciles finish first. With a
/// list of namespaces, one controller per namespace (each watches only its own).
pub async fn run(
    ctx: Arc<Context>,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let token = tokio_util::sync::CancellationToken::new();
    let trigger = token.clone();
    let relay = tokio::spawn(async move {
        stop.await;
        trigger.cancel();
    });
    let scopes: Vec<Option<String>> = if ctx.config.namespaces.is_empty() {
        vec![None]
    } else {
        ctx.config.namespaces.iter().cloned().map(Some).collect()
    };
    futures_util::future::join_all(
        scopes
            .into_iter()
            .map(|scope| run_scope(ctx.clone(), scope, token.clone().cancelled_owned())),
    )
    .await;
    relay.abort();
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

async fn run_scope(
    ctx: Arc<Context>,
    namespace: Option<String>,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let ns = namespace.as_deref();
    let apps: Api<PhpAppServer> = api(&client, ns);
    let (reader, writer) = reflector::store();
    // Status writes do not change the generation: filtering on it keeps the operator's
    // own status updates from waking it.
    let trigger = watcher(apps, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(generation_and_pause, Default::default());
    Controller::for_stream(trigger, reader)
        .owns(api::<Deployment>(&client, ns), owned_watch())
        .owns(api::<ConfigMap>(&client, ns), owned_watch())
        .owns(api::<Service>(&client, ns), owned_watch())
        .owns(api::<PodDisruptionBudget>(&client, ns), owned_watch())
        // Pods belong to ReplicaSets, not to us: mapped back by their app label.
        .watches(api::<Pod>(&client, ns), owned_watch(), |pod: Pod| {
            let app = pod.labels().get(APP_LABEL)?.clone();
            Some(ObjectRef::new(&app).within(&pod.namespace()?))
        })
        // An HPA appearing (or KEDA's, for a ScaledObject) hands the pods' count over.
        .watches(
            api::<HorizontalPodAutoscaler>(&client, ns),
            watcher::Config::default(),
            |hpa: HorizontalPodAutoscaler| {
                let target = &hpa.spec.as_ref()?.scale_target_ref;
                let namespace = hpa.namespace()?;
                matches!(target.kind.as_str(), "PhpAppServer" | "Deployment")
                    .then(|| ObjectRef::new(&target.name).within(&namespace))
            },
        )
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

    #[test]
    fn backoff_doubles_to_a_ceiling() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(2), Duration::from_secs(4));
        assert_eq!(backoff(5), Duration::from_secs(32));
        assert_eq!(backoff(50), BACKOFF_MAX);
    }
}
