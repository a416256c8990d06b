//! Data sync persistence: runs and their leases, the records store with its change sequence,
//! export links, stream cursors, field mappings and schedules.
//!
//! **Runs** move `queued → running → succeeded | failed | cancelled`; a failed or cancelled run can
//! be resumed (back to `queued`, keeping its cursor and counters). A partial unique index keeps at
//! most one queued-or-running run per stream `(installation, entity, direction)`. Claims work like
//! outbox claims: a queued run is claimable once `next_attempt_at` passes, a running one when its
//! lease expires (its host died), one `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)` on
//! PostgreSQL, the same inside `BEGIN IMMEDIATE` on SQLite.
//!
//! **A batch is one transaction** ([`Store::commit_import_batch`]): it first *fences* — touches the
//! run row naming the lease owner, which fails if another host took the run over and, on
//! PostgreSQL, locks the row so two holders of the same run serialise — then classifies the batch's
//! records against the stored ones (one `SELECT … IN (…)`), writes the changed ones with new change
//! sequence numbers (multi-row upserts), marks unchanged ones as seen, stores item errors, the change
//! events the tenant's routes take (with their deliveries), and last the run's counters and the
//! batch's cursor. A crash before the commit loses the whole batch, so the run resumes from the
//! previous cursor and reads the same records again; after the commit the cursor has moved past
//! them. Either way every record is stored once and every change event is written once.
//!
//! **Records** belong to a stream, an `(installation, entity)` with a small integer id
//! (`record_streams`, created by the stream's first batch) that keys them.
//!
//! **Change sequence.** `records.seq` is a record's last change in its stream:
//! new numbers continue from the stream's highest (an index lookup), and since only one run writes
//! a stream at a time and it holds the run row's lock, numbers are given out and committed in
//! order: a reader paging with `since` never misses a change that commits later with a lower
//! number.
//!
//! **Unchanged records are not rewritten:** a payload whose hash equals the stored one keeps its
//! sequence number and gets no event; only `last_seen_at`/`seen_run` move.

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::error::ErrorKind;
use sqlx::{Any, Row, Transaction};

use super::bulk::{InsertSql, Rows, insert_rows, max_params};
use super::ingress::insert_events;
use super::outbox::{NewDelivery, NewEvent};
use super::{Backend, Page, PageRequest, Store, StoreError, flag, now_ms, violation};

patchbay_core::string_enum! {
    /// Which way records flow.
    pub enum Direction {
        /// From the connector's source into the records store (`read-batch`).
        Import = "import",
        /// From the records store to the connector's destination (`write-batch`).
        Export = "export",
    }
}

patchbay_core::string_enum! {
    /// Full (from the beginning) or incremental (from the last successful run's cursor).
    pub enum SyncMode {
        /// From the beginning; a full import without item errors then deletes unseen records.
        Full = "full",
        /// Continue from the stream's saved cursor.
        Incremental = "incremental",
    }
}

patchbay_core::string_enum! {
    /// Where a run stands.
    pub enum RunStatus {
        /// Waiting to be claimed.
        Queued = "queued",
        /// Held by a host under a lease.
        Running = "running",
        /// Every batch committed.
        Succeeded = "succeeded",
        /// Stopped by an error; can be resumed.
        Failed = "failed",
        /// Stopped on request; can be resumed.
        Cancelled = "cancelled",
    }
}

impl RunStatus {
    /// Whether the run is over (it may still be resumed when failed or cancelled).
    pub fn is_finished(self) -> bool {
        matches!(self, RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled)
    }
}

/// A run to queue.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// `run_<hex>`: the run's id.
    pub id: String,
    /// The tenant's id.
    pub tenant: String,
    /// The installation whose connector reads (import) or writes (export) the records.
    pub installation: String,
    /// The connector's entity, e.g. `contacts`.
    pub entity: String,
    /// Which way records flow.
    pub direction: Direction,
    /// Full or incremental.
    pub mode: SyncMode,
    /// Exports: the installation and entity whose records are written.
    pub source: Option<(String, String)>,
    /// `api` or `schedule`.
    pub trigger: &'static str,
    /// The schedule that queued the run; `None` when it was started through the API.
    pub schedule_id: Option<String>,
}

/// The counters of a run (or of one batch).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Records the connector returned (import) or read from the records store (export).
    pub fetched: i64,
    /// Records new to the store (import) or created at the destination (export).
    pub created: i64,
    /// Records whose payload changed (import) or updated at the destination (export).
    pub updated: i64,
    /// Records read again unchanged (import) or not sent (export).
    pub unchanged: i64,
    /// Records deleted.
    pub deleted: i64,
    /// Records that failed (item errors).
    pub failed: i64,
}

/// A stored run.
#[derive(Debug, Clone)]
pub struct RunRow {
    /// `run_<hex>`: the run's id.
    pub id: String,
    /// The tenant's id.
    pub tenant: String,
    /// The installation whose connector reads (import) or writes (export) the records.
    pub installation: String,
    /// The connector's entity.
    pub entity: String,
    /// Which way records flow.
    pub direction: Direction,
    /// Full or incremental.
    pub mode: SyncMode,
    /// Exports: the installation and entity whose records are written; `None` for imports.
    pub source: Option<(String, String)>,
    /// Where the run stands.
    pub status: RunStatus,
    /// `api` or `schedule`.
    pub trigger: String,
    /// The schedule that queued the run; `None` when it was started through the API.
    pub schedule_id: Option<String>,
    /// The cursor the run started from: the stream's saved one when incremental, `None` when full.
    pub start_cursor: Option<String>,
    /// The cursor after the last committed batch (for an export, the last sequence number sent).
    pub cursor: Option<String>,
    /// Batches committed.
    pub batches: i64,
    /// The counters summed over the committed batches.
    pub counts: Counts,
    /// How many records the source holds, when the connector says (for progress).
    pub total: Option<i64>,
    /// Failed attempts of the current batch; reset when a batch commits.
    pub attempts: i64,
    /// The latest error (of a batch being retried, or why the run failed); `None` if there is none.
    pub error: Option<String>,
    /// Someone asked to cancel the run; a running run stops at its next batch.
    pub cancel_requested: bool,
    /// The host holding the run while it runs; `None` otherwise.
    pub lease_owner: Option<String>,
    /// When that lease expires, in unix milliseconds.
    pub lease_until: Option<i64>,
    /// When the run is next claimable, in unix milliseconds (while running: its lease expiry).
    pub next_attempt_at: i64,
    /// Time spent running, in milliseconds, over every lease.
    pub active_ms: i64,
    /// When the run was queued, in unix milliseconds.
    pub created_at: i64,
    /// When it was first claimed, in unix milliseconds; `None` while still queued.
    pub started_at: Option<i64>,
    /// When it ended, in unix milliseconds; `None` until it does.
    pub finished_at: Option<i64>,
    /// When the row last changed, in unix milliseconds.
    pub updated_at: i64,
}

const RUN_COLUMNS: &str = "id, tenant, installation, entity, direction, mode, source_installation, source_entity, \
     status, trigger, schedule_id, start_cursor, cursor, batches, fetched, created, updated, unchanged, deleted, \
     failed, total, attempts, error, cancel_requested, lease_owner, lease_until, next_attempt_at, active_ms, \
     created_at, started_at, finished_at, updated_at";

/// An export's source: installation and entity.
type Source = Option<(String, String)>;

/// The stream columns every run and schedule row has: direction, mode, and the export source.
fn stream_of(r: &AnyRow, row: &str) -> Result<(Direction, SyncMode, Source), StoreError> {
    let direction: String = r.try_get("direction")?;
    let mode: String = r.try_get("mode")?;
    let bad = |what: &str, v: &str| StoreError::Invalid(format!("stored {row} has an unknown {what} {v:?}"));
    let source_installation: Option<String> = r.try_get("source_installation")?;
    let source_entity: Option<String> = r.try_get("source_entity")?;
    Ok((
        Direction::parse(&direction).ok_or_else(|| bad("direction", &direction))?,
        SyncMode::parse(&mode).ok_or_else(|| bad("mode", &mode))?,
        source_installation.zip(source_entity),
    ))
}

