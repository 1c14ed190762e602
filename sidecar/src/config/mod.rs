//! Configuration: RoadRunner's `.rr.yaml` (version "3") read into a typed [`Config`].
//!
//! # Theory of operation
//! One pass, at start-up (and again for each change of a watched file):
//! 1. the dotenv file (`--dotenv` or `DOTENV_PATH`) is read, without overriding the
//!    environment;
//! 2. the YAML is parsed into a tree, keys are lower-cased (RoadRunner's viper is
//!    case-insensitive), `version` is checked and `include`d files replace whole
//!    top-level sections, like RoadRunner;
//! 3. `$VAR` / `${VAR}` / `${VAR:-default}` are expanded in every string, then the
//!    `-o key.path=value` overrides are applied (expanded too);
//! 4. serde maps the tree onto the raw sections (`raw.rs`) — unknown keys become
//!    warnings with their full dotted path — and `convert.rs` turns them into the typed
//!    [`Config`]: RoadRunner's weak typing, units and defaults, every bad value reported
//!    with its key, value and what was expected ([`ConfigError`]).
//!
//! Nothing else in pacer parses configuration. [`diff_live`] tells which changes of a
//! watched file apply to the running pool; [`effective_yaml`] / [`to_json`] write the
//! config back in RoadRunner's shape (`pacer config check`, RPC `rpc.Config`).
//!
//! # Module map
//! `types.rs` (start here: every key, default and reason), `convert.rs` (sections),
//! `value.rs` (leaf values), `raw.rs` (key lists), `duration.rs` (Go durations),
//! `expand.rs` (substitution), `dotenv.rs`, `overrides.rs`, `host.rs` (environment,
//! passwd/group, cgroup CPU quota), `live.rs`, `output.rs`.

mod convert;
mod dotenv;
mod duration;
mod error;
mod expand;
mod host;
mod jobs;
mod live;
mod output;
mod overrides;
mod raw;
mod service;
mod types;
mod value;

#[cfg(test)]
mod doc_keys;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

pub use duration::{format_go_duration, parse_go_duration};
pub use error::ConfigError;
pub use jobs::{
    AmqpConfig, BeanstalkConfig, Brokers, DriverConfig, JobsConfig, MemoryConfig, NatsConfig,
    PipelineConfig, RetryPolicy, pipeline_from_map,
};
pub use live::{LiveChange, diff_live};
pub use output::{effective_yaml, to_json};
pub use service::ServiceConfig;
pub use types::*;

use host::Host;
use value::Ctx;

/// Where the config comes from: the CLI's `-c`, `-w`, `-o` and `--dotenv`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// `-c`: the config file. Default `.rr.yaml` (RoadRunner's), relative to the current
    /// directory.
    pub path: PathBuf,
    /// `-w`: the working directory, relative to the config file's directory. Default: the
    /// config file's directory (RoadRunner changes into it).
    pub workdir: Option<PathBuf>,
    /// `-o key.path=value`, applied in order after env substitution.
    pub overrides: Vec<String>,
    /// `--dotenv`: a dotenv file, relative to the working directory. When `None`, the
    /// `DOTENV_PATH` environment variable is used, if set.
    pub dotenv: Option<PathBuf>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            path: PathBuf::from(".rr.yaml"),
            workdir: None,
            overrides: Vec::new(),
            dotenv: None,
        }
    }
}

/// A parsed config and what the user should hear about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded {
    pub config: Config,
    /// Unknown sections and keys (by full dotted path), ignored and deprecated settings,
    /// suspicious values. Log each at warn level.
    pub warnings: Vec<String>,
}

/// What the last `-o key=…` among `overrides` sets `key` to, as text (env-expanded) — for
/// the RPC clients, which need only `rpc.listen` and must work when the config file is
/// empty or missing (`rr reset -o rpc.listen=… -s`, as Laravel Octane reloads workers).
pub fn override_value(
    overrides: &[String],
    key: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    let path: Vec<String> = key.split('.').map(str::to_lowercase).collect();
    overrides
        .iter()
        .filter_map(|arg| overrides::parse_override(arg, env).ok())
        .filter(|o| o.path == path)
        .filter_map(|o| value::scalar(&o.value))
        .last()
}

/// Reads and parses the config file named by `opts`.
pub fn load(opts: &LoadOptions) -> Result<Loaded, ConfigError> {
    load_with(opts, &Host::current())
}

