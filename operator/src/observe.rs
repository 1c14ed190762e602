//! Observe: everything a reconcile reads, turned into plain data for [`crate::plan`].
//!
//! Reads the live Deployment and the app's pods on every reconcile (the pods carry the
//! reasons a Ready condition must name: ImagePullBackOff, CrashLoopBackOff,
//! Unschedulable, OOMKilled), and the window aggregates from the [`MetricsSource`] when a
//! tuning round is due. The conversions from Kubernetes objects to plain data
//! ([`deployment_state`], [`pod_targets`], [`pod_problem`]) are pure and tested here.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodStatus};
use kube::api::{DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, ResourceExt};

use crate::Error;
use crate::app_config::AppConfig;
use crate::controller::Context;
use crate::metrics_source::{PodTarget, Target};
use crate::plan::{self, Autoscaler, AutoscalerKind, DeploymentState, PodProblem, TuningInput};
use crate::resources::APP_LABEL;
use crate::telemetry::SourceLabels;

/// What one reconcile saw.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// The Deployment as it is, if it exists.
    pub deployment: Option<Deployment>,
    /// The app's pods (for in-place resizes).
    pub pods: Vec<Pod>,
    /// The Deployment's counts and rollout state.
    pub deployment_state: Option<DeploymentState>,
    /// Problems the pods report, worst first.
    pub pod_problems: Vec<PodProblem>,
    /// Present when a tuning round ran.
    pub tuning: Option<TuningInput>,
    /// Finish time of the newest OOM kill of an app container.
    pub newest_oom: Option<Timestamp>,
    /// An HPA or KEDA ScaledObject that targets the app or its Deployment.
    pub autoscaler: Option<Autoscaler>,
}

/// KEDA's ScaledObject (`keda.sh/v1alpha1`); read as a dynamic object, so the operator
/// works where KEDA is not installed.
fn scaled_objects(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject");
    Api::namespaced_with(client.clone(), namespace, &ApiResource::from_gvk(&gvk))
}

/// Which scale target an autoscaler names: the PhpAppServer (`true`) or its Deployment
/// (`false`), or neither.
#[must_use]
pub fn targets(app: &str, api_version: &str, kind: &str, name: &str) -> Option<bool> {
    if name != app {
        return None;
    }
    let group = api_version.split_once('/').map_or("", |(g, _)| g);
    match (group, kind) {
        (pacer_crds::GROUP, "PhpAppServer") => Some(true),
        ("apps", "Deployment") => Some(false),
        _ => None,
    }
}

async fn autoscaler(
    ctx: &Context,
    name: &str,
    namespace: &str,
) -> Result<Option<Autoscaler>, Error> {
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client().clone(), namespace);
    let mut found = None;
    for hpa in hpas
        .list(&ListParams::default())
        .await
        .map_err(|source| Error::Read {
            what: "HorizontalPodAutoscalers",
            source,
        })?
        .items
    {
        let Some(target) = hpa.spec.as_ref().map(|s| &s.scale_target_ref) else {
            continue;
        };
        let api_version = target.api_version.as_deref().unwrap_or_default();
        if let Some(app) = targets(name, api_version, &target.kind, &target.name) {
            found = Some(Autoscaler {
                kind: AutoscalerKind::HorizontalPodAutoscaler,
                name: hpa.name_any(),
                targets_app: app,
            });
            break;
        }
    }
    // A ScaledObject says more than the HPA KEDA makes for it.
    match scaled_objects(ctx.client(), namespace)
        .list(&ListParams::default())
        .await
    {
        Ok(list) => {
            for object in list.items {
                let target = &object.data["spec"]["scaleTargetRef"];
                let api_version = target["apiVersion"].as_str().unwrap_or("apps/v1");
                let kind = target["kind"].as_str().unwrap_or("Deployment");
                let target_name = target["name"].as_str().unwrap_or_default();
                if let Some(app) = targets(name, api_version, kind, target_name) {
                    return Ok(Some(Autoscaler {
                        kind: AutoscalerKind::ScaledObject,
                        name: object.name_any(),
                        targets_app: app,
                    }));
                }
            }
        }
        // KEDA is not installed, or we may not read its objects: nothing to see.
        Err(kube::Error::Api(status)) if matches!(status.code, 403 | 404) => {}
        Err(source) => {
            return Err(Error::Read {
                what: "ScaledObjects",
                source,
            });
        }
    }
    Ok(found)
}

