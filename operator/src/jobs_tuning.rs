//! The jobs pool's recommendation (`spec.jobs`): jobs workers per pod and pods, from the
//! backlog. Pure: the observation and `now` come in, the size and the new state go out.
//!
//! # The rule
//! * The time one job holds a worker comes from Little's law over the window: busy jobs
//!   workers ÷ jobs acknowledged per second. It is remembered, so a window with nothing
//!   processed (zero pods, a burst into idle workers) still has an estimate.
//! * Arrivals are the acknowledged rate plus the depth's growth. The workers needed are
//!   `job time × (arrivals + depth ÷ targetDrainTime)`, divided by the utilisation target:
//!   the backlog is cleared within the target while the arrivals keep the workers at the
//!   target utilisation.
//! * Without a job time yet and with a backlog, the pool doubles (the first
//!   measurement then sizes it).
//! * Workers per pod grow first, up to `jobs.workers.max`; beyond, pods are added (within
//!   `replicas`), and the workers are spread evenly over them.
//! * Scale to zero (opt-in): once the depth is 0, nothing is processed and no worker is
//!   busy for `idleFor`, the pods go to 0; at 0 pods a depth above 0 brings one back.
//!
//! [`decide`] applies the HTTP tuner's rules ([`crate::tuning::scale`]) to the
//! recommendation, with the same helpers: the tolerance, up at once in HPA-sized steps,
//! down no lower than the stabilisation window's largest recommendation and at most one
//! step per period, and no change while a pod still runs another jobs pool size than the
//! last decision (`pacer_pool_target_workers{pool="jobs"}`, up to
//! [`crate::tuning::DELIVERY_TIMEOUT`]). Zero pods need the queues idle for `idleFor` and
//! for the stabilisation window; from zero, work brings a pod back at once.

use std::time::Duration;

use jiff::Timestamp;

use crate::tuning::scale::{stabilize, within_tolerance};
use crate::tuning::stats::{ceil_u32, clamp_floor_wins};
use crate::tuning::{Bounds, DELIVERY_TIMEOUT, Entry, MAX_HISTORY};

/// The job time is learned only from windows that acked at least this many jobs per
/// second: at a trickle (the tail of a drained backlog) the busy workers, a gauge read at
/// the window's ends, say little. (The gauge still overstates the job time in windows
/// that end idle; `pacer_pipeline_job_duration_seconds` would measure it directly.)
pub const MIN_ACKED_FOR_JOB_TIME: f64 = 1.0;

/// What the spec allows for the jobs pool.
#[derive(Clone, Debug, PartialEq)]
pub struct JobsPolicy {
    /// Jobs workers per pod.
    pub workers: Bounds<u32>,
    /// Pods (while there is work).
    pub replicas: Bounds<u32>,
    /// `jobs.targetDrainTime`.
    pub drain_time: Duration,
    /// `jobs.targetUtilization` (or `tuning.targetUtilization`).
    pub target_utilization: f64,
    /// `jobs.scaleToZero.idleFor`, when scale to zero is on.
    pub scale_to_zero_after: Option<Duration>,
}

/// The jobs pool's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobsSize {
    /// Jobs workers per pod.
    pub workers: u32,
    /// Pods.
    pub replicas: u32,
}

impl JobsSize {
    fn total(self) -> u32 {
        self.workers.saturating_mul(self.replicas)
    }
}

/// What the recommendation remembers between rounds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct JobsState {
    /// Seconds a job holds a worker, last measured.
    pub job_seconds: Option<f64>,
    /// Since when the queues have been idle (depth 0, nothing processed, no worker busy).
    pub idle_since: Option<Timestamp>,
}

/// One window's aggregates over every pod and pipeline (or, at zero pods, the depth
/// query alone: rates and busy workers 0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JobsObservation {
    /// Jobs ready in the brokers at the end of the window.
    pub depth: f64,
    /// How fast the depth grew over the window, jobs/s (negative while draining).
    pub depth_growth: f64,
    /// Jobs acknowledged per second over the window.
    pub acked_per_second: f64,
    /// Jobs workers busy on average over the window.
    pub busy_workers: f64,
}

