//! The operator against a real API server: owned objects, status and conditions, tuning
//! from a fake metrics source, deletion, leader election, and no reconcile storm.

mod common;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use pacer_crds::PhpAppServer;
use pacer_operator::metrics_source::Fake;
use pacer_operator::sample::{AppSample, PodSample};
use serde_json::json;

use common::{
    Shop, WAIT, app, busy_sample, condition, find_condition, patch_spec, pod_from_template,
    report_ready, rr_yaml, setup, start_operator, template_of, wait_for, wait_for_condition,
    wait_for_deployment, wait_for_event, workers_in_config,
};

#[tokio::test]
async fn a_valid_object_produces_the_owned_objects_with_status() -> Result<()> {
    let spec = json!({"replicas": {"min": 2, "max": 4}, "pool": {"workers": {"min": 2, "max": 8, "initial": 3}}});
    let Some(shop) = Shop::start("owned", None, spec).await? else {
        return Ok(());
    };
    let uid = shop.created.uid().context("no uid")?;

    let deployments: Api<Deployment> = Api::namespaced(shop.client.clone(), &shop.ns);
    let config_maps: Api<ConfigMap> = Api::namespaced(shop.client.clone(), &shop.ns);
    wait_for(WAIT, "the owned objects", || async {
        Ok(deployments.get_opt("shop").await?.is_some()
            && config_maps.get_opt("shop-pacer").await?.is_some()
            && Api::<Service>::namespaced(shop.client.clone(), &shop.ns)
                .get_opt("shop")
                .await?
                .is_some()
            && Api::<PodDisruptionBudget>::namespaced(shop.client.clone(), &shop.ns)
                .get_opt("shop")
                .await?
                .is_some())
    })
    .await?;

    let d = deployments.get("shop").await?;
    let owner = &d.owner_references()[0];
    assert_eq!(
        (owner.uid.as_str(), owner.controller),
        (uid.as_str(), Some(true))
    );
    assert_eq!(owner.block_owner_deletion, Some(true));
    let managers: Vec<String> = d
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(managers, ["pacer-operator"], "one field manager");
    let spec = d.spec.context("no spec")?;
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.context("no pod spec")?;
    let app_container = &pod.containers[0];
    assert_eq!(
        app_container.command.as_deref().unwrap_or_default(),
        [
            "/pacer/pacer",
            "serve",
            "-c",
            "/etc/pacer/rr.yaml",
            "--watch-config"
        ]
    );
    assert_eq!(
        pod.init_containers.unwrap_or_default()[0].image.as_deref(),
        Some("pacer:test")
    );
    assert_eq!(pod.termination_grace_period_seconds, Some(40));
    assert_eq!(
        app_container
            .security_context
            .as_ref()
            .and_then(|s| s.read_only_root_filesystem),
        Some(true)
    );
    assert_eq!(
        app_container
            .readiness_probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.path.clone())
            .as_deref(),
        Some("/ready")
    );

    let rr = rr_yaml(&config_maps.get("shop-pacer").await?)?;
    assert_eq!(rr["version"], "3");
    assert_eq!(rr["http"]["pool"]["num_workers"], 3);
    assert_eq!(rr["http"]["pool"]["max_jobs"], 500);
    assert_eq!(rr["status"]["address"], "0.0.0.0:2114");

    // Status: the generation is observed, the Deployment has no ready pods (no
    // controller-manager runs here), and the fake has no metrics yet.
    wait_for(WAIT, "the status", || async {
        let a = shop.apps.get("shop").await?;
        let s = a.status.unwrap_or_default();
        Ok(s.observed_generation == a.metadata.generation
            && s.current.as_ref().map(|c| c.workers) == Some(3)
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Tuned" && c.reason == "CollectingMetrics"))
    })
    .await?;
    // The Deployment exists but has no pods (no controller-manager here).
    wait_for_condition(&shop.apps, "shop", "Ready", "False", "PodsNotReady").await?;

    // Play the Deployment controller: report both pods ready. The operator watches its
    // Deployments, so Ready turns True without any change to the PhpAppServer.
    report_ready(&deployments, "shop", 2).await?;
    wait_for_condition(&shop.apps, "shop", "Ready", "True", "AllPodsReady").await?;
    let status = shop.apps.get("shop").await?.status.unwrap_or_default();
    assert_eq!((status.replicas, status.ready_replicas), (Some(2), Some(2)));
    let rollout = status.rollout.context("no rollout status")?;
    assert_eq!(
        (rollout.desired, rollout.updated, rollout.complete),
        (2, 2, true)
    );
    assert!(status.current_since.is_some());

    // A spec change is picked up: the workers bounds shrink under the current value.
    let bounds = json!({"pool": {"workers": {"min": 1, "max": 2, "initial": 2}}});
    patch_spec(&shop.apps, "shop", bounds).await?;
    wait_for(WAIT, "the new bounds in rr.yaml", || async {
        Ok(workers_in_config(&config_maps, "shop-pacer").await? == Some(2))
    })
    .await?;
    shop.op.stop().await
}

