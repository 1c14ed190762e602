//! The one accept loop of every listener pacer serves — HTTP(S), status, metrics and
//! RPC: the next connection, or `None` once `stop` fires. A failed accept (out of file
//! descriptors, typically) is logged and retried after a short pause instead of
//! spinning; what each server does with a connection is its own business.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// How long to pause after a failed accept.
const BACKOFF: Duration = Duration::from_millis(50);

/// Something connections arrive on.
pub trait Listener: Send + Sync {
    type Conn: Send + 'static;

    fn accept_conn(&self) -> impl Future<Output = std::io::Result<Self::Conn>> + Send;
}

impl Listener for TcpListener {
    type Conn = (TcpStream, SocketAddr);

    fn accept_conn(&self) -> impl Future<Output = std::io::Result<Self::Conn>> + Send {
        self.accept()
    }
}

/// The next connection on `listener`, or `None` once `stop` is cancelled. `what` names
/// the listener in the log.
pub async fn next<L: Listener>(
    listener: &L,
    stop: &CancellationToken,
    what: &'static str,
) -> Option<L::Conn> {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return None,
            accepted = listener.accept_conn() => match accepted {
                Ok(conn) => return Some(conn),
                Err(error) => {
                    tracing::warn!(%error, listener = what, "accept failed");
                    tokio::select! {
                        _ = stop.cancelled() => return None,
                        _ = tokio::time::sleep(BACKOFF) => {}
                    }
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Failing(std::sync::atomic::AtomicUsize);

    impl Listener for Failing {
        type Conn = usize;

        fn accept_conn(&self) -> impl Future<Output = std::io::Result<usize>> + Send {
            let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                if n < 3 {
                    Err(std::io::Error::other("EMFILE"))
                } else {
                    Ok(n)
                }
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn failed_accepts_back_off_then_the_next_connection_arrives() {
        let l = Failing(std::sync::atomic::AtomicUsize::new(0));
        let t = tokio::time::Instant::now();
        assert_eq!(next(&l, &CancellationToken::new(), "test").await, Some(3));
        assert_eq!(t.elapsed(), BACKOFF * 3);
    }

    #[tokio::test]
    async fn stop_ends_the_wait() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stop = CancellationToken::new();
        stop.cancel();
        assert!(next(&l, &stop, "test").await.is_none());
    }
}
