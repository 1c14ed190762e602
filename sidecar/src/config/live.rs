//! What a changed config file means for a running pacer (`pacer serve --watch-config`):
//! pool settings that apply live (`http.pool` and `jobs.pool`), and every other changed key,
//! which waits for a restart.

use serde_json::Value;

use super::output::to_json;
use super::types::Config;
use crate::pool::PoolSettings;

/// The keys under `http.pool` (and `jobs.pool`) that [`crate::pool::Pool::update_settings`]
/// and `set_target` apply to a running pool; `supervisor.*` is live too.
const LIVE_POOL_KEYS: [&str; 7] = [
    "num_workers",
    "max_jobs",
    "max_queue_size",
    "allocate_timeout",
    "destroy_timeout",
    "reset_timeout",
    "stream_timeout",
];

/// The difference between the running config and a new one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiveChange {
    /// New pool settings to apply now, when a live key changed. Keys that need a restart
    /// keep their running values here (e.g. `debug`), so applying this never half-applies
    /// a restart-only change.
    pub pool: Option<PoolSettings>,
    /// New `jobs.pool` settings to apply now (the operator sizes the jobs pool through
    /// them), on the same terms as `pool`.
    pub jobs_pool: Option<PoolSettings>,
    /// Dotted keys that changed but take effect only at the next start, e.g.
    /// `http.address`, `server.command`, `http.pool.debug`. Lists count as one key.
    pub restart_required: Vec<String>,
}

impl LiveChange {
    pub fn is_empty(&self) -> bool {
        self.pool.is_none() && self.jobs_pool.is_none() && self.restart_required.is_empty()
    }
}

/// Compares two configs key by key (on their effective form, so a default written out
/// explicitly is no change).
pub fn diff_live(old: &Config, new: &Config) -> LiveChange {
    let mut changed = Vec::new();
    diff(&to_json(old), &to_json(new), "", &mut changed);
    if old.workdir != new.workdir {
        changed.push("workdir (-w)".to_string());
    }

    let (live, restart_required): (Vec<String>, Vec<String>) =
        changed.into_iter().partition(|k| is_live(k));
    let touches = |section: &str| live.iter().any(|k| k.starts_with(section));
    let pool = match (&old.http, &new.http) {
        (Some(o), Some(n)) if touches("http.") => Some(PoolSettings {
            debug: o.pool.settings.debug,
            ..n.pool.settings.clone()
        }),
        _ => None,
    };
    let jobs_pool = match (&old.jobs, &new.jobs) {
        (Some(o), Some(n)) if touches("jobs.") => Some(PoolSettings {
            debug: o.pool.settings.debug,
            ..n.pool.settings.clone()
        }),
        _ => None,
    };
    LiveChange {
        pool,
        jobs_pool,
        restart_required,
    }
}

fn is_live(key: &str) -> bool {
    match key
        .strip_prefix("http.pool.")
        .or_else(|| key.strip_prefix("jobs.pool."))
    {
        Some(k) => LIVE_POOL_KEYS.contains(&k) || k.starts_with("supervisor."),
        None => false,
    }
}

/// Collects the dotted paths where `a` and `b` differ; objects are compared key by key,
/// anything else as a whole.
fn diff(a: &Value, b: &Value, prefix: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(va), Some(vb)) => diff(va, vb, &path, out),
                    _ => out.push(path),
                }
            }
        }
        _ if a != b => out.push(prefix.to_string()),
        _ => {}
    }
}
