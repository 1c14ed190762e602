//! A Goridge RPC client: one connection, one call at a time (like PHP's `RPC`), every
//! wait bounded. Works against pacer and against RoadRunner.

use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::{TcpStream, UnixStream};

use super::RpcAddr;
use super::view::{WorkerList, WorkerView};
use crate::relay::{FrameCodec, Options, Relay, RelayError, flags};

/// Largest reply the client accepts (`rpc.Config` of a big config is the largest).
const MAX_REPLY: usize = 64 << 20;

/// Why a call failed. The texts are meant for a person at a terminal.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid RPC address {0:?}: expected tcp://host:port or unix://path")]
    Address(String),
    #[error("RPC not reachable at {addr}: {reason}")]
    Unreachable { addr: String, reason: String },
    #[error("RPC at {addr} did not answer {method} within {after:?}")]
    Timeout {
        addr: String,
        method: String,
        after: Duration,
    },
    #[error("RPC at {addr} closed the connection during {method}: {reason}")]
    Broken {
        addr: String,
        method: String,
        reason: String,
    },
    /// The server answered with an error (the ERROR flag).
    #[error("{method} failed: {message}")]
    Service { method: String, message: String },
    #[error("RPC at {addr} sent a malformed reply to {method}: {reason}")]
    Protocol {
        addr: String,
        method: String,
        reason: String,
    },
}

impl ClientError {
    /// Whether the server could not be reached or stopped answering (as opposed to
    /// answering with an error).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            ClientError::Unreachable { .. }
                | ClientError::Timeout { .. }
                | ClientError::Broken { .. }
        )
    }
}

/// `connection refused` rather than `Connection refused (os error 111)`.
fn describe(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused | ConnectionReset | ConnectionAborted | NotFound | PermissionDenied
        | TimedOut | AddrNotAvailable | UnexpectedEof => e.kind().to_string(),
        _ => e.to_string(),
    }
}

/// One RPC connection.
#[derive(Debug)]
pub struct RpcClient {
    relay: Relay,
    addr: String,
    seq: u32,
    timeout: Duration,
}

impl RpcClient {
    /// Connects to `addr` (`tcp://host:port` or `unix://path`). `timeout` bounds the
    /// connection and, by default, every call.
    pub async fn connect(addr: &str, timeout: Duration) -> Result<RpcClient, ClientError> {
        let parsed: RpcAddr = addr
            .parse()
            .map_err(|_| ClientError::Address(addr.to_string()))?;
        let unreachable = |reason: String| ClientError::Unreachable {
            addr: addr.to_string(),
            reason,
        };
        let codec = FrameCodec::new(MAX_REPLY);
        let connecting = async {
            match &parsed {
                RpcAddr::Tcp(a) => {
                    let s = TcpStream::connect(a).await?;
                    let _ = s.set_nodelay(true);
                    let (r, w) = s.into_split();
                    Ok::<_, std::io::Error>(Relay::new(r, w, codec))
                }
                RpcAddr::Unix(p) => {
                    let (r, w) = UnixStream::connect(p).await?.into_split();
                    Ok(Relay::new(r, w, codec))
                }
            }
        };
        let relay = match tokio::time::timeout(timeout, connecting).await {
            Ok(Ok(relay)) => relay,
            Ok(Err(e)) => return Err(unreachable(describe(&e))),
            Err(_) => return Err(unreachable(format!("no connection within {timeout:?}"))),
        };
        Ok(RpcClient {
            relay,
            addr: parsed.to_string(),
            seq: 1,
            timeout,
        })
    }

