//! The real `pacer` binary, for what only a separate process shows: its own CPU time,
//! its open file descriptors, its log output as configured, signals and exit codes.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

use super::eventually;
use super::serve::{eventually_async, fetch, get, h1};

pub const PACER: &str = env!("CARGO_BIN_EXE_pacer");

/// A port nobody listens on right now.
pub use pacer_ports::free_port;

/// Addresses picked for one pacer.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub http: SocketAddr,
    pub status: SocketAddr,
    pub metrics: SocketAddr,
}

impl Ports {
    pub fn pick() -> Ports {
        let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
        Ports {
            http: local(free_port()),
            status: local(free_port()),
            metrics: local(free_port()),
        }
    }
}

/// A running `pacer serve`. Killed when dropped.
pub struct PacerBin {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub ports: Ports,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<tokio::task::JoinHandle<()>>,
}

impl PacerBin {
    /// Writes `yaml` to `<dir>/.rr.yaml` and starts `pacer serve` on it (stderr captured,
    /// `PACER_LOG` removed so the config's `logs` section decides). Does not wait.
    pub fn spawn(dir: tempfile::TempDir, ports: Ports, yaml: &str) -> PacerBin {
        let config = dir.path().join(".rr.yaml");
        std::fs::write(&config, yaml).unwrap();
        Self::spawn_args(
            dir,
            ports,
            &["serve".as_ref(), "-c".as_ref(), config.as_os_str()],
        )
    }

    /// `pacer serve` of an app's own config (`-c config -w workdir`) with its listen
    /// addresses moved to free ports, plus the `-o` `overrides`; `dir` lives as long as
    /// it runs. Does not wait.
    pub fn serve_config(
        dir: tempfile::TempDir,
        config: &Path,
        workdir: &Path,
        overrides: &[String],
    ) -> PacerBin {
        let ports = Ports::pick();
        let mut args: Vec<OsString> = vec![
            "serve".into(),
            "-c".into(),
            config.into(),
            "-w".into(),
            workdir.into(),
        ];
        let listen = [
            format!("http.address={}", ports.http),
            format!("status.address={}", ports.status),
            format!("metrics.address={}", ports.metrics),
            format!("rpc.listen=tcp://127.0.0.1:{}", free_port()),
        ];
        for o in listen.iter().chain(overrides) {
            args.push("-o".into());
            args.push(o.into());
        }
        let args: Vec<&std::ffi::OsStr> = args.iter().map(OsString::as_os_str).collect();
        Self::spawn_args(dir, ports, &args)
    }

