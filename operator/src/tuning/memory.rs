//! The memory limit (`auto`): a model of the pods' peak working set, learned over days.
//!
//! Each round adds, per pod, the highest working set of its cgroup in the window — what
//! the kernel's OOM killer judges, not the sum of the workers' RSS — against the workers it
//! ran. The model keeps, with weights that halve every [`HALF_LIFE`] (after a week a
//! sample weighs 1 %; VPA keeps 8 days of peaks):
//! * decayed sums for a least-squares line `peak = fixed + per_worker × workers`, so that
//!   the limit follows the workers a pod runs (5 at night need less than 16 at noon);
//! * a decayed histogram of the residuals (peak − line), whose 99th percentile is the
//!   margin for what a scrape sees only now and then (a job's transient allocation, the
//!   page cache).
//!
//! The limit is `(line(workers) + residual p99) × [`HEADROOM`]`, at least
//! [`HEADROOM_MIN_MIB`] above it. The model lives in the
//! status, so an operator restart keeps it. An OOM kill adds the limit it hit as a heavy
//! sample, so the model remembers it for days.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

/// Weights halve over this period.
pub const HALF_LIFE: Duration = Duration::from_secs(24 * 3600);
/// Headroom on the modelled peak.
pub const HEADROOM: f64 = 1.1;
/// … and at least this many MiB (a small pod's 10 % is less than one job's transient
/// allocation plus the page cache the kernel has not reclaimed yet).
pub const HEADROOM_MIN_MIB: f64 = 48.0;
/// Quantile of the residuals added to the line.
pub const RESIDUAL_QUANTILE: f64 = 0.99;
/// Width of a residual bucket, MiB.
pub const BUCKET_MIB: f64 = 2.0;
/// Residuals are kept from −this many MiB (the line can overshoot a pod's peak).
const OFFSET_MIB: f64 = 2048.0;
/// Most buckets kept (the lightest are dropped first; the status stays small).
pub const MAX_BUCKETS: usize = 96;
/// What the model learned before a new application version weighs as if it were this
/// much older (four half-lives: 1/16).
pub const NEW_VERSION_AGE: Duration = Duration::from_secs(4 * 24 * 3600);
/// Most versions the model keeps (the status' limit): a canary of a few images fits.
pub const MAX_VERSIONS: usize = 16;
/// Longest version (image reference) the model keeps.
pub const MAX_VERSION_LEN: usize = 512;
/// Weight of the sample an OOM kill adds (as many fresh samples).
pub const OOM_WEIGHT: f64 = 30.0;
/// Residuals are kept once the line rests on this many samples.
const MIN_SAMPLES_FOR_RESIDUALS: f64 = 10.0;
/// Below this spread of workers (variance) the slope is not measured but assumed.
const MIN_WORKER_VARIANCE: f64 = 0.25;
const MIB: f64 = 1024.0 * 1024.0;

/// The learned model. Weights are relative to `reference` (a sample at `t` weighs
/// `2^((t − reference) / HALF_LIFE)`), so that decaying needs no rewrite of old samples.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Model {
    /// The time weights are relative to.
    pub reference: Option<Timestamp>,
    /// Σw, Σw·x, Σw·y, Σw·x², Σw·x·y with x = workers, y = peak in MiB.
    pub sums: [f64; 5],
    /// Residual histogram: bucket → weight.
    pub residuals: BTreeMap<u32, f64>,
    /// The application versions (images of the PHP container) the pods ran when the
    /// model last learned, sorted; empty when unknown (an older status).
    pub versions: Vec<String>,
    /// The part of `sums[0]` the versions before these left (relative to `reference`):
    /// residuals are measured against a line that rests on the running versions' samples.
    pub earlier: f64,
}

/// The line `fixed + per_worker × workers`, MiB.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Line {
    /// MiB a pod needs without workers.
    pub fixed: f64,
    /// MiB per worker.
    pub per_worker: f64,
}

impl Line {
    /// The line at `workers`, MiB.
    #[must_use]
    pub fn at(&self, workers: f64) -> f64 {
        self.fixed + self.per_worker * workers
    }
}

