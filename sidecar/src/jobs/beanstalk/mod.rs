//! `driver: beanstalk`: beanstalkd, through its text protocol ([`wire`]).
//!
//! # Theory of operation
//! * Pushes go over one producer connection per pipeline (`use <tube>`, then `put` with
//!   the job's delay); a push returns once beanstalkd answered `INSERTED`. A broken
//!   connection is replaced and the push tried again (the caller's `jobs.timeout` bounds
//!   the wait).
//! * One consumer task per pipeline owns the consumer connection (`watch <tube>`): while
//!   the pipeline is consumed and fewer than `prefetch` jobs are held, it reserves
//!   (`reserve-with-timeout`), and between reserves it settles what the workers
//!   finished: `delete` (ack), `release` (requeue) or `bury` (nack: beanstalkd's dead
//!   letter, `kick` brings it back). beanstalkd only takes these from the connection
//!   that reserved the job, so every settlement goes through this task.
//! * A job reserved while the pipeline is paused (or when pacer stops) is released, never
//!   delivered. When the consumer connection breaks, beanstalkd releases every job it
//!   held and delivers them again (at-least-once); the task reconnects with backoff.
//! * Jobs are put with a long time-to-run (a day): pacer itself bounds a job's run time
//!   (`exec_ttl`), and a job whose pacer went away is released when its connection closes.
//!
//! The message body is pacer's own: one line of JSON with the job's metadata (`v`, `job`,
//! `id`, `headers`, `priority`, `delay`, `auto_ack`, `due_ms`), `\n`, then the payload
//! bytes. A body in another format (another producer's) runs as a job named
//! `deduced_by_rr` with the whole body as its payload, as RoadRunner's `consume_all`.
//! RoadRunner's own beanstalk messages are Go `gob` encoded and not readable here.

pub mod wire;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::driver::{
    Acker, BoxFut, Delivery, Driver, DriverError, DriverStat, Outlet, Reach, broker, due_ms,
    now_ms, waited,
};
use super::job::{Headers, Job};
use crate::config::BeanstalkConfig;
use wire::{Conn, Reply, WireError};

/// The time-to-run every job is put with (see the module docs).
const TTR_SECS: u64 = 86_400;
/// The reserve wait while jobs are held, so their settlements are not held up long.
const HELD_WAIT: Duration = Duration::from_secs(1);
const FORMAT_VERSION: u32 = 1;

/// What the consumer task does with a job it reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Delete,
    Release,
    Bury,
}

#[derive(Debug)]
struct Cmd {
    id: u64,
    /// The consumer connection the job was reserved on.
    generation: u64,
    op: Op,
}

struct Shared {
    pipeline: String,
    cfg: BeanstalkConfig,
    producer: tokio::sync::Mutex<Option<Conn>>,
    /// Where the consumer task hands its deliveries (see [`Outlet`]).
    outlet: Outlet,
    cmds: mpsc::UnboundedSender<Cmd>,
    stop: CancellationToken,
    stopped: AtomicBool,
    reserved: Arc<AtomicI64>,
    /// Set when the consumer task has sent the last settlements and ended: `stop` waits
    /// for it, so an acknowledged job is deleted, not released by the closing connection.
    finished: watch::Sender<bool>,
    /// Whether the consumer connection is up, for `/ready`.
    reach: Reach,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("beanstalk")
            .field("pipeline", &self.pipeline)
            .field("tube", &self.cfg.tube)
            .finish_non_exhaustive()
    }
}

/// The beanstalk driver of one pipeline.
#[derive(Debug, Clone)]
pub struct Beanstalk {
    shared: Arc<Shared>,
}

impl Beanstalk {
    /// Starts the consumer task; connections are made when needed.
    pub fn new(pipeline: &str, cfg: BeanstalkConfig) -> Beanstalk {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            pipeline: pipeline.to_string(),
            cfg,
            producer: tokio::sync::Mutex::new(None),
            outlet: Outlet::default(),
            cmds: tx,
            stop: CancellationToken::new(),
            stopped: AtomicBool::new(false),
            reserved: Arc::new(AtomicI64::new(0)),
            finished: watch::channel(false).0,
            reach: Reach::new("beanstalkd"),
        });
        let task = shared.clone();
        tokio::spawn(async move {
            consumer(&task, rx).await;
            task.finished.send_replace(true);
        });
        Beanstalk { shared }
    }
}

