//! `driver: memory`: an in-process priority queue with delays. Jobs live as long as the
//! pacer process (as in RoadRunner); at most `prefetch` are handed out unsettled.
//!
//! One feeder task per consuming pipeline moves due jobs to the shared delivery channel;
//! the queue itself sits under one short mutex.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::driver::{Acker, BoxFut, Delivery, Driver, DriverError, DriverStat};
use super::job::Job;

/// A ready job: higher priority first, then first in, first out.
#[derive(Debug)]
struct Ready {
    priority: i64,
    seq: u64,
    since: Instant,
    job: Job,
}

impl PartialEq for Ready {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Ready {}
impl PartialOrd for Ready {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Ready {
    fn cmp(&self, o: &Self) -> Ordering {
        self.priority
            .cmp(&o.priority)
            .then_with(|| Reverse(self.seq).cmp(&Reverse(o.seq)))
    }
}

#[derive(Debug)]
struct Delayed {
    due: Instant,
    seq: u64,
    job: Job,
}
impl PartialEq for Delayed {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.seq) == (o.due, o.seq)
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Delayed {
    fn cmp(&self, o: &Self) -> Ordering {
        // Earliest first out of a max-heap.
        (o.due, o.seq).cmp(&(self.due, self.seq))
    }
}

#[derive(Debug, Default)]
struct Queue {
    ready: BinaryHeap<Ready>,
    delayed: BinaryHeap<Delayed>,
    in_flight: usize,
    seq: u64,
    stopped: bool,
}

impl Queue {
    fn insert(&mut self, job: Job, now: Instant) {
        self.seq += 1;
        if job.delay > 0 {
            self.delayed.push(Delayed {
                due: now + Duration::from_secs(job.delay),
                seq: self.seq,
                job,
            });
        } else {
            self.ready.push(Ready {
                priority: job.priority,
                seq: self.seq,
                since: now,
                job,
            });
        }
    }

    /// Moves due delayed jobs to the ready heap; their wait starts when they are due.
    fn promote(&mut self, now: Instant) {
        while self.delayed.peek().is_some_and(|d| d.due <= now) {
            if let Some(d) = self.delayed.pop() {
                self.seq += 1;
                let mut job = d.job;
                job.delay = 0;
                self.ready.push(Ready {
                    priority: job.priority,
                    seq: self.seq,
                    since: d.due,
                    job,
                });
            }
        }
    }
}

#[derive(Debug)]
struct Shared {
    name: String,
    prefetch: usize,
    queue: Mutex<Queue>,
    changed: Notify,
    consuming: Mutex<Option<CancellationToken>>,
}

/// The memory driver of one pipeline.
#[derive(Debug, Clone)]
pub struct Memory {
    shared: Arc<Shared>,
}

impl Memory {
    pub fn new(pipeline: &str, prefetch: usize) -> Memory {
        Memory {
            shared: Arc::new(Shared {
                name: pipeline.to_string(),
                prefetch: prefetch.max(1),
                queue: Mutex::new(Queue::default()),
                changed: Notify::new(),
                consuming: Mutex::new(None),
            }),
        }
    }
}

#[derive(Debug)]
struct MemoryAcker {
    shared: Arc<Shared>,
    job: Option<Job>,
}

impl MemoryAcker {
    /// Settles once: `requeue` puts the job back (unless the pipeline is gone).
    fn settle(&mut self, requeue: bool) {
        let Some(job) = self.job.take() else {
            return;
        };
        let mut q = self.shared.queue.lock();
        q.in_flight = q.in_flight.saturating_sub(1);
        if requeue && !q.stopped {
            q.insert(job, Instant::now());
        }
        drop(q);
        self.shared.changed.notify_one();
    }
}

impl Drop for MemoryAcker {
    /// A delivery dropped unsettled (its consumer went away) goes back to the queue.
    fn drop(&mut self) {
        self.settle(true);
    }
}

impl Acker for MemoryAcker {
    fn ack(mut self: Box<Self>) -> BoxFut<'static, Result<(), DriverError>> {
        self.settle(false);
        Box::pin(async { Ok(()) })
    }

    fn nack(mut self: Box<Self>, requeue: bool) -> BoxFut<'static, Result<(), DriverError>> {
        self.settle(requeue);
        Box::pin(async { Ok(()) })
    }
}

