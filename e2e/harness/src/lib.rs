//! A real Kubernetes control plane (etcd + kube-apiserver) for the operator's
//! integration tests and the end-to-end tests; nothing is mocked.
//!
//! # Theory of operation
//! The binaries are built from their published Go modules by
//! `e2e/controlplane/build.sh` into a cache outside the checkout ([`bin_dir`]).
//! [`ControlPlane::start`] makes a temp dir, generates a CA, serving and admin
//! certificates and a service-account key ([`pki`]), starts etcd and kube-apiserver on
//! free loopback ports, waits for `/readyz` and writes an admin kubeconfig. Logs go to
//! `etcd.log` and `kube-apiserver.log` in the temp dir ([`ControlPlane::dir`]).
//!
//! Starting takes a few seconds, so tests share one instance per test binary through
//! [`ControlPlane::shared`] and isolate themselves with [`ControlPlane::new_namespace`].
//! The servers run in their own process groups under a watchdog ([`process`]), so they
//! die with the test process even though a `static` is never dropped; an owned
//! instance is stopped on `Drop` or by [`ControlPlane::stop`].
//!
//! The admin identity is in group `system:masters` while the server authorizes with
//! RBAC only, so a test can check what a chart's RBAC allows by impersonating its
//! service account.
//!
//! # Module map
//! * `binaries`: finding or building kube-apiserver, etcd and helm.
//! * `pki`: certificates and keys.
//! * `process`: process groups and the watchdog.
//!
//! Start reading at [`ControlPlane::start`].

mod binaries;
pub mod netns;
pub mod node;
mod pki;
mod process;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use tempfile::TempDir;
use tokio::sync::OnceCell;
use tokio::time::Instant;

pub use binaries::{BIN_ENV, GoMissing, bin_dir, cluster_bin_dir, node_bin_dir};
pub use netns::NetNs;
pub use node::{Node, NodeOptions};
pub use process::{Server, Watchdog};

/// How long kube-apiserver may take to report ready. It takes 2–3 s here; the
/// margin is for a machine busy compiling.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// The service CIDR; its first address (10.0.0.1) is in the serving certificate.
pub(crate) const SERVICE_CIDR: &str = "10.0.0.0/24";

/// A running etcd + kube-apiserver pair.
#[derive(Debug)]
pub struct ControlPlane {
    // Killed and removed explicitly in `Drop`, in the order that matters.
    dir: TempDir,
    watchdog: Option<Watchdog>,
    etcd: Server,
    apiserver: Server,
    bin: PathBuf,
    server_url: String,
    kubeconfig: PathBuf,
    config: kube::Config,
    startup: Duration,
}

impl ControlPlane {
    /// Starts a new control plane, owned by the caller (stopped on drop).
    ///
    /// Finds or builds the binaries first ([`bin_dir`]). Prefer [`ControlPlane::shared`]
    /// in tests: each instance costs a few seconds and ~300 MB.
    pub async fn start() -> Result<Self> {
        let bin = find_binaries().await?;
        Self::start_with(&bin).await
    }

