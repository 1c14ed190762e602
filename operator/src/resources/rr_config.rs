//! The generated `rr.yaml` (RoadRunner configuration format, version "3") that pacer
//! serves with `--watch-config`.
//!
//! The pool keys pacer applies live (`num_workers`, `max_jobs`, `supervisor.*`) are the
//! tuner's hands; every other key needs a restart, so [`restart_hash`] fingerprints the
//! config *without* the live keys and the Deployment carries it as a pod-template
//! annotation: changing a restart key rolls the pods, tuning the pool does not.
//! `spec.jobs` adds RoadRunner's `jobs` (and `amqp`) sections; `jobs.pool.num_workers`
//! is live too (pacer resizes its jobs pool from the ConfigMap).

use std::collections::BTreeMap;

use pacer_crds::{JobsDriver, PhpAppServerSpec};
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
    /// Absent for a jobs-only app (`http.enabled: false`).
    #[serde(skip_serializing_if = "Option::is_none")]
    http: Option<Http>,
    status: Address,
    metrics: Address,
    rpc: Rpc,
    #[serde(skip_serializing_if = "Option::is_none")]
    jobs: Option<Jobs>,
    #[serde(skip_serializing_if = "Option::is_none")]
    amqp: Option<Amqp>,
    pacer: Pacer,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
struct Jobs {
    pool: JobsPool,
    consume: Vec<String>,
    pipelines: BTreeMap<String, Pipeline>,
}

