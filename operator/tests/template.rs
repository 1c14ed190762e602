//! Any pod: a PhpAppServer with a full pod template against the real API server. The
//! operator injects pacer into the named PHP container and owns only what it must;
//! everything else the user wrote reaches the Deployment untouched.

mod common;

use std::sync::Arc;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::PostParams;
use pacer_crds::PhpAppServer;
use pacer_operator::metrics_source::Fake;
use serde_json::{Value, json};

use common::{setup, start_operator, wait_for_deployment};

/// `want` is contained in `have`: every key of every object in `want` is in `have` with a
/// value that contains it in turn; arrays match element by element. (The API server adds
/// defaults such as `defaultMode` or `terminationMessagePath`; nothing the user wrote may
/// be missing or different.)
fn contains(have: &Value, want: &Value, path: &str, out: &mut Vec<String>) {
    match (have, want) {
        (Value::Object(h), Value::Object(w)) => {
            for (k, v) in w {
                match h.get(k) {
                    Some(hv) => contains(hv, v, &format!("{path}.{k}"), out),
                    None => out.push(format!("{path}.{k} is missing")),
                }
            }
        }
        (Value::Array(h), Value::Array(w)) => {
            if h.len() != w.len() {
                out.push(format!("{path}: {} items, want {}", h.len(), w.len()));
                return;
            }
            for (i, (hv, wv)) in h.iter().zip(w).enumerate() {
                contains(hv, wv, &format!("{path}[{i}]"), out);
            }
        }
        _ if have == want => {}
        _ => out.push(format!("{path}: {have} != {want}")),
    }
}

fn template() -> Value {
    json!({
        "metadata": {"labels": {"team": "shop", "tier": "web"}, "annotations": {"owner": "shop-team"}},
        "spec": {
            "serviceAccountName": "shop",
            "priorityClassName": "business-critical",
            "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 2000,
                                "supplementalGroups": [3000]},
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]}}},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "php", "effect": "NoSchedule"}],
            "topologySpreadConstraints": [{
                "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"pacer.dev/app": "shop"}}}],
            "volumes": [
                {"name": "storage", "emptyDir": {"sizeLimit": "1Gi"}},
                {"name": "settings", "configMap": {"name": "shop-settings"}}
            ],
            "initContainers": [{
                "name": "migrate", "image": "shop:2",
                "command": ["php", "artisan", "migrate", "--force"],
                "envFrom": [{"secretRef": {"name": "shop-env"}}]
            }],
            "containers": [
                {
                    "name": "php", "image": "shop:2", "imagePullPolicy": "IfNotPresent",
                    "workingDir": "/srv/app",
                    "envFrom": [{"secretRef": {"name": "shop-env"}}, {"configMapRef": {"name": "shop-config"}}],
                    "env": [{"name": "APP_ENV", "value": "production"}],
                    "volumeMounts": [
                        {"name": "storage", "mountPath": "/srv/app/storage"},
                        {"name": "settings", "mountPath": "/srv/app/config/extra", "readOnly": true}
                    ],
                    "resources": {"requests": {"ephemeral-storage": "1Gi"}}
                },
                {
                    "name": "cloud-sql-proxy", "image": "proxy:2",
                    "args": ["--port=5432", "project:region:db"],
                    "securityContext": {"runAsNonRoot": true}
                }
            ]
        }
    })
}

