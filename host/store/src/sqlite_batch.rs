//! The SQLite writer of import batches and webhook ingress batches: [`Store::commit_import_batch`]'s
//! and [`Store::record_ingress_batch`]'s work for a SQLite file, done on one dedicated connection of
//! the same SQLite library, with cached prepared statements and one row per statement, in one
//! `BEGIN IMMEDIATE` transaction (taken in the pool writer's turn, so it never waits in SQLite's
//! busy handler).
//!
//! Why a second way to the same tables: an import batch writes thousands of ~1 KiB rows, and
//! through the pool every row's values are copied into the driver's argument lists twice and
//! every statement makes a round trip between the async side and the connection's worker thread.
//! Here a row costs one step of a statement prepared once. Measured on the 2-core development
//! machine, 200 000 records of 1 KiB in batches of 2 000 into a new stream: the batch commits
//! alone went from 113 500 records/s through the pool to 178 000–194 000 records/s here, and a
//! whole first sync through a WASM connector from 84 000 to 125 000 records/s.
//!
//! The transaction does what the pool's does (see `store/sync.rs`): fence the run, classify
//! every record against the stored one, write changes with new sequence numbers, mark unchanged
//! ones as seen, store item errors, advance the run. Records are classified by inserting first:
//! a new record (all of a first sync) costs one insert and no lookup. Only batches whose changes
//! no route takes come here; a batch with change events to write uses the pool, where the outbox
//! is written in the same transaction.

use std::path::PathBuf;
use std::sync::Mutex;

use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};

use super::ingress::{Item, dedupe_key_unheld, duplicate, event_key_unheld};
use super::logs::{NewLogRecord, level_num};
use super::outbox::{EmittedEvent, IngressOutcome};
use super::sync::{BatchOutcome, Counts, ImportBatch, LocalIds, MAX_STORED_ERRORS, lease_lost};
use super::{SQLITE_BUSY_TIMEOUT, SqliteSynchronous, StoreError, now_ms};

/// The dedicated connection, opened on first use.
pub(crate) struct BatchWriter {
    path: PathBuf,
    synchronous: SqliteSynchronous,
    conn: Mutex<Option<Connection>>,
}

impl BatchWriter {
    pub(crate) fn new(path: PathBuf, synchronous: SqliteSynchronous) -> BatchWriter {
        BatchWriter { path, synchronous, conn: Mutex::new(None) }
    }

    /// Commits `batch` (blocking: call it where blocking is allowed).
    pub(crate) fn commit_import_batch(&self, batch: &ImportBatch<'_>) -> Result<BatchOutcome, StoreError> {
        self.with_connection(|conn| commit(conn, batch))
    }

    /// Records webhook requests (ids distinct across `items`) in one transaction, each as if
    /// recorded alone in order (see `store/ingress.rs`). A constraint violation is an error about
    /// the data (`Conflict`, or `NotFound` for a missing installation), so the caller writes the
    /// items again one by one for each its own answer. Blocking.
    pub(crate) fn record_ingress(&self, items: &[Item<'_>]) -> Result<Vec<IngressOutcome>, StoreError> {
        self.with_connection(|conn| record_ingress(conn, items)).map_err(|e| match e {
            StoreError::Sqlite(e) if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) => {
                if e.to_string().contains("FOREIGN KEY") {
                    StoreError::NotFound(format!("an installation of the batch was not found: {e}"))
                } else {
                    StoreError::Conflict(format!("a row of the batch already exists: {e}"))
                }
            }
            other => other,
        })
    }

