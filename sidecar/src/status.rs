//! `/health` and `/ready` on `status.address` (docs/design.md §2.5).
//!
//! * `/health` — liveness: 200 while the process and its pool manager run, including
//!   while draining (a liveness failure during a graceful shutdown would get the pod
//!   killed before its requests finish).
//! * `/ready` — readiness: 200 when pacer accepts traffic and at least one worker is
//!   alive, busy or not (a fully busy pod is still ready — queueing beats being taken out
//!   of the Service). 503 while draining or while no worker is alive — except in
//!   `pool.debug` mode, where workers only live for one request each; there it is 503
//!   only while workers fail to start. With `pacer.readiness.mode: saturation` it is
//!   also 503 while the queue stays long (see [`crate::readiness`]).
//!
//! The body is RoadRunner's JSON shape: `[{"plugin_name","error_message","status_code"}]`;
//! `?plugin=http` is accepted, unknown plugins are skipped like RoadRunner does.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::Full;

use crate::endpoint::respond;
use crate::pool::Pool;
use crate::readiness::SaturationFlag;

/// What the status endpoints look at.
#[derive(Clone, Debug)]
pub struct Status {
    /// The pool health and readiness follow; `None` for a config without pools (only
    /// `service` processes): ready once started.
    pool: Option<Pool>,
    draining: Arc<AtomicBool>,
    unavailable_code: u16,
    /// Set in saturation mode (`pacer.readiness.mode: saturation`).
    saturation: Option<Arc<SaturationFlag>>,
}

#[derive(serde::Serialize)]
struct PluginReport {
    plugin_name: &'static str,
    error_message: String,
    status_code: u16,
}

impl Status {
    pub fn new(pool: Option<Pool>, unavailable_code: u16) -> Status {
        Status {
            pool,
            draining: Arc::new(AtomicBool::new(false)),
            unavailable_code,
            saturation: None,
        }
    }

    /// `/ready` also follows this flag (saturation mode).
    pub fn with_saturation(mut self, flag: Arc<SaturationFlag>) -> Status {
        self.saturation = Some(flag);
        self
    }

    /// From now on `/ready` answers 503.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Readiness of the `http` plugin: `Err(reason)` when not ready.
    pub fn ready(&self) -> Result<(), String> {
        if self.is_draining() {
            return Err("service is shutting down".into());
        }
        let Some(pool) = &self.pool else {
            return Ok(());
        };
        let snap = pool.snapshot();
        // Debug mode starts a worker for each request and keeps none in between: no
        // live worker is normal there, as long as workers can be started.
        let on_demand = snap.settings.debug && snap.backoff.failures == 0;
        if snap.workers.is_empty() && !on_demand {
            return Err(match snap.backoff.last_error {
                Some(e) => format!("no workers: {e}"),
                None => "no workers yet".into(),
            });
        }
        if self.saturation.as_ref().is_some_and(|f| f.is_set()) {
            return Err(
                "saturated: the request queue has stayed above pacer.readiness.queue_high".into(),
            );
        }
        Ok(())
    }

    pub fn healthy(&self) -> Result<(), String> {
        let Some(pool) = &self.pool else {
            return Ok(());
        };
        let snap = pool.snapshot();
        if snap.closed && !self.is_draining() {
            return Err("the worker pool is stopped".into());
        }
        Ok(())
    }

    /// Answers one request to the status endpoint.
    pub fn handle<B>(&self, req: &Request<B>) -> Response<Full<Bytes>> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return respond(405, "text/plain", "method not allowed\n");
        }
        let check = match req.uri().path() {
            "/health" => self.healthy(),
            "/ready" => self.ready(),
            _ => return respond(404, "text/plain", "not found; try /health or /ready\n"),
        };
        // `?plugin=http&plugin=other`: only plugins pacer has are reported.
        let wanted: Vec<&str> = req
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .filter_map(|kv| kv.strip_prefix("plugin="))
            .collect();
        let include_http = wanted.is_empty() || wanted.contains(&"http");
        let (code, report) = match check {
            Ok(()) => (
                200,
                PluginReport {
                    plugin_name: "http",
                    error_message: String::new(),
                    status_code: 200,
                },
            ),
            Err(message) => (
                self.unavailable_code,
                PluginReport {
                    plugin_name: "http",
                    error_message: message,
                    status_code: self.unavailable_code,
                },
            ),
        };
        let (code, reports) = if include_http {
            (code, vec![report])
        } else {
            (200, vec![])
        };
        let body = serde_json::to_vec(&reports).unwrap_or_default();
        respond(code, "application/json", body)
    }
}
