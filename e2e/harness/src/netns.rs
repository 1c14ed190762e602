//! Reaching into the real node's network namespace from the test process, which stays in
//! the host's.
//!
//! The node (API server, kubelet, pods) lives in a network namespace of its own with no
//! route out of it, and no route leads into it from the host either: nothing on the
//! host's network changes. The test process reaches it with sockets *created* inside it:
//! a socket belongs to the namespace of the thread that created it, whatever thread uses
//! it later. So one thread ([`NetNs::open`]) enters the namespace (`setns`) and does
//! nothing but create unconnected sockets on request; the caller connects them on its
//! own runtime. Tools that are processes (`kubectl`, `helm`) and the kube client reach
//! the API server through [`NetNs::relay`], a loopback port on the host forwarded into
//! the namespace.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use anyhow::{Context, Result, anyhow};
use nix::sched::{CloneFlags, setns};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;

type Request = (AddressFamily, oneshot::Sender<io::Result<OwnedFd>>);

/// A network namespace (a file it is bound to, as `unshare --net=FILE` leaves it) and
/// the thread that makes sockets in it.
#[derive(Debug, Clone)]
pub struct NetNs {
    path: PathBuf,
    requests: mpsc::Sender<Request>,
}

impl NetNs {
    /// Starts the socket-making thread inside the namespace bound to `path`.
    ///
    /// # Errors
    /// When the file cannot be opened or entered.
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path)
            .with_context(|| format!("opening the network namespace {}", path.display()))?;
        let (requests, inbox) = mpsc::channel::<Request>();
        let (entered_tx, entered) = mpsc::channel();
        std::thread::Builder::new()
            .name("netns-sockets".into())
            .spawn(move || {
                let joined = setns(&file, CloneFlags::CLONE_NEWNET);
                let ok = joined.is_ok();
                let _ = entered_tx.send(joined);
                if !ok {
                    return;
                }
                // Ends when every `NetNs` (every sender) is gone.
                for (family, reply) in inbox {
                    let made = socket(
                        family,
                        SockType::Stream,
                        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
                        None,
                    )
                    .map_err(io::Error::from);
                    let _ = reply.send(made);
                }
            })
            .context("spawning the netns socket thread")?;
        entered
            .recv()
            .context("the netns socket thread ended at once")?
            .with_context(|| format!("entering the network namespace {}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            requests,
        })
    }

    /// The namespace file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A TCP connection to `addr` inside the namespace.
    ///
    /// # Errors
    /// When the socket cannot be made or the connection fails.
    pub async fn connect(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        let family = match addr {
            SocketAddr::V4(_) => AddressFamily::Inet,
            SocketAddr::V6(_) => AddressFamily::Inet6,
        };
        let (reply, answer) = oneshot::channel();
        self.requests
            .send((family, reply))
            .map_err(|_| io::Error::other("the netns socket thread is gone"))?;
        let fd = answer
            .await
            .map_err(|_| io::Error::other("the netns socket thread is gone"))??;
        let socket = TcpSocket::from_std_stream(std::net::TcpStream::from(fd));
        socket.set_nodelay(true)?;
        socket.connect(addr).await
    }

    /// Forwards a new loopback port of the host to `target` inside the namespace, for the
    /// life of the process (a thread with its own runtime, so it outlives any one test's
    /// runtime). Returns the host address.
    ///
    /// # Errors
    /// When the port or the thread cannot be had.
    pub fn relay(&self, target: SocketAddr) -> Result<SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the relay port")?;
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        let ns = self.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building the relay's runtime")?;
        std::thread::Builder::new()
            .name(format!("netns-relay-{}", local.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    while let Ok((mut inbound, _)) = listener.accept().await {
                        let ns = ns.clone();
                        tokio::spawn(async move {
                            if let Ok(mut outbound) = ns.connect(target).await {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound)
                                    .await;
                            }
                        });
                    }
                });
            })
            .map_err(|e| anyhow!("spawning the relay thread: {e}"))?;
        Ok(local)
    }
}
