//! Connectors' emitted events (the `events` capability) go to the durable event log, where the
//! outbox picks them up. Idempotent per (installation, idempotency key): a repeat returns the id
//! of the first event, as the capability promises. The tenant's routes turn each new event into
//! deliveries in the same transaction.

use std::sync::Arc;

use patchbay_core::event::EmittedEvent;
use patchbay_runtime::capability::events::EventSink;
use patchbay_store::{NewEvent, Store, StoreError};

use crate::routing::Router;

/// [`EventSink`] over the store's event log.
pub(crate) struct StoreEventSink {
    store: Store,
    router: Arc<Router>,
}

impl StoreEventSink {
    pub(crate) fn new(store: Store, router: Arc<Router>) -> Self {
        Self { store, router }
    }
}

#[async_trait::async_trait]
impl EventSink for StoreEventSink {
    async fn emit(&self, event: EmittedEvent) -> Result<String, String> {
        let new = NewEvent {
            idempotency_key: event.idempotency_key.clone().unwrap_or_else(|| event.id.clone()),
            id: event.id,
            tenant: event.scope.tenant.to_string(),
            source_installation: event.scope.installation.to_string(),
            event_type: event.event_type,
            subject: event.subject,
            payload: event.payload,
            created_at_ms: event.at_ms,
        };
        let unavailable = |e: StoreError| {
            tracing::warn!("storing an emitted event failed: {e}");
            "the event log is unavailable".to_string()
        };
        let events = std::slice::from_ref(&new);
        let deliveries = self.router.route_events(events, patchbay_core::now_ms()).await.map_err(unavailable)?;
        let stored = self.store.emit_events(events, &deliveries).await.map_err(unavailable)?;
        if stored.iter().any(|e| !e.duplicate) && !deliveries.is_empty() {
            self.store.wake_dispatchers();
        }
        stored.into_iter().next().map(|e| e.id).ok_or_else(|| "the event log stored nothing".to_string())
    }
}
