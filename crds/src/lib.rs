//! `pacer-crds`: the `PhpAppServer` custom resource (`pacer.dev/v1alpha2`, short name `pas`;
//! `v1alpha1` is served too, deprecated, with the same schema — see [`crd`]).
//!
//! Pure data and schema, no I/O: the operator depends on it for its types, and the `crdgen`
//! binary (and `pacer-operator crd`) prints the CustomResourceDefinition; `crdgen --chart`
//! prints it as the Helm chart's template (`charts/pacer-operator/templates/crd-phpappservers.yaml`,
//! checked for drift by a test; regenerate with
//! `cargo run -q -p pacer-crds --bin crdgen -- --chart > charts/pacer-operator/templates/crd-phpappservers.yaml`).
//!
//! Built on kube 5 (`derive` only: `CustomResource` generates the `PhpAppServer` type and its
//! CRD), k8s-openapi 0.29 (API level 1.33, the oldest cluster the CEL rules below need:
//! `quantity()` and `duration()` in validation rules) and schemars 1 (the OpenAPI v3 schema).
//!
//! # Theory of operation
//! The schema is the first line of validation: bounds, enums, patterns for durations and
//! quantities, and cross-field rules (`min <= max`, the Prometheus URL when the source is
//! Prometheus) as `x-kubernetes-validations`, so `kubectl apply` of a bad object is refused
//! by the API server with a message naming the field. The operator still parses the strings
//! once ([`units`]) and treats a parse failure as a reportable error, never a panic.
//!
//! # Modules
//! * [`spec`] — `PhpAppServerSpec` and its parts, every field documented for `kubectl explain`.
//! * [`jobs`] — `spec.jobs`: the pods' pipelines and the jobs pool's tuning (drain time,
//!   workers, scale to zero).
//! * [`status`] — `PhpAppServerStatus`: conditions, current settings, recommendation,
//!   observed aggregates, the tuner's state.
//! * [`units`] — Go durations and Kubernetes quantities: patterns, parsing, formatting.
//!
//! Start reading at [`spec::PhpAppServerSpec`].

pub mod jobs;
pub mod spec;
pub mod status;
pub mod units;

pub use jobs::{AmqpSpec, JobsDriver, JobsSpec, JobsWorkersSpec, PipelineSpec, ScaleToZeroSpec};
pub use spec::{
    CpuSpec, HttpSpec, ImagePullPolicy, MaxJobs, MemorySpec, MetricsSourceKind, MetricsSpec,
    PhpAppServer, PhpAppServerSpec, PoolSpec, ReplicasSpec, ResourcesSpec, SecretKeyRef,
    ShutdownSpec, SidecarSpec, TuningMode, TuningSpec, WorkersSpec,
};
pub use status::{
    HistoryEntry, JobBaseline, JobsPoolStatus, MemoryModel, ObservedMetrics, PhpAppServerStatus,
    PoolSettings, Recommendation, ReportedSettings, ResidualBucket, RolloutStatus, TuningState,
};

use kube::CustomResourceExt;

/// API group of the custom resource.
pub const GROUP: &str = "pacer.dev";
/// API version of the custom resource (the storage version).
pub const VERSION: &str = "v1alpha2";
/// The previous API version, still served (deprecated): same schema, see [`crd`].
pub const PREVIOUS_VERSION: &str = "v1alpha1";
/// `apiVersion` of the objects this crate's types serialise as.
pub const API_VERSION: &str = "pacer.dev/v1alpha2";
/// Name of the CustomResourceDefinition.
pub const CRD_NAME: &str = "phpappservers.pacer.dev";

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A duration string is not a non-negative Go-style duration.
    #[error("invalid duration {0:?}: expected a Go duration such as 30s or 1m30s")]
    InvalidDuration(String),
    /// A quantity string is not a Kubernetes quantity of the expected kind.
    #[error("invalid quantity {0:?}")]
    InvalidQuantity(String),
    /// The CRD could not be serialised to YAML.
    #[error("cannot render the CRD as YAML: {0}")]
    RenderCrd(#[from] serde_yaml::Error),
}

