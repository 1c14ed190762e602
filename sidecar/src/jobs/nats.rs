//! `driver: nats`: NATS JetStream, through the `async-nats` client.
//!
//! # Theory of operation
//! * The pipeline's `stream` (created when missing, with the pipeline's `subject`, as
//!   RoadRunner does) keeps the jobs; a durable pull consumer named after the pipeline
//!   (`pacer-<pipeline>`, explicit acks, the server's default `max_ack_pending`) hands
//!   them out, so every pacer pod on the same stream shares the work.
//! * One task per pipeline ([`maintain`]) connects (the client reconnects by itself),
//!   creates the stream and the consumer, and while the pipeline is consumed pulls
//!   batches of at most `prefetch - held` messages (each pull waits up to a second).
//!   A message pulled while the pipeline is paused (or stopping) is given back at once
//!   (`-NAK`), never delivered.
//! * A delivery is acknowledged (`+ACK`), given back (`-NAK`) or terminated (`+TERM`,
//!   nack without requeue) when its worker answered; while it runs pacer tells the
//!   server every `ack_wait / 3` that work is in progress (`+WPI`), so `ack_wait` bounds
//!   only how long a job of a vanished pacer waits before it is delivered again.
//! * Delays (JetStream has none): the message carries `Pacer-Due-Ms`; a message pulled
//!   before it is due goes back with `-NAK` and that delay.
//!
//! Messages are RoadRunner's (`roadrunner-server/nats` `item.go`): a JSON body
//! `{"job","id","payload" (base64),"options":{"priority","pipeline","delay","auto_ack"}}`
//! with the job's headers as NATS headers; pacer adds `headers` to the body too (NATS
//! header names and values cannot carry every byte).

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use async_nats::header::{HeaderMap, HeaderName};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::message::Acker as NatsAcker;
use async_nats::jetstream::{self, AckKind};
use base64::Engine;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::driver::{
    Acker, BoxFut, Delivery, Driver, DriverError, DriverStat, Outlet, Reach, broker, current_link,
    due_ms, now_ms, waited,
};
use super::job::{Headers, Job};
use crate::config::NatsConfig;

const DUE_HEADER: &str = "Pacer-Due-Ms";
/// How long one pull waits for messages.
const PULL_WAIT: Duration = Duration::from_secs(1);

/// The live JetStream handles, replaced when they are set up again.
#[derive(Clone)]
struct Link {
    js: jetstream::Context,
    stream: jetstream::stream::Stream,
    consumer: PullConsumer,
}

struct Shared {
    pipeline: String,
    cfg: NatsConfig,
    link: watch::Sender<Option<Link>>,
    /// Where the consumer task hands its deliveries (see [`Outlet`]).
    outlet: Outlet,
    /// Signalled by every settlement: there may be room to pull again.
    settled: Arc<Notify>,
    /// Whether a pull is outstanding: `pause` waits for `false`, so a job pushed after
    /// `jobs.Pause` returned is not even pulled.
    pulling: watch::Sender<bool>,
    stop: CancellationToken,
    /// Set when [`maintain`] has flushed and ended: `stop` waits for it, so the acks of
    /// the last jobs reach the server.
    finished: watch::Sender<bool>,
    stopped: AtomicBool,
    reserved: Arc<AtomicI64>,
    /// Whether the stream answers, for `/ready`.
    reach: Reach,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("nats")
            .field("pipeline", &self.pipeline)
            .field("stream", &self.cfg.stream)
            .finish_non_exhaustive()
    }
}

/// The nats driver of one pipeline.
#[derive(Debug, Clone)]
pub struct Nats {
    shared: Arc<Shared>,
}

/// The durable consumer's name: the pipeline's, in the characters NATS allows.
fn consumer_name(pipeline: &str) -> String {
    let clean: String = pipeline
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("pacer-{clean}")
}

impl Nats {
    /// Starts the connection task; it connects in the background.
    pub fn new(pipeline: &str, cfg: NatsConfig) -> Nats {
        let shared = Arc::new(Shared {
            pipeline: pipeline.to_string(),
            cfg,
            link: watch::channel(None).0,
            outlet: Outlet::default(),
            settled: Arc::new(Notify::new()),
            pulling: watch::channel(false).0,
            finished: watch::channel(false).0,
            stop: CancellationToken::new(),
            stopped: AtomicBool::new(false),
            reserved: Arc::new(AtomicI64::new(0)),
            reach: Reach::new("NATS"),
        });
        let task = shared.clone();
        tokio::spawn(async move {
            maintain(&task).await;
            task.finished.send_replace(true);
        });
        Nats { shared }
    }
}

