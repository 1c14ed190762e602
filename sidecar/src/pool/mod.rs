//! The worker pool: a live-resizable set of PHP workers, a bounded queue of requests
//! waiting for one, and the manager task that keeps the pool at its target size.
//!
//! # Theory of operation
//! * Shared state ([`State`]) sits behind one short-held mutex: the idle workers, the
//!   waiters, the counts. No lock is held across I/O; no lock is around a process.
//! * A request [`Pool::exec`]s in its own task: it takes an idle worker (or waits in the
//!   queue up to `allocate_timeout`), exchanges frames with it, and puts it back. A
//!   worker moves by value; the request holds it in a [`Lease`] whose `Drop` makes sure
//!   an abandoned exchange is finished (or the worker killed) before reuse.
//! * The manager task is level-triggered: whenever it is kicked it compares the healthy
//!   worker count with the target and spawns the difference (a few in parallel, with
//!   exponential backoff after failures). It never spawns in a busy loop.
//! * Workers marked for recycling ("doomed": max_jobs, ttl, memory, reset…) stop
//!   counting as healthy, so a replacement starts at once; the doomed worker keeps
//!   serving until the replacement is ready and is then retired between jobs. Capacity
//!   therefore never dips for a soft recycle, a rolling reset or a resize.
//! * Hard failures (the process died, a protocol violation, `exec_ttl`) remove the
//!   worker at once.
//!
//! Modules: [`state`] (the books under the mutex), [`manager`] (spawning and exits),
//! [`lease`] (a leased worker, streamed replies); this file is the [`Pool`] handle.
//! `tests` drives all of it with fake workers in paused time.

mod lease;
mod manager;
mod settings;
mod state;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use lease::{Lease, Response, StreamReply};
pub use settings::{PoolSettings, SupervisorLimits};
pub use state::SpawnBackoff;

use manager::{Inner, manage};
use state::State;

use crate::stats::{Outcome, PoolStats};
use crate::worker::{
    ExecError, Payload, RecycleReason, Reply, SpawnError, SpawnWorker, Worker, WorkerInfo,
};

/// The most workers one pool may have (RoadRunner's hard limit is 500).
pub const MAX_WORKERS: usize = 2048;
/// Spawns running at once: PHP boots are CPU-heavy, and a burst of them should not
/// starve the workers that are serving.
const MAX_PARALLEL_SPAWNS: usize = 8;
/// How many times one request is re-run when workers ask to be stopped before taking it.
const MAX_STOP_RETRIES: usize = 8;

/// Why a job failed, from the requester's point of view.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("no free worker within allocate_timeout ({0:?})")]
    NoFreeWorker(Duration),
    #[error("the request queue is full ({0} waiting)")]
    QueueFull(usize),
    #[error("the pool is shutting down")]
    Closed,
    #[error("the job exceeded exec_ttl ({0:?}); the worker was killed")]
    ExecTimeout(Duration),
    #[error("{0}")]
    Soft(String),
    #[error("the worker failed during the job: {0}")]
    WorkerFailed(ExecError),
    #[error("workers keep asking to be stopped instead of taking the job")]
    StopLoop,
    #[error("could not start a worker: {0}")]
    Spawn(#[from] SpawnError),
    #[error("reset incomplete: {0} workers could not be replaced within reset_timeout")]
    ResetIncomplete(usize),
}

/// A cheap, cloneable handle on a pool.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.inner.name)
            .finish_non_exhaustive()
    }
}

/// A point-in-time view of a pool for status, metrics and RPC.
#[derive(Clone, Debug)]
pub struct PoolSnapshot {
    pub name: String,
    pub target: usize,
    pub workers: Vec<Arc<WorkerInfo>>,
    pub ready: usize,
    pub working: usize,
    pub spawning: usize,
    pub stopping: usize,
    pub queue_depth: usize,
    pub backoff: SpawnBackoff,
    pub closed: bool,
    pub settings: PoolSettings,
}

impl Pool {
    /// Starts a pool: the manager task begins spawning `settings.num_workers` workers at
    /// once. Returns without waiting for them (see [`Pool::wait_ready`]).
    pub fn start(name: &str, spawner: impl SpawnWorker, settings: PoolSettings) -> Pool {
        Pool::start_sharded(name, spawner, settings, None)
    }

