//! Goridge relay: frames, the codec, and the byte streams they travel on.
//!
//! This module knows nothing of workers or HTTP. It offers:
//! * [`frame`] — the frame and its pure encoding;
//! * [`codec`] — the verifying tokio-util decoder;
//! * [`Relay`] — a duplex frame channel over any byte stream (a child's stdin/stdout, a
//!   TCP or unix socket), writing every frame with ONE write;
//! * [`handshake`] — the PID exchange that makes a fresh relay usable (docs/wire-protocol.md §2.2);
//! * [`socket`] — the listener PHP workers dial into when `server.relay` is a socket.

pub mod codec;
pub mod frame;
pub mod socket;

pub use socket::{RelayAddr, SocketListener};

use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::FramedRead;

pub use codec::FrameCodec;
pub use frame::{Frame, Options, flags, stream};

/// Everything that can go wrong on a relay. Every variant but `Io` and `Closed` is a
/// protocol violation by the peer.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("relay i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("the relay was closed by the worker")]
    Closed,
    #[error(
        "the worker wrote data that is not a Goridge frame (header CRC mismatch). Is the script \
         printing to STDOUT before the worker starts? It printed: \"{printed}\""
    )]
    Crc { printed: String },
    #[error("php could not start the worker script: \"{0}\"")]
    CouldNotOpen(String),
    #[error("frame header length of {0} words is outside 3..=13")]
    HeaderLength(u8),
    #[error("frame version {0} is not Goridge's version 1")]
    Version(u8),
    #[error("frame payload of {size} bytes exceeds the maximum frame size of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("the relay ended in the middle of a frame; the last bytes were: \"{printed}\"")]
    Truncated { printed: String },
    #[error("handshake failed: {0}")]
    Handshake(String),
}

pub type Result<T, E = RelayError> = std::result::Result<T, E>;

type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// A duplex channel of frames over a byte stream.
pub struct Relay {
    reader: FramedRead<BoxRead, FrameCodec>,
    writer: BoxWrite,
    wbuf: BytesMut,
    /// The worker's pid once known, for the stray-output log line.
    peer_pid: Option<u32>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("codec", self.reader.decoder())
            .finish_non_exhaustive()
    }
}

impl Relay {
    pub fn new(
        reader: impl AsyncRead + Send + Unpin + 'static,
        writer: impl AsyncWrite + Send + Unpin + 'static,
        codec: FrameCodec,
    ) -> Self {
        Relay {
            reader: FramedRead::with_capacity(Box::new(reader) as BoxRead, codec, 16 * 1024),
            writer: Box::new(writer),
            wbuf: BytesMut::with_capacity(16 * 1024),
            peer_pid: None,
        }
    }

    /// Names the process at the other end in log lines.
    pub fn set_peer_pid(&mut self, pid: u32) {
        self.peer_pid = Some(pid);
    }

    /// Sends one frame whose payload is the concatenation of `parts`, with one write.
    pub async fn send_parts(
        &mut self,
        flags: u8,
        byte10: u8,
        options: &Options,
        parts: &[&[u8]],
    ) -> Result<()> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let max = self.reader.decoder().max_frame_size();
        if len > max {
            return Err(RelayError::TooLarge { size: len, max });
        }
        self.wbuf.clear();
        frame::encode_parts(&mut self.wbuf, flags, byte10, 0, options, parts);
        self.writer.write_all(&self.wbuf).await?;
        self.writer.flush().await?;
        // Do not keep a huge buffer alive after an exceptional frame.
        if self.wbuf.capacity() > 1 << 20 {
            self.wbuf = BytesMut::with_capacity(16 * 1024);
        }
        Ok(())
    }

    pub async fn send(&mut self, frame: &Frame) -> Result<()> {
        let payload = frame.payload.clone();
        self.send_parts(frame.flags, frame.byte10, &frame.options, &[&payload])
            .await
    }

    /// Receives the next frame; the end of the stream is [`RelayError::Closed`].
    pub async fn recv(&mut self) -> Result<Frame> {
        let next = self.reader.next().await;
        if let Some(stray) = self.reader.decoder_mut().take_stray() {
            // The most common first-run mistake (an echo, var_dump or notice on STDOUT):
            // said loudly, but the worker lives on (the codec resynchronised).
            tracing::warn!(
                pid = self.peer_pid,
                bytes = stray.total,
                printed = %stray.printable(),
                "the worker wrote to STDOUT outside a frame; skipped (use STDERR or the logger for output)"
            );
        }
        match next {
            Some(result) => result,
            None => Err(RelayError::Closed),
        }
    }

    /// Bytes received but not yet decoded (for diagnostics after an error).
    pub fn buffered(&self) -> &[u8] {
        self.reader.read_buffer()
    }
}

/// `{"pid":N}` — what the PID handshake carries both ways.
#[derive(serde::Serialize, serde::Deserialize)]
struct PidMessage {
    pid: serde_json::Value,
}

/// Runs the server side of the PID handshake (docs/wire-protocol.md §2.2): sends
/// CONTROL|JSON `{"pid":<own pid>}` and returns the PID the worker reports. The worker must
/// answer with a CONTROL frame whose `pid` is a positive integer.
pub async fn handshake(relay: &mut Relay, own_pid: u32, timeout: Duration) -> Result<u32> {
    let exchange = async {
        let body = format!("{{\"pid\":{own_pid}}}");
        relay
            .send_parts(
                flags::CONTROL | flags::CODEC_JSON,
                0,
                &Options::NONE,
                &[body.as_bytes()],
            )
            .await?;
        let reply = relay.recv().await?;
        if !reply.has_flag(flags::CONTROL) {
            return Err(RelayError::Handshake(format!(
                "expected a CONTROL frame with the worker's pid, got flags {:#04x} and payload \"{}\"",
                reply.flags,
                frame::printable(&reply.payload, 200)
            )));
        }
        let msg: PidMessage = serde_json::from_slice(&reply.payload).map_err(|e| {
            RelayError::Handshake(format!(
                "the pid reply is not {{\"pid\":N}} ({e}): \"{}\"",
                frame::printable(&reply.payload, 200)
            ))
        })?;
        match msg.pid.as_u64() {
            Some(pid) if pid > 0 && pid <= u32::MAX as u64 => Ok(pid as u32),
            _ => Err(RelayError::Handshake(format!(
                "the worker reported pid {}",
                msg.pid
            ))),
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(RelayError::Handshake(format!(
            "no pid reply within {timeout:?}"
        ))),
    }
}
