//! `installation_health`: the last health check of each installation, when the next one is due,
//! and which host is running it (a lease, so one host checks each installation per interval).
//!
//! [`Store::save_health`] writes a result, the installation's status change it causes (three
//! consecutive failures: `active` → `error`; a success: `error` → `active`) and the events
//! announcing the changes in one transaction.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::outbox::{NewDelivery, NewEvent};
use super::{Rows, Store, StoreError, now_ms};

/// The stored result of an installation's last health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthRow {
    /// The tenant's id.
    pub tenant: String,
    /// The installation's id.
    pub installation: String,
    /// `healthy`, `degraded`, `unhealthy` or `unconfigured`.
    pub status: String,
    /// What the check said, at most 500 characters; `None` when it said nothing.
    pub message: Option<String>,
    /// 0 until the first check finished.
    pub checked_at: i64,
    /// How long the check took, in milliseconds.
    pub duration_ms: i64,
    /// Unhealthy results in a row; `unconfigured` keeps the count, any other status resets it.
    pub consecutive_failures: i64,
    /// When the next scheduled check is due, in unix milliseconds; `i64::MAX` when none is.
    pub next_check_at: i64,
}

const COLUMNS: &str =
    "tenant, installation, status, message, checked_at, duration_ms, consecutive_failures, next_check_at";

fn health_from(row: &AnyRow) -> Result<HealthRow, sqlx::Error> {
    Ok(HealthRow {
        tenant: row.try_get("tenant")?,
        installation: row.try_get("installation")?,
        status: row.try_get("status")?,
        message: row.try_get("message")?,
        checked_at: row.try_get("checked_at")?,
        duration_ms: row.try_get("duration_ms")?,
        consecutive_failures: row.try_get("consecutive_failures")?,
        next_check_at: row.try_get("next_check_at")?,
    })
}

/// A finished check to store.
pub struct HealthWrite<'a> {
    /// The result to store.
    pub row: &'a HealthRow,
    /// `(from, to)`: the installation's status changes only if it still is `from`.
    pub status_change: Option<(&'a str, &'a str)>,
    /// Events announcing the status change, written in the same transaction.
    pub events: &'a [NewEvent],
    /// Deliveries of those events, written in the same transaction.
    pub deliveries: &'a [NewDelivery],
}

