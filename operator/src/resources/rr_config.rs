//! The generated `rr.yaml` (RoadRunner configuration format, version "3") that pacer
//! serves with `--watch-config`.
//!
//! The pool keys pacer applies live (`num_workers`, `max_jobs`, `supervisor.*`) are the
//! tuner's hands; every other key needs a restart, so [`restart_hash`] fingerprints the
//! config *without* the live keys and the Deployment carries it as a pod-template
//! annotation: changing a restart key rolls the pods, tuning the pool does not.

use std::collections::BTreeMap;

use pacer_crds::PhpAppServerSpec;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::tuning::Settings;

/// Port of pacer's status endpoint (`/health`, `/ready`).
pub const STATUS_PORT: u16 = 2114;
/// Port of pacer's metrics endpoint.
pub const METRICS_PORT: u16 = crate::metrics_source::METRICS_PORT;
/// Where the ConfigMap is mounted.
pub const CONFIG_DIR: &str = "/etc/pacer";
/// The ConfigMap key and file name.
pub const CONFIG_FILE: &str = "rr.yaml";
/// Supervisor tick, as RoadRunner's default.
const WATCH_TICK: &str = "1s";

#[derive(Serialize, Debug, Clone, PartialEq)]
struct RrConfig {
    version: &'static str,
    server: Server,
    http: Http,
    status: Address,
    metrics: Address,
    rpc: Rpc,
    pacer: Pacer,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(untagged)]
enum Command {
    Line(String),
    List(Vec<String>),
}

