//! The harness against the real etcd + kube-apiserver: what the operator's tests rely
//! on works on this server (CRUD, CRDs with CEL validation, Leases, RBAC), and the
//! processes never outlive their owner.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use kube::{Api, Client};
use pacer_e2e::{ControlPlane, or_skip};
use serde_json::json;

/// The shared control plane, or `None` when it cannot be built outside CI.
async fn shared() -> Result<Option<&'static ControlPlane>> {
    or_skip(ControlPlane::shared().await)
}

#[tokio::test]
async fn lists_the_built_in_namespaces_of_a_recent_server() -> Result<()> {
    let Some(cp) = shared().await? else {
        return Ok(());
    };
    let client = cp.client()?;

    let names: Vec<String> = Api::<Namespace>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .into_iter()
        .filter_map(|ns| ns.metadata.name)
        .collect();
    for expected in ["default", "kube-system", "kube-public"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }

    // The binaries carry their real version (build.sh sets it), and it is at least the
    // oldest Kubernetes the operator supports (k8s-openapi feature v1_33).
    let version = client.apiserver_version().await?;
    let minor: u32 = version.minor.trim_end_matches('+').parse()?;
    assert_eq!(version.major, "1");
    assert!(minor >= 33, "server too old: {}", version.git_version);
    assert!(
        version.git_version.starts_with(&format!("v1.{minor}.")),
        "{version:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_config_map_is_created_and_read_back() -> Result<()> {
    let Some(cp) = shared().await? else {
        return Ok(());
    };
    let ns = cp.new_namespace("configmap").await?;
    let config_maps: Api<ConfigMap> = Api::namespaced(cp.client()?, &ns);

    let wanted: ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": "rr" },
        "data": { "rr.yaml": "version: \"3\"\n" },
    }))?;
    config_maps.create(&PostParams::default(), &wanted).await?;

    let got = config_maps.get("rr").await?;
    assert_eq!(got.data, wanted.data);
    assert_eq!(got.metadata.namespace.as_deref(), Some(ns.as_str()));
    Ok(())
}

#[tokio::test]
async fn a_lease_is_created_and_read_back() -> Result<()> {
    let Some(cp) = shared().await? else {
        return Ok(());
    };
    let ns = cp.new_namespace("lease").await?;
    let leases: Api<Lease> = Api::namespaced(cp.client()?, &ns);

    let lease: Lease = serde_json::from_value(json!({
        "metadata": { "name": "pacer-operator" },
        "spec": { "holderIdentity": "replica-a", "leaseDurationSeconds": 15 },
    }))?;
    leases.create(&PostParams::default(), &lease).await?;

    let got = leases.get("pacer-operator").await?;
    let spec = got.spec.context("lease without spec")?;
    assert_eq!(spec.holder_identity.as_deref(), Some("replica-a"));
    assert_eq!(spec.lease_duration_seconds, Some(15));
    Ok(())
}

/// The operator's CRD relies on CEL rules (min ≤ max) being enforced by the server.
#[tokio::test]
async fn a_crd_cel_rule_refuses_an_invalid_object_with_its_message() -> Result<()> {
    let Some(cp) = shared().await? else {
        return Ok(());
    };
    let client = cp.client()?;
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": { "name": "ranges.e2e.pacer.dev" },
        "spec": {
            "group": "e2e.pacer.dev",
            "scope": "Namespaced",
            "names": { "plural": "ranges", "singular": "range", "kind": "Range" },
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "properties": { "spec": {
                        "type": "object",
                        "properties": {
                            "min": { "type": "integer" },
                            "max": { "type": "integer" },
                        },
                        "x-kubernetes-validations": [{
                            "rule": "self.min <= self.max",
                            "message": "min must not exceed max",
                        }],
                    }},
                }},
            }],
        },
    }))?;
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &crd)
        .await?;

    let ns = cp.new_namespace("cel").await?;
    let gvk = GroupVersionKind::gvk("e2e.pacer.dev", "v1", "Range");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "ranges");
    let ranges: Api<DynamicObject> = Api::namespaced_with(client, &ns, &resource);
    let range = |name: &str, min: i64, max: i64| -> Result<DynamicObject> {
        Ok(serde_json::from_value(json!({
            "apiVersion": "e2e.pacer.dev/v1",
            "kind": "Range",
            "metadata": { "name": name },
            "spec": { "min": min, "max": max },
        }))?)
    };

    // A new CRD is served a moment after it is created; until then: a plain-text 404
    // (so `Status::is_not_found`, which looks at the reason, is false).
    create_when_served(&ranges, &range("valid", 1, 4)?).await?;

    let refused = ranges
        .create(&PostParams::default(), &range("invalid", 5, 2)?)
        .await;
    match refused {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert!(
                status.message.contains("min must not exceed max"),
                "{}",
                status.message
            );
        }
        other => bail!("expected the CEL rule to refuse the object, got {other:?}"),
    }
    Ok(())
}

async fn create_when_served(api: &Api<DynamicObject>, object: &DynamicObject) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match api.create(&PostParams::default(), object).await {
            Err(kube::Error::Api(status))
                if status.code == 404 && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(_) => return Ok(()),
            Err(e) => bail!("creating a custom object: {e:?}"),
        }
    }
}