impl Store {
    /// The installation's last check, if it had one.
    pub async fn health(&self, tenant: &str, installation: &str) -> Result<Option<HealthRow>, StoreError> {
        let row =
            sqlx::query(&format!("SELECT {COLUMNS} FROM installation_health WHERE tenant = $1 AND installation = $2"))
                .bind(tenant)
                .bind(installation)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.as_ref().map(health_from).transpose()?)
    }

    /// The last checks of some of a tenant's installations (a page of them; others' are absent).
    pub async fn health_of(&self, tenant: &str, installations: &[&str]) -> Result<Vec<HealthRow>, StoreError> {
        if installations.is_empty() {
            return Ok(Vec::new());
        }
        let list = (0..installations.len()).map(|i| format!("${}", i + 2)).collect::<Vec<_>>().join(", ");
        let sql = format!("SELECT {COLUMNS} FROM installation_health WHERE tenant = $1 AND installation IN ({list})");
        let mut query = sqlx::query(&sql).bind(tenant);
        for id in installations {
            query = query.bind(*id);
        }
        let rows = query.fetch_all(self.pool()).await?;
        Ok(rows.iter().map(health_from).collect::<Result<_, _>>()?)
    }

    /// How many of a tenant's installations are in each health status: the status of their last
    /// finished check, `unchecked` before the first.
    pub async fn health_counts(&self, tenant: &str) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT COALESCE(h.status, 'unchecked') AS status, COUNT(*) AS n FROM installations i \
             LEFT JOIN installation_health h ON h.tenant = i.tenant AND h.installation = i.id AND h.checked_at > 0 \
             WHERE i.tenant = $1 GROUP BY COALESCE(h.status, 'unchecked')",
        )
        .bind(tenant)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| Ok((r.try_get("status")?, r.try_get("n")?))).collect()
    }

    /// Takes the lease on up to `limit` enabled installations whose check is due (never checked
    /// and created at least `interval_ms` ago, or `next_check_at` passed) and that no other host
    /// is checking: `(tenant, installation)`.
    pub async fn claim_health_checks(
        &self,
        owner: &str,
        lease_ms: i64,
        interval_ms: i64,
        limit: u32,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let now = now_ms();
        let due = sqlx::query(
            "SELECT i.tenant, i.id FROM installations i \
             LEFT JOIN installation_health h ON h.installation = i.id \
             WHERE i.enabled = $1 AND ((h.installation IS NULL AND i.created_at <= $4) OR \
                 (h.next_check_at <= $2 AND (h.lease_until IS NULL OR h.lease_until < $2))) \
             ORDER BY COALESCE(h.next_check_at, 0) LIMIT $3",
        )
        .bind(true)
        .bind(now)
        .bind(i64::from(limit))
        .bind(now.saturating_sub(interval_ms))
        .fetch_all(self.pool())
        .await?;
        let mut claimed = Vec::new();
        for row in &due {
            let (tenant, id): (String, String) = (row.try_get("tenant")?, row.try_get("id")?);
            let mut tx = self.begin_write().await?;
            let got: Option<String> = sqlx::query_scalar(
                "INSERT INTO installation_health \
                     (installation, tenant, status, checked_at, duration_ms, next_check_at, lease_owner, lease_until) \
                 VALUES ($1, $2, 'unconfigured', 0, 0, 0, $3, $4) \
                 ON CONFLICT (installation) DO UPDATE SET lease_owner = excluded.lease_owner, \
                     lease_until = excluded.lease_until \
                 WHERE installation_health.next_check_at <= $5 \
                     AND (installation_health.lease_until IS NULL OR installation_health.lease_until < $5) \
                 RETURNING installation",
            )
            .bind(&id)
            .bind(&tenant)
            .bind(owner)
            .bind(now + lease_ms)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .or_else(|e| match super::violation(&e) {
                // Deleted meanwhile.
                Some(sqlx::error::ErrorKind::ForeignKeyViolation) => Ok(None),
                _ => Err(e),
            })?;
            tx.commit().await?;
            if got.is_some() {
                claimed.push((tenant, id));
            }
        }
        Ok(claimed)
    }

    /// Stores a finished check (releasing any lease), the status change and the events.
    pub async fn save_health(&self, w: HealthWrite<'_>) -> Result<(), StoreError> {
        let r = w.row;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO installation_health (installation, tenant, status, message, checked_at, duration_ms, \
                 consecutive_failures, next_check_at, lease_owner, lease_until) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL) \
             ON CONFLICT (installation) DO UPDATE SET status = excluded.status, message = excluded.message, \
                 checked_at = excluded.checked_at, duration_ms = excluded.duration_ms, \
                 consecutive_failures = excluded.consecutive_failures, next_check_at = excluded.next_check_at, \
                 lease_owner = NULL, lease_until = NULL",
        )
        .bind(&r.installation)
        .bind(&r.tenant)
        .bind(&r.status)
        .bind(r.message.as_deref())
        .bind(r.checked_at)
        .bind(r.duration_ms)
        .bind(r.consecutive_failures)
        .bind(r.next_check_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| super::missing_installation(e, &r.installation))?;
        if let Some((from, to)) = w.status_change {
            sqlx::query(
                "UPDATE installations SET status = $4, updated_at = $5 WHERE tenant = $1 AND id = $2 AND status = $3",
            )
            .bind(&r.tenant)
            .bind(&r.installation)
            .bind(from)
            .bind(to)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        }
        if !w.events.is_empty() {
            let events: Vec<(&NewEvent, Option<&str>)> = w.events.iter().map(|e| (e, None)).collect();
            let deliveries: Vec<&NewDelivery> = w.deliveries.iter().collect();
            super::ingress::insert_events(&mut tx, self.backend(), Rows::One, &events, &deliveries).await?;
        }
        tx.commit().await?;
        if !w.deliveries.is_empty() {
            self.wake_dispatchers();
        }
        Ok(())
    }
}
