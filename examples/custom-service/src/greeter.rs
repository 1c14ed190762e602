//! The extra plugin: `greeter`, configured by its own section and serving one RPC
//! method, `greeter.Greet` (JSON codec: a name in, a greeting out).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pacer::plugin::{Health, Plugin, PluginContext, PluginError};
use pacer::rpc::methods::Codec;
use pacer::rpc::{BoxFuture, RpcService};

/// `greeter:` in `.rr.yaml`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GreeterConfig {
    /// The word before the name (default "Hello").
    pub greeting: Option<String>,
}

/// The plugin: its state is shared with its RPC service.
#[derive(Debug, Default)]
pub struct Greeter {
    state: Arc<State>,
}

#[derive(Debug, Default)]
struct State {
    greeting: std::sync::OnceLock<String>,
    calls: AtomicU64,
}

impl Plugin for Greeter {
    fn name(&self) -> &str {
        "greeter"
    }

    fn start<'a>(&'a self, ctx: &'a PluginContext) -> BoxFuture<'a, Result<(), PluginError>> {
        Box::pin(async move {
            let config: GreeterConfig = ctx.section_as("greeter")?;
            let greeting = config.greeting.unwrap_or_else(|| "Hello".to_string());
            if greeting.is_empty() {
                return Err(PluginError::Config {
                    plugin: "greeter".into(),
                    reason: "greeter.greeting: must not be empty".into(),
                });
            }
            let _ = self.state.greeting.set(greeting);
            tracing::info!("greeter ready");
            Ok(())
        })
    }

    fn stop(&self, _grace: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            tracing::info!(
                calls = self.state.calls.load(Ordering::Relaxed),
                "greeter stopped"
            );
        })
    }

    fn health(&self) -> Health {
        if self.state.greeting.get().is_some() {
            Health::Ok
        } else {
            Health::Unavailable("not started".into())
        }
    }

    fn rpc(&self) -> Option<Arc<dyn RpcService>> {
        Some(Arc::new(GreeterRpc {
            state: self.state.clone(),
        }))
    }
}

#[derive(Debug)]
struct GreeterRpc {
    state: Arc<State>,
}

impl RpcService for GreeterRpc {
    fn name(&self) -> &str {
        "greeter"
    }

    fn call<'a>(
        &'a self,
        method: &'a str,
        codec: Codec,
        arg: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, String>> {
        Box::pin(async move {
            if codec != Codec::Json {
                return Err("greeter speaks the JSON codec".to_string());
            }
            match method {
                "Greet" => {
                    let name: String = serde_json::from_slice(arg)
                        .map_err(|e| format!("greeter.Greet takes a name (a JSON string): {e}"))?;
                    let n = self.state.calls.fetch_add(1, Ordering::Relaxed) + 1;
                    let greeting = self.state.greeting.get().map_or("Hello", String::as_str);
                    serde_json::to_vec(
                        &serde_json::json!({"text": format!("{greeting}, {name}!"), "call": n}),
                    )
                    .map_err(|e| e.to_string())
                }
                other => Err(format!("rpc: can't find method greeter.{other}")),
            }
        })
    }
}
