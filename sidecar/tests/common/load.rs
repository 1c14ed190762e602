//! Continuous HTTP load for the reliability tests: several clients, each with its own
//! keep-alive connection, send requests back to back until told to stop, and every
//! request's outcome is recorded so a test can assert exactly what happened to each.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::serve::h1;

/// What came back for one request.
#[derive(Clone, Debug)]
pub enum Got {
    /// A whole response.
    Response { status: StatusCode, body: Bytes },
    /// No response at all: the connection was refused, or closed before a status line.
    NoResponse(String),
    /// A status line arrived, then the body broke off.
    BrokenBody { status: StatusCode, error: String },
    /// Nothing within the per-request timeout.
    TimedOut,
}

/// One request of a load run.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub client: usize,
    pub seq: u64,
    /// Method and URI, for messages.
    pub what: String,
    pub started: Instant,
    pub elapsed: Duration,
    pub got: Got,
}

impl Outcome {
    pub fn status(&self) -> Option<u16> {
        match &self.got {
            Got::Response { status, .. } => Some(status.as_u16()),
            _ => None,
        }
    }

    pub fn text(&self) -> String {
        match &self.got {
            Got::Response { body, .. } => String::from_utf8_lossy(body).into_owned(),
            other => format!("{other:?}"),
        }
    }

    pub fn is_ok(&self) -> bool {
        self.status() == Some(200)
    }
}

type MakeRequest = dyn Fn(usize, u64) -> Request<Full<Bytes>> + Send + Sync;

/// A running load; [`Load::finish`] stops it and returns every outcome.
pub struct Load {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<Vec<Outcome>>>,
}

/// How the clients behave.
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    pub clients: usize,
    /// Stops once this many requests were sent in total (`u64::MAX`: until stopped).
    pub total: u64,
    /// A client stops after its first request that got no response (the server went
    /// away); otherwise it keeps trying.
    pub stop_on_no_response: bool,
    pub request_timeout: Duration,
}

impl LoadOptions {
    pub fn clients(clients: usize) -> LoadOptions {
        LoadOptions {
            clients,
            total: u64::MAX,
            stop_on_no_response: false,
            request_timeout: Duration::from_secs(60),
        }
    }
}

impl Load {
    /// `clients` clients sending GET `url` until stopped.
    pub fn get(clients: usize, url: &str) -> Load {
        let url = url.to_string();
        Load::start(LoadOptions::clients(clients), move |_, _| {
            Request::get(url.as_str()).body(Full::default()).unwrap()
        })
    }

    /// Starts the clients; `make(client, seq)` builds each request.
    pub fn start(
        options: LoadOptions,
        make: impl Fn(usize, u64) -> Request<Full<Bytes>> + Send + Sync + 'static,
    ) -> Load {
        let make: Arc<MakeRequest> = Arc::new(make);
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let sent = Arc::new(AtomicU64::new(0));
        let tasks = (0..options.clients)
            .map(|client| {
                let (make, stop, done, sent) =
                    (make.clone(), stop.clone(), done.clone(), sent.clone());
                tokio::spawn(async move {
                    let http = h1();
                    let mut outcomes = Vec::new();
                    let mut seq = 0;
                    while !stop.load(Ordering::Relaxed)
                        && sent.fetch_add(1, Ordering::Relaxed) < options.total
                    {
                        let req = make(client, seq);
                        let what = format!("{} {}", req.method(), req.uri());
                        let started = Instant::now();
                        let got = tokio::time::timeout(options.request_timeout, async {
                            match http.request(req).await {
                                Err(e) => Got::NoResponse(format!("{e:?}")),
                                Ok(resp) => {
                                    let status = resp.status();
                                    match resp.into_body().collect().await {
                                        Ok(b) => Got::Response {
                                            status,
                                            body: b.to_bytes(),
                                        },
                                        Err(e) => Got::BrokenBody {
                                            status,
                                            error: format!("{e:?}"),
                                        },
                                    }
                                }
                            }
                        })
                        .await
                        .unwrap_or(Got::TimedOut);
                        let gone = matches!(got, Got::NoResponse(_));
                        outcomes.push(Outcome {
                            client,
                            seq,
                            what,
                            started,
                            elapsed: started.elapsed(),
                            got,
                        });
                        done.fetch_add(1, Ordering::Relaxed);
                        seq += 1;
                        if gone && options.stop_on_no_response {
                            break;
                        }
                    }
                    outcomes
                })
            })
            .collect();
        Load { stop, done, tasks }
    }

    /// Requests completed so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Waits until at least `n` requests completed (panics after `secs`).
    pub async fn wait_done(&self, n: u64, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.done() < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} requests done in {secs} s",
                self.done()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the clients (each finishes its current request) and returns every outcome.
    /// Waits for `more` requests after the ones done so far (the load goes on after
    /// whatever the test did), then [`Load::finish`]es and asserts that every request
    /// succeeded, at least `min` of them ([`Report::assert_all_ok`]).
    pub async fn finish_after(self, more: u64, what: &str, min: usize) {
        self.wait_done(self.done() + more, 30).await;
        self.finish().await.assert_all_ok(what, min);
    }

    pub async fn finish(self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        let mut outcomes = Vec::new();
        for t in self.tasks {
            outcomes.extend(t.await.unwrap());
        }
        outcomes.sort_by_key(|o| o.started);
        Report { outcomes }
    }
}

/// Every outcome of a load run, in the order the requests started.
#[derive(Debug)]
pub struct Report {
    pub outcomes: Vec<Outcome>,
}

impl Report {
    pub fn len(&self) -> usize {
        self.outcomes.len()
    }

    /// Requests that did not get a whole 200 response.
    pub fn failures(&self) -> Vec<&Outcome> {
        self.outcomes.iter().filter(|o| !o.is_ok()).collect()
    }

    /// Panics unless every request got a whole 200 and there were at least `min`.
    pub fn assert_all_ok(&self, what: &str, min: usize) {
        let failed = self.failures();
        assert!(
            failed.is_empty(),
            "{what}: {} of {} requests failed; the first: {:#?}",
            failed.len(),
            self.len(),
            &failed[..failed.len().min(5)]
        );
        assert!(
            self.len() >= min,
            "{what}: only {} requests ran, {min} expected",
            self.len()
        );
    }

    /// The response bodies of the successful requests, as text.
    pub fn bodies(&self) -> impl Iterator<Item = String> + '_ {
        self.outcomes
            .iter()
            .filter(|o| o.is_ok())
            .map(Outcome::text)
    }
}
