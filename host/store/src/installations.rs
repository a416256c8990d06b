//! `installations`: a tenant's configured use of one connector version.
//!
//! Every lookup is by `(tenant, id)`, so another tenant's installation is simply absent
//! (`None` / `false` / `NotFound`), never an authorization error that would confirm it exists.

use sqlx::Row;
use sqlx::any::AnyRow;
use sqlx::error::ErrorKind;

use super::{Page, PageRequest, Store, StoreError, db_message, flag, now_ms, owner_from_key, owner_key, violation};

/// An installation to create. Its connector version must be public or the tenant's own.
#[derive(Debug, Clone)]
pub struct NewInstallation {
    /// `ins_<hex>`: the installation's id.
    pub id: String,
    /// The tenant it belongs to.
    pub tenant: String,
    /// Display name, unique within the tenant.
    pub name: String,
    /// `None`: the public catalog.
    pub connector_owner: Option<String>,
    /// The connector's catalog id.
    pub connector_id: String,
    /// The connector version it runs.
    pub version: String,
    /// The provider API version in use; `None` when the connector declares none.
    pub api_version: Option<String>,
    /// The configuration, a JSON object checked against the connector's config schema.
    pub config_json: String,
    /// Per-installation limits, as JSON (`{}` for the host's defaults).
    pub limits_json: String,
    /// Installation whose credentials this one uses (bundle members).
    pub credentials_from: Option<String>,
    /// Whether calls are accepted.
    pub enabled: bool,
}

/// Changes to an installation; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct InstallationPatch {
    /// Another version of the same connector to run.
    pub version: Option<String>,
    /// `Some(None)` clears the api version (back to the connector's default).
    pub api_version: Option<Option<String>>,
    /// Whether calls are accepted.
    pub enabled: Option<bool>,
    /// `active` or `error` (set by health checks).
    pub status: Option<String>,
    /// A new configuration, a JSON object.
    pub config_json: Option<String>,
    /// New per-installation limits, as JSON.
    pub limits_json: Option<String>,
    /// A new display name, unique within the tenant.
    pub name: Option<String>,
}

/// A stored installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallationRow {
    /// `ins_<hex>`: the installation's id.
    pub id: String,
    /// The tenant it belongs to.
    pub tenant: String,
    /// Display name, unique within the tenant.
    pub name: String,
    /// `None`: the public catalog; `Some(tenant)`: that tenant's private connector.
    pub connector_owner: Option<String>,
    /// The connector's catalog id.
    pub connector_id: String,
    /// The connector version it runs.
    pub version: String,
    /// The provider API version in use; `None` when the connector declares none.
    pub api_version: Option<String>,
    /// Whether calls are accepted.
    pub enabled: bool,
    /// `active`, or `error` after repeated failed health checks.
    pub status: String,
    /// The configuration, a JSON object.
    pub config_json: String,
    /// Per-installation limits, as JSON (`{}` for the host's defaults).
    pub limits_json: String,
    /// Installation whose credentials this one uses (bundle members); `None` when it has its own.
    pub credentials_from: Option<String>,
    /// Starts at 1; every update adds one.
    pub revision: i64,
    /// When it was created, in unix milliseconds.
    pub created_at_ms: i64,
    /// When it was last changed, in unix milliseconds.
    pub updated_at_ms: i64,
}

/// Filters of [`Store::list_installations`]; `None` matches every installation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallationFilter {
    /// Installations of this connector (its catalog id).
    pub connector: Option<String>,
    /// Installations in this status (`active`, `error`).
    pub status: Option<String>,
    /// Installations whose name starts with this text (case-sensitive; the whole name matches
    /// too).
    pub name_prefix: Option<String>,
}

/// Status of a new installation.
pub const INITIAL_STATUS: &str = "active";

pub(super) const COLUMNS: &str = "id, tenant, name, connector_owner, connector_id, version, api_version, enabled, status, \
                       config_json, limits_json, credentials_from, revision, created_at, updated_at";

pub(super) fn installation_from(row: &AnyRow) -> Result<InstallationRow, sqlx::Error> {
    Ok(InstallationRow {
        id: row.try_get("id")?,
        tenant: row.try_get("tenant")?,
        name: row.try_get("name")?,
        connector_owner: owner_from_key(row.try_get("connector_owner")?),
        connector_id: row.try_get("connector_id")?,
        version: row.try_get("version")?,
        api_version: row.try_get("api_version")?,
        enabled: flag(row, "enabled")?,
        status: row.try_get("status")?,
        config_json: row.try_get("config_json")?,
        limits_json: row.try_get("limits_json")?,
        credentials_from: row.try_get("credentials_from")?,
        revision: row.try_get("revision")?,
        created_at_ms: row.try_get("created_at")?,
        updated_at_ms: row.try_get("updated_at")?,
    })
}

fn name_taken(tenant: &str, name: &str) -> StoreError {
    StoreError::Conflict(format!("tenant {tenant} already has an installation named {name:?}"))
}

