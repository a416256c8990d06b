//! Webhook ingress throughput: one transaction per request ([`Store::record_ingress`]) against
//! group commit ([`GroupCommitter`]), on SQLite and PostgreSQL.
//!
//! Each request is what a webhook becomes: an ingress row with a 500-byte body, one event and one
//! delivery. Every row of the table runs on a fresh database (a SQLite file in a temporary
//! directory; a schema of its own on PostgreSQL, dropped afterwards), has many callers record
//! requests concurrently for a fixed number of requests or a time budget, and is verified: every
//! call must answer `Recorded` and the tables must then hold exactly one request, event and
//! delivery per acknowledged call.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sqlx::{Connection, Executor};

use patchbay_store::{
    Backend, GroupCommitConfig, GroupCommitter, IngressOutcome, IngressWrite, NewDelivery, NewEvent, NewIngress,
    NewInstallation, NewVersion, Rows, SqliteSynchronous, Store,
};

/// Rows written per request: ingress row, event, delivery.
const ROWS_PER_REQUEST: usize = 3;

/// How a row of the table records its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// [`Store::record_ingress`]: one transaction per request.
    PerRequest,
    /// [`GroupCommitter::record`]: requests share transactions.
    GroupCommit,
    /// [`Store::record_ingress_batch`] of `BATCH` requests at a time from one caller, with
    /// multi-row statements (what group commit uses)…
    BatchMultiRow,
    /// …or one statement per row, for comparison.
    BatchRowByRow,
}

impl Mode {
    /// How the table names it.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Mode::PerRequest => "tx per request",
            Mode::GroupCommit => "group commit",
            Mode::BatchMultiRow => "batch multi-row",
            Mode::BatchRowByRow => "batch row/row",
        }
    }
}

/// Requests per batch of the [`Mode::BatchMultiRow`] and [`Mode::BatchRowByRow`] rows (p50 and
/// p99 are then per batch).
pub(crate) const BATCH: usize = 512;

/// One measured configuration.
#[derive(Debug, Clone)]
pub struct Row {
    /// The database measured.
    pub backend: Backend,
    /// SQLite's `synchronous` pragma (`None` on PostgreSQL).
    pub synchronous: Option<&'static str>,
    /// How requests were recorded.
    pub mode: Mode,
    /// Concurrent callers.
    pub callers: usize,
    /// Requests acknowledged (and found stored).
    pub requests: usize,
    /// Wall time of the row.
    pub wall: Duration,
    /// Median latency per request (per batch for the batch modes).
    pub p50: Duration,
    /// 99th-percentile latency per request (per batch for the batch modes).
    pub p99: Duration,
}

impl Row {
    /// Acknowledged requests per second of wall time.
    pub fn requests_per_sec(&self) -> f64 {
        self.requests as f64 / self.wall.as_secs_f64()
    }

    pub(crate) fn rows_per_sec(&self) -> f64 {
        self.requests_per_sec() * ROWS_PER_REQUEST as f64
    }
}

impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let backend = match self.synchronous {
            Some(sync) => format!("{} ({sync})", self.backend),
            None => self.backend.to_string(),
        };
        let mode = self.mode.label();
        write!(
            f,
            "{backend:<17} {mode:<15} {:>7} {:>8} {:>11.0} {:>11.0} {:>9.3} {:>9.3}",
            self.callers,
            self.requests,
            self.requests_per_sec(),
            self.rows_per_sec(),
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
        )
    }
}

/// The header line matching [`Row`]'s display.
pub(crate) const HEADER: &str =
    "backend           mode            callers requests      req/s      rows/s   p50 ms   p99 ms";

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Where the SQLite files go (one per row); `None` skips SQLite.
    pub sqlite_dir: Option<std::path::PathBuf>,
    /// PostgreSQL to measure (a schema of its own is created and dropped); `None` skips it.
    pub postgres_url: Option<String>,
    /// Most requests per row.
    pub requests: usize,
    /// Most time per row (the row stops taking new requests then).
    pub budget: Duration,
    /// Concurrent callers of the group-commit rows.
    pub callers: Vec<usize>,
    /// Group commit settings (writers on PostgreSQL, batch caps).
    pub group: GroupCommitConfig,
    /// Only rows whose mode (`tx per request`, `group commit`, `batch multi-row`,
    /// `batch row/row`) contains this.
    pub only: Option<String>,
}

