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
use crate::tuning::warm_up::WarmUp;

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

/// Whether workers growing `growth` bytes per job from `warm` leak fast: half the
/// [`WARM_GROWTH_ALLOWANCE`] within [`DEFAULT_MAX_JOBS`] jobs, and above the noise. The
/// slow tail of a warm-up in young workers (14 KiB per job in `make sim`'s `node-loss`)
/// is not one.
fn leaks_fast(growth: f64, warm: f64) -> bool {
    growth >= MEMORY_GROWTH_NOISE
        && growth * DEFAULT_MAX_JOBS as f64 >= warm * WARM_GROWTH_ALLOWANCE / 2.0
}

/// How much a worker grows before `max_jobs` recycles it, bytes, when `max_jobs` is what
/// recycles a fast leak ([`leaks_fast`]); `None` otherwise. And `max_jobs` must be at most
/// a little above what the growth asks for: far above it (a cut still on its way) growth ×
/// `max_jobs` says nothing about what the workers reach.
#[must_use]
pub fn recycled_growth(max_jobs: u64, growth: Option<f64>, warm: Option<f64>) -> Option<f64> {
    let (growth, warm) = (growth?, warm?);
    let grown = growth * max_jobs as f64;
    (leaks_fast(growth, warm)
        && max_jobs > 0
        && grown <= warm * WARM_GROWTH_ALLOWANCE * (1.0 + TOLERANCE))
        .then_some(grown)
}

/// A pod that recycles a worker so often that one is out for at least this share of the
/// time gets a spare worker.
pub const SPARE_WORKER_SHARE: f64 = 0.1;

/// Workers out of service at any moment because `max_jobs` recycles them: a pool doing
/// `jobs_per_second` recycles `jobs_per_second ÷ max_jobs` workers a second, each out for
/// its boot (`boot_seconds`, as pacer measured it — `pacer_worker_boot_seconds` — or
/// [`WORKER_BOOT_SECONDS`] until a boot was seen). Its cold first jobs are in the job
/// time the load is measured with. Only below the default `max_jobs` (a value lowered for
/// a leak); at the default the pools of `make sim` have the slack in their numbers.
#[must_use]
pub fn recycling_workers(max_jobs: u64, jobs_per_second: f64, boot_seconds: Option<f64>) -> f64 {
    if max_jobs == 0 || max_jobs >= DEFAULT_MAX_JOBS || jobs_per_second <= 0.0 {
        return 0.0;
    }
    jobs_per_second / max_jobs as f64 * boot(boot_seconds)
}

/// A worker's boot: as measured, or [`WORKER_BOOT_SECONDS`] until one was.
fn boot(measured: Option<f64>) -> f64 {
    measured
        .filter(|b| b.is_finite() && *b >= 0.0)
        .unwrap_or(WORKER_BOOT_SECONDS)
}

/// The recycling workers out at a moment come and go at random (Poisson: their count
/// varies by about its square root); spares cover the mean and this many of those
/// deviations. `make sim`, `leak`, seeds 1–6: the mean alone (0) kept 98.92–99.48 % of the
/// minutes within the SLO at 53–56 % of the static memory; 0.5 kept 99.65–99.79 % at
/// 56–58 % on seeds 1–5 (seed 6: 99.27 %, 60.9 %); 1 (square-root staffing's usual margin)
/// 99.44–99.90 % at 57–63 %.
pub const RECYCLING_BETA: f64 = 0.5;

