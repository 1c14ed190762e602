//! RoadRunner's `service.*` RPC (`roadrunner-server/service` `rpc.go`) over the
//! supervisor: protobuf in and out ([`super::proto`]), RoadRunner's error texts.
//! `Create`, `Restart` and `Terminate` run one at a time and return once the processes
//! have started (or stopped).

use std::time::Duration;

use prost::Message;
use tokio::process::Child;

use super::proto;
use super::{ProcessStatus, Services, spawn};
use crate::config::ServiceConfig;
use crate::metrics::process;
use crate::rpc::ProtoService;

/// RoadRunner's defaults for zero values of `Create`.
const DEFAULT_RESTART_SEC: u64 = 30;
const DEFAULT_TIMEOUT_STOP_SEC: u64 = 5;
/// The `service.<name>.process_num` bound of the config, for `Create` too.
const MAX_PROCESS_NUM: i64 = 1024;

fn decode<M: Message + Default>(method: &str, arg: &[u8]) -> Result<M, String> {
    M::decode(arg)
        .map_err(|e| format!("service.{method}: the argument is not a valid protobuf message: {e}"))
}

fn no_such(name: &str) -> String {
    format!("no such service: {name}")
}

/// The `Status` of a copy, or why its state cannot be read (not running).
fn state(copy: &ProcessStatus, command: &str) -> Result<proto::Status, proto::Status> {
    let pid = copy.pid.load(std::sync::atomic::Ordering::Relaxed);
    let stat = (pid != 0).then(|| process::read_stat(pid)).flatten();
    let Some(stat) = stat else {
        return Err(proto::Status {
            cpu_percent: 0.0,
            pid: i32::try_from(pid).unwrap_or_default(),
            memory_usage: 0,
            command: command.to_string(),
            status: Some(proto::ErrorStatus {
                code: 0,
                message: "process_state: process does not exist".to_string(),
                details: Vec::new(),
            }),
        });
    };
    // As gopsutil's CPUPercent: CPU time over the whole lifetime.
    let age = copy
        .started_at
        .lock()
        .map_or(0.0, |t| t.elapsed().as_secs_f64());
    let cpu_percent = if age > 0.0 {
        process::cpu_seconds(&stat) / age * 100.0
    } else {
        0.0
    };
    Ok(proto::Status {
        cpu_percent: cpu_percent as f32,
        pid: i32::try_from(pid).unwrap_or_default(),
        memory_usage: stat.rss_pages * process::page_size(),
        command: command.to_string(),
        status: None,
    })
}

/// `Create`'s argument as a service config, or RoadRunner's refusal.
fn config_of(c: proto::Create) -> Result<ServiceConfig, String> {
    if c.name.is_empty() {
        return Err("the service name is empty".to_string());
    }
    if c.process_num < 1 {
        return Err(format!(
            "the service with {} name should have at least 1 process",
            c.name
        ));
    }
    if c.process_num > MAX_PROCESS_NUM {
        return Err(format!(
            "the service {} asks for {} processes; at most {MAX_PROCESS_NUM}",
            c.name, c.process_num
        ));
    }
    let command: Vec<String> = c.command.split_whitespace().map(String::from).collect();
    if command.is_empty() {
        return Err(format!("the service {} has an empty command", c.name));
    }
    let mut env: Vec<(String, String)> = c.env.into_iter().collect();
    env.sort();
    let secs = |s: u64, default: u64| Duration::from_secs(if s == 0 { default } else { s });
    Ok(ServiceConfig {
        command,
        process_num: usize::try_from(c.process_num).unwrap_or(1),
        exec_timeout: u64::try_from(c.exec_timeout)
            .ok()
            .filter(|s| *s > 0)
            .map(Duration::from_secs),
        remain_after_exit: c.remain_after_exit,
        restart_sec: secs(c.restart_sec, DEFAULT_RESTART_SEC),
        timeout_stop_sec: secs(c.timeout_stop_sec, DEFAULT_TIMEOUT_STOP_SEC),
        env,
        service_name_in_log: c.service_name_in_logs,
        name: c.name,
    })
}

fn ok() -> Vec<u8> {
    proto::Response {
        message: String::new(),
        ok: true,
    }
    .encode_to_vec()
}

impl Services {
    /// Spawns every copy of `config` now, so that a command that cannot start is an
    /// error of the call (as in RoadRunner); on failure none is left running.
    async fn spawn_all(&self, config: &ServiceConfig) -> Result<Vec<Option<Child>>, String> {
        let how = self.how(config);
        let mut children = Vec::with_capacity(config.process_num);
        for _ in 0..config.process_num {
            match spawn(config, &how) {
                Ok(child) => children.push(Some(child)),
                Err(e) => {
                    super::discard(children).await;
                    return Err(format!(
                        "cannot start service {} ({}): {e}",
                        config.name,
                        config.command.join(" ")
                    ));
                }
            }
        }
        Ok(children)
    }

