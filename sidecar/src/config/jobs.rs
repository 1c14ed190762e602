//! The `jobs` section and the broker sections (`amqp`, `beanstalk`, `nats`): RoadRunner's
//! jobs plugin config (`roadrunner-server/jobs` `config.go`, each driver's `config.go`),
//! read into [`JobsConfig`]. A pipeline's `config` is read by its driver's key list, so an
//! unknown key is named with its full path (`jobs.pipelines.emails.config.prefetc`).
//!
//! The same reader takes the flat string map of `jobs.Declare` (the PHP library's
//! `CreateInfo::toArray()`), see [`pipeline_from_map`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_yaml::{Mapping, Value};

use super::convert::pool;
use super::error::ConfigError;
use super::host::Host;
use super::raw::PoolRaw;
use super::types::PoolConfig;
use super::value::Ctx;

type V = Option<Value>;

// ------------------------------------------------------------------------------ raw

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct JobsRaw {
    pub num_pollers: V,
    pub pipeline_size: V,
    pub timeout: V,
    pub pool: Option<PoolRaw>,
    pub pools: V,
    pub consume: V,
    pub pipelines: Option<BTreeMap<String, PipelineRaw>>,
    pub options: V,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PipelineRaw {
    pub driver: V,
    pub config: V,
    /// Pacer's own: what happens to a job that failed (see [`RetryPolicy`]).
    pub retry: Option<RetryRaw>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RetryRaw {
    pub max_attempts: V,
    pub delay: V,
    pub failed_pipeline: V,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub(crate) struct BrokerRaw {
    pub addr: V,
    /// beanstalk: the connection timeout.
    pub timeout: V,
    /// amqp: TLS settings (not implemented by pacer; warned).
    pub tls: V,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MemoryRaw {
    priority: V,
    prefetch: V,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AmqpRaw {
    priority: V,
    prefetch: V,
    queue: V,
    exchange: V,
    exchange_type: V,
    routing_key: V,
    exclusive: V,
    multiple_ack: V,
    requeue_on_fail: V,
    durable: V,
    exchange_durable: V,
    exchange_auto_delete: V,
    queue_auto_delete: V,
    delete_queue_on_stop: V,
    consumer_id: V,
    queue_headers: V,
    redial_timeout: V,
    /// Accepted for the PHP library's `AMQPCreateInfo` map; pacer always reconnects.
    exchange_declare: V,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct BeanstalkRaw {
    priority: V,
    tube_priority: V,
    tube: V,
    reserve_timeout: V,
    prefetch: V,
    /// Accepted: pacer always runs bodies it cannot read as `deduced_by_rr` jobs.
    consume_all: V,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NatsRaw {
    priority: V,
    prefetch: V,
    subject: V,
    stream: V,
    deliver_new: V,
    rate_limit: V,
    delete_stream_on_stop: V,
    delete_after_ack: V,
    ack_wait: V,
    /// Accepted: pacer always runs bodies it cannot read as `deduced_by_rr` jobs.
    consume_all: V,
}

// ---------------------------------------------------------------------------- typed

/// `jobs`: the task pipeline.
#[derive(Clone, Debug, PartialEq)]
pub struct JobsConfig {
    /// `jobs.num_pollers`: jobs handed to workers at once. RoadRunner forces it to
    /// `pool.num_workers + 2`; pacer takes the same (a value in the file is ignored with
    /// a warning, as RR ignores it).
    pub num_pollers: usize,
    /// `jobs.pipeline_size`: jobs taken from the brokers but not yet handed to a worker,
    /// over all pipelines (RR default 1 000 000; each driver's `prefetch` bounds its own
    /// share, which is what keeps this queue short).
    pub pipeline_size: usize,
    /// `jobs.timeout` (seconds in RR): how long one push may wait on the broker. Default 60 s.
    pub timeout: Duration,
    /// `jobs.pool`: the jobs workers (`RR_MODE=jobs`). Same keys and defaults as `http.pool`.
    pub pool: PoolConfig,
    /// `jobs.consume`: pipelines consumed from the start. Others are pushed to only, until
    /// `jobs.Resume`.
    pub consume: Vec<String>,
    /// `jobs.pipelines`, by name.
    pub pipelines: Vec<PipelineConfig>,
    /// The `amqp`, `beanstalk` and `nats` sections.
    pub brokers: Brokers,
}

/// One pipeline: a name, a driver and its settings.
#[derive(Clone, Debug, PartialEq)]
pub struct PipelineConfig {
    pub name: String,
    /// `config.priority` (RR default 10): the job priority when the push names none.
    pub priority: i64,
    pub driver: DriverConfig,
    pub retry: RetryPolicy,
}

impl PipelineConfig {
    /// The driver's name as RoadRunner spells it.
    pub fn driver_name(&self) -> &'static str {
        self.driver.name()
    }
}

/// `jobs.pipelines.<name>.retry` — pacer's own (RoadRunner leaves retries to PHP code).
/// A job fails when its worker dies or exceeds `exec_ttl`, when PHP reports an error, or
/// when PHP nacks it without asking for a requeue. A failed job is pushed again after
/// `delay` with its `attempts` header raised by one, until `max_attempts` deliveries;
/// then it goes to `failed_pipeline` (or is dropped, logged, when none is set).
/// Without this section a failed job is not retried (RoadRunner's behaviour), except
/// that a job whose worker died is always delivered again (at-least-once).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetryPolicy {
    /// `max_attempts`: deliveries in all (0 = no retries).
    pub max_attempts: u32,
    /// `delay`: before each retry. Default 0.
    pub delay: Duration,
    /// `failed_pipeline`: where exhausted jobs go.
    pub failed_pipeline: Option<String>,
}

/// A pipeline's driver and its `config`.
#[derive(Clone, Debug, PartialEq)]
pub enum DriverConfig {
    Memory(MemoryConfig),
    Amqp(AmqpConfig),
    Beanstalk(BeanstalkConfig),
    Nats(NatsConfig),
}

impl DriverConfig {
    pub fn name(&self) -> &'static str {
        match self {
            DriverConfig::Memory(_) => "memory",
            DriverConfig::Amqp(_) => "amqp",
            DriverConfig::Beanstalk(_) => "beanstalk",
            DriverConfig::Nats(_) => "nats",
        }
    }
}

/// `driver: beanstalk`, with the `beanstalk` section's connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BeanstalkConfig {
    /// `beanstalk.addr`: `tcp://host:port` (RR's form; default `tcp://127.0.0.1:11300`),
    /// kept as `host:port`.
    pub addr: String,
    /// `beanstalk.timeout`: connecting and each reply (default 30 s).
    pub timeout: Duration,
    /// `tube` (default `default`).
    pub tube: String,
    /// `tube_priority`: the beanstalkd priority jobs are put with (RR default 1; lower
    /// runs first).
    pub tube_priority: u32,
    /// `reserve_timeout`: how long one reserve waits (RR default 5 s).
    pub reserve_timeout: Duration,
    /// `prefetch`: jobs reserved and not yet settled, at most (default 10).
    pub prefetch: usize,
}

/// `driver: nats` (JetStream), with the `nats` section's connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsConfig {
    /// `nats.addr` (default `nats://127.0.0.1:4222`).
    pub addr: String,
    /// `nats.timeout`: connecting (default 10 s).
    pub timeout: Duration,
    /// `subject` (RR default `default`).
    pub subject: String,
    /// `stream` (RR default `default-stream`): created when missing.
    pub stream: String,
    /// `prefetch`: messages handed out and not yet settled (RR default 100).
    pub prefetch: usize,
    /// `deliver_new`: a new consumer starts at new messages, not the stream's first.
    pub deliver_new: bool,
    /// `delete_stream_on_stop`.
    pub delete_stream_on_stop: bool,
    /// `delete_after_ack`: remove a message from the stream once acknowledged.
    pub delete_after_ack: bool,
    /// `ack_wait` (seconds in RR, default 30): redelivery of a message whose pacer
    /// vanished; pacer keeps running jobs alive meanwhile.
    pub ack_wait: Duration,
}

/// `driver: memory`: an in-process queue (lost on restart, as in RR).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryConfig {
    /// `prefetch`: jobs handed out and not yet acked, at most (RR default 100 000).
    pub prefetch: usize,
}

/// `driver: amqp` (RabbitMQ), with the `amqp` section's connection.
#[derive(Clone, Debug, PartialEq)]
pub struct AmqpConfig {
    /// `amqp.addr` (default `amqp://guest:guest@127.0.0.1:5672/`, RR's).
    pub addr: String,
    /// `prefetch` (basic.qos; RR default 10).
    pub prefetch: u16,
    /// `queue` (required).
    pub queue: String,
    /// `exchange` (RR default `amqp.default`).
    pub exchange: String,
    /// `exchange_type`: direct (default), fanout, topic, headers.
    pub exchange_type: String,
    /// `routing_key` (default: empty).
    pub routing_key: String,
    pub exclusive: bool,
    /// `multiple_ack`: accepted for RoadRunner configs; pacer always batches acks with
    /// `multiple`, but only over runs of deliveries whose workers all acked.
    pub multiple_ack: bool,
    /// `requeue_on_fail`: a failed job goes back to the queue (RR's native requeue).
    pub requeue_on_fail: bool,
    /// `durable` (queue; default false, as RR).
    pub durable: bool,
    pub exchange_durable: bool,
    pub exchange_auto_delete: bool,
    pub queue_auto_delete: bool,
    pub delete_queue_on_stop: bool,
    /// `consumer_id` (default: a generated tag).
    pub consumer_id: Option<String>,
    /// `queue_headers`: declare arguments (e.g. `x-dead-letter-exchange`).
    pub queue_headers: Vec<(String, String)>,
    /// `redial_timeout`: give up reconnecting after this long (RR default 60 s; 0 = never).
    pub redial_timeout: Duration,
}

pub(crate) const DEFAULT_AMQP_ADDR: &str = "amqp://guest:guest@127.0.0.1:5672/";
pub(crate) const DEFAULT_BEANSTALK_ADDR: &str = "tcp://127.0.0.1:11300";
pub(crate) const DEFAULT_NATS_ADDR: &str = "nats://127.0.0.1:4222";
const RR_PRIORITY: i64 = 10;

// ------------------------------------------------------------------------- convert

/// The broker sections, as read once for every pipeline (and kept for the pipelines
/// `jobs.Declare` adds at run time).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Brokers {
    pub(crate) amqp: Option<BrokerRaw>,
    pub(crate) beanstalk: Option<BrokerRaw>,
    pub(crate) nats: Option<BrokerRaw>,
}

