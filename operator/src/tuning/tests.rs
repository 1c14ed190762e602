use std::time::Duration;

use proptest::prelude::*;

use super::fixtures::{
    MI, leaky, max_jobs_raise_case, observe, pod, pod_sample, policy, sample, settings, t,
};
use super::*;
use crate::metrics_source::PodTarget;
use crate::sample::PodSample;

/// The first decision on `pods` at `workers` per pod (one pod, the test policy).
fn first_round(workers: u32, pods: Vec<PodSample>) -> Decision {
    decide(
        &policy(),
        &settings(workers),
        &State::default(),
        &observe(pods),
        t(0),
    )
}

#[test]
fn busy_above_target_scales_up_at_once() {
    let d = first_round(4, vec![pod(3.8, 4.0, 0.0)]);
    // 3.8 busy / 0.7 = 5.43 → 6 workers.
    assert_eq!(d.settings.workers, 6);
    assert_eq!(d.changes.len(), 1);
    assert_eq!(d.changes[0].knob, Knob::Workers);
    assert_eq!(d.changes[0].event_reason(), "WorkersIncreased");
    assert!(
        d.changes[0].reason.contains("70 %"),
        "{}",
        d.changes[0].reason
    );
}

#[test]
fn waiting_requests_are_drained_not_counted_one_worker_each() {
    let d = first_round(4, vec![pod(4.0, 4.0, 300.0)]);
    // (4 busy + 300 waiting × 0.1 s ÷ 10 s) / 0.7 = 10.
    assert_eq!(d.settings.workers, 8, "at most doubled in one step");
    assert!(
        d.changes[0].reason.contains("at most 8 in one step"),
        "{}",
        d.changes[0].reason
    );
    // With 6 workers the busy ones (4 / 0.7 = 6) do not ask for more: the queue alone
    // waits for a second look, 30 s later.
    let first = first_round(6, vec![pod(4.0, 4.0, 300.0)]);
    assert_eq!(first.settings.workers, 6);
    assert_eq!(first.state.queue_spike, Some(t(0)));
    let d = decide(
        &policy(),
        &settings(6),
        &first.state,
        &observe(vec![pod(4.0, 4.0, 300.0)]),
        t(30),
    );
    assert_eq!(d.settings.workers, 10);
}

/// The slowdown trace: the database slowed down two seconds before a scrape, which saw
/// every stuck job as a busy worker, while the window's completed jobs still took their
/// usual time. Busy workers that arrivals × job time do not explain wait a second look,
/// like a queue: by then the jobs show as slow (a condition, not more workers) — or the
/// demand is real and the second look adds the workers.
#[test]
fn busy_workers_the_window_does_not_explain_wait_a_second_look() {
    // 8 busy of 8, but 40 jobs/s × 0.1 s = 4 workers' worth of completions.
    let mut p = pod(8.0, 8.0, 0.0);
    p.jobs_per_second = 40.0;
    let first = first_round(8, vec![p.clone()]);
    assert_eq!(first.settings.workers, 8, "{}", first.summary);
    assert_eq!(first.state.queue_spike, Some(t(0)));
    // Still so 30 s later: real, 8 / 0.7 → 12.
    let d = decide(
        &policy(),
        &settings(8),
        &first.state,
        &observe(vec![p]),
        t(30),
    );
    assert_eq!(d.settings.workers, 12);
    // Busy workers the completions explain are acted on at once.
    let d = first_round(8, vec![pod(8.0, 8.0, 0.0)]);
    assert_eq!(d.settings.workers, 12);
    // So is a small pool's gauge within its noise (3 busy, 1.9 explained: the daily-week
    // trace's weekend nights).
    let mut small = pod(3.0, 3.0, 0.0);
    small.jobs_per_second = 19.0;
    let d = first_round(3, vec![small]);
    assert_eq!(d.settings.workers, 5);
}

/// The first seconds of a slow dependency show as a few more busy workers than the window's
/// completions explain *and* a queue: each within the gauge's noise, together beyond it.
#[test]
fn a_busy_gauge_and_a_queue_the_window_does_not_explain_wait_together() {
    // 89 jobs/s × 0.1 s = 8.9 workers explained; the gauge reads 10.3 (+1.4, noise
    // √8.9 ≈ 3) and 200 waiting requests ask for 2 more workers: 3.4 unexplained.
    let mut p = pod(10.3, 14.0, 200.0);
    p.jobs_per_second = 89.0;
    let d = first_round(14, vec![p.clone()]);
    assert_eq!(d.settings.workers, 14, "{}", d.summary);
    assert_eq!(d.state.queue_spike, Some(t(0)));
    // Still there 30 s later: (10.3 + 2) / 0.7 → 18, at most 16 per pod.
    let d = decide(&policy(), &settings(14), &d.state, &observe(vec![p]), t(30));
    assert_eq!(d.settings.workers, 16, "{}", d.summary);
}

#[test]
fn refused_requests_count_as_arrivals() {
    let mut p = pod(4.0, 4.0, 0.0);
    p.jobs_per_second = 40.0;
    p.rejected_per_second = 30.0;
    p.mean_job_seconds = Some(0.1);
    // (40 + 30) req/s × 0.1 s = 7 busy-equivalent → 10 workers.
    let d = first_round(6, vec![p]);
    assert_eq!(d.settings.workers, 10);
}

#[test]
fn small_changes_within_tolerance_are_ignored() {
    // 7.35 busy / 0.7 = 10.5 → 11, within 10 % of 10.
    let d = first_round(10, vec![pod(7.35, 10.0, 0.0)]);
    assert_eq!(d.settings.workers, 10);
    assert!(d.changes.is_empty());
}

#[test]
fn scale_down_is_held_by_the_window() {
    let state = State {
        history: vec![Entry {
            at: t(-120),
            workers: 8,
            replicas: 1,
        }],
        ..State::default()
    };
    let d = decide(
        &policy(),
        &settings(8),
        &state,
        &observe(vec![pod(0.5, 8.0, 0.0)]),
        t(0),
    );
    assert_eq!(d.settings.workers, 8);
    assert!(d.changes.is_empty());
    // The low recommendation is remembered for later: 0.5 busy / 0.7 → 1, but a pool
    // keeps 0.5 + √0.5 → 2 (`scale::small_pool_floor`).
    assert_eq!(d.state.history.last().map(|e| e.workers), Some(2));
}

#[test]
fn scale_down_after_the_window_is_rate_limited() {
    let state = State {
        history: vec![Entry {
            at: t(-400),
            workers: 10,
            replicas: 1,
        }],
        ..State::default()
    };
    let d = decide(
        &policy(),
        &settings(10),
        &state,
        &observe(vec![pod(0.5, 10.0, 0.0)]),
        t(0),
    );
    // The old entry left the window; the pool shrinks by 20 %: 10 → 8.
    assert_eq!(d.settings.workers, 8);
    assert_eq!(d.state.last_scale_down, Some(t(0)));
    assert_eq!(d.changes[0].event_reason(), "WorkersDecreased");
    assert!(d.state.history.iter().all(|e| e.at > t(-300)));

    // 30 s later: too soon for the next step.
    let d2 = decide(
        &policy(),
        &d.settings,
        &State {
            history: vec![],
            ..d.state.clone()
        },
        &observe(vec![pod(0.5, 8.0, 0.0)]),
        t(30),
    );
    assert_eq!(d2.settings.workers, 8);

    // 60 s later: next step, at least one worker.
    let d3 = decide(
        &policy(),
        &d.settings,
        &State {
            history: vec![],
            ..d.state
        },
        &observe(vec![pod(0.5, 8.0, 0.0)]),
        t(60),
    );
    assert_eq!(d3.settings.workers, 7);
}

#[test]
fn missing_metrics_change_nothing() {
    let state = State::default();
    let obs = Observation::default();
    let d = decide(&policy(), &settings(8), &state, &obs, t(0));
    assert_eq!(d.settings, settings(8));
    assert!(d.changes.is_empty());
    assert!(d.summary.contains("no metrics"));
    // An empty sample (no pod had data) is the same as none.
    let d = decide(&policy(), &settings(8), &state, &observe(vec![]), t(0));
    assert_eq!(d.settings, settings(8));
}

