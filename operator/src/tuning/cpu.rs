//! The CPU clamp: how many workers a pod's CPU limit runs.
//!
//! A busy worker uses `c` cores (CPU time ÷ busy time; the rest of its job it waits on
//! I/O), so the limit runs `limit × CPU_OVERCOMMIT ÷ c` of them at full speed. Under
//! throttling that measurement lies: jobs stretch while they wait for quota, so CPU ÷ busy
//! reads `limit ÷ workers`, and every added worker would lower the estimate and raise the
//! ceiling — a ratchet with no gain in throughput. So:
//! * `c` is learned only from rounds throttled in at most [`THROTTLE_CLEAN`] of the CFS
//!   periods (from the cgroup's `cpu.stat`; bursts get throttled long before the average
//!   reaches the limit, so some throttling is normal) and remembered (in the status);
//! * a more throttled round uses the larger of the remembered and the measured value;
//! * while a pod is throttled in more than [`THROTTLE_HIGH`] of the periods, workers per
//!   pod do not grow: pods do.
//!
//! **Pods from CPU headroom** ([`pods_for`]): the workers' target utilisation is the wrong
//! yardstick against a quota. CFS hands out the quota per 100 ms period, so a pod is
//! throttled in the periods its bursts exceed the quota long before its average reaches
//! it, and a throttled job waits for the next period — every job on the pod stretches,
//! busy workers rise steeply, and a pod at 70 % of its workers near the clamp is at its
//! end. So the pods are counted from the cores the load asks for at [`CPU_TARGET`] of the
//! quota (where the periods a pod is throttled in stay around [`THROTTLE_CLEAN`]), and the
//! workers per pod follow; a pod then runs fewer workers, which only waited for CPU.

/// Workers the CPU limit may run per core a busy worker uses: all of them busy use the
/// whole limit, so at the usual target utilisation (70 %) they use 70 % of it. Closer to
/// the limit the quota throttles bursts and stretches every job (found with the
/// simulator: at 1.25, pods ran at ~90 % of their quota and queued in every burst).
pub const CPU_OVERCOMMIT: f64 = 1.0;
/// Share of its CPU limit a pod's workers are planned to use on average (below the
/// workers' target utilisation when that is lower): bursts within a 100 ms CFS period
/// exceed the quota long before the average does. Found with the simulator (`make sim`,
/// `cpu-limit`): at 70 % of 4 cores pods were throttled in ~45 % of the periods and
/// stretched every job ×1.4; at 60 % in ~30 % (×1.2).
pub const CPU_TARGET: f64 = 0.6;
/// Pods come off only when the load fits the fewer pods at this share of their limit: a
/// pod added under a CPU limit starts with cold workers (CPU per job up to 2× while opcache
/// and the framework's caches fill) and queues until they warm, so every pod that goes
/// and comes again costs latency.
pub const CPU_TARGET_DOWN: f64 = 0.5;
/// Busy workers (summed over pods) below which the CPU of a busy worker is not estimated.
pub const MIN_BUSY_FOR_CPU: f64 = 0.2;
/// Share of throttled periods up to which a round's CPU per busy worker is trusted.
pub const THROTTLE_CLEAN: f64 = 0.3;
/// Share of throttled periods above which workers per pod never grow.
pub const THROTTLE_HIGH: f64 = 0.5;
/// Weight of a clean round in the remembered CPU per busy worker.
const LEARNING_RATE: f64 = 0.2;

/// What the CPU allows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Clamp {
    /// Workers per pod the limit runs.
    pub workers: u32,
    /// Cores per busy worker used for it.
    pub per_worker: f64,
    /// The pods' share of throttled periods, if reported.
    pub throttled: Option<f64>,
    /// Held at the current workers (throttled, or nothing clean known yet).
    pub held: bool,
}

/// The CPU clamp for a limit of `limit_millis`, from this round's measured cores per busy
/// worker and share of throttled periods, the remembered clean value (updated here) and
/// the workers per pod now.
#[must_use]
pub fn clamp(
    limit_millis: u64,
    measured: Option<f64>,
    throttled: Option<f64>,
    remembered: &mut Option<f64>,
    current_workers: u32,
) -> Option<Clamp> {
    let clean = throttled.is_none_or(|s| s <= THROTTLE_CLEAN);
    if clean && let Some(m) = measured {
        *remembered = Some(remembered.map_or(m, |r| r + LEARNING_RATE * (m - r)));
    }
    let per_worker = if clean {
        measured.or(*remembered)?
    } else {
        match (measured, *remembered) {
            (Some(m), Some(r)) => m.max(r),
            (m, r) => m.or(r)?,
        }
    };
    let cores = limit_millis as f64 / 1000.0;
    let by_cpu = (cores * CPU_OVERCOMMIT / per_worker.max(0.01))
        .floor()
        .max(1.0);
    let by_cpu = if by_cpu >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        by_cpu as u32
    };
    let held = throttled.is_some_and(|s| s > THROTTLE_HIGH);
    let workers = if held {
        by_cpu.min(current_workers.max(1))
    } else {
        by_cpu
    };
    Some(Clamp {
        workers,
        per_worker,
        throttled,
        held,
    })
}

