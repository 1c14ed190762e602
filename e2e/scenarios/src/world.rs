//! The world every scenario of a test process shares: the control plane with
//! kube-controller-manager and kube-scheduler, the CRD, Prometheus and the node.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use pacer_e2e::{ControlPlane, Server, Watchdog};
use tokio::sync::OnceCell;

use crate::node::{self, NodeConfig, NodeState};
use crate::prometheus::Prometheus;

/// A directory holding `pacer` and `pacer-operator` (the Makefile sets it after building
/// them); without it the scenarios build them with cargo.
pub const BIN_ENV: &str = "PACER_E2E_BIN_DIR";
/// Name of the fake Node.
pub const NODE_NAME: &str = "pacer-e2e-node";

/// Where the pacer and pacer-operator binaries are.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `pacer`.
    pub pacer: PathBuf,
    /// `pacer-operator`.
    pub operator: PathBuf,
}

impl Binaries {
    /// `$PACER_E2E_BIN_DIR`, else the directory of this test executable's profile
    /// (`target/debug`), where `cargo test --workspace` has just built both (they are
    /// binaries of packages with integration tests). `make e2e` builds them and sets the
    /// variable. (Running cargo from inside the test is avoided on purpose: the variables
    /// cargo sets for a test process make it rebuild half the dependency tree.)
    ///
    /// # Errors
    /// When they are missing.
    pub fn locate() -> Result<Self> {
        let dir = match std::env::var_os(BIN_ENV) {
            Some(dir) => PathBuf::from(dir),
            None => std::env::current_exe()?
                .parent()
                .and_then(Path::parent)
                .context("no profile directory above the test executable")?
                .to_path_buf(),
        };
        let found = Self {
            pacer: dir.join("pacer"),
            operator: dir.join("pacer-operator"),
        };
        for path in [&found.pacer, &found.operator] {
            if !path.is_file() {
                bail!(
                    "{} does not exist (set {BIN_ENV} or build it)",
                    path.display()
                );
            }
        }
        Ok(found)
    }
}

/// Everything the scenarios share.
#[derive(Debug)]
pub struct World {
    control_plane: &'static ControlPlane,
    _controllers: Vec<Server>,
    prometheus: Prometheus,
    node: Arc<NodeState>,
    binaries: Binaries,
    watchdog: Arc<Mutex<Watchdog>>,
    run_dir: PathBuf,
}

