//! The jobs pool's numbers from pacer's exposition (docs/operations.md): queue depth,
//! acknowledged jobs and busy jobs workers of one scrape, and the window between two
//! scrapes as [`crate::jobs_tuning::JobsObservation`]. Pure.

use super::prom_text::Sample;
use crate::jobs_tuning::JobsObservation;

/// The jobs pool's series of one pod, from one scrape.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct JobsMetrics {
    /// `pacer_pipeline_depth`, summed over pipelines (absent while no broker can say).
    pub depth: Option<f64>,
    /// `pacer_pipeline_jobs_total{event="acked"}`, summed over pipelines.
    pub acked: f64,
    /// `pacer_workers{pool="jobs",state="working"}`.
    pub working: f64,
    /// `pacer_pool_target_workers{pool="jobs"}`: the size the pod has received.
    pub target_workers: Option<f64>,
}

impl JobsMetrics {
    /// Picks the jobs series out of a parsed exposition; `None` when the pod runs no jobs
    /// pool.
    #[must_use]
    pub fn from_samples(samples: &[Sample]) -> Option<Self> {
        let mut m = Self::default();
        let mut seen = false;
        for s in samples {
            match s.name.as_str() {
                "pacer_pipeline_depth" => *m.depth.get_or_insert(0.0) += s.value,
                "pacer_pipeline_jobs_total" if s.label("event") == Some("acked") => {
                    m.acked += s.value;
                }
                "pacer_workers" if s.label("pool") == Some("jobs") => {
                    seen = true;
                    if s.label("state") == Some("working") {
                        m.working += s.value;
                    }
                }
                "pacer_pool_target_workers" if s.label("pool") == Some("jobs") => {
                    m.target_workers = Some(s.value);
                }
                _ => {}
            }
        }
        seen.then_some(m)
    }
}

/// One pod's jobs series at the start and the end of its window.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct JobsWindow {
    /// The window's first scrape.
    pub first: JobsMetrics,
    /// Its last scrape.
    pub last: JobsMetrics,
    /// Seconds between the two.
    pub seconds: f64,
}

/// The windows of every pod, as the jobs recommendation reads them: depth at the end and
/// its growth (the largest pod's: a broker queue is shared, every pod reports it), acked
/// rate (a counter reset — a restarted pod — counts from zero), busy workers as the mean
/// of the two ends.
#[must_use]
pub fn observation(pods: &[JobsWindow]) -> JobsObservation {
    let mut o = JobsObservation {
        depth: 0.0,
        depth_growth: 0.0,
        acked_per_second: 0.0,
        busy_workers: 0.0,
    };
    let mut growth: Option<f64> = None;
    for JobsWindow {
        first,
        last,
        seconds,
    } in pods
    {
        let seconds = seconds.max(1.0);
        let end = last.depth.unwrap_or(0.0);
        o.depth = o.depth.max(end);
        let g = (end - first.depth.unwrap_or(end)) / seconds;
        growth = Some(growth.map_or(g, |x| x.max(g)));
        let acked = if last.acked >= first.acked {
            last.acked - first.acked
        } else {
            last.acked
        };
        o.acked_per_second += acked / seconds;
        o.busy_workers += (first.working + last.working) / 2.0;
    }
    o.depth_growth = growth.unwrap_or(0.0);
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics_source::prom_text::parse;

    const SCRAPE: &str = r#"# TYPE pacer_workers gauge
pacer_workers{pool="http",state="working"} 3
pacer_workers{pool="jobs",state="ready"} 1
pacer_workers{pool="jobs",state="working"} 3
pacer_pool_target_workers{pool="http"} 8
pacer_pool_target_workers{pool="jobs"} 4
pacer_pipeline_depth{pipeline="emails"} 1500
pacer_pipeline_depth{pipeline="sms"} 20
pacer_pipeline_jobs_total{pipeline="emails",event="pushed"} 9000
pacer_pipeline_jobs_total{pipeline="emails",event="acked"} 7000
pacer_pipeline_jobs_total{pipeline="sms",event="acked"} 300
"#;

    #[test]
    fn picks_the_jobs_series_only() {
        let m = JobsMetrics::from_samples(&parse(SCRAPE).unwrap()).unwrap();
        assert_eq!(
            m,
            JobsMetrics {
                depth: Some(1520.0),
                acked: 7300.0,
                working: 3.0,
                target_workers: Some(4.0),
            }
        );
        let http_only = "pacer_workers{pool=\"http\",state=\"working\"} 3\n";
        assert_eq!(JobsMetrics::from_samples(&parse(http_only).unwrap()), None);
    }

    #[test]
    fn a_window_reads_depth_rate_and_busy_workers() {
        let at = |depth: f64, acked: f64, working: f64| JobsMetrics {
            depth: Some(depth),
            acked,
            working,
            target_workers: Some(4.0),
        };
        // Two pods share one queue (each reports its depth): the queue is counted once.
        let w = |first, last| JobsWindow {
            first,
            last,
            seconds: 60.0,
        };
        let o = observation(&[
            w(at(2000.0, 100.0, 4.0), at(1400.0, 400.0, 4.0)),
            w(at(2000.0, 50.0, 2.0), at(1400.0, 350.0, 4.0)),
        ]);
        assert_eq!(o.depth, 1400.0);
        assert_eq!(o.depth_growth, -10.0);
        assert_eq!(o.acked_per_second, 10.0);
        assert_eq!(o.busy_workers, 7.0);
        // A restarted pod's counter starts again at 0.
        let o = observation(&[w(at(0.0, 500.0, 0.0), at(0.0, 60.0, 1.0))]);
        assert_eq!(o.acked_per_second, 1.0);
    }
}
