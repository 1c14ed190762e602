//! The CRD against a real API server: it installs, fills in its defaults, and the server
//! itself refuses invalid objects with the schema's message.

mod common;

use anyhow::{Result, bail};
use kube::api::{DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, CustomResourceExt};
use pacer_crds::{MaxJobs, PhpAppServer, TuningMode};
use serde_json::{Value, json};

fn object(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "pacer.dev/v1alpha1",
        "kind": "PhpAppServer",
        "metadata": {"name": name},
        "spec": spec,
    })
}

fn merged(base: &Value, patch: &Value) -> Value {
    let mut out = base.clone();
    if let (Some(o), Some(p)) = (out.as_object_mut(), patch.as_object()) {
        for (k, v) in p {
            let next = match o.get(k) {
                Some(existing) if existing.is_object() && v.is_object() => merged(existing, v),
                _ => v.clone(),
            };
            o.insert(k.clone(), next);
        }
    }
    out
}

fn dynamic_api(client: kube::Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("pacer.dev", "v1alpha1", "PhpAppServer");
    Api::namespaced_with(client, ns, &ApiResource::from_gvk(&gvk))
}

#[tokio::test]
async fn the_crd_installs_with_its_names_and_columns() -> Result<()> {
    let Some(cp) = common::cluster().await? else {
        return Ok(());
    };
    let client = cp.client()?;
    common::install_crd(&client).await?;
    let crd = Api::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>::all(client)
        .get(pacer_crds::CRD_NAME)
        .await?;
    let names = crd.spec.names;
    assert_eq!(names.short_names, Some(vec!["pas".to_owned()]));
    assert_eq!(PhpAppServer::crd_name(), pacer_crds::CRD_NAME);
    let version = &crd.spec.versions[0];
    assert!(version.subresources.as_ref().unwrap().status.is_some());
    Ok(())
}

#[tokio::test]
async fn a_minimal_object_gets_the_documented_defaults() -> Result<()> {
    let Some(cp) = common::cluster().await? else {
        return Ok(());
    };
    let client = cp.client()?;
    common::install_crd(&client).await?;
    let ns = cp.new_namespace("crd-defaults").await?;
    let api: Api<PhpAppServer> = Api::namespaced(client, &ns);
    let minimal: PhpAppServer = serde_json::from_value(object(
        "minimal",
        json!({"image": "app:1", "command": ["php", "worker.php"]}),
    ))?;
    let created = api.create(&PostParams::default(), &minimal).await?;
    let spec = created.spec;
    assert_eq!(spec.pool.workers.min, 1);
    assert_eq!(spec.pool.workers.max, 16);
    assert_eq!(spec.pool.max_jobs, MaxJobs::Auto);
    assert_eq!(spec.pool.allocate_timeout, "60s");
    assert_eq!(spec.tuning.mode, TuningMode::Auto);
    assert_eq!(spec.tuning.target_utilization, 0.7);
    assert_eq!(spec.resources.memory.limit, "auto");
    assert_eq!(spec.http.port, 8080);
    assert!(spec.sidecar.inject);
    Ok(())
}

