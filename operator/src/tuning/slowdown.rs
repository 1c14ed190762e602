//! A slow dependency, told apart from more demand.
//!
//! More demand shows as more completions per second at the usual job time; a slow
//! database shows as the same (or fewer) completions, each taking much longer. Both make
//! more workers busy (Little's law), but only the first is helped by more of them: against
//! a struggling dependency more workers are more connections to it. So the tuner keeps
//! two slow averages of healthy rounds — the job time (over about an hour) and the
//! completions per second (over about ten minutes) — and calls the jobs slow when a round's
//! job time is [`SLOW_FACTOR`] times the usual one while the completions are not above
//! [`FLAT_FACTOR`] times theirs. It recovers below [`RECOVER_FACTOR`], and for
//! [`RECOVERY_HOLD`] after that the rounds are [`Verdict::Recovering`]: their windows still
//! hold the slow jobs' times and the backlog the slowdown left, which the workers there
//! drain by themselves — read as demand, they asked for twice the pods for five minutes
//! (`make sim`, `slowdown`). A CPU-throttled pod stretches its jobs too; that is the CPU
//! clamp's business, not a slow dependency.

use std::time::Duration;

use jiff::Timestamp;

/// A round's job time this many times the usual one is slow …
pub const SLOW_FACTOR: f64 = 2.0;
/// … while completions stay below this many times the usual rate.
pub const FLAT_FACTOR: f64 = 1.2;
/// Slow ends when the job time falls below this many times the usual one.
pub const RECOVER_FACTOR: f64 = 1.5;
/// A round's job time this many times the usual one at flat completions is suspect: the
/// first round of a slowdown sees it only for part of its window. Increases wait for up to
/// [`SUSPECT_HOLD`] to see whether it becomes slow.
pub const SUSPECT_FACTOR: f64 = 1.5;
/// How long a suspect job time holds increases before it counts as the new usual.
pub const SUSPECT_HOLD: Duration = Duration::from_secs(120);
/// After a slowdown ends, increases wait this long: the windows of the first rounds still
/// hold slow jobs and the backlog they left (two rounds of the 60 s window).
pub const RECOVERY_HOLD: Duration = Duration::from_secs(120);
/// Time constant of the usual job time.
pub const JOB_TIME_TAU: Duration = Duration::from_secs(3600);
/// Time constant of the usual completion rate.
pub const THROUGHPUT_TAU: Duration = Duration::from_secs(600);
/// The averages need this much history before they judge.
pub const WARM_UP: Duration = Duration::from_secs(600);

/// The usual job time and completion rate, and whether the jobs are slow now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Baseline {
    /// Usual seconds per job.
    pub job_seconds: Option<f64>,
    /// Usual completions per second.
    pub per_second: Option<f64>,
    /// First round that fed the averages.
    pub since: Option<Timestamp>,
    /// Last round that fed them.
    pub updated: Option<Timestamp>,
    /// Since when the jobs have been slow.
    pub slow_since: Option<Timestamp>,
    /// Since when the jobs have been suspect (longer, not yet slow).
    pub suspect_since: Option<Timestamp>,
    /// When the last slowdown ended (kept for [`RECOVERY_HOLD`]).
    pub recovered_at: Option<Timestamp>,
}

/// The verdict on a round.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Verdict {
    /// As usual (or demand).
    Usual,
    /// Longer jobs at flat completions, not (yet) twice as long: hold increases a little.
    Suspect,
    /// A slow dependency.
    Slow(Slow),
    /// Within [`RECOVERY_HOLD`] after a slowdown: hold increases, learn nothing.
    Recovering,
}

impl Verdict {
    /// The slowdown, if slow.
    #[must_use]
    pub fn slow(self) -> Option<Slow> {
        match self {
            Self::Slow(s) => Some(s),
            _ => None,
        }
    }
}

/// A slow dependency, in numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Slow {
    /// Job time now ÷ the usual one.
    pub factor: f64,
    /// The usual job time, seconds.
    pub usual: f64,
    /// Completions per second now.
    pub per_second: f64,
    /// The usual completions per second.
    pub usual_per_second: f64,
}

