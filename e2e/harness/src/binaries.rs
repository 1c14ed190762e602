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
/// What `build.sh --node` adds: the real node of the end-to-end scenarios.
const NODE_BINARIES: [&str; 3] = ["kubelet", "kubectl", "pause"];

/// Which set of binaries `build.sh` is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Set {
    ControlPlane,
    Cluster,
    Node,
}

impl Set {
    fn names(self) -> Vec<&'static str> {
        let mut names = BINARIES.to_vec();
        if self != Self::ControlPlane {
            names.extend(CLUSTER_BINARIES);
        }
        if self == Self::Node {
            names.extend(NODE_BINARIES);
        }
        names
    }

    fn flag(self) -> Option<&'static str> {
        match self {
            Self::ControlPlane => None,
            Self::Cluster => Some("--cluster"),
            Self::Node => Some("--node"),
        }
    }
}

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
    cached(&DIR, Set::ControlPlane)
}

/// The directory holding the [`bin_dir`] binaries plus `kube-controller-manager` and
/// `kube-scheduler` (`build.sh --cluster`; a few minutes more on a cold build cache).
pub fn cluster_bin_dir() -> Result<PathBuf> {
    static DIR: OnceLock<Result<PathBuf, Option<String>>> = OnceLock::new();
    cached(&DIR, Set::Cluster)
}

/// The directory holding the [`cluster_bin_dir`] binaries plus `kubelet`, `kubectl` and
/// `pause` (`build.sh --node`).
pub fn node_bin_dir() -> Result<PathBuf> {
    static DIR: OnceLock<Result<PathBuf, Option<String>>> = OnceLock::new();
    cached(&DIR, Set::Node)
}

fn cached(cell: &'static OnceLock<Result<PathBuf, Option<String>>>, set: Set) -> Result<PathBuf> {
    let cached = cell.get_or_init(|| match locate(set) {
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

fn locate(set: Set) -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(BIN_ENV) {
        let dir = PathBuf::from(dir);
        // A directory without the extra binaries is still good for the rest: build.sh
        // writes them beside the others, so fall through to it.
        if check(&dir, &set.names()).is_ok() {
            return Ok(dir);
        }
        check(&dir, &BINARIES).with_context(|| format!("{BIN_ENV}={}", dir.display()))?;
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
    if let Some(flag) = set.flag() {
        command.arg(flag);
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
    check(&dir, &set.names())?;
    Ok(dir)
}

fn check(dir: &Path, names: &[&str]) -> Result<()> {
    for name in names {
        let path = dir.join(name);
        if !path.is_file() {
            bail!("{} does not exist", path.display());
        }
    }
    Ok(())
}