async fn version_exists(
    conn: &mut sqlx::AnyConnection,
    owner: &str,
    connector: &str,
    version: &str,
) -> Result<bool, sqlx::Error> {
    let found: Option<String> = sqlx::query_scalar(
        "SELECT version FROM connector_versions WHERE owner = $1 AND connector_id = $2 AND version = $3",
    )
    .bind(owner)
    .bind(connector)
    .bind(version)
    .fetch_optional(conn)
    .await?;
    Ok(found.is_some())
}

impl Store {
    /// Creates an installation at revision 1, enabled, status `active`.
    ///
    /// `NotFound` when the tenant, the connector version (public or the tenant's own) or the
    /// `credentials_from` installation does not exist; `Conflict` when the name is taken.
    pub async fn create_installation(&self, new: &NewInstallation) -> Result<InstallationRow, StoreError> {
        let tenant = new.tenant.as_str();
        let owner = owner_key(new.connector_owner.as_deref());
        if !owner.is_empty() && owner != tenant {
            return Err(StoreError::NotFound(format!("connector {} not found", new.connector_id)));
        }
        let mut tx = self.begin_write().await?;
        let known: Option<String> =
            sqlx::query_scalar("SELECT id FROM tenants WHERE id = $1").bind(tenant).fetch_optional(&mut *tx).await?;
        if known.is_none() {
            return Err(StoreError::NotFound(format!("tenant {tenant} not found")));
        }
        if !version_exists(&mut tx, owner, &new.connector_id, &new.version).await? {
            return Err(StoreError::NotFound(format!("connector {} has no version {}", new.connector_id, new.version)));
        }
        if let Some(source) = new.credentials_from.as_deref() {
            let found: Option<String> =
                sqlx::query_scalar("SELECT id FROM installations WHERE tenant = $1 AND id = $2")
                    .bind(tenant)
                    .bind(source)
                    .fetch_optional(&mut *tx)
                    .await?;
            if found.is_none() {
                return Err(StoreError::NotFound(format!("installation {source} not found")));
            }
        }
        let taken: Option<String> = sqlx::query_scalar("SELECT id FROM installations WHERE tenant = $1 AND name = $2")
            .bind(tenant)
            .bind(&new.name)
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Err(name_taken(tenant, &new.name));
        }
        let now = now_ms();
        let row = sqlx::query(&format!(
            "INSERT INTO installations (id, tenant, name, connector_owner, connector_id, version, api_version, \
             enabled, status, config_json, limits_json, credentials_from, revision, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 1, $13, $13) RETURNING {COLUMNS}"
        ))
        .bind(&new.id)
        .bind(tenant)
        .bind(&new.name)
        .bind(owner)
        .bind(&new.connector_id)
        .bind(&new.version)
        .bind(new.api_version.as_deref())
        .bind(new.enabled)
        .bind(INITIAL_STATUS)
        .bind(&new.config_json)
        .bind(&new.limits_json)
        .bind(new.credentials_from.as_deref())
        .bind(now)
        .fetch_one(&mut *tx)
        .await;
        let row = match row {
            Ok(row) => installation_from(&row)?,
            Err(e) => {
                return Err(match violation(&e) {
                    Some(ErrorKind::UniqueViolation) => {
                        drop(tx);
                        if self.installation_exists(&new.id).await? {
                            StoreError::Conflict(format!("installation {} already exists", new.id))
                        } else {
                            name_taken(tenant, &new.name)
                        }
                    }
                    Some(_) => StoreError::Invalid(format!("cannot create installation: {}", db_message(&e))),
                    None => e.into(),
                });
            }
        };
        tx.commit().await?;
        Ok(row)
    }

    async fn installation_exists(&self, id: &str) -> Result<bool, StoreError> {
        let found: Option<String> = sqlx::query_scalar("SELECT id FROM installations WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(found.is_some())
    }

    /// A page of the tenant's installations matching `filter`, oldest first (by creation time,
    /// then id); `page.after` is the previous page's last `(created_at, id)`.
    pub async fn list_installations(
        &self,
        tenant: &str,
        filter: &InstallationFilter,
        page: &PageRequest<(i64, String)>,
    ) -> Result<Page<InstallationRow>, StoreError> {
        let mut sql = format!("SELECT {COLUMNS} FROM installations WHERE tenant = $1");
        let mut n = 1;
        let mut param = || {
            n += 1;
            format!("${n}")
        };
        if filter.connector.is_some() {
            sql.push_str(&format!(" AND connector_id = {}", param()));
        }
        if filter.status.is_some() {
            sql.push_str(&format!(" AND status = {}", param()));
        }
        // A prefix of characters (both backends count `substr` in characters), compared exactly:
        // LIKE would ignore case on SQLite and need its wildcards escaped.
        if filter.name_prefix.is_some() {
            let (len, prefix) = (param(), param());
            sql.push_str(&format!(" AND substr(name, 1, {len}) = {prefix}"));
        }
        if page.after.is_some() {
            let (at, id) = (param(), param());
            sql.push_str(&format!(" AND (created_at, id) > ({at}, {id})"));
        }
        sql.push_str(&format!(" ORDER BY created_at, id LIMIT {}", param()));
        let mut query = sqlx::query(&sql).bind(tenant);
        if let Some(c) = &filter.connector {
            query = query.bind(c);
        }
        if let Some(s) = &filter.status {
            query = query.bind(s);
        }
        if let Some(p) = &filter.name_prefix {
            // An INTEGER: PostgreSQL has no `substr(text, integer, bigint)`.
            query = query.bind(i32::try_from(p.chars().count()).unwrap_or(i32::MAX)).bind(p);
        }
        if let Some((at, id)) = &page.after {
            query = query.bind(*at).bind(id);
        }
        let rows = query.bind(page.fetch()).fetch_all(self.pool()).await?;
        Ok(Page::of(rows.iter().map(installation_from).collect::<Result<_, _>>()?, page))
    }

    /// The installation `id` if it belongs to `tenant`.
    pub async fn installation(&self, tenant: &str, id: &str) -> Result<Option<InstallationRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM installations WHERE tenant = $1 AND id = $2"))
            .bind(tenant)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(installation_from).transpose()?)
    }

    /// Applies `patch`, adds one to the revision and sets `updated_at`, in one statement, so
    /// concurrent patches of different fields both land.
    ///
    /// `NotFound` when the installation is not the tenant's or the new version is not published
    /// for its connector; `Conflict` when the new name is taken.
    pub async fn update_installation(
        &self,
        tenant: &str,
        id: &str,
        patch: &InstallationPatch,
    ) -> Result<InstallationRow, StoreError> {
        let mut tx = self.begin_write().await?;
        let current = sqlx::query(&format!("SELECT {COLUMNS} FROM installations WHERE tenant = $1 AND id = $2"))
            .bind(tenant)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(current) = current.as_ref().map(installation_from).transpose()? else {
            return Err(StoreError::NotFound(format!("installation {id} not found")));
        };
        if let Some(version) = patch.version.as_deref() {
            let owner = owner_key(current.connector_owner.as_deref());
            if !version_exists(&mut tx, owner, &current.connector_id, version).await? {
                return Err(StoreError::NotFound(format!(
                    "connector {} has no version {version}",
                    current.connector_id
                )));
            }
        }
        let (set_api, api_version) = match &patch.api_version {
            Some(v) => (true, v.as_deref()),
            None => (false, None),
        };
        let row = sqlx::query(&format!(
            "UPDATE installations SET name = COALESCE($3, name), version = COALESCE($4, version), \
             api_version = CASE WHEN $5 THEN $6 ELSE api_version END, enabled = COALESCE($7, enabled), \
             status = COALESCE($8, status), config_json = COALESCE($9, config_json), \
             limits_json = COALESCE($10, limits_json), revision = revision + 1, updated_at = $11 \
             WHERE tenant = $1 AND id = $2 RETURNING {COLUMNS}"
        ))
        .bind(tenant)
        .bind(id)
        .bind(patch.name.as_deref())
        .bind(patch.version.as_deref())
        .bind(set_api)
        .bind(api_version)
        .bind(patch.enabled)
        .bind(patch.status.as_deref())
        .bind(patch.config_json.as_deref())
        .bind(patch.limits_json.as_deref())
        .bind(now_ms())
        .fetch_optional(&mut *tx)
        .await;
        let row = match row {
            Ok(Some(row)) => installation_from(&row)?,
            Ok(None) => return Err(StoreError::NotFound(format!("installation {id} not found"))),
            Err(e) => {
                return Err(match violation(&e) {
                    Some(ErrorKind::UniqueViolation) => name_taken(tenant, patch.name.as_deref().unwrap_or_default()),
                    Some(ErrorKind::ForeignKeyViolation) => StoreError::NotFound(format!(
                        "connector {} has no version {}",
                        current.connector_id,
                        patch.version.as_deref().unwrap_or_default()
                    )),
                    Some(_) => StoreError::Invalid(format!("cannot update installation {id}: {}", db_message(&e))),
                    None => e.into(),
                });
            }
        };
        tx.commit().await?;
        Ok(row)
    }

    /// Deletes the installation with its credentials, state and operation logs in one
    /// transaction. `false` when it is not the tenant's.
    pub async fn delete_installation(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        for table in ["credentials", "state", "operation_logs"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE tenant = $1 AND installation = $2"))
                .bind(tenant)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let done = sqlx::query("DELETE FROM installations WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .execute(&mut *tx)
            .await;
        let done = match done {
            Ok(done) => done,
            Err(e) if violation(&e) == Some(ErrorKind::ForeignKeyViolation) => {
                return Err(StoreError::Conflict(format!(
                    "installation {id} is still referenced by other rows: {}",
                    db_message(&e)
                )));
            }
            Err(e) => return Err(e.into()),
        };
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }
}
