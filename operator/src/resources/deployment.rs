//! The Deployment: pacer injected into the app container (design.md §2.1).
//!
//! * An init container from the Pacer image copies the static `pacer` binary into an
//!   emptyDir; the app container mounts it read-only at `/pacer` and runs
//!   `/pacer/pacer serve -c /etc/pacer/rr.yaml --watch-config`. With
//!   `sidecar.inject: false` the image brings `pacer` at `/usr/local/bin/pacer`.
//! * The ConfigMap is mounted at `/etc/pacer`; the kubelet swaps its `..data` symlink on
//!   update and pacer applies pool changes live, so tuning never restarts a pod.
//! * Probes: startup and liveness on `/health`, readiness on `/ready` (port 2114).
//! * Graceful shutdown without a preStop hook: pacer turns `/ready` 503 on SIGTERM and keeps
//!   serving for its delay; the pod's grace period exceeds delay + grace period.
//! * Restricted security: non-root, read-only root filesystem (with a writable `/tmp`),
//!   no capabilities, no privilege escalation, RuntimeDefault seccomp.

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

use super::rr_config::{self, CONFIG_DIR, CONFIG_FILE, METRICS_PORT, STATUS_PORT};
use super::{CONFIG_HASH_ANNOTATION, Inputs, config_map_name};

/// Where the app container sees the injected binary's directory.
pub const PACER_DIR: &str = "/pacer";
/// Where the init container sees the same emptyDir.
pub const INSTALL_DIR: &str = "/pacer-install";
/// pacer's path when the app image brings it (`sidecar.inject: false`).
pub const PACER_IN_IMAGE: &str = "/usr/local/bin/pacer";
/// Name of the app container.
pub const APP_CONTAINER: &str = "app";

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

fn resources(inputs: &Inputs<'_>) -> ResourceRequirements {
    let memory = Quantity(crate::units::format_memory(inputs.settings.memory_limit));
    let cpu = &inputs.spec.resources.cpu;
    let mut requests = BTreeMap::from([
        ("cpu".to_owned(), Quantity(cpu.request.clone())),
        // Request = limit for memory: a PHP pool's memory is not elastic, and an
        // over-committed node would OOM-kill it first.
        ("memory".to_owned(), memory.clone()),
    ]);
    let mut limits = BTreeMap::from([("memory".to_owned(), memory)]);
    if let Some(limit) = &cpu.limit {
        limits.insert("cpu".into(), Quantity(limit.clone()));
    }
    requests.retain(|_, q| !q.0.is_empty());
    ResourceRequirements {
        requests: Some(requests),
        limits: Some(limits),
        ..ResourceRequirements::default()
    }
}

fn app_container(d: &Deployment) -> Option<&Container> {
    d.spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == APP_CONTAINER)
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

fn init_images(d: &Deployment) -> Vec<Option<String>> {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.init_containers.as_ref())
        .map(|c| c.iter().map(|c| c.image.clone()).collect())
        .unwrap_or_default()
}

/// The memory limit the pod *template* should carry when the pods should get `desired`.
///
/// Changing the template rolls every pod. So when in-place resize is on and the live
/// Deployment exists, the template keeps its memory limit (the running pods are resized
/// through `pods/resize`, and pods created later are resized when the operator next looks)
/// — unless the pods roll anyway because the image or the restart-only configuration
/// changed, in which case the template takes the desired value for free.
#[must_use]
pub fn template_memory(
    desired: u64,
    live: Option<&Deployment>,
    wanted: &Deployment,
    in_place: bool,
) -> u64 {
    let Some(live) = live.filter(|_| in_place) else {
        return desired;
    };
    let rolls_anyway = template_annotation(live, CONFIG_HASH_ANNOTATION)
        != template_annotation(wanted, CONFIG_HASH_ANNOTATION)
        || app_container(live).and_then(|c| c.image.as_ref())
            != app_container(wanted).and_then(|c| c.image.as_ref())
        || init_images(live) != init_images(wanted);
    if rolls_anyway {
        return desired;
    }
    app_container(live)
        .and_then(|c| c.resources.as_ref()?.limits.as_ref()?.get("memory"))
        .and_then(|q| crate::units::parse_memory(&q.0).ok())
        .unwrap_or(desired)
}

/// Sets the memory request and limit of the app container in `d`'s pod template.
pub fn set_template_memory(d: &mut Deployment, bytes: u64) {
    let quantity = Quantity(crate::units::format_memory(bytes));
    let container = d
        .spec
        .as_mut()
        .and_then(|s| s.template.spec.as_mut())
        .and_then(|p| p.containers.iter_mut().find(|c| c.name == APP_CONTAINER));
    if let Some(resources) = container.map(|c| c.resources.get_or_insert_with(Default::default)) {
        for list in [&mut resources.requests, &mut resources.limits] {
            list.get_or_insert_with(BTreeMap::new)
                .insert("memory".to_owned(), quantity.clone());
        }
    }
}

