//! Leaf values: the weak typing RoadRunner inherits from viper/mapstructure (`"4"` is a
//! number, `"true"` a boolean, `"a,b"` a list, an empty string is the same as an absent
//! key) turned into typed values, each failure recorded with its dotted key, the value
//! and what was expected. [`Ctx`] collects errors and warnings so that one run reports
//! every problem of a file, not just the first.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml::Value;

use super::duration::{nanos_to_duration, parse_go_duration};
use super::error::ConfigError;
use super::host::Host;
use crate::worker::process::split_command;

pub(crate) const EXPECT_UINT: &str = "a non-negative integer";
pub(crate) const EXPECT_BOOL: &str = "true or false";
pub(crate) const EXPECT_STRING: &str = "a string";
pub(crate) const EXPECT_LIST: &str = "a list of strings";
pub(crate) const EXPECT_DURATION: &str =
    "a duration like \"60s\", \"1m30s\" or \"500ms\" (a bare integer is nanoseconds)";
pub(crate) const EXPECT_LISTEN: &str =
    "a listen address host:port with an IP address (like 0.0.0.0:8080, :8080 or [::1]:8080)";
pub(crate) const EXPECT_MAP: &str = "a mapping of names to strings";
pub(crate) const EXPECT_STATUS: &str = "an HTTP status code (100-599)";

/// Conversion state: where relative paths start, what the machine looks like, and what
/// went wrong so far.
pub(crate) struct Ctx<'a> {
    pub host: &'a Host,
    pub workdir: PathBuf,
    pub warnings: Vec<String>,
    pub errors: Vec<ConfigError>,
}

