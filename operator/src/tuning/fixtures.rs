//! Fixtures of the tuner's unit tests: the time, a pod's window, a sample and a pod as the
//! API lists it, the test policy and settings — one builder for the tests of `decide` and
//! of `load`.

use std::time::Duration;

use jiff::Timestamp;

use crate::metrics_source::PodTarget;
use crate::sample::{AppSample, PodSample};
use crate::tuning::{
    Bounds, DEFAULT_MAX_JOBS, DEFAULT_MAX_WORKER_MEMORY, Observation, Policy, Setting, Settings,
};

/// A mebibyte.
pub const MI: u64 = 1024 * 1024;

/// `secs` seconds after a fixed instant.
pub fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).unwrap()
}

/// Pod `name`'s window: `busy` of `live` workers busy, each completing 10 jobs of 0.1 s a
/// second (so arrivals × job time explain the busy workers), nothing waiting.
pub fn pod_sample(name: &str, busy: f64, live: f64) -> PodSample {
    PodSample {
        pod: name.into(),
        live_workers: live,
        busy_workers: busy,
        jobs_per_second: busy * 10.0,
        mean_job_seconds: Some(0.1),
        ..PodSample::default()
    }
}

/// A sample of a 60 s window.
pub fn sample(pods: Vec<PodSample>) -> AppSample {
    AppSample {
        window: Duration::from_secs(60),
        pods,
    }
}

/// A pod the API lists, ready since `ready_since` seconds (`None`: not ready).
pub fn target(name: &str, ready_since: Option<i64>) -> PodTarget {
    PodTarget {
        name: name.into(),
        ip: Some("10.0.0.1".into()),
        ready_since: ready_since.map(t),
        ..PodTarget::default()
    }
}

/// The test policy: 1–16 workers (4 to start), one pod, a fixed 1 GiB memory limit,
/// `max_jobs` and `max_worker_memory` auto.
pub fn policy() -> Policy {
    Policy {
        workers: Bounds { min: 1, max: 16 },
        initial_workers: 4,
        replicas: Bounds { min: 1, max: 1 },
        replicas_external: false,
        target_utilization: 0.7,
        stabilization_window: Duration::from_secs(300),
        max_jobs: Setting::Auto,
        max_worker_memory: Setting::Auto,
        memory_limit: Setting::Fixed(1024 * MI),
        memory: Bounds {
            min: 128 * MI,
            max: 1024 * MI,
        },
        cpu_limit_millis: None,
    }
}

/// The settings of `workers` per pod under [`policy`].
pub fn settings(workers: u32) -> Settings {
    Settings {
        workers,
        max_jobs: DEFAULT_MAX_JOBS,
        max_worker_memory: DEFAULT_MAX_WORKER_MEMORY,
        memory_limit: 1024 * MI,
        replicas: 1,
    }
}

/// Pod `app-1`'s window with `queue` requests waiting.
pub fn pod(busy: f64, live: f64, queue: f64) -> PodSample {
    PodSample {
        queue_depth: queue,
        ..pod_sample("app-1", busy, live)
    }
}

/// An observation of these pods' window.
pub fn observe(pods: Vec<PodSample>) -> Observation {
    Observation {
        sample: Some(sample(pods)),
        ..Observation::default()
    }
}

/// A pod whose workers past their warm-up grow `growth` bytes per job from `warm` bytes.
pub fn leaky(growth: f64, warm: f64) -> PodSample {
    let mut p = pod(2.0, 4.0, 0.0);
    p.memory_growth_per_job = Some(growth);
    p.warm_worker_memory = Some(warm);
    p.worker_memory = vec![(warm * 1.2) as u64; 4];
    p
}

/// The case of the `max_jobs` raise tests: a fixed 128 MiB `max_worker_memory`, 4 workers
/// at `max_jobs` 100, and a pod whose workers grow `per_job` bytes per job from 30 MiB warm,
/// with a 1 GiB cgroup limit and its working set at the given MiB.
pub fn max_jobs_raise_case(per_job: f64) -> (Policy, Settings, impl Fn(u64) -> Observation) {
    let mut p = policy();
    p.max_worker_memory = Setting::Fixed(128 * MI);
    let mut s = settings(4);
    s.max_worker_memory = 128 * MI;
    s.max_jobs = 100;
    let at_peak = move |peak_mib: u64| {
        let mut x = leaky(per_job, 30.0 * MI as f64);
        x.memory_working_set = Some(peak_mib * MI);
        x.memory_limit = Some(1024 * MI);
        observe(vec![x])
    };
    (p, s, at_peak)
}
