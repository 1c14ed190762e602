//! The Deployment: the user's pod (`spec.template`, or the one the short form
//! describes) with pacer injected into the PHP container (docs/design.md §2.1). Only what
//! pacer needs is the operator's; everything else in the template passes through.
//!
//! * An init container from the Pacer image copies the static `pacer` binary into an
//!   emptyDir; the app container mounts it read-only at `/pacer` and runs
//!   `/pacer/pacer serve -c /etc/pacer/rr.yaml --watch-config`. With
//!   `sidecar.inject: false` the image brings `pacer` at `/usr/local/bin/pacer`.
//! * The ConfigMap is mounted at `/etc/pacer`; the kubelet swaps its `..data` symlink on
//!   update and pacer applies pool changes live, so tuning never restarts a pod.
//! * Probes: startup and liveness on `/health`, readiness on `/ready` (port 2114) of the
//!   plugin that takes the pod's work: `?plugin=http` beside jobs (a broker outage must
//!   not take an HTTP pod out of its Service), `?plugin=jobs` for a jobs-only app (unready
//!   while its broker is unreachable or no jobs worker runs), plain `/ready` without jobs
//!   (unchanged since the first release: an upgrade rolls no pod).
//! * Graceful shutdown without a preStop hook: pacer turns `/ready` 503 on SIGTERM and keeps
//!   serving for its delay; the pod's grace period exceeds delay + grace period.
//! * Restricted security by default: what the template leaves unset becomes non-root,
//!   read-only root filesystem (with a writable `/tmp` unless the container mounts its
//!   own), no capabilities, no privilege escalation, RuntimeDefault seccomp; what the
//!   user set stays.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    HTTPGetAction, LocalObjectReference, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use pacer_crds::PhpAppServerSpec;

use super::rr_config::{self, CONFIG_DIR, CONFIG_FILE, METRICS_PORT, STATUS_PORT};
use super::{CONFIG_HASH_ANNOTATION, Inputs, config_map_name};

/// Where the app container sees the injected binary's directory.
pub const PACER_DIR: &str = "/pacer";
/// Where the init container sees the same emptyDir.
pub const INSTALL_DIR: &str = "/pacer-install";
/// pacer's path when the app image brings it (`sidecar.inject: false`).
pub const PACER_IN_IMAGE: &str = "/usr/local/bin/pacer";
/// Name of the init container that copies pacer into the pod.
pub const INSTALL_CONTAINER: &str = "pacer-install";

fn restricted_container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        }),
        ..SecurityContext::default()
    }
}

/// The readiness path: the plugin whose work the pod takes. An app without jobs keeps the
/// plain `/ready` (pacer runs only `http` there, so it means the same): its pod template
/// stays what earlier releases wrote, and an operator upgrade rolls none of its pods.
fn ready_path(spec: &PhpAppServerSpec) -> &'static str {
    match (spec.http.enabled, spec.jobs.is_some()) {
        (false, _) => "/ready?plugin=jobs",
        (true, true) => "/ready?plugin=http",
        (true, false) => "/ready",
    }
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("status".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

fn port(name: &str, number: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: number,
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    }
}

/// The PHP container's resources: memory (request = limit, tuned) and CPU from
/// `spec.resources` are the operator's; other resources the user set (ephemeral storage,
/// hugepages, claims) stay.
fn resources(inputs: &Inputs<'_>, user: Option<ResourceRequirements>) -> ResourceRequirements {
    let memory = Quantity(crate::units::format_memory(inputs.settings.memory_limit));
    let cpu = &inputs.spec.resources.cpu;
    let mut out = user.unwrap_or_default();
    let mut requests = out.requests.take().unwrap_or_default();
    let mut limits = out.limits.take().unwrap_or_default();
    requests.insert("cpu".to_owned(), Quantity(cpu.request.clone()));
    // Request = limit for memory: a PHP pool's memory is not elastic, and an
    // over-committed node would OOM-kill it first.
    requests.insert("memory".to_owned(), memory.clone());
    limits.insert("memory".to_owned(), memory);
    match &cpu.limit {
        Some(limit) => {
            limits.insert("cpu".into(), Quantity(limit.clone()));
        }
        None => {
            limits.remove("cpu");
        }
    }
    requests.retain(|_, q| !q.0.is_empty());
    out.requests = Some(requests);
    out.limits = Some(limits);
    out
}

