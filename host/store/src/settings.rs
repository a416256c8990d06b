//! `settings`: small host-wide key/value facts (e.g. the operator token's hash, first-start marks).

use super::{Store, StoreError};

impl Store {
    /// The value stored under `key`, if any.
    pub async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let value = sqlx::query_scalar::<_, String>("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(self.pool())
            .await?;
        Ok(value)
    }

    /// Stores `value` under `key` unless the key is already set; `true` when this call stored it.
    /// Several hosts starting together agree on one value this way.
    pub async fn insert_setting_if_absent(&self, key: &str, value: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