/// Reads what the plan needs.
///
/// # Errors
/// [`Error::Read`] when the API cannot be read (retried with backoff); a metrics source
/// that fails is not an error but an observation (the plan reports it).
pub async fn observe(
    ctx: &Context,
    app: &pacer_crds::PhpAppServer,
    config: &AppConfig,
    previous: &pacer_crds::PhpAppServerStatus,
    now: Timestamp,
) -> Result<Observed, Error> {
    let name = app.name_any();
    let name = name.as_str();
    let namespace = app.namespace().ok_or(Error::MissingNamespace)?;
    let namespace = namespace.as_str();
    let container = app.spec.container.as_str();
    let deployments: Api<Deployment> = Api::namespaced(ctx.client().clone(), namespace);
    let pods_api: Api<Pod> = Api::namespaced(ctx.client().clone(), namespace);
    let deployment = deployments
        .get_opt(name)
        .await
        .map_err(|source| Error::Read {
            what: "Deployment",
            source,
        })?;
    let pods = pods_api
        .list(&ListParams::default().labels(&format!("{APP_LABEL}={name}")))
        .await
        .map(|list| list.items)
        .map_err(|source| Error::Read {
            what: "Pods",
            source,
        })?;
    let (targets, newest_oom) = pod_targets(&pods, container);
    let tuning = if !plan::paused(app) && plan::tuning_due(config, previous, now) {
        let sample = match prometheus_access(ctx, app, namespace, config).await {
            Ok(bearer_token) => {
                let target = Target {
                    namespace: namespace.to_owned(),
                    app: name.to_owned(),
                    pods: targets.clone(),
                    source: config.source,
                    prometheus_url: config.prometheus_url.clone(),
                    bearer_token,
                    window: config.sample_window,
                    now,
                };
                ctx.metrics_source().sample(&target).await
            }
            Err(refusal) => Err(refusal),
        };
        let sample = sample.map_err(|error| {
            tracing::warn!(%error, "reading metrics failed");
            let source = match config.source {
                pacer_crds::MetricsSourceKind::Direct => "Direct",
                pacer_crds::MetricsSourceKind::Prometheus => "Prometheus",
            };
            ctx.metrics()
                .metrics_errors
                .get_or_create(&SourceLabels { source })
                .inc();
            error.to_string()
        });
        let jobs_depth = jobs_depth(ctx, app, namespace, config, now).await;
        Some(TuningInput {
            sample,
            newest_oom,
            pods: targets,
            jobs_depth,
        })
    } else {
        None
    };
    let mut pod_problems: Vec<PodProblem> = pods.iter().filter_map(pod_problem).collect();
    pod_problems.sort_by_key(|p| (p.severity(), p.pod.clone()));
    let autoscaler = autoscaler(ctx, name, namespace).await?;
    Ok(Observed {
        autoscaler,
        deployment_state: deployment.as_ref().map(deployment_state),
        deployment,
        pods,
        pod_problems,
        tuning,
        newest_oom,
    })
}

/// The jobs depth from `jobs.scaleToZero.depthQuery` (to `tuning.metrics.prometheusUrl`,
/// whatever the metrics source), when the spec has one.
async fn jobs_depth(
    ctx: &Context,
    app: &pacer_crds::PhpAppServer,
    namespace: &str,
    config: &AppConfig,
    now: Timestamp,
) -> Option<Result<f64, String>> {
    let query = config.jobs.as_ref()?.depth_query.as_deref()?;
    let answer = async {
        let token = prometheus_url_access(ctx, app, namespace, config).await?;
        let url = config.prometheus_url.as_deref().unwrap_or_default();
        ctx.metrics_source()
            .query_sum(url, token.as_deref(), query, now)
            .await
    }
    .await;
    Some(answer.map_err(|error| {
        tracing::warn!(%error, "reading the jobs depth failed");
        error.to_string()
    }))
}

