//! `pacer-e2e-scenarios`: the end-to-end proof that the operator tunes live pacer pods.
//!
//! Everything that can run here is real: etcd, kube-apiserver, kube-controller-manager
//! and kube-scheduler (built from their Go modules by `e2e/controlplane/build.sh
//! --cluster`), the `pacer-operator` binary as a process, `pacer serve --watch-config`
//! processes running the example PHP app, and Debian's Prometheus scraping them. Only
//! the kubelet is played by a stand-in ([`node`]), because there is no container runtime:
//! it runs each pod bound to its fake Node as local processes on a loopback address of
//! its own, mounts ConfigMaps the way the kubelet does (timestamped directory + atomic
//! `..data` symlink swap) and reports the pod's IP, container states and readiness.
//!
//! # Theory of operation
//! One [`World`] per test process (started on first use, like the harness's shared
//! control plane): control plane + controllers, the CRD, Prometheus, and the node
//! stand-in on a thread with its own Tokio runtime, so it outlives any one test. Each
//! scenario works in its own namespace with its own operator process (`--namespace`), so
//! scenarios run in parallel without seeing each other, and killing one operator
//! (scenario 5) disturbs nobody else. A scenario applies a `PhpAppServer`, drives HTTP at
//! its ready pods ([`load`]), records a [`timeline`] of what the operator saw and did, and
//! asserts on the API objects, the Events and the pacer processes' own metrics.
//!
//! Every child process is in its own process group under the harness's watchdog, so
//! nothing outlives the test process however it ends.
//!
//! # Modules
//! * [`world`] — the shared world and where the binaries come from.
//! * [`node`] — the kubelet stand-in.
//! * [`prometheus`] — Debian's Prometheus with file-based service discovery.
//! * [`operator`] — `pacer-operator` as a child process.
//! * [`load`] — the HTTP load generator (hyper client).
//! * [`timeline`] — what happened when, printed and kept under `e2e/out/`.
//! * [`scenario`] — one app under test: object, waits, metrics, events.
//! * [`metrics`] — reading a pacer's Prometheus text.
//!
//! Start reading at `tests/scenarios.rs`, then [`scenario::Scenario`].

pub mod dial;
pub mod load;
pub mod metrics;
pub mod node;
pub mod operator;
pub mod prometheus;
pub mod real;
pub mod real_app;
pub mod scenario;
pub mod timeline;
pub mod world;

pub use scenario::{Scenario, Source};
pub use world::World;

use std::time::Duration;

use anyhow::{Result, bail};

/// Locks `mutex`, also after a task panicked holding it: the harness's shared records
/// (histories, timelines, loads) stay readable for the failure report.
pub fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Polls `check` every `every` until it returns `Some`, or fails after `timeout` with the
/// last error (if any) and `what`.
pub async fn wait_for<T, F, Fut>(
    timeout: Duration,
    every: Duration,
    what: &str,
    mut check: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        if tokio::time::Instant::now() >= deadline {
            match last_error {
                Some(e) => {
                    bail!("timed out after {timeout:?} waiting for {what}; last error: {e:#}")
                }
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// Whether the scenarios can run here: Go (for the control plane), Debian's Prometheus
/// and PHP. Outside CI a missing one is a skip, announced on stderr (`false`); with
/// `CI=true` it is an error.
///
/// # Errors
/// With `CI=true`, when something is missing.
pub fn available() -> Result<bool> {
    let mut missing = Vec::new();
    if let Err(e) = pacer_e2e::cluster_bin_dir()
        && e.is::<pacer_e2e::GoMissing>()
    {
        missing.push(e.to_string());
    }
    let prometheus =
        std::env::var("PACER_PROMETHEUS").unwrap_or_else(|_| prometheus::DEFAULT_BINARY.to_owned());
    if !std::path::Path::new(&prometheus).is_file() {
        missing.push(format!("{prometheus} (Debian's prometheus)"));
    }
    let php = std::process::Command::new("php")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if !php {
        missing.push("php (php8.2-cli)".to_owned());
    }
    if missing.is_empty() {
        return Ok(true);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        bail!("the e2e scenarios need: {}", missing.join("; "));
    }
    eprintln!("SKIPPED (not in CI): missing {}", missing.join("; "));
    Ok(false)
}

/// The repository's root directory.
#[must_use]
pub fn repo_root() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// `e2e/out/`: timelines and logs of the last run (gitignored).
#[must_use]
pub fn out_dir() -> std::path::PathBuf {
    repo_root().join("e2e/out")
}
