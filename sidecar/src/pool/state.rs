//! The pool's books, behind its one short-held mutex: the live workers and their slots,
//! the idle list, the waiters, spawn and stop counts, and the spawn backoff. Plain data
//! and small decisions (who is retired, who gets a released worker); no I/O, no tasks.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::PoolSettings;
use crate::stats::PoolStats;
use crate::worker::{RecycleReason, Worker, WorkerInfo, WorkerState};

/// Consecutive spawn failures and when the next attempt may run.
#[derive(Clone, Debug, Default)]
pub struct SpawnBackoff {
    pub failures: u32,
    pub retry_at: Option<Instant>,
    pub last_error: Option<String>,
}

impl SpawnBackoff {
    /// 100 ms doubling per failure, at most 30 s.
    pub(super) fn delay(failures: u32) -> Duration {
        Duration::from_millis(100)
            .saturating_mul(1u32 << failures.saturating_sub(1).min(9))
            .min(Duration::from_secs(30))
    }
}

/// A request waiting for a worker, from a task on `shard`, since `since`.
#[derive(Debug)]
pub(super) struct Waiter {
    pub(super) shard: usize,
    pub(super) since: Instant,
    pub(super) tx: oneshot::Sender<Worker>,
}

/// How long the oldest waiter may be passed over by younger ones of the released
/// worker's shard. The preference keeps an exchange on one CPU; unbounded, it starved
/// the waiters of a shard that owned no idle worker for as long as the worker's own
/// shard kept queueing (p99 in hundreds of ms with 2 shards and 1 worker, measured on
/// a loaded machine). Above a typical queue wait at 64 connections (≈ 2 ms), far below
/// the p99s that starvation caused.
pub(super) const CROSS_SHARD_PATIENCE: Duration = Duration::from_millis(5);

/// Which waiter gets a worker of `shard` released at `now`, given the live waiters'
/// `(shard, since)` in queue order: the oldest once it has waited
/// [`CROSS_SHARD_PATIENCE`], else the first of `shard`, else the first.
pub(super) fn pick_waiter(
    waiters: impl Iterator<Item = (usize, Instant)>,
    shard: usize,
    now: Instant,
) -> Option<usize> {
    let mut first = None;
    for (i, (of, since)) in waiters.enumerate() {
        if first.is_none() {
            if now.saturating_duration_since(since) >= CROSS_SHARD_PATIENCE {
                return Some(i);
            }
            first = Some(i);
        }
        if of == shard {
            return Some(i);
        }
    }
    first
}

impl Waiter {
    pub(super) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

pub(super) struct State {
    pub(super) settings: PoolSettings,
    pub(super) target: usize,
    pub(super) workers: HashMap<u64, Arc<WorkerInfo>>,
    /// Workers in `workers` marked for recycling.
    pub(super) doomed: usize,
    /// LIFO: the most recently used worker is the warmest.
    pub(super) idle: Vec<Worker>,
    pub(super) waiters: VecDeque<Waiter>,
    pub(super) spawning: usize,
    /// `spawning_on[shard]`: spawns under way per runtime shard.
    pub(super) spawning_on: Vec<usize>,
    /// Retired workers whose process has not exited yet.
    pub(super) stopping: usize,
    /// `slots[i]`: slot `i` is taken by a live or starting worker.
    pub(super) slots: Vec<bool>,
    pub(super) next_id: u64,
    pub(super) generation: u64,
    /// Spawns under way that began before the latest reset: their workers are of an
    /// older generation, and the reset waits for them to replace them too.
    pub(super) stale_spawns: usize,
    pub(super) backoff: SpawnBackoff,
    pub(super) closed: bool,
}

impl State {
    pub(super) fn healthy(&self) -> usize {
        self.workers.len() - self.doomed
    }

    /// The size the manager aims for.
    pub(super) fn wanted(&self) -> usize {
        if self.settings.debug {
            // Debug mode spawns a fresh worker for each waiting request.
            self.waiters
                .iter()
                .filter(|w| !w.is_closed())
                .count()
                .min(self.target.max(1))
        } else {
            self.target
        }
    }

    pub(super) fn take_slot(&mut self) -> usize {
        match self.slots.iter().position(|taken| !taken) {
            Some(i) => {
                self.slots[i] = true;
                i
            }
            None => {
                self.slots.push(true);
                self.slots.len() - 1
            }
        }
    }

    pub(super) fn free_slot(&mut self, slot: usize) {
        if let Some(s) = self.slots.get_mut(slot) {
            *s = false;
        }
        while self.slots.last() == Some(&false) {
            self.slots.pop();
        }
    }

    /// Marks a worker for recycling. Returns whether it was newly marked.
    pub(super) fn doom(&mut self, info: &WorkerInfo, reason: RecycleReason) -> bool {
        if self.workers.contains_key(&info.ident.id) && info.mark_recycle(reason) {
            self.doomed += 1;
            return true;
        }
        false
    }