fn run_from(r: &AnyRow) -> Result<RunRow, StoreError> {
    let (direction, mode, source) = stream_of(r, "run")?;
    let status: String = r.try_get("status")?;
    Ok(RunRow {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant")?,
        installation: r.try_get("installation")?,
        entity: r.try_get("entity")?,
        direction,
        mode,
        source,
        status: RunStatus::parse(&status)
            .ok_or_else(|| StoreError::Invalid(format!("stored run has an unknown status {status:?}")))?,
        trigger: r.try_get("trigger")?,
        schedule_id: r.try_get("schedule_id")?,
        start_cursor: r.try_get("start_cursor")?,
        cursor: r.try_get("cursor")?,
        batches: r.try_get("batches")?,
        counts: Counts {
            fetched: r.try_get("fetched")?,
            created: r.try_get("created")?,
            updated: r.try_get("updated")?,
            unchanged: r.try_get("unchanged")?,
            deleted: r.try_get("deleted")?,
            failed: r.try_get("failed")?,
        },
        total: r.try_get("total")?,
        attempts: r.try_get("attempts")?,
        error: r.try_get("error")?,
        cancel_requested: flag(r, "cancel_requested")?,
        lease_owner: r.try_get("lease_owner")?,
        lease_until: r.try_get("lease_until")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        active_ms: r.try_get("active_ms")?,
        created_at: r.try_get("created_at")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Filters of [`Store::sync_runs`].
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only runs of this installation.
    pub installation: Option<String>,
    /// Only runs of this entity.
    pub entity: Option<String>,
    /// Only runs in this status.
    pub status: Option<RunStatus>,
    /// Where the page starts: the previous page's last `(created_at, id)` (newest first).
    pub page: PageRequest<(i64, String)>,
}

/// One record of a batch, ready to store: mapped, hashed, deduplicated within the batch.
#[derive(Debug, Clone)]
pub struct IncomingRecord {
    /// The record's id in the source.
    pub external_id: String,
    /// JSON object.
    pub payload: String,
    /// The 64-bit content hash of `payload` (the first 8 bytes of its SHA-256).
    pub hash: i64,
    /// The source reports it deleted.
    pub deleted: bool,
}

/// An item-level error of a batch.
#[derive(Debug, Clone)]
pub struct ItemError {
    /// The failed record's id, in the source (for an export, in the records store); `None` if none.
    pub external_id: Option<String>,
    /// What went wrong.
    pub message: String,
}

/// Most item errors stored per run; the `failed` counter keeps counting past it.
pub(crate) const MAX_STORED_ERRORS: i64 = 1_000;

/// Who holds a run and for how long its lease is extended by a write.
#[derive(Debug, Clone, Copy)]
pub struct Lease<'a> {
    /// The run being written.
    pub run_id: &'a str,
    /// The host process holding its lease.
    pub owner: &'a str,
    /// How far each write extends the lease, in milliseconds.
    pub lease_ms: i64,
    /// Running time to add to the run's `active_ms`.
    pub active_ms: i64,
}

/// One change of the records store, as events and the records API describe it.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    /// The records' entity.
    pub entity: &'a str,
    /// `rec_<hex>`: the record's id in the records store.
    pub local_id: &'a str,
    /// The record's id in the source.
    pub external_id: &'a str,
    /// `created`, `updated` or `deleted`.
    pub op: &'static str,
    /// The change's sequence number in its stream.
    pub seq: i64,
    /// The record's payload, a JSON object.
    pub payload: &'a str,
}

/// Turns the changes of a batch into events and deliveries (the tenant's routes); returns nothing
/// for a change no route takes.
pub trait ChangeEvents: Send + Sync {
    /// The event (and its deliveries) for `change`; `None` when no route takes it.
    fn events_for(&self, change: &Change<'_>) -> Option<(NewEvent, Vec<NewDelivery>)>;

    /// Whether some change of `entity` may become an event (when not, a batch is written without
    /// asking [`ChangeEvents::events_for`] about each change).
    fn may_emit(&self, entity: &str) -> bool {
        let _ = entity;
        true
    }
}

/// What committing a batch did.
#[derive(Debug, Clone, Default)]
pub struct BatchOutcome {
    /// What the batch (or the finished run) added to the run's counters.
    pub counts: Counts,
    /// Someone asked to cancel the run.
    pub cancel_requested: bool,
    /// Deliveries stored for change events (wake the dispatchers when > 0).
    pub deliveries: usize,
}

/// A batch of an import run.
pub struct ImportBatch<'a> {
    /// The run's lease.
    pub lease: Lease<'a>,
    /// The tenant's id.
    pub tenant: &'a str,
    /// The installation whose connector read the records.
    pub installation: &'a str,
    /// The records' entity.
    pub entity: &'a str,
    /// Distinct external ids (the sync engine's `prepare_records` keeps the last of each).
    pub records: &'a [IncomingRecord],
    /// Item errors of the batch.
    pub errors: &'a [ItemError],
    /// Records the connector returned (before deduplication).
    pub fetched: i64,
    /// The cursor to continue from; `None` when the source is exhausted.
    pub next_cursor: Option<&'a str>,
    /// How many records the source holds, when the connector says.
    pub total: Option<i64>,
    /// Turns changes into events; `None` when no change becomes an event.
    pub events: Option<&'a dyn ChangeEvents>,
}

/// The result of writing one record to a destination, for [`Store::commit_export_batch`].
#[derive(Debug, Clone)]
pub enum ExportOutcome {
    /// Created or updated there, under this id.
    Written {
        /// `rec_<hex>`: the record's id in the records store.
        local_id: String,
        /// The record's id at the destination.
        external_id: String,
        /// Whether the destination created it (rather than updated it).
        created: bool,
    },
    /// Deleted there.
    Deleted {
        /// `rec_<hex>`: the record's id in the records store.
        local_id: String,
    },
    /// Not sent (nothing to do, e.g. deleting a record never exported).
    Skipped,
    /// The destination refused it.
    Failed {
        /// `rec_<hex>`: the record's id in the records store.
        local_id: String,
        /// Why it failed.
        message: String,
    },
}

/// A stored record.
#[derive(Debug, Clone)]
pub struct RecordRow {
    /// The record's id in the source.
    pub external_id: String,
    /// `rec_<hex>`: the record's id in the records store.
    pub local_id: String,
    /// The record's payload, a JSON object.
    pub payload: String,
    /// Its last change's sequence number in the stream.
    pub seq: i64,
    /// Its last change: `created`, `updated` or `deleted`.
    pub op: String,
    /// When it was first stored, in unix milliseconds.
    pub first_seen_at: i64,
    /// When a run last read it, in unix milliseconds.
    pub last_seen_at: i64,
    /// When it last changed, in unix milliseconds.
    pub changed_at: i64,
    /// When it was deleted, in unix milliseconds; `None` while it exists.
    pub deleted_at: Option<i64>,
}

const RECORD_COLUMNS: &str =
    "external_id, local_id, payload, seq, op, first_seen_at, last_seen_at, changed_at, deleted_at";

fn record_from(r: &AnyRow) -> Result<RecordRow, StoreError> {
    Ok(RecordRow {
        external_id: r.try_get("external_id")?,
        local_id: r.try_get("local_id")?,
        payload: r.try_get("payload")?,
        seq: r.try_get("seq")?,
        op: r.try_get("op")?,
        first_seen_at: r.try_get("first_seen_at")?,
        last_seen_at: r.try_get("last_seen_at")?,
        changed_at: r.try_get("changed_at")?,
        deleted_at: r.try_get("deleted_at")?,
    })
}

/// A stored item error.
#[derive(Debug, Clone)]
pub struct ErrorRow {
    /// The error's number within its run, from 1.
    pub n: i64,
    /// The failed record's id, in the source (for an export, in the records store); `None` if none.
    pub external_id: Option<String>,
    /// What went wrong.
    pub message: String,
    /// When it was stored, in unix milliseconds.
    pub created_at: i64,
}

/// A stored field mapping.
#[derive(Debug, Clone)]
pub struct MappingRow {
    /// The entity it maps.
    pub entity: String,
    /// The mapping, JSON text.
    pub mapping: String,
    /// Starts at 1; every replacement adds one.
    pub revision: i64,
    /// When it was last stored, in unix milliseconds.
    pub updated_at: i64,
}

/// A schedule to store.
#[derive(Debug, Clone)]
pub struct NewSchedule {
    /// `sch_<hex>`: the schedule's id.
    pub id: String,
    /// The tenant's id.
    pub tenant: String,
    /// The installation whose entity is synced.
    pub installation: String,
    /// The connector's entity.
    pub entity: String,
    /// Which way records flow.
    pub direction: Direction,
    /// Full or incremental.
    pub mode: SyncMode,
    /// Exports: the installation and entity whose records are written; `None` for imports.
    pub source: Option<(String, String)>,
    /// Fixed interval between runs, in seconds; `None` when `cron` is set.
    pub interval_secs: Option<i64>,
    /// Five-field cron expression, in UTC; `None` when `interval_secs` is set.
    pub cron: Option<String>,
    /// Whether the schedule queues runs.
    pub enabled: bool,
    /// When it is first due, in unix milliseconds.
    pub next_run_at: i64,
}

