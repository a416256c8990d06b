//! [`DurableState`]: the `state` capability's backend over the store's `state` table.

use patchbay_core::Scope;
use patchbay_runtime::capability::state::{StateError, StateLimits, StateStore};
use patchbay_store::{StateWrite, Store, StoreError};

/// Connector state kept in the database (see `patchbay_store`'s `state_*` methods for how a write
/// is checked against the installation's quota atomically).
#[derive(Debug, Clone)]
pub struct DurableState {
    store: Store,
}

impl DurableState {
    /// State backed by `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

/// A store failure as the guest sees it: retry later (the details go to the host's log).
fn unavailable(e: StoreError) -> StateError {
    tracing::warn!(error = %e, "state store failed");
    StateError::Unavailable("the state store is unavailable; retry later".into())
}

#[async_trait::async_trait]
impl StateStore for DurableState {
    async fn get(&self, scope: &Scope, key: &str) -> Result<Option<String>, StateError> {
        self.store.state_get(scope, key).await.map_err(unavailable)
    }

    async fn set(&self, scope: &Scope, key: &str, value: &str, limits: &StateLimits) -> Result<(), StateError> {
        match self.store.state_set(scope, key, value, limits.max_keys, limits.max_total_bytes).await {
            Ok(StateWrite::Stored) => Ok(()),
            Ok(StateWrite::TooManyKeys) => {
                Err(StateError::TooLarge(format!("installation already holds {} keys", limits.max_keys)))
            }
            Ok(StateWrite::TooLarge) => {
                Err(StateError::TooLarge(format!("installation state would exceed {} bytes", limits.max_total_bytes)))
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn delete(&self, scope: &Scope, key: &str) -> Result<bool, StateError> {
        self.store.state_delete(scope, key).await.map_err(unavailable)
    }

    async fn list_keys(&self, scope: &Scope, prefix: &str) -> Result<Vec<String>, StateError> {
        self.store.state_keys(scope, prefix).await.map_err(unavailable)
    }
}
