//! Events a connector emits during a call (the runtime's `events` capability hands them to an
//! event sink; the services route them into the outbox).

use crate::Scope;

/// An event accepted from a connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmittedEvent {
    /// The host's id for the event, assigned when the connector emits it.
    pub id: String,
    /// The installation that emitted it.
    pub scope: Scope,
    /// Dotted lower-case type, e.g. `payment.succeeded`.
    pub event_type: String,
    /// What the event is about, e.g. a payment id; `None` when the connector gave none.
    pub subject: Option<String>,
    /// JSON text.
    pub payload: String,
    /// Events with the same key from the same installation are delivered once; `None`: no
    /// deduplication.
    pub idempotency_key: Option<String>,
    /// Unix milliseconds.
    pub at_ms: i64,
}