/// The jobs pool: the HTTP pool's timeouts and memory limit; no `exec_ttl` (a job's time
/// is the job's business, not an HTTP request's) and no `max_jobs` recycling.
#[derive(Serialize, Debug, Clone, PartialEq)]
struct JobsPool {
    num_workers: u32,
    allocate_timeout: String,
    destroy_timeout: String,
    supervisor: JobsSupervisor,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
struct JobsSupervisor {
    watch_tick: &'static str,
    ttl: String,
    idle_ttl: String,
    max_worker_memory: u64,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
struct Pipeline {
    driver: &'static str,
    config: PipelineConfig,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
struct PipelineConfig {
    prefetch: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    queue: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exchange: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    routing_key: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    durable: bool,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
struct Amqp {
    addr: String,
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

/// Jobs workers per pod before the tuner has sized the jobs pool: `jobs.workers.initial`,
/// else `min`.
#[must_use]
pub fn initial_jobs_workers(spec: &PhpAppServerSpec) -> u32 {
    spec.jobs.as_ref().map_or(0, |j| {
        u32::try_from(j.workers.initial.unwrap_or(j.workers.min).max(1)).unwrap_or(1)
    })
}

fn jobs(
    spec: &PhpAppServerSpec,
    settings: &Settings,
    workers: u32,
) -> Option<(Jobs, Option<Amqp>)> {
    let j = spec.jobs.as_ref()?;
    let pipelines = j
        .pipelines
        .iter()
        .map(|(name, p)| {
            let amqp = p.driver == JobsDriver::Amqp;
            let pipeline = Pipeline {
                driver: if amqp { "amqp" } else { "memory" },
                config: PipelineConfig {
                    prefetch: p.prefetch,
                    queue: p.queue.clone().filter(|_| amqp),
                    exchange: p.exchange.clone().filter(|_| amqp),
                    routing_key: p
                        .routing_key
                        .clone()
                        .or_else(|| p.queue.clone())
                        .filter(|_| amqp),
                    durable: amqp && p.durable,
                },
            };
            (name.clone(), pipeline)
        })
        .collect();
    let consume = if j.consume.is_empty() {
        j.pipelines.keys().cloned().collect()
    } else {
        j.consume.clone()
    };
    Some((
        Jobs {
            pool: JobsPool {
                num_workers: workers,
                allocate_timeout: spec.pool.allocate_timeout.clone(),
                destroy_timeout: spec.pool.destroy_timeout.clone(),
                supervisor: JobsSupervisor {
                    watch_tick: WATCH_TICK,
                    ttl: spec.pool.ttl.clone(),
                    idle_ttl: spec.pool.idle_ttl.clone(),
                    max_worker_memory: crate::units::bytes_to_mib_ceil(settings.max_worker_memory),
                },
            },
            consume,
            pipelines,
        },
        j.amqp.as_ref().map(|a| Amqp {
            addr: a.addr.clone(),
        }),
    ))
}

fn build(spec: &PhpAppServerSpec, settings: &Settings, jobs_workers: u32) -> RrConfig {
    let (jobs, amqp) = match jobs(spec, settings, jobs_workers) {
        Some((j, a)) => (Some(j), a),
        None => (None, None),
    };
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
        http: spec.http.enabled.then(|| Http {
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
        }),
        status: Address {
            address: format!("0.0.0.0:{STATUS_PORT}"),
        },
        metrics: Address {
            address: format!("0.0.0.0:{METRICS_PORT}"),
        },
        rpc: Rpc {
            listen: "tcp://127.0.0.1:6001",
        },
        jobs,
        amqp,
        pacer: Pacer {
            shutdown: Shutdown {
                delay: spec.shutdown.delay.clone(),
                grace_period: spec.shutdown.grace_period.clone(),
            },
        },
    }
}

/// The `rr.yaml` text for these settings, with the jobs pool (when `spec.jobs` is set) at
/// its initial size.
///
/// # Errors
/// Serialisation failure (not expected for these plain types).
pub fn render(spec: &PhpAppServerSpec, settings: &Settings) -> Result<String, serde_yaml::Error> {
    render_with_jobs(spec, settings, initial_jobs_workers(spec))
}

/// [`render`] with `jobs_workers` jobs workers per pod (ignored without `spec.jobs`).
///
/// # Errors
/// Serialisation failure (not expected for these plain types).
pub fn render_with_jobs(
    spec: &PhpAppServerSpec,
    settings: &Settings,
    jobs_workers: u32,
) -> Result<String, serde_yaml::Error> {
    let body = serde_yaml::to_string(&build(spec, settings, jobs_workers))?;
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
    let mut config = build(spec, &neutral, 0);
    if let Some(http) = &mut config.http {
        http.pool.supervisor = Supervisor {
            watch_tick: WATCH_TICK,
            exec_ttl: String::new(),
            ttl: String::new(),
            idle_ttl: String::new(),
            max_worker_memory: 0,
        };
    }
    if let Some(jobs) = &mut config.jobs {
        jobs.pool.supervisor = JobsSupervisor {
            watch_tick: WATCH_TICK,
            ttl: String::new(),
            idle_ttl: String::new(),
            max_worker_memory: 0,
        };
    }
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

#[cfg(test)]
mod jobs_tests {
    use super::*;
    use serde_json::json;

    fn spec() -> PhpAppServerSpec {
        serde_json::from_value(json!({
            "image": "shop:1",
            "command": ["php", "worker.php"],
            "jobs": {
                "pipelines": {
                    "emails": {"driver": "Amqp", "queue": "emails", "durable": true, "prefetch": 20},
                    "local": {"driver": "Memory"}
                },
                "consume": ["emails"],
                "amqp": {"addr": "amqp://app:${AMQP_PASSWORD}@rabbitmq:5672/"},
                "workers": {"min": 2, "max": 8}
            }
        }))
        .unwrap()
    }

    fn settings() -> Settings {
        Settings {
            workers: 4,
            max_jobs: 250,
            max_worker_memory: 96 * 1024 * 1024,
            memory_limit: 512 * 1024 * 1024,
            replicas: 2,
        }
    }

    #[test]
    fn renders_roadrunners_jobs_and_amqp_sections() {
        let yaml: serde_yaml::Value =
            serde_yaml::from_str(&render(&spec(), &settings()).unwrap()).unwrap();
        let want: serde_yaml::Value = serde_yaml::from_str(
            r#"
pool:
  num_workers: 2
  allocate_timeout: 60s
  destroy_timeout: 30s
  supervisor: { watch_tick: 1s, ttl: 0s, idle_ttl: 0s, max_worker_memory: 96 }
consume: [emails]
pipelines:
  emails: { driver: amqp, config: { prefetch: 20, queue: emails, routing_key: emails, durable: true } }
  local: { driver: memory, config: { prefetch: 10 } }
"#,
        )
        .unwrap();
        assert_eq!(yaml["jobs"], want);
        assert_eq!(
            yaml["amqp"]["addr"],
            "amqp://app:${AMQP_PASSWORD}@rabbitmq:5672/"
        );
        let tuned: serde_yaml::Value =
            serde_yaml::from_str(&render_with_jobs(&spec(), &settings(), 7).unwrap()).unwrap();
        assert_eq!(tuned["jobs"]["pool"]["num_workers"], 7);
    }

    #[test]
    fn a_jobs_only_app_has_no_http_section() {
        let mut s = spec();
        s.http.enabled = false;
        let yaml: serde_yaml::Value =
            serde_yaml::from_str(&render_with_jobs(&s, &settings(), 3).unwrap()).unwrap();
        assert!(yaml.get("http").is_none(), "{yaml:?}");
        assert_eq!(yaml["jobs"]["pool"]["num_workers"], 3);
        assert!(yaml.get("metrics").is_some() && yaml.get("status").is_some());
        assert_ne!(restart_hash(&s).unwrap(), restart_hash(&spec()).unwrap());
    }

    #[test]
    fn no_jobs_section_without_spec_jobs_and_consume_defaults_to_all() {
        let mut s = spec();
        s.jobs.as_mut().unwrap().consume.clear();
        let yaml: serde_yaml::Value =
            serde_yaml::from_str(&render(&s, &settings()).unwrap()).unwrap();
        assert_eq!(
            yaml["jobs"]["consume"],
            serde_yaml::to_value(["emails", "local"]).unwrap()
        );
        s.jobs = None;
        let yaml: serde_yaml::Value =
            serde_yaml::from_str(&render(&s, &settings()).unwrap()).unwrap();
        assert!(
            yaml.get("jobs").is_none() && yaml.get("amqp").is_none(),
            "{yaml:?}"
        );
    }

    #[test]
    fn the_jobs_pool_size_is_live_pipelines_are_not() {
        let base = restart_hash(&spec()).unwrap();
        let mut s = spec();
        s.jobs.as_mut().unwrap().workers.min = 1; // the size: live
        assert_eq!(restart_hash(&s).unwrap(), base);
        let mut s = spec();
        s.jobs
            .as_mut()
            .unwrap()
            .pipelines
            .get_mut("emails")
            .unwrap()
            .prefetch = 5;
        assert_ne!(restart_hash(&s).unwrap(), base);
    }
}
