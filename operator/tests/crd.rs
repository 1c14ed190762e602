//! The CRD against a real API server: it installs, fills in its defaults, and the server
//! itself refuses invalid objects with the schema's message.

mod common;

use anyhow::{Context, Result, bail};
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
    (
        "jobs-consume-unknown",
        r#"{"jobs":{"pipelines":{"a":{"driver":"Memory"}},"consume":["b"]}}"#,
        "jobs.consume must name pipelines of jobs.pipelines",
    ),
    (
        "jobs-amqp-without-addr",
        r#"{"jobs":{"pipelines":{"a":{"driver":"Amqp","queue":"q"}}}}"#,
        "jobs.amqp.addr is required",
    ),
    (
        "jobs-amqp-without-queue",
        r#"{"jobs":{"pipelines":{"a":{"driver":"Amqp"}},"amqp":{"addr":"amqp://r:5672/"}}}"#,
        "jobs.pipelines.*.queue is required with the Amqp driver",
    ),
    (
        "jobs-bad-driver",
        r#"{"jobs":{"pipelines":{"a":{"driver":"Kafka"}}}}"#,
        "Unsupported value: \"Kafka\"",
    ),
    (
        "jobs-no-pipelines",
        r#"{"jobs":{"pipelines":{}}}"#,
        "spec.jobs.pipelines in body should have at least 1 properties",
    ),
    (
        "jobs-bad-pipeline-name",
        r#"{"jobs":{"pipelines":{"Bad Name":{"driver":"Memory"}}}}"#,
        "jobs.pipelines names must be lowercase",
    ),
    (
        "jobs-workers-min-gt-max",
        r#"{"jobs":{"pipelines":{"a":{"driver":"Memory"}},"workers":{"min":5,"max":2}}}"#,
        "jobs.workers.min must be less than or equal to jobs.workers.max",
    ),
    (
        "jobs-drain-too-short",
        r#"{"jobs":{"pipelines":{"a":{"driver":"Memory"}},"targetDrainTime":"1s"}}"#,
        "jobs.targetDrainTime must be between 10s and 24h",
    ),
    (
        "jobs-utilization-high",
        r#"{"jobs":{"pipelines":{"a":{"driver":"Memory"}},"targetUtilization":1.2}}"#,
        "should be less than or equal to 0.95",
    ),
    (
        "jobs-zero-without-prometheus",
        r#"{"http":{"enabled":false},"jobs":{"pipelines":{"a":{"driver":"Memory"}},"scaleToZero":{"depthQuery":"sum(x)"}}}"#,
        "jobs.scaleToZero needs tuning.metrics.prometheusUrl",
    ),
    (
        "jobs-zero-idle-too-short",
        r#"{"http":{"enabled":false},"jobs":{"pipelines":{"a":{"driver":"Memory"}},"scaleToZero":{"depthQuery":"sum(x)","idleFor":"5s"}},"tuning":{"metrics":{"prometheusUrl":"http://p:9090"}}}"#,
        "jobs.scaleToZero.idleFor must be between 30s and 24h",
    ),
    (
        "jobs-zero-with-external-replicas",
        r#"{"http":{"enabled":false},"jobs":{"pipelines":{"a":{"driver":"Memory"}},"scaleToZero":{"depthQuery":"sum(x)"}},"tuning":{"metrics":{"prometheusUrl":"http://p:9090"}},"replicas":{"external":true}}"#,
        "jobs.scaleToZero and an external replica count",
    ),
    (
        "scale-to-zero-serving-http",
        r#"{"jobs":{"pipelines":{"a":{"driver":"Memory"}},"scaleToZero":{"depthQuery":"sum(x)"}},"tuning":{"metrics":{"prometheusUrl":"http://p:9090"}}}"#,
        "jobs.scaleToZero needs http.enabled: false",
    ),
    (
        "no-http-no-jobs",
        r#"{"http":{"enabled":false}}"#,
        "http.enabled: false makes a jobs-only app: it needs jobs",
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
    // Every jobs field at once, valid: accepted, with the defaults filled in.
    let jobs = merged(
        &base,
        &json!({"jobs": {"pipelines": {"emails": {"driver": "Amqp", "queue": "emails", "durable": true},
                                       "local": {"driver": "Memory"}},
                         "consume": ["emails"], "amqp": {"addr": "amqp://app:${AMQP_PASSWORD}@rabbitmq:5672/"},
                         "workers": {"min": 1, "max": 8, "initial": 2}, "targetDrainTime": "90s",
                         "targetUtilization": 0.8,
                         "scaleToZero": {"depthQuery": "sum(rabbitmq_queue_messages_ready{queue=\"emails\"})"}},
                "http": {"enabled": false},
                "tuning": {"metrics": {"prometheusUrl": "http://prometheus:9090"}}}),
    );
    let created = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(object("valid-jobs", jobs))?,
        )
        .await?;
    let got = &created.data["spec"]["jobs"];
    assert_eq!(got["pipelines"]["local"]["prefetch"], 10, "{got}");
    assert_eq!(got["scaleToZero"]["idleFor"], "5m", "{got}");

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
    // The two forms of the pod: one at a time, and the template names its PHP container.
    for (name, spec, message) in [
        (
            "both-forms",
            json!({"image": "app:1", "command": ["php", "w.php"],
                   "template": {"spec": {"containers": [{"name": "app", "image": "app:1"}]}}}),
            "set either image (the short form) or template",
        ),
        (
            "no-php-container",
            json!({"command": ["php", "w.php"], "container": "php",
                   "template": {"spec": {"containers": [{"name": "app", "image": "app:1"}]}}}),
            "template.spec.containers must have a container named as spec.container",
        ),
        (
            "short-form-fields-with-template",
            json!({"command": ["php", "w.php"], "nodeSelector": {"a": "b"},
                   "template": {"spec": {"containers": [{"name": "app", "image": "app:1"}]}}}),
            "with template, say the pod's settings in the template",
        ),
    ] {
        let obj: DynamicObject = serde_json::from_value(object(name, spec))?;
        match api.create(&PostParams::default(), &obj).await {
            Err(kube::Error::Api(status))
                if status.code == 422 && status.message.contains(message) => {}
            other => failures.push(format!("{name}: {other:?}")),
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

/// `kubectl explain` reads the OpenAPI v3 the API server publishes for the CRD: every
/// field of spec and status there has a description (Kubernetes' own types inside the pod
/// template and the conditions carry theirs).
#[tokio::test]
async fn the_published_openapi_documents_every_field() -> Result<()> {
    let Some(cp) = common::cluster().await? else {
        return Ok(());
    };
    let client = cp.client()?;
    common::install_crd(&client).await?;
    let fetch = || async {
        let request = http::Request::get("/openapi/v3/apis/pacer.dev/v1alpha2").body(Vec::new())?;
        let text = client.request_text(request).await?;
        let doc: Value = serde_json::from_str(&text)?;
        Ok::<Option<Value>, anyhow::Error>(doc["components"]["schemas"].as_object().and_then(|s| {
            s.iter()
                .find(|(k, _)| k.ends_with("pacer.v1alpha2.PhpAppServer"))
                .map(|(_, v)| v.clone())
        }))
    };
    common::wait_for(
        std::time::Duration::from_secs(30),
        "the CRD's OpenAPI v3 document",
        || async {
            Ok(fetch()
                .await?
                .is_some_and(|s| s["properties"]["spec"]["properties"]["template"].is_object()))
        },
    )
    .await?;
    let schema = fetch().await?.context("no PhpAppServer schema")?;
    fn walk(path: &str, schema: &Value, missing: &mut Vec<String>) {
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (name, prop) in props {
                let here = format!("{path}.{name}");
                if prop.get("description").is_none() && !path.contains("metadata") {
                    missing.push(here.clone());
                }
                walk(&here, prop, missing);
            }
        }
        if let Some(items) = schema.get("items") {
            walk(path, items, missing);
        }
        if let Some(more) = schema.get("additionalProperties").filter(|v| v.is_object()) {
            walk(path, more, missing);
        }
    }
    let mut missing = Vec::new();
    walk("spec", &schema["properties"]["spec"], &mut missing);
    walk("status", &schema["properties"]["status"], &mut missing);
    assert!(
        missing.is_empty(),
        "undocumented in kubectl explain: {missing:?}"
    );
    // The new fields say what they do.
    let spec = &schema["properties"]["spec"]["properties"];
    for (field, words) in [
        ("template", "pod template"),
        ("container", "PHP container"),
        ("paused", "pacer.dev/paused"),
    ] {
        let text = spec[field]["description"].as_str().unwrap_or_default();
        assert!(text.contains(words), "spec.{field}: {text}");
    }
    let count = spec["replicas"]["properties"]["count"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(count.contains("/scale"), "{count}");
    Ok(())
}

/// v1alpha1 objects are valid v1alpha2 objects: one written as v1alpha1 reads back as
/// v1alpha2 with every field, and the old version warns that it is deprecated.
#[tokio::test]
async fn v1alpha1_objects_read_as_v1alpha2_unchanged() -> Result<()> {
    let Some(cp) = common::cluster().await? else {
        return Ok(());
    };
    let client = cp.client()?;
    common::install_crd(&client).await?;
    let ns = cp.new_namespace("crd-versions").await?;
    let old = dynamic_api(client.clone(), &ns);
    let spec = json!({
        "image": "app:1", "command": ["php", "worker.php"], "workingDir": "/app",
        "env": [{"name": "A", "value": "b"}], "nodeSelector": {"pool": "php"},
        "runAsUser": 1000, "replicas": {"min": 2, "max": 5},
        "tuning": {"mode": "Recommend"}
    });
    let obj: DynamicObject = serde_json::from_value(object("legacy", spec.clone()))?;
    old.create(&PostParams::default(), &obj).await?;
    let current: Api<PhpAppServer> = Api::namespaced(client.clone(), &ns);
    let read = serde_json::to_value(current.get("legacy").await?)?;
    assert_eq!(read["apiVersion"], "pacer.dev/v1alpha2");
    for (key, value) in spec.as_object().context("spec")? {
        if key == "replicas" || key == "tuning" {
            for (k, v) in value.as_object().context("nested")? {
                assert_eq!(&read["spec"][key][k], v, "spec.{key}.{k}");
            }
        } else {
            assert_eq!(&read["spec"][key], value, "spec.{key}");
        }
    }
    let crd = Api::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>::all(client)
        .get(pacer_crds::CRD_NAME)
        .await?;
    let v1 = crd
        .spec
        .versions
        .iter()
        .find(|v| v.name == "v1alpha1")
        .context("v1alpha1 is not served")?;
    assert!(v1.served && !v1.storage && v1.deprecated == Some(true));
    let v2 = crd
        .spec
        .versions
        .iter()
        .find(|v| v.name == "v1alpha2")
        .context("no v1alpha2")?;
    assert!(v2.served && v2.storage);
    let scale = v2
        .subresources
        .as_ref()
        .and_then(|s| s.scale.as_ref())
        .context("no /scale")?;
    assert_eq!(scale.spec_replicas_path, ".spec.replicas.count");
    assert_eq!(
        scale.label_selector_path.as_deref(),
        Some(".status.selector")
    );
    Ok(())
}

/// Every manifest in examples/kubernetes/ is accepted by the API server (server-side dry
/// run, every document of every file).
#[tokio::test]
async fn the_kubernetes_examples_pass_a_server_side_dry_run() -> Result<()> {
    let Some(cp) = common::cluster().await? else {
        return Ok(());
    };
    let client = cp.client()?;
    common::install_crd(&client).await?;
    let ns = cp.new_namespace("examples").await?;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/kubernetes");
    let mut files: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    assert!(
        names.contains(&"hello.yaml".to_owned()) && names.contains(&"laravel.yaml".to_owned()),
        "{names:?}"
    );
    let params = kube::api::PatchParams::apply("examples-test").dry_run();
    for file in &files {
        let text = std::fs::read_to_string(file)?;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = <serde_json::Value as serde::Deserialize>::deserialize(doc)?;
            if value.is_null() {
                continue;
            }
            let obj: DynamicObject = serde_json::from_value(value)?;
            let types = obj.types.clone().context("no apiVersion/kind")?;
            let gvk = GroupVersionKind::try_from(&types)?;
            let (resource, _) = kube::discovery::pinned_kind(&client, &gvk).await?;
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &resource);
            let name = obj.metadata.name.clone().context("no name")?;
            api.patch(&name, &params, &kube::api::Patch::Apply(&obj))
                .await
                .with_context(|| format!("{}: {} {name}", file.display(), gvk.kind))?;
        }
    }
    Ok(())
}
