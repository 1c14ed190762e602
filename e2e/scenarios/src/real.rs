//! The world of the real-node scenarios (`tests/node.rs`): the harness's [`Node`] (etcd,
//! kube-apiserver, kube-controller-manager, kube-scheduler, containerd, the kubelet), the
//! chart installed with the real `helm install` as the README's Kubernetes quick start
//! says (the operator runs as two pods of the Pacer image, leader-elected), and the
//! tools a user has: `kubectl` and `helm`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, Client};
use pacer_e2e::{Node, NodeOptions};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::dial::Dial;

/// The directory holding the static release binaries for the Pacer image (the Makefile
/// sets it); default: `x86_64-unknown-linux-gnu/release` in the test's target directory.
pub const RELEASE_ENV: &str = "PACER_E2E_RELEASE_DIR";
/// The Pacer image's tag (the chart's appVersion).
pub const VERSION: &str = "0.1.0";
/// The operator's namespace and release name, as in the README.
pub const OPERATOR_NAMESPACE: &str = "pacer-system";
/// The release (and Deployment) name.
pub const RELEASE: &str = "pacer-operator";

/// The real node with the operator installed.
#[derive(Debug)]
pub struct RealWorld {
    node: &'static Node,
    helm_started: Instant,
    helm_took: Duration,
    operator_ready: Duration,
}

impl RealWorld {
    /// The world of this test process, started on first use.
    ///
    /// # Errors
    /// When any part cannot start.
    pub async fn shared() -> Result<&'static Self> {
        static WORLD: OnceCell<Result<RealWorld, String>> = OnceCell::const_new();
        WORLD
            .get_or_init(|| async { Self::start().await.map_err(|e| format!("{e:#}")) })
            .await
            .as_ref()
            .map_err(|e| anyhow!("the real-node world did not start: {e}"))
    }

    async fn start() -> Result<Self> {
        let begun = Instant::now();
        let node = Node::shared(NodeOptions {
            logs: crate::out_dir().join("node"),
            release_dir: release_dir()?,
            version: VERSION.to_owned(),
        })
        .await?;
        let steps: Vec<String> = node
            .timings()
            .iter()
            .map(|(step, took)| format!("{step} {:.1}s", took.as_secs_f64()))
            .collect();
        println!(
            "real node up in {:.1}s: {}",
            begun.elapsed().as_secs_f64(),
            steps.join(", ")
        );

        // The README's command, with the image built here and two replicas.
        let chart = crate::repo_root().join("charts/pacer-operator");
        let helm_started = Instant::now();
        run(node.helm().args([
            "install",
            RELEASE,
            &chart.display().to_string(),
            "-n",
            OPERATOR_NAMESPACE,
            "--create-namespace",
            "--set",
            "image.repository=localhost/pacer",
            "--set",
            &format!("image.tag={VERSION}"),
            "--set",
            "replicaCount=2",
        ]))
        .await
        .context("helm install")?;
        let helm_took = helm_started.elapsed();
        let deployments: Api<Deployment> = Api::namespaced(node.client()?, OPERATOR_NAMESPACE);
        let ready = crate::wait_for(
            Duration::from_secs(180),
            Duration::from_millis(250),
            "the operator's two pods to be Ready",
            || async {
                node.check()?;
                let d = deployments.get(RELEASE).await?;
                let ready = d.status.and_then(|s| s.ready_replicas).unwrap_or(0);
                Ok((ready == 2).then_some(()))
            },
        )
        .await;
        if let Err(e) = ready {
            // What the operator said, for the failure report.
            let logs = run(node.kubectl().args([
                "logs",
                "-n",
                OPERATOR_NAMESPACE,
                &format!("deploy/{RELEASE}"),
                "--tail=40",
            ]))
            .await
            .unwrap_or_else(|e| format!("(no logs: {e:#})"));
            let pods =
                run(node
                    .kubectl()
                    .args(["get", "pods", "-n", OPERATOR_NAMESPACE, "-o", "wide"]))
                .await
                .unwrap_or_default();
            return Err(e.context(format!("{pods}\noperator log:\n{logs}")));
        }
        let operator_ready = helm_started.elapsed();
        println!(
            "helm install took {:.1}s; the operator's 2 pods Ready {:.1}s after it began",
            helm_took.as_secs_f64(),
            operator_ready.as_secs_f64()
        );
        Ok(Self {
            node,
            helm_started,
            helm_took,
            operator_ready,
        })
    }

    /// The node.
    #[must_use]
    pub fn node(&self) -> &'static Node {
        self.node
    }

    /// A new admin client (make it in the runtime that uses it).
    ///
    /// # Errors
    /// When it cannot be built.
    pub fn client(&self) -> Result<Client> {
        self.node.client()
    }

    /// How the test reaches pods: sockets made in the node's network namespace.
    #[must_use]
    pub fn dial(&self) -> Dial {
        Dial::Ns(self.node.netns().clone())
    }

    /// When `helm install` began.
    #[must_use]
    pub fn helm_started(&self) -> Instant {
        self.helm_started
    }

    /// How long `helm install` took, and until the operator's pods were Ready.
    #[must_use]
    pub fn helm_times(&self) -> (Duration, Duration) {
        (self.helm_took, self.operator_ready)
    }

    /// Runs `kubectl args…` and returns its stdout.
    ///
    /// # Errors
    /// When it fails (with its stderr).
    pub async fn kubectl(&self, args: &[&str]) -> Result<String> {
        let mut command = self.node.kubectl();
        command.args(args);
        run(&mut command)
            .await
            .with_context(|| format!("kubectl {}", args.join(" ")))
    }
}

