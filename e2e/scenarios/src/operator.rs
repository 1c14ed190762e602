//! `pacer-operator` as a child process, exactly as a user runs it (`run` with flags and
//! a kubeconfig), one per scenario namespace: `--namespace` limits what it watches and
//! its Lease lives there too, so scenarios do not see each other.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::lock;
use anyhow::{Context, Result};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use pacer_e2e::Watchdog;

/// A running operator.
#[derive(Debug)]
pub struct OperatorProcess {
    child: Child,
    identity: String,
    log: PathBuf,
    watchdog: Arc<Mutex<Watchdog>>,
}

impl OperatorProcess {
    /// Starts `binary run` against `kubeconfig`, watching `namespace` as `identity`, with
    /// its output appended to `log`.
    ///
    /// # Errors
    /// When the process cannot be spawned.
    pub fn start(
        binary: &Path,
        kubeconfig: &Path,
        namespace: &str,
        identity: &str,
        log: &Path,
        watchdog: Arc<Mutex<Watchdog>>,
    ) -> Result<Self> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let err = out.try_clone()?;
        let child = Command::new(binary)
            .args([
                "run",
                "--namespace",
                namespace,
                "--lease-namespace",
                namespace,
                "--identity",
                identity,
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "text",
                "--sidecar-image",
                "pacer:e2e",
                "--prometheus-allowed-urls",
                "http://127.0.0.1",
            ])
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,kube=warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        lock(&watchdog).guard(child.id())?;
        Ok(Self {
            child,
            identity: identity.to_owned(),
            log: log.to_path_buf(),
            watchdog,
        })
    }

    /// Its identity in the Lease and in Events.
    #[must_use]
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Its pid.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where its log goes.
    #[must_use]
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// `true` while it runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL: no chance to release the Lease or finish a reconcile.
    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait()
            && let Ok(pid) = i32::try_from(self.child.id())
        {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = self.child.wait();
        }
        let _ = lock(&self.watchdog).release(self.child.id());
    }

    /// SIGTERM and wait (bounded): releases the Lease.
    pub fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait()
            && let Ok(pid) = i32::try_from(self.child.id())
        {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
            while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        self.kill();
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
