//! Queueing formulas for one pod in one second. Pure.
//!
//! A pod's workers are a multi-server queue. Simulating every request of a week (tens of
//! millions) would take minutes; instead each second combines
//! * a **fluid** part for overload: work beyond what the workers (or the CPU limit) can
//!   complete is carried over as a backlog, and a request arriving behind it waits for
//!   the backlog to drain;
//! * a **stationary** part for the waits of a queue that keeps up: Erlang C (M/M/c) with
//!   the Allen–Cunneen correction for the job-time variability, `(1 + cv²) / 2`, which
//!   gives the probability of waiting and an exponential tail.
//!
//! The result of a second is a [`Tail`]: how many requests arrived and the distribution of
//! their wait, so that a minute's p99 (and its share of requests over the SLO) is exact
//! for the mixture of its seconds and pods.

/// Erlang C: the probability that an arrival waits, with `servers` servers and offered
/// load `a` (in servers). 1 when `a ≥ servers`.
#[must_use]
pub fn erlang_c(servers: u32, a: f64) -> f64 {
    if servers == 0 {
        return 1.0;
    }
    let c = f64::from(servers);
    if a <= 0.0 {
        return 0.0;
    }
    if a >= c {
        return 1.0;
    }
    // Erlang B by its stable recursion, then C from B.
    let mut b = 1.0;
    for k in 1..=servers {
        b = a * b / (f64::from(k) + a * b);
    }
    let pc = c * b / (c - a * (1.0 - b));
    pc.clamp(0.0, 1.0)
}

/// The wait distribution of the requests of one pod-second: `P(W > t) = 1` for
/// `t < ahead`, then `waiting × e^(−rate (t − ahead))`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tail {
    /// Requests.
    pub n: f64,
    /// Seconds of backlog ahead of them (fluid part).
    pub ahead: f64,
    /// Probability of waiting beyond `ahead`.
    pub waiting: f64,
    /// Decay rate of the tail, 1/s.
    pub rate: f64,
}

impl Tail {
    /// Share of the requests that wait longer than `t` seconds.
    #[must_use]
    pub fn over(&self, t: f64) -> f64 {
        if t < self.ahead {
            1.0
        } else if self.rate <= 0.0 {
            self.waiting
        } else {
            self.waiting * (-(self.rate) * (t - self.ahead)).exp()
        }
    }

    /// Mean wait, seconds.
    #[must_use]
    pub fn mean(&self) -> f64 {
        if self.rate <= 0.0 {
            self.ahead
        } else {
            self.ahead + self.waiting / self.rate
        }
    }
}

/// Stationary wait of a queue with `servers` workers, arrivals `lambda` per second, mean
/// job time `s` seconds and job-time coefficient of variation `cv`, behind `ahead` seconds
/// of backlog. Saturated queues (utilisation ≥ 0.995) wait for sure and drain at the
/// servers' rate.
#[must_use]
pub fn tail(n: f64, servers: u32, lambda: f64, s: f64, cv: f64, ahead: f64) -> Tail {
    let c = f64::from(servers.max(1));
    let s = s.max(1e-6);
    let a = (lambda * s).max(0.0);
    let variability = (1.0 + cv * cv) / 2.0;
    if servers == 0 {
        return Tail {
            n,
            ahead,
            waiting: 1.0,
            rate: 0.0,
        };
    }
    if a >= c * 0.995 {
        return Tail {
            n,
            ahead,
            waiting: 1.0,
            rate: c * 0.005 / s / variability,
        };
    }
    Tail {
        n,
        ahead,
        waiting: erlang_c(servers, a),
        rate: (c - a) / s / variability,
    }
}

/// Share of the requests of `tails` that wait longer than `t`.
#[must_use]
pub fn share_over(tails: &[Tail], t: f64) -> f64 {
    let n: f64 = tails.iter().map(|x| x.n).sum();
    if n <= 0.0 {
        return 0.0;
    }
    tails.iter().map(|x| x.n * x.over(t)).sum::<f64>() / n
}

