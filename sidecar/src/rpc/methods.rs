//! The RPC methods (docs/wire-protocol.md §4.2) and the codec rules. [`call`] turns a method
//! name, a codec and an encoded argument into an encoded result or an error text; it
//! knows nothing of frames or sockets.

use std::time::Duration;

use base64::Engine as _;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::RpcContext;
use super::view::{WorkerList, WorkerView};
use crate::metrics::CollectorSpec;
use crate::pool::MAX_WORKERS;
use crate::relay::flags;

/// The codec a request selected, by Go's rule: the first of PROTO, JSON, RAW, MSGPACK,
/// GOB whose flag is set; none → GOB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Proto,
    Json,
    Raw,
    Msgpack,
    Gob,
}

impl Codec {
    pub fn from_flags(f: u8) -> Codec {
        if f & flags::CODEC_PROTO != 0 {
            Codec::Proto
        } else if f & flags::CODEC_JSON != 0 {
            Codec::Json
        } else if f & flags::CODEC_RAW != 0 {
            Codec::Raw
        } else if f & flags::CODEC_MSGPACK != 0 {
            Codec::Msgpack
        } else {
            Codec::Gob
        }
    }

    /// The flag a reply in this codec carries.
    pub fn flag(self) -> u8 {
        match self {
            Codec::Proto => flags::CODEC_PROTO,
            Codec::Json => flags::CODEC_JSON,
            Codec::Raw => flags::CODEC_RAW,
            Codec::Msgpack => flags::CODEC_MSGPACK,
            Codec::Gob => flags::CODEC_GOB,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::Proto => "protobuf",
            Codec::Json => "JSON",
            Codec::Raw => "raw",
            Codec::Msgpack => "msgpack",
            Codec::Gob => "gob",
        }
    }
}

/// Every method pacer serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    InformerList,
    InformerWorkers,
    InformerAddWorker,
    InformerRemoveWorker,
    ResetterList,
    ResetterReset,
    RpcVersion,
    RpcConfig,
    MetricsDeclare,
    MetricsAdd,
    MetricsSub,
    MetricsSet,
    MetricsObserve,
    MetricsUnregister,
    /// A method of a registered [`super::RpcService`] (its index).
    Service(usize),
}

impl Method {
    /// Finds a method the way Go's `net/rpc` does, with its error texts.
    pub fn resolve(name: &str) -> Result<Method, String> {
        let Some((service, method)) = name.rsplit_once('.') else {
            return Err(format!("rpc: service/method request ill-formed: {name}"));
        };
        let found = match service {
            "informer" => match method {
                "List" => Some(Method::InformerList),
                "Workers" => Some(Method::InformerWorkers),
                "AddWorker" => Some(Method::InformerAddWorker),
                "RemoveWorker" => Some(Method::InformerRemoveWorker),
                _ => None,
            },
            "resetter" => match method {
                "List" => Some(Method::ResetterList),
                "Reset" => Some(Method::ResetterReset),
                _ => None,
            },
            "rpc" => match method {
                "Version" => Some(Method::RpcVersion),
                "Config" => Some(Method::RpcConfig),
                _ => None,
            },
            "metrics" => match method {
                "Declare" => Some(Method::MetricsDeclare),
                "Add" => Some(Method::MetricsAdd),
                "Sub" => Some(Method::MetricsSub),
                "Set" => Some(Method::MetricsSet),
                "Observe" => Some(Method::MetricsObserve),
                "Unregister" => Some(Method::MetricsUnregister),
                _ => None,
            },
            _ => return Err(format!("rpc: can't find service {name}")),
        };
        found.ok_or_else(|| format!("rpc: can't find method {name}"))
    }

    /// Methods that wait on the pool; they run in their own task.
    pub fn is_slow(self) -> bool {
        matches!(
            self,
            Method::InformerAddWorker
                | Method::InformerRemoveWorker
                | Method::ResetterReset
                | Method::Service(_)
        )
    }
}

/// `{"name","value","labels"}` of `metrics.Add`/`Sub`/`Set`/`Observe`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct MetricArg {
    name: String,
    value: f64,
    labels: Option<Vec<String>>,
}