#[tokio::test]
async fn tuning_from_fake_metrics_changes_the_config_map_and_emits_an_event() -> Result<()> {
    // 3.9 of 4 workers busy: 3.9 / 0.7 → 6 workers.
    let spec = json!({"pool": {"workers": {"initial": 4}}});
    let Some(shop) = Shop::start("tuning", Some(busy_sample(3.9, 4.0)), spec).await? else {
        return Ok(());
    };

    let config_maps: Api<ConfigMap> = Api::namespaced(shop.client.clone(), &shop.ns);
    wait_for(WAIT, "6 workers in rr.yaml", || async {
        Ok(workers_in_config(&config_maps, "shop-pacer").await? == Some(6))
    })
    .await?;

    let events: Api<Event> = Api::namespaced(shop.client.clone(), &shop.ns);
    wait_for_event(&events, "a WorkersIncreased event", |e| {
        e.reason.as_deref() == Some("WorkersIncreased")
            && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("shop")
            && e.note
                .as_deref()
                .is_some_and(|n| n.contains("workers 4 → 6") && n.contains("70 %"))
    })
    .await?;

    // Events go out before the status is written, in the same reconcile.
    wait_for(WAIT, "the status", || async {
        let s = shop.apps.get("shop").await?.status.unwrap_or_default();
        Ok(s.current.is_some_and(|c| c.workers == 6))
    })
    .await?;
    let status = shop.apps.get("shop").await?.status.unwrap_or_default();
    assert_eq!(status.current.as_ref().map(|c| c.workers), Some(6));
    assert_eq!(status.recommendation.as_ref().map(|r| r.workers), Some(6));
    assert_eq!(status.observed.as_ref().map(|o| o.busy_percent), Some(98));
    assert!(status.last_tune_time.is_some());
    assert!(status.tuning_state.is_some_and(|s| !s.history.is_empty()));
    assert_eq!(
        condition(&shop.apps, "shop", "Tuned").await?,
        Some(("True".into(), "Tuned".into()))
    );
    let target = &shop.fake.calls()[0];
    assert_eq!(
        (target.namespace.as_str(), target.app.as_str()),
        (shop.ns.as_str(), "shop")
    );
    assert_eq!(
        shop.op
            .metrics
            .tuning_changes
            .get_or_create(&pacer_operator::telemetry::ChangeLabels {
                setting: "workers",
                direction: "up"
            })
            .get(),
        1
    );
    shop.op.stop().await
}