#[test]
fn spec_bounds_clamp_and_report_when_load_exceeds_them() {
    let d = first_round(8, vec![pod(16.0, 16.0, 40.0)]);
    assert_eq!(d.settings.workers, 16);
    assert_eq!(d.problems.len(), 1, "{:?}", d.problems);
    assert_eq!(d.problems[0].kind, ProblemKind::AtCapacity);
    assert!(d.problems[0].message.contains("pool.workers.max"));
}

#[test]
fn edited_bounds_apply_even_without_metrics() {
    let mut p = policy();
    p.workers = Bounds { min: 2, max: 6 };
    let obs = Observation::default();
    let d = decide(&p, &settings(10), &State::default(), &obs, t(0));
    assert_eq!(d.settings.workers, 6);
}

#[test]
fn pods_are_added_once_workers_are_at_their_ceiling() {
    let mut p = policy();
    p.workers = Bounds { min: 1, max: 4 };
    p.replicas = Bounds { min: 1, max: 5 };
    // 10 busy in total / 0.7 → 15 workers → 4 pods of 4.
    let d = decide(
        &p,
        &settings(4),
        &State::default(),
        &observe(vec![pod(10.0, 4.0, 0.0)]),
        t(0),
    );
    assert_eq!(d.settings.replicas, 4);
    assert_eq!(d.settings.workers, 4);
    assert!(
        d.changes
            .iter()
            .any(|c| c.event_reason() == "ReplicasIncreased")
    );
}

#[test]
fn external_replicas_are_never_touched() {
    let mut p = policy();
    p.workers = Bounds { min: 1, max: 4 };
    p.replicas = Bounds { min: 1, max: 5 };
    p.replicas_external = true;
    let d = decide(
        &p,
        &settings(4),
        &State::default(),
        &observe(vec![pod(10.0, 4.0, 0.0)]),
        t(0),
    );
    assert_eq!(d.settings.replicas, 1);
    // Workers per pod divide the load over the pods that reported (the HPA's count).
    p.workers = Bounds { min: 1, max: 16 };
    let d = decide(
        &p,
        &settings(4),
        &State::default(),
        &observe(vec![
            pod(2.8, 4.0, 0.0),
            pod(2.8, 4.0, 0.0),
            pod(2.8, 4.0, 0.0),
        ]),
        t(0),
    );
    // 8.4 busy in all / 0.7 = 12 workers over 3 pods, 4 each; 2.8 busy per pod keep
    // 2.8 + √2.8 → 5 (`scale::small_pool_floor`).
    assert_eq!(d.settings.workers, 5);
    let d = decide(
        &p,
        &settings(4),
        &State::default(),
        &observe(vec![
            pod(5.6, 4.0, 0.0),
            pod(5.6, 4.0, 0.0),
            pod(5.6, 4.0, 0.0),
        ]),
        t(0),
    );
    assert_eq!(d.settings.workers, 8);
}

#[test]
fn memory_caps_the_workers_per_pod() {
    let mut p = policy();
    p.memory_limit = Setting::Fixed(512 * MI);
    let mut sample = pod(10.0, 4.0, 0.0);
    sample.worker_memory = vec![100 * MI; 4];
    sample.server_memory = Some(32 * MI);
    let mut s = settings(4);
    s.memory_limit = 512 * MI;
    let d = decide(&p, &s, &State::default(), &observe(vec![sample]), t(0));
    // (512 × 0.9 − 32) / (100 × 1.2) = 3.5 → 3 workers.
    assert_eq!(d.settings.workers, 3);
    assert!(
        d.changes[0].reason.contains("memory allows 3 workers"),
        "{}",
        d.changes[0].reason
    );
}

#[test]
fn the_spec_minimum_wins_over_the_memory_ceiling() {
    let mut p = policy();
    p.workers = Bounds { min: 5, max: 16 };
    p.memory_limit = Setting::Fixed(512 * MI);
    let mut sample = pod(10.0, 5.0, 0.0);
    sample.worker_memory = vec![100 * MI; 5];
    let mut s = settings(5);
    s.memory_limit = 512 * MI;
    let d = decide(&p, &s, &State::default(), &observe(vec![sample]), t(0));
    assert_eq!(d.settings.workers, 5);
}

/// CPU-bound workers (each busy worker burns 0.8 cores) against a 2-core limit.
#[test]
fn the_cpu_limit_caps_the_workers_per_pod() {
    let table = [
        // (cpu limit, cores used by 10 busy workers, workers now, expected workers)
        // 2 cores ÷ 0.8 cores per busy worker = 2.5 → 2; down by 20 % a step: 4 → 3.
        (Some(2000), Some(8.0), 4, 3),
        // I/O-bound: 0.05 cores per busy worker → 40 fit; the load (15) decides.
        (Some(2000), Some(0.5), 8, 15),
        // No limit, or no CPU measured: no CPU ceiling.
        (None, Some(8.0), 8, 15),
        (Some(2000), None, 8, 15),
    ];
    for (limit, cores, now, expected) in table {
        let mut p = policy();
        p.cpu_limit_millis = limit;
        let mut sample = pod(10.0, 4.0, 0.0);
        sample.worker_cpu_cores = cores;
        let d = decide(
            &p,
            &settings(now),
            &State::default(),
            &observe(vec![sample]),
            t(0),
        );
        assert_eq!(
            d.settings.workers, expected,
            "limit {limit:?}, cores {cores:?}"
        );
        if expected == 3 {
            let reason = &d.changes[0].reason;
            assert!(
                reason.contains("CPU limit of 2 cores runs 2 workers"),
                "{reason}"
            );
        }
    }
}

#[test]
fn max_jobs_follows_memory_growth_per_job() {
    let mut p = policy();
    p.max_worker_memory = Setting::Fixed(128 * MI);
    let mut s = settings(4);
    s.max_worker_memory = 128 * MI;
    let d = decide(
        &p,
        &s,
        &State::default(),
        &observe(vec![leaky(100.0 * 1024.0, 30.0 * MI as f64)]),
        t(0),
    );
    // headroom = min(128 − 30, 30 × 1) = 30 MiB; 30 MiB / 100 KiB = 307 jobs; from 500
    // a quarter at most per step.
    assert_eq!(d.settings.max_jobs, 375);
    let change = d.changes.iter().find(|c| c.knob == Knob::MaxJobs).unwrap();
    assert!(
        change.reason.contains("100.0 KiB per job"),
        "{}",
        change.reason
    );
}

#[test]
fn a_tight_worker_share_lowers_max_jobs_further() {
    let mut p = policy();
    p.max_worker_memory = Setting::Fixed(40 * MI);
    let mut s = settings(4);
    s.max_worker_memory = 40 * MI;
    s.max_jobs = 130;
    let d = decide(
        &p,
        &s,
        &State::default(),
        &observe(vec![leaky(100.0 * 1024.0, 30.0 * MI as f64)]),
        t(0),
    );
    // headroom = min(40 − 30, 15) = 10 MiB; 10 MiB / 100 KiB = 102 jobs.
    assert_eq!(d.settings.max_jobs, 102);
}

#[test]
fn no_measurable_growth_keeps_max_jobs() {
    let d = first_round(4, vec![leaky(10.0, 30.0 * MI as f64)]);
    assert_eq!(d.settings.max_jobs, DEFAULT_MAX_JOBS);
    let d = first_round(4, vec![pod(2.0, 4.0, 0.0)]);
    assert_eq!(d.settings.max_jobs, DEFAULT_MAX_JOBS);
}

#[test]
fn fixed_max_jobs_is_never_tuned() {
    let mut p = policy();
    p.max_jobs = Setting::Fixed(0);
    let mut s = settings(4);
    s.max_jobs = 0;
    let d = decide(
        &p,
        &s,
        &State::default(),
        &observe(vec![leaky(500.0 * 1024.0, 30.0 * MI as f64)]),
        t(0),
    );
    assert_eq!(d.settings.max_jobs, 0);
}

fn auto_memory_policy() -> Policy {
    let mut p = policy();
    p.memory_limit = Setting::Auto;
    p.memory = Bounds {
        min: 128 * MI,
        max: 2048 * MI,
    };
    p
}

fn with_memory(workers: u32, limit: u64) -> Settings {
    Settings {
        memory_limit: limit,
        ..settings(workers)
    }
}