fn exponent(since: jiff::SignedDuration) -> f64 {
    since.as_secs_f64() / HALF_LIFE.as_secs_f64()
}

impl Model {
    /// The weight a sample at `now` gets; rebases the reference when weights grow large.
    fn weight_now(&mut self, now: Timestamp) -> f64 {
        let reference = *self.reference.get_or_insert(now);
        let factor = 2f64.powf(exponent(now.duration_since(reference)));
        if factor > 1e9 || !factor.is_finite() {
            // Rebase: every stored weight shrinks by the same factor.
            for s in &mut self.sums {
                *s /= factor;
            }
            for w in self.residuals.values_mut() {
                *w /= factor;
            }
            self.earlier /= factor;
            self.residuals.retain(|_, w| *w > 0.0 && w.is_finite());
            self.reference = Some(now);
            return 1.0;
        }
        factor
    }

    /// The pods now run `versions` (sorted, deduplicated): when one of them is new to the
    /// model — a deploy, or a rollback — what was learned of the versions before weighs as
    /// if it were [`NEW_VERSION_AGE`] older. A version is a new memory profile (a leak
    /// fixed or brought, a bigger framework), and the line and the residuals of the old
    /// one would hold the limit where it was for days (`make sim`, `leak`: the step leak of
    /// day 2 ran at a 530 MiB working set under a 830–920 MiB limit learned from the
    /// linear leak of day 1). Not forgotten outright: until the new version has spoken for
    /// itself, the old one is the best guess there is. Returns whether it forgot.
    pub fn new_versions(&mut self, versions: &[String]) -> bool {
        // As many as the status keeps (a name longer than it takes is no image).
        let versions: Vec<String> = versions
            .iter()
            .filter(|v| v.len() <= MAX_VERSION_LEN)
            .take(MAX_VERSIONS)
            .cloned()
            .collect();
        if versions.is_empty() || self.versions == versions {
            return false;
        }
        let new = !self.versions.is_empty() && versions.iter().any(|v| !self.versions.contains(v));
        if new {
            let factor = 2f64.powf(-exponent(
                jiff::SignedDuration::try_from(NEW_VERSION_AGE).unwrap_or_default(),
            ));
            for s in &mut self.sums {
                *s *= factor;
            }
            for w in self.residuals.values_mut() {
                *w *= factor;
            }
            self.earlier = self.sums[0];
        }
        self.versions = versions;
        new
    }

    /// Weight of the running versions' samples at `now`, in fresh samples.
    fn current_weight(&self, now: Timestamp) -> f64 {
        self.fresh((self.sums[0] - self.earlier).max(0.0), now)
    }

    /// A weight relative to `reference`, in fresh samples at `now`.
    fn fresh(&self, relative: f64, now: Timestamp) -> f64 {
        self.reference.map_or(0.0, |reference| {
            relative / 2f64.powf(exponent(now.duration_since(reference)))
        })
    }

    /// Total weight at `now`, in fresh samples.
    #[must_use]
    pub fn weight(&self, now: Timestamp) -> f64 {
        self.fresh(self.sums[0], now)
    }

    /// The fitted line; `assumed_per_worker` (MiB) when the workers never varied.
    #[must_use]
    pub fn line(&self, assumed_per_worker: Option<f64>) -> Option<Line> {
        let [n, sx, sy, sxx, sxy] = self.sums;
        if n <= 0.0 {
            return None;
        }
        let (mx, my) = (sx / n, sy / n);
        let variance = sxx / n - mx * mx;
        let covariance = sxy / n - mx * my;
        let measured = (variance > MIN_WORKER_VARIANCE)
            .then(|| covariance / variance)
            .filter(|b| *b > 0.0);
        let per_worker = measured.or(assumed_per_worker).unwrap_or(0.0).max(0.0);
        Some(Line {
            fixed: my - per_worker * mx,
            per_worker,
        })
    }

