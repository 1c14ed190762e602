//! Duties of PID 1. In a container pacer is often the first process: orphans (e.g. the
//! children of a `shell_exec` whose parent worker was recycled) are re-parented to it and
//! turn into zombies unless reaped. The reaper reaps only zombies that pacer did not spawn
//! itself (see [`crate::children`]), so tokio still collects its workers' exit statuses.
//!
//! Zombies are found in `/proc`, which must be the PID namespace's own — as it is in every
//! container (and with `unshare --pid --mount-proc`); `sidecar/tests/pid1.rs` proves it.

use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::children;

/// Whether this process is PID 1 (or a subreaper standing in for it).
pub fn is_pid1() -> bool {
    std::process::id() == 1
}

/// Reaps orphaned zombies on every SIGCHLD (and every few seconds, in case a signal was
/// coalesced) until `cancel` fires.
pub async fn reap_orphans(cancel: CancellationToken) {
    let mut sigchld = match signal(SignalKind::child()) {
        Ok(s) => s,
        Err(error) => {
            tracing::warn!(%error, "cannot watch SIGCHLD; orphans will not be reaped");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = sigchld.recv() => {}
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
        let reaped = reap_once();
        if reaped > 0 {
            tracing::debug!(reaped, "reaped orphaned processes");
        }
    }
}

/// One pass: finds our zombie children in `/proc` that are not workers and reaps them.
pub fn reap_once() -> usize {
    let me = std::process::id();
    let zombies = zombie_children(me);
    if zombies.is_empty() {
        return 0;
    }
    // Holding the registry lock: no worker can be spawned (and registered) in between,
    // so a pid that is not registered now is an orphan.
    children::with_registry_locked(|ours| {
        zombies
            .into_iter()
            .filter(|pid| !ours.contains(pid))
            .filter(|pid| {
                nix::sys::wait::waitpid(
                    nix::unistd::Pid::from_raw(*pid as i32),
                    Some(nix::sys::wait::WaitPidFlag::WNOHANG),
                )
                .is_ok()
            })
            .count()
    })
}

/// Pids of zombie processes whose parent is `parent`.
fn zombie_children(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| parse_state_and_ppid(&stat))
                .is_some_and(|(state, ppid)| state == 'Z' && ppid == parent)
        })
        .collect()
}

/// `(state, ppid)` from a `/proc/<pid>/stat` line. The command name may contain spaces
/// and parentheses, so fields are counted after the LAST `)`.
fn parse_state_and_ppid(stat: &str) -> Option<(char, u32)> {
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_command_names_parse() {
        assert_eq!(parse_state_and_ppid("42 (php) S 1 42 42 0"), Some(('S', 1)));
        assert_eq!(
            parse_state_and_ppid("43 (a b) c)) Z 7 43 43 0"),
            Some(('Z', 7))
        );
        assert_eq!(parse_state_and_ppid("garbage"), None);
    }

    #[test]
    fn orphan_zombies_are_reaped_but_registered_children_are_not() {
        // An unregistered child (std spawn, not through `children::spawn`) that exits
        // becomes a zombie of this process: the reaper must collect it.
        let orphan = std::process::Command::new("true").spawn().unwrap();
        let orphan_pid = orphan.id();
        // A registered child: its status belongs to whoever spawned it.
        let mut cmd = tokio::process::Command::new("true");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let ours = rt.block_on(async { children::spawn(&mut cmd).unwrap() });
        let ours_pid = ours.id().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(zombie_children(std::process::id()).contains(&orphan_pid));
        reap_once();
        assert!(
            !zombie_children(std::process::id()).contains(&orphan_pid),
            "orphan reaped"
        );
        // The registered one is still waitable by its owner.
        let status = rt.block_on(async {
            let mut ours = ours;
            ours.wait().await
        });
        assert!(status.unwrap().success());
        children::forget(ours_pid);
        std::mem::forget(orphan);
    }
}
