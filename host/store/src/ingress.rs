//! Writing webhook requests, their events and their deliveries: the one code path behind
//! [`Store::record_ingress`], [`Store::record_ingress_batch`] and [`Store::emit_events`].
//!
//! Everything goes through [`write_ingress`] (or [`insert_events`] for events without a request),
//! which runs inside a transaction its caller owns and gives each item of a batch exactly the
//! answer recording it alone would have given, as if the items were recorded one after the
//! other in order: a request whose `(installation, dedupe_key)` was seen before — also by an
//! earlier item of the same batch — writes nothing and replays the first answer; an event whose
//! `(source_installation, idempotency_key)` is taken names the first event and its deliveries are
//! skipped.
//!
//! **Statement shapes.** [`Rows::One`] issues one `INSERT` per row, so a failing row is named in
//! the error (it reaches API clients). [`Rows::Many`] packs a batch's rows into multi-row
//! `INSERT … VALUES (…), (…) … RETURNING id`: per-statement overhead (a round trip on PostgreSQL, a
//! hop to sqlx's worker thread on SQLite) is what limits a batch, not the rows. Statement sizes are
//! powers of two (300 rows are 256 + 32 + 8 + 4), so each connection's prepared-statement cache
//! holds a handful of shapes per table instead of one per batch size, and a statement never
//! exceeds the bind-parameter limit: 32 766 in the bundled SQLite (3.46), 65 535 in PostgreSQL's
//! protocol. The rows returned by `RETURNING id` tell which requests and events were new; that is
//! unambiguous only when ids are distinct across the batch, which [`Store::record_ingress_batch`]
//! checks before choosing this shape. Measured on a 2-core machine, one transaction of 512
//! requests (request + event + delivery each): SQLite 21 000 requests/s with multi-row statements
//! against 6 000 row by row, PostgreSQL 7 000 against 3 300 (`cargo bench -p patchbay-tests
//! --bench ingress`).
//!
//! **Batches fail per item.** [`Store::record_ingress_batch`] first validates each item alone (a
//! malformed one gets its `Invalid` and is left out), then writes the rest in one transaction with
//! [`Rows::Many`]. If that transaction fails because of the data — an item names an unknown
//! installation or reuses a delivery id, or PostgreSQL chose it as a deadlock victim — it is
//! rolled back and every item is written again in its own transaction with [`Rows::One`], in order,
//! so each gets the answer [`Store::record_ingress`] gives. Savepoints per item would keep one
//! commit, but cost two extra statements per item on the fast path (two round trips each on
//! PostgreSQL) to speed up a case that does not happen in normal operation. An error that is not
//! about the data (the pool is closed, the connection broke) is not retried item by item — that
//! would only wait once per item for the same outage — and every item gets it.

use std::collections::{HashMap, HashSet};

use sqlx::any::AnyRow;
use sqlx::error::ErrorKind;
use sqlx::{Any, Row, Transaction};

pub use super::bulk::Rows;
use super::bulk::{InsertSql, insert_rows};
use super::outbox::{EmittedEvent, IngressOutcome, NewDelivery, NewEvent, NewIngress, insert_error};
use super::{Backend, Store, StoreError, now_ms, violation};

/// One webhook request for [`Store::record_ingress_batch`]: what [`Store::record_ingress`] takes,
/// owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressWrite {
    /// The request as received, with the answer it is given.
    pub ingress: NewIngress,
    /// The events made of it.
    pub events: Vec<NewEvent>,
    /// Deliveries of those events.
    pub deliveries: Vec<NewDelivery>,
}

impl IngressWrite {
    /// Roughly how many bytes writing this sends to the database (for batch size caps).
    pub(crate) fn approx_bytes(&self) -> usize {
        let i = &self.ingress;
        let request = [&i.id, &i.tenant, &i.installation, &i.method, &i.path, &i.headers_json, &i.response_body]
            .iter()
            .map(|s| s.len())
            .sum::<usize>()
            + i.body.len()
            + i.dedupe_key.as_ref().map_or(0, String::len)
            + 32;
        let events = self.events.iter().map(|e| {
            [&e.id, &e.tenant, &e.source_installation, &e.event_type, &e.payload, &e.idempotency_key]
                .iter()
                .map(|s| s.len())
                .sum::<usize>()
                + e.subject.as_ref().map_or(0, String::len)
                + 16
        });
        let deliveries = self.deliveries.iter().map(|d| {
            [&d.id, &d.event_id, &d.tenant, &d.destination_installation, &d.operation, &d.payload, &d.idempotency_key]
                .iter()
                .map(|s| s.len())
                .sum::<usize>()
                + d.route_id.as_ref().map_or(0, String::len)
                + 24
        });
        request + events.sum::<usize>() + deliveries.sum::<usize>()
    }

