//! Upgrades restart no app pods: the operator of this version builds, for an app created
//! under the previous release, exactly the pod template the previous release's operator
//! built (recorded in `testdata/operator/deployment-0.1.0.json`), so the Deployment's
//! generation does not move and no pod rolls.

mod common;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use pacer_crds::PhpAppServer;
use pacer_operator::app_config::AppConfig;
use pacer_operator::resources::{self, Inputs, SidecarDefaults};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The example app as a user of the previous release applied it.
fn example() -> Result<PhpAppServer> {
    let text = std::fs::read_to_string(root().join("testdata/operator/phpappserver-0.1.0.yaml"))?;
    Ok(serde_yaml::from_str(&text)?)
}

/// What the chart of the previous release configured: the operator image's `/pacer`
/// (pacer:<appVersion>) and the chart's install command.
fn previous_sidecar() -> SidecarDefaults {
    SidecarDefaults {
        image: "pacer:0.1.0".into(),
        install_command: [
            "/pacer-operator",
            "install",
            "--from",
            "/pacer",
            "--to",
            "/pacer-install/pacer",
        ]
        .map(String::from)
        .to_vec(),
    }
}

fn owner() -> OwnerReference {
    OwnerReference {
        api_version: "pacer.dev/v1alpha1".into(),
        kind: "PhpAppServer".into(),
        name: "shop".into(),
        uid: "0b9c7c5e-5d0a-4a59-9d0e-3a7c4c1f2b10".into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The Deployment this version builds for the example with the previous chart's settings.
fn build(sidecar: &SidecarDefaults) -> Result<serde_json::Value> {
    let app = example()?;
    let config = AppConfig::from_spec(&app.spec)?;
    let settings = pacer_operator::tuning::initial(&config.policy);
    let desired = resources::desired(&Inputs {
        name: "shop",
        namespace: "shop",
        owner: owner(),
        spec: &app.spec,
        settings: &settings,
        replicas: Some(settings.replicas),
        termination_grace_seconds: config.termination_grace_seconds,
        sidecar,
        jobs_workers: None,
    })?;
    Ok(serde_json::to_value(desired.deployment)?)
}

#[test]
fn the_pod_template_of_an_existing_app_does_not_change() -> Result<()> {
    let golden = root().join("testdata/operator/deployment-0.1.0.json");
    let built = build(&previous_sidecar())?;
    if std::env::var_os("PACER_BLESS").is_some() {
        std::fs::write(&golden, serde_json::to_string_pretty(&built)? + "\n")?;
    }
    let recorded: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&golden).with_context(|| golden.display().to_string())?,
    )?;
    assert_eq!(
        built["spec"]["template"], recorded["spec"]["template"],
        "the pod template changed: every pod of every existing app would roll on upgrade"
    );
    assert_eq!(built, recorded);
    Ok(())
}

/// The chart of the previous release (0.1.0, its CRD in `crds/`, v1alpha1 only), kept as
/// it was released in `testdata/operator/chart-0.1.0` (git: ee460b1, charts/pacer-operator).
fn previous_chart() -> PathBuf {
    root().join("testdata/operator/chart-0.1.0")
}

fn helm(cp: &pacer_e2e::ControlPlane, home: &Path, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new(cp.bin_dir().join("helm"))
        .args(args)
        .arg("--kubeconfig")
        .arg(cp.kubeconfig_path())
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .context("running helm")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    anyhow::ensure!(out.status.success(), "helm {args:?} failed:\n{text}");
    Ok(text)
}

