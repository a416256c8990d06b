//! Typed calls of connector exports through [`Runtime::call`], and the JSON entry point of the
//! CLI (a thin wrapper over [`super::dynamic`], which holds the one JSON mapping).

use serde_json::Value;

use super::{CallReport, Installation, LoadedComponent, Runtime, dynamic};
use crate::bindings::ConnectorError;
use crate::bindings::connector::exports::patchbay::connector::lifecycle::{CredentialCheck, HealthReport};

/// Calls `lifecycle.health-check`.
pub async fn health_check(
    rt: &Runtime,
    c: &LoadedComponent,
    inst: &Installation,
) -> CallReport<Result<HealthReport, ConnectorError>> {
    rt.call(c, inst, "health-check", |store, instance, c| {
        Box::pin(async move {
            let world = c.lifecycle(store, &instance)?;
            world.patchbay_connector_lifecycle().call_health_check(&mut *store).await
        })
    })
    .await
}

/// Calls `lifecycle.validate-credentials`.
pub async fn validate_credentials(
    rt: &Runtime,
    c: &LoadedComponent,
    inst: &Installation,
) -> CallReport<Result<CredentialCheck, ConnectorError>> {
    rt.call(c, inst, "validate-credentials", |store, instance, c| {
        Box::pin(async move {
            let world = c.lifecycle(store, &instance)?;
            world.patchbay_connector_lifecycle().call_validate_credentials(&mut *store).await
        })
    })
    .await
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