/// Hands out due jobs while consuming, at most `prefetch` unsettled. A slot in the
/// delivery channel is reserved before a job leaves the queue, so stopping never drops one.
async fn feed(shared: Arc<Shared>, out: mpsc::Sender<Delivery>, stop: CancellationToken) {
    loop {
        let permit = tokio::select! {
            p = out.reserve() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = stop.cancelled() => return,
        };
        loop {
            let notified = shared.changed.notified();
            let (next, wake_at) = {
                let mut q = shared.queue.lock();
                let now = Instant::now();
                q.promote(now);
                let next = if q.in_flight < shared.prefetch {
                    q.ready.pop().map(|r| {
                        q.in_flight += 1;
                        (r.job, now.saturating_duration_since(r.since))
                    })
                } else {
                    None
                };
                (next, q.delayed.peek().map(|d| d.due))
            };
            if let Some((job, waited)) = next {
                permit.send(Delivery {
                    pipeline: shared.name.clone(),
                    acker: Box::new(MemoryAcker {
                        shared: shared.clone(),
                        job: Some(job.clone()),
                    }),
                    job,
                    waited: Some(waited),
                });
                break;
            }
            let sleep = async {
                match wake_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = notified => {}
                _ = sleep => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}

impl Driver for Memory {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn queue(&self) -> &str {
        &self.shared.name
    }

    fn push(&self, job: Job) -> BoxFut<'_, Result<(), DriverError>> {
        let mut q = self.shared.queue.lock();
        let result = if q.stopped {
            Err(DriverError::Stopped)
        } else {
            q.insert(job, Instant::now());
            Ok(())
        };
        drop(q);
        self.shared.changed.notify_one();
        Box::pin(async move { result })
    }

    fn consume(&self, out: mpsc::Sender<Delivery>) -> BoxFut<'_, Result<(), DriverError>> {
        let mut consuming = self.shared.consuming.lock();
        let result = if self.shared.queue.lock().stopped {
            Err(DriverError::Stopped)
        } else {
            if consuming.is_none() {
                let stop = CancellationToken::new();
                tokio::spawn(feed(self.shared.clone(), out, stop.clone()));
                *consuming = Some(stop);
            }
            Ok(())
        };
        Box::pin(async move { result })
    }

    fn pause(&self) -> BoxFut<'_, Result<(), DriverError>> {
        if let Some(stop) = self.shared.consuming.lock().take() {
            stop.cancel();
        }
        Box::pin(async { Ok(()) })
    }

    fn stop(&self) -> BoxFut<'_, ()> {
        if let Some(stop) = self.shared.consuming.lock().take() {
            stop.cancel();
        }
        let mut q = self.shared.queue.lock();
        q.stopped = true;
        q.ready.clear();
        q.delayed.clear();
        Box::pin(async {})
    }

    fn stat(&self) -> BoxFut<'_, DriverStat> {
        let q = self.shared.queue.lock();
        let stat = DriverStat {
            active: Some(q.ready.len() as i64),
            delayed: q.delayed.len() as i64,
            reserved: q.in_flight as i64,
        };
        Box::pin(async move { stat })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, priority: i64, delay: u64) -> Job {
        Job {
            id: id.into(),
            priority,
            delay,
            ..Default::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn priority_then_fifo_delays_and_prefetch() {
        let m = Memory::new("p", 2);
        for (id, pr, d) in [("a", 10, 0), ("b", 20, 0), ("c", 10, 0), ("late", 99, 5)] {
            m.push(job(id, pr, d)).await.unwrap();
        }
        let (tx, mut rx) = mpsc::channel(16);
        m.consume(tx).await.unwrap();
        let first = rx.recv().await.unwrap();
        let second = rx.recv().await.unwrap();
        assert_eq!((first.job.id.as_str(), second.job.id.as_str()), ("b", "a"));
        // prefetch 2: nothing more until one is settled.
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(rx.try_recv().is_err());
        assert_eq!(m.stat().await.reserved, 2);
        first.acker.ack().await.unwrap();
        let third = rx.recv().await.unwrap();
        assert_eq!(third.job.id, "c");
        second.acker.nack(true).await.unwrap();
        let again = rx.recv().await.unwrap();
        assert_eq!(again.job.id, "a");
        // The delayed job comes after its delay.
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert!(rx.try_recv().is_err(), "prefetch still full");
        let s = m.stat().await;
        assert_eq!((s.active, s.delayed, s.reserved), (Some(1), 0, 2));
        // A delivery dropped unsettled goes back to the queue.
        drop(third);
        let late = rx.recv().await.unwrap();
        assert_eq!(late.job.id, "late");
        drop(again);
        // c went back first, so it comes first (same priority, FIFO).
        assert_eq!(rx.recv().await.unwrap().job.id, "c");
    }
}
