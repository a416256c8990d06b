//! `tenants`: the isolation boundary every other row hangs off.

use sqlx::Row;
use sqlx::any::AnyRow;
use sqlx::error::ErrorKind;

use super::{Page, PageRequest, Store, StoreError, now_ms, violation};

/// A stored tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// The tenant's id, a slug such as `acme`.
    pub id: String,
    /// Display name (the id unless one was given).
    pub name: String,
    /// When the tenant was created, in unix milliseconds.
    pub created_at_ms: i64,
}

fn tenant_from(row: &AnyRow) -> Result<Tenant, sqlx::Error> {
    Ok(Tenant { id: row.try_get("id")?, name: row.try_get("name")?, created_at_ms: row.try_get("created_at")? })
}

impl Store {
    /// Creates a tenant; `Conflict` when the id is taken.
    pub async fn create_tenant(&self, id: &str, name: &str) -> Result<Tenant, StoreError> {
        if id.is_empty() {
            return Err(StoreError::Invalid("tenant id must not be empty".into()));
        }
        let now = now_ms();
        let result = sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(name)
            .bind(now)
            .execute(self.writer())
            .await;
        match result {
            Ok(_) => Ok(Tenant { id: id.to_string(), name: name.to_string(), created_at_ms: now }),
            Err(e) if violation(&e) == Some(ErrorKind::UniqueViolation) => {
                Err(StoreError::Conflict(format!("tenant {id} already exists")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A page of the tenants, ordered by id; `page.after` is the previous page's last id.
    pub async fn list_tenants(&self, page: &PageRequest<String>) -> Result<Page<Tenant>, StoreError> {
        let rows =
            sqlx::query("SELECT id, name, created_at FROM tenants WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2")
                .bind(page.after.as_deref())
                .bind(page.fetch())
                .fetch_all(self.pool())
                .await?;
        Ok(Page::of(rows.iter().map(tenant_from).collect::<Result<_, _>>()?, page))
    }

    /// The tenant with this id, if it exists.
    pub async fn tenant(&self, id: &str) -> Result<Option<Tenant>, StoreError> {
        let row = sqlx::query("SELECT id, name, created_at FROM tenants WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(tenant_from).transpose()?)
    }
}
