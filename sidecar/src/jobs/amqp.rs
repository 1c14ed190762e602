//! `driver: amqp`: RabbitMQ, message-compatible with RoadRunner's amqp driver
//! (`roadrunner-server/amqp` `item.go`): the job travels as the message body, its
//! metadata in the headers table (`rr_id`, `rr_job`, `rr_pipeline`, `rr_headers` as JSON
//! bytes, `rr_delay`, `rr_priority`, `rr_auto_ack`), so RR and pacer can share queues.
//! Pacer adds `pacer_due_ms` (when the job may run, unix ms) for the queue-wait histogram.
//!
//! # Theory of operation
//! One task per pipeline ([`maintain`]) owns the connection: it connects (with backoff),
//! declares the exchange, queue and binding, opens the publish channel (transactions, so
//! a push returns only once RabbitMQ has the message), and — while the pipeline is
//! consumed — a consumer channel with `basic.qos(prefetch)`. When the connection fails it
//! starts over; unacknowledged deliveries of the lost channel are redelivered by RabbitMQ.
//! An [`Acker`] settles its delivery on the channel it came from, never on a newer one.
//! Acks are batched per consumer channel ([`AckWindow`]): a flusher task, woken by the
//! acks, sends one `basic.ack(multiple)` for the run of acked deliveries below the oldest
//! unanswered one — every ack that arrived while it waited for its turn on the runtime,
//! so none is delayed on purpose and a busy pacer sends one frame (one write for pacer,
//! one frame for RabbitMQ) for many jobs; a delivery is still acked only after its worker
//! acked.
//! Delays use RoadRunner's scheme: a per-delay queue whose messages expire into the
//! pipeline's exchange (`x-message-ttl` + dead-lettering).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use amqprs::channel::{
    BasicAckArguments, BasicCancelArguments, BasicConsumeArguments, BasicNackArguments,
    BasicPublishArguments, BasicQosArguments, Channel, ConsumerMessage, ExchangeDeclareArguments,
    QueueBindArguments, QueueDeclareArguments, QueueDeleteArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::{BasicProperties, ByteArray, FieldTable, FieldValue, ShortStr};
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::ack_window::{AckWindow, Flush};
use super::driver::{
    Acker, BoxFut, Delivery, Driver, DriverError, DriverStat, Outlet, Reach, broker, current_link,
    due_ms, now_ms, waited,
};
use super::job::{Headers, Job};
use crate::config::AmqpConfig;

const RR_ID: &str = "rr_id";
const RR_JOB: &str = "rr_job";
const RR_PIPELINE: &str = "rr_pipeline";
const RR_HEADERS: &str = "rr_headers";
const RR_DELAY: &str = "rr_delay";
const RR_PRIORITY: &str = "rr_priority";
const RR_AUTO_ACK: &str = "rr_auto_ack";
const PACER_DUE: &str = "pacer_due_ms";
/// How long `pause` waits for RabbitMQ to confirm the consumer's cancel.
const PAUSE_WAIT: Duration = Duration::from_secs(10);
/// Flushes an ack waits for an older unanswered delivery before it goes out alone.
const ACK_MAX_AGE: u32 = 4;
/// How long such acks wait at most when no other ack comes.
const ACK_HOLD: Duration = Duration::from_millis(5);

/// The live connection, replaced on every reconnect.
#[derive(Clone)]
struct Link {
    conn: Connection,
    publish: Channel,
    /// Serialises publish + commit on the transactional channel.
    publish_lock: Arc<tokio::sync::Mutex<()>>,
}

struct Shared {
    pipeline: String,
    cfg: AmqpConfig,
    link: watch::Sender<Option<Link>>,
    /// Where the consumer task hands its deliveries (see [`Outlet`]).
    outlet: Outlet,
    /// Whether a consumer is registered with RabbitMQ: `pause` waits for `false`, so a
    /// job pushed after `jobs.Pause` returned is never delivered.
    consuming: watch::Sender<bool>,
    stop: CancellationToken,
    stopped: AtomicBool,
    reserved: Arc<AtomicI64>,
    delay_queues: Mutex<HashSet<u64>>,
    /// Whether the connection is up (and the consumer, while wanted), for `/ready`.
    reach: Reach,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("amqp")
            .field("pipeline", &self.pipeline)
            .field("queue", &self.cfg.queue)
            .finish_non_exhaustive()
    }
}