/// Spare workers a pod needs for the `recycling` workers (per pod,
/// [`recycling_workers`]) it has out at any moment: `recycling + β·√recycling`
/// ([`RECYCLING_BETA`]), rounded up, once that is [`SPARE_WORKER_SHARE`] of a worker or more
/// (`make sim`, `leak`: 1 pod of 6 workers at night, a recycle every ~9 s at `max_jobs`
/// ~450, 1–3 % of the requests over 250 ms in the minutes a boot fell on busy seconds; by
/// day 15 workers at `max_jobs` ~150 have 2 out).
#[must_use]
pub fn spare_workers(recycling: f64) -> u32 {
    if !recycling.is_finite() || recycling < SPARE_WORKER_SHARE {
        return 0;
    }
    crate::tuning::stats::ceil_u32(recycling + RECYCLING_BETA * recycling.sqrt() - 1e-9)
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
    /// Mean job time of warm pods, seconds (`Load::warm_job_seconds`).
    pub job_seconds: Option<f64>,
    /// Cores a busy worker uses (`Load::cpu_per_busy_worker`): the CPU share of a job.
    pub cpu_per_busy_worker: Option<f64>,
    /// Seconds a worker took to boot in the window (`Load::boot_seconds`).
    pub boot_seconds: Option<f64>,
    /// A fresh worker's warm-up as pacer measured it (`Load::worker_age`, fitted by
    /// [`crate::tuning::warm_up::fit`]); `None`: [`COLD_CPU_EXTRA`] and [`WARM_UP_JOBS`]
    /// are assumed.
    pub warm_up: Option<WarmUp>,
    /// The running version's fast leak, as measured past the warm-up
    /// ([`confirms_fast_leak`], remembered in the tuner's state).
    pub fast_leak: Option<FastLeak>,
}

/// A fast leak measured on workers past their warm-up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FastLeak {
    /// Bytes per job.
    pub growth: f64,
    /// Warm size, bytes.
    pub warm: f64,
}

/// Whether a growth of `growth` bytes per job from `warm`, measured on workers that had
/// done `jobs` jobs, shows a fast leak ([`leaks_fast`]) rather than a warm-up: only on
/// workers past [`leak_confirm_jobs`] (two thirds of the warm-up pacer measured, or
/// [`LEAK_CONFIRM_JOBS`]). Young workers grow while they warm up, and a `max_jobs` lowered
/// for that growth keeps every worker young — after which only warm-up is ever measured
/// (`make sim`, `slowdown`: the cold start's growth, 56 KiB per job at 60–120 jobs, held
/// `max_jobs` at 121 for two days; past 200 jobs the warm-up of its app grows 38 KiB per
/// job, below the 43 KiB of a fast leak from 47 MiB, the leak of `leak` 64 KiB at every
/// age).
#[must_use]
pub fn confirms_fast_leak(
    growth: Option<f64>,
    warm: Option<f64>,
    jobs: Option<f64>,
    warm_up: Option<WarmUp>,
) -> Option<FastLeak> {
    let (growth, warm, jobs) = (growth?, warm?, jobs?);
    (leaks_fast(growth, warm) && jobs >= leak_confirm_jobs(warm_up))
        .then_some(FastLeak { growth, warm })
}

/// A fast leak counts once measured on workers that have done this many jobs, until pacer
/// measured the warm-up (two thirds of [`WARM_UP_JOBS`]: at 300, workers that `max_jobs`
/// recycles at 400–500 were measured past it only now and then, and `leak`'s seed 5 ran
/// 3.6 hours at 340–511 before its leak counted).
pub const LEAK_CONFIRM_JOBS: f64 = 200.0;

/// Jobs past which a worker's growth is a leak rather than its warm-up: two thirds of the
/// warm-up's length as measured ([`WarmUp::length`]; the ratio of [`LEAK_CONFIRM_JOBS`]
/// to [`WARM_UP_JOBS`]), else [`LEAK_CONFIRM_JOBS`].
#[must_use]
pub fn leak_confirm_jobs(warm_up: Option<WarmUp>) -> f64 {
    warm_up
        .and_then(|w| w.length())
        .map_or(LEAK_CONFIRM_JOBS, |tau| {
            tau * LEAK_CONFIRM_JOBS / WARM_UP_JOBS
        })
}

/// Seconds a recycled worker is assumed to take to boot before it serves, until pacer has
/// measured one (`pacer_worker_boot_seconds`; a framework's bootstrap).
pub const WORKER_BOOT_SECONDS: f64 = 1.5;
/// A fresh worker's CPU per job is this much more than a warm one's, decaying over
/// [`WARM_UP_JOBS`] jobs: assumed (opcache, autoload and the framework's lazily built
/// services) until pacer's job time by worker age shows the app's own
/// ([`Inputs::warm_up`]).
pub const COLD_CPU_EXTRA: f64 = 1.0;
/// Jobs over which a fresh worker's extra CPU decays (its time constant), until measured.
pub const WARM_UP_JOBS: f64 = 300.0;

