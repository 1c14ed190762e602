//! The `service` section: RoadRunner's process manager. Each `service.<name>` runs
//! `process_num` copies of a command; pacer logs their output line by line, stops one that
//! runs past `exec_timeout`, starts it again `restart_sec` after it exits when
//! `remain_after_exit` is set, and on shutdown sends SIGTERM, then SIGKILL after
//! `timeout_stop_sec`. Built on the public [`Plugin`] API, like any custom service.
//!
//! One task per process copy owns that process (spawn, wait, restart); the plugin holds
//! only their shared status and one stop token.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ServiceConfig;
use crate::plugin::{Plugin, PluginContext, PluginError};
use crate::rpc::BoxFuture;

/// One process copy's state, for logs, tests and health.
#[derive(Debug, Default)]
pub struct ProcessStatus {
    /// The running pid (0 when not running).
    pub pid: AtomicU32,
    /// Times it was started.
    pub starts: AtomicU64,
    /// The last exit code (-1: killed by a signal or never exited).
    pub last_exit: Mutex<Option<i32>>,
}

/// The process manager.
#[derive(Debug)]
pub struct Services {
    configs: Vec<ServiceConfig>,
    status: BTreeMap<String, Vec<Arc<ProcessStatus>>>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Services {
    pub fn new(configs: Vec<ServiceConfig>) -> Services {
        let status = configs
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    (0..c.process_num)
                        .map(|_| Arc::new(ProcessStatus::default()))
                        .collect(),
                )
            })
            .collect();
        Services {
            configs,
            status,
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
        }
    }

    /// Each copy's status, by service name.
    pub fn status(&self, name: &str) -> &[Arc<ProcessStatus>] {
        self.status.get(name).map_or(&[], Vec::as_slice)
    }
}

impl Plugin for Services {
    fn name(&self) -> &str {
        "service"
    }

    fn start<'a>(&'a self, ctx: &'a PluginContext) -> BoxFuture<'a, Result<(), PluginError>> {
        Box::pin(async move {
            let mut env: Vec<(OsString, OsString)> = ctx
                .config
                .dotenv
                .iter()
                .map(|(k, v)| (k, v))
                .chain(ctx.config.server.env.iter())
                .map(|(k, v)| (k.into(), v.into()))
                .collect();
            if let Some(rpc) = &ctx.rpc {
                env.push(("RR_RPC".into(), rpc.into()));
            }
            for config in &self.configs {
                for (i, status) in self.status(&config.name).iter().enumerate() {
                    let mut env = env.clone();
                    env.extend(config.env.iter().map(|(k, v)| (k.into(), v.into())));
                    self.tasks.spawn(supervise(
                        config.clone(),
                        i,
                        env,
                        ctx.config.workdir.clone(),
                        status.clone(),
                        self.stop.clone(),
                    ));
                }
            }
            Ok(())
        })
    }

    fn stop(&self, grace: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.stop.cancel();
            self.tasks.close();
            // Each task bounds its own stop by timeout_stop_sec; this is the backstop.
            let longest = self
                .configs
                .iter()
                .map(|c| c.timeout_stop_sec)
                .max()
                .unwrap_or_default();
            let _ = tokio::time::timeout(
                grace.max(longest) + Duration::from_secs(1),
                self.tasks.wait(),
            )
            .await;
        })
    }
}

fn term_group(pid: u32, signal: nix::sys::signal::Signal) {
    if let Ok(p) = i32::try_from(pid) {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(p), signal);
    }
}

async fn log_lines(stream: impl AsyncRead + Unpin, service: String, pid: u32, name: &'static str) {
    let mut lines = BufReader::new(stream).lines();
    loop {
        match lines.next_line().await {
            Ok(Some(line)) => {
                tracing::info!(target: "pacer::service::output", %service, pid, stream = name, line = %line, "service output")
            }
            Ok(None) => break,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                tracing::info!(target: "pacer::service::output", %service, pid, stream = name, "service output is not UTF-8")
            }
            Err(_) => break,
        }
    }
}

/// Owns one copy: runs it, restarts it, stops it.
async fn supervise(
    config: ServiceConfig,
    index: usize,
    env: Vec<(OsString, OsString)>,
    workdir: std::path::PathBuf,
    status: Arc<ProcessStatus>,
    stop: CancellationToken,
) {
    let name = config.name.clone();
    loop {
        let Some((program, args)) = config.command.split_first() else {
            return;
        };
        let mut cmd = Command::new(program);
        cmd.args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(&workdir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        crate::sys::kill_child_when_parent_dies(cmd.as_std_mut());
        let mut child = match crate::children::spawn(&mut cmd) {
            Ok(c) => c,
            Err(error) => {
                tracing::error!(service = %name, %error, command = ?config.command, "cannot start the service");
                if !config.remain_after_exit {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(config.restart_sec) => continue,
                    _ = stop.cancelled() => return,
                }
            }
        };
        let pid = child.id().unwrap_or_default();
        status.pid.store(pid, Ordering::Relaxed);
        status.starts.fetch_add(1, Ordering::Relaxed);
        tracing::info!(service = %name, copy = index, pid, "service started");
        if let Some(out) = child.stdout.take() {
            tokio::spawn(log_lines(out, name.clone(), pid, "stdout"));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(log_lines(err, name.clone(), pid, "stderr"));
        }
        let timeout = async {
            match config.exec_timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        };
        let (exit, stopping) = tokio::select! {
            s = child.wait() => (s.ok(), false),
            _ = timeout => {
                tracing::warn!(service = %name, pid, exec_timeout = ?config.exec_timeout, "service ran past exec_timeout; stopping it");
                (stop_child(&mut child, pid, config.timeout_stop_sec).await, false)
            }
            _ = stop.cancelled() => (stop_child(&mut child, pid, config.timeout_stop_sec).await, true),
        };
        crate::children::forget(pid);
        status.pid.store(0, Ordering::Relaxed);
        let code = exit.and_then(|s| s.code());
        *status.last_exit.lock() = Some(code.unwrap_or(-1));
        tracing::info!(service = %name, pid, code = ?code, "service exited");
        if stopping || stop.is_cancelled() || !config.remain_after_exit {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(config.restart_sec) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// SIGTERM to the process group, SIGKILL after `grace`.
async fn stop_child(
    child: &mut tokio::process::Child,
    pid: u32,
    grace: Duration,
) -> Option<std::process::ExitStatus> {
    term_group(pid, nix::sys::signal::Signal::SIGTERM);
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(s) => s.ok(),
        Err(_) => {
            tracing::warn!(
                pid,
                ?grace,
                "service did not stop after SIGTERM; killing it"
            );
            term_group(pid, nix::sys::signal::Signal::SIGKILL);
            child.wait().await.ok()
        }
    }
}
