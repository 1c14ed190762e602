//! One PHP worker: its process, its relay, and the exchange of one job.
//!
//! A [`Worker`] is owned by exactly one party at a time — the pool's idle queue, or the
//! request that leased it — and moves between them by value. The exchange of a job runs
//! in the leasing task itself, so a request costs no extra task hops. The process is
//! owned by its own task (see [`process`]); shared, lock-free facts about the worker
//! (pid, state, job count, RSS, recycle flag) live in [`WorkerInfo`] for the supervisor,
//! metrics and RPC to read.

pub mod process;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::time::Instant;

use crate::relay::{
    self, Frame, FrameCodec, Options, Relay, RelayAddr, RelayError, SocketListener, flags, stream,
};
pub use process::{Exit, ProcessHandle, ProcessSpec};

/// The version PHP code sees in `RR_VERSION`; some apps check it, so it looks like a
/// RoadRunner release (wire-protocol.md §9.6).
pub const RR_VERSION: &str = "2025.1.15";

/// Worker states. The numbers are RoadRunner's informer `status` codes (wire-protocol.md
/// §2.6), so `informer.Workers` answers the way RoadRunner's clients expect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum WorkerState {
    Ready = 1,
    Working = 2,
    /// Busy, but already marked for recycling when the job ends.
    Invalid = 3,
    Stopping = 4,
    Stopped = 5,
    Errored = 8,
}

impl WorkerState {
    fn from_u8(v: u8) -> WorkerState {
        match v {
            1 => WorkerState::Ready,
            2 => WorkerState::Working,
            3 => WorkerState::Invalid,
            4 => WorkerState::Stopping,
            8 => WorkerState::Errored,
            _ => WorkerState::Stopped,
        }
    }

    /// RoadRunner's `statusStr`.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Ready => "ready",
            WorkerState::Working => "working",
            WorkerState::Invalid => "invalid",
            WorkerState::Stopping => "stopping",
            WorkerState::Stopped => "stopped",
            WorkerState::Errored => "errored",
        }
    }
}

/// Why a worker is (to be) replaced. Also the `reason` label of
/// `pacer_worker_restarts_total`, so the set is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RecycleReason {
    MaxJobs = 1,
    Ttl = 2,
    IdleTtl = 3,
    Memory = 4,
    ExecTtl = 5,
    /// The process exited or the relay broke.
    Died = 6,
    Reset = 7,
    /// The worker asked to be replaced (`$worker->stop()`).
    StopRequest = 8,
    /// The pool shrank.
    Shrink = 9,
    /// The worker broke the protocol (bad frame, garbage on stdout).
    Protocol = 10,
    /// Debug mode: a fresh worker per request.
    Debug = 11,
    /// Pacer is shutting down.
    Shutdown = 12,
}

impl RecycleReason {
    pub const ALL: [RecycleReason; 12] = [
        RecycleReason::MaxJobs,
        RecycleReason::Ttl,
        RecycleReason::IdleTtl,
        RecycleReason::Memory,
        RecycleReason::ExecTtl,
        RecycleReason::Died,
        RecycleReason::Reset,
        RecycleReason::StopRequest,
        RecycleReason::Shrink,
        RecycleReason::Protocol,
        RecycleReason::Debug,
        RecycleReason::Shutdown,
    ];

    fn from_u8(v: u8) -> Option<RecycleReason> {
        RecycleReason::ALL.into_iter().find(|r| *r as u8 == v)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RecycleReason::MaxJobs => "max_jobs",
            RecycleReason::Ttl => "ttl",
            RecycleReason::IdleTtl => "idle_ttl",
            RecycleReason::Memory => "memory",
            RecycleReason::ExecTtl => "exec_ttl",
            RecycleReason::Died => "died",
            RecycleReason::Reset => "reset",
            RecycleReason::StopRequest => "stop_request",
            RecycleReason::Shrink => "shrink",
            RecycleReason::Protocol => "protocol",
            RecycleReason::Debug => "debug",
            RecycleReason::Shutdown => "shutdown",
        }
    }
}

/// Identity of a worker within its pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerIdent {
    /// Unique for the life of the pool.
    pub id: u64,
    /// Stable index (0..target) reused by replacements; the `slot` metrics label.
    pub slot: usize,
    /// Bumped by every reset; workers of an older generation are replaced.
    pub generation: u64,
}

