//! patchbay: the host's services, admin API and command line, on top of the layered crates
//! `patchbay-core`, `patchbay-crypto`, `patchbay-store` and `patchbay-runtime`.

pub mod api;
pub mod app;
pub mod bench;
pub mod client;
pub mod config;
pub mod dispatch;
pub mod event_sink;
pub mod metrics;
pub mod oauth;
pub mod oplog;
pub mod quota;
pub mod rotation;
pub mod routing;
pub mod sample;
pub mod state;
pub mod sync;
