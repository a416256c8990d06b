//! [`StoreOperationLog`]: the durable [`OperationLog`], writing entries to the store in batches.
//!
//! [`OperationLog::append`] runs on the call's task and must not block, so it only queues the
//! call's entries for one background task, which commits entries from many calls together: a
//! batch is written when it reaches [`OplogConfig::max_batch`] entries, [`OplogConfig::linger`]
//! after its first entry, or when [`StoreOperationLog::flush`] asks.
//!
//! The queue is bounded by entries ([`OplogConfig::max_queued`]), not by calls, so a burst of
//! chatty calls and a steady stream of quiet ones are held the same way. It is deep (the default
//! holds several seconds of the host's top call rate) because a full queue is the only place
//! entries are lost: appends beyond it are shed rather than slowing calls down. Shedding is never
//! silent. Each installation that lost entries gets one `warn` entry from the host in its own
//! timeline, written with the next batch, saying how many were dropped and between which times;
//! the host counts them ([`StoreOperationLog::stats`], `patchbay_oplog_entries_total` in
//! `/metrics`) and logs a warning. A batch whose write fails is retried a few times, then dropped
//! and reported the same way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use patchbay_core::Scope;
use patchbay_core::log::{Level, LogEntry, Source};
use patchbay_runtime::capability::log::OperationLog;
use patchbay_store::{NewLogRecord, Store, fields_json};

/// Tuning for [`StoreOperationLog`].
#[derive(Debug, Clone, Copy)]
pub struct OplogConfig {
    /// Entries that may wait for the writer before new ones are shed.
    pub max_queued: usize,
    /// Entries per database write.
    pub max_batch: usize,
    /// How long the first entry of a batch waits for more before the batch is written.
    pub linger: Duration,
}

impl Default for OplogConfig {
    fn default() -> Self {
        Self { max_queued: 250_000, max_batch: 2_000, linger: Duration::from_millis(5) }
    }
}

/// What the operation log did so far (`/metrics`, benchmarks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OplogStats {
    /// Entries handed to the log.
    pub appended: u64,
    /// Entries stored.
    pub written: u64,
    /// Entries lost: shed from a full queue, or in a batch whose writes kept failing.
    pub dropped: u64,
    /// Entries waiting for the writer now.
    pub queued: u64,
}

enum Msg {
    Entries(Scope, Vec<LogEntry>),
    Flush(oneshot::Sender<()>),
}

/// Entries one installation lost since its last note.
struct Shed {
    count: u64,
    first_ms: i64,
    last_ms: i64,
}

#[derive(Default)]
struct Shared {
    appended: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
    queued: AtomicUsize,
    /// Per installation, entries lost and not yet noted in its timeline.
    shed: Mutex<HashMap<Scope, Shed>>,
}

impl Shared {
    /// Counts `n` lost entries of `scope` (and warns on the first and every thousandth).
    fn lose(&self, scope: &Scope, n: usize, why: &str) {
        if n == 0 {
            return;
        }
        let n = n as u64;
        let now = patchbay_core::now_ms();
        {
            let mut shed = self.shed.lock().unwrap_or_else(|p| p.into_inner());
            let s = shed.entry(scope.clone()).or_insert(Shed { count: 0, first_ms: now, last_ms: now });
            s.count += n;
            s.last_ms = now;
        }
        let before = self.dropped.fetch_add(n, Ordering::Relaxed);
        if before == 0 || before / 1_000 != (before + n) / 1_000 {
            tracing::warn!(dropped = n, total_dropped = before + n, "operation log entries dropped: {why}");
        }
    }

    /// The installations that lost entries since their last note, forgotten until [`restore`]d.
    ///
    /// [`restore`]: Shared::restore
    fn take_shed(&self) -> Vec<(Scope, Shed)> {
        std::mem::take(&mut *self.shed.lock().unwrap_or_else(|p| p.into_inner())).into_iter().collect()
    }

    /// Puts back losses whose note could not be written.
    fn restore(&self, taken: Vec<(Scope, Shed)>) {
        let mut shed = self.shed.lock().unwrap_or_else(|p| p.into_inner());
        for (scope, s) in taken {
            let e = shed.entry(scope).or_insert(Shed { count: 0, first_ms: s.first_ms, last_ms: s.last_ms });
            e.count += s.count;
            e.first_ms = e.first_ms.min(s.first_ms);
            e.last_ms = e.last_ms.max(s.last_ms);
        }
    }
}

/// The `warn` entry from the host telling an installation's timeline that entries were lost.
fn shed_note(scope: &Scope, s: &Shed) -> NewLogRecord {
    let entry = LogEntry {
        at_ms: s.last_ms,
        level: Level::Warn,
        source: Source::Host,
        message: format!(
            "{} operation log entries of this installation were dropped: the host's log writer could not keep up",
            s.count
        ),
        fields: vec![
            ("dropped".into(), s.count.to_string()),
            ("from_ms".into(), s.first_ms.to_string()),
            ("to_ms".into(), s.last_ms.to_string()),
        ],
    };
    record(scope, entry)
}

/// Durable operation log; see the module doc. Cheap to clone: clones share one writer task.
#[derive(Clone)]
pub struct StoreOperationLog {
    tx: mpsc::UnboundedSender<Msg>,
    shared: Arc<Shared>,
    max_queued: usize,
}

