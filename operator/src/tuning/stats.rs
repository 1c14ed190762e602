//! Small statistics over samples: percentiles and medians, and saturating conversions.

/// Nearest-rank percentile (`p` in 0..=1) of the values; `None` when empty.
#[must_use]
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let rank = (p.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.saturating_sub(1)).copied()
}

/// Median of the values (mean of the middle two for an even count); `None` when empty.
#[must_use]
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted.get(mid).copied()
    } else {
        Some((sorted[mid - 1] + sorted[mid]) / 2.0)
    }
}

/// `x` rounded up into `u32`, saturating at the ends (NaN → 0).
#[must_use]
pub fn ceil_u32(x: f64) -> u32 {
    if x.is_nan() || x <= 0.0 {
        0
    } else if x >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        x.ceil() as u32
    }
}

/// `x` rounded up into `u64`, saturating at the ends (NaN → 0).
#[must_use]
pub fn ceil_u64(x: f64) -> u64 {
    if x.is_nan() || x <= 0.0 {
        0
    } else if x >= u64::MAX as f64 {
        u64::MAX
    } else {
        x.ceil() as u64
    }
}

/// `x` rounded down into `u64`, saturating at the ends (NaN → 0).
#[must_use]
pub fn floor_u64(x: f64) -> u64 {
    if x.is_nan() || x <= 0.0 {
        0
    } else if x >= u64::MAX as f64 {
        u64::MAX
    } else {
        x.floor() as u64
    }
}

/// Clamps into `[lo, hi]`; when the bounds cross, `lo` wins (a floor set by the user's spec
/// outranks a ceiling derived from measurements).
#[must_use]
pub fn clamp_floor_wins<T: Ord + Copy>(x: T, lo: T, hi: T) -> T {
    x.min(hi).max(lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.95), Some(95.0));
        assert_eq!(percentile(&v, 1.0), Some(100.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[7.0], 0.95), Some(7.0));
        assert_eq!(percentile(&[], 0.95), None);
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 0.5), Some(2.0));
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN]), None);
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn conversions_saturate() {
        assert_eq!(ceil_u32(2.1), 3);
        assert_eq!(ceil_u32(-1.0), 0);
        assert_eq!(ceil_u32(f64::NAN), 0);
        assert_eq!(ceil_u32(1e20), u32::MAX);
        assert_eq!(floor_u64(2.9), 2);
        assert_eq!(ceil_u64(2.0), 2);
    }

    #[test]
    fn floor_wins_when_bounds_cross() {
        assert_eq!(clamp_floor_wins(5, 1, 10), 5);
        assert_eq!(clamp_floor_wins(50, 1, 10), 10);
        assert_eq!(clamp_floor_wins(5, 8, 3), 8);
    }
}
