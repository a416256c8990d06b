//! The event log and the outbox: `ingress_requests`, `events`, `deliveries`, `delivery_attempts`.
//!
//! **Durable before acknowledged.** [`Store::record_ingress`] writes a webhook's raw request, the
//! events its connector made of it and their deliveries in one transaction, so the 2xx goes out
//! only once everything is committed. A request whose `(installation, dedupe_key)` was seen before
//! writes nothing and gets the first request's answer back ([`IngressOutcome::Duplicate`]); the
//! check is the table's unique constraint (`INSERT … ON CONFLICT DO NOTHING`, then reading the
//! winner), so two hosts receiving the same webhook at once cannot both record it. Events emitted
//! by connectors enter the same way through [`Store::emit_events`], idempotent on
//! `(source_installation, idempotency_key)`.
//!
//! **Deliveries** move `pending → leased → delivered`, or back to `pending` for a retry, or to
//! `dead`; a dead delivery is redriven back to `pending`. Claims ([`Store::claim_deliveries`]) take
//! due pending rows *and* leased rows whose lease expired (the claimer died), so recovery needs no
//! separate sweeper. While leased, a row's `next_attempt_at` is its lease expiry: one partial index
//! on `next_attempt_at` serves claims, recovery and [`Store::next_due_at`], the time a dispatcher
//! should wake up next instead of polling. On PostgreSQL the claim is one
//! `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING …`, so hosts claiming together
//! skip each other's rows; on SQLite the same statement runs inside `BEGIN IMMEDIATE`, which
//! serialises claimers on the file's write lock.
//!
//! **Fencing.** A claim increments `attempts`; ack and fail name the owner *and* the attempt
//! number they were given, so a worker whose lease expired and was re-claimed (even by itself)
//! cannot ack or fail the newer attempt. Its outcome is refused (`false`); the delivery is then
//! delivered at least once more, which is what idempotency keys are for.
//!
//! **Redrive** keeps `attempts` (they number the `delivery_attempts` rows, which stay as history)
//! and restarts the retry schedule: `schedule_base` records `attempts` at the redrive and
//! [`DeliveryRow::schedule_attempt`] counts from it.
//!
//! **Durability.** Ingress and emitted events commit durably: they are acknowledged to their
//! senders. Claims and settlements (ack, fail) commit without waiting for the disk on PostgreSQL
//! ([`Store::begin_relaxed`]): losing one in a crash only means the delivery runs again, which
//! at-least-once delivery with idempotency keys already allows.
//!
//! Timestamps are unix milliseconds chosen by the caller where they matter to the schedule
//! (`now_ms` arguments, `received_at_ms`, `created_at_ms`, `next_attempt_at_ms`), so the
//! dispatcher and tests control the clock; `updated_at` is the wall clock.

use std::collections::HashMap;
use std::fmt;

use sqlx::any::AnyRow;
use sqlx::error::ErrorKind;
use sqlx::{Any, Row, Transaction};

use super::{Backend, Page, PageRequest, Store, StoreError, db_message, now_ms, violation};

/// A webhook request as received, with the answer it is given.
#[derive(Clone, PartialEq, Eq)]
pub struct NewIngress {
    /// `whr_<hex>`: the request's id.
    pub id: String,
    /// The tenant's id.
    pub tenant: String,
    /// The installation the webhook was sent to.
    pub installation: String,
    /// When the request arrived, in unix milliseconds.
    pub received_at_ms: i64,
    /// The HTTP method, e.g. `POST`.
    pub method: String,
    /// Path and query as received.
    pub path: String,
    /// JSON array of `[name, value]` pairs in the order received.
    pub headers_json: String,
    /// The body, byte-exact.
    pub body: Vec<u8>,
    /// The sender's delivery id (or a connector-derived key); `None`: never deduplicated.
    pub dedupe_key: Option<String>,
    /// The answer given to this request, and to every duplicate of it.
    pub response_status: u16,
    /// The body of that answer.
    pub response_body: String,
}

impl fmt::Debug for NewIngress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewIngress")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("installation", &self.installation)
            .field("method", &self.method)
            .field("path", &self.path)
            .field("body_len", &self.body.len())
            .field("dedupe_key", &self.dedupe_key)
            .field("response_status", &self.response_status)
            .finish_non_exhaustive()
    }
}

/// What [`Store::record_ingress`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngressOutcome {
    /// The request, its new events and their deliveries are committed.
    Recorded {
        /// One entry per given event, in order (an event whose idempotency key was already used
        /// is not stored again: its entry names the first one).
        events: Vec<EmittedEvent>,
    },
    /// The installation already recorded this dedupe key: nothing was written; answer as before.
    Duplicate {
        /// The first request's id.
        ingress_id: String,
        /// The HTTP status the first request was answered with.
        response_status: u16,
        /// The body the first request was answered with.
        response_body: String,
    },
}