/// The amqp driver of one pipeline.
#[derive(Debug, Clone)]
pub struct Amqp {
    shared: Arc<Shared>,
}

fn name(s: &str) -> ShortStr {
    ShortStr::try_from(s).unwrap_or_default()
}

impl Amqp {
    /// Starts the connection task; it connects in the background.
    pub fn new(pipeline: &str, cfg: AmqpConfig) -> Amqp {
        let (link, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            pipeline: pipeline.to_string(),
            cfg,
            link,
            outlet: Outlet::default(),
            consuming: watch::channel(false).0,
            stop: CancellationToken::new(),
            stopped: AtomicBool::new(false),
            reserved: Arc::new(AtomicI64::new(0)),
            delay_queues: Mutex::new(HashSet::new()),
            reach: Reach::new("RabbitMQ"),
        });
        tokio::spawn(maintain(shared.clone()));
        Amqp { shared }
    }
}

async fn connect(cfg: &AmqpConfig, pipeline: &str) -> Result<Link, DriverError> {
    let mut args = OpenConnectionArguments::try_from(cfg.addr.as_str()).map_err(broker)?;
    args.connection_name(&format!("pacer {pipeline}"));
    let conn = Connection::open(&args).await.map_err(broker)?;
    let ch = conn.open_channel(None).await.map_err(broker)?;
    declare(&ch, cfg).await?;
    ch.tx_select().await.map_err(broker)?;
    Ok(Link {
        conn,
        publish: ch,
        publish_lock: Arc::new(tokio::sync::Mutex::new(())),
    })
}

/// The exchange, the queue and their binding, as RR declares them.
async fn declare(ch: &Channel, cfg: &AmqpConfig) -> Result<(), DriverError> {
    if !cfg.exchange.is_empty() {
        ch.exchange_declare(
            ExchangeDeclareArguments::new(&cfg.exchange, &cfg.exchange_type)
                .durable(cfg.exchange_durable)
                .auto_delete(cfg.exchange_auto_delete)
                .finish(),
        )
        .await
        .map_err(broker)?;
    }
    let mut args = FieldTable::new();
    for (k, v) in &cfg.queue_headers {
        let value = match v.parse::<i64>() {
            Ok(n) => FieldValue::l(n),
            Err(_) => FieldValue::from(v.as_str()),
        };
        args.insert(name(k), value);
    }
    ch.queue_declare(
        QueueDeclareArguments::new(&cfg.queue)
            .durable(cfg.durable)
            .exclusive(cfg.exclusive)
            .auto_delete(cfg.queue_auto_delete)
            .arguments(args)
            .finish(),
    )
    .await
    .map_err(broker)?;
    if !cfg.exchange.is_empty() {
        ch.queue_bind(QueueBindArguments::new(
            &cfg.queue,
            &cfg.exchange,
            &cfg.routing_key,
        ))
        .await
        .map_err(broker)?;
    }
    Ok(())
}

