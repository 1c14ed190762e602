//! `logs.encoding: json` in RoadRunner's shape: one JSON object per line, as zap's
//! production encoder writes it — `{"level":"info","ts":<unix ns>,"logger":"http",
//! "msg":"…", <fields>}` — so that whatever reads RoadRunner's log reads pacer's. Laravel
//! Octane does: it starts `rr` with `logs.encoding=json` on stdout and decodes every line,
//! needing `level`, `logger` and `msg` in each (`tests/octane_contract.rs`).
//!
//! Two of pacer's records are written as RoadRunner writes the same events:
//! * a line a worker printed (target `pacer::worker::output`) has the `server` logger and
//!   the line itself as its `msg`, as RoadRunner's server plugin logs worker output (Octane
//!   shows it, and decodes a JSON line there as its worker's report);
//! * the access log record (`pacer::access`, with `http.access_logs`) is RoadRunner's
//!   `http log`: `status`, `method`, `URI` (the path), `remote_address` and `elapsed`
//!   (a Go duration such as `1.25ms`, which both Octane 1.x and 2.x read as milliseconds).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::format_go_duration;

/// The RoadRunner logger (channel) name of a pacer target: `pacer::worker…` → `server`.
pub type ChannelOf = fn(&str) -> &'static str;

/// The event formatter; `channel` maps targets to RoadRunner's logger names.
#[derive(Debug, Clone, Copy)]
pub struct ZapJson {
    pub channel: ChannelOf,
}

impl<S, N> FormatEvent<S, N> for ZapJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        let line = render(
            *meta.level(),
            ts,
            meta.target(),
            (self.channel)(meta.target()),
            fields,
        );
        writeln!(writer, "{line}")
    }
}

/// One record as RoadRunner's line (pure: the clock is `ts`).
fn render(level: Level, ts: i64, target: &str, logger: &str, mut fields: Fields) -> String {
    let mut msg = fields.message.take().unwrap_or_default();
    let mut rest = fields.values;
    if target.starts_with("pacer::worker::output")
        && let Some(Value::String(line)) = rest.remove("line")
    {
        msg = line;
        rest.remove("stream");
    } else if target == "pacer::access" {
        msg = "http log".to_string();
        for (from, to) in [("path", "URI"), ("remote", "remote_address")] {
            if let Some(v) = rest.remove(from) {
                rest.insert(to.to_string(), v);
            }
        }
        if let Some(ms) = rest.remove("elapsed_ms").and_then(|v| v.as_f64()) {
            let elapsed = Duration::from_secs_f64(ms.max(0.0) / 1e3);
            rest.insert("elapsed".into(), Value::String(format_go_duration(elapsed)));
        }
    }
    let mut out = Map::new();
    out.insert(
        "level".into(),
        Value::String(level.as_str().to_ascii_lowercase()),
    );
    out.insert("ts".into(), Value::from(ts));
    out.insert("logger".into(), Value::String(logger.to_string()));
    out.insert("msg".into(), Value::String(msg));
    for (k, v) in rest {
        out.entry(k).or_insert(v);
    }
    Value::Object(out).to_string()
}

/// An event's message and fields as JSON values.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    values: Map<String, Value>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_string()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::String(value.to_string()));
    }
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = Some(match value {
                Value::String(s) => s,
                other => other.to_string(),
            });
        } else {
            self.values.insert(field.name().to_string(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(message: &str, values: &[(&str, Value)]) -> Fields {
        Fields {
            message: Some(message.to_string()),
            values: values
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        }
    }

    fn parse(line: &str) -> Value {
        serde_json::from_str(line).unwrap()
    }

    #[test]
    fn records_have_roadrunners_keys() {
        let line = render(
            Level::WARN,
            1_700_000_000_123_456_789,
            "pacer::pool",
            "pool",
            fields("worker exited unexpectedly", &[("pid", Value::from(42))]),
        );
        assert_eq!(
            parse(&line),
            serde_json::json!({"level": "warn", "ts": 1_700_000_000_123_456_789_i64,
                "logger": "pool", "msg": "worker exited unexpectedly", "pid": 42})
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn worker_output_is_the_message_of_the_server_logger() {
        let report = r#"{"type":"throwable","class":"RuntimeException","message":"boom"}"#;
        let line = render(
            Level::INFO,
            1,
            "pacer::worker::output",
            "server",
            fields(
                "worker output",
                &[
                    ("pid", Value::from(7)),
                    ("stream", "stderr".into()),
                    ("line", report.into()),
                ],
            ),
        );
        let v = parse(&line);
        assert_eq!(v["logger"], "server");
        assert_eq!(v["msg"], report, "the line itself, decodable as JSON");
        assert_eq!(v["pid"], 7);
        assert!(v.get("stream").is_none());
    }

    #[test]
    fn access_record_is_roadrunners_http_log() {
        let line = render(
            Level::INFO,
            1,
            "pacer::access",
            "http",
            fields(
                "request",
                &[
                    ("method", "GET".into()),
                    ("path", "/posts/1".into()),
                    ("status", Value::from(200)),
                    ("elapsed_ms", Value::from(1.25)),
                    ("remote", "127.0.0.1".into()),
                ],
            ),
        );
        assert_eq!(
            parse(&line),
            serde_json::json!({"level": "info", "ts": 1, "logger": "http", "msg": "http log",
                "method": "GET", "URI": "/posts/1", "status": 200, "elapsed": "1.25ms",
                "remote_address": "127.0.0.1"})
        );
    }
}
