//! The extendable service model: what RoadRunner calls a plugin. A [`Plugin`] is a
//! service pacer starts and stops with the rest, with its own config section, its own
//! RPC methods (under its name) and a health check. The jobs pipeline and the `service`
//! process manager are plugins; a custom `pacer` binary adds its own through
//! [`crate::app::run_with_plugins`] (see `examples/custom-service` and the README's
//! "Writing a plugin").
//!
//! # Lifecycle
//! [`crate::app::run`] calls [`Plugin::start`] once, after the HTTP pool and before the
//! listeners serve, with a [`PluginContext`]; it registers [`Plugin::rpc`] with the RPC
//! server; on shutdown it calls [`Plugin::stop`] with the grace period, alongside the
//! HTTP drain. `/health` reports [`Plugin::health`] and `/ready` [`Plugin::ready`] under
//! the plugin's name (`/ready?plugin=<name>`, see [`crate::status`]).

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::pool::Pool;
use crate::rpc::{BoxFuture, RpcService};

/// Why a plugin could not start; pacer exits (64 for [`PluginError::Config`]).
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The plugin's section is wrong: name the key and the reason.
    #[error("{plugin}: {reason}")]
    Config { plugin: String, reason: String },
    #[error("{plugin}: {reason}")]
    Start { plugin: String, reason: String },
}

/// What a plugin gets at start.
#[derive(Clone, Debug)]
pub struct PluginContext {
    /// The whole configuration.
    pub config: Arc<Config>,
    /// The plugin's own top-level section (`<name>:` in `.rr.yaml`), with `${ENV}`
    /// substitution and `-o` overrides applied; `None` when absent.
    pub section: Option<serde_yaml::Value>,
    /// The RPC address for processes the plugin starts (`RR_RPC`), when RPC is on.
    pub rpc: Option<String>,
}

impl PluginContext {
    /// The section deserialized into `T` (serde), or `T::default()` when absent.
    pub fn section_as<T: serde::de::DeserializeOwned + Default>(
        &self,
        plugin: &str,
    ) -> Result<T, PluginError> {
        match &self.section {
            None => Ok(T::default()),
            Some(v) => serde_yaml::from_value(v.clone()).map_err(|e| PluginError::Config {
                plugin: plugin.to_string(),
                reason: e.to_string(),
            }),
        }
    }
}

/// A plugin's health, for `/health` and `/ready`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    Ok,
    /// Running but not able to take work (the text says why); `/ready` is 503.
    Unavailable(String),
}

/// A service pacer runs next to HTTP.
pub trait Plugin: Send + Sync + std::fmt::Debug {
    /// Its name: its config section, its RPC service name, its label in logs.
    fn name(&self) -> &str;
    /// Starts its tasks and returns (long-running work goes into tasks it owns).
    fn start<'a>(&'a self, ctx: &'a PluginContext) -> BoxFuture<'a, Result<(), PluginError>>;
    /// Stops within `grace`, finishing what it can.
    fn stop(&self, grace: Duration) -> BoxFuture<'_, ()>;
    /// Liveness (`/health`): `Unavailable` only when restarting the process would help.
    fn health(&self) -> Health {
        Health::Ok
    }
    /// Readiness (`/ready`): whether it can take work now (its workers, its brokers).
    fn ready(&self) -> Health {
        self.health()
    }
    /// Its RPC methods (`<name>.<Method>`), if any.
    fn rpc(&self) -> Option<Arc<dyn RpcService>> {
        None
    }
    /// Worker pools it runs, shown by `pacer workers <pool>`, `informer.*` and the
    /// `pacer_workers{pool}` metrics. Called after [`Plugin::start`].
    fn pools(&self) -> Vec<Pool> {
        Vec::new()
    }
}