    /// The control plane shared by every test in this test binary, started on first use.
    ///
    /// It lives until the test process exits; the watchdog then kills it and removes its
    /// files. A failed start is remembered, so the other tests fail at once with the
    /// same message instead of each waiting for a time-out.
    pub async fn shared() -> Result<&'static Self> {
        static SHARED: OnceCell<Result<ControlPlane, String>> = OnceCell::const_new();
        // Outside the cell, so that `GoMissing` stays a typed error for `or_skip`.
        let bin = find_binaries().await?;
        let started = SHARED
            .get_or_init(
                || async move { Self::start_with(&bin).await.map_err(|e| format!("{e:#}")) },
            )
            .await;
        started
            .as_ref()
            .map_err(|message| anyhow!("the shared control plane did not start: {message}"))
    }

    async fn start_with(bin: &Path) -> Result<Self> {
        // Free ports are found by binding port 0 and closing it, so another process can
        // take one before our server binds it. Rare; starting again fixes it.
        let mut attempt = 1;
        loop {
            match Self::start_once(bin).await {
                Err(e) if attempt < 3 && format!("{e:#}").contains("address already in use") => {
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn start_once(bin: &Path) -> Result<Self> {
        let begun = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("pacer-controlplane-")
            .tempdir()
            .context("creating the control plane's temp dir")?;
        let files = pki::write(dir.path())?;
        let [etcd_port, peer_port, apiserver_port] = pacer_ports::free_ports();
        let mut watchdog = Watchdog::spawn(dir.path())?;

        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let data_dir = dir.path().join("etcd");
        let etcd_args = [
            "--name=pacer-e2e".to_string(),
            format!("--data-dir={}", data_dir.display()),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=pacer-e2e={peer_url}"),
            // The data is thrown away after the test: durability buys nothing here.
            "--unsafe-no-fsync".to_string(),
        ];
        let log = dir.path().join("etcd.log");
        let etcd = Server::spawn("etcd", &bin.join("etcd"), &etcd_args, log, &mut watchdog)?;

        let apiserver_args = apiserver_args(&files, &etcd_url, apiserver_port);
        let log = dir.path().join("kube-apiserver.log");
        let program = bin.join("kube-apiserver");
        let apiserver = Server::spawn(
            "kube-apiserver",
            &program,
            &apiserver_args,
            log,
            &mut watchdog,
        )?;

        let server_url = format!("https://127.0.0.1:{apiserver_port}");
        let kubeconfig = dir.path().join("kubeconfig");
        write_kubeconfig(&kubeconfig, &server_url, &files)?;
        let loaded = Kubeconfig::read_from(&kubeconfig)?;
        let config = kube::Config::from_custom_kubeconfig(loaded, &KubeConfigOptions::default())
            .await
            .context("loading the kubeconfig just written")?;

        let mut cp = Self {
            dir,
            watchdog: Some(watchdog),
            etcd,
            apiserver,
            bin: bin.to_path_buf(),
            server_url,
            kubeconfig,
            config,
            startup: Duration::ZERO,
        };
        cp.wait_ready().await?;
        cp.startup = begun.elapsed();
        Ok(cp)
    }

    /// Polls `/readyz` until it answers 200, a server exits, or [`READY_TIMEOUT`].
    async fn wait_ready(&mut self) -> Result<()> {
        let client = self.client()?;
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut interval = tokio::time::interval(Duration::from_millis(100));
        loop {
            interval.tick().await;
            for server in [&mut self.etcd, &mut self.apiserver] {
                if let Some(status) = server.exited()? {
                    bail!(
                        "{} exited during start-up ({status})\n{}",
                        server.name(),
                        server.log_tail(40)
                    );
                }
            }
            // `verbose` makes a not-ready answer list the checks that failed.
            let request = http::Request::get("/readyz?verbose").body(Vec::new())?;
            let answer = tokio::time::timeout(Duration::from_secs(5), client.request_text(request));
            let failure = match answer.await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => e.to_string(),
                Err(_) => "no answer within 5 s".to_string(),
            };
            if Instant::now() >= deadline {
                bail!(
                    "kube-apiserver was not ready after {READY_TIMEOUT:?}: {failure}\n{}\n{}",
                    self.apiserver.log_tail(40),
                    self.etcd.log_tail(10)
                );
            }
        }
    }

    /// A new client with admin rights (group `system:masters`).
    ///
    /// Call it inside the Tokio runtime that will use the client: a `kube::Client`
    /// must not outlive the runtime it was made in, and each `#[tokio::test]` has its
    /// own runtime, so every test makes its own client even from a shared instance.
    pub fn client(&self) -> Result<Client> {
        Client::try_from(self.config.clone()).context("building a kube client")
    }

    /// The admin client configuration, to derive other identities from (impersonation).
    pub fn config(&self) -> &kube::Config {
        &self.config
    }

    /// The path of an admin kubeconfig file (for `kubectl`, `helm` and the like).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The API server's URL, `https://127.0.0.1:<port>`.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// The temp dir holding the certificates, the kubeconfig and the logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The directory holding `kube-apiserver`, `etcd` and `helm`.
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// How long [`ControlPlane::start`] took, binaries excluded.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// The process ids of etcd and kube-apiserver (each leads its process group).
    pub fn pids(&self) -> [u32; 2] {
        [self.etcd.pid(), self.apiserver.pid()]
    }

    /// Creates a namespace named `<prefix>-<random suffix>` and returns its name.
    ///
    /// Tests sharing one control plane each work in their own namespace. Namespaces are
    /// not deleted: without a namespace controller they would stay `Terminating`, and
    /// the whole store is thrown away with the control plane anyway.
    pub async fn new_namespace(&self, prefix: &str) -> Result<String> {
        let namespaces: Api<Namespace> = Api::all(self.client()?);
        let namespace = Namespace {
            metadata: ObjectMeta {
                generate_name: Some(format!("{prefix}-")),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        let created = namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .with_context(|| format!("creating a namespace named {prefix}-…"))?;
        created
            .metadata
            .name
            .context("the API server returned a namespace without a name")
    }

    /// Stops both servers and removes the temp dir (what dropping it does).
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // The watchdog first, so it does not race us; the API server before its store.
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.disarm();
        }
        self.apiserver.kill();
        self.etcd.kill();
        // `self.dir` removes the directory when it is dropped, after this.
    }
}

/// Turns [`GoMissing`] into `Ok(None)` (a skip, announced on stderr) unless `CI=true`,
/// where a missing dependency is a failure. Every other error passes through.
///
/// ```no_run
/// # async fn test() -> anyhow::Result<()> {
/// let Some(cp) = pacer_e2e::or_skip(pacer_e2e::ControlPlane::shared().await)? else {
///     return Ok(());
/// };
/// # let _ = cp; Ok(()) }
/// ```
pub fn or_skip<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Err(e) if e.is::<GoMissing>() && std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("SKIPPED (not in CI): {e}");
            Ok(None)
        }
        other => other.map(Some),
    }
}

