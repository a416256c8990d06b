//! Running one claimed sync run to its end: import runs call `read-batch` batch after batch and
//! commit each batch with its cursor ([`patchbay_store::Store::commit_import_batch`]); export runs
//! read the source's change feed and call `write-batch`.
//!
//! **Pipelined imports.** While batch *n* commits (on the database's side: sqlx's SQLite worker
//! thread or the PostgreSQL server), the connector already reads batch *n + 1* from the cursor
//! batch *n* returned, in a fresh sandbox. The commits stay in order and each carries its own
//! cursor, so the stored cursor never runs ahead of the stored records; a failure of commit *n*
//! discards batch *n + 1* and the run continues from the last committed cursor.
//!
//! **Errors.** Item-level errors (a record without id, data that is not a JSON object, a mapping
//! that does not apply) are stored with the batch and counted as `failed`; the run goes on.
//! Batch-level errors follow the connector's kind: `retryable` errors and traps retry the same
//! cursor with exponential backoff and jitter up to [`SyncConfig::max_attempts`] times;
//! `rate-limited` waits the given retry-after (capped by [`SyncConfig::max_wait`]) without using up
//! attempts; `permanent` and `unauthorized` fail the run (it can be resumed once fixed). While
//! waiting, the run keeps renewing its lease and notices cancellation.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ring::digest::{SHA256, digest};
use serde_json::Value;
use tracing::Instrument;

use super::SyncEngine;
use super::mapping::Mapping;
use crate::installations::Prepared as CallContext;
use crate::quota::QuotaMode;
use crate::routing::{Rule, deliveries_for, glob_matches};
use patchbay_core::now_ms;
use patchbay_runtime::bindings::ConnectorError;
use patchbay_runtime::bindings::data_sync::exports::patchbay::connector::sync::{
    ItemError as SourceItemError, SourceRecord,
};
use patchbay_runtime::calls::{self, ReadMode, ReadRequest, WriteOp, WriteOutcome, WriteRecord, WriteRequest};
use patchbay_runtime::{CallError, CallReport, Hub, Installation, LoadedComponent};
use patchbay_store::sync::{
    BatchOutcome, Change, ChangeEvents, Direction, ExportOutcome, ImportBatch, IncomingRecord, ItemError, Lease,
    RunRow, RunStatus, SyncMode, is_lease_lost,
};
use patchbay_store::{NewDelivery, NewEvent, StoreError};

/// How sync runs execute on this host.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Runs executing at once on this host; 0 runs none (an API-only host).
    pub concurrency: usize,
    /// How long a claimed run is reserved without a write; renewed by every batch and while
    /// waiting. A host that dies leaves its runs to others after this long.
    pub lease: Duration,
    /// Records asked per `read-batch` (the connector's `limit`) and per `write-batch`.
    pub batch_size: u32,
    /// Attempts of one batch before a run fails on retryable errors.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt, with jitter.
    pub base_backoff: Duration,
    /// Longest retry delay, and longest rate-limit wait honoured.
    pub max_wait: Duration,
    /// Which changes become events: every one (`true`), or only those some route takes (the
    /// default: an event per record nobody consumes triples the cost of a first sync, see
    /// `docs/sync.md`).
    pub all_change_events: bool,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            concurrency: 4,
            lease: Duration::from_secs(60),
            batch_size: 1000,
            max_attempts: 8,
            base_backoff: Duration::from_millis(500),
            max_wait: Duration::from_secs(300),
            all_change_events: false,
        }
    }
}

/// A run's lease as held by this worker, with the time it has spent since the last write.
struct Held {
    run_id: String,
    owner: String,
    lease_ms: i64,
    mark: Instant,
}

impl Held {
    /// The lease to pass with a write, carrying the running time since the previous one.
    fn lease(&mut self) -> Lease<'_> {
        let active_ms = i64::try_from(self.mark.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.mark = Instant::now();
        Lease { run_id: &self.run_id, owner: &self.owner, lease_ms: self.lease_ms, active_ms }
    }
}