/// Facts about a worker that others read without owning it.
#[derive(Debug)]
pub struct WorkerInfo {
    pub ident: WorkerIdent,
    pub pid: u32,
    pub created: Instant,
    pub created_at: SystemTime,
    /// This worker's share of `max_jobs` jitter, in percent (0–14), so that workers
    /// started together do not all recycle together.
    pub jitter_percent: u64,
    pub command: String,
    state: AtomicU8,
    jobs: AtomicU64,
    rss: AtomicU64,
    /// Nanoseconds after `created` when the current job started, plus one; 0 = idle.
    busy_since: AtomicU64,
    /// Nanoseconds after `created` when the last job ended; 0 = never used.
    last_done: AtomicU64,
    recycle: AtomicU8,
    /// CPU clock ticks (user + system) at the last supervisor sample.
    cpu_ticks: AtomicU64,
    process: ProcessHandle,
}

impl WorkerInfo {
    fn since_created(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.created).as_nanos() as u64
    }

    pub fn state(&self) -> WorkerState {
        WorkerState::from_u8(self.state.load(Ordering::Relaxed))
    }

    pub(crate) fn set_state(&self, s: WorkerState) {
        self.state.store(s as u8, Ordering::Relaxed);
    }

    pub fn jobs(&self) -> u64 {
        self.jobs.load(Ordering::Relaxed)
    }

    /// Resident set size in bytes, as last sampled by the supervisor.
    pub fn rss(&self) -> u64 {
        self.rss.load(Ordering::Relaxed)
    }

    pub(crate) fn set_rss(&self, bytes: u64) {
        self.rss.store(bytes, Ordering::Relaxed);
    }

    /// Records a CPU sample (clock ticks used since the process started) and returns the
    /// ticks used since the previous sample.
    pub(crate) fn record_cpu_ticks(&self, total: u64) -> u64 {
        total.saturating_sub(self.cpu_ticks.swap(total, Ordering::Relaxed))
    }

    /// How long the current job has been running, if any.
    pub fn busy_for(&self, now: Instant) -> Option<Duration> {
        match self.busy_since.load(Ordering::Relaxed) {
            0 => None,
            t => Some(Duration::from_nanos(
                self.since_created(now).saturating_sub(t - 1),
            )),
        }
    }

    /// How long the worker has been idle since its last job; `None` before its first
    /// job or while busy (RoadRunner's `idle_ttl` counts from the first use).
    pub fn idle_for(&self, now: Instant) -> Option<Duration> {
        if self.busy_since.load(Ordering::Relaxed) != 0 {
            return None;
        }
        match self.last_done.load(Ordering::Relaxed) {
            0 => None,
            t => Some(Duration::from_nanos(
                self.since_created(now).saturating_sub(t),
            )),
        }
    }

    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.created)
    }

    /// The reason this worker is marked for replacement, if it is.
    pub fn recycle_reason(&self) -> Option<RecycleReason> {
        RecycleReason::from_u8(self.recycle.load(Ordering::Relaxed))
    }

    /// Marks the worker for replacement; the first reason wins. Returns whether this call
    /// set it.
    pub fn mark_recycle(&self, reason: RecycleReason) -> bool {
        let set = self
            .recycle
            .compare_exchange(0, reason as u8, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok();
        if set && self.state() == WorkerState::Working {
            self.set_state(WorkerState::Invalid);
        }
        set
    }

    pub fn process(&self) -> &ProcessHandle {
        &self.process
    }

    pub(crate) fn job_started(&self, now: Instant) {
        self.busy_since
            .store(self.since_created(now) + 1, Ordering::Relaxed);
        if self.recycle_reason().is_none() {
            self.set_state(WorkerState::Working);
        } else {
            self.set_state(WorkerState::Invalid);
        }
    }

    pub(crate) fn job_done(&self, now: Instant) -> u64 {
        self.busy_since.store(0, Ordering::Relaxed);
        self.last_done
            .store(self.since_created(now).max(1), Ordering::Relaxed);
        self.jobs.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// A job or a reply: codec flags, context (header) and body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Payload {
    /// Codec flags of the frame (e.g. [`flags::CODEC_JSON`]).
    pub codec: u8,
    pub context: Bytes,
    pub body: Bytes,
}

impl Payload {
    pub fn new(codec: u8, context: impl Into<Bytes>, body: impl Into<Bytes>) -> Self {
        Payload {
            codec,
            context: context.into(),
            body: body.into(),
        }
    }
}

/// What a worker answered to a job.
#[derive(Debug)]
pub enum Reply {
    /// The whole response.
    Single(Payload),
    /// The first frame of a streamed response; call [`Worker::next_chunk`] for the rest.
    Stream(Payload),
}

/// Why a job did not produce a reply.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The PHP code reported an error (`$worker->error()`); the worker is fine.
    #[error("worker error: {0}")]
    Soft(String),
    /// The worker asked to be replaced (`$worker->stop()`); the job was not run.
    #[error("the worker asked to be stopped")]
    StopRequested,
    /// The relay failed or the worker broke the protocol; the worker must go.
    #[error(transparent)]
    Relay(#[from] RelayError),
    #[error("malformed response frame: {0}")]
    Malformed(String),
    /// The job could not be written because the worker is gone; it never ran.
    #[error("the worker was gone before it took the job: {0}")]
    NotDelivered(std::io::Error),
}

fn is_peer_gone(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::BrokenPipe
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
    )
}

