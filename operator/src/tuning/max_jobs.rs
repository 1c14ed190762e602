//! `max_jobs` (`auto`): recycle a leaking worker before it outgrows its share, and only
//! then.
//!
//! The growth per job comes from workers past their warm-up (the aggregation uses the
//! older half of the workers, see `metrics_source::aggregate`): a fresh worker grows while
//! it loads code and fills caches, which is not a leak, and measuring it as one recycles
//! workers before they are ever warm — after which only warm-up is ever measured again.
//! Stabilised: a change smaller than [`TOLERANCE`] is none; a lower value comes at most
//! every two minutes, and each cut recycles the workers past it at once — so it goes no
//! lower than a quarter below the value, or than the jobs the live workers have done
//! leave three quarters of them untouched, whichever is lower (a cut above what the
//! workers have served recycles nobody and goes straight to the target); a higher one at
//! most doubles per [`UP_PERIOD`]; when no growth is measurable any more, a lowered value
//! comes back the same way, up to the default.

use std::time::Duration;

use jiff::Timestamp;

use crate::tuning::stats::floor_u64;

/// `max_jobs` of `auto` before anything is measured.
pub const DEFAULT_MAX_JOBS: u64 = 500;
/// Smallest `max_jobs` `auto` chooses.
pub const MIN_AUTO_MAX_JOBS: u64 = 10;
/// Largest `max_jobs` `auto` chooses.
pub const MAX_AUTO_MAX_JOBS: u64 = 100_000;
/// A worker may grow this fraction past its warm size before it is recycled (`make sim`,
/// `leak`: 1.0 held 107 % of the static memory; 0.5–0.8 cost SLO minutes to cold workers).
pub const WARM_GROWTH_ALLOWANCE: f64 = 0.9;
/// A raise of `max_jobs` needs room in the memory limit for this many times the measured
/// growth per job over the extra jobs: a step leak (8 MiB every 150 jobs) measures less
/// than its average in a window between two steps, and a raise on such a window let the
/// workers of the `leak` trace outgrow their pod's limit (`make sim`: an OOM kill 30 s
/// after 262 → 524 on 46 KiB per job measured, 55 KiB on average).
pub const RAISE_GROWTH_MARGIN: f64 = 2.0;
/// Memory growth per job below this many bytes counts as no growth (RSS moves in pages).
pub const MEMORY_GROWTH_NOISE: f64 = 256.0;
/// A new value within this fraction of the current one changes nothing.
pub const TOLERANCE: f64 = 0.15;
/// At most one increase per this period, by at most a factor of two.
pub const UP_PERIOD: Duration = Duration::from_secs(600);
/// At most one decrease per this period …
pub const DOWN_PERIOD: Duration = Duration::from_secs(120);
/// … by at most this fraction of the value, or further as long as it recycles at most this
/// fraction of the live workers: pacer recycles every worker past a lowered max_jobs
/// after its next job, so a big cut into old workers replaces most of the pool at once
/// (cold workers, a dip in capacity), while a cut above the jobs they have done recycles
/// nobody (`make sim`, `leak`: after the deploy 7116 came down to 536 in quarters over
/// 20 minutes while every worker was younger than 1000 jobs and grew 37 MiB a minute).
/// `max_worker_memory` guards a fast leak meanwhile.
pub const DOWN_MAX_FRACTION: f64 = 0.25;

/// How much a worker grows before `max_jobs` recycles it, bytes, when `max_jobs` is what
/// recycles a fast leak; `None` otherwise. A fast leak grows half the
/// [`WARM_GROWTH_ALLOWANCE`] within [`DEFAULT_MAX_JOBS`] jobs: the slow tail of a warm-up
/// in young workers (14 KiB per job in `make sim`'s `node-loss`) is not one. And
/// `max_jobs` must be at most a little above what the growth asks for: far above it (a cut
/// still on its way) growth × `max_jobs` says nothing about what the workers reach.
#[must_use]
pub fn recycled_growth(max_jobs: u64, growth: Option<f64>, warm: Option<f64>) -> Option<f64> {
    let (growth, warm) = (growth?, warm?);
    let grown = growth * max_jobs as f64;
    (growth >= MEMORY_GROWTH_NOISE
        && growth * DEFAULT_MAX_JOBS as f64 >= warm * WARM_GROWTH_ALLOWANCE / 2.0
        && max_jobs > 0
        && grown <= warm * WARM_GROWTH_ALLOWANCE * (1.0 + TOLERANCE))
        .then_some(grown)
}

/// What was measured, and the memory a worker may use.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Inputs {
    /// Memory growth per job, bytes.
    pub growth: Option<f64>,
    /// Memory of a warm worker, bytes.
    pub warm: Option<f64>,
    /// Most memory a worker may reach (its share of the limit, `max_worker_memory`), bytes.
    pub cap: f64,
    /// Jobs done by the live worker a quarter of the pool is older than
    /// (`Load::jobs_done_p75`); `None` when the pods do not report it.
    pub jobs_done_p75: Option<f64>,
}

