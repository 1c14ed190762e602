//! From several scrapes of one pod to its window aggregates ([`PodSample`]). Pure.
//!
//! * Busy workers: the rate of `pacer_job_duration_seconds_sum` (Little's law), or the
//!   mean of the `working` gauge if larger (jobs still running are not in the sum yet).
//! * Waiting requests: the rate of `pacer_queue_wait_seconds_sum`, or the mean queue gauge.
//! * Counters are summed pairwise with reset detection, as Prometheus' `increase()` does,
//!   so a pacer restart inside the window does not produce a negative rate.
//! * Memory growth per job, per worker slot: over the longest run of scrapes in which the
//!   slot's job count only grew (the same worker), slope = Δmemory ÷ Δjobs, intercept =
//!   the worker's warm size. A slot needs [`MIN_JOBS_FOR_GROWTH`] jobs in its run to count;
//!   a point whose memory is not measured yet (0 bytes, a worker just started) breaks a run.
//!   The pod's growth is the median of the older half of its workers ([`past_warm_up`]):
//!   young workers still warm up, which is growth but not a leak.
//! * Worker CPU: the increase of `pacer_worker_cpu_seconds_total` over the window, in
//!   cores; only when every scrape carries the counter (an older pacer does not).
//! * Worker boots: the increase of `pacer_worker_boot_seconds_sum` over that of its
//!   `_count`, the mean boot of the workers that booted in the window; none when no worker
//!   booted in it, or a scrape lacks the histogram (an older pacer).
//! * Job time by worker age: per `age` band, the increase of
//!   `pacer_worker_age_job_seconds_total` and of `pacer_worker_age_jobs_total`; a band only
//!   when every scrape carries it (an older pacer carries none).
//! * The container's cgroup: the highest working set of the window, the limit of the last
//!   scrape, the OOM kills ([`oom_kills`]) and the share of throttled CPU periods, each
//!   only when pacer reports it.
//! * OOM kills count from the container's start when it started inside the window: the
//!   counter belongs to the container's cgroup, which began at 0 with pacer (the
//!   container's first process, `process_start_time_seconds`), so kills before the first
//!   scrape of a young container are in the window too. A container older than the window
//!   (first scraped after an operator restart) counts from its first scrape, as
//!   Prometheus' `increase()` does: its old kills are not counted again.

use jiff::Timestamp;

use super::prom_text::PacerMetrics;
use crate::sample::{AgeBand, PodSample};
use crate::tuning::stats::median;

/// A slot's run must span at least this many jobs for its memory slope to count.
pub const MIN_JOBS_FOR_GROWTH: f64 = 20.0;

/// One scrape of one pod.
#[derive(Clone, Debug, PartialEq)]
pub struct Scrape {
    /// When it was taken.
    pub at: Timestamp,
    /// What it said.
    pub metrics: PacerMetrics,
}

fn increase(scrapes: &[Scrape], value: impl Fn(&PacerMetrics) -> f64) -> f64 {
    scrapes
        .windows(2)
        .map(|pair| {
            let (a, b) = (value(&pair[0].metrics), value(&pair[1].metrics));
            if b >= a { b - a } else { b }
        })
        .sum()
}

/// Seconds of slack when comparing pacer's start times: the same process reads the same
/// start from one scrape to the next, a restarted container starts seconds later.
const SAME_START: f64 = 1.0;

/// Whether pacer's start time moved between two scrapes (a new process: its counters
/// start from zero, whatever their values say); unknown start times say no.
fn restarted(before: Option<f64>, after: Option<f64>) -> bool {
    matches!((before, after), (Some(a), Some(b)) if (b - a).abs() > SAME_START)
}

/// OOM kills in the window: the counter's increase between scrapes, with a reset (the
/// counter went down, or pacer's start time changed: a new container, a new cgroup)
/// counting the new value whole, plus the first scrape's value whole when the container
/// started at or after `since` (the window's start) and so the counter was 0 inside the
/// window. `None` unless every scrape carries the counter.
#[must_use]
pub fn oom_kills(scrapes: &[Scrape], since: Timestamp) -> Option<f64> {
    let since = since.as_millisecond() as f64 / 1000.0;
    let mut total = 0.0;
    let mut previous: Option<(f64, Option<f64>)> = None;
    for scrape in scrapes {
        let kills = scrape.metrics.oom_kills?;
        let start = scrape.metrics.start_time.filter(|s| s.is_finite());
        total += match previous {
            None => {
                if start.is_some_and(|s| s >= since) {
                    kills
                } else {
                    0.0
                }
            }
            Some((before, started)) => {
                if restarted(started, start) || kills < before {
                    kills
                } else {
                    kills - before
                }
            }
        };
        previous = Some((kills, start));
    }
    Some(total.max(0.0))
}

