//! The effective configuration, written back in RoadRunner's shape and units (MB, Go
//! durations), with every default filled in: what `pacer config check` prints and what
//! the `rpc.Config` RPC method returns. Parsing the output again gives the same
//! [`Config`].

use serde_yaml::{Mapping, Value};

use super::duration::format_go_duration;
use super::types::*;
use crate::pool::PoolSettings;

const MIB: u64 = 1024 * 1024;

/// The effective config as JSON, keyed like the input file.
pub fn to_json(c: &Config) -> serde_json::Value {
    serde_json::to_value(to_tree(c)).unwrap_or(serde_json::Value::Null)
}

/// The effective config as YAML (`pacer config check`), sections in the usual order.
pub fn effective_yaml(c: &Config) -> String {
    let body = serde_yaml::to_string(&to_tree(c))
        .unwrap_or_else(|e| format!("# cannot render the config: {e}\n"));
    format!(
        "# effective configuration (defaults filled in; relative paths from {})\n{body}",
        c.workdir.display()
    )
}

/// An ordered mapping under construction.
struct M(Mapping);

impl M {
    fn new() -> M {
        M(Mapping::new())
    }

    fn put(mut self, key: &str, v: impl Into<Value>) -> M {
        self.0.insert(Value::String(key.to_string()), v.into());
        self
    }

    fn put_opt(self, key: &str, v: Option<impl Into<Value>>) -> M {
        match v {
            Some(v) => self.put(key, v),
            None => self,
        }
    }
}

impl From<M> for Value {
    fn from(m: M) -> Value {
        Value::Mapping(m.0)
    }
}

fn dur(d: std::time::Duration) -> Value {
    Value::String(format_go_duration(d))
}

/// Paths as text (lossy for the odd non-UTF-8 path rather than failing).
fn path(p: &std::path::Path) -> Value {
    Value::String(p.to_string_lossy().into_owned())
}

fn paths(ps: &[std::path::PathBuf]) -> Value {
    Value::Sequence(ps.iter().map(|p| path(p)).collect())
}

fn strings(s: &[String]) -> Value {
    Value::Sequence(s.iter().map(|s| Value::String(s.clone())).collect())
}

fn pairs<'a>(p: impl IntoIterator<Item = (&'a String, &'a String)>) -> Value {
    Value::Mapping(
        p.into_iter()
            .map(|(k, v)| (Value::String(k.clone()), Value::String(v.clone())))
            .collect(),
    )
}

pub(crate) fn to_tree(c: &Config) -> Value {
    M::new()
        .put("version", c.version.as_str())
        .put_opt(
            "rpc",
            c.rpc
                .as_ref()
                .map(|r| M::new().put("listen", r.listen.to_string())),
        )
        .put("server", server(&c.server))
        .put_opt("http", c.http.as_ref().map(http))
        .put_opt(
            "status",
            c.status.as_ref().map(|s| {
                M::new()
                    .put("address", s.address.to_string())
                    .put(
                        "unavailable_status_code",
                        u64::from(s.unavailable_status_code),
                    )
                    .put("check_timeout", dur(s.check_timeout))
            }),
        )
        .put_opt("metrics", c.metrics.as_ref().map(metrics))
        .put("logs", logs(&c.logs))
        .put_opt("reload", c.reload.as_ref().map(reload))
        .put_opt("jobs", c.jobs.as_ref().map(jobs))
        .put_opt(
            "amqp",
            c.jobs
                .as_ref()
                .and_then(|j| broker(j.brokers.amqp.as_ref())),
        )
        .put_opt(
            "beanstalk",
            c.jobs
                .as_ref()
                .and_then(|j| broker(j.brokers.beanstalk.as_ref())),
        )
        .put_opt(
            "nats",
            c.jobs
                .as_ref()
                .and_then(|j| broker(j.brokers.nats.as_ref())),
        )
        .put_opt(
            "service",
            (!c.services.is_empty()).then(|| services(&c.services)),
        )
        .put_opt("otel", c.otel.as_ref().map(otel))
        .put(
            "pacer",
            M::new()
                .put(
                    "shutdown",
                    M::new()
                        .put("delay", dur(c.pacer.shutdown.delay))
                        .put("grace_period", dur(c.pacer.shutdown.grace_period)),
                )
                .put(
                    "runtime",
                    M::new()
                        .put("threads", c.pacer.runtime.threads as u64)
                        .put("shards", c.pacer.runtime.shards as u64)
                        .put("pin", c.pacer.runtime.pin),
                )
                .put(
                    "http",
                    M::new()
                        .put("header_read_timeout", dur(c.pacer.http.header_read_timeout))
                        .put(
                            "max_requests_per_connection",
                            c.pacer.http.max_requests_per_connection,
                        )
                        .put("max_header_count", c.pacer.http.max_header_count as u64)
                        .put("max_header_bytes", c.pacer.http.max_header_bytes as u64),
                )
                .put("readiness", readiness(&c.pacer.readiness)),
        )
        .into()
}