// ---------------------------------------------------------------------------- body

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Options {
    #[serde(default)]
    priority: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pipeline: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    delay: i64,
    #[serde(default)]
    auto_ack: bool,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Item {
    job: String,
    id: String,
    /// Go's `[]byte` in JSON: standard base64.
    payload: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    headers: Option<Headers>,
    #[serde(default)]
    options: Option<Options>,
}

/// A job → the message body and headers.
fn encode(job: &Job, due_ms: i64) -> (Bytes, HeaderMap) {
    let item = Item {
        job: job.name.clone(),
        id: job.id.clone(),
        payload: base64::engine::general_purpose::STANDARD.encode(&job.payload),
        headers: (!job.headers.is_empty()).then(|| job.headers.clone()),
        options: Some(Options {
            priority: job.priority,
            pipeline: job.pipeline.clone(),
            delay: i64::try_from(job.delay).unwrap_or(i64::MAX),
            auto_ack: job.auto_ack,
        }),
    };
    let mut headers = HeaderMap::new();
    for (k, values) in &job.headers {
        // Only what the NATS header format can carry; the body has them all.
        let Ok(name) = HeaderName::from_str(k) else {
            continue;
        };
        for v in values {
            if !v.contains(['\r', '\n']) {
                headers.append(name.clone(), v.as_str());
            }
        }
    }
    headers.insert(DUE_HEADER, due_ms.to_string());
    (
        Bytes::from(serde_json::to_vec(&item).unwrap_or_default()),
        headers,
    )
}

/// A message → the job and when it is due (unix ms), if it says.
fn decode(pipeline: &str, body: &Bytes, headers: Option<&HeaderMap>) -> (Job, Option<i64>) {
    let due = headers
        .and_then(|h| h.get(DUE_HEADER))
        .and_then(|v| v.as_str().parse::<i64>().ok());
    let item = serde_json::from_slice::<Item>(body).ok().and_then(|item| {
        let payload = base64::engine::general_purpose::STANDARD
            .decode(&item.payload)
            .ok()?;
        Some((item, payload))
    });
    let Some((item, payload)) = item else {
        // Another producer's message, RoadRunner's `consume_all`.
        let job = Job {
            name: "deduced_by_rr".to_string(),
            id: format!("pacer-{:x}{:x}", fastrand::u64(..), fastrand::u64(..)),
            payload: body.clone(),
            pipeline: pipeline.to_string(),
            priority: 10,
            ..Default::default()
        };
        return (job, due);
    };
    let options = item.options.unwrap_or_default();
    let headers = item.headers.unwrap_or_else(|| {
        let mut out = Headers::new();
        for (k, values) in headers.into_iter().flat_map(HeaderMap::iter) {
            if k.to_string() != DUE_HEADER {
                out.insert(
                    k.to_string(),
                    values.iter().map(|v| v.as_str().to_string()).collect(),
                );
            }
        }
        out
    });
    let job = Job {
        name: item.job,
        id: item.id,
        payload: Bytes::from(payload),
        headers,
        pipeline: pipeline.to_string(),
        priority: if options.priority == 0 {
            10
        } else {
            options.priority
        },
        delay: u64::try_from(options.delay).unwrap_or(0),
        auto_ack: options.auto_ack,
    };
    (job, due)
}

// ------------------------------------------------------------------------ consumer

async fn connect(shared: &Shared) -> Result<Link, DriverError> {
    let cfg = &shared.cfg;
    let client = async_nats::ConnectOptions::new()
        .name(format!("pacer {}", shared.pipeline))
        .connection_timeout(cfg.timeout)
        .max_reconnects(None)
        .connect(cfg.addr.as_str())
        .await
        .map_err(broker)?;
    let js = jetstream::new(client);
    let stream = js
        .get_or_create_stream(jetstream::stream::Config {
            name: cfg.stream.clone(),
            subjects: vec![cfg.subject.clone()],
            ..Default::default()
        })
        .await
        .map_err(broker)?;
    let consumer: PullConsumer = stream
        .clone()
        .get_or_create_consumer(
            &consumer_name(&shared.pipeline),
            pull::Config {
                durable_name: Some(consumer_name(&shared.pipeline)),
                filter_subject: cfg.subject.clone(),
                ack_policy: AckPolicy::Explicit,
                ack_wait: cfg.ack_wait,
                deliver_policy: if cfg.deliver_new {
                    DeliverPolicy::New
                } else {
                    DeliverPolicy::All
                },
                // Not `prefetch`: the limit is the consumer's, shared by every pod, and a
                // delayed message given back with a delay stays pending until it is due.
                // Each pacer bounds its own share by pulling at most `prefetch - held`.
                ..Default::default()
            },
        )
        .await
        .map_err(broker)?;
    Ok(Link {
        js,
        stream,
        consumer,
    })
}

/// Owns the connection and the pulls (see the module docs).
async fn maintain(shared: &Arc<Shared>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if shared.stop.is_cancelled() {
            return;
        }
        let link = tokio::select! {
            l = connect(shared) => l,
            _ = shared.stop.cancelled() => return,
        };
        let link = match link {
            Ok(l) => l,
            Err(error) => {
                shared.reach.down(format!("NATS unreachable: {error}"));
                tracing::warn!(%error, pipeline = %shared.pipeline, retry_in = ?backoff, "cannot set up the NATS stream and consumer");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shared.stop.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        shared.reach.up();
        shared.link.send_replace(Some(link.clone()));
        tracing::info!(pipeline = %shared.pipeline, stream = %shared.cfg.stream, subject = %shared.cfg.subject, "NATS JetStream ready");
        loop {
            if shared.stop.is_cancelled() {
                break;
            }
            let held = usize::try_from(shared.reserved.load(Ordering::Relaxed)).unwrap_or(0);
            let room = shared.cfg.prefetch.saturating_sub(held);
            if shared.outlet.out.lock().is_none() || room == 0 {
                tokio::select! {
                    _ = shared.outlet.kick.notified() => {}
                    _ = shared.settled.notified() => {}
                    _ = shared.stop.cancelled() => {}
                }
                continue;
            }
            shared.pulling.send_replace(true);
            let pulled = pull(shared, &link, room).await;
            shared.pulling.send_replace(false);
            if let Err(error) = pulled {
                shared
                    .reach
                    .down(format!("pulling from NATS failed: {error}"));
                tracing::warn!(%error, pipeline = %shared.pipeline, "pulling from NATS failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shared.stop.cancelled() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            } else {
                shared.reach.up();
                backoff = Duration::from_millis(100);
            }
        }
        // Settlements are published without waiting for the server: send them now.
        if let Err(error) = link.js.client().flush().await {
            tracing::warn!(%error, pipeline = %shared.pipeline, "flushing the last acks to NATS failed; those jobs are delivered again");
        }
        if shared.cfg.delete_stream_on_stop
            && let Err(error) = link.js.delete_stream(&shared.cfg.stream).await
        {
            tracing::warn!(%error, stream = %shared.cfg.stream, "deleting the stream failed");
        }
        shared.link.send_replace(None);
        return;
    }
}

/// One pull of at most `room` messages; each is delivered, or given back when the
/// pipeline is paused or the message is not due yet.
async fn pull(shared: &Arc<Shared>, link: &Link, room: usize) -> Result<(), DriverError> {
    let mut batch = link
        .consumer
        .batch()
        .max_messages(room)
        .expires(PULL_WAIT)
        .messages()
        .await
        .map_err(broker)?;
    while let Some(msg) = batch.next().await {
        let msg = msg.map_err(broker)?;
        let seq = msg.info().map(|i| i.stream_sequence).ok();
        let (msg, acker) = msg.split();
        let (job, due) = decode(&shared.pipeline, &msg.payload, msg.headers.as_ref());
        let now = now_ms();
        if let Some(due) = due
            && due > now
        {
            let wait = Duration::from_millis(u64::try_from(due - now).unwrap_or(0));
            if let Err(error) = acker.ack_with(AckKind::Nak(Some(wait))).await {
                tracing::debug!(%error, "giving a delayed message back failed; it comes back after ack_wait");
            }
            continue;
        }
        shared.reserved.fetch_add(1, Ordering::Relaxed);
        let delete = seq
            .filter(|_| shared.cfg.delete_after_ack)
            .map(|seq| (link.stream.clone(), seq));
        let acker = NatsJobAcker::new(acker, delete, shared);
        let waited = waited(now, due);
        let mut delivery = Delivery {
            pipeline: shared.pipeline.clone(),
            job,
            waited,
            acker: Box::new(acker),
        };
        // Handed over only while the pipeline is consumed, checked under the lock
        // `pause` takes; otherwise dropped, which gives it back.
        loop {
            let room = {
                let out = shared.outlet.out.lock();
                let Some(tx) = out.as_ref() else { break };
                match tx.try_send(delivery) {
                    Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => break,
                    Err(mpsc::error::TrySendError::Full(d)) => {
                        delivery = d;
                        tx.clone()
                    }
                }
            };
            tokio::select! {
                permit = room.reserve() => drop(permit),
                _ = shared.stop.cancelled() => break,
            }
        }
    }
    Ok(())
}

/// Settles one delivery; keeps it alive on the server (`+WPI`) until then.
struct NatsJobAcker {
    acker: Arc<NatsAcker>,
    /// `delete_after_ack`: the stream and the message's sequence in it.
    delete: Option<(jetstream::stream::Stream, u64)>,
    settled_once: bool,
    progress: CancellationToken,
    reserved: Arc<AtomicI64>,
    settled: Arc<Notify>,
}

impl std::fmt::Debug for NatsJobAcker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsJobAcker").finish_non_exhaustive()
    }
}

impl NatsJobAcker {
    fn new(
        acker: NatsAcker,
        delete: Option<(jetstream::stream::Stream, u64)>,
        shared: &Shared,
    ) -> NatsJobAcker {
        let progress = CancellationToken::new();
        let acker = Arc::new(acker);
        let every = (shared.cfg.ack_wait / 3).max(Duration::from_millis(500));
        let (stop, keep) = (progress.clone(), acker.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                if let Err(error) = keep.ack_with(AckKind::Progress).await {
                    tracing::debug!(%error, "in-progress signal to NATS failed");
                }
            }
        });
        NatsJobAcker {
            acker,
            delete,
            settled_once: false,
            progress,
            reserved: shared.reserved.clone(),
            settled: shared.settled.clone(),
        }
    }

    /// Marks it settled (once) and returns the kind to send.
    fn settle(&mut self) -> Option<Arc<NatsAcker>> {
        if std::mem::replace(&mut self.settled_once, true) {
            return None;
        }
        self.progress.cancel();
        self.reserved.fetch_sub(1, Ordering::Relaxed);
        self.settled.notify_one();
        Some(self.acker.clone())
    }

    fn send(&mut self, kind: AckKind) -> BoxFut<'static, Result<(), DriverError>> {
        let acker = self.settle();
        let delete = matches!(kind, AckKind::Ack)
            .then(|| self.delete.take())
            .flatten();
        Box::pin(async move {
            let Some(a) = acker else { return Ok(()) };
            a.ack_with(kind).await.map_err(broker)?;
            if let Some((stream, seq)) = delete
                && let Err(error) = stream.delete_message(seq).await
            {
                tracing::debug!(%error, seq, "delete_after_ack failed");
            }
            Ok(())
        })
    }
}