fn mean(scrapes: &[Scrape], value: impl Fn(&PacerMetrics) -> f64) -> f64 {
    if scrapes.is_empty() {
        return 0.0;
    }
    scrapes.iter().map(|s| value(&s.metrics)).sum::<f64>() / scrapes.len() as f64
}

/// One worker's measured growth: the jobs it had done when its run started, its slope
/// (bytes per job) and intercept (warm bytes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlotGrowth {
    /// Jobs done at the start of the measured run.
    pub jobs: f64,
    /// Bytes per job.
    pub slope: f64,
    /// Warm size, bytes.
    pub warm: f64,
}

/// Growth per job, warm size and jobs done of a pod, from the older half of its workers
/// (by jobs done): a fresh worker grows while it warms up (code, autoloaders, framework
/// caches), which is not a leak; the workers furthest past their warm-up show the leak
/// alone.
#[must_use]
pub fn past_warm_up(mut slots: Vec<SlotGrowth>) -> PastWarmUp {
    slots.sort_by(|a, b| b.jobs.total_cmp(&a.jobs));
    let older = &slots[..slots.len().div_ceil(2)];
    let of = |f: fn(&SlotGrowth) -> f64| median(&older.iter().map(f).collect::<Vec<_>>());
    PastWarmUp {
        growth: of(|s| s.slope),
        warm: of(|s| s.warm),
        jobs: of(|s| s.jobs),
    }
}

/// See [`past_warm_up`].
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct PastWarmUp {
    /// Bytes per job.
    pub growth: Option<f64>,
    /// Warm size, bytes.
    pub warm: Option<f64>,
    /// Jobs the measured workers had done.
    pub jobs: Option<f64>,
}

/// Slope (bytes per job) and intercept (warm bytes) of one slot over its longest run.
fn slot_growth(scrapes: &[Scrape], slot: &str) -> Option<SlotGrowth> {
    // A worker whose memory pacer has not sampled yet reports 0 bytes: such a point is a
    // gap, not the start of a run (from 0 bytes every later point looks like huge growth).
    let points: Vec<Option<(f64, f64)>> = scrapes
        .iter()
        .map(|s| {
            s.metrics
                .slots
                .get(slot)
                .copied()
                .filter(|(mem, _)| *mem > 0.0)
        })
        .collect();
    let mut best: Option<((f64, f64), (f64, f64))> = None;
    let mut run_start: Option<(f64, f64)> = None;
    let mut prev: Option<(f64, f64)> = None;
    for point in points {
        match (point, prev) {
            (Some(p), Some(q)) if p.1 >= q.1 => {}
            (Some(p), _) => run_start = Some(p),
            (None, _) => run_start = None,
        }
        if let (Some(start), Some(end)) = (run_start, point) {
            let span = end.1 - start.1;
            if best.is_none_or(|(s, e)| span > e.1 - s.1) {
                best = Some((start, end));
            }
        }
        prev = point;
    }
    let ((mem0, jobs0), (mem1, jobs1)) = best?;
    let jobs = jobs1 - jobs0;
    if jobs < MIN_JOBS_FOR_GROWTH {
        return None;
    }
    let slope = (mem1 - mem0) / jobs;
    let warm = (mem0 - slope * jobs0).clamp(mem0.min(mem1) * 0.5, mem0.max(mem1));
    Some(SlotGrowth {
        jobs: jobs0,
        slope,
        warm,
    })
}