/// A stored schedule.
#[derive(Debug, Clone)]
pub struct ScheduleRow {
    /// `sch_<hex>`: the schedule's id.
    pub id: String,
    /// The tenant's id.
    pub tenant: String,
    /// The installation whose entity is synced.
    pub installation: String,
    /// The connector's entity.
    pub entity: String,
    /// Which way records flow.
    pub direction: Direction,
    /// Full or incremental.
    pub mode: SyncMode,
    /// Exports: the installation and entity whose records are written; `None` for imports.
    pub source: Option<(String, String)>,
    /// Fixed interval between runs, in seconds; `None` when `cron` is set.
    pub interval_secs: Option<i64>,
    /// Five-field cron expression, in UTC; `None` when `interval_secs` is set.
    pub cron: Option<String>,
    /// Whether the schedule queues runs.
    pub enabled: bool,
    /// When it is next due, in unix milliseconds.
    pub next_run_at: i64,
    /// The run it last queued; `None` before the first.
    pub last_run_id: Option<String>,
    /// When it last fired, in unix milliseconds (firing queues nothing while a run is active).
    pub last_fired_at: Option<i64>,
    /// When it was created, in unix milliseconds.
    pub created_at: i64,
    /// When it was last changed, in unix milliseconds.
    pub updated_at: i64,
}

const SCHEDULE_COLUMNS: &str = "id, tenant, installation, entity, direction, mode, source_installation, \
     source_entity, interval_secs, cron, enabled, next_run_at, last_run_id, last_fired_at, created_at, updated_at";

