//! The Helm chart: `helm lint` and `helm template` pass, the rendered manifests are
//! accepted by the real API server (server-side dry-run apply), and the operator works
//! when it runs with exactly the RBAC the chart grants (impersonating its ServiceAccount).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::pinned_kind;
use kube::{Api, Client, ResourceExt};
use pacer_crds::PhpAppServer;
use pacer_e2e::ControlPlane;
use pacer_operator::metrics_source::Fake;

fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/pacer-operator")
}

/// Runs the cached helm with its state in a throwaway directory.
fn helm(cp: &ControlPlane, args: &[&str]) -> Result<(bool, String)> {
    let home = tempfile::tempdir()?;
    let out = Command::new(cp.bin_dir().join("helm"))
        .args(args)
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .output()
        .context("running helm")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}

fn render(
    cp: &ControlPlane,
    release: &str,
    namespace: &str,
    extra: &[&str],
) -> Result<Vec<DynamicObject>> {
    let chart = chart_dir();
    let chart = chart.to_str().context("chart path")?;
    let mut args = vec![
        "template",
        release,
        chart,
        "--namespace",
        namespace,
        "--include-crds",
    ];
    args.extend_from_slice(extra);
    let (ok, text) = helm(cp, &args)?;
    ensure!(ok, "helm template failed:\n{text}");
    let mut objects = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_yaml::Value::deserialize(doc)?;
        if value.is_null() {
            continue;
        }
        objects.push(serde_yaml::from_value(value)?);
    }
    Ok(objects)
}

use serde::Deserialize;

async fn apply_all(client: &Client, objects: &[DynamicObject], params: &PatchParams) -> Result<()> {
    for object in objects {
        let types = object
            .types
            .as_ref()
            .context("object without apiVersion/kind")?;
        let gvk = GroupVersionKind::try_from(types)?;
        let (resource, caps) = pinned_kind(client, &gvk).await?;
        let api: Api<DynamicObject> = match (caps.scope, object.namespace()) {
            (kube::discovery::Scope::Namespaced, Some(ns)) => {
                Api::namespaced_with(client.clone(), &ns, &resource)
            }
            _ => Api::all_with(client.clone(), &resource),
        };
        api.patch(&object.name_any(), params, &Patch::Apply(object))
            .await
            .with_context(|| format!("applying {} {}", gvk.kind, object.name_any()))?;
    }
    Ok(())
}

/// Applies the rendered objects of the `wanted` kinds (the RBAC) and returns a client that
/// impersonates the operator's ServiceAccount of `release` in `namespace`.
async fn as_the_operator(
    cp: &ControlPlane,
    admin: &Client,
    objects: Vec<DynamicObject>,
    wanted: &[&str],
    namespace: &str,
    release: &str,
) -> Result<Client> {
    let rbac: Vec<DynamicObject> = objects
        .into_iter()
        .filter(|o| {
            o.types
                .as_ref()
                .is_some_and(|t| wanted.contains(&t.kind.as_str()))
        })
        .collect();
    apply_all(admin, &rbac, &PatchParams::apply("chart-test").force()).await?;
    let mut config = cp.config().clone();
    config.auth_info.impersonate = Some(format!(
        "system:serviceaccount:{namespace}:{release}-pacer-operator"
    ));
    Ok(Client::try_from(config)?)
}