/// Job time by worker age over the window: each band's increase, youngest first (see
/// the module's doc). A band's two counters reset together: a new pacer (its start time
/// moved), or either counter going down, counts both anew — each on its own would take a
/// restarted pacer that has run up to about the same totals (the simulator's
/// deterministic warm-up does) for no jobs in 56 s, or 700 jobs in no time.
fn worker_age(scrapes: &[Scrape]) -> Vec<AgeBand> {
    let Some(last) = scrapes.last() else {
        return Vec::new();
    };
    let mut bands: Vec<AgeBand> = last
        .metrics
        .worker_age
        .keys()
        .filter(|age| {
            scrapes
                .iter()
                .all(|s| s.metrics.worker_age.contains_key(*age))
        })
        .filter_map(|age| {
            let (mut seconds, mut jobs) = (0.0, 0.0);
            for pair in scrapes.windows(2) {
                let (a, b) = (&pair[0].metrics, &pair[1].metrics);
                let (a_seconds, a_jobs) = a.worker_age.get(age).copied().unwrap_or_default();
                let (b_seconds, b_jobs) = b.worker_age.get(age).copied().unwrap_or_default();
                if restarted(a.start_time, b.start_time) || b_seconds < a_seconds || b_jobs < a_jobs
                {
                    seconds += b_seconds;
                    jobs += b_jobs;
                } else {
                    seconds += b_seconds - a_seconds;
                    jobs += b_jobs - a_jobs;
                }
            }
            AgeBand::of(age, seconds.max(0.0), jobs.max(0.0))
        })
        .collect();
    bands.sort_by(|a, b| a.first.total_cmp(&b.first));
    bands
}

