//! Events a connector emits during a call (the runtime's `events` capability hands them to an
//! event sink; the services route them into the outbox).

use crate::Scope;

/// An event accepted from a connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmittedEvent {
    pub id: String,
    pub scope: Scope,
    pub event_type: String,
    pub subject: Option<String>,
    /// JSON text.
    pub payload: String,
    pub idempotency_key: Option<String>,
    /// Unix milliseconds.
    pub at_ms: i64,
}
