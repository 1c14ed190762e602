//! The task pipeline: RoadRunner's `jobs` plugin. Producers push jobs over RPC
//! (`jobs.Push`, protobuf), pipelines store them in a broker (memory, RabbitMQ), and the
//! jobs pool's PHP workers (`RR_MODE=jobs`) consume them with RoadRunner's PHP jobs
//! library. docs/jobs-protocol.md is the byte-level contract.
//!
//! # Theory of operation
//! * Each pipeline owns one [`Driver`] (its connection and tasks). Consuming drivers put
//!   [`Delivery`]s into one bounded channel (`jobs.pipeline_size`), each driver bounded
//!   further by its own `prefetch`.
//! * One dispatcher task takes deliveries and runs each in its own task, at most
//!   `jobs.pool.num_workers` at once (so none waits in the pool's queue, where shutdown
//!   could not return it to its broker). A job whose worker answered passes its slot
//!   straight to the next delivery waiting in the channel (started from its own task,
//!   without waking the dispatcher); the dispatcher starts jobs when slots are free and
//!   the channel was empty. The job goes to a worker
//!   through [`Pool::exec`] and the reply's verdict ([`protocol::verdict`]) settles it:
//!   ack, nack, requeue (push again with a delay and headers), or a failure handled by
//!   the pipeline's [`RetryPolicy`]. A job's slot is freed as soon as its worker
//!   answered: settling on the broker overlaps the worker's next job.
//! * At-least-once: a job is acknowledged on its broker only after its worker answered.
//!   When the worker dies or exceeds `exec_ttl`, the job is pushed again with its
//!   `attempts` header raised (and, past `retry.max_attempts`, sent to the failed
//!   pipeline).
//! * Shutdown ([`Jobs::shutdown`]): every driver stops consuming, the dispatcher stops,
//!   jobs in flight get the grace period, deliveries not yet started go back to their
//!   broker, then the drivers close.
//!
//! Module map: [`job`] (the job and the worker's context), [`protocol`] (the reply),
//! [`driver`] (the trait), [`memory`], [`amqp`] (its batched acks: [`ack_window`]), [`beanstalk`], [`nats`], [`proto`] (RPC
//! messages), [`rpc`] (the `jobs.*` methods), [`stats`].

pub mod ack_window;
pub mod amqp;
pub mod beanstalk;
pub mod driver;
pub mod job;
pub mod memory;
pub mod nats;
pub mod plugin;
pub mod proto;
pub mod protocol;
pub mod rpc;
pub mod stats;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{DriverConfig, JobsConfig, PipelineConfig, RetryPolicy};
use crate::pool::{Pool, PoolError, Response};
use crate::relay::frame::flags;
use crate::worker::Payload;

pub use driver::{Acker, Delivery, Driver, DriverError, DriverStat};
pub use job::Job;
pub use plugin::JobsPlugin;
use protocol::Verdict;
pub use stats::PipelineStats;

/// Why a jobs operation failed; the text is what an RPC client sees.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    #[error("no such pipeline: {0}")]
    NoPipeline(String),
    #[error("pipeline {0} already exists")]
    Exists(String),
    #[error("pipeline {pipeline}: {source}")]
    Driver {
        pipeline: String,
        source: DriverError,
    },
    #[error("push to pipeline {0} timed out")]
    Timeout(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the jobs service is shutting down")]
    Closed,
}

/// One pipeline: its config, driver, state and counters.
#[derive(Debug)]
pub struct Pipeline {
    pub config: PipelineConfig,
    pub driver: Arc<dyn Driver>,
    consuming: AtomicBool,
    pub stats: Arc<PipelineStats>,
}

impl Pipeline {
    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn is_consuming(&self) -> bool {
        self.consuming.load(Ordering::Relaxed)
    }
}

