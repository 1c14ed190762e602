//! `pacer serve` in-process for the HTTP tests: a config written from a base YAML plus
//! `-o`-style overrides, listeners bound to 127.0.0.1:0, the real [`pacer::app::run`]
//! with the test's own shutdown future, and the clients that talk to it (hyper-util's
//! legacy client for HTTP/1.1 and h2c, rustls for HTTPS, raw sockets for bytes no
//! client would send).

use std::fmt::Display;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use pacer::app::{self, AppError, Listeners, RunOptions, Running};
use pacer::config::{self, Config, LoadOptions};
use pacer::pool::Pool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{php, worker_script};

/// How a test server is configured before it starts.
pub struct Builder {
    dir: tempfile::TempDir,
    command: Vec<String>,
    workers: usize,
    overrides: Vec<String>,
    wait_for_workers: bool,
}

/// A server started with [`Builder::start`]. Dropping it without [`Server::stop`]
/// leaves the workers to PR_SET_PDEATHSIG when the test thread ends.
pub struct Server {
    pub dir: tempfile::TempDir,
    /// The plain HTTP listener.
    pub addr: SocketAddr,
    pub https: Option<SocketAddr>,
    pub status_addr: Option<SocketAddr>,
    /// The RPC address workers and clients dial (`tcp://127.0.0.1:<port>`), when the
    /// config has an `rpc` section (give it `rpc.listen: tcp://127.0.0.1:0`).
    pub rpc: Option<String>,
    pub running: Running,
    pub config: Config,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), AppError>>>,
}

/// A whole response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub version: http::Version,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }
}

impl Builder {
    /// A server for `testdata/workers/<worker>` with two workers.
    pub fn new(worker: &str) -> Builder {
        Builder::with_command(vec![php(), worker_script(worker)])
    }

    pub fn with_command(command: Vec<String>) -> Builder {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("uploads")).unwrap();
        Builder {
            dir,
            command,
            workers: 2,
            overrides: Vec::new(),
            wait_for_workers: true,
        }
    }

    /// Replaces the worker command.
    pub fn command(mut self, command: Vec<String>) -> Builder {
        self.command = command;
        self
    }

    /// The server's working directory (config file, uploads dir, anything a test puts
    /// there before starting).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn workers(mut self, n: usize) -> Builder {
        self.workers = n;
        self
    }

    /// An override like `-o key=value` (the value is read as YAML).
    pub fn set(mut self, key: &str, value: impl Display) -> Builder {
        self.overrides.push(format!("{key}={value}"));
        self
    }

    /// Do not wait for every worker to be up before returning.
    pub fn no_wait(mut self) -> Builder {
        self.wait_for_workers = false;
        self
    }

    /// The config file's text (before overrides).
    pub fn yaml(&self) -> String {
        let command = serde_json::to_string(&self.command).unwrap();
        let uploads = serde_json::to_string(&self.dir.path().join("uploads")).unwrap();
        format!(
            r#"version: "3"
server:
  command: {command}
  relay: pipes
http:
  address: 127.0.0.1:0
  uploads:
    dir: {uploads}
  pool:
    num_workers: {workers}
    allocate_timeout: 20s
    destroy_timeout: 5s
    stream_timeout: 10s
status:
  address: 127.0.0.1:0
logs:
  level: warn
pacer:
  shutdown:
    delay: 0s
    grace_period: 20s
"#,
            workers = self.workers
        )
    }

    /// The parsed config, as `pacer serve` would load it.
    pub fn config(&self) -> Config {
        let path = self.dir.path().join(".rr.yaml");
        std::fs::write(&path, self.yaml()).unwrap();
        // As `pacer serve -c DIR/.rr.yaml -w DIR`: relative paths in the config (worker
        // scripts, reload dirs, static dirs) are the test directory's.
        let options = LoadOptions {
            path,
            workdir: Some(self.dir.path().to_path_buf()),
            overrides: self.overrides.clone(),
            ..LoadOptions::default()
        };
        config::load(&options)
            .unwrap_or_else(|e| panic!("test config rejected: {e}"))
            .config
    }

    pub async fn start(self) -> Server {
        let config = self.config();
        let http = config.http.as_ref().unwrap();
        let mut listeners = Listeners::default();
        let local = || async { TcpListener::bind("127.0.0.1:0").await.unwrap() };
        if http.address.is_some() {
            listeners.http = Some(local().await);
        }
        if http.ssl.is_some() {
            listeners.https = Some(local().await);
        }
        if config.status.is_some() {
            listeners.status = Some(local().await);
        }
        if let Some(rpc) = &config.rpc {
            let addr = rpc.listen.clone();
            listeners.rpc = Some(pacer::rpc::RpcListener::bind(&addr).await.unwrap());
        }
        let rpc = listeners.rpc.as_ref().map(|l| l.dsn().to_string());
        let addr_of = |l: &Option<TcpListener>| l.as_ref().map(|l| l.local_addr().unwrap());
        let addr = addr_of(&listeners.http).unwrap_or_else(|| "127.0.0.1:1".parse().unwrap());
        let https = addr_of(&listeners.https);
        let status_addr = addr_of(&listeners.status);
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = oneshot::channel();
        let task = tokio::spawn(app::run(
            config.clone(),
            listeners,
            RunOptions::default(),
            async move {
                let _ = stop_rx.await;
            },
            Some(ready_tx),
        ));
        let running = tokio::time::timeout(Duration::from_secs(30), ready_rx)
            .await
            .expect("the app did not start in 30 s")
            .expect("the app stopped before it was ready");
        let n = config.http.as_ref().unwrap().pool.settings.num_workers;
        if self.wait_for_workers {
            assert!(
                running.pool.wait_ready(n, Duration::from_secs(30)).await,
                "{n} workers did not start"
            );
        }
        Server {
            dir: self.dir,
            addr,
            https,
            status_addr,
            rpc,
            running,
            config,
            stop: Some(stop_tx),
            task: Some(task),
        }
    }
}

