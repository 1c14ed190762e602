//! The one module allowed to use `unsafe`: a pre-exec hook for worker processes.
//!
//! Reviewed invariants: the closure runs in the forked child before `exec`, so it may only
//! call async-signal-safe functions. `prctl(2)`, `getppid(2)` and `_exit(2)` are; it
//! allocates nothing and takes no locks.
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
