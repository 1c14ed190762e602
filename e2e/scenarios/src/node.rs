//! The node stand-in: the kubelet's part for the pods bound to one fake Node, and
//! nothing more.
//!
//! It registers a Node (Ready, roomy, untainted) so that the real scheduler binds pods to
//! it, watches the pods bound to it (`spec.nodeName`) and the ConfigMaps, and runs one
//! "pod worker" task per pod, as the kubelet does:
//!
//! 1. gives the pod a loopback address of its own (`127.77.0.N`) — its pod IP;
//! 2. makes its volumes: an `emptyDir` is a directory; a `configMap` volume is written
//!    the kubelet's way — the keys in a timestamped directory `..<time>/`, a `..data`
//!    symlink to it, and per key a symlink `key -> ..data/key`; an update writes a new
//!    timestamped directory and renames a new `..data` symlink over the old one;
//! 3. runs the init containers to completion, then the app container, as local
//!    processes: paths in commands are resolved through the container's volume mounts,
//!    then through a fixed "image" map (`/pacer`, `/pacer-operator`, the app's `/app`);
//!    the pacer of the app container gets `-o` overrides that put its listeners on the
//!    pod IP (a pod has its own network namespace; here the pod IP stands for it);
//! 4. reports the pod's status: IP, init and app container states (the app container's
//!    `containerID` is `pacer://<pid>`, so a restart is visible), restart count, and the
//!    Ready condition from the container's readiness probe (an HTTP GET every period);
//! 5. on deletion sends SIGTERM, waits up to the grace period, SIGKILLs what is left,
//!    and deletes the pod object (grace 0), as the kubelet does when its containers end.
//!
//! Each running pod is also a Prometheus target (`podIP:2112`, labels `namespace`, `pod`).
//! In-place resize (`pods/resize`) is accepted by the API server and not acted on:
//! nothing here enforces memory limits.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Node, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use pacer_e2e::Watchdog;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::lock;
use crate::prometheus::Targets;

/// Field manager of the node's writes.
const MANAGER: &str = "pacer-e2e-node";
/// First three octets of the pod IPs.
const POD_NET: [u8; 3] = [127, 77, 0];
/// How often the pod workers look at their pod (readiness, config, process).
const TICK: Duration = Duration::from_millis(500);

/// What the node needs to run pods.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Node name.
    pub name: String,
    /// Container path prefix → host path: the "image" every container sees.
    pub image: BTreeMap<String, PathBuf>,
    /// Where pods' volumes and container logs go.
    pub dir: PathBuf,
    /// Prometheus targets to keep in step with the running pods.
    pub targets: Option<Arc<Targets>>,
}

/// What tests may ask the node.
#[derive(Debug, Default)]
pub struct NodeState {
    /// pid of each pod's app container process, by `namespace/name`.
    pids: Mutex<HashMap<String, u32>>,
}

impl NodeState {
    /// The pid of the app container process of pod `namespace/name`, if it runs.
    #[must_use]
    pub fn pid(&self, namespace: &str, name: &str) -> Option<u32> {
        lock(&self.pids)
            .get(&format!("{namespace}/{name}"))
            .copied()
    }
}

/// A pod worker: the latest Pod it was sent, its stop signal, its task.
type PodWorker = (
    watch::Sender<Arc<Pod>>,
    CancellationToken,
    tokio::task::JoinHandle<()>,
);

struct Ctx {
    client: Client,
    config: NodeConfig,
    configmaps: Store<ConfigMap>,
    ips: Mutex<Vec<bool>>,
    watchdog: Arc<Mutex<Watchdog>>,
    state: Arc<NodeState>,
}

