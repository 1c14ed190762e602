//! Runtime shards (`pacer.runtime.shards`): one current-thread tokio runtime per CPU,
//! each on its own thread pinned to its CPU, each serving the connections it accepts
//! with the workers it owns (pinned to the same CPU).
//!
//! Why: on these machines what a request costs pacer is mostly wake-ups, and a wake-up
//! of a thread on another CPU is an inter-processor interrupt (on a VM, a VM exit)
//! charged to the waker. With one shard per CPU, a request's connection, its job frame
//! and the PHP worker that answers it stay on one CPU: writing the job wakes PHP on the
//! same CPU, PHP's reply wakes pacer on the same CPU, and no tokio task ever hops
//! between threads. A shard prefers its own idle workers and borrows another shard's
//! only when it has none left (that exchange then crosses CPUs, as every exchange did
//! with a single runtime).
//!
//! With one shard (the default) nothing here runs: everything stays on the main runtime.

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

thread_local! {
    /// The shard this thread runs, if it is a shard thread.
    static CURRENT: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The shard of the calling thread (0 off shard threads: the main runtime).
pub fn current() -> usize {
    CURRENT.with(Cell::get).unwrap_or(0)
}

/// The shard threads and their runtimes. Dropping it stops them (after their tasks).
#[derive(Debug)]
pub struct Shards {
    handles: Vec<Handle>,
    cpus: Vec<Option<usize>>,
    stops: Vec<oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Shards {
    /// Starts `n` shard threads; with `pin`, shard `i` runs on the `i`-th CPU this
    /// process may use (wrapping around). `n == 0` means one per such CPU.
    pub fn start(n: usize, pin: bool) -> std::io::Result<Arc<Shards>> {
        let cpus = allowed_cpus();
        let n = if n == 0 { cpus.len().max(1) } else { n };
        let mut shards = Shards {
            handles: Vec::with_capacity(n),
            cpus: Vec::with_capacity(n),
            stops: Vec::with_capacity(n),
            threads: Vec::with_capacity(n),
        };
        for i in 0..n {
            let cpu = if pin && !cpus.is_empty() {
                Some(cpus[i % cpus.len()])
            } else {
                None
            };
            let (handle_tx, handle_rx) = std::sync::mpsc::channel();
            let (stop_tx, stop_rx) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("pacer-shard-{i}"))
                .spawn(move || {
                    if let Some(cpu) = cpu {
                        pin_thread(cpu);
                    }
                    CURRENT.with(|c| c.set(Some(i)));
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            let _ = handle_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = handle_tx.send(Ok(runtime.handle().clone()));
                    runtime.block_on(async move {
                        let _ = stop_rx.await;
                    });
                })?;
            let handle = handle_rx
                .recv()
                .map_err(|_| std::io::Error::other("a shard thread died at start"))??;
            shards.handles.push(handle);
            shards.cpus.push(cpu);
            shards.stops.push(stop_tx);
            shards.threads.push(thread);
        }
        Ok(Arc::new(shards))
    }

    pub fn len(&self) -> usize {
        self.handles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// The CPU shard `i` is pinned to, if pinned.
    pub fn cpu(&self, i: usize) -> Option<usize> {
        self.cpus.get(i).copied().flatten()
    }

    /// Runs `fut` on shard `i`'s runtime.
    pub fn spawn<F>(&self, i: usize, fut: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handles[i % self.handles.len()].spawn(fut)
    }
}

impl Drop for Shards {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        // The threads end once their runtime's block_on returns; not joined here, as
        // the last `Arc` may be dropped on one of them.
        self.threads.clear();
    }
}

/// The CPUs this process may run on (its affinity mask: a cpuset-limited container sees
/// its own).
pub fn allowed_cpus() -> Vec<usize> {
    use nix::sched::{CpuSet, sched_getaffinity};
    use nix::unistd::Pid;
    match sched_getaffinity(Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap_or(false))
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn pin_thread(cpu: usize) {
    use nix::sched::{CpuSet, sched_setaffinity};
    use nix::unistd::Pid;
    let mut set = CpuSet::new();
    if set.set(cpu).is_ok()
        && let Err(error) = sched_setaffinity(Pid::from_raw(0), &set)
    {
        tracing::warn!(cpu, %error, "cannot pin a shard thread to its CPU");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_run_their_tasks_on_their_own_threads_pinned_to_allowed_cpus() {
        let cpus = allowed_cpus();
        assert!(!cpus.is_empty());
        let shards = Shards::start(2, true).unwrap();
        assert_eq!(shards.len(), 2);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for i in 0..2 {
            let (shard, cpu) = rt
                .block_on(shards.spawn(i, async { (current(), allowed_cpus()) }))
                .unwrap();
            assert_eq!(shard, i);
            assert_eq!(cpu, vec![cpus[i % cpus.len()]]);
            assert_eq!(shards.cpu(i), Some(cpus[i % cpus.len()]));
        }
        assert_eq!(current(), 0, "not a shard thread");
    }
}
