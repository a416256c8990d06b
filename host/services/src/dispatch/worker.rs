//! The dispatcher: one loop per host that leases due deliveries and runs them.
//!
//! ```text
//! loop:
//!   claim up to <free slots> due deliveries (lease = now + lease time, attempts + 1)
//!   run each on its own task: call destination.operation(args), then ack or fail with the
//!   retry schedule of its route (dead letter when exhausted or permanent)
//!   nothing claimed → sleep until the earliest next_attempt_at, or until woken
//! ```
//!
//! **Wake-ups, not polling.** A host that stores deliveries wakes its own dispatcher at once
//! (`Store::wake_dispatchers`, a `tokio::sync::Notify`); on PostgreSQL the same call sends a
//! `NOTIFY` that every host's dispatcher `LISTEN`s for, so a webhook received by one host can be
//! delivered by another within a round trip. Otherwise the loop sleeps exactly until the next
//! scheduled attempt or lease expiry (`Store::next_due_at`), capped by a safety interval
//! that only matters if a notification is lost (a listener reconnecting).
//!
//! **At-least-once.** A delivery is acked only after the connector's call returned; a host that
//! dies mid-call leaves a lease that expires, and the next claim (on any host) runs it again.
//! The connector receives the delivery's idempotency key (see `crate::routing::stamp_delivery`)
//! so the effect happens once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Semaphore;

use super::Dispatcher;
use crate::quota::QuotaMode;
use patchbay_core::error::ErrorKind;
use patchbay_core::retry::{Jitter, SystemJitter};
use patchbay_runtime::dynamic::{DynamicOutcome, find_operation};
use patchbay_store::{AttemptOutcome, AttemptRecord, Delivery, Retry, Settlement};

/// How the dispatcher runs.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// Deliveries in flight at once on this host.
    pub concurrency: usize,
    /// How long a claimed delivery is reserved; must exceed the longest call.
    pub lease: Duration,
    /// Longest sleep without a wake-up (a backstop for lost notifications).
    pub max_idle: Duration,
    /// Whether to run at all (`false` for hosts that only serve the API).
    pub enabled: bool,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            concurrency: 64,
            lease: Duration::from_secs(120),
            max_idle: Duration::from_secs(30),
            enabled: true,
        }
    }
}

/// A unique lease owner name for this process.
pub(crate) fn owner_name() -> String {
    let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "host".into());
    format!("{host}:{}:{}", std::process::id(), patchbay_core::new_id("d"))
}

/// Starts the dispatcher (and on PostgreSQL its listener) on the current runtime.
pub(crate) fn spawn(
    dispatcher: Arc<Dispatcher>,
    config: DispatchConfig,
    database_url: Option<String>,
) -> Option<tokio::task::JoinHandle<()>> {
    if !config.enabled {
        return None;
    }
    if let Some(url) = database_url.filter(|_| dispatcher.store.backend() == patchbay_store::Backend::Postgres) {
        dispatcher.store.spawn_outbox_listener(url);
    }
    Some(tokio::spawn(run(dispatcher, config)))
}

