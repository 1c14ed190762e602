//! `/health` and `/ready` on `status.address` (docs/design.md §2.5), answered per plugin
//! the way RoadRunner's `status` plugin does.
//!
//! * `/health` — liveness: 200 while the process and its pools run, including while
//!   draining (a liveness failure during a graceful shutdown would get the pod killed
//!   before its requests finish).
//! * `/ready` — readiness: 200 when every plugin asked for can take work. `http`: pacer
//!   accepts traffic and at least one worker is alive, busy or not (a fully busy pod is
//!   still ready — queueing beats being taken out of the Service); in `pool.debug` mode,
//!   where workers only live for one request each, it is 503 only while workers fail to
//!   start; with `pacer.readiness.mode: saturation` also 503 while the queue stays long
//!   (see [`crate::readiness`]). Plugins answer through [`Plugin::ready`]: `jobs` is
//!   ready while a jobs worker is alive and every consumed pipeline reaches its broker.
//!   Every plugin is 503 while draining.
//!
//! The body is RoadRunner's JSON shape: `[{"plugin_name","error_message","status_code"}]`,
//! one entry per plugin. `?plugin=http&plugin=jobs` picks plugins (in that order; ones
//! pacer does not run are skipped, as RoadRunner does); without `plugin=` every plugin
//! is reported. The status code is `status.unavailable_status_code` (503) when any
//! reported plugin is not ready, else 200. Unlike RoadRunner's "internal server error,
//! see logs", `error_message` says why.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::Full;

use crate::endpoint::respond;
use crate::plugin::{Health, Plugin};
use crate::pool::Pool;
use crate::readiness::SaturationFlag;

/// One plugin's answer: `Err(reason)` when it cannot take work (or is not alive).
pub type Check = Result<(), String>;

/// The facts about a worker pool that health and readiness follow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolFacts {
    /// Workers alive, idle or busy.
    pub live: usize,
    /// Debug mode with workers starting fine: one worker per request, none in between.
    pub on_demand: bool,
    /// Why the last worker failed to start, if one did.
    pub last_error: Option<String>,
    /// The pool was shut down.
    pub closed: bool,
}

impl PoolFacts {
    pub fn of(pool: &Pool) -> PoolFacts {
        let snap = pool.snapshot();
        PoolFacts {
            live: snap.workers.len(),
            on_demand: snap.settings.debug && snap.backoff.failures == 0,
            last_error: snap.backoff.last_error,
            closed: snap.closed,
        }
    }

    /// Whether the pool can take work: at least one live worker (or debug mode, where
    /// workers start on demand).
    pub fn ready(&self) -> Check {
        if self.live > 0 || self.on_demand {
            return Ok(());
        }
        Err(match &self.last_error {
            Some(e) => format!("no workers: {e}"),
            None => "no workers yet".into(),
        })
    }

    /// Whether the pool is alive (a pool that cannot start workers still is: restarting
    /// the process would not help).
    pub fn alive(&self) -> Check {
        if self.closed {
            return Err("the worker pool is stopped".into());
        }
        Ok(())
    }
}

/// One entry of the body.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PluginReport {
    pub plugin_name: String,
    pub error_message: String,
    pub status_code: u16,
}

/// The answer to one status request (pure): the plugins `wanted` (all when empty, else
/// those of them pacer runs, in the order asked), their reports and the status code.
pub fn report(
    checks: &[(String, Check)],
    wanted: &[&str],
    unavailable: u16,
) -> (u16, Vec<PluginReport>) {
    let picked: Vec<&(String, Check)> = if wanted.is_empty() {
        checks.iter().collect()
    } else {
        let mut seen: Vec<&str> = Vec::new();
        wanted
            .iter()
            .filter(|w| {
                let first = !seen.contains(w);
                seen.push(w);
                first
            })
            .filter_map(|w| checks.iter().find(|(name, _)| name == w))
            .collect()
    };
    let mut code = 200;
    let reports = picked
        .into_iter()
        .map(|(name, check)| match check {
            Ok(()) => PluginReport {
                plugin_name: name.clone(),
                error_message: String::new(),
                status_code: 200,
            },
            Err(message) => {
                code = unavailable;
                PluginReport {
                    plugin_name: name.clone(),
                    error_message: message.clone(),
                    status_code: unavailable,
                }
            }
        })
        .collect();
    (code, reports)
}

/// What the status endpoints look at.
#[derive(Clone, Debug)]
pub struct Status {
    /// The HTTP pool (the `http` plugin); `None` without an `http` section.
    http: Option<Pool>,
    /// jobs, `service` and a custom binary's plugins, each reported under its name.
    plugins: Vec<Arc<dyn Plugin>>,
    draining: Arc<AtomicBool>,
    unavailable_code: u16,
    /// Set in saturation mode (`pacer.readiness.mode: saturation`).
    saturation: Option<Arc<SaturationFlag>>,
}

