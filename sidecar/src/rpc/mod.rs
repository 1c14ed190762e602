//! Goridge RPC (docs/wire-protocol.md §4): the server on `rpc.listen` that PHP code and the
//! `pacer workers` / `pacer reset` commands talk to, its client, and those commands.
//!
//! # Wire
//! A connection carries frames both ways. A request has two options `[seq, method_len]`
//! and the payload `method || argument`; the reply repeats the seq and the method, with
//! the codec flag the request selected (Go's order: PROTO, JSON, RAW, MSGPACK, GOB) and,
//! on failure, `ERROR` (0x40) and the error text instead of a result. Pacer speaks JSON
//! (0x08) for every method and raw bytes (0x04) for `rpc.Config`; other codecs get an
//! error reply that says so.
//!
//! # Theory of operation
//! * [`serve`] owns the accept loop and one task per connection (at most
//!   [`RpcLimits::max_connections`]; one more is accepted and closed at once, so its
//!   client sees an error instead of hanging).
//! * A connection task reads frames in order. Quick methods (everything but
//!   `resetter.Reset` and `informer.AddWorker`/`RemoveWorker`) are answered in line;
//!   the slow ones run in their own task, so replies may come out of order — clients
//!   match them by seq, as with Go's `net/rpc`. At most [`RpcLimits::max_in_flight`]
//!   requests of one connection run at once; beyond that the connection stops reading.
//!   Writes go through one lock, each frame with one write, bounded by
//!   [`RpcLimits::write_timeout`].
//! * A client that breaks the framing (bad CRC, not two options, a frame over
//!   [`RpcLimits::max_frame_size`], a method length beyond the payload) is disconnected;
//!   nobody else notices. An unknown method or a bad argument is an error reply and the
//!   connection stays usable. Calls already accepted run to completion (bounded by the
//!   pool's own timeouts) even when their client hangs up: fire-and-forget
//!   `resetter.Reset` works.
//! * When `stop` fires the listener closes, connections stop reading, and in-flight
//!   calls get [`RpcLimits::shutdown_grace`] to finish.
//!
//! RPC has no authentication (as in RoadRunner): [`RpcListener::bind`] logs a warning
//! when the address is not loopback ([`warn_if_exposed`]).
//!
//! Module map: [`methods`] (what each method does), `server` (connections),
//! [`client`] ([`client::RpcClient`]), [`cli`] (`pacer workers` / `pacer reset`),
//! [`view`] (the `informer.Workers` record). Start reading at [`serve`].

pub mod cli;
pub mod client;
pub mod methods;
mod server;
pub mod view;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::RwLock;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};

use crate::metrics::AppMetrics;
use crate::pool::Pool;

pub use client::{ClientError, RpcClient};
pub use server::serve;
pub use view::WorkerView;

/// Bounds of the RPC server. The defaults suit a pod: PHP workers typically hold one
/// connection each, and RPC payloads are small.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RpcLimits {
    /// Open connections at once; more are closed on accept.
    pub max_connections: usize,
    /// Requests of one connection running at once.
    pub max_in_flight: usize,
    /// Largest request payload; a larger frame disconnects the client.
    pub max_frame_size: usize,
    /// How long writing one reply may take before the client is dropped.
    pub write_timeout: Duration,
    /// How long in-flight calls may run on after `stop`.
    pub shutdown_grace: Duration,
}