/// Owns the connection: connects with backoff, runs the consumer while wanted, starts
/// over when the connection fails.
async fn maintain(shared: Arc<Shared>) {
    let mut backoff = Duration::from_millis(100);
    let mut failing_since: Option<tokio::time::Instant> = None;
    loop {
        if shared.stop.is_cancelled() {
            return;
        }
        let link = tokio::select! {
            _ = shared.stop.cancelled() => return,
            l = connect(&shared.cfg, &shared.pipeline) => l,
        };
        let link = match link {
            Ok(l) => l,
            Err(error) => {
                shared.reach.down(format!("RabbitMQ unreachable: {error}"));
                let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                let redial = shared.cfg.redial_timeout;
                if !redial.is_zero() && since.elapsed() > redial {
                    tracing::error!(%error, pipeline = %shared.pipeline, ?redial, "RabbitMQ unreachable for longer than redial_timeout; still retrying");
                } else {
                    tracing::warn!(%error, pipeline = %shared.pipeline, retry_in = ?backoff, "cannot connect to RabbitMQ");
                }
                tokio::select! {
                    _ = shared.stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if failing_since.take().is_some() {
            tracing::info!(pipeline = %shared.pipeline, "reconnected to RabbitMQ");
        }
        backoff = Duration::from_millis(100);
        shared.reach.up();
        shared.delay_queues.lock().clear();
        shared.link.send_replace(Some(link.clone()));
        let mut consumer: Option<(Channel, String, CancellationToken)> = None;
        // The ack batches of this connection's consumer channels (one per resume): kept
        // until settled, flushed before the connection closes.
        let mut batches: Vec<Arc<Acks>> = Vec::new();
        loop {
            let want = shared.outlet.out.lock().clone();
            match (&want, &consumer) {
                (Some(out), None) => {
                    // Set before basic.consume: a pause meanwhile waits for the cancel.
                    shared.consuming.send_replace(true);
                    // Settled ones are closed by their `close_when_settled`.
                    batches.retain(|a| !a.idle());
                    match start_consumer(&shared, &link, out.clone()).await {
                        Ok((c, acks)) => {
                            consumer = Some(c);
                            batches.push(acks);
                        }
                        Err(error) => {
                            shared
                                .reach
                                .down(format!("cannot consume from RabbitMQ: {error}"));
                            tracing::warn!(%error, pipeline = %shared.pipeline, "cannot start the consumer");
                            let _ = link.conn.clone().close().await;
                            break;
                        }
                    }
                }
                (None, Some(_)) => {
                    if let Some((ch, tag, stop)) = consumer.take() {
                        cancel_consumer(&ch, &tag, &stop).await;
                        // Paused: the channel closes once its deliveries are settled
                        // (closing earlier would requeue jobs still running).
                        if let Some(acks) = batches.last() {
                            tokio::spawn(close_when_settled(acks.clone(), ch));
                        }
                    }
                    shared.consuming.send_replace(false);
                }
                _ => {}
            }
            tokio::select! {
                _ = shared.stop.cancelled() => {
                    if let Some((ch, tag, stop)) = consumer.take() {
                        cancel_consumer(&ch, &tag, &stop).await;
                    }
                    shared.consuming.send_replace(false);
                    shared.link.send_replace(None);
                    // Jobs that finished are acked before the connection goes.
                    for acks in batches.drain(..) {
                        acks.flush(0).await;
                        acks.closed.cancel();
                    }
                    if shared.cfg.delete_queue_on_stop {
                        let _ = link.publish.queue_delete(QueueDeleteArguments::new(&shared.cfg.queue)).await;
                    }
                    let _ = link.conn.close().await;
                    return;
                }
                _ = link.conn.listen_network_io_failure() => {
                    shared.reach.down("RabbitMQ connection lost; reconnecting");
                    tracing::warn!(pipeline = %shared.pipeline, "RabbitMQ connection lost; reconnecting");
                    break;
                }
                _ = shared.outlet.kick.notified() => {}
            }
        }
        shared.link.send_replace(None);
        if let Some((_, _, stop)) = consumer.take() {
            stop.cancel();
        }
        // Their channels are gone: RabbitMQ delivers the unacked jobs again.
        for acks in batches.drain(..) {
            acks.closed.cancel();
        }
        // The connection is gone, and with it the consumer.
        shared.consuming.send_replace(false);
    }
}

/// How often a paused consumer's channel checks whether its deliveries are settled.
const SETTLE_POLL: Duration = Duration::from_millis(20);

/// Closes a paused consumer's channel once every delivery on it is settled (prefetched
/// ones are returned by the dispatcher, running ones finish), after sending its
/// pending acks; ends early when the connection goes (RabbitMQ then redelivers).
async fn close_when_settled(acks: Arc<Acks>, ch: Channel) {
    let mut idle_once = false;
    loop {
        // Idle twice in a row: a flush that took the last acks has queued its frame.
        if acks.idle() && std::mem::replace(&mut idle_once, true) {
            acks.flush(0).await;
            acks.closed.cancel();
            if let Err(error) = ch.close().await {
                tracing::debug!(%error, "closing a paused consumer's channel failed");
            }
            return;
        }
        if !acks.idle() {
            idle_once = false;
        }
        tokio::select! {
            _ = acks.closed.cancelled() => return,
            _ = tokio::time::sleep(SETTLE_POLL) => {}
        }
    }
}

async fn cancel_consumer(ch: &Channel, tag: &str, stop: &CancellationToken) {
    if let Err(error) = ch.basic_cancel(BasicCancelArguments::new(tag)).await {
        tracing::debug!(%error, "basic.cancel failed");
    }
    stop.cancel();
}

async fn start_consumer(
    shared: &Arc<Shared>,
    link: &Link,
    out: mpsc::Sender<Delivery>,
) -> Result<((Channel, String, CancellationToken), Arc<Acks>), DriverError> {
    let ch = link.conn.open_channel(None).await.map_err(broker)?;
    ch.basic_qos(BasicQosArguments::new(0, shared.cfg.prefetch, false))
        .await
        .map_err(broker)?;
    let tag = shared
        .cfg
        .consumer_id
        .clone()
        .unwrap_or_else(|| format!("pacer-{}-{}", shared.pipeline, std::process::id()));
    let (tag, mut rx) = ch
        .basic_consume_rx(
            BasicConsumeArguments::new(&shared.cfg.queue, &tag)
                .manual_ack(true)
                .exclusive(shared.cfg.exclusive)
                .finish(),
        )
        .await
        .map_err(broker)?;
    let stop = CancellationToken::new();
    let acks = Acks::new(ch.clone());
    let (shared2, ch2, stop2) = (shared.clone(), acks.clone(), stop.clone());
    tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                m = rx.recv() => m,
                _ = stop2.cancelled() => None,
            };
            let Some(msg) = msg else { break };
            let Some(d) = delivery(&shared2, &ch2, msg) else {
                continue;
            };
            if let Err(mpsc::error::SendError(d)) = out.send(d).await {
                let _ = d.acker.nack(true).await;
                break;
            }
        }
        // Deliveries received after the cancel go straight back.
        rx.close();
        while let Ok(msg) = rx.try_recv() {
            if let Some(d) = delivery(&shared2, &ch2, msg) {
                let _ = d.acker.nack(true).await;
            }
        }
    });
    tracing::info!(pipeline = %shared.pipeline, queue = %shared.cfg.queue, prefetch = shared.cfg.prefetch, "consuming from RabbitMQ");
    Ok(((ch, tag, stop), acks))
}