/// The operator delivers memory limits by in-place pod resize (`pods/resize`, GA and on
/// by default since Kubernetes 1.35): the server must accept it without feature gates.
/// No kubelet runs, so only the API side is checked: the new limit is stored.
#[tokio::test]
async fn a_pod_is_resized_in_place_through_the_resize_subresource() -> Result<()> {
    let Some(cp) = shared().await? else {
        return Ok(());
    };
    let ns = cp.new_namespace("resize").await?;
    let pods: Api<Pod> = Api::namespaced(cp.client()?, &ns);
    let resources = |memory: &str| {
        json!({
            "requests": { "cpu": "100m", "memory": "64Mi" },
            "limits": { "cpu": "200m", "memory": memory },
        })
    };
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "app" },
        "spec": { "containers": [{
            "name": "app", "image": "pacer-e2e.invalid/app", "resources": resources("128Mi"),
        }]},
    }))?;
    pods.create(&PostParams::default(), &pod).await?;

    let patch = json!({ "spec": { "containers": [{
        "name": "app", "resources": resources("256Mi"),
    }]}});
    pods.patch_subresource(
        "resize",
        "app",
        &PatchParams::default(),
        &Patch::Strategic(patch),
    )
    .await?;

    let stored = pods.get("app").await?;
    let limits = stored
        .spec
        .and_then(|spec| spec.containers.into_iter().next())
        .and_then(|container| container.resources)
        .and_then(|resources| resources.limits)
        .context("the stored pod has no limits")?;
    assert_eq!(limits.get("memory").map(|q| q.0.as_str()), Some("256Mi"));
    Ok(())
}

/// The chart tests run `helm lint` and `helm template` with the helm built beside the
/// servers; it must work offline.
#[tokio::test]
async fn helm_lints_and_renders_a_chart_offline() -> Result<()> {
    let Some(bin) = or_skip(pacer_e2e::bin_dir())? else {
        return Ok(());
    };
    let helm = bin.join("helm");
    let work = tempfile::tempdir()?;
    let run = |args: &[&str]| -> Result<String> {
        let out = std::process::Command::new(&helm)
            .args(args)
            .current_dir(work.path())
            // No user config or repository cache may leak in, nor be written outside.
            .env("HELM_CONFIG_HOME", work.path().join("config"))
            .env("HELM_CACHE_HOME", work.path().join("cache"))
            .env("HELM_DATA_HOME", work.path().join("data"))
            .output()?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "helm {args:?}: {}\n{stdout}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(stdout)
    };

    assert!(run(&["version", "--short"])?.starts_with("v3."));
    run(&["create", "demo"])?;
    run(&["lint", "demo"])?;
    let rendered = run(&["template", "demo", "demo"])?;
    assert!(rendered.contains("kind: Deployment"), "{rendered}");
    Ok(())
}

/// RBAC is enforced, so the chart's roles can be checked by impersonation.
#[tokio::test]
async fn rbac_refuses_a_service_account_without_roles() -> Result<()> {
    let Some(cp) = shared().await? else {
        return Ok(());
    };
    let ns = cp.new_namespace("rbac").await?;
    let mut config = cp.config().clone();
    config.auth_info.impersonate = Some(format!("system:serviceaccount:{ns}:nobody"));
    let pods: Api<Pod> = Api::namespaced(Client::try_from(config)?, &ns);

    match pods.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) if status.is_forbidden() => Ok(()),
        other => bail!("expected 403 Forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn an_owned_instance_starts_quickly_and_stop_leaves_nothing_behind() -> Result<()> {
    let Some(cp) = or_skip(ControlPlane::start().await)? else {
        return Ok(());
    };
    eprintln!("control plane started in {:?}", cp.startup_time());
    assert!(cp.kubeconfig_path().is_file());
    assert!(cp.server_url().starts_with("https://127.0.0.1:"));
    let ns = cp.new_namespace("owned").await?;
    assert!(ns.starts_with("owned-"), "{ns}");

    let pids = cp.pids();
    let dir = cp.dir().to_path_buf();
    cp.stop();
    for pid in pids {
        assert!(!is_running(&pid.to_string()), "pid {pid} still runs");
    }
    assert!(!dir.exists(), "{} was not removed", dir.display());
    Ok(())
}

const CHILD_ENV: &str = "PACER_E2E_WATCHDOG_CHILD";

/// Run by `the_watchdog_cleans_up_after_the_test_process_dies` in a child process:
/// starts a control plane, reports it, and dies without running any destructor.
/// Without the variable it does nothing.
#[tokio::test]
async fn watchdog_child() -> Result<()> {
    if std::env::var_os(CHILD_ENV).is_none() {
        return Ok(());
    }
    let cp = ControlPlane::start().await?;
    let [etcd, apiserver] = cp.pids();
    println!("CONTROLPLANE {etcd} {apiserver} {}", cp.dir().display());
    // SIGKILL: like a crash or a CI time-out, nothing of ours runs after it.
    nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL)?;
    unreachable!("SIGKILL returned")
}

#[tokio::test]
async fn the_watchdog_cleans_up_after_the_test_process_dies() -> Result<()> {
    // The child needs the binaries; find them (or skip) here first.
    let Some(_) = or_skip(pacer_e2e::bin_dir())? else {
        return Ok(());
    };
    let out = tokio::process::Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "watchdog_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("CONTROLPLANE ").map(|(_, report)| report))
        .with_context(|| {
            let stderr = String::from_utf8_lossy(&out.stderr);
            format!("the child reported no control plane\n{stdout}\n{stderr}")
        })?;
    let fields: Vec<&str> = line.split(' ').collect();
    let [etcd, apiserver, dir] = fields[..] else {
        bail!("bad report: {line}")
    };

    // The watchdog works asynchronously after the child's death: wait (bounded).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while is_running(etcd) || is_running(apiserver) || Path::new(dir).exists() {
        if tokio::time::Instant::now() > deadline {
            bail!(
                "etcd {etcd}, kube-apiserver {apiserver} or {dir} still there 20 s after the test process died"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Whether process `pid` exists and is not a zombie (killed servers whose parent died
/// are reaped by init in its own time).
fn is_running(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(") ")
                .map(|(_, rest)| !rest.starts_with('Z'))
        })
        .unwrap_or(false)
}