impl Drop for NatsJobAcker {
    /// Dropped unsettled: give it back at once.
    fn drop(&mut self) {
        if let Some(a) = self.settle()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                let _ = a.ack_with(AckKind::Nak(None)).await;
            });
        }
    }
}

impl Acker for NatsJobAcker {
    fn ack(mut self: Box<Self>) -> BoxFut<'static, Result<(), DriverError>> {
        self.send(AckKind::Ack)
    }

    fn nack(mut self: Box<Self>, requeue: bool) -> BoxFut<'static, Result<(), DriverError>> {
        self.send(if requeue {
            AckKind::Nak(None)
        } else {
            AckKind::Term
        })
    }
}

// -------------------------------------------------------------------------- driver

impl Driver for Nats {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn reachable(&self) -> Result<(), String> {
        self.shared.reach.get()
    }

    fn queue(&self) -> &str {
        &self.shared.cfg.subject
    }

    fn push(&self, job: Job) -> BoxFut<'_, Result<(), DriverError>> {
        Box::pin(async move {
            let due = due_ms(now_ms(), job.delay);
            let (body, headers) = encode(&job, due);
            let mut links = self.shared.link.subscribe();
            let link = current_link(&mut links, &self.shared.stopped).await?;
            // Stored once the server acknowledged the publish.
            let ack = link
                .js
                .publish_with_headers(self.shared.cfg.subject.clone(), headers, body)
                .await
                .map_err(broker)?;
            ack.await.map(|_| ()).map_err(broker)
        })
    }

    fn consume(&self, out: mpsc::Sender<Delivery>) -> BoxFut<'_, Result<(), DriverError>> {
        let result = self.shared.outlet.open(&self.shared.stopped, out);
        Box::pin(async move { result })
    }

    fn pause(&self) -> BoxFut<'_, Result<(), DriverError>> {
        // From here on a pulled message is given back, not delivered (see `pull`); the
        // pull under way ends within PULL_WAIT.
        self.shared.outlet.close();
        let mut pulling = self.shared.pulling.subscribe();
        Box::pin(async move {
            let wait = PULL_WAIT + self.shared.cfg.timeout;
            match tokio::time::timeout(wait, pulling.wait_for(|p| !p)).await {
                Ok(_) => Ok(()),
                Err(_) => Err(DriverError::Broker(format!(
                    "the pull under way did not end within {wait:?}"
                ))),
            }
        })
    }

    fn stop(&self) -> BoxFut<'_, ()> {
        self.shared.stopped.store(true, Ordering::Relaxed);
        self.shared.outlet.close();
        self.shared.stop.cancel();
        let mut finished = self.shared.finished.subscribe();
        let wait = self.shared.cfg.timeout;
        Box::pin(async move {
            if tokio::time::timeout(wait, finished.wait_for(|f| *f))
                .await
                .is_err()
            {
                tracing::warn!(pipeline = %self.shared.pipeline, "NATS did not take the last acks in time; those jobs are delivered again");
            }
        })
    }

    fn stat(&self) -> BoxFut<'_, DriverStat> {
        Box::pin(async move {
            let mut stat = DriverStat {
                active: None,
                delayed: 0,
                reserved: self.shared.reserved.load(Ordering::Relaxed),
            };
            let link = self.shared.link.borrow().clone();
            if let Some(mut link) = link
                && let Ok(info) = link.consumer.info().await
            {
                stat.active = i64::try_from(info.num_pending).ok();
            }
            stat
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_round_trip_like_roadrunner() {
        let mut job = Job {
            name: "App\\Job".into(),
            id: "id-1".into(),
            payload: Bytes::from_static(b"{\"a\":1} \xff"),
            pipeline: "p".into(),
            priority: 7,
            delay: 3,
            ..Default::default()
        };
        job.headers.insert("k".into(), vec!["v".into()]);
        let (body, headers) = encode(&job, 42);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["job"], "App\\Job");
        assert_eq!(json["options"]["priority"], 7);
        assert_eq!(headers.get("k").unwrap().as_str(), "v");
        let (back, due) = decode("p", &body, Some(&headers));
        assert_eq!(back, job);
        assert_eq!(due, Some(42));
        // Headers only in NATS headers (RoadRunner's producer) are read from there.
        let rr = Bytes::from_static(br#"{"job":"J","id":"x","payload":"aGk=","options":{"priority":0,"pipeline":"p","auto_ack":false}}"#);
        let (rr_job, due) = decode("p", &rr, Some(&headers));
        assert_eq!((&rr_job.payload[..], rr_job.priority), (&b"hi"[..], 10));
        assert_eq!(rr_job.headers["k"], ["v"]);
        assert_eq!(due, Some(42));
        let (raw, _) = decode("p", &Bytes::from_static(b"plain"), None);
        assert_eq!(
            (raw.name.as_str(), &raw.payload[..]),
            ("deduced_by_rr", &b"plain"[..])
        );
    }

    #[test]
    fn consumer_names_are_nats_safe() {
        assert_eq!(consumer_name("emails"), "pacer-emails");
        assert_eq!(consumer_name("a.b c>*"), "pacer-a_b_c__");
    }
}