/// Starts the node on a thread of its own (with its own Tokio runtime, so that it
/// outlives any one test's runtime) and returns once the Node is registered.
///
/// # Errors
/// When the thread or the runtime cannot start, or registering the Node fails.
pub fn spawn(
    kubeconfig: kube::Config,
    config: NodeConfig,
    watchdog: Arc<Mutex<Watchdog>>,
) -> Result<Arc<NodeState>> {
    let state = Arc::new(NodeState::default());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let thread_state = state.clone();
    std::thread::Builder::new()
        .name("node-stand-in".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            runtime.block_on(async move {
                if let Err(e) = run(kubeconfig, config, watchdog, thread_state, &ready_tx).await {
                    let _ = ready_tx.send(Err(format!("{e:#}")));
                }
            });
        })?;
    match ready_rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(())) => Ok(state),
        Ok(Err(e)) => bail!("the node stand-in did not start: {e}"),
        Err(e) => bail!("the node stand-in did not start: {e}"),
    }
}

async fn run(
    kubeconfig: kube::Config,
    config: NodeConfig,
    watchdog: Arc<Mutex<Watchdog>>,
    state: Arc<NodeState>,
    ready: &std::sync::mpsc::Sender<Result<(), String>>,
) -> Result<()> {
    let client = Client::try_from(kubeconfig)?;
    register(&client, &config.name).await?;

    let (cm_store, cm_writer) = reflector::store();
    let cm_stream = watcher(
        Api::<ConfigMap>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(cm_writer)
    .applied_objects();
    tokio::spawn(cm_stream.for_each(|_| async {}));
    let (pod_store, pod_writer) = reflector::store();
    let selector = format!("spec.nodeName={}", config.name);
    let pod_stream = watcher(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default().fields(&selector),
    )
    .default_backoff()
    .reflect(pod_writer)
    .applied_objects();
    tokio::spawn(pod_stream.for_each(|_| async {}));
    cm_store.wait_until_ready().await?;
    pod_store.wait_until_ready().await?;

    let ctx = Arc::new(Ctx {
        client,
        config,
        configmaps: cm_store,
        ips: Mutex::new(vec![false; 250]),
        watchdog,
        state,
    });
    let _ = ready.send(Ok(()));

    // Pod workers by uid.
    let mut workers: HashMap<String, PodWorker> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tick.tick().await;
        let pods = pod_store.state();
        let mut seen = Vec::new();
        for pod in pods {
            let Some(uid) = pod.uid() else { continue };
            seen.push(uid.clone());
            match workers.get(&uid) {
                Some((tx, _, _)) => {
                    if tx.borrow().resource_version() != pod.resource_version() {
                        let _ = tx.send(pod.clone());
                    }
                }
                None => {
                    if pod.metadata.deletion_timestamp.is_some()
                        && pod.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Running")
                    {
                        // Deleted before it ever ran here.
                        let _ = delete_pod(&ctx.client, &pod).await;
                        continue;
                    }
                    let (tx, rx) = watch::channel(pod.clone());
                    let stop = CancellationToken::new();
                    let task = tokio::spawn(pod_worker(ctx.clone(), rx, stop.clone()));
                    workers.insert(uid, (tx, stop, task));
                }
            }
        }
        workers.retain(|uid, (_, stop, task)| {
            if !seen.contains(uid) {
                // Gone from the API (deleted by us, or forcibly): stop what runs.
                stop.cancel();
            }
            !task.is_finished()
        });
    }
}

async fn register(client: &Client, name: &str) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
            },
        },
    });
    nodes
        .patch(
            name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&node),
        )
        .await
        .context("registering the Node")?;
    let now = Timestamp::now().to_string();
    let resources =
        json!({"cpu": "64", "memory": "512Gi", "pods": "250", "ephemeral-storage": "100Gi"});
    let status = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": name},
            ],
            "conditions": [{
                "type": "Ready", "status": "True", "reason": "KubeletReady",
                "message": "the pacer-e2e node stand-in is running",
                "lastHeartbeatTime": now, "lastTransitionTime": now,
            }],
            "nodeInfo": {
                "machineID": "pacer-e2e", "systemUUID": "pacer-e2e", "bootID": "pacer-e2e",
                "kernelVersion": "", "osImage": "pacer-e2e node stand-in",
                "containerRuntimeVersion": "pacer://e2e", "kubeletVersion": "v1.37.2",
                "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64",
            },
        },
    });
    nodes
        .patch_status(
            name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&status),
        )
        .await
        .context("reporting the Node's status")?;
    // The API server taints a new Node `not-ready` (admission plugin
    // TaintNodesByCondition); the node lifecycle controller lifts it once the node reports
    // Ready. That controller is not running (this node sends no heartbeats), so the node
    // lifts the taint itself, once, as that controller would.
    nodes
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"taints": null}})),
        )
        .await
        .context("lifting the not-ready taint")?;
    Ok(())
}

