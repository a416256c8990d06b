//! Typed calls of connector exports through [`Runtime::call`], and a JSON front door for the CLI.
//!
//! JSON here is serde's rendering of the generated types (snake_case fields, variants as
//! `{"Variant": value}`); the admin API defines the stable, documented mapping.

use anyhow::{anyhow, bail};
use serde_json::Value;

use super::{CallReport, Hub, Installation, LoadedComponent, Runtime};
use crate::bindings::ConnectorError;
use crate::bindings::connector::exports::patchbay::connector::lifecycle::{CredentialCheck, HealthReport};
use crate::bindings::{data_sync, notification_provider, webhook_endpoint};

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

fn require(c: &LoadedComponent, hub: Hub, op: &str) -> anyhow::Result<()> {
    match c.hub {
        Some(h) if h == hub => Ok(()),
        Some(h) => bail!("operation {op} belongs to the {hub} hub; this component implements {h}"),
        None => bail!("operation {op} belongs to the {hub} hub; this component implements no hub"),
    }
}

fn arg<T: serde::de::DeserializeOwned>(input: Value, op: &str) -> anyhow::Result<T> {
    serde_json::from_value(input).map_err(|e| anyhow!("invalid input for {op}: {e}"))
}

fn to_json<T: serde::Serialize>(r: CallReport<T>) -> CallReport<Value> {
    r.map(|v| serde_json::to_value(v).unwrap_or(Value::Null))
}

macro_rules! hub_call {
    ($rt:expr, $c:expr, $inst:expr, $op:expr, $world:ty, $iface:ident, |$w:ident, $store:ident| $body:expr) => {
        to_json(
            $rt.call($c, $inst, $op, |$store, instance, _| {
                Box::pin(async move {
                    let world = <$world>::new(&mut *$store, &instance)?;
                    let $w = world.$iface();
                    $body.await
                })
            })
            .await,
        )
    };
}

/// Calls an operation by name with JSON input: `health-check`, `validate-credentials`, or
/// `<interface>.<function>` for the hub operations the CLI supports.
pub async fn invoke_json(
    rt: &Runtime,
    c: &LoadedComponent,
    inst: &Installation,
    op: &str,
    input: Value,
) -> anyhow::Result<CallReport<Value>> {
    use data_sync::DataSync;
    use notification_provider::NotificationProvider;
    use webhook_endpoint::WebhookEndpoint;
    Ok(match op {
        "health-check" => to_json(health_check(rt, c, inst).await),
        "validate-credentials" => to_json(validate_credentials(rt, c, inst).await),
        "webhooks.verify" | "webhooks.transform" => {
            require(c, Hub::WebhookEndpoint, op)?;
            let req: webhook_endpoint::exports::patchbay::connector::webhooks::IncomingRequest = arg(input, op)?;
            if op == "webhooks.verify" {
                hub_call!(rt, c, inst, op, WebhookEndpoint, patchbay_connector_webhooks, |w, store| w
                    .call_verify(&mut *store, &req))
            } else {
                hub_call!(rt, c, inst, op, WebhookEndpoint, patchbay_connector_webhooks, |w, store| w
                    .call_transform(&mut *store, &req))
            }
        }
        "notifications.send" => {
            require(c, Hub::NotificationProvider, op)?;
            let n: notification_provider::exports::patchbay::connector::notifications::Notification = arg(input, op)?;
            hub_call!(rt, c, inst, op, NotificationProvider, patchbay_connector_notifications, |w, store| w
                .call_send(&mut *store, &n))
        }
        "sync.list-entities" => {
            require(c, Hub::DataSync, op)?;
            hub_call!(rt, c, inst, op, DataSync, patchbay_connector_sync, |w, store| w.call_list_entities(&mut *store))
        }
        "sync.read-batch" => {
            require(c, Hub::DataSync, op)?;
            let req: data_sync::exports::patchbay::connector::sync::ReadRequest = arg(input, op)?;
            hub_call!(rt, c, inst, op, DataSync, patchbay_connector_sync, |w, store| w
                .call_read_batch(&mut *store, &req))
        }
        other => bail!(
            "operation {other:?} is not callable from here; use health-check, validate-credentials, webhooks.verify, \
             webhooks.transform, notifications.send, sync.list-entities or sync.read-batch"
        ),
    })
}
