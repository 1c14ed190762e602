//! The contract with the sidecar: every `rr.yaml` the operator generates is accepted by
//! pacer's own configuration parser, with no warning, and means what the operator meant.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, anyhow};

use pacer::config::{LoadOptions, parse_str};
use pacer_crds::PhpAppServerSpec;
use pacer_operator::resources::rr_config::render;
use pacer_operator::tuning::Settings;
use serde_json::json;

const MI: u64 = 1024 * 1024;

fn spec(value: serde_json::Value) -> Result<PhpAppServerSpec> {
    Ok(serde_json::from_value(value)?)
}

fn parse(text: &str) -> Result<pacer::config::Loaded> {
    let opts = LoadOptions {
        path: PathBuf::from("/etc/pacer/rr.yaml"),
        ..LoadOptions::default()
    };
    parse_str(text, &opts).map_err(|e| anyhow!("pacer refused the generated config: {e}\n{text}"))
}

#[test]
fn generated_configs_parse_cleanly_and_mean_the_settings() -> Result<()> {
    let specs = [
        json!({"image": "a", "command": ["php", "worker.php"]}),
        json!({
            "image": "a",
            "command": ["php", "-d", "memory_limit=256M", "bin/my worker.php"],
            "env": [{"name": "APP_ENV", "value": "prod"}, {"name": "EMPTY", "value": ""}],
            "http": {"port": 9000, "maxRequestSize": 8, "staticDir": "/app/public"},
            "pool": {"execTimeout": "0s", "allocateTimeout": "1m30s", "destroyTimeout": "5s", "ttl": "1h", "idleTtl": "10m"},
            "shutdown": {"delay": "2s", "gracePeriod": "1m"}
        }),
    ];
    let settings = Settings {
        workers: 7,
        max_jobs: 230,
        max_worker_memory: 96 * MI,
        memory_limit: 512 * MI,
        replicas: 2,
    };
    for value in specs {
        let s = spec(value)?;
        let text = render(&s, &settings)?;
        let loaded = parse(&text)?;
        assert!(
            loaded.warnings.is_empty(),
            "warnings: {:?}\n{text}",
            loaded.warnings
        );
        let config = loaded.config;
        assert_eq!(config.version, "3");
        assert_eq!(config.server.command, s.command);
        let http = config.http.expect("http section");
        assert_eq!(
            http.address.map(|a| a.port()),
            Some(u16::try_from(s.http.port).unwrap())
        );
        assert_eq!(
            http.max_request_size,
            u64::try_from(s.http.max_request_size).unwrap() * MI
        );
        let pool = http.pool.settings;
        assert_eq!(pool.num_workers, 7);
        assert_eq!(pool.max_jobs, 230);
        assert_eq!(pool.supervisor.max_worker_memory, Some(96 * MI));
        assert_eq!(config.status.expect("status").address.port(), 2114);
        assert_eq!(config.metrics.expect("metrics").address.port(), 2112);
        assert!(config.rpc.is_some());
        if s.pool.allocate_timeout == "1m30s" {
            assert_eq!(pool.allocate_timeout, Duration::from_secs(90));
            assert_eq!(pool.supervisor.exec_ttl, None, "0s turns exec_ttl off");
            assert_eq!(pool.supervisor.ttl, Some(Duration::from_secs(3600)));
            assert_eq!(config.pacer.shutdown.grace_period, Duration::from_secs(60));
            assert_eq!(
                config.server.env.get("APP_ENV").map(String::as_str),
                Some("prod")
            );
            assert_eq!(
                http.static_files.map(|s| s.dir),
                Some(PathBuf::from("/app/public"))
            );
        }
    }
    Ok(())
}

#[test]
fn unlimited_max_jobs_and_memory_parse() -> Result<()> {
    let s = spec(json!({"image": "a", "command": ["php", "w.php"]}))?;
    let settings = Settings {
        workers: 1,
        max_jobs: 0,
        max_worker_memory: 0,
        memory_limit: 128 * MI,
        replicas: 1,
    };
    let config = parse(&render(&s, &settings)?)?.config;
    let pool = config.http.expect("http").pool.settings;
    assert_eq!(pool.max_jobs, 0);
    assert_eq!(pool.supervisor.max_worker_memory, None);
    Ok(())
}

/// `spec.jobs` becomes RoadRunner's `jobs` and `amqp` sections that pacer reads cleanly:
/// its pipelines, the consumed ones and the jobs pool at the size the operator chose.
#[test]
fn generated_jobs_sections_parse_cleanly() -> Result<()> {
    use pacer::config::DriverConfig;
    let s = spec(json!({
        "image": "a",
        "command": ["php", "worker.php"],
        "jobs": {
            "pipelines": {
                "emails": {"driver": "Amqp", "queue": "emails", "exchange": "mail", "durable": true, "prefetch": 20},
                "local": {"driver": "Memory"}
            },
            "consume": ["emails"],
            "amqp": {"addr": "amqp://app:secret@rabbitmq:5672/"},
            "workers": {"min": 2, "max": 8}
        }
    }))?;
    let settings = Settings {
        workers: 3,
        max_jobs: 0,
        max_worker_memory: 96 * MI,
        memory_limit: 512 * MI,
        replicas: 1,
    };
    let text = pacer_operator::resources::rr_config::render_with_jobs(&s, &settings, 5)?;
    let loaded = parse(&text)?;
    assert!(
        loaded.warnings.is_empty(),
        "warnings: {:?}\n{text}",
        loaded.warnings
    );
    let jobs = loaded.config.jobs.expect("jobs section");
    assert_eq!(jobs.pool.settings.num_workers, 5);
    assert_eq!(jobs.consume, ["emails"]);
    let emails = jobs
        .pipelines
        .iter()
        .find(|p| p.name == "emails")
        .expect("emails");
    match &emails.driver {
        DriverConfig::Amqp(a) => {
            assert_eq!(a.addr, "amqp://app:secret@rabbitmq:5672/");
            assert_eq!(
                (
                    a.queue.as_str(),
                    a.exchange.as_str(),
                    a.routing_key.as_str()
                ),
                ("emails", "mail", "emails")
            );
            assert_eq!((a.prefetch, a.durable), (20, true));
        }
        other => anyhow::bail!("emails is not amqp: {other:?}"),
    }
    let local = jobs
        .pipelines
        .iter()
        .find(|p| p.name == "local")
        .expect("local");
    assert!(matches!(&local.driver, DriverConfig::Memory(m) if m.prefetch == 10));
    Ok(())
}