fn key(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
}

async fn delete_pod(client: &Client, pod: &Pod) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: pod.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&pod.name_any(), &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

impl Ctx {
    fn allocate_ip(&self) -> Result<Ipv4Addr> {
        let mut ips = lock(&self.ips);
        for (i, used) in ips.iter_mut().enumerate() {
            if *used {
                continue;
            }
            let ip = Ipv4Addr::new(POD_NET[0], POD_NET[1], POD_NET[2], u8::try_from(i + 2)?);
            // Somebody else on this machine may hold a port there (a wildcard listener).
            let free = [8080u16, 2112, 2114, 6001]
                .iter()
                .all(|p| std::net::TcpListener::bind((ip, *p)).is_ok());
            *used = true;
            if free {
                return Ok(ip);
            }
        }
        bail!("no free pod IP left")
    }

    fn release_ip(&self, ip: Ipv4Addr) {
        let index = usize::from(ip.octets()[3]).saturating_sub(2);
        if let Some(used) = lock(&self.ips).get_mut(index) {
            *used = false;
        }
    }

    fn guard(&self, pid: u32) {
        let _ = lock(&self.watchdog).guard(pid);
    }

    fn release(&self, pid: u32) {
        let _ = lock(&self.watchdog).release(pid);
    }
}

/// A pod's volumes on the host.
struct Volumes {
    /// Volume name → host directory.
    dirs: BTreeMap<String, PathBuf>,
    /// ConfigMap volumes: volume name → (ConfigMap name, data last written).
    configmaps: BTreeMap<String, (String, Option<BTreeMap<String, String>>)>,
    generation: u32,
}

impl Volumes {
    fn prepare(pod: &Pod, root: &Path) -> Result<Self> {
        let mut dirs = BTreeMap::new();
        let mut configmaps = BTreeMap::new();
        for volume in pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.as_ref())
            .into_iter()
            .flatten()
        {
            let dir = root.join("volumes").join(&volume.name);
            std::fs::create_dir_all(&dir)?;
            if let Some(cm) = &volume.config_map {
                configmaps.insert(volume.name.clone(), (cm.name.clone(), None));
            }
            dirs.insert(volume.name.clone(), dir);
        }
        Ok(Self {
            dirs,
            configmaps,
            generation: 0,
        })
    }

    /// Writes every ConfigMap volume whose data changed; `Ok(false)` while a ConfigMap
    /// does not exist yet.
    fn sync_configmaps(&mut self, namespace: &str, store: &Store<ConfigMap>) -> Result<bool> {
        let mut all_present = true;
        let names: Vec<String> = self.configmaps.keys().cloned().collect();
        for volume in names {
            let Some((cm_name, written)) = self.configmaps.get(&volume).cloned() else {
                continue;
            };
            let reference = reflector::ObjectRef::<ConfigMap>::new(&cm_name).within(namespace);
            let Some(cm) = store.get(&reference) else {
                all_present = false;
                continue;
            };
            let data = cm.data.clone().unwrap_or_default();
            if written.as_ref() == Some(&data) {
                continue;
            }
            self.generation += 1;
            let dir = self.dirs.get(&volume).context("volume dir")?.clone();
            publish(&dir, self.generation, &data)?;
            self.configmaps.insert(volume, (cm_name, Some(data)));
        }
        Ok(all_present)
    }
}

