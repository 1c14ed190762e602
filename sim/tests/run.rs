//! Whole runs of the simulator: deterministic, and driving the real tuner.

use pacer_sim::trace::{self, HOUR};
use pacer_sim::{run, score};

fn short(mut t: trace::Trace, hours: f64) -> trace::Trace {
    t.duration = hours * HOUR;
    t
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let t = short(trace::node_loss(), 3.0);
    let a = run::run(&t).unwrap();
    let b = run::run(&t).unwrap();
    assert_eq!(a.minutes, b.minutes);
    assert_eq!(a.changes, b.changes);
    assert_eq!(a.minutes.len(), 180);
}

#[test]
fn another_seed_gives_another_run() {
    let t = short(trace::node_loss(), 3.0);
    let mut other = t.clone();
    other.seed += 100;
    let a = run::run(&t).unwrap();
    let b = run::run(&other).unwrap();
    assert_ne!(a.minutes, b.minutes);
}

/// The operator's decisions reach the pods: the workers the pods run follow what the
/// status says, and traffic is served.
#[test]
fn the_tuner_is_in_the_loop() {
    let t = short(trace::daily_week(), 12.0);
    let r = run::run(&t).unwrap();
    assert!(!r.changes.is_empty(), "the tuner changed nothing");
    let last = r.minutes.last().unwrap();
    assert!(last.workers >= 2.0 && last.workers <= 16.0);
    let served: f64 = r.minutes.iter().map(|m| m.arrivals - m.failed).sum();
    assert!(served > 1e6, "{served}");
    // Traffic rises towards noon: the pool grows with it.
    let night = &r.minutes[4 * 60];
    let noon = &r.minutes[11 * 60 + 59];
    assert!(
        noon.workers * noon.pods > night.workers * night.pods,
        "night {night:?} noon {noon:?}"
    );
    let s = score::score(&r);
    assert!(s.slo > 50.0 && s.slo <= 100.0, "{s:?}");
}
