//! The `service` section: RoadRunner's process manager (`roadrunner-server/service`
//! `config.go`): long-running side commands (a scheduler, a websocket daemon) supervised
//! by pacer.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_yaml::Value;

use super::error::ConfigError;
use super::value::Ctx;

type V = Option<Value>;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ServiceRaw {
    pub command: V,
    pub process_num: V,
    pub exec_timeout: V,
    pub remain_after_exit: V,
    pub restart_sec: V,
    pub timeout_stop_sec: V,
    pub env: V,
    pub service_name_in_log: V,
    pub user: V,
    /// Older RoadRunner versions; output always goes to pacer's log.
    pub log_output: V,
}

/// `service.<name>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceConfig {
    pub name: String,
    /// `command` (required): a string split on spaces, or a list.
    pub command: Vec<String>,
    /// `process_num`: copies to run (default 1).
    pub process_num: usize,
    /// `exec_timeout`: a process running longer is stopped (0 = no limit, the default).
    pub exec_timeout: Option<Duration>,
    /// `remain_after_exit`: start the process again after it exits (default false: it
    /// runs once).
    pub remain_after_exit: bool,
    /// `restart_sec` (seconds, default 30): the wait before a restart.
    pub restart_sec: Duration,
    /// `timeout_stop_sec` (seconds, default 5): SIGTERM, then SIGKILL after this long.
    pub timeout_stop_sec: Duration,
    /// `env`: added to pacer's environment (and `server.env`) for the process.
    pub env: Vec<(String, String)>,
    /// `service_name_in_log`: accepted; pacer always logs the service name with each line.
    pub service_name_in_log: bool,
}

fn seconds(ctx: &mut Ctx<'_>, key: &str, v: &V, default: u64) -> Duration {
    // RR reads these as whole seconds; a Go duration string is accepted too.
    match v {
        Some(Value::String(_)) => ctx.duration(key, v.as_ref()),
        other => ctx.uint(key, other.as_ref()).map(Duration::from_secs),
    }
    .filter(|d| !d.is_zero())
    .unwrap_or(Duration::from_secs(default))
}

pub(crate) fn services(raw: BTreeMap<String, ServiceRaw>, ctx: &mut Ctx<'_>) -> Vec<ServiceConfig> {
    let mut out = Vec::new();
    for (name, s) in raw {
        let p = format!("service.{name}");
        let Some(command) = ctx.command(&format!("{p}.command"), s.command.as_ref()) else {
            ctx.error(ConfigError::Missing {
                key: format!("{p}.command"),
                hint: "the command to run, e.g. command: \"php artisan schedule:work\"".to_string(),
            });
            continue;
        };
        let process_num =
            match ctx.uint_max(&format!("{p}.process_num"), s.process_num.as_ref(), 1024) {
                None | Some(0) => 1,
                Some(n) => usize::try_from(n).unwrap_or(1),
            };
        let exec_timeout = ctx
            .duration(&format!("{p}.exec_timeout"), s.exec_timeout.as_ref())
            .filter(|d| !d.is_zero());
        if s.user.as_ref().is_some_and(|v| !v.is_null()) {
            ctx.warn(format!(
                "{p}.user is not implemented by pacer (ignored); services run as pacer"
            ));
        }
        if s.log_output.as_ref().is_some_and(|v| !v.is_null()) {
            ctx.warn(format!(
                "{p}.log_output is ignored: a service's output goes to pacer's log"
            ));
        }
        out.push(ServiceConfig {
            command,
            process_num,
            exec_timeout,
            remain_after_exit: ctx
                .boolean(
                    &format!("{p}.remain_after_exit"),
                    s.remain_after_exit.as_ref(),
                )
                .unwrap_or(false),
            restart_sec: seconds(ctx, &format!("{p}.restart_sec"), &s.restart_sec, 30),
            timeout_stop_sec: seconds(
                ctx,
                &format!("{p}.timeout_stop_sec"),
                &s.timeout_stop_sec,
                5,
            ),
            env: ctx.string_map(&format!("{p}.env"), s.env.as_ref()),
            service_name_in_log: ctx
                .boolean(
                    &format!("{p}.service_name_in_log"),
                    s.service_name_in_log.as_ref(),
                )
                .unwrap_or(false),
            name,
        });
    }
    out
}
