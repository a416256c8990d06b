//! patchbay-store: persistence — every SQL statement patchbay runs lives in this crate, and its
//! migrations beside it (`host/store/migrations/{sqlite,postgres}`).
//!
//! One [`Store`] serves both backends through sqlx's `Any` driver: SQLite (one WAL-mode file in the
//! data dir, the zero-configuration default) and PostgreSQL (`DATABASE_URL=postgres://…`, shared by
//! several hosts). Statements are written once in the common dialect with `$1`-style placeholders,
//! which sqlx-sqlite binds by number, so both backends run the same code path. The few places that
//! differ are explicit and small: the `BEGIN` flavour (`Store::begin_write`) and the advisory lock
//! that serialises state writes on PostgreSQL.
//!
//! Schemas are numbered migration files per backend (`migrations/{sqlite,postgres}`), applied
//! by [`Store::connect`]. On PostgreSQL sqlx's migrator holds an advisory lock while it runs, so two
//! hosts starting together do not race; on SQLite the file's write lock does the same.
//!
//! Booleans are read through `flag`: SQLite stores them as INTEGER 0/1 (the `Any` driver cannot
//! decode SQLite's BOOLEAN declared type), PostgreSQL as BOOLEAN.

#![warn(missing_docs)]

mod api_keys;
mod bulk;
mod config_changes;
mod connectors;
mod credentials;
#[cfg(feature = "bench-fill")]
mod fill;
mod group;
pub mod health;
mod ingress;
mod installations;
mod logs;
pub mod oauth;
mod outbox;
mod page;
mod pg_batch;
pub mod quota;
mod retention;
mod routes;
mod settings;
mod sqlite_batch;
mod state;
pub mod sync;
mod tenants;
mod version_order;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::error::ErrorKind;
use sqlx::sqlite::{SqliteAutoVacuum, SqliteConnectOptions, SqliteConnection, SqliteJournalMode};
use sqlx::{Any, AnyPool, ConnectOptions, Connection, Executor, Row, Transaction};

pub(crate) use patchbay_core::now_ms;

pub use api_keys::{ApiKey, NewApiKey};
pub use config_changes::{CONFIG_CHANNEL, CONFIG_LISTENER_NAME, ConfigChange, ConfigSignal};
pub use connectors::{ConnectorFilter, ConnectorSummary, NewVersion, PublishOutcome, VersionRow, VersionState, Viewer};
pub use credentials::{CredentialRef, SealedField};
#[cfg(feature = "bench-fill")]
pub use fill::{FILL_CHUNK, Fill};
pub use group::{CommitHook, GroupCommitConfig, GroupCommitter, GroupWriters};
pub use ingress::IngressWrite;
pub use ingress::Rows;
pub use installations::{INITIAL_STATUS, InstallationFilter, InstallationPatch, InstallationRow, NewInstallation};
pub use logs::{LogQuery, LogRecord, NewLogRecord, fields_json};
pub use outbox::{
    AttemptOutcome, AttemptRecord, AttemptRow, Delivery, DeliveryLease, DeliveryRow, DeliveryStatus, EmittedEvent,
    EventDetail, EventFilter, EventRow, IngressOutcome, NewDelivery, NewEvent, NewIngress, OutboxDepth, Retry,
    Settlement, Settler,
};
pub use page::{DEFAULT_PAGE, MAX_PAGE, Page, PageRequest};
pub use retention::RetentionClass;
pub use routes::RouteRow;
pub use state::StateWrite;
pub use tenants::Tenant;
pub use version_order::compare_versions;

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// One SQLite file (WAL mode).
    Sqlite,
    /// A PostgreSQL server, possibly shared by several hosts.
    Postgres,
}