/// Aggregates the scrapes of one pod (oldest first) of the window that began at `since`.
/// `None` without two scrapes that span some time.
#[must_use]
pub fn aggregate(pod: &str, scrapes: &[Scrape], since: Timestamp) -> Option<PodSample> {
    let (first, last) = (scrapes.first()?, scrapes.last()?);
    let seconds = last.at.duration_since(first.at).as_secs_f64();
    if scrapes.len() < 2 || seconds <= 0.0 {
        return None;
    }
    let job_seconds = increase(scrapes, |m| m.job_seconds_sum);
    let jobs = increase(scrapes, |m| m.job_count);
    let busy_from_sum = job_seconds / seconds;
    let busy_gauge = mean(scrapes, |m| m.working);
    let queue_from_sum = increase(scrapes, |m| m.queue_wait_sum) / seconds;
    let queue_gauge = mean(scrapes, |m| m.queue_depth);

    let growth = past_warm_up(
        last.metrics
            .slots
            .keys()
            .filter_map(|slot| slot_growth(scrapes, slot))
            .collect(),
    );
    let worker_cpu_cores = scrapes
        .iter()
        .all(|s| s.metrics.worker_cpu_seconds.is_some())
        .then(|| increase(scrapes, |m| m.worker_cpu_seconds.unwrap_or(0.0)) / seconds);
    let pod_memory_peak = scrapes
        .iter()
        .map(|s| {
            s.metrics.process_memory.unwrap_or(0.0)
                + s.metrics.slots.values().map(|(m, _)| m).sum::<f64>()
        })
        .fold(0.0, f64::max);
    let every =
        |f: fn(&PacerMetrics) -> Option<f64>| scrapes.iter().all(|s| f(&s.metrics).is_some());
    let memory_working_set = scrapes
        .iter()
        .filter_map(|s| s.metrics.working_set)
        .reduce(f64::max)
        .map(|b| b.max(0.0) as u64);
    let oom_kills = oom_kills(scrapes, since);
    let cpu_throttled = (every(|m| m.cpu_periods) && every(|m| m.cpu_throttled_periods))
        .then(|| {
            let periods = increase(scrapes, |m| m.cpu_periods.unwrap_or(0.0));
            let throttled = increase(scrapes, |m| m.cpu_throttled_periods.unwrap_or(0.0));
            (periods > 0.0).then(|| (throttled / periods).clamp(0.0, 1.0))
        })
        .flatten();

    let boots =
        (every(|m| m.worker_boot_count) && every(|m| m.worker_boot_seconds_sum)).then(|| {
            (
                increase(scrapes, |m| m.worker_boot_count.unwrap_or(0.0)),
                increase(scrapes, |m| m.worker_boot_seconds_sum.unwrap_or(0.0)),
            )
        });
    let worker_boots = boots.map_or(0.0, |(count, _)| count.max(0.0));
    let worker_boot_seconds = boots
        .filter(|(count, _)| *count > 0.0)
        .map(|(count, seconds)| (seconds / count).max(0.0));

    let worker_age = worker_age(scrapes);

    let jobs_window = match (&first.metrics.jobs, &last.metrics.jobs) {
        (Some(a), Some(b)) => Some(super::jobs::JobsWindow {
            first: a.clone(),
            last: b.clone(),
            seconds,
        }),
        _ => None,
    };
    Some(PodSample {
        pod: pod.to_owned(),
        live_workers: mean(scrapes, |m| m.ready + m.working),
        busy_workers: busy_from_sum.max(busy_gauge),
        queue_depth: queue_from_sum.max(queue_gauge),
        jobs_per_second: jobs / seconds,
        rejected_per_second: increase(scrapes, |m| m.no_free_workers) / seconds,
        mean_job_seconds: (jobs > 0.0).then(|| job_seconds / jobs),
        worker_memory: last
            .metrics
            .slots
            .values()
            .map(|(m, _)| *m as u64)
            .collect(),
        worker_jobs: last
            .metrics
            .slots
            .values()
            .map(|(_, j)| j.max(0.0) as u64)
            .collect(),
        memory_growth_per_job: growth.growth,
        warm_worker_memory: growth.warm,
        growth_jobs: growth.jobs,
        server_memory: last.metrics.process_memory.map(|m| m as u64),
        pod_memory_peak: (pod_memory_peak > 0.0).then_some(pod_memory_peak as u64),
        worker_cpu_cores,
        worker_boot_seconds,
        worker_boots,
        worker_age,
        target_workers: last
            .metrics
            .target_workers
            .filter(|w| w.is_finite() && *w >= 0.0)
            .map(|w| w.round() as u32),
        memory_working_set,
        memory_limit: last
            .metrics
            .memory_limit
            .filter(|b| b.is_finite() && *b > 0.0)
            .map(|b| b as u64),
        oom_kills,
        cpu_throttled,
        jobs: jobs_window,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics_source::prom_text::{self, PacerMetrics};
    use std::collections::BTreeMap;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    /// [`super::aggregate`] of a window that began long before these scrapes.
    fn aggregate(pod: &str, scrapes: &[Scrape]) -> Option<PodSample> {
        super::aggregate(pod, scrapes, at(-3600))
    }

    fn scrape(secs: i64, f: impl FnOnce(&mut PacerMetrics)) -> Scrape {
        let mut metrics = PacerMetrics {
            ready: 3.0,
            working: 1.0,
            ..PacerMetrics::default()
        };
        f(&mut metrics);
        Scrape {
            at: at(secs),
            metrics,
        }
    }

    #[test]
    fn one_scrape_is_not_a_window() {
        assert_eq!(aggregate("p", &[scrape(0, |_| {})]), None);
        assert_eq!(aggregate("p", &[]), None);
        assert_eq!(
            aggregate("p", &[scrape(0, |_| {}), scrape(0, |_| {})]),
            None
        );
    }

    #[test]
    fn busy_workers_and_rates_follow_littles_law() {
        let scrapes = [
            scrape(0, |m| {
                m.job_seconds_sum = 100.0;
                m.job_count = 1000.0;
                m.queue_wait_sum = 5.0;
                m.no_free_workers = 1.0;
            }),
            scrape(60, |m| {
                // 150 busy-seconds in 60 s = 2.5 workers busy on average.
                m.job_seconds_sum = 250.0;
                m.job_count = 2500.0;
                m.queue_wait_sum = 35.0;
                m.no_free_workers = 7.0;
            }),
        ];
        let p = aggregate("p", &scrapes).unwrap();
        assert_eq!(p.busy_workers, 2.5);
        assert_eq!(p.jobs_per_second, 25.0);
        assert_eq!(p.mean_job_seconds, Some(0.1));
        assert_eq!(p.queue_depth, 0.5);
        assert_eq!(p.rejected_per_second, 0.1);
        assert_eq!(p.live_workers, 4.0);
    }

    #[test]
    fn long_running_jobs_show_in_the_gauge() {
        // No job finished, but all four workers are busy the whole time.
        let scrapes = [
            scrape(0, |m| {
                m.working = 4.0;
                m.ready = 0.0;
            }),
            scrape(30, |m| {
                m.working = 4.0;
                m.ready = 0.0;
            }),
        ];
        let p = aggregate("p", &scrapes).unwrap();
        assert_eq!(p.busy_workers, 4.0);
        assert_eq!(p.mean_job_seconds, None);
    }

    #[test]
    fn counter_resets_do_not_go_negative() {
        let scrapes = [
            scrape(0, |m| m.job_count = 1000.0),
            scrape(30, |m| m.job_count = 1300.0),
            // pacer restarted: the counter starts again from zero.
            scrape(60, |m| m.job_count = 200.0),
        ];
        let p = aggregate("p", &scrapes).unwrap();
        assert_eq!(p.jobs_per_second, 500.0 / 60.0);
    }

    #[test]
    fn worker_cpu_in_cores_needs_the_counter_in_every_scrape() {
        let scrapes = [
            scrape(0, |m| m.worker_cpu_seconds = Some(10.0)),
            scrape(10, |m| m.worker_cpu_seconds = Some(14.0)),
            // pacer restarted: counted from zero again, as increase() does.
            scrape(20, |m| m.worker_cpu_seconds = Some(2.0)),
        ];
        let cores = aggregate("p", &scrapes).unwrap().worker_cpu_cores.unwrap();
        assert!((cores - 0.3).abs() < 1e-9, "{cores}");

        let older_pacer = [
            scrape(0, |m| m.worker_cpu_seconds = Some(10.0)),
            scrape(10, |_| {}),
        ];
        assert_eq!(aggregate("p", &older_pacer).unwrap().worker_cpu_cores, None);
    }

    fn booted(secs: i64, seconds: f64, count: f64) -> Scrape {
        scrape(secs, |m| {
            m.worker_boot_seconds_sum = Some(seconds);
            m.worker_boot_count = Some(count);
        })
    }

    #[test]
    fn boots_in_the_window_give_their_mean_boot_time() {
        // Two workers booted before the window (3 s), then one of 4 s and one of 2 s in it.
        let scrapes = [
            booted(0, 3.0, 2.0),
            booted(30, 7.0, 3.0),
            booted(60, 9.0, 4.0),
        ];
        let p = aggregate("p", &scrapes).unwrap();
        assert_eq!(p.worker_boot_seconds, Some(3.0));
        assert_eq!(p.worker_boots, 2.0);
    }

    #[test]
    fn no_boot_in_the_window_is_no_boot_time() {
        let scrapes = [booted(0, 3.0, 2.0), booted(30, 3.0, 2.0)];
        let p = aggregate("p", &scrapes).unwrap();
        assert_eq!((p.worker_boot_seconds, p.worker_boots), (None, 0.0));
        // An older pacer reports no boots at all, nor does a window one of whose scrapes
        // lacks the histogram.
        let old = aggregate("p", &[scrape(0, |_| {}), scrape(30, |_| {})]).unwrap();
        assert_eq!((old.worker_boot_seconds, old.worker_boots), (None, 0.0));
        let mixed = aggregate("p", &[scrape(0, |_| {}), booted(30, 4.0, 1.0)]).unwrap();
        assert_eq!(mixed.worker_boot_seconds, None);
    }

    #[test]
    fn a_restarted_pacer_counts_its_boots_from_zero() {
        // 10 workers booted 20 s before; one more of 2 s; pacer restarts and boots 4
        // workers in 12 s: five boots, 14 s.
        let scrapes = [
            booted(0, 20.0, 10.0),
            booted(30, 22.0, 11.0),
            booted(60, 12.0, 4.0),
        ];
        let p = aggregate("p", &scrapes).unwrap();
        assert_eq!(p.worker_boots, 5.0);
        assert_eq!(p.worker_boot_seconds, Some(14.0 / 5.0));
    }

    fn aged(secs: i64, bands: &[(&str, f64, f64)]) -> Scrape {
        scrape(secs, |m| {
            m.worker_age = bands
                .iter()
                .map(|(age, s, n)| ((*age).to_owned(), (*s, *n)))
                .collect();
        })
    }

    /// Each band's increase over the window, youngest first (not in label order: "10-29"
    /// sorts before "3000+" and "300-999"), a restarted pacer counted from zero; a band
    /// that a scrape lacks (an older pacer) is left out.
    #[test]
    fn job_time_by_worker_age_is_each_bands_increase() {
        let scrapes = [
            aged(
                0,
                &[
                    ("0-9", 1.0, 10.0),
                    ("10-29", 2.0, 40.0),
                    ("300-999", 5.0, 100.0),
                ],
            ),
            aged(
                30,
                &[
                    ("0-9", 1.5, 15.0),
                    ("10-29", 2.0, 40.0),
                    ("300-999", 6.0, 150.0),
                ],
            ),
            // Restarted: from zero again.
            aged(
                60,
                &[
                    ("0-9", 0.25, 2.0),
                    ("10-29", 0.0, 0.0),
                    ("300-999", 0.0, 0.0),
                ],
            ),
        ];
        let p = aggregate("p", &scrapes).unwrap();
        let got: Vec<_> = p
            .worker_age
            .iter()
            .map(|b| (b.first, b.end, b.seconds, b.jobs))
            .collect();
        assert_eq!(
            got,
            [
                (0.0, Some(10.0), 0.75, 7.0),
                (10.0, Some(30.0), 0.0, 0.0),
                (300.0, Some(1000.0), 1.0, 50.0),
            ]
        );
        // A new pacer that has run up to about the old totals: both counted anew, whether
        // its start time says so or only one of the counters went down.
        let restarted = |start: f64, seconds: f64, jobs: f64| {
            let mut s = aged(30, &[("0-9", seconds, jobs)]);
            s.metrics.start_time = Some(start);
            s
        };
        let mut first = aged(0, &[("0-9", 5.0, 100.0)]);
        first.metrics.start_time = Some(1000.0);
        for second in [restarted(1020.0, 5.5, 101.0), restarted(1000.0, 4.9, 100.5)] {
            let p = aggregate("p", &[first.clone(), second.clone()]).unwrap();
            let b = &p.worker_age[0];
            assert_eq!((b.seconds, b.jobs), second.metrics.worker_age["0-9"]);
        }
        let partial = [
            aged(0, &[("0-9", 1.0, 10.0)]),
            aged(30, &[("0-9", 2.0, 12.0), ("3000+", 1.0, 9.0)]),
        ];
        let p = aggregate("p", &partial).unwrap();
        assert_eq!(p.worker_age.len(), 1);
        assert_eq!(p.worker_age[0].jobs, 2.0);
        assert!(
            aggregate("p", &[scrape(0, |_| {}), scrape(30, |_| {})])
                .unwrap()
                .worker_age
                .is_empty()
        );
    }

    fn slots(pairs: &[(&str, f64, f64)]) -> BTreeMap<String, (f64, f64)> {
        pairs
            .iter()
            .map(|(s, m, j)| ((*s).to_owned(), (*m, *j)))
            .collect()
    }

    /// Found end to end: a replacement worker is scraped before pacer has sampled its
    /// memory (0 bytes); a run starting there measured 871 KiB per job for a 256 KiB leak,
    /// from 0 bytes warm, and drove max_jobs to its floor.
    #[test]
    fn unmeasured_memory_does_not_start_a_run() {
        let mib = 1024.0 * 1024.0;
        let scrapes = [
            scrape(0, |m| m.slots = slots(&[("0", 0.0, 2.0)])),
            scrape(5, |m| {
                m.slots = slots(&[("0", 20.0 * mib + 25.0 * 262_144.0, 25.0)])
            }),
            scrape(10, |m| {
                m.slots = slots(&[("0", 20.0 * mib + 50.0 * 262_144.0, 50.0)])
            }),
        ];
        let p = aggregate("p", &scrapes).unwrap();
        assert_eq!(p.memory_growth_per_job, Some(262_144.0));
        assert_eq!(p.warm_worker_memory, Some(20.0 * mib));
    }

    #[test]
    fn memory_growth_per_job_from_slots() {
        const MI: f64 = 1024.0 * 1024.0;
        let kib = 1024.0;
        let scrapes = [
            scrape(0, |m| {
                m.slots = slots(&[
                    ("0", 30.0 * MI + 100.0 * 50.0 * kib, 100.0),
                    ("1", 30.0 * MI, 0.0),
                ])
            }),
            scrape(30, |m| {
                m.slots = slots(&[
                    ("0", 30.0 * MI + 300.0 * 50.0 * kib, 300.0),
                    ("1", 30.0 * MI + 150.0 * 50.0 * kib, 150.0),
                ])
            }),
            scrape(60, |m| {
                m.slots = slots(&[
                    ("0", 30.0 * MI + 500.0 * 50.0 * kib, 500.0),
                    ("1", 30.0 * MI + 300.0 * 50.0 * kib, 300.0),
                ])
            }),
        ];
        let p = aggregate("p", &scrapes).unwrap();
        let growth = p.memory_growth_per_job.unwrap();
        assert!((growth - 50.0 * kib).abs() < 1.0, "{growth}");
        let warm = p.warm_worker_memory.unwrap();
        assert!((warm - 30.0 * MI).abs() < 1.0, "{warm}");
        assert_eq!(p.worker_memory.len(), 2);
    }

    #[test]
    fn a_recycled_worker_starts_a_new_run() {
        const MI: f64 = 1024.0 * 1024.0;
        let scrapes = [
            scrape(0, |m| m.slots = slots(&[("0", 40.0 * MI, 400.0)])),
            // Recycled: a fresh worker with few jobs; the drop in memory is not a negative slope.
            scrape(30, |m| m.slots = slots(&[("0", 20.0 * MI, 10.0)])),
            scrape(60, |m| m.slots = slots(&[("0", 21.0 * MI, 110.0)])),
        ];
        let p = aggregate("p", &scrapes).unwrap();
        let growth = p.memory_growth_per_job.unwrap();
        assert!((growth - MI / 100.0).abs() < 1.0, "{growth}");
    }

    /// Found by the simulator: workers that warm up over ~1000 jobs (22 → 44 MiB) with a
    /// 64 KiB leak measured 115–126 KiB per job (the median slot is still warming), which
    /// recycled them before they were ever warm.
    #[test]
    fn warm_up_is_not_a_leak() {
        let slots = vec![
            // Young workers: warm-up and leak.
            SlotGrowth {
                jobs: 10.0,
                slope: 120_000.0,
                warm: 22.0 * 1048576.0,
            },
            SlotGrowth {
                jobs: 60.0,
                slope: 110_000.0,
                warm: 23.0 * 1048576.0,
            },
            SlotGrowth {
                jobs: 120.0,
                slope: 95_000.0,
                warm: 24.0 * 1048576.0,
            },
            // Old ones: the leak.
            SlotGrowth {
                jobs: 900.0,
                slope: 66_000.0,
                warm: 40.0 * 1048576.0,
            },
            SlotGrowth {
                jobs: 1500.0,
                slope: 65_000.0,
                warm: 43.0 * 1048576.0,
            },
            SlotGrowth {
                jobs: 2000.0,
                slope: 65_536.0,
                warm: 44.0 * 1048576.0,
            },
        ];
        let p = past_warm_up(slots);
        assert_eq!(p.growth, Some(65_536.0));
        assert_eq!(p.warm, Some(43.0 * 1048576.0));
        assert_eq!(p.jobs, Some(1500.0));
        assert_eq!(past_warm_up(Vec::new()), PastWarmUp::default());
    }

    #[test]
    fn too_few_jobs_give_no_growth_estimate() {
        let scrapes = [
            scrape(0, |m| m.slots = slots(&[("0", 1000.0, 1.0)])),
            scrape(30, |m| m.slots = slots(&[("0", 9000.0, 5.0)])),
        ];
        assert_eq!(
            aggregate("p", &scrapes).unwrap().memory_growth_per_job,
            None
        );
    }

    #[test]
    fn cgroup_working_set_oom_kills_and_throttling() {
        let cg = |m: &mut PacerMetrics, ws: f64, oom: f64, periods: f64, throttled: f64| {
            m.working_set = Some(ws);
            m.memory_limit = Some(512.0 * 1024.0 * 1024.0);
            m.oom_kills = Some(oom);
            m.cpu_periods = Some(periods);
            m.cpu_throttled_periods = Some(throttled);
        };
        let scrapes = [
            scrape(0, |m| cg(m, 100e6, 2.0, 1000.0, 100.0)),
            scrape(30, |m| cg(m, 300e6, 3.0, 1300.0, 250.0)),
            scrape(60, |m| cg(m, 200e6, 4.0, 1600.0, 400.0)),
        ];
        let p = aggregate("p", &scrapes).unwrap();
        assert_eq!(p.memory_working_set, Some(300_000_000));
        assert_eq!(p.memory_limit, Some(512 * 1024 * 1024));
        assert_eq!(p.oom_kills, Some(2.0));
        assert_eq!(p.cpu_throttled, Some(0.5));
        // An older pacer reports none of it.
        let old = aggregate("p", &[scrape(0, |_| {}), scrape(30, |_| {})]).unwrap();
        assert_eq!(
            (
                old.memory_working_set,
                old.memory_limit,
                old.oom_kills,
                old.cpu_throttled
            ),
            (None, None, None, None)
        );
    }

    fn kills(secs: i64, count: f64, started: Option<i64>) -> Scrape {
        scrape(secs, |m| {
            m.oom_kills = Some(count);
            m.start_time = started.map(|s| at(s).as_second() as f64);
        })
    }

    /// Found on the real node (scenario n4): a fresh pod's first scrape came after a whole
    /// episode of 7 kills; as the baseline of an increase they were never seen.
    #[test]
    fn kills_before_the_first_scrape_of_a_young_container_count() {
        // The window began at 0; the container at 3; 7 kills, then the first scrape at 10.
        let young = [kills(10, 7.0, Some(3)), kills(15, 7.0, Some(3))];
        assert_eq!(oom_kills(&young, at(0)), Some(7.0));
        assert_eq!(
            super::aggregate("p", &young, at(0)).unwrap().oom_kills,
            Some(7.0)
        );
        // And the kills after it, once each.
        let more = [
            kills(10, 7.0, Some(3)),
            kills(15, 8.0, Some(3)),
            kills(20, 10.0, Some(3)),
        ];
        assert_eq!(oom_kills(&more, at(0)), Some(10.0));
        // Once the container's start has left the window, its first value is a baseline.
        assert_eq!(oom_kills(&more[1..], at(4)), Some(2.0));
    }

    /// An operator restart scrapes old containers for the first time: their old kills were
    /// seen (and answered) before, and must not raise the limit again.
    #[test]
    fn an_old_containers_kills_are_a_baseline() {
        let old = [kills(10, 7.0, Some(-600)), kills(15, 7.0, Some(-600))];
        assert_eq!(oom_kills(&old, at(0)), Some(0.0));
        let killed = [kills(10, 7.0, Some(-600)), kills(15, 9.0, Some(-600))];
        assert_eq!(oom_kills(&killed, at(0)), Some(2.0));
        // An older pacer without a start time: as `increase()` does.
        let unknown = [kills(10, 7.0, None), kills(15, 9.0, None)];
        assert_eq!(oom_kills(&unknown, at(0)), Some(2.0));
    }

    #[test]
    fn a_restarted_container_counts_from_zero() {
        // The counter went down: a new cgroup, its value counts whole.
        let down = [
            kills(10, 5.0, Some(-600)),
            kills(15, 6.0, Some(-600)),
            kills(20, 2.0, Some(17)),
        ];
        assert_eq!(oom_kills(&down, at(0)), Some(3.0));
        // A new start with a count no lower than before: a reset all the same.
        let up = [kills(10, 2.0, Some(-600)), kills(20, 3.0, Some(17))];
        assert_eq!(oom_kills(&up, at(0)), Some(3.0));
        // Without start times only a drop shows a reset, as in `increase()`.
        let blind = [kills(10, 2.0, None), kills(20, 3.0, None)];
        assert_eq!(oom_kills(&blind, at(0)), Some(1.0));
        // A scrape without the counter: nothing is claimed.
        assert_eq!(
            oom_kills(&[kills(10, 2.0, None), scrape(20, |_| {})], at(0)),
            None
        );
    }

    #[test]
    fn real_pacer_text_aggregates() {
        let first =
            PacerMetrics::from_samples(&prom_text::parse(prom_text::tests::PACER_TEXT).unwrap())
                .unwrap();
        let mut second = first.clone();
        second.job_seconds_sum += 6.0;
        second.job_count += 600.0;
        let p = aggregate(
            "p",
            &[
                Scrape {
                    at: at(0),
                    metrics: first,
                },
                Scrape {
                    at: at(30),
                    metrics: second,
                },
            ],
        )
        .unwrap();
        assert_eq!(p.busy_workers, 1.0_f64.max(6.0 / 30.0));
        assert_eq!(p.jobs_per_second, 20.0);
        assert_eq!(p.server_memory, Some(12_345_344));
        let workers: u64 = 24_117_248 + 23_592_960 + 23_068_672 * 2;
        assert_eq!(p.pod_memory_peak, Some(12_345_344 + workers));
    }
}
