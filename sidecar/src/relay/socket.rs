//! Socket relays (`tcp://host:port`, `unix:///path`): pacer listens, workers dial in.
//!
//! Each accepted connection runs its own PID handshake (bounded in time), so one slow or
//! broken connection never blocks the others — unlike RoadRunner, whose single accept
//! loop does the handshakes in line. A connection whose worker reports PID `n` waits in
//! `pending` until the spawner that started process `n` claims it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{FrameCodec, Relay, handshake};

/// Where workers talk to pacer (`server.relay`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayAddr {
    /// The worker's stdin and stdout.
    Pipes,
    /// `tcp://host:port`: pacer listens, workers connect.
    Tcp(String),
    /// `unix:///path/to.sock`: pacer listens, workers connect.
    Unix(PathBuf),
}

impl std::str::FromStr for RelayAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "pipes" || s.is_empty() {
            return Ok(RelayAddr::Pipes);
        }
        match s.split_once("://") {
            Some(("tcp", rest))
                if rest
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()) =>
            {
                Ok(RelayAddr::Tcp(rest.to_string()))
            }
            Some(("unix", rest)) if !rest.is_empty() => Ok(RelayAddr::Unix(PathBuf::from(rest))),
            _ => Err(format!(
                "expected `pipes`, `tcp://host:port` or `unix:///path/to.sock`, got `{s}`"
            )),
        }
    }
}

impl std::fmt::Display for RelayAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RelayAddr::Pipes => f.write_str("pipes"),
            RelayAddr::Tcp(a) => write!(f, "tcp://{a}"),
            RelayAddr::Unix(p) => write!(f, "unix://{}", p.display()),
        }
    }
}

#[derive(Default)]
struct Pending {
    relays: Mutex<HashMap<u32, Relay>>,
    arrived: Notify,
}

/// A listening socket relay. Dropping it stops accepting (and removes a unix socket file).
#[derive(Debug)]
pub struct SocketListener {
    pending: Arc<Pending>,
    /// The address workers must dial, with the real port when `:0` was asked for.
    dsn: String,
    unix_path: Option<PathBuf>,
    stop: CancellationToken,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("relays", &self.relays.lock().len())
            .finish()
    }
}

impl SocketListener {
    /// Binds `addr` and starts accepting. `handshake_timeout` bounds each connection's PID
    /// exchange; `own_pid` is what pacer announces in it.
    pub async fn bind(
        addr: &RelayAddr,
        own_pid: u32,
        handshake_timeout: Duration,
        codec: FrameCodec,
    ) -> std::io::Result<Self> {
        let pending = Arc::new(Pending::default());
        let stop = CancellationToken::new();
        let (dsn, unix_path) = match addr {
            RelayAddr::Pipes => {
                return Err(std::io::Error::other("pipes relays have no listener"));
            }
            RelayAddr::Tcp(a) => {
                let listener = TcpListener::bind(a).await?;
                let local = listener.local_addr()?;
                accept_loop(listener, &pending, &stop, own_pid, handshake_timeout, codec);
                (format!("tcp://{local}"), None)
            }
            RelayAddr::Unix(path) => {
                // A socket file left by a previous run would make bind fail.
                if path.exists() {
                    std::fs::remove_file(path)?;
                }
                let listener = UnixListener::bind(path)?;
                accept_loop(listener, &pending, &stop, own_pid, handshake_timeout, codec);
                (format!("unix://{}", path.display()), Some(path.clone()))
            }
        };
        Ok(SocketListener {
            pending,
            dsn,
            unix_path,
            stop,
        })
    }

    /// The value for the worker's `RR_RELAY`.
    pub fn dsn(&self) -> &str {
        &self.dsn
    }

    /// Waits up to `timeout` for the connection of the worker with `pid`.
    pub async fn claim(&self, pid: u32, timeout: Duration) -> Option<Relay> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.pending.arrived.notified();
            if let Some(relay) = self.pending.relays.lock().remove(&pid) {
                return Some(relay);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return self.pending.relays.lock().remove(&pid);
            }
        }
    }
}

impl Drop for SocketListener {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(path) = &self.unix_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A listening socket of either kind: what [`accept_loop`] needs of it.
trait Listener: Send + 'static {
    /// The next connection as a relay over `codec`, and the peer's name for the log.
    fn accept_relay(
        &self,
        codec: FrameCodec,
    ) -> impl Future<Output = std::io::Result<(Relay, String)>> + Send;
}

impl Listener for TcpListener {
    async fn accept_relay(&self, codec: FrameCodec) -> std::io::Result<(Relay, String)> {
        let (stream, peer) = self.accept().await?;
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        Ok((Relay::new(r, w, codec), peer.to_string()))
    }
}

impl Listener for UnixListener {
    async fn accept_relay(&self, codec: FrameCodec) -> std::io::Result<(Relay, String)> {
        let (stream, _) = self.accept().await?;
        let (r, w) = stream.into_split();
        Ok((Relay::new(r, w, codec), "unix".into()))
    }
}

/// Accepts connections on `listener` until `stop`, each one [`admit`]ted in its own task.
fn accept_loop(
    listener: impl Listener,
    pending: &Arc<Pending>,
    stop: &CancellationToken,
    own_pid: u32,
    handshake_timeout: Duration,
    codec: FrameCodec,
) {
    let (pending, stop) = (pending.clone(), stop.clone());
    tokio::spawn(async move {
        loop {
            let conn = tokio::select! {
                _ = stop.cancelled() => break,
                c = listener.accept_relay(codec.clone()) => c,
            };
            match conn {
                Ok((relay, peer)) => {
                    tokio::spawn(admit(
                        relay,
                        pending.clone(),
                        own_pid,
                        handshake_timeout,
                        peer,
                    ));
                }
                Err(e) => accept_failed(e).await,
            }
        }
    });
}

async fn admit(
    mut relay: Relay,
    pending: Arc<Pending>,
    own_pid: u32,
    timeout: Duration,
    peer: String,
) {
    match handshake(&mut relay, own_pid, timeout).await {
        Ok(pid) => {
            relay.set_peer_pid(pid);
            tracing::debug!(pid, %peer, "worker connected to the socket relay");
            // A second connection claiming the same pid replaces the first: the newest is
            // the one the process is waiting on.
            pending.relays.lock().insert(pid, relay);
            pending.arrived.notify_waiters();
        }
        Err(error) => tracing::warn!(%peer, %error, "socket relay connection refused"),
    }
}

/// `accept` fails on fd exhaustion; back off instead of spinning.
async fn accept_failed(error: std::io::Error) {
    tracing::error!(%error, "socket relay accept failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_addresses_parse_like_roadrunner() {
        assert_eq!("pipes".parse::<RelayAddr>().unwrap(), RelayAddr::Pipes);
        assert_eq!(
            "tcp://127.0.0.1:7000".parse::<RelayAddr>().unwrap(),
            RelayAddr::Tcp("127.0.0.1:7000".into())
        );
        assert_eq!(
            "unix:///tmp/rr.sock".parse::<RelayAddr>().unwrap(),
            RelayAddr::Unix("/tmp/rr.sock".into())
        );
        assert_eq!(
            "unix://rr.sock".parse::<RelayAddr>().unwrap(),
            RelayAddr::Unix("rr.sock".into())
        );
        for bad in ["tcp://nohost", "udp://1.2.3.4:5", "unix://", "tcp://:80x"] {
            let err = bad.parse::<RelayAddr>().unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
    }
}