#[tokio::test]
async fn helm_lint_and_template_pass_and_the_schema_guards_values() -> Result<()> {
    let Some(cp) = common::cluster().await? else {
        return Ok(());
    };
    let chart = chart_dir();
    let chart = chart.to_str().context("chart path")?;
    for extra in [
        vec![],
        vec![
            "--set",
            "watchNamespace=apps",
            "--set",
            "serviceMonitor.enabled=true",
            "--set",
            "replicaCount=2",
        ],
    ] {
        let mut args = vec!["lint", "--strict", chart];
        args.extend(extra.iter().copied());
        let (ok, text) = helm(cp, &args)?;
        ensure!(ok, "helm lint {extra:?} failed:\n{text}");
    }
    // values.schema.json refuses wrong values before anything is rendered.
    for (bad, words) in [
        ("replicaCount=0", "replicaCount"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("logging.format=xml", "format"),
        ("unknownKey=1", "unknownKey"),
    ] {
        let (ok, text) = helm(cp, &["template", "t", chart, "--set", bad])?;
        ensure!(!ok, "helm template accepted {bad}");
        ensure!(
            text.contains(words),
            "refusal of {bad} does not name it:\n{text}"
        );
    }
    // The ServiceMonitor renders only on request, and the CRD ships in crds/.
    let kinds = |objects: &[DynamicObject]| -> Vec<String> {
        objects
            .iter()
            .filter_map(|o| o.types.as_ref().map(|t| t.kind.clone()))
            .collect()
    };
    let plain = kinds(&render(cp, "t", "ops", &[])?);
    assert!(!plain.iter().any(|k| k == "ServiceMonitor"));
    assert!(plain.iter().any(|k| k == "CustomResourceDefinition"));
    assert!(plain.iter().any(|k| k == "ClusterRole"));
    let monitored = kinds(&render(
        cp,
        "t",
        "ops",
        &[
            "--set",
            "serviceMonitor.enabled=true",
            "--set",
            "watchNamespace=apps",
        ],
    )?);
    assert!(monitored.iter().any(|k| k == "ServiceMonitor"));
    assert!(
        monitored.iter().any(|k| k == "Role")
            && !monitored.iter().any(|k| k == "ClusterRoleBinding")
    );
    Ok(())
}

#[tokio::test]
async fn rendered_manifests_pass_server_side_dry_run() -> Result<()> {
    let Some(cp) = common::cluster().await? else {
        return Ok(());
    };
    let client = cp.client()?;
    let ns = cp.new_namespace("chart-dry-run").await?;
    let apps_ns = cp.new_namespace("chart-apps").await?;
    let dry_run = PatchParams::apply("chart-test").force().dry_run();
    for extra in [
        vec![],
        vec![
            "--set".to_owned(),
            format!("watchNamespace={apps_ns}"),
            "--set".into(),
            "replicaCount=2".into(),
        ],
    ] {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let objects = render(cp, "dry", &ns, &extra)?;
        ensure!(
            objects.len() >= 8,
            "only {} objects rendered",
            objects.len()
        );
        apply_all(&client, &objects, &dry_run).await?;
    }
    Ok(())
}

#[tokio::test]
async fn the_operator_works_with_exactly_the_chart_rbac() -> Result<()> {
    let Some(cp) = common::cluster().await? else {
        return Ok(());
    };
    common::init_logging();
    let admin = cp.client()?;
    common::install_crd(&admin).await?;
    let ns = cp.new_namespace("chart-rbac").await?;
    let release = "rbac";
    let objects = render(cp, release, &ns, &[])?;
    // The RBAC and the ServiceAccount for real; not the operator Deployment (no kubelet).
    let wanted = [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    ];
    let as_operator = as_the_operator(cp, &admin, objects, &wanted, &ns, release).await?;
    // Sanity: the impersonated client is really restricted.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(as_operator.clone(), &ns);
    match secrets.list(&Default::default()).await {
        Err(kube::Error::Api(s)) if s.code == 403 => {}
        other => bail!("the operator's identity may list Secrets: {other:?}"),
    }

    let fake = Arc::new(Fake::new());
    fake.set(&ns, "shop", common::busy_sample(3.9, 4.0));
    let mut lease = common::lease(&ns, "op-rbac");
    lease.name = format!("{release}-pacer-operator");
    let running = common::start_operator_with(as_operator, None, lease, fake);

    let apps: Api<PhpAppServer> = Api::namespaced(admin.clone(), &ns);
    let app = common::app(
        "shop",
        serde_json::json!({"pool": {"workers": {"initial": 4}}}),
    )?;
    apps.create(&PostParams::default(), &app).await?;
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), &ns);
    common::wait_for(
        Duration::from_secs(30),
        "the tuned ConfigMap and the status",
        || async {
            let tuned = match config_maps.get_opt("shop-pacer").await? {
                Some(cm) => cm
                    .data
                    .unwrap_or_default()
                    .get("rr.yaml")
                    .is_some_and(|t| t.contains("num_workers: 6")),
                None => false,
            };
            let status = apps.get("shop").await?.status.unwrap_or_default();
            Ok(tuned && status.current.is_some_and(|c| c.workers == 6))
        },
    )
    .await?;
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(admin.clone(), &ns);
    common::wait_for_event(&events, "the tuning Event", |e| {
        e.reason.as_deref() == Some("WorkersIncreased")
    })
    .await?;

    // A memory-limit change reaches a running pod by in-place resize (pods/resize).
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(admin.clone(), &ns);
    // The decision is recorded before it is applied: wait for the Deployment too.
    common::wait_for_deployment(&deployments, "shop").await?;
    common::pod_from_template(&admin, &ns, "shop-1").await?;
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(admin.clone(), &ns);
    pods.patch_status(
        "shop-1",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"status": {"phase": "Running", "podIP": "10.0.0.5"}})),
    )
    .await?;
    let memory = |pod: k8s_openapi::api::core::v1::Pod| -> Option<String> {
        pod.spec
            .and_then(|s| s.containers.into_iter().find(|c| c.name == "app"))
            .and_then(|c| c.resources)
            .and_then(|r| r.limits)
            .and_then(|l| l.get("memory").map(|q| q.0.clone()))
    };
    assert_eq!(memory(pods.get("shop-1").await?).as_deref(), Some("1Gi"));
    apps.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"resources": {"memory": {"limit": "512Mi"}}}})),
    )
    .await?;
    common::wait_for(
        Duration::from_secs(30),
        "the pod resized in place",
        || async { Ok(memory(pods.get("shop-1").await?).as_deref() == Some("512Mi")) },
    )
    .await?;
    assert_eq!(
        running.reconciles("error"),
        0,
        "a reconcile failed under the chart's RBAC"
    );
    // One decision, announced once, however many reconciles its own writes caused.
    let workers_up = pacer_operator::telemetry::ChangeLabels {
        setting: "workers",
        direction: "up",
    };
    assert_eq!(
        running
            .metrics
            .tuning_changes
            .get_or_create(&workers_up)
            .get(),
        1
    );
    running.stop().await
}

