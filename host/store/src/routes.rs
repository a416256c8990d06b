//! Routing rules (`routes`) and installations' webhook addresses (`installation_hooks`).
//!
//! Rules are stored as given, their JSON parts (event-type globs, payload filter, payload
//! template, retry schedule) as JSON text; what they mean is the services' `routing` business, which
//! validates them before they get here. Updates are whole-row replacements guarded by the
//! revision the caller read, so two concurrent PATCHes cannot silently merge.

use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;
use sqlx::error::ErrorKind;

use super::installations::{COLUMNS as INSTALLATION_COLUMNS, installation_from};
use super::{InstallationRow, Page, PageRequest, Store, StoreError, db_message, flag, now_ms, violation};

/// A routing rule as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteRow {
    /// `rte_<hex>`: the route's id.
    pub id: String,
    /// The tenant's id.
    pub tenant: String,
    /// Display name, unique within the tenant.
    pub name: String,
    /// Event type globs; an event matches when any glob does.
    pub event_types: Vec<String>,
    /// Only events from this installation match; `None` for any source.
    pub source_installation: Option<String>,
    /// Conditions on the event's payload, all of which must hold; `None` matches every payload.
    pub filter: Option<Value>,
    /// The installation whose operation receives the matching events.
    pub destination_installation: String,
    /// The operation called on the destination's connector, e.g. `webhooks.deliver`.
    pub operation: String,
    /// The operation's arguments, with `{{path}}` placeholders; `None` passes the event's payload.
    pub payload_template: Option<Value>,
    /// Retry delays in seconds; `None` for the default schedule.
    pub retry_schedule: Option<Vec<u64>>,
    /// Whether the route makes deliveries.
    pub enabled: bool,
    /// Starts at 1; every update adds one.
    pub revision: i64,
    /// When it was created, in unix milliseconds.
    pub created_at_ms: i64,
    /// When it was last changed, in unix milliseconds.
    pub updated_at_ms: i64,
}

const ROUTE_COLUMNS: &str = "id, tenant, name, event_types, source_installation, filter_json, \
                             destination_installation, operation, payload_template, retry_schedule, enabled, \
                             revision, created_at, updated_at";

fn json_column<T: serde::de::DeserializeOwned>(row: &AnyRow, column: &str) -> Result<Option<T>, StoreError> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|t| {
        serde_json::from_str(&t)
            .map_err(|e| StoreError::Invalid(format!("stored route column {column} is not valid: {e}")))
    })
    .transpose()
}

fn route_from(row: &AnyRow) -> Result<RouteRow, StoreError> {
    Ok(RouteRow {
        id: row.try_get("id")?,
        tenant: row.try_get("tenant")?,
        name: row.try_get("name")?,
        event_types: json_column(row, "event_types")?.unwrap_or_default(),
        source_installation: row.try_get("source_installation")?,
        filter: json_column(row, "filter_json")?,
        destination_installation: row.try_get("destination_installation")?,
        operation: row.try_get("operation")?,
        payload_template: json_column(row, "payload_template")?,
        retry_schedule: json_column(row, "retry_schedule")?,
        enabled: flag(row, "enabled")?,
        revision: row.try_get("revision")?,
        created_at_ms: row.try_get("created_at")?,
        updated_at_ms: row.try_get("updated_at")?,
    })
}

fn json_text<T: serde::Serialize>(v: &Option<T>) -> Option<String> {
    v.as_ref().map(|v| serde_json::to_string(v).unwrap_or_else(|_| "null".into()))
}

/// A route's JSON columns as stored.
struct RouteTexts {
    event_types: Option<String>,
    filter: Option<String>,
    payload_template: Option<String>,
    retry_schedule: Option<String>,
}

impl RouteTexts {
    fn of(r: &RouteRow) -> RouteTexts {
        RouteTexts {
            event_types: json_text(&Some(&r.event_types)),
            filter: json_text(&r.filter),
            payload_template: json_text(&r.payload_template),
            retry_schedule: json_text(&r.retry_schedule),
        }
    }
}