/// The batched acks of one consumer channel, shared by its ackers and its flusher task.
struct Acks {
    ch: Channel,
    window: Mutex<AckWindow>,
    /// An ack is pending.
    wake: Notify,
    /// The channel's connection is gone: the flusher ends.
    closed: CancellationToken,
}

impl Acks {
    fn new(ch: Channel) -> Arc<Acks> {
        let acks = Arc::new(Acks {
            ch,
            window: Mutex::new(AckWindow::new()),
            wake: Notify::new(),
            closed: CancellationToken::new(),
        });
        tokio::spawn(flush_acks(acks.clone()));
        acks
    }

    fn ack(&self, tag: u64) {
        self.window.lock().ack(tag);
        // Coalesces: while the flusher is already due, this only sets a flag.
        self.wake.notify_one();
    }

    /// Sends what the window lets go (`max_age` 0: everything pending).
    async fn flush(&self, max_age: u32) {
        let Flush { up_to, singles } = self.window.lock().take(max_age);
        if let Some(tag) = up_to
            && let Err(error) = self.ch.basic_ack(BasicAckArguments::new(tag, true)).await
        {
            tracing::debug!(%error, "basic.ack failed; RabbitMQ delivers those jobs again");
        }
        for tag in singles {
            if let Err(error) = self.ch.basic_ack(BasicAckArguments::new(tag, false)).await {
                tracing::debug!(%error, "basic.ack failed; RabbitMQ delivers the job again");
            }
        }
    }

    /// Whether nothing on this channel waits to be settled.
    fn idle(&self) -> bool {
        let w = self.window.lock();
        w.pending() == 0 && w.outstanding() == 0
    }
}

/// The flusher of one channel: after a wake it yields once (acks that are ready to run
/// join the batch), then sends what the window lets go; acks held behind an unanswered
/// delivery go out alone after [`ACK_MAX_AGE`] flushes or [`ACK_HOLD`].
async fn flush_acks(acks: Arc<Acks>) {
    let mut held = false;
    loop {
        let force = tokio::select! {
            _ = acks.wake.notified() => false,
            _ = tokio::time::sleep(ACK_HOLD), if held => true,
            _ = acks.closed.cancelled() => return,
        };
        tokio::task::yield_now().await;
        acks.flush(if force { 0 } else { ACK_MAX_AGE }).await;
        held = acks.window.lock().pending() > 0;
    }
}

