//! [`Logs`]: reading an installation's operation log — guest logs, stdout/stderr, every HTTP
//! request, call outcomes and the host's own entries, never secrets.

use std::sync::Arc;

use patchbay_core::error::Error;
use patchbay_store::{LogQuery, LogRecord, Page, Store};

use crate::changes::ChangeLog;
use crate::installations::Installations;

/// Reads operation logs.
pub struct Logs {
    store: Store,
    installations: Arc<Installations>,
    changes: Arc<ChangeLog>,
}

impl Logs {
    pub(crate) fn new(store: Store, installations: Arc<Installations>, changes: Arc<ChangeLog>) -> Self {
        Self { store, installations, changes }
    }

    /// A page of an installation's entries, oldest first, including everything logged before
    /// this call (buffered entries are flushed first).
    pub async fn list(&self, tenant: &str, installation: &str, query: &LogQuery) -> Result<Page<LogRecord>, Error> {
        self.installations.get(tenant, installation).await?;
        self.changes.flush().await;
        Ok(self.store.logs(tenant, installation, query).await?)
    }
}
