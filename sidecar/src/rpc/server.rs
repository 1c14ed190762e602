//! The accept loop and the connection tasks (see the module docs of [`super`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::{Mutex, Semaphore};
use tokio::task::JoinSet;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::methods::{self, Codec, Method};
use super::{BoxRead, BoxWrite, RpcContext, RpcListener};
use crate::relay::frame::{self, Frame, Options};
use crate::relay::{FrameCodec, RelayError, flags};

/// Serves RPC on `listener` until `stop` fires, then gives open calls
/// [`RpcLimits::shutdown_grace`](super::RpcLimits::shutdown_grace) to finish.
pub async fn serve(listener: RpcListener, ctx: Arc<RpcContext>, stop: CancellationToken) {
    let limits = ctx.limits();
    tracing::info!(address = %listener.dsn(), "RPC listening");
    let mut connections = JoinSet::new();
    while let Some((reader, writer, peer)) = crate::accept::next(&listener, &stop, "rpc").await {
        while connections.try_join_next().is_some() {}
        if connections.len() >= limits.max_connections {
            tracing::warn!(
                %peer,
                limit = limits.max_connections,
                "too many RPC connections; closing a new one"
            );
            continue;
        }
        let span = tracing::info_span!("rpc_connection", %peer);
        connections.spawn(connection(reader, writer, ctx.clone(), stop.clone()).instrument(span));
    }
    drop(listener);
    let drained = tokio::time::timeout(limits.shutdown_grace + Duration::from_secs(1), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = connections.len(),
            "RPC calls still running after the shutdown grace; aborting them"
        );
        connections.abort_all();
    }
}

/// One parsed request.
struct Request {
    seq: u32,
    /// The method name as sent (echoed in the reply).
    method: Bytes,
    codec: Codec,
    arg: Bytes,
}

/// Checks the framing of a request; an `Err` means the client is not speaking Goridge RPC.
fn parse(frame: Frame) -> Result<Request, String> {
    let [seq, method_len] = frame.options.as_slice() else {
        return Err(format!(
            "an RPC request carries two options [seq, method length], this one has {}",
            frame.options.len()
        ));
    };
    let method_len = *method_len as usize;
    if method_len > frame.payload.len() {
        return Err(format!(
            "method length {method_len} exceeds the payload of {} bytes",
            frame.payload.len()
        ));
    }
    let mut arg = frame.payload;
    let method = arg.split_to(method_len);
    Ok(Request {
        seq: *seq,
        method,
        codec: Codec::from_flags(frame.flags),
        arg,
    })
}

/// Why a connection ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The client closed it.
    Closed,
    Stop,
    /// The client broke the framing, or could not be written to.
    Dropped,
}

type Writer = Arc<Mutex<BoxWrite>>;

async fn connection(
    reader: BoxRead,
    writer: BoxWrite,
    ctx: Arc<RpcContext>,
    stop: CancellationToken,
) {
    let limits = ctx.limits();
    let mut frames = FramedRead::new(reader, FrameCodec::new(limits.max_frame_size));
    let writer: Writer = Arc::new(Mutex::new(writer));
    let in_flight = Arc::new(Semaphore::new(limits.max_in_flight.max(1)));
    let mut slow_calls = JoinSet::new();
    tracing::debug!("RPC client connected");

    let end = loop {
        while slow_calls.try_join_next().is_some() {}
        let next = tokio::select! {
            _ = stop.cancelled() => break End::Stop,
            next = frames.next() => next,
        };
        let request = match next {
            None => break End::Closed,
            Some(Err(error)) => {
                let error = describe_frame_error(&error);
                tracing::warn!(%error, "RPC client sent an invalid frame; disconnecting it");
                break End::Dropped;
            }
            Some(Ok(frame)) => match parse(frame) {
                Ok(r) => r,
                Err(error) => {
                    tracing::warn!(%error, "RPC client sent a malformed request; disconnecting it");
                    break End::Dropped;
                }
            },
        };
        let permit = tokio::select! {
            _ = stop.cancelled() => break End::Stop,
            permit = in_flight.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break End::Stop,
            },
        };
        let name = String::from_utf8_lossy(&request.method).into_owned();
        let method = match ctx.resolve(&name) {
            Ok(m) => m,
            Err(text) => {
                drop(permit);
                let reply = encode_reply(&request, Err(text));
                if !write(&writer, reply, limits.write_timeout).await {
                    break End::Dropped;
                }
                continue;
            }
        };
        if method.is_slow() {
            let (ctx, writer) = (ctx.clone(), writer.clone());
            slow_calls.spawn(
                async move {
                    let reply = answer(&ctx, method, &name, request).await;
                    write(&writer, reply, limits.write_timeout).await;
                    drop(permit);
                }
                .in_current_span(),
            );
        } else {
            let reply = answer(&ctx, method, &name, request).await;
            drop(permit);
            if !write(&writer, reply, limits.write_timeout).await {
                break End::Dropped;
            }
        }
    };

    // Close the connection now (a client that broke the framing must not wait for
    // slow calls), but let calls already accepted finish: a client may well send
    // `resetter.Reset` and hang up. Those calls are bounded by the pool's own timeouts;
    // only on shutdown are they cut after the grace period.
    drop(frames);
    let _ = tokio::time::timeout(limits.write_timeout, async {
        writer.lock().await.shutdown().await
    })
    .await;
    let all_done = async { while slow_calls.join_next().await.is_some() {} };
    if end == End::Stop {
        if tokio::time::timeout(limits.shutdown_grace, all_done)
            .await
            .is_err()
        {
            slow_calls.abort_all();
        }
    } else {
        all_done.await;
    }
    tracing::debug!(?end, "RPC client disconnected");
}