impl Backend {
    /// `sqlite` or `postgres`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a store operation failed. The messages of `NotFound`, `Conflict` and `Invalid` are written
/// for API clients (they become 404/409/422 bodies); `Db` and `Migrate` are internal.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The addressed row does not exist (or belongs to another tenant).
    #[error("{0}")]
    NotFound(String),
    /// The write conflicts with existing data (duplicate name, immutable version, …).
    #[error("{0}")]
    Conflict(String),
    /// The input was refused (bad URL, constraint violated, …).
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// The import batches' SQLite connection failed (see `sqlite_batch`).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Applying the schema migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// A stored spelling no enum variant has (a row written by a newer version, or altered).
impl From<patchbay_core::enums::UnknownVariant> for StoreError {
    fn from(e: patchbay_core::enums::UnknownVariant) -> Self {
        StoreError::Invalid(e.to_string())
    }
}

/// The domain error of a store failure: `NotFound`, `Conflict` and `Invalid` keep their message
/// for the caller; a failing database is `Unavailable` to the caller and logged here in full.
impl From<StoreError> for patchbay_core::Error {
    fn from(e: StoreError) -> Self {
        use patchbay_core::error::{Conflict, Field};
        match e {
            StoreError::NotFound(m) => patchbay_core::Error::not_found(m),
            StoreError::Conflict(m) => patchbay_core::Error::conflict(Conflict::State, m),
            StoreError::Invalid(m) => patchbay_core::Error::invalid(Field::Value, m),
            other => {
                tracing::error!("store error: {other}");
                patchbay_core::Error::unavailable("the database is unavailable")
            }
        }
    }
}

/// Handle to the database: a connection pool, cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// Where writes go. On a SQLite file, a pool of its own with one connection: SQLite runs
    /// one writer at a time, and writers waiting in SQLite's busy handler sleep in growing steps
    /// (up to 100 ms) and retry, so under load they lose turns to whoever retries first while
    /// the lock sits idle between them. Queued in this pool's fair acquire instead, every write
    /// starts the moment the previous one ends, in arrival order. Elsewhere the same pool as
    /// reads.
    writer: AnyPool,
    backend: Backend,
    signal: Arc<DispatchSignal>,
    /// SQLite files: the import batches' own connection (see `sqlite_batch`).
    batch_writer: Option<Arc<sqlite_batch::BatchWriter>>,
    /// PostgreSQL's writer of import batches (`COPY`), next to the pool.
    pg_batch: Option<Arc<pg_batch::PgBatchWriter>>,
}

/// Wake-ups of dispatchers after deliveries were stored (see [`Store::wake_dispatchers`]).
#[derive(Default)]
struct DispatchSignal {
    /// This process's dispatcher.
    local: Arc<tokio::sync::Notify>,
    /// PostgreSQL: a `NOTIFY` is owed to other hosts.
    remote_owed: AtomicBool,
    /// Kicks the task that sends the owed `NOTIFY`.
    remote_kick: tokio::sync::Notify,
    remote_task: std::sync::OnceLock<()>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("backend", &self.backend).finish_non_exhaustive()
    }
}

/// How SQLite makes a commit durable (`PRAGMA synchronous`, with the database in WAL mode).
///
/// `Normal` stays the default for now. Measured with group commit (see
/// [`GroupCommitter`]) on the 2-core development machine, `Full` cost 6 % of ingress throughput at
/// 1 024 concurrent callers, 16 % at 256, 9 % at 64, and raised a lone write's p50 from 0.45 ms to
/// 0.66 ms; every other writer (claims, acks, logs: one transaction each) would pay an fsync per
/// commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SqliteSynchronous {
    /// The WAL is synced at checkpoints only: a committed transaction survives the process
    /// crashing, not the machine losing power.
    #[default]
    Normal,
    /// The WAL is synced at every commit: a committed transaction survives power loss.
    Full,
}

impl SqliteSynchronous {
    pub(crate) fn pragma(self) -> &'static str {
        match self {
            SqliteSynchronous::Normal => "NORMAL",
            SqliteSynchronous::Full => "FULL",
        }
    }
}

/// How a SQLite database file is run ([`Store::connect_with`]).
#[derive(Debug, Clone, Copy)]
pub struct SqliteOptions {
    /// How commits are made durable.
    pub synchronous: SqliteSynchronous,
    /// WAL size past which the background checkpointer waits for readers so the WAL can start
    /// over (see `checkpoint_wal`); the WAL file stays within about this size plus what one
    /// checkpoint interval writes. Default 64 MiB.
    pub wal_restart_bytes: u64,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self { synchronous: SqliteSynchronous::default(), wal_restart_bytes: WAL_RESTART_BYTES }
    }
}