fn schedule_from(r: &AnyRow) -> Result<ScheduleRow, StoreError> {
    let (direction, mode, source) = stream_of(r, "schedule")?;
    Ok(ScheduleRow {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant")?,
        installation: r.try_get("installation")?,
        entity: r.try_get("entity")?,
        direction,
        mode,
        source,
        interval_secs: r.try_get("interval_secs")?,
        cron: r.try_get("cron")?,
        enabled: flag(r, "enabled")?,
        next_run_at: r.try_get("next_run_at")?,
        last_run_id: r.try_get("last_run_id")?,
        last_fired_at: r.try_get("last_fired_at")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Placeholders `count` parameters starting after `before` bound ones: `?` on SQLite (positional,
/// see `bulk::InsertSql::sql`), `$n` on PostgreSQL.
///
/// Statements with `IN (…)` lists of these run unprepared (`persistent(false)`): a prepared
/// statement executed a few times gets PostgreSQL's generic plan, which cannot see that the list
/// is short and scans the whole table (measured: a 1 000-id lookup went from milliseconds to six
/// seconds on a 200 000-record stream). Unprepared, each execution is planned with its values and
/// uses the primary key.
fn placeholders(backend: Backend, before: usize, count: usize) -> String {
    let mut s = String::with_capacity(count * 6);
    for i in 0..count {
        if i > 0 {
            s.push_str(", ");
        }
        match backend {
            Backend::Sqlite => s.push('?'),
            Backend::Postgres => {
                s.push('$');
                s.push_str(&(before + i + 1).to_string());
            }
        }
    }
    s
}

/// A parameter of a statement with positional placeholders (`?` on SQLite).
fn p(backend: Backend, n: usize) -> String {
    match backend {
        Backend::Sqlite => "?".into(),
        Backend::Postgres => format!("${n}"),
    }
}

/// The stream key of [`sync_cursors`]: `''` for imports, `<installation>/<entity>` for exports.
fn stream_source(source: Option<&(String, String)>) -> String {
    source.map(|(i, e)| format!("{i}/{e}")).unwrap_or_default()
}

/// The lease was lost: another host took the run over (or it was finished meanwhile).
pub(crate) fn lease_lost(run_id: &str) -> StoreError {
    StoreError::Conflict(format!("sync run {run_id} is no longer held by this worker"))
}

/// Whether `e` says a run's lease was lost (see [`Store::commit_import_batch`]).
pub fn is_lease_lost(e: &StoreError) -> bool {
    matches!(e, StoreError::Conflict(m) if m.ends_with("is no longer held by this worker"))
}

/// Touches a run row still held by its lease: `$1` now, `$2` run id, `$3` lease owner.
pub(crate) const FENCE_SQL: &str = "UPDATE sync_runs SET updated_at = $1 WHERE id = $2 AND lease_owner = $3 \
     AND status = 'running' RETURNING failed, cancel_requested";

/// Adds a batch to its run: `$1` cursor, `$2`–`$7` the counts (fetched, created, updated,
/// unchanged, deleted, failed), `$8` total, `$9` lease end, `$10` active ms, `$11` now, `$12` run
/// id, `$13` the sequence number before the batch.
pub(crate) const ADVANCE_RUN_SQL: &str = "UPDATE sync_runs SET cursor = $1, batches = batches + 1, \
     fetched = fetched + $2, created = created + $3, updated = updated + $4, unchanged = unchanged + $5, \
     deleted = deleted + $6, failed = failed + $7, total = COALESCE($8, total), attempts = 0, error = NULL, \
     lease_until = $9, next_attempt_at = $9, active_ms = active_ms + $10, updated_at = $11, \
     base_seq = COALESCE(base_seq, $13) WHERE id = $12";

/// Touches the run row if `lease` still holds it; returns `(failed so far, cancel requested)`.
async fn fence(tx: &mut Transaction<'static, Any>, lease: &Lease<'_>) -> Result<(i64, bool), StoreError> {
    let row = sqlx::query(FENCE_SQL)
        .bind(now_ms())
        .bind(lease.run_id)
        .bind(lease.owner)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| lease_lost(lease.run_id))?;
    Ok((row.try_get("failed")?, flag(&row, "cancel_requested")?))
}

/// Stores item errors numbered from `failed_before`, up to [`MAX_STORED_ERRORS`] per run.
async fn insert_errors(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    run_id: &str,
    failed_before: i64,
    errors: &[ItemError],
) -> Result<(), StoreError> {
    let room = usize::try_from(MAX_STORED_ERRORS.saturating_sub(failed_before)).unwrap_or(0);
    let errors = &errors[..errors.len().min(room)];
    if errors.is_empty() {
        return Ok(());
    }
    let numbered: Vec<(i64, &ItemError)> =
        errors.iter().enumerate().map(|(i, e)| (failed_before + i as i64 + 1, e)).collect();
    let now = now_ms();
    insert_rows(
        tx,
        backend,
        Rows::Many,
        &INSERT_ERROR,
        &numbered,
        |q, (n, e)| q.bind(run_id).bind(*n).bind(e.external_id.as_deref()).bind(e.message.as_str()).bind(now),
        |e, _| e.into(),
    )
    .await?;
    Ok(())
}

const INSERT_ERROR: InsertSql = InsertSql {
    head: "INSERT INTO sync_errors (run_id, n, external_id, message, created_at)",
    row: "(?, ?, ?, ?, ?)",
    tail: " ON CONFLICT (run_id, n) DO NOTHING",
};

const UPSERT_LINK: InsertSql = InsertSql {
    head: "INSERT INTO record_links (tenant, installation, entity, local_id, external_id, updated_at)",
    row: "(?, ?, ?, ?, ?, ?)",
    tail: " ON CONFLICT (installation, entity, local_id) DO UPDATE SET external_id = excluded.external_id, \
           updated_at = excluded.updated_at",
};

const UPSERT_RECORD: InsertSql = InsertSql {
    head: "INSERT INTO records (stream, external_id, local_id, payload, hash, seq, op, first_seen_at, last_seen_at, \
           changed_at, deleted_at, seen_run)",
    row: "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    tail: " ON CONFLICT (stream, external_id) DO UPDATE SET \
           payload = CASE WHEN excluded.op = 'deleted' THEN records.payload ELSE excluded.payload END, \
           hash = CASE WHEN excluded.op = 'deleted' THEN records.hash ELSE excluded.hash END, \
           seq = excluded.seq, op = excluded.op, last_seen_at = excluded.last_seen_at, \
           changed_at = excluded.changed_at, deleted_at = excluded.deleted_at, seen_run = excluded.seen_run",
};

/// What the store holds of a record, for classifying an incoming one.
struct Stored {
    hash: i64,
    deleted: bool,
    local_id: String,
}

/// A record row to upsert.
struct Upsert<'a> {
    external_id: &'a str,
    local_id: String,
    payload: &'a str,
    hash: i64,
    seq: i64,
    op: &'static str,
    deleted_at: Option<i64>,
}

/// The highest change sequence number of a stream.
async fn max_seq(tx: &mut Transaction<'static, Any>, stream: i64) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) AS s FROM records WHERE stream = $1")
        .bind(stream)
        .fetch_one(&mut **tx)
        .await?;
    Ok(row.try_get("s")?)
}

/// The id of the records stream `(installation, entity)`, created on first use.
pub(crate) async fn stream_id(
    tx: &mut Transaction<'static, Any>,
    tenant: &str,
    installation: &str,
    entity: &str,
) -> Result<i64, StoreError> {
    const FIND: &str = "SELECT id FROM record_streams WHERE installation = $1 AND entity = $2";
    if let Some(row) = sqlx::query(FIND).bind(installation).bind(entity).fetch_optional(&mut **tx).await? {
        return Ok(row.try_get("id")?);
    }
    sqlx::query(
        "INSERT INTO record_streams (tenant, installation, entity) VALUES ($1, $2, $3) \
         ON CONFLICT (installation, entity) DO NOTHING",
    )
    .bind(tenant)
    .bind(installation)
    .bind(entity)
    .execute(&mut **tx)
    .await
    .map_err(|e| super::missing_installation(e, installation))?;
    let row = sqlx::query(FIND).bind(installation).bind(entity).fetch_one(&mut **tx).await?;
    Ok(row.try_get("id")?)
}

/// Selects a stream's records in the queries that name it by `(installation, entity)` as `$1, $2`.
const BY_STREAM: &str = "stream = (SELECT id FROM record_streams WHERE installation = $1 AND entity = $2)";

/// Stored state of the records with these external ids.
async fn stored_records(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    stream: i64,
    ids: &[&str],
) -> Result<HashMap<String, Stored>, StoreError> {
    let mut out = HashMap::with_capacity(ids.len());
    let chunk = max_params(backend) - 1;
    for ids in ids.chunks(chunk) {
        let sql = format!(
            "SELECT external_id, hash, op, local_id FROM records WHERE stream = {} AND external_id IN ({})",
            p(backend, 1),
            placeholders(backend, 1, ids.len())
        );
        let mut q = sqlx::query(&sql).persistent(false).bind(stream);
        for id in ids {
            q = q.bind(*id);
        }
        for r in q.fetch_all(&mut **tx).await? {
            let op: String = r.try_get("op")?;
            out.insert(
                r.try_get("external_id")?,
                Stored { hash: r.try_get("hash")?, deleted: op == "deleted", local_id: r.try_get("local_id")? },
            );
        }
    }
    Ok(out)
}

/// Marks records as seen by `run_id` without touching their payload or sequence number.
async fn touch_records(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    stream: i64,
    run_id: &str,
    now: i64,
    ids: &[&str],
) -> Result<(), StoreError> {
    let chunk = max_params(backend) - 3;
    for ids in ids.chunks(chunk) {
        let sql = format!(
            "UPDATE records SET last_seen_at = {}, seen_run = {} WHERE stream = {} AND external_id IN ({})",
            p(backend, 1),
            p(backend, 2),
            p(backend, 3),
            placeholders(backend, 3, ids.len())
        );
        let mut q = sqlx::query(&sql).persistent(false).bind(now).bind(run_id).bind(stream);
        for id in ids {
            q = q.bind(*id);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Writes `upserts` and the change events routes take; returns the deliveries stored.
#[allow(clippy::too_many_arguments)]
async fn write_changes(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    stream: i64,
    installation: &str,
    entity: &str,
    run_id: &str,
    now: i64,
    upserts: &[Upsert<'_>],
    events: Option<&dyn ChangeEvents>,
) -> Result<usize, StoreError> {
    if upserts.is_empty() {
        return Ok(0);
    }
    insert_rows(
        tx,
        backend,
        Rows::Many,
        &UPSERT_RECORD,
        upserts,
        |q, u| {
            q.bind(stream)
                .bind(u.external_id)
                .bind(u.local_id.as_str())
                .bind(u.payload)
                .bind(u.hash)
                .bind(u.seq)
                .bind(u.op)
                .bind(now)
                .bind(now)
                .bind(now)
                .bind(u.deleted_at)
                .bind(run_id)
        },
        |e, _| match violation(&e) {
            Some(ErrorKind::ForeignKeyViolation) => {
                StoreError::NotFound(format!("installation {installation} not found"))
            }
            _ => e.into(),
        },
    )
    .await?;
    let Some(router) = events else { return Ok(0) };
    let mut new_events = Vec::new();
    let mut deliveries = Vec::new();
    for u in upserts {
        let change = Change {
            entity,
            local_id: &u.local_id,
            external_id: u.external_id,
            op: u.op,
            seq: u.seq,
            payload: u.payload,
        };
        if let Some((e, d)) = router.events_for(&change) {
            new_events.push(e);
            deliveries.extend(d);
        }
    }
    if new_events.is_empty() {
        return Ok(0);
    }
    let events: Vec<(&NewEvent, Option<&str>)> = new_events.iter().map(|e| (e, None)).collect();
    let refs: Vec<&NewDelivery> = deliveries.iter().collect();
    insert_events(tx, backend, Rows::Many, &events, &refs).await?;
    Ok(deliveries.len())
}

/// The condition selecting `n` local ids' links of one destination stream, with the
/// installation and entity bound first.
fn links_of(backend: Backend, n: usize) -> String {
    format!(
        "installation = {} AND entity = {} AND local_id IN ({})",
        p(backend, 1),
        p(backend, 2),
        placeholders(backend, 2, n)
    )
}

/// Fresh local record ids (`rec_` + 64 random bits), as many as asked for, from one call to the
/// system's random source (one call per id cost a system call per stored record).
pub(crate) struct LocalIds {
    bytes: Vec<u8>,
}

impl LocalIds {
    pub(crate) fn new(n: usize) -> LocalIds {
        use ring::rand::SecureRandom;
        let mut bytes = vec![0u8; n * 8];
        // SystemRandom only fails if the OS has no entropy source at all.
        let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
        LocalIds { bytes }
    }

    /// The next id; a fresh one from the system when the prepared ones are used up.
    pub(crate) fn next_id(&mut self) -> String {
        match self.bytes.len().checked_sub(8) {
            Some(rest) => {
                let id = format!("rec_{}", hex::encode(&self.bytes[rest..]));
                self.bytes.truncate(rest);
                id
            }
            None => patchbay_core::new_id("rec"),
        }
    }
}

impl Store {
    /// Queues a run. Incremental runs start from the stream's saved cursor. `Conflict` (naming the
    /// active run) when the stream already has a queued or running run.
    pub async fn create_sync_run(&self, run: &NewRun) -> Result<RunRow, StoreError> {
        let mut tx = self.begin_write().await?;
        let row = match insert_run(&mut tx, run, now_ms()).await {
            Ok(r) => r,
            Err(StoreError::Db(e)) => {
                drop(tx);
                return Err(self.run_insert_error(e, &run.installation, &run.entity, run.direction).await);
            }
            Err(e) => return Err(e),
        };
        tx.commit().await?;
        Ok(row)
    }

    /// The error for a run that could not be queued: `Conflict` naming the active run of the
    /// stream, `NotFound` for an unknown installation.
    async fn run_insert_error(
        &self,
        e: sqlx::Error,
        installation: &str,
        entity: &str,
        direction: Direction,
    ) -> StoreError {
        match violation(&e) {
            Some(ErrorKind::UniqueViolation) => {
                let active = self.active_run(installation, entity, direction).await.ok().flatten();
                StoreError::Conflict(match active {
                    Some(r) => format!(
                        "{entity} of installation {installation} already has a {} {} run: {}",
                        r.status.as_str(),
                        direction.as_str(),
                        r.id
                    ),
                    None => format!("{entity} of installation {installation} already has an active run"),
                })
            }
            Some(ErrorKind::ForeignKeyViolation) => StoreError::NotFound("installation not found".into()),
            _ => e.into(),
        }
    }

    /// The queued or running run of a stream.
    pub(crate) async fn active_run(
        &self,
        installation: &str,
        entity: &str,
        direction: Direction,
    ) -> Result<Option<RunRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM sync_runs WHERE installation = $1 AND entity = $2 AND direction = $3 \
             AND status IN ('queued', 'running')"
        ))
        .bind(installation)
        .bind(entity)
        .bind(direction.as_str())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(run_from).transpose()
    }

    /// A run of the tenant.
    pub async fn sync_run(&self, tenant: &str, id: &str) -> Result<Option<RunRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {RUN_COLUMNS} FROM sync_runs WHERE tenant = $1 AND id = $2"))
            .bind(tenant)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(run_from).transpose()
    }

    /// A page of the tenant's runs, newest first (by creation time, then id, both descending);
    /// `f.after` is the previous page's last `(created_at, id)`.
    pub async fn sync_runs(&self, tenant: &str, f: &RunFilter) -> Result<Page<RunRow>, StoreError> {
        let mut sql = format!("SELECT {RUN_COLUMNS} FROM sync_runs WHERE tenant = $1");
        let mut n = 1;
        let mut next = |col: &str, sql: &mut String| {
            n += 1;
            sql.push_str(&format!(" AND {col} = ${n}"));
        };
        if f.installation.is_some() {
            next("installation", &mut sql);
        }
        if f.entity.is_some() {
            next("entity", &mut sql);
        }
        if f.status.is_some() {
            next("status", &mut sql);
        }
        if f.page.after.is_some() {
            sql.push_str(&format!(" AND (created_at, id) < (${}, ${})", n + 1, n + 2));
            n += 2;
        }
        sql.push_str(&format!(" ORDER BY created_at DESC, id DESC LIMIT ${}", n + 1));
        let mut q = sqlx::query(&sql).bind(tenant);
        if let Some(i) = &f.installation {
            q = q.bind(i);
        }
        if let Some(e) = &f.entity {
            q = q.bind(e);
        }
        if let Some(s) = f.status {
            q = q.bind(s.as_str());
        }
        if let Some((at, id)) = &f.page.after {
            q = q.bind(*at).bind(id);
        }
        let rows = q.bind(f.page.fetch()).fetch_all(self.pool()).await?;
        Ok(Page::of(rows.iter().map(run_from).collect::<Result<_, _>>()?, &f.page))
    }

    /// Asks a run to stop. A queued run (or a running one whose host died) is cancelled at once; a
    /// running one stops at its next batch. `Conflict` when the run is already finished.
    pub async fn cancel_sync_run(&self, tenant: &str, id: &str) -> Result<RunRow, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(&format!(
            "UPDATE sync_runs SET cancel_requested = TRUE, updated_at = $1, \
             status = CASE WHEN status = 'queued' OR lease_until < $1 THEN 'cancelled' ELSE status END, \
             finished_at = CASE WHEN status = 'queued' OR lease_until < $1 THEN $1 ELSE finished_at END, \
             lease_owner = CASE WHEN status = 'queued' OR lease_until < $1 THEN NULL ELSE lease_owner END, \
             lease_until = CASE WHEN status = 'queued' OR lease_until < $1 THEN NULL ELSE lease_until END \
             WHERE tenant = $2 AND id = $3 AND status IN ('queued', 'running') RETURNING {RUN_COLUMNS}"
        ))
        .bind(now)
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        match row {
            Some(r) => run_from(&r),
            None => match self.sync_run(tenant, id).await? {
                Some(r) => Err(StoreError::Conflict(format!("sync run {id} is already {}", r.status.as_str()))),
                None => Err(StoreError::NotFound(format!("sync run {id} not found"))),
            },
        }
    }

    /// Queues a failed or cancelled run again; it continues from its last committed cursor with its
    /// counters. `Conflict` when it is not failed or cancelled, or the stream has another active run.
    pub async fn resume_sync_run(&self, tenant: &str, id: &str) -> Result<RunRow, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(&format!(
            "UPDATE sync_runs SET status = 'queued', cancel_requested = FALSE, error = NULL, attempts = 0, \
             finished_at = NULL, next_attempt_at = $1, updated_at = $1 \
             WHERE tenant = $2 AND id = $3 AND status IN ('failed', 'cancelled') RETURNING {RUN_COLUMNS}"
        ))
        .bind(now)
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await;
        let row = match updated {
            Ok(r) => r,
            Err(e) => {
                drop(tx);
                let run = self.sync_run(tenant, id).await?;
                return Err(match run {
                    Some(r) => self.run_insert_error(e, &r.installation, &r.entity, r.direction).await,
                    None => e.into(),
                });
            }
        };
        tx.commit().await?;
        match row {
            Some(r) => run_from(&r),
            None => match self.sync_run(tenant, id).await? {
                Some(r) => Err(StoreError::Conflict(format!(
                    "sync run {id} is {}; only failed or cancelled runs can be resumed",
                    r.status.as_str()
                ))),
                None => Err(StoreError::NotFound(format!("sync run {id} not found"))),
            },
        }
    }

    /// Claims up to `limit` due runs for `owner`: queued ones whose time has come and running ones
    /// whose lease expired.
    pub async fn claim_sync_runs(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<RunRow>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE sync_runs SET status = 'running', lease_owner = $1, lease_until = $2, next_attempt_at = $2, \
             started_at = COALESCE(started_at, $3), updated_at = $3 \
             WHERE id IN (SELECT id FROM sync_runs WHERE status IN ('queued', 'running') AND next_attempt_at <= $3 \
             ORDER BY next_attempt_at LIMIT $4{lock}) RETURNING {RUN_COLUMNS}"
        );
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(&sql)
            .bind(owner)
            .bind(now_ms.saturating_add(lease_ms))
            .bind(now_ms)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        rows.iter().map(run_from).collect()
    }

    /// When the next run becomes claimable (queued, or a lease expiring), if any.
    pub async fn next_sync_due_at(&self) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT MIN(next_attempt_at) AS t FROM sync_runs WHERE status IN ('queued', 'running')")
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("t")?)
    }

    /// Extends a held lease (never shortens it: a renewal that waited for the run's batch
    /// transaction may come after that batch extended it further) and records the time spent;
    /// `Ok(cancel requested)`, or the lease-lost `Conflict` (see [`is_lease_lost`]).
    pub async fn renew_sync_lease(&self, lease: &Lease<'_>, note: Option<&str>) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_relaxed().await?;
        let row = sqlx::query(
            "UPDATE sync_runs SET lease_until = CASE WHEN lease_until > $1 THEN lease_until ELSE $1 END, \
             next_attempt_at = CASE WHEN lease_until > $1 THEN lease_until ELSE $1 END, \
             active_ms = active_ms + $2, error = COALESCE($3, error), updated_at = $4 \
             WHERE id = $5 AND lease_owner = $6 AND status = 'running' RETURNING cancel_requested",
        )
        .bind(now.saturating_add(lease.lease_ms))
        .bind(lease.active_ms)
        .bind(note)
        .bind(now)
        .bind(lease.run_id)
        .bind(lease.owner)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        match row {
            Some(r) => Ok(flag(&r, "cancel_requested")?),
            None => Err(lease_lost(lease.run_id)),
        }
    }

    /// Records a failed attempt of the current batch (the run keeps its lease and waits).
    pub async fn note_sync_attempt(&self, lease: &Lease<'_>, attempts: i64, error: &str) -> Result<(), StoreError> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE sync_runs SET attempts = $1, error = $2, active_ms = active_ms + $3, updated_at = $4 \
             WHERE id = $5 AND lease_owner = $6 AND status = 'running'",
        )
        .bind(attempts)
        .bind(error)
        .bind(lease.active_ms)
        .bind(now)
        .bind(lease.run_id)
        .bind(lease.owner)
        .execute(self.writer())
        .await?;
        if done.rows_affected() == 0 {
            return Err(lease_lost(lease.run_id));
        }
        Ok(())
    }

    /// Ends a held run as failed or cancelled (with `error`), releasing its lease.
    pub async fn end_sync_run(
        &self,
        lease: &Lease<'_>,
        status: RunStatus,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE sync_runs SET status = $1, error = $2, lease_owner = NULL, lease_until = NULL, \
             active_ms = active_ms + $3, finished_at = $4, updated_at = $4 \
             WHERE id = $5 AND lease_owner = $6 AND status = 'running'",
        )
        .bind(status.as_str())
        .bind(error)
        .bind(lease.active_ms)
        .bind(now)
        .bind(lease.run_id)
        .bind(lease.owner)
        .execute(self.writer())
        .await?;
        if done.rows_affected() == 0 {
            return Err(lease_lost(lease.run_id));
        }
        Ok(())
    }

    /// Commits one batch of an import run: records, item errors, change events with their
    /// deliveries, counters and the batch's cursor, in one transaction (the module doc says how).
    /// The lease-lost `Conflict` when the run is no longer held by `batch.lease.owner`.
    pub async fn commit_import_batch(&self, batch: &ImportBatch<'_>) -> Result<BatchOutcome, StoreError> {
        if let Some(writer) = &self.batch_writer
            && batch.events.is_none_or(|e| !e.may_emit(batch.entity))
        {
            // The write turn first (see `Store::writer`): holding the writer connection idle
            // keeps this process's other writes queued behind the batch rather than busy-waiting
            // in SQLite.
            return self.in_write_turn(|| writer.commit_import_batch(batch)).await;
        }
        if let Some(writer) = &self.pg_batch
            && batch.events.is_none_or(|e| !e.may_emit(batch.entity))
        {
            return writer.commit_import_batch(batch).await;
        }
        let backend = self.backend();
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let (failed_before, cancel_requested) = fence(&mut tx, &batch.lease).await?;
        let stream = stream_id(&mut tx, batch.tenant, batch.installation, batch.entity).await?;
        let ids: Vec<&str> = batch.records.iter().map(|r| r.external_id.as_str()).collect();
        let stored =
            if ids.is_empty() { HashMap::new() } else { stored_records(&mut tx, backend, stream, &ids).await? };
        let mut counts = Counts { fetched: batch.fetched, failed: batch.errors.len() as i64, ..Counts::default() };
        let mut seq = max_seq(&mut tx, stream).await?;
        let base_seq = seq;
        let mut local_ids = LocalIds::new(batch.records.len());
        let mut upserts = Vec::new();
        let mut touched: Vec<&str> = Vec::new();
        for r in batch.records {
            let (op, local_id) = match (stored.get(&r.external_id), r.deleted) {
                (None, false) => ("created", local_ids.next_id()),
                // A deletion of a record never stored: nothing to record.
                (None, true) => {
                    counts.unchanged += 1;
                    continue;
                }
                (Some(s), true) if s.deleted => {
                    counts.unchanged += 1;
                    touched.push(&r.external_id);
                    continue;
                }
                (Some(s), true) => ("deleted", s.local_id.clone()),
                // Back after a deletion.
                (Some(s), false) if s.deleted => ("created", s.local_id.clone()),
                (Some(s), false) if s.hash == r.hash => {
                    counts.unchanged += 1;
                    touched.push(&r.external_id);
                    continue;
                }
                (Some(s), false) => ("updated", s.local_id.clone()),
            };
            match op {
                "created" => counts.created += 1,
                "updated" => counts.updated += 1,
                _ => counts.deleted += 1,
            }
            seq += 1;
            upserts.push(Upsert {
                external_id: &r.external_id,
                local_id,
                payload: &r.payload,
                hash: r.hash,
                seq,
                op,
                deleted_at: (op == "deleted").then_some(now),
            });
        }
        // A record that failed to read is not gone: keep it from a full run's deletion sweep.
        touched.extend(batch.errors.iter().filter_map(|e| e.external_id.as_deref()));
        touch_records(&mut tx, backend, stream, batch.lease.run_id, now, &touched).await?;
        let deliveries = write_changes(
            &mut tx,
            backend,
            stream,
            batch.installation,
            batch.entity,
            batch.lease.run_id,
            now,
            &upserts,
            batch.events,
        )
        .await?;
        insert_errors(&mut tx, backend, batch.lease.run_id, failed_before, batch.errors).await?;
        advance_run(&mut tx, &batch.lease, batch.next_cursor, batch.total, Some(base_seq), &counts, now).await?;
        tx.commit().await?;
        Ok(BatchOutcome { counts, cancel_requested, deliveries })
    }

    /// Ends a held import run as succeeded: a full run without item errors first marks the
    /// stream's records it did not see as deleted (with their change events); the final cursor
    /// becomes the stream's starting point for incremental runs. One transaction.
    pub async fn finish_import_run(
        &self,
        run: &RunRow,
        lease: &Lease<'_>,
        events: Option<&dyn ChangeEvents>,
    ) -> Result<BatchOutcome, StoreError> {
        let backend = self.backend();
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let (failed_before, _) = fence(&mut tx, lease).await?;
        let mut counts = Counts::default();
        let mut deliveries = 0;
        if run.mode == SyncMode::Full && failed_before == 0 {
            let stream = stream_id(&mut tx, &run.tenant, &run.installation, &run.entity).await?;
            // Records above the run's base were written by the run (see 0005_record_streams.sql).
            let base: Option<i64> = sqlx::query("SELECT base_seq FROM sync_runs WHERE id = $1")
                .bind(&run.id)
                .fetch_one(&mut *tx)
                .await?
                .try_get("base_seq")?;
            let rows = sqlx::query(
                "SELECT external_id, local_id, payload FROM records WHERE stream = $1 AND seq <= $2 \
                 AND op <> 'deleted' AND (seen_run IS NULL OR seen_run <> $3) ORDER BY seq",
            )
            .bind(stream)
            .bind(base.unwrap_or(i64::MAX))
            .bind(&run.id)
            .fetch_all(&mut *tx)
            .await?;
            let gone: Vec<(String, String, String)> = rows
                .iter()
                .map(|r| Ok((r.try_get("external_id")?, r.try_get("local_id")?, r.try_get("payload")?)))
                .collect::<Result<_, sqlx::Error>>()?;
            let mut seq = max_seq(&mut tx, stream).await?;
            let upserts: Vec<Upsert<'_>> = gone
                .iter()
                .map(|(ext, local, payload)| {
                    seq += 1;
                    Upsert {
                        external_id: ext,
                        local_id: local.clone(),
                        payload,
                        hash: 0,
                        seq,
                        op: "deleted",
                        deleted_at: Some(now),
                    }
                })
                .collect();
            counts.deleted = upserts.len() as i64;
            deliveries =
                write_changes(&mut tx, backend, stream, &run.installation, &run.entity, &run.id, now, &upserts, events)
                    .await?;
        }
        close_run(&mut tx, run, lease, &counts, now).await?;
        tx.commit().await?;
        Ok(BatchOutcome { counts, cancel_requested: false, deliveries })
    }

    /// Records of a stream changed after `since`, in change order: the records API's page and an
    /// export's batch.
    pub async fn record_changes(
        &self,
        installation: &str,
        entity: &str,
        since: i64,
        limit: u32,
    ) -> Result<Vec<RecordRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {RECORD_COLUMNS} FROM records WHERE {BY_STREAM} AND seq > $3 ORDER BY seq LIMIT $4"
        ))
        .bind(installation)
        .bind(entity)
        .bind(since)
        .bind(i64::from(limit.max(1)))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(record_from).collect()
    }

    /// A page of a stream's change feed: records changed after the sequence number `page.after`
    /// (0 when `None`), in change order.
    pub async fn record_changes_page(
        &self,
        installation: &str,
        entity: &str,
        page: &PageRequest<i64>,
    ) -> Result<Page<RecordRow>, StoreError> {
        let fetch = u32::try_from(page.fetch()).unwrap_or(u32::MAX);
        let rows = self.record_changes(installation, entity, page.after.unwrap_or(0), fetch).await?;
        Ok(Page::of(rows, page))
    }

    /// One record of a stream by external id.
    pub async fn record(
        &self,
        installation: &str,
        entity: &str,
        external_id: &str,
    ) -> Result<Option<RecordRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {RECORD_COLUMNS} FROM records WHERE {BY_STREAM} AND external_id = $3"))
            .bind(installation)
            .bind(entity)
            .bind(external_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(record_from).transpose()
    }

    /// How many live (not deleted) and deleted records a stream holds, and its last sequence number.
    pub async fn record_stats(&self, installation: &str, entity: &str) -> Result<(i64, i64, i64), StoreError> {
        let row = sqlx::query(&format!(
            "SELECT COALESCE(SUM(CASE WHEN op <> 'deleted' THEN 1 ELSE 0 END), 0) AS live, \
             COALESCE(SUM(CASE WHEN op = 'deleted' THEN 1 ELSE 0 END), 0) AS gone, COALESCE(MAX(seq), 0) AS seq \
             FROM records WHERE {BY_STREAM}"
        ))
        .bind(installation)
        .bind(entity)
        .fetch_one(self.pool())
        .await?;
        Ok((row.try_get("live")?, row.try_get("gone")?, row.try_get("seq")?))
    }

    /// The destination ids the given local records were exported to.
    pub async fn record_links(
        &self,
        installation: &str,
        entity: &str,
        local_ids: &[&str],
    ) -> Result<HashMap<String, String>, StoreError> {
        let backend = self.backend();
        let mut out = HashMap::new();
        for ids in local_ids.chunks(max_params(backend) - 2) {
            let sql = format!("SELECT local_id, external_id FROM record_links WHERE {}", links_of(backend, ids.len()));
            let mut q = sqlx::query(&sql).persistent(false).bind(installation).bind(entity);
            for id in ids {
                q = q.bind(*id);
            }
            for r in q.fetch_all(self.pool()).await? {
                out.insert(r.try_get("local_id")?, r.try_get("external_id")?);
            }
        }
        Ok(out)
    }

    /// Commits one batch of an export run: the destination ids of written records, item errors,
    /// counters and the cursor (the last change sequence number sent), in one transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn commit_export_batch(
        &self,
        lease: &Lease<'_>,
        tenant: &str,
        installation: &str,
        entity: &str,
        outcomes: &[ExportOutcome],
        fetched: i64,
        cursor: &str,
    ) -> Result<BatchOutcome, StoreError> {
        let backend = self.backend();
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let (failed_before, cancel_requested) = fence(&mut tx, lease).await?;
        let mut counts = Counts { fetched, ..Counts::default() };
        let mut errors = Vec::new();
        let mut written: Vec<(&str, &str)> = Vec::new();
        let mut removed: Vec<&str> = Vec::new();
        for o in outcomes {
            match o {
                ExportOutcome::Written { local_id, external_id, created } => {
                    if *created {
                        counts.created += 1;
                    } else {
                        counts.updated += 1;
                    }
                    written.push((local_id, external_id));
                }
                ExportOutcome::Deleted { local_id } => {
                    counts.deleted += 1;
                    removed.push(local_id);
                }
                ExportOutcome::Skipped => counts.unchanged += 1,
                ExportOutcome::Failed { local_id, message } => {
                    counts.failed += 1;
                    errors.push(ItemError { external_id: Some(local_id.clone()), message: message.clone() });
                }
            }
        }
        insert_rows(
            &mut tx,
            backend,
            Rows::Many,
            &UPSERT_LINK,
            &written,
            |q, (local_id, external_id)| {
                q.bind(tenant).bind(installation).bind(entity).bind(*local_id).bind(*external_id).bind(now)
            },
            |e, _| e.into(),
        )
        .await?;
        for ids in removed.chunks(max_params(backend) - 2) {
            let sql = format!("DELETE FROM record_links WHERE {}", links_of(backend, ids.len()));
            let mut q = sqlx::query(&sql).persistent(false).bind(installation).bind(entity);
            for id in ids {
                q = q.bind(*id);
            }
            q.execute(&mut *tx).await?;
        }
        insert_errors(&mut tx, backend, lease.run_id, failed_before, &errors).await?;
        advance_run(&mut tx, lease, Some(cursor), None, None, &counts, now).await?;
        tx.commit().await?;
        Ok(BatchOutcome { counts, cancel_requested, deliveries: 0 })
    }

    /// Ends a held export run as succeeded and saves its cursor for incremental runs.
    pub async fn finish_export_run(&self, run: &RunRow, lease: &Lease<'_>) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        fence(&mut tx, lease).await?;
        close_run(&mut tx, run, lease, &Counts::default(), now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A page of a run's item errors, in order of their number; `page.after` is the previous
    /// page's last number.
    pub async fn sync_errors(&self, run_id: &str, page: &PageRequest<i64>) -> Result<Page<ErrorRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT n, external_id, message, created_at FROM sync_errors WHERE run_id = $1 AND n > $2 \
             ORDER BY n LIMIT $3",
        )
        .bind(run_id)
        .bind(page.after.unwrap_or(i64::MIN))
        .bind(page.fetch())
        .fetch_all(self.pool())
        .await?;
        let rows = rows
            .iter()
            .map(|r| {
                Ok(ErrorRow {
                    n: r.try_get("n")?,
                    external_id: r.try_get("external_id")?,
                    message: r.try_get("message")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Page::of(rows, page))
    }

    /// Stores (or replaces) the field mapping of an installation's entity; returns its revision.
    pub async fn put_sync_mapping(
        &self,
        tenant: &str,
        installation: &str,
        entity: &str,
        mapping: &str,
    ) -> Result<MappingRow, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "INSERT INTO sync_mappings (tenant, installation, entity, mapping, revision, updated_at) \
             VALUES ($1, $2, $3, $4, 1, $5) ON CONFLICT (installation, entity) DO UPDATE SET \
             mapping = excluded.mapping, revision = sync_mappings.revision + 1, updated_at = excluded.updated_at \
             RETURNING entity, mapping, revision, updated_at",
        )
        .bind(tenant)
        .bind(installation)
        .bind(entity)
        .bind(mapping)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| match violation(&e) {
            Some(ErrorKind::ForeignKeyViolation) => {
                StoreError::NotFound(format!("installation {installation} not found"))
            }
            _ => e.into(),
        })?;
        tx.commit().await?;
        mapping_from(&row)
    }

    /// The field mapping of an installation's entity.
    pub async fn sync_mapping(&self, installation: &str, entity: &str) -> Result<Option<MappingRow>, StoreError> {
        let row = sqlx::query(
            "SELECT entity, mapping, revision, updated_at FROM sync_mappings WHERE installation = $1 AND entity = $2",
        )
        .bind(installation)
        .bind(entity)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(mapping_from).transpose()
    }

    /// Every field mapping of an installation, by entity.
    pub async fn sync_mappings(&self, installation: &str) -> Result<Vec<MappingRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT entity, mapping, revision, updated_at FROM sync_mappings WHERE installation = $1 ORDER BY entity",
        )
        .bind(installation)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(mapping_from).collect()
    }

    /// Removes a field mapping; whether there was one.
    pub async fn delete_sync_mapping(&self, installation: &str, entity: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM sync_mappings WHERE installation = $1 AND entity = $2")
            .bind(installation)
            .bind(entity)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Stores a schedule. `Conflict` when the stream already has one.
    pub async fn create_sync_schedule(&self, s: &NewSchedule) -> Result<ScheduleRow, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO sync_schedules (id, tenant, installation, entity, direction, mode, source_installation, \
             source_entity, interval_secs, cron, enabled, next_run_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13) RETURNING {SCHEDULE_COLUMNS}"
        ))
        .bind(&s.id)
        .bind(&s.tenant)
        .bind(&s.installation)
        .bind(&s.entity)
        .bind(s.direction.as_str())
        .bind(s.mode.as_str())
        .bind(s.source.as_ref().map(|x| x.0.as_str()))
        .bind(s.source.as_ref().map(|x| x.1.as_str()))
        .bind(s.interval_secs)
        .bind(s.cron.as_deref())
        .bind(s.enabled)
        .bind(s.next_run_at)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| match violation(&e) {
            Some(ErrorKind::UniqueViolation) => StoreError::Conflict(format!(
                "{} of installation {} already has a {} schedule",
                s.entity,
                s.installation,
                s.direction.as_str()
            )),
            Some(ErrorKind::ForeignKeyViolation) => StoreError::NotFound("installation not found".into()),
            _ => e.into(),
        })?;
        tx.commit().await?;
        schedule_from(&row)
    }

    /// A schedule of the tenant.
    pub async fn sync_schedule(&self, tenant: &str, id: &str) -> Result<Option<ScheduleRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {SCHEDULE_COLUMNS} FROM sync_schedules WHERE tenant = $1 AND id = $2"))
            .bind(tenant)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(schedule_from).transpose()
    }

    /// A page of the tenant's schedules (of one installation when given), oldest first (by
    /// creation time, then id); `page.after` is the previous page's last `(created_at, id)`.
    pub async fn sync_schedules(
        &self,
        tenant: &str,
        installation: Option<&str>,
        page: &PageRequest<(i64, String)>,
    ) -> Result<Page<ScheduleRow>, StoreError> {
        let mut sql = format!("SELECT {SCHEDULE_COLUMNS} FROM sync_schedules WHERE tenant = $1");
        let mut n = 1;
        if installation.is_some() {
            n += 1;
            sql.push_str(&format!(" AND installation = ${n}"));
        }
        if page.after.is_some() {
            sql.push_str(&format!(" AND (created_at, id) > (${}, ${})", n + 1, n + 2));
            n += 2;
        }
        sql.push_str(&format!(" ORDER BY created_at, id LIMIT ${}", n + 1));
        let mut query = sqlx::query(&sql).bind(tenant);
        if let Some(i) = installation {
            query = query.bind(i);
        }
        if let Some((at, id)) = &page.after {
            query = query.bind(*at).bind(id);
        }
        let rows = query.bind(page.fetch()).fetch_all(self.pool()).await?;
        Ok(Page::of(rows.iter().map(schedule_from).collect::<Result<_, _>>()?, page))
    }

    /// Replaces a schedule's timing, mode and switch.
    #[allow(clippy::too_many_arguments)]
    pub async fn update_sync_schedule(
        &self,
        tenant: &str,
        id: &str,
        mode: SyncMode,
        interval_secs: Option<i64>,
        cron: Option<&str>,
        enabled: bool,
        next_run_at: i64,
    ) -> Result<ScheduleRow, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE sync_schedules SET mode = $1, interval_secs = $2, cron = $3, enabled = $4, next_run_at = $5, \
             updated_at = $6 WHERE tenant = $7 AND id = $8 RETURNING {SCHEDULE_COLUMNS}"
        ))
        .bind(mode.as_str())
        .bind(interval_secs)
        .bind(cron)
        .bind(enabled)
        .bind(next_run_at)
        .bind(now_ms())
        .bind(tenant)
        .bind(id)
        .fetch_optional(self.writer())
        .await?;
        match row {
            Some(r) => schedule_from(&r),
            None => Err(StoreError::NotFound(format!("schedule {id} not found"))),
        }
    }

    /// Removes a schedule; whether it existed.
    pub async fn delete_sync_schedule(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM sync_schedules WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Fires the due schedules, at most `limit`: each queues a run of its stream unless one is
    /// already queued or running (missed runs do not pile up), and moves to `next(schedule, now)`
    /// — computed from now, so a host that was down fires once, not once per missed slot. On
    /// PostgreSQL the due rows are locked with `SKIP LOCKED`, so of several hosts exactly one fires
    /// a given schedule. Returns the runs queued.
    pub async fn fire_sync_schedules(
        &self,
        now: i64,
        limit: u32,
        next: impl Fn(&ScheduleRow, i64) -> i64,
    ) -> Result<Vec<RunRow>, StoreError> {
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM sync_schedules WHERE enabled = TRUE AND next_run_at <= $1 \
             ORDER BY next_run_at LIMIT $2{lock}"
        ))
        .bind(now)
        .bind(i64::from(limit.max(1)))
        .fetch_all(&mut *tx)
        .await?;
        let mut queued = Vec::new();
        for r in &rows {
            let s = schedule_from(r)?;
            let active = sqlx::query(
                "SELECT id FROM sync_runs WHERE installation = $1 AND entity = $2 AND direction = $3 \
                 AND status IN ('queued', 'running')",
            )
            .bind(&s.installation)
            .bind(&s.entity)
            .bind(s.direction.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            let mut last_run = s.last_run_id.clone();
            if active.is_none() {
                let run = NewRun {
                    id: patchbay_core::new_id("run"),
                    tenant: s.tenant.clone(),
                    installation: s.installation.clone(),
                    entity: s.entity.clone(),
                    direction: s.direction,
                    mode: s.mode,
                    source: s.source.clone(),
                    trigger: "schedule",
                    schedule_id: Some(s.id.clone()),
                };
                let run = insert_run(&mut tx, &run, now).await?;
                let run_id = run.id.clone();
                queued.push(run);
                last_run = Some(run_id);
            }
            sqlx::query(
                "UPDATE sync_schedules SET next_run_at = $1, last_run_id = $2, last_fired_at = $3, updated_at = $3 \
                 WHERE id = $4",
            )
            .bind(next(&s, now))
            .bind(last_run.as_deref())
            .bind(now)
            .bind(&s.id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(queued)
    }

    /// When the next enabled schedule is due, if any.
    pub async fn next_schedule_due_at(&self) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT MIN(next_run_at) AS t FROM sync_schedules WHERE enabled = TRUE")
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("t")?)
    }

    /// PostgreSQL: refreshes the planner's statistics of the records store. A stream that grew
    /// from nothing to many thousands of records in one run still has the statistics of an empty
    /// table, and the planner then answers a batch's id lookup from the wrong index (measured: 740
    /// ms instead of 20 ms for 2 000 ids in a 200 000-record stream). SQLite plans without them.
    pub async fn analyze_records(&self) -> Result<(), StoreError> {
        if self.backend() == Backend::Postgres {
            sqlx::query("ANALYZE records").execute(self.pool()).await?;
        }
        Ok(())
    }

    /// SQLite only (one host owns the file): hands every running run back to the claim queue at
    /// once, for a host starting after a crash. PostgreSQL hosts wait for leases to expire instead.
    pub async fn release_sync_leases_on_start(&self) -> Result<u64, StoreError> {
        if self.backend() != Backend::Sqlite {
            return Ok(0);
        }
        let done = sqlx::query("UPDATE sync_runs SET next_attempt_at = $1 WHERE status = 'running'")
            .bind(now_ms())
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected())
    }
}