/// The alert rules and the dashboard ship in the chart on request: a PrometheusRule whose
/// groups are files/alerts.rules.yaml, and a ConfigMap for Grafana's dashboard sidecar
/// holding files/dashboard.json (labelled as the sidecar expects).
#[tokio::test]
async fn alert_rules_and_dashboard_render_from_their_files() -> Result<()> {
    let Some(cp) = common::cluster().await? else {
        return Ok(());
    };
    let objects = render(
        cp,
        "ops",
        "monitoring",
        &[
            "--set",
            "prometheusRule.enabled=true",
            "--set",
            "grafanaDashboard.enabled=true",
            "--set",
            "grafanaDashboard.namespace=grafana",
        ],
    )?;
    let of_kind = |kind: &str| {
        objects.iter().find(|o| {
            o.types
                .as_ref()
                .is_some_and(|t| t.kind == kind && o.name_any().starts_with("ops"))
        })
    };
    let rule = of_kind("PrometheusRule").context("no PrometheusRule")?;
    let file: serde_json::Value = serde_yaml::from_str(&std::fs::read_to_string(
        chart_dir().join("files/alerts.rules.yaml"),
    )?)?;
    assert_eq!(rule.data["spec"]["groups"], file["groups"]);
    let dashboard = objects
        .iter()
        .find(|o| o.name_any() == "ops-pacer-operator-dashboard")
        .context("no dashboard ConfigMap")?;
    assert_eq!(dashboard.namespace().as_deref(), Some("grafana"));
    assert_eq!(
        dashboard
            .labels()
            .get("grafana_dashboard")
            .map(String::as_str),
        Some("1")
    );
    let shipped: serde_json::Value = serde_json::from_str(
        dashboard.data["data"]["pacer-app.json"]
            .as_str()
            .context("no pacer-app.json")?,
    )?;
    let file: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        chart_dir().join("files/dashboard.json"),
    )?)?;
    assert_eq!(shipped, file);
    // Off by default.
    let plain = render(cp, "ops", "monitoring", &[])?;
    assert!(
        !plain
            .iter()
            .any(|o| o.types.as_ref().is_some_and(|t| t.kind == "PrometheusRule"))
    );
    Ok(())
}