/// The CustomResourceDefinition of `PhpAppServer`: `v1alpha2` (served, stored) and
/// `v1alpha1` (served, deprecated).
///
/// # Versions and conversion
/// `v1alpha2` only *added* to `v1alpha1` — the full pod template (`template`,
/// `container`), `paused`, `replicas.count` for the `/scale` subresource, status fields —
/// and changed what `tuning.mode: Off` does (it keeps the settings in force). No field was
/// renamed, moved or removed, so every `v1alpha1` object is a valid `v1alpha2` object with
/// the same meaning. Both versions therefore share one schema, and the API server
/// converts between them by relabelling (`conversion.strategy: None`): nothing is lost in
/// either direction, and no conversion webhook (with the TLS it needs) is worth running.
/// Existing `v1alpha1` objects are read and written as `v1alpha2` from the moment the
/// CRD is upgraded. A later version that renames or removes a field will add a
/// conversion webhook served by the operator.
#[must_use]
pub fn crd()
-> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    let mut crd = PhpAppServer::crd();
    if let Some(current) = crd.spec.versions.first().cloned() {
        let mut previous = current;
        previous.name = PREVIOUS_VERSION.to_owned();
        previous.storage = false;
        previous.deprecated = Some(true);
        previous.deprecation_warning = Some(format!(
            "{GROUP}/{PREVIOUS_VERSION} PhpAppServer is deprecated; use {GROUP}/{VERSION} (same fields)"
        ));
        // Kubernetes' own documentation of the pod template once is enough: the deprecated
        // version's copy goes (half the CRD's size); its structure stays identical.
        if let Some(template) = previous
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
            .and_then(|s| s.properties.as_mut())
            .and_then(|p| p.get_mut("spec"))
            .and_then(|s| s.properties.as_mut())
            .and_then(|p| p.get_mut("template"))
        {
            strip_descriptions(template);
        }
        crd.spec.versions.push(previous);
    }
    crd
}

fn strip_descriptions(
    schema: &mut k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps,
) {
    schema.description = None;
    for child in schema.properties.iter_mut().flat_map(|p| p.values_mut()) {
        strip_descriptions(child);
    }
    if let Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray::Schema(items)) = schema.items.as_mut() {
        strip_descriptions(items);
    }
    if let Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrBool::Schema(more)) = schema.additional_properties.as_mut() {
        strip_descriptions(more);
    }
}

/// The CustomResourceDefinition as a YAML document (`pacer-operator crd`, for
/// `kubectl apply --server-side`).
///
/// # Errors
/// [`Error::RenderCrd`] if serialisation fails (it does not for this type).
pub fn crd_yaml() -> Result<String, Error> {
    let body = quote_yaml11_booleans(&serde_yaml::to_string(&crd())?);
    Ok(format!(
        "# Generated by `pacer-operator crd` (crds/src). Apply with kubectl apply --server-side.\n{body}"
    ))
}

/// Where the chart's CRD template lives, relative to the repository root.
pub const CHART_TEMPLATE: &str = "charts/pacer-operator/templates/crd-phpappservers.yaml";

/// The CustomResourceDefinition as the chart's template: rendered only with
/// `crds.install`, kept on uninstall with `crds.keep` (as cert-manager's chart does), and
/// labelled like the chart's other objects — so `helm upgrade` upgrades the CRD.
///
/// # Errors
/// [`Error::RenderCrd`] if serialisation fails (it does not for this type).
pub fn crd_chart_template() -> Result<String, Error> {
    let body = quote_yaml11_booleans(&serde_yaml::to_string(&crd())?);
    let anchor = format!("  name: {CRD_NAME}\n");
    let metadata = format!(
        "{anchor}  labels:\n    {{{{- include \"pacer-operator.labels\" . | nindent 4 }}}}\n  \
         {{{{- if .Values.crds.keep }}}}\n  annotations:\n    helm.sh/resource-policy: keep\n  {{{{- end }}}}\n"
    );
    Ok(format!(
        "# Generated by `cargo run -q -p pacer-crds --bin crdgen -- --chart > {CHART_TEMPLATE}`.\n\
         # Do not edit: change crds/src and regenerate; a test fails when this file drifts.\n\
         {{{{- if .Values.crds.install }}}}\n{}{{{{- end }}}}\n",
        body.replacen(&anchor, &metadata, 1)
    ))
}

