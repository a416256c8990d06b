//! `api_keys`: admin API credentials. Only a hash of each secret is stored (see
//! `patchbay_crypto::hash_token`); `tenant = None` marks an operator key.

use std::fmt;

use sqlx::Row;
use sqlx::any::AnyRow;
use sqlx::error::ErrorKind;

use super::page::split_after;
use super::{Page, PageRequest, Store, StoreError, now_ms, violation};

/// A key to store. `secret_hash` is the hash of the token, never the token.
#[derive(Clone)]
pub struct NewApiKey {
    /// The key's id: the 12 hex characters in the middle of its token.
    pub id: String,
    /// The tenant the key belongs to; `None` for an operator key.
    pub tenant: Option<String>,
    /// A label for people.
    pub name: String,
    /// Lowercase hex SHA-256 of the whole token (`patchbay_crypto::hash_token`).
    pub secret_hash: String,
    /// What the key may do: `view`, `manage`, `credentials`, or `operator` for an operator key.
    pub scopes: Vec<String>,
}

/// A stored key.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// The key's id: the 12 hex characters in the middle of its token.
    pub id: String,
    /// The tenant the key belongs to; `None` for an operator key.
    pub tenant: Option<String>,
    /// A label for people.
    pub name: String,
    /// Lowercase hex SHA-256 of the whole token (`patchbay_crypto::hash_token`).
    pub secret_hash: String,
    /// What the key may do: `view`, `manage`, `credentials`, or `operator` for an operator key.
    pub scopes: Vec<String>,
    /// When the key was created, in unix milliseconds.
    pub created_at_ms: i64,
    /// Whether the key has been revoked; a revoked key authenticates nothing.
    pub revoked: bool,
}

impl fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewApiKey")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .field("created_at_ms", &self.created_at_ms)
            .field("revoked", &self.revoked)
            .finish_non_exhaustive()
    }
}

const COLUMNS: &str = "id, tenant, name, secret_hash, scopes_json, created_at, revoked_at";

fn key_from(row: &AnyRow) -> Result<ApiKey, StoreError> {
    let scopes_json: String = row.try_get("scopes_json")?;
    let id: String = row.try_get("id")?;
    let scopes = serde_json::from_str(&scopes_json)
        .map_err(|e| StoreError::Invalid(format!("api key {id} has unreadable scopes: {e}")))?;
    Ok(ApiKey {
        id,
        tenant: row.try_get("tenant")?,
        name: row.try_get("name")?,
        secret_hash: row.try_get("secret_hash")?,
        scopes,
        created_at_ms: row.try_get("created_at")?,
        revoked: row.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
    })
}

impl Store {
    /// Stores a key; `NotFound` when its tenant does not exist, `Conflict` when the id is taken.
    pub async fn create_api_key(&self, key: &NewApiKey) -> Result<ApiKey, StoreError> {
        let scopes_json = serde_json::to_string(&key.scopes)
            .map_err(|e| StoreError::Invalid(format!("cannot encode scopes: {e}")))?;
        let now = now_ms();
        let result = sqlx::query(
            "INSERT INTO api_keys (id, tenant, name, secret_hash, scopes_json, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&key.id)
        .bind(key.tenant.as_deref())
        .bind(&key.name)
        .bind(&key.secret_hash)
        .bind(&scopes_json)
        .bind(now)
        .execute(self.writer())
        .await;
        match result {
            Ok(_) => Ok(ApiKey {
                id: key.id.clone(),
                tenant: key.tenant.clone(),
                name: key.name.clone(),
                secret_hash: key.secret_hash.clone(),
                scopes: key.scopes.clone(),
                created_at_ms: now,
                revoked: false,
            }),
            Err(e) => Err(match violation(&e) {
                Some(ErrorKind::UniqueViolation) => StoreError::Conflict(format!("api key {} already exists", key.id)),
                Some(ErrorKind::ForeignKeyViolation) => {
                    StoreError::NotFound(format!("tenant {} not found", key.tenant.as_deref().unwrap_or("")))
                }
                _ => e.into(),
            }),
        }
    }

    /// The key with this id, revoked or not, whoever owns it (authentication looks keys up by id).
    pub async fn api_key(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(key_from).transpose()
    }

    /// A page of the keys of one tenant (`Some`) or of the operator keys (`None`), oldest first
    /// (by creation time, then id); `page.after` is the previous page's last `(created_at, id)`.
    pub async fn list_api_keys(
        &self,
        tenant: Option<&str>,
        page: &PageRequest<(i64, String)>,
    ) -> Result<Page<ApiKey>, StoreError> {
        let (at, id) = split_after(page);
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM api_keys \
             WHERE (($1 IS NULL AND tenant IS NULL) OR tenant = $1) \
               AND ($2 IS NULL OR (created_at, id) > ($2, $3)) \
             ORDER BY created_at, id LIMIT $4"
        ))
        .bind(tenant)
        .bind(at)
        .bind(id)
        .bind(page.fetch())
        .fetch_all(self.pool())
        .await?;
        Ok(Page::of(rows.iter().map(key_from).collect::<Result<_, _>>()?, page))
    }

    /// Revokes a key of `tenant` (`None`: an operator key). `true` when such a key exists (revoking
    /// twice is fine); `false` when it does not or belongs to someone else.
    pub async fn revoke_api_key(&self, tenant: Option<&str>, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $3) \
             WHERE id = $2 AND (($1 IS NULL AND tenant IS NULL) OR tenant = $1)",
        )
        .bind(tenant)
        .bind(id)
        .bind(now_ms())
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
