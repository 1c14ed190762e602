//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go does it (kube-runtime
//! has none): one replica holds the Lease and reconciles; the others wait.
//!
//! * [`judge`] (pure) reads a Lease and says: acquire it (free or expired), renew it (ours)
//!   or wait (someone else's, until it would expire).
//! * [`LeaderElector`] does the I/O: create the Lease, or replace it carrying the
//!   `resourceVersion` it read, so that two candidates racing for an expired Lease cannot
//!   both win (the loser gets 409 Conflict and waits).
//! * The holder renews every `retry_period`; if no renewal succeeds for `renew_deadline`
//!   it steps down before the Lease (`lease_duration`) can expire for the others, so two
//!   leaders never overlap. On shutdown it releases the Lease so a standby takes over at
//!   once.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

/// Lease timing and identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub lease_duration: Duration,
    /// The holder steps down when it could not renew for this long (< `lease_duration`).
    pub renew_deadline: Duration,
    /// How often candidates retry and the holder renews.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// client-go's defaults: 15 s lease, 10 s renew deadline, 2 s retry period.
    #[must_use]
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            identity: identity.to_owned(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What to do with a Lease as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Free or expired: take it.
    Acquire,
    /// Ours: renew it.
    Renew,
    /// Someone else's and valid for this long.
    Wait(Duration),
}

/// Judges a Lease (pure). A Lease without holder, or whose `renewTime` plus its own
/// `leaseDurationSeconds` has passed, is free.
#[must_use]
pub fn judge(spec: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> Verdict {
    let Some(spec) = spec else {
        return Verdict::Acquire;
    };
    match spec.holder_identity.as_deref() {
        None | Some("") => return Verdict::Acquire,
        Some(holder) if holder == identity => return Verdict::Renew,
        Some(_) => {}
    }
    let Some(renewed) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return Verdict::Acquire;
    };
    let duration =
        Duration::from_secs(u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0));
    let age = now.duration_since(renewed.0);
    if age.is_negative() {
        // The holder's clock is ahead of ours: count the Lease as just renewed.
        return Verdict::Wait(duration);
    }
    match duration.checked_sub(age.unsigned_abs()) {
        Some(left) if !left.is_zero() => Verdict::Wait(left),
        _ => Verdict::Acquire,
    }
}

/// Errors of leader election.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API refused or failed a Lease request.
    #[error("lease {name}: {source}")]
    Api {
        /// The Lease.
        name: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
}

/// Runs the election for one replica.
#[derive(Clone, Debug)]
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
}

fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

impl LeaderElector {
    /// An elector over the Lease named in `config`.
    #[must_use]
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    fn api_error(&self, source: kube::Error) -> Error {
        Error::Api {
            name: self.config.name.clone(),
            source,
        }
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.config.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }

    /// One attempt to become or stay leader. `Ok(true)` when this replica holds the Lease
    /// afterwards.
    ///
    /// # Errors
    /// API failures other than a lost race (409).
    pub async fn try_acquire_or_renew(&self) -> Result<bool, Error> {
        let now = Timestamp::now();
        let existing = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| self.api_error(e))?;
        let Some(mut lease) = existing else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.config.identity.clone()),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_duration_seconds: Some(self.duration_seconds()),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(e) if is_conflict(&e) => Ok(false),
                Err(e) => Err(self.api_error(e)),
            };
        };
        let verdict = judge(lease.spec.as_ref(), &self.config.identity, now);
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        match verdict {
            Verdict::Wait(_) => return Ok(false),
            Verdict::Renew => {
                spec.renew_time = Some(MicroTime(now));
                spec.lease_duration_seconds = Some(self.duration_seconds());
            }
            Verdict::Acquire => {
                spec.holder_identity = Some(self.config.identity.clone());
                spec.acquire_time = Some(MicroTime(now));
                spec.renew_time = Some(MicroTime(now));
                spec.lease_duration_seconds = Some(self.duration_seconds());
                spec.lease_transitions =
                    Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
            }
        }
        // `replace` sends the resourceVersion we read: a concurrent writer makes it fail.
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(self.api_error(e)),
        }
    }

    /// Waits until this replica is leader. Returns `false` if `cancel` fired first.
    pub async fn acquire(&self, cancel: &CancellationToken) -> bool {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(identity = %self.config.identity, lease = %self.config.name, "became leader");
                    return true;
                }
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "leader election attempt failed"),
            }
            tokio::select! {
                () = cancel.cancelled() => return false,
                () = tokio::time::sleep(self.config.retry_period) => {}
            }
        }
    }

    /// Renews the Lease until `cancel` fires (returns `true`) or leadership is lost
    /// (returns `false`): someone else holds it, or no renewal succeeded for
    /// `renew_deadline`.
    pub async fn hold(&self, cancel: &CancellationToken) -> bool {
        let mut last_success = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = cancel.cancelled() => return true,
                () = tokio::time::sleep(self.config.retry_period) => {}
            }
            let attempt =
                tokio::time::timeout(self.config.renew_deadline, self.try_acquire_or_renew()).await;
            match attempt {
                Ok(Ok(true)) => last_success = tokio::time::Instant::now(),
                Ok(Ok(false)) => {
                    tracing::warn!(identity = %self.config.identity, "leadership taken over");
                    return false;
                }
                Ok(Err(error)) => tracing::warn!(%error, "renewing the lease failed"),
                Err(_) => tracing::warn!("renewing the lease timed out"),
            }
            if last_success.elapsed() >= self.config.renew_deadline {
                tracing::warn!(identity = %self.config.identity, "could not renew within the deadline; stepping down");
                return false;
            }
        }
    }

    /// Gives the Lease up if this replica holds it, so that a standby can take over
    /// without waiting for it to expire.
    ///
    /// # Errors
    /// API failures.
    pub async fn release(&self) -> Result<(), Error> {
        let Some(mut lease) = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| self.api_error(e))?
        else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_conflict(&e) => Ok(()),
            Err(e) => Err(self.api_error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn lease(holder: Option<&str>, renewed: Option<i64>, seconds: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            renew_time: renewed.map(|s| MicroTime(t(s))),
            lease_duration_seconds: Some(seconds),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn verdicts() {
        let cases = [
            (None, Verdict::Acquire, "no lease"),
            (
                Some(lease(None, Some(0), 15)),
                Verdict::Acquire,
                "no holder",
            ),
            (
                Some(lease(Some(""), Some(0), 15)),
                Verdict::Acquire,
                "empty holder",
            ),
            (
                Some(lease(Some("me"), Some(-100), 15)),
                Verdict::Renew,
                "ours, even if stale",
            ),
            (
                Some(lease(Some("other"), Some(-5), 15)),
                Verdict::Wait(Duration::from_secs(10)),
                "valid",
            ),
            (
                Some(lease(Some("other"), Some(-15), 15)),
                Verdict::Acquire,
                "expired exactly",
            ),
            (
                Some(lease(Some("other"), Some(-60), 15)),
                Verdict::Acquire,
                "long expired",
            ),
            (
                Some(lease(Some("other"), Some(5), 15)),
                Verdict::Wait(Duration::from_secs(15)),
                "clock skew",
            ),
            (
                Some(lease(Some("other"), None, 15)),
                Verdict::Acquire,
                "never renewed",
            ),
        ];
        for (spec, want, why) in cases {
            assert_eq!(judge(spec.as_ref(), "me", t(0)), want, "{why}");
        }
    }
}
