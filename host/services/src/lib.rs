//! patchbay-services: the host's services on top of the store and the runtime — the connector
//! catalog, installations and their calls, webhook ingress, routing, outbox dispatch, data sync,
//! OAuth, health and provider budgets — and the durable backends the runtime's capabilities are
//! given (state, events, operation log).
//!
//! Services return the domain error (`patchbay_core::Error`); they know nothing of HTTP.

pub mod app;
pub mod config;
pub mod dispatch;
pub mod event_sink;
pub mod metrics;
pub mod oauth;
pub mod oplog;
pub mod quota;
pub mod rotation;
pub mod routing;
pub mod state;
pub mod sync;