/// A recommendation and why.
#[derive(Clone, Debug, PartialEq)]
pub struct JobsRecommendation {
    pub size: JobsSize,
    pub state: JobsState,
    pub reason: String,
}

/// The recommended size for `observed`, from `current` (see the module documentation).
#[must_use]
pub fn recommend(
    policy: &JobsPolicy,
    current: JobsSize,
    state: &JobsState,
    observed: &JobsObservation,
    now: Timestamp,
) -> JobsRecommendation {
    let job_seconds =
        if observed.acked_per_second >= MIN_ACKED_FOR_JOB_TIME && observed.busy_workers > 0.0 {
            Some(observed.busy_workers / observed.acked_per_second)
        } else {
            state.job_seconds
        };
    let idle =
        observed.depth <= 0.0 && observed.acked_per_second <= 0.0 && observed.busy_workers <= 0.0;
    let idle_since = if idle {
        Some(state.idle_since.unwrap_or(now))
    } else {
        None
    };
    let state = JobsState {
        job_seconds,
        idle_since,
    };
    let floor = JobsSize {
        workers: policy.workers.min,
        replicas: policy.replicas.min,
    };

    if idle {
        let idle_for = idle_since.map_or(Duration::ZERO, |t| elapsed(t, now));
        return match policy.scale_to_zero_after {
            Some(after) if idle_for >= after || current.replicas == 0 => JobsRecommendation {
                size: JobsSize {
                    workers: policy.workers.min,
                    replicas: 0,
                },
                state,
                reason: format!(
                    "queues idle for {}s (scale to zero after {}s)",
                    idle_for.as_secs(),
                    after.as_secs()
                ),
            },
            _ => JobsRecommendation {
                size: floor,
                state,
                reason: "queues idle".to_string(),
            },
        };
    }

    let drain = policy.drain_time.as_secs_f64().max(1.0);
    let arrivals = (observed.acked_per_second + observed.depth_growth).max(0.0);
    let (total, reason) = match job_seconds {
        Some(seconds) => {
            let busy = seconds * (arrivals + observed.depth / drain);
            let total = ceil_u32(busy / policy.target_utilization.clamp(0.05, 1.0));
            (
                total,
                format!(
                    "depth {:.0}, {:.1} jobs/s in, {:.3}s a job: {total} workers drain it within {}s at {:.0}% busy",
                    observed.depth,
                    arrivals,
                    seconds,
                    policy.drain_time.as_secs(),
                    policy.target_utilization * 100.0
                ),
            )
        }
        None => {
            let total = current.total().max(1).saturating_mul(2);
            (
                total,
                format!(
                    "depth {:.0} and no job time measured yet: {total} workers (doubled)",
                    observed.depth
                ),
            )
        }
    };
    JobsRecommendation {
        size: spread(policy, total.max(1)),
        state,
        reason,
    }
}

/// What [`decide`] remembers between rounds (persisted in the status).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobsMemory {
    /// The recommendation's own memory.
    pub recommend: JobsState,
    /// Recommendations of the stabilisation window, oldest first.
    pub history: Vec<Entry>,
    /// When workers or pods were last lowered.
    pub last_scale_down: Option<Timestamp>,
    /// When the size last changed.
    pub last_change: Option<Timestamp>,
}

/// One round's input to [`decide`].
#[derive(Clone, Debug, PartialEq)]
pub struct JobsRound {
    /// The window; `None` when the metrics could not be read (nothing changes, except
    /// that the spec's bounds hold).
    pub observed: Option<JobsObservation>,
    /// The jobs pool size each pod's pacer runs (`pacer_pool_target_workers{pool="jobs"}`).
    pub reported: Vec<u32>,
    /// The size is applied to the pods (mode Auto), so its delivery is awaited.
    pub await_delivery: bool,
}

/// [`decide`]'s verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct JobsDecision {
    /// The size to apply.
    pub size: JobsSize,
    /// The recommendation before stabilisation.
    pub recommended: JobsSize,
    /// The new memory.
    pub memory: JobsMemory,
    /// What was seen and decided, in words.
    pub reason: String,
}

