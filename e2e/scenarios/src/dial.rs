//! How the scenarios' HTTP clients reach a pod: straight from the host (the node
//! stand-in's pods listen on loopback addresses), or with sockets made inside the real
//! node's network namespace (its pods' addresses exist only there).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use pacer_e2e::NetNs;
use tokio::net::TcpStream;

/// A hyper connector: plain TCP, from the host or from inside a network namespace.
#[derive(Clone, Debug, Default)]
pub enum Dial {
    /// The host's network.
    #[default]
    Host,
    /// The real node's network namespace.
    Ns(NetNs),
}

impl Dial {
    /// A TCP connection to `addr`.
    ///
    /// # Errors
    /// When it fails.
    pub async fn connect(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        let stream = match self {
            Self::Host => TcpStream::connect(addr).await?,
            Self::Ns(ns) => ns.connect(addr).await?,
        };
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

impl tower::Service<http::Uri> for Dial {
    type Response = TokioIo<TcpStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let dial = self.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| io::Error::other(format!("no host in {uri}")))?;
            let ip = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .map_err(|e| io::Error::other(format!("{host} is not an address: {e}")))?;
            let port = uri.port_u16().unwrap_or(80);
            Ok(TokioIo::new(dial.connect(SocketAddr::new(ip, port)).await?))
        })
    }
}

/// One answer to [`Dial::send`].
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub status: http::StatusCode,
    /// The response's head fields.
    pub headers: http::HeaderMap,
    /// The body, whole.
    pub body: bytes::Bytes,
}

impl Answer {
    /// The body as text (lossy).
    #[must_use]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Dial {
    /// Sends one request on a new connection to `addr` and reads the whole answer (bounded:
    /// 30 s).
    ///
    /// # Errors
    /// When the connection, the exchange or the body fails, or it takes too long.
    pub async fn send(
        &self,
        addr: SocketAddr,
        request: http::Request<http_body_util::Full<bytes::Bytes>>,
    ) -> anyhow::Result<Answer> {
        use anyhow::Context as _;
        use http_body_util::BodyExt as _;
        let exchange = async {
            let io = TokioIo::new(self.connect(addr).await?);
            let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
            let driver = tokio::spawn(connection);
            let response = sender.send_request(request).await?;
            let (head, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            driver.abort();
            anyhow::Ok(Answer {
                status: head.status,
                headers: head.headers,
                body,
            })
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), exchange)
            .await
            .with_context(|| format!("{addr}: no answer within 30 s"))?
    }
}
