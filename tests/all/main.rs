//! End-to-end tests: real components (built by `build.rs`) against real HTTP servers on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod connectors;
mod dynamic;
mod egress;
mod group_commit;
mod harness;
mod outbox;
mod registry;
mod runtime;
mod sandbox;
mod secrets;
mod server;
mod store;
mod webhook_vectors;