fn int(v: &FieldValue) -> Option<i64> {
    match v {
        FieldValue::b(n) => Some(i64::from(*n)),
        FieldValue::B(n) => Some(i64::from(*n)),
        FieldValue::s(n) => Some(i64::from(*n)),
        FieldValue::u(n) => Some(i64::from(*n)),
        FieldValue::I(n) => Some(i64::from(*n)),
        FieldValue::i(n) => Some(i64::from(*n)),
        FieldValue::l(n) => Some(*n),
        FieldValue::T(n) => i64::try_from(*n).ok(),
        _ => None,
    }
}

fn text(v: &FieldValue) -> Option<String> {
    match v {
        FieldValue::S(s) => Some(s.as_ref().clone()),
        FieldValue::x(b) => Some(String::from_utf8_lossy(&Vec::<u8>::from(b.clone())).into_owned()),
        FieldValue::t(b) => Some(b.to_string()),
        other => int(other).map(|n| n.to_string()),
    }
}

/// A RabbitMQ message → a job (RR's `unpack`).
fn unpack(pipeline: &str, headers: Option<&FieldTable>, body: Vec<u8>) -> (Job, Option<i64>) {
    let mut job = Job {
        pipeline: pipeline.to_string(),
        payload: Bytes::from(body),
        priority: 10,
        ..Default::default()
    };
    let mut due = None;
    let mut other = Headers::new();
    if let Some(table) = headers {
        for (k, v) in table.as_ref() {
            match k.as_ref().as_str() {
                RR_ID => job.id = text(v).unwrap_or_default(),
                RR_JOB => job.name = text(v).unwrap_or_default(),
                RR_PIPELINE => {}
                RR_HEADERS => {
                    if let Some(json) = text(v) {
                        match serde_json::from_str::<Option<Headers>>(&json) {
                            Ok(h) => job.headers.extend(h.unwrap_or_default()),
                            Err(error) => tracing::warn!(%error, "rr_headers is not JSON; ignored"),
                        }
                    }
                }
                RR_DELAY => job.delay = int(v).and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                RR_PRIORITY => job.priority = int(v).unwrap_or(10),
                RR_AUTO_ACK => job.auto_ack = matches!(v, FieldValue::t(true)),
                PACER_DUE => due = int(v),
                key => {
                    if let Some(s) = text(v) {
                        other.insert(key.to_string(), vec![s]);
                    }
                }
            }
        }
    }
    for (k, v) in other {
        job.headers.entry(k).or_insert(v);
    }
    if job.id.is_empty() {
        job.id = format!("pacer-{:x}{:x}", fastrand::u64(..), fastrand::u64(..));
    }
    if job.name.is_empty() {
        job.name = "deduced_by_rr".to_string();
    }
    (job, due)
}

/// A job → headers table (RR's `pack`).
fn pack(job: &Job, due_ms: i64) -> FieldTable {
    let mut t = FieldTable::new();
    let headers = serde_json::to_vec(&job.headers).unwrap_or_else(|_| b"{}".to_vec());
    t.insert(name(RR_ID), FieldValue::from(job.id.as_str()));
    t.insert(name(RR_JOB), FieldValue::from(job.name.as_str()));
    t.insert(name(RR_PIPELINE), FieldValue::from(job.pipeline.as_str()));
    if let Ok(b) = ByteArray::try_from(headers) {
        t.insert(name(RR_HEADERS), FieldValue::x(b));
    }
    t.insert(
        name(RR_DELAY),
        FieldValue::l(i64::try_from(job.delay).unwrap_or(i64::MAX)),
    );
    t.insert(name(RR_PRIORITY), FieldValue::l(job.priority));
    t.insert(name(RR_AUTO_ACK), FieldValue::t(job.auto_ack));
    t.insert(name(PACER_DUE), FieldValue::l(due_ms));
    t
}

