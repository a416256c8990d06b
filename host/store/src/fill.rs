//! Bulk filling for the benchmarks' large-store mode (feature `bench-fill`): millions of rows of
//! one kind written by the database itself (`generate_series` on PostgreSQL, a recursive CTE on
//! SQLite), in transactions of [`FILL_CHUNK`] rows so the SQLite WAL stays bounded and other
//! writers get their turns. Rows look like the host's own: events with a delivered delivery each,
//! operation-log entries, and records of one stream.

use sqlx::Row;

use super::{Backend, Store, StoreError};

/// Rows per transaction.
pub const FILL_CHUNK: u64 = 50_000;

/// What to fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// Events of `installation` (type `fill.sample`, ~300-byte payload), each with one delivered
    /// delivery to the same installation.
    Events,
    /// Operation-log entries of `installation`.
    Logs,
    /// Records of `installation`'s entity `fill` (~1 KiB payloads).
    Records,
}

impl Store {
    /// Adds `count` rows of `kind` for `installation` of `tenant` (which must exist), numbered
    /// from what is already there so repeated fills add up; returns the rows added. For
    /// benchmarks only: it bypasses every check the host's own writes make.
    pub async fn fill(&self, kind: Fill, tenant: &str, installation: &str, count: u64) -> Result<u64, StoreError> {
        let now = patchbay_core::now_ms();
        let payload: String = match kind {
            Fill::Events => format!("{{\"fill\":true,\"text\":\"{}\"}}", "x".repeat(280)),
            // A log entry's fields: `[name, value]` pairs.
            Fill::Logs => format!("[[\"fill\",\"{}\"]]", "x".repeat(60)),
            Fill::Records => format!("{{\"fill\":true,\"text\":\"{}\"}}", "r".repeat(1000)),
        };
        let start: i64 = match kind {
            Fill::Events => {
                count_rows(self, "SELECT COUNT(*) AS n FROM events WHERE source_installation = $1", installation)
            }
            Fill::Logs => {
                count_rows(self, "SELECT COUNT(*) AS n FROM operation_logs WHERE installation = $1", installation)
            }
            Fill::Records => count_rows(
                self,
                "SELECT COUNT(*) AS n FROM records r JOIN record_streams s ON s.id = r.stream \
                 WHERE s.installation = $1 AND s.entity = 'fill'",
                installation,
            ),
        }
        .await?;
        let numbers = |backend: Backend, body: &str| match backend {
            Backend::Sqlite => {
                format!(
                    "WITH RECURSIVE n(i) AS (SELECT $1 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $2) {body} FROM n"
                )
            }
            Backend::Postgres => format!("{body} FROM generate_series($1::bigint, $2::bigint - 1) AS n(i)"),
        };
        let backend = self.backend();
        // Ids shaped like `patchbay_core::new_id`'s: the row's time (12 hex digits), then 16 hex
        // digits (the row number, standing in for the random part), so filled rows sit in the
        // indexes where the host's own rows of that time would.
        let id = |prefix: &str| match backend {
            Backend::Sqlite => format!("printf('{prefix}_%012x%016x', $6 + i, i)"),
            Backend::Postgres => format!("'{prefix}_' || lpad(to_hex($6 + i), 12, '0') || lpad(to_hex(i), 16, '0')"),
        };
        let (event_id, delivery_id) = (id("evt"), id("dlv"));
        let mut done = 0u64;
        while done < count {
            let n = FILL_CHUNK.min(count - done);
            let (from, to) = (start + done as i64, start + (done + n) as i64);
            // Recent timestamps, one millisecond apart, ending now.
            let base = now - (count as i64) + done as i64 - from;
            let mut tx = self.begin_write().await?;
            match kind {
                Fill::Events | Fill::Logs => {
                    // Each statement binds the range, then $3 tenant, $4 installation, $5 its
                    // payload, $6 the time base.
                    let statements: Vec<(String, &str)> = match kind {
                        Fill::Events => vec![
                            (
                                format!(
                                    "INSERT INTO events (id, tenant, source_installation, event_type, subject, \
                                     payload, idempotency_key, ingress_id, created_at) \
                                     SELECT {event_id}, $3, $4, 'fill.sample', NULL, $5, 'fill-' || i, NULL, $6 + i"
                                ),
                                &payload,
                            ),
                            (
                                format!(
                                    "INSERT INTO deliveries (id, event_id, tenant, route_id, \
                                     destination_installation, operation, payload, idempotency_key, status, \
                                     attempts, schedule_base, next_attempt_at, lease_owner, lease_until, \
                                     last_error, created_at, updated_at) \
                                     SELECT {delivery_id}, {event_id}, $3, NULL, $4, 'send', $5, 'fill-d-' || i, \
                                     'delivered', 1, 0, $6 + i, NULL, NULL, NULL, $6 + i, $6 + i"
                                ),
                                "{}",
                            ),
                        ],
                        _ => vec![(
                            "INSERT INTO operation_logs (tenant, installation, at_ms, level_num, level, source, \
                             message, fields_json) SELECT $3, $4, $6 + i, 2, 'info', 'connector', 'filled entry', $5"
                                .to_string(),
                            &payload,
                        )],
                    };
                    for (body, value) in &statements {
                        sqlx::query(&numbers(backend, body))
                            .bind(from)
                            .bind(to)
                            .bind(tenant)
                            .bind(installation)
                            .bind(*value)
                            .bind(base)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                Fill::Records => {
                    let stream = crate::sync::stream_id(&mut tx, tenant, installation, "fill").await?;
                    let sql = numbers(
                        backend,
                        "INSERT INTO records (stream, external_id, local_id, payload, hash, seq, op, first_seen_at, \
                         last_seen_at, changed_at, deleted_at, seen_run) \
                         SELECT $3, 'fill-' || i, 'rec_fill_' || i, $4, i, i + 1, 'created', $5, $5, $5, NULL, 'fill'",
                    );
                    sqlx::query(&sql)
                        .bind(from)
                        .bind(to)
                        .bind(stream)
                        .bind(&payload)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            done += n;
        }
        Ok(done)
    }
}

/// The count `sql` (one `$1`, one column `n`) answers.
async fn count_rows(store: &Store, sql: &str, value: &str) -> Result<i64, StoreError> {
    let row = sqlx::query(sql).bind(value).fetch_one(store.pool()).await?;
    Ok(row.try_get("n")?)
}