/// Renews a run's lease in the background every third of the lease, so a slow batch (a long
/// call, a big commit) never lets it expire while the run is alive; notices cancellation and a
/// lost lease between batches.
struct Heartbeat {
    task: tokio::task::JoinHandle<()>,
    cancel: Arc<std::sync::atomic::AtomicBool>,
    lost: Arc<tokio::sync::Notify>,
}

impl Heartbeat {
    fn start(engine: &SyncEngine, held: &Held) -> Heartbeat {
        let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let lost = Arc::new(tokio::sync::Notify::new());
        let (store, run_id, owner, lease_ms) =
            (engine.store.clone(), held.run_id.clone(), held.owner.clone(), held.lease_ms);
        let period = Duration::from_millis(u64::try_from(lease_ms / 3).unwrap_or(1000).max(100));
        let (c, l) = (cancel.clone(), lost.clone());
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let lease = Lease { run_id: &run_id, owner: &owner, lease_ms, active_ms: 0 };
                match store.renew_sync_lease(&lease, None).await {
                    Ok(cancel) => c.store(cancel, std::sync::atomic::Ordering::Relaxed),
                    Err(e) if is_lease_lost(&e) => {
                        l.notify_one();
                        return;
                    }
                    Err(e) => tracing::warn!("renewing the lease of sync run {run_id} failed: {e}"),
                }
            }
        });
        Heartbeat { task, cancel, lost }
    }

    fn cancel_requested(&self) -> bool {
        self.cancel.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn stop(&self) {
        self.task.abort();
    }
}

/// Why a run stopped before finishing.
enum Stop {
    /// It failed; the message is stored with the run.
    Failed(String),
    Cancelled,
    /// Another host holds it now, or the store is unreachable: leave it alone.
    Abandoned(String),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Stop {
        if is_lease_lost(&e) { Stop::Abandoned(e.to_string()) } else { Stop::Abandoned(format!("store: {e}")) }
    }
}

/// Executes a claimed run until it succeeds, fails, is cancelled or is taken over.
pub(crate) async fn execute(engine: &SyncEngine, owner: &str, run: RunRow, cfg: &SyncConfig) {
    let span = tracing::info_span!("sync", run = %run.id, tenant = %run.tenant, installation = %run.installation,
        entity = %run.entity, direction = run.direction.as_str());
    execute_in_span(engine, owner, run, cfg).instrument(span).await
}

async fn execute_in_span(engine: &SyncEngine, owner: &str, run: RunRow, cfg: &SyncConfig) {
    let mut held = Held {
        run_id: run.id.clone(),
        owner: owner.to_string(),
        lease_ms: i64::try_from(cfg.lease.as_millis()).unwrap_or(i64::MAX),
        mark: Instant::now(),
    };
    let started = Instant::now();
    let heartbeat = Heartbeat::start(engine, &held);
    let result = if run.cancel_requested {
        Err(Stop::Cancelled)
    } else {
        let work = async {
            match run.direction {
                Direction::Import => import(engine, &run, &mut held, cfg, &heartbeat).await,
                Direction::Export => export(engine, &run, &mut held, cfg, &heartbeat).await,
            }
        };
        tokio::select! {
            r = work => r,
            // The lease is gone: stop at once, whatever the run was waiting for.
            () = heartbeat.lost.notified() => Err(Stop::Abandoned("the lease was lost".into())),
        }
    };
    heartbeat.stop();
    let (status, error) = match &result {
        Ok(()) => (RunStatus::Succeeded, None),
        Err(Stop::Failed(m)) => (RunStatus::Failed, Some(m.as_str())),
        Err(Stop::Cancelled) => (RunStatus::Cancelled, None),
        Err(Stop::Abandoned(m)) => {
            tracing::warn!("sync run {} left to another worker: {m}", run.id);
            engine.metrics.sync_run_ended("abandoned");
            return;
        }
    };
    if status != RunStatus::Succeeded
        && let Err(e) = engine.store.end_sync_run(&held.lease(), status, error).await
    {
        tracing::warn!("sync run {}: recording its end failed: {e}", run.id);
        return;
    }
    engine.metrics.sync_run_ended(status.as_str());
    let summary = format!("sync {} of {} {}", run.direction.as_str(), run.entity, status.as_str());
    let mut fields =
        vec![("run".to_string(), run.id.clone()), ("ms".into(), started.elapsed().as_millis().to_string())];
    if let Some(e) = error {
        fields.push(("error".into(), e.to_string()));
    }
    engine.changes.record(&run.tenant, &run.installation, summary, fields);
}

