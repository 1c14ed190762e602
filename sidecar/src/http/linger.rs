//! Lingering close: how pacer ends a connection whose client may still be sending.
//!
//! When pacer answers before it has read the whole request (413 for a body over
//! `max_request_size`, 400 for a malformed upload), hyper closes the connection with the
//! rest of the body unread in the socket. Closing a socket with unread data makes the
//! kernel send a reset instead of a FIN, and a client still writing its body (most
//! clients do not wait for `100-continue`) gets "broken pipe" or "connection reset",
//! often before it has read the answer. RFC 9112 §9.6 describes the cure, which nginx
//! calls a lingering close: shut down only the writing side, so the answer and a FIN go
//! out, then read and discard what the client still sends until it closes too, or
//! [`LINGER`] has passed.
//!
//! A client that has stopped sending closes at once, so the wait costs nothing for it.
//! Connections that end in an error (a timeout, a broken client) are dropped as before:
//! hyper does not shut them down.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// How long a closing connection keeps reading what the client still sends.
pub const LINGER: Duration = Duration::from_secs(2);

/// Discard buffer per lingering connection, allocated only once it lingers.
const DRAIN_BUF: usize = 16 * 1024;

/// An I/O whose shutdown lingers (see the module docs); reads and writes pass through.
#[derive(Debug)]
pub struct LingeringClose<I> {
    io: I,
    /// Set once the writing side is shut down.
    draining: Option<Drain>,
}

#[derive(Debug)]
struct Drain {
    until: Pin<Box<Sleep>>,
    buf: Box<[u8]>,
}

impl<I> LingeringClose<I> {
    pub fn new(io: I) -> Self {
        LingeringClose { io, draining: None }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for LingeringClose<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> AsyncWrite for LingeringClose<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    /// Shuts down the writing side, then reads until the client's EOF, an error or
    /// [`LINGER`]; the socket is closed when the caller drops it after this.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let drain = match &mut this.draining {
            Some(drain) => drain,
            None => {
                ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
                this.draining.insert(Drain {
                    until: Box::pin(tokio::time::sleep(LINGER)),
                    buf: vec![0; DRAIN_BUF].into_boxed_slice(),
                })
            }
        };
        loop {
            let mut buf = ReadBuf::new(&mut drain.buf);
            match Pin::new(&mut this.io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {}
                // EOF, or the client is gone: nothing left to protect.
                Poll::Ready(_) => return Poll::Ready(Ok(())),
                Poll::Pending => {
                    return match drain.until.as_mut().poll(cx) {
                        Poll::Ready(()) => Poll::Ready(Ok(())),
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn shutdown_sends_eof_and_reads_until_the_peer_closes() {
        let (server, mut client) = tokio::io::duplex(64);
        let mut server = LingeringClose::new(server);
        server.write_all(b"413").await.unwrap();
        let closing = tokio::spawn(async move { server.shutdown().await });
        // The answer and the EOF arrive while the client is still sending its body.
        let mut answer = Vec::new();
        client.write_all(&[b'z'; 1000]).await.unwrap();
        let (mut rd, mut wr) = tokio::io::split(client);
        rd.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"413");
        wr.write_all(&[b'z'; 1000]).await.unwrap();
        assert!(
            !closing.is_finished(),
            "stopped lingering while the client sent"
        );
        drop(wr);
        drop(rd);
        closing.await.unwrap().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_never_closes_is_let_go_after_the_linger() {
        let (server, _client) = tokio::io::duplex(64);
        let mut server = LingeringClose::new(server);
        let started = tokio::time::Instant::now();
        server.shutdown().await.unwrap();
        assert_eq!(started.elapsed(), LINGER);
    }
}