/// The jobs pool's size for this round: [`recommend`], then the HTTP tuner's
/// stabilisation (see the module documentation).
#[must_use]
pub fn decide(
    policy: &JobsPolicy,
    stabilization_window: Duration,
    current: JobsSize,
    memory: &JobsMemory,
    round: &JobsRound,
    now: Timestamp,
) -> JobsDecision {
    let mut memory = memory.clone();
    let window_start = now
        .checked_sub(jiff::SignedDuration::try_from(stabilization_window).unwrap_or_default())
        .unwrap_or(now);
    memory
        .history
        .retain(|e| e.at > window_start && e.at <= now);
    let Some(observed) = &round.observed else {
        return JobsDecision {
            size: current,
            recommended: current,
            reason: "jobs metrics unavailable: the jobs pool keeps its size".to_owned(),
            memory,
        };
    };
    let rec = recommend(policy, current, &memory.recommend, observed, now);
    memory.recommend = rec.state;
    let window_max = |f: fn(&Entry) -> u32| memory.history.iter().map(f).max().unwrap_or(0);
    let (workers_max, replicas_max) = (window_max(|e| e.workers), window_max(|e| e.replicas));
    memory.history.push(Entry {
        at: now,
        workers: rec.size.workers,
        replicas: rec.size.replicas,
    });
    if memory.history.len() > MAX_HISTORY {
        let excess = memory.history.len() - MAX_HISTORY;
        memory.history.drain(..excess);
    }
    let since_change = memory.last_change.map(|t| elapsed(t, now));
    let pending = round.await_delivery
        && current.replicas > 0
        && round.reported.iter().any(|&w| w != current.workers)
        && since_change.is_none_or(|e| e < DELIVERY_TIMEOUT);
    let mut reason = rec.reason.clone();

    let size = if current.replicas == 0 {
        // From zero: work brings the pods back at once (nothing to stabilise against).
        rec.size
    } else if rec.size.replicas == 0 {
        // To zero: the queues have been idle for idleFor; also for the window.
        let idle_for = memory
            .recommend
            .idle_since
            .map_or(Duration::ZERO, |t| elapsed(t, now));
        if idle_for >= stabilization_window && !pending {
            rec.size
        } else {
            reason.push_str("; zero pods once idle for the stabilisation window");
            current
        }
    } else {
        let step = |current: u32, wanted: u32, window_max: u32| {
            let wanted = if within_tolerance(u64::from(current), u64::from(wanted)) {
                current
            } else {
                wanted
            };
            stabilize(current, wanted, window_max, memory.last_scale_down, now).value
        };
        let mut next = JobsSize {
            workers: step(current.workers, rec.size.workers, workers_max),
            replicas: step(current.replicas, rec.size.replicas, replicas_max),
        };
        if pending && next != current {
            reason.push_str("; held: the pods have not all received the last jobs pool size");
            next = current;
        }
        next
    };
    if size.workers < current.workers || size.replicas < current.replicas {
        memory.last_scale_down = Some(now);
    }
    if size != current {
        memory.last_change = Some(now);
    }
    JobsDecision {
        size,
        recommended: rec.size,
        memory,
        reason,
    }
}

/// `total` workers as pods × workers per pod: workers per pod first, then pods.
fn spread(policy: &JobsPolicy, total: u32) -> JobsSize {
    let per_pod_max = policy.workers.max.max(1);
    let replicas = clamp_floor_wins(
        total.div_ceil(per_pod_max),
        policy.replicas.min.max(1),
        policy.replicas.max.max(1),
    );
    let workers = clamp_floor_wins(
        total.div_ceil(replicas),
        policy.workers.min,
        policy.workers.max,
    );
    JobsSize { workers, replicas }
}

