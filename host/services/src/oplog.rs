//! [`StoreOperationLog`]: the durable [`OperationLog`], writing entries to the store in batches.
//!
//! [`OperationLog::append`] runs on the call's task and must not block, so it only `try_send`s
//! the call's entries into a bounded channel. One background task drains the channel and commits
//! entries from many calls together: a batch is written when it reaches
//! [`OplogConfig::max_batch`] entries, [`OplogConfig::linger`] after its first entry, or when
//! [`StoreOperationLog::flush`] asks. When the channel is full (the database cannot keep up) the
//! entries are dropped and counted, with a warning, rather than slowing calls down. A batch whose
//! write fails is retried a few times, then dropped and counted the same way.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use patchbay_core::Scope;
use patchbay_core::log::LogEntry;
use patchbay_runtime::capability::log::OperationLog;
use patchbay_store::{NewLogRecord, Store, fields_json};

/// Tuning for [`StoreOperationLog`].
#[derive(Debug, Clone, Copy)]
pub struct OplogConfig {
    /// Calls whose entries may wait in the channel before new ones are dropped.
    pub queue_calls: usize,
    /// Entries per database write.
    pub max_batch: usize,
    /// How long the first entry of a batch waits for more before the batch is written.
    pub linger: Duration,
}

impl Default for OplogConfig {
    fn default() -> Self {
        Self { queue_calls: 4_096, max_batch: 1_000, linger: Duration::from_millis(5) }
    }
}

enum Msg {
    Entries(Scope, Vec<LogEntry>),
    Flush(oneshot::Sender<()>),
}

/// Durable operation log; see the module doc. Cheap to clone: clones share one writer task.
#[derive(Clone)]
pub struct StoreOperationLog {
    tx: mpsc::Sender<Msg>,
    dropped: Arc<AtomicU64>,
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
        let (tx, rx) = mpsc::channel(config.queue_calls.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        tokio::spawn(writer(store, config, rx, dropped.clone()));
        Self { tx, dropped }
    }

    /// Entries dropped so far because the queue was full or the database kept failing.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every entry appended before this call has been written (or dropped).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    fn count_dropped(&self, n: usize, why: &str) {
        let n = n as u64;
        let before = self.dropped.fetch_add(n, Ordering::Relaxed);
        // One warning for the first drop and then one per thousand, not one per call.
        if before == 0 || before / 1_000 != (before + n) / 1_000 {
            tracing::warn!(dropped = n, total_dropped = before + n, "operation log entries dropped: {why}");
        }
    }
}

impl OperationLog for StoreOperationLog {
    fn append(&self, scope: &Scope, entries: Vec<LogEntry>) {
        if entries.is_empty() {
            return;
        }
        match self.tx.try_send(Msg::Entries(scope.clone(), entries)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(Msg::Entries(_, e))) => {
                self.count_dropped(e.len(), "the write queue is full (the database is not keeping up)")
            }
            Err(mpsc::error::TrySendError::Closed(Msg::Entries(_, e))) => {
                self.count_dropped(e.len(), "the operation log writer has stopped")
            }
            Err(_) => {}
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

async fn writer(store: Store, config: OplogConfig, mut rx: mpsc::Receiver<Msg>, dropped: Arc<AtomicU64>) {
    let max_batch = config.max_batch.max(1);
    let mut batch: Vec<NewLogRecord> = Vec::new();
    let mut deadline = Instant::now();
    loop {
        let msg = if batch.is_empty() {
            rx.recv().await
        } else {
            tokio::select! {
                msg = rx.recv() => msg,
                () = tokio::time::sleep_until(deadline) => {
                    write(&store, &mut batch, &dropped).await;
                    continue;
                }
            }
        };
        match msg {
            None => {
                write(&store, &mut batch, &dropped).await;
                return;
            }
            Some(Msg::Entries(scope, entries)) => {
                if batch.is_empty() {
                    deadline = Instant::now() + config.linger;
                }
                batch.extend(entries.into_iter().map(|e| record(&scope, e)));
                if batch.len() >= max_batch {
                    write(&store, &mut batch, &dropped).await;
                }
            }
            Some(Msg::Flush(done)) => {
                write(&store, &mut batch, &dropped).await;
                let _ = done.send(());
            }
        }
    }
}

/// Writes and empties `batch`, retrying a failed write with a short backoff.
async fn write(store: &Store, batch: &mut Vec<NewLogRecord>, dropped: &AtomicU64) {
    if batch.is_empty() {
        return;
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        match store.append_logs(batch).await {
            Ok(()) => break,
            Err(e) if attempt < WRITE_ATTEMPTS => {
                tracing::warn!(error = %e, entries = batch.len(), attempt, "writing operation log entries failed; retrying");
                tokio::time::sleep(Duration::from_millis(50 * 4u64.pow(attempt - 1))).await;
            }
            Err(e) => {
                let total = dropped.fetch_add(batch.len() as u64, Ordering::Relaxed) + batch.len() as u64;
                tracing::error!(error = %e, dropped = batch.len(), total_dropped = total, "operation log entries lost: the database write failed");
                break;
            }
        }
    }
    batch.clear();
}