#[derive(Serialize, Debug, Clone, PartialEq)]
struct Server {
    command: Command,
    relay: &'static str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    env: BTreeMap<String, String>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
struct Http {
    address: String,
    max_request_size: i32,
    /// RoadRunner only serves `static` when the middleware is listed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    middleware: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    r#static: Option<Static>,
    pool: Pool,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
struct Static {
    dir: String,
    forbid: Vec<String>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
struct Pool {
    num_workers: u32,
    max_jobs: u64,
    allocate_timeout: String,
    destroy_timeout: String,
    supervisor: Supervisor,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
struct Supervisor {
    watch_tick: &'static str,
    exec_ttl: String,
    ttl: String,
    idle_ttl: String,
    /// Megabytes, as RoadRunner counts them.
    max_worker_memory: u64,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
struct Address {
    address: String,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
struct Rpc {
    listen: &'static str,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
struct Pacer {
    shutdown: Shutdown,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
struct Shutdown {
    delay: String,
    grace_period: String,
}

fn build(spec: &PhpAppServerSpec, settings: &Settings) -> RrConfig {
    // A single string is what RoadRunner users write; a list keeps arguments with spaces.
    let command = if spec
        .command
        .iter()
        .any(|a| a.chars().any(char::is_whitespace))
    {
        Command::List(spec.command.clone())
    } else {
        Command::Line(spec.command.join(" "))
    };
    // Literal values only: values from Secrets never go into a ConfigMap (the workers
    // inherit them from the container's environment).
    let env = spec
        .env
        .iter()
        .filter(|e| e.value_from.is_none())
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect();
    RrConfig {
        version: "3",
        server: Server {
            command,
            relay: "pipes",
            env,
        },
        http: Http {
            address: format!("0.0.0.0:{}", spec.http.port),
            max_request_size: spec.http.max_request_size,
            middleware: if spec.http.static_dir.is_some() {
                vec!["static"]
            } else {
                Vec::new()
            },
            r#static: spec.http.static_dir.as_ref().map(|dir| Static {
                dir: dir.clone(),
                forbid: vec![".php".into()],
            }),
            pool: Pool {
                num_workers: settings.workers,
                max_jobs: settings.max_jobs,
                allocate_timeout: spec.pool.allocate_timeout.clone(),
                destroy_timeout: spec.pool.destroy_timeout.clone(),
                supervisor: Supervisor {
                    watch_tick: WATCH_TICK,
                    exec_ttl: spec.pool.exec_timeout.clone(),
                    ttl: spec.pool.ttl.clone(),
                    idle_ttl: spec.pool.idle_ttl.clone(),
                    max_worker_memory: crate::units::bytes_to_mib_ceil(settings.max_worker_memory),
                },
            },
        },
        status: Address {
            address: format!("0.0.0.0:{STATUS_PORT}"),
        },
        metrics: Address {
            address: format!("0.0.0.0:{METRICS_PORT}"),
        },
        rpc: Rpc {
            listen: "tcp://127.0.0.1:6001",
        },
        pacer: Pacer {
            shutdown: Shutdown {
                delay: spec.shutdown.delay.clone(),
                grace_period: spec.shutdown.grace_period.clone(),
            },
        },
    }
}

/// The `rr.yaml` text for these settings.
///
/// # Errors
/// Serialisation failure (not expected for these plain types).
pub fn render(spec: &PhpAppServerSpec, settings: &Settings) -> Result<String, serde_yaml::Error> {
    let body = serde_yaml::to_string(&build(spec, settings))?;
    Ok(format!(
        "# Generated by pacer-operator; edits are overwritten. The pool section is tuned live.\n{body}"
    ))
}

/// Fingerprint of everything pacer cannot apply live (16 hex digits).
///
/// # Errors
/// Serialisation failure (not expected for these plain types).
pub fn restart_hash(spec: &PhpAppServerSpec) -> Result<String, serde_yaml::Error> {
    let neutral = Settings {
        workers: 0,
        max_jobs: 0,
        max_worker_memory: 0,
        memory_limit: 0,
        replicas: 0,
    };
    let mut config = build(spec, &neutral);
    config.http.pool.supervisor = Supervisor {
        watch_tick: WATCH_TICK,
        exec_ttl: String::new(),
        ttl: String::new(),
        idle_ttl: String::new(),
        max_worker_memory: 0,
    };
    let text = serde_yaml::to_string(&config)?;
    let digest = Sha256::digest(text.as_bytes());
    Ok(digest.iter().take(8).map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, SecretKeySelector};
    use serde_json::json;

    const MI: u64 = 1024 * 1024;

    fn spec() -> PhpAppServerSpec {
        serde_json::from_value(json!({
            "image": "shop:1",
            "command": ["php", "worker.php"],
            "env": [
                {"name": "APP_ENV", "value": "prod"},
                {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}
            ],
            "http": {"staticDir": "/app/public"}
        }))
        .unwrap()
    }

    fn settings() -> Settings {
        Settings {
            workers: 6,
            max_jobs: 250,
            max_worker_memory: 96 * MI,
            memory_limit: 512 * MI,
            replicas: 2,
        }
    }

    #[test]
    fn renders_the_contract_layout() {
        let text = render(&spec(), &settings()).unwrap();
        let yaml: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let want: serde_yaml::Value = serde_yaml::from_str(
            r#"
version: "3"
server:
  command: php worker.php
  relay: pipes
  env: { APP_ENV: prod }
http:
  address: 0.0.0.0:8080
  max_request_size: 100
  middleware: [static]
  static: { dir: /app/public, forbid: [".php"] }
  pool:
    num_workers: 6
    max_jobs: 250
    allocate_timeout: 60s
    destroy_timeout: 30s
    supervisor: { watch_tick: 1s, exec_ttl: 30s, ttl: 0s, idle_ttl: 0s, max_worker_memory: 96 }
status: { address: 0.0.0.0:2114 }
metrics: { address: 0.0.0.0:2112 }
rpc: { listen: tcp://127.0.0.1:6001 }
pacer: { shutdown: { delay: 5s, grace_period: 30s } }
"#,
        )
        .unwrap();
        assert_eq!(yaml, want);
        assert!(
            !text.contains("DB_PASSWORD"),
            "secrets never go into the ConfigMap"
        );
    }

    #[test]
    fn arguments_with_spaces_become_a_list() {
        let mut s = spec();
        s.command = vec![
            "php".into(),
            "-d".into(),
            "memory_limit=256M".into(),
            "my worker.php".into(),
        ];
        let yaml: serde_yaml::Value =
            serde_yaml::from_str(&render(&s, &settings()).unwrap()).unwrap();
        assert_eq!(
            yaml["server"]["command"],
            serde_yaml::to_value(vec!["php", "-d", "memory_limit=256M", "my worker.php"]).unwrap()
        );
    }

    #[test]
    fn static_section_only_with_a_dir() {
        let mut s = spec();
        s.http.static_dir = None;
        let yaml: serde_yaml::Value =
            serde_yaml::from_str(&render(&s, &settings()).unwrap()).unwrap();
        assert!(yaml["http"].get("static").is_none());
        assert!(yaml["http"].get("middleware").is_none());
    }

    #[test]
    fn restart_hash_ignores_live_keys_only() {
        let base = restart_hash(&spec()).unwrap();
        assert_eq!(base.len(), 16);
        // Tuning is live: the hash is the same whatever the settings (they are not inputs).
        let mut s = spec();
        s.pool.exec_timeout = "45s".into(); // supervisor key: live
        assert_eq!(restart_hash(&s).unwrap(), base);
        s.pool.allocate_timeout = "10s".into(); // not live: needs a restart
        assert_ne!(restart_hash(&s).unwrap(), base);
        let mut s = spec();
        s.env.push(EnvVar {
            name: "SECRET2".into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: "x".into(),
                    key: "y".into(),
                    optional: None,
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        });
        assert_eq!(
            restart_hash(&s).unwrap(),
            base,
            "container env rolls pods on its own"
        );
        let mut s = spec();
        s.command.push("--verbose".into());
        assert_ne!(restart_hash(&s).unwrap(), base);
    }
}