/// Starts the jobs pool (`RR_MODE=jobs`). Its workers always talk over pipes: a socket
/// relay address belongs to the HTTP pool.
pub async fn start_pool(
    config: &crate::config::Config,
    jobs: &JobsConfig,
    rpc: Option<String>,
) -> std::io::Result<Pool> {
    if config.server.relay != crate::relay::socket::RelayAddr::Pipes {
        tracing::info!("the jobs pool talks to its workers over pipes (server.relay is for HTTP)");
    }
    let spawner = crate::worker::Spawner::new(
        config.jobs_process_spec(),
        crate::relay::socket::RelayAddr::Pipes,
        "jobs",
        rpc,
        crate::relay::FrameCodec::default(),
        jobs.pool.settings.allocate_timeout,
    )
    .await?;
    Ok(Pool::start("jobs", spawner, jobs.pool.settings.clone()))
}

/// How often queue depths are read from the brokers for the metrics.
const DEPTH_INTERVAL: Duration = Duration::from_secs(2);

/// Samples every pipeline's depth into its counters until the service stops.
async fn sample_depth(jobs: Jobs) {
    let stop = jobs.inner.stop_dispatch.clone();
    loop {
        for pipe in jobs.pipelines() {
            let stat = tokio::select! {
                s = pipe.driver.stat() => s,
                _ = stop.cancelled() => return,
            };
            pipe.stats
                .depth
                .store(stat.active.unwrap_or(-1), Ordering::Relaxed);
        }
        tokio::select! {
            _ = tokio::time::sleep(DEPTH_INTERVAL) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Opens the driver a pipeline names.
fn open(config: &PipelineConfig) -> Arc<dyn Driver> {
    match &config.driver {
        DriverConfig::Memory(m) => Arc::new(memory::Memory::new(&config.name, m.prefetch)),
        DriverConfig::Amqp(a) => Arc::new(amqp::Amqp::new(&config.name, a.clone())),
        DriverConfig::Beanstalk(b) => Arc::new(beanstalk::Beanstalk::new(&config.name, b.clone())),
        DriverConfig::Nats(n) => Arc::new(nats::Nats::new(&config.name, n.clone())),
    }
}

struct Inner {
    pool: Pool,
    pipelines: RwLock<BTreeMap<String, Arc<Pipeline>>>,
    /// Counters outlive a destroyed pipeline of the same name (Prometheus counters must
    /// not go back); bounded by the pipelines ever declared.
    stats: Mutex<BTreeMap<String, Arc<PipelineStats>>>,
    tx: mpsc::Sender<Delivery>,
    push_timeout: Duration,
    brokers: crate::config::Brokers,
    closed: AtomicBool,
    stop_dispatch: CancellationToken,
    in_flight: TaskTracker,
    dispatcher: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The deliveries waiting for a slot: the dispatcher awaits them (holding the lock
    /// while it waits, with a free slot), a job whose worker answered takes the next
    /// one without waiting ([`Jobs::pass_on`]).
    rx: tokio::sync::Mutex<mpsc::Receiver<Delivery>>,
    /// The dispatcher's slots: one per jobs worker, resized with the pool.
    slots: Slots,
}

/// A semaphore whose size follows the jobs pool's `num_workers`. Growing adds permits at
/// once; shrinking forgets the free ones and, for permits held by jobs in flight, takes
/// them back as those jobs finish (a task that owns the debt).
struct Slots {
    semaphore: Arc<Semaphore>,
    size: Mutex<usize>,
    /// Permits a shrink still has to take back from jobs in flight: while any, a slot is
    /// not passed on from job to job but given back, so the shrink gets it.
    debt: Arc<std::sync::atomic::AtomicUsize>,
}

impl Slots {
    fn new(n: usize) -> Slots {
        let n = n.max(1);
        Slots {
            semaphore: Arc::new(Semaphore::new(n)),
            size: Mutex::new(n),
            debt: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        }
    }

    fn resize(&self, n: usize) {
        let n = n.max(1);
        let mut size = self.size.lock();
        if n > *size {
            self.semaphore.add_permits(n - *size);
        } else if n < *size {
            let debt = *size - n;
            let forgotten = self.semaphore.forget_permits(debt);
            if forgotten < debt {
                let semaphore = self.semaphore.clone();
                let rest = u32::try_from(debt - forgotten).unwrap_or(u32::MAX);
                let owed = self.debt.clone();
                owed.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    if let Ok(permits) = semaphore.acquire_many_owned(rest).await {
                        permits.forget();
                    }
                    owed.fetch_sub(1, Ordering::Relaxed);
                });
            }
        }
        *size = n;
    }
}

/// A cheap handle on the jobs service.
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs").finish_non_exhaustive()
    }
}

