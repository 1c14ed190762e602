//! `logs` → a tracing subscriber: level, per-channel levels (RoadRunner's channel names
//! mapped to pacer's module targets), encoding (console, or json in RoadRunner's shape:
//! `zap_json.rs`), mode (`raw` prints the message only) and outputs (stderr, stdout,
//! files — several at once).

use std::io::Write;
use std::sync::Arc;

use parking_lot::Mutex;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{LogEncoding, LogLevel, LogMode, LogOutput, LogsConfig};

/// RoadRunner's logger channels and the pacer targets they stand for.
const CHANNELS: &[(&str, &[&str])] = &[
    ("server", &["pacer::worker"]),
    ("http", &["pacer::http", "pacer::access"]),
    ("rpc", &["pacer::rpc"]),
    ("metrics", &["pacer::metrics"]),
    ("status", &["pacer::status", "pacer::endpoint"]),
    ("reload", &["pacer::reload", "pacer::config_watch"]),
    ("pool", &["pacer::pool", "pacer::supervisor"]),
];

/// The `EnvFilter` directives for `logs`: the level, then one directive per target of
/// each configured channel. Unknown channel names are reported in the second value.
pub fn directives(logs: &LogsConfig) -> (String, Vec<String>) {
    let mut out = vec![level_str(logs.level).to_string()];
    let mut unknown = Vec::new();
    for (channel, level) in &logs.channels {
        match CHANNELS.iter().find(|(name, _)| name == channel) {
            Some((_, targets)) => {
                out.extend(targets.iter().map(|t| format!("{t}={}", level_str(*level))));
            }
            None => unknown.push(channel.clone()),
        }
    }
    (out.join(","), unknown)
}

/// RoadRunner's logger name for a pacer target (`pacer::worker::output` → `server`), for
/// the JSON encoding; `pacer` for targets no channel covers.
pub fn channel_of(target: &str) -> &'static str {
    CHANNELS
        .iter()
        .find(|(_, targets)| {
            targets.iter().any(|t| {
                target
                    .strip_prefix(t)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
            })
        })
        .map_or("pacer", |(name, _)| name)
}

fn level_str(l: LogLevel) -> &'static str {
    match l {
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
        LogLevel::Off => "off",
    }
}

/// Writes every log line to each configured output.
#[derive(Clone)]
struct Tee {
    outputs: Arc<Vec<Output>>,
}

enum Output {
    Stderr,
    Stdout,
    File(Mutex<std::fs::File>),
}

struct TeeWriter(Arc<Vec<Output>>);

impl Write for TeeWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for o in self.0.iter() {
            // A failing output must not silence the others.
            let _ = match o {
                Output::Stderr => std::io::stderr().write_all(buf),
                Output::Stdout => std::io::stdout().write_all(buf),
                Output::File(f) => f.lock().write_all(buf),
            };
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Tee {
    type Writer = TeeWriter;

    fn make_writer(&'a self) -> TeeWriter {
        TeeWriter(self.outputs.clone())
    }
}

/// Installs the global subscriber. `PACER_LOG` (an `EnvFilter` string) overrides the
/// levels. Returns warnings to log once logging works.
pub fn init(logs: &LogsConfig) -> Result<Vec<String>, String> {
    let (filter, unknown) = directives(logs);
    let mut warnings: Vec<String> = unknown
        .into_iter()
        .map(|c| format!("logs.channels.{c}: no such channel in pacer (ignored)"))
        .collect();
    let filter = tracing_subscriber::EnvFilter::try_from_env("PACER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let mut outputs = Vec::new();
    let mut to_terminal = true;
    for o in &logs.output {
        outputs.push(match o {
            LogOutput::Stderr => Output::Stderr,
            LogOutput::Stdout => Output::Stdout,
            LogOutput::File(path) => {
                to_terminal = false;
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("logs.output: cannot open {}: {e}", path.display()))?;
                Output::File(Mutex::new(f))
            }
        });
    }
    if outputs.is_empty() {
        outputs.push(Output::Stderr);
    }
    if logs.err_output != logs.output {
        warnings.push("logs.err_output: pacer writes every level to logs.output".into());
    }
    let ansi = to_terminal && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Tee {
            outputs: Arc::new(outputs),
        })
        .with_ansi(ansi);
    let result = match (logs.mode, logs.encoding) {
        (LogMode::Raw, _) => builder
            .without_time()
            .with_level(false)
            .with_target(false)
            .try_init(),
        // RoadRunner's (zap's) line shape, which tools reading rr's log expect.
        (_, LogEncoding::Json) => builder
            .event_format(crate::zap_json::ZapJson {
                channel: channel_of,
            })
            .try_init(),
        (_, LogEncoding::Console) => builder.try_init(),
    };
    result.map_err(|e| e.to_string())?;
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn logs(level: LogLevel, channels: &[(&str, LogLevel)]) -> LogsConfig {
        LogsConfig {
            mode: LogMode::Production,
            level,
            encoding: LogEncoding::Json,
            output: vec![LogOutput::Stderr],
            err_output: vec![LogOutput::Stderr],
            channels: channels
                .iter()
                .map(|(c, l)| (c.to_string(), *l))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn targets_map_to_roadrunner_loggers() {
        assert_eq!(channel_of("pacer::worker::output"), "server");
        assert_eq!(channel_of("pacer::access"), "http");
        assert_eq!(channel_of("pacer::http::server"), "http");
        assert_eq!(channel_of("pacer::pool"), "pool");
        assert_eq!(channel_of("pacer::poolish"), "pacer");
        assert_eq!(channel_of("pacer"), "pacer");
    }

    #[test]
    fn channels_map_to_targets() {
        let (d, unknown) = directives(&logs(
            LogLevel::Info,
            &[("server", LogLevel::Warn), ("http", LogLevel::Debug)],
        ));
        assert_eq!(
            d,
            "info,pacer::http=debug,pacer::access=debug,pacer::worker=warn"
        );
        assert!(unknown.is_empty());
        let (_, unknown) = directives(&logs(LogLevel::Info, &[("jobs", LogLevel::Warn)]));
        assert_eq!(unknown, vec!["jobs".to_string()]);
        // Every directive parses.
        let (d, _) = directives(&logs(
            LogLevel::Error,
            &[("rpc", LogLevel::Off), ("pool", LogLevel::Debug)],
        ));
        assert!(tracing_subscriber::EnvFilter::try_new(&d).is_ok(), "{d}");
    }
}
