//! Status conditions and the conversions between the tuner's types and the status'.
//! Pure: the time is a parameter.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use pacer_crds::units::{format_memory, parse_memory};
use pacer_crds::{
    HistoryEntry, JobBaseline, MemoryModel, ObservedMetrics, PoolSettings, Recommendation,
    ResidualBucket, TuningState,
};

use crate::sample::AppSample;
use crate::tuning::memory::Model;
use crate::tuning::slowdown::Baseline;
use crate::tuning::{Entry, Settings, State};

/// Condition type: every pod of the Deployment is ready.
pub const READY: &str = "Ready";
/// Condition type: the pool matches the tuner's decision on recent metrics.
pub const TUNED: &str = "Tuned";
/// Condition type: something needs the user's attention.
pub const DEGRADED: &str = "Degraded";

/// A condition's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Truth {
    /// `"True"`.
    True,
    /// `"False"`.
    False,
    /// `"Unknown"`.
    Unknown,
}

impl Truth {
    fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }
}

/// Sets a condition, keeping its `lastTransitionTime` unless the status flips (so that an
/// unchanged condition does not change the status object and cause a write).
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: Truth,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status = status.as_str();
    let existing = conditions.iter().position(|c| c.type_ == type_);
    let transition = match existing.map(|i| &conditions[i]) {
        Some(old) if old.status == status => old.last_transition_time.clone(),
        _ => Time(now),
    };
    let condition = Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        // The API caps condition messages at 32 KiB; ours are far shorter, but a long
        // list of problems must not make the status write fail.
        message: truncate(message, 4096),
        observed_generation: generation,
        last_transition_time: transition,
    };
    match existing {
        Some(i) => conditions[i] = condition,
        None => conditions.push(condition),
    }
}

/// A condition by type.
#[must_use]
pub fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Settings as the status writes them.
#[must_use]
pub fn pool_settings(s: &Settings) -> PoolSettings {
    PoolSettings {
        workers: i32::try_from(s.workers).unwrap_or(i32::MAX),
        max_jobs: i64::try_from(s.max_jobs).unwrap_or(i64::MAX),
        max_worker_memory: format_memory(s.max_worker_memory),
        memory_limit: format_memory(s.memory_limit),
        replicas: i32::try_from(s.replicas).unwrap_or(i32::MAX),
    }
}

/// Settings back from the status; `None` when a field does not parse.
#[must_use]
pub fn settings_from(p: &PoolSettings) -> Option<Settings> {
    Some(Settings {
        workers: u32::try_from(p.workers).ok()?,
        max_jobs: u64::try_from(p.max_jobs).ok()?,
        max_worker_memory: parse_memory(&p.max_worker_memory).ok()?,
        memory_limit: parse_memory(&p.memory_limit).ok()?,
        replicas: u32::try_from(p.replicas).ok()?,
    })
}

/// A recommendation as the status writes it.
#[must_use]
pub fn recommendation(s: &Settings, reason: &str) -> Recommendation {
    let p = pool_settings(s);
    Recommendation {
        workers: p.workers,
        max_jobs: p.max_jobs,
        max_worker_memory: p.max_worker_memory,
        memory_limit: p.memory_limit,
        replicas: p.replicas,
        reason: truncate(reason, 4096),
    }
}

/// Settings back from a recommendation.
#[must_use]
pub fn settings_from_recommendation(r: &Recommendation) -> Option<Settings> {
    settings_from(&PoolSettings {
        workers: r.workers,
        max_jobs: r.max_jobs,
        max_worker_memory: r.max_worker_memory.clone(),
        memory_limit: r.memory_limit.clone(),
        replicas: r.replicas,
    })
}