    /// Appends operation-log entries in one transaction, one prepared insert per entry.
    /// Blocking.
    pub(crate) fn append_logs(&self, records: &[NewLogRecord]) -> Result<(), StoreError> {
        self.with_connection(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO operation_logs (tenant, installation, at_ms, level_num, level, source, message, \
                     fields_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?;
                for r in records {
                    insert.execute(params![
                        r.tenant,
                        r.installation,
                        r.at_ms,
                        level_num(r.level),
                        r.level.as_str(),
                        r.source,
                        r.message,
                        r.fields_json
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// Runs `f` on the connection (opened on first use); a connection left inside a transaction
    /// by a failure is replaced.
    fn with_connection<R>(&self, f: impl FnOnce(&mut Connection) -> Result<R, StoreError>) -> Result<R, StoreError> {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let conn = match guard.as_mut() {
            Some(c) => c,
            None => guard.insert(self.open()?),
        };
        let result = f(conn);
        if result.is_err() && !conn.is_autocommit() {
            // A failed commit leaves nothing behind; a connection in an odd state is replaced.
            *guard = None;
        }
        result
    }

    fn open(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open(&self.path)?;
        conn.busy_timeout(SQLITE_BUSY_TIMEOUT)?;
        conn.execute_batch(&format!(
            "PRAGMA foreign_keys = ON; PRAGMA synchronous = {}; PRAGMA cache_size = -32768; \
             PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 0;",
            self.synchronous.pragma()
        ))?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(conn)
    }
}

fn commit(conn: &mut Connection, batch: &ImportBatch<'_>) -> Result<BatchOutcome, StoreError> {
    let now = now_ms();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let lease = &batch.lease;
    let (failed_before, cancel_requested): (i64, bool) = tx
        .prepare_cached(
            "UPDATE sync_runs SET updated_at = ?1 WHERE id = ?2 AND lease_owner = ?3 AND status = 'running' \
             RETURNING failed, cancel_requested",
        )?
        .query_row(params![now, lease.run_id, lease.owner], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? != 0)))
        .optional()?
        .ok_or_else(|| lease_lost(lease.run_id))?;
    let stream = stream_id(&tx, batch)?;
    let mut seq: i64 = tx
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM records WHERE stream = ?1")?
        .query_row([stream], |r| r.get(0))?;
    let base_seq = seq;
    let mut counts = Counts { fetched: batch.fetched, failed: batch.errors.len() as i64, ..Counts::default() };
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO records (stream, external_id, local_id, payload, hash, seq, op, first_seen_at, last_seen_at, \
             changed_at, seen_run) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'created', ?7, ?7, ?7, ?8) \
             ON CONFLICT (stream, external_id) DO NOTHING",
        )?;
        let mut lookup = tx.prepare_cached("SELECT hash, op FROM records WHERE stream = ?1 AND external_id = ?2")?;
        let mut change = tx.prepare_cached(
            "UPDATE records SET payload = ?3, hash = ?4, seq = ?5, op = ?6, last_seen_at = ?7, changed_at = ?7, \
             deleted_at = NULL, seen_run = ?8 WHERE stream = ?1 AND external_id = ?2",
        )?;
        let mut delete = tx.prepare_cached(
            "UPDATE records SET seq = ?3, op = 'deleted', last_seen_at = ?4, changed_at = ?4, deleted_at = ?4, \
             seen_run = ?5 WHERE stream = ?1 AND external_id = ?2",
        )?;
        let mut touch = tx.prepare_cached(
            "UPDATE records SET last_seen_at = ?3, seen_run = ?4 WHERE stream = ?1 AND external_id = ?2",
        )?;
        let run = lease.run_id;
        let mut local_ids = LocalIds::new(batch.records.len());
        for r in batch.records {
            let id = r.external_id.as_str();
            if !r.deleted {
                let local_id = local_ids.next_id();
                if insert.execute(params![stream, id, local_id, r.payload, r.hash, seq + 1, now, run])? == 1 {
                    seq += 1;
                    counts.created += 1;
                    continue;
                }
            }
            let stored: Option<(i64, String)> =
                lookup.query_row(params![stream, id], |row| Ok((row.get(0)?, row.get(1)?))).optional()?;
            let Some((hash, op)) = stored else {
                // A deletion of a record never stored: nothing to record.
                counts.unchanged += 1;
                continue;
            };
            let was_deleted = op == "deleted";
            match (r.deleted, was_deleted) {
                (true, true) => {
                    counts.unchanged += 1;
                    touch.execute(params![stream, id, now, run])?;
                }
                (true, false) => {
                    seq += 1;
                    counts.deleted += 1;
                    delete.execute(params![stream, id, seq, now, run])?;
                }
                // Back after a deletion, or changed.
                (false, _) if was_deleted || hash != r.hash => {
                    seq += 1;
                    let op = if was_deleted { "created" } else { "updated" };
                    if was_deleted {
                        counts.created += 1;
                    } else {
                        counts.updated += 1;
                    }
                    change.execute(params![stream, id, r.payload, r.hash, seq, op, now, run])?;
                }
                (false, _) => {
                    counts.unchanged += 1;
                    touch.execute(params![stream, id, now, run])?;
                }
            }
        }
        // A record that failed to read is not gone: keep it from a full run's deletion sweep.
        for id in batch.errors.iter().filter_map(|e| e.external_id.as_deref()) {
            touch.execute(params![stream, id, now, run])?;
        }
    }
    insert_errors(&tx, lease.run_id, failed_before, batch, now)?;
    // From the clock now, not from when the transaction began: a long batch must not commit an
    // already expired lease.
    let lease_until = now_ms().max(now).saturating_add(lease.lease_ms);
    tx.prepare_cached(
        "UPDATE sync_runs SET cursor = ?1, batches = batches + 1, fetched = fetched + ?2, created = created + ?3, \
         updated = updated + ?4, unchanged = unchanged + ?5, deleted = deleted + ?6, failed = failed + ?7, \
         total = COALESCE(?8, total), attempts = 0, error = NULL, lease_until = ?9, next_attempt_at = ?9, \
         active_ms = active_ms + ?10, updated_at = ?11, base_seq = COALESCE(base_seq, ?13) WHERE id = ?12",
    )?
    .execute(params![
        batch.next_cursor,
        counts.fetched,
        counts.created,
        counts.updated,
        counts.unchanged,
        counts.deleted,
        counts.failed,
        batch.total,
        lease_until,
        lease.active_ms,
        now,
        lease.run_id,
        base_seq
    ])?;
    tx.commit()?;
    Ok(BatchOutcome { counts, cancel_requested, deliveries: 0 })
}

fn record_ingress(conn: &mut Connection, items: &[Item<'_>]) -> Result<Vec<IngressOutcome>, StoreError> {
    let now = now_ms();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut outcomes = Vec::with_capacity(items.len());
    {
        let mut request = tx.prepare_cached(
            "INSERT INTO ingress_requests (id, tenant, installation, received_at, method, path, headers_json, body, \
             dedupe_key, response_status, response_body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
             ON CONFLICT (installation, dedupe_key) DO NOTHING",
        )?;
        let mut first_request = tx.prepare_cached(
            "SELECT id, response_status, response_body FROM ingress_requests WHERE installation = ?1 AND dedupe_key = ?2",
        )?;
        let mut event = tx.prepare_cached(
            "INSERT INTO events (id, tenant, source_installation, event_type, subject, payload, idempotency_key, \
             ingress_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
             ON CONFLICT (source_installation, idempotency_key) DO NOTHING",
        )?;
        let mut first_event =
            tx.prepare_cached("SELECT id FROM events WHERE source_installation = ?1 AND idempotency_key = ?2")?;
        let mut delivery = tx.prepare_cached(
            "INSERT INTO deliveries (id, event_id, tenant, route_id, destination_installation, operation, payload, \
             idempotency_key, status, attempts, schedule_base, next_attempt_at, lease_owner, lease_until, \
             created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0, ?11, ?12, ?13, ?14, ?14)",
        )?;
        for item in items {
            let i = item.ingress;
            let inserted = request.execute(params![
                i.id,
                i.tenant,
                i.installation,
                i.received_at_ms,
                i.method,
                i.path,
                i.headers_json,
                i.body,
                i.dedupe_key,
                i64::from(i.response_status),
                i.response_body
            ])?;
            if inserted == 0 {
                // Only the dedupe key is a conflict target: an earlier request holds it.
                let first = first_request
                    .query_row(params![i.installation, i.dedupe_key], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
                    })
                    .optional()?;
                let Some((ingress_id, status, response_body)) = first else { return Err(dedupe_key_unheld(i)) };
                outcomes.push(duplicate(ingress_id, status, response_body)?);
                continue;
            }
            let mut emitted = Vec::with_capacity(item.events.len());
            for e in item.events {
                let fresh = event.execute(params![
                    e.id,
                    e.tenant,
                    e.source_installation,
                    e.event_type,
                    e.subject,
                    e.payload,
                    e.idempotency_key,
                    i.id,
                    e.created_at_ms
                ])? == 1;
                if fresh {
                    for d in item.deliveries.iter().filter(|d| d.event_id == e.id) {
                        let (status, attempts, next_attempt_at) = d.initial_state();
                        delivery.execute(params![
                            d.id,
                            d.event_id,
                            d.tenant,
                            d.route_id,
                            d.destination_installation,
                            d.operation,
                            d.payload,
                            d.idempotency_key,
                            status,
                            attempts,
                            next_attempt_at,
                            d.lease.as_ref().map(|l| l.owner.as_str()),
                            d.lease.as_ref().map(|l| l.until_ms),
                            now
                        ])?;
                    }
                    emitted.push(EmittedEvent { id: e.id.clone(), duplicate: false });
                    continue;
                }
                let first: Option<String> = first_event
                    .query_row(params![e.source_installation, e.idempotency_key], |r| r.get(0))
                    .optional()?;
                let id = first.ok_or_else(|| event_key_unheld(e))?;
                emitted.push(EmittedEvent { id, duplicate: true });
            }
            outcomes.push(IngressOutcome::Recorded { events: emitted });
        }
    }
    tx.commit()?;
    Ok(outcomes)
}

/// The id of the batch's records stream, created on first use.
fn stream_id(tx: &rusqlite::Transaction<'_>, batch: &ImportBatch<'_>) -> Result<i64, StoreError> {
    let find = |tx: &rusqlite::Transaction<'_>| {
        tx.prepare_cached("SELECT id FROM record_streams WHERE installation = ?1 AND entity = ?2")?
            .query_row([batch.installation, batch.entity], |r| r.get::<_, i64>(0))
            .optional()
    };
    if let Some(id) = find(tx)? {
        return Ok(id);
    }
    tx.execute(
        "INSERT INTO record_streams (tenant, installation, entity) VALUES (?1, ?2, ?3) \
         ON CONFLICT (installation, entity) DO NOTHING",
        [batch.tenant, batch.installation, batch.entity],
    )
    .map_err(|e| match e.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation) => {
            StoreError::NotFound(format!("installation {} not found", batch.installation))
        }
        _ => e.into(),
    })?;
    find(tx)?.ok_or_else(|| StoreError::NotFound(format!("installation {} not found", batch.installation)))
}