const WRITE_ATTEMPTS: u32 = 3;

impl StoreOperationLog {
    /// Starts the writer task on the current Tokio runtime (panics outside one, like
    /// `tokio::spawn`). The task ends once every handle is dropped, after writing what is queued.
    pub fn new(store: Store) -> Self {
        Self::with_config(store, OplogConfig::default())
    }

    /// Starts the writer task with `config` on the current Tokio runtime (panics outside one).
    pub fn with_config(store: Store, config: OplogConfig) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::default());
        tokio::spawn(writer(store, config, rx, shared.clone()));
        Self { tx, shared, max_queued: config.max_queued.max(1) }
    }

    /// Entries dropped so far because the queue was full or the database kept failing.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Counts of entries appended, written, dropped and waiting.
    pub fn stats(&self) -> OplogStats {
        OplogStats {
            appended: self.shared.appended.load(Ordering::Relaxed),
            written: self.shared.written.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
            queued: self.shared.queued.load(Ordering::Relaxed) as u64,
        }
    }

    /// Waits until every entry appended before this call has been written (or dropped).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

impl OperationLog for StoreOperationLog {
    fn append(&self, scope: &Scope, entries: Vec<LogEntry>) {
        let n = entries.len();
        if n == 0 {
            return;
        }
        self.shared.appended.fetch_add(n as u64, Ordering::Relaxed);
        // Reserve room for the entries; a queue without room for all of them sheds them.
        let reserved = self
            .shared
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| (q + n <= self.max_queued).then_some(q + n));
        if reserved.is_err() {
            self.shared.lose(scope, n, "the write queue is full (the database is not keeping up)");
            return;
        }
        if let Err(mpsc::error::SendError(Msg::Entries(scope, e))) = self.tx.send(Msg::Entries(scope.clone(), entries))
        {
            self.shared.queued.fetch_sub(e.len(), Ordering::AcqRel);
            self.shared.lose(&scope, e.len(), "the operation log writer has stopped");
        }
    }
}

fn record(scope: &Scope, e: LogEntry) -> NewLogRecord {
    NewLogRecord {
        tenant: scope.tenant.to_string(),
        installation: scope.installation.to_string(),
        at_ms: e.at_ms,
        level: e.level,
        source: e.source.as_str().to_string(),
        fields_json: fields_json(&e.fields),
        message: e.message,
    }
}

async fn writer(store: Store, config: OplogConfig, mut rx: mpsc::UnboundedReceiver<Msg>, shared: Arc<Shared>) {
    let max_batch = config.max_batch.max(1);
    // Entries of the batch, with the scope of each run of them (to report a failed write).
    let mut batch = Batch::default();
    let mut deadline = Instant::now();
    loop {
        let msg = if batch.records.is_empty() {
            rx.recv().await
        } else {
            tokio::select! {
                msg = rx.recv() => msg,
                () = tokio::time::sleep_until(deadline) => {
                    write(&store, &mut batch, &shared).await;
                    continue;
                }
            }
        };
        match msg {
            None => {
                write(&store, &mut batch, &shared).await;
                return;
            }
            Some(Msg::Entries(scope, entries)) => {
                shared.queued.fetch_sub(entries.len(), Ordering::AcqRel);
                if batch.records.is_empty() {
                    deadline = Instant::now() + config.linger;
                }
                batch.push(&scope, entries);
                if batch.records.len() >= max_batch {
                    write(&store, &mut batch, &shared).await;
                }
            }
            Some(Msg::Flush(done)) => {
                write(&store, &mut batch, &shared).await;
                let _ = done.send(());
            }
        }
    }
}

/// The entries of one write, and which installation each run of them belongs to.
#[derive(Default)]
struct Batch {
    records: Vec<NewLogRecord>,
    runs: Vec<(Scope, usize)>,
}

impl Batch {
    fn push(&mut self, scope: &Scope, entries: Vec<LogEntry>) {
        self.runs.push((scope.clone(), entries.len()));
        self.records.extend(entries.into_iter().map(|e| record(scope, e)));
    }
}

/// Writes and empties `batch` (with the notes of installations that lost entries), retrying a
/// failed write with a short backoff.
async fn write(store: &Store, batch: &mut Batch, shared: &Shared) {
    let shed = shared.take_shed();
    let entries = batch.records.len();
    batch.records.extend(shed.iter().map(|(scope, s)| shed_note(scope, s)));
    if batch.records.is_empty() {
        return;
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        match store.append_logs(&batch.records).await {
            Ok(()) => {
                shared.written.fetch_add(entries as u64, Ordering::Relaxed);
                break;
            }
            Err(e) if attempt < WRITE_ATTEMPTS => {
                tracing::warn!(error = %e, entries = batch.records.len(), attempt, "writing operation log entries failed; retrying");
                tokio::time::sleep(Duration::from_millis(50 * 4u64.pow(attempt - 1))).await;
            }
            Err(e) => {
                tracing::error!(error = %e, entries = batch.records.len(), "operation log entries lost: the database write failed");
                shared.restore(shed);
                for (scope, n) in &batch.runs {
                    shared.lose(scope, *n, "the database write failed");
                }
                break;
            }
        }
    }
    batch.records.clear();
    batch.runs.clear();
}
