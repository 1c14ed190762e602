//! Report: Events, the operator's metrics and the status.
//!
//! A round that changes settings records them first ([`record`]): the status (`current`,
//! the tuner's memory) is written and the changes are announced *before* anything is
//! applied, and the apply then converges the owned objects to `status.current`. An
//! operator killed in the middle therefore leaves a successor that completes the same
//! decision instead of deciding again from a stale status — which would announce a change
//! twice, or undo one that already reached the pods. (The one window left, between the
//! status write and the Events, can lose an Event but never applies or announces anything
//! twice.) After the apply, [`finish`] announces memory changes with how they were
//! delivered, publishes a Warning when the object becomes Degraded, and writes the status
//! — only when it differs, so a reconcile with nothing new to say wakes no watcher.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Resource};
use pacer_crds::{PhpAppServer, PhpAppServerStatus};

use crate::Error;
use crate::apply::Applied;
use crate::controller::Context;
use crate::plan::Plan;
use crate::telemetry::{AppView, ChangeLabels, EXPORTED_CONDITIONS};
use crate::tuning::{Change, Knob};

/// Records and announces a decision before it is applied (see the module docs). Returns
/// the status as now written.
///
/// # Errors
/// [`Error::WriteStatus`].
pub async fn record(
    ctx: &Context,
    app: &PhpAppServer,
    previous: &PhpAppServerStatus,
    planned: &Plan,
) -> Result<PhpAppServerStatus, Error> {
    if planned.changes.is_empty() {
        return Ok(previous.clone());
    }
    write_status(ctx, app, previous, &planned.status).await?;
    let reference = app.object_ref(&());
    for change in planned
        .changes
        .iter()
        .filter(|c| c.knob != Knob::MemoryLimit)
    {
        announce(ctx, &reference, change, change.to_string()).await;
    }
    Ok(planned.status.clone())
}

/// Announces what only the apply could tell, warns on a new problem, writes the status.
///
/// # Errors
/// [`Error::WriteStatus`].
pub async fn finish(
    ctx: &Context,
    app: &PhpAppServer,
    written: &PhpAppServerStatus,
    planned: &Plan,
    applied: &Applied,
) -> Result<(), Error> {
    let reference = app.object_ref(&());
    for change in planned
        .changes
        .iter()
        .filter(|c| c.knob == Knob::MemoryLimit)
    {
        // Announced after the apply: the note says how it was delivered.
        let note = format!("{change}; delivered {}", applied.memory.describe());
        announce(ctx, &reference, change, note).await;
    }
    for (reason, message) in &planned.warnings {
        warn(ctx, &reference, reason, message).await;
    }
    write_status(ctx, app, written, &planned.status).await
}

/// Publishes a Warning Event (kube's Recorder folds repeats of one reason into a series).
pub async fn warn(ctx: &Context, reference: &ObjectReference, reason: &str, message: &str) {
    let event = Event {
        type_: EventType::Warning,
        reason: reason.to_owned(),
        note: Some(truncate_note(message)),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder().publish(&event, reference).await {
        tracing::warn!(%error, "publishing an event failed");
    }
}

/// Logs, counts and publishes one applied tuning change.
///
/// Each change is its own Event, published through a fresh Recorder: kube's Recorder folds
/// Events of the same reason into one series for six minutes, keeping the first note, so
/// "workers 4 → 3" would be shown as another "workers 5 → 4".
async fn announce(ctx: &Context, reference: &ObjectReference, change: &Change, note: String) {
    tracing::info!(setting = change.knob.as_str(), from = change.from, to = change.to, reason = %change.reason, "tuned");
    ctx.metrics()
        .tuning_changes
        .get_or_create(&ChangeLabels {
            setting: change.knob.as_str(),
            direction: if change.is_increase() { "up" } else { "down" },
        })
        .inc();
    let event = Event {
        type_: EventType::Normal,
        reason: change.event_reason().to_owned(),
        note: Some(truncate_note(&note)),
        action: "Tune".to_owned(),
        secondary: None,
    };
    let recorder = Recorder::new(ctx.client().clone(), ctx.reporter().clone());
    if let Err(error) = recorder.publish(&event, reference).await {
        tracing::warn!(%error, "publishing an event failed");
    }
}

/// Event notes are capped at 1 KiB by the API.
#[must_use]
pub fn truncate_note(text: &str) -> String {
    if text.len() <= 1000 {
        return text.to_owned();
    }
    let mut end = 1000;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Writes the status with server-side apply, only when it changed, and remembers it (see
/// [`Context`]'s `written`).
///
/// # Errors
/// [`Error::WriteStatus`].
pub async fn write_status(
    ctx: &Context,
    app: &PhpAppServer,
    previous: &PhpAppServerStatus,
    status: &PhpAppServerStatus,
) -> Result<(), Error> {
    if previous == status {
        return Ok(());
    }
    let name = app.meta().name.clone().unwrap_or_default();
    let namespace = app
        .meta()
        .namespace
        .clone()
        .ok_or(Error::MissingNamespace)?;
    let apps: Api<PhpAppServer> = Api::namespaced(ctx.client().clone(), &namespace);
    let body = serde_json::json!({
        "apiVersion": pacer_crds::API_VERSION,
        "kind": "PhpAppServer",
        "status": status,
    });
    match apps
        .patch_status(
            &name,
            &PatchParams::apply(ctx.field_manager()).force(),
            &Patch::Apply(&body),
        )
        .await
    {
        Ok(_) => {}
        // Deleted while we were reconciling: there is no status left to write.
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
        Err(source) => return Err(Error::WriteStatus { source }),
    }
    if let Some(uid) = app.meta().uid.clone() {
        ctx.remember(uid, status.clone());
    }
    Ok(())
}

/// The per-app gauges' view of a status.
#[must_use]
pub fn app_view(
    status: &PhpAppServerStatus,
    config: &crate::app_config::AppConfig,
    newest_oom: Option<jiff::Timestamp>,
) -> AppView {
    let current = status.current.as_ref();
    AppView {
        workers: current.map_or(0, |c| i64::from(c.workers)),
        workers_max: i64::from(config.policy.workers.max),
        replicas: status
            .replicas
            .or(current.map(|c| c.replicas))
            .map_or(0, i64::from),
        replicas_max: i64::from(config.policy.replicas.max),
        memory_limit_bytes: current
            .and_then(|c| crate::units::parse_memory(&c.memory_limit).ok())
            .and_then(|b| i64::try_from(b).ok())
            .unwrap_or(0),
        busy_ratio: status.observed.as_ref().map(|o| o.busy_ratio),
        last_oom_kill: newest_oom.map(jiff::Timestamp::as_second),
        conditions: EXPORTED_CONDITIONS
            .iter()
            .filter_map(|t| {
                crate::status::condition(&status.conditions, t).map(|c| (*t, c.status.clone()))
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_notes_are_cut() {
        assert_eq!(truncate_note("short"), "short");
        assert!(truncate_note(&"x".repeat(5000)).len() <= 1003);
    }
}