/// A copy of a pipeline's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub pushed: u64,
    pub consumed: u64,
    pub acked: u64,
    pub failed: u64,
    pub requeued: u64,
}

/// What one job's delivery ended in, for the counters and the tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Acked,
    Failed,
    Requeued,
    /// Not run (no worker, shutting down): back to the broker untouched.
    Returned,
}

impl Jobs {
    /// Opens every configured pipeline and starts consuming those in `jobs.consume`.
    /// Broker connections are made in the background (with retries), so a broker that is
    /// down at start delays its pipeline, not pacer.
    pub async fn start(config: &JobsConfig, pool: Pool) -> Jobs {
        let (tx, rx) = mpsc::channel(config.pipeline_size.clamp(1, 65_536));
        let inner = Arc::new(Inner {
            pool,
            pipelines: RwLock::new(BTreeMap::new()),
            stats: Mutex::new(BTreeMap::new()),
            tx,
            push_timeout: config.timeout,
            brokers: config.brokers.clone(),
            closed: AtomicBool::new(false),
            stop_dispatch: CancellationToken::new(),
            in_flight: TaskTracker::new(),
            dispatcher: Mutex::new(None),
            rx: tokio::sync::Mutex::new(rx),
            slots: Slots::new(config.pool.settings.num_workers),
        });
        let jobs = Jobs { inner };
        for p in &config.pipelines {
            jobs.add(p.clone());
        }
        for name in &config.consume {
            if let Err(error) = jobs.resume(name).await {
                tracing::error!(%error, pipeline = %name, "cannot start consuming");
            }
        }
        // One job per worker at a time: a job waiting in the pool's queue could not be
        // given back to its broker on shutdown. Deliveries wait in the channel instead.
        let handle = tokio::spawn(dispatch(jobs.clone(), jobs.inner.slots.semaphore.clone()));
        *jobs.inner.dispatcher.lock() = Some(handle);
        tokio::spawn(sample_depth(jobs.clone()));
        jobs
    }

    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// Applies new `jobs.pool` settings live (`--watch-config`, the operator's tuning):
    /// the pool's size and limits, and with them how many jobs are handed out at once.
    pub fn resize(&self, settings: crate::pool::PoolSettings) {
        self.inner.slots.resize(settings.num_workers);
        self.inner.pool.update_settings(settings);
    }

    fn add(&self, config: PipelineConfig) -> Arc<Pipeline> {
        let stats = self
            .inner
            .stats
            .lock()
            .entry(config.name.clone())
            .or_default()
            .clone();
        let pipe = Arc::new(Pipeline {
            driver: open(&config),
            config,
            consuming: AtomicBool::new(false),
            stats,
        });
        self.inner
            .pipelines
            .write()
            .insert(pipe.name().to_string(), pipe.clone());
        pipe
    }