/// An event to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// `evt_<hex>`; deliveries refer to it through [`NewDelivery::event_id`].
    pub id: String,
    /// The tenant's id.
    pub tenant: String,
    /// The installation the event came from (its connector, its webhook, or the host about it).
    pub source_installation: String,
    /// Dotted lower-case type, e.g. `payment.succeeded`.
    pub event_type: String,
    /// What the event is about, e.g. a payment id; `None` when not given.
    pub subject: Option<String>,
    /// JSON.
    pub payload: String,
    /// Unique per source installation: the source's own event id, or this event's id when the
    /// source gives none.
    pub idempotency_key: String,
    /// When the event was created, in unix milliseconds.
    pub created_at_ms: i64,
}

/// A stored event's id, and whether this call stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmittedEvent {
    /// The stored event's id: this call's, or the first one's for a duplicate.
    pub id: String,
    /// `true`: an event with the same `(source_installation, idempotency_key)` existed; `id` is
    /// that event's and the new one's deliveries were skipped.
    pub duplicate: bool,
}

/// A delivery of a [`NewEvent`] of the same batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// `dlv_<hex>`: the delivery's id.
    pub id: String,
    /// The [`NewEvent::id`] this delivers.
    pub event_id: String,
    /// The tenant's id.
    pub tenant: String,
    /// The routing rule that produced it; `None` for direct deliveries.
    pub route_id: Option<String>,
    /// The installation whose operation receives the event.
    pub destination_installation: String,
    /// The operation called on the destination's connector, e.g. `webhooks.deliver`.
    pub operation: String,
    /// JSON given to the operation.
    pub payload: String,
    /// Globally unique; the connector receives it so sinks can make effects exactly-once
    /// (e.g. `<event id>:<route id>`).
    pub idempotency_key: String,
    /// First claimable time (normally the event's creation time).
    pub next_attempt_at_ms: i64,
    /// Leased to a dispatcher as it is written (its first attempt starts without a claim):
    /// stored `leased` with one attempt, like a claim leaves it; `None`: stored `pending`.
    pub lease: Option<DeliveryLease>,
}

/// A lease taken as a delivery is written (see [`NewDelivery::lease`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryLease {
    /// The dispatcher that runs it (the owner a claim would set).
    pub owner: String,
    /// Until when; afterwards any dispatcher may claim it again.
    pub until_ms: i64,
}

impl NewDelivery {
    /// Its status, attempts and next attempt time as stored: `leased` with one attempt until the
    /// lease ends, or `pending` with none, due at [`NewDelivery::next_attempt_at_ms`].
    pub(crate) fn initial_state(&self) -> (&'static str, i64, i64) {
        match &self.lease {
            Some(l) => ("leased", 1, l.until_ms),
            None => ("pending", 0, self.next_attempt_at_ms),
        }
    }

    /// The row a claim would have returned for it once written with a lease, stamped `now_ms`;
    /// `None` without a lease.
    pub fn leased_row(&self, now_ms: i64) -> Option<Delivery> {
        let lease = self.lease.as_ref()?;
        Some(DeliveryRow {
            id: self.id.clone(),
            event_id: self.event_id.clone(),
            tenant: self.tenant.clone(),
            route_id: self.route_id.clone(),
            destination_installation: self.destination_installation.clone(),
            operation: self.operation.clone(),
            payload: self.payload.clone(),
            idempotency_key: self.idempotency_key.clone(),
            status: DeliveryStatus::Leased,
            attempts: 1,
            schedule_base: 0,
            next_attempt_at_ms: lease.until_ms,
            lease_owner: Some(lease.owner.clone()),
            lease_until_ms: Some(lease.until_ms),
            last_error: None,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        })
    }
}

patchbay_core::string_enum! {
    /// Where a delivery stands.
    pub enum DeliveryStatus {
        /// Waiting for its next attempt, claimable from `next_attempt_at`.
        Pending = "pending",
        /// Claimed by a worker until its lease expires.
        Leased = "leased",
        /// The destination accepted it; final.
        Delivered = "delivered",
        /// Given up: in the dead letter until redriven.
        Dead = "dead",
    }
}

pub use patchbay_core::outcome::AttemptOutcome;

/// One attempt's report, given to [`Store::ack_delivery`] / [`Store::fail_delivery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The claimed delivery's [`DeliveryRow::attempts`]: the fencing token of this lease.
    pub attempt: i64,
    /// When the attempt started, in unix milliseconds.
    pub started_at_ms: i64,
    /// How long it took, in milliseconds.
    pub duration_ms: i64,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// What went wrong; `None` when nothing did. Becomes the delivery's `last_error`.
    pub error: Option<String>,
}

/// What follows a failed attempt (see `patchbay_core::retry` for the schedule).
pub use patchbay_core::retry::Retry;

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// `evt_<hex>`: the event's id.
    pub id: String,
    /// The tenant's id.
    pub tenant: String,
    /// The installation the event came from (its connector, its webhook, or the host about it).
    pub source_installation: String,
    /// Dotted lower-case type, e.g. `payment.succeeded`.
    pub event_type: String,
    /// What the event is about; `None` when not given.
    pub subject: Option<String>,
    /// The payload, JSON text.
    pub payload: String,
    /// Unique per source installation: the source's own event id, or the event's id.
    pub idempotency_key: String,
    /// The webhook request it came from, if any.
    pub ingress_id: Option<String>,
    /// When the event was created, in unix milliseconds.
    pub created_at_ms: i64,
}

