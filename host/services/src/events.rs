//! [`Events`]: a tenant's event log — events from webhooks, connectors and the host, each with its
//! deliveries and every attempt — and sending dead letters again. Also `host_event`, how the
//! host announces its own changes (health, re-authorization) in the same log.

use std::sync::Arc;

use patchbay_core::error::{Conflict, Error, Field};
use patchbay_core::now_ms;
use patchbay_store::{AttemptRow, DeliveryRow, EventFilter, EventRow, NewEvent, Page, Store};
use serde_json::Value;

use crate::installations::Installations;

/// An event with each of its deliveries and their attempts.
pub struct EventDetails {
    /// The stored event.
    pub event: EventRow,
    /// Each delivery of it, with its attempts (oldest first).
    pub deliveries: Vec<(DeliveryRow, Vec<AttemptRow>)>,
}

/// The event log and its dead letters.
pub struct Events {
    store: Store,
    installations: Arc<Installations>,
}

impl Events {
    pub(crate) fn new(store: Store, installations: Arc<Installations>) -> Self {
        Self { store, installations }
    }

    /// A page of the tenant's events, newest first.
    pub async fn list(&self, tenant: &str, filter: &EventFilter) -> Result<Page<EventRow>, Error> {
        Ok(self.store.list_events(tenant, filter).await?)
    }

    /// One event with its deliveries.
    pub async fn get(&self, tenant: &str, id: &str) -> Result<EventDetails, Error> {
        let (event, deliveries) =
            self.store.event(tenant, id).await?.ok_or_else(|| Error::not_found(format!("no event {id:?}")))?;
        Ok(EventDetails { event, deliveries })
    }

    /// Sends a dead delivery again: back to pending, due now, with a fresh retry schedule (its
    /// attempts stay in its history).
    pub async fn redrive(&self, tenant: &str, id: &str) -> Result<(DeliveryRow, Vec<AttemptRow>), Error> {
        let missing = || Error::not_found(format!("no delivery {id:?}"));
        if !self.store.redrive(tenant, id, now_ms()).await? {
            let d = self.store.delivery(tenant, id).await?.ok_or_else(missing)?;
            return Err(Error::conflict(
                Conflict::NotDead,
                format!("delivery {id} is {}; only dead deliveries can be redriven", d.status.as_str()),
            ));
        }
        self.store.wake_dispatchers();
        let d = self.store.delivery(tenant, id).await?.ok_or_else(missing)?;
        let attempts = self.store.delivery_attempts(tenant, id).await?;
        Ok((d, attempts))
    }

    /// Sends every dead delivery to `installation` and/or of `route` again; how many.
    pub async fn redrive_all(
        &self,
        tenant: &str,
        installation: Option<&str>,
        route: Option<&str>,
    ) -> Result<u64, Error> {
        if installation.is_none() && route.is_none() {
            return Err(Error::invalid(
                Field::Body,
                "name the dead letters to redrive: {\"installation\": ID} and/or {\"route\": ID}",
            ));
        }
        if let Some(i) = installation {
            self.installations.get(tenant, i).await?;
        }
        if let Some(r) = route
            && self.store.route(tenant, r).await?.is_none()
            && !self.store.route_has_dead_deliveries(tenant, r).await?
        {
            return Err(Error::not_found(format!("no route {r:?} and no dead deliveries of it")));
        }
        let n = self.store.redrive_dead(tenant, installation, route, now_ms()).await?;
        if n > 0 {
            self.store.wake_dispatchers();
        }
        Ok(n)
    }
}

/// An event the host emits about one of a tenant's installations (its idempotency key is its id).
pub(crate) fn host_event(tenant: &str, installation: &str, event_type: &str, payload: Value) -> NewEvent {
    let id = patchbay_core::new_id("evt");
    NewEvent {
        idempotency_key: id.clone(),
        id,
        tenant: tenant.to_string(),
        source_installation: installation.to_string(),
        event_type: event_type.to_string(),
        subject: Some(installation.to_string()),
        payload: payload.to_string(),
        created_at_ms: now_ms(),
    }
}
