//! Outbox delivery: the policy side of at-least-once delivery (the rows themselves live in
//! `patchbay_store`'s `outbox` module; the retry schedule is `patchbay_core::retry`).

pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use patchbay_store::{Settler, Store};

use crate::installations::Installations;
use crate::metrics::Metrics;
use crate::routing::Router;

/// What delivering needs: the outbox (and its batching settler), the destination installations,
/// the routes' retry schedules and the metrics.
pub(crate) struct Dispatcher {
    store: Store,
    settler: Settler,
    installations: Arc<Installations>,
    router: Arc<Router>,
    metrics: Arc<Metrics>,
}

impl Dispatcher {
    pub(crate) fn new(
        store: Store,
        installations: Arc<Installations>,
        router: Arc<Router>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let settler = Settler::spawn(store.clone());
        Self { store, settler, installations, router, metrics }
    }
}

/// How often housekeeping runs (forgetting aged-out webhook dedupe keys).
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(600);

/// Starts the background housekeeping task: webhook dedupe keys older than the configured
/// window are forgotten (the requests themselves stay in the event log).
pub(crate) fn spawn_housekeeping(store: Store, dedupe_window: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let window = i64::try_from(dedupe_window.as_millis()).unwrap_or(i64::MAX);
            let before = patchbay_core::now_ms().saturating_sub(window);
            match store.purge_dedupe_keys_before(before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!("forgot {n} webhook dedupe keys older than the dedupe window"),
                Err(e) => tracing::warn!("purging webhook dedupe keys failed: {e}"),
            }
            tokio::time::sleep(HOUSEKEEPING_EVERY).await;
        }
    })
}