    /// Starts `pacer` with these arguments (stderr captured, `PACER_LOG` removed). `ports`
    /// are what the arguments make it listen on. Does not wait.
    pub fn spawn_args(dir: tempfile::TempDir, ports: Ports, args: &[&std::ffi::OsStr]) -> PacerBin {
        let mut child = Command::new(PACER)
            .args(args)
            .env_remove("PACER_LOG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = stderr.clone();
        let stderr_reader = tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        PacerBin {
            child,
            dir,
            ports,
            stderr,
            stderr_reader: Some(stderr_reader),
        }
    }

    /// Waits until `/ready` is 200 and `workers` PHP processes run.
    pub async fn wait_ready(&self, workers: usize) {
        let ready = self.status_url("/ready");
        let up = eventually_async(30, || async {
            tokio::time::timeout(Duration::from_secs(2), h1().request(get(&ready)))
                .await
                .is_ok_and(|r| r.is_ok_and(|r| r.status() == 200))
        })
        .await;
        assert!(up, "pacer never became ready: {}", self.stderr());
        assert!(
            eventually(30, || children_of(self.pid()).len() == workers).await,
            "{workers} PHP workers expected: {:?}",
            children_of(self.pid())
        );
    }

    /// Waits until the HTTP and status listeners accept connections (workers or not).
    pub async fn wait_listening(&self) {
        let (http, status) = (self.ports.http, self.ports.status);
        let up = eventually_async(30, || async {
            tokio::net::TcpStream::connect(http).await.is_ok()
                && tokio::net::TcpStream::connect(status).await.is_ok()
        })
        .await;
        assert!(up, "pacer never listened: {}", self.stderr());
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid() as i32), signal).unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.ports.http, path)
    }

    pub fn status_url(&self, path: &str) -> String {
        format!("http://{}{}", self.ports.status, path)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// One sample of the exposition, e.g. `pacer_workers{pool="http",state="ready"}`.
    pub async fn metric(&self, name_and_labels: &str) -> f64 {
        let text = fetch(&format!("http://{}/metrics", self.ports.metrics))
            .await
            .text();
        super::prom::sample(&text, name_and_labels)
            .unwrap_or_else(|| panic!("no {name_and_labels} in {text}"))
    }

    /// CPU time pacer itself used so far (user + system, not its children).
    pub fn cpu_time(&self) -> Duration {
        cpu_time(self.pid())
    }

    /// Open file descriptors of pacer.
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    /// Waits for the exit and for the rest of stderr.
    pub async fn wait_exit(&mut self, secs: u64) -> std::process::ExitStatus {
        let status = match tokio::time::timeout(Duration::from_secs(secs), self.child.wait()).await
        {
            Ok(status) => status.unwrap(),
            Err(_) => panic!("pacer did not exit within {secs} s: {}", self.stderr()),
        };
        if let Some(reader) = self.stderr_reader.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), reader).await;
        }
        status
    }

    /// SIGTERM, then waits for a clean exit.
    pub async fn stop(mut self) -> String {
        self.signal(Signal::SIGTERM);
        let status = self.wait_exit(60).await;
        assert_eq!(status.code(), Some(0), "{}", self.stderr());
        self.stderr()
    }
}

/// `/proc/<pid>/stat` fields after the command name: state is [0], ppid [1], pgrp [2],
/// utime [11], stime [12].
pub fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(
        stat.rsplit(')')
            .next()?
            .split_whitespace()
            .map(str::to_string)
            .collect(),
    )
}

/// user + system CPU time of one process.
pub fn cpu_time(pid: u32) -> Duration {
    let f = stat_fields(pid).unwrap_or_else(|| panic!("no process {pid}"));
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// Every live (not zombie) process, with its stat fields.
fn processes() -> Vec<(u32, Vec<String>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Some(f) = stat_fields(pid)
            && f.first().map(String::as_str) != Some("Z")
        {
            out.push((pid, f));
        }
    }
    out
}

/// Live processes whose parent is `parent`.
pub fn children_of(parent: u32) -> Vec<u32> {
    let parent = parent.to_string();
    processes()
        .into_iter()
        .filter(|(_, f)| f.get(1) == Some(&parent))
        .map(|(pid, _)| pid)
        .collect()
}

/// Live descendants of `root` (children, grandchildren, …), plus the live members of its
/// process group that are no longer its descendants (orphans re-parented elsewhere).
pub fn descendants(root: u32) -> Vec<u32> {
    let all = processes();
    let mut out: Vec<u32> = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        let p = p.to_string();
        for (pid, f) in &all {
            if f.get(1) == Some(&p) && !out.contains(pid) {
                out.push(*pid);
                frontier.push(*pid);
            }
        }
    }
    let group = root.to_string();
    for (pid, f) in &all {
        if *pid != root && f.get(2) == Some(&group) && !out.contains(pid) {
            out.push(*pid);
        }
    }
    out
}

/// Live processes whose command line contains `marker`.
pub fn processes_with_arg(marker: &str) -> Vec<u32> {
    processes()
        .into_iter()
        .filter(|(pid, _)| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == marker.as_bytes()))
        })
        .map(|(pid, _)| pid)
        .collect()
}