pub(crate) fn jobs(raw: JobsRaw, brokers: &Brokers, ctx: &mut Ctx<'_>) -> JobsConfig {
    let unused = [
        brokers.amqp.as_ref().map(|b| ("amqp.tls", &b.tls)),
        brokers.amqp.as_ref().map(|b| ("amqp.timeout", &b.timeout)),
        brokers
            .beanstalk
            .as_ref()
            .map(|b| ("beanstalk.tls", &b.tls)),
        brokers.nats.as_ref().map(|b| ("nats.tls", &b.tls)),
    ];
    for (key, v) in unused.into_iter().flatten() {
        if v.as_ref().is_some_and(|v| !v.is_null()) {
            ctx.warn(format!("{key} is not implemented by pacer (ignored)"));
        }
    }
    let pool = pool(raw.pool.unwrap_or_default(), "jobs.pool", ctx);
    if raw.num_pollers.as_ref().is_some_and(|v| !v.is_null()) {
        ctx.warn("jobs.num_pollers is ignored: it is always jobs.pool.num_workers + 2 (as in RoadRunner)");
    }
    if raw.pools.as_ref().is_some_and(|v| !v.is_null()) {
        ctx.warn("jobs.pools is not implemented by pacer (ignored); use jobs.pool");
    }
    if raw.options.as_ref().is_some_and(|v| !v.is_null()) {
        ctx.warn("jobs.options is accepted but not used");
    }
    let pipeline_size = match ctx.uint("jobs.pipeline_size", raw.pipeline_size.as_ref()) {
        None | Some(0) => 1_000_000,
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
    };
    // RR reads `timeout` as seconds; a Go duration is accepted too.
    let timeout = match raw.timeout.as_ref() {
        Some(Value::Number(_)) => ctx
            .uint("jobs.timeout", raw.timeout.as_ref())
            .map(Duration::from_secs),
        other => ctx.duration("jobs.timeout", other),
    }
    .filter(|d| !d.is_zero())
    .unwrap_or(Duration::from_secs(60));
    let consume = ctx
        .strings("jobs.consume", raw.consume.as_ref())
        .unwrap_or_default();
    let mut pipelines = Vec::new();
    for (name, p) in raw.pipelines.unwrap_or_default() {
        let prefix = format!("jobs.pipelines.{name}");
        let driver = ctx.string(&format!("{prefix}.driver"), p.driver.as_ref());
        let Some(driver) = driver else {
            ctx.error(ConfigError::Missing {
                key: format!("{prefix}.driver"),
                hint: "memory, amqp, beanstalk or nats".to_string(),
            });
            continue;
        };
        let config = match p.config {
            None | Some(Value::Null) => Mapping::new(),
            Some(Value::Mapping(m)) => m,
            Some(other) => {
                ctx.invalid(&format!("{prefix}.config"), &other, "a mapping");
                continue;
            }
        };
        let retry = retry(p.retry, &prefix, ctx);
        if let Some(pipe) = pipeline(&name, &driver, config, retry, brokers, &prefix, ctx) {
            pipelines.push(pipe);
        }
    }
    for name in &consume {
        if !pipelines.iter().any(|p| &p.name == name) {
            ctx.error(ConfigError::invalid(
                "jobs.consume",
                format!("{name:?}"),
                "the name of a pipeline in jobs.pipelines",
            ));
        }
    }
    for p in &pipelines {
        if let Some(failed) = &p.retry.failed_pipeline
            && !pipelines.iter().any(|q| &q.name == failed)
        {
            ctx.error(ConfigError::invalid(
                &format!("jobs.pipelines.{}.retry.failed_pipeline", p.name),
                format!("{failed:?}"),
                "the name of a pipeline in jobs.pipelines",
            ));
        }
    }
    JobsConfig {
        num_pollers: pool.settings.num_workers + 2,
        pipeline_size,
        timeout,
        pool,
        consume,
        pipelines,
        brokers: brokers.clone(),
    }
}