#[tokio::test]
async fn a_full_pod_template_passes_through_with_pacer_injected() -> Result<()> {
    let Some((client, ns)) = setup("template").await? else {
        return Ok(());
    };
    let op = start_operator(client.clone(), &ns, "op-a", Arc::new(Fake::new()));
    let apps: Api<PhpAppServer> = Api::namespaced(client.clone(), &ns);
    let user = template();
    let object: PhpAppServer = serde_json::from_value(json!({
        "apiVersion": "pacer.dev/v1alpha2", "kind": "PhpAppServer",
        "metadata": {"name": "shop"},
        "spec": {"template": user, "container": "php", "command": ["php", "worker.php"],
                 "tuning": {"mode": "Off"}, "pool": {"workers": {"initial": 3}}}
    }))?;
    apps.create(&PostParams::default(), &object).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    wait_for_deployment(&deployments, "shop").await?;
    let d = serde_json::to_value(deployments.get("shop").await?)?;
    let pod = &d["spec"]["template"];

    // Everything the user wrote is there, as written.
    let mut missing = Vec::new();
    contains(
        &pod["metadata"]["labels"],
        &user["metadata"]["labels"],
        "labels",
        &mut missing,
    );
    contains(
        &pod["metadata"]["annotations"],
        &user["metadata"]["annotations"],
        "annotations",
        &mut missing,
    );
    for field in [
        "serviceAccountName",
        "priorityClassName",
        "affinity",
        "tolerations",
        "topologySpreadConstraints",
    ] {
        contains(
            &pod["spec"][field],
            &user["spec"][field],
            field,
            &mut missing,
        );
    }
    // The pod security context: the user's values, plus the restricted defaults they left unset.
    contains(
        &pod["spec"]["securityContext"],
        &user["spec"]["securityContext"],
        "securityContext",
        &mut missing,
    );
    let by_name = |list: &Value, name: &str| -> Value {
        list.as_array()
            .and_then(|l| l.iter().find(|c| c["name"] == name).cloned())
            .unwrap_or(Value::Null)
    };
    for volume in user["spec"]["volumes"].as_array().context("volumes")? {
        let name = volume["name"].as_str().context("name")?;
        contains(
            &by_name(&pod["spec"]["volumes"], name),
            volume,
            &format!("volume {name}"),
            &mut missing,
        );
    }
    let user_init = &user["spec"]["initContainers"][0];
    contains(
        &by_name(&pod["spec"]["initContainers"], "migrate"),
        user_init,
        "initContainer migrate",
        &mut missing,
    );
    let proxy = &user["spec"]["containers"][1];
    contains(
        &by_name(&pod["spec"]["containers"], "cloud-sql-proxy"),
        proxy,
        "container cloud-sql-proxy",
        &mut missing,
    );
    let user_php = &user["spec"]["containers"][0];
    let php = by_name(&pod["spec"]["containers"], "php");
    for field in ["image", "imagePullPolicy", "workingDir", "envFrom", "env"] {
        contains(
            &php[field],
            &user_php[field],
            &format!("php.{field}"),
            &mut missing,
        );
    }
    for m in user_php["volumeMounts"].as_array().context("mounts")? {
        let path = m["mountPath"].as_str().context("mountPath")?;
        let found = php["volumeMounts"]
            .as_array()
            .and_then(|l| l.iter().find(|x| x["mountPath"] == path).cloned())
            .unwrap_or(Value::Null);
        contains(&found, m, &format!("php mount {path}"), &mut missing);
    }
    ensure!(
        missing.is_empty(),
        "the user's template did not pass through:\n{}",
        missing.join("\n")
    );

    // What the operator owns: pacer injected into the named container, pacer's init
    // container first, its volumes, resources, probes, restricted defaults.
    assert_eq!(
        php["command"],
        json!([
            "/pacer/pacer",
            "serve",
            "-c",
            "/etc/pacer/rr.yaml",
            "--watch-config"
        ])
    );
    assert_eq!(pod["spec"]["initContainers"][0]["name"], "pacer-install");
    assert_eq!(pod["spec"]["initContainers"][1]["name"], "migrate");
    let mounts: Vec<&str> = php["volumeMounts"]
        .as_array()
        .context("mounts")?
        .iter()
        .filter_map(|m| m["mountPath"].as_str())
        .collect();
    for path in ["/etc/pacer", "/pacer", "/tmp", "/srv/app/storage"] {
        ensure!(mounts.contains(&path), "no mount at {path}: {mounts:?}");
    }
    assert_eq!(
        php["securityContext"]["readOnlyRootFilesystem"], true,
        "read-only root by default"
    );
    assert_eq!(php["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        php["resources"]["requests"]["ephemeral-storage"], "1Gi",
        "the user's other resources stay"
    );
    assert_eq!(
        php["resources"]["limits"]["memory"], "1Gi",
        "the tuned memory"
    );
    assert_eq!(
        php["readinessProbe"]["httpGet"]["path"], "/ready",
        "a probe where the user set none"
    );
    // The other container keeps its own security context: nothing was added to it.
    let shipped_proxy = by_name(&pod["spec"]["containers"], "cloud-sql-proxy");
    assert_eq!(
        shipped_proxy["securityContext"],
        json!({"runAsNonRoot": true})
    );
    assert!(
        shipped_proxy["command"].is_null(),
        "only the PHP container runs pacer"
    );
    op.stop().await
}

#[tokio::test]
async fn the_users_probes_and_security_settings_win() -> Result<()> {
    let Some((client, ns)) = setup("template-own").await? else {
        return Ok(());
    };
    let op = start_operator(client.clone(), &ns, "op-a", Arc::new(Fake::new()));
    let apps: Api<PhpAppServer> = Api::namespaced(client.clone(), &ns);
    let object: PhpAppServer = serde_json::from_value(json!({
        "apiVersion": "pacer.dev/v1alpha2", "kind": "PhpAppServer",
        "metadata": {"name": "shop"},
        "spec": {"command": ["php", "worker.php"], "tuning": {"mode": "Off"},
                 "template": {"spec": {"containers": [{
                     "name": "app", "image": "shop:2",
                     "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 3},
                     "securityContext": {"readOnlyRootFilesystem": false},
                     "volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}]
                 }], "volumes": [{"name": "scratch", "emptyDir": {"medium": "Memory"}}]}}}
    }))?;
    apps.create(&PostParams::default(), &object).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    wait_for_deployment(&deployments, "shop").await?;
    let d = serde_json::to_value(deployments.get("shop").await?)?;
    let pod = &d["spec"]["template"]["spec"];
    let app = &pod["containers"][0];
    assert_eq!(app["readinessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(app["readinessProbe"]["periodSeconds"], 3);
    assert_eq!(
        app["livenessProbe"]["httpGet"]["path"], "/health",
        "added where unset"
    );
    assert_eq!(
        app["securityContext"]["readOnlyRootFilesystem"], false,
        "the user's choice stays"
    );
    assert_eq!(
        app["securityContext"]["runAsNonRoot"], true,
        "unset: the restricted default"
    );
    let tmp: Vec<&Value> = app["volumeMounts"]
        .as_array()
        .context("mounts")?
        .iter()
        .filter(|m| m["mountPath"] == "/tmp")
        .collect();
    assert_eq!(tmp.len(), 1, "the user's /tmp, not a second one");
    assert_eq!(tmp[0]["name"], "scratch");
    assert!(
        !pod["volumes"]
            .as_array()
            .context("volumes")?
            .iter()
            .any(|v| v["name"] == "tmp")
    );
    op.stop().await
}