/// The stream's saved cursor: where its next incremental run starts.
async fn saved_cursor(
    tx: &mut Transaction<'static, Any>,
    installation: &str,
    entity: &str,
    direction: Direction,
    source: Option<&(String, String)>,
) -> Result<Option<String>, StoreError> {
    let row = sqlx::query(
        "SELECT cursor FROM sync_cursors WHERE installation = $1 AND entity = $2 AND direction = $3 AND source = $4",
    )
    .bind(installation)
    .bind(entity)
    .bind(direction.as_str())
    .bind(stream_source(source))
    .fetch_optional(&mut **tx)
    .await?;
    Ok(match row {
        Some(r) => r.try_get("cursor")?,
        None => None,
    })
}

/// Inserts a queued run; an incremental one starts from the stream's saved cursor.
async fn insert_run(tx: &mut Transaction<'static, Any>, run: &NewRun, now: i64) -> Result<RunRow, StoreError> {
    let start_cursor = match run.mode {
        SyncMode::Full => None,
        SyncMode::Incremental => {
            saved_cursor(tx, &run.installation, &run.entity, run.direction, run.source.as_ref()).await?
        }
    };
    let row = sqlx::query(&format!(
        "INSERT INTO sync_runs (id, tenant, installation, entity, direction, mode, source_installation, \
         source_entity, status, trigger, schedule_id, start_cursor, cursor, next_attempt_at, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', $9, $10, $11, $11, $12, $12, $12) \
         RETURNING {RUN_COLUMNS}"
    ))
    .bind(&run.id)
    .bind(&run.tenant)
    .bind(&run.installation)
    .bind(&run.entity)
    .bind(run.direction.as_str())
    .bind(run.mode.as_str())
    .bind(run.source.as_ref().map(|s| s.0.as_str()))
    .bind(run.source.as_ref().map(|s| s.1.as_str()))
    .bind(run.trigger)
    .bind(run.schedule_id.as_deref())
    .bind(start_cursor.as_deref())
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    run_from(&row)
}