fn readiness(r: &ReadinessConfig) -> M {
    match r {
        ReadinessConfig::Accepting => M::new().put("mode", "accepting"),
        ReadinessConfig::Saturation(s) => M::new()
            .put("mode", "saturation")
            .put("queue_high", s.queue_high as u64)
            .put("queue_low", s.queue_low as u64)
            .put("high_for", dur(s.high_for))
            .put("low_for", dur(s.low_for)),
    }
}

fn server(s: &ServerConfig) -> M {
    M::new()
        .put("command", strings(&s.command))
        .put("env", pairs(&s.env))
        .put("relay", s.relay.to_string())
        .put_opt("user", s.user.as_deref())
        .put_opt("group", s.group.as_deref())
}

fn filter(m: M, f: &ExtensionFilter) -> M {
    m.put("forbid", strings(&f.forbid))
        .put("allow", strings(&f.allow))
}

fn header_pairs(p: &[(String, String)]) -> Value {
    pairs(p.iter().map(|(k, v)| (k, v)))
}

fn http(h: &HttpConfig) -> M {
    let m = M::new()
        .put_opt("address", h.address.map(|a| a.to_string()))
        .put("max_request_size", h.max_request_size / MIB)
        .put("internal_error_code", u64::from(h.internal_error_code))
        .put("access_logs", h.access_logs)
        .put("raw_body", h.raw_body)
        .put(
            "middleware",
            h.middleware.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
        )
        .put(
            "trusted_subnets",
            h.trusted_subnets
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
        )
        .put(
            "uploads",
            filter(M::new().put("dir", path(&h.uploads.dir)), &h.uploads.filter),
        )
        .put_opt(
            "static",
            h.static_files.as_ref().map(|s| {
                filter(M::new().put("dir", path(&s.dir)), &s.filter)
                    .put("calculate_etag", s.calculate_etag)
                    .put("weak", s.weak)
                    .put("request", header_pairs(&s.request_headers))
                    .put("response", header_pairs(&s.response_headers))
            }),
        )
        .put_opt("headers", h.headers.as_ref().map(headers))
        .put_opt(
            "sendfile",
            h.sendfile
                .as_ref()
                .map(|s| M::new().put("roots", paths(&s.roots))),
        )
        .put_opt(
            "ssl",
            h.ssl.as_ref().map(|s| {
                M::new()
                    .put("address", s.address.to_string())
                    .put("redirect", s.redirect)
                    .put("cert", path(&s.cert))
                    .put("key", path(&s.key))
                    .put_opt("root_ca", s.root_ca.as_deref().map(path))
            }),
        )
        .put(
            "http2",
            M::new().put("h2c", h.http2.h2c).put(
                "max_concurrent_streams",
                u64::from(h.http2.max_concurrent_streams),
            ),
        );
    m.put("pool", pool(&h.pool))
}

fn headers(h: &HeadersConfig) -> M {
    M::new()
        .put_opt(
            "cors",
            h.cors.as_ref().map(|c| {
                M::new()
                    .put("allowed_origin", c.allowed_origin.as_str())
                    .put_opt("allowed_origin_regex", c.allowed_origin_regex.as_deref())
                    .put("allowed_headers", c.allowed_headers.as_str())
                    .put("allowed_methods", c.allowed_methods.as_str())
                    .put("allow_credentials", c.allow_credentials)
                    .put("exposed_headers", c.exposed_headers.as_str())
                    .put("max_age", c.max_age)
                    .put(
                        "options_success_status",
                        u64::from(c.options_success_status),
                    )
                    .put("debug", c.debug)
            }),
        )
        .put("request", header_pairs(&h.request))
        .put("response", header_pairs(&h.response))
}