/// How long a SQLite connection waits for another writer before giving up.
pub(crate) const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Store {
    /// Connects to `url` and applies pending migrations.
    ///
    /// `sqlite://PATH?mode=rwc`, `sqlite:PATH` (the file is created if missing, in WAL mode) or
    /// `postgres://user@host:port/db` (any sqlx-postgres parameter works, e.g.
    /// `?options=-c%20search_path%3Dmy_schema` to place the tables in a schema).
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Store::connect_with(url, SqliteOptions::default()).await
    }

    /// [`Store::connect`] with the SQLite file tuned as `sqlite` says (ignored on PostgreSQL).
    pub async fn connect_with(url: &str, sqlite: SqliteOptions) -> Result<Store, StoreError> {
        let synchronous = sqlite.synchronous;
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::Invalid(format!(
                "unsupported database URL scheme in {}: use sqlite:PATH or postgres://…",
                redact_url(url)
            )));
        };
        let options = AnyConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("invalid database URL {}: {e}", redact_url(url))))?;
        let mut migration_lock = None;
        let mut batch_writer = None;
        let mut pg_batch = None;
        let mut wal_path = None;
        let mut writer = None;
        let pool = match backend {
            Backend::Sqlite => {
                let prepared = prepare_sqlite_file(url).await?;
                let in_memory = prepared.is_none();
                if let Some((path, lock)) = prepared {
                    wal_path = Some(wal_file(&path));
                    batch_writer = Some(Arc::new(sqlite_batch::BatchWriter::new(path, synchronous)));
                    migration_lock = Some(lock);
                }
                // An in-memory database lives as long as its one connection: keep exactly one.
                let pool = if in_memory {
                    AnyPoolOptions::new().max_connections(1).min_connections(1).idle_timeout(None).max_lifetime(None)
                } else {
                    AnyPoolOptions::new().max_connections(8)
                };
                let pragmas: Arc<str> = format!(
                    "PRAGMA foreign_keys = ON; PRAGMA synchronous = {}; PRAGMA busy_timeout = {}; \
                     PRAGMA cache_size = -32768; PRAGMA temp_store = MEMORY; \
                     PRAGMA wal_autocheckpoint = {}; PRAGMA journal_size_limit = {};",
                    synchronous.pragma(),
                    SQLITE_BUSY_TIMEOUT.as_millis(),
                    // A file's WAL is checkpointed by `checkpoint_wal`, not by commits.
                    if in_memory { 1000 } else { 0 },
                    sqlite.wal_restart_bytes
                )
                .into();
                let pool = run_on_connect(pool, pragmas.clone()).connect_with(options.clone()).await?;
                if !in_memory {
                    let w = AnyPoolOptions::new().max_connections(1).idle_timeout(None).max_lifetime(None);
                    writer = Some(run_on_connect(w, pragmas).connect_with(options).await?);
                }
                pool
            }
            Backend::Postgres => {
                pg_batch = Some(Arc::new(pg_batch::PgBatchWriter::new(url)?));
                AnyPoolOptions::new().max_connections(10).connect_with(options).await?
            }
        };
        let writer = writer.unwrap_or_else(|| pool.clone());
        let store = Store { pool, writer, backend, signal: Arc::default(), batch_writer, pg_batch };
        if let Some(wal_path) = wal_path {
            let wal = WalBound { path: wal_path, restart_bytes: sqlite.wal_restart_bytes.max(1) };
            tokio::spawn(checkpoint_wal(store.pool.clone(), store.writer.clone(), wal, Arc::downgrade(&store.signal)));
        }
        // sqlx's SQLite migrator does not lock: two processes opening a new file together would
        // both try to create the tables. A lock file next to the database, taken before the first
        // connection, serialises them (see `prepare_sqlite_file`).
        store.migrate().await?;
        drop(migration_lock);
        store.refresh_statistics(true).await?;
        Ok(store)
    }

    /// Opens (creating it and its directory if missing) the SQLite database file at `path`.
    pub async fn open_sqlite(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Invalid(format!("cannot create directory {}: {e}", dir.display())))?;
        }
        let text = path
            .to_str()
            .ok_or_else(|| StoreError::Invalid(format!("database path {} is not valid UTF-8", path.display())))?;
        let encoded: String = percent_encoding::utf8_percent_encode(text, PATH_ESCAPES).collect();
        Store::connect(&format!("sqlite://{encoded}?mode=rwc")).await
    }

    /// Which database this store talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// One round trip to the database (health checks).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
        if let Some(w) = &self.pg_batch {
            w.close().await;
        }
    }

    /// Gathers the query planner's statistics where they are missing or stale. Called at start
    /// (`everything`) and after each retention sweep.
    ///
    /// SQLite: `PRAGMA optimize`, which analyzes only tables whose size changed a lot since, with
    /// a bounded sample; `everything` also checks tables no connection has queried yet. Without
    /// statistics SQLite picks among indexes that match equally by their order in the schema,
    /// which for some queries is the wrong one (e.g. the cascade from a deleted installation
    /// walking the whole tenant's events).
    ///
    /// PostgreSQL: what autovacuum's analyze would do, for databases that run without it
    /// (`autovacuum = off`, as some operators set): `ANALYZE` of every table of the schema changed
    /// by more than 50 rows + 10 % since its last analysis. At start it runs whatever the
    /// setting; after a sweep only when autovacuum is off. Returns the tables analyzed.
    pub async fn refresh_statistics(&self, everything: bool) -> Result<Vec<String>, StoreError> {
        if self.backend == Backend::Sqlite {
            let pragma = if everything { "PRAGMA optimize=0x10002" } else { "PRAGMA optimize" };
            sqlx::query(pragma).execute(&self.writer).await?;
            return Ok(Vec::new());
        }
        if !everything {
            let autovacuum: String =
                sqlx::query_scalar("SELECT current_setting('autovacuum')").fetch_one(&self.pool).await?;
            if autovacuum != "off" {
                return Ok(Vec::new());
            }
        }
        let stale: Vec<String> = sqlx::query_scalar(
            "SELECT relname::text FROM pg_stat_user_tables WHERE schemaname = current_schema() \
             AND n_mod_since_analyze > 50 + 0.1 * n_live_tup ORDER BY relname",
        )
        .fetch_all(&self.pool)
        .await?;
        for table in &stale {
            // A name read from the catalogue, quoted as an identifier.
            sqlx::query(&format!("ANALYZE \"{}\"", table.replace('"', "\"\""))).execute(&self.pool).await?;
        }
        Ok(stale)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// Starts a transaction that will write. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`): a deferred transaction that reads and then writes can fail with
    /// `SQLITE_BUSY` without waiting when another connection writes in between.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.writer.begin().await,
        }
    }

    /// A write transaction whose commit need not survive a crash (PostgreSQL: no wait for the
    /// WAL flush; SQLite in WAL mode with `synchronous = NORMAL` does not wait anyway). Only for
    /// writes whose loss is harmless, like delivery leases and settlements (the delivery is
    /// then simply delivered again).
    pub(crate) async fn begin_relaxed(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SET LOCAL synchronous_commit TO OFF").execute(&mut *tx).await?;
        }
        Ok(tx)
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Where a write outside [`Store::begin_write`]'s transactions goes (one statement in its own
    /// transaction): on a SQLite file, the one writer connection; elsewhere the pool.
    pub(crate) fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// Tells dispatchers that deliveries were stored: this process's at once, and on PostgreSQL
    /// every host's through `NOTIFY` (sent by a background task that coalesces bursts into one
    /// notification per round trip). Call after the commit.
    pub fn wake_dispatchers(&self) {
        self.wake_local();
        if self.backend != Backend::Postgres {
            return;
        }
        self.signal.remote_owed.store(true, Ordering::Release);
        self.signal.remote_task.get_or_init(|| {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(send_notifications(self.pool.clone(), self.signal.clone()));
            }
        });
        self.signal.remote_kick.notify_one();
    }

    /// PostgreSQL: starts a task that `LISTEN`s on `NOTIFY_CHANNEL` over its own connection
    /// to `url` and wakes this process's dispatcher for every notification (reconnecting when
    /// the connection drops; each reconnect wakes it too, for what was stored meanwhile).
    pub fn spawn_outbox_listener(&self, url: String) -> tokio::task::JoinHandle<()> {
        tokio::spawn(listen_outbox(self.clone(), url))
    }

    /// Wakes this process's dispatcher only.
    pub fn wake_local(&self) {
        self.signal.local.notify_one();
    }

    /// What this process's dispatcher waits on between claims.
    pub fn dispatch_signal(&self) -> Arc<tokio::sync::Notify> {
        self.signal.local.clone()
    }
}