    /// Removes a worker from the pool's books (it is about to be stopped or killed).
    pub(super) fn remove(
        &mut self,
        info: &WorkerInfo,
        reason: RecycleReason,
        stats: &PoolStats,
    ) -> bool {
        if self.workers.remove(&info.ident.id).is_none() {
            return false;
        }
        if info.recycle_reason().is_some() {
            self.doomed -= 1;
        } else {
            info.mark_recycle(reason);
        }
        self.free_slot(info.ident.slot);
        self.stopping += 1;
        stats.restart(info.recycle_reason().unwrap_or(reason));
        true
    }

    /// Hands a worker to a live waiter ([`pick_waiter`]: its own shard's first unless
    /// the oldest has waited too long), or parks it.
    pub(super) fn offer(&mut self, mut worker: Worker, now: Instant) {
        let shard = worker.info().ident.shard;
        loop {
            self.waiters.retain(|w| !w.is_closed());
            let at = pick_waiter(self.waiters.iter().map(|w| (w.shard, w.since)), shard, now);
            let Some(waiter) = at.and_then(|at| self.waiters.remove(at)) else {
                break;
            };
            match waiter.tx.send(worker) {
                Ok(()) => return,
                Err(w) => worker = w,
            }
        }
        worker
            .info()
            .set_state(if worker.info().recycle_reason().is_some() {
                WorkerState::Invalid
            } else {
                WorkerState::Ready
            });
        self.idle.push(worker);
    }

    /// The runtime shard for a new worker: the one with the fewest healthy or starting
    /// workers, so that replacements (resets, recycling) keep the shards even.
    pub(super) fn pick_shard(&self, shards: usize) -> usize {
        let mut counts = vec![0usize; shards.max(1)];
        for info in self.workers.values() {
            if info.recycle_reason().is_none()
                && let Some(c) = counts.get_mut(info.ident.shard)
            {
                *c += 1;
            }
        }
        for (shard, n) in self.spawning_on.iter().enumerate() {
            if let Some(c) = counts.get_mut(shard) {
                *c += n;
            }
        }
        (0..counts.len()).min_by_key(|&i| counts[i]).unwrap_or(0)
    }

    /// The warmest idle worker of `shard`, else the warmest of any shard.
    pub(super) fn take_idle(&mut self, shard: usize) -> Option<Worker> {
        match self
            .idle
            .iter()
            .rposition(|w| w.info().ident.shard == shard)
        {
            Some(i) => Some(self.idle.remove(i)),
            None => self.idle.pop(),
        }
    }

    /// Retires idle workers that are no longer needed: doomed ones once a healthy
    /// replacement exists, healthy ones beyond the target. Returns them for stopping.
    pub(super) fn trim(&mut self, stats: &PoolStats) -> Vec<Worker> {
        let mut out = Vec::new();
        let mut i = self.idle.len();
        while i > 0 {
            i -= 1;
            let doomed = self.idle[i].info().recycle_reason().is_some();
            let retire = if doomed {
                self.healthy() >= self.target
            } else {
                self.healthy() > self.target
            };
            if retire || self.closed {
                let w = self.idle.remove(i);
                self.remove(w.info(), RecycleReason::Shrink, stats);
                out.push(w);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawn_backoff_doubles_and_is_capped() {
        assert_eq!(SpawnBackoff::delay(1), Duration::from_millis(100));
        assert_eq!(SpawnBackoff::delay(2), Duration::from_millis(200));
        assert_eq!(SpawnBackoff::delay(4), Duration::from_millis(800));
        assert_eq!(SpawnBackoff::delay(30), Duration::from_secs(30));
    }

    #[test]
    fn a_released_worker_prefers_its_own_shard_until_the_oldest_has_waited_too_long() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // Queue order: shard 1 (oldest), shard 0, shard 0.
        let queue = [(1, t0), (0, t0 + ms(1)), (0, t0 + ms(2))];
        // A worker of shard 0 skips the younger-than-patience waiter of shard 1...
        assert_eq!(pick_waiter(queue.into_iter(), 0, t0 + ms(3)), Some(1));
        // ...but not once it has waited CROSS_SHARD_PATIENCE: no starvation.
        let late = t0 + CROSS_SHARD_PATIENCE;
        assert_eq!(pick_waiter(queue.into_iter(), 0, late), Some(0));
        // A worker of shard 1 takes its own (the first) either way.
        assert_eq!(pick_waiter(queue.into_iter(), 1, t0 + ms(3)), Some(0));
        // No waiter of the worker's shard: the first.
        assert_eq!(pick_waiter(queue.into_iter(), 2, t0 + ms(3)), Some(0));
        assert_eq!(pick_waiter(std::iter::empty(), 0, t0), None);
    }
}
