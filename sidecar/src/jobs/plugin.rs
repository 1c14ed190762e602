//! The jobs service as a [`Plugin`]: it owns the jobs pool (and its supervisor) and the
//! [`Jobs`] handle, serves `jobs.*` over RPC and drains on stop.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Jobs, start_pool};
use crate::config::JobsConfig;
use crate::plugin::{Health, Plugin, PluginContext, PluginError};
use crate::pool::Pool;
use crate::rpc::{BoxFuture, RpcService};

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

    fn health(&self) -> Health {
        match self.jobs.get() {
            Some(jobs) => {
                let s = jobs.pool().snapshot();
                if s.ready + s.working > 0 {
                    Health::Ok
                } else {
                    Health::Unavailable("no jobs worker is running".to_string())
                }
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