/// `{"name","collector"}` of `metrics.Declare`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct DeclareArg {
    name: String,
    collector: CollectorSpec,
}

/// Runs one call. `Ok` holds the encoded result, `Err` the error text of the reply.
pub async fn call(
    ctx: &RpcContext,
    method: Method,
    name: &str,
    codec: Codec,
    arg: &[u8],
) -> Result<Vec<u8>, String> {
    if let Method::Service(i) = method {
        let service = ctx
            .service(i)
            .ok_or_else(|| format!("rpc: can't find service {name}"))?;
        let m = name.rsplit_once('.').map_or(name, |(_, m)| m);
        return service.call(m, codec, arg).await;
    }
    match codec {
        Codec::Json => {}
        Codec::Raw if method == Method::RpcConfig => return Ok(ctx.config().to_vec()),
        Codec::Raw => {
            return Err(format!(
                "{name} takes the JSON codec (0x08); pacer accepts the raw codec (0x04) for rpc.Config only"
            ));
        }
        other => {
            return Err(format!(
                "pacer's RPC does not speak the {} codec ({:#04x}); use JSON (0x08), or raw (0x04) for rpc.Config",
                other.name(),
                other.flag()
            ));
        }
    }
    match method {
        Method::InformerList | Method::ResetterList => json(&ctx.pool_names()),
        Method::InformerWorkers => {
            let plugin: String = decode(name, arg)?;
            let workers = ctx.pool(&plugin).map(|pool| {
                let now = Instant::now();
                pool.snapshot()
                    .workers
                    .iter()
                    .map(|w| WorkerView::of(w, now))
                    .collect()
            });
            json(&WorkerList { workers })
        }
        Method::InformerAddWorker => {
            let plugin: String = decode(name, arg)?;
            add_worker(ctx, &plugin).await?;
            json(&true)
        }
        Method::InformerRemoveWorker => {
            let plugin: String = decode(name, arg)?;
            remove_worker(ctx, &plugin).await?;
            json(&true)
        }
        Method::ResetterReset => {
            let plugin: String = decode(name, arg)?;
            let pool = ctx
                .pool(&plugin)
                .ok_or_else(|| format!("no such plugin: {plugin}"))?;
            tracing::info!(pool = %plugin, "reset requested over RPC");
            pool.reset().await.map_err(|e| e.to_string())?;
            json(&true)
        }
        Method::RpcVersion => json(ctx.version()),
        // Go's JSON codec encodes the `[]byte` result as a base64 string.
        Method::RpcConfig => json(&base64::engine::general_purpose::STANDARD.encode(ctx.config())),
        Method::MetricsDeclare => {
            let a: DeclareArg = decode(name, arg)?;
            ctx.app_metrics()
                .declare(&a.name, a.collector)
                .map_err(|e| e.to_string())?;
            json(&true)
        }
        Method::MetricsAdd | Method::MetricsSub | Method::MetricsSet | Method::MetricsObserve => {
            let a: MetricArg = decode(name, arg)?;
            let labels = a.labels.unwrap_or_default();
            let m = ctx.app_metrics();
            match method {
                Method::MetricsAdd => m.add(&a.name, a.value, &labels),
                Method::MetricsSub => m.sub(&a.name, a.value, &labels),
                Method::MetricsSet => m.set(&a.name, a.value, &labels),
                _ => m.observe(&a.name, a.value, &labels),
            }
            .map_err(|e| e.to_string())?;
            json(&true)
        }
        Method::MetricsUnregister => {
            let metric: String = decode(name, arg)?;
            ctx.app_metrics()
                .unregister(&metric)
                .map_err(|e| e.to_string())?;
            json(&true)
        }
        Method::Service(_) => Err(format!("rpc: can't find service {name}")),
    }
}

