//! The manager task and the events that change the pool's size: it keeps
//! `healthy + spawning` at the wanted size (level-triggered: kicked whenever something
//! changes, a few spawns at a time, exponential backoff after failures), books finished
//! spawns (and times the successful ones: `pacer_worker_boot_seconds`), and removes
//! workers whose process exited.

use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::MAX_PARALLEL_SPAWNS;
use super::state::{SpawnBackoff, State};
use crate::stats::PoolStats;
use crate::worker::{Exit, RecycleReason, SpawnError, SpawnWorker, Worker, WorkerIdent};

pub(super) struct Inner {
    pub(super) name: String,
    pub(super) spawner: Box<dyn SpawnWorker>,
    /// Runtime shards the workers are spread over, if any.
    pub(super) shards: Option<Arc<crate::shards::Shards>>,
    pub(super) state: Mutex<State>,
    /// Wakes the manager: something changed that may need spawning.
    pub(super) kick: Notify,
    /// Wakes `shutdown`/`reset` waiters: a worker left the pool.
    pub(super) changed: Notify,
    pub(super) stats: PoolStats,
    pub(super) reset_lock: tokio::sync::Mutex<()>,
    pub(super) cancel: CancellationToken,
}

impl Inner {
    pub(super) fn on_exit(&self, id: u64, exit: Exit) {
        {
            let mut st = self.state.lock();
            match st.workers.get(&id).cloned() {
                Some(info) => {
                    if info.recycle_reason().is_none() {
                        tracing::warn!(pool = %self.name, pid = exit.pid, status = ?exit.status, "worker exited unexpectedly");
                    }
                    st.remove(&info, RecycleReason::Died, &self.stats);
                    st.idle.retain(|w| w.info().ident.id != id);
                }
                None => {
                    tracing::debug!(pool = %self.name, pid = exit.pid, status = ?exit.status, "worker exited")
                }
            }
            st.stopping = st.stopping.saturating_sub(1);
        }
        self.kick.notify_one();
        self.changed.notify_waiters();
    }

    /// A spawn attempt finished.
    pub(super) fn spawned(
        self: &Arc<Self>,
        ident: WorkerIdent,
        result: Result<Worker, SpawnError>,
    ) {
        let slot = ident.slot;
        let mut st = self.state.lock();
        st.spawning -= 1;
        if ident.generation < st.generation {
            st.stale_spawns = st.stale_spawns.saturating_sub(1);
        }
        if let Some(n) = st.spawning_on.get_mut(ident.shard) {
            *n = n.saturating_sub(1);
        }
        match result {
            Ok(worker) => {
                st.backoff = SpawnBackoff::default();
                if st.closed {
                    st.free_slot(slot);
                    let grace = st.settings.destroy_timeout;
                    drop(st);
                    tokio::spawn(worker.stop(grace));
                    return;
                }
                tracing::debug!(pool = %self.name, pid = worker.info().pid, slot, "worker ready");
                st.workers
                    .insert(worker.info().ident.id, worker.info().clone());
                st.offer(worker, Instant::now());
                let retired = st.trim(&self.stats);
                let grace = st.settings.destroy_timeout;
                drop(st);
                for w in retired {
                    tokio::spawn(w.stop(grace));
                }
            }
            Err(error) => {
                st.free_slot(slot);
                st.backoff.failures += 1;
                let delay = SpawnBackoff::delay(st.backoff.failures);
                st.backoff.retry_at = Some(Instant::now() + delay);
                st.backoff.last_error = Some(error.to_string());
                self.stats.spawn_failures.inc();
                tracing::error!(pool = %self.name, %error, failures = st.backoff.failures, retry_in = ?delay, "worker failed to start");
                drop(st);
            }
        }
        self.kick.notify_one();
        self.changed.notify_waiters();
    }
}

/// The manager task: keeps `healthy + spawning` at the wanted size.
pub(super) async fn manage(inner: Arc<Inner>) {
    loop {
        let kicked = inner.kick.notified();
        tokio::pin!(kicked);
        kicked.as_mut().enable();
        let retry_at = {
            let mut st = inner.state.lock();
            if st.closed {
                return;
            }
            match st.backoff.retry_at {
                Some(at) if at > Instant::now() => Some(at),
                _ => {
                    let need = st
                        .wanted()
                        .saturating_sub(st.healthy() + st.spawning)
                        .min(MAX_PARALLEL_SPAWNS.saturating_sub(st.spawning));
                    for _ in 0..need {
                        let slot = st.take_slot();
                        let shards = inner.shards.as_ref().map_or(1, |s| s.len());
                        let ident = WorkerIdent {
                            id: st.next_id,
                            slot,
                            generation: st.generation,
                            shard: st.pick_shard(shards),
                        };
                        st.next_id += 1;
                        st.spawning += 1;
                        if st.spawning_on.len() <= ident.shard {
                            st.spawning_on.resize(ident.shard + 1, 0);
                        }
                        st.spawning_on[ident.shard] += 1;
                        let timeout = st.settings.allocate_timeout;
                        let spawn = spawn_one(inner.clone(), ident, timeout);
                        // On its shard, so that its relay is driven there.
                        match &inner.shards {
                            Some(shards) => drop(shards.spawn(ident.shard, spawn)),
                            None => drop(tokio::spawn(spawn)),
                        }
                    }
                    None
                }
            }
        };
        tokio::select! {
            _ = kicked => {}
            _ = inner.cancel.cancelled() => return,
            _ = async { tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)).await }, if retry_at.is_some() => {}
        }
    }
}

async fn spawn_one(inner: Arc<Inner>, ident: WorkerIdent, timeout: Duration) {
    let weak: Weak<Inner> = Arc::downgrade(&inner);
    let id = ident.id;
    let on_exit = move |exit: Exit| {
        if let Some(inner) = weak.upgrade() {
            inner.on_exit(id, exit);
        }
    };
    // The spawner starts the process first thing, so this is its boot: process start to
    // the end of the PID handshake.
    let started = Instant::now();
    let result = inner
        .spawner
        .spawn_worker(ident, jitter_percent(), timeout, Box::new(on_exit))
        .await;
    if result.is_ok() {
        inner.stats.worker_boot.observe(started.elapsed());
    }
    inner.spawned(ident, result);
}

/// Per-worker jitter of `max_jobs` in percent (RoadRunner adds 0–14 %), so workers
/// started together do not all recycle together.
fn jitter_percent() -> u64 {
    fastrand::u64(0..=14)
}
