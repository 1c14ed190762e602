//! Reading a pacer's `/metrics` (Prometheus text format) in the scenarios: just enough
//! of the format for pacer's own output (no escapes in label values, no timestamps).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::dial::Dial;

/// One sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Metric name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

/// All samples of one scrape.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scrape(pub Vec<Sample>);

impl Scrape {
    /// Parses the text format.
    #[must_use]
    pub fn parse(text: &str) -> Self {
        let mut out = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, value) = match line.rsplit_once(' ') {
                Some(parts) => parts,
                None => continue,
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    Some((k.trim().to_owned(), v.trim_matches('"').to_owned()))
                })
                .collect();
            out.push(Sample {
                name: name.to_owned(),
                labels,
                value,
            });
        }
        Self(out)
    }

    /// Samples of `name` whose labels include every pair of `labels`.
    pub fn find<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.0.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
        })
    }

    /// Sum of the matching samples (0 when none match).
    #[must_use]
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels).map(|s| s.value).sum()
    }

    /// The pool's target size (`pacer_pool_target_workers{pool="http"}`).
    #[must_use]
    pub fn target_workers(&self) -> f64 {
        self.sum("pacer_pool_target_workers", &[("pool", "http")])
    }

    /// Live workers of the pool (ready + working).
    #[must_use]
    pub fn live_workers(&self) -> f64 {
        self.sum("pacer_workers", &[("pool", "http"), ("state", "ready")])
            + self.sum("pacer_workers", &[("pool", "http"), ("state", "working")])
    }

    /// Workers replaced for `reason` (`max_jobs`, `memory`, …) so far.
    #[must_use]
    pub fn restarts(&self, reason: &str) -> f64 {
        self.sum(
            "pacer_worker_restarts_total",
            &[("pool", "http"), ("reason", reason)],
        )
    }

    /// Memory of each worker slot, bytes.
    #[must_use]
    pub fn worker_memory(&self) -> Vec<f64> {
        self.find("pacer_worker_memory_bytes", &[("pool", "http")])
            .map(|s| s.value)
            .collect()
    }

    /// Jobs each live worker slot has done since it started.
    #[must_use]
    pub fn worker_jobs(&self) -> Vec<f64> {
        self.find("pacer_worker_jobs", &[("pool", "http")])
            .map(|s| s.value)
            .collect()
    }

    /// When the pacer process started (`process_start_time_seconds`).
    #[must_use]
    pub fn start_time(&self) -> Option<f64> {
        self.find("process_start_time_seconds", &[])
            .next()
            .map(|s| s.value)
    }
}

/// Scrapes `http://addr/metrics` from the host.
///
/// # Errors
/// When the request fails or does not answer 200 within 5 s.
pub async fn scrape(addr: SocketAddr) -> Result<Scrape> {
    scrape_via(&Dial::Host, addr).await
}

/// Scrapes `http://addr/metrics` through `dial`.
///
/// # Errors
/// When the request fails or does not answer 200 within 5 s.
pub async fn scrape_via(dial: &Dial, addr: SocketAddr) -> Result<Scrape> {
    let attempt = async {
        let client: Client<_, Empty<bytes::Bytes>> =
            Client::builder(TokioExecutor::new()).build(dial.clone());
        let uri: http::Uri = format!("http://{addr}/metrics").parse()?;
        let response = client
            .get(uri)
            .await
            .with_context(|| format!("scraping {addr}"))?;
        anyhow::ensure!(
            response.status().is_success(),
            "scraping {addr}: {}",
            response.status()
        );
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Scrape::parse(&String::from_utf8_lossy(&body)))
    };
    // The whole exchange, body included, is bounded.
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .with_context(|| format!("scraping {addr}: no answer within 5 s"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pacer_lines() {
        let s = Scrape::parse(
            "# HELP x y\npacer_workers{pool=\"http\",state=\"ready\"} 3\n\
             pacer_workers{pool=\"http\",state=\"working\"} 2\n\
             pacer_worker_restarts_total{pool=\"http\",reason=\"max_jobs\"} 7\n\
             process_start_time_seconds 1700000000.5\n",
        );
        assert_eq!(s.live_workers(), 5.0);
        assert_eq!(s.restarts("max_jobs"), 7.0);
        assert_eq!(s.start_time(), Some(1_700_000_000.5));
    }
}
