//! The modelled PHP application: what a job costs and how a worker's memory grows. Pure.

/// Bytes in a MiB.
pub const MIB: f64 = 1024.0 * 1024.0;

/// How one version of the application behaves.
#[derive(Clone, Debug, PartialEq)]
pub struct AppProfile {
    /// CPU seconds a warm worker spends on one job.
    pub cpu: f64,
    /// Seconds a job waits on the downstream dependency (database) when it is healthy.
    pub io: f64,
    /// Coefficient of variation of the job time (1 = exponential).
    pub cv: f64,
    /// A fresh worker's CPU per job is this many times the warm one's (opcache, autoload
    /// and framework caches still cold); it decays with [`Self::warm_jobs`].
    pub cold: f64,
    /// Jobs over which a fresh worker warms up (the time constant of the decay).
    pub warm_jobs: f64,
    /// Private memory of a worker right after it booted, bytes.
    pub worker_boot: f64,
    /// Private memory of a warm worker, bytes.
    pub worker_warm: f64,
    /// Memory the workers share (opcache): in every worker's RSS, once in the cgroup.
    pub shared: f64,
    /// pacer's own RSS, bytes.
    pub server: f64,
    /// Page cache the container keeps active (in the cgroup's working set, in no RSS).
    pub page_cache: f64,
    /// Share of jobs that hold a large transient allocation while they run (an export, an
    /// image resize): invisible to a scrape every 30 s, decisive for the cgroup limit.
    pub spike_chance: f64,
    /// Size of that allocation, bytes.
    pub spike: f64,
    /// Seconds a worker takes to boot.
    pub boot_seconds: f64,
    /// Memory a worker leaks.
    pub leak: Leak,
}

/// A memory leak of one application version.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Leak {
    /// Bytes per job, forever (a growing static array).
    pub per_job: f64,
    /// Every this many jobs …
    pub step_jobs: f64,
    /// … the worker grows by this many bytes (a cache that doubles).
    pub step: f64,
}

impl AppProfile {
    /// The shop application every trace starts from: 25 ms CPU + 35 ms database per job,
    /// 44 MiB warm workers that boot at 22 MiB and warm up over ~1000 jobs (a framework's
    /// lazily loaded services and growing internal caches; CPU per job 2× while cold).
    #[must_use]
    pub fn shop() -> Self {
        Self {
            cpu: 0.025,
            io: 0.035,
            cv: 1.2,
            cold: 2.0,
            warm_jobs: 300.0,
            worker_boot: 22.0 * MIB,
            worker_warm: 44.0 * MIB,
            shared: 24.0 * MIB,
            server: 28.0 * MIB,
            page_cache: 24.0 * MIB,
            spike_chance: 0.01,
            spike: 24.0 * MIB,
            boot_seconds: 1.5,
            leak: Leak::default(),
        }
    }

    /// Warm-up still to go after `jobs` jobs (1 fresh, 0 warm).
    #[must_use]
    pub fn coldness(&self, jobs: f64) -> f64 {
        (-jobs / self.warm_jobs.max(1e-9)).exp()
    }

    /// CPU seconds of the next job of a worker that has done `jobs` jobs.
    #[must_use]
    pub fn cpu_per_job(&self, jobs: f64) -> f64 {
        self.cpu * (1.0 + (self.cold - 1.0) * self.coldness(jobs))
    }

    /// Private memory of a worker after `jobs` jobs, bytes.
    #[must_use]
    pub fn private_memory(&self, jobs: f64) -> f64 {
        let warm = self.worker_warm - (self.worker_warm - self.worker_boot) * self.coldness(jobs);
        let steps = if self.leak.step_jobs > 0.0 {
            (jobs / self.leak.step_jobs).floor() * self.leak.step
        } else {
            0.0
        };
        warm + self.leak.per_job * jobs + steps
    }

    /// RSS of a worker as pacer reports it (its private memory plus the shared pages).
    #[must_use]
    pub fn rss(&self, jobs: f64) -> f64 {
        self.private_memory(jobs) + self.shared
    }

    /// Mean job time of a warm worker with a healthy dependency, seconds.
    #[must_use]
    pub fn job_seconds(&self) -> f64 {
        self.cpu + self.io
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_warm_up_then_hold_without_a_leak() {
        let app = AppProfile::shop();
        assert_eq!(app.private_memory(0.0), app.worker_boot);
        assert!((app.private_memory(10_000.0) - app.worker_warm).abs() < 1.0);
        // Warm-up growth looks like a leak over the first jobs …
        let early = (app.private_memory(50.0) - app.private_memory(10.0)) / 40.0;
        assert!(early > 50_000.0, "{early}");
        // … and is gone after it.
        let late = (app.private_memory(9000.0) - app.private_memory(5000.0)) / 4000.0;
        assert!(late < 1.0, "{late}");
        assert!((app.cpu_per_job(0.0) - 2.0 * app.cpu).abs() < 1e-12);
    }

    #[test]
    fn leaks_grow_linearly_and_in_steps() {
        let mut app = AppProfile::shop();
        app.leak = Leak {
            per_job: 1000.0,
            step_jobs: 100.0,
            step: 8.0 * MIB,
        };
        // After 3000 jobs (10 warm-up constants) the warm-up is over to within 1 KiB.
        let grown = app.private_memory(3000.0) - app.worker_warm;
        assert!(
            (grown - (3_000_000.0 + 30.0 * 8.0 * MIB)).abs() < 2048.0,
            "{grown}"
        );
    }
}