/// A stored delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    /// `dlv_<hex>`: the delivery's id.
    pub id: String,
    /// The event it delivers.
    pub event_id: String,
    /// The tenant's id.
    pub tenant: String,
    /// The routing rule that produced it; `None` for direct deliveries.
    pub route_id: Option<String>,
    /// The installation whose operation receives the event.
    pub destination_installation: String,
    /// The operation called on the destination's connector, e.g. `webhooks.deliver`.
    pub operation: String,
    /// JSON given to the operation.
    pub payload: String,
    /// Globally unique key passed to the connector so its effects can be made exactly-once.
    pub idempotency_key: String,
    /// Where the delivery stands.
    pub status: DeliveryStatus,
    /// Claims so far, over the delivery's whole life (redrives do not reset it).
    pub attempts: i64,
    /// `attempts` at the last redrive (0 if never redriven).
    pub schedule_base: i64,
    /// Pending: when it is due. Leased: when the lease expires.
    pub next_attempt_at_ms: i64,
    /// The worker holding the lease, while leased; `None` otherwise.
    pub lease_owner: Option<String>,
    /// When the lease expires, in unix milliseconds, while leased; `None` otherwise.
    pub lease_until_ms: Option<i64>,
    /// The error of the last settled attempt; `None` when it had none or no attempt has settled.
    pub last_error: Option<String>,
    /// When the delivery was created, in unix milliseconds.
    pub created_at_ms: i64,
    /// When the row last changed, in unix milliseconds (wall clock).
    pub updated_at_ms: i64,
}

/// A delivery as handed to a worker by [`Store::claim_deliveries`].
pub type Delivery = DeliveryRow;

impl DeliveryRow {
    /// The attempt number within the current retry schedule (1 for the first attempt after
    /// creation or after a redrive): what [`patchbay_core::retry::RetrySchedule::next`] takes.
    pub fn schedule_attempt(&self) -> u32 {
        u32::try_from(self.attempts - self.schedule_base).unwrap_or(0)
    }
}

/// A recorded attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRow {
    /// The attempt's number over the delivery's whole life, from 1.
    pub attempt: i64,
    /// When the attempt started, in unix milliseconds.
    pub started_at_ms: i64,
    /// How long it took, in milliseconds.
    pub duration_ms: i64,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// What went wrong; `None` when nothing did.
    pub error: Option<String>,
}

/// One event with each of its deliveries and their attempts (oldest first).
pub type EventDetail = (EventRow, Vec<(DeliveryRow, Vec<AttemptRow>)>);

/// Filters and paging for [`Store::list_events`]. Pages are newest first.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Event type, exact or a glob with `*` (`expense.*`).
    pub event_type: Option<String>,
    /// Events with at least one delivery in this status.
    pub status: Option<DeliveryStatus>,
    /// Events from this installation or with a delivery to it.
    pub installation: Option<String>,
    /// Created at or after.
    pub since_ms: Option<i64>,
    /// Created before.
    pub until_ms: Option<i64>,
    /// Where the page starts: the previous page's last `(created_at, id)` (newest first). The
    /// position need not name an event that still exists.
    pub page: PageRequest<(i64, String)>,
}

/// Deliveries by status, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxDepth {
    /// Deliveries waiting for an attempt.
    pub pending: u64,
    /// Including leases that expired and wait to be reclaimed.
    pub leased: u64,
    /// Deliveries in the dead letter.
    pub dead: u64,
}

const EVENT_COLUMNS: &str =
    "id, tenant, source_installation, event_type, subject, payload, idempotency_key, ingress_id, created_at";

const DELIVERY_COLUMNS: &str = "id, event_id, tenant, route_id, destination_installation, operation, payload, \
     idempotency_key, status, attempts, schedule_base, next_attempt_at, lease_owner, lease_until, last_error, \
     created_at, updated_at";

fn event_from(row: &AnyRow) -> Result<EventRow, sqlx::Error> {
    Ok(EventRow {
        id: row.try_get("id")?,
        tenant: row.try_get("tenant")?,
        source_installation: row.try_get("source_installation")?,
        event_type: row.try_get("event_type")?,
        subject: row.try_get("subject")?,
        payload: row.try_get("payload")?,
        idempotency_key: row.try_get("idempotency_key")?,
        ingress_id: row.try_get("ingress_id")?,
        created_at_ms: row.try_get("created_at")?,
    })
}