fn memory_pod(peak: u64, worker: u64) -> PodSample {
    let mut p = pod(1.0, 4.0, 0.0);
    p.pod_memory_peak = Some(peak);
    p.worker_memory = vec![worker; 4];
    p.server_memory = Some(20 * MI);
    p
}

/// A pod with `workers` workers whose cgroup peaked at 76 MiB + 44 MiB per worker.
fn cgroup_pod(workers: f64) -> PodSample {
    let mut p = pod(workers * 0.5, workers, 0.0);
    p.memory_working_set = Some(((76.0 + 44.0 * workers) * MI as f64) as u64);
    p.memory_limit = Some(1024 * MI);
    p.worker_memory = vec![68 * MI; workers as usize];
    p.server_memory = Some(28 * MI);
    p
}

/// Feeds `rounds` rounds of 30 s, the live workers cycling through `from..from + spread`,
/// through decide; returns the last decision.
fn learn_around(
    policy: &Policy,
    mut s: Settings,
    mut state: State,
    rounds: i64,
    (from, spread): (i64, i64),
) -> Decision {
    let mut last = None;
    for i in 0..rounds {
        let workers = (from + i % spread) as f64;
        let d = decide(
            policy,
            &s,
            &state,
            &observe(vec![cgroup_pod(workers)]),
            t(i * 30),
        );
        s = d.settings;
        state = d.state.clone();
        last = Some(d);
    }
    last.unwrap()
}

/// [`learn_around`] with the workers swinging between 4 and 12.
fn learn(policy: &Policy, s: Settings, state: State, rounds: i64) -> Decision {
    learn_around(policy, s, state, rounds, (4, 9))
}

/// A memory model learned over 180 rounds of 4 workers at 2 GiB, then quiet: no history,
/// no recent scale-down, the last memory change at 0.
fn learned_memory_state(policy: &Policy) -> State {
    let mut state = learn(policy, with_memory(4, 2048 * MI), State::default(), 180).state;
    state.history.clear();
    state.last_scale_down = None;
    state.last_memory_change = Some(t(0));
    state
}

#[test]
fn memory_limit_comes_down_only_with_days_of_model_and_slowly() {
    // Workers fixed at 8 by the spec; the pods' live workers vary (restarts, recycling),
    // which is what the model learns the cost of a worker from.
    let mut p = auto_memory_policy();
    p.workers = Bounds { min: 8, max: 8 };
    let s = with_memory(8, 2048 * MI);
    // One quiet window is not enough: nothing is lowered in the first hour.
    let d = learn_around(&p, s, State::default(), 60, (7, 3));
    assert_eq!(d.settings.memory_limit, 2048 * MI);
    // After an hour the limit follows the model for the 8 workers decided — and holds
    // the largest pod seen now (9 live workers while one is replaced) + 10 %.
    let d = learn_around(&p, s, State::default(), 180, (7, 3));
    let limit = d.settings.memory_limit as f64 / MI as f64;
    let for_eight = (76.0 + 44.0 * 8.0) * memory::HEADROOM;
    let for_nine = (76.0 + 44.0 * 9.0) * memory::HEADROOM;
    assert!(
        limit >= for_eight && limit <= for_nine * (1.0 + MEMORY_UP_SLACK) + 2.0,
        "{limit} MiB, expected {for_eight}–{for_nine}"
    );
    let change = d.state.last_memory_change.unwrap();
    assert!(
        change > t(3600),
        "lowered after an hour of samples: {change}"
    );
}

#[test]
fn memory_limit_goes_up_at_once_and_workers_wait_for_it() {
    let p = auto_memory_policy();
    // A model learned at 4–12 workers, the limit sized for 4.
    let d = learn(&p, with_memory(4, 2048 * MI), State::default(), 180);
    let mut state = d.state;
    state.last_change = None;
    let small = with_memory(4, 400 * MI);
    // Now the load wants 8 workers: the limit rises at once, the workers wait for it.
    let mut busy = cgroup_pod(4.0);
    busy.busy_workers = 5.5;
    busy.jobs_per_second = 55.0;
    let d = decide(&p, &small, &state, &observe(vec![busy.clone()]), t(10_000));
    assert!(d.settings.memory_limit > 400 * MI, "{:?}", d.changes);
    // As many workers as 400 Mi holds now, the rest once it is raised.
    let fit = state
        .memory
        .workers_for(400.0 * MI as f64, None)
        .unwrap()
        .floor() as u32;
    assert!(fit < 8, "{fit}");
    assert_eq!(d.settings.workers, fit, "{:?}", d.changes);
    let workers = d.changes.iter().find(|c| c.knob == Knob::Workers).unwrap();
    assert!(
        workers.reason.contains("raised first"),
        "{}",
        workers.reason
    );
    let change = d
        .changes
        .iter()
        .find(|c| c.knob == Knob::MemoryLimit)
        .unwrap();
    assert_eq!(change.event_reason(), "MemoryLimitIncreased");
    // Once it is in force, the workers follow.
    let d2 = decide(&p, &d.settings, &d.state, &observe(vec![busy]), t(10_030));
    assert_eq!(d2.settings.workers, 8, "{:?}", d2.changes);
}

fn oom_at(secs: i64) -> Observation {
    Observation {
        newest_oom: Some(t(secs)),
        ..Observation::default()
    }
}

#[test]
fn an_oom_kill_bumps_the_memory_limit_once_per_episode() {
    let p = auto_memory_policy();
    let s = with_memory(4, 512 * MI);
    let d = decide(&p, &s, &State::default(), &oom_at(-10), t(0));
    // max(512 + 100, 512 × 1.2 = 614.4) → 615 Mi.
    assert_eq!(d.settings.memory_limit, 615 * MI);
    assert!(
        d.changes[0].reason.contains("OOM"),
        "{}",
        d.changes[0].reason
    );
    assert_eq!(d.state.last_oom, Some(t(-10)));
    // The same kill is not acted on twice; another one in the same episode is not either.
    let d2 = decide(&p, &d.settings, &d.state, &oom_at(-10), t(30));
    assert_eq!(d2.settings.memory_limit, 615 * MI);
    let d3 = decide(&p, &d.settings, &d.state, &oom_at(60), t(90));
    assert_eq!(d3.settings.memory_limit, 615 * MI);
    // A kill after the episode raises again: max(615 + 100, 738) = 738 Mi.
    let d4 = decide(&p, &d3.settings, &d3.state, &oom_at(700), t(720));
    assert_eq!(d4.settings.memory_limit, 738 * MI);
    // Small limits get at least +100 Mi.
    let d5 = decide(
        &p,
        &with_memory(4, 256 * MI),
        &State::default(),
        &oom_at(0),
        t(0),
    );
    assert_eq!(d5.settings.memory_limit, 356 * MI);
}

/// Under cgroup v1 the kernel kills a worker, not the container: no pod status shows it,
/// pacer's cgroup counter does.
#[test]
fn a_worker_killed_inside_a_living_container_counts_too() {
    let p = auto_memory_policy();
    let mut killed = cgroup_pod(4.0);
    killed.oom_kills = Some(1.0);
    let d = decide(
        &p,
        &with_memory(4, 512 * MI),
        &State::default(),
        &observe(vec![killed]),
        t(0),
    );
    assert_eq!(d.settings.memory_limit, 615 * MI);
    let change = d
        .changes
        .iter()
        .find(|c| c.knob == Knob::MemoryLimit)
        .unwrap();
    assert!(
        change.reason.contains("a worker was OOM-killed"),
        "{}",
        change.reason
    );
    // The model remembers where it hit: a limit for 4 workers is now at least 512 Mi.
    let limit = d.state.memory.limit_for(4.0, None).unwrap();
    assert!(limit >= 512.0 * MI as f64, "{limit}");
}

/// A pod of 2 workers whose cgroup reports `limit` as its limit and its working set, with
/// `kills` OOM kills in the window (a leak presses against whatever limit it has).
fn at_the_limit(limit: u64, kills: f64) -> Observation {
    let mut pod = cgroup_pod(2.0);
    pod.memory_working_set = Some(limit);
    pod.memory_limit = Some(limit);
    pod.oom_kills = Some(kills);
    let mut o = observe(vec![pod]);
    o.await_delivery = true;
    o
}