fn retry(raw: Option<RetryRaw>, prefix: &str, ctx: &mut Ctx<'_>) -> RetryPolicy {
    let Some(raw) = raw else {
        return RetryPolicy::default();
    };
    let p = format!("{prefix}.retry");
    RetryPolicy {
        max_attempts: ctx
            .uint_max(
                &format!("{p}.max_attempts"),
                raw.max_attempts.as_ref(),
                u64::from(u32::MAX),
            )
            .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)),
        delay: ctx
            .duration(&format!("{p}.delay"), raw.delay.as_ref())
            .unwrap_or_default(),
        failed_pipeline: ctx.string(
            &format!("{p}.failed_pipeline"),
            raw.failed_pipeline.as_ref(),
        ),
    }
}

/// Reads one driver's `config` mapping by its key list; unknown keys are warned with
/// their full path.
fn typed<T: for<'de> Deserialize<'de> + Default>(
    config: Mapping,
    prefix: &str,
    ctx: &mut Ctx<'_>,
) -> T {
    let mut unknown = Vec::new();
    let mut on_unknown = |p: serde_ignored::Path<'_>| unknown.push(p.to_string());
    let de = serde_ignored::Deserializer::new(Value::Mapping(config), &mut on_unknown);
    let out = match T::deserialize(de) {
        Ok(t) => t,
        Err(e) => {
            ctx.error(ConfigError::invalid(prefix, e.to_string(), "a mapping"));
            T::default()
        }
    };
    for key in unknown {
        ctx.warn(format!("unknown key {prefix}.{key} (ignored)"));
    }
    out
}