    /// The per-call timeout from now on.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Calls `method` with a JSON argument and decodes the JSON result.
    pub async fn call_json<A, T>(&mut self, method: &str, arg: &A) -> Result<T, ClientError>
    where
        A: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let body = serde_json::to_vec(arg).map_err(|e| ClientError::Protocol {
            addr: self.addr.clone(),
            method: method.to_string(),
            reason: format!("cannot encode the argument: {e}"),
        })?;
        let reply = self.call(method, flags::CODEC_JSON, &body).await?;
        serde_json::from_slice(&reply).map_err(|e| ClientError::Protocol {
            addr: self.addr.clone(),
            method: method.to_string(),
            reason: format!("the result is not the expected JSON ({e})"),
        })
    }

    /// Calls `method` with the raw codec (bytes in, bytes out), e.g. `rpc.Config`.
    pub async fn call_raw(&mut self, method: &str, arg: &[u8]) -> Result<Bytes, ClientError> {
        self.call(method, flags::CODEC_RAW, arg).await
    }

    /// Calls `method` with the protobuf codec (encoded message in, encoded message out),
    /// e.g. `jobs.Push`.
    pub async fn call_proto(&mut self, method: &str, arg: &[u8]) -> Result<Bytes, ClientError> {
        self.call(method, flags::CODEC_PROTO, arg).await
    }

    /// Sends one request and waits for the reply with its seq.
    async fn call(&mut self, method: &str, codec: u8, body: &[u8]) -> Result<Bytes, ClientError> {
        let seq = self.seq;
        self.seq = self.seq.checked_add(1).unwrap_or(1);
        let (addr, timeout) = (self.addr.clone(), self.timeout);
        let broken = |e: RelayError| match e {
            RelayError::Io(_) | RelayError::Closed | RelayError::Truncated { .. } => {
                ClientError::Broken {
                    addr: addr.clone(),
                    method: method.to_string(),
                    reason: match e {
                        RelayError::Io(io) => describe(&io),
                        other => other.to_string(),
                    },
                }
            }
            other => ClientError::Protocol {
                addr: addr.clone(),
                method: method.to_string(),
                reason: other.to_string(),
            },
        };
        let options = Options::from_slice(&[seq, method.len() as u32]).unwrap_or_default();
        let exchange = async {
            self.relay
                .send_parts(codec, 0, &options, &[method.as_bytes(), body])
                .await
                .map_err(&broken)?;
            loop {
                let frame = self.relay.recv().await.map_err(&broken)?;
                let [reply_seq, method_len] = frame.options.as_slice() else {
                    return Err(ClientError::Protocol {
                        addr: addr.clone(),
                        method: method.to_string(),
                        reason: format!(
                            "{} options instead of [seq, method length]",
                            frame.options.len()
                        ),
                    });
                };
                // A late reply to an earlier call that timed out.
                if *reply_seq != seq {
                    continue;
                }
                let method_len = *method_len as usize;
                if method_len > frame.payload.len() {
                    return Err(ClientError::Protocol {
                        addr: addr.clone(),
                        method: method.to_string(),
                        reason: "the method length exceeds the payload".into(),
                    });
                }
                let result = frame.payload.slice(method_len..);
                if frame.has_flag(flags::ERROR) {
                    return Err(ClientError::Service {
                        method: method.to_string(),
                        message: String::from_utf8_lossy(&result).into_owned(),
                    });
                }
                return Ok(result);
            }
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout {
                addr: self.addr.clone(),
                method: method.to_string(),
                after: timeout,
            }),
        }
    }

    /// `informer.List`: the pools that have workers.
    pub async fn plugins(&mut self) -> Result<Vec<String>, ClientError> {
        self.call_json("informer.List", &true).await
    }

    /// `informer.Workers`: the workers of `plugin`; empty for an unknown plugin.
    pub async fn workers(&mut self, plugin: &str) -> Result<Vec<WorkerView>, ClientError> {
        let list: WorkerList = self.call_json("informer.Workers", plugin).await?;
        Ok(list.workers.unwrap_or_default())
    }

    /// `informer.AddWorker`.
    pub async fn add_worker(&mut self, plugin: &str) -> Result<(), ClientError> {
        let _: serde_json::Value = self.call_json("informer.AddWorker", plugin).await?;
        Ok(())
    }

    /// `informer.RemoveWorker`.
    pub async fn remove_worker(&mut self, plugin: &str) -> Result<(), ClientError> {
        let _: serde_json::Value = self.call_json("informer.RemoveWorker", plugin).await?;
        Ok(())
    }

    /// `resetter.List`: the pools that can be reset.
    pub async fn resettable(&mut self) -> Result<Vec<String>, ClientError> {
        self.call_json("resetter.List", &true).await
    }

    /// `resetter.Reset`: a rolling reset of `plugin`; returns when it is done.
    pub async fn reset(&mut self, plugin: &str) -> Result<(), ClientError> {
        let done: bool = self.call_json("resetter.Reset", plugin).await?;
        if done {
            Ok(())
        } else {
            Err(ClientError::Service {
                method: "resetter.Reset".into(),
                message: "the server answered false".into(),
            })
        }
    }

    /// `rpc.Version`.
    pub async fn version(&mut self) -> Result<String, ClientError> {
        self.call_json("rpc.Version", &true).await
    }

    /// `rpc.Config` (raw codec): the server's effective configuration.
    pub async fn config(&mut self) -> Result<serde_json::Value, ClientError> {
        let raw = self.call_raw("rpc.Config", b"").await?;
        serde_json::from_slice(&raw).map_err(|e| ClientError::Protocol {
            addr: self.addr.clone(),
            method: "rpc.Config".into(),
            reason: format!("the config is not JSON ({e})"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unreachable_servers_are_named_in_the_error() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("tcp://{}", l.local_addr().unwrap());
        drop(l);
        let err = RpcClient::connect(&addr, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("RPC not reachable at {addr}: connection refused")
        );
        assert!(err.is_unavailable());
        let err = RpcClient::connect("unix:///nonexistent/pacer.sock", Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("RPC not reachable at unix:///nonexistent/pacer.sock: "),
            "{err}"
        );
        let err = RpcClient::connect("localhost:6001", Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Address(_)), "{err}");
    }
}