    /// [`Pool::start`] with workers spread evenly over runtime shards: each worker is
    /// started (and its relay driven) on one shard, and a request takes an idle
    /// worker of its own shard first (see [`crate::shards`]).
    pub fn start_sharded(
        name: &str,
        spawner: impl SpawnWorker,
        settings: PoolSettings,
        shards: Option<Arc<crate::shards::Shards>>,
    ) -> Pool {
        let target = if settings.debug {
            settings.num_workers.max(1)
        } else {
            settings.num_workers
        };
        let inner = Arc::new(Inner {
            name: name.to_string(),
            spawner: Box::new(spawner),
            shards,
            state: Mutex::new(State {
                target: target.min(MAX_WORKERS),
                settings,
                workers: HashMap::new(),
                doomed: 0,
                idle: Vec::new(),
                waiters: VecDeque::new(),
                spawning: 0,
                spawning_on: Vec::new(),
                stopping: 0,
                slots: Vec::new(),
                next_id: 1,
                generation: 0,
                stale_spawns: 0,
                backoff: SpawnBackoff::default(),
                closed: false,
            }),
            kick: Notify::new(),
            changed: Notify::new(),
            stats: PoolStats::default(),
            reset_lock: tokio::sync::Mutex::new(()),
            cancel: CancellationToken::new(),
        });
        tokio::spawn(manage(inner.clone()));
        Pool { inner }
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub fn stats(&self) -> &PoolStats {
        &self.inner.stats
    }

    pub fn command_line(&self) -> String {
        self.inner.spawner.command_line()
    }

    /// Runs one job: waits for a worker, exchanges the payload, returns the reply.
    /// A worker that asks to be stopped is replaced and the same job re-run elsewhere.
    pub fn exec(&self, job: Payload) -> impl Future<Output = Result<Response, PoolError>> + '_ {
        // `()` observes nothing: this compiles to the loop without an observer.
        self.exec_observed(job, ())
    }

    /// [`Pool::exec`], also telling `on_lease` when a worker is leased (for tracing: the
    /// queue wait ends there).
    pub async fn exec_observed(
        &self,
        job: Payload,
        mut on_lease: impl OnLease,
    ) -> Result<Response, PoolError> {
        let (allocate_timeout, exec_ttl) = {
            let st = self.inner.state.lock();
            (
                st.settings.allocate_timeout,
                st.settings.supervisor.exec_ttl,
            )
        };
        // One clock read for the deadline, the queue wait and the job's start when an
        // idle worker is at hand (each read is ≈ 80 instructions of a ≈ 24,000
        // instruction request).
        let mut enqueued = Instant::now();
        let deadline = enqueued + allocate_timeout;
        for attempt in 0..MAX_STOP_RETRIES {
            if attempt > 0 {
                enqueued = Instant::now();
            }
            let (mut lease, started) = self.acquire(enqueued, deadline, allocate_timeout).await?;
            let worker = lease.worker_mut();
            on_lease.leased(worker.info().pid);
            // Its count moves on when the lease is dropped (`release`).
            let jobs_before = worker.info().jobs();
            let result = match exec_ttl {
                Some(ttl) => match tokio::time::timeout(ttl, worker.exec(&job)).await {
                    Ok(r) => r,
                    Err(_) => {
                        lease.kill(RecycleReason::ExecTtl);
                        self.inner.stats.job(Outcome::Timeout);
                        return Err(PoolError::ExecTimeout(ttl));
                    }
                },
                None => worker.exec(&job).await,
            };
            match result {
                Ok(Reply::Single(payload)) => {
                    self.inner.stats.job_time(jobs_before, started.elapsed());
                    self.inner.stats.job(Outcome::Ok);
                    drop(lease);
                    return Ok(Response::Single(payload));
                }
                Ok(Reply::Stream(first)) => {
                    return Ok(Response::Stream(StreamReply {
                        lease,
                        first: Some(first),
                        exec_ttl,
                        started,
                        done: false,
                    }));
                }
                Err(ExecError::StopRequested) => {
                    lease.retire(RecycleReason::StopRequest);
                    continue;
                }
                Err(ExecError::NotDelivered(error)) => {
                    // Died while idle, before its exit was noticed: the job is intact.
                    tracing::debug!(%error, "worker gone before the job was written; retrying on another");
                    lease.kill(RecycleReason::Died);
                    continue;
                }
                Err(ExecError::Soft(message)) => {
                    self.inner.stats.job_time(jobs_before, started.elapsed());
                    self.inner.stats.job(Outcome::Error);
                    return Err(PoolError::Soft(message));
                }
                Err(e) => {
                    let reason = lease.kill_for(&e);
                    return Err(self.failed(e, reason, exec_ttl));
                }
            }
        }
        Err(PoolError::StopLoop)
    }