impl ExecError {
    /// Whether the worker can take another job after this error.
    pub fn worker_survives(&self) -> bool {
        matches!(self, ExecError::Soft(_))
    }
}

/// Where the relay stands between frames; decides what a lease must do with a worker
/// whose job was abandoned half way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exchange {
    /// Nothing in flight: the worker can take a job.
    Idle,
    /// A job was sent; its reply has not been read.
    AwaitingReply,
    /// A streamed reply is being read.
    Streaming,
}

/// A live worker: a relay to a process that passed the PID handshake.
#[derive(Debug)]
pub struct Worker {
    relay: Relay,
    info: Arc<WorkerInfo>,
    exchange: Exchange,
}

impl Worker {
    pub fn info(&self) -> &Arc<WorkerInfo> {
        &self.info
    }

    pub fn exchange(&self) -> Exchange {
        self.exchange
    }

    /// Sends `job` and reads the first reply frame.
    pub async fn exec(&mut self, job: &Payload) -> Result<Reply, ExecError> {
        debug_assert_eq!(self.exchange, Exchange::Idle);
        self.exchange = Exchange::AwaitingReply;
        let options = Options::one(job.context.len() as u32);
        if let Err(e) = self
            .relay
            .send_parts(job.codec, 0, &options, &[&job.context, &job.body])
            .await
        {
            return Err(match e {
                // Nobody reads the other end: the worker died before it could take the
                // job, so the job never ran and may run elsewhere.
                RelayError::Io(io) if is_peer_gone(&io) => ExecError::NotDelivered(io),
                e => e.into(),
            });
        }
        let frame = self.relay.recv().await?;
        let (payload, more) = self.classify(frame).await?;
        if more {
            self.exchange = Exchange::Streaming;
            Ok(Reply::Stream(payload))
        } else {
            self.exchange = Exchange::Idle;
            Ok(Reply::Single(payload))
        }
    }

    /// Reads the next frame of a streamed reply; `Ok(None)` after the last one.
    pub async fn next_chunk(&mut self) -> Result<Option<Payload>, ExecError> {
        if self.exchange != Exchange::Streaming {
            return Ok(None);
        }
        let frame = self.relay.recv().await?;
        let (payload, more) = self.classify(frame).await?;
        if !more {
            self.exchange = Exchange::Idle;
        }
        Ok(Some(payload))
    }

    /// Cancels a streamed reply (the client went away): sends STOP and discards frames
    /// until the worker ends the stream. Returns whether the worker is usable again.
    pub async fn cancel_stream(&mut self, timeout: Duration) -> bool {
        if self.exchange != Exchange::Streaming {
            return self.exchange == Exchange::Idle;
        }
        let drain = async {
            self.relay
                .send_parts(0, stream::STOP, &Options::NONE, &[])
                .await?;
            loop {
                let frame = self.relay.recv().await?;
                if frame.has_flag(flags::ERROR) || !frame.has_stream_bit(stream::STREAM) {
                    return Ok::<_, RelayError>(());
                }
            }
        };
        match tokio::time::timeout(timeout, drain).await {
            Ok(Ok(())) => {
                self.exchange = Exchange::Idle;
                true
            }
            _ => false,
        }
    }

    /// Waits for the reply of a job whose requester gave up, and discards it, so the
    /// worker can be reused. Returns whether it can.
    pub async fn abandon(&mut self, timeout: Duration) -> bool {
        match self.exchange {
            Exchange::Idle => true,
            Exchange::Streaming => self.cancel_stream(timeout).await,
            Exchange::AwaitingReply => {
                let finished = tokio::time::timeout(timeout, async {
                    let frame = self.relay.recv().await?;
                    self.classify(frame).await
                })
                .await;
                match finished {
                    Ok(Ok((_, false))) | Ok(Err(ExecError::Soft(_))) => {
                        self.exchange = Exchange::Idle;
                        true
                    }
                    Ok(Ok((_, true))) => {
                        self.exchange = Exchange::Streaming;
                        self.cancel_stream(timeout).await
                    }
                    _ => false,
                }
            }
        }
    }