/// A tuning decision is recorded (status) and announced (Event) before the ConfigMap
/// changes, so an operator killed right after the apply leaves a successor that completes
/// the same decision instead of undoing it; and every change is its own Event, with its
/// own note (kube's Recorder would fold a second WorkersIncreased into the first one's).
#[tokio::test]
async fn decisions_are_recorded_and_announced_before_they_are_applied() -> Result<()> {
    use futures_util::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    // 3.9 of 4 busy → 6 workers; then 5.9 of 6 busy → 9 workers.
    let spec = json!({"pool": {"workers": {"initial": 4}}, "tuning": {"interval": "5s"}});
    let Some(shop) = Shop::start("write-ahead", Some(busy_sample(3.9, 4.0)), spec).await? else {
        return Ok(());
    };
    let events: Api<Event> = Api::namespaced(shop.client.clone(), &shop.ns);
    let notes = || async {
        let list = events.list(&Default::default()).await?;
        Ok::<Vec<String>, anyhow::Error>(
            list.items
                .iter()
                .filter(|e| e.reason.as_deref() == Some("WorkersIncreased"))
                .map(|e| {
                    let count = e.series.as_ref().map_or(1, |s| s.count);
                    format!("{} x{count}", e.note.clone().unwrap_or_default())
                })
                .collect(),
        )
    };
    let config_maps: Api<ConfigMap> = Api::namespaced(shop.client.clone(), &shop.ns);
    let mut stream = watcher(
        config_maps,
        watcher::Config::default().fields("metadata.name=shop-pacer"),
    )
    .applied_objects()
    .boxed();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < 2 {
        let cm = tokio::time::timeout_at(deadline, stream.next())
            .await
            .context("no ConfigMap change within 60 s")?
            .context("the watch ended")??;
        let workers = rr_yaml(&cm)?["http"]["pool"]["num_workers"]
            .as_u64()
            .context("num_workers")?;
        if workers == 4 || seen.contains(&workers) {
            continue;
        }
        // The moment the pods could see it, the status and the Event already say it.
        let status = shop.apps.get("shop").await?.status.unwrap_or_default();
        assert_eq!(
            status.current.as_ref().map(|c| c.workers),
            Some(i32::try_from(workers)?),
            "the ConfigMap changed before the status recorded the decision"
        );
        let from = if seen.is_empty() { 4 } else { 6 };
        let said = notes().await?;
        assert!(
            said.iter()
                .any(|n| n.starts_with(&format!("workers {from} → {workers}:"))
                    && n.ends_with(" x1")),
            "not announced (once) before it was applied: {said:?}"
        );
        seen.push(workers);
        shop.fake.set(&shop.ns, "shop", busy_sample(5.9, 6.0));
    }
    assert_eq!(seen, [6, 9]);
    assert_eq!(notes().await?.len(), 2, "one Event per change");
    shop.op.stop().await
}

#[tokio::test]
async fn recommend_mode_writes_only_the_status() -> Result<()> {
    let spec = json!({"pool": {"workers": {"initial": 4}}, "tuning": {"mode": "Recommend"}});
    let Some(shop) = Shop::start("recommend", Some(busy_sample(3.9, 4.0)), spec).await? else {
        return Ok(());
    };
    wait_for(WAIT, "a recommendation", || async {
        let s = shop.apps.get("shop").await?.status.unwrap_or_default();
        Ok(s.recommendation.map(|r| r.workers) == Some(6))
    })
    .await?;
    let config_maps: Api<ConfigMap> = Api::namespaced(shop.client.clone(), &shop.ns);
    assert_eq!(
        workers_in_config(&config_maps, "shop-pacer").await?,
        Some(4)
    );
    assert_eq!(
        condition(&shop.apps, "shop", "Tuned").await?,
        Some(("False".into(), "RecommendOnly".into()))
    );
    let events: Api<Event> = Api::namespaced(shop.client, &shop.ns);
    assert!(
        !events
            .list(&Default::default())
            .await?
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("WorkersIncreased")),
        "nothing was applied, so nothing is announced"
    );
    shop.op.stop().await
}

