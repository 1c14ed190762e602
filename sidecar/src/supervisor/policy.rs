//! The supervisor's verdict on one worker: a pure function of a sample and the limits.

use std::time::Duration;

use crate::pool::SupervisorLimits;
use crate::worker::RecycleReason;

/// What the supervisor saw of one worker at one tick.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    pub age: Duration,
    /// Time since the last job ended; `None` while busy or before the first job.
    pub idle_for: Option<Duration>,
    /// Time the current job has been running; `None` when idle.
    pub busy_for: Option<Duration>,
    pub rss_bytes: u64,
}

/// What to do with the worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    /// Replace it between jobs; never interrupts a request.
    Recycle(RecycleReason),
    /// Kill it now; its current job fails.
    Kill(RecycleReason),
}

/// Judges one worker. The hard limit (`exec_ttl`) comes first because it is the only one
/// that cannot wait; among soft limits the order only decides which reason is reported.
pub fn judge(sample: &Sample, limits: &SupervisorLimits) -> Verdict {
    if let (Some(ttl), Some(busy)) = (limits.exec_ttl, sample.busy_for)
        && busy >= ttl
    {
        return Verdict::Kill(RecycleReason::ExecTtl);
    }
    if limits.ttl.is_some_and(|ttl| sample.age >= ttl) {
        return Verdict::Recycle(RecycleReason::Ttl);
    }
    if limits
        .max_worker_memory
        .is_some_and(|max| sample.rss_bytes >= max)
    {
        return Verdict::Recycle(RecycleReason::Memory);
    }
    if let (Some(idle_ttl), Some(idle)) = (limits.idle_ttl, sample.idle_for)
        && idle >= idle_ttl
    {
        return Verdict::Recycle(RecycleReason::IdleTtl);
    }
    Verdict::Keep
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);
    const MIB: u64 = 1 << 20;

    fn limits() -> SupervisorLimits {
        SupervisorLimits {
            watch_tick: S,
            ttl: Some(60 * S),
            idle_ttl: Some(10 * S),
            max_worker_memory: Some(128 * MIB),
            exec_ttl: Some(30 * S),
        }
    }

    #[test]
    fn verdicts() {
        let idle = |secs: u32| Some(secs * S);
        let table: &[(&str, Sample, Verdict)] = &[
            (
                "fresh idle worker",
                Sample {
                    age: S,
                    idle_for: None,
                    busy_for: None,
                    rss_bytes: 20 * MIB,
                },
                Verdict::Keep,
            ),
            (
                "busy within exec_ttl",
                Sample {
                    age: 5 * S,
                    busy_for: Some(29 * S),
                    rss_bytes: 20 * MIB,
                    ..Default::default()
                },
                Verdict::Keep,
            ),
            (
                "busy past exec_ttl is killed",
                Sample {
                    age: 5 * S,
                    busy_for: Some(30 * S),
                    ..Default::default()
                },
                Verdict::Kill(RecycleReason::ExecTtl),
            ),
            (
                "exec_ttl wins over every soft limit",
                Sample {
                    age: 100 * S,
                    busy_for: Some(31 * S),
                    rss_bytes: 500 * MIB,
                    ..Default::default()
                },
                Verdict::Kill(RecycleReason::ExecTtl),
            ),
            (
                "too old",
                Sample {
                    age: 60 * S,
                    idle_for: idle(1),
                    ..Default::default()
                },
                Verdict::Recycle(RecycleReason::Ttl),
            ),
            (
                "too old while busy is still only a soft recycle",
                Sample {
                    age: 61 * S,
                    busy_for: Some(S),
                    ..Default::default()
                },
                Verdict::Recycle(RecycleReason::Ttl),
            ),
            (
                "too big",
                Sample {
                    age: S,
                    rss_bytes: 128 * MIB,
                    ..Default::default()
                },
                Verdict::Recycle(RecycleReason::Memory),
            ),
            (
                "idle too long",
                Sample {
                    age: 20 * S,
                    idle_for: idle(10),
                    ..Default::default()
                },
                Verdict::Recycle(RecycleReason::IdleTtl),
            ),
            (
                "never used is never idle-recycled",
                Sample {
                    age: 50 * S,
                    idle_for: None,
                    ..Default::default()
                },
                Verdict::Keep,
            ),
        ];
        for (name, sample, want) in table {
            assert_eq!(judge(sample, &limits()), *want, "{name}");
        }
    }

    #[test]
    fn no_limits_keeps_everything() {
        let off = SupervisorLimits {
            watch_tick: S,
            ..Default::default()
        };
        let sample = Sample {
            age: 1_000_000 * S,
            idle_for: Some(100_000 * S),
            busy_for: Some(100_000 * S),
            rss_bytes: u64::MAX,
        };
        assert_eq!(judge(&sample, &off), Verdict::Keep);
    }
}