/// Runs every row of `plan`, printing each as it completes.
pub async fn run(plan: &Plan) -> anyhow::Result<Vec<Row>> {
    println!("{HEADER}");
    let mut rows = Vec::new();
    let mut configs = Vec::new();
    if plan.sqlite_dir.is_some() {
        for sync in [SqliteSynchronous::Normal, SqliteSynchronous::Full] {
            configs.push((Backend::Sqlite, Some(sync), Mode::PerRequest, 1));
            configs.push((Backend::Sqlite, Some(sync), Mode::PerRequest, 64));
            configs.push((Backend::Sqlite, Some(sync), Mode::GroupCommit, 1));
            for &c in &plan.callers {
                configs.push((Backend::Sqlite, Some(sync), Mode::GroupCommit, c));
            }
        }
        for mode in [Mode::BatchMultiRow, Mode::BatchRowByRow] {
            configs.push((Backend::Sqlite, Some(SqliteSynchronous::Normal), mode, 1));
        }
    }
    if plan.postgres_url.is_some() {
        configs.push((Backend::Postgres, None, Mode::PerRequest, 1));
        configs.push((Backend::Postgres, None, Mode::PerRequest, 64));
        configs.push((Backend::Postgres, None, Mode::GroupCommit, 1));
        for &c in &plan.callers {
            configs.push((Backend::Postgres, None, Mode::GroupCommit, c));
        }
        for mode in [Mode::BatchMultiRow, Mode::BatchRowByRow] {
            configs.push((Backend::Postgres, None, mode, 1));
        }
    }
    configs.retain(|(_, _, mode, _)| plan.only.as_deref().is_none_or(|only| mode.label().contains(only)));
    for (n, (backend, sync, mode, callers)) in configs.into_iter().enumerate() {
        let row = run_one(plan, n, backend, sync, mode, callers).await?;
        println!("{row}");
        rows.push(row);
    }
    Ok(rows)
}

/// One row of the table on a fresh database (`n` numbers it among the run's databases):
/// `sync` is SQLite's `synchronous` (`None`: the default, and on PostgreSQL).
pub async fn run_one(
    plan: &Plan,
    n: usize,
    backend: Backend,
    sync: Option<SqliteSynchronous>,
    mode: Mode,
    callers: usize,
) -> anyhow::Result<Row> {
    let db = BenchDb::create(plan, backend, n).await?;
    let store = Store::connect_with(
        &db.url,
        patchbay_store::SqliteOptions { synchronous: sync.unwrap_or_default(), ..Default::default() },
    )
    .await?;
    let result = measure(&store, mode, callers, plan).await;
    store.close().await;
    db.drop_schema().await;
    let (requests, wall, p50, p99) = result?;
    Ok(Row {
        backend,
        synchronous: sync.map(|s| if s == SqliteSynchronous::Full { "FULL" } else { "NORMAL" }),
        mode,
        callers,
        requests,
        wall,
        p50,
        p99,
    })
}

/// A database for one row.
struct BenchDb {
    url: String,
    /// PostgreSQL: the base URL and the schema to drop.
    schema: Option<(String, String)>,
}