fn delivery(shared: &Arc<Shared>, acks: &Arc<Acks>, msg: ConsumerMessage) -> Option<Delivery> {
    let deliver = msg.deliver?;
    let tag = deliver.delivery_tag();
    acks.window.lock().deliver(tag);
    let props = msg.basic_properties;
    let (job, due) = unpack(
        &shared.pipeline,
        props.as_ref().and_then(|p| p.headers()),
        msg.content.unwrap_or_default(),
    );
    let waited = waited(now_ms(), due);
    shared.reserved.fetch_add(1, Ordering::Relaxed);
    Some(Delivery {
        pipeline: shared.pipeline.clone(),
        job,
        waited,
        acker: Box::new(AmqpAcker {
            acks: Some(acks.clone()),
            tag,
            requeue_on_fail: shared.cfg.requeue_on_fail,
            reserved: shared.reserved.clone(),
        }),
    })
}

/// Settles one delivery on the channel it arrived on.
struct AmqpAcker {
    acks: Option<Arc<Acks>>,
    tag: u64,
    requeue_on_fail: bool,
    reserved: Arc<AtomicI64>,
}

impl std::fmt::Debug for AmqpAcker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpAcker").field("tag", &self.tag).finish()
    }
}

/// Nacks one delivery, then lets the batched acks past it (its frame is queued first).
async fn nack(acks: Arc<Acks>, tag: u64, requeue: bool) -> Result<(), DriverError> {
    let sent = acks
        .ch
        .basic_nack(BasicNackArguments::new(tag, false, requeue))
        .await
        .map_err(broker);
    acks.window.lock().settled(tag);
    sent
}

impl Drop for AmqpAcker {
    /// Dropped unsettled: give it back, so the prefetch slot is not leaked.
    fn drop(&mut self) {
        if let Some(acks) = self.acks.take() {
            self.reserved.fetch_sub(1, Ordering::Relaxed);
            let tag = self.tag;
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = nack(acks, tag, true).await;
                });
            }
        }
    }
}

impl Acker for AmqpAcker {
    /// Batched: the ack goes out with the channel's next flush (within a few ms).
    fn ack(mut self: Box<Self>) -> BoxFut<'static, Result<(), DriverError>> {
        if let Some(acks) = self.acks.take() {
            self.reserved.fetch_sub(1, Ordering::Relaxed);
            acks.ack(self.tag);
        }
        Box::pin(async { Ok(()) })
    }

    fn nack(mut self: Box<Self>, requeue: bool) -> BoxFut<'static, Result<(), DriverError>> {
        let acks = self.acks.take();
        self.reserved.fetch_sub(1, Ordering::Relaxed);
        let requeue = requeue || self.requeue_on_fail;
        let tag = self.tag;
        Box::pin(async move {
            match acks {
                Some(acks) => nack(acks, tag, requeue).await,
                None => Ok(()),
            }
        })
    }
}

impl Amqp {
    /// The queue a delayed job waits in: its messages expire into the pipeline's exchange.
    async fn delay_queue(&self, ch: &Channel, delay_ms: u64) -> Result<String, DriverError> {
        let cfg = &self.shared.cfg;
        let q = format!("delayed-{delay_ms}.{}.{}", cfg.exchange, cfg.queue);
        if self.shared.delay_queues.lock().contains(&delay_ms) {
            return Ok(q);
        }
        let mut args = FieldTable::new();
        let ms = i64::try_from(delay_ms).unwrap_or(i64::MAX);
        args.insert(
            name("x-dead-letter-exchange"),
            FieldValue::from(cfg.exchange.as_str()),
        );
        args.insert(
            name("x-dead-letter-routing-key"),
            FieldValue::from(cfg.routing_key.as_str()),
        );
        args.insert(name("x-message-ttl"), FieldValue::l(ms));
        args.insert(
            name("x-expires"),
            FieldValue::l(ms.saturating_mul(2).max(60_000)),
        );
        ch.queue_declare(
            QueueDeclareArguments::new(&q)
                .durable(cfg.durable)
                .arguments(args)
                .finish(),
        )
        .await
        .map_err(broker)?;
        self.shared.delay_queues.lock().insert(delay_ms);
        Ok(q)
    }