impl Default for RpcLimits {
    fn default() -> Self {
        RpcLimits {
            // Above the pool's MAX_WORKERS, so every worker can hold a connection.
            max_connections: 4096,
            max_in_flight: 16,
            max_frame_size: 4 << 20,
            write_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// A boxed future (the object-safe shape of an async trait method).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A service's RPC methods, served under its name (`name.Method`), as a RoadRunner
/// plugin registers its RPC receiver. Register with [`RpcContext::with_service`].
pub trait RpcService: Send + Sync + std::fmt::Debug {
    /// The service part of the method names (`jobs` serves `jobs.Push`, …).
    fn name(&self) -> &str;
    /// Runs `method` (the part after the dot). `Ok` is the encoded result (in `codec`),
    /// `Err` the error text of the reply. An unknown method should answer
    /// `rpc: can't find method <service>.<method>`, as Go's net/rpc does.
    fn call<'a>(
        &'a self,
        method: &'a str,
        codec: methods::Codec,
        arg: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, String>>;
}

/// A service that takes protobuf only, as RoadRunner's `jobs` and `service` plugins and
/// their PHP side: an [`RpcService`] (by the impl below) whose requests in any other codec
/// get an error reply that says so ([`proto_only`]).
pub trait ProtoService: Send + Sync + std::fmt::Debug {
    /// The service part of the method names.
    const NAME: &'static str;
    /// Runs `method` on its protobuf argument: `Ok` is the encoded result, `Err` the
    /// error text of the reply (as [`RpcService::call`]).
    fn call_proto(
        &self,
        method: &str,
        arg: &[u8],
    ) -> impl std::future::Future<Output = Result<Vec<u8>, String>> + Send;
}

impl<S: ProtoService> RpcService for S {
    fn name(&self) -> &str {
        S::NAME
    }

    fn call<'a>(
        &'a self,
        method: &'a str,
        codec: methods::Codec,
        arg: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, String>> {
        proto_only(S::NAME, method, codec, self.call_proto(method, arg))
    }
}

/// Runs `call` for a request in the protobuf codec; any other codec gets an error reply
/// that says so.
pub fn proto_only<'a>(
    service: &'a str,
    method: &'a str,
    codec: methods::Codec,
    call: impl std::future::Future<Output = Result<Vec<u8>, String>> + Send + 'a,
) -> BoxFuture<'a, Result<Vec<u8>, String>> {
    Box::pin(async move {
        if codec != methods::Codec::Proto {
            return Err(format!(
                "{service}.{method} takes the protobuf codec (0x80), as RoadRunner's {service} plugin"
            ));
        }
        call.await
    })
}

/// What the RPC methods work on.
#[derive(Debug)]
pub struct RpcContext {
    services: Vec<Arc<dyn RpcService>>,
    pools: Vec<Pool>,
    config: RwLock<Bytes>,
    version: String,
    app_metrics: Arc<AppMetrics>,
    limits: RpcLimits,
    /// Serialises read-modify-write of a pool target (`AddWorker`/`RemoveWorker`).
    resize: tokio::sync::Mutex<()>,
}

impl RpcContext {
    /// * `pools` — answered by name (`http`) in `informer.*` and `resetter.*`;
    /// * `config` — the effective configuration, returned by `rpc.Config`;
    /// * `version` — what `rpc.Version` answers (RoadRunner answers its own version;
    ///   pass [`crate::worker::RR_VERSION`] to look like it, or pacer's);
    /// * `app_metrics` — the registry behind `metrics.*`, shared with
    ///   [`crate::metrics::Metrics`].
    pub fn new(
        pools: Vec<Pool>,
        config: serde_json::Value,
        version: impl Into<String>,
        app_metrics: Arc<AppMetrics>,
    ) -> RpcContext {
        RpcContext {
            services: Vec::new(),
            pools,
            config: RwLock::new(config_bytes(&config)),
            version: version.into(),
            app_metrics,
            limits: RpcLimits::default(),
            resize: tokio::sync::Mutex::new(()),
        }
    }

    /// Serves `service`'s methods too. A name pacer already serves is refused.
    pub fn with_service(mut self, service: Arc<dyn RpcService>) -> RpcContext {
        let taken = ["informer", "resetter", "rpc", "metrics"].contains(&service.name())
            || self.services.iter().any(|s| s.name() == service.name());
        if taken {
            tracing::error!(
                service = service.name(),
                "RPC service name already taken; not registered"
            );
        } else {
            self.services.push(service);
        }
        self
    }

    /// Finds a method: a registered service's, else one of pacer's own.
    pub fn resolve(&self, name: &str) -> Result<methods::Method, String> {
        if let Some((service, _)) = name.rsplit_once('.')
            && let Some(i) = self.services.iter().position(|s| s.name() == service)
        {
            return Ok(methods::Method::Service(i));
        }
        methods::Method::resolve(name)
    }

    pub(crate) fn service(&self, i: usize) -> Option<&Arc<dyn RpcService>> {
        self.services.get(i)
    }

    pub fn with_limits(mut self, limits: RpcLimits) -> RpcContext {
        self.limits = limits;
        self
    }

    /// Replaces what `rpc.Config` returns (after a live config change).
    pub fn set_config(&self, config: &serde_json::Value) {
        *self.config.write() = config_bytes(config);
    }

    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name() == name)
    }

    pub fn pool_names(&self) -> Vec<String> {
        self.pools.iter().map(|p| p.name().to_string()).collect()
    }

    pub fn app_metrics(&self) -> &Arc<AppMetrics> {
        &self.app_metrics
    }

    pub fn limits(&self) -> RpcLimits {
        self.limits
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    fn config(&self) -> Bytes {
        self.config.read().clone()
    }
}

