//! The jobs pool's part of a plan (`spec.jobs`): the size the pods' ConfigMap gets, the
//! pods the jobs pool asks for and its status. Pure, like [`crate::plan`], which calls
//! [`plan_jobs`] next to the HTTP tuner each round and combines the pods of both.
//!
//! The window comes from the pods' own series ([`crate::metrics_source::jobs`]); at zero
//! pods from the `jobs.scaleToZero.depthQuery` alone. The decision is
//! [`crate::jobs_tuning::decide`]: the same stabilisation, step limits and delivery rule
//! as the HTTP pool.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use pacer_crds::{HistoryEntry, JobsPoolStatus, TuningMode};

use crate::app_config::JobsConfig;
use crate::jobs_tuning::{self, JobsMemory, JobsObservation, JobsRound, JobsSize, JobsState};
use crate::metrics_source::jobs::{JobsWindow, observation};
use crate::sample::AppSample;
use crate::tuning::stats::clamp_floor_wins;
use crate::tuning::{Change, Entry, Knob};

/// One round's jobs input.
#[derive(Clone, Debug, PartialEq)]
pub struct JobsInput<'a> {
    /// The round's sample (`Err`: unreadable).
    pub sample: &'a Result<AppSample, String>,
    /// The depth query's answer (`None`: no query configured, or not asked).
    pub depth: Option<&'a Result<f64, String>>,
}

/// What [`plan_jobs`] decided.
#[derive(Clone, Debug, PartialEq)]
pub struct JobsPlan {
    /// The size to write (jobs workers per pod into the ConfigMap; pods asked for).
    pub size: JobsSize,
    /// The jobs pool's status.
    pub status: JobsPoolStatus,
    /// Changes to announce.
    pub changes: Vec<Change>,
}

/// The jobs pool's size in force: the previous status within the spec's bounds (0 pods
/// only with scale to zero), else the initial size on `replicas` pods.
#[must_use]
pub fn current(jobs: &JobsConfig, previous: Option<&JobsPoolStatus>, replicas: u32) -> JobsSize {
    let p = &jobs.policy;
    match previous {
        Some(s) => {
            let replicas = u32::try_from(s.replicas).unwrap_or(0);
            JobsSize {
                workers: clamp_floor_wins(
                    u32::try_from(s.workers).unwrap_or(0),
                    p.workers.min,
                    p.workers.max,
                ),
                replicas: if replicas == 0 && p.scale_to_zero_after.is_some() {
                    0
                } else {
                    clamp_floor_wins(replicas, p.replicas.min, p.replicas.max)
                },
            }
        }
        None => JobsSize {
            workers: clamp_floor_wins(jobs.initial_workers, p.workers.min, p.workers.max),
            replicas,
        },
    }
}

/// The observation of a round: the pods' windows, or at zero pods the depth query. The
/// depth is the larger of the pods' and the query's (a broker that cannot say its depth
/// to pacer may still export it).
fn observe(input: &JobsInput<'_>) -> Option<(JobsObservation, Vec<u32>)> {
    let sample = input.sample.as_ref().ok()?;
    let windows: Vec<JobsWindow> = sample.pods.iter().filter_map(|p| p.jobs.clone()).collect();
    let queried = input.depth.and_then(|d| d.as_ref().ok()).copied();
    let reported = windows
        .iter()
        .filter_map(|w| w.last.target_workers)
        .filter(|w| w.is_finite() && *w >= 0.0)
        .map(|w| w.round() as u32)
        .collect();
    if windows.is_empty() {
        // No pod with a window: only the query can say something (at zero pods, or
        // while the first pod warms up).
        let depth = queried?;
        return Some((
            JobsObservation {
                depth,
                depth_growth: 0.0,
                acked_per_second: 0.0,
                busy_workers: 0.0,
            },
            reported,
        ));
    }
    let mut o = observation(&windows);
    if let Some(d) = queried {
        o.depth = o.depth.max(d);
    }
    Some((o, reported))
}

fn memory_of(s: Option<&JobsPoolStatus>) -> JobsMemory {
    let Some(s) = s else {
        return JobsMemory::default();
    };
    JobsMemory {
        recommend: JobsState {
            job_seconds: s.job_seconds,
            idle_since: s.idle_since.as_ref().map(|t| t.0),
        },
        history: s
            .history
            .iter()
            .map(|h| Entry {
                at: h.time.0,
                workers: u32::try_from(h.workers).unwrap_or(0),
                replicas: u32::try_from(h.replicas).unwrap_or(0),
            })
            .collect(),
        last_scale_down: s.last_scale_down_time.as_ref().map(|t| t.0),
        last_change: s.last_change_time.as_ref().map(|t| t.0),
    }
}

