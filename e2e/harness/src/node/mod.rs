//! A real single-node Kubernetes cluster on this machine: etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler, Debian's containerd + runc + CNI plugins, and
//! the kubelet, all in a network and a mount namespace of their own.
//!
//! # Theory of operation
//! [`Node::start`] first takes the machine-wide lock [`LOCK`]: real-node runs of several
//! engineers on one machine take turns (the lock is held by the watchdog, which tears the
//! node down before it lets go). Under the lock, names are fixed ([`ROOT`], [`CGROUP`]),
//! so whatever a crashed run left is found and removed first (`e2e/node/teardown.sh`).
//!
//! `e2e/node/setup.sh` makes the namespaces (kept by files under [`ROOT`]) and the
//! cgroups; every process of the node starts through `e2e/node/run-in.sh`, which puts it
//! into [`CGROUP`]`/system` and into the namespaces. The node has one address, [`NODE_IP`],
//! and the `kubernetes` Service's [`SERVICE_IP`] is an address of the node too, where the
//! API server listens on 443: pods reach the API server without kube-proxy. No route leads
//! out of the namespace, nor into it: the test process reaches it with sockets made inside
//! it ([`NetNs`]) and a loopback relay to the API server for kubectl, helm and kube clients.
//!
//! The images (pause, the Pacer image from the Dockerfile, the example app) are built with
//! buildah by `e2e/node/images.sh` and imported into containerd ([`Node::import_images`]
//! adds more later, e.g. the Laravel example's). The kubelet labels the node with a zone
//! ([`ZONE`]), as a cloud's nodes are. When the test process
//! ends, however it ends, the watchdog kills every process in the node's cgroups and
//! removes the namespaces (and with the mount namespace every mount made in it), the
//! cgroups and the state.

mod config;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Node as NodeObject;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use tokio::sync::OnceCell;
use tokio::time::Instant;

pub use config::Layout;

use crate::netns::NetNs;
use crate::pki;
use crate::process::{Server, Watchdog};

/// The node's state directory (fixed: runs take turns under [`LOCK`]).
pub const ROOT: &str = "/var/lib/pacer-e2e-node";
/// The node's cgroup in every v1 hierarchy (the kubelet's `cgroupRoot`).
pub const CGROUP: &str = "pacer-e2e-node";
/// The machine-wide lock real-node runs take turns on.
pub const LOCK: &str = "/var/lock/pacer-e2e-node.lock";
/// The Node's name.
pub const NODE_NAME: &str = "pacer-e2e-node";
/// The node's zone (`topology.kubernetes.io/zone`, which a cloud's nodes carry): one zone,
/// so a spread over zones has one domain.
pub const ZONE: &str = "pacer-e2e-a";
/// The node's address, inside its network namespace.
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 89, 0, 1);
/// The `kubernetes` Service's ClusterIP: the first address of the service range, held by
/// the node itself.
pub const SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// The pods' subnet.
pub const POD_SUBNET: &str = "10.88.0.0/24";
/// The sandbox image.
pub const PAUSE_IMAGE: &str = "localhost/pause:pacer-e2e";
/// Free disk the node needs beyond the kubelet's eviction threshold: its images, the
/// containers' layers and logs, with room to spare for builds running beside it.
const DISK_NEEDED: u64 = 4 << 30;

/// Refuses to start a node on a filesystem about to fill: the kubelet evicts every pod
/// under DiskPressure below 1 % free (`evictionHard` in `config.rs`), and a scenario
/// would then fail far from the cause (a pod gone, a cgroup not found).
fn enough_disk(path: &Path) -> Result<()> {
    let st =
        nix::sys::statvfs::statvfs(path).with_context(|| format!("statvfs {}", path.display()))?;
    let block = st.fragment_size();
    let (free, size) = (st.blocks_available() * block, st.blocks() * block);
    let needed = disk_needed(size);
    if free < needed {
        bail!(
            "the real node needs {:.1} GiB free on {} and it has {:.1} GiB: the kubelet would evict its pods under DiskPressure; free some disk (e.g. old cargo target directories)",
            gib(needed),
            path.display(),
            gib(free)
        );
    }
    Ok(())
}

