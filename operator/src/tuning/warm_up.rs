//! A fresh worker's warm-up, fitted from pacer's job time by worker age
//! (`pacer_worker_age_*`, [`Load::worker_age`](crate::tuning::load::Load::worker_age)).
//! Pure.
//!
//! A worker's `j`-th job (from 0) takes `s·(1 + E·e^(−j/τ))`: `s` warm, `E` the first
//! job's extra as a share of it (opcache, autoload, a framework's lazily built services),
//! `τ` the jobs over which it decays. A band of ages `[a, b)` then has the mean
//! `s·(1 + E·f(a, b, τ))`, `f` the mean of `e^(−j/τ)` over the band. For each `τ` of a
//! grid the least-squares line through the bands' means (weighted by their jobs) gives
//! `s` and `s·E`; the `τ` with the least residual wins. `None` when the data cannot say:
//! fewer than [`MIN_BANDS`] bands of [`MIN_BAND_JOBS`] jobs, no positive warm time, a
//! warm-up longer than the ages measured ([`SPAN`]) — extrapolated, its length would be
//! a guess (a `max_jobs` of 150 and a warm-up of 300 look alike to any longer one) — or
//! no band young enough to show its start ([`YOUNG`]; flat bands need one too, or they
//! would only say that old workers are warm).
//!
//! The jobs inside a band are taken as spread evenly over its ages, up to where
//! `max_jobs` recycles the workers (pacer adds up to 14 % per worker, so the mean, 7 %);
//! the open last band (`3000+`) as three times its start, like the others (at the longest
//! `τ` fitted its `f` is below 0.05 either way).

use crate::sample::AgeBand;

/// A band counts with this many jobs in the window (its mean is noisy below).
pub const MIN_BAND_JOBS: f64 = 50.0;
/// Bands the fit needs: three points for two shape parameters and the warm time.
pub const MIN_BANDS: usize = 3;
/// Shortest warm-up fitted, jobs.
pub const MIN_WARM_UP_JOBS: f64 = 10.0;
/// Longest warm-up fitted, jobs.
pub const MAX_WARM_UP_JOBS: f64 = 3000.0;
/// Largest first-job extra fitted, as a share of a warm job (a first job 21× a warm one).
pub const MAX_EXTRA: f64 = 20.0;
/// A warm-up with a larger extra than this has a length worth using; below it the bands
/// are flat and `τ` is noise.
pub const MIN_EXTRA: f64 = 0.05;
/// The oldest measured age must reach this many `τ` (78 % of the decay) for a warm-up
/// of a measurable size to count.
pub const SPAN: f64 = 1.5;
/// … and the youngest measured band must start within this many `τ` (90 % of the extra
/// left), and at [`MIN_WARM_UP_JOBS`] at the latest whatever the fit: without young
/// workers the bands' tails fit a small early warm-up as well as a large short one
/// (`make sim`: E = 4.5 over 120 jobs from bands of 300 jobs and older, for the app's 0.4
/// over 300).
pub const YOUNG: f64 = 0.1;
/// The grid of `τ`: geometric steps of 5 %.
const GRID_STEP: f64 = 1.05;

/// A fitted warm-up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WarmUp {
    /// `E`: the first job's extra time as a share of a warm job's.
    pub extra: f64,
    /// `τ`: jobs over which the extra decays (its time constant).
    pub jobs: f64,
    /// `s`: a warm job's time, seconds.
    pub warm_seconds: f64,
}

impl WarmUp {
    /// Seconds a fresh worker's first job takes beyond a warm one's: `E·s`.
    #[must_use]
    pub fn first_job_extra_seconds(&self) -> f64 {
        self.extra * self.warm_seconds
    }

    /// `τ` when the warm-up is large enough for its length to mean something
    /// ([`MIN_EXTRA`]); flat bands say there is none, not how long it is.
    #[must_use]
    pub fn length(&self) -> Option<f64> {
        (self.extra >= MIN_EXTRA).then_some(self.jobs)
    }
}

/// Mean of `e^(−j/τ)` over the integers `j` in `[a, b)`.
fn mean_decay(a: f64, b: f64, tau: f64) -> f64 {
    let n = (b - a).max(1.0);
    let r = (-1.0 / tau).exp();
    (-a / tau).exp() * (1.0 - r.powf(n)) / (n * (1.0 - r))
}