    fn failed(&self, e: ExecError, reason: RecycleReason, exec_ttl: Option<Duration>) -> PoolError {
        // The supervisor kills a worker that overran exec_ttl; the requester sees the
        // relay break, but the cause is the timeout.
        if reason == RecycleReason::ExecTtl {
            self.inner.stats.job(Outcome::Timeout);
            return PoolError::ExecTimeout(exec_ttl.unwrap_or_default());
        }
        self.inner.stats.job(Outcome::WorkerDied);
        PoolError::WorkerFailed(e)
    }

    /// A lease on a worker and when it was leased (`enqueued` if one was idle).
    async fn acquire(
        &self,
        enqueued: Instant,
        deadline: Instant,
        allocate_timeout: Duration,
    ) -> Result<(Lease, Instant), PoolError> {
        let mut rx = {
            let mut st = self.inner.state.lock();
            if st.closed {
                return Err(PoolError::Closed);
            }
            let shard = crate::shards::current();
            if let Some(worker) = st.take_idle(shard) {
                drop(st);
                self.inner.stats.queue_wait.observe(Duration::ZERO);
                return Ok((self.lease(worker, enqueued), enqueued));
            }
            let limit = st.settings.queue_limit();
            st.waiters.retain(|w| !w.is_closed());
            if st.waiters.len() >= limit {
                drop(st);
                self.inner.stats.no_free_workers.inc();
                self.inner.stats.job(Outcome::NoWorker);
                return Err(PoolError::QueueFull(limit));
            }
            let (tx, rx) = oneshot::channel();
            st.waiters.push_back(state::Waiter {
                shard,
                since: enqueued,
                tx,
            });
            if st.settings.debug {
                self.inner.kick.notify_one();
            }
            rx
        };
        let outcome = tokio::time::timeout_at(deadline, &mut rx).await;
        let worker = match outcome {
            Ok(Ok(worker)) => Some(worker),
            Ok(Err(_)) => return Err(PoolError::Closed),
            Err(_) => {
                // A worker may have been handed over right at the deadline.
                rx.close();
                rx.try_recv().ok()
            }
        };
        match worker {
            Some(worker) => {
                let now = Instant::now();
                self.inner
                    .stats
                    .queue_wait
                    .observe(now.saturating_duration_since(enqueued));
                Ok((self.lease(worker, now), now))
            }
            None => {
                self.inner.state.lock().waiters.retain(|w| !w.is_closed());
                self.inner.stats.no_free_workers.inc();
                self.inner.stats.job(Outcome::NoWorker);
                Err(PoolError::NoFreeWorker(allocate_timeout))
            }
        }
    }

    fn lease(&self, worker: Worker, now: Instant) -> Lease {
        worker.info().job_started(now);
        Lease {
            worker: Some(worker),
            pool: self.clone(),
        }
    }

    /// Puts a worker back after a job: to a waiter, to the idle list, or to retirement.
    fn release(&self, worker: Worker) {
        let now = Instant::now();
        let mut st = self.inner.state.lock();
        if !st.workers.contains_key(&worker.info().ident.id) {
            // Already removed (its process died, or it was killed): dropping the worker
            // closes its relay.
            return;
        }
        let info = worker.info().clone();
        let jobs = info.job_done(now);
        let max_jobs = st.settings.max_jobs_for(&info);
        if max_jobs > 0 && jobs >= max_jobs {
            st.doom(&info, RecycleReason::MaxJobs);
        }
        let retire = if st.closed {
            Some(RecycleReason::Shutdown)
        } else if st.settings.debug {
            Some(RecycleReason::Debug)
        } else if let Some(reason) = info.recycle_reason() {
            // max_jobs is a promise about this worker: it never runs more. Other soft
            // limits keep the worker serving until a healthy replacement stands in.
            (reason == RecycleReason::MaxJobs || st.healthy() >= st.target).then_some(reason)
        } else {
            (st.healthy() > st.target).then_some(RecycleReason::Shrink)
        };
        match retire {
            Some(reason) => {
                st.remove(&info, reason, &self.inner.stats);
                let grace = st.settings.destroy_timeout;
                drop(st);
                self.inner.kick.notify_one();
                self.inner.changed.notify_waiters();
                tokio::spawn(worker.stop(grace));
            }
            None => {
                let doomed = info.recycle_reason().is_some();
                st.offer(worker, now);
                drop(st);
                if doomed {
                    self.inner.kick.notify_one();
                }
            }
        }
    }

    /// Removes a worker at once and kills its process group.
    fn kill(&self, worker: Worker, reason: RecycleReason) {
        self.inner
            .state
            .lock()
            .remove(worker.info(), reason, &self.inner.stats);
        worker.kill();
        self.inner.kick.notify_one();
        self.inner.changed.notify_waiters();
    }