/// The tuner's memory as the status writes it.
#[must_use]
pub fn tuning_state(s: &State) -> TuningState {
    let jobs = &s.jobs;
    let model = &s.memory;
    TuningState {
        history: s
            .history
            .iter()
            .map(|e| HistoryEntry {
                time: Time(e.at),
                workers: i32::try_from(e.workers).unwrap_or(i32::MAX),
                replicas: i32::try_from(e.replicas).unwrap_or(i32::MAX),
            })
            .collect(),
        last_scale_down_time: s.last_scale_down.map(Time),
        last_memory_change_time: s.last_memory_change.map(Time),
        last_oom_time: s.last_oom.map(Time),
        last_change_time: s.last_change.map(Time),
        last_oom_bump_time: s.last_oom_bump.map(Time),
        last_max_jobs_change_time: s.last_max_jobs_change.map(Time),
        last_max_jobs_raise_time: s.last_max_jobs_raise.map(Time),
        last_max_worker_memory_change_time: s.last_max_worker_memory_change.map(Time),
        unreported_change_time: s.unreported_change.map(Time),
        queue_spike_time: s.queue_spike.map(Time),
        fast_leak_bytes_per_job: s.fast_leak.map(|l| l.growth),
        fast_leak_warm_bytes: s.fast_leak.map(|l| l.warm),
        previous_memory_limit: s.previous_memory_limit.and_then(|b| i64::try_from(b).ok()),
        cpu_per_busy_worker: s.cpu_per_busy_worker,
        jobs: (*jobs != Baseline::default()).then(|| JobBaseline {
            seconds: jobs.job_seconds,
            per_second: jobs.per_second,
            since: jobs.since.map(Time),
            updated: jobs.updated.map(Time),
            slow_since: jobs.slow_since.map(Time),
            suspect_since: jobs.suspect_since.map(Time),
            recovered_at: jobs.recovered_at.map(Time),
        }),
        memory_model: model.reference.map(|reference| MemoryModel {
            reference_time: Some(Time(reference)),
            sums: model.sums.to_vec(),
            residuals: model
                .residuals
                .iter()
                .filter_map(|(&bucket, &weight)| {
                    Some(ResidualBucket {
                        bucket: i32::try_from(bucket).ok()?,
                        weight,
                    })
                })
                .collect(),
            versions: model.versions.clone(),
            earlier: (model.earlier > 0.0).then_some(model.earlier),
        }),
    }
}

