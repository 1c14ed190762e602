//! Starting a worker process and the task that owns it until it is gone.
//!
//! The process task owns the `Child`: it waits for the exit, kills the whole process
//! group on request or after a stop grace period, and reports the exit to the pool.
//! Everyone else holds a [`ProcessHandle`] (a channel sender) — there is no lock around
//! a process.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::children;

/// Everything needed to start one worker process. Built once from the config.
#[derive(Clone, Debug)]
pub struct ProcessSpec {
    /// Program and arguments; never run through a shell.
    pub command: Vec<String>,
    /// Added on top of pacer's own environment (already upper-cased and expanded).
    pub env: Vec<(OsString, OsString)>,
    pub cwd: Option<PathBuf>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// What the process task is told to do.
#[derive(Debug)]
pub(crate) enum Cmd {
    /// SIGKILL the process group now.
    Kill,
    /// The worker was asked to stop over its relay; SIGKILL the group if it has not
    /// exited after `grace`.
    StopWithin(Duration),
}

/// A cheap handle on a running worker process.
#[derive(Clone, Debug)]
pub struct ProcessHandle {
    pid: u32,
    tx: mpsc::Sender<Cmd>,
}

impl ProcessHandle {
    /// A handle on a fake process (the pool's unit tests): the commands arrive on the
    /// receiver. `pid` must be above the kernel's `pid_max` (at most 2^22), so that the
    /// fallback `kill(-pid)` could never reach a real process group.
    #[cfg(any(test, feature = "fake-workers"))]
    pub(crate) fn fake(pid: u32) -> (ProcessHandle, mpsc::Receiver<Cmd>) {
        assert!(pid > 1 << 22, "a fake pid must be above pid_max");
        let (tx, rx) = mpsc::channel(16);
        (ProcessHandle { pid, tx }, rx)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Kills the worker and everything it forked. Never blocks; idempotent.
    pub fn kill(&self) {
        // A full channel means a command is already queued; the process task always
        // drains it before anything else, and SIGKILL cannot be overtaken.
        if self.tx.try_send(Cmd::Kill).is_err() {
            kill_group(self.pid);
        }
    }

    /// Gives a worker that was asked to stop `grace` to exit before it is killed.
    pub fn stop_within(&self, grace: Duration) {
        if self.tx.try_send(Cmd::StopWithin(grace)).is_err() {
            kill_group(self.pid);
        }
    }
}

/// How a worker process ended.
#[derive(Clone, Copy, Debug)]
pub struct Exit {
    pub pid: u32,
    pub status: Option<ExitStatus>,
}

/// A started process with its pipes, before the relay is set up.
#[derive(Debug)]
pub struct Started {
    pub handle: ProcessHandle,
    pub stdin: Option<ChildStdin>,
    pub stdout: Option<ChildStdout>,
}

/// Starts the process described by `spec` with `extra_env` (RR_* variables) and spawns
/// its owning task, which sends one [`Exit`] to `on_exit` when the process is gone.
///
/// With `pipes` the relay runs over stdin/stdout; otherwise stdout is only logged.
pub fn start(
    spec: &ProcessSpec,
    extra_env: &[(&str, String)],
    pipes: bool,
    cpu: Option<usize>,
    on_exit: impl FnOnce(Exit) + Send + 'static,
) -> std::io::Result<Started> {
    let (program, args) = spec
        .command
        .split_first()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command"))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(extra_env.iter().map(|(k, v)| (k, v)))
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(if pipes { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Own process group: terminal signals aimed at pacer do not hit PHP directly, and
        // one killpg() takes the worker's own children with it.
        .process_group(0)
        .kill_on_drop(false);
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    if let Some(gid) = spec.gid {
        cmd.gid(gid);
    }
    if let Some(uid) = spec.uid {
        cmd.uid(uid);
    }
    crate::sys::kill_child_when_parent_dies(cmd.as_std_mut());
    if let Some(cpu) = cpu {
        crate::sys::pin_child_to_cpu(cmd.as_std_mut(), cpu);
    }

    let mut child = children::spawn(&mut cmd)?;
    let pid = child.id().unwrap_or_default();
    let stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(log_lines(stderr, pid, "stderr"));
    }
    if !pipes && let Some(out) = stdout.take() {
        tokio::spawn(log_lines(out, pid, "stdout"));
    }
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(own(child, pid, rx, on_exit));
    Ok(Started {
        handle: ProcessHandle { pid, tx },
        stdin,
        stdout,
    })
}

/// The owning task: waits for the exit, executes kill/stop commands.
async fn own(mut child: Child, pid: u32, mut rx: mpsc::Receiver<Cmd>, on_exit: impl FnOnce(Exit)) {
    let mut kill_at: Option<Instant> = None;
    let status = loop {
        tokio::select! {
            biased;
            status = child.wait() => break status.ok(),
            cmd = rx.recv() => match cmd {
                Some(Cmd::Kill) => kill_group(pid),
                Some(Cmd::StopWithin(grace)) => {
                    let at = Instant::now() + grace;
                    kill_at = Some(kill_at.map_or(at, |k| k.min(at)));
                }
                // Every handle is gone: nobody can ask for anything any more, but the
                // process still has to be waited for.
                None => {
                    let status = child.wait().await.ok();
                    break status;
                }
            },
            _ = async { tokio::time::sleep_until(kill_at.unwrap_or_else(Instant::now)).await }, if kill_at.is_some() => {
                tracing::warn!(pid, "worker did not stop in time; killing its process group");
                kill_group(pid);
                kill_at = None;
            }
        }
    };
    children::forget(pid);
    // Children the worker forked (and did not wait for) share its process group: take
    // them down too. The group id cannot be reused while any member is alive.
    kill_group(pid);
    on_exit(Exit { pid, status });
}

/// SIGKILL to the process group `pgid` (= the worker's pid). Errors mean it is gone.
pub fn kill_group(pgid: u32) {
    if pgid == 0 {
        return;
    }
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pgid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// Logs every line a worker writes to stderr (or to stdout on socket relays) with its pid.
async fn log_lines(stream: impl AsyncRead + Unpin, pid: u32, stream_name: &'static str) {
    let mut lines = BufReader::new(stream).lines();
    loop {
        match lines.next_line().await {
            Ok(Some(line)) => {
                tracing::info!(target: "pacer::worker::output", pid, stream = stream_name, line = %line, "worker output")
            }
            Ok(None) => break,
            // Not UTF-8: show it anyway rather than losing the rest of the output.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                tracing::info!(target: "pacer::worker::output", pid, stream = stream_name, "worker output is not UTF-8")
            }
            Err(_) => break,
        }
    }
}

/// Splits `server.command` like RoadRunner: a string on plain spaces (no shell quoting).
pub fn split_command(command: &str) -> Vec<String> {
    command
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}
