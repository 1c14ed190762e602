//! Parse, don't validate: a `PhpAppServerSpec` becomes a typed [`AppConfig`] once per
//! reconcile. The schema already refuses malformed strings, so a failure here means an
//! object that slipped past it (e.g. stored before a schema change); it is reported on the
//! object's status, never a panic.

use std::time::Duration;

use pacer_crds::units::{parse_cpu_millis, parse_duration, parse_memory};
use pacer_crds::{MaxJobs, MetricsSourceKind, PhpAppServerSpec, TuningMode};

use crate::Error;
use crate::jobs_tuning::JobsPolicy;
use crate::tuning::{Bounds, Policy, Setting};

/// Shortest aggregation window (a few scrapes at the shortest interval).
pub const MIN_SAMPLE_WINDOW: Duration = Duration::from_secs(30);
/// Longest aggregation window.
pub const MAX_SAMPLE_WINDOW: Duration = Duration::from_secs(600);
/// Added to pacer's shutdown delay + grace period for the pod's termination grace period.
pub const TERMINATION_MARGIN: Duration = Duration::from_secs(5);

/// The typed view of a spec.
#[derive(Clone, Debug, PartialEq)]
pub struct AppConfig {
    /// What the tuner may do.
    pub policy: Policy,
    /// Auto, Recommend or Off.
    pub mode: TuningMode,
    /// How often the tuner runs.
    pub interval: Duration,
    /// The aggregation window of a sample: two intervals, within
    /// [`MIN_SAMPLE_WINDOW`]..=[`MAX_SAMPLE_WINDOW`].
    pub sample_window: Duration,
    /// Pod termination grace period in seconds.
    pub termination_grace_seconds: i64,
    /// Metrics source.
    pub source: MetricsSourceKind,
    /// Prometheus base URL.
    pub prometheus_url: Option<String>,
    /// The jobs pool's policy and, with scale to zero, the depth query (`spec.jobs`).
    pub jobs: Option<JobsConfig>,
}

/// The typed view of `spec.jobs`.
#[derive(Clone, Debug, PartialEq)]
pub struct JobsConfig {
    /// What the jobs recommendation may do.
    pub policy: JobsPolicy,
    /// `jobs.workers.initial` (else `min`).
    pub initial_workers: u32,
    /// `jobs.scaleToZero.depthQuery`: the depth while no pod runs.
    pub depth_query: Option<String>,
}

fn jobs_config(
    spec: &PhpAppServerSpec,
    replicas: Bounds<u32>,
    utilization: f64,
) -> Result<Option<JobsConfig>, Error> {
    let Some(j) = &spec.jobs else {
        return Ok(None);
    };
    let workers = Bounds {
        min: count("jobs.workers.min", j.workers.min)?,
        max: count("jobs.workers.max", j.workers.max)?,
    };
    if workers.min > workers.max {
        return Err(Error::InvalidSpec(
            "jobs.workers.min exceeds jobs.workers.max".into(),
        ));
    }
    let initial_workers = match j.workers.initial {
        Some(n) => count("jobs.workers.initial", n)?,
        None => workers.min,
    };
    let target_utilization = j.target_utilization.unwrap_or(utilization);
    if !(0.05..=1.0).contains(&target_utilization) {
        return Err(Error::InvalidSpec(format!(
            "jobs.targetUtilization: {target_utilization} is outside 0.1–0.95"
        )));
    }
    if j.scale_to_zero.is_some() && spec.http.enabled {
        return Err(Error::InvalidSpec(
            "jobs.scaleToZero needs http.enabled: false: an app that serves HTTP never scales to zero"
                .into(),
        ));
    }
    let scale_to_zero_after = j
        .scale_to_zero
        .as_ref()
        .map(|z| duration("jobs.scaleToZero.idleFor", &z.idle_for))
        .transpose()?;
    Ok(Some(JobsConfig {
        policy: JobsPolicy {
            workers,
            replicas,
            drain_time: duration("jobs.targetDrainTime", &j.target_drain_time)?,
            target_utilization,
            scale_to_zero_after,
        },
        initial_workers,
        depth_query: j.scale_to_zero.as_ref().map(|z| z.depth_query.clone()),
    }))
}

fn duration(field: &str, text: &str) -> Result<Duration, Error> {
    parse_duration(text).map_err(|e| Error::InvalidSpec(format!("{field}: {e}")))
}

fn memory(field: &str, text: &str) -> Result<u64, Error> {
    parse_memory(text).map_err(|e| Error::InvalidSpec(format!("{field}: {e}")))
}

fn cpu(field: &str, text: &str) -> Result<u64, Error> {
    parse_cpu_millis(text).map_err(|e| Error::InvalidSpec(format!("{field}: {e}")))
}

