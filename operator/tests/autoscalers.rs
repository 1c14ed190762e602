//! Autoscalers that cooperate, against the real API server: the `/scale` subresource, an
//! HPA (autoscaling/v2) or a KEDA ScaledObject targeting the app or its Deployment — the
//! operator then never writes the pods' count (and hands the field over without a cliff),
//! with an ExternalReplicas condition, while it keeps tuning workers per pod; `Off` and a
//! pause freeze the settings in force.

mod common;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use pacer_crds::PhpAppServer;
use pacer_operator::metrics_source::Fake;
use serde_json::json;

use common::{
    Shop, WAIT, apply_crd, busy_sample, find_condition, patch_spec, setup, start_operator,
    wait_for, wait_for_condition,
};

async fn workers(config_maps: &Api<ConfigMap>) -> Result<Option<u64>> {
    common::workers_in_config(config_maps, "shop-pacer").await
}

fn app(spec: serde_json::Value) -> Result<PhpAppServer> {
    common::app("shop", spec)
}

/// Waits until ExternalReplicas=True names `reason` (the kind of autoscaler).
async fn replicas_owned_by(apps: &Api<PhpAppServer>, reason: &str) -> Result<()> {
    wait_for_condition(apps, "shop", "ExternalReplicas", "True", reason).await
}

async fn replicas(deployments: &Api<Deployment>) -> Result<Option<i32>> {
    Ok(deployments
        .get_opt("shop")
        .await?
        .and_then(|d| d.spec)
        .and_then(|s| s.replicas))
}

fn hpa(kind: &str, api_version: &str) -> Result<HorizontalPodAutoscaler> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "shop"},
        "spec": {
            "scaleTargetRef": {"apiVersion": api_version, "kind": kind, "name": "shop"},
            "minReplicas": 2, "maxReplicas": 8,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 70}}}]
        }
    }))?)
}

#[tokio::test]
async fn an_hpa_on_the_app_scales_it_through_scale_while_workers_are_tuned() -> Result<()> {
    let spec = json!({"replicas": {"min": 1, "max": 4, "count": 2},
                    "pool": {"workers": {"initial": 4}}, "tuning": {"interval": "5s"}});
    let Some(shop) = Shop::start("hpa-app", Some(busy_sample(3.9, 4.0)), spec).await? else {
        return Ok(());
    };
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(shop.client.clone(), &shop.ns);
    hpas.create(
        &PostParams::default(),
        &hpa("PhpAppServer", "pacer.dev/v1alpha2")?,
    )
    .await?;
    replicas_owned_by(&shop.apps, "HorizontalPodAutoscaler").await?;
    let deployments: Api<Deployment> = Api::namespaced(shop.client.clone(), &shop.ns);
    wait_for(WAIT, "2 replicas from spec.replicas.count", || async {
        Ok(replicas(&deployments).await? == Some(2))
    })
    .await?;

    // The HPA's read and write go through /scale, as kubectl scale's do.
    let scale = shop.apps.get_scale("shop").await?;
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(2));
    wait_for(WAIT, "the scale's selector", || async {
        let scale = shop.apps.get_scale("shop").await?;
        Ok(scale.status.and_then(|s| s.selector).as_deref() == Some("pacer.dev/app=shop"))
    })
    .await?;
    shop.apps
        .patch_scale(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await?;
    wait_for(WAIT, "5 replicas, as the autoscaler said", || async {
        Ok(replicas(&deployments).await? == Some(5))
    })
    .await?;
    // Workers per pod are still tuned: 3.9 of 4 busy → 6.
    let config_maps: Api<ConfigMap> = Api::namespaced(shop.client.clone(), &shop.ns);
    wait_for(WAIT, "6 workers per pod", || async {
        Ok(workers(&config_maps).await? == Some(6))
    })
    .await?;
    assert_eq!(
        replicas(&deployments).await?,
        Some(5),
        "the tuner left the pods alone"
    );
    assert_eq!(shop.op.reconciles("error"), 0);
    shop.op.stop().await
}

#[tokio::test]
async fn an_hpa_on_the_deployment_gets_its_replicas_without_a_cliff() -> Result<()> {
    let spec = json!({"replicas": {"min": 3, "max": 6}, "tuning": {"mode": "Off"}});
    let Some(shop) = Shop::start("hpa-deploy", None, spec).await? else {
        return Ok(());
    };
    let deployments: Api<Deployment> = Api::namespaced(shop.client.clone(), &shop.ns);
    wait_for(WAIT, "3 replicas", || async {
        Ok(replicas(&deployments).await? == Some(3))
    })
    .await?;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(shop.client.clone(), &shop.ns);
    hpas.create(&PostParams::default(), &hpa("Deployment", "apps/v1")?)
        .await?;
    replicas_owned_by(&shop.apps, "HorizontalPodAutoscaler").await?;
    // The operator no longer owns spec.replicas, and the count did not fall to the
    // default of 1 when it let go.
    let owns_replicas = |d: &Deployment| {
        d.metadata.managed_fields.iter().flatten().any(|m| {
            m.manager.as_deref() == Some("pacer-operator")
                && m.fields_v1
                    .as_ref()
                    .is_some_and(|f| f.0["f:spec"].get("f:replicas").is_some())
        })
    };
    wait_for(WAIT, "the operator to let go of spec.replicas", || async {
        Ok(!owns_replicas(&deployments.get("shop").await?))
    })
    .await?;
    assert_eq!(replicas(&deployments).await?, Some(3), "a capacity cliff");
    // The HPA scales the Deployment; a reconcile (here: a spec change) keeps its count.
    deployments
        .patch_scale(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 7}})),
        )
        .await?;
    patch_spec(
        &shop.apps,
        "shop",
        json!({"pool": {"workers": {"max": 12}}}),
    )
    .await?;
    let config_maps: Api<ConfigMap> = Api::namespaced(shop.client.clone(), &shop.ns);
    wait_for(WAIT, "the spec change applied", || async {
        let generation = shop.apps.get("shop").await?.metadata.generation;
        let observed = shop
            .apps
            .get("shop")
            .await?
            .status
            .and_then(|s| s.observed_generation);
        Ok(generation == observed && workers(&config_maps).await?.is_some())
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        replicas(&deployments).await?,
        Some(7),
        "the operator overwrote the HPA"
    );
    assert_eq!(shop.op.reconciles("error"), 0);
    shop.op.stop().await
}

