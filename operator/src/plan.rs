//! The pure middle of a reconcile: from what was observed to what to write.
//!
//! [`plan`] decides the pool settings the owned objects get, the new status (conditions,
//! current settings, recommendation, observed aggregates, the tuner's memory), the
//! changes to announce as Events and when to look again. The controller does the I/O on
//! either side.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use pacer_crds::{PhpAppServerStatus, TuningMode};

use crate::app_config::AppConfig;
use crate::sample::AppSample;
use crate::status::{self, DEGRADED, READY, TUNED, Truth, set_condition};
use crate::tuning::{self, Change, Observation, Settings};

/// How often an object without tuning is looked at anyway (drift repair).
pub const IDLE_RESYNC: Duration = Duration::from_secs(300);

/// What the Deployment reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentState {
    /// Pods it wants (its `spec.replicas`).
    pub desired: i32,
    /// Pods it has.
    pub replicas: i32,
    /// Pods that are ready.
    pub ready: i32,
    /// Why a pod that is not ready waits, as the kubelet reports it: its container's
    /// waiting reason (`ImagePullBackOff`, `CrashLoopBackOff`, …) and the details.
    pub waiting: Option<PodWaiting>,
}

/// A container of a pod that waits (not while it is merely being created).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodWaiting {
    /// The kubelet's reason, CamelCase (`ErrImageNeverPull`, `ImagePullBackOff`, …).
    pub reason: String,
    /// "pod P, container C: message".
    pub detail: String,
}

/// What a tuning round observed.
#[derive(Clone, Debug, PartialEq)]
pub struct TuningInput {
    /// Window aggregates, or why there are none.
    pub sample: Result<AppSample, String>,
    /// Finish time of the newest OOM kill of an app container.
    pub newest_oom: Option<Timestamp>,
}

/// Everything [`plan`] needs.
#[derive(Clone, Debug)]
pub struct PlanInput<'a> {
    /// `metadata.generation` of the object.
    pub generation: Option<i64>,
    /// The parsed spec.
    pub config: &'a AppConfig,
    /// The status as it is.
    pub previous: &'a PhpAppServerStatus,
    /// Present when a tuning round ran (see [`tuning_due`]).
    pub tuning: Option<TuningInput>,
    /// The time.
    pub now: Timestamp,
}

/// What to write.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Settings for the owned objects.
    pub settings: Settings,
    /// The new status.
    pub status: PhpAppServerStatus,
    /// Applied changes, each announced as an Event.
    pub changes: Vec<Change>,
    /// Newly degraded: (reason, message) for a Warning Event.
    pub warning: Option<(String, String)>,
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

/// Sets `replicas`, `readyReplicas` and the Ready condition from the Deployment as the
/// apply left it (`None`: not there yet).
pub fn readiness(
    status: &mut PhpAppServerStatus,
    deployment: Option<DeploymentState>,
    generation: Option<i64>,
    now: Timestamp,
) {
    match deployment {
        None => {
            status.replicas = None;
            status.ready_replicas = None;
            set_condition(
                &mut status.conditions,
                READY,
                Truth::False,
                "DeploymentPending",
                "the Deployment is being created",
                generation,
                now,
            );
        }
        Some(d) => {
            status.replicas = Some(d.replicas);
            status.ready_replicas = Some(d.ready);
            let mut message = format!("{} of {} pods ready", d.ready, d.desired);
            let (truth, reason) = if d.ready >= d.desired && d.desired > 0 {
                (Truth::True, "AllPodsReady")
            } else if let Some(waiting) = &d.waiting {
                // The pod's own reason says what to fix (a wrong image, a crashing app).
                message = format!("{message}; {}", waiting.detail);
                (Truth::False, waiting.reason.as_str())
            } else {
                (Truth::False, "PodsNotReady")
            };
            set_condition(
                &mut status.conditions,
                READY,
                truth,
                reason,
                &message,
                generation,
                now,
            );
        }
    }
}

