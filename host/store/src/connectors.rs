//! The connector catalog: `connectors`, `connector_versions` and the content-addressed
//! `component_blobs` they point to.
//!
//! A connector belongs to the public catalog (owner `''`, published by the operator) or privately
//! to one tenant. A tenant sees the public catalog plus its own private connectors, and its private
//! connector shadows a public one with the same id; the operator sees everything. Published versions
//! are immutable: re-publishing identical bytes is a no-op, other bytes are a conflict.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::version_order::compare_versions;
use super::{Page, PageRequest, Store, StoreError, db_message, now_ms, owner_from_key, owner_key, violation};

/// Who is looking at the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    /// Sees the public catalog and every tenant's private connectors. Looking up one id, the
    /// public connector wins; without one, the private connector of the tenant first by id.
    Operator,
    /// Sees the public catalog and this tenant's private connectors, which shadow public ones.
    Tenant(String),
}

impl Viewer {
    fn tenant(&self) -> Option<&str> {
        match self {
            Viewer::Operator => None,
            Viewer::Tenant(t) => Some(t),
        }
    }

    /// ORDER BY clause that puts the connector this viewer resolves an id to first.
    fn preference(&self) -> &'static str {
        match self {
            Viewer::Operator => "CASE WHEN owner = '' THEN 0 ELSE 1 END, owner",
            Viewer::Tenant(_) => "CASE WHEN owner = '' THEN 1 ELSE 0 END, owner",
        }
    }
}

/// A version to publish, with the catalog metadata from its manifest.
#[derive(Debug, Clone)]
pub struct NewVersion {
    /// `None`: the public catalog; `Some(tenant)`: that tenant's private connector.
    pub owner: Option<String>,
    /// The connector's catalog id, e.g. `github`.
    pub connector_id: String,
    /// Semantic version of the package, without build metadata.
    pub version: String,
    /// sha256 of the component bytes, lowercase hex.
    pub digest: String,
    /// The package's manifest, as JSON.
    pub manifest_json: String,
    /// The hub the connector belongs to, e.g. `payment-gateway`.
    pub category: String,
    /// Display name.
    pub title: String,
    /// One or a few sentences for the catalog.
    pub description: String,
    /// Who offers the connected service, e.g. `Stripe`.
    pub provider: String,
    /// The bundle the connector belongs to; `None` when it stands alone.
    pub bundle_id: Option<String>,
    /// Size of the component, in bytes.
    pub size: i64,
    /// Key id of the trusted publisher key that signed the package.
    pub signed_by: Option<String>,
    /// `Ready` when the component compiled before the version was stored, `Compiling` when its
    /// compile goes on in the background.
    pub state: VersionState,
}

/// Whether a version's component can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionState {
    /// Its compile has not finished yet; calls are refused until it has.
    Compiling,
    /// Compiled and linked: installations of it run.
    Ready,
    /// Its compile or link failed (`state_message` says why); a new upload may replace it.
    Failed,
}

impl VersionState {
    /// `compiling`, `ready` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            VersionState::Compiling => "compiling",
            VersionState::Ready => "ready",
            VersionState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "compiling" => VersionState::Compiling,
            "failed" => VersionState::Failed,
            _ => VersionState::Ready,
        }
    }
}

/// What [`Store::publish`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishOutcome {
    /// The version is new.
    Created,
    /// The same bytes were already published under this version.
    Unchanged,
}

/// Filters for [`Store::list_connectors`].
#[derive(Debug, Clone, Default)]
pub struct ConnectorFilter {
    /// Exact category (e.g. `notification-provider`).
    pub category: Option<String>,
    /// Case-insensitive substring of the id, title, description or provider.
    pub search: Option<String>,
}

/// A connector with its versions, as a catalog listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorSummary {
    /// `None` for the public catalog.
    pub owner: Option<String>,
    /// The connector's catalog id.
    pub id: String,
    /// Display name, from the highest version published.
    pub title: String,
    /// One or a few sentences for the catalog.
    pub description: String,
    /// The hub the connector belongs to, e.g. `payment-gateway`.
    pub category: String,
    /// Who offers the connected service.
    pub provider: String,
    /// The bundle the connector belongs to; `None` when it stands alone.
    pub bundle_id: Option<String>,
    /// The highest version that is not deprecated, or the highest version when all are.
    pub latest_version: String,
    /// Every published version, highest first.
    pub versions: Vec<String>,
}