/// The kubelet's atomic writer: keys in `..<timestamp>/`, the `..data` symlink renamed
/// over atomically, a `key -> ..data/key` symlink per key, the old directory removed.
fn publish(dir: &Path, generation: u32, data: &BTreeMap<String, String>) -> Result<()> {
    let stamp = format!(
        "..{}_{generation}",
        Timestamp::now().strftime("%Y_%m_%d_%H_%M_%S.%f")
    );
    let new_dir = dir.join(&stamp);
    std::fs::create_dir(&new_dir)?;
    for (key, value) in data {
        std::fs::write(new_dir.join(key), value)?;
    }
    let old = std::fs::read_link(dir.join("..data")).ok();
    let temp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&temp);
    symlink(&stamp, &temp)?;
    std::fs::rename(&temp, dir.join("..data"))?;
    for key in data.keys() {
        let link = dir.join(key);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(Path::new("..data").join(key), &link)?;
        }
    }
    if let Some(old) = old
        && old != Path::new(&stamp)
    {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(())
}

/// Resolves a container path: volume mounts first (longest mount path wins), then the
/// image map. Anything else is returned unchanged.
fn resolve(
    path: &str,
    container: &Container,
    volumes: &Volumes,
    image: &BTreeMap<String, PathBuf>,
) -> String {
    if !path.starts_with('/') {
        return path.to_owned();
    }
    let under = |prefix: &str| -> Option<String> {
        let prefix = prefix.trim_end_matches('/');
        if path == prefix {
            Some(String::new())
        } else {
            path.strip_prefix(prefix)
                .filter(|rest| rest.starts_with('/'))
                .map(|rest| rest.trim_start_matches('/').to_owned())
        }
    };
    let mut mounts: Vec<_> = container.volume_mounts.iter().flatten().collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.mount_path.len()));
    for mount in mounts {
        if let (Some(rest), Some(dir)) = (under(&mount.mount_path), volumes.dirs.get(&mount.name)) {
            let host = if rest.is_empty() {
                dir.clone()
            } else {
                dir.join(rest)
            };
            return host.display().to_string();
        }
    }
    let mut entries: Vec<_> = image.iter().collect();
    entries.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    for (prefix, host) in entries {
        if let Some(rest) = under(prefix) {
            let host = if rest.is_empty() {
                host.clone()
            } else {
                host.join(rest)
            };
            return host.display().to_string();
        }
    }
    path.to_owned()
}

/// A container started as a local process.
struct Running {
    child: tokio::process::Child,
    pid: u32,
    started: Timestamp,
}

fn command_line(container: &Container) -> Vec<String> {
    container
        .command
        .iter()
        .flatten()
        .chain(container.args.iter().flatten())
        .cloned()
        .collect()
}

fn spawn_container(
    ctx: &Ctx,
    pod: &Pod,
    container: &Container,
    volumes: &Volumes,
    extra_args: &[String],
    log: &Path,
) -> Result<Running> {
    let image = &ctx.config.image;
    let argv: Vec<String> = command_line(container)
        .iter()
        .map(|a| resolve(a, container, volumes, image))
        .chain(extra_args.iter().cloned())
        .collect();
    let (program, args) = argv.split_first().context("container without a command")?;
    let workdir = container.working_dir.as_deref().map_or_else(
        || ctx.config.dir.clone(),
        |w| PathBuf::from(resolve(w, container, volumes, image)),
    );
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let err = out.try_clone()?;
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .current_dir(&workdir)
        .env_clear()
        .env(
            "PATH",
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
        )
        .env("HOSTNAME", pod.name_any())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .kill_on_drop(true);
    if let Some(tmp) = volumes_dir_for(container, volumes, "/tmp") {
        command.env("TMPDIR", tmp);
    }
    for env in container.env.iter().flatten() {
        if let Some(value) = &env.value {
            command.env(&env.name, value);
        }
    }
    let child = command
        .spawn()
        .with_context(|| format!("starting container {} ({program})", container.name))?;
    let pid = child.id().context("no pid")?;
    ctx.guard(pid);
    Ok(Running {
        child,
        pid,
        started: Timestamp::now(),
    })
}

fn volumes_dir_for(container: &Container, volumes: &Volumes, mount_path: &str) -> Option<PathBuf> {
    container
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == mount_path)
        .and_then(|m| volumes.dirs.get(&m.name).cloned())
}