/// A fresh worker's cold jobs: the first one's extra seconds and the jobs over which the
/// extra decays (its time constant).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cold {
    /// Seconds the first job takes beyond a warm one's.
    pub first_extra: f64,
    /// Time constant of the decay, jobs.
    pub jobs: f64,
}

impl Cold {
    /// As pacer measured it (`E`·`s` over `τ`), else assumed: [`COLD_CPU_EXTRA`] × the CPU
    /// of a job (`cpu`, seconds) over [`WARM_UP_JOBS`]; `None` when neither is known.
    #[must_use]
    pub fn of(warm_up: Option<WarmUp>, cpu: Option<f64>) -> Option<Cold> {
        match warm_up {
            Some(w) => Some(Cold {
                first_extra: w.first_job_extra_seconds(),
                jobs: w.jobs,
            }),
            None => cpu.filter(|c| c.is_finite()).map(|cpu| Cold {
                first_extra: COLD_CPU_EXTRA * cpu,
                jobs: WARM_UP_JOBS,
            }),
        }
    }
}

/// Worker-seconds a life of `jobs` jobs costs beyond the warm time of its jobs: the boot
/// (`boot_seconds` as measured, see [`recycling_workers`]), and the extra time of its cold
/// jobs — `cold.first_extra` for the first, decaying with time constant `cold.jobs`:
/// `Σ e^(−j/τ)` over its `jobs`. A short life pays only the start of that decay; a life
/// far past the warm-up pays all of it (≈ τ jobs' worth).
#[must_use]
pub fn life_cost(jobs: f64, cold: Cold, boot_seconds: Option<f64>) -> f64 {
    let decay = (-1.0 / cold.jobs.max(1e-9)).exp();
    let cold_jobs = (1.0 - decay.powf(jobs.max(0.0))) / (1.0 - decay);
    boot(boot_seconds) + cold.first_extra.max(0.0) * cold_jobs
}

/// Steps of the search for [`least_memory_per_work`]: `max_jobs` grows by this factor.
const SEARCH_STEP: f64 = 1.02;

