//! Where kube-apiserver, etcd and helm come from: `PACER_CONTROLPLANE_BIN` when set,
//! else the last line printed by `e2e/controlplane/build.sh` (which builds them once
//! into a cache outside the checkout and is a no-op afterwards).

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow, bail};

/// Environment variable naming a directory that already holds the three binaries.
pub const BIN_ENV: &str = "PACER_CONTROLPLANE_BIN";

const BUILD_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../controlplane/build.sh");
const BINARIES: [&str; 3] = ["kube-apiserver", "etcd", "helm"];
/// What `build.sh --cluster` adds: the end-to-end scenarios run them so that Deployments
/// become ReplicaSets and Pods bound to a node.
const CLUSTER_BINARIES: [&str; 2] = ["kube-controller-manager", "kube-scheduler"];

/// The binaries are not built and cannot be: `go` is not on `PATH`.
///
/// The one error [`crate::or_skip`] turns into a skip, and only when `CI` is not `true`.
#[derive(Debug, Clone, Copy)]
pub struct GoMissing;

impl fmt::Display for GoMissing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the control-plane binaries are not built and `go` is not on PATH \
             (install Go, or set {BIN_ENV} to a directory holding kube-apiserver, etcd and helm)"
        )
    }
}

impl std::error::Error for GoMissing {}

/// The directory holding `kube-apiserver`, `etcd` and `helm`.
///
/// Blocks while `build.sh` runs (seconds when cached, about 10 minutes cold). The
/// answer, or the failure, is kept for the life of the process.
pub fn bin_dir() -> Result<PathBuf> {
    // Err(None) stands for GoMissing, so that it stays a typed error after caching.
    static DIR: OnceLock<Result<PathBuf, Option<String>>> = OnceLock::new();
    cached(&DIR, false)
}

/// The directory holding the [`bin_dir`] binaries plus `kube-controller-manager` and
/// `kube-scheduler` (`build.sh --cluster`; a few minutes more on a cold build cache).
pub fn cluster_bin_dir() -> Result<PathBuf> {
    static DIR: OnceLock<Result<PathBuf, Option<String>>> = OnceLock::new();
    cached(&DIR, true)
}

fn cached(
    cell: &'static OnceLock<Result<PathBuf, Option<String>>>,
    cluster: bool,
) -> Result<PathBuf> {
    let cached = cell.get_or_init(|| match locate(cluster) {
        Ok(dir) => Ok(dir),
        Err(e) if e.is::<GoMissing>() => Err(None),
        Err(e) => Err(Some(format!("{e:#}"))),
    });
    match cached {
        Ok(dir) => Ok(dir.clone()),
        Err(None) => Err(GoMissing.into()),
        Err(Some(message)) => Err(anyhow!("{message}")),
    }
}

fn locate(cluster: bool) -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(BIN_ENV) {
        let dir = PathBuf::from(dir);
        // A directory without the cluster binaries is still good for the rest: build.sh
        // writes them beside the others, so fall through to it.
        if !cluster || check_cluster(&dir).is_ok() {
            check(&dir).with_context(|| format!("{BIN_ENV}={}", dir.display()))?;
            return Ok(dir);
        }
    }
    if let Err(e) = Command::new("go").arg("version").output()
        && e.kind() == std::io::ErrorKind::NotFound
    {
        return Err(GoMissing.into());
    }
    // build.sh's progress goes straight to our stderr: a cold build is long and its
    // progress is worth seeing even when the test harness captures output.
    let mut command = Command::new("bash");
    command.arg(BUILD_SH);
    if cluster {
        command.arg("--cluster");
    }
    let out = command
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {BUILD_SH}"))?;
    if !out.status.success() {
        bail!("{BUILD_SH} failed ({}); its output is above", out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let dir = stdout
        .lines()
        .last()
        .map(|line| PathBuf::from(line.trim()))
        .with_context(|| format!("{BUILD_SH} printed nothing"))?;
    check(&dir)?;
    if cluster {
        check_cluster(&dir)?;
    }
    Ok(dir)
}

fn check_cluster(dir: &Path) -> Result<()> {
    for name in CLUSTER_BINARIES {
        let path = dir.join(name);
        if !path.is_file() {
            bail!("{} does not exist", path.display());
        }
    }
    Ok(())
}

fn check(dir: &Path) -> Result<()> {
    for name in BINARIES {
        let path = dir.join(name);
        if !path.is_file() {
            bail!("{} does not exist", path.display());
        }
    }
    Ok(())
}
