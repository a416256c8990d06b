//! Retention: tenants' stored policies, the lease of host-wide periodic jobs, and the batched
//! deletes of the retention sweep (see docs/retention.md).
//!
//! **One batch is one short transaction.** [`Store::prune_batch`] deletes at most `limit` rows of
//! one class of one tenant, oldest first, and commits; the services' sweep calls it until a
//! batch comes back short and yields between batches, so writers never wait behind a sweep for
//! longer than one batch (on SQLite the batch holds the file's write lock; on PostgreSQL it holds
//! row locks on the rows it deletes only).
//!
//! **What is never deleted**, whatever the cut-off:
//! - an event with a delivery that is `pending` or `leased` (its deliveries are locked before the
//!   event goes, so a redrive that commits first is seen, and one that comes later finds nothing);
//!   an event whose deliveries are all `delivered` or `dead` goes with them and their attempts;
//! - a change-feed tombstone (a `records` row with `op = 'deleted'`) whose local id is still
//!   linked to a destination record (`record_links`: an export wrote the record and has not yet
//!   sent the deletion), or whose stream has a queued or running sync run (an import writing it
//!   or an export reading it); live records are the records store itself and are never pruned;
//! - item errors of a queued or running sync run.
//!
//! The webhook dedupe window is the caller's to respect: it passes a cut-off no later than the
//! window's start (raw requests inside it answer repeats).
//!
//! **Job leases** (`job_leases`) let one host at a time run a periodic job: a claim succeeds
//! when no other host holds an unexpired lease and the job last finished at least `every_ms`
//! ago, in one `INSERT … ON CONFLICT DO UPDATE … WHERE` (the pattern of the health-check lease).

use sqlx::Row;

use super::{Backend, Store, StoreError, now_ms};

patchbay_core::string_enum! {
    /// What a retention policy covers.
    pub enum RetentionClass {
        /// Raw webhook requests as received (`ingress_requests`).
        WebhookRequests = "webhook_requests",
        /// Events with their deliveries and delivery attempts.
        Events = "events",
        /// Installations' operation logs.
        Logs = "logs",
        /// Item errors of sync runs.
        SyncErrors = "sync_errors",
        /// Tombstones of the records store's change feed (records deleted at their source).
        SyncChanges = "sync_changes",
    }
}