impl<'a> Ctx<'a> {
    pub fn new(host: &'a Host, workdir: PathBuf) -> Ctx<'a> {
        Ctx {
            host,
            workdir,
            warnings: Vec::new(),
            errors: Vec::new(),
        }
    }

    pub fn warn(&mut self, msg: impl Into<String>) {
        self.warnings.push(msg.into());
    }

    pub fn error(&mut self, e: ConfigError) {
        self.errors.push(e);
    }

    pub fn invalid(&mut self, key: &str, v: &Value, expected: &str) {
        self.errors
            .push(ConfigError::invalid(key, render(v), expected));
    }

    /// A non-negative integer.
    pub fn uint(&mut self, key: &str, v: Option<&Value>) -> Option<u64> {
        let v = present(v)?;
        let n = match v {
            Value::Number(n) => n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < u64::MAX as f64)
                    .map(|f| f as u64)
            }),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        if n.is_none() {
            self.invalid(key, v, EXPECT_UINT);
        }
        n
    }

    /// A non-negative integer no larger than `max`.
    pub fn uint_max(&mut self, key: &str, v: Option<&Value>, max: u64) -> Option<u64> {
        let n = self.uint(key, v)?;
        if n > max {
            self.invalid(key, v?, &format!("an integer from 0 to {max}"));
            return None;
        }
        Some(n)
    }

    pub fn boolean(&mut self, key: &str, v: Option<&Value>) -> Option<bool> {
        let v = present(v)?;
        let b = match v {
            Value::Bool(b) => Some(*b),
            // mapstructure's weak typing: numbers are true when non-zero.
            Value::Number(n) => n.as_f64().map(|f| f != 0.0),
            // Go's strconv.ParseBool.
            Value::String(s) => match s.trim() {
                "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
                "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
                _ => None,
            },
            _ => None,
        };
        if b.is_none() {
            self.invalid(key, v, EXPECT_BOOL);
        }
        b
    }

    /// A string; numbers and booleans are taken as written. Empty = absent.
    pub fn string(&mut self, key: &str, v: Option<&Value>) -> Option<String> {
        let v = present(v)?;
        match scalar(v) {
            Some(s) => Some(s),
            None => {
                self.invalid(key, v, EXPECT_STRING);
                None
            }
        }
    }

    /// A list of strings: a YAML list, or one string split on commas (viper's
    /// string-to-slice hook; items are trimmed here). Empty items are dropped.
    pub fn strings(&mut self, key: &str, v: Option<&Value>) -> Option<Vec<String>> {
        let v = v.map(untag)?;
        match v {
            Value::Null => None,
            Value::Sequence(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match untag(item) {
                        Value::Null => {}
                        item => match scalar(item) {
                            Some(s) if s.trim().is_empty() => {}
                            Some(s) => out.push(s.trim().to_string()),
                            None => self.invalid(&format!("{key}[{i}]"), item, EXPECT_STRING),
                        },
                    }
                }
                Some(out)
            }
            Value::String(s) => Some(
                s.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
            ),
            Value::Number(_) | Value::Bool(_) => scalar(v).map(|s| vec![s]),
            _ => {
                self.invalid(key, v, EXPECT_LIST);
                None
            }
        }
    }

    /// A Go duration string, or a bare integer of nanoseconds.
    pub fn duration(&mut self, key: &str, v: Option<&Value>) -> Option<Duration> {
        let v = present(v)?;
        match v {
            Value::Number(n) => match n.as_u64() {
                Some(ns) if ns <= i64::MAX as u64 => {
                    if ns > 0 && ns < 1_000_000 {
                        self.warn(format!(
                            "{key}: {ns} is read as {ns}ns (a bare integer is nanoseconds, as \
                             in RoadRunner); write \"{ns}s\" if seconds were meant"
                        ));
                    }
                    Some(nanos_to_duration(u128::from(ns)))
                }
                _ => {
                    self.invalid(key, v, EXPECT_DURATION);
                    None
                }
            },
            Value::String(s) => match parse_go_duration(s.trim()) {
                Ok(d) => Some(d),
                Err(reason) => {
                    self.invalid(key, v, &format!("{EXPECT_DURATION}: {reason}"));
                    None
                }
            },
            _ => {
                self.invalid(key, v, EXPECT_DURATION);
                None
            }
        }
    }

    /// A command: a string split on plain spaces (no shell quoting), or a list used
    /// verbatim, except that a one-item list is split too, like RoadRunner (which reads
    /// both forms into one `[]string` and splits it when it has a single item). Reading
    /// a string into that `[]string` splits it at commas first, so `php,/app/worker.php`
    /// (what Laravel Octane passes with `-o server.command=`, to keep spaces in paths)
    /// is the argument list `php`, `/app/worker.php`. Unlike RoadRunner, a comma after a
    /// space is part of an argument (`php -d disable_functions=exec,system worker.php`).
    pub fn command(&mut self, key: &str, v: Option<&Value>) -> Option<Vec<String>> {
        let v = present(v)?;
        let argv = match v {
            Value::Sequence(items) => {
                let mut argv = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match scalar(untag(item)) {
                        Some(s) => argv.push(s),
                        None => self.invalid(&format!("{key}[{i}]"), item, EXPECT_STRING),
                    }
                }
                if argv.len() == 1 {
                    split_command(&argv[0])
                } else {
                    argv
                }
            }
            other => match scalar(other) {
                Some(s) if comma_list(&s) => s
                    .split(',')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(str::to_string)
                    .collect(),
                Some(s) => split_command(&s),
                None => {
                    self.invalid(key, v, "a command: a string or a list of strings");
                    return None;
                }
            },
        };
        (!argv.is_empty()).then_some(argv)
    }

    /// A mapping of names to scalar values (null values become empty strings).
    pub fn string_map(&mut self, key: &str, v: Option<&Value>) -> Vec<(String, String)> {
        let Some(v) = v.map(untag) else {
            return Vec::new();
        };
        match v {
            Value::Null => Vec::new(),
            Value::Mapping(map) => {
                let mut out = Vec::with_capacity(map.len());
                for (k, val) in map {
                    let Some(name) = scalar(untag(k)) else {
                        self.invalid(key, v, EXPECT_MAP);
                        continue;
                    };
                    match untag(val) {
                        Value::Null => out.push((name, String::new())),
                        val => match scalar(val) {
                            Some(s) => out.push((name, s)),
                            None => self.invalid(&format!("{key}.{name}"), val, EXPECT_STRING),
                        },
                    }
                }
                out
            }
            _ => {
                self.invalid(key, v, EXPECT_MAP);
                Vec::new()
            }
        }
    }

    /// A path; relative ones start at the working directory.
    pub fn path(&mut self, key: &str, v: Option<&Value>) -> Option<PathBuf> {
        self.string(key, v).map(|s| self.resolve(Path::new(&s)))
    }

    /// `p` from the working directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        clean(&self.workdir.join(p))
    }

    /// A `host:port` to listen on.
    pub fn listen(&mut self, key: &str, v: Option<&Value>) -> Option<SocketAddr> {
        let s = self.string(key, v)?;
        match parse_listen(&s) {
            Some(a) => Some(a),
            None => {
                self.invalid(key, v?, EXPECT_LISTEN);
                None
            }
        }
    }

    /// An HTTP status code; 0 (RoadRunner's "unset") and absent give `None`.
    pub fn status_code(&mut self, key: &str, v: Option<&Value>) -> Option<u16> {
        let n = self.uint(key, v)?;
        if n == 0 {
            return None;
        }
        match u16::try_from(n) {
            Ok(code) if (100..=599).contains(&code) => Some(code),
            _ => {
                self.invalid(key, v?, EXPECT_STATUS);
                None
            }
        }
    }
}