/// Maps a write's constraint violation to a client-facing error.
fn route_write_error(e: sqlx::Error, route: &RouteRow) -> StoreError {
    match violation(&e) {
        Some(ErrorKind::UniqueViolation) => {
            StoreError::Conflict(format!("a route named {:?} already exists", route.name))
        }
        Some(ErrorKind::ForeignKeyViolation) => StoreError::NotFound(format!(
            "installation {} not found",
            route.source_installation.as_deref().map_or(route.destination_installation.as_str(), |s| s)
        )),
        Some(_) => StoreError::Invalid(format!("cannot store route: {}", db_message(&e))),
        None => e.into(),
    }
}

impl Store {
    /// Checks that the route's installations are the tenant's, naming the missing one.
    async fn check_route_installations(&self, route: &RouteRow) -> Result<(), StoreError> {
        let names = [Some(route.destination_installation.as_str()), route.source_installation.as_deref()];
        for id in names.into_iter().flatten() {
            if self.installation(&route.tenant, id).await?.is_none() {
                return Err(StoreError::NotFound(format!("installation {id} not found")));
            }
        }
        Ok(())
    }

    /// Stores a new route (its `revision`, `created_at_ms` and `updated_at_ms` are set here).
    /// `Conflict` when the name is taken, `NotFound` when an installation is not the tenant's.
    pub async fn create_route(&self, route: &RouteRow) -> Result<RouteRow, StoreError> {
        self.check_route_installations(route).await?;
        let now = now_ms();
        let texts = RouteTexts::of(route);
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO routes ({ROUTE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1, $12, $12) \
             RETURNING {ROUTE_COLUMNS}"
        ))
        .bind(&route.id)
        .bind(&route.tenant)
        .bind(&route.name)
        .bind(&texts.event_types)
        .bind(route.source_installation.as_deref())
        .bind(&texts.filter)
        .bind(&route.destination_installation)
        .bind(&route.operation)
        .bind(&texts.payload_template)
        .bind(&texts.retry_schedule)
        .bind(route.enabled)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| route_write_error(e, route))?;
        let stored = route_from(&row)?;
        tx.commit().await?;
        Ok(stored)
    }

    /// Replaces a route with `route`, if it is still at `route.revision`; the stored revision
    /// becomes one more. `NotFound` for another tenant's or a missing route, `Conflict` when it
    /// changed since it was read or the new name is taken.
    pub async fn update_route(&self, route: &RouteRow) -> Result<RouteRow, StoreError> {
        self.check_route_installations(route).await?;
        let texts = RouteTexts::of(route);
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(&format!(
            "UPDATE routes SET name = $3, event_types = $4, source_installation = $5, filter_json = $6, \
             destination_installation = $7, operation = $8, payload_template = $9, retry_schedule = $10, \
             enabled = $11, revision = revision + 1, updated_at = $12 \
             WHERE tenant = $1 AND id = $2 AND revision = $13 RETURNING {ROUTE_COLUMNS}"
        ))
        .bind(&route.tenant)
        .bind(&route.id)
        .bind(&route.name)
        .bind(&texts.event_types)
        .bind(route.source_installation.as_deref())
        .bind(&texts.filter)
        .bind(&route.destination_installation)
        .bind(&route.operation)
        .bind(&texts.payload_template)
        .bind(&texts.retry_schedule)
        .bind(route.enabled)
        .bind(now_ms())
        .bind(route.revision)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| route_write_error(e, route))?;
        let Some(row) = row else {
            drop(tx);
            return Err(match self.route(&route.tenant, &route.id).await? {
                Some(_) => StoreError::Conflict(format!("route {} was changed meanwhile; read it and retry", route.id)),
                None => StoreError::NotFound(format!("route {} not found", route.id)),
            });
        };
        let stored = route_from(&row)?;
        tx.commit().await?;
        Ok(stored)
    }

    /// One of the tenant's routes.
    pub async fn route(&self, tenant: &str, id: &str) -> Result<Option<RouteRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {ROUTE_COLUMNS} FROM routes WHERE tenant = $1 AND id = $2"))
            .bind(tenant)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(route_from).transpose()
    }

    /// The tenant's routes by name; only the enabled ones when `enabled_only`.
    pub async fn routes(&self, tenant: &str, enabled_only: bool) -> Result<Vec<RouteRow>, StoreError> {
        let filter = if enabled_only { " AND enabled = $2" } else { " AND $2 = $2" };
        let rows =
            sqlx::query(&format!("SELECT {ROUTE_COLUMNS} FROM routes WHERE tenant = $1{filter} ORDER BY name, id"))
                .bind(tenant)
                .bind(true)
                .fetch_all(self.pool())
                .await?;
        rows.iter().map(route_from).collect()
    }

    /// A page of the tenant's routes, oldest first (by creation time, then id); `page.after` is
    /// the previous page's last `(created_at, id)`.
    pub async fn routes_page(
        &self,
        tenant: &str,
        page: &PageRequest<(i64, String)>,
    ) -> Result<Page<RouteRow>, StoreError> {
        let after = if page.after.is_some() { " AND (created_at, id) > ($3, $4)" } else { "" };
        let sql =
            format!("SELECT {ROUTE_COLUMNS} FROM routes WHERE tenant = $1{after} ORDER BY created_at, id LIMIT $2");
        let mut query = sqlx::query(&sql).bind(tenant).bind(page.fetch());
        if let Some((at, id)) = &page.after {
            query = query.bind(*at).bind(id);
        }
        let rows = query.fetch_all(self.pool()).await?;
        Ok(Page::of(rows.iter().map(route_from).collect::<Result<_, StoreError>>()?, page))
    }

    /// Deletes a route; `false` when there was none. Its past deliveries keep their `route_id`.
    pub async fn delete_route(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM routes WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// The installation's hook id, creating it from `candidate` when it has none yet.
    /// `NotFound` when the installation is not the tenant's.
    pub async fn ensure_hook(&self, tenant: &str, installation: &str, candidate: &str) -> Result<String, StoreError> {
        if let Some(hook) = self.hook_id(tenant, installation).await? {
            return Ok(hook);
        }
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO installation_hooks (hook_id, tenant, installation, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (installation) DO NOTHING",
        )
        .bind(candidate)
        .bind(tenant)
        .bind(installation)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(|e| hook_error(e, installation))?;
        tx.commit().await?;
        self.hook_id(tenant, installation)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("installation {installation} not found")))
    }

    /// Replaces the installation's hook id with `new` (the old one stops working at once).
    pub async fn rotate_hook(&self, tenant: &str, installation: &str, new: &str) -> Result<String, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO installation_hooks (hook_id, tenant, installation, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (installation) DO UPDATE SET hook_id = excluded.hook_id, created_at = excluded.created_at",
        )
        .bind(new)
        .bind(tenant)
        .bind(installation)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(|e| hook_error(e, installation))?;
        tx.commit().await?;
        Ok(new.to_string())
    }

    /// The installation's hook id, if it has one.
    pub(crate) async fn hook_id(&self, tenant: &str, installation: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT hook_id FROM installation_hooks WHERE tenant = $1 AND installation = $2")
            .bind(tenant)
            .bind(installation)
            .fetch_optional(self.pool())
            .await?)
    }

    /// The installation a hook id addresses.
    pub async fn installation_by_hook(&self, hook_id: &str) -> Result<Option<InstallationRow>, StoreError> {
        let columns = INSTALLATION_COLUMNS.split(", ").map(|c| format!("i.{c}")).collect::<Vec<_>>().join(", ");
        let row = sqlx::query(&format!(
            "SELECT {columns} FROM installation_hooks h \
             JOIN installations i ON i.tenant = h.tenant AND i.id = h.installation WHERE h.hook_id = $1"
        ))
        .bind(hook_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(installation_from).transpose()?)
    }
}

fn hook_error(e: sqlx::Error, installation: &str) -> StoreError {
    match violation(&e) {
        Some(ErrorKind::ForeignKeyViolation) => StoreError::NotFound(format!("installation {installation} not found")),
        Some(ErrorKind::UniqueViolation) => StoreError::Conflict("hook id collision; retry".into()),
        Some(_) => StoreError::Invalid(format!("cannot store hook id: {}", db_message(&e))),
        None => e.into(),
    }
}

impl Store {
    /// Whether this route (which may have been deleted since) left dead deliveries to redrive.
    pub async fn route_has_dead_deliveries(&self, tenant: &str, route: &str) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM deliveries WHERE status = 'dead' AND tenant = $1 AND route_id = $2 LIMIT 1",
        )
        .bind(tenant)
        .bind(route)
        .fetch_optional(self.pool())
        .await?;
        Ok(found.is_some())
    }
}