    /// Changes the target size live: grows by spawning, shrinks by retiring idle workers
    /// first and busy ones as they finish. No request fails because of a resize.
    pub fn set_target(&self, n: usize) {
        let n = n.min(MAX_WORKERS);
        let (retired, grace) = {
            let mut st = self.inner.state.lock();
            if st.target == n {
                return;
            }
            tracing::info!(pool = %self.inner.name, from = st.target, to = n, "pool target changed");
            st.target = n;
            st.settings.num_workers = n;
            (st.trim(&self.inner.stats), st.settings.destroy_timeout)
        };
        for w in retired {
            tokio::spawn(w.stop(grace));
        }
        self.inner.kick.notify_one();
        self.inner.changed.notify_waiters();
    }

    pub fn target(&self) -> usize {
        self.inner.state.lock().target
    }

    /// Applies new settings live. `num_workers` goes through [`Pool::set_target`]; limits
    /// (max_jobs, queue size, timeouts, supervisor) apply to the next check of each
    /// worker, including workers already running.
    pub fn update_settings(&self, settings: PoolSettings) {
        let n = settings.num_workers;
        {
            let mut st = self.inner.state.lock();
            let keep_target = st.target;
            st.settings = settings;
            st.settings.num_workers = keep_target;
        }
        self.set_target(n);
        self.inner.kick.notify_one();
    }

    pub fn settings(&self) -> PoolSettings {
        self.inner.state.lock().settings.clone()
    }

    /// Marks a worker for recycling between jobs (supervisor soft limits). An idle
    /// worker is retired as soon as a replacement is ready.
    pub fn recycle(&self, id: u64, reason: RecycleReason) {
        let (retired, grace) = {
            let mut st = self.inner.state.lock();
            let Some(info) = st.workers.get(&id).cloned() else {
                return;
            };
            if !st.doom(&info, reason) {
                return;
            }
            tracing::info!(pool = %self.inner.name, pid = info.pid, reason = reason.as_str(), "recycling worker");
            (st.trim(&self.inner.stats), st.settings.destroy_timeout)
        };
        for w in retired {
            tokio::spawn(w.stop(grace));
        }
        self.inner.kick.notify_one();
        self.inner.changed.notify_waiters();
    }

    /// Kills a worker now, wherever it is (supervisor hard limits: exec_ttl).
    pub fn kill_worker(&self, id: u64, reason: RecycleReason) {
        let idle = {
            let mut st = self.inner.state.lock();
            let Some(info) = st.workers.get(&id).cloned() else {
                return;
            };
            if info.recycle_reason().is_none() {
                st.doom(&info, reason);
            }
            tracing::warn!(pool = %self.inner.name, pid = info.pid, reason = reason.as_str(), "killing worker");
            let idle = st
                .idle
                .iter()
                .position(|w| w.info().ident.id == id)
                .map(|i| st.idle.remove(i));
            if idle.is_some() {
                st.remove(&info, reason, &self.inner.stats);
            }
            info.process().kill();
            idle
        };
        drop(idle);
        self.inner.kick.notify_one();
    }

    /// Rolling reset: replaces every current worker, a quarter of the target at a time,
    /// each batch retiring only once its replacements are ready. Capacity never drops.
    /// "Every" includes workers still starting when the reset begins: their PHP may
    /// have loaded the code from before it, so they are replaced once they are ready.
    /// Returns when no worker of an older generation is left.
    pub async fn reset(&self) -> Result<(), PoolError> {
        let _one_at_a_time = self.inner.reset_lock.lock().await;
        let (generation, batch, timeout) = {
            let mut st = self.inner.state.lock();
            st.generation += 1;
            st.stale_spawns = st.spawning;
            let batch = st.target.div_ceil(4).max(1);
            tracing::info!(pool = %self.inner.name, workers = st.workers.len(), starting = st.spawning, batch, "rolling reset");
            (st.generation, batch, st.settings.reset_timeout)
        };
        let stale = |st: &State| -> Vec<Arc<WorkerInfo>> {
            let mut old: Vec<_> = st
                .workers
                .values()
                .filter(|w| w.ident.generation < generation)
                .cloned()
                .collect();
            old.sort_by_key(|w| w.ident.slot);
            old
        };
        loop {
            let (mut chunk, starting) = {
                let st = self.inner.state.lock();
                (stale(&st), st.stale_spawns)
            };
            chunk.truncate(batch);
            if chunk.is_empty() && starting == 0 {
                return Ok(());
            }
            let ids: Vec<u64> = chunk.iter().map(|w| w.ident.id).collect();
            let done = if chunk.is_empty() {
                // Only workers still starting are left: wait until they join the books.
                self.wait_until(timeout, |st| st.stale_spawns == 0).await
            } else {
                let (retired, grace) = {
                    let mut st = self.inner.state.lock();
                    for info in &chunk {
                        st.doom(info, RecycleReason::Reset);
                    }
                    (st.trim(&self.inner.stats), st.settings.destroy_timeout)
                };
                for w in retired {
                    tokio::spawn(w.stop(grace));
                }
                self.inner.kick.notify_one();
                self.wait_until(timeout, |st| {
                    ids.iter().all(|id| !st.workers.contains_key(id))
                })
                .await
            };
            if !done {
                let left = {
                    let st = self.inner.state.lock();
                    stale(&st).len() + st.stale_spawns
                };
                tracing::warn!(pool = %self.inner.name, left, "rolling reset did not finish in time");
                return Err(PoolError::ResetIncomplete(left));
            }
        }
    }