// ---------------------------------------------------------------------------- body

#[derive(serde::Serialize, serde::Deserialize)]
struct Meta {
    v: u32,
    job: String,
    id: String,
    #[serde(default)]
    headers: Headers,
    #[serde(default)]
    priority: i64,
    #[serde(default)]
    delay: u64,
    #[serde(default)]
    auto_ack: bool,
    #[serde(default)]
    due_ms: Option<i64>,
}

/// A job → a message body.
fn encode(job: &Job, due_ms: i64) -> Vec<u8> {
    let meta = Meta {
        v: FORMAT_VERSION,
        job: job.name.clone(),
        id: job.id.clone(),
        headers: job.headers.clone(),
        priority: job.priority,
        delay: job.delay,
        auto_ack: job.auto_ack,
        due_ms: Some(due_ms),
    };
    let mut out = serde_json::to_vec(&meta).unwrap_or_default();
    out.push(b'\n');
    out.extend_from_slice(&job.payload);
    out
}

/// A message body → the job and when it was due (unix ms), if it says.
fn decode(pipeline: &str, body: Bytes) -> (Job, Option<i64>) {
    let parsed = body
        .iter()
        .position(|&b| b == b'\n')
        .and_then(|nl| Some((nl, serde_json::from_slice::<Meta>(&body[..nl]).ok()?)))
        .filter(|(_, m)| m.v == FORMAT_VERSION && !m.id.is_empty());
    match parsed {
        Some((nl, m)) => (
            Job {
                name: m.job,
                id: m.id,
                payload: body.slice(nl + 1..),
                headers: m.headers,
                pipeline: pipeline.to_string(),
                priority: m.priority,
                delay: m.delay,
                auto_ack: m.auto_ack,
            },
            m.due_ms,
        ),
        None => (
            Job {
                name: "deduced_by_rr".to_string(),
                id: format!("pacer-{:x}{:x}", fastrand::u64(..), fastrand::u64(..)),
                payload: body,
                pipeline: pipeline.to_string(),
                priority: 10,
                ..Default::default()
            },
            None,
        ),
    }
}

// ------------------------------------------------------------------------ consumer

/// Settles one delivery through the consumer task.
struct BeanstalkAcker {
    id: u64,
    generation: u64,
    cmds: mpsc::UnboundedSender<Cmd>,
    reserved: Arc<AtomicI64>,
    settled: bool,
}

impl std::fmt::Debug for BeanstalkAcker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BeanstalkAcker")
            .field("id", &self.id)
            .finish()
    }
}

impl BeanstalkAcker {
    fn settle(&mut self, op: Op) -> Result<(), DriverError> {
        if std::mem::replace(&mut self.settled, true) {
            return Ok(());
        }
        self.reserved.fetch_sub(1, Ordering::Relaxed);
        self.cmds
            .send(Cmd {
                id: self.id,
                generation: self.generation,
                op,
            })
            .map_err(|_| DriverError::Stopped)
    }
}

impl Drop for BeanstalkAcker {
    /// Dropped unsettled: back to the tube.
    fn drop(&mut self) {
        let _ = self.settle(Op::Release);
    }
}

impl Acker for BeanstalkAcker {
    fn ack(mut self: Box<Self>) -> BoxFut<'static, Result<(), DriverError>> {
        let r = self.settle(Op::Delete);
        Box::pin(async move { r })
    }

    fn nack(mut self: Box<Self>, requeue: bool) -> BoxFut<'static, Result<(), DriverError>> {
        let r = self.settle(if requeue { Op::Release } else { Op::Bury });
        Box::pin(async move { r })
    }
}

/// The consumer connection and the jobs reserved on it.
struct Session {
    conn: Conn,
    generation: u64,
    held: HashSet<u64>,
}

