//! Outbox delivery: the policy side of at-least-once delivery (the rows themselves live in
//! `patchbay_store`'s `outbox` module; the retry schedule is `patchbay_core::retry`).

pub mod worker;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use patchbay_store::{Delivery, DeliveryLease, EmittedEvent, NewDelivery, Settler, Store};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::installations::Installations;
use crate::metrics::Metrics;
use crate::routing::Router;

/// What delivering needs: the outbox (and its batching settler), the destination installations,
/// the routes' retry schedules and the metrics.
pub(crate) struct Dispatcher {
    store: Store,
    settler: Settler,
    installations: Arc<Installations>,
    router: Arc<Router>,
    metrics: Arc<Metrics>,
    handoff: Arc<Handoff>,
}

impl Dispatcher {
    pub(crate) fn new(
        store: Store,
        installations: Arc<Installations>,
        router: Arc<Router>,
        metrics: Arc<Metrics>,
        handoff: Arc<Handoff>,
    ) -> Self {
        let settler = Settler::spawn(store.clone());
        Self { store, settler, installations, router, metrics, handoff }
    }
}

/// Deliveries handed from the webhook ingest straight to this host's running dispatcher.
///
/// Without it, a webhook's delivery waits for the dispatcher to be woken, to claim it (a write
/// transaction behind the ingest's own) and only then runs. With it, the ingest writes the
/// delivery already leased to this host's dispatcher — `leased`, one attempt, exactly as a
/// claim would leave it — for as many deliveries as the dispatcher has free slots, and after the
/// commit hands the rows over in memory: the attempt starts at once, no claim, no wake-up. The
/// guarantees are the claim's: the slot is reserved before the write (so a handed-over delivery
/// never waits for one), and a host that dies before settling leaves a lease that expires, after
/// which any dispatcher claims the delivery again. Deliveries beyond the free slots are written
/// `pending` and claimed as before. A host whose dispatcher does not run (API-only) hands off
/// nothing.
#[derive(Default)]
pub(crate) struct Handoff {
    to: OnceLock<Receiver>,
}

/// The running dispatcher's side of a [`Handoff`].
struct Receiver {
    owner: Arc<str>,
    slots: Arc<Semaphore>,
    lease_ms: i64,
    queue: mpsc::UnboundedSender<(Delivery, OwnedSemaphorePermit)>,
}

/// Deliveries leased as they are written, each with its reserved slot, until the write commits.
pub(crate) struct Reserved {
    leased: Vec<(NewDelivery, OwnedSemaphorePermit)>,
    /// Whether some deliveries were left `pending` (the dispatchers must be woken for them).
    pub(crate) left_pending: bool,
}

impl Handoff {
    /// Connects the dispatcher that runs with `owner` and `slots`; the rows come out of the
    /// returned queue. `None` when a dispatcher is already connected.
    fn connect(
        &self,
        owner: Arc<str>,
        slots: Arc<Semaphore>,
        lease_ms: i64,
    ) -> Option<mpsc::UnboundedReceiver<(Delivery, OwnedSemaphorePermit)>> {
        let (queue, rx) = mpsc::unbounded_channel();
        self.to.set(Receiver { owner, slots, lease_ms, queue }).ok().map(|_| rx)
    }

    /// Leases as many of `deliveries` as the dispatcher has free slots (due ones only, in
    /// order), reserving a slot for each.
    pub(crate) fn reserve(&self, deliveries: &mut [NewDelivery], now_ms: i64) -> Reserved {
        let mut leased = Vec::new();
        let mut left_pending = false;
        for d in deliveries.iter_mut() {
            let permit = match self.to.get() {
                Some(r) if d.next_attempt_at_ms <= now_ms && !r.queue.is_closed() => {
                    r.slots.clone().try_acquire_owned().ok().map(|p| (r, p))
                }
                _ => None,
            };
            match permit {
                Some((r, permit)) => {
                    d.lease =
                        Some(DeliveryLease { owner: r.owner.to_string(), until_ms: now_ms.saturating_add(r.lease_ms) });
                    leased.push((d.clone(), permit));
                }
                None => left_pending = true,
            }
        }
        Reserved { leased, left_pending }
    }

    /// After the commit: starts the leased deliveries of the events that were stored (an event
    /// already stored under its idempotency key had its deliveries skipped; their slots are
    /// released). `events` is the write's answer; empty when nothing was written.
    pub(crate) fn start(&self, reserved: Reserved, events: &[(String, EmittedEvent)], now_ms: i64) -> usize {
        let Some(r) = self.to.get() else { return 0 };
        let mut started = 0;
        for (d, permit) in reserved.leased {
            let stored = events.iter().any(|(given, e)| *given == d.event_id && !e.duplicate);
            if !stored {
                continue;
            }
            if let Some(row) = d.leased_row(now_ms)
                && r.queue.send((row, permit)).is_ok()
            {
                started += 1;
            }
        }
        started
    }
}

/// How often housekeeping runs (forgetting aged-out webhook dedupe keys).
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(600);

/// Starts the background housekeeping task: webhook dedupe keys older than the configured
/// window are forgotten (the requests themselves stay in the event log).
pub(crate) fn spawn_housekeeping(store: Store, dedupe_window: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let window = i64::try_from(dedupe_window.as_millis()).unwrap_or(i64::MAX);
            let before = patchbay_core::now_ms().saturating_sub(window);
            match store.purge_dedupe_keys_before(before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!("forgot {n} webhook dedupe keys older than the dedupe window"),
                Err(e) => tracing::warn!("purging webhook dedupe keys failed: {e}"),
            }
            tokio::time::sleep(HOUSEKEEPING_EVERY).await;
        }
    })
}
