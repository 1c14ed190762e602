//! ConfigMap, Service and PodDisruptionBudget.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::rr_config::{self, CONFIG_FILE, METRICS_PORT};
use super::{Inputs, config_map_name};

/// The ConfigMap with the generated `rr.yaml`.
///
/// # Errors
/// Serialisation failure of the config (not expected).
pub fn config_map(inputs: &Inputs<'_>) -> Result<ConfigMap, serde_yaml::Error> {
    let jobs_workers = inputs
        .jobs_workers
        .unwrap_or_else(|| rr_config::initial_jobs_workers(inputs.spec));
    let text = rr_config::render_with_jobs(inputs.spec, inputs.settings, jobs_workers)?;
    Ok(ConfigMap {
        metadata: inputs.metadata(config_map_name(inputs.name)),
        data: Some(BTreeMap::from([(CONFIG_FILE.to_owned(), text)])),
        ..ConfigMap::default()
    })
}

/// The Service in front of the pods: HTTP (unless jobs-only), plus pacer's metrics port
/// for scrapers.
#[must_use]
pub fn service(inputs: &Inputs<'_>) -> Service {
    let http = inputs.spec.http.enabled.then(|| ServicePort {
        name: Some("http".into()),
        port: inputs.spec.http.service_port,
        target_port: Some(IntOrString::String("http".into())),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    });
    Service {
        metadata: inputs.metadata(inputs.name.to_owned()),
        spec: Some(ServiceSpec {
            selector: Some(inputs.selector_labels()),
            ports: Some(
                http.into_iter()
                    .chain([ServicePort {
                        name: Some("metrics".into()),
                        port: i32::from(METRICS_PORT),
                        target_port: Some(IntOrString::String("metrics".into())),
                        protocol: Some("TCP".into()),
                        ..ServicePort::default()
                    }])
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The PodDisruptionBudget: at most `maxUnavailable` pods down in a voluntary disruption.
/// Unhealthy pods may always be evicted, so a broken pod never blocks a node drain.
#[must_use]
pub fn pod_disruption_budget(inputs: &Inputs<'_>) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: inputs.metadata(inputs.name.to_owned()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(inputs.spec.max_unavailable)),
            selector: Some(LabelSelector {
                match_labels: Some(inputs.selector_labels()),
                ..LabelSelector::default()
            }),
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".into()),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::test_support::*;

    #[test]
    fn config_map_holds_rr_yaml_with_the_settings() {
        let (spec, settings, sidecar) = (spec(), settings(), sidecar());
        let cm = config_map(&inputs(&spec, &settings, &sidecar)).unwrap();
        assert_eq!(cm.metadata.name.as_deref(), Some("shop-pacer"));
        assert_eq!(cm.metadata.namespace.as_deref(), Some("prod"));
        assert_eq!(cm.metadata.owner_references.unwrap()[0].uid, "1234-5678");
        let text = &cm.data.unwrap()["rr.yaml"];
        let yaml: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
        assert_eq!(yaml["http"]["pool"]["num_workers"], 6);
        assert_eq!(yaml["http"]["pool"]["supervisor"]["max_worker_memory"], 128);
    }

    #[test]
    fn service_selects_the_pods_by_port_name() {
        let (spec, settings, sidecar) = (spec(), settings(), sidecar());
        let svc = service(&inputs(&spec, &settings, &sidecar));
        let s = svc.spec.unwrap();
        assert_eq!(s.selector.unwrap()["pacer.dev/app"], "shop");
        let ports = s.ports.unwrap();
        assert_eq!(ports[0].port, 80);
        assert_eq!(
            ports[0].target_port,
            Some(IntOrString::String("http".into()))
        );
        assert_eq!(ports[1].port, 2112);
    }

    #[test]
    fn pdb_limits_unavailable_pods() {
        let (spec, settings, sidecar) = (spec(), settings(), sidecar());
        let pdb = pod_disruption_budget(&inputs(&spec, &settings, &sidecar));
        let s = pdb.spec.unwrap();
        assert_eq!(s.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(s.min_available, None);
        assert_eq!(
            s.selector.unwrap().match_labels.unwrap()["pacer.dev/app"],
            "shop"
        );
        assert_eq!(
            s.unhealthy_pod_eviction_policy.as_deref(),
            Some("AlwaysAllow")
        );
    }
}