fn pool(p: &PoolConfig) -> M {
    let s: &PoolSettings = &p.settings;
    let sv = &s.supervisor;
    M::new()
        .put("debug", s.debug)
        .put_opt("command", p.command.as_deref().map(strings))
        .put("num_workers", s.num_workers as u64)
        .put("max_jobs", s.max_jobs)
        .put("max_queue_size", s.max_queue_size as u64)
        .put("allocate_timeout", dur(s.allocate_timeout))
        .put("destroy_timeout", dur(s.destroy_timeout))
        .put("reset_timeout", dur(s.reset_timeout))
        .put("stream_timeout", dur(s.stream_timeout))
        .put(
            "supervisor",
            M::new()
                .put("watch_tick", dur(sv.watch_tick))
                .put("ttl", dur(sv.ttl.unwrap_or_default()))
                .put("idle_ttl", dur(sv.idle_ttl.unwrap_or_default()))
                .put("max_worker_memory", sv.max_worker_memory.unwrap_or(0) / MIB)
                .put("exec_ttl", dur(sv.exec_ttl.unwrap_or_default())),
        )
}

fn metrics(m: &MetricsConfig) -> M {
    let collect: Mapping = m
        .collect
        .iter()
        .map(|(name, c)| {
            let objectives: Vec<Value> = c
                .objectives
                .iter()
                .map(|(q, e)| M::new().put(&q.to_string(), *e).into())
                .collect();
            let entry = M::new()
                .put("type", c.kind.as_str())
                .put("help", c.help.as_str())
                .put_opt("namespace", c.namespace.as_deref())
                .put_opt("subsystem", c.subsystem.as_deref())
                .put("labels", strings(&c.labels))
                .put("buckets", c.buckets.clone())
                .put("objectives", objectives);
            (Value::String(name.clone()), entry.into())
        })
        .collect();
    M::new()
        .put("address", m.address.to_string())
        .put("collect", collect)
}

fn outputs(o: &[LogOutput]) -> Value {
    Value::Sequence(
        o.iter()
            .map(|o| match o {
                LogOutput::Stderr => Value::from("stderr"),
                LogOutput::Stdout => Value::from("stdout"),
                LogOutput::File(p) => path(p),
            })
            .collect(),
    )
}

fn logs(l: &LogsConfig) -> M {
    let channels: Mapping = l
        .channels
        .iter()
        .map(|(name, level)| {
            (
                Value::String(name.clone()),
                M::new().put("level", level.as_str()).into(),
            )
        })
        .collect();
    M::new()
        .put("mode", l.mode.as_str())
        .put("level", l.level.as_str())
        .put("encoding", l.encoding.as_str())
        .put("output", outputs(&l.output))
        .put("err_output", outputs(&l.err_output))
        .put("channels", channels)
}

fn otel(o: &OtelConfig) -> M {
    let r = &o.resource;
    M::new()
        .put("exporter", o.exporter.as_str())
        .put("client", o.client.as_str())
        // The whole URL: it carries the scheme (`insecure`) and path (`custom_url`).
        .put("endpoint", o.url.as_str())
        .put("insecure", o.insecure)
        .put("compress", o.compress)
        .put("headers", pairs(o.headers.iter().map(|(k, v)| (k, v))))
        .put(
            "resource",
            M::new()
                .put("service_name", r.service_name.as_str())
                .put("service_version", r.service_version.as_str())
                .put_opt("service_instance_id", r.service_instance_id.as_deref())
                .put_opt("service_namespace", r.service_namespace.as_deref()),
        )
}

fn reload(r: &ReloadConfig) -> M {
    let services = M::new().put_opt(
        "http",
        r.http.as_ref().map(|s| {
            M::new()
                .put("dirs", paths(&s.dirs))
                .put("recursive", s.recursive)
                .put("ignore", paths(&s.ignore))
                .put("patterns", strings(&s.patterns))
        }),
    );
    M::new()
        .put("interval", dur(r.interval))
        .put("patterns", strings(&r.patterns))
        .put("services", services)
}