/// The tuner's memory back from the status (entries that do not convert are dropped).
#[must_use]
pub fn state_from(t: &TuningState) -> State {
    let time = |t: &Option<Time>| t.as_ref().map(|t| t.0);
    let finite = |v: &Option<f64>| v.filter(|x| x.is_finite());
    State {
        history: t
            .history
            .iter()
            .filter_map(|e| {
                Some(Entry {
                    at: e.time.0,
                    workers: u32::try_from(e.workers).ok()?,
                    replicas: u32::try_from(e.replicas).ok()?,
                })
            })
            .collect(),
        last_scale_down: time(&t.last_scale_down_time),
        last_memory_change: time(&t.last_memory_change_time),
        last_oom: time(&t.last_oom_time),
        last_change: time(&t.last_change_time),
        last_oom_bump: time(&t.last_oom_bump_time),
        last_max_jobs_change: time(&t.last_max_jobs_change_time),
        last_max_jobs_raise: time(&t.last_max_jobs_raise_time),
        last_max_worker_memory_change: time(&t.last_max_worker_memory_change_time),
        unreported_change: time(&t.unreported_change_time),
        queue_spike: time(&t.queue_spike_time),
        fast_leak: finite(&t.fast_leak_bytes_per_job)
            .zip(finite(&t.fast_leak_warm_bytes))
            .filter(|(g, w)| *g > 0.0 && *w > 0.0)
            .map(|(growth, warm)| crate::tuning::max_jobs::FastLeak { growth, warm }),
        previous_memory_limit: t.previous_memory_limit.and_then(|b| u64::try_from(b).ok()),
        cpu_per_busy_worker: finite(&t.cpu_per_busy_worker).filter(|c| *c > 0.0),
        jobs: t
            .jobs
            .as_ref()
            .map(|j| Baseline {
                job_seconds: finite(&j.seconds).filter(|s| *s > 0.0),
                per_second: finite(&j.per_second).filter(|s| *s >= 0.0),
                since: time(&j.since),
                updated: time(&j.updated),
                slow_since: time(&j.slow_since),
                suspect_since: time(&j.suspect_since),
                recovered_at: time(&j.recovered_at),
            })
            .unwrap_or_default(),
        memory: t
            .memory_model
            .as_ref()
            .and_then(|m| {
                // A model that does not read back whole is dropped, not half-used.
                let sums: [f64; 5] = m.sums.clone().try_into().ok()?;
                if sums.iter().any(|x| !x.is_finite()) {
                    return None;
                }
                Some(Model {
                    reference: time(&m.reference_time),
                    sums,
                    residuals: m
                        .residuals
                        .iter()
                        .filter(|r| r.weight.is_finite() && r.weight > 0.0)
                        .filter_map(|r| Some((u32::try_from(r.bucket).ok()?, r.weight)))
                        .collect(),
                    versions: m.versions.clone(),
                    earlier: m
                        .earlier
                        .filter(|e| e.is_finite() && *e > 0.0)
                        .unwrap_or(0.0),
                })
            })
            .unwrap_or_default(),
    }
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// The window aggregates as the status shows them.
#[must_use]
pub fn observed(sample: &AppSample) -> ObservedMetrics {
    let pods = sample.pods.len().max(1) as f64;
    let ratio = sample.busy_ratio();
    let workers: Vec<f64> = sample
        .pods
        .iter()
        .flat_map(|p| p.worker_memory.iter().map(|&b| b as f64))
        .collect();
    let peaks: Vec<f64> = sample
        .pods
        .iter()
        .filter_map(|p| p.pod_memory_peak.map(|b| b as f64))
        .collect();
    let growth: Vec<f64> = sample
        .pods
        .iter()
        .filter_map(|p| p.memory_growth_per_job)
        .collect();
    let p95 = |v: &[f64]| {
        crate::tuning::stats::percentile(v, 0.95)
            .map(|b| format_memory(crate::tuning::stats::ceil_u64(b)))
    };
    ObservedMetrics {
        pods: i32::try_from(sample.pods.len()).unwrap_or(i32::MAX),
        busy_ratio: round(ratio, 3),
        busy_percent: (ratio * 100.0).round() as i32,
        busy_workers: round(sample.total_busy() / pods, 2),
        queue_depth: round(
            sample.pods.iter().map(|p| p.queue_depth).sum::<f64>() / pods,
            2,
        ),
        requests_per_second: round(sample.total_jobs_per_second(), 2),
        mean_job_duration_ms: sample.mean_job_seconds().map(|s| round(s * 1000.0, 2)),
        worker_memory_p95: p95(&workers),
        memory_growth_per_job: crate::tuning::stats::median(&growth).map(|g| g.round() as i64),
        pod_memory_p95: p95(&peaks),
        window: pacer_crds::units::format_duration(sample.window),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::PodSample;
    use std::time::Duration;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    #[test]
    fn transition_time_moves_only_when_the_status_flips() {
        let mut c = Vec::new();
        set_condition(
            &mut c,
            READY,
            Truth::False,
            "PodsNotReady",
            "0 of 2",
            Some(1),
            t(0),
        );
        set_condition(
            &mut c,
            READY,
            Truth::False,
            "PodsNotReady",
            "1 of 2",
            Some(1),
            t(10),
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].last_transition_time, Time(t(0)));
        assert_eq!(c[0].message, "1 of 2");
        set_condition(
            &mut c,
            READY,
            Truth::True,
            "AllPodsReady",
            "2 of 2",
            Some(2),
            t(20),
        );
        assert_eq!(c[0].last_transition_time, Time(t(20)));
        assert_eq!(c[0].observed_generation, Some(2));
        set_condition(
            &mut c,
            TUNED,
            Truth::Unknown,
            "CollectingMetrics",
            "",
            None,
            t(20),
        );
        assert_eq!(c.len(), 2);
        assert_eq!(condition(&c, TUNED).unwrap().status, "Unknown");
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let mut c = Vec::new();
        let long = "é".repeat(5000);
        set_condition(&mut c, DEGRADED, Truth::True, "X", &long, None, t(0));
        assert!(c[0].message.len() <= 4096 + "…".len());
    }

    #[test]
    fn settings_round_trip_through_the_status() {
        let s = Settings {
            workers: 7,
            max_jobs: 0,
            max_worker_memory: 96 * 1024 * 1024,
            memory_limit: 2048 * 1024 * 1024,
            replicas: 3,
        };
        let p = pool_settings(&s);
        assert_eq!(p.memory_limit, "2Gi");
        assert_eq!(settings_from(&p), Some(s));
        assert_eq!(
            settings_from_recommendation(&recommendation(&s, "why")),
            Some(s)
        );
    }

    #[test]
    fn state_round_trips_through_the_status() {
        let s = State {
            history: vec![Entry {
                at: t(5),
                workers: 4,
                replicas: 2,
            }],
            last_scale_down: Some(t(1)),
            last_memory_change: None,
            last_oom: Some(t(3)),
            last_change: Some(t(4)),
            last_oom_bump: Some(t(2)),
            last_max_jobs_change: None,
            last_max_jobs_raise: Some(t(2)),
            last_max_worker_memory_change: Some(t(3)),
            unreported_change: Some(t(2)),
            queue_spike: Some(t(1)),
            previous_memory_limit: Some(512 << 20),
            cpu_per_busy_worker: Some(0.42),
            jobs: Baseline {
                job_seconds: Some(0.06),
                per_second: Some(250.5),
                since: Some(t(0)),
                updated: Some(t(5)),
                slow_since: None,
                suspect_since: Some(t(4)),
                recovered_at: Some(t(3)),
            },
            memory: {
                let mut m = Model::default();
                m.add(t(0), 4.0, 300.0 * 1048576.0, 1.0);
                m.new_versions(&["shop:v1".to_owned()]);
                m.add(t(5), 8.0, 500.0 * 1048576.0, 1.0);
                m.new_versions(&["shop:v2".to_owned()]);
                assert!(m.earlier > 0.0);
                m
            },
            fast_leak: Some(crate::tuning::max_jobs::FastLeak {
                growth: 65536.0,
                warm: 50.0 * 1048576.0,
            }),
        };
        let written = tuning_state(&s);
        assert_eq!(state_from(&written), s);
        // Through JSON, as the API server stores it (serde_json may round the last bit of
        // a float on the way back).
        let json = serde_json::to_string(&written).unwrap();
        let back = state_from(&serde_json::from_str::<TuningState>(&json).unwrap());
        assert_eq!(back.history, s.history);
        assert_eq!(back.jobs, s.jobs);
        for (a, b) in back.memory.sums.iter().zip(s.memory.sums) {
            assert!((a - b).abs() <= b.abs() * 1e-12, "{a} {b}");
        }
        // A model that does not read back whole is dropped.
        let mut broken = written;
        broken.memory_model.as_mut().unwrap().sums.pop();
        assert_eq!(state_from(&broken).memory, Model::default());
    }

    #[test]
    fn observed_metrics_summarise_the_sample() {
        let pod = |busy: f64| PodSample {
            pod: "p".into(),
            live_workers: 4.0,
            busy_workers: busy,
            jobs_per_second: 10.0,
            mean_job_seconds: Some(0.25),
            worker_memory: vec![30 * 1024 * 1024],
            ..PodSample::default()
        };
        let o = observed(&AppSample {
            window: Duration::from_secs(60),
            pods: vec![pod(1.0), pod(2.0)],
        });
        assert_eq!(o.pods, 2);
        assert_eq!(o.busy_percent, 38);
        assert_eq!(o.busy_workers, 1.5);
        assert_eq!(o.requests_per_second, 20.0);
        assert_eq!(o.mean_job_duration_ms, Some(250.0));
        assert_eq!(o.worker_memory_p95.as_deref(), Some("30Mi"));
        assert_eq!(o.window, "1m");
    }
}
