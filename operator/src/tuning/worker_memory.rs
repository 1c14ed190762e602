//! `max_worker_memory` (`auto`): the safety net that recycles a worker grown far past its
//! normal size (pacer checks every `watch_tick` and replaces the worker once a healthy one
//! stands in).
//!
//! The normal size is the median worker's, not the 95th percentile: with a leak the high
//! percentiles are the leak, and a limit of 1.5 × them chases it upwards (`max_jobs`
//! bounds the median). Nor the warm size extrapolated from the growth per job: a step leak
//! (8 MiB at once) makes that slope steep and the intercept far too small, and a limit
//! below a healthy worker recycles the whole pool over and over. Stabilised like
//! `max_jobs`: changes within [`TOLERANCE`] are none, a raise at most once per
//! [`UP_PERIOD`], a cut by at most a quarter per [`DOWN_PERIOD`].

use std::time::Duration;

use jiff::Timestamp;

use crate::tuning::stats::ceil_u64;

/// `max_worker_memory` of `auto` before anything is measured.
pub const DEFAULT_MAX_WORKER_MEMORY: u64 = 128 * MIB;
/// Smallest `max_worker_memory` `auto` chooses.
pub const MIN_AUTO_MAX_WORKER_MEMORY: u64 = 32 * MIB;
/// `max_worker_memory` relative to a warm worker.
pub const MAX_WORKER_MEMORY_FACTOR: f64 = 1.5;
/// A new value within this fraction of the current one changes nothing.
pub const TOLERANCE: f64 = 0.25;
/// At most one raise per this period.
pub const UP_PERIOD: Duration = Duration::from_secs(600);
/// At most one cut per this period, by at most [`DOWN_MAX_FRACTION`].
pub const DOWN_PERIOD: Duration = Duration::from_secs(120);
/// Largest cut per step.
pub const DOWN_MAX_FRACTION: f64 = 0.25;

const MIB: u64 = 1024 * 1024;

/// The new `max_worker_memory` and why, or `None` to keep `current`. `median` is the
/// median worker's memory, `floor` the least the net may be (above the size `max_jobs`
/// recycles a leaking worker at), `share` the most a worker may have (with a fixed memory
/// limit).
#[must_use]
pub fn recommend(
    current: u64,
    median: Option<f64>,
    floor: Option<f64>,
    share: Option<u64>,
    last_change: Option<Timestamp>,
    now: Timestamp,
) -> Option<(u64, String)> {
    let base = median?;
    let wanted =
        ceil_u64((base * MAX_WORKER_MEMORY_FACTOR).max(floor.unwrap_or(0.0))).div_ceil(MIB) * MIB;
    let wanted = wanted
        .max(MIN_AUTO_MAX_WORKER_MEMORY)
        .min(share.map_or(u64::MAX, |s| s.max(MIN_AUTO_MAX_WORKER_MEMORY)));
    let since = |p: Duration| {
        last_change.is_none_or(|t| now.duration_since(t).as_secs_f64() >= p.as_secs_f64())
    };
    let cur = current as f64;
    let to = if (wanted as f64) > cur * (1.0 + TOLERANCE) && since(UP_PERIOD) {
        wanted
    } else if (wanted as f64) < cur * (1.0 - TOLERANCE) && since(DOWN_PERIOD) {
        wanted.max(ceil_u64(cur * (1.0 - DOWN_MAX_FRACTION)).div_ceil(MIB) * MIB)
    } else {
        return None;
    };
    let within = share.map_or(String::new(), |s| {
        format!(
            ", within its share {} of the pod's memory",
            crate::units::format_memory(s)
        )
    });
    Some((
        to,
        format!(
            "the median worker uses {}; recycle a worker above 1.5 × that{within}",
            crate::units::format_memory(ceil_u64(base))
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    const M: f64 = MIB as f64;

    #[test]
    fn from_the_median_worker_in_quarters() {
        let (to, why) = recommend(128 * MIB, Some(40.0 * M), None, None, None, t(0)).unwrap();
        assert_eq!(to, 96 * MIB, "a quarter at most per cut");
        assert!(why.contains("the median worker uses 40Mi"), "{why}");
        let (to, _) = recommend(96 * MIB, Some(40.0 * M), None, None, Some(t(-120)), t(0)).unwrap();
        assert_eq!(to, 72 * MIB);
        assert_eq!(recommend(96 * MIB, None, None, None, None, t(0)), None);
    }

    /// The net stays above the floor (what `max_jobs` lets a leaking worker reach): a young
    /// median after a cut cannot pull it below.
    #[test]
    fn never_below_the_floor() {
        // Median 40 MiB: 60 MiB wanted, a cut from 84 (to 63, a quarter at most); a floor of
        // 66 MiB keeps 84 (within the tolerance of 66).
        assert_eq!(
            recommend(84 * MIB, Some(40.0 * M), None, None, None, t(0))
                .unwrap()
                .0,
            63 * MIB
        );
        assert_eq!(
            recommend(84 * MIB, Some(40.0 * M), Some(66.0 * M), None, None, t(0)),
            None
        );
        // A floor above the net raises it (a 20 MiB median alone keeps 40 MiB).
        assert_eq!(
            recommend(40 * MIB, Some(20.0 * M), None, None, None, t(0)),
            None
        );
        assert_eq!(
            recommend(40 * MIB, Some(20.0 * M), Some(60.0 * M), None, None, t(0))
                .unwrap()
                .0,
            60 * MIB
        );
    }

    #[test]
    fn stable_and_slow() {
        // Within 25 %: nothing.
        assert_eq!(
            recommend(64 * MIB, Some(40.0 * M), None, None, None, t(0)),
            None
        );
        // A raise waits ten minutes after the last change.
        assert_eq!(
            recommend(40 * MIB, Some(40.0 * M), None, None, Some(t(-300)), t(0)),
            None
        );
        assert_eq!(
            recommend(40 * MIB, Some(40.0 * M), None, None, Some(t(-600)), t(0))
                .unwrap()
                .0,
            60 * MIB
        );
        // A fixed limit's share caps it.
        assert_eq!(
            recommend(128 * MIB, Some(40.0 * M), None, Some(50 * MIB), None, t(0))
                .unwrap()
                .0,
            96 * MIB
        );
        assert_eq!(
            recommend(60 * MIB, Some(40.0 * M), None, Some(30 * MIB), None, t(0))
                .unwrap()
                .0,
            45 * MIB
        );
    }
}