async fn run(dispatcher: Arc<Dispatcher>, config: DispatchConfig) {
    let owner: Arc<str> = owner_name().into();
    let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let lease_ms = i64::try_from(config.lease.as_millis()).unwrap_or(i64::MAX);
    let signal = dispatcher.store.dispatch_signal();
    match dispatcher.handoff.connect(owner.clone(), slots.clone(), lease_ms) {
        Some(handed) => {
            tokio::spawn(run_handed_over(dispatcher.clone(), owner.clone(), handed));
        }
        None => tracing::warn!("another dispatcher of this host takes the deliveries handed over by ingest"),
    }
    tracing::info!(owner = %owner, "dispatcher started");
    loop {
        // Reserve the free slots before claiming (at least one, waiting for it), so that every
        // claimed row starts at once, whatever the ingest hands over meanwhile.
        let mut permits = match slots.clone().acquire_owned().await {
            Ok(p) => vec![p],
            Err(_) => return,
        };
        while let Ok(p) = slots.clone().try_acquire_owned() {
            permits.push(p);
        }
        let free = u32::try_from(permits.len()).unwrap_or(u32::MAX);
        let now = patchbay_core::now_ms();
        let claimed = match dispatcher.store.claim_deliveries(&owner, now, lease_ms, free).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("claiming deliveries failed: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let full = u32::try_from(claimed.len()).unwrap_or(u32::MAX) >= free;
        for d in claimed {
            let Some(permit) = permits.pop() else {
                // Cannot happen (we claimed at most the reserved slots); the lease will expire.
                tracing::error!(delivery = %d.id, "no free slot for a claimed delivery");
                continue;
            };
            start(&dispatcher, &owner, d, permit, "claim");
        }
        drop(permits);
        if full {
            continue;
        }
        let wait = match dispatcher.store.next_due_at().await {
            Ok(Some(at)) => Duration::from_millis(u64::try_from(at - patchbay_core::now_ms()).unwrap_or(0)),
            Ok(None) => config.max_idle,
            Err(e) => {
                tracing::warn!("reading the next due delivery failed: {e}");
                Duration::from_millis(500)
            }
        };
        if wait.is_zero() {
            // Due rows that we could not claim are other hosts' leases about to be settled, or
            // a slot is busy: yield briefly rather than spin.
            tokio::select! {
                _ = signal.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
            continue;
        }
        tokio::select! {
            _ = signal.notified() => {}
            _ = tokio::time::sleep(wait.min(config.max_idle)) => {}
        }
    }
}

/// Runs the deliveries the ingest leased to this dispatcher and handed over (see
/// [`super::Handoff`]), each in the slot reserved for it.
async fn run_handed_over(
    dispatcher: Arc<Dispatcher>,
    owner: Arc<str>,
    mut handed: tokio::sync::mpsc::UnboundedReceiver<(Delivery, tokio::sync::OwnedSemaphorePermit)>,
) {
    while let Some((d, permit)) = handed.recv().await {
        start(&dispatcher, &owner, d, permit, "handoff");
    }
}

/// Runs `d` on its own task in the slot `permit` holds, counted by how the dispatcher got it.
fn start(
    dispatcher: &Arc<Dispatcher>,
    owner: &Arc<str>,
    d: Delivery,
    permit: tokio::sync::OwnedSemaphorePermit,
    path: &str,
) {
    dispatcher.metrics.delivery_started(path);
    let (dispatcher, owner) = (dispatcher.clone(), owner.clone());
    tokio::spawn(async move {
        deliver(&dispatcher, &owner, d).await;
        drop(permit);
    });
}

/// What one attempt came to.
struct Attempt {
    outcome: AttemptOutcome,
    error: Option<String>,
    retry_after: Option<Duration>,
}

impl Attempt {
    fn failed(outcome: AttemptOutcome, error: impl Into<String>) -> Attempt {
        Attempt { outcome, error: Some(error.into()), retry_after: None }
    }
}

/// Runs one claimed delivery and settles it.
pub(crate) async fn deliver(dispatcher: &Dispatcher, owner: &str, d: Delivery) {
    let started_ms = patchbay_core::now_ms();
    let started = Instant::now();
    let attempt = call(dispatcher, &d).await;
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let record = AttemptRecord {
        attempt: d.attempts,
        started_at_ms: started_ms,
        duration_ms,
        outcome: attempt.outcome,
        error: attempt.error.clone(),
    };
    let settled = if attempt.outcome == AttemptOutcome::Ok {
        let latency = Duration::from_millis(u64::try_from(patchbay_core::now_ms() - d.created_at_ms).unwrap_or(0));
        dispatcher.metrics.delivery("ok", Some(latency));
        match Settlement::ack(&d.id, owner, record) {
            Ok(s) => dispatcher.settler.settle(s).await,
            Err(e) => Err(e),
        }
    } else {
        dispatcher.metrics.delivery(attempt.outcome.as_str(), None);
        let schedule = match &d.route_id {
            Some(r) => dispatcher.router.retry_schedule(&d.tenant, r).await,
            None => crate::routing::retry_schedule(None),
        };
        let mut jitter = SystemJitter::default();
        let next = schedule.next(
            d.schedule_attempt(),
            attempt.outcome,
            attempt.retry_after,
            patchbay_core::now_ms(),
            &mut jitter as &mut dyn Jitter,
        );
        if next == Retry::Dead {
            dispatcher.metrics.delivery("dead", None);
        }
        let settled = match Settlement::fail(&d.id, owner, record, next) {
            Ok(s) => dispatcher.settler.settle(s).await,
            Err(e) => Err(e),
        };
        if let Retry::At(_) = next {
            // A retry due now (the schedule starts with "immediately") needs the loop awake.
            dispatcher.store.wake_local();
        }
        settled
    };
    match settled {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(delivery = %d.id, attempt = d.attempts, "lease lost before settling; the delivery runs again")
        }
        Err(e) => tracing::warn!(delivery = %d.id, "settling a delivery failed (it will be retried): {e}"),
    }
}

async fn call(dispatcher: &Dispatcher, d: &Delivery) -> Attempt {
    let mut args: Value = match serde_json::from_str(&d.payload) {
        Ok(v) => v,
        Err(e) => return Attempt::failed(AttemptOutcome::Permanent, format!("stored arguments are not JSON: {e}")),
    };
    let invoked = match dispatcher.installations.resolve(&d.tenant, &d.destination_installation).await {
        Ok(r) => {
            let op = find_operation(r.prepared.component.operations(), &d.operation).ok();
            crate::routing::stamp_delivery(&mut args, &d.idempotency_key, d.schedule_attempt().max(1), op);
            dispatcher.installations.invoke_resolved(&r, &d.operation, args, QuotaMode::FailFast).await
        }
        Err(e) => Err(e),
    };
    match invoked {
        Ok(report) => match report.outcome {
            Ok(DynamicOutcome::Ok(_)) => Attempt { outcome: AttemptOutcome::Ok, error: None, retry_after: None },
            Ok(DynamicOutcome::ConnectorError { kind, error }) => {
                let outcome = kind.parse().unwrap_or(AttemptOutcome::Error);
                let retry_after = error.get("retry-after-ms").and_then(Value::as_u64).map(Duration::from_millis);
                let message = error
                    .get("message")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| error.to_string());
                let code = error.get("code").and_then(Value::as_str);
                let text = match code {
                    Some(c) => format!("{kind}: {message} ({c})"),
                    None => format!("{kind}: {message}"),
                };
                Attempt { outcome, error: Some(text), retry_after }
            }
            Err(e) => Attempt::failed(AttemptOutcome::Error, format!("{}: {e}", e.kind())),
        },
        // Over the provider budget: back off like a provider's 429, without holding a worker.
        Err(e) if matches!(e.kind(), ErrorKind::QuotaExceeded { .. }) => Attempt {
            outcome: AttemptOutcome::RateLimited,
            error: Some(format!("{}: {}", e.kind(), e.message())),
            retry_after: Some(match e.kind() {
                ErrorKind::QuotaExceeded { retry_after: Some(wait) } => *wait,
                _ => Duration::from_secs(1),
            }),
        },
        // The destination is gone or the arguments can never fit the operation: retrying the
        // same delivery cannot help. A disabled destination or a host fault may pass.
        Err(e) if e.kind().is_permanent() => {
            Attempt::failed(AttemptOutcome::Permanent, format!("{}: {}", e.kind(), e.message()))
        }
        Err(e) => Attempt::failed(AttemptOutcome::Error, format!("{}: {}", e.kind(), e.message())),
    }
}
