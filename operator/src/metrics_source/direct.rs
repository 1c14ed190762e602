//! [`Direct`]: scrape every pod's pacer metrics endpoint and aggregate over the window.
//!
//! Each call scrapes the target's pods concurrently (bounded) and hands the answers to
//! [`Windows`] (pure: appends them, drops what fell out of the window and pods that are
//! gone, aggregates). It lives behind a `std::sync::Mutex` held only for that update,
//! never across an await. The first call for an app therefore returns no pods (one scrape
//! is not a window); from the second on, the tuner gets real aggregates.

use std::sync::Mutex;

use futures_util::future::BoxFuture;
use futures_util::{StreamExt, stream};

use super::http::HttpClient;
use super::prom_text::{self, PacerMetrics};
use super::window::Windows;
use super::{Error, METRICS_PORT, MetricsSource, Target};
use crate::sample::AppSample;

/// Scrapes in flight at once per call.
const CONCURRENCY: usize = 8;

/// Scrapes pods directly.
#[derive(Debug)]
pub struct Direct {
    http: HttpClient,
    port: u16,
    windows: Mutex<Windows>,
}

impl Direct {
    /// A direct source scraping port [`METRICS_PORT`].
    #[must_use]
    pub fn new(http: HttpClient) -> Self {
        Self::with_port(http, METRICS_PORT)
    }

    /// A direct source scraping another port (tests run pacer on loopback ports).
    #[must_use]
    pub fn with_port(http: HttpClient, port: u16) -> Self {
        Self {
            http,
            port,
            windows: Mutex::new(Windows::new()),
        }
    }

    fn url(&self, ip: &str) -> String {
        if ip.contains(':') {
            format!("http://[{ip}]:{}/metrics", self.port)
        } else {
            format!("http://{ip}:{}/metrics", self.port)
        }
    }