    /// Checks a reply frame and answers a PING. Returns the payload and whether more
    /// frames of this reply follow.
    async fn classify(&mut self, frame: Frame) -> Result<(Payload, bool), ExecError> {
        if frame.has_flag(flags::ERROR) {
            self.exchange = Exchange::Idle;
            return Err(ExecError::Soft(
                String::from_utf8_lossy(&frame.payload).into_owned(),
            ));
        }
        if frame.has_flag(flags::CONTROL) {
            return Err(ExecError::Malformed(format!(
                "unexpected control frame during a job: \"{}\"",
                relay::frame::printable(&frame.payload, 200)
            )));
        }
        if frame.options.len() != 1 {
            return Err(ExecError::Malformed(format!(
                "a response frame needs exactly one option (the context length), got {}",
                frame.options.len()
            )));
        }
        let ctx_len = frame.options.as_slice()[0] as usize;
        if ctx_len > frame.payload.len() {
            return Err(ExecError::Malformed(format!(
                "context length {ctx_len} exceeds the payload of {} bytes",
                frame.payload.len()
            )));
        }
        let mut body = frame.payload;
        let context = body.split_to(ctx_len);
        let more = frame.byte10 & stream::STREAM != 0;
        if body.is_empty() && !more && is_stop_request(&context) {
            self.exchange = Exchange::Idle;
            return Err(ExecError::StopRequested);
        }
        if frame.byte10 & stream::PING != 0 {
            self.relay
                .send_parts(0, stream::PONG, &Options::NONE, &[])
                .await?;
        }
        Ok((
            Payload {
                codec: frame.flags,
                context,
                body,
            },
            more,
        ))
    }

    /// Asks the worker to exit (control stop frame) and gives it `grace` before its
    /// process group is killed. Consumes the worker.
    pub async fn stop(mut self, grace: Duration) {
        self.info.set_state(WorkerState::Stopping);
        if self.exchange == Exchange::Idle {
            let body: &[u8] = br#"{"stop":true}"#;
            let sent = tokio::time::timeout(
                Duration::from_secs(1).min(grace),
                self.relay.send_parts(
                    flags::CONTROL | flags::CODEC_JSON,
                    0,
                    &Options::NONE,
                    &[body],
                ),
            )
            .await;
            if matches!(sent, Ok(Ok(()))) {
                self.info.process.stop_within(grace);
                return;
            }
        }
        self.info.process.kill();
    }

    /// Kills the worker's process group now. Consumes the worker.
    pub fn kill(self) {
        self.info.set_state(WorkerState::Stopping);
        self.info.process.kill();
    }
}

/// `{"stop":true}` as the context of a data frame with an empty body: the worker asks to
/// be replaced (wire-protocol.md §2.3).
fn is_stop_request(context: &[u8]) -> bool {
    if context.is_empty() || context.len() > 64 {
        return false;
    }
    #[derive(serde::Deserialize)]
    struct Stop {
        stop: bool,
    }
    serde_json::from_slice::<Stop>(context).is_ok_and(|s| s.stop)
}

/// Why a worker could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot start `{command}`: {source}")]
    Start {
        command: String,
        source: std::io::Error,
    },
    #[error("worker (pid {pid}) failed the handshake: {source}")]
    Handshake { pid: u32, source: RelayError },
    #[error(
        "worker (pid {pid}) did not complete the handshake within allocate_timeout ({timeout:?}); \
         a worker must be the exec'ed PHP process itself and connect to the relay"
    )]
    Timeout { pid: u32, timeout: Duration },
}