/// Free bytes a filesystem of `size` bytes must have for the node: the kubelet's 1 % and
/// [`DISK_NEEDED`].
fn disk_needed(size: u64) -> u64 {
    DISK_NEEDED + size / 100
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 30)
}

/// How long a run waits for another one to finish with the node.
const LOCK_WAIT: Duration = Duration::from_secs(45 * 60);

const SCRIPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../node");

/// What the node needs from the caller.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// Where the logs of the node's processes go (kept after the run).
    pub logs: PathBuf,
    /// A directory holding the static release binaries `pacer` and `pacer-operator`, for
    /// the Pacer image.
    pub release_dir: PathBuf,
    /// The Pacer image's tag.
    pub version: String,
}

/// The images imported into the node's containerd.
#[derive(Debug, Clone)]
pub struct Images {
    /// The Pacer image (`localhost/pacer:<version>`).
    pub pacer: String,
    /// The example app's image (`localhost/pacer-hello:1`); `:2` is the same image.
    pub app: String,
}

/// A running node (and its control plane).
#[derive(Debug)]
pub struct Node {
    ns: NetNs,
    watchdog: Arc<Mutex<Watchdog>>,
    servers: Mutex<Vec<Server>>,
    bin: PathBuf,
    logs: PathBuf,
    kubeconfig: PathBuf,
    config: kube::Config,
    images: Images,
    containerd_socket: PathBuf,
    timings: Vec<(&'static str, Duration)>,
}

/// The steps of a start and how long each took.
pub type Timings = Vec<(&'static str, Duration)>;

impl Node {
    /// The node of this test process, started on first use (a failed start is remembered).
    ///
    /// # Errors
    /// When it cannot start; the message names the step and shows the log's tail.
    pub async fn shared(options: NodeOptions) -> Result<&'static Self> {
        static SHARED: OnceCell<Result<Node, String>> = OnceCell::const_new();
        SHARED
            .get_or_init(|| async move { Self::start(options).await.map_err(|e| format!("{e:#}")) })
            .await
            .as_ref()
            .map_err(|e| anyhow::anyhow!("the real node did not start: {e}"))
    }

    /// Starts everything (see the module's doc). Takes minutes on a cold image cache.
    ///
    /// # Errors
    /// When a step fails.
    pub async fn start(options: NodeOptions) -> Result<Self> {
        let mut timings = Timings::new();
        let mut step = Instant::now();
        let mut lap = |name: &'static str, timings: &mut Timings| {
            timings.push((name, step.elapsed()));
            step = Instant::now();
        };
        let bin = tokio::task::spawn_blocking(crate::binaries::node_bin_dir).await??;
        lap("binaries", &mut timings);
        std::fs::create_dir_all(&options.logs)?;
        let root = PathBuf::from(ROOT);
        let teardown = vec![
            format!("{SCRIPTS}/teardown.sh"),
            ROOT.to_owned(),
            CGROUP.to_owned(),
        ];
        let watchdog = tokio::task::spawn_blocking(move || {
            Watchdog::spawn_locked(Path::new(LOCK), &teardown, LOCK_WAIT)
        })
        .await??;
        lap("lock", &mut timings);
        enough_disk(root.parent().unwrap_or(&root))?;
        script(
            "setup.sh",
            &[ROOT, CGROUP, &NODE_IP.to_string(), &SERVICE_IP.to_string()],
        )
        .await?;
        let ns = NetNs::open(&root.join("ns/net"))?;
        lap("namespaces", &mut timings);

        let pki_dir = root.join("pki");
        std::fs::create_dir_all(&pki_dir)?;
        let files = pki::write_with(&pki_dir, &[NODE_IP.to_string()])?;
        let (kubelet_cert, kubelet_key) = files.issue_client(
            &pki_dir,
            "kubelet",
            &format!("system:node:{NODE_NAME}"),
            &["system:nodes"],
        )?;
        let (apiserver_kubelet_cert, apiserver_kubelet_key) = files.issue_client(
            &pki_dir,
            "apiserver-kubelet-client",
            "kube-apiserver-kubelet-client",
            &["system:masters"],
        )?;
        let inside = format!("https://{NODE_IP}:443");
        let admin_inside = pki_dir.join("admin-inside.kubeconfig");
        crate::write_kubeconfig_for(
            &admin_inside,
            &inside,
            &files.ca_cert,
            &files.admin_cert,
            &files.admin_key,
        )?;
        let kubelet_kubeconfig = pki_dir.join("kubelet.kubeconfig");
        crate::write_kubeconfig_for(
            &kubelet_kubeconfig,
            &inside,
            &files.ca_cert,
            &kubelet_cert,
            &kubelet_key,
        )?;
        let relay = ns.relay(SocketAddr::from((NODE_IP, 443)))?;
        let kubeconfig = options.logs.join("kubeconfig");
        crate::write_kubeconfig_for(
            &kubeconfig,
            &format!("https://{relay}"),
            &files.ca_cert,
            &files.admin_cert,
            &files.admin_key,
        )?;
        let loaded = Kubeconfig::read_from(&kubeconfig)?;
        let config =
            kube::Config::from_custom_kubeconfig(loaded, &KubeConfigOptions::default()).await?;

        let mut node = Self {
            ns,
            watchdog: Arc::new(Mutex::new(watchdog)),
            servers: Mutex::new(Vec::new()),
            bin: bin.clone(),
            logs: options.logs.clone(),
            kubeconfig,
            config,
            images: Images {
                pacer: format!("localhost/pacer:{}", options.version),
                app: "localhost/pacer-hello:1".to_owned(),
            },
            containerd_socket: PathBuf::new(),
            timings: Vec::new(),
        };
        let path = |p: &Path| p.display().to_string();

        // The control plane.
        node.spawn(
            "etcd",
            &bin.join("etcd"),
            &[
                "--name=pacer-e2e-node".to_owned(),
                format!("--data-dir={}", root.join("etcd").display()),
                "--listen-client-urls=http://127.0.0.1:2379".to_owned(),
                "--advertise-client-urls=http://127.0.0.1:2379".to_owned(),
                "--listen-peer-urls=http://127.0.0.1:2380".to_owned(),
                "--initial-advertise-peer-urls=http://127.0.0.1:2380".to_owned(),
                "--initial-cluster=pacer-e2e-node=http://127.0.0.1:2380".to_owned(),
                "--unsafe-no-fsync".to_owned(),
            ],
        )?;
        node.spawn(
            "kube-apiserver",
            &bin.join("kube-apiserver"),
            &[
                "--etcd-servers=http://127.0.0.1:2379".to_owned(),
                "--bind-address=0.0.0.0".to_owned(),
                format!("--advertise-address={NODE_IP}"),
                "--secure-port=443".to_owned(),
                format!("--tls-cert-file={}", path(&files.serving_cert)),
                format!("--tls-private-key-file={}", path(&files.serving_key)),
                format!("--client-ca-file={}", path(&files.ca_cert)),
                format!("--service-cluster-ip-range={}", crate::SERVICE_CIDR),
                // The Node authorizer lets each kubelet read only what its pods need.
                "--authorization-mode=Node,RBAC".to_owned(),
                "--enable-admission-plugins=NodeRestriction".to_owned(),
                "--service-account-issuer=https://kubernetes.default.svc".to_owned(),
                format!("--service-account-key-file={}", path(&files.sa_public_key)),
                format!(
                    "--service-account-signing-key-file={}",
                    path(&files.sa_private_key)
                ),
                format!(
                    "--kubelet-client-certificate={}",
                    path(&apiserver_kubelet_cert)
                ),
                format!("--kubelet-client-key={}", path(&apiserver_kubelet_key)),
                // Else `kubectl logs` tries the node's name in DNS and times out.
                "--kubelet-preferred-address-types=InternalIP".to_owned(),
                "--allow-privileged=true".to_owned(),
                "--profiling=false".to_owned(),
            ],
        )?;
        node.wait_api().await?;
        lap("control plane", &mut timings);
        let kubeconfig_arg = format!("--kubeconfig={}", path(&admin_inside));
        node.spawn(
            "kube-controller-manager",
            &bin.join("kube-controller-manager"),
            &[
                kubeconfig_arg.clone(),
                "--leader-elect=false".to_owned(),
                "--secure-port=0".to_owned(),
                "--kube-api-qps=100".to_owned(),
                "--kube-api-burst=200".to_owned(),
                format!(
                    "--service-account-private-key-file={}",
                    path(&files.sa_private_key)
                ),
                format!("--root-ca-file={}", path(&files.ca_cert)),
                format!("--cluster-signing-cert-file={}", path(&files.ca_cert)),
                format!("--cluster-signing-key-file={}", path(&files.ca_key)),
                "--concurrent-deployment-syncs=10".to_owned(),
                "--concurrent-replicaset-syncs=10".to_owned(),
            ],
        )?;
        node.spawn(
            "kube-scheduler",
            &bin.join("kube-scheduler"),
            &[
                kubeconfig_arg,
                "--leader-elect=false".to_owned(),
                "--secure-port=0".to_owned(),
            ],
        )?;

        // containerd, the images, the kubelet.
        let layout = Layout {
            root: &root,
            cgroup: CGROUP,
            node_ip: NODE_IP,
            pod_subnet: POD_SUBNET,
            pause_image: PAUSE_IMAGE,
            ca_cert: &files.ca_cert,
        };
        let containerd_dir = root.join("containerd");
        std::fs::create_dir_all(root.join("cni/net.d"))?;
        std::fs::create_dir_all(&containerd_dir)?;
        std::fs::create_dir_all(root.join("kubelet"))?;
        std::fs::write(containerd_dir.join("config.toml"), layout.containerd_toml())?;
        std::fs::write(
            root.join("cni/net.d/10-pacer-e2e.conflist"),
            layout.cni_conflist(),
        )?;
        let kubelet_config = root.join("kubelet/config.yaml");
        std::fs::write(&kubelet_config, layout.kubelet_yaml())?;
        let socket = layout.containerd_socket();
        node.containerd_socket = socket.clone();
        node.spawn(
            "containerd",
            Path::new("containerd"),
            &[format!(
                "--config={}",
                containerd_dir.join("config.toml").display()
            )],
        )?;
        let images_dir = root.join("images");
        let built = script(
            "images.sh",
            &[
                &path(&images_dir),
                &path(&options.release_dir),
                &path(&bin.join("pause")),
                &options.version,
            ],
        )
        .await?;
        lap("images built", &mut timings);
        node.wait_containerd(&socket).await?;
        for line in built.lines() {
            let Some(file) = line.split_whitespace().next() else {
                continue;
            };
            ctr(&socket, &["images", "import", file]).await?;
        }
        ctr(
            &socket,
            &[
                "images",
                "tag",
                "localhost/pacer-hello:1",
                "localhost/pacer-hello:2",
            ],
        )
        .await?;
        lap("images imported", &mut timings);
        node.spawn(
            "kubelet",
            &bin.join("kubelet"),
            &[
                format!("--config={}", path(&kubelet_config)),
                format!("--kubeconfig={}", path(&kubelet_kubeconfig)),
                format!("--root-dir={}", root.join("kubelet/root").display()),
                format!("--cert-dir={}", root.join("kubelet/pki").display()),
                format!("--node-ip={NODE_IP}"),
                format!("--hostname-override={NODE_NAME}"),
                format!("--node-labels=topology.kubernetes.io/zone={ZONE}"),
                "--v=1".to_owned(),
            ],
        )?;
        node.wait_node_ready().await?;
        lap("node ready", &mut timings);
        node.timings = timings;
        Ok(node)
    }

