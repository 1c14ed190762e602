//! From a window's per-pod aggregates and the pods the API lists to what the tuner
//! needs: the load, the pods that serve it, what the pods report of the last decision.
//!
//! * **Demand** per pod = busy workers, or arrivals (completions plus refusals) × mean job
//!   time if larger, plus the workers that drain the waiting requests within
//!   [`QUEUE_DRAIN`] (a queue of 600 requests of 60 ms is 3.6 workers for 10 s, not 600
//!   workers).
//! * **Cold and missing pods**: a pod that became ready inside the window (or is not
//!   ready) runs cold workers and got part of a window's traffic, so its numbers are not
//!   the load; a ready pod whose scrape failed has no numbers at all. The demand is taken
//!   from the warm pods that reported and extrapolated to every pod that serves (is
//!   ready), so a missing pod neither lowers the demand nor a cold one inflates it; with
//!   a pod missing the tuner does not scale down at all (see `decide`).

use jiff::Timestamp;

use crate::metrics_source::PodTarget;
use crate::sample::{AgeBand, AppSample, PodSample};
use crate::tuning::cpu::MIN_BUSY_FOR_CPU;
use crate::tuning::stats::{median, percentile};

/// Seconds the extra workers for waiting requests should take to drain them.
pub const QUEUE_DRAIN: f64 = 10.0;
/// Assumed memory of pacer itself until it is measured.
pub const DEFAULT_SERVER_MEMORY: u64 = 32 * 1024 * 1024;

/// Aggregates the tuner derives from a sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Load {
    /// Pods that reported.
    pub pods: usize,
    /// Pods that serve traffic (ready), as the API says; the reporting pods when unknown.
    pub serving: usize,
    /// Ready pods, ready for a whole window, whose metrics are missing.
    pub missing: usize,
    /// Busy workers over the reporting pods.
    pub busy: f64,
    /// Live workers over the reporting pods.
    pub live: f64,
    /// Waiting requests over the reporting pods.
    pub queue: f64,
    /// Completions per second over the reporting pods.
    pub jobs_per_second: f64,
    /// Mean job time, seconds.
    pub mean_job_seconds: Option<f64>,
    /// Mean job time of the warm pods (cold workers are slower without anything being
    /// wrong), seconds.
    pub warm_job_seconds: Option<f64>,
    /// Workers the load keeps busy over all serving pods (before the target
    /// utilisation), extrapolated from the warm pods.
    pub required: f64,
    /// The same without the workers for the waiting requests.
    pub required_busy: f64,
    /// The workers the window's arrivals keep busy at its mean job time (Little's law),
    /// without the busy-workers gauge and the waiting requests: what the whole window
    /// measured, not what a scrape saw at one instant (see [`demand`]).
    pub required_flow: f64,
    /// p95 of a worker's RSS.
    pub worker_memory_p95: Option<f64>,
    /// Median of a worker's RSS.
    pub worker_memory_p50: Option<f64>,
    /// p95 of a pod's summed RSS (pacer + workers).
    pub pod_memory_p95: Option<f64>,
    /// pacer's own memory.
    pub server_memory: f64,
    /// Memory growth per job (median over pods).
    pub growth_per_job: Option<f64>,
    /// Warm worker memory (median over pods).
    pub warm_memory: Option<f64>,
    /// Jobs the workers behind `growth_per_job` had done (median over those pods): how far
    /// past their warm-up the growth was measured.
    pub growth_jobs: Option<f64>,
    /// Jobs done by the live worker a quarter of the pool is older than (the 75th
    /// percentile over every pod's workers): a `max_jobs` above it recycles at most a
    /// quarter of them.
    pub jobs_done_p75: Option<f64>,
    /// Seconds since the youngest pod became ready (0 while one is not ready yet); `None`
    /// when the API lists no pods.
    pub youngest_pod_seconds: Option<f64>,
    /// Cores one busy worker uses (CPU time ÷ busy time), from the pods that report CPU.
    pub cpu_per_busy_worker: Option<f64>,
    /// Busy-weighted share of throttled CPU periods, from the pods that report it.
    pub throttled: Option<f64>,
    /// Cores the load asks of the workers over all serving pods: the CPU they used, scaled
    /// by arrivals ÷ completions (a throttled pod completes less than arrives), from the
    /// warm pods and extrapolated like [`Load::required`]; `None` without CPU figures.
    pub cpu_cores: Option<f64>,
    /// (live workers, highest working set) of each pod that reports its cgroup.
    pub working_sets: Vec<(f64, f64)>,
    /// The memory limits the pods' cgroups report, bytes.
    pub memory_limits: Vec<u64>,
    /// The pool size each pod reports it is configured for.
    pub target_workers: Vec<u32>,
    /// OOM kills inside the pods' cgroups in the window.
    pub oom_kills: f64,
    /// A pod reports a resize that has not been applied yet.
    pub resize_pending: bool,
    /// Mean seconds a worker took to boot, weighted by the boots of each pod that reports
    /// some in the window (`PodSample::worker_boot_seconds`); `None` when no worker booted
    /// in it, or no pod's pacer reports boots. Measured, it replaces an assumed cost of
    /// recycling a worker.
    pub boot_seconds: Option<f64>,
    /// Job time by worker age, each band summed over the warm pods that report it
    /// (`PodSample::worker_age`), youngest first; empty when none does. What the warm-up
    /// of a fresh worker is fitted from (`tuning::warm_up`). Not from a cold pod: its
    /// workers started together, so each band holds jobs of one age rather than of every
    /// age in it (`make sim`, `leak`: the window of a deploy fitted 180 jobs for the app's
    /// 300, and confirmed the leak at 120).
    pub worker_age: Vec<AgeBand>,
}