fn priority(ctx: &mut Ctx<'_>, key: &str, v: &V) -> i64 {
    match v.as_ref() {
        None | Some(Value::Null) => RR_PRIORITY,
        Some(v) => match ctx.uint(key, Some(v)) {
            Some(n) => i64::try_from(n).unwrap_or(i64::MAX),
            None => RR_PRIORITY,
        },
    }
}

fn pipeline(
    name: &str,
    driver: &str,
    config: Mapping,
    retry: RetryPolicy,
    brokers: &Brokers,
    prefix: &str,
    ctx: &mut Ctx<'_>,
) -> Option<PipelineConfig> {
    let cp = format!("{prefix}.config");
    let (priority, driver) = match driver {
        "memory" => {
            let raw: MemoryRaw = typed(config, &cp, ctx);
            let prefetch = match ctx.uint(&format!("{cp}.prefetch"), raw.prefetch.as_ref()) {
                None | Some(0) => 100_000,
                Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
            };
            (
                priority(ctx, &format!("{cp}.priority"), &raw.priority),
                DriverConfig::Memory(MemoryConfig { prefetch }),
            )
        }
        "amqp" => {
            let raw: AmqpRaw = typed(config, &cp, ctx);
            let Some(broker) = brokers.amqp.as_ref() else {
                ctx.error(ConfigError::Missing {
                    key: "amqp".to_string(),
                    hint: format!(
                        "pipeline {name} uses driver amqp; add amqp: {{ addr: {DEFAULT_AMQP_ADDR} }}"
                    ),
                });
                return None;
            };
            let addr = ctx
                .string("amqp.addr", broker.addr.as_ref())
                .unwrap_or_else(|| DEFAULT_AMQP_ADDR.to_string());
            if !addr.starts_with("amqp://") {
                ctx.error(ConfigError::invalid(
                    "amqp.addr",
                    format!("{addr:?}"),
                    "amqp://user:password@host:port/vhost (amqps:// is not implemented by pacer)",
                ));
            }
            let Some(queue) = ctx.string(&format!("{cp}.queue"), raw.queue.as_ref()) else {
                ctx.error(ConfigError::Missing {
                    key: format!("{cp}.queue"),
                    hint: "the RabbitMQ queue to consume".to_string(),
                });
                return None;
            };
            let flag = |ctx: &mut Ctx<'_>, k: &str, v: &V| {
                ctx.boolean(&format!("{cp}.{k}"), v.as_ref())
                    .unwrap_or(false)
            };
            let prefetch = match ctx.uint_max(
                &format!("{cp}.prefetch"),
                raw.prefetch.as_ref(),
                u64::from(u16::MAX),
            ) {
                None | Some(0) => 10,
                Some(n) => u16::try_from(n).unwrap_or(u16::MAX),
            };
            let exchange_type = ctx
                .string(&format!("{cp}.exchange_type"), raw.exchange_type.as_ref())
                .unwrap_or_else(|| "direct".to_string());
            if !["direct", "fanout", "topic", "headers"].contains(&exchange_type.as_str()) {
                ctx.error(ConfigError::invalid(
                    &format!("{cp}.exchange_type"),
                    format!("{exchange_type:?}"),
                    "direct, fanout, topic or headers",
                ));
            }
            let _ = flag(ctx, "exchange_declare", &raw.exchange_declare);
            let amqp = AmqpConfig {
                addr,
                prefetch,
                queue,
                exchange: ctx
                    .string(&format!("{cp}.exchange"), raw.exchange.as_ref())
                    .unwrap_or_else(|| "amqp.default".to_string()),
                exchange_type,
                routing_key: ctx
                    .string(&format!("{cp}.routing_key"), raw.routing_key.as_ref())
                    .unwrap_or_default(),
                exclusive: flag(ctx, "exclusive", &raw.exclusive),
                multiple_ack: flag(ctx, "multiple_ack", &raw.multiple_ack),
                requeue_on_fail: flag(ctx, "requeue_on_fail", &raw.requeue_on_fail),
                durable: flag(ctx, "durable", &raw.durable),
                exchange_durable: flag(ctx, "exchange_durable", &raw.exchange_durable),
                exchange_auto_delete: flag(ctx, "exchange_auto_delete", &raw.exchange_auto_delete),
                queue_auto_delete: flag(ctx, "queue_auto_delete", &raw.queue_auto_delete),
                delete_queue_on_stop: flag(ctx, "delete_queue_on_stop", &raw.delete_queue_on_stop),
                consumer_id: ctx.string(&format!("{cp}.consumer_id"), raw.consumer_id.as_ref()),
                queue_headers: queue_headers(
                    ctx,
                    &format!("{cp}.queue_headers"),
                    &raw.queue_headers,
                ),
                redial_timeout: ctx
                    .duration(&format!("{cp}.redial_timeout"), raw.redial_timeout.as_ref())
                    .unwrap_or(Duration::from_secs(60)),
            };
            (
                priority(ctx, &format!("{cp}.priority"), &raw.priority),
                DriverConfig::Amqp(amqp),
            )
        }
        "beanstalk" => {
            let raw: BeanstalkRaw = typed(config, &cp, ctx);
            let Some(broker) = brokers.beanstalk.as_ref() else {
                ctx.error(ConfigError::Missing {
                    key: "beanstalk".to_string(),
                    hint: format!(
                        "pipeline {name} uses driver beanstalk; add beanstalk: {{ addr: {DEFAULT_BEANSTALK_ADDR} }}"
                    ),
                });
                return None;
            };
            let beanstalk = beanstalk(&raw, broker, &cp, ctx)?;
            (
                priority(ctx, &format!("{cp}.priority"), &raw.priority),
                DriverConfig::Beanstalk(beanstalk),
            )
        }
        "nats" => {
            let raw: NatsRaw = typed(config, &cp, ctx);
            let Some(broker) = brokers.nats.as_ref() else {
                ctx.error(ConfigError::Missing {
                    key: "nats".to_string(),
                    hint: format!(
                        "pipeline {name} uses driver nats; add nats: {{ addr: {DEFAULT_NATS_ADDR} }}"
                    ),
                });
                return None;
            };
            let nats = nats(&raw, broker, &cp, ctx)?;
            (
                priority(ctx, &format!("{cp}.priority"), &raw.priority),
                DriverConfig::Nats(nats),
            )
        }
        "sqs" | "kafka" | "boltdb" | "gcp-pubsub" | "google-pub-sub" => {
            ctx.error(ConfigError::invalid(
                &format!("{prefix}.driver"),
                format!("{driver:?}"),
                "a driver pacer implements: memory, amqp, beanstalk or nats",
            ));
            return None;
        }
        other => {
            ctx.error(ConfigError::invalid(
                &format!("{prefix}.driver"),
                format!("{other:?}"),
                "memory, amqp, beanstalk or nats",
            ));
            return None;
        }
    };
    Some(PipelineConfig {
        name: name.to_string(),
        priority,
        driver,
        retry,
    })
}

