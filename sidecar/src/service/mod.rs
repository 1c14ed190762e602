//! The `service` section: RoadRunner's process manager. Each `service.<name>` runs
//! `process_num` copies of a command; pacer logs their output line by line, stops one that
//! runs past `exec_timeout`, starts it again `restart_sec` after it exits when
//! `remain_after_exit` is set, and on shutdown sends SIGTERM, then SIGKILL after
//! `timeout_stop_sec`. Built on the public [`Plugin`] API, like any custom service.
//! RoadRunner's `service.*` RPC (`Create`, `Restart`, `Terminate`, `Status`, `Statuses`,
//! `List`, see [`rpc`]) manages the services at run time.
//!
//! One task per process copy owns that process (spawn, wait, restart); the plugin holds
//! the groups (one per service: its config, the copies' shared status, a stop token).

pub mod proto;
mod rpc;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ServiceConfig;
use crate::plugin::{Plugin, PluginContext, PluginError};
use crate::rpc::{BoxFuture, RpcService};

/// One process copy's state, for logs, tests, health and `service.Statuses`.
#[derive(Debug, Default)]
pub struct ProcessStatus {
    /// The running pid (0 when not running).
    pub pid: AtomicU32,
    /// Times it was started.
    pub starts: AtomicU64,
    /// The last exit code (-1: killed by a signal or never exited).
    pub last_exit: Mutex<Option<i32>>,
    /// When the running process started (for its CPU percentage).
    pub started_at: Mutex<Option<tokio::time::Instant>>,
}

/// One service: its config and its copies, stopped together.
#[derive(Clone, Debug)]
struct Group {
    config: ServiceConfig,
    copies: Vec<Arc<ProcessStatus>>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Group {
    /// Stops every copy (SIGTERM, SIGKILL after `timeout_stop_sec`) and waits for them.
    async fn stop(&self) {
        self.stop.cancel();
        self.tasks.close();
        let _ = tokio::time::timeout(
            self.config.timeout_stop_sec + Duration::from_secs(1),
            self.tasks.wait(),
        )
        .await;
    }
}

/// What every process gets, fixed at start: the environment and the working directory.
#[derive(Clone, Debug, Default)]
struct Launch {
    env: Vec<(OsString, OsString)>,
    workdir: std::path::PathBuf,
}

/// The process manager.
#[derive(Debug, Clone)]
pub struct Services {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    configs: Vec<ServiceConfig>,
    groups: Mutex<BTreeMap<String, Group>>,
    launch: Mutex<Launch>,
    stop: CancellationToken,
    tasks: TaskTracker,
    /// Serialises `Create`/`Restart`/`Terminate` (each waits for processes to stop).
    changes: tokio::sync::Mutex<()>,
}

impl Services {
    pub fn new(configs: Vec<ServiceConfig>) -> Services {
        Services {
            inner: Arc::new(Inner {
                configs,
                groups: Mutex::new(BTreeMap::new()),
                launch: Mutex::new(Launch::default()),
                stop: CancellationToken::new(),
                tasks: TaskTracker::new(),
                changes: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Each copy's status, by service name (empty for an unknown one).
    pub fn status(&self, name: &str) -> Vec<Arc<ProcessStatus>> {
        self.inner
            .groups
            .lock()
            .get(name)
            .map_or_else(Vec::new, |g| g.copies.clone())
    }

    /// How `config`'s processes start: pacer's environment for services, then its `env`.
    fn how(&self, config: &ServiceConfig) -> Spawn {
        let launch = self.inner.launch.lock().clone();
        let mut env = launch.env;
        env.extend(config.env.iter().map(|(k, v)| (k.into(), v.into())));
        Spawn {
            env,
            workdir: launch.workdir,
        }
    }

    /// Starts `config`'s copies as a new group. `first` holds processes already spawned
    /// (one per copy), so that a caller can report a command that cannot start.
    fn launch(&self, config: ServiceConfig, first: Vec<Option<Child>>) -> Group {
        let how = self.how(&config);
        let group = Group {
            copies: (0..config.process_num)
                .map(|_| Arc::new(ProcessStatus::default()))
                .collect(),
            stop: self.inner.stop.child_token(),
            tasks: TaskTracker::new(),
            config,
        };
        let mut first = first.into_iter();
        for (i, status) in group.copies.iter().enumerate() {
            let task = supervise(
                group.config.clone(),
                i,
                how.clone(),
                first.next().flatten(),
                status.clone(),
                group.stop.clone(),
            );
            self.inner.tasks.spawn(group.tasks.track_future(task));
        }
        group
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
            *self.inner.launch.lock() = Launch {
                env,
                workdir: ctx.config.workdir.clone(),
            };
            for config in &self.inner.configs {
                let group = self.launch(config.clone(), Vec::new());
                self.inner.groups.lock().insert(config.name.clone(), group);
            }
            Ok(())
        })
    }

    fn stop(&self, grace: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.inner.stop.cancel();
            self.inner.tasks.close();
            // Each task bounds its own stop by timeout_stop_sec; this is the backstop.
            let longest = self
                .inner
                .groups
                .lock()
                .values()
                .map(|g| g.config.timeout_stop_sec)
                .max()
                .unwrap_or_default();
            let _ = tokio::time::timeout(
                grace.max(longest) + Duration::from_secs(1),
                self.inner.tasks.wait(),
            )
            .await;
        })
    }

    fn rpc(&self) -> Option<Arc<dyn RpcService>> {
        Some(Arc::new(self.clone()))
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

/// How a copy's process is started.
#[derive(Clone, Debug)]
struct Spawn {
    env: Vec<(OsString, OsString)>,
    workdir: std::path::PathBuf,
}

/// Starts one process of `config` in its own process group.
fn spawn(config: &ServiceConfig, how: &Spawn) -> std::io::Result<Child> {
    let Some((program, args)) = config.command.split_first() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the command is empty",
        ));
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(how.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&how.workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    crate::sys::kill_child_when_parent_dies(cmd.as_std_mut());
    crate::children::spawn(&mut cmd)
}

/// Kills processes spawned for a group that will not run (another copy failed).
async fn discard(children: Vec<Option<Child>>) {
    for mut child in children.into_iter().flatten() {
        if let Some(pid) = child.id() {
            term_group(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait().await;
            crate::children::forget(pid);
        }
    }
}

/// Owns one copy: runs it, restarts it, stops it. `first` is an already spawned
/// process to start with.
async fn supervise(
    config: ServiceConfig,
    index: usize,
    how: Spawn,
    mut first: Option<Child>,
    status: Arc<ProcessStatus>,
    stop: CancellationToken,
) {
    let name = config.name.clone();
    loop {
        let spawned = match first.take() {
            Some(child) => Ok(child),
            None => spawn(&config, &how),
        };
        let mut child = match spawned {
            Ok(c) => c,
            Err(error) => {
                tracing::error!(service = %name, %error, command = ?config.command, "cannot start the service");
                if !config.remain_after_exit || config.command.is_empty() {
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
        *status.started_at.lock() = Some(tokio::time::Instant::now());
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