fn elapsed(since: Timestamp, now: Timestamp) -> Duration {
    let d = now.duration_since(since);
    if d.is_negative() {
        Duration::ZERO
    } else {
        d.unsigned_abs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> JobsPolicy {
        JobsPolicy {
            workers: Bounds { min: 1, max: 8 },
            replicas: Bounds { min: 1, max: 4 },
            drain_time: Duration::from_secs(120),
            target_utilization: 0.8,
            scale_to_zero_after: Some(Duration::from_secs(300)),
        }
    }

    /// A fake clock: `t(s)` is `s` seconds after a fixed start.
    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn obs(depth: f64, growth: f64, acked: f64, busy: f64) -> JobsObservation {
        JobsObservation {
            depth,
            depth_growth: growth,
            acked_per_second: acked,
            busy_workers: busy,
        }
    }

    const ONE: JobsSize = JobsSize {
        workers: 1,
        replicas: 1,
    };

    #[test]
    fn a_backlog_is_drained_within_the_target() {
        // 2 000 jobs waiting, one worker acking 10/s (0.1 s a job), nothing arriving:
        // 2000 / 120 s = 16.7 jobs/s → 1.67 busy workers → 3 at 80 %.
        let r = recommend(
            &policy(),
            ONE,
            &JobsState::default(),
            &obs(2000.0, -10.0, 10.0, 1.0),
            t(0),
        );
        assert_eq!(
            r.size,
            JobsSize {
                workers: 3,
                replicas: 1
            },
            "{}",
            r.reason
        );
        assert_eq!(r.state.job_seconds, Some(0.1));
        // The drained depth at those 3 workers and the target: 3 × 10/s × 120 s = 3 600 ≥ 2 000.
    }

    #[test]
    fn beyond_the_workers_per_pod_pods_are_added_and_workers_spread() {
        // 20 000 jobs, 0.2 s a job, 5/s arriving: (5 + 20000/120) × 0.2 = 34.3 busy → 43
        // workers at 80 %: 8 per pod at most → 6 pods, capped at 4 → 4 pods of 8.
        let r = recommend(
            &policy(),
            ONE,
            &JobsState::default(),
            &obs(20_000.0, 0.0, 5.0, 1.0),
            t(0),
        );
        assert_eq!(
            r.size,
            JobsSize {
                workers: 8,
                replicas: 4
            },
            "{}",
            r.reason
        );
        // 5 000: (5 + 41.7) × 0.2 = 9.3 busy → 12 workers → 2 pods of 6.
        let r = recommend(
            &policy(),
            ONE,
            &JobsState::default(),
            &obs(5000.0, 0.0, 5.0, 1.0),
            t(0),
        );
        assert_eq!(
            r.size,
            JobsSize {
                workers: 6,
                replicas: 2
            },
            "{}",
            r.reason
        );
    }

    #[test]
    fn steady_arrivals_hold_the_utilisation_target() {
        // No backlog, 40 jobs/s acked by 4 busy workers (0.1 s a job): 4 / 0.8 = 5.
        let r = recommend(
            &policy(),
            JobsSize {
                workers: 8,
                replicas: 1,
            },
            &JobsState::default(),
            &obs(0.0, 0.0, 40.0, 4.0),
            t(0),
        );
        assert_eq!(
            r.size,
            JobsSize {
                workers: 5,
                replicas: 1
            },
            "{}",
            r.reason
        );
        assert_eq!(r.state.idle_since, None, "working is not idle");
    }

    #[test]
    fn an_unmeasured_backlog_doubles_the_pool_and_a_remembered_job_time_sizes_it() {
        // Work arrives at idle workers: nothing acked in the window yet.
        let r = recommend(
            &policy(),
            JobsSize {
                workers: 2,
                replicas: 1,
            },
            &JobsState::default(),
            &obs(500.0, 8.0, 0.0, 0.0),
            t(0),
        );
        assert_eq!(
            r.size,
            JobsSize {
                workers: 4,
                replicas: 1
            },
            "{}",
            r.reason
        );
        let known = JobsState {
            job_seconds: Some(0.5),
            idle_since: None,
        };
        // 0.5 s × (8 + 500/120) = 6.1 busy → 8 workers.
        let r = recommend(
            &policy(),
            JobsSize {
                workers: 2,
                replicas: 1,
            },
            &known,
            &obs(500.0, 8.0, 0.0, 0.0),
            t(0),
        );
        assert_eq!(
            r.size,
            JobsSize {
                workers: 8,
                replicas: 1
            },
            "{}",
            r.reason
        );
    }

    #[test]
    fn idle_queues_go_to_zero_pods_after_the_window_and_come_back_with_work() {
        let p = policy();
        let mut state = JobsState {
            job_seconds: Some(0.1),
            idle_since: None,
        };
        let mut size = JobsSize {
            workers: 4,
            replicas: 2,
        };
        // Idle from t=0: the floor at once (the caller's stabilisation slows the way down).
        for (s, want) in [(0, 1), (120, 1), (299, 1), (300, 0), (400, 0)] {
            let r = recommend(&p, size, &state, &obs(0.0, 0.0, 0.0, 0.0), t(s));
            assert_eq!(r.size.replicas, want, "at {s}s: {}", r.reason);
            assert_eq!(r.state.idle_since, Some(t(0)));
            (size, state) = (r.size, r.state);
        }
        // The depth query reads 30 at zero pods: one pod, sized by the remembered job time.
        let r = recommend(&p, size, &state, &obs(30.0, 0.5, 0.0, 0.0), t(500));
        assert_eq!(
            r.size,
            JobsSize {
                workers: 1,
                replicas: 1
            },
            "{}",
            r.reason
        );
        assert_eq!(r.state.idle_since, None);
    }

    #[test]
    fn a_blip_of_work_restarts_the_idle_window() {
        let p = policy();
        let state = JobsState {
            job_seconds: Some(0.1),
            idle_since: Some(t(0)),
        };
        let r = recommend(&p, ONE, &state, &obs(0.0, 0.0, 0.2, 0.02), t(200));
        assert_eq!(r.state.idle_since, None);
        let r = recommend(&p, ONE, &r.state, &obs(0.0, 0.0, 0.0, 0.0), t(400));
        assert_eq!(
            (r.size.replicas, r.state.idle_since),
            (1, Some(t(400))),
            "{}",
            r.reason
        );
    }

    #[test]
    fn a_trickle_does_not_teach_the_job_time() {
        let known = JobsState {
            job_seconds: Some(0.05),
            idle_since: None,
        };
        // 0.2 jobs/s with one worker seen busy at a window's end: not 5 s a job.
        let r = recommend(&policy(), ONE, &known, &obs(0.0, 0.0, 0.2, 1.0), t(0));
        assert_eq!(r.state.job_seconds, Some(0.05));
        let r = recommend(&policy(), ONE, &known, &obs(0.0, 0.0, 2.0, 1.0), t(0));
        assert_eq!(r.state.job_seconds, Some(0.5));
    }

    #[test]
    fn without_scale_to_zero_the_floor_is_replicas_min() {
        let p = JobsPolicy {
            scale_to_zero_after: None,
            ..policy()
        };
        let idle = JobsState {
            job_seconds: None,
            idle_since: Some(t(0)),
        };
        let r = recommend(&p, ONE, &idle, &obs(0.0, 0.0, 0.0, 0.0), t(86_400));
        assert_eq!(r.size, ONE, "{}", r.reason);
    }

    fn round(o: JobsObservation, reported: &[u32]) -> JobsRound {
        JobsRound {
            observed: Some(o),
            reported: reported.to_vec(),
            await_delivery: true,
        }
    }

    const WINDOW: Duration = Duration::from_secs(300);

    #[test]
    fn decide_grows_in_hpa_steps_and_waits_for_delivery() {
        let p = policy();
        // 20 000 jobs at 0.2 s: the recommendation is 4 pods of 8; one step from 1 × 1
        // is up to 5 workers and 5 pods (max(2×, +4)).
        let d = decide(
            &p,
            WINDOW,
            ONE,
            &JobsMemory::default(),
            &round(obs(20_000.0, 0.0, 5.0, 1.0), &[1]),
            t(0),
        );
        assert_eq!(
            d.recommended,
            JobsSize {
                workers: 8,
                replicas: 4
            }
        );
        assert_eq!(
            d.size,
            JobsSize {
                workers: 5,
                replicas: 4
            },
            "{}",
            d.reason
        );
        assert_eq!(d.memory.last_change, Some(t(0)));
        // Next round: one pod still runs 1 jobs worker: nothing is decided on top.
        let d2 = decide(
            &p,
            WINDOW,
            d.size,
            &d.memory,
            &round(obs(19_000.0, -30.0, 20.0, 4.0), &[5, 1, 5, 5]),
            t(30),
        );
        assert_eq!(d2.size, d.size, "{}", d2.reason);
        assert!(d2.reason.contains("not all received"), "{}", d2.reason);
        // Delivered: the next step.
        let d3 = decide(
            &p,
            WINDOW,
            d.size,
            &d2.memory,
            &round(obs(18_000.0, -30.0, 20.0, 4.0), &[5, 5, 5, 5]),
            t(60),
        );
        assert_eq!(
            d3.size,
            JobsSize {
                workers: 8,
                replicas: 4
            },
            "{}",
            d3.reason
        );
        // Never delivered: after the delivery timeout the tuner decides again.
        let stuck = decide(
            &p,
            WINDOW,
            ONE,
            &JobsMemory {
                last_change: Some(t(0)),
                ..JobsMemory::default()
            },
            &round(obs(20_000.0, 0.0, 5.0, 1.0), &[3]),
            t(301),
        );
        assert_eq!(
            stuck.size,
            JobsSize {
                workers: 5,
                replicas: 4
            },
            "{}",
            stuck.reason
        );
    }

    #[test]
    fn decide_shrinks_after_the_window_one_step_a_period() {
        let p = policy();
        let big = JobsSize {
            workers: 8,
            replicas: 4,
        };
        let mut memory = JobsMemory {
            recommend: JobsState {
                job_seconds: Some(0.1),
                idle_since: None,
            },
            ..JobsMemory::default()
        };
        // Drained: 2 jobs/s at 0.1 s → 1 worker. The window remembers 4 × 8 from t=0.
        memory.history.push(Entry {
            at: t(0),
            workers: 8,
            replicas: 4,
        });
        let drained = obs(0.0, 0.0, 2.0, 0.2);
        let d = decide(&p, WINDOW, big, &memory, &round(drained, &[8; 4]), t(60));
        assert_eq!(d.size, big, "held by the window: {}", d.reason);
        // Past the window: 20 % at a time (at least one), once per minute.
        let d = decide(&p, WINDOW, big, &d.memory, &round(drained, &[8; 4]), t(301));
        assert_eq!(
            d.size,
            JobsSize {
                workers: 7,
                replicas: 3
            },
            "{}",
            d.reason
        );
        let d2 = decide(
            &p,
            WINDOW,
            d.size,
            &d.memory,
            &round(drained, &[7; 3]),
            t(331),
        );
        assert_eq!(d2.size, d.size, "one step per minute: {}", d2.reason);
        let d3 = decide(
            &p,
            WINDOW,
            d.size,
            &d2.memory,
            &round(drained, &[7; 3]),
            t(362),
        );
        assert_eq!(
            d3.size,
            JobsSize {
                workers: 6,
                replicas: 2
            },
            "{}",
            d3.reason
        );
    }

    #[test]
    fn decide_goes_to_zero_after_idle_and_window_and_back_at_once() {
        let p = JobsPolicy {
            scale_to_zero_after: Some(Duration::from_secs(60)),
            ..policy()
        };
        let idle = obs(0.0, 0.0, 0.0, 0.0);
        let mut size = ONE;
        let mut memory = JobsMemory::default();
        let mut zero_at = None;
        for s in (0..=600).step_by(30) {
            let d = decide(&p, WINDOW, size, &memory, &round(idle, &[1]), t(s));
            if d.size.replicas == 0 && zero_at.is_none() {
                zero_at = Some(s);
            }
            (size, memory) = (d.size, d.memory);
        }
        // idleFor is 60 s, but the window (300 s) is longer: zero at 300 s.
        assert_eq!(zero_at, Some(300));
        assert_eq!(size.replicas, 0);
        // Metrics unreadable at zero: nothing changes.
        let none = JobsRound {
            observed: None,
            reported: Vec::new(),
            await_delivery: true,
        };
        assert_eq!(decide(&p, WINDOW, size, &memory, &none, t(630)).size, size);
        // The depth query reads 500: back to at least one pod in this round.
        let d = decide(
            &p,
            WINDOW,
            size,
            &memory,
            &round(obs(500.0, 5.0, 0.0, 0.0), &[]),
            t(660),
        );
        assert!(d.size.replicas >= 1, "{}", d.reason);
        assert_eq!(d.memory.recommend.idle_since, None);
    }
}
