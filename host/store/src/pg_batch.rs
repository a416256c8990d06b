//! The PostgreSQL writer of import batches: [`Store::commit_import_batch`]'s work on a native
//! PostgreSQL connection, set-based — one lookup of the batch's stored records
//! (`external_id = ANY($2)`), new records streamed with `COPY … FROM STDIN`, changes and
//! deletions in one `UPDATE … FROM UNNEST(…)`, unchanged ones touched in one `UPDATE` — in one
//! transaction.
//!
//! Why a second way to the same tables: through the pool (the `Any` driver), a batch of 2 000
//! ~1 KiB records is an upsert of 12 bind parameters per row, every value copied into the
//! driver's argument list and described, parsed and planned by the server as one huge statement.
//! `COPY` sends the rows as one stream the server parses without planning. The transaction does
//! what the pool's does (see `store/sync.rs`): fence the run, classify every record against the
//! stored one, write changes with new sequence numbers in the batch's order, mark unchanged ones
//! as seen, store item errors, advance the run. Only batches whose changes no route takes come
//! here; a batch with change events uses the pool, where the outbox is written in the same
//! transaction.

use std::collections::HashMap;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, Row, Transaction};

use super::sync::{
    ADVANCE_RUN_SQL, BatchOutcome, Counts, FENCE_SQL, ImportBatch, LocalIds, MAX_STORED_ERRORS, lease_lost,
};
use super::{StoreError, now_ms};

/// The writer's own small pool of native connections.
pub(crate) struct PgBatchWriter {
    pool: PgPool,
}

impl PgBatchWriter {
    /// A writer for the database at `url` (connections are opened on first use).
    pub(crate) fn new(url: &str) -> Result<PgBatchWriter, StoreError> {
        let pool = PgPoolOptions::new().max_connections(4).connect_lazy(url)?;
        Ok(PgBatchWriter { pool })
    }