/// Runs a prepared command (bounded: 5 minutes) and returns its stdout.
async fn run(command: &mut tokio::process::Command) -> Result<String> {
    command
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(300), command.output())
        .await
        .context("no result within 5 minutes")??;
    if !out.status.success() {
        bail!(
            "exit {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn release_dir() -> Result<PathBuf> {
    let dir = match std::env::var_os(RELEASE_ENV) {
        Some(dir) => PathBuf::from(dir),
        // target/debug/deps/<test> → target/x86_64-unknown-linux-gnu/release
        None => std::env::current_exe()?
            .ancestors()
            .nth(3)
            .map(|target| target.join("x86_64-unknown-linux-gnu/release"))
            .context("no target directory above the test executable")?,
    };
    for name in ["pacer", "pacer-operator"] {
        if !dir.join(name).is_file() {
            bail!(
                "{} does not exist (run `make release`, or set {RELEASE_ENV})",
                dir.join(name).display()
            );
        }
    }
    Ok(dir)
}

/// Whether the real node can run here: root, and Debian's containerd, runc, CNI plugins,
/// buildah and mmdebstrap (`scripts/deps.sh` with the e2e extras installs them). Outside CI
/// a missing one is a skip, announced on stderr; with `CI=true` it is an error.
///
/// # Errors
/// With `CI=true`, when something is missing.
pub fn available() -> Result<bool> {
    let mut missing = Vec::new();
    for (path, what) in [
        ("/usr/bin/containerd", "containerd"),
        ("/usr/sbin/runc", "runc"),
        ("/usr/lib/cni/bridge", "containernetworking-plugins"),
        ("/usr/bin/buildah", "buildah"),
        ("/usr/bin/mmdebstrap", "mmdebstrap"),
        ("/usr/bin/nsenter", "util-linux"),
    ] {
        if !Path::new(path).exists() {
            missing.push(format!("{path} ({what})"));
        }
    }
    if !nix::unistd::geteuid().is_root() {
        missing.push("root (the node makes namespaces, cgroups and mounts)".to_owned());
    }
    if missing.is_empty() {
        return crate::available();
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        bail!("the real-node scenarios need: {}", missing.join("; "));
    }
    eprintln!("SKIPPED (not in CI): missing {}", missing.join("; "));
    Ok(false)
}
