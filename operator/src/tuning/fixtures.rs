//! Fixtures of the tuner's unit tests: the time, a pod's window, a sample and a pod as the
//! API lists it — one builder for the tests of `decide` and of `load`.

use std::time::Duration;

use jiff::Timestamp;

use crate::metrics_source::PodTarget;
use crate::sample::{AppSample, PodSample};

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
        resize_pending: false,
    }
}
