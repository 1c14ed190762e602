//! Per-pipeline counters and histograms, updated lock-free by the consumer, and their
//! Prometheus families (`pacer_pipeline_*{pipeline}`; the label is bounded by the
//! pipelines configured or declared).

use std::sync::atomic::{AtomicI64, Ordering};

use crate::metrics::text::{Kind, Text};
use crate::stats::{Counter, Histogram};

#[derive(Debug)]
pub struct PipelineStats {
    /// Jobs stored through `jobs.Push`/`PushBatch`.
    pub pushed: Counter,
    /// Deliveries handed to a worker.
    pub consumed: Counter,
    /// Deliveries that ended acknowledged.
    pub acked: Counter,
    /// Deliveries that failed (PHP error, nack without requeue, retries exhausted).
    pub failed: Counter,
    /// Deliveries given back for another try (requeue, worker died).
    pub requeued: Counter,
    /// Time on the worker.
    pub duration: Histogram,
    /// Time from push (or the end of its delay) to delivery.
    pub queue_wait: Histogram,
    /// Jobs ready in the broker at the last look (-1: the broker cannot say).
    pub depth: AtomicI64,
}

impl Default for PipelineStats {
    fn default() -> Self {
        PipelineStats {
            pushed: Counter::default(),
            consumed: Counter::default(),
            acked: Counter::default(),
            failed: Counter::default(),
            requeued: Counter::default(),
            duration: Histogram::default(),
            queue_wait: Histogram::default(),
            depth: AtomicI64::new(-1),
        }
    }
}

/// Renders every pipeline's counters.
pub(crate) fn render(t: &mut Text, pipelines: &[(String, std::sync::Arc<PipelineStats>)]) {
    t.family(
        "pacer_pipeline_jobs_total",
        "Jobs by pipeline and event: pushed (stored by a producer), consumed (handed to a worker), acked, failed, requeued.",
        Kind::Counter,
    );
    for (name, s) in pipelines {
        for (event, c) in [
            ("pushed", &s.pushed),
            ("consumed", &s.consumed),
            ("acked", &s.acked),
            ("failed", &s.failed),
            ("requeued", &s.requeued),
        ] {
            t.sample_u64(
                "pacer_pipeline_jobs_total",
                &[("pipeline", name), ("event", event)],
                c.get(),
            );
        }
    }
    t.family(
        "pacer_pipeline_depth",
        "Jobs ready in the pipeline's broker queue (sampled every few seconds; absent when the broker cannot say).",
        Kind::Gauge,
    );
    for (name, s) in pipelines {
        let depth = s.depth.load(Ordering::Relaxed);
        if depth >= 0 {
            t.sample_u64(
                "pacer_pipeline_depth",
                &[("pipeline", name)],
                depth.unsigned_abs(),
            );
        }
    }
    t.family(
        "pacer_pipeline_job_duration_seconds",
        "Time a job spent on its worker.",
        Kind::Histogram,
    );
    for (name, s) in pipelines {
        t.histogram(
            "pacer_pipeline_job_duration_seconds",
            &[("pipeline", name)],
            &s.duration.snapshot(),
        );
    }
    t.family(
        "pacer_pipeline_queue_wait_seconds",
        "Time a job waited in its broker between push (or the end of its delay) and delivery.",
        Kind::Histogram,
    );
    for (name, s) in pipelines {
        t.histogram(
            "pacer_pipeline_queue_wait_seconds",
            &[("pipeline", name)],
            &s.queue_wait.snapshot(),
        );
    }
}