/// The new `max_jobs` and why, or `None` to keep `current`.
#[must_use]
pub fn recommend(
    current: u64,
    inputs: Inputs,
    last_change: Option<Timestamp>,
    now: Timestamp,
) -> Option<(u64, String)> {
    let since = |period: Duration| {
        last_change.is_none_or(|t| now.duration_since(t).as_secs_f64() >= period.as_secs_f64())
    };
    let may_raise = since(UP_PERIOD);
    let may_lower = since(DOWN_PERIOD);
    let lower_to = |wanted: u64| {
        let step = (current as f64 * (1.0 - DOWN_MAX_FRACTION)).ceil() as u64;
        // Workers that have done more than this many jobs are at most a quarter of them.
        let recycles_a_quarter = inputs
            .jobs_done_p75
            .map_or(step, |jobs| (jobs.max(0.0).ceil() as u64).saturating_add(1));
        wanted
            .max(step.min(recycles_a_quarter))
            .max(MIN_AUTO_MAX_JOBS)
    };
    let raise_to = |wanted: u64| wanted.min(current.saturating_mul(2)).max(current);
    match (inputs.growth, inputs.warm) {
        (Some(growth), Some(warm)) if growth >= MEMORY_GROWTH_NOISE => {
            let headroom = (inputs.cap - warm).min(warm * WARM_GROWTH_ALLOWANCE);
            let wanted = if headroom <= 0.0 {
                MIN_AUTO_MAX_JOBS
            } else {
                floor_u64(headroom / growth).clamp(MIN_AUTO_MAX_JOBS, MAX_AUTO_MAX_JOBS)
            };
            let why = |to: u64| {
                let mut why = format!(
                    "workers past their warm-up grow {} per job from {} warm; recycling after \
                     {wanted} jobs keeps them under {}",
                    bytes(growth),
                    bytes(warm),
                    bytes(warm + growth * wanted as f64),
                );
                if to != wanted {
                    why.push_str(&format!("; {to} for now (max_jobs moves in steps)"));
                }
                why
            };
            if current == 0 {
                Some((wanted, why(wanted)))
            } else if (wanted as f64) < current as f64 * (1.0 - TOLERANCE) {
                may_lower.then(|| {
                    let to = lower_to(wanted);
                    (to, why(to))
                })
            } else if (wanted as f64) > current as f64 * (1.0 + TOLERANCE) && may_raise {
                let to = raise_to(wanted);
                Some((to, why(to)))
            } else {
                None
            }
        }
        _ if current > 0 && current < DEFAULT_MAX_JOBS && may_raise => {
            let to = raise_to(DEFAULT_MAX_JOBS);
            Some((
                to,
                "no memory growth per job is measurable past the warm-up any more; \
                 max_jobs returns towards its default, doubling at most every 10m"
                    .to_owned(),
            ))
        }
        _ => None,
    }
}

