//! `credentials`: sealed credential values per installation field.
//!
//! The store only ever sees ciphertext (see `patchbay_crypto`); sealing binds each value to its
//! tenant, installation and field, so a row copied elsewhere does not open. Deletes are hard
//! deletes, and rows go with their installation (`ON DELETE CASCADE`).

use std::collections::BTreeSet;
use std::fmt;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, now_ms};

/// One sealed field of an installation's credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedField {
    /// The credential field's name, as the connector's manifest declares it.
    pub field: String,
    /// Id of the master key the value is sealed under.
    pub key_id: String,
    /// The sealed value (`patchbay_crypto::Sealed::ciphertext`).
    pub ciphertext: Vec<u8>,
}

/// A credential row addressed for re-encryption.
#[derive(Clone, PartialEq, Eq)]
pub struct CredentialRef {
    /// The tenant's id.
    pub tenant: String,
    /// The installation's id.
    pub installation: String,
    /// The credential field's name.
    pub field: String,
    /// Id of the master key the value is sealed under.
    pub key_id: String,
    /// The sealed value.
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for SealedField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedField")
            .field("field", &self.field)
            .field("key_id", &self.key_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

impl fmt::Debug for CredentialRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialRef")
            .field("tenant", &self.tenant)
            .field("installation", &self.installation)
            .field("field", &self.field)
            .field("key_id", &self.key_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

fn sealed_from(row: &AnyRow) -> Result<SealedField, sqlx::Error> {
    Ok(SealedField {
        field: row.try_get("field")?,
        key_id: row.try_get("key_id")?,
        ciphertext: row.try_get("ciphertext")?,
    })
}

/// Bumps the installation's revision; `false` when the tenant has no such installation.
async fn bump_revision(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    tenant: &str,
    installation: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("UPDATE installations SET revision = revision + 1, updated_at = $3 WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(installation)
            .bind(now)
            .execute(&mut **tx)
            .await?;
    Ok(done.rows_affected() > 0)
}

impl Store {
    /// Replaces the installation's whole credential set with `fields` in one transaction.
    /// `NotFound` when the installation is not the tenant's; `Invalid` when a field repeats.
    pub async fn put_credentials(
        &self,
        tenant: &str,
        installation: &str,
        fields: &[SealedField],
    ) -> Result<(), StoreError> {
        let mut seen = BTreeSet::new();
        if let Some(dup) = fields.iter().find(|f| !seen.insert(f.field.as_str())) {
            return Err(StoreError::Invalid(format!("credential field {:?} is given more than once", dup.field)));
        }
        let mut tx = self.begin_write().await?;
        let now = now_ms();
        // New credentials are a new revision of the installation (callers cache by revision).
        let bumped = bump_revision(&mut tx, tenant, installation, now).await?;
        if !bumped {
            return Err(StoreError::NotFound(format!("installation {installation} not found")));
        }
        sqlx::query("DELETE FROM credentials WHERE tenant = $1 AND installation = $2")
            .bind(tenant)
            .bind(installation)
            .execute(&mut *tx)
            .await?;
        for f in fields {
            sqlx::query(
                "INSERT INTO credentials (tenant, installation, field, key_id, ciphertext, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(tenant)
            .bind(installation)
            .bind(&f.field)
            .bind(&f.key_id)
            .bind(f.ciphertext.as_slice())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The installation's sealed fields, ordered by field; empty when it has none or is not the
    /// tenant's.
    pub async fn credentials(&self, tenant: &str, installation: &str) -> Result<Vec<SealedField>, StoreError> {
        let rows = sqlx::query(
            "SELECT field, key_id, ciphertext FROM credentials WHERE tenant = $1 AND installation = $2 ORDER BY field",
        )
        .bind(tenant)
        .bind(installation)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(sealed_from).collect::<Result<_, _>>()?)
    }

    /// Hard-deletes the installation's credentials; the number of fields removed.
    pub async fn delete_credentials(&self, tenant: &str, installation: &str) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM credentials WHERE tenant = $1 AND installation = $2")
            .bind(tenant)
            .bind(installation)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() > 0 {
            bump_revision(&mut tx, tenant, installation, now_ms()).await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Up to `limit` credential rows sealed under any key other than `key_id` (for rotation).
    pub async fn credentials_not_under(&self, key_id: &str, limit: u32) -> Result<Vec<CredentialRef>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant, installation, field, key_id, ciphertext FROM credentials WHERE key_id <> $1 \
             ORDER BY installation, field LIMIT $2",
        )
        .bind(key_id)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(CredentialRef {
                    tenant: row.try_get("tenant")?,
                    installation: row.try_get("installation")?,
                    field: row.try_get("field")?,
                    key_id: row.try_get("key_id")?,
                    ciphertext: row.try_get("ciphertext")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Replaces one row's ciphertext if it still holds `old.ciphertext` (compare-and-swap), so a
    /// concurrent `put_credentials` is never overwritten by a re-encryption of the old value.
    /// `true` when the row was replaced.
    pub async fn replace_ciphertext(
        &self,
        old: &CredentialRef,
        new_key_id: &str,
        new_ciphertext: &[u8],
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE credentials SET key_id = $5, ciphertext = $6, updated_at = $7 \
             WHERE tenant = $1 AND installation = $2 AND field = $3 AND ciphertext = $4",
        )
        .bind(&old.tenant)
        .bind(&old.installation)
        .bind(&old.field)
        .bind(old.ciphertext.as_slice())
        .bind(new_key_id)
        .bind(new_ciphertext)
        .bind(now_ms())
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