/// The codec's errors speak of workers; say what an RPC client did wrong instead.
fn describe_frame_error(e: &RelayError) -> String {
    match e {
        RelayError::Crc { .. } | RelayError::CouldNotOpen(_) => {
            "the header CRC does not match: not a Goridge client".to_string()
        }
        RelayError::Truncated { .. } => "the connection ended in the middle of a frame".to_string(),
        other => other.to_string(),
    }
}

async fn answer(ctx: &RpcContext, method: Method, name: &str, request: Request) -> BytesMut {
    let started = tokio::time::Instant::now();
    let result = methods::call(ctx, method, name, request.codec, &request.arg).await;
    match &result {
        Ok(_) => {
            tracing::debug!(method = name, seq = request.seq, elapsed = ?started.elapsed(), "RPC call")
        }
        Err(error) => tracing::debug!(method = name, seq = request.seq, %error, "RPC call failed"),
    }
    encode_reply(&request, result)
}

/// The reply frame: same seq and method; the codec flag, plus ERROR and the text on
/// failure.
fn encode_reply(request: &Request, result: Result<Vec<u8>, String>) -> BytesMut {
    let options =
        Options::from_slice(&[request.seq, request.method.len() as u32]).unwrap_or_default();
    let (flags, body) = match result {
        Ok(body) => (request.codec.flag(), body),
        Err(text) => (request.codec.flag() | flags::ERROR, text.into_bytes()),
    };
    let mut buf =
        BytesMut::with_capacity(frame::HEADER_LEN + 8 + request.method.len() + body.len());
    frame::encode_parts(&mut buf, flags, 0, 0, &options, &[&request.method, &body]);
    buf
}

/// Writes one reply with one write; `false` when the client is gone or too slow.
async fn write(writer: &Writer, reply: BytesMut, timeout: Duration) -> bool {
    let written = tokio::time::timeout(timeout, async {
        let mut w = writer.lock().await;
        w.write_all(&reply).await?;
        w.flush().await
    })
    .await;
    match written {
        Ok(Ok(())) => true,
        Ok(Err(error)) => {
            tracing::debug!(%error, "cannot write an RPC reply");
            false
        }
        Err(_) => {
            tracing::warn!(
                ?timeout,
                "RPC client does not read its replies; disconnecting it"
            );
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(flags: u8, options: &[u32], payload: &'static [u8]) -> Frame {
        Frame::new(flags, Options::from_slice(options).unwrap(), payload)
    }

    #[test]
    fn golden_reset_reply_bytes() {
        // docs/wire-protocol.md §1.5(h)
        let r = parse(request(0x08, &[1, 14], b"resetter.Reset\"http\"")).unwrap();
        assert_eq!(r.seq, 1);
        assert_eq!(&r.method[..], b"resetter.Reset");
        assert_eq!(&r.arg[..], b"\"http\"");
        let reply = encode_reply(&r, Ok(b"true".to_vec()));
        let mut want = vec![
            0x15, 0x08, 0x12, 0x00, 0x00, 0x00, 0x5E, 0xE6, 0xB9, 0x28, 0x00, 0x00, 0x01, 0x00,
            0x00, 0x00, 0x0E, 0x00, 0x00, 0x00,
        ];
        want.extend_from_slice(b"resetter.Resettrue");
        assert_eq!(&reply[..], &want[..]);
    }

    #[test]
    fn error_replies_carry_the_codec_and_error_flags() {
        let r = parse(request(0x08, &[7, 8], b"nope.Foo")).unwrap();
        let reply = encode_reply(&r, Err("rpc: can't find service nope.Foo".into()));
        assert_eq!(reply[1], 0x48);
        assert!(reply.ends_with(b"nope.Foorpc: can't find service nope.Foo"));
    }

    #[test]
    fn malformed_requests_are_refused() {
        assert!(parse(request(0x08, &[1], b"x")).is_err());
        assert!(parse(request(0x08, &[1, 2, 3], b"xyz")).is_err());
        let e = parse(request(0x08, &[1, 99], b"short")).err().unwrap();
        assert!(e.contains("exceeds the payload"), "{e}");
        // An empty method is framed correctly; resolving it fails later (error reply).
        assert!(parse(request(0x08, &[1, 0], b"")).is_ok());
    }
}
