//! `operation_logs`: the per-installation timeline of everything a connector did.
//!
//! Rows are appended in batches (by the services' operation-log writer) and read back in id
//! order; the id is the position pages start after (see `page`). Fields are stored as a JSON array of
//! `[key, value]` pairs so order and repeated keys survive.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Page, PageRequest, Store, StoreError};
use patchbay_core::log::Level;

/// An entry to append.
#[derive(Debug, Clone)]
pub struct NewLogRecord {
    /// The tenant's id.
    pub tenant: String,
    /// The installation the entry belongs to.
    pub installation: String,
    /// When the entry was recorded, in unix milliseconds.
    pub at_ms: i64,
    /// The entry's severity.
    pub level: Level,
    /// The entry's `patchbay_core::log::Source`, spelled (`Source::as_str`).
    pub source: String,
    /// The entry's text.
    pub message: String,
    /// JSON array of `[key, value]` string pairs ([`fields_json`]).
    pub fields_json: String,
}

/// Filters and paging for [`Store::logs`].
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// Only entries at this level or above.
    pub min_level: Option<Level>,
    /// Only entries at or after this time.
    pub since_ms: Option<i64>,
    /// Where the page starts: the previous page's last entry id (entries after it are read; the
    /// entry need not exist any more).
    pub page: PageRequest<i64>,
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Row id, increasing in insertion order; the cursor for the next page.
    pub id: i64,
    /// When the entry was recorded, in unix milliseconds.
    pub at_ms: i64,
    /// The entry's severity.
    pub level: Level,
    /// Who produced the entry: `guest`, `stdout`, `stderr`, `http` or `host`.
    pub source: String,
    /// The entry's text.
    pub message: String,
    /// Key/value pairs attached to the entry, in the order recorded.
    pub fields: Vec<(String, String)>,
}

/// Rows per INSERT statement: 8 parameters each stays far below both backends' parameter limits.
const ROWS_PER_INSERT: usize = 200;

pub(crate) fn level_num(level: Level) -> i64 {
    match level {
        Level::Trace => 0,
        Level::Debug => 1,
        Level::Info => 2,
        Level::Warn => 3,
        Level::Error => 4,
    }
}

fn level_from_num(n: i64) -> Level {
    match n {
        i64::MIN..=0 => Level::Trace,
        1 => Level::Debug,
        2 => Level::Info,
        3 => Level::Warn,
        _ => Level::Error,
    }
}

/// Encodes fields as stored in `fields_json`.
pub fn fields_json(fields: &[(String, String)]) -> String {
    serde_json::to_string(fields).unwrap_or_else(|_| "[]".to_string())
}

fn record_from(row: &AnyRow) -> Result<LogRecord, StoreError> {
    let id: i64 = row.try_get("id")?;
    let fields_json: String = row.try_get("fields_json")?;
    let fields = serde_json::from_str(&fields_json)
        .map_err(|e| StoreError::Invalid(format!("operation log entry {id} has unreadable fields: {e}")))?;
    Ok(LogRecord {
        id,
        at_ms: row.try_get("at_ms")?,
        level: level_from_num(row.try_get("level_num")?),
        source: row.try_get("source")?,
        message: row.try_get("message")?,
        fields,
    })
}

impl Store {
    /// Appends `records` in one transaction: on a SQLite file with prepared statements on the
    /// dedicated connection, in the writer's turn (see `sqlite_batch.rs`); otherwise with
    /// multi-row INSERTs.
    pub async fn append_logs(&self, records: &[NewLogRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        if let Some(writer) = &self.batch_writer {
            return self.in_write_turn(|| writer.append_logs(records)).await;
        }
        let mut tx = self.begin_write().await?;
        for chunk in records.chunks(ROWS_PER_INSERT) {
            let mut sql = String::from(
                "INSERT INTO operation_logs (tenant, installation, at_ms, level_num, level, source, message, \
                 fields_json) VALUES ",
            );
            for i in 0..chunk.len() {
                let p = i * 8;
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!(
                    "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                    p + 1,
                    p + 2,
                    p + 3,
                    p + 4,
                    p + 5,
                    p + 6,
                    p + 7,
                    p + 8
                ));
            }
            let mut query = sqlx::query(&sql);
            for r in chunk {
                query = query
                    .bind(&r.tenant)
                    .bind(&r.installation)
                    .bind(r.at_ms)
                    .bind(level_num(r.level))
                    .bind(r.level.as_str())
                    .bind(&r.source)
                    .bind(&r.message)
                    .bind(&r.fields_json);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// One page of the installation's entries in id order; empty when it is not the tenant's.
    pub async fn logs(
        &self,
        tenant: &str,
        installation: &str,
        query: &LogQuery,
    ) -> Result<Page<LogRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at_ms, level_num, source, message, fields_json FROM operation_logs \
             WHERE installation = $1 AND tenant = $2 AND id > $3 AND level_num >= $4 AND at_ms >= $5 \
             ORDER BY id LIMIT $6",
        )
        .bind(installation)
        .bind(tenant)
        .bind(query.page.after.unwrap_or(0))
        .bind(query.min_level.map(level_num).unwrap_or(0))
        .bind(query.since_ms.unwrap_or(i64::MIN))
        .bind(query.page.fetch())
        .fetch_all(self.pool())
        .await?;
        Ok(Page::of(rows.iter().map(record_from).collect::<Result<_, _>>()?, &query.page))
    }
}