    async fn publish(&self, link: &Link, job: &Job) -> Result<(), DriverError> {
        let cfg = &self.shared.cfg;
        let _serial = link.publish_lock.lock().await;
        let delay_ms = job.delay.saturating_mul(1000);
        let due = due_ms(now_ms(), job.delay);
        let mut props = BasicProperties::default();
        props
            .with_headers(pack(job, due))
            .with_priority(u8::try_from(job.priority.clamp(0, 255)).unwrap_or(0))
            .with_persistence(cfg.durable);
        let args = if delay_ms > 0 {
            let q = self.delay_queue(&link.publish, delay_ms).await?;
            BasicPublishArguments::new("", &q)
        } else {
            BasicPublishArguments::new(&cfg.exchange, &cfg.routing_key)
        };
        link.publish
            .basic_publish(props.finish(), job.payload.to_vec(), args)
            .await
            .map_err(broker)?;
        link.publish.tx_commit().await.map_err(broker)
    }
}

impl Driver for Amqp {
    fn name(&self) -> &'static str {
        "amqp"
    }

    fn queue(&self) -> &str {
        &self.shared.cfg.queue
    }

    fn push(&self, job: Job) -> BoxFut<'_, Result<(), DriverError>> {
        Box::pin(async move {
            let mut links = self.shared.link.subscribe();
            loop {
                let link = current_link(&mut links, &self.shared.stopped).await?;
                match self.publish(&link, &job).await {
                    Ok(()) => return Ok(()),
                    // The connection is going: wait for the next one (the caller's
                    // timeout bounds the wait).
                    Err(_) if !link.conn.is_open() || !link.publish.is_open() => {
                        if links.changed().await.is_err() {
                            return Err(DriverError::Stopped);
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        })
    }

    fn consume(&self, out: mpsc::Sender<Delivery>) -> BoxFut<'_, Result<(), DriverError>> {
        let result = self.shared.outlet.open(&self.shared.stopped, out);
        Box::pin(async move { result })
    }

    fn pause(&self) -> BoxFut<'_, Result<(), DriverError>> {
        self.shared.outlet.close();
        let mut consuming = self.shared.consuming.subscribe();
        Box::pin(async move {
            // Returns once RabbitMQ confirmed the cancel (or the connection is gone).
            match tokio::time::timeout(PAUSE_WAIT, consuming.wait_for(|c| !c)).await {
                Ok(_) => Ok(()),
                Err(_) => Err(DriverError::Broker(format!(
                    "RabbitMQ did not confirm the consumer's cancel within {PAUSE_WAIT:?}"
                ))),
            }
        })
    }

    fn stop(&self) -> BoxFut<'_, ()> {
        self.shared.stopped.store(true, Ordering::Relaxed);
        self.shared.outlet.close();
        self.shared.stop.cancel();
        Box::pin(async {})
    }

    fn reachable(&self) -> Result<(), String> {
        self.shared.reach.get()
    }

    fn stat(&self) -> BoxFut<'_, DriverStat> {
        Box::pin(async move {
            let mut stat = DriverStat {
                active: None,
                delayed: 0,
                reserved: self.shared.reserved.load(Ordering::Relaxed),
            };
            let link = self.shared.link.borrow().clone();
            if let Some(link) = link
                && let Ok(ch) = link.conn.open_channel(None).await
            {
                let passive = QueueDeclareArguments::new(&self.shared.cfg.queue)
                    .passive(true)
                    .finish();
                if let Ok(Some((_, count, _))) = ch.queue_declare(passive).await {
                    stat.active = Some(i64::from(count));
                }
                let _ = ch.close().await;
            }
            stat
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_and_unpack_round_trip_like_roadrunner() {
        let mut job = Job {
            name: "App\\Job".into(),
            id: "id-1".into(),
            payload: Bytes::from_static(b"{}"),
            pipeline: "p".into(),
            priority: 7,
            delay: 3,
            ..Default::default()
        };
        job.headers.insert("k".into(), vec!["v".into()]);
        let t = pack(&job, 42);
        let (back, due) = unpack("p", Some(&t), b"{}".to_vec());
        assert_eq!(back, job);
        assert_eq!(due, Some(42));
        // A bare message (no rr_* headers) still runs, with generated id and name.
        let (bare, due) = unpack("p", None, b"x".to_vec());
        assert_eq!(bare.name, "deduced_by_rr");
        assert!(!bare.id.is_empty());
        assert_eq!(due, None);
    }
}
