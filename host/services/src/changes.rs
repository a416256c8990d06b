//! [`ChangeLog`]: the host's own entries in an installation's operation-log timeline — changes
//! made through the API (versions, config, enablement, credentials: names only, never values),
//! OAuth and health transitions, sync runs ending.

use std::sync::Arc;

use patchbay_core::Scope;
use patchbay_core::log::{Level, LogEntry, Source};
use patchbay_runtime::capability::log::OperationLog;

use crate::oplog::StoreOperationLog;

/// Writes host entries into the durable operation log.
pub struct ChangeLog {
    oplog: Arc<StoreOperationLog>,
}

impl ChangeLog {
    pub(crate) fn new(oplog: Arc<StoreOperationLog>) -> Self {
        Self { oplog }
    }

    /// Adds an `info` entry from the host to the installation's timeline.
    pub(crate) fn record(&self, tenant: &str, installation: &str, message: String, fields: Vec<(String, String)>) {
        let entry =
            LogEntry { at_ms: patchbay_core::now_ms(), level: Level::Info, source: Source::Host, message, fields };
        self.oplog.append(&Scope::new(tenant, installation), vec![entry]);
    }

    /// Waits until every entry appended so far (by calls too) is stored.
    pub(crate) async fn flush(&self) {
        self.oplog.flush().await;
    }
}