/// `options` with `sql` run on every new connection.
fn run_on_connect(options: AnyPoolOptions, sql: Arc<str>) -> AnyPoolOptions {
    options.after_connect(move |conn, _meta| {
        let sql = sql.clone();
        Box::pin(async move {
            conn.execute(&*sql).await?;
            Ok(())
        })
    })
}

/// How often the WAL of a SQLite file is checkpointed.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);

/// The default WAL size past which the checkpointer waits for readers to start the WAL over
/// (see [`checkpoint_wal`]). With `journal_size_limit` at the same size, the file stays within
/// about this plus what one checkpoint interval writes.
const WAL_RESTART_BYTES: u64 = 64 * 1024 * 1024;

/// The WAL file [`checkpoint_wal`] keeps bounded, and its bound.
struct WalBound {
    path: PathBuf,
    restart_bytes: u64,
}

/// How long a checkpoint that waits for readers may hold new writers back before it gives up
/// until the next tick.
const WAL_RESTART_WAIT: Duration = Duration::from_millis(500);

/// The WAL file of the SQLite database at `db` (`patchbay.db` → `patchbay.db-wal`).
fn wal_file(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Checkpoints a SQLite file's WAL in the background until the store is dropped or closed, and
/// keeps the WAL file bounded.
///
/// A checkpoint copies committed pages from the WAL into the database file and syncs both. Left
/// to SQLite (`wal_autocheckpoint`) it runs inside whichever commit pushes the WAL past 1 000
/// pages, and that writer waits for the copy and the syncs: with 200 000 synced records of
/// 1 KiB in batches of 2 000, the checkpoints took about half of the batches' commit time on the
/// 2-core development machine. Here they overlap the next writes instead, as `PASSIVE`
/// checkpoints, like SQLite's own: they never block a writer or reader.
///
/// A passive checkpoint alone does not bound the file. The WAL starts over from its beginning
/// only when a writer finds every frame checkpointed and no reader still reading from the WAL;
/// under steady traffic some reader always is, so the WAL grows for as long as the load lasts
/// (5.2 GB next to a 600 MB database after two minutes of full-speed ingest) and reads slow down
/// as it grows. So once the file passes [`SqliteOptions::wal_restart_bytes`], the
/// checkpointer runs a `RESTART` checkpoint on the writer connection, in its turn: it waits (at
/// most [`WAL_RESTART_WAIT`], holding new writers back meanwhile) for the readers of older
/// snapshots to finish, after which the next writer starts the WAL over and
/// `journal_size_limit` truncates the file to that size. When the traffic stops (nothing written
/// since the last tick and everything checkpointed), a `TRUNCATE` checkpoint returns the whole
/// file.
async fn checkpoint_wal(pool: AnyPool, writer: AnyPool, wal: WalBound, alive: std::sync::Weak<DispatchSignal>) {
    let mut tick = tokio::time::interval(CHECKPOINT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Frames in the WAL after the previous checkpoint, and whether nothing was written since.
    let (mut prev_frames, mut idle) = (-1, false);
    loop {
        tick.tick().await;
        if alive.strong_count() == 0 || pool.is_closed() {
            return;
        }
        let wal_bytes = std::fs::metadata(&wal.path).map(|m| m.len()).unwrap_or(0);
        let mode = if idle && wal_bytes > 0 {
            "TRUNCATE"
        } else if wal_bytes > wal.restart_bytes {
            "RESTART"
        } else {
            "PASSIVE"
        };
        // A checkpoint that waits takes the write turn like any writer (see `Store::writer`):
        // competing for SQLite's lock in the busy handler, it would lose to the queued writers.
        let on = if mode == "PASSIVE" { &pool } else { &writer };
        match wal_checkpoint(on, mode).await {
            Ok((busy, frames, copied)) => {
                // Nothing written since the previous checkpoint, and all of it copied.
                idle = mode != "TRUNCATE" && busy == 0 && frames == prev_frames && frames == copied;
                prev_frames = frames;
            }
            Err(_) if pool.is_closed() => return,
            Err(e) => tracing::warn!("checkpointing the SQLite WAL ({mode}) failed: {e}"),
        }
    }
}

/// `PRAGMA wal_checkpoint(mode)` on one connection; a mode that waits for readers and writers
/// waits at most [`WAL_RESTART_WAIT`].
async fn wal_checkpoint(pool: &AnyPool, mode: &str) -> Result<(i64, i64, i64), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let waits = mode != "PASSIVE";
    if waits {
        conn.execute(format!("PRAGMA busy_timeout = {}", WAL_RESTART_WAIT.as_millis()).as_str()).await?;
    }
    let result = sqlx::query(&format!("PRAGMA wal_checkpoint({mode})")).fetch_one(&mut *conn).await;
    if waits {
        let restored =
            conn.execute(format!("PRAGMA busy_timeout = {}", SQLITE_BUSY_TIMEOUT.as_millis()).as_str()).await;
        if restored.is_err() {
            // Never hand a connection with the short timeout back to the pool.
            conn.close_on_drop();
        }
        restored?;
    }
    let row = result?;
    Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
}

/// The PostgreSQL `LISTEN`/`NOTIFY` channel that wakes the dispatchers of every host after
/// deliveries were stored.
pub(crate) const NOTIFY_CHANNEL: &str = "patchbay_outbox";

/// Forwards PostgreSQL notifications to the local wake-up, reconnecting on failure.
async fn listen_outbox(store: Store, url: String) {
    loop {
        match sqlx::postgres::PgListener::connect(&url).await {
            Ok(mut l) => {
                if let Err(e) = l.listen(NOTIFY_CHANNEL).await {
                    tracing::warn!("LISTEN {NOTIFY_CHANNEL} failed: {e}");
                } else {
                    // Anything stored while we were not listening is found by the next claim.
                    store.wake_local();
                    loop {
                        match l.recv().await {
                            Ok(_) => store.wake_local(),
                            Err(e) => {
                                tracing::warn!("outbox listener lost its connection: {e}");
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::warn!("outbox listener cannot connect: {e}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        store.wake_local();
    }
}

/// Sends owed `NOTIFY`s on the outbox channel until the pool closes.
async fn send_notifications(pool: AnyPool, signal: Arc<DispatchSignal>) {
    loop {
        signal.remote_kick.notified().await;
        while signal.remote_owed.swap(false, Ordering::AcqRel) {
            if pool.is_closed() {
                return;
            }
            let sent = sqlx::query("SELECT pg_notify($1, '')").bind(NOTIFY_CHANNEL).execute(&pool).await;
            if let Err(e) = sent {
                tracing::warn!("NOTIFY {} failed: {e}", NOTIFY_CHANNEL);
            }
        }
    }
}

/// Characters escaped when a file path becomes a `sqlite://` URL (sqlx percent-decodes it back).
const PATH_ESCAPES: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'/').remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Creates the SQLite file if missing and switches it to WAL and `auto_vacuum = INCREMENTAL`
/// (persistent properties of the file; see [`ensure_incremental_vacuum`]). Returns the file's
/// path, `None` for an in-memory database.
///
/// Holds the migration lock (see [`MIGRATION_LOCK_SUFFIX`]) from before the first connection:
/// the caller keeps the returned lock until its migrations ran, so a process starting beside
/// another one connects only once the schema is complete, instead of racing the other's
/// migration transactions for the file's write lock.
async fn prepare_sqlite_file(url: &str) -> Result<Option<(PathBuf, std::fs::File)>, StoreError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::Invalid(format!("invalid SQLite URL {url}: {e}")))?;
    if url.contains(":memory:") || url.contains("mode=memory") {
        return Ok(None);
    }
    let file = options.get_filename().to_path_buf();
    let lock = lock_file(file.with_extension(MIGRATION_LOCK_SUFFIX)).await?;
    // sqlx sets `auto_vacuum` before `journal_mode`: on a new file both apply before the first
    // table exists, which is when SQLite lets `auto_vacuum` change without a VACUUM.
    let options = options
        .create_if_missing(true)
        .page_size(SQLITE_PAGE_SIZE)
        .auto_vacuum(SqliteAutoVacuum::Incremental)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(SQLITE_BUSY_TIMEOUT);
    let mut conn = options.connect().await?;
    ensure_incremental_vacuum(&mut conn, &file).await?;
    conn.close().await?;
    Ok(Some((file, lock)))
}

/// Largest existing SQLite file [`ensure_incremental_vacuum`] rewrites at start.
const VACUUM_AT_START_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// Makes sure the file returns the pages the retention sweep frees to the file system
/// (`PRAGMA incremental_vacuum`, which needs `auto_vacuum = INCREMENTAL`).
///
/// A file created by this version has it from the start. A file created before it (with
/// `auto_vacuum = NONE`) can only switch with one `VACUUM`, which rewrites the whole file
/// (needing as much free disk again, and holding every other connection off meanwhile): done
/// here, before the host serves, for files up to [`VACUUM_AT_START_MAX_BYTES`] (a few seconds at
/// most). A larger file keeps running without it — SQLite reuses the freed pages for new rows,
/// so the file stops growing but does not shrink — and the log says how to convert it offline
/// (docs/retention.md).
async fn ensure_incremental_vacuum(conn: &mut SqliteConnection, file: &Path) -> Result<(), StoreError> {
    let mode: i64 = sqlx::query_scalar("PRAGMA auto_vacuum").fetch_one(&mut *conn).await?;
    if mode == 2 {
        return Ok(());
    }
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    if size > VACUUM_AT_START_MAX_BYTES {
        tracing::warn!(
            "{} was created without auto_vacuum = INCREMENTAL and is too large ({} MiB) to convert at start: \
             space freed by retention is reused but not returned to the file system; to convert it, stop the \
             host and run `sqlite3 {} 'PRAGMA auto_vacuum = INCREMENTAL; VACUUM;'` (see docs/retention.md)",
            file.display(),
            size / (1024 * 1024),
            file.display()
        );
        return Ok(());
    }
    sqlx::query("PRAGMA auto_vacuum = INCREMENTAL").execute(&mut *conn).await?;
    sqlx::query("VACUUM").execute(&mut *conn).await?;
    let mode: i64 = sqlx::query_scalar("PRAGMA auto_vacuum").fetch_one(&mut *conn).await?;
    if mode == 2 {
        tracing::info!("{} switched to auto_vacuum = INCREMENTAL (one VACUUM)", file.display());
    } else {
        tracing::warn!("{} could not be switched to auto_vacuum = INCREMENTAL", file.display());
    }
    Ok(())
}

/// Page size of a new SQLite file (an existing one keeps its own: a WAL database cannot change
/// it). Larger than SQLite's 4 KiB default because synced records are about 1 KiB each: with
/// 16 KiB pages a batch of them touches a quarter of the pages, and its commit writes a quarter
/// of the WAL frames. Measured on the 2-core development machine, 200 000 records of 1 KiB
/// inserted in batches of 2 000: the commits took 1.1–1.2 s with 4 KiB pages, 0.65 s with 16 KiB
/// (102 000 → 131 000–144 000 rows/s).
const SQLITE_PAGE_SIZE: u32 = 16 * 1024;

/// Extension of the lock file taken while migrating a SQLite database (`patchbay.db` →
/// `patchbay.migrate-lock`).
const MIGRATION_LOCK_SUFFIX: &str = "migrate-lock";

/// Opens `path` (creating it) and waits for an exclusive lock on it; dropping the file unlocks.
async fn lock_file(path: PathBuf) -> Result<std::fs::File, StoreError> {
    let shown = path.display().to_string();
    let locked = tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new().write(true).create(true).truncate(false).open(&path)?;
        file.lock()?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .map_err(|e| StoreError::Invalid(format!("cannot lock {shown}: {e}")))?;
    locked.map_err(|e| StoreError::Invalid(format!("cannot lock {shown}: {e}")))
}

/// `url` with any password replaced, for logs and error messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparseable URL>".to_string(),
    }
}

/// Reads a boolean column written as BOOLEAN (PostgreSQL) or INTEGER 0/1 (SQLite).
pub(crate) fn flag(row: &AnyRow, column: &str) -> Result<bool, sqlx::Error> {
    match row.try_get::<bool, _>(column) {
        Ok(b) => Ok(b),
        Err(_) => Ok(row.try_get::<i64, _>(column)? != 0),
    }
}

/// A write refused because the installation it refers to does not exist (a foreign key) as
/// `NotFound`; any other error unchanged.
pub(crate) fn missing_installation(e: sqlx::Error, installation: &str) -> StoreError {
    match violation(&e) {
        Some(ErrorKind::ForeignKeyViolation) => StoreError::NotFound(format!("installation {installation} not found")),
        _ => StoreError::Db(e),
    }
}

/// The kind of constraint a database error reports, if it is one.
pub(crate) fn violation(e: &sqlx::Error) -> Option<ErrorKind> {
    match e {
        sqlx::Error::Database(d) => Some(d.kind()).filter(|k| !matches!(k, ErrorKind::Other)),
        _ => None,
    }
}

/// The database's own message for a constraint violation (for `Invalid` errors).
pub(crate) fn db_message(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => d.message().to_string(),
        other => other.to_string(),
    }
}

/// `Some("")`/`None` ↔ the public catalog owner `''` used in the owner columns.
pub(crate) fn owner_key(owner: Option<&str>) -> &str {
    owner.unwrap_or("")
}

pub(crate) fn owner_from_key(owner: String) -> Option<String> {
    if owner.is_empty() { None } else { Some(owner) }
}