/// KEDA's ScaledObject CRD, written from its published shape with only the fields the
/// operator reads (the scale target); everything else is kept as given.
fn keda_crd() -> Result<CustomResourceDefinition> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "scaledobjects.keda.sh"},
        "spec": {
            "group": "keda.sh", "scope": "Namespaced",
            "names": {"kind": "ScaledObject", "plural": "scaledobjects", "singular": "scaledobject", "shortNames": ["so"]},
            "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "required": ["scaleTargetRef", "triggers"],
                        "x-kubernetes-preserve-unknown-fields": true,
                        "properties": {
                            "scaleTargetRef": {"type": "object", "required": ["name"], "properties": {
                                "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                                "name": {"type": "string"}, "envSourceContainerName": {"type": "string"}}},
                            "minReplicaCount": {"type": "integer", "format": "int32"},
                            "maxReplicaCount": {"type": "integer", "format": "int32"},
                            "triggers": {"type": "array", "items": {"type": "object",
                                "x-kubernetes-preserve-unknown-fields": true}}}},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}]
        }
    }))?)
}

#[tokio::test]
async fn a_keda_scaled_object_on_the_app_is_seen() -> Result<()> {
    let Some((client, ns)) = setup("keda").await? else {
        return Ok(());
    };
    apply_crd(&client, keda_crd()?).await?;
    let op = start_operator(client.clone(), &ns, "op-a", Arc::new(Fake::new()));
    let apps: Api<PhpAppServer> = Api::namespaced(client.clone(), &ns);
    apps.create(
        &PostParams::default(),
        &app(json!({"replicas": {"min": 1, "max": 4, "count": 3}}))?,
    )
    .await?;
    let gvk = GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject");
    let scaled: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &ApiResource::from_gvk(&gvk));
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": "shop-queue"},
        "spec": {"scaleTargetRef": {"apiVersion": "pacer.dev/v1alpha2", "kind": "PhpAppServer", "name": "shop"},
                 "minReplicaCount": 1, "maxReplicaCount": 20,
                 "triggers": [{"type": "prometheus", "metadata": {"serverAddress": "http://prometheus:9090",
                    "query": "sum(pacer_queue_depth)", "threshold": "10"}}]}
    }))?;
    scaled.create(&PostParams::default(), &object).await?;
    // No watch on ScaledObjects (KEDA makes an HPA for each); the next reconcile sees it.
    apps.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"touch": "1"}}, "spec": {"pool": {"workers": {"max": 15}}}})),
    )
    .await?;
    replicas_owned_by(&apps, "ScaledObject").await?;
    let message = find_condition(&apps, "shop", "ExternalReplicas")
        .await?
        .context("no condition")?
        .message;
    assert!(message.contains("shop-queue"), "{message}");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    assert_eq!(replicas(&deployments).await?, Some(3));
    op.stop().await
}

#[tokio::test]
async fn off_and_a_pause_freeze_the_settings_in_force() -> Result<()> {
    let spec = json!({"pool": {"workers": {"initial": 4}}, "tuning": {"interval": "5s"}});
    let Some(shop) = Shop::start("freeze", Some(busy_sample(3.9, 4.0)), spec).await? else {
        return Ok(());
    };
    let config_maps: Api<ConfigMap> = Api::namespaced(shop.client.clone(), &shop.ns);
    wait_for(WAIT, "tuned to 6 workers", || async {
        Ok(workers(&config_maps).await? == Some(6))
    })
    .await?;
    // Off: no cliff back to the initial 4.
    patch_spec(&shop.apps, "shop", json!({"tuning": {"mode": "Off"}})).await?;
    wait_for_condition(&shop.apps, "shop", "Tuned", "False", "TuningOff").await?;
    assert_eq!(workers(&config_maps).await?, Some(6), "Off reset the pool");

    // Paused: a spec change is not applied while paused, and is once unpaused.
    patch_spec(&shop.apps, "shop", json!({"paused": true})).await?;
    wait_for_condition(&shop.apps, "shop", "Tuned", "False", "Paused").await?;
    patch_spec(&shop.apps, "shop", json!({"pool": {"workers": {"max": 5}}})).await?;
    wait_for(WAIT, "the paused change observed", || async {
        let a = shop.apps.get("shop").await?;
        Ok(a.status.and_then(|s| s.observed_generation) == a.metadata.generation)
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        workers(&config_maps).await?,
        Some(6),
        "written while paused"
    );
    patch_spec(&shop.apps, "shop", json!({"paused": false})).await?;
    wait_for(WAIT, "the bound applied after the pause", || async {
        Ok(workers(&config_maps).await? == Some(5))
    })
    .await?;
    shop.op.stop().await
}