/// A leak fills the pod to its limit for the whole episode: the working set it reports is
/// the limit itself, raised or not, and must not raise the limit again on top of the
/// episode's one bump (×1.1 and more every round while the leak lasts). More workers still
/// raise it; after [`OOM_EPISODE`] the working set does again.
#[test]
fn within_an_oom_episode_nothing_else_raises_the_limit() {
    let p = auto_memory_policy();
    // The leak's first kill at 128 Mi → max(+100 Mi, ×1.2) = 228 Mi.
    let d = decide(
        &p,
        &with_memory(2, 128 * MI),
        &State::default(),
        &at_the_limit(128 * MI, 1.0),
        t(0),
    );
    assert_eq!(d.settings.memory_limit, 228 * MI, "{:?}", d.changes);
    let bump = d.state.last_oom_bump;
    assert_eq!(bump, Some(t(0)));
    // Not in force yet, then in force with the pod at 228 Mi, killed again and not, rounds
    // of 5 s: the same episode, no further raise, of either kind.
    let (mut s, mut state) = (d.settings, d.state);
    let rounds = [
        (128, 1.0),
        (128, 0.0),
        (228, 1.0),
        (228, 0.0),
        (228, 2.0),
        (228, 0.0),
    ];
    for (i, (limit, kills)) in rounds.into_iter().enumerate() {
        let now = t(5 * (i as i64 + 1));
        let d = decide(&p, &s, &state, &at_the_limit(limit * MI, kills), now);
        assert_eq!(
            d.settings.memory_limit,
            228 * MI,
            "round {i}: {:?}",
            d.changes
        );
        assert_eq!(d.state.last_oom_bump, bump, "round {i}");
        (s, state) = (d.settings, d.state);
    }
    // Load for 6 workers within the episode: the limit the model gives 6 workers.
    let mut busy = at_the_limit(228 * MI, 0.0);
    if let Some(sample) = busy.sample.as_mut() {
        sample.pods[0].busy_workers = 4.0;
        sample.pods[0].jobs_per_second = 40.0;
    }
    // (the workers wait for the limit they need).
    let more = decide(&p, &s, &state, &busy, t(60));
    assert!(more.settings.memory_limit > 228 * MI, "{:?}", more.changes);
    assert!(
        more.changes
            .iter()
            .any(|c| c.reason.contains("6 workers need")),
        "{:?}",
        more.changes
    );
    assert_eq!(more.state.last_oom_bump, bump);
    // After the episode the pod at its limit raises it again (by its working set).
    let after = OOM_EPISODE.as_secs() as i64 + 5;
    let d = decide(&p, &s, &state, &at_the_limit(228 * MI, 0.0), t(after));
    assert!(d.settings.memory_limit > 228 * MI, "{:?}", d.changes);
}

#[test]
fn an_oom_kill_at_the_maximum_is_a_problem() {
    let p = auto_memory_policy();
    let s = with_memory(4, 2048 * MI);
    let d = decide(&p, &s, &State::default(), &oom_at(-10), t(0));
    assert_eq!(d.settings.memory_limit, 2048 * MI);
    assert_eq!(d.problems[0].kind, ProblemKind::OutOfMemory);
    assert!(d.problems[0].message.contains("OOM"));
}

#[test]
fn max_worker_memory_follows_the_median_worker_in_steps() {
    // Workers of 40 MiB: 1.5 × 40 = 60 MiB, but a cut is at most a quarter (128 → 96).
    let d = first_round(4, vec![memory_pod(300 * MI, 40 * MI)]);
    assert_eq!(d.settings.max_worker_memory, 96 * MI);
    // Within a quarter of 1.5 × the median: nothing changes.
    let mut s = settings(4);
    s.max_worker_memory = 64 * MI;
    let d = decide(
        &policy(),
        &s,
        &State::default(),
        &observe(vec![memory_pod(300 * MI, 40 * MI)]),
        t(0),
    );
    assert_eq!(d.settings.max_worker_memory, 64 * MI);
}

#[test]
fn initial_settings_follow_the_spec() {
    let mut p = auto_memory_policy();
    p.initial_workers = 3;
    p.replicas = Bounds { min: 2, max: 4 };
    let s = initial(&p);
    assert_eq!(
        s,
        Settings {
            workers: 3,
            max_jobs: DEFAULT_MAX_JOBS,
            max_worker_memory: DEFAULT_MAX_WORKER_MEMORY,
            memory_limit: 2048 * MI,
            replicas: 2,
        }
    );
}

// ---- the fixes the simulator asked for (sim/BASELINE.md) -------------------------------

fn delivering(mut obs: Observation) -> Observation {
    obs.await_delivery = true;
    obs
}

fn reporting(busy: f64, live: f64, workers: u32) -> PodSample {
    let mut p = pod(busy, live, 0.0);
    p.target_workers = Some(workers);
    p
}

/// The kubelet delivers a ConfigMap within about a minute: a pod still on the old pool
/// size holds every setting it reads, whatever the load says.
#[test]
fn no_decision_until_the_pods_report_the_last_one() {
    let state = State {
        last_change: Some(t(-30)),
        ..State::default()
    };
    // Decided 8; one pod still runs 4 and is swamped.
    let obs = delivering(observe(vec![
        reporting(4.0, 4.0, 4),
        reporting(7.9, 8.0, 8),
    ]));
    let d = decide(&policy(), &settings(8), &state, &obs, t(0));
    assert_eq!(d.settings.workers, 8);
    assert!(d.changes.is_empty(), "{:?}", d.changes);
    // Every pod reports 8: the tuner decides again.
    let obs = delivering(observe(vec![
        reporting(7.9, 8.0, 8),
        reporting(7.9, 8.0, 8),
    ]));
    let d = decide(&policy(), &settings(8), &state, &obs, t(0));
    assert!(d.settings.workers > 8);
    assert_eq!(d.state.last_change, Some(t(0)));
    // A pod that never reports the decision does not block the tuner for ever.
    let obs = delivering(observe(vec![
        reporting(4.0, 4.0, 4),
        reporting(7.9, 8.0, 8),
    ]));
    let late = State {
        last_change: Some(t(-400)),
        ..State::default()
    };
    let d = decide(&policy(), &settings(8), &late, &obs, t(0));
    assert!(d.settings.workers > 8);
    assert!(d.summary.contains("deciding anyway"), "{}", d.summary);
    // In Recommend mode nothing is delivered, so nothing is awaited.
    let obs = observe(vec![reporting(4.0, 4.0, 4), reporting(7.9, 8.0, 8)]);
    assert!(
        decide(&policy(), &settings(8), &state, &obs, t(0))
            .settings
            .workers
            > 8
    );
}

/// A pending in-place resize holds the pool too (the workers it is for must not come
/// before the memory), and so does a pod still reporting the old limit.
#[test]
fn no_worker_increase_while_a_resize_is_pending() {
    let mut p = auto_memory_policy();
    p.memory = Bounds {
        min: 128 * MI,
        max: 4096 * MI,
    };
    let busy = || observe(vec![reporting(7.9, 8.0, 8)]);
    let mut obs = delivering(busy());
    obs.pods = vec![PodTarget {
        name: "app-1".into(),
        ready_since: Some(t(-3600)),
        resize_pending: true,
        ..PodTarget::default()
    }];
    let d = decide(
        &p,
        &with_memory(8, 1024 * MI),
        &State::default(),
        &obs,
        t(0),
    );
    assert_eq!(d.settings.workers, 8);
    assert!(d.changes.is_empty(), "{:?}", d.changes);
    // The cgroup still has the limit before the last change.
    let mut old = reporting(7.9, 8.0, 8);
    old.memory_limit = Some(512 * MI);
    let state = State {
        previous_memory_limit: Some(512 * MI),
        last_change: Some(t(-30)),
        ..State::default()
    };
    let d = decide(
        &p,
        &with_memory(8, 1024 * MI),
        &state,
        &delivering(observe(vec![old.clone()])),
        t(0),
    );
    assert_eq!(d.settings.workers, 8);
    // Resized: the pool grows.
    old.memory_limit = Some(1024 * MI);
    let d = decide(
        &p,
        &with_memory(8, 1024 * MI),
        &state,
        &delivering(observe(vec![old])),
        t(0),
    );
    assert!(d.settings.workers > 8, "{:?}", d.changes);
}

