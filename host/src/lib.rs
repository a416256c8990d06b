//! patchbay: a multi-tenant host for WebAssembly connector components.
//!
//! Connectors are components built against the WIT package `patchbay:connector` (see `wit/`).
//! [`runtime::Runtime`] loads them (compiled once, cached by sha256 in memory and on disk) and runs
//! every call in a fresh, limited sandbox that can only use the [`capability`] imports the host
//! lends it: egress-checked HTTP, the installation's own credentials, structured logging, a small
//! state store and event emission.
//!
//! Around the runtime: [`store`] (SQLite or PostgreSQL), [`crypto`] (credential sealing, API
//! tokens), [`app`] (publishing, installations, calls), [`api`] (the admin HTTP API) and
//! [`client`] (the CLI's side of that API).

pub mod api;
pub mod app;
pub mod bench;
pub mod bindings;
pub mod capability;
pub mod client;
pub mod config;
pub mod crypto;
pub mod dispatch;
pub mod metrics;
pub mod oauth;
pub mod quota;
pub mod routing;
pub mod runtime;
pub mod sample;
pub mod store;
pub mod sync;
pub mod timefmt;

pub use capability::Scope;
pub use runtime::{CallError, CallReport, Installation, Limits, LoadedComponent, Runtime, RuntimeConfig, Services};