/// For the Prometheus source: whether the app's URL is allowed, and its bearer token.
async fn prometheus_access(
    ctx: &Context,
    app: &pacer_crds::PhpAppServer,
    namespace: &str,
    config: &AppConfig,
) -> Result<Option<String>, crate::metrics_source::Error> {
    if config.source != pacer_crds::MetricsSourceKind::Prometheus {
        return Ok(None);
    }
    prometheus_url_access(ctx, app, namespace, config).await
}

/// Whether the app's `tuning.metrics.prometheusUrl` is allowed, and its bearer token.
async fn prometheus_url_access(
    ctx: &Context,
    app: &pacer_crds::PhpAppServer,
    namespace: &str,
    config: &AppConfig,
) -> Result<Option<String>, crate::metrics_source::Error> {
    let url = config.prometheus_url.as_deref().unwrap_or_default();
    if !crate::metrics_source::url_allowed(url, &ctx.settings().prometheus_allowed_urls) {
        return Err(crate::metrics_source::Error::Config(format!(
            "tuning.metrics.prometheusUrl {url} is not among the Prometheus URLs this operator \
             may query (--prometheus-allowed-urls, the chart's prometheus.allowedUrls); \
             ask the platform team to allow it"
        )));
    }
    let Some(reference) = &app.spec.tuning.metrics.bearer_token_secret else {
        return Ok(None);
    };
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(ctx.client().clone(), namespace);
    let unreadable = |why: String| {
        crate::metrics_source::Error::Config(format!(
            "cannot read key {} of Secret {} for tuning.metrics.bearerTokenSecret: {why}",
            reference.key, reference.name
        ))
    };
    let secret = match secrets.get_opt(&reference.name).await {
        Ok(Some(secret)) => secret,
        Ok(None) => return Err(unreadable("no such Secret".into())),
        Err(kube::Error::Api(status)) if status.code == 403 => {
            return Err(unreadable(
                "the operator may not read Secrets here (the chart's prometheus.readSecrets)"
                    .into(),
            ));
        }
        Err(error) => return Err(unreadable(error.to_string())),
    };
    let token = secret
        .data
        .and_then(|d| d.get(&reference.key).cloned())
        .ok_or_else(|| unreadable("no such key".into()))?;
    let token = String::from_utf8(token.0).map_err(|_| unreadable("not UTF-8".into()))?;
    Ok(Some(token.trim().to_owned()))
}

/// The Deployment's counts and whether its rollout is complete.
#[must_use]
pub fn deployment_state(d: &Deployment) -> DeploymentState {
    let status = d.status.as_ref();
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let replicas = status.and_then(|s| s.replicas).unwrap_or(0);
    let updated = status.and_then(|s| s.updated_replicas).unwrap_or(0);
    let available = status.and_then(|s| s.available_replicas).unwrap_or(0);
    let seen = match (
        d.metadata.generation,
        status.and_then(|s| s.observed_generation),
    ) {
        (Some(generation), Some(observed)) => observed >= generation,
        (None, _) => true,
        (Some(_), None) => false,
    };
    let stalled = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| {
            c.type_ == "Progressing"
                && c.status == "False"
                && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        });
    DeploymentState {
        desired,
        replicas,
        ready: status.and_then(|s| s.ready_replicas).unwrap_or(0),
        updated,
        available,
        rolled_out: seen && updated >= desired && available >= desired && replicas <= desired,
        stalled,
    }
}