impl BenchDb {
    async fn create(plan: &Plan, backend: Backend, n: usize) -> anyhow::Result<BenchDb> {
        match (backend, &plan.sqlite_dir, &plan.postgres_url) {
            (Backend::Sqlite, Some(dir), _) => {
                let file = dir.join(format!("ingress-{n}.db"));
                let text = file.to_str().context("temporary directory path is not UTF-8")?;
                Ok(BenchDb { url: format!("sqlite://{text}?mode=rwc"), schema: None })
            }
            (Backend::Postgres, _, Some(base)) => {
                let schema = format!("bench_ingress_{}_{n}", std::process::id());
                let mut conn = sqlx::PgConnection::connect(base).await.context("connecting to PostgreSQL")?;
                conn.execute(
                    format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE; CREATE SCHEMA \"{schema}\"").as_str(),
                )
                .await?;
                conn.close().await?;
                let sep = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
                Ok(BenchDb { url, schema: Some((base.clone(), schema)) })
            }
            _ => bail!("no database configured for {backend}"),
        }
    }

    async fn drop_schema(self) {
        let Some((base, schema)) = self.schema else { return };
        if let Ok(mut conn) = sqlx::PgConnection::connect(&base).await {
            let _ = conn.execute(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE").as_str()).await;
            let _ = conn.close().await;
        }
    }
}

/// Tenant `bench` with installations `src` (receives webhooks) and `dst` (delivered to).
async fn fixtures(store: &Store) -> anyhow::Result<()> {
    store.create_tenant("bench", "bench").await?;
    let bytes = b"bench component".to_vec();
    let version = NewVersion {
        owner: None,
        connector_id: "hook".into(),
        version: "1.0.0".into(),
        digest: hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes)),
        manifest_json: "{}".into(),
        category: "webhook-endpoint".into(),
        title: "Hook".into(),
        description: "bench".into(),
        provider: "bench".into(),
        bundle_id: None,
        size: i64::try_from(bytes.len())?,
        signed_by: None,
        state: patchbay_store::VersionState::Ready,
    };
    store.publish(&version, &bytes).await?;
    for id in ["src", "dst"] {
        store
            .create_installation(&NewInstallation {
                id: id.into(),
                tenant: "bench".into(),
                name: id.into(),
                connector_owner: None,
                connector_id: "hook".into(),
                version: "1.0.0".into(),
                api_version: None,
                config_json: "{}".into(),
                limits_json: "{}".into(),
                credentials_from: None,
                enabled: true,
            })
            .await?;
    }
    Ok(())
}