/// `-o` overrides that move pacer's listeners from the addresses in its config
/// (`0.0.0.0:port`, `127.0.0.1:port`) onto the pod IP.
fn address_overrides(config_dir: &Path, ip: Ipv4Addr) -> Vec<String> {
    let text = std::fs::read_to_string(config_dir.join("rr.yaml")).unwrap_or_default();
    let yaml: Value = serde_yaml::from_str(&text).unwrap_or(Value::Null);
    let port_of =
        |v: &Value| -> Option<String> { v.as_str()?.rsplit(':').next().map(str::to_owned) };
    let mut out = Vec::new();
    for (key, pointer, scheme) in [
        ("http.address", "/http/address", ""),
        ("status.address", "/status/address", ""),
        ("metrics.address", "/metrics/address", ""),
        ("rpc.listen", "/rpc/listen", "tcp://"),
    ] {
        if let Some(port) = yaml.pointer(pointer).and_then(port_of) {
            out.push("-o".to_owned());
            out.push(format!("{key}={scheme}{ip}:{port}"));
        }
    }
    out
}

fn container_status(
    container: &Container,
    running: Option<&Running>,
    ready: bool,
    restarts: i32,
    last: Option<&Value>,
) -> Value {
    let state = match running {
        Some(r) => json!({"running": {"startedAt": r.started.to_string()}}),
        None => json!({"waiting": {"reason": "ContainerCreating"}}),
    };
    let mut status = json!({
        "name": container.name,
        "image": container.image.clone().unwrap_or_default(),
        "imageID": "",
        "ready": ready,
        "started": running.is_some(),
        "restartCount": restarts,
        "state": state,
    });
    if let Some(r) = running {
        status["containerID"] = json!(format!("pacer://{}", r.pid));
    }
    if let Some(last) = last {
        status["lastState"] = last.clone();
    }
    status
}