    /// Whether recording this write with the answer `outcome` stored at least one delivery (a
    /// duplicate request or duplicate events store none).
    pub fn stored_deliveries(&self, outcome: &IngressOutcome) -> bool {
        let IngressOutcome::Recorded { events } = outcome else { return false };
        self.deliveries.iter().any(|d| events.iter().any(|e| !e.duplicate && e.id == d.event_id))
    }

    fn item(&self) -> Item<'_> {
        Item { ingress: &self.ingress, events: &self.events, deliveries: &self.deliveries }
    }
}

/// One request to record, borrowed: what both [`Store::record_ingress`] and
/// [`Store::record_ingress_batch`] hand to [`write_ingress`].
#[derive(Clone, Copy)]
pub(crate) struct Item<'a> {
    pub(crate) ingress: &'a NewIngress,
    pub(crate) events: &'a [NewEvent],
    pub(crate) deliveries: &'a [NewDelivery],
}

impl Item<'_> {
    /// What can be checked without the database.
    fn check(&self) -> Result<(), StoreError> {
        check_batch(self.events, self.deliveries)?;
        if let Some(e) = self.events.iter().find(|e| e.tenant != self.ingress.tenant) {
            return Err(StoreError::Invalid(format!(
                "event {} is for tenant {} but the request came to tenant {}",
                e.id, e.tenant, self.ingress.tenant
            )));
        }
        Ok(())
    }
}