/// One published version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRow {
    /// `None`: the public catalog; `Some(tenant)`: that tenant's private connector.
    pub owner: Option<String>,
    /// The connector's catalog id.
    pub connector_id: String,
    /// Semantic version of the package.
    pub version: String,
    /// sha256 of the component bytes, lowercase hex (the key of its `component_blobs` row).
    pub digest: String,
    /// The package's manifest, as JSON.
    pub manifest_json: String,
    /// Size of the component, in bytes.
    pub size: i64,
    /// Key id of the trusted publisher key that signed the package; `None` when unsigned.
    pub signed_by: Option<String>,
    /// When the version was published, in unix milliseconds.
    pub published_at_ms: i64,
    /// When the version was deprecated, in unix milliseconds; `None` while it is not.
    pub deprecated_at_ms: Option<i64>,
    /// Date (YYYY-MM-DD) after which the version may stop being served.
    pub sunset: Option<String>,
    /// Why the version is deprecated and what to use instead; `None` when not given.
    pub deprecation_message: Option<String>,
    /// Whether its component can run.
    pub state: VersionState,
    /// Why the compile failed (`Failed`); `None` otherwise.
    pub state_message: Option<String>,
    /// When the state was last set, in unix milliseconds (a compile's start while `Compiling`).
    pub state_at_ms: Option<i64>,
}

const VERSION_COLUMNS: &str = "owner, connector_id, version, digest, manifest_json, size, signed_by, published_at, \
                               deprecated_at, sunset, deprecation_message, state, state_message, state_at";

const CONNECTOR_COLUMNS: &str = "owner, id, title, description, category, provider, bundle_id";

fn version_from(row: &AnyRow) -> Result<VersionRow, sqlx::Error> {
    Ok(VersionRow {
        owner: owner_from_key(row.try_get("owner")?),
        connector_id: row.try_get("connector_id")?,
        version: row.try_get("version")?,
        digest: row.try_get("digest")?,
        manifest_json: row.try_get("manifest_json")?,
        size: row.try_get("size")?,
        signed_by: row.try_get("signed_by")?,
        published_at_ms: row.try_get("published_at")?,
        deprecated_at_ms: row.try_get("deprecated_at")?,
        sunset: row.try_get("sunset")?,
        deprecation_message: row.try_get("deprecation_message")?,
        state: VersionState::parse(&row.try_get::<String, _>("state")?),
        state_message: row.try_get("state_message")?,
        state_at_ms: row.try_get("state_at")?,
    })
}

/// A connector row before its versions are attached.
struct ConnectorHead {
    owner: String,
    id: String,
    title: String,
    description: String,
    category: String,
    provider: String,
    bundle_id: Option<String>,
}

fn head_from(row: &AnyRow) -> Result<ConnectorHead, sqlx::Error> {
    Ok(ConnectorHead {
        owner: row.try_get("owner")?,
        id: row.try_get("id")?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        category: row.try_get("category")?,
        provider: row.try_get("provider")?,
        bundle_id: row.try_get("bundle_id")?,
    })
}

/// A version and whether it is deprecated.
type VersionFlag = (String, bool);

/// Builds a summary from a connector and its versions.
fn summarize(head: ConnectorHead, mut versions: Vec<VersionFlag>) -> ConnectorSummary {
    versions.sort_by(|a, b| compare_versions(&b.0, &a.0));
    let latest = versions
        .iter()
        .find(|(_, deprecated)| !deprecated)
        .or_else(|| versions.first())
        .map(|(v, _)| v.clone())
        .unwrap_or_default();
    ConnectorSummary {
        owner: owner_from_key(head.owner),
        id: head.id,
        title: head.title,
        description: head.description,
        category: head.category,
        provider: head.provider,
        bundle_id: head.bundle_id,
        latest_version: latest,
        versions: versions.into_iter().map(|(v, _)| v).collect(),
    }
}