/// Running, addressable, not terminating pods (with since when they are ready and whether
/// a resize of theirs is pending), and the newest OOM kill of the PHP container (named
/// `container`).
#[must_use]
pub fn pod_targets(pods: &[Pod], container: &str) -> (Vec<PodTarget>, Option<Timestamp>) {
    let mut targets = Vec::new();
    let mut newest_oom: Option<Timestamp> = None;
    for pod in pods {
        let status = pod.status.as_ref();
        for cs in status
            .and_then(|s| s.container_statuses.as_ref())
            .into_iter()
            .flatten()
            .filter(|cs| cs.name == container)
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
            let condition = |type_: &str| {
                status
                    .and_then(|s| s.conditions.as_ref())
                    .into_iter()
                    .flatten()
                    .find(|c| c.type_ == type_ && c.status == "True")
            };
            // Kubernetes 1.33+ reports a resize that has not happened as conditions; older
            // servers in `status.resize`.
            let resize_pending = condition("PodResizePending").is_some()
                || condition("PodResizeInProgress").is_some()
                || status
                    .and_then(|s| s.resize.as_deref())
                    .is_some_and(|r| !r.is_empty());
            targets.push(PodTarget {
                name: pod.name_any(),
                ip: status.and_then(|s| s.pod_ip.clone()),
                ready_since: condition("Ready")
                    .and_then(|c| c.last_transition_time.as_ref())
                    .map(|t| t.0),
                resize_pending,
                image: running_image(status, container),
            });
        }
    }
    targets.sort_by(|a, b| a.name.cmp(&b.name));
    (targets, newest_oom)
}

/// The image the PHP container (named `container`) runs, by content: its status'
/// `imageID` (a digest) rather than the spec's reference, so that a tag pushed again
/// (`shop:latest`, `shop:prod`) with a new build is a new version, and a new tag on the
/// same build is not. `None` until the container has run (the kubelet sets it then).
fn running_image(status: Option<&PodStatus>, container: &str) -> Option<String> {
    status?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|cs| cs.name == container)
        .map(|cs| cs.image_id.clone())
        .filter(|id| !id.is_empty())
}

/// Waiting reasons that are a normal step of starting a container, not a problem.
const STARTING: &[&str] = &["ContainerCreating", "PodInitializing"];

fn container_problem(pod: &str, cs: &ContainerStatus) -> Option<PodProblem> {
    let state = cs.state.as_ref()?;
    let oom_before = cs
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .is_some_and(|t| t.reason.as_deref() == Some("OOMKilled"));
    if let Some(waiting) = &state.waiting {
        let reason = waiting.reason.as_deref().unwrap_or_default();
        if reason.is_empty() || STARTING.contains(&reason) {
            return None;
        }
        // A container restarting after OOM kills waits in CrashLoopBackOff: the kill is
        // the reason a user can act on.
        if reason == "CrashLoopBackOff" && oom_before {
            return Some(PodProblem::new(
                pod,
                "OOMKilled",
                format!(
                    "container {} was killed for exceeding its memory limit ({} restarts)",
                    cs.name, cs.restart_count
                ),
            ));
        }
        let detail = waiting.message.as_deref().unwrap_or_default();
        return Some(PodProblem::new(
            pod,
            reason,
            format!("container {}: {reason}: {detail}", cs.name)
                .trim_end_matches([' ', ':'])
                .to_owned(),
        ));
    }
    if let Some(terminated) = &state.terminated
        && terminated.reason.as_deref() == Some("OOMKilled")
    {
        return Some(PodProblem::new(
            pod,
            "OOMKilled",
            format!(
                "container {} was killed for exceeding its memory limit",
                cs.name
            ),
        ));
    }
    None
}

