//! The one module allowed to use `unsafe`: a pre-exec hook for worker processes.
//!
//! Reviewed invariants: the closures run in the forked child before `exec`, so they may
//! only call async-signal-safe functions. `prctl(2)`, `getppid(2)`, `_exit(2)` and
//! `sched_setaffinity(2)` are; they allocate nothing and take no locks.
#![allow(unsafe_code)]

use std::os::unix::process::CommandExt;

/// Makes the kernel SIGKILL the child when the thread that spawned it dies, so a worker
/// never outlives pacer, even when pacer itself is SIGKILLed.
///
/// `PR_SET_PDEATHSIG` fires when the spawning *thread* exits. Workers are spawned from
/// runtime threads (never from `spawn_blocking`, whose threads come and go), which live as
/// long as pacer. std applies `setuid`/`setgid` before pre-exec hooks, and a credential
/// change clears the setting, so it must be set here (after them), which it is.
pub fn kill_child_when_parent_dies(cmd: &mut std::process::Command) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) in the forked child.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then nobody would ever
            // deliver the signal, so give up now.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// Pins the child to `cpu` (runtime shards keep a worker on its shard's CPU). A failure
/// is ignored: an unpinned worker still works, only slower.
pub fn pin_child_to_cpu(cmd: &mut std::process::Command, cpu: usize) {
    // SAFETY: only sched_setaffinity (a plain syscall on a stack CpuSet) in the child.
    unsafe {
        cmd.pre_exec(move || {
            let mut set = nix::sched::CpuSet::new();
            if set.set(cpu).is_ok() {
                let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
            }
            Ok(())
        });
    }
}