/// `informer.AddWorker`: raises the target by one and answers once the new worker
/// runs (within `allocate_timeout`).
async fn add_worker(ctx: &RpcContext, plugin: &str) -> Result<(), String> {
    let pool = ctx
        .pool(plugin)
        .ok_or_else(|| format!("plugin {plugin} does not support workers management"))?;
    let target = {
        let _one_at_a_time = ctx.resize.lock().await;
        let target = pool.target();
        if target >= MAX_WORKERS {
            return Err(format!(
                "pool {plugin} already has the maximum of {MAX_WORKERS} workers"
            ));
        }
        pool.set_target(target + 1);
        target + 1
    };
    tracing::info!(pool = %plugin, target, "worker added over RPC");
    let timeout = pool.settings().allocate_timeout;
    if pool.wait_settled(timeout).await {
        return Ok(());
    }
    let snap = pool.snapshot();
    Err(match snap.backoff.last_error {
        Some(e) => format!(
            "the target of pool {plugin} is now {target}, but the new worker failed to start: {e}"
        ),
        None => format!(
            "the target of pool {plugin} is now {target}, but the new worker did not start within allocate_timeout ({timeout:?})"
        ),
    })
}

/// `informer.RemoveWorker`: lowers the target by one (never below one) and answers
/// once the surplus worker is gone, or after `destroy_timeout` if it is still busy
/// (it then leaves when its job ends).
async fn remove_worker(ctx: &RpcContext, plugin: &str) -> Result<(), String> {
    let pool = ctx
        .pool(plugin)
        .ok_or_else(|| format!("plugin {plugin} does not support workers management"))?;
    let target = {
        let _one_at_a_time = ctx.resize.lock().await;
        let target = pool.target();
        if target <= 1 {
            return Err(format!("cannot remove the last worker of pool {plugin}"));
        }
        pool.set_target(target - 1);
        target - 1
    };
    tracing::info!(pool = %plugin, target, "worker removed over RPC");
    let timeout = pool.settings().destroy_timeout.min(Duration::from_secs(60));
    if !pool.wait_settled(timeout).await {
        tracing::info!(pool = %plugin, "the removed worker is still busy; it leaves when its job ends");
    }
    Ok(())
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
    serde_json::to_vec(value).map_err(|e| format!("cannot encode the result: {e}"))
}

