//! Moving a count (workers per pod, pods) towards a recommendation: up fast but in steps,
//! down slowly.
//!
//! * **Tolerance**: within ±[`TOLERANCE`] of the current value nothing changes.
//! * **Up**: at once, but at most to `max(2 × current, current + 4)` per decision, as the
//!   HorizontalPodAutoscaler's default scale-up policy allows (a measurement taken during
//!   overload overstates what is needed; the next round corrects with fresh numbers).
//! * **Down**: no lower than the largest recommendation of the stabilisation window, at
//!   most once per [`SCALE_DOWN_PERIOD`], by at most [`SCALE_DOWN_MAX_FRACTION`] (at
//!   least one).

use std::time::Duration;

use jiff::Timestamp;

use crate::tuning::stats::floor_u64;

/// A recommendation within this fraction of the current value changes nothing.
pub const TOLERANCE: f64 = 0.10;
/// At most one decrease of workers or replicas per this period.
pub const SCALE_DOWN_PERIOD: Duration = Duration::from_secs(60);
/// At most this fraction of the pool (and at least one) is removed per decrease.
pub const SCALE_DOWN_MAX_FRACTION: f64 = 0.2;
/// An increase at most multiplies the count by this …
pub const SCALE_UP_MAX_FACTOR: u32 = 2;
/// … or adds this many, whichever is more.
pub const SCALE_UP_MIN_STEP: u32 = 4;

/// `true` when `wanted` is within the tolerance of `current`.
#[must_use]
pub fn within_tolerance(current: u64, wanted: u64) -> bool {
    let current_f = current as f64;
    (wanted as f64 - current_f).abs() <= current_f * TOLERANCE
}

/// Seconds from `since` to `now` (0 when `since` is later).
#[must_use]
pub fn elapsed(since: Option<Timestamp>, now: Timestamp) -> Option<Duration> {
    since.map(|t| {
        let d = now.duration_since(t);
        if d.is_negative() {
            Duration::ZERO
        } else {
            d.unsigned_abs()
        }
    })
}

/// The largest value one increase may reach from `current`.
#[must_use]
pub fn step_up_limit(current: u32) -> u32 {
    current
        .saturating_mul(SCALE_UP_MAX_FACTOR)
        .max(current.saturating_add(SCALE_UP_MIN_STEP))
}

/// Outcome of stabilising one count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stabilized {
    /// The value to use.
    pub value: u32,
    /// The recommendation was lower but the window or the rate limit held it.
    pub held: bool,
    /// The recommendation was higher than one step allows.
    pub stepped: bool,
}

/// Up at once (one step at most); down no lower than the window's largest recommendation,
/// at most one step per [`SCALE_DOWN_PERIOD`].
#[must_use]
pub fn stabilize(
    current: u32,
    recommended: u32,
    window_max: u32,
    last_scale_down: Option<Timestamp>,
    now: Timestamp,
) -> Stabilized {
    if recommended >= current {
        let limit = step_up_limit(current);
        return Stabilized {
            value: recommended.min(limit),
            held: false,
            stepped: recommended > limit,
        };
    }
    let held = |value| Stabilized {
        value,
        held: true,
        stepped: false,
    };
    let floor = window_max.max(recommended);
    if floor >= current {
        return held(current);
    }
    if elapsed(last_scale_down, now).is_some_and(|e| e < SCALE_DOWN_PERIOD) {
        return held(current);
    }
    let step = (floor_u64(f64::from(current) * SCALE_DOWN_MAX_FRACTION) as u32).max(1);
    let value = floor.max(current.saturating_sub(step));
    Stabilized {
        value,
        held: value > recommended,
        stepped: false,
    }
}

/// Square-root staffing margin (Halfin–Whitt): a pool of `a` busy workers on average
/// needs about `a + β·√a` workers for requests to rarely wait, whatever the target
/// utilisation says.
pub const SMALL_POOL_BETA: f64 = 1.0;

/// Workers a pod whose load keeps `busy` workers busy needs so that requests rarely wait:
/// `busy + β·√busy` ([`SMALL_POOL_BETA`]). Above ~8 busy workers the target utilisation
/// asks for more anyway; below it a pool sized at 70 % queues: `make sim`, `daily-week`,
/// weekend nights: 3 workers for 2 busy ones, 1–5 % of the requests over 250 ms.
#[must_use]
pub fn small_pool_floor(busy: f64) -> u32 {
    if !busy.is_finite() || busy <= 0.0 {
        return 0;
    }
    crate::tuning::stats::ceil_u32(busy + SMALL_POOL_BETA * busy.sqrt() - 1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    #[test]
    fn increases_are_stepped_like_the_hpa() {
        let table = [
            // (current, recommended, value, stepped)
            (4, 6, 6, false),
            (4, 40, 8, true),
            (1, 30, 5, true),
            (10, 40, 20, true),
            (10, 12, 12, false),
        ];
        for (current, recommended, value, stepped) in table {
            let s = stabilize(current, recommended, 0, None, t(0));
            assert_eq!(
                (s.value, s.stepped),
                (value, stepped),
                "{current} → {recommended}"
            );
        }
    }

    #[test]
    fn decreases_wait_for_the_window_and_the_rate() {
        // The window saw 10: held; it saw 9: no lower than 9.
        assert_eq!(stabilize(10, 2, 10, None, t(0)).value, 10);
        assert_eq!(stabilize(10, 2, 9, None, t(0)).value, 9);
        // Nothing in the window: 20 % at a time.
        assert_eq!(stabilize(10, 2, 0, None, t(0)).value, 8);
        // Too soon after the last decrease.
        assert_eq!(stabilize(10, 2, 0, Some(t(-30)), t(0)).value, 10);
        assert_eq!(stabilize(10, 2, 0, Some(t(-60)), t(0)).value, 8);
    }

    #[test]
    fn tolerance() {
        assert!(within_tolerance(10, 11));
        assert!(!within_tolerance(10, 12));
        assert!(within_tolerance(0, 0));
    }
}
