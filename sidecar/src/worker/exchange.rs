//! A live [`Worker`] (a relay to a process that passed the PID handshake) and the
//! exchange of one job over it: the request frame, the reply (single or streamed),
//! PING/PONG, STOP, and what a half-finished exchange means for reuse.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::info::{WorkerInfo, WorkerState};
use crate::relay::{self, Frame, Options, Relay, RelayError, flags, stream};

/// A job or a reply: codec flags, context (header) and body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Payload {
    /// Codec flags of the frame (e.g. [`flags::CODEC_JSON`]).
    pub codec: u8,
    pub context: Bytes,
    pub body: Bytes,
}

impl Payload {
    pub fn new(codec: u8, context: impl Into<Bytes>, body: impl Into<Bytes>) -> Self {
        Payload {
            codec,
            context: context.into(),
            body: body.into(),
        }
    }
}

/// What a worker answered to a job.
#[derive(Debug)]
pub enum Reply {
    /// The whole response.
    Single(Payload),
    /// The first frame of a streamed response; call [`Worker::next_chunk`] for the rest.
    Stream(Payload),
}

/// Why a job did not produce a reply.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The PHP code reported an error (`$worker->error()`); the worker is fine.
    #[error("worker error: {0}")]
    Soft(String),
    /// The worker asked to be replaced (`$worker->stop()`); the job was not run.
    #[error("the worker asked to be stopped")]
    StopRequested,
    /// The relay failed or the worker broke the protocol; the worker must go.
    #[error(transparent)]
    Relay(#[from] RelayError),
    #[error("malformed response frame: {0}")]
    Malformed(String),
    /// The job could not be written because the worker is gone; it never ran.
    #[error("the worker was gone before it took the job: {0}")]
    NotDelivered(std::io::Error),
}

fn is_peer_gone(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::BrokenPipe
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
    )
}

impl ExecError {
    /// Whether the worker can take another job after this error.
    pub fn worker_survives(&self) -> bool {
        matches!(self, ExecError::Soft(_))
    }
}

/// Where the relay stands between frames; decides what a lease must do with a worker
/// whose job was abandoned half way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exchange {
    /// Nothing in flight: the worker can take a job.
    Idle,
    /// A job was sent; its reply has not been read.
    AwaitingReply,
    /// A streamed reply is being read.
    Streaming,
}

/// A live worker: a relay to a process that passed the PID handshake.
#[derive(Debug)]
pub struct Worker {
    relay: Relay,
    info: Arc<WorkerInfo>,
    exchange: Exchange,
}

impl Worker {
    /// A worker on a relay whose handshake is done.
    pub fn new(relay: Relay, info: Arc<WorkerInfo>) -> Worker {
        Worker {
            relay,
            info,
            exchange: Exchange::Idle,
        }
    }

    pub fn info(&self) -> &Arc<WorkerInfo> {
        &self.info
    }

    pub fn exchange(&self) -> Exchange {
        self.exchange
    }

    /// Sends `job` and reads the first reply frame.
    pub async fn exec(&mut self, job: &Payload) -> Result<Reply, ExecError> {
        debug_assert_eq!(self.exchange, Exchange::Idle);
        self.exchange = Exchange::AwaitingReply;
        let options = Options::one(job.context.len() as u32);
        if let Err(e) = self
            .relay
            .send_parts(job.codec, 0, &options, &[&job.context, &job.body])
            .await
        {
            return Err(match e {
                // Nobody reads the other end: the worker died before it could take the
                // job, so the job never ran and may run elsewhere.
                RelayError::Io(io) if is_peer_gone(&io) => ExecError::NotDelivered(io),
                e => e.into(),
            });
        }
        let frame = self.relay.recv().await?;
        let (payload, more) = self.classify(frame).await?;
        if more {
            self.exchange = Exchange::Streaming;
            Ok(Reply::Stream(payload))
        } else {
            self.exchange = Exchange::Idle;
            Ok(Reply::Single(payload))
        }
    }

    /// Reads the next frame of a streamed reply; `Ok(None)` after the last one.
    pub async fn next_chunk(&mut self) -> Result<Option<Payload>, ExecError> {
        if self.exchange != Exchange::Streaming {
            return Ok(None);
        }
        let frame = self.relay.recv().await?;
        let (payload, more) = self.classify(frame).await?;
        if !more {
            self.exchange = Exchange::Idle;
        }
        Ok(Some(payload))
    }

