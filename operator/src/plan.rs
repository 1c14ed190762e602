//! Plan: the pure middle of a reconcile, from what was observed to what to write.
//!
//! [`plan`] decides the pool settings the owned objects get, the desired objects
//! themselves ([`crate::resources::desired`], the one function that builds them), the new
//! status (conditions, readiness with the pods' own reasons, rollout progress, current
//! settings and what the pods report of them, recommendation, observed aggregates, the
//! tuner's memory), the changes to announce as Events and when to look again.
//! [`crate::observe`] and [`crate::apply`] / [`crate::report`] do the I/O on either side.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use pacer_crds::{
    PhpAppServerSpec, PhpAppServerStatus, ReportedSettings, RolloutStatus, TuningMode,
};

use crate::Error;
use crate::app_config::AppConfig;
use crate::jobs_plan::{self, JobsInput};
use crate::metrics_source::PodTarget;
use crate::resources::{self, Desired, Inputs, SidecarDefaults};
use crate::sample::AppSample;
use crate::status::{self, DEGRADED, READY, TUNED, Truth, set_condition};
use crate::tuning::{self, Change, Knob, Observation, Settings};

/// How often an object without tuning is looked at anyway (drift repair).
pub const IDLE_RESYNC: Duration = Duration::from_secs(300);

/// What the Deployment reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DeploymentState {
    /// Pods it wants (its `spec.replicas`).
    pub desired: i32,
    /// Pods it has.
    pub replicas: i32,
    /// Pods that are ready.
    pub ready: i32,
    /// Pods running the current template.
    pub updated: i32,
    /// Pods available (ready for `minReadySeconds`).
    pub available: i32,
    /// The Deployment controller has seen the latest template and every wanted pod runs it
    /// and is available, with no old pods left.
    pub rolled_out: bool,
    /// The rollout exceeded its progress deadline.
    pub stalled: bool,
}

/// Something that keeps a pod from serving, in the kubelet's or the scheduler's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodProblem {
    /// The pod.
    pub pod: String,
    /// A CamelCase reason (`ImagePullBackOff`, `CrashLoopBackOff`, `Unschedulable`,
    /// `OOMKilled`, …) — the Ready condition's reason.
    pub reason: String,
    /// Details.
    pub message: String,
}

impl PodProblem {
    /// A problem of `pod`.
    #[must_use]
    pub fn new(pod: &str, reason: &str, message: String) -> Self {
        Self {
            pod: pod.to_owned(),
            reason: reason.to_owned(),
            message,
        }
    }

    /// Lower is shown first: the reasons a user can act on directly come before the
    /// consequences.
    #[must_use]
    pub fn severity(&self) -> u8 {
        match self.reason.as_str() {
            "OOMKilled" => 0,
            "ImagePullBackOff" | "ErrImagePull" | "InvalidImageName" | "ErrImageNeverPull" => 1,
            "CreateContainerConfigError" | "CreateContainerError" | "RunContainerError" => 2,
            "CrashLoopBackOff" => 3,
            "Unschedulable" => 4,
            _ => 5,
        }
    }
}

/// Kinds of autoscaler that count an app's pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoscalerKind {
    /// `autoscaling/v2` HorizontalPodAutoscaler.
    HorizontalPodAutoscaler,
    /// KEDA's `keda.sh/v1alpha1` ScaledObject.
    ScaledObject,
}

impl AutoscalerKind {
    /// The kind's name, as a condition reason.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HorizontalPodAutoscaler => "HorizontalPodAutoscaler",
            Self::ScaledObject => "ScaledObject",
        }
    }
}

/// An autoscaler that targets the app (through `/scale`) or its Deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Autoscaler {
    /// Its kind.
    pub kind: AutoscalerKind,
    /// Its name.
    pub name: String,
    /// True when it targets the PhpAppServer, false when its Deployment.
    pub targets_app: bool,
}

/// Annotation that pauses reconciling, like `spec.paused`.
pub const PAUSED_ANNOTATION: &str = "pacer.dev/paused";

/// Whether reconciling is paused (`spec.paused` or the annotation).
#[must_use]
pub fn paused(app: &pacer_crds::PhpAppServer) -> bool {
    app.spec.paused
        || app
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(PAUSED_ANNOTATION))
            .is_some_and(|v| v == "true")
}

/// Who counts the pods, and so whether the operator writes the Deployment's replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplicaOwner {
    /// The tuner, within `replicas.min`..`max`.
    Tuner,
    /// `spec.replicas.count`, set through `/scale` (by an autoscaler on the app, or by
    /// hand): the operator copies it to the Deployment.
    Count(u32),
    /// Someone else writes the Deployment's replicas (an autoscaler on the Deployment,
    /// `replicas.external`, or an autoscaler on the app before it set a count).
    Deployment,
}

/// Decides who counts the pods.
#[must_use]
pub fn replica_owner(spec: &PhpAppServerSpec, autoscaler: Option<&Autoscaler>) -> ReplicaOwner {
    if spec.replicas.external || autoscaler.is_some_and(|a| !a.targets_app) {
        return ReplicaOwner::Deployment;
    }
    match spec.replicas.count.and_then(|c| u32::try_from(c).ok()) {
        Some(count) => ReplicaOwner::Count(count),
        None if autoscaler.is_some() => ReplicaOwner::Deployment,
        None => ReplicaOwner::Tuner,
    }
}