fn php_container<'a>(d: &'a Deployment, name: &str) -> Option<&'a Container> {
    d.spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == name)
}

fn template_annotation<'a>(d: &'a Deployment, key: &str) -> Option<&'a str> {
    d.spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// The template without the memory of the PHP container: what changes it other than a
/// memory limit rolls the pods anyway.
fn template_but_memory(d: &Deployment, container: &str) -> Option<PodTemplateSpec> {
    let mut template = d.spec.as_ref()?.template.clone();
    let c = template
        .spec
        .as_mut()?
        .containers
        .iter_mut()
        .find(|c| c.name == container)?;
    if let Some(r) = c.resources.as_mut() {
        for list in [&mut r.requests, &mut r.limits] {
            if let Some(list) = list.as_mut() {
                list.remove("memory");
            }
        }
    }
    Some(template)
}

/// Whether applying `wanted` would leave `live` as it is: every field `wanted` sets is in
/// `live` with the same value (the API server adds defaults to `live`, which `wanted` does
/// not mention).
fn applies_nothing_new(live: Option<&PodTemplateSpec>, wanted: Option<&PodTemplateSpec>) -> bool {
    fn within(have: &serde_json::Value, want: &serde_json::Value) -> bool {
        use serde_json::Value;
        match (have, want) {
            // The API server drops empty values (`readOnly: false`) from what it returns.
            (Value::Object(h), Value::Object(w)) => w.iter().all(|(k, v)| match h.get(k) {
                Some(hv) => within(hv, v),
                None => {
                    matches!(v, Value::Null | Value::Bool(false))
                        || v.as_array().is_some_and(Vec::is_empty)
                        || v.as_object().is_some_and(serde_json::Map::is_empty)
                }
            }),
            (Value::Array(h), Value::Array(w)) => {
                h.len() == w.len() && h.iter().zip(w).all(|(hv, wv)| within(hv, wv))
            }
            _ => have == want,
        }
    }
    match (
        live.and_then(|t| serde_json::to_value(t).ok()),
        wanted.and_then(|t| serde_json::to_value(t).ok()),
    ) {
        (Some(have), Some(want)) => within(&have, &want),
        (None, None) => true,
        _ => false,
    }
}

/// The memory limit the pod *template* should carry when the pods should get `desired`.
///
/// Changing the template rolls every pod. So when in-place resize is on and the live
/// Deployment exists, the template keeps its memory limit (the running pods are resized
/// through `pods/resize`, and pods created later are resized when the operator next looks)
/// — unless the pods roll anyway because something else in the template changed (the
/// image, the restart-only configuration, the user's template), in which case the
/// template takes the desired value for free.
#[must_use]
pub fn template_memory(
    desired: u64,
    live: Option<&Deployment>,
    wanted: &Deployment,
    container: &str,
    in_place: bool,
) -> u64 {
    let Some(live) = live.filter(|_| in_place) else {
        return desired;
    };
    let rolls_anyway = template_annotation(live, CONFIG_HASH_ANNOTATION)
        != template_annotation(wanted, CONFIG_HASH_ANNOTATION)
        || !applies_nothing_new(
            template_but_memory(live, container).as_ref(),
            template_but_memory(wanted, container).as_ref(),
        );
    if rolls_anyway {
        return desired;
    }
    php_container(live, container)
        .and_then(|c| c.resources.as_ref()?.limits.as_ref()?.get("memory"))
        .and_then(|q| crate::units::parse_memory(&q.0).ok())
        .unwrap_or(desired)
}