    pub fn pipeline(&self, name: &str) -> Result<Arc<Pipeline>, JobsError> {
        self.inner
            .pipelines
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| JobsError::NoPipeline(name.to_string()))
    }

    /// Every pipeline, by name.
    pub fn pipelines(&self) -> Vec<Arc<Pipeline>> {
        self.inner.pipelines.read().values().cloned().collect()
    }

    /// Counters of every pipeline ever declared.
    pub fn stats(&self) -> Vec<(String, Arc<PipelineStats>)> {
        self.inner
            .stats
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// A pipeline's counters right now (zeros for a pipeline never seen).
    pub fn counts(&self, pipeline: &str) -> Counts {
        let stats = self.inner.stats.lock().get(pipeline).cloned();
        stats.map_or_else(Counts::default, |s| Counts {
            pushed: s.pushed.get(),
            consumed: s.consumed.get(),
            acked: s.acked.get(),
            failed: s.failed.get(),
            requeued: s.requeued.get(),
        })
    }

    /// Stores a job in its pipeline (`job.pipeline`), within `jobs.timeout`.
    pub async fn push(&self, mut job: Job) -> Result<(), JobsError> {
        if self.inner.closed.load(Ordering::Relaxed) {
            return Err(JobsError::Closed);
        }
        let pipe = self.pipeline(&job.pipeline)?;
        if job.priority == 0 {
            job.priority = pipe.config.priority;
        }
        self.push_to(&pipe, job).await?;
        pipe.stats.pushed.inc();
        Ok(())
    }

    async fn push_to(&self, pipe: &Pipeline, job: Job) -> Result<(), JobsError> {
        match tokio::time::timeout(self.inner.push_timeout, pipe.driver.push(job)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(JobsError::Driver {
                pipeline: pipe.name().to_string(),
                source,
            }),
            Err(_) => Err(JobsError::Timeout(pipe.name().to_string())),
        }
    }

    /// Starts consuming a pipeline (`jobs.Resume`).
    pub async fn resume(&self, name: &str) -> Result<(), JobsError> {
        if self.inner.closed.load(Ordering::Relaxed) {
            return Err(JobsError::Closed);
        }
        let pipe = self.pipeline(name)?;
        // Set first: a delivery that reaches the dispatcher while this is false goes back.
        pipe.consuming.store(true, Ordering::Relaxed);
        if let Err(source) = pipe.driver.consume(self.inner.tx.clone()).await {
            pipe.consuming.store(false, Ordering::Relaxed);
            return Err(JobsError::Driver {
                pipeline: name.to_string(),
                source,
            });
        }
        tracing::info!(pipeline = %name, driver = pipe.driver.name(), "consuming");
        Ok(())
    }

    /// Stops consuming a pipeline (`jobs.Pause`); pushes still work.
    pub async fn pause(&self, name: &str) -> Result<(), JobsError> {
        let pipe = self.pipeline(name)?;
        pipe.consuming.store(false, Ordering::Relaxed);
        pipe.driver
            .pause()
            .await
            .map_err(|source| JobsError::Driver {
                pipeline: name.to_string(),
                source,
            })?;
        tracing::info!(pipeline = %name, "paused");
        Ok(())
    }

    /// Adds a pipeline at run time (`jobs.Declare`) and starts consuming it, as RR does.
    pub async fn declare(&self, map: &BTreeMap<String, String>) -> Result<(), JobsError> {
        let config = crate::config::pipeline_from_map(map, &self.inner.brokers)
            .map_err(|e| JobsError::Invalid(e.to_string()))?;
        if self.inner.pipelines.read().contains_key(&config.name) {
            return Err(JobsError::Exists(config.name));
        }
        let name = config.name.clone();
        self.add(config);
        tracing::info!(pipeline = %name, "declared");
        self.resume(&name).await
    }

    /// Removes a pipeline (`jobs.Destroy`): stops consuming and closes its driver.
    pub async fn destroy(&self, name: &str) -> Result<(), JobsError> {
        let pipe = self
            .inner
            .pipelines
            .write()
            .remove(name)
            .ok_or_else(|| JobsError::NoPipeline(name.to_string()))?;
        pipe.consuming.store(false, Ordering::Relaxed);
        pipe.driver.stop().await;
        tracing::info!(pipeline = %name, "destroyed");
        Ok(())
    }

    /// The state of every pipeline (`jobs.Stat`).
    pub async fn stat(&self) -> Vec<proto::Stat> {
        let mut out = Vec::new();
        for pipe in self.pipelines() {
            let s = pipe.driver.stat().await;
            out.push(proto::Stat {
                pipeline: pipe.name().to_string(),
                driver: pipe.driver.name().to_string(),
                queue: pipe.driver.queue().to_string(),
                active: s.active.unwrap_or(0),
                delayed: s.delayed,
                reserved: s.reserved,
                ready: pipe.is_consuming(),
                priority: u64::try_from(pipe.config.priority).unwrap_or(0),
            });
        }
        out
    }

    /// Stops consuming, lets jobs in flight finish within `grace`, returns the deliveries
    /// not yet started to their brokers and closes every driver. The jobs pool is
    /// stopped by the caller afterwards.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.closed.store(true, Ordering::Relaxed);
        let pipes = self.pipelines();
        for pipe in &pipes {
            pipe.consuming.store(false, Ordering::Relaxed);
            if let Err(error) = pipe.driver.pause().await {
                tracing::warn!(%error, pipeline = %pipe.name(), "stopping the consumer failed");
            }
        }
        self.inner.stop_dispatch.cancel();
        let handle = self.inner.dispatcher.lock().take();
        if let Some(h) = handle {
            let _ = h.await;
        }
        self.inner.in_flight.close();
        if tokio::time::timeout(grace, self.inner.in_flight.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                ?grace,
                "jobs still running after the grace period; their brokers will deliver them again"
            );
        }
        let mut returned = 0;
        let mut rx = self.inner.rx.lock().await;
        rx.close();
        while let Ok(d) = rx.try_recv() {
            returned += 1;
            if let Err(error) = d.acker.nack(true).await {
                tracing::warn!(%error, "returning a prefetched job failed; the broker redelivers it");
            }
        }
        drop(rx);
        if returned > 0 {
            tracing::info!(returned, "prefetched jobs returned to their brokers");
        }
        for pipe in &pipes {
            pipe.driver.stop().await;
        }
        tracing::info!("jobs stopped");
    }
}