/// Condition type: someone other than the tuner counts the pods.
pub const EXTERNAL_REPLICAS: &str = "ExternalReplicas";

/// Who the owned objects belong to, and the operator-wide defaults they are built with.
#[derive(Clone, Debug)]
pub struct Owner<'a> {
    /// Name of the `PhpAppServer`.
    pub name: &'a str,
    /// Its namespace.
    pub namespace: &'a str,
    /// The controller owner reference the owned objects carry.
    pub reference: OwnerReference,
    /// Its spec.
    pub spec: &'a PhpAppServerSpec,
    /// Operator-wide sidecar defaults.
    pub sidecar: &'a SidecarDefaults,
}

/// What a tuning round observed.
#[derive(Clone, Debug, PartialEq)]
pub struct TuningInput {
    /// Window aggregates, or why there are none.
    pub sample: Result<AppSample, String>,
    /// Finish time of the newest OOM kill of an app container.
    pub newest_oom: Option<Timestamp>,
    /// The pods the API lists as running (readiness, pending resizes).
    pub pods: Vec<PodTarget>,
    /// The jobs depth from `jobs.scaleToZero.depthQuery` (`None`: no query).
    pub jobs_depth: Option<Result<f64, String>>,
}

/// Everything [`plan`] needs.
#[derive(Clone, Debug)]
pub struct PlanInput<'a> {
    /// The object and what its owned objects are built from.
    pub owner: Owner<'a>,
    /// `metadata.generation` of the object.
    pub generation: Option<i64>,
    /// The parsed spec.
    pub config: &'a AppConfig,
    /// The status as it is.
    pub previous: &'a PhpAppServerStatus,
    /// Present when a tuning round ran (see [`tuning_due`]).
    pub tuning: Option<TuningInput>,
    /// The Deployment as observed (`None`: not there yet).
    pub deployment: Option<DeploymentState>,
    /// Problems the pods report, worst first.
    pub pod_problems: &'a [PodProblem],
    /// An autoscaler targeting the app or its Deployment.
    pub autoscaler: Option<&'a Autoscaler>,
    /// Reconciling is paused: nothing is tuned (and the controller applies nothing).
    pub paused: bool,
    /// The time.
    pub now: Timestamp,
}

/// What to write.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Settings for the owned objects.
    pub settings: Settings,
    /// The owned objects as they should be.
    pub desired: Desired,
    /// The new status.
    pub status: PhpAppServerStatus,
    /// Applied changes, each announced as an Event.
    pub changes: Vec<Change>,
    /// Newly degraded, or a pod newly unable to run: (reason, message) for Warning Events.
    pub warnings: Vec<(String, String)>,
    /// When to reconcile again.
    pub requeue_after: Duration,
}

/// Whether a tuning round is due: never in mode Off, otherwise once per interval.
#[must_use]
pub fn tuning_due(config: &AppConfig, previous: &PhpAppServerStatus, now: Timestamp) -> bool {
    if config.mode == TuningMode::Off {
        return false;
    }
    previous.last_tune_time.as_ref().is_none_or(|last| {
        let since = now.duration_since(last.0);
        // A little slack so that a requeue that fires a hair early still tunes.
        since.is_negative() || since.unsigned_abs() + Duration::from_millis(500) >= config.interval
    })
}

fn next_tune_in(config: &AppConfig, last: Option<&Time>, now: Timestamp) -> Duration {
    if config.mode == TuningMode::Off {
        return IDLE_RESYNC;
    }
    let Some(last) = last else {
        return Duration::from_secs(1);
    };
    let since = now.duration_since(last.0);
    let since = if since.is_negative() {
        Duration::ZERO
    } else {
        since.unsigned_abs()
    };
    config
        .interval
        .saturating_sub(since)
        .max(Duration::from_secs(1))
}