#[tokio::test]
async fn metrics_failure_marks_the_object_degraded() -> Result<()> {
    let Some((client, ns)) = setup("degraded").await? else {
        return Ok(());
    };
    let fake = Arc::new(Fake::new());
    fake.fail(&ns, "shop", "prometheus unreachable");
    let op = start_operator(client.clone(), &ns, "op-a", fake);
    let apps: Api<PhpAppServer> = Api::namespaced(client.clone(), &ns);
    apps.create(&PostParams::default(), &app("shop", json!({}))?)
        .await?;
    wait_for_condition(&apps, "shop", "Degraded", "True", "MetricsUnavailable").await?;
    let events: Api<Event> = Api::namespaced(client, &ns);
    wait_for_event(&events, "a Warning event", |e| {
        e.type_.as_deref() == Some("Warning")
            && e.note
                .as_deref()
                .is_some_and(|n| n.contains("prometheus unreachable"))
    })
    .await?;
    op.stop().await
}

#[tokio::test]
async fn own_status_writes_cause_no_reconcile_storm() -> Result<()> {
    let spec = json!({"tuning": {"interval": "1m"}});
    let Some(shop) = Shop::start("storm", Some(busy_sample(1.0, 4.0)), spec).await? else {
        return Ok(());
    };
    wait_for(WAIT, "the first tuning round", || async {
        Ok(shop
            .apps
            .get("shop")
            .await?
            .status
            .unwrap_or_default()
            .last_tune_time
            .is_some())
    })
    .await?;
    // Let the echoes of the first round's writes (owned objects, status) settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = shop.op.reconciles("ok");
    let version = shop.apps.get("shop").await?.resource_version();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        shop.op.reconciles("ok"),
        before,
        "reconciles ran with nothing changed"
    );
    assert_eq!(
        shop.apps.get("shop").await?.resource_version(),
        version,
        "the object was rewritten"
    );
    assert_eq!(shop.op.reconciles("error"), 0);
    shop.op.stop().await
}

#[tokio::test]
async fn deleting_the_owner_is_handled() -> Result<()> {
    let Some(Shop {
        client,
        ns,
        op,
        apps,
        created: first,
        ..
    }) = Shop::start("delete", None, json!({})).await?
    else {
        return Ok(());
    };
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    wait_for_deployment(&deployments, "shop").await?;

    apps.delete("shop", &DeleteParams::default()).await?;
    wait_for(WAIT, "the object to be gone", || async {
        Ok(apps.get_opt("shop").await?.is_none())
    })
    .await?;
    // No garbage collector runs in this test control plane; in a cluster it removes the
    // owned objects through their owner reference, which points at the deleted object.
    let d = deployments.get("shop").await?;
    assert_eq!(d.owner_references()[0].uid, first.uid().context("no uid")?);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        op.reconciles("error"),
        0,
        "the deletion caused failing reconciles"
    );

    // The same name again is a new owner: the operator takes the objects over.
    let second = apps
        .create(&PostParams::default(), &app("shop", json!({}))?)
        .await?;
    let uid = second.uid().context("no uid")?;
    wait_for(WAIT, "the new owner reference", || async {
        let d = deployments.get("shop").await?;
        Ok(d.owner_references().iter().any(|o| o.uid == uid))
    })
    .await?;
    op.stop().await
}

