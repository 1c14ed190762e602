//! The one trait every broker implements, and what it hands to the consumer.
//!
//! A driver owns its connection and whatever tasks it needs; the jobs service holds it as
//! `Arc<dyn Driver>`. Deliveries go into one bounded channel shared by every pipeline
//! (`jobs.pipeline_size`), each with an [`Acker`] that settles it on the broker exactly
//! once. A new driver (SQS, Kafka, …) implements [`Driver`] and is matched by name in
//! `jobs::pipeline::open`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{Notify, mpsc, watch};

use super::job::Job;

/// A boxed future, so the traits stay object-safe.
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a broker operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("{0}")]
    Broker(String),
    #[error("the broker did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the pipeline is stopped")]
    Stopped,
}

/// A broker client's error as a [`DriverError::Broker`] (every driver's clients have their
/// own error types; the dispatcher only logs the message).
pub(crate) fn broker(e: impl fmt::Display) -> DriverError {
    DriverError::Broker(e.to_string())
}

/// Milliseconds since the Unix epoch: the drivers' clock for delays and queue wait.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// When a job pushed at `now` (ms since the epoch) with a delay of `delay_secs` is due:
/// the broker drivers carry it with the job, so the consumer can tell its queue wait.
pub(crate) fn due_ms(now: i64, delay_secs: u64) -> i64 {
    now.saturating_add(i64::try_from(delay_secs.saturating_mul(1000)).unwrap_or(i64::MAX))
}

/// How long a job due at `due` has waited at `now` (none when its message did not say).
pub(crate) fn waited(now: i64, due: Option<i64>) -> Option<Duration> {
    due.map(|d| Duration::from_millis(u64::try_from(now - d).unwrap_or(0)))
}

/// Where a broker driver's consumer task hands its deliveries: set by
/// [`Driver::consume`], cleared by `pause` and `stop`; `kick` wakes the task to look.
/// The task hands a delivery over under the lock of `out`, so after [`Outlet::close`]
/// returns none is delivered (it gives them back to the broker instead).
#[derive(Debug, Default)]
pub(crate) struct Outlet {
    pub(crate) out: parking_lot::Mutex<Option<mpsc::Sender<Delivery>>>,
    pub(crate) kick: Notify,
}

impl Outlet {
    /// `consume`: deliveries go to `out` from now on, unless the driver was stopped.
    pub(crate) fn open(
        &self,
        stopped: &AtomicBool,
        out: mpsc::Sender<Delivery>,
    ) -> Result<(), DriverError> {
        if stopped.load(Ordering::Relaxed) {
            return Err(DriverError::Stopped);
        }
        *self.out.lock() = Some(out);
        self.kick.notify_one();
        Ok(())
    }

    /// `pause` and `stop`: no delivery is handed over from now on.
    pub(crate) fn close(&self) {
        *self.out.lock() = None;
        self.kick.notify_one();
    }
}

/// The broker connection to publish on: the current one, or the next one when it is
/// down (the caller's timeout bounds the wait); `Stopped` once the driver stopped.
pub(crate) async fn current_link<L: Clone>(
    links: &mut watch::Receiver<Option<L>>,
    stopped: &AtomicBool,
) -> Result<L, DriverError> {
    loop {
        if stopped.load(Ordering::Relaxed) {
            return Err(DriverError::Stopped);
        }
        if let Some(link) = links.borrow_and_update().clone() {
            return Ok(link);
        }
        if links.changed().await.is_err() {
            return Err(DriverError::Stopped);
        }
    }
}

/// Whether a driver reaches its broker, for `/ready`: set by the task that owns the
/// connection, read by [`Driver::reachable`].
#[derive(Debug)]
pub(crate) struct Reach(parking_lot::Mutex<Result<(), String>>);

impl Reach {
    /// Not connected yet.
    pub(crate) fn new(broker: &str) -> Reach {
        Reach(parking_lot::Mutex::new(Err(format!(
            "not connected to {broker} yet"
        ))))
    }

    pub(crate) fn up(&self) {
        *self.0.lock() = Ok(());
    }

    pub(crate) fn down(&self, reason: impl fmt::Display) {
        *self.0.lock() = Err(reason.to_string());
    }

    pub(crate) fn get(&self) -> Result<(), String> {
        self.0.lock().clone()
    }
}

/// One job taken from a broker, not yet settled.
#[derive(Debug)]
pub struct Delivery {
    /// The pipeline that consumed it (its policies and counters apply).
    pub pipeline: String,
    pub job: Job,
    /// How long it waited in the broker, when the driver can tell.
    pub waited: Option<Duration>,
    pub acker: Box<dyn Acker>,
}

/// Settles one delivery on its broker.
pub trait Acker: Send + fmt::Debug {
    fn ack(self: Box<Self>) -> BoxFut<'static, Result<(), DriverError>>;
    /// `requeue`: give it back to the queue; otherwise drop it (or dead-letter it, where
    /// the broker is set up to).
    fn nack(self: Box<Self>, requeue: bool) -> BoxFut<'static, Result<(), DriverError>>;
}

/// What `jobs.Stat` reports for a pipeline.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DriverStat {
    /// Jobs waiting in the queue, ready to run (`None`: the broker cannot say).
    pub active: Option<i64>,
    /// Jobs waiting for their delay.
    pub delayed: i64,
    /// Jobs handed out and not yet settled.
    pub reserved: i64,
}

/// A broker behind one pipeline.
pub trait Driver: Send + Sync + fmt::Debug {
    /// The driver's name in the config (`memory`, `amqp`).
    fn name(&self) -> &'static str;
    /// The broker-side queue (tube, stream) name the worker's context reports.
    fn queue(&self) -> &str;
    /// Stores a job (after `job.delay` seconds it may run).
    fn push(&self, job: Job) -> BoxFut<'_, Result<(), DriverError>>;
    /// Starts delivering into `out` (no-op when already consuming).
    fn consume(&self, out: mpsc::Sender<Delivery>) -> BoxFut<'_, Result<(), DriverError>>;
    /// Stops delivering; jobs in flight can still be settled.
    fn pause(&self) -> BoxFut<'_, Result<(), DriverError>>;
    /// Stops for good and releases the connection (`jobs.Destroy`, shutdown).
    fn stop(&self) -> BoxFut<'_, ()>;
    fn stat(&self) -> BoxFut<'_, DriverStat>;
    /// `Err(why)` while a consuming driver cannot reach its broker (it reconnects in the
    /// background); `/ready` turns 503 meanwhile.
    fn reachable(&self) -> Result<(), String> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_and_waited() {
        assert_eq!(due_ms(1_000, 0), 1_000);
        assert_eq!(due_ms(1_000, 3), 4_000);
        assert_eq!(due_ms(1_000, u64::MAX), i64::MAX);
        assert_eq!(
            waited(5_500, Some(4_000)),
            Some(Duration::from_millis(1_500))
        );
        // A clock behind the producer's: no negative wait.
        assert_eq!(waited(3_000, Some(4_000)), Some(Duration::ZERO));
        assert_eq!(waited(3_000, None), None);
    }

    #[test]
    fn the_outlet_opens_unless_stopped_and_closes() {
        let outlet = Outlet::default();
        let (tx, _rx) = mpsc::channel(1);
        assert!(matches!(
            outlet.open(&AtomicBool::new(true), tx.clone()),
            Err(DriverError::Stopped)
        ));
        assert!(outlet.out.lock().is_none());
        outlet.open(&AtomicBool::new(false), tx).unwrap();
        assert!(outlet.out.lock().is_some());
        outlet.close();
        assert!(outlet.out.lock().is_none());
    }
}