/// The pods' worker-age bands summed band by band (the same bounds), youngest first.
fn sum_bands<'a>(samples: impl IntoIterator<Item = &'a PodSample>) -> Vec<AgeBand> {
    let mut out: Vec<AgeBand> = Vec::new();
    for band in samples.into_iter().flat_map(|p| &p.worker_age) {
        match out
            .iter_mut()
            .find(|b| b.first == band.first && b.end == band.end)
        {
            Some(b) => {
                b.seconds += band.seconds.max(0.0);
                b.jobs += band.jobs.max(0.0);
            }
            None => out.push(AgeBand {
                seconds: band.seconds.max(0.0),
                jobs: band.jobs.max(0.0),
                ..*band
            }),
        }
    }
    out.sort_by(|a, b| a.first.total_cmp(&b.first));
    out
}

/// Workers a pod's load keeps busy: without, and with the waiting requests, and the
/// window's arrivals × mean job time alone. The busy gauge and the queue are scraped at
/// instants: a dependency that slowed down a second before a scrape shows as many more busy
/// workers there while the window's completed jobs still take their usual time.
fn demand(p: &PodSample) -> (f64, f64, f64) {
    let arrivals = p.jobs_per_second.max(0.0) + p.rejected_per_second.max(0.0);
    let job = p.mean_job_seconds.unwrap_or(0.0).max(0.0);
    let flow = arrivals * job;
    let busy = p.busy_workers.max(0.0).max(flow);
    (
        busy,
        busy + p.queue_depth.max(0.0) * job / QUEUE_DRAIN,
        flow,
    )
}

/// Whether a pod's cgroup figures are its container's. The operator gives every PHP
/// container a memory limit, so a cgroup without one is some enclosing cgroup — pacer
/// started outside the container the operator sized (a host process, a shell, a node
/// without the memory controller) — whose working set and OOM kills are everything
/// else's too: learning from them would size the pods for the whole machine.
fn own_cgroup(p: &PodSample) -> bool {
    p.memory_limit.is_some()
}