fn blend(old: Option<f64>, new: f64, elapsed: f64, tau: Duration) -> f64 {
    match old {
        None => new,
        Some(old) => {
            let a = 1.0 - (-elapsed / tau.as_secs_f64()).exp();
            old + a.clamp(0.0, 1.0) * (new - old)
        }
    }
}

impl Baseline {
    /// Judges a round (mean job time of the warm pods, completions per second;
    /// `throttled`: the CPU limit stretches the jobs) and learns from it when it is usual.
    pub fn observe(
        &mut self,
        job_seconds: Option<f64>,
        per_second: f64,
        throttled: bool,
        now: Timestamp,
    ) -> Verdict {
        let Some(job) = job_seconds.filter(|s| *s > 0.0 && s.is_finite()) else {
            return Verdict::Usual;
        };
        let ready = self
            .since
            .is_some_and(|s| now.duration_since(s).as_secs_f64() >= WARM_UP.as_secs_f64());
        let verdict = match (self.job_seconds, self.per_second) {
            (Some(usual), Some(usual_rate))
                if ready && !throttled && per_second <= usual_rate * FLAT_FACTOR =>
            {
                let factor = job / usual;
                let slow_limit = if self.slow_since.is_some() {
                    RECOVER_FACTOR
                } else {
                    SLOW_FACTOR
                };
                let suspect_for = self
                    .suspect_since
                    .map_or(0.0, |s| now.duration_since(s).as_secs_f64());
                if factor >= slow_limit {
                    Verdict::Slow(Slow {
                        factor,
                        usual,
                        per_second,
                        usual_per_second: usual_rate,
                    })
                } else if factor >= SUSPECT_FACTOR && suspect_for < SUSPECT_HOLD.as_secs_f64() {
                    Verdict::Suspect
                } else {
                    Verdict::Usual
                }
            }
            _ => Verdict::Usual,
        };
        let verdict = match verdict {
            Verdict::Usual => {
                if self.slow_since.is_some() {
                    self.recovered_at = Some(now);
                }
                let recovering = self.recovered_at.is_some_and(|r| {
                    now.duration_since(r).as_secs_f64() < RECOVERY_HOLD.as_secs_f64()
                });
                if !recovering {
                    self.recovered_at = None;
                }
                if recovering {
                    self.slow_since = None;
                    Verdict::Recovering
                } else {
                    Verdict::Usual
                }
            }
            v => v,
        };
        match verdict {
            Verdict::Slow(_) => {
                self.slow_since.get_or_insert(now);
            }
            Verdict::Suspect => {
                self.suspect_since.get_or_insert(now);
            }
            Verdict::Recovering => {}
            Verdict::Usual => {
                self.slow_since = None;
                // A suspect job time that outlasted the hold is learned as the new usual;
                // it stays "was suspect" until the usual value has caught up with it, so
                // that it does not hold the pool a second time.
                if job < self.job_seconds.unwrap_or(job) * SUSPECT_FACTOR {
                    self.suspect_since = None;
                }
            }
        }
        if verdict == Verdict::Usual {
            let elapsed = self
                .updated
                .map_or(0.0, |u| now.duration_since(u).as_secs_f64().max(0.0));
            self.job_seconds = Some(blend(self.job_seconds, job, elapsed, JOB_TIME_TAU));
            self.per_second = Some(blend(
                self.per_second,
                per_second.max(0.0),
                elapsed,
                THROUGHPUT_TAU,
            ));
            self.since.get_or_insert(now);
            self.updated = Some(now);
        }
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn healthy(b: &mut Baseline, from: i64, to: i64, rate: f64) {
        let mut s = from;
        while s < to {
            assert_eq!(b.observe(Some(0.06), rate, false, t(s)), Verdict::Usual);
            s += 30;
        }
    }

    #[test]
    fn longer_jobs_at_flat_completions_are_slow() {
        let mut b = Baseline::default();
        healthy(&mut b, 0, 1800, 250.0);
        // The first round sees the slowdown for part of its window only: suspect.
        assert_eq!(
            b.observe(Some(0.1), 245.0, false, t(1800)),
            Verdict::Suspect
        );
        let slow = b.observe(Some(0.3), 240.0, false, t(1830)).slow().unwrap();
        assert!((slow.factor - 5.0).abs() < 0.01, "{slow:?}");
        assert_eq!(b.slow_since, Some(t(1830)));
        // The usual job time is not learned from slow rounds.
        assert_eq!(b.job_seconds, Some(0.06));
        // Still slow at 1.6×, over once below 1.5×.
        assert!(
            b.observe(Some(0.096), 200.0, false, t(1860))
                .slow()
                .is_some()
        );
        assert_eq!(
            b.observe(Some(0.085), 200.0, false, t(1890)),
            Verdict::Recovering
        );
        assert_eq!(b.slow_since, None);
    }

    /// The first windows after a slowdown still hold its slow jobs and the backlog they
    /// left (drained by the workers there, at more completions than usual): for two
    /// minutes they are recovering — increases wait — and are not learned as usual.
    #[test]
    fn the_rounds_after_a_slowdown_are_recovering() {
        let mut b = Baseline::default();
        healthy(&mut b, 0, 1800, 250.0);
        b.observe(Some(0.1), 245.0, false, t(1800));
        assert!(b.observe(Some(0.3), 240.0, false, t(1830)).slow().is_some());
        // Over: the backlog drains at twice the usual completions.
        assert_eq!(
            b.observe(Some(0.08), 500.0, false, t(1860)),
            Verdict::Recovering
        );
        assert_eq!(b.recovered_at, Some(t(1860)));
        assert_eq!(
            b.observe(Some(0.07), 300.0, false, t(1950)),
            Verdict::Recovering
        );
        assert_eq!(
            b.job_seconds,
            Some(0.06),
            "recovering rounds are not learned"
        );
        assert_eq!(b.observe(Some(0.06), 250.0, false, t(1980)), Verdict::Usual);
        assert_eq!(b.recovered_at, None);
        // A slowdown during the hold is slow again.
        let mut b2 = b.clone();
        b2.recovered_at = Some(t(1970));
        assert!(
            b2.observe(Some(0.3), 240.0, false, t(2000))
                .slow()
                .is_some()
        );
    }

    #[test]
    fn more_demand_is_not_slow() {
        let mut b = Baseline::default();
        healthy(&mut b, 0, 1800, 100.0);
        // Jobs a little longer (cold workers, a busier database) with more completions.
        assert_eq!(b.observe(Some(0.13), 400.0, false, t(1800)), Verdict::Usual);
    }

    #[test]
    fn throttled_jobs_and_young_averages_are_not_judged() {
        let mut b = Baseline::default();
        healthy(&mut b, 0, 1800, 100.0);
        assert_eq!(b.observe(Some(0.3), 100.0, true, t(1800)), Verdict::Usual);
        let mut young = Baseline::default();
        healthy(&mut young, 0, 300, 100.0);
        assert_eq!(
            young.observe(Some(0.3), 100.0, false, t(300)),
            Verdict::Usual
        );
    }

    #[test]
    fn the_usual_values_follow_slow_drifts() {
        let mut b = Baseline::default();
        healthy(&mut b, 0, 600, 100.0);
        let mut s = 600;
        // 1.6× at flat completions: suspect for two minutes, then the new usual.
        let mut verdicts = Vec::new();
        while s < 600 + 4 * 3600 {
            verdicts.push(b.observe(Some(0.096), 100.0, false, t(s)));
            s += 30;
        }
        assert_eq!(verdicts[..4], [Verdict::Suspect; 4]);
        assert!(verdicts[4..].iter().all(|v| *v == Verdict::Usual));
        assert!((b.job_seconds.unwrap() - 0.096).abs() < 0.002);
    }
}