fn delivery_from(row: &AnyRow) -> Result<DeliveryRow, StoreError> {
    let status: String = row.try_get("status")?;
    Ok(DeliveryRow {
        id: row.try_get("id")?,
        event_id: row.try_get("event_id")?,
        tenant: row.try_get("tenant")?,
        route_id: row.try_get("route_id")?,
        destination_installation: row.try_get("destination_installation")?,
        operation: row.try_get("operation")?,
        payload: row.try_get("payload")?,
        idempotency_key: row.try_get("idempotency_key")?,
        status: status.parse()?,
        attempts: row.try_get("attempts")?,
        schedule_base: row.try_get("schedule_base")?,
        next_attempt_at_ms: row.try_get("next_attempt_at")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_until_ms: row.try_get("lease_until")?,
        last_error: row.try_get("last_error")?,
        created_at_ms: row.try_get("created_at")?,
        updated_at_ms: row.try_get("updated_at")?,
    })
}

fn attempt_from(row: &AnyRow) -> Result<AttemptRow, StoreError> {
    let outcome: String = row.try_get("outcome")?;
    Ok(AttemptRow {
        attempt: row.try_get("attempt")?,
        started_at_ms: row.try_get("started_at")?,
        duration_ms: row.try_get("duration_ms")?,
        outcome: outcome.parse()?,
        error: row.try_get("error")?,
    })
}

/// Maps an insert's constraint violation to a client-facing error naming `what`.
pub(super) fn insert_error(e: sqlx::Error, what: &str) -> StoreError {
    match violation(&e) {
        Some(ErrorKind::UniqueViolation) => StoreError::Conflict(format!("{what} already exists: {}", db_message(&e))),
        Some(ErrorKind::ForeignKeyViolation) => {
            StoreError::NotFound(format!("cannot store {what}: its tenant, installation or event does not exist"))
        }
        Some(_) => StoreError::Invalid(format!("cannot store {what}: {}", db_message(&e))),
        None => e.into(),
    }
}

/// A bind value of a dynamically built query.
enum Arg<'a> {
    Text(&'a str),
    Int(i64),
}

/// The placeholder of the last pushed argument.
fn placeholder(args: &[Arg<'_>]) -> String {
    format!("${}", args.len())
}

/// The SQL and arguments of a page of `tenant`'s events (`pattern` holds a glob's LIKE pattern).
fn events_query<'a>(tenant: &'a str, filter: &'a EventFilter, pattern: &'a mut String) -> (String, Vec<Arg<'a>>) {
    let mut args = vec![Arg::Text(tenant)];
    let mut sql = format!("SELECT {EVENT_COLUMNS} FROM events e WHERE e.tenant = $1");
    if let Some(t) = filter.event_type.as_deref() {
        if t.contains('*') {
            // A glob (`expense.*`): LIKE with `*` as `%`, LIKE's own wildcards escaped.
            *pattern = t.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_").replace('*', "%");
            args.push(Arg::Text(pattern.as_str()));
            sql.push_str(&format!(" AND e.event_type LIKE {} ESCAPE '\\'", placeholder(&args)));
        } else {
            args.push(Arg::Text(t));
            sql.push_str(&format!(" AND e.event_type = {}", placeholder(&args)));
        }
    }
    if let Some(since) = filter.since_ms {
        args.push(Arg::Int(since));
        sql.push_str(&format!(" AND e.created_at >= {}", placeholder(&args)));
    }
    if let Some(until) = filter.until_ms {
        args.push(Arg::Int(until));
        sql.push_str(&format!(" AND e.created_at < {}", placeholder(&args)));
    }
    if let Some(status) = filter.status {
        args.push(Arg::Text(status.as_str()));
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM deliveries d WHERE d.tenant = e.tenant AND d.event_id = e.id \
             AND d.status = {})",
            placeholder(&args)
        ));
    }
    if let Some(installation) = filter.installation.as_deref() {
        args.push(Arg::Text(installation));
        let p = placeholder(&args);
        sql.push_str(&format!(
            " AND (e.source_installation = {p} OR EXISTS (SELECT 1 FROM deliveries d WHERE d.tenant = $1 \
             AND d.event_id = e.id AND d.destination_installation = {p}))"
        ));
    }
    if let Some((at, id)) = &filter.page.after {
        args.push(Arg::Int(*at));
        let c = placeholder(&args);
        args.push(Arg::Text(id));
        let i = placeholder(&args);
        sql.push_str(&format!(" AND (e.created_at, e.id) < ({c}, {i})"));
    }
    args.push(Arg::Int(filter.page.fetch()));
    sql.push_str(&format!(" ORDER BY e.created_at DESC, e.id DESC LIMIT {}", placeholder(&args)));
    (sql, args)
}

/// The claim: `$1` owner, `$2` lease end, `$3` now (stamp), `$4` now (due), `$5` limit.
fn claim_sql(backend: Backend) -> String {
    let lock = match backend {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        // BEGIN IMMEDIATE already holds the database's write lock.
        Backend::Sqlite => "",
    };
    format!(
        "UPDATE deliveries SET status = 'leased', lease_owner = $1, lease_until = $2, next_attempt_at = $2, \
         attempts = attempts + 1, updated_at = $3 \
         WHERE id IN (SELECT id FROM deliveries WHERE status IN ('pending', 'leased') AND next_attempt_at <= $4 \
         ORDER BY next_attempt_at LIMIT $5{lock}) \
         RETURNING {DELIVERY_COLUMNS}"
    )
}