/// The load of a sample; `pods` are the pods the API lists as running (empty: unknown),
/// `now` and the sample's window tell warm pods from cold ones.
#[must_use]
pub fn load_of(sample: &AppSample, pods: &[PodTarget], now: Timestamp) -> Load {
    let samples = &sample.pods;
    let window_start = now
        .checked_sub(jiff::SignedDuration::try_from(sample.window).unwrap_or_default())
        .unwrap_or(now);
    let info = |name: &str| pods.iter().find(|p| p.name == name);
    let warm_at = |p: &PodTarget| p.ready_since.is_some_and(|r| r <= window_start);
    // Unknown pods (no API information) count as warm.
    let warm: Vec<&PodSample> = samples
        .iter()
        .filter(|s| info(&s.pod).is_none_or(warm_at))
        .collect();
    let serving = if pods.is_empty() {
        samples.len()
    } else {
        pods.iter().filter(|p| p.ready_since.is_some()).count()
    };
    let missing = pods
        .iter()
        .filter(|p| warm_at(p) && !samples.iter().any(|s| s.pod == p.name))
        .count();
    let extrapolate = |f: fn((f64, f64, f64)) -> f64| {
        if warm.is_empty() {
            samples.iter().map(|p| f(demand(p))).sum::<f64>()
        } else {
            let per_pod = warm.iter().map(|p| f(demand(p))).sum::<f64>() / warm.len() as f64;
            per_pod * serving.max(warm.len()) as f64
        }
    };
    // The CPU a pod's arrivals ask for: what its workers used, scaled up when fewer jobs
    // completed than arrived.
    let cpu_demand = |p: &PodSample| {
        p.worker_cpu_cores.map(|c| {
            let arrivals = p.jobs_per_second.max(0.0) + p.rejected_per_second.max(0.0);
            let scale = if p.jobs_per_second > 0.0 {
                (arrivals / p.jobs_per_second).max(1.0)
            } else {
                1.0
            };
            c.max(0.0) * scale
        })
    };
    let warm_cpu: Vec<f64> = warm.iter().filter_map(|p| cpu_demand(p)).collect();
    let cpu_cores = if warm_cpu.is_empty() {
        let all: Vec<f64> = samples.iter().filter_map(cpu_demand).collect();
        (!all.is_empty()).then(|| all.iter().sum::<f64>())
    } else {
        Some(
            warm_cpu.iter().sum::<f64>() / warm_cpu.len() as f64
                * serving.max(warm_cpu.len()) as f64,
        )
    };
    let required = extrapolate(|d| d.1);
    let required_busy = extrapolate(|d| d.0);
    let required_flow = extrapolate(|d| d.2);

    let busy: f64 = samples.iter().map(|p| p.busy_workers.max(0.0)).sum();
    let workers: Vec<f64> = samples
        .iter()
        .flat_map(|p| p.worker_memory.iter().map(|&b| b as f64))
        .collect();
    let peaks: Vec<f64> = samples
        .iter()
        .filter_map(|p| p.pod_memory_peak.map(|b| b as f64))
        .collect();
    // Growth from the pods whose measured workers are oldest (the older half): a pod that
    // just started has only young workers, still warming up.
    let mut measured: Vec<(f64, Option<f64>, Option<f64>)> = samples
        .iter()
        .filter(|p| p.memory_growth_per_job.is_some() || p.warm_worker_memory.is_some())
        .map(|p| {
            (
                p.growth_jobs.unwrap_or(0.0),
                p.memory_growth_per_job,
                p.warm_worker_memory,
            )
        })
        .collect();
    measured.sort_by(|a, b| b.0.total_cmp(&a.0));
    let older = &measured[..measured.len().div_ceil(2)];
    let growth: Vec<f64> = older.iter().filter_map(|m| m.1).collect();
    let warm_memory: Vec<f64> = older.iter().filter_map(|m| m.2).collect();
    let (cpu, cpu_busy) = samples
        .iter()
        .filter_map(|p| {
            p.worker_cpu_cores
                .map(|c| (c.max(0.0), p.busy_workers.max(0.0)))
        })
        .fold((0.0, 0.0), |(a, b), (c, w)| (a + c, b + w));
    let (boot_sum, boots) = samples
        .iter()
        .filter_map(|p| {
            p.worker_boot_seconds
                .filter(|_| p.worker_boots > 0.0)
                .map(|b| (b.max(0.0) * p.worker_boots, p.worker_boots))
        })
        .fold((0.0, 0.0), |(a, b), (s, n)| (a + s, b + n));
    let (throttled_sum, throttled_weight) = samples
        .iter()
        .filter_map(|p| p.cpu_throttled.map(|s| (s, p.busy_workers.max(0.01))))
        .fold((0.0, 0.0), |(a, b), (s, w)| (a + s * w, b + w));
    Load {
        pods: samples.len(),
        serving: serving.max(1),
        missing,
        busy,
        live: samples.iter().map(|p| p.live_workers.max(0.0)).sum(),
        queue: samples.iter().map(|p| p.queue_depth.max(0.0)).sum(),
        jobs_per_second: sample.total_jobs_per_second().max(0.0),
        mean_job_seconds: sample.mean_job_seconds(),
        warm_job_seconds: {
            let (weighted, weight) = warm
                .iter()
                .filter_map(|p| {
                    p.mean_job_seconds
                        .map(|d| (d * p.jobs_per_second, p.jobs_per_second))
                })
                .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
            (weight > 0.0)
                .then(|| weighted / weight)
                .or(sample.mean_job_seconds())
        },
        required,
        required_busy,
        required_flow,
        worker_memory_p95: percentile(&workers, 0.95),
        worker_memory_p50: median(&workers),
        pod_memory_p95: percentile(&peaks, 0.95),
        server_memory: samples
            .iter()
            .filter_map(|p| p.server_memory)
            .max()
            .unwrap_or(DEFAULT_SERVER_MEMORY) as f64,
        growth_per_job: median(&growth),
        warm_memory: median(&warm_memory),
        growth_jobs: median(
            &older
                .iter()
                .filter(|m| m.1.is_some())
                .map(|m| m.0)
                .collect::<Vec<_>>(),
        ),
        youngest_pod_seconds: pods
            .iter()
            .map(|p| {
                p.ready_since
                    .map_or(0.0, |r| now.duration_since(r).as_secs_f64().max(0.0))
            })
            .reduce(f64::min),
        jobs_done_p75: percentile(
            &samples
                .iter()
                .flat_map(|p| p.worker_jobs.iter().map(|&j| j as f64))
                .collect::<Vec<_>>(),
            0.75,
        ),
        cpu_per_busy_worker: (cpu_busy >= MIN_BUSY_FOR_CPU)
            .then(|| (cpu / cpu_busy).clamp(0.01, 1.0)),
        throttled: (throttled_weight > 0.0).then(|| throttled_sum / throttled_weight),
        cpu_cores,
        working_sets: samples
            .iter()
            .filter(|p| own_cgroup(p))
            .filter_map(|p| {
                p.memory_working_set
                    .map(|ws| (p.live_workers.max(0.0), ws as f64))
            })
            .collect(),
        memory_limits: samples.iter().filter_map(|p| p.memory_limit).collect(),
        target_workers: samples.iter().filter_map(|p| p.target_workers).collect(),
        oom_kills: samples
            .iter()
            .filter(|p| own_cgroup(p))
            .filter_map(|p| p.oom_kills)
            .sum(),
        resize_pending: pods.iter().any(|p| p.resize_pending),
        boot_seconds: (boots > 0.0).then(|| boot_sum / boots),
        worker_age: sum_bands(warm.iter().copied()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuning::fixtures::{pod_sample, sample, t, target};

    /// Pod `name` of 8 workers, `busy` of them busy.
    fn pod(name: &str, busy: f64) -> PodSample {
        pod_sample(name, busy, 8.0)
    }

    #[test]
    fn waiting_requests_are_drained_not_counted_as_workers() {
        let mut p = pod("a", 4.0);
        p.queue_depth = 100.0;
        let l = load_of(&sample(vec![p]), &[], t(0));
        // 4 busy + 100 waiting × 0.1 s ÷ 10 s = 5.
        assert!((l.required - 5.0).abs() < 1e-9, "{}", l.required);
    }

    #[test]
    fn a_missing_pod_does_not_lower_the_demand() {
        // Three ready pods, one scrape failed: the two that reported stand for three.
        let pods = [
            target("a", Some(-600)),
            target("b", Some(-600)),
            target("c", Some(-600)),
        ];
        let l = load_of(&sample(vec![pod("a", 3.0), pod("b", 3.0)]), &pods, t(0));
        assert_eq!((l.serving, l.missing), (3, 1));
        assert!((l.required - 9.0).abs() < 1e-9, "{}", l.required);
    }

    #[test]
    fn a_cold_pod_does_not_inflate_the_demand() {
        // c became ready 20 s ago: its workers are cold and busy longer per job.
        let pods = [
            target("a", Some(-600)),
            target("b", Some(-600)),
            target("c", Some(-20)),
        ];
        let l = load_of(
            &sample(vec![pod("a", 3.0), pod("b", 3.0), pod("c", 7.0)]),
            &pods,
            t(0),
        );
        assert!((l.required - 9.0).abs() < 1e-9, "{}", l.required);
        assert_eq!(l.missing, 0);
        // A pod that is not ready serves nothing and is not expected to report.
        let pods = [target("a", Some(-600)), target("b", None)];
        let l = load_of(&sample(vec![pod("a", 3.0)]), &pods, t(0));
        assert_eq!((l.serving, l.missing), (1, 0));
        assert!((l.required - 3.0).abs() < 1e-9);
    }

    #[test]
    fn what_the_pods_report_is_collected() {
        let mut a = pod("a", 1.0);
        a.target_workers = Some(6);
        a.memory_limit = Some(512 << 20);
        a.memory_working_set = Some(300 << 20);
        a.oom_kills = Some(1.0);
        a.cpu_throttled = Some(0.5);
        let mut b = pod("b", 3.0);
        b.target_workers = Some(4);
        b.memory_limit = Some(256 << 20);
        b.cpu_throttled = Some(0.1);
        let l = load_of(&sample(vec![a, b]), &[], t(0));
        assert_eq!(l.target_workers, vec![6, 4]);
        assert_eq!(l.memory_limits, vec![512 << 20, 256 << 20]);
        assert_eq!(l.working_sets, vec![(8.0, f64::from(300u32 << 20))]);
        assert_eq!(l.oom_kills, 1.0);
        // Busy-weighted: (0.5 × 1 + 0.1 × 3) / 4.
        assert!((l.throttled.unwrap() - 0.2).abs() < 1e-9);
    }

    /// The CPU the load asks for comes from the warm pods, scaled by arrivals ÷ completions
    /// (a throttled pod refuses or queues what its quota does not run), for every serving
    /// pod.
    #[test]
    fn cpu_demand_from_warm_pods_counts_what_was_refused() {
        let pods = [
            target("a", Some(-600)),
            target("b", Some(-600)),
            target("c", Some(-20)),
        ];
        let mut a = pod("a", 4.0);
        a.worker_cpu_cores = Some(2.0);
        let mut b = pod("b", 4.0);
        b.worker_cpu_cores = Some(3.0);
        // 40 completed and 10 refused per second: the quota ran 4/5 of what arrived.
        b.rejected_per_second = 10.0;
        // c is cold (2× the CPU per job): not the load.
        let mut c = pod("c", 4.0);
        c.worker_cpu_cores = Some(6.0);
        let l = load_of(&sample(vec![a, b, c]), &pods, t(0));
        // (2 + 3 × 50/40) / 2 × 3 pods.
        let want = (2.0 + 3.0 * 1.25) / 2.0 * 3.0;
        assert!(
            (l.cpu_cores.unwrap() - want).abs() < 1e-9,
            "{:?}",
            l.cpu_cores
        );
        // Without CPU figures there is no CPU demand.
        let l = load_of(&sample(vec![pod("a", 4.0)]), &[], t(0));
        assert_eq!(l.cpu_cores, None);
    }

    /// A cgroup with no memory limit is not the container the operator sized (it always
    /// sets one): its working set and OOM kills are an enclosing cgroup's, not the pod's.
    #[test]
    fn a_cgroup_without_a_limit_is_not_the_pods() {
        let mut sized = pod("a", 1.0);
        sized.memory_limit = Some(512 << 20);
        sized.memory_working_set = Some(300 << 20);
        sized.oom_kills = Some(1.0);
        let mut enclosing = pod("b", 1.0);
        enclosing.memory_limit = None;
        enclosing.memory_working_set = Some(6 << 30);
        enclosing.oom_kills = Some(3.0);
        let l = load_of(&sample(vec![sized, enclosing]), &[], t(0));
        assert_eq!(l.working_sets, vec![(8.0, f64::from(300u32 << 20))]);
        assert_eq!(l.oom_kills, 1.0);
        assert_eq!(l.memory_limits, vec![512 << 20]);
    }

    /// The boot time is the mean over every boot of the window, so a pod that booted more
    /// workers weighs more; pods without boots (or an older pacer) do not count.
    #[test]
    fn boot_seconds_are_weighted_by_boots() {
        let booted = |name: &str, seconds: Option<f64>, boots: f64| {
            let mut p = pod(name, 2.0);
            p.worker_boot_seconds = seconds;
            p.worker_boots = boots;
            p
        };
        let l = load_of(
            &sample(vec![
                booted("a", Some(4.0), 3.0),
                booted("b", Some(2.0), 1.0),
                booted("c", None, 0.0),
            ]),
            &[],
            t(0),
        );
        // (4 × 3 + 2 × 1) / 4.
        assert_eq!(l.boot_seconds, Some(3.5));
        let none = load_of(
            &sample(vec![booted("a", None, 0.0), pod("b", 1.0)]),
            &[],
            t(0),
        );
        assert_eq!(none.boot_seconds, None);
    }

    /// Worker-age bands add up band by band over the pods, youngest first, whichever
    /// bands each pod reports.
    #[test]
    fn worker_age_bands_are_summed_over_pods() {
        let band = |first: f64, end: Option<f64>, seconds: f64, jobs: f64| AgeBand {
            first,
            end,
            seconds,
            jobs,
        };
        let mut a = pod("a", 2.0);
        a.worker_age = vec![
            band(0.0, Some(10.0), 1.0, 10.0),
            band(3000.0, None, 2.0, 40.0),
        ];
        let mut b = pod("b", 2.0);
        b.worker_age = vec![
            band(3000.0, None, 1.0, 20.0),
            band(0.0, Some(10.0), 0.5, 5.0),
        ];
        let l = load_of(&sample(vec![a, b, pod("c", 1.0)]), &[], t(0));
        assert_eq!(
            l.worker_age,
            vec![
                band(0.0, Some(10.0), 1.5, 15.0),
                band(3000.0, None, 3.0, 60.0)
            ]
        );
        assert!(
            load_of(&sample(vec![pod("c", 1.0)]), &[], t(0))
                .worker_age
                .is_empty()
        );
    }

    /// A pod that became ready inside the window has workers of one age: its bands are
    /// left out.
    #[test]
    fn worker_age_bands_come_from_warm_pods() {
        let aged = |name: &str, jobs: f64| {
            let mut p = pod(name, 2.0);
            p.worker_age = vec![AgeBand {
                first: 0.0,
                end: Some(10.0),
                seconds: jobs * 0.1,
                jobs,
            }];
            p
        };
        let pods = [target("warm", Some(-600)), target("cold", Some(-30))];
        let l = load_of(
            &sample(vec![aged("warm", 10.0), aged("cold", 80.0)]),
            &pods,
            t(0),
        );
        assert_eq!(l.worker_age.len(), 1);
        assert_eq!(l.worker_age[0].jobs, 10.0);
    }

    /// The CPU of a busy worker is CPU time ÷ busy time over the pods that report CPU;
    /// with too little busy time there is no estimate (and so no ceiling from noise).
    #[test]
    fn cpu_per_busy_worker_needs_busy_time() {
        let load = |busy: f64, cores: Option<f64>| {
            let mut p = pod("a", busy);
            p.worker_cpu_cores = cores;
            load_of(&sample(vec![p]), &[], t(0)).cpu_per_busy_worker
        };
        assert_eq!(load(0.1, Some(0.1)), None);
        assert_eq!(load(4.0, None), None);
        assert_eq!(load(4.0, Some(2.0)), Some(0.5));
        // Measurement lag can show more CPU than busy time: capped at one core per worker.
        assert_eq!(load(1.0, Some(3.0)), Some(1.0));
    }
}