#[tokio::test]
async fn a_second_instance_waits_while_the_first_holds_the_lease() -> Result<()> {
    let Some((client, ns)) = setup("leader").await? else {
        return Ok(());
    };
    let fake_a = Arc::new(Fake::new());
    let fake_b = Arc::new(Fake::new());
    let a = start_operator(client.clone(), &ns, "op-a", fake_a.clone());
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    wait_for(WAIT, "op-a to hold the lease", || async {
        Ok(leases
            .get_opt("pacer-operator")
            .await?
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity)
            == Some("op-a".into()))
    })
    .await?;
    let b = start_operator(client.clone(), &ns, "op-b", fake_b.clone());

    let apps: Api<PhpAppServer> = Api::namespaced(client.clone(), &ns);
    apps.create(
        &PostParams::default(),
        &app("shop", json!({"tuning": {"interval": "5s"}}))?,
    )
    .await?;
    wait_for(WAIT, "op-a to tune", || async {
        Ok(!fake_a.calls().is_empty())
    })
    .await?;
    // Several lease periods later, op-b has still done nothing.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(fake_b.calls().is_empty(), "op-b acted without the lease");
    assert_eq!(b.reconciles("ok") + b.reconciles("error"), 0);
    assert_eq!(b.metrics.leader.get(), 0);
    assert_eq!(a.metrics.leader.get(), 1);

    // op-a stops and releases the lease: op-b takes over and carries on.
    a.stop().await?;
    wait_for(WAIT, "op-b to take the lease and tune", || async {
        let holder = leases
            .get("pacer-operator")
            .await?
            .spec
            .and_then(|s| s.holder_identity);
        Ok(holder == Some("op-b".into()) && !fake_b.calls().is_empty())
    })
    .await?;
    let lease = leases
        .get("pacer-operator")
        .await?
        .spec
        .context("no spec")?;
    assert_eq!(lease.lease_transitions, Some(1));
    b.stop().await
}