/// RR reads these as whole seconds; a Go duration string is accepted too. `None` when
/// absent or zero.
fn seconds(ctx: &mut Ctx<'_>, key: &str, v: &V) -> Option<Duration> {
    match v {
        Some(Value::String(s)) if s.trim().parse::<u64>().is_err() => ctx.duration(key, v.as_ref()),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok().map(Duration::from_secs),
        other => ctx.uint(key, other.as_ref()).map(Duration::from_secs),
    }
    .filter(|d| !d.is_zero())
}

fn beanstalk(
    raw: &BeanstalkRaw,
    broker: &BrokerRaw,
    cp: &str,
    ctx: &mut Ctx<'_>,
) -> Option<BeanstalkConfig> {
    let addr = ctx
        .string("beanstalk.addr", broker.addr.as_ref())
        .unwrap_or_else(|| DEFAULT_BEANSTALK_ADDR.to_string());
    let Some(host_port) = addr.strip_prefix("tcp://").filter(|hp| {
        hp.rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
    }) else {
        ctx.error(ConfigError::invalid(
            "beanstalk.addr",
            format!("{addr:?}"),
            "tcp://host:port (unix:// is not implemented by pacer)",
        ));
        return None;
    };
    let tube = ctx
        .string(&format!("{cp}.tube"), raw.tube.as_ref())
        .unwrap_or_else(|| "default".to_string());
    if !crate::jobs::beanstalk::wire::valid_tube(&tube) {
        ctx.error(ConfigError::invalid(
            &format!("{cp}.tube"),
            format!("{tube:?}"),
            "1–200 letters, digits or -+/;.$_(), not starting with -",
        ));
        return None;
    }
    let prefetch = match ctx.uint_max(&format!("{cp}.prefetch"), raw.prefetch.as_ref(), 65_536) {
        None | Some(0) => 10,
        Some(n) => usize::try_from(n).unwrap_or(10),
    };
    let tube_priority = ctx
        .uint_max(
            &format!("{cp}.tube_priority"),
            raw.tube_priority.as_ref(),
            u64::from(u32::MAX),
        )
        .map_or(1, |n| u32::try_from(n).unwrap_or(u32::MAX));
    let _ = ctx.boolean(&format!("{cp}.consume_all"), raw.consume_all.as_ref());
    Some(BeanstalkConfig {
        addr: host_port.to_string(),
        timeout: seconds(ctx, "beanstalk.timeout", &broker.timeout)
            .unwrap_or(Duration::from_secs(30)),
        tube,
        tube_priority,
        reserve_timeout: seconds(ctx, &format!("{cp}.reserve_timeout"), &raw.reserve_timeout)
            .unwrap_or(Duration::from_secs(5)),
        prefetch,
    })
}