/// 30 minutes of healthy rounds teach the usual job time; then the database slows down.
#[test]
fn a_slow_dependency_is_a_condition_not_more_workers() {
    let mut p = policy();
    p.replicas = Bounds { min: 1, max: 10 };
    let mut s = settings(8);
    let mut state = State::default();
    let healthy = |busy: f64| {
        let mut x = pod(busy, 8.0, 0.0);
        x.jobs_per_second = busy / 0.06;
        x.mean_job_seconds = Some(0.06);
        x
    };
    for i in 0..60 {
        let d = decide(&p, &s, &state, &observe(vec![healthy(5.0)]), t(i * 30));
        s = d.settings;
        state = d.state;
    }
    let before = s;
    // Jobs 5× longer, completions flat (the pool is full), requests queue.
    let mut slow = pod(8.0, 8.0, 40.0);
    slow.jobs_per_second = 80.0;
    slow.mean_job_seconds = Some(0.3);
    for i in 60..70 {
        let d = decide(&p, &s, &state, &observe(vec![slow.clone()]), t(i * 30));
        assert_eq!(
            (d.settings.workers, d.settings.replicas),
            (before.workers, before.replicas)
        );
        assert_eq!(d.problems[0].kind, ProblemKind::DependencySlow);
        assert!(
            d.problems[0].message.contains("5.0×"),
            "{}",
            d.problems[0].message
        );
        s = d.settings;
        state = d.state;
    }
    // Recovered: the jobs are fast again and the problem is gone.
    let d = decide(&p, &s, &state, &observe(vec![healthy(5.0)]), t(70 * 30));
    assert!(d.problems.is_empty(), "{:?}", d.problems);
    // The next windows still hold slow jobs (1.4× the usual time) and the backlog they
    // left (300 waiting, 8 of 8 busy): the workers drain it, nothing is added for two
    // minutes (the `slowdown` trace: pods 3 → 6 for five minutes without the hold).
    let mut backlog = pod(8.0, 8.0, 300.0);
    backlog.jobs_per_second = 95.0;
    backlog.mean_job_seconds = Some(0.084);
    let held = decide(
        &p,
        &s,
        &d.state,
        &observe(vec![backlog.clone()]),
        t(71 * 30),
    );
    assert_eq!(
        (held.settings.workers, held.settings.replicas),
        (before.workers, before.replicas),
        "{:?}",
        held.changes
    );
    // The same load after the hold is demand.
    let d = decide(&p, &s, &held.state, &observe(vec![backlog]), t(75 * 30));
    assert!(d.settings.workers > before.workers, "{}", d.summary);
}

/// A failed scrape leaves a ready pod without numbers: its share of the load is not
/// taken as gone, and nothing is lowered.
#[test]
fn a_missing_pod_lowers_nothing() {
    let mut p = policy();
    p.replicas = Bounds { min: 1, max: 10 };
    let mut s = settings(8);
    s.replicas = 3;
    let ready = |name: &str| PodTarget {
        name: name.into(),
        ready_since: Some(t(-3600)),
        ..PodTarget::default()
    };
    let mut a = pod(1.0, 8.0, 0.0);
    a.pod = "a".into();
    let obs = Observation {
        pods: vec![ready("a"), ready("b"), ready("c")],
        ..observe(vec![a])
    };
    let d = decide(&p, &s, &State::default(), &obs, t(0));
    assert_eq!((d.settings.workers, d.settings.replicas), (8, 3));
    assert!(d.summary.contains("without metrics"), "{}", d.summary);
}

/// The ratchet of the baseline, as decide sees it: 10 throttled workers on 2 cores read
/// 0.2 cores each; the clean value (0.4) says 5 workers, and the extra pods carry the rest.
#[test]
fn a_throttled_pod_gets_more_pods_not_more_workers() {
    let mut p = policy();
    p.cpu_limit_millis = Some(2000);
    p.replicas = Bounds { min: 1, max: 10 };
    let state = State {
        cpu_per_busy_worker: Some(0.4),
        ..State::default()
    };
    let mut throttled = pod(10.0, 10.0, 5.0);
    throttled.worker_cpu_cores = Some(2.0);
    throttled.cpu_throttled = Some(0.6);
    let d = decide(&p, &settings(10), &state, &observe(vec![throttled]), t(0));
    // 2 cores ÷ 0.4 = 5 per pod: the pool shrinks towards it (20 % per step) …
    assert_eq!(d.settings.workers, 8, "{:?}", d.changes);
    // … and the pods carry the load.
    assert!(d.settings.replicas > 1, "{:?}", d.changes);
    assert_eq!(
        d.state.cpu_per_busy_worker,
        Some(0.4),
        "throttled rounds teach nothing"
    );
}

// ---- the rules added last (each was found by the simulator; sim/RESULTS.md) -------------

/// A pod named `name` with `busy` of `live` workers busy.
fn named(name: &str, busy: f64, live: f64) -> PodSample {
    pod_sample(name, busy, live)
}

/// More workers per pod decided in this round reach the pods only with the next kubelet
/// sync: the pods are not cut before the workers they run carry the load.
#[test]
fn fewer_pods_only_when_the_workers_they_run_carry_the_load() {
    let mut p = policy();
    p.replicas = Bounds { min: 1, max: 10 };
    let mut s = settings(4);
    s.replicas = 4;
    // 4 pods of 4 workers, 2.8 busy each: 11.2 / 0.7 = 16 workers in all, which one pod
    // of 16 could run — but the pods run 4 each now.
    let busy = |workers: f64| {
        observe(
            ["a", "b", "c", "d"]
                .iter()
                .map(|n| named(n, 2.8, workers))
                .collect(),
        )
    };
    let d = decide(&p, &s, &State::default(), &busy(4.0), t(0));
    assert_eq!(d.settings.workers, 6, "{:?}", d.changes);
    assert_eq!(
        d.settings.replicas, 4,
        "16 workers needed, 4 per pod run now: {:?}",
        d.changes
    );
    // Once the pods run 6 workers each, 3 pods carry the 16: one goes.
    let d2 = decide(&p, &d.settings, &d.state, &busy(6.0), t(60));
    assert_eq!(
        (d2.settings.workers, d2.settings.replicas),
        (6, 3),
        "{:?}",
        d2.changes
    );
}

/// Two pods (of at most 10) that still run 6 workers while 8 were decided 30 s ago (12 in
/// all), each with `busy` workers busy and `jobs_per_second` completions of 0.1 s.
fn six_of_eight_delivered(busy: f64, jobs_per_second: f64, state: State) -> Decision {
    let mut p = policy();
    p.replicas = Bounds { min: 1, max: 10 };
    let mut s = settings(8);
    s.replicas = 2;
    let state = State {
        last_change: Some(t(-30)),
        ..state
    };
    let pods = ["a", "b"]
        .iter()
        .map(|n| PodSample {
            target_workers: Some(6),
            jobs_per_second,
            ..named(n, busy, 6.0)
        })
        .collect();
    decide(&p, &s, &state, &delivering(observe(pods)), t(0))
}

/// While the pods still run fewer workers than decided, a bridge pod is added only when
/// the workers they run would be more than 90 % busy: a worker short of the target
/// utilisation for the minute of a delivery is not worth a pod that starts and goes again.
#[test]
fn a_bridge_pod_only_when_the_pods_would_be_more_than_90_percent_busy() {
    // 10 busy of the 12 run (83 %): below the target utilisation (15 workers wanted), but
    // the pods carry it until the 8 arrive.
    let d = six_of_eight_delivered(5.0, 50.0, State::default());
    assert_eq!(
        (d.settings.workers, d.settings.replicas),
        (8, 2),
        "{:?}",
        d.changes
    );
    // 11.5 busy of 12 (96 %): a bridge pod carries the load until the workers arrive.
    let d = six_of_eight_delivered(5.75, 57.5, State::default());
    assert_eq!(
        (d.settings.workers, d.settings.replicas),
        (8, 3),
        "{:?}",
        d.changes
    );
    let bridge = d.changes.iter().find(|c| c.knob == Knob::Replicas).unwrap();
    assert!(
        bridge
            .reason
            .contains("the pods run 6 workers until they receive the 8"),
        "{}",
        bridge.reason
    );
}