/// `$first, $first+1, …` for `n` parameters.
fn params(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

impl Store {
    /// The tenant's stored retention overrides (JSON written by the services), if it has any.
    pub async fn retention_policy(&self, tenant: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT policy_json FROM retention_policies WHERE tenant = $1")
            .bind(tenant)
            .fetch_optional(self.pool())
            .await?)
    }

    /// Replaces the tenant's retention overrides; `None` removes them (the defaults apply).
    /// `NotFound` when the tenant does not exist.
    pub async fn set_retention_policy(&self, tenant: &str, policy_json: Option<&str>) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        match policy_json {
            None => {
                sqlx::query("DELETE FROM retention_policies WHERE tenant = $1").bind(tenant).execute(&mut *tx).await?;
            }
            Some(json) => {
                sqlx::query(
                    "INSERT INTO retention_policies (tenant, policy_json, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (tenant) DO UPDATE SET policy_json = excluded.policy_json, \
                     updated_at = excluded.updated_at",
                )
                .bind(tenant)
                .bind(json)
                .bind(now_ms())
                .execute(&mut *tx)
                .await
                .map_err(|e| match super::violation(&e) {
                    Some(sqlx::error::ErrorKind::ForeignKeyViolation) => {
                        StoreError::NotFound(format!("no tenant {tenant:?}"))
                    }
                    _ => StoreError::Db(e),
                })?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Takes the lease of job `name` for `owner` until `now + lease_ms` when nobody else holds an
    /// unexpired lease and the job last finished at least `every_ms` before `now` (or never ran).
    /// `true` when this call took it.
    pub async fn claim_job(
        &self,
        name: &str,
        owner: &str,
        lease_ms: i64,
        every_ms: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let got: Option<String> = sqlx::query_scalar(
            "INSERT INTO job_leases (name, lease_owner, lease_until, last_run_at) VALUES ($1, $2, $3, NULL) \
             ON CONFLICT (name) DO UPDATE SET lease_owner = excluded.lease_owner, \
                 lease_until = excluded.lease_until \
             WHERE (job_leases.lease_until IS NULL OR job_leases.lease_until < $4) \
                 AND (job_leases.last_run_at IS NULL OR job_leases.last_run_at <= $5) \
             RETURNING name",
        )
        .bind(name)
        .bind(owner)
        .bind(now.saturating_add(lease_ms))
        .bind(now)
        .bind(now.saturating_sub(every_ms))
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(got.is_some())
    }

    /// Extends `owner`'s lease of job `name` to `lease_ms` from now; `false` when it no longer
    /// holds it.
    pub async fn renew_job(&self, name: &str, owner: &str, lease_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE job_leases SET lease_until = $3 WHERE name = $1 AND lease_owner = $2")
            .bind(name)
            .bind(owner)
            .bind(now_ms().saturating_add(lease_ms))
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Releases `owner`'s lease of job `name`, recording that the job finished now.
    pub async fn finish_job(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE job_leases SET lease_owner = NULL, lease_until = NULL, last_run_at = $3 \
             WHERE name = $1 AND lease_owner = $2",
        )
        .bind(name)
        .bind(owner)
        .bind(now_ms())
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// The time of the tenant's `n`-th newest row of `class` (`n` ≥ 1), `None` when it has fewer:
    /// a count policy keeps what is at or after it. For [`RetentionClass::Logs`], whose count is
    /// per installation, use [`Store::log_count_boundary`].
    pub async fn retention_boundary(
        &self,
        class: RetentionClass,
        tenant: &str,
        n: u64,
    ) -> Result<Option<i64>, StoreError> {
        let sql = match class {
            RetentionClass::WebhookRequests => {
                "SELECT received_at FROM ingress_requests WHERE tenant = $1 ORDER BY received_at DESC LIMIT 1 OFFSET $2"
            }
            RetentionClass::Events => {
                "SELECT created_at FROM events WHERE tenant = $1 ORDER BY created_at DESC LIMIT 1 OFFSET $2"
            }
            RetentionClass::Logs => {
                "SELECT at_ms FROM operation_logs WHERE tenant = $1 ORDER BY at_ms DESC LIMIT 1 OFFSET $2"
            }
            RetentionClass::SyncErrors => {
                "SELECT e.created_at FROM sync_errors e JOIN sync_runs r ON r.id = e.run_id WHERE r.tenant = $1 \
                 ORDER BY e.created_at DESC LIMIT 1 OFFSET $2"
            }
            RetentionClass::SyncChanges => {
                "SELECT r.deleted_at FROM records r JOIN record_streams s ON s.id = r.stream \
                 WHERE s.tenant = $1 AND r.op = 'deleted' ORDER BY r.deleted_at DESC LIMIT 1 OFFSET $2"
            }
        };
        let offset = i64::try_from(n.saturating_sub(1)).unwrap_or(i64::MAX);
        Ok(sqlx::query_scalar(sql).bind(tenant).bind(offset).fetch_optional(self.pool()).await?)
    }

    /// Deletes up to `limit` of the tenant's rows of `class` older than `before_ms` (unix
    /// milliseconds), oldest first, in one transaction, skipping what must be kept (see the module
    /// docs); the number deleted. Events count with their deliveries and attempts as one row.
    pub async fn prune_batch(
        &self,
        class: RetentionClass,
        tenant: &str,
        before_ms: i64,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let limit = i64::from(limit.max(1));
        let sql = match class {
            RetentionClass::Events => return self.prune_events(tenant, before_ms, limit).await,
            RetentionClass::WebhookRequests => {
                "DELETE FROM ingress_requests WHERE id IN (SELECT id FROM ingress_requests \
                 WHERE tenant = $1 AND received_at < $2 ORDER BY received_at LIMIT $3)"
            }
            RetentionClass::Logs => {
                "DELETE FROM operation_logs WHERE id IN (SELECT id FROM operation_logs \
                 WHERE tenant = $1 AND at_ms < $2 ORDER BY at_ms LIMIT $3)"
            }
            RetentionClass::SyncErrors => {
                "DELETE FROM sync_errors WHERE (run_id, n) IN (SELECT e.run_id, e.n FROM sync_errors e \
                 JOIN sync_runs r ON r.id = e.run_id WHERE r.tenant = $1 AND r.status NOT IN ('queued', 'running') \
                 AND e.created_at < $2 ORDER BY e.created_at LIMIT $3)"
            }
            // The outer `op` test is checked again on the row as it is when deleted (PostgreSQL
            // re-reads a row a concurrent import changed): a record back since is kept.
            RetentionClass::SyncChanges => {
                "DELETE FROM records WHERE op = 'deleted' AND (stream, seq) IN (SELECT r.stream, r.seq \
                 FROM records r JOIN record_streams s ON s.id = r.stream \
                 WHERE s.tenant = $1 AND r.op = 'deleted' AND r.deleted_at < $2 \
                 AND NOT EXISTS (SELECT 1 FROM record_links l WHERE l.local_id = r.local_id) \
                 AND NOT EXISTS (SELECT 1 FROM sync_runs u WHERE u.status IN ('queued', 'running') \
                     AND ((u.installation = s.installation AND u.entity = s.entity) \
                       OR (u.source_installation = s.installation AND u.source_entity = s.entity))) \
                 ORDER BY r.deleted_at LIMIT $3)"
            }
        };
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(sql).bind(tenant).bind(before_ms).bind(limit).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// One batch of events: pick the oldest ones without a pending or leased delivery, lock
    /// their deliveries (PostgreSQL) and read their status again, delete the events that still
    /// have none (deliveries and attempts cascade).
    async fn prune_events(&self, tenant: &str, before_ms: i64, limit: i64) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let candidates: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM events WHERE tenant = $1 AND created_at < $2 AND NOT EXISTS (\
                 SELECT 1 FROM deliveries d WHERE d.tenant = events.tenant AND d.event_id = events.id \
                 AND d.status IN ('pending', 'leased')) \
             ORDER BY created_at LIMIT $3",
        )
        .bind(tenant)
        .bind(before_ms)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        if candidates.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }
        let lock = match self.backend() {
            Backend::Postgres => " ORDER BY id FOR UPDATE",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "SELECT event_id, status FROM deliveries WHERE tenant = $1 AND event_id IN ({}){lock}",
            params(2, candidates.len())
        );
        let mut q = sqlx::query(&sql).persistent(false).bind(tenant);
        for id in &candidates {
            q = q.bind(id);
        }
        let mut busy = std::collections::HashSet::new();
        for row in q.fetch_all(&mut *tx).await? {
            let status: String = row.try_get("status")?;
            if status == "pending" || status == "leased" {
                busy.insert(row.try_get::<String, _>("event_id")?);
            }
        }
        let doomed: Vec<&String> = candidates.iter().filter(|id| !busy.contains(*id)).collect();
        if doomed.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }
        let sql = format!("DELETE FROM events WHERE tenant = $1 AND id IN ({})", params(2, doomed.len()));
        let mut q = sqlx::query(&sql).persistent(false).bind(tenant);
        for id in &doomed {
            q = q.bind(*id);
        }
        let done = q.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// The id of the installation's `n`-th newest operation-log entry (`n` ≥ 1), `None` when it
    /// has fewer: a per-installation count keeps the entries from it on.
    pub async fn log_count_boundary(
        &self,
        tenant: &str,
        installation: &str,
        n: u64,
    ) -> Result<Option<i64>, StoreError> {
        let offset = i64::try_from(n.saturating_sub(1)).unwrap_or(i64::MAX);
        Ok(sqlx::query_scalar(
            "SELECT id FROM operation_logs WHERE installation = $1 AND tenant = $2 ORDER BY id DESC LIMIT 1 OFFSET $3",
        )
        .bind(installation)
        .bind(tenant)
        .bind(offset)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Deletes up to `limit` of the installation's operation-log entries with an id below
    /// `below_id`, oldest first, in one transaction; the number deleted.
    pub async fn prune_logs_below(
        &self,
        tenant: &str,
        installation: &str,
        below_id: i64,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "DELETE FROM operation_logs WHERE id IN (SELECT id FROM operation_logs \
             WHERE installation = $1 AND tenant = $2 AND id < $3 ORDER BY id LIMIT $4)",
        )
        .bind(installation)
        .bind(tenant)
        .bind(below_id)
        .bind(i64::from(limit.max(1)))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// SQLite: returns up to `max_pages` free pages of the file to the file system
    /// (`PRAGMA incremental_vacuum`, one short write); the number of free pages left. Nothing
    /// to do on PostgreSQL, whose autovacuum makes deleted rows' space reusable (`Ok(0)`), nor on
    /// a SQLite file without `auto_vacuum = INCREMENTAL` (see `Store::connect`).
    pub async fn reclaim_space(&self, max_pages: u32) -> Result<i64, StoreError> {
        if self.backend() != Backend::Sqlite {
            return Ok(0);
        }
        let mut conn = self.writer().acquire().await?;
        let mode: i64 = sqlx::query_scalar("PRAGMA auto_vacuum").fetch_one(&mut *conn).await?;
        if mode != 2 {
            return Ok(0);
        }
        sqlx::query(&format!("PRAGMA incremental_vacuum({})", max_pages.max(1))).execute(&mut *conn).await?;
        Ok(sqlx::query_scalar("PRAGMA freelist_count").fetch_one(&mut *conn).await?)
    }
}