impl Server {
    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }

    pub fn status_url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.status_addr.unwrap(), path_and_query)
    }

    pub fn pool(&self) -> &Pool {
        &self.running.pool
    }

    pub fn uploads_dir(&self) -> PathBuf {
        self.dir.path().join("uploads")
    }

    /// Jobs the live workers have run so far.
    pub fn jobs_run(&self) -> u64 {
        self.pool()
            .snapshot()
            .workers
            .iter()
            .map(|w| w.jobs())
            .sum()
    }

    /// The pids of the live workers.
    pub fn worker_pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self
            .pool()
            .snapshot()
            .workers
            .iter()
            .map(|w| w.pid)
            .collect();
        pids.sort_unstable();
        pids
    }

    /// Fires the shutdown future (SIGTERM, as far as the app can tell).
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    /// Waits for `run` to return (after [`Server::begin_shutdown`]).
    pub async fn wait_stopped(&mut self, secs: u64) {
        let task = self.task.take().expect("already waited");
        let result = tokio::time::timeout(Duration::from_secs(secs), task)
            .await
            .unwrap_or_else(|_| panic!("pacer did not stop within {secs} s"))
            .unwrap();
        result.unwrap();
    }

    /// Graceful shutdown; asserts that every worker process is gone afterwards.
    pub async fn stop(mut self) {
        let pids = self.worker_pids();
        self.begin_shutdown();
        self.wait_stopped(60).await;
        assert!(
            super::eventually(10, || pids.iter().all(|p| !super::alive(*p))).await,
            "workers left after shutdown: {pids:?}"
        );
    }
}

pub type H1 = Client<HttpConnector, Full<Bytes>>;

/// An HTTP/1.1 client.
pub fn h1() -> H1 {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(32)
        .build_http()
}

/// An HTTP/2 client with prior knowledge (h2c).
pub fn h2c() -> H1 {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

pub fn get(url: &str) -> Request<Full<Bytes>> {
    Request::get(url).body(Full::default()).unwrap()
}

/// Sends `req` and reads the whole response (60 s at most).
pub async fn send(client: &H1, req: Request<Full<Bytes>>) -> Reply {
    let what = format!("{} {}", req.method(), req.uri());
    let fut = async {
        let resp = client
            .request(req)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{what}: body: {e:?}"))
            .to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
            version: parts.version,
        }
    };
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer in 60 s"))
}

/// GET with a fresh HTTP/1.1 client.
pub async fn fetch(url: &str) -> Reply {
    send(&h1(), get(url)).await
}

/// Writes `bytes` on a new connection and reads until the server closes it or
/// `secs` pass; returns what arrived and whether the server closed the connection.
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8], secs: u64) -> (String, bool) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    read_until_close(&mut s, secs).await
}

/// Reads until EOF (or a reset) or `secs` pass.
pub async fn read_until_close(s: &mut TcpStream, secs: u64) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let closed = loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

/// The status code of the first response in raw HTTP/1.1 text.
pub fn raw_status(text: &str) -> u16 {
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP/1.1 response: {text:?}"))
}

pub use super::poll::eventually_async;

/// A self-signed certificate for `localhost` and 127.0.0.1, written as PEM files into
/// `dir`; returns (cert path, key path, DER cert for the client's trust store).
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf, rustls_pki_types::CertificateDer<'static>) {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, signing_key.serialize_pem()).unwrap();
    (cert_path, key_path, cert.der().clone())
}

/// A TLS connection to `addr` that trusts only `ca`, offering `alpn`.
pub async fn tls_connect(
    addr: SocketAddr,
    ca: &rustls_pki_types::CertificateDer<'static>,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await.unwrap()
}

/// One request over an established connection with hyper's low-level client
/// (HTTP/2 when `h2`), for TLS and other hand-made transports.
pub async fn send_on<S>(io: S, h2: bool, mut req: Request<Full<Bytes>>) -> Reply
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // hyper's low-level HTTP/1 client sends no Host of its own.
    if !h2
        && !req.headers().contains_key(http::header::HOST)
        && let Some(authority) = req.uri().authority()
    {
        let host = http::HeaderValue::from_str(authority.as_str()).unwrap();
        req.headers_mut().insert(http::header::HOST, host);
    }
    let io = TokioIo::new(io);
    let resp = if h2 {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        tokio::spawn(conn);
        sender.send_request(req).await.unwrap()
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        sender.send_request(req).await.unwrap()
    };
    let (parts, body) = resp.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
        version: parts.version,
    }
}