/// Sets the memory request and limit of the PHP container `container` in `d`'s pod
/// template.
pub fn set_template_memory(d: &mut Deployment, container: &str, bytes: u64) {
    let quantity = Quantity(crate::units::format_memory(bytes));
    let found = d
        .spec
        .as_mut()
        .and_then(|s| s.template.spec.as_mut())
        .and_then(|p| p.containers.iter_mut().find(|c| c.name == container));
    if let Some(resources) = found.map(|c| c.resources.get_or_insert_with(Default::default)) {
        for list in [&mut resources.requests, &mut resources.limits] {
            list.get_or_insert_with(BTreeMap::new)
                .insert("memory".to_owned(), quantity.clone());
        }
    }
}

/// The pod the short form describes (`image`, `env`, … — no `template`).
fn short_form_template(spec: &PhpAppServerSpec) -> PodTemplateSpec {
    let php = Container {
        name: spec.container.clone(),
        image: spec.image.clone(),
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_owned()),
        working_dir: spec.working_dir.clone(),
        env: (!spec.env.is_empty()).then(|| spec.env.clone()),
        ..Container::default()
    };
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(spec.pod_labels.clone()),
            annotations: Some(spec.pod_annotations.clone()),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![php],
            service_account_name: spec.service_account_name.clone(),
            image_pull_secrets: (!spec.image_pull_secrets.is_empty()).then(|| {
                spec.image_pull_secrets
                    .iter()
                    .map(|name| LocalObjectReference { name: name.clone() })
                    .collect()
            }),
            node_selector: (!spec.node_selector.is_empty()).then(|| spec.node_selector.clone()),
            security_context: Some(PodSecurityContext {
                run_as_user: spec.run_as_user,
                run_as_group: spec.run_as_group,
                fs_group: spec.run_as_group,
                ..PodSecurityContext::default()
            }),
            ..PodSpec::default()
        }),
    }
}

/// Fills what a container's security context leaves unset with the restricted defaults;
/// what the user set stays.
fn restrict_container(sc: Option<SecurityContext>) -> SecurityContext {
    let defaults = restricted_container_security();
    let mut sc = sc.unwrap_or_default();
    sc.allow_privilege_escalation = sc
        .allow_privilege_escalation
        .or(defaults.allow_privilege_escalation);
    sc.read_only_root_filesystem = sc
        .read_only_root_filesystem
        .or(defaults.read_only_root_filesystem);
    sc.run_as_non_root = sc.run_as_non_root.or(defaults.run_as_non_root);
    if sc.capabilities.is_none() {
        sc.capabilities = defaults.capabilities;
    }
    if sc.seccomp_profile.is_none() {
        sc.seccomp_profile = defaults.seccomp_profile;
    }
    sc
}

/// Fills what the pod's security context leaves unset: non-root, RuntimeDefault seccomp.
fn restrict_pod(sc: Option<PodSecurityContext>) -> PodSecurityContext {
    let mut sc = sc.unwrap_or_default();
    sc.run_as_non_root = sc.run_as_non_root.or(Some(true));
    if sc.seccomp_profile.is_none() {
        sc.seccomp_profile = Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        });
    }
    sc
}

/// Adds `ours` after the user's entries, leaving out ours where the user already has an
/// entry with the same key (the user's wins; the operator never drops what was written).
fn merge_by<T, K: PartialEq>(user: Option<Vec<T>>, ours: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
    let mut out = user.unwrap_or_default();
    for item in ours {
        if !out.iter().any(|u| key(u) == key(&item)) {
            out.push(item);
        }
    }
    out
}

