//! Data sync: connectors stream batches from external systems into the records store (imports)
//! or write the store's changes to them (exports), resumably, with progress, field mappings and
//! schedules.
//!
//! - [`engine`] runs one claimed run batch by batch; each batch commits atomically with its cursor.
//! - `worker` claims due runs on this host and fires due schedules.
//! - `mapping` is the per installation + entity field mapping the host applies to records.
//! - `cron` parses schedules (an interval or a 5-field cron expression) and finds the next firing.
//!
//! What is stored, and how one batch becomes one transaction, is in [`patchbay_store::sync`].

pub(crate) mod cron;
pub mod engine;
pub(crate) mod mapping;
pub(crate) mod worker;

pub use engine::SyncConfig;

use std::sync::Arc;

use patchbay_runtime::Runtime;
use patchbay_store::Store;
use tokio::sync::Notify;

use crate::changes::ChangeLog;
use crate::installations::Installations;
use crate::metrics::Metrics;
use crate::oauth::Tokens;
use crate::routing::Router;

/// What running syncs needs from the rest of the host.
pub(crate) struct EngineDeps {
    pub store: Store,
    pub installations: Arc<Installations>,
    pub tokens: Arc<Tokens>,
    pub runtime: Runtime,
    pub router: Arc<Router>,
    pub metrics: Arc<Metrics>,
    pub changes: Arc<ChangeLog>,
    /// Woken when a run is queued through this host.
    pub wake: Arc<Notify>,
}

/// Runs claimed syncs: the records store, the installations to call, OAuth refreshes after a
/// 401, the routes a change event takes, and where runs end up recorded.
pub(crate) struct SyncEngine {
    store: Store,
    installations: Arc<Installations>,
    tokens: Arc<Tokens>,
    runtime: Runtime,
    router: Arc<Router>,
    metrics: Arc<Metrics>,
    changes: Arc<ChangeLog>,
    wake: Arc<Notify>,
}

impl SyncEngine {
    pub(crate) fn new(d: EngineDeps) -> Self {
        Self {
            store: d.store,
            installations: d.installations,
            tokens: d.tokens,
            runtime: d.runtime,
            router: d.router,
            metrics: d.metrics,
            changes: d.changes,
            wake: d.wake,
        }
    }
}
