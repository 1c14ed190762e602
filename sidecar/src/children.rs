//! The registry of processes pacer spawned itself.
//!
//! When pacer runs as PID 1 it must reap orphans that get re-parented to it, without
//! stealing the exit status of its own workers (tokio waits for those). The reaper reaps
//! only zombies whose pid is not in this registry. A pid is registered while the registry
//! lock is held across the spawn, so a worker that dies instantly is still never taken
//! for an orphan.

use std::collections::HashSet;
use std::sync::LazyLock;

use parking_lot::Mutex;

static OURS: LazyLock<Mutex<HashSet<u32>>> = LazyLock::new(|| Mutex::new(HashSet::new()));

/// Spawns `cmd` and registers the child's pid in one step.
pub fn spawn(cmd: &mut tokio::process::Command) -> std::io::Result<tokio::process::Child> {
    let mut ours = OURS.lock();
    let child = cmd.spawn()?;
    if let Some(pid) = child.id() {
        ours.insert(pid);
    }
    Ok(child)
}

/// Forgets a child once its exit status has been collected.
pub fn forget(pid: u32) {
    OURS.lock().remove(&pid);
}

/// Whether `pid` is a process pacer spawned and still waits for.
pub fn is_ours(pid: u32) -> bool {
    OURS.lock().contains(&pid)
}

/// Runs `f` while no spawn can register a pid (the reaper's scan-and-reap step).
pub fn with_registry_locked<T>(f: impl FnOnce(&HashSet<u32>) -> T) -> T {
    f(&OURS.lock())
}