/// A bridge pod is sized only for the demand the window explains (arrivals × job time,
/// plus the gauge's noise): busy workers beyond it wait for the second look like any
/// unexplained demand (the `slowdown` trace: a gauge scraped just after the database
/// slowed down counted every stuck job). Fails without the rule: sized by the gauge, the
/// first case gets a third pod.
#[test]
fn a_bridge_pod_only_for_the_demand_the_window_explains() {
    // The previous round saw the unexplained demand first: this is the second look.
    let second_look = || State {
        queue_spike: Some(t(-30)),
        ..State::default()
    };
    // 11.5 busy of 12 (96 %) by the gauge, but 2 × 35 jobs/s × 0.1 s = 7 workers by the
    // window: 7 + √7 = 9.6 explained, below 90 % of the 12 run — no bridge.
    let d = six_of_eight_delivered(5.75, 35.0, second_look());
    assert_eq!(
        (d.settings.workers, d.settings.replicas),
        (8, 2),
        "{:?} {}",
        d.changes,
        d.summary
    );
    // The same gauge explained by the completions (57.5 jobs/s a pod): the bridge.
    let d = six_of_eight_delivered(5.75, 57.5, second_look());
    assert_eq!(
        (d.settings.workers, d.settings.replicas),
        (8, 3),
        "{:?} {}",
        d.changes,
        d.summary
    );
}

/// Fewer workers reach the pods with the next kubelet sync, a lower memory limit at once:
/// the limit is sized for the workers the pods may still run, and comes down only once
/// they dropped them.
#[test]
fn the_memory_limit_waits_for_the_pods_to_drop_their_workers() {
    let p = auto_memory_policy();
    let state = learned_memory_state(&p);
    let for_12 = round_up_mib(ceil_u64(state.memory.limit_for(12.0, None).unwrap()));
    let for_10 = state.memory.limit_for(10.0, None).unwrap();
    assert!(
        for_10 <= for_12 as f64 * MEMORY_DOWN_THRESHOLD,
        "10 workers need less: {for_10} vs {for_12}"
    );
    // 12 workers with little to do; their cgroups peak low in this quiet window.
    let quiet = |live: f64| {
        let mut x = cgroup_pod(live);
        x.busy_workers = 1.0;
        x.memory_working_set = Some(((76.0 + 44.0 * 8.0) * MI as f64) as u64);
        observe(vec![x])
    };
    let d = decide(
        &p,
        &with_memory(12, for_12),
        &state,
        &quiet(12.0),
        t(10_000),
    );
    assert_eq!(d.settings.workers, 10, "{:?}", d.changes);
    assert_eq!(
        d.settings.memory_limit, for_12,
        "the pods still run 12 workers: {:?}",
        d.changes
    );
    // The pods run 10 now: the limit follows (for 10, from the model as it stands).
    let d2 = decide(&p, &d.settings, &d.state, &quiet(10.0), t(10_060));
    let for_10_now = round_up_mib(ceil_u64(d2.state.memory.limit_for(10.0, None).unwrap()));
    assert_eq!(d2.settings.memory_limit, for_10_now, "{:?}", d2.changes);
    assert!(for_10_now < for_12, "{for_10_now} vs {for_12}");
    let lowered = d2
        .changes
        .iter()
        .find(|c| c.knob == Knob::MemoryLimit)
        .unwrap();
    assert!(
        lowered.reason.contains("10 workers need"),
        "{}",
        lowered.reason
    );
    // A pod that still reports 12 (its kubelet has not delivered the 10 yet) keeps the
    // limit for 12 even once 10 is in force: lowered for 10, it OOM-kills that pod
    // (`make sim`, `cpu-limit`: 7 → 6 workers, the limit for 6 thirty seconds later).
    let still_12 = {
        let mut x = cgroup_pod(12.0);
        x.busy_workers = 1.0;
        x.memory_working_set = Some(((76.0 + 44.0 * 8.0) * MI as f64) as u64);
        x.target_workers = Some(12);
        observe(vec![x])
    };
    let d3 = decide(&p, &d.settings, &d.state, &still_12, t(10_060));
    assert!(
        d3.settings.memory_limit >= for_12,
        "{} < {for_12}: {:?}",
        d3.settings.memory_limit,
        d3.changes
    );
}

/// The workers of a young pod started together and reach the end of their `max_jobs`
/// together: while a fast leak is measured, the limit holds them all grown at once — the
/// model, learned from pods whose workers are of every age, holds them half-way (`make
/// sim`, `leak`: pods added at 15 workers were OOM-killed within three minutes, 2 MiB
/// over a limit the model had sized). With no young pod the model alone sizes it.
#[test]
fn a_young_pod_of_leaking_workers_gets_the_limit_for_them_all_grown_at_once() {
    let p = auto_memory_policy();
    let state = learned_memory_state(&p);
    let by_model = round_up_mib(ceil_u64(state.memory.limit_for(8.0, None).unwrap()));
    // 8 workers at max_jobs 300, 100 KiB per job from 40 MiB warm: a worker grows 29.3 MiB
    // before it is recycled.
    let mut s = with_memory(8, by_model);
    s.max_jobs = 300;
    let grown = 100.0 * 1024.0 * 300.0;
    let in_step = state.memory.limit_in_step(8.0, grown, None).unwrap();
    assert!(in_step > by_model as f64 * 1.1, "{in_step} vs {by_model}");
    let leaking = |ready_since: i64| {
        let mut x = cgroup_pod(8.0);
        x.busy_workers = 5.0;
        // Jobs of 1 s: a worker of 300 jobs recycles every minute, too rarely for a
        // spare worker (`max_jobs::spare_workers`).
        x.jobs_per_second = 5.0;
        x.mean_job_seconds = Some(1.0);
        x.memory_growth_per_job = Some(100.0 * 1024.0);
        x.warm_worker_memory = Some(40.0 * MI as f64);
        Observation {
            sample: Some(sample(vec![x])),
            pods: vec![super::fixtures::target("app-1", Some(ready_since))],
            ..Observation::default()
        }
    };
    let now = 10_000;
    // Ready for five minutes: its workers are still in step.
    let d = decide(&p, &s, &state, &leaking(now - 300), t(now));
    assert!(
        d.settings.memory_limit as f64 >= in_step,
        "{} < {in_step}: {:?}",
        d.settings.memory_limit,
        d.changes
    );
    // Ready for an hour: the model's limit.
    let d = decide(&p, &s, &state, &leaking(now - 3600), t(now));
    assert_eq!(d.settings.memory_limit, by_model, "{:?}", d.changes);
}

/// While `max_jobs` recycles a fast leak, `max_worker_memory` stays 1.2 × above the size a
/// worker reaches by then, whatever the (young) median: 250 jobs of 100 KiB from 30 MiB
/// warm reach 54.4 MiB, so the net stays at ≥ 65.3 MiB — from the median (36 MiB × 1.5 =
/// 54 MiB) alone it is cut from 80 to 60 MiB, below what `max_jobs` lets a worker reach.
#[test]
fn max_worker_memory_stays_above_what_max_jobs_lets_a_leaking_worker_reach() {
    let p = policy();
    let mut s = settings(4);
    s.max_worker_memory = 80 * MI;
    s.max_jobs = 250;
    let d = decide(
        &p,
        &s,
        &State::default(),
        &observe(vec![leaky(100.0 * 1024.0, 30.0 * MI as f64)]),
        t(0),
    );
    assert_eq!(d.settings.max_worker_memory, 80 * MI, "{:?}", d.changes);
}

/// A higher max_jobs lets every worker grow further before it is recycled: it is raised
/// only when the memory limit in force holds the pods' peak plus that growth.
#[test]
fn max_jobs_is_raised_only_when_the_limit_holds_the_extra_growth() {
    // 10 KiB per job from 30 MiB warm: 3,072 jobs wanted, 200 for now (×2 per step);
    // 100 more jobs are 1 MiB more per worker.
    let (p, s, at_peak) = max_jobs_raise_case(10.0 * 1024.0);
    let d = decide(&p, &s, &State::default(), &at_peak(600), t(0));
    assert_eq!(d.settings.max_jobs, 200, "{:?}", d.changes);
    // A pod at 920 MiB of the 1024 MiB limit (90 % is 921.6): no room for 1 MiB more per
    // worker.
    let d = decide(&p, &s, &State::default(), &at_peak(920), t(0));
    assert_eq!(d.settings.max_jobs, 100, "{:?}", d.changes);
    assert!(d.changes.iter().all(|c| c.knob != Knob::MaxJobs));
}