/// The memory model of the pods' peaks lives in the status: an operator that starts on an
/// app finds what an earlier process learned (here: written there as that process would
/// have), lowers the limit from it, resizes the pod in place without rolling it, and keeps
/// learning on top of it.
#[tokio::test]
async fn memory_limits_come_from_the_persisted_model_and_resize_in_place() -> Result<()> {
    let Some((client, ns)) = setup("resize").await? else {
        return Ok(());
    };
    const MI: u64 = 1024 * 1024;
    let fake = Arc::new(Fake::new());
    fake.set(
        &ns,
        "shop",
        AppSample {
            window: Duration::from_secs(60),
            pods: vec![PodSample {
                pod: "shop-abc-1".into(),
                live_workers: 2.0,
                busy_workers: 0.5,
                jobs_per_second: 5.0,
                mean_job_seconds: Some(0.1),
                worker_memory: vec![40 * MI, 40 * MI],
                server_memory: Some(20 * MI),
                pod_memory_peak: Some(300 * MI),
                memory_working_set: Some(300 * MI),
                memory_limit: Some(2048 * MI),
                ..PodSample::default()
            }],
        },
    );
    let apps: Api<PhpAppServer> = Api::namespaced(client.clone(), &ns);
    apps.create(
        &PostParams::default(),
        &app(
            "shop",
            json!({"resources": {"memory": {"min": "128Mi", "max": "2Gi"}}, "tuning": {"interval": "5s"}}),
        )?,
    )
    .await?;
    // What an earlier operator process learned over the last hours: pods peak at 300 Mi
    // with 2 workers and 380 Mi with 4 (200 rounds); its last memory change an hour ago.
    let now = jiff::Timestamp::now();
    let ago = |s: i64| now.checked_sub(jiff::SignedDuration::from_secs(s)).unwrap();
    let mut learned = pacer_operator::tuning::State::default();
    for i in 0..200_i64 {
        let (workers, peak) = if i % 2 == 0 { (2.0, 300) } else { (4.0, 380) };
        learned
            .memory
            .add(ago(7200 - i * 18), workers, (peak * MI) as f64, 1.0);
    }
    // Its last memory change just now: the limit may come down in 10 minutes (the clock
    // below jumps them once the pod runs).
    learned.last_memory_change = Some(now);
    let weight_before = learned.memory.sums[0];
    let persisted = pacer_operator::status::tuning_state(&learned);
    assert!(persisted.memory_model.is_some());
    apps.patch_status(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"tuningState": persisted}})),
    )
    .await?;
    // The API server keeps it as written (the CRD's schema has every field of it; times
    // to the second).
    let stored = apps
        .get("shop")
        .await?
        .status
        .and_then(|s| s.tuning_state)
        .and_then(|s| s.memory_model)
        .context("no tuningState.memoryModel")?;
    let written = persisted.memory_model.clone().context("no model written")?;
    assert_eq!(
        (&stored.sums, &stored.residuals),
        (&written.sums, &written.residuals)
    );
    assert_eq!(
        stored.reference_time.map(|t| t.0.as_second()),
        written.reference_time.map(|t| t.0.as_second())
    );

    use std::sync::atomic::{AtomicI64, Ordering};
    let offset = Arc::new(AtomicI64::new(0));
    let clock_offset = offset.clone();
    let clock: pacer_operator::controller::Clock = Arc::new(move || {
        let now = jiff::Timestamp::now();
        now.checked_add(jiff::SignedDuration::from_secs(
            clock_offset.load(Ordering::SeqCst),
        ))
        .unwrap_or(now)
    });
    let op = common::start_operator_with_clock(client.clone(), &ns, "op-a", fake, clock);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    wait_for_deployment(&deployments, "shop").await?;

    // Play the ReplicaSet controller and the kubelet: one running, ready pod from the
    // template.
    pod_from_template(&client, &ns, "shop-abc-1").await?;
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), &ns);
    pods.patch_status(
        "shop-abc-1",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {
            "phase": "Running", "podIP": "10.0.0.9", "podIPs": [{"ip": "10.0.0.9"}],
            "conditions": [{"type": "Ready", "status": "True",
                            "lastTransitionTime": ago(3600).to_string()}],
        }})),
    )
    .await?;
    let pod_memory = |pod: &k8s_openapi::api::core::v1::Pod| -> Option<u64> {
        let c = pod
            .spec
            .as_ref()?
            .containers
            .iter()
            .find(|c| c.name == "app")?;
        let q = c.resources.as_ref()?.limits.as_ref()?.get("memory")?;
        pacer_crds::units::parse_memory(&q.0).ok()
    };
    assert_eq!(
        pod_memory(&pods.get("shop-abc-1").await?),
        Some(2048 * MI),
        "the limit came down before its time"
    );
    offset.store(11 * 60, Ordering::SeqCst);
    // The model asks for 2 workers' peak and its margin: far below the 2 Gi the pod
    // started with, and not below the peak (the limit is never under what was seen).
    wait_for(
        WAIT,
        "the pod resized from the model, and the status",
        || async {
            let status = apps.get("shop").await?.status.unwrap_or_default();
            let in_status = status
                .current
                .and_then(|c| pacer_crds::units::parse_memory(&c.memory_limit).ok());
            let on_pod = pod_memory(&pods.get("shop-abc-1").await?);
            Ok(on_pod.is_some_and(|m| (300 * MI..=420 * MI).contains(&m)) && in_status == on_pod)
        },
    )
    .await?;
    // The model was kept and learned on: more weight than the earlier process left.
    let state = apps
        .get("shop")
        .await?
        .status
        .and_then(|s| s.tuning_state)
        .context("no tuningState")?;
    let kept = pacer_operator::status::state_from(&state).memory;
    assert!(
        kept.weight(jiff::Timestamp::now()) > learned.memory.weight(jiff::Timestamp::now()),
        "the model was not kept: {kept:?} (before: {weight_before})"
    );
    // The template was left alone: no rollout.
    let template = template_of(&deployments, "shop").await?;
    let container = template.spec.context("no pod spec")?.containers.remove(0);
    let limits = container
        .resources
        .and_then(|r| r.limits)
        .unwrap_or_default();
    assert_eq!(limits.get("memory").map(|q| q.0.as_str()), Some("2Gi"));
    let events: Api<Event> = Api::namespaced(client, &ns);
    wait_for_event(&events, "a MemoryLimitDecreased event", |e| {
        e.reason.as_deref() == Some("MemoryLimitDecreased")
            && e.note.as_deref().is_some_and(|n| {
                n.contains("2Gi → ") && n.contains("in place") && n.contains("learned")
            })
    })
    .await?;
    op.stop().await
}