/// The installation's call context and component, checked to be a data-sync connector.
async fn resolve(
    engine: &SyncEngine,
    tenant: &str,
    installation: &str,
) -> Result<(Arc<LoadedComponent>, Target), Stop> {
    let r =
        engine.installations.resolve(tenant, installation).await.map_err(|e| Stop::Failed(e.message().to_string()))?;
    let p = &r.prepared;
    if p.component.hub != Some(Hub::DataSync) {
        return Err(Stop::Failed(format!(
            "{}@{} is not a data-sync connector",
            p.version.connector_id, p.version.version
        )));
    }
    let target =
        Target { tenant: tenant.to_string(), installation: installation.to_string(), prepared: r.prepared.clone() };
    Ok((p.component.clone(), target))
}

/// The installation a run calls. A run keeps the component it started with; the installation
/// context of an OAuth connector is resolved again before each call (the host may have refreshed
/// its access token since), and every call draws from the provider budget.
struct Target {
    tenant: String,
    installation: String,
    prepared: Arc<CallContext>,
}

impl Target {
    async fn refresh(&mut self, engine: &SyncEngine) -> Result<(), Stop> {
        let r = engine
            .installations
            .resolve(&self.tenant, &self.installation)
            .await
            .map_err(|e| Stop::Failed(e.message().to_string()))?;
        self.prepared = r.prepared;
        Ok(())
    }

    /// Waits (renewing the lease) for a call's worth of the provider budget.
    async fn admit(&self, engine: &SyncEngine, held: &mut Held) -> Result<(), Stop> {
        let Some(budget) = &self.prepared.budget else { return Ok(()) };
        loop {
            match budget.acquire(QuotaMode::FailFast).await {
                Ok(()) => return Ok(()),
                Err(e) => wait_holding(engine, held, e.retry_after.max(Duration::from_millis(1))).await?,
            }
        }
    }
}

/// The field mapping of an installation's entity, if any.
async fn mapping(engine: &SyncEngine, installation: &str, entity: &str) -> Result<Option<Arc<Mapping>>, Stop> {
    let Some(row) = engine.store.sync_mapping(installation, entity).await? else { return Ok(None) };
    let v: Value = serde_json::from_str(&row.mapping).map_err(|e| Stop::Failed(format!("stored mapping: {e}")))?;
    let m = Mapping::parse(&v).map_err(|e| Stop::Failed(format!("stored mapping of {entity}: {e}")))?;
    Ok(Some(Arc::new(m)))
}

/// What to do after a failed call of a batch.
enum Retry {
    /// Wait this long and call again; counts as an attempt when `counted`.
    After {
        wait: Duration,
        counted: bool,
        message: String,
    },
    Fail(String),
}

fn classify(outcome: Result<ConnectorError, CallError>, attempt: u32, cfg: &SyncConfig) -> Retry {
    match outcome {
        Ok(ConnectorError::Retryable(f)) => {
            Retry::After { wait: backoff(attempt, cfg), counted: true, message: format!("retryable: {}", f.message) }
        }
        Ok(ConnectorError::RateLimited(r)) => Retry::After {
            wait: Duration::from_millis(r.retry_after_ms).min(cfg.max_wait).max(Duration::from_millis(1)),
            counted: false,
            message: format!("rate limited: {}", r.message),
        },
        Ok(ConnectorError::Permanent(f)) => Retry::Fail(format!("permanent error {}: {}", f.code, f.message)),
        Ok(ConnectorError::Unauthorized(f)) => Retry::Fail(format!("unauthorized: {}", f.message)),
        // A trap, a timeout or a host-side failure: the same call may well succeed again.
        Err(e) => Retry::After { wait: backoff(attempt, cfg), counted: true, message: format!("{}: {e}", e.kind()) },
    }
}

/// Exponential backoff with full jitter: uniform in [delay / 2, delay].
fn backoff(attempt: u32, cfg: &SyncConfig) -> Duration {
    let base = cfg.base_backoff.saturating_mul(1u32 << attempt.min(16)).min(cfg.max_wait);
    let mut b = [0u8; 4];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    let frac = f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX);
    base.mul_f64(0.5 + frac / 2.0)
}