fn check(health: Health) -> Check {
    match health {
        Health::Ok => Ok(()),
        Health::Unavailable(reason) => Err(reason),
    }
}

impl Status {
    pub fn new(http: Option<Pool>, plugins: Vec<Arc<dyn Plugin>>, unavailable_code: u16) -> Status {
        Status {
            http,
            plugins,
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

    /// Readiness of the `http` plugin.
    fn http_ready(&self, pool: &Pool) -> Check {
        PoolFacts::of(pool).ready()?;
        if self.saturation.as_ref().is_some_and(|f| f.is_set()) {
            return Err(
                "saturated: the request queue has stayed above pacer.readiness.queue_high".into(),
            );
        }
        Ok(())
    }

    /// Every plugin's readiness, by name.
    pub fn ready(&self) -> Vec<(String, Check)> {
        let draining = self.is_draining();
        let gate = |c: Check| {
            if draining {
                Err("service is shutting down".to_string())
            } else {
                c
            }
        };
        let mut checks = Vec::with_capacity(self.plugins.len() + 1);
        if let Some(pool) = &self.http {
            checks.push(("http".to_string(), gate(self.http_ready(pool))));
        }
        for p in &self.plugins {
            checks.push((p.name().to_string(), gate(check(p.ready()))));
        }
        checks
    }

    /// Every plugin's liveness, by name.
    pub fn healthy(&self) -> Vec<(String, Check)> {
        let draining = self.is_draining();
        let mut checks = Vec::with_capacity(self.plugins.len() + 1);
        if let Some(pool) = &self.http {
            // A pool closed by the drain is expected.
            let alive = if draining {
                Ok(())
            } else {
                PoolFacts::of(pool).alive()
            };
            checks.push(("http".to_string(), alive));
        }
        for p in &self.plugins {
            let alive = if draining { Ok(()) } else { check(p.health()) };
            checks.push((p.name().to_string(), alive));
        }
        checks
    }

    /// Answers one request to the status endpoint.
    pub fn handle<B>(&self, req: &Request<B>) -> Response<Full<Bytes>> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return respond(405, "text/plain", "method not allowed\n");
        }
        let checks = match req.uri().path() {
            "/health" => self.healthy(),
            "/ready" => self.ready(),
            _ => return respond(404, "text/plain", "not found; try /health or /ready\n"),
        };
        let wanted: Vec<&str> = req
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .filter_map(|kv| kv.strip_prefix("plugin="))
            .collect();
        let (code, reports) = report(&checks, &wanted, self.unavailable_code);
        let body = serde_json::to_vec(&reports).unwrap_or_default();
        respond(code, "application/json", body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checks() -> Vec<(String, Check)> {
        vec![
            ("http".to_string(), Ok(())),
            (
                "jobs".to_string(),
                Err("pipeline emails (amqp): RabbitMQ unreachable".to_string()),
            ),
            ("service".to_string(), Ok(())),
        ]
    }

    fn names(reports: &[PluginReport]) -> Vec<&str> {
        reports.iter().map(|r| r.plugin_name.as_str()).collect()
    }

    #[test]
    fn without_plugin_every_plugin_is_reported_and_one_unready_makes_it_unavailable() {
        let (code, reports) = report(&checks(), &[], 503);
        assert_eq!(code, 503);
        assert_eq!(names(&reports), ["http", "jobs", "service"]);
        assert_eq!(reports[1].status_code, 503);
        assert_eq!(
            reports[1].error_message,
            "pipeline emails (amqp): RabbitMQ unreachable"
        );
        assert_eq!(reports[0].status_code, 200);
        assert_eq!(reports[0].error_message, "");
    }

    #[test]
    fn only_the_plugins_asked_for_count_and_unknown_ones_are_skipped() {
        // An HTTP pod stays in its Service while the broker is down.
        let (code, reports) = report(&checks(), &["http"], 503);
        assert_eq!((code, names(&reports)), (200, vec!["http"]));
        let (code, reports) = report(&checks(), &["jobs", "grpc", "http", "jobs"], 599);
        assert_eq!((code, names(&reports)), (599, vec!["jobs", "http"]));
        // Nothing asked for that pacer runs: nothing wrong.
        let (code, reports) = report(&checks(), &["grpc"], 503);
        assert_eq!((code, reports.len()), (200, 0));
    }

    #[test]
    fn a_pool_is_ready_with_a_live_worker_or_on_demand_and_says_why_not() {
        let mut f = PoolFacts::default();
        assert_eq!(f.ready(), Err("no workers yet".to_string()));
        f.last_error = Some("exit status 3".into());
        assert_eq!(f.ready(), Err("no workers: exit status 3".to_string()));
        f.live = 1;
        assert_eq!(f.ready(), Ok(()));
        let debug = PoolFacts {
            on_demand: true,
            ..PoolFacts::default()
        };
        assert_eq!(debug.ready(), Ok(()));
        assert_eq!(f.alive(), Ok(()));
        f.closed = true;
        assert!(f.alive().is_err());
    }
}
