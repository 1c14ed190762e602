//! The jobs service as a [`Plugin`]: it owns the jobs pool (and its supervisor) and the
//! [`Jobs`] handle, serves `jobs.*` over RPC and drains on stop. `/ready?plugin=jobs`
//! follows [`readiness`]: a live jobs worker, and every consumed pipeline connected.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Jobs, start_pool};
use crate::config::JobsConfig;
use crate::plugin::{Health, Plugin, PluginContext, PluginError};
use crate::pool::Pool;
use crate::rpc::{BoxFuture, RpcService};
use crate::status::{Check, PoolFacts};

/// A consumed pipeline's link to its broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineReach {
    pub name: String,
    pub driver: &'static str,
    pub reach: Result<(), String>,
}

/// Whether the jobs plugin can take work (pure): a jobs worker is alive and every
/// consumed pipeline reaches its broker. The error names every reason.
pub fn readiness(pool: &PoolFacts, consumed: &[PipelineReach]) -> Check {
    let mut why: Vec<String> = Vec::new();
    if let Err(e) = pool.ready() {
        why.push(format!("jobs pool: {e}"));
    }
    for p in consumed {
        if let Err(e) = &p.reach {
            why.push(format!("pipeline {} ({}): {e}", p.name, p.driver));
        }
    }
    if why.is_empty() {
        Ok(())
    } else {
        Err(why.join("; "))
    }
}

fn health(check: Check) -> Health {
    match check {
        Ok(()) => Health::Ok,
        Err(reason) => Health::Unavailable(reason),
    }
}

#[derive(Debug)]
pub struct JobsPlugin {
    config: JobsConfig,
    jobs: OnceLock<Jobs>,
    supervisor: CancellationToken,
}

impl JobsPlugin {
    pub fn new(config: JobsConfig) -> JobsPlugin {
        JobsPlugin {
            config,
            jobs: OnceLock::new(),
            supervisor: CancellationToken::new(),
        }
    }

    /// The running service (after start).
    pub fn jobs(&self) -> Option<Jobs> {
        self.jobs.get().cloned()
    }
}

impl Plugin for JobsPlugin {
    fn name(&self) -> &str {
        "jobs"
    }

    fn start<'a>(&'a self, ctx: &'a PluginContext) -> BoxFuture<'a, Result<(), PluginError>> {
        Box::pin(async move {
            let pool = start_pool(&ctx.config, &self.config, ctx.rpc.clone())
                .await
                .map_err(|e| PluginError::Start {
                    plugin: "jobs".to_string(),
                    reason: e.to_string(),
                })?;
            tokio::spawn(crate::supervisor::run(
                pool.clone(),
                self.supervisor.clone(),
            ));
            let jobs = Jobs::start(&self.config, pool).await;
            let _ = self.jobs.set(jobs);
            Ok(())
        })
    }

    fn stop(&self, grace: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(jobs) = self.jobs.get() {
                jobs.shutdown(grace).await;
                jobs.pool().shutdown().await;
            }
            self.supervisor.cancel();
        })
    }

    /// Alive while its pool runs (a broker outage or a failing worker is not cured by a
    /// restart of the process: `/ready` reports those).
    fn health(&self) -> Health {
        match self.jobs.get() {
            Some(jobs) => health(PoolFacts::of(jobs.pool()).alive()),
            None => Health::Unavailable("not started".to_string()),
        }
    }

    fn ready(&self) -> Health {
        match self.jobs.get() {
            Some(jobs) => {
                let consumed: Vec<PipelineReach> = jobs
                    .pipelines()
                    .iter()
                    .filter(|p| p.is_consuming())
                    .map(|p| PipelineReach {
                        name: p.name().to_string(),
                        driver: p.driver.name(),
                        reach: p.driver.reachable(),
                    })
                    .collect();
                health(readiness(&PoolFacts::of(jobs.pool()), &consumed))
            }
            None => Health::Unavailable("not started".to_string()),
        }
    }

    fn rpc(&self) -> Option<Arc<dyn RpcService>> {
        self.jobs
            .get()
            .map(|j| Arc::new(super::rpc::JobsRpc::new(j.clone())) as Arc<dyn RpcService>)
    }

    fn pools(&self) -> Vec<Pool> {
        self.jobs
            .get()
            .map(|j| vec![j.pool().clone()])
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipe(name: &str, reach: Result<(), String>) -> PipelineReach {
        PipelineReach {
            name: name.into(),
            driver: "amqp",
            reach,
        }
    }

    #[test]
    fn ready_needs_a_worker_and_every_consumed_broker() {
        let up = PoolFacts {
            live: 2,
            ..PoolFacts::default()
        };
        assert_eq!(
            readiness(&up, &[pipe("a", Ok(())), pipe("b", Ok(()))]),
            Ok(())
        );
        // No pipeline consumed: the workers decide.
        assert_eq!(readiness(&up, &[]), Ok(()));
        let down = pipe("b", Err("RabbitMQ unreachable: connection refused".into()));
        assert_eq!(
            readiness(&up, &[pipe("a", Ok(())), down.clone()]),
            Err("pipeline b (amqp): RabbitMQ unreachable: connection refused".into())
        );
        let none = PoolFacts {
            last_error: Some("exit status 255".into()),
            ..PoolFacts::default()
        };
        assert_eq!(
            readiness(&none, &[down]),
            Err("jobs pool: no workers: exit status 255; pipeline b (amqp): RabbitMQ unreachable: connection refused".into())
        );
        assert_eq!(
            readiness(&PoolFacts::default(), &[]),
            Err("jobs pool: no workers yet".into())
        );
    }
}
