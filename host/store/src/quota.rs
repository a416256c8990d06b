//! `quota_usage` and `quota_pauses`: provider budget usage per window summed over hosts, and
//! pauses after a provider's 429 that every host applies (see the services' `quota` module).

use sqlx::Row;

use super::{Store, StoreError};

/// Calls one host counted for one bucket window since its last flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageDelta {
    /// The tenant's id.
    pub tenant: String,
    /// The provider key (lower case).
    pub provider: String,
    /// The bucket's window length, in seconds.
    pub per_seconds: i64,
    /// Start of the counted window, in unix milliseconds (a multiple of the window length).
    pub window_start: i64,
    /// The bucket's limit, for `v_quota_status`.
    pub requests: i64,
    /// Calls admitted in the window.
    pub used: i64,
    /// Calls refused in the window.
    pub refused: i64,
}

/// One row of `v_quota_status`: a bucket's latest window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaStatusRow {
    /// The bucket's window length, in seconds.
    pub per_seconds: i64,
    /// The bucket's limit: calls allowed per window.
    pub requests: i64,
    /// Start of the latest window, in unix milliseconds.
    pub window_start: i64,
    /// Calls admitted in that window, summed over hosts.
    pub used: i64,
    /// Calls refused in that window, summed over hosts.
    pub refused: i64,
    /// `requests - used`, never below 0.
    pub remaining: i64,
    /// Until when a provider's 429 paused the budget, in unix milliseconds; `None` if it never was.
    pub paused_until: Option<i64>,
}

impl Store {
    /// Adds counted usage, and records pauses (the later one wins), in one transaction; `now`
    /// stamps the rows.
    pub async fn add_quota_usage(
        &self,
        deltas: &[UsageDelta],
        pauses: &[(String, String, i64)],
        now: i64,
    ) -> Result<(), StoreError> {
        if deltas.is_empty() && pauses.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_relaxed().await?;
        for d in deltas {
            sqlx::query(
                "INSERT INTO quota_usage (tenant, provider, per_seconds, window_start, requests, used, refused, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (tenant, provider, per_seconds, window_start) DO UPDATE SET \
                     used = quota_usage.used + excluded.used, refused = quota_usage.refused + excluded.refused, \
                     requests = excluded.requests, updated_at = excluded.updated_at",
            )
            .bind(&d.tenant)
            .bind(&d.provider)
            .bind(d.per_seconds)
            .bind(d.window_start)
            .bind(d.requests)
            .bind(d.used)
            .bind(d.refused)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        for (tenant, provider, until) in pauses {
            sqlx::query(
                "INSERT INTO quota_pauses (tenant, provider, paused_until) VALUES ($1, $2, $3) \
                 ON CONFLICT (tenant, provider) DO UPDATE SET paused_until = CASE \
                     WHEN excluded.paused_until > quota_pauses.paused_until THEN excluded.paused_until \
                     ELSE quota_pauses.paused_until END",
            )
            .bind(tenant)
            .bind(provider)
            .bind(*until)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Pauses still running at `now`: `(tenant, provider, paused_until)`.
    pub async fn quota_pauses(&self, now: i64) -> Result<Vec<(String, String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT tenant, provider, paused_until FROM quota_pauses WHERE paused_until > $1")
            .bind(now)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("tenant")?, r.try_get("provider")?, r.try_get("paused_until")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// `v_quota_status` of one (tenant, provider): each bucket's latest window over all hosts.
    pub async fn quota_status(&self, tenant: &str, provider: &str) -> Result<Vec<QuotaStatusRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT per_seconds, requests, window_start, used, refused, remaining, paused_until \
             FROM v_quota_status WHERE tenant = $1 AND provider = $2 ORDER BY per_seconds",
        )
        .bind(tenant)
        .bind(provider)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(QuotaStatusRow {
                    per_seconds: r.try_get("per_seconds")?,
                    requests: r.try_get("requests")?,
                    window_start: r.try_get("window_start")?,
                    used: r.try_get("used")?,
                    refused: r.try_get("refused")?,
                    remaining: r.try_get("remaining")?,
                    paused_until: r.try_get("paused_until")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Forgets usage rows and pauses not touched since `before_ms`.
    pub async fn purge_quota_usage(&self, before_ms: i64) -> Result<u64, StoreError> {
        let mut tx = self.begin_relaxed().await?;
        let done =
            sqlx::query("DELETE FROM quota_usage WHERE updated_at < $1").bind(before_ms).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM quota_pauses WHERE paused_until < $1").bind(before_ms).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }
}
