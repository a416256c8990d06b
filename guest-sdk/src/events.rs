//! Emission of typed events to the host's outbox and routing.

use serde::Serialize;

pub use crate::bindings::connector::patchbay::connector::events::{Event, EventError};
use crate::types::ConnectorError;

impl Event {
    /// An event of `event_type` (dotted, e.g. `payment.succeeded`) with `payload` as JSON.
    pub fn new<T: Serialize + ?Sized>(event_type: impl Into<String>, payload: &T) -> Result<Self, ConnectorError> {
        Ok(Self {
            event_type: event_type.into(),
            subject: None,
            payload: crate::to_json(payload)?,
            idempotency_key: None,
        })
    }

    /// What the event is about, e.g. a payment id.
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Events with the same key from the same installation are delivered once.
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

/// Emits `event`; returns the host's id for it.
pub fn emit(event: &Event) -> Result<String, ConnectorError> {
    Ok(crate::bindings::connector::patchbay::connector::events::emit(event)?)
}
