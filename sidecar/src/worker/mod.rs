//! One PHP worker: its process, its relay, and the exchange of one job.
//!
//! A [`Worker`] is owned by exactly one party at a time — the pool's idle queue, or the
//! request that leased it — and moves between them by value. The exchange of a job runs
//! in the leasing task itself, so a request costs no extra task hops. The process is
//! owned by its own task (see [`process`]); shared, lock-free facts about the worker
//! (pid, state, job count, RSS, recycle flag) live in [`WorkerInfo`] for the supervisor,
//! metrics and RPC to read.
//!
//! * [`info`] — identity, state and counters others read;
//! * [`exchange`] — the worker and the frames of one job;
//! * [`spawner`] — starting a worker and its handshake;
//! * [`process`] — the task that owns the OS process.

pub mod exchange;
#[cfg(any(test, feature = "fake-workers"))]
pub mod fake;
pub mod info;
pub mod process;
pub mod spawner;

pub use exchange::{Exchange, ExecError, Payload, Reply, Worker};
pub use info::{RecycleReason, WorkerIdent, WorkerInfo, WorkerState};
pub use process::{Exit, ProcessHandle, ProcessSpec};
pub use spawner::{SpawnError, SpawnWorker, Spawner};

/// The version PHP code sees in `RR_VERSION`; some apps check it, so it looks like a
/// RoadRunner release (docs/wire-protocol.md §2.9).
pub const RR_VERSION: &str = "2025.1.15";
