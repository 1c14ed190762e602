//! Shared helpers of the operator's tests against the real API server (`pacer-e2e`).

#![allow(dead_code)]

use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use pacer_e2e::{ControlPlane, or_skip};

/// The control plane shared by the tests of one test binary; `None` only outside CI when
/// it cannot be built (a skip, announced on stderr).
pub async fn cluster() -> Result<Option<&'static ControlPlane>> {
    or_skip(ControlPlane::shared().await)
}

/// Installs (or updates) the PhpAppServer CRD and waits until it is established.
pub async fn install_crd(client: &Client) -> Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        pacer_crds::CRD_NAME,
        &PatchParams::apply("pacer-tests").force(),
        &Patch::Apply(pacer_crds::crd()),
    )
    .await
    .context("applying the CRD")?;
    wait_for(
        Duration::from_secs(30),
        "the CRD to be established",
        || async {
            let crd = crds.get(pacer_crds::CRD_NAME).await?;
            Ok(crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True"))
        },
    )
    .await
}

/// Polls `check` every 100 ms until it returns true or `timeout` passes.
pub async fn wait_for<F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_error = Some(e),
        }
        if tokio::time::Instant::now() >= deadline {
            match last_error {
                Some(e) => {
                    bail!("timed out after {timeout:?} waiting for {what}; last error: {e:#}")
                }
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