/// Namespace scope: with a list of namespaces the chart grants a Role in each and nothing
/// cluster-wide, and the operator — impersonating its ServiceAccount against the real
/// RBAC — reconciles apps in those namespaces and may write nothing elsewhere.
#[tokio::test]
async fn a_namespace_list_needs_no_cluster_wide_write() -> Result<()> {
    let Some(cp) = common::cluster().await? else {
        return Ok(());
    };
    common::init_logging();
    let admin = cp.client()?;
    common::install_crd(&admin).await?;
    let release_ns = cp.new_namespace("chart-scope").await?;
    let team_a = cp.new_namespace("team-a").await?;
    let team_b = cp.new_namespace("team-b").await?;
    let other = cp.new_namespace("team-other").await?;
    let release = "scoped";
    let list = format!("watchNamespaces={{{team_a},{team_b}}}");
    let objects = render(cp, release, &release_ns, &["--set", &list])?;
    let kinds: Vec<(String, Option<String>)> = objects
        .iter()
        .filter_map(|o| o.types.as_ref().map(|t| (t.kind.clone(), o.namespace())))
        .collect();
    // Cluster-wide: only the aggregated roles for app teams (bound to nobody) and the CRD.
    for object in &objects {
        let kind = object
            .types
            .as_ref()
            .map(|t| t.kind.as_str())
            .unwrap_or_default();
        if kind == "ClusterRoleBinding" {
            bail!(
                "a ClusterRoleBinding with a namespace list: {}",
                object.name_any()
            );
        }
        if kind == "ClusterRole" {
            ensure!(
                object.name_any().ends_with("-edit") || object.name_any().ends_with("-view"),
                "an operator ClusterRole with a namespace list: {}",
                object.name_any()
            );
        }
    }
    for ns in [&team_a, &team_b] {
        ensure!(
            kinds.contains(&("Role".into(), Some(ns.clone())))
                && kinds.contains(&("RoleBinding".into(), Some(ns.clone()))),
            "no Role/RoleBinding in {ns}: {kinds:?}"
        );
    }
    let wanted = ["ServiceAccount", "ClusterRole", "Role", "RoleBinding"];
    let as_operator = as_the_operator(cp, &admin, objects, &wanted, &release_ns, release).await?;
    // No write outside the watched namespaces, and no cluster-wide list.
    let deployment: k8s_openapi::api::apps::v1::Deployment =
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "probe"},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}},
                                  "spec": {"containers": [{"name": "c", "image": "i"}]}}}
        }))?;
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let outside: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(as_operator.clone(), &other);
    match outside.create(&dry, &deployment).await {
        Err(kube::Error::Api(s)) if s.code == 403 => {}
        other => bail!("the operator may write Deployments in an unwatched namespace: {other:?}"),
    }
    let everywhere: Api<PhpAppServer> = Api::all(as_operator.clone());
    match everywhere.list(&Default::default()).await {
        Err(kube::Error::Api(s)) if s.code == 403 => {}
        other => bail!("the operator may list PhpAppServers cluster-wide: {other:?}"),
    }
    let inside: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(as_operator.clone(), &team_a);
    inside
        .create(&dry, &deployment)
        .await
        .context("a write in a watched namespace")?;

    // The operator itself, with exactly these rights, reconciles in both namespaces.
    let mut lease = common::lease(&release_ns, "op-scoped");
    lease.name = format!("{release}-pacer-operator");
    let running = common::start_operator_in(
        as_operator,
        &[&team_a, &team_b],
        lease,
        Arc::new(Fake::new()),
    );
    for ns in [&team_a, &team_b] {
        let apps: Api<PhpAppServer> = Api::namespaced(admin.clone(), ns);
        let app: PhpAppServer = serde_json::from_value(serde_json::json!({
            "apiVersion": "pacer.dev/v1alpha2", "kind": "PhpAppServer",
            "metadata": {"name": "shop"},
            "spec": {"image": "shop:1", "command": ["php", "worker.php"]}
        }))?;
        apps.create(&PostParams::default(), &app).await?;
    }
    for ns in [&team_a, &team_b] {
        let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), ns);
        common::wait_for(Duration::from_secs(30), "the ConfigMap", || async {
            Ok(config_maps.get_opt("shop-pacer").await?.is_some())
        })
        .await?;
    }
    assert_eq!(
        running.reconciles("error"),
        0,
        "a reconcile failed under the Roles"
    );
    running.stop().await
}

