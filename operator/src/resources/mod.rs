//! Pure builders of the objects a `PhpAppServer` owns (docs/design.md §3.2).
//!
//! Each builder takes plain data ([`Inputs`]) and returns the complete object the operator
//! applies with server-side apply: Deployment ([`deployment`]), Service, ConfigMap and
//! PodDisruptionBudget ([`simple`]). Every object carries the same labels, the owner
//! reference to its `PhpAppServer` (so garbage collection removes it with the owner) and
//! nothing the operator does not mean to own (server-side apply would otherwise claim it).

pub mod deployment;
pub mod rr_config;
pub mod simple;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use pacer_crds::PhpAppServerSpec;

use crate::tuning::Settings;

/// Label every owned object carries, with the app name; the pod selector.
pub const APP_LABEL: &str = "pacer.dev/app";
/// Pod-template annotation: fingerprint of the restart-only configuration.
pub const CONFIG_HASH_ANNOTATION: &str = "pacer.dev/config-hash";
/// The operator's name as a label value and field manager.
pub const MANAGER: &str = "pacer-operator";

/// Where the pacer binary comes from, for apps that do not say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SidecarDefaults {
    /// The Pacer image (holds the static `pacer` binary at `/pacer`).
    pub image: String,
    /// Command of the init container that copies pacer into the shared emptyDir; its last
    /// argument must be the destination under [`deployment::INSTALL_DIR`].
    pub install_command: Vec<String>,
}

/// Everything a builder needs.
#[derive(Clone, Debug)]
pub struct Inputs<'a> {
    /// Name of the `PhpAppServer` (and of the owned objects).
    pub name: &'a str,
    /// Its namespace.
    pub namespace: &'a str,
    /// Owner reference to it.
    pub owner: OwnerReference,
    /// Its spec.
    pub spec: &'a PhpAppServerSpec,
    /// The pool settings to write.
    pub settings: &'a Settings,
    /// The Deployment's replicas; `None` when someone else counts the pods (the field is
    /// then left to them).
    pub replicas: Option<u32>,
    /// Pod termination grace period, seconds (pacer's delay + grace period + margin).
    pub termination_grace_seconds: i64,
    /// Operator-wide sidecar defaults.
    pub sidecar: &'a SidecarDefaults,
    /// Jobs workers per pod (`spec.jobs`; `None`: the initial size).
    pub jobs_workers: Option<u32>,
}

impl Inputs<'_> {
    /// Labels that select the pods.
    #[must_use]
    pub fn selector_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(APP_LABEL.to_owned(), self.name.to_owned())])
    }

    /// Labels of every owned object.
    #[must_use]
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.selector_labels();
        labels.insert("app.kubernetes.io/name".into(), self.name.to_owned());
        labels.insert(
            "app.kubernetes.io/component".into(),
            "php-app-server".into(),
        );
        labels.insert("app.kubernetes.io/managed-by".into(), MANAGER.into());
        labels
    }

    /// Metadata of an owned object called `name`.
    #[must_use]
    pub fn metadata(&self, name: String) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.to_owned()),
            labels: Some(self.labels()),
            owner_references: Some(vec![self.owner.clone()]),
            ..ObjectMeta::default()
        }
    }
}

/// Every object a `PhpAppServer` owns, as it should be.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    /// The ConfigMap with `rr.yaml` (applied first, so new pods start with it).
    pub config_map: ConfigMap,
    /// The Deployment.
    pub deployment: Deployment,
    /// The Service.
    pub service: Service,
    /// The PodDisruptionBudget.
    pub pod_disruption_budget: PodDisruptionBudget,
}

/// The one function that builds the owned objects.
///
/// # Errors
/// Serialisation failure of `rr.yaml` or of the config fingerprint (not expected).
pub fn desired(inputs: &Inputs<'_>) -> Result<Desired, serde_yaml::Error> {
    Ok(Desired {
        config_map: simple::config_map(inputs)?,
        deployment: deployment::deployment(inputs)?,
        service: simple::service(inputs),
        pod_disruption_budget: simple::pod_disruption_budget(inputs),
    })
}

/// Name of the ConfigMap holding `rr.yaml`.
#[must_use]
pub fn config_map_name(app: &str) -> String {
    format!("{app}-pacer")
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use serde_json::json;

    pub(crate) const MI: u64 = 1024 * 1024;

    pub(crate) fn spec() -> PhpAppServerSpec {
        serde_json::from_value(json!({
            "image": "shop:1.2.3",
            "command": ["php", "worker.php"],
            "workingDir": "/app",
            "env": [{"name": "APP_ENV", "value": "prod"}],
            "replicas": {"min": 2, "max": 4},
            "resources": {"cpu": {"request": "500m", "limit": "2"}},
            "runAsUser": 1000,
            "podLabels": {"team": "shop", "pacer.dev/app": "spoofed"},
            "podAnnotations": {"note": "x"},
            "imagePullSecrets": ["regcred"],
            "nodeSelector": {"pool": "php"}
        }))
        .unwrap()
    }

    pub(crate) fn settings() -> Settings {
        Settings {
            workers: 6,
            max_jobs: 500,
            max_worker_memory: 128 * MI,
            memory_limit: 512 * MI,
            replicas: 3,
        }
    }

    pub(crate) fn sidecar() -> SidecarDefaults {
        SidecarDefaults {
            image: "pacer:0.1.0".into(),
            install_command: vec![
                "/pacer-operator".into(),
                "install".into(),
                "--from".into(),
                "/pacer".into(),
                "--to".into(),
                "/pacer-install/pacer".into(),
            ],
        }
    }

    pub(crate) fn owner() -> OwnerReference {
        OwnerReference {
            api_version: "pacer.dev/v1alpha1".into(),
            kind: "PhpAppServer".into(),
            name: "shop".into(),
            uid: "1234-5678".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    pub(crate) fn inputs<'a>(
        spec: &'a PhpAppServerSpec,
        settings: &'a Settings,
        sidecar: &'a SidecarDefaults,
    ) -> Inputs<'a> {
        Inputs {
            name: "shop",
            namespace: "prod",
            owner: owner(),
            spec,
            settings,
            replicas: Some(settings.replicas),
            termination_grace_seconds: 40,
            sidecar,
            jobs_workers: None,
        }
    }
}
