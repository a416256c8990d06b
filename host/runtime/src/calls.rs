//! Typed calls of connector exports through `Runtime::call`, and the JSON entry point of the
//! CLI (a thin wrapper over [`super::dynamic`], which holds the one JSON mapping).
//!
//! What a call returns leaves the sandbox, so every result here is cleared of the installation's
//! secret values (in every encoding the [`Scrubber`](crate::capability::log::Scrubber) knows)
//! before the caller sees it; a result that cannot be cleared fails the call.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{CallError, CallReport, Installation, LoadedComponent, Runtime, dynamic};
use crate::bindings::ConnectorError;
use crate::bindings::connector::exports::patchbay::connector::lifecycle::HealthReport;
pub use crate::bindings::data_sync::exports::patchbay::connector::sync::{
    Batch, Entity, ReadRequest, SyncMode as ReadMode, WriteOp, WriteOutcome, WriteRecord, WriteRequest, WriteResult,
};
pub use crate::bindings::webhook_endpoint::exports::patchbay::connector::webhooks::{
    IncomingRequest, NormalizedEvent, Verification,
};
use crate::capability::log::Scrubber;

/// `value` without the installation's secrets: unchanged when its JSON holds none, else every
/// string scrubbed.
fn scrubbed<T: Serialize + DeserializeOwned>(value: T, scrubber: &Scrubber) -> Result<T, CallError> {
    // An installation without secrets (most sync and webhook calls) pays nothing here.
    if scrubber.is_empty() {
        return Ok(value);
    }
    let failed = || CallError::Trap { message: "the call's result could not be cleared of secret values".into() };
    let mut json = serde_json::to_value(&value).map_err(|_| failed())?;
    // Strings that hold JSON (`json` fields) are scrubbed as text, which keeps them JSON:
    // the replacement has no character JSON would escape.
    if !scrubber.scrub_json(&mut json) {
        return Ok(value);
    }
    serde_json::from_value(json).map_err(|_| failed())
}

/// The report with its result cleared of the installation's secrets.
fn scrub<T: Serialize + DeserializeOwned>(mut report: CallReport<T>, inst: &Installation) -> CallReport<T> {
    report.outcome = report.outcome.and_then(|v| scrubbed(v, &inst.scrubber));
    report
}

/// Calls `lifecycle.health-check`.
pub async fn health_check(
    rt: &Runtime,
    c: &LoadedComponent,
    inst: &Installation,
) -> CallReport<Result<HealthReport, ConnectorError>> {
    let report = rt
        .call(c, inst, "health-check", |store, instance, c| {
            Box::pin(async move {
                let world = c.lifecycle(store, &instance)?;
                world.patchbay_connector_lifecycle().call_health_check(&mut *store).await
            })
        })
        .await;
    scrub(report, inst)
}

/// Calls an operation by name with a JSON input object and returns the JSON of its whole result
/// (`{"ok": …}` or `{"err": …}`), using the generic mapping of [`super::dynamic`]; the `patchbay
/// run` command's entry point. See [`dynamic::find_operation`] for operation names.
pub async fn invoke_json(
    rt: &Runtime,
    c: &LoadedComponent,
    inst: &Installation,
    op: &str,
    input: Value,
) -> anyhow::Result<CallReport<Value>> {
    Ok(dynamic::invoke_raw(rt, c, inst, op, input).await?)
}

/// What the `webhooks` export made of an inbound request: the verdict of `verify` (when it was
/// asked) and, for an authentic request, the events of `transform`.
#[derive(Debug)]
pub struct WebhookIngress {
    /// `None` when verification was not delegated to the connector.
    pub verification: Option<Result<Verification, ConnectorError>>,
    /// `None` when the request was not verified; otherwise `transform`'s result.
    pub events: Option<Result<Vec<NormalizedEvent>, ConnectorError>>,
}

/// Runs `webhooks.verify` (when `delegate_verify`) and then, for an authentic request,
/// `webhooks.transform`, in one sandbox: one call of the connector for one inbound request.
pub async fn webhook_ingress(
    rt: &Runtime,
    c: &LoadedComponent,
    inst: &Installation,
    req: IncomingRequest,
    delegate_verify: bool,
) -> CallReport<WebhookIngress> {
    let mut report = rt
        .call(c, inst, "webhooks.transform", move |store, instance, c| {
            Box::pin(async move {
                let world = c.webhooks(store, &instance).ok_or_else(|| {
                    wasmtime::Error::msg("the component does not implement the webhook-endpoint hub")
                })??;
                let hooks = world.patchbay_connector_webhooks();
                let verification =
                    if delegate_verify { Some(hooks.call_verify(&mut *store, &req).await?) } else { None };
                let authentic = match &verification {
                    None => true,
                    Some(Ok(Verification::Valid(_))) => true,
                    Some(_) => false,
                };
                let events = if authentic { Some(hooks.call_transform(&mut *store, &req).await?) } else { None };
                Ok(WebhookIngress { verification, events })
            })
        })
        .await;
    report.outcome = report.outcome.and_then(|w| {
        Ok(WebhookIngress {
            verification: scrubbed(w.verification, &inst.scrubber)?,
            events: scrubbed(w.events, &inst.scrubber)?,
        })
    });
    report
}

/// The `sync` export of an instance, or the error for a component of another hub.
fn sync_export(
    c: &LoadedComponent,
    store: &mut wasmtime::Store<super::CallState>,
    instance: &wasmtime::component::Instance,
) -> wasmtime::Result<crate::bindings::data_sync::DataSync> {
    c.data_sync(store, instance)
        .ok_or_else(|| wasmtime::Error::msg("the component does not implement the data-sync hub"))?
}

/// Calls `sync.list-entities`.
pub async fn list_entities(
    rt: &Runtime,
    c: &LoadedComponent,
    inst: &Installation,
) -> CallReport<Result<Vec<Entity>, ConnectorError>> {
    let report = rt
        .call(c, inst, "sync.list-entities", |store, instance, c| {
            Box::pin(async move {
                let world = sync_export(c, store, &instance)?;
                world.patchbay_connector_sync().call_list_entities(&mut *store).await
            })
        })
        .await;
    scrub(report, inst)
}

/// Calls `sync.read-batch`: one batch of a sync run, in a fresh sandbox.
pub async fn read_batch(
    rt: &Runtime,
    c: &LoadedComponent,
    inst: &Installation,
    req: ReadRequest,
) -> CallReport<Result<Batch, ConnectorError>> {
    let report = rt
        .call(c, inst, "sync.read-batch", move |store, instance, c| {
            Box::pin(async move {
                let world = sync_export(c, store, &instance)?;
                world.patchbay_connector_sync().call_read_batch(&mut *store, &req).await
            })
        })
        .await;
    scrub(report, inst)
}

/// Calls `sync.write-batch`.
pub async fn write_batch(
    rt: &Runtime,
    c: &LoadedComponent,
    inst: &Installation,
    req: WriteRequest,
) -> CallReport<Result<Vec<WriteResult>, ConnectorError>> {
    let report = rt
        .call(c, inst, "sync.write-batch", move |store, instance, c| {
            Box::pin(async move {
                let world = sync_export(c, store, &instance)?;
                world.patchbay_connector_sync().call_write_batch(&mut *store, &req).await
            })
        })
        .await;
    scrub(report, inst)
}
