//! Group commit for webhook ingress: concurrent [`GroupCommitter::record`] calls share
//! transactions, and each returns only once the transaction holding its write committed.
//!
//! A webhook must be durable before its 2xx goes out, and one transaction per request caps
//! ingress at the database's commit rate (on SQLite, one `BEGIN IMMEDIATE … COMMIT` round through
//! sqlx's worker thread, plus an fsync with `synchronous = FULL`), while rows written together are
//! an order of magnitude cheaper. So requests are handed to a writer task over a channel, and the
//! writer commits whatever has accumulated as one [`Store::record_ingress_batch`]:
//!
//! - **No fixed delay.** The writer takes the first waiting write, then only what is *already*
//!   queued (up to [`GroupCommitConfig::max_batch`] writes or
//!   [`GroupCommitConfig::max_batch_bytes`]), and commits at once. A lone request under low load
//!   commits immediately, at the latency of a plain transaction; under load, requests arriving
//!   while a commit runs form the next batch by themselves. The batch size follows the load.
//! - **Writers.** SQLite has exactly one: its write lock serialises transactions anyway, and a
//!   second writer would only wait on the lock with a batch that could have been larger. PostgreSQL
//!   commits concurrently (its WAL flushes group commits of their own), so
//!   [`GroupCommitConfig::postgres_writers`] tasks (default 4) share the queue, each committing
//!   its own batches; a writer holds the queue only while it collects a batch, not while it commits.
//! - **Failures are per write.** [`Store::record_ingress_batch`] gives every write the answer
//!   [`Store::record_ingress`] would have, so one bad request (unknown installation, malformed
//!   events) fails alone and the rest of its batch is recorded.
//! - **Cancellation.** A caller that drops its future (the client hung up) does not take its write
//!   back: once queued it is recorded like the others — a retry by the sender is then answered
//!   as a duplicate — and the answer is discarded. Nothing a caller does can affect another
//!   caller's write. The queue is bounded ([`GroupCommitConfig::queue`]): when the database falls
//!   behind, `record` waits for room, which is the back-pressure an HTTP server needs.
//! - **Shutdown.** The writers end when every [`GroupCommitter`] clone is dropped and the queue is
//!   drained; [`GroupWriters::join`] waits for that.
//! - **Wake-ups.** After each committed batch that stored at least one delivery,
//!   [`GroupCommitConfig::on_deliveries`] runs (once per batch, not per request), so a dispatcher
//!   learns of new work without polling.
//!
//! Measured on a 2-core machine (request + event + delivery, 500-byte body; `cargo bench -p
//! patchbay-tests --bench ingress`): SQLite goes from 1 800 requests/s with a transaction per
//! request to 17 800 with 1 024 concurrent callers, PostgreSQL from 2 200 to 8 400; a lone write
//! still commits at once (p50 0.45 ms on SQLite, 0.8 ms on PostgreSQL). On SQLite that is close
//! to what the database itself manages with these three tables and their seventeen indexes: about
//! 80 000 rows/s on that machine, measured without patchbay. The writer is not the limit.

use std::fmt;
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::{JoinError, JoinHandle};

use super::{Backend, IngressOutcome, IngressWrite, Store, StoreError};

/// Runs after a committed batch stored deliveries. It runs on the writer task, between the commit
/// and the answers: keep it short and non-blocking (e.g. `Notify::notify_one`).
pub type CommitHook = Arc<dyn Fn() + Send + Sync>;

/// How a [`GroupCommitter`] batches.
#[derive(Clone)]
pub struct GroupCommitConfig {
    /// Most writes in one transaction.
    pub max_batch: usize,
    /// A batch takes no further write once its writes' `IngressWrite::approx_bytes` reach this
    /// (the write crossing it is included: a batch always has at least one).
    pub max_batch_bytes: usize,
    /// Writer tasks on PostgreSQL (at least one). SQLite always has exactly one.
    pub postgres_writers: usize,
    /// Writes that may wait for a writer; [`GroupCommitter::record`] waits for room beyond that.
    pub queue: usize,
    /// Called after each committed batch that stored at least one delivery.
    pub on_deliveries: Option<CommitHook>,
}

impl Default for GroupCommitConfig {
    fn default() -> Self {
        GroupCommitConfig {
            max_batch: 512,
            max_batch_bytes: 8 << 20,
            postgres_writers: 4,
            queue: 8_192,
            on_deliveries: None,
        }
    }
}