/// The `max_jobs` at which a leaking worker costs the least memory per unit of work, when
/// what it needs is measured. A life of `M` jobs costs [`life_cost`]`(M)` worker-seconds
/// beyond its jobs, so a job takes `s + life_cost(M)/M` worker-seconds; a worker reaches
/// `W + g·M` (warm size `W`, growth `g` per job), which its pod's limit must hold. The
/// least of `(s + life_cost(M)/M)(W + g·M)` is searched over `M` (geometric steps of 2 %
/// from [`MIN_AUTO_MAX_JOBS`]): below it the pods need more workers for the cold ones than
/// the leak saves; above it each worker holds more leak than its share of work pays for.
///
/// `make sim`'s app, 64 KiB per job: W ≈ 50 MiB, s ≈ 60 ms, 25 ms CPU: ≈ 150. Round 6
/// charged every life the whole warm-up (`C` = 1.5 s + 300 × 25 ms, as if `M` ≫ 300),
/// whose least is the closed form `√(C·W ÷ (s·g))` ≈ 346: at 346 a life pays 68 % of it,
/// at 150 only 39 %, and the cheaper short lives put the least far lower.
#[must_use]
pub fn least_memory_per_work(inputs: &Inputs) -> Option<u64> {
    // The leak as measured past the warm-up: the workers a lowered `max_jobs` keeps young
    // grow by their warm-up too, and a leak estimated from them would lower it further.
    let FastLeak { growth, warm } = inputs.fast_leak?;
    let job = inputs.job_seconds?;
    let cpu = inputs.cpu_per_busy_worker.map(|c| c.clamp(0.0, 1.0) * job);
    let cold = Cold::of(inputs.warm_up, cpu)?;
    // Only for a fast leak: a warm-up's slow tail is no leak to trade cold workers against
    // (the state it comes from is read back from the status, so checked again).
    if !leaks_fast(growth, warm) || warm <= 0.0 || job <= 0.0 || !cold.first_extra.is_finite() {
        return None;
    }
    let per_work =
        |m: f64| (job + life_cost(m, cold, inputs.boot_seconds) / m) * (warm + growth * m);
    let mut m = MIN_AUTO_MAX_JOBS as f64;
    let mut best = (per_work(m), m);
    while m < MAX_AUTO_MAX_JOBS as f64 {
        m *= SEARCH_STEP;
        let cost = per_work(m);
        if cost < best.0 {
            best = (cost, m);
        }
    }
    best.0
        .is_finite()
        .then(|| floor_u64(best.1).clamp(MIN_AUTO_MAX_JOBS, MAX_AUTO_MAX_JOBS))
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
            let wanted = least_memory_per_work(&inputs).map_or(wanted, |best| wanted.min(best));
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
        (Some(_), Some(_)) if current > 0 && current < DEFAULT_MAX_JOBS && may_raise => {
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

    /// Nothing measured, a cap of 128 MiB.
    fn unmeasured() -> Inputs {
        Inputs {
            growth: None,
            warm: None,
            cap: 128.0 * MI,
            jobs_done_p75: None,
            job_seconds: None,
            cpu_per_busy_worker: None,
            boot_seconds: None,
            warm_up: None,
            fast_leak: None,
        }
    }

    /// `make sim`'s app with its 64 KiB/job leak measured past the warm-up: 50 MiB warm,
    /// jobs of 60 ms of which 25 ms CPU, 1.5 s boots, a 1 GiB cap.
    fn sim_app_leak() -> Inputs {
        let leak = FastLeak {
            growth: 64.0 * 1024.0,
            warm: 50.0 * MI,
        };
        Inputs {
            growth: Some(leak.growth),
            warm: Some(leak.warm),
            cap: 1024.0 * MI,
            job_seconds: Some(0.06),
            cpu_per_busy_worker: Some(0.025 / 0.06),
            boot_seconds: Some(1.5),
            fast_leak: Some(leak),
            ..unmeasured()
        }
    }

    fn leak(kib: f64) -> Inputs {
        Inputs {
            growth: Some(kib * 1024.0),
            warm: Some(30.0 * MI),
            ..unmeasured()
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
            ..unmeasured()
        };
        assert_eq!(recommend(120, none, Some(t(-600)), t(0)).unwrap().0, 240);
        assert_eq!(recommend(400, none, Some(t(-600)), t(0)).unwrap().0, 500);
        assert_eq!(recommend(500, none, None, t(0)), None);
        assert_eq!(recommend(120, none, Some(t(-60)), t(0)), None);
        // Nothing measured at all keeps the value.
        let unknown = unmeasured();
        assert_eq!(recommend(500, unknown, None, t(0)), None);
        assert_eq!(recommend(0, unknown, None, t(0)), None);
    }

    /// A lowered `max_jobs` comes back only when a window measures no growth, not when it
    /// measures nothing: workers recycled between two scrapes give no growth estimate at
    /// all, and restoring on such a window let the leak OOM-kill a pod (`make sim`,
    /// `leak`, seed 5: 227 → 454 at 11:10).
    #[test]
    fn a_lowered_max_jobs_stays_while_nothing_is_measured() {
        let unknown = unmeasured();
        assert_eq!(recommend(120, unknown, Some(t(-600)), t(0)), None);
        let warm_only = Inputs {
            warm: Some(30.0 * MI),
            ..unknown
        };
        assert_eq!(recommend(120, warm_only, Some(t(-600)), t(0)), None);
    }

    /// While a fast leak is measured, `max_jobs` aims at the least memory per unit of work:
    /// the `M` that minimises (s + C(M)/M)(W + g·M), with C(M) the boot and the cold CPU a
    /// life of `M` jobs costs.
    #[test]
    fn max_jobs_aims_at_the_least_memory_per_work() {
        // `make sim`'s app: 64 KiB per job from 50 MiB warm, jobs of 60 ms of which 25 ms
        // CPU, a 1.5 s boot. Per unit of work a life of M jobs costs
        // (0.06 + (1.5 + 0.025 × Σ e^(−j/300)) ÷ M) × (50 + M/16) MiB·s: least at ≈ 153
        // (5.33), against 5.67 at the 346 of charging every life the whole warm-up.
        let inputs = sim_app_leak();
        let leak = inputs.fast_leak.unwrap();
        assert_eq!(least_memory_per_work(&inputs), Some(153));
        // The allowance alone would say min(1024 − 50, 50 × 0.9) MiB ÷ 64 KiB = 720.
        let (to, why) = recommend(0, inputs, None, t(0)).unwrap();
        assert_eq!(to, 153, "{why}");
        // A slower boot makes a life dearer: a 4 s bootstrap recycles later.
        let slow_boot = Inputs {
            boot_seconds: Some(4.0),
            ..inputs
        };
        assert_eq!(least_memory_per_work(&slow_boot), Some(247));
        // Until a boot is measured, 1.5 s is assumed.
        let unmeasured_boot = Inputs {
            boot_seconds: None,
            ..inputs
        };
        assert_eq!(least_memory_per_work(&unmeasured_boot), Some(153));
        // Without the job time or the CPU share the allowance decides.
        let no_cpu_share = Inputs {
            cpu_per_busy_worker: None,
            ..inputs
        };
        assert_eq!(recommend(0, no_cpu_share, None, t(0)).unwrap().0, 720);
        // Nor without a leak measured past the warm-up: young workers' growth may be theirs.
        let unconfirmed = Inputs {
            fast_leak: None,
            ..inputs
        };
        assert_eq!(least_memory_per_work(&unconfirmed), None);
        assert_eq!(recommend(0, unconfirmed, None, t(0)).unwrap().0, 720);
        // A warm-up's slow tail (10 KiB per job: 5 MiB in 500 jobs) is no fast leak.
        let slow = Inputs {
            fast_leak: Some(FastLeak {
                growth: 10.0 * 1024.0,
                ..leak
            }),
            ..inputs
        };
        assert_eq!(least_memory_per_work(&slow), None);
    }

    /// The leak the least memory per work is computed from is the one measured past the
    /// warm-up, not what workers kept young measure (their warm-up on top).
    #[test]
    fn the_least_memory_per_work_uses_the_leak_measured_past_the_warm_up() {
        let inputs = Inputs {
            growth: Some(120.0 * 1024.0),
            warm: Some(46.0 * MI),
            ..sim_app_leak()
        };
        assert_eq!(least_memory_per_work(&inputs), Some(153));
    }

    /// A fast growth counts as a leak only on workers past [`LEAK_CONFIRM_JOBS`].
    #[test]
    fn a_fast_leak_is_confirmed_past_the_warm_up() {
        let (growth, warm) = (Some(56.0 * 1024.0), Some(46.0 * MI));
        // 56 KiB per job at 90 jobs: the warm-up of `make sim`'s app looks like this.
        assert_eq!(confirms_fast_leak(growth, warm, Some(90.0), None), None);
        let leak = Some(FastLeak {
            growth: 56.0 * 1024.0,
            warm: 46.0 * MI,
        });
        assert_eq!(confirms_fast_leak(growth, warm, Some(250.0), None), leak);
        // Slow growth is no fast leak at any age; nothing measured, nothing confirmed.
        assert_eq!(
            confirms_fast_leak(Some(10.0 * 1024.0), warm, Some(1000.0), None),
            None
        );
        assert_eq!(confirms_fast_leak(None, warm, Some(1000.0), None), None);

        // A warm-up pacer measured at 60 jobs: past 40 the growth is a leak; one of 600
        // jobs: not before 400.
        let measured = |jobs: f64| {
            Some(WarmUp {
                extra: 0.5,
                jobs,
                warm_seconds: 0.05,
            })
        };
        assert_eq!(leak_confirm_jobs(measured(60.0)), 40.0);
        assert_eq!(
            confirms_fast_leak(growth, warm, Some(90.0), measured(60.0)),
            leak
        );
        assert_eq!(
            confirms_fast_leak(growth, warm, Some(250.0), measured(600.0)),
            None
        );
        assert_eq!(
            confirms_fast_leak(growth, warm, Some(400.0), measured(600.0)),
            leak
        );
        // Flat bands (no warm-up measured) say nothing about its length: 200.
        let flat = Some(WarmUp {
            extra: 0.0,
            ..measured(60.0).unwrap()
        });
        assert_eq!(leak_confirm_jobs(flat), LEAK_CONFIRM_JOBS);
        assert_eq!(leak_confirm_jobs(None), LEAK_CONFIRM_JOBS);
    }

    /// A life pays the boot and only as much of the warm-up as it lives through.
    #[test]
    fn a_short_life_pays_part_of_the_warm_up() {
        let cold = Cold::of(None, Some(0.025)).unwrap();
        assert_eq!(
            cold,
            Cold {
                first_extra: 0.025,
                jobs: 300.0
            }
        );
        assert!((life_cost(0.0, cold, Some(2.0)) - 2.0).abs() < 1e-9);
        // Far past the warm-up: the boot and ≈ 300 jobs' extra CPU (7.5 s).
        let long = life_cost(10_000.0, cold, Some(1.5));
        assert!((long - (1.5 + 7.5)).abs() < 0.05, "{long}");
        // 150 jobs live through 1 − e^(−1/2) ≈ 39 % of it.
        let short = life_cost(150.0, cold, Some(1.5)) - 1.5;
        assert!((short / 7.5 - 0.39).abs() < 0.01, "{short}");
        // A measured warm-up replaces the assumed one: 60 ms jobs 50 % slower at first,
        // over 40 jobs: ≈ 40 × 30 ms = 1.2 s a long life.
        let measured = WarmUp {
            extra: 0.5,
            jobs: 40.0,
            warm_seconds: 0.06,
        };
        let cold = Cold::of(Some(measured), Some(0.025)).unwrap();
        assert!((cold.first_extra - 0.03).abs() < 1e-12);
        let long = life_cost(10_000.0, cold, Some(1.5)) - 1.5;
        assert!((long - 1.2).abs() < 0.02, "{long}");
        assert_eq!(Cold::of(None, None), None);
    }

    /// A measured warm-up prices a life instead of the assumed one: none makes short
    /// lives cheaper (a lower `max_jobs` for the same leak), a long heavy one dearer.
    #[test]
    fn the_least_memory_per_work_uses_the_measured_warm_up() {
        let inputs = sim_app_leak();
        // As assumed (25 ms × 1.0 over 300 jobs): 153, measured alike: the same.
        let as_assumed = WarmUp {
            extra: 0.025 / 0.06,
            jobs: 300.0,
            warm_seconds: 0.06,
        };
        let with = |w: WarmUp| Inputs {
            warm_up: Some(w),
            ..inputs
        };
        assert_eq!(least_memory_per_work(&with(as_assumed)), Some(153));
        let none = WarmUp {
            extra: 0.0,
            ..as_assumed
        };
        let heavy = WarmUp {
            extra: 3.0,
            ..as_assumed
        };
        let (flat, heavy) = (
            least_memory_per_work(&with(none)).unwrap(),
            least_memory_per_work(&with(heavy)).unwrap(),
        );
        assert!(flat < 153 && heavy > 153, "{flat} {heavy}");
        // Measured, the CPU share is not needed.
        let no_cpu = Inputs {
            cpu_per_busy_worker: None,
            ..with(as_assumed)
        };
        assert_eq!(least_memory_per_work(&no_cpu), Some(153));
    }

    /// Spare workers only for a `max_jobs` lowered below the default: the workers out
    /// booting at once (by the measured boot) and half their deviation, once that is ≥ 10 %
    /// of a worker.
    #[test]
    fn spare_workers_for_frequent_recycling() {
        // 40 jobs/s at 200: a recycle every 5 s, 2 s out: 0.4 workers out (+ 0.32), one.
        assert!((recycling_workers(200, 40.0, Some(2.0)) - 0.4).abs() < 1e-9);
        assert_eq!(spare_workers(recycling_workers(200, 40.0, Some(2.0))), 1);
        // Until a boot is measured, 1.5 s.
        assert!((recycling_workers(200, 40.0, None) - 0.3).abs() < 1e-9);
        // 5 jobs/s at 200: every 40 s, 0.05 workers out: none.
        assert_eq!(spare_workers(recycling_workers(200, 5.0, Some(2.0))), 0);
        // 200 jobs/s at 150 with 1.5 s boots: 2 workers out, + 0.71: three spares.
        assert_eq!(spare_workers(recycling_workers(150, 200.0, Some(1.5))), 3);
        // A 4 s bootstrap: 5.3 out, + 1.15: seven.
        assert_eq!(spare_workers(recycling_workers(150, 200.0, Some(4.0))), 7);
        // The default, unlimited, idle.
        assert_eq!(recycling_workers(DEFAULT_MAX_JOBS, 400.0, None), 0.0);
        assert_eq!(recycling_workers(0, 40.0, None), 0.0);
        assert_eq!(recycling_workers(200, 0.0, None), 0.0);
        assert_eq!(spare_workers(f64::NAN), 0);
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
