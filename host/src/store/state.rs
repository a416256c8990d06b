//! [`StoreStateStore`]: the durable backend of the `state` capability.
//!
//! A `set` checks the installation's quota (key count, total bytes) and writes in one
//! transaction that is serialised per installation — by SQLite's write lock (`BEGIN IMMEDIATE`)
//! or a transaction-scoped advisory lock on PostgreSQL — so concurrent calls cannot both squeeze
//! under the limit. Sizes count key bytes plus value bytes, as [`MemoryStateStore`] does.
//!
//! [`MemoryStateStore`]: crate::capability::state::MemoryStateStore

use sqlx::Row;

use super::{Backend, Store, StoreError, now_ms};
use crate::bindings::connector::patchbay::connector::state::StateError;
use crate::capability::Scope;
use crate::capability::state::{StateLimits, StateStore};

/// Connector state kept in the store's `state` table.
#[derive(Debug, Clone)]
pub struct StoreStateStore {
    store: Store,
}

impl StoreStateStore {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

fn unavailable(e: impl Into<StoreError>) -> StateError {
    let e: StoreError = e.into();
    tracing::warn!(error = %e, "state store failed");
    StateError::Unavailable("the state store is unavailable; retry later".into())
}

/// Advisory-lock key for one installation's state (PostgreSQL).
fn lock_key(scope: &Scope) -> i64 {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in ["patchbay state", &scope.tenant, &scope.installation] {
        ctx.update(part.as_bytes());
        ctx.update(&[0]);
    }
    let digest = ctx.finish();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    i64::from_be_bytes(first)
}

#[async_trait::async_trait]
impl StateStore for StoreStateStore {
    async fn get(&self, scope: &Scope, key: &str) -> Result<Option<String>, StateError> {
        sqlx::query_scalar::<_, String>("SELECT value FROM state WHERE tenant = $1 AND installation = $2 AND key = $3")
            .bind(&*scope.tenant)
            .bind(&*scope.installation)
            .bind(key)
            .fetch_optional(self.store.pool())
            .await
            .map_err(unavailable)
    }

    async fn set(&self, scope: &Scope, key: &str, value: &str, limits: &StateLimits) -> Result<(), StateError> {
        let mut tx = self.store.begin_write().await.map_err(unavailable)?;
        if self.store.backend() == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(lock_key(scope))
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        }
        let usage = sqlx::query(
            "SELECT COUNT(*) AS keys, CAST(COALESCE(SUM(size), 0) AS BIGINT) AS bytes, \
             CAST(COALESCE(SUM(CASE WHEN key = $3 THEN size ELSE 0 END), 0) AS BIGINT) AS old, \
             CAST(COALESCE(SUM(CASE WHEN key = $3 THEN 1 ELSE 0 END), 0) AS BIGINT) AS present \
             FROM state WHERE tenant = $1 AND installation = $2",
        )
        .bind(&*scope.tenant)
        .bind(&*scope.installation)
        .bind(key)
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable)?;
        let count: i64 = usage.try_get("keys").map_err(unavailable)?;
        let total: i64 = usage.try_get("bytes").map_err(unavailable)?;
        let old: i64 = usage.try_get("old").map_err(unavailable)?;
        let present = usage.try_get::<i64, _>("present").map_err(unavailable)? > 0;

        let size = i64::try_from(key.len() + value.len()).unwrap_or(i64::MAX);
        if !present && count >= i64::try_from(limits.max_keys).unwrap_or(i64::MAX) {
            return Err(StateError::TooLarge(format!("installation already holds {} keys", limits.max_keys)));
        }
        if total - old + size > i64::try_from(limits.max_total_bytes).unwrap_or(i64::MAX) {
            return Err(StateError::TooLarge(format!(
                "installation state would exceed {} bytes",
                limits.max_total_bytes
            )));
        }
        sqlx::query(
            "INSERT INTO state (tenant, installation, key, value, size, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (tenant, installation, key) DO UPDATE SET value = excluded.value, size = excluded.size, \
             updated_at = excluded.updated_at",
        )
        .bind(&*scope.tenant)
        .bind(&*scope.installation)
        .bind(key)
        .bind(value)
        .bind(size)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)
    }

    async fn delete(&self, scope: &Scope, key: &str) -> Result<bool, StateError> {
        let done = sqlx::query("DELETE FROM state WHERE tenant = $1 AND installation = $2 AND key = $3")
            .bind(&*scope.tenant)
            .bind(&*scope.installation)
            .bind(key)
            .execute(self.store.pool())
            .await
            .map_err(unavailable)?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_keys(&self, scope: &Scope, prefix: &str) -> Result<Vec<String>, StateError> {
        sqlx::query_scalar::<_, String>(
            "SELECT key FROM state WHERE tenant = $1 AND installation = $2 AND substr(key, 1, length($3)) = $3 \
             ORDER BY key",
        )
        .bind(&*scope.tenant)
        .bind(&*scope.installation)
        .bind(prefix)
        .fetch_all(self.store.pool())
        .await
        .map_err(unavailable)
    }
}