/// Sets `replicas`, `readyReplicas`, `rollout` and the Ready condition from the Deployment
/// (`None`: not there yet) and the pods' problems.
///
/// Ready is True only while as many pods are ready as the Deployment wants and no pod
/// reports a problem; otherwise its reason is the worst pod's own (`ImagePullBackOff`,
/// `CrashLoopBackOff`, `Unschedulable`, `OOMKilled`, …), or `ProgressDeadlineExceeded`,
/// or `PodsNotReady`. A rollout in progress with every wanted pod ready is Ready=True with
/// reason `RollingOut`.
pub fn readiness(
    status: &mut PhpAppServerStatus,
    deployment: Option<DeploymentState>,
    problems: &[PodProblem],
    generation: Option<i64>,
    now: Timestamp,
) {
    let Some(d) = deployment else {
        status.replicas = None;
        status.ready_replicas = None;
        status.rollout = None;
        set_condition(
            &mut status.conditions,
            READY,
            Truth::False,
            "DeploymentPending",
            "the Deployment is being created",
            generation,
            now,
        );
        return;
    };
    status.replicas = Some(d.replicas);
    status.ready_replicas = Some(d.ready);
    status.rollout = Some(RolloutStatus {
        desired: d.desired,
        updated: d.updated,
        ready: d.ready,
        available: d.available,
        complete: d.rolled_out,
    });
    let counts = format!("{} of {} pods ready", d.ready, d.desired);
    let (truth, reason, message) = if let Some(worst) = problems.first() {
        let mut pods: Vec<&str> = problems.iter().map(|p| p.pod.as_str()).collect();
        pods.dedup();
        (
            Truth::False,
            worst.reason.clone(),
            format!(
                "{counts}; {} pod(s) cannot run — pod {}: {}",
                pods.len(),
                worst.pod,
                worst.message
            ),
        )
    } else if d.stalled {
        (
            Truth::False,
            "ProgressDeadlineExceeded".to_owned(),
            format!(
                "{counts}; the rollout made no progress within the Deployment's progress deadline ({} of {} pods updated)",
                d.updated, d.desired
            ),
        )
    } else if d.desired > 0 && d.ready >= d.desired {
        if d.rolled_out {
            (Truth::True, "AllPodsReady".to_owned(), counts)
        } else {
            (
                Truth::True,
                "RollingOut".to_owned(),
                format!(
                    "{counts}; rolling out: {} of {} pods updated",
                    d.updated, d.desired
                ),
            )
        }
    } else if d.desired == 0 {
        (
            Truth::False,
            "ScaledToZero".to_owned(),
            "the Deployment wants no pods".to_owned(),
        )
    } else {
        (Truth::False, "PodsNotReady".to_owned(), counts)
    };
    set_condition(
        &mut status.conditions,
        READY,
        truth,
        &reason,
        &message,
        generation,
        now,
    );
}

/// What the pods report of the configured workers, from a round's sample: how many
/// agree with `workers`, and since when all of them do.
fn reported(
    sample: &AppSample,
    workers: i32,
    previous: Option<&ReportedSettings>,
    now: Timestamp,
) -> Option<ReportedSettings> {
    let values: Vec<i32> = sample
        .pods
        .iter()
        .filter_map(|p| p.target_workers)
        .map(|w| i32::try_from(w).unwrap_or(i32::MAX))
        .collect();
    if values.is_empty() {
        return None;
    }
    let matching = values.iter().filter(|w| **w == workers).count();
    let agreed = values.iter().all(|w| *w == values[0]).then_some(values[0]);
    let all_match = matching == values.len();
    let time = if all_match {
        previous
            .filter(|p| p.workers == Some(workers))
            .and_then(|p| p.time.clone())
            .or(Some(Time(now)))
    } else {
        None
    };
    Some(ReportedSettings {
        pods: i32::try_from(values.len()).unwrap_or(i32::MAX),
        matching: i32::try_from(matching).unwrap_or(i32::MAX),
        workers: agreed,
        time,
    })
}

/// Degraded=False: nothing keeps the tuner from doing its work.
fn not_degraded(
    conditions: &mut Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    generation: Option<i64>,
    now: Timestamp,
) {
    set_condition(
        conditions,
        DEGRADED,
        Truth::False,
        "AsExpected",
        "",
        generation,
        now,
    );
}