/// The ages a band's jobs were run at: `[first, end)`, the end cut where `max_jobs`
/// recycles the workers (see the module's doc).
fn span(band: &AgeBand, max_jobs: u64) -> (f64, f64) {
    let end = band.end.unwrap_or(band.first.max(1.0) * 3.0);
    let recycled = max_jobs as f64 * 1.07;
    if max_jobs > 0 && recycled > band.first {
        (band.first, end.min(recycled))
    } else {
        (band.first, end)
    }
}

/// The warm-up the bands show (see the module's doc); `max_jobs` is the value in force
/// (0: unlimited).
#[must_use]
pub fn fit(bands: &[AgeBand], max_jobs: u64) -> Option<WarmUp> {
    // (ages, mean seconds, weight)
    let points: Vec<((f64, f64), f64, f64)> = bands
        .iter()
        .filter(|b| b.jobs >= MIN_BAND_JOBS && b.seconds.is_finite() && b.seconds >= 0.0)
        .map(|b| (span(b, max_jobs), b.seconds / b.jobs, b.jobs))
        .collect();
    if points.len() < MIN_BANDS {
        return None;
    }
    let total: f64 = points.iter().map(|p| p.2).sum();
    let mean_y = points.iter().map(|p| p.1 * p.2).sum::<f64>() / total;

    // For one τ: (residual, warm seconds, extra seconds of the first job).
    let line = |tau: f64| {
        let f: Vec<f64> = points
            .iter()
            .map(|((a, b), ..)| mean_decay(*a, *b, tau))
            .collect();
        let mean_f = points.iter().zip(&f).map(|(p, f)| f * p.2).sum::<f64>() / total;
        let (mut sxy, mut sxx) = (0.0, 0.0);
        for (p, f) in points.iter().zip(&f) {
            sxy += p.2 * (f - mean_f) * (p.1 - mean_y);
            sxx += p.2 * (f - mean_f) * (f - mean_f);
        }
        // Young workers faster than old ones are no warm-up: a negative slope is E = 0.
        let slope = if sxx > 0.0 { (sxy / sxx).max(0.0) } else { 0.0 };
        let warm = mean_y - slope * mean_f;
        let residual: f64 = points
            .iter()
            .zip(&f)
            .map(|(p, f)| p.2 * (p.1 - warm - slope * f).powi(2))
            .sum();
        (residual, warm, slope)
    };

    let mut best: Option<(f64, f64, f64, f64)> = None;
    let mut tau = MIN_WARM_UP_JOBS;
    while tau <= MAX_WARM_UP_JOBS * (1.0 + 1e-9) {
        let (residual, warm, slope) = line(tau);
        // Ties (flat bands fit every τ alike) keep the shorter warm-up.
        if best.is_none_or(|b| residual < b.0 * (1.0 - 1e-9)) {
            best = Some((residual, tau, warm, slope));
        }
        tau *= GRID_STEP;
    }
    let (_, tau, warm, slope) = best?;
    if warm <= 0.0 || !warm.is_finite() {
        return None;
    }
    let extra = (slope / warm).clamp(0.0, MAX_EXTRA);
    let oldest = points.iter().map(|((_, b), ..)| *b).fold(0.0, f64::max);
    let youngest = points
        .iter()
        .map(|((a, _), ..)| *a)
        .fold(f64::INFINITY, f64::min);
    if youngest > MIN_WARM_UP_JOBS
        || (extra >= MIN_EXTRA && (oldest < SPAN * tau || youngest > YOUNG * tau))
    {
        return None;
    }
    Some(WarmUp {
        extra,
        jobs: tau,
        warm_seconds: warm,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// pacer's bands.
    const BANDS: [(f64, Option<f64>); 7] = [
        (0.0, Some(10.0)),
        (10.0, Some(30.0)),
        (30.0, Some(100.0)),
        (100.0, Some(300.0)),
        (300.0, Some(1000.0)),
        (1000.0, Some(3000.0)),
        (3000.0, None),
    ];

    /// The bands of `lives` workers recycled after `max_jobs` jobs plus pacer's jitter
    /// (spread evenly over 0–14 %; `max_jobs` 0: lives of 5000), each job taking
    /// `s·(1 + E·e^(−j/τ))` exactly.
    fn bands(s: f64, extra: f64, tau: f64, max_jobs: u64, lives: u32) -> Vec<AgeBand> {
        let mut out: Vec<AgeBand> = BANDS
            .iter()
            .map(|&(first, end)| AgeBand {
                first,
                end,
                seconds: 0.0,
                jobs: 0.0,
            })
            .collect();
        for life in 0..lives {
            let jitter = 1.0 + 0.14 * (f64::from(life) + 0.5) / f64::from(lives);
            let jobs = if max_jobs == 0 {
                5000
            } else {
                (max_jobs as f64 * jitter) as u64
            };
            for j in 0..jobs {
                let j = j as f64;
                let band = out
                    .iter_mut()
                    .rev()
                    .find(|b| b.first <= j)
                    .expect("band 0 starts at 0");
                band.jobs += 1.0;
                band.seconds += s * (1.0 + extra * (-j / tau).exp());
            }
        }
        out
    }

    fn near(a: f64, b: f64, within: f64) -> bool {
        (a - b).abs() <= within * b.abs()
    }

    #[test]
    fn a_known_warm_up_is_recovered() {
        // The simulator's app: 60 ms, CPU 2× while cold over 300 jobs (E ≈ 0.4).
        for (s, extra, tau, max_jobs) in [
            (0.06, 0.4, 300.0, 500),
            (0.06, 0.4, 300.0, 0),
            (0.02, 2.0, 30.0, 500),
            (0.1, 1.0, 100.0, 200),
            (0.05, 0.5, 800.0, 0),
        ] {
            let w = fit(&bands(s, extra, tau, max_jobs, 5), max_jobs)
                .unwrap_or_else(|| panic!("{extra} over {tau} jobs, max_jobs {max_jobs}"));
            let case = format!("{extra} over {tau}, max_jobs {max_jobs}: {w:?}");
            assert!(near(w.jobs, tau, 0.15), "{case}");
            assert!(near(w.extra, extra, 0.15), "{case}");
            assert!(near(w.warm_seconds, s, 0.03), "{case}");
            assert!(near(w.first_job_extra_seconds(), s * extra, 0.2), "{case}");
            assert_eq!(w.length(), Some(w.jobs), "{case}");
        }
    }

    #[test]
    fn flat_bands_are_no_warm_up() {
        let w = fit(&bands(0.05, 0.0, 300.0, 500, 5), 500).expect("enough jobs");
        assert!(w.extra < 1e-6, "{w:?}");
        assert!((w.warm_seconds - 0.05).abs() < 1e-9, "{w:?}");
        assert_eq!(w.length(), None, "no warm-up has no length");
        // Faster young workers are no warm-up either.
        let w = fit(&bands(0.05, -0.3, 100.0, 500, 5), 500).expect("enough jobs");
        assert_eq!(w.extra, 0.0, "{w:?}");
    }

    #[test]
    fn too_few_jobs_say_nothing() {
        // Under half a life of 500 jobs: 4, 8, 28 and 80 and 88 jobs in the bands.
        let few: Vec<AgeBand> = bands(0.06, 0.4, 300.0, 500, 1)
            .into_iter()
            .map(|b| AgeBand {
                jobs: b.jobs * 0.4,
                seconds: b.seconds * 0.4,
                ..b
            })
            .collect();
        assert_eq!(fit(&few, 500), None);
        // Plenty of jobs, but in two bands only.
        let two: Vec<AgeBand> = bands(0.06, 0.4, 300.0, 500, 50)
            .into_iter()
            .filter(|b| b.first >= 100.0)
            .collect();
        assert_eq!(fit(&two, 500), None);
        assert_eq!(fit(&[], 500), None);
    }

    /// Workers recycled after 60 jobs cannot show a warm-up of 1000: its length would
    /// be extrapolated, and so there is none.
    #[test]
    fn a_warm_up_longer_than_the_ages_measured_is_none() {
        assert_eq!(fit(&bands(0.06, 1.0, 1000.0, 60, 50), 60), None);
    }

    /// Only old workers in the window: their bands' tails fit a large short warm-up as
    /// well as the real one, and so there is none.
    #[test]
    fn a_warm_up_needs_young_workers() {
        let old: Vec<AgeBand> = bands(0.06, 0.4, 300.0, 0, 20)
            .into_iter()
            .filter(|b| b.first >= 300.0)
            .collect();
        assert_eq!(old.len(), 3);
        assert_eq!(fit(&old, 0), None);
    }
}