async fn find_binaries() -> Result<PathBuf> {
    tokio::task::spawn_blocking(bin_dir)
        .await
        .context("the thread looking for the binaries panicked")?
}

fn apiserver_args(files: &pki::Files, etcd_url: &str, port: u16) -> Vec<String> {
    let path = |p: &Path| p.display().to_string();
    vec![
        format!("--etcd-servers={etcd_url}"),
        "--bind-address=127.0.0.1".to_string(),
        "--advertise-address=127.0.0.1".to_string(),
        format!("--secure-port={port}"),
        format!("--tls-cert-file={}", path(&files.serving_cert)),
        format!("--tls-private-key-file={}", path(&files.serving_key)),
        format!("--client-ca-file={}", path(&files.ca_cert)),
        format!("--service-cluster-ip-range={SERVICE_CIDR}"),
        "--authorization-mode=RBAC".to_string(),
        "--service-account-issuer=https://kubernetes.default.svc".to_string(),
        format!("--service-account-key-file={}", path(&files.sa_public_key)),
        format!(
            "--service-account-signing-key-file={}",
            path(&files.sa_private_key)
        ),
        // There is no controller-manager: nothing creates the `default` service account
        // that this plugin would require before any pod is admitted.
        "--disable-admission-plugins=ServiceAccount".to_string(),
        // The `kubernetes` Endpoints would point at 127.0.0.1, which validation refuses
        // (loopback), so the reconciler would log an error every 10 s.
        "--endpoint-reconciler-type=none".to_string(),
        // Test pods may need it (e.g. a privileged init container); nothing runs them.
        "--allow-privileged=true".to_string(),
        "--profiling=false".to_string(),
    ]
}

fn write_kubeconfig(path: &Path, server_url: &str, files: &pki::Files) -> Result<()> {
    write_kubeconfig_for(
        path,
        server_url,
        &files.ca_cert,
        &files.admin_cert,
        &files.admin_key,
    )
}

/// A kubeconfig for the user of client certificate `cert` (and `key`) at `server_url`.
pub(crate) fn write_kubeconfig_for(
    path: &Path,
    server_url: &str,
    ca_cert: &Path,
    cert: &Path,
    key: &Path,
) -> Result<()> {
    // JSON is YAML, so every kubeconfig reader takes it.
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": "pacer-e2e",
            "cluster": { "server": server_url, "certificate-authority": ca_cert },
        }],
        "users": [{
            "name": "pacer-e2e-admin",
            "user": {
                "client-certificate": cert,
                "client-key": key,
            },
        }],
        "contexts": [{
            "name": "pacer-e2e",
            "context": { "cluster": "pacer-e2e", "user": "pacer-e2e-admin", "namespace": "default" },
        }],
        "current-context": "pacer-e2e",
    });
    let text = serde_json::to_string_pretty(&kubeconfig)?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
