//! The effective configuration, written back in RoadRunner's shape and units (MB, Go
//! durations), with every default filled in: what `pacer config check` prints and what
//! the `rpc.Config` RPC method returns. Parsing the output again gives the same
//! [`Config`].

use serde_json::{Map, Value, json};

use super::duration::format_go_duration;
use super::types::*;
use crate::pool::PoolSettings;

const MIB: u64 = 1024 * 1024;

/// The effective config as JSON, keyed like the input file.
pub fn to_json(c: &Config) -> Value {
    let mut root = Map::new();
    root.insert("version".into(), json!(c.version));
    if let Some(rpc) = &c.rpc {
        root.insert("rpc".into(), json!({ "listen": rpc.listen.to_string() }));
    }
    root.insert("server".into(), server(&c.server));
    if let Some(h) = &c.http {
        root.insert("http".into(), http(h));
    }
    if let Some(s) = &c.status {
        root.insert(
            "status".into(),
            json!({
                "address": s.address.to_string(),
                "unavailable_status_code": s.unavailable_status_code,
                "check_timeout": format_go_duration(s.check_timeout),
            }),
        );
    }
    if let Some(m) = &c.metrics {
        root.insert("metrics".into(), metrics(m));
    }
    root.insert("logs".into(), logs(&c.logs));
    if let Some(r) = &c.reload {
        root.insert("reload".into(), reload(r));
    }
    root.insert(
        "pacer".into(),
        json!({
            "shutdown": {
                "delay": format_go_duration(c.pacer.shutdown.delay),
                "grace_period": format_go_duration(c.pacer.shutdown.grace_period),
            },
            "runtime": { "threads": c.pacer.runtime.threads },
        }),
    );
    Value::Object(root)
}

/// The effective config as YAML (`pacer config check`).
pub fn effective_yaml(c: &Config) -> String {
    let body = serde_yaml::to_string(&to_json(c))
        .unwrap_or_else(|e| format!("# cannot render the config: {e}\n"));
    format!(
        "# effective configuration (defaults filled in; relative paths from {})\n{body}",
        c.workdir.display()
    )
}

/// Paths as text (lossy for the odd non-UTF-8 path rather than failing).
fn path(p: &std::path::Path) -> Value {
    Value::String(p.to_string_lossy().into_owned())
}

fn paths(ps: &[std::path::PathBuf]) -> Value {
    Value::Array(ps.iter().map(|p| path(p)).collect())
}