async fn probe(ip: Ipv4Addr, container: &Container) -> bool {
    let Some(get) = container
        .readiness_probe
        .as_ref()
        .and_then(|p| p.http_get.as_ref())
    else {
        return true;
    };
    let port = match &get.port {
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(p) => {
            u16::try_from(*p).unwrap_or(0)
        }
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .unwrap_or(0),
    };
    let path = get.path.clone().unwrap_or_else(|| "/".into());
    let attempt = async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut sock = tokio::net::TcpStream::connect(SocketAddr::from((ip, port)))
            .await
            .ok()?;
        sock.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {ip}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .ok()?;
        let mut head = [0u8; 16];
        let n = sock.read(&mut head).await.ok()?;
        let line = String::from_utf8_lossy(&head[..n]).to_string();
        Some(line.starts_with("HTTP/1.1 2"))
    };
    tokio::time::timeout(Duration::from_secs(1), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

async fn patch_status(api: &Api<Pod>, name: &str, status: Value) {
    let body = json!({"status": status});
    if let Err(error) = api
        .patch_status(name, &PatchParams::default(), &Patch::Strategic(&body))
        .await
    {
        eprintln!("node: reporting the status of pod {name} failed: {error}");
    }
}

fn conditions(initialized: bool, ready: bool) -> Value {
    let now = Timestamp::now().to_string();
    let c = |t: &str, v: bool| json!({"type": t, "status": if v { "True" } else { "False" }, "lastTransitionTime": now});
    json!([
        c("PodScheduled", true),
        c("Initialized", initialized),
        c("ContainersReady", ready),
        c("Ready", ready),
    ])
}

/// One pod, from volumes to deletion.
async fn pod_worker(ctx: Arc<Ctx>, mut rx: watch::Receiver<Arc<Pod>>, stop: CancellationToken) {
    let pod = rx.borrow().clone();
    let key = key(&pod);
    if let Err(error) = run_pod(&ctx, &mut rx, &stop).await {
        eprintln!("node: pod {key}: {error:#}");
    }
    lock(&ctx.state.pids).remove(&key);
    if let Some(targets) = &ctx.config.targets {
        let _ = targets.remove(&key);
    }
}

async fn run_pod(
    ctx: &Ctx,
    rx: &mut watch::Receiver<Arc<Pod>>,
    stop: &CancellationToken,
) -> Result<()> {
    let pod = rx.borrow_and_update().clone();
    let namespace = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let key = key(&pod);
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let spec = pod.spec.clone().context("pod without spec")?;
    let root = ctx.config.dir.join("pods").join(&namespace).join(&name);
    std::fs::create_dir_all(&root)?;
    let mut volumes = Volumes::prepare(&pod, &root)?;

    // ConfigMaps must exist before the containers start (ContainerCreating until then).
    loop {
        if volumes.sync_configmaps(&namespace, &ctx.configmaps)? {
            break;
        }
        if stop.is_cancelled() || rx.borrow().metadata.deletion_timestamp.is_some() {
            delete_pod(&ctx.client, &pod).await?;
            return Ok(());
        }
        tokio::time::sleep(TICK).await;
    }

    let ip = ctx.allocate_ip()?;
    let result = run_containers(
        ctx,
        rx,
        stop,
        &api,
        &pod,
        &spec,
        &mut volumes,
        ip,
        &root,
        &key,
    )
    .await;
    ctx.release_ip(ip);
    result
}

#[allow(clippy::too_many_arguments)]
async fn run_containers(
    ctx: &Ctx,
    rx: &mut watch::Receiver<Arc<Pod>>,
    stop: &CancellationToken,
    api: &Api<Pod>,
    pod: &Pod,
    spec: &k8s_openapi::api::core::v1::PodSpec,
    volumes: &mut Volumes,
    ip: Ipv4Addr,
    root: &Path,
    key: &str,
) -> Result<()> {
    let name = pod.name_any();
    let namespace = pod.namespace().unwrap_or_default();
    let init_containers = spec.init_containers.clone().unwrap_or_default();
    let app = spec
        .containers
        .first()
        .context("pod without containers")?
        .clone();
    patch_status(
        api,
        &name,
        json!({
            "phase": "Pending",
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": ip.to_string(),
            "podIPs": [{"ip": ip.to_string()}],
            "startTime": Timestamp::now().to_string(),
            "conditions": conditions(false, false),
            "containerStatuses": [container_status(&app, None, false, 0, None)],
        }),
    )
    .await;

    // Init containers, in order, each to completion.
    let mut init_statuses = Vec::new();
    for init in &init_containers {
        let log = root.join(format!("{}.log", init.name));
        let mut running = spawn_container(ctx, pod, init, volumes, &[], &log)?;
        let status = tokio::time::timeout(Duration::from_secs(120), running.child.wait())
            .await
            .context("init container did not finish within 120 s")??;
        ctx.release(running.pid);
        let finished = Timestamp::now().to_string();
        let code = status.code().unwrap_or(-1);
        init_statuses.push(json!({
            "name": init.name, "image": init.image.clone().unwrap_or_default(), "imageID": "",
            "ready": code == 0, "restartCount": 0, "started": false,
            "state": {"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" },
                      "startedAt": running.started.to_string(), "finishedAt": finished}},
        }));
        if code != 0 {
            patch_status(api, &name, json!({"initContainerStatuses": init_statuses})).await;
            bail!(
                "init container {} exited with {code}; see {}",
                init.name,
                log.display()
            );
        }
    }

    let config_dir =
        volumes_dir_for(&app, volumes, "/etc/pacer").unwrap_or_else(|| root.to_path_buf());
    let log = root.join(format!("{}.log", app.name));
    let overrides = address_overrides(&config_dir, ip);
    let mut running = spawn_container(ctx, pod, &app, volumes, &overrides, &log)?;
    let mut restarts = 0;
    let mut last_state: Option<Value> = None;
    lock(&ctx.state.pids).insert(key.to_owned(), running.pid);
    let metrics_port = app
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("metrics"))
        .map_or(2112, |p| p.container_port);
    if let Some(targets) = &ctx.config.targets {
        targets.set(
            key,
            &format!("{ip}:{metrics_port}"),
            BTreeMap::from([
                ("namespace".to_owned(), namespace.clone()),
                ("pod".to_owned(), name.clone()),
            ]),
        )?;
    }
    let report = |running: &Running, ready: bool, restarts: i32, last: Option<&Value>| {
        json!({
            "phase": "Running",
            "conditions": conditions(true, ready),
            "initContainerStatuses": init_statuses,
            "containerStatuses": [container_status(&app, Some(running), ready, restarts, last)],
        })
    };
    patch_status(api, &name, report(&running, false, restarts, None)).await;
    let mut ready = false;

    loop {
        tokio::select! {
            _ = stop.cancelled() => {
                terminate(ctx, &mut running, Duration::from_secs(2)).await;
                return Ok(());
            }
            _ = rx.changed() => {}
            _ = tokio::time::sleep(TICK) => {}
        }
        let current = rx.borrow_and_update().clone();
        if current.metadata.deletion_timestamp.is_some() {
            let grace = current
                .metadata
                .deletion_grace_period_seconds
                .or(spec.termination_grace_period_seconds)
                .unwrap_or(30);
            let grace = Duration::from_secs(u64::try_from(grace).unwrap_or(30));
            if let Some(targets) = &ctx.config.targets {
                let _ = targets.remove(key);
            }
            terminate(ctx, &mut running, grace).await;
            delete_pod(&ctx.client, &current).await?;
            return Ok(());
        }
        volumes.sync_configmaps(&namespace, &ctx.configmaps)?;
        if let Some(status) = running.child.try_wait()? {
            ctx.release(running.pid);
            restarts += 1;
            last_state = Some(json!({"terminated": {
                "exitCode": status.code().unwrap_or(-1),
                "reason": "Error",
                "startedAt": running.started.to_string(),
                "finishedAt": Timestamp::now().to_string(),
            }}));
            eprintln!(
                "node: pod {key}: container {} exited ({status}); restarting",
                app.name
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
            let overrides = address_overrides(&config_dir, ip);
            running = spawn_container(ctx, pod, &app, volumes, &overrides, &log)?;
            lock(&ctx.state.pids).insert(key.to_owned(), running.pid);
            ready = false;
            patch_status(
                api,
                &name,
                report(&running, ready, restarts, last_state.as_ref()),
            )
            .await;
            continue;
        }
        let now_ready = probe(ip, &app).await;
        if now_ready != ready {
            ready = now_ready;
            patch_status(
                api,
                &name,
                report(&running, ready, restarts, last_state.as_ref()),
            )
            .await;
        }
    }
}