fn bytes(b: f64) -> String {
    if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MI: f64 = 1024.0 * 1024.0;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn leak(kib: f64) -> Inputs {
        Inputs {
            growth: Some(kib * 1024.0),
            warm: Some(30.0 * MI),
            cap: 128.0 * MI,
            jobs_done_p75: None,
        }
    }

    #[test]
    fn a_leak_lowers_max_jobs_in_quarters() {
        // headroom = min(128 − 30, 30 × 0.9) MiB = 27 MiB; 27 MiB ÷ 100 KiB = 276.
        let (to, why) = recommend(360, leak(100.0), Some(t(-120)), t(0)).unwrap();
        assert_eq!(to, 276);
        // From 500 a quarter at most, and not again within two minutes.
        assert_eq!(recommend(500, leak(100.0), None, t(0)).unwrap().0, 375);
        assert_eq!(recommend(375, leak(100.0), Some(t(-60)), t(0)), None);
        assert_eq!(
            recommend(375, leak(100.0), Some(t(-120)), t(0)).unwrap().0,
            282
        );
        assert!(why.contains("100.0 KiB per job"), "{why}");
        // A tight cap: min(40 − 30, 30) = 10 MiB ÷ 100 KiB = 102.
        let tight = Inputs {
            cap: 40.0 * MI,
            ..leak(100.0)
        };
        assert_eq!(recommend(130, tight, None, t(0)).unwrap().0, 102);
        // Unlimited becomes limited.
        assert_eq!(recommend(0, leak(100.0), None, t(0)).unwrap().0, 276);
    }

    #[test]
    fn small_moves_are_ignored_and_raises_are_slow() {
        // 276 wanted, 300 in force: within 15 %.
        assert_eq!(recommend(300, leak(100.0), None, t(0)), None);
        // Half the leak wants 2 × more: doubled, and only after the period.
        assert_eq!(recommend(100, leak(100.0), Some(t(-60)), t(0)), None);
        assert_eq!(
            recommend(100, leak(100.0), Some(t(-600)), t(0)).unwrap().0,
            200
        );
    }

    #[test]
    fn without_growth_a_lowered_max_jobs_comes_back() {
        let none = Inputs {
            growth: Some(10.0),
            warm: Some(30.0 * MI),
            cap: 128.0 * MI,
            jobs_done_p75: None,
        };
        assert_eq!(recommend(120, none, Some(t(-600)), t(0)).unwrap().0, 240);
        assert_eq!(recommend(400, none, Some(t(-600)), t(0)).unwrap().0, 500);
        assert_eq!(recommend(500, none, None, t(0)), None);
        assert_eq!(recommend(120, none, Some(t(-60)), t(0)), None);
        // Nothing measured at all keeps the value.
        let unknown = Inputs {
            growth: None,
            warm: None,
            cap: 128.0 * MI,
            jobs_done_p75: None,
        };
        assert_eq!(recommend(500, unknown, None, t(0)), None);
        assert_eq!(recommend(0, unknown, None, t(0)), None);
    }

    /// A cut is bounded by the workers it recycles at once, not by a quarter of the value:
    /// above the jobs the live workers have done it recycles nobody and goes straight to
    /// the target; into them, no further than leaves three quarters untouched — but always
    /// at least a quarter of the value, as without the workers' jobs.
    #[test]
    fn a_cut_recycles_at_most_a_quarter_of_the_workers() {
        let young = Inputs {
            jobs_done_p75: Some(700.0),
            ..leak(100.0)
        };
        // 7116 in force, 276 wanted, three quarters of the workers at ≤ 700 jobs: a cut
        // to 701 recycles at most a quarter, and 276 would recycle more.
        let (to, why) = recommend(7116, young, None, t(0)).unwrap();
        assert_eq!(to, 701);
        assert!(why.contains("701 for now"), "{why}");
        // Every worker younger than the target: straight there.
        let fresh = Inputs {
            jobs_done_p75: Some(200.0),
            ..leak(100.0)
        };
        assert_eq!(recommend(7116, fresh, None, t(0)).unwrap().0, 276);
        // Old workers: a quarter of the value, as before.
        let old = Inputs {
            jobs_done_p75: Some(480.0),
            ..leak(100.0)
        };
        assert_eq!(recommend(500, old, None, t(0)).unwrap().0, 375);
        // Still once per two minutes.
        assert_eq!(recommend(7116, fresh, Some(t(-60)), t(0)), None);
    }

    /// What a worker grows before `max_jobs` recycles it counts only for a fast leak
    /// (half the allowance within the default 500 jobs) and a `max_jobs` near the leak's
    /// value: a warm-up's slow tail, or a cut still on its way, say nothing about it.
    #[test]
    fn recycled_growth_only_of_a_fast_leak_in_hand() {
        let warm = Some(30.0 * MI);
        // 100 KiB per job, max_jobs 276: 27 MiB.
        let grown = recycled_growth(276, Some(100.0 * 1024.0), warm).unwrap();
        assert!((grown - 27.0 * MI).abs() < 0.1 * MI, "{grown}");
        // 14 KiB per job (a warm-up's tail): 500 jobs grow 6.8 MiB < 30 × 0.9 ÷ 2.
        assert_eq!(recycled_growth(1900, Some(14.0 * 1024.0), warm), None);
        // A cut on its way: 7116 jobs of 100 KiB are far past the allowance.
        assert_eq!(recycled_growth(7116, Some(100.0 * 1024.0), warm), None);
        // Nothing measured, or unlimited.
        assert_eq!(recycled_growth(276, None, warm), None);
        assert_eq!(recycled_growth(0, Some(100.0 * 1024.0), warm), None);
    }

    /// Warm-up is not a leak, and a leaking worker may grow 90 % past its warm size before
    /// it is recycled: a tighter allowance recycles workers that have barely warmed up
    /// (`make sim`, `leak`: at 50–75 % the cold workers cost more SLO minutes than the
    /// memory saved), a looser one lets the leak double the pods' memory.
    #[test]
    fn a_worker_may_grow_most_of_its_warm_size() {
        let roomy = Inputs {
            cap: 1024.0 * MI,
            ..leak(100.0)
        };
        // min(1024 − 30, 30 × 0.9) = 27 MiB ÷ 100 KiB = 276 jobs.
        let (to, why) = recommend(0, roomy, None, t(0)).unwrap();
        assert_eq!(to, 276);
        let recycled_at = 30.0 * MI + 100.0 * 1024.0 * to as f64;
        assert!(
            recycled_at <= 57.0 * MI && recycled_at > 56.0 * MI,
            "{recycled_at}"
        );
        assert!(why.contains("keeps them under 57.0 MiB"), "{why}");
    }
}