fn nats(raw: &NatsRaw, broker: &BrokerRaw, cp: &str, ctx: &mut Ctx<'_>) -> Option<NatsConfig> {
    let addr = ctx
        .string("nats.addr", broker.addr.as_ref())
        .unwrap_or_else(|| DEFAULT_NATS_ADDR.to_string());
    if !addr.starts_with("nats://") {
        ctx.error(ConfigError::invalid(
            "nats.addr",
            format!("{addr:?}"),
            "nats://host:port (tls:// and websockets are not implemented by pacer)",
        ));
        return None;
    }
    let subject = ctx
        .string(&format!("{cp}.subject"), raw.subject.as_ref())
        .unwrap_or_else(|| "default".to_string());
    let stream = ctx
        .string(&format!("{cp}.stream"), raw.stream.as_ref())
        .unwrap_or_else(|| "default-stream".to_string());
    if subject.is_empty() || subject.contains(char::is_whitespace) {
        ctx.error(ConfigError::invalid(
            &format!("{cp}.subject"),
            format!("{subject:?}"),
            "a NATS subject (no spaces)",
        ));
        return None;
    }
    if stream.is_empty() || stream.contains(|c: char| c.is_whitespace() || ".*>/\\".contains(c)) {
        ctx.error(ConfigError::invalid(
            &format!("{cp}.stream"),
            format!("{stream:?}"),
            "a JetStream stream name (no spaces, dots, *, >, slashes)",
        ));
        return None;
    }
    let prefetch = match ctx.uint_max(&format!("{cp}.prefetch"), raw.prefetch.as_ref(), 65_536) {
        None | Some(0) => 100,
        Some(n) => usize::try_from(n).unwrap_or(100),
    };
    if raw.rate_limit.as_ref().is_some_and(|v| !v.is_null()) {
        ctx.warn(format!(
            "{cp}.rate_limit is not used by pacer (ignored): prefetch bounds a pull consumer"
        ));
    }
    let flag = |ctx: &mut Ctx<'_>, k: &str, v: &V| {
        ctx.boolean(&format!("{cp}.{k}"), v.as_ref())
            .unwrap_or(false)
    };
    let _ = flag(ctx, "consume_all", &raw.consume_all);
    Some(NatsConfig {
        addr,
        timeout: seconds(ctx, "nats.timeout", &broker.timeout).unwrap_or(Duration::from_secs(10)),
        subject,
        stream,
        prefetch,
        deliver_new: flag(ctx, "deliver_new", &raw.deliver_new),
        delete_stream_on_stop: flag(ctx, "delete_stream_on_stop", &raw.delete_stream_on_stop),
        delete_after_ack: flag(ctx, "delete_after_ack", &raw.delete_after_ack),
        ack_wait: seconds(ctx, &format!("{cp}.ack_wait"), &raw.ack_wait)
            .unwrap_or(Duration::from_secs(30)),
    })
}