fn jobs(j: &super::JobsConfig) -> M {
    use super::DriverConfig;
    let mut pipelines = M::new();
    for p in &j.pipelines {
        let config = match &p.driver {
            DriverConfig::Memory(m) => M::new()
                .put("priority", p.priority)
                .put("prefetch", m.prefetch as u64),
            DriverConfig::Amqp(a) => M::new()
                .put("priority", p.priority)
                .put("prefetch", u64::from(a.prefetch))
                .put("queue", a.queue.as_str())
                .put("exchange", a.exchange.as_str())
                .put("exchange_type", a.exchange_type.as_str())
                .put("routing_key", a.routing_key.as_str())
                .put("exclusive", a.exclusive)
                .put("multiple_ack", a.multiple_ack)
                .put("requeue_on_fail", a.requeue_on_fail)
                .put("durable", a.durable)
                .put("exchange_durable", a.exchange_durable)
                .put("exchange_auto_delete", a.exchange_auto_delete)
                .put("queue_auto_delete", a.queue_auto_delete)
                .put("delete_queue_on_stop", a.delete_queue_on_stop)
                .put_opt("consumer_id", a.consumer_id.as_deref())
                .put(
                    "queue_headers",
                    pairs(a.queue_headers.iter().map(|(k, v)| (k, v))),
                )
                .put("redial_timeout", dur(a.redial_timeout)),
            DriverConfig::Beanstalk(b) => M::new()
                .put("priority", p.priority)
                .put("prefetch", b.prefetch as u64)
                .put("tube", b.tube.as_str())
                .put("tube_priority", u64::from(b.tube_priority))
                .put("reserve_timeout", dur(b.reserve_timeout)),
            DriverConfig::Nats(n) => M::new()
                .put("priority", p.priority)
                .put("prefetch", n.prefetch as u64)
                .put("subject", n.subject.as_str())
                .put("stream", n.stream.as_str())
                .put("deliver_new", n.deliver_new)
                .put("delete_stream_on_stop", n.delete_stream_on_stop)
                .put("delete_after_ack", n.delete_after_ack)
                .put("ack_wait", dur(n.ack_wait)),
        };
        let mut pipe = M::new()
            .put("driver", p.driver_name())
            .put("config", config);
        if p.retry.max_attempts > 0 {
            pipe = pipe.put(
                "retry",
                M::new()
                    .put("max_attempts", u64::from(p.retry.max_attempts))
                    .put("delay", dur(p.retry.delay))
                    .put_opt("failed_pipeline", p.retry.failed_pipeline.as_deref()),
            );
        }
        pipelines = pipelines.put(&p.name, pipe);
    }
    M::new()
        .put("pipeline_size", j.pipeline_size as u64)
        .put("timeout", dur(j.timeout))
        .put("pool", pool(&j.pool))
        .put("consume", strings(&j.consume))
        .put("pipelines", pipelines)
}

/// A broker section as it was written (its keys are read per pipeline).
fn broker(b: Option<&super::jobs::BrokerRaw>) -> Option<M> {
    let b = b?;
    let mut m = M::new();
    for (k, v) in [("addr", &b.addr), ("timeout", &b.timeout), ("tls", &b.tls)] {
        if let Some(v) = v.as_ref().filter(|v| !v.is_null()) {
            m = m.put(k, v.clone());
        }
    }
    Some(m)
}

fn services(list: &[super::ServiceConfig]) -> M {
    let mut m = M::new();
    for s in list {
        m = m.put(
            &s.name,
            M::new()
                .put("command", strings(&s.command))
                .put("process_num", s.process_num as u64)
                .put_opt("exec_timeout", s.exec_timeout.map(dur))
                .put("remain_after_exit", s.remain_after_exit)
                .put("restart_sec", s.restart_sec.as_secs())
                .put("timeout_stop_sec", s.timeout_stop_sec.as_secs())
                .put("env", pairs(s.env.iter().map(|(k, v)| (k, v))))
                .put("service_name_in_log", s.service_name_in_log),
        );
    }
    m
}
