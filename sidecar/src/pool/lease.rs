//! A leased worker and what a job hands back: [`Lease`] returns its worker to the pool
//! when dropped (finishing or cancelling an abandoned exchange first), and
//! [`StreamReply`] reads a streamed reply frame by frame.

use std::time::Duration;

use tokio::time::Instant;

use super::{Pool, PoolError};
use crate::stats::Outcome;
use crate::worker::{Exchange, ExecError, Payload, RecycleReason, Worker};

/// A leased worker. Dropping it returns the worker to the pool; if its exchange was
/// abandoned half way, a background task finishes (or cancels) it first, and kills the
/// worker if that does not work in time.
pub struct Lease {
    pub(super) worker: Option<Worker>,
    pub(super) pool: Pool,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("worker", &self.worker.as_ref().map(|w| w.info().pid))
            .finish()
    }
}

impl Lease {
    pub(super) fn worker_mut(&mut self) -> &mut Worker {
        // Invariant: `worker` is Some until the lease is consumed or dropped.
        self.worker
            .as_mut()
            .unwrap_or_else(|| unreachable!("lease used after release"))
    }

    pub(super) fn retire(mut self, reason: RecycleReason) {
        if let Some(worker) = self.worker.take() {
            let grace = {
                let mut st = self.pool.inner.state.lock();
                st.remove(worker.info(), reason, &self.pool.inner.stats);
                st.settings.destroy_timeout
            };
            self.pool.inner.kick.notify_one();
            self.pool.inner.changed.notify_waiters();
            tokio::spawn(worker.stop(grace));
        }
    }

    pub(super) fn kill(mut self, reason: RecycleReason) {
        if let Some(worker) = self.worker.take() {
            self.pool.kill(worker, reason);
        }
    }

    /// Kills the worker after a failed exchange; returns the reason recorded, which is
    /// the supervisor's (e.g. exec_ttl) if it killed the worker first.
    pub(super) fn kill_for(mut self, error: &ExecError) -> RecycleReason {
        let Some(worker) = self.worker.take() else {
            return RecycleReason::Died;
        };
        let reason = worker.info().recycle_reason().unwrap_or(match error {
            ExecError::Relay(
                crate::relay::RelayError::Io(_) | crate::relay::RelayError::Closed,
            ) => RecycleReason::Died,
            _ => RecycleReason::Protocol,
        });
        tracing::warn!(pool = %self.pool.inner.name, pid = worker.info().pid, %error, "worker failed during a job");
        self.pool.kill(worker, reason);
        reason
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(mut worker) = self.worker.take() else {
            return;
        };
        if worker.exchange() == Exchange::Idle {
            self.pool.release(worker);
            return;
        }
        // The requester went away mid-exchange (client disconnect). Finish the exchange
        // off the request path, then reuse the worker — or kill it if it does not end.
        let pool = self.pool.clone();
        let timeout = pool.settings().stream_timeout;
        tokio::spawn(async move {
            if worker.abandon(timeout).await {
                pool.release(worker);
            } else {
                pool.kill(worker, RecycleReason::Protocol);
            }
        });
    }
}

/// What [`Pool::exec`] returns.
#[derive(Debug)]
pub enum Response {
    Single(Payload),
    Stream(StreamReply),
}

/// A streamed reply: the first frame, then [`StreamReply::next`] for the rest. Dropping
/// it before the end cancels the stream on the worker (STOP) without losing the worker.
#[derive(Debug)]
pub struct StreamReply {
    pub(super) lease: Lease,
    pub(super) first: Option<Payload>,
    pub(super) exec_ttl: Option<Duration>,
    pub(super) started: Instant,
    pub(super) done: bool,
}

impl StreamReply {
    /// The next frame of the reply; `Ok(None)` once the worker ended the stream.
    pub async fn next(&mut self) -> Result<Option<Payload>, PoolError> {
        if let Some(first) = self.first.take() {
            return Ok(Some(first));
        }
        if self.done {
            return Ok(None);
        }
        let pool = self.lease.pool.clone();
        let worker = self.lease.worker_mut();
        let chunk = match self.exec_ttl {
            // exec_ttl bounds the wait for each frame, as in RoadRunner.
            Some(ttl) => match tokio::time::timeout(ttl, worker.next_chunk()).await {
                Ok(r) => r,
                Err(_) => {
                    self.done = true;
                    pool.inner.stats.job(Outcome::Timeout);
                    self.take_lease().kill(RecycleReason::ExecTtl);
                    return Err(PoolError::ExecTimeout(ttl));
                }
            },
            None => worker.next_chunk().await,
        };
        match chunk {
            Ok(Some(p)) => {
                if self.lease.worker_mut().exchange() == Exchange::Idle {
                    self.finish(Outcome::Ok);
                }
                Ok(Some(p))
            }
            Ok(None) => {
                self.finish(Outcome::Ok);
                Ok(None)
            }
            Err(ExecError::Soft(m)) => {
                self.finish(Outcome::Error);
                Err(PoolError::Soft(m))
            }
            Err(e) => {
                self.done = true;
                let reason = self.take_lease().kill_for(&e);
                Err(pool.failed(e, reason, self.exec_ttl))
            }
        }
    }

    /// Takes the lease out (to kill its worker), leaving an empty one behind.
    fn take_lease(&mut self) -> Lease {
        let empty = Lease {
            worker: None,
            pool: self.lease.pool.clone(),
        };
        std::mem::replace(&mut self.lease, empty)
    }

    /// Records the job and gives the worker back at once, even if the caller keeps the
    /// `StreamReply` around.
    fn finish(&mut self, outcome: Outcome) {
        if !self.done {
            self.done = true;
            // The worker's count moves on when the lease is dropped: still the jobs it
            // had done before this one.
            let jobs_before = self.lease.worker_mut().info().jobs();
            let stats = &self.lease.pool.inner.stats;
            stats.job_time(jobs_before, self.started.elapsed());
            stats.job(outcome);
            drop(self.take_lease());
        }
    }
}