/// A step leak measures little between two steps: a raise of a lowered max_jobs needs room
/// for at least the growth the value in force was lowered for (warm × the allowance ÷
/// max_jobs), not only for what the window measured.
#[test]
fn a_lowered_max_jobs_is_raised_only_with_room_for_the_growth_it_was_lowered_for() {
    // Between two steps: 300 B per job measured (just above the noise), 30 MiB warm; the
    // value in force was lowered for 30 MiB × 0.9 ÷ 100 ≈ 276 KiB per job, so 100 more
    // jobs need 2 × 27 MiB per worker, 162 MiB for the 3 workers this load gets — the
    // measured growth alone would ask for a fifth of a MiB.
    let (p, s, at_peak) = max_jobs_raise_case(300.0);
    let d = decide(&p, &s, &State::default(), &at_peak(600), t(0));
    assert_eq!(d.settings.max_jobs, 200, "{:?}", d.changes);
    // 800 + 162 MiB is past 90 % of the 1024 MiB limit (921.6): held.
    let d = decide(&p, &s, &State::default(), &at_peak(800), t(0));
    assert_eq!(d.settings.max_jobs, 100, "{:?}", d.changes);
    assert!(d.changes.iter().all(|c| c.knob != Knob::MaxJobs));
}

// ---- properties -------------------------------------------------------------------------

fn arb_policy() -> impl Strategy<Value = Policy> {
    (
        1u32..8,
        0u32..24,
        1u32..3,
        0u32..4,
        0.1f64..0.95,
        prop::bool::ANY,
        prop::option::of(0u64..2000),
        64u64..512,
        0u64..4096,
        prop::option::of(100u64..8000),
    )
        .prop_map(
            |(wmin, wspan, rmin, rspan, target, auto_mem, fixed_jobs, mem_min, mem_span, cpu)| {
                Policy {
                    workers: Bounds {
                        min: wmin,
                        max: wmin + wspan,
                    },
                    initial_workers: wmin,
                    replicas: Bounds {
                        min: rmin,
                        max: rmin + rspan,
                    },
                    replicas_external: false,
                    target_utilization: target,
                    stabilization_window: Duration::from_secs(300),
                    max_jobs: fixed_jobs.map_or(Setting::Auto, Setting::Fixed),
                    max_worker_memory: Setting::Auto,
                    memory_limit: if auto_mem {
                        Setting::Auto
                    } else {
                        Setting::Fixed((mem_min + mem_span / 2) * MI)
                    },
                    memory: Bounds {
                        min: mem_min * MI,
                        max: (mem_min + mem_span) * MI,
                    },
                    cpu_limit_millis: cpu,
                }
            },
        )
}

fn arb_pod() -> impl Strategy<Value = PodSample> {
    (
        0.0f64..64.0,
        0.0f64..64.0,
        0.0f64..50.0,
        0.0f64..500.0,
        prop::option::of(0.001f64..2.0),
        prop::option::of(1u64..400),
        prop::option::of(0.0f64..200_000.0),
        prop::option::of(0.0f64..16.0),
        prop::option::of(0.0f64..1.0),
    )
        .prop_map(
            |(busy, live, queue, rps, dur, worker_mib, growth, cpu, throttled)| PodSample {
                pod: "p".into(),
                live_workers: live,
                busy_workers: busy,
                queue_depth: queue,
                jobs_per_second: rps,
                rejected_per_second: 0.0,
                mean_job_seconds: dur,
                worker_memory: worker_mib.map(|m| vec![m * MI; 4]).unwrap_or_default(),
                worker_jobs: Vec::new(),
                memory_growth_per_job: growth,
                warm_worker_memory: worker_mib.map(|m| (m * MI) as f64 * 0.8),
                growth_jobs: None,
                server_memory: Some(24 * MI),
                pod_memory_peak: worker_mib.map(|m| 4 * m * MI + 24 * MI),
                worker_cpu_cores: cpu,
                worker_boot_seconds: None,
                worker_boots: 0.0,
                worker_age: Vec::new(),
                target_workers: None,
                memory_working_set: worker_mib.map(|m| 3 * m * MI + 64 * MI),
                memory_limit: worker_mib.map(|_| 1024 * MI),
                oom_kills: None,
                cpu_throttled: throttled,
                jobs: None,
            },
        )
}

fn arb_observation() -> impl Strategy<Value = Observation> {
    prop::option::of(prop::collection::vec(arb_pod(), 0..4)).prop_map(|pods| Observation {
        sample: pods.map(sample),
        ..Observation::default()
    })
}