/// Words YAML 1.1 reads as booleans. serde_yaml writes YAML 1.2, where they are strings, so
/// it leaves them plain; but Helm and kubectl parse with YAML 1.1 rules, and an unquoted
/// `- Off` in an enum became `false`, so the API server refused `mode: Off`.
const YAML11_BOOLEANS: &[&str] = &[
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
    "OFF",
];

/// Quotes every plain scalar that YAML 1.1 would read as a boolean: list items (`- Off`)
/// and mapping values (`key: Off`), so every YAML reader sees the same string.
fn quote_yaml11_booleans(yaml: &str) -> String {
    let mut out = String::with_capacity(yaml.len());
    for line in yaml.split_inclusive('\n') {
        let text = line.trim_end_matches('\n');
        let quoted = ["- ", ": "].iter().find_map(|sep| {
            let (head, word) = text.rsplit_once(sep)?;
            YAML11_BOOLEANS
                .contains(&word)
                .then(|| format!("{head}{sep}'{word}'"))
        });
        match quoted {
            Some(q) => {
                out.push_str(&q);
                out.push_str(&line[text.len()..]);
            }
            None => out.push_str(line),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn schema() -> Value {
        let crd = serde_json::to_value(crd()).unwrap();
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
    }

    #[test]
    fn crd_names_and_scope() {
        let crd = serde_json::to_value(crd()).unwrap();
        assert_eq!(crd["metadata"]["name"], CRD_NAME);
        assert_eq!(crd["spec"]["group"], GROUP);
        assert_eq!(crd["spec"]["scope"], "Namespaced");
        assert_eq!(crd["spec"]["names"]["shortNames"], json!(["pas"]));
        assert_eq!(crd["spec"]["versions"][0]["name"], VERSION);
        assert_eq!(crd["spec"]["versions"][0]["storage"], true);
        assert_eq!(
            crd["spec"]["versions"][0]["subresources"]["status"],
            json!({})
        );
        assert_eq!(
            crd["spec"]["versions"][0]["subresources"]["scale"],
            json!({"specReplicasPath": ".spec.replicas.count",
                   "statusReplicasPath": ".status.replicas",
                   "labelSelectorPath": ".status.selector"})
        );
        // The previous version: served, deprecated, the same schema.
        let previous = &crd["spec"]["versions"][1];
        assert_eq!(previous["name"], PREVIOUS_VERSION);
        assert_eq!(
            (previous["served"].clone(), previous["storage"].clone()),
            (json!(true), json!(false))
        );
        assert_eq!(previous["deprecated"], true);
        // The same structure (only the pod template's descriptions are left out).
        fn structure(v: &Value) -> Value {
            match v {
                Value::Object(o) => Value::Object(
                    o.iter()
                        .filter(|(k, _)| k.as_str() != "description")
                        .map(|(k, v)| (k.clone(), structure(v)))
                        .collect(),
                ),
                Value::Array(a) => Value::Array(a.iter().map(structure).collect()),
                other => other.clone(),
            }
        }
        assert_eq!(
            structure(&previous["schema"]),
            structure(&crd["spec"]["versions"][0]["schema"])
        );
    }

    #[test]
    fn printer_columns_cover_what_kubectl_get_should_show() {
        let crd = serde_json::to_value(crd()).unwrap();
        let columns: Vec<String> = crd["spec"]["versions"][0]["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect();
        for want in ["Replicas", "Ready", "Workers", "Max Jobs", "Busy %", "Age"] {
            assert!(columns.iter().any(|c| c == want), "missing column {want}");
        }
    }

    /// Every property of the spec and status carries a description, because that text is
    /// what `kubectl explain` prints.
    #[test]
    fn every_field_is_documented() {
        fn walk(path: &str, schema: &Value, missing: &mut Vec<String>) {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (name, prop) in props {
                    let here = format!("{path}.{name}");
                    let is_k8s_type = path.contains(".env")
                        || path.contains(".conditions")
                        || path.contains(".template");
                    if !is_k8s_type && prop.get("description").is_none() {
                        missing.push(here.clone());
                    }
                    walk(&here, prop, missing);
                }
            }
            if let Some(items) = schema.get("items") {
                walk(path, items, missing);
            }
        }
        let schema = schema();
        let mut missing = Vec::new();
        walk("spec", &schema["properties"]["spec"], &mut missing);
        walk("status", &schema["properties"]["status"], &mut missing);
        assert!(missing.is_empty(), "undocumented fields: {missing:?}");
    }

    #[test]
    fn cross_field_rules_are_in_the_schema() {
        let text = serde_json::to_string(&schema()).unwrap();
        for rule in [
            "self.min <= self.max",
            "quantity(self.min).compareTo(quantity(self.max)) <= 0",
            "type(self) == int ? self >= 0 : self == 'auto'",
            "self.source != 'Prometheus' || has(self.prometheusUrl)",
            "duration(self) > duration('0s')",
        ] {
            assert!(text.contains(rule), "rule missing: {rule}");
        }
    }

    #[test]
    fn defaults_are_in_the_schema() {
        let schema = schema();
        let spec = &schema["properties"]["spec"]["properties"];
        assert_eq!(spec["tuning"]["properties"]["mode"]["default"], "Auto");
        assert_eq!(
            spec["tuning"]["properties"]["targetUtilization"]["default"],
            0.7
        );
        assert_eq!(
            spec["pool"]["properties"]["allocateTimeout"]["default"],
            "60s"
        );
        assert_eq!(spec["http"]["properties"]["port"]["default"], 8080);
    }

    #[test]
    fn enums_are_closed() {
        let schema = schema();
        let spec = &schema["properties"]["spec"]["properties"];
        assert_eq!(
            spec["tuning"]["properties"]["mode"]["enum"],
            json!(["Auto", "Recommend", "Off"])
        );
        assert_eq!(
            spec["tuning"]["properties"]["metrics"]["properties"]["source"]["enum"],
            json!(["Direct", "Prometheus"])
        );
    }

    #[test]
    fn max_jobs_round_trips_number_and_auto() {
        let auto: MaxJobs = serde_json::from_value(json!("auto")).unwrap();
        assert_eq!(auto, MaxJobs::Auto);
        let fixed: MaxJobs = serde_json::from_value(json!(250)).unwrap();
        assert_eq!(fixed, MaxJobs::Fixed(250));
        assert_eq!(serde_json::to_value(MaxJobs::Fixed(0)).unwrap(), json!(0));
        assert_eq!(serde_json::to_value(MaxJobs::Auto).unwrap(), json!("auto"));
        assert!(serde_json::from_value::<MaxJobs>(json!("many")).is_err());
        assert!(serde_json::from_value::<MaxJobs>(json!(-1)).is_err());
    }

    #[test]
    fn minimal_spec_gets_every_default() {
        let spec: PhpAppServerSpec =
            serde_json::from_value(json!({"image": "app:1", "command": ["php", "worker.php"]}))
                .unwrap();
        assert_eq!(spec.replicas, ReplicasSpec::default());
        assert_eq!(spec.pool.max_jobs, MaxJobs::Auto);
        assert_eq!(spec.pool.workers.max, 16);
        assert_eq!(spec.tuning.mode, TuningMode::Auto);
        assert!(spec.sidecar.inject);
        assert_eq!(spec.max_unavailable, 1);
    }

    #[test]
    fn yaml11_booleans_are_quoted() {
        let yaml = "enum:\n- Auto\n- Off\nmode: On\ntext: Off and on\n";
        assert_eq!(
            quote_yaml11_booleans(yaml),
            "enum:\n- Auto\n- 'Off'\nmode: 'On'\ntext: Off and on\n"
        );
        assert!(crd_yaml().unwrap().contains("- 'Off'\n"));
        assert!(crd_chart_template().unwrap().contains("- 'Off'\n"));
    }

    /// The committed chart template is exactly what the code generates. Regenerate after
    /// changing the types with
    /// `cargo run -q -p pacer-crds --bin crdgen -- --chart > charts/pacer-operator/templates/crd-phpappservers.yaml`.
    #[test]
    fn committed_crd_matches_the_code() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(CHART_TEMPLATE);
        let committed = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        assert!(
            committed == crd_chart_template().unwrap(),
            "{} is out of date: run `cargo run -q -p pacer-crds --bin crdgen -- --chart > \
             {CHART_TEMPLATE}` and commit the result",
            path.display()
        );
    }
}
