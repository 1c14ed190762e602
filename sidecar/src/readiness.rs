//! Saturation readiness (`pacer.readiness.mode: saturation`, opt-in): `/ready` turns
//! 503 while the request queue has stayed long for a while, so a load balancer that
//! follows readiness sends new connections to other pods. The default mode,
//! `accepting`, keeps a busy pod ready (queueing beats being taken out of a Service).
//!
//! [`Saturation`] is the pure core: fed queue depths with the time they were seen, it
//! flips to saturated once the depth has stayed at or above `queue_high` for `high_for`,
//! and back once it has stayed at or below `queue_low` for `low_for`. The two levels and
//! the two durations are the hysteresis: a pod does not flap in and out of the Service
//! on every burst. [`watch`] samples the pool every [`SAMPLE_EVERY`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::SaturationConfig;
use crate::pool::Pool;

/// How often [`watch`] reads the queue depth.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// The saturation detector (pure; `now` is passed in).
#[derive(Clone, Debug)]
pub struct Saturation {
    settings: SaturationConfig,
    saturated: bool,
    /// Since when the depth has been on the far side of the level that would flip the
    /// state (above `queue_high` while ready, below `queue_low` while saturated).
    crossing_since: Option<Instant>,
}

impl Saturation {
    pub fn new(settings: SaturationConfig) -> Self {
        Saturation {
            settings,
            saturated: false,
            crossing_since: None,
        }
    }

    pub fn is_saturated(&self) -> bool {
        self.saturated
    }

    /// Takes one sample of the queue depth; returns whether the pod is saturated now.
    pub fn observe(&mut self, depth: usize, now: Instant) -> bool {
        let (crossing, hold) = if self.saturated {
            (depth <= self.settings.queue_low, self.settings.low_for)
        } else {
            (depth >= self.settings.queue_high, self.settings.high_for)
        };
        if !crossing {
            self.crossing_since = None;
            return self.saturated;
        }
        let since = *self.crossing_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= hold {
            self.saturated = !self.saturated;
            self.crossing_since = None;
        }
        self.saturated
    }
}

/// The flag `/ready` reads.
#[derive(Debug, Default)]
pub struct SaturationFlag(AtomicBool);

impl SaturationFlag {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Samples `pool`'s queue depth until `stop`, keeping `flag` up to date (and logging
/// each change, as it takes the pod out of or back into its Service).
pub async fn watch(
    pool: Pool,
    settings: SaturationConfig,
    flag: Arc<SaturationFlag>,
    stop: CancellationToken,
) {
    let mut detector = Saturation::new(settings);
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            now = tick.tick() => {
                let depth = pool.queue_depth();
                let was = detector.is_saturated();
                let is = detector.observe(depth, now);
                if is != was {
                    flag.0.store(is, Ordering::Relaxed);
                    if is {
                        tracing::warn!(depth, "saturated: /ready answers 503 until the queue drains");
                    } else {
                        tracing::info!(depth, "no longer saturated: /ready answers 200 again");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SaturationConfig {
        SaturationConfig {
            queue_high: 10,
            queue_low: 2,
            high_for: Duration::from_secs(5),
            low_for: Duration::from_secs(10),
        }
    }

    /// Feeds `depth` every 100 ms for `secs`; returns the state at the end.
    fn hold(s: &mut Saturation, start: &mut Instant, depth: usize, secs: f64) -> bool {
        let steps = (secs * 10.0).round() as u32;
        let mut state = s.is_saturated();
        for _ in 0..steps {
            *start += SAMPLE_EVERY;
            state = s.observe(depth, *start);
        }
        state
    }

    #[test]
    fn saturated_only_after_the_queue_stays_high_for_high_for() {
        let mut s = Saturation::new(settings());
        let mut t = Instant::now();
        assert!(!hold(&mut s, &mut t, 50, 4.8));
        // A dip below the high level restarts the clock.
        assert!(!hold(&mut s, &mut t, 9, 0.1));
        assert!(!hold(&mut s, &mut t, 10, 4.9));
        assert!(hold(&mut s, &mut t, 10, 0.2));
    }

    #[test]
    fn ready_again_only_after_the_queue_stays_low_for_low_for() {
        let mut s = Saturation::new(settings());
        let mut t = Instant::now();
        assert!(hold(&mut s, &mut t, 20, 5.1));
        // Between the levels: the state holds (hysteresis), however long.
        assert!(hold(&mut s, &mut t, 5, 60.0));
        assert!(hold(&mut s, &mut t, 2, 9.9));
        // A burst restarts the clock.
        assert!(hold(&mut s, &mut t, 3, 0.1));
        assert!(hold(&mut s, &mut t, 0, 9.9));
        assert!(!hold(&mut s, &mut t, 0, 0.2));
        // And it does not flip back on the first high sample.
        assert!(!hold(&mut s, &mut t, 10, 1.0));
    }

    #[test]
    fn bursts_shorter_than_high_for_never_take_the_pod_out() {
        let mut s = Saturation::new(settings());
        let mut t = Instant::now();
        for _ in 0..100 {
            assert!(!hold(&mut s, &mut t, 100, 3.0));
            assert!(!hold(&mut s, &mut t, 0, 0.5));
        }
    }
}