fn pairs(p: &[(String, String)]) -> Value {
    Value::Object(
        p.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

fn server(s: &ServerConfig) -> Value {
    let mut m = Map::new();
    m.insert("command".into(), json!(s.command));
    m.insert("env".into(), json!(s.env));
    m.insert("relay".into(), json!(s.relay.to_string()));
    if let Some(u) = &s.user {
        m.insert("user".into(), json!(u));
    }
    if let Some(g) = &s.group {
        m.insert("group".into(), json!(g));
    }
    Value::Object(m)
}

fn filter(f: &ExtensionFilter) -> (Value, Value) {
    (json!(f.forbid), json!(f.allow))
}

fn http(h: &HttpConfig) -> Value {
    let mut m = Map::new();
    if let Some(a) = h.address {
        m.insert("address".into(), json!(a.to_string()));
    }
    m.insert("max_request_size".into(), json!(h.max_request_size / MIB));
    m.insert("internal_error_code".into(), json!(h.internal_error_code));
    m.insert("access_logs".into(), json!(h.access_logs));
    m.insert("raw_body".into(), json!(h.raw_body));
    m.insert(
        "middleware".into(),
        json!(h.middleware.iter().map(|m| m.as_str()).collect::<Vec<_>>()),
    );
    m.insert(
        "trusted_subnets".into(),
        json!(
            h.trusted_subnets
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        ),
    );
    let (forbid, allow) = filter(&h.uploads.filter);
    m.insert(
        "uploads".into(),
        json!({ "dir": path(&h.uploads.dir), "forbid": forbid, "allow": allow }),
    );
    if let Some(s) = &h.static_files {
        let (forbid, allow) = filter(&s.filter);
        m.insert(
            "static".into(),
            json!({
                "dir": path(&s.dir),
                "forbid": forbid,
                "allow": allow,
                "calculate_etag": s.calculate_etag,
                "weak": s.weak,
                "request": pairs(&s.request_headers),
                "response": pairs(&s.response_headers),
            }),
        );
    }
    if let Some(hd) = &h.headers {
        let mut hm = Map::new();
        if let Some(c) = &hd.cors {
            let mut cm = Map::new();
            cm.insert("allowed_origin".into(), json!(c.allowed_origin));
            if let Some(r) = &c.allowed_origin_regex {
                cm.insert("allowed_origin_regex".into(), json!(r));
            }
            cm.insert("allowed_headers".into(), json!(c.allowed_headers));
            cm.insert("allowed_methods".into(), json!(c.allowed_methods));
            cm.insert("allow_credentials".into(), json!(c.allow_credentials));
            cm.insert("exposed_headers".into(), json!(c.exposed_headers));
            cm.insert("max_age".into(), json!(c.max_age));
            cm.insert(
                "options_success_status".into(),
                json!(c.options_success_status),
            );
            cm.insert("debug".into(), json!(c.debug));
            hm.insert("cors".into(), Value::Object(cm));
        }
        hm.insert("request".into(), pairs(&hd.request));
        hm.insert("response".into(), pairs(&hd.response));
        m.insert("headers".into(), Value::Object(hm));
    }
    if let Some(s) = &h.ssl {
        let mut sm = Map::new();
        sm.insert("address".into(), json!(s.address.to_string()));
        sm.insert("redirect".into(), json!(s.redirect));
        sm.insert("cert".into(), path(&s.cert));
        sm.insert("key".into(), path(&s.key));
        if let Some(ca) = &s.root_ca {
            sm.insert("root_ca".into(), path(ca));
        }
        m.insert("ssl".into(), Value::Object(sm));
    }
    m.insert(
        "http2".into(),
        json!({
            "h2c": h.http2.h2c,
            "max_concurrent_streams": h.http2.max_concurrent_streams,
        }),
    );
    m.insert("pool".into(), pool(&h.pool));
    Value::Object(m)
}

fn opt_duration(d: Option<std::time::Duration>) -> Value {
    json!(format_go_duration(d.unwrap_or_default()))
}

fn pool(p: &PoolConfig) -> Value {
    let s: &PoolSettings = &p.settings;
    let mut m = Map::new();
    m.insert("debug".into(), json!(s.debug));
    if let Some(c) = &p.command {
        m.insert("command".into(), json!(c));
    }
    m.insert("num_workers".into(), json!(s.num_workers));
    m.insert("max_jobs".into(), json!(s.max_jobs));
    m.insert("max_queue_size".into(), json!(s.max_queue_size));
    for (k, d) in [
        ("allocate_timeout", s.allocate_timeout),
        ("destroy_timeout", s.destroy_timeout),
        ("reset_timeout", s.reset_timeout),
        ("stream_timeout", s.stream_timeout),
    ] {
        m.insert(k.into(), json!(format_go_duration(d)));
    }
    let sv = &s.supervisor;
    m.insert(
        "supervisor".into(),
        json!({
            "watch_tick": format_go_duration(sv.watch_tick),
            "ttl": opt_duration(sv.ttl),
            "idle_ttl": opt_duration(sv.idle_ttl),
            "max_worker_memory": sv.max_worker_memory.unwrap_or(0) / MIB,
            "exec_ttl": opt_duration(sv.exec_ttl),
        }),
    );
    Value::Object(m)
}

fn metrics(m: &MetricsConfig) -> Value {
    let collect: Map<String, Value> = m
        .collect
        .iter()
        .map(|(name, c)| {
            let mut cm = Map::new();
            cm.insert("type".into(), json!(c.kind.as_str()));
            cm.insert("help".into(), json!(c.help));
            if let Some(n) = &c.namespace {
                cm.insert("namespace".into(), json!(n));
            }
            if let Some(s) = &c.subsystem {
                cm.insert("subsystem".into(), json!(s));
            }
            cm.insert("labels".into(), json!(c.labels));
            cm.insert("buckets".into(), json!(c.buckets));
            cm.insert(
                "objectives".into(),
                Value::Array(
                    c.objectives
                        .iter()
                        .map(|(q, e)| json!({ q.to_string(): e }))
                        .collect(),
                ),
            );
            (name.clone(), Value::Object(cm))
        })
        .collect();
    json!({ "address": m.address.to_string(), "collect": collect })
}

fn outputs(o: &[LogOutput]) -> Value {
    json!(
        o.iter()
            .map(|o| match o {
                LogOutput::Stderr => "stderr".to_string(),
                LogOutput::Stdout => "stdout".to_string(),
                LogOutput::File(p) => p.to_string_lossy().into_owned(),
            })
            .collect::<Vec<_>>()
    )
}

fn logs(l: &LogsConfig) -> Value {
    let channels: Map<String, Value> = l
        .channels
        .iter()
        .map(|(name, level)| (name.clone(), json!({ "level": level.as_str() })))
        .collect();
    json!({
        "mode": l.mode.as_str(),
        "level": l.level.as_str(),
        "encoding": l.encoding.as_str(),
        "output": outputs(&l.output),
        "err_output": outputs(&l.err_output),
        "channels": channels,
    })
}

fn reload(r: &ReloadConfig) -> Value {
    let mut services = Map::new();
    if let Some(s) = &r.http {
        services.insert(
            "http".into(),
            json!({
                "dirs": paths(&s.dirs),
                "recursive": s.recursive,
                "ignore": paths(&s.ignore),
                "patterns": s.patterns,
            }),
        );
    }
    json!({
        "interval": format_go_duration(r.interval),
        "patterns": r.patterns,
        "services": services,
    })
}
