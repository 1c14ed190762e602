//! Starting workers: the process, its relay (pipes or a socket the worker dials), the
//! PID handshake and the environment PHP expects (`RR_RELAY`, `RR_RPC`, …).

use std::sync::Arc;
use std::time::Duration;

use super::RR_VERSION;
use super::exchange::Worker;
use super::info::{WorkerIdent, WorkerInfo};
use super::process::{self, Exit, ProcessSpec};
use crate::relay::{self, FrameCodec, Relay, RelayAddr, RelayError, SocketListener};

/// Why a worker could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot start `{command}`: {source}")]
    Start {
        command: String,
        source: std::io::Error,
    },
    #[error("worker (pid {pid}) failed the handshake: {source}")]
    Handshake { pid: u32, source: RelayError },
    #[error(
        "worker (pid {pid}) did not complete the handshake within allocate_timeout ({timeout:?}); \
         a worker must be the exec'ed PHP process itself and connect to the relay"
    )]
    Timeout { pid: u32, timeout: Duration },
}

/// What the pool needs to start a worker. [`Spawner`] starts real PHP processes; the
/// pool's unit tests start fake ones on in-memory relays.
pub trait SpawnWorker: Send + Sync + std::fmt::Debug + 'static {
    /// The command line, for status and logs.
    fn command_line(&self) -> String;

    /// Starts one worker and completes its handshake within `timeout`. `on_exit` is
    /// called once, when the process is gone (even if the handshake failed). The pool
    /// times a successful call as the worker's boot (`pacer_worker_boot_seconds`), so an
    /// implementation starts the process at once and returns when the handshake is done.
    fn spawn_worker(
        &self,
        ident: WorkerIdent,
        jitter_percent: u64,
        timeout: Duration,
        on_exit: Box<dyn FnOnce(Exit) + Send>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Worker, SpawnError>> + Send + '_>>;
}

impl SpawnWorker for Spawner {
    fn command_line(&self) -> String {
        Spawner::command_line(self)
    }

    fn spawn_worker(
        &self,
        ident: WorkerIdent,
        jitter_percent: u64,
        timeout: Duration,
        on_exit: Box<dyn FnOnce(Exit) + Send>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Worker, SpawnError>> + Send + '_>>
    {
        Box::pin(self.spawn(ident, jitter_percent, timeout, on_exit))
    }
}

/// Starts workers: the process spec, the relay, and the environment PHP expects.
#[derive(Debug)]
pub struct Spawner {
    spec: ProcessSpec,
    relay: RelayAddr,
    listener: Option<SocketListener>,
    env: Vec<(&'static str, String)>,
    codec: FrameCodec,
    /// `cpus[shard]`: the CPU a worker of that shard is pinned to (runtime shards).
    cpus: Vec<Option<usize>>,
}

impl Spawner {
    /// `mode` is `RR_MODE` (`http`); `rpc` the RPC address for `RR_RPC`, if RPC is on.
    /// Socket relays start listening here.
    pub async fn new(
        spec: ProcessSpec,
        relay: RelayAddr,
        mode: &str,
        rpc: Option<String>,
        codec: FrameCodec,
        handshake_timeout: Duration,
    ) -> std::io::Result<Spawner> {
        let listener = match relay {
            RelayAddr::Pipes => None,
            ref socket => Some(
                SocketListener::bind(
                    socket,
                    std::process::id(),
                    handshake_timeout,
                    codec.clone().resynchronising(),
                )
                .await?,
            ),
        };
        // Connecting to a unix socket needs write permission on its file, which pacer
        // creates as itself: workers running as `server.user` get the file, as they get
        // their upload temp files. Other users still cannot connect.
        if let (RelayAddr::Unix(path), Some(uid)) = (&relay, spec.uid)
            && uid != nix::unistd::geteuid().as_raw()
        {
            std::os::unix::fs::chown(path, Some(uid), spec.gid)?;
        }
        let relay_env = listener
            .as_ref()
            .map_or_else(|| relay.to_string(), |l| l.dsn().to_string());
        let mut env = vec![
            ("RR_MODE", mode.to_string()),
            ("RR_RELAY", relay_env),
            ("RR_VERSION", RR_VERSION.to_string()),
        ];
        if let Some(rpc) = rpc {
            env.push(("RR_RPC", rpc));
        }
        Ok(Spawner {
            spec,
            relay,
            listener,
            env,
            codec: codec.resynchronising(),
            cpus: Vec::new(),
        })
    }

    pub fn command_line(&self) -> String {
        self.spec.command.join(" ")
    }

    /// Pins the workers of shard `i` to `cpus[i]` (runtime shards).
    pub fn with_cpus(mut self, cpus: Vec<Option<usize>>) -> Spawner {
        self.cpus = cpus;
        self
    }

    /// Starts one worker and completes its handshake within `timeout`. `on_exit` is called
    /// once, when the process is gone (even if the handshake failed).
    pub async fn spawn(
        &self,
        ident: WorkerIdent,
        jitter_percent: u64,
        timeout: Duration,
        on_exit: impl FnOnce(Exit) + Send + 'static,
    ) -> Result<Worker, SpawnError> {
        let pipes = self.relay == RelayAddr::Pipes;
        let cpu = self.cpus.get(ident.shard).copied().flatten();
        let started =
            process::start(&self.spec, &self.env, pipes, cpu, on_exit).map_err(|source| {
                SpawnError::Start {
                    command: self.command_line(),
                    source,
                }
            })?;
        let handle = started.handle;
        let pid = handle.pid();
        let connected = async {
            let mut relay = match (&self.listener, started.stdin, started.stdout) {
                (None, Some(stdin), Some(stdout)) => {
                    let mut relay = Relay::new(stdout, stdin, self.codec.clone());
                    relay.set_peer_pid(pid);
                    relay
                }
                (Some(listener), _, _) => match listener.claim(pid, timeout).await {
                    Some(relay) => return Ok(relay),
                    None => return Err(SpawnError::Timeout { pid, timeout }),
                },
                _ => {
                    return Err(SpawnError::Start {
                        command: self.command_line(),
                        source: std::io::Error::other("worker pipes are missing"),
                    });
                }
            };
            match relay::handshake(&mut relay, std::process::id(), timeout).await {
                Ok(_) => Ok(relay),
                Err(RelayError::Handshake(m)) if m.starts_with("no pid reply") => {
                    Err(SpawnError::Timeout { pid, timeout })
                }
                Err(source) => Err(SpawnError::Handshake { pid, source }),
            }
        };
        let relay = match tokio::time::timeout(timeout, connected).await {
            Ok(Ok(relay)) => relay,
            Ok(Err(e)) => {
                handle.kill();
                return Err(e);
            }
            Err(_) => {
                handle.kill();
                return Err(SpawnError::Timeout { pid, timeout });
            }
        };
        let info = Arc::new(WorkerInfo::new(
            ident,
            pid,
            jitter_percent,
            self.command_line(),
            handle,
        ));
        Ok(Worker::new(relay, info))
    }
}