/// `p` without `.` components (`..` are kept: they cannot be removed without looking at
/// symlinks).
pub(crate) fn clean(p: &Path) -> PathBuf {
    p.components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

/// `None` for absent, null and empty-string values (mapstructure reads `""` as the zero
/// value, which every key treats as "use the default").
fn present(v: Option<&Value>) -> Option<&Value> {
    match v.map(untag)? {
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() => None,
        v => Some(v),
    }
}

fn untag(v: &Value) -> &Value {
    match v {
        Value::Tagged(t) => untag(&t.value),
        v => v,
    }
}

/// A scalar as text; `None` for lists, mappings and null.
/// `php,/app/worker.php`: a comma before any whitespace makes a command string a list.
fn comma_list(command: &str) -> bool {
    command
        .find(',')
        .is_some_and(|comma| !command[..comma].contains(char::is_whitespace))
}

pub(crate) fn scalar(v: &Value) -> Option<String> {
    match untag(v) {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A value for an error message: strings quoted, the rest in flow style.
pub(crate) fn render(v: &Value) -> String {
    match untag(v) {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".to_string(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => serde_json::to_string(other).unwrap_or_else(|_| {
            serde_yaml::to_string(other)
                .map(|s| s.trim_end().replace('\n', " "))
                .unwrap_or_else(|_| "?".to_string())
        }),
    }
}

/// Parses a listen address like Go's `net.Listen`: `host:port`, `:port` (every
/// interface), `[v6]:port`. `localhost` is read as 127.0.0.1 (the static binary may run
/// where nothing resolves it); other host names are refused, as pacer does no DNS at
/// start-up.
pub(crate) fn parse_listen(s: &str) -> Option<SocketAddr> {
    let s = s.trim();
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let ip = match host {
        "" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        h => match h.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(v6) => IpAddr::V6(v6.parse().ok()?),
            None => IpAddr::V4(h.parse().ok()?),
        },
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        let cases = [
            ("0.0.0.0:8080", Some("0.0.0.0:8080")),
            (":8080", Some("0.0.0.0:8080")),
            ("127.0.0.1:0", Some("127.0.0.1:0")),
            ("localhost:2112", Some("127.0.0.1:2112")),
            ("[::]:443", Some("[::]:443")),
            ("[::1]:6001", Some("[::1]:6001")),
            ("8080", None),
            ("host:8080", None),
            ("0.0.0.0:99999", None),
            ("0.0.0.0:", None),
            ("::1:80", None),
            ("tcp://0.0.0.0:80", None),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse_listen(input).map(|a| a.to_string()).as_deref(),
                want,
                "{input}"
            );
        }
    }

    #[test]
    fn rendering_for_messages() {
        let v: Value = serde_yaml::from_str("[1, a]").unwrap();
        assert_eq!(render(&v), r#"[1,"a"]"#);
        assert_eq!(render(&Value::String("lots".into())), r#""lots""#);
        assert_eq!(render(&serde_yaml::from_str("-3").unwrap()), "-3");
    }
}