fn i32_of(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Plans the jobs pool for one reconcile. Without a round (`input` `None`: not due, mode
/// Off, paused) the size in force is kept; in mode Recommend the status says what the
/// tuner would do and the size stays.
#[must_use]
pub fn plan_jobs(
    jobs: &JobsConfig,
    stabilization_window: Duration,
    mode: TuningMode,
    previous: Option<&JobsPoolStatus>,
    replicas_now: u32,
    input: Option<&JobsInput<'_>>,
    now: Timestamp,
) -> JobsPlan {
    let current = current(jobs, previous, replicas_now);
    let mut status = previous.cloned().unwrap_or_default();
    let mut size = current;
    let mut changes = Vec::new();
    if let (Some(input), true) = (input, mode != TuningMode::Off) {
        let observed = observe(input);
        let round = JobsRound {
            observed: observed.as_ref().map(|(o, _)| *o),
            reported: observed
                .as_ref()
                .map(|(_, r)| r.clone())
                .unwrap_or_default(),
            await_delivery: mode == TuningMode::Auto,
        };
        let decision = jobs_tuning::decide(
            &jobs.policy,
            stabilization_window,
            current,
            &memory_of(previous),
            &round,
            now,
        );
        let m = &decision.memory;
        status.job_seconds = m.recommend.job_seconds.map(|s| (s * 1e4).round() / 1e4);
        status.idle_since = m.recommend.idle_since.map(Time);
        status.history = m
            .history
            .iter()
            .map(|e| HistoryEntry {
                time: Time(e.at),
                workers: i32_of(e.workers),
                replicas: i32_of(e.replicas),
            })
            .collect();
        status.last_scale_down_time = m.last_scale_down.map(Time);
        status.last_change_time = m.last_change.map(Time);
        if let Some((o, reported)) = &observed {
            status.depth = Some(round2(o.depth));
            status.acked_per_second = Some(round2(o.acked_per_second));
            status.busy_workers = Some(round2(o.busy_workers));
            status.reported_pods = Some(i32::try_from(reported.len()).unwrap_or(i32::MAX));
            status.matching_pods = Some(
                i32::try_from(
                    reported
                        .iter()
                        .filter(|&&w| w == decision.size.workers)
                        .count(),
                )
                .unwrap_or(i32::MAX),
            );
        }
        if mode == TuningMode::Auto {
            size = decision.size;
            status.reason = decision.reason.clone();
            if size.workers != current.workers {
                changes.push(Change {
                    knob: Knob::JobsWorkers,
                    from: u64::from(current.workers),
                    to: u64::from(size.workers),
                    reason: decision.reason,
                });
            }
        } else {
            status.reason = format!(
                "tuning.mode is Recommend: {} jobs workers on {} pods — {}",
                decision.recommended.workers, decision.recommended.replicas, decision.reason
            );
        }
    }
    status.workers = i32_of(size.workers);
    status.replicas = i32_of(size.replicas);
    JobsPlan {
        size,
        status,
        changes,
    }
}

/// The pods of the app: the jobs pool's alone for a jobs-only app (0 possible), else
/// the larger of the HTTP tuner's and the jobs pool's (an app that serves HTTP never goes
/// below the HTTP tuner's pods).
#[must_use]
pub fn combined_replicas(http: u32, jobs: u32, serves_http: bool) -> u32 {
    if serves_http { http.max(jobs) } else { jobs }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs_tuning::JobsPolicy;
    use crate::metrics_source::jobs::JobsMetrics;
    use crate::sample::PodSample;
    use crate::tuning::Bounds;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn config(scale_to_zero: bool) -> JobsConfig {
        JobsConfig {
            policy: JobsPolicy {
                workers: Bounds { min: 1, max: 8 },
                replicas: Bounds { min: 1, max: 4 },
                drain_time: Duration::from_secs(60),
                target_utilization: 0.8,
                scale_to_zero_after: scale_to_zero.then_some(Duration::from_secs(30)),
            },
            initial_workers: 1,
            depth_query: scale_to_zero.then(|| "q".to_owned()),
        }
    }

    /// One pod's window: `depth` at both ends, `acked` in 30 s, `working` busy, running
    /// `target` jobs workers.
    fn pod(depth: f64, acked: f64, working: f64, target: f64) -> PodSample {
        let m = |acked| JobsMetrics {
            depth: Some(depth),
            acked,
            working,
            target_workers: Some(target),
        };
        PodSample {
            pod: "p".into(),
            jobs: Some(JobsWindow {
                first: m(0.0),
                last: m(acked),
                seconds: 30.0,
            }),
            ..PodSample::default()
        }
    }

    fn sample(pods: Vec<PodSample>) -> Result<AppSample, String> {
        Ok(AppSample {
            window: Duration::from_secs(60),
            pods,
        })
    }

    const WINDOW: Duration = Duration::from_secs(120);

    /// One round of `c` in `mode` on this sample and depth query, from `previous`.
    fn round(
        c: &JobsConfig,
        mode: TuningMode,
        previous: Option<&JobsPoolStatus>,
        replicas: u32,
        sample: &Result<AppSample, String>,
        depth: Option<&Result<f64, String>>,
        now: Timestamp,
    ) -> JobsPlan {
        let input = JobsInput { sample, depth };
        plan_jobs(c, WINDOW, mode, previous, replicas, Some(&input), now)
    }

    #[test]
    fn a_backlog_grows_the_pool_and_the_status_says_so() {
        let c = config(false);
        // 2 000 waiting, one worker acking 10/s: 0.1 s a job, (10 + 2000/60) × 0.1 = 4.3
        // busy → 6 at 80 %; one step from 1 is 5.
        let s = sample(vec![pod(2000.0, 300.0, 1.0, 1.0)]);
        let p = round(&c, TuningMode::Auto, None, 1, &s, None, t(0));
        assert_eq!(
            p.size,
            JobsSize {
                workers: 5,
                replicas: 1
            },
            "{}",
            p.status.reason
        );
        assert_eq!((p.status.workers, p.status.replicas), (5, 1));
        assert_eq!(p.status.depth, Some(2000.0));
        assert_eq!(p.status.acked_per_second, Some(10.0));
        assert_eq!(p.status.job_seconds, Some(0.1));
        assert_eq!(
            (p.status.reported_pods, p.status.matching_pods),
            (Some(1), Some(0))
        );
        assert_eq!(p.changes.len(), 1);
        assert_eq!(p.changes[0].event_reason(), "JobsWorkersIncreased");
        // Not delivered yet (the pod still runs 1): held.
        let s = sample(vec![pod(1500.0, 300.0, 1.0, 1.0)]);
        let p2 = round(&c, TuningMode::Auto, Some(&p.status), 1, &s, None, t(30));
        assert_eq!(p2.size, p.size, "{}", p2.status.reason);
        assert!(p2.changes.is_empty());
        // Without a round the size in force stays.
        let p3 = plan_jobs(
            &c,
            WINDOW,
            TuningMode::Auto,
            Some(&p2.status),
            1,
            None,
            t(40),
        );
        assert_eq!(p3.size, p.size);
    }

    #[test]
    fn recommend_mode_keeps_the_size() {
        let c = config(false);
        let s = sample(vec![pod(2000.0, 300.0, 1.0, 1.0)]);
        let p = round(&c, TuningMode::Recommend, None, 1, &s, None, t(0));
        assert_eq!(
            p.size,
            JobsSize {
                workers: 1,
                replicas: 1
            }
        );
        assert!(p.changes.is_empty());
        assert!(
            p.status.reason.contains("6 jobs workers"),
            "{}",
            p.status.reason
        );
    }

    #[test]
    fn zero_pods_are_kept_and_the_depth_query_brings_one_back() {
        let c = config(true);
        let at_zero = JobsPoolStatus {
            workers: 1,
            replicas: 0,
            job_seconds: Some(0.1),
            ..JobsPoolStatus::default()
        };
        // The spec's replicas.min is 1, but zero pods stay zero with scale to zero …
        assert_eq!(current(&c, Some(&at_zero), 1).replicas, 0);
        // … and not without.
        assert_eq!(current(&config(false), Some(&at_zero), 1).replicas, 1);
        let none = sample(Vec::new());
        let empty = Ok(0.0);
        let p = round(
            &c,
            TuningMode::Auto,
            Some(&at_zero),
            0,
            &none,
            Some(&empty),
            t(0),
        );
        assert_eq!(p.size.replicas, 0, "{}", p.status.reason);
        let work = Ok(40.0);
        let p = round(
            &c,
            TuningMode::Auto,
            Some(&p.status),
            0,
            &none,
            Some(&work),
            t(30),
        );
        assert_eq!(p.size.replicas, 1, "{}", p.status.reason);
        assert_eq!(p.status.depth, Some(40.0));
        // The query failing at zero pods changes nothing.
        let failed = Err("refused".to_owned());
        let p = round(
            &c,
            TuningMode::Auto,
            Some(&at_zero),
            0,
            &none,
            Some(&failed),
            t(60),
        );
        assert_eq!(p.size.replicas, 0);
    }

    #[test]
    fn pods_combine_but_an_http_app_never_drops_below_its_own() {
        assert_eq!(combined_replicas(2, 4, true), 4);
        assert_eq!(combined_replicas(3, 0, true), 3);
        assert_eq!(combined_replicas(3, 0, false), 0);
    }
}