/// Most rate-limit waits of one batch before the run fails.
const MAX_RATE_LIMIT_WAITS: u32 = 100;

/// Calls `call` until it succeeds, waiting between attempts as [`classify`] says, renewing the
/// lease and noticing cancellation while waiting.
///
/// Each call first takes its share of the provider budget. An OAuth connector's `unauthorized`
/// refreshes the access token (unless another call already did) and calls once more.
async fn with_retries<T, F, Fut>(
    engine: &SyncEngine,
    held: &mut Held,
    cfg: &SyncConfig,
    what: &str,
    target: &mut Target,
    mut call: F,
) -> Result<T, Stop>
where
    F: FnMut(Installation) -> Fut,
    Fut: std::future::Future<Output = CallReport<Result<T, ConnectorError>>>,
{
    let mut attempts = 0u32;
    let mut waits = 0u32;
    let mut refreshed = false;
    loop {
        if target.prepared.oauth.is_some() {
            target.refresh(engine).await?;
        }
        target.admit(engine, held).await?;
        let report = call(target.prepared.installation.clone()).await;
        let failure = match report.outcome {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(ConnectorError::Unauthorized(_))) if !refreshed && target.prepared.oauth.is_some() => {
                refreshed = true;
                let p = target.prepared.clone();
                if let Some(ctx) = &p.oauth {
                    engine
                        .tokens
                        .refresh_token(&target.tenant, &target.installation, ctx, p.oauth_version)
                        .await
                        .map_err(|e| {
                            Stop::Failed(format!(
                                "{what}: unauthorized, and refreshing the OAuth token failed: {}",
                                e.message()
                            ))
                        })?;
                }
                continue;
            }
            Ok(Err(e)) => Ok(e),
            Err(e) => Err(e),
        };
        match classify(failure, attempts, cfg) {
            Retry::Fail(m) => return Err(Stop::Failed(format!("{what}: {m}"))),
            Retry::After { wait, counted, message } => {
                if counted {
                    attempts += 1;
                } else {
                    waits += 1;
                }
                let message = format!("{what}: {message}");
                if attempts >= cfg.max_attempts || waits > MAX_RATE_LIMIT_WAITS {
                    return Err(Stop::Failed(format!("{message} (gave up after {} attempts)", attempts + waits)));
                }
                tracing::info!("{message}; retrying in {} ms", wait.as_millis());
                engine.store.note_sync_attempt(&held.lease(), i64::from(attempts + waits), &message).await?;
                wait_holding(engine, held, wait).await?;
            }
        }
    }
}

/// Sleeps `wait`, renewing the lease a few times per lease period and stopping on cancellation.
async fn wait_holding(engine: &SyncEngine, held: &mut Held, wait: Duration) -> Result<(), Stop> {
    let step = Duration::from_millis(u64::try_from(held.lease_ms / 3).unwrap_or(1000).clamp(100, 10_000));
    let until = Instant::now() + wait;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        tokio::time::sleep(left.min(step)).await;
        if engine.store.renew_sync_lease(&held.lease(), None).await? {
            return Err(Stop::Cancelled);
        }
    }
}

/// Change events `<entity>.created|updated|deleted` with the deliveries the tenant's routes make
/// of them: for every change, or (`all` off) only for changes some route takes.
struct RoutedChanges {
    rules: Arc<Vec<Rule>>,
    all: bool,
    tenant: String,
    installation: String,
    now: i64,
}

impl RoutedChanges {
    fn wants(&self, event_type: &str) -> bool {
        self.rules.iter().any(|r| {
            r.row.enabled
                && r.row.source_installation.as_deref().is_none_or(|s| s == self.installation)
                && r.row.event_types.iter().any(|g| glob_matches(g, event_type))
        })
    }
}