/// The aggregated roles give app teams what the built-in `edit` and `view` should: `edit`
/// manages and scales PhpAppServers, `view` reads them only. (The aggregation into the
/// built-in roles is done by kube-controller-manager, which this control plane does not
/// run; the labels it follows are checked, and each role is bound directly.)
#[tokio::test]
async fn the_aggregated_roles_let_app_teams_edit_and_view() -> Result<()> {
    let Some(cp) = common::cluster().await? else {
        return Ok(());
    };
    let admin = cp.client()?;
    common::install_crd(&admin).await?;
    let ns = cp.new_namespace("chart-teams").await?;
    let objects = render(cp, "teams", &ns, &[])?;
    let roles: Vec<DynamicObject> = objects
        .into_iter()
        .filter(|o| {
            o.types.as_ref().is_some_and(|t| t.kind == "ClusterRole")
                && (o.name_any().ends_with("-edit") || o.name_any().ends_with("-view"))
        })
        .collect();
    ensure!(roles.len() == 2, "{} aggregated roles", roles.len());
    let labels = |suffix: &str| -> Result<std::collections::BTreeMap<String, String>> {
        Ok(roles
            .iter()
            .find(|r| r.name_any().ends_with(suffix))
            .context("role")?
            .labels()
            .clone())
    };
    ensure!(
        labels("-edit")?
            .get("rbac.authorization.k8s.io/aggregate-to-edit")
            .map(String::as_str)
            == Some("true")
    );
    ensure!(
        labels("-edit")?
            .get("rbac.authorization.k8s.io/aggregate-to-admin")
            .map(String::as_str)
            == Some("true")
    );
    ensure!(
        labels("-view")?
            .get("rbac.authorization.k8s.io/aggregate-to-view")
            .map(String::as_str)
            == Some("true")
    );
    apply_all(&admin, &roles, &PatchParams::apply("chart-test").force()).await?;
    for (user, role) in [
        ("dev", "teams-pacer-operator-edit"),
        ("auditor", "teams-pacer-operator-view"),
    ] {
        let binding: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": user, "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]
        }))?;
        apply_all(
            &admin,
            &[binding],
            &PatchParams::apply("chart-test").force(),
        )
        .await?;
    }
    let as_user = |user: &str| -> Result<Client> {
        let mut config = cp.config().clone();
        config.auth_info.impersonate = Some(user.to_owned());
        Ok(Client::try_from(config)?)
    };
    let app: PhpAppServer = serde_json::from_value(serde_json::json!({
        "apiVersion": "pacer.dev/v1alpha2", "kind": "PhpAppServer",
        "metadata": {"name": "shop"},
        "spec": {"image": "shop:1", "command": ["php", "worker.php"], "replicas": {"count": 2}}
    }))?;
    let dev: Api<PhpAppServer> = Api::namespaced(as_user("dev")?, &ns);
    dev.create(&PostParams::default(), &app)
        .await
        .context("edit may create")?;
    dev.patch_scale(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"replicas": 4}})),
    )
    .await
    .context("edit may scale")?;
    let auditor: Api<PhpAppServer> = Api::namespaced(as_user("auditor")?, &ns);
    ensure!(
        auditor.get("shop").await?.spec.replicas.count == Some(4),
        "view may read"
    );
    match auditor.delete("shop", &Default::default()).await {
        Err(kube::Error::Api(s)) if s.code == 403 => {}
        other => bail!("view may delete: {other:?}"),
    }
    Ok(())
}

/// The CRD is a template (so `helm upgrade` upgrades it): rendered with `crds.install`
/// (default), kept on uninstall with `crds.keep` (default), left out with
/// `crds.install=false`; the injected pacer image is the chart's appVersion whatever tag
/// the operator image runs.
#[tokio::test]
async fn the_crd_is_a_template_and_pacer_follows_the_app_version() -> Result<()> {
    let Some(cp) = common::cluster().await? else {
        return Ok(());
    };
    let find = |objects: &[DynamicObject], kind: &str| {
        objects
            .iter()
            .find(|o| o.types.as_ref().is_some_and(|t| t.kind == kind))
            .cloned()
    };
    let plain = render(cp, "c", "ops", &[])?;
    let crd = find(&plain, "CustomResourceDefinition").context("no CRD")?;
    assert_eq!(
        crd.annotations()
            .get("helm.sh/resource-policy")
            .map(String::as_str),
        Some("keep")
    );
    let versions = crd.data["spec"]["versions"]
        .as_array()
        .context("versions")?;
    assert_eq!(versions.len(), 2);
    let unkept = render(cp, "c", "ops", &["--set", "crds.keep=false"])?;
    assert!(
        find(&unkept, "CustomResourceDefinition")
            .context("no CRD")?
            .annotations()
            .get("helm.sh/resource-policy")
            .is_none()
    );
    let without = render(cp, "c", "ops", &["--set", "crds.install=false"])?;
    assert!(find(&without, "CustomResourceDefinition").is_none());

    let chart: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart_dir().join("Chart.yaml"))?)?;
    let app_version = chart["appVersion"].as_str().context("appVersion")?;
    let operator = render(cp, "c", "ops", &["--set", "image.tag=nightly-1234"])?;
    let deployment = find(&operator, "Deployment").context("no Deployment")?;
    let container = &deployment.data["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "pacer:nightly-1234");
    let env = container["env"].as_array().context("env")?;
    let sidecar = env
        .iter()
        .find(|e| e["name"] == "PACER_SIDECAR_IMAGE")
        .context("no PACER_SIDECAR_IMAGE")?;
    assert_eq!(sidecar["value"], format!("pacer:{app_version}"));
    Ok(())
}
