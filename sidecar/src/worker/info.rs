//! What others may know about a worker without owning it: its identity, state, job
//! count, RSS and recycle flag ([`WorkerInfo`], lock-free), and the closed sets of
//! states and recycle reasons (RoadRunner's codes, metric labels).

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::process::ProcessHandle;

/// Worker states. The numbers are RoadRunner's informer `status` codes (docs/wire-protocol.md
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
    /// The runtime shard that drives this worker's relay (0 without shards).
    pub shard: usize,
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

impl WorkerInfo {
    /// A fresh, ready worker's facts.
    pub(crate) fn new(
        ident: WorkerIdent,
        pid: u32,
        jitter_percent: u64,
        command: String,
        process: ProcessHandle,
    ) -> WorkerInfo {
        WorkerInfo {
            ident,
            pid,
            created: Instant::now(),
            created_at: SystemTime::now(),
            jitter_percent,
            command,
            state: AtomicU8::new(WorkerState::Ready as u8),
            jobs: AtomicU64::new(0),
            rss: AtomicU64::new(0),
            busy_since: AtomicU64::new(0),
            last_done: AtomicU64::new(0),
            recycle: AtomicU8::new(0),
            cpu_ticks: AtomicU64::new(0),
            process,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycle_reasons_round_trip_through_their_code() {
        for r in RecycleReason::ALL {
            assert_eq!(RecycleReason::from_u8(r as u8), Some(r));
        }
        assert_eq!(RecycleReason::from_u8(0), None);
    }
}
