//! `state`: the rows behind the connector `state` capability (the services adapt these methods
//! to the runtime's `StateStore` trait).
//!
//! A [`Store::state_set`] checks the installation's quota (key count, total bytes) and writes in
//! one transaction that is serialised per installation — by SQLite's write lock (`BEGIN
//! IMMEDIATE`) or a transaction-scoped advisory lock on PostgreSQL — so concurrent calls cannot
//! both squeeze under the limit. Sizes count key bytes plus value bytes, as the runtime's
//! in-memory state store does.

use patchbay_core::Scope;
use sqlx::Row;

use super::{Backend, Store, StoreError, now_ms};

/// What [`Store::state_set`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateWrite {
    /// Written.
    Stored,
    /// Refused: a new key beyond the installation's key count.
    TooManyKeys,
    /// Refused: the installation's state would exceed its byte limit.
    TooLarge,
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

impl Store {
    /// The value of `key`, if set.
    pub async fn state_get(&self, scope: &Scope, key: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar::<_, String>(
            "SELECT value FROM state WHERE tenant = $1 AND installation = $2 AND key = $3",
        )
        .bind(&*scope.tenant)
        .bind(&*scope.installation)
        .bind(key)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Sets `key` unless that would take the installation past `max_keys` keys or
    /// `max_total_bytes` bytes.
    pub async fn state_set(
        &self,
        scope: &Scope,
        key: &str,
        value: &str,
        max_keys: usize,
        max_total_bytes: usize,
    ) -> Result<StateWrite, StoreError> {
        let mut tx = self.begin_write().await?;
        if self.backend() == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(lock_key(scope)).execute(&mut *tx).await?;
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
        .await?;
        let count: i64 = usage.try_get("keys")?;
        let total: i64 = usage.try_get("bytes")?;
        let old: i64 = usage.try_get("old")?;
        let present = usage.try_get::<i64, _>("present")? > 0;

        let size = i64::try_from(key.len() + value.len()).unwrap_or(i64::MAX);
        if !present && count >= i64::try_from(max_keys).unwrap_or(i64::MAX) {
            return Ok(StateWrite::TooManyKeys);
        }
        if total - old + size > i64::try_from(max_total_bytes).unwrap_or(i64::MAX) {
            return Ok(StateWrite::TooLarge);
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
        .await?;
        tx.commit().await?;
        Ok(StateWrite::Stored)
    }

    /// Removes `key`; whether it was set.
    pub async fn state_delete(&self, scope: &Scope, key: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM state WHERE tenant = $1 AND installation = $2 AND key = $3")
            .bind(&*scope.tenant)
            .bind(&*scope.installation)
            .bind(key)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The installation's keys starting with `prefix`, sorted.
    pub async fn state_keys(&self, scope: &Scope, prefix: &str) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar::<_, String>(
            "SELECT key FROM state WHERE tenant = $1 AND installation = $2 AND substr(key, 1, length($3)) = $3 \
             ORDER BY key",
        )
        .bind(&*scope.tenant)
        .bind(&*scope.installation)
        .bind(prefix)
        .fetch_all(self.pool())
        .await?)
    }
}