    /// Cancels a streamed reply (the client went away): sends STOP and discards frames
    /// until the worker ends the stream. Returns whether the worker is usable again.
    pub async fn cancel_stream(&mut self, timeout: Duration) -> bool {
        if self.exchange != Exchange::Streaming {
            return self.exchange == Exchange::Idle;
        }
        let drain = async {
            self.relay
                .send_parts(0, stream::STOP, &Options::NONE, &[])
                .await?;
            loop {
                let frame = self.relay.recv().await?;
                if frame.has_flag(flags::ERROR) || !frame.has_stream_bit(stream::STREAM) {
                    return Ok::<_, RelayError>(());
                }
            }
        };
        match tokio::time::timeout(timeout, drain).await {
            Ok(Ok(())) => {
                self.exchange = Exchange::Idle;
                true
            }
            _ => false,
        }
    }

    /// Waits for the reply of a job whose requester gave up, and discards it, so the
    /// worker can be reused. Returns whether it can.
    pub async fn abandon(&mut self, timeout: Duration) -> bool {
        match self.exchange {
            Exchange::Idle => true,
            Exchange::Streaming => self.cancel_stream(timeout).await,
            Exchange::AwaitingReply => {
                let finished = tokio::time::timeout(timeout, async {
                    let frame = self.relay.recv().await?;
                    self.classify(frame).await
                })
                .await;
                match finished {
                    Ok(Ok((_, false))) | Ok(Err(ExecError::Soft(_))) => {
                        self.exchange = Exchange::Idle;
                        true
                    }
                    Ok(Ok((_, true))) => {
                        self.exchange = Exchange::Streaming;
                        self.cancel_stream(timeout).await
                    }
                    _ => false,
                }
            }
        }
    }

    /// Checks a reply frame and answers a PING. Returns the payload and whether more
    /// frames of this reply follow.
    async fn classify(&mut self, frame: Frame) -> Result<(Payload, bool), ExecError> {
        if frame.has_flag(flags::ERROR) {
            self.exchange = Exchange::Idle;
            return Err(ExecError::Soft(
                String::from_utf8_lossy(&frame.payload).into_owned(),
            ));
        }
        if frame.has_flag(flags::CONTROL) {
            return Err(ExecError::Malformed(format!(
                "unexpected control frame during a job: \"{}\"",
                relay::frame::printable(&frame.payload, 200)
            )));
        }
        if frame.options.len() != 1 {
            return Err(ExecError::Malformed(format!(
                "a response frame needs exactly one option (the context length), got {}",
                frame.options.len()
            )));
        }
        let ctx_len = frame.options.as_slice()[0] as usize;
        if ctx_len > frame.payload.len() {
            return Err(ExecError::Malformed(format!(
                "context length {ctx_len} exceeds the payload of {} bytes",
                frame.payload.len()
            )));
        }
        let mut body = frame.payload;
        let context = body.split_to(ctx_len);
        let more = frame.byte10 & stream::STREAM != 0;
        if body.is_empty() && !more && is_stop_request(&context) {
            self.exchange = Exchange::Idle;
            return Err(ExecError::StopRequested);
        }
        if frame.byte10 & stream::PING != 0 {
            self.relay
                .send_parts(0, stream::PONG, &Options::NONE, &[])
                .await?;
        }
        Ok((
            Payload {
                codec: frame.flags,
                context,
                body,
            },
            more,
        ))
    }

    /// Asks the worker to exit (control stop frame) and gives it `grace` before its
    /// process group is killed. Consumes the worker.
    pub async fn stop(mut self, grace: Duration) {
        self.info.set_state(WorkerState::Stopping);
        if self.exchange == Exchange::Idle {
            let body: &[u8] = br#"{"stop":true}"#;
            let sent = tokio::time::timeout(
                Duration::from_secs(1).min(grace),
                self.relay.send_parts(
                    flags::CONTROL | flags::CODEC_JSON,
                    0,
                    &Options::NONE,
                    &[body],
                ),
            )
            .await;
            if matches!(sent, Ok(Ok(()))) {
                self.info.process().stop_within(grace);
                return;
            }
        }
        self.info.process().kill();
    }

    /// Kills the worker's process group now. Consumes the worker.
    pub fn kill(self) {
        self.info.set_state(WorkerState::Stopping);
        self.info.process().kill();
    }
}

/// `{"stop":true}` as the context of a data frame with an empty body: the worker asks to
/// be replaced (docs/wire-protocol.md §2.3).
fn is_stop_request(context: &[u8]) -> bool {
    if context.is_empty() || context.len() > 64 {
        return false;
    }
    #[derive(serde::Deserialize)]
    struct Stop {
        stop: bool,
    }
    serde_json::from_slice::<Stop>(context).is_ok_and(|s| s.stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_request_is_recognised_only_in_its_exact_shape() {
        assert!(is_stop_request(br#"{"stop":true}"#));
        assert!(is_stop_request(br#"{ "stop" : true }"#));
        assert!(!is_stop_request(br#"{"stop":false}"#));
        assert!(!is_stop_request(br#"{"status":200,"headers":{}}"#));
        assert!(!is_stop_request(b""));
    }
}