    /// Adds a peak of `peak` bytes seen with `workers` workers, as `weight` samples.
    pub fn add(&mut self, now: Timestamp, workers: f64, peak: f64, weight: f64) {
        let y = peak / MIB;
        // The residual against the line as it stands (before this sample moves it); the
        // first samples have no line worth measuring against.
        let residual = (self.current_weight(now) >= MIN_SAMPLES_FOR_RESIDUALS)
            .then(|| self.line(None).map(|l| y - l.at(workers)))
            .flatten();
        let w = weight * self.weight_now(now);
        self.sums[0] += w;
        self.sums[1] += w * workers;
        self.sums[2] += w * y;
        self.sums[3] += w * workers * workers;
        self.sums[4] += w * workers * y;
        let Some(residual) = residual else {
            return;
        };
        let bucket = ((residual + OFFSET_MIB) / BUCKET_MIB).floor().max(0.0) as u32;
        *self.residuals.entry(bucket).or_insert(0.0) += w;
        if self.residuals.len() > MAX_BUCKETS {
            // Drop the lightest bucket (its weight is negligible against the rest).
            if let Some((&lightest, _)) = self.residuals.iter().min_by(|a, b| a.1.total_cmp(b.1)) {
                self.residuals.remove(&lightest);
            }
        }
    }

    /// The residual quantile `q`, MiB (upper edge of its bucket).
    #[must_use]
    pub fn residual(&self, q: f64) -> Option<f64> {
        let total: f64 = self.residuals.values().sum();
        if total <= 0.0 {
            return None;
        }
        let mut seen = 0.0;
        for (&bucket, &w) in &self.residuals {
            seen += w;
            if seen >= q * total {
                return Some(f64::from(bucket + 1) * BUCKET_MIB - OFFSET_MIB);
            }
        }
        self.residuals
            .keys()
            .last()
            .map(|&b| f64::from(b + 1) * BUCKET_MIB - OFFSET_MIB)
    }

    /// The limit for `workers`, bytes: `(line + residual p99) × HEADROOM`.
    #[must_use]
    pub fn limit_for(&self, workers: f64, assumed_per_worker: Option<f64>) -> Option<f64> {
        let line = self.line(assumed_per_worker)?;
        let margin = self.residual(RESIDUAL_QUANTILE).unwrap_or(0.0).max(0.0);
        let peak = (line.at(workers) + margin).max(0.0);
        Some((peak * HEADROOM).max(peak + HEADROOM_MIN_MIB) * MIB)
    }

    /// The limit for `workers` that leak `grown` bytes each before they are recycled and
    /// reach that all at once, bytes: `(line + workers × grown ÷ 2) × HEADROOM`. The line
    /// is learned from pods whose workers are of every age, half-way to `grown` on
    /// average; a pod's workers that started together (a new pod) reach it together.
    #[must_use]
    pub fn limit_in_step(
        &self,
        workers: f64,
        grown: f64,
        assumed_per_worker: Option<f64>,
    ) -> Option<f64> {
        let line = self.line(assumed_per_worker)?;
        let peak = (line.at(workers) + workers * grown.max(0.0) / 2.0 / MIB).max(0.0);
        Some(peak * HEADROOM * MIB)
    }

    /// The most workers a limit of `limit` bytes holds; `None` without a model.
    #[must_use]
    pub fn workers_for(&self, limit: f64, assumed_per_worker: Option<f64>) -> Option<f64> {
        let line = self.line(assumed_per_worker)?;
        if line.per_worker <= 0.0 {
            return None;
        }
        let margin = self.residual(RESIDUAL_QUANTILE).unwrap_or(0.0).max(0.0);
        let peak = (limit / MIB / HEADROOM).min(limit / MIB - HEADROOM_MIN_MIB);
        Some((peak - margin - line.fixed) / line.per_worker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: f64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + (h * 3600.0) as i64).unwrap()
    }