fn mapping_from(r: &AnyRow) -> Result<MappingRow, StoreError> {
    Ok(MappingRow {
        entity: r.try_get("entity")?,
        mapping: r.try_get("mapping")?,
        revision: r.try_get("revision")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Adds a batch's counters to the run, moves its cursor and extends its lease.
async fn advance_run(
    tx: &mut Transaction<'static, Any>,
    lease: &Lease<'_>,
    cursor: Option<&str>,
    total: Option<i64>,
    base_seq: Option<i64>,
    c: &Counts,
    now: i64,
) -> Result<(), StoreError> {
    // From the clock now, not from when the transaction began: a long batch must not commit an
    // already expired lease.
    let lease_until = now_ms().max(now).saturating_add(lease.lease_ms);
    sqlx::query(ADVANCE_RUN_SQL)
        .bind(cursor)
        .bind(c.fetched)
        .bind(c.created)
        .bind(c.updated)
        .bind(c.unchanged)
        .bind(c.deleted)
        .bind(c.failed)
        .bind(total)
        .bind(lease_until)
        .bind(lease.active_ms)
        .bind(now)
        .bind(lease.run_id)
        .bind(base_seq)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Ends a held run as succeeded (adding `c`): its last committed cursor becomes the stream's
/// starting point for incremental runs, and its lease is released.
async fn close_run(
    tx: &mut Transaction<'static, Any>,
    run: &RunRow,
    lease: &Lease<'_>,
    c: &Counts,
    now: i64,
) -> Result<(), StoreError> {
    let cursor: Option<String> = sqlx::query("SELECT cursor FROM sync_runs WHERE id = $1")
        .bind(&run.id)
        .fetch_one(&mut **tx)
        .await?
        .try_get("cursor")?;
    save_stream_cursor(tx, run, cursor.as_deref(), now).await?;
    finish_run(tx, lease, c, now).await
}

/// Marks a held run succeeded (adding `c`), releasing its lease.
async fn finish_run(
    tx: &mut Transaction<'static, Any>,
    lease: &Lease<'_>,
    c: &Counts,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE sync_runs SET status = 'succeeded', deleted = deleted + $1, lease_owner = NULL, lease_until = NULL, \
         error = NULL, active_ms = active_ms + $2, finished_at = $3, updated_at = $3 WHERE id = $4",
    )
    .bind(c.deleted)
    .bind(lease.active_ms)
    .bind(now)
    .bind(lease.run_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Saves a finished run's last cursor as its stream's starting point for incremental runs.
async fn save_stream_cursor(
    tx: &mut Transaction<'static, Any>,
    run: &RunRow,
    cursor: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sync_cursors (tenant, installation, entity, direction, source, cursor, run_id, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (installation, entity, direction, source) DO UPDATE \
         SET cursor = excluded.cursor, run_id = excluded.run_id, updated_at = excluded.updated_at",
    )
    .bind(&run.tenant)
    .bind(&run.installation)
    .bind(&run.entity)
    .bind(run.direction.as_str())
    .bind(stream_source(run.source.as_ref()))
    .bind(cursor)
    .bind(&run.id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_follow_the_backend() {
        assert_eq!(placeholders(Backend::Sqlite, 2, 3), "?, ?, ?");
        assert_eq!(placeholders(Backend::Postgres, 2, 3), "$3, $4, $5");
        assert_eq!(p(Backend::Postgres, 4), "$4");
    }

    #[test]
    fn names_round_trip() {
        for d in [Direction::Import, Direction::Export] {
            assert_eq!(Direction::parse(d.as_str()), Some(d));
        }
        for m in [SyncMode::Full, SyncMode::Incremental] {
            assert_eq!(SyncMode::parse(m.as_str()), Some(m));
        }
        for s in [RunStatus::Queued, RunStatus::Running, RunStatus::Succeeded, RunStatus::Failed, RunStatus::Cancelled]
        {
            assert_eq!(RunStatus::parse(s.as_str()), Some(s));
        }
        assert!(is_lease_lost(&lease_lost("run_1")));
    }
}