/// Decodes a JSON argument; an empty one is the type's zero value, as in Go.
fn decode<T: DeserializeOwned + Default>(method: &str, arg: &[u8]) -> Result<T, String> {
    if arg.is_empty() {
        return Ok(T::default());
    }
    serde_json::from_slice(arg).map_err(|e| format!("cannot decode the argument of {method}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn ctx() -> RpcContext {
        RpcContext::new(
            vec![],
            serde_json::json!({"rpc":{"listen":"tcp://127.0.0.1:6001"}}),
            "2025.1.15",
            Arc::new(crate::metrics::AppMetrics::new()),
        )
    }

    async fn run(ctx: &RpcContext, name: &str, codec: Codec, arg: &str) -> Result<String, String> {
        let m = Method::resolve(name)?;
        call(ctx, m, name, codec, arg.as_bytes())
            .await
            .map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn codecs_are_chosen_in_gos_order() {
        assert_eq!(Codec::from_flags(0x08), Codec::Json);
        assert_eq!(Codec::from_flags(0x04), Codec::Raw);
        assert_eq!(Codec::from_flags(0xA0), Codec::Proto);
        assert_eq!(Codec::from_flags(0x0C), Codec::Json);
        assert_eq!(Codec::from_flags(0x00), Codec::Gob);
        assert_eq!(Codec::from_flags(0x48), Codec::Json);
    }

    #[test]
    fn unknown_names_get_go_net_rpc_texts() {
        assert_eq!(
            Method::resolve("nope.Call").unwrap_err(),
            "rpc: can't find service nope.Call"
        );
        assert_eq!(
            Method::resolve("informer.Nope").unwrap_err(),
            "rpc: can't find method informer.Nope"
        );
        assert_eq!(
            Method::resolve("Version").unwrap_err(),
            "rpc: service/method request ill-formed: Version"
        );
        assert_eq!(Method::resolve("resetter.Reset"), Ok(Method::ResetterReset));
    }

    #[tokio::test]
    async fn rpc_service_answers_version_and_config() {
        let c = ctx();
        assert_eq!(
            run(&c, "rpc.Version", Codec::Json, "true").await.unwrap(),
            "\"2025.1.15\""
        );
        assert_eq!(
            run(&c, "rpc.Config", Codec::Raw, "").await.unwrap(),
            r#"{"rpc":{"listen":"tcp://127.0.0.1:6001"}}"#
        );
        let b64 = run(&c, "rpc.Config", Codec::Json, "true").await.unwrap();
        let s: String = serde_json::from_str(&b64).unwrap();
        let raw = base64::engine::general_purpose::STANDARD.decode(s).unwrap();
        assert_eq!(raw, br#"{"rpc":{"listen":"tcp://127.0.0.1:6001"}}"#);
        c.set_config(&serde_json::json!({"v":2}));
        assert_eq!(
            run(&c, "rpc.Config", Codec::Raw, "").await.unwrap(),
            r#"{"v":2}"#
        );
    }

    #[tokio::test]
    async fn codec_errors_say_what_to_use() {
        let c = ctx();
        let e = run(&c, "informer.List", Codec::Raw, "").await.unwrap_err();
        assert!(e.contains("JSON codec (0x08)"), "{e}");
        let e = run(&c, "informer.List", Codec::Gob, "").await.unwrap_err();
        assert!(e.contains("gob codec (0x20)"), "{e}");
        let e = run(&c, "informer.List", Codec::Msgpack, "")
            .await
            .unwrap_err();
        assert!(e.contains("msgpack"), "{e}");
    }

    #[tokio::test]
    async fn pools_that_do_not_exist_are_reported_like_roadrunner() {
        let c = ctx();
        assert_eq!(
            run(&c, "informer.List", Codec::Json, "true").await.unwrap(),
            "[]"
        );
        assert_eq!(
            run(&c, "informer.Workers", Codec::Json, "\"grpc\"")
                .await
                .unwrap(),
            r#"{"workers":null}"#
        );
        assert_eq!(
            run(&c, "resetter.Reset", Codec::Json, "\"grpc\"")
                .await
                .unwrap_err(),
            "no such plugin: grpc"
        );
        assert!(
            run(&c, "informer.AddWorker", Codec::Json, "\"grpc\"")
                .await
                .unwrap_err()
                .contains("does not support workers management")
        );
        let e = run(&c, "informer.Workers", Codec::Json, "{")
            .await
            .unwrap_err();
        assert!(
            e.starts_with("cannot decode the argument of informer.Workers"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn metrics_methods_reach_the_registry() {
        let c = ctx();
        let declare = r#"{"name":"orders_total","collector":{"namespace":"shop","subsystem":"","type":"counter","help":"Orders","labels":["channel"],"buckets":[]}}"#;
        assert_eq!(
            run(&c, "metrics.Declare", Codec::Json, declare)
                .await
                .unwrap(),
            "true"
        );
        assert_eq!(
            run(&c, "metrics.Declare", Codec::Json, declare)
                .await
                .unwrap(),
            "true"
        );
        let add = r#"{"name":"orders_total","value":2.0,"labels":["web"]}"#;
        assert_eq!(
            run(&c, "metrics.Add", Codec::Json, add).await.unwrap(),
            "true"
        );
        let e = run(&c, "metrics.Set", Codec::Json, add).await.unwrap_err();
        assert!(e.contains("does not support method `Set`"), "{e}");
        let e = run(
            &c,
            "metrics.Add",
            Codec::Json,
            r#"{"name":"orders_total","value":1,"labels":null}"#,
        )
        .await
        .unwrap_err();
        assert!(e.contains("required labels"), "{e}");
        assert_eq!(
            run(&c, "metrics.Unregister", Codec::Json, "\"orders_total\"")
                .await
                .unwrap(),
            "true"
        );
        let e = run(&c, "metrics.Add", Codec::Json, add).await.unwrap_err();
        assert!(e.starts_with("undefined collector orders_total"), "{e}");
    }
}