impl World {
    /// The world of this test process, started on first use (a failed start is
    /// remembered and reported to every later caller).
    ///
    /// # Errors
    /// When any part cannot start.
    pub async fn shared() -> Result<&'static Self> {
        static WORLD: OnceCell<Result<World, String>> = OnceCell::const_new();
        WORLD
            .get_or_init(|| async { Self::start().await.map_err(|e| format!("{e:#}")) })
            .await
            .as_ref()
            .map_err(|e| anyhow!("the e2e world did not start: {e}"))
    }

    async fn start() -> Result<Self> {
        let binaries = tokio::task::spawn_blocking(Binaries::locate).await??;
        let cluster_bin = tokio::task::spawn_blocking(pacer_e2e::cluster_bin_dir).await??;
        let control_plane = ControlPlane::shared().await?;

        let run_dir = crate::out_dir().join("run");
        let _ = std::fs::remove_dir_all(&run_dir);
        std::fs::create_dir_all(&run_dir)?;
        // The watchdog removes its directory when it fires: give it a scratch one, so the
        // logs under e2e/out stay for the reader.
        let scratch = tempfile::Builder::new()
            .prefix("pacer-e2e-world-")
            .tempdir()?
            .keep();
        let mut watchdog = Watchdog::spawn(&scratch)?;

        let kubeconfig = control_plane.kubeconfig_path().display().to_string();
        let common = |extra: &[&str]| -> Vec<String> {
            let mut args = vec![
                format!("--kubeconfig={kubeconfig}"),
                "--leader-elect=false".to_owned(),
                "--kube-api-qps=100".to_owned(),
                "--kube-api-burst=200".to_owned(),
            ];
            args.extend(extra.iter().map(|s| (*s).to_owned()));
            args
        };
        // Only the controllers a Deployment needs, plus garbage collection (owner
        // references); no node lifecycle controller (the node stand-in sends no
        // heartbeats), no service accounts (the API server runs without that admission).
        let manager = Server::spawn(
            "kube-controller-manager",
            &cluster_bin.join("kube-controller-manager"),
            &common(&[
                "--controllers=deployment-controller,replicaset-controller,garbage-collector-controller",
                "--secure-port=0",
                "--concurrent-deployment-syncs=10",
                "--concurrent-replicaset-syncs=10",
            ]),
            run_dir.join("kube-controller-manager.log"),
            &mut watchdog,
        )?;
        let scheduler = Server::spawn(
            "kube-scheduler",
            &cluster_bin.join("kube-scheduler"),
            &common(&["--secure-port=0"]),
            run_dir.join("kube-scheduler.log"),
            &mut watchdog,
        )?;
        let prometheus = Prometheus::start(&scratch.join("prometheus"), &mut watchdog).await?;

        let client = control_plane.client()?;
        install_crd(&client).await?;

        let watchdog = Arc::new(Mutex::new(watchdog));
        let root = crate::repo_root().canonicalize()?;
        let image = BTreeMap::from([
            ("/pacer".to_owned(), binaries.pacer.clone()),
            ("/pacer-operator".to_owned(), binaries.operator.clone()),
            ("/usr/local/bin/pacer".to_owned(), binaries.pacer.clone()),
            ("/app".to_owned(), root.join("examples/hello")),
            ("/jobs-app".to_owned(), root.join("e2e/scenarios/php")),
        ]);
        let node = node::spawn(
            control_plane.config().clone(),
            NodeConfig {
                name: NODE_NAME.to_owned(),
                image,
                dir: run_dir.clone(),
                targets: Some(prometheus.targets()),
            },
            watchdog.clone(),
        )?;
        let mut world = Self {
            control_plane,
            _controllers: vec![manager, scheduler],
            prometheus,
            node,
            binaries,
            watchdog,
            run_dir,
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        world.check_controllers()?;
        Ok(world)
    }

    fn check_controllers(&mut self) -> Result<()> {
        for server in &mut self._controllers {
            if let Some(status) = server.exited()? {
                bail!(
                    "{} exited ({status})\n{}",
                    server.name(),
                    server.log_tail(30)
                );
            }
        }
        Ok(())
    }

    /// Prometheus's scrape targets (a scenario adds its broker's exporter).
    #[must_use]
    pub fn prometheus_targets(&self) -> Arc<crate::prometheus::Targets> {
        self.prometheus.targets()
    }

    /// The control plane.
    #[must_use]
    pub fn control_plane(&self) -> &'static ControlPlane {
        self.control_plane
    }

    /// A new admin client (make it in the runtime that uses it).
    ///
    /// # Errors
    /// When the client cannot be built.
    pub fn client(&self) -> Result<Client> {
        self.control_plane.client()
    }

    /// Prometheus's base URL.
    #[must_use]
    pub fn prometheus_url(&self) -> &str {
        self.prometheus.url()
    }

    /// The node stand-in's state (pids of the app containers).
    #[must_use]
    pub fn node(&self) -> &NodeState {
        &self.node
    }

    /// The binaries.
    #[must_use]
    pub fn binaries(&self) -> &Binaries {
        &self.binaries
    }

    /// The watchdog every child process is registered with.
    #[must_use]
    pub fn watchdog(&self) -> Arc<Mutex<Watchdog>> {
        self.watchdog.clone()
    }

    /// `e2e/out/run`: logs of this run (pods, operators, controllers).
    #[must_use]
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }
}

async fn install_crd(client: &Client) -> Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        pacer_crds::CRD_NAME,
        &PatchParams::apply("pacer-e2e").force(),
        &Patch::Apply(pacer_crds::crd()),
    )
    .await
    .context("applying the CRD")?;
    crate::wait_for(
        Duration::from_secs(30),
        Duration::from_millis(100),
        "the CRD to be established",
        || async {
            let crd = crds.get(pacer_crds::CRD_NAME).await?;
            let established = crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            Ok(established.then_some(()))
        },
    )
    .await
}