fn within(policy: &Policy, s: &Settings) -> Result<(), TestCaseError> {
    prop_assert!(s.workers >= policy.workers.min && s.workers <= policy.workers.max);
    prop_assert!(s.replicas >= policy.replicas.min && s.replicas <= policy.replicas.max);
    match policy.memory_limit {
        Setting::Fixed(b) => prop_assert_eq!(s.memory_limit, b),
        Setting::Auto => {
            prop_assert!(s.memory_limit >= policy.memory.min && s.memory_limit <= policy.memory.max)
        }
    }
    if let Setting::Fixed(n) = policy.max_jobs {
        prop_assert_eq!(s.max_jobs, n);
    } else {
        prop_assert!(
            s.max_jobs == DEFAULT_MAX_JOBS
                || (MIN_AUTO_MAX_JOBS..=MAX_AUTO_MAX_JOBS).contains(&s.max_jobs)
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever comes in, the result is inside the spec's bounds.
    #[test]
    fn never_outside_spec_bounds(
        policy in arb_policy(),
        workers in 0u32..100,
        replicas in 0u32..10,
        obs in arb_observation(),
    ) {
        let mut current = initial(&policy);
        current.workers = workers;
        current.replicas = replicas;
        let d = decide(&policy, &current, &State::default(), &obs, t(0));
        within(&policy, &d.settings)?;
    }

    /// Without metrics nothing tuned goes down (only the spec's own bounds can lower it).
    #[test]
    fn missing_metrics_never_scale_down(
        policy in arb_policy(),
        workers in 0u32..100,
        replicas in 0u32..10,
    ) {
        let mut current = initial(&policy);
        current.workers = workers;
        current.replicas = replicas;
        let conformed = conform(&policy, current);
        let d = decide(&policy, &current, &State::default(), &Observation::default(), t(0));
        prop_assert_eq!(d.settings, conformed);
    }

    /// Run the tuner every 30 s over a random load: every decrease is no faster than the
    /// stated rate, and no lower than the largest recommendation of the window (so a
    /// recommendation made inside the window is never undercut: no flapping).
    #[test]
    fn scale_down_respects_window_and_rate(
        policy in arb_policy(),
        loads in prop::collection::vec(arb_observation(), 1..40),
    ) {
        let mut current = initial(&policy);
        let mut state = State::default();
        let mut last_down: Option<i64> = None;
        for (i, obs) in loads.iter().enumerate() {
            let now_s = i as i64 * 30;
            let d = decide(&policy, &current, &state, obs, t(now_s));
            within(&policy, &d.settings)?;
            for (before, after) in [
                (current.workers, d.settings.workers),
                (current.replicas, d.settings.replicas),
            ] {
                if after < before {
                    let max_step = ((f64::from(before) * SCALE_DOWN_MAX_FRACTION) as u32).max(1);
                    prop_assert!(before - after <= max_step, "{} -> {}", before, after);
                    if let Some(prev) = last_down {
                        prop_assert!(now_s - prev >= SCALE_DOWN_PERIOD.as_secs() as i64);
                    }
                }
            }
            if d.settings.workers < current.workers {
                let window_max = d.state.history.iter().map(|e| e.workers).max().unwrap_or(0);
                prop_assert!(d.settings.workers >= window_max.min(current.workers));
            }
            if d.settings.workers < current.workers || d.settings.replicas < current.replicas {
                last_down = Some(now_s);
            }
            prop_assert!(d.state.history.len() <= MAX_HISTORY);
            current = d.settings;
            state = d.state;
        }
    }

    /// Memory limits (auto) only come down after the period and never below the bounds.
    #[test]
    fn memory_limit_decreases_are_rate_limited(
        loads in prop::collection::vec(arb_observation(), 1..40),
    ) {
        let policy = auto_memory_policy();
        let mut current = initial(&policy);
        let mut state = State::default();
        let mut last_change: Option<i64> = None;
        for (i, obs) in loads.iter().enumerate() {
            let now_s = i as i64 * 60;
            let d = decide(&policy, &current, &state, obs, t(now_s));
            if d.settings.memory_limit < current.memory_limit {
                let since = last_change.unwrap_or(0);
                prop_assert!(now_s - since >= MEMORY_DOWN_PERIOD.as_secs() as i64);
            }
            if d.settings.memory_limit != current.memory_limit {
                last_change = Some(now_s);
            }
            current = d.settings;
            state = d.state;
        }
    }

    /// Each reported change matches the settings, and has a reason in words.
    #[test]
    fn changes_describe_the_difference(
        policy in arb_policy(),
        obs in arb_observation(),
    ) {
        let current = initial(&policy);
        let d = decide(&policy, &current, &State::default(), &obs, t(0));
        let mut touched = vec![];
        for c in &d.changes {
            prop_assert!(c.from != c.to);
            prop_assert!(!c.reason.is_empty(), "empty reason for {:?}", c.knob);
            touched.push(c.knob);
        }
        prop_assert_eq!(touched.contains(&Knob::Workers), d.settings.workers != current.workers);
        prop_assert_eq!(touched.contains(&Knob::MaxJobs), d.settings.max_jobs != current.max_jobs);
    }
}

/// A pool of a few workers sized at the target utilisation alone queues: 2 busy workers in
/// 3 (67 %) wait more than 250 ms for 1–5 % of their requests (`make sim`, `daily-week`,
/// weekend nights). It keeps busy + √busy workers (square-root staffing); a big pool's
/// target asks for more anyway.
#[test]
fn a_small_pool_keeps_square_root_headroom() {
    // 2 busy / 0.7 = 2.9 → 3; 2 + √2 = 3.4 → 4.
    let d = first_round(3, vec![pod(2.0, 3.0, 0.0)]);
    assert_eq!(d.settings.workers, 4, "{:?}", d.changes);
    // 10 busy / 0.7 = 14.3 → 15 ≥ 10 + √10 = 13.2: the target decides.
    let d = first_round(15, vec![pod(10.0, 15.0, 0.0)]);
    assert_eq!(d.settings.workers, 15, "{:?}", d.changes);
}

/// A pod whose `max_jobs` was lowered for a leak recycles a worker every few seconds, each
/// out for its boot and its cold first jobs: it gets one worker more (`make sim`, `leak`:
/// 1 pod of 6 workers at night, 1–3 % of the requests over 250 ms).
#[test]
fn a_pool_that_recycles_a_leak_often_gets_a_spare_worker() {
    // 4 busy: 4 / 0.7 = 5.7 → 6 = 4 + √4; 40 jobs/s at max_jobs 200 recycle a worker
    // every 5 s, out 2 s each: 7.
    let mut s = settings(6);
    s.max_jobs = 200;
    let d = decide(
        &policy(),
        &s,
        &State::default(),
        &observe(vec![pod(4.0, 6.0, 0.0)]),
        t(0),
    );
    assert_eq!(d.settings.workers, 7, "{:?}", d.changes);
    // At the default max_jobs (no leak lowered it) the target decides.
    let d = decide(
        &policy(),
        &settings(6),
        &State::default(),
        &observe(vec![pod(4.0, 6.0, 0.0)]),
        t(0),
    );
    assert_eq!(d.settings.workers, 6, "{:?}", d.changes);
}

/// A pod at its ceiling has no room for spares: the pods carry them. 2 pods of 8 workers
/// serve 11.2 busy (16 at 70 %); at `max_jobs` 50 they recycle 112 jobs/s ÷ 50 a second,
/// 1.5 s each: 3.4 workers out, 1.7 a pod + half its √ = 3 spares a pod — 3 pods of 6 + 2.
#[test]
fn a_pool_at_its_ceiling_gets_pods_for_its_spares() {
    let mut p = policy();
    p.workers = Bounds { min: 1, max: 8 };
    p.replicas = Bounds { min: 1, max: 6 };
    let mut s = settings(8);
    s.replicas = 2;
    let pods = || {
        let mut a = pod_sample("a", 5.6, 8.0);
        let mut b = pod_sample("b", 5.6, 8.0);
        a.worker_boot_seconds = Some(1.5);
        a.worker_boots = 3.0;
        b.worker_boots = 0.0;
        observe(vec![a, b])
    };
    let d = decide(&p, &s, &State::default(), &pods(), t(0));
    assert_eq!(
        d.settings.replicas, 2,
        "no recycling, no spares: {:?}",
        d.changes
    );
    s.max_jobs = 50;
    let d = decide(&p, &s, &State::default(), &pods(), t(0));
    assert_eq!(d.settings.replicas, 3, "{:?}", d.changes);
}

/// A new image of the PHP container is a new version: the memory model's past fades (and
/// a leak measured for the old version is forgotten); a rollout finishing is not one.
#[test]
fn a_new_version_fades_the_memory_model() {
    let p = auto_memory_policy();
    let mut state = learned_memory_state(&p);
    state.fast_leak = Some(max_jobs::FastLeak {
        growth: 65536.0,
        warm: 50.0 * MI as f64,
    });
    let at = |images: &[&str]| {
        let mut o = observe(vec![cgroup_pod(4.0)]);
        o.pods = images
            .iter()
            .enumerate()
            .map(|(i, image)| PodTarget {
                name: format!("app-{i}"),
                image: Some((*image).to_owned()),
                ..PodTarget::default()
            })
            .collect();
        o
    };
    let s = with_memory(4, 2048 * MI);
    // First sight of the images: adopted, nothing fades.
    let now = t(180 * 30);
    let before = state.memory.weight(now);
    let d = decide(&p, &s, &state, &at(&["shop:v1"]), now);
    assert!((d.state.memory.weight(now) - (before + 1.0)).abs() < 1e-6);
    assert!(d.state.fast_leak.is_some());
    // A rollout to v2: the past weighs a sixteenth, and the summary says why.
    let d = decide(&p, &s, &d.state, &at(&["shop:v1", "shop:v2"]), now);
    let faded = d.state.memory.weight(now);
    assert!(
        (faded - (before + 1.0) / 16.0 - 1.0).abs() < 1e-6,
        "{faded}"
    );
    assert!(
        d.summary.contains("new version (shop:v1, shop:v2)"),
        "{}",
        d.summary
    );
    assert_eq!(d.state.fast_leak, None);
    // The old pods go: nothing new, nothing fades.
    let d = decide(&p, &s, &d.state, &at(&["shop:v2"]), now);
    assert!((d.state.memory.weight(now) - (faded + 1.0)).abs() < 1e-6);
}

/// After `max_jobs` is raised from a value lowered for a leak, the workers grow further
/// than the model has seen: the memory limit is not lowered for a while.
#[test]
fn the_memory_limit_waits_for_a_raised_max_jobs() {
    let p = auto_memory_policy();
    let mut state = learned_memory_state(&p);
    let s = with_memory(4, 2048 * MI);
    let now = t(180 * 30);
    let obs = observe(vec![cgroup_pod(4.0)]);
    let lowered = decide(&p, &s, &state, &obs, now);
    assert!(
        lowered.settings.memory_limit < 2048 * MI,
        "{:?}",
        lowered.changes
    );
    state.last_max_jobs_raise = Some(now - jiff::SignedDuration::from_mins(5));
    let held = decide(&p, &s, &state, &obs, now);
    assert_eq!(held.settings.memory_limit, 2048 * MI, "{:?}", held.changes);
    state.last_max_jobs_raise = Some(now - jiff::SignedDuration::from_mins(16));
    let later = decide(&p, &s, &state, &obs, now);
    assert_eq!(later.settings.memory_limit, lowered.settings.memory_limit);
}
