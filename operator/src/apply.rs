//! Apply: the desired objects, written with server-side apply under one field manager.
//!
//! The ConfigMap goes first, so that pods a new Deployment starts already get the new
//! settings. This step owns the one choice that is not pure: how a new memory limit
//! reaches the running pods — **in place** (`pods/resize`, no restart; the pod template
//! keeps its value unless the pods roll anyway, see
//! [`resources::deployment::template_memory`]) or by a **rollout** of the template, when
//! in-place resize is off or the cluster refuses it.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::resources::{self, Desired};

/// How a memory-limit change reached the pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryDelivery {
    /// The pod template changed; the Deployment rolls the pods.
    Rollout,
    /// The running pods were resized in place.
    InPlace,
    /// In-place resize was refused; the pods roll instead.
    RolloutAfterRefusal,
}

impl MemoryDelivery {
    /// In words, for the Event.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Self::Rollout => "by a rolling update of the pods",
            Self::InPlace => "in place, without restarting the pods",
            Self::RolloutAfterRefusal => {
                "by a rolling update of the pods (in-place resize was refused)"
            }
        }
    }
}

/// What the apply did.
#[derive(Clone, Debug)]
pub struct Applied {
    /// The Deployment as the server holds it afterwards.
    pub deployment: Deployment,
    /// How the memory limit was delivered.
    pub memory: MemoryDelivery,
}

/// Where and how to write.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    /// The client.
    pub client: &'a Client,
    /// Namespace of the objects.
    pub namespace: &'a str,
    /// The field manager.
    pub manager: &'a str,
    /// Deliver memory-limit changes by in-place resize where the cluster allows it.
    pub in_place_resize: bool,
    /// The PHP container (whose memory is tuned).
    pub container: &'a str,
}

impl std::fmt::Debug for Target<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("namespace", &self.namespace)
            .field("manager", &self.manager)
            .field("in_place_resize", &self.in_place_resize)
            .finish_non_exhaustive()
    }
}