    /// Spawns `program args…` inside the node (its cgroup and namespaces), with its output
    /// in `<logs>/<name>.log`, under the watchdog.
    ///
    /// # Errors
    /// When it cannot be spawned.
    pub fn spawn(&self, name: &'static str, program: &Path, args: &[String]) -> Result<()> {
        let mut command = Command::new(format!("{SCRIPTS}/run-in.sh"));
        command.arg(ROOT).arg(CGROUP).arg(program).args(args);
        let log = self.logs.join(format!("{name}.log"));
        let server = {
            let mut watchdog = self.watchdog.lock().unwrap_or_else(|e| e.into_inner());
            Server::spawn_command(name, command, log, &mut watchdog)?
        };
        self.servers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(server);
        Ok(())
    }

    /// Fails with the log's tail if a process of the node has exited.
    ///
    /// # Errors
    /// When one has.
    pub fn check(&self) -> Result<()> {
        let mut servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        for server in servers.iter_mut() {
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

    async fn wait_api(&self) -> Result<()> {
        let client = self.client()?;
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            self.check()?;
            let request = http::Request::get("/readyz").body(Vec::new())?;
            let answer = tokio::time::timeout(Duration::from_secs(5), client.request_text(request));
            let failure = match answer.await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => e.to_string(),
                Err(_) => "no answer within 5 s".to_owned(),
            };
            if Instant::now() >= deadline {
                bail!("kube-apiserver was not ready after 90 s: {failure}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn wait_containerd(&self, socket: &Path) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            self.check()?;
            if socket.exists() && ctr(socket, &["version"]).await.is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "containerd did not answer on {} within 60 s",
                    socket.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn wait_node_ready(&self) -> Result<()> {
        let nodes: Api<NodeObject> = Api::all(self.client()?);
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            self.check()?;
            let state = match nodes.get_opt(NODE_NAME).await? {
                None => "not registered".to_owned(),
                Some(n) => {
                    let ready = n
                        .status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                        .map(|c| (c.status.clone(), c.message.clone().unwrap_or_default()));
                    let taints: Vec<String> = n
                        .spec
                        .as_ref()
                        .and_then(|s| s.taints.as_ref())
                        .into_iter()
                        .flatten()
                        .map(|t| t.key.clone())
                        .collect();
                    match ready {
                        Some((status, _)) if status == "True" && taints.is_empty() => {
                            return Ok(());
                        }
                        other => format!("Ready: {other:?}, taints: {taints:?}"),
                    }
                }
            };
            if Instant::now() >= deadline {
                bail!(
                    "the node was not Ready and untainted within 180 s ({state}); see {}",
                    self.logs.join("kubelet.log").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// A new admin client (through the relay).
    ///
    /// # Errors
    /// When the client cannot be built.
    pub fn client(&self) -> Result<Client> {
        Client::try_from(self.config.clone()).context("building a kube client")
    }

    /// The admin kubeconfig for tools on the host (`kubectl`, `helm`): through the relay.
    #[must_use]
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The node's network namespace: connections to pod IPs go through it.
    #[must_use]
    pub fn netns(&self) -> &NetNs {
        &self.ns
    }

    /// `kubectl` with the admin kubeconfig.
    #[must_use]
    pub fn kubectl(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(self.bin.join("kubectl"));
        command.env("KUBECONFIG", &self.kubeconfig);
        command
    }

    /// `helm` with the admin kubeconfig (its caches in the logs directory).
    #[must_use]
    pub fn helm(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(self.bin.join("helm"));
        let home = self.logs.join("helm");
        command
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"));
        command
    }

    /// The images in the node's containerd.
    #[must_use]
    pub fn images(&self) -> &Images {
        &self.images
    }

    /// Builds more images with `e2e/node/<script> DIR` (which prints one `FILE IMAGE…` line
    /// per docker archive, as `images.sh` does) and imports them into the node's
    /// containerd. Returns the images' names.
    ///
    /// # Errors
    /// When the script or an import fails.
    pub async fn import_images(&self, script_name: &str) -> Result<Vec<String>> {
        let dir = PathBuf::from(ROOT)
            .join("images")
            .join(script_name.trim_end_matches(".sh"));
        let built = script(script_name, &[&dir.display().to_string()]).await?;
        let mut images = Vec::new();
        for line in built.lines() {
            let mut words = line.split_whitespace();
            let Some(file) = words.next() else {
                continue;
            };
            ctr(&self.containerd_socket, &["images", "import", file]).await?;
            images.extend(words.map(str::to_owned));
        }
        Ok(images)
    }

    /// How long each step of the start took.
    #[must_use]
    pub fn timings(&self) -> &[(&'static str, Duration)] {
        &self.timings
    }

    /// Where the node's logs are.
    #[must_use]
    pub fn logs(&self) -> &Path {
        &self.logs
    }

    /// The watchdog of the node's processes (to put more of them under it).
    #[must_use]
    pub fn watchdog(&self) -> Arc<Mutex<Watchdog>> {
        self.watchdog.clone()
    }

    /// The cgroup directory of container `container_id` (without the `containerd://`
    /// prefix) in hierarchy `controller`, e.g. `memory`: the kubelet puts it at
    /// `<cgroupRoot>/kubepods[/<qos>]/pod<uid>/<id>`.
    ///
    /// # Errors
    /// When it is not found.
    pub fn container_cgroup(&self, controller: &str, container_id: &str) -> Result<PathBuf> {
        let id = container_id
            .rsplit("://")
            .next()
            .unwrap_or(container_id)
            .to_owned();
        let base = Path::new("/sys/fs/cgroup")
            .join(controller)
            .join(CGROUP)
            .join("kubepods");
        let mut stack = vec![base.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir)
                .with_context(|| format!("reading {}", dir.display()))?
                .flatten()
            {
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                if entry.file_name().to_string_lossy() == id {
                    return Ok(entry.path());
                }
                stack.push(entry.path());
            }
        }
        bail!("no cgroup of container {id} under {}", base.display())
    }
}

/// Runs `e2e/node/<name> args…` and returns its stdout; fails with its stderr.
async fn script(name: &str, args: &[&str]) -> Result<String> {
    let program = format!("{SCRIPTS}/{name}");
    let out = tokio::process::Command::new(&program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed ({}):\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ctr -n k8s.io …` against the node's containerd.
async fn ctr(socket: &Path, args: &[&str]) -> Result<String> {
    let out = tokio::process::Command::new("ctr")
        .arg("--address")
        .arg(socket)
        .args(["--namespace", "k8s.io"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .context("running ctr")?;
    if !out.status.success() {
        bail!(
            "ctr {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disk_at_the_kubelets_eviction_edge_is_refused() {
        const GIB: u64 = 1 << 30;
        // This machine's disk when a run's pods were evicted under DiskPressure: 252 GiB
        // with 3.4 GiB free; and after old build directories were removed: 41 GiB free.
        let size = 252 * GIB;
        assert!(34 * GIB / 10 < disk_needed(size));
        assert!(41 * GIB >= disk_needed(size));
        // The kubelet's own threshold alone would not leave room for the images.
        assert!(disk_needed(size) > size / 100 + 3 * GIB);
    }

    #[test]
    fn this_machines_disk_is_read() {
        let st = nix::sys::statvfs::statvfs("/");
        assert!(st.is_ok_and(|s| s.blocks() > 0), "statvfs /");
    }
}