/// Plans one reconcile (everything but readiness, which [`readiness`] adds after the
/// apply).
#[must_use]
pub fn plan(input: PlanInput<'_>) -> Plan {
    let PlanInput {
        generation,
        config,
        previous,
        tuning,
        now,
    } = input;
    let policy = &config.policy;
    let initial = tuning::initial(policy);
    let applied = previous
        .current
        .as_ref()
        .and_then(status::settings_from)
        .map(|s| tuning::conform(policy, s));
    let mut settings = match config.mode {
        // Off: exactly the spec's values.
        TuningMode::Off => initial,
        // Recommend keeps what the pods have (switching from Auto changes nothing).
        TuningMode::Auto | TuningMode::Recommend => applied.unwrap_or(initial),
    };
    let mut next = previous.clone();
    next.observed_generation = generation;
    let mut changes = Vec::new();
    let mut warning = None;
    let was_degraded =
        status::condition(&previous.conditions, DEGRADED).is_some_and(|c| c.status == "True");

    match (config.mode, tuning) {
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
                "tuning.mode is Off: the pool uses the spec's values",
                generation,
                now,
            );
            set_condition(
                &mut next.conditions,
                DEGRADED,
                Truth::False,
                "AsExpected",
                "",
                generation,
                now,
            );
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
                set_condition(
                    &mut next.conditions,
                    DEGRADED,
                    Truth::False,
                    "AsExpected",
                    "",
                    generation,
                    now,
                );
            }
        }
    }

    next.current = Some(status::pool_settings(&settings));
    let requeue_after = next_tune_in(config, next.last_tune_time.as_ref(), now);
    Plan {
        settings,
        status: next,
        changes,
        warning,
        requeue_after,
    }
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
        }
    }

    fn input<'a>(
        config: &'a AppConfig,
        previous: &'a PhpAppServerStatus,
        tuning: Option<TuningInput>,
        now: Timestamp,
    ) -> PlanInput<'a> {
        PlanInput {
            generation: Some(3),
            config,
            previous,
            tuning,
            now,
        }
    }

    #[test]
    fn first_reconcile_uses_the_initial_settings() {
        let c = config("Auto");
        let p = plan(input(&c, &PhpAppServerStatus::default(), None, t(0)));
        assert_eq!(p.settings.workers, 4);
        assert_eq!(p.status.current.as_ref().unwrap().workers, 4);
        assert_eq!(p.status.observed_generation, Some(3));
        assert!(
            condition(&p.status.conditions, READY).is_none(),
            "set after the apply"
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
        let first = plan(input(&c, &PhpAppServerStatus::default(), None, t(0)));
        let p = plan(input(&c, &first.status, Some(busy(3.9)), t(1)));
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
        let first = plan(input(&c, &PhpAppServerStatus::default(), None, t(0)));
        let p = plan(input(&c, &first.status, Some(busy(3.9)), t(1)));
        assert_eq!(p.settings.workers, 4, "the pods keep their settings");
        assert!(p.changes.is_empty());
        assert_eq!(p.status.current.as_ref().unwrap().workers, 4);
        assert_eq!(p.status.recommendation.as_ref().unwrap().workers, 6);
        assert_eq!(
            condition(&p.status.conditions, TUNED).unwrap().reason,
            "RecommendOnly"
        );
        // The next recommendation builds on the last one, not on the unchanged pods.
        let p2 = plan(input(&c, &p.status, Some(busy(5.9)), t(40)));
        assert_eq!(p2.status.recommendation.as_ref().unwrap().workers, 9);
    }

    #[test]
    fn off_uses_the_spec_and_clears_the_tuner() {
        let auto = config("Auto");
        let first = plan(input(
            &auto,
            &PhpAppServerStatus::default(),
            Some(busy(3.9)),
            t(0),
        ));
        assert_eq!(first.settings.workers, 6);
        let off = config("Off");
        assert!(!tuning_due(&off, &first.status, t(100)));
        let p = plan(input(&off, &first.status, None, t(100)));
        assert_eq!(p.settings.workers, 4);
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
        let first = plan(input(&c, &PhpAppServerStatus::default(), None, t(0)));
        let failing = TuningInput {
            sample: Err("connection refused".into()),
            newest_oom: None,
        };
        let p = plan(input(&c, &first.status, Some(failing.clone()), t(1)));
        assert_eq!(p.settings, first.settings);
        let degraded = condition(&p.status.conditions, DEGRADED).unwrap();
        assert_eq!(
            (degraded.status.as_str(), degraded.reason.as_str()),
            ("True", "MetricsUnavailable")
        );
        assert!(degraded.message.contains("connection refused"));
        assert!(p.warning.is_some());
        assert_eq!(
            condition(&p.status.conditions, TUNED).unwrap().status,
            "Unknown"
        );
        // Still failing: no second warning.
        let p2 = plan(input(&c, &p.status, Some(failing), t(40)));
        assert!(p2.warning.is_none());
    }

    #[test]
    fn an_empty_window_is_collecting_not_degraded() {
        let c = config("Auto");
        let empty = TuningInput {
            sample: Ok(AppSample::default()),
            newest_oom: None,
        };
        let p = plan(input(&c, &PhpAppServerStatus::default(), Some(empty), t(0)));
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
        let first = plan(input(
            &c,
            &PhpAppServerStatus::default(),
            Some(busy(1.0)),
            t(0),
        ));
        let again = plan(input(&c, &first.status, None, t(5)));
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
                waiting: None,
            }),
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
                waiting: None,
            }),
            Some(1),
            t(5),
        );
        let ready = condition(&s.conditions, READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "AllPodsReady")
        );
        assert_eq!(ready.last_transition_time, Time(t(5)));
        readiness(
            &mut s,
            Some(DeploymentState {
                desired: 3,
                replicas: 3,
                ready: 2,
                waiting: Some(PodWaiting {
                    reason: "ImagePullBackOff".into(),
                    detail: "pod shop-1, container app: Back-off pulling image".into(),
                }),
            }),
            Some(1),
            t(7),
        );
        let ready = condition(&s.conditions, READY).unwrap();
        assert_eq!(
            (
                ready.status.as_str(),
                ready.reason.as_str(),
                ready.message.as_str()
            ),
            (
                "False",
                "ImagePullBackOff",
                "2 of 3 pods ready; pod shop-1, container app: Back-off pulling image"
            )
        );
        readiness(&mut s, None, Some(1), t(9));
        assert_eq!(
            condition(&s.conditions, READY).unwrap().reason,
            "DeploymentPending"
        );
    }
}