/// Parses `yaml` as if it were the file named by `opts` (relative paths, `include` and
/// the dotenv file are resolved from there). For tests and for re-reading a watched file.
pub fn parse_str(yaml: &str, opts: &LoadOptions) -> Result<Loaded, ConfigError> {
    parse_with(yaml, opts, &Host::current())
}

pub(crate) fn load_with(opts: &LoadOptions, host: &Host) -> Result<Loaded, ConfigError> {
    let path = config_path(opts, host);
    let text = read(&path)?;
    parse_with(&text, opts, host)
}

fn config_path(opts: &LoadOptions, host: &Host) -> PathBuf {
    value::clean(&host.cwd.join(&opts.path))
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => ConfigError::NotFound {
            path: path.to_path_buf(),
        },
        _ => ConfigError::Unreadable {
            path: path.to_path_buf(),
            source,
        },
    })
}

pub(crate) fn parse_with(
    text: &str,
    opts: &LoadOptions,
    host: &Host,
) -> Result<Loaded, ConfigError> {
    let path = config_path(opts, host);
    let config_dir = path
        .parent()
        .map_or_else(|| host.cwd.clone(), Path::to_path_buf);
    // As RoadRunner's `-w`: the directory pacer was started in, or `-w` relative to it —
    // never the config file's directory. In a pod the config is a mounted ConfigMap
    // (`/etc/pacer/rr.yaml`) while the app lives in the container's working directory,
    // and `php worker.php` must run there.
    let workdir = match &opts.workdir {
        Some(w) => value::clean(&host.cwd.join(w)),
        None => host.cwd.clone(),
    };
    let mut warnings = Vec::new();

    // 1. dotenv: the environment wins over the file, like godotenv.Load.
    let dotenv_file = opts.dotenv.clone().or_else(|| {
        host.env
            .get("DOTENV_PATH")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
    });
    let dotenv: Vec<(String, String)> = match dotenv_file {
        None => Vec::new(),
        Some(f) => {
            let f = workdir.join(f);
            let text = read(&f).map_err(|e| ConfigError::Dotenv {
                path: f.clone(),
                reason: match e {
                    ConfigError::NotFound { .. } => "not found".to_string(),
                    other => other.to_string(),
                },
            })?;
            let env_only = |k: &str| host.env.get(k).cloned();
            dotenv::parse_dotenv(&text, &env_only)
                .map_err(|(line, reason)| ConfigError::Dotenv {
                    path: f.clone(),
                    reason: format!("line {line}: {reason}"),
                })?
                .into_iter()
                .filter(|(k, _)| !host.env.contains_key(k))
                .collect()
        }
    };
    let lookup = |name: &str| -> Option<String> {
        host.env.get(name).cloned().or_else(|| {
            dotenv
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    };

    // 2. the tree, its version and its includes.
    let mut root = parse_yaml(text, &path)?;
    // As RoadRunner, `-o version=…` counts before the version check: Laravel Octane starts
    // `rr` on an empty (touched) .rr.yaml with `-o version=3` and every other setting.
    apply_version_override(&mut root, &opts.overrides, &lookup);
    let version = check_version(&root, &path, &mut warnings)?;
    include(&mut root, &version, &config_dir, &lookup)?;

    // 3. substitution, then overrides.
    expand::expand_tree(&mut root, &lookup);
    let mut errors = Vec::new();
    for arg in &opts.overrides {
        let applied = overrides::parse_override(arg, &lookup)
            .and_then(|o| overrides::set_path(&mut root, &o.path, o.value));
        if let Err(reason) = applied {
            errors.push(ConfigError::Override {
                arg: arg.clone(),
                reason,
            });
        }
    }

    // 4. raw sections (unknown keys → warnings), then the typed config.
    let mut unknown = Vec::new();
    let shape = root.clone();
    let mut on_unknown = |p: serde_ignored::Path<'_>| unknown.push(ignored_path(&p));
    let de = serde_ignored::Deserializer::new(root, &mut on_unknown);
    let raw: raw::RootRaw = match serde_path_to_error::deserialize(de) {
        Ok(raw) => raw,
        Err(e) => {
            errors.push(structure_error(&shape, &e));
            ConfigError::check(errors)?;
            return Err(structure_error(&shape, &e));
        }
    };
    warnings.extend(unknown.iter().map(|p| unknown_warning(p)));

    let mut ctx = Ctx::new(host, workdir);
    let mut config = convert::convert(raw, version, dotenv.clone(), &mut ctx);
    if let Value::Mapping(m) = &shape {
        for p in unknown.iter().filter(|p| !p.contains(['.', '['])) {
            if let Some(v) = m.get(p.as_str()) {
                config.sections.insert(p.clone(), v.clone());
            }
        }
    }
    errors.append(&mut ctx.errors);
    warnings.append(&mut ctx.warnings);
    ConfigError::check(errors)?;
    Ok(Loaded { config, warnings })
}

/// Parses YAML text into a tree with lower-cased keys and `<<` merges applied.
fn parse_yaml(text: &str, path: &Path) -> Result<Value, ConfigError> {
    let syntax = |e: serde_yaml::Error| {
        let (mut line, mut column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        let mut message = e.to_string();
        // serde_yaml appends the location itself; it is in the error's own fields.
        let suffix = format!(" at line {line} column {column}");
        if let Some(i) = message.find(&suffix) {
            message.replace_range(i..i + suffix.len(), "");
        }
        // A duplicate key is reported at the start of its mapping; point at the key.
        if let Some((l, c)) = message
            .strip_prefix("duplicate entry with key ")
            .and_then(|k| duplicate_key_position(text, k.trim_matches('"')))
        {
            (line, column) = (l, c);
        }
        ConfigError::Syntax {
            path: path.to_path_buf(),
            line,
            column,
            message,
        }
    };
    let mut root: Value = serde_yaml::from_str(text).map_err(syntax)?;
    root.apply_merge().map_err(syntax)?;
    Ok(lowercase_keys(root))
}

/// The line and column of the second `key:` at the same indentation as the first.
fn duplicate_key_position(text: &str, key: &str) -> Option<(usize, usize)> {
    let mut first_indent = None;
    for (i, line) in text.lines().enumerate() {
        let body = line.trim_start();
        let indent = line.len() - body.len();
        let rest = body
            .strip_prefix(key)
            .or_else(|| body.strip_prefix(&format!("\"{key}\"")))
            .or_else(|| body.strip_prefix(&format!("'{key}'")));
        if rest.is_some_and(|r| r.trim_start().starts_with(':')) {
            match first_indent {
                None => first_indent = Some(indent),
                Some(fi) if fi == indent => return Some((i + 1, indent + 1)),
                Some(_) => {}
            }
        }
    }
    None
}

/// RoadRunner's viper lower-cases every key, so `Num_Workers` works there; here too.
/// Its keys are strings, so `0.5: 0.05` has the key `"0.5"`; here too.
fn lowercase_keys(v: Value) -> Value {
    match v {
        Value::Mapping(map) => {
            let mut out = Mapping::with_capacity(map.len());
            for (k, v) in map {
                let k = match k {
                    Value::String(s) => s.to_lowercase(),
                    Value::Null => String::new(),
                    other => value::scalar(&other).unwrap_or_else(|| value::render(&other)),
                };
                let k = Value::String(k);
                out.insert(k, lowercase_keys(v));
            }
            Value::Mapping(out)
        }
        Value::Sequence(items) => Value::Sequence(items.into_iter().map(lowercase_keys).collect()),
        other => other,
    }
}

/// The last `-o version=…`, as the string RoadRunner's flag parser makes of it (`3`, not
/// the number 3), set on the tree (an empty file becomes a mapping). Overrides that do
/// not parse are reported with the others later.
fn apply_version_override(
    root: &mut Value,
    overrides: &[String],
    lookup: &dyn Fn(&str) -> Option<String>,
) {
    let version = overrides
        .iter()
        .filter_map(|arg| overrides::parse_override(arg, lookup).ok())
        .filter(|o| o.path.len() == 1 && o.path[0] == "version")
        .filter_map(|o| value::scalar(&o.value))
        .last();
    if let Some(version) = version {
        if root.is_null() {
            *root = Value::Mapping(Mapping::new());
        }
        if let Value::Mapping(map) = root {
            map.insert(Value::String("version".into()), Value::String(version));
        }
    }
}

/// `version` must be the string "3"; "2.7" is read as 3 with a warning, like RR.
fn check_version(
    root: &Value,
    path: &Path,
    warnings: &mut Vec<String>,
) -> Result<String, ConfigError> {
    let fail = |reason: String| ConfigError::Document {
        path: path.to_path_buf(),
        reason,
    };
    let Value::Mapping(map) = root else {
        return Err(fail(if root.is_null() {
            "the file is empty; a RoadRunner config starts with version: \"3\"".to_string()
        } else {
            format!(
                "{} is not a mapping of sections like version, server, http",
                value::render(root)
            )
        }));
    };
    match map.get("version") {
        None | Some(Value::Null) => Err(fail(
            "version is missing: RoadRunner configs start with version: \"3\"".to_string(),
        )),
        Some(Value::String(v)) if v == "3" => Ok(v.clone()),
        Some(Value::String(v)) if v == "2.7" => {
            warnings.push(
                "version \"2.7\" is deprecated: update the config to version: \"3\" \
                 (pacer reads it as version 3)"
                    .to_string(),
            );
            Ok(v.clone())
        }
        Some(Value::String(v)) => Err(fail(format!(
            "version: {v:?} is not supported; expected \"3\" (or the deprecated \"2.7\")"
        ))),
        Some(other) => Err(fail(format!(
            "version: {} must be a string, as in RoadRunner: write version: \"3\"",
            value::render(other)
        ))),
    }
}

/// `include: [a.yaml, …]`: each file (relative to the config file's directory, with
/// the same version) replaces the top-level sections it defines, like RoadRunner.
fn include(
    root: &mut Value,
    version: &str,
    config_dir: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    let files: Vec<String> = match root.get("include") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        Some(Value::Sequence(items)) => items.iter().filter_map(value::scalar).collect(),
        Some(other) => {
            return Err(ConfigError::invalid(
                "include",
                value::render(other),
                "a list of file names",
            ));
        }
    };
    for file in files {
        let path = config_dir.join(&file);
        let fail = |reason: String| ConfigError::Include {
            path: path.clone(),
            reason,
        };
        let text = read(&path).map_err(|e| fail(e.to_string()))?;
        let mut inc = parse_yaml(&text, &path).map_err(|e| fail(e.to_string()))?;
        let mut ignored = Vec::new();
        let inc_version =
            check_version(&inc, &path, &mut ignored).map_err(|e| fail(e.to_string()))?;
        if inc_version != version {
            return Err(fail(format!(
                "version {inc_version:?} differs from the root file's {version:?}"
            )));
        }
        expand::expand_tree(&mut inc, lookup);
        if let (Value::Mapping(inc), Value::Mapping(root)) = (inc, &mut *root) {
            for (k, v) in inc {
                if k.as_str().is_some_and(|k| k == "version" || k == "include") {
                    continue;
                }
                root.insert(k, v);
            }
        }
    }
    Ok(())
}

/// A serde_ignored path as `http.pool.maxjobs` / `logs.output[0]`.
fn ignored_path(p: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    match p {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        P::Map { parent, key } => {
            let parent = ignored_path(parent);
            if parent.is_empty() {
                key.clone()
            } else {
                format!("{parent}.{key}")
            }
        }
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            ignored_path(parent)
        }
    }
}

/// RoadRunner plugins pacer does not implement: their sections get a precise warning.
const RR_PLUGINS: [&str; 18] = [
    "kv",
    "grpc",
    "temporal",
    "tcp",
    "centrifuge",
    "lock",
    "fileserver",
    "kafka",
    "sqs",
    "google_pub_sub",
    "boltdb",
    "memory",
    "redis",
    "memcached",
    "broadcast",
    "websockets",
    "sdnotify",
    "informer",
];

/// The warning for a top-level section pacer does not know: a custom binary whose plugin
/// claims the section removes it (see [`crate::plugin`]).
pub fn section_warning(name: &str) -> String {
    unknown_warning(name)
}

fn unknown_warning(path: &str) -> String {
    if path.contains(['.', '[']) {
        format!("unknown key {path} (ignored)")
    } else if RR_PLUGINS.contains(&path) {
        format!("section {path} configures a RoadRunner plugin pacer does not implement (ignored)")
    } else {
        format!("unknown section {path} (ignored)")
    }
}

/// A section that is not a mapping (`http: 5`), found by serde.
fn structure_error(root: &Value, e: &serde_path_to_error::Error<serde_yaml::Error>) -> ConfigError {
    use serde_path_to_error::Segment;
    let mut key = String::new();
    let mut node = Some(root);
    for seg in e.path().iter() {
        match seg {
            Segment::Seq { index } => {
                key.push_str(&format!("[{index}]"));
                node = node.and_then(|n| n.get(*index));
            }
            Segment::Map { key: k } => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(k);
                node = node.and_then(|n| n.get(k.as_str()));
            }
            Segment::Enum { variant } => key.push_str(&format!(".{variant}")),
            Segment::Unknown => key.push_str(".?"),
        }
    }
    match node {
        Some(v) if !v.is_mapping() => {
            ConfigError::invalid(&key, value::render(v), "a section (a mapping of keys)")
        }
        _ => ConfigError::invalid(&key, "this value".to_string(), &e.inner().to_string()),
    }
}