/// `%term%` for a case-insensitive LIKE with `\` as the escape character.
fn like_pattern(term: &str) -> String {
    let mut out = String::with_capacity(term.len() + 2);
    out.push('%');
    for c in term.to_lowercase().chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Lowercase hex sha256 of `bytes`.
fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

impl Store {
    /// Publishes a version in one transaction: stores the bytes (once per digest), creates or
    /// refreshes the connector row and inserts the version. The connector's title, description,
    /// category, provider and bundle follow the highest version published.
    ///
    /// `Conflict` when the version exists with other bytes, `Invalid` when `digest` is not the
    /// sha256 of `bytes` or a constraint refuses the row, `NotFound` for an unknown owner tenant.
    pub async fn publish(&self, new: &NewVersion, bytes: &[u8]) -> Result<PublishOutcome, StoreError> {
        let actual = sha256_hex(bytes);
        if !actual.eq_ignore_ascii_case(&new.digest) {
            return Err(StoreError::Invalid(format!(
                "digest {} does not match the component bytes (sha256 {actual})",
                new.digest
            )));
        }
        let owner = owner_key(new.owner.as_deref());
        let (id, version) = (new.connector_id.as_str(), new.version.as_str());
        let immutable = || {
            StoreError::Conflict(format!(
                "{id}@{version} is already published with different content; published versions are immutable"
            ))
        };
        let mut tx = self.begin_write().await?;

        let existing: Option<(String, String)> = sqlx::query_as(
            "SELECT digest, state FROM connector_versions WHERE owner = $1 AND connector_id = $2 AND version = $3",
        )
        .bind(owner)
        .bind(id)
        .bind(version)
        .fetch_optional(&mut *tx)
        .await?;
        // A version whose compile failed never ran: a new upload of it replaces it.
        let replaces_failed = matches!(&existing, Some((_, state)) if state == VersionState::Failed.as_str());
        if let Some((digest, _)) = existing
            && !replaces_failed
        {
            return if digest == actual { Ok(PublishOutcome::Unchanged) } else { Err(immutable()) };
        }
        if let Some(tenant) = new.owner.as_deref() {
            let known: Option<String> = sqlx::query_scalar("SELECT id FROM tenants WHERE id = $1")
                .bind(tenant)
                .fetch_optional(&mut *tx)
                .await?;
            if known.is_none() {
                return Err(StoreError::NotFound(format!("tenant {tenant} not found")));
            }
        }

        let now = now_ms();
        let size = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO component_blobs (digest, bytes, size, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (digest) DO NOTHING",
        )
        .bind(&actual)
        .bind(bytes)
        .bind(size)
        .bind(now)
        .execute(&mut *tx)
        .await?;

        let others: Vec<String> =
            sqlx::query_scalar("SELECT version FROM connector_versions WHERE owner = $1 AND connector_id = $2")
                .bind(owner)
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
        let highest = others.iter().all(|v| compare_versions(v, version) == Ordering::Less);
        let on_conflict = if highest {
            "title = excluded.title, description = excluded.description, category = excluded.category, \
             provider = excluded.provider, bundle_id = excluded.bundle_id, updated_at = excluded.updated_at"
        } else {
            "updated_at = excluded.updated_at"
        };
        sqlx::query(&format!(
            "INSERT INTO connectors (owner, id, title, description, category, provider, bundle_id, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
             ON CONFLICT (owner, id) DO UPDATE SET {on_conflict}"
        ))
        .bind(owner)
        .bind(id)
        .bind(&new.title)
        .bind(&new.description)
        .bind(&new.category)
        .bind(&new.provider)
        .bind(new.bundle_id.as_deref())
        .bind(now)
        .execute(&mut *tx)
        .await?;

        let on_conflict = if replaces_failed {
            "DO UPDATE SET digest = excluded.digest, manifest_json = excluded.manifest_json, size = excluded.size, \
             signed_by = excluded.signed_by, published_at = excluded.published_at, state = excluded.state, \
             state_message = NULL, state_at = excluded.state_at WHERE connector_versions.state = 'failed'"
        } else {
            "DO NOTHING"
        };
        let inserted = sqlx::query(&format!(
            "INSERT INTO connector_versions (owner, connector_id, version, digest, manifest_json, size, signed_by, \
             published_at, state, state_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $8) \
             ON CONFLICT (owner, connector_id, version) {on_conflict}"
        ))
        .bind(owner)
        .bind(id)
        .bind(version)
        .bind(&actual)
        .bind(&new.manifest_json)
        .bind(new.size)
        .bind(new.signed_by.as_deref())
        .bind(now)
        .bind(new.state.as_str())
        .execute(&mut *tx)
        .await;
        let inserted = match inserted {
            Ok(done) => done.rows_affected(),
            Err(e) if violation(&e).is_some() => {
                return Err(StoreError::Invalid(format!("cannot publish {id}@{version}: {}", db_message(&e))));
            }
            Err(e) => return Err(e.into()),
        };
        if inserted == 0 {
            // Published concurrently by someone else between our check and our insert.
            let digest: Option<String> = sqlx::query_scalar(
                "SELECT digest FROM connector_versions WHERE owner = $1 AND connector_id = $2 AND version = $3",
            )
            .bind(owner)
            .bind(id)
            .bind(version)
            .fetch_optional(&mut *tx)
            .await?;
            return if digest.as_deref() == Some(actual.as_str()) {
                Ok(PublishOutcome::Unchanged)
            } else {
                Err(immutable())
            };
        }
        tx.commit().await?;
        Ok(PublishOutcome::Created)
    }

    /// Moves a version out of `Compiling` (to `Ready`, or to `Failed` with `message`), if it is
    /// still compiling these bytes. Returns whether it did: a version re-uploaded or taken over
    /// meanwhile is left alone.
    pub async fn finish_compile(
        &self,
        owner: Option<&str>,
        id: &str,
        version: &str,
        digest: &str,
        state: VersionState,
        message: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE connector_versions SET state = $5, state_message = $6, state_at = $7 \
             WHERE owner = $1 AND connector_id = $2 AND version = $3 AND digest = $4 AND state = 'compiling'",
        )
        .bind(owner_key(owner))
        .bind(id)
        .bind(version)
        .bind(digest)
        .bind(state.as_str())
        .bind(message)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Versions still `Compiling` whose state was set before `before_ms`: their compile was
    /// started by a host that has stopped (or is past its compile timeout). At most `limit`.
    pub async fn stale_compiles(&self, before_ms: i64, limit: i64) -> Result<Vec<VersionRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM connector_versions WHERE state = 'compiling' AND state_at < $1 \
             ORDER BY state_at LIMIT $2"
        ))
        .bind(before_ms)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(version_from).collect::<Result<_, _>>()?)
    }

    /// Takes over a stale compile: sets its `state_at` to now if it is still what `seen` read,
    /// so of several hosts trying at once exactly one gets it. Returns whether this one did.
    pub async fn claim_compile(&self, seen: &VersionRow) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE connector_versions SET state_at = $5 WHERE owner = $1 AND connector_id = $2 AND version = $3 \
             AND state = 'compiling' AND state_at = $4",
        )
        .bind(owner_key(seen.owner.as_deref()))
        .bind(&seen.connector_id)
        .bind(&seen.version)
        .bind(seen.state_at_ms)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// A page of the connectors visible to `viewer` that match `filter`, ordered by id, then
    /// owner (public before private for the operator); `page.after` is the previous page's last
    /// `(id, owner)`, the owner `""` for the public catalog.
    pub async fn list_connectors(
        &self,
        viewer: Viewer,
        filter: &ConnectorFilter,
        page: &PageRequest<(String, String)>,
    ) -> Result<Page<ConnectorSummary>, StoreError> {
        let pattern = filter.search.as_deref().filter(|s| !s.is_empty()).map(like_pattern);
        let after = if page.after.is_some() { " AND (c.id, c.owner) > ($4, $5)" } else { "" };
        let sql = format!(
            r"SELECT c.owner, c.id, c.title, c.description, c.category, c.provider, c.bundle_id
              FROM connectors c
              WHERE ($1 IS NULL OR c.owner = '' OR c.owner = $1)
                AND NOT (c.owner = '' AND $1 IS NOT NULL
                         AND EXISTS (SELECT 1 FROM connectors p WHERE p.owner = $1 AND p.id = c.id))
                AND ($2 IS NULL OR c.category = $2)
                AND ($3 IS NULL
                     OR LOWER(c.id) LIKE $3 ESCAPE '\'
                     OR LOWER(c.title) LIKE $3 ESCAPE '\'
                     OR LOWER(c.description) LIKE $3 ESCAPE '\'
                     OR LOWER(c.provider) LIKE $3 ESCAPE '\')
                AND EXISTS (SELECT 1 FROM connector_versions v WHERE v.owner = c.owner AND v.connector_id = c.id)
                {after}
              ORDER BY c.id, c.owner LIMIT {}",
            page.fetch()
        );
        let mut query =
            sqlx::query(&sql).bind(viewer.tenant()).bind(filter.category.as_deref()).bind(pattern.as_deref());
        if let Some((id, owner)) = &page.after {
            query = query.bind(id).bind(owner);
        }
        let rows = query.fetch_all(self.pool()).await?;
        let heads = Page::of(rows.iter().map(head_from).collect::<Result<Vec<_>, _>>()?, page);
        let Some(last) = heads.items.last() else { return Ok(heads.map(|h| summarize(h, Vec::new()))) };

        // The versions of the page's connectors: those in its (id, owner) range the viewer sees.
        let first = if page.after.is_some() { " AND (connector_id, owner) > ($4, $5)" } else { "" };
        let sql = format!(
            "SELECT owner, connector_id, version, deprecated_at FROM connector_versions \
             WHERE ($1 IS NULL OR owner = '' OR owner = $1) AND (connector_id, owner) <= ($2, $3){first}"
        );
        let mut query = sqlx::query(&sql).bind(viewer.tenant()).bind(&last.id).bind(&last.owner);
        if let Some((id, owner)) = &page.after {
            query = query.bind(id).bind(owner);
        }
        let rows = query.fetch_all(self.pool()).await?;
        let mut versions: BTreeMap<(String, String), Vec<VersionFlag>> = BTreeMap::new();
        for row in &rows {
            let key = (row.try_get::<String, _>("connector_id")?, row.try_get::<String, _>("owner")?);
            let deprecated = row.try_get::<Option<i64>, _>("deprecated_at")?.is_some();
            versions.entry(key).or_default().push((row.try_get("version")?, deprecated));
        }
        Ok(heads.map(|head| {
            let flags = versions.remove(&(head.id.clone(), head.owner.clone())).unwrap_or_default();
            summarize(head, flags)
        }))
    }

    /// The connector `id` as `viewer` resolves it (see [`Viewer`]).
    pub async fn connector(&self, viewer: Viewer, id: &str) -> Result<Option<ConnectorSummary>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CONNECTOR_COLUMNS} FROM connectors \
             WHERE id = $1 AND ($2 IS NULL OR owner = '' OR owner = $2) ORDER BY {} LIMIT 1",
            viewer.preference()
        ))
        .bind(id)
        .bind(viewer.tenant())
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let head = head_from(&row)?;
        let rows =
            sqlx::query("SELECT version, deprecated_at FROM connector_versions WHERE owner = $1 AND connector_id = $2")
                .bind(&head.owner)
                .bind(&head.id)
                .fetch_all(self.pool())
                .await?;
        let versions = rows
            .iter()
            .map(|r| Ok((r.try_get::<String, _>("version")?, r.try_get::<Option<i64>, _>("deprecated_at")?.is_some())))
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(Some(summarize(head, versions)))
    }

    /// Owner key (`''` = public) of the connector `id` as `viewer` resolves it.
    async fn resolve_owner(&self, viewer: &Viewer, id: &str) -> Result<Option<String>, StoreError> {
        let owner = sqlx::query_scalar::<_, String>(&format!(
            "SELECT owner FROM connectors WHERE id = $1 AND ($2 IS NULL OR owner = '' OR owner = $2) \
             ORDER BY {} LIMIT 1",
            viewer.preference()
        ))
        .bind(id)
        .bind(viewer.tenant())
        .fetch_optional(self.pool())
        .await?;
        Ok(owner)
    }

    /// Every version of the connector `id` as `viewer` resolves it, highest first; empty when the
    /// viewer cannot see such a connector.
    pub async fn versions(&self, viewer: Viewer, id: &str) -> Result<Vec<VersionRow>, StoreError> {
        let Some(owner) = self.resolve_owner(&viewer, id).await? else { return Ok(Vec::new()) };
        let rows = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM connector_versions WHERE owner = $1 AND connector_id = $2"
        ))
        .bind(&owner)
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        let mut versions = rows.iter().map(version_from).collect::<Result<Vec<_>, _>>()?;
        versions.sort_by(|a, b| compare_versions(&b.version, &a.version));
        Ok(versions)
    }

    /// One version of the connector `id` as `viewer` resolves it.
    pub async fn version(&self, viewer: Viewer, id: &str, version: &str) -> Result<Option<VersionRow>, StoreError> {
        let Some(owner) = self.resolve_owner(&viewer, id).await? else { return Ok(None) };
        let row = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM connector_versions WHERE owner = $1 AND connector_id = $2 AND version = $3"
        ))
        .bind(&owner)
        .bind(id)
        .bind(version)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(version_from).transpose()?)
    }

    /// One version of exactly this owner's connector (`None`: the public catalog), without
    /// shadowing: how an installation finds the version it is pinned to.
    pub async fn version_exact(
        &self,
        owner: Option<&str>,
        id: &str,
        version: &str,
    ) -> Result<Option<VersionRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM connector_versions WHERE owner = $1 AND connector_id = $2 AND version = $3"
        ))
        .bind(super::owner_key(owner))
        .bind(id)
        .bind(version)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(version_from).transpose()?)
    }

    /// Marks a version deprecated (keeping the first deprecation time) and sets its sunset date and
    /// message. `owner` is `None` for the public catalog. `NotFound` when there is no such version.
    pub async fn deprecate_version(
        &self,
        owner: Option<&str>,
        id: &str,
        version: &str,
        sunset: Option<String>,
        message: Option<String>,
    ) -> Result<VersionRow, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE connector_versions SET deprecated_at = COALESCE(deprecated_at, $4), sunset = $5, \
             deprecation_message = $6 WHERE owner = $1 AND connector_id = $2 AND version = $3 \
             RETURNING {VERSION_COLUMNS}"
        ))
        .bind(owner_key(owner))
        .bind(id)
        .bind(version)
        .bind(now_ms())
        .bind(sunset)
        .bind(message)
        .fetch_optional(self.writer())
        .await?;
        match row {
            Some(row) => Ok(version_from(&row)?),
            None => Err(StoreError::NotFound(format!("connector {id} has no version {version}"))),
        }
    }

    /// The component bytes stored under `digest`.
    pub async fn component_bytes(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let bytes = sqlx::query_scalar::<_, Vec<u8>>("SELECT bytes FROM component_blobs WHERE digest = $1")
            .bind(digest)
            .fetch_optional(self.pool())
            .await?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(like_pattern("Slack"), "%slack%");
        assert_eq!(like_pattern("50%_\\"), "%50\\%\\_\\\\%");
    }

    #[test]
    fn latest_prefers_non_deprecated() {
        let head = || ConnectorHead {
            owner: String::new(),
            id: "x".into(),
            title: String::new(),
            description: String::new(),
            category: String::new(),
            provider: String::new(),
            bundle_id: None,
        };
        let s = summarize(head(), vec![("1.0.0".into(), false), ("2.0.0".into(), true), ("1.10.0".into(), false)]);
        assert_eq!(s.latest_version, "1.10.0");
        assert_eq!(s.versions, ["2.0.0", "1.10.0", "1.0.0"]);
        let s = summarize(head(), vec![("1.0.0".into(), true), ("2.0.0".into(), true)]);
        assert_eq!(s.latest_version, "2.0.0");
    }
}