async fn open_consumer(cfg: &BeanstalkConfig) -> Result<Conn, WireError> {
    let mut conn = Conn::connect(&cfg.addr, cfg.timeout).await?;
    conn.expect(&format!("watch {}", cfg.tube), &Reply::Watching)
        .await?;
    if cfg.tube != "default" {
        conn.expect("ignore default", &Reply::Watching).await?;
    }
    Ok(conn)
}

/// Runs one settlement on the session; stale ones (an older connection, whose jobs
/// beanstalkd already released) are dropped.
async fn settle(s: &mut Session, cmd: Cmd, priority: u32) -> Result<(), WireError> {
    if cmd.generation != s.generation || !s.held.remove(&cmd.id) {
        tracing::debug!(
            id = cmd.id,
            "settlement for a lost connection dropped; beanstalkd delivers the job again"
        );
        return Ok(());
    }
    let line = match cmd.op {
        Op::Delete => format!("delete {}", cmd.id),
        Op::Release => format!("release {} {priority} 0", cmd.id),
        Op::Bury => format!("bury {} {priority}", cmd.id),
    };
    match s.conn.call(&line, None, Duration::ZERO).await? {
        (Reply::Deleted | Reply::Released | Reply::Buried(_), _) => {}
        (other, _) => tracing::warn!(?other, command = %line, "beanstalkd refused a settlement"),
    }
    Ok(())
}

/// Owns the consumer connection (see the module docs).
async fn consumer(shared: &Arc<Shared>, mut cmds: mpsc::UnboundedReceiver<Cmd>) {
    let cfg = shared.cfg.clone();
    let mut session: Option<Session> = None;
    let mut generation = 0u64;
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(s) = session.as_mut() else {
            // No connection: nothing held; settlements of an old one are stale.
            while cmds.try_recv().is_ok() {}
            if shared.stop.is_cancelled() {
                return;
            }
            if shared.outlet.out.lock().is_none() {
                tokio::select! {
                    _ = shared.outlet.kick.notified() => {}
                    _ = shared.stop.cancelled() => return,
                    _ = cmds.recv() => {}
                }
                continue;
            }
            let opened = tokio::select! {
                c = open_consumer(&cfg) => c,
                _ = shared.stop.cancelled() => return,
            };
            match opened {
                Ok(conn) => {
                    shared.reach.up();
                    generation += 1;
                    backoff = Duration::from_millis(100);
                    tracing::info!(pipeline = %shared.pipeline, tube = %cfg.tube, prefetch = cfg.prefetch, "consuming from beanstalkd");
                    session = Some(Session {
                        conn,
                        generation,
                        held: HashSet::new(),
                    });
                }
                Err(error) => {
                    shared
                        .reach
                        .down(format!("beanstalkd unreachable: {error}"));
                    tracing::warn!(%error, pipeline = %shared.pipeline, retry_in = ?backoff, "cannot connect to beanstalkd");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shared.stop.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
            continue;
        };
        match step(shared, s, &mut cmds).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => {
                shared
                    .reach
                    .down(format!("beanstalkd connection lost: {error}"));
                tracing::warn!(%error, pipeline = %shared.pipeline, "beanstalkd connection lost; its reserved jobs go back to the tube");
                session = None;
            }
        }
    }
}