impl fmt::Debug for GroupCommitConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupCommitConfig")
            .field("max_batch", &self.max_batch)
            .field("max_batch_bytes", &self.max_batch_bytes)
            .field("postgres_writers", &self.postgres_writers)
            .field("queue", &self.queue)
            .field("on_deliveries", &self.on_deliveries.is_some())
            .finish()
    }
}

/// Records webhook requests durably, many per transaction. Cheap to clone; every clone feeds the
/// same writers.
#[derive(Clone)]
pub struct GroupCommitter {
    queue: mpsc::Sender<Job>,
}

impl fmt::Debug for GroupCommitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupCommitter").field("queued", &(self.queue.max_capacity() - self.queue.capacity())).finish()
    }
}

/// The writer tasks behind a [`GroupCommitter`]. Dropping this detaches them (they still end
/// once every committer is dropped).
#[derive(Debug)]
pub struct GroupWriters {
    tasks: Vec<JoinHandle<()>>,
}

impl GroupWriters {
    /// Waits until every writer ended: all [`GroupCommitter`] clones are dropped and every queued
    /// write was committed and answered. `Err` when a writer panicked.
    pub async fn join(self) -> Result<(), JoinError> {
        let mut outcome = Ok(());
        for task in self.tasks {
            if let Err(e) = task.await {
                outcome = Err(e);
            }
        }
        outcome
    }
}

/// A queued write and where its answer goes.
struct Job {
    write: IngressWrite,
    answer: oneshot::Sender<Result<IngressOutcome, StoreError>>,
}

impl GroupCommitter {
    /// Starts the writers on the current Tokio runtime (call from within one).
    pub fn spawn(store: Store, config: GroupCommitConfig) -> (GroupCommitter, GroupWriters) {
        let writers = match store.backend() {
            Backend::Sqlite => 1,
            Backend::Postgres => config.postgres_writers.max(1),
        };
        let (queue, jobs) = mpsc::channel(config.queue.max(1));
        let jobs = Arc::new(Mutex::new(jobs));
        let config = Arc::new(config);
        let tasks =
            (0..writers).map(|_| tokio::spawn(write_batches(store.clone(), jobs.clone(), config.clone()))).collect();
        (GroupCommitter { queue }, GroupWriters { tasks })
    }

    /// Records `write` as [`Store::record_ingress`] does, in a transaction shared with other
    /// writes; returns once that transaction committed (or failed). Dropping the future does not
    /// withdraw a write that was already queued. `Db(WorkerCrashed)` when the writers are gone.
    pub async fn record(&self, write: IngressWrite) -> Result<IngressOutcome, StoreError> {
        let (answer, answered) = oneshot::channel();
        self.queue.send(Job { write, answer }).await.map_err(|_| writers_gone())?;
        answered.await.map_err(|_| writers_gone())?
    }
}

fn writers_gone() -> StoreError {
    StoreError::Db(sqlx::Error::WorkerCrashed)
}

/// One writer: collect what is queued, commit it, answer, until the queue closes.
async fn write_batches(store: Store, jobs: Arc<Mutex<mpsc::Receiver<Job>>>, config: Arc<GroupCommitConfig>) {
    loop {
        let batch = {
            let mut jobs = jobs.lock().await;
            let Some(first) = jobs.recv().await else { return };
            let mut bytes = first.write.approx_bytes();
            let mut batch = vec![first];
            while batch.len() < config.max_batch && bytes < config.max_batch_bytes {
                let Ok(job) = jobs.try_recv() else { break };
                bytes += job.write.approx_bytes();
                batch.push(job);
            }
            batch
        };
        let (writes, answers): (Vec<IngressWrite>, Vec<_>) = batch.into_iter().map(|j| (j.write, j.answer)).unzip();
        let results = store.record_ingress_batch(&writes).await;
        if let Some(hook) = &config.on_deliveries
            && writes.iter().zip(&results).any(|(w, r)| r.as_ref().is_ok_and(|o| w.stored_deliveries(o)))
        {
            hook();
        }
        for (answer, result) in answers.into_iter().zip(results) {
            // The caller may have stopped waiting; its write is recorded all the same.
            let _ = answer.send(result);
        }
    }
}