/// The kubelet's word reaches the Ready condition: a pod that cannot pull its image turns
/// Ready False with reason ImagePullBackOff within two reconciles of the pod's status
/// change (the operator watches the app's pods), and True again once the pod serves.
#[tokio::test]
async fn a_pod_that_cannot_pull_its_image_turns_ready_false_with_the_reason() -> Result<()> {
    let Some(Shop {
        client,
        ns,
        op,
        apps,
        ..
    }) = Shop::start("pod-reason", None, json!({"tuning": {"mode": "Off"}})).await?
    else {
        return Ok(());
    };
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    wait_for_deployment(&deployments, "shop").await?;
    pod_from_template(&client, &ns, "shop-abc-1").await?;
    wait_for_condition(&apps, "shop", "Ready", "False", "PodsNotReady").await?;
    // Let the echoes settle, then count reconciles from the kubelet's report on.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = op.reconciles("ok");
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), &ns);
    pods.patch_status(
        "shop-abc-1",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"status": {"phase": "Pending", "containerStatuses": [{
                "name": "app", "image": "shop:1", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff",
                                      "message": "Back-off pulling image \"shop:1\""}}
            }]}}),
        ),
    )
    .await?;
    wait_for_condition(&apps, "shop", "Ready", "False", "ImagePullBackOff").await?;
    let took = op.reconciles("ok") - before;
    assert!(took <= 2, "{took} reconciles to report the pod's reason");
    let ready = find_condition(&apps, "shop", "Ready")
        .await?
        .context("no Ready")?;
    assert!(
        ready.message.contains("shop-abc-1") && ready.message.contains("Back-off pulling image"),
        "{}",
        ready.message
    );
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    wait_for_event(&events, "a Warning event naming the reason", |e| {
        e.type_.as_deref() == Some("Warning") && e.reason.as_deref() == Some("ImagePullBackOff")
    })
    .await?;

    // The image arrives: the pod runs and is ready, the Deployment says so.
    pods.patch_status(
        "shop-abc-1",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"status": {"phase": "Running", "containerStatuses": [{
                "name": "app", "image": "shop:1", "imageID": "", "ready": true, "restartCount": 0,
                "state": {"running": {}}
            }]}}),
        ),
    )
    .await?;
    report_ready(&deployments, "shop", 1).await?;
    wait_for_condition(&apps, "shop", "Ready", "True", "AllPodsReady").await?;
    op.stop().await
}

/// A namespace selector: with every namespace watched, only apps in namespaces whose
/// labels match are reconciled.
#[tokio::test]
async fn only_namespaces_the_selector_matches_are_reconciled() -> Result<()> {
    let Some((client, chosen)) = setup("selected").await? else {
        return Ok(());
    };
    let Some(cp) = common::cluster().await? else {
        return Ok(());
    };
    let ignored = cp.new_namespace("not-selected").await?;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces
        .patch(
            &chosen,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"pacer-test/selected": chosen}}})),
        )
        .await?;
    let op = common::start_operator_selecting(
        client.clone(),
        &format!("pacer-test/selected={chosen}"),
        common::lease(&chosen, "op-sel"),
        Arc::new(Fake::new()),
    );
    for ns in [&chosen, &ignored] {
        Api::<PhpAppServer>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &app("shop", json!({}))?)
            .await?;
    }
    let chosen_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &chosen);
    wait_for(WAIT, "the selected namespace's ConfigMap", || async {
        Ok(chosen_maps.get_opt("shop-pacer").await?.is_some())
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ignored_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ignored);
    assert!(
        ignored_maps.get_opt("shop-pacer").await?.is_none(),
        "an app outside the selector was reconciled"
    );
    assert_eq!(op.reconciles("error"), 0);
    op.stop().await
}