/// The Deployment.
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

    let mut pod_labels = spec.pod_labels.clone();
    pod_labels.extend(inputs.labels());
    let mut annotations = spec.pod_annotations.clone();
    annotations.extend([
        (
            CONFIG_HASH_ANNOTATION.to_owned(),
            rr_config::restart_hash(spec)?,
        ),
        ("prometheus.io/scrape".to_owned(), "true".to_owned()),
        ("prometheus.io/port".to_owned(), METRICS_PORT.to_string()),
        ("prometheus.io/path".to_owned(), "/metrics".to_owned()),
    ]);

    let mut mounts = vec![
        mount("pacer-config", CONFIG_DIR, true),
        mount("tmp", "/tmp", false),
    ];
    let mut volumes = vec![
        Volume {
            name: "pacer-config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map_name(inputs.name),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    ];
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
            name: "pacer-install".into(),
            image: Some(
                spec.sidecar
                    .image
                    .clone()
                    .unwrap_or_else(|| inputs.sidecar.image.clone()),
            ),
            image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_owned()),
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

    let app = Container {
        name: super::deployment::APP_CONTAINER.into(),
        image: Some(spec.image.clone()),
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_owned()),
        command: Some(vec![
            pacer,
            "serve".into(),
            "-c".into(),
            format!("{CONFIG_DIR}/{CONFIG_FILE}"),
            "--watch-config".into(),
        ]),
        working_dir: spec.working_dir.clone(),
        env: (!spec.env.is_empty()).then(|| spec.env.clone()),
        ports: Some(vec![
            port("http", spec.http.port),
            port("metrics", i32::from(METRICS_PORT)),
            port("status", i32::from(STATUS_PORT)),
        ]),
        resources: Some(resources(inputs)),
        startup_probe: Some(http_probe("/health", 2, 60)),
        liveness_probe: Some(http_probe("/health", 10, 3)),
        readiness_probe: Some(http_probe("/ready", 5, 2)),
        volume_mounts: Some(mounts),
        security_context: Some(restricted_container_security()),
        ..Container::default()
    };

    let pod = PodSpec {
        init_containers: (!init_containers.is_empty()).then_some(init_containers),
        containers: vec![app],
        volumes: Some(volumes),
        termination_grace_period_seconds: Some(inputs.termination_grace_seconds),
        service_account_name: spec.service_account_name.clone(),
        image_pull_secrets: (!spec.image_pull_secrets.is_empty()).then(|| {
            spec.image_pull_secrets
                .iter()
                .map(|name| LocalObjectReference { name: name.clone() })
                .collect()
        }),
        node_selector: (!spec.node_selector.is_empty()).then(|| spec.node_selector.clone()),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: spec.run_as_user,
            run_as_group: spec.run_as_group,
            fs_group: spec.run_as_group,
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            }),
            ..PodSecurityContext::default()
        }),
        ..PodSpec::default()
    };

    Ok(Deployment {
        metadata: inputs.metadata(inputs.name.to_owned()),
        spec: Some(DeploymentSpec {
            // Left out when an HPA counts the pods, so that the operator does not own the field.
            replicas: (!spec.replicas.external)
                .then(|| i32::try_from(inputs.settings.replicas).unwrap_or(i32::MAX)),
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
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
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
            template_memory(768 * MI, Some(&live), &wanted, true),
            512 * MI
        );
        // No in-place resize, or no Deployment yet: the template takes the new value.
        assert_eq!(
            template_memory(768 * MI, Some(&live), &wanted, false),
            768 * MI
        );
        assert_eq!(template_memory(768 * MI, None, &wanted, true), 768 * MI);
        // A new image rolls the pods anyway: they may as well start with the new limit.
        let mut new_image = spec.clone();
        new_image.image = "shop:2".into();
        let rolled = deployment(&inputs(&new_image, &more, &sidecar)).unwrap();
        assert_eq!(
            template_memory(768 * MI, Some(&live), &rolled, true),
            768 * MI
        );
        // So does a restart-only config change, or a new sidecar image.
        let mut new_command = spec.clone();
        new_command.command.push("--flag".into());
        let rolled = deployment(&inputs(&new_command, &more, &sidecar)).unwrap();
        assert_eq!(
            template_memory(768 * MI, Some(&live), &rolled, true),
            768 * MI
        );
        let mut new_sidecar = spec;
        new_sidecar.sidecar.image = Some("pacer:2".into());
        let rolled = deployment(&inputs(&new_sidecar, &more, &sidecar)).unwrap();
        assert_eq!(
            template_memory(768 * MI, Some(&live), &rolled, true),
            768 * MI
        );
    }

    #[test]
    fn external_replicas_are_left_out() {
        let (mut spec, settings, sidecar) = (spec(), settings(), sidecar());
        spec.replicas.external = true;
        let d = deployment(&inputs(&spec, &settings, &sidecar)).unwrap();
        assert_eq!(d.spec.unwrap().replicas, None);
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