/// One round on a live session: settle what is queued, then reserve or wait. `false`
/// when the driver stopped.
async fn step(
    shared: &Arc<Shared>,
    s: &mut Session,
    cmds: &mut mpsc::UnboundedReceiver<Cmd>,
) -> Result<bool, WireError> {
    let priority = shared.cfg.tube_priority;
    while let Ok(cmd) = cmds.try_recv() {
        settle(s, cmd, priority).await?;
    }
    if shared.stop.is_cancelled() {
        // Whatever is still held is released when the connection closes.
        return Ok(false);
    }
    let consuming = shared.outlet.out.lock().is_some();
    if !consuming || s.held.len() >= shared.cfg.prefetch {
        tokio::select! {
            cmd = cmds.recv() => if let Some(cmd) = cmd { settle(s, cmd, priority).await? },
            _ = shared.outlet.kick.notified() => {}
            _ = shared.stop.cancelled() => {}
        }
        return Ok(true);
    }
    let wait = if s.held.is_empty() {
        shared.cfg.reserve_timeout
    } else {
        HELD_WAIT.min(shared.cfg.reserve_timeout)
    };
    let line = format!("reserve-with-timeout {}", wait.as_secs());
    let (id, body) = match s.conn.call(&line, None, wait).await? {
        (Reply::Reserved(id, _), body) => (id, body),
        (Reply::TimedOut | Reply::DeadlineSoon, _) => return Ok(true),
        (other, _) => return Err(WireError::Unexpected(format!("{other:?} to {line:?}"))),
    };
    s.held.insert(id);
    shared.reserved.fetch_add(1, Ordering::Relaxed);
    let (job, due) = decode(&shared.pipeline, body);
    let waited = waited(now_ms(), due);
    let mut delivery = Delivery {
        pipeline: shared.pipeline.clone(),
        job,
        waited,
        acker: Box::new(BeanstalkAcker {
            id,
            generation: s.generation,
            cmds: shared.cmds.clone(),
            reserved: shared.reserved.clone(),
            settled: false,
        }),
    };
    // Handed over only while the pipeline is consumed, checked under the same lock
    // `pause` takes; otherwise dropped, which releases it.
    loop {
        let room = {
            let out = shared.outlet.out.lock();
            let Some(tx) = out.as_ref() else {
                return Ok(true);
            };
            match tx.try_send(delivery) {
                Ok(()) => return Ok(true),
                Err(mpsc::error::TrySendError::Closed(_)) => return Ok(true),
                Err(mpsc::error::TrySendError::Full(d)) => {
                    delivery = d;
                    tx.clone()
                }
            }
        };
        // The channel is full: keep settling while waiting for room.
        tokio::select! {
            permit = room.reserve() => drop(permit),
            cmd = cmds.recv() => if let Some(cmd) = cmd { settle(s, cmd, priority).await? },
            _ = shared.stop.cancelled() => return Ok(true),
        }
    }
}

// -------------------------------------------------------------------------- driver

impl Beanstalk {
    async fn open_producer(&self) -> Result<Conn, WireError> {
        let cfg = &self.shared.cfg;
        let mut conn = Conn::connect(&cfg.addr, cfg.timeout).await?;
        conn.expect(&format!("use {}", cfg.tube), &Reply::Using)
            .await?;
        Ok(conn)
    }

    /// Runs `f` on the producer connection, (re)connecting first; a broken connection
    /// is dropped and the error returned.
    async fn with_producer<T>(
        &self,
        line: &str,
        body: Option<&[u8]>,
        f: impl FnOnce(Reply, Bytes) -> T,
    ) -> Result<T, WireError> {
        let mut guard = self.shared.producer.lock().await;
        if guard.is_none() {
            *guard = Some(self.open_producer().await?);
        }
        let Some(conn) = guard.as_mut() else {
            return Err(WireError::Unexpected("no connection".to_string()));
        };
        match conn.call(line, body, Duration::ZERO).await {
            Ok((reply, body)) => Ok(f(reply, body)),
            Err(e) => {
                if e.is_fatal() {
                    *guard = None;
                }
                Err(e)
            }
        }
    }
}