/// `queue_headers`: a mapping of declare arguments; in a `jobs.Declare` map it arrives as
/// a JSON object in a string.
fn queue_headers(ctx: &mut Ctx<'_>, key: &str, v: &V) -> Vec<(String, String)> {
    match v {
        Some(Value::String(s)) if s.trim_start().starts_with('{') => {
            match serde_json::from_str::<BTreeMap<String, serde_json::Value>>(s) {
                Ok(m) => m
                    .into_iter()
                    .map(|(k, v)| {
                        let v = match v {
                            serde_json::Value::String(s) => s,
                            other => other.to_string(),
                        };
                        (k, v)
                    })
                    .collect(),
                Err(_) => {
                    ctx.error(ConfigError::invalid(key, format!("{s:?}"), "a mapping"));
                    Vec::new()
                }
            }
        }
        other => ctx.string_map(key, other.as_ref()),
    }
}

/// A pipeline from `jobs.Declare`: the PHP library's flat string map (`name`, `driver`,
/// `priority` and the driver's keys). Broker sections come from the running config.
pub fn pipeline_from_map(
    map: &BTreeMap<String, String>,
    brokers: &Brokers,
) -> Result<PipelineConfig, ConfigError> {
    let host = Host::current();
    let mut ctx = Ctx::new(&host, std::path::PathBuf::from("."));
    let name = map.get("name").cloned().unwrap_or_default();
    let driver = map.get("driver").cloned().unwrap_or_default();
    if name.is_empty() || driver.is_empty() {
        return Err(ConfigError::Missing {
            key: if name.is_empty() { "name" } else { "driver" }.to_string(),
            hint: "jobs.Declare needs the pipeline's name and driver".to_string(),
        });
    }
    let mut config = Mapping::new();
    for (k, v) in map {
        if k != "name" && k != "driver" && k != "pool" {
            config.insert(Value::String(k.clone()), Value::String(v.clone()));
        }
    }
    let prefix = format!("pipeline {name}");
    let pipe = pipeline(
        &name,
        &driver,
        config,
        RetryPolicy::default(),
        brokers,
        &prefix,
        &mut ctx,
    );
    ConfigError::check(std::mem::take(&mut ctx.errors))?;
    for warning in &ctx.warnings {
        tracing::warn!(%warning, "jobs.Declare");
    }
    pipe.ok_or_else(|| ConfigError::Missing {
        key: prefix,
        hint: "a valid pipeline".to_string(),
    })
}