/// Each case: a change to a valid spec, and words the server's refusal must contain.
const INVALID: &[(&str, &str, &str)] = &[
    (
        "workers-min-gt-max",
        r#"{"pool":{"workers":{"min":8,"max":4}}}"#,
        "pool.workers.min must be less than or equal to pool.workers.max",
    ),
    (
        "initial-outside",
        r#"{"pool":{"workers":{"min":2,"max":4,"initial":9}}}"#,
        "pool.workers.initial must lie between",
    ),
    (
        "replicas-min-gt-max",
        r#"{"replicas":{"min":5,"max":2}}"#,
        "replicas.min must be less than or equal to replicas.max",
    ),
    (
        "memory-min-gt-max",
        r#"{"resources":{"memory":{"min":"2Gi","max":"1Gi"}}}"#,
        "resources.memory.min must be less than or equal to resources.memory.max",
    ),
    (
        "memory-limit-outside",
        r#"{"resources":{"memory":{"limit":"4Gi"}}}"#,
        "resources.memory.limit must be auto or lie between",
    ),
    (
        "bad-memory",
        r#"{"resources":{"memory":{"max":"1GB"}}}"#,
        "spec.resources.memory.max in body should match",
    ),
    (
        "cpu-request-gt-limit",
        r#"{"resources":{"cpu":{"request":"2","limit":"500m"}}}"#,
        "resources.cpu.request must not exceed resources.cpu.limit",
    ),
    (
        "bad-mode",
        r#"{"tuning":{"mode":"Sometimes"}}"#,
        "Unsupported value: \"Sometimes\"",
    ),
    (
        "bad-source",
        r#"{"tuning":{"metrics":{"source":"Graphite"}}}"#,
        "Unsupported value: \"Graphite\"",
    ),
    (
        "prometheus-without-url",
        r#"{"tuning":{"metrics":{"source":"Prometheus"}}}"#,
        "tuning.metrics.prometheusUrl is required",
    ),
    (
        "bad-duration",
        r#"{"pool":{"allocateTimeout":"5 minutes"}}"#,
        "spec.pool.allocateTimeout in body should match",
    ),
    (
        "zero-duration",
        r#"{"pool":{"allocateTimeout":"0s"}}"#,
        "pool.allocateTimeout must be a positive duration",
    ),
    (
        "interval-too-short",
        r#"{"tuning":{"interval":"1s"}}"#,
        "tuning.interval must be between 5s and 1h",
    ),
    (
        "negative-max-jobs",
        r#"{"pool":{"maxJobs":-1}}"#,
        "pool.maxJobs must be a non-negative number or \"auto\"",
    ),
    (
        "wordy-max-jobs",
        r#"{"pool":{"maxJobs":"lots"}}"#,
        "pool.maxJobs must be a non-negative number or \"auto\"",
    ),
    (
        "utilization-high",
        r#"{"tuning":{"targetUtilization":1.5}}"#,
        "should be less than or equal to 0.95",
    ),
    (
        "workers-zero",
        r#"{"pool":{"workers":{"max":0}}}"#,
        "should be greater than or equal to 1",
    ),
    (
        "port-clash",
        r#"{"http":{"port":2112}}"#,
        "http.port must not be 2112",
    ),
    (
        "bad-worker-memory",
        r#"{"pool":{"maxWorkerMemory":"lots"}}"#,
        "spec.pool.maxWorkerMemory in body should match",
    ),
];

#[tokio::test]
async fn invalid_objects_are_refused_with_the_schema_message() -> Result<()> {
    let Some(cp) = common::cluster().await? else {
        return Ok(());
    };
    let client = cp.client()?;
    common::install_crd(&client).await?;
    let ns = cp.new_namespace("crd-invalid").await?;
    let api = dynamic_api(client.clone(), &ns);
    let base = json!({"image": "app:1", "command": ["php", "worker.php"]});

    let valid: DynamicObject = serde_json::from_value(object("valid", base.clone()))?;
    api.create(&PostParams::default(), &valid).await?;

    let mut failures = Vec::new();
    for (name, patch, message) in INVALID {
        let spec = merged(&base, &serde_json::from_str(patch)?);
        let obj: DynamicObject = serde_json::from_value(object(name, spec))?;
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => failures.push(format!("{name}: accepted")),
            Err(kube::Error::Api(status)) => {
                if status.code != 422 || !status.message.contains(message) {
                    failures.push(format!("{name}: {} {}", status.code, status.message));
                }
            }
            Err(other) => failures.push(format!("{name}: {other}")),
        }
    }
    // A spec without a command is refused too.
    let obj: DynamicObject =
        serde_json::from_value(object("no-command", json!({"image": "app:1"})))?;
    match api.create(&PostParams::default(), &obj).await {
        Err(kube::Error::Api(status))
            if status.message.contains("spec.command: Required value") => {}
        other => failures.push(format!("no-command: {other:?}")),
    }
    if !failures.is_empty() {
        bail!(
            "{} case(s) not refused as expected:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
    Ok(())
}