/// Deliveries pending, leased and dead: one count each, so that each counts through a partial
/// index (deliveries_due, deliveries_dead) instead of reading or sorting the table.
const OUTBOX_DEPTH_SQL: &str = "SELECT 'pending' AS status, COUNT(*) AS n FROM deliveries \
     WHERE status IN ('pending', 'leased') AND status = 'pending' \
     UNION ALL SELECT 'leased' AS status, COUNT(*) AS n FROM deliveries \
     WHERE status IN ('pending', 'leased') AND status = 'leased' \
     UNION ALL SELECT 'dead' AS status, COUNT(*) AS n FROM deliveries WHERE status = 'dead'";

/// When the next delivery falls due.
const NEXT_DUE_SQL: &str = "SELECT MIN(next_attempt_at) FROM deliveries WHERE status IN ('pending', 'leased')";

/// `query` with `args` bound in order.
fn bind_args<'q>(
    mut query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    args: &[Arg<'q>],
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    for arg in args {
        query = match arg {
            Arg::Text(s) => query.bind(*s),
            Arg::Int(n) => query.bind(*n),
        };
    }
    query
}

impl Store {
    /// Leases up to `limit` claimable deliveries to `owner` until `now_ms + lease_ms`, oldest due
    /// first, adding one to their `attempts`. Claimable: pending with `next_attempt_at <= now_ms`,
    /// or leased with an expired lease. A delivery is never handed to two claimers while its
    /// lease is valid, on either backend.
    pub async fn claim_deliveries(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        if owner.is_empty() {
            return Err(StoreError::Invalid("lease owner must not be empty".into()));
        }
        if lease_ms <= 0 {
            return Err(StoreError::Invalid(format!("lease must be positive, got {lease_ms} ms")));
        }
        if limit == 0 {
            return Ok(Vec::new());
        }
        let sql = claim_sql(self.backend());
        let mut tx = self.begin_relaxed().await?;
        let rows = sqlx::query(&sql)
            .bind(owner)
            .bind(now_ms.saturating_add(lease_ms))
            .bind(super::now_ms())
            .bind(now_ms)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut claimed = rows.iter().map(delivery_from).collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        Ok(claimed)
    }

    /// Marks a delivery delivered and records the attempt, if it is still leased by `owner` for
    /// `attempt.attempt`; `false` (nothing written) otherwise: the lease was lost to another
    /// claimer, or the delivery was already settled. A lease that expired but was not claimed
    /// again still accepts its owner's answer: the attempt did happen.
    pub async fn ack_delivery(&self, id: &str, owner: &str, attempt: &AttemptRecord) -> Result<bool, StoreError> {
        let s = Settlement::ack(id, owner, attempt.clone())?;
        self.settle(&s).await
    }

    /// Records a failed attempt and sends the delivery back to pending at the given time, or to the
    /// dead letter, if it is still leased by `owner` for `attempt.attempt`; `false` (nothing
    /// written) otherwise. `attempt.error` becomes the delivery's `last_error`.
    pub async fn fail_delivery(
        &self,
        id: &str,
        owner: &str,
        attempt: &AttemptRecord,
        next: Retry,
    ) -> Result<bool, StoreError> {
        let s = Settlement::fail(id, owner, attempt.clone(), next)?;
        self.settle(&s).await
    }

    /// Writes `settlements` in one transaction; for each, whether it applied (`false`: the lease
    /// was no longer its owner's for that attempt, and nothing of it was written). Many
    /// settlements in one commit cost little more than one: see [`Settler`].
    pub async fn settle_deliveries(&self, settlements: &[Settlement]) -> Result<Vec<bool>, StoreError> {
        let mut tx = self.begin_relaxed().await?;
        let mut applied = Vec::with_capacity(settlements.len());
        for s in settlements {
            applied.push(settle_in(&mut tx, s).await?);
        }
        tx.commit().await?;
        Ok(applied)
    }

    async fn settle(&self, s: &Settlement) -> Result<bool, StoreError> {
        let mut tx = self.begin_relaxed().await?;
        let applied = settle_in(&mut tx, s).await?;
        tx.commit().await?;
        Ok(applied)
    }

    /// Sends one dead delivery of the tenant back to pending, due at `now_ms`, with a fresh retry
    /// schedule (`attempts` is kept: it numbers the attempt history). `false` when the delivery
    /// is not the tenant's or not dead.
    pub async fn redrive(&self, tenant: &str, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = $3, schedule_base = attempts, \
             updated_at = $4 WHERE tenant = $1 AND id = $2 AND status = 'dead'",
        )
        .bind(tenant)
        .bind(id)
        .bind(now_ms)
        .bind(super::now_ms())
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Redrives (as [`Store::redrive`]) every dead delivery of the tenant, optionally only those to
    /// one destination installation and/or from one route; the number redriven.
    pub async fn redrive_dead(
        &self,
        tenant: &str,
        installation: Option<&str>,
        route: Option<&str>,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = $4, schedule_base = attempts, \
             updated_at = $5 WHERE status = 'dead' AND tenant = $1 \
             AND ($2 IS NULL OR destination_installation = $2) AND ($3 IS NULL OR route_id = $3)",
        )
        .bind(tenant)
        .bind(installation)
        .bind(route)
        .bind(now_ms)
        .bind(super::now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// The tenant's delivery `id`.
    pub async fn delivery(&self, tenant: &str, id: &str) -> Result<Option<DeliveryRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE tenant = $1 AND id = $2"))
            .bind(tenant)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(delivery_from).transpose()
    }

