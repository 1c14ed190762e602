//! Leader election on a real Lease: acquire, renew, wait, expire, release, and a race for
//! an expired Lease that exactly one candidate wins.

mod common;

use std::time::Duration;

use anyhow::{Context, Result};
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use pacer_operator::leader::{LeaderElector, LeaseConfig};
use tokio_util::sync::CancellationToken;

fn candidate(client: &Client, ns: &str, identity: &str, lease_seconds: u64) -> LeaderElector {
    LeaderElector::new(
        client.clone(),
        LeaseConfig {
            namespace: ns.to_owned(),
            name: "election".to_owned(),
            identity: identity.to_owned(),
            lease_duration: Duration::from_secs(lease_seconds),
            renew_deadline: Duration::from_secs(lease_seconds.saturating_sub(1).max(1)),
            retry_period: Duration::from_millis(200),
        },
    )
}

async fn spec(api: &Api<Lease>) -> Result<LeaseSpec> {
    api.get("election")
        .await?
        .spec
        .context("lease without spec")
}

#[tokio::test]
async fn acquire_renew_wait_release() -> Result<()> {
    let Some(cp) = common::cluster().await? else {
        return Ok(());
    };
    let client = cp.client()?;
    let ns = cp.new_namespace("lease").await?;
    let api: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let a = candidate(&client, &ns, "a", 30);
    let b = candidate(&client, &ns, "b", 30);

    assert!(a.try_acquire_or_renew().await?, "a free lease is taken");
    let first = spec(&api).await?;
    assert_eq!(first.holder_identity.as_deref(), Some("a"));
    assert_eq!(first.lease_duration_seconds, Some(30));
    assert_eq!(first.lease_transitions, Some(0));

    assert!(
        !b.try_acquire_or_renew().await?,
        "a valid lease is not taken"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(a.try_acquire_or_renew().await?, "the holder renews");
    let renewed = spec(&api).await?;
    assert!(renewed.renew_time > first.renew_time, "renewTime moves on");
    assert_eq!(
        renewed.acquire_time, first.acquire_time,
        "acquireTime stays"
    );

    b.release().await?;
    assert_eq!(
        spec(&api).await?.holder_identity.as_deref(),
        Some("a"),
        "only the holder releases"
    );
    a.release().await?;
    assert_eq!(spec(&api).await?.holder_identity, None);
    assert!(
        b.try_acquire_or_renew().await?,
        "a released lease is taken at once"
    );
    assert_eq!(spec(&api).await?.lease_transitions, Some(1));
    Ok(())
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_by_exactly_one_candidate() -> Result<()> {
    let Some(cp) = common::cluster().await? else {
        return Ok(());
    };
    let client = cp.client()?;
    let ns = cp.new_namespace("lease-expiry").await?;
    let api: Api<Lease> = Api::namespaced(client.clone(), &ns);
    // A holder that renewed 10 s ago with a 2 s lease, and then died.
    let stale = Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_secs(10))
        .context("time")?;
    api.create(
        &PostParams::default(),
        &Lease {
            metadata: ObjectMeta {
                name: Some("election".into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some("ghost".into()),
                renew_time: Some(MicroTime(stale)),
                acquire_time: Some(MicroTime(stale)),
                lease_duration_seconds: Some(2),
                lease_transitions: Some(4),
                ..LeaseSpec::default()
            }),
        },
    )
    .await?;
    let candidates: Vec<LeaderElector> = (0..4)
        .map(|i| candidate(&client, &ns, &format!("c{i}"), 15))
        .collect();
    let results =
        futures_util::future::join_all(candidates.iter().map(|c| c.try_acquire_or_renew())).await;
    let winners = results.iter().filter(|r| matches!(r, Ok(true))).count();
    assert_eq!(winners, 1, "{results:?}");
    let taken = spec(&api).await?;
    assert!(
        taken
            .holder_identity
            .as_deref()
            .is_some_and(|h| h.starts_with('c'))
    );
    assert_eq!(taken.lease_transitions, Some(5));
    Ok(())
}

#[tokio::test]
async fn a_holder_that_stops_renewing_loses_to_a_waiting_candidate() -> Result<()> {
    let Some(cp) = common::cluster().await? else {
        return Ok(());
    };
    let client = cp.client()?;
    let ns = cp.new_namespace("lease-hold").await?;
    let api: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let a = candidate(&client, &ns, "a", 2);
    let b = candidate(&client, &ns, "b", 2);
    let cancel = CancellationToken::new();
    assert!(a.acquire(&cancel).await);

    // While a holds and renews, b waits.
    let a_holding = {
        let (a, cancel) = (a.clone(), cancel.clone());
        tokio::spawn(async move { a.hold(&cancel).await })
    };
    let b_cancel = CancellationToken::new();
    let b_task = {
        let (b, c) = (b.clone(), b_cancel.clone());
        tokio::spawn(async move { b.acquire(&c).await })
    };
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!b_task.is_finished(), "b became leader while a renewed");
    assert_eq!(spec(&api).await?.holder_identity.as_deref(), Some("a"));

    // a stops renewing without releasing (a crash): b takes over after expiry.
    cancel.cancel();
    assert!(a_holding.await?, "hold returns true when cancelled");
    let became = tokio::time::timeout(Duration::from_secs(10), b_task).await??;
    assert!(became);
    assert_eq!(spec(&api).await?.holder_identity.as_deref(), Some("b"));

    // a, still believing it leads, finds out at its next renewal.
    assert!(!a.try_acquire_or_renew().await?);
    Ok(())
}