/// Checks that every delivery belongs to an event of the batch, of the same tenant.
fn check_batch(events: &[NewEvent], deliveries: &[NewDelivery]) -> Result<(), StoreError> {
    let mut ids = HashMap::new();
    for e in events {
        if ids.insert(e.id.as_str(), e.tenant.as_str()).is_some() {
            return Err(StoreError::Invalid(format!("event {} is given more than once", e.id)));
        }
    }
    for d in deliveries {
        match ids.get(d.event_id.as_str()) {
            None => {
                return Err(StoreError::Invalid(format!(
                    "delivery {} refers to event {}, which is not in the batch",
                    d.id, d.event_id
                )));
            }
            Some(tenant) if *tenant != d.tenant => {
                return Err(StoreError::Invalid(format!(
                    "delivery {} is for tenant {} but its event {} belongs to tenant {tenant}",
                    d.id, d.tenant, d.event_id
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

const INSERT_INGRESS: InsertSql = InsertSql {
    head: "INSERT INTO ingress_requests (id, tenant, installation, received_at, method, path, headers_json, body, \
           dedupe_key, response_status, response_body)",
    row: "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    tail: " ON CONFLICT (installation, dedupe_key) DO NOTHING RETURNING id",
};

const INSERT_EVENT: InsertSql = InsertSql {
    head: "INSERT INTO events (id, tenant, source_installation, event_type, subject, payload, idempotency_key, \
           ingress_id, created_at)",
    row: "(?, ?, ?, ?, ?, ?, ?, ?, ?)",
    tail: " ON CONFLICT (source_installation, idempotency_key) DO NOTHING RETURNING id",
};

const INSERT_DELIVERY: InsertSql = InsertSql {
    head: "INSERT INTO deliveries (id, event_id, tenant, route_id, destination_installation, operation, payload, \
           idempotency_key, status, attempts, schedule_base, next_attempt_at, lease_owner, lease_until, created_at, \
           updated_at)",
    row: "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)",
    tail: "",
};

/// The ids in the first column of `rows`.
fn returned_ids(rows: &[AnyRow]) -> Result<HashSet<String>, StoreError> {
    Ok(rows.iter().map(|r| r.try_get::<String, _>(0)).collect::<Result<_, _>>()?)
}

/// Records `items` in order inside `tx`; one answer per item. Ingress ids, and event ids, must be
/// distinct across `items` when `shape` is [`Rows::Many`].
async fn write_ingress(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    items: &[Item<'_>],
    shape: Rows,
) -> Result<Vec<IngressOutcome>, StoreError> {
    let returned = insert_rows(
        tx,
        backend,
        shape,
        &INSERT_INGRESS,
        items,
        |q, item| {
            let i = item.ingress;
            q.bind(&i.id)
                .bind(&i.tenant)
                .bind(&i.installation)
                .bind(i.received_at_ms)
                .bind(&i.method)
                .bind(&i.path)
                .bind(&i.headers_json)
                .bind(i.body.as_slice())
                .bind(i.dedupe_key.as_deref())
                .bind(i64::from(i.response_status))
                .bind(&i.response_body)
        },
        |e, chunk| match (violation(&e), chunk) {
            (Some(ErrorKind::ForeignKeyViolation), [item]) => {
                StoreError::NotFound(format!("installation {} not found", item.ingress.installation))
            }
            (_, [item]) => insert_error(e, &format!("ingress request {}", item.ingress.id)),
            (Some(ErrorKind::ForeignKeyViolation), _) => {
                StoreError::NotFound("an installation of the batch was not found".into())
            }
            _ => insert_error(e, &format!("a batch of {} ingress requests", chunk.len())),
        },
    )
    .await?;
    let stored = returned_ids(&returned)?;

    let mut duplicates = HashMap::new();
    let mut recorded = Vec::new();
    for (n, item) in items.iter().enumerate() {
        if stored.contains(&item.ingress.id) {
            recorded.push(item);
        } else {
            duplicates.insert(n, first_answer(tx, item.ingress).await?);
        }
    }

    let events: Vec<(&NewEvent, Option<&str>)> =
        recorded.iter().flat_map(|item| item.events.iter().map(|e| (e, Some(item.ingress.id.as_str())))).collect();
    let deliveries: Vec<&NewDelivery> = recorded.iter().flat_map(|item| item.deliveries).collect();
    let mut emitted = insert_events(tx, backend, shape, &events, &deliveries).await?.into_iter();

    let mut outcomes = Vec::with_capacity(items.len());
    for (n, item) in items.iter().enumerate() {
        outcomes.push(match duplicates.remove(&n) {
            Some(duplicate) => duplicate,
            None => IngressOutcome::Recorded { events: emitted.by_ref().take(item.events.len()).collect() },
        });
    }
    Ok(outcomes)
}

/// The answer of the request holding `ingress`'s dedupe key, which an insert just found taken.
async fn first_answer(tx: &mut Transaction<'static, Any>, ingress: &NewIngress) -> Result<IngressOutcome, StoreError> {
    // Only the dedupe constraint is a conflict target: the key is taken, by a committed request or
    // an earlier one of this transaction (PostgreSQL waits for a concurrent inserter to finish
    // before deciding).
    let first = sqlx::query(
        "SELECT id, response_status, response_body FROM ingress_requests WHERE installation = $1 AND dedupe_key = $2",
    )
    .bind(&ingress.installation)
    .bind(ingress.dedupe_key.as_deref())
    .fetch_optional(&mut **tx)
    .await?;
    let Some(first) = first else { return Err(dedupe_key_unheld(ingress)) };
    duplicate(first.try_get("id")?, first.try_get("response_status")?, first.try_get("response_body")?)
}

/// The answer replaying the first request's (`ingress_id`, stored status and body).
pub(crate) fn duplicate(ingress_id: String, status: i64, response_body: String) -> Result<IngressOutcome, StoreError> {
    let response_status = u16::try_from(status)
        .map_err(|_| StoreError::Invalid(format!("stored response status {status} is not an HTTP status")))?;
    Ok(IngressOutcome::Duplicate { ingress_id, response_status, response_body })
}

/// A dedupe key that conflicted on insert but that no stored request holds.
pub(crate) fn dedupe_key_unheld(ingress: &NewIngress) -> StoreError {
    StoreError::Conflict(format!(
        "dedupe key {:?} of installation {} conflicted but no request holds it",
        ingress.dedupe_key, ingress.installation
    ))
}

/// An event idempotency key that conflicted on insert but that no stored event holds.
pub(crate) fn event_key_unheld(e: &NewEvent) -> StoreError {
    StoreError::Conflict(format!(
        "event idempotency key {:?} of installation {} conflicted but no event holds it",
        e.idempotency_key, e.source_installation
    ))
}

/// Inserts `events` (each with the request it came from; skipping those whose idempotency key is
/// taken) and the deliveries of the new ones, inside `tx`. One entry per event, in order.
pub(crate) async fn insert_events(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    shape: Rows,
    events: &[(&NewEvent, Option<&str>)],
    deliveries: &[&NewDelivery],
) -> Result<Vec<EmittedEvent>, StoreError> {
    let returned = insert_rows(
        tx,
        backend,
        shape,
        &INSERT_EVENT,
        events,
        |q, (e, ingress_id)| {
            q.bind(&e.id)
                .bind(&e.tenant)
                .bind(&e.source_installation)
                .bind(&e.event_type)
                .bind(e.subject.as_deref())
                .bind(&e.payload)
                .bind(&e.idempotency_key)
                .bind(*ingress_id)
                .bind(e.created_at_ms)
        },
        |err, chunk| match chunk {
            [(e, _)] => insert_error(err, &format!("event {}", e.id)),
            _ => insert_error(err, &format!("a batch of {} events", chunk.len())),
        },
    )
    .await?;
    let fresh = returned_ids(&returned)?;

    let mut emitted = Vec::with_capacity(events.len());
    for (e, _) in events {
        if fresh.contains(&e.id) {
            emitted.push(EmittedEvent { id: e.id.clone(), duplicate: false });
            continue;
        }
        let first: Option<String> =
            sqlx::query_scalar("SELECT id FROM events WHERE source_installation = $1 AND idempotency_key = $2")
                .bind(&e.source_installation)
                .bind(&e.idempotency_key)
                .fetch_optional(&mut **tx)
                .await?;
        let id = first.ok_or_else(|| event_key_unheld(e))?;
        emitted.push(EmittedEvent { id, duplicate: true });
    }

    let now = now_ms();
    let deliveries: Vec<&NewDelivery> =
        deliveries.iter().copied().filter(|d| fresh.contains(d.event_id.as_str())).collect();
    insert_rows(
        tx,
        backend,
        shape,
        &INSERT_DELIVERY,
        &deliveries,
        |q, d| {
            let (status, attempts, next_attempt_at) = d.initial_state();
            q.bind(&d.id)
                .bind(&d.event_id)
                .bind(&d.tenant)
                .bind(d.route_id.as_deref())
                .bind(&d.destination_installation)
                .bind(&d.operation)
                .bind(&d.payload)
                .bind(&d.idempotency_key)
                .bind(status)
                .bind(attempts)
                .bind(next_attempt_at)
                .bind(d.lease.as_ref().map(|l| l.owner.as_str()))
                .bind(d.lease.as_ref().map(|l| l.until_ms))
                .bind(now)
                .bind(now)
        },
        |err, chunk| match (violation(&err), chunk) {
            (Some(ErrorKind::UniqueViolation), [d]) => StoreError::Conflict(format!(
                "delivery {} or its idempotency key {:?} already exists",
                d.id, d.idempotency_key
            )),
            (Some(ErrorKind::ForeignKeyViolation), [d]) => StoreError::NotFound(format!(
                "cannot store delivery {}: destination installation {} not found",
                d.id, d.destination_installation
            )),
            (_, [d]) => insert_error(err, &format!("delivery {}", d.id)),
            _ => insert_error(err, &format!("a batch of {} deliveries", chunk.len())),
        },
    )
    .await?;
    Ok(emitted)
}

/// Whether `e` may come from one item's data — then the items of a failed batch are written again
/// one by one — rather than from the database being unusable, which every item would only meet
/// again.
fn caused_by_data(e: &StoreError) -> bool {
    match e {
        StoreError::NotFound(_) | StoreError::Conflict(_) | StoreError::Invalid(_) => true,
        StoreError::Db(sqlx::Error::Database(_)) => true,
        StoreError::Db(_) | StoreError::Migrate(_) | StoreError::Sqlite(_) => false,
    }
}

/// An error like `e`, for another item that failed with it (`StoreError` is not `Clone`).
fn same_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::NotFound(m) => StoreError::NotFound(m.clone()),
        StoreError::Conflict(m) => StoreError::Conflict(m.clone()),
        StoreError::Invalid(m) => StoreError::Invalid(m.clone()),
        StoreError::Db(sqlx::Error::PoolTimedOut) => StoreError::Db(sqlx::Error::PoolTimedOut),
        StoreError::Db(sqlx::Error::PoolClosed) => StoreError::Db(sqlx::Error::PoolClosed),
        StoreError::Db(sqlx::Error::WorkerCrashed) => StoreError::Db(sqlx::Error::WorkerCrashed),
        StoreError::Db(sqlx::Error::Io(io)) => {
            StoreError::Db(sqlx::Error::Io(std::io::Error::new(io.kind(), io.to_string())))
        }
        StoreError::Db(other) => StoreError::Db(sqlx::Error::Protocol(other.to_string())),
        StoreError::Migrate(other) => StoreError::Db(sqlx::Error::Protocol(other.to_string())),
        StoreError::Sqlite(other) => StoreError::Db(sqlx::Error::Protocol(other.to_string())),
    }
}

/// Whether ingress ids and event ids are each distinct across `items` (what [`Rows::Many`] needs
/// to tell from `RETURNING id` which rows were new).
fn ids_are_distinct(items: &[Item<'_>]) -> bool {
    let mut requests = HashSet::with_capacity(items.len());
    let mut events = HashSet::with_capacity(items.len());
    items.iter().all(|item| {
        requests.insert(item.ingress.id.as_str()) && item.events.iter().all(|e| events.insert(e.id.as_str()))
    })
}

/// The answer a store operation gave none, which [`write_ingress`] never does.
fn no_answer() -> StoreError {
    StoreError::Conflict("the store gave no answer for a webhook request".into())
}

impl Store {
    /// Records a webhook request with the events made of it and their deliveries, in one
    /// transaction: all of it or nothing.
    ///
    /// When the installation already recorded `ingress.dedupe_key`, nothing is written and the
    /// first request's answer comes back as [`IngressOutcome::Duplicate`]. Every event gets
    /// `ingress_id = ingress.id`; deliveries must name an event of `events` (`Invalid`
    /// otherwise). `NotFound` when an installation is not the tenant's; `Conflict` when an id or a
    /// delivery idempotency key is taken.
    pub async fn record_ingress(
        &self,
        ingress: &NewIngress,
        events: &[NewEvent],
        deliveries: &[NewDelivery],
    ) -> Result<IngressOutcome, StoreError> {
        self.record_one(Item { ingress, events, deliveries }).await
    }

    /// Records many webhook requests in one transaction; one answer per write, in order, each
    /// what [`Store::record_ingress`] would have answered had the writes been recorded one after
    /// the other — a write repeating an earlier one's dedupe key, in this batch or before, is a
    /// [`IngressOutcome::Duplicate`] replaying the first answer. A write that fails (`Invalid`,
    /// `NotFound`, `Conflict`) gets its error and the others are recorded all the same: the batch
    /// is then written again one transaction per write (`ingress.rs` explains how and
    /// why).
    pub async fn record_ingress_batch(&self, writes: &[IngressWrite]) -> Vec<Result<IngressOutcome, StoreError>> {
        self.record_ingress_batch_shaped(writes, Rows::Many).await
    }

    /// [`Store::record_ingress_batch`] with the statement shape of its shared transaction chosen
    /// (the ingress benchmark compares them).
    pub async fn record_ingress_batch_shaped(
        &self,
        writes: &[IngressWrite],
        shape: Rows,
    ) -> Vec<Result<IngressOutcome, StoreError>> {
        let checked: Vec<Result<Item<'_>, StoreError>> = writes
            .iter()
            .map(|w| {
                let item = w.item();
                item.check().map(|()| item)
            })
            .collect();
        let items: Vec<Item<'_>> = checked.iter().filter_map(|c| c.as_ref().ok().copied()).collect();
        let mut written = self.write_checked(&items, shape).await.into_iter();
        checked.into_iter().map(|c| c.and_then(|_| written.next().unwrap_or_else(|| Err(no_answer())))).collect()
    }

    /// Refreshes PostgreSQL's planner statistics of the ingress tables, as autovacuum would on a
    /// database in use (a benchmark's fresh tables otherwise get sequential-scan plans for their
    /// foreign-key checks). Nothing to do on SQLite.
    pub async fn analyze_ingress_tables(&self) -> Result<(), StoreError> {
        if self.backend() == Backend::Postgres {
            sqlx::query("ANALYZE installations, ingress_requests, events, deliveries").execute(self.pool()).await?;
        }
        Ok(())
    }

    /// How many rows `ingress_requests`, `events` and `deliveries` hold (all tenants): what a
    /// benchmark checks its acknowledged writes against.
    pub async fn ingress_row_counts(&self) -> Result<[i64; 3], StoreError> {
        let mut counts = [0; 3];
        for (n, table) in counts.iter_mut().zip(["ingress_requests", "events", "deliveries"]) {
            *n = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(self.pool()).await?;
        }
        Ok(counts)
    }

    /// Stores events emitted by connectors with their deliveries, in one transaction.
    ///
    /// Idempotent per event on `(source_installation, idempotency_key)`: a repeated event is not
    /// stored again, its deliveries are skipped, and its entry in the answer (one per event, in
    /// order) names the first event. Errors as for [`Store::record_ingress`].
    pub async fn emit_events(
        &self,
        events: &[NewEvent],
        deliveries: &[NewDelivery],
    ) -> Result<Vec<EmittedEvent>, StoreError> {
        check_batch(events, deliveries)?;
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let events: Vec<(&NewEvent, Option<&str>)> = events.iter().map(|e| (e, None)).collect();
        let deliveries: Vec<&NewDelivery> = deliveries.iter().collect();
        let mut tx = self.begin_write().await?;
        let emitted = insert_events(&mut tx, self.backend(), Rows::One, &events, &deliveries).await?;
        tx.commit().await?;
        Ok(emitted)
    }

    /// One request in its own transaction, row by row.
    async fn record_one(&self, item: Item<'_>) -> Result<IngressOutcome, StoreError> {
        item.check()?;
        let mut tx = self.begin_write().await?;
        let outcome = write_ingress(&mut tx, self.backend(), &[item], Rows::One).await?.pop().ok_or_else(no_answer)?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Writes checked items together, or one by one when that fails because of an item.
    async fn write_checked(&self, items: &[Item<'_>], shape: Rows) -> Vec<Result<IngressOutcome, StoreError>> {
        if items.len() > 1 && ids_are_distinct(items) {
            match self.write_together(items, shape).await {
                Ok(outcomes) => return outcomes.into_iter().map(Ok).collect(),
                Err(e) if !caused_by_data(&e) => {
                    let mut answers: Vec<_> = (1..items.len()).map(|_| Err(same_error(&e))).collect();
                    answers.insert(0, Err(e));
                    return answers;
                }
                Err(e) => {
                    tracing::debug!(items = items.len(), "ingress batch failed ({e}); writing its requests one by one");
                }
            }
        }
        let mut answers = Vec::with_capacity(items.len());
        for item in items {
            answers.push(self.record_one(*item).await);
        }
        answers
    }

    /// All `items` in one transaction.
    async fn write_together(&self, items: &[Item<'_>], shape: Rows) -> Result<Vec<IngressOutcome>, StoreError> {
        if let Some(writer) = &self.batch_writer
            && shape == Rows::Many
        {
            // A SQLite file: prepared statements on the dedicated connection, in the writer's
            // turn (see `sqlite_batch.rs`).
            return self.in_write_turn(|| writer.record_ingress(items)).await;
        }
        let mut tx = self.begin_write().await?;
        let outcomes = write_ingress(&mut tx, self.backend(), items, shape).await?;
        if outcomes.len() != items.len() {
            return Err(no_answer());
        }
        tx.commit().await?;
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_statements_have_their_parameter_counts() {
        assert_eq!(INSERT_DELIVERY.params(), 15);
        assert_eq!(INSERT_INGRESS.params(), 11);
        assert_eq!(INSERT_EVENT.params(), 9);
    }
}