/// Starts workers: the process spec, the relay, and the environment PHP expects.
#[derive(Debug)]
pub struct Spawner {
    spec: ProcessSpec,
    relay: RelayAddr,
    listener: Option<SocketListener>,
    env: Vec<(&'static str, String)>,
    codec: FrameCodec,
}

impl Spawner {
    /// `mode` is `RR_MODE` (`http`); `rpc` the RPC address for `RR_RPC`, if RPC is on.
    /// Socket relays start listening here.
    pub async fn new(
        spec: ProcessSpec,
        relay: RelayAddr,
        mode: &str,
        rpc: Option<String>,
        codec: FrameCodec,
        handshake_timeout: Duration,
    ) -> std::io::Result<Spawner> {
        let listener = match relay {
            RelayAddr::Pipes => None,
            ref socket => Some(
                SocketListener::bind(socket, std::process::id(), handshake_timeout, codec).await?,
            ),
        };
        // Connecting to a unix socket needs write permission on its file, which pacer
        // creates as itself: workers running as `server.user` get the file, as they get
        // their upload temp files. Other users still cannot connect.
        if let (RelayAddr::Unix(path), Some(uid)) = (&relay, spec.uid)
            && uid != nix::unistd::geteuid().as_raw()
        {
            std::os::unix::fs::chown(path, Some(uid), spec.gid)?;
        }
        let relay_env = listener
            .as_ref()
            .map_or_else(|| relay.to_string(), |l| l.dsn().to_string());
        let mut env = vec![
            ("RR_MODE", mode.to_string()),
            ("RR_RELAY", relay_env),
            ("RR_VERSION", RR_VERSION.to_string()),
        ];
        if let Some(rpc) = rpc {
            env.push(("RR_RPC", rpc));
        }
        Ok(Spawner {
            spec,
            relay,
            listener,
            env,
            codec,
        })
    }

    pub fn command_line(&self) -> String {
        self.spec.command.join(" ")
    }

    /// Starts one worker and completes its handshake within `timeout`. `on_exit` is called
    /// once, when the process is gone (even if the handshake failed).
    pub async fn spawn(
        &self,
        ident: WorkerIdent,
        jitter_percent: u64,
        timeout: Duration,
        on_exit: impl FnOnce(Exit) + Send + 'static,
    ) -> Result<Worker, SpawnError> {
        let pipes = self.relay == RelayAddr::Pipes;
        let started = process::start(&self.spec, &self.env, pipes, on_exit).map_err(|source| {
            SpawnError::Start {
                command: self.command_line(),
                source,
            }
        })?;
        let handle = started.handle;
        let pid = handle.pid();
        let connected = async {
            let mut relay = match (&self.listener, started.stdin, started.stdout) {
                (None, Some(stdin), Some(stdout)) => Relay::new(stdout, stdin, self.codec),
                (Some(listener), _, _) => match listener.claim(pid, timeout).await {
                    Some(relay) => return Ok(relay),
                    None => return Err(SpawnError::Timeout { pid, timeout }),
                },
                _ => {
                    return Err(SpawnError::Start {
                        command: self.command_line(),
                        source: std::io::Error::other("worker pipes are missing"),
                    });
                }
            };
            match relay::handshake(&mut relay, std::process::id(), timeout).await {
                Ok(_) => Ok(relay),
                Err(RelayError::Handshake(m)) if m.starts_with("no pid reply") => {
                    Err(SpawnError::Timeout { pid, timeout })
                }
                Err(source) => Err(SpawnError::Handshake { pid, source }),
            }
        };
        let relay = match tokio::time::timeout(timeout, connected).await {
            Ok(Ok(relay)) => relay,
            Ok(Err(e)) => {
                handle.kill();
                return Err(e);
            }
            Err(_) => {
                handle.kill();
                return Err(SpawnError::Timeout { pid, timeout });
            }
        };
        let info = Arc::new(WorkerInfo {
            ident,
            pid,
            created: Instant::now(),
            created_at: SystemTime::now(),
            jitter_percent,
            command: self.command_line(),
            state: AtomicU8::new(WorkerState::Ready as u8),
            jobs: AtomicU64::new(0),
            rss: AtomicU64::new(0),
            busy_since: AtomicU64::new(0),
            last_done: AtomicU64::new(0),
            recycle: AtomicU8::new(0),
            cpu_ticks: AtomicU64::new(0),
            process: handle,
        });
        Ok(Worker {
            relay,
            info,
            exchange: Exchange::Idle,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_request_is_recognised_only_in_its_exact_shape() {
        assert!(is_stop_request(br#"{"stop":true}"#));
        assert!(is_stop_request(br#"{ "stop" : true }"#));
        assert!(!is_stop_request(br#"{"stop":false}"#));
        assert!(!is_stop_request(br#"{"status":200,"headers":{}}"#));
        assert!(!is_stop_request(b""));
    }

    #[test]
    fn recycle_reasons_round_trip_through_their_code() {
        for r in RecycleReason::ALL {
            assert_eq!(RecycleReason::from_u8(r as u8), Some(r));
        }
        assert_eq!(RecycleReason::from_u8(0), None);
    }
}
