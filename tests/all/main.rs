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

/// The heaviest tests (hundreds of thousands of rows, thousands of webhooks, several hosts) take
/// turns: on a small machine, two of them side by side starve each other and the rest of the suite
/// of CPU. Take it first thing: `let _turn = crate::HEAVY.lock().await;`.
pub(crate) static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

mod api;
mod author;
mod caches;
mod connectors;
mod dynamic;
mod egress;
mod group_commit;
mod harness;
mod health;
mod hooks;
mod layers;
mod multihost;
mod oauth;
mod outbox;
mod polyglot;
mod quota_store;
mod quotas;
mod registry;
mod retention;
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