/// SIGTERM to the container's main process, then SIGKILL to its group after `grace`.
async fn terminate(ctx: &Ctx, running: &mut Running, grace: Duration) {
    if let Ok(pid) = i32::try_from(running.pid) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        if tokio::time::timeout(grace, running.child.wait())
            .await
            .is_err()
        {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = running.child.wait().await;
        }
    }
    ctx.release(running.pid);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_swaps_data_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let mut data = BTreeMap::from([("rr.yaml".to_owned(), "a: 1\n".to_owned())]);
        publish(dir.path(), 1, &data).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("rr.yaml")).unwrap(),
            "a: 1\n"
        );
        data.insert("rr.yaml".into(), "a: 2\n".into());
        publish(dir.path(), 2, &data).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("rr.yaml")).unwrap(),
            "a: 2\n"
        );
        let stamps = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                let n = e.file_name().to_string_lossy().to_string();
                n.starts_with("..") && n != "..data"
            })
            .count();
        assert_eq!(stamps, 1, "the old timestamped directory is removed");
        assert!(
            std::fs::symlink_metadata(dir.path().join("rr.yaml"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn overrides_put_listeners_on_the_pod_ip() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("rr.yaml"),
            "http:\n  address: 0.0.0.0:8080\nstatus:\n  address: 0.0.0.0:2114\nmetrics:\n  address: 0.0.0.0:2112\nrpc:\n  listen: tcp://127.0.0.1:6001\n",
        )
        .unwrap();
        let o = address_overrides(dir.path(), Ipv4Addr::new(127, 77, 0, 9));
        assert_eq!(
            o,
            [
                "-o",
                "http.address=127.77.0.9:8080",
                "-o",
                "status.address=127.77.0.9:2114",
                "-o",
                "metrics.address=127.77.0.9:2112",
                "-o",
                "rpc.listen=tcp://127.77.0.9:6001",
            ]
        );
    }
}