    /// The attempts of the tenant's delivery `id`, in order.
    pub async fn delivery_attempts(&self, tenant: &str, id: &str) -> Result<Vec<AttemptRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.attempt, a.started_at, a.duration_ms, a.outcome, a.error FROM delivery_attempts a \
             JOIN deliveries d ON d.id = a.delivery_id WHERE d.tenant = $1 AND a.delivery_id = $2 ORDER BY a.attempt",
        )
        .bind(tenant)
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(attempt_from).collect()
    }

    /// The tenant's event `id` with its deliveries (by creation, then id) and their attempts.
    pub async fn event(&self, tenant: &str, id: &str) -> Result<Option<EventDetail>, StoreError> {
        let row = sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE tenant = $1 AND id = $2"))
            .bind(tenant)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        let Some(event) = row.as_ref().map(event_from).transpose()? else { return Ok(None) };
        let rows = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE tenant = $1 AND event_id = $2 ORDER BY created_at, id"
        ))
        .bind(tenant)
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        let deliveries = rows.iter().map(delivery_from).collect::<Result<Vec<_>, _>>()?;
        let attempts = sqlx::query(
            "SELECT a.delivery_id, a.attempt, a.started_at, a.duration_ms, a.outcome, a.error \
             FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id \
             WHERE d.tenant = $1 AND d.event_id = $2 ORDER BY a.delivery_id, a.attempt",
        )
        .bind(tenant)
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        let mut by_delivery: HashMap<String, Vec<AttemptRow>> = HashMap::new();
        for row in &attempts {
            by_delivery.entry(row.try_get("delivery_id")?).or_default().push(attempt_from(row)?);
        }
        let deliveries = deliveries
            .into_iter()
            .map(|d| {
                let attempts = by_delivery.remove(&d.id).unwrap_or_default();
                (d, attempts)
            })
            .collect();
        Ok(Some((event, deliveries)))
    }

    /// One page of the tenant's events, newest first (by creation time, then id).
    pub async fn list_events(&self, tenant: &str, filter: &EventFilter) -> Result<Page<EventRow>, StoreError> {
        let mut pattern = String::new();
        let (sql, args) = events_query(tenant, filter, &mut pattern);
        let rows = bind_args(sqlx::query(&sql), &args).fetch_all(self.pool()).await?;
        Ok(Page::of(rows.iter().map(event_from).collect::<Result<_, _>>()?, &filter.page))
    }

    /// Deliveries waiting, leased and dead, over all tenants (for metrics).
    pub async fn outbox_depth(&self) -> Result<OutboxDepth, StoreError> {
        let rows = sqlx::query(OUTBOX_DEPTH_SQL).fetch_all(self.pool()).await?;
        let mut depth = OutboxDepth::default();
        for row in &rows {
            let status: String = row.try_get("status")?;
            let n = u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0);
            match status.parse()? {
                DeliveryStatus::Pending => depth.pending = n,
                DeliveryStatus::Leased => depth.leased = n,
                DeliveryStatus::Dead => depth.dead = n,
                DeliveryStatus::Delivered => {}
            }
        }
        Ok(depth)
    }

    /// The earliest time a delivery becomes claimable — a pending one falls due or a lease
    /// expires — or `None` when nothing is pending or leased. A dispatcher sleeps until then (or
    /// until woken by a new event) instead of polling.
    pub async fn next_due_at(&self) -> Result<Option<i64>, StoreError> {
        let at: Option<i64> = sqlx::query_scalar(NEXT_DUE_SQL).fetch_one(self.pool()).await?;
        Ok(at)
    }

    /// The query plans (SQLite's `EXPLAIN QUERY PLAN`, PostgreSQL's `EXPLAIN`) of the outbox's
    /// hot queries, of the lookups a deleted installation or event cascades into and of the
    /// deliveries' foreign-key check, by name: what shows
    /// that each is served by an index (see docs/architecture.md on the outbox's indexes). Reads
    /// nothing but the schema and statistics.
    pub async fn explain_outbox_queries(
        &self,
        tenant: &str,
        installation: &str,
    ) -> Result<Vec<(&'static str, String)>, StoreError> {
        let explain = match self.backend() {
            Backend::Sqlite => "EXPLAIN QUERY PLAN ",
            Backend::Postgres => "EXPLAIN ",
        };
        let filter = EventFilter {
            installation: Some(installation.to_string()),
            page: PageRequest::after(Some((now_ms(), "evt_".to_string())), 100),
            ..EventFilter::default()
        };
        let mut pattern = String::new();
        let (events_sql, events_args) = events_query(tenant, &filter, &mut pattern);
        let claim = claim_sql(self.backend());
        let cascade_args = [Arg::Text(tenant), Arg::Text(installation)];
        // A delivery names its event by (tenant, id) on SQLite, by id on PostgreSQL (its 0012).
        let (event_deliveries, delivery_event, event_args): (&str, &str, &[Arg<'_>]) = match self.backend() {
            Backend::Sqlite => (
                "SELECT 1 FROM deliveries WHERE tenant = $1 AND event_id = $2",
                "SELECT 1 FROM events WHERE tenant = $1 AND id = $2",
                &[Arg::Text(tenant), Arg::Text("evt_0")],
            ),
            Backend::Postgres => (
                "SELECT 1 FROM deliveries WHERE event_id = $1",
                "SELECT 1 FROM ONLY events x WHERE id = $1 FOR KEY SHARE OF x",
                &[Arg::Text("evt_0")],
            ),
        };
        let queries: [(&'static str, &str, &[Arg<'_>]); 9] = [
            ("claim", &claim, &[Arg::Text("owner"), Arg::Int(1), Arg::Int(1), Arg::Int(1), Arg::Int(10)]),
            ("outbox depth", OUTBOX_DEPTH_SQL, &[]),
            ("next due", NEXT_DUE_SQL, &[]),
            ("events of an installation", &events_sql, &events_args),
            (
                "cascade: requests",
                "SELECT 1 FROM ingress_requests WHERE tenant = $1 AND installation = $2",
                &cascade_args,
            ),
            ("cascade: events", "SELECT 1 FROM events WHERE tenant = $1 AND source_installation = $2", &cascade_args),
            (
                "cascade: deliveries",
                "SELECT 1 FROM deliveries WHERE tenant = $1 AND destination_installation = $2",
                &cascade_args,
            ),
            ("cascade: an event's deliveries", event_deliveries, event_args),
            ("foreign key: a delivery's event", delivery_event, event_args),
        ];
        let mut plans = Vec::with_capacity(queries.len());
        // One connection: the claim's plan needs no transaction, and EXPLAIN changes nothing.
        let mut conn = self.pool().acquire().await?;
        for (name, sql, args) in queries {
            let sql = format!("{explain}{sql}");
            let rows = bind_args(sqlx::query(&sql), args).fetch_all(&mut *conn).await?;
            let mut text = String::new();
            for row in &rows {
                // SQLite: (id, parent, notused, detail); PostgreSQL: one text column per line.
                let line: String = match self.backend() {
                    Backend::Sqlite => row.try_get("detail")?,
                    Backend::Postgres => row.try_get(0)?,
                };
                text.push_str(&line);
                text.push('\n');
            }
            plans.push((name, text));
        }
        Ok(plans)
    }

    /// Forgets the dedupe keys of webhook requests received before `before_ms` (keep them at
    /// least as long as senders retry: 72 h or more). Only the key is cleared: the request, its
    /// events and their deliveries stay; a later request with the same key is then accepted as
    /// new. The number of keys cleared.
    pub async fn purge_dedupe_keys_before(&self, before_ms: i64) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE ingress_requests SET dedupe_key = NULL WHERE dedupe_key IS NOT NULL AND received_at < $1",
        )
        .bind(before_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// The tenant's webhook request `id`: everything as recorded.
    pub async fn ingress_request(&self, tenant: &str, id: &str) -> Result<Option<NewIngress>, StoreError> {
        let row = sqlx::query(
            "SELECT id, tenant, installation, received_at, method, path, headers_json, body, dedupe_key, \
             response_status, response_body FROM ingress_requests WHERE tenant = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let status: i64 = row.try_get("response_status")?;
        Ok(Some(NewIngress {
            id: row.try_get("id")?,
            tenant: row.try_get("tenant")?,
            installation: row.try_get("installation")?,
            received_at_ms: row.try_get("received_at")?,
            method: row.try_get("method")?,
            path: row.try_get("path")?,
            headers_json: row.try_get("headers_json")?,
            body: row.try_get("body")?,
            dedupe_key: row.try_get("dedupe_key")?,
            response_status: u16::try_from(status)
                .map_err(|_| StoreError::Invalid(format!("stored response status {status} is not an HTTP status")))?,
            response_body: row.try_get("response_body")?,
        }))
    }
}

/// How one attempt of a leased delivery ends ([`Store::settle_deliveries`], [`Settler`]).
#[derive(Debug, Clone)]
pub struct Settlement {
    id: String,
    owner: String,
    attempt: AttemptRecord,
    status: DeliveryStatus,
    next_attempt_at: Option<i64>,
}

impl Settlement {
    /// A successful attempt: the delivery becomes delivered.
    pub fn ack(id: &str, owner: &str, attempt: AttemptRecord) -> Result<Settlement, StoreError> {
        if attempt.outcome != AttemptOutcome::Ok {
            return Err(StoreError::Invalid(format!(
                "cannot ack delivery {id} with outcome {}: use fail_delivery",
                attempt.outcome
            )));
        }
        Settlement::new(id, owner, attempt, DeliveryStatus::Delivered, None)
    }

    /// A failed attempt: the delivery is retried at `next`, or dead.
    pub fn fail(id: &str, owner: &str, attempt: AttemptRecord, next: Retry) -> Result<Settlement, StoreError> {
        if attempt.outcome == AttemptOutcome::Ok {
            return Err(StoreError::Invalid(format!("cannot fail delivery {id} with outcome ok: use ack_delivery")));
        }
        match next {
            Retry::At(at) => Settlement::new(id, owner, attempt, DeliveryStatus::Pending, Some(at)),
            Retry::Dead => Settlement::new(id, owner, attempt, DeliveryStatus::Dead, None),
        }
    }

    fn new(
        id: &str,
        owner: &str,
        attempt: AttemptRecord,
        status: DeliveryStatus,
        next_attempt_at: Option<i64>,
    ) -> Result<Settlement, StoreError> {
        if attempt.duration_ms < 0 {
            return Err(StoreError::Invalid(format!(
                "attempt duration must not be negative, got {}",
                attempt.duration_ms
            )));
        }
        Ok(Settlement { id: id.to_string(), owner: owner.to_string(), attempt, status, next_attempt_at })
    }
}

/// One settlement inside `tx`: the fenced update, then the attempt's history row.
async fn settle_in(tx: &mut Transaction<'static, Any>, s: &Settlement) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE deliveries SET status = $4, next_attempt_at = COALESCE($5, next_attempt_at), \
         lease_owner = NULL, lease_until = NULL, last_error = $6, updated_at = $7 \
         WHERE id = $1 AND status = 'leased' AND lease_owner = $2 AND attempts = $3",
    )
    .bind(&s.id)
    .bind(&s.owner)
    .bind(s.attempt.attempt)
    .bind(s.status.as_str())
    .bind(s.next_attempt_at)
    .bind(s.attempt.error.as_deref())
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms, outcome, error) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&s.id)
    .bind(s.attempt.attempt)
    .bind(s.attempt.started_at_ms)
    .bind(s.attempt.duration_ms)
    .bind(s.attempt.outcome.as_str())
    .bind(s.attempt.error.as_deref())
    .execute(&mut **tx)
    .await
    .map_err(|e| insert_error(e, &format!("attempt {} of delivery {}", s.attempt.attempt, s.id)))?;
    Ok(true)
}