/// What, if anything, keeps this pod from serving, as the kubelet and the scheduler say it.
#[must_use]
pub fn pod_problem(pod: &Pod) -> Option<PodProblem> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let name = pod.name_any();
    let status = pod.status.as_ref()?;
    if let Some(unschedulable) = status.conditions.iter().flatten().find(|c| {
        c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
    }) {
        return Some(PodProblem::new(
            &name,
            "Unschedulable",
            unschedulable.message.clone().unwrap_or_default(),
        ));
    }
    let init = status.init_container_statuses.iter().flatten();
    let main = status.container_statuses.iter().flatten();
    if let Some(problem) = init.chain(main).find_map(|cs| container_problem(&name, cs)) {
        return Some(problem);
    }
    if status.phase.as_deref() == Some("Failed") {
        let reason = status.reason.clone().unwrap_or_else(|| "PodFailed".into());
        return Some(PodProblem::new(
            &name,
            &reason,
            status.message.clone().unwrap_or_default(),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentSpec, DeploymentStatus};
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStateWaiting, PodCondition, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    const APP_CONTAINER: &str = "app";

    #[test]
    fn autoscalers_target_the_app_or_its_deployment() {
        assert_eq!(
            targets("shop", "pacer.dev/v1alpha2", "PhpAppServer", "shop"),
            Some(true)
        );
        assert_eq!(
            targets("shop", "pacer.dev/v1alpha1", "PhpAppServer", "shop"),
            Some(true)
        );
        assert_eq!(
            targets("shop", "apps/v1", "Deployment", "shop"),
            Some(false)
        );
        assert_eq!(targets("shop", "apps/v1", "Deployment", "other"), None);
        assert_eq!(targets("shop", "apps/v1", "StatefulSet", "shop"), None);
        assert_eq!(
            targets("shop", "example.com/v1", "PhpAppServer", "shop"),
            None
        );
    }

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

    fn waiting(name: &str, init: bool, reason: &str, message: &str) -> Pod {
        let mut p = pod(name, "Pending", None, None);
        let cs = ContainerStatus {
            name: if init { "pacer-install" } else { APP_CONTAINER }.into(),
            state: Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.into()),
                    message: Some(message.into()),
                }),
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        };
        let status = p.status.as_mut().unwrap();
        if init {
            status.init_container_statuses = Some(vec![cs]);
            status.container_statuses = None;
        } else {
            status.container_statuses = Some(vec![cs]);
        }
        p
    }

    #[test]
    fn running_pods_are_targets_and_oom_kills_are_found() {
        let pods = [
            pod("b", "Running", Some("10.0.0.2"), Some(1_700_000_100)),
            pod("a", "Running", Some("10.0.0.1"), None),
            pod("c", "Pending", None, Some(1_700_000_050)),
        ];
        let (targets, oom) = pod_targets(&pods, APP_CONTAINER);
        let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(targets[0].ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(oom, Some(Timestamp::from_second(1_700_000_100).unwrap()));
        assert_eq!(targets[0].image, None);
    }

    /// The version a pod runs: the image its PHP container runs, by digest (a sidecar's
    /// image is not the app's; the spec's tag may have been pushed again).
    #[test]
    fn targets_carry_the_image_digest_of_the_php_container() {
        let mut p = pod("a", "Running", Some("10.0.0.1"), None);
        let container = |name: &str, id: &str| ContainerStatus {
            name: name.into(),
            image: "shop:latest".into(),
            image_id: id.into(),
            ..ContainerStatus::default()
        };
        let status = p.status.as_mut().unwrap();
        status.container_statuses = Some(vec![
            container("istio-proxy", "proxyv2@sha256:aa"),
            container(APP_CONTAINER, "shop@sha256:bb"),
        ]);
        let (targets, _) = pod_targets(&[p.clone()], APP_CONTAINER);
        assert_eq!(targets[0].image.as_deref(), Some("shop@sha256:bb"));
        // Not started yet: no version rather than the tag (which would turn into the
        // digest a moment later, and look like a new version).
        p.status.as_mut().unwrap().container_statuses = Some(vec![container(APP_CONTAINER, "")]);
        let (targets, _) = pod_targets(&[p], APP_CONTAINER);
        assert_eq!(targets[0].image, None);
    }

    #[test]
    fn targets_carry_readiness_and_pending_resizes() {
        let mut ready = pod("a", "Running", Some("10.0.0.1"), None);
        let mut resizing = pod("b", "Running", Some("10.0.0.2"), None);
        let since = Timestamp::from_second(1_700_000_000).unwrap();
        ready.status.as_mut().unwrap().conditions = Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            last_transition_time: Some(Time(since)),
            ..PodCondition::default()
        }]);
        resizing.status.as_mut().unwrap().conditions = Some(vec![
            PodCondition {
                type_: "Ready".into(),
                status: "False".into(),
                last_transition_time: Some(Time(since)),
                ..PodCondition::default()
            },
            PodCondition {
                type_: "PodResizePending".into(),
                status: "True".into(),
                reason: Some("Deferred".into()),
                ..PodCondition::default()
            },
        ]);
        let (targets, _) = pod_targets(&[ready, resizing], APP_CONTAINER);
        assert_eq!(targets[0].ready_since, Some(since));
        assert!(!targets[0].resize_pending);
        assert_eq!(targets[1].ready_since, None, "not ready");
        assert!(targets[1].resize_pending);
    }

    #[test]
    fn waiting_reasons_are_problems_but_starting_is_not() {
        let p = pod_problem(&waiting(
            "shop-1",
            false,
            "ImagePullBackOff",
            "Back-off pulling image \"shop:nope\"",
        ))
        .unwrap();
        assert_eq!(p.reason, "ImagePullBackOff");
        assert_eq!(p.pod, "shop-1");
        assert!(p.message.contains("shop:nope"), "{}", p.message);
        let init = pod_problem(&waiting("shop-2", true, "ErrImagePull", "not found")).unwrap();
        assert_eq!(init.reason, "ErrImagePull");
        assert!(init.message.contains("pacer-install"));
        assert!(pod_problem(&waiting("shop-3", false, "ContainerCreating", "")).is_none());
        assert!(pod_problem(&pod("ok", "Running", Some("10.0.0.1"), None)).is_none());
    }

    #[test]
    fn a_crash_loop_after_oom_kills_is_reported_as_oom() {
        let mut p = waiting("shop-1", false, "CrashLoopBackOff", "back-off 40s");
        p.status
            .as_mut()
            .unwrap()
            .container_statuses
            .as_mut()
            .unwrap()[0]
            .last_state = Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                reason: Some("OOMKilled".into()),
                exit_code: 137,
                ..ContainerStateTerminated::default()
            }),
            ..ContainerState::default()
        });
        assert_eq!(pod_problem(&p).unwrap().reason, "OOMKilled");
        let crash = waiting("shop-2", false, "CrashLoopBackOff", "back-off 40s");
        assert_eq!(pod_problem(&crash).unwrap().reason, "CrashLoopBackOff");
    }

    #[test]
    fn unschedulable_pods_say_why() {
        let mut p = pod("shop-1", "Pending", None, None);
        p.status.as_mut().unwrap().conditions = Some(vec![PodCondition {
            type_: "PodScheduled".into(),
            status: "False".into(),
            reason: Some("Unschedulable".into()),
            message: Some("0/3 nodes are available: 3 Insufficient memory.".into()),
            ..PodCondition::default()
        }]);
        let problem = pod_problem(&p).unwrap();
        assert_eq!(problem.reason, "Unschedulable");
        assert!(problem.message.contains("Insufficient memory"));
    }

    #[test]
    fn rollout_state_follows_the_deployment_status() {
        let d = |generation: i64, observed: i64, updated: i32, available: i32, stalled: bool| {
            Deployment {
                metadata: ObjectMeta {
                    generation: Some(generation),
                    ..ObjectMeta::default()
                },
                spec: Some(DeploymentSpec {
                    replicas: Some(3),
                    ..DeploymentSpec::default()
                }),
                status: Some(DeploymentStatus {
                    observed_generation: Some(observed),
                    replicas: Some(3),
                    updated_replicas: Some(updated),
                    ready_replicas: Some(available),
                    available_replicas: Some(available),
                    conditions: stalled.then(|| {
                        vec![DeploymentCondition {
                            type_: "Progressing".into(),
                            status: "False".into(),
                            reason: Some("ProgressDeadlineExceeded".into()),
                            ..DeploymentCondition::default()
                        }]
                    }),
                    ..DeploymentStatus::default()
                }),
            }
        };
        assert!(deployment_state(&d(2, 2, 3, 3, false)).rolled_out);
        assert!(
            !deployment_state(&d(3, 2, 3, 3, false)).rolled_out,
            "not seen"
        );
        let s = deployment_state(&d(2, 2, 1, 3, true));
        assert!(!s.rolled_out && s.stalled);
        assert_eq!((s.updated, s.available), (1, 3));
    }
}