fn count(field: &str, value: i32) -> Result<u32, Error> {
    u32::try_from(value)
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| Error::InvalidSpec(format!("{field}: {value} is not a positive count")))
}

impl AppConfig {
    /// Parses the spec.
    ///
    /// # Errors
    /// [`Error::InvalidSpec`] naming the field that does not parse or is out of range.
    pub fn from_spec(spec: &PhpAppServerSpec) -> Result<Self, Error> {
        let workers = Bounds {
            min: count("pool.workers.min", spec.pool.workers.min)?,
            max: count("pool.workers.max", spec.pool.workers.max)?,
        };
        let replicas = Bounds {
            min: count("replicas.min", spec.replicas.min)?,
            max: count("replicas.max", spec.replicas.max)?,
        };
        let memory_bounds = Bounds {
            min: memory("resources.memory.min", &spec.resources.memory.min)?,
            max: memory("resources.memory.max", &spec.resources.memory.max)?,
        };
        if workers.min > workers.max
            || replicas.min > replicas.max
            || memory_bounds.min > memory_bounds.max
        {
            return Err(Error::InvalidSpec("a minimum exceeds its maximum".into()));
        }
        let initial_workers = match spec.pool.workers.initial {
            Some(n) => count("pool.workers.initial", n)?,
            None => workers.min,
        };
        let target = spec.tuning.target_utilization;
        if !(0.05..=1.0).contains(&target) {
            return Err(Error::InvalidSpec(format!(
                "tuning.targetUtilization: {target} is outside 0.1–0.95"
            )));
        }
        let memory_limit = match spec.resources.memory.limit.as_str() {
            "auto" => Setting::Auto,
            text => Setting::Fixed(memory("resources.memory.limit", text)?),
        };
        let max_worker_memory = match spec.pool.max_worker_memory.as_str() {
            "auto" => Setting::Auto,
            text => Setting::Fixed(memory("pool.maxWorkerMemory", text)?),
        };
        let interval = duration("tuning.interval", &spec.tuning.interval)?;
        let delay = duration("shutdown.delay", &spec.shutdown.delay)?;
        let grace = duration("shutdown.gracePeriod", &spec.shutdown.grace_period)?;
        // Checked so that the other durations are known to parse before any use.
        for (field, text) in [
            ("pool.execTimeout", &spec.pool.exec_timeout),
            ("pool.allocateTimeout", &spec.pool.allocate_timeout),
            ("pool.destroyTimeout", &spec.pool.destroy_timeout),
            ("pool.ttl", &spec.pool.ttl),
            ("pool.idleTtl", &spec.pool.idle_ttl),
        ] {
            duration(field, text)?;
        }
        let termination = delay + grace + TERMINATION_MARGIN;
        let jobs = jobs_config(spec, replicas, target)?;
        Ok(Self {
            policy: Policy {
                workers,
                initial_workers,
                replicas,
                replicas_external: spec.replicas.external,
                target_utilization: target,
                stabilization_window: duration(
                    "tuning.stabilizationWindow",
                    &spec.tuning.stabilization_window,
                )?,
                max_jobs: match spec.pool.max_jobs {
                    MaxJobs::Auto => Setting::Auto,
                    MaxJobs::Fixed(n) => Setting::Fixed(n),
                },
                max_worker_memory,
                memory_limit,
                memory: memory_bounds,
                cpu_limit_millis: spec
                    .resources
                    .cpu
                    .limit
                    .as_deref()
                    .map(|text| cpu("resources.cpu.limit", text))
                    .transpose()?,
            },
            mode: spec.tuning.mode,
            interval,
            sample_window: (interval * 2).clamp(MIN_SAMPLE_WINDOW, MAX_SAMPLE_WINDOW),
            termination_grace_seconds: i64::try_from(termination.as_secs_f64().ceil() as u64)
                .unwrap_or(i64::MAX),
            source: spec.tuning.metrics.source,
            prometheus_url: spec.tuning.metrics.prometheus_url.clone(),
            jobs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MI: u64 = 1024 * 1024;

    fn spec(extra: serde_json::Value) -> PhpAppServerSpec {
        let mut base = json!({"image": "a", "command": ["php", "w.php"]});
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn defaults_parse() {
        let c = AppConfig::from_spec(&spec(json!({}))).unwrap();
        assert_eq!(c.policy.workers, Bounds { min: 1, max: 16 });
        assert_eq!(c.policy.initial_workers, 1);
        assert_eq!(c.policy.memory_limit, Setting::Auto);
        assert_eq!(
            c.policy.memory,
            Bounds {
                min: 128 * MI,
                max: 1024 * MI
            }
        );
        assert_eq!(c.interval, Duration::from_secs(30));
        assert_eq!(c.sample_window, Duration::from_secs(60));
        assert_eq!(c.policy.stabilization_window, Duration::from_secs(300));
        // 5 s delay + 30 s grace + 5 s margin.
        assert_eq!(c.termination_grace_seconds, 40);
        assert_eq!(c.mode, TuningMode::Auto);
        assert_eq!(c.policy.cpu_limit_millis, None);
    }

    #[test]
    fn fixed_values_parse() {
        let c = AppConfig::from_spec(&spec(json!({
            "pool": {"maxJobs": 0, "maxWorkerMemory": "256Mi", "workers": {"min": 2, "max": 8, "initial": 4}},
            "resources": {"memory": {"limit": "768Mi", "min": "512Mi", "max": "1Gi"},
                          "cpu": {"request": "500m", "limit": "1.5"}},
            "tuning": {"interval": "5m"},
            "shutdown": {"delay": "1s", "gracePeriod": "1m"}
        })))
        .unwrap();
        assert_eq!(c.policy.max_jobs, Setting::Fixed(0));
        assert_eq!(c.policy.max_worker_memory, Setting::Fixed(256 * MI));
        assert_eq!(c.policy.memory_limit, Setting::Fixed(768 * MI));
        assert_eq!(c.policy.initial_workers, 4);
        assert_eq!(c.sample_window, MAX_SAMPLE_WINDOW);
        assert_eq!(c.termination_grace_seconds, 66);
        assert_eq!(c.policy.cpu_limit_millis, Some(1500));
    }

    #[test]
    fn jobs_parse_with_defaults_and_scale_to_zero() {
        let c = AppConfig::from_spec(&spec(json!({
            "replicas": {"min": 1, "max": 5},
            "tuning": {"targetUtilization": 0.6},
            "jobs": {"pipelines": {"m": {"driver": "Memory"}}}
        })))
        .unwrap();
        let j = c.jobs.unwrap();
        assert_eq!(j.policy.workers, Bounds { min: 1, max: 16 });
        assert_eq!(j.policy.replicas, Bounds { min: 1, max: 5 });
        assert_eq!(j.policy.drain_time, Duration::from_secs(120));
        assert_eq!(
            j.policy.target_utilization, 0.6,
            "tuning's target by default"
        );
        assert_eq!((j.policy.scale_to_zero_after, j.depth_query), (None, None));
        assert_eq!(j.initial_workers, 1);

        let zero = json!({
            "http": {"enabled": false},
            "jobs": {"pipelines": {"m": {"driver": "Memory"}}, "targetDrainTime": "90s",
                     "scaleToZero": {"depthQuery": "sum(q)"}}
        });
        let e = AppConfig::from_spec(&spec(json!({"jobs": zero["jobs"].clone()}))).unwrap_err();
        assert!(e.to_string().contains("never scales to zero"), "{e}");
        assert!(AppConfig::from_spec(&spec(zero)).is_ok());
        let c = AppConfig::from_spec(&spec(json!({
            "http": {"enabled": false},
            "jobs": {"pipelines": {"m": {"driver": "Memory"}}, "targetDrainTime": "90s",
                     "targetUtilization": 0.9, "workers": {"min": 2, "max": 4, "initial": 3},
                     "scaleToZero": {"depthQuery": "sum(q)", "idleFor": "10m"}}
        })))
        .unwrap();
        let j = c.jobs.unwrap();
        assert_eq!(j.policy.drain_time, Duration::from_secs(90));
        assert_eq!(j.policy.target_utilization, 0.9);
        assert_eq!(j.initial_workers, 3);
        assert_eq!(j.policy.scale_to_zero_after, Some(Duration::from_secs(600)));
        assert_eq!(j.depth_query.as_deref(), Some("sum(q)"));

        let e = AppConfig::from_spec(&spec(json!({
            "jobs": {"pipelines": {"m": {"driver": "Memory"}}, "targetDrainTime": "soon"}
        })))
        .unwrap_err();
        assert!(e.to_string().contains("jobs.targetDrainTime"), "{e}");
    }

    #[test]
    fn what_slipped_past_the_schema_is_an_error_naming_the_field() {
        let e = AppConfig::from_spec(&spec(json!({"pool": {"ttl": "forever"}}))).unwrap_err();
        assert!(e.to_string().contains("pool.ttl"), "{e}");
        let e = AppConfig::from_spec(&spec(json!({"pool": {"workers": {"min": 0}}}))).unwrap_err();
        assert!(e.to_string().contains("pool.workers.min"), "{e}");
        let e = AppConfig::from_spec(&spec(json!({"pool": {"workers": {"min": 9, "max": 3}}})))
            .unwrap_err();
        assert!(e.to_string().contains("minimum exceeds"), "{e}");
    }
}