    async fn create(&self, c: proto::Create) -> Result<Vec<u8>, String> {
        let config = config_of(c)?;
        let _one = self.inner.changes.lock().await;
        if self.inner.stop.is_cancelled() {
            return Err("pacer is stopping; no service can be created".to_string());
        }
        if self.inner.groups.lock().contains_key(&config.name) {
            return Err(format!("service already exists: {}", config.name));
        }
        let children = self.spawn_all(&config).await?;
        tracing::info!(service = %config.name, command = ?config.command, process_num = config.process_num, "service created over RPC");
        let name = config.name.clone();
        let group = self.launch(config, children);
        self.inner.groups.lock().insert(name, group);
        Ok(ok())
    }

    async fn terminate(&self, name: &str) -> Result<Vec<u8>, String> {
        let _one = self.inner.changes.lock().await;
        let group = self
            .inner
            .groups
            .lock()
            .remove(name)
            .ok_or_else(|| no_such(name))?;
        group.stop().await;
        tracing::info!(service = %name, "service terminated over RPC");
        Ok(ok())
    }

    async fn restart(&self, name: &str) -> Result<Vec<u8>, String> {
        let _one = self.inner.changes.lock().await;
        let old = self
            .inner
            .groups
            .lock()
            .get(name)
            .cloned()
            .ok_or_else(|| no_such(name))?;
        old.stop().await;
        if self.inner.stop.is_cancelled() {
            return Err("pacer is stopping; the service was stopped, not restarted".to_string());
        }
        match self.spawn_all(&old.config).await {
            Ok(children) => {
                let group = self.launch(old.config, children);
                self.inner.groups.lock().insert(name.to_string(), group);
                tracing::info!(service = %name, "service restarted over RPC");
                Ok(ok())
            }
            Err(e) => {
                // As RoadRunner: a service that cannot start again is removed.
                self.inner.groups.lock().remove(name);
                Err(e)
            }
        }
    }

    fn statuses(&self, name: &str) -> Result<Vec<Result<proto::Status, proto::Status>>, String> {
        let groups = self.inner.groups.lock();
        let group = groups.get(name).ok_or_else(|| no_such(name))?;
        let command = group.config.command.join(" ");
        Ok(group.copies.iter().map(|c| state(c, &command)).collect())
    }
}

impl ProtoService for Services {
    const NAME: &'static str = "service";

    async fn call_proto(&self, method: &str, arg: &[u8]) -> Result<Vec<u8>, String> {
        match method {
            "Create" => self.create(decode(method, arg)?).await,
            "Terminate" => {
                let s: proto::Service = decode(method, arg)?;
                self.terminate(&s.name).await
            }
            "Restart" => {
                let s: proto::Service = decode(method, arg)?;
                self.restart(&s.name).await
            }
            "Status" => {
                // Deprecated in RoadRunner: the last copy's state; an error when any
                // copy's state cannot be read.
                let s: proto::Service = decode(method, arg)?;
                let mut last = proto::Status::default();
                for state in self.statuses(&s.name)? {
                    last = state.map_err(|e| e.status.map(|s| s.message).unwrap_or_default())?;
                }
                Ok(last.encode_to_vec())
            }
            "Statuses" => {
                let s: proto::Service = decode(method, arg)?;
                let status = self
                    .statuses(&s.name)?
                    .into_iter()
                    .map(|r| r.unwrap_or_else(|e| e))
                    .collect();
                Ok(proto::Statuses { status }.encode_to_vec())
            }
            "List" => {
                let _: proto::Service = decode(method, arg)?;
                let services = self.inner.groups.lock().keys().cloned().collect();
                Ok(proto::List { services }.encode_to_vec())
            }
            other => Err(format!("rpc: can't find method service.{other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(name: &str, command: &str, n: i64) -> proto::Create {
        proto::Create {
            name: name.into(),
            command: command.into(),
            process_num: n,
            ..Default::default()
        }
    }

    #[test]
    fn create_maps_to_a_config_with_roadrunners_defaults() {
        let mut c = create("cron", "php  worker.php --x", 2);
        c.exec_timeout = 7;
        c.env.insert("B".into(), "2".into());
        c.env.insert("A".into(), "1".into());
        let cfg = config_of(c).unwrap();
        assert_eq!(cfg.command, ["php", "worker.php", "--x"]);
        assert_eq!(cfg.process_num, 2);
        assert_eq!(cfg.exec_timeout, Some(Duration::from_secs(7)));
        assert_eq!(cfg.restart_sec, Duration::from_secs(30));
        assert_eq!(cfg.timeout_stop_sec, Duration::from_secs(5));
        assert_eq!(
            cfg.env,
            [("A".to_string(), "1".to_string()), ("B".into(), "2".into())]
        );
        assert!(!cfg.remain_after_exit);
    }

    #[test]
    fn create_refuses_what_roadrunner_refuses() {
        assert_eq!(
            config_of(create("cron", "sleep 1", 0)).unwrap_err(),
            "the service with cron name should have at least 1 process"
        );
        assert!(config_of(create("cron", "  ", 1)).is_err());
        assert!(config_of(create("", "sleep 1", 1)).is_err());
        assert!(config_of(create("cron", "sleep 1", 5000)).is_err());
    }
}
