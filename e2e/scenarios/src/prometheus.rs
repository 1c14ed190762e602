//! Debian's Prometheus scraping the pacer processes the node stand-in runs.
//!
//! Discovery is file-based (`file_sd_configs`): the node writes one target per running
//! pod, `<podIP>:2112` with the labels `namespace` and `pod` — what Kubernetes service
//! discovery and the chart's ServiceMonitor attach in a cluster, and what the operator's
//! PromQL selects on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crate::lock;
use anyhow::{Context, Result, bail};
use pacer_e2e::{Server, Watchdog};

/// Where Debian installs it; `PACER_PROMETHEUS` overrides.
pub const DEFAULT_BINARY: &str = "/usr/bin/prometheus";
/// Scrape interval: short, so that a 30 s window holds many points.
pub const SCRAPE_INTERVAL: &str = "2s";

/// One target: its address and labels.
type Entry = (String, BTreeMap<String, String>);

/// The file-based service discovery list, written atomically on every change.
#[derive(Debug)]
pub struct Targets {
    path: PathBuf,
    entries: Mutex<BTreeMap<String, Entry>>,
}

impl Targets {
    /// An empty list at `path`.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn new(path: PathBuf) -> Result<Self> {
        let targets = Self {
            path,
            entries: Mutex::new(BTreeMap::new()),
        };
        targets.write(&BTreeMap::new())?;
        Ok(targets)
    }

    /// Adds or replaces the target `key` (`address` = `host:port`).
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn set(&self, key: &str, address: &str, labels: BTreeMap<String, String>) -> Result<()> {
        let mut entries = lock(&self.entries);
        entries.insert(key.to_owned(), (address.to_owned(), labels));
        self.write(&entries)
    }

    /// Removes the target `key`.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn remove(&self, key: &str) -> Result<()> {
        let mut entries = lock(&self.entries);
        if entries.remove(key).is_some() {
            self.write(&entries)?;
        }
        Ok(())
    }

    fn write(&self, entries: &BTreeMap<String, Entry>) -> Result<()> {
        let list: Vec<serde_json::Value> = entries
            .values()
            .map(|(address, labels)| serde_json::json!({"targets": [address], "labels": labels}))
            .collect();
        let temp = self.path.with_extension("tmp");
        std::fs::write(&temp, serde_json::to_vec_pretty(&list)?)?;
        std::fs::rename(&temp, &self.path)
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

/// A running Prometheus.
#[derive(Debug)]
pub struct Prometheus {
    server: Server,
    url: String,
    targets: std::sync::Arc<Targets>,
}

impl Prometheus {
    /// Starts Prometheus with its data and config under `dir`, listening on a free
    /// loopback port, and waits until it is ready.
    ///
    /// # Errors
    /// When the binary is missing or it does not become ready within 60 s.
    pub async fn start(dir: &Path, watchdog: &mut Watchdog) -> Result<Self> {
        let binary = std::env::var("PACER_PROMETHEUS").unwrap_or_else(|_| DEFAULT_BINARY.into());
        if !Path::new(&binary).is_file() {
            bail!("{binary} not found: install Debian's prometheus (scripts/deps.sh)");
        }
        std::fs::create_dir_all(dir)?;
        let targets = std::sync::Arc::new(Targets::new(dir.join("targets.json"))?);
        let config = format!(
            "global:\n  scrape_interval: {SCRAPE_INTERVAL}\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: pacer\n    file_sd_configs:\n      - files: [{}]\n        refresh_interval: 1s\n",
            serde_json::to_string(&dir.join("targets.json"))?
        );
        std::fs::write(dir.join("prometheus.yml"), config)?;
        let port = pacer_ports::free_port();
        let args = vec![
            format!("--config.file={}", dir.join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--storage.tsdb.retention.time=2h".into(),
            "--log.level=warn".into(),
        ];
        let server = Server::spawn(
            "prometheus",
            Path::new(&binary),
            &args,
            dir.join("prometheus.log"),
            watchdog,
        )?;
        let url = format!("http://127.0.0.1:{port}");
        let mut prometheus = Self {
            server,
            url,
            targets,
        };
        prometheus.wait_ready().await?;
        Ok(prometheus)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let addr: std::net::SocketAddr = self.url.trim_start_matches("http://").parse()?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.server.exited()? {
                bail!("prometheus exited ({status})\n{}", self.server.log_tail(20));
            }
            if let Ok(Ok(mut sock)) =
                tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr))
                    .await
            {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let _ = sock
                    .write_all(b"GET /-/ready HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n")
                    .await;
                let mut answer = String::new();
                let _ = sock.read_to_string(&mut answer).await;
                if answer.starts_with("HTTP/1.1 200") {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "prometheus not ready after 60 s\n{}",
                    self.server.log_tail(20)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Base URL of the HTTP API, `http://127.0.0.1:<port>`.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The service discovery list.
    #[must_use]
    pub fn targets(&self) -> std::sync::Arc<Targets> {
        self.targets.clone()
    }
}