    /// Closes the connections.
    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }

    /// Commits `batch` in one transaction.
    pub(crate) async fn commit_import_batch(&self, batch: &ImportBatch<'_>) -> Result<BatchOutcome, StoreError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let lease = &batch.lease;
        let row = sqlx::query(FENCE_SQL)
            .bind(now)
            .bind(lease.run_id)
            .bind(lease.owner)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| lease_lost(lease.run_id))?;
        let failed_before: i64 = row.try_get("failed")?;
        let cancel_requested: bool = row.try_get("cancel_requested")?;
        let stream = stream_id(&mut tx, batch).await?;
        let mut seq: i64 = sqlx::query("SELECT COALESCE(MAX(seq), 0) AS s FROM records WHERE stream = $1")
            .bind(stream)
            .fetch_one(&mut *tx)
            .await?
            .try_get("s")?;
        let base_seq = seq;

        // What the store holds of the batch's records: (hash, deleted).
        let ids: Vec<&str> = batch.records.iter().map(|r| r.external_id.as_str()).collect();
        let mut stored: HashMap<String, (i64, bool)> = HashMap::new();
        // An empty stream (no sequence number yet: a first sync's first batch) holds none of them.
        if !ids.is_empty() && base_seq > 0 {
            let rows =
                sqlx::query("SELECT external_id, hash, op FROM records WHERE stream = $1 AND external_id = ANY($2)")
                    .bind(stream)
                    .bind(&ids)
                    .fetch_all(&mut *tx)
                    .await?;
            for r in rows {
                let op: String = r.try_get("op")?;
                stored.insert(r.try_get("external_id")?, (r.try_get("hash")?, op == "deleted"));
            }
        }

        let mut counts = Counts { fetched: batch.fetched, failed: batch.errors.len() as i64, ..Counts::default() };
        let mut local_ids = LocalIds::new(batch.records.len());
        let mut csv = Vec::new();
        let mut changed = Changes::default();
        let mut touched: Vec<&str> = Vec::new();
        let run = lease.run_id;
        for r in batch.records {
            let id = r.external_id.as_str();
            match (stored.get(id), r.deleted) {
                (None, false) => {
                    seq += 1;
                    counts.created += 1;
                    let local_id = local_ids.next_id();
                    csv_row(&mut csv, stream, id, &local_id, &r.payload, r.hash, seq, now, run);
                }
                // A deletion of a record never stored: nothing to record.
                (None, true) => counts.unchanged += 1,
                (Some(&(_, true)), true) => {
                    counts.unchanged += 1;
                    touched.push(id);
                }
                (Some(_), true) => {
                    seq += 1;
                    counts.deleted += 1;
                    changed.push(id, None, seq, "deleted");
                }
                (Some(&(hash, was_deleted)), false) if was_deleted || hash != r.hash => {
                    seq += 1;
                    if was_deleted {
                        counts.created += 1;
                    } else {
                        counts.updated += 1;
                    }
                    changed.push(id, Some((&r.payload, r.hash)), seq, if was_deleted { "created" } else { "updated" });
                }
                (Some(_), false) => {
                    counts.unchanged += 1;
                    touched.push(id);
                }
            }
        }
        if !csv.is_empty() {
            let mut copy = tx
                .copy_in_raw(
                    "COPY records (stream, external_id, local_id, payload, hash, seq, op, first_seen_at, \
                     last_seen_at, changed_at, seen_run) FROM STDIN WITH (FORMAT csv)",
                )
                .await?;
            copy.send(csv).await?;
            copy.finish().await.map_err(|e| match &e {
                sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
                    StoreError::NotFound(format!("installation {} not found", batch.installation))
                }
                _ => e.into(),
            })?;
        }
        if !changed.ids.is_empty() {
            sqlx::query(
                "UPDATE records AS r SET payload = COALESCE(u.payload, r.payload), hash = COALESCE(u.hash, r.hash), \
                 seq = u.seq, op = u.op, last_seen_at = $2, changed_at = $2, \
                 deleted_at = CASE WHEN u.op = 'deleted' THEN $2 ELSE NULL END, seen_run = $3 \
                 FROM UNNEST($4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::text[]) \
                 AS u(external_id, payload, hash, seq, op) \
                 WHERE r.stream = $1 AND r.external_id = u.external_id",
            )
            .bind(stream)
            .bind(now)
            .bind(run)
            .bind(&changed.ids)
            .bind(&changed.payloads)
            .bind(&changed.hashes)
            .bind(&changed.seqs)
            .bind(&changed.ops)
            .execute(&mut *tx)
            .await?;
        }
        // A record that failed to read is not gone: keep it from a full run's deletion sweep.
        touched.extend(batch.errors.iter().filter_map(|e| e.external_id.as_deref()));
        if !touched.is_empty() {
            sqlx::query(
                "UPDATE records SET last_seen_at = $2, seen_run = $3 WHERE stream = $1 AND external_id = ANY($4)",
            )
            .bind(stream)
            .bind(now)
            .bind(run)
            .bind(&touched)
            .execute(&mut *tx)
            .await?;
        }
        let room = usize::try_from(MAX_STORED_ERRORS.saturating_sub(failed_before)).unwrap_or(0);
        let errors = &batch.errors[..batch.errors.len().min(room)];
        if !errors.is_empty() {
            let ns: Vec<i64> = (0..errors.len()).map(|i| failed_before + i as i64 + 1).collect();
            let ids: Vec<Option<&str>> = errors.iter().map(|e| e.external_id.as_deref()).collect();
            let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
            sqlx::query(
                "INSERT INTO sync_errors (run_id, n, external_id, message, created_at) \
                 SELECT $1, n, external_id, message, $2 FROM UNNEST($3::bigint[], $4::text[], $5::text[]) \
                 AS e(n, external_id, message) ON CONFLICT (run_id, n) DO NOTHING",
            )
            .bind(run)
            .bind(now)
            .bind(&ns)
            .bind(&ids)
            .bind(&messages)
            .execute(&mut *tx)
            .await?;
        }
        // From the clock now, not from when the transaction began: a long batch must not commit an
        // already expired lease.
        let lease_until = now_ms().max(now).saturating_add(lease.lease_ms);
        sqlx::query(ADVANCE_RUN_SQL)
            .bind(batch.next_cursor)
            .bind(counts.fetched)
            .bind(counts.created)
            .bind(counts.updated)
            .bind(counts.unchanged)
            .bind(counts.deleted)
            .bind(counts.failed)
            .bind(batch.total)
            .bind(lease_until)
            .bind(lease.active_ms)
            .bind(now)
            .bind(run)
            .bind(base_seq)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(BatchOutcome { counts, cancel_requested, deliveries: 0 })
    }
}