/// A JSON string literal.
fn quoted(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

impl ChangeEvents for RoutedChanges {
    fn may_emit(&self, entity: &str) -> bool {
        self.all || ["created", "updated", "deleted"].iter().any(|op| self.wants(&format!("{entity}.{op}")))
    }

    fn events_for(&self, c: &Change<'_>) -> Option<(NewEvent, Vec<NewDelivery>)> {
        let event_type = format!("{}.{}", c.entity, c.op);
        let wanted = self.wants(&event_type);
        if !wanted && !self.all {
            return None;
        }
        let payload = format!(
            "{{\"entity\":{},\"id\":{},\"external_id\":{},\"op\":\"{}\",\"seq\":{},\"installation\":{},\"data\":{}}}",
            quoted(c.entity),
            quoted(c.local_id),
            quoted(c.external_id),
            c.op,
            c.seq,
            quoted(&self.installation),
            c.payload
        );
        let event = NewEvent {
            id: patchbay_core::new_id("evt"),
            tenant: self.tenant.clone(),
            source_installation: self.installation.clone(),
            event_type,
            subject: Some(c.external_id.to_string()),
            idempotency_key: format!("sync:{}:{}", c.entity, c.seq),
            payload,
            created_at_ms: self.now,
        };
        let deliveries = match wanted {
            true => {
                let value: Value = serde_json::from_str(&event.payload).ok()?;
                deliveries_for(&self.rules, &event, &value, self.now)
            }
            false => Vec::new(),
        };
        if deliveries.is_empty() && !self.all { None } else { Some((event, deliveries)) }
    }
}

/// The change events of a batch of `installation`; `None` when there are none to write.
async fn routed(
    engine: &SyncEngine,
    tenant: &str,
    installation: &str,
    all: bool,
) -> Result<Option<Arc<RoutedChanges>>, Stop> {
    let rules = engine.router.rules(tenant).await?;
    if rules.is_empty() && !all {
        return Ok(None);
    }
    Ok(Some(Arc::new(RoutedChanges {
        rules,
        all,
        tenant: tenant.to_string(),
        installation: installation.to_string(),
        now: now_ms(),
    })))
}

/// The 64-bit content hash of a payload (the first 8 bytes of its SHA-256).
pub fn content_hash(payload: &str) -> i64 {
    let d = digest(&SHA256, payload.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.as_ref()[..8]);
    i64::from_be_bytes(b)
}

/// A batch's records made ready to store: ids checked, data checked to be a JSON object and
/// mapped, hashed, and deduplicated (the last occurrence of an id wins). Takes the records by value:
/// the ids and (without a mapping) the data move into the store's rows without a copy.
pub(crate) fn prepare_records(
    records: Vec<SourceRecord>,
    item_errors: Vec<SourceItemError>,
    mapping: Option<&Mapping>,
) -> (Vec<IncomingRecord>, Vec<ItemError>) {
    let mut errors: Vec<ItemError> =
        item_errors.into_iter().map(|e| ItemError { external_id: e.id, message: e.message }).collect();
    let mut out: Vec<IncomingRecord> = Vec::with_capacity(records.len());
    let mut index: HashMap<String, usize> = HashMap::with_capacity(records.len());
    for r in records {
        if r.id.is_empty() {
            errors.push(ItemError { external_id: None, message: "record without an id".into() });
            continue;
        }
        let payload = if r.deleted {
            // A deletion keeps the stored payload; the data sent along is not needed.
            String::from("{}")
        } else {
            match checked_payload(r.data, mapping) {
                Ok(p) => p,
                Err(message) => {
                    errors.push(ItemError { external_id: Some(r.id), message });
                    continue;
                }
            }
        };
        let rec = IncomingRecord { hash: content_hash(&payload), payload, deleted: r.deleted, external_id: r.id };
        match index.get(&rec.external_id) {
            Some(&i) => out[i] = rec,
            None => {
                index.insert(rec.external_id.clone(), out.len());
                out.push(rec);
            }
        }
    }
    (out, errors)
}

/// The payload to store for a record's data: the data itself when there is no mapping (checked
/// to be a JSON object), the mapping's output otherwise.
fn checked_payload(data: String, mapping: Option<&Mapping>) -> Result<String, String> {
    match mapping {
        None => {
            if !data.trim_start().starts_with('{') {
                return Err("data is not a JSON object".into());
            }
            serde_json::from_str::<serde::de::IgnoredAny>(&data).map_err(|e| format!("data is not valid JSON: {e}"))?;
            Ok(data)
        }
        Some(m) => {
            let v: Value = serde_json::from_str(&data).map_err(|e| format!("data is not valid JSON: {e}"))?;
            if !v.is_object() {
                return Err("data is not a JSON object".into());
            }
            Ok(m.apply(&v)?.to_string())
        }
    }
}

/// A batch read and prepared, waiting to be committed.
struct Prepared {
    records: Vec<IncomingRecord>,
    errors: Vec<ItemError>,
    fetched: i64,
    next_cursor: Option<String>,
    total: Option<i64>,
    done: bool,
}

async fn import(
    engine: &SyncEngine,
    run: &RunRow,
    held: &mut Held,
    cfg: &SyncConfig,
    hb: &Heartbeat,
) -> Result<(), Stop> {
    let (component, mut target) = resolve(engine, &run.tenant, &run.installation).await?;
    let mapping = mapping(engine, &run.installation, &run.entity).await?;
    let mode = match run.mode {
        SyncMode::Full => ReadMode::Full,
        SyncMode::Incremental => ReadMode::Incremental,
    };
    let mut cursor = run.cursor.clone();
    let mut pending: Option<tokio::task::JoinHandle<Result<BatchOutcome, StoreError>>> = None;
    let mut stalled = 0u32;
    let mut written = 0i64;
    loop {
        let req = ReadRequest { entity: run.entity.clone(), mode, cursor: cursor.clone(), limit: cfg.batch_size };
        let (rt, c, t) = (&engine.runtime, &component, &mut target);
        let m = mapping.as_deref();
        // Read and prepared while the previous batch commits.
        let read = async {
            let batch = with_retries(engine, held, cfg, "read-batch", t, |i| {
                let req = req.clone();
                async move { calls::read_batch(rt, c, &i, req).await }
            })
            .await?;
            let fetched = batch.records.len() as i64;
            let (next_cursor, total, done) =
                (batch.next_cursor, batch.total.and_then(|t| i64::try_from(t).ok()), batch.done);
            let (records, errors) = prepare_records(batch.records, batch.errors, m);
            Ok::<_, Stop>(Prepared { fetched, next_cursor, total, done, records, errors })
        };
        let (committed, read) = match pending.take() {
            Some(commit) => {
                let (c, r) = tokio::join!(commit, read);
                (Some(c), r)
            }
            None => (None, read.await),
        };
        if let Some(c) = committed {
            let outcome = c.map_err(|e| Stop::Abandoned(format!("batch commit panicked: {e}")))??;
            note_batch(engine, &outcome);
            written = refresh_statistics(engine, written, &outcome).await;
            if outcome.cancel_requested || hb.cancel_requested() {
                return Err(Stop::Cancelled);
            }
        }
        let next = read?;
        if !next.done {
            match &next.next_cursor {
                None => {
                    return Err(Stop::Failed("read-batch returned no next-cursor for a batch that is not done".into()));
                }
                Some(c) if Some(c) == cursor.as_ref() && next.fetched == 0 => {
                    stalled += 1;
                    if stalled >= 3 {
                        return Err(Stop::Failed("read-batch makes no progress: same cursor, no records".into()));
                    }
                }
                Some(_) => stalled = 0,
            }
        }
        let done = next.done;
        cursor = next.next_cursor.clone().or(cursor);
        let commit = spawn_commit(engine, run, held, next, cfg).await?;
        if done {
            let outcome = commit.await.map_err(|e| Stop::Abandoned(format!("batch commit panicked: {e}")))??;
            note_batch(engine, &outcome);
            if outcome.cancel_requested {
                return Err(Stop::Cancelled);
            }
            let events = routed(engine, &run.tenant, &run.installation, cfg.all_change_events).await?;
            let swept = engine
                .store
                .finish_import_run(run, &held.lease(), events.as_deref().map(|e| e as &dyn ChangeEvents))
                .await?;
            note_batch(engine, &swept);
            return Ok(());
        }
        pending = Some(commit);
    }
}

/// Starts committing a prepared batch on its own task.
async fn spawn_commit(
    engine: &SyncEngine,
    run: &RunRow,
    held: &mut Held,
    batch: Prepared,
    cfg: &SyncConfig,
) -> Result<tokio::task::JoinHandle<Result<BatchOutcome, StoreError>>, Stop> {
    let events = routed(engine, &run.tenant, &run.installation, cfg.all_change_events).await?;
    let store = engine.store.clone();
    let lease = held.lease();
    let (run_id, owner, lease_ms, active_ms) =
        (lease.run_id.to_string(), lease.owner.to_string(), lease.lease_ms, lease.active_ms);
    let (tenant, installation, entity) = (run.tenant.clone(), run.installation.clone(), run.entity.clone());
    Ok(tokio::spawn(async move {
        let lease = Lease { run_id: &run_id, owner: &owner, lease_ms, active_ms };
        store
            .commit_import_batch(&ImportBatch {
                lease,
                tenant: &tenant,
                installation: &installation,
                entity: &entity,
                records: &batch.records,
                errors: &batch.errors,
                fetched: batch.fetched,
                next_cursor: batch.next_cursor.as_deref(),
                total: batch.total,
                events: events.as_deref().map(|e| e as &dyn ChangeEvents),
            })
            .await
    }))
}

/// Refreshes the store's planner statistics each time the records a run wrote pass a power of
/// ten from 1 000 on (see [`patchbay_store::Store::analyze_records`]); returns the new count.
async fn refresh_statistics(engine: &SyncEngine, before: i64, o: &BatchOutcome) -> i64 {
    let after = before + o.counts.created + o.counts.updated + o.counts.deleted;
    let mut threshold = 1_000;
    while threshold <= after {
        if before < threshold {
            if let Err(e) = engine.store.analyze_records().await {
                tracing::warn!("refreshing the records store's statistics failed: {e}");
            }
            break;
        }
        threshold *= 10;
    }
    after
}

/// Counts a committed batch in the metrics and wakes the dispatchers for its deliveries.
fn note_batch(engine: &SyncEngine, o: &BatchOutcome) {
    engine.metrics.sync_batch(&o.counts);
    if o.deliveries > 0 {
        engine.store.wake_dispatchers();
    }
}

async fn export(
    engine: &SyncEngine,
    run: &RunRow,
    held: &mut Held,
    cfg: &SyncConfig,
    hb: &Heartbeat,
) -> Result<(), Stop> {
    let Some((source_installation, source_entity)) = run.source.clone() else {
        return Err(Stop::Failed("an export run needs a source".into()));
    };
    let (component, mut target) = resolve(engine, &run.tenant, &run.installation).await?;
    let mapping = mapping(engine, &run.installation, &run.entity).await?;
    let mut since: i64 = match run.cursor.as_deref() {
        None | Some("") => 0,
        Some(c) => c.parse().map_err(|_| Stop::Failed(format!("export cursor {c:?} is not a sequence number")))?,
    };
    loop {
        let changes = engine.store.record_changes(&source_installation, &source_entity, since, cfg.batch_size).await?;
        let Some(last) = changes.last().map(|c| c.seq) else {
            engine.store.finish_export_run(run, &held.lease()).await?;
            return Ok(());
        };
        let local_ids: Vec<&str> = changes.iter().map(|c| c.local_id.as_str()).collect();
        let links = engine.store.record_links(&run.installation, &run.entity, &local_ids).await?;
        let mut outcomes = Vec::with_capacity(changes.len());
        let mut records = Vec::with_capacity(changes.len());
        for c in &changes {
            let external_id = links.get(&c.local_id).cloned();
            let deleted = c.op == "deleted";
            if deleted && external_id.is_none() {
                outcomes.push(ExportOutcome::Skipped);
                continue;
            }
            let data = if deleted {
                "{}".to_string()
            } else {
                match checked_payload(c.payload.clone(), mapping.as_deref()) {
                    Ok(d) => d,
                    Err(message) => {
                        outcomes.push(ExportOutcome::Failed { local_id: c.local_id.clone(), message });
                        continue;
                    }
                }
            };
            records.push(WriteRecord {
                local_id: c.local_id.clone(),
                external_id,
                op: if deleted { WriteOp::Delete } else { WriteOp::Upsert },
                data,
            });
        }
        if !records.is_empty() {
            let sent: HashMap<String, bool> =
                records.iter().map(|r| (r.local_id.clone(), r.external_id.is_none())).collect();
            let req = WriteRequest { entity: run.entity.clone(), records };
            let (rt, c) = (&engine.runtime, &component);
            let results = with_retries(engine, held, cfg, "write-batch", &mut target, |i| {
                let req = req.clone();
                async move { calls::write_batch(rt, c, &i, req).await }
            })
            .await?;
            let mut answered = std::collections::HashSet::new();
            for r in results {
                let Some(&new) = sent.get(&r.local_id) else { continue };
                answered.insert(r.local_id.clone());
                outcomes.push(match (r.outcome, r.external_id) {
                    (WriteOutcome::Created | WriteOutcome::Updated, Some(ext)) if !ext.is_empty() => {
                        ExportOutcome::Written { local_id: r.local_id, external_id: ext, created: new }
                    }
                    (WriteOutcome::Created | WriteOutcome::Updated, _) => ExportOutcome::Failed {
                        local_id: r.local_id,
                        message: "write-batch reported success without the destination's id".into(),
                    },
                    (WriteOutcome::Deleted, _) => ExportOutcome::Deleted { local_id: r.local_id },
                    (WriteOutcome::Failed(message), _) => ExportOutcome::Failed { local_id: r.local_id, message },
                });
            }
            for local_id in sent.keys().filter(|l| !answered.contains(*l)) {
                outcomes.push(ExportOutcome::Failed {
                    local_id: local_id.clone(),
                    message: "write-batch returned no result for this record".into(),
                });
            }
        }
        let outcome = engine
            .store
            .commit_export_batch(
                &held.lease(),
                &run.tenant,
                &run.installation,
                &run.entity,
                &outcomes,
                changes.len() as i64,
                &last.to_string(),
            )
            .await?;
        note_batch(engine, &outcome);
        if outcome.cancel_requested || hb.cancel_requested() {
            return Err(Stop::Cancelled);
        }
        since = last;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use patchbay_runtime::calls::Batch;

    fn rec(
        id: &str,
        data: &str,
        deleted: bool,
    ) -> patchbay_runtime::bindings::data_sync::exports::patchbay::connector::sync::SourceRecord {
        patchbay_runtime::bindings::data_sync::exports::patchbay::connector::sync::SourceRecord {
            id: id.into(),
            data: data.into(),
            deleted,
        }
    }

    #[test]
    fn records_are_checked_deduplicated_and_hashed() {
        let batch = Batch {
            records: vec![
                rec("a", r#"{"v":1}"#, false),
                rec("", r#"{"v":2}"#, false),
                rec("b", "[1]", false),
                rec("c", "{nope", false),
                rec("a", r#"{"v":3}"#, false),
                rec("d", "", true),
            ],
            errors: vec![],
            next_cursor: None,
            done: true,
            total: None,
        };
        let (ok, errors) = prepare_records(batch.records, batch.errors, None);
        let ids: Vec<&str> = ok.iter().map(|r| r.external_id.as_str()).collect();
        assert_eq!(ids, ["a", "d"]);
        assert_eq!(ok[0].payload, r#"{"v":3}"#);
        assert_eq!(ok[0].hash, content_hash(r#"{"v":3}"#));
        assert!(ok[1].deleted);
        assert_eq!(errors.len(), 3);
        assert!(errors[0].external_id.is_none());
        assert_eq!(errors[1].external_id.as_deref(), Some("b"));
        assert!(errors[2].message.contains("not valid JSON"), "{}", errors[2].message);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let cfg = SyncConfig {
            base_backoff: Duration::from_millis(100),
            max_wait: Duration::from_secs(1),
            ..Default::default()
        };
        let b0 = backoff(0, &cfg);
        assert!(b0 >= Duration::from_millis(50) && b0 <= Duration::from_millis(100), "{b0:?}");
        let b3 = backoff(3, &cfg);
        assert!(b3 >= Duration::from_millis(400) && b3 <= Duration::from_millis(800), "{b3:?}");
        assert!(backoff(30, &cfg) <= Duration::from_secs(1));
    }
}