/// Server-side apply; returns the object as the server holds it afterwards.
///
/// # Errors
/// [`Error::Apply`] naming the object.
pub async fn server_side_apply<K>(api: &Api<K>, object: &K, manager: &str) -> Result<K, Error>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
    K::DynamicType: Default,
{
    let name = object.meta().name.clone().unwrap_or_default();
    api.patch(
        &name,
        &PatchParams::apply(manager).force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(|source| Error::Apply {
        kind: K::kind(&K::DynamicType::default()).into_owned(),
        name,
        source,
    })
}

/// Applies every desired object; `memory_limit` is the limit the pods should get, `live`
/// the Deployment as observed and `pods` its pods (the ones an in-place resize reaches).
///
/// # Errors
/// [`Error::Apply`] or [`Error::Resize`]; retried by the controller with backoff.
pub async fn apply(
    target: Target<'_>,
    desired: &Desired,
    memory_limit: u64,
    live: Option<&Deployment>,
    pods: &[Pod],
) -> Result<Applied, Error> {
    let Target {
        client,
        namespace,
        manager,
        in_place_resize,
        container,
    } = target;
    let _: ConfigMap = server_side_apply(
        &Api::namespaced(client.clone(), namespace),
        &desired.config_map,
        manager,
    )
    .await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    if let Some(live) = live
        && hands_over_replicas(live, &desired.deployment, manager)
    {
        hand_over_replicas(&deployments, live, manager).await?;
    }
    let template_memory = resources::deployment::template_memory(
        memory_limit,
        live,
        &desired.deployment,
        container,
        in_place_resize,
    );
    let (deployment, memory) = if template_memory == memory_limit {
        let applied = server_side_apply(&deployments, &desired.deployment, manager).await?;
        (applied, MemoryDelivery::Rollout)
    } else {
        let mut held = desired.deployment.clone();
        resources::deployment::set_template_memory(&mut held, container, template_memory);
        let applied = server_side_apply(&deployments, &held, manager).await?;
        let pods_api: Api<Pod> = Api::namespaced(client.clone(), namespace);
        match resize_pods(&pods_api, pods, container, memory_limit).await? {
            Ok(()) => (applied, MemoryDelivery::InPlace),
            Err(refusal) => {
                tracing::warn!(reason = %refusal, "in-place resize refused; rolling the pods instead");
                let rolled = server_side_apply(&deployments, &desired.deployment, manager).await?;
                (rolled, MemoryDelivery::RolloutAfterRefusal)
            }
        }
    };
    let _: Service = server_side_apply(
        &Api::namespaced(client.clone(), namespace),
        &desired.service,
        manager,
    )
    .await?;
    let _: PodDisruptionBudget = server_side_apply(
        &Api::namespaced(client.clone(), namespace),
        &desired.pod_disruption_budget,
        manager,
    )
    .await?;
    Ok(Applied { deployment, memory })
}

/// Field manager that keeps the pods' count when the operator lets go of it.
fn handoff_manager(manager: &str) -> String {
    format!("{manager}-handoff")
}

/// Whether the operator is about to stop owning the Deployment's replicas (someone else
/// counts the pods now) while it still owns them.
fn hands_over_replicas(live: &Deployment, desired: &Deployment, manager: &str) -> bool {
    let letting_go = desired.spec.as_ref().is_some_and(|s| s.replicas.is_none());
    let owned = live.metadata.managed_fields.iter().flatten().any(|m| {
        m.manager.as_deref() == Some(manager)
            && m.operation.as_deref() == Some("Apply")
            && m.fields_v1.as_ref().is_some_and(|f| {
                f.0.get("f:spec")
                    .and_then(|s| s.get("f:replicas"))
                    .is_some()
            })
    });
    letting_go && owned
}

/// With server-side apply, a field its only manager stops applying is removed — the
/// Deployment would fall to 1 pod the moment an autoscaler takes over. So the current
/// count is first applied under a second manager, which keeps it until the autoscaler
/// writes its own.
async fn hand_over_replicas(
    deployments: &Api<Deployment>,
    live: &Deployment,
    manager: &str,
) -> Result<(), Error> {
    let name = live.metadata.name.clone().unwrap_or_default();
    let replicas = live.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let body = serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas},
    });
    deployments
        .patch(
            &name,
            &PatchParams::apply(&handoff_manager(manager)).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(|source| Error::Apply {
            kind: "Deployment".into(),
            name: name.clone(),
            source,
        })?;
    tracing::info!(replicas, "handed the pods' count over to the autoscaler");
    Ok(())
}

/// The memory limit of a pod's PHP container, bytes.
fn pod_memory_limit(pod: &Pod, name: &str) -> Option<u64> {
    let container = pod
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == name)?;
    let quantity = container
        .resources
        .as_ref()?
        .limits
        .as_ref()?
        .get("memory")?;
    crate::units::parse_memory(&quantity.0).ok()
}

/// Resizes the app container of every live pod whose memory limit differs, through the
/// `pods/resize` subresource. `Ok(Err(reason))` when the cluster refuses in-place resize
/// (no such subresource, not allowed, or not valid for these pods): the caller rolls the
/// pods instead. Other failures are errors (retried with backoff).
async fn resize_pods(
    api: &Api<Pod>,
    pods: &[Pod],
    container: &str,
    memory: u64,
) -> Result<Result<(), String>, Error> {
    let quantity = crate::units::format_memory(memory);
    let patch = serde_json::json!({"spec": {"containers": [{
        "name": container,
        "resources": {"requests": {"memory": quantity}, "limits": {"memory": quantity}},
    }]}});
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some()
            || pod_memory_limit(pod, container).is_none_or(|m| m == memory)
        {
            continue;
        }
        let name = pod.name_any();
        match api
            .patch_subresource(
                "resize",
                &name,
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
        {
            Ok(_) => tracing::info!(pod = %name, memory = %quantity, "resized in place"),
            Err(kube::Error::Api(status)) if matches!(status.code, 403 | 404 | 405 | 422) => {
                return Ok(Err(format!("{}: {}", status.code, status.message)));
            }
            // Gone since the list: nothing to resize.
            Err(kube::Error::Api(status)) if status.code == 409 || status.reason == "NotFound" => {}
            Err(source) => return Err(Error::Resize { pod: name, source }),
        }
    }
    Ok(Ok(()))
}