/// `helm upgrade` from the previous chart to this one, for real: the CRD (installed from
/// the old chart's `crds/`, which Helm never upgrades) is adopted by the release in the
/// one step the chart README documents, then upgraded to v1alpha2 by the template; an app
/// created under the previous release keeps its Deployment's pod template when the new
/// operator reconciles it — the generation does not move, so no pod restarts.
#[tokio::test]
async fn helm_upgrade_from_the_previous_chart_restarts_no_app_pods() -> Result<()> {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Patch, PatchParams, PostParams};
    use kube::{Api, ResourceExt};
    let Some(cp) = common::cluster().await? else {
        return Ok(());
    };
    common::init_logging();
    let client = cp.client()?;
    let work = tempfile::tempdir()?;
    let old_chart = previous_chart();
    let release_ns = cp.new_namespace("upgrade-ops").await?;
    let app_ns = cp.new_namespace("upgrade-app").await?;
    let home = work.path().join("helm");
    let old = old_chart.to_str().context("path")?;
    helm(
        cp,
        &home,
        &[
            "install",
            "pacer",
            old,
            "-n",
            &release_ns,
            "--set",
            &format!("watchNamespace={app_ns}"),
        ],
    )?;

    // An app of the previous release, and the Deployment its operator made for it.
    let apps_v1 = kube::api::Api::<kube::api::DynamicObject>::namespaced_with(
        client.clone(),
        &app_ns,
        &kube::core::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
            "pacer.dev",
            "v1alpha1",
            "PhpAppServer",
        )),
    );
    let mut object: kube::api::DynamicObject = serde_yaml::from_str(&std::fs::read_to_string(
        root().join("testdata/operator/phpappserver-0.1.0.yaml"),
    )?)?;
    object.metadata.namespace = Some(app_ns.clone());
    let created = apps_v1.create(&PostParams::default(), &object).await?;
    let mut golden: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        root().join("testdata/operator/deployment-0.1.0.json"),
    )?)?;
    golden["metadata"]["namespace"] = app_ns.clone().into();
    golden["metadata"]["ownerReferences"][0]["uid"] = created.uid().context("uid")?.into();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &app_ns);
    deployments
        .patch(
            "shop",
            &PatchParams::apply("pacer-operator").force(),
            &Patch::Apply(&golden),
        )
        .await?;
    let before = deployments.get("shop").await?;

    // The one-time step from chart 0.1.0: let the release own the CRD it did not template.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        pacer_crds::CRD_NAME,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {
            "labels": {"app.kubernetes.io/managed-by": "Helm"},
            "annotations": {"meta.helm.sh/release-name": "pacer",
                            "meta.helm.sh/release-namespace": release_ns}}})),
    )
    .await?;
    let new_chart = root().join("charts/pacer-operator");
    helm(
        cp,
        &home,
        &[
            "upgrade",
            "pacer",
            new_chart.to_str().context("path")?,
            "-n",
            &release_ns,
            "--set",
            &format!("watchNamespace={app_ns}"),
        ],
    )?;
    let crd = crds.get(pacer_crds::CRD_NAME).await?;
    let storage: Vec<&str> = crd
        .spec
        .versions
        .iter()
        .filter(|v| v.storage)
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(storage, ["v1alpha2"], "the CRD was not upgraded");

    // The new operator, configured as the new chart configures it, reconciles the app.
    let rendered = helm(cp, &home, &["get", "manifest", "pacer", "-n", &release_ns])?;
    let mut sidecar = None;
    let mut install = None;
    for doc in serde_yaml::Deserializer::from_str(&rendered) {
        let value = <serde_json::Value as serde::Deserialize>::deserialize(doc)?;
        if value["kind"] == "Deployment" {
            for env in value["spec"]["template"]["spec"]["containers"][0]["env"]
                .as_array()
                .context("env")?
            {
                if env["name"] == "PACER_SIDECAR_IMAGE" {
                    sidecar = env["value"].as_str().map(str::to_owned);
                }
                if env["name"] == "PACER_INSTALL_COMMAND" {
                    install = env["value"]
                        .as_str()
                        .map(serde_json::from_str::<Vec<String>>);
                }
            }
        }
    }
    let sidecar = sidecar.context("the chart sets no PACER_SIDECAR_IMAGE")?;
    assert_eq!(
        sidecar,
        previous_sidecar().image,
        "the injected pacer changed"
    );
    let op = common::start_operator_with_sidecar(
        client.clone(),
        &app_ns,
        "op-new",
        std::sync::Arc::new(pacer_operator::metrics_source::Fake::new()),
        SidecarDefaults {
            image: sidecar,
            install_command: install.context("the chart sets no PACER_INSTALL_COMMAND")??,
        },
    );
    let apps: Api<PhpAppServer> = Api::namespaced(client.clone(), &app_ns);
    common::wait_for(
        std::time::Duration::from_secs(30),
        "the new operator's status",
        || async {
            let status = apps.get("shop").await?.status.unwrap_or_default();
            Ok(status.selector.is_some()
                && status
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "ExternalReplicas"))
        },
    )
    .await?;
    let after = deployments.get("shop").await?;
    assert_eq!(
        serde_json::to_value(&after.spec)?,
        serde_json::to_value(&before.spec)?,
        "the Deployment's spec changed"
    );
    assert_eq!(
        after.metadata.generation, before.metadata.generation,
        "the Deployment's spec changed: its pods would roll"
    );
    assert_eq!(
        after.spec.as_ref().map(|s| &s.template),
        before.spec.as_ref().map(|s| &s.template)
    );
    op.stop().await
}