    /// A pod of 76 MiB plus 44 MiB per worker, a transient 24 MiB in one sample of 20.
    fn fed(hours: f64) -> Model {
        let mut m = Model::default();
        let mut i = 0;
        let mut h = 0.0;
        while h < hours {
            let workers = 5.0 + 11.0 * ((h / 24.0 * std::f64::consts::TAU).sin() + 1.0) / 2.0;
            let workers = workers.round();
            let spike = if i % 20 == 0 { 24.0 } else { 0.0 };
            m.add(t(h), workers, (76.0 + 44.0 * workers + spike) * MIB, 1.0);
            i += 1;
            h += 0.1;
        }
        m
    }

    #[test]
    fn the_line_follows_the_workers_and_the_margin_the_spikes() {
        let m = fed(48.0);
        let line = m.line(None).unwrap();
        assert!((line.per_worker - 44.0).abs() < 1.5, "{line:?}");
        assert!((line.fixed - 76.0).abs() < 15.0, "{line:?}");
        let margin = m.residual(RESIDUAL_QUANTILE).unwrap();
        assert!((10.0..40.0).contains(&margin), "{margin}");
        // 16 workers: (76 + 704 + margin) × 1.1; 5 workers: far less.
        let day = m.limit_for(16.0, None).unwrap() / MIB;
        let night = m.limit_for(5.0, None).unwrap() / MIB;
        assert!((870.0..920.0).contains(&day), "{day}");
        assert!(night < day - 400.0, "{night}");
        // And back: what 900 MiB holds.
        let w = m.workers_for(900.0 * MIB, None).unwrap();
        assert!((15.0..17.0).contains(&w), "{w}");
    }

    #[test]
    fn without_varying_workers_the_slope_is_assumed() {
        let mut m = Model::default();
        for i in 0..50 {
            m.add(t(f64::from(i) * 0.1), 8.0, 400.0 * MIB, 1.0);
        }
        assert_eq!(m.line(None).unwrap().per_worker, 0.0);
        let line = m.line(Some(40.0)).unwrap();
        assert_eq!(line.per_worker, 40.0);
        assert!((line.at(8.0) - 400.0).abs() < 1e-6);
    }

    #[test]
    fn old_samples_fade() {
        let mut m = Model::default();
        m.add(t(0.0), 4.0, 1000.0 * MIB, 100.0);
        assert!((m.weight(t(0.0)) - 100.0).abs() < 1e-9);
        // A day later the weight halved; a week later it is below 1 %.
        assert!((m.weight(t(24.0)) - 50.0).abs() < 1e-6);
        assert!(m.weight(t(24.0 * 7.0)) < 1.0);
        // New samples dominate the fit after a few days.
        for i in 0..200 {
            m.add(t(24.0 * 7.0 + f64::from(i) * 0.01), 4.0, 300.0 * MIB, 1.0);
        }
        let line = m.line(None).unwrap();
        assert!((line.at(4.0) - 300.0).abs() < 10.0, "{line:?}");
    }

    #[test]
    fn weights_rebase_without_changing_the_answer() {
        let mut m = fed(24.0);
        let before = m.limit_for(10.0, None).unwrap();
        // 40 days later weights would be 2^40: the reference moves, the answer does not.
        let later = t(24.0 * 40.0);
        let _ = m.weight_now(later);
        assert_eq!(m.reference, Some(later));
        let after = m.limit_for(10.0, None).unwrap();
        assert!((before - after).abs() / before < 1e-9, "{before} {after}");
    }

    #[test]
    fn the_histogram_stays_small() {
        let mut m = Model::default();
        for i in 0..1000 {
            m.add(
                t(f64::from(i) * 0.01),
                4.0,
                f64::from(i % 300) * 7.0 * MIB,
                1.0,
            );
        }
        assert!(m.residuals.len() <= MAX_BUCKETS);
    }