/// Starts deliveries on free slots until stopped. A slot freed by a job whose worker
/// answered usually goes straight to the next delivery ([`Jobs::pass_on`]); the
/// dispatcher serves the slots given back and the deliveries that find the channel empty.
async fn dispatch(jobs: Jobs, slots: Arc<Semaphore>) {
    let stop = jobs.inner.stop_dispatch.clone();
    loop {
        let permit = tokio::select! {
            _ = stop.cancelled() => return,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let delivery = {
            let mut rx = jobs.inner.rx.lock().await;
            tokio::select! {
                _ = stop.cancelled() => return,
                d = rx.recv() => match d {
                    Some(d) => d,
                    None => return,
                },
            }
        };
        jobs.launch(delivery, permit);
    }
}

impl Jobs {
    /// Runs a delivery in a task of its own on the slot it was given.
    fn launch(&self, delivery: Delivery, slot: tokio::sync::OwnedSemaphorePermit) {
        let jobs = self.clone();
        self.inner.in_flight.spawn(async move {
            jobs.run(delivery, slot).await;
        });
    }

    /// A worker answered: its slot goes to the next delivery waiting, started from here,
    /// or back to the dispatcher when none waits (the dispatcher is waiting for one
    /// itself), the slots are shrinking or jobs are stopping.
    fn pass_on(&self, slot: tokio::sync::OwnedSemaphorePermit) {
        if self.inner.stop_dispatch.is_cancelled()
            || self.inner.slots.debt.load(Ordering::Relaxed) > 0
        {
            return;
        }
        let next = match self.inner.rx.try_lock() {
            Ok(mut rx) => rx.try_recv().ok(),
            Err(_) => None,
        };
        if let Some(d) = next {
            self.launch(d, slot);
        }
    }

    /// Runs one delivery on a worker and settles it. `slot` is the dispatcher's permit for
    /// the worker: it is given back as soon as the worker answered, so the next job goes
    /// out while this one is still being settled on its broker (the ack is still sent
    /// only after the worker acked: at-least-once holds; unsettled deliveries stay
    /// bounded by each driver's `prefetch`).
    async fn run(&self, d: Delivery, slot: tokio::sync::OwnedSemaphorePermit) -> Outcome {
        let pipe = self.pipeline(&d.pipeline).ok();
        // A pipeline's counters are its entry in `inner.stats` (no lookup per job).
        let stats = match &pipe {
            Some(p) => p.stats.clone(),
            None => self
                .inner
                .stats
                .lock()
                .entry(d.pipeline.clone())
                .or_default()
                .clone(),
        };
        // Paused (or shutting down) since it was prefetched: back to the broker, not run.
        if pipe.as_ref().is_some_and(|p| !p.is_consuming()) {
            drop(slot);
            if let Err(error) = d.acker.nack(true).await {
                tracing::warn!(%error, "returning a prefetched job failed; the broker redelivers it");
            }
            return Outcome::Returned;
        }
        stats.consumed.inc();
        if let Some(w) = d.waited {
            stats.queue_wait.observe(w);
        }
        let Delivery {
            mut job,
            acker,
            pipeline,
            ..
        } = d;
        // The consuming pipeline owns the job (a producer elsewhere may name another).
        job.pipeline = pipeline;
        let mut acker = Some(acker);
        if job.auto_ack
            && let Some(a) = acker.take()
            && let Err(error) = a.ack().await
        {
            tracing::warn!(%error, id = %job.id, "auto-ack failed");
        }
        let (driver_name, queue) = match &pipe {
            Some(p) => (p.driver.name(), p.driver.queue()),
            None => ("unknown", job.pipeline.as_str()),
        };
        let payload = Payload::new(
            flags::CODEC_RAW,
            job::context(&job, driver_name, queue),
            job.payload.clone(),
        );
        let started = Instant::now();
        let result = self.inner.pool.exec(payload).await;
        self.pass_on(slot);
        let verdict = match result {
            Ok(Response::Single(reply)) => {
                stats.duration.observe(started.elapsed());
                protocol::verdict(&reply.body)
            }
            Ok(Response::Stream(_)) => Verdict::Failed {
                message: "streamed replies are not supported for jobs".to_string(),
                nacked: false,
            },
            Err(PoolError::Soft(message)) => Verdict::Failed {
                message,
                nacked: false,
            },
            Err(e @ (PoolError::WorkerFailed(_) | PoolError::ExecTimeout(_))) => {
                stats.duration.observe(started.elapsed());
                tracing::warn!(error = %e, id = %job.id, pipeline = %job.pipeline, "job's worker died; delivering it again");
                Verdict::Crashed
            }
            Err(error) => {
                // Not the job's fault (no worker, shutting down): back to the broker.
                tracing::warn!(%error, id = %job.id, "job not run; returned to its broker");
                if let Some(a) = acker.take()
                    && let Err(error) = a.nack(true).await
                {
                    tracing::warn!(%error, "returning the job failed");
                }
                return Outcome::Returned;
            }
        };
        let retry = pipe
            .as_ref()
            .map(|p| p.config.retry.clone())
            .unwrap_or_default();
        let outcome = self.settle(job, acker, verdict, &retry).await;
        match outcome {
            Outcome::Acked => stats.acked.inc(),
            Outcome::Failed => stats.failed.inc(),
            Outcome::Requeued => stats.requeued.inc(),
            Outcome::Returned => {}
        }
        outcome
    }

    async fn settle(
        &self,
        mut job: Job,
        acker: Option<Box<dyn Acker>>,
        verdict: Verdict,
        retry: &RetryPolicy,
    ) -> Outcome {
        let ack = |acker: Option<Box<dyn Acker>>| async move {
            if let Some(a) = acker
                && let Err(error) = a.ack().await
            {
                tracing::warn!(%error, "ack failed; the broker may deliver the job again");
            }
        };
        match verdict {
            Verdict::Ack => {
                ack(acker).await;
                Outcome::Acked
            }
            Verdict::NackRequeue => {
                if let Some(a) = acker
                    && let Err(error) = a.nack(true).await
                {
                    tracing::warn!(%error, "nack failed; the broker delivers the job again");
                }
                Outcome::Requeued
            }
            Verdict::Requeue { delay, headers } => {
                job.delay = delay;
                job.headers.extend(headers);
                self.push_again(job, acker).await
            }
            Verdict::Crashed => {
                let attempts = job.attempts() + 1;
                if retry.max_attempts > 0 && attempts >= retry.max_attempts {
                    return self
                        .give_up(job, acker, retry, attempts, "its worker died")
                        .await;
                }
                job.set_attempts(attempts);
                job.delay = retry.delay.as_secs();
                match self.push_again(job, acker).await {
                    Outcome::Requeued => Outcome::Failed,
                    other => other,
                }
            }
            Verdict::Failed { message, nacked } => {
                tracing::warn!(id = %job.id, pipeline = %job.pipeline, %message, "job failed");
                if retry.max_attempts == 0 {
                    // RoadRunner: a nack goes to the broker (dead-lettering applies), an
                    // error is acknowledged.
                    match acker {
                        Some(a) if nacked => {
                            if let Err(error) = a.nack(false).await {
                                tracing::warn!(%error, "nack failed");
                            }
                        }
                        other => ack(other).await,
                    }
                    return Outcome::Failed;
                }
                let attempts = job.attempts() + 1;
                if attempts >= retry.max_attempts {
                    return self.give_up(job, acker, retry, attempts, &message).await;
                }
                job.set_attempts(attempts);
                job.delay = retry.delay.as_secs();
                match self.push_again(job, acker).await {
                    Outcome::Requeued => Outcome::Failed,
                    other => other,
                }
            }
        }
    }

    /// Pushes a copy to the job's own pipeline, then acknowledges this delivery. When the
    /// push fails the delivery goes back to the broker instead: never lost.
    async fn push_again(&self, job: Job, acker: Option<Box<dyn Acker>>) -> Outcome {
        let pushed = match self.pipeline(&job.pipeline) {
            Ok(pipe) => self.push_to(&pipe, job).await,
            Err(e) => Err(e),
        };
        match pushed {
            Ok(()) => {
                if let Some(a) = acker
                    && let Err(error) = a.ack().await
                {
                    tracing::warn!(%error, "ack after requeue failed; the job may run twice");
                }
                Outcome::Requeued
            }
            Err(error) => {
                tracing::warn!(%error, "requeue failed; returning the job to its broker");
                if let Some(a) = acker
                    && let Err(error) = a.nack(true).await
                {
                    tracing::warn!(%error, "nack failed; the broker delivers the job again");
                }
                Outcome::Returned
            }
        }
    }

    /// After the last attempt: to the failed pipeline, or dropped (dead-lettered).
    async fn give_up(
        &self,
        mut job: Job,
        acker: Option<Box<dyn Acker>>,
        retry: &RetryPolicy,
        attempts: u32,
        reason: &str,
    ) -> Outcome {
        job.set_attempts(attempts);
        match &retry.failed_pipeline {
            Some(failed) => {
                tracing::warn!(id = %job.id, from = %job.pipeline, to = %failed, attempts, %reason, "job failed for good; moved to the failed pipeline");
                job.pipeline = failed.clone();
                job.delay = 0;
                match self.push_again(job, acker).await {
                    Outcome::Requeued => Outcome::Failed,
                    other => other,
                }
            }
            None => {
                tracing::error!(id = %job.id, pipeline = %job.pipeline, attempts, %reason, "job failed for good and there is no failed_pipeline; dropped");
                if let Some(a) = acker
                    && let Err(error) = a.nack(false).await
                {
                    tracing::warn!(%error, "nack failed");
                }
                Outcome::Failed
            }
        }
    }
}