/// `Uid:`/`Gid:`/`Groups:` of a process, from `/proc/<pid>/status`: (real uid, real
/// gid, supplementary groups).
pub fn ids_of(pid: u32) -> (u32, u32, Vec<u32>) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> Vec<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {status}"))
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect()
    };
    let (uid, gid) = (field("Uid:"), field("Gid:"));
    // Real, effective, saved and filesystem ids must all agree.
    assert!(uid.iter().all(|u| *u == uid[0]), "{status}");
    assert!(gid.iter().all(|g| *g == gid[0]), "{status}");
    (uid[0], gid[0], field("Groups:"))
}

/// The repository's PHP worker script `name`, for configs.
pub fn script(name: &str) -> String {
    super::worker_script(name)
}

/// `p` quoted for a YAML config (JSON strings are YAML).
pub fn yaml_path(p: &Path) -> String {
    serde_json::to_string(p).unwrap()
}

/// A config file for `pacer serve` on [`Ports`]: a PHP worker from `testdata/workers/`,
/// its pool, and whatever a test adds, instead of a hand-written YAML per test.
#[derive(Clone, Debug)]
pub struct RrYaml {
    command: Vec<String>,
    env: Vec<(String, String)>,
    workers: usize,
    pool: Vec<String>,
    http: Vec<String>,
    level: String,
    console: bool,
    sections: Vec<String>,
}

impl RrYaml {
    /// `php testdata/workers/<script>`, one worker, logs at `info` in JSON.
    pub fn worker(script: &str) -> RrYaml {
        RrYaml {
            command: vec![super::php(), super::worker_script(script)],
            env: Vec::new(),
            workers: 1,
            pool: Vec::new(),
            http: Vec::new(),
            level: "info".into(),
            console: false,
            sections: Vec::new(),
        }
    }

    pub fn workers(mut self, n: usize) -> RrYaml {
        self.workers = n;
        self
    }

    /// An environment variable of the workers.
    pub fn env(mut self, key: &str, value: &str) -> RrYaml {
        self.env.push((key.into(), value.into()));
        self
    }

    /// A line under `http.pool`, e.g. `allocate_timeout: 30s`.
    pub fn pool(mut self, line: &str) -> RrYaml {
        self.pool.push(line.into());
        self
    }

    /// Lines under `http` (YAML indented as if `http` were the top level).
    pub fn http(mut self, yaml: &str) -> RrYaml {
        self.http.push(yaml.into());
        self
    }

    pub fn level(mut self, level: &str) -> RrYaml {
        self.level = level.into();
        self
    }

    /// Logs in the console encoding instead of JSON.
    pub fn console(mut self) -> RrYaml {
        self.console = true;
        self
    }

    /// A top-level section as YAML, e.g. `"rpc:\n  listen: tcp://…"`.
    pub fn section(mut self, yaml: &str) -> RrYaml {
        self.sections.push(yaml.into());
        self
    }

    pub fn render(&self, ports: &Ports) -> String {
        let indent = |yaml: &str, by: &str| -> String {
            yaml.lines().map(|l| format!("{by}{l}\n")).collect()
        };
        let mut y = String::from("version: \"3\"\nserver:\n");
        y += &format!(
            "  command: {}\n",
            serde_json::to_string(&self.command).unwrap()
        );
        if !self.env.is_empty() {
            y += "  env:\n";
            for (k, v) in &self.env {
                y += &format!("    {k}: {}\n", serde_json::to_string(v).unwrap());
            }
        }
        y += &format!("http:\n  address: {}\n", ports.http);
        for h in &self.http {
            y += &indent(h, "  ");
        }
        y += &format!("  pool:\n    num_workers: {}\n", self.workers);
        for p in &self.pool {
            y += &format!("    {p}\n");
        }
        y += &format!(
            "status:\n  address: {}\nmetrics:\n  address: {}\nlogs:\n  level: {}\n",
            ports.status, ports.metrics, self.level
        );
        if self.console {
            y += "  encoding: console\n";
        }
        for s in &self.sections {
            y += s.trim_end();
            y += "\n";
        }
        y
    }
}