fn config_bytes(config: &serde_json::Value) -> Bytes {
    serde_json::to_vec(config).unwrap_or_default().into()
}

/// Why the RPC listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("invalid rpc.listen {0:?}: expected tcp://host:port or unix://path")]
    Address(String),
    #[error("cannot listen for RPC on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// An RPC address (`rpc.listen`): `tcp://host:port` or `unix://path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RpcAddr {
    /// `host:port`; an empty host (`tcp://:6001`) means every interface.
    Tcp(String),
    Unix(PathBuf),
}

impl std::str::FromStr for RpcAddr {
    type Err = RpcError;

    fn from_str(s: &str) -> Result<Self, RpcError> {
        let bad = || RpcError::Address(s.to_string());
        let (scheme, rest) = s.trim().split_once("://").ok_or_else(bad)?;
        if rest.contains("://") {
            return Err(bad());
        }
        match scheme {
            "tcp" => {
                let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
                port.parse::<u16>().map_err(|_| bad())?;
                let host = if host.is_empty() { "0.0.0.0" } else { host };
                Ok(RpcAddr::Tcp(format!("{host}:{port}")))
            }
            "unix" if !rest.is_empty() => Ok(RpcAddr::Unix(PathBuf::from(rest))),
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for RpcAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RpcAddr::Tcp(a) => write!(f, "tcp://{a}"),
            RpcAddr::Unix(p) => write!(f, "unix://{}", p.display()),
        }
    }
}

impl RpcAddr {
    /// Whether only this machine can reach the address (loopback TCP, or a unix socket).
    pub fn is_local(&self) -> bool {
        match self {
            RpcAddr::Unix(_) => true,
            RpcAddr::Tcp(a) => {
                let host = a.rsplit_once(':').map_or(a.as_str(), |(h, _)| h);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                host.eq_ignore_ascii_case("localhost")
                    || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
            }
        }
    }
}

/// Logs a warning when `addr` is reachable from other machines: RPC has no
/// authentication, so whoever reaches it can reset workers and read the config.
/// Returns whether it warned.
pub fn warn_if_exposed(addr: &RpcAddr) -> bool {
    if addr.is_local() {
        return false;
    }
    tracing::warn!(
        address = %addr,
        "RPC listens on a non-loopback address and has no authentication: anyone who can reach it can reset workers, resize pools and read the configuration"
    );
    true
}

type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

#[derive(Debug)]
enum Inner {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// A bound RPC listener. Dropping it removes its unix socket file.
#[derive(Debug)]
pub struct RpcListener {
    inner: Inner,
    dsn: String,
    unix_path: Option<PathBuf>,
}

impl RpcListener {
    /// Binds `addr` (a stale unix socket file is replaced, as RoadRunner does) and warns
    /// when it is not loopback.
    pub async fn bind(addr: &RpcAddr) -> Result<RpcListener, RpcError> {
        let bind_err = |source| RpcError::Bind {
            addr: addr.to_string(),
            source,
        };
        warn_if_exposed(addr);
        match addr {
            RpcAddr::Tcp(a) => Ok(RpcListener::from_tcp(
                TcpListener::bind(a).await.map_err(bind_err)?,
            )),
            RpcAddr::Unix(path) => {
                if std::fs::symlink_metadata(path).is_ok_and(|m| {
                    use std::os::unix::fs::FileTypeExt;
                    m.file_type().is_socket()
                }) {
                    let _ = std::fs::remove_file(path);
                }
                let listener = UnixListener::bind(path).map_err(bind_err)?;
                let mut l = RpcListener::from_unix(listener, path.clone());
                l.unix_path = Some(path.clone());
                Ok(l)
            }
        }
    }

    /// Wraps a TCP listener bound by the caller.
    pub fn from_tcp(listener: TcpListener) -> RpcListener {
        let dsn = match listener.local_addr() {
            Ok(a) => format!("tcp://{a}"),
            Err(_) => "tcp://?".to_string(),
        };
        RpcListener {
            inner: Inner::Tcp(listener),
            dsn,
            unix_path: None,
        }
    }

    /// Wraps a unix listener bound by the caller at `path` (the file is left alone).
    pub fn from_unix(listener: UnixListener, path: PathBuf) -> RpcListener {
        RpcListener {
            inner: Inner::Unix(listener),
            dsn: format!("unix://{}", path.display()),
            unix_path: None,
        }
    }

