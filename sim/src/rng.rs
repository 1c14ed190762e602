//! Seeded randomness: one [`Rng`] per run, so a trace with the same seed gives the same
//! result on every machine (fastrand's generator is fixed by its seed; the samplers below
//! use only its uniform output and `f64` arithmetic).

/// A seeded generator with the few distributions the model needs.
#[derive(Debug, Clone)]
pub struct Rng(fastrand::Rng);

impl Rng {
    /// A generator for `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(fastrand::Rng::with_seed(seed))
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        self.0.f64()
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(1e-300);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Poisson with mean `mean`: exact (Knuth) below 30, the normal approximation above
    /// (the model draws arrivals per pod and second, where only the first two moments
    /// matter).
    pub fn poisson(&mut self, mean: f64) -> f64 {
        if mean <= 0.0 {
            return 0.0;
        }
        if mean < 30.0 {
            let limit = (-mean).exp();
            let mut k = 0.0;
            let mut p = self.unit();
            while p > limit {
                k += 1.0;
                p *= self.unit();
            }
            return k;
        }
        (mean + mean.sqrt() * self.normal()).round().max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_numbers() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..100 {
            assert_eq!(a.unit().to_bits(), b.unit().to_bits());
        }
    }

    #[test]
    fn poisson_has_its_mean() {
        let mut r = Rng::new(1);
        for mean in [0.5, 4.0, 80.0] {
            let n = 20_000;
            let sum: f64 = (0..n).map(|_| r.poisson(mean)).sum();
            let got = sum / f64::from(n);
            assert!((got - mean).abs() < mean * 0.05 + 0.05, "{mean}: {got}");
        }
        assert_eq!(r.poisson(0.0), 0.0);
    }
}
