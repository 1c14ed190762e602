//! One trace from start to end: the cluster steps every second, the operator reconciles
//! when its last plan asked to be woken, the recorder keeps the minutes.
//!
//! The app starts [`WARM_UP`] before the trace (Sunday evening), so that the trace begins
//! with a running, tuned app rather than with a cold start; the warm-up is not recorded.

use crate::cluster::Cluster;
use crate::operator::{Error, Operator, pool_config};
use crate::record::{Change, Minute, Recorder};
use crate::trace::{HOUR, Trace};

/// Seconds the app runs before the trace starts.
pub const WARM_UP: f64 = 2.0 * HOUR;

/// The outcome of one trace.
#[derive(Debug)]
pub struct Run {
    /// The trace.
    pub trace: Trace,
    /// One record per minute.
    pub minutes: Vec<Minute>,
    /// Every applied tuning change.
    pub changes: Vec<Change>,
    /// Tuning interval, seconds.
    pub interval: f64,
    /// Stabilisation window, seconds.
    pub window: f64,
    /// Workers per pod allowed by the spec.
    pub workers_max: u32,
    /// Pods allowed by the spec.
    pub replicas_max: u32,
    /// Target utilisation of the spec.
    pub target_utilization: f64,
    /// CPU limit per pod, cores.
    pub cpu_limit: Option<f64>,
}

/// Runs a trace.
///
/// # Errors
/// [`Error::Spec`] when the trace's spec does not parse.
pub fn run(trace: &Trace) -> Result<Run, Error> {
    let mut operator = Operator::new(trace)?;
    let initial = operator.initial();
    let mut cluster = Cluster::new(
        trace,
        pool_config(&initial),
        initial.replicas,
        initial.memory_limit as f64,
        operator.cpu_limit(),
    );
    let mut recorder = Recorder::new(trace.slo_wait);
    let mut restarts = trace.operator_restarts.iter().copied().peekable();
    let (first, last) = (-WARM_UP.round() as i64, trace.duration.round() as i64);
    for step in first..last {
        let t = step as f64;
        if restarts.next_if(|&r| t >= r).is_some() {
            operator.restart();
        }
        operator.tick(&mut cluster, t)?;
        let second = cluster.step(t);
        if cluster.take_created() {
            // The Deployment's status changed: the controller reconciles (and resizes the
            // new pods) within a couple of seconds.
            operator.wake(t + 2.0);
        }
        if t >= 0.0 {
            recorder.second(t, &second, &cluster, operator.decided());
        }
    }
    operator.changes.retain(|c| c.t >= 0.0);
    let policy = operator.config().policy.clone();
    Ok(Run {
        trace: trace.clone(),
        minutes: recorder.minutes().to_vec(),
        changes: std::mem::take(&mut operator.changes),
        interval: operator.interval(),
        window: operator.stabilization_window(),
        workers_max: policy.workers.max,
        replicas_max: policy.replicas.max,
        target_utilization: policy.target_utilization,
        cpu_limit: operator.cpu_limit(),
    })
}
