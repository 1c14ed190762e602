//! A small HTTP(S) GET client for scrapes and PromQL, on the hyper-util and hyper-rustls
//! stack kube already brings in (no second HTTP stack). Every request has a timeout and
//! every body a size cap.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use rustls_platform_verifier::ConfigVerifierExt;

use super::Error;

/// Largest body read (a pacer exposition is a few KiB; a PromQL answer for one app small).
pub const MAX_BODY: usize = 8 * 1024 * 1024;

/// GET client with a timeout.
#[derive(Clone, Debug)]
pub struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    timeout: Duration,
}

impl HttpClient {
    /// A client verifying TLS peers with the platform's trust store.
    ///
    /// # Errors
    /// [`Error::Config`] when no TLS configuration can be built.
    pub fn new(timeout: Duration) -> Result<Self, Error> {
        let tls = rustls::ClientConfig::with_platform_verifier()
            .map_err(|e| Error::Config(format!("TLS setup: {e}")))?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Self { client, timeout })
    }

    /// GETs `url` and returns the body of a 2xx answer.
    ///
    /// # Errors
    /// [`Error::Request`] on connection failure or timeout, [`Error::Status`] on a non-2xx
    /// answer.
    pub async fn get(&self, url: &str) -> Result<Bytes, Error> {
        self.get_with_token(url, None).await
    }

    /// GETs `url` with `Authorization: Bearer <token>` when a token is given.
    ///
    /// # Errors
    /// As [`HttpClient::get`].
    pub async fn get_with_token(&self, url: &str, token: Option<&str>) -> Result<Bytes, Error> {
        let fail = |reason: String| Error::Request {
            url: url.to_owned(),
            reason,
        };
        let uri: http::Uri = url.parse().map_err(|e| fail(format!("bad URL: {e}")))?;
        let mut request =
            http::Request::get(uri).header(http::header::ACCEPT, "text/plain, application/json");
        if let Some(token) = token {
            let mut value = http::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| fail("the bearer token is not a valid header value".into()))?;
            value.set_sensitive(true);
            request = request.header(http::header::AUTHORIZATION, value);
        }
        let request = request
            .body(Empty::new())
            .map_err(|e| fail(e.to_string()))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| fail(format!("reading the body: {e}")))?
                .to_bytes();
            if !status.is_success() {
                return Err(Error::Status {
                    url: url.to_owned(),
                    status: status.as_u16(),
                });
            }
            Ok(body)
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| fail(format!("no answer within {:?}", self.timeout)))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Serves one canned HTTP answer on a loopback port.
    async fn serve_once(answer: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await.unwrap();
            sock.write_all(answer.as_bytes()).await.unwrap();
            sock.shutdown().await.unwrap();
        });
        format!("http://{addr}/metrics")
    }

    #[tokio::test]
    async fn gets_a_body() {
        let url =
            serve_once("HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello")
                .await;
        let client = HttpClient::new(Duration::from_secs(5)).unwrap();
        assert_eq!(
            client.get(&url).await.unwrap(),
            Bytes::from_static(b"hello")
        );
    }

    #[tokio::test]
    async fn non_success_is_an_error_without_the_body() {
        let url = serve_once("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 11\r\nconnection: close\r\n\r\nsecret-body").await;
        let client = HttpClient::new(Duration::from_secs(5)).unwrap();
        match client.get(&url).await {
            Err(e @ Error::Status { status: 503, .. }) => {
                assert!(!e.to_string().contains("secret-body"), "{e}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn silence_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _hold = tokio::spawn(async move {
            let (_sock, _) = listener.accept().await.unwrap();
            std::future::pending::<()>().await;
        });
        let client = HttpClient::new(Duration::from_millis(200)).unwrap();
        let err = client.get(&format!("http://{addr}/")).await.unwrap_err();
        assert!(err.to_string().contains("no answer within"), "{err}");
    }
}