/// Pods that give the load's `cores` (what the workers of all pods ask for) room at
/// [`CPU_TARGET`] (or `target`, if lower) of a pod's limit of `limit_millis`.
#[must_use]
pub fn pods_for(cores: f64, limit_millis: u64, target: f64) -> u32 {
    let per_pod = limit_millis as f64 / 1000.0 * target.min(CPU_TARGET);
    if per_pod <= 0.0 || !cores.is_finite() || cores <= 0.0 {
        return 1;
    }
    let pods = (cores / per_pod - 1e-9).ceil().max(1.0);
    if pods >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        pods as u32
    }
}

/// Pods the CPU asks for with `current` pods running: enough for [`CPU_TARGET`] (see
/// [`pods_for`]), and no fewer than `current` unless the load fits the fewer pods at
/// [`CPU_TARGET_DOWN`] of their limit.
#[must_use]
pub fn pods_needed(cores: f64, limit_millis: u64, target: f64, current: u32) -> u32 {
    let up = pods_for(cores, limit_millis, target);
    let scale = CPU_TARGET_DOWN / CPU_TARGET;
    let keep = pods_for(cores, limit_millis, target.min(CPU_TARGET) * scale).min(current);
    up.max(keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Up at 60 % of the quota, down only below 50 %: a pod that goes and comes again
    /// starts cold.
    #[test]
    fn fewer_pods_only_well_below_the_cpu_target() {
        // 11 cores: 5 pods, whether from 4 or from 5.
        assert_eq!(pods_needed(11.0, 4000, 0.7, 4), 5);
        assert_eq!(pods_needed(11.0, 4000, 0.7, 5), 5);
        // 9 cores fit 4 pods at 56 %: from 3 up to 4, but 5 stay (45 % at 5, 56 % at 4).
        assert_eq!(pods_needed(9.0, 4000, 0.7, 3), 4);
        assert_eq!(pods_needed(9.0, 4000, 0.7, 5), 5);
        // 7.5 cores fit 4 pods at 47 %: 5 become 4.
        assert_eq!(pods_needed(7.5, 4000, 0.7, 5), 4);
    }

    #[test]
    fn pods_give_the_cpu_headroom_below_the_quota() {
        // 11 cores asked of pods limited to 4: 4 pods would run at 69 % of their quota
        // (throttled in most bursts); at 60 % it takes 5.
        assert_eq!(pods_for(11.0, 4000, 0.7), 5);
        assert_eq!(pods_for(9.6, 4000, 0.7), 4);
        // A lower target utilisation of the workers also lowers the CPU's.
        assert_eq!(pods_for(9.6, 4000, 0.4), 6);
        // No CPU used: one pod (the replica bounds decide the rest).
        assert_eq!(pods_for(0.0, 4000, 0.7), 1);
    }

    #[test]
    fn clean_rounds_teach_the_cost_of_a_worker() {
        let mut r = None;
        // 0.4 cores per busy worker against 2 cores: 2 ÷ 0.4 = 5 workers.
        let c = clamp(2000, Some(0.4), Some(0.0), &mut r, 4).unwrap();
        assert_eq!((c.workers, c.held), (5, false));
        assert_eq!(r, Some(0.4));
        // Without throttling data (an older pacer) a round counts as clean.
        let c = clamp(2000, Some(0.5), None, &mut r, 4).unwrap();
        assert_eq!(c.workers, 4);
        assert!((r.unwrap() - 0.42).abs() < 1e-9);
    }

    /// The ratchet: under throttling CPU ÷ busy reads limit ÷ workers.
    #[test]
    fn throttled_rounds_do_not_ratchet() {
        let mut r = Some(0.4);
        // 10 throttled workers on 2 cores read 0.2 cores each: still 5, and held.
        let c = clamp(2000, Some(0.2), Some(0.6), &mut r, 10).unwrap();
        assert_eq!((c.workers, c.held), (5, true));
        assert_eq!(r, Some(0.4), "throttled rounds teach nothing");
        // Moderately throttled: the remembered value still rules.
        let c = clamp(2000, Some(0.3), Some(0.4), &mut r, 4).unwrap();
        assert_eq!((c.workers, c.held), (5, false));
    }

    #[test]
    fn heavily_throttled_with_nothing_clean_known_holds() {
        let mut r = None;
        let c = clamp(2000, Some(0.2), Some(0.6), &mut r, 6).unwrap();
        assert_eq!((c.workers, c.held), (6, true));
        assert_eq!(r, None);
        // No measurement at all: no clamp.
        assert_eq!(clamp(2000, None, Some(0.4), &mut None, 6), None);
    }
}
