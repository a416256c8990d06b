//! End-to-end tests: real components (built by `build.rs`) against real HTTP servers on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// Runs each scenario once per backend: `sqlite::name` and `postgres::name`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(patchbay_store::Backend::Sqlite).await
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(patchbay_store::Backend::Postgres).await
            })*
        }
    };
}

mod api;
mod connectors;
mod dynamic;
mod egress;
mod group_commit;
mod harness;
mod health;
mod hooks;
mod multihost;
mod oauth;
mod outbox;
mod quotas;
mod registry;
mod runtime;
mod sandbox;
mod secrets;
mod server;
mod standard_webhooks;
mod store;
mod sync;
mod sync_connectors;
mod sync_store;
mod webhook_vectors;