    /// Waits until `done(state)` holds, re-checking whenever a worker leaves or joins.
    async fn wait_until(&self, timeout: Duration, done: impl Fn(&State) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let changed = self.inner.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if done(&self.inner.state.lock()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return done(&self.inner.state.lock());
            }
        }
    }

    /// Waits until at least `n` workers are alive (or `timeout`).
    pub async fn wait_ready(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, |st| st.workers.len() >= n).await
    }

    /// Waits until the pool stands at its target (or `timeout`): at least `target`
    /// workers not marked for recycling, and no surplus left to retire. RPC's
    /// `informer.AddWorker`/`RemoveWorker` use it to answer once the change took effect.
    pub async fn wait_settled(&self, timeout: Duration) -> bool {
        self.wait_until(timeout, |st| {
            st.healthy() >= st.target && st.workers.len() <= st.target
        })
        .await
    }

    /// Stops the pool: no new jobs (waiters get [`PoolError::Closed`]), idle workers
    /// stopped now, busy ones when their job ends; whatever is left after
    /// `destroy_timeout` is killed. Returns when every worker process is gone.
    pub async fn shutdown(&self) {
        let (idle, grace) = {
            let mut st = self.inner.state.lock();
            st.closed = true;
            st.waiters.clear();
            (st.trim(&self.inner.stats), st.settings.destroy_timeout)
        };
        self.inner.cancel.cancel();
        for w in idle {
            tokio::spawn(w.stop(grace));
        }
        if !self.wait_until(grace, |st| st.workers.is_empty()).await {
            let left: Vec<_> = self.inner.state.lock().workers.values().cloned().collect();
            tracing::warn!(pool = %self.inner.name, busy = left.len(), "destroy_timeout reached; killing busy workers");
            for info in left {
                info.process().kill();
            }
        }
        // Stopped workers get `grace` to exit before their process task kills them.
        self.wait_until(grace + Duration::from_secs(2), |st| {
            st.workers.is_empty() && st.stopping == 0
        })
        .await;
    }

    /// Requests waiting for a worker now (cheaper than a [`Pool::snapshot`]).
    pub fn queue_depth(&self) -> usize {
        let st = self.inner.state.lock();
        st.waiters.iter().filter(|w| !w.is_closed()).count()
    }

    pub fn snapshot(&self) -> PoolSnapshot {
        let st = self.inner.state.lock();
        let mut workers: Vec<_> = st.workers.values().cloned().collect();
        workers.sort_by_key(|w| w.ident.slot);
        PoolSnapshot {
            name: self.inner.name.clone(),
            target: st.target,
            ready: st.idle.len(),
            working: st.workers.len().saturating_sub(st.idle.len()),
            workers,
            spawning: st.spawning,
            stopping: st.stopping,
            queue_depth: st.waiters.iter().filter(|w| !w.is_closed()).count(),
            backoff: st.backoff.clone(),
            closed: st.closed,
            settings: st.settings.clone(),
        }
    }
}

/// Told when [`Pool::exec_observed`] leases a worker (with its pid).
pub trait OnLease: Send {
    fn leased(&mut self, pid: u32);
}

/// Nothing observes the lease (the untraced request path).
impl OnLease for () {
    #[inline(always)]
    fn leased(&mut self, _pid: u32) {}
}

/// The time of the (last) lease and the worker's pid.
impl OnLease for &mut Option<(std::time::SystemTime, u32)> {
    fn leased(&mut self, pid: u32) {
        **self = Some((std::time::SystemTime::now(), pid));
    }
}