    /// Gives a unix socket's file to `uid` (and `gid`): connecting needs write
    /// permission on it, and workers running as `server.user` dial it through `RR_RPC`.
    /// Other users still cannot. Nothing to do for TCP.
    pub fn give_to(&self, uid: u32, gid: Option<u32>) -> std::io::Result<()> {
        match &self.inner {
            Inner::Tcp(_) => Ok(()),
            Inner::Unix(l) => match l.local_addr()?.as_pathname() {
                Some(path) => std::os::unix::fs::chown(path, Some(uid), gid),
                None => Ok(()),
            },
        }
    }

    /// The address clients dial (`tcp://127.0.0.1:PORT` with the real port) — what
    /// workers get in `RR_RPC`.
    pub fn dsn(&self) -> &str {
        &self.dsn
    }

    async fn accept_one(&self) -> std::io::Result<(BoxRead, BoxWrite, String)> {
        match &self.inner {
            Inner::Tcp(l) => {
                let (stream, peer) = l.accept().await?;
                let _ = stream.set_nodelay(true);
                let (r, w) = stream.into_split();
                Ok((Box::new(r), Box::new(w), peer.to_string()))
            }
            Inner::Unix(l) => {
                let (stream, _) = l.accept().await?;
                let (r, w) = stream.into_split();
                Ok((Box::new(r), Box::new(w), "unix".to_string()))
            }
        }
    }
}

impl crate::accept::Listener for RpcListener {
    type Conn = (BoxRead, BoxWrite, String);

    fn accept_conn(&self) -> impl std::future::Future<Output = std::io::Result<Self::Conn>> + Send {
        self.accept_one()
    }
}

impl Drop for RpcListener {
    fn drop(&mut self) {
        if let Some(path) = &self.unix_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn proto_only_refuses_other_codecs() {
        let ok = proto_only("jobs", "Push", methods::Codec::Proto, async { Ok(vec![1]) });
        assert_eq!(ok.await.unwrap(), [1]);
        let json = proto_only("service", "List", methods::Codec::Json, async {
            Ok(vec![1])
        });
        assert_eq!(
            json.await.unwrap_err(),
            "service.List takes the protobuf codec (0x80), as RoadRunner's service plugin"
        );
    }

    #[test]
    fn addresses_parse_and_print() {
        let a: RpcAddr = "tcp://127.0.0.1:6001".parse().unwrap();
        assert_eq!(a, RpcAddr::Tcp("127.0.0.1:6001".into()));
        assert_eq!(a.to_string(), "tcp://127.0.0.1:6001");
        let u: RpcAddr = "unix:///run/pacer/rpc.sock".parse().unwrap();
        assert_eq!(u, RpcAddr::Unix("/run/pacer/rpc.sock".into()));
        assert_eq!(u.to_string(), "unix:///run/pacer/rpc.sock");
        assert_eq!(
            "unix://rr.sock".parse::<RpcAddr>().unwrap(),
            RpcAddr::Unix("rr.sock".into())
        );
        assert_eq!(
            "tcp://:6001".parse::<RpcAddr>().unwrap(),
            RpcAddr::Tcp("0.0.0.0:6001".into())
        );
        for bad in [
            "127.0.0.1:6001",
            "tcp://127.0.0.1",
            "tcp://h:99999",
            "udp://h:1",
            "unix://",
            "tcp://a://b:1",
        ] {
            assert!(bad.parse::<RpcAddr>().is_err(), "{bad}");
        }
        let err = "6001".parse::<RpcAddr>().unwrap_err().to_string();
        assert!(err.contains("tcp://host:port"), "{err}");
    }

    #[test]
    fn only_loopback_and_unix_are_local() {
        for local in [
            "tcp://127.0.0.1:6001",
            "tcp://127.1.2.3:1",
            "tcp://localhost:6001",
            "tcp://[::1]:6001",
            "unix:///tmp/x.sock",
        ] {
            let a: RpcAddr = local.parse().unwrap();
            assert!(a.is_local(), "{local}");
            assert!(!warn_if_exposed(&a));
        }
        for exposed in [
            "tcp://0.0.0.0:6001",
            "tcp://:6001",
            "tcp://10.0.0.5:6001",
            "tcp://[::]:1",
        ] {
            let a: RpcAddr = exposed.parse().unwrap();
            assert!(!a.is_local(), "{exposed}");
            assert!(warn_if_exposed(&a));
        }
    }
}