/// Plans one reconcile: the settings, the desired objects, the status (readiness
/// included, see [`readiness`]) and the Events.
///
/// # Errors
/// [`Error::Render`] when a desired object cannot be built (not expected).
pub fn plan(input: PlanInput<'_>) -> Result<Plan, Error> {
    let PlanInput {
        owner,
        generation,
        config,
        previous,
        tuning,
        deployment,
        pod_problems,
        autoscaler,
        paused,
        now,
    } = input;
    let owner_of_replicas = replica_owner(owner.spec, autoscaler);
    let mut policy = config.policy.clone();
    policy.replicas_external = owner_of_replicas != ReplicaOwner::Tuner;
    let policy = &policy;
    let initial = tuning::initial(policy);
    let applied = previous
        .current
        .as_ref()
        .and_then(status::settings_from)
        .map(|s| tuning::conform(policy, s));
    // Every mode starts from what the pods have: Off and Recommend freeze the settings in
    // force (switching to them is never a capacity cliff), within the spec's bounds.
    let mut settings = applied.unwrap_or(initial);
    match owner_of_replicas {
        ReplicaOwner::Tuner => {}
        ReplicaOwner::Count(count) => settings.replicas = count,
        ReplicaOwner::Deployment => {
            if let Some(wanted) = deployment.and_then(|d| u32::try_from(d.desired).ok()) {
                settings.replicas = wanted;
            }
        }
    }
    let mut next = previous.clone();
    next.observed_generation = generation;
    let mut changes = Vec::new();
    let mut warning = None;
    let was_degraded =
        status::condition(&previous.conditions, DEGRADED).is_some_and(|c| c.status == "True");
    let jobs_round = tuning.clone();
    let replicas_before = previous
        .current
        .as_ref()
        .and_then(|c| u32::try_from(c.replicas).ok())
        .unwrap_or(settings.replicas);

    match (config.mode, tuning) {
        _ if paused => {
            set_condition(
                &mut next.conditions,
                TUNED,
                Truth::False,
                "Paused",
                "reconciling is paused (spec.paused or the pacer.dev/paused annotation): the owned objects are not written and the pods keep the settings in force",
                generation,
                now,
            );
        }
        (TuningMode::Off, _) => {
            next.recommendation = None;
            next.observed = None;
            next.tuning_state = None;
            next.last_tune_time = None;
            set_condition(
                &mut next.conditions,
                TUNED,
                Truth::False,
                "TuningOff",
                "tuning.mode is Off: the pods keep the settings in force (within the spec's bounds)",
                generation,
                now,
            );
            not_degraded(&mut next.conditions, generation, now);
        }
        (_, None) => {
            if status::condition(&next.conditions, TUNED).is_none() {
                set_condition(
                    &mut next.conditions,
                    TUNED,
                    Truth::Unknown,
                    "Waiting",
                    "the first tuning round has not run yet",
                    generation,
                    now,
                );
            }
        }
        (mode, Some(round)) => {
            let base = if mode == TuningMode::Recommend {
                previous
                    .recommendation
                    .as_ref()
                    .and_then(status::settings_from_recommendation)
                    .map(|s| tuning::conform(policy, s))
                    .unwrap_or(settings)
            } else {
                settings
            };
            let state = previous
                .tuning_state
                .as_ref()
                .map(status::state_from)
                .unwrap_or_default();
            let observation = Observation {
                sample: round.sample.as_ref().ok().cloned(),
                newest_oom: round.newest_oom,
                pods: round.pods.clone(),
                // Recommend leaves the pods alone: nothing of it is ever delivered.
                await_delivery: mode == TuningMode::Auto,
            };
            let decision = tuning::decide(policy, &base, &state, &observation, now);
            next.tuning_state = Some(status::tuning_state(&decision.state));
            next.last_tune_time = Some(Time(now));
            next.recommendation = Some(status::recommendation(
                &decision.settings,
                &decision.summary,
            ));
            if let Ok(sample) = &round.sample
                && !sample.pods.is_empty()
            {
                next.observed = Some(status::observed(sample));
            }
            if mode == TuningMode::Auto {
                settings = decision.settings;
                changes = decision.changes.clone();
            }
            if let Ok(sample) = &round.sample {
                let workers = i32::try_from(settings.workers).unwrap_or(i32::MAX);
                next.reported = reported(sample, workers, previous.reported.as_ref(), now);
            }

            let (truth, reason, message) = match &round.sample {
                Err(error) => (
                    Truth::Unknown,
                    "MetricsUnavailable",
                    format!("metrics could not be read: {error}"),
                ),
                Ok(sample) if sample.pods.is_empty() => (
                    Truth::Unknown,
                    "CollectingMetrics",
                    format!(
                        "waiting for a full window ({}) of metrics from the pods",
                        pacer_crds::units::format_duration(config.sample_window)
                    ),
                ),
                Ok(_) if mode == TuningMode::Recommend => (
                    Truth::False,
                    "RecommendOnly",
                    format!("tuning.mode is Recommend: {}", decision.summary),
                ),
                Ok(_) => (Truth::True, "Tuned", decision.summary.clone()),
            };
            set_condition(
                &mut next.conditions,
                TUNED,
                truth,
                reason,
                &message,
                generation,
                now,
            );

            let mut problems: Vec<(&str, String)> = decision
                .problems
                .iter()
                .map(|p| (p.kind.reason(), p.message.clone()))
                .collect();
            if let Err(error) = &round.sample {
                problems.insert(
                    0,
                    (
                        "MetricsUnavailable",
                        format!("metrics could not be read: {error}"),
                    ),
                );
            }
            if let Some((reason, _)) = problems.first() {
                let reason = (*reason).to_owned();
                let message: Vec<&str> = problems.iter().map(|(_, m)| m.as_str()).collect();
                let message = message.join("; ");
                set_condition(
                    &mut next.conditions,
                    DEGRADED,
                    Truth::True,
                    &reason,
                    &message,
                    generation,
                    now,
                );
                if !was_degraded {
                    warning = Some((reason, message));
                }
            } else {
                not_degraded(&mut next.conditions, generation, now);
            }
        }
    }

    let jobs = config.jobs.as_ref().map(|jobs| {
        let input = jobs_round.as_ref().map(|round| JobsInput {
            sample: &round.sample,
            depth: round.jobs_depth.as_ref(),
        });
        jobs_plan::plan_jobs(
            jobs,
            policy.stabilization_window,
            if paused { TuningMode::Off } else { config.mode },
            previous.jobs.as_ref(),
            settings.replicas,
            input.as_ref(),
            now,
        )
    });
    let serves_http = owner.spec.http.enabled;
    if let Some(jobs) = &jobs {
        if !serves_http {
            // A jobs-only app has no HTTP pool: the HTTP tuner's pool and pods mean nothing.
            changes.retain(|c| !matches!(c.knob, Knob::Workers | Knob::Replicas));
        }
        changes.extend(jobs.changes.iter().cloned());
        if owner_of_replicas == ReplicaOwner::Tuner {
            let combined =
                jobs_plan::combined_replicas(settings.replicas, jobs.size.replicas, serves_http);
            // The HTTP tuner's own change stands when it decided the pods; otherwise (and
            // always for a jobs-only app, whose HTTP tuner saw its pods clamped to
            // replicas.min) the change is from the pods in force to the combined count.
            if combined != settings.replicas || !serves_http {
                changes.retain(|c| c.knob != Knob::Replicas);
                settings.replicas = combined;
                if combined != replicas_before {
                    changes.push(Change {
                        knob: Knob::Replicas,
                        from: u64::from(replicas_before),
                        to: u64::from(combined),
                        reason: format!("the jobs pool: {}", jobs.status.reason),
                    });
                }
            }
        }
    }
    next.jobs = jobs.as_ref().map(|j| j.status.clone());

    let current = status::pool_settings(&settings);
    if previous.current.as_ref() != Some(&current) || next.current_since.is_none() {
        next.current_since = Some(Time(now));
    }
    next.current = Some(current);
    next.selector = Some(format!("{}={}", resources::APP_LABEL, owner.name));
    let (truth, reason, message) = match (&owner_of_replicas, autoscaler) {
        (ReplicaOwner::Tuner, _) => (
            Truth::False,
            "Tuner".to_owned(),
            "the tuner picks the pods within replicas.min..max".to_owned(),
        ),
        (_, Some(a)) => (
            Truth::True,
            a.kind.as_str().to_owned(),
            format!(
                "{} {} targets the {}: the operator never writes the pods' count{}; it still tunes workers per pod",
                a.kind.as_str(),
                a.name,
                if a.targets_app {
                    "PhpAppServer (through /scale)"
                } else {
                    "Deployment"
                },
                if a.targets_app && owner.spec.replicas.count.is_none() {
                    " (the autoscaler needs spec.replicas.count set to start from)"
                } else {
                    ""
                },
            ),
        ),
        (ReplicaOwner::Count(count), None) => (
            Truth::True,
            "ScaleSubresource".to_owned(),
            format!("spec.replicas.count ({count}) sets the pods; the tuner tunes workers per pod"),
        ),
        (ReplicaOwner::Deployment, None) => (
            Truth::True,
            "ReplicasExternal".to_owned(),
            "replicas.external: the operator never writes the Deployment's replicas".to_owned(),
        ),
    };
    set_condition(
        &mut next.conditions,
        EXTERNAL_REPLICAS,
        truth,
        &reason,
        &message,
        generation,
        now,
    );
    readiness(&mut next, deployment, pod_problems, generation, now);
    if let Some(jobs) = jobs.as_ref().filter(|j| j.size.replicas == 0)
        && settings.replicas == 0
        && pod_problems.is_empty()
    {
        set_condition(
            &mut next.conditions,
            READY,
            Truth::False,
            "ScaledToZero",
            &format!(
                "no pods: the jobs pool scaled to zero ({}); a queue depth above 0 starts one",
                jobs.status.reason
            ),
            generation,
            now,
        );
    }
    let ready_reason = |s: &PhpAppServerStatus| {
        status::condition(&s.conditions, READY).map(|c| (c.status.clone(), c.reason.clone()))
    };
    let mut warnings: Vec<(String, String)> = warning.into_iter().collect();
    if !pod_problems.is_empty()
        && ready_reason(&next) != ready_reason(previous)
        && let Some(ready) = status::condition(&next.conditions, READY)
    {
        warnings.push((ready.reason.clone(), ready.message.clone()));
    }
    let requeue_after = if paused {
        IDLE_RESYNC
    } else {
        next_tune_in(config, next.last_tune_time.as_ref(), now)
    };
    let desired = resources::desired(&Inputs {
        name: owner.name,
        namespace: owner.namespace,
        owner: owner.reference,
        spec: owner.spec,
        settings: &settings,
        replicas: match owner_of_replicas {
            ReplicaOwner::Tuner | ReplicaOwner::Count(_) => Some(settings.replicas),
            ReplicaOwner::Deployment => None,
        },
        termination_grace_seconds: config.termination_grace_seconds,
        sidecar: owner.sidecar,
        jobs_workers: jobs.as_ref().map(|j| j.size.workers),
    })?;
    Ok(Plan {
        settings,
        desired,
        status: next,
        changes,
        warnings,
        requeue_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::PodSample;
    use crate::status::condition;
    use pacer_crds::PhpAppServerSpec;
    use serde_json::json;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn config(mode: &str) -> AppConfig {
        let spec: PhpAppServerSpec = serde_json::from_value(json!({
            "image": "a", "command": ["php", "w.php"],
            "pool": {"workers": {"min": 2, "max": 16, "initial": 4}},
            "tuning": {"mode": mode}
        }))
        .unwrap();
        AppConfig::from_spec(&spec).unwrap()
    }

    fn busy(busy: f64) -> TuningInput {
        TuningInput {
            sample: Ok(AppSample {
                window: Duration::from_secs(60),
                pods: vec![PodSample {
                    pod: "p".into(),
                    live_workers: 4.0,
                    busy_workers: busy,
                    jobs_per_second: 10.0,
                    mean_job_seconds: Some(busy / 10.0),
                    ..PodSample::default()
                }],
            }),
            newest_oom: None,
            pods: Vec::new(),
            jobs_depth: None,
        }
    }

    static SPEC: std::sync::LazyLock<PhpAppServerSpec> = std::sync::LazyLock::new(|| {
        serde_json::from_value(json!({"image": "a", "command": ["php", "w.php"]})).unwrap()
    });
    static SIDECAR: std::sync::LazyLock<SidecarDefaults> =
        std::sync::LazyLock::new(|| SidecarDefaults {
            image: "pacer:1".into(),
            install_command: vec!["/pacer-operator".into()],
        });

    fn input<'a>(
        config: &'a AppConfig,
        previous: &'a PhpAppServerStatus,
        tuning: Option<TuningInput>,
        now: Timestamp,
    ) -> PlanInput<'a> {
        PlanInput {
            owner: Owner {
                name: "shop",
                namespace: "prod",
                reference: OwnerReference::default(),
                spec: &SPEC,
                sidecar: &SIDECAR,
            },
            generation: Some(3),
            config,
            previous,
            tuning,
            deployment: None,
            pod_problems: &[],
            autoscaler: None,
            paused: false,
            now,
        }
    }

    fn pl(input: PlanInput<'_>) -> Plan {
        plan(input).unwrap()
    }

    #[test]
    fn first_reconcile_uses_the_initial_settings() {
        let c = config("Auto");
        let p = pl(input(&c, &PhpAppServerStatus::default(), None, t(0)));
        assert_eq!(p.settings.workers, 4);
        assert_eq!(p.status.current.as_ref().unwrap().workers, 4);
        assert_eq!(p.status.observed_generation, Some(3));
        assert_eq!(
            condition(&p.status.conditions, READY).unwrap().reason,
            "DeploymentPending"
        );
        assert_eq!(
            condition(&p.status.conditions, TUNED).unwrap().reason,
            "Waiting"
        );
        assert!(p.changes.is_empty());
        assert_eq!(p.requeue_after, Duration::from_secs(1));
    }

    #[test]
    fn auto_applies_and_announces_a_change() {
        let c = config("Auto");
        let first = pl(input(&c, &PhpAppServerStatus::default(), None, t(0)));
        let p = pl(input(&c, &first.status, Some(busy(3.9)), t(1)));
        assert_eq!(p.settings.workers, 6);
        assert_eq!(p.changes.len(), 1);
        assert_eq!(p.status.current.as_ref().unwrap().workers, 6);
        assert_eq!(p.status.recommendation.as_ref().unwrap().workers, 6);
        assert_eq!(p.status.observed.as_ref().unwrap().busy_percent, 98);
        assert_eq!(p.status.last_tune_time, Some(Time(t(1))));
        let tuned = condition(&p.status.conditions, TUNED).unwrap();
        assert_eq!(
            (tuned.status.as_str(), tuned.reason.as_str()),
            ("True", "Tuned")
        );
        assert_eq!(
            condition(&p.status.conditions, DEGRADED).unwrap().status,
            "False"
        );
        assert_eq!(p.requeue_after, Duration::from_secs(30));
    }

    #[test]
    fn recommend_writes_status_only() {
        let c = config("Recommend");
        let first = pl(input(&c, &PhpAppServerStatus::default(), None, t(0)));
        let p = pl(input(&c, &first.status, Some(busy(3.9)), t(1)));
        assert_eq!(p.settings.workers, 4, "the pods keep their settings");
        assert!(p.changes.is_empty());
        assert_eq!(p.status.current.as_ref().unwrap().workers, 4);
        assert_eq!(p.status.recommendation.as_ref().unwrap().workers, 6);
        assert_eq!(
            condition(&p.status.conditions, TUNED).unwrap().reason,
            "RecommendOnly"
        );
        // The next recommendation builds on the last one, not on the unchanged pods.
        let p2 = pl(input(&c, &p.status, Some(busy(5.9)), t(40)));
        assert_eq!(p2.status.recommendation.as_ref().unwrap().workers, 9);
    }

    #[test]
    fn off_freezes_the_settings_in_force_and_clears_the_tuner() {
        let auto = config("Auto");
        let first = pl(input(
            &auto,
            &PhpAppServerStatus::default(),
            Some(busy(3.9)),
            t(0),
        ));
        assert_eq!(first.settings.workers, 6);
        let off = config("Off");
        assert!(!tuning_due(&off, &first.status, t(100)));
        let p = pl(input(&off, &first.status, None, t(100)));
        assert_eq!(p.settings.workers, 6, "no cliff back to the initial 4");
        assert!(p.changes.is_empty());
        assert!(p.status.recommendation.is_none());
        assert!(p.status.tuning_state.is_none());
        assert_eq!(
            condition(&p.status.conditions, TUNED).unwrap().reason,
            "TuningOff"
        );
        assert_eq!(p.requeue_after, IDLE_RESYNC);
    }

    #[test]
    fn metrics_failure_degrades_once_and_changes_nothing() {
        let c = config("Auto");
        let first = pl(input(&c, &PhpAppServerStatus::default(), None, t(0)));
        let failing = TuningInput {
            sample: Err("connection refused".into()),
            newest_oom: None,
            pods: Vec::new(),
            jobs_depth: None,
        };
        let p = pl(input(&c, &first.status, Some(failing.clone()), t(1)));
        assert_eq!(p.settings, first.settings);
        let degraded = condition(&p.status.conditions, DEGRADED).unwrap();
        assert_eq!(
            (degraded.status.as_str(), degraded.reason.as_str()),
            ("True", "MetricsUnavailable")
        );
        assert!(degraded.message.contains("connection refused"));
        assert_eq!(p.warnings.len(), 1);
        assert_eq!(
            condition(&p.status.conditions, TUNED).unwrap().status,
            "Unknown"
        );
        // Still failing: no second warning.
        let p2 = pl(input(&c, &p.status, Some(failing), t(40)));
        assert!(p2.warnings.is_empty());
    }

    #[test]
    fn an_empty_window_is_collecting_not_degraded() {
        let c = config("Auto");
        let empty = TuningInput {
            sample: Ok(AppSample::default()),
            newest_oom: None,
            pods: Vec::new(),
            jobs_depth: None,
        };
        let p = pl(input(&c, &PhpAppServerStatus::default(), Some(empty), t(0)));
        assert_eq!(
            condition(&p.status.conditions, TUNED).unwrap().reason,
            "CollectingMetrics"
        );
        assert_eq!(
            condition(&p.status.conditions, DEGRADED).unwrap().status,
            "False"
        );
        assert!(p.status.observed.is_none());
    }

    #[test]
    fn an_unchanged_world_plans_an_unchanged_status() {
        // No reconcile storm: planning again from the written status, with nothing new
        // observed, yields the very same status (so the controller writes nothing).
        let c = config("Auto");
        let first = pl(input(
            &c,
            &PhpAppServerStatus::default(),
            Some(busy(1.0)),
            t(0),
        ));
        let again = pl(input(&c, &first.status, None, t(5)));
        assert_eq!(again.status, first.status);
        assert!(again.changes.is_empty());
        assert_eq!(again.requeue_after, Duration::from_secs(25));
    }

    #[test]
    fn tuning_is_due_once_per_interval() {
        let c = config("Auto");
        let mut s = PhpAppServerStatus::default();
        assert!(tuning_due(&c, &s, t(0)));
        s.last_tune_time = Some(Time(t(0)));
        assert!(!tuning_due(&c, &s, t(10)));
        assert!(tuning_due(&c, &s, t(30)));
    }

    #[test]
    fn ready_follows_the_deployment() {
        let mut s = PhpAppServerStatus::default();
        readiness(
            &mut s,
            Some(DeploymentState {
                desired: 3,
                replicas: 3,
                ready: 1,
                ..DeploymentState::default()
            }),
            &[],
            Some(1),
            t(0),
        );
        let ready = condition(&s.conditions, READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.message.as_str()),
            ("False", "1 of 3 pods ready")
        );
        assert_eq!(s.ready_replicas, Some(1));
        readiness(
            &mut s,
            Some(DeploymentState {
                desired: 3,
                replicas: 3,
                ready: 3,
                updated: 3,
                available: 3,
                rolled_out: true,
                stalled: false,
            }),
            &[],
            Some(1),
            t(5),
        );
        let ready = condition(&s.conditions, READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "AllPodsReady")
        );
        assert_eq!(ready.last_transition_time, Time(t(5)));
        readiness(&mut s, None, &[], Some(1), t(9));
        assert_eq!(
            condition(&s.conditions, READY).unwrap().reason,
            "DeploymentPending"
        );
    }

    static JOBS_SPEC: std::sync::LazyLock<PhpAppServerSpec> = std::sync::LazyLock::new(|| {
        serde_json::from_value(json!({
            "image": "a", "command": ["php", "w.php"],
            "replicas": {"min": 1, "max": 4},
            "pool": {"workers": {"min": 2, "max": 16, "initial": 2}},
            "jobs": {"pipelines": {"m": {"driver": "Memory"}}, "targetDrainTime": "60s",
                     "targetUtilization": 0.75, "workers": {"min": 1, "max": 4}},
            "tuning": {"mode": "Auto"}
        }))
        .unwrap()
    });

    /// A pod whose HTTP pool idles while its jobs pool works a backlog of `depth`,
    /// acking 10 jobs/s with one busy worker, running `target` jobs workers.
    fn jobs_round(depth: f64, target: f64) -> TuningInput {
        use crate::metrics_source::jobs::{JobsMetrics, JobsWindow};
        let m = |acked| JobsMetrics {
            depth: Some(depth),
            acked,
            working: 1.0,
            target_workers: Some(target),
        };
        TuningInput {
            sample: Ok(AppSample {
                window: Duration::from_secs(60),
                pods: vec![PodSample {
                    pod: "p".into(),
                    live_workers: 2.0,
                    busy_workers: 0.2,
                    jobs_per_second: 1.0,
                    mean_job_seconds: Some(0.2),
                    target_workers: Some(2),
                    jobs: Some(JobsWindow {
                        first: m(0.0),
                        last: m(600.0),
                        seconds: 60.0,
                    }),
                    ..PodSample::default()
                }],
            }),
            newest_oom: None,
            pods: Vec::new(),
            jobs_depth: None,
        }
    }

    #[test]
    fn the_jobs_pool_is_tuned_next_to_the_http_pool_and_written_to_the_config_map() {
        let c = AppConfig::from_spec(&JOBS_SPEC).unwrap();
        let with_jobs = |previous: &PhpAppServerStatus, tuning: Option<TuningInput>, now| {
            let mut i = input(&c, previous, tuning, now);
            i.owner.spec = &JOBS_SPEC;
            pl(i)
        };
        let first = with_jobs(&PhpAppServerStatus::default(), None, t(0));
        assert_eq!(first.status.jobs.as_ref().unwrap().workers, 1);
        // 3 000 waiting, 0.1 s a job: (10 + 3000/60) × 0.1 = 6 busy → 8 workers at 75 %
        // → 2 pods of 4 (one step from 1 worker may reach 5).
        let p = with_jobs(&first.status, Some(jobs_round(3000.0, 1.0)), t(1));
        let jobs = p.status.jobs.as_ref().unwrap();
        assert_eq!((jobs.workers, jobs.replicas), (4, 2), "{}", jobs.reason);
        assert_eq!(p.settings.replicas, 2, "the jobs pool's pods");
        let reasons: Vec<&str> = p.changes.iter().map(Change::event_reason).collect();
        assert!(reasons.contains(&"JobsWorkersIncreased"), "{reasons:?}");
        assert!(reasons.contains(&"ReplicasIncreased"), "{reasons:?}");
        let rr = &p.desired.config_map.data.as_ref().unwrap()[resources::rr_config::CONFIG_FILE];
        let rr: serde_yaml::Value = serde_yaml::from_str(rr).unwrap();
        assert_eq!(rr["jobs"]["pool"]["num_workers"], 4);
        assert_eq!(
            p.desired.deployment.spec.as_ref().unwrap().replicas,
            Some(2)
        );
        // The next reconcile without a round keeps both.
        let again = with_jobs(&p.status, None, t(5));
        assert_eq!(again.settings.replicas, 2);
        assert_eq!(again.status.jobs, p.status.jobs);
        // A round whose pods still run 1 jobs worker decides nothing on top.
        let held = with_jobs(&p.status, Some(jobs_round(2500.0, 1.0)), t(31));
        let jobs = held.status.jobs.as_ref().unwrap();
        assert_eq!((jobs.workers, jobs.replicas), (4, 2), "{}", jobs.reason);
        assert!(held.changes.iter().all(|c| c.knob != Knob::JobsWorkers));
    }

    static ZERO_SPEC: std::sync::LazyLock<PhpAppServerSpec> = std::sync::LazyLock::new(|| {
        serde_json::from_value(json!({
            "image": "a", "command": ["php", "w.php"],
            "http": {"enabled": false},
            "replicas": {"min": 1, "max": 4},
            "jobs": {"pipelines": {"m": {"driver": "Memory"}}, "targetDrainTime": "60s",
                     "scaleToZero": {"depthQuery": "depth", "idleFor": "30s"}},
            "tuning": {"mode": "Auto", "stabilizationWindow": "60s",
                       "metrics": {"prometheusUrl": "http://127.0.0.1:9090"}}
        }))
        .unwrap()
    });

    #[test]
    fn a_jobs_only_app_scales_to_zero_when_idle_and_back_when_work_arrives() {
        let c = AppConfig::from_spec(&ZERO_SPEC).unwrap();
        let at = |previous: &PhpAppServerStatus, tuning: Option<TuningInput>, now| {
            let mut i = input(&c, previous, tuning, now);
            i.owner.spec = &ZERO_SPEC;
            pl(i)
        };
        let idle = |depth: f64| {
            let mut r = jobs_round(depth, 1.0);
            if let Ok(s) = &mut r.sample {
                let w = s.pods[0].jobs.as_mut().unwrap();
                w.last.acked = 0.0;
                w.first.working = 0.0;
                w.last.working = 0.0;
            }
            r.jobs_depth = Some(Ok(depth));
            r
        };
        let mut p = at(&PhpAppServerStatus::default(), None, t(0));
        let mut zero_at = None;
        for s in (30..=300).step_by(30) {
            p = at(&p.status, Some(idle(0.0)), t(s));
            if p.settings.replicas == 0 {
                zero_at.get_or_insert(s);
            }
        }
        // Idle from t=30; idleFor 30 s, but the 60 s window is longer: zero at t=90.
        assert_eq!(zero_at, Some(90), "{:?}", p.status.jobs);
        assert_eq!(
            p.desired.deployment.spec.as_ref().unwrap().replicas,
            Some(0)
        );
        let ready = condition(&p.status.conditions, READY).unwrap();
        assert_eq!(ready.reason, "ScaledToZero");
        assert!(ready.message.contains("queues idle"), "{}", ready.message);
        assert!(
            p.desired
                .service
                .spec
                .as_ref()
                .unwrap()
                .ports
                .as_ref()
                .unwrap()
                .iter()
                .all(|p| p.name.as_deref() != Some("http")),
            "a jobs-only app's Service has no HTTP port"
        );
        // At zero pods, the depth query reads 25: one pod at once.
        let none = TuningInput {
            sample: Ok(AppSample::default()),
            newest_oom: None,
            pods: Vec::new(),
            jobs_depth: Some(Ok(25.0)),
        };
        let back = at(&p.status, Some(none), t(330));
        assert_eq!(back.settings.replicas, 1, "{:?}", back.status.jobs);
        assert!(
            back.changes
                .iter()
                .any(|c| c.event_reason() == "ReplicasIncreased")
        );
    }
}