/// The `q` quantile (e.g. 0.99) of the wait over `tails`, by bisection on a log scale
/// between 0.1 ms and 10 min; 0 when fewer than `1 − q` wait at all.
#[must_use]
pub fn quantile(tails: &[Tail], q: f64) -> f64 {
    let target = 1.0 - q;
    let (mut lo, mut hi) = (1e-4_f64, 600.0_f64);
    if share_over(tails, lo) <= target {
        return 0.0;
    }
    if share_over(tails, hi) > target {
        return hi;
    }
    for _ in 0..32 {
        let mid = (lo * hi).sqrt();
        if share_over(tails, mid) > target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// How much longer the CPU part of a job takes when the jobs of a pod compete for a CPU
/// limit of `limit_cores` at a CPU utilisation `u` of that limit (processor sharing over
/// the limit's cores, the stretch CFS quota throttling causes).
#[must_use]
pub fn cpu_stretch(limit_cores: f64, u: f64) -> f64 {
    let cores = limit_cores.round().max(1.0);
    let u = u.clamp(0.0, 0.98);
    let waiting = erlang_c(cores as u32, u * cores);
    1.0 + waiting / (cores * (1.0 - u))
}

/// Completions per second `workers` workers reach when each job waits `io` seconds and
/// needs `cpu` CPU seconds under a limit of `limit_cores`: the largest rate `x` at which
/// the busy workers `x × (io + cpu × stretch(x))` still fit the workers (the stretch grows
/// with the CPU utilisation, so this is the one point where they just fit; bisection).
#[must_use]
pub fn cpu_capacity(workers: f64, io: f64, cpu: f64, limit_cores: f64) -> f64 {
    if workers <= 0.0 || cpu <= 0.0 {
        return 0.0;
    }
    let busy = |x: f64| {
        let u = (x * cpu / limit_cores).min(0.98);
        x * (io + cpu * cpu_stretch(limit_cores, u))
    };
    let (mut lo, mut hi) = (0.0, (workers / (io + cpu)).min(0.98 * limit_cores / cpu));
    if busy(hi) <= workers {
        return hi;
    }
    for _ in 0..40 {
        let mid = (lo + hi) / 2.0;
        if busy(mid) <= workers {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Share of CFS periods in which a pod at utilisation `u` of its CPU limit is throttled
/// (the chance that more jobs are on the CPU than the limit has cores).
#[must_use]
pub fn throttled_share(limit_cores: f64, u: f64) -> f64 {
    let cores = limit_cores.round().max(1.0);
    erlang_c(cores as u32, u.clamp(0.0, 1.0) * cores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erlang_c_known_values() {
        // One server: the probability of waiting is the utilisation.
        assert!((erlang_c(1, 0.5) - 0.5).abs() < 1e-12);
        // Two servers at a = 1: C = 1/3.
        assert!((erlang_c(2, 1.0) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(erlang_c(4, 4.0), 1.0);
        assert_eq!(erlang_c(4, 0.0), 0.0);
        // More servers at the same utilisation wait less.
        assert!(erlang_c(20, 14.0) < erlang_c(5, 3.5));
    }

    #[test]
    fn quantiles_of_a_mixture() {
        // 10 workers 50 % busy: C = 0.036, p99 = ln(3.6) / 50 s.
        let calm = tail(1000.0, 10, 50.0, 0.1, 1.0, 0.0);
        let p99 = quantile(&[calm], 0.99);
        assert!(
            (p99 - (erlang_c(10, 5.0) / 0.01).ln() / 50.0).abs() < 1e-3,
            "{p99}"
        );
        // M/M/1 at 90 %: P(W > t) = 0.9 e^(−(1 − 0.9) t / 0.1); p99 = ln(90) / 1 s.
        let busy = tail(100.0, 1, 9.0, 0.1, 1.0, 0.0);
        let p99 = quantile(&[busy], 0.99);
        assert!((p99 - 90f64.ln()).abs() < 1e-3, "{p99}");
        // A backlog of 2 s ahead of everyone: p99 ≥ 2 s.
        let behind = tail(1000.0, 10, 10.0, 0.1, 1.0, 2.0);
        assert!(quantile(&[behind], 0.99) >= 2.0);
        // One bad second in a hundred good ones decides the p99.
        let mut mix = vec![calm; 99];
        mix.push(behind);
        assert!(share_over(&mix, 1.0) > 0.0099);
    }

    #[test]
    fn cpu_capacity_is_bounded_by_workers_and_cores_and_monotone() {
        // Plenty of cores: the workers bound it (4 ÷ 60 ms).
        let x = cpu_capacity(4.0, 0.035, 0.025, 64.0);
        assert!((x - 4.0 / 0.06).abs() < 0.5, "{x}");
        // Two cores: never more than 2 ÷ 25 ms, and more workers never give less.
        let mut last = 0.0;
        for w in 1..40 {
            let x = cpu_capacity(f64::from(w), 0.035, 0.025, 2.0);
            assert!(x <= 80.0 && x + 1e-9 >= last, "{w}: {x} after {last}");
            last = x;
        }
        assert!(last > 60.0, "{last}");
    }

    #[test]
    fn cpu_stretch_grows_near_the_limit() {
        assert!((cpu_stretch(2.0, 0.1) - 1.0).abs() < 0.02);
        assert!(cpu_stretch(2.0, 0.9) > 4.0);
        assert!(throttled_share(2.0, 0.9) > throttled_share(2.0, 0.5));
    }
}