    async fn scrape(&self, ip: &str) -> Result<PacerMetrics, Error> {
        let url = self.url(ip);
        let body = self.http.get(&url).await?;
        let text = std::str::from_utf8(&body).map_err(|e| Error::Parse {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        let samples = prom_text::parse(text).map_err(|e| Error::Parse {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        PacerMetrics::from_samples(&samples).ok_or_else(|| Error::Parse {
            url,
            reason: format!("no pacer_workers series for pool {:?}", prom_text::POOL),
        })
    }

    async fn sample_inner(&self, target: &Target) -> Result<AppSample, Error> {
        let with_ip: Vec<(String, String)> = target
            .pods
            .iter()
            .filter_map(|p| p.ip.clone().map(|ip| (p.name.clone(), ip)))
            .collect();
        let results: Vec<(String, Result<PacerMetrics, Error>)> = stream::iter(with_ip)
            .map(|(name, ip)| async move {
                let result = self.scrape(&ip).await;
                (name, result)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;

        let mut failures = Vec::new();
        let mut fresh = Vec::new();
        for (name, result) in results {
            match result {
                Ok(metrics) => fresh.push((name, metrics)),
                Err(error) => {
                    tracing::debug!(pod = %name, %error, "scrape failed");
                    failures.push(error);
                }
            }
        }
        let scraped = !fresh.is_empty();
        let pods = {
            let names: Vec<&str> = target.pods.iter().map(|p| p.name.as_str()).collect();
            self.windows
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .record(
                    (&target.namespace, &target.app),
                    &names,
                    fresh,
                    target.now,
                    target.window,
                )
        };
        if !scraped && !failures.is_empty() {
            let failed = failures.len();
            let first = Box::new(failures.swap_remove(0));
            return Err(Error::AllPodsFailed { failed, first });
        }
        Ok(AppSample {
            window: target.window,
            pods,
        })
    }
}

impl MetricsSource for Direct {
    fn sample<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<AppSample, Error>> {
        Box::pin(self.sample_inner(target))
    }

    fn forget(&self, namespace: &str, app: &str) {
        self.windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .forget(namespace, app);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics_source::PodTarget;
    use jiff::Timestamp;
    use pacer_crds::MetricsSourceKind;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A fake pacer metrics endpoint whose job counters advance by 300 jobs (3 busy-seconds)
    /// per scrape.
    async fn fake_pacer() -> (u16, Arc<AtomicU64>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let scrapes = Arc::new(AtomicU64::new(0));
        let counter = scrapes.clone();
        tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let body = format!(
                    "pacer_workers{{pool=\"http\",state=\"ready\"}} 2\n\
                     pacer_workers{{pool=\"http\",state=\"working\"}} 2\n\
                     pacer_job_duration_seconds_sum{{pool=\"http\"}} {}\n\
                     pacer_job_duration_seconds_count{{pool=\"http\"}} {}\n",
                    3 * n,
                    300 * n
                );
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(answer.as_bytes()).await;
            }
        });
        (port, scrapes)
    }

    fn target(pods: Vec<PodTarget>, secs: i64) -> Target {
        Target {
            namespace: "ns".into(),
            app: "app".into(),
            pods,
            source: MetricsSourceKind::Direct,
            prometheus_url: None,
            bearer_token: None,
            window: Duration::from_secs(60),
            now: Timestamp::from_second(1_700_000_000 + secs).unwrap(),
        }
    }

    fn pod(ip: &str) -> PodTarget {
        PodTarget {
            name: "app-abc-1".into(),
            ip: Some(ip.into()),
            ..PodTarget::default()
        }
    }

    #[tokio::test]
    async fn second_scrape_gives_a_window() {
        let (port, scrapes) = fake_pacer().await;
        let direct = Direct::with_port(HttpClient::new(Duration::from_secs(5)).unwrap(), port);
        let first = direct
            .sample(&target(vec![pod("127.0.0.1")], 0))
            .await
            .unwrap();
        assert!(first.pods.is_empty(), "one scrape is not a window");
        let second = direct
            .sample(&target(vec![pod("127.0.0.1")], 30))
            .await
            .unwrap();
        assert_eq!(second.pods.len(), 1);
        // 300 jobs and 3 busy-seconds per 30 s.
        assert_eq!(second.pods[0].jobs_per_second, 10.0);
        assert_eq!(second.pods[0].busy_workers, 2.0);
        assert_eq!(scrapes.load(Ordering::SeqCst), 2);

        // Old scrapes leave the window: 200 s later only one fresh scrape remains.
        let late = direct
            .sample(&target(vec![pod("127.0.0.1")], 230))
            .await
            .unwrap();
        assert!(late.pods.is_empty());

        // A deleted pod is forgotten; so is a deleted app.
        direct.sample(&target(vec![], 240)).await.unwrap();
        assert_eq!(direct.windows.lock().unwrap().pods_of("ns", "app"), Some(0));
        direct.forget("ns", "app");
        assert_eq!(direct.windows.lock().unwrap().pods_of("ns", "app"), None);

        // An app nobody asked about for a quarter of an hour is dropped by the next call.
        direct
            .sample(&target(vec![pod("127.0.0.1")], 300))
            .await
            .unwrap();
        let mut other = target(vec![], 300 + 16 * 60);
        other.app = "other".into();
        direct.sample(&other).await.unwrap();
        assert_eq!(direct.windows.lock().unwrap().pods_of("ns", "app"), None);
    }

    #[tokio::test]
    async fn all_pods_failing_is_an_error() {
        // Nothing listens on port 1 of loopback.
        let direct = Direct::with_port(HttpClient::new(Duration::from_secs(2)).unwrap(), 1);
        let err = direct
            .sample(&target(vec![pod("127.0.0.1")], 0))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::AllPodsFailed { failed: 1, .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn pods_without_ip_are_skipped() {
        let direct = Direct::with_port(HttpClient::new(Duration::from_secs(2)).unwrap(), 1);
        let sample = direct
            .sample(&target(
                vec![PodTarget {
                    name: "pending".into(),
                    ip: None,
                    ..PodTarget::default()
                }],
                0,
            ))
            .await
            .unwrap();
        assert!(sample.pods.is_empty());
    }

    #[test]
    fn ipv6_urls_are_bracketed() {
        let direct = Direct::new(HttpClient::new(Duration::from_secs(1)).unwrap());
        assert_eq!(direct.url("fd00::1"), "http://[fd00::1]:2112/metrics");
        assert_eq!(direct.url("10.0.0.7"), "http://10.0.0.7:2112/metrics");
    }
}