impl Driver for Beanstalk {
    fn name(&self) -> &'static str {
        "beanstalk"
    }

    fn reachable(&self) -> Result<(), String> {
        self.shared.reach.get()
    }

    fn queue(&self) -> &str {
        &self.shared.cfg.tube
    }

    fn push(&self, job: Job) -> BoxFut<'_, Result<(), DriverError>> {
        Box::pin(async move {
            let due = due_ms(now_ms(), job.delay);
            let body = encode(&job, due);
            let line = format!(
                "put {} {} {TTR_SECS} {}",
                self.shared.cfg.tube_priority,
                job.delay.min(u64::from(u32::MAX)),
                body.len()
            );
            let mut backoff = Duration::from_millis(100);
            loop {
                if self.shared.stopped.load(Ordering::Relaxed) {
                    return Err(DriverError::Stopped);
                }
                match self.with_producer(&line, Some(&body), |r, _| r).await {
                    Ok(Reply::Inserted(_)) => return Ok(()),
                    Ok(Reply::Buried(_)) => {
                        return Err(DriverError::Broker(
                            "beanstalkd is out of memory: the job was stored buried".to_string(),
                        ));
                    }
                    Ok(other) => {
                        return Err(DriverError::Broker(format!(
                            "beanstalkd refused the job: {other:?}"
                        )));
                    }
                    Err(e) if e.is_fatal() => {
                        tracing::warn!(error = %e, pipeline = %self.shared.pipeline, retry_in = ?backoff, "push to beanstalkd failed; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = self.shared.stop.cancelled() => return Err(DriverError::Stopped),
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                    Err(e) => return Err(broker(e)),
                }
            }
        })
    }

    fn consume(&self, out: mpsc::Sender<Delivery>) -> BoxFut<'_, Result<(), DriverError>> {
        let result = self.shared.outlet.open(&self.shared.stopped, out);
        Box::pin(async move { result })
    }

    fn pause(&self) -> BoxFut<'_, Result<(), DriverError>> {
        // From here on a reserved job is released, not delivered (see `step`).
        self.shared.outlet.close();
        Box::pin(async { Ok(()) })
    }

    fn stop(&self) -> BoxFut<'_, ()> {
        self.shared.stopped.store(true, Ordering::Relaxed);
        self.shared.outlet.close();
        self.shared.stop.cancel();
        let mut finished = self.shared.finished.subscribe();
        // A reserve under way ends within reserve_timeout; then the settlements go out.
        let wait = self.shared.cfg.reserve_timeout + self.shared.cfg.timeout;
        Box::pin(async move {
            if tokio::time::timeout(wait, finished.wait_for(|f| *f))
                .await
                .is_err()
            {
                tracing::warn!(pipeline = %self.shared.pipeline, "beanstalkd did not take the last settlements in time; those jobs are delivered again");
            }
        })
    }

    fn stat(&self) -> BoxFut<'_, DriverStat> {
        Box::pin(async move {
            let line = format!("stats-tube {}", self.shared.cfg.tube);
            let stats = self
                .with_producer(&line, None, |reply, body| match reply {
                    Reply::Ok(_) => Some(wire::parse_tube_stats(&body)),
                    // The tube does not exist until a job or a watcher names it.
                    Reply::NotFound => Some(wire::TubeStats::default()),
                    _ => None,
                })
                .await
                .ok()
                .flatten();
            DriverStat {
                active: stats.map(|s| s.ready),
                delayed: stats.map_or(0, |s| s.delayed),
                reserved: self.shared.reserved.load(Ordering::Relaxed),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_round_trip_and_foreign_bodies() {
        let mut job = Job {
            name: "App\\Job".into(),
            id: "id-1".into(),
            payload: Bytes::from_static(b"line1\nline2 \xff"),
            pipeline: "p".into(),
            priority: 7,
            delay: 3,
            auto_ack: true,
            ..Default::default()
        };
        job.headers.insert("k".into(), vec!["v".into()]);
        let body = encode(&job, 42);
        let (back, due) = decode("p", Bytes::from(body));
        assert_eq!(back, job);
        assert_eq!(due, Some(42));
        // Another producer's message runs with a generated id, its body as the payload.
        let (raw, due) = decode("p", Bytes::from_static(b"{\"hello\":1}\nx"));
        assert_eq!(raw.name, "deduced_by_rr");
        assert_eq!(&raw.payload[..], b"{\"hello\":1}\nx");
        assert!(!raw.id.is_empty());
        assert_eq!(due, None);
        let (raw, _) = decode("p", Bytes::from_static(b"plain"));
        assert_eq!(&raw.payload[..], b"plain");
    }
}