/// Stores item errors numbered from `failed_before`, up to [`MAX_STORED_ERRORS`] per run.
fn insert_errors(
    tx: &rusqlite::Transaction<'_>,
    run_id: &str,
    failed_before: i64,
    batch: &ImportBatch<'_>,
    now: i64,
) -> Result<(), StoreError> {
    let room = usize::try_from(MAX_STORED_ERRORS.saturating_sub(failed_before)).unwrap_or(0);
    let mut insert = tx.prepare_cached(
        "INSERT INTO sync_errors (run_id, n, external_id, message, created_at) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (run_id, n) DO NOTHING",
    )?;
    for (i, e) in batch.errors.iter().take(room).enumerate() {
        insert.execute(params![run_id, failed_before + i as i64 + 1, e.external_id, e.message, now])?;
    }
    Ok(())
}

impl super::Store {
    /// Runs `work` — blocking writes on the dedicated connection — in the writer's turn (after
    /// this process's queued writes, before later ones), off the async workers where the runtime
    /// has others.
    pub(crate) async fn in_write_turn<T>(&self, work: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        let _turn = self.writer().acquire().await?;
        match tokio::runtime::Handle::current().runtime_flavor() {
            tokio::runtime::RuntimeFlavor::CurrentThread => work(),
            _ => tokio::task::block_in_place(work),
        }
    }
}