/// Request `n` as the ingress endpoint would build it.
fn request(n: usize) -> IngressWrite {
    let at = i64::try_from(n).unwrap_or(i64::MAX);
    let (ingress_id, event_id, delivery_id) = (format!("in_{n:08}"), format!("evt_{n:08}"), format!("dl_{n:08}"));
    IngressWrite {
        ingress: NewIngress {
            id: ingress_id,
            tenant: "bench".into(),
            installation: "src".into(),
            received_at_ms: at,
            method: "POST".into(),
            path: "/hooks/h_src".into(),
            headers_json: format!(r#"[["content-type","application/json"],["webhook-id","msg_{n}"]]"#),
            body: format!(r#"{{"id":"msg_{n}","data":"{}"}}"#, "x".repeat(470)).into_bytes(),
            dedupe_key: Some(format!("msg_{n}")),
            response_status: 202,
            response_body: String::new(),
        },
        events: vec![NewEvent {
            id: event_id.clone(),
            tenant: "bench".into(),
            source_installation: "src".into(),
            event_type: "bench.created".into(),
            subject: None,
            payload: format!(r#"{{"n":{n}}}"#),
            idempotency_key: format!("msg_{n}"),
            created_at_ms: at,
        }],
        deliveries: vec![NewDelivery {
            id: delivery_id,
            event_id: event_id.clone(),
            tenant: "bench".into(),
            route_id: Some("r1".into()),
            destination_installation: "dst".into(),
            operation: "send".into(),
            payload: format!(r#"{{"n":{n}}}"#),
            idempotency_key: format!("{event_id}:r1"),
            next_attempt_at_ms: at,
            lease: None,
        }],
    }
}

#[derive(Clone)]
enum Recorder {
    PerRequest(Store),
    Group(GroupCommitter),
    Batch(Store, Rows),
}

impl Recorder {
    /// Requests taken per call.
    fn take(&self) -> usize {
        match self {
            Recorder::Batch(..) => BATCH,
            _ => 1,
        }
    }

    /// Records `writes` (requests `from..`).
    async fn record(&self, from: usize, mut writes: Vec<IngressWrite>) -> anyhow::Result<()> {
        let count = writes.len();
        let outcomes = match (self, writes.pop()) {
            (Recorder::PerRequest(store), Some(w)) if count == 1 => {
                vec![store.record_ingress(&w.ingress, &w.events, &w.deliveries).await?]
            }
            (Recorder::Group(committer), Some(w)) if count == 1 => vec![committer.record(w).await?],
            (Recorder::Batch(store, shape), last) => {
                writes.extend(last);
                store.record_ingress_batch_shaped(&writes, *shape).await.into_iter().collect::<Result<_, _>>()?
            }
            _ => bail!("{count} requests given for one call"),
        };
        if outcomes.len() != count || !outcomes.iter().all(|o| matches!(o, IngressOutcome::Recorded { .. })) {
            bail!("requests {from}.. were not all recorded: {outcomes:?}");
        }
        Ok(())
    }
}

/// Runs one row on `store`: requests acknowledged, wall time, p50 and p99 latency.
async fn measure(
    store: &Store,
    mode: Mode,
    callers: usize,
    plan: &Plan,
) -> anyhow::Result<(usize, Duration, Duration, Duration)> {
    fixtures(store).await?;
    let (recorder, writers) = match mode {
        Mode::PerRequest => (Recorder::PerRequest(store.clone()), None),
        Mode::GroupCommit => {
            let (committer, writers) = GroupCommitter::spawn(store.clone(), plan.group.clone());
            (Recorder::Group(committer), Some(writers))
        }
        Mode::BatchMultiRow => (Recorder::Batch(store.clone(), Rows::Many), None),
        Mode::BatchRowByRow => (Recorder::Batch(store.clone(), Rows::One), None),
    };
    // Warm up (connections, prepared statements), then measure.
    let take = recorder.take();
    let warm = (plan.requests / 20).clamp(100, 2_000).next_multiple_of(take);
    let next = Arc::new(AtomicUsize::new(0));
    let warmed = drive(&recorder, callers, &next, warm, None).await?.len() * take;
    // Callers that found the warm-up done took a number each and recorded nothing.
    next.store(warm, Ordering::Relaxed);
    // As autovacuum would on a database in use: without statistics, PostgreSQL plans the
    // foreign-key checks of the fresh tables as sequential scans, and each insert then costs
    // time proportional to the table.
    store.analyze_ingress_tables().await?;
    let started = Instant::now();
    let mut samples = drive(&recorder, callers, &next, warm + plan.requests, Some(started + plan.budget)).await?;
    let wall = started.elapsed();
    drop(recorder);
    if let Some(writers) = writers {
        writers.join().await?;
    }
    let measured = samples.len() * take;
    let acknowledged = warmed + measured;
    let counts = store.ingress_row_counts().await?;
    for (table, stored) in ["ingress_requests", "events", "deliveries"].into_iter().zip(counts) {
        if usize::try_from(stored)? != acknowledged {
            bail!("{table} holds {stored} rows, {acknowledged} requests were acknowledged");
        }
    }
    samples.sort_unstable();
    let pick = |q: f64| samples.get(((samples.len() as f64 - 1.0) * q) as usize).copied().unwrap_or_default();
    Ok((measured, wall, pick(0.50), pick(0.99)))
}

/// `callers` tasks record requests numbered from `next` up to `end` (or until `deadline`); the
/// latency of each call.
async fn drive(
    recorder: &Recorder,
    callers: usize,
    next: &Arc<AtomicUsize>,
    end: usize,
    deadline: Option<Instant>,
) -> anyhow::Result<Vec<Duration>> {
    let mut tasks = Vec::with_capacity(callers);
    for _ in 0..callers {
        let (recorder, next) = (recorder.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let take = recorder.take();
                let n = next.fetch_add(take, Ordering::Relaxed);
                if n + take > end {
                    break;
                }
                let writes = (n..n + take).map(request).collect();
                let t = Instant::now();
                recorder.record(n, writes).await?;
                samples.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(samples)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    Ok(all)
}
