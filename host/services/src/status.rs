//! [`Status`]: the host's own condition — liveness with a database check, and its metrics in the
//! Prometheus text format.

use std::sync::Arc;

use patchbay_runtime::Runtime;
use patchbay_store::Store;

use crate::config_cache::ConfigWatch;
use crate::metrics::{Metrics, OutboxGauge, render_config_caches};
use crate::oplog::{OplogStats, StoreOperationLog};

/// Liveness and metrics.
pub struct Status {
    store: Store,
    runtime: Runtime,
    metrics: Arc<Metrics>,
    oplog: Arc<StoreOperationLog>,
    watch: Arc<ConfigWatch>,
}

impl Status {
    pub(crate) fn new(
        store: Store,
        runtime: Runtime,
        metrics: Arc<Metrics>,
        oplog: Arc<StoreOperationLog>,
        watch: Arc<ConfigWatch>,
    ) -> Self {
        Self { store, runtime, metrics, oplog, watch }
    }

    /// What the operation log wrote and dropped so far.
    pub fn oplog_stats(&self) -> OplogStats {
        self.oplog.stats()
    }

    /// Whether the database answers.
    pub async fn database_ok(&self) -> bool {
        self.store.ping().await.is_ok()
    }

    /// Every metric in the Prometheus text format (the outbox depth left out when the database
    /// cannot say).
    pub async fn metrics_text(&self) -> String {
        let outbox = match self.store.outbox_depth().await {
            Ok(d) => Some(OutboxGauge { pending: d.pending, leased: d.leased, dead: d.dead }),
            Err(e) => {
                tracing::warn!("reading the outbox depth for /metrics failed: {e}");
                None
            }
        };
        let mut out = self.metrics.render(self.runtime.cached_components(), outbox, self.oplog.stats());
        render_config_caches(&mut out, self.watch.fresh(), self.watch.invalidations());
        out
    }

    /// Whether the pooling allocator is in use (for the startup log).
    pub fn pooling(&self) -> bool {
        self.runtime.pooling()
    }
}