/// Changed and deleted records, as the columns of one `UNNEST` (a deletion has no payload or
/// hash: the stored ones stay).
#[derive(Default)]
struct Changes<'a> {
    ids: Vec<&'a str>,
    payloads: Vec<Option<&'a str>>,
    hashes: Vec<Option<i64>>,
    seqs: Vec<i64>,
    ops: Vec<&'static str>,
}

impl<'a> Changes<'a> {
    fn push(&mut self, id: &'a str, content: Option<(&'a str, i64)>, seq: i64, op: &'static str) {
        self.ids.push(id);
        self.payloads.push(content.map(|c| c.0));
        self.hashes.push(content.map(|c| c.1));
        self.seqs.push(seq);
        self.ops.push(op);
    }
}

/// Appends one new record as a CSV line (text fields quoted, quotes doubled: any byte but NUL,
/// which PostgreSQL text cannot hold in either path, goes through as is).
#[allow(clippy::too_many_arguments)]
fn csv_row(
    out: &mut Vec<u8>,
    stream: i64,
    id: &str,
    local_id: &str,
    payload: &str,
    hash: i64,
    seq: i64,
    now: i64,
    run: &str,
) {
    use std::io::Write as _;
    let quoted = |out: &mut Vec<u8>, s: &str| {
        out.push(b'"');
        for part in s.split('"').enumerate() {
            if part.0 > 0 {
                out.extend_from_slice(b"\"\"");
            }
            out.extend_from_slice(part.1.as_bytes());
        }
        out.push(b'"');
    };
    let _ = write!(out, "{stream},");
    quoted(out, id);
    out.push(b',');
    quoted(out, local_id);
    out.push(b',');
    quoted(out, payload);
    let _ = write!(out, ",{hash},{seq},created,{now},{now},{now},");
    quoted(out, run);
    out.push(b'\n');
}

/// The id of the batch's records stream, created on first use.
async fn stream_id(tx: &mut Transaction<'static, Postgres>, batch: &ImportBatch<'_>) -> Result<i64, StoreError> {
    const FIND: &str = "SELECT id FROM record_streams WHERE installation = $1 AND entity = $2";
    if let Some(row) = sqlx::query(FIND).bind(batch.installation).bind(batch.entity).fetch_optional(&mut **tx).await? {
        return Ok(row.try_get("id")?);
    }
    sqlx::query(
        "INSERT INTO record_streams (tenant, installation, entity) VALUES ($1, $2, $3) \
         ON CONFLICT (installation, entity) DO NOTHING",
    )
    .bind(batch.tenant)
    .bind(batch.installation)
    .bind(batch.entity)
    .execute(&mut **tx)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
            StoreError::NotFound(format!("installation {} not found", batch.installation))
        }
        _ => e.into(),
    })?;
    let row = sqlx::query(FIND).bind(batch.installation).bind(batch.entity).fetch_optional(&mut **tx).await?;
    Ok(row
        .ok_or_else(|| StoreError::NotFound(format!("installation {} not found", batch.installation)))?
        .try_get("id")?)
}

#[cfg(test)]
mod tests {
    use super::csv_row;

    #[test]
    fn csv_rows_quote_every_text_field() {
        let mut out = Vec::new();
        csv_row(&mut out, 7, "a\"b,c", "rec_1", "{\"x\":\"line\nnext\"}", -3, 9, 100, "run_1");
        let s = String::from_utf8(out).unwrap();
        assert_eq!(
            s,
            "7,\"a\"\"b,c\",\"rec_1\",\"{\"\"x\"\":\"\"line\nnext\"\"}\",-3,9,created,100,100,100,\"run_1\"\n"
        );
    }
}