/// The Deployment: the user's pod (the template, or the short form's) with pacer injected
/// into the PHP container.
///
/// # Errors
/// Serialisation failure of the config fingerprint (not expected).
pub fn deployment(inputs: &Inputs<'_>) -> Result<Deployment, serde_yaml::Error> {
    let spec = inputs.spec;
    let inject = spec.sidecar.inject;
    let pacer = if inject {
        format!("{PACER_DIR}/pacer")
    } else {
        PACER_IN_IMAGE.to_owned()
    };
    let mut template = spec
        .template
        .clone()
        .unwrap_or_else(|| short_form_template(spec));
    let meta = template.metadata.get_or_insert_with(ObjectMeta::default);
    let mut pod_labels = meta.labels.take().unwrap_or_default();
    pod_labels.extend(inputs.labels());
    let mut annotations = meta.annotations.take().unwrap_or_default();
    annotations.extend([
        (
            CONFIG_HASH_ANNOTATION.to_owned(),
            rr_config::restart_hash(spec)?,
        ),
        ("prometheus.io/scrape".to_owned(), "true".to_owned()),
        ("prometheus.io/port".to_owned(), METRICS_PORT.to_string()),
        ("prometheus.io/path".to_owned(), "/metrics".to_owned()),
    ]);
    template.metadata = Some(ObjectMeta {
        labels: Some(pod_labels),
        annotations: Some(annotations),
        ..ObjectMeta::default()
    });

    let mut pod = template.spec.take().unwrap_or_default();
    let index = match pod.containers.iter().position(|c| c.name == spec.container) {
        Some(i) => i,
        // Refused by the schema; an object stored before that rule still gets a pod,
        // with the PHP container first.
        None => {
            pod.containers.insert(
                0,
                Container {
                    name: spec.container.clone(),
                    ..Container::default()
                },
            );
            0
        }
    };
    let php = &mut pod.containers[index];
    let writable_tmp = !php
        .volume_mounts
        .iter()
        .flatten()
        .any(|m| m.mount_path.trim_end_matches('/') == "/tmp");

    let mut mounts = vec![mount("pacer-config", CONFIG_DIR, true)];
    let mut volumes = vec![Volume {
        name: "pacer-config".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map_name(inputs.name),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }];
    if writable_tmp {
        mounts.push(mount("tmp", "/tmp", false));
        volumes.push(Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        });
    }
    let mut init_containers = Vec::new();
    if inject {
        mounts.push(mount("pacer-bin", PACER_DIR, true));
        volumes.push(Volume {
            name: "pacer-bin".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: Some(Quantity("64Mi".into())),
                ..EmptyDirVolumeSource::default()
            }),
            ..Volume::default()
        });
        init_containers.push(Container {
            name: INSTALL_CONTAINER.into(),
            image: Some(
                spec.sidecar
                    .image
                    .clone()
                    .unwrap_or_else(|| inputs.sidecar.image.clone()),
            ),
            image_pull_policy: php.image_pull_policy.clone(),
            command: Some(inputs.sidecar.install_command.clone()),
            volume_mounts: Some(vec![mount("pacer-bin", INSTALL_DIR, false)]),
            resources: Some(ResourceRequirements {
                requests: Some(BTreeMap::from([
                    ("cpu".to_owned(), Quantity("10m".into())),
                    ("memory".to_owned(), Quantity("16Mi".into())),
                ])),
                limits: Some(BTreeMap::from([(
                    "memory".to_owned(),
                    Quantity("64Mi".into()),
                )])),
                ..ResourceRequirements::default()
            }),
            security_context: Some(restricted_container_security()),
            ..Container::default()
        });
    }

    php.command = Some(vec![
        pacer,
        "serve".into(),
        "-c".into(),
        format!("{CONFIG_DIR}/{CONFIG_FILE}"),
        "--watch-config".into(),
    ]);
    php.args = None;
    let ours = vec![
        port("http", spec.http.port),
        port("metrics", i32::from(METRICS_PORT)),
        port("status", i32::from(STATUS_PORT)),
    ];
    let user_ports = php.ports.take().unwrap_or_default();
    php.ports = Some(merge_by(
        Some(ours),
        user_ports
            .into_iter()
            .filter(|p| {
                ![
                    spec.http.port,
                    i32::from(METRICS_PORT),
                    i32::from(STATUS_PORT),
                ]
                .contains(&p.container_port)
            })
            .collect(),
        |p| p.name.clone(),
    ));
    php.resources = Some(resources(inputs, php.resources.take()));
    php.startup_probe = php
        .startup_probe
        .take()
        .or_else(|| Some(http_probe("/health", 2, 60)));
    php.liveness_probe = php
        .liveness_probe
        .take()
        .or_else(|| Some(http_probe("/health", 10, 3)));
    php.readiness_probe = php
        .readiness_probe
        .take()
        .or_else(|| Some(http_probe(ready_path(spec), 5, 2)));
    php.volume_mounts = Some(merge_by(php.volume_mounts.take(), mounts, |m| {
        m.mount_path.clone()
    }));
    php.security_context = Some(restrict_container(php.security_context.take()));

    // pacer's init container first: the user's may already need the config.
    let all_init = merge_by(
        Some(init_containers),
        pod.init_containers.take().unwrap_or_default(),
        |c| c.name.clone(),
    );
    pod.init_containers = (!all_init.is_empty()).then_some(all_init);
    pod.volumes = Some(merge_by(pod.volumes.take(), volumes, |v| v.name.clone()));
    pod.termination_grace_period_seconds = Some(
        pod.termination_grace_period_seconds
            .unwrap_or(0)
            .max(inputs.termination_grace_seconds),
    );
    pod.security_context = Some(restrict_pod(pod.security_context.take()));
    template.spec = Some(pod);

    Ok(Deployment {
        metadata: inputs.metadata(inputs.name.to_owned()),
        spec: Some(DeploymentSpec {
            // Left out when someone else counts the pods, so that the operator does not
            // own the field.
            replicas: inputs
                .replicas
                .map(|r| i32::try_from(r).unwrap_or(i32::MAX)),
            selector: LabelSelector {
                match_labels: Some(inputs.selector_labels()),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                // Never below the wanted capacity during a rollout.
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::String("25%".into())),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            revision_history_limit: Some(5),
            template,
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::test_support::*;

    fn build() -> Deployment {
        let (spec, settings, sidecar) = (spec(), settings(), sidecar());
        deployment(&inputs(&spec, &settings, &sidecar)).unwrap()
    }

    fn app(d: &Deployment) -> Container {
        d.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .clone()
    }

    #[test]
    fn metadata_and_selector() {
        let d = build();
        assert_eq!(d.metadata.name.as_deref(), Some("shop"));
        let owner = &d.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("PhpAppServer", Some(true))
        );
        let spec = d.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(
            spec.selector.match_labels.as_ref().unwrap(),
            &BTreeMap::from([("pacer.dev/app".to_owned(), "shop".to_owned())])
        );
        let labels = spec
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap();
        assert_eq!(labels["team"], "shop");
        assert_eq!(
            labels["pacer.dev/app"], "shop",
            "our selector label wins over podLabels"
        );
    }

    #[test]
    fn pacer_is_injected_and_serves_the_config() {
        let d = build();
        let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        let init = &pod.init_containers.as_ref().unwrap()[0];
        assert_eq!(init.image.as_deref(), Some("pacer:0.1.0"));
        assert_eq!(
            init.command.as_ref().unwrap().last().unwrap(),
            "/pacer-install/pacer"
        );
        assert_eq!(
            init.volume_mounts.as_ref().unwrap()[0].mount_path,
            INSTALL_DIR
        );
        let app = app(&d);
        assert_eq!(
            app.command.unwrap(),
            [
                "/pacer/pacer",
                "serve",
                "-c",
                "/etc/pacer/rr.yaml",
                "--watch-config"
            ]
        );
        let mounts = app.volume_mounts.unwrap();
        let path_of = |name: &str| {
            mounts
                .iter()
                .find(|m| m.name == name)
                .map(|m| m.mount_path.clone())
        };
        assert_eq!(path_of("pacer-bin").as_deref(), Some("/pacer"));
        assert_eq!(path_of("pacer-config").as_deref(), Some("/etc/pacer"));
        assert_eq!(path_of("tmp").as_deref(), Some("/tmp"));
        let volumes = pod.volumes.as_ref().unwrap();
        let cm = volumes.iter().find(|v| v.name == "pacer-config").unwrap();
        assert_eq!(cm.config_map.as_ref().unwrap().name, "shop-pacer");
    }

    #[test]
    fn without_injection_the_image_brings_pacer() {
        let (mut spec, settings, sidecar) = (spec(), settings(), sidecar());
        spec.sidecar.inject = false;
        let d = deployment(&inputs(&spec, &settings, &sidecar)).unwrap();
        let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        assert!(pod.init_containers.is_none());
        assert_eq!(app(&d).command.unwrap()[0], "/usr/local/bin/pacer");
        assert!(
            !pod.volumes
                .as_ref()
                .unwrap()
                .iter()
                .any(|v| v.name == "pacer-bin")
        );
    }

    #[test]
    fn the_spec_sidecar_image_overrides_the_default() {
        let (mut spec, settings, sidecar) = (spec(), settings(), sidecar());
        spec.sidecar.image = Some("pacer:9".into());
        let d = deployment(&inputs(&spec, &settings, &sidecar)).unwrap();
        let pod = d.spec.unwrap().template.spec.unwrap();
        assert_eq!(
            pod.init_containers.unwrap()[0].image.as_deref(),
            Some("pacer:9")
        );
    }

    #[test]
    fn probes_hit_health_and_ready_on_the_status_port() {
        let app = app(&build());
        let path = |p: Option<Probe>| p.unwrap().http_get.unwrap().path.unwrap();
        assert_eq!(path(app.liveness_probe.clone()), "/health");
        assert_eq!(path(app.startup_probe.clone()), "/health");
        assert_eq!(path(app.readiness_probe.clone()), "/ready");
        let status = app
            .ports
            .unwrap()
            .into_iter()
            .find(|p| p.name.as_deref() == Some("status"))
            .unwrap();
        assert_eq!(status.container_port, 2114);
        assert!(
            app.lifecycle.is_none(),
            "no preStop hook: pacer drains on SIGTERM"
        );
    }

    #[test]
    fn a_jobs_only_app_is_ready_by_its_jobs_plugin() {
        let (mut spec, settings, sidecar) = (spec(), settings(), sidecar());
        spec.http.enabled = false;
        let app = app(&deployment(&inputs(&spec, &settings, &sidecar)).unwrap());
        let path = |p: Option<Probe>| p.unwrap().http_get.unwrap().path.unwrap();
        assert_eq!(path(app.readiness_probe.clone()), "/ready?plugin=jobs");
        assert_eq!(path(app.liveness_probe.clone()), "/health");
    }

    /// Beside jobs an HTTP pod is ready by its HTTP plugin alone: a broker outage must not
    /// take it out of its Service.
    #[test]
    fn an_http_app_with_jobs_is_ready_by_its_http_plugin() {
        let (mut spec, settings, sidecar) = (spec(), settings(), sidecar());
        spec.jobs = Some(
            serde_json::from_value(serde_json::json!({
                "pipelines": {"emails": {"driver": "Amqp", "queue": "emails"}}
            }))
            .unwrap(),
        );
        let app = app(&deployment(&inputs(&spec, &settings, &sidecar)).unwrap());
        let path = |p: Option<Probe>| p.unwrap().http_get.unwrap().path.unwrap();
        assert_eq!(path(app.readiness_probe.clone()), "/ready?plugin=http");
    }

    #[test]
    fn security_context_is_restricted() {
        let d = build();
        let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        let psc = pod.security_context.as_ref().unwrap();
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(psc.run_as_user, Some(1000));
        assert_eq!(
            psc.seccomp_profile.as_ref().unwrap().type_,
            "RuntimeDefault"
        );
        for c in pod
            .containers
            .iter()
            .chain(pod.init_containers.as_ref().unwrap())
        {
            let sc = c.security_context.as_ref().unwrap();
            assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
            assert_eq!(sc.read_only_root_filesystem, Some(true), "{}", c.name);
            assert_eq!(sc.run_as_non_root, Some(true), "{}", c.name);
            assert_eq!(
                sc.capabilities.as_ref().unwrap().drop.as_ref().unwrap(),
                &["ALL"]
            );
            assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
        }
    }

    #[test]
    fn grace_period_and_resources() {
        let d = build();
        let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        assert_eq!(pod.termination_grace_period_seconds, Some(40));
        let r = app(&d).resources.unwrap();
        assert_eq!(
            r.limits.as_ref().unwrap()["memory"],
            Quantity("512Mi".into())
        );
        assert_eq!(
            r.requests.as_ref().unwrap()["memory"],
            Quantity("512Mi".into())
        );
        assert_eq!(r.limits.as_ref().unwrap()["cpu"], Quantity("2".into()));
        assert_eq!(r.requests.as_ref().unwrap()["cpu"], Quantity("500m".into()));
    }

    #[test]
    fn the_template_keeps_its_memory_unless_the_pods_roll_anyway() {
        let (spec, settings, sidecar) = (spec(), settings(), sidecar());
        let live = deployment(&inputs(&spec, &settings, &sidecar)).unwrap();
        let mut more = settings;
        more.memory_limit = 768 * MI;
        let wanted = deployment(&inputs(&spec, &more, &sidecar)).unwrap();
        // In place: the template keeps 512Mi; the pods are resized.
        assert_eq!(
            template_memory(768 * MI, Some(&live), &wanted, "app", true),
            512 * MI
        );
        // No in-place resize, or no Deployment yet: the template takes the new value.
        assert_eq!(
            template_memory(768 * MI, Some(&live), &wanted, "app", false),
            768 * MI
        );
        assert_eq!(
            template_memory(768 * MI, None, &wanted, "app", true),
            768 * MI
        );
        // A new image rolls the pods anyway: they may as well start with the new limit.
        let mut new_image = spec.clone();
        new_image.image = Some("shop:2".into());
        let rolled = deployment(&inputs(&new_image, &more, &sidecar)).unwrap();
        assert_eq!(
            template_memory(768 * MI, Some(&live), &rolled, "app", true),
            768 * MI
        );
        // So does a restart-only config change, or a new sidecar image.
        let mut new_command = spec.clone();
        new_command.command.push("--flag".into());
        let rolled = deployment(&inputs(&new_command, &more, &sidecar)).unwrap();
        assert_eq!(
            template_memory(768 * MI, Some(&live), &rolled, "app", true),
            768 * MI
        );
        let mut new_sidecar = spec;
        new_sidecar.sidecar.image = Some("pacer:2".into());
        let rolled = deployment(&inputs(&new_sidecar, &more, &sidecar)).unwrap();
        assert_eq!(
            template_memory(768 * MI, Some(&live), &rolled, "app", true),
            768 * MI
        );
    }

    #[test]
    fn server_defaults_and_dropped_empty_values_do_not_count_as_a_change() {
        let wanted: PodTemplateSpec = serde_json::from_value(serde_json::json!({
            "spec": {"containers": [{"name": "app", "image": "a:1",
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp", "readOnly": false}]}]}
        }))
        .unwrap();
        // As the API server returns it: `readOnly: false` dropped, defaults added.
        let live: PodTemplateSpec = serde_json::from_value(serde_json::json!({
            "spec": {"containers": [{"name": "app", "image": "a:1", "imagePullPolicy": "IfNotPresent",
                "terminationMessagePath": "/dev/termination-log",
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]}],
                "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"}
        }))
        .unwrap();
        assert!(applies_nothing_new(Some(&live), Some(&wanted)));
        let mut changed = wanted.clone();
        changed.spec.as_mut().unwrap().containers[0].image = Some("a:2".into());
        assert!(!applies_nothing_new(Some(&live), Some(&changed)));
    }

    #[test]
    fn replicas_someone_else_counts_are_left_out() {
        let (spec, settings, sidecar) = (spec(), settings(), sidecar());
        let mut i = inputs(&spec, &settings, &sidecar);
        i.replicas = None;
        let d = deployment(&i).unwrap();
        assert_eq!(d.spec.unwrap().replicas, None);
    }

    #[test]
    fn a_template_keeps_what_the_user_wrote_and_gets_pacer() {
        let (mut spec, settings, sidecar) = (spec(), settings(), sidecar());
        spec.image = None;
        spec.env.clear();
        spec.working_dir = None;
        spec.container = "php".into();
        spec.template = Some(
            serde_json::from_value(serde_json::json!({
                "metadata": {"labels": {"tier": "web"}},
                "spec": {
                    "containers": [
                        {"name": "sidecar", "image": "proxy:1"},
                        {"name": "php", "image": "shop:9", "args": ["ignored"],
                         "ports": [{"name": "admin", "containerPort": 9000}],
                         "securityContext": {"runAsUser": 7}}
                    ],
                    "tolerations": [{"key": "k", "operator": "Exists"}],
                    "terminationGracePeriodSeconds": 120
                }
            }))
            .unwrap(),
        );
        let d = deployment(&inputs(&spec, &settings, &sidecar)).unwrap();
        let template = &d.spec.as_ref().unwrap().template;
        assert_eq!(
            template.metadata.as_ref().unwrap().labels.as_ref().unwrap()["tier"],
            "web"
        );
        let pod = template.spec.as_ref().unwrap();
        assert_eq!(pod.containers[0].name, "sidecar");
        assert!(
            pod.containers[0].command.is_none() && pod.containers[0].security_context.is_none()
        );
        let php = &pod.containers[1];
        assert_eq!(php.image.as_deref(), Some("shop:9"));
        assert_eq!(php.command.as_ref().unwrap()[0], "/pacer/pacer");
        assert!(
            php.args.is_none(),
            "pacer's own command runs without the user's args"
        );
        let ports: Vec<_> = php
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| p.container_port)
            .collect();
        assert_eq!(ports, [8080, 2112, 2114, 9000]);
        let sc = php.security_context.as_ref().unwrap();
        assert_eq!(
            (sc.run_as_user, sc.read_only_root_filesystem),
            (Some(7), Some(true))
        );
        assert_eq!(
            pod.termination_grace_period_seconds,
            Some(120),
            "the longer grace wins"
        );
        assert_eq!(pod.tolerations.as_ref().unwrap().len(), 1);
        assert_eq!(
            pod.init_containers.as_ref().unwrap()[0].name,
            INSTALL_CONTAINER
        );
    }

    #[test]
    fn tuning_does_not_roll_the_pods_but_restart_keys_do() {
        let (spec, settings, sidecar) = (spec(), settings(), sidecar());
        let hash = |d: &Deployment| {
            d.spec
                .as_ref()
                .unwrap()
                .template
                .metadata
                .as_ref()
                .unwrap()
                .annotations
                .as_ref()
                .unwrap()[CONFIG_HASH_ANNOTATION]
                .clone()
        };
        let base = deployment(&inputs(&spec, &settings, &sidecar)).unwrap();
        let mut tuned = settings;
        tuned.workers = 12;
        tuned.max_jobs = 90;
        let after = deployment(&inputs(&spec, &tuned, &sidecar)).unwrap();
        assert_eq!(
            base.spec.as_ref().unwrap().template,
            after.spec.as_ref().unwrap().template
        );
        let mut changed = spec.clone();
        changed.command = vec!["php".into(), "other.php".into()];
        let rolled = deployment(&inputs(&changed, &settings, &sidecar)).unwrap();
        assert_ne!(hash(&base), hash(&rolled));
    }
}