    /// A pod's peak plus 10 %, but at least 48 MiB more: 10 % of a small pod is less than
    /// one job's transient allocation plus the page cache not reclaimed yet.
    /// Workers that started together reach the end of their growth together: the limit
    /// holds the line plus half the growth per worker (the other half is in the line,
    /// learned from workers of every age), with the headroom.
    #[test]
    fn in_step_the_line_holds_every_worker_fully_grown() {
        let mut m = Model::default();
        for i in 0..200 {
            let w = f64::from(2 + i % 8);
            m.add(t(f64::from(i) * 0.01), w, (100.0 + 40.0 * w) * MIB, 1.0);
        }
        let line = m.line(None).unwrap();
        let at_10 = line.at(10.0);
        let limit = m.limit_in_step(10.0, 30.0 * MIB, None).unwrap() / MIB;
        assert!(
            (limit - (at_10 + 10.0 * 15.0) * HEADROOM).abs() < 0.01,
            "{limit} vs {at_10}"
        );
        assert!(m.limit_in_step(10.0, 0.0, None).unwrap() / MIB < at_10 * HEADROOM + 0.01);
    }

    #[test]
    fn headroom_is_ten_percent_but_at_least_48_mib() {
        let flat = |peak_mib: f64| {
            let mut m = Model::default();
            for i in 0..50 {
                m.add(t(f64::from(i) * 0.1), 2.0, peak_mib * MIB, 1.0);
            }
            m
        };
        // A small pod of 200 MiB (+ the residual margin, one bucket): 10 % is 20 MiB, so
        // + 48 MiB.
        let small = flat(200.0);
        let margin = small.residual(RESIDUAL_QUANTILE).unwrap();
        assert!((0.0..=BUCKET_MIB).contains(&margin), "{margin}");
        let limit = small.limit_for(2.0, None).unwrap() / MIB;
        assert!((limit - (200.0 + margin + 48.0)).abs() < 1e-6, "{limit}");
        // A pod of 800 MiB: 10 % is 80 MiB.
        let large = flat(800.0).limit_for(2.0, None).unwrap() / MIB;
        assert!((large - (800.0 + margin) * 1.1).abs() < 1e-6, "{large}");
        // And back: that limit holds the small pod's workers, not one more (40 MiB each).
        let w = small.workers_for(limit * MIB, Some(40.0)).unwrap();
        assert!((w - 2.0).abs() < 1e-6, "{w}");
    }

    /// A new version fades what was learned to a sixteenth, once; the residuals against
    /// the line wait until the new version's own samples carry it.
    #[test]
    fn a_new_version_fades_the_past() {
        let v = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        let mut m = fed(24.0);
        let now = t(24.0);
        let learned = m.weight(now);
        let residuals: f64 = m.residuals.values().sum();
        // First sight: adopted, nothing fades.
        assert!(!m.new_versions(&v(&["shop:v1"])));
        assert!((m.weight(now) - learned).abs() < 1e-9);
        // A deploy: a sixteenth of it is left, residuals too.
        assert!(m.new_versions(&v(&["shop:v1", "shop:v2"])));
        assert!((m.weight(now) - learned / 16.0).abs() < 1e-6);
        let faded: f64 = m.residuals.values().sum();
        assert!((faded - residuals / 16.0).abs() < 1e-6);
        // The rollout finishes, the pods list nothing: neither fades again.
        assert!(!m.new_versions(&v(&["shop:v2"])));
        assert!(!m.new_versions(&[]));
        assert_eq!(m.versions, v(&["shop:v2"]));
        // The new version's first samples add no residual: the line is still the old one's.
        m.add(now, 8.0, 900.0 * MIB, 1.0);
        let after: f64 = m.residuals.values().sum();
        assert!((after - faded).abs() < 1e-6, "{after} vs {faded}");
        for i in 0..12 {
            m.add(now, 8.0, (900.0 + f64::from(i)) * MIB, 1.0);
        }
        assert!(m.residuals.values().sum::<f64>() > faded + 1.0);
        // A rollback is a new version too.
        assert!(m.new_versions(&v(&["shop:v1"])));
        // No more than the status keeps: 20 images are the first 16, every round the same.
        let many: Vec<String> = (0..20).map(|i| format!("shop:v{i:02}")).collect();
        assert!(m.new_versions(&many));
        assert_eq!(m.versions.len(), MAX_VERSIONS);
        assert!(!m.new_versions(&many));
    }
}
