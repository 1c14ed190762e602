//! The tuner's input vocabulary: window aggregates per pod.
//!
//! A metrics source ([`crate::metrics_source`]) turns several scrapes (or PromQL range
//! functions) into one [`PodSample`] per pod; the tuner never sees a single scrape. Rates
//! and averages come from counters over the window (Little's law: the rate of
//! `pacer_job_duration_seconds_sum` is the mean number of busy workers, the rate of
//! `pacer_queue_wait_seconds_sum` the mean number of waiting requests), so a short burst
//! between two scrapes is neither missed nor over-weighted.

use std::time::Duration;

/// Window aggregates of every pod of one application.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct AppSample {
    /// Length of the window the aggregates cover.
    pub window: Duration,
    /// One entry per pod that had enough data.
    pub pods: Vec<PodSample>,
}

/// Window aggregates of one pod.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct PodSample {
    /// Pod name.
    pub pod: String,
    /// Live workers (ready + working), averaged.
    pub live_workers: f64,
    /// Busy workers, averaged.
    pub busy_workers: f64,
    /// Requests waiting for a worker, averaged.
    pub queue_depth: f64,
    /// Completed jobs per second.
    pub jobs_per_second: f64,
    /// Requests refused for want of a free worker, per second.
    pub rejected_per_second: f64,
    /// Mean seconds a worker spends on one job; `None` without completed jobs.
    pub mean_job_seconds: Option<f64>,
    /// Memory of each worker slot at the end of the window, bytes.
    pub worker_memory: Vec<u64>,
    /// Jobs each live worker has done at the end of the window (`pacer_worker_jobs`).
    pub worker_jobs: Vec<u64>,
    /// Memory a worker gains per job (median over slots that served enough jobs), bytes.
    pub memory_growth_per_job: Option<f64>,
    /// Memory of a freshly warmed worker (median intercept of memory over jobs), bytes.
    pub warm_worker_memory: Option<f64>,
    /// Jobs the workers behind `memory_growth_per_job` had done (their median): how far
    /// past their warm-up the estimate is.
    pub growth_jobs: Option<f64>,
    /// Memory of pacer itself (`process_resident_memory_bytes`), bytes.
    pub server_memory: Option<u64>,
    /// Highest memory of the whole pod (pacer plus workers) seen in the window, bytes.
    pub pod_memory_peak: Option<u64>,
    /// CPU the workers used, in cores (CPU-seconds per second), averaged; `None` when the
    /// pod's pacer does not report `pacer_worker_cpu_seconds_total`.
    pub worker_cpu_cores: Option<f64>,
    /// Mean seconds a worker took to boot (process start to the end of its handshake:
    /// the app's bootstrap), over the workers that booted in the window
    /// (`pacer_worker_boot_seconds`: Δsum ÷ Δcount); `None` when none booted in it or the
    /// pod's pacer does not report boots. What recycling a worker costs.
    pub worker_boot_seconds: Option<f64>,
    /// Workers that booted in the window (0 when none did or it is not reported): the
    /// weight of `worker_boot_seconds`.
    pub worker_boots: f64,
    /// Job time by the age of the worker that ran the job, over the window
    /// (`pacer_worker_age_job_seconds_total` and `pacer_worker_age_jobs_total`: the
    /// increase of each band), youngest band first; empty when the pod's pacer does not
    /// report them. A fresh worker's first jobs are slower: what a recycled worker costs
    /// beyond its boot.
    pub worker_age: Vec<AgeBand>,
    /// The pool size the pod's pacer is configured for (`pacer_pool_target_workers`) at
    /// the end of the window; `None` when not reported.
    pub target_workers: Option<u32>,
    /// Highest working set of the pod's cgroup in the window, bytes: the memory the
    /// kernel's OOM killer judges (pacer's `pacer_cgroup_memory_working_set_bytes`).
    pub memory_working_set: Option<u64>,
    /// The memory limit the pod's cgroup has now, bytes (`None`: unlimited or not
    /// reported): whether a resize has reached the pod.
    pub memory_limit: Option<u64>,
    /// Processes the OOM killer killed in the pod's cgroup during the window — under
    /// cgroup v1 a worker, which no pod status shows.
    pub oom_kills: Option<f64>,
    /// Share of the CPU quota periods in the window in which the pod was throttled (0–1).
    pub cpu_throttled: Option<f64>,
    /// The jobs pool's series at both ends of the window, when the pod runs one.
    pub jobs: Option<crate::metrics_source::jobs::JobsWindow>,
}

/// Jobs (and their seconds) run by workers that had done `first` to `end` jobs before.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AgeBand {
    /// The fewest jobs a worker of the band had done before the job.
    pub first: f64,
    /// The band ends before this many (`None`: the open last band).
    pub end: Option<f64>,
    /// Seconds the band's jobs took.
    pub seconds: f64,
    /// Jobs in the band.
    pub jobs: f64,
}

impl AgeBand {
    /// The bounds of pacer's `age` label: `first-last` (inclusive) or `first+`. pacer
    /// defines its bands; the operator reads them from the label, so a pacer with other
    /// bands is read right too.
    #[must_use]
    pub fn bounds(label: &str) -> Option<(f64, Option<f64>)> {
        let number = |s: &str| s.parse::<u64>().ok().map(|n| n as f64);
        if let Some(first) = label.strip_suffix('+') {
            return Some((number(first)?, None));
        }
        let (first, last) = label.split_once('-')?;
        let (first, last) = (number(first)?, number(last)?);
        (last >= first).then_some((first, Some(last + 1.0)))
    }

    /// A band of `label` with these totals; `None` for a label that is not a band.
    #[must_use]
    pub fn of(label: &str, seconds: f64, jobs: f64) -> Option<AgeBand> {
        let (first, end) = Self::bounds(label)?;
        Some(AgeBand {
            first,
            end,
            seconds,
            jobs,
        })
    }
}

impl AppSample {
    /// Busy workers summed over pods.
    #[must_use]
    pub fn total_busy(&self) -> f64 {
        self.pods.iter().map(|p| p.busy_workers).sum()
    }

    /// Live workers summed over pods.
    #[must_use]
    pub fn total_live(&self) -> f64 {
        self.pods.iter().map(|p| p.live_workers).sum()
    }

    /// Busy ÷ live over all pods (0 when nothing is alive).
    #[must_use]
    pub fn busy_ratio(&self) -> f64 {
        let live = self.total_live();
        if live > 0.0 {
            (self.total_busy() / live).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    /// Completed jobs per second over all pods.
    #[must_use]
    pub fn total_jobs_per_second(&self) -> f64 {
        self.pods.iter().map(|p| p.jobs_per_second).sum()
    }

    /// Mean job duration weighted by each pod's throughput.
    #[must_use]
    pub fn mean_job_seconds(&self) -> Option<f64> {
        let (weighted, weight) = self
            .pods
            .iter()
            .filter_map(|p| {
                p.mean_job_seconds
                    .map(|d| (d * p.jobs_per_second, p.jobs_per_second))
            })
            .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
        (weight > 0.0).then(|| weighted / weight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_labels_give_their_bounds() {
        assert_eq!(AgeBand::bounds("0-9"), Some((0.0, Some(10.0))));
        assert_eq!(AgeBand::bounds("100-299"), Some((100.0, Some(300.0))));
        assert_eq!(AgeBand::bounds("3000+"), Some((3000.0, None)));
        for bad in ["", "9-0", "a-b", "-5", "+", "1.5-3", "10"] {
            assert_eq!(AgeBand::bounds(bad), None, "{bad}");
        }
    }
}
