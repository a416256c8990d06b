//! patchbay-services: the host's services on top of the store and the runtime — the connector
//! catalog, installations and their calls, webhook ingress, routing, outbox dispatch, data sync,
//! OAuth, health and provider budgets — and the durable backends the runtime's capabilities are
//! given (state, events, operation log).
//!
//! Services return the domain error (`patchbay_core::Error`); they know nothing of HTTP.

#![warn(missing_docs)]

pub mod access;
pub mod catalog;
pub(crate) mod changes;
pub mod config;
pub mod config_cache;
pub mod dispatch;
pub(crate) mod event_sink;
pub mod events;
pub mod health;
mod host;
pub mod ingress;
pub mod installations;
pub mod logs;
pub(crate) mod metrics;
pub mod oauth;
pub mod oplog;
pub mod quota;
pub mod retention;
pub mod rotation;
pub mod routes;
pub(crate) mod routing;
pub mod state;
pub mod status;
pub mod sync;
pub mod syncs;

pub use host::{Host, Startup};