/// Settles deliveries for the dispatcher, many per transaction.
///
/// Every delivery ends with a settlement, and one transaction each made the dispatcher's commits
/// the limit of delivery throughput (on SQLite every one of them waits for the single writer).
/// As with webhook group commit (`group.rs`), callers hand settlements to a writer task, which
/// takes the first and whatever is already queued behind it (no added delay: a lone settlement
/// commits at once) and commits them together; each caller gets its own answer. A batch that
/// fails is retried one settlement at a time, so one bad settlement fails alone.
#[derive(Clone)]
pub struct Settler {
    queue: tokio::sync::mpsc::Sender<SettleJob>,
}

type SettleJob = (Settlement, tokio::sync::oneshot::Sender<Result<bool, StoreError>>);

/// Most settlements in one transaction.
const MAX_SETTLE_BATCH: usize = 256;

impl Settler {
    /// Starts the writer task on the current Tokio runtime (panics outside one). It ends when
    /// every clone of the settler is dropped and the queue is drained.
    pub fn spawn(store: Store) -> Settler {
        let (queue, mut rx) = tokio::sync::mpsc::channel::<SettleJob>(4 * MAX_SETTLE_BATCH);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_SETTLE_BATCH);
            while let Some(first) = rx.recv().await {
                batch.push(first);
                while batch.len() < MAX_SETTLE_BATCH {
                    match rx.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                let settlements: Vec<Settlement> = batch.iter().map(|(s, _)| s.clone()).collect();
                match store.settle_deliveries(&settlements).await {
                    Ok(applied) => {
                        for ((_, answer), applied) in batch.drain(..).zip(applied) {
                            let _ = answer.send(Ok(applied));
                        }
                    }
                    Err(_) => {
                        for (s, answer) in batch.drain(..) {
                            let _ = answer.send(store.settle(&s).await);
                        }
                    }
                }
            }
        });
        Settler { queue }
    }

    /// Settles `s` with others queued at the same time; whether it applied (see
    /// [`Store::settle_deliveries`]).
    pub async fn settle(&self, s: Settlement) -> Result<bool, StoreError> {
        let (answer, wait) = tokio::sync::oneshot::channel();
        self.queue
            .send((s, answer))
            .await
            .map_err(|_| StoreError::Invalid("the delivery settler has stopped".into()))?;
        wait.await.map_err(|_| StoreError::Invalid("the delivery settler has stopped".into()))?
    }
}
